//! `keyward drift` across runs, against the Graph fake: each run stores the tenant's live state
//! and its change-feed cursor in the state store, and the next run reads through the feed from
//! them (one `$batch` when idle); a change made in the portal between runs is drift; `--full`,
//! a stored state that does not parse, and one older than `--resync` mean a full read.
#[path = "state/azurite.rs"]
mod azurite;
mod support;

use std::path::{Path, PathBuf};

use keyward_fakes::graph::Graph;
use serde_json::json;

const TENANT: &str = "northwind.example";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const FULL: &str = "directory: read in full.";
const FED: &str = "directory: read through the change feed";

/// A client secret made at test time, registered with the fake and written for the target.
fn register(g: &Graph, root: &Path) {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let secret = format!("test-secret-{:016x}", h.finish());
    g.entra().register(CLIENT, Some(&secret));
    std::fs::write(root.join("client-secret"), &secret).unwrap();
}

/// The quick start on the Graph fake, applied.
fn graph_quickstart() -> (Graph, keyward_fakes::Running, support::Sandbox) {
    graph_quickstart_with(|_| {})
}

/// [`graph_quickstart`], with `prepare` run on the folder before the apply.
fn graph_quickstart_with(prepare: impl FnOnce(&support::Sandbox)) -> (Graph, keyward_fakes::Running, support::Sandbox) {
    let g = Graph::new();
    let sb = support::Sandbox::example("quickstart");
    register(&g, &sb.root);
    prepare(&sb);
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
    (g, fake, sb)
}

/// Runs `keyward drift` with `extra` arguments at `now`; returns the run and the requests it
/// sent to Graph.
fn drift(g: &Graph, sb: &support::Sandbox, extra: &[&str], now: Option<&str>) -> (support::Run, usize) {
    let mut args = vec!["drift", "{dir}"];
    args.extend_from_slice(extra);
    let before = g.graph_requests();
    let run = match now {
        Some(now) => sb.run_with_env(&args, &[("KEYWARD_NOW", now)]),
        None => sb.run(&args),
    };
    (run, g.graph_requests() - before)
}

fn stored(sb: &support::Sandbox) -> PathBuf {
    support::feeds::path(sb)
}

#[test]
fn a_second_drift_run_reads_through_the_feed_and_sees_a_portal_change() {
    let (g, _fake, sb) = graph_quickstart();
    assert!(!stored(&sb).exists(), "apply stores no feed state");

    let (first, full_requests) = drift(&g, &sb, &[], None);
    first.expect(0);
    assert!(first.stderr.contains(FULL), "{}", first.stderr);
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(stored(&sb)).unwrap()).unwrap();
    assert!(doc["targets"]["directory"]["cursor"].as_object().is_some_and(|c| !c.is_empty()), "{doc}");

    // Idle: the three delta queries in one `$batch`.
    let (second, requests) = drift(&g, &sb, &[], None);
    second.expect(0);
    assert!(second.stderr.contains(&format!("{FED} (0 objects changed since the last run).")), "{}", second.stderr);
    assert_eq!(requests, 1, "an idle run is one request (a full read took {full_requests})");
    assert!(full_requests > requests);
    assert_eq!(first.stdout, second.stdout, "the same answer as the full read");

    // A change in the portal between runs is drift, read through the feed.
    let janet = g.user("janet.leverling@northwind.example").unwrap()["id"].as_str().unwrap().to_string();
    g.portal("admin@northwind.example").update_user(&janet, json!({"jobTitle": "Hacker"}));
    let (third, requests) = drift(&g, &sb, &["--format", "json"], None);
    third.expect(2);
    assert_eq!(requests, 2, "one `$batch`, and the directory audit read that names who made it");
    assert!(third.stderr.contains(&format!("{FED} (1 object changed since the last run).")), "{}", third.stderr);
    let changes = support::changes(&third.json());
    assert!(changes.iter().any(|(a, _)| a == "directory.user.janet.leverling"), "{changes:?}");
    // The state stored was brought up to date: the next run still sees it, and nothing else.
    let (fourth, requests) = drift(&g, &sb, &["--format", "json"], None);
    fourth.expect(2);
    assert_eq!(support::changes(&fourth.json()), changes);
    assert_eq!(requests, 1);
    // Who made it, looked up by the run that first saw it, is still said by the later ones.
    let (fifth, _) = drift(&g, &sb, &[], None);
    assert!(fifth.expect(2).stdout.contains("changed outside git by admin@northwind.example"), "{}", fifth.stdout);

    // --full reads in full, whatever is stored.
    let (full, requests) = drift(&g, &sb, &["--full", "--format", "json"], None);
    full.expect(2);
    assert!(full.stderr.contains(FULL), "{}", full.stderr);
    // A full read, and the directory audit query that names who made the change.
    assert_eq!(requests, full_requests + 1);
    assert_eq!(support::changes(&full.json()), changes);
}

#[test]
fn a_stored_state_that_does_not_parse_means_a_full_read_and_is_replaced() {
    let (g, _fake, sb) = graph_quickstart();
    drift(&g, &sb, &[], None).0.expect(0);
    std::fs::write(stored(&sb), b"{\"targets\": {\"directory\": {\"live\": 7}}").unwrap();

    let (run, requests) = drift(&g, &sb, &[], None);
    run.expect(0);
    assert!(run.stderr.contains("does not parse"), "{}", run.stderr);
    assert!(run.stderr.contains(FULL), "{}", run.stderr);
    assert!(requests > 1);
    // Replaced by this run's state: the next run reads through the feed.
    let (next, requests) = drift(&g, &sb, &[], None);
    next.expect(0);
    assert!(next.stderr.contains(FED), "{}", next.stderr);
    assert!(!next.stderr.contains("does not parse"), "{}", next.stderr);
    assert_eq!(requests, 1);
}

#[test]
fn a_stored_state_older_than_resync_means_a_full_read() {
    let (g, _fake, sb) = graph_quickstart();
    drift(&g, &sb, &[], None).0.expect(0);
    let later = "2026-11-28T14:00:00Z"; // two hours after the sandbox's clock

    // Within --resync: through the feed (the state does not age while read incrementally).
    let (run, _) = drift(&g, &sb, &["--resync", "3h"], Some(later));
    assert!(run.expect(0).stderr.contains(FED), "{}", run.stderr);
    // Older than the default hour: a full read, compared with the state built from the feed.
    let (run, requests) = drift(&g, &sb, &[], Some(later));
    run.expect(0);
    assert!(run.stderr.contains(FULL), "{}", run.stderr);
    assert!(!run.stderr.contains("differs from a full read"), "no mismatch: {}", run.stderr);
    assert!(requests > 1);
    // That full read is the new start.
    let (run, requests) = drift(&g, &sb, &[], Some(later));
    assert!(run.expect(0).stderr.contains(FED), "{}", run.stderr);
    assert_eq!(requests, 1);
    // A state dated after the clock is no newer than a full read: read in full.
    let (run, _) = drift(&g, &sb, &[], None);
    assert!(run.expect(0).stderr.contains(FULL), "{}", run.stderr);
}

#[test]
fn changed_target_settings_mean_a_full_read() {
    let (g, _fake, sb) = graph_quickstart();
    drift(&g, &sb, &[], None).0.expect(0);
    sb.edit(
        "keyward.yaml",
        &format!("    tenant: {TENANT}\n"),
        &format!("    tenant: {TENANT}\n    federatedDomains: [contoso.example]\n"),
    );
    let (run, _) = drift(&g, &sb, &[], None);
    assert!(run.stderr.contains(FULL), "{}", run.stderr);
}

#[test]
fn a_resync_compares_the_stored_state_with_the_full_read_and_keeps_the_full_read() {
    let (g, _fake, sb) = graph_quickstart();
    drift(&g, &sb, &[], None).0.expect(0);
    // The stored state edited: an account taken out of it.
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(stored(&sb)).unwrap()).unwrap();
    let accounts = doc["targets"]["directory"]["live"]["accounts"].as_array_mut().unwrap();
    let before = accounts.len();
    accounts.retain(|a| a["userName"] != "janet.leverling@northwind.example");
    assert_eq!(accounts.len(), before - 1, "{doc}");
    std::fs::write(stored(&sb), serde_json::to_vec(&doc).unwrap()).unwrap();

    // Within --resync the edited state is believed (janet looks missing) ...
    let (run, _) = drift(&g, &sb, &["--format", "json"], None);
    run.expect(2);
    assert!(support::changes(&run.json()).iter().any(|(a, _)| a == "directory.user.janet.leverling"));
    // ... until the resync, whose full read differs from it: logged, and the full read is kept.
    let (run, _) = drift(&g, &sb, &[], Some("2026-11-28T14:00:00Z"));
    run.expect(0);
    assert!(run.stderr.contains("differs from a full read"), "{}", run.stderr);
    assert!(run.stderr.contains(FULL), "{}", run.stderr);
}

/// The same on a state in Azure Blob Storage: the stored state is a blob, written and read
/// through the backend's document API.
#[test]
#[ignore = "needs azurite: cargo xtask test"]
fn drift_runs_read_through_the_feed_from_a_state_in_azure_blob_storage() {
    use keyward::model::SecretRef;
    use keyward::model::config::{AzureBlobState, BlobAuth};
    use keyward::state::azureblob::{AzureBlobStore, Options};
    use keyward::state::{DocName, StateStore};

    let az = azurite::Azurite::start();
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("account-key");
    std::fs::write(&key_file, &az.key).unwrap();
    let settings = AzureBlobState {
        url: az.container_url("state"),
        prefix: "drift".into(),
        auth: BlobAuth::AccountKey(SecretRef::File(key_file.display().to_string())),
        ca_file: None,
    };
    let store = AzureBlobStore::new(&settings, key_dir.path(), Options::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(store.create_container()).unwrap();

    let (g, _fake, sb) = graph_quickstart_with(|sb| {
        let text = sb.read("keyward.yaml");
        sb.write(
            "keyward.yaml",
            &format!(
                "{text}\nstate:\n  backend: azureblob\n  url: {}\n  prefix: drift\n  accountKey: ${{file:{}}}\n",
                az.container_url("state"),
                key_file.display()
            ),
        );
    });
    let (first, _) = drift(&g, &sb, &[], None);
    assert!(first.expect(0).stderr.contains(FULL), "{}", first.stderr);
    assert!(!stored(&sb).exists(), "nothing stored locally");
    let blob = rt.block_on(store.doc_get(DocName::Feeds)).unwrap().expect("feeds.json in the container");
    assert!(String::from_utf8_lossy(&blob.bytes).contains("\"cursor\""));

    let (second, requests) = drift(&g, &sb, &[], None);
    assert!(second.expect(0).stderr.contains(FED), "{}", second.stderr);
    assert_eq!(requests, 1);
}

#[test]
fn a_stored_state_larger_than_the_cap_is_not_read() {
    let (g, _fake, sb) = graph_quickstart();
    drift(&g, &sb, &[], None).0.expect(0);
    // Valid JSON, padded past 16 MiB.
    let mut text = std::fs::read_to_string(stored(&sb)).unwrap();
    text.push_str(&" ".repeat(16 * 1024 * 1024));
    std::fs::write(stored(&sb), text).unwrap();
    let (run, _) = drift(&g, &sb, &[], None);
    run.expect(0);
    assert!(run.stderr.contains("is larger than 16777216 bytes"), "{}", run.stderr);
    assert!(run.stderr.contains(FULL), "{}", run.stderr);
    let (next, requests) = drift(&g, &sb, &[], None);
    assert!(next.expect(0).stderr.contains(FED), "{}", next.stderr);
    assert_eq!(requests, 1);
}

/// The OpenMetrics text with the values that change from run to run replaced by `<seconds>`:
/// seconds since the last full read (the time a run takes), and the detection latency (from
/// the fake's audit time, the wall clock, to the run's clock, fixed).
fn redacted(metrics: &str) -> String {
    metrics
        .lines()
        .map(|l| {
            let volatile = ["keyward_seconds_since_full_read", "keyward_detection_latency_seconds"];
            match volatile.iter().find_map(|v| Some((*v, l.strip_prefix(v)?.strip_prefix('{')?))) {
                Some((name, rest)) => {
                    let (labels, value) = rest.rsplit_once(' ').unwrap();
                    assert!(value.parse::<f64>().is_ok(), "{l}");
                    format!("{name}{{{labels} <seconds>\n")
                }
                None => format!("{l}\n"),
            }
        })
        .collect()
}

/// `drift --metrics-file` writes how each target was read, as `watch`'s `/metrics` does: a full
/// read, then an idle round of the feed (one request), then a round with a change.
#[test]
fn drift_metrics_file_says_how_each_target_was_read() {
    let (g, _fake, sb) = graph_quickstart();
    let file = sb.root.join("keyward.prom");
    let path = file.to_str().unwrap();
    let (first, full_requests) = drift(&g, &sb, &["--metrics-file", path], None);
    first.expect(0);
    let full = std::fs::read_to_string(&file).unwrap();
    assert_eq!(support::sample(&full, "keyward_read_requests{target=\"directory\"}"), Some(full_requests as f64));
    insta::assert_snapshot!("drift_metrics_full_read", redacted(&full));

    let (idle, _) = drift(&g, &sb, &["--metrics-file", path], None);
    idle.expect(0);
    insta::assert_snapshot!("drift_metrics_idle_round", redacted(&std::fs::read_to_string(&file).unwrap()));

    let janet = g.user("janet.leverling@northwind.example").unwrap()["id"].as_str().unwrap().to_string();
    g.portal("admin@northwind.example").update_user(&janet, json!({"jobTitle": "Hacker"}));
    let (changed, requests) = drift(&g, &sb, &["--metrics-file", path], None);
    changed.expect(2);
    let m = std::fs::read_to_string(&file).unwrap();
    // The read's requests: the `$batch`, not the directory audit read after it.
    assert_eq!(requests, 2);
    assert_eq!(support::sample(&m, "keyward_read_requests{target=\"directory\"}"), Some(1.0));
    insta::assert_snapshot!("drift_metrics_round_with_a_change", redacted(&m));
}
