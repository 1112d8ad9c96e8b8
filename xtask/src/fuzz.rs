//! `cargo xtask fuzz`: runs the libFuzzer targets under `fuzz/` briefly.
//!
//! cargo-fuzz needs a nightly compiler (for the sanitizer and coverage flags). This task uses
//! the machine's `nightly` toolchain when rustup has one, installs a pinned cargo-fuzz under
//! `target/tools` when it is missing, and runs every target for the given time. Each run reads
//! three corpus directories: `target/fuzz/corpus/TARGET/` (where libFuzzer keeps what it finds,
//! seeded with the example configurations for the loader), the committed seeds in
//! `fuzz/seeds/TARGET/` and the committed regression inputs in `fuzz/regressions/TARGET/` when
//! there are any. A crash leaves its input under `target/fuzz/artifacts/TARGET/` and fails the
//! task. `tests/fuzz_seeds.rs` checks the seeds and regressions with the stable compiler.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace_root;

/// The cargo-fuzz release this task installs.
pub const CARGO_FUZZ_VERSION: &str = "0.13.1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzArgs {
    pub seconds: u64,
    pub targets: Vec<String>,
}

impl FuzzArgs {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut a = FuzzArgs { seconds: 30, targets: Vec::new() };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--seconds" => {
                    let v = it.next().ok_or("--seconds needs a number")?;
                    a.seconds = v.parse().map_err(|_| format!("--seconds needs a whole number, not {v:?}"))?;
                }
                "--target" => a.targets.push(it.next().ok_or("--target needs a name")?.clone()),
                other => return Err(format!("unknown argument `{other}` for fuzz")),
            }
        }
        Ok(a)
    }
}

fn targets(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

fn cargo_fuzz(root: &Path) -> Result<PathBuf, String> {
    let tools = root.join("target/tools");
    let exe = tools.join("bin/cargo-fuzz");
    let installed = Command::new(&exe)
        .arg("--version")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION));
    if installed {
        return Ok(exe);
    }
    eprintln!("==> installing cargo-fuzz {CARGO_FUZZ_VERSION} under {}", tools.display());
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ_VERSION, "--root"])
        .arg(&tools)
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if !status.success() {
        return Err("cargo install cargo-fuzz failed".into());
    }
    Ok(exe)
}

/// Copies the example configurations' YAML files into the loader's corpus, once.
fn seed_corpus(root: &Path, corpus: &Path) -> Result<(), String> {
    std::fs::create_dir_all(corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    let mut stack = vec![root.join("examples")];
    let mut n = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                n += 1;
                let _ = std::fs::copy(&p, corpus.join(format!("seed-{n:03}.yaml")));
            }
        }
    }
    Ok(())
}

pub fn run(args: &FuzzArgs) -> Result<(), String> {
    let root = workspace_root();
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .ok_or("cargo-fuzz needs a nightly toolchain (`rustup toolchain install nightly`); none is installed")?;
    eprintln!("==> fuzzing with {nightly}");
    let exe = cargo_fuzz(&root)?;
    let all = targets(&root)?;
    let chosen: Vec<String> = if args.targets.is_empty() { all.clone() } else { args.targets.clone() };
    for t in &chosen {
        if !all.contains(t) {
            return Err(format!("no fuzz target `{t}`; there are: {}", all.join(", ")));
        }
    }
    eprintln!("==> building the fuzz targets (nightly, address sanitizer)");
    let status = Command::new(&exe)
        .current_dir(&root)
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .args(["fuzz", "build", "--fuzz-dir", "fuzz"])
        .status()
        .map_err(|e| format!("cannot run cargo-fuzz: {e}"))?;
    if !status.success() {
        return Err("the fuzz targets do not build".into());
    }
    for t in &chosen {
        let corpus = root.join("target/fuzz/corpus").join(t);
        let artifacts = root.join("target/fuzz/artifacts").join(t);
        std::fs::create_dir_all(&artifacts).map_err(|e| format!("cannot create {}: {e}", artifacts.display()))?;
        if t == "load_config" {
            seed_corpus(&root, &corpus)?;
        } else {
            std::fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
        }
        // libFuzzer writes new inputs to the first directory only; the committed ones stay as
        // they are.
        let seeds = root.join("fuzz/seeds").join(t);
        if !seeds.is_dir() {
            return Err(format!("fuzz target `{t}` has no seeds; add inputs under {}", seeds.display()));
        }
        let regressions = Some(root.join("fuzz/regressions").join(t)).filter(|d| d.is_dir());
        eprintln!("==> fuzz {t} for {} s", args.seconds);
        let status = Command::new(&exe)
            .current_dir(&root)
            .env("RUSTUP_TOOLCHAIN", "nightly")
            .args(["fuzz", "run", "--fuzz-dir", "fuzz", t])
            .arg(&corpus)
            .arg(&seeds)
            .args(regressions)
            .arg("--")
            .arg(format!("-max_total_time={}", args.seconds))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-max_len=65536")
            .status()
            .map_err(|e| format!("cannot run cargo-fuzz: {e}"))?;
        if !status.success() {
            return Err(format!("fuzz target `{t}` found a failure; its input is under {}", artifacts.display()));
        }
    }
    eprintln!("==> fuzzing passed: {}", chosen.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(FuzzArgs::parse(&[]).unwrap(), FuzzArgs { seconds: 30, targets: vec![] });
        let a = FuzzArgs::parse(&s(&["--seconds", "5", "--target", "scim_filter"])).unwrap();
        assert_eq!(a, FuzzArgs { seconds: 5, targets: vec!["scim_filter".into()] });
        assert!(FuzzArgs::parse(&s(&["--seconds", "x"])).is_err());
        assert!(FuzzArgs::parse(&s(&["--bogus"])).is_err());
    }

    #[test]
    fn every_target_is_found_and_has_seeds() {
        let root = workspace_root();
        let names = targets(&root).unwrap();
        for t in ["ldap_dn", "ldap_filter", "load_config", "scim_filter"] {
            assert!(names.iter().any(|n| n == t), "{t} is not among {names:?}");
        }
        for t in &names {
            assert!(root.join("fuzz/seeds").join(t).is_dir(), "{t} has no fuzz/seeds/{t}/");
        }
    }
}
