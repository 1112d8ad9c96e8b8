//! What roles really contain, through the binary against the Dataverse and Finance & Operations
//! fakes: a pinned role needs its snapshot, `keyward import --contents` writes it and a second
//! plan is clean; a privilege or duty added to a security role outside git shows as drift of
//! the pinned role and, where an SodRule forbids it, as a `deny` finding naming the role and
//! the privilege or duty; a DataClassification naming a privilege flags a role that gains it.
//! Role contents are read only when the configuration uses them.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::RequestLog;
use keyward_fakes::dataverse::Depth;
use keyward_fakes::entra::Entra;

use harness::{dataverse, enterprise, fno, fno_role_id, run, secret};

/// The findings whose rule is one of `rules`: each from its rule line (unindented) to the next
/// unindented line.
fn findings(out: &str, rules: &[&str]) -> String {
    let mut shown = String::new();
    let mut inside = false;
    for line in out.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            inside = rules.contains(&line.trim());
        }
        if inside {
            shown.push_str(line.trim_end());
            shown.push('\n');
        }
    }
    shown
}

/// `text` on one line: the renderer wraps long messages.
fn flat(text: &str) -> String {
    text.lines().map(|l| l.trim_start().trim_start_matches('│').trim()).collect::<Vec<_>>().join(" ")
}

const LIVE_SOD: &str = "# yaml-language-server: $schema=../../../schemas/sod-rule.json
kind: SodRule
name: order-entry-vs-account-changes
first: {privileges: [prvWriteAccount]}
second: {duties: [sales-order-entry]}
severity: deny
description: Whoever enters sales orders must not change customer accounts
";

#[test]
fn a_privilege_added_to_a_pinned_dataverse_role_is_drift_and_a_conflict() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    for p in ["prvReadAccount", "prvWriteAccount", "prvReadSalary"] {
        dv.add_privilege(p);
    }
    dv.grant_privilege("Salesperson", "prvReadAccount", Depth::Local);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    // Nothing in the configuration needs role contents: not one request for them.
    let contents = |p: &str| p.contains("roleprivilegescollection") || p.ends_with("/privileges");
    assert_eq!(log.count("GET", contents), 0);

    sb.edit(
        "roles/sales.yaml",
        "  d365: {securityRole: Salesperson}\n",
        "  d365: {securityRole: Salesperson}\ncontents: pinned\n",
    );
    // Pinned without a snapshot: a clear error, and nothing planned.
    let r = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    r.expect(1);
    assert!(
        r.stderr.contains("role-contents/sales-rep.yaml: role `sales-rep` has `contents: pinned` but its snapshot is missing; write it with `keyward import")
            && r.stderr.contains("--target d365`"),
        "{}",
        r.stderr
    );

    let i = run(&sb, &secret, &["import", "{dir}", "--target", "d365", "--contents"]);
    i.expect(0);
    assert!(i.stdout.contains("role-contents/sales-rep.yaml (1 privilege on d365)"), "{}", i.stdout);
    insta::assert_snapshot!("dataverse_snapshot", sb.read("role-contents/sales-rep.yaml"));
    log.clear();
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
    // Two requests more than a plain read, whatever the number of roles.
    assert_eq!(log.count("GET", contents), 2);

    // An SodRule on a privilege: nobody holds it yet.
    sb.write("policies/live-sod.yaml", LIVE_SOD);
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);

    // Outside git: Salesperson gains prvWriteAccount, and its read widens.
    dv.grant_privilege("Salesperson", "prvWriteAccount", Depth::Global);
    dv.grant_privilege("Salesperson", "prvReadAccount", Depth::Global);
    let r = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    r.expect(3);
    let shown = findings(&r.stdout, &["contents.pinned-drift", "sod.conflict"]);
    let one_line = flat(&shown);
    assert!(one_line.contains("privilege `prvWriteAccount` added (global)"), "{}", r.stdout);
    assert!(one_line.contains("privilege `prvReadAccount` changed from local to global"), "{}", r.stdout);
    assert!(one_line.contains("`sales-rep` (privilege `prvWriteAccount` (global) on `d365`)"), "{}", r.stdout);
    insta::assert_snapshot!("dataverse_findings", shown);
    // drift reports it too (keyward cannot undo it), and exits 2.
    let d = run(&sb, &secret, &["drift", "{dir}", "--target", "d365"]);
    d.expect(2);
    let section = &d.stdout[d.stdout.find("Role contents changed outside git").unwrap_or(0)..];
    insta::assert_snapshot!("dataverse_drift", section);
    // With --notify, the alert names the pinned role (its address only).
    let (url, alerts) = support::webhook("/hook");
    let d = sb.run_with_env(
        &["drift", "{dir}", "--target", "d365", "--notify"],
        &[
            ("D365_CLIENT_SECRET", secret.as_str()),
            ("FNO_CLIENT_SECRET", secret.as_str()),
            ("KEYWARD_WEBHOOK_URL", url.as_str()),
        ],
    );
    d.expect(2);
    let alert = alerts.recv_timeout(std::time::Duration::from_secs(10)).expect("an alert");
    assert!(alert.contains("the contents of 1 pinned role in") && alert.contains("role.sales-rep"), "{alert}");
    assert!(!alert.contains("prvWriteAccount"), "the alert carries addresses only: {alert}");
    // Apply refuses past a deny.
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(3);

    // The change is accepted: the snapshot is written again; the conflict stays.
    run(&sb, &secret, &["import", "{dir}", "--target", "d365", "--contents"]).expect(0);
    assert!(sb.read("role-contents/sales-rep.yaml").contains("prvWriteAccount: global"));
    let r = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    r.expect(3);
    assert!(!r.stdout.contains("contents.pinned-drift"), "{}", r.stdout);
    assert!(r.stdout.contains("sod.conflict"), "{}", r.stdout);
}

#[test]
fn a_privilege_that_reads_classified_data_is_flagged_on_the_roles_that_may_not_read_it() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    dv.add_privilege("prvReadnw_salary");
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.write(
        "data/salaries.yaml",
        "# yaml-language-server: $schema=../../../schemas/data-classification.json
kind: DataClassification
name: salaries
level: confidential
assets:
  d365:
    privileges: [prvReadnw_salary]
readers: [sales-manager]
",
    );
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]).expect(0);
    dv.grant_privilege("Salesperson", "prvReadnw_salary", Depth::Basic);
    dv.grant_privilege("Sales Manager", "prvReadnw_salary", Depth::Global);
    let r = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    r.expect(3);
    let shown = findings(&r.stdout, &["data.live-privilege"]);
    assert!(
        flat(&shown).contains("role `sales-rep` holds privilege `prvReadnw_salary` (basic) on `d365`"),
        "{}",
        r.stdout
    );
    assert!(!shown.contains("role `sales-manager`"), "a reader may hold it: {shown}");
    insta::assert_snapshot!("classified_privilege_findings", shown);
}

#[test]
fn a_duty_added_to_a_pinned_fno_role_is_drift_and_a_conflict() {
    let (entra, secret) = (Entra::new(), secret());
    let (dv_log, fno_log) = (RequestLog::default(), RequestLog::default());
    let dv = dataverse(&entra, &secret);
    let f = fno(&entra, &secret);
    let clerk = fno_role_id("Accounts payable clerk");
    f.add_duty("VendInvoiceEnter", "Enter vendor invoices")
        .add_duty("VendPaymentRelease", "Release vendor payments")
        .add_privilege("VendInvoiceCreate", "Create vendor invoices")
        .add_privilege("VendPaymentPost", "Post vendor payments")
        .add_privilege_to_duty("VendInvoiceEnter", "VendInvoiceCreate")
        .add_privilege_to_duty("VendPaymentRelease", "VendPaymentPost")
        .add_duty_to_role(&clerk, "VendInvoiceEnter");
    let dv_server = dv.serve(&entra, &dv_log, None);
    let fno_server = f.serve(&entra, &fno_log, None);
    let sb = enterprise(&dv_server.url(), Some(&fno_server.url()));
    sb.edit(
        "roles/finance.yaml",
        "  finance: {securityRole: Accounts payable clerk}\n",
        "  finance: {securityRole: Accounts payable clerk}\ncontents: pinned\n",
    );
    sb.write(
        "policies/live-sod.yaml",
        "# yaml-language-server: $schema=../../../schemas/sod-rule.json
kind: SodRule
name: invoice-entry-vs-payment-release
first: {duties: [vendor-invoice-entry]}
second: {duties: [VendPaymentRelease]}
description: Whoever enters vendor invoices must not release their payment
",
    );
    run(&sb, &secret, &["import", "{dir}", "--target", "finance", "--contents"]).expect(0);
    insta::assert_snapshot!("fno_snapshot", sb.read("role-contents/ap-clerk.yaml"));
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    fno_log.clear();
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    // Two requests for the contents, whatever the number of roles.
    let contents = |p: &str| p.ends_with("/SecurityRoleDuties") || p.ends_with("/SecurityPrivileges");
    assert_eq!(fno_log.count("GET", contents), 2);
    assert_eq!(fno_log.count("GET", |p| p.ends_with("/SecurityDuties")), 0);

    // Outside git: the clerk role gains the payment release duty.
    f.add_duty_to_role(&clerk, "VendPaymentRelease");
    let r = run(&sb, &secret, &["plan", "{dir}", "--target", "finance"]);
    r.expect(3);
    let shown = findings(&r.stdout, &["contents.pinned-drift", "sod.conflict"]);
    let one_line = flat(&shown);
    assert!(one_line.contains("duty `VendPaymentRelease` added"), "{}", r.stdout);
    assert!(one_line.contains("privilege `VendPaymentPost` added (granted)"), "{}", r.stdout);
    assert!(one_line.contains("`ap-clerk` (vendor-invoice-entry)"), "{}", r.stdout);
    assert!(one_line.contains("`ap-clerk` (duty `VendPaymentRelease` on `finance`)"), "{}", r.stdout);
    insta::assert_snapshot!("fno_findings", shown);
}

#[test]
fn a_pinned_role_without_a_security_role_binding_is_a_validation_error() {
    let sb = enterprise("https://northwind.crm.dynamics.com", None);
    let pinned = "  d365: {securityRole: Salesperson}\ncontents: pinned\n";
    sb.edit("roles/sales.yaml", "  d365: {securityRole: Salesperson}\n", pinned);
    // sales-rep is pinned through its d365 binding: valid.
    sb.run(&["validate", "{dir}"]).expect(0);
    sb.edit("roles/sales.yaml", pinned, "contents: pinned\n");
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("is not valid: 1 error"), "{}", r.stderr);
    // The diagnostics, without the summary line that names the (temporary) folder.
    let diagnostics: Vec<&str> = r.stderr.lines().filter(|l| !l.contains("is not valid")).collect();
    insta::assert_snapshot!("pinned_without_security_role", diagnostics.join("\n"));
}

/// The access review and the evidence bundle see live role contents as plan does: a privilege
/// added to a security role outside git that an SodRule keeps apart from a duty the holder has
/// puts the holder in the review.
#[test]
fn the_access_review_lists_a_holder_whose_role_gained_a_forbidden_privilege() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    for p in ["prvReadAccount", "prvWriteAccount"] {
        dv.add_privilege(p);
    }
    dv.grant_privilege("Salesperson", "prvReadAccount", Depth::Local);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.write("policies/live-sod.yaml", LIVE_SOD);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let review = |format: &str| {
        let r = run(&sb, &secret, &["audit", "review", "{dir}", "--target", "d365", "--format", format]);
        r.expect(0);
        r.stdout
    };
    let conflicts = |json: &str| -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["items"].as_array().unwrap().iter().filter(|i| i["section"] == "sod-conflicts").cloned().collect()
    };
    assert_eq!(conflicts(&review("json")), Vec::<serde_json::Value>::new(), "nobody holds the privilege yet");
    assert!(!review("text").contains("segregation-of-duties rule keeps apart"), "an empty section is left out");

    // Outside git: Salesperson gains prvWriteAccount.
    dv.grant_privilege("Salesperson", "prvWriteAccount", Depth::Global);
    let items = conflicts(&review("json"));
    let subjects: Vec<&str> = items.iter().map(|i| i["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["user.daniel.osei", "user.mei.tanaka", "user.sofia.lindqvist"], "the sales reps");
    assert!(items.iter().all(|i| i["status"] == "deny"), "{items:#?}");
    let text = review("text");
    let start = text.find("Accounts holding what a segregation-of-duties rule keeps apart").expect(&text);
    let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
    insta::assert_snapshot!("review_live_sod_conflict", &text[start..end]);

    // The auditors' report sees it too.
    let r = run(&sb, &secret, &["report", "{dir}", "--target", "d365", "--format", "json"]);
    r.expect(0);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = report["sod"]["conflicts"].to_string();
    assert!(rows.contains("sofia.lindqvist") && rows.contains("prvWriteAccount"), "{rows}");
}
