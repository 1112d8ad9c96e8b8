//! Delta queries on the Graph fake, driven over HTTP: rounds and pages, what a later round
//! returns, `$select` and `Prefer: return=minimal`, membership changes, token expiry and
//! synchronization resets, the refused query options, directory roles, changes made in the
//! portal (with their audit entries), and a long random run where the state built from the feed
//! always equals a full read.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Client, delta_round};
use keyward_fakes::graph::Graph;
use serde_json::{Value, json};

fn setup() -> (Graph, keyward_fakes::Running, Client) {
    let g = Graph::new();
    let fake = g.serve();
    let c = Client::new(g.entra(), &fake.url());
    (g, fake, c)
}

fn ids(values: &[Value]) -> BTreeSet<String> {
    values.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

fn by_id(values: &[Value]) -> BTreeMap<String, Value> {
    values.iter().map(|v| (v["id"].as_str().unwrap().to_string(), v.clone())).collect()
}

#[test]
fn a_first_round_pages_every_user_and_ends_with_a_delta_link() {
    let (g, _fake, c) = setup();
    let users = g.add_users("u", "contoso.example", 250);
    g.set_user_field(&users[0], "jobTitle", json!("Buyer"));
    let (all, delta, pages) = delta_round(&c, "/v1.0/users/delta?$select=displayName,jobTitle", &[]);
    assert_eq!(pages, 3, "100 users a page");
    assert_eq!(ids(&all), users.iter().cloned().collect());
    assert_eq!(all.len(), 250, "each user once");
    let first = &by_id(&all)[&users[0]];
    assert_eq!(first, &json!({"displayName": "u 0", "jobTitle": "Buyer", "id": users[0]}));
    // Never set: left out, not null.
    assert!(by_id(&all)[&users[1]].get("jobTitle").is_none());
    assert!(delta.contains("/v1.0/users/delta?$deltatoken="), "{delta}");
    // Nothing changed: an empty round and a new delta link.
    let (again, delta2, _) = delta_round(&c, &delta, &[]);
    assert!(again.is_empty());
    assert_ne!(delta, delta2);
    assert_eq!(g.delta_requests(), 4);
}

#[test]
fn without_select_users_come_with_the_default_properties_and_groups_with_their_members() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    g.set_user_field(&u, "surname", json!("Lee"));
    g.set_user_field(&u, "department", json!("Sales"));
    let full = g.add_group("full");
    let empty = g.add_group("empty");
    g.add_members(&full, std::slice::from_ref(&u));
    let (users, _, _) = delta_round(&c, "/v1.0/users/delta", &[]);
    let ann = &users[0];
    assert_eq!(ann["surname"], "Lee");
    assert_eq!(ann["userPrincipalName"], "ann@contoso.example");
    assert!(ann.get("department").is_none(), "not a default property: {ann}");
    assert!(ann.get("accountEnabled").is_none(), "not a default property: {ann}");
    let (groups, _, _) = delta_round(&c, "/v1.0/groups/delta", &[]);
    let groups = by_id(&groups);
    assert_eq!(groups[&full]["members@delta"], json!([{"@odata.type": "#microsoft.graph.user", "id": u}]));
    assert!(groups[&empty].get("members@delta").is_none(), "a group without members has no members@delta");
    assert_eq!(groups[&full]["displayName"], "full");
}

#[test]
fn a_later_round_returns_created_updated_and_removed_users_only() {
    let (g, _fake, c) = setup();
    let users = g.add_users("u", "contoso.example", 5);
    let (_, delta, _) = delta_round(&c, "/v1.0/users/delta?$select=displayName,jobTitle,accountEnabled", &[]);
    let admin = g.portal("admin@contoso.example");
    admin.update_user(&users[0], json!({"jobTitle": "Buyer"}));
    admin.set_account_enabled(&users[1], false);
    admin.delete_user(&users[2]);
    admin.delete_user(&users[3]);
    admin.purge_user(&users[3]);
    let new = admin.create_user("new@contoso.example", "New");
    let (changes, _, _) = delta_round(&c, &delta, &[]);
    let changes = by_id(&changes);
    assert_eq!(
        changes.keys().cloned().collect::<BTreeSet<_>>(),
        [&users[0], &users[1], &users[2], &users[3], &new].into_iter().cloned().collect()
    );
    // Default: every selected property, changed or not.
    assert_eq!(
        changes[&users[0]],
        json!({"displayName": "u 0", "jobTitle": "Buyer", "accountEnabled": true, "id": users[0]})
    );
    assert_eq!(changes[&users[1]]["accountEnabled"], false);
    assert_eq!(changes[&users[2]], json!({"id": users[2], "@removed": {"reason": "changed"}}));
    assert_eq!(changes[&users[3]], json!({"id": users[3], "@removed": {"reason": "deleted"}}));
    assert_eq!(changes[&new]["displayName"], "New");
}

#[test]
fn prefer_return_minimal_returns_only_the_changed_properties() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    g.set_user_field(&u, "mobilePhone", json!("+1 555 0100"));
    let (_, delta, _) = delta_round(&c, "/v1.0/users/delta?$select=displayName,jobTitle,mobilePhone", &[]);
    g.portal("admin@contoso.example").update_user(&u, json!({"jobTitle": "Buyer", "mobilePhone": null}));
    let (changes, _, _) = delta_round(&c, &delta, &[("Prefer", "return=minimal")]);
    assert_eq!(changes, vec![json!({"jobTitle": "Buyer", "mobilePhone": null, "id": u})]);
}

#[test]
fn a_change_to_a_property_not_selected_does_not_bring_the_user_back() {
    let (g, _fake, c) = setup();
    let u = g.add_user("ann@contoso.example", "Ann", true);
    let (_, delta, _) = delta_round(&c, "/v1.0/users/delta?$select=displayName", &[]);
    g.portal("admin@contoso.example").update_user(&u, json!({"jobTitle": "Buyer"}));
    g.set_last_sign_in(&u, "2026-03-01T00:00:00Z");
    let (changes, delta, _) = delta_round(&c, &delta, &[]);
    assert!(changes.is_empty(), "{changes:?}");
    g.portal("admin@contoso.example").update_user(&u, json!({"displayName": "Ann Lee"}));
    let (changes, _, _) = delta_round(&c, &delta, &[]);
    assert_eq!(changes, vec![json!({"displayName": "Ann Lee", "id": u})]);
}

#[test]
fn group_rounds_report_membership_changes_with_removed_members() {
    let (g, _fake, c) = setup();
    let users = g.add_users("u", "contoso.example", 3);
    let grp = g.add_group("sales");
    let other = g.add_group("quiet");
    g.add_members(&grp, &users[..2]);
    let (_, delta, _) = delta_round(&c, "/v1.0/groups/delta?$select=displayName,members", &[]);
    // Through the API, and in the portal.
    let r = c.post(
        &format!("/v1.0/groups/{grp}/members/$ref"),
        &json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", users[2])}),
    );
    assert_eq!(r.status, 204);
    g.portal("admin@contoso.example").remove_member(&grp, &users[0]);
    let (changes, delta, _) = delta_round(&c, &delta, &[]);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["id"], grp.as_str());
    assert_eq!(changes[0]["displayName"], "sales");
    let members = changes[0]["members@delta"].as_array().unwrap();
    assert!(members.contains(&json!({"@odata.type": "#microsoft.graph.user", "id": users[2]})));
    assert!(
        members.contains(
            &json!({"@odata.type": "#microsoft.graph.user", "id": users[0], "@removed": {"reason": "deleted"}})
        )
    );
    assert_eq!(members.len(), 2);
    assert!(!ids(&changes).contains(&other));

    // A soft-deleted member keeps its membership (no members@delta) until deleted for good.
    let r = c.delete(&format!("/v1.0/users/{}", users[1]));
    assert_eq!(r.status, 204);
    let (changes, delta, _) = delta_round(&c, &delta, &[]);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(c.delete(&format!("/v1.0/directory/deletedItems/{}", users[1])).status, 204);
    let (changes, _, _) = delta_round(&c, &delta, &[]);
    assert_eq!(
        changes[0]["members@delta"],
        json!([{"@odata.type": "#microsoft.graph.user", "id": users[1], "@removed": {"reason": "deleted"}}])
    );
}

#[test]
fn a_large_group_continues_on_the_next_page_with_its_properties_repeated() {
    let (g, _fake, c) = setup();
    g.set_delta_page_size(100, 40);
    let users = g.add_users("u", "contoso.example", 100);
    let big = g.add_group("big");
    g.add_members(&big, &users);
    let small = g.add_group("small");
    g.add_members(&small, &users[..3]);
    let (all, _, pages) = delta_round(&c, "/v1.0/groups/delta", &[]);
    assert_eq!(pages, 3, "100 members at 40 a page, then the small group");
    let parts: Vec<&Value> = all.iter().filter(|v| v["id"] == big.as_str()).collect();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p["displayName"] == "big"));
    let members: BTreeSet<String> = parts
        .iter()
        .flat_map(|p| p["members@delta"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(members, users.iter().cloned().collect());
}

#[test]
fn an_expired_or_unknown_token_answers_sync_state_not_found() {
    let (g, _fake, c) = setup();
    g.add_users("u", "contoso.example", 2);
    let start = 1_800_000_000;
    g.set_now(start);
    let (_, delta, _) = delta_round(&c, "/v1.0/users/delta", &[]);
    // Seven days by default.
    g.set_now(start + 7 * 24 * 3600 - 60);
    assert_eq!(c.get(&delta).status, 200);
    g.set_now(start + 7 * 24 * 3600 + 60);
    let r = c.get(&delta);
    assert_eq!((r.status, r.code()), (400, "syncStateNotFound"));
    assert_eq!(
        r.body["error"]["message"],
        "The sync state generation is not found. The delta token is expired and data must be synchronized again."
    );
    // Configurable.
    g.set_delta_token_lifetime(Duration::from_secs(60));
    let (_, delta, _) = delta_round(&c, "/v1.0/users/delta", &[]);
    g.set_now(start + 7 * 24 * 3600 + 200);
    assert_eq!(c.get(&delta).code(), "syncStateNotFound");
    let r = c.get("/v1.0/users/delta?$deltatoken=not-a-token");
    assert_eq!((r.status, r.code()), (400, "syncStateNotFound"));
    // A group token is not a user token.
    let (_, group_delta, _) = delta_round(&c, "/v1.0/groups/delta", &[]);
    let token = group_delta.split("$deltatoken=").nth(1).unwrap();
    assert_eq!(c.get(&format!("/v1.0/users/delta?$deltatoken={token}")).code(), "syncStateNotFound");
}

#[test]
fn after_a_sync_reset_tokens_answer_gone_with_the_initial_query_in_location() {
    let (g, _fake, c) = setup();
    g.set_delta_page_size(2, 500);
    let users = g.add_users("u", "contoso.example", 3);
    let (_, delta, _) = delta_round(&c, "/v1.0/users/delta?$select=displayName", &[]);
    let first = c.get("/v1.0/users/delta?$select=displayName");
    let next = first.body["@odata.nextLink"].as_str().unwrap().to_string();
    g.reset_sync();
    for url in [&delta, &next] {
        let r = c.get(url);
        assert_eq!((r.status, r.code()), (410, "resyncRequired"), "{url}");
        let location = r.header("location").unwrap();
        assert!(location.ends_with("/v1.0/users/delta?$select=displayName&$deltatoken="), "{location}");
    }
    let location = c.get(&delta).header("location").unwrap().to_string();
    let (all, _, _) = delta_round(&c, &location, &[]);
    assert_eq!(ids(&all), users.iter().cloned().collect());
    assert!(all.iter().all(|u| u.get("userPrincipalName").is_none()), "the select is kept");
}

#[test]
fn latest_answers_a_delta_link_and_no_objects() {
    let (g, _fake, c) = setup();
    g.add_users("u", "contoso.example", 3);
    let r = c.get("/v1.0/users/delta?$deltatoken=latest&$select=displayName");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["value"], json!([]));
    let delta = r.body["@odata.deltaLink"].as_str().unwrap().to_string();
    let new = g.portal("admin@contoso.example").create_user("new@contoso.example", "New");
    let (changes, _, _) = delta_round(&c, &delta, &[]);
    assert_eq!(changes, vec![json!({"displayName": "New", "id": new})]);
}

#[test]
fn unsupported_query_options_are_refused() {
    let (g, _fake, c) = setup();
    let users = g.add_users("u", "contoso.example", 3);
    for q in ["$top=5", "$orderby=displayName", "$expand=manager", "$filter=displayName eq 'x'", "$count=true"] {
        let r = c.get(&format!("/v1.0/users/delta?{q}"));
        assert_eq!((r.status, r.code()), (400, "Request_UnsupportedQuery"), "{q}");
        let r = c.get(&format!("/v1.0/groups/delta?{q}"));
        assert_eq!(r.status, 400, "{q}");
    }
    let many: Vec<String> = (0..51).map(|i| format!("id eq 'x{i}'")).collect();
    assert_eq!(c.get(&format!("/v1.0/users/delta?$filter={}", many.join(" or "))).status, 400);
    g.set_delta_page_size(1, 500);
    let first = c.get("/v1.0/users/delta");
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    assert_eq!(c.get(&format!("{next}&$select=displayName")).status, 400, "$select with $skiptoken");
    // An id filter: only those users, at most 50.
    let (all, _, _) =
        delta_round(&c, &format!("/v1.0/users/delta?$filter=id eq '{}' or id eq '{}'", users[0], users[2]), &[]);
    assert_eq!(ids(&all), [users[0].clone(), users[2].clone()].into_iter().collect());
}

#[test]
fn manager_changes_come_as_manager_delta_when_selected() {
    let (g, _fake, c) = setup();
    let users = g.add_users("u", "contoso.example", 3);
    let (first, delta, _) = delta_round(&c, "/v1.0/users/delta?$select=displayName,manager", &[]);
    assert!(first.iter().all(|u| u.get("manager@delta").is_none()));
    let r = c.put(
        &format!("/v1.0/users/{}/manager/$ref", users[0]),
        &json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{}", users[1])}),
    );
    assert_eq!(r.status, 204);
    let (changes, delta, _) = delta_round(&c, &delta, &[]);
    assert_eq!(changes[0]["manager@delta"], json!([{"@odata.type": "#microsoft.graph.user", "id": users[1]}]));
    g.portal("admin@contoso.example").set_manager(&users[0], Some(&users[2]));
    let (changes, _, _) = delta_round(&c, &delta, &[]);
    let m = changes[0]["manager@delta"].as_array().unwrap();
    assert!(
        m.contains(&json!({"@odata.type": "#microsoft.graph.user", "id": users[1], "@removed": {"reason": "deleted"}}))
    );
    assert!(m.contains(&json!({"@odata.type": "#microsoft.graph.user", "id": users[2]})));
}

#[test]
fn directory_role_rounds_follow_tenant_wide_role_assignments() {
    let (g, _fake, c) = setup();
    let users = g.add_users("u", "contoso.example", 2);
    g.add_role_assignment("Global Administrator", &users[0]);
    let roles = c.get("/v1.0/directoryRoles");
    let ga = roles.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["displayName"] == "Global Administrator")
        .unwrap()
        .clone();
    assert_eq!(ga["roleTemplateId"], "62e90394-69f5-4237-9190-012177145e10");
    assert_ne!(ga["id"], ga["roleTemplateId"], "a directory role has an id of its own");
    let ga_id = ga["id"].as_str().unwrap().to_string();
    let (first, delta, _) = delta_round(&c, "/v1.0/directoryRoles/delta", &[]);
    let first = by_id(&first);
    assert_eq!(first[&ga_id]["members@delta"], json!([{"@odata.type": "#microsoft.graph.user", "id": users[0]}]));
    // A grant in the portal, and one scoped to an administrative unit (not a member of the role).
    let grant = g.portal("eve@contoso.example").assign_role("Global Administrator", &users[1]).unwrap();
    let r = c.post(
        "/v1.0/roleManagement/directory/roleAssignments",
        &json!({"roleDefinitionId": "fe930be7-5e62-47db-91af-98c3a49a38b1", "principalId": users[0],
            "directoryScopeId": "/administrativeUnits/au1"}),
    );
    assert_eq!(r.status, 201);
    let (changes, delta, _) = delta_round(&c, &delta, &[]);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["members@delta"], json!([{"@odata.type": "#microsoft.graph.user", "id": users[1]}]));
    let members = c.get(&format!("/v1.0/directoryRoles/{ga_id}/members"));
    assert_eq!(ids(members.body["value"].as_array().unwrap()), users.iter().cloned().collect());
    assert_eq!(c.delete(&format!("/v1.0/roleManagement/directory/roleAssignments/{grant}")).status, 204);
    let (changes, _, _) = delta_round(&c, &delta, &[]);
    assert_eq!(
        changes[0]["members@delta"],
        json!([{"@odata.type": "#microsoft.graph.user", "id": users[1], "@removed": {"reason": "deleted"}}])
    );
}

#[test]
fn portal_changes_are_audited_with_their_actor_and_time() {
    let (g, _fake, c) = setup();
    let users = g.add_users("u", "contoso.example", 1);
    let admin = g.add_user("eve@contoso.example", "Eve", true);
    let grp = g.add_group("admins");
    g.set_now(1_800_000_000);
    g.portal("eve@contoso.example").add_member(&grp, &users[0]);
    let r = c.get("/v1.0/auditLogs/directoryAudits");
    let entry = &r.body["value"][0];
    assert_eq!(entry["activityDisplayName"], "Add member to group");
    assert_eq!(entry["activityDateTime"], "2027-01-15T08:00:00Z");
    assert_eq!(entry["initiatedBy"]["user"]["userPrincipalName"], "eve@contoso.example");
    assert_eq!(entry["initiatedBy"]["user"]["id"], admin.as_str());
    assert_eq!(entry["targetResources"][0]["id"], users[0].as_str());
    let modified = entry["targetResources"][0]["modifiedProperties"].as_array().unwrap();
    assert!(
        modified.iter().any(|m| m["displayName"] == "Group.ObjectID" && m["newValue"].as_str().unwrap().contains(&grp))
    );
    // No request was made for the change itself.
    assert_eq!(g.graph_requests(), 1);
}

/// A random walk of portal and API changes; after every few steps the state built from the
/// delta feed equals a full read (users with their names, group members, Global Administrator
/// holders).
#[test]
fn the_state_built_from_the_feed_always_equals_a_full_read() {
    let (g, _fake, c) = setup();
    g.set_delta_page_size(7, 5);
    let mut users = g.add_users("u", "contoso.example", 12);
    let groups = [g.add_group("a"), g.add_group("b"), g.add_group("c")];
    g.add_members(&groups[0], &users[..6]);
    let admin = g.portal("admin@contoso.example");
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    // Local state from the feed: user id → displayName; group id → members; role holders.
    let mut local_users: BTreeMap<String, String> = BTreeMap::new();
    let mut local_members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut local_admins: BTreeSet<String> = BTreeSet::new();
    let mut links = [
        "/v1.0/users/delta?$select=displayName".to_string(),
        "/v1.0/groups/delta?$select=displayName,members".to_string(),
        "/v1.0/directoryRoles/delta".to_string(),
    ];
    let mut deleted: Vec<String> = Vec::new();
    let ga = c.get("/v1.0/directoryRoles").body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["displayName"] == "Global Administrator")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for step in 0..120 {
        let u = users[next(users.len())].clone();
        let grp = groups[next(groups.len())].clone();
        match next(8) {
            0 => admin.update_user(&u, json!({"displayName": format!("renamed {step}")})),
            1 => admin.add_member(&grp, &u),
            2 => admin.remove_member(&grp, &u),
            3 => {
                let id = admin.create_user(&format!("n{step}@contoso.example"), &format!("new {step}"));
                users.push(id);
            }
            4 if users.len() > 4 => {
                users.retain(|x| x != &u);
                admin.delete_user(&u);
                deleted.push(u);
            }
            5 if !deleted.is_empty() => {
                let d = deleted.remove(next(deleted.len()));
                if next(2) == 0 {
                    admin.restore_user(&d);
                    users.push(d);
                } else {
                    admin.purge_user(&d);
                }
            }
            6 => {
                admin.assign_role("Global Administrator", &u);
            }
            _ => {
                let r = c.post(
                    &format!("/v1.0/groups/{grp}/members/$ref"),
                    &json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{u}")}),
                );
                assert!(r.status == 204 || r.status == 400, "{:?}", r.body);
            }
        }
        if step % 5 != 4 {
            continue;
        }
        // Apply the feeds.
        let (changed, link, _) = delta_round(&c, &links[0], &[]);
        links[0] = link;
        for v in changed {
            let id = v["id"].as_str().unwrap().to_string();
            if v.get("@removed").is_some() {
                // Memberships of a user deleted for good come as members@delta removals; those
                // of a soft-deleted one are kept (and hidden while it is away).
                local_users.remove(&id);
            } else {
                local_users.insert(id, v["displayName"].as_str().unwrap().to_string());
            }
        }
        let (changed, link, _) = delta_round(&c, &links[1], &[]);
        links[1] = link;
        for v in changed {
            let set = local_members.entry(v["id"].as_str().unwrap().to_string()).or_default();
            for m in v["members@delta"].as_array().into_iter().flatten() {
                let mid = m["id"].as_str().unwrap().to_string();
                if m.get("@removed").is_some() {
                    set.remove(&mid);
                } else {
                    set.insert(mid);
                }
            }
        }
        let (changed, link, _) = delta_round(&c, &links[2], &[]);
        links[2] = link;
        for v in changed.iter().filter(|v| v["id"] == ga.as_str()) {
            for m in v["members@delta"].as_array().into_iter().flatten() {
                let mid = m["id"].as_str().unwrap().to_string();
                if m.get("@removed").is_some() {
                    local_admins.remove(&mid);
                } else {
                    local_admins.insert(mid);
                }
            }
        }
        let full_users: BTreeMap<String, String> = {
            let r = c.get("/v1.0/users?$select=id,displayName&$top=999");
            r.body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| (u["id"].as_str().unwrap().to_string(), u["displayName"].as_str().unwrap().to_string()))
                .collect()
        };
        assert_eq!(local_users, full_users, "users after step {step}");
        for grp in &groups {
            let r = c.get(&format!("/v1.0/groups/{grp}/members"));
            let full: BTreeSet<String> = ids(r.body["value"].as_array().unwrap());
            let local: BTreeSet<String> = local_members
                .get(grp)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|m| local_users.contains_key(m))
                .collect();
            assert_eq!(local, full, "members of {grp} after step {step}");
        }
        let full_admins = ids(c.get(&format!("/v1.0/directoryRoles/{ga}/members")).body["value"].as_array().unwrap());
        assert_eq!(local_admins, full_admins, "Global Administrators after step {step}");
    }
}
