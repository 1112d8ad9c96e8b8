//! Detection latency of `keyward watch --interval 5s` on a large Graph tenant (the in-repo
//! Graph fake): the time from a change made in the portal (outside git) to its alert on
//! `watch`'s output, for several changes made at different points of the interval, with the
//! `keyward_detection_latency_seconds` that `watch` itself reports for each.
//!
//! The tenant: the quick start applied (its people, groups and roles), beside
//! `KEYWARD_BENCH_DETECTION_USERS` (100,000 by default) users of another domain, out of the
//! configuration's scope, and a fiftieth as many groups of 50 of them. Each change sets the job
//! title of a different person of the quick start, so each is a new drift item.
//!
//! Run with `cargo bench --bench detection` (release build of the `keyward` binary). Prints
//! Markdown.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keyward_fakes::graph::Graph;
use serde_json::json;

const TENANT: &str = "northwind.example";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const PEOPLE: [&str; 7] = [
    "janet.leverling",
    "steven.buchanan",
    "andrew.fuller",
    "nancy.davolio",
    "margaret.peacock",
    "laura.callahan",
    "michael.suyama",
];

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("KEYWARD_BENCH_DETECTION_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let groups_n = (n / 50).max(4);
    let g = Graph::new();
    let users = g.add_users("user", "bench.example", n);
    for i in 0..groups_n {
        let gid = g.add_group(&format!("bulk-{i:04}"));
        let from = (i * 50) % n;
        g.add_members(&gid, &users[from..(from + 50).min(n)]);
    }
    let sb = support::Sandbox::example("quickstart");
    let secret = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        format!("bench-secret-{:016x}", h.finish())
    };
    g.entra().register(CLIENT, Some(&secret));
    std::fs::write(sb.root.join("client-secret"), &secret).unwrap();
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

    let interval = "5s";
    let mut child: std::process::Child = sb
        .cmd(&["watch", sb.root.to_str().unwrap(), "--interval", interval, "--listen", "127.0.0.1:0"])
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
        let line = errs.recv_timeout(Duration::from_secs(120)).expect("watch announces its address");
        if let Some(rest) = line.split_once("serving http://") {
            break rest.1.split('/').next().unwrap().to_string();
        }
    };
    let incremental = "keyward_read_mode{target=\"directory\",mode=\"incremental\"}";
    let deadline = Instant::now() + Duration::from_secs(300);
    while sample(&http_get(&addr, "/metrics"), incremental) != Some(1.0) {
        assert!(Instant::now() < deadline, "watch reads through the feed");
        std::thread::sleep(Duration::from_millis(100));
    }
    while outs.try_recv().is_ok() {}

    println!(
        "== `keyward watch --interval {interval}`: {n} users and {groups_n} groups beside the quick start (Graph fake)"
    );
    println!(
        "| change | pause before it | change to alert (stdout) | keyward_detection_latency_seconds | attributed | requests of the check |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let admin = g.portal("admin@northwind.example");
    let (mut seen, mut reported) = (Vec::new(), Vec::new());
    for (k, person) in PEOPLE.iter().enumerate() {
        // Pauses of 0.7 s more each time, so changes fall at different points of the interval.
        let offset = Duration::from_millis(700 * k as u64 % 5000);
        std::thread::sleep(offset);
        let id = g.user(&format!("{person}@{TENANT}")).unwrap()["id"].as_str().unwrap().to_string();
        let changed = Instant::now();
        admin.update_user(&id, json!({"jobTitle": format!("Changed outside git {k}")}));
        let line = loop {
            let line = outs.recv_timeout(Duration::from_secs(60)).expect("the change is alerted");
            if line.contains(&format!("drift: update directory.user.{person}")) {
                break line;
            }
        };
        let elapsed = changed.elapsed().as_secs_f64();
        let _ = line;
        let m = http_get(&addr, "/metrics");
        let latency = sample(&m, "keyward_detection_latency_seconds{target=\"directory\"}").unwrap_or(f64::NAN);
        let attributed = sample(&m, "keyward_detection_latency_attributed{target=\"directory\"}").unwrap_or(f64::NAN);
        let requests = sample(&m, "keyward_read_requests{target=\"directory\"}").unwrap_or(f64::NAN);
        println!(
            "| {person} | {:.1} s | {elapsed:.2} s | {latency:.2} s | {attributed} | {requests} |",
            offset.as_secs_f64()
        );
        seen.push(elapsed);
        reported.push(latency);
    }
    println!(
        "\nmedian over {} changes: {:.2} s from change to alert; {:.2} s reported by watch",
        seen.len(),
        median(seen),
        median(reported)
    );
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    drop(fake);
}
