//! The change feed: Dataverse change tracking (`Prefer: odata.track-changes`,
//! `@odata.deltaLink`; docs/reference/dataverse.md §7) on the tables keyward reads, and the
//! tracked `audits` table for role assignments, which live in an intersect table that cannot be
//! tracked.
//!
//! A full read that starts the feed first reads the audit table's first round (ids and the
//! columns a later round needs; the audit table is tracked on every environment), then reads as
//! [`Provider::read`](crate::provider::Provider::read) does, asking every collection for
//! change tracking. When one of [`TRACKED`] answers without a delta link (change tracking is off
//! on that table), there is no feed: the target is read in full at every check, and the log says
//! so once per target and process. The cursor holds the delta link of each table, and the
//! business units by id (to tell a user's unit by name, as a full read reports it).
//!
//! A later round is one `$batch` of GET requests: each table's delta link, and the two intersect
//! collections that hold team (owner and Microsoft Entra group teams) and field security
//! profile members (they cannot be tracked, and their changes are not audited as role
//! assignments are, so they are read whole: they are small). A page past the first follows its `@odata.nextLink`. Then, if any user had roles
//! given or taken (the audit rows' actions 55 and 56), was created, was moved to another
//! business unit or became a person, one more `$batch` re-reads the roles of just those users
//! (`systemusers(id)/systemuserroles_association`). So an idle round costs one request, and a
//! round with role changes, new hires or moves two.
//!
//! A user created or moved is folded in the round as a full read would report it: its unit by
//! name from the units the cursor holds by id, its licence from its row, its roles from the
//! re-read, its team and profile memberships from the intersect collections, and what is out of
//! its reach (every role without a copy in its unit that it does not hold) from the units'
//! role copies the last full read saw. The same re-derivation runs for every user whose roles
//! were re-read.
//!
//! What the feed cannot follow, and reads in full instead ([`FeedError::Unfollowed`]: the
//! caller reads in full and starts the feed again, and counts it apart from refused cursors):
//! any change to business units, security roles, teams, field security profiles or their
//! permissions (rare, and they decide which copy of a role a user can hold and who is out of
//! reach); an application user changed or deleted (the feed does not keep service accounts); a
//! person who stops being one (an application user, or no domain name); a user in a unit the
//! cursor does not hold, or holding a role the last full read did not see; more than
//! [`MAX_REREADS`] users whose roles must be re-read in one round. A delta link refused (`400
//! 0x80040203`: expired after `ExpireChangeTrackingInDays`, or change tracking turned off) is
//! [`FeedError::Expired`].
//!
//! Team members are not followed incrementally: `teammembershipcollection` cannot be tracked,
//! and a membership change writes no audit row the reference sheet documents (only roles given
//! to or taken from users and teams, actions 53–56), so reading the collection whole is the only
//! sound way to see it.
//!
//! Assumed, and checked by the periodic full read: that the audit table records every role
//! given to or taken from a user (auditing on, as the access review also needs), and that a
//! `$batch` may hold GET requests of delta links.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use reqwest::{Method, Url};
use serde_json::Value;

use super::wire::{self, WireUser};
use super::{DataverseProvider, key};
use crate::model::feed::{Changes, Cursor, LiveChange};
use crate::model::{Binding, LiveAccount, LiveBinding, LiveTarget, OutOfReach, UserAttrs, digest};
use crate::provider::odata::{BatchOp, ODataError, display_url};
use crate::provider::{FeedError, Provider, ProviderError, ids};

/// The tables that must have change tracking on for the feed, and the documentation's list
/// (docs/servers.md).
pub const TRACKED: [&str; 6] =
    ["systemusers", "businessunits", "roles", "teams", "fieldsecurityprofiles", "fieldpermissions"];

/// Tables any change to which is read in full.
const STRUCTURE: [&str; 5] = ["businessunits", "roles", "teams", "fieldsecurityprofiles", "fieldpermissions"];

const AUDITS: &str = "audits";
/// The audit columns a round reads (the delta link keeps the `$select` of the first round).
const AUDIT_SELECT: &str = "action,objecttypecode,_objectid_value,_userid_value,createdon";

/// The cursor's key prefix for a business unit (value: its name).
const UNIT: &str = "businessunit ";

/// Users whose roles one round re-reads at most; more is read in full (cheaper than a request
/// per user, and bounded whatever the audit table holds).
pub const MAX_REREADS: usize = 200;

/// Targets whose lack of change tracking was logged already (by name and service root).
static UNTRACKED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A binding's fingerprint as [`super::read`] computes it on a full read.
pub fn fingerprint(b: &LiveBinding) -> String {
    match &b.binding {
        Binding::SecurityRole(_) => digest(&(b.id.strip_prefix("role:").unwrap_or(&b.id), &b.members)),
        Binding::Team(_) => digest(&(b.id.strip_prefix("team:").unwrap_or(&b.id), &b.members)),
        Binding::GroupTeam(g) => digest(&(
            b.id.strip_prefix("team:").unwrap_or(&b.id),
            &b.members,
            g.security_roles.clone().unwrap_or_default(),
        )),
        Binding::FieldSecurityProfile(p) => digest(&(&b.id, &p.columns, &b.members)),
        _ => digest(&(&b.id, &b.binding, &b.members)),
    }
}

/// The account a full read makes of a systemuser row, `None` for rows that are not people
/// (application users, built-in accounts without a domain name).
fn account(u: &WireUser) -> Option<LiveAccount> {
    let name = u.domain_name.as_ref().filter(|_| !u.application)?;
    let attrs = UserAttrs {
        given_name: u.first_name.clone(),
        family_name: u.last_name.clone(),
        email: u.email.clone(),
        job_title: u.job_title.clone(),
        ..UserAttrs::default()
    };
    let fingerprint = match &u.etag {
        Some(t) => format!("etag:{t}"),
        None => digest(&(&u.id, name, &attrs, u.disabled)),
    };
    Some(LiveAccount {
        id: u.id.clone(),
        user_name: name.clone(),
        attrs,
        active: !u.disabled,
        last_sign_in: None,
        registered_methods: None,
        fingerprint,
    })
}

/// Whether a row of a delta round is a deleted entity: `{"@odata.context": "…/$deletedEntity",
/// "id", "reason": "deleted"}`.
fn deleted(row: &Value) -> Option<&str> {
    let context = row.get("@odata.context").and_then(Value::as_str).unwrap_or_default();
    let is_deleted =
        context.ends_with("$deletedEntity") || row.get("reason").and_then(Value::as_str) == Some("deleted");
    is_deleted.then(|| row.get("id").and_then(Value::as_str).unwrap_or_default())
}

/// Member changes that make `have` into `want` for binding `id`.
fn member_changes(id: &str, have: &[String], want: &BTreeSet<String>, out: &mut Vec<LiveChange>) {
    for m in want.iter().filter(|m| !have.contains(m)) {
        out.push(LiveChange::MemberAdded { binding: id.to_string(), member: m.clone() });
    }
    for m in have.iter().filter(|m| !want.contains(*m)) {
        out.push(LiveChange::MemberRemoved { binding: id.to_string(), member: m.clone() });
    }
}

/// A refused delta link: expired, invalid, or change tracking turned off (`400 0x80040203`).
fn refused(e: &ODataError) -> bool {
    e.status() == Some(400) && e.code().is_some_and(|c| c.eq_ignore_ascii_case("0x80040203"))
}

impl DataverseProvider {
    fn expired(&self, message: String) -> FeedError {
        FeedError::Expired { target: self.target.clone(), message }
    }

    fn unfollowed(&self, message: String) -> FeedError {
        FeedError::Unfollowed { target: self.target.clone(), message }
    }

    fn feed_error(&self, what: &str, e: ODataError) -> FeedError {
        if refused(&e) {
            self.expired(format!("the {what} delta link was refused: {e}"))
        } else {
            FeedError::Read(ProviderError::Remote {
                target: self.target.clone(),
                message: format!("cannot read the {what} changes from {}: {e}", self.client.root()),
            })
        }
    }

    fn invalid(&self, message: String) -> FeedError {
        FeedError::Read(ProviderError::Remote { target: self.target.clone(), message })
    }

    fn untracked_key(&self) -> String {
        format!("{} {}", self.target, self.client.root())
    }

    /// A full read that starts the feed where every table keyward reads has change tracking.
    pub(super) async fn read_with_feed(&mut self) -> Result<(LiveTarget, Option<Cursor>), ProviderError> {
        let known_untracked = UNTRACKED.lock().is_ok_and(|u| u.contains(&self.untracked_key()));
        // The audit table's link first: a role given while the rest is read is in the read, in
        // the next round, or both.
        let audits = if known_untracked {
            None
        } else {
            match self.client.get_all_tracked(AUDITS, &format!("$select={AUDIT_SELECT}"), true).await {
                Ok((_, link)) => link,
                Err(e) => {
                    tracing::warn!(target_name = %self.target, error = %e, "cannot read the audit table: no change feed, every check reads in full");
                    None
                }
            }
        };
        if let Ok(mut t) = self.tracking.lock() {
            *t = Some(BTreeMap::new());
        }
        let read = self.read().await;
        let links = self.tracking.lock().ok().and_then(|mut t| t.take()).unwrap_or_default();
        let live = read?;
        let missing: Vec<&str> = TRACKED.iter().copied().filter(|t| !links.contains_key(*t)).collect();
        if !missing.is_empty() {
            let first = UNTRACKED.lock().is_ok_and(|mut u| u.insert(self.untracked_key()));
            if first {
                tracing::warn!(target_name = %self.target, tables = %missing.join(", "),
                    "change tracking is off on these tables: no change feed, every check reads in full (docs/servers.md)");
            }
            return Ok((live, None));
        }
        let Some(audits) = audits else {
            // Tracking was turned on since: the next full read starts the feed.
            if let Ok(mut u) = UNTRACKED.lock() {
                u.remove(&self.untracked_key());
            }
            return Ok((live, None));
        };
        let mut cursor: BTreeMap<String, String> =
            links.into_iter().filter(|(k, _)| TRACKED.contains(&k.as_str())).collect();
        cursor.insert(AUDITS.into(), audits.to_string());
        for (id, name) in self.state.iter().flat_map(|s| s.business_units.iter()) {
            cursor.insert(format!("{UNIT}{id}"), name.clone());
        }
        Ok((live, Some(Cursor(cursor))))
    }

    /// GETs in one `$batch`, each followed to its last page: the rows and the delta link.
    async fn batch_reads(&self, urls: &[(String, Url)]) -> Result<Vec<(Vec<Value>, Option<Url>)>, FeedError> {
        let ops: Vec<BatchOp> = urls
            .iter()
            .map(|(_, url)| BatchOp { method: Method::GET, url: url.clone(), body: None, if_match: None })
            .collect();
        let prefer = format!("odata.maxpagesize={}", self.client.page_size);
        let mut out = Vec::with_capacity(ops.len());
        for ((what, url), answer) in urls.iter().zip(self.client.batch(&ops).await) {
            let page = answer.map_err(|e| self.feed_error(what, e))?.body.ok_or_else(|| {
                self.invalid(format!("GET {} answered without a body inside the $batch", display_url(url)))
            })?;
            out.push(
                self.client
                    .get_collection(url.clone(), &prefer, Some(page))
                    .await
                    .map_err(|e| self.feed_error(what, e))?,
            );
        }
        Ok(out)
    }

    /// What changed since `cursor`, as changes to `last`.
    pub(super) async fn changes(&mut self, cursor: &Cursor, last: &LiveTarget) -> Result<Changes, FeedError> {
        let mut urls = Vec::new();
        for set in TRACKED.iter().chain([&AUDITS]) {
            let link = cursor.0.get(*set).ok_or_else(|| self.expired(format!("the cursor has no link for `{set}`")))?;
            let url = self.client.own_link(link, "the cursor").map_err(|e| self.invalid(e.to_string()))?;
            urls.push((set.to_string(), url));
        }
        urls.push((
            "team members".into(),
            self.client.url("teammembershipcollection", Some(&format!("$select={}", wire::TEAM_MEMBER_SELECT))),
        ));
        urls.push((
            "field security profile members".into(),
            self.client.url("systemuserprofilescollection", Some(&format!("$select={}", wire::USER_PROFILE_SELECT))),
        ));
        let mut rounds = self.batch_reads(&urls).await?;
        let profile_members = rounds.pop().map(|r| r.0).unwrap_or_default();
        let team_members = rounds.pop().map(|r| r.0).unwrap_or_default();
        let mut next = cursor.0.clone();
        let mut by_set: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for ((set, _), (rows, link)) in urls.iter().zip(rounds) {
            let link = link.ok_or_else(|| self.expired(format!("the `{set}` round ended without a delta link")))?;
            next.insert(set.clone(), link.to_string());
            by_set.insert(set.as_str(), rows);
        }
        for set in STRUCTURE {
            let n = by_set.get(set).map_or(0, Vec::len);
            if n > 0 {
                return Err(self.unfollowed(format!("{n} row(s) of `{set}` changed")));
            }
        }
        let mut changes = Vec::new();
        let placed = self.user_changes(by_set.remove("systemusers").unwrap_or_default(), cursor, last, &mut changes)?;
        let mut named = self.audited_users(&by_set.remove(AUDITS).unwrap_or_default())?;
        named.extend(placed.keys().cloned());
        if named.len() > MAX_REREADS {
            return Err(self.unfollowed(format!(
                "the roles of {} users changed or must be read (more than {MAX_REREADS})",
                named.len()
            )));
        }
        let held = self.role_changes(&named, last, &mut changes).await?;
        reach_changes(&held, &placed, last, &mut changes);
        let pairs = |rows: &[Value], a: &str, b: &str| -> Result<Vec<(String, String)>, FeedError> {
            rows.iter()
                .map(|v| wire::pair(v, a, b))
                .collect::<Result<_, _>>()
                .map_err(|m| self.invalid(format!("members read from the environment are not valid: {m}")))
        };
        let mut of_team: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (team, user) in pairs(&team_members, "teamid", "systemuserid")? {
            of_team.entry(format!("team:{team}")).or_default().insert(user);
        }
        let mut of_profile: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (user, profile) in pairs(&profile_members, "systemuserid", "fieldsecurityprofileid")? {
            of_profile.entry(profile).or_default().insert(user);
        }
        let none = BTreeSet::new();
        for b in &last.bindings {
            let want = match &b.binding {
                Binding::Team(_) | Binding::GroupTeam(_) => of_team.get(&b.id),
                Binding::FieldSecurityProfile(_) => of_profile.get(&b.id),
                _ => continue,
            };
            member_changes(&b.id, &b.members, want.unwrap_or(&none), &mut changes);
        }
        Ok(Changes { changes, cursor: Cursor(next) })
    }

    /// Users created, updated and deleted; returns the people created or moved to another
    /// business unit (or who became people), with their unit's name: their roles are re-read
    /// and what is out of their reach derived again.
    fn user_changes(
        &self,
        rows: Vec<Value>,
        cursor: &Cursor,
        last: &LiveTarget,
        out: &mut Vec<LiveChange>,
    ) -> Result<BTreeMap<String, Option<String>>, FeedError> {
        let mut placed = BTreeMap::new();
        for row in rows {
            if let Some(id) = deleted(&row) {
                let id = id.to_ascii_lowercase();
                ids::guid(&id).map_err(|e| self.invalid(format!("a deleted systemuser is refused: {e}")))?;
                if last.service_accounts.iter().any(|s| s.id == id) {
                    return Err(self.unfollowed(format!("application user {id} was deleted")));
                }
                placed.remove(&id);
                out.push(LiveChange::AccountRemoved { id });
                continue;
            }
            let u = WireUser::parse(&row)
                .map_err(|m| self.invalid(format!("users read from the environment are not valid: {m}")))?;
            if last.service_accounts.iter().any(|s| s.id == u.id) {
                // Application users are service accounts, which the feed does not keep.
                return Err(self.unfollowed(format!("application user {} changed", u.id)));
            }
            let Some(account) = account(&u) else {
                if last.accounts.iter().any(|a| a.id == u.id) {
                    return Err(self.unfollowed(format!("user {} is no longer a person", u.id)));
                }
                continue;
            };
            let Some(units) = &last.business_units else {
                // No root unit was read: nothing to place users in.
                return Err(self.unfollowed(format!("user {} changed and the environment has no root unit", u.id)));
            };
            let unit = match &u.business_unit {
                Some(b) => Some(cursor.0.get(&format!("{UNIT}{b}")).cloned().ok_or_else(|| {
                    self.unfollowed(format!(
                        "user {} is in business unit {b}, which the last full read did not see",
                        u.id
                    ))
                })?),
                None => None,
            };
            let was = units.of_account.get(&u.id);
            // A person without a unit is in no `of_account`: whether it is new is in the accounts.
            let new = match (&unit, was) {
                (None, None) => !last.accounts.iter().any(|a| a.id == u.id),
                _ => unit.as_ref() != was,
            };
            let mut scratch = LiveTarget::default();
            super::appusers::record_licence(&mut scratch, &u);
            out.push(LiveChange::Account(Box::new(account)));
            out.push(LiveChange::AccountLicence { account: u.id.clone(), licence: scratch.licences.remove(&u.id) });
            if new || placed.contains_key(&u.id) {
                out.push(LiveChange::AccountUnit { account: u.id.clone(), unit: unit.clone() });
                placed.insert(u.id.clone(), unit);
            }
        }
        Ok(placed)
    }

    /// The users whose roles audit rows say were given or taken (actions 55 and 56).
    fn audited_users(&self, rows: &[Value]) -> Result<BTreeSet<String>, FeedError> {
        let mut users = BTreeSet::new();
        for row in rows {
            if deleted(row).is_some() || !matches!(row.get("action").and_then(Value::as_i64), Some(55 | 56)) {
                continue;
            }
            let Some(user) = row.get("_objectid_value").or_else(|| row.get("objectid")).and_then(Value::as_str) else {
                continue;
            };
            let user = user.to_ascii_lowercase();
            ids::guid(&user).map_err(|e| self.invalid(format!("an audit row is refused: {e}")))?;
            users.insert(user);
            if users.len() > MAX_REREADS {
                break;
            }
        }
        Ok(users)
    }

    /// The role memberships of `users`, re-read, as changes to `last`; returns the role
    /// bindings each user holds now (users deleted since are left out).
    async fn role_changes(
        &self,
        users: &BTreeSet<String>,
        last: &LiveTarget,
        out: &mut Vec<LiveChange>,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, FeedError> {
        let mut out_held = BTreeMap::new();
        if users.is_empty() {
            return Ok(out_held);
        }
        let urls: Vec<(String, Url)> = users
            .iter()
            .map(|u| {
                let url = self
                    .client
                    .url(&format!("systemusers({u})/systemuserroles_association"), Some("$select=roleid,name"));
                ("role assignment".to_string(), url)
            })
            .collect();
        let ops: Vec<BatchOp> = urls
            .iter()
            .map(|(_, url)| BatchOp { method: Method::GET, url: url.clone(), body: None, if_match: None })
            .collect();
        let prefer = format!("odata.maxpagesize={}", self.client.page_size);
        let roles: BTreeMap<&str, &LiveBinding> = last
            .bindings
            .iter()
            .filter(|b| matches!(b.binding, Binding::SecurityRole(_)))
            .map(|b| (b.id.as_str(), b))
            .collect();
        for ((user, (what, url)), answer) in users.iter().zip(&urls).zip(self.client.batch(&ops).await) {
            let page = match answer {
                Ok(reply) => reply.body.unwrap_or(Value::Null),
                // Deleted since: the users' round of the next check says so.
                Err(e) if e.status() == Some(404) => continue,
                Err(e) => return Err(self.feed_error(what, e)),
            };
            let (rows, _) = self
                .client
                .get_collection(url.clone(), &prefer, Some(page))
                .await
                .map_err(|e| self.feed_error(what, e))?;
            let mut held = BTreeSet::new();
            for r in &rows {
                let name = r.get("name").and_then(Value::as_str).ok_or_else(|| {
                    self.invalid(format!("a role of user {user} read from the environment has no `name`"))
                })?;
                let id = format!("role:{}", key(name));
                if !roles.contains_key(id.as_str()) {
                    return Err(self.unfollowed(format!("user {user} holds a role the last full read did not see")));
                }
                held.insert(id);
            }
            for (id, b) in &roles {
                let has = b.members.iter().any(|m| m == user);
                if held.contains(*id) && !has {
                    out.push(LiveChange::MemberAdded { binding: id.to_string(), member: user.clone() });
                } else if !held.contains(*id) && has {
                    out.push(LiveChange::MemberRemoved { binding: id.to_string(), member: user.clone() });
                }
            }
            out_held.insert(user.clone(), held);
        }
        Ok(out_held)
    }
}

/// What is out of the reach of each person whose roles were re-read (`held`: the role bindings
/// each holds now), as a full read derives it: every security role with no copy in the person's
/// business unit (`placed` for people created or moved, else the unit `last` holds) that the
/// person does not hold. A user who is no person (an application user, a built-in account) has
/// nothing out of reach.
fn reach_changes(
    held: &BTreeMap<String, BTreeSet<String>>,
    placed: &BTreeMap<String, Option<String>>,
    last: &LiveTarget,
    out: &mut Vec<LiveChange>,
) {
    let Some(units) = &last.business_units else { return };
    // What `last` holds for them, in one pass: only a difference is a change.
    let mut had: BTreeMap<&str, Vec<&OutOfReach>> = BTreeMap::new();
    for o in &last.out_of_reach {
        if let Some(a) = o.account.as_deref().filter(|a| held.contains_key(*a)) {
            had.entry(a).or_default().push(o);
        }
    }
    for (user, roles) in held {
        let unit = match placed.get(user) {
            Some(unit) => unit.as_ref(),
            None if last.service_accounts.iter().any(|s| &s.id == user) => None,
            None => units.of_account.get(user),
        };
        let reach = unit.map_or_else(Vec::new, |unit| {
            let copies = units.roles.get(unit);
            last.bindings
                .iter()
                .filter(|b| !roles.contains(&b.id))
                .filter_map(|b| match &b.binding {
                    Binding::SecurityRole(name) if !copies.is_some_and(|r| r.contains(name)) => Some(OutOfReach {
                        binding: b.binding.clone(),
                        account: Some(user.clone()),
                        scope: format!("business unit `{unit}`"),
                    }),
                    _ => None,
                })
                .collect()
        });
        let before = had.remove(user.as_str()).unwrap_or_default();
        if before.len() != reach.len() || !reach.iter().all(|o| before.contains(&o)) {
            out.push(LiveChange::AccountOutOfReach { account: user.clone(), out_of_reach: reach });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_entities_are_told_from_rows() {
        let gone = serde_json::json!({"@odata.context": "https://x/api/data/v9.2/$metadata#systemusers/$deletedEntity",
            "id": "00000000-0000-0000-0000-000000000001", "reason": "deleted"});
        assert_eq!(deleted(&gone), Some("00000000-0000-0000-0000-000000000001"));
        let row = serde_json::json!({"systemuserid": "00000000-0000-0000-0000-000000000001", "domainname": "a@b"});
        assert_eq!(deleted(&row), None);
    }

    #[test]
    fn member_changes_make_one_set_into_the_other() {
        let mut out = Vec::new();
        let want: BTreeSet<String> = ["b", "c"].map(String::from).into();
        member_changes("team:t", &["a".to_string(), "b".to_string()], &want, &mut out);
        assert_eq!(
            out,
            vec![
                LiveChange::MemberAdded { binding: "team:t".into(), member: "c".into() },
                LiveChange::MemberRemoved { binding: "team:t".into(), member: "a".into() },
            ]
        );
    }
}
