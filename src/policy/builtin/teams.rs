//! Roles reached through Dataverse teams: a holder of a role bound to a team (`{team: NAME}` or
//! `{groupTeam: ...}`) holds the security roles the team holds, and so, for segregation of
//! duties, every role of the configuration bound to one of those security roles on the same
//! target.
//!
//! A group team's roles are those its binding lists (known offline, so `validate` sees them),
//! else those the team holds as read; an owner team's are those read. Without a live read,
//! only listed roles count.

use std::collections::BTreeMap;

use super::{FxMap, RoleIndex};
use crate::model::{Binding, BindingKind, LiveTarget, Name};

/// For each role index, the roles (indexes) its holders hold through a team, each with the
/// target it is held on.
pub(crate) fn through_teams(
    roles: &RoleIndex,
    live: Option<&BTreeMap<Name, LiveTarget>>,
) -> FxMap<u32, Vec<(u32, Name)>> {
    let mut out: FxMap<u32, Vec<(u32, Name)>> = FxMap::default();
    let mut bound: FxMap<&Name, FxMap<(BindingKind, String), u32>> = FxMap::default();
    for (i, role) in roles.roles.iter().enumerate() {
        for (target, binding) in &role.bindings {
            let held = match binding {
                Binding::GroupTeam(t) => match &t.security_roles {
                    Some(listed) => listed.clone(),
                    None => {
                        live.and_then(|l| group_team_roles(l, target, &t.group, &t.business_unit)).unwrap_or_default()
                    }
                },
                Binding::Team(name) => live.and_then(|l| owner_team_roles(l.get(target)?, name)).unwrap_or_default(),
                _ => continue,
            };
            if held.is_empty() {
                continue;
            }
            let on_target = bound.entry(target).or_insert_with(|| roles.bound_on(target));
            for security_role in held {
                let key = (BindingKind::SecurityRole, security_role.to_lowercase());
                if let Some(&q) = on_target.get(&key)
                    && q != i as u32
                {
                    out.entry(i as u32).or_default().push((q, target.clone()));
                }
            }
        }
    }
    out
}

/// The roles of the owner team `name`, as read.
fn owner_team_roles(live: &LiveTarget, name: &str) -> Option<Vec<String>> {
    let b = live.bindings.iter().find(|b| matches!(&b.binding, Binding::Team(n) if n.eq_ignore_ascii_case(name)))?;
    live.team_roles.get(&b.id).cloned()
}

/// The roles of the group team of group `group` (by display name on a Graph target read) in
/// business unit `unit` of `target`, as read.
fn group_team_roles(live: &BTreeMap<Name, LiveTarget>, target: &Name, group: &str, unit: &str) -> Option<Vec<String>> {
    let object_ids: Vec<&str> = live
        .values()
        .flat_map(|t| &t.bindings)
        .filter(|b| matches!(&b.binding, Binding::Group(g) if g.eq_ignore_ascii_case(group)))
        .map(|b| b.id.as_str())
        .collect();
    let team = live.get(target)?;
    let b = team.bindings.iter().find(|b| match &b.binding {
        Binding::GroupTeam(t) => {
            t.business_unit.eq_ignore_ascii_case(unit) && object_ids.iter().any(|o| o.eq_ignore_ascii_case(&t.group))
        }
        _ => false,
    })?;
    team.team_roles.get(&b.id).cloned()
}
