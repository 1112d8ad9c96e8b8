//! When a live object changed outside keyward, on Active Directory: its `whenChanged`.
//!
//! AD keeps no `modifiersName`; who made a change is only in the DC's security event log
//! (events 4738, 4728, 4729 and the like), which LDAP does not serve. So an attribution on AD
//! has a time and no actor. `whenChanged` is the time of the object's last change, to the
//! second, whatever it was: for a membership the group's (adding or removing a member changes
//! the group), for an account change the account's. It is not replicated: each DC sets it when
//! it applies the change, so two DCs may differ by the replication delay.

use super::*;
use crate::model::{Attribution, Binding};

/// How many distinct objects one call looks up at most (one search each).
const MAX_LOOKUPS: usize = 100;

/// The object whose `whenChanged` dates a change: (is it a group, its name), and what was done
/// outside keyward (a revoke undoes a member added, an assign a member removed).
fn object_of(op: &Operation) -> Option<((bool, String), &'static str)> {
    match op {
        Operation::Revoke { principal: Principal::User(_), binding: Binding::Group(g) } => {
            Some(((true, g.clone()), "Add member to group"))
        }
        Operation::Assign { principal: Principal::User(_), binding: Binding::Group(g) } => {
            Some(((true, g.clone()), "Remove member from group"))
        }
        Operation::UpdateUser { user_name, .. } => Some(((false, user_name.clone()), "Update user")),
        Operation::SetUserActive { user_name, .. } => Some(((false, user_name.clone()), "Enable or disable user")),
        Operation::DeleteUser { user_name } => Some(((false, user_name.clone()), "Create or change user")),
        _ => None,
    }
}

/// A GeneralizedTime as AD writes it (`20261204233614.0Z`): UTC, to the second.
pub fn generalized_time(v: &str) -> Option<crate::model::Timestamp> {
    let digits = v.get(..14)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !v.ends_with('Z') {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").ok().map(|t| t.and_utc())
}

impl LdapProvider {
    /// `whenChanged` of the object each change concerns (see the module's documentation).
    pub(super) async fn attribute_when_changed(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        let none = vec![None; changes.len()];
        let wanted: Vec<Option<((bool, String), &'static str)>> =
            changes.iter().map(|c| object_of(&c.operation)).collect();
        if wanted.iter().all(Option::is_none) {
            return none;
        }
        let Ok(client) = self.client().await else { return none };
        let mut times: HashMap<(bool, String), Option<crate::model::Timestamp>> = HashMap::new();
        for ((group, name), _) in wanted.iter().flatten() {
            let k = (*group, key(name));
            if times.contains_key(&k) || times.len() >= MAX_LOOKUPS {
                continue;
            }
            let (base, filter) = if *group {
                (
                    &self.conn.groups_base,
                    format!("(&{}(cn={}))", group_filter(self.conn.flavor), dn::filter_value(name)),
                )
            } else {
                let filter =
                    format!("(&{}({}={}))", user_filter(self.conn.flavor), self.conn.user_key, dn::filter_value(name));
                (&self.conn.users_base, filter)
            };
            let found = match client.search_paged(base, &filter, &["whenChanged"], 2, false).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(target_name = %self.target, error = %e, "cannot read whenChanged; drift is shown without when it was made");
                    return none;
                }
            };
            // Exactly one entry, or the time is not known.
            let time = match found.as_slice() {
                [e] => first(&client::attrs_by_lower_name(e), "whenChanged").and_then(|v| generalized_time(v)),
                _ => None,
            };
            times.insert(k, time);
        }
        wanted
            .iter()
            .map(|w| {
                let ((group, name), activity) = w.as_ref()?;
                let time = (*times.get(&(*group, key(name)))?)?;
                Some(Attribution { actor: None, time, activity: activity.to_string() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_times_are_read_as_ad_writes_them() {
        let t = generalized_time("20261204233614.0Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-04T23:36:14+00:00");
        assert_eq!(generalized_time("20261204233614Z").unwrap(), t);
        assert_eq!(generalized_time("2026120423361"), None);
        assert_eq!(generalized_time("20261304233614.0Z"), None);
        assert_eq!(generalized_time("20261204233614.0+0100"), None);
        assert_eq!(generalized_time("2026120423361x.0Z"), None);
    }
}
