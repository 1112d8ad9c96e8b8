//! Users (§2.1): list, create, update, soft delete, manager.

use serde_json::{Map, Value, json};

use super::http::{Req, Resp, now_iso, page_with, ref_id, select};
use super::tenant::Tenant;
use super::{DEFAULT_PAGE, MAX_PAGE, MAX_PAGE_SIGN_IN};

impl Tenant {
    pub(super) fn project_user(&self, id: &str, select: &Option<Vec<String>>, expand_manager: bool) -> Value {
        let u = &self.users[id];
        let mut out = match select {
            Some(fields) => {
                let mut m = Map::new();
                m.insert("id".into(), u["id"].clone());
                for f in fields {
                    if let Some(v) = u.get(f.as_str()) {
                        m.insert(f.clone(), v.clone());
                    } else if f != "signInActivity" {
                        m.insert(f.clone(), Value::Null);
                    }
                }
                Value::Object(m)
            }
            None => {
                let mut v = u.clone();
                // signInActivity only on $select (documented §2.1).
                v.as_object_mut().expect("object").remove("signInActivity");
                v
            }
        };
        if expand_manager {
            out["manager"] = match self.managers.get(id) {
                Some(m) => json!({"@odata.type": "#microsoft.graph.user", "id": m}),
                None => Value::Null,
            };
        }
        out
    }

    pub(super) fn list_users(&mut self, req: &Req) -> Resp {
        let sel = select(req);
        let wants_sign_in = sel.as_ref().is_some_and(|f| f.iter().any(|x| x == "signInActivity"));
        if wants_sign_in && self.scenarios.no_sign_in {
            return Resp::error(
                403,
                "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                "Neither tenant is B2C or tenant doesn't have premium license",
            );
        }
        let max = if wants_sign_in { MAX_PAGE_SIGN_IN } else { MAX_PAGE };
        // `$expand=manager($select=id)` (assumed supported on the list, as on a single user).
        let expand = req.query.get("$expand").is_some_and(|e| e.starts_with("manager"));
        let ids: Vec<String> = self.users.keys().cloned().collect();
        page_with(req, ids.len(), DEFAULT_PAGE, max, |range| {
            ids[range].iter().map(|id| self.project_user(id, &sel, expand)).collect()
        })
    }

    pub(super) fn create_user(&mut self, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        for f in ["accountEnabled", "displayName", "mailNickname", "userPrincipalName"] {
            if !b.contains_key(f) {
                return Resp::bad(&format!("Property '{f}' is required (§2.1)."));
            }
        }
        if let Some(k) = b.keys().find(|k| super::hybrid::ON_PREMISES_READ_ONLY.contains(&k.as_str())) {
            return Resp::bad(&format!("Property '{k}' is read-only and cannot be set."));
        }
        let upn = b["userPrincipalName"].as_str().unwrap_or_default().to_string();
        if self.user_id(&upn).is_some() {
            return Resp::bad("Another object with the same value for property userPrincipalName already exists.");
        }
        // A federated domain needs onPremisesImmutableId (documented §2.1) and, its users signing
        // in elsewhere, no password (assumed); any other domain needs a password.
        let domain = upn.rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default();
        if self.federated.contains(&domain) {
            if b.get("onPremisesImmutableId").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Resp::bad(&format!(
                    "Property onPremisesImmutableId is required for a user in the federated domain {domain}."
                ));
            }
        } else {
            let pw = b.get("passwordProfile").and_then(|p| p["password"].as_str()).unwrap_or_default();
            if pw.len() < 8 {
                return Resp::bad("The specified password does not comply with password complexity requirements.");
            }
            let pw = pw.to_string();
            self.passwords.push(pw);
        }
        let id = self.new_id(1);
        let mut u = Map::new();
        u.insert("id".into(), json!(id));
        for (k, v) in b {
            if k != "passwordProfile" && k != "manager@odata.bind" {
                u.insert(k.clone(), v.clone());
            }
        }
        u.insert("createdDateTime".into(), json!(now_iso()));
        self.insert_user(&id, Value::Object(u));
        self.audit("Add user", "UserManagement", &id, Tenant::app_actor());
        self.created(&id);
        Resp::created(self.project_user(&id, &None, false))
    }

    pub(super) fn update_user(&mut self, key: &str, req: &Req) -> Resp {
        let Some(id) = self.user_id(key) else { return Resp::not_found(key) };
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        if b.get("displayName").is_some_and(Value::is_null) {
            return Resp::bad("displayName cannot be cleared (§2.1).");
        }
        if let Some(refusal) = self.refuse_user_change(&id, b.keys()) {
            return refusal;
        }
        let mut props = b.clone();
        props.remove("passwordProfile");
        self.put_user_props(&id, &props);
        self.audit("Update user", "UserManagement", &id, Tenant::app_actor());
        Resp::no_content()
    }

    /// Soft delete: the user moves to deletedItems, restorable for 30 days (documented §2.1).
    pub(super) fn delete_user(&mut self, key: &str) -> Resp {
        let Some(id) = self.user_id(key) else { return Resp::not_found(key) };
        if self.is_synced_user(&id) {
            return super::hybrid::on_premises_mastered();
        }
        self.audit("Delete user", "UserManagement", &id, Tenant::app_actor());
        self.soft_delete_user(&id);
        Resp::no_content()
    }

    /// `PUT /users/{id}/manager/$ref` (Graph user-post-manager; not on the sheet: assumed).
    pub(super) fn set_manager(&mut self, key: &str, req: &Req) -> Resp {
        let Some(id) = self.user_id(key) else { return Resp::not_found(key) };
        let Some(mid) = req.body.as_ref().and_then(|b| b["@odata.id"].as_str()).and_then(ref_id) else {
            return Resp::bad("@odata.id is required");
        };
        if !self.users.contains_key(&mid) {
            return Resp::not_found(&mid);
        }
        if let Some(refusal) = self.refuse_user_change(&id, ["manager".to_string()].iter()) {
            return refusal;
        }
        self.set_manager_of(&id, Some(&mid));
        self.audit("Update user", "UserManagement", &id, Tenant::app_actor());
        Resp::no_content()
    }
}
