//! Owners resolved to people, and people found by their GitHub logins.

use std::collections::BTreeSet;

use crate::model::{DesiredState, Name, Owner, Role};

/// Where a role's owners come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnersFrom {
    /// The role's own `owners`.
    Role,
    /// `governance.defaultOwners`, because the role names none (or does not exist).
    Default,
    /// Nobody: neither the role nor keyward.yaml names owners.
    Nobody,
}

/// The Users `owners` stand for: users themselves, and the members of groups of reviewers.
/// Names that resolve to nothing are left out (validation reports them).
pub fn people(state: &DesiredState, owners: &[Owner]) -> BTreeSet<Name> {
    let mut out = BTreeSet::new();
    for o in owners {
        match o {
            Owner::User(u) => {
                if state.users.contains_key(u) {
                    out.insert(u.clone());
                }
            }
            Owner::Group(g) => {
                if let Some(group) = state.settings.governance.reviewers.get(&g.group) {
                    out.extend(group.members.iter().filter(|m| state.users.contains_key(*m)).cloned());
                }
            }
        }
    }
    out
}

/// The owners that decide for `role`: its own, else the default owners.
pub fn of_role<'a>(state: &'a DesiredState, role: Option<&'a Role>) -> (&'a [Owner], OwnersFrom) {
    match role {
        Some(r) if !r.owners.is_empty() => (&r.owners, OwnersFrom::Role),
        _ if !state.settings.governance.default_owners.is_empty() => {
            (&state.settings.governance.default_owners, OwnersFrom::Default)
        }
        _ => (&[], OwnersFrom::Nobody),
    }
}

/// The User whose `github` login is `login` (GitHub logins are not case-sensitive).
pub fn by_login<'a>(state: &'a DesiredState, login: &str) -> Option<&'a Name> {
    let login = login.strip_prefix('@').unwrap_or(login);
    state.users.iter().find(|(_, u)| u.github.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(login))).map(|(n, _)| n)
}

/// The Users `holder` stands for in approvals: the User of that name. A service account is
/// nobody's approval, but its owner gains what it gains.
pub fn beneficiaries(state: &DesiredState, holder: &Holder) -> BTreeSet<Name> {
    match holder {
        Holder::User(u) => BTreeSet::from([u.clone()]),
        Holder::ServiceAccount(s) => state.service_accounts.get(s).map(|sa| sa.owner.clone()).into_iter().collect(),
    }
}

/// Who holds an assignment: a User or a ServiceAccount, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Holder {
    User(Name),
    ServiceAccount(Name),
}

impl Holder {
    pub fn name(&self) -> &Name {
        match self {
            Holder::User(n) | Holder::ServiceAccount(n) => n,
        }
    }
    pub fn kind(&self) -> crate::model::Kind {
        match self {
            Holder::User(_) => crate::model::Kind::User,
            Holder::ServiceAccount(_) => crate::model::Kind::ServiceAccount,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::User(n) => write!(f, "user {n}"),
            Holder::ServiceAccount(n) => write!(f, "service account {n}"),
        }
    }
}

/// Every holder of the configuration with their grants, users first.
pub fn holders(state: &DesiredState) -> impl Iterator<Item = (Holder, &[crate::model::RoleGrant])> {
    state
        .users
        .iter()
        .map(|(n, u)| (Holder::User(n.clone()), u.roles.as_slice()))
        .chain(state.service_accounts.iter().map(|(n, s)| (Holder::ServiceAccount(n.clone()), s.roles.as_slice())))
}
