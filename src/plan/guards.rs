//! Guards: limits a plan must respect before it may be applied.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::types::{Action, Address, Change, ObjectKind, Operation, Principal};
use crate::audit::{Outcome, Record};
use crate::model::{Binding, DesiredState, Duration, LiveAccount, LiveTarget, Name, Timestamp};

/// Limits raised explicitly on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardOverrides {
    pub max_deletes: Option<u32>,
    pub min_admins: Option<u32>,
}

/// A guard the plan trips.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "guard", rename_all = "camelCase")]
pub enum GuardViolation {
    #[serde(rename_all = "camelCase")]
    MaxDeletes {
        limit: u32,
        planned: usize,
        /// Disables and deletions applied within `window` before this plan, on any target.
        recent: usize,
        window: Duration,
    },
    #[serde(rename_all = "camelCase")]
    MinAdmins {
        target: Name,
        role: Name,
        required: u32,
        /// The userNames counted now: enabled accounts inside `ownership.scope`.
        before: Vec<String>,
        /// The userNames counted once the plan is applied.
        after: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    Protected { address: String, user_name: String },
}

impl fmt::Display for GuardViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardViolation::MaxDeletes { limit, planned, recent: 0, window } => write!(
                f,
                "guards.maxDeletes: the plan disables or deletes {planned} accounts or credentials, {} over the limit of \
                 {limit} (counted over all targets within {window}); review it, then raise the limit for this run with \
                 --max-deletes {planned}",
                planned - *limit as usize
            ),
            GuardViolation::MaxDeletes { limit, planned, recent, window } => write!(
                f,
                "guards.maxDeletes: the plan disables or deletes {planned} accounts or credentials, and applies within the \
                 last {window} disabled or deleted {recent} more (on any target, as the audit log records): {} in all, {} \
                 over the limit of {limit}; review it, then raise the limit for this run with --max-deletes {}",
                planned + recent,
                (planned + recent).saturating_sub(*limit as usize),
                planned + recent
            ),
            GuardViolation::MinAdmins { target, role, required, before, after } => write!(
                f,
                "guards.minAdmins: on target `{target}` the plan leaves {} active holders of role `{role}` ({}; now {}: {}), \
                 {} short of the required {required}; only enabled accounts inside ownership.scope count; \
                 raise the limit for this run with --min-admins {}",
                after.len(),
                names(after),
                before.len(),
                names(before),
                (*required as usize).saturating_sub(after.len()),
                after.len()
            ),
            GuardViolation::Protected { address, user_name } => {
                write!(f, "protected account `{user_name}` would be disabled, deleted or stripped by {address}")
            }
        }
    }
}

/// Whether `action` on an object of `kind` counts against `guards.maxDeletes`: accounts
/// disabled or deleted, and credentials deleted as drift (a routine `revoke` of a replaced
/// credential does not count).
fn is_removal(kind: ObjectKind, action: &str) -> bool {
    match kind {
        ObjectKind::User | ObjectKind::ServiceAccount => {
            action == Action::Disable.as_str() || action == Action::Delete.as_str()
        }
        ObjectKind::Credential => action == Action::Delete.as_str(),
        _ => false,
    }
}

/// How many disables and deletions the audit records show applied on any target within
/// `window` before `now`, the guard's count of earlier runs. An attempt whose outcome was never
/// recorded counts, since it may have been carried out.
pub fn recent_removals(records: &[Record], now: Timestamp, window: Duration) -> usize {
    let since = now - window.to_chrono();
    crate::audit::paired(records)
        .iter()
        .filter(|r| r.entry.time > since && r.entry.time <= now)
        .filter(|r| matches!(r.entry.outcome, Outcome::Applied | Outcome::Attempting))
        .filter(|r| r.entry.address.parse::<Address>().is_ok_and(|a| is_removal(a.kind, &r.entry.action)))
        .count()
}

/// Checks a plan's changes against the guards of `desired.settings`, with overrides.
/// `recent` is what earlier applies disabled or deleted within `guards.maxDeletesWindow`
/// ([`recent_removals`]): the plan's own count against `guards.maxDeletes` is added to it, so
/// splitting deletions over runs or targets does not pass more than the limit.
pub fn check(
    changes: &[Change],
    desired: &DesiredState,
    live: &BTreeMap<Name, LiveTarget>,
    overrides: GuardOverrides,
    recent: usize,
) -> Vec<GuardViolation> {
    let settings = &desired.settings;
    let mut out = Vec::new();

    let removals = changes.iter().filter(|c| is_removal(c.address.kind, c.action.as_str())).count();
    if let Some(limit) = overrides.max_deletes.or(settings.max_deletes)
        && removals > 0
        && removals + recent > limit as usize
    {
        out.push(GuardViolation::MaxDeletes { limit, planned: removals, recent, window: settings.max_deletes_window });
    }

    for c in changes {
        let user = match &c.operation {
            Operation::SetUserActive { user_name, active: false } | Operation::DeleteUser { user_name } => {
                Some(user_name)
            }
            Operation::Revoke { principal: Principal::User(u), .. } => Some(u),
            _ => None,
        };
        if let Some(u) = user
            && settings.is_protected(u)
        {
            out.push(GuardViolation::Protected { address: c.address.to_string(), user_name: u.clone() });
        }
    }

    if let Some(min) = &settings.min_admins {
        let required = overrides.min_admins.unwrap_or(min.count);
        if let Some(role) = desired.roles.get(&min.role) {
            for (target, binding) in &role.bindings {
                let Some(lt) = live.get(target) else { continue };
                let (before, after) = holders(desired, lt, target, binding, changes);
                if after.len() < required as usize && after.len() < before.len() {
                    out.push(GuardViolation::MinAdmins {
                        target: target.clone(),
                        role: min.role.clone(),
                        required,
                        before: before.into_values().collect(),
                        after: after.into_values().collect(),
                    });
                }
            }
        }
    }
    out
}

/// `none`, or the userNames in backticks, comma separated.
fn names(list: &[String]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// The holders of `binding` on `target` that count, now and once `changes` are applied, by
/// lower-cased userName (with the userName): members whose account is enabled and inside
/// `ownership.scope`. An assignment to a disabled account, to an account the plan disables
/// or deletes, or to one keyward does not manage, holds nothing that counts.
fn holders(
    desired: &DesiredState,
    live: &LiveTarget,
    target: &Name,
    binding: &Binding,
    changes: &[Change],
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let scope = &desired.settings.scope;
    let by_id: HashMap<&str, &LiveAccount> = live.accounts.iter().map(|a| (a.id.as_str(), a)).collect();
    let by_name: HashMap<String, &LiveAccount> =
        live.accounts.iter().map(|a| (a.user_name.to_lowercase(), a)).collect();
    let want = binding.object_name().to_lowercase();
    // Members now, whatever their state.
    let mut members: BTreeMap<String, String> = live
        .bindings
        .iter()
        .filter(|b| b.binding.kind() == binding.kind() && b.binding.object_name().to_lowercase() == want)
        .flat_map(|b| b.members.iter())
        .filter_map(|id| by_id.get(id.as_str()))
        .map(|a| (a.user_name.to_lowercase(), a.user_name.clone()))
        .collect();
    let counts = |user_name: &str, active: bool| active && scope.contains(user_name);
    let before: BTreeMap<String, String> = members
        .iter()
        .filter(|(k, n)| counts(n, by_name.get(k.as_str()).is_some_and(|a| a.active)))
        .map(|(k, n)| (k.clone(), n.clone()))
        .collect();
    // Whether each account is enabled once the plan is applied: the last change that sets it
    // decides, else the live account, else (no account at all) it is not.
    let mut active: HashMap<String, bool> = HashMap::new();
    for c in changes.iter().filter(|c| &c.address.target == target) {
        match &c.operation {
            Operation::Assign { principal: Principal::User(u), binding: b } if same(b, binding) => {
                members.insert(u.to_lowercase(), u.clone());
            }
            Operation::Revoke { principal: Principal::User(u), binding: b } if same(b, binding) => {
                members.remove(&u.to_lowercase());
            }
            Operation::CreateUser { user_name, active: a, .. } | Operation::SetUserActive { user_name, active: a } => {
                active.insert(user_name.to_lowercase(), *a);
            }
            Operation::DeleteUser { user_name } => {
                members.remove(&user_name.to_lowercase());
                active.insert(user_name.to_lowercase(), false);
            }
            _ => {}
        }
    }
    let after = members
        .into_iter()
        .filter(|(k, n)| {
            let on = active.get(k).copied().unwrap_or_else(|| by_name.get(k.as_str()).is_some_and(|a| a.active));
            counts(n, on)
        })
        .collect();
    (before, after)
}

/// Whether two bindings name the same live object (kind, and name without regard to case).
fn same(a: &Binding, b: &Binding) -> bool {
    a.kind() == b.kind() && a.object_name().to_lowercase() == b.object_name().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Entry, GENESIS, seal};

    fn record(seq: u64, hours_ago: i64, address: &str, action: &str, outcome: Outcome) -> Record {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc();
        let entry = Entry {
            time: now - chrono::TimeDelta::hours(hours_ago),
            actor: "t".into(),
            commit: None,
            plan_hash: format!("p{seq}"),
            address: address.into(),
            action: action.into(),
            outcome,
            error: None,
            detail: None,
            reason: None,
            provenance: None,
            approved_by: Vec::new(),
        };
        seal(seq, entry, GENESIS.into())
    }

    /// Disables and deletions of accounts, and deletions of credentials, applied within the
    /// window count, on any target; so does an attempt whose outcome was never recorded.
    /// Failed ones, older ones, other actions and other kinds do not.
    #[test]
    fn recent_removals_count_what_was_removed_within_the_window_on_any_target() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc();
        let records = [
            record(1, 1, "a.user.ann", "disable", Outcome::Applied),
            record(2, 2, "b.user.bob", "delete", Outcome::Applied),
            record(3, 3, "b.service-account.bot", "disable", Outcome::Applied),
            record(4, 4, "b.credential.bot/old", "delete", Outcome::Applied),
            record(5, 5, "a.user.cy", "disable", Outcome::Attempting),
            record(6, 1, "a.user.dee", "disable", Outcome::Failed),
            record(7, 1, "a.assignment.ann/admin", "revoke", Outcome::Applied),
            record(8, 1, "a.user.eve", "update", Outcome::Applied),
            record(9, 25, "a.user.fay", "disable", Outcome::Applied),
        ];
        assert_eq!(recent_removals(&records, now, Duration::from_hours(24)), 5);
        assert_eq!(recent_removals(&records, now, Duration::from_hours(3)), 2, "the window's start is not in it");
        assert_eq!(recent_removals(&records, now, Duration::parse("0s").unwrap()), 0);
    }
}
