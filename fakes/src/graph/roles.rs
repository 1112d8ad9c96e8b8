//! Directory role assignments (§2.3).

use serde_json::json;

use super::http::{Req, Resp};
use super::tenant::Tenant;

impl Tenant {
    /// Unified role assignment at a scope; `roleDefinitionId` may be the template id
    /// (documented §2.3).
    pub(super) fn assign_role(&mut self, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref() else { return Resp::bad("a body is required") };
        let (Some(def), Some(principal)) = (b["roleDefinitionId"].as_str(), b["principalId"].as_str()) else {
            return Resp::bad("roleDefinitionId and principalId are required");
        };
        if b["directoryScopeId"].as_str().is_none() && b["appScopeId"].as_str().is_none() {
            return Resp::bad("Either directoryScopeId or appScopeId is required.");
        }
        let def_known = self
            .role_definitions
            .values()
            .any(|d| d["id"].as_str() == Some(def) || d["templateId"].as_str() == Some(def));
        if !def_known {
            return Resp::not_found(def);
        }
        if self.object_type(principal).is_none() {
            return Resp::not_found(principal);
        }
        let scope = b["directoryScopeId"].clone();
        if self.role_assignments.values().any(|a| {
            a["roleDefinitionId"].as_str() == Some(def)
                && a["principalId"].as_str() == Some(principal)
                && a["directoryScopeId"] == scope
        }) {
            return Resp::error(
                400,
                "Request_BadRequest",
                "A conflicting object with one or more of the specified property values is present in the directory.",
            );
        }
        let id = self.new_id(3);
        let a = json!({"id": id, "roleDefinitionId": def, "principalId": principal, "directoryScopeId": scope});
        self.insert_role_assignment(&id, a.clone());
        self.audit("Add member to role", "RoleManagement", principal, Tenant::app_actor());
        Resp::created(a)
    }
}
