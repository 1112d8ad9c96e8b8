//! The state: what keyward remembers between runs, on whatever machine runs it. The audit log,
//! the lock, the last applied commit per target, the audit chain's head, and the credentials
//! issued but not delivered.
//!
//! One interface, [`StateStore`], with one implementation per backend ([`local`]: files beside
//! the configuration; [`azureblob`]: a container in Azure Blob Storage). Everything above it
//! ([`trail`] for the audit records, [`lock`] for the run lock, [`documents`] for the small
//! documents) is written against the trait only and never asks which backend it talks to; an S3
//! or GCS backend is one more implementation of the same primitives (S3 and GCS both have
//! conditional writes; S3 has no append, so its log would be one object per block, named by
//! position, created with `If-None-Match: *`).
//!
//! Guarantees every backend gives:
//! - the audit log is append-only: [`StateStore::log_append`] writes at the position the caller
//!   read, or not at all, so two writers can never fork the hash chain; an append whose answer
//!   was lost reports [`StateError::is_outcome_unknown`], and [`trail`] then reads the log at
//!   that position to learn whether it landed before trying again, so no record is written twice;
//! - documents are replaced whole and only if they are still at the version read
//!   ([`Expect`]): a crash at any point leaves the old document or the new one, never a torn one;
//! - the lock has one holder at a time; a holder that dies frees it (at once for `local`, when
//!   its lease expires for `azureblob`, at most 60 s);
//! - nothing here holds or prints a secret: errors carry the service's error code and request id,
//!   never a key, a SAS or a token.

pub mod azureblob;
pub mod documents;
pub mod local;
pub mod lock;
pub mod trail;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::Timestamp;
use crate::model::config::{Settings, StateSettings};

pub use documents::{ApplyStatus, AuditHead, TargetRecord};
pub use lock::{LockGuard, LockOptions};
pub use trail::AuditTrail;

/// The documents a state holds, each replaced whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocName {
    /// The last apply per target ([`documents::Applied`]).
    Applied,
    /// The audit chain's head as the last writer left it ([`documents::AuditHead`]).
    AuditHead,
    /// Credentials issued but not delivered (the format of `credential::state`).
    Undelivered,
    /// Per target, the live state `keyward drift` built and its change feed's cursor
    /// ([`documents::FeedStates`]).
    Feeds,
}

impl DocName {
    pub const ALL: [DocName; 4] = [DocName::Applied, DocName::AuditHead, DocName::Undelivered, DocName::Feeds];

    /// The document's file (or blob) name.
    pub fn file_name(self) -> &'static str {
        match self {
            DocName::Applied => "applied.json",
            DocName::AuditHead => "audit-head.json",
            DocName::Undelivered => "undelivered.json",
            DocName::Feeds => "feeds.json",
        }
    }
}

/// A document's version: an ETag, or a digest of its content. Opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version(pub String);

/// A document as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub bytes: Vec<u8>,
    pub version: Version,
}

/// The condition a document write carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The document does not exist yet (`If-None-Match: *`).
    Absent,
    /// The document is still at this version (`If-Match`).
    Version(Version),
}

/// A lock's id: what `keyward state unlock ID` takes. A random GUID (a lease id, for
/// `azureblob`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LockId(pub String);

impl LockId {
    pub fn random() -> Result<LockId, StateError> {
        crate::remote::entra::random_guid().map(LockId).map_err(|e| StateError::Config(e.to_string()))
    }
}

impl fmt::Display for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who holds the lock, shown to whoever waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockHolder {
    pub id: LockId,
    pub actor: String,
    pub host: String,
    /// The CI run (GitHub Actions run id, pipeline id), or a random id.
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub since: Timestamp,
    /// The holding process, where the backend can tell (local).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl LockHolder {
    /// A holder for this process: the audit actor, this host, the CI run id (or a random id),
    /// `commit`, since now.
    pub fn current(commit: Option<String>) -> Result<LockHolder, StateError> {
        let id = LockId::random()?;
        let run_id = ["GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILD_BUILDID", "BUILD_ID"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
            .map(|run| match std::env::var("GITHUB_RUN_ATTEMPT") {
                Ok(attempt) if !attempt.is_empty() => format!("{run}.{attempt}"),
                _ => run,
            })
            .unwrap_or_else(|| id.0.clone());
        Ok(LockHolder {
            id,
            actor: crate::audit::actor(),
            host: hostname(),
            run_id,
            commit,
            since: chrono::Utc::now(),
            pid: Some(std::process::id()),
        })
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} (run {}", self.actor, self.host, self.run_id)?;
        if let Some(c) = &self.commit {
            write!(f, ", commit {}", c.get(..12).unwrap_or(c))?;
        }
        if let Some(pid) = self.pid {
            write!(f, ", process {pid}")?;
        }
        write!(f, ") since {}, lock id {}", self.since.format("%Y-%m-%d %H:%M:%S UTC"), self.id)
    }
}

/// This machine's name, for lock holders.
pub fn hostname() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    from_kernel
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// What one attempt to take the lock found.
#[derive(Debug)]
pub enum TryLock {
    Acquired,
    /// Someone else holds it; who, when the backend could tell.
    Held(Option<LockHolder>),
}

/// Whether the lock is held, and by whom when the backend could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockStatus {
    Free,
    Held(Option<LockHolder>),
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state: {0}")]
    Config(String),
    #[error("state: cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The service answered with an error.
    #[error("{}", service_message(.location, .operation, *.status, .code.as_deref(), .request_id.as_deref(), .message))]
    Service {
        location: String,
        operation: &'static str,
        status: u16,
        /// `x-ms-error-code` (or the body's `Code`).
        code: Option<String>,
        /// `x-ms-request-id`, for the service's support.
        request_id: Option<String>,
        /// The service's message (first line), when it sent one.
        message: Option<String>,
    },
    /// The request may or may not have been carried out: no answer came back.
    #[error("{location}: {operation}: no answer ({message}); it may or may not have been carried out")]
    NoAnswer { location: String, operation: &'static str, message: String },
    #[error("{location}: {operation}: cannot reach the service: {message}")]
    Unreachable { location: String, operation: &'static str, message: String },
    /// A conditional write found the log or document changed since it was read.
    #[error("{what} changed since it was read (another keyward wrote it)")]
    Conflict { what: String },
    #[error("{location}: cannot get an access token: {message}")]
    Auth { location: String, message: String },
    #[error("{}", locked_message(.location, .holder.as_deref(), *.waited))]
    Locked { location: String, holder: Option<Box<LockHolder>>, waited: Duration },
    /// The lock was lost while held (its lease expired unrenewed, or it was broken).
    #[error("the state lock {id} at {location} was lost: {message}")]
    LockLost { location: String, id: LockId, message: String },
    #[error("{location}: no lock with id {id} is held{}", .holder.as_ref().map(|h| format!("; the lock is held by {h}")).unwrap_or_default())]
    NotLocked { location: String, id: LockId, holder: Option<Box<LockHolder>> },
    /// The lock cannot be broken from here (a local lock held by a running process).
    #[error("{location}: {message}")]
    Unbreakable { location: String, message: String },
    #[error("{what} is damaged at line {line}: {message}; run `keyward audit verify`")]
    Damaged { what: String, line: usize, message: String },
    #[error("{what} is not a valid state document: {message}")]
    Corrupt { what: String, message: String },
    #[error("{what}: {message}")]
    TooLarge { what: String, message: String },
}

fn service_message(
    location: &str,
    operation: &str,
    status: u16,
    code: Option<&str>,
    request_id: Option<&str>,
    message: &Option<String>,
) -> String {
    let mut s = format!("{location}: {operation} refused: {}", crate::remote::http::status_line(status));
    if let Some(c) = code {
        s.push_str(", ");
        s.push_str(c);
    }
    if let Some(m) = message {
        s.push_str(": ");
        s.push_str(m);
    }
    if let Some(id) = request_id {
        s.push_str(&format!(" (request id {id})"));
    }
    s
}

fn locked_message(location: &str, holder: Option<&LockHolder>, waited: Duration) -> String {
    let who = match holder {
        Some(h) => format!("held by {h}"),
        None => "held by another keyward (its holder is not recorded)".into(),
    };
    let waited = if waited.as_secs() == 0 { String::new() } else { format!(" after waiting {}s", waited.as_secs()) };
    format!(
        "the state at {location} is locked{waited}: {who}; wait for that run to end, or if it died, \
         `keyward state unlock ID` with the lock id"
    )
}

impl StateError {
    /// The service may have carried out the request although no success came back: a lost
    /// answer, or a server error that does not say whether it acted.
    pub fn is_outcome_unknown(&self) -> bool {
        match self {
            StateError::NoAnswer { .. } => true,
            StateError::Service { status, .. } => matches!(status, 408 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, StateError::Conflict { .. })
    }
}

/// A state backend: the audit log as bytes, the lock, and small documents.
///
/// Every method is one attempt (with the transport's bounded retries); the modules above add
/// waiting, idempotent retry and chaining.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// Where the state lives, for messages (`local /path/.keyward`, or the container's URL and
    /// prefix). Never a secret.
    fn location(&self) -> String;

    /// Where the audit log is, for messages (a file's path, a blob's URL). Never a secret.
    fn log_location(&self) -> String {
        self.location()
    }

    /// Whether the log ends in a partial line that is not part of it: an append a crash
    /// interrupted (only where appends are not atomic; the next append removes it).
    async fn log_torn_tail(&self) -> Result<bool, StateError> {
        Ok(false)
    }

    /// The final line of the log when it lacks its newline, with where it starts (the log's
    /// length as [`StateStore::log_len`] gives it); `None` when the log ends in a newline or is
    /// missing. Only where appends are not atomic (local files) can there be one.
    async fn log_tail(&self) -> Result<Option<(u64, Vec<u8>)>, StateError> {
        Ok(None)
    }

    /// Replaces the final line `tail`, which starts at `at` and lacks its newline, by `bytes`
    /// (whole records, each ending in a newline), if, and only if, the log still ends in exactly
    /// that; returns the new length. When `bytes` begins with `tail`, only the rest is written,
    /// so a crash never loses `tail`. [`StateError::Conflict`] when the log changed.
    async fn log_replace_tail(&self, at: u64, tail: &[u8], bytes: &[u8]) -> Result<u64, StateError> {
        let _ = (at, tail, bytes);
        Err(StateError::Config(format!("{}: the audit log has no unfinished final line to replace", self.location())))
    }

    /// The audit log's length in bytes: everything up to the end of its last complete record.
    /// A missing log is empty.
    async fn log_len(&self) -> Result<u64, StateError>;

    /// Up to `max` bytes of the log from byte `from` (fewer at its end, none past it).
    async fn log_read(&self, from: u64, max: u64) -> Result<Vec<u8>, StateError>;

    /// Appends `bytes` (whole records, each ending in a newline) if, and only if, the log is
    /// `at` bytes long; returns the new length. [`StateError::Conflict`] when the log is not at
    /// `at`; an error with [`StateError::is_outcome_unknown`] when the append may have landed.
    async fn log_append(&self, at: u64, bytes: &[u8]) -> Result<u64, StateError>;

    /// One attempt to take the lock for `holder` with a lease of `lease` (15 to 60 s; backends
    /// whose locks die with their holder ignore it).
    async fn lock_try(&self, holder: &LockHolder, lease: Duration) -> Result<TryLock, StateError>;

    /// Renews the lock `id` held by this process. [`StateError::LockLost`] if it is no longer
    /// held.
    async fn lock_renew(&self, id: &LockId, lease: Duration) -> Result<(), StateError>;

    /// Releases the lock `id`; releasing a lock no longer held is not an error.
    async fn lock_release(&self, id: &LockId) -> Result<(), StateError>;

    /// Whether the lock is held now, and by whom.
    async fn lock_status(&self) -> Result<LockStatus, StateError>;

    /// Breaks the lock `id` whoever holds it (`keyward state unlock ID`); returns the holder it
    /// broke. [`StateError::NotLocked`] if the lock is free or held under another id.
    async fn lock_break(&self, id: &LockId) -> Result<LockHolder, StateError>;

    /// A document and its version, or `None` when it does not exist.
    async fn doc_get(&self, name: DocName) -> Result<Option<Doc>, StateError>;

    /// Replaces a document whole if it is as `expect` says; returns its new version.
    /// [`StateError::Conflict`] when it is not.
    async fn doc_put(&self, name: DocName, bytes: &[u8], expect: &Expect) -> Result<Version, StateError>;
}

/// Waits before try number `attempt` (from 1) of an operation whose outcome was unknown: up to
/// 100 ms doubled per attempt (at most 6.4 s), with full jitter.
pub(crate) async fn backoff(attempt: u32) {
    let ceiling = Duration::from_millis(100).saturating_mul(1 << attempt.min(6));
    tokio::time::sleep(ceiling.mul_f64(crate::remote::http::jitter_unit())).await;
}

/// Opens the state that `settings` configure for the configuration folder `root`.
pub fn open(settings: &Settings, root: &Path) -> Result<Arc<dyn StateStore>, StateError> {
    match &settings.state {
        StateSettings::Local => Ok(Arc::new(local::LocalStore::new(root, Path::new(&settings.audit_path)))),
        StateSettings::AzureBlob(s) => {
            Ok(Arc::new(azureblob::AzureBlobStore::new(s, root, azureblob::Options::default())?))
        }
    }
}
