//! Microsoft Entra group teams (`{groupTeam: {group, businessUnit}}` on a Dataverse target):
//! the team takes its members from an Entra group, so holding the role means membership of that
//! group on the Graph target that holds it.
//!
//! - Before any target is planned, each group team's group is found on the Graph targets read
//!   (targets whose groups are Entra groups, [`Capabilities::entra_groups`]); none, or several,
//!   is a plan error naming the role and the group. The group's object id names the team, so
//!   a Dataverse target planned without a configured Graph target (`--target d365`) cannot
//!   plan the binding: a plan error says which targets to plan together.
//! - The Graph target plans the group's members as it plans `{group: NAME}`, and each of those
//!   changes notes what the membership gives: the Dataverse security roles of the team.
//! - The Dataverse target checks that the team exists (the group's object id in the named
//!   business unit; otherwise a plan error naming the role and the team) and plans no
//!   membership of its own; when the binding lists `securityRoles`, a team holding others is
//!   an update (drift when the baseline listed the same).

use super::*;
use std::collections::BTreeSet;

use super::bindings::Grantor;
use crate::model::GroupTeamRef;

/// A role bound to a group team, and where its group is.
pub(super) struct Delegation<'a> {
    pub role: &'a Name,
    pub team_target: &'a Name,
    pub team: &'a GroupTeamRef,
    /// The Graph target that holds the group, and the group's object id there.
    pub graph_target: &'a Name,
    pub object_id: &'a str,
}

/// The group teams of the configuration, resolved against the Graph targets read.
#[derive(Default)]
pub(super) struct GroupTeams<'a> {
    pub delegations: Vec<Delegation<'a>>,
}

impl<'a> GroupTeams<'a> {
    /// Finds each group team's group on the Graph targets read.
    pub fn resolve(input: &'a PlanInput<'a>) -> (Self, Vec<PlanError>) {
        let mut out = GroupTeams::default();
        let mut errors = Vec::new();
        let graph_read: Vec<(&'a Name, &'a LiveTarget)> = input
            .live
            .iter()
            .filter(|(name, _)| input.capabilities.get(*name).is_some_and(|c| c.entra_groups))
            .collect();
        let unread_graph = unread_graph_targets(input);
        for (role_name, role) in &input.desired.roles {
            for (team_target, binding) in &role.bindings {
                let Binding::GroupTeam(team) = binding else { continue };
                // The group's members are planned on the Graph target even when the Dataverse
                // target is not read (`--target`): otherwise the group would look unbound there.
                let team_read = input.live.contains_key(team_target);
                let holders: Vec<(&'a Name, &'a str)> = graph_read
                    .iter()
                    .filter_map(|(name, live)| {
                        let found = live.bindings.iter().find(|b| match &b.binding {
                            Binding::Group(g) => g.eq_ignore_ascii_case(&team.group),
                            _ => false,
                        })?;
                        Some((*name, found.id.as_str()))
                    })
                    .collect();
                match holders.as_slice() {
                    [(graph_target, object_id)] => {
                        out.delegations.push(Delegation { role: role_name, team_target, team, graph_target, object_id })
                    }
                    [] if !team_read => {}
                    // A Graph target that may hold the group was not read (`--target`): the
                    // team cannot be named without it.
                    [] if !unread_graph.is_empty() => errors.push(PlanError::GroupTeamGraphNotRead {
                        target: team_target.clone(),
                        role: role_name.clone(),
                        group: team.group.clone(),
                        unread: unread_graph.iter().map(|t| format!("target `{t}`")).collect::<Vec<_>>().join(", "),
                        command: together(input, &unread_graph),
                    }),
                    [] => errors.push(PlanError::GroupTeamWithoutGroup {
                        target: team_target.clone(),
                        role: role_name.clone(),
                        group: team.group.clone(),
                    }),
                    many => errors.push(PlanError::GroupTeamGroupAmbiguous {
                        target: team_target.clone(),
                        role: role_name.clone(),
                        group: team.group.clone(),
                        holders: many.iter().map(|(t, _)| format!("`{t}`")).collect::<Vec<_>>().join(", "),
                    }),
                }
            }
        }
        (out, errors)
    }

    fn of_role(&self, team_target: &Name, role: &Name) -> Option<&Delegation<'a>> {
        self.delegations.iter().find(|d| d.team_target == team_target && d.role == role)
    }
}

/// The configured Graph targets (whose groups are Entra groups) that were not read.
fn unread_graph_targets<'a>(input: &'a PlanInput<'a>) -> Vec<&'a Name> {
    input
        .desired
        .settings
        .targets
        .values()
        .filter(|t| !input.live.contains_key(&t.name))
        .filter(|t| crate::model::capabilities(t.provider()).entra_groups)
        .map(|t| &t.name)
        .collect()
}

/// The `--target` options that read the unread Graph targets with those read.
fn together(input: &PlanInput, unread: &[&Name]) -> String {
    let names = unread.iter().copied().chain(input.live.keys());
    names.map(|n| format!("--target {n}")).collect::<Vec<_>>().join(" ")
}

/// The live group team of `object_id` in business unit `unit`.
fn find_team<'a>(live: &'a LiveTarget, object_id: &str, unit: &str) -> Option<(&'a LiveBinding, &'a GroupTeamRef)> {
    live.bindings.iter().find_map(|b| match &b.binding {
        Binding::GroupTeam(t)
            if t.group.eq_ignore_ascii_case(object_id) && t.business_unit.eq_ignore_ascii_case(unit) =>
        {
            Some((b, t))
        }
        _ => None,
    })
}

/// Lower-cased and sorted, for comparing lists of role names.
fn role_set(names: &[String]) -> BTreeSet<String> {
    names.iter().map(|n| lower(n)).collect()
}

impl<'a> TargetPlanner<'a> {
    /// Plans the Dataverse side of a role bound to a group team: the team must exist; its
    /// listed roles are kept; its members are the group's, so none are planned here.
    pub(super) fn group_team(
        &self,
        role: &'a Name,
        team: &'a GroupTeamRef,
        out: &mut Vec<Change>,
        errors: &mut Vec<PlanError>,
    ) {
        let Some(d) = self.group_teams.and_then(|g| g.of_role(&self.target.name, role)) else { return };
        let Some((lb, live_team)) = find_team(self.live, d.object_id, &team.business_unit) else {
            errors.push(PlanError::MissingBinding {
                target: self.target.name.clone(),
                role: role.clone(),
                binding: format!("{} (group object id {})", Binding::GroupTeam(team.clone()).label(), d.object_id),
                kind: BindingKind::GroupTeam.to_string(),
            });
            return;
        };
        let Some(want) = &team.security_roles else { return };
        let unit = live_team.business_unit.as_str();
        let mut missing = false;
        for r in want {
            if self.live.business_units.as_ref().is_some_and(|u| !u.has_copy(unit, r)) {
                errors.push(PlanError::TeamRoleMissing {
                    target: self.target.name.clone(),
                    role: role.clone(),
                    security_role: r.clone(),
                    unit: unit.to_string(),
                });
                missing = true;
            }
        }
        let have = live_team.security_roles.clone().unwrap_or_default();
        if missing || role_set(want) == role_set(&have) {
            return;
        }
        let label = Binding::GroupTeam(team.clone()).label();
        let outside = self.input.baseline.is_some_and(|b| {
            b.roles.get(role).and_then(|r| r.bindings.get(&self.target.name)).is_some_and(|old| match old {
                Binding::GroupTeam(o) => o.security_roles.as_deref().is_some_and(|o| role_set(o) == role_set(want)),
                _ => false,
            })
        });
        let values = |roles: &[String]| {
            let mut v = Values::new();
            v.insert("binding".into(), json!(label));
            v.insert("securityRoles".into(), json!(roles));
            v
        };
        let mut resolved = live_team.clone();
        resolved.security_roles = Some(want.clone());
        out.push(
            Change::new(
                self.addr(ObjectKind::Role, role.as_str()),
                Action::Update,
                Reason::of(self.kind_for(outside), Why::TeamRolesDiffer { binding: label.clone(), outside }),
                Operation::UpdateBinding { binding: Binding::GroupTeam(resolved) },
            )
            .before(values(&have))
            .after(values(want))
            .fingerprint(lb.fingerprint.clone()),
        );
    }

    /// Plans, on a Graph target, the members of the groups of the group teams whose group it
    /// holds: the holders of the role bound to the team. Returns the groups planned.
    pub(super) fn delegated_groups(
        &self,
        out: &mut Vec<Change>,
        errors: &mut Vec<PlanError>,
    ) -> Vec<(BindingKind, String)> {
        let Some(groups) = self.group_teams else { return Vec::new() };
        let mut planned = Vec::new();
        for d in groups.delegations.iter().filter(|d| d.graph_target == &self.target.name) {
            let binding = Binding::Group(d.team.group.clone());
            let key = (binding.kind(), lower(&binding.object_name()));
            planned.push(key.clone());
            // The same role binds the group here too: planned once, as that binding.
            let direct = self.desired.roles.get(d.role).and_then(|r| r.bindings.get(&self.target.name));
            if direct.is_some_and(|b| (b.kind(), lower(&b.object_name())) == key) {
                continue;
            }
            let start = out.len();
            self.binding(Grantor::Role(d.role), &binding, &[d.role], out, errors);
            let roles = d
                .team_roles(self.input)
                .map(|r| {
                    if r.is_empty() {
                        "no security role yet".to_string()
                    } else {
                        format!("the security roles {}", r.join(", "))
                    }
                })
                .unwrap_or_else(|| "the team's security roles".to_string());
            let note = format!(
                "membership of group {} is role `{}` on `{}`: its Microsoft Entra group team (business unit {}) takes the group's members and gives them {roles}",
                d.team.group, d.role, d.team_target, d.team.business_unit
            );
            for c in &mut out[start..] {
                c.notes.push(note.clone().into());
            }
        }
        planned
    }
}

impl<'a> TargetPlanner<'a> {
    /// What the roles of `previous` bound on this target: their bindings here, and on a target
    /// whose groups are Entra groups, the groups of their group teams (kept here).
    pub(super) fn previously_bound(&self, previous: &'a DesiredState) -> Vec<(&'a Name, Binding)> {
        let mut out = Vec::new();
        for (role_name, role) in &previous.roles {
            if let Some(b) = role.bindings.get(&self.target.name) {
                out.push((role_name, b.clone()));
            }
            if self.caps.entra_groups {
                for b in role.bindings.values() {
                    if let Binding::GroupTeam(t) = b {
                        out.push((role_name, Binding::Group(t.group.clone())));
                    }
                }
            }
        }
        out
    }
}

impl Delegation<'_> {
    /// The security roles the team gives its members: those the binding lists, else those the
    /// team holds (as read); `None` when the team was not found.
    fn team_roles(&self, input: &PlanInput) -> Option<Vec<String>> {
        if let Some(listed) = &self.team.security_roles {
            return Some(listed.clone());
        }
        let live = input.live.get(self.team_target)?;
        let (_, t) = find_team(live, self.object_id, &self.team.business_unit)?;
        Some(t.security_roles.clone().unwrap_or_default())
    }
}
