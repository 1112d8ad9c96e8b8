//! The OpenLDAP change feed: the suffix's `contextCSN` as the cursor, entries whose `entryCSN`
//! is above it as the changes, and a listing of the ids in scope for removals.
//!
//! OpenLDAP keeps, on the suffix entry, the `contextCSN` of the last change to the database
//! (one value per server id of a multi-provider setup) when the syncprov overlay is on it, and
//! on every entry the `entryCSN` of its last change (RFC 4533 §A; OpenLDAP Admin Guide §18).
//! A delete or rename moves `contextCSN` too. So:
//! - a full read first reads the naming context that holds the users and groups bases (one
//!   request to the root DSE) and its `contextCSN` (one request), then reads as
//!   [`LdapProvider::read_live`] does: a change made while the read runs is in the read or in
//!   the next round, or both;
//! - a later check reads `contextCSN` again (one request, after the bind): unchanged, nothing
//!   in the database changed and the check is over;
//! - otherwise it reads, paged as reads are, the users and groups in scope whose `entryCSN` is
//!   above the cursor, whole, and lists the users (their id, userName and `manager`) and
//!   groups (their id) in scope, for removals and for the DNs that members and managers
//!   resolve against; every entry is mapped by the code a full read maps it with. An
//!   unchanged user is taken as held, with its `manager` resolved again against the users
//!   listed (its manager may have been renamed, removed or created since); an unchanged group
//!   that names a user created, removed or changed since (by id or by DN) is read again, so its
//!   members resolve as a full read resolves them.
//!
//! With the target's `accessLog` set, a check reads deletions and renames from the accesslog
//! database instead of listing the ids (see [`super::accesslog`]); without it, when keyward
//! cannot read the log, or when the log no longer holds the cursor's write, it lists them.
//!
//! RFC 4533 syncrepl (refreshOnly with a cookie) would name removals without the listing, but
//! the `ldap3` crate's Sync State and Sync Info parsers panic on a value they cannot decode: a
//! hostile or broken server could stop keyward, so they are not used.
//!
//! A cursor whose server ids the server no longer reports, or whose CSN is above the server's
//! (a restored or reloaded database), or a server that no longer reports `contextCSN`, is
//! [`FeedError::Expired`]: the caller reads in full. A server that reports no `contextCSN`
//! (no syncprov) has no feed: each check reads in full, said once in the log.
//!
//! Not seen by the feed: a user or group moved with its parent (an OU renamed above it; its own
//! `entryCSN` does not change, and its DN is part of its fingerprint): the periodic full read
//! brings it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};

use super::read::{ReadUser, UserIndex, account_fingerprint};
use super::*;
use crate::model::feed::{Changes, Cursor, LiveChange};
use crate::model::{Attribution, LiveAccount};
use crate::provider::FeedError;

/// The cursor's key for the naming context whose `contextCSN` is read.
const SUFFIX: &str = "suffix";
/// The cursor's key for the `contextCSN` values, space-separated.
const CSN: &str = "contextCSN";
/// Objects read again by id in one filter at most; more are read again all at once.
pub(super) const MAX_BY_ID: usize = 100;
/// Changes whose author is looked up per call at most.
const MAX_ATTRIBUTED: usize = 100;

/// The server id of a CSN (`YYYYmmddHHMMSS.ffffffZ#count#sid#mod`), or `None` when it is not
/// one.
pub(super) fn csn_sid(csn: &str) -> Option<&str> {
    let parts: Vec<&str> = csn.split('#').collect();
    let [time, count, sid, modn] = parts[..] else { return None };
    let time_ok = time.len() >= 15
        && time.ends_with('Z')
        && time[..time.len() - 1].bytes().all(|c| c.is_ascii_digit() || c == b'.');
    let hex = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|c| c.is_ascii_hexdigit());
    (time_ok && hex(count, 6) && hex(sid, 3) && hex(modn, 6)).then_some(sid)
}

/// `contextCSN` values by server id; `None` when one is not a CSN or a server id repeats.
fn csns<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for v in values {
        let sid = csn_sid(v)?.to_ascii_lowercase();
        if out.insert(sid, v.to_string()).is_some() {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Says `message` once per target and URL for the life of the process.
pub(super) fn say_once(target: &str, url: &str, message: &str) {
    static SAID: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    let key = format!("{target} {url} {message}");
    let first = SAID.get_or_init(Mutex::default).lock().map(|mut s| s.insert(key)).unwrap_or(false);
    if first {
        tracing::warn!(target_name = %target, "{message}");
    }
}

/// `(|(entryUUID=a)(entryUUID=b)…)` for `ids`.
pub(super) fn by_ids<'a>(ids: impl IntoIterator<Item = &'a String>) -> String {
    let parts: String = ids.into_iter().map(|id| format!("(entryUUID={})", dn::filter_value(id))).collect();
    format!("(|{parts})")
}

/// A user that did not change since the cursor, against the state held.
enum Listed {
    /// As held.
    Same,
    /// As held but for its manager, which resolves to another user now.
    Changed(Box<LiveAccount>),
    /// The listing cannot tell (its userName is not the one held): read it again whole.
    Unknown,
}

/// Where a change comes from, as the feed saw it.
enum Source {
    /// Read whole (changed since the cursor, or read again).
    Whole(SearchEntry),
    /// Listed only: its id, userName, DN and `manager`.
    Listed(SearchEntry),
}

impl Source {
    fn entry(&self) -> &SearchEntry {
        match self {
            Source::Whole(e) | Source::Listed(e) => e,
        }
    }
}

impl LdapProvider {
    fn expired(&self, message: impl Into<String>) -> FeedError {
        FeedError::Expired { target: self.target.clone(), message: message.into() }
    }

    /// An entry's id, as a full read gives it.
    pub(super) fn id_of(e: &SearchEntry) -> String {
        entry_id(e, &client::attrs_by_lower_name(e), &dn::normalize(&e.dn))
    }

    /// The `contextCSN` values of `suffix`, by server id; `None` when it has none (or none
    /// keyward can read).
    async fn context_csn(
        &self,
        client: &Client,
        suffix: &str,
    ) -> Result<Option<BTreeMap<String, String>>, LdapFailure> {
        let Some(e) = client.read_entry(suffix, &[CSN]).await? else { return Ok(None) };
        let attrs = client::attrs_by_lower_name(&e);
        Ok(attrs.get("contextcsn").and_then(|v| csns(v.iter().map(String::as_str))))
    }

    /// The naming context holding the users and groups bases, and its `contextCSN`: where the
    /// feed starts. `None` (said once) when the server offers no feed.
    async fn feed_start(&self, client: &Client) -> Result<Option<(String, BTreeMap<String, String>)>, ProviderError> {
        let no_feed = |why: String| {
            say_once(&self.target, &self.conn.url, &format!("{why}; every check reads the directory in full"));
            Ok(None)
        };
        let root = match client.read_entry("", &["namingContexts"]).await {
            Ok(root) => root,
            Err(e) => return no_feed(format!("the root DSE cannot be read: {e}")),
        };
        let contexts = root.map(|r| client::attrs_by_lower_name(&r).remove("namingcontexts").unwrap_or_default());
        let user_bases = self.user_bases();
        let mut bases: Vec<&str> = user_bases.iter().map(String::as_str).collect();
        bases.push(&self.conn.groups_base);
        let Some(suffix) = naming_context(contexts.unwrap_or_default(), &bases) else {
            return no_feed("the users and groups bases are not below one naming context the root DSE names".into());
        };
        match self.context_csn(client, &suffix).await {
            Ok(Some(csn)) => Ok(Some((suffix, csn))),
            Ok(None) => no_feed(format!(
                "{suffix} has no contextCSN keyward can read (the syncprov overlay is needed for a change feed)"
            )),
            Err(e) => no_feed(format!("cannot read the contextCSN of {suffix}: {e}")),
        }
    }

    pub(super) async fn read_with_feed(&mut self) -> Result<(LiveTarget, Option<Cursor>), ProviderError> {
        let client = self.client().await?;
        let start = self.feed_start(&client).await?;
        let live = self.read_live().await?;
        let cursor = start.map(|(suffix, csn)| cursor_of(&suffix, &csn));
        Ok((live, cursor))
    }

    pub(super) async fn changes_since(&mut self, cursor: &Cursor, last: &LiveTarget) -> Result<Changes, FeedError> {
        let (Some(suffix), Some(held)) = (cursor.0.get(SUFFIX), cursor.0.get(CSN).and_then(|v| csns(v.split(' '))))
        else {
            return Err(self.expired("the cursor is not one of this target's"));
        };
        let within = Dn::parse(suffix).is_ok_and(|s| Dn::parse(&self.conn.users_base).is_ok_and(|u| u.is_within(&s)));
        if !within {
            return Err(self.expired("the cursor names a naming context the users are not below"));
        }
        let client = self.client().await?;
        let now = match self.context_csn(&client, suffix).await {
            Ok(Some(now)) => now,
            Ok(None) => return Err(self.expired(format!("{suffix} no longer reports a contextCSN"))),
            Err(e) => return Err(FeedError::Read(self.remote("read the contextCSN", &e))),
        };
        for (sid, csn) in &held {
            match now.get(sid) {
                None => return Err(self.expired(format!("the server no longer reports server id {sid}"))),
                Some(n) if n < csn => {
                    return Err(self.expired("the server's contextCSN is older than the cursor (a restored database?)"));
                }
                _ => {}
            }
        }
        if now.keys().any(|sid| !held.contains_key(sid)) {
            return Err(self.expired("the server reports a server id the cursor does not know"));
        }
        let next = Cursor(cursor_of(suffix, &now).0);
        if now == held {
            return Ok(Changes { changes: Vec::new(), cursor: next });
        }
        let since = held.values().min().cloned().unwrap_or_default();
        if let Some(log_base) = self.conn.access_log.clone() {
            match self.read_log(&client, &log_base, &held, &since).await? {
                Ok(log) => {
                    if let Some(changes) = self.changes_logged(&client, suffix, &since, &log, last).await? {
                        tracing::debug!(target_name = %self.target, changes = changes.len(), logged = log.len(),
                            requests = client.operations(), "read OpenLDAP changes with the accesslog");
                        return Ok(Changes { changes, cursor: next });
                    }
                    tracing::info!(target_name = %self.target, logged = log.len(),
                        "the accesslog names too many entries for one search; this check lists every id");
                }
                Err(accesslog::NoLog::Unreadable(why)) => say_once(
                    &self.target,
                    &self.conn.url,
                    &format!(
                        "the accesslog {log_base} cannot be read ({why}); each change feed check lists every user and group id to find removals"
                    ),
                ),
                Err(accesslog::NoLog::Incomplete(why)) => tracing::warn!(target_name = %self.target,
                    "the accesslog {log_base} {why}; this check lists every user and group id to find removals"),
            }
        }
        let changes = self.changes_above(&client, &since, last).await?;
        tracing::debug!(target_name = %self.target, changes = changes.len(), requests = client.operations(),
            "read OpenLDAP changes");
        Ok(Changes { changes, cursor: next })
    }

    /// The changes of users and groups whose `entryCSN` is above `since`, against `last`.
    async fn changes_above(
        &mut self,
        client: &Client,
        since: &str,
        last: &LiveTarget,
    ) -> Result<Vec<LiveChange>, FeedError> {
        let above = format!("(!(entryCSN<={}))", dn::filter_value(since));
        let user_attrs = self.user_attributes();
        let user_attrs: Vec<&str> = user_attrs.iter().map(String::as_str).collect();
        let group_attrs = self.group_attributes();
        let changed_users = self.search_users(client, Some(&above), &user_attrs).await?;
        let changed_groups = self.search_groups(client, Some(&above), &group_attrs).await?;
        let manager = field_attribute(self.conn.flavor, UserField::Manager);
        let listing = [self.conn.user_key.as_str(), id_attribute(self.conn.flavor), manager];
        let listed_users = self.search_users(client, None, &listing).await?;
        let listed_groups = self.search_groups(client, None, &[id_attribute(self.conn.flavor)]).await?;

        // Users: each listed one, whole where it changed.
        let mut whole: HashMap<String, SearchEntry> = changed_users.into_iter().map(|e| (Self::id_of(&e), e)).collect();
        let mut sources: Vec<Source> = listed_users
            .into_iter()
            .map(|l| match whole.remove(&Self::id_of(&l)) {
                Some(w) => Source::Whole(w),
                None => Source::Listed(l),
            })
            .collect();
        let held: HashMap<&str, &LiveAccount> = last.accounts.iter().map(|a| (a.id.as_str(), a)).collect();
        // Each listed user: mapped whole where it was read whole; otherwise as held, with its
        // manager resolved anew; read again whole where the listing cannot tell.
        let (index, whole_ids, listed_changed) = loop {
            let index = self.index_users(sources.iter().map(Source::entry));
            let whole_ids: HashSet<String> =
                sources.iter().filter(|s| matches!(s, Source::Whole(_))).map(|s| Self::id_of(s.entry())).collect();
            let mut again: Vec<String> = Vec::new();
            let mut listed_changed: Vec<LiveAccount> = Vec::new();
            for u in index.users.iter().filter(|u| !whole_ids.contains(&u.id)) {
                match held.get(u.id.as_str()).map(|a| self.listed_account(&index, u, a)) {
                    Some(Listed::Same) => {}
                    Some(Listed::Changed(a)) => listed_changed.push(*a),
                    Some(Listed::Unknown) | None => again.push(u.id.clone()),
                }
            }
            if again.is_empty() {
                break (index, whole_ids, listed_changed);
            }
            // At most once: what a second read does not find is gone.
            let found = if again.len() > MAX_BY_ID {
                self.search_users(client, None, &user_attrs).await?
            } else {
                self.search_users(client, Some(&by_ids(&again)), &user_attrs).await?
            };
            let mut found: HashMap<String, SearchEntry> = found.into_iter().map(|e| (Self::id_of(&e), e)).collect();
            let again: HashSet<String> = again.into_iter().collect();
            sources = sources
                .into_iter()
                .filter_map(|s| {
                    let id = Self::id_of(s.entry());
                    match found.remove(&id) {
                        Some(e) => Some(Source::Whole(e)),
                        None if again.contains(&id) => None,
                        None => Some(s),
                    }
                })
                .collect();
        };

        let mut out: Vec<LiveChange> = Vec::new();
        let now_ids: HashSet<&str> = index.users.iter().map(|u| u.id.as_str()).collect();
        let mut touched_ids: HashSet<String> = HashSet::new();
        for a in &last.accounts {
            if !now_ids.contains(a.id.as_str()) {
                out.push(LiveChange::AccountRemoved { id: a.id.clone() });
                touched_ids.insert(a.id.clone());
            }
        }
        let mut touched_dns: HashSet<String> = HashSet::new();
        for u in index.users.iter().filter(|u| whole_ids.contains(&u.id)) {
            let a = self.map_user(&index, u);
            touched_ids.insert(a.id.clone());
            touched_dns.insert(u.dn.key());
            if held.get(a.id.as_str()).is_none_or(|b| **b != a) {
                out.push(LiveChange::Account(Box::new(a)));
            }
        }
        out.extend(listed_changed.into_iter().map(|a| LiveChange::Account(Box::new(a))));

        // Groups: removed ones, changed ones, and those whose members resolve differently now.
        let listed: HashSet<String> = listed_groups.iter().map(Self::id_of).collect();
        let mut to_map: HashMap<String, SearchEntry> =
            changed_groups.into_iter().map(|e| (Self::id_of(&e), e)).filter(|(id, _)| listed.contains(id)).collect();
        let mut again: Vec<String> = Vec::new();
        for b in &last.bindings {
            if !listed.contains(&b.id) {
                out.push(LiveChange::BindingRemoved { id: b.id.clone() });
                continue;
            }
            let affected = b.members.iter().any(|m| touched_ids.contains(m) || touched_dns.contains(&dn::normalize(m)));
            if affected && !to_map.contains_key(&b.id) {
                again.push(b.id.clone());
            }
        }
        if !again.is_empty() {
            let found = if again.len() > MAX_BY_ID {
                self.search_groups(client, None, &group_attrs).await?
            } else {
                self.search_groups(client, Some(&by_ids(&again)), &group_attrs).await?
            };
            let again: HashSet<String> = again.into_iter().collect();
            to_map.extend(found.into_iter().map(|e| (Self::id_of(&e), e)).filter(|(id, _)| again.contains(id)));
        }
        let groups: Vec<SearchEntry> = to_map.into_values().collect();
        let (bindings, _) = self.map_groups(client, &index, &groups).await?;
        out.extend(self.binding_changes(bindings, last));
        Ok(out)
    }

    /// The changes of the groups `bindings` read this round against `last`; their fingerprints
    /// are kept for [`Provider::binding_fingerprint`].
    pub(super) fn binding_changes(&mut self, bindings: Vec<LiveBinding>, last: &LiveTarget) -> Vec<LiveChange> {
        let mut out = Vec::new();
        let before: HashMap<&str, &LiveBinding> = last.bindings.iter().map(|b| (b.id.as_str(), b)).collect();
        for b in bindings {
            let mut sorted = b.members.clone();
            sorted.sort();
            self.feed_fingerprints.insert(b.id.clone(), (sorted, b.fingerprint.clone()));
            let old = before.get(b.id.as_str());
            if old.is_some_and(|o| **o == b) {
                continue;
            }
            out.push(LiveChange::Binding { id: b.id.clone(), binding: b.binding.clone() });
            let had: HashSet<&String> = old.map(|o| o.members.iter().collect()).unwrap_or_default();
            let has: HashSet<&String> = b.members.iter().collect();
            for m in b.members.iter().filter(|m| !had.contains(m)) {
                out.push(LiveChange::MemberAdded { binding: b.id.clone(), member: m.clone() });
            }
            for m in old.into_iter().flat_map(|o| o.members.iter()).filter(|m| !has.contains(m)) {
                out.push(LiveChange::MemberRemoved { binding: b.id.clone(), member: m.clone() });
            }
        }
        out
    }

    /// A user that did not change since the cursor, as a full read would map it now: as held,
    /// with its manager resolved against the users listed.
    fn listed_account(&self, index: &UserIndex, u: &ReadUser, held: &LiveAccount) -> Listed {
        if held.user_name != u.user_name {
            return Listed::Unknown;
        }
        let manager = first(&u.attrs, field_attribute(self.conn.flavor, UserField::Manager));
        let manager = manager.and_then(|m| index.by_dn.get(&dn::normalize(m)).map(|&i| &index.users[i].user_name));
        if manager == held.attrs.manager.as_ref() {
            return Listed::Same;
        }
        let mut a = held.clone();
        a.attrs.manager = manager.cloned();
        a.fingerprint = account_fingerprint(&u.dn, &a.user_name, &a.attrs, a.active);
        Listed::Changed(Box::new(a))
    }

    /// Who last changed the entries the drift `changes` are about, from their `modifiersName`
    /// and `modifyTimestamp` (one search per entry, at most [`MAX_ATTRIBUTED`] per call).
    pub(super) async fn attribute_entries(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        let mut out = vec![None; changes.len()];
        let Ok(client) = self.client().await else { return out };
        let mut seen: HashMap<(bool, String), Option<Attribution>> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            let (is_user, name) = match &c.operation {
                Operation::Assign { principal: Principal::User(_), binding: Binding::Group(g) }
                | Operation::Revoke { principal: Principal::User(_), binding: Binding::Group(g) } => (false, g),
                Operation::UpdateUser { user_name, .. }
                | Operation::SetUserActive { user_name, .. }
                | Operation::DeleteUser { user_name } => (true, user_name),
                _ => continue,
            };
            if let Some(a) = seen.get(&(is_user, key(name))) {
                out[i] = a.clone();
                continue;
            }
            if seen.len() >= MAX_ATTRIBUTED {
                continue;
            }
            let attrs = ["modifiersName", "modifyTimestamp"];
            let found = if is_user {
                let f = format!("({}={})", self.conn.user_key, dn::filter_value(name));
                self.search_users(&client, Some(&f), &attrs).await
            } else {
                let f = format!("(cn={})", dn::filter_value(name));
                self.search_groups(&client, Some(&f), &attrs).await
            };
            let a = match found {
                Ok(entries) if entries.len() == 1 => attribution(&entries[0], is_user),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(target_name = %self.target, error = %e, "cannot read who changed an entry; drift is shown without it");
                    None
                }
            };
            seen.insert((is_user, key(name)), a.clone());
            out[i] = a;
        }
        out
    }
}

/// Who last changed an entry and when, from `modifiersName` and `modifyTimestamp`.
fn attribution(e: &SearchEntry, is_user: bool) -> Option<Attribution> {
    let attrs = client::attrs_by_lower_name(e);
    let actor = first(&attrs, "modifiersName")?.clone();
    let time = generalized_time(first(&attrs, "modifyTimestamp")?)?;
    let what = if is_user { "user" } else { "group" };
    Some(Attribution { actor: Some(actor), time, activity: format!("last modification of the {what} entry") })
}

/// A GeneralizedTime in UTC (`YYYYmmddHHMMSSZ`, as OpenLDAP writes `modifyTimestamp`).
fn generalized_time(v: &str) -> Option<crate::model::Timestamp> {
    let t = chrono::NaiveDateTime::parse_from_str(v.strip_suffix('Z')?.split('.').next()?, "%Y%m%d%H%M%S").ok()?;
    Some(t.and_utc())
}

/// The naming context among `contexts` that holds every one of `bases`.
fn naming_context(contexts: Vec<String>, bases: &[&str]) -> Option<String> {
    contexts.into_iter().find(|c| {
        let Ok(c) = Dn::parse(c) else { return false };
        bases.iter().all(|b| Dn::parse(b).is_ok_and(|b| b.is_within(&c)))
    })
}

/// The cursor for `suffix` at `csn`.
fn cursor_of(suffix: &str, csn: &BTreeMap<String, String>) -> Cursor {
    let values: Vec<&str> = csn.values().map(String::as_str).collect();
    Cursor([(SUFFIX.to_string(), suffix.to_string()), (CSN.to_string(), values.join(" "))].into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csns_are_checked_and_keyed_by_server_id() {
        let a = "20261204233000.123456Z#000000#000#000000";
        let b = "20261204233001.000001Z#000002#01a#000000";
        let m = csns([a, b]).unwrap();
        assert_eq!(m.get("000").map(String::as_str), Some(a));
        assert_eq!(m.get("01a").map(String::as_str), Some(b));
        assert!(csns([a, a]).is_none(), "a server id twice");
        assert!(csns(["20261204233000Z#0#0"]).is_none());
        assert!(csns(["x)(objectClass=*#000000#000#000000"]).is_none());
        assert!(csns(std::iter::empty()).is_none());
        let c = cursor_of("dc=example", &m);
        assert_eq!(c.0[CSN], format!("{a} {b}"));
        assert_eq!(csns(c.0[CSN].split(' ')).unwrap(), m);
    }

    #[test]
    fn the_feed_reads_the_naming_context_that_holds_every_base() {
        let contexts = || vec!["dc=other".to_string(), "DC=Example,dc=org".to_string()];
        let bases = ["ou=people,dc=example,dc=org", "ou=groups,dc=example,dc=org"];
        assert_eq!(naming_context(contexts(), &bases).as_deref(), Some("DC=Example,dc=org"));
        assert_eq!(naming_context(contexts(), &["ou=people,dc=example,dc=org", "ou=groups,dc=other"]), None);
        assert_eq!(naming_context(vec![], &bases), None);
    }

    #[test]
    fn modify_timestamps_parse() {
        let t = generalized_time("20261204233000Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-04T23:30:00+00:00");
        assert!(generalized_time("20261204233000").is_none());
        assert!(generalized_time("yesterday").is_none());
    }

    #[test]
    fn id_filters_escape_their_values() {
        assert_eq!(by_ids(&["a*".to_string(), "b".to_string()]), "(|(entryUUID=a\\2a)(entryUUID=b))");
    }
}
