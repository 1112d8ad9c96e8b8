//! `plan`: what would change, optionally split against a git base revision.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::policy::Live;
use super::read::{self, Read};
use super::store::Store;
use super::{Clock, Config, EngineError, Observer};
use crate::model::{Capabilities, DesiredState, LiveTarget, Name, Timestamp, UndeliveredCredential};
use crate::plan::{self, Change, Plan, PlanError, PlanInput};
use crate::policy::Finding;
use crate::provider::handle::Reading;
use crate::remote::RetryPolicy;

/// What `plan` needs.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    pub dir: PathBuf,
    pub clock: Clock,
    /// How requests to the targets are retried.
    pub retry: RetryPolicy,
    /// Plan only these targets (all when empty).
    pub targets: Vec<String>,
    /// Split the plan against this git revision (see [`split`]).
    pub base: Option<String>,
}

/// A plan, with what it was computed from and the policy findings over it.
pub struct Planned {
    pub config: Config,
    pub plan: Plan,
    pub live: BTreeMap<Name, LiveTarget>,
    pub findings: Vec<Finding>,
}

/// Loads, validates, reads, plans (splitting against the base revision when asked) and
/// evaluates the policies.
pub async fn plan(settings: &PlanSettings, observer: &dyn Observer) -> Result<Planned, EngineError> {
    // The base revision comes first: under it, how keyward connects is the base's to say.
    let base = match &settings.base {
        Some(rev) => Some((super::config::load_base(&settings.dir, rev, observer)?, rev.as_str())),
        None => None,
    };
    let base = base.as_ref().map(|(config, rev)| (config, *rev));
    let connect = base.map(|(b, _)| &b.state().settings);
    let (config, read) =
        read::load_and_read_against::<Reading>(&settings.dir, connect, &settings.targets, settings.retry, observer)
            .await?;
    if let Some((base, _)) = base {
        confine_secrets(&config, base, &settings.dir, observer)?;
    }
    let (mut read, offline) = read?;
    refuse_members_decided(&config, &read.live, &read.open.capabilities, &settings.dir, observer)?;
    let pinned =
        super::contents::prepare(config.state(), &settings.dir, &mut read.open.sessions, &mut read.live).await?;
    let store = Store::open(base.map_or(config.state(), |(b, _)| b.state()), &settings.dir)?;
    super::applied::add_unkept(&store, &mut read.live).await?;
    let undelivered = store.undelivered().await?;
    let applied = match base {
        Some(_) => None,
        None => last_applied(config.state(), &settings.dir, observer).await?,
    };
    let (mut plan, live) =
        make(&config, base, applied.as_ref(), &settings.dir, settings.clock, read, &undelivered).await?;
    plan.notices.splice(0..0, offline.iter().map(plan::Notice::connection_changed));
    let live_state = Live { targets: &live, undelivered: &undelivered, pinned: &pinned };
    let findings = super::policy::evaluate_config(&config, Some(&plan), Some(live_state), plan.created_at);
    Ok(Planned { config, plan, live, findings })
}

/// Under a base revision, the working tree may use only the secret references the base's
/// `secrets:` list allows (or, when the base has none, the references the base already uses);
/// a list the working tree widens is not looked at. Anything else is a validation error at its
/// line, reported to `observer`.
fn confine_secrets(config: &Config, base: &Config, dir: &Path, observer: &dyn Observer) -> Result<(), EngineError> {
    let uses = &config.validated.secret_uses;
    let diagnostics = match &base.state().settings.secrets {
        Some(allowed) => crate::validate::check_secrets(uses, allowed, "the base revision's"),
        None => crate::validate::check_secrets_against_uses(uses, &base.validated.secret_uses),
    };
    if diagnostics.is_empty() {
        return Ok(());
    }
    observer.diagnostics(&diagnostics, &config.loaded);
    Err(EngineError::Invalid { dir: dir.to_path_buf(), tally: crate::output::diagnostics::tally(&diagnostics) })
}

/// Refuses, at the YAML line and before anything is planned, role bindings whose members the
/// targets read report something else decides (dynamic groups, groups synchronized from
/// on-premises), and service accounts' client ids that are not their own app registration's
/// (see `crate::validate::application_ids`), as validation errors.
pub(super) fn refuse_members_decided(
    config: &Config,
    live: &BTreeMap<Name, LiveTarget>,
    caps: &BTreeMap<Name, Capabilities>,
    dir: &Path,
    observer: &dyn Observer,
) -> Result<(), EngineError> {
    let (state, origins, loaded) = (config.state(), &config.validated.origins, &config.loaded);
    let mut diagnostics = crate::validate::members_decided(state, origins, loaded, live, caps);
    diagnostics.extend(crate::validate::application_ids(state, origins, loaded, live, caps));
    if diagnostics.is_empty() {
        return Ok(());
    }
    observer.diagnostics(&diagnostics, &config.loaded);
    Err(EngineError::Invalid { dir: dir.to_path_buf(), tally: crate::output::diagnostics::tally(&diagnostics) })
}

/// The rule id under which SARIF output carries a plan's notices of `code`: `plan.CODE`.
pub fn notice_rule(code: &str) -> String {
    format!("plan.{code}")
}

/// The plan's notices as warnings on the line of keyward.yaml they concern, for SARIF (which
/// carries findings only).
pub fn notice_findings(config: &Config, plan: &Plan) -> Vec<Finding> {
    let loaded = &config.loaded;
    let doc = loaded.settings.first();
    plan.notices
        .iter()
        .map(|n| {
            let location = doc.and_then(|doc| {
                let path = ["targets".into(), n.target.as_str().into()];
                let (line, column) = crate::load::locate(loaded.text(doc), &path)?;
                Some(crate::validate::Location {
                    file: loaded.path(doc).to_path_buf(),
                    line: doc.start_line + line - 1,
                    column,
                })
            });
            Finding::new(
                &notice_rule(&n.code),
                crate::model::Severity::Warn,
                format!("target.{}", n.target),
                n.message.clone(),
            )
            .at(location)
        })
        .collect()
}

/// Plans `dir` against targets already read, returning the live state the plan was computed
/// from too. Drift changes are attributed where the target can tell who made them.
///
/// With a base revision, the plan is split: a change that the base revision's own plan (live
/// against the base's desired state) holds too, with the same address, action and values, is
/// drift already present; every other is a change the revision since `base` asks for.
///
/// What keyward managed before (see [`PlanInput::previous`]) is the base revision, else
/// `applied`, the configuration last applied.
pub async fn make(
    config: &Config,
    base: Option<(&Config, &str)>,
    applied: Option<&DesiredState>,
    dir: &Path,
    clock: Clock,
    read: Read<Reading>,
    undelivered: &[UndeliveredCredential],
) -> Result<(Plan, BTreeMap<Name, LiveTarget>), EngineError> {
    let state = config.state();
    let Read { names, mut open, live } = read;
    let now = clock.now;
    let baseline = base.map(|(b, _)| b.state());
    // What keyward managed before: the base revision, else the commit last applied.
    let previous = baseline.or(applied);
    let mut changes = compute(state, &live, &open.capabilities, now, baseline, undelivered, previous)
        .map_err(|errors| EngineError::Plan { errors })?;
    open.attribute(&mut changes).await;
    let split = match base {
        None => None,
        Some((base, rev)) => {
            let without = compute(base.state(), &live, &open.capabilities, now, None, undelivered, None)
                .map_err(|errors| EngineError::BasePlan { rev: rev.to_string(), errors })?;
            Some(split(&changes, &without, rev))
        }
    };
    let mut plan = plan::assemble(changes, config.reference(dir), names, now);
    plan.base = split;
    plan.notices = plan::notices(state, &live, &open.capabilities);
    plan.notices.extend(plan::held_notices(&PlanInput {
        desired: state,
        live: &live,
        capabilities: &open.capabilities,
        now,
        baseline,
        undelivered,
        previous,
    }));
    Ok((plan, live))
}

/// Which of `changes` the base revision's own plan (`at_base`) holds too, with the same
/// address, action and values: those are drift already present; the rest are what the
/// revision since `rev` asks for.
pub fn split(changes: &[Change], at_base: &[Change], rev: &str) -> plan::BaseSplit {
    let key = |c: &Change| (c.address.to_string(), c.action, serde_json::to_string(&c.after).unwrap_or_default());
    let already: BTreeSet<_> = at_base.iter().map(key).collect();
    let sections = changes
        .iter()
        .map(|c| {
            let section = if already.contains(&key(c)) { plan::Section::Drift } else { plan::Section::Change };
            (c.address.to_string(), section)
        })
        .collect();
    plan::BaseSplit { revision: rev.to_string(), sections }
}

/// Runs the planner, labelling as drift what `baseline` asked for too (see
/// [`PlanInput::baseline`]).
pub fn compute(
    state: &DesiredState,
    live: &BTreeMap<Name, LiveTarget>,
    caps: &BTreeMap<Name, Capabilities>,
    now: Timestamp,
    baseline: Option<&DesiredState>,
    undelivered: &[UndeliveredCredential],
    previous: Option<&DesiredState>,
) -> Result<Vec<Change>, Vec<PlanError>> {
    let input = PlanInput { desired: state, live, capabilities: caps, now, baseline, undelivered, previous };
    let started = std::time::Instant::now();
    let result = plan::plan_changes(&input);
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "planned");
    result
}

/// The configuration at the commit the state records as last applied (the latest of the
/// targets'), whose role bindings say which objects keyward managed; `None` when no apply
/// recorded a commit, or that commit cannot be read (then a warning says so).
pub async fn last_applied(
    state: &DesiredState,
    dir: &Path,
    observer: &dyn Observer,
) -> Result<Option<DesiredState>, EngineError> {
    let store = Store::open(state, dir)?;
    let records = super::applied::last_applied(state, &store).await?;
    let commit = records.values().filter(|t| t.commit.is_some()).max_by_key(|t| t.at).and_then(|t| t.commit.clone());
    Ok(super::evidence::baseline(dir, commit.as_deref(), observer))
}

/// Saves a plan (its JSON, docs/plan-format.md) for `apply`, atomically, with the digest of
/// its changes and, given a key (`KEYWARD_PLAN_KEY`), its signature.
pub fn save(plan: &Plan, path: &Path, key: Option<&[u8]>) -> Result<(), EngineError> {
    let mut plan = plan.clone();
    let digest = plan.changes_digest();
    plan.signature = key.map(|k| Plan::sign(&digest, k));
    plan.digest = Some(digest);
    crate::atomic::write(path, crate::output::plan_json(&plan).as_bytes(), crate::atomic::Access::Shared)
        .map_err(EngineError::io("write", path))
}
