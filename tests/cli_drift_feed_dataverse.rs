//! `keyward drift` across runs against the Dataverse fake: the first run reads the environment
//! in full and stores its state and change-tracking tokens; the next runs read through the
//! feed (one `$batch` when idle); a role given in the admin center between runs is drift, with
//! who gave it from the audit table; a user removed is seen; an expired or foreign token means
//! a full read, without a false drift.

mod support;

#[path = "d365/harness.rs"]
mod harness;

use keyward_fakes::dataverse::Dataverse;
use keyward_fakes::entra::Entra;
use keyward_fakes::{RequestLog, Running};
use support::{changes, feeds, sample};

/// The tables the provider's feed needs change tracking on (docs/servers.md).
const TRACKED: [&str; 7] =
    ["systemusers", "businessunits", "roles", "teams", "fieldsecurityprofiles", "fieldpermissions", "audits"];
const NOW: u64 = 1_800_000_000;
const SOFIA: &str = "sofia.lindqvist@northwind.example";
const FULL: &str = "d365: read in full.";
const FED: &str = "d365: read through the change feed";

struct Env {
    dv: Dataverse,
    log: RequestLog,
    secret: String,
    sb: support::Sandbox,
    _server: Running,
}

/// The enterprise example on the Dataverse fake (change tracking on), applied.
fn environment() -> Env {
    let (entra, secret) = (Entra::new(), harness::secret());
    let dv = harness::dataverse(&entra, &secret);
    dv.set_now(NOW);
    for t in TRACKED {
        assert!(dv.enable_change_tracking(t), "{t}");
    }
    let log = RequestLog::default();
    let server = dv.serve(&entra, &log, None);
    let sb = harness::enterprise(&server.url(), None);
    harness::run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    Env { dv, log, secret, sb, _server: server }
}

impl Env {
    /// `keyward drift --target d365` with `extra` arguments: the run and the requests it sent to
    /// the environment's Web API.
    fn drift(&self, extra: &[&str]) -> (support::Run, usize) {
        let mut args = vec!["drift", "{dir}", "--target", "d365"];
        args.extend_from_slice(extra);
        let api = || self.log.entries().iter().filter(|e| e.path.starts_with("/api/data/")).count();
        let before = api();
        let run = harness::run(&self.sb, &self.secret, &args);
        (run, api() - before)
    }
}

#[test]
fn drift_runs_read_the_environment_through_the_feed_and_see_a_role_given_in_the_admin_center() {
    let env = environment();
    let (first, full) = env.drift(&["--format", "json"]);
    first.expect(0);
    assert_eq!(full, 11, "a full read (BENCHMARKS.md)");
    assert!(first.stderr.contains(FULL), "{}", first.stderr);
    let cursor = feeds::cursor(&env.sb, "d365");
    assert!(cursor.contains_key("systemusers") && cursor.contains_key("audits"), "{cursor:?}");

    // Idle: the delta links in one `$batch`.
    let (second, requests) = env.drift(&["--format", "json"]);
    second.expect(0);
    assert!(second.stderr.contains(&format!("{FED} (0 objects changed since the last run).")), "{}", second.stderr);
    assert_eq!(requests, 1, "an idle run is one request (the full read took {full})");
    assert_eq!(first.stdout, second.stdout, "the same answer as the full read");

    // System Administrator given in the admin center by another administrator.
    let eve = env.dv.add_app_user("22222222-3333-4444-5555-666666666666", "33333333-4444-5555-6666-777777777777", None);
    env.dv.set_audit_actor(Some(&eve));
    env.dv.admin_assign_role(SOFIA, "System Administrator");
    let (third, requests) = env.drift(&[]);
    third.expect(2);
    assert!(third.stderr.contains(&format!("{FED} (1 object changed since the last run).")), "{}", third.stderr);
    assert_eq!(requests, 3, "the `$batch`, the user's roles re-read, and the audit read that names who");
    assert!(third.stdout.contains("d365.assignment.sofia.lindqvist/it-admin"), "{}", third.stdout);
    assert!(third.stdout.contains(&format!("changed outside git by {eve} at ")), "{}", third.stdout);
    // The next run, idle, still says it and who made it: the `$batch`, and the audit read for
    // the drift item still there.
    let (fourth, requests) = env.drift(&[]);
    fourth.expect(2);
    assert!(fourth.stderr.contains(&format!("{FED} (0 objects changed since the last run).")), "{}", fourth.stderr);
    assert_eq!(requests, 2);
    assert!(fourth.stdout.contains(&format!("changed outside git by {eve} at ")), "{}", fourth.stdout);
    // And --full agrees.
    let (full_run, _) = env.drift(&["--full", "--format", "json"]);
    let (fed, _) = env.drift(&["--format", "json"]);
    assert!(full_run.expect(2).stderr.contains(FULL), "{}", full_run.stderr);
    assert_eq!(changes(&full_run.json()), changes(&fed.expect(2).json()));
}

#[test]
fn a_user_removed_between_runs_is_seen_through_the_feed() {
    let mut env = environment();
    env.drift(&[]).0.expect(0);
    env.dv.remove_user(SOFIA);
    // Ninety seconds after the first run.
    env.sb.now = "2026-11-28T12:01:30Z".into();
    let prom = env.sb.root.join("keyward.prom");
    let (run, requests) = env.drift(&["--format", "json", "--metrics-file", prom.to_str().unwrap()]);
    run.expect(2);
    // A removal names no one: its detection latency is bounded by the run before, which did not
    // see it.
    let m = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(sample(&m, "keyward_detection_latency_seconds{target=\"d365\"}"), Some(90.0), "{m}");
    assert_eq!(sample(&m, "keyward_detection_latency_attributed{target=\"d365\"}"), Some(0.0), "{m}");
    assert!(run.stderr.contains(FED), "{}", run.stderr);
    assert_eq!(requests, 1, "the `$batch`: a removal needs no re-read");
    let changes = changes(&run.json());
    assert!(changes.contains(&("d365.user.sofia.lindqvist".into(), "create".into())), "{changes:?}");
    // A full read says the same; the item is not new to it.
    let (full, _) = env.drift(&["--full", "--format", "json", "--metrics-file", prom.to_str().unwrap()]);
    assert_eq!(support::changes(&full.expect(2).json()), changes);
    let m = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(sample(&m, "keyward_detection_latency_seconds{target=\"d365\"}"), None, "{m}");
}

#[test]
fn an_expired_token_means_a_full_read_without_a_false_drift() {
    let env = environment();
    env.drift(&[]).0.expect(0);
    // Eight days later: the tokens are older than the seven days changes are kept.
    env.dv.set_now(NOW + 8 * 86_400);
    let prom = env.sb.root.join("keyward.prom");
    let (run, requests) = env.drift(&["--format", "json", "--metrics-file", prom.to_str().unwrap()]);
    run.expect(0);
    assert!(run.stderr.contains(FULL), "{}", run.stderr);
    assert!(requests > 1);
    assert!(changes(&run.json()).is_empty(), "no false drift");
    let m = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(sample(&m, "keyward_feed_restarts{target=\"d365\"}"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "keyward_read_mode{target=\"d365\",mode=\"full\"}"), Some(1.0), "{m}");
    // That full read starts the feed again.
    let (run, requests) = env.drift(&[]);
    assert!(run.expect(0).stderr.contains(FED), "{}", run.stderr);
    assert_eq!(requests, 1);
}

#[test]
fn a_stored_token_pointing_outside_the_environment_is_not_sent_and_means_a_full_read() {
    let env = environment();
    env.drift(&[]).0.expect(0);
    let foreign = "http://127.0.0.2:9/api/data/v9.2/systemusers?$deltatoken=1";
    feeds::edit_cursor(&env.sb, "d365", "systemusers", foreign);
    let (run, requests) = env.drift(&["--format", "json"]);
    run.expect(0);
    assert!(requests > 1, "a full read");
    assert!(run.stderr.contains(FULL), "{}", run.stderr);
    assert!(changes(&run.json()).is_empty(), "no false drift");
    // The full read stored a cursor of the environment's own.
    assert_ne!(feeds::cursor(&env.sb, "d365")["systemusers"], foreign);
    let (run, requests) = env.drift(&[]);
    assert!(run.expect(0).stderr.contains(FED), "{}", run.stderr);
    assert_eq!(requests, 1);
}
