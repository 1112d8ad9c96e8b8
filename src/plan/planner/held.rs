//! Accounts another directory masters (users synchronized from on-premises Active Directory):
//! the target refuses to change what it masters, so the planner plans none of it, and these
//! notices say what git asks for there and where to change it instead.

use super::*;
use crate::plan::Notice;

/// A notice for each account another directory masters on which git asks for a change the
/// target refuses, naming the fields and, when the configuration has one, the Active Directory
/// target to change them in. Targets whose live state has no such account cost nothing.
pub fn held_notices(input: &PlanInput) -> Vec<Notice> {
    let mut out = Vec::new();
    let user_keys: Vec<Cow<str>> = input.desired.users.values().map(|u| lower_key(&u.user_name)).collect();
    // Service accounts play no part here; their client ids are resolved only to build planners.
    let (app_ids, _) = super::appids::AppIds::resolve(input.desired, input.live, input.capabilities, Some(input.now));
    for (target_name, live) in input.live {
        if live.held_elsewhere.is_empty() {
            continue;
        }
        let Some(target) = input.desired.settings.targets.get(target_name) else { continue };
        let Some(caps) = input.capabilities.get(target_name) else { continue };
        let account_keys: Vec<Cow<str>> = live.accounts.iter().map(|a| lower_key(&a.user_name)).collect();
        let keys = Keys { users: &user_keys, accounts: &account_keys };
        let tp = TargetPlanner::new(input, target, caps, live, keys, &app_ids);
        tp.held_notices(&mut out);
    }
    out
}

impl<'a> TargetPlanner<'a> {
    fn held_notices(&self, out: &mut Vec<Notice>) {
        let there = self.directory_of_record();
        for (live, key) in self.live.accounts.iter().zip(self.account_keys) {
            let Some(held) = self.held.get(live.id.as_str()) else { continue };
            if !self.managed(&live.user_name) {
                continue;
            }
            let what = match self.present_users.get(key.as_ref()) {
                Some((name, user)) => {
                    let mut fields: Vec<&str> = UserField::ALL
                        .into_iter()
                        .filter(|f| held.fields.contains(f) && self.differs(user, live, *f).is_some())
                        .map(UserField::as_str)
                        .collect();
                    let active = user.status == UserStatus::Active;
                    if held.lifecycle && live.active != active && (active || !self.protected(&live.user_name)) {
                        fields.push("status");
                    }
                    if fields.is_empty() {
                        continue;
                    }
                    format!(
                        "user `{name}` is synchronized from {}, which owns {}: git's values differ and are not planned here; change them {there}",
                        held.source,
                        fields.join(", ")
                    )
                }
                None if held.lifecycle => {
                    let name = self.in_git.get(key.as_ref()).map_or(live.user_name.as_str(), |n| n.as_str());
                    if !live.active && self.desired.settings.removed_users != RemovedUsers::Delete {
                        continue;
                    }
                    format!(
                        "user `{name}` is no longer wanted here, but is synchronized from {}, which owns its status: it is not disabled or deleted here; do that {there}",
                        held.source
                    )
                }
                None => continue,
            };
            out.push(Notice {
                code: Notice::OWNED_ELSEWHERE.to_string(),
                target: self.target.name.clone(),
                message: format!("target `{}`: {what}", self.target.name),
            });
        }
    }

    /// Where a change to an account synchronized from Active Directory belongs: the
    /// configuration's Active Directory targets, by name, or else Active Directory itself.
    fn directory_of_record(&self) -> String {
        let ad: Vec<String> = self
            .desired
            .settings
            .targets
            .values()
            .filter(|t| t.connection.is_active_directory())
            .map(|t| format!("`{}`", t.name))
            .collect();
        if ad.is_empty() {
            "in Active Directory".to_string()
        } else {
            format!("in Active Directory (target {})", ad.join(", "))
        }
    }
}
