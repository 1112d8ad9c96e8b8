//! Turning the rows read into the live state: accounts, security roles (one binding per name,
//! whatever the unit of the copy), business units, owner teams, field security profiles.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::wire::{WireBusinessUnit, WirePermission, WireRole, WireTeam, WireUser};
use super::{ProfileEntry, State, UserEntry, key};
use crate::model::{
    Binding, BusinessUnits, FieldProfileRef, LiveAccount, LiveBinding, LiveTarget, OutOfReach, UserAttrs, digest,
};

/// Turns the rows read into the live state, and remembers the ids apply needs.
#[allow(clippy::too_many_arguments)]
pub(super) fn normalise(
    slot: &mut Option<State>,
    units: &[WireBusinessUnit],
    roles: &[WireRole],
    users: &[WireUser],
    user_roles: &[(String, String)],
    profiles: &[(String, String)],
    permissions: &[WirePermission],
    user_profiles: &[(String, String)],
    teams: &[WireTeam],
    team_members: &[(String, String)],
) -> LiveTarget {
    let mut state = State {
        business_units: units.iter().map(|u| (u.id.clone(), u.name.clone())).collect(),
        root_unit: units.iter().find(|u| u.parent.is_none()).map(|u| u.id.clone()),
        ..State::default()
    };
    let mut live = LiveTarget::default();
    for u in users {
        // Application users are service principals, and rows without a domain name are
        // built-in accounts (SYSTEM, INTEGRATION): neither is a person keyward manages.
        if u.application {
            super::appusers::read_app_user(&mut state, &mut live, u);
            continue;
        }
        let Some(name) = u.domain_name.as_ref() else { continue };
        super::appusers::record_licence(&mut live, u);
        state.users.insert(
            key(name),
            UserEntry { id: u.id.clone(), business_unit: u.business_unit.clone(), etag: u.etag.clone() },
        );
        let attrs = UserAttrs {
            given_name: u.first_name.clone(),
            family_name: u.last_name.clone(),
            email: u.email.clone(),
            job_title: u.job_title.clone(),
            ..UserAttrs::default()
        };
        let fingerprint = match &u.etag {
            Some(t) => format!("etag:{t}"),
            None => digest(&(&u.id, name, &attrs, u.disabled)),
        };
        live.accounts.push(LiveAccount {
            id: u.id.clone(),
            user_name: name.clone(),
            attrs,
            active: !u.disabled,
            last_sign_in: None,
            registered_methods: None,
            fingerprint,
        });
    }
    // Security roles: one binding per name, whatever the business unit of the copy.
    let role_by_id: HashMap<&str, &WireRole> = roles.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut by_name: BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for r in roles {
        state.roles.insert((key(&r.name), r.business_unit.clone()), r.id.clone());
        let e = by_name.entry(key(&r.name)).or_insert_with(|| (r.name.clone(), BTreeSet::new(), BTreeSet::new()));
        e.2.insert(r.business_unit.clone());
        // The copy in the root business unit names the binding.
        if Some(&r.business_unit) == state.root_unit.as_ref() {
            e.0 = r.name.clone();
        }
    }
    let known: HashMap<&str, &UserEntry> = state.users.values().map(|u| (u.id.as_str(), u)).collect();
    for (user, role) in user_roles {
        if let Some(r) = role_by_id.get(role.as_str()) {
            by_name.get_mut(&key(&r.name)).expect("every role is indexed").1.insert(user.clone());
        }
    }
    for (k, (name, members, units_with_copy)) in &by_name {
        let binding = Binding::SecurityRole(name.clone());
        live.bindings.push(LiveBinding {
            id: format!("role:{k}"),
            binding: binding.clone(),
            members: members.iter().cloned().collect(),
            fingerprint: digest(&(k, members)),
        });
        // Who cannot hold it: people whose business unit has no copy, and new accounts when
        // the root unit has none.
        for u in known.values() {
            if let Some(bu) = &u.business_unit
                && !units_with_copy.contains(bu)
                && !members.contains(&u.id)
            {
                live.out_of_reach.push(OutOfReach {
                    binding: binding.clone(),
                    account: Some(u.id.clone()),
                    scope: format!("business unit `{}`", state.unit_name(bu)),
                });
            }
        }
        if let Some(root) = &state.root_unit
            && !units_with_copy.contains(root)
        {
            live.out_of_reach.push(OutOfReach {
                binding,
                account: None,
                scope: format!("business unit `{}`, where new users are created", state.unit_name(root)),
            });
        }
    }
    // Owner teams: their members are the users keyward names; other teams are left alone.
    let mut members_of_team: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for (team, user) in team_members {
        members_of_team.entry(team.as_str()).or_default().insert(user.clone());
    }
    for t in teams.iter().filter(|t| t.managed()) {
        let members: Vec<String> = members_of_team.remove(t.id.as_str()).unwrap_or_default().into_iter().collect();
        live.bindings.push(LiveBinding {
            id: format!("team:{}", t.id),
            binding: Binding::Team(t.name.clone()),
            fingerprint: digest(&(&t.id, &members)),
            members,
        });
        state.teams.insert(key(&t.name), t.id.clone());
    }
    crate::model::feed::sort_out_of_reach(&mut live.out_of_reach);
    // Field security profiles.
    let mut members_of: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for (user, profile) in user_profiles {
        members_of.entry(profile.as_str()).or_default().insert(user.clone());
    }
    for (id, name) in profiles {
        let mut entry = ProfileEntry { id: id.clone(), ..ProfileEntry::default() };
        for p in permissions.iter().filter(|p| &p.profile == id) {
            entry.columns.insert(p.column.clone(), (p.id.clone(), p.can_read));
        }
        let mut columns: Vec<String> = entry.columns.iter().filter(|(_, (_, r))| *r).map(|(c, _)| c.clone()).collect();
        columns.sort();
        let members: Vec<String> = members_of.remove(id.as_str()).unwrap_or_default().into_iter().collect();
        live.bindings.push(LiveBinding {
            id: id.clone(),
            binding: Binding::FieldSecurityProfile(FieldProfileRef { name: name.clone(), columns: columns.clone() }),
            fingerprint: digest(&(id, &columns, &members)),
            members,
        });
        state.profiles.insert(key(name), entry);
    }
    live.business_units = business_units(&state, &by_name);
    live.licensing = Some(super::appusers::licensing());
    *slot = Some(state);
    live
}

/// The units by name with the roles each holds a copy of, and each account's unit.
fn business_units(
    state: &State,
    by_name: &BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)>,
) -> Option<BusinessUnits> {
    let root = state.root_unit.as_ref().map(|r| state.unit_name(r))?;
    let mut roles: BTreeMap<String, Vec<String>> =
        state.business_units.values().map(|n| (n.clone(), Vec::new())).collect();
    for (name, _, units) in by_name.values() {
        for u in units {
            roles.entry(state.unit_name(u)).or_default().push(name.clone());
        }
    }
    let of_account = state
        .users
        .values()
        .chain(state.app_users.values())
        .filter_map(|u| Some((u.id.clone(), state.unit_name(u.business_unit.as_ref()?))))
        .collect();
    Some(BusinessUnits { root, roles, of_account })
}
