//! Running the policies for a command and printing their findings; the exit code they imply.

use std::collections::BTreeMap;
use std::path::Path;

use super::session::Config;
use super::{Exit, Failure};
use crate::diagnostic::{Diagnostic, Level};
use crate::load::Loaded;
use crate::model::{LiveTarget, Name, Severity, Timestamp};
use crate::output::{Printer, findings as render};
use crate::plan::Plan;
use crate::policy::{self, Finding, PolicyContext, PolicyOptions};
use crate::validate::{Location, Validated};

/// Evaluates every policy over a validated configuration, and at plan time the plan and live
/// state.
pub fn evaluate(
    loaded: &Loaded,
    validated: &Validated,
    plan: Option<&Plan>,
    live: Option<&BTreeMap<Name, LiveTarget>>,
    now: Timestamp,
) -> Vec<Finding> {
    let Some(desired) = validated.state.as_ref() else { return Vec::new() };
    let ctx = PolicyContext {
        desired,
        loaded,
        origins: &validated.origins,
        now,
        plan,
        live,
        options: PolicyOptions::default(),
    };
    policy::evaluate(&ctx)
}

/// [`evaluate`] for a loaded session.
pub fn evaluate_config(
    config: &Config,
    plan: Option<&Plan>,
    live: Option<&BTreeMap<Name, LiveTarget>>,
    now: Timestamp,
) -> Vec<Finding> {
    evaluate(&config.loaded, &config.validated, plan, live, now)
}

/// The configuration folder's path from the root of its git repository, with a trailing `/`
/// (empty when it is the root or not in a repository), so SARIF URIs resolve in code scanning.
pub fn repo_prefix(dir: &Path) -> String {
    let Ok(repo) = git2::Repository::discover(dir) else { return String::new() };
    let Some(workdir) = repo.workdir() else { return String::new() };
    let (Ok(dir), Ok(workdir)) = (dir.canonicalize(), workdir.canonicalize()) else { return String::new() };
    match dir.strip_prefix(&workdir) {
        Ok(rel) if !rel.as_os_str().is_empty() => {
            let mut s = rel.to_string_lossy().replace('\\', "/");
            s.push('/');
            s
        }
        _ => String::new(),
    }
}

/// Validation diagnostics as findings (`config.<code>`), so a SARIF log shows them too.
pub fn diagnostics_as_findings(diags: &[Diagnostic]) -> Vec<Finding> {
    diags
        .iter()
        .map(|d| {
            let severity = if d.level == Level::Error { Severity::Deny } else { Severity::Warn };
            let address = d.field.clone().unwrap_or_else(|| {
                d.file.as_ref().map(|f| format!("file:{}", f.display())).unwrap_or_else(|| "configuration".into())
            });
            let mut f = Finding::new(&format!("config.{}", d.code), severity, address, d.message.clone());
            f.help = d.help.clone();
            f.location = d.file.as_ref().map(|file| Location {
                file: file.clone(),
                line: d.line.unwrap_or(1),
                column: d.column.unwrap_or(1),
            });
            f
        })
        .collect()
}

/// Prints findings as text (nothing when there are none), then the summary line.
/// How many findings the text output shows in detail.
pub const MAX_SHOWN: usize = 50;

pub fn print_text(printer: &Printer, findings: &[Finding], loaded: &Loaded, to_stdout: bool) {
    if findings.is_empty() {
        return;
    }
    let color = if to_stdout { printer.color_out } else { printer.color_err };
    // The worst first; a large tenant can have thousands of findings, so the text shows the
    // first ones in detail and counts the rest (JSON and SARIF always carry all of them).
    let mut shown: Vec<&Finding> = findings.iter().collect();
    shown.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let rest = shown.split_off(shown.len().min(MAX_SHOWN));
    let shown: Vec<Finding> = shown.into_iter().cloned().collect();
    let mut text = render::render_text(&shown, Some(loaded), color, 100);
    if !rest.is_empty() {
        let count = |s: Severity| rest.iter().filter(|f| f.severity == s).count();
        text.push_str(&format!(
            "... and {} more findings ({} deny, {} warn, {} info) not shown here; --format json or --format sarif lists them all.\n",
            rest.len(),
            count(Severity::Deny),
            count(Severity::Warn),
            count(Severity::Info)
        ));
    }
    text.push_str(&render::summary_line(findings, color));
    if to_stdout { printer.out(&text) } else { printer.err(&text) }
}

/// Refuses to go on when a finding denies: exit 3 with a message that says why.
pub fn gate(findings: &[Finding]) -> Result<(), Failure> {
    let denies = findings.iter().filter(|f| f.severity == Severity::Deny).count();
    if denies == 0 {
        return Ok(());
    }
    Err(Failure {
        message: format!(
            "refusing to apply: {denies} policy finding{} of severity deny (shown above); resolve {}, or change the rule's severity in keyward.yaml under policy.rules",
            if denies == 1 { "" } else { "s" },
            if denies == 1 { "it" } else { "them" }
        ),
        exit: Exit::Denied,
    })
}
