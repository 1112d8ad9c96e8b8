//! Synced users and groups and dynamic groups on the Graph fake, driven over HTTP: what can be
//! read to recognise them, and every change Graph refuses.

mod common;

use common::{Client, delta_round};
use keyward_fakes::graph::Graph;
use serde_json::{Value, json};

const MASTERED: &str = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.";

fn setup() -> (Graph, keyward_fakes::Running, Client) {
    let g = Graph::new();
    let fake = g.serve();
    let c = Client::new(g.entra(), &fake.url());
    (g, fake, c)
}

fn reference(id: &str) -> Value {
    json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")})
}

#[test]
fn a_synced_user_reads_as_synced_and_refuses_changes_to_what_active_directory_masters() {
    let (g, _fake, c) = setup();
    let synced = g.add_synced_user("jsmith@corp.example", "John Smith", true);
    let cloud = g.add_user("ann@corp.example", "Ann", true);
    let r = c.get("/v1.0/users?$select=id,onPremisesSyncEnabled,onPremisesImmutableId,onPremisesDistinguishedName");
    let users = r.body["value"].as_array().unwrap();
    let s = users.iter().find(|u| u["id"] == synced.as_str()).unwrap();
    assert_eq!(s["onPremisesSyncEnabled"], true);
    assert!(s["onPremisesImmutableId"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(s["onPremisesDistinguishedName"].as_str().unwrap().starts_with("CN=John Smith,"));
    let cl = users.iter().find(|u| u["id"] == cloud.as_str()).unwrap();
    assert_eq!(cl["onPremisesSyncEnabled"], Value::Null);

    for body in [
        json!({"displayName": "J. Smith"}),
        json!({"accountEnabled": false}),
        json!({"jobTitle": "Buyer", "department": "Sales"}),
        json!({"usageLocation": "GB"}),
        json!({"passwordProfile": {"password": "a-new-password-1!", "forceChangePasswordNextSignIn": true}}),
    ] {
        let r = c.patch(&format!("/v1.0/users/{synced}"), &body);
        assert_eq!((r.status, r.code()), (400, "Request_BadRequest"), "{body}");
        assert_eq!(r.body["error"]["message"], MASTERED);
    }
    assert_eq!(g.user("jsmith@corp.example").unwrap()["accountEnabled"], true, "nothing changed");
    // A property Entra Connect does not synchronize can be set.
    let r = c.patch(&format!("/v1.0/users/{synced}"), &json!({"otherMails": ["js@home.example"]}));
    assert_eq!(r.status, 204);
    // The same changes on a cloud user go through.
    assert_eq!(c.patch(&format!("/v1.0/users/{cloud}"), &json!({"accountEnabled": false})).status, 204);
    // Manager and deletion.
    let r = c.put(&format!("/v1.0/users/{synced}/manager/$ref"), &reference(&cloud));
    assert_eq!(r.body["error"]["message"], MASTERED);
    assert_eq!(c.delete(&format!("/v1.0/users/{synced}/manager/$ref")).status, 400);
    assert_eq!(c.delete(&format!("/v1.0/users/{synced}")).status, 400);
    assert_eq!(g.user_count(), 2);
}

#[test]
fn on_premises_properties_are_read_only_on_every_user() {
    let (g, _fake, c) = setup();
    let cloud = g.add_user("ann@corp.example", "Ann", true);
    let r = c.patch(&format!("/v1.0/users/{cloud}"), &json!({"onPremisesSyncEnabled": true}));
    assert_eq!(
        (r.status, r.body["error"]["message"].as_str()),
        (400, Some("Property 'onPremisesSyncEnabled' is read-only and cannot be set."))
    );
    let r = c.post(
        "/v1.0/users",
        &json!({"accountEnabled": true, "displayName": "B", "mailNickname": "b", "userPrincipalName": "b@corp.example",
            "passwordProfile": {"password": "Xy7!long-enough", "forceChangePasswordNextSignIn": true},
            "onPremisesSamAccountName": "b"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(g.user_count(), 1);
}

#[test]
fn a_dynamic_group_reads_as_dynamic_and_refuses_member_changes() {
    let (g, _fake, c) = setup();
    let users = g.add_users("u", "corp.example", 3);
    let dynamic = g.add_dynamic_group("all-sales", "user.department -eq \"Sales\"");
    g.set_dynamic_members(&dynamic, &users[..2]);
    let r = c.get(&format!("/v1.0/groups/{dynamic}"));
    assert_eq!(r.body["groupTypes"], json!(["DynamicMembership"]));
    assert_eq!(r.body["membershipRule"], "user.department -eq \"Sales\"");
    assert_eq!(r.body["membershipRuleProcessingState"], "On");

    let r = c.post(&format!("/v1.0/groups/{dynamic}/members/$ref"), &reference(&users[2]));
    assert_eq!((r.status, r.code()), (400, "Request_BadRequest"));
    let r = c.patch(
        &format!("/v1.0/groups/{dynamic}"),
        &json!({"members@odata.bind": [format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", users[2])]}),
    );
    assert_eq!(r.status, 400);
    let r = c.delete(&format!("/v1.0/groups/{dynamic}/members/{}/$ref", users[0]));
    assert_eq!(r.status, 400);
    assert_eq!(g.members(&dynamic).len(), 2, "nothing changed");
    // Its properties can change.
    assert_eq!(c.patch(&format!("/v1.0/groups/{dynamic}"), &json!({"description": "Sales"})).status, 204);
}

#[test]
fn rule_processing_changes_reach_the_delta_feed() {
    let (g, _fake, c) = setup();
    let users = g.add_users("u", "corp.example", 3);
    let dynamic = g.add_dynamic_group("all-sales", "user.department -eq \"Sales\"");
    g.set_dynamic_members(&dynamic, &users[..2]);
    let (_, delta, _) = delta_round(&c, "/v1.0/groups/delta?$select=displayName,groupTypes,members", &[]);
    g.set_dynamic_members(&dynamic, &users[1..]);
    let (changes, _, _) = delta_round(&c, &delta, &[]);
    let members = changes[0]["members@delta"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert!(
        members.contains(
            &json!({"@odata.type": "#microsoft.graph.user", "id": users[0], "@removed": {"reason": "deleted"}})
        )
    );
    assert!(members.contains(&json!({"@odata.type": "#microsoft.graph.user", "id": users[2]})));
    assert_eq!(changes[0]["groupTypes"], json!(["DynamicMembership"]));
}

#[test]
fn creating_a_dynamic_group_needs_a_rule_and_no_members() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@corp.example", "Ann", true);
    let base = json!({"displayName": "d", "mailEnabled": false, "mailNickname": "d", "securityEnabled": true,
        "groupTypes": ["DynamicMembership"], "membershipRuleProcessingState": "On"});
    assert_eq!(c.post("/v1.0/groups", &base).status, 400, "no rule");
    let mut with_rule = base.clone();
    with_rule["membershipRule"] = json!("user.accountEnabled -eq true");
    let mut assignable = with_rule.clone();
    assignable["isAssignableToRole"] = json!(true);
    assert_eq!(c.post("/v1.0/groups", &assignable).status, 400, "role-assignable");
    let mut with_members = with_rule.clone();
    with_members["members@odata.bind"] = json!([format!("https://graph.microsoft.com/v1.0/directoryObjects/{u}")]);
    assert_eq!(c.post("/v1.0/groups", &with_members).status, 400, "members bound");
    assert!(g.group_id("d").is_none());
    let r = c.post("/v1.0/groups", &with_rule);
    assert_eq!(r.status, 201);
    assert_eq!(r.body["membershipRule"], "user.accountEnabled -eq true");
}

#[test]
fn a_synced_group_refuses_member_and_property_changes() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@corp.example", "Ann", true);
    let synced = g.add_synced_group("corp-admins");
    let r = c.get(&format!("/v1.0/groups/{synced}"));
    assert_eq!(r.body["onPremisesSyncEnabled"], true);
    let r = c.post(&format!("/v1.0/groups/{synced}/members/$ref"), &reference(&u));
    assert_eq!(r.body["error"]["message"], MASTERED);
    let r = c.patch(&format!("/v1.0/groups/{synced}"), &json!({"displayName": "renamed"}));
    assert_eq!(r.body["error"]["message"], MASTERED);
    g.set_dynamic_members(&synced, std::slice::from_ref(&u));
    assert_eq!(c.delete(&format!("/v1.0/groups/{synced}/members/{u}/$ref")).status, 400);
    assert_eq!(g.members(&synced), vec![u]);
}
