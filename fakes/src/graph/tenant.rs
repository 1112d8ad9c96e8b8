//! The tenant's state and the dispatcher every request, outer or batched, goes through.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use super::delta::{Coll, DeltaState};
use super::http::{Req, Resp, now_iso, page, select};
use super::pim::PimState;
use super::{DEFAULT_PAGE, MAX_PAGE};
use crate::Throttle;

#[derive(Debug, Default)]
pub(super) struct Scenarios {
    pub(super) throttle: Option<Throttle>,
    pub(super) delay: Option<u32>,
    pub(super) transient: Option<u64>,
    pub(super) deny_writes: bool,
    pub(super) no_sign_in: bool,
}

#[derive(Debug, Default)]
pub(super) struct GroupObj {
    pub(super) body: Value,
    pub(super) members: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub(super) struct Tenant {
    pub(super) next: u64,
    pub(super) users: BTreeMap<String, Value>,
    /// user id → manager id.
    pub(super) managers: HashMap<String, String>,
    pub(super) deleted: BTreeMap<String, Value>,
    pub(super) groups: BTreeMap<String, GroupObj>,
    pub(super) role_definitions: BTreeMap<String, Value>,
    pub(super) role_assignments: BTreeMap<String, Value>,
    pub(super) applications: BTreeMap<String, Value>,
    /// application id → owner ids.
    pub(super) owners: HashMap<String, BTreeSet<String>>,
    pub(super) service_principals: BTreeMap<String, Value>,
    pub(super) app_role_assignments: BTreeMap<String, Value>,
    pub(super) methods_policy: Vec<Value>,
    pub(super) user_methods: HashMap<String, Vec<Value>>,
    pub(super) audits: Vec<Value>,
    /// id → remaining 404 answers (replication delay).
    pub(super) recent: HashMap<String, u32>,
    pub(super) requests: u64,
    pub(super) scenarios: Scenarios,
    /// Initial passwords received (test data, for "never printed" checks).
    pub(super) passwords: Vec<String>,
    /// Client secrets handed out by `addPassword` (test data, for "never printed" checks).
    pub(super) secrets: Vec<String>,
    /// Proof tokens accepted: (operation, application id, key id of the signing certificate).
    pub(super) proofs: Vec<(String, String, String)>,
    /// The clock for certificate validity, as a Unix time; the system clock when unset.
    pub(super) now: Option<u64>,
    /// PATCH requests that set `keyCredentials`.
    pub(super) key_patches: usize,
    /// Federated domains (lower case).
    pub(super) federated: BTreeSet<String>,
    /// Soft-deleted user → the groups it was a member of (kept until restored or deleted).
    pub(super) suspended: HashMap<String, BTreeSet<String>>,
    /// Delta queries: the journal, tokens and rounds.
    pub(super) delta: DeltaState,
    /// Privileged Identity Management: eligibility and role management policies.
    pub(super) pim: PimState,
}

impl Tenant {
    pub(super) fn new_id(&mut self, kind: u8) -> String {
        self.next += 1;
        format!("{kind:02x}000000-0000-4000-8000-{:012x}", self.next)
    }

    pub(super) fn request_id(&mut self) -> String {
        self.requests += 1;
        format!("00000000-0000-4000-9000-{:012x}", self.requests)
    }

    pub(super) fn user_id(&self, key: &str) -> Option<String> {
        if self.users.contains_key(key) {
            return Some(key.to_string());
        }
        let k = key.to_lowercase();
        self.users
            .iter()
            .find(|(_, u)| u["userPrincipalName"].as_str().is_some_and(|p| p.to_lowercase() == k))
            .map(|(id, _)| id.clone())
    }

    pub(super) fn object_type(&self, id: &str) -> Option<&'static str> {
        if self.users.contains_key(id) {
            Some("#microsoft.graph.user")
        } else if self.groups.contains_key(id) {
            Some("#microsoft.graph.group")
        } else if self.service_principals.contains_key(id) {
            Some("#microsoft.graph.servicePrincipal")
        } else {
            None
        }
    }

    pub(super) fn display_name(&self, id: &str) -> String {
        let v = self
            .users
            .get(id)
            .or_else(|| self.groups.get(id).map(|g| &g.body))
            .or_else(|| self.service_principals.get(id))
            .or_else(|| self.applications.get(id));
        v.and_then(|v| v["displayName"].as_str()).unwrap_or_default().to_string()
    }

    /// Records a write in the directory audit log (§2.8 item shape). `actor` is a user
    /// (outside writes seeded by tests) or the calling app.
    pub(super) fn audit(&mut self, activity: &str, category: &str, target_id: &str, actor: Value) {
        self.audit_at(activity, category, target_id, actor, now_iso(), vec![]);
    }

    /// An audit entry at a given time, with the properties it changed
    /// (`{displayName, oldValue, newValue}`).
    pub(super) fn audit_at(
        &mut self,
        activity: &str,
        category: &str,
        target_id: &str,
        actor: Value,
        when: String,
        modified: Vec<Value>,
    ) {
        self.next += 1;
        let id = format!("audit-{:08}", self.next);
        let target = json!({"id": target_id, "displayName": self.display_name(target_id),
            "type": self.object_type(target_id).map(|t| t.trim_start_matches("#microsoft.graph.")).unwrap_or("other"),
            "userPrincipalName": self.users.get(target_id).and_then(|u| u["userPrincipalName"].as_str()),
            "modifiedProperties": modified});
        self.audits.push(json!({
            "id": id, "category": category, "correlationId": id, "result": "success", "resultReason": "",
            "activityDisplayName": activity, "activityDateTime": when, "loggedByService": "Core Directory",
            "operationType": activity.split(' ').next().unwrap_or("Update"),
            "initiatedBy": actor, "targetResources": [target], "additionalDetails": [],
        }));
    }

    pub(super) fn app_actor() -> Value {
        json!({"user": null, "app": {"appId": "keyward-client", "displayName": "keyward", "servicePrincipalId": null}})
    }

    /// Ids a request names: path segments and `directoryObjects/{id}` / id fields in its body.
    pub(super) fn named_ids(&self, req: &Req) -> Vec<String> {
        let mut out: Vec<String> = req.segments.iter().filter(|s| self.recent.contains_key(*s)).cloned().collect();
        if let Some(b) = &req.body {
            let text = b.to_string();
            for id in self.recent.keys() {
                if text.contains(id.as_str()) {
                    out.push(id.clone());
                }
            }
        }
        out
    }

    pub(super) fn created(&mut self, id: &str) {
        if let Some(k) = self.scenarios.delay {
            self.recent.insert(id.to_string(), k);
        }
    }

    pub(super) fn is_write(method: &str) -> bool {
        matches!(method, "POST" | "PATCH" | "PUT" | "DELETE")
    }

    /// One request: scenarios first, then the resource. Used for outer and batched requests.
    pub(super) fn dispatch(&mut self, req: &Req) -> Resp {
        if let Some(t) = &self.scenarios.throttle
            && let Err(wait) = t.take()
        {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut r = Resp::error(429, "TooManyRequests", "Too many requests.");
            r.headers.push(("Retry-After", secs.to_string()));
            return r;
        }
        if self.scenarios.deny_writes && Tenant::is_write(&req.method) {
            return Resp::error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            );
        }
        if self.scenarios.delay.is_some() {
            let named = self.named_ids(req);
            if let Some(id) = named.first() {
                let left = self.recent.get_mut(id).expect("named ids are recent");
                *left -= 1;
                if *left == 0 {
                    self.recent.remove(id);
                }
                return Resp::not_found(id);
            }
        }
        self.route(req)
    }

    pub(super) fn route(&mut self, req: &Req) -> Resp {
        let s: Vec<&str> = req.segments.iter().map(String::as_str).collect();
        let m = req.method.as_str();
        match (m, s.as_slice()) {
            ("GET", ["users"]) => self.list_users(req),
            ("GET", ["users", "delta" | "microsoft.graph.delta"]) => self.delta_query(Coll::Users, req),
            ("GET", ["groups", "delta" | "microsoft.graph.delta"]) => self.delta_query(Coll::Groups, req),
            ("GET", ["directoryRoles", "delta" | "microsoft.graph.delta"]) => {
                self.delta_query(Coll::DirectoryRoles, req)
            }
            ("GET", ["directoryRoles"]) => {
                let all: Vec<Value> = self
                    .role_definitions
                    .keys()
                    .filter_map(|d| self.directory_role_id(d))
                    .filter_map(|r| self.directory_role(&r))
                    .collect();
                Resp::ok(json!({"value": all}))
            }
            ("GET", ["directoryRoles", r, "members"]) => match self.directory_role(r) {
                Some(_) => {
                    let all: Vec<Value> = self
                        .directory_role_members(r)
                        .into_iter()
                        .map(|m| json!({"@odata.type": self.object_type(&m).unwrap_or("#microsoft.graph.directoryObject"), "id": m}))
                        .collect();
                    Resp::ok(json!({"value": all}))
                }
                None => Resp::not_found(r),
            },
            ("POST", ["users"]) => self.create_user(req),
            ("GET", ["users", u]) => match self.user_id(u) {
                Some(id) => Resp::ok(self.project_user(&id, &select(req), false)),
                None => Resp::not_found(u),
            },
            ("GET", ["users", u, "memberOf"]) => self.member_of(u, req),
            ("PATCH", ["users", u]) => self.update_user(u, req),
            ("DELETE", ["users", u]) => self.delete_user(u),
            ("PUT", ["users", u, "manager", "$ref"]) => self.set_manager(u, req),
            ("DELETE", ["users", u, "manager", "$ref"]) => match self.user_id(u) {
                Some(id) if self.is_synced_user(&id) => super::hybrid::on_premises_mastered(),
                Some(id) => {
                    self.set_manager_of(&id, None);
                    Resp::no_content()
                }
                None => Resp::not_found(u),
            },
            ("GET", ["users", u, "authentication", "methods"]) => match self.user_id(u) {
                Some(id) => Resp::ok(json!({"value": self.user_methods.get(&id).cloned().unwrap_or_default()})),
                None => Resp::not_found(u),
            },
            ("GET", ["directory", "deletedItems", "microsoft.graph.user"]) => {
                Resp::ok(json!({"value": self.deleted.values().cloned().collect::<Vec<_>>()}))
            }
            ("POST", ["directory", "deletedItems", id, "restore"]) => match self.restore_user(id) {
                Some(u) => {
                    self.audit("Restore user", "UserManagement", id, Tenant::app_actor());
                    Resp::ok(u)
                }
                None => Resp::not_found(id),
            },
            // Permanent deletion (§2.1 hard delete).
            ("DELETE", ["directory", "deletedItems", id]) => {
                if self.purge_user(id) {
                    self.audit("Hard Delete user", "UserManagement", id, Tenant::app_actor());
                    Resp::no_content()
                } else {
                    Resp::not_found(id)
                }
            }
            ("GET", ["groups"]) => self.list_groups(req),
            ("POST", ["groups"]) => self.create_group(req),
            ("GET", ["groups", g]) => match self.groups.get(*g) {
                Some(o) => Resp::ok(o.body.clone()),
                None => Resp::not_found(g),
            },
            ("PATCH", ["groups", g]) => self.patch_group(g, req),
            ("GET", ["groups", g, "members"]) => self.list_members(g, req),
            ("POST", ["groups", g, "members", "$ref"]) => self.add_member(g, req),
            ("DELETE", ["groups", g, "members", member, "$ref"]) => self.remove_member(g, member),
            ("GET", ["roleManagement", "directory", "roleDefinitions"]) => {
                Resp::ok(json!({"value": self.role_definitions.values().cloned().collect::<Vec<_>>()}))
            }
            ("GET", ["roleManagement", "directory", "roleAssignments"]) => {
                let all: Vec<Value> = self.role_assignments.values().cloned().collect();
                page(req, all, DEFAULT_PAGE, MAX_PAGE)
            }
            ("POST", ["roleManagement", "directory", "roleAssignments"]) => self.assign_role(req),
            ("DELETE", ["roleManagement", "directory", "roleAssignments", id]) => {
                match self.remove_role_assignment(id) {
                    Some(a) => {
                        let p = a["principalId"].as_str().unwrap_or_default().to_string();
                        self.audit("Remove member from role", "RoleManagement", &p, Tenant::app_actor());
                        Resp::no_content()
                    }
                    None => Resp::not_found(id),
                }
            }
            ("GET", ["servicePrincipals"]) => {
                let all: Vec<Value> = self.service_principals.values().cloned().collect();
                page(req, all, DEFAULT_PAGE, MAX_PAGE)
            }
            ("POST", ["servicePrincipals"]) => self.create_service_principal(req),
            ("GET", ["servicePrincipals", sp, "appRoleAssignedTo"]) => {
                if !self.service_principals.contains_key(*sp) {
                    return Resp::not_found(sp);
                }
                let all: Vec<Value> = self
                    .app_role_assignments
                    .values()
                    .filter(|a| a["resourceId"].as_str() == Some(sp))
                    .cloned()
                    .collect();
                page(req, all, DEFAULT_PAGE, MAX_PAGE)
            }
            ("POST", ["servicePrincipals", sp, "appRoleAssignedTo"]) => self.assign_app_role(sp, req),
            ("DELETE", ["servicePrincipals", sp, "appRoleAssignedTo", id]) => {
                match self.app_role_assignments.get(*id) {
                    Some(a) if a["resourceId"].as_str() == Some(sp) => {
                        let a = self.app_role_assignments.remove(*id).expect("present");
                        let p = a["principalId"].as_str().unwrap_or_default().to_string();
                        self.audit(
                            "Remove app role assignment from user",
                            "ApplicationManagement",
                            &p,
                            Tenant::app_actor(),
                        );
                        Resp::no_content()
                    }
                    _ => Resp::not_found(id),
                }
            }
            ("GET", ["applications"]) => self.list_applications(req),
            ("GET", ["applications", a]) => self.get_application(a, req),
            ("POST", ["applications", a, "addPassword"]) => self.add_password(a, req),
            ("POST", ["applications", a, "removePassword"]) => self.remove_password(a, req),
            ("POST", ["applications", a, "addKey"]) => self.add_key(a, req),
            ("POST", ["applications", a, "removeKey"]) => self.remove_key(a, req),
            ("POST", ["applications"]) => self.create_application(req),
            ("PATCH", ["applications", a]) => self.patch_application(a, req),
            ("POST", ["applications", a, "owners", "$ref"]) => self.add_owner(a, req),
            ("DELETE", ["applications", a, "owners", o, "$ref"]) => {
                if self.owners.get_mut(*a).is_some_and(|set| set.remove(*o)) {
                    Resp::no_content()
                } else {
                    Resp::not_found(o)
                }
            }
            ("GET", ["policies", "authenticationMethodsPolicy"]) => Resp::ok(json!({
                "id": "authenticationMethodsPolicy", "policyVersion": "1.5", "registrationEnforcement": {},
                "authenticationMethodConfigurations": self.methods_policy.clone(),
            })),
            ("PATCH", ["policies", "authenticationMethodsPolicy", "authenticationMethodConfigurations", id]) => {
                let state = req.body.as_ref().and_then(|b| b["state"].as_str()).map(str::to_string);
                let Some(state) = state.filter(|s| s == "enabled" || s == "disabled") else {
                    return Resp::bad("state must be enabled or disabled");
                };
                match self
                    .methods_policy
                    .iter_mut()
                    .find(|c| c["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
                {
                    Some(c) => {
                        c["state"] = json!(state);
                        self.audit("Authentication Methods Policy Update", "Policy", id, Tenant::app_actor());
                        Resp::no_content()
                    }
                    None => Resp::not_found(id),
                }
            }
            ("GET", ["auditLogs", "directoryAudits"]) => self.list_audits(req),
            _ => match self.route_pim(req) {
                Some(r) => r,
                None => {
                    Resp::error(400, "BadRequest", &format!("Resource not found for the segment '{}'.", s.join("/")))
                }
            },
        }
    }
}
