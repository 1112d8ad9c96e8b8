//! Governance end to end through the `keyward` binary, on copies of the quick start in
//! temporary git repositories (made with the `git` command line) and its `file` target:
//! `approvals verify` with GitHub pull-request reviews, a certification campaign from opening
//! to the revocations it applies, time-boxed elevation and its expiry, and CODEOWNERS.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Run, Sandbox, changes, find_group, find_user};

fn git(sb: &Sandbox, args: &[&str]) -> String {
    git_as(sb, args, None)
}

/// Runs git in the sandbox, as `author` (`Name <email>`) when given.
fn git_as(sb: &Sandbox, args: &[&str], author: Option<(&str, &str)>) -> String {
    let mut c = Command::new("git");
    c.args(args).current_dir(&sb.root);
    if let Some((name, email)) = author {
        c.env("GIT_AUTHOR_NAME", name).env("GIT_AUTHOR_EMAIL", email);
    }
    let out = c.output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The quick start in a fresh repository, committed as `base`.
fn repository() -> Sandbox {
    let sb = Sandbox::example("quickstart");
    sb.write(".gitignore", ".keyward/\nreviews.json\n");
    git(&sb, &["init", "-q", "-b", "main"]);
    git(&sb, &["config", "user.name", "Test"]);
    git(&sb, &["config", "user.email", "test@example.invalid"]);
    git(&sb, &["config", "commit.gpgsign", "false"]);
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "base"]);
    sb
}

/// GitHub's reviews JSON: one review per (login, state, commit).
fn reviews(sb: &Sandbox, list: &[(&str, &str, &str)]) {
    let v: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, (login, state, commit))| {
            json!({
                "id": 1000 + i,
                "user": {"login": login, "id": 42, "type": "User"},
                "body": "",
                "state": state,
                "commit_id": commit,
                "submitted_at": format!("2026-11-28T10:{:02}:00Z", i),
            })
        })
        .collect();
    sb.write("reviews.json", &serde_json::to_string_pretty(&v).unwrap());
}

fn verify(sb: &Sandbox, extra: &[&str]) -> Run {
    let mut args = vec!["approvals", "verify", "{dir}", "--base", "main", "--reviews", "{dir}/reviews.json"];
    args.extend_from_slice(extra);
    sb.run(&args)
}

#[test]
fn approvals_verify_needs_an_owner_who_is_not_the_person_gaining_the_access() {
    let sb = repository();
    git(&sb, &["checkout", "-q", "-b", "grant"]);
    sb.edit(
        "users/finance.yaml",
        "roles: [gl-accountant]",
        "roles:\n  - gl-accountant\n  - {role: finance-admin, expires: 2027-01-31, reason: Year-end close}",
    );
    git(&sb, &["commit", "-q", "-a", "-m", "yusuf helps with the year-end close"]);
    let head = git(&sb, &["rev-parse", "HEAD"]);

    // Approved by the role's owner (laura, whose GitHub login is lcallahan).
    reviews(&sb, &[("ndavolio", "COMMENTED", &head), ("lcallahan", "APPROVED", &head)]);
    let ok = verify(&sb, &["--head", &head]);
    ok.expect(0);
    assert!(
        ok.stdout.contains("approved      gives finance-admin to user yusuf.demir until 2027-01-31"),
        "{}",
        ok.stdout
    );
    assert!(ok.stdout.contains("approved by laura.callahan"), "{}", ok.stdout);

    // Approved by someone who does not own the role: exit 3, on the line of the grant.
    reviews(&sb, &[("ndavolio", "APPROVED", &head), ("afuller", "APPROVED", &head)]);
    let other = verify(&sb, &[]);
    other.expect(3);
    insta::assert_snapshot!("approved_by_a_non_owner", other.stdout);
    let sarif: Value = serde_json::from_str(&verify(&sb, &["--format", "sarif"]).stdout).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "approval.missing-owner");
    assert_eq!(result["locations"][0]["physicalLocation"]["region"]["startLine"], 49);

    // The owner approved an earlier commit: with --head, that approval does not count.
    reviews(&sb, &[("lcallahan", "APPROVED", "0000000000000000000000000000000000000000")]);
    let stale = verify(&sb, &["--head", &head]);
    stale.expect(3);
    assert!(
        stale.stdout.contains("Not counted: lcallahan: approved commit 000000000000, not the head"),
        "{}",
        stale.stdout
    );
    // An approval withdrawn by a later "changes requested" does not count either.
    reviews(&sb, &[("lcallahan", "APPROVED", &head), ("lcallahan", "CHANGES_REQUESTED", &head)]);
    verify(&sb, &[]).expect(3);

    // The approvers given by name or login on the command line, as JSON.
    let named = sb.run(&[
        "approvals",
        "verify",
        "{dir}",
        "--base",
        "main",
        "--approved-by",
        "laura.callahan",
        "--format",
        "json",
    ]);
    named.expect(0);
    assert_eq!(named.json()["verdict"]["changes"][0]["status"], "approved");

    // The team's own Rego policy sees the approvers as input.approvals.
    sb.write(
        "policies/two-approvers.rego",
        r#"package keyward.two_approvers

deny contains msg if {
    some c in input.approvals.changes
    c.role == "finance-admin"
    count(input.approvals.approvers) < 2
    msg := sprintf("%s: finance-admin needs two approvers", [c.description])
}
"#,
    );
    let by = |who: &str| sb.run(&["approvals", "verify", "{dir}", "--base", "main", "--approved-by", who]);
    let one = by("lcallahan");
    one.expect(3);
    assert!(one.stdout.contains("rego.two_approvers"), "{}", one.stdout);
    by("lcallahan,afuller").expect(0);
}

#[test]
fn approvals_verify_refuses_self_approval() {
    let sb = repository();
    git(&sb, &["checkout", "-q", "-b", "self"]);
    // laura owns finance-admin, and gives it to herself.
    sb.edit(
        "users/finance.yaml",
        "employeeId: \"E1002\"\n",
        "employeeId: \"E1002\"\nroles: [{role: finance-admin, expires: 2027-01-31}]\n",
    );
    git(&sb, &["commit", "-q", "-a", "-m", "laura takes finance-admin"]);
    reviews(&sb, &[("lcallahan", "APPROVED", "x")]);
    let own = verify(&sb, &[]);
    own.expect(3);
    assert!(own.stdout.contains("SELF-APPROVED gives finance-admin to user laura.callahan"), "{}", own.stdout);
    assert!(own.stdout.contains("approval.self-approval"), "{}", own.stdout);
    // Nobody else owns the role, so the default owners (the security group) decide.
    let md = sb.run(&[
        "approvals",
        "verify",
        "{dir}",
        "--base",
        "main",
        "--approved-by",
        "lcallahan,sbuchanan",
        "--format",
        "markdown",
    ]);
    md.expect(0);
    assert!(
        md.stdout.contains("| approved | gives finance-admin to user laura.callahan until 2027-01-31 | laura.callahan, steven.buchanan | steven.buchanan |"),
        "{}",
        md.stdout
    );
}

/// Fills in a reviewer's decision on the line about `holder`, as a person would in an editor.
fn decide(sb: &Sandbox, file: &str, holder: &str, decision: &str, reason: Option<&str>) {
    let text = sb.read(file);
    let start = text.find(&format!("- user: {holder}\n")).unwrap_or_else(|| panic!("no line for {holder}:\n{text}"));
    let at = start + text[start..].find("  decision:").unwrap();
    let end = at + text[at..].find('\n').unwrap();
    let mut out = format!("{}  decision: {decision}{}", &text[..at], &text[end..]);
    if let Some(r) = reason {
        let at = start + out[start..].find("  reason:").unwrap();
        let end = at + out[at..].find('\n').unwrap();
        out = format!("{}  reason: {r}{}", &out[..at], &out[end..]);
    }
    sb.write(file, &out);
}

#[test]
fn a_campaign_is_opened_certified_by_two_reviewers_closed_and_its_revocations_applied() {
    let sb = repository();
    sb.apply_ok();
    // Give nancy a sign-in on the directory, for the evidence.
    let mut dir = sb.directory();
    find_user(&mut dir, "nancy.davolio@northwind.example")["lastSignIn"] = json!("2026-11-20T08:30:00Z");
    sb.set_directory(&dir);

    let opened = sb.run(&["certify", "open", "2026-q4", "{dir}", "--due", "2026-12-15"]);
    opened.expect(0);
    assert!(opened.stdout.contains("reviews/2026-q4/laura.callahan.yaml (1 lines)"), "{}", opened.stdout);
    let laura = sb.read("reviews/2026-q4/laura.callahan.yaml");
    assert!(laura.contains("lastSignIn:\n      directory: 2026-11-20"), "{laura}");
    assert!(laura.contains("granted:\n      commit: "), "{laura}");
    sb.run(&["validate", "{dir}"]).expect(0);
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "open campaign 2026-q4"]);
    sb.run(&["certify", "status", "2026-q4", "{dir}"]).expect(0);

    // Two reviewers decide, each in a commit of their own.
    decide(
        &sb,
        "reviews/2026-q4/laura.callahan.yaml",
        "nancy.davolio",
        "revoke",
        Some("The close moves to the new controller"),
    );
    git_as(
        &sb,
        &["commit", "-q", "-a", "-m", "laura certifies"],
        Some(("Laura Callahan", "laura.callahan@northwind.example")),
    );
    decide(&sb, "reviews/2026-q4/andrew.fuller.yaml", "steven.buchanan", "keep", None);
    decide(&sb, "reviews/2026-q4/andrew.fuller.yaml", "michael.suyama", "keep", None);
    git_as(
        &sb,
        &["commit", "-q", "-a", "-m", "andrew certifies"],
        Some(("Andrew Fuller", "andrew.fuller@northwind.example")),
    );
    let andrew_commit = git(&sb, &["rev-parse", "HEAD"]);
    // michael "certifies" his own access in steven's file: it does not count.
    decide(&sb, "reviews/2026-q4/steven.buchanan.yaml", "michael.suyama", "keep", None);
    git_as(&sb, &["commit", "-q", "-a", "-m", "michael"], Some(("Michael Suyama", "michael.suyama@northwind.example")));

    let status = sb.run(&["certify", "status", "2026-q4", "{dir}", "--format", "json"]);
    status.expect(0);
    assert_eq!((status.json()["decided"].clone(), status.json()["pending"].clone()), (json!(3), json!(0)));

    // Uncommitted decisions are refused: the evidence names commits.
    sb.write("reviews/2026-q4/scratch.yaml", "# notes\nkind: Campaign\n");
    sb.run(&["certify", "close", "2026-q4", "{dir}"]).expect(1);
    std::fs::remove_file(sb.path("reviews/2026-q4/scratch.yaml")).unwrap();

    let closed = sb.run(&["certify", "close", "2026-q4", "{dir}"]);
    closed.expect(0);
    assert!(closed.stdout.contains("1 revoked"), "{}", closed.stdout);
    assert!(!sb.read("users/finance.yaml").contains("finance-admin"));
    let evidence: Value = serde_json::from_str(&sb.read("reviews/2026-q4/evidence.json")).unwrap();
    let michael =
        evidence["assignments"].as_array().unwrap().iter().find(|a| a["holder"]["user"] == "michael.suyama").unwrap();
    assert_eq!(michael["outcome"], "kept");
    let by_andrew = michael["decisions"].as_array().unwrap().iter().find(|d| d["reviewer"] == "andrew.fuller").unwrap();
    assert_eq!(by_andrew["recorded"]["commit"], andrew_commit);
    assert_eq!(by_andrew["recorded"]["author"], "Andrew Fuller <andrew.fuller@northwind.example>");
    let by_self = michael["decisions"].as_array().unwrap().iter().find(|d| d["reviewer"] == "steven.buchanan").unwrap();
    assert_eq!(by_self["selfCertified"], true);
    let nancy =
        evidence["assignments"].as_array().unwrap().iter().find(|a| a["holder"]["user"] == "nancy.davolio").unwrap();
    assert_eq!(nancy["outcome"], "revoked");
    assert_eq!(nancy["decisions"][0]["reason"], "The close moves to the new controller");

    // The revocation is planned as a configuration change and applied.
    let plan = sb.plan_json();
    assert_eq!(
        changes(&plan),
        [("directory.assignment.nancy.davolio/finance-admin".to_string(), "revoke".to_string())]
    );
    // Applied with the approvals of the campaign's pull request, recorded on the change.
    sb.run(&["apply", "{dir}", "--auto-approve", "--approved-by", "afuller,lcallahan"]).expect(0);
    let log = sb.run(&["audit", "show", "{dir}", "--format", "json"]).json();
    let last = log.as_array().unwrap().last().unwrap();
    assert_eq!(last["address"], "directory.assignment.nancy.davolio/finance-admin");
    assert_eq!(last["approvedBy"], json!(["andrew.fuller", "laura.callahan"]));
    let mut dir = sb.directory();
    let nancy_id = find_user(&mut dir, "nancy.davolio@northwind.example")["id"].clone();
    assert!(!find_group(&mut dir, "finance-admins")["members"].as_array().unwrap().contains(&nancy_id));
    // Closed once.
    git(&sb, &["add", "-A"]);
    git(&sb, &["commit", "-q", "-m", "close campaign 2026-q4"]);
    // The report for auditors includes the evidence: who certified what, in which commit.
    let report = sb.run(&["report", "{dir}", "--offline", "--format", "json"]);
    report.expect(0);
    let cert = &report.json()["certifications"][0];
    assert!(cert.is_object(), "{}", report.stderr);
    assert_eq!((cert["campaign"].as_str(), cert["revoked"].as_u64()), (Some("2026-q4"), Some(1)));
    assert_eq!(cert["file"], "reviews/2026-q4/evidence.json");
    let revoked = cert["decisions"].as_array().unwrap().iter().find(|d| d["holder"] == "nancy.davolio").unwrap();
    assert_eq!(revoked["reviewer"], "laura.callahan");
    assert_eq!(revoked["author"], "Laura Callahan <laura.callahan@northwind.example>");
    let html = sb.run(&["report", "{dir}", "--offline"]);
    assert!(html.stdout.contains("Certification campaigns") && html.stdout.contains("own access: not counted"));
    let again = sb.run(&["certify", "close", "2026-q4", "{dir}"]);
    again.expect(1);
    assert!(again.stderr.contains("was closed at 2026-11-28T12:00:00Z"), "{}", again.stderr);
}

#[test]
fn an_elevation_is_granted_at_once_and_revoked_when_it_ends() {
    let mut sb = repository();
    sb.apply_ok();
    // Without an owner's approval, a privileged elevation is not applied (the change stays).
    let denied = sb.run(&[
        "elevate",
        "priya.raman",
        "it-admin",
        "{dir}",
        "--for",
        "2h",
        "--reason",
        "Incident 7: restore the mail relay",
        "--apply",
        "--auto-approve",
    ]);
    denied.expect(3);
    assert!(denied.stdout.contains("approval.missing-owner"), "{}", denied.stdout);
    assert!(denied.stderr.contains("the grant stays in users/it.yaml for a pull request"), "{}", denied.stderr);
    assert!(sb.read("users/it.yaml").contains("expires: 2026-11-28T14:00:00Z"));
    git(&sb, &["checkout", "--", "users/it.yaml"]);

    let granted = sb.run(&[
        "elevate",
        "priya.raman",
        "it-admin",
        "{dir}",
        "--for",
        "2h",
        "--reason",
        "Incident 7: restore the mail relay",
        "--ticket",
        "INC-7",
        "--apply",
        "--auto-approve",
        "--approved-by",
        "afuller",
    ]);
    granted.expect(0);
    assert!(granted.stdout.contains("+ directory.assignment.priya.raman/it-admin"), "{}", granted.stdout);
    let mut dir = sb.directory();
    let priya = find_user(&mut dir, "priya.raman@northwind.example")["id"].clone();
    assert!(find_group(&mut dir, "it-admins")["members"].as_array().unwrap().contains(&priya));
    let log = sb.run(&["audit", "show", "{dir}", "--format", "json"]);
    let records = log.json();
    let last = records.as_array().unwrap().last().unwrap();
    assert_eq!(last["address"], "directory.assignment.priya.raman/it-admin");
    assert_eq!(last["approvedBy"], json!(["andrew.fuller"]));
    assert_eq!(
        last["detail"],
        "elevated for 2h until 2026-11-28T14:00:00Z: Incident 7: restore the mail relay (INC-7)"
    );
    sb.run(&["audit", "verify", "{dir}"]).expect(0);

    // A second before it ends, nothing changes; at the second it ends, it is revoked.
    sb.now = "2026-11-28T13:59:59Z".into();
    assert!(changes(&sb.plan_json()).is_empty());
    sb.now = "2026-11-28T14:00:00Z".into();
    let plan = sb.plan_json();
    assert_eq!(changes(&plan), [("directory.assignment.priya.raman/it-admin".to_string(), "revoke".to_string())]);
    assert_eq!(plan["changes"][0]["reason"]["kind"], "expiry");
    assert_eq!(plan["changes"][0]["reason"]["message"], "the assignment expired on 2026-11-28T14:00:00Z");
    sb.apply_ok();
    let mut dir = sb.directory();
    assert!(!find_group(&mut dir, "it-admins")["members"].as_array().unwrap().contains(&priya));
}

#[test]
fn an_elevation_without_apply_is_a_pull_request_ready_change() {
    let sb = repository();
    let body = sb.path("pr.md");
    let out = sb.run(&[
        "elevate",
        "carlos.mendes",
        "purchasing-manager",
        "{dir}",
        "--for",
        "90m",
        "--reason",
        "Cover approvals while Margaret is away",
        "--pr-body",
        body.to_str().unwrap(),
    ]);
    out.expect(0);
    assert!(
        out.stdout.starts_with("Elevate carlos.mendes to purchasing-manager for 90m (until 2026-11-28T13:30:00Z)"),
        "{}",
        out.stdout
    );
    assert!(
        sb.read("users/operations.yaml").contains("{role: purchasing-manager, expires: 2026-11-28T13:30:00Z"),
        "{}",
        sb.read("users/operations.yaml")
    );
    assert!(std::fs::read_to_string(body).unwrap().contains("| reason | Cover approvals while Margaret is away |"));
    sb.run(&["validate", "{dir}"]).expect(0);
    // Longer than governance.elevation.maxDuration (8h): refused, nothing written.
    let long = sb.run(&["elevate", "carlos.mendes", "buyer", "{dir}", "--for", "9h", "--reason", "x"]);
    long.expect(1);
    assert!(long.stderr.contains("--for 9h is longer than governance.elevation.maxDuration (8h)"), "{}", long.stderr);
}

#[test]
fn codeowners_is_written_at_the_root_of_the_repository_and_checked() {
    let sb = repository();
    sb.run(&["codeowners", "{dir}"]).expect(0);
    let text = sb.read(".github/CODEOWNERS");
    assert!(text.contains("\n/roles/it.yaml @afuller @sbuchanan\n"), "{text}");
    assert!(text.contains("\n/.github/CODEOWNERS @northwind/security\n"), "{text}");
    sb.run(&["codeowners", "{dir}", "--check"]).expect(0);
    sb.edit("roles/it.yaml", "owners: [steven.buchanan, andrew.fuller]", "owners: [andrew.fuller]");
    let stale = sb.run(&["codeowners", "{dir}", "--check"]);
    stale.expect(2);
    assert!(stale.stdout.contains("differs from the owners of roles"), "{}", stale.stdout);
}

#[test]
fn an_eligible_assignment_gives_nothing_where_the_target_keeps_no_eligibility() {
    let sb = repository();
    sb.apply_ok();
    sb.edit(
        "users/it.yaml",
        "employeeId: \"E1021\"\n",
        "employeeId: \"E1021\"\nroles:\n  - {role: it-admin, eligible: true, expires: 2027-01-31, maxActivation: 2h, requires: {mfa: true}}\n",
    );
    sb.run(&["validate", "{dir}"]).expect(0);
    // The file provider keeps no eligibility: no membership, no change.
    assert!(changes(&sb.plan_json()).is_empty());
    // Made active, the same assignment is a membership.
    sb.edit(
        "users/it.yaml",
        "eligible: true, expires: 2027-01-31, maxActivation: 2h, requires: {mfa: true}",
        "expires: 2027-01-31",
    );
    assert_eq!(
        changes(&sb.plan_json()),
        [("directory.assignment.priya.raman/it-admin".to_string(), "assign".to_string())]
    );
}
