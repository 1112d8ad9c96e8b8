//! Secret canaries: secrets made of unique strings generated at test time, run through every
//! command and output format at the most verbose log level, against targets that fail, so
//! errors are produced. No canary may appear in stdout, stderr, the saved plan, the audit log
//! or the metrics file.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stderr)]

mod support;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use support::{Run, Sandbox};

/// 32 random hex digits.
fn random_hex() -> String {
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A loopback port nothing listens on (bound, then released).
fn unused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Everything a run left behind, labelled, for the canary search.
struct Exhibits(Vec<(String, String)>);

impl Exhibits {
    fn run(&mut self, label: &str, r: &Run) {
        self.0.push((format!("{label}: stdout"), r.stdout.clone()));
        self.0.push((format!("{label}: stderr"), r.stderr.clone()));
    }

    fn file(&mut self, label: &str, sb: &Sandbox, rel: &str) {
        if let Ok(bytes) = std::fs::read(sb.path(rel)) {
            self.0.push((format!("{label} ({rel})"), String::from_utf8_lossy(&bytes).into_owned()));
        }
    }

    /// Asserts no canary appears anywhere; returns how many texts were searched.
    #[track_caller]
    fn assert_clean(&self, canaries: &[&str]) -> usize {
        let mut leaks = Vec::new();
        for (label, text) in &self.0 {
            for c in canaries {
                if text.contains(c) {
                    leaks.push(format!("{label} contains {c}:\n{text}"));
                }
            }
        }
        assert!(leaks.is_empty(), "{} leak(s):\n{}", leaks.len(), leaks.join("\n----\n"));
        self.0.len()
    }
}

const VERBOSE: [&str; 4] = ["--log-level", "trace", "--log-format", "json"];

fn args<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    VERBOSE.iter().copied().chain(rest.iter().copied()).collect()
}

#[test]
fn secrets_from_env_and_files_appear_in_no_output_file_or_log() {
    let sb = Sandbox::example("quickstart");
    let hex = random_hex();
    let token = format!("canary-token-{hex}");
    let hook_password = format!("canary-hookpw-{hex}");
    let hook_path = format!("canary-hookpath-{hex}");
    let hook_query = format!("canary-hookquery-{hex}");
    let canaries = [token.as_str(), &hook_password, &hook_path, &hook_query, &hex];

    let (scim_port, hook_port) = (unused_port(), unused_port());
    // The webhook URL lives in a file outside the configuration folder.
    let secrets = tempfile::tempdir().unwrap();
    let hook_file = secrets.path().join("webhook.url");
    std::fs::write(
        &hook_file,
        format!("http://alerts:{hook_password}@127.0.0.1:{hook_port}/hook/{hook_path}?key={hook_query}\n"),
    )
    .unwrap();
    sb.edit(
        "keyward.yaml",
        "    path: .keyward/directory.json   # a local JSON file that stands in for a live directory\n",
        &format!(
            "    path: .keyward/directory.json\n  idp:\n    provider: scim\n    url: http://127.0.0.1:{scim_port}/scim/v2\n    token: ${{env:KW_CANARY_SCIM_TOKEN}}\n"
        ),
    );
    sb.write(
        "keyward.yaml",
        &format!("{}notify:\n  webhook: ${{file:{}}}\n", sb.read("keyward.yaml"), hook_file.display()),
    );
    // The failing targets fail at once: waiting in backoff would only slow the test.
    // A change URL with a password in it is not recorded (nor shown in the report).
    let change_url = format!("https://alerts:{hook_password}@tickets.example/CHG-1");
    let env = [
        ("KW_CANARY_SCIM_TOKEN", token.as_str()),
        ("KEYWARD_HTTP_RETRIES", "0"),
        ("KEYWARD_CHANGE_URL", change_url.as_str()),
    ];
    let mut ex = Exhibits(Vec::new());
    let run = |ex: &mut Exhibits, label: &str, a: &[&str]| {
        let r = sb.run_with_env(&args(a), &env);
        ex.run(label, &r);
        r
    };

    // validate, every format: no credentials needed, so it passes.
    for f in ["text", "json", "sarif"] {
        run(&mut ex, &format!("validate --format {f}"), &["validate", "{dir}", "--format", f]);
    }
    // plan against both targets: the scim target refuses the connection, an error.
    for f in ["text", "json", "markdown", "sarif"] {
        let r = run(&mut ex, &format!("plan --format {f}"), &["plan", "{dir}", "--format", f]);
        assert_eq!(r.code, 1, "plan with an unreachable scim target fails\n{}", r.stderr);
    }
    // plan of the file target alone, saved.
    for f in ["text", "json", "markdown", "sarif"] {
        run(
            &mut ex,
            &format!("plan --target directory --format {f}"),
            &["plan", "{dir}", "--target", "directory", "--format", f],
        );
    }
    let plan_file = sb.path("plan.json");
    let plan_file = plan_file.to_str().unwrap();
    run(&mut ex, "plan --out", &["plan", "{dir}", "--target", "directory", "--out", plan_file]).expect(0);
    ex.file("saved plan", &sb, "plan.json");

    // apply: fresh to both targets (fails on scim), then the saved plan (succeeds).
    let r = run(&mut ex, "apply --auto-approve", &["apply", "{dir}", "--auto-approve"]);
    assert_ne!(r.code, 0, "apply to an unreachable scim target fails");
    run(&mut ex, "apply --target directory", &["apply", "{dir}", "--target", "directory", "--auto-approve"]);
    run(&mut ex, "apply PLANFILE", &["apply", plan_file, "--config", "{dir}", "--auto-approve"]);

    // drift with notification (the webhook refuses the connection) and metrics.
    let metrics = sb.path("keyward.prom");
    let metrics = metrics.to_str().unwrap();
    let r = run(&mut ex, "drift --notify", &["drift", "{dir}", "--notify", "--metrics-file", metrics]);
    assert_eq!(r.code, 1, "drift with an unreachable scim target fails\n{}", r.stderr);
    for f in ["text", "json", "markdown"] {
        run(
            &mut ex,
            &format!("drift --target directory --format {f}"),
            &["drift", "{dir}", "--target", "directory", "--notify", "--format", f, "--metrics-file", metrics],
        );
    }
    ex.file("metrics", &sb, "keyward.prom");

    // the audit log and its commands.
    run(&mut ex, "audit show", &["audit", "show", "{dir}"]);
    run(&mut ex, "audit show --format json", &["audit", "show", "{dir}", "--format", "json"]);
    run(&mut ex, "audit verify", &["audit", "verify", "{dir}"]);
    run(&mut ex, "audit review", &["audit", "review", "{dir}", "--format", "json"]);
    ex.file("audit log", &sb, ".keyward/audit.jsonl");
    assert!(sb.path(".keyward/audit.jsonl").exists(), "the saved plan's apply wrote an audit log");

    // The auditors' report (the scim target cannot be read: a warning) and explain.
    let report = sb.path("report.html");
    let r = run(&mut ex, "report", &["report", "{dir}", "--out", report.to_str().unwrap()]);
    assert_eq!(r.code, 0, "the report is written without the unreachable target\n{}", r.stderr);
    ex.file("report", &sb, "report.html");
    run(
        &mut ex,
        "report --target directory --format json",
        &["report", "{dir}", "--target", "directory", "--format", "json"],
    );
    for f in ["text", "markdown", "json"] {
        run(
            &mut ex,
            &format!("explain --format {f}"),
            &["explain", "nancy.davolio", "{dir}", "--target", "directory", "--format", f],
        );
    }

    let searched = ex.assert_clean(&canaries);
    eprintln!("secret canaries: {} canaries, {searched} outputs and files searched, 0 leaks", canaries.len());
}

#[test]
fn a_literal_secret_in_yaml_is_reported_without_printing_it() {
    let sb = Sandbox::example("quickstart");
    // A well-known token shape (its prefix may be shown, never the rest), and high-entropy
    // values of secret-named keys in a description and a comment.
    let github_tail = format!("{}AbCd", random_hex());
    let github = format!("ghp_{github_tail}");
    let in_description = format!("Zq7-{}-x9P", random_hex());
    let in_comment = format!("Wk3_{}_m8R", random_hex());
    sb.write(
        "service-accounts/legacy.yaml",
        &format!(
            "kind: ServiceAccount\nname: legacy-import\ndisplayName: Legacy import\nowner: laura.callahan\n\
             description: \"Nightly import; apiToken: {in_description}\"\n# password: {in_comment}\n# old key {github}\n"
        ),
    );
    let all = [github_tail.as_str(), &in_description, &in_comment];
    let mut validate = Exhibits(Vec::new());
    let mut findings = 0;
    for f in ["text", "json", "sarif"] {
        let r = sb.run(&args(&["validate", "{dir}", "--format", f]));
        assert_eq!(r.code, 3, "a plain-text secret is a deny finding\n{}\n{}", r.stdout, r.stderr);
        findings += r.stdout.matches("plaintext-secret").count() + r.stderr.matches("plaintext-secret").count();
        validate.run(&format!("validate --format {f}"), &r);
    }
    assert!(findings >= 3, "validate reports each literal secret");
    validate.assert_clean(&all);

    // The plan shows the description as the value it manages (the file itself holds it, and
    // the deny finding blocks apply); its findings, and everything else, show no secret.
    let mut plan = Exhibits(Vec::new());
    let mut finding_lines = Exhibits(Vec::new());
    for f in ["text", "json", "markdown", "sarif"] {
        let r = sb.run(&args(&["plan", "{dir}", "--format", f]));
        plan.run(&format!("plan --format {f}"), &r);
        for line in r.stdout.lines().chain(r.stderr.lines()) {
            if line.contains("plain-text secret") || line.contains("plaintext-secret") {
                finding_lines.0.push((format!("plan --format {f}: finding"), line.to_string()));
            }
        }
    }
    assert!(!finding_lines.0.is_empty(), "the plan reports the findings");
    plan.assert_clean(&[&github_tail, &in_comment]);
    finding_lines.assert_clean(&all);
}

/// A hostile or careless server on a loopback port: it answers every request with `status` and
/// a body that echoes the request line and the Authorization header back, as some services'
/// error messages do. Runs until the test process ends.
fn echoing_server(status: &'static str) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut echoed = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if echoed.is_empty() || lower.starts_with("authorization:") {
                    echoed.push(line.trim().to_string());
                }
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let detail = serde_json::to_string(&echoed.join(" | ")).unwrap();
            let body = format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"{}","detail":{detail}}}"#,
                &status[..3]
            );
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn secrets_echoed_back_by_a_server_appear_in_no_output() {
    for status in ["401 Unauthorized", "500 Internal Server Error"] {
        let sb = Sandbox::example("quickstart");
        let token = format!("canary-token-{}", random_hex());
        let hook_path = format!("canary-hookpath-{}", random_hex());
        let port = echoing_server(status);
        sb.edit(
            "keyward.yaml",
            "    path: .keyward/directory.json   # a local JSON file that stands in for a live directory\n",
            &format!(
                "    path: .keyward/directory.json\n  idp:\n    provider: scim\n    url: http://127.0.0.1:{port}/scim/v2\n    token: ${{env:KW_CANARY_SCIM_TOKEN}}\n"
            ),
        );
        sb.write("hook.url", &format!("http://127.0.0.1:{port}/hook/{hook_path}"));
        sb.write("keyward.yaml", &format!("{}notify:\n  webhook: ${{file:hook.url}}\n", sb.read("keyward.yaml")));
        let env = [("KW_CANARY_SCIM_TOKEN", token.as_str()), ("KEYWARD_HTTP_RETRIES", "0")];
        let mut ex = Exhibits(Vec::new());
        for (label, a) in [
            ("plan", vec!["plan", "{dir}"]),
            ("plan --format json", vec!["plan", "{dir}", "--format", "json"]),
            ("apply", vec!["apply", "{dir}", "--auto-approve"]),
            ("drift --notify", vec!["drift", "{dir}", "--notify", "--metrics-file", "{dir}/keyward.prom"]),
            ("import", vec!["import", "{dir}", "--target", "idp", "--out", "{dir}/imported"]),
        ] {
            let r = sb.run_with_env(&args(&a), &env);
            assert_ne!(r.code, 0, "{label} against a server answering {status} fails\n{}", r.stderr);
            ex.run(&format!("{status}: {label}"), &r);
        }
        ex.file("metrics", &sb, "keyward.prom");
        ex.file("audit log", &sb, ".keyward/audit.jsonl");
        ex.assert_clean(&[&token, &hook_path]);
    }
}
