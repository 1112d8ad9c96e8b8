//! The trust boundaries between the people who write a configuration, the CI that plans it and
//! the machine it runs on (docs/security.md): a pull request never decides where credentials
//! go, secret references are confined, a saved plan is applied exactly as shown.
//!
//! The servers these tests point targets at are std `TcpListener`s on 127.0.0.1 that record
//! every request's `Authorization` header; the git repositories are made with the `git`
//! command line in a temporary folder.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::{Sandbox, find_user};

/// A server that answers every request with 404 and reports each request's first line and
/// `Authorization` header. Returns its base URL.
fn recorder() -> (String, mpsc::Receiver<(String, Option<String>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                continue;
            }
            let mut authorization = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(value.trim().to_string());
                }
            }
            let _ = tx.send((request_line.trim().to_string(), authorization));
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, rx)
}

fn git(sb: &Sandbox, args: &[&str]) {
    let out = Command::new("git").args(args).current_dir(&sb.root).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn git_init(sb: &Sandbox) {
    sb.write(".gitignore", ".keyward/\n");
    git(sb, &["init", "-q"]);
    git(sb, &["config", "user.name", "Test"]);
    git(sb, &["config", "user.email", "test@example.invalid"]);
    git(sb, &["config", "commit.gpgsign", "false"]);
}

/// A random value, made at test time, that stands for a secret of the CI runner.
fn random_secret() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const OKTA_AT_BASE: &str =
    "  okta:\n    provider: scim\n    url: https://okta.example.invalid/scim/v2\n    token: ${env:OKTA_SCIM_TOKEN}\n";

/// Issue 19 §1: a pull request that points a target at its own server, with a token read
/// from any variable of the runner, gets nothing sent there; a target it leaves alone is read
/// with the base's settings; every output format says which targets were not used.
#[test]
fn a_pull_request_that_retargets_a_connection_sends_no_credential_anywhere() {
    let sb = Sandbox::example("quickstart");
    git_init(&sb);
    sb.apply_ok();
    sb.edit(
        "keyward.yaml",
        "    path: .keyward/directory.json",
        &format!("    path: .keyward/directory.json\n{OKTA_AT_BASE}"),
    );
    // Even a secret the base allows is not sent where the pull request says.
    sb.edit("keyward.yaml", "audit:", "secrets:\n  env: [OKTA_SCIM_TOKEN, SOME_SECRET]\naudit:");
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "base: the directory and okta"]);

    // The pull request: okta now points at the attacker's server with the runner's secret,
    // and a new target does the same.
    let (url, requests) = recorder();
    sb.edit(
        "keyward.yaml",
        "    url: https://okta.example.invalid/scim/v2\n    token: ${env:OKTA_SCIM_TOKEN}\n",
        &format!(
            "    url: {url}/scim/v2\n    token: ${{env:SOME_SECRET}}\n  erp:\n    provider: scim\n    url: {url}/erp\n    token: ${{env:SOME_SECRET}}\n"
        ),
    );
    git(&sb, &["commit", "-q", "-a", "-m", "the pull request"]);
    // A change outside git on the directory, which only a read of it can see.
    let mut dir = sb.directory();
    find_user(&mut dir, "janet.leverling@northwind.example")["jobTitle"] = Value::from("Hacker");
    sb.set_directory(&dir);

    let secret = random_secret();
    let env = [("SOME_SECRET", secret.as_str()), ("OKTA_SCIM_TOKEN", "base-token-not-used")];
    let notice = |t: &str| {
        format!(
            "target `{t}`: connection settings changed in this pull request; they take effect after merge, and were not used"
        )
    };

    let text = sb.run_with_env(&["plan", "{dir}", "--base", "HEAD~1"], &env);
    text.expect(0);
    let json = sb.run_with_env(&["plan", "{dir}", "--base", "HEAD~1", "--format", "json"], &env);
    json.expect(0);
    let md = sb.run_with_env(&["plan", "{dir}", "--base", "HEAD~1", "--format", "markdown"], &env);
    md.expect(0);
    let sarif = sb.run_with_env(&["plan", "{dir}", "--base", "HEAD~1", "--format", "sarif"], &env);
    sarif.expect(0);
    std::thread::sleep(Duration::from_millis(200));
    let seen: Vec<_> = requests.try_iter().collect();
    assert!(seen.is_empty(), "the pull request's server was contacted: {seen:?}");

    for run in [&text, &json, &md, &sarif] {
        assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret));
    }
    // Text: the notices come first; the directory, unchanged, was read (its drift is there).
    assert!(
        text.stdout.starts_with(&format!("Note: {}\nNote: {}\n", notice("erp"), notice("okta"))),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("target `directory`"), "{}", text.stdout);
    let (_, drift) = text.stdout.split_once("Drift already present").expect("two sections");
    assert!(drift.contains("directory.user.janet.leverling"), "{}", text.stdout);
    // The offline targets are planned as if empty: every user would be created there.
    assert!(text.stdout.contains("+ okta.user.") && text.stdout.contains("+ erp.user."), "{}", text.stdout);

    let plan = json.json();
    let notices: Vec<(&str, &str, &str)> = plan["notices"]
        .as_array()
        .expect("notices")
        .iter()
        .map(|n| (n["code"].as_str().unwrap(), n["target"].as_str().unwrap(), n["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        notices,
        [
            ("connection-changed", "erp", notice("erp").as_str()),
            ("connection-changed", "okta", notice("okta").as_str())
        ]
    );

    let warning = md.stdout.find(&notice("okta")).expect("markdown notice");
    let summary = md.stdout.find("**Plan:").expect("summary");
    assert!(warning < summary, "the notice comes before the summary:\n{}", md.stdout);

    let log: Value = serde_json::from_str(&sarif.stdout).unwrap();
    let results: Vec<&Value> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ruleId"] == "plan.connection-changed")
        .collect();
    assert_eq!(results.len(), 2, "{}", sarif.stdout);
    for r in &results {
        assert_eq!(r["level"], "warning");
        let location = &r["locations"][0]["physicalLocation"];
        assert_eq!(location["artifactLocation"]["uri"], "keyward.yaml");
        assert!(location["region"]["startLine"].as_u64().unwrap() > 1);
    }
    let rules = log["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["id"] == "plan.connection-changed" && r["shortDescription"]["text"].is_string()));

    // Without --base (a local plan by whoever holds the secret), the configuration is taken
    // as written: the server is asked, with the token.
    let local = sb.run_with_env(&["plan", "{dir}", "--target", "okta"], &env);
    assert_ne!(local.code, 0, "the recorder answers 404");
    let seen: Vec<_> = requests.recv_timeout(Duration::from_secs(5)).into_iter().collect();
    assert_eq!(seen[0].1.as_deref(), Some(format!("Bearer {secret}").as_str()), "{seen:?}");
}

/// A target whose connection is the base's is read with the base's settings: the pull
/// request's own copy of them is never what connects.
#[test]
fn an_unchanged_target_is_read_with_the_base_connection() {
    let sb = Sandbox::example("quickstart");
    git_init(&sb);
    let (url, requests) = recorder();
    sb.edit(
        "keyward.yaml",
        "    path: .keyward/directory.json",
        &format!("    path: .keyward/directory.json\n  okta:\n    provider: scim\n    url: {url}/scim/v2\n    token: ${{env:BASE_TOKEN}}\n"),
    );
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "base"]);
    // The pull request changes only what the target reconciles, not how it connects.
    sb.edit("keyward.yaml", "    token: ${env:BASE_TOKEN}\n", "    token: ${env:BASE_TOKEN}\n    users: with-roles\n");
    git(&sb, &["commit", "-q", "-a", "-m", "the pull request"]);
    let token = random_secret();
    let run = sb.run_with_env(&["plan", "{dir}", "--base", "HEAD~1", "--target", "okta"], &[("BASE_TOKEN", &token)]);
    // The recorder answers 404, so the read fails; what matters is who was asked, with what.
    assert_eq!(run.code, 1, "{}", run.stderr);
    let (line, authorization) = requests.recv_timeout(Duration::from_secs(5)).expect("the base's target is read");
    assert!(line.contains("/scim/v2/"), "{line}");
    assert_eq!(authorization, Some(format!("Bearer {token}")));
    assert!(!run.stdout.contains("connection settings changed"), "{}", run.stdout);
}

/// The line (1-based) of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle in text") + 1
}

/// keyward.yaml's own `secrets:` list confines its references: a name or prefix listed, a
/// file below a listed directory; anything else is an error at its line.
#[test]
fn the_secret_allow_list_allows_what_it_lists_and_refuses_the_rest_at_its_line() {
    let sb = Sandbox::example("quickstart");
    let with = |token: &str, extra: &str| {
        sb.write(
            "keyward.yaml",
            &format!(
                "version: 1\ntargets:\n  directory:\n    provider: file\n    path: .keyward/directory.json\n  okta:\n    provider: scim\n    url: https://okta.example.invalid/scim/v2\n    token: {token}\n{extra}secrets:\n  env: [OKTA_SCIM_TOKEN, KEYWARD_*]\n  files: [/var/run/secrets/keyward]\n"
            ),
        );
    };
    for allowed in ["${env:OKTA_SCIM_TOKEN}", "${env:KEYWARD_OKTA}", "${file:/var/run/secrets/keyward/okta}"] {
        with(allowed, "");
        let run = sb.run(&["validate", "{dir}"]);
        run.expect(0);
        assert!(!run.stderr.contains("secret"), "{allowed}: {}", run.stderr);
    }
    for refused in [
        "${env:PROD_DB_PASSWORD}",
        "${env:KEYWARD}",
        "${file:/proc/self/environ}",
        "${file:/var/run/secrets/keyward/../../../../etc/shadow}",
        "${file:/var/run/secrets/keyward}",
        "${file:/var/run/secrets/keyward-other/x}",
    ] {
        with(refused, "");
        let run = sb.run(&["validate", "{dir}"]);
        run.expect(1);
        let line = line_of(&sb.read("keyward.yaml"), "token:");
        assert!(run.stderr.contains(&format!("keyward.yaml:{line}:")), "{refused}: {}", run.stderr);
        assert!(run.stderr.contains(&format!("secret reference {refused} is not allowed")), "{}", run.stderr);
    }
    // The webhook is confined too.
    with("${env:OKTA_SCIM_TOKEN}", "notify:\n  webhook: ${env:GITHUB_TOKEN}\n");
    let run = sb.run(&["validate", "{dir}"]);
    run.expect(1);
    let line = line_of(&sb.read("keyward.yaml"), "webhook:");
    assert!(run.stderr.contains(&format!("keyward.yaml:{line}:")), "{}", run.stderr);
    assert!(run.stderr.contains("${env:GITHUB_TOKEN}"), "{}", run.stderr);
}

/// Under `plan --base`, the base revision's list is the one that counts: a pull request that
/// widens it and uses the new name is refused; without a list at the base, only the
/// references the base already uses are allowed; without `--base`, a configuration without a
/// list is only warned about.
#[test]
fn a_pull_request_cannot_widen_the_secret_allow_list() {
    let sb = Sandbox::example("quickstart");
    git_init(&sb);
    sb.edit(
        "keyward.yaml",
        "    path: .keyward/directory.json",
        &format!("    path: .keyward/directory.json\n{OKTA_AT_BASE}"),
    );
    let no_list = sb.read("keyward.yaml");
    sb.edit("keyward.yaml", "audit:", "secrets:\n  env: [OKTA_SCIM_TOKEN]\naudit:");
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "base with a list"]);

    sb.edit("keyward.yaml", "env: [OKTA_SCIM_TOKEN]", "env: [OKTA_SCIM_TOKEN, PROD_DB_PASSWORD]");
    sb.edit("keyward.yaml", "${env:OKTA_SCIM_TOKEN}\n", "${env:PROD_DB_PASSWORD}\n");
    git(&sb, &["commit", "-q", "-a", "-m", "widen and use"]);
    let run = sb.run(&["plan", "{dir}", "--base", "HEAD~1"]);
    run.expect(1);
    let line = line_of(&sb.read("keyward.yaml"), "token:");
    assert!(run.stderr.contains(&format!("keyward.yaml:{line}:")), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("secret reference ${env:PROD_DB_PASSWORD} is not allowed by the base revision's `secrets:` list"),
        "{}",
        run.stderr
    );
    // The working tree's own list allows it: validate alone is content.
    sb.run(&["validate", "{dir}"]).expect(0);

    // A base without a list: the references it uses, and no other.
    sb.write("keyward.yaml", &no_list);
    git(&sb, &["commit", "-q", "-a", "-m", "base without a list"]);
    let undeclared = sb.run(&["validate", "{dir}"]);
    undeclared.expect(0);
    assert!(
        undeclared.stderr.contains("secrets-undeclared") || undeclared.stderr.contains("no `secrets:` list"),
        "{}",
        undeclared.stderr
    );
    sb.edit("keyward.yaml", "${env:OKTA_SCIM_TOKEN}\n", "${env:PROD_DB_PASSWORD}\n");
    let run = sb.run(&["plan", "{dir}", "--base", "HEAD"]);
    run.expect(1);
    assert!(run.stderr.contains("secret reference ${env:PROD_DB_PASSWORD} is new in this change"), "{}", run.stderr);
}

/// Issue 19 §2: a saved plan is applied exactly as shown. Every single-field edit is refused:
/// as damage when the digest was left alone, and, when the digest was recomputed too, by
/// comparison with a fresh plan, naming the change and the field. The untouched plan applies.
#[test]
fn every_single_field_edit_of_a_saved_plan_is_refused_and_the_untouched_plan_applies() {
    let sb = Sandbox::example("quickstart");
    sb.apply_ok();
    sb.edit("users/it.yaml", "jobTitle: Head of IT", "jobTitle: Chief Information Officer");
    sb.edit("users/sales.yaml", "jobTitle: Head of Sales", "jobTitle: Sales Director");
    let file = sb.root.parent().unwrap().join("saved.plan");
    let arg = file.to_string_lossy().into_owned();
    sb.run(&["plan", "{dir}", "--out", &arg]).expect(0);
    let original: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(original["changes"].as_array().unwrap().len(), 2, "{original:#}");
    let steven = original["changes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["address"].as_str().unwrap().contains("steven.buchanan"))
        .unwrap();

    type Edit = fn(&mut Value, usize);
    let edits: [(&str, Edit, &str); 8] = [
        (
            "operation",
            |p, i| p["changes"][i]["operation"]["set"]["jobTitle"] = Value::from("OPERATION-TAMPERED"),
            "operation differs",
        ),
        ("after", |p, i| p["changes"][i]["after"]["jobTitle"] = Value::from("Shown instead"), "after differs"),
        ("before", |p, i| p["changes"][i]["before"]["jobTitle"] = Value::from("Shown instead"), "before differs"),
        ("fingerprint", |p, i| p["changes"][i]["fingerprint"] = Value::from("absent"), "fingerprint differs"),
        ("action", |p, i| p["changes"][i]["action"] = Value::from("disable"), "a fresh plan has no such change"),
        (
            "address",
            |p, i| {
                let a = p["changes"][i]["address"].as_str().unwrap().replace("steven.buchanan", "andrew.fuller");
                p["changes"][i]["address"] = Value::from(a);
            },
            "a fresh plan has no such change",
        ),
        (
            "added change",
            |p, i| {
                let mut extra = p["changes"][i].clone();
                let a = extra["address"].as_str().unwrap().replace("steven.buchanan", "nancy.davolio");
                extra["address"] = Value::from(a);
                p["changes"].as_array_mut().unwrap().push(extra);
            },
            "a fresh plan has no such change",
        ),
        ("removed change", |p, i| drop(p["changes"].as_array_mut().unwrap().remove(i)), "the saved plan does not"),
    ];
    for (what, edit, reason) in edits {
        let mut edited = original.clone();
        edit(&mut edited, steven);
        // Left with its digest: damaged.
        std::fs::write(&file, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
        let run = sb.run(&["apply", &arg, "--config", "{dir}"]);
        run.expect(1);
        assert!(run.stderr.contains("was edited or damaged"), "{what}: {}", run.stderr);
        // With the digest recomputed: the comparison with a fresh plan names what differs.
        let plan: keyward::plan::Plan = serde_json::from_value(edited.clone()).unwrap();
        edited["digest"] = Value::from(plan.changes_digest());
        std::fs::write(&file, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
        let run = sb.run(&["apply", &arg, "--config", "{dir}"]);
        run.expect(1);
        assert!(run.stderr.contains("refusing the whole saved plan"), "{what}: {}", run.stderr);
        assert!(run.stderr.contains(reason), "{what}: {}", run.stderr);
    }
    // Nothing was written by any refused apply.
    let mut dir = sb.directory();
    assert_eq!(find_user(&mut dir, "steven.buchanan@northwind.example")["jobTitle"], "Head of IT");
    assert_eq!(find_user(&mut dir, "robert.king@northwind.example")["jobTitle"], "Head of Sales");

    // Signed plans: with KEYWARD_PLAN_KEY set, only a plan signed with that key applies.
    std::fs::write(&file, serde_json::to_string_pretty(&original).unwrap()).unwrap();
    let key = random_secret();
    let unsigned = sb.run_with_env(&["apply", &arg, "--config", "{dir}"], &[("KEYWARD_PLAN_KEY", &key)]);
    unsigned.expect(1);
    assert!(unsigned.stderr.contains("is not signed with KEYWARD_PLAN_KEY"), "{}", unsigned.stderr);
    sb.run_with_env(&["plan", "{dir}", "--out", &arg], &[("KEYWARD_PLAN_KEY", "another key")]).expect(0);
    let other = sb.run_with_env(&["apply", &arg, "--config", "{dir}"], &[("KEYWARD_PLAN_KEY", &key)]);
    other.expect(1);
    assert!(other.stderr.contains("is not signed with KEYWARD_PLAN_KEY"), "{}", other.stderr);
    sb.run_with_env(&["plan", "{dir}", "--out", &arg], &[("KEYWARD_PLAN_KEY", &key)]).expect(0);
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&key), "the key is not in the plan");

    // The untouched, signed plan applies, exactly.
    sb.run_with_env(&["apply", &arg, "--config", "{dir}"], &[("KEYWARD_PLAN_KEY", &key)]).expect(0);
    let mut dir = sb.directory();
    assert_eq!(find_user(&mut dir, "steven.buchanan@northwind.example")["jobTitle"], "Chief Information Officer");
    assert_eq!(find_user(&mut dir, "robert.king@northwind.example")["jobTitle"], "Sales Director");
}

/// `plan --base` reads a git submodule inside the configuration folder (a pack of roles kept
/// in its own repository) at the commit the base revision records for it; when that commit is
/// not available here, it fails naming the submodule and the commit and says how to get it.
#[test]
fn plan_base_reads_a_submodule_at_its_recorded_commit_or_says_how_to_get_it() {
    let sb = Sandbox::example("quickstart");
    // The pack: the finance roles, in a repository of their own.
    let pack = tempfile::tempdir().unwrap();
    let in_pack = |args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(pack.path()).output().expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    in_pack(&["init", "-q"]);
    in_pack(&["config", "user.name", "Test"]);
    in_pack(&["config", "user.email", "test@example.invalid"]);
    in_pack(&["config", "commit.gpgsign", "false"]);
    std::fs::write(pack.path().join("finance.yaml"), sb.read("roles/finance.yaml")).unwrap();
    in_pack(&["add", "-A"]);
    in_pack(&["commit", "-qm", "Finance roles"]);
    std::fs::remove_file(sb.path("roles/finance.yaml")).unwrap();

    git_init(&sb);
    let url = pack.path().to_str().unwrap();
    git(&sb, &["-c", "protocol.file.allow=always", "submodule", "add", "-q", url, "roles/pack"]);
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-qm", "Northwind access, finance roles from the pack"]);
    // The users' finance roles are defined only in the submodule: read at the base, they are
    // there.
    let r = sb.run(&["plan", "{dir}", "--base", "HEAD", "--format", "json"]);
    r.expect(0);
    let plan = r.json();
    assert!(
        plan["changes"].as_array().unwrap().iter().any(|c| c["address"] == "directory.role.ap-clerk"),
        "the pack's roles are planned: {plan:#}"
    );

    // A base recording a commit of the pack that this machine does not have.
    let absent = "0123456789abcdef0123456789abcdef01234567";
    git(&sb, &["update-index", "--cacheinfo", &format!("160000,{absent},roles/pack")]);
    git(&sb, &["commit", "-qm", "Newer finance roles"]);
    let r = sb.run(&["plan", "{dir}", "--base", "HEAD"]);
    r.expect(1);
    for said in [
        "the git submodule roles/pack is read at the commit the revision records",
        absent,
        "git submodule update --init",
    ] {
        assert!(r.stderr.contains(said), "{said}: {}", r.stderr);
    }
    // The base before it still reads.
    sb.run(&["plan", "{dir}", "--base", "HEAD~1"]).expect(0);
}
