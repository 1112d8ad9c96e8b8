//! The `dataverse` provider through the binary, against the in-repo Dataverse fake
//! (`keyward_fakes::dataverse`): the enterprise example plans, applies and converges; column
//! security membership follows role changes; a role missing in a user's business unit is a
//! plan error; reads are paged and writes batched; throttling is survived.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::entra::Entra;
use keyward_fakes::{RequestLog, Throttle};

use harness::{dataverse, enterprise, run, secret};

/// The sales team: the only people whose roles bind to d365 (besides the IT admins).
const D365_PEOPLE: [&str; 7] = [
    "daniel.osei@northwind.example",
    "emma.brennan@northwind.example",
    "mei.tanaka@northwind.example",
    "michael.suyama@northwind.example",
    "robert.king@northwind.example",
    "sofia.lindqvist@northwind.example",
    "steven.buchanan@northwind.example",
];

/// Plans, applies (a saved plan), converges; the access review shows Dataverse's own record of
/// the role assignments.
#[test]
fn enterprise_example_plans_applies_and_converges_on_dataverse() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);

    let r = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(2);
    assert!(r.stdout.contains("d365.user.robert.king"), "{}", r.stdout);
    assert!(r.stdout.contains("d365.assignment.robert.king/sales-manager"), "{}", r.stdout);
    assert!(r.stdout.contains("d365.field-profile.customer-credit"), "{}", r.stdout);
    assert!(r.stdout.contains("d365.field-profile.robert.king/customer-credit"), "{}", r.stdout);

    // A saved plan applies as it was reviewed (the profile's columns travel in its operations).
    let saved = sb.path("plan.json");
    let saved = saved.to_str().unwrap();
    run(&sb, &secret, &["plan", "{dir}", "--out", saved]).expect(0);
    run(&sb, &secret, &["apply", saved, "--config", "{dir}", "--auto-approve"]).expect(0);
    for p in D365_PEOPLE {
        assert!(dv.user(p).is_some(), "{p} was created on Dataverse");
    }
    assert!(dv.user("andrew.fuller@northwind.example").is_none(), "users: with-roles keeps others out");
    assert_eq!(dv.roles_of("robert.king@northwind.example"), vec!["Sales Manager"]);
    assert_eq!(dv.roles_of("steven.buchanan@northwind.example"), vec!["System Administrator"]);
    assert_eq!(
        dv.profile_members("customer-credit").unwrap(),
        vec!["emma.brennan@northwind.example", "robert.king@northwind.example"]
    );
    assert_eq!(dv.profile_columns("customer-credit"), vec!["account.creditlimit", "account.creditonhold"]);
    // The audit table recorded the role assignments (action 55).
    assert_eq!(dv.audits().iter().filter(|(a, _)| *a == 55).count(), D365_PEOPLE.len());

    // Converged: nothing more to do.
    let r = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(0);
    assert!(r.stdout.contains("No changes"), "{}", r.stdout);

    // The access review shows the role history of Dataverse's own audit table.
    let r = run(&sb, &secret, &["audit", "review", "{dir}", "--format", "json"]);
    r.expect(0);
    let items = r.json()["items"].as_array().unwrap().clone();
    let given: Vec<&serde_json::Value> = items.iter().filter(|i| i["status"] == "role-given").collect();
    assert_eq!(given.len(), D365_PEOPLE.len(), "{}", r.stdout);
    assert!(given.iter().any(|i| i["subject"] == "d365.user.robert.king" && i["target"] == "d365"), "{}", r.stdout);
}

/// Applies the example to a fresh environment and checks it converged.
fn converge(sb: &support::Sandbox, secret: &str) {
    run(sb, secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    run(sb, secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}

#[test]
fn column_security_membership_follows_role_changes_and_drift() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    converge(&sb, &secret);

    // Robert moves from sales manager to sales rep: he loses the credit columns everywhere
    // keyward enforces them, in the same plan as the role change.
    sb.edit(
        "users/sales.yaml",
        "roles: [sales-manager]\n---\nkind: User\nname: emma.brennan",
        "roles: [sales-rep]\n---\nkind: User\nname: emma.brennan",
    );
    let r = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(2);
    insta::assert_snapshot!("role_change_plan_by_person", r.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(dv.profile_members("customer-credit").unwrap(), vec!["emma.brennan@northwind.example"]);
    assert_eq!(dv.roles_of("robert.king@northwind.example"), vec!["Salesperson"]);

    // Someone adds a sales rep to the profile by hand, and a column loses its read permission:
    // both are planned back.
    dv.add_profile_member("customer-credit", "mei.tanaka@northwind.example");
    let r = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(2);
    assert!(r.stdout.contains("- d365.field-profile.mei.tanaka/customer-credit"), "{}", r.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(dv.profile_members("customer-credit").unwrap(), vec!["emma.brennan@northwind.example"]);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);

    // A new column in git is added to the existing profile.
    sb.edit(
        "data/classifications.yaml",
        "columns: [account.creditlimit, account.creditonhold]",
        "columns: [account.creditlimit, account.creditonhold, account.paymenttermscode]",
    );
    let r = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(2);
    assert!(r.stdout.contains("~ d365.field-profile.customer-credit"), "{}", r.stdout);
    converge(&sb, &secret);
    assert_eq!(
        dv.profile_columns("customer-credit"),
        vec!["account.creditlimit", "account.creditonhold", "account.paymenttermscode"]
    );
}

#[test]
fn a_role_missing_in_the_users_business_unit_is_a_plan_error() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    entra.register(harness::D365_CLIENT, Some(&secret));
    // Salesperson exists only in the root business unit; Sofia already works in Retail.
    let dv = keyward_fakes::dataverse::Dataverse::new("northwind");
    let root = dv.root_business_unit();
    let retail = dv.add_business_unit("Retail", Some(&root));
    for r in harness::DATAVERSE_ROLES {
        if r == "Salesperson" {
            dv.add_role(r, None);
        } else {
            dv.add_role_everywhere(r);
        }
    }
    dv.add_user("sofia.lindqvist@northwind.example", Some(&retail));
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);

    let r = run(&sb, &secret, &["plan", "{dir}"]);
    r.expect(1);
    insta::assert_snapshot!("role_missing_in_business_unit", r.stderr);
    // Nothing was written.
    assert_eq!(
        log.count("POST", |_| true) + log.count("PATCH", |_| true) + log.count("DELETE", |_| true),
        1,
        "only the token request"
    );
    // Once the role has a copy there, the same configuration applies.
    dv.add_role("Salesperson", Some(&retail));
    converge(&sb, &secret);
    assert_eq!(dv.roles_of("sofia.lindqvist@northwind.example"), vec!["Salesperson"]);
}

#[test]
fn reads_are_paged_and_writes_batched() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    dv.page_cap(3);
    dv.add_application_user("# keyward-app");
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);

    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    // Everything written went in $batch requests: the users and the profile, then the
    // permissions of the new profile, then the role and profile memberships.
    let api = |p: &str| p.starts_with(keyward_fakes::dataverse::API);
    assert_eq!(log.count("POST", |p| p.ends_with("/$batch")), 3);
    assert_eq!(log.count("POST", |p| api(p) && !p.ends_with("/$batch")), 0);
    assert_eq!(log.count("PATCH", api) + log.count("DELETE", api), 0);

    log.clear();
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    // 8 users (7 people and the application user) in pages of 3; 3 roles; 7
    // role pairs; 2 profiles; 2 permissions; 2 profile members.
    let gets = |set: &str| log.count("GET", |p| p == format!("{}{set}", keyward_fakes::dataverse::API));
    assert_eq!(gets("systemusers"), 3);
    assert_eq!(gets("roles"), 1);
    assert_eq!(gets("systemuserrolescollection"), 3);
    assert_eq!(gets("fieldsecurityprofiles"), 1);
    assert_eq!(gets("fieldpermissions"), 1);
    assert_eq!(gets("systemuserprofilescollection"), 1);
    assert_eq!(gets("businessunits"), 1);
    assert_eq!(gets("teams"), 1);
    assert_eq!(gets("teammembershipcollection"), 1);
    assert!(dv.user("# keyward-app").is_some(), "the application user is left alone");
}

#[test]
fn throttled_requests_are_retried_after_the_time_asked() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    // Two requests at once, then one a second: a read of nine collections is refused some.
    let throttle = Throttle::new(2.0, 2);
    let server = dv.serve(&entra, &log, Some(&throttle));
    let sb = enterprise(&server.url(), None);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(2);
    assert!(throttle.rejected() > 0);
    assert_eq!(log.count_status(429) as u64, throttle.rejected());
}

/// `n` users `rep-0000`... holding the role sales-rep, as one YAML file.
fn sales_reps(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "---\nkind: User\nname: rep-{i:04}\nuserName: rep-{i:04}@northwind.example\nfamilyName: Rep {i}\nroles: [sales-rep]\n"
            )
        })
        .collect()
}

/// Service protection counts the operations inside a `$batch`: those answered 429 are sent
/// again after their `Retry-After`, and only they.
#[test]
fn operations_throttled_inside_a_batch_are_sent_again_alone() {
    const PEOPLE: usize = 60;
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    // 20 operations at once, then 100 a second: most of the first batch is refused.
    let parts = Throttle::new(100.0, 20);
    dv.throttle_batch_parts(&parts);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.write("users/reps.yaml", &sales_reps(PEOPLE));

    let r = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    r.expect(0);
    assert!(parts.rejected() > 0, "the throttle refused nothing: the test proves nothing");
    // Every user exists once, with the role: nothing lost, nothing created twice.
    let users = dv.users();
    assert_eq!(users.iter().filter(|u| u.starts_with("rep-")).count(), PEOPLE, "{users:?}");
    let mut unique = users.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), users.len(), "a user was created twice: {users:?}");
    assert_eq!(dv.roles_of("rep-0059@northwind.example"), vec!["Salesperson"]);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}

#[test]
fn validation_keeps_column_security_to_dataverse_and_out_of_roles() {
    let sb = enterprise("https://northwind.crm4.dynamics.com", None);
    sb.edit("data/classifications.yaml", "assets:\n  d365:", "assets:\n  aws:\n    columns: [user.salary]\n  d365:");
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("columns-not-enforceable"), "{}", r.stderr);
    assert!(r.stderr.contains("target `aws` (provider `file`) has no column security"), "{}", r.stderr);

    let sb = enterprise("https://northwind.crm4.dynamics.com", None);
    sb.edit("roles/sales.yaml", "d365: {securityRole: Salesperson}", "d365: {fieldSecurityProfile: {name: x}}");
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("derived-binding"), "{}", r.stderr);
}

/// 1,200 new sales reps: writes go in $batch requests of at most 1,000 operations, reads in one
/// page per collection (Dataverse's 5,000-row pages), whatever the number of people.
#[test]
fn a_large_onboarding_takes_a_handful_of_requests() {
    const PEOPLE: usize = 1200;
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.write("users/reps.yaml", &sales_reps(PEOPLE));

    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert!(dv.user("rep-1199@northwind.example").is_some());
    assert_eq!(dv.roles_of("rep-0000@northwind.example"), vec!["Salesperson"]);
    // Round one: 1,207 users and the profile (2 batches); round two: the profile's 2
    // permissions (1); the 1,207 role and 2 profile memberships (2).
    assert_eq!(log.count("POST", |p| p.ends_with("/$batch")), 5);
    let api = |p: &str| p.starts_with(keyward_fakes::dataverse::API) && !p.ends_with("/$batch");
    assert_eq!(log.count("POST", api) + log.count("PATCH", api) + log.count("DELETE", api), 0);

    log.clear();
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    // Business units, roles, users, role pairs, profiles, permissions, profile members, teams,
    // team members, team roles.
    assert_eq!(log.count("GET", |p| p.starts_with(keyward_fakes::dataverse::API)), 10);
}

#[test]
fn refused_writes_show_the_dataverse_error_code() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    dv.deny_writes("systemusers");
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    let r = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("HTTP 403 Forbidden (code 0x80040220): PrivilegeDenied"), "{all}");
    // Their role assignments were skipped, not attempted; the directory was still written.
    assert_eq!(dv.audits().len(), 0);
    assert!(sb.read(".keyward/entra.json").contains("robert.king@northwind.example"));
}

#[test]
fn a_next_link_that_never_advances_is_an_error_not_a_loop() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    dv.page_cap(1).stuck_paging();
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    let r = run(&sb, &secret, &["plan", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("paging would never end"), "{}", r.stderr);
    assert!(log.count("GET", |_| true) < 10, "it stopped at once");
}
