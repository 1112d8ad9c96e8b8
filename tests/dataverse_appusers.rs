//! Application users, through the binary against the Dataverse and F&O fakes: a ServiceAccount
//! declaring the client id of its app registration (`targets: {T: {applicationId}}`) becomes a
//! Dataverse application user in its business unit with its security roles, or a Finance &
//! Operations user mapped to the application (`SysAADClients`) with its roles; a role change is
//! applied; an account git no longer holds is disabled; the plan notes what creating an account
//! means for licences.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::RequestLog;
use keyward_fakes::entra::Entra;

use harness::{dataverse, enterprise, fno, fno_role_id, run, secret};

const APP: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

fn sales_sync(targets: &str, roles: &str) -> String {
    format!(
        "kind: ServiceAccount\nname: sales-sync\nowner: grace.okafor\ndisplayName: Sales sync\ndescription: Copies orders from the web shop\ntargets: {targets}\nroles: [{roles}]\n"
    )
}

#[test]
fn a_service_account_becomes_an_application_user_in_its_unit_with_its_roles() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let retail = dv.create_business_unit("Retail", &dv.root_business_unit());
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    support::commit_all(&sb.root, "Northwind", "Laura Callahan", None);

    let targets = format!("{{d365: {{applicationId: {}, businessUnit: Retail}}}}", APP.to_uppercase());
    sb.write("service-accounts/sales-sync.yaml", &sales_sync(&targets, "sales-rep"));
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("application_user_plan", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);
    let id = dv.app_user_id(APP).expect("the application user was created");
    let row = dv.user(&format!("# {APP}")).expect("its row");
    assert_eq!(row["_businessunitid_value"], retail.as_str());
    assert_eq!(dv.roles_of_id(&id), vec!["Salesperson"]);
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
    // `explain` finds the role held live, through the application user.
    let e = run(&sb, &secret, &["explain", "sales-sync", "{dir}", "--format", "json"]).json();
    let d365 = e["access"][0]["targets"].as_array().unwrap().iter().find(|t| t["target"] == "d365").cloned();
    assert_eq!(d365.expect("the d365 binding")["live"], "held");

    // A role change: the old role is removed, the new one given.
    sb.write("service-accounts/sales-sync.yaml", &sales_sync(&targets, "sales-manager"));
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);
    assert_eq!(dv.roles_of_id(&id), vec!["Sales Manager"]);
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
    support::commit_all(&sb.root, "Sales sync", "Laura Callahan", None);
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);

    // Removed from git: disabled (Dataverse users are never deleted), its roles revoked.
    std::fs::remove_file(sb.path("service-accounts/sales-sync.yaml")).unwrap();
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]);
    plan.expect(2);
    assert!(plan.stdout.contains("the service account is no longer in the configuration"), "{}", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);
    let row = dv.user(&format!("# {APP}")).expect("kept, not deleted");
    assert_eq!(row["isdisabled"], true);
    assert!(dv.roles_of_id(&id).is_empty());
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
}

#[test]
fn application_users_keyward_does_not_know_are_left_alone() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let other = dv.add_app_user("aaaaaaaa-0000-0000-0000-0000000000a9", "bbbbbbbb-0000-0000-0000-0000000000b9", None);
    dv.associate_role("# aaaaaaaa-0000-0000-0000-0000000000a9", "Salesperson");
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(dv.roles_of_id(&other), vec!["Salesperson"]);
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_service_account_without_an_application_id_is_not_managed_and_says_why() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.write("service-accounts/sales-sync.yaml", &sales_sync("[d365]", "sales-rep"));
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    plan.expect(0);
    assert!(plan.stdout.contains("service account `sales-sync` is not managed on target `d365`"), "{}", plan.stdout);
    assert!(plan.stdout.contains("applicationId"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("service-account.sales-sync"), "{}", plan.stdout);
}

#[test]
fn an_application_id_is_checked_at_validate_time() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    sb.write("service-accounts/sales-sync.yaml", &sales_sync("{d365: {applicationId: not-a-guid}}", "sales-rep"));
    sb.write(
        "service-accounts/copy.yaml",
        &sales_sync(&format!("{{d365: {{applicationId: {APP}}}, entra: {{applicationId: {APP}}}}}"), "sales-rep")
            .replace("name: sales-sync", "name: copy-sync"),
    );
    sb.write(
        "service-accounts/twin.yaml",
        &sales_sync(&format!("{{d365: {{applicationId: {APP}}}}}"), "sales-rep")
            .replace("name: sales-sync", "name: twin-sync"),
    );
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    let dir = sb.path("").display().to_string();
    insta::assert_snapshot!("application_id_diagnostics", r.stderr.replace(dir.trim_end_matches('/'), "{dir}"));
}

#[test]
fn an_entra_application_becomes_a_finance_and_operations_user_with_its_roles() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let f = fno(&entra, &secret);
    f.set_role_license(&fno_role_id("Accounts payable clerk"), "Activity");
    f.set_role_license(&fno_role_id("Accountant"), "Finance");
    let dv_server = dv.serve(&entra, &log, None);
    let fno_server = f.serve(&entra, &log, None);
    let sb = enterprise(&dv_server.url(), Some(&fno_server.url()));
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);

    let bot = "kind: ServiceAccount\nname: invoice-capture\nowner: grace.okafor\ndisplayName: Invoice capture\ntargets: {finance: {applicationId: %APP%}}\nroles: [ap-clerk]\n";
    sb.write("service-accounts/invoice-capture.yaml", &bot.replace("%APP%", APP));
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "finance", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("fno_application_plan", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--target", "finance", "--auto-approve"]).expect(0);
    let (name, user) = f.aad_clients().get(APP).cloned().expect("the application is mapped");
    assert_eq!(name, "Invoice capture");
    assert_eq!(f.user_row(&user).expect("its user")["Enabled"], true);
    assert_eq!(f.roles_of_user(&user), vec!["Accounts payable clerk"]);
    run(&sb, &secret, &["plan", "{dir}", "--target", "finance", "--detailed-exitcode"]).expect(0);

    // A role change.
    sb.write(
        "service-accounts/invoice-capture.yaml",
        &bot.replace("%APP%", APP).replace("[ap-clerk]", "[gl-accountant]"),
    );
    run(&sb, &secret, &["apply", "{dir}", "--target", "finance", "--auto-approve"]).expect(0);
    assert_eq!(f.roles_of_user(&user), vec!["Accountant"]);
    run(&sb, &secret, &["plan", "{dir}", "--target", "finance", "--detailed-exitcode"]).expect(0);

    // Removed from git after an apply recorded it: the user is disabled, the mapping kept.
    support::commit_all(&sb.root, "Invoice capture", "Laura Callahan", None);
    run(&sb, &secret, &["apply", "{dir}", "--target", "finance", "--auto-approve"]).expect(0);
    std::fs::remove_file(sb.path("service-accounts/invoice-capture.yaml")).unwrap();
    run(&sb, &secret, &["apply", "{dir}", "--target", "finance", "--auto-approve"]).expect(0);
    assert_eq!(f.user_row(&user).expect("kept")["Enabled"], false);
    assert!(f.roles_of_user(&user).is_empty());
    assert!(f.aad_clients().contains_key(APP));
    run(&sb, &secret, &["plan", "{dir}", "--target", "finance", "--detailed-exitcode"]).expect(0);
}

#[test]
fn the_access_review_lists_users_whose_roles_need_a_licence_they_lack() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let sofia = "sofia.lindqvist@northwind.example";
    let robert = "robert.king@northwind.example";
    // Sofia uses Dataverse interactively without a licence; Robert has one.
    dv.set_user_field(sofia, "accessmode", serde_json::json!(0));
    dv.set_user_field(sofia, "islicensed", serde_json::json!(false));
    dv.set_user_field(robert, "accessmode", serde_json::json!(0));
    dv.set_user_field(robert, "islicensed", serde_json::json!(true));
    let v = run(&sb, &secret, &["audit", "review", "{dir}", "--format", "json"]).json();
    let listed: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["section"] == "licences")
        .map(|i| (i["subject"].as_str().unwrap().to_string(), i["detail"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        listed,
        vec![(
            "d365.user.sofia.lindqvist".to_string(),
            "holds security role `Salesperson` in access mode Read-Write, which needs a licence; the target records none for the account".to_string()
        )]
    );
    let text = run(&sb, &secret, &["audit", "review", "{dir}"]);
    assert!(text.stdout.contains("Accounts holding roles that need a licence they lack (1)"), "{}", text.stdout);

    // Enabling an account the target records no licence for says what that means.
    dv.set_user_field(sofia, "isdisabled", serde_json::json!(true));
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    assert!(
        plan.stdout.contains(
            "licence: the target records no licence for this account (access mode Read-Write): it gains no access until one is assigned"
        ),
        "{}",
        plan.stdout
    );
}

#[test]
fn an_application_user_made_elsewhere_is_re_homed_enabled_and_given_its_roles_again() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let retail = dv.create_business_unit("Retail", &dv.root_business_unit());
    // Made by hand in the root unit, disabled, with the role it should have.
    let id = dv.add_app_user(APP, "bbbbbbbb-0000-0000-0000-0000000000b1", None);
    let row = format!("# {APP}");
    dv.associate_role(&row, "Salesperson");
    dv.set_user_field(&row, "isdisabled", serde_json::json!(true));
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(dv.user(&row).unwrap()["isdisabled"], true, "not declared yet: left alone");

    let targets = format!("{{d365: {{applicationId: {APP}, businessUnit: Retail}}}}");
    sb.write("service-accounts/sales-sync.yaml", &sales_sync(&targets, "sales-rep"));
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("application_user_re_homed_plan", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);
    let row = dv.user(&row).unwrap();
    assert_eq!(row["_businessunitid_value"], retail.as_str());
    assert_eq!(row["isdisabled"], false);
    assert_eq!(dv.roles_of_id(&id), vec!["Salesperson"], "given back as Retail's copy after the move");
    run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
}

#[test]
fn creating_a_person_on_dataverse_notes_the_licence_it_needs() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    let v = run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--format", "json"]).json();
    let note = "licence: a person uses Dataverse with access mode Read-Write, which needs a licence assigned in Microsoft 365 (Dataverse records it in `islicensed`); keyward assigns no licences";
    let creates: Vec<&serde_json::Value> =
        v["changes"].as_array().unwrap().iter().filter(|c| c["action"] == "create").collect();
    assert!(!creates.is_empty());
    for c in creates {
        let noted = c["notes"].as_array().is_some_and(|n| n.iter().any(|x| x == note));
        // A person created disabled gets no access, so no licence note.
        assert_eq!(noted, c["after"]["active"] == true, "{c}");
    }
}

/// A business unit without a copy of one of an application user's security roles cannot hold
/// it: creating the application user there, or moving it there, is a plan error naming the
/// account, the unit and the role, and nothing is applied.
#[test]
fn an_application_user_in_a_unit_without_a_copy_of_its_role_is_a_plan_error() {
    let (entra, log, secret) = (Entra::new(), RequestLog::default(), secret());
    let dv = dataverse(&entra, &secret);
    // A unit made without copies of the root roles.
    dv.add_business_unit("Outlet", Some(&dv.root_business_unit()));
    let server = dv.serve(&entra, &log, None);
    let sb = enterprise(&server.url(), None);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let expected = "target `d365`: role `sales-rep` cannot be given to `sales-sync`: securityRole Salesperson does not exist in business unit `Outlet`";

    // Created there.
    let outlet = format!("{{d365: {{applicationId: {APP}, businessUnit: Outlet}}}}");
    sb.write("service-accounts/sales-sync.yaml", &sales_sync(&outlet, "sales-rep"));
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    plan.expect(1);
    assert!(plan.stderr.contains(expected), "{}", plan.stderr);
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(1);
    assert_eq!(dv.app_user_id(APP), None, "nothing was applied");

    // Created in the root unit, then moved there.
    sb.write(
        "service-accounts/sales-sync.yaml",
        &sales_sync(&format!("{{d365: {{applicationId: {APP}}}}}"), "sales-rep"),
    );
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(0);
    let id = dv.app_user_id(APP).expect("created");
    sb.write("service-accounts/sales-sync.yaml", &sales_sync(&outlet, "sales-rep"));
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    plan.expect(1);
    assert!(plan.stderr.contains(expected), "{}", plan.stderr);
    run(&sb, &secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(1);
    assert_eq!(dv.roles_of_id(&id), vec!["Salesperson"], "not moved, so the role is kept");

    // A person moved there: the same error, naming her.
    std::fs::remove_file(sb.path("service-accounts/sales-sync.yaml")).unwrap();
    sb.edit(
        "users/sales.yaml",
        "employeeId: \"E1019\"\n",
        "employeeId: \"E1019\"\ntargets: {d365: {businessUnit: Outlet}}\n",
    );
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "d365"]);
    plan.expect(1);
    assert!(
        plan.stderr.contains("cannot be given to `sofia.lindqvist@northwind.example`: securityRole Salesperson does not exist in business unit `Outlet`"),
        "{}",
        plan.stderr
    );
}
