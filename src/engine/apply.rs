//! `apply`: a fresh plan, or exactly a saved one, checked, then carried out and audited.
//!
//! Preparing reads every target opened for writing (which locks those that lock) and plans
//! under that lock; the caller shows the plan and the findings, then asks [`Prepared`] to pass
//! the policy gate and the guards, and to apply.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::policy::Live;
use super::read::{self, Read, Targets};
use super::store::Store;
use super::{Clock, Config, EngineError, Observer, SavedPlanError};
use crate::apply::{self, ApplyReport, AuditContext, CredentialContext};
use crate::model::{LiveTarget, Name};
use crate::plan::{self, GuardOverrides, Plan};
use crate::policy::Finding;
use crate::provider::handle::Writing;
use crate::remote::RetryPolicy;

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
}

/// A plan ready to apply: the targets it was computed from are open for writing and read.
pub struct Prepared {
    pub config: Config,
    pub plan: Plan,
    pub live: BTreeMap<Name, LiveTarget>,
    pub findings: Vec<Finding>,
    dir: PathBuf,
    clock: Clock,
    retry: RetryPolicy,
    guards: GuardOverrides,
    open: Targets<Writing>,
}

/// Loads, reads every target under its lock, plans, and evaluates the policies.
pub async fn prepare(settings: &ApplySettings, observer: &dyn Observer) -> Result<Prepared, EngineError> {
    let dir = &settings.dir;
    let (config, read) = read::load_and_read::<Writing>(dir, &settings.targets, settings.retry, observer).await?;
    let Read { names, open, live } = read?;
    let state = config.state();
    let now = settings.clock.now;
    let undelivered = Store::local(state, dir).undelivered()?;
    let changes = super::plan::compute(state, &live, &open.capabilities, now, None, &undelivered)
        .map_err(|errors| EngineError::Plan { errors })?;
    let plan = plan::assemble(changes, config.reference(dir), names, now);
    let live_state = Live { targets: &live, undelivered: &undelivered };
    let findings = super::policy::evaluate_config(&config, Some(&plan), Some(live_state), now);
    Ok(Prepared {
        config,
        plan,
        live,
        findings,
        dir: dir.clone(),
        clock: settings.clock,
        retry: settings.retry,
        guards: settings.guards,
        open,
    })
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
    let dir = &settings.dir;
    let config = super::config::load(dir, observer)?;
    if config.digest() != saved.configuration.digest {
        return Err(SavedPlanError::ConfigurationChanged { dir: dir.clone() }.into());
    }
    let state = config.state();
    if let Some(t) = saved.targets.iter().find(|t| !state.settings.targets.contains_key(*t)) {
        return Err(SavedPlanError::UnknownTarget { target: t.to_string() }.into());
    }
    let (live, open) = Targets::<Writing>::read(&state.settings, dir, &saved.targets, settings.retry, observer).await?;
    let now = settings.clock.now;
    let undelivered = Store::local(state, dir).undelivered()?;
    let fresh = super::plan::compute(state, &live, &open.capabilities, now, None, &undelivered)
        .map_err(|errors| EngineError::Plan { errors })?;
    let stale = stale_changes(&saved, &fresh);
    if !stale.is_empty() {
        return Err(SavedPlanError::Stale { stale }.into());
    }
    let live_state = Live { targets: &live, undelivered: &undelivered };
    let findings = super::policy::evaluate_config(&config, Some(&saved), Some(live_state), now);
    Ok(Prepared {
        config,
        plan: saved,
        live,
        findings,
        dir: dir.clone(),
        clock: settings.clock,
        retry: settings.retry,
        guards: settings.guards,
        open,
    })
}

/// The saved changes that a fresh plan does not hold with the same address, action and live
/// fingerprint, as `ADDRESS (ACTION)`.
pub fn stale_changes(saved: &Plan, fresh: &[plan::Change]) -> Vec<String> {
    let fresh: BTreeMap<(String, &str), &str> =
        fresh.iter().map(|c| ((c.address.to_string(), c.action.as_str()), c.fingerprint.as_str())).collect();
    saved
        .changes
        .iter()
        .filter(|c| fresh.get(&(c.address.to_string(), c.action.as_str())) != Some(&c.fingerprint.as_str()))
        .map(|c| format!("{} ({})", c.address, c.action))
        .collect()
}

impl Prepared {
    /// Refuses to go on when a policy finding denies.
    pub fn gate(&self) -> Result<(), EngineError> {
        super::policy::gate(&self.findings)
    }

    /// Refuses a plan over `guards.maxDeletes` or under `guards.minAdmins` (as raised for this
    /// run).
    pub fn check_guards(&self) -> Result<(), EngineError> {
        let violations = plan::guards::check(&self.plan.changes, self.config.state(), &self.live, self.guards);
        if violations.is_empty() { Ok(()) } else { Err(EngineError::Guards { violations }) }
    }

    /// Carries the plan out, recording every attempted change in the audit log. Changes that
    /// failed are in the report, not an error: the error is for what stopped the apply as a
    /// whole (the audit log cannot be written).
    pub async fn apply(mut self, observer: &dyn Observer) -> Result<ApplyReport, EngineError> {
        let state = self.config.state();
        let store = Store::local(state, &self.dir);
        let mut audit = store.open_audit()?;
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let gathered = crate::audit::provenance::gather(&env, crate::history::head(&self.dir).as_ref());
        let ctx = AuditContext {
            actor: gathered.actor,
            provenance: Some(gathered.provenance),
            commit: self.plan.configuration.commit.clone(),
            plan_hash: crate::model::digest_bytes(crate::output::plan_json(&self.plan).as_bytes()),
            clock: || chrono::Utc::now(),
        };
        let mut sinks = crate::credential::sink::Sinks::new(&self.dir);
        match crate::credential::keyvault::from_settings(state, &self.dir) {
            Ok(Some(kv)) => sinks = sinks.with_key_vault(kv.with_retry(self.retry)),
            Ok(None) => {}
            // Deliveries to Key Vault fail (and are recorded as undelivered); the rest proceeds.
            Err(e) => observer.warning(&format!("no Key Vault access for credential delivery: {e}")),
        }
        let creds =
            CredentialContext { sinks, state_path: store.undelivered_path().to_path_buf(), now: self.clock.now };
        let mut progress = |done: usize, total: usize| observer.applied(done, total);
        let report =
            apply::execute_with(&self.plan, &mut self.open.sessions, &mut audit, &ctx, &creds, &mut progress).await?;
        Ok(report)
    }
}
