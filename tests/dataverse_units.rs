//! Business units on Dataverse, through the binary against the Dataverse fake: a user's unit is
//! declared (`targets: {d365: {businessUnit: NAME}}`, or the target's `businessUnit`), a move is
//! planned with the re-assignment of the user's security roles (a move removes them in
//! Dataverse), applied in that order, and a second plan is empty.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::RequestLog;
use keyward_fakes::entra::Entra;

use harness::{dataverse, enterprise, run, secret};

const SOFIA: &str = "sofia.lindqvist@northwind.example";

#[test]
fn a_user_moved_to_another_business_unit_gets_her_roles_back_as_its_copies() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let retail = dv.create_business_unit("Retail", &dv.root_business_unit());
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(dv.roles_of(SOFIA), vec!["Salesperson"]);
    assert_ne!(dv.user_business_unit(SOFIA).as_deref(), Some(retail.as_str()));

    sb.edit(
        "users/sales.yaml",
        "employeeId: \"E1019\"\n",
        "employeeId: \"E1019\"\ntargets: {d365: {businessUnit: Retail}}\n",
    );
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("business_unit_move_plan", plan.stdout);

    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);
    assert_eq!(dv.user_business_unit(SOFIA).as_deref(), Some(retail.as_str()));
    assert_eq!(dv.roles_of(SOFIA), vec!["Salesperson"], "her role was given back after the move");
    // The fake refuses a copy of another unit's role (0x80040217): the one she holds is Retail's.
    assert!(dv.role_in("Salesperson", &retail).is_some());
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
}

#[test]
fn the_targets_business_unit_places_new_and_existing_users() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let sales = dv.create_business_unit("Sales", &dv.root_business_unit());
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.edit(
        "keyward.yaml",
        "    clientSecret: ${env:D365_CLIENT_SECRET}\n",
        "    clientSecret: ${env:D365_CLIENT_SECRET}\n    businessUnit: Sales\n",
    );
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    for p in ["robert.king@northwind.example", SOFIA] {
        assert_eq!(dv.user_business_unit(p).as_deref(), Some(sales.as_str()), "{p}");
    }
    assert_eq!(dv.roles_of("robert.king@northwind.example"), vec!["Sales Manager"]);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_business_unit_the_environment_lacks_is_a_plan_error() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.edit(
        "users/sales.yaml",
        "employeeId: \"E1019\"\n",
        "employeeId: \"E1019\"\ntargets: {d365: {businessUnit: Nowhere}}\n",
    );
    let r = run(&sb, &secret, &["plan", "{dir}"]);
    r.expect(1);
    assert!(
        r.stderr.contains("user `sofia.lindqvist` belongs in business unit `Nowhere`, which does not exist there"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_business_unit_is_refused_where_the_target_has_none() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.edit(
        "users/sales.yaml",
        "employeeId: \"E1019\"\n",
        "employeeId: \"E1019\"\ntargets: {entra: {businessUnit: Retail}}\n",
    );
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("target `entra` (provider `file`) has no business units"), "{}", r.stderr);
}

#[test]
fn a_misspelt_target_setting_is_named_at_its_line() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.edit(
        "users/sales.yaml",
        "employeeId: \"E1019\"\n",
        "employeeId: \"E1019\"\ntargets: {d365: {businesUnit: Retail}}\n",
    );
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("unknown field `businesUnit`, expected `businessUnit`"), "{}", r.stderr);
}
