//! The change feed: users and groups whose `meta.lastModified` (RFC 7643 §3.1) is at or after
//! a cursor, found with `filter=meta.lastModified ge "…"` (RFC 7644 §3.4.2.2).
//!
//! Only where the service allows it: `/ServiceProviderConfig` announces `filter` and `sort`,
//! the User and Group schemas leave `meta.lastModified` to the resources (see
//! [`schema::stamps_from`]), and every user and group of the full read carries one. Otherwise
//! [`Provider::read_with_cursor`] returns no cursor, and every check reads in full.
//!
//! The cursor is, per collection, the newest `meta.lastModified` the service reported, never
//! keyward's clock. A full read first asks for it (sorted on `meta.lastModified`, descending,
//! one resource: one request per collection), then reads, so a change made while the read runs
//! is in the read or at or after the cursor. It then checks that the service applies the filter
//! (one request: users last modified after the cursor must all be newer than it). A round reads
//! both collections with `ge` the cursor, paged as a full read is (one request each when
//! nothing changed), maps each resource as a full read does, and leaves out what equals the
//! state held (the objects at the cursor's instant come back every round). The next cursor is
//! the newest stamp read.
//!
//! The round is refused ([`FeedError::Expired`]: the caller reads in full, and the next full
//! read tells again whether a feed can be used) when the service answers with a resource
//! without `meta.lastModified` or older than the cursor (it ignores the filter: believing the
//! answer would take stale data for news), when it refuses the filter, when the changes take
//! more than one page (pages of a list that changes are no snapshot: a change made between two
//! pages could be missed for good), and when a changed user takes the userName of another
//! account held (that account was removed).
//!
//! Limits: a filter on `meta.lastModified` reports no removal. A user or group deleted stays
//! in the state held until the next full read (`watch --resync`); a member removed from a group
//! is seen, as the group's own `meta.lastModified` moves (observed on scim2-server 0.8.3,
//! `docs/reference/scim.md`). The feed assumes the service stamps changes in the order it makes
//! them visible; a change stamped earlier than one already read is seen at the next full read.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::list::{ListError, list_where};
use super::*;
use crate::model::Timestamp;
use crate::model::feed::LiveChange;

const USERS: &str = "users";
const GROUPS: &str = "groups";
const PAGE: &str = "page";
const ETAG: &str = "etag";
/// The cursor of a collection that held nothing when it was read: every resource is newer.
const EPOCH: &str = "1970-01-01T00:00:00Z";
const STAMP: &str = "meta.lastModified";

/// A `meta.lastModified`, as the service wrote it and as a time.
#[derive(Debug, Clone)]
struct Stamp {
    raw: String,
    at: Timestamp,
}

impl Stamp {
    fn parse(raw: &str) -> Option<Stamp> {
        let at = DateTime::parse_from_rfc3339(raw.trim()).ok()?.with_timezone(&Utc);
        Some(Stamp { raw: raw.to_string(), at })
    }

    /// The newer of the two (`self` when equal).
    fn max(self, other: &Stamp) -> Stamp {
        if other.at > self.at { other.clone() } else { self }
    }
}

/// The collections' names in messages.
fn noun(endpoint: &str) -> &'static str {
    if endpoint == "Users" { "user" } else { "group" }
}

/// Why a service cannot give a feed (logged; the target is read in full).
struct NoFeed(String);

impl ScimProvider {
    fn expired(&self, message: String) -> FeedError {
        FeedError::Expired { target: self.target.clone(), message }
    }

    pub(super) async fn read_with_feed(&mut self) -> Result<(LiveTarget, Option<Cursor>), ProviderError> {
        let config = self.discover().await?;
        let before = if !config.filter {
            Err(NoFeed("its /ServiceProviderConfig does not announce filter".into()))
        } else if !config.sort {
            Err(NoFeed("its /ServiceProviderConfig does not announce sort".into()))
        } else {
            match self.newest("Users").await? {
                Ok(users) => self.newest("Groups").await?.map(|groups| (users, groups)),
                Err(e) => Err(e),
            }
        };
        let full = self.read_with(config).await?;
        let cursor = match before {
            Ok((users, groups)) => self.feed_allowed(&full, users.as_ref(), groups.as_ref()).await?.map(|()| {
                let at = |s: Option<Stamp>| s.map_or_else(|| EPOCH.to_string(), |s| s.raw);
                Cursor(BTreeMap::from([
                    (USERS.to_string(), at(users)),
                    (GROUPS.to_string(), at(groups)),
                    (PAGE.to_string(), full.page.to_string()),
                    (ETAG.to_string(), full.config.etag.to_string()),
                ]))
            }),
            Err(e) => Err(e),
        };
        match cursor {
            Ok(c) => Ok((full.live, Some(c))),
            Err(NoFeed(why)) => {
                tracing::info!(target_name = %self.target, reason = %why, "the SCIM service offers no change feed on meta.lastModified; every check reads in full");
                Ok((full.live, None))
            }
        }
    }

    /// The newest `meta.lastModified` of a collection (`None`: it is empty), by sorting on it.
    /// A service that refuses the request offers no feed. One that ignores the sort answers an
    /// older stamp, which is still a safe cursor: the first round then brings more than it
    /// needs, and the state held leaves out what did not change.
    async fn newest(&self, endpoint: &str) -> Result<Result<Option<Stamp>, NoFeed>, ProviderError> {
        let mut url = self.client.url(&[endpoint]);
        url.set_query(Some(&query(&[
            ("attributes", STAMP),
            ("sortBy", STAMP),
            ("sortOrder", "descending"),
            ("startIndex", "1"),
            ("count", "1"),
        ])));
        let v = match self.client.get_json(url).await {
            Ok((v, _)) => v,
            Err(e) if e.status().is_some_and(|s| matches!(s, 400 | 404 | 405 | 501)) => {
                return Ok(Err(NoFeed(format!("it refuses to sort the {} on {STAMP}: {e}", endpoint.to_lowercase()))));
            }
            Err(e) => return Err(self.read_error(&format!("the newest {STAMP} of the {}", endpoint.to_lowercase()), e)),
        };
        let page = ListPage::parse(&v).map_err(|m| self.target_error(format!("{}: {m}", self.shown_base())))?;
        let Some(first) = page.resources.first() else { return Ok(Ok(None)) };
        Ok(match wire::last_modified(first).as_deref().and_then(Stamp::parse) {
            Some(s) => Ok(Some(s)),
            None => Err(NoFeed(format!("a {} carries no {STAMP} in RFC 3339 form", noun(endpoint)))),
        })
    }

    /// Whether a full read allows a feed: the schemas, a stamp on every resource, and a filter
    /// the service applies.
    async fn feed_allowed(
        &self,
        full: &read::FullRead,
        users: Option<&Stamp>,
        groups: Option<&Stamp>,
    ) -> Result<Result<(), NoFeed>, ProviderError> {
        if let Err(why) = &full.stamps {
            return Ok(Err(NoFeed(why.to_string())));
        }
        let unstamped = full
            .users
            .iter()
            .find(|u| u.last_modified.as_deref().and_then(Stamp::parse).is_none())
            .map(|u| format!("user {}", u.user_name))
            .or_else(|| {
                full.groups
                    .iter()
                    .find(|g| g.last_modified.as_deref().and_then(Stamp::parse).is_none())
                    .map(|g| format!("group {}", g.display_name))
            });
        if let Some(what) = unstamped {
            return Ok(Err(NoFeed(format!("{} carries no {STAMP} in RFC 3339 form", what.escape_debug()))));
        }
        // The filter applied: nothing last modified at or before the newest stamp comes back.
        let Some((endpoint, newest)) = users.map(|s| ("Users", s)).or(groups.map(|s| ("Groups", s))) else {
            return Ok(Ok(()));
        };
        let mut url = self.client.url(&[endpoint]);
        let f = format!("{STAMP} gt {}", filter::string(&newest.raw));
        url.set_query(Some(&query(&[("attributes", STAMP), ("filter", &f), ("startIndex", "1"), ("count", "1")])));
        let v = match self.client.get_json(url).await {
            Ok((v, _)) => v,
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s) || s == 501) => {
                return Ok(Err(NoFeed(format!("it refuses the filter on {STAMP}: {e}"))));
            }
            Err(e) => {
                return Err(self.read_error(&format!("the {} changed since the read", endpoint.to_lowercase()), e));
            }
        };
        let page = ListPage::parse(&v).map_err(|m| self.target_error(format!("{}: {m}", self.shown_base())))?;
        let ignored = page
            .resources
            .iter()
            .any(|r| wire::last_modified(r).as_deref().and_then(Stamp::parse).is_none_or(|s| s.at <= newest.at));
        Ok(if ignored {
            tracing::warn!(target_name = %self.target, "the SCIM service ignores a filter on meta.lastModified: it answered with resources the filter excludes");
            Err(NoFeed(format!("it ignores a filter on {STAMP}")))
        } else {
            Ok(())
        })
    }

    pub(super) async fn changes_since(&mut self, cursor: &Cursor, last: &LiveTarget) -> Result<Changes, FeedError> {
        let stamp = |k: &str| cursor.0.get(k).and_then(|s| Stamp::parse(s));
        let (Some(users_at), Some(groups_at), Some(page), Some(etag)) = (
            stamp(USERS),
            stamp(GROUPS),
            cursor.0.get(PAGE).and_then(|p| p.parse::<usize>().ok()).filter(|p| *p > 0),
            cursor.0.get(ETAG).and_then(|e| e.parse::<bool>().ok()),
        ) else {
            return Err(self.expired("the cursor is not one of this target's".into()));
        };
        let (users, users_next) = self.changed("Users", &wire::user_attributes(), &users_at, page).await?;
        let (groups, groups_next) = self.changed("Groups", wire::GROUP_ATTRIBUTES, &groups_at, page).await?;
        let users = self.parse_users(&users)?;
        let groups = self.parse_groups(&groups)?;
        let mut changes = self.user_changes(&users, last, etag)?;
        self.fingerprints.clear();
        let held: HashMap<&str, &LiveBinding> =
            if groups.is_empty() { HashMap::new() } else { last.bindings.iter().map(|b| (b.id.as_str(), b)).collect() };
        for g in &groups {
            self.stamp(g.last_modified.as_deref(), Stamped::Group(&g.display_name));
            let b = binding_of(g, etag);
            self.fingerprints.insert(b.id.clone(), b.fingerprint.clone());
            let now: BTreeSet<&String> = b.members.iter().collect();
            let before: BTreeSet<&String> =
                held.get(b.id.as_str()).map(|h| h.members.iter().collect()).unwrap_or_default();
            if held.get(b.id.as_str()).is_some_and(|h| h.binding == b.binding && h.fingerprint == b.fingerprint)
                && now == before
            {
                continue;
            }
            changes.push(LiveChange::Binding { id: b.id.clone(), binding: b.binding.clone() });
            for m in before.difference(&now) {
                changes.push(LiveChange::MemberRemoved { binding: b.id.clone(), member: (*m).clone() });
            }
            for m in now.difference(&before) {
                changes.push(LiveChange::MemberAdded { binding: b.id.clone(), member: (*m).clone() });
            }
        }
        tracing::debug!(target_name = %self.target, users = users.len(), groups = groups.len(),
            changes = changes.len(), requests = self.client.requests(), "read SCIM changes");
        let mut next = cursor.0.clone();
        next.insert(USERS.into(), users_next.raw);
        next.insert(GROUPS.into(), groups_next.raw);
        Ok(Changes { changes, cursor: Cursor(next) })
    }

    /// The resources of `endpoint` last modified at or after `since`, and the newest stamp
    /// among them and `since`.
    async fn changed(
        &self,
        endpoint: &str,
        attributes: &str,
        since: &Stamp,
        page: usize,
    ) -> Result<(Vec<Value>, Stamp), FeedError> {
        let f = format!("{STAMP} ge {}", filter::string(&since.raw));
        let what = endpoint.to_lowercase();
        let listed = match list_where(&self.client, endpoint, attributes, Some(&f), page, self.limits).await {
            Ok(l) => l,
            Err(ListError::Request(e)) if e.status().is_some_and(|s| s == 400 || s == 501) => {
                return Err(self.expired(format!("the service refused the filter on {STAMP} of the {what}: {e}")));
            }
            Err(ListError::Request(e)) => {
                return Err(FeedError::Read(self.read_error(&format!("the {what} changed since {}", since.raw), e)));
            }
            Err(e) => return Err(FeedError::Read(self.target_error(format!("{}: {e}", self.shown_base())))),
        };
        if listed.pages > 1 {
            return Err(self.expired(format!(
                "{} {what} changed since {}, more than one page holds; pages of a changing list are no snapshot",
                listed.resources.len(),
                since.raw
            )));
        }
        let mut newest = since.clone();
        for r in &listed.resources {
            let Some(s) = wire::last_modified(r).as_deref().and_then(Stamp::parse) else {
                return Err(
                    self.expired(format!("a {} of the feed carries no {STAMP} in RFC 3339 form", noun(endpoint)))
                );
            };
            if s.at < since.at {
                return Err(self.expired(format!(
                    "the service ignores the filter on {STAMP}: it answered a {} last modified at {}, before {}",
                    noun(endpoint),
                    s.raw.escape_debug(),
                    since.raw
                )));
            }
            newest = newest.max(&s);
        }
        Ok((listed.resources, newest))
    }

    /// The users' round as account changes: each changed user as a full read maps it (its
    /// manager's userName from the users changed, else from `last`), unless `last` holds it so
    /// already, and the accounts whose manager was renamed.
    fn user_changes(
        &mut self,
        users: &[WireUser],
        last: &LiveTarget,
        etag: bool,
    ) -> Result<Vec<LiveChange>, FeedError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let changed: HashMap<&str, &WireUser> = users.iter().map(|u| (u.id.as_str(), u)).collect();
        let held: HashMap<&str, &LiveAccount> = last.accounts.iter().map(|a| (a.id.as_str(), a)).collect();
        // userNames are unique (RFC 7643 §4.1): one held by another account that did not change
        // means that account was removed, which only a full read shows.
        let taken: HashMap<String, &str> = last
            .accounts
            .iter()
            .filter(|a| !changed.contains_key(a.id.as_str()))
            .map(|a| (key(&a.user_name), a.id.as_str()))
            .collect();
        for u in users {
            if taken.get(&key(&u.user_name)).is_some_and(|id| *id != u.id) {
                return Err(self.expired(format!(
                    "the userName {} now belongs to another account: the one held was removed",
                    u.user_name.escape_debug()
                )));
            }
        }
        let user_name = |id: &str| {
            changed.get(id).map(|u| u.user_name.clone()).or_else(|| held.get(id).map(|a| a.user_name.clone()))
        };
        let mut out = Vec::new();
        let mut renamed: HashMap<&str, &str> = HashMap::new();
        for u in users {
            self.stamp(u.last_modified.as_deref(), Stamped::User(&u.user_name));
            let a = account_of(u, user_name, etag);
            let before = held.get(u.id.as_str());
            if let Some(b) = before.filter(|b| b.user_name != u.user_name) {
                renamed.insert(b.user_name.as_str(), u.user_name.as_str());
            }
            if before.is_some_and(|b| **b == a) {
                continue;
            }
            out.push(LiveChange::Account(Box::new(a)));
        }
        if !renamed.is_empty() {
            for a in last.accounts.iter().filter(|a| !changed.contains_key(a.id.as_str())) {
                let Some(new) = a.attrs.manager.as_deref().and_then(|m| renamed.get(m)) else { continue };
                let mut a = a.clone();
                a.attrs.manager = Some(new.to_string());
                if !(etag && a.fingerprint.starts_with("etag:")) {
                    a.fingerprint = read::account_fingerprint(&a.id, &a.user_name, &a.attrs, a.active, None, false);
                }
                out.push(LiveChange::Account(Box::new(a)));
            }
        }
        Ok(out)
    }

    /// A group's fingerprint as a full read computes it: the one a feed round read, else a
    /// digest of what it holds.
    pub(super) fn feed_fingerprint(&self, b: &LiveBinding) -> String {
        if let Some(f) = self.fingerprints.get(&b.id) {
            return f.clone();
        }
        match &b.binding {
            Binding::Group(name) => read::group_fingerprint(&b.id, name, &b.members, None, false),
            other => digest(&(&b.id, other, &b.members)),
        }
    }

    /// See [`Provider::attribute`]: the stamp of the user an account change concerns, or of the
    /// group a membership change concerns, as last read.
    pub(super) fn attribute_drift(&self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        changes
            .iter()
            .map(|c| {
                let (k, activity) = match &c.operation {
                    Operation::UpdateUser { user_name, .. }
                    | Operation::SetUserActive { user_name, .. }
                    | Operation::DeleteUser { user_name } => (Stamped::User(user_name).key(), "user modified"),
                    Operation::Assign { binding: Binding::Group(g), .. }
                    | Operation::Revoke { binding: Binding::Group(g), .. } => {
                        (Stamped::Group(g).key(), "group modified")
                    }
                    _ => return None,
                };
                let s = Stamp::parse(self.modified.get(&k)?)?;
                Some(Attribution { actor: None, time: s.at, activity: activity.to_string() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_compare_as_times_whatever_their_form_and_keep_the_services_text() {
        let z = Stamp::parse("2026-12-04T23:36:03.852504Z").unwrap();
        let offset = Stamp::parse("2026-12-05T00:36:03.9+01:00").unwrap();
        assert!(offset.at > z.at);
        assert_eq!(z.clone().max(&offset).raw, "2026-12-05T00:36:03.9+01:00");
        assert_eq!(offset.clone().max(&z).raw, "2026-12-05T00:36:03.9+01:00");
        // Equal times: the first is kept.
        let same = Stamp::parse("2026-12-04T23:36:03.852504+00:00").unwrap();
        assert_eq!(z.clone().max(&same).raw, z.raw);
        for bad in ["", "yesterday", "2026-12-04", "2026-12-04T23:36:03"] {
            assert!(Stamp::parse(bad).is_none(), "{bad}");
        }
    }
}
