//! `cargo xtask bench`: end-to-end measurements of the release binary on generated
//! configurations, the Graph provider against its fake, then the criterion benchmarks.
//!
//! Each end-to-end figure is the median wall time of several runs and the largest peak
//! resident memory among them (from `getrusage` of the child), printed as Markdown rows for
//! BENCHMARKS.md together with the machine's cores and memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{target_dir, workspace_root};

pub struct BenchArgs {
    pub sizes: Vec<usize>,
    pub runs: usize,
    pub criterion: bool,
}

impl BenchArgs {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut out = BenchArgs { sizes: vec![10_000, 100_000], runs: 5, criterion: true };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--sizes" => {
                    let v = it.next().ok_or("--sizes needs a value such as 10000,100000")?;
                    out.sizes = v
                        .split(',')
                        .map(|s| s.trim().parse().map_err(|_| format!("bad size {s:?}")))
                        .collect::<Result<_, _>>()?;
                }
                "--runs" => {
                    let v = it.next().ok_or("--runs needs a number")?;
                    out.runs = v.parse().map_err(|_| format!("bad --runs {v:?}"))?;
                    if out.runs == 0 {
                        return Err("--runs must be at least 1".into());
                    }
                }
                "--no-criterion" => out.criterion = false,
                other => return Err(format!("unknown option {other:?} for bench")),
            }
        }
        Ok(out)
    }
}

/// One run's wall time (seconds) and the child's peak resident memory (KiB).
fn measure(cmd: &mut Command) -> Result<(f64, u64, i32), String> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| e.to_string())?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers to locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if r < 0 {
        let _ = child.wait();
        return Err("wait4 failed".into());
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    Ok((wall, usage.ru_maxrss as u64, code))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Runs `make_cmd()` `runs` times; returns (median seconds, max peak KiB), requiring exit codes in `ok`.
fn repeat(runs: usize, ok: &[i32], mut make_cmd: impl FnMut() -> Command) -> Result<(f64, u64), String> {
    let mut walls = Vec::new();
    let mut peak = 0;
    for _ in 0..runs {
        let (wall, rss, code) = measure(&mut make_cmd())?;
        if !ok.contains(&code) {
            return Err(format!("command exited with {code}: {:?}", make_cmd()));
        }
        walls.push(wall);
        peak = peak.max(rss);
    }
    Ok((median(walls), peak))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| e.to_string())?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed with {status}")) }
}

fn fixture(xtask: &Path, users: usize) -> Result<PathBuf, String> {
    let dir = target_dir().join("bench-fixtures").join(format!("users-{users}"));
    if !dir.join("keyward.yaml").exists() {
        run(Command::new(xtask).args(["gen-fixture", "--users", &users.to_string(), "--out"]).arg(&dir))?;
    }
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(from).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Changes 1% of users in the directory document outside git: every hundredth `jobTitle`.
fn drift_directory(path: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(text.len() + 1024);
    let mut n = 0usize;
    let mut changed = 0usize;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("\"jobTitle\": ") {
            if n.is_multiple_of(100) {
                out.push_str(&line.replacen("\"jobTitle\": \"", "\"jobTitle\": \"Changed outside git: ", 1));
                changed += 1;
            } else {
                out.push_str(line);
            }
            n += 1;
        } else {
            out.push_str(line);
        }
    }
    std::fs::write(path, out).map_err(|e| e.to_string())?;
    Ok(changed)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown memory".into());
    format!("{cores} cores, {mem}")
}

pub fn run_bench(args: &BenchArgs) -> Result<(), String> {
    let root = workspace_root();
    println!("== building release binaries");
    run(Command::new(env!("CARGO")).current_dir(&root).args([
        "build",
        "--release",
        "--bin",
        "keyward",
        "-p",
        "keyward",
    ]))?;
    run(Command::new(env!("CARGO")).current_dir(&root).args(["build", "--release", "-p", "xtask"]))?;
    let keyward = target_dir().join("release/keyward");
    let xtask = target_dir().join("release/xtask");
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("== end-to-end, median of {} runs, {} on {}", args.runs, machine(), date);
    println!("| measurement | users | median wall | peak memory |");
    println!("|---|---:|---:|---:|");
    let mut rows = Vec::new();
    for &n in &args.sizes {
        let dir = fixture(&xtask, n)?;
        let (wall, rss) = repeat(args.runs, &[0, 3], || {
            let mut c = Command::new(&keyward);
            c.arg("validate").arg(&dir).env("NO_COLOR", "1");
            c
        })?;
        rows.push(("keyward validate (load, validate, policies)", n, wall, rss));
        println!("| keyward validate | {n} | {wall:.3} s | {:.0} MiB |", rss as f64 / 1024.0);

        // A directory holding the fixture, then 1% of users changed outside git.
        let work = target_dir().join("bench-work").join(format!("users-{n}"));
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&dir, &work)?;
        let (apply_wall, apply_rss) = repeat(1, &[0], || {
            let mut c = Command::new(&keyward);
            c.args(["apply", "--auto-approve", "--max-deletes", "1000000", "--min-admins", "0"])
                .arg(&work)
                .env("KEYWARD_NOW", "2026-01-01");
            c
        })?;
        println!(
            "| keyward apply (onboard everything, one run) | {n} | {apply_wall:.3} s | {:.0} MiB |",
            apply_rss as f64 / 1024.0
        );
        let changed = drift_directory(&work.join(".keyward/directory.json"))?;
        let (wall, rss) = repeat(args.runs, &[0, 2, 3], || {
            let mut c = Command::new(&keyward);
            c.arg("plan").arg(&work).args(["--format", "json"]).env("KEYWARD_NOW", "2026-01-01");
            c
        })?;
        println!("| keyward plan, {changed} users changed (1%) | {n} | {wall:.3} s | {:.0} MiB |", rss as f64 / 1024.0);
        rows.push(("keyward plan", n, wall, rss));
    }
    if let [(_, n1, w1, _), (_, n2, w2, _)] =
        &rows.iter().filter(|r| r.0 == "keyward plan").cloned().collect::<Vec<_>>()[..]
    {
        println!(
            "\nplan growth from {n1} to {n2} users: {:.1}x time for {:.0}x size",
            w2 / w1,
            *n2 as f64 / *n1 as f64
        );
    }
    // The Graph provider against its fake: request counts against the budgets, wall times,
    // and an apply under throttling (benches/graph.rs).
    println!();
    run(Command::new(env!("CARGO")).current_dir(&root).args(["bench", "-p", "keyward", "--bench", "graph"]))?;
    // The built-in policies alone, on the largest fixture (benches/policy.rs).
    if let Some(&largest) = args.sizes.iter().max() {
        println!("\n== built-in policies, {largest} users");
        let dir = target_dir().join("bench-fixtures").join(format!("users-{largest}"));
        run(Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["bench", "-p", "keyward", "--bench", "policy", "--"])
            .arg(&dir)
            .arg(args.runs.max(5).to_string()))?;
    }
    // SCIM against a real scim2-server: onboarding 5,000 users, then a plan, with request
    // counts (tests/scim.rs, `benchmark_onboarding`); installs the pinned server if needed.
    println!("\n== SCIM against scim2-server, 5000 users");
    let ctx = crate::peers::Context { target_dir: target_dir() };
    let server = match std::env::var_os(crate::peers::SCIM2_SERVER.env_var).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => crate::peers::install_scim2_server(&ctx)?,
    };
    run(Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["test", "--release", "-p", "keyward", "--test", "scim", "--", "--include-ignored"])
        .args(["benchmark_onboarding", "--nocapture"])
        .env(crate::peers::SCIM2_SERVER.env_var, &server)
        .env("KEYWARD_SCIM_BENCH_USERS", "5000"))?;
    if args.criterion {
        println!("\n== criterion benchmarks");
        let sizes = args.sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
        run(Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["bench", "-p", "keyward", "--bench", "engine"])
            .env("KEYWARD_BENCH_SIZES", sizes)
            .env("KEYWARD_BENCH_FIXTURES", target_dir().join("bench-fixtures")))?;
    }
    Ok(())
}
