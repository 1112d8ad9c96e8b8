//! Applications, their owners, service principals and app role assignments (§2.4, §2.5).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::http::{Req, Resp, now_iso, page, ref_id, select};
use super::tenant::Tenant;
use super::{DEFAULT_PAGE, MAX_PAGE};

impl Tenant {
    pub(super) fn create_service_principal(&mut self, req: &Req) -> Resp {
        let Some(app_id) = req.body.as_ref().and_then(|b| b["appId"].as_str()).map(str::to_string) else {
            return Resp::bad("appId is required");
        };
        let Some(app) = self.applications.values().find(|a| a["appId"].as_str() == Some(&app_id)).cloned() else {
            return Resp::not_found(&app_id);
        };
        if self.service_principals.values().any(|s| s["appId"].as_str() == Some(&app_id)) {
            return Resp::error(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                "The service principal already exists.",
            );
        }
        let id = self.new_id(4);
        let sp = json!({"id": id, "appId": app_id, "displayName": app["displayName"], "appRoles": app["appRoles"].clone(),
            "servicePrincipalType": "Application"});
        self.service_principals.insert(id.clone(), sp.clone());
        self.audit("Add service principal", "ApplicationManagement", &id, Tenant::app_actor());
        self.created(&id);
        Resp::created(sp)
    }

    /// `POST /servicePrincipals/{resource}/appRoleAssignedTo` (documented §2.4).
    pub(super) fn assign_app_role(&mut self, sp: &str, req: &Req) -> Resp {
        let Some(res) = self.service_principals.get(sp).cloned() else { return Resp::not_found(sp) };
        let Some(b) = req.body.as_ref() else { return Resp::bad("a body is required") };
        let (Some(principal), Some(role)) = (b["principalId"].as_str(), b["appRoleId"].as_str()) else {
            return Resp::bad("principalId and appRoleId are required");
        };
        if b["resourceId"].as_str() != Some(sp) {
            return Resp::bad("resourceId must be the service principal of the path");
        }
        let known = res["appRoles"].as_array().is_some_and(|rs| rs.iter().any(|r| r["id"].as_str() == Some(role)));
        if !known {
            return Resp::bad("Permission being assigned was not found on application");
        }
        let Some(kind) = self.object_type(principal) else { return Resp::not_found(principal) };
        if self.app_role_assignments.values().any(|a| {
            a["principalId"].as_str() == Some(principal)
                && a["appRoleId"].as_str() == Some(role)
                && a["resourceId"].as_str() == Some(sp)
        }) {
            return Resp::bad("Permission being assigned already exists on the object");
        }
        let id = self.new_id(5);
        let a = json!({"id": id, "appRoleId": role, "createdDateTime": now_iso(),
            "principalDisplayName": self.display_name(principal), "principalId": principal,
            "principalType": kind.trim_start_matches("#microsoft.graph.").replace("servicePrincipal", "ServicePrincipal").replace("user", "User").replace("group", "Group"),
            "resourceDisplayName": res["displayName"], "resourceId": sp, "deletedDateTime": null});
        self.app_role_assignments.insert(id, a.clone());
        self.audit("Add app role assignment grant to user", "ApplicationManagement", principal, Tenant::app_actor());
        Resp::created(a)
    }

    pub(super) fn list_applications(&mut self, req: &Req) -> Resp {
        // `$expand=owners($select=id)` (assumed supported on the list).
        let expand = req.query.get("$expand").is_some_and(|e| e.starts_with("owners"));
        let all: Vec<Value> = self
            .applications
            .values()
            .map(|a| {
                let mut a = hide_keys(a.clone());
                if expand {
                    let owners = self.owners.get(a["id"].as_str().unwrap_or_default()).cloned().unwrap_or_default();
                    a["owners"] =
                        owners.iter().map(|o| json!({"@odata.type": "#microsoft.graph.user", "id": o})).collect();
                }
                a
            })
            .collect();
        page(req, all, DEFAULT_PAGE, MAX_PAGE)
    }

    pub(super) fn create_application(&mut self, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        if !b.contains_key("displayName") {
            return Resp::bad("Property 'displayName' is required.");
        }
        let id = self.new_id(6);
        self.next += 1;
        let app_id = format!("a0000000-0000-4000-8000-{:012x}", self.next);
        let mut a = Map::new();
        a.insert("id".into(), json!(id));
        a.insert("appId".into(), json!(app_id));
        a.insert("appRoles".into(), json!([]));
        a.insert("passwordCredentials".into(), json!([]));
        a.insert("keyCredentials".into(), json!([]));
        for (k, v) in b {
            if k != "owners@odata.bind" {
                a.insert(k.clone(), v.clone());
            }
        }
        if let Some(list) = b.get("owners@odata.bind").and_then(Value::as_array) {
            let ids: BTreeSet<String> = list.iter().filter_map(|r| r.as_str().and_then(ref_id)).collect();
            self.owners.insert(id.clone(), ids);
        }
        self.applications.insert(id.clone(), Value::Object(a.clone()));
        self.audit("Add application", "ApplicationManagement", &id, Tenant::app_actor());
        self.created(&id);
        Resp::created(Value::Object(a))
    }

    pub(super) fn patch_application(&mut self, id: &str, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref().and_then(Value::as_object).cloned() else {
            return Resp::bad("a body is required");
        };
        if b.contains_key("passwordCredentials") {
            // Documented §2.5: PATCH on passwordCredentials is not supported.
            return Resp::bad("Property 'passwordCredentials' cannot be updated; use addPassword and removePassword.");
        }
        if let Some(keys) = b.get("keyCredentials") {
            match self.checked_keys(keys) {
                Ok(keys) => {
                    let Some(a) = self.applications.get_mut(id) else { return Resp::not_found(id) };
                    a["keyCredentials"] = Value::Array(keys);
                    self.key_patches += 1;
                }
                Err(r) => return r,
            }
        }
        let Some(a) = self.applications.get_mut(id) else { return Resp::not_found(id) };
        for (k, v) in b {
            if k != "id" && k != "appId" && k != "keyCredentials" {
                a[k.as_str()] = v;
            }
        }
        self.audit("Update application", "ApplicationManagement", id, Tenant::app_actor());
        Resp::no_content()
    }

    pub(super) fn add_owner(&mut self, id: &str, req: &Req) -> Resp {
        if !self.applications.contains_key(id) {
            return Resp::not_found(id);
        }
        let Some(o) = req.body.as_ref().and_then(|b| b["@odata.id"].as_str()).and_then(ref_id) else {
            return Resp::bad("@odata.id is required");
        };
        if self.object_type(&o).is_none() {
            return Resp::not_found(&o);
        }
        if !self.owners.entry(id.to_string()).or_default().insert(o) {
            return Resp::bad(
                "One or more added object references already exist for the following modified properties: 'owners'.",
            );
        }
        Resp::no_content()
    }

    /// `GET /applications/{id}`: the single object, where `key` of key credentials is returned
    /// when `keyCredentials` is selected (documented §2.5).
    pub(super) fn get_application(&mut self, id: &str, req: &Req) -> Resp {
        let Some(a) = self.applications.get(id) else { return Resp::not_found(id) };
        match select(req) {
            Some(fields) => {
                let mut out = Map::new();
                out.insert("id".into(), a["id"].clone());
                for f in &fields {
                    if let Some(v) = a.get(f.as_str()) {
                        out.insert(f.clone(), v.clone());
                    }
                }
                let out = Value::Object(out);
                Resp::ok(if fields.iter().any(|f| f == "keyCredentials") { out } else { hide_keys(out) })
            }
            None => Resp::ok(hide_keys(a.clone())),
        }
    }
}

/// An application with the `key` of its key credentials left out (documented §2.5: returned
/// only with `$select=keyCredentials` on a single object).
pub(super) fn hide_keys(mut a: Value) -> Value {
    for k in a.get_mut("keyCredentials").and_then(Value::as_array_mut).into_iter().flatten() {
        k["key"] = Value::Null;
    }
    a
}
