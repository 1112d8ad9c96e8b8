//! The change feed: delta queries on users, groups and directory roles (§2.1 Delta).
//!
//! The cursor holds three delta links, `users`, `groups` and `directoryRoles`, and which
//! binding each directory role stands for. The three delta queries of a round go in one
//! `$batch`, their further pages in later ones ([`GraphClient::delta_rounds`]): an idle round is
//! one request. A full read first asks users and groups for a delta link "from now"
//! (`$deltatoken=latest`) and reads the directory roles' first round (every activated role with
//! its members: the collection is small), in that one batch, then reads: a change made while
//! the read runs is in the read or in the next round, or both. A later round follows the
//! link's pages to a new delta link: created and
//! updated users come whole (every selected property), removed ones as `@removed`; groups come
//! with their changed `displayName` and their `members@delta` (a removed member carries
//! `@removed`); directory roles with their `members@delta`. An expired or unknown link (`400
//! syncStateNotFound`) and a synchronization reset (`410 Gone`) are [`FeedError::Expired`]:
//! the caller reads in full.
//!
//! Directory roles: a full read binds role definitions (by definition id) and their tenant-wide
//! role assignments; the feed reports directory role objects, whose `id` is their own and whose
//! `roleTemplateId` names the definition. The first round maps each role to the binding of its
//! template (the definition with that id, or the one naming it as `templateId`), and the cursor
//! keeps the map. A role the cursor does not know is looked up by its `roleTemplateId` among
//! the directory role bindings held; one found nowhere, or a role reported removed, is
//! [`FeedError::Expired`]: a full read starts the feed again. `/directoryRoles/delta` is on the Graph fake's reference notes
//! (`docs/reference/graph.md` §1.5); assumed, and checked by the periodic full read: that its
//! members are the principals of tenant-wide assignments only (what a full read binds), and
//! that a role activated after the full read comes whole, with its `roleTemplateId`.
//!
//! Not from the feed: app roles, service accounts, eligibility and the sign-in methods policy
//! keep what the last full read saw until the next one.

use super::*;
use crate::model::feed::{Changes, Cursor, LiveChange};
use crate::provider::FeedError;

/// The first request of the users' feed: the properties a full read selects, and the manager.
fn users_query() -> String {
    format!("/users/delta?$select={USER_SELECT},manager")
}

/// The first request of the groups' feed.
const GROUPS_QUERY: &str = "/groups/delta?$select=displayName,members";

/// The first request of the directory roles' feed.
const ROLES_QUERY: &str = "/directoryRoles/delta?$select=displayName,roleTemplateId,members";

const USERS: &str = "users";
const GROUPS: &str = "groups";
const ROLES: &str = "directoryRoles";
/// Users arriving in one round (created or restored) whose memberships are read one by one;
/// above it, a full read starts the feed again.
const MAX_ARRIVALS: usize = 1000;
/// The cursor's key for the binding a directory role stands for (its value: the binding id,
/// empty for a role no binding stands for).
const ROLE_PREFIX: &str = "directoryRole ";

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

/// The `members@delta` of a group or directory role `v` as member changes of `binding`.
fn members(v: &Value, binding: &str, changes: &mut Vec<LiveChange>) {
    for (member, added) in v.get("members@delta").and_then(Value::as_array).into_iter().flatten().filter_map(reference)
    {
        changes.push(if added {
            LiveChange::MemberAdded { binding: binding.to_string(), member }
        } else {
            LiveChange::MemberRemoved { binding: binding.to_string(), member }
        });
    }
}

/// The id of the directory role binding in `live` whose role definition is the template
/// `template` (built-in role definitions have their template's id).
fn role_binding(template: &str, live: &LiveTarget) -> Option<String> {
    live.bindings
        .iter()
        .find(|b| b.id.eq_ignore_ascii_case(template) && matches!(b.binding, Binding::DirectoryRole(_)))
        .map(|b| b.id.clone())
}

impl GraphProvider {
    fn feed_error(&self, what: &str, e: GraphError) -> FeedError {
        if expired(&e) {
            FeedError::Expired {
                target: self.target.clone(),
                message: format!("the {what}delta link was refused: {e}"),
            }
        } else {
            FeedError::Read(ProviderError::Remote {
                target: self.target.clone(),
                message: format!("cannot read the {what}changes from {}: {e}", self.client.root()),
            })
        }
    }

    /// One round of the users', groups' and directory roles' feeds from `links`, in one batch
    /// (and later ones for further pages); the first refused link is [`FeedError::Expired`].
    async fn rounds(&self, links: &[&String; 3]) -> Result<[(Vec<Value>, String); 3], FeedError> {
        let rounds = self.client.delta_rounds(&links.map(String::as_str)).await.map_err(|e| self.feed_error("", e))?;
        let mut out = Vec::with_capacity(3);
        for (round, what) in rounds.into_iter().zip(["users' ", "groups' ", "directory roles' "]) {
            out.push(round.map_err(|e| self.feed_error(what, e))?);
        }
        out.try_into().map_err(|_| FeedError::Read(self.invalid_feed("a delta round is missing".into())))
    }

    pub(super) async fn read_with_feed(&mut self) -> Result<(LiveTarget, Option<Cursor>), ProviderError> {
        let starts = [format!("{}&$deltatoken=latest", users_query()), format!("{GROUPS_QUERY}&$deltatoken=latest")];
        let rounds = self.client.delta_rounds(&[&starts[0], &starts[1], ROLES_QUERY]).await;
        let rounds =
            rounds.and_then(|r| r.into_iter().collect::<Result<Vec<_>, _>>()).map_err(|e| ProviderError::Remote {
                target: self.target.clone(),
                message: format!("cannot start the change feed at {}: {e}", self.client.root()),
            })?;
        let Ok([(_, users), (_, groups), (roles, roles_link)]) = <[_; 3]>::try_from(rounds) else {
            return Err(self.invalid_feed("a delta round is missing".into()));
        };
        let live = self.read_live().await?;
        let mut cursor: BTreeMap<String, String> =
            [(USERS.to_string(), users), (GROUPS.to_string(), groups), (ROLES.to_string(), roles_link)].into();
        let templates = self.state.as_ref().map(|s| &s.role_templates);
        for r in &roles {
            let Some(id) = id_of(r) else { continue };
            let binding = str_of(r, "roleTemplateId")
                .and_then(|t| role_binding(&t, &live).or_else(|| templates?.get(&t).cloned()))
                .unwrap_or_default();
            cursor.insert(format!("{ROLE_PREFIX}{id}"), binding);
        }
        Ok((live, Some(Cursor(cursor))))
    }

    pub(super) async fn changes_since(&mut self, cursor: &Cursor, last: &LiveTarget) -> Result<Changes, FeedError> {
        let (Some(users_link), Some(groups_link), Some(roles_link)) =
            (cursor.0.get(USERS), cursor.0.get(GROUPS), cursor.0.get(ROLES))
        else {
            return Err(FeedError::Expired {
                target: self.target.clone(),
                message: "the cursor is not one of this target's".into(),
            });
        };
        let [users, groups, roles] = self.rounds(&[users_link, groups_link, roles_link]).await?;
        let ((users, users_next), (groups, groups_next), (roles, roles_next)) = (users, groups, roles);
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
            members(g, &id, &mut changes);
        }
        let mut next: BTreeMap<String, String> =
            cursor.0.iter().filter(|(k, _)| k.starts_with(ROLE_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect();
        for r in &roles {
            let Some(id) = id_of(r) else { continue };
            if r.get("@removed").is_some() {
                return Err(self.restart(format!("the directory role {id} was reported removed")));
            }
            let known = next.get(&format!("{ROLE_PREFIX}{id}")).cloned();
            let binding = match known {
                Some(b) => b,
                None => {
                    let b = str_of(r, "roleTemplateId").and_then(|t| role_binding(&t, last)).ok_or_else(|| {
                        self.restart(format!("the directory role {id} is not one the last full read bound"))
                    })?;
                    next.insert(format!("{ROLE_PREFIX}{id}"), b.clone());
                    b
                }
            };
            if !binding.is_empty() {
                members(r, &binding, &mut changes);
            }
        }
        self.memberships_of_arrivals(&users, last, &next, &mut changes).await?;
        tracing::debug!(target_name = %self.target, users = users.len(), groups = groups.len(), roles = roles.len(),
            requests = self.client.requests(), "read Graph changes");
        if self.state.is_none() {
            self.state = Some(attribution_state(last, &changes));
        }
        next.extend([
            (USERS.to_string(), users_next),
            (GROUPS.to_string(), groups_next),
            (ROLES.to_string(), roles_next),
        ]);
        Ok(Changes { changes, cursor: Cursor(next) })
    }

    /// The group and directory role memberships of the users of the users' round that the
    /// state held does not have (created, or restored from deleted items: a restored user
    /// comes back with the memberships it had, which no group's `members@delta` reports), read
    /// from `/users/{id}/memberOf` in batches, as member additions after the round's changes.
    /// More than [`MAX_ARRIVALS`] such users start the feed again from a full read instead.
    async fn memberships_of_arrivals(
        &self,
        users: &[Value],
        last: &LiveTarget,
        roles: &BTreeMap<String, String>,
        changes: &mut Vec<LiveChange>,
    ) -> Result<(), FeedError> {
        let reported: HashSet<String> =
            users.iter().filter(|u| u.get("@removed").is_none()).filter_map(id_of).collect();
        if reported.is_empty() {
            return Ok(());
        }
        // One pass over the accounts held, and only when the round reported users.
        let held: HashSet<&str> =
            last.accounts.iter().map(|a| a.id.as_str()).filter(|id| reported.contains(*id)).collect();
        let mut arrived: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for id in users.iter().filter(|u| u.get("@removed").is_none()).filter_map(|u| u.get("id")?.as_str()) {
            if held.contains(id) || !seen.insert(id) {
                continue;
            }
            if arrived.len() == MAX_ARRIVALS {
                return Err(self
                    .restart(format!("more than {MAX_ARRIVALS} users arrived in one round; a full read costs less")));
            }
            crate::provider::ids::guid(id).map_err(|e| {
                FeedError::Read(self.invalid_feed(format!("a user read from the Graph feed has an unusable id: {e}")))
            })?;
            arrived.push(id.to_string());
        }
        if arrived.is_empty() {
            return Ok(());
        }
        let urls: Vec<String> = arrived.iter().map(|id| format!("/users/{id}/memberOf")).collect();
        for (user, objects) in arrived.iter().zip(self.collections_each(&urls).await) {
            let objects = objects.map_err(|e| self.feed_error("memberships' ", e))?;
            for o in &objects {
                let Some(id) = id_of(o) else { continue };
                let kind = o.get("@odata.type").and_then(Value::as_str).unwrap_or_default();
                let binding = if kind.eq_ignore_ascii_case("#microsoft.graph.group") {
                    Some(id)
                } else if kind.eq_ignore_ascii_case("#microsoft.graph.directoryRole") {
                    roles
                        .get(&format!("{ROLE_PREFIX}{id}"))
                        .cloned()
                        .or_else(|| str_of(o, "roleTemplateId").and_then(|t| role_binding(&t, last)))
                        .filter(|b| !b.is_empty())
                } else {
                    None
                };
                if let Some(binding) = binding {
                    changes.push(LiveChange::MemberAdded { binding, member: user.clone() });
                }
            }
        }
        Ok(())
    }

    /// A feed that must start again from a full read.
    fn restart(&self, message: String) -> FeedError {
        FeedError::Expired { target: self.target.clone(), message }
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
                    out.push(LiveChange::AccountHeld { account: u.id.clone(), held: held_elsewhere(u) });
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

/// What attributing drift needs after a round (who changed an account or a membership is
/// looked up by the account's id): the userName → id of the accounts the round changed or whose
/// memberships it changed, from one pass over the state held. Drift the round did not touch was
/// attributed at the check that first saw it.
fn attribution_state(last: &LiveTarget, changes: &[LiveChange]) -> State {
    let mut users: HashMap<String, String> = HashMap::new();
    let mut wanted: HashSet<&str> = HashSet::new();
    for c in changes {
        match c {
            LiveChange::Account(a) => {
                users.insert(key(&a.user_name), a.id.clone());
            }
            LiveChange::MemberAdded { member, .. } | LiveChange::MemberRemoved { member, .. } => {
                wanted.insert(member);
            }
            _ => {}
        }
    }
    if !wanted.is_empty() {
        for a in last.accounts.iter().filter(|a| wanted.contains(a.id.as_str())) {
            users.entry(key(&a.user_name)).or_insert_with(|| a.id.clone());
        }
    }
    State { users, ..Default::default() }
}

/// An account's fingerprint, as a full read computes it.
pub(super) fn account_fingerprint(id: &str, user_name: &str, attrs: &crate::model::UserAttrs, active: bool) -> String {
    digest(&(id, user_name, attrs, active))
}

/// What a synchronized user's target refuses to change, as a full read reports it.
pub(super) fn held_elsewhere(u: &WireUser) -> Option<crate::model::HeldElsewhere> {
    u.synced.then(|| crate::model::HeldElsewhere {
        account: u.id.clone(),
        source: wire::ON_PREMISES.to_string(),
        fields: crate::model::UserField::ALL.to_vec(),
        lifecycle: true,
    })
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
