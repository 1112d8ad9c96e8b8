//! The cost of one `watch` check of a large Dataverse environment, full read against the
//! change feed, on the in-repo Dataverse fake: requests and keyward's CPU time per idle check and
//! per check with 10 changes (5 job titles changed, 1 user disabled, 3 roles given in the admin
//! center, 1 team member added), per check after a user was created (a new hire), and per check
//! after a user was moved to another business unit.
//!
//! A check here is what `watch` does for the target: open the provider (a new token), then a
//! full read (`read`), or the feed's round (`read_changes`) folded into the held state. CPU
//! time is the time the benchmark's thread spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`): the
//! client runs on it alone, the fake serves from threads of its own.
//!
//! Run with `cargo bench --bench dataverse_feed`. The environment's size is
//! `KEYWARD_BENCH_FEED_USERS` (100,000 by default) users, the first thousand holding a role and
//! a hundred in an owner team. Prints Markdown.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use keyward::model::config::{ClientCredential, Connection, Target};
use keyward::model::feed::{self, Cursor};
use keyward::model::{LiveTarget, Name, SecretRef, UsersScope};
use keyward::provider::{self, Access, Provider};
use keyward_fakes::RequestLog;
use keyward_fakes::dataverse::Dataverse;
use keyward_fakes::entra::Entra;
use serde_json::json;

const TENANT: &str = "456e4037-8afc-4f71-ae73-f9e51f634295";
const CLIENT: &str = "55b1a2c7-9c3a-4911-a9b3-2555f9df8578";
const TRACKED: [&str; 6] =
    ["systemusers", "businessunits", "roles", "teams", "fieldsecurityprofiles", "fieldpermissions"];

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

fn user(i: usize) -> String {
    format!("user{i}@bench.example")
}

/// Ten changes made outside keyward.
fn ten_changes(dv: &Dataverse, n: usize, team: &str, round: usize) {
    for k in 0..5 {
        dv.set_user_field(&user((round * 7 + k * 13) % n), "jobtitle", json!(format!("title {round}")));
    }
    dv.set_user_field(&user(n - 1 - round), "isdisabled", json!(true));
    for k in 0..3 {
        dv.admin_assign_role(&user(2000 + round * 3 + k), "Sales Manager");
    }
    dv.add_team_member(team, &user(3000 + round));
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
    assert!(n >= 4000, "KEYWARD_BENCH_FEED_USERS must be at least 4000");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dv = Dataverse::new("bench");
    for r in ["Salesperson", "Sales Manager"] {
        dv.add_role_everywhere(r);
    }
    for i in 0..n {
        dv.add_user(&user(i), None);
    }
    for i in 0..1000 {
        dv.associate_role(&user(i), "Salesperson");
    }
    let team = dv.add_owner_team("Key Accounts", None);
    for i in 0..100 {
        dv.add_team_member(&team, &user(i));
    }
    dv.add_profile("Payroll", &["systemuser.jobtitle"]);
    let east = dv.create_business_unit("east", &dv.root_business_unit());
    for t in TRACKED {
        assert!(dv.enable_change_tracking(t));
    }
    let secret = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        format!("bench-secret-{:016x}", h.finish())
    };
    let entra = Entra::new();
    entra.register(CLIENT, Some(&secret));
    std::fs::write(dir.path().join("client-secret"), &secret).unwrap();
    let fake = dv.serve(&entra, &RequestLog::default(), None);
    let url = fake.url();

    println!("== One watch check of a Dataverse environment of {n} users (Dataverse fake)");
    println!("| check | runs | requests per run | CPU (median) | wall (median) | objects changed |");
    println!("|---|---:|---|---:|---:|---:|");

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
        ten_changes(&dv, n, &team, round);
        incs.push(incremental(&rt, &url, dir.path(), &mut live, &mut cursor));
        if round < 2 {
            let (check, truth) = full(&rt, &url, dir.path());
            assert_eq!(feed::kept(&live), feed::kept(&truth), "the feed's state equals a full read");
            fulls.push(check);
        }
    }
    row("full read, after 10 changes", &fulls);
    row("incremental, 10 changes", &incs);

    let created: Vec<Check> = (0..5)
        .map(|round| {
            dv.add_user(&format!("hire{round}@bench.example"), None);
            incremental(&rt, &url, dir.path(), &mut live, &mut cursor)
        })
        .collect();
    row("incremental, a user created", &created);
    let moved: Vec<Check> = (0..5)
        .map(|round| {
            dv.move_user(&user(10 + round), &east);
            incremental(&rt, &url, dir.path(), &mut live, &mut cursor)
        })
        .collect();
    row("incremental, a user moved to another unit", &moved);
    let (_, truth) = full(&rt, &url, dir.path());
    assert_eq!(feed::kept(&live), feed::kept(&truth), "the feed's state equals a full read");
    assert_eq!(live.business_units, truth.business_units, "units of accounts too");
    drop(fake);
}
