//! Dataverse owner teams as role bindings, through the binary against the Dataverse fake: a
//! role bound with `{team: NAME}` keeps the members of that existing owner team
//! (`teammembership_association`), a holder who leaves is removed, a second plan is empty, and
//! a team the environment lacks is a plan error naming it.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::RequestLog;
use keyward_fakes::entra::Entra;

use harness::{dataverse, enterprise, run, secret};
use support::Sandbox;

const SOFIA: &str = "sofia.lindqvist@northwind.example";
const DANIEL: &str = "daniel.osei@northwind.example";

/// Adds a role `key-accounts` bound to the owner team `team` on `d365`, held by Sofia.
fn bind_team(sb: &Sandbox, team: &str) {
    let roles = sb.read("roles/sales.yaml");
    sb.write(
        "roles/sales.yaml",
        &format!(
            "{roles}---\nkind: Role\nname: key-accounts\ndescription: Serves the key accounts desk\nbindings:\n  d365: {{team: {team}}}\n"
        ),
    );
    sb.edit(
        "users/sales.yaml",
        "employeeId: \"E1019\"\nroles: [sales-rep]\n",
        "employeeId: \"E1019\"\nroles: [sales-rep, key-accounts]\n",
    );
}

#[test]
fn a_role_bound_to_an_owner_team_keeps_its_members() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let team = dv.add_owner_team("Key Accounts", None);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(dv.team_members(&team), Vec::<String>::new());

    bind_team(&sb, "Key Accounts");
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("owner_team_member_add_plan", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);
    assert_eq!(dv.team_members(&team), vec![SOFIA]);
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);

    // Sofia leaves the desk and Daniel joins it.
    sb.edit("users/sales.yaml", "roles: [sales-rep, key-accounts]\n", "roles: [sales-rep]\n");
    sb.edit(
        "users/sales.yaml",
        "employeeId: \"E1022\"\nroles: [sales-rep]\n",
        "employeeId: \"E1022\"\nroles: [sales-rep, key-accounts]\n",
    );
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("owner_team_member_swap_plan", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);
    assert_eq!(dv.team_members(&team), vec![DANIEL]);
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
}

#[test]
fn an_owner_team_the_environment_lacks_is_a_plan_error() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    // A Microsoft Entra group team of that name is not an owner team.
    dv.add_group_team("Key Accounts", None, "1b0c3a43-5d0e-4c2e-9d7a-6f1f8b6f1c11", 0);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    bind_team(&sb, "Key Accounts");
    let r = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    r.expect(1);
    assert!(
        r.stderr.contains(
            "target `d365`: role `key-accounts` binds team Key Accounts, which does not exist there; keyward does not create team bindings"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn a_team_binding_is_refused_on_a_target_other_than_dataverse() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    bind_team(&sb, "Key Accounts");
    sb.edit("roles/sales.yaml", "  d365: {team: Key Accounts}\n", "  aws: {team: Key Accounts}\n");
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("target `aws` (provider `file`) has no team bindings"), "{}", r.stderr);
}

#[test]
fn a_member_added_to_the_team_outside_keyward_is_removed() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let team = dv.add_owner_team("Key Accounts", None);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    bind_team(&sb, "Key Accounts");
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(dv.team_members(&team), vec![SOFIA]);

    dv.add_team_member(&team, DANIEL);
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("owner_team_member_outside_keyward_plan", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);
    assert_eq!(dv.team_members(&team), vec![SOFIA]);
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
}
