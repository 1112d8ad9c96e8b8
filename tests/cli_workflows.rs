//! Pull-request and scheduled workflows: `plan --base`, `drift` and `watch`, end to end.
//!
//! The webhook these tests alert is a std `TcpListener` on 127.0.0.1 started by each test; the
//! git repositories are made with the `git` command line in a temporary folder.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Sandbox, find_user};

/// A part of the webhook URL that must never show up anywhere but in the request line.
const WEBHOOK_SECRET: &str = "T0KEN-s3cret-7f3a";

fn with_webhook(sb: &Sandbox) {
    let text = sb.read("keyward.yaml");
    sb.write("keyward.yaml", &format!("{text}\nnotify:\n  webhook: ${{env:KEYWARD_TEST_WEBHOOK}}\n"));
}

/// Changes a user's job title in the live directory, as someone outside git would.
fn foreign_change(sb: &Sandbox, user: &str, title: &str) {
    let mut dir = sb.directory();
    find_user(&mut dir, user)["jobTitle"] = Value::from(title);
    // Atomically, so a running `keyward watch` never reads half a file.
    let tmp = sb.path(".keyward/directory.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&dir).unwrap()).unwrap();
    std::fs::rename(&tmp, sb.path(".keyward/directory.json")).unwrap();
}

fn git(sb: &Sandbox, args: &[&str]) {
    let out = Command::new("git").args(args).current_dir(&sb.root).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Checks that `text` is OpenMetrics text: comments `# HELP`, `# TYPE`, `# EOF` or samples
/// `name{labels} value`, ending with `# EOF`. Returns the samples.
fn parse_openmetrics(text: &str) -> Vec<(String, f64)> {
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF:\n{text}");
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("# ") {
            let word = rest.split(' ').next().unwrap();
            assert!(["HELP", "TYPE", "EOF"].contains(&word), "unknown comment {line:?}");
            assert!(word != "EOF" || i == lines.len() - 1, "# EOF is the last line");
            if word == "TYPE" {
                assert!(["gauge", "counter"].contains(&rest.rsplit(' ').next().unwrap()), "{line}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(labels.starts_with('{') && labels.ends_with('}'), "bad labels in {line:?}");
            for pair in labels[1..labels.len() - 1].split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad label name in {line:?}");
                assert!(v.starts_with('"'), "label values are quoted in {line:?}");
            }
        }
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} has a # TYPE line");
        samples.push((series.to_string(), value));
    }
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
}

#[test]
fn plan_base_splits_the_pull_requests_changes_from_drift_already_present() {
    let sb = Sandbox::example("quickstart");
    sb.write(".gitignore", ".keyward/\n");
    git(&sb, &["init", "-q"]);
    git(&sb, &["config", "user.name", "Test"]);
    git(&sb, &["config", "user.email", "test@example.invalid"]);
    git(&sb, &["config", "commit.gpgsign", "false"]);
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "base"]);
    sb.apply_ok();
    // The pull request's commit, and a change made outside git.
    sb.edit("users/sales.yaml", "jobTitle: Head of Sales", "jobTitle: Sales Director");
    git(&sb, &["commit", "-q", "-a", "-m", "promote robert"]);
    foreign_change(&sb, "janet.leverling@northwind.example", "Hacker");

    let text = sb.run(&["plan", "{dir}", "--base", "HEAD~1"]);
    text.expect(0);
    let out = &text.stdout;
    let (mine, drift) = out.split_once("Drift already present").expect("two sections");
    assert!(mine.contains("Changes this revision asks for"), "{out}");
    assert!(mine.contains("directory.user.robert.king") && !mine.contains("janet"), "{out}");
    assert!(drift.contains("directory.user.janet.leverling") && !drift.contains("robert.king"), "{out}");
    assert!(drift.contains("(drift:"), "{out}");

    let json = sb.run(&["plan", "{dir}", "--base", "HEAD~1", "--format", "json"]);
    json.expect(0);
    let plan = json.json();
    assert_eq!(plan["base"]["revision"], "HEAD~1");
    let sections = plan["base"]["sections"].as_object().unwrap();
    assert_eq!(sections.len(), 2, "{sections:?}");
    assert_eq!(sections["directory.user.robert.king"], "change");
    assert_eq!(sections["directory.user.janet.leverling"], "drift");
    for c in plan["changes"].as_array().unwrap() {
        assert!(sections.contains_key(c["address"].as_str().unwrap()), "every change has a section");
    }

    let md = sb.run(&["plan", "{dir}", "--base", "HEAD~1", "--format", "markdown"]);
    md.expect(0);
    let pr = md.stdout.find("Changes this pull request asks for (1)").expect("PR section");
    let drift = md.stdout.find("Drift already present at `HEAD~1` (1)").expect("drift section");
    assert!(pr < drift, "the pull request's part comes first:\n{}", md.stdout);
    assert!(md.stdout[pr..drift].contains("robert.king") && md.stdout[drift..].contains("janet.leverling"));

    // Without --base, no split.
    assert!(sb.plan_json().get("base").is_none());
    // A base that cannot be read, or does not validate, is an error.
    let bad = sb.run(&["plan", "{dir}", "--base", "no-such-revision"]);
    bad.expect(1);
    assert!(bad.stderr.contains("no-such-revision"), "{}", bad.stderr);
    sb.write("users/broken.yaml", "kind: User\nname: broken\nnoSuchField: 1\n");
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "broken"]);
    sb.write("users/broken.yaml", "kind: User\nname: broken\nuserName: broken@northwind.example\n");
    let invalid = sb.run(&["plan", "{dir}", "--base", "HEAD"]);
    invalid.expect(1);
    assert!(invalid.stderr.contains("base revision \"HEAD\" is not valid"), "{}", invalid.stderr);
}

#[test]
fn drift_exits_0_or_2_alerts_without_secrets_and_writes_openmetrics() {
    let sb = Sandbox::example("quickstart");
    with_webhook(&sb);
    let (url, bodies) = support::webhook(&format!("/hooks/{WEBHOOK_SECRET}"));
    let env = [("KEYWARD_TEST_WEBHOOK", url.as_str())];
    sb.apply_ok();
    let metrics = sb.path("drift.prom");
    let metrics_arg = metrics.to_string_lossy().into_owned();

    let none = sb.run_with_env(&["drift", "{dir}", "--notify", "--metrics-file", &metrics_arg], &env);
    none.expect(0);
    assert!(none.stdout.contains("No drift."), "{}", none.stdout);
    assert!(bodies.recv_timeout(Duration::from_millis(300)).is_err(), "no alert without drift");
    let samples = parse_openmetrics(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(sample(&samples, "keyward_up"), Some(1.0));
    assert!(sample(&samples, "keyward_last_success_timestamp_seconds").unwrap() > 1.7e9);
    assert!(!samples.iter().any(|(s, _)| s.starts_with("keyward_drift_items")));

    foreign_change(&sb, "janet.leverling@northwind.example", "Hacker");
    let found = sb.run_with_env(&["drift", "{dir}", "--notify", "--metrics-file", &metrics_arg], &env);
    found.expect(2);
    assert!(found.stdout.contains("directory.user.janet.leverling") && found.stdout.contains("(drift:"));
    // A drift report changes nothing, and does not say it will.
    assert!(!found.stdout.contains("will perform"), "{}", found.stdout);
    assert!(found.stdout.contains("`keyward apply` would make these changes"), "{}", found.stdout);
    let body = bodies.recv_timeout(Duration::from_secs(10)).expect("the webhook got the alert");
    let payload: Value = serde_json::from_str(&body).unwrap();
    let text = payload["text"].as_str().expect("Slack/Teams {\"text\": ...}");
    assert!(text.contains("update `directory.user.janet.leverling`"), "{text}");
    assert!(!body.contains("Hacker"), "alerts carry addresses, never values: {body}");
    for s in [&body, &found.stdout, &found.stderr, &none.stderr] {
        assert!(!s.contains(WEBHOOK_SECRET), "the webhook URL is a secret: {s}");
    }
    let samples = parse_openmetrics(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(sample(&samples, "keyward_drift_items{target=\"directory\",kind=\"user\"}"), Some(1.0));
    // Not a git repository: everything is compared with the configuration as it is, so
    // everything is drift and nothing pending.
    assert_eq!(sample(&samples, "keyward_pending_changes{action=\"update\"}"), Some(0.0));
    assert_eq!(sample(&samples, "keyward_policy_findings{severity=\"warn\"}"), Some(1.0));

    let json = sb.run(&["drift", "{dir}", "--format", "json"]);
    json.expect(2);
    assert_eq!(support::changes(&json.json()), vec![("directory.user.janet.leverling".into(), "update".into())]);
    let md = sb.run(&["drift", "{dir}", "--format", "markdown"]);
    md.expect(2);
    assert!(md.stdout.starts_with("### keyward drift") && md.stdout.contains("janet.leverling"));

    // A failed check alerts too, and keeps the last success time in the metrics.
    sb.write(".keyward/directory.json", "{ not json");
    let failed = sb.run_with_env(&["drift", "{dir}", "--notify", "--metrics-file", &metrics_arg], &env);
    failed.expect(1);
    let body = bodies.recv_timeout(Duration::from_secs(10)).expect("the failure alert");
    assert!(body.contains("failed") && !body.contains(WEBHOOK_SECRET), "{body}");
    let samples = parse_openmetrics(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(sample(&samples, "keyward_up"), Some(0.0));
    assert!(sample(&samples, "keyward_last_success_timestamp_seconds").unwrap() > 1.7e9);

    // --notify without a webhook configured is an error, not a silent success.
    let plain = Sandbox::example("quickstart");
    plain.run(&["drift", "{dir}", "--notify"]).expect(1);
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn watch_serves_metrics_alerts_each_new_drift_once_and_stops_on_sigterm() {
    let sb = Sandbox::example("quickstart");
    with_webhook(&sb);
    // A configuration with a validation warning: watch prints it once, not at every check.
    sb.edit("keyward.yaml", "count: 2}", "count: 0}");
    let (url, bodies) = support::webhook(&format!("/hooks/{WEBHOOK_SECRET}"));
    sb.apply_ok();
    let mut child = sb
        .cmd(&["watch", sb.root.to_str().unwrap(), "--interval", "300ms", "--listen", "127.0.0.1:0"])
        .env("KEYWARD_TEST_WEBHOOK", &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr = loop {
        let line = lines.recv_timeout(Duration::from_secs(20)).expect("watch announces its address");
        log.push(line.clone());
        if let Some(rest) = line.split_once("serving http://") {
            break rest.1.split('/').next().unwrap().to_string();
        }
    };

    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(&addr, "/healthz").0 != 200 {
        assert!(Instant::now() < deadline, "healthz turns 200");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, metrics) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    let samples = parse_openmetrics(&metrics);
    assert_eq!(sample(&samples, "keyward_up"), Some(1.0));
    assert_eq!(http_get(&addr, "/nope").0, 404);
    // The report page, read-only, self-contained.
    let (status, page) = http_get(&addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<section id=\"access\"") && page.contains("Content-Security-Policy"), "{page}");
    assert!(bodies.recv_timeout(Duration::from_millis(500)).is_err(), "no alert without drift");

    foreign_change(&sb, "janet.leverling@northwind.example", "Hacker");
    let body = bodies.recv_timeout(Duration::from_secs(20)).expect("an alert for the new drift");
    assert!(body.contains("directory.user.janet.leverling") && !body.contains(WEBHOOK_SECRET), "{body}");
    // At least two more intervals pass without a second alert for the same item.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(bodies.try_recv().is_err(), "the same drift is alerted once");
    let samples = parse_openmetrics(&http_get(&addr, "/metrics").1);
    assert_eq!(sample(&samples, "keyward_drift_items{target=\"directory\",kind=\"user\"}"), Some(1.0));
    assert!(http_get(&addr, "/").1.contains("directory.user.janet.leverling"), "the page shows the drift");

    // Resolved, then back: alerted again.
    foreign_change(&sb, "janet.leverling@northwind.example", "Accounts Payable Clerk");
    let deadline = Instant::now() + Duration::from_secs(20);
    while parse_openmetrics(&http_get(&addr, "/metrics").1).iter().any(|(s, _)| s.starts_with("keyward_drift_items")) {
        assert!(Instant::now() < deadline, "the drift is seen resolved");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(bodies.try_recv().is_err(), "a resolution is not alerted");
    foreign_change(&sb, "janet.leverling@northwind.example", "Hacker");
    let again = bodies.recv_timeout(Duration::from_secs(20)).expect("the drift is alerted again after it came back");
    assert!(again.contains("directory.user.janet.leverling"), "{again}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "watch stops after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    // The reader thread ends at the end of stderr, which closes the channel.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) {
        log.push(line);
    }
    let log = log.join("\n");
    assert_eq!(status.code(), Some(0), "clean exit\n{log}");
    assert!(log.contains("stopped"), "{log}");
    assert_eq!(log.matches("guard-disabled").count(), 1, "the warning is printed once\n{log}");
    assert_eq!(stdout.matches("drift: update directory.user.janet.leverling").count(), 2, "{stdout}");
    assert!(!stdout.contains(WEBHOOK_SECRET) && !log.contains(WEBHOOK_SECRET));
}

/// A user merged after the last apply is pending, not drift; a change made to the live target
/// outside git is drift, and only that.
#[test]
fn drift_tells_merged_changes_not_applied_yet_from_changes_outside_git() {
    let sb = Sandbox::example("quickstart");
    sb.write(".gitignore", ".keyward/\n");
    git(&sb, &["init", "-q"]);
    git(&sb, &["config", "user.name", "Test"]);
    git(&sb, &["config", "user.email", "test@example.invalid"]);
    git(&sb, &["config", "commit.gpgsign", "false"]);
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "base"]);
    let first = sb.run(&["drift", "{dir}"]);
    first.expect(2);
    assert!(
        first.stdout.contains("compared with the configuration at HEAD (no completed apply is recorded yet"),
        "{}",
        first.stdout
    );
    sb.apply_ok();
    let applied = String::from_utf8(
        Command::new("git").args(["rev-parse", "HEAD"]).current_dir(&sb.root).output().unwrap().stdout,
    )
    .unwrap()
    .trim()
    .to_string();

    // Merged, not applied yet.
    sb.write(
        "users/new.yaml",
        "kind: User\nname: yoshi.tannamuri\nuserName: yoshi.tannamuri@northwind.example\ndisplayName: Yoshi Tannamuri\n\
         department: Sales\njobTitle: Sales Representative\n",
    );
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "yoshi joins sales"]);
    let metrics = sb.path("drift.prom");
    let metrics_arg = metrics.to_string_lossy().into_owned();
    let pending = sb.run(&["drift", "{dir}", "--metrics-file", &metrics_arg]);
    pending.expect(0);
    let out = pending.stdout.replace(&applied, "<applied>").replace(&applied[..12], "<applied>");
    assert!(out.contains("No drift.") && out.contains("Pending: 1 change"), "{out}");
    insta::assert_snapshot!("drift_pending_only", out);
    let samples = parse_openmetrics(&std::fs::read_to_string(&metrics).unwrap());
    assert!(!samples.iter().any(|(s, _)| s.starts_with("keyward_drift_items")), "{samples:?}");
    assert_eq!(sample(&samples, "keyward_pending_changes{action=\"create\"}"), Some(1.0));

    // Now someone changes the live directory outside git.
    foreign_change(&sb, "janet.leverling@northwind.example", "Hacker");
    let drift = sb.run(&["drift", "{dir}", "--metrics-file", &metrics_arg]);
    drift.expect(2);
    let out = drift.stdout.replace(&applied, "<applied>").replace(&applied[..12], "<applied>");
    insta::assert_snapshot!("drift_and_pending", out);
    let (found, still_pending) = out.split_once("Pending:").expect("a pending section");
    assert!(found.contains("directory.user.janet.leverling") && !found.contains("yoshi.tannamuri"), "{out}");
    assert!(
        still_pending.contains("create directory.user.yoshi.tannamuri") && !still_pending.contains("janet"),
        "{out}"
    );
    let json = sb.run(&["drift", "{dir}", "--format", "json"]);
    json.expect(2);
    assert_eq!(support::changes(&json.json()), vec![("directory.user.janet.leverling".into(), "update".into())]);
    let samples = parse_openmetrics(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(sample(&samples, "keyward_drift_items{target=\"directory\",kind=\"user\"}"), Some(1.0));
    assert_eq!(sample(&samples, "keyward_pending_changes{action=\"create\"}"), Some(1.0));
    assert_eq!(sample(&samples, "keyward_pending_changes{action=\"update\"}"), Some(0.0));

    // A commit git no longer has: said so, and HEAD is the comparison.
    let state = sb.read(".keyward/applied.json");
    sb.write(".keyward/applied.json", &state.replace(&applied, &"0".repeat(40)));
    let lost = sb.run(&["drift", "{dir}"]);
    lost.expect(2);
    assert!(
        lost.stdout.contains(
            "compared with the configuration at HEAD (the last applied commit 000000000000 cannot be read from git"
        ),
        "{}",
        lost.stdout
    );
    assert!(lost.stdout.contains("yoshi.tannamuri") && !lost.stdout.contains("Pending:"), "{}", lost.stdout);
}
