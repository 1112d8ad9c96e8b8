//! `audit verify`, `audit show` and `audit review`: the audit log, and the access review.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::read::{self, Read};
use super::store::Store;
use super::{Clock, EngineError, Observer};
use crate::audit::{Record, VerifyReport};
use crate::model::config::StateBackendKind;
use crate::model::{ConfigFile, Date, Duration};
use crate::provider::handle::Reviewing;
use crate::remote::RetryPolicy;
use crate::review::{Review, ReviewInput};
use crate::state::local::LocalStore;
use crate::state::trail::{self, ChainHead, HeadCheck};
use crate::state::{self, documents};

/// Which audit log a command reads.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// The configuration folder (its keyward.yaml says where the state is).
    pub dir: PathBuf,
    /// This local log file instead of the configured state.
    pub log: Option<PathBuf>,
}

impl LogSettings {
    /// The state holding the log: a local file when one is named; else the state `state:` in
    /// keyward.yaml selects, read from keyward.yaml alone (so the log can be read while the
    /// resources do not validate). When keyward.yaml cannot be read as settings, the local log
    /// it names (or the default one), unless it asks for another backend: then that is an error,
    /// never a silent read of a local file that is not the log.
    pub fn store(&self) -> Result<Store, EngineError> {
        if let Some(l) = &self.log {
            // A log named on the command line may be anywhere: its folder is the store's root.
            let folder = l.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let name = l.file_name().map(Path::new).unwrap_or(l);
            return Ok(Store::with_backend(Arc::new(LocalStore::new(folder, name))));
        }
        let file = self.dir.join(crate::load::SETTINGS_FILE);
        let Ok(bytes) = std::fs::read(&file) else {
            return Ok(Store::with_backend(Arc::new(local_default(&self.dir, None))));
        };
        let loaded =
            crate::load::load_files(&self.dir, vec![(PathBuf::from(crate::load::SETTINGS_FILE), bytes.clone())]);
        if let Some(settings) = loaded.ok().as_ref().and_then(crate::validate::settings_of) {
            return Ok(Store::with_backend(state::open(&settings, &self.dir)?));
        }
        let raw = serde_yaml::from_slice::<ConfigFile>(&bytes).ok();
        let remote = raw.as_ref().and_then(|c| c.state.as_ref()).is_some_and(|s| s.backend != StateBackendKind::Local);
        if remote {
            return Err(EngineError::StateSettings { file });
        }
        let path = raw.and_then(|c| c.audit.and_then(|a| a.path));
        Ok(Store::with_backend(Arc::new(local_default(&self.dir, path))))
    }
}

fn local_default(dir: &Path, audit_path: Option<String>) -> LocalStore {
    let path = audit_path.unwrap_or_else(|| crate::validate::settings_audit_path().to_string());
    LocalStore::new(dir, Path::new(&path))
}

/// The head `audit verify --expect-head` asks the log to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHead {
    pub hash: String,
    /// The head's record count, when known (`--expect-records`).
    pub records: Option<u64>,
}

/// What `audit verify` found.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Where the log is (a path, or a blob's URL).
    pub location: String,
    pub report: VerifyReport,
    /// Against the head asked for, else against the head the last apply recorded in the state.
    pub check: HeadCheck,
    /// The head checked against, and whether it was the one asked for.
    pub against: Option<(ChainHead, bool)>,
}

impl Verified {
    /// The chain is intact and reaches the head checked against.
    pub fn is_ok(&self) -> bool {
        self.report.is_intact() && matches!(self.check, HeadCheck::NotAsked | HeadCheck::Reached)
    }
}

/// Checks the log's hash chain, and that it reaches `expect` (else the head the last apply
/// recorded in the state, so a cut-off tail is found without being asked).
pub async fn verify(settings: &LogSettings, expect: Option<&ExpectedHead>) -> Result<Verified, EngineError> {
    let store = settings.store()?;
    let backend = &**store.backend();
    let location = backend.log_location();
    // The recorded head first: read after the log, it could name records appended meanwhile.
    let recorded = if settings.log.is_none() && expect.is_none() {
        documents::read::<documents::AuditHead>(backend).await?.value.head
    } else {
        None
    };
    // An empty (or missing) log is an error only when nothing says it held records: against
    // the head the last apply recorded, or one asked for, it is a log whose records were cut off.
    let anchored = expect.is_some() || recorded.as_ref().is_some_and(|h| h.records > 0);
    if !anchored && backend.log_len().await? == 0 && !backend.log_torn_tail().await? {
        return Err(EngineError::NoAuditLog { location });
    }
    let (mut report, check, against) = match expect {
        Some(ExpectedHead { hash, records: Some(n) }) => {
            let head = ChainHead { records: *n, hash: hash.clone() };
            let (r, c) = trail::verify(backend, Some(&head)).await?;
            (r, c, Some((head, true)))
        }
        Some(ExpectedHead { hash, records: None }) => {
            let (r, c) = trail::verify_hash(backend, hash).await?;
            (r, c, Some((ChainHead { records: 0, hash: hash.clone() }, true)))
        }
        None => {
            let (r, c) = trail::verify(backend, recorded.as_ref()).await?;
            (r, c, recorded.map(|h| (h, false)))
        }
    };
    report.torn_tail = backend.log_torn_tail().await?;
    Ok(Verified { location, report, check, against })
}

/// What `audit show` shows.
#[derive(Debug, Clone)]
pub struct Shown {
    /// Where the log is (a path, or a blob's URL).
    pub location: String,
    /// The records as stored (the last N when asked).
    pub records: Vec<Record>,
    /// The records with attempts paired with their outcomes (see [`crate::audit::paired`]):
    /// an attempt is left only when no outcome follows it (the last N when asked).
    pub paired: Vec<Record>,
}

/// The log's records, the last `last` of them when given, and where the log is.
pub async fn show(settings: &LogSettings, last: Option<usize>) -> Result<Shown, EngineError> {
    let store = settings.store()?;
    let mut records = store.audit_records().await?;
    let mut paired = crate::audit::paired(&records);
    if let Some(n) = last {
        for list in [&mut records, &mut paired] {
            let skip = list.len().saturating_sub(n);
            list.drain(..skip);
        }
    }
    Ok(Shown { location: store.backend().log_location(), records, paired })
}

/// What `audit review` needs.
#[derive(Debug, Clone)]
pub struct ReviewSettings {
    pub log: LogSettings,
    pub clock: Clock,
    /// How requests to the targets are retried.
    pub retry: RetryPolicy,
    /// Review only these targets (all when empty).
    pub targets: Vec<String>,
    /// Report what expires within this long.
    pub within: Duration,
    /// Show the last N records (20 unless `since` is given).
    pub last: Option<usize>,
    /// Show the records since this date.
    pub since: Option<Date>,
}

/// The access review: reads the configuration, the live targets (with the facts only a review
/// needs) and their role history, and the audit log.
pub async fn review(settings: &ReviewSettings, observer: &dyn Observer) -> Result<Review, EngineError> {
    let dir = &settings.log.dir;
    let (config, read) = read::load_and_read::<Reviewing>(dir, &settings.targets, settings.retry, observer).await?;
    let Read { mut open, mut live, .. } = read?;
    let state = config.state();
    for (name, p) in open.sessions.iter_mut() {
        if let Some(lt) = live.get_mut(name) {
            lt.history = p.role_history().await?;
        }
    }
    // Role contents as plan reads them, so SoD is checked against live privileges and duties.
    let pinned = super::contents::prepare(state, dir, &mut open.sessions, &mut live).await?;
    let now = settings.clock.now;
    let undelivered = Store::open(state, dir)?.undelivered().await?;
    let live_state = super::policy::Live { targets: &live, undelivered: &undelivered, pinned: &pinned };
    let findings = super::policy::evaluate_config(&config, None, Some(live_state), now);

    // The log of the state the configuration selects (or the file named instead).
    let mut records = crate::audit::paired(&settings.log.store()?.audit_records().await?);
    if let Some(since) = settings.since {
        let start = since.0.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        records.retain(|r| r.entry.time >= start);
    }
    if let Some(n) = settings.last.or(if settings.since.is_some() { None } else { Some(20) }) {
        let skip = records.len().saturating_sub(n);
        records.drain(..skip);
    }
    Ok(crate::review::review(&ReviewInput {
        desired: state,
        live: &live,
        findings: &findings,
        records: &records,
        now,
        within: settings.within,
        undelivered: &undelivered,
    }))
}
