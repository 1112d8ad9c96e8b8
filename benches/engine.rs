//! Benchmarks of the engine on generated configurations (`cargo xtask gen-fixture`):
//! loading and validation, planning against a file directory with 1% drift, and rendering.
//!
//! Fixtures live in `target/bench-fixtures/users-N` (or `$KEYWARD_BENCH_FIXTURES`) and are
//! generated on first use. `KEYWARD_BENCH_SIZES` (comma-separated, default `10000,100000`)
//! picks the sizes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use keyward::model::{DesiredState, LiveTarget, Name, ProviderKind, Timestamp};
use keyward::plan::{self, PlanInput};
use keyward::provider::capabilities;
use keyward::provider::file::{DirectoryFile, Editor};

/// The allocator the keyward binary runs with (src/main.rs), so these figures are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn sizes() -> Vec<usize> {
    std::env::var("KEYWARD_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn now() -> Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc()
}

/// The fixture folder for `users`, generated when missing.
pub fn fixture(users: usize) -> PathBuf {
    let root = std::env::var_os("KEYWARD_BENCH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-fixtures"));
    let dir = root.join(format!("users-{users}"));
    if !dir.join("keyward.yaml").exists() {
        let status = Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--release", "-p", "xtask", "--", "gen-fixture", "--users"])
            .arg(users.to_string())
            .arg("--out")
            .arg(&dir)
            .status()
            .expect("run cargo xtask gen-fixture");
        assert!(status.success(), "gen-fixture failed");
    }
    dir
}

fn load_state(users: usize) -> DesiredState {
    let loaded = keyward::load::load_dir(&fixture(users)).unwrap();
    let v = keyward::validate::validate(&loaded);
    assert!(!v.has_errors(), "fixture has errors: {:?}", &v.diagnostics[..v.diagnostics.len().min(3)]);
    v.state.unwrap()
}

fn target() -> Name {
    Name::new("directory").unwrap()
}

/// The live directory after applying the fixture, then 1% of users changed outside git: every
/// hundredth user's job title edited, and every hundredth user's first membership removed.
pub fn drifted_directory(state: &DesiredState) -> DirectoryFile {
    let caps = BTreeMap::from([(target(), capabilities(ProviderKind::File))]);
    let empty = BTreeMap::from([(target(), LiveTarget::default())]);
    let input = PlanInput {
        desired: state,
        live: &empty,
        capabilities: &caps,
        now: now(),
        baseline: None,
        undelivered: &[],
        previous: None,
    };
    let mut editor = Editor::new(DirectoryFile::default());
    for c in plan::plan_changes(&input).unwrap() {
        editor.apply_at(&c.operation, now()).unwrap();
    }
    let mut doc = editor.into_doc();
    let mut ids = Vec::new();
    for (i, u) in doc.users.iter_mut().enumerate() {
        if i % 100 == 0 {
            u.attrs.job_title = Some("Changed outside git".into());
        }
        if i % 100 == 50 {
            ids.push(u.id.clone());
        }
    }
    let ids: std::collections::HashSet<String> = ids.into_iter().collect();
    let mut removed = std::collections::HashSet::new();
    for g in doc.groups.iter_mut() {
        g.members.retain(|m| !ids.contains(m) || !removed.insert(m.clone()));
    }
    doc
}

fn bench_load_validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("load_validate");
    g.sample_size(10);
    for n in sizes() {
        let dir = fixture(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &dir, |b, dir| {
            b.iter(|| {
                let loaded = keyward::load::load_dir(dir).unwrap();
                let v = keyward::validate::validate(&loaded);
                assert!(v.state.is_some());
                v
            })
        });
    }
    g.finish();
}

fn bench_plan(c: &mut Criterion) {
    let mut g = c.benchmark_group("plan_1pct_drift");
    g.sample_size(10);
    for n in sizes() {
        let state = load_state(n);
        let doc = drifted_directory(&state);
        let caps = BTreeMap::from([(target(), capabilities(ProviderKind::File))]);
        g.bench_with_input(BenchmarkId::new("read_and_plan", n), &doc, |b, doc| {
            b.iter(|| {
                // What `keyward plan` does after loading: normalise the live document, then plan.
                let live = BTreeMap::from([(target(), doc.to_live())]);
                let input = PlanInput {
                    desired: &state,
                    live: &live,
                    capabilities: &caps,
                    now: now(),
                    baseline: None,
                    undelivered: &[],
                    previous: None,
                };
                let changes = plan::plan_changes(&input).unwrap();
                assert!(changes.len() >= n / 100, "expected 1% to 2% of users to change, got {}", changes.len());
                changes
            })
        });
    }
    g.finish();
}

fn bench_render(c: &mut Criterion) {
    let mut g = c.benchmark_group("render");
    g.sample_size(10);
    for n in sizes() {
        let state = load_state(n);
        let doc = drifted_directory(&state);
        let caps = BTreeMap::from([(target(), capabilities(ProviderKind::File))]);
        let live = BTreeMap::from([(target(), doc.to_live())]);
        let input = PlanInput {
            desired: &state,
            live: &live,
            capabilities: &caps,
            now: now(),
            baseline: None,
            undelivered: &[],
            previous: None,
        };
        let changes = plan::plan_changes(&input).unwrap();
        let config = plan::ConfigRef { digest: "sha256:bench".into(), commit: None };
        let p = plan::assemble(changes, config, vec![target()], now());
        g.bench_with_input(BenchmarkId::new("text", n), &p, |b, p| {
            b.iter(|| keyward::output::plan_text::render(p, keyward::output::plan_text::TextOptions { color: false }))
        });
        g.bench_with_input(BenchmarkId::new("json", n), &p, |b, p| b.iter(|| keyward::output::plan_json(p)));
        g.bench_with_input(BenchmarkId::new("markdown", n), &p, |b, p| {
            b.iter(|| keyward::output::plan_markdown::render(p, keyward::output::plan_markdown::MAX_CHARS))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_load_validate, bench_plan, bench_render);
criterion_main!(benches);
