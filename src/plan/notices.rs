//! Notices a plan carries beside its changes: what the configuration asks that a target will
//! not keep, so keyward leaves it unmanaged there (and says so) rather than planning it on
//! every run or dropping it without a word.

use std::collections::BTreeMap;

use super::types::Notice;
use crate::model::{Capabilities, DesiredState, LiveTarget, Name, RoleGrant, UserField};

/// For each target read: one notice per user attribute the configuration sets for someone on
/// it that the target does not keep ([`LiveTarget::unkept`]), and one per service account the
/// configuration places on a target that has none (named in its `targets`, or holding a role
/// bound there); and one per service account whose client id is to come from its app
/// registration on a Graph target, when this plan creates the registration or that target was
/// not read.
pub fn notices(
    desired: &DesiredState,
    live: &BTreeMap<Name, LiveTarget>,
    capabilities: &BTreeMap<Name, Capabilities>,
) -> Vec<Notice> {
    let (ids, _) = super::planner::AppIds::resolve(desired, live, capabilities, None);
    let application_ids = ids.notices();
    let mut out = Vec::new();
    for (name, live) in live {
        out.extend(application_ids.iter().filter(|n| &n.target == name).cloned());
        let Some(target) = desired.settings.targets.get(name) else { continue };
        for (field, reason) in &live.unkept {
            let set = desired.users.values().any(|u| {
                let present = desired.present_on(u.explicit_targets(), u.roles.iter().map(RoleGrant::role), target);
                present && sets(u, *field)
            });
            if set {
                out.push(Notice::not_kept(name, field.as_str(), reason));
            }
        }
        let caps = capabilities.get(name);
        if caps.is_some_and(|c| !c.service_accounts || c.application_users) {
            let by_application = caps.is_some_and(|c| c.service_accounts);
            for (sa_name, sa) in &desired.service_accounts {
                // Known by its application's client id, or to take it from its app registration
                // on a Graph target (the notices of `application_ids` say when it cannot yet).
                let roles: Vec<&Name> = sa.roles.iter().map(RoleGrant::role).collect();
                if by_application
                    && (sa.application_id(name).is_some() || !desired.registration_targets(sa, &roles).is_empty())
                {
                    continue;
                }
                let named =
                    sa.explicit_targets().is_some_and(|t| t.contains(name)) || sa.target_settings(name).is_some();
                let bound = sa.explicit_targets().is_none()
                    && sa
                        .roles
                        .iter()
                        .any(|g| desired.roles.get(g.role()).is_some_and(|r| r.bindings.contains_key(name)));
                if (named || bound) && by_application {
                    out.push(Notice::application_id_missing(name, sa_name));
                } else if named || bound {
                    out.push(Notice::service_account_not_managed(name, sa_name));
                }
            }
        }
    }
    out
}

fn sets(u: &crate::model::User, field: UserField) -> bool {
    match field {
        UserField::DisplayName => u.display_name.is_some(),
        UserField::GivenName => u.given_name.is_some(),
        UserField::FamilyName => u.family_name.is_some(),
        UserField::Email => u.email.is_some(),
        UserField::Department => u.department.is_some(),
        UserField::JobTitle => u.job_title.is_some(),
        UserField::Manager => u.manager.is_some(),
        UserField::EmployeeId => u.employee_id.is_some(),
    }
}
