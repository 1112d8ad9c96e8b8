//! The SCIM provider's change feed (`filter=meta.lastModified ge "…"`) against real servers:
//! on scim2-server, after each of a scripted sequence of changes made over HTTP (outside
//! keyward), the state built from the feed equals a fresh full read; an idle round costs two
//! requests; a removal is not reported (the documented limit) and a userName taken again ends
//! the feed; a service that ignores the filter gets full reads; changes beyond one page end the
//! round; django-scim2, whose groups carry no `meta.lastModified`, gets full reads; and
//! `keyward watch` end to end, alerting a change made over HTTP through the feed.
//!
//! `benchmark_feed` counts requests per check; see its comment.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stdout)]

#[path = "scim/harness.rs"]
mod harness;
#[path = "scim/recorder.rs"]
mod recorder;
mod support;

use support::{http_get, metrics_until, sample};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::{ENTERPRISE, Kind, Server, expect_exit, keyward, keyward_cmd, quickstart, service_provider_config};
use keyward::model::config::Connection;
use keyward::model::feed::{self, Cursor};
use keyward::model::{Binding, LiveTarget, Name, SecretRef, Target, UserAttrs, UsersScope};
use keyward::plan::{Action, Address, Change, ObjectKind, Operation, Principal, Reason, ReasonKind};
use keyward::provider::{self, Access, FeedError, Provider};
use serde_json::{Value, json};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn open(url: &str, token: &str, dir: &Path) -> Box<dyn Provider> {
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let target = Target {
        name: Name::new("directory").unwrap(),
        users: UsersScope::All,
        ca_file: None,
        connection: Connection::Scim { url: url.to_string(), token: SecretRef::File("token".into()) },
    };
    provider::open(&target, dir, Access::Read).unwrap_or_else(|e| panic!("{e}"))
}

/// What a watcher holds: the state and the cursor.
struct Held {
    live: LiveTarget,
    cursor: Cursor,
}

/// keyward's view of one service (the server, or a proxy in front of it).
struct Service<'a> {
    server: &'a Server,
    url: String,
    dir: tempfile::TempDir,
}

impl<'a> Service<'a> {
    fn new(server: &'a Server) -> Self {
        Service::at(server, server.url())
    }

    fn at(server: &'a Server, url: String) -> Self {
        Service { server, url, dir: tempfile::tempdir().unwrap() }
    }

    fn open(&self) -> Box<dyn Provider> {
        open(&self.url, &self.server.token, self.dir.path())
    }

    async fn read_with_cursor(&self) -> (LiveTarget, Option<Cursor>) {
        self.open().read_with_cursor().await.unwrap()
    }

    async fn start(&self) -> Held {
        let (live, cursor) = self.read_with_cursor().await;
        Held { live, cursor: cursor.expect("the service has a change feed") }
    }

    /// One round of the feed applied to `held`; returns the provider that read it (for its
    /// request count and attributions) and the objects changed.
    async fn catch_up(&self, held: &mut Held) -> Result<(Box<dyn Provider>, usize), FeedError> {
        let mut p = self.open();
        let changes = p.read_changes(&held.cursor, &held.live).await?;
        feed::apply(&mut held.live, &changes.changes, |b| p.binding_fingerprint(b));
        held.cursor = changes.cursor.clone();
        Ok((p, changes.objects()))
    }

    async fn full(&self) -> LiveTarget {
        self.open().read().await.unwrap()
    }

    /// Catches up and checks the state equals a full read; returns the objects changed.
    async fn step(&self, held: &mut Held, what: &str) -> usize {
        let (_, changed) = self.catch_up(held).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let full = self.full().await;
        assert_eq!(
            feed::kept(&held.live),
            feed::kept(&full),
            "{what}: the state built from the feed differs from a full read: {:?}",
            feed::differences(&held.live, &full)
        );
        changed
    }
}

fn create_user(server: &Server, user_name: &str, title: &str) -> String {
    let body = json!({"schemas": [USER_SCHEMA], "userName": user_name, "title": title, "active": true});
    let r = server.request("POST", "/v2/Users", Some(&body));
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

fn create_group(server: &Server, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    let body = json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": members});
    let r = server.request("POST", "/v2/Groups", Some(&body));
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

fn replace(server: &Server, endpoint: &str, id: &str, path: &str, value: Value) {
    server.patch(endpoint, id, json!([{"op": "replace", "path": path, "value": value}]));
}

fn add_member(server: &Server, group: &str, user: &str) {
    server.patch("Groups", group, json!([{"op": "add", "path": "members", "value": [{"value": user}]}]));
}

fn group<'a>(live: &'a LiveTarget, name: &str) -> &'a keyward::model::LiveBinding {
    live.bindings.iter().find(|b| b.binding == Binding::Group(name.into())).unwrap_or_else(|| panic!("group {name}"))
}

fn drift(kind: ObjectKind, name: &str, operation: Operation) -> Change {
    Change {
        address: Address::new(&Name::new("directory").unwrap(), kind, name),
        action: Action::Update,
        reason: Reason::new(ReasonKind::Drift, "test"),
        before: None,
        after: None,
        fingerprint: "x".into(),
        subject: None,
        notes: vec![],
        operation,
    }
}

#[tokio::test]
#[ignore = "needs scim2-server: cargo xtask test"]
async fn the_state_built_from_the_feed_equals_a_full_read_after_each_change() {
    let server = Server::start();
    let users: Vec<String> = (0..4).map(|i| create_user(&server, &format!("u{i}@example.test"), "Clerk")).collect();
    let sales = create_group(&server, "sales", &[&users[0], &users[1]]);
    let s = Service::new(&server);
    let mut held = s.start().await;
    // Right after a full read, everything is equal, not only what the feed keeps.
    assert_eq!(feed::normalized(&held.live), feed::normalized(&s.full().await));

    // Idle: two requests (users, groups), nothing changed (the objects at the cursor's instant
    // come back and equal what is held).
    let (p, changed) = s.catch_up(&mut held).await.unwrap();
    assert_eq!((p.requests(), changed), (Some(2), 0));
    let (p, changed) = s.catch_up(&mut held).await.unwrap();
    assert_eq!((p.requests(), changed), (Some(2), 0));

    let new = create_user(&server, "new.hire@example.test", "Trainee");
    assert_eq!(s.step(&mut held, "create a user").await, 1);
    assert!(held.live.accounts.iter().any(|a| a.id == new));

    replace(&server, "Users", &users[0], "title", json!("Buyer"));
    let (mut p, changed) = s.catch_up(&mut held).await.unwrap();
    assert_eq!(changed, 1);
    assert_eq!(held.live.accounts.iter().find(|a| a.id == users[0]).unwrap().attrs.job_title.as_deref(), Some("Buyer"));
    // Who and when: SCIM tells when (the user's meta.lastModified), not who.
    let update = drift(
        ObjectKind::User,
        "u0",
        Operation::UpdateUser {
            user_name: "u0@example.test".into(),
            set: UserAttrs { job_title: Some("Clerk".into()), ..UserAttrs::default() },
        },
    );
    let found = p.attribute(&[&update]).await;
    let stamp = server.user("u0@example.test")["meta"]["lastModified"].as_str().unwrap().to_string();
    let a = found[0].as_ref().expect("the change is attributed");
    assert_eq!((a.actor.as_deref(), a.time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)), (None, stamp));
    assert_eq!(s.step(&mut held, "nothing more").await, 0);

    replace(&server, "Users", &users[1], "active", json!(false));
    assert_eq!(s.step(&mut held, "deactivate a user").await, 1);
    replace(&server, "Users", &users[1], &format!("{ENTERPRISE}:manager"), json!({"value": users[2]}));
    s.step(&mut held, "set a manager").await;
    replace(&server, "Users", &users[2], "userName", json!("renamed@example.test"));
    s.step(&mut held, "rename a manager").await;
    let managed = held.live.accounts.iter().find(|a| a.id == users[1]).unwrap();
    assert_eq!(managed.attrs.manager.as_deref(), Some("renamed@example.test"));

    add_member(&server, &sales, &users[3]);
    let (mut p, changed) = s.catch_up(&mut held).await.unwrap();
    assert_eq!(changed, 1);
    assert!(group(&held.live, "sales").members.contains(&users[3]));
    let grant = drift(
        ObjectKind::Assignment,
        "u3/sales",
        Operation::Revoke {
            principal: Principal::User("u3@example.test".into()),
            binding: Binding::Group("sales".into()),
        },
    );
    let a = p.attribute(&[&grant]).await.remove(0).expect("the membership is attributed");
    let stamp = server.group("sales")["meta"]["lastModified"].as_str().unwrap().to_string();
    assert_eq!(a.time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true), stamp);
    assert_eq!(s.step(&mut held, "add a member").await, 0);

    // A member removed moves the group's meta.lastModified on scim2-server: the feed sees it.
    server.remove_member(&sales, &users[0]);
    assert_eq!(s.step(&mut held, "remove a member").await, 1);
    assert!(!group(&held.live, "sales").members.contains(&users[0]));

    let ops = create_group(&server, "ops", &[&new]);
    s.step(&mut held, "create a group with a member").await;
    replace(&server, "Groups", &ops, "displayName", json!("operations"));
    s.step(&mut held, "rename a group").await;
    assert_eq!(group(&held.live, "operations").members, vec![new.clone()]);

    // Several changes in one round.
    for i in 0..5 {
        create_user(&server, &format!("batch{i}@example.test"), "Batch");
    }
    add_member(&server, &ops, &users[3]);
    replace(&server, "Users", &users[3], "title", json!("Lead"));
    assert_eq!(s.step(&mut held, "a round of seven changes").await, 7);

    // Removals are not reported: the deleted account stays held until a full read.
    assert_eq!(server.request("DELETE", &format!("/v2/Users/{}", users[3]), None).status, 204);
    let (_, changed) = s.catch_up(&mut held).await.unwrap();
    assert_eq!(changed, 0);
    let differences = feed::differences(&held.live, &s.full().await);
    assert_eq!(differences, vec![format!("account {}: held, not read", users[3])]);
    // Its userName taken by a new account tells the old one is gone: the round is refused, so
    // the caller reads in full.
    create_user(&server, "u3@example.test", "Back");
    match s.catch_up(&mut held).await {
        Err(FeedError::Expired { message, .. }) => {
            assert!(message.contains("now belongs to another account"), "{message}")
        }
        other => panic!("a userName taken again ends the feed: {:?}", other.map(|(_, n)| n)),
    }
    let mut held = s.start().await;
    assert_eq!(s.step(&mut held, "after a new full read").await, 0);
}

#[tokio::test]
#[ignore = "needs scim2-server: cargo xtask test"]
async fn a_service_that_ignores_the_filter_gets_full_reads() {
    let server = Server::start();
    for i in 0..3 {
        create_user(&server, &format!("u{i}@example.test"), "Clerk");
    }
    let proxy = recorder::Recorder::start(server.port);
    let s = Service::at(&server, proxy.url());

    // From the start: the full read finds the filter ignored and gives no cursor.
    proxy.drop_stamp_filter.store(true, Ordering::Relaxed);
    let (live, cursor) = s.read_with_cursor().await;
    assert_eq!(live.accounts.len(), 3);
    assert_eq!(cursor, None, "no feed from a service that ignores the filter");

    // Later: the round answers with users older than the cursor, and is refused rather than
    // taken for news.
    proxy.drop_stamp_filter.store(false, Ordering::Relaxed);
    let mut held = s.start().await;
    let u0 = server.user("u0@example.test")["id"].as_str().unwrap().to_string();
    replace(&server, "Users", &u0, "title", json!("Buyer"));
    proxy.drop_stamp_filter.store(true, Ordering::Relaxed);
    match s.catch_up(&mut held).await {
        Err(FeedError::Expired { message, .. }) => assert!(message.contains("ignores the filter"), "{message}"),
        other => panic!("an ignored filter is refused: {:?}", other.map(|(_, n)| n)),
    }
}

#[tokio::test]
#[ignore = "needs scim2-server: cargo xtask test"]
async fn changes_beyond_one_page_end_the_round() {
    // Pages of 2.
    let server = Server::start_with(Some(service_provider_config(None, 2)));
    create_user(&server, "u0@example.test", "Clerk");
    let s = Service::new(&server);
    let mut held = s.start().await;
    for i in 1..4 {
        create_user(&server, &format!("u{i}@example.test"), "Clerk");
    }
    match s.catch_up(&mut held).await {
        Err(FeedError::Expired { message, .. }) => assert!(message.contains("more than one page holds"), "{message}"),
        other => panic!("changes beyond a page are refused: {:?}", other.map(|(_, n)| n)),
    }
    let mut held = s.start().await;
    assert_eq!(held.live.accounts.len(), 4);
    create_user(&server, "u4@example.test", "Clerk");
    assert_eq!(s.step(&mut held, "one change in one page").await, 1);
}

/// django-scim2 stamps users with their creation date only and groups not at all: whether or
/// not it announces filtering, it gets full reads.
#[tokio::test]
#[ignore = "needs django-scim2: cargo xtask test"]
async fn django_scim2_gets_full_reads() {
    for spc in [None, Some(service_provider_config(None, 50))] {
        let server = Server::start_kind_with(Kind::DjangoScim2, spc);
        create_user(&server, "u0@example.test", "Clerk");
        let r = server.request("POST", "/v2/Groups", Some(&json!({"schemas": [GROUP_SCHEMA], "displayName": "g"})));
        assert_eq!(r.status, 201, "{:?}", r.body);
        let s = Service::new(&server);
        let (live, cursor) = s.read_with_cursor().await;
        assert_eq!((live.accounts.len(), live.bindings.len()), (1, 1));
        assert_eq!(cursor, None, "no feed on django-scim2 ({:?})", server.config["filter"]);
    }
}

// -- keyward watch, end to end --------------------------------------------------------------------

const MODE_INCREMENTAL: &str = "keyward_read_mode{target=\"directory\",mode=\"incremental\"}";
const MODE_FULL: &str = "keyward_read_mode{target=\"directory\",mode=\"full\"}";
const REQUESTS: &str = "keyward_read_requests{target=\"directory\"}";
const RESTARTS: &str = "keyward_feed_restarts{target=\"directory\"}";

/// `keyward watch` every 200 ms on `dir`: the process, its address, its stdout lines.
fn watch(
    dir: &Path,
    token: &str,
    extra: &[&str],
    hook: Option<&str>,
) -> (std::process::Child, String, mpsc::Receiver<String>) {
    let mut args = vec!["watch", ".", "--interval", "200ms", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut cmd = keyward_cmd(dir, token, &args);
    if let Some(url) = hook {
        let path = dir.join("keyward.yaml");
        let mut doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        doc["notify"] = serde_yaml::from_str("{webhook: \"${env:KEYWARD_TEST_HOOK}\"}").unwrap();
        std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
        cmd.env("KEYWARD_TEST_HOOK", url);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (err_tx, errs) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let (out_tx, outs) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let addr = loop {
        let line = errs.recv_timeout(Duration::from_secs(60)).expect("watch announces its address");
        if let Some(rest) = line.split_once("serving http://") {
            break rest.1.split('/').next().unwrap().to_string();
        }
    };
    (child, addr, outs)
}

fn stop(mut child: std::process::Child) {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Waits for an alert line containing all of `parts`.
fn alert(outs: &mpsc::Receiver<String>, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = outs.recv_timeout(left).unwrap_or_else(|_| panic!("an alert naming {parts:?}"));
        if parts.iter().all(|p| line.contains(p)) {
            return line;
        }
    }
}

/// The quick start applied on `server`, keyward's target at `url` (the server or a proxy).
fn applied_quickstart(server: &Server, url: &str) -> tempfile::TempDir {
    let dir = quickstart(server);
    expect_exit(&keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]), 0);
    harness::retarget_url(dir.path(), url);
    expect_exit(&keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]), 0);
    dir
}

#[test]
#[ignore = "needs scim2-server: cargo xtask test"]
fn watch_reads_scim_through_the_feed_and_alerts_a_change_made_outside_keyward() {
    let server = Server::start();
    let dir = applied_quickstart(&server, &server.url());
    let (hook, bodies) = support::webhook("/hooks/alerts");
    let (child, addr, outs) = watch(dir.path(), &server.token, &["--resync", "1h"], Some(&hook));

    // The first check reads in full; the next ones through the feed, two requests each.
    let m = metrics_until(&addr, "checks turn incremental", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    assert_eq!(sample(&m, REQUESTS), Some(2.0), "{m}");
    assert_eq!(sample(&m, "keyward_read_changed_objects{target=\"directory\"}"), Some(0.0), "{m}");
    support::assert_no_alert(&outs, "no drift, no alert");

    // A title changed over HTTP is alerted, and the webhook's alert says when it was made.
    let janet = server.user("janet.leverling@northwind.example");
    replace(&server, "Users", janet["id"].as_str().unwrap(), "title", json!("Hacker"));
    let stamp = server.user("janet.leverling@northwind.example")["meta"]["lastModified"].as_str().unwrap().to_string();
    alert(&outs, &["drift: update directory.user.janet.leverling"]);
    let body = bodies.recv_timeout(Duration::from_secs(20)).expect("the webhook is called");
    let when = format!("changed outside git at {}Z (user modified)", &stamp[..19]);
    assert!(body.contains("janet.leverling") && body.contains(&when), "{body}");
    let m = http_get(&addr, "/metrics");
    assert_eq!(sample(&m, MODE_INCREMENTAL), Some(1.0), "{m}");
    assert_eq!(sample(&m, RESTARTS), Some(0.0), "read through the feed: {m}");

    // A membership granted over HTTP: the group's meta.lastModified moves.
    let admins = server.group("finance-admins");
    let steven = server.user("steven.buchanan@northwind.example");
    add_member(&server, admins["id"].as_str().unwrap(), steven["id"].as_str().unwrap());
    alert(&outs, &["drift: revoke directory.", "steven.buchanan"]);
    assert_eq!(sample(&http_get(&addr, "/metrics"), RESTARTS), Some(0.0));
    stop(child);
}

#[test]
#[ignore = "needs scim2-server: cargo xtask test"]
fn watch_falls_back_to_full_reads_without_a_false_alert_when_the_service_ignores_the_filter() {
    let server = Server::start();
    let proxy = recorder::Recorder::start(server.port);
    let dir = applied_quickstart(&server, &proxy.url());
    let (child, addr, outs) = watch(dir.path(), &server.token, &["--resync", "1h"], None);
    metrics_until(&addr, "checks turn incremental", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));

    // The service starts ignoring the filter: one round is refused, and from then on every
    // check reads in full (the full read finds the filter ignored), alerting nothing.
    proxy.drop_stamp_filter.store(true, Ordering::Relaxed);
    metrics_until(&addr, "the feed starts again", |m| sample(m, RESTARTS) == Some(1.0));
    metrics_until(&addr, "full reads", |m| sample(m, MODE_FULL) == Some(1.0));
    std::thread::sleep(Duration::from_millis(1000));
    let m = http_get(&addr, "/metrics");
    assert_eq!((sample(&m, MODE_FULL), sample(&m, RESTARTS)), (Some(1.0), Some(1.0)), "no loop of restarts: {m}");
    support::assert_no_alert(&outs, "no false alert");

    // Full reads still see a change.
    let janet = server.user("janet.leverling@northwind.example");
    replace(&server, "Users", janet["id"].as_str().unwrap(), "title", json!("Hacker"));
    alert(&outs, &["drift: update directory.user.janet.leverling"]);
    stop(child);
}

// -- benchmark ------------------------------------------------------------------------------------

/// Creates `users` users `bench00000@example.test`… in Bulk requests of 1,000, and `groups`
/// groups of `members` members each; returns the user ids.
fn populate(server: &Server, users: usize, groups: usize, members: usize) -> Vec<String> {
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
            let status = op["status"].as_str().map(str::to_string).unwrap_or_else(|| op["status"].to_string());
            assert_eq!(status, "201", "{op}");
            ids.push(op["location"].as_str().unwrap().rsplit('/').next().unwrap().to_string());
        }
    }
    for g in 0..groups {
        let held: Vec<&str> = (0..members).map(|k| ids[(g * members + k) % ids.len()].as_str()).collect();
        create_group(server, &format!("group-{g:03}"), &held);
    }
    ids
}

/// Requests and wall time of `watch`'s reads of one SCIM target, full against incremental.
/// `KEYWARD_SCIM_FEED_BENCH_USERS` users (300 by default, so the suite stays quick; BENCHMARKS.md
/// records 3,000) and 20 groups of 100 members on scim2-server's defaults (pages of 1,000). Per
/// check: a full read with its cursor (`read_with_cursor`), or one round of the feed folded
/// into the state held. The 10 changes, made over HTTP before the check: 5 user updates, 1 user
/// created, 3 members added, 1 removed. Request counts are asserted; times never are (they are
/// mostly the server's).
#[tokio::test]
#[ignore = "needs scim2-server: cargo xtask test"]
async fn benchmark_feed() {
    let users: usize = std::env::var("KEYWARD_SCIM_FEED_BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let (groups, members) = (20, 100);
    let server = Server::start();
    let ids = populate(&server, users, groups, members);
    let s = Service::new(&server);
    // By name: group-000, group-001…
    let mut named: Vec<(String, String)> = server
        .groups()
        .iter()
        .map(|g| (g["displayName"].as_str().unwrap().to_string(), g["id"].as_str().unwrap().to_string()))
        .collect();
    named.sort();
    let group_ids: Vec<String> = named.into_iter().map(|(_, id)| id).collect();
    let mut rows: Vec<(String, usize, Duration, usize)> = Vec::new();

    let started = Instant::now();
    let mut p = s.open();
    let (live, cursor) = p.read_with_cursor().await.unwrap();
    let full_requests = p.requests().unwrap();
    rows.push(("full read with cursor".into(), full_requests, started.elapsed(), 0));
    // Discovery (3), the users' and groups' pages, the two newest stamps and the filter check.
    assert_eq!(full_requests, 3 + users.div_ceil(1000) + groups.div_ceil(1000) + 3);
    let mut held = Held { live, cursor: cursor.expect("a feed") };

    for _ in 0..3 {
        let started = Instant::now();
        let (p, changed) = s.catch_up(&mut held).await.unwrap();
        rows.push(("incremental, idle".into(), p.requests().unwrap(), started.elapsed(), changed));
        assert_eq!((p.requests(), changed), (Some(2), 0));
    }
    for round in 0..2 {
        for (k, id) in ids.iter().skip(round * 5).take(5).enumerate() {
            replace(&server, "Users", id, "title", json!(format!("Title {round}-{k}")));
        }
        let new = create_user(&server, &format!("new{round}@example.test"), "Trainee");
        for g in &group_ids[..3] {
            add_member(&server, g, &new);
        }
        let removed = &ids[(3 * members + round) % ids.len()];
        server.remove_member(&group_ids[3], removed);
        let started = Instant::now();
        let (p, changed) = s.catch_up(&mut held).await.unwrap();
        rows.push(("incremental, 10 changes".into(), p.requests().unwrap(), started.elapsed(), changed));
        assert_eq!((p.requests(), changed), (Some(2), 10));
        let started = Instant::now();
        let mut p = s.open();
        let full = p.read().await.unwrap();
        rows.push(("full read, after 10 changes".into(), p.requests().unwrap(), started.elapsed(), 0));
        assert_eq!(feed::kept(&held.live), feed::kept(&full), "{:?}", feed::differences(&held.live, &full));
    }
    println!("SCIM feed benchmark on scim2-server: {users} users, {groups} groups of {members} members");
    println!("| check | requests | wall | objects changed |");
    println!("|---|---:|---:|---:|");
    for (what, requests, wall, changed) in rows {
        println!("| {what} | {requests} | {} ms | {changed} |", wall.as_millis());
    }
}
