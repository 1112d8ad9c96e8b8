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

    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
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
}
