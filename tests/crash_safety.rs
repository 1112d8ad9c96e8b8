//! Crash safety: `keyward apply` killed with SIGKILL at several points of a large apply leaves
//! a directory that is absent or a whole, valid document, an audit log whose chain verifies
//! (a torn last line is reported as an interrupted write, not as tampering), and a re-run that
//! converges without creating any user twice.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stderr)]

mod support;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use keyward::provider::file::DirectoryFile;
use support::Sandbox;

/// Users added to the quick start: enough that an apply in a debug build takes a while.
const USERS: usize = 10_000;

/// Writes `USERS` generated users (plain, unprivileged roles) into `users/generated.yaml`.
fn generate(sb: &Sandbox) {
    let roles = ["ap-clerk", "gl-accountant"];
    let mut text = String::with_capacity(USERS * 200);
    for i in 0..USERS {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&format!(
            "kind: User\nname: gen.user{i:05}\nuserName: gen.user{i:05}@northwind.example\n\
             displayName: Generated User {i}\ndepartment: Operations\njobTitle: Clerk {}\n\
             employeeId: \"G{i:05}\"\nroles: [{}]\n",
            i % 7,
            roles[i % roles.len()],
        ));
    }
    sb.write("users/generated.yaml", &text);
}

/// When to send SIGKILL. Fixed delays alone would mostly land before anything is written (a
/// debug build spends its first second or two loading and planning), so the later points wait
/// for the apply's own milestones, polled every millisecond.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// A fixed delay after start: loading, validating or planning.
    After(u64),
    /// As soon as the audit log holds bytes: the first phase's records are being written.
    AuditRecordsAppear,
    /// As soon as the directory document exists: accounts saved, assignments not yet.
    DirectoryAppears,
    /// This long after the directory appears: a later phase.
    AfterDirectory(u64),
}

/// Waits for `point`; false when the child exited first.
fn wait_for(point: KillPoint, sb: &Sandbox, child: &mut std::process::Child) -> bool {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(120);
    let dir = sb.path(".keyward/directory.json");
    let audit = sb.path(".keyward/audit.jsonl");
    let mut dir_seen: Option<Instant> = None;
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let now = Instant::now();
        if dir_seen.is_none() && dir.exists() {
            dir_seen = Some(now);
        }
        let reached = match point {
            KillPoint::After(ms) => now - start >= Duration::from_millis(ms),
            KillPoint::AuditRecordsAppear => std::fs::metadata(&audit).is_ok_and(|m| m.len() > 0),
            KillPoint::DirectoryAppears => dir_seen.is_some(),
            KillPoint::AfterDirectory(ms) => dir_seen.is_some_and(|t| now - t >= Duration::from_millis(ms)),
        };
        if reached {
            return true;
        }
        assert!(now < deadline, "{point:?} never came");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The directory afterwards: `None` when absent; panics when present but not a valid document.
fn directory(sb: &Sandbox, when: &str) -> Option<DirectoryFile> {
    let path = sb.path(".keyward/directory.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{when}: cannot read {}: {e}", path.display()),
    };
    let doc: DirectoryFile = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{when}: directory.json is torn or invalid ({e}), {} bytes", bytes.len()));
    Some(doc)
}

/// The userNames of generated users the audit log records as created (a torn last line is
/// skipped, as `audit verify` does).
fn claimed_creates(sb: &Sandbox) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(sb.path(".keyward/audit.jsonl")) else { return vec![] };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["action"] == "create" && r["outcome"] == "applied")
        .filter_map(|r| {
            r["address"].as_str()?.strip_prefix("directory.user.gen.").map(|n| format!("gen.{n}@northwind.example"))
        })
        .collect()
}

fn assert_no_duplicates(doc: &DirectoryFile, when: &str) -> usize {
    let names: Vec<String> = doc.users.iter().map(|u| u.user_name.to_lowercase()).collect();
    let distinct: HashSet<&String> = names.iter().collect();
    assert_eq!(names.len(), distinct.len(), "{when}: a user was created twice");
    names.len()
}

#[test]
fn apply_killed_at_any_point_leaves_valid_files_and_a_rerun_converges() {
    // (delay before SIGKILL, whether the directory was partial when killed)
    let mut report = Vec::new();
    let mut mid_apply = 0;
    for point in [
        KillPoint::After(50),
        KillPoint::DirectoryAppears,
        KillPoint::AuditRecordsAppear,
        KillPoint::AfterDirectory(400),
    ] {
        let sb = Sandbox::example("quickstart");
        generate(&sb);
        let when = format!("killed at {point:?}");
        let start = Instant::now();
        let mut child = sb
            .cmd(&["apply", sb.root.to_str().unwrap(), "--auto-approve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start keyward apply");
        let finished_before_kill = !wait_for(point, &sb, &mut child);
        // `Child::kill` sends SIGKILL on Unix.
        let _ = child.kill();
        let status = child.wait().unwrap();
        let elapsed = start.elapsed();

        // The directory is absent or a whole, valid document with no duplicate.
        let before = directory(&sb, &when);
        let users_after_kill = before.as_ref().map(|d| assert_no_duplicates(d, &when));

        // The audit log, when the kill left one, verifies: a torn last line is an interrupted
        // write, not tampering. (`audit verify` refuses a missing log, so check first.)
        let audit_after_kill = sb.path(".keyward/audit.jsonl").exists();
        let mut torn = false;
        if audit_after_kill {
            let r = sb.run(&["audit", "verify", "{dir}"]);
            r.expect(0);
            torn = r.stdout.contains("interrupt") || r.stderr.contains("interrupt");
        }

        // The log never claims more than the directory holds: every generated user recorded as
        // created is in the directory the kill left.
        let claimed = claimed_creates(&sb);
        if !claimed.is_empty() {
            let doc =
                before.as_ref().unwrap_or_else(|| panic!("{when}: the audit log records creates, but no directory"));
            let held: HashSet<String> = doc.users.iter().map(|u| u.user_name.to_lowercase()).collect();
            let missing: Vec<&String> = claimed.iter().filter(|u| !held.contains(*u)).take(5).collect();
            assert!(missing.is_empty(), "{when}: the audit log records creating {missing:?}, not in the directory");
        }

        // A re-run converges and creates nobody twice.
        sb.run(&["apply", "{dir}", "--auto-approve"]).expect(0);
        sb.run(&["plan", "{dir}", "--detailed-exitcode"]).expect(0);
        sb.run(&["audit", "verify", "{dir}"]).expect(0);
        let after = directory(&sb, &format!("{when}, then re-applied")).expect("the directory exists after apply");
        let n = assert_no_duplicates(&after, &when);
        assert!(n >= USERS, "{when}: {n} users after the re-run");
        // Mid-apply: the apply had begun writing (an audit record or the directory) and the
        // kill left something other than the converged directory.
        let started_writing = audit_after_kill || before.is_some();
        let partial = !finished_before_kill && started_writing && before.as_ref() != Some(&after);
        if partial {
            mid_apply += 1;
        }
        report.push(format!(
            "{point:?}: status {status}, {elapsed:?}, finished before kill: {finished_before_kill}, partial: {partial}, users after kill: {users_after_kill:?}, audit log after kill: {audit_after_kill} ({} user creates recorded; torn tail reported: {torn}), after re-run: {n}",
            claimed.len()
        ));
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        mid_apply >= 1,
        "no kill landed mid-apply (every apply finished first or had not started writing):\n{}",
        report.join("\n")
    );
}
