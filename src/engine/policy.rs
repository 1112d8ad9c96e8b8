//! Running the policies for a command; the gate that refuses to go on past a deny.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Config, EngineError};
use crate::diagnostic::{Diagnostic, Level};
use crate::load::Loaded;
use crate::model::{LiveTarget, Name, Severity, Timestamp, UndeliveredCredential};
use crate::plan::Plan;
use crate::policy::{self, Finding, PolicyContext, PolicyOptions};
use crate::validate::{Location, Validated};

/// The live state the policies see at plan time: each target read, and the credentials issued
/// but never delivered.
#[derive(Clone, Copy)]
pub struct Live<'a> {
    pub targets: &'a BTreeMap<Name, LiveTarget>,
    pub undelivered: &'a [UndeliveredCredential],
    /// The snapshots of pinned roles' contents (see `engine::contents`).
    pub pinned: &'a crate::model::Snapshots,
}

/// Evaluates every policy over a validated configuration, and at plan time the plan and live
/// state. A configuration with errors has no findings.
pub fn evaluate(
    loaded: &Loaded,
    validated: &Validated,
    plan: Option<&Plan>,
    live: Option<Live>,
    now: Timestamp,
) -> Vec<Finding> {
    let Some(desired) = validated.state.as_ref() else { return Vec::new() };
    let ctx = PolicyContext {
        desired,
        loaded,
        origins: &validated.origins,
        now,
        plan,
        live: live.map(|l| l.targets),
        undelivered: live.map(|l| l.undelivered).unwrap_or_default(),
        pinned: live.map(|l| l.pinned).unwrap_or(&crate::model::contents::NO_SNAPSHOTS),
        options: PolicyOptions::default(),
    };
    let started = std::time::Instant::now();
    let findings = policy::evaluate(&ctx);
    tracing::info!(
        findings = findings.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "evaluated the policies"
    );
    findings
}

/// [`evaluate`] for a valid configuration.
pub fn evaluate_config(config: &Config, plan: Option<&Plan>, live: Option<Live>, now: Timestamp) -> Vec<Finding> {
    evaluate(&config.loaded, &config.validated, plan, live, now)
}

/// Refuses to go on when a finding denies.
pub fn gate(findings: &[Finding]) -> Result<(), EngineError> {
    let denies = findings.iter().filter(|f| f.severity == Severity::Deny).count();
    if denies == 0 { Ok(()) } else { Err(EngineError::Denied { denies }) }
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
