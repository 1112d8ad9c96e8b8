//! The SCIM case, on a scim2-server started for it (`KEYWARD_SCIM2_SERVER`, from
//! /tmp/peers.env or `cargo xtask peers`): `KEYWARD_BENCH_DETECTION_SCIM_USERS` (3,000 by
//! default) users outside the configuration's scope, created in Bulk requests of 1,000, and
//! groups of 100 of them (one per 100 users), then the quick start applied. Each change
//! replaces the `title` of a different person of the quick start over HTTP.

use serde_json::{Value, json};

use super::watch::{self, Case, Change, Summary};
use crate::scim_harness::{Server, expect_exit, keyward, keyward_cmd, quickstart};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Creates `users` users in Bulk requests of 1,000 and groups of 100 of them.
fn seed(server: &Server, users: usize) {
    let mut ids = Vec::with_capacity(users);
    for chunk in (0..users).collect::<Vec<_>>().chunks(1000) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": {
                    "schemas": [USER_SCHEMA], "userName": format!("bench{i:05}@example.test"),
                    "displayName": format!("Bench {i}"), "title": "Clerk", "active": true}})
            })
            .collect();
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops});
        let r = server.request("POST", "/v2/Bulk", Some(&body));
        assert_eq!(r.status, 200, "{:?}", r.body);
        for op in r.body["Operations"].as_array().unwrap() {
            ids.push(op["location"].as_str().expect("a created user").rsplit('/').next().unwrap().to_string());
        }
    }
    for (g, members) in ids.chunks(100).enumerate() {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let body = json!({"schemas": [GROUP_SCHEMA], "displayName": format!("bulk-{g:03}"), "members": members});
        let r = server.request("POST", "/v2/Groups", Some(&body));
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
}

pub fn run() -> Option<Summary> {
    if std::env::var("KEYWARD_SCIM2_SERVER").map_or(true, |v| v.is_empty()) {
        println!("\n== scim: skipped, no scim2-server (`eval \"$(cat /tmp/peers.env)\"`, or `cargo xtask peers`)");
        return None;
    }
    let n: usize =
        std::env::var("KEYWARD_BENCH_DETECTION_SCIM_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    let server = Server::start();
    seed(&server, n);
    let dir = quickstart(&server);
    expect_exit(&keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]), 0);

    let server = &server;
    let changes = super::PEOPLE
        .iter()
        .enumerate()
        .map(|(k, person)| {
            let id = server.user(&format!("{person}@northwind.example"))["id"].as_str().unwrap().to_string();
            Change::new(format!("{person}: title"), &[&format!("drift: update directory.user.{person}")], move || {
                let op = json!([{"op": "replace", "path": "title", "value": format!("Changed outside git {k}")}]);
                server.patch("Users", &id, op);
            })
        })
        .collect();
    Some(watch::measure(Case {
        title: format!("{n} users and {} groups of 100 beside the quick start (scim2-server)", n.div_ceil(100)),
        command: keyward_cmd(dir.path(), &server.token, &[]),
        dir: dir.path().to_path_buf(),
        target: "directory".into(),
        extra: vec![],
        changes,
    }))
}
