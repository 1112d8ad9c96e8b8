//! Unit tests of the dispatcher, driven without HTTP.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::Graph;
use super::Scenario;
use super::http::{Req, batch, iso, parse_query, split_path};

#[test]
fn iso_dates() {
    assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    assert_eq!(iso(1_798_761_600), "2027-01-01T00:00:00Z");
}

fn req<'a>(method: &str, path: &str, body: Option<Value>, base: &'a str) -> Req<'a> {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    Req { method: method.into(), segments: split_path(p), query: parse_query(q), body, prefer: None, base }
}

#[test]
fn users_page_with_whole_next_links() {
    let g = Graph::new();
    g.add_users("u", "contoso.example", 2500);
    let mut t = g.tenant.lock().unwrap();
    let r = t.dispatch(&req("GET", "/users?$select=id,userPrincipalName&$top=999", None, "http://h/v1.0"));
    let body = r.body.unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 999);
    let next = body["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(next.starts_with("http://h/v1.0/users?"), "{next}");
    let q = next.split_once('?').unwrap().1;
    let r = t.dispatch(&req("GET", &format!("/users?{q}"), None, "http://h/v1.0"));
    assert_eq!(r.body.unwrap()["value"].as_array().unwrap().len(), 999);
    let r = t.dispatch(&req("GET", "/users?$top=1000", None, "http://h/v1.0"));
    assert_eq!(r.status, 400);
}

#[test]
fn bind_is_all_or_nothing_and_limited_to_twenty() {
    let g = Graph::new();
    let users = g.add_users("u", "c.example", 25);
    let gid = g.add_group("g");
    let mut t = g.tenant.lock().unwrap();
    let refs = |ids: &[String]| json!({"members@odata.bind": ids.iter().map(|i| format!("https://graph.microsoft.com/v1.0/directoryObjects/{i}")).collect::<Vec<_>>()});
    let path = format!("/groups/{gid}");
    assert_eq!(t.dispatch(&req("PATCH", &path, Some(refs(&users[..21])), "b")).status, 400);
    let mut bad = users[..3].to_vec();
    bad.push("nope".into());
    assert_eq!(t.dispatch(&req("PATCH", &path, Some(refs(&bad)), "b")).status, 404);
    assert!(t.groups[&gid].members.is_empty());
    assert_eq!(t.dispatch(&req("PATCH", &path, Some(refs(&users[..20])), "b")).status, 204);
    assert_eq!(t.groups[&gid].members.len(), 20);
}

#[test]
fn batches_check_ids_and_dependencies() {
    let g = Graph::new();
    let mut t = g.tenant.lock().unwrap();
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/users"}]});
    assert_eq!(batch(&mut t, Some(dup), "b").status, 400);
    let dep = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users/missing"},
        {"id": "2", "dependsOn": ["1"], "method": "GET", "url": "/users"}]});
    let r = batch(&mut t, Some(dep), "b").body.unwrap();
    let by_id: HashMap<&str, u64> = r["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["id"].as_str().unwrap(), x["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(by_id["1"], 404);
    assert_eq!(by_id["2"], 424);
}

#[test]
fn a_created_object_is_missing_for_its_next_k_uses() {
    let g = Graph::new();
    g.scenario(Scenario::ReplicationDelay { k: 2 });
    let mut t = g.tenant.lock().unwrap();
    let body = json!({"accountEnabled": true, "displayName": "A", "mailNickname": "a", "userPrincipalName": "a@c.example",
        "passwordProfile": {"password": "Xy7!long-enough", "forceChangePasswordNextSignIn": true}});
    let r = t.dispatch(&req("POST", "/users", Some(body), "b"));
    let id = r.body.unwrap()["id"].as_str().unwrap().to_string();
    let get = format!("/users/{id}");
    assert_eq!(t.dispatch(&req("GET", &get, None, "b")).status, 404);
    assert_eq!(t.dispatch(&req("GET", &get, None, "b")).status, 404);
    assert_eq!(t.dispatch(&req("GET", &get, None, "b")).status, 200);
}
