//! Changes of state shared by the API, the seeding helpers and the portal helpers. Each one
//! updates the tenant and writes the change to the delta journal ([`super::delta`]), so that
//! whoever made a change, the next delta query sees it.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::delta::{Coll, Event};
use super::http::now_iso;
use super::tenant::{GroupObj, Tenant};

/// The `@odata.type` of a user, the type every manager has.
const USER_TYPE: &str = "#microsoft.graph.user";

impl Tenant {
    /// Adds a user object (with its `id`).
    pub(super) fn insert_user(&mut self, id: &str, user: Value) {
        let names: BTreeSet<String> = user.as_object().map(|u| u.keys().cloned().collect()).unwrap_or_default();
        self.users.insert(id.to_string(), user);
        self.record(Coll::Users, id, Event::Props { names, created: true });
    }

    /// Sets properties of a user (`null` is stored as `null`); records those whose value changed.
    pub(super) fn put_user_props(&mut self, id: &str, props: &Map<String, Value>) {
        let Some(u) = self.users.get_mut(id).and_then(Value::as_object_mut) else { return };
        let mut changed = BTreeSet::new();
        for (k, v) in props {
            if k == "id" {
                continue;
            }
            let old = u.get(k).cloned().unwrap_or(Value::Null);
            // Sign-in activity is kept outside the directory object and not tracked.
            if &old != v && k != "signInActivity" {
                changed.insert(k.clone());
            }
            u.insert(k.clone(), v.clone());
        }
        if !changed.is_empty() {
            self.record(Coll::Users, id, Event::Props { names: changed, created: false });
        }
    }

    /// Soft delete: the user moves to deleted items. Its group memberships are kept aside (a
    /// soft-deleted user keeps its memberships and does not appear in a group's
    /// `members@delta` until it is deleted for good: documented, delta-query-groups); its role
    /// assignments, app role assignments and manager go (as this fake has always done).
    pub(super) fn soft_delete_user(&mut self, id: &str) {
        let Some(mut u) = self.users.remove(id) else { return };
        u["deletedDateTime"] = json!(now_iso());
        self.deleted.insert(id.to_string(), u);
        let mut kept = BTreeSet::new();
        for (gid, g) in self.groups.iter_mut() {
            if g.members.remove(id) {
                kept.insert(gid.clone());
            }
        }
        self.suspended.insert(id.to_string(), kept);
        let roles: Vec<String> = self
            .role_assignments
            .iter()
            .filter(|(_, a)| a["principalId"].as_str() == Some(id))
            .map(|(aid, _)| aid.clone())
            .collect();
        for aid in roles {
            self.remove_role_assignment(&aid);
        }
        self.app_role_assignments.retain(|_, a| a["principalId"].as_str() != Some(id));
        self.set_manager_of(id, None);
        self.record(Coll::Users, id, Event::Removed { reason: "changed" });
    }

    /// Restores a soft-deleted user with the group memberships it kept; returns it.
    pub(super) fn restore_user(&mut self, id: &str) -> Option<Value> {
        let mut u = self.deleted.remove(id)?;
        if let Some(o) = u.as_object_mut() {
            o.remove("deletedDateTime");
        }
        self.insert_user(id, u.clone());
        for gid in self.suspended.remove(id).unwrap_or_default() {
            if let Some(g) = self.groups.get_mut(&gid) {
                g.members.insert(id.to_string());
            }
        }
        Some(u)
    }

    /// Permanent deletion of a soft-deleted user: its kept memberships end, and each group's
    /// `members@delta` reports the removal.
    pub(super) fn purge_user(&mut self, id: &str) -> bool {
        if self.deleted.remove(id).is_none() {
            return false;
        }
        for gid in self.suspended.remove(id).unwrap_or_default() {
            self.record(Coll::Groups, &gid, Event::Member { member: id.to_string(), kind: USER_TYPE, added: false });
        }
        self.record(Coll::Users, id, Event::Removed { reason: "deleted" });
        true
    }

    /// Sets or clears a user's manager, recorded as `manager@delta` on the user.
    pub(super) fn set_manager_of(&mut self, id: &str, manager: Option<&str>) {
        let old = match manager {
            Some(m) => self.managers.insert(id.to_string(), m.to_string()),
            None => self.managers.remove(id),
        };
        if old.as_deref() == manager {
            return;
        }
        if let Some(old) = old {
            self.record(Coll::Users, id, Event::Member { member: old, kind: USER_TYPE, added: false });
        }
        if let Some(m) = manager {
            self.record(Coll::Users, id, Event::Member { member: m.to_string(), kind: USER_TYPE, added: true });
        }
    }

    /// Adds a group object (with its `id`) and its first members.
    pub(super) fn insert_group(&mut self, id: &str, body: Value, members: BTreeSet<String>) {
        let names: BTreeSet<String> = body.as_object().map(|b| b.keys().cloned().collect()).unwrap_or_default();
        self.groups.insert(id.to_string(), GroupObj { body, members: BTreeSet::new() });
        self.record(Coll::Groups, id, Event::Props { names, created: true });
        for m in members {
            self.add_group_member(id, &m);
        }
    }

    /// Sets properties of a group; records those whose value changed.
    pub(super) fn put_group_props(&mut self, id: &str, props: &Map<String, Value>) {
        let Some(g) = self.groups.get_mut(id) else { return };
        let mut changed = BTreeSet::new();
        for (k, v) in props {
            if k == "id" || k.ends_with("@odata.bind") {
                continue;
            }
            if g.body.get(k) != Some(v) {
                changed.insert(k.clone());
            }
            g.body[k.as_str()] = v.clone();
        }
        if !changed.is_empty() {
            self.record(Coll::Groups, id, Event::Props { names: changed, created: false });
        }
    }

    /// Deletes a group. A Microsoft 365 group (`groupTypes` has `Unified`) is restorable, a
    /// security group is deleted for good (documented, delta-query-groups: `changed` and
    /// `deleted`). This fake keeps no deleted groups.
    pub(super) fn remove_group(&mut self, id: &str) -> bool {
        let Some(g) = self.groups.remove(id) else { return false };
        let unified = g.body["groupTypes"].as_array().is_some_and(|t| t.iter().any(|x| x == "Unified"));
        for other in self.groups.values_mut() {
            other.members.remove(id);
        }
        self.record(Coll::Groups, id, Event::Removed { reason: if unified { "changed" } else { "deleted" } });
        true
    }

    /// Adds a member; false when it was one already.
    pub(super) fn add_group_member(&mut self, gid: &str, member: &str) -> bool {
        let kind = self.object_type(member).unwrap_or("#microsoft.graph.directoryObject");
        let Some(g) = self.groups.get_mut(gid) else { return false };
        if !g.members.insert(member.to_string()) {
            return false;
        }
        self.record(Coll::Groups, gid, Event::Member { member: member.to_string(), kind, added: true });
        true
    }

    /// Removes a member; false when it was not one.
    pub(super) fn remove_group_member(&mut self, gid: &str, member: &str) -> bool {
        let kind = self.object_type(member).unwrap_or("#microsoft.graph.directoryObject");
        let Some(g) = self.groups.get_mut(gid) else { return false };
        if !g.members.remove(member) {
            return false;
        }
        self.record(Coll::Groups, gid, Event::Member { member: member.to_string(), kind, added: false });
        true
    }

    /// Stores a role assignment. One at tenant scope makes its principal a member of the
    /// directory role (`/directoryRoles/delta`).
    pub(super) fn insert_role_assignment(&mut self, id: &str, assignment: Value) {
        let tenant_wide = assignment["directoryScopeId"] == "/";
        let def = assignment["roleDefinitionId"].as_str().unwrap_or_default().to_string();
        let principal = assignment["principalId"].as_str().unwrap_or_default().to_string();
        self.role_assignments.insert(id.to_string(), assignment);
        if tenant_wide && !self.other_tenant_wide(id, &def, &principal) {
            self.record_role_member(&def, &principal, true);
        }
    }

    /// Removes a role assignment; returns it.
    pub(super) fn remove_role_assignment(&mut self, id: &str) -> Option<Value> {
        let a = self.role_assignments.remove(id)?;
        let def = a["roleDefinitionId"].as_str().unwrap_or_default().to_string();
        let principal = a["principalId"].as_str().unwrap_or_default().to_string();
        if a["directoryScopeId"] == "/" && !self.other_tenant_wide(id, &def, &principal) {
            self.record_role_member(&def, &principal, false);
        }
        Some(a)
    }

    /// Whether another tenant-wide assignment than `id` gives `principal` the role `def`.
    fn other_tenant_wide(&self, id: &str, def: &str, principal: &str) -> bool {
        self.role_assignments.iter().any(|(aid, a)| {
            aid != id
                && a["directoryScopeId"] == "/"
                && a["roleDefinitionId"].as_str() == Some(def)
                && a["principalId"].as_str() == Some(principal)
        })
    }

    fn record_role_member(&mut self, def: &str, principal: &str, added: bool) {
        let Some(role) = self.directory_role_id(def) else { return };
        let kind = self.object_type(principal).unwrap_or("#microsoft.graph.directoryObject");
        self.record(Coll::DirectoryRoles, &role, Event::Member { member: principal.to_string(), kind, added });
    }

    /// The id of the (activated) directory role of a role definition or template id; the
    /// directory role has an id of its own and names its template in `roleTemplateId`
    /// (documented, resources/directoryrole).
    pub(super) fn directory_role_id(&self, def: &str) -> Option<String> {
        let d = self.role_definitions.values().find(|d| d["id"] == def || d["templateId"] == def)?;
        let template = d["templateId"].as_str()?;
        Some(format!("0d{}", &template[2..]))
    }
}
