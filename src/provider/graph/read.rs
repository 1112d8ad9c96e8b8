//! Reading the tenant: users, groups, roles, applications, sign-in methods and activity.

use super::*;
use crate::model::MembersDecided;
use crate::provider::ids;

impl GraphProvider {
    fn read_error(&self, what: &str, e: GraphError) -> ProviderError {
        let hint = match e.status() {
            Some(401) => "; check the client credentials",
            Some(403) => "; the application may lack the Graph permission to read it",
            _ => "",
        };
        ProviderError::Remote {
            target: self.target.clone(),
            message: format!("cannot read {what} from {}: {e}{hint}", self.client.root()),
        }
    }

    fn invalid(&self, message: String) -> ProviderError {
        ProviderError::Remote { target: self.target.clone(), message }
    }

    /// Every id is a GUID (Graph's directory object ids are) and none appears twice: ids go
    /// into request paths (`/users/{id}`), and a repeated one would hide an object.
    fn check_ids<'a>(
        &self,
        what: &str,
        objects: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<(), ProviderError> {
        for (id, name) in objects.clone() {
            ids::guid(id).map_err(|e| {
                self.invalid(format!(
                    "{what} `{}` read from {} is refused: {e}",
                    name.escape_debug(),
                    self.client.root()
                ))
            })?;
        }
        match ids::first_duplicate(objects.map(|(id, _)| id)) {
            Some(id) => Err(self.invalid(format!(
                "{} answered the {what} id `{id}` twice; one {what} would be hidden",
                self.client.root()
            ))),
            None => Ok(()),
        }
    }

    /// Follows each first page of `urls` (fetched in batches) to its last page.
    async fn collections(&self, what: &str, urls: &[String]) -> Result<Vec<Vec<Value>>, ProviderError> {
        self.collections_each(urls).await.into_iter().map(|r| r.map_err(|e| self.read_error(what, e))).collect()
    }

    /// [`Self::collections`], with each collection's own outcome.
    pub(super) async fn collections_each(&self, urls: &[String]) -> Vec<Result<Vec<Value>, GraphError>> {
        let calls: Vec<Call> = urls.iter().map(|u| Call::new(Method::GET, u.clone(), None)).collect();
        let outcomes = self.client.batch(&calls, |_| false).await;
        let mut out = Vec::with_capacity(urls.len());
        for o in outcomes {
            out.push(self.follow_outcome(o).await);
        }
        out
    }

    async fn follow_outcome(&self, o: Result<client::Outcome, GraphError>) -> Result<Vec<Value>, GraphError> {
        let body = o?.body.unwrap_or(Value::Null);
        let items = body.get("value").and_then(Value::as_array).cloned().unwrap_or_default();
        match body.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => {
                let next = self.client.next_link(next)?;
                self.client.follow(next, items).await
            }
            None => Ok(items),
        }
    }

    /// Each user's registered sign-in methods (§2.6), in batches of twenty, for the access
    /// review. Without the permission to read them (403) they are reported once and left out.
    async fn read_registered_methods(
        &self,
        users: &[WireUser],
    ) -> Result<HashMap<String, Vec<crate::model::AuthMethod>>, ProviderError> {
        let calls: Vec<Call> = users
            .iter()
            .map(|u| Call::new(Method::GET, format!("/users/{}/authentication/methods", u.id), None))
            .collect();
        let mut out = HashMap::with_capacity(users.len());
        for (u, o) in users.iter().zip(self.client.batch(&calls, |_| false).await) {
            match o {
                Ok(o) => {
                    let body = o.body.unwrap_or(Value::Null);
                    let mut methods: Vec<crate::model::AuthMethod> = body
                        .get("value")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(wire::registered_method).collect())
                        .unwrap_or_default();
                    methods.sort();
                    methods.dedup();
                    out.insert(u.id.clone(), methods);
                }
                Err(e) if e.status() == Some(403) => {
                    tracing::warn!(target_name = %self.target, error = %e, "users' registered sign-in methods cannot be read (UserAuthenticationMethod.Read.All); they are left out of the review");
                    return Ok(HashMap::new());
                }
                Err(e) => return Err(self.read_error("the users' sign-in methods", e)),
            }
        }
        Ok(out)
    }

    async fn read_sign_ins(&self) -> Result<HashMap<String, crate::model::Timestamp>, ProviderError> {
        match self.client.get_all("/users?$select=id,signInActivity&$top=500").await {
            Ok(items) => Ok(items
                .iter()
                .filter_map(|v| Some((v.get("id")?.as_str()?.to_string(), wire::last_sign_in(v)?)))
                .collect()),
            Err(e) if e.status() == Some(403) => {
                tracing::warn!(target_name = %self.target, error = %e, "sign-in activity is not available on this tenant; last sign-in times are left out");
                Ok(HashMap::new())
            }
            Err(e) => Err(self.read_error("sign-in activity", e)),
        }
    }

    pub(super) async fn read_live(&mut self) -> Result<LiveTarget, ProviderError> {
        let c = &self.client;
        let users = c
            .get_all(&format!("/users?$select={USER_SELECT}&$expand=manager($select=id)&$top=999"))
            .await
            .map_err(|e| self.read_error("the users", e))?;
        let users: Vec<WireUser> = users
            .iter()
            .map(WireUser::parse)
            .collect::<Result<_, _>>()
            .map_err(|m| self.invalid(format!("a user read from Graph is not valid: {m}")))?;
        self.check_ids("user", users.iter().map(|u| (u.id.as_str(), u.user_name.as_str())))?;
        let (sign_ins, registered) = if self.access == Access::Review {
            (self.read_sign_ins().await?, self.read_registered_methods(&users).await?)
        } else {
            (HashMap::new(), HashMap::new())
        };
        let groups = c
            .get_all(&format!("/groups?$select={}&$top=999", wire::GROUP_SELECT))
            .await
            .map_err(|e| self.read_error("the groups", e))?;
        self.check_ids("group", groups.iter().map(|g| (id_str(g), name_str(g))))?;
        let member_urls: Vec<String> =
            groups.iter().filter_map(id_of).map(|id| format!("/groups/{id}/members?$select=id&$top=999")).collect();
        // Each group's eligibility and membership policy go in the same batches as its members.
        let group_ids: Vec<String> = groups.iter().filter_map(id_of).collect();
        let mut urls = member_urls.clone();
        urls.extend(group_ids.iter().flat_map(|id| eligibility::group_urls(id)));
        let mut answers = self.collections_each(&urls).await;
        let group_pim = answers.split_off(member_urls.len());
        let members = answers
            .into_iter()
            .map(|r| r.map_err(|e| self.read_error("group members", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let role_defs = c
            .get_all("/roleManagement/directory/roleDefinitions?$select=id,displayName,templateId")
            .await
            .map_err(|e| self.read_error("the directory role definitions", e))?;
        let role_assignments = c
            .get_all("/roleManagement/directory/roleAssignments?$top=999")
            .await
            .map_err(|e| self.read_error("the directory role assignments", e))?;
        let sps = c
            .get_all("/servicePrincipals?$select=id,appId,displayName,appRoles&$top=999")
            .await
            .map_err(|e| self.read_error("the service principals", e))?;
        self.check_ids("service principal", sps.iter().map(|v| (id_str(v), name_str(v))))?;
        let with_roles: Vec<&Value> =
            sps.iter().filter(|s| s.get("appRoles").and_then(Value::as_array).is_some_and(|r| !r.is_empty())).collect();
        let assignment_urls: Vec<String> = with_roles
            .iter()
            .filter_map(|s| id_of(s))
            .map(|id| format!("/servicePrincipals/{id}/appRoleAssignedTo?$top=999"))
            .collect();
        let app_assignments = self.collections("app role assignments", &assignment_urls).await?;
        let apps = c
            .get_all(&format!("/applications?$select={}&$expand=owners($select=id)&$top=999", wire::APPLICATION_SELECT))
            .await
            .map_err(|e| self.read_error("the applications", e))?;
        self.check_ids("application", apps.iter().map(|v| (id_str(v), name_str(v))))?;
        // Ids that later name a path below an object (`/groups/{g}/members/{id}/$ref`,
        // `/roleManagement/directory/roleAssignments/{id}`) are checked as well.
        let member_ids = members.iter().flatten().chain(
            apps.iter()
                .flat_map(|a| a.get("owners").and_then(Value::as_array).map(|o| o.as_slice()).unwrap_or_default()),
        );
        for m in member_ids {
            ids::guid(id_str(m))
                .map_err(|e| self.invalid(format!("a member read from {} is refused: {e}", c.root())))?;
        }
        for a in role_assignments.iter().chain(app_assignments.iter().flatten()) {
            ids::path_segment(id_str(a))
                .map_err(|e| self.invalid(format!("a role assignment read from {} is refused: {e}", c.root())))?;
        }
        let policy = c
            .call(&Call::new(Method::GET, "/policies/authenticationMethodsPolicy", None))
            .await
            .map_err(|e| self.read_error("the authentication methods policy", e))?;

        let mut state = State::default();
        let mut live = LiveTarget::default();
        let upn_by_id: HashMap<&str, &str> = users.iter().map(|u| (u.id.as_str(), u.user_name.as_str())).collect();
        for u in &users {
            let manager = u.manager_id.as_deref().and_then(|m| upn_by_id.get(m)).map(|n| n.to_string());
            state.users.insert(key(&u.user_name), u.id.clone());
            live.held_elsewhere.extend(super::feed::held_elsewhere(u));
            live.accounts.push(LiveAccount {
                last_sign_in: sign_ins.get(&u.id).copied(),
                registered_methods: registered.get(&u.id).cloned(),
                ..super::feed::account_of(u, manager)
            });
        }
        for (g, members) in groups.iter().zip(members) {
            let (Some(id), Some(name)) = (id_of(g), str_of(g, "displayName")) else { continue };
            let mut members: Vec<String> = members.iter().filter_map(id_of).collect();
            // Sorted, as the state built from the change feed keeps them.
            members.sort();
            members.dedup();
            state.groups.entry(key(&name)).or_insert(id.clone());
            if let Some(by) = wire::members_decided_by(g) {
                live.members_decided.push(MembersDecided { binding: Binding::Group(name.clone()), by });
            }
            let mut b = LiveBinding { fingerprint: String::new(), id, binding: Binding::Group(name), members };
            b.fingerprint = super::feed::binding_fingerprint(&b);
            live.bindings.push(b);
        }
        let mut role_members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in &role_assignments {
            if a.get("directoryScopeId").and_then(Value::as_str) != Some("/") {
                continue;
            }
            let (Some(aid), Some(def), Some(p)) = (id_of(a), str_of(a, "roleDefinitionId"), str_of(a, "principalId"))
            else {
                continue;
            };
            role_members.entry(def.clone()).or_default().push(p.clone());
            state.role_assignments.insert((def, p), aid);
        }
        for d in &role_defs {
            let (Some(id), Some(name)) = (id_of(d), str_of(d, "displayName")) else { continue };
            let mut members = role_members.remove(&id).unwrap_or_default();
            // An assignment may name the template id instead (§2.3).
            if let Some(t) = str_of(d, "templateId").filter(|t| *t != id) {
                for p in role_members.remove(&t).unwrap_or_default() {
                    if let Some(aid) = state.role_assignments.remove(&(t.clone(), p.clone())) {
                        state.role_assignments.insert((id.clone(), p.clone()), aid);
                    }
                    members.push(p);
                }
            }
            members.sort();
            members.dedup();
            if let Some(t) = str_of(d, "templateId") {
                state.role_templates.insert(t, id.clone());
            }
            state.roles.insert(key(&name), id.clone());
            live.bindings.push(LiveBinding {
                fingerprint: digest(&(&id, &name, &members)),
                id,
                binding: Binding::DirectoryRole(name),
                members,
            });
        }
        for (sp, assignments) in with_roles.iter().zip(app_assignments) {
            let (Some(sp_id), Some(app)) = (id_of(sp), str_of(sp, "displayName")) else { continue };
            for r in sp.get("appRoles").and_then(Value::as_array).into_iter().flatten() {
                let (Some(rid), Some(role)) = (id_of(r), str_of(r, "value").or_else(|| str_of(r, "displayName")))
                else {
                    continue;
                };
                let mut members = Vec::new();
                for a in assignments.iter().filter(|a| str_of(a, "appRoleId").as_deref() == Some(rid.as_str())) {
                    let (Some(aid), Some(p)) = (id_of(a), str_of(a, "principalId")) else { continue };
                    state.app_role_assignments.insert((sp_id.clone(), rid.clone(), p.clone()), aid);
                    members.push(p);
                }
                members.sort();
                let binding = Binding::AppRole(AppRoleRef { app: app.clone(), role });
                state.app_roles.insert(key(&binding.object_name()), (sp_id.clone(), rid.clone()));
                live.bindings.push(LiveBinding {
                    fingerprint: digest(&(&sp_id, &rid, &members)),
                    id: format!("{sp_id}/{rid}"),
                    binding,
                    members,
                });
            }
        }
        let sp_by_app: HashMap<String, String> =
            sps.iter().filter_map(|s| Some((str_of(s, "appId")?, id_of(s)?))).collect();
        for a in &apps {
            let tags = a.get("tags").and_then(Value::as_array).cloned().unwrap_or_default();
            let Some(name) = tags
                .iter()
                .filter_map(Value::as_str)
                .find_map(|t| t.strip_prefix(SERVICE_ACCOUNT_TAG))
                .map(str::to_string)
            else {
                continue;
            };
            let (Some(obj), Some(app_id)) = (id_of(a), str_of(a, "appId")) else { continue };
            // The client id is what a Dataverse or F&O target knows the account by, when its
            // `applicationId` is left to this registration: only a GUID is taken.
            if ids::guid(&app_id).is_err() {
                return Err(self.invalid(format!(
                    "the application of service account `{}` read from {} is refused: its appId `{}` is not a GUID, as client ids are",
                    name.escape_debug(),
                    c.root(),
                    app_id.chars().take(80).flat_map(char::escape_debug).collect::<String>()
                )));
            }
            let owners: Vec<String> =
                a.get("owners").and_then(Value::as_array).into_iter().flatten().filter_map(id_of).collect();
            let owner = owners.iter().find_map(|o| upn_by_id.get(o.as_str())).map(|u| u.to_string());
            let sp_id = sp_by_app.get(&app_id).cloned();
            let display_name = str_of(a, "displayName");
            let description = str_of(a, "description");
            let (credentials, skipped) = wire::application_credentials(a);
            for why in skipped {
                tracing::warn!(target_name = %self.target, account = %name, "{why}; it is left out");
            }
            let passwords =
                credentials.iter().filter(|c| c.kind == CredentialType::Secret).map(|c| c.id.clone()).collect();
            let keys = credentials
                .iter()
                .filter(|c| c.kind == CredentialType::Certificate)
                .map(|c| (c.id.clone(), (c.thumbprint.clone(), c.end)))
                .collect();
            live.service_accounts.push(LiveServiceAccount {
                application_id: Some(app_id.to_ascii_lowercase()),
                active: None,
                // The service principal holds roles; without one, the application stands in.
                id: sp_id.clone().unwrap_or_else(|| obj.clone()),
                name: name.clone(),
                fingerprint: digest(&(&obj, &name, &display_name, &description, &owner)),
                display_name,
                description,
                owner,
                credentials,
            });
            state.service_accounts.insert(name, SaEntry { app_object_id: obj, sp_id, owners, passwords, keys });
        }
        let mut pim = eligibility::PimState::default();
        self.read_role_eligibility(&role_defs, &upn_by_id, &mut live, &mut pim).await?;
        if pim.available {
            let names: HashMap<&str, String> =
                groups.iter().filter_map(|g| Some((g.get("id")?.as_str()?, str_of(g, "displayName")?))).collect();
            let mut answers = group_pim.into_iter();
            for id in &group_ids {
                let (Some(a), Some(b)) = (answers.next(), answers.next()) else { break };
                let Some(name) = names.get(id.as_str()) else { continue };
                self.add_group_eligibility(id, name, [a, b], &upn_by_id, &mut live, &mut pim)?;
            }
        }
        state.pim = pim;
        let mut methods = BTreeMap::new();
        for cfg in policy
            .body
            .as_ref()
            .and_then(|b| b.get("authenticationMethodConfigurations"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(m), Some(st)) =
                (str_of(cfg, "id").and_then(|i| wire::method_of_config(&i)), str_of(cfg, "state"))
            {
                methods.insert(m, st == "enabled");
            }
        }
        for m in wire::UNGOVERNED_METHODS {
            methods.insert(m, true);
        }
        live.auth_methods = Some(methods);
        tracing::info!(target_name = %self.target, users = live.accounts.len(), groups = groups.len(),
            requests = self.client.requests(), "read Graph target");
        self.state = Some(state);
        Ok(live)
    }
}

/// An object's `id`, empty when it has none (which the checks refuse).
fn id_str(v: &Value) -> &str {
    v.get("id").and_then(Value::as_str).unwrap_or_default()
}

fn name_str(v: &Value) -> &str {
    v.get("displayName").and_then(Value::as_str).unwrap_or_default()
}
