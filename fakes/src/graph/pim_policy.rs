//! Role management policies of Privileged Identity Management: one policy per directory role
//! (scope `/`, `DirectoryRole`) and per group and access (`member`, `owner`; scope the group,
//! `Group`), each with the 17 documented rules, and their assignments to roles. Facts and
//! sources in `docs/reference/graph.md` §3.
//!
//! Lists need `$filter=scopeId eq '…' and scopeType eq '…'` (documented); rules are updated one
//! at a time with `PATCH …/rules/{ruleId}`, whose body must name the rule's derived type in
//! `@odata.type` (documented), answering `204`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::http::{Req, Resp, now_iso};
use super::pim::{eq_filter, parse_duration};
use super::tenant::Tenant;

/// The tenant id the fake's policy ids carry.
const TENANT: &str = "c0ffee00-0000-4000-a000-000000000001";

const EXPIRATION: &str = "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule";
const ENABLEMENT: &str = "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule";
const APPROVAL: &str = "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule";
const AUTH_CONTEXT: &str = "#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule";
const NOTIFICATION: &str = "#microsoft.graph.unifiedRoleManagementPolicyNotificationRule";

/// What an enablement rule may require (documented values).
const ENABLEMENT_VALUES: [&str; 3] = ["MultiFactorAuthentication", "Justification", "Ticketing"];
/// The longest activation the fake accepts: 24 hours (the portal's bound; [UNVERIFIED] in Graph).
const MAX_ACTIVATION_SECS: u64 = 24 * 3600;

fn target(caller: &str, level: &str) -> Value {
    json!({"caller": caller, "operations": ["all"], "level": level, "inheritableSettings": [],
        "enforcedSettings": []})
}

/// The 17 rules with the defaults of the documented example.
fn default_rules() -> Vec<Value> {
    let mut rules = vec![
        json!({"@odata.type": EXPIRATION, "id": "Expiration_Admin_Eligibility", "isExpirationRequired": false,
            "maximumDuration": "P365D", "target": target("Admin", "Eligibility")}),
        json!({"@odata.type": ENABLEMENT, "id": "Enablement_Admin_Eligibility", "enabledRules": [],
            "target": target("Admin", "Eligibility")}),
        json!({"@odata.type": EXPIRATION, "id": "Expiration_Admin_Assignment", "isExpirationRequired": false,
            "maximumDuration": "P180D", "target": target("Admin", "Assignment")}),
        json!({"@odata.type": ENABLEMENT, "id": "Enablement_Admin_Assignment", "enabledRules": ["Justification"],
            "target": target("Admin", "Assignment")}),
        json!({"@odata.type": EXPIRATION, "id": "Expiration_EndUser_Assignment", "isExpirationRequired": true,
            "maximumDuration": "PT8H", "target": target("EndUser", "Assignment")}),
        json!({"@odata.type": ENABLEMENT, "id": "Enablement_EndUser_Assignment",
            "enabledRules": ["MultiFactorAuthentication", "Justification"], "target": target("EndUser", "Assignment")}),
        json!({"@odata.type": APPROVAL, "id": "Approval_EndUser_Assignment", "target": target("EndUser", "Assignment"),
            "setting": {"isApprovalRequired": false, "isApprovalRequiredForExtension": false,
                "isRequestorJustificationRequired": true, "approvalMode": "SingleStage",
                "approvalStages": [{"approvalStageTimeOutInDays": 1, "isApproverJustificationRequired": true,
                    "escalationTimeInMinutes": 0, "isEscalationEnabled": false, "primaryApprovers": [],
                    "escalationApprovers": []}]}}),
        json!({"@odata.type": AUTH_CONTEXT, "id": "AuthenticationContext_EndUser_Assignment", "isEnabled": false,
            "claimValue": "", "target": target("EndUser", "Assignment")}),
    ];
    for (level, caller) in
        [("Admin_Eligibility", "Admin"), ("Admin_Assignment", "Admin"), ("EndUser_Assignment", "EndUser")]
    {
        let lvl = level.rsplit('_').next().unwrap_or("Assignment");
        for recipient in ["Admin", "Requestor", "Approver"] {
            rules.push(json!({"@odata.type": NOTIFICATION, "id": format!("Notification_{recipient}_{level}"),
                "notificationType": "Email", "recipientType": recipient, "notificationLevel": "All",
                "isDefaultRecipientsEnabled": true, "notificationRecipients": [], "target": target(caller, lvl)}));
        }
    }
    rules
}

/// Policies, their rules, and their assignments.
#[derive(Debug, Default)]
pub(super) struct Policies {
    /// policy id → policy (with `rules`).
    pub(super) policies: BTreeMap<String, Value>,
    pub(super) assignments: Vec<Value>,
}

impl Policies {
    fn add(&mut self, scope_type: &str, scope_id: &str, role: &str, n: usize) {
        let guid = format!("{n:08x}-0000-4000-b000-{:012x}", role.len() * 7919 + n);
        let id = match scope_type {
            "Group" => format!("Group_{scope_id}_{guid}"),
            _ => format!("DirectoryRole_{TENANT}_{guid}"),
        };
        self.policies.insert(
            id.clone(),
            json!({"id": id, "displayName": scope_type, "description": scope_type, "isOrganizationDefault": false,
                "scopeId": scope_id, "scopeType": scope_type, "lastModifiedDateTime": null,
                "lastModifiedBy": {"displayName": null, "id": null}, "rules": default_rules()}),
        );
        self.assignments.push(json!({"id": format!("{id}_{role}"), "policyId": id, "scopeId": scope_id,
            "scopeType": scope_type, "roleDefinitionId": role}));
    }

    /// A policy for each built-in directory role.
    pub(super) fn for_roles(roles: &[&str]) -> Policies {
        let mut p = Policies::default();
        for (n, r) in roles.iter().enumerate() {
            p.add("DirectoryRole", "/", r, n + 1);
        }
        p
    }

    /// The policies of a group (member and owner), made when first needed.
    pub(super) fn ensure_group(&mut self, group: &str) {
        if self.assignments.iter().any(|a| a["scopeId"] == group) {
            return;
        }
        let n = self.assignments.len();
        self.add("Group", group, "member", n + 1);
        self.add("Group", group, "owner", n + 2);
    }

    /// The policy that applies to a role (scope `/`) or a group access.
    pub(super) fn policy_of(&self, scope_id: &str, role: &str) -> Option<&Value> {
        let a = self.assignments.iter().find(|a| a["scopeId"] == scope_id && a["roleDefinitionId"] == role)?;
        self.policies.get(a["policyId"].as_str()?)
    }

    /// A rule of the policy of a role or group access.
    pub(super) fn rule(&self, scope_id: &str, role: &str, rule: &str) -> Option<Value> {
        self.policy_of(scope_id, role)?["rules"].as_array()?.iter().find(|r| r["id"] == rule).cloned()
    }
}

fn without_rules(p: &Value) -> Value {
    let mut p = p.clone();
    p.as_object_mut().map(|o| o.remove("rules"));
    p
}

/// `scopeId` and `scopeType` from a required filter (`Directory` and `DirectoryRole` both name
/// the directory-role policies: documented for assignments).
fn scope(req: &Req, allowed: &[&str]) -> Result<(String, String, BTreeMap<String, String>), Resp> {
    let f = req
        .query
        .get("$filter")
        .ok_or_else(|| Resp::bad("This request requires $filter=scopeId eq '…' and scopeType eq '…'."))?;
    let clauses =
        eq_filter(f, allowed).ok_or_else(|| Resp::bad("Unsupported $filter for role management policies."))?;
    let (Some(id), Some(ty)) = (clauses.get("scopeId"), clauses.get("scopeType")) else {
        return Err(Resp::bad("This request requires $filter=scopeId eq '…' and scopeType eq '…'."));
    };
    let ty = if ty == "Directory" { "DirectoryRole".to_string() } else { ty.clone() };
    Ok((id.clone(), ty, clauses))
}

impl Tenant {
    pub(super) fn list_role_policies(&mut self, req: &Req) -> Resp {
        let (scope_id, scope_type, _) = match scope(req, &["scopeId", "scopeType"]) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if scope_type == "Group" && self.groups.contains_key(&scope_id) {
            self.pim.policies.ensure_group(&scope_id);
        }
        let expand = req.query.get("$expand").is_some_and(|e| e == "rules");
        let all: Vec<Value> = self
            .pim
            .policies
            .policies
            .values()
            .filter(|p| p["scopeId"] == scope_id.as_str() && p["scopeType"] == scope_type.as_str())
            .map(|p| if expand { p.clone() } else { without_rules(p) })
            .collect();
        Resp::ok(json!({"value": all}))
    }

    pub(super) fn get_role_policy(&mut self, id: &str, req: &Req) -> Resp {
        let Some(p) = self.pim.policies.policies.get(id) else { return Resp::not_found(id) };
        let expand = req.query.get("$expand").is_some_and(|e| e == "rules");
        Resp::ok(if expand { p.clone() } else { without_rules(p) })
    }

    pub(super) fn list_policy_rules(&mut self, id: &str) -> Resp {
        match self.pim.policies.policies.get(id) {
            Some(p) => Resp::ok(json!({"value": p["rules"]})),
            None => Resp::not_found(id),
        }
    }

    pub(super) fn get_policy_rule(&mut self, id: &str, rule: &str) -> Resp {
        let r =
            self.pim.policies.policies.get(id).and_then(|p| p["rules"].as_array()?.iter().find(|r| r["id"] == rule));
        match r {
            Some(r) => Resp::ok(r.clone()),
            None => Resp::not_found(rule),
        }
    }

    /// `PATCH /policies/roleManagementPolicies/{id}/rules/{ruleId}`.
    pub(super) fn update_policy_rule(&mut self, id: &str, rule_id: &str, req: &Req) -> Resp {
        let Some(body) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        let Some(current) = self
            .pim
            .policies
            .policies
            .get(id)
            .and_then(|p| p["rules"].as_array()?.iter().find(|r| r["id"] == rule_id).cloned())
        else {
            return Resp::not_found(rule_id);
        };
        if let Err(r) = check_rule(&current, body) {
            return r;
        }
        let policy = self.pim.policies.policies.get_mut(id).expect("found");
        let rule =
            policy["rules"].as_array_mut().expect("rules").iter_mut().find(|r| r["id"] == rule_id).expect("found");
        for (k, v) in body {
            if k != "id" && k != "@odata.type" {
                rule[k.as_str()] = v.clone();
            }
        }
        policy["lastModifiedDateTime"] = json!(now_iso());
        policy["lastModifiedBy"] = json!({"displayName": "keyward", "id": null});
        self.audit("Update role setting in PIM", "RoleManagement", id, Tenant::app_actor());
        Resp::no_content()
    }

    pub(super) fn list_policy_assignments(&mut self, req: &Req) -> Resp {
        let (scope_id, scope_type, clauses) = match scope(req, &["scopeId", "scopeType", "roleDefinitionId"]) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if scope_type == "Group" && self.groups.contains_key(&scope_id) {
            self.pim.policies.ensure_group(&scope_id);
        }
        let expand = req.query.get("$expand").map(String::as_str);
        let role = clauses.get("roleDefinitionId").cloned();
        let p = &self.pim.policies;
        let all: Vec<Value> = p
            .assignments
            .iter()
            .filter(|a| a["scopeId"] == scope_id.as_str() && a["scopeType"] == scope_type.as_str())
            .filter(|a| role.as_ref().is_none_or(|r| a["roleDefinitionId"] == r.as_str()))
            .map(|a| {
                let mut a = a.clone();
                let policy = a["policyId"].as_str().and_then(|id| p.policies.get(id));
                match (expand, policy) {
                    (Some("policy($expand=rules)"), Some(pol)) => a["policy"] = pol.clone(),
                    (Some("policy"), Some(pol)) => a["policy"] = without_rules(pol),
                    _ => {}
                }
                a
            })
            .collect();
        Resp::ok(json!({"value": all}))
    }
}

/// Checks a rule update against the rule it changes.
fn check_rule(current: &Value, body: &Map<String, Value>) -> Result<(), Resp> {
    let ty = current["@odata.type"].as_str().unwrap_or_default();
    let given = body.get("@odata.type").and_then(Value::as_str).map(|t| format!("#{}", t.trim_start_matches('#')));
    if given.as_deref() != Some(ty) {
        return Err(Resp::bad(&format!("The request body must name the rule's type in @odata.type ({ty}).")));
    }
    if body.get("id").is_some_and(|i| i != &current["id"]) {
        return Err(Resp::bad("The rule id in the body does not match the rule being updated."));
    }
    match ty {
        EXPIRATION => {
            let required = match body.get("isExpirationRequired") {
                None => current["isExpirationRequired"].as_bool().unwrap_or(false),
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(Resp::bad("isExpirationRequired must be a boolean.")),
            };
            let max = match body.get("maximumDuration") {
                None => current["maximumDuration"].as_str().and_then(parse_duration),
                Some(v) => Some(
                    v.as_str()
                        .and_then(parse_duration)
                        .ok_or_else(|| Resp::bad("maximumDuration must be an ISO 8601 duration."))?,
                ),
            };
            if current["id"] == "Expiration_EndUser_Assignment" {
                // Activation is always time-bound (documented), up to 24 hours ([UNVERIFIED]).
                if !required {
                    return Err(Resp::bad("An activation always expires: isExpirationRequired must be true."));
                }
                if max.is_none_or(|m| m == 0 || m > MAX_ACTIVATION_SECS) {
                    return Err(Resp::bad("The maximum activation duration must be between a minute and 24 hours."));
                }
            }
            if required && max.is_none_or(|m| m == 0) {
                return Err(Resp::bad("maximumDuration is required when isExpirationRequired is true."));
            }
        }
        ENABLEMENT => {
            if let Some(v) = body.get("enabledRules") {
                let ok = v
                    .as_array()
                    .is_some_and(|a| a.iter().all(|x| x.as_str().is_some_and(|x| ENABLEMENT_VALUES.contains(&x))));
                if !ok {
                    return Err(Resp::bad(
                        "enabledRules may hold only MultiFactorAuthentication, Justification and Ticketing.",
                    ));
                }
            }
        }
        APPROVAL => {
            if let Some(s) = body.get("setting") {
                let ok = s.get("isApprovalRequired").is_none_or(Value::is_boolean)
                    && s.get("approvalStages").is_none_or(Value::is_array)
                    && (s["isApprovalRequired"] != true
                        || s["approvalStages"].as_array().is_some_and(|a| !a.is_empty()));
                if !ok {
                    return Err(Resp::bad(
                        "An approval setting needs isApprovalRequired and, if true, approvalStages.",
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}
