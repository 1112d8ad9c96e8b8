//! Seeding a tenant without requests, making changes as a portal administrator would, and
//! inspecting the state a test left behind.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::Graph;

impl Graph {
    // -- Seeding (no requests, no audit entries, no replication delay) ---------------------

    /// Adds a user; returns its id.
    pub fn add_user(&self, upn: &str, display_name: &str, enabled: bool) -> String {
        self.with(|t| {
            let id = t.new_id(1);
            let nick = upn.split('@').next().unwrap_or(upn);
            t.insert_user(
                &id,
                json!({"id": id, "userPrincipalName": upn, "displayName": display_name,
                "mailNickname": nick, "accountEnabled": enabled, "createdDateTime": "2026-01-01T00:00:00Z"}),
            );
            id
        })
    }

    /// Adds `n` users `{prefix}{i}@{domain}`; returns their ids.
    pub fn add_users(&self, prefix: &str, domain: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| self.add_user(&format!("{prefix}{i}@{domain}"), &format!("{prefix} {i}"), true)).collect()
    }

    /// Sets a property of a user as if changed in the portal (no audit entry; see
    /// [`Graph::outside_write`] and [`Graph::portal`]).
    pub fn set_user_field(&self, id: &str, field: &str, value: Value) {
        self.with(|t| {
            let mut props = serde_json::Map::new();
            props.insert(field.to_string(), value);
            t.put_user_props(id, &props);
        })
    }

    /// Sets a user's last sign-in (`signInActivity.lastSignInDateTime`).
    pub fn set_last_sign_in(&self, id: &str, when: &str) {
        self.set_user_field(
            id,
            "signInActivity",
            json!({"lastSignInDateTime": when, "lastSuccessfulSignInDateTime": when}),
        )
    }

    /// Adds a security group; returns its id.
    pub fn add_group(&self, name: &str) -> String {
        self.with(|t| {
            let id = t.new_id(2);
            let body = json!({"id": id, "displayName": name, "mailNickname": name, "mailEnabled": false, "securityEnabled": true});
            t.insert_group(&id, body, BTreeSet::new());
            id
        })
    }

    /// Adds members to a group without requests.
    pub fn add_members(&self, group: &str, ids: &[String]) {
        self.with(|t| {
            for id in ids {
                t.add_group_member(group, id);
            }
        })
    }

    /// Assigns a directory role (by display name) at tenant scope without a request.
    pub fn add_role_assignment(&self, role: &str, principal: &str) -> String {
        self.with(|t| {
            let def = t.role_definitions.values().find(|d| d["displayName"].as_str() == Some(role)).cloned();
            let def = def.map(|d| d["id"].as_str().unwrap_or_default().to_string()).unwrap_or_default();
            let id = t.new_id(3);
            t.insert_role_assignment(
                &id,
                json!({"id": id, "roleDefinitionId": def, "principalId": principal, "directoryScopeId": "/"}),
            );
            id
        })
    }

    /// Adds an application with a service principal exposing `roles` (app role values);
    /// returns the service principal id.
    pub fn add_enterprise_app(&self, name: &str, roles: &[&str]) -> String {
        self.with(|t| {
            let app = t.new_id(6);
            t.next += 1;
            let app_id = format!("a0000000-0000-4000-8000-{:012x}", t.next);
            let app_roles: Vec<Value> = roles
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    json!({"id": format!("r0000000-0000-4000-8000-{:04x}{:08x}", i, t.next), "displayName": r,
                    "value": r, "allowedMemberTypes": ["User", "Application"], "isEnabled": true})
                })
                .collect();
            t.applications.insert(
                app.clone(),
                json!({"id": app, "appId": app_id, "displayName": name,
                "appRoles": app_roles, "passwordCredentials": [], "keyCredentials": []}),
            );
            let sp = t.new_id(4);
            t.service_principals.insert(
                sp.clone(),
                json!({"id": sp, "appId": app_id, "displayName": name,
                "appRoles": app_roles, "servicePrincipalType": "Application"}),
            );
            sp
        })
    }

    /// Sets the state of a method configuration (`Sms`, `Fido2`, …) without a request.
    pub fn set_method_state(&self, id: &str, enabled: bool) {
        self.with(|t| {
            if let Some(c) = t.methods_policy.iter_mut().find(|c| c["id"].as_str() == Some(id)) {
                c["state"] = json!(if enabled { "enabled" } else { "disabled" });
            }
        })
    }

    /// Registers an authentication method for a user (an `@odata.type` such as
    /// `#microsoft.graph.fido2AuthenticationMethod`).
    pub fn add_user_method(&self, user: &str, odata_type: &str) {
        self.with(|t| {
            let n = t.user_methods.get(user).map_or(0, Vec::len);
            t.user_methods
                .entry(user.to_string())
                .or_default()
                .push(json!({"@odata.type": odata_type, "id": format!("m{n}")}));
        })
    }

    /// Records a change made outside keyward by `actor_upn` in the audit log, as the portal
    /// would (the change itself is made with the other seeding helpers).
    pub fn outside_write(&self, activity: &str, target_id: &str, actor_upn: &str) {
        self.with(|t| {
            let actor = json!({"user": {"id": "outside-actor", "displayName": actor_upn, "userPrincipalName": actor_upn,
                "ipAddress": "192.0.2.10"}, "app": null});
            let category = if activity.contains("role") { "RoleManagement" } else { "GroupManagement" };
            t.audit(activity, category, target_id, actor);
        })
    }

    // -- Inspection ---------------------------------------------------------------------------

    /// The user with this userPrincipalName, as stored (without password).
    pub fn user(&self, upn: &str) -> Option<Value> {
        self.with(|t| t.user_id(upn).map(|id| t.users[&id].clone()))
    }

    pub fn user_count(&self) -> usize {
        self.with(|t| t.users.len())
    }

    /// Soft-deleted users.
    pub fn deleted_users(&self) -> Vec<Value> {
        self.with(|t| t.deleted.values().cloned().collect())
    }

    /// The id of the group with this display name.
    pub fn group_id(&self, name: &str) -> Option<String> {
        self.with(|t| {
            t.groups
                .iter()
                .find(|(_, g)| g.body["displayName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .map(|(id, _)| id.clone())
        })
    }

    /// The display names of every group, one entry per group (duplicates show twice).
    pub fn group_names(&self) -> Vec<String> {
        self.with(|t| t.groups.values().filter_map(|g| g.body["displayName"].as_str().map(str::to_string)).collect())
    }

    /// Member ids of a group.
    pub fn members(&self, group: &str) -> Vec<String> {
        self.with(|t| t.groups.get(group).map(|g| g.members.iter().cloned().collect()).unwrap_or_default())
    }

    /// Role assignments as stored.
    pub fn role_assignments(&self) -> Vec<Value> {
        self.with(|t| t.role_assignments.values().cloned().collect())
    }

    /// App role assignments as stored.
    pub fn app_role_assignments(&self) -> Vec<Value> {
        self.with(|t| t.app_role_assignments.values().cloned().collect())
    }

    /// Gives the application with client id `app_id`, and its service principal, a new client
    /// id, as deleting the registration and making it again by hand (tags and all) would;
    /// returns the new client id.
    pub fn replace_app_id(&self, app_id: &str) -> String {
        let new = self.with(|t| {
            t.next += 1;
            format!("a0000000-0000-4000-8000-{:012x}", t.next)
        });
        self.set_app_id(app_id, &new);
        new
    }

    /// Sets the client id of the application with client id `app_id`, and of its service
    /// principal, to `new` as given (a hostile tenant's answer need not be a GUID).
    pub fn set_app_id(&self, app_id: &str, new: &str) {
        self.with(|t| {
            for v in t.applications.values_mut().chain(t.service_principals.values_mut()) {
                if v["appId"].as_str() == Some(app_id) {
                    v["appId"] = json!(new);
                }
            }
        })
    }

    /// Applications as stored, with their owner ids under `owners`.
    pub fn applications(&self) -> Vec<Value> {
        self.with(|t| {
            t.applications
                .values()
                .map(|a| {
                    let mut a = a.clone();
                    a["owners"] =
                        json!(t.owners.get(a["id"].as_str().unwrap_or_default()).cloned().unwrap_or_default());
                    a
                })
                .collect()
        })
    }

    /// Makes a domain federated: its users are created without a password and with
    /// `onPremisesImmutableId`.
    pub fn add_federated_domain(&self, domain: &str) {
        self.with(|t| t.federated.insert(domain.to_lowercase()));
    }

    /// Sets the clock certificate validity is judged by (a Unix time), to follow a test's
    /// `KEYWARD_NOW`.
    pub fn set_now(&self, unix: u64) {
        self.with(|t| t.now = Some(unix));
    }

    /// Client secrets handed out by `addPassword`, for "never printed" checks.
    pub fn secrets(&self) -> Vec<String> {
        self.with(|t| t.secrets.clone())
    }

    /// Proof tokens accepted: (`addKey` or `removeKey`, application id, key id of the
    /// certificate that signed it).
    pub fn proofs(&self) -> Vec<(String, String, String)> {
        self.with(|t| t.proofs.clone())
    }

    /// PATCH requests that set `keyCredentials`.
    pub fn key_patches(&self) -> usize {
        self.with(|t| t.key_patches)
    }

    /// The state of each method configuration.
    pub fn method_states(&self) -> BTreeMap<String, String> {
        self.with(|t| {
            t.methods_policy
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or_default().to_string(),
                        c["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
    }

    /// The initial passwords clients sent when creating users.
    pub fn passwords(&self) -> Vec<String> {
        self.with(|t| t.passwords.clone())
    }

    /// The directory audit log, oldest first.
    pub fn audits(&self) -> Vec<Value> {
        self.with(|t| t.audits.clone())
    }
}
