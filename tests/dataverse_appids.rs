//! Application users whose client id comes from the app registration keyward keeps for the same
//! ServiceAccount on Microsoft Graph, through the binary against the Graph and Dataverse fakes:
//! the first plan creates the registration and says the application user waits for its client
//! id; the next creates the application user with the registration's appId; then nothing is
//! left to do. A declared applicationId that is not the registration's is refused at its YAML
//! line, a saved plan whose registration changed before apply is refused as stale, and a
//! registration whose client id is not a GUID is refused when it is read.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::RequestLog;
use keyward_fakes::dataverse::Dataverse;
use keyward_fakes::graph::Graph;

use harness::{D365_CLIENT, TENANT, dataverse, run, secret};
use support::Sandbox;

const GRAPH_CLIENT: &str = "c11b361e-d038-475f-b98e-78737063942d";
const OTHER_APP: &str = "6b29fc40-ca47-1067-b31d-00dd010662da";

/// A Graph tenant and a Dataverse environment sharing one Entra token service.
fn world() -> (Graph, Dataverse, String) {
    let secret = secret();
    let graph = Graph::new();
    graph.entra().register(GRAPH_CLIENT, Some(&secret));
    let dv = dataverse(graph.entra(), &secret);
    (graph, dv, secret)
}

/// `entra` (the Graph fake) and `d365` (the Dataverse fake); the service account `sales-sync`
/// with `d365` settings `settings`, holding `order-sync` (Salesperson on d365).
fn sandbox(graph: &str, dv: &str, settings: &str) -> Sandbox {
    let sb = Sandbox::example("quickstart");
    for dir in ["users", "roles", "policies", "data", "service-accounts"] {
        std::fs::remove_dir_all(sb.path(dir)).unwrap();
    }
    sb.write(
        "keyward.yaml",
        &format!(
            "version: 1\ntargets:\n  entra:\n    provider: graph\n    tenant: {TENANT}\n    clientId: {GRAPH_CLIENT}\n    clientSecret: ${{env:ENTRA_CLIENT_SECRET}}\n    endpoint: {graph}\n    authority: {graph}\n  d365:\n    provider: dataverse\n    url: {dv}\n    authority: {dv}\n    tenant: {TENANT}\n    clientId: {D365_CLIENT}\n    clientSecret: ${{env:D365_CLIENT_SECRET}}\n    users: with-roles\nownership:\n  scope: {{userNameSuffix: \"@northwind.example\"}}\naudit:\n  path: .keyward/audit.jsonl\nsecrets:\n  env: [ENTRA_CLIENT_SECRET, D365_CLIENT_SECRET]\n"
        ),
    );
    sb.write(
        "users/it.yaml",
        "kind: User\nname: grace.okafor\nuserName: grace.okafor@northwind.example\ndisplayName: Grace Okafor\n",
    );
    sb.write(
        "roles/integrations.yaml",
        "kind: Role\nname: order-sync\ndescription: Writes web shop orders into Dynamics 365 Sales\nbindings:\n  d365: {securityRole: Salesperson}\n",
    );
    write_account(&sb, settings);
    sb
}

fn write_account(sb: &Sandbox, settings: &str) {
    sb.write(
        "service-accounts/sales-sync.yaml",
        &format!(
            "kind: ServiceAccount\nname: sales-sync\nowner: grace.okafor\ndisplayName: Web shop order sync\ntargets:\n  d365: {settings}\nroles: [order-sync]\n"
        ),
    );
}

/// The client id of the registration keyward made for `sales-sync`.
fn registration(graph: &Graph) -> String {
    let apps = graph.applications();
    let app = apps
        .iter()
        .find(|a| a["tags"].as_array().is_some_and(|t| t.iter().any(|t| t.as_str() == Some("keyward:sales-sync"))))
        .unwrap_or_else(|| panic!("the registration of sales-sync: {apps:#?}"));
    app["appId"].as_str().unwrap().to_string()
}

#[test]
fn the_application_user_takes_the_client_id_of_the_registration_keyward_made_two_runs_converge() {
    let (graph, dv, secret) = world();
    let (g, log) = (graph.serve(), RequestLog::default());
    let server = dv.serve(graph.entra(), &log, None);
    let sb = sandbox(&g.url(), &server.url(), "{businessUnit: northwind}");

    // First run: the registration is made; the application user waits for its client id.
    let plan = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("appid_first_plan", plan.stdout);
    assert!(!plan.stdout.contains("d365.service-account.sales-sync"), "{}", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let app = registration(&graph);
    assert_eq!(dv.app_user_id(&app), None, "not in the run that makes the registration");

    // Second run: the application user, with the registration's client id, and its role.
    let plan = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("appid_second_plan", plan.stdout.replace(&app, "{appId}"));
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let id = dv.app_user_id(&app).expect("the application user was made with the registration's client id");
    assert_eq!(dv.roles_of_id(&id), vec!["Salesperson"]);
    assert_eq!(log.count_status(400), 0, "Dataverse refused a request");

    // Converged.
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    // `explain` finds the role held live, through the application user of the registration.
    let e = run(&sb, &secret, &["explain", "sales-sync", "{dir}", "--format", "json"]).json();
    let d365 = e["access"][0]["targets"].as_array().unwrap().iter().find(|t| t["target"] == "d365").cloned();
    assert_eq!(d365.expect("the d365 binding")["live"], "held");
    // Declaring the same id changes nothing.
    write_account(&sb, &format!("{{applicationId: {app}, businessUnit: northwind}}"));
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_declared_client_id_that_is_not_the_registrations_is_refused_at_its_line() {
    let (graph, dv, secret) = world();
    let (g, log) = (graph.serve(), RequestLog::default());
    let server = dv.serve(graph.entra(), &log, None);
    let sb = sandbox(&g.url(), &server.url(), "{businessUnit: northwind}");
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let app = registration(&graph);

    write_account(&sb, &format!("{{applicationId: {OTHER_APP}, businessUnit: northwind}}"));
    let plan = run(&sb, &secret, &["plan", "{dir}"]);
    plan.expect(1);
    assert!(plan.stderr.contains(OTHER_APP) && plan.stderr.contains(&app), "{}", plan.stderr);
    let dir = sb.path("").display().to_string();
    insta::assert_snapshot!(
        "appid_mismatch",
        plan.stderr.replace(dir.trim_end_matches('/'), "{dir}").replace(&app, "{appId}")
    );
    let r = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert_eq!(dv.app_user_id(OTHER_APP), None, "no application user for another application");
    assert_eq!(dv.app_user_id(&app), None);
}

#[test]
fn a_saved_plan_is_refused_when_the_registration_changed_before_apply() {
    let (graph, dv, secret) = world();
    let (g, log) = (graph.serve(), RequestLog::default());
    let server = dv.serve(graph.entra(), &log, None);
    let sb = sandbox(&g.url(), &server.url(), "{businessUnit: northwind}");
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let app = registration(&graph);

    let plan_file = sb.root.parent().unwrap().join("appid-plan.json");
    let plan_arg = plan_file.to_string_lossy().into_owned();
    run(&sb, &secret, &["plan", "{dir}", "--out", &plan_arg]).expect(0);
    let saved = std::fs::read_to_string(&plan_file).unwrap();
    assert!(saved.contains(&app), "the saved plan makes the application user of {app}");

    // The registration is made again by hand: another client id.
    let new = graph.replace_app_id(&app);
    let r = run(&sb, &secret, &["apply", &plan_arg, "--config", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("stale") && r.stderr.contains("d365.service-account.sales-sync"), "{}", r.stderr);
    assert_eq!(dv.app_user_id(&app), None, "no application user for the old client id");

    // A fresh plan takes the new one.
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert!(dv.app_user_id(&new).is_some());
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}

#[test]
fn validate_accepts_a_client_id_left_out_only_with_a_graph_target() {
    let (graph, dv, _) = world();
    let (g, log) = (graph.serve(), RequestLog::default());
    let server = dv.serve(graph.entra(), &log, None);
    let sb = sandbox(&g.url(), &server.url(), "{businessUnit: northwind}");
    sb.run(&["validate", "{dir}"]).expect(0);
    // Without a Graph target the account has no registration keyward keeps.
    let text = sb.read("keyward.yaml");
    sb.write("keyward.yaml", &text.replace("    provider: graph\n", "    provider: graph\n    users: with-roles\n"));
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    let dir = sb.path("").display().to_string();
    insta::assert_snapshot!("appid_missing_without_graph", r.stderr.replace(dir.trim_end_matches('/'), "{dir}"));
}

#[test]
fn a_registration_whose_client_id_is_not_a_guid_is_refused_when_read() {
    let (graph, dv, secret) = world();
    let (g, log) = (graph.serve(), RequestLog::default());
    let server = dv.serve(graph.entra(), &log, None);
    let sb = sandbox(&g.url(), &server.url(), "{businessUnit: northwind}");
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let app = registration(&graph);
    graph.set_app_id(&app, "../systemusers");
    let r = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(
        r.stderr.contains("the application of service account `sales-sync`")
            && r.stderr.contains("appId `../systemusers` is not a GUID"),
        "{}",
        r.stderr
    );
    assert_eq!(dv.app_user_id("../systemusers"), None);
    assert_eq!(dv.app_user_id(&app), None);
}
