//! Detection latency of `keyward watch --interval 5s`: the time from a change made outside git
//! to its alert on `watch`'s output, for several changes made at different points of the
//! interval, with the `keyward_detection_latency_seconds` that `watch` itself reports for each,
//! on one target per case:
//! - `graph`: the in-repo Graph fake, 100,000 users beside the quick start (detection/graph.rs);
//! - `dataverse`: the in-repo Dataverse fake, 100,000 users (detection/dataverse.rs);
//! - `openldap`: the slapd of `cargo xtask slapd`, 10,000 users (detection/ldap.rs);
//! - `samba`: the Samba AD DC of `cargo xtask samba`, 10,000 entries (detection/ad.rs);
//! - `scim`: a scim2-server started for the case, 3,000 users (detection/scim.rs).
//!
//! Each change is a new drift item (a declared person's title changed, or a role given). A
//! case whose server is not configured (its variables not loaded) is skipped with a message.
//!
//! Run with `cargo bench --bench detection` (the Graph case alone, as before), or name the
//! cases: `cargo bench --bench detection -- dataverse openldap`, or `-- all`. Sizes are set by
//! each case's `KEYWARD_BENCH_DETECTION_*` variable (see its module). Prints Markdown.

// A test report, not the product's output (which goes through output::Printer); the AD
// harness says on stderr when there is no DC.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// The AD harness loads the LDAP harness as a private module of its own; the OpenLDAP case uses
// it directly as well.
#![allow(clippy::duplicate_mod)]

#[path = "../tests/support/mod.rs"]
mod support;

// Every test binary of AD uses the harness's `text`; this one does not.
#[allow(unused_imports)]
#[path = "../tests/ad/harness.rs"]
mod ad_harness;
#[path = "../tests/d365/harness.rs"]
mod d365_harness;
#[path = "../tests/ldap/harness.rs"]
mod ldap_harness;
#[path = "../tests/scim/harness.rs"]
mod scim_harness;

#[path = "detection/ad.rs"]
mod ad;
#[path = "detection/dataverse.rs"]
mod dataverse;
#[path = "detection/graph.rs"]
mod graph;
#[path = "detection/ldap.rs"]
mod ldap;
#[path = "detection/scim.rs"]
mod scim;
#[path = "detection/watch.rs"]
mod watch;

/// People of the quick start with a job title, one per change.
const PEOPLE: [&str; 7] = [
    "janet.leverling",
    "steven.buchanan",
    "andrew.fuller",
    "nancy.davolio",
    "margaret.peacock",
    "laura.callahan",
    "michael.suyama",
];

const CASES: [&str; 5] = ["graph", "dataverse", "openldap", "samba", "scim"];

/// A client secret made at run time.
fn secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("bench-secret-{:016x}", h.finish())
}

fn main() {
    // `cargo bench` passes `--bench`; the other arguments name cases.
    let named: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let chosen: Vec<&str> = match named.as_slice() {
        [] => vec!["graph"],
        [all] if all == "all" => CASES.to_vec(),
        _ => named
            .iter()
            .map(|n| {
                *CASES
                    .iter()
                    .find(|c| **c == n.as_str())
                    .unwrap_or_else(|| panic!("no case {n:?}: one of {CASES:?} or all"))
            })
            .collect(),
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the start: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    let mut summaries = Vec::new();
    for case in chosen {
        let summary = match case {
            "graph" => graph::run(),
            "dataverse" => dataverse::run(),
            "openldap" => ldap::run(),
            "samba" => ad::run(),
            _ => scim::run(),
        };
        summaries.extend(summary.map(|s| (case, s)));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average at the end: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    println!(
        "\n| case | what | changes | change to alert: median | range | reported by watch: median | watch start to its first feed check |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (case, s) in summaries {
        let seen: Vec<f64> = s.rows.iter().map(|r| r.alerted).collect();
        let (low, high) = seen.iter().fold((f64::INFINITY, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
        println!(
            "| {case} | {} | {} | {:.2} s | {low:.2} to {high:.2} s | {:.2} s | {:.1} s |",
            s.title,
            seen.len(),
            watch::median(seen),
            watch::median(s.rows.iter().map(|r| r.reported).collect()),
            s.first_check.as_secs_f64()
        );
    }
}
