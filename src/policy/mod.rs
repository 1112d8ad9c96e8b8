//! Governance policies: built-in rules and custom Rego, evaluated over the desired state and, at
//! plan time, over the plan and the live state it was computed from, giving [`Finding`]s.
//!
//! Guarantees:
//! - [`evaluate`] is a pure function of its [`PolicyContext`]: the clock is injected, nothing is
//!   read from disk or the network, and the plan is never changed;
//! - every finding has a stable rule id (see [`RULES`]), a severity, the address it concerns and,
//!   wherever the configuration says something about it, the file, line and column of the most
//!   specific YAML value (the grant that completes a conflict, the reader that lacks clearance);
//! - findings come out in a stable order: by file and line, then rule and address;
//! - no finding carries a secret: plain-text secrets are described by kind, length and a
//!   redacted hint only.
//!
//! Assumes a validated configuration: references resolve, names are unique.

pub mod builtin;
mod catalog;
mod locate;
pub mod rego;

use std::collections::BTreeMap;

use serde::Serialize;

pub use catalog::{RULES, Rule, RuleInfo, rule_info};

use crate::load::{Loaded, PathSeg};
use crate::model::config::RuleLevel;
use crate::model::{DesiredState, Kind, LiveTarget, Name, Severity, Timestamp, UndeliveredCredential};
use crate::plan::Plan;
use crate::validate::{Location, Origins};

/// One policy violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The stable rule id, for example `sod.conflict` or `rego.naming`.
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// What the finding is about: a resource (`user.alice`, `role.it-admin`), a plan address
    /// (`okta.assignment.alice/ap-clerk`) or a file (`file:users/alice.yaml`).
    pub address: String,
    /// Where in the configuration it comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl Finding {
    pub fn new(rule: &str, severity: Severity, address: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            rule: rule.to_string(),
            severity,
            message: message.into(),
            help: None,
            address: address.into(),
            location: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }
}

/// Which parts of the policy evaluation run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOptions {
    /// Run the built-in rules.
    pub builtin: bool,
    /// Evaluate the configuration's `*.rego` files.
    pub rego: bool,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions { builtin: true, rego: true }
    }
}

/// Everything the policies read, as values.
#[derive(Clone, Copy)]
pub struct PolicyContext<'a> {
    pub desired: &'a DesiredState,
    pub loaded: &'a Loaded,
    pub origins: &'a Origins,
    pub now: Timestamp,
    /// At plan time: the plan.
    pub plan: Option<&'a Plan>,
    /// At plan time: the live state of each target that was read.
    pub live: Option<&'a BTreeMap<Name, LiveTarget>>,
    /// Credentials issued but never delivered (they are never a credential's current instance).
    pub undelivered: &'a [UndeliveredCredential],
    /// At plan time: the snapshots of pinned roles' contents, by role.
    pub pinned: &'a crate::model::Snapshots,
    pub options: PolicyOptions,
}

impl<'a> PolicyContext<'a> {
    /// A context for `keyward validate`: desired state only.
    pub fn offline(desired: &'a DesiredState, loaded: &'a Loaded, origins: &'a Origins, now: Timestamp) -> Self {
        PolicyContext {
            desired,
            loaded,
            origins,
            now,
            plan: None,
            live: None,
            undelivered: &[],
            pinned: &crate::model::contents::NO_SNAPSHOTS,
            options: PolicyOptions::default(),
        }
    }

    /// The position of `path` inside resource `kind`/`name` (of the closest written ancestor
    /// when the path itself is not written out).
    pub fn locate(&self, kind: Kind, name: &Name, path: &[PathSeg]) -> Option<Location> {
        let origin = self.origins.get(kind, name)?;
        let doc = &self.loaded.documents[origin.doc];
        match locate::fast_locate(self.loaded.text(doc), path) {
            Some((line, column)) => {
                Some(Location { file: self.loaded.path(doc).to_path_buf(), line: doc.start_line + line - 1, column })
            }
            None => self.origins.locate(self.loaded, kind, name, path),
        }
    }

    /// The position of `path` inside keyward.yaml.
    pub fn locate_setting(&self, path: &[PathSeg]) -> Option<Location> {
        self.origins.locate_setting(self.loaded, path)
    }
}

/// Runs every policy and returns the findings in a stable order.
pub fn evaluate(ctx: &PolicyContext) -> Vec<Finding> {
    evaluate_with_approvals(ctx, None)
}

/// [`evaluate`], with the approvals of a change given to Rego policies as `input.approvals`
/// (a JSON value the caller builds; docs/policies.md gives its shape).
pub fn evaluate_with_approvals(ctx: &PolicyContext, approvals: Option<&serde_json::Value>) -> Vec<Finding> {
    let mut out = Vec::new();
    if ctx.options.builtin {
        builtin::run(ctx, &mut out);
    }
    if ctx.options.rego {
        rego::run(ctx, approvals, &mut out);
    }
    apply_levels(ctx, &mut out);
    fill_locations(ctx, &mut out);
    sort(&mut out);
    out
}

/// Applies `policy.rules` from keyward.yaml: a new severity per rule id, or `off`.
fn apply_levels(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    let rules = &ctx.desired.settings.policy.rules;
    if rules.is_empty() {
        return;
    }
    out.retain_mut(|f| match rules.get(&f.rule) {
        None => true,
        Some(RuleLevel::Off) => false,
        Some(RuleLevel::Info) => {
            f.severity = Severity::Info;
            true
        }
        Some(RuleLevel::Warn) => {
            f.severity = Severity::Warn;
            true
        }
        Some(RuleLevel::Deny) => {
            f.severity = Severity::Deny;
            true
        }
    });
}

/// Gives every finding a location, so code scanning can show it: the target's entry in
/// keyward.yaml for a live finding about a target, keyward.yaml itself otherwise.
fn fill_locations(ctx: &PolicyContext, out: &mut [Finding]) {
    for f in out.iter_mut().filter(|f| f.location.is_none()) {
        let target = f
            .address
            .parse::<crate::plan::Address>()
            .ok()
            .map(|a| a.target)
            .filter(|t| ctx.desired.settings.targets.contains_key(t));
        f.location = match target {
            Some(t) => ctx.locate_setting(&["targets".into(), t.as_str().into()]),
            None => ctx.locate_setting(&[]),
        };
    }
}

/// Sorts findings by file and line, then rule, address and message.
pub fn sort(findings: &mut [Finding]) {
    type Key<'f> = (bool, Option<(&'f std::path::Path, u32, u32)>, &'f str, &'f str, &'f str);
    fn key(f: &Finding) -> Key<'_> {
        let loc = f.location.as_ref().map(|l| (l.file.as_path(), l.line, l.column));
        (loc.is_none(), loc, f.rule.as_str(), f.address.as_str(), f.message.as_str())
    }
    findings.sort_by(|a, b| key(a).cmp(&key(b)));
}

/// Counts of findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub deny: usize,
    pub warn: usize,
    pub info: usize,
}

impl Tally {
    pub fn of(findings: &[Finding]) -> Tally {
        let mut t = Tally::default();
        for f in findings {
            match f.severity {
                Severity::Deny => t.deny += 1,
                Severity::Warn => t.warn += 1,
                Severity::Info => t.info += 1,
            }
        }
        t
    }
}

/// Whether any finding blocks apply.
pub fn has_deny(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Deny)
}
