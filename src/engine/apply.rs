//! `apply`: a fresh plan, or exactly a saved one, checked, then carried out and audited.
//!
//! Preparing reads every target opened for writing (which locks those that lock) and plans
//! under that lock; the caller shows the plan and the findings, then asks [`Prepared`] to pass
//! the policy gate and the guards, and to apply.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::policy::Live;
use super::read::Targets;
use super::store::Store;
use super::{Clock, Config, EngineError, Observer, SavedPlanError};
use crate::apply::{self, ApplyReport, AuditContext, CredentialContext};
use crate::model::{LiveTarget, Name};
use crate::plan::{self, GuardOverrides, Plan};
use crate::policy::Finding;
use crate::provider::handle::Writing;
use crate::remote::RetryPolicy;
use crate::state::LockGuard;

/// What `apply` of a configuration folder needs.
#[derive(Debug, Clone)]
pub struct ApplySettings {
    pub dir: PathBuf,
    pub clock: Clock,
    /// How requests to the targets are retried.
    pub retry: RetryPolicy,
    /// Apply only to these targets (all when empty).
    pub targets: Vec<String>,
    /// Guards raised for this run.
    pub guards: GuardOverrides,
    /// How long to wait for another run's state lock (`--lock-timeout`).
    pub lock_timeout: Duration,
}

/// What `apply` of a saved plan needs.
#[derive(Debug, Clone)]
pub struct SavedApplySettings {
    /// The plan file (`keyward plan --out`).
    pub plan_file: PathBuf,
    /// The configuration folder it was made from.
    pub dir: PathBuf,
    pub clock: Clock,
    /// How requests to the targets are retried.
    pub retry: RetryPolicy,
    pub guards: GuardOverrides,
    /// How long to wait for another run's state lock (`--lock-timeout`).
    pub lock_timeout: Duration,
    /// `KEYWARD_PLAN_KEY`: when given, only plans signed with it are applied.
    pub plan_key: Option<Vec<u8>>,
}

/// A plan ready to apply: the targets it was computed from are open for writing and read.
pub struct Prepared {
    pub config: Config,
    pub plan: Plan,
    pub live: BTreeMap<Name, LiveTarget>,
    pub findings: Vec<Finding>,
    /// Who approved which change, and notes to record with them.
    pub approvals: apply::Approvals,
    dir: PathBuf,
    clock: Clock,
    retry: RetryPolicy,
    guards: GuardOverrides,
    open: Targets<Writing>,
    store: Store,
    lock: Option<LockGuard>,
    head: Option<crate::state::trail::ChainHead>,
    /// Disables and deletions applied within `guards.maxDeletesWindow`, on any target.
    recent_removals: usize,
}

/// Loads, takes the state's lock, reads every target under its own lock, plans, and evaluates
/// the policies. The state's lock is held until [`Prepared::release`].
pub async fn prepare(settings: &ApplySettings, observer: &dyn Observer) -> Result<Prepared, EngineError> {
    prepare_only(settings, &|_| true, observer).await
}

/// [`prepare`], keeping only the changes `keep` picks (for example one grant's).
pub async fn prepare_only(
    settings: &ApplySettings,
    keep: &dyn Fn(&plan::Change) -> bool,
    observer: &dyn Observer,
) -> Result<Prepared, EngineError> {
    let dir = &settings.dir;
    let config = super::config::load(dir, observer)?;
    let state = config.state();
    let names = super::config::select_targets(&state.settings, &settings.targets)?;
    let store = Store::open(state, dir)?;
    let lock = store.lock(crate::load::commit_of(dir), settings.lock_timeout).await?;
    // Whatever fails from here on releases the lock before returning.
    let planned = async {
        let (mut live, mut open) =
            Targets::<Writing>::read(&state.settings, dir, &names, settings.retry, observer).await?;
        super::plan::refuse_members_decided(&config, &live, &open.capabilities, dir, observer)?;
        super::applied::add_unkept(&store, &mut live).await?;
        let pinned = super::contents::prepare(state, dir, &mut open.sessions, &mut live).await?;
        let now = settings.clock.now;
        let undelivered = store.undelivered().await?;
        let previous = super::plan::last_applied(state, dir, observer).await?;
        let mut changes =
            super::plan::compute(state, &live, &open.capabilities, now, None, &undelivered, previous.as_ref())
                .map_err(|errors| EngineError::Plan { errors })?;
        changes.retain(|c| keep(c));
        let mut plan = plan::assemble(changes, config.reference(dir), names, now);
        plan.notices = plan::notices(state, &live, &open.capabilities);
        let live_state = Live { targets: &live, undelivered: &undelivered, pinned: &pinned };
        let findings = super::policy::evaluate_config(&config, Some(&plan), Some(live_state), now);
        let recent = recent_removals(&store, state, settings.guards).await?;
        Ok::<_, EngineError>((live, open, plan, findings, recent))
    }
    .await;
    let (live, open, plan, findings, recent_removals) = match planned {
        Ok(p) => p,
        Err(e) => {
            release_quietly(&store, lock).await;
            return Err(e);
        }
    };
    Ok(Prepared {
        config,
        plan,
        live,
        findings,
        approvals: Default::default(),
        dir: dir.clone(),
        clock: settings.clock,
        retry: settings.retry,
        guards: settings.guards,
        open,
        store,
        lock: Some(lock),
        head: None,
        recent_removals,
    })
}

/// What earlier applies disabled or deleted within `guards.maxDeletesWindow`, on any target, as
/// the audit log records it (read only when a `maxDeletes` limit applies). Records are stamped
/// with the real clock, so the window ends now by that clock.
async fn recent_removals(
    store: &Store,
    state: &crate::model::DesiredState,
    guards: GuardOverrides,
) -> Result<usize, EngineError> {
    if guards.max_deletes.or(state.settings.max_deletes).is_none() {
        return Ok(0);
    }
    let records = store.audit_records().await?;
    Ok(plan::guards::recent_removals(&records, chrono::Utc::now(), state.settings.max_deletes_window))
}

/// Releases a lock on a path that already fails; a failure to release only delays the next run
/// until the lease runs out.
async fn release_quietly(store: &Store, lock: LockGuard) {
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, location = %store.location(), "cannot release the state lock");
    }
}

/// Reads a saved plan and checks it against the configuration and the live targets: the same
/// configuration (by digest), targets it defines, and every change still what a fresh plan
/// computes now, from the same live object. Any difference refuses the whole plan.
pub async fn prepare_saved(settings: &SavedApplySettings, observer: &dyn Observer) -> Result<Prepared, EngineError> {
    let path = &settings.plan_file;
    let text =
        std::fs::read_to_string(path).map_err(|source| SavedPlanError::Unreadable { path: path.clone(), source })?;
    let saved: Plan =
        serde_json::from_str(&text).map_err(|source| SavedPlanError::NotAPlan { path: path.clone(), source })?;
    if saved.format_version != plan::FORMAT_VERSION {
        return Err(SavedPlanError::Format { path: path.clone(), found: saved.format_version }.into());
    }
    let Some(digest) = saved.digest.as_deref() else {
        return Err(SavedPlanError::NoDigest { path: path.clone() }.into());
    };
    if saved.changes_digest() != digest {
        return Err(SavedPlanError::Damaged { path: path.clone() }.into());
    }
    if let Some(key) = &settings.plan_key
        && !saved.signature.as_deref().is_some_and(|s| Plan::verify(digest, s, key))
    {
        return Err(SavedPlanError::BadSignature { path: path.clone() }.into());
    }
    if saved.notices.iter().any(|n| n.blocks_apply()) {
        let targets = saved.notices.iter().filter(|n| n.blocks_apply()).map(|n| n.target.to_string()).collect();
        return Err(SavedPlanError::Offline { path: path.clone(), targets }.into());
    }
    let dir = &settings.dir;
    let config = super::config::load(dir, observer)?;
    if config.digest() != saved.configuration.digest {
        return Err(SavedPlanError::ConfigurationChanged { dir: dir.clone() }.into());
    }
    let state = config.state();
    if let Some(t) = saved.targets.iter().find(|t| !state.settings.targets.contains_key(*t)) {
        return Err(SavedPlanError::UnknownTarget { target: t.to_string() }.into());
    }
    let store = Store::open(state, dir)?;
    let lock = store.lock(saved.configuration.commit.clone(), settings.lock_timeout).await?;
    // Whatever fails from here on (a stale plan too) releases the lock before returning.
    let checked = async {
        let (mut live, mut open) =
            Targets::<Writing>::read(&state.settings, dir, &saved.targets, settings.retry, observer).await?;
        super::applied::add_unkept(&store, &mut live).await?;
        let pinned = super::contents::prepare(state, dir, &mut open.sessions, &mut live).await?;
        let now = settings.clock.now;
        let undelivered = store.undelivered().await?;
        // A plan split against a base labels its changes against that base, and takes what keyward
        // managed from it: so does the fresh one.
        let base = match &saved.base {
            Some(split) => Some(super::config::load_base(dir, &split.revision, observer)?),
            None => None,
        };
        let previous = match &base {
            Some(b) => Some(b.state().clone()),
            None => super::plan::last_applied(state, dir, observer).await?,
        };
        let baseline = base.as_ref().map(|b| b.state());
        let fresh =
            super::plan::compute(state, &live, &open.capabilities, now, baseline, &undelivered, previous.as_ref())
                .map_err(|errors| EngineError::Plan { errors })?;
        let stale = stale_changes(&saved, &fresh);
        if !stale.is_empty() {
            return Err(SavedPlanError::Stale { stale }.into());
        }
        let live_state = Live { targets: &live, undelivered: &undelivered, pinned: &pinned };
        let findings = super::policy::evaluate_config(&config, Some(&saved), Some(live_state), now);
        let recent = recent_removals(&store, state, settings.guards).await?;
        Ok::<_, EngineError>((live, open, findings, recent))
    }
    .await;
    let (live, open, findings, recent_removals) = match checked {
        Ok(c) => c,
        Err(e) => {
            release_quietly(&store, lock).await;
            return Err(e);
        }
    };
    Ok(Prepared {
        config,
        plan: saved,
        live,
        findings,
        approvals: Default::default(),
        dir: dir.clone(),
        clock: settings.clock,
        retry: settings.retry,
        guards: settings.guards,
        open,
        store,
        lock: Some(lock),
        head: None,
        recent_removals,
    })
}

/// How the saved changes differ from a fresh plan's: for each saved change, the fresh change
/// with its address and action must be equal in operation, before, after, reason kind and
/// fingerprint; and every fresh change must be in the saved plan. As `ADDRESS (ACTION): what`.
pub fn stale_changes(saved: &Plan, fresh: &[plan::Change]) -> Vec<String> {
    let key = |c: &plan::Change| (c.address.to_string(), c.action.as_str());
    let fresh_by: BTreeMap<(String, &str), &plan::Change> = fresh.iter().map(|c| (key(c), c)).collect();
    let saved_keys: std::collections::BTreeSet<(String, &str)> = saved.changes.iter().map(key).collect();
    let mut out = Vec::new();
    for c in &saved.changes {
        let Some(f) = fresh_by.get(&key(c)) else {
            out.push(format!("{} ({}): a fresh plan has no such change", c.address, c.action));
            continue;
        };
        fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
            serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
        }
        let fields: [(&str, bool); 5] = [
            ("fingerprint", c.fingerprint == f.fingerprint),
            ("operation", json(&c.operation) == json(&f.operation)),
            ("before", json(&c.before) == json(&f.before)),
            ("after", json(&c.after) == json(&f.after)),
            ("reason", c.reason.kind == f.reason.kind),
        ];
        let differing: Vec<&str> = fields.iter().filter(|(_, same)| !same).map(|(name, _)| *name).collect();
        if !differing.is_empty() {
            out.push(format!(
                "{} ({}): {} differ{}",
                c.address,
                c.action,
                differing.join(", "),
                if differing.len() == 1 { "s" } else { "" }
            ));
        }
    }
    for f in fresh.iter().filter(|f| !saved_keys.contains(&key(f))) {
        out.push(format!("{} ({}): a fresh plan has it, the saved plan does not", f.address, f.action));
    }
    out
}

impl Prepared {
    /// Refuses to go on when a policy finding denies.
    pub fn gate(&self) -> Result<(), EngineError> {
        super::policy::gate(&self.findings)
    }

    /// Refuses a plan over `guards.maxDeletes` (counting what applies disabled or deleted within
    /// `guards.maxDeletesWindow` before it, on any target) or under `guards.minAdmins` (as raised
    /// for this run).
    pub fn check_guards(&self) -> Result<(), EngineError> {
        let violations =
            plan::guards::check(&self.plan.changes, self.config.state(), &self.live, self.guards, self.recent_removals);
        if violations.is_empty() { Ok(()) } else { Err(EngineError::Guards { violations }) }
    }

    /// Carries the plan out, recording every attempted change in the audit log. Changes that
    /// failed are in the report, not an error: the error is for what stopped the apply as a
    /// whole (the audit log cannot be written).
    pub async fn apply(&mut self, observer: &dyn Observer) -> Result<ApplyReport, EngineError> {
        self.check_lock()?;
        let state = self.config.state();
        let mut audit = self.store.open_audit().await?;
        if let Some(repair) = audit.repair() {
            observer.warning(&repair.to_string());
        }
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let gathered = crate::audit::provenance::gather(&env, crate::history::head(&self.dir).as_ref());
        let ctx = AuditContext {
            actor: gathered.actor,
            provenance: Some(gathered.provenance),
            commit: self.plan.configuration.commit.clone(),
            plan_hash: crate::model::digest_bytes(crate::output::plan_json(&self.plan).as_bytes()),
            clock: || chrono::Utc::now(),
            approvals: self.approvals.clone(),
        };
        let mut sinks = crate::credential::sink::Sinks::new(&self.dir);
        match crate::credential::keyvault::from_settings(state, &self.dir) {
            Ok(Some(kv)) => sinks = sinks.with_key_vault(kv.with_retry(self.retry)),
            Ok(None) => {}
            // Deliveries to Key Vault fail (and are recorded as undelivered); the rest proceeds.
            Err(e) => observer.warning(&format!("no Key Vault access for credential delivery: {e}")),
        }
        let creds = CredentialContext { sinks, state: self.store.backend().clone(), now: self.clock.now };
        let mut progress = |done: usize, total: usize| observer.applied(done, total);
        let report =
            apply::execute_with(&self.plan, &mut self.open.sessions, &mut audit, &ctx, &creds, &mut progress).await?;
        self.check_lock()?;
        let at = chrono::Utc::now();
        let unkept = self
            .open
            .sessions
            .iter()
            .map(|(name, session)| (name.clone(), session.unkept()))
            .filter(|(_, u)| !u.is_empty())
            .collect();
        super::applied::record(&self.store, &self.plan, Some(&report), Some(audit.head()), at, &unkept).await?;
        crate::state::documents::record_head(&**self.store.backend(), audit.head(), at).await?;
        self.head = Some(audit.head().clone());
        Ok(report)
    }

    /// The audit chain's head after [`Prepared::apply`]: its record count and last hash.
    pub fn audit_head(&self) -> Option<&crate::state::trail::ChainHead> {
        self.head.as_ref()
    }

    /// Where the state is, for messages.
    pub fn state_location(&self) -> String {
        self.store.location()
    }

    fn check_lock(&self) -> Result<(), EngineError> {
        match &self.lock {
            Some(l) => Ok(l.check()?),
            None => Ok(()),
        }
    }

    /// Releases the state's lock. Call it on every path once the plan is applied or abandoned;
    /// a lock never released keeps others out until its lease runs out.
    pub async fn release(mut self) -> Result<(), EngineError> {
        match self.lock.take() {
            Some(l) => Ok(l.release().await?),
            None => Ok(()),
        }
    }

    /// Records that the targets already match the configuration (a plan with nothing to do is
    /// an apply too): drift is then measured against this commit.
    pub async fn record_unchanged(&self) -> Result<(), EngineError> {
        self.check_lock()?;
        super::applied::record(&self.store, &self.plan, None, None, chrono::Utc::now(), &BTreeMap::new()).await
    }
}
