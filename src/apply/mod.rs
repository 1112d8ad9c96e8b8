//! Executing exactly a reviewed plan.
//!
//! Guarantees: changes run phase by phase in the plan's order (accounts, updates,
//! assignments, rotations, revocations, disables, deletions) and, within a phase, target by
//! target with directories before ERPs; a change whose prerequisite failed in this run (the
//! account or group it needs was not created) is skipped, not attempted; every attempted or
//! skipped change gets an audit record before the next phase starts; every failure is
//! returned, not just the first. Apply never re-decides what to change: callers re-plan and
//! re-run, and providers make each operation idempotent so a re-run converges.

use std::collections::{BTreeMap, HashSet};

use crate::audit::{AuditError, AuditLog, Entry, Outcome};
use crate::model::{Binding, Name, Timestamp};
use crate::plan::{Change, Operation, Plan, Principal};
use crate::provider::Provider;

/// The result of one change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeOutcome {
    pub address: String,
    pub action: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an apply did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    pub outcomes: Vec<ChangeOutcome>,
}

impl ApplyReport {
    pub fn count(&self, o: Outcome) -> usize {
        self.outcomes.iter().filter(|c| c.outcome == o).count()
    }
    pub fn all_applied(&self) -> bool {
        self.outcomes.iter().all(|c| c.outcome == Outcome::Applied)
    }
}

/// Who and what an apply records in the audit log.
pub struct AuditContext {
    pub actor: String,
    pub commit: Option<String>,
    pub plan_hash: String,
    pub clock: fn() -> Timestamp,
}

/// Called after each batch with (changes done, total).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("plan names target `{0}`, which was not opened")]
    MissingTarget(Name),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// The largest batch handed to a provider at once; bounds memory and how much an interrupted
/// run leaves unrecorded.
const BATCH: usize = 50_000;

/// Runs the plan's changes against the providers, recording each outcome.
pub async fn execute(
    plan: &Plan,
    providers: &mut BTreeMap<Name, Box<dyn Provider>>,
    audit: &mut AuditLog,
    ctx: &AuditContext,
    progress: Progress<'_>,
) -> Result<ApplyReport, ExecuteError> {
    for c in &plan.changes {
        if !providers.contains_key(&c.address.target) {
            return Err(ExecuteError::MissingTarget(c.address.target.clone()));
        }
    }
    let mut report = ApplyReport::default();
    let total = plan.changes.len();
    // Natural keys whose creation failed in this run, per target.
    let mut failed_users: HashSet<(Name, String)> = HashSet::new();
    let mut failed_bindings: HashSet<(Name, Binding)> = HashSet::new();
    let mut failed_sas: HashSet<(Name, String)> = HashSet::new();

    // The plan is sorted by phase, then target; take runs of equal (phase, target).
    let mut i = 0;
    while i < plan.changes.len() {
        let first = &plan.changes[i];
        let key = (first.action.phase(), &first.address.target);
        let mut j = i;
        while j < plan.changes.len() && j - i < BATCH {
            let c = &plan.changes[j];
            if (c.action.phase(), &c.address.target) != key {
                break;
            }
            j += 1;
        }
        let target = first.address.target.clone();
        let run = &plan.changes[i..j];
        let mut entries = Vec::with_capacity(run.len());
        let mut to_apply: Vec<&Change> = Vec::with_capacity(run.len());
        let mut slots: Vec<Option<ChangeOutcome>> = Vec::with_capacity(run.len());
        for c in run {
            let blocked = match &c.operation {
                Operation::Assign { principal, binding } | Operation::Revoke { principal, binding } => {
                    failed_bindings.contains(&(target.clone(), binding.clone()))
                        || match principal {
                            Principal::User(u) => failed_users.contains(&(target.clone(), u.to_lowercase())),
                            Principal::ServiceAccount(n) => failed_sas.contains(&(target.clone(), n.clone())),
                        }
                }
                _ => false,
            };
            if blocked {
                slots.push(Some(ChangeOutcome {
                    address: c.address.to_string(),
                    action: c.action.to_string(),
                    outcome: Outcome::Skipped,
                    error: Some("skipped: the account or group it needs could not be created".into()),
                }));
            } else {
                slots.push(None);
                to_apply.push(c);
            }
        }
        let provider = providers.get_mut(&target).expect("checked above");
        let results = provider.apply(&to_apply).await;
        let mut results = results.into_iter();
        for (slot, c) in slots.iter_mut().zip(run) {
            if slot.is_some() {
                continue;
            }
            let result =
                results.next().unwrap_or_else(|| Err(crate::provider::ApplyError::new("the provider gave no outcome")));
            if result.is_err() {
                match &c.operation {
                    Operation::CreateUser { user_name, .. } => {
                        failed_users.insert((target.clone(), user_name.to_lowercase()));
                    }
                    Operation::CreateBinding { binding } => {
                        failed_bindings.insert((target.clone(), binding.clone()));
                    }
                    Operation::CreateServiceAccount { name, .. } => {
                        failed_sas.insert((target.clone(), name.clone()));
                    }
                    _ => {}
                }
            }
            *slot = Some(ChangeOutcome {
                address: c.address.to_string(),
                action: c.action.to_string(),
                outcome: if result.is_ok() { Outcome::Applied } else { Outcome::Failed },
                error: result.err().map(|e| e.to_string()),
            });
        }
        for slot in slots {
            let o = slot.expect("every slot filled");
            entries.push(Entry {
                time: (ctx.clock)(),
                actor: ctx.actor.clone(),
                commit: ctx.commit.clone(),
                plan_hash: ctx.plan_hash.clone(),
                address: o.address.clone(),
                action: o.action.clone(),
                outcome: o.outcome,
                error: o.error.clone(),
            });
            report.outcomes.push(o);
        }
        audit.append_all(entries)?;
        progress(report.outcomes.len(), total);
        i = j;
    }
    Ok(report)
}
