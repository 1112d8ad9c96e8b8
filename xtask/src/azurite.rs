//! The Azure Storage emulator, Azurite, as a test peer: the npm package, pinned with a committed
//! lock file (`xtask/peers/azurite/`), installed with `npm ci` into `target/peers/azurite/` with
//! install scripts off. The tests start `azurite-blob` themselves, one per test, on a free
//! loopback port with a throwaway data folder and a generated account key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::peers::Context;

/// The pinned version: the last that runs on Node 20 (3.36.0 and later ask for Node 21 or 22).
pub const AZURITE_VERSION: &str = "3.35.0";

/// The oldest Node major version the pinned Azurite and its dependencies accept.
const NODE_MAJOR_MIN: u32 = 20;

/// Where the committed package manifest and lock file are, below the workspace root.
const MANIFEST_DIR: &str = "xtask/peers/azurite";

fn install_dir(ctx: &Context) -> PathBuf {
    ctx.target_dir.join("peers").join("azurite")
}

/// The stamp records the lock file installed, so a changed lock file reinstalls.
fn stamp_contents(lock: &[u8]) -> String {
    let sum: u64 = lock.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    format!("azurite=={AZURITE_VERSION} lock-fnv1a={sum:016x}\n")
}

fn node_major() -> Result<u32, String> {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run node ({e}); install Node.js {NODE_MAJOR_MIN} or later"))?;
    let v = String::from_utf8_lossy(&out.stdout);
    v.trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("`node --version` printed {:?}", v.trim()))
}

/// Installs the pinned Azurite into `target/peers/azurite` unless the stamp says the same lock
/// file is installed there; returns the path of its `azurite-blob`.
pub fn install_azurite(ctx: &Context) -> Result<PathBuf, String> {
    let source = crate::workspace_root().join(MANIFEST_DIR);
    let lock = std::fs::read(source.join("package-lock.json"))
        .map_err(|e| format!("cannot read {}/package-lock.json: {e}", source.display()))?;
    let dir = install_dir(ctx);
    let exe = dir.join("node_modules").join(".bin").join("azurite-blob");
    let stamp = dir.join(".keyward-peer-stamp");
    if exe.is_file() && std::fs::read_to_string(&stamp).ok() == Some(stamp_contents(&lock)) {
        eprintln!("    azurite {AZURITE_VERSION}: already installed");
        return Ok(exe);
    }
    let major = node_major()?;
    if major < NODE_MAJOR_MIN {
        return Err(format!(
            "Node.js {major} is too old for Azurite {AZURITE_VERSION}; install {NODE_MAJOR_MIN} or later"
        ));
    }
    eprintln!("    azurite {AZURITE_VERSION}: installing into {}", dir.display());
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(f), dir.join(f)).map_err(|e| format!("cannot copy {f}: {e}"))?;
    }
    let started = std::time::Instant::now();
    run(Command::new("npm").current_dir(&dir).args([
        "ci",
        "--ignore-scripts",
        "--omit=dev",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]))
    .map_err(|e| format!("npm ci (azurite {AZURITE_VERSION}) failed: {e}"))?;
    eprintln!("    azurite {AZURITE_VERSION}: npm ci took {:.1}s", started.elapsed().as_secs_f64());
    check_version(&exe)?;
    std::fs::write(&stamp, stamp_contents(&lock)).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(exe)
}

fn check_version(exe: &Path) -> Result<(), String> {
    let out = Command::new(exe).arg("--version").output().map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let v = String::from_utf8_lossy(&out.stdout);
    if v.trim() != AZURITE_VERSION {
        return Err(format!("{} --version printed {:?}, not {AZURITE_VERSION}", exe.display(), v.trim()));
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.stdin(std::process::Stdio::null()).output().map_err(|e| format!("cannot run npm: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let tail: Vec<&str> = text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    Err(format!("{}\n{}", out.status, tail.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_pinned_exactly_and_matches_the_lock_file() {
        assert!(AZURITE_VERSION.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
        let root = crate::workspace_root().join(MANIFEST_DIR);
        let manifest = std::fs::read_to_string(root.join("package.json")).unwrap();
        assert!(manifest.contains(&format!("\"azurite\": \"{AZURITE_VERSION}\"")), "{manifest}");
        let lock = std::fs::read_to_string(root.join("package-lock.json")).unwrap();
        let entry = lock.split("\"node_modules/azurite\": {").nth(1).expect("azurite in the lock file");
        assert!(entry.trim_start().starts_with(&format!("\"version\": \"{AZURITE_VERSION}\"")), "{}", &entry[..80]);
        // Every package is pinned by its integrity hash.
        assert_eq!(lock.matches("\"version\":").count(), lock.matches("\"integrity\":").count());
    }

    #[test]
    fn a_changed_lock_file_changes_the_stamp() {
        assert_ne!(stamp_contents(b"a"), stamp_contents(b"b"));
        assert!(stamp_contents(b"a").starts_with(&format!("azurite=={AZURITE_VERSION} ")));
    }
}
