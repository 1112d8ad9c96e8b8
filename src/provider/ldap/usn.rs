//! Active Directory's change feed: objects whose `uSNChanged` is above the cursor.
//!
//! Every change a domain controller commits, its own or replicated in, gets the next number
//! of that DC's update sequence, which the rootDSE reports as `highestCommittedUSN` and every
//! object keeps as `uSNChanged`. The cursor is the DC's `highestCommittedUSN`, taken before
//! the full read, with the DC's identity: `dsServiceName` (the DN of its NTDS Settings object)
//! and that object's `invocationId`. USNs are the DC's own: a cursor from another DC, or from
//! the same DC before it was restored from a backup (a new `invocationId`, and a USN that may
//! go back), means nothing, and is [`FeedError::Expired`]: the caller reads in full.
//!
//! A round reads the rootDSE (one request). When `highestCommittedUSN` has not moved since the
//! cursor and the DC is the same, nothing changed: the round ends there. Otherwise it checks
//! the `invocationId` (one request) and sends one search of the domain's naming context, paged,
//! with the Show Deleted control (`1.2.840.113556.1.4.417`, so deleted objects come too) and
//! the Extended DN control (`1.2.840.113556.1.4.529`, so every DN comes with its object's
//! GUID): `(&(uSNChanged>=N)(|(USERS)(GROUPS)(&(isDeleted=TRUE)(|(objectClass=user)(objectClass=group)))))`
//! with N the cursor's USN plus one. What it returns is mapped as a full read maps it (the same
//! functions of `read`):
//! - a user below a user base: the account, whole; a user elsewhere (moved out of scope): the
//!   account removed; likewise a group below or outside the groups base;
//! - a deleted object (a tombstone in `CN=Deleted Objects`, which keeps its `objectGUID`): the
//!   account or binding with that id removed;
//! - a member or manager DN is the account whose `objectGUID` the Extended DN control names, if
//!   keyward sees that account once the round's changes are applied, else the DN as a full read
//!   keeps it.
//!
//! What the USN of an object does not show, found on Samba AD and in [MS-ADTS] (linked
//! attributes are stored on the forward link's object, but resolved when read): adding or
//! removing a member bumps the group's `uSNChanged`; deleting, renaming or moving a member
//! does not (the group's `member` loses or renames the value without a new USN), nor does
//! renaming a manager, or moving it into scope, change its reports. So the round also reads,
//! by `objectGUID` (one more search, only when there is something to read), what would now
//! map otherwise:
//! - the groups the held state says contain an account gone, or an account whose DN is not
//!   the one held. An account's fingerprint covers its DN ([`account_fingerprint`]): the held
//!   fingerprint, computed again from the held account with the DN read now, is the same
//!   only when the DN is. A title update leaves it, so the groups of an updated user are not
//!   read again: their members' DNs, and so their fingerprints, did not change;
//! - for an account new to the held state or whose DN changed, the held groups in its
//!   `memberOf` (a user moved into scope turns from a foreign member, kept as its DN, into an
//!   account) and the held accounts in its `directReports` (a manager moved into scope turns
//!   from no manager into one). A user created since the cursor is in no group whose USN did
//!   not move, so these are already read;
//! - for a user outside the users' bases (a foreign member), the held groups in its
//!   `memberOf` that do not hold its DN now (it was renamed or moved);
//! - the accounts whose manager's userName changed or whose manager is gone.
//!
//! A round with changes so costs the bind, the rootDSE, the `invocationId` and the search of
//! the changes (4 operations), plus the search of what a rename, move or deletion affects (5).
//! The `invocationId` cannot be spared on a round whose USN moved: a DC restored from a backup
//! takes a new one and numbers its changes again from the backup's USN, so once it is past the
//! cursor again only the `invocationId` shows that changes were numbered below the cursor
//! since. It is on the NTDS Settings object, in the configuration naming context, which
//! neither the rootDSE nor a search of the domain's naming context returns.
//!
//! Each search is bounded ([`ReadLimits`], through [`Client::search_paged_bounded`]) as is
//! each ranged read of a large group's members: a DC paging without end stops the round with
//! an error naming the bound.
//!
//! The next cursor is the `highestCommittedUSN` read at the start of the round: a change
//! committed while the round runs is read in this round, the next, or both, and reading it
//! twice changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use ldap3::controls::RawControl;

use super::client::BoundedFailure;
use super::read::{UserRead, account_fingerprint, group_of};
use super::*;
use crate::model::feed::{Changes, Cursor, LiveChange};
use crate::provider::FeedError;
use crate::provider::bounds::ReadLimits;

/// The Show Deleted control ([MS-ADTS] 3.1.1.3.4.1.14, LDAP_SERVER_SHOW_DELETED_OID).
pub const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// The Extended DN control ([MS-ADTS] 3.1.1.3.4.1.5, LDAP_SERVER_EXTENDED_DN_OID), without a
/// value: GUIDs come as 32 hex digits in wire order.
pub const EXTENDED_DN_OID: &str = "1.2.840.113556.1.4.529";

/// The cursor's keys.
const USN: &str = "highestCommittedUSN";
const SERVICE: &str = "dsServiceName";
const INVOCATION: &str = "invocationId";

/// GUIDs per search of the objects read again (the filter stays a few kilobytes).
const GUIDS_PER_SEARCH: usize = 100;

/// The domain controller answering, as its rootDSE describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dc {
    usn: u64,
    service: String,
    naming_context: String,
}

fn controls() -> Vec<RawControl> {
    vec![
        RawControl { ctype: SHOW_DELETED_OID.to_string(), crit: true, val: None },
        RawControl { ctype: EXTENDED_DN_OID.to_string(), crit: true, val: None },
    ]
}

/// A DN as the Extended DN control returns it, `<GUID=…>;<SID=…>;DN`: the GUID (in its usual
/// text form) and the DN. A value without the prefix is the DN alone.
pub fn split_extended(value: &str) -> (Option<String>, &str) {
    let mut rest = value;
    let mut guid = None;
    while let Some(body) = rest.strip_prefix('<') {
        let Some(end) = body.find('>') else { break };
        let part = &body[..end];
        if let Some(g) = part.strip_prefix("GUID=") {
            guid = guid_text(g);
        }
        rest = body[end + 1..].strip_prefix(';').unwrap_or(&body[end + 1..]);
    }
    (guid, rest)
}

/// A GUID from the Extended DN control: 32 hex digits in wire order, or already in text form.
fn guid_text(g: &str) -> Option<String> {
    if g.len() == 32 && g.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&g[2 * i..2 * i + 2], 16).unwrap_or(0)).collect();
        return Some(guid_string(&bytes));
    }
    let t = g.to_ascii_lowercase();
    crate::provider::ids::guid(&t).is_ok().then_some(t)
}

/// An `objectGUID` in a search filter: its 16 bytes in wire order, each escaped (RFC 4515).
fn guid_filter(id: &str) -> Option<String> {
    crate::provider::ids::guid(id).ok()?;
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let b: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0)).collect();
    // Text form to wire order: the first three fields are little-endian.
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    Some(format!("(objectGUID={})", order.iter().map(|&i| format!("\\{:02x}", b[i])).collect::<String>()))
}

fn has_class(attrs: &HashMap<String, Vec<String>>, class: &str) -> bool {
    attrs.get("objectclass").is_some_and(|v| v.iter().any(|c| c.eq_ignore_ascii_case(class)))
}

/// A group in scope: DN, id, name, and the members as (GUID, DN).
type GroupFound = (String, String, String, Vec<(Option<String>, String)>);

/// A user in scope a search returned.
struct FoundUser {
    read: UserRead,
    /// The GUID of its manager, if any.
    manager: Option<String>,
    /// The GUIDs of the groups it is a member of now (`memberOf`).
    member_of: Vec<String>,
    /// The GUIDs of the users it manages now (`directReports`).
    reports: Vec<String>,
}

/// A user outside the users' bases (not deleted) a search returned: a group may hold it as
/// a foreign member, kept as its DN.
struct Outside {
    dn_key: String,
    member_of: Vec<String>,
}

/// What one search returned, sorted as the round maps it.
#[derive(Default)]
struct Found {
    users: Vec<FoundUser>,
    groups: Vec<GroupFound>,
    /// Ids of objects deleted or out of scope.
    gone: Vec<String>,
    outside: Vec<Outside>,
}

/// The GUIDs the Extended DN control gives for the values of `attr`.
fn guids_of(attrs: &HashMap<String, Vec<String>>, attr: &str) -> Vec<String> {
    attrs.get(attr).into_iter().flatten().filter_map(|v| split_extended(v).0).collect()
}

impl LdapProvider {
    fn feed_failure(&self, what: &str, e: &LdapFailure) -> FeedError {
        FeedError::Read(self.remote(what, e))
    }

    fn feed_bounded(&self, what: &str, e: &BoundedFailure) -> FeedError {
        match e {
            BoundedFailure::Ldap(e) => self.feed_failure(what, e),
            _ => FeedError::Read(ProviderError::Remote {
                target: self.target.clone(),
                message: format!("cannot {what}: {e}"),
            }),
        }
    }

    fn restart(&self, message: impl Into<String>) -> FeedError {
        FeedError::Expired { target: self.target.clone(), message: message.into() }
    }

    /// The rootDSE's `highestCommittedUSN`, `dsServiceName` and `defaultNamingContext`; `None`
    /// when it lacks one (not an Active Directory DC).
    async fn dc(&self, client: &Client) -> Result<Option<Dc>, LdapFailure> {
        let Some(root) = client.read_entry("", &[USN, SERVICE, "defaultNamingContext"]).await? else {
            return Ok(None);
        };
        let a = client::attrs_by_lower_name(&root);
        let usn = first(&a, USN).and_then(|v| v.trim().parse::<u64>().ok());
        let service = first(&a, SERVICE).cloned();
        let nc = first(&a, "defaultNamingContext").cloned();
        Ok(match (usn, service, nc) {
            (Some(usn), Some(service), Some(naming_context)) => Some(Dc { usn, service, naming_context }),
            _ => None,
        })
    }

    /// The `invocationId` of the DC whose NTDS Settings object is at `service`.
    async fn invocation(&self, client: &Client, service: &str) -> Result<Option<String>, LdapFailure> {
        let Some(e) = client.read_entry(service, &[INVOCATION]).await? else { return Ok(None) };
        let id = e.bin_attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(INVOCATION)).and_then(|(_, v)| v.first());
        Ok(id.filter(|g| g.len() == 16).map(|g| guid_string(g)))
    }

    /// Whether the configured bases lie in the naming context the feed searches.
    fn bases_within(&self, naming_context: &str) -> bool {
        let Ok(nc) = Dn::parse(naming_context) else { return false };
        let mut bases = self.user_bases();
        bases.push(self.conn.groups_base.clone());
        bases.iter().all(|b| Dn::parse(b).is_ok_and(|b| b.is_within(&nc)))
    }

    /// A full read with a cursor (see the module's documentation); no cursor when the server
    /// is not an AD DC or the bases lie outside its default naming context.
    pub(super) async fn read_with_usn(&mut self) -> Result<(LiveTarget, Option<Cursor>), ProviderError> {
        let client = self.client().await?;
        let dc = self.dc(&client).await.map_err(|e| self.remote("read the rootDSE", &e))?;
        let invocation = match &dc {
            Some(dc) => {
                self.invocation(&client, &dc.service).await.map_err(|e| self.remote("read the DC's identity", &e))?
            }
            None => None,
        };
        let live = self.read_live().await?;
        let (Some(dc), Some(invocation)) = (dc, invocation) else {
            tracing::warn!(target_name = %self.target, "the directory reports no highestCommittedUSN or invocationId; it is read in full at every check");
            return Ok((live, None));
        };
        if !self.bases_within(&dc.naming_context) {
            tracing::warn!(target_name = %self.target, naming_context = %dc.naming_context,
                "usersBase or groupsBase lies outside the domain's naming context; the directory is read in full at every check");
            return Ok((live, None));
        }
        let cursor = BTreeMap::from([
            (USN.to_string(), dc.usn.to_string()),
            (SERVICE.to_string(), dc.service),
            (INVOCATION.to_string(), invocation),
        ]);
        Ok((live, Some(Cursor(cursor))))
    }

    /// What changed since `cursor` (see the module's documentation).
    pub(super) async fn usn_changes(&mut self, cursor: &Cursor, last: &LiveTarget) -> Result<Changes, FeedError> {
        let (Some(usn), Some(service), Some(invocation)) =
            (cursor.0.get(USN).and_then(|u| u.parse::<u64>().ok()), cursor.0.get(SERVICE), cursor.0.get(INVOCATION))
        else {
            return Err(self.restart("the cursor is not one of this target's"));
        };
        let client = self.client().await?;
        let dc = self.dc(&client).await.map_err(|e| self.feed_failure("read the rootDSE", &e))?;
        let Some(dc) = dc else { return Err(self.restart("the directory no longer reports highestCommittedUSN")) };
        if !dc.service.eq_ignore_ascii_case(service) {
            return Err(self.restart(format!(
                "another domain controller answers ({}, the cursor is from {service}); USNs are per DC",
                dc.service
            )));
        }
        if dc.usn < usn {
            return Err(self.restart(format!(
                "the DC's highestCommittedUSN went back from {usn} to {} (restored from a backup?)",
                dc.usn
            )));
        }
        if dc.usn == usn {
            return Ok(Changes { changes: Vec::new(), cursor: cursor.clone() });
        }
        let now =
            self.invocation(&client, &dc.service).await.map_err(|e| self.feed_failure("read the DC's identity", &e))?;
        if now.as_deref() != Some(invocation.as_str()) {
            return Err(self.restart("the DC's invocationId changed (it was restored from a backup); USNs start again"));
        }
        if !self.bases_within(&dc.naming_context) {
            return Err(self.restart("the bases lie outside the domain's naming context"));
        }
        let flavor = self.conn.flavor;
        let filter = format!(
            "(&(uSNChanged>={})(|{}{}(&(isDeleted=TRUE)(|(objectClass=user)(objectClass=group)))))",
            usn + 1,
            user_filter(flavor),
            group_filter(flavor)
        );
        let attrs = self.feed_attributes();
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let limits = ReadLimits::default();
        let entries = client
            .search_paged_bounded(&dc.naming_context, &filter, &attrs, self.page_size, limits, &controls())
            .await
            .map_err(|e| self.feed_bounded("read the changes", &e))?;
        let mut found = Found::default();
        self.sort_found(&client, &entries, &mut found).await?;
        let changed: usize = found.users.len() + found.groups.len() + found.gone.len();

        // Objects whose USN does not show that a full read would now see them otherwise.
        let again = self.to_read_again(&found, last);
        for chunk in again.chunks(GUIDS_PER_SEARCH) {
            let filter = format!("(|{})", chunk.iter().filter_map(|id| guid_filter(id)).collect::<String>());
            let entries = client
                .search_paged_bounded(&dc.naming_context, &filter, &attrs, self.page_size, limits, &controls())
                .await
                .map_err(|e| self.feed_bounded("read the objects a change affects", &e))?;
            self.sort_found(&client, &entries, &mut found).await?;
        }
        let changes = self.changes_of(found, last);
        tracing::debug!(target_name = %self.target, changed, read_again = again.len(),
            operations = client.operations(), "read Active Directory changes");
        let next = BTreeMap::from([
            (USN.to_string(), dc.usn.to_string()),
            (SERVICE.to_string(), dc.service),
            (INVOCATION.to_string(), invocation.clone()),
        ]);
        Ok(Changes { changes, cursor: Cursor(next) })
    }

    /// The attributes a round reads: a user's and a group's, and whether an object is deleted.
    fn feed_attributes(&self) -> Vec<String> {
        let mut a = self.user_attributes();
        for extra in ["member", "memberOf", "directReports", "objectClass", "isDeleted"] {
            if !a.iter().any(|x| x.eq_ignore_ascii_case(extra)) {
                a.push(extra.to_string());
            }
        }
        a
    }

    /// Sorts the entries of a search into users, groups and objects gone.
    async fn sort_found(&self, client: &Client, entries: &[SearchEntry], found: &mut Found) -> Result<(), FeedError> {
        let user_bases: Vec<Dn> = self.user_bases().iter().filter_map(|b| Dn::parse(b).ok()).collect();
        let groups_base = Dn::parse(&self.conn.groups_base).ok();
        for e in entries {
            let (_, dn) = split_extended(&e.dn);
            let attrs = client::attrs_by_lower_name(e);
            let id = entry_id(e, &attrs, &dn::normalize(dn));
            if first(&attrs, "isDeleted").is_some_and(|v| v.eq_ignore_ascii_case("TRUE")) {
                found.gone.push(id);
                continue;
            }
            let parsed = Dn::parse(dn).ok();
            if has_class(&attrs, "group") {
                let within = matches!((&parsed, &groups_base), (Some(d), Some(b)) if d.is_within(b));
                let Some(name) = first(&attrs, "cn").cloned().filter(|_| within) else {
                    found.gone.push(id);
                    continue;
                };
                let mut values = attrs.get("member").cloned().unwrap_or_default();
                if let Some((k, first)) = attrs.iter().find(|(k, _)| k.starts_with("member;range=")) {
                    values = client
                        .ranged_values_bounded(dn, "member", k, first, ReadLimits::default(), &controls()[1..])
                        .await
                        .map_err(|e| self.feed_bounded("read the members of a large group", &e))?;
                }
                let members = values
                    .iter()
                    .map(|v| {
                        let (guid, dn) = split_extended(v);
                        (guid, dn.to_string())
                    })
                    .collect();
                found.groups.push((dn.to_string(), id, name, members));
                continue;
            }
            let within = parsed.as_ref().is_some_and(|d| user_bases.iter().any(|b| d.is_within(b)));
            let member_of = guids_of(&attrs, "memberof");
            match self.user_read(e, dn).filter(|_| within) {
                Some(mut u) => {
                    let manager = field_attribute(self.conn.flavor, UserField::Manager).to_ascii_lowercase();
                    let mut guid = None;
                    if let Some(values) = u.attrs.get_mut(&manager) {
                        for v in values.iter_mut() {
                            let (g, dn) = split_extended(v);
                            guid = guid.or(g);
                            *v = dn.to_string();
                        }
                    }
                    let reports = guids_of(&attrs, "directreports");
                    found.users.push(FoundUser { read: u, manager: guid, member_of, reports });
                }
                None => {
                    found.outside.push(Outside { dn_key: dn::normalize(dn), member_of });
                    found.gone.push(id);
                }
            }
        }
        Ok(())
    }

    /// The ids of objects to read again (see the module's documentation): the groups that
    /// hold, by a DN that is no longer its DN, an account or a foreign member the round
    /// returned, and the accounts whose manager was renamed, moved into scope or is gone; not
    /// those the round read already.
    fn to_read_again(&self, found: &Found, last: &LiveTarget) -> Vec<String> {
        let held: HashMap<&str, &LiveAccount> = last.accounts.iter().map(|a| (a.id.as_str(), a)).collect();
        let bindings: HashMap<&str, &LiveBinding> = last.bindings.iter().map(|b| (b.id.as_str(), b)).collect();
        let mut again: BTreeSet<String> = BTreeSet::new();
        // Accounts whose DN a held group may hold as it was: gone, or not at the DN held
        // (renamed, moved, or new to keyward). An account's fingerprint covers its DN: the
        // held one, computed again with the DN read now, is the same only if the DN is.
        let mut moved: HashSet<&str> = found.gone.iter().map(String::as_str).collect();
        for u in &found.users {
            let same_dn = held
                .get(u.read.id.as_str())
                .is_some_and(|a| account_fingerprint(&u.read.dn, &a.user_name, &a.attrs, a.active) == a.fingerprint);
            if same_dn {
                continue;
            }
            moved.insert(u.read.id.as_str());
            again.extend(u.member_of.iter().filter(|g| bindings.contains_key(g.as_str())).cloned());
            // Its reports name it as their manager only once it is in scope.
            again.extend(u.reports.iter().filter(|r| held.contains_key(r.as_str())).cloned());
        }
        // A foreign member is held as its DN: a group whose members lack the DN read now
        // holds it as it was.
        for o in &found.outside {
            for g in &o.member_of {
                if bindings.get(g.as_str()).is_some_and(|b| !b.members.iter().any(|m| dn::normalize(m) == o.dn_key)) {
                    again.insert(g.clone());
                }
            }
        }
        if !moved.is_empty() {
            for b in &last.bindings {
                if b.members.iter().any(|m| moved.contains(m.as_str())) {
                    again.insert(b.id.clone());
                }
            }
        }
        // Accounts whose manager's userName changed or who lost their manager.
        let new_names: HashMap<&str, &str> =
            found.users.iter().map(|u| (u.read.id.as_str(), u.read.user_name.as_str())).collect();
        let returned: HashSet<&str> =
            found.users.iter().map(|u| u.read.id.as_str()).chain(found.gone.iter().map(String::as_str)).collect();
        let lost_names: HashSet<&str> = last
            .accounts
            .iter()
            .filter(|a| returned.contains(a.id.as_str()) && new_names.get(a.id.as_str()) != Some(&a.user_name.as_str()))
            .map(|a| a.user_name.as_str())
            .collect();
        if !lost_names.is_empty() {
            for a in &last.accounts {
                if a.attrs.manager.as_deref().is_some_and(|m| lost_names.contains(m)) {
                    again.insert(a.id.clone());
                }
            }
        }
        let read: HashSet<&str> = found.groups.iter().map(|g| g.1.as_str()).chain(returned.iter().copied()).collect();
        again.into_iter().filter(|id| !read.contains(id.as_str()) && crate::provider::ids::guid(id).is_ok()).collect()
    }

    /// The round's changes, in the order [`crate::model::feed::apply`] needs: objects gone,
    /// accounts, then groups with their members as a full read would now map them.
    fn changes_of(&mut self, found: Found, last: &LiveTarget) -> Vec<LiveChange> {
        let mut out = Vec::new();
        // The accounts keyward sees once the round is applied: id to userName.
        let mut accounts: HashMap<String, String> =
            last.accounts.iter().map(|a| (a.id.clone(), a.user_name.clone())).collect();
        let bindings: HashMap<&str, &LiveBinding> = last.bindings.iter().map(|b| (b.id.as_str(), b)).collect();
        let mut gone: Vec<&String> = found.gone.iter().collect();
        gone.sort();
        gone.dedup();
        for id in gone {
            if accounts.remove(id).is_some() {
                out.push(LiveChange::AccountRemoved { id: id.clone() });
            }
            if bindings.contains_key(id.as_str()) {
                out.push(LiveChange::BindingRemoved { id: id.clone() });
            }
        }
        for u in &found.users {
            accounts.insert(u.read.id.clone(), u.read.user_name.clone());
        }
        for u in &found.users {
            let manager = &u.manager;
            let account = self.account_of(&u.read, |_| manager.as_ref().and_then(|g| accounts.get(g)).cloned());
            out.push(LiveChange::Account(Box::new(account)));
        }
        self.feed_fingerprints.clear();
        let mut seen: HashSet<&str> = HashSet::new();
        for (dn, id, name, members) in &found.groups {
            if !seen.insert(id.as_str()) {
                continue;
            }
            let dns: Vec<String> = members.iter().map(|(_, d)| d.clone()).collect();
            let (binding, _) = group_of(dn, id.clone(), name.clone(), &dns, |i, _| {
                members[i].0.as_ref().filter(|g| accounts.contains_key(*g)).cloned()
            });
            let before: HashSet<&str> =
                bindings.get(id.as_str()).map(|b| b.members.iter().map(String::as_str).collect()).unwrap_or_default();
            let now: HashSet<&str> = binding.members.iter().map(String::as_str).collect();
            out.push(LiveChange::Binding { id: id.clone(), binding: binding.binding.clone() });
            for m in before.difference(&now) {
                out.push(LiveChange::MemberRemoved { binding: id.clone(), member: m.to_string() });
            }
            for m in now.difference(&before) {
                out.push(LiveChange::MemberAdded { binding: id.clone(), member: m.to_string() });
            }
            let mut sorted = binding.members.clone();
            sorted.sort();
            self.feed_fingerprints.insert(id.clone(), (sorted, binding.fingerprint));
        }
        out
    }

    /// A group's fingerprint as a full read computes it, for a group this round read (its DN
    /// and its members' DNs are part of it); `None` for any other.
    pub(super) fn feed_fingerprint(&self, b: &LiveBinding) -> Option<String> {
        let (members, fingerprint) = self.feed_fingerprints.get(&b.id)?;
        let mut now = b.members.clone();
        now.sort();
        (members == &now).then(|| fingerprint.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_dns_give_the_guid_in_text_form_and_the_dn() {
        // As Samba answers: the GUID's bytes in wire order, then the SID, then the DN.
        let v =
            "<GUID=5e5767bdd824544e8a8a477c0defbe96>;<SID=010500000000000515000000>;CN=pu1,OU=probe,DC=keyward,DC=test";
        let (guid, dn) = split_extended(v);
        assert_eq!(guid.as_deref(), Some("bd67575e-24d8-4e54-8a8a-477c0defbe96"));
        assert_eq!(dn, "CN=pu1,OU=probe,DC=keyward,DC=test");
        assert_eq!(split_extended("CN=x,DC=y"), (None, "CN=x,DC=y"));
        let (guid, dn) = split_extended("<GUID=BD67575E-24D8-4E54-8A8A-477C0DEFBE96>;CN=x");
        assert_eq!((guid.as_deref(), dn), (Some("bd67575e-24d8-4e54-8a8a-477c0defbe96"), "CN=x"));
        // Hostile values: no GUID, not hex, an unclosed prefix.
        assert_eq!(split_extended("<GUID=zz>;CN=x"), (None, "CN=x"));
        assert_eq!(split_extended("<GUID=12"), (None, "<GUID=12"));
        assert_eq!(split_extended(""), (None, ""));
    }

    #[test]
    fn an_object_guid_filter_sends_the_bytes_in_wire_order() {
        let f = guid_filter("bd67575e-24d8-4e54-8a8a-477c0defbe96").unwrap();
        assert_eq!(f, "(objectGUID=\\5e\\57\\67\\bd\\d8\\24\\54\\4e\\8a\\8a\\47\\7c\\0d\\ef\\be\\96)");
        // Round trip with the text form a read gives.
        let bytes: Vec<u8> = f
            .trim_start_matches("(objectGUID=")
            .trim_end_matches(')')
            .split('\\')
            .filter(|s| !s.is_empty())
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        assert_eq!(guid_string(&bytes), "bd67575e-24d8-4e54-8a8a-477c0defbe96");
        assert_eq!(guid_filter("CN=not a guid"), None);
        assert_eq!(guid_filter("x)(objectClass=*"), None);
    }
}
