//! Times the built-in policies over a large configuration, such as the one
//! `cargo xtask gen-fixture --users 100000 --out /tmp/fx100k` writes.
//!
//! ```text
//! cargo bench --bench policy -- /tmp/fx100k [RUNS]
//! ```
//!
//! It loads and validates the folder once (not timed), then evaluates every built-in rule
//! RUNS times (default 7) over the desired state alone, as `keyward validate` does, and again
//! with a live state that mirrors the configuration on its one target, as `keyward plan` does.
//! It prints each median and exits 1 when either is over the budget of 0.5 s.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use keyward::model::{DesiredState, LiveAccount, LiveBinding, LiveTarget, Name, UserAttrs, UserStatus};
use keyward::policy::{self, PolicyContext, PolicyOptions};

/// The allocator the keyward binary runs with (src/main.rs), so these figures are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BUDGET: Duration = Duration::from_millis(500);

/// A live state holding exactly what the configuration asks for, on every target.
fn mirror(state: &DesiredState) -> BTreeMap<Name, LiveTarget> {
    let mut out = BTreeMap::new();
    for t in state.settings.targets.keys() {
        let mut live = LiveTarget::default();
        for (n, u) in &state.users {
            live.accounts.push(LiveAccount {
                id: n.to_string(),
                user_name: u.user_name.clone(),
                attrs: UserAttrs::default(),
                active: u.status == UserStatus::Active,
                last_sign_in: None,
                registered_methods: None,
                fingerprint: String::new(),
            });
        }
        let mut members: BTreeMap<&Name, Vec<String>> = BTreeMap::new();
        for (n, u) in &state.users {
            for g in &u.roles {
                members.entry(g.role()).or_default().push(n.to_string());
            }
        }
        for (rn, r) in &state.roles {
            if let Some(b) = r.bindings.get(t) {
                live.bindings.push(LiveBinding {
                    id: rn.to_string(),
                    binding: b.clone(),
                    members: members.remove(rn).unwrap_or_default(),
                    fingerprint: String::new(),
                });
            }
        }
        out.insert(t.clone(), live);
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(dir) = args.next().map(PathBuf::from) else {
        // `cargo bench` with no fixture: nothing to time.
        eprintln!("usage: cargo bench --bench policy -- DIR [RUNS]  (make DIR with cargo xtask gen-fixture)");
        return ExitCode::SUCCESS;
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(7).max(1);
    let t0 = Instant::now();
    let loaded = keyward::load::load_dir(&dir).expect("the folder loads");
    let validated = keyward::validate::validate(&loaded);
    let Some(state) = validated.state.as_ref() else {
        eprintln!("{} is not valid", dir.display());
        return ExitCode::from(1);
    };
    println!(
        "{}: {} users, {} roles, {} SoD rules, {} files; loaded and validated in {:.2?}",
        dir.display(),
        state.users.len(),
        state.roles.len(),
        state.sod_rules.len(),
        loaded.files.len(),
        t0.elapsed()
    );
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc();
    let live = mirror(state);
    let mut over = false;
    for (label, live) in [("desired state (validate)", None), ("desired + mirrored live state (plan)", Some(&live))] {
        let ctx = PolicyContext {
            desired: state,
            loaded: &loaded,
            origins: &validated.origins,
            now,
            plan: None,
            live,
            undelivered: &[],
            pinned: &keyward::model::contents::NO_SNAPSHOTS,
            options: PolicyOptions { builtin: true, rego: false },
        };
        let mut times = Vec::with_capacity(runs);
        let mut findings = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            findings = policy::evaluate(&ctx);
            times.push(t.elapsed());
        }
        let tally = policy::Tally::of(&findings);
        let m = median(times.clone());
        println!(
            "built-in rules, {label}: median {:.1} ms over {runs} runs (min {:.1} ms, max {:.1} ms); {} findings ({} deny, {} warn, {} info)",
            m.as_secs_f64() * 1e3,
            times.iter().min().unwrap().as_secs_f64() * 1e3,
            times.iter().max().unwrap().as_secs_f64() * 1e3,
            findings.len(),
            tally.deny,
            tally.warn,
            tally.info
        );
        let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &findings {
            *by_rule.entry(f.rule.as_str()).or_default() += 1;
        }
        let rules: Vec<String> = by_rule.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("  by rule: {}", rules.join(", "));
        over |= m > BUDGET;
    }
    if over {
        println!("over the budget of {} ms", BUDGET.as_millis());
        return ExitCode::from(1);
    }
    println!("within the budget of {} ms", BUDGET.as_millis());
    ExitCode::SUCCESS
}
