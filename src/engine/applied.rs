//! The last apply per target: which configuration each live target was last brought to.
//!
//! `apply` records, per target it planned, the commit and digest of the configuration and
//! whether every change landed ([`record`]). `drift` reads that back ([`last_applied`]) to
//! compare the live targets with the configuration they were last brought to, so that what was
//! merged since is pending, not drift.
//!
//! Guarantees: the records are kept in the configured state (`state:` in keyward.yaml), through
//! [`crate::state`] only. A state that predates these records is read from the audit log: the
//! commit of the last applied change to the target.

use std::collections::{BTreeMap, BTreeSet};

use super::EngineError;
use super::store::Store;
use crate::apply::ApplyReport;
use crate::model::{DesiredState, LiveTarget, Name, Timestamp, UserField};
use crate::plan::Plan;
use crate::state::trail::ChainHead;
use crate::state::{self, ApplyStatus, TargetRecord, documents};

/// The last apply to each target, by target name.
pub async fn last_applied(state: &DesiredState, store: &Store) -> Result<BTreeMap<String, TargetRecord>, EngineError> {
    let store = &**store.backend();
    let mut out = documents::read::<documents::Applied>(store).await?.value.targets;
    let missing: BTreeSet<&str> =
        state.settings.targets.keys().map(|t| t.as_str()).filter(|t| !out.contains_key(*t)).collect();
    if missing.is_empty() {
        return Ok(out);
    }
    // Older states: the audit log's last applied change per target, with its commit.
    for r in state::trail::records(store).await?.iter().rev() {
        let e = &r.entry;
        if e.outcome != crate::audit::Outcome::Applied {
            continue;
        }
        let Some(target) = e.address.split('.').next().filter(|t| missing.contains(t)) else { continue };
        if out.contains_key(target) {
            continue;
        }
        out.insert(
            target.to_string(),
            TargetRecord {
                commit: e.commit.clone(),
                config_digest: String::new(),
                status: ApplyStatus::Completed,
                at: e.time,
                audit_records: Some(r.seq),
                completed_commit: e.commit.clone(),
                unkept: BTreeMap::new(),
            },
        );
    }
    Ok(out)
}

/// Records an apply of `plan` to each of its targets: completed when every change to the
/// target was applied (or there was none), partial otherwise; with the user attributes each
/// target was found not to keep (`unkept`, added to those recorded before).
pub async fn record(
    store: &Store,
    plan: &Plan,
    report: Option<&ApplyReport>,
    head: Option<&ChainHead>,
    at: Timestamp,
    unkept: &BTreeMap<crate::model::Name, BTreeMap<UserField, String>>,
) -> Result<(), EngineError> {
    let store = &**store.backend();
    let target_of: BTreeMap<String, &str> =
        plan.changes.iter().map(|c| (c.address.to_string(), c.address.target.as_str())).collect();
    let partial: BTreeSet<&str> = report
        .map(|r| {
            r.outcomes
                .iter()
                .filter(|o| o.outcome != crate::audit::Outcome::Applied)
                .filter_map(|o| target_of.get(&o.address).copied())
                .collect()
        })
        .unwrap_or_default();
    for target in &plan.targets {
        let status = if partial.contains(target.as_str()) { ApplyStatus::Partial } else { ApplyStatus::Completed };
        let record = TargetRecord {
            commit: plan.configuration.commit.clone(),
            config_digest: plan.configuration.digest.clone(),
            status,
            at,
            audit_records: head.map(|h| h.records),
            completed_commit: None,
            unkept: unkept.get(target).cloned().unwrap_or_default(),
        };
        documents::record_applied(store, target.as_str(), record).await?;
    }
    Ok(())
}

/// Adds to each live target the user attributes an earlier apply found it does not keep (see
/// [`TargetRecord::unkept`]), unless its read said so already.
pub async fn add_unkept(store: &Store, live: &mut BTreeMap<Name, LiveTarget>) -> Result<(), EngineError> {
    let records = documents::read::<documents::Applied>(&**store.backend()).await?.value.targets;
    for (name, target) in live.iter_mut() {
        let Some(record) = records.get(name.as_str()) else { continue };
        for (field, reason) in &record.unkept {
            target.unkept.entry(*field).or_insert_with(|| reason.clone());
        }
    }
    Ok(())
}
