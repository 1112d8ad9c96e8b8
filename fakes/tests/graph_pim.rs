//! Privileged Identity Management on the Graph fake, driven over HTTP: eligibility schedule
//! requests for directory roles and groups, their schedules and instances, role management
//! policies and their rules, and each refusal.

mod common;

use common::Client;
use keyward_fakes::graph::{Graph, iso};
use serde_json::{Value, json};

const GA: &str = "62e90394-69f5-4237-9190-012177145e10";
const USER_ADMIN: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
const REQUESTS: &str = "/v1.0/roleManagement/directory/roleEligibilityScheduleRequests";
const SCHEDULES: &str = "/v1.0/roleManagement/directory/roleEligibilitySchedules";
const GROUP_REQUESTS: &str = "/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleRequests";
const NOW: u64 = 1_800_000_000;

fn setup() -> (Graph, keyward_fakes::Running, Client) {
    let g = Graph::new();
    g.set_now(NOW);
    let fake = g.serve();
    let c = Client::new(g.entra(), &fake.url());
    (g, fake, c)
}

fn assign(principal: &str, role: &str, expiration: Value) -> Value {
    json!({"action": "adminAssign", "justification": "on call", "roleDefinitionId": role, "directoryScopeId": "/",
        "principalId": principal, "scheduleInfo": {"startDateTime": iso(NOW), "expiration": expiration}})
}

fn list(c: &Client, path: &str) -> Vec<Value> {
    let r = c.get(path);
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    r.body["value"].as_array().unwrap().clone()
}

fn policy_id(c: &Client, role: &str) -> String {
    let a = list(
        c,
        &format!(
            "/v1.0/policies/roleManagementPolicyAssignments?$filter=scopeId eq '/' and scopeType eq 'DirectoryRole' and roleDefinitionId eq '{role}'"
        ),
    );
    assert_eq!(a.len(), 1);
    a[0]["policyId"].as_str().unwrap().to_string()
}

fn patch_rule(c: &Client, role: &str, rule: &str, body: Value) -> common::Reply {
    c.patch(&format!("/v1.0/policies/roleManagementPolicies/{}/rules/{rule}", policy_id(c, role)), &body)
}

#[test]
fn an_admin_assignment_creates_a_schedule_and_an_instance() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    let r = c.post(REQUESTS, &assign(&u, GA, json!({"type": "afterDuration", "duration": "P30D"})));
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["status"], "Provisioned");
    assert_eq!(r.body["action"], "adminAssign");
    assert_eq!(r.body["targetScheduleId"], r.body["id"]);
    assert_eq!(r.body["scheduleInfo"]["expiration"]["endDateTime"], iso(NOW + 30 * 86_400));
    let schedules = list(&c, SCHEDULES);
    assert_eq!(schedules.len(), 1);
    let s = &schedules[0];
    assert_eq!((s["principalId"].as_str(), s["roleDefinitionId"].as_str()), (Some(u.as_str()), Some(GA)));
    assert_eq!((s["status"].as_str(), s["memberType"].as_str()), (Some("Provisioned"), Some("Direct")));
    assert_eq!(s["createdUsing"], r.body["id"]);
    let instances = list(&c, "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances");
    assert_eq!(instances[0]["roleEligibilityScheduleId"], s["id"]);
    assert_eq!(instances[0]["endDateTime"], iso(NOW + 30 * 86_400));
    let filtered = list(&c, &format!("{SCHEDULES}?$filter=principalId eq '{u}'&$expand=roleDefinition"));
    assert_eq!(filtered[0]["roleDefinition"]["displayName"], "Global Administrator");
    assert!(list(&c, &format!("{SCHEDULES}?$filter=roleDefinitionId eq '{USER_ADMIN}'")).is_empty());
    assert_eq!(c.get(&format!("{REQUESTS}/{}", r.body["id"].as_str().unwrap())).body["id"], r.body["id"]);
    let audit = list(&c, "/v1.0/auditLogs/directoryAudits");
    assert_eq!(audit[0]["activityDisplayName"], "Add eligible member to role in PIM completed (timebound)");
}

#[test]
fn a_second_assignment_is_refused_and_a_removal_revokes() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    let body = assign(&u, GA, json!({"type": "noExpiration"}));
    assert_eq!(c.post(REQUESTS, &body).status, 201);
    let r = c.post(REQUESTS, &body);
    assert_eq!((r.status, r.code()), (400, "RoleAssignmentExists"));
    assert_eq!(r.body["error"]["message"], "The Role assignment already exists.");
    let remove = json!({"action": "adminRemove", "roleDefinitionId": GA, "directoryScopeId": "/", "principalId": u});
    let r = c.post(REQUESTS, &remove);
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("Revoked")));
    assert!(list(&c, SCHEDULES).is_empty());
    let r = c.post(REQUESTS, &remove);
    assert_eq!((r.status, r.code()), (400, "RoleAssignmentDoesNotExist"));
    // adminUpdate needs an eligibility to change.
    let mut update = assign(&u, GA, json!({"type": "afterDuration", "duration": "P10D"}));
    update["action"] = json!("adminUpdate");
    assert_eq!(c.post(REQUESTS, &update).code(), "RoleAssignmentDoesNotExist");
    assert_eq!(c.post(REQUESTS, &body).status, 201);
    let r = c.post(REQUESTS, &update);
    assert_eq!(r.status, 201);
    let s = list(&c, SCHEDULES);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["scheduleInfo"]["expiration"]["endDateTime"], iso(NOW + 10 * 86_400));
}

#[test]
fn policy_rules_bound_admin_eligibility() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    let r = patch_rule(
        &c,
        GA,
        "Expiration_Admin_Eligibility",
        json!({
        "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule", "id": "Expiration_Admin_Eligibility",
        "isExpirationRequired": true, "maximumDuration": "P90D"}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    for expiration in [json!({"type": "noExpiration"}), json!({"type": "afterDuration", "duration": "P180D"})] {
        let r = c.post(REQUESTS, &assign(&u, GA, expiration.clone()));
        assert_eq!((r.status, r.code()), (400, "RoleAssignmentRequestPolicyValidationFailed"), "{expiration}");
        assert_eq!(r.body["error"]["message"], "The following policy rules failed: [\"ExpirationRule\"]");
    }
    // Other roles keep their own policy.
    assert_eq!(c.post(REQUESTS, &assign(&u, USER_ADMIN, json!({"type": "noExpiration"}))).status, 201);
    let r = patch_rule(
        &c,
        GA,
        "Enablement_Admin_Eligibility",
        json!({
        "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule", "enabledRules": ["Justification"]}),
    );
    assert_eq!(r.status, 204);
    let mut body = assign(&u, GA, json!({"type": "noExpiration"}));
    body.as_object_mut().unwrap().remove("justification");
    let r = c.post(REQUESTS, &body);
    assert_eq!(
        r.body["error"]["message"],
        "The following policy rules failed: [\"ExpirationRule\",\"JustificationRule\"]"
    );
    let r = c.post(REQUESTS, &assign(&u, GA, json!({"type": "afterDateTime", "endDateTime": iso(NOW + 60 * 86_400)})));
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(g.role_eligibilities().len(), 2);
}

#[test]
fn policies_and_their_assignments_need_a_scope_filter_and_carry_the_documented_rules() {
    let (_g, _fake, c) = setup();
    let r = c.get("/v1.0/policies/roleManagementPolicies");
    assert_eq!(r.status, 400);
    assert_eq!(c.get("/v1.0/policies/roleManagementPolicyAssignments").status, 400);
    let policies =
        list(&c, "/v1.0/policies/roleManagementPolicies?$filter=scopeId eq '/' and scopeType eq 'DirectoryRole'");
    assert_eq!(policies.len(), 6, "one per built-in role of the fake");
    assert!(policies.iter().all(|p| p.get("rules").is_none() && p["scopeType"] == "DirectoryRole"));
    let expanded = list(
        &c,
        "/v1.0/policies/roleManagementPolicies?$filter=scopeId eq '/' and scopeType eq 'DirectoryRole'&$expand=rules",
    );
    let rules = expanded[0]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 17);
    let rule = |id: &str| rules.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(rule("Expiration_EndUser_Assignment")["maximumDuration"], "PT8H");
    assert_eq!(
        rule("Enablement_EndUser_Assignment")["enabledRules"],
        json!(["MultiFactorAuthentication", "Justification"])
    );
    assert_eq!(rule("Approval_EndUser_Assignment")["setting"]["isApprovalRequired"], false);
    assert_eq!(rule("Expiration_Admin_Eligibility")["maximumDuration"], "P365D");
    let a = list(
        &c,
        &format!(
            "/v1.0/policies/roleManagementPolicyAssignments?$filter=scopeId eq '/' and scopeType eq 'Directory' and roleDefinitionId eq '{GA}'&$expand=policy($expand=rules)"
        ),
    );
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["roleDefinitionId"], GA);
    assert_eq!(a[0]["policy"]["rules"].as_array().unwrap().len(), 17);
    let one = c.get(&format!(
        "/v1.0/policies/roleManagementPolicies/{}/rules/Approval_EndUser_Assignment",
        a[0]["policyId"].as_str().unwrap()
    ));
    assert_eq!(one.body["@odata.type"], "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule");
}

#[test]
fn activation_rules_are_updated_one_at_a_time_and_checked() {
    let (g, _fake, c) = setup();
    let expiration = |d: &str, required: bool| {
        json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule", "id": "Expiration_EndUser_Assignment",
            "isExpirationRequired": required, "maximumDuration": d})
    };
    assert_eq!(patch_rule(&c, GA, "Expiration_EndUser_Assignment", expiration("PT4H", true)).status, 204);
    assert_eq!(g.policy_rule(GA, "Expiration_EndUser_Assignment").unwrap()["maximumDuration"], "PT4H");
    assert_eq!(patch_rule(&c, GA, "Expiration_EndUser_Assignment", expiration("PT25H", true)).status, 400);
    assert_eq!(patch_rule(&c, GA, "Expiration_EndUser_Assignment", expiration("PT4H", false)).status, 400);
    assert_eq!(patch_rule(&c, GA, "Expiration_EndUser_Assignment", expiration("8 hours", true)).status, 400);
    let mut untyped = expiration("PT2H", true);
    untyped.as_object_mut().unwrap().remove("@odata.type");
    assert_eq!(patch_rule(&c, GA, "Expiration_EndUser_Assignment", untyped).status, 400, "@odata.type is required");
    let mut wrong = expiration("PT2H", true);
    wrong["@odata.type"] = json!("#microsoft.graph.unifiedRoleManagementPolicyEnablementRule");
    assert_eq!(patch_rule(&c, GA, "Expiration_EndUser_Assignment", wrong).status, 400);
    assert_eq!(g.policy_rule(GA, "Expiration_EndUser_Assignment").unwrap()["maximumDuration"], "PT4H", "unchanged");

    let enablement = |rules: Value| json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule", "enabledRules": rules});
    assert_eq!(
        patch_rule(&c, GA, "Enablement_EndUser_Assignment", enablement(json!(["Justification", "Ticketing"]))).status,
        204
    );
    assert_eq!(patch_rule(&c, GA, "Enablement_EndUser_Assignment", enablement(json!(["Fingerprint"]))).status, 400);
    let approval = json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule",
        "setting": {"isApprovalRequired": true, "approvalMode": "SingleStage", "approvalStages": [{"approvalStageTimeOutInDays": 1,
            "isApproverJustificationRequired": true, "escalationTimeInMinutes": 0, "isEscalationEnabled": false,
            "primaryApprovers": [{"@odata.type": "#microsoft.graph.singleUser", "userId": "00000000-0000-4000-8000-000000000001"}],
            "escalationApprovers": []}]}});
    assert_eq!(patch_rule(&c, GA, "Approval_EndUser_Assignment", approval).status, 204);
    assert_eq!(g.policy_rule(GA, "Approval_EndUser_Assignment").unwrap()["setting"]["isApprovalRequired"], true);
    let no_stages = json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule",
        "setting": {"isApprovalRequired": true, "approvalStages": []}});
    assert_eq!(patch_rule(&c, GA, "Approval_EndUser_Assignment", no_stages).status, 400);
    assert_eq!(patch_rule(&c, GA, "Not_A_Rule", enablement(json!([]))).status, 404);
}

#[test]
fn eligibility_requests_check_their_principal_role_scope_and_action() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    let sp = g.add_enterprise_app("bot", &[]);
    let plain = g.add_group("plain");
    let permanent = json!({"type": "noExpiration"});
    let r = c.post(REQUESTS, &assign(&u, "00000000-1111-2222-3333-444444444444", permanent.clone()));
    assert_eq!((r.status, r.code()), (400, "RoleNotFound"));
    assert_eq!(c.post(REQUESTS, &assign("00000000-aaaa-4000-8000-000000000000", GA, permanent.clone())).status, 404);
    assert_eq!(c.post(REQUESTS, &assign(&sp, GA, permanent.clone())).status, 400, "a service principal");
    assert_eq!(c.post(REQUESTS, &assign(&plain, GA, permanent.clone())).status, 400, "a group not role-assignable");
    let r = c.post(
        "/v1.0/groups",
        &json!({"displayName": "tier0", "mailEnabled": false, "mailNickname": "tier0",
        "securityEnabled": true, "isAssignableToRole": true}),
    );
    let assignable = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(c.post(REQUESTS, &assign(&assignable, GA, permanent.clone())).status, 201);
    let mut self_activate = assign(&u, GA, permanent.clone());
    self_activate["action"] = json!("selfActivate");
    assert_eq!(c.post(REQUESTS, &self_activate).status, 400);
    let mut no_scope = assign(&u, GA, permanent.clone());
    no_scope.as_object_mut().unwrap().remove("directoryScopeId");
    assert_eq!(c.post(REQUESTS, &no_scope).status, 400);
    let mut no_schedule = assign(&u, GA, permanent);
    no_schedule.as_object_mut().unwrap().remove("scheduleInfo");
    assert_eq!(c.post(REQUESTS, &no_schedule).status, 400);
    let bad = assign(&u, GA, json!({"type": "afterDateTime", "endDateTime": iso(NOW - 10)}));
    assert_eq!(c.post(REQUESTS, &bad).status, 400, "ends before it starts");
    assert_eq!(g.role_eligibilities().len(), 1);
}

#[test]
fn future_and_expired_schedules_are_told_apart_by_the_clock() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    let mut future = assign(&u, GA, json!({"type": "afterDuration", "duration": "PT8H"}));
    future["scheduleInfo"]["startDateTime"] = json!(iso(NOW + 86_400));
    assert_eq!(c.post(REQUESTS, &future).status, 201);
    assert_eq!(list(&c, SCHEDULES).len(), 1);
    assert!(list(&c, "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances").is_empty());
    g.set_now(NOW + 86_400 + 3600);
    assert_eq!(list(&c, "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances").len(), 1);
    g.set_now(NOW + 2 * 86_400);
    assert!(list(&c, SCHEDULES).is_empty(), "expired");
    // Expired: a new assignment is not a duplicate.
    let again = assign(&u, GA, json!({"type": "afterDuration", "duration": "PT8H"}));
    let mut again = again;
    again["scheduleInfo"]["startDateTime"] = json!(iso(NOW + 2 * 86_400));
    assert_eq!(c.post(REQUESTS, &again).status, 201);
}

#[test]
fn group_eligibility_follows_the_group_policies_and_refuses_dynamic_groups() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    let grp = g.add_group("tier1");
    let dynamic = g.add_dynamic_group("all", "user.accountEnabled -eq true");
    let request = |group: &str, access: &str, end: u64| {
        json!({"accessId": access, "principalId": u, "groupId": group, "action": "AdminAssign",
            "scheduleInfo": {"startDateTime": iso(NOW), "expiration": {"type": "AfterDateTime", "endDateTime": iso(end)}},
            "justification": "Assign eligible request."})
    };
    let r = c.post(GROUP_REQUESTS, &request(&grp, "member", NOW + 86_400));
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["action"], "adminAssign");
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(r.body["targetScheduleId"], format!("{grp}_member_{id}"));
    assert_eq!(c.post(GROUP_REQUESTS, &request(&grp, "member", NOW + 86_400)).code(), "RoleAssignmentExists");
    assert_eq!(c.post(GROUP_REQUESTS, &request(&grp, "owner", NOW + 86_400)).status, 201);
    assert_eq!(c.post(GROUP_REQUESTS, &request(&grp, "reader", NOW + 86_400)).status, 400);
    assert_eq!(c.post(GROUP_REQUESTS, &request(&dynamic, "member", NOW + 86_400)).status, 400);
    let path = "/v1.0/identityGovernance/privilegedAccess/group/eligibilitySchedules";
    assert_eq!(c.get(path).status, 400, "a filter is required");
    let s = list(&c, &format!("{path}?$filter=groupId eq '{grp}'"));
    assert_eq!(s.len(), 2);
    let s = list(&c, &format!("{path}?$filter=groupId eq '{grp}' and principalId eq '{u}' and accessId eq 'member'"));
    assert_eq!(s[0]["id"], format!("{grp}_member_{id}"));
    assert_eq!(list(&c, &format!("/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances?$filter=principalId eq '{u}'")).len(), 2);

    // The group's policies: member and owner.
    let a = list(
        &c,
        &format!("/v1.0/policies/roleManagementPolicyAssignments?$filter=scopeId eq '{grp}' and scopeType eq 'Group'"),
    );
    let roles: Vec<&str> = a.iter().map(|x| x["roleDefinitionId"].as_str().unwrap()).collect();
    assert_eq!(roles, ["member", "owner"]);
    let member_policy = a[0]["policyId"].as_str().unwrap();
    let r = c.patch(&format!("/v1.0/policies/roleManagementPolicies/{member_policy}/rules/Expiration_Admin_Eligibility"), &json!({
        "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule", "isExpirationRequired": true, "maximumDuration": "PT12H"}));
    assert_eq!(r.status, 204);
    assert_eq!(
        g.group_policy_rule(&grp, "member", "Expiration_Admin_Eligibility").unwrap()["maximumDuration"],
        "PT12H"
    );
    let other = g.add_group("tier2");
    let r = c.post(GROUP_REQUESTS, &request(&other, "member", NOW + 86_400));
    assert_eq!(r.status, 201, "another group keeps its own policy");
    let remove = json!({"accessId": "member", "principalId": u, "groupId": grp, "action": "adminRemove"});
    assert_eq!(c.post(GROUP_REQUESTS, &remove).body["status"], "Revoked");
    let r = c.post(GROUP_REQUESTS, &request(&grp, "member", NOW + 86_400));
    assert_eq!(r.body["error"]["message"], "The following policy rules failed: [\"ExpirationRule\"]");
    let r = c.post(GROUP_REQUESTS, &request(&grp, "member", NOW + 3600));
    assert_eq!(r.status, 201);
}

#[test]
fn eligibility_made_in_the_portal_is_listed_and_audited() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    let id = g.portal("eve@contoso.example").make_role_eligible("Global Administrator", &u, None).unwrap();
    let s = list(&c, SCHEDULES);
    assert_eq!(s[0]["id"], id.as_str());
    assert_eq!(s[0]["scheduleInfo"]["expiration"]["type"], "noExpiration");
    let audit = list(&c, "/v1.0/auditLogs/directoryAudits");
    assert_eq!(audit[0]["initiatedBy"]["user"]["userPrincipalName"], "eve@contoso.example");
    g.portal("eve@contoso.example").update_policy_rule(
        GA,
        "Expiration_EndUser_Assignment",
        json!({"maximumDuration": "PT1H"}),
    );
    assert_eq!(g.policy_rule(GA, "Expiration_EndUser_Assignment").unwrap()["maximumDuration"], "PT1H");
    g.portal("eve@contoso.example").remove_role_eligibility(&id);
    assert!(list(&c, SCHEDULES).is_empty());
}
