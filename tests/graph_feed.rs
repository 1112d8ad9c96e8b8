//! The Graph provider's change feed against the Graph fake: after each of a scripted sequence
//! of changes made in the portal (outside keyward), and of random ones (a property test), the
//! state built from the feed equals a fresh full read; an idle round costs one request (the
//! three delta queries in one `$batch`); removals are seen; an expired or reset cursor is
//! refused so the caller reads in full; and `keyward watch` end to end, reading the tenant
//! through the feed and alerting a change made in the portal within a few intervals, with its
//! detection latency.
mod support;

use support::{http_get, metrics_until, sample};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keyward::model::config::{ClientCredential, Connection, Target};
use keyward::model::feed::{self, Cursor};
use keyward::model::{Binding, LiveTarget, Name, SecretRef, UsersScope};
use keyward::provider::{self, Access, FeedError, Provider};
use keyward_fakes::graph::Graph;
use serde_json::json;

const TENANT: &str = "northwind.example";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";

fn target(url: &str) -> Target {
    Target {
        name: Name::new("entra").unwrap(),
        users: UsersScope::All,
        ca_file: None,
        connection: Connection::Graph {
            tenant: TENANT.into(),
            client_id: CLIENT.into(),
            credential: ClientCredential::Secret(SecretRef::File("client-secret".into())),
            endpoint: Some(url.into()),
            authority: Some(url.into()),
            federated_domains: vec![],
        },
    }
}

/// A client secret made at test time, registered with the fake and written for the target.
fn register(g: &Graph, root: &Path) {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let secret = format!("test-secret-{:016x}", h.finish());
    g.entra().register(CLIENT, Some(&secret));
    std::fs::write(root.join("client-secret"), &secret).unwrap();
}

fn open(url: &str, root: &Path) -> Box<dyn Provider> {
    provider::open(&target(url), root, Access::Read).unwrap()
}

/// What a watcher holds: the state and the cursor.
struct Held {
    live: LiveTarget,
    cursor: Cursor,
}

struct Tenant {
    g: Graph,
    _fake: keyward_fakes::Running,
    url: String,
    dir: tempfile::TempDir,
}

impl Tenant {
    fn new(g: Graph) -> Tenant {
        let fake = g.serve();
        let dir = tempfile::tempdir().unwrap();
        register(&g, dir.path());
        Tenant { url: fake.url(), g, _fake: fake, dir }
    }

    async fn start(&self) -> Held {
        let (live, cursor) = open(&self.url, self.dir.path()).read_with_cursor().await.unwrap();
        Held { live, cursor: cursor.expect("Graph has a change feed") }
    }

    /// One round of the feed applied to `held`; returns the requests it took and the changes.
    async fn catch_up(&self, held: &mut Held) -> Result<(usize, usize), FeedError> {
        let mut p = open(&self.url, self.dir.path());
        let changes = p.read_changes(&held.cursor, &held.live).await?;
        feed::apply(&mut held.live, &changes.changes, |b| p.binding_fingerprint(b));
        held.cursor = changes.cursor.clone();
        Ok((p.requests().unwrap(), changes.objects()))
    }

    async fn full(&self) -> LiveTarget {
        open(&self.url, self.dir.path()).read().await.unwrap()
    }

    /// Catches up and checks the state equals a full read.
    async fn step(&self, held: &mut Held, what: &str) -> usize {
        let (_, changed) = self.catch_up(held).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let full = self.full().await;
        assert!(
            feed::kept(&held.live) == feed::kept(&full),
            "{what}: the state built from the feed differs from a full read: {:?}",
            feed::differences(&held.live, &full)
        );
        changed
    }
}

fn group<'a>(live: &'a LiveTarget, name: &str) -> &'a keyward::model::LiveBinding {
    live.bindings.iter().find(|b| b.binding == Binding::Group(name.into())).unwrap_or_else(|| panic!("group {name}"))
}

fn role<'a>(live: &'a LiveTarget, name: &str) -> &'a keyward::model::LiveBinding {
    live.bindings
        .iter()
        .find(|b| b.binding == Binding::DirectoryRole(name.into()))
        .unwrap_or_else(|| panic!("directory role {name}"))
}

#[tokio::test]
async fn the_state_built_from_the_feed_equals_a_full_read_after_each_change() {
    let g = Graph::new();
    let users = g.add_users("u", TENANT, 6);
    let sales = g.add_group("sales");
    g.add_members(&sales, &users[..3]);
    let t = Tenant::new(g);
    let mut held = t.start().await;
    let full = t.full().await;
    // Right after a full read, everything is equal, not only what the feed keeps.
    assert_eq!(feed::normalized(&held.live), feed::normalized(&full));

    // Idle: one request (the users', groups' and directory roles' delta queries in one
    // `$batch`), nothing changed.
    let (requests, changed) = t.catch_up(&mut held).await.unwrap();
    assert_eq!((requests, changed), (1, 0));

    let admin = t.g.portal("admin@northwind.example");
    let new = admin.create_user("new.hire@northwind.example", "New Hire");
    assert_eq!(t.step(&mut held, "create a user").await, 1);
    assert!(held.live.accounts.iter().any(|a| a.id == new));

    admin.update_user(&users[0], json!({"jobTitle": "Buyer", "department": "Purchasing"}));
    t.step(&mut held, "update a user").await;
    admin.set_manager(&users[1], Some(&users[2]));
    t.step(&mut held, "set a manager").await;
    admin.update_user(&users[2], json!({"userPrincipalName": "renamed@northwind.example"}));
    t.step(&mut held, "rename a manager").await;
    let managed = held.live.accounts.iter().find(|a| a.id == users[1]).unwrap();
    assert_eq!(managed.attrs.manager.as_deref(), Some("renamed@northwind.example"));
    admin.set_account_enabled(&users[3], false);
    t.step(&mut held, "block sign-in").await;

    admin.add_member(&sales, &users[4]);
    t.step(&mut held, "add a member").await;
    assert!(group(&held.live, "sales").members.contains(&users[4]));
    admin.remove_member(&sales, &users[0]);
    t.step(&mut held, "remove a member").await;
    assert!(!group(&held.live, "sales").members.contains(&users[0]));

    let ops = admin.create_group("ops");
    admin.add_member(&ops, &new);
    t.step(&mut held, "create a group with a member").await;
    admin.update_group(&ops, json!({"displayName": "operations"}));
    t.step(&mut held, "rename a group").await;
    assert_eq!(group(&held.live, "operations").members, vec![new.clone()]);

    // A Global Administrator added in the portal, and removed again: the directory role's
    // members@delta.
    let assignment = admin.assign_role("Global Administrator", &users[4]).unwrap();
    assert_eq!(t.step(&mut held, "add a directory role member").await, 1);
    assert!(role(&held.live, "Global Administrator").members.contains(&users[4]));
    admin.assign_role("User Administrator", &new).unwrap();
    t.step(&mut held, "add a member to a second directory role").await;
    admin.remove_role_assignment(&assignment);
    t.step(&mut held, "remove a directory role member").await;
    assert!(!role(&held.live, "Global Administrator").members.contains(&users[4]));

    // Removals: a soft-deleted user leaves the accounts and every group it was in.
    admin.delete_user(&users[1]);
    t.step(&mut held, "delete a user").await;
    assert!(held.live.accounts.iter().all(|a| a.id != users[1]), "the removal is seen");
    assert!(!group(&held.live, "sales").members.contains(&users[1]));
    admin.purge_user(&users[1]);
    t.step(&mut held, "delete a user for good").await;
    admin.delete_group(&ops);
    t.step(&mut held, "delete a group").await;
    assert!(held.live.bindings.iter().all(|b| b.id != ops));

    // Several changes in one round over small pages.
    t.g.set_delta_page_size(2, 2);
    for i in 0..5 {
        admin.create_user(&format!("batch{i}@northwind.example"), "Batch");
    }
    admin.add_member(&sales, &users[5]);
    admin.update_user(&users[4], json!({"jobTitle": "Clerk"}));
    assert_eq!(t.step(&mut held, "a round of seven changes in pages").await, 7);
    // The users' round went on over three pages of two, one batch each; the groups' and
    // directory roles' rounds ended in the first.
    for i in [0, 2, 3, 5] {
        admin.update_user(&users[i], json!({"jobTitle": format!("Clerk {i}")}));
    }
    admin.add_member(&sales, &users[3]);
    let (requests, changed) = t.catch_up(&mut held).await.unwrap();
    assert_eq!((requests, changed), (2, 5), "pages of two: users in two batches");
}

#[tokio::test]
async fn an_expired_or_reset_cursor_is_refused_and_a_new_full_read_starts_again() {
    let g = Graph::new();
    let users = g.add_users("u", TENANT, 3);
    let t = Tenant::new(g);
    t.g.set_now(1_900_000_000);
    let mut held = t.start().await;

    // Tokens of directory objects last seven days.
    t.g.set_now(1_900_000_000 + 8 * 24 * 3600);
    match t.catch_up(&mut held).await {
        Err(FeedError::Expired { message, .. }) => assert!(message.contains("syncStateNotFound"), "{message}"),
        other => panic!("an expired link is refused: {other:?}"),
    }
    let mut held = t.start().await;
    t.catch_up(&mut held).await.unwrap();

    // A synchronization reset: 410 Gone.
    t.g.reset_sync();
    t.g.portal("admin@northwind.example").update_user(&users[0], json!({"jobTitle": "Buyer"}));
    match t.catch_up(&mut held).await {
        Err(FeedError::Expired { message, .. }) => assert!(message.contains("410"), "{message}"),
        other => panic!("a reset link is refused: {other:?}"),
    }
    let mut held = t.start().await;
    assert_eq!(feed::normalized(&held.live), feed::normalized(&t.full().await));
    assert_eq!(t.catch_up(&mut held).await.unwrap().1, 0);
}

// -- keyward watch, end to end --------------------------------------------------------------------

const LATENCY: &str = "keyward_detection_latency_seconds{target=\"directory\"}";
const MODE_INCREMENTAL: &str = "keyward_read_mode{target=\"directory\",mode=\"incremental\"}";
const RESTARTS: &str = "keyward_feed_restarts{target=\"directory\"}";

/// The quick start on the Graph fake, applied.
fn graph_quickstart() -> (Graph, keyward_fakes::Running, support::Sandbox) {
    graph_quickstart_with(|_| {})
}

/// The quick start on the Graph fake, seeded by `seed`, applied.
fn graph_quickstart_with(seed: impl FnOnce(&Graph)) -> (Graph, keyward_fakes::Running, support::Sandbox) {
    let g = Graph::new();
    let sb = support::Sandbox::example("quickstart");
    register(&g, &sb.root);
    seed(&g);
    let fake = g.serve();
    let url = fake.url();
    sb.edit(
        "keyward.yaml",
        "    provider: file\n    path: .keyward/directory.json   # a local JSON file that stands in for a live directory\n",
        &format!(
            "    provider: graph\n    tenant: {TENANT}\n    clientId: {CLIENT}\n    clientSecret: ${{file:client-secret}}\n    endpoint: {url}\n    authority: {url}\n"
        ),
    );
    sb.run(&["apply", "{dir}", "--auto-approve"]).expect(0);
    sb.run(&["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    (g, fake, sb)
}

/// `keyward watch` every 200 ms on the sandbox: the process, its address, its stdout lines.
fn watch(sb: &support::Sandbox, extra: &[&str]) -> (std::process::Child, String, mpsc::Receiver<String>) {
    let mut args = vec!["watch", sb.root.to_str().unwrap(), "--interval", "200ms", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = sb.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
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
        let line = errs.recv_timeout(Duration::from_secs(30)).expect("watch announces its address");
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

#[test]
fn watch_reads_the_tenant_through_the_feed_and_alerts_a_portal_change_within_a_few_intervals() {
    let (g, _fake, sb) = graph_quickstart();
    let (child, addr, outs) = watch(&sb, &[]);

    // The first check reads in full; the next ones through the feed, one `$batch` each.
    let m = metrics_until(&addr, "checks turn incremental", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    assert_eq!(sample(&m, "keyward_read_requests{target=\"directory\"}"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "keyward_read_changed_objects{target=\"directory\"}"), Some(0.0), "{m}");
    assert!(sample(&m, "keyward_seconds_since_full_read{target=\"directory\"}").unwrap() > 0.0, "{m}");
    assert!(outs.try_recv().is_err(), "no drift, no alert");

    // A change in the portal is alerted within a few intervals, read through the feed.
    let janet = g.user("janet.leverling@northwind.example").unwrap()["id"].as_str().unwrap().to_string();
    let admin = g.portal("admin@northwind.example");
    let changed = Instant::now();
    admin.update_user(&janet, json!({"jobTitle": "Hacker"}));
    let line = outs.recv_timeout(Duration::from_secs(10)).expect("the change is alerted");
    assert!(line.contains("drift: update directory.user.janet.leverling"), "{line}");
    assert!(
        changed.elapsed() < Duration::from_secs(5),
        "alerted within a few 200 ms intervals: {:?}",
        changed.elapsed()
    );
    assert_eq!(sample(&http_get(&addr, "/metrics"), MODE_INCREMENTAL), Some(1.0));
    // The detection latency of that alert, from the change's time in the directory audit log.
    let m = metrics_until(&addr, "the detection latency", |m| sample(m, LATENCY).is_some());
    let latency = sample(&m, LATENCY).unwrap();
    assert_eq!(sample(&m, "keyward_detection_latency_attributed{target=\"directory\"}"), Some(1.0), "{m}");
    assert!(latency >= 0.0 && latency <= changed.elapsed().as_secs_f64() + 1.0, "{latency} s\n{m}");

    // A membership granted in the portal: the group's members@delta.
    let admins = g.group_id("finance-admins").expect("the quick start's group");
    let steven = g.user("steven.buchanan@northwind.example").unwrap()["id"].as_str().unwrap().to_string();
    admin.add_member(&admins, &steven);
    let line = outs.recv_timeout(Duration::from_secs(10)).expect("the grant is alerted");
    assert!(line.contains("drift: revoke directory.") && line.contains("steven.buchanan"), "{line}");

    // A synchronization reset: the feed starts again with a full read, and nothing is alerted
    // that did not change (the drift already alerted is not alerted again).
    let before = sample(&http_get(&addr, "/metrics"), RESTARTS).unwrap();
    g.reset_sync();
    metrics_until(&addr, "the feed starts again", |m| sample(m, RESTARTS) == Some(before + 1.0));
    metrics_until(&addr, "checks turn incremental again", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    std::thread::sleep(Duration::from_millis(600));
    assert!(outs.try_recv().is_err(), "no false alert after the full read");

    stop(child);
}

#[test]
fn watch_alerts_a_global_administrator_added_in_the_portal_through_the_feed() {
    let (g, _fake, sb) = graph_quickstart();
    // Global Administrator is governed, and nobody holds it.
    sb.write(
        "roles/admin.yaml",
        "kind: Role\nname: global-admin\ndescription: Administers the whole tenant\nprivileged: true\nowners: [steven.buchanan, andrew.fuller]\nbindings:\n  directory: {directoryRole: Global Administrator}\n",
    );
    sb.run(&["apply", "{dir}", "--auto-approve"]).expect(0);
    sb.run(&["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    // A resync an hour away: within the test, only the feed can show the grant.
    let (child, addr, outs) = watch(&sb, &["--resync", "1h"]);
    metrics_until(&addr, "checks turn incremental", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));

    let steven = g.user("steven.buchanan@northwind.example").unwrap()["id"].as_str().unwrap().to_string();
    let changed = Instant::now();
    g.portal("admin@northwind.example").assign_role("Global Administrator", &steven).unwrap();
    let line = outs.recv_timeout(Duration::from_secs(10)).expect("the Global Administrator grant is alerted");
    assert!(line.contains("drift: revoke directory.") && line.contains("steven.buchanan"), "{line}");
    assert!(
        changed.elapsed() < Duration::from_secs(5),
        "alerted within a few 200 ms intervals: {:?}",
        changed.elapsed()
    );
    let m = http_get(&addr, "/metrics");
    assert_eq!(sample(&m, MODE_INCREMENTAL), Some(1.0), "{m}");
    assert_eq!(sample(&m, RESTARTS), Some(0.0), "read through the feed, not a full read that started it again: {m}");
    assert!(sample(&m, SINCE_FULL).unwrap() > 0.0, "{m}");
    stop(child);
}

const MISMATCHES: &str = "keyward_feed_mismatches{target=\"directory\"}";
const SINCE_FULL: &str = "keyward_seconds_since_full_read{target=\"directory\"}";

#[test]
fn a_resync_reads_in_full_and_counts_a_state_the_feed_got_wrong() {
    let (g, _fake, sb) = graph_quickstart();
    let (child, addr, _outs) = watch(&sb, &["--resync", "1s"]);
    let admin = g.portal("admin@northwind.example");
    let janet = g.user("janet.leverling@northwind.example").unwrap()["id"].as_str().unwrap().to_string();

    // Changes the feed reports whole: the resync finds the same state.
    metrics_until(&addr, "checks turn incremental", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    admin.update_user(&janet, json!({"jobTitle": "Hacker"}));
    let m = metrics_until(&addr, "a resync", |m| {
        sample(m, MODE_INCREMENTAL) == Some(0.0) && sample(m, SINCE_FULL) == Some(0.0)
    });
    assert_eq!(sample(&m, MISMATCHES), Some(0.0), "{m}");
    assert_eq!(sample(&m, RESTARTS), Some(0.0), "{m}");

    // A change the feed never reports (a fault of the fake: it is not journalled): only the
    // resync's full read shows it, and counts the difference.
    metrics_until(&addr, "checks turn incremental again", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    g.set_delta_blind(true);
    admin.update_user(&janet, json!({"jobTitle": "Unseen"}));
    g.set_delta_blind(false);
    let m = metrics_until(&addr, "the resync counts the difference", |m| sample(m, MISMATCHES) == Some(1.0));
    assert_eq!(sample(&m, RESTARTS), Some(0.0), "{m}");
    stop(child);
}

/// Regression (found by the property test below): a user restored from deleted items comes back
/// with the group memberships it had, which no group's `members@delta` reports; the feed's
/// state lacked them until the next full read. A user the state held does not have is read
/// with its memberships (`/users/{id}/memberOf`).
#[tokio::test]
async fn a_restored_user_comes_back_with_its_group_memberships() {
    let g = Graph::new();
    let users = g.add_users("u", TENANT, 3);
    let sales = g.add_group("sales");
    g.add_members(&sales, &users[..2]);
    let t = Tenant::new(g);
    let mut held = t.start().await;
    let admin = t.g.portal("admin@northwind.example");
    admin.delete_user(&users[0]);
    t.step(&mut held, "delete a user").await;
    assert_eq!(group(&held.live, "sales").members, vec![users[1].clone()]);
    admin.restore_user(&users[0]);
    let (requests, _) = t.catch_up(&mut held).await.unwrap();
    assert_eq!(requests, 2, "the round, then one batch for the arrived user's memberships");
    let mut members = group(&held.live, "sales").members.clone();
    members.sort();
    assert_eq!(members, users[..2].to_vec(), "the restored user is a member again");
    t.step(&mut held, "after the restore").await;
    // A user created in the portal arrives with no memberships, read the same way.
    let new = admin.create_user("new@northwind.example", "New");
    admin.add_member(&sales, &new);
    t.step(&mut held, "a user created and added to a group in one round").await;
}

/// A user added to a group and deleted in the same round: the users' feed reports the deletion,
/// the groups' feed the addition (a soft-deleted user leaves no trace in `members@delta`), and
/// a full read lists the user in no group. The state built from the feed kept the membership
/// (found by the property test below, in a run of `cargo xtask test`).
#[tokio::test]
async fn a_member_added_and_deleted_in_one_round_is_in_no_group() {
    let g = Graph::new();
    let users = g.add_users("u", TENANT, 2);
    let sales = g.add_group("sales");
    g.add_members(&sales, &users[..1]);
    let t = Tenant::new(g);
    let mut held = t.start().await;
    let admin = t.g.portal("admin@northwind.example");
    let ops = admin.create_group("ops");
    t.step(&mut held, "a group created").await;
    admin.add_member(&ops, &users[0]);
    admin.delete_user(&users[0]);
    t.step(&mut held, "a member added, then deleted").await;
    assert!(group(&held.live, "ops").members.is_empty());
    assert!(group(&held.live, "sales").members.is_empty());
    admin.restore_user(&users[0]);
    t.step(&mut held, "the user restored").await;
}

/// Each user arriving in a round costs a membership read: past 1,000 in one round, the feed
/// starts again from a full read instead.
#[tokio::test]
async fn a_round_with_more_than_a_thousand_arriving_users_starts_the_feed_again() {
    let g = Graph::new();
    g.add_users("u", TENANT, 2);
    let t = Tenant::new(g);
    let mut held = t.start().await;
    let admin = t.g.portal("admin@northwind.example");
    for i in 0..1001 {
        admin.create_user(&format!("hire{i}@{TENANT}"), "Hire");
    }
    let before = t.g.graph_requests();
    match t.catch_up(&mut held).await {
        Err(FeedError::Expired { message, .. }) => {
            assert!(message.contains("more than 1000 users arrived"), "{message}")
        }
        other => panic!("too many arrivals start the feed again: {other:?}"),
    }
    assert!(t.g.graph_requests() - before <= 11, "no membership read was sent");
}

#[tokio::test]
async fn a_cursor_pointing_outside_the_endpoint_is_refused_before_any_request() {
    let g = Graph::new();
    g.add_users("u", TENANT, 2);
    let t = Tenant::new(g);
    let mut held = t.start().await;
    let elsewhere = "http://127.0.0.2:9/v1.0/users/delta?$deltatoken=x".to_string();
    held.cursor.0.insert("users".into(), elsewhere);
    let before = t.g.graph_requests();
    match t.catch_up(&mut held).await {
        Err(FeedError::Read(e)) => assert!(e.to_string().contains("refusing to send the token"), "{e}"),
        other => panic!("a foreign delta link is refused: {other:?}"),
    }
    assert_eq!(t.g.graph_requests(), before, "nothing was sent");
}

#[tokio::test]
async fn a_directory_role_the_cursor_does_not_name_is_found_by_its_template_and_a_cursor_without_roles_restarts() {
    let g = Graph::new();
    let users = g.add_users("u", TENANT, 2);
    let t = Tenant::new(g);
    let mut held = t.start().await;
    // A role activated after the full read is not in the cursor's map: its roleTemplateId
    // names the binding.
    let before = held.cursor.0.len();
    held.cursor.0.retain(|k, _| !k.starts_with("directoryRole "));
    assert!(held.cursor.0.len() < before, "the cursor maps the directory roles");
    t.g.portal("admin@northwind.example").assign_role("Global Administrator", &users[0]).unwrap();
    t.step(&mut held, "a member of a role the cursor does not name").await;
    assert_eq!(role(&held.live, "Global Administrator").members, vec![users[0].clone()]);
    assert!(held.cursor.0.keys().any(|k| k.starts_with("directoryRole ")), "the next cursor names it");

    // A cursor without the directory roles' link (made before they were in the feed) is refused:
    // the caller reads in full.
    held.cursor.0.remove("directoryRoles");
    match t.catch_up(&mut held).await {
        Err(FeedError::Expired { .. }) => {}
        other => panic!("a cursor without the directory roles is refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_synced_user_that_arrives_through_the_feed_is_held_by_active_directory_as_a_full_read_says() {
    let g = Graph::new();
    g.add_users("u", TENANT, 2);
    let t = Tenant::new(g);
    let mut held = t.start().await;
    assert!(held.live.held_elsewhere.is_empty());

    let nancy = t.g.add_synced_user("nancy.davolio@northwind.example", "Davolio, Nancy", true);
    t.step(&mut held, "a synced user created").await;
    let full = t.full().await;
    assert!(full.held_elsewhere.iter().any(|h| h.account == nancy), "a full read marks it held");
    assert_eq!(feed::normalized(&held.live).held_elsewhere, feed::normalized(&full).held_elsewhere);

    t.g.portal("admin@northwind.example").delete_user(&nancy);
    t.step(&mut held, "the synced user deleted").await;
    assert!(held.live.held_elsewhere.is_empty(), "a removed account is held nowhere");
}

#[test]
fn drift_and_watch_note_what_active_directory_owns_as_plan_does() {
    // Nancy comes from on-premises Active Directory, where her name differs from git's.
    let (_g, _fake, sb) = graph_quickstart_with(|g| {
        g.add_synced_user("nancy.davolio@northwind.example", "Davolio, Nancy", true);
    });
    let notice = "target `directory`: user `nancy.davolio` is synchronized from on-premises Active Directory";
    let drift = sb.run(&["drift", "{dir}"]);
    drift.expect(0);
    assert!(drift.stdout.contains(&format!("Note: {notice}")), "{}", drift.stdout);
    assert_eq!(drift.stdout.matches(notice).count(), 1, "{}", drift.stdout);
    let json = sb.run(&["drift", "{dir}", "--format", "json"]);
    assert_eq!(json.json()["notices"][0]["code"], "owned-elsewhere");

    // Watch prints it once, not at every check.
    let (child, _addr, outs) = watch(&sb, &[]);
    let line = outs.recv_timeout(Duration::from_secs(10)).expect("the notice is printed");
    assert!(line.starts_with(&format!("note: {notice}")), "{line}");
    std::thread::sleep(Duration::from_millis(800));
    assert!(outs.try_recv().is_err(), "printed once while it lasts");
    stop(child);
}

#[tokio::test]
async fn a_delta_query_throttled_inside_the_batch_is_sent_again_and_the_round_completes() {
    let g = Graph::new();
    let users = g.add_users("u", TENANT, 3);
    let t = Tenant::new(g);
    let mut held = t.start().await;
    t.g.portal("admin@northwind.example").update_user(&users[0], json!({"jobTitle": "Buyer"}));
    // One request a second, bursts of one: two of the three delta queries of a batch are
    // refused with 429 and go again in later batches.
    t.g.scenario(keyward_fakes::graph::Scenario::Throttle { rate: 1.0, burst: 1 });
    let (requests, changed) = t.catch_up(&mut held).await.unwrap();
    assert!(t.g.throttled() >= 1, "the fake throttled a delta query inside the batch");
    assert!(requests >= 2, "the throttled queries went in a later batch: {requests}");
    assert_eq!(changed, 1);
    t.g.calm();
    t.step(&mut held, "after the throttled round").await;
}

// -- Property: incremental equals full, for random out-of-band changes -----------------------------

/// One change made in the portal, naming objects by their place in the lists the test keeps
/// (every user and group ever created, every role assignment ever made), so a change may name
/// an object already gone: the portal then does nothing, as it would.
#[derive(Debug, Clone)]
enum Op {
    CreateUser,
    UpdateUser { user: usize, title: u8 },
    Enable { user: usize, enabled: bool },
    DeleteUser { user: usize },
    RestoreUser { user: usize },
    PurgeUser { user: usize },
    AddMember { group: usize, user: usize },
    RemoveMember { group: usize, user: usize },
    CreateGroup,
    DeleteGroup { group: usize },
    AssignRole { role: usize, user: usize },
    Unassign { assignment: usize },
}

const ROLES: [&str; 2] = ["Global Administrator", "User Administrator"];

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let i = || 0..16usize;
    prop_oneof![
        Just(Op::CreateUser),
        (i(), 0..3u8).prop_map(|(user, title)| Op::UpdateUser { user, title }),
        (i(), any::<bool>()).prop_map(|(user, enabled)| Op::Enable { user, enabled }),
        i().prop_map(|user| Op::DeleteUser { user }),
        i().prop_map(|user| Op::RestoreUser { user }),
        i().prop_map(|user| Op::PurgeUser { user }),
        (i(), i()).prop_map(|(group, user)| Op::AddMember { group, user }),
        (i(), i()).prop_map(|(group, user)| Op::AddMember { group, user }),
        (i(), i()).prop_map(|(group, user)| Op::RemoveMember { group, user }),
        Just(Op::CreateGroup),
        i().prop_map(|group| Op::DeleteGroup { group }),
        (0..2usize, i()).prop_map(|(role, user)| Op::AssignRole { role, user }),
        i().prop_map(|assignment| Op::Unassign { assignment }),
    ]
}

/// What the test knows of the tenant: ids by the order they were made.
struct Made {
    users: Vec<String>,
    groups: Vec<String>,
    assignments: Vec<String>,
}

impl Made {
    fn run(&mut self, g: &Graph, op: &Op) {
        let admin = g.portal("admin@northwind.example");
        let pick = |v: &[String], i: usize| v[i % v.len()].clone();
        let n = self.users.len() + self.groups.len();
        match *op {
            Op::CreateUser => self.users.push(admin.create_user(&format!("hire{n}@{TENANT}"), "Hire")),
            Op::UpdateUser { user, title } => {
                admin.update_user(&pick(&self.users, user), json!({"jobTitle": format!("title {title}")}))
            }
            Op::Enable { user, enabled } => admin.set_account_enabled(&pick(&self.users, user), enabled),
            Op::DeleteUser { user } => admin.delete_user(&pick(&self.users, user)),
            Op::RestoreUser { user } => admin.restore_user(&pick(&self.users, user)),
            Op::PurgeUser { user } => admin.purge_user(&pick(&self.users, user)),
            Op::AddMember { group, user } => admin.add_member(&pick(&self.groups, group), &pick(&self.users, user)),
            Op::RemoveMember { group, user } => {
                admin.remove_member(&pick(&self.groups, group), &pick(&self.users, user))
            }
            Op::CreateGroup => self.groups.push(admin.create_group(&format!("group-{n}"))),
            Op::DeleteGroup { group } => admin.delete_group(&pick(&self.groups, group)),
            Op::AssignRole { role, user } => {
                self.assignments.extend(admin.assign_role(ROLES[role], &pick(&self.users, user)))
            }
            Op::Unassign { assignment } => {
                if !self.assignments.is_empty() {
                    admin.remove_role_assignment(&pick(&self.assignments, assignment))
                }
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, failure_persistence: None, ..Default::default() })]

    /// For random sequences of changes made in the portal (each step one feed round of one to
    /// three changes), the state built from the feed equals a fresh full read after every step.
    #[test]
    fn for_random_portal_changes_the_state_built_from_the_feed_equals_a_full_read(
        steps in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..10),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let g = Graph::new();
        let users = g.add_users("u", TENANT, 4);
        let groups = vec![g.add_group("sales"), g.add_group("ops")];
        g.add_members(&groups[0], &users[..2]);
        g.add_members(&groups[1], &users[1..3]);
        g.add_role_assignment(ROLES[0], &users[3]);
        let mut made = Made { users, groups, assignments: Vec::new() };
        let t = Tenant::new(g);
        rt.block_on(async {
            let mut held = t.start().await;
            for (k, step) in steps.iter().enumerate() {
                for op in step {
                    made.run(&t.g, op);
                }
                t.step(&mut held, &format!("step {k}: {step:?}")).await;
            }
        });
    }
}
