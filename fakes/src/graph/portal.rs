//! Changes made outside keyward, as an administrator in the Entra admin center would make
//! them, and the controls of delta queries.
//!
//! A [`Portal`] change updates the tenant, is seen by the next delta query (it goes through the
//! same journal as the API), and writes a directory audit entry initiated by the
//! administrator's user, at this fake's clock ([`Graph::set_now`], else the system clock). No
//! HTTP request is made and none is counted. The activity names follow those of the directory
//! audit log (`Add member to group`, `Update user`, …; assumed, the catalogue of names is not on
//! the reference sheet).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::Graph;
use super::tenant::Tenant;

/// An administrator making changes in the portal. Made with [`Graph::portal`].
pub struct Portal<'g> {
    graph: &'g Graph,
    actor: String,
}

impl Graph {
    /// Changes made by `actor_upn` in the portal (see [`Portal`]).
    pub fn portal(&self, actor_upn: &str) -> Portal<'_> {
        Portal { graph: self, actor: actor_upn.to_string() }
    }

    /// A synchronization reset: every delta and skip token issued so far answers `410 Gone`
    /// with a `Location` header holding the initial query, as Graph does after maintenance
    /// of a tenant (documented).
    pub fn reset_sync(&self) {
        self.with(|t| t.delta.reset());
    }

    /// A fault, not a Graph behaviour: while `blind`, changes are not journalled, so no
    /// delta round reports them, while reads show them. For tests of what catches a feed that
    /// missed a change.
    pub fn set_delta_blind(&self, blind: bool) {
        self.with(|t| t.delta.blind = blind);
    }

    /// How long delta tokens last (seven days by default, as documented for directory objects),
    /// judged by this fake's clock ([`Graph::set_now`]).
    pub fn set_delta_token_lifetime(&self, lifetime: Duration) {
        self.with(|t| t.delta.lifetime = lifetime.as_secs());
    }

    /// Objects on a delta page, and member references on a page before a group continues on
    /// the next (100 and 500 by default: Graph documents neither).
    pub fn set_delta_page_size(&self, objects: usize, members: usize) {
        self.with(|t| {
            t.delta.page_size = objects.max(1);
            t.delta.members_page = members.max(1);
        });
    }

    /// Directory role eligibility schedules as stored (expired ones too).
    pub fn role_eligibilities(&self) -> Vec<Value> {
        self.with(|t| t.pim.roles.values().cloned().collect())
    }

    /// Group eligibility schedules as stored.
    pub fn group_eligibilities(&self) -> Vec<Value> {
        self.with(|t| t.pim.groups.values().cloned().collect())
    }

    /// A rule of the role management policy of a directory role (by template id), as stored.
    pub fn policy_rule(&self, role_template: &str, rule: &str) -> Option<Value> {
        self.with(|t| t.pim.policies.rule("/", role_template, rule))
    }

    /// A rule of the policy of a group's `member` or `owner` access, as stored.
    pub fn group_policy_rule(&self, group: &str, access: &str, rule: &str) -> Option<Value> {
        self.with(|t| {
            if t.groups.contains_key(group) {
                t.pim.policies.ensure_group(group);
            }
            t.pim.policies.rule(group, access, rule)
        })
    }

    /// Delta requests answered (`GET …/delta`, first pages and next pages alike).
    pub fn delta_requests(&self) -> usize {
        self.log().count("GET", |p| p.starts_with("/v1.0/") && p.ends_with("/delta"))
    }

    /// The clock this fake judges certificates and delta tokens by, as a Unix time.
    pub fn now(&self) -> u64 {
        self.with(|t| t.clock_secs())
    }
}

impl Portal<'_> {
    fn change<R>(&self, f: impl FnOnce(&mut Tenant, &dyn Fn(&mut Tenant, Change)) -> R) -> R {
        let actor_upn = self.actor.clone();
        self.graph.with(move |t| {
            let audit = move |t: &mut Tenant, c: Change| {
                let actor_id = t.user_id(&actor_upn).unwrap_or_else(|| "portal-administrator".to_string());
                let actor = json!({"user": {"id": actor_id, "displayName": actor_upn, "userPrincipalName": actor_upn,
                    "ipAddress": "192.0.2.10"}, "app": null});
                let when = t.clock();
                t.audit_at(c.activity, c.category, &c.target, actor, when, c.modified);
            };
            f(t, &audit)
        })
    }

    /// Creates a cloud user; returns its id.
    pub fn create_user(&self, upn: &str, display_name: &str) -> String {
        self.change(|t, audit| {
            let id = t.new_id(1);
            let nick = upn.split('@').next().unwrap_or(upn);
            let created = t.clock();
            t.insert_user(
                &id,
                json!({"id": id, "userPrincipalName": upn, "displayName": display_name, "mailNickname": nick,
                    "accountEnabled": true, "createdDateTime": created}),
            );
            audit(t, Change::new("Add user", "UserManagement", &id));
            id
        })
    }

    /// Sets properties of a user (a JSON object), as the portal's edit form does.
    pub fn update_user(&self, id: &str, props: Value) {
        self.change(|t, audit| {
            let Some(props) = props.as_object() else { return };
            let Some(before) = t.users.get(id).cloned() else { return };
            t.put_user_props(id, props);
            let modified = props
                .iter()
                .filter(|(k, v)| before.get(k.as_str()) != Some(*v))
                .map(|(k, v)| {
                    json!({"displayName": k, "oldValue": json!([before[k.as_str()]]).to_string(),
                    "newValue": json!([v]).to_string()})
                })
                .collect();
            audit(t, Change::new("Update user", "UserManagement", id).modified(modified));
        })
    }

    /// Blocks or unblocks sign-in (`accountEnabled`).
    pub fn set_account_enabled(&self, id: &str, enabled: bool) {
        self.update_user(id, json!({"accountEnabled": enabled}));
    }

    /// Sets or clears a user's manager.
    pub fn set_manager(&self, id: &str, manager: Option<&str>) {
        self.change(|t, audit| {
            if !t.users.contains_key(id) || manager.is_some_and(|m| !t.users.contains_key(m)) {
                return;
            }
            let old = t.managers.get(id).cloned();
            t.set_manager_of(id, manager);
            let modified = vec![json!({"displayName": "Manager", "oldValue": json!([old]).to_string(),
                "newValue": json!([manager]).to_string()})];
            audit(t, Change::new("Update user", "UserManagement", id).modified(modified));
        })
    }

    /// Deletes a user (soft: it can be restored for 30 days).
    pub fn delete_user(&self, id: &str) {
        self.change(|t, audit| {
            if t.users.contains_key(id) {
                audit(t, Change::new("Delete user", "UserManagement", id));
                t.soft_delete_user(id);
            }
        })
    }

    /// Restores a soft-deleted user.
    pub fn restore_user(&self, id: &str) {
        self.change(|t, audit| {
            if t.restore_user(id).is_some() {
                audit(t, Change::new("Restore user", "UserManagement", id));
            }
        })
    }

    /// Deletes a soft-deleted user for good.
    pub fn purge_user(&self, id: &str) {
        self.change(|t, audit| {
            if t.purge_user(id) {
                audit(t, Change::new("Hard Delete user", "UserManagement", id));
            }
        })
    }

    /// Creates a security group; returns its id.
    pub fn create_group(&self, name: &str) -> String {
        self.change(|t, audit| {
            let id = t.new_id(2);
            let body = json!({"id": id, "displayName": name, "mailNickname": name, "mailEnabled": false,
                "securityEnabled": true, "groupTypes": []});
            t.insert_group(&id, body, BTreeSet::new());
            audit(t, Change::new("Add group", "GroupManagement", &id));
            id
        })
    }

    /// Sets properties of a group (a JSON object).
    pub fn update_group(&self, id: &str, props: Value) {
        self.change(|t, audit| {
            let Some(props) = props.as_object() else { return };
            if !t.groups.contains_key(id) {
                return;
            }
            t.put_group_props(id, props);
            audit(t, Change::new("Update group", "GroupManagement", id));
        })
    }

    /// Deletes a group (a security group for good, a Microsoft 365 group restorably).
    pub fn delete_group(&self, id: &str) {
        self.change(|t, audit| {
            if t.groups.contains_key(id) {
                audit(t, Change::new("Delete group", "GroupManagement", id));
                t.remove_group(id);
            }
        })
    }

    /// Adds a member to a group (whatever kind of group: the portal is not the API).
    pub fn add_member(&self, group: &str, member: &str) {
        self.change(|t, audit| {
            if t.object_type(member).is_some() && t.add_group_member(group, member) {
                audit(t, Change::new("Add member to group", "GroupManagement", member).group(group));
            }
        })
    }

    /// Removes a member from a group.
    pub fn remove_member(&self, group: &str, member: &str) {
        self.change(|t, audit| {
            if t.remove_group_member(group, member) {
                audit(t, Change::new("Remove member from group", "GroupManagement", member).group(group));
            }
        })
    }

    /// Assigns a directory role (by display name) at tenant scope; returns the assignment id.
    pub fn assign_role(&self, role: &str, principal: &str) -> Option<String> {
        self.change(|t, audit| {
            let def = t.role_definitions.values().find(|d| d["displayName"] == role)?["id"].as_str()?.to_string();
            t.object_type(principal)?;
            let id = t.new_id(3);
            t.insert_role_assignment(
                &id,
                json!({"id": id, "roleDefinitionId": def, "principalId": principal, "directoryScopeId": "/"}),
            );
            audit(t, Change::new("Add member to role", "RoleManagement", principal).role(role));
            Some(id)
        })
    }

    /// Removes a role assignment.
    pub fn remove_role_assignment(&self, assignment: &str) {
        self.change(|t, audit| {
            if let Some(a) = t.remove_role_assignment(assignment) {
                let principal = a["principalId"].as_str().unwrap_or_default().to_string();
                audit(t, Change::new("Remove member from role", "RoleManagement", &principal));
            }
        })
    }
}

impl Portal<'_> {
    /// Makes a principal eligible for a directory role (by display name) at tenant scope, until
    /// `end` (an ISO date-time) or for good; returns the schedule id. No policy applies to the
    /// portal here: it stands for any change made outside keyward.
    pub fn make_role_eligible(&self, role: &str, principal: &str, end: Option<&str>) -> Option<String> {
        self.change(|t, audit| {
            let def = t.role_definitions.values().find(|d| d["displayName"] == role)?["id"].as_str()?.to_string();
            t.object_type(principal)?;
            t.next += 1;
            let id = format!("e3000000-0000-4000-8000-{:012x}", t.next);
            let now = t.clock();
            let expiration = match end {
                Some(e) => json!({"type": "afterDateTime", "endDateTime": e, "duration": null}),
                None => json!({"type": "noExpiration", "endDateTime": null, "duration": null}),
            };
            t.pim.roles.insert(
                id.clone(),
                json!({"id": id, "principalId": principal, "roleDefinitionId": def, "directoryScopeId": "/",
                    "appScopeId": null, "createdUsing": id, "createdDateTime": now, "modifiedDateTime": now,
                    "status": "Provisioned", "memberType": "Direct",
                    "scheduleInfo": {"startDateTime": now, "recurrence": null, "expiration": expiration}}),
            );
            let activity = if end.is_some() {
                "Add eligible member to role in PIM completed (timebound)"
            } else {
                "Add eligible member to role in PIM completed (permanent)"
            };
            audit(t, Change::new(activity, "RoleManagement", principal).role(role));
            Some(id)
        })
    }

    /// Ends a role eligibility schedule.
    pub fn remove_role_eligibility(&self, schedule: &str) {
        self.change(|t, audit| {
            if let Some(s) = t.pim.roles.remove(schedule) {
                let p = s["principalId"].as_str().unwrap_or_default().to_string();
                audit(t, Change::new("Remove eligible member from role in PIM completed", "RoleManagement", &p));
            }
        })
    }

    /// Changes a rule of a directory role's policy (by role template id): the fields of `patch`
    /// replace the rule's.
    pub fn update_policy_rule(&self, role_template: &str, rule: &str, patch: Value) {
        self.change(|t, audit| {
            let Some(policy) = t.pim.policies.policy_of("/", role_template).map(|p| p["id"].clone()) else { return };
            let id = policy.as_str().unwrap_or_default().to_string();
            let Some(p) = t.pim.policies.policies.get_mut(&id) else { return };
            let Some(r) = p["rules"].as_array_mut().and_then(|rs| rs.iter_mut().find(|r| r["id"] == rule)) else {
                return;
            };
            for (k, v) in patch.as_object().into_iter().flatten() {
                r[k.as_str()] = v.clone();
            }
            audit(t, Change::new("Update role setting in PIM", "RoleManagement", &id));
        })
    }
}

/// An audit entry to write.
struct Change {
    activity: &'static str,
    category: &'static str,
    target: String,
    modified: Vec<Value>,
}

impl Change {
    fn new(activity: &'static str, category: &'static str, target: &str) -> Change {
        Change { activity, category, target: target.to_string(), modified: vec![] }
    }
    fn modified(mut self, m: Vec<Value>) -> Change {
        self.modified = m;
        self
    }
    /// Names the group in the modified properties (as `Group.ObjectID`).
    fn group(mut self, group: &str) -> Change {
        self.modified.push(json!({"displayName": "Group.ObjectID", "oldValue": null,
            "newValue": Value::String(format!("\"{group}\""))}));
        self
    }
    /// Names the role in the modified properties (as `Role.DisplayName`).
    fn role(mut self, role: &str) -> Change {
        self.modified.push(json!({"displayName": "Role.DisplayName", "oldValue": null,
            "newValue": Value::String(format!("\"{role}\""))}));
        self
    }
}
