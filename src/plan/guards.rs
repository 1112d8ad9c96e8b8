//! Guards: limits a plan must respect before it may be applied.

use std::collections::BTreeMap;
use std::fmt;

use super::planner::active_holders;
use super::types::{Action, Change, ObjectKind, Operation, Principal};
use crate::model::{DesiredState, LiveTarget, Name};

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
    MinAdmins { target: Name, role: Name, required: u32, before: usize, after: usize },
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
                "guards.minAdmins: on target `{target}` the plan leaves {after} active holders of role `{role}` \
                 (now {before}), {} short of the required {required}; raise the limit for this run with --min-admins {after}",
                *required as usize - after
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
                let before = active_holders(lt, binding);
                let mut after = before.clone();
                for c in changes.iter().filter(|c| &c.address.target == target) {
                    match &c.operation {
                        Operation::Assign { principal: Principal::User(u), binding: b } if b == binding => {
                            let active = !changes.iter().any(|d| {
                                &d.address.target == target
                                    && matches!(&d.operation, Operation::CreateUser { user_name, active: false, .. } if user_name.eq_ignore_ascii_case(u))
                            });
                            if active {
                                after.insert(u.to_lowercase());
                            }
                        }
                        Operation::Revoke { principal: Principal::User(u), binding: b } if b == binding => {
                            after.remove(&u.to_lowercase());
                        }
                        Operation::SetUserActive { user_name, active: false } | Operation::DeleteUser { user_name } => {
                            after.remove(&user_name.to_lowercase());
                        }
                        _ => {}
                    }
                }
                if after.len() < required as usize && after.len() < before.len() {
                    out.push(GuardViolation::MinAdmins {
                        target: target.clone(),
                        role: min.role.clone(),
                        required,
                        before: before.len(),
                        after: after.len(),
                    });
                }
            }
        }
    }
    out
}
