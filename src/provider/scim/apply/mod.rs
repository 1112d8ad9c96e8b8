//! Applying changes: units of work in dependency order, sent in Bulk requests where the
//! service takes them, one by one otherwise, made idempotent by adopting what already exists.

mod adopt;
mod bulk_requests;
mod lifecycle;

use self::bulk_requests::member_ops;
use std::collections::BTreeMap;

use super::*;
use crate::model::UserField;
use crate::remote::http::Dialect;

impl ScimProvider {
    pub(super) async fn apply_changes(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        if self.access != Access::Write {
            return changes.iter().map(|_| Err(ApplyError::new("the target was opened read-only"))).collect();
        }
        let (Some(config), Some(state)) = (self.config.clone(), self.state.as_mut()) else {
            return changes.iter().map(|_| Err(ApplyError::new("apply called before read"))).collect();
        };
        let mut run = Run {
            client: &self.client,
            config,
            state,
            results: vec![None; changes.len()],
            requests: 0,
            path_refused: Vec::new(),
            lifecycle: HashSet::new(),
            refused_with_lifecycle: Vec::new(),
            learned: &mut self.learned,
        };
        let works = run.plan_works(changes);
        run.execute(works).await;
        tracing::info!(target_name = %self.target, changes = changes.len(), requests = run.requests, "applied to SCIM target");
        run.results.into_iter().map(|r| r.unwrap_or_else(|| Err(ApplyError::new("no outcome was recorded")))).collect()
    }
}

/// One write: a resource to create, patch or delete, and the changes it carries out.
#[derive(Debug, Clone)]
struct Work {
    unit: Unit,
    changes: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Unit {
    CreateGroup {
        name: String,
    },
    CreateUser {
        user_name: String,
        attrs: UserAttrs,
        active: bool,
    },
    PatchUser {
        user: String,
        set: UserAttrs,
        active: Option<bool>,
    },
    /// Member ids to add and remove.
    PatchGroup {
        group: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    DeleteUser {
        user: String,
    },
}

impl Unit {
    fn describe(&self) -> String {
        match self {
            Unit::CreateGroup { name } => format!("group {name}"),
            Unit::CreateUser { user_name, .. } => format!("user {user_name}"),
            Unit::PatchUser { user, .. } | Unit::DeleteUser { user } => format!("user {user}"),
            Unit::PatchGroup { group, .. } => format!("group {group}"),
        }
    }
}

/// What a successful write changed in what keyward knows.
#[derive(Debug, Clone)]
enum Effect {
    /// `dropped`: attributes asked for that the service's answer lacks.
    UserCreated {
        user_name: String,
        id: String,
        version: Option<String>,
        emails: Vec<Value>,
        dropped: Vec<UserField>,
    },
    UserUpdated {
        user: String,
        version: Option<String>,
        emails: Option<Vec<Value>>,
        dropped: Vec<UserField>,
    },
    UserDeleted {
        user: String,
    },
    GroupCreated {
        name: String,
        id: String,
        version: Option<String>,
    },
    GroupUpdated {
        group: String,
        version: Option<String>,
    },
}

impl Effect {
    /// The effect, with the attributes the service's answer lacked.
    fn with_dropped(mut self, fields: Vec<UserField>) -> Effect {
        if let Effect::UserCreated { dropped, .. } | Effect::UserUpdated { dropped, .. } = &mut self {
            *dropped = fields;
        }
        self
    }
}

/// A group's membership changes: (change, member id) pairs.
struct MemberChanges {
    group: String,
    add: Vec<(usize, String)>,
    remove: Vec<(usize, String)>,
}

/// A write carried out: its outcome and the requests it took.
type Done = (Work, Result<Effect, ScimError>, usize);

/// One apply call's working set.
struct Run<'a> {
    client: &'a ScimClient,
    config: ServiceConfig,
    state: &'a mut State,
    results: Vec<Option<Result<(), ApplyError>>>,
    requests: usize,
    /// Member removals the service refused for their `members[value eq "ID"]` path: sent again
    /// with a value list.
    path_refused: Vec<Work>,
    /// The changes that enable or disable an account (`SetUserActive`).
    lifecycle: HashSet<usize>,
    /// User writes that carried an enable or disable beside other attributes and were refused:
    /// the lifecycle change is sent again on its own (see [`Run::send_lifecycle_alone`]).
    refused_with_lifecycle: Vec<(Work, ScimError)>,
    /// User attributes the service answered a write without: it does not keep them.
    learned: &'a mut BTreeMap<UserField, String>,
}

fn conflict_message(what: &str) -> String {
    format!("{what} changed on the target since it was read (HTTP 412 Precondition Failed)")
}

/// The outcome of a write, as keyward reports it.
fn apply_error(what: &str, e: &ScimError) -> ApplyError {
    if e.is_precondition_failed() {
        ApplyError::conflict(conflict_message(what))
    } else if e.status() == Some(404) {
        ApplyError::conflict(format!("{what} no longer exists on the target ({e})"))
    } else if e.status() == Some(501) {
        ApplyError::lasting(format!("{what}: {e}"))
    } else {
        ApplyError::new(format!("{what}: {e}"))
    }
}

/// Whether a failed membership change means "already there" or "already gone": some services
/// refuse to add a present member (409 uniqueness) or remove an absent one (400 noTarget)
/// instead of succeeding as RFC 7644 §3.5.2 asks. A 409 without `uniqueness` may be a version
/// mismatch (RFC 7644 §3.12 Table 8), so it is not taken as "already there".
fn is_membership_noop(e: &ScimError, adding: bool) -> bool {
    let is = |t: &str| e.code().is_some_and(|s| s.eq_ignore_ascii_case(t));
    match e.status() {
        Some(409) => adding && is("uniqueness"),
        Some(400) => !adding && is("noTarget"),
        _ => false,
    }
}

/// Whether a service refused a PATCH for its path: 501 Not Implemented (django-scim2 for a
/// `members[value eq "ID"]` path), or 400 `invalidPath` / `invalidFilter` (RFC 7644 §3.12).
fn is_path_refused(e: &ScimError) -> bool {
    let is = |t: &str| e.code().is_some_and(|s| s.eq_ignore_ascii_case(t));
    match e.status() {
        Some(501) => true,
        Some(400) => is("invalidPath") || is("invalidFilter"),
        _ => false,
    }
}

/// The level of each work item: a manager is created before the people reporting to them.
fn creation_levels(works: &[Work]) -> Vec<usize> {
    let items: Vec<_> = works
        .iter()
        .map(|w| match &w.unit {
            Unit::CreateUser { user_name, attrs, .. } => Some((user_name.as_str(), attrs.manager.as_deref())),
            _ => None,
        })
        .collect();
    crate::provider::order::manager_levels(&items)
}

impl Run<'_> {
    fn fail(&mut self, i: usize, e: ApplyError) {
        self.results[i] = Some(Err(e));
    }

    /// Groups the changes into writes: one per user (an update and an enable merge), one per
    /// group's membership changes (split into parts of [`MEMBERS_PER_OP`]).
    fn plan_works(&mut self, changes: &[&Change]) -> Vec<Work> {
        let mut works: Vec<Work> = Vec::new();
        let mut group_creates: HashMap<String, usize> = HashMap::new();
        let mut user_creates: HashMap<String, usize> = HashMap::new();
        let mut patches: HashMap<String, usize> = HashMap::new();
        // Per group, in order of first appearance.
        let mut members: Vec<MemberChanges> = Vec::new();
        let mut member_index: HashMap<String, usize> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            match &c.operation {
                Operation::CreateUser { user_name, attrs, active } => {
                    if let Some(&w) = user_creates.get(&key(user_name)) {
                        works[w].changes.push(i);
                        continue;
                    }
                    user_creates.insert(key(user_name), works.len());
                    works.push(Work {
                        unit: Unit::CreateUser { user_name: user_name.clone(), attrs: attrs.clone(), active: *active },
                        changes: vec![i],
                    });
                }
                Operation::CreateBinding { binding: Binding::Group(name) } => {
                    let k = key(name);
                    if self.state.groups.contains_key(&k) {
                        self.results[i] = Some(Ok(()));
                    } else if let Some(&w) = group_creates.get(&k) {
                        works[w].changes.push(i);
                    } else {
                        group_creates.insert(k, works.len());
                        works.push(Work { unit: Unit::CreateGroup { name: name.clone() }, changes: vec![i] });
                    }
                }
                Operation::CreateBinding { binding } => self.fail(
                    i,
                    ApplyError::new(format!(
                        "{} cannot be created on a SCIM target, which has groups only",
                        binding.label()
                    )),
                ),
                Operation::UpdateUser { user_name, .. } | Operation::SetUserActive { user_name, .. } => {
                    let k = key(user_name);
                    if !self.state.users.contains_key(&k) {
                        self.fail(i, ApplyError::conflict(format!("account {user_name} no longer exists")));
                        continue;
                    }
                    let w = *patches.entry(k.clone()).or_insert_with(|| {
                        works.push(Work {
                            unit: Unit::PatchUser { user: user_name.clone(), set: UserAttrs::default(), active: None },
                            changes: vec![],
                        });
                        works.len() - 1
                    });
                    works[w].changes.push(i);
                    if matches!(c.operation, Operation::SetUserActive { .. }) {
                        self.lifecycle.insert(i);
                    }
                    if let Unit::PatchUser { set: s, active: a, .. } = &mut works[w].unit {
                        match &c.operation {
                            Operation::UpdateUser { set, .. } => s.overlay(set),
                            Operation::SetUserActive { active, .. } => *a = Some(*active),
                            _ => unreachable!(),
                        }
                    }
                }
                Operation::DeleteUser { user_name } => {
                    if self.state.users.contains_key(&key(user_name)) {
                        works.push(Work { unit: Unit::DeleteUser { user: user_name.clone() }, changes: vec![i] });
                    } else {
                        // Already gone: the desired end state.
                        self.results[i] = Some(Ok(()));
                    }
                }
                Operation::Assign { principal, binding } | Operation::Revoke { principal, binding } => {
                    let adding = matches!(c.operation, Operation::Assign { .. });
                    let Binding::Group(group) = binding else {
                        self.fail(i, ApplyError::new(format!("{} does not exist on a SCIM target", binding.label())));
                        continue;
                    };
                    let Principal::User(user) = principal else {
                        self.fail(i, ApplyError::new("a SCIM target has no service accounts"));
                        continue;
                    };
                    let Some(u) = self.state.users.get(&key(user)) else {
                        self.fail(i, ApplyError::new(format!("account {user} does not exist on the target")));
                        continue;
                    };
                    if !self.state.groups.contains_key(&key(group)) {
                        self.fail(i, ApplyError::new(format!("group {group} does not exist on the target")));
                        continue;
                    }
                    let g = *member_index.entry(key(group)).or_insert_with(|| {
                        members.push(MemberChanges { group: group.clone(), add: vec![], remove: vec![] });
                        members.len() - 1
                    });
                    let list = if adding { &mut members[g].add } else { &mut members[g].remove };
                    list.push((i, u.id.clone()));
                }
                other => self.fail(i, ApplyError::new(format!("{} is not supported by a SCIM target", op_name(other)))),
            }
        }
        for MemberChanges { group, add: adds, remove: removes } in members {
            for chunk in adds.chunks(MEMBERS_PER_OP) {
                works.push(Work {
                    unit: Unit::PatchGroup {
                        group: group.clone(),
                        add: chunk.iter().map(|(_, id)| id.clone()).collect(),
                        remove: vec![],
                    },
                    changes: chunk.iter().map(|(i, _)| *i).collect(),
                });
            }
            for chunk in removes.chunks(MEMBERS_PER_OP) {
                works.push(Work {
                    unit: Unit::PatchGroup {
                        group: group.clone(),
                        add: vec![],
                        remove: chunk.iter().map(|(_, id)| id.clone()).collect(),
                    },
                    changes: chunk.iter().map(|(i, _)| *i).collect(),
                });
            }
        }
        // Managers before their reports; otherwise the plan's order.
        let levels = creation_levels(&works);
        let mut order: Vec<usize> = (0..works.len()).collect();
        order.sort_by_key(|&i| levels[i]);
        let mut slots: Vec<Option<Work>> = works.into_iter().map(Some).collect();
        order.into_iter().map(|i| slots[i].take().expect("each once")).collect()
    }

    fn record(&mut self, work: &Work, outcome: Result<Effect, ApplyError>) {
        match outcome {
            Ok(effect) => {
                let not_kept = match &effect {
                    Effect::UserUpdated { dropped, .. } if !dropped.is_empty() => Some(not_kept_error(work, dropped)),
                    _ => None,
                };
                self.absorb(effect);
                if let Some(e) = not_kept {
                    // The write was made: an enable or disable it carried is in effect.
                    for &i in &work.changes {
                        let kept = self.lifecycle.contains(&i);
                        self.results[i] = Some(if kept { Ok(()) } else { Err(e.clone()) });
                    }
                    return;
                }
                for &i in &work.changes {
                    self.results[i] = Some(Ok(()));
                }
            }
            Err(e) => {
                for &i in &work.changes {
                    self.results[i] = Some(Err(e.clone()));
                }
            }
        }
    }

    fn absorb(&mut self, effect: Effect) {
        if let Effect::UserCreated { dropped, .. } | Effect::UserUpdated { dropped, .. } = &effect {
            for f in dropped {
                self.learned.entry(*f).or_insert_with(|| "it answered a write of it without it".to_string());
            }
        }
        match effect {
            Effect::UserCreated { user_name, id, version, emails, .. } => {
                self.state.users.insert(key(&user_name), UserEntry { id, version, emails });
            }
            Effect::UserUpdated { user, version, emails, .. } => {
                if let Some(u) = self.state.users.get_mut(&key(&user)) {
                    u.version = version;
                    if let Some(e) = emails {
                        u.emails = e;
                    }
                }
            }
            Effect::UserDeleted { user } => {
                self.state.users.remove(&key(&user));
            }
            Effect::GroupCreated { name, id, version } => {
                self.state.groups.insert(key(&name), GroupEntry { id, version });
            }
            Effect::GroupUpdated { group, version } => {
                if let Some(g) = self.state.groups.get_mut(&key(&group)) {
                    g.version = version;
                }
            }
        }
    }

    fn etag(&self, v: &Option<String>) -> Option<String> {
        v.clone().filter(|_| self.config.etag)
    }

    async fn execute(&mut self, works: Vec<Work>) {
        if works.is_empty() {
            return;
        }
        let mut adopt: Vec<Work> = Vec::new();
        let mut membership_retry: Vec<Work> = Vec::new();
        let leftovers = match self.config.bulk {
            Some(limits) => self.execute_bulk(works, limits, &mut adopt, &mut membership_retry).await,
            None => works,
        };
        self.execute_each(leftovers, &mut adopt, &mut membership_retry).await;
        if !self.path_refused.is_empty() {
            tracing::info!(
                removals = self.path_refused.len(),
                "the service refuses member filter paths; removing members by value"
            );
            self.config.remove_members_by_value = true;
            let again = std::mem::take(&mut self.path_refused);
            self.execute_each(again, &mut adopt, &mut membership_retry).await;
        }
        if !adopt.is_empty() {
            self.adopt(adopt).await;
        }
        if !membership_retry.is_empty() {
            self.retry_memberships(membership_retry).await;
        }
        if !self.refused_with_lifecycle.is_empty() {
            let refused = std::mem::take(&mut self.refused_with_lifecycle);
            self.send_lifecycle_alone(refused).await;
        }
    }

    // -----------------------------------------------------------------------------------------
    // One request per write, a bounded number at once.

    async fn execute_each(&mut self, works: Vec<Work>, adopt: &mut Vec<Work>, retry: &mut Vec<Work>) {
        if works.is_empty() {
            return;
        }
        let levels = creation_levels(&works);
        let top = levels.iter().copied().max().unwrap_or(0);
        let mut slots: Vec<Option<Work>> = works.into_iter().map(Some).collect();
        for level in 0..=top {
            // The parts of one group's change run in order, in one task; everything else runs
            // as its own task.
            let mut tasks: Vec<Vec<Work>> = Vec::new();
            let mut group_task: HashMap<String, usize> = HashMap::new();
            for (i, slot) in slots.iter_mut().enumerate() {
                if levels[i] != level {
                    continue;
                }
                let w = slot.take().expect("each once");
                if let Unit::PatchGroup { group, .. } = &w.unit {
                    if let Some(&t) = group_task.get(&key(group)) {
                        tasks[t].push(w);
                        continue;
                    }
                    group_task.insert(key(group), tasks.len());
                }
                tasks.push(vec![w]);
            }
            let client = self.client;
            let config = &self.config;
            let state: &State = &*self.state;
            let outcomes: Vec<Vec<Done>> = stream::iter(tasks)
                .map(|task| async move {
                    let mut done = Vec::with_capacity(task.len());
                    // Versions written by earlier parts of this task.
                    let mut version: Option<Option<String>> = None;
                    for w in task {
                        let (r, n) = single(client, config, state, &w, version.clone()).await;
                        if let Ok(Effect::GroupUpdated { version: v, .. }) = &r {
                            version = Some(v.clone());
                        }
                        done.push((w, r, n));
                    }
                    done
                })
                .buffered(CONCURRENCY)
                .collect()
                .await;
            for (w, r, n) in outcomes.into_iter().flatten() {
                self.requests += n;
                self.settle(w, r, adopt, retry);
            }
        }
    }

    /// Records a write's outcome, or sets it aside for adoption or a membership retry.
    fn settle(&mut self, w: Work, r: Result<Effect, ScimError>, adopt: &mut Vec<Work>, retry: &mut Vec<Work>) {
        match r {
            Ok(effect) => self.record(&w, Ok(effect)),
            Err(e)
                if !self.config.remove_members_by_value
                    && is_path_refused(&e)
                    && matches!(&w.unit, Unit::PatchGroup { remove, .. } if !remove.is_empty()) =>
            {
                self.path_refused.push(w)
            }
            Err(e) if client::is_uniqueness(&e) && matches!(w.unit, Unit::CreateUser { .. }) => adopt.push(w),
            Err(e)
                if matches!(&w.unit, Unit::PatchGroup { add, remove, .. }
                    if add.len() + remove.len() > 1 && is_membership_noop(&e, !add.is_empty())) =>
            {
                retry.push(w)
            }
            Err(e) if self.carries_lifecycle_beside_others(&w, &e) => self.refused_with_lifecycle.push((w, e)),
            Err(e) => {
                let err = match &w.unit {
                    Unit::PatchGroup { add, remove, .. } if add.len() + remove.len() == 1 => {
                        if is_membership_noop(&e, !add.is_empty()) {
                            for &i in &w.changes {
                                self.results[i] = Some(Ok(()));
                            }
                            return;
                        }
                        apply_error(&w.unit.describe(), &e)
                    }
                    _ => apply_error(&w.unit.describe(), &e),
                };
                self.record(&w, Err(err));
            }
        }
    }
}

/// The effect of a successful write, given the id and version the service returned.
fn effect_of(unit: &Unit, id: Option<String>, version: Option<String>, state: &State) -> Effect {
    match unit {
        Unit::CreateGroup { name } => Effect::GroupCreated { name: name.clone(), id: id.unwrap_or_default(), version },
        Unit::CreateUser { user_name, attrs, .. } => Effect::UserCreated {
            user_name: user_name.clone(),
            id: id.unwrap_or_default(),
            version,
            emails: attrs.email.as_deref().map(|e| wire::emails_with(&[], e)).unwrap_or_default(),
            dropped: Vec::new(),
        },
        Unit::PatchUser { user, set, .. } => Effect::UserUpdated {
            user: user.clone(),
            version,
            emails: set.email.as_deref().map(|e| {
                let old = state.users.get(&key(user)).map(|u| u.emails.as_slice()).unwrap_or_default();
                wire::emails_with(old, e)
            }),
            dropped: Vec::new(),
        },
        Unit::PatchGroup { group, .. } => Effect::GroupUpdated { group: group.clone(), version },
        Unit::DeleteUser { user } => Effect::UserDeleted { user: user.clone() },
    }
}

/// The version a write left: the `ETag` header, else the body's `meta.version`.
fn version_of(reply: &Reply) -> Option<String> {
    reply.etag.clone().or_else(|| {
        reply
            .body
            .as_ref()
            .and_then(|b| wire::get(b, "meta"))
            .and_then(|m| wire::get(m, "version"))
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

/// The id of a created resource: the body's `id`, else the `Location` header's last segment.
fn created_id(reply: &Reply) -> Option<String> {
    reply
        .body
        .as_ref()
        .and_then(|b| wire::get(b, "id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| reply.location.as_deref().and_then(wire::id_from_location))
        // An id that would change a later request's path is not taken.
        .filter(|id| crate::provider::ids::path_segment(id).is_ok())
}

/// Carries out one write with plain requests; returns its outcome and how many requests it
/// took. `version` overrides the version known for the resource (a previous part's).
async fn single(
    client: &ScimClient,
    config: &ServiceConfig,
    state: &State,
    w: &Work,
    version: Option<Option<String>>,
) -> (Result<Effect, ScimError>, usize) {
    let etag = |v: &Option<String>| v.clone().filter(|_| config.etag);
    match &w.unit {
        Unit::CreateGroup { name } => {
            let body = json!({"schemas": [GROUP_SCHEMA], "displayName": name});
            let r = client.send_json(Method::POST, client.url(&["Groups"]), &body, None).await;
            (created(r, &w.unit, config, state), 1)
        }
        Unit::CreateUser { user_name, attrs, active } => {
            let manager = attrs.manager.as_deref().and_then(|m| state.users.get(&key(m))).map(|u| u.id.clone());
            let body = wire::user_create_body(user_name, attrs, *active, manager.as_deref());
            let r = client.send_json(Method::POST, client.url(&["Users"]), &body, None).await;
            let asked = UserAttrs { manager: manager.clone(), ..attrs.clone() };
            let dropped = answer_lacks(&r, &asked);
            (created(r, &w.unit, config, state).map(|e| e.with_dropped(dropped)), 1)
        }
        Unit::PatchUser { user, set, active } => {
            let Some(entry) = state.users.get(&key(user)) else {
                return (Err(not_found()), 0);
            };
            let if_match = etag(&version.unwrap_or_else(|| entry.version.clone()));
            let manager = set.manager.as_deref().and_then(|m| state.users.get(&key(m))).map(|u| u.id.clone());
            let mut ops = wire::user_patch_ops(set, manager.as_deref(), &entry.emails);
            if let Some(a) = active {
                ops.push(wire::active_op(*a));
            }
            if ops.is_empty() {
                let m = set.manager.as_deref().unwrap_or_default();
                return (Err(ScimError::Invalid(format!("the manager {m} does not exist on the target"))), 0);
            }
            let url = client.url(&["Users", &entry.id]);
            if config.patch {
                let r = client.send_json(Method::PATCH, url, &wire::patch_body(ops), if_match.as_deref()).await;
                let asked = UserAttrs { manager: manager.clone(), ..set.clone() };
                let dropped = answer_lacks(&r, &asked);
                let effect = r.map(|r| effect_of(&w.unit, None, version_of(&r).filter(|_| config.etag), state));
                (effect.map(|e| e.with_dropped(dropped)), 1)
            } else {
                put_modified(
                    client,
                    config,
                    state,
                    url,
                    if_match,
                    &w.unit,
                    |res| wire::apply_user_ops(res, &ops),
                    |_| None,
                )
                .await
            }
        }
        Unit::PatchGroup { group, add, remove, .. } => {
            let Some(entry) = state.groups.get(&key(group)) else {
                return (Err(not_found()), 0);
            };
            let if_match = etag(&version.unwrap_or_else(|| entry.version.clone()));
            let url = client.url(&["Groups", &entry.id]);
            if config.patch {
                let body = wire::patch_body(member_ops(add, remove, config.remove_members_by_value));
                let r = client.send_json(Method::PATCH, url, &body, if_match.as_deref()).await;
                (r.map(|r| effect_of(&w.unit, None, version_of(&r).filter(|_| config.etag), state)), 1)
            } else {
                put_modified(
                    client,
                    config,
                    state,
                    url,
                    if_match,
                    &w.unit,
                    |res| wire::apply_member_changes(res, add, remove),
                    |answer| wire::members_not_applied(answer, add, remove),
                )
                .await
            }
        }
        Unit::DeleteUser { user } => {
            let Some(entry) = state.users.get(&key(user)) else {
                return (Ok(effect_of(&w.unit, None, None, state)), 0);
            };
            let if_match = etag(&entry.version);
            let r = client.send(Method::DELETE, client.url(&["Users", &entry.id]), None, if_match.as_deref()).await;
            match r {
                Ok(_) => (Ok(effect_of(&w.unit, None, None, state)), 1),
                Err(e) if e.status() == Some(404) => (Ok(effect_of(&w.unit, None, None, state)), 1),
                Err(e) => (Err(e), 1),
            }
        }
    }
}

/// The attributes `asked` sets that a successful answer's resource lacks (none when the
/// answer carries no resource).
fn answer_lacks(r: &Result<Reply, ScimError>, asked: &UserAttrs) -> Vec<UserField> {
    r.as_ref().ok().and_then(|r| r.body.as_ref()).map(|b| wire::dropped(asked, b)).unwrap_or_default()
}

/// An update the service answered without some of what it set: it does not keep them, so the
/// change will not converge however often it is applied.
fn not_kept_error(work: &Work, dropped: &[UserField]) -> ApplyError {
    let fields = dropped.iter().map(|f| format!("`{}`", f.as_str())).collect::<Vec<_>>().join(", ");
    ApplyError::lasting(format!(
        "{}: the service answered the update without {fields}: it does not keep them; keyward leaves them unmanaged on this target from the next plan on",
        work.unit.describe()
    ))
}

fn not_found() -> ScimError {
    ScimError::Status {
        dialect: Dialect::Scim,
        status: 404,
        code: None,
        message: Some("not known from the read".into()),
        request_id: None,
    }
}

fn created(
    r: Result<Reply, ScimError>,
    unit: &Unit,
    config: &ServiceConfig,
    state: &State,
) -> Result<Effect, ScimError> {
    let r = r?;
    let id = created_id(&r).ok_or_else(|| ScimError::Invalid("the creation's answer names no id".into()))?;
    Ok(effect_of(unit, Some(id), version_of(&r).filter(|_| config.etag), state))
}

/// For services without PATCH: reads the resource whole, changes it, and writes it back with
/// PUT (RFC 7644 §3.5.1), refusing if it changed since keyward's read. The answer carries the
/// resource as the service now holds it; `not_applied` names what it did not take (a service
/// may answer 200 and ignore an attribute), which is a failure, not a success.
#[allow(clippy::too_many_arguments)]
async fn put_modified(
    client: &ScimClient,
    config: &ServiceConfig,
    state: &State,
    url: Url,
    if_match: Option<String>,
    unit: &Unit,
    change: impl FnOnce(&mut Value),
    not_applied: impl FnOnce(&Value) -> Option<String>,
) -> (Result<Effect, ScimError>, usize) {
    let (mut resource, etag) = match client.get_json(url.clone()).await {
        Ok(r) => r,
        Err(e) => return (Err(e), 1),
    };
    let current = etag.or_else(|| {
        wire::get(&resource, "meta").and_then(|m| wire::get(m, "version")).and_then(Value::as_str).map(str::to_string)
    });
    if let (Some(want), Some(have)) = (&if_match, &current)
        && config.etag
        && want != have
    {
        return (Err(ScimError::status_only(Dialect::Scim, 412)), 1);
    }
    change(&mut resource);
    if let Some(obj) = resource.as_object_mut() {
        obj.retain(|k, _| !k.eq_ignore_ascii_case("meta"));
    }
    let cond = if config.etag { current.or(if_match) } else { None };
    let r = client.send_json(Method::PUT, url, &resource, cond.as_deref()).await;
    let r = r.and_then(|r| match r.body.as_ref().and_then(not_applied) {
        Some(what) => Err(ScimError::Invalid(format!(
            "the service answered the PUT with success but did not apply it: {what}; it ignores this attribute in a PUT, so the change was not made"
        ))),
        None => {
            let effect = effect_of(unit, None, version_of(&r).filter(|_| config.etag), state);
            // A user attribute the answer lacks was not kept, as after a PATCH.
            let dropped = match (unit, r.body.as_ref()) {
                (Unit::PatchUser { set, .. }, Some(body)) => {
                    let manager = set.manager.as_deref().and_then(|m| state.users.get(&key(m))).map(|u| u.id.clone());
                    wire::dropped(&UserAttrs { manager, ..set.clone() }, body)
                }
                _ => Vec::new(),
            };
            Ok(effect.with_dropped(dropped))
        }
    });
    (r, 2)
}

fn op_name(op: &Operation) -> &'static str {
    match op {
        Operation::CreateServiceAccount { .. } | Operation::UpdateServiceAccount { .. } => "a service account",
        Operation::AddCredential { .. } | Operation::RemoveCredential { .. } => "credential rotation",
        Operation::SetAuthMethod { .. } => "a sign-in methods policy",
        _ => "this operation",
    }
}

#[cfg(test)]
mod tests;
