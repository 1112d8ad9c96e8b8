//! The cost of one `watch` check of a large Graph tenant, full read against the change feed,
//! on the in-repo Graph fake: requests and keyward's CPU time per idle check and per check
//! with 10 changes (5 user updates, 1 user created, 3 memberships added, 1 removed).
//!
//! A check here is what `watch` does for the target: open the provider (a new token), then a
//! full read (`read`), or the feed's round (`read_changes`) folded into the held state. CPU
//! time is the time the benchmark's thread spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`): the client runs on it alone, the fake serves from threads of its own.
//!
//! Run with `cargo bench --bench feed`. The tenant's size is `KEYWARD_BENCH_FEED_USERS`
//! (100,000 by default) users and a fiftieth as many groups of 50 members. Prints Markdown.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use keyward::model::config::{ClientCredential, Connection, Target};
use keyward::model::feed::{self, Cursor};
use keyward::model::{LiveTarget, Name, SecretRef, UsersScope};
use keyward::provider::{self, Access, Provider};
use keyward_fakes::graph::Graph;
use serde_json::json;

const TENANT: &str = "bench.example";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";

/// CPU time of this thread so far (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for clock_gettime to write.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn open(url: &str, root: &Path) -> Box<dyn Provider> {
    let target = Target {
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
    };
    provider::open(&target, root, Access::Read).unwrap()
}

/// One measured check: requests, CPU time, wall time, objects changed.
struct Check {
    requests: usize,
    cpu: Duration,
    wall: Duration,
    changed: usize,
}

fn full(rt: &tokio::runtime::Runtime, url: &str, root: &Path) -> (Check, LiveTarget) {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let mut p = open(url, root);
    let live = rt.block_on(p.read()).unwrap();
    let check = Check { requests: p.requests().unwrap(), cpu: thread_cpu() - cpu, wall: wall.elapsed(), changed: 0 };
    (check, live)
}

fn incremental(
    rt: &tokio::runtime::Runtime,
    url: &str,
    root: &Path,
    live: &mut LiveTarget,
    cursor: &mut Cursor,
) -> Check {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let mut p = open(url, root);
    let changes = rt.block_on(p.read_changes(cursor, live)).unwrap();
    feed::apply(live, &changes.changes, |b| p.binding_fingerprint(b));
    *cursor = changes.cursor.clone();
    Check { requests: p.requests().unwrap(), cpu: thread_cpu() - cpu, wall: wall.elapsed(), changed: changes.objects() }
}

/// Ten changes in the portal.
fn ten_changes(g: &Graph, users: &[String], groups: &[String], round: usize) {
    let admin = g.portal("admin@bench.example");
    for k in 0..5 {
        admin.update_user(&users[(round * 7 + k * 13) % users.len()], json!({"jobTitle": format!("title {round}")}));
    }
    admin.create_user(&format!("hire{round}@{TENANT}"), "New Hire");
    for k in 0..3 {
        // Users 0..49 are in group 0; these are in groups of their own, not in group k.
        let member = &users[users.len() - 1 - (round * 3 + k)];
        admin.add_member(&groups[k], member);
    }
    admin.remove_member(&groups[3], &users[150 + round]);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn row(label: &str, checks: &[Check]) {
    let requests: Vec<usize> = checks.iter().map(|c| c.requests).collect();
    let changed: Vec<usize> = checks.iter().map(|c| c.changed).collect();
    println!(
        "| {label} | {} | {:?} | {:.1} ms | {:.1} ms | {} |",
        checks.len(),
        requests,
        median(checks.iter().map(|c| c.cpu).collect()).as_secs_f64() * 1e3,
        median(checks.iter().map(|c| c.wall).collect()).as_secs_f64() * 1e3,
        changed.iter().max().copied().unwrap_or(0),
    );
}

fn main() {
    let n: usize = std::env::var("KEYWARD_BENCH_FEED_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let groups_n = (n / 50).max(4);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let g = Graph::new();
    let users = g.add_users("user", TENANT, n);
    let mut groups = Vec::with_capacity(groups_n);
    for i in 0..groups_n {
        let gid = g.add_group(&format!("group-{i:04}"));
        let from = (i * 50) % n;
        g.add_members(&gid, &users[from..(from + 50).min(n)]);
        groups.push(gid);
    }
    let secret = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        format!("bench-secret-{:016x}", h.finish())
    };
    g.entra().register(CLIENT, Some(&secret));
    std::fs::write(dir.path().join("client-secret"), &secret).unwrap();
    let fake = g.serve();
    let url = fake.url();

    println!("== One watch check of a Graph tenant of {n} users and {groups_n} groups of 50 members (Graph fake)");
    println!("| check | runs | requests per run | CPU (median) | wall (median) | objects changed |");
    println!("|---|---:|---|---:|---:|---:|");

    // The feed starts where watch starts it: links from now, then a full read.
    let (mut live, mut cursor) = {
        let mut p = open(&url, dir.path());
        let (live, cursor) = rt.block_on(p.read_with_cursor()).unwrap();
        (live, cursor.expect("a feed"))
    };
    assert_eq!(live.accounts.len(), n);

    let fulls: Vec<Check> = (0..3).map(|_| full(&rt, &url, dir.path()).0).collect();
    row("full read, idle", &fulls);
    let idle: Vec<Check> = (0..10).map(|_| incremental(&rt, &url, dir.path(), &mut live, &mut cursor)).collect();
    row("incremental, idle", &idle);

    let mut fulls = Vec::new();
    let mut incs = Vec::new();
    for round in 0..5 {
        ten_changes(&g, &users, &groups, round);
        incs.push(incremental(&rt, &url, dir.path(), &mut live, &mut cursor));
        if round < 2 {
            let (check, truth) = full(&rt, &url, dir.path());
            assert_eq!(feed::kept(&live), feed::kept(&truth), "the feed's state equals a full read");
            fulls.push(check);
        }
    }
    row("full read, after 10 changes", &fulls);
    row("incremental, 10 changes", &incs);
    drop(fake);
}
