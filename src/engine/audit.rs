//! `audit verify`, `audit show` and `audit review`: the audit log, and the access review.

use std::path::PathBuf;

use super::read::{self, Read};
use super::store::Store;
use super::{Clock, EngineError, Observer};
use crate::audit::{self, Record, VerifyReport};
use crate::model::{ConfigFile, Date, Duration};
use crate::provider::handle::Reviewing;
use crate::remote::RetryPolicy;
use crate::review::{Review, ReviewInput};

/// Which audit log a command reads.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// The configuration folder (its keyward.yaml says where the log is).
    pub dir: PathBuf,
    /// This log instead of the configured one.
    pub log: Option<PathBuf>,
}

impl LogSettings {
    /// The log: the one named, or the one keyward.yaml names (even when the rest of the
    /// configuration does not validate), or the default.
    pub fn path(&self) -> PathBuf {
        if let Some(l) = &self.log {
            return l.clone();
        }
        let configured = std::fs::read_to_string(self.dir.join(crate::load::SETTINGS_FILE))
            .ok()
            .and_then(|t| serde_yaml::from_str::<ConfigFile>(&t).ok())
            .and_then(|c| c.audit.and_then(|a| a.path));
        self.dir.join(configured.unwrap_or_else(|| crate::validate::settings_audit_path().to_string()))
    }
}

/// Checks the log's hash chain.
pub fn verify(settings: &LogSettings) -> Result<(PathBuf, VerifyReport), EngineError> {
    let path = settings.path();
    if !path.exists() {
        return Err(EngineError::NoAuditLog { path });
    }
    let report = audit::verify(&path)?;
    Ok((path, report))
}

/// The log's records, the last `last` of them when given.
pub fn show(settings: &LogSettings, last: Option<usize>) -> Result<(PathBuf, Vec<Record>), EngineError> {
    let path = settings.path();
    let mut records = audit::read(&path)?;
    if let Some(n) = last {
        let skip = records.len().saturating_sub(n);
        records.drain(..skip);
    }
    Ok((path, records))
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
    let now = settings.clock.now;
    let undelivered = Store::open(state, dir)?.undelivered().await?;
    let live_state = super::policy::Live { targets: &live, undelivered: &undelivered };
    let findings = super::policy::evaluate_config(&config, None, Some(live_state), now);

    let path = settings.log.path();
    let mut records = if path.exists() { audit::read(&path)? } else { Vec::new() };
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
