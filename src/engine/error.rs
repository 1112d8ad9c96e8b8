//! The errors of the pipeline: one enum, each variant with the facts a person needs and, where
//! something underneath failed, that failure as its source.

use std::path::PathBuf;

use crate::apply::ExecuteError;
use crate::audit::AuditError;
use crate::credential::CredentialError;
use crate::load::LoadError;
use crate::plan::{GuardViolation, PlanError};
use crate::provider::ProviderError;

/// Why a command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The configuration has errors; the diagnostics went to the observer.
    #[error("{} is not valid ({tally})", dir.display())]
    Invalid { dir: PathBuf, tally: String },
    #[error("cannot read the base revision {rev:?}: {source}")]
    BaseUnreadable {
        rev: String,
        #[source]
        source: LoadError,
    },
    /// The configuration at the base revision has errors; the diagnostics went to the observer.
    #[error("the configuration at the base revision {rev:?} is not valid ({tally})")]
    BaseInvalid { rev: String, tally: String },
    #[error("there is no target `{name}`; keyward.yaml defines: {}", known.join(", "))]
    UnknownTarget { name: String, known: Vec<String> },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("cannot make a plan:\n{}", list(errors))]
    Plan { errors: Vec<PlanError> },
    #[error("at the base revision {rev:?}: cannot make a plan:\n{}", list(errors))]
    BasePlan { rev: String, errors: Vec<PlanError> },
    /// The record of credentials issued but not delivered could not be read or written.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    SavedPlan(#[from] SavedPlanError),
    /// Policy findings of severity deny block the command.
    #[error(
        "refusing to apply: {denies} policy finding{} of severity deny (shown above); resolve {}, or change the rule's severity in keyward.yaml under policy.rules",
        if *denies == 1 { "" } else { "s" },
        if *denies == 1 { "it" } else { "them" }
    )]
    Denied { denies: usize },
    #[error("refusing to apply: the plan trips {} guard(s):\n{}", violations.len(), list(violations))]
    Guards { violations: Vec<GuardViolation> },
    #[error(transparent)]
    Webhook(#[from] super::drift::WebhookError),
    #[error("there is no audit log at {location}")]
    NoAuditLog { location: String },
    #[error("cannot migrate the state from {from} to {to}: {message}")]
    Migrate { from: String, to: String, message: String },
    /// keyward.yaml asks for a remote state but its settings do not validate.
    #[error("cannot tell where the state is: the settings in {} are not valid; run `keyward validate`", file.display())]
    StateSettings { file: PathBuf },
    #[error("{} exists; import never overwrites a file", path.display())]
    WouldOverwrite { path: PathBuf },
    /// What import would write does not validate with the configuration (for example two live
    /// accounts whose userNames differ only in case); nothing was written.
    #[error("import would write a configuration that does not validate ({tally}): {first}; nothing was written")]
    ImportInvalid { tally: String, first: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    #[error(transparent)]
    Explain(#[from] crate::explain::ExplainError),
    #[error(transparent)]
    Governance(#[from] super::governance::GovernanceError),
    #[error("cannot write YAML: {0}")]
    Yaml(String),
    /// A pinned role's snapshot of its contents cannot be used (see `engine::contents`).
    #[error("{}: {message}", path.display())]
    Snapshot { path: PathBuf, message: String },
}

impl From<super::contents::SnapshotError> for EngineError {
    fn from(e: super::contents::SnapshotError) -> Self {
        EngineError::Snapshot { path: e.path, message: e.message }
    }
}

impl EngineError {
    /// `EngineError::io("write", path)` turns a failed write to `path` into this error.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
        let path = path.into();
        move |source| EngineError::Io { action, path, source }
    }

    /// Whether a policy finding of severity deny caused it (exit code 3).
    pub fn is_denied(&self) -> bool {
        matches!(self, EngineError::Denied { .. })
    }
}

/// Why a saved plan cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a keyward plan: {source}", path.display())]
    NotAPlan {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} has plan format {found}, this keyward reads format {}", path.display(), crate::plan::FORMAT_VERSION)]
    Format { path: PathBuf, found: String },
    #[error("the configuration in {} changed since the plan was made; make a new plan", dir.display())]
    ConfigurationChanged { dir: PathBuf },
    #[error("the plan names target `{target}`, which the configuration does not define")]
    UnknownTarget { target: String },
    /// Changes that differ from a fresh plan's (address, action and which fields).
    #[error(
        "refusing the whole saved plan: it is stale or was edited; {} of its changes differ from what a fresh plan computes now:\n{}\nmake a new plan",
        stale.len(),
        stale.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n")
    )]
    Stale { stale: Vec<String> },
    /// The changes do not match the digest the plan was saved with.
    #[error(
        "{} was edited or damaged since it was saved: its changes do not match its digest; make a new plan",
        path.display()
    )]
    Damaged { path: PathBuf },
    #[error("{} has no digest of its changes; save plans with `keyward plan --out`", path.display())]
    NoDigest { path: PathBuf },
    #[error("{} is not signed with KEYWARD_PLAN_KEY: it was not written by a plan job holding that key", path.display())]
    BadSignature { path: PathBuf },
    #[error(
        "{} was planned without reading target{} {} (connection settings changed); make a new plan after merge",
        path.display(),
        if targets.len() == 1 { "" } else { "s" },
        targets.join(", ")
    )]
    Offline { path: PathBuf, targets: Vec<String> },
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n")
}
