//! Microsoft Entra group teams, and the security roles teams hold.
//!
//! - A Microsoft Entra group team (`teamtype` 2 or 3) is read as the binding
//!   `{groupTeam: {group: OBJECT_ID, businessUnit: UNIT}}` with its members and roles; its
//!   members come from the Entra group, so keyward never writes `teammembership_association` for
//!   it (the planner keeps the group's members on the Graph target instead).
//! - The security roles of every team keyward reads (owner and group teams) are read from the
//!   `teamrolescollection` intersect (one paged request) into [`LiveTarget::team_roles`]: a role
//!   held through a team is visible to the plan and to segregation-of-duties checks for the
//!   team's members.
//! - A group team whose binding lists `securityRoles` gets exactly those: the copies of the
//!   team's business unit are associated and disassociated through
//!   `teams(ID)/teamroles_association` (reference sheet §3.3). Without the list, a team's roles are
//!   read and never changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use reqwest::Method;
use serde_json::json;

use super::wire::{WireRole, WireTeam};
use super::{DataverseProvider, Effect, Pending, State, key};
use crate::model::{Binding, GroupTeamRef, LiveBinding, LiveTarget, digest};
use crate::provider::ApplyError;

/// What apply needs of a group team read.
#[derive(Debug, Clone)]
pub(super) struct GroupTeamEntry {
    pub id: String,
    /// The business unit's id.
    pub unit: String,
    /// Ids of the roles the team holds.
    pub roles: BTreeSet<String>,
}

/// The key of a group team in [`State::group_teams`]: the group's object id and the unit's
/// name, lower-cased.
pub(super) fn team_key(group: &str, unit: &str) -> (String, String) {
    (key(group), key(unit))
}

/// Adds the Microsoft Entra group teams to `live` as bindings, and every team's roles.
pub(super) fn normalise(
    state: &mut State,
    live: &mut LiveTarget,
    teams: &[WireTeam],
    team_members: &[(String, String)],
    team_roles: &[(String, String)],
    roles: &[WireRole],
) {
    let role_name: HashMap<&str, &str> = roles.iter().map(|r| (r.id.as_str(), r.name.as_str())).collect();
    let mut roles_of: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (team, role) in team_roles {
        roles_of.entry(team.as_str()).or_default().insert(role.as_str());
    }
    let names = |team: &str| -> Vec<String> {
        let mut out: Vec<String> =
            roles_of.get(team).into_iter().flatten().filter_map(|r| role_name.get(r).map(|n| n.to_string())).collect();
        out.sort_by_key(|n| n.to_lowercase());
        out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        out
    };
    // Owner teams were read as bindings already: add their roles.
    for t in teams.iter().filter(|t| t.managed()) {
        let held = names(&t.id);
        if !held.is_empty() {
            live.team_roles.insert(format!("team:{}", t.id), held);
        }
    }
    let mut members_of: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (team, user) in team_members {
        members_of.entry(team.as_str()).or_default().insert(user.as_str());
    }
    for t in teams.iter().filter(|t| t.entra_group_team()) {
        let (Some(group), Some(unit)) = (&t.group, &t.business_unit) else { continue };
        let held = names(&t.id);
        let members: Vec<String> = members_of.get(t.id.as_str()).into_iter().flatten().map(|m| m.to_string()).collect();
        let id = format!("team:{}", t.id);
        let unit_name = state.unit_name(unit);
        live.bindings.push(LiveBinding {
            id: id.clone(),
            binding: Binding::GroupTeam(GroupTeamRef {
                group: group.clone(),
                business_unit: unit_name.clone(),
                security_roles: Some(held.clone()),
            }),
            fingerprint: digest(&(&t.id, &members, &held)),
            members,
        });
        if !held.is_empty() {
            live.team_roles.insert(id, held);
        }
        // Only ids of roles read (checked as GUIDs) go into request paths.
        let role_ids = roles_of
            .get(t.id.as_str())
            .into_iter()
            .flatten()
            .filter(|r| role_name.contains_key(*r))
            .map(|r| r.to_string())
            .collect();
        state.group_teams.insert(
            team_key(group, &unit_name),
            GroupTeamEntry { id: t.id.clone(), unit: unit.clone(), roles: role_ids },
        );
    }
}

impl DataverseProvider {
    /// The writes that give a group team exactly the roles `team` lists: the copies of the
    /// team's business unit, associated or disassociated one by one.
    pub(super) fn team_roles(
        &self,
        state: &State,
        team: &GroupTeamRef,
        i: usize,
        out: &mut Vec<Pending>,
    ) -> Result<(), ApplyError> {
        let Some(want) = &team.security_roles else { return Ok(()) };
        let entry = state.group_teams.get(&team_key(&team.group, &team.business_unit)).ok_or_else(|| {
            ApplyError::conflict(format!(
                "the Microsoft Entra group team of group {} in business unit {} does not exist (any more)",
                team.group, team.business_unit
            ))
        })?;
        let mut wanted: BTreeMap<String, &str> = BTreeMap::new();
        for name in want {
            let role = state.roles.get(&(key(name), entry.unit.clone())).ok_or_else(|| {
                ApplyError::conflict(format!(
                    "security role {name} has no copy in business unit `{}` of the team",
                    state.unit_name(&entry.unit)
                ))
            })?;
            wanted.insert(role.clone(), name);
        }
        for role in wanted.keys().filter(|r| !entry.roles.contains(*r)) {
            out.push(Pending {
                op: self.op(
                    Method::POST,
                    &format!("teams({})/teamroles_association/$ref", entry.id),
                    Some(json!({"@odata.id": self.entity("roles", role)})),
                    None,
                ),
                changes: vec![i],
                effect: Effect::Membership { adding: true },
            });
        }
        for role in entry.roles.iter().filter(|r| !wanted.contains_key(*r)) {
            out.push(Pending {
                op: self.op(
                    Method::DELETE,
                    &format!("teams({})/teamroles_association({role})/$ref", entry.id),
                    None,
                    None,
                ),
                changes: vec![i],
                effect: Effect::Membership { adding: false },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const UNIT: &str = "00000000-0000-0000-0000-0000000000b1";
    const GROUP: &str = "1b0c3a43-5d0e-4c2e-9d7a-6f1f8b6f1c11";
    const ROLE: &str = "00000000-0000-0000-0000-0000000000a1";

    fn team(id: &str, team_type: i64, group: Option<&str>) -> WireTeam {
        WireTeam::parse(&json!({"teamid": id, "name": format!("team {id}"), "teamtype": team_type,
            "_businessunitid_value": UNIT, "azureactivedirectoryobjectid": group}))
        .unwrap()
    }

    #[test]
    fn a_group_teams_group_must_be_a_guid() {
        let e = WireTeam::parse(&json!({"teamid": "00000000-0000-0000-0000-000000000001", "name": "t",
            "teamtype": 2, "azureactivedirectoryobjectid": "../teams"}))
        .unwrap_err();
        assert!(e.contains("a team row is refused"), "{e}");
    }

    #[test]
    fn group_teams_are_read_with_their_unit_members_and_roles_and_only_known_role_ids_are_kept() {
        let mut state = State::default();
        state.business_units.insert(UNIT.into(), "Sales".into());
        let mut live = LiveTarget::default();
        let owner = "00000000-0000-0000-0000-000000000001";
        let group_team = "00000000-0000-0000-0000-000000000002";
        let teams = [team(owner, 0, None), team(group_team, 2, Some(GROUP))];
        let members = [(group_team.to_string(), "u1".to_string())];
        // A role id the roles read does not have (a hostile intersect row) is not taken.
        let team_roles = [
            (group_team.to_string(), ROLE.to_string()),
            (group_team.to_string(), "x)/$ref?".to_string()),
            (owner.to_string(), ROLE.to_string()),
        ];
        let roles = [WireRole { id: ROLE.into(), name: "Sales Manager".into(), business_unit: UNIT.into() }];
        normalise(&mut state, &mut live, &teams, &members, &team_roles, &roles);

        let b = &live.bindings[0];
        assert_eq!(
            b.binding,
            Binding::GroupTeam(GroupTeamRef {
                group: GROUP.into(),
                business_unit: "Sales".into(),
                security_roles: Some(vec!["Sales Manager".into()])
            })
        );
        assert_eq!(
            (b.id.as_str(), b.members.as_slice()),
            (format!("team:{group_team}").as_str(), &["u1".to_string()][..])
        );
        assert_eq!(live.team_roles[&format!("team:{owner}")], vec!["Sales Manager"]);
        let entry = &state.group_teams[&team_key(GROUP, "sales")];
        assert_eq!(entry.roles.iter().collect::<Vec<_>>(), vec![ROLE]);
    }
}
