//! Who gave or took a security role outside keyward, from the `audits` table: a drift change
//! that revokes a role was given outside git (audit action 55, "Assign Role To User"), one that
//! assigns a role was taken (56, "Remove Role From User"). The audit row names the user whose
//! roles changed (`_objectid_value`) and the user who made the change (`_userid_value`), not the
//! role: the attribution is the newest such row for the user.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;

use super::{DataverseProvider, HISTORY_PAGE, key};
use crate::model::feed::LiveChange;
use crate::model::{Attribution, Binding, LiveTarget};
use crate::plan::{Change, Operation, Principal};

/// The ids of the users of `last` once `changes` are applied to it, by lower-cased domain name
/// (what a round of the change feed knows of the users, in place of a full read's state).
pub(super) fn users_after(last: &LiveTarget, changes: &[LiveChange]) -> HashMap<String, String> {
    let mut users: HashMap<String, String> =
        last.accounts.iter().map(|a| (key(&a.user_name), a.id.to_ascii_lowercase())).collect();
    for c in changes {
        match c {
            LiveChange::Account(a) => {
                let id = a.id.to_ascii_lowercase();
                users.retain(|_, v| *v != id);
                users.insert(key(&a.user_name), id);
            }
            LiveChange::AccountRemoved { id } => {
                let id = id.to_ascii_lowercase();
                users.retain(|_, v| *v != id);
            }
            _ => {}
        }
    }
    users
}

impl DataverseProvider {
    /// One request: the newest [`HISTORY_PAGE`] role audit rows. The users are those of the
    /// last full read, or of the state the last round of the change feed brought up to date.
    pub(super) async fn attribute_drift(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        let none = vec![None; changes.len()];
        let users: HashMap<String, String> = match &self.state {
            Some(state) => state.users.iter().map(|(k, u)| (k.clone(), u.id.to_ascii_lowercase())).collect(),
            None => self.fed_users.clone(),
        };
        if users.is_empty() {
            return none;
        }
        let wanted: Vec<Option<(String, i64)>> = changes
            .iter()
            .map(|c| {
                let (Operation::Assign { principal: Principal::User(u), binding: Binding::SecurityRole(_) }
                | Operation::Revoke { principal: Principal::User(u), binding: Binding::SecurityRole(_) }) =
                    &c.operation
                else {
                    return None;
                };
                let action = if matches!(c.operation, Operation::Revoke { .. }) { 55 } else { 56 };
                Some((users.get(&key(u))?.clone(), action))
            })
            .collect();
        if wanted.iter().all(Option::is_none) {
            return none;
        }
        let url = self.client.url(
            "audits",
            Some("$select=auditid,action,createdon,_objectid_value,_userid_value&$filter=action%20eq%2055%20or%20action%20eq%2056&$orderby=createdon%20desc"),
        );
        let prefer = format!("odata.maxpagesize={HISTORY_PAGE}");
        let page: Value = match self.client.send(Method::GET, url, None, None, Some(&prefer)).await {
            Ok((_, _, bytes)) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(e) => {
                tracing::warn!(target_name = %self.target, error = %e, "cannot read the audit table; drift is shown without who made it");
                return none;
            }
        };
        let names: HashMap<&str, &str> = users.iter().map(|(k, id)| (id.as_str(), k.as_str())).collect();
        let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_ascii_lowercase);
        let mut rows: Vec<&Value> = page.get("value").and_then(Value::as_array).into_iter().flatten().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.get("createdon").and_then(Value::as_str).unwrap_or_default()));
        wanted
            .iter()
            .map(|w| {
                let (user, action) = w.as_ref()?;
                let row = rows.iter().find(|r| {
                    r.get("action").and_then(Value::as_i64) == Some(*action)
                        && str_of(r, "_objectid_value").as_deref() == Some(user.as_str())
                })?;
                let time = chrono::DateTime::parse_from_rfc3339(row.get("createdon")?.as_str()?).ok()?;
                let actor =
                    str_of(row, "_userid_value").map(|a| names.get(a.as_str()).map_or(a.clone(), |n| n.to_string()));
                let activity = if *action == 55 { "Assign Role To User" } else { "Remove Role From User" };
                Some(Attribution { actor, time: time.with_timezone(&chrono::Utc), activity: activity.into() })
            })
            .collect()
    }
}
