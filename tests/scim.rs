//! The `scim` provider against two real, independent SCIM servers from PyPI, pinned and
//! installed by `cargo xtask test`: scim2-server (KEYWARD_SCIM2_SERVER) and django-scim2 in the
//! Django project under xtask/peers/django_scim/ (KEYWARD_DJANGO_SCIM_PYTHON). Each test starts
//! its own server on a free loopback port with a token made at test time. Bodies shared by both
//! servers run once per server (`on_each_server!`), asserting what keyward does where a server
//! lacks a feature (django-scim2 has no Bulk: one request per change); docs/servers.md lists what
//! each server supports.
//!
//! Through the binary: the quick start retargeted to SCIM plans, applies and converges, over
//! Bulk and over one request per change; changes made directly over HTTP show up in the plan
//! and are reverted; a wrong token is a clear error; a re-run after an interrupted apply
//! converges without duplicates. Through the library: a creation that meets an existing
//! account adopts it (with hostile userNames in the lookup filter), and a write to an object
//! changed since it was read is refused as such.
//!
//! `benchmark_onboarding` counts requests for a large onboarding; see its comment.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stdout)]

#[path = "scim/harness.rs"]
mod harness;
#[path = "scim/recorder.rs"]
mod recorder;
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::{
    ENTERPRISE, Kind, Server, expect_exit, keyward, keyward_cmd, quickstart, service_provider_config, synthetic, text,
};
use keyward::model::config::Connection;
use keyward::model::{Binding, Name, SecretRef, Target, UserAttrs, UsersScope};
use keyward::plan::{Action, Address, Change, ObjectKind, Operation, Principal, Reason, ReasonKind};
use keyward::provider::{self, Access, Provider};
use serde_json::{Value, json};

/// Runs one test body against each SCIM server: one `#[test]` per name, calling `$body(kind)`.
macro_rules! on_each_server {
    ($body:ident: $($test:ident => $kind:expr),+ $(,)?) => {$(
        #[test]
        #[ignore = "needs scim2-server and django-scim2: cargo xtask test"]
        fn $test() {
            $body($kind)
        }
    )+};
}

/// Likewise for an async body.
macro_rules! on_each_server_async {
    ($body:ident: $($test:ident => $kind:expr),+ $(,)?) => {$(
        #[tokio::test]
        #[ignore = "needs scim2-server and django-scim2: cargo xtask test"]
        async fn $test() {
            $body($kind).await
        }
    )+};
}

/// The quick start's users and the groups its roles bind to.
const QUICKSTART_USERS: usize = 15;
const QUICKSTART_GROUPS: usize = 6;

fn count(reqs: &[harness::Logged], method: &str, path_prefix: &str) -> usize {
    reqs.iter().filter(|r| r.method == method && r.path().starts_with(path_prefix)).count()
}

/// Runs keyward and returns its output and the requests the server saw meanwhile.
fn run(server: &Server, dir: &Path, args: &[&str], seen: &mut Vec<harness::Logged>) -> std::process::Output {
    server.settle();
    let mark = server.requests().len();
    let o = keyward(dir, &server.token, args);
    server.settle();
    seen.extend(server.requests_since(mark));
    o
}

/// Plans, applies and plans again the quick start, checks what the server holds, and returns
/// the folder and keyward's requests.
fn apply_quickstart_and_check(server: &Server) -> (tempfile::TempDir, Vec<harness::Logged>) {
    let dir = quickstart(server);
    let mut seen = Vec::new();
    let o = run(server, dir.path(), &["plan", "--detailed-exitcode", "."], &mut seen);
    expect_exit(&o, 2);
    let (out, _) = text(&o);
    assert!(out.contains("directory.user.nancy.davolio"), "{out}");
    assert!(out.contains("directory.assignment.yusuf.demir/gl-accountant"), "{out}");
    assert!(out.contains("Plan: 21 to create, 0 to update, 10 to assign, 0 to revoke"), "{out}");
    // SCIM has neither service accounts nor a sign-in methods policy (capabilities table):
    // payments-bot, whose role is bound here, is named in a note instead of planned.
    assert!(!out.contains("service-account") && !out.contains("auth-method"), "{out}");
    assert!(
        out.contains("service account `payments-bot` is not managed on target `directory`"),
        "the service account is dropped silently:\n{out}"
    );

    let o = run(server, dir.path(), &["apply", "--auto-approve", "."], &mut seen);
    expect_exit(&o, 0);
    assert!(text(&o).0.contains("Apply complete! 31 changes applied."), "{}", text(&o).0);

    // What the server now holds.
    let users = server.users();
    assert_eq!(users.len(), QUICKSTART_USERS);
    let nancy = server.user("nancy.davolio@northwind.example");
    let laura = server.user("laura.callahan@northwind.example");
    assert_eq!(nancy["displayName"], "Nancy Davolio");
    assert_eq!(nancy["name"]["givenName"], "Nancy");
    assert_eq!(nancy["name"]["familyName"], "Davolio");
    assert_eq!(nancy["title"], "Financial Controller");
    assert_eq!(nancy["emails"][0]["value"], "nancy.davolio@northwind.example");
    assert_eq!(nancy[ENTERPRISE]["department"], "Finance");
    assert_eq!(nancy[ENTERPRISE]["employeeNumber"], "E1005");
    assert_eq!(nancy[ENTERPRISE]["manager"]["value"], laura["id"]);
    assert_eq!(server.user("tomas.novak@northwind.example")["active"], false);
    let groups = server.groups();
    assert_eq!(groups.len(), QUICKSTART_GROUPS, "{groups:#?}");
    assert_eq!(
        server.member_names("gl-accountants"),
        vec!["nancy.davolio@northwind.example", "yusuf.demir@northwind.example"]
    );

    let o = run(server, dir.path(), &["plan", "--detailed-exitcode", "."], &mut seen);
    expect_exit(&o, 0);
    (dir, seen)
}

/// The quick start converges: over Bulk where the server announces it (two requests: the
/// creations, then the memberships), otherwise with one request per creation and one PATCH
/// per group.
fn quickstart_converges(kind: Kind) {
    let server = Server::start_kind(kind);
    let (_dir, reqs) = apply_quickstart_and_check(&server);
    if server.announces_bulk() {
        assert_eq!(count(&reqs, "POST", "/v2/Bulk"), 2, "{reqs:#?}");
        assert_eq!(count(&reqs, "POST", "/v2/Users") + count(&reqs, "PATCH", "/v2/"), 0, "{reqs:#?}");
    } else {
        assert_eq!(count(&reqs, "POST", "/v2/Bulk"), 0, "{reqs:#?}");
        assert_eq!(count(&reqs, "POST", "/v2/Users"), QUICKSTART_USERS);
        assert_eq!(count(&reqs, "POST", "/v2/Groups"), QUICKSTART_GROUPS);
        assert_eq!(count(&reqs, "PATCH", "/v2/Groups/"), QUICKSTART_GROUPS);
    }
    // Reads: discovery, one page of users, one of groups, per run (plan, apply, plan).
    assert_eq!(count(&reqs, "GET", "/v2/ServiceProviderConfig"), 3);
    assert_eq!(count(&reqs, "GET", "/v2/Users"), 3);
    assert_eq!(count(&reqs, "GET", "/v2/Groups"), 3);
    assert!(reqs.iter().all(|r| r.status < 400), "{reqs:#?}");
}

on_each_server!(quickstart_converges:
    quickstart_converges_over_bulk_on_scim2_server => Kind::Scim2Server,
    quickstart_converges_without_bulk_on_django_scim2 => Kind::DjangoScim2,
);

/// A server announcing no Bulk, and pages of 4 so that reading takes several pages.
fn quickstart_converges_one_request_per_change_in_pages_of_4(kind: Kind) {
    let server = Server::start_kind_with(kind, Some(service_provider_config(None, 4)));
    let (_dir, reqs) = apply_quickstart_and_check(&server);
    assert_eq!(count(&reqs, "POST", "/v2/Bulk"), 0);
    assert_eq!(count(&reqs, "POST", "/v2/Users"), QUICKSTART_USERS);
    assert_eq!(count(&reqs, "POST", "/v2/Groups"), QUICKSTART_GROUPS);
    // One PATCH per group, however many members it gains.
    assert_eq!(count(&reqs, "PATCH", "/v2/Groups/"), QUICKSTART_GROUPS);
    // The last plan read 15 users in pages of 4 and 6 groups in pages of 4.
    let last_plan: Vec<_> = reqs.iter().rev().take(1 + 4 + 2).collect();
    assert!(last_plan.iter().all(|r| r.method == "GET"), "{last_plan:#?}");
    assert_eq!(last_plan.iter().filter(|r| r.path() == "/v2/Users").count(), 4, "{last_plan:#?}");
    assert!(reqs.iter().all(|r| r.status < 400), "{reqs:#?}");
}

on_each_server!(quickstart_converges_one_request_per_change_in_pages_of_4:
    quickstart_converges_one_request_per_change_without_bulk_on_scim2_server => Kind::Scim2Server,
    quickstart_converges_one_request_per_change_in_pages_of_4_on_django_scim2 => Kind::DjangoScim2,
);

#[test]
#[ignore = "needs scim2-server: cargo xtask test"]
fn changes_made_over_http_are_detected_and_reverted() {
    let server = Server::start();
    let (dir, _) = apply_quickstart_and_check(&server);
    let nancy = server.user("nancy.davolio@northwind.example");
    let yusuf = server.user("yusuf.demir@northwind.example");
    let hannah = server.user("hannah.schulz@northwind.example");
    let gl = server.group("gl-accountants");
    let it = server.group("it-admins");
    // Someone edits the directory directly.
    server.patch(
        "Groups",
        gl["id"].as_str().unwrap(),
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", yusuf["id"].as_str().unwrap())}]),
    );
    server.patch(
        "Groups",
        it["id"].as_str().unwrap(),
        json!([{"op": "add", "path": "members", "value": [{"value": hannah["id"]}]}]),
    );
    server.patch(
        "Users",
        nancy["id"].as_str().unwrap(),
        json!([{"op": "replace", "path": "title", "value": "Intern"}]),
    );
    server.patch("Users", yusuf["id"].as_str().unwrap(), json!([{"op": "replace", "path": "active", "value": false}]));

    let o = keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "--out", "drift.json", "."]);
    expect_exit(&o, 2);
    let (out, _) = text(&o);
    assert!(out.contains("Plan: 0 to create, 2 to update, 1 to assign, 1 to revoke"), "{out}");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("drift.json")).unwrap()).unwrap();
    let mut seen: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["action"].as_str().unwrap(), c["address"].as_str().unwrap()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            "assign directory.assignment.yusuf.demir/gl-accountant",
            "enable directory.user.yusuf.demir",
            "revoke directory.assignment.hannah.schulz/it-admin",
            "update directory.user.nancy.davolio",
        ]
    );
    let update = plan["changes"].as_array().unwrap().iter().find(|c| c["action"] == "update").unwrap();
    assert_eq!(update["before"], json!({"jobTitle": "Intern"}));
    assert_eq!(update["after"], json!({"jobTitle": "Financial Controller"}));
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    let o = keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]);
    expect_exit(&o, 0);
    assert_eq!(server.user("nancy.davolio@northwind.example")["title"], "Financial Controller");
    assert_eq!(server.user("yusuf.demir@northwind.example")["active"], true);
    assert!(server.member_names("gl-accountants").contains(&"yusuf.demir@northwind.example".to_string()));
    assert!(!server.member_names("it-admins").contains(&"hannah.schulz@northwind.example".to_string()));
}

fn a_wrong_token_is_a_clear_error(kind: Kind) {
    let server = Server::start_kind(kind);
    let dir = quickstart(&server);
    let wrong = harness::random_token();
    let o = keyward(dir.path(), &wrong, &["plan", "."]);
    expect_exit(&o, 1);
    let (out, err) = text(&o);
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert!(err.contains("check the token in ${env:KEYWARD_TEST_SCIM_TOKEN}"), "{err}");
    assert!(!err.contains(&wrong) && !out.contains(&wrong), "the token was printed");
    assert!(!err.contains(&server.token) && !out.contains(&server.token));
    // And a missing one says which variable.
    let o = keyward_cmd(dir.path(), "", &["plan", "."]).env_remove(harness::TOKEN_VAR).output().unwrap();
    expect_exit(&o, 1);
    assert!(text(&o).1.contains("KEYWARD_TEST_SCIM_TOKEN"), "{}", text(&o).1);
}

on_each_server!(a_wrong_token_is_a_clear_error:
    a_wrong_token_is_a_clear_error_on_scim2_server => Kind::Scim2Server,
    a_wrong_token_is_a_clear_error_on_django_scim2 => Kind::DjangoScim2,
);

/// Kills an apply once the server has seen `after` writes, then re-runs it.
fn interrupted_apply_converges(server: &Server, write_path: &str, after: usize) {
    const USERS: usize = 150;
    const ROLES: usize = 6;
    let dir = synthetic(server, USERS, ROLES, 2);
    let mark = server.requests().len();
    let mut child = keyward_cmd(dir.path(), &server.token, &["apply", "--auto-approve", "."])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let writes =
            server.requests_since(mark).iter().filter(|r| r.method == "POST" && r.path() == write_path).count();
        if writes >= after {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the apply finished before it could be interrupted");
        assert!(Instant::now() < deadline, "the apply made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = server.users().len();
    assert!(partial < USERS, "the apply was not interrupted ({partial} users)");

    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    let o = keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]);
    expect_exit(&o, 0);
    // Nothing twice: one account per userName, one group per name.
    let users = server.users();
    assert_eq!(users.len(), USERS);
    let mut names: Vec<String> =
        server.groups().iter().map(|g| g["displayName"].as_str().unwrap().to_string()).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!((before, names.len()), (ROLES, ROLES), "{names:?}");
    let total: usize = server.groups().iter().map(|g| g["members"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(total, USERS * 2);
}

/// One request per change: killed after a few creations.
fn a_rerun_after_an_interrupted_apply_converges_without_duplicates(kind: Kind) {
    let server = Server::start_kind_with(kind, Some(service_provider_config(None, 50)));
    interrupted_apply_converges(&server, "/v2/Users", 10);
}

on_each_server!(a_rerun_after_an_interrupted_apply_converges_without_duplicates:
    a_rerun_after_an_interrupted_apply_converges_without_duplicates_on_scim2_server => Kind::Scim2Server,
);

#[test]
#[ignore = "needs scim2-server: cargo xtask test"]
fn a_rerun_after_an_interrupted_bulk_apply_converges_without_duplicates() {
    // Small Bulk limits (10 operations, 8 KiB) so the creations take many requests, split by
    // both limits.
    let server = Server::start_with(Some(service_provider_config(Some((10, 8 * 1024)), 50)));
    interrupted_apply_converges(&server, "/v2/Bulk", 3);
    let reqs = server.requests();
    assert!(reqs.iter().all(|r| r.status != 413), "a Bulk request exceeded the limits");
}

/// Users who leave git are disabled and stripped of their roles, then deleted once
/// `lifecycle.removedUsers` says so.
fn users_who_leave_are_disabled_then_deleted(server: &Server) {
    let dir = synthetic(server, 20, 4, 2);
    expect_exit(&keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]), 0);
    assert_eq!(server.users().len(), 20);
    // user00018 and user00019 leave (nobody reports to them).
    harness::write_users(dir.path(), 0..18, 4, 2);
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    assert!(
        text(&o).0.contains("0 to create, 0 to update, 0 to assign, 4 to revoke, 2 to disable, 0 to delete"),
        "{}",
        text(&o).0
    );
    for n in ["user00018@bench.example", "user00019@bench.example"] {
        assert_eq!(server.user(n)["active"], false);
    }
    let members: usize = server.groups().iter().map(|g| g["members"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(members, 18 * 2);
    let yaml = dir.path().join("keyward.yaml");
    let mut text_yaml = std::fs::read_to_string(&yaml).unwrap();
    text_yaml.push_str("lifecycle:\n  removedUsers: delete\n");
    std::fs::write(&yaml, text_yaml).unwrap();
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    assert!(text(&o).0.contains("2 to delete"), "{}", text(&o).0);
    assert_eq!(server.users().len(), 18);
    expect_exit(&keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]), 0);
}

#[test]
#[ignore = "needs scim2-server: cargo xtask test"]
fn users_who_leave_are_disabled_then_deleted_over_bulk() {
    let server = Server::start();
    users_who_leave_are_disabled_then_deleted(&server);
    let reqs = server.requests();
    assert_eq!(count(&reqs, "DELETE", "/v2/"), 0, "deletions go through Bulk");
}

#[test]
#[ignore = "needs scim2-server: cargo xtask test"]
fn users_who_leave_are_disabled_then_deleted_without_bulk() {
    let server = Server::start_with(Some(service_provider_config(None, 7)));
    users_who_leave_are_disabled_then_deleted(&server);
    assert_eq!(count(&server.requests(), "DELETE", "/v2/Users/"), 2);
}

/// Users who leave git while `removedUsers: delete` is set are deleted in one apply, with no
/// revoke of their memberships first: the delete takes them with it, and a revoke sent to the
/// server for a user being deleted only gave the apply a way to fail.
fn users_who_leave_are_deleted_without_revokes_first(kind: Kind) {
    let server = Server::start_kind(kind);
    let dir = synthetic(&server, 10, 4, 2);
    let yaml = dir.path().join("keyward.yaml");
    let mut text_yaml = std::fs::read_to_string(&yaml).unwrap();
    text_yaml.push_str("lifecycle:\n  removedUsers: delete\n");
    std::fs::write(&yaml, text_yaml).unwrap();
    expect_exit(&keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]), 0);
    assert_eq!(server.users().len(), 10);
    // user00008 and user00009 leave (nobody reports to them).
    harness::write_users(dir.path(), 0..8, 4, 2);
    let mut seen = Vec::new();
    let o = run(&server, dir.path(), &["apply", "--auto-approve", "."], &mut seen);
    let (out, err) = text(&o);
    assert!(out.contains("0 to revoke") && out.contains("2 to delete"), "{out}\n{err}");
    expect_exit(&o, 0);
    assert!(seen.iter().all(|r| r.status < 400), "{seen:#?}");
    assert_eq!(server.users().len(), 8);
    // scim2-server keeps a deleted user's id in its groups (a reference to no one, which grants
    // nothing); django-scim2 drops it. Either way no group holds a user who still exists.
    let ids: Vec<Value> = server.users().iter().map(|u| u["id"].clone()).collect();
    let members: usize = server
        .groups()
        .iter()
        .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default())
        .filter(|m| ids.contains(&m["value"]))
        .count();
    assert_eq!(members, 8 * 2, "only the remaining users are members");
    expect_exit(&keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]), 0);
}

on_each_server!(users_who_leave_are_deleted_without_revokes_first:
    users_who_leave_are_deleted_without_revokes_first_on_scim2_server => Kind::Scim2Server,
    users_who_leave_are_deleted_without_revokes_first_on_django_scim2 => Kind::DjangoScim2,
);

// ---------------------------------------------------------------------------------------------
// Through the library: races that a single command cannot stage.

fn open(server: &Server, dir: &Path) -> Box<dyn Provider> {
    open_at(&server.url(), &server.token, dir)
}

/// A provider for the SCIM service at `url`.
fn open_at(url: &str, token: &str, dir: &Path) -> Box<dyn Provider> {
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let target = Target {
        name: Name::new("directory").unwrap(),
        users: UsersScope::All,
        ca_file: None,
        connection: Connection::Scim { url: url.to_string(), token: SecretRef::File("token".into()) },
    };
    provider::open(&target, dir, Access::Write).unwrap_or_else(|e| panic!("{e}"))
}

fn change(action: Action, kind: ObjectKind, name: &str, operation: Operation) -> Change {
    Change {
        address: Address::new(&Name::new("directory").unwrap(), kind, name),
        action,
        reason: Reason::new(ReasonKind::Config, "test"),
        before: None,
        after: None,
        fingerprint: "absent".into(),
        subject: None,
        notes: vec![],
        operation,
    }
}

fn create_user(user_name: &str, title: &str) -> Change {
    let attrs = UserAttrs { job_title: Some(title.into()), department: Some("Ops".into()), ..Default::default() };
    change(
        Action::Create,
        ObjectKind::User,
        "u",
        Operation::CreateUser { user_name: user_name.into(), attrs, active: true },
    )
}

/// userNames built to break a filter that does not escape its values.
const HOSTILE: [&str; 4] = [
    r#"x" or userName pr or userName eq "y@hostile.example"#,
    r"back\slash@hostile.example",
    r#"quote"in@hostile.example"#,
    r#"trailing\"#,
];

async fn creation_adopts_existing_accounts(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = open(&server, dir.path());
    let live = p.read().await.unwrap();
    assert!(live.accounts.is_empty());
    // A decoy the injected filter would match, and the hostile accounts themselves, created
    // after keyward's read (as by another admin, or an earlier interrupted run).
    let decoy = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "y@hostile.example", "title": "decoy"});
    assert_eq!(server.request("POST", "/v2/Users", Some(&decoy)).status, 201);
    for n in HOSTILE {
        let u = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": n.to_uppercase(), "title": "old", "active": false});
        assert_eq!(server.request("POST", "/v2/Users", Some(&u)).status, 201, "{n}");
    }
    let changes: Vec<Change> = HOSTILE.iter().map(|n| create_user(n, "Adopted")).collect();
    let refs: Vec<&Change> = changes.iter().collect();
    let outcomes = p.apply(&refs).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    let users = server.users();
    assert_eq!(users.len(), HOSTILE.len() + 1, "an account was duplicated: {users:#?}");
    for n in HOSTILE {
        let u = server.user(n);
        assert_eq!(u["title"], "Adopted", "{n}");
        assert_eq!(u["active"], true, "{n}");
        assert_eq!(u[ENTERPRISE]["department"], "Ops", "{n}");
    }
    assert_eq!(server.user("y@hostile.example")["title"], "decoy");
    // A second read sees them all, and a plain re-run of the same creations still succeeds.
    let mut p = open(&server, dir.path());
    assert_eq!(p.read().await.unwrap().accounts.len(), HOSTILE.len() + 1);
}

#[tokio::test]
#[ignore = "needs scim2-server: cargo xtask test"]
async fn a_creation_that_meets_an_existing_account_adopts_it_over_bulk() {
    creation_adopts_existing_accounts(Server::start()).await;
}

async fn a_creation_that_meets_an_existing_account_adopts_it_without_bulk(kind: Kind) {
    creation_adopts_existing_accounts(Server::start_kind_with(kind, Some(service_provider_config(None, 100)))).await;
}

// Not on django-scim2: its userName uniqueness is case-sensitive (SQLite), so the upper-case
// accounts made behind keyward's back are twins that a creation does not meet (see
// docs/servers.md).
on_each_server_async!(a_creation_that_meets_an_existing_account_adopts_it_without_bulk:
    a_creation_that_meets_an_existing_account_adopts_it_without_bulk_on_scim2_server => Kind::Scim2Server,
);

async fn stale_writes_are_refused(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = open(&server, dir.path());
    p.read().await.unwrap();
    let setup = [
        create_user("ann@stale.example", "Clerk"),
        create_user("bob@stale.example", "Clerk"),
        change(
            Action::Create,
            ObjectKind::Role,
            "g",
            Operation::CreateBinding { binding: Binding::Group("Stale".into()) },
        ),
    ];
    let outcomes = p.apply(&setup.iter().collect::<Vec<_>>()).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    // keyward reads; then someone changes ann and the group.
    let mut p = open(&server, dir.path());
    p.read().await.unwrap();
    let ann = server.user("ann@stale.example");
    server.patch("Users", ann["id"].as_str().unwrap(), json!([{"op": "replace", "path": "title", "value": "Changed"}]));
    let group = server.group("Stale");
    server.patch(
        "Groups",
        group["id"].as_str().unwrap(),
        json!([{"op": "add", "path": "members", "value": [{"value": ann["id"]}]}]),
    );

    let set = UserAttrs { job_title: Some("Planned".into()), ..Default::default() };
    let update = change(
        Action::Update,
        ObjectKind::User,
        "ann",
        Operation::UpdateUser { user_name: "ann@stale.example".into(), set: set.clone() },
    );
    let untouched = change(
        Action::Update,
        ObjectKind::User,
        "bob",
        Operation::UpdateUser { user_name: "BOB@stale.example".into(), set },
    );
    let outcomes = p.apply(&[&update, &untouched]).await;
    let err = outcomes[0].as_ref().unwrap_err();
    assert!(err.conflict && err.message.contains("changed on the target since it was read"), "{err:?}");
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
    let assign = change(
        Action::Assign,
        ObjectKind::Assignment,
        "bob/x",
        Operation::Assign {
            principal: Principal::User("bob@stale.example".into()),
            binding: Binding::Group("stale".into()),
        },
    );
    let outcomes = p.apply(&[&assign]).await;
    let err = outcomes[0].as_ref().unwrap_err();
    assert!(err.conflict && err.message.contains("group stale changed on the target"), "{err:?}");
    // Nothing was written over the other change.
    assert_eq!(server.user("ann@stale.example")["title"], "Changed");
    assert_eq!(server.user("bob@stale.example")["title"], "Planned");
    assert_eq!(server.member_names("Stale"), vec!["ann@stale.example"]);
}

#[tokio::test]
#[ignore = "needs scim2-server: cargo xtask test"]
async fn a_write_to_an_object_changed_since_the_read_is_refused_over_bulk() {
    stale_writes_are_refused(Server::start()).await;
}

#[tokio::test]
#[ignore = "needs scim2-server: cargo xtask test"]
async fn a_write_to_an_object_changed_since_the_read_is_refused_without_bulk() {
    stale_writes_are_refused(Server::start_with(Some(service_provider_config(None, 100)))).await;
}

#[test]
fn a_bad_ca_file_or_a_remote_http_url_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t").unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let target = |url: &str, ca: Option<&str>| Target {
        name: Name::new("okta").unwrap(),
        users: UsersScope::All,
        ca_file: ca.map(str::to_string),
        connection: Connection::Scim { url: url.into(), token: SecretRef::File("token".into()) },
    };
    let err = |t: Target| match provider::open(&t, dir.path(), Access::Read) {
        Ok(_) => panic!("opened"),
        Err(e) => e.to_string(),
    };
    let e = err(target("https://scim.example.com/v2", Some("ca.pem")));
    assert!(e.contains("ca.pem"), "{e}");
    let e = err(target("http://scim.example.com/v2", None));
    assert!(e.contains("must use https"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Benchmark.

/// Children's CPU time of a shell that ran one keyward command, from its `times` builtin.
fn run_timed(dir: &Path, token: &str, args: &[&str]) -> (std::process::Output, Duration, Duration) {
    let cmd = keyward_cmd(dir, token, args);
    let program = cmd.get_program().to_owned();
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg(r#""$0" "$@"; rc=$?; times >&2; exit $rc"#).arg(program).args(args);
    sh.current_dir(dir).stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let started = Instant::now();
    let out = sh.output().unwrap();
    let wall = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    // The last line: children's user and system time, e.g. "0m1.234s 0m0.056s".
    let secs = |s: &str| -> f64 {
        let (m, rest) = s.split_once('m').unwrap_or(("0", s));
        m.parse::<f64>().unwrap_or(0.0) * 60.0 + rest.trim_end_matches('s').parse::<f64>().unwrap_or(0.0)
    };
    let cpu = err
        .lines()
        .last()
        .map(|l| l.split_whitespace().map(secs).sum::<f64>())
        .map(Duration::from_secs_f64)
        .unwrap_or_default();
    (out, wall, cpu)
}

/// Onboards `KEYWARD_SCIM_BENCH_USERS` users (400 by default, so the suite stays quick; the
/// issue's figure is 5000) holding two of 20 roles each, then plans again, and prints the
/// requests, wall time and keyward's CPU time. Request counts are asserted; times never are.
///
/// With 400 users the server announces Bulk of 50 operations and pages of 100, so both
/// splitting and paging are exercised; from 2000 users on it keeps scim2-server's defaults
/// (1000 operations, 1 MiB, pages of 1000).
#[test]
#[ignore = "needs scim2-server: cargo xtask test"]
fn benchmark_onboarding() {
    let users: usize = std::env::var("KEYWARD_SCIM_BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    const ROLES: usize = 20;
    const PER_USER: usize = 2;
    let (max_ops, page) = if users >= 2000 { (1000usize, 1000usize) } else { (50, 100) };
    let server = if users >= 2000 {
        Server::start()
    } else {
        Server::start_with(Some(service_provider_config(Some((max_ops as u64, 1024 * 1024)), page as u64)))
    };
    let dir = synthetic(&server, users, ROLES, PER_USER);
    let memberships = users * PER_USER;

    server.settle();
    let mark = server.requests().len();
    let (o, apply_wall, apply_cpu) = run_timed(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    server.settle();
    let apply = server.requests_since(mark);
    let mark = server.requests().len();
    let (o, plan_wall, plan_cpu) = run_timed(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]);
    expect_exit(&o, 0);
    server.settle();
    let replan = server.requests_since(mark);

    let ceil = |a: usize, b: usize| a.div_ceil(b);
    let reads = |r: &[harness::Logged]| r.iter().filter(|x| x.method == "GET").count();
    let writes = |r: &[harness::Logged]| r.iter().filter(|x| x.method != "GET").count();
    let operations = users + ROLES + memberships;
    println!("scim benchmark: {users} users, {ROLES} groups, {memberships} memberships ({operations} changes)");
    println!("  server: Bulk maxOperations {max_ops}, maxPayloadSize 1048576, page {page}");
    println!(
        "  apply:  {} requests ({} reads, {} writes: {} Bulk), wall {:.2}s, keyward CPU {:.2}s",
        apply.len(),
        reads(&apply),
        writes(&apply),
        count(&apply, "POST", "/v2/Bulk"),
        apply_wall.as_secs_f64(),
        apply_cpu.as_secs_f64()
    );
    println!(
        "  replan: {} requests ({} reads), wall {:.2}s, keyward CPU {:.2}s",
        replan.len(),
        reads(&replan),
        plan_wall.as_secs_f64(),
        plan_cpu.as_secs_f64()
    );
    assert!(apply.iter().chain(&replan).all(|r| r.status < 400));
    // Reads: pages of users and of groups, plus discovery (/ServiceProviderConfig,
    // /ResourceTypes and /Schemas) and one spare (and an empty page of each on the first, empty,
    // read).
    assert!(reads(&replan) <= ceil(users, page) + ceil(ROLES, page) + 4, "{replan:#?}");
    assert_eq!(writes(&replan), 0);
    assert!(reads(&apply) <= 1 + 1 + 4);
    // Writes: only Bulk requests; within 1.1x ceil(changes / maxOperations) at the issue's
    // scale, and at worst one more request per apply phase below it.
    assert_eq!(writes(&apply), count(&apply, "POST", "/v2/Bulk"));
    let bound = ceil(operations, max_ops);
    if operations >= 10 * max_ops {
        assert!(writes(&apply) as f64 <= 1.1 * bound as f64, "{} writes for {operations} changes", writes(&apply));
    } else {
        assert!(writes(&apply) <= bound + 2, "{} writes", writes(&apply));
    }
}

// ---------------------------------------------------------------------------------------------
// Defects against django-scim2.

#[test]
#[ignore = "needs django-scim2: cargo xtask test"]
fn revoking_falls_back_when_the_member_filter_path_is_refused() {
    // django-scim2 refuses `remove` with `members[value eq "ID"]` (501) but removes members
    // given as `path: members` with a value list.
    let server = Server::start_kind(Kind::DjangoScim2);
    let dir = quickstart(&server);
    expect_exit(&keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]), 0);
    let users = dir.path().join("users/finance.yaml");
    let text_users = std::fs::read_to_string(&users).unwrap();
    std::fs::write(
        &users,
        text_users.replacen(
            "employeeId: \"E1009\"\nroles: [ap-clerk]",
            "employeeId: \"E1009\"\nroles: [gl-accountant]",
            1,
        ),
    )
    .unwrap();
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    assert!(!server.member_names("ap-clerks").contains(&"janet.leverling@northwind.example".to_string()));
    expect_exit(&keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]), 0);
}

#[test]
#[ignore = "needs django-scim2: cargo xtask test"]
fn put_fallback_reports_a_group_change_the_server_ignored_as_failed() {
    // Announcing no PATCH, keyward writes groups with PUT; django-scim2 ignores `members` in a
    // group PUT and answers 200 with the old members.
    let spc = json!({"patch": {"supported": false}, "filter": {"supported": false, "maxResults": 50}});
    let server = Server::start_kind_with(Kind::DjangoScim2, Some(spc));
    let dir = quickstart(&server);
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    let members = server.member_names("gl-accountants");
    let (out, _) = text(&o);
    assert!(
        !members.is_empty() || (o.status.code() == Some(1) && out.contains("members")),
        "the server kept no member, yet the apply said:\n{out}"
    );
}

#[test]
#[ignore = "needs django-scim2: cargo xtask test"]
fn accounts_whose_user_names_differ_only_in_case_are_a_plan_error() {
    let server = Server::start_kind(Kind::DjangoScim2);
    let dir = quickstart(&server);
    expect_exit(&keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]), 0);
    // A second account, NANCY.DAVOLIO@…, made behind keyward's back: django-scim2's uniqueness
    // is case-sensitive.
    let twin = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "NANCY.DAVOLIO@northwind.example", "name": {"givenName": "Other", "familyName": "Person"}});
    assert_eq!(server.request("POST", "/v2/Users", Some(&twin)).status, 201);
    let o = keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "an ambiguous match is a plan error:\n{out}\n{err}");
    assert!(
        err.contains("NANCY.DAVOLIO@northwind.example") && err.contains("nancy.davolio@northwind.example"),
        "{err}"
    );
}

#[test]
#[ignore = "needs django-scim2: cargo xtask test"]
fn an_enable_is_sent_alone_when_the_service_refuses_an_attribute_beside_it() {
    // django-scim2's stock user adapter answers 501 to a PATCH of `title`, and rolls back the
    // PATCH's other operations: sent in the same PATCH as `active: true`, the refusal left the
    // account disabled. tomas.novak exists, disabled and without a title (made behind keyward's
    // back, so keyward has not yet seen the service drop a title), and the configuration
    // enables him.
    let server = Server::start_kind(Kind::DjangoScim2Stock);
    let tomas = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "tomas.novak@northwind.example",
        "name": {"givenName": "Tomas", "familyName": "Novak"}, "active": false,
        "emails": [{"value": "tomas.novak@northwind.example", "type": "work", "primary": true}]});
    assert_eq!(server.request("POST", "/v2/Users", Some(&tomas)).status, 201);
    assert_eq!(server.user("tomas.novak@northwind.example")["active"], false);
    let dir = quickstart(&server);
    let sales = dir.path().join("users/sales.yaml");
    let text_sales = std::fs::read_to_string(&sales).unwrap();
    let rejoined = text_sales.replacen("employeeId: \"E1011\"\nstatus: disabled", "employeeId: \"E1011\"", 1);
    assert_ne!(rejoined, text_sales);
    std::fs::write(&sales, rejoined).unwrap();
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "the title was refused:\n{out}\n{err}");
    assert_eq!(server.user("tomas.novak@northwind.example")["active"], true, "{out}\n{err}");
    assert!(out.contains("directory.user.tomas.novak (update)") && out.contains("501"), "{out}\n{err}");
    // 501 Not Implemented: running apply again cannot make it.
    assert!(out.contains("will not converge") && !out.contains("it converges"), "{out}");
}

#[tokio::test]
#[ignore = "needs django-scim2: cargo xtask test"]
async fn adopting_an_account_finds_it_without_a_filter_and_patches_only_what_differs() {
    // django-scim2 announces `filter.supported: false`: the account a creation meets is found
    // by reading the list. The PATCH that adopts it sets only the attribute that differs.
    let server = Server::start_kind(Kind::DjangoScim2);
    assert_eq!(server.config["filter"]["supported"], false);
    let proxy = recorder::Recorder::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let mut p = open_at(&proxy.url(), &server.token, dir.path());
    assert!(p.read().await.unwrap().accounts.is_empty());
    let existing = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@adopt.example",
        "displayName": "Ada Lovelace", "name": {"givenName": "Ada", "familyName": "Lovelace"}, "title": "Analyst"});
    assert_eq!(server.request("POST", "/v2/Users", Some(&existing)).status, 201);
    let attrs = UserAttrs {
        display_name: Some("Ada Lovelace".into()),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        job_title: Some("Engineer".into()),
        ..Default::default()
    };
    let create = change(
        Action::Create,
        ObjectKind::User,
        "ada",
        Operation::CreateUser { user_name: "ada@adopt.example".into(), attrs, active: true },
    );
    let outcomes = p.apply(&[&create]).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(server.user("ada@adopt.example")["title"], "Engineer");
    let seen = proxy.requests();
    assert!(seen.iter().all(|r| !r.target.contains("filter=")), "{seen:#?}");
    let patches: Vec<_> = seen.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 1, "{seen:#?}");
    assert_eq!(
        patches[0].body.as_ref().unwrap()["Operations"],
        json!([{"op": "replace", "path": "title", "value": "Engineer"}]),
        "{seen:#?}"
    );
}

#[test]
#[ignore = "needs django-scim2: cargo xtask test"]
fn the_quick_start_converges_on_a_service_that_keeps_no_title_or_enterprise_extension() {
    // django-scim2's stock user adapter: its User resource type lists no enterprise extension
    // (so department, employeeId and manager are not planned), and it announces `title` in
    // its schema but answers a creation without it (so keyward learns it on the first apply).
    let server = Server::start_kind(Kind::DjangoScim2Stock);
    let dir = quickstart(&server);
    let o = keyward(dir.path(), &server.token, &["plan", "."]);
    let (out, err) = text(&o);
    for field in ["department", "employeeId", "manager"] {
        let line = format!("target `directory` does not keep `{field}`");
        assert_eq!(out.matches(&line).count(), 1, "{field}:\n{out}\n{err}");
    }
    assert!(!out.contains("`jobTitle`"), "{out}");
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    let (out, err) = text(&o);
    expect_exit(&o, 0);
    assert!(out.contains("Apply complete!"), "{out}\n{err}");
    let o = keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "the second plan has changes:\n{out}\n{err}");
    assert!(out.contains("No changes."), "{out}");
    for field in ["department", "employeeId", "manager", "jobTitle"] {
        let line = format!("target `directory` does not keep `{field}`");
        assert_eq!(out.matches(&line).count(), 1, "{field}:\n{out}\n{err}");
    }
}

#[test]
#[ignore = "needs django-scim2: cargo xtask test"]
fn an_update_the_service_answers_without_an_attribute_will_not_converge_and_is_not_planned_again() {
    // django-scim2's stock adapter announcing no PATCH: keyward writes users with PUT, whose
    // answer lacks `title` (the adapter drops it). tomas.novak exists without a title, made
    // behind keyward's back, so the first apply updates him.
    let spc = json!({"patch": {"supported": false}, "filter": {"supported": false, "maxResults": 50}});
    let server = Server::start_kind_with(Kind::DjangoScim2Stock, Some(spc));
    let tomas = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "tomas.novak@northwind.example",
        "name": {"givenName": "Tomas", "familyName": "Novak"}, "active": false,
        "emails": [{"value": "tomas.novak@northwind.example", "type": "work", "primary": true}]});
    assert_eq!(server.request("POST", "/v2/Users", Some(&tomas)).status, 201);
    let dir = quickstart(&server);
    // He is enabled in the same write: that part is made, and reported so.
    let sales = dir.path().join("users/sales.yaml");
    let text_sales = std::fs::read_to_string(&sales).unwrap();
    let rejoined = text_sales.replacen("employeeId: \"E1011\"\nstatus: disabled", "employeeId: \"E1011\"", 1);
    assert_ne!(rejoined, text_sales);
    std::fs::write(&sales, rejoined).unwrap();
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    let line =
        out.lines().find(|l| l.contains("directory.user.tomas.novak (update)")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("will not converge") && line.contains("`jobTitle`"), "{line}");
    assert!(!out.contains("directory.user.tomas.novak (enable)"), "{out}");
    assert_eq!(server.user("tomas.novak@northwind.example")["active"], true);
    let o = keyward(dir.path(), &server.token, &["plan", "."]);
    let (out, err) = text(&o);
    assert!(!out.contains("directory.user.tomas.novak"), "the title is planned again:\n{out}\n{err}");
    assert_eq!(out.matches("target `directory` does not keep `jobTitle`").count(), 1, "{out}");
}

/// Regression: on a target that holds only users with roles there, a user whose manager has no
/// account on it was created without the manager, and every later apply failed (exit 1)
/// trying to set it. The plan says the manager is not on the target, and the apply converges.
#[test]
#[ignore = "needs scim2-server: cargo xtask test"]
fn a_manager_without_an_account_on_a_with_roles_target_is_a_note_and_converges() {
    let server = Server::start();
    let dir = quickstart(&server);
    let yaml = dir.path().join("keyward.yaml");
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    doc["targets"]["directory"]["users"] = "with-roles".into();
    std::fs::write(&yaml, serde_yaml::to_string(&doc).unwrap()).unwrap();

    let o = keyward(dir.path(), &server.token, &["plan", "."]);
    let (out, err) = text(&o);
    expect_exit(&o, 0);
    // nancy.davolio holds roles; her manager laura.callahan holds none.
    assert!(
        out.contains("manager laura.callahan has no account on this target, so the manager is not set here"),
        "{out}\n{err}"
    );
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    let names: Vec<String> =
        server.users().iter().filter_map(|u| u["userName"].as_str().map(str::to_lowercase)).collect();
    assert!(names.contains(&"nancy.davolio@northwind.example".to_string()), "{names:?}");
    assert!(!names.contains(&"laura.callahan@northwind.example".to_string()), "{names:?}");
    // yusuf.demir's manager nancy.davolio is on the target: that manager is set.
    let nancy = server.user("nancy.davolio@northwind.example");
    assert_eq!(server.user("yusuf.demir@northwind.example")[ENTERPRISE]["manager"]["value"], nancy["id"]);

    expect_exit(&keyward(dir.path(), &server.token, &["plan", "--detailed-exitcode", "."]), 0);
    let o = keyward(dir.path(), &server.token, &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    assert!(text(&o).0.contains("No changes"), "{}", text(&o).0);
}
