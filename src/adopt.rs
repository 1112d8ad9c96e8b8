//! Adopting live state: the Users and Roles a configuration needs so that planning against a
//! target it did not yet describe shows no changes (`keyward import`).
//!
//! Guarantees: a pure function of the desired state and one target's live state; it only adds
//! resources (never edits existing ones), only for accounts in `ownership.scope` that are not
//! protected, with names valid for `[a-z0-9][a-z0-9._-]*` and unique per kind. What it cannot
//! express without editing existing files (an existing user's membership of a group it imports)
//! it reports as a note.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    DesiredState, LiveTarget, MAX_NAME_LEN, Name, Role, RoleGrant, RoleKind, User, UserKind, UserStatus,
};

/// What an import adds.
#[derive(Debug, Default)]
pub struct Adoption {
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    /// Things left for a person to do by hand.
    pub notes: Vec<String>,
}

/// Turns `s` into a valid, unused name: lowercase, other characters as `-`, a numeric suffix
/// when taken.
pub fn derive_name(s: &str, fallback: &str, taken: &mut BTreeSet<String>) -> Name {
    let mut base: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    let trimmed = base.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    base = trimmed.trim_end_matches(['-', '.', '_']).to_string();
    if base.is_empty() {
        base = fallback.to_string();
    }
    base.truncate(MAX_NAME_LEN - 6);
    let mut candidate = base.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    Name::new(candidate).expect("derived names are valid")
}

/// The Users and Roles to add so that `target` needs no changes for the accounts and groups the
/// configuration does not yet have.
pub fn adopt(desired: &DesiredState, target: &Name, live: &LiveTarget) -> Adoption {
    let settings = &desired.settings;
    let mut out = Adoption::default();
    let multi_target = settings.targets.len() > 1;

    // Roles: every live binding no role binds on this target.
    let mut role_names: BTreeSet<String> = desired.roles.keys().map(|n| n.to_string()).collect();
    let mut role_of_binding: BTreeMap<String, Name> = BTreeMap::new(); // live binding id -> role
    let mut imported_roles: BTreeSet<Name> = BTreeSet::new();
    for b in &live.bindings {
        // Field security profiles follow DataClassifications; they are not roles to import. A
        // Microsoft Entra group team takes its members from an Entra group (read by its object
        // id here): its role is the group's, imported from the Graph target.
        if matches!(
            b.binding.kind(),
            crate::model::BindingKind::FieldSecurityProfile | crate::model::BindingKind::GroupTeam
        ) {
            continue;
        }
        let existing = desired.roles.values().find(|r| r.bindings.get(target) == Some(&b.binding));
        let name = match existing {
            Some(r) => r.name.clone(),
            None => {
                let name = derive_name(&b.binding.object_name(), "role", &mut role_names);
                out.roles.push(Role {
                    kind: RoleKind::Tag,
                    name: name.clone(),
                    description: Some(format!("Imported from {target}: {}", b.binding.label())),
                    privileged: false,
                    duties: Vec::new(),
                    requires: None,
                    bindings: BTreeMap::from([(target.clone(), b.binding.clone())]),
                    owners: Vec::new(),
                    contents: None,
                });
                imported_roles.insert(name.clone());
                name
            }
        };
        role_of_binding.insert(b.id.clone(), name);
    }

    // Users: every live account in scope, not protected, that no User names.
    let known: BTreeSet<String> = desired.users.values().map(|u| u.user_name.to_lowercase()).collect();
    let mut user_names: BTreeSet<String> = desired.users.keys().map(|n| n.to_string()).collect();
    let mut name_by_user_name: BTreeMap<String, Name> =
        desired.users.values().map(|u| (u.user_name.to_lowercase(), u.name.clone())).collect();
    let mut adopted = Vec::new();
    for a in &live.accounts {
        let key = a.user_name.to_lowercase();
        if known.contains(&key) || !settings.scope.contains(&a.user_name) || settings.is_protected(&a.user_name) {
            continue;
        }
        let local = a.user_name.split('@').next().unwrap_or(&a.user_name);
        let name = derive_name(local, "user", &mut user_names);
        name_by_user_name.insert(key, name.clone());
        adopted.push((a, name));
    }
    for (a, name) in adopted {
        let mut roles: Vec<RoleGrant> = live
            .bindings
            .iter()
            .filter(|b| b.members.iter().any(|m| m == &a.id))
            .filter_map(|b| role_of_binding.get(&b.id).cloned())
            .map(RoleGrant::Name)
            .collect();
        roles.sort_by(|x, y| x.role().cmp(y.role()));
        roles.dedup();
        let attrs = &a.attrs;
        out.users.push(User {
            kind: UserKind::Tag,
            name,
            user_name: a.user_name.clone(),
            display_name: attrs.display_name.clone(),
            given_name: attrs.given_name.clone(),
            family_name: attrs.family_name.clone(),
            email: attrs.email.clone(),
            department: attrs.department.clone(),
            job_title: attrs.job_title.clone(),
            manager: attrs.manager.as_ref().and_then(|m| name_by_user_name.get(&m.to_lowercase()).cloned()),
            employee_id: attrs.employee_id.clone(),
            github: None,
            status: if a.active { UserStatus::Active } else { UserStatus::Disabled },
            roles,
            targets: multi_target.then(|| crate::model::UserTargets::List(vec![target.clone()])),
        });
    }

    // Existing users who are members of an imported role's group: their files need the role.
    for u in desired.users.values() {
        let Some(acc) = live.accounts.iter().find(|a| a.user_name.eq_ignore_ascii_case(&u.user_name)) else {
            continue;
        };
        for b in &live.bindings {
            let Some(role) = role_of_binding.get(&b.id) else { continue };
            if imported_roles.contains(role) && b.members.contains(&acc.id) {
                out.notes.push(format!(
                    "user {} is a member of {}: add `- {role}` to its roles, or the next apply removes the membership",
                    u.name,
                    b.binding.label()
                ));
            }
        }
    }
    // Service accounts are not imported; those in imported groups need a hand too.
    for sa in &live.service_accounts {
        for b in &live.bindings {
            let Some(role) = role_of_binding.get(&b.id) else { continue };
            if imported_roles.contains(role) && b.members.contains(&sa.id) {
                out.notes.push(if desired.service_accounts.contains_key(sa.name.as_str()) {
                    format!(
                        "service account {} is a member of {}: add `- {role}` to its roles, or the next apply removes the membership",
                        sa.name,
                        b.binding.label()
                    )
                } else {
                    format!("service account {} (a member of {}) is not imported", sa.name, b.binding.label())
                });
            }
        }
    }
    out.users.sort_by(|a, b| a.name.cmp(&b.name));
    out.roles.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_are_valid_and_unique() {
        let mut taken = BTreeSet::from(["ann".to_string()]);
        assert_eq!(derive_name("Ann", "user", &mut taken).as_str(), "ann-2");
        assert_eq!(derive_name("Ann", "user", &mut taken).as_str(), "ann-3");
        assert_eq!(derive_name("  Finance Admins (EU)", "role", &mut taken).as_str(), "finance-admins--eu");
        assert_eq!(derive_name("__", "role", &mut taken).as_str(), "role");
        assert_eq!(derive_name("Ünïcode", "user", &mut taken).as_str(), "n-code");
    }
}
