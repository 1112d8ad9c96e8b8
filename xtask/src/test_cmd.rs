//! `cargo xtask test`: the project's one full test command, the one CI runs.

use crate::args::TestArgs;
use crate::{peers, samba, slapd};
use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Whether this run is CI's (`CI=true`, as GitHub Actions and most CI systems set it).
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")).unwrap_or(false)
}

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

const STEPS: usize = 8;

fn header(n: usize, title: &str) {
    println!("\n==> [{n}/{STEPS}] {title}");
}

/// Runs a cargo command from the workspace root, its output going to ours.
fn run_cargo(args: &[&str], extra: &[String], env: &[(String, String)]) -> Result<(), String> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(crate::workspace_root()).args(args).args(extra).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn prepare_peers(args: &TestArgs) -> Result<Vec<(String, String)>, String> {
    if args.no_peers {
        eprintln!("    --no-peers: installing no peer; tests that need one skip");
        return Ok(Vec::new());
    }
    let ctx = peers::Context { target_dir: crate::target_dir() };
    let strict = in_ci();
    let prepared = peers::prepare(&ctx, &args.skip_peers, strict)?;
    if !prepared.all_ready {
        eprintln!("    not every peer is ready: {} is not set", peers::PEERS_READY_VAR);
    }
    Ok(prepared.env)
}

pub fn run(args: &TestArgs) -> Result<(), String> {
    let start = Instant::now();
    let result = steps(args);
    let secs = start.elapsed().as_secs_f64();
    match &result {
        Ok(()) => {
            println!("\n==> cargo xtask test: all {STEPS} steps passed; total wall time {secs:.1}s")
        }
        Err(_) => println!("\n==> cargo xtask test: FAILED; total wall time {secs:.1}s"),
    }
    result
}

fn steps(args: &TestArgs) -> Result<(), String> {
    let timed = |n: usize, title: &str, f: &mut dyn FnMut() -> Result<(), String>| {
        header(n, title);
        let t = Instant::now();
        let r = f();
        match &r {
            Ok(()) => println!("    done in {:.1}s", t.elapsed().as_secs_f64()),
            Err(e) => println!("    step {n} failed after {:.1}s: {e}", t.elapsed().as_secs_f64()),
        }
        r
    };

    timed(1, "cargo fmt --all -- --check", &mut || run_cargo(&["fmt", "--all", "--", "--check"], &[], &[]))?;
    timed(2, "module layers (cargo xtask layers)", &mut || crate::layers::run(&crate::workspace_root()))?;
    timed(3, "cargo deny (cargo xtask deny)", &mut || crate::deny::run(&crate::workspace_root()))?;
    timed(4, "cargo clippy --workspace --all-targets -- -D warnings", &mut || {
        run_cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[], &[])
    })?;
    let mut env = Vec::new();
    timed(5, "prepare test peers", &mut || {
        env = prepare_peers(args)?;
        for (k, v) in &env {
            println!("    {k}={v}");
        }
        Ok(())
    })?;
    // Held until the tests end, pass or fail: dropping it kills the server.
    let mut server = None;
    timed(6, "start slapd for the LDAP tests", &mut || {
        server = start_slapd(&env)?;
        if let Some(s) = &server {
            println!("    slapd serving {} (data in {})", s.url, s.dir.display());
            env.extend(s.env());
        }
        Ok(())
    })?;
    // Likewise held until the tests end.
    let mut dc = None;
    let started = timed(7, "start a Samba AD domain controller for the AD tests", &mut || {
        dc = start_samba(&env)?;
        if let Some(s) = &dc {
            println!("    samba serving {} and {} (data in {})", s.url, s.ldaps_url, s.dir.display());
            env.extend(s.env());
        }
        Ok(())
    });
    if let Err(e) = started {
        drop(server);
        return Err(e);
    }
    let result = timed(8, "cargo test --workspace -- --include-ignored", &mut || {
        run_cargo(&["test", "--workspace", "--", "--include-ignored"], &args.test_args, &env)
    });
    drop(dc);
    drop(server);
    result
}

/// Starts the Samba AD DC when its peer is ready (`KEYWARD_SAMBA` among the prepared
/// variables). Once installed, a DC that cannot start is an error, whatever the run.
fn start_samba(env: &[(String, String)]) -> Result<Option<samba::Samba>, String> {
    let Some((_, path)) = env.iter().find(|(k, _)| k == peers::SAMBA.env_var) else {
        eprintln!("    samba is not installed: the AD tests will skip");
        return Ok(None);
    };
    let root = crate::target_dir().join("peers").join("samba");
    samba::Samba::start(std::path::Path::new(path), &root).map(Some)
}

/// `cargo xtask samba`: install Samba's AD DC if needed, start it, print the variables, serve.
pub fn samba_only(rest: &[String]) -> Result<(), String> {
    if let Some(a) = rest.first() {
        return Err(format!("`cargo xtask samba` takes no arguments, not `{a}`"));
    }
    let ctx = peers::Context { target_dir: crate::target_dir() };
    let path = match std::env::var_os(peers::SAMBA.env_var).filter(|v| !v.is_empty()) {
        Some(p) => std::path::PathBuf::from(p),
        None => peers::install_samba(&ctx)?,
    };
    eprintln!("samba: provisioning a throwaway domain and starting the DC (about 15 s)");
    let server = samba::Samba::start(&path, &crate::target_dir().join("peers").join("samba"))?;
    println!("export {}={}", peers::SAMBA.env_var, shell_quote(&path.display().to_string()));
    for (k, v) in server.env() {
        println!("export {k}={}", shell_quote(&v));
    }
    eprintln!("samba is serving {} and {}; press Ctrl-C to stop it", server.url, server.ldaps_url);
    server.wait()
}

/// Starts slapd when its peer is ready (`KEYWARD_SLAPD` among the prepared variables).
fn start_slapd(env: &[(String, String)]) -> Result<Option<slapd::Slapd>, String> {
    let Some((_, path)) = env.iter().find(|(k, _)| k == peers::SLAPD.env_var) else {
        eprintln!("    slapd is not installed: the LDAP tests will fail");
        return Ok(None);
    };
    let root = crate::target_dir().join("peers").join("slapd");
    slapd::Slapd::start(std::path::Path::new(path), &root).map(Some)
}

/// `cargo xtask slapd`: install slapd if needed, start it, print the variables, serve.
pub fn slapd_only(rest: &[String]) -> Result<(), String> {
    if let Some(a) = rest.first() {
        return Err(format!("`cargo xtask slapd` takes no arguments, not `{a}`"));
    }
    let ctx = peers::Context { target_dir: crate::target_dir() };
    let path = match std::env::var_os(peers::SLAPD.env_var).filter(|v| !v.is_empty()) {
        Some(p) => std::path::PathBuf::from(p),
        None => peers::install_slapd(&ctx)?,
    };
    let server = slapd::Slapd::start(&path, &crate::target_dir().join("peers").join("slapd"))?;
    println!("export {}={}", peers::SLAPD.env_var, shell_quote(&path.display().to_string()));
    for (k, v) in server.env() {
        println!("export {k}={}", shell_quote(&v));
    }
    eprintln!("slapd is serving {}; press Ctrl-C to stop it", server.url);
    server.wait()
}

/// `cargo xtask peers`: install the peers and print the variables for a shell to `eval`.
pub fn peers_only(args: &TestArgs) -> Result<(), String> {
    if !args.test_args.is_empty() {
        return Err("`cargo xtask peers` takes no test arguments".into());
    }
    // Progress went to stderr: stdout holds only the export lines, for `eval "$(...)"`.
    let env = prepare_peers(args)?;
    for (k, v) in &env {
        println!("export {k}={}", shell_quote(v));
    }
    Ok(())
}

fn shell_quote(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+=:".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/usr/sbin/slapd"), "/usr/sbin/slapd");
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
