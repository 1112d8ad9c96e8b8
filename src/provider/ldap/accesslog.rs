//! The OpenLDAP change feed with the accesslog overlay (slapo-accesslog(5)): deletions and
//! renames since the cursor come from one search of the log database, so a check need not list
//! every user and group id to find removals.
//!
//! A round with the log (target setting `accessLog`, the log database's suffix):
//! 1. one search of the log: its container (so keyward knows it may read it) and every write
//!    logged with success (`reqResult=0`) whose `entryCSN` (the CSN of the change, the one the
//!    changed entry got) is at or above the oldest CSN of the cursor. The log must hold the
//!    cursor's own CSN, for every server id: the write that set it. When it does not (the log
//!    was purged past the cursor by `logpurge`, or that write was not logged) the round lists
//!    the ids as a round without the log does, so a purge never hides a removal;
//! 2. one search below the bases' common ancestor: every entry whose `entryCSN` is above the
//!    cursor (users and groups alike, and entries that stopped being either), the users whose
//!    `manager` names a DN a logged write touched (a manager renamed, removed, created or with
//!    a new userName), and the groups whose `member` names a DN a logged add, delete or rename
//!    touched (a title update cannot change what a group's member DNs resolve to).
//!
//! Log entries naming DNs outside the bases are ignored. A group's member DN or a user's
//! manager DN resolves to a user read in the round, or to the held account whose userName is
//! the DN's RDN value and whose fingerprint (which covers its DN) the DN reproduces: an
//! account keyward holds that did not change since the cursor is where it was. DNs neither
//! resolves are read with one more search (`entryDN`), so a member that is no user costs a
//! request in the rounds that read its group.

use std::collections::{BTreeMap, BTreeSet};

use super::feed::{MAX_BY_ID, by_ids, csn_sid};
use super::read::{ReadUser, UserIndex, account_fingerprint};
use super::*;
use crate::model::feed::LiveChange;
use crate::provider::FeedError;

/// Log entries one round reads at most; with more, the round lists the ids instead.
pub(super) const MAX_LOG_ENTRIES: usize = 5000;
/// DNs one round names in its filter at most; with more, the round lists the ids instead.
const MAX_DNS: usize = 200;
/// DNs read by `entryDN` in one filter at most; more are resolved by reading the users whole.
const MAX_BY_DN: usize = 100;

/// A write the log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LogOp {
    Add,
    Delete,
    Modify,
    Rename,
}

/// One logged write below the bases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Logged {
    pub(super) op: LogOp,
    /// The entry's DN (`reqDN`; for a rename, the DN before it).
    pub(super) dn: Dn,
    /// A rename's new DN.
    pub(super) new_dn: Option<Dn>,
    /// The entry's `entryUUID` (`reqEntryUUID`), lower-cased.
    pub(super) uuid: Option<String>,
    /// The CSN of the write (the log entry's `entryCSN`).
    pub(super) csn: String,
}

/// Why a round cannot use the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NoLog {
    /// keyward cannot read it (said once).
    Unreadable(String),
    /// It does not cover the time since the cursor (said each round).
    Incomplete(String),
}

/// The filter of the log search for writes at or above `since`.
pub(super) fn log_filter(since: &str) -> String {
    format!(
        "(|(objectClass=auditContainer)(&(objectClass=auditWriteObject)(reqResult=0)(entryCSN>={})))",
        dn::filter_value(since)
    )
}

/// The writes of `entries` (a log search's answer) below one of `bases`, after checking the
/// log holds the container and every CSN of `held`.
pub(super) fn parse_log(
    entries: &[SearchEntry],
    held: &BTreeMap<String, String>,
    bases: &[Dn],
) -> Result<Vec<Logged>, NoLog> {
    let mut container = false;
    let mut csns: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for e in entries {
        let attrs = client::attrs_by_lower_name(e);
        let classes = attrs.get("objectclass").cloned().unwrap_or_default();
        if classes.iter().any(|c| c.eq_ignore_ascii_case("auditContainer")) {
            container = true;
            continue;
        }
        let csn = first(&attrs, "entryCSN").cloned().unwrap_or_default();
        csns.insert(csn.to_ascii_lowercase());
        // The writes at or below the cursor's CSN of their server id were seen before.
        let sid = csn_sid(&csn).map(str::to_ascii_lowercase);
        if sid.and_then(|sid| held.get(&sid)).is_some_and(|h| csn.as_str() <= h.as_str()) {
            continue;
        }
        let op = match first(&attrs, "reqType").map(|t| t.to_ascii_lowercase()).as_deref() {
            Some("add") => LogOp::Add,
            Some("delete") => LogOp::Delete,
            Some("modify") => LogOp::Modify,
            Some("modrdn") => LogOp::Rename,
            _ => continue,
        };
        let Some(dn) = first(&attrs, "reqDN").and_then(|d| Dn::parse(d).ok()) else { continue };
        let new_dn = if op == LogOp::Rename { renamed_to(&attrs, &dn) } else { None };
        let within = |d: &Dn| bases.iter().any(|b| d.is_within(b));
        if !within(&dn) && !new_dn.as_ref().is_some_and(within) {
            continue;
        }
        let uuid = first(&attrs, "reqEntryUUID").map(|u| u.to_ascii_lowercase());
        out.push(Logged { op, dn, new_dn, uuid, csn });
    }
    out.sort_by(|a, b| a.csn.cmp(&b.csn));
    if !container {
        return Err(NoLog::Unreadable("the search returns no auditContainer entry".into()));
    }
    if let Some(csn) = held.values().find(|c| !csns.contains(&c.to_ascii_lowercase())) {
        return Err(NoLog::Incomplete(format!(
            "holds no write with the cursor's CSN {csn} (purged by logpurge, or not logged)"
        )));
    }
    Ok(out)
}

/// A rename's new DN: `reqNewDN`, or `reqNewRDN` below `reqNewSuperior` (or below the old
/// parent).
fn renamed_to(attrs: &HashMap<String, Vec<String>>, old: &Dn) -> Option<Dn> {
    if let Some(d) = first(attrs, "reqNewDN") {
        return Dn::parse(d).ok();
    }
    let rdn = Dn::parse(first(attrs, "reqNewRDN")?).ok()?;
    let parent = match first(attrs, "reqNewSuperior") {
        Some(s) => Dn::parse(s).ok()?,
        None => Dn { rdns: old.rdns.get(1..)?.to_vec() },
    };
    let mut rdns = rdn.rdns;
    rdns.extend(parent.rdns);
    Some(Dn { rdns })
}

/// The nearest DN every one of `bases` is at or below (the empty DN when they share none).
pub(super) fn common_base(bases: &[Dn]) -> Dn {
    let Some(first) = bases.first() else { return Dn { rdns: Vec::new() } };
    let tail = |n: usize| Dn { rdns: first.rdns[first.rdns.len() - n..].to_vec() };
    let mut n = first.rdns.len();
    while n > 0 && !bases.iter().all(|b| b.is_within(&tail(n))) {
        n -= 1;
    }
    tail(n)
}

/// `(|(attr=a)(attr=b)…)` for `values`; `None` when there are none.
fn any_of<'a>(attr: &str, values: impl IntoIterator<Item = &'a String>) -> Option<String> {
    let parts: String = values.into_iter().map(|v| format!("({attr}={})", dn::filter_value(v))).collect();
    (!parts.is_empty()).then(|| format!("(|{parts})"))
}

fn has_class(e: &SearchEntry, class: &str) -> bool {
    e.attrs
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("objectClass") && v.iter().any(|c| c.eq_ignore_ascii_case(class)))
}

impl LdapProvider {
    fn bases(&self) -> (Vec<Dn>, Option<Dn>) {
        let users = self.user_bases().iter().filter_map(|b| Dn::parse(b).ok()).collect();
        (users, Dn::parse(&self.conn.groups_base).ok())
    }

    /// The writes logged at or above `since` below the bases, or why the round cannot use the
    /// log.
    pub(super) async fn read_log(
        &self,
        client: &Client,
        log_base: &str,
        held: &BTreeMap<String, String>,
        since: &str,
    ) -> Result<Result<Vec<Logged>, NoLog>, FeedError> {
        let attrs =
            ["objectClass", "entryCSN", "reqType", "reqDN", "reqNewDN", "reqNewRDN", "reqNewSuperior", "reqEntryUUID"];
        let found = client.search_paged(log_base, &log_filter(since), &attrs, self.page_size, false).await;
        let entries = match found {
            Ok(entries) => entries,
            Err(e @ LdapFailure::Result { .. }) => return Ok(Err(NoLog::Unreadable(e.to_string()))),
            Err(e) => return Err(FeedError::Read(self.remote("read the accesslog", &e))),
        };
        if entries.len() > MAX_LOG_ENTRIES {
            return Ok(Err(NoLog::Incomplete(format!("holds more than {MAX_LOG_ENTRIES} writes since the cursor"))));
        }
        let (mut bases, groups) = self.bases();
        bases.extend(groups);
        Ok(parse_log(&entries, held, &bases))
    }

    /// The changes since `since` against `last`, with the writes `log` logged since; `None`
    /// when the log names too many DNs for one filter.
    pub(super) async fn changes_logged(
        &mut self,
        client: &Client,
        suffix: &str,
        since: &str,
        log: &[Logged],
        last: &LiveTarget,
    ) -> Result<Option<Vec<LiveChange>>, FeedError> {
        let (user_bases, groups_base) = self.bases();
        let in_users = |d: &Dn| user_bases.iter().any(|b| d.is_within(b));
        let in_groups = |d: &Dn| groups_base.as_ref().is_some_and(|g| d.is_within(g));
        let mut manager_dns: BTreeSet<String> = BTreeSet::new();
        let mut member_dns: BTreeSet<String> = BTreeSet::new();
        let mut gone: HashSet<String> = HashSet::new();
        for l in log {
            for d in std::iter::once(&l.dn).chain(&l.new_dn).filter(|d| in_users(d)) {
                manager_dns.insert(d.to_string());
                if l.op != LogOp::Modify {
                    member_dns.insert(d.to_string());
                }
            }
            if matches!(l.op, LogOp::Delete | LogOp::Rename) {
                gone.extend(l.uuid.clone());
            }
        }
        if manager_dns.len() + member_dns.len() > MAX_DNS {
            return Ok(None);
        }

        // One search: what changed, and what names a DN a write touched.
        let mut all: Vec<Dn> = user_bases.clone();
        all.extend(groups_base.clone());
        let base = common_base(&all);
        let base = if base.rdns.is_empty() { suffix.to_string() } else { base.to_string() };
        let mut filter = format!("(|(!(entryCSN<={}))", dn::filter_value(since));
        if let Some(m) = any_of(field_attribute(self.conn.flavor, UserField::Manager), &manager_dns) {
            filter.push_str(&format!("(&{}{m})", user_filter(self.conn.flavor)));
        }
        if let Some(m) = any_of("member", &member_dns) {
            filter.push_str(&format!("(&{}{m})", group_filter(self.conn.flavor)));
        }
        filter.push(')');
        let user_attrs = self.user_attributes();
        let mut attrs: Vec<&str> = user_attrs.iter().map(String::as_str).collect();
        attrs.extend(["member", "objectClass"]);
        let found = client
            .search_paged(&base, &filter, &attrs, self.page_size, false)
            .await
            .map_err(|e| FeedError::Read(self.remote("read the changed entries", &e)))?;

        let mut seen: HashSet<String> = gone;
        let (mut users, mut groups): (Vec<&SearchEntry>, Vec<SearchEntry>) = (Vec::new(), Vec::new());
        for e in &found {
            seen.insert(Self::id_of(e));
            let Ok(d) = Dn::parse(&e.dn) else { continue };
            if in_users(&d) && has_class(e, "inetOrgPerson") {
                users.push(e);
            }
            if in_groups(&d) && has_class(e, "groupOfNames") {
                groups.push(e.clone());
            }
        }
        let whole = self.index_users(users);
        let whole_ids: HashSet<&str> = whole.users.iter().map(|u| u.id.as_str()).collect();

        // Removed: accounts the log or the search names that are users no more.
        let mut out: Vec<LiveChange> = Vec::new();
        let mut removed: HashSet<String> = HashSet::new();
        for a in last.accounts.iter().filter(|a| seen.contains(&a.id) && !whole_ids.contains(a.id.as_str())) {
            out.push(LiveChange::AccountRemoved { id: a.id.clone() });
            removed.insert(a.id.clone());
        }

        // Groups naming an account removed without a logged delete or rename (it stopped
        // being a user) are read again: their member DN no longer resolves to it.
        let group_ids: HashSet<String> = groups.iter().map(Self::id_of).collect();
        let again: Vec<String> = last
            .bindings
            .iter()
            .filter(|b| !group_ids.contains(&b.id) && b.members.iter().any(|m| removed.contains(m)))
            .map(|b| b.id.clone())
            .collect();
        if !again.is_empty() {
            let group_attrs = self.group_attributes();
            let read = if again.len() > MAX_BY_ID {
                self.search_groups(client, None, &group_attrs).await?
            } else {
                self.search_groups(client, Some(&by_ids(&again)), &group_attrs).await?
            };
            let again: HashSet<String> = again.into_iter().collect();
            groups.extend(read.into_iter().filter(|e| again.contains(&Self::id_of(e))));
        }

        // DNs that hold no user now: members held as DNs (no account) that no write touched
        // since, and DNs whose last write deleted or renamed their entry away.
        let ids: HashSet<&str> = last.accounts.iter().map(|a| a.id.as_str()).collect();
        let mut absent: HashSet<String> = last
            .bindings
            .iter()
            .flat_map(|b| b.members.iter())
            .filter(|m| !ids.contains(m.as_str()))
            .map(|m| dn::normalize(m))
            .collect();
        for l in log {
            match l.op {
                LogOp::Delete => {
                    absent.insert(l.dn.key());
                }
                LogOp::Rename => {
                    absent.insert(l.dn.key());
                    if let Some(d) = &l.new_dn {
                        absent.remove(&d.key());
                    }
                }
                LogOp::Add | LogOp::Modify => {
                    absent.remove(&l.dn.key());
                }
            }
        }
        let index = self.resolving_index(client, whole, &groups, last, &removed, &absent).await?;
        let held: HashMap<&str, &LiveAccount> = last.accounts.iter().map(|a| (a.id.as_str(), a)).collect();
        for u in &index.index.users[..index.whole] {
            let a = self.map_user(&index.index, u);
            if held.get(a.id.as_str()).is_none_or(|b| **b != a) {
                out.push(LiveChange::Account(Box::new(a)));
            }
        }

        let (bindings, _) = self.map_groups(client, &index.index, &groups).await?;
        let mapped: HashSet<&str> = bindings.iter().map(|b| b.id.as_str()).collect();
        for b in last.bindings.iter().filter(|b| seen.contains(&b.id) && !mapped.contains(b.id.as_str())) {
            out.push(LiveChange::BindingRemoved { id: b.id.clone() });
        }
        out.extend(self.binding_changes(bindings, last));
        Ok(Some(out))
    }

    /// The index member and manager DNs resolve against: the users read whole, the held
    /// accounts the DNs name (see the module's documentation), and the users read by the DNs
    /// neither gives.
    async fn resolving_index(
        &self,
        client: &Client,
        whole: UserIndex,
        groups: &[SearchEntry],
        last: &LiveTarget,
        removed: &HashSet<String>,
        absent: &HashSet<String>,
    ) -> Result<Resolving, FeedError> {
        let user_bases: Vec<Dn> = self.bases().0;
        let manager = field_attribute(self.conn.flavor, UserField::Manager);
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for u in &whole.users {
            if let Some(m) = first(&u.attrs, manager) {
                wanted.insert(dn::normalize(m), m.clone());
            }
        }
        for g in groups {
            for v in g.attrs.iter().filter(|(k, _)| k.eq_ignore_ascii_case("member")).map(|(_, v)| v) {
                for m in v.iter().filter(|m| !m.trim().is_empty()) {
                    wanted.insert(dn::normalize(m), m.clone());
                }
            }
        }
        let whole_ids: HashSet<String> = whole.users.iter().map(|u| u.id.clone()).collect();
        let held: HashMap<String, &LiveAccount> = last
            .accounts
            .iter()
            .filter(|a| !whole_ids.contains(&a.id) && !removed.contains(&a.id))
            .map(|a| (key(&a.user_name), a))
            .collect();
        let whole_count = whole.users.len();
        let mut users: Vec<ReadUser> = whole.users;
        let mut by_dn: HashMap<String, usize> = whole.by_dn;
        let mut unresolved: Vec<String> = Vec::new();
        for (k, raw) in wanted {
            if by_dn.contains_key(&k) {
                continue;
            }
            let Ok(parsed) = Dn::parse(&raw) else { continue };
            let held_here = parsed
                .rdn_value(&self.conn.user_key)
                .and_then(|v| held.get(&key(v)))
                .filter(|a| account_fingerprint(&parsed, &a.user_name, &a.attrs, a.active) == a.fingerprint);
            match held_here {
                Some(a) => {
                    by_dn.insert(k, users.len());
                    let user = ReadUser {
                        dn: parsed,
                        raw_dn: raw,
                        attrs: HashMap::new(),
                        id: a.id.clone(),
                        user_name: a.user_name.clone(),
                    };
                    users.push(user);
                }
                // A DN outside the user bases, or known to hold no user, names no user.
                None if absent.contains(&k) || !user_bases.iter().any(|b| parsed.is_within(b)) => {}
                None => unresolved.push(raw),
            }
        }
        if !unresolved.is_empty() {
            let user_attrs = self.user_attributes();
            let user_attrs: Vec<&str> = user_attrs.iter().map(String::as_str).collect();
            let filter = any_of("entryDN", &unresolved).filter(|_| unresolved.len() <= MAX_BY_DN);
            let read = self.search_users(client, filter.as_deref(), &user_attrs).await?;
            let read = self.index_users(&read);
            for user in read.users {
                let k = user.dn.key();
                if by_dn.contains_key(&k) || whole_ids.contains(&user.id) {
                    continue;
                }
                by_dn.insert(k, users.len());
                users.push(user);
            }
        }
        Ok(Resolving { index: UserIndex { users, by_dn }, whole: whole_count })
    }
}

/// The index member and manager DNs resolve against; its first `whole` users were read whole
/// this round (a change to report where they differ from the state held).
struct Resolving {
    index: UserIndex,
    whole: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: dn.into(),
            attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect(),
            bin_attrs: HashMap::new(),
        }
    }

    const CSN_A: &str = "20261205024406.029615Z#000000#000#000000";
    const CSN_B: &str = "20261205024406.042241Z#000000#000#000000";

    fn container() -> SearchEntry {
        entry("cn=accesslog", &[("objectClass", &["auditContainer"])])
    }

    fn held(csn: &str) -> BTreeMap<String, String> {
        [("000".to_string(), csn.to_string())].into()
    }

    fn bases() -> Vec<Dn> {
        vec![Dn::parse("ou=people,dc=x").unwrap(), Dn::parse("ou=groups,dc=x").unwrap()]
    }

    #[test]
    fn the_log_gives_deletions_and_renames_below_the_bases() {
        let log = [
            container(),
            entry(
                "reqStart=1,cn=accesslog",
                &[("reqType", &["modify"]), ("reqDN", &["uid=a,ou=people,dc=x"]), ("entryCSN", &[CSN_A])],
            ),
            entry(
                "reqStart=2,cn=accesslog",
                &[
                    ("reqType", &["modrdn"]),
                    ("reqDN", &["uid=b,ou=people,dc=x"]),
                    ("reqNewRDN", &["uid=c"]),
                    ("reqEntryUUID", &["AB-CD"]),
                    ("entryCSN", &[CSN_B]),
                ],
            ),
            entry(
                "reqStart=3,cn=accesslog",
                &[("reqType", &["delete"]), ("reqDN", &["uid=z,ou=elsewhere,dc=x"]), ("reqEntryUUID", &["zz"])],
            ),
            entry(
                "reqStart=4,cn=accesslog",
                &[("reqType", &["delete"]), ("reqDN", &["uid=d,ou=people,dc=x"]), ("reqEntryUUID", &["dd"])],
            ),
            entry(
                "reqStart=5,cn=accesslog",
                &[
                    ("reqType", &["modrdn"]),
                    ("reqDN", &["uid=e,ou=else,dc=x"]),
                    ("reqNewRDN", &["uid=e"]),
                    ("reqNewSuperior", &["ou=people,dc=x"]),
                ],
            ),
        ];
        let got = parse_log(&log, &held(CSN_A), &bases()).unwrap();
        let ops: Vec<(&LogOp, String, Option<String>, Option<&str>)> = got
            .iter()
            .map(|l| (&l.op, l.dn.to_string(), l.new_dn.as_ref().map(Dn::to_string), l.uuid.as_deref()))
            .collect();
        assert_eq!(
            ops,
            vec![
                (&LogOp::Delete, "uid=d,ou=people,dc=x".into(), None, Some("dd")),
                (&LogOp::Rename, "uid=e,ou=else,dc=x".into(), Some("uid=e,ou=people,dc=x".into()), None),
                (&LogOp::Rename, "uid=b,ou=people,dc=x".into(), Some("uid=c,ou=people,dc=x".into()), Some("ab-cd")),
            ],
            "in CSN order (none first); the write at the cursor's CSN was seen before; the delete outside the bases is \
             ignored; a move into them is kept"
        );
    }

    #[test]
    fn a_log_without_the_cursors_csn_or_its_container_is_not_used() {
        let write = entry(
            "reqStart=1,cn=accesslog",
            &[("reqType", &["add"]), ("reqDN", &["uid=a,ou=people,dc=x"]), ("entryCSN", &[CSN_B])],
        );
        // Purged past the cursor: the write that set CSN_A is gone.
        match parse_log(&[container(), write.clone()], &held(CSN_A), &bases()) {
            Err(NoLog::Incomplete(m)) => assert!(m.contains(CSN_A), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_log(std::slice::from_ref(&write), &held(CSN_B), &bases()), Err(NoLog::Unreadable(_))));
        assert!(parse_log(&[container(), write], &held(CSN_B), &bases()).is_ok());
    }

    #[test]
    fn the_changes_are_read_below_the_bases_common_ancestor() {
        let d = |s: &str| Dn::parse(s).unwrap();
        assert_eq!(common_base(&[d("ou=people,ou=a,dc=x"), d("ou=groups,ou=a,dc=x")]).to_string(), "ou=a,dc=x");
        assert_eq!(common_base(&[d("ou=people,dc=x"), d("ou=people,dc=x")]).to_string(), "ou=people,dc=x");
        assert!(common_base(&[d("dc=x"), d("dc=y")]).rdns.is_empty());
        assert_eq!(
            log_filter("2026*)"),
            "(|(objectClass=auditContainer)(&(objectClass=auditWriteObject)(reqResult=0)(entryCSN>=2026\\2a\\29)))"
        );
        assert_eq!(any_of("member", &["a*".to_string()]).as_deref(), Some("(|(member=a\\2a))"));
        assert_eq!(any_of("member", &[]), None);
    }
}
