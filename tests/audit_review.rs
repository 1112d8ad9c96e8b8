//! `keyward audit review`: the monthly access review over the quick start's file directory, with
//! an injected clock.

mod support;

use serde_json::json;
use support::{Sandbox, find_user};

/// The quick start applied, then: a sign-in history, and a live credential of payments-bot.
fn reviewed_sandbox() -> Sandbox {
    let mut s = Sandbox::example("quickstart");
    s.apply_ok();
    let mut dir = s.directory();
    find_user(&mut dir, "nancy.davolio@northwind.example")["lastSignIn"] = json!("2026-01-15T09:00:00Z");
    find_user(&mut dir, "sofia.lindqvist@northwind.example")["lastSignIn"] = json!("2027-06-01T09:00:00Z");
    let sa = dir["serviceAccounts"].as_array_mut().unwrap().iter_mut().find(|a| a["name"] == "payments-bot").unwrap();
    sa["credentials"] = json!([
        {"id": "c-1", "name": "bank-api-cert@2027-03-20", "type": "certificate", "start": "2027-03-20T00:00:00Z", "end": "2027-06-18T00:00:00Z"},
        {"id": "c-2", "name": "legacy", "type": "secret", "start": "2025-01-01T00:00:00Z", "end": "2027-12-31T00:00:00Z"}
    ]);
    s.set_directory(&dir);
    // nancy.davolio's finance-admin and her SoD exception both end 2027-06-30; it-admin grants 2027-03-31.
    s.now = "2027-06-10T12:00:00Z".into();
    s
}

#[test]
fn review_reports_every_section_as_json() {
    let s = reviewed_sandbox();
    let r = s.run(&["audit", "review", "{dir}", "--format", "json", "--last", "3"]);
    r.expect(0);
    let v = r.json();
    assert_eq!(v["within"], "30d");
    let items = v["items"].as_array().unwrap();
    let of = |section: &str| -> Vec<&serde_json::Value> { items.iter().filter(|i| i["section"] == section).collect() };

    let stale = of("stale-accounts");
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0]["subject"], "nancy.davolio");
    assert_eq!(stale[0]["target"], "directory");
    assert_eq!(stale[0]["date"], "2026-01-15");

    let subjects = |section: &str| -> Vec<(String, String)> {
        of(section)
            .iter()
            .map(|i| (i["subject"].as_str().unwrap().to_string(), i["status"].as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(
        subjects("expiring-assignments"),
        vec![
            ("michael.suyama/it-admin".to_string(), "expired".to_string()),
            ("steven.buchanan/it-admin".to_string(), "expired".to_string()),
            ("nancy.davolio/finance-admin".to_string(), "expiring".to_string()),
        ]
    );
    // Ends in 7.5 days, inside rotateBefore 14d; `legacy` ends after the window.
    assert_eq!(
        subjects("credentials"),
        vec![("payments-bot/bank-api-cert@2027-03-20".to_string(), "rotation-due".to_string())]
    );
    assert_eq!(
        subjects("sod-exceptions"),
        vec![("journal-entry-vs-posting/nancy.davolio".to_string(), "expiring".to_string())]
    );
    assert_eq!(of("audit-activity").len(), 3);
}

#[test]
fn review_window_and_formats() {
    let s = reviewed_sandbox();
    // A shorter window drops what ends later than it.
    let v = s.run(&["audit", "review", "{dir}", "--format", "json", "--within", "5d"]).json();
    let items = v["items"].as_array().unwrap();
    assert!(!items.iter().any(|i| i["section"] == "sod-exceptions"), "{items:?}");

    let r = s.run(&["audit", "review", "{dir}", "--format", "csv", "--since", "2000-01-01"]);
    r.expect(0);
    assert!(r.stdout.starts_with("section,status,subject,target,date,days,detail\n"), "{}", r.stdout);
    assert!(r.stdout.contains("\nstale-accounts,stale,nancy.davolio,directory,2026-01-15,"), "{}", r.stdout);

    let r = s.run(&["audit", "review", "{dir}", "--format", "markdown"]);
    r.expect(0);
    assert!(r.stdout.starts_with("# Access review, 2027-06-10 12:00 UTC"), "{}", r.stdout);
    assert!(r.stdout.contains("## Stale accounts (1)"), "{}", r.stdout);

    let r = s.run(&["audit", "review", "{dir}"]);
    r.expect(0);
    assert!(r.stdout.contains("Segregation-of-duties exceptions expiring (1)"), "{}", r.stdout);

    let r = s.run(&["audit", "review", "{dir}", "--within", "soon"]);
    r.expect(1); // a usage error, like every other error
    let r = s.run(&["audit", "review", "{dir}", "--target", "nope"]);
    r.expect(1);
}

#[test]
fn review_lists_privileged_access_without_required_authentication() {
    let s = reviewed_sandbox();
    s.edit("policies/authentication.yaml", "appliesTo: {privileged: true}", "appliesTo: {roles: [it-admin]}");
    let v = s.run(&["audit", "review", "{dir}", "--format", "json"]).json();
    let auth: Vec<_> = v["items"].as_array().unwrap().iter().filter(|i| i["section"] == "authentication").collect();
    assert!(
        auth.iter().any(|i| i["subject"] == "role.finance-admin"
            && i["detail"].as_str().unwrap().contains("auth.privileged-without-mfa")),
        "{auth:?}"
    );
}
