//! Guards: limits a plan must respect before it may be applied.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::types::{Action, Change, ObjectKind, Operation, Principal};
use crate::model::{Binding, DesiredState, LiveAccount, LiveTarget, Name};

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
    MaxDeletes { limit: u32, planned: usize },
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
            GuardViolation::MaxDeletes { limit, planned } => write!(
                f,
                "guards.maxDeletes: the plan disables or deletes {planned} accounts or credentials, {} over the limit of {limit}; \
                 review it, then raise the limit for this run with --max-deletes {planned}",
                planned - *limit as usize
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

/// Checks a plan's changes against the guards of `desired.settings`, with overrides.
pub fn check(
    changes: &[Change],
    desired: &DesiredState,
    live: &BTreeMap<Name, LiveTarget>,
    overrides: GuardOverrides,
) -> Vec<GuardViolation> {
    let settings = &desired.settings;
    let mut out = Vec::new();

    // Accounts disabled or deleted, and credentials deleted as drift (a routine `revoke` of a
    // replaced credential does not count).
    let removals = changes
        .iter()
        .filter(|c| match c.address.kind {
            ObjectKind::User | ObjectKind::ServiceAccount => matches!(c.action, Action::Disable | Action::Delete),
            ObjectKind::Credential => c.action == Action::Delete,
            _ => false,
        })
        .count();
    if let Some(limit) = overrides.max_deletes.or(settings.max_deletes)
        && removals > limit as usize
    {
        out.push(GuardViolation::MaxDeletes { limit, planned: removals });
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
