//! Applying changes: calls in `$batch`es, in dependency order, with their answers settled.

use super::*;

impl GraphProvider {
    pub(super) async fn apply_changes(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        if self.access != Access::Write {
            return changes.iter().map(|_| Err(ApplyError::new("the target was opened read-only"))).collect();
        }
        let Some(state) = self.state.as_mut() else {
            return changes.iter().map(|_| Err(ApplyError::new("apply called before read"))).collect();
        };
        let before = self.client.requests();
        let mut run = Run {
            client: &self.client,
            state,
            created: &mut self.created,
            federated_domains: &self.federated_domains,
            results: vec![None; changes.len()],
            deferred: Vec::new(),
        };
        run.execute(changes).await;
        tracing::info!(target_name = %self.target, changes = changes.len(), requests = self.client.requests() - before,
            throttled = self.client.throttled(), "applied to Graph target");
        run.results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Apply.

/// What to do with the answer to a call.
#[derive(Debug, Clone)]
enum Then {
    Nothing,
    /// A user was created: remember its id; set its manager next.
    UserCreated {
        user_name: String,
        manager: Option<String>,
    },
    GroupCreated {
        name: String,
    },
    /// An application was created: make its service principal and add its owner next.
    AppCreated {
        name: String,
        owner: Option<String>,
    },
    SpCreated {
        name: String,
    },
    /// A chunk of `members@odata.bind`: on a 400, add its members one by one.
    BoundChunk {
        group: String,
        members: Vec<(usize, String)>,
    },
    RoleAssigned {
        def: String,
        principal: String,
    },
    AppRoleAssigned {
        sp: String,
        role: String,
        principal: String,
    },
}

struct Pending {
    call: Call,
    changes: Vec<usize>,
    then: Then,
    /// Names an object this run created (a 404 is replication delay).
    fresh: bool,
    /// A 404 means the goal is already met (a removal of something gone).
    gone_ok: bool,
    /// A 400 means the goal is already met (an addition that exists).
    exists_ok: bool,
    what: String,
}

struct Run<'a> {
    client: &'a GraphClient,
    state: &'a mut State,
    created: &'a mut HashSet<String>,
    federated_domains: &'a [String],
    results: Vec<Option<Result<(), ApplyError>>>,
    /// References to users that may be created in the same round, resolved after it.
    deferred: Vec<Deferred>,
}

#[derive(Debug, Clone, Copy)]
enum Ref {
    Manager,
    Owner,
}

/// A manager or owner (by userName) to set on a new user or application.
#[derive(Debug)]
struct Deferred {
    kind: Ref,
    subject: String,
    name: String,
    changes: Vec<usize>,
}

impl Run<'_> {
    fn fail(&mut self, i: usize, e: ApplyError) {
        if !matches!(self.results[i], Some(Err(_))) {
            self.results[i] = Some(Err(e));
        }
    }

    fn user_id(&self, user_name: &str) -> Option<String> {
        self.state.users.get(&key(user_name)).cloned()
    }

    fn principal_id(&self, p: &Principal) -> Result<String, ApplyError> {
        match p {
            Principal::User(u) => self
                .user_id(u)
                .ok_or_else(|| ApplyError::conflict(format!("user {u} does not exist on the target (any more)"))),
            Principal::ServiceAccount(s) => {
                self.state.service_accounts.get(s).and_then(|e| e.sp_id.clone()).ok_or_else(|| {
                    ApplyError::conflict(format!("service account {s} has no service principal on the target"))
                })
            }
        }
    }

    fn pending(&self, call: Call, changes: Vec<usize>, then: Then, what: String, ids: &[&str]) -> Pending {
        let fresh = ids.iter().any(|i| self.created.contains(*i));
        Pending { call, changes, then, fresh, gone_ok: false, exists_ok: false, what }
    }

    /// Turns the changes into calls, sends them in batches, then the follow-ups their answers
    /// call for.
    async fn execute(&mut self, changes: &[&Change]) {
        let mut calls: Vec<Pending> = Vec::new();
        // Additions to each group, bound twenty at a time.
        let mut binds: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
        for (i, c) in changes.iter().enumerate() {
            match self.plan_call(i, &c.operation, &mut binds) {
                Ok(mut ps) => calls.append(&mut ps),
                Err(e) => self.fail(i, e),
            }
        }
        for (group, members) in binds {
            for chunk in members.chunks(BIND_LIMIT) {
                let refs: Vec<String> = chunk.iter().map(|(_, id)| self.client.object_ref(id)).collect();
                let mut ids: Vec<&str> = chunk.iter().map(|(_, id)| id.as_str()).collect();
                ids.push(&group);
                let p = self.pending(
                    Call::new(Method::PATCH, format!("/groups/{group}"), Some(json!({"members@odata.bind": refs}))),
                    chunk.iter().map(|(i, _)| *i).collect(),
                    Then::BoundChunk { group: group.clone(), members: chunk.to_vec() },
                    "add members to the group".into(),
                    &ids,
                );
                calls.push(p);
            }
        }
        let mut round = 0;
        while !calls.is_empty() && round < 4 {
            calls = self.send(calls).await;
            round += 1;
        }
    }

    /// Sends calls and settles their changes; returns the follow-up calls.
    async fn send(&mut self, calls: Vec<Pending>) -> Vec<Pending> {
        let plain: Vec<Call> = calls.iter().map(|p| p.call.clone()).collect();
        let outcomes = self.client.batch(&plain, |i| calls[i].fresh).await;
        let mut next = Vec::new();
        for (p, outcome) in calls.into_iter().zip(outcomes) {
            match outcome {
                Ok(o) => {
                    let body = o.body.unwrap_or(Value::Null);
                    self.settle(&p, Some(&body), &mut next);
                }
                Err(e)
                    if p.gone_ok && (e.status() == Some(404) || (e.status() == Some(400) && no_longer_there(&e))) =>
                {
                    self.settle(&p, None, &mut next)
                }
                Err(e) if p.exists_ok && e.status() == Some(400) && already_there(&e) => {
                    self.settle(&p, None, &mut next)
                }
                Err(e) if e.status() == Some(400) && matches!(p.then, Then::BoundChunk { .. }) => {
                    // All or nothing: one member already there fails the chunk; add one by one.
                    if let Then::BoundChunk { group, members } = &p.then {
                        for (i, id) in members {
                            let mut q = self.pending(
                                Call::new(
                                    Method::POST,
                                    format!("/groups/{group}/members/$ref"),
                                    Some(json!({"@odata.id": self.client.object_ref(id)})),
                                ),
                                vec![*i],
                                Then::Nothing,
                                "add a member to the group".into(),
                                &[group, id],
                            );
                            q.exists_ok = true;
                            next.push(q);
                        }
                    }
                }
                Err(e) => {
                    for &i in &p.changes {
                        self.fail(i, ApplyError::new(format!("cannot {}: {e}", p.what)));
                    }
                }
            }
        }
        for d in std::mem::take(&mut self.deferred) {
            let role = match d.kind {
                Ref::Manager => "manager",
                Ref::Owner => "owner",
            };
            match self.user_id(&d.name) {
                Some(uid) => next.push(match d.kind {
                    Ref::Manager => self.manager_call(&d.subject, &uid, d.changes),
                    Ref::Owner => self.owner_call(&d.subject, &uid, d.changes),
                }),
                None => {
                    for &i in &d.changes {
                        self.fail(i, ApplyError::new(format!("the {role} {} does not exist on the target", d.name)));
                    }
                }
            }
        }
        next
    }

    fn settle(&mut self, p: &Pending, body: Option<&Value>, next: &mut Vec<Pending>) {
        let new_id = body.and_then(id_of);
        match &p.then {
            Then::Nothing | Then::BoundChunk { .. } => {}
            Then::UserCreated { user_name, manager } => {
                let Some(id) = new_id else { return self.missing_id(p) };
                self.state.users.insert(key(user_name), id.clone());
                self.created.insert(id.clone());
                if let Some(m) = manager {
                    // The manager may be created by this same round: resolved after it.
                    self.deferred.push(Deferred {
                        kind: Ref::Manager,
                        subject: id,
                        name: m.clone(),
                        changes: p.changes.clone(),
                    });
                }
            }
            Then::GroupCreated { name } => {
                let Some(id) = new_id else { return self.missing_id(p) };
                self.state.groups.insert(key(name), id.clone());
                self.created.insert(id);
            }
            Then::AppCreated { name, owner } => {
                let Some(obj) = new_id else { return self.missing_id(p) };
                let app_id = body.and_then(|b| str_of(b, "appId")).unwrap_or_default();
                self.created.insert(obj.clone());
                self.state
                    .service_accounts
                    .insert(name.clone(), SaEntry { app_object_id: obj.clone(), ..SaEntry::default() });
                next.push(self.pending(
                    Call::new(Method::POST, "/servicePrincipals", Some(json!({"appId": app_id}))),
                    p.changes.clone(),
                    Then::SpCreated { name: name.clone() },
                    "create the service principal".into(),
                    &[&obj],
                ));
                if let Some(o) = owner {
                    self.deferred.push(Deferred {
                        kind: Ref::Owner,
                        subject: obj.clone(),
                        name: o.clone(),
                        changes: p.changes.clone(),
                    });
                }
            }
            Then::SpCreated { name } => {
                let Some(id) = new_id else { return self.missing_id(p) };
                self.created.insert(id.clone());
                if let Some(e) = self.state.service_accounts.get_mut(name) {
                    e.sp_id = Some(id);
                }
            }
            Then::RoleAssigned { def, principal } => {
                if let Some(id) = new_id {
                    self.state.role_assignments.insert((def.clone(), principal.clone()), id);
                }
            }
            Then::AppRoleAssigned { sp, role, principal } => {
                if let Some(id) = new_id {
                    self.state.app_role_assignments.insert((sp.clone(), role.clone(), principal.clone()), id);
                }
            }
        }
        for &i in &p.changes {
            if self.results[i].is_none() {
                self.results[i] = Some(Ok(()));
            }
        }
    }

    fn missing_id(&mut self, p: &Pending) {
        for &i in &p.changes {
            self.fail(i, ApplyError::new(format!("cannot {}: Graph answered without the new object's id", p.what)));
        }
    }

    fn manager_call(&self, user: &str, manager: &str, changes: Vec<usize>) -> Pending {
        self.pending(
            Call::new(
                Method::PUT,
                format!("/users/{user}/manager/$ref"),
                Some(json!({"@odata.id": self.client.object_ref(manager)})),
            ),
            changes,
            Then::Nothing,
            "set the manager".into(),
            &[user, manager],
        )
    }

    fn owner_call(&self, app: &str, owner: &str, changes: Vec<usize>) -> Pending {
        let mut p = self.pending(
            Call::new(
                Method::POST,
                format!("/applications/{app}/owners/$ref"),
                Some(json!({"@odata.id": self.client.object_ref(owner)})),
            ),
            changes,
            Then::Nothing,
            "add the owner".into(),
            &[app, owner],
        );
        p.exists_ok = true;
        p
    }

    /// The calls for one change; memberships to add go to `binds` instead.
    fn plan_call(
        &mut self,
        i: usize,
        op: &Operation,
        binds: &mut BTreeMap<String, Vec<(usize, String)>>,
    ) -> Result<Vec<Pending>, ApplyError> {
        let gone = |name: &str| ApplyError::conflict(format!("{name} does not exist on the target (any more)"));
        Ok(match op {
            Operation::CreateUser { user_name, attrs, active } => {
                if let Some(id) = self.user_id(user_name) {
                    // Created since the read (a re-run): adopt it and update instead.
                    let mut out = Vec::new();
                    let mut patch = wire::user_patch(attrs);
                    patch.insert("accountEnabled".into(), json!(active));
                    out.push(self.pending(
                        Call::new(Method::PATCH, format!("/users/{id}"), Some(Value::Object(patch))),
                        vec![i],
                        Then::Nothing,
                        format!("update user {user_name}"),
                        &[&id],
                    ));
                    return Ok(out);
                }
                let mut body = wire::user_patch(attrs);
                body.insert("userPrincipalName".into(), json!(user_name));
                body.entry("displayName").or_insert(json!(user_name));
                body.insert("mailNickname".into(), json!(wire::mail_nickname(user_name)));
                body.insert("accountEnabled".into(), json!(active));
                if wire::is_federated(user_name, self.federated_domains) {
                    // Signs in at the federated identity provider: no password; the immutable
                    // id links the account to that provider's (§2.1).
                    let immutable = attrs.employee_id.as_deref().unwrap_or(user_name);
                    body.insert("onPremisesImmutableId".into(), json!(immutable));
                } else {
                    let password = wire::random_password().map_err(|e| ApplyError::new(e.to_string()))?;
                    // The password goes only into this request body.
                    body.insert(
                        "passwordProfile".into(),
                        json!({"password": password.expose(), "forceChangePasswordNextSignIn": true}),
                    );
                }
                vec![self.pending(
                    Call::new(Method::POST, "/users", Some(Value::Object(body))),
                    vec![i],
                    Then::UserCreated { user_name: user_name.clone(), manager: attrs.manager.clone() },
                    format!("create user {user_name}"),
                    &[],
                )]
            }
            Operation::UpdateUser { user_name, set } => {
                let id = self.user_id(user_name).ok_or_else(|| gone(&format!("user {user_name}")))?;
                let mut out = Vec::new();
                let patch = wire::user_patch(set);
                if !patch.is_empty() {
                    out.push(self.pending(
                        Call::new(Method::PATCH, format!("/users/{id}"), Some(Value::Object(patch))),
                        vec![i],
                        Then::Nothing,
                        format!("update user {user_name}"),
                        &[&id],
                    ));
                }
                if let Some(m) = &set.manager {
                    let mid =
                        self.user_id(m).ok_or_else(|| ApplyError::new(format!("the manager {m} does not exist")))?;
                    out.push(self.manager_call(&id, &mid, vec![i]));
                }
                out
            }
            Operation::SetUserActive { user_name, active } => {
                let id = self.user_id(user_name).ok_or_else(|| gone(&format!("user {user_name}")))?;
                vec![self.pending(
                    Call::new(Method::PATCH, format!("/users/{id}"), Some(json!({"accountEnabled": active}))),
                    vec![i],
                    Then::Nothing,
                    format!("{} user {user_name}", if *active { "enable" } else { "disable" }),
                    &[&id],
                )]
            }
            Operation::MoveUser { user_name, .. } => {
                return Err(ApplyError::new(format!("Entra ID has no business units to move {user_name} between")));
            }
            Operation::DeleteUser { user_name } => {
                let Some(id) = self.user_id(user_name) else { return Ok(vec![]) };
                let mut p = self.pending(
                    Call::new(Method::DELETE, format!("/users/{id}"), None),
                    vec![i],
                    Then::Nothing,
                    format!("delete user {user_name}"),
                    &[&id],
                );
                p.gone_ok = true;
                vec![p]
            }
            Operation::UpdateBinding { binding } => {
                return Err(ApplyError::new(format!("{} has no settings keyward keeps on Graph", binding.label())));
            }
            Operation::CreateBinding { binding } => match binding {
                Binding::Group(name) => {
                    if self.state.groups.contains_key(&key(name)) {
                        return Ok(vec![]);
                    }
                    vec![self.pending(
                        Call::new(
                            Method::POST,
                            "/groups",
                            Some(json!({"displayName": name, "mailNickname": wire::mail_nickname(name),
                                "mailEnabled": false, "securityEnabled": true})),
                        ),
                        vec![i],
                        Then::GroupCreated { name: name.clone() },
                        format!("create group {name}"),
                        &[],
                    )]
                }
                other => {
                    return Err(ApplyError::new(format!(
                        "{} is predefined on Graph and cannot be created",
                        other.label()
                    )));
                }
            },
            Operation::Assign { principal, binding } => {
                let pid = self.principal_id(principal)?;
                match binding {
                    Binding::Group(name) => {
                        let gid =
                            self.state.groups.get(&key(name)).cloned().ok_or_else(|| gone(&format!("group {name}")))?;
                        binds.entry(gid).or_default().push((i, pid));
                        vec![]
                    }
                    Binding::DirectoryRole(name) => {
                        let def = self
                            .state
                            .roles
                            .get(&key(name))
                            .cloned()
                            .ok_or_else(|| gone(&format!("directory role {name}")))?;
                        let mut p = self.pending(
                            Call::new(
                                Method::POST,
                                "/roleManagement/directory/roleAssignments",
                                Some(json!({"@odata.type": "#microsoft.graph.unifiedRoleAssignment",
                                    "roleDefinitionId": def, "principalId": pid, "directoryScopeId": "/"})),
                            ),
                            vec![i],
                            Then::RoleAssigned { def: def.clone(), principal: pid.clone() },
                            format!("assign directory role {name}"),
                            &[&pid],
                        );
                        p.exists_ok = true;
                        vec![p]
                    }
                    Binding::AppRole(r) => {
                        let (sp, role) = self
                            .state
                            .app_roles
                            .get(&key(&binding.object_name()))
                            .cloned()
                            .ok_or_else(|| gone(&format!("app role {}/{}", r.app, r.role)))?;
                        let mut p = self.pending(
                            Call::new(
                                Method::POST,
                                format!("/servicePrincipals/{sp}/appRoleAssignedTo"),
                                Some(json!({"principalId": pid, "resourceId": sp, "appRoleId": role})),
                            ),
                            vec![i],
                            Then::AppRoleAssigned { sp: sp.clone(), role: role.clone(), principal: pid.clone() },
                            format!("assign app role {}/{}", r.app, r.role),
                            &[&pid],
                        );
                        p.exists_ok = true;
                        vec![p]
                    }
                    Binding::SecurityRole(_)
                    | Binding::Team(_)
                    | Binding::GroupTeam(_)
                    | Binding::FieldSecurityProfile(_) => {
                        return Err(ApplyError::new(format!("{} is not a Graph binding", binding.label())));
                    }
                }
            }
            Operation::Revoke { principal, binding } => {
                let pid = match self.principal_id(principal) {
                    Ok(p) => p,
                    // The holder is gone, and the assignment with it.
                    Err(_) => return Ok(vec![]),
                };
                let (url, what) = match binding {
                    Binding::Group(name) => {
                        let Some(gid) = self.state.groups.get(&key(name)).cloned() else { return Ok(vec![]) };
                        (format!("/groups/{gid}/members/{pid}/$ref"), format!("remove a member from group {name}"))
                    }
                    Binding::DirectoryRole(name) => {
                        let Some(def) = self.state.roles.get(&key(name)).cloned() else { return Ok(vec![]) };
                        let Some(aid) = self.state.role_assignments.get(&(def, pid.clone())).cloned() else {
                            return Ok(vec![]);
                        };
                        (
                            format!("/roleManagement/directory/roleAssignments/{aid}"),
                            format!("revoke directory role {name}"),
                        )
                    }
                    Binding::AppRole(r) => {
                        let Some((sp, role)) = self.state.app_roles.get(&key(&binding.object_name())).cloned() else {
                            return Ok(vec![]);
                        };
                        let Some(aid) = self.state.app_role_assignments.get(&(sp.clone(), role, pid.clone())).cloned()
                        else {
                            return Ok(vec![]);
                        };
                        (
                            format!("/servicePrincipals/{sp}/appRoleAssignedTo/{aid}"),
                            format!("revoke app role {}/{}", r.app, r.role),
                        )
                    }
                    Binding::SecurityRole(_)
                    | Binding::Team(_)
                    | Binding::GroupTeam(_)
                    | Binding::FieldSecurityProfile(_) => {
                        return Err(ApplyError::new(format!("{} is not a Graph binding", binding.label())));
                    }
                };
                let mut p = self.pending(Call::new(Method::DELETE, url, None), vec![i], Then::Nothing, what, &[]);
                p.gone_ok = true;
                vec![p]
            }
            Operation::CreateServiceAccount { name, display_name, description, owner, .. } => {
                if self.state.service_accounts.contains_key(name) {
                    return Ok(vec![]);
                }
                let mut body = json!({"displayName": display_name.clone().unwrap_or_else(|| name.clone()),
                    "tags": [format!("{SERVICE_ACCOUNT_TAG}{name}")]});
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                vec![self.pending(
                    Call::new(Method::POST, "/applications", Some(body)),
                    vec![i],
                    Then::AppCreated { name: name.clone(), owner: owner.clone() },
                    format!("create the application of service account {name}"),
                    &[],
                )]
            }
            Operation::UpdateServiceAccount { name, display_name, description, owner } => {
                let e = self
                    .state
                    .service_accounts
                    .get(name)
                    .cloned()
                    .ok_or_else(|| gone(&format!("service account {name}")))?;
                let mut out = Vec::new();
                let mut patch = serde_json::Map::new();
                if let Some(d) = display_name {
                    patch.insert("displayName".into(), json!(d));
                }
                if let Some(d) = description {
                    patch.insert("description".into(), json!(d));
                }
                if !patch.is_empty() {
                    out.push(self.pending(
                        Call::new(
                            Method::PATCH,
                            format!("/applications/{}", e.app_object_id),
                            Some(Value::Object(patch)),
                        ),
                        vec![i],
                        Then::Nothing,
                        format!("update service account {name}"),
                        &[&e.app_object_id],
                    ));
                }
                if let Some(o) = owner {
                    let uid =
                        self.user_id(o).ok_or_else(|| ApplyError::new(format!("the owner {o} does not exist")))?;
                    out.push(self.owner_call(&e.app_object_id, &uid, vec![i]));
                    for old in e.owners.iter().filter(|x| **x != uid && self.state.users.values().any(|u| u == *x)) {
                        let mut p = self.pending(
                            Call::new(
                                Method::DELETE,
                                format!("/applications/{}/owners/{old}/$ref", e.app_object_id),
                                None,
                            ),
                            vec![i],
                            Then::Nothing,
                            "remove the previous owner".into(),
                            &[],
                        );
                        p.gone_ok = true;
                        out.push(p);
                    }
                }
                out
            }
            Operation::AddCredential { .. } | Operation::RemoveCredential { .. } => {
                return Err(ApplyError::new("credential changes go through issue and remove_credential, not apply"));
            }
            Operation::SetServiceAccountActive { .. } => {
                return Err(ApplyError::new("keyward does not enable or disable applications on Microsoft Graph"));
            }
            Operation::SetAuthMethod { method, enabled } => {
                let Some((id, ty)) = wire::method_config(*method) else {
                    return Err(ApplyError::new(format!(
                        "{} is not configured through the authentication methods policy",
                        method.as_str()
                    )));
                };
                vec![self.pending(
                    Call::new(
                        Method::PATCH,
                        format!("/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/{id}"),
                        Some(json!({"@odata.type": format!("#microsoft.graph.{ty}"),
                            "state": if *enabled { "enabled" } else { "disabled" }})),
                    ),
                    vec![i],
                    Then::Nothing,
                    format!("{} sign-in method {}", if *enabled { "enable" } else { "disable" }, method.as_str()),
                    &[],
                )]
            }
            Operation::MakeEligible { .. } | Operation::EndEligibility { .. } | Operation::SetActivation { .. } => {
                let calls = eligibility::calls(self.state, |p| self.principal_id(p), op, chrono::Utc::now())?;
                calls
                    .into_iter()
                    .map(|(call, what, gone_ok)| {
                        let mut p = self.pending(call, vec![i], Then::Nothing, what, &[]);
                        p.gone_ok = gone_ok;
                        p
                    })
                    .collect()
            }
        })
    }
}
