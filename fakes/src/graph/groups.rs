//! Groups and their members (§2.2).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::http::{Req, Resp, page, page_with, ref_id};
use super::tenant::Tenant;
use super::{BATCH_LIMIT, DEFAULT_PAGE, MAX_PAGE};

impl Tenant {
    pub(super) fn list_groups(&mut self, req: &Req) -> Resp {
        let all: Vec<Value> = self.groups.values().map(|g| g.body.clone()).collect();
        page(req, all, DEFAULT_PAGE, MAX_PAGE)
    }

    pub(super) fn create_group(&mut self, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        for f in ["displayName", "mailEnabled", "mailNickname", "securityEnabled"] {
            if !b.contains_key(f) {
                return Resp::bad(&format!("Property '{f}' is required."));
            }
        }
        if let Some(refusal) = self.refuse_new_group(b) {
            return refusal;
        }
        let id = self.new_id(2);
        let mut g = Map::new();
        g.insert("id".into(), json!(id));
        for (k, v) in b {
            if !k.ends_with("@odata.bind") {
                g.insert(k.clone(), v.clone());
            }
        }
        self.insert_group(&id, Value::Object(g.clone()), BTreeSet::new());
        self.audit("Add group", "GroupManagement", &id, Tenant::app_actor());
        self.created(&id);
        Resp::created(Value::Object(g))
    }

    /// `members@odata.bind`: at most 20, all or nothing (documented §2.2).
    pub(super) fn patch_group(&mut self, gid: &str, req: &Req) -> Resp {
        if !self.groups.contains_key(gid) {
            return Resp::not_found(gid);
        }
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        if let Some(refusal) = self.refuse_group_change(gid, b) {
            return refusal;
        }
        let mut add = Vec::new();
        if let Some(binds) = b.get("members@odata.bind") {
            if let Some(refusal) = self.refuse_member_change(gid) {
                return refusal;
            }
            let Some(list) = binds.as_array() else { return Resp::bad("members@odata.bind must be an array") };
            if list.len() > BATCH_LIMIT {
                return Resp::bad("A maximum of 20 members can be added in a single request.");
            }
            for r in list {
                let Some(id) = r.as_str().and_then(ref_id) else { return Resp::bad("Invalid object identifier.") };
                if self.object_type(&id).is_none() {
                    return Resp::not_found(&id);
                }
                if self.groups[gid].members.contains(&id) {
                    return Resp::bad(
                        "One or more added object references already exist for the following modified properties: 'members'.",
                    );
                }
                add.push(id);
            }
        }
        self.put_group_props(gid, b);
        for id in &add {
            self.add_group_member(gid, id);
        }
        for id in add {
            self.audit("Add member to group", "GroupManagement", &id, Tenant::app_actor());
        }
        Resp::no_content()
    }

    pub(super) fn list_members(&mut self, gid: &str, req: &Req) -> Resp {
        let Some(g) = self.groups.get(gid) else { return Resp::not_found(gid) };
        let ids: Vec<&String> = g.members.iter().collect();
        page_with(req, ids.len(), DEFAULT_PAGE, MAX_PAGE, |range| {
            ids[range]
                .iter()
                .map(|id| json!({"@odata.type": self.object_type(id).unwrap_or("#microsoft.graph.directoryObject"), "id": id}))
                .collect()
        })
    }

    /// `POST /groups/{id}/members/$ref`: 204; 400 if already a member; 404 if the object does not
    /// exist (documented §2.2).
    pub(super) fn add_member(&mut self, gid: &str, req: &Req) -> Resp {
        if !self.groups.contains_key(gid) {
            return Resp::not_found(gid);
        }
        let Some(id) = req.body.as_ref().and_then(|b| b["@odata.id"].as_str()).and_then(ref_id) else {
            return Resp::bad("@odata.id is required");
        };
        if self.object_type(&id).is_none() {
            return Resp::not_found(&id);
        }
        if let Some(refusal) = self.refuse_member_change(gid) {
            return refusal;
        }
        if !self.add_group_member(gid, &id) {
            return Resp::bad(
                "One or more added object references already exist for the following modified properties: 'members'.",
            );
        }
        self.audit("Add member to group", "GroupManagement", &id, Tenant::app_actor());
        Resp::no_content()
    }

    pub(super) fn remove_member(&mut self, gid: &str, member: &str) -> Resp {
        if !self.groups.contains_key(gid) {
            return Resp::not_found(gid);
        }
        if let Some(refusal) = self.refuse_member_change(gid) {
            return refusal;
        }
        if !self.remove_group_member(gid, member) {
            return Resp::not_found(member);
        }
        self.audit("Remove member from group", "GroupManagement", member, Tenant::app_actor());
        Resp::no_content()
    }

    /// `GET /users/{id}/memberOf` (documented: the groups, directory roles and administrative
    /// units the user is a direct member of, as directory objects with `@odata.type`; paged).
    /// Directory roles are the activated roles holding a tenant-wide assignment of the user.
    /// `$select` is not applied: each object comes with its type, id and displayName (assumed
    /// enough for a client that reads only ids).
    pub(super) fn member_of(&self, id: &str, req: &Req) -> Resp {
        let Some(uid) = self.user_id(id) else { return Resp::not_found(id) };
        let mut all: Vec<Value> = self
            .groups
            .iter()
            .filter(|(_, g)| g.members.contains(&uid))
            .map(|(gid, g)| json!({"@odata.type": "#microsoft.graph.group", "id": gid, "displayName": g.body["displayName"]}))
            .collect();
        for r in self.role_definitions.keys().filter_map(|d| self.directory_role_id(d)).collect::<BTreeSet<_>>() {
            if self.directory_role_members(&r).contains(&uid)
                && let Some(mut role) = self.directory_role(&r)
            {
                role["@odata.type"] = json!("#microsoft.graph.directoryRole");
                all.push(role);
            }
        }
        page(req, all, DEFAULT_PAGE, MAX_PAGE)
    }
}
