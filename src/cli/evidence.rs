//! `keyward explain` and `keyward report`: gather the evidence (configuration, git history,
//! audit log, live state, drift, findings) and hand it to the pure `explain` and `report`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::session::{self, Config};
use super::{CliResult, Exit, ExplainArgs, ExplainFormat, Failure, ReportArgs, ReportFormat};
use crate::audit::{self, Record, VerifyReport};
use crate::history::{self, History, HistoryOptions};
use crate::model::{DesiredState, LiveTarget, Name, Timestamp, UndeliveredCredential};
use crate::output::{self, Printer};
use crate::plan::{self, Change};
use crate::policy::Finding;
use crate::provider::Access;

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

async fn read_state(state: &DesiredState, dir: &Path) -> Result<StateFacts, Failure> {
    use crate::state::{self, documents, trail};
    let store = state::open(&state.settings, dir)?;
    let records = trail::records(&*store).await?;
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
        trail::HeadCheck::NotAsked | trail::HeadCheck::Reached => {}
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
fn baseline(dir: &Path, commit: Option<&str>, printer: &Printer) -> Option<DesiredState> {
    let commit = commit?.trim_end_matches("-dirty").to_string();
    let loaded = match crate::load::load_revision(dir, &commit) {
        Ok(l) => l,
        Err(e) => {
            printer
                .err(&format!("warning: cannot read the last applied commit {commit}: {e}; drift is not told apart\n"));
            return None;
        }
    };
    crate::validate::validate(&loaded).state
}

/// Loads the configuration and, unless `offline`, reads the targets; gathers the rest.
pub async fn gather(dir: &Path, targets: &[String], offline: bool, printer: &Printer) -> Result<Evidence, Failure> {
    let now = session::now();
    let select = |s: &_| session::select_targets(s, targets);
    let (config, read) = if offline {
        let config = session::load_config(dir, printer)?;
        session::select_targets(&config.state().settings, targets)?;
        (config, Err(Failure::error("--offline")))
    } else {
        session::load_and_read(dir, printer, Access::Read, select).await?
    };
    let state = config.state();
    let StateFacts { records, verify, location: audit_path, applied_commit } = read_state(state, dir).await?;
    let undelivered = session::undelivered(state, dir)?;
    let (live, changes, plan) = match read {
        Ok(session::Read { names, mut open, live }) => {
            let base = baseline(dir, applied_commit.as_deref(), printer);
            let mut changes =
                session::compute_with_baseline(state, &live, &open.capabilities, now, base.as_ref(), &undelivered)?;
            session::attribute(&mut open, &mut changes).await;
            let plan = plan::assemble(changes.clone(), session::config_ref(&config, dir), names, now);
            (Ok(live), changes, Some(plan))
        }
        Err(f) => {
            if !offline {
                printer.err(&format!("warning: the live targets were not read: {}\n", f.message));
            }
            (Err(f.message), Vec::new(), None)
        }
    };
    let findings = super::policy::evaluate_config(&config, plan.as_ref(), live.as_ref().ok(), now);
    let history = history::history(dir, HistoryOptions::default())?;
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
    })
}

/// `keyward explain USER`.
pub async fn explain(args: ExplainArgs, printer: &Printer) -> CliResult {
    let ev = gather(&args.dir, &args.targets, args.offline, printer).await?;
    let state = ev.config.state();
    // The holder is checked before blame is gathered, so a typo fails fast.
    crate::explain::find_holder(state, &args.user).map_err(|e| Failure::error(e.to_string()))?;
    let validated = &ev.config.validated;
    let mut blame: BTreeMap<(PathBuf, u32), history::CommitInfo> = BTreeMap::new();
    let mut by_file: BTreeMap<PathBuf, Vec<u32>> = BTreeMap::new();
    for (file, line) in crate::explain::lines_to_blame(state, &ev.config.loaded, &validated.origins, &args.user) {
        by_file.entry(file).or_default().push(line);
    }
    for (file, lines) in by_file {
        for (line, c) in history::blame(&args.dir, &file, &lines)? {
            blame.insert((file.clone(), line), c);
        }
    }
    let names: Vec<Name> = session::select_targets(&state.settings, &args.targets)?;
    let names = if args.targets.is_empty() { Vec::new() } else { names };
    let e = crate::explain::explain(&crate::explain::ExplainInput {
        desired: state,
        loaded: &ev.config.loaded,
        origins: &validated.origins,
        who: &args.user,
        targets: &names,
        history: &ev.history,
        blame: &blame,
        records: &ev.records,
        live: ev.live.as_ref().ok(),
        drift: &ev.changes,
        findings: &ev.findings,
        dirty: ev.head.as_ref().is_some_and(|h| h.dirty),
        now: ev.now,
    })
    .map_err(|e| Failure::error(e.to_string()))?;
    printer.out(&match args.format {
        ExplainFormat::Text => output::explain::render_text(&e),
        ExplainFormat::Markdown => output::explain::render_markdown(&e),
        ExplainFormat::Json => output::explain::render_json(&e),
    });
    Ok(Exit::Success)
}

/// The report of gathered evidence.
pub fn build_report(ev: &Evidence, dir: &Path, since: Option<crate::model::Date>) -> crate::report::Report {
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
    })
}

/// `keyward report`.
pub async fn report(args: ReportArgs, printer: &Printer) -> CliResult {
    let ev = gather(&args.dir, &args.targets, args.offline, printer).await?;
    let report = build_report(&ev, &args.dir, args.since);
    let text = match args.format {
        ReportFormat::Html => crate::report::html::render(&report),
        ReportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report).expect("reports serialize")),
    };
    match &args.out {
        Some(out) => {
            super::plan::write_atomic(out, &text)?;
            printer.status(&format!("Wrote the report to {}", out.display()));
        }
        None => printer.out(&text),
    }
    Ok(Exit::Success)
}

/// The report page `keyward watch` serves at `/`, from the check it just made: its live state,
/// drift and findings, with the configuration's git history and audit log read afresh.
pub async fn watch_page(config: Config, dir: &Path, checked: super::drift::Checked) -> Result<String, Failure> {
    let state = config.state();
    let StateFacts { records, verify, location: audit_path, .. } = read_state(state, dir).await?;
    let ev = Evidence {
        now: checked.plan.created_at,
        head: history::head(dir),
        remote: history::remote_url(dir),
        history: history::history(dir, HistoryOptions::default())?,
        records,
        verify,
        audit_path,
        undelivered: session::undelivered(state, dir)?,
        live: Ok(checked.live),
        changes: checked.plan.changes,
        findings: checked.findings,
        config,
    };
    Ok(crate::report::html::render(&build_report(&ev, dir, None)))
}
