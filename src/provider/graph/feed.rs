//! The change feed: delta queries on users and groups (§2.1 Delta).
//!
//! The cursor holds two delta links, `users` and `groups`. A full read first asks each
//! collection for a delta link "from now" (`$deltatoken=latest`, one request each), then
//! reads: a change made while the read runs is in the read or in the next round, or both.
//! A later round follows the link's pages to a new delta link: created and updated users come
//! whole (every selected property), removed ones as `@removed`; groups come with their
//! changed `displayName` and their `members@delta` (a removed member carries `@removed`).
//! An expired or unknown link (`400 syncStateNotFound`) and a synchronization reset (`410
//! Gone`) are [`FeedError::Expired`]: the caller reads in full.
//!
//! Not from the feed: directory roles, app roles, service accounts, eligibility and the
//! sign-in methods policy keep what the last full read saw until the next one.

use super::*;
use crate::model::feed::{Changes, Cursor, LiveChange};
use crate::provider::FeedError;

/// The first request of the users' feed: the properties a full read selects, and the manager.
fn users_query() -> String {
    format!("/users/delta?$select={USER_SELECT},manager")
}

/// The first request of the groups' feed.
const GROUPS_QUERY: &str = "/groups/delta?$select=displayName,members";

const USERS: &str = "users";
const GROUPS: &str = "groups";

/// A refused delta link: expired, unknown, or invalidated by a synchronization reset.
fn expired(e: &GraphError) -> bool {
    e.status() == Some(410)
        || (e.status() == Some(400)
            && e.code().is_some_and(|c| {
                c.eq_ignore_ascii_case("syncStateNotFound") || c.eq_ignore_ascii_case("resyncRequired")
            }))
}

/// A member reference of `…@delta`: its id, and whether it was removed.
fn reference(v: &Value) -> Option<(String, bool)> {
    Some((id_of(v)?, v.get("@removed").is_none()))
}

impl GraphProvider {
    fn feed_error(&self, what: &str, e: GraphError) -> FeedError {
        if expired(&e) {
            FeedError::Expired {
                target: self.target.clone(),
                message: format!("the {what} delta link was refused: {e}"),
            }
        } else {
            FeedError::Read(ProviderError::Remote {
                target: self.target.clone(),
                message: format!("cannot read the {what} changes from {}: {e}", self.client.root()),
            })
        }
    }

    /// A delta link that starts from now.
    async fn latest(&self, query: &str) -> Result<String, ProviderError> {
        let (_, link) = self.client.delta_round(&format!("{query}&$deltatoken=latest")).await.map_err(|e| {
            ProviderError::Remote {
                target: self.target.clone(),
                message: format!("cannot start the change feed at {}: {e}", self.client.root()),
            }
        })?;
        Ok(link)
    }

    pub(super) async fn read_with_feed(&mut self) -> Result<(LiveTarget, Option<Cursor>), ProviderError> {
        let users = self.latest(&users_query()).await?;
        let groups = self.latest(GROUPS_QUERY).await?;
        let live = self.read_live().await?;
        Ok((live, Some(Cursor([(USERS.to_string(), users), (GROUPS.to_string(), groups)].into()))))
    }

    pub(super) async fn changes_since(&mut self, cursor: &Cursor, last: &LiveTarget) -> Result<Changes, FeedError> {
        let (Some(users_link), Some(groups_link)) = (cursor.0.get(USERS), cursor.0.get(GROUPS)) else {
            return Err(FeedError::Expired {
                target: self.target.clone(),
                message: "the cursor is not one of this target's".into(),
            });
        };
        let (users, users_next) =
            self.client.delta_round(users_link).await.map_err(|e| self.feed_error("users'", e))?;
        let (groups, groups_next) =
            self.client.delta_round(groups_link).await.map_err(|e| self.feed_error("groups'", e))?;
        let mut changes = self.user_changes(&users, last).map_err(FeedError::Read)?;
        for g in &groups {
            let Some(id) = id_of(g) else { continue };
            if g.get("@removed").is_some() {
                changes.push(LiveChange::BindingRemoved { id });
                continue;
            }
            if let Some(name) = str_of(g, "displayName") {
                changes.push(LiveChange::Binding { id: id.clone(), binding: Binding::Group(name) });
            }
            for (member, added) in
                g.get("members@delta").and_then(Value::as_array).into_iter().flatten().filter_map(reference)
            {
                changes.push(if added {
                    LiveChange::MemberAdded { binding: id.clone(), member }
                } else {
                    LiveChange::MemberRemoved { binding: id.clone(), member }
                });
            }
        }
        tracing::debug!(target_name = %self.target, users = users.len(), groups = groups.len(),
            requests = self.client.requests(), "read Graph changes");
        Ok(Changes {
            changes,
            cursor: Cursor([(USERS.to_string(), users_next), (GROUPS.to_string(), groups_next)].into()),
        })
    }

    /// The users' round as account changes: each changed user whole, with its manager's
    /// userName (from `manager@delta`, else as `last` has it), and the accounts whose manager
    /// was renamed.
    fn user_changes(&self, users: &[Value], last: &LiveTarget) -> Result<Vec<LiveChange>, ProviderError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut parsed: Vec<(WireUser, Option<Option<String>>)> = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        let mut order: Vec<Result<usize, usize>> = Vec::new();
        for v in users {
            let Some(id) = id_of(v) else { continue };
            if v.get("@removed").is_some() {
                order.push(Err(removed.len()));
                removed.push(id);
                continue;
            }
            let u = WireUser::parse(v)
                .map_err(|m| self.invalid_feed(format!("a user read from the Graph feed is not valid: {m}")))?;
            // manager@delta: Some(Some(id)) set, Some(None) cleared, None unchanged.
            let manager = v
                .get("manager@delta")
                .and_then(Value::as_array)
                .map(|refs| refs.iter().filter_map(reference).filter(|(_, added)| *added).map(|(m, _)| m).next_back());
            order.push(Ok(parsed.len()));
            parsed.push((u, manager));
        }
        // One pass over what is held: the changed users as they were, and the managers named.
        let mut wanted: HashSet<&str> = parsed.iter().map(|(u, _)| u.id.as_str()).collect();
        wanted.extend(parsed.iter().filter_map(|(_, m)| m.as_ref()?.as_deref()));
        let held: HashMap<&str, &LiveAccount> =
            last.accounts.iter().filter(|a| wanted.contains(a.id.as_str())).map(|a| (a.id.as_str(), a)).collect();
        let mut upn: HashMap<&str, &str> = held.iter().map(|(id, a)| (*id, a.user_name.as_str())).collect();
        for (u, _) in &parsed {
            upn.insert(&u.id, &u.user_name);
        }
        for id in &removed {
            upn.remove(id.as_str());
        }
        let mut renamed: HashMap<String, String> = HashMap::new();
        let mut out = Vec::with_capacity(order.len());
        for o in order {
            match o {
                Err(i) => out.push(LiveChange::AccountRemoved { id: removed[i].clone() }),
                Ok(i) => {
                    let (u, manager) = &parsed[i];
                    let before = held.get(u.id.as_str());
                    let manager = match manager {
                        Some(m) => m.as_deref().and_then(|m| upn.get(m)).map(|n| n.to_string()),
                        None => before.and_then(|a| a.attrs.manager.clone()),
                    };
                    if let Some(b) = before.filter(|b| b.user_name != u.user_name) {
                        renamed.insert(b.user_name.clone(), u.user_name.clone());
                    }
                    out.push(LiveChange::Account(Box::new(account_of(u, manager))));
                }
            }
        }
        if !renamed.is_empty() {
            let changed: HashSet<&str> = parsed.iter().map(|(u, _)| u.id.as_str()).collect();
            for a in last.accounts.iter().filter(|a| !changed.contains(a.id.as_str())) {
                if let Some(new) = a.attrs.manager.as_ref().and_then(|m| renamed.get(m)) {
                    let mut a = a.clone();
                    a.attrs.manager = Some(new.clone());
                    a.fingerprint = account_fingerprint(&a.id, &a.user_name, &a.attrs, a.active);
                    out.push(LiveChange::Account(Box::new(a)));
                }
            }
        }
        Ok(out)
    }

    fn invalid_feed(&self, message: String) -> ProviderError {
        ProviderError::Remote { target: self.target.clone(), message }
    }
}

/// An account's fingerprint, as a full read computes it.
pub(super) fn account_fingerprint(id: &str, user_name: &str, attrs: &crate::model::UserAttrs, active: bool) -> String {
    digest(&(id, user_name, attrs, active))
}

/// A user as the model has it, with its manager's userName.
pub(super) fn account_of(u: &WireUser, manager: Option<String>) -> LiveAccount {
    let mut attrs = u.attrs.clone();
    attrs.manager = manager;
    LiveAccount {
        id: u.id.clone(),
        user_name: u.user_name.clone(),
        fingerprint: account_fingerprint(&u.id, &u.user_name, &attrs, u.active),
        attrs,
        active: u.active,
        last_sign_in: None,
        registered_methods: None,
    }
}

/// A group's or directory role's fingerprint, as a full read computes it.
pub(super) fn binding_fingerprint(b: &LiveBinding) -> String {
    match &b.binding {
        Binding::Group(name) | Binding::DirectoryRole(name) => digest(&(&b.id, name, &b.members)),
        other => digest(&(&b.id, other, &b.members)),
    }
}
