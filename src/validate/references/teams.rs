//! Microsoft Entra group teams (`groupTeam`): names that are not empty, and an Entra group that
//! belongs to one keyward role, whether bound directly (`{group: NAME}` on a Graph target) or
//! through a group team.

use std::collections::BTreeMap;

use super::Checker;
use crate::diagnostic::Diagnostic;
use crate::load::PathSeg;
use crate::model::{Binding, Kind, Name, capabilities};

impl Checker<'_, '_> {
    pub(super) fn group_teams(&mut self) {
        let state = self.state;
        // Groups bound directly on targets whose groups are Entra groups, by lower-cased name.
        let mut direct: BTreeMap<String, (&Name, &Name)> = BTreeMap::new();
        for (name, role) in &state.roles {
            for (target, binding) in &role.bindings {
                let Binding::Group(g) = binding else { continue };
                let entra = state.settings.targets.get(target).is_some_and(|t| capabilities(t.provider()).entra_groups);
                if entra {
                    direct.entry(g.to_lowercase()).or_insert((name, target));
                }
            }
        }
        let mut through: BTreeMap<String, &Name> = BTreeMap::new();
        for (name, role) in &state.roles {
            for (target, binding) in &role.bindings {
                let Binding::GroupTeam(team) = binding else { continue };
                let path: Vec<PathSeg> = vec!["bindings".into(), target.as_str().into(), "groupTeam".into()];
                let mut empty = Vec::new();
                if team.group.trim().is_empty() {
                    empty.push("group");
                }
                if team.business_unit.trim().is_empty() {
                    empty.push("businessUnit");
                }
                if team.security_roles.as_ref().is_some_and(|r| r.iter().any(|r| r.trim().is_empty())) {
                    empty.push("securityRoles");
                }
                for field in empty {
                    self.report(
                        Kind::Role,
                        name,
                        &path,
                        Diagnostic::error(
                            "empty-binding",
                            format!("role `{name}` binds a group team with an empty `{field}` on `{target}`"),
                        ),
                    );
                }
                let key = team.group.to_lowercase();
                let other = match (direct.get(&key), through.get(&key)) {
                    (Some((other, on)), _) if *other != name => {
                        Some(format!("binds group {} on target `{on}`", team.group))
                    }
                    (_, Some(other)) if *other != name => {
                        Some(format!("binds a Microsoft Entra group team of group {} too", team.group))
                    }
                    _ => None,
                };
                if let Some(what) = other {
                    let other = direct.get(&key).map(|(o, _)| *o).or(through.get(&key).copied()).expect("found above");
                    self.report(
                        Kind::Role,
                        name,
                        &path,
                        Diagnostic::error(
                            "shared-binding",
                            format!("role `{name}` binds the Microsoft Entra group team of group {} on `{target}`, and role `{other}` {what}; the group's members would be two roles' holders", team.group),
                        )
                        .help("each Entra group belongs to one keyward role: merge the roles, or give the team a group of its own"),
                    );
                }
                through.entry(key).or_insert(name);
            }
        }
    }
}
