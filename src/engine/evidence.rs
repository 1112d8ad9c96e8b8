//! Evidence for auditors: everything `explain` and `report` are made from (configuration, git
//! history, the audit log through the state store, live state, drift told apart from pending
//! changes, findings), gathered here and handed to the pure [`crate::explain`] and
//! [`crate::report`].
//!
//! Guarantees: targets are only read (never written); a target that cannot be read is not an
//! error, the evidence says the live state is unknown and why; drift is what the configuration
//! at the last applied commit asks for too, everything else is pending.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::read::{self, Read};
use super::store::Store;
use super::{Clock, Config, EngineError, Observer};
use crate::audit::{self, Record, VerifyReport};
use crate::history::{self, History, HistoryOptions};
use crate::model::{DesiredState, LiveTarget, Name, Timestamp, UndeliveredCredential};
use crate::plan::{self, Change};
use crate::policy::Finding;
use crate::provider::handle::Reading;
use crate::remote::RetryPolicy;

/// What `explain` and `report` need.
#[derive(Debug, Clone)]
pub struct EvidenceSettings {
    pub dir: PathBuf,
    pub clock: Clock,
    pub retry: RetryPolicy,
    /// Read only these targets (all when empty).
    pub targets: Vec<String>,
    /// Do not read the live targets: configuration, git and the audit log only.
    pub offline: bool,
}

/// Everything `explain` and `report` are made from.
pub struct Evidence {
    pub config: Config,
    pub now: Timestamp,
    pub head: Option<audit::provenance::Head>,
    pub remote: Option<String>,
    pub history: History,
    pub records: Vec<Record>,
    pub verify: VerifyReport,
    pub audit_path: String,
    /// The live state, or why it was not read.
    pub live: Result<BTreeMap<Name, LiveTarget>, String>,
    /// The changes a plan makes now, drift told apart from what git asks for.
    pub changes: Vec<Change>,
    pub findings: Vec<Finding>,
    pub undelivered: Vec<UndeliveredCredential>,
    /// The evidence of the closed certification campaigns, with each file's path.
    pub certifications: Vec<(String, crate::governance::campaign::EvidenceFile)>,
}

impl Evidence {
    /// HEAD's id, with `-dirty` when the folder has uncommitted changes.
    pub fn commit(&self) -> Option<String> {
        self.head.as_ref().map(|h| format!("{}{}", h.id, if h.dirty { "-dirty" } else { "" }))
    }
}

/// What the state holds for a report: the audit records, the chain's verification (against the
/// head the last apply recorded, when there is one), where the log is, and the commit last
/// applied (the latest of the targets' last applies; else the last applied audit record's).
struct StateFacts {
    records: Vec<Record>,
    verify: VerifyReport,
    location: String,
    applied_commit: Option<String>,
}

async fn read_state(state: &DesiredState, dir: &Path) -> Result<StateFacts, EngineError> {
    use crate::state::{self, documents, trail};
    let store = state::open(&state.settings, dir)?;
    // Attempts whose outcome is recorded are shown by their outcome.
    let records = audit::paired(&trail::records(&*store).await?);
    let head = documents::read::<state::AuditHead>(&*store).await?.value.head;
    let (mut verify, check) = trail::verify(&*store, head.as_ref()).await?;
    match check {
        trail::HeadCheck::EndsBefore { records } => verify.problems.push(audit::Problem {
            line: records as usize + 1,
            message: "the log ends before the head the last apply recorded: records were cut off".into(),
        }),
        trail::HeadCheck::Differs { .. } => verify.problems.push(audit::Problem {
            line: head.as_ref().map_or(0, |h| h.records as usize),
            message: "the record the last apply recorded as the head has another hash: the log was rewritten".into(),
        }),
        // `verify` with a head never answers `Missing` (that is `verify_hash`'s).
        trail::HeadCheck::NotAsked | trail::HeadCheck::Reached | trail::HeadCheck::Missing => {}
    }
    let applied = documents::read::<documents::Applied>(&*store).await?.value;
    let applied_commit = applied
        .targets
        .values()
        .filter(|t| t.commit.is_some())
        .max_by_key(|t| t.at)
        .and_then(|t| t.commit.clone())
        .or_else(|| {
            records
                .iter()
                .rev()
                .filter(|r| r.entry.outcome == audit::Outcome::Applied)
                .find_map(|r| r.entry.commit.clone())
        });
    let location = match state.settings.state {
        crate::model::config::StateSettings::Local => state.settings.audit_path.clone(),
        _ => store.location(),
    };
    Ok(StateFacts { records, verify, location, applied_commit })
}

/// The configuration at the commit last applied, the state the live targets were last brought
/// to: differences it asked for too are drift, the rest pending.
pub(super) fn baseline(dir: &Path, commit: Option<&str>, observer: &dyn Observer) -> Option<DesiredState> {
    let commit = commit?.trim_end_matches("-dirty").to_string();
    let loaded = match crate::load::load_revision(dir, &commit) {
        Ok(l) => l,
        Err(e) => {
            observer.warning(&format!("cannot read the last applied commit {commit}: {e}; drift is not told apart"));
            return None;
        }
    };
    crate::validate::validate(&loaded).state
}

/// Loads the configuration and, unless `offline`, reads the targets; gathers the rest.
pub async fn gather(settings: &EvidenceSettings, observer: &dyn Observer) -> Result<Evidence, EngineError> {
    let dir = settings.dir.as_path();
    let now = settings.clock.now;
    let (config, read) = if settings.offline {
        let config = super::config::load(dir, observer)?;
        super::config::select_targets(&config.state().settings, &settings.targets)?;
        (config, None)
    } else {
        let (config, read) = read::load_and_read::<Reading>(dir, &settings.targets, settings.retry, observer).await?;
        (config, Some(read))
    };
    let state = config.state();
    let StateFacts { records, verify, location: audit_path, applied_commit } = read_state(state, dir).await?;
    let store = Store::open(state, dir)?;
    let undelivered = store.undelivered().await?;
    let mut pinned = crate::model::Snapshots::new();
    let (live, changes, plan) = match read {
        Some(Ok(Read { names, mut open, mut live })) => {
            super::applied::add_unkept(&store, &mut live).await?;
            // Role contents as plan reads them, so SoD is checked against live privileges.
            pinned = super::contents::prepare(state, dir, &mut open.sessions, &mut live).await?;
            let base = baseline(dir, applied_commit.as_deref(), observer);
            let mut changes =
                super::plan::compute(state, &live, &open.capabilities, now, base.as_ref(), &undelivered, base.as_ref())
                    .map_err(|errors| EngineError::Plan { errors })?;
            open.attribute(&mut changes).await;
            let mut plan = plan::assemble(changes.clone(), config.reference(dir), names, now);
            plan.notices = plan::notices(state, &live, &open.capabilities);
            (Ok(live), changes, Some(plan))
        }
        Some(Err(e)) => {
            observer.warning(&format!("the live targets were not read: {e}"));
            (Err(e.to_string()), Vec::new(), None)
        }
        None => (Err("--offline".to_string()), Vec::new(), None),
    };
    let live_state =
        live.as_ref().ok().map(|targets| super::policy::Live { targets, undelivered: &undelivered, pinned: &pinned });
    let findings = super::policy::evaluate_config(&config, plan.as_ref(), live_state, now);
    let history = history::history(dir, HistoryOptions::default())?;
    let certifications = super::governance::closed_campaigns(state, dir, observer);
    Ok(Evidence {
        head: history::head(dir),
        remote: history::remote_url(dir),
        config,
        now,
        history,
        records,
        verify,
        audit_path,
        live,
        changes,
        findings,
        undelivered,
        certifications,
    })
}

/// Why one person has each access (`keyward explain USER`), from gathered evidence.
pub fn explain(
    ev: &Evidence,
    dir: &Path,
    who: &str,
    targets: &[String],
) -> Result<crate::explain::Explanation, EngineError> {
    let state = ev.config.state();
    // The holder is checked before blame is gathered, so a typo fails fast.
    crate::explain::find_holder(state, who)?;
    let validated = &ev.config.validated;
    let mut blame: BTreeMap<(PathBuf, u32), history::CommitInfo> = BTreeMap::new();
    let mut by_file: BTreeMap<PathBuf, Vec<u32>> = BTreeMap::new();
    for (file, line) in crate::explain::lines_to_blame(state, &ev.config.loaded, &validated.origins, who) {
        by_file.entry(file).or_default().push(line);
    }
    for (file, lines) in by_file {
        for (line, c) in history::blame(dir, &file, &lines)? {
            blame.insert((file.clone(), line), c);
        }
    }
    let names: Vec<Name> =
        if targets.is_empty() { Vec::new() } else { super::config::select_targets(&state.settings, targets)? };
    Ok(crate::explain::explain(&crate::explain::ExplainInput {
        desired: state,
        loaded: &ev.config.loaded,
        origins: &validated.origins,
        who,
        targets: &names,
        history: &ev.history,
        blame: &blame,
        records: &ev.records,
        live: ev.live.as_ref().ok(),
        drift: &ev.changes,
        findings: &ev.findings,
        dirty: ev.head.as_ref().is_some_and(|h| h.dirty),
        now: ev.now,
    })?)
}

/// The report of gathered evidence.
pub fn report(ev: &Evidence, dir: &Path, since: Option<crate::model::Date>) -> crate::report::Report {
    let title = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    let commit = ev.commit();
    crate::report::build(&crate::report::ReportInput {
        title: &title,
        desired: ev.config.state(),
        loaded: &ev.config.loaded,
        origins: &ev.config.validated.origins,
        commit: commit.as_deref(),
        history: &ev.history,
        remote: ev.remote.as_deref(),
        records: &ev.records,
        verify: &ev.verify,
        audit_path: &ev.audit_path,
        live: ev.live.as_ref().map_err(String::as_str),
        changes: &ev.changes,
        findings: &ev.findings,
        undelivered: &ev.undelivered,
        since,
        now: ev.now,
        certifications: &ev.certifications,
    })
}

/// The report page `keyward watch` serves at `/`, from the check it just made: its live state,
/// drift and findings, with the configuration's git history and audit log read afresh.
pub async fn watch_page(
    config: Config,
    dir: &Path,
    clock: Clock,
    checked: super::drift::Checked,
) -> Result<String, EngineError> {
    let state = config.state();
    let StateFacts { records, verify, location: audit_path, .. } = read_state(state, dir).await?;
    let ev = Evidence {
        now: clock.now,
        head: history::head(dir),
        remote: history::remote_url(dir),
        history: history::history(dir, HistoryOptions::default())?,
        records,
        verify,
        audit_path,
        undelivered: Store::open(state, dir)?.undelivered().await?,
        live: Ok(checked.live),
        changes: checked.plan.changes.into_iter().chain(checked.pending).collect(),
        findings: checked.findings,
        certifications: super::governance::closed_campaigns(state, dir, &super::Quiet),
        config,
    };
    Ok(crate::report::html::render(&report(&ev, dir, None)))
}
