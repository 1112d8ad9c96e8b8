//! `cargo xtask deny`: `cargo deny check` (advisories, licenses, duplicate versions, sources),
//! offline, with a pinned cargo-deny and the advisory snapshot in `deny/advisory-db/`.
//!
//! cargo-deny is installed under `target/tools` when missing (about three minutes on a cold
//! two-core machine). The crate graph comes from `cargo metadata --locked` (which may download
//! crates, from the registry), and the advisory database from the committed snapshot, made a
//! git repository under `target/deny/db/` with the snapshot's date: nothing else is fetched.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo-deny release this task installs.
pub const CARGO_DENY_VERSION: &str = "0.20.2";

/// The folder cargo-deny opens for the database at `db-urls` in deny.toml, below `db-path`.
const DB_FOLDER: &str = "advisory-db-3157b0e258782691";

pub fn run(root: &Path) -> Result<(), String> {
    let exe = install(root)?;
    let work = root.join("target/deny");
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let metadata = work.join("metadata.json");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["metadata", "--locked", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    std::fs::write(&metadata, &out.stdout).map_err(|e| format!("cannot write {}: {e}", metadata.display()))?;
    prepare_database(root, &work.join("db").join(DB_FOLDER))?;
    let status = Command::new(&exe)
        .current_dir(root)
        .arg("--offline")
        .arg("--metadata-path")
        .arg(&metadata)
        .args(["--config", "deny.toml", "check"])
        .status()
        .map_err(|e| format!("cannot run cargo-deny: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("cargo deny check failed ({status})")) }
}

fn install(root: &Path) -> Result<PathBuf, String> {
    let tools = root.join("target/tools");
    let exe = tools.join("bin/cargo-deny");
    let installed = Command::new(&exe)
        .arg("--version")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_DENY_VERSION));
    if installed {
        return Ok(exe);
    }
    eprintln!("    installing cargo-deny {CARGO_DENY_VERSION} under {}", tools.display());
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "cargo-deny", "--locked", "--version", CARGO_DENY_VERSION, "--root"])
        .arg(&tools)
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if !status.success() {
        return Err("cargo install cargo-deny failed".into());
    }
    Ok(exe)
}

/// The snapshot's upstream commit date, from `deny/advisory-db/SNAPSHOT`.
fn snapshot_date(snapshot: &Path) -> Result<String, String> {
    let file = snapshot.join("SNAPSHOT");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("date = "))
        .map(|d| d.trim().to_string())
        .ok_or_else(|| format!("{} has no `date = ...` line", file.display()))
}

/// Copies the snapshot to `dest` and commits it there, dated as upstream.
fn prepare_database(root: &Path, dest: &Path) -> Result<(), String> {
    let snapshot = root.join("deny/advisory-db");
    let date = snapshot_date(&snapshot)?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| format!("cannot remove {}: {e}", dest.display()))?;
    }
    copy_dir(&snapshot, dest)?;
    let git = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("git")
            .current_dir(dest)
            .args(["-c", "user.name=keyward", "-c", "user.email=keyward@localhost", "-c", "commit.gpgsign=false"])
            .args(args)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .status()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("git {} failed in {}", args.join(" "), dest.display())) }
    };
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "advisory snapshot"])
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("cannot list {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_snapshot_has_a_date_and_advisories() {
        let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deny/advisory-db");
        let date = snapshot_date(&snapshot).unwrap();
        assert!(date.starts_with("20") && date.contains('T'), "{date}");
        assert!(snapshot.join("crates").read_dir().unwrap().count() > 10);
    }
}
