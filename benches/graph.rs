//! Graph provider measurements against the in-repo Graph fake: requests and wall time for
//! - a full read of 20,000 users and 500 groups, against the budget
//!   ceil(20000/999) + the groups' member pages + the role-assignment pages;
//! - 1,000 membership changes (budget: 60 requests);
//! - an apply under a throttle of N requests per second, against the time the limit imposes,
//!   with the number of failed changes (must be 0).
//!
//! Run with `cargo bench --bench graph` (also part of `cargo xtask bench`). Prints Markdown.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use keyward::model::config::{ClientCredential, Connection, Target};
use keyward::model::{Binding, Name, SecretRef, UsersScope};
use keyward::plan::{Action, Address, Change, ObjectKind, Operation, Principal, Reason, ReasonKind};
use keyward::provider::{self, Access, Provider};
use keyward_fakes::graph::{Graph, MAX_PAGE, Scenario};

const TENANT: &str = "bench.example";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";

fn secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    format!("bench-secret-{:016x}", h.finish())
}

fn open(g: &Graph, url: &str, root: &Path, access: Access) -> Box<dyn Provider> {
    let s = secret();
    g.entra().register(CLIENT, Some(&s));
    std::fs::write(root.join("client-secret"), &s).unwrap();
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
    provider::open(&target, root, access).unwrap()
}

fn membership(i: usize, user: &str, group: &str, action: Action) -> Change {
    let target = Name::new("entra").unwrap();
    let principal = Principal::User(user.to_string());
    let binding = Binding::Group(group.to_string());
    Change {
        address: Address::new(&target, ObjectKind::Assignment, format!("u{i}/{group}")),
        action,
        reason: Reason::new(ReasonKind::Config, "bench"),
        before: None,
        after: None,
        fingerprint: "absent".into(),
        subject: None,
        notes: vec![],
        operation: if action == Action::Assign {
            Operation::Assign { principal, binding }
        } else {
            Operation::Revoke { principal, binding }
        },
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    println!("== Graph provider against the Graph fake");
    println!("| measurement | requests | budget | wall time |");
    println!("|---|---:|---:|---:|");

    // 1. Full read: 20,000 users, 500 groups of 40 members, 10 role assignments.
    let g = Graph::new();
    let users = g.add_users("user", TENANT, 20_000);
    for i in 0..500 {
        let gid = g.add_group(&format!("group-{i:03}"));
        g.add_members(&gid, &users[i * 40..(i + 1) * 40]);
    }
    for u in &users[..10] {
        g.add_role_assignment("User Administrator", u);
    }
    let fake = g.serve();
    let mut p = open(&g, &fake.url(), dir.path(), Access::Read);
    let start = Instant::now();
    let live = rt.block_on(p.read()).unwrap();
    let wall = start.elapsed();
    assert_eq!(live.accounts.len(), 20_000);
    let member_pages: usize = 500; // each group has 40 members: one page each
    let budget = 20_000usize.div_ceil(MAX_PAGE) + member_pages + 1;
    println!(
        "| full read, 20,000 users + 500 groups | {} | {budget} | {:.2} s |",
        g.graph_requests(),
        wall.as_secs_f64()
    );
    drop(fake);

    // 2. 1,000 membership changes, on a tenant of 1,000 users and 10 groups of 50 members
    // (users 0..499): 1,000 additions of users 500..999 (two groups each); then, on a fresh
    // tenant, 500 additions and 500 removals (two apply phases, as apply runs them).
    let additions = |_: usize| -> Vec<Vec<Change>> {
        vec![
            (0..1000)
                .map(|k| {
                    let j = k % 500;
                    let team = if k < 500 { j / 50 } else { (j / 50 + 5) % 10 };
                    membership(k, &format!("user{}@{TENANT}", 500 + j), &format!("team-{team}"), Action::Assign)
                })
                .collect(),
        ]
    };
    let mixed = |_: usize| -> Vec<Vec<Change>> {
        vec![
            (0..500)
                .map(|i| {
                    membership(i, &format!("user{}@{TENANT}", 500 + i), &format!("team-{}", i / 50), Action::Assign)
                })
                .collect(),
            (0..500)
                .map(|i| membership(i, &format!("user{i}@{TENANT}"), &format!("team-{}", i / 50), Action::Revoke))
                .collect(),
        ]
    };
    for (label, make) in [
        ("1,000 membership additions", &additions as &dyn Fn(usize) -> Vec<Vec<Change>>),
        ("500 additions + 500 removals", &mixed),
    ] {
        let g = Graph::new();
        let users = g.add_users("user", TENANT, 1_000);
        for i in 0..10 {
            let gid = g.add_group(&format!("team-{i}"));
            g.add_members(&gid, &users[i * 50..i * 50 + 50]);
        }
        let fake = g.serve();
        let mut p = open(&g, &fake.url(), dir.path(), Access::Write);
        rt.block_on(p.read()).unwrap();
        let before = g.graph_requests();
        let start = Instant::now();
        let mut failed = 0;
        for phase in make(0) {
            let refs: Vec<&Change> = phase.iter().collect();
            failed += rt.block_on(p.apply(&refs)).iter().filter(|r| r.is_err()).count();
        }
        let wall = start.elapsed();
        println!("| {label} ({failed} failed) | {} | 60 | {:.2} s |", g.graph_requests() - before, wall.as_secs_f64());
        drop(fake);
    }

    // 3. Under a throttle of N requests per second: 1,000 removals, each one request.
    let rate: f64 = std::env::var("KEYWARD_BENCH_GRAPH_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(100.0);
    let burst = rate as u32;
    let g = Graph::new();
    let users = g.add_users("user", TENANT, 1_000);
    let gid = g.add_group("throttled");
    g.add_members(&gid, &users);
    let fake = g.serve();
    let mut p = open(&g, &fake.url(), dir.path(), Access::Write);
    rt.block_on(p.read()).unwrap();
    g.scenario(Scenario::Throttle { rate, burst });
    let removes: Vec<Change> =
        (0..1000).map(|i| membership(i, &format!("user{i}@{TENANT}"), "throttled", Action::Revoke)).collect();
    let refs: Vec<&Change> = removes.iter().collect();
    let before = g.graph_requests();
    let start = Instant::now();
    let results = rt.block_on(p.apply(&refs));
    let wall = start.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.is_err()).count();
    let minimum = (1000.0 - burst as f64).max(0.0) / rate;
    println!(
        "| 1,000 removals under {rate} req/s (burst {burst}): {failed} failed, {} throttled answers, {:.2}x the limit's minimum of {minimum:.2} s | {} | - | {wall:.2} s |",
        g.throttled(),
        wall / minimum,
        g.graph_requests() - before,
    );
    assert_eq!(g.members(&gid).len(), 0, "every removal was carried out");
}
