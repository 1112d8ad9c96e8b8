//! Accounts holding security roles that need a licence the target records them without
//! (Dataverse: an enabled account in an access mode that needs a licence, `islicensed` false).
//! Targets that derive a licence from roles without recording who has one (Finance &
//! Operations) cannot say who lacks one, and list nobody here.

use std::collections::BTreeMap;

use super::{Item, Section};
use crate::model::{BindingKind, DesiredState, LiveTarget, Name};

pub(super) fn unlicensed(desired: &DesiredState, live: &BTreeMap<Name, LiveTarget>) -> Vec<Item> {
    let mut items = Vec::new();
    for (t, lt) in live {
        if lt.licences.is_empty() {
            continue;
        }
        let accounts = lt.accounts.iter().filter(|a| a.active).map(|a| (a.id.as_str(), a.user_name.as_str(), true));
        let services = lt
            .service_accounts
            .iter()
            .filter(|s| s.active != Some(false))
            .map(|s| (s.id.as_str(), s.name.as_str(), false));
        for (id, name, person) in accounts.chain(services) {
            let Some(rec) = lt.licences.get(id).filter(|r| !r.exempt && !r.licensed) else { continue };
            let mut roles: Vec<String> = lt
                .bindings
                .iter()
                .filter(|b| b.binding.kind() == BindingKind::SecurityRole && b.members.iter().any(|m| m == id))
                .map(|b| format!("`{}`", b.binding.object_name()))
                .collect();
            if roles.is_empty() {
                continue;
            }
            roles.sort();
            let who = if person {
                desired
                    .users
                    .iter()
                    .find(|(_, u)| u.user_name.eq_ignore_ascii_case(name))
                    .map_or_else(|| name.to_string(), |(n, _)| n.to_string())
            } else {
                name.to_string()
            };
            let kind = if person { "user" } else { "service-account" };
            items.push(Item {
                section: Section::Licences,
                subject: format!("{t}.{kind}.{who}"),
                target: Some(t.to_string()),
                date: None,
                days: None,
                status: "unlicensed".into(),
                detail: format!(
                    "holds security role{} {} in access mode {}, which needs a licence; the target records none for the account",
                    if roles.len() == 1 { "" } else { "s" },
                    roles.join(", "),
                    rec.access_mode
                ),
            });
        }
    }
    items
}
