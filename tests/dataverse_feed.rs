//! The Dataverse provider's change feed against the Dataverse fake over HTTP: for random
//! sequences of changes made outside keyward, the state built from the feed equals a fresh full
//! read after every step; an idle round costs one request (a `$batch`) and a round with role
//! changes, a user created or a user moved two; an expired token is refused, a change to
//! structure tables is read in full without being a refusal, and a table without change
//! tracking leads to full reads; and
//! `keyward watch` end to end alerts a role given in the admin center through the feed.

mod support;

use support::{http_get, metrics_until, sample};

#[path = "d365/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keyward::model::config::{ClientCredential, Connection, Target};
use keyward::model::feed::{self, Cursor};
use keyward::model::{Binding, LiveTarget, Name, SecretRef, UsersScope};
use keyward::provider::{self, Access, FeedError, Provider};
use keyward_fakes::dataverse::Dataverse;
use keyward_fakes::entra::Entra;
use keyward_fakes::{RequestLog, Running};
use proptest::prelude::*;
use serde_json::json;

const TENANT: &str = "456e4037-8afc-4f71-ae73-f9e51f634295";
const CLIENT: &str = "55b1a2c7-9c3a-4911-a9b3-2555f9df8578";
const NOW: u64 = 1_800_000_000;
const ROLES: [&str; 2] = ["Salesperson", "Sales Manager"];
/// The tables a full read of the provider needs change tracking on.
const TRACKED: [&str; 6] =
    ["systemusers", "businessunits", "roles", "teams", "fieldsecurityprofiles", "fieldpermissions"];
const APP: &str = "app@northwind.example";

fn target(url: &str) -> Target {
    Target {
        name: Name::new("d365").unwrap(),
        users: UsersScope::All,
        ca_file: None,
        connection: Connection::Dataverse {
            url: url.into(),
            tenant: TENANT.into(),
            client_id: CLIENT.into(),
            credential: ClientCredential::Secret(SecretRef::File("client-secret".into())),
            authority: Some(url.into()),
            business_unit: None,
        },
    }
}

fn user(i: u8) -> String {
    format!("u{i}@northwind.example")
}

/// An environment with two roles in two units and a third unit with a copy of only the first
/// (the second is out of reach of its users), an owner team, a field security profile, six
/// people (one in the second unit) and an application user holding a role.
fn environment(tracked: &[&str]) -> Dataverse {
    let dv = Dataverse::new("northwind");
    dv.set_now(NOW);
    for r in ROLES {
        dv.add_role_everywhere(r);
    }
    let east = dv.create_business_unit("east", &dv.root_business_unit());
    let west = dv.add_business_unit("west", Some(&dv.root_business_unit()));
    dv.add_role(ROLES[0], Some(&west));
    for i in 0..6 {
        dv.add_user(&user(i), (i == 5).then_some(east.as_str()));
    }
    dv.add_application_user(APP);
    dv.associate_role(APP, "Salesperson");
    dv.associate_role(&user(0), "Sales Manager");
    let team = dv.add_owner_team("Key Accounts", None);
    dv.add_team_member(&team, &user(1));
    dv.add_profile("Payroll", &["systemuser.jobtitle"]);
    dv.add_profile_member("Payroll", &user(2));
    for t in tracked {
        assert!(dv.enable_change_tracking(t));
    }
    dv
}

/// What a watcher holds: the state and the cursor.
struct Held {
    live: LiveTarget,
    cursor: Cursor,
}

struct Env {
    dv: Dataverse,
    _fake: Running,
    url: String,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(dv: Dataverse) -> Env {
        let entra = Entra::new();
        let secret = harness::secret();
        entra.register(CLIENT, Some(&secret));
        let fake = dv.serve(&entra, &RequestLog::default(), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-secret"), &secret).unwrap();
        Env { url: fake.url(), dv, _fake: fake, dir }
    }

    fn open(&self) -> Box<dyn Provider> {
        provider::open(&target(&self.url), self.dir.path(), Access::Read).unwrap()
    }

    async fn start(&self) -> Held {
        let (live, cursor) = self.open().read_with_cursor().await.unwrap();
        Held { live, cursor: cursor.expect("every table has change tracking") }
    }

    /// One round of the feed applied to `held`: the requests it took and the objects changed.
    async fn catch_up(&self, held: &mut Held) -> Result<(usize, usize), FeedError> {
        let mut p = self.open();
        let changes = p.read_changes(&held.cursor, &held.live).await?;
        feed::apply(&mut held.live, &changes.changes, |b| p.binding_fingerprint(b));
        held.cursor = changes.cursor.clone();
        Ok((p.requests().unwrap(), changes.objects()))
    }

    async fn full(&self) -> LiveTarget {
        self.open().read().await.unwrap()
    }

    /// The state held equals a full read, every part of it (accounts, bindings, each account's
    /// business unit and licence, what is out of whose reach).
    async fn check(&self, held: &Held, what: &str) {
        let full = self.full().await;
        assert_eq!(
            feed::normalized(&held.live),
            feed::normalized(&full),
            "{what}: the state built from the feed differs from a full read: {:?}",
            feed::differences(&held.live, &full)
        );
    }
}

fn binding<'a>(live: &'a LiveTarget, b: &Binding) -> &'a keyward::model::LiveBinding {
    live.bindings.iter().find(|x| &x.binding == b).unwrap_or_else(|| panic!("{b:?}"))
}

/// A change made outside keyward.
#[derive(Debug, Clone)]
enum Op {
    /// A person created in a unit (0: root, 1: east, 2: west).
    Create(u8, u8),
    Title(u8, u8),
    Disable(u8, bool),
    Delete(u8),
    Assign(u8, usize),
    Unassign(u8, usize),
    TeamAdd(u8),
    TeamRemove(u8),
    ProfileAdd(u8),
    /// A user moved to a unit (as for `Create`; the unit it is in already is a move too).
    Move(u8, u8),
    Idle,
}

impl Op {
    /// Whether the feed reads it as changes (the application user deleted or moved is read in
    /// full: application users are service accounts, which the feed does not keep).
    fn incremental(&self) -> bool {
        !matches!(self, Op::Delete(7) | Op::Move(7, _))
    }
}

/// Users 0–6 are people, 7 the application user (for role changes).
fn who(i: u8) -> String {
    if i == 7 { APP.to_string() } else { user(i) }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..7, 0u8..3).prop_map(|(u, b)| Op::Create(u, b)),
        (0u8..7, 0u8..4).prop_map(|(u, t)| Op::Title(u, t)),
        (0u8..7, any::<bool>()).prop_map(|(u, d)| Op::Disable(u, d)),
        (0u8..8).prop_map(Op::Delete),
        (0u8..8, 0usize..2).prop_map(|(u, r)| Op::Assign(u, r)),
        (0u8..8, 0usize..2).prop_map(|(u, r)| Op::Unassign(u, r)),
        (0u8..7).prop_map(Op::TeamAdd),
        (0u8..7).prop_map(Op::TeamRemove),
        (0u8..7).prop_map(Op::ProfileAdd),
        (0u8..8, 0u8..3).prop_map(|(u, b)| Op::Move(u, b)),
        Just(Op::Idle),
    ]
}

/// Carries out `op` on the environment; false when it names a user that does not exist (or
/// one that does, for a creation): nothing changed.
fn run(dv: &Dataverse, op: &Op) -> bool {
    let exists = |i: u8| dv.user_id(&who(i)).is_some();
    let team = || dv.team_id("Key Accounts").unwrap();
    let unit = |b: u8| match b {
        0 => dv.root_business_unit(),
        1 => dv.business_unit("east").unwrap(),
        _ => dv.business_unit("west").unwrap(),
    };
    // Only the copy of the user's own unit can be given, and west has no copy of the second.
    let has_copy = |i: u8, r: usize| dv.role_in(ROLES[r], &dv.user_business_unit(&who(i)).unwrap()).is_some();
    match *op {
        Op::Create(i, b) if !exists(i) => {
            dv.add_user(&who(i), Some(&unit(b)));
        }
        Op::Title(i, t) if exists(i) => dv.set_user_field(&who(i), "jobtitle", json!(format!("title {t}"))),
        Op::Disable(i, d) if exists(i) => dv.set_user_field(&who(i), "isdisabled", json!(d)),
        Op::Delete(i) if exists(i) => dv.remove_user(&who(i)),
        Op::Assign(i, r) if exists(i) && has_copy(i, r) => dv.admin_assign_role(&who(i), ROLES[r]),
        Op::Unassign(i, r) if exists(i) => dv.admin_remove_role(&who(i), ROLES[r]),
        Op::TeamAdd(i) if exists(i) => dv.add_team_member(&team(), &who(i)),
        Op::TeamRemove(i) if exists(i) => dv.remove_team_member(&team(), &who(i)),
        Op::ProfileAdd(i) if exists(i) => dv.add_profile_member("Payroll", &who(i)),
        Op::Move(i, b) if exists(i) => dv.move_user(&who(i), &unit(b)),
        Op::Idle => {}
        _ => return false,
    }
    true
}

/// Runs `ops`, catching up after each; a round the feed refuses is followed by a full read
/// that starts it again, as `watch` does. Returns the rounds read through the feed.
async fn sequence(ops: &[Op]) -> usize {
    let env = Env::new(environment(&TRACKED));
    let mut held = env.start().await;
    env.check(&held, "the first read").await;
    let mut incremental = 0;
    for (n, op) in ops.iter().enumerate() {
        let changed = run(&env.dv, op);
        let what = format!("step {n}: {op:?}");
        match env.catch_up(&mut held).await {
            Ok(_) => incremental += 1,
            Err(FeedError::Unfollowed { message, .. }) => {
                assert!(
                    changed && !op.incremental(),
                    "{what}: only an application user's change is read in full: {message}"
                );
                held = env.start().await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
        env.check(&held, &what).await;
    }
    incremental
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_state_built_from_the_feed_equals_a_full_read_after_every_change(ops in prop::collection::vec(op(), 1..10)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let rounds = rt.block_on(sequence(&ops));
        let expected = ops.iter().filter(|o| o.incremental()).count();
        prop_assert!(rounds >= expected, "every change but the application user's is read through the feed");
    }
}

#[tokio::test]
async fn an_idle_round_is_one_request_and_a_role_change_two() {
    let env = Env::new(environment(&TRACKED));
    let mut held = env.start().await;
    assert_eq!(env.catch_up(&mut held).await.unwrap(), (1, 0), "one $batch, nothing changed");

    env.dv.admin_assign_role(&user(3), "Sales Manager");
    assert_eq!(env.catch_up(&mut held).await.unwrap(), (2, 1), "the $batch, and the user's roles re-read");
    let manager = binding(&held.live, &Binding::SecurityRole("Sales Manager".into()));
    assert!(manager.members.contains(&env.dv.user_id(&user(3)).unwrap()));
    env.check(&held, "a role given").await;

    env.dv.set_user_field(&user(4), "isdisabled", json!(true));
    env.dv.add_team_member(&env.dv.team_id("Key Accounts").unwrap(), &user(4));
    assert_eq!(env.catch_up(&mut held).await.unwrap(), (1, 2));
    env.check(&held, "a user disabled and added to a team").await;

    // Ten role changes at once: still two requests.
    for i in 0..5 {
        env.dv.admin_assign_role(&user(i), "Salesperson");
        env.dv.admin_remove_role(&user(i), "Sales Manager");
    }
    let (requests, _) = env.catch_up(&mut held).await.unwrap();
    assert_eq!(requests, 2);
    env.check(&held, "ten role changes").await;

    // A deleted user leaves the accounts and every binding.
    let gone = env.dv.user_id(&user(1)).unwrap();
    env.dv.remove_user(&user(1));
    env.catch_up(&mut held).await.unwrap();
    assert!(held.live.accounts.iter().all(|a| a.id != gone), "the removal is seen");
    assert!(held.live.bindings.iter().all(|b| !b.members.contains(&gone)));
    env.check(&held, "a user deleted").await;
}

#[tokio::test]
async fn the_members_of_a_microsoft_entra_group_team_are_followed() {
    let dv = environment(&TRACKED);
    dv.assign_team_role(&dv.add_group_team("Sales Group", None, "1b0c3a43-5d0e-4c2e-9d7a-6f1f8b6f1c11", 0), ROLES[0]);
    let env = Env::new(dv);
    let mut held = env.start().await;
    let team = env.dv.team_id("Sales Group").unwrap();
    // Dataverse brings the group's members over: no audit row, no tracked table.
    env.dv.set_group_team_members(&team, &[&user(1), &user(2)]);
    assert_eq!(env.catch_up(&mut held).await.unwrap(), (1, 1));
    env.check(&held, "members of a group team").await;
    env.dv.set_group_team_members(&team, &[&user(2)]);
    env.catch_up(&mut held).await.unwrap();
    env.check(&held, "a member gone from a group team").await;
}

#[tokio::test]
async fn an_expired_token_is_refused_so_the_caller_reads_in_full() {
    let env = Env::new(environment(&TRACKED));
    let mut held = env.start().await;
    env.dv.set_now(NOW + 6 * 86_400);
    env.catch_up(&mut held).await.expect("changes are kept seven days");
    // Eight days after the last round.
    env.dv.set_now(NOW + 14 * 86_400);
    env.dv.admin_assign_role(&user(2), "Salesperson");
    match env.catch_up(&mut held).await {
        Err(FeedError::Expired { message, .. }) => assert!(message.contains("expired"), "{message}"),
        other => panic!("an expired token is refused: {other:?}"),
    }
    // The full read that follows starts the feed again, with the change in it.
    let mut held = env.start().await;
    env.check(&held, "after the restart").await;
    assert_eq!(env.catch_up(&mut held).await.unwrap(), (1, 0), "nothing is reported twice");
}

#[tokio::test]
async fn a_table_without_change_tracking_means_full_reads() {
    let env = Env::new(environment(&TRACKED[..5]));
    let (live, cursor) = env.open().read_with_cursor().await.unwrap();
    assert!(cursor.is_none(), "`fieldpermissions` is not tracked: no feed");
    assert_eq!(feed::normalized(&live), feed::normalized(&env.full().await));
    let (_, cursor) = env.open().read_with_cursor().await.unwrap();
    assert!(cursor.is_none());

    // Tracking turned on: the next full read notices, and the one after starts the feed.
    env.dv.enable_change_tracking("fieldpermissions");
    let (_, cursor) = env.open().read_with_cursor().await.unwrap();
    assert!(cursor.is_none());
    let mut held = env.start().await;
    assert_eq!(env.catch_up(&mut held).await.unwrap(), (1, 0));
}

#[tokio::test]
async fn a_change_to_roles_or_units_is_read_in_full_and_is_no_refused_cursor() {
    let env = Env::new(environment(&TRACKED));
    let mut held = env.start().await;
    env.dv.create_business_unit("north", &env.dv.root_business_unit());
    match env.catch_up(&mut held).await {
        Err(FeedError::Unfollowed { message, .. }) => assert!(message.contains("businessunits"), "{message}"),
        other => panic!("a new business unit is read in full, the cursor not refused: {other:?}"),
    }
    let mut held = env.start().await;
    env.dv.add_role("Auditor", None);
    assert!(
        matches!(env.catch_up(&mut held).await, Err(FeedError::Unfollowed { .. })),
        "a new role is read in full, the cursor not refused"
    );
}

#[tokio::test]
async fn a_user_created_or_moved_is_read_through_the_feed_in_two_requests() {
    let env = Env::new(environment(&TRACKED));
    let mut held = env.start().await;
    let west = env.dv.business_unit("west").unwrap();

    // A new hire in the unit without a copy of Sales Manager: the $batch, and its roles re-read.
    let hire = env.dv.add_user("hire@northwind.example", Some(&west));
    assert_eq!(env.catch_up(&mut held).await.unwrap(), (2, 1), "the $batch, and the new user's roles");
    let units = held.live.business_units.as_ref().unwrap();
    assert_eq!(units.of_account.get(&hire).map(String::as_str), Some("west"));
    assert!(
        held.live.out_of_reach.iter().any(|o| o.account.as_deref() == Some(hire.as_str())
            && o.binding == Binding::SecurityRole("Sales Manager".into())),
        "{:?}",
        held.live.out_of_reach
    );
    assert!(held.live.licences.contains_key(&hire), "its licence is recorded");
    env.check(&held, "a user created").await;

    // A user moved from the root unit to west and back: its roles go, its reach follows.
    env.dv.admin_assign_role(&user(3), "Salesperson");
    env.dv.admin_assign_role(&user(3), "Sales Manager");
    env.catch_up(&mut held).await.unwrap();
    env.dv.move_user(&user(3), &west);
    assert_eq!(env.catch_up(&mut held).await.unwrap().0, 2, "the $batch, and the moved user's roles");
    let id = env.dv.user_id(&user(3)).unwrap();
    assert!(binding(&held.live, &Binding::SecurityRole("Sales Manager".into())).members.iter().all(|m| m != &id));
    env.check(&held, "a user moved to a unit without a copy").await;
    env.dv.move_user(&user(3), &env.dv.root_business_unit());
    assert_eq!(env.catch_up(&mut held).await.unwrap().0, 2);
    assert!(held.live.out_of_reach.iter().all(|o| o.account.as_deref() != Some(id.as_str())));
    env.check(&held, "a user moved back").await;

    // Created, given a role and put in a team in one round: still two requests.
    env.dv.add_user("second@northwind.example", None);
    env.dv.admin_assign_role("second@northwind.example", "Sales Manager");
    env.dv.add_team_member(&env.dv.team_id("Key Accounts").unwrap(), "second@northwind.example");
    assert_eq!(env.catch_up(&mut held).await.unwrap().0, 2);
    env.check(&held, "a user created with a role and a team").await;

    // A deleted user leaves no unit and nothing out of reach behind.
    env.dv.remove_user("hire@northwind.example");
    assert_eq!(env.catch_up(&mut held).await.unwrap(), (1, 1));
    assert!(!held.live.business_units.as_ref().unwrap().of_account.contains_key(&hire));
    assert!(held.live.out_of_reach.iter().all(|o| o.account.as_deref() != Some(hire.as_str())));
    env.check(&held, "the new user deleted").await;
}

#[tokio::test]
async fn a_cursor_pointing_outside_the_environment_is_refused_before_any_request() {
    let env = Env::new(environment(&TRACKED));
    let mut held = env.start().await;
    held.cursor.0.insert("systemusers".into(), "http://127.0.0.2:9/api/data/v9.2/systemusers?$deltatoken=1".into());
    let mut p = env.open();
    match p.read_changes(&held.cursor, &held.live).await {
        Err(FeedError::Read(e)) => assert!(e.to_string().contains("refusing to send the token"), "{e}"),
        other => panic!("a foreign delta link is refused: {other:?}"),
    }
    assert_eq!(p.requests(), Some(0), "nothing was sent");
}

#[test]
fn the_tables_named_in_the_documentation_are_those_the_feed_needs() {
    let servers = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/servers.md")).unwrap();
    for t in TRACKED {
        assert!(servers.contains(&format!("`{t}`")), "docs/servers.md names `{t}`");
    }
}

// -- keyward watch, end to end --------------------------------------------------------------------

const MODE_INCREMENTAL: &str = "keyward_read_mode{target=\"d365\",mode=\"incremental\"}";
const RESTARTS: &str = "keyward_feed_restarts{target=\"d365\"}";
const UNFOLLOWED: &str = "keyward_feed_unfollowed{target=\"d365\"}";
const REQUESTS: &str = "keyward_read_requests{target=\"d365\"}";

/// `keyward watch` every 200 ms on the sandbox's `d365` target: the process, its address, its
/// stdout lines.
fn watch(
    sb: &support::Sandbox,
    secret: &str,
    hook: &str,
) -> (std::process::Child, String, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let args = [
        "watch",
        sb.root.to_str().unwrap(),
        "--target",
        "d365",
        "--interval",
        "200ms",
        "--resync",
        "1h",
        "--listen",
        "127.0.0.1:0",
    ];
    let mut child = sb
        .cmd(&args)
        .env("D365_CLIENT_SECRET", secret)
        .env("FNO_CLIENT_SECRET", secret)
        .env("KEYWARD_WEBHOOK_URL", hook)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
    (child, addr, outs, errs)
}

fn stop(mut child: std::process::Child) {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn watch_alerts_a_role_given_in_the_admin_center_through_the_feed() {
    let (entra, secret) = (Entra::new(), harness::secret());
    let dv = harness::dataverse(&entra, &secret);
    dv.set_now(NOW);
    for t in TRACKED {
        assert!(dv.enable_change_tracking(t));
    }
    let server = dv.serve(&entra, &RequestLog::default(), None);
    let sb = harness::enterprise(&server.url(), None);
    harness::run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    harness::run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
    let (hook, bodies) = support::webhook("/hooks/alerts");
    let (child, addr, outs, errs) = watch(&sb, &secret, &hook);

    // The first check reads in full; the next ones through the feed, one request each.
    let m = metrics_until(&addr, "checks turn incremental", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    assert_eq!(sample(&m, REQUESTS), Some(1.0), "{m}");
    assert!(outs.try_recv().is_err(), "no drift, no alert");

    // System Administrator given to a sales rep in the admin center: the audit table's feed.
    let eve = dv.add_app_user("22222222-3333-4444-5555-666666666666", "33333333-4444-5555-6666-777777777777", None);
    dv.set_audit_actor(Some(&eve));
    let changed = Instant::now();
    dv.admin_assign_role("sofia.lindqvist@northwind.example", "System Administrator");
    let line = outs.recv_timeout(Duration::from_secs(10)).expect("the grant is alerted");
    assert!(line.starts_with("drift: revoke d365.") && line.contains("sofia.lindqvist"), "{line}");
    assert!(
        changed.elapsed() < Duration::from_secs(5),
        "alerted within a few 200 ms intervals: {:?}",
        changed.elapsed()
    );
    let body = bodies.recv_timeout(Duration::from_secs(10)).expect("the webhook gets the alert");
    assert!(body.contains("sofia.lindqvist"), "{body}");
    // Who gave it, from the audit table, though the check read through the feed.
    assert!(body.contains(&format!("changed outside git by {eve}")), "{body}");
    let m = http_get(&addr, "/metrics");
    assert_eq!(sample(&m, MODE_INCREMENTAL), Some(1.0), "{m}");
    assert_eq!(sample(&m, RESTARTS), Some(0.0), "read through the feed, not a full read: {m}");
    assert_eq!(sample(&m, UNFOLLOWED), Some(0.0), "{m}");

    // A business unit created: read in full, counted as a change the feed cannot follow, not as
    // a refused cursor; then the feed goes on.
    dv.create_business_unit("Logistics", &dv.root_business_unit());
    let m = metrics_until(&addr, "the new unit is read in full", |m| sample(m, UNFOLLOWED) == Some(1.0));
    assert_eq!(sample(&m, RESTARTS), Some(0.0), "no cursor was refused: {m}");
    metrics_until(&addr, "checks turn incremental after the unit", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));

    // The delta tokens expire: a full read starts the feed again, and nothing is alerted that
    // did not change (the grant already alerted is not alerted again).
    dv.set_now(NOW + 8 * 86_400);
    let m = metrics_until(&addr, "the feed starts again", |m| sample(m, RESTARTS) == Some(1.0));
    assert_eq!(sample(&m, UNFOLLOWED), Some(1.0), "an expired token is a refusal: {m}");
    metrics_until(&addr, "checks turn incremental again", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    std::thread::sleep(Duration::from_millis(600));
    let extra: Vec<String> = outs.try_iter().collect();
    let log: Vec<String> = errs.try_iter().collect();
    assert!(extra.is_empty(), "no false alert after the full read: {extra:?}\n{}", log.join("\n"));
    assert!(bodies.try_recv().is_err(), "nothing more was sent to the webhook");
    stop(child);
}

#[test]
fn drift_shows_who_gave_a_role_in_the_admin_center_and_when() {
    let (entra, secret) = (Entra::new(), harness::secret());
    let dv = harness::dataverse(&entra, &secret);
    let server = dv.serve(&entra, &RequestLog::default(), None);
    let sb = harness::enterprise(&server.url(), None);
    harness::run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let eve = dv.add_app_user("22222222-3333-4444-5555-666666666666", "33333333-4444-5555-6666-777777777777", None);
    dv.set_audit_actor(Some(&eve));
    dv.admin_assign_role("sofia.lindqvist@northwind.example", "System Administrator");

    let r = harness::run(&sb, &secret, &["drift", "{dir}", "--target", "d365"]);
    r.expect(2);
    assert!(r.stdout.contains("d365.assignment.sofia.lindqvist/it-admin"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("changed outside git by {eve} at ")), "{}", r.stdout);
    assert!(r.stdout.contains("(Assign Role To User)"), "{}", r.stdout);
    assert_eq!(
        r.stdout.matches("changed outside git by").count(),
        1,
        "only the role given is attributed: {}",
        r.stdout
    );
}

#[tokio::test]
async fn more_role_changes_than_a_round_rereads_are_read_in_full() {
    let dv = environment(&TRACKED);
    for i in 10..211 {
        dv.add_user(&user(i), None);
    }
    let env = Env::new(dv);
    let mut held = env.start().await;
    for i in 10..210 {
        env.dv.admin_assign_role(&user(i), "Salesperson");
    }
    assert_eq!(env.catch_up(&mut held).await.unwrap().0, 2, "200 users: re-read in one $batch");
    env.check(&held, "200 role changes").await;
    for i in 10..211 {
        env.dv.admin_assign_role(&user(i), "Sales Manager");
    }
    match env.catch_up(&mut held).await {
        Err(FeedError::Unfollowed { message, .. }) => assert!(message.contains("more than 200"), "{message}"),
        other => panic!("201 users' roles are read in full: {other:?}"),
    }
}

/// A pinned role whose live contents leave its snapshot is printed and alerted by `watch` as
/// `drift` reports it, once while it lasts, and again when it comes back.
#[test]
fn watch_alerts_a_pinned_role_whose_contents_changed_once_while_it_lasts() {
    use keyward_fakes::dataverse::Depth;
    let (entra, secret) = (Entra::new(), harness::secret());
    let dv = harness::dataverse(&entra, &secret);
    dv.set_now(NOW);
    for t in TRACKED {
        assert!(dv.enable_change_tracking(t));
    }
    dv.add_privilege("prvReadAccount");
    dv.grant_privilege("Salesperson", "prvReadAccount", Depth::Local);
    let server = dv.serve(&entra, &RequestLog::default(), None);
    let sb = harness::enterprise(&server.url(), None);
    sb.edit(
        "roles/sales.yaml",
        "  d365: {securityRole: Salesperson}\n",
        "  d365: {securityRole: Salesperson}\ncontents: pinned\n",
    );
    harness::run(&sb, &secret, &["import", "{dir}", "--target", "d365", "--contents"]).expect(0);
    harness::run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    // `drift` reads through the feed state it stored at its last run, contents too.
    harness::run(&sb, &secret, &["drift", "{dir}", "--target", "d365"]).expect(0);
    let d = harness::run(&sb, &secret, &["drift", "{dir}", "--target", "d365"]);
    d.expect(0);
    assert!(d.stderr.contains("d365: read through the change feed"), "{}", d.stderr);
    let (hook, bodies) = support::webhook("/hooks/alerts");
    let (child, addr, outs, _errs) = watch(&sb, &secret, &hook);
    metrics_until(&addr, "checks turn incremental", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    support::assert_no_alert(&outs, "the contents match the snapshot");

    let widened = || {
        let line = outs.recv_timeout(Duration::from_secs(10)).expect("the changed contents are alerted");
        assert!(line.starts_with("drift: contents of role.sales-rep changed outside git: "), "{line}");
        assert!(line.contains("prvReadAccount"), "{line}");
        let body = bodies.recv_timeout(Duration::from_secs(10)).expect("the webhook gets the alert");
        assert!(body.contains("the contents of 1 pinned role in") && body.contains("role.sales-rep"), "{body}");
        assert!(!body.contains("prvReadAccount"), "the alert carries addresses only: {body}");
    };
    // Outside git: the Salesperson role's read widens to the whole organization.
    dv.grant_privilege("Salesperson", "prvReadAccount", Depth::Global);
    widened();
    // Later checks see the same change: not alerted again.
    std::thread::sleep(Duration::from_millis(800));
    support::assert_no_alert(&outs, "alerted once while it lasts");
    assert!(bodies.try_recv().is_err(), "nothing more was sent to the webhook");

    // Undone, then done again: alerted again.
    dv.grant_privilege("Salesperson", "prvReadAccount", Depth::Local);
    std::thread::sleep(Duration::from_millis(800));
    support::assert_no_alert(&outs, "undoing the change is no drift");
    dv.grant_privilege("Salesperson", "prvReadAccount", Depth::Global);
    widened();
    stop(child);
}
