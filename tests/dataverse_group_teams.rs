//! Microsoft Entra group teams end to end, through the binary against the Graph and Dataverse
//! fakes: a role bound with `{groupTeam: {group, businessUnit}}` on Dataverse is membership of
//! the Entra group on the Graph target (the team takes its members from it); the plan says
//! which Dataverse security roles that membership gives; SoD rules see those roles for the
//! group's members; a team's listed roles are kept, and a change to them outside git is drift.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::RequestLog;
use keyward_fakes::dataverse::Dataverse;
use keyward_fakes::graph::Graph;

use harness::{D365_CLIENT, TENANT, dataverse, run, secret};
use support::Sandbox;

const GRAPH_CLIENT: &str = "c11b361e-d038-475f-b98e-78737063942d";
const GROUP: &str = "Key Accounts EMEA";
const SOFIA: &str = "sofia.lindqvist@northwind.example";
const DANIEL: &str = "daniel.osei@northwind.example";

/// A Graph tenant and a Dataverse environment sharing one Entra token service, with the
/// Entra group `GROUP` and its group team in the root business unit.
struct World {
    graph: Graph,
    dv: Dataverse,
    secret: String,
    group: String,
    team: String,
}

fn world() -> World {
    let secret = secret();
    let graph = Graph::new();
    graph.entra().register(GRAPH_CLIENT, Some(&secret));
    let dv = dataverse(graph.entra(), &secret);
    let group = graph.add_group(GROUP);
    let team = dv.add_group_team("Key Accounts (EMEA)", None, &group, 0);
    World { graph, dv, secret, group, team }
}

/// A configuration of two targets, `entra` (the Graph fake) and `d365` (the Dataverse fake),
/// two sales people, and the role `key-accounts` bound to the group team with `team`.
fn sandbox(graph: &str, dv: &str, team: &str) -> Sandbox {
    let sb = Sandbox::example("quickstart");
    for dir in ["users", "roles", "policies", "data", "service-accounts"] {
        std::fs::remove_dir_all(sb.path(dir)).unwrap();
    }
    sb.write(
        "keyward.yaml",
        &format!(
            "version: 1\ntargets:\n  entra:\n    provider: graph\n    tenant: {TENANT}\n    clientId: {GRAPH_CLIENT}\n    clientSecret: ${{env:ENTRA_CLIENT_SECRET}}\n    endpoint: {graph}\n    authority: {graph}\n  d365:\n    provider: dataverse\n    url: {dv}\n    authority: {dv}\n    tenant: {TENANT}\n    clientId: {D365_CLIENT}\n    clientSecret: ${{env:D365_CLIENT_SECRET}}\nownership:\n  scope: {{userNameSuffix: \"@northwind.example\"}}\naudit:\n  path: .keyward/audit.jsonl\n"
        ),
    );
    sb.write(
        "users/sales.yaml",
        &format!(
            "kind: User\nname: sofia.lindqvist\nuserName: {SOFIA}\ndisplayName: Sofia Lindqvist\nroles: [key-accounts]\n---\nkind: User\nname: daniel.osei\nuserName: {DANIEL}\ndisplayName: Daniel Osei\nroles: [sales-rep]\n"
        ),
    );
    sb.write(
        "roles/sales.yaml",
        &format!(
            "kind: Role\nname: sales-rep\ndescription: Sells\nbindings:\n  d365: {{securityRole: Salesperson}}\n---\nkind: Role\nname: sales-manager\ndescription: Sets quotas and approves discounts\nbindings:\n  d365: {{securityRole: Sales Manager}}\n---\nkind: Role\nname: key-accounts\ndescription: Serves the key accounts desk\nbindings:\n  d365: {{groupTeam: {team}}}\n"
        ),
    );
    sb
}

fn team(extra: &str) -> String {
    format!("{{group: {GROUP}, businessUnit: northwind{extra}}}")
}

#[test]
fn a_role_bound_to_a_group_team_is_membership_of_its_entra_group() {
    let w = world();
    w.dv.assign_team_role(&w.team, "Sales Manager");
    let (graph, log) = (w.graph.serve(), RequestLog::default());
    let dv = w.dv.serve(w.graph.entra(), &log, None);
    let sb = sandbox(&graph.url(), &dv.url(), &team(""));

    let plan = run(&sb, &w.secret, &["plan", "{dir}", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("group_team_plan", plan.stdout);
    run(&sb, &w.secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let sofia = w.graph.user(SOFIA).expect("Sofia's Entra account")["id"].as_str().unwrap().to_string();
    assert_eq!(w.graph.members(&w.group), vec![sofia.clone()]);
    // No membership is written to the team itself: Dataverse takes it from the group.
    assert_eq!(w.dv.team_members(&w.team), Vec::<String>::new());
    assert_eq!(log.count_status(400), 0, "Dataverse refused a request");
    run(&sb, &w.secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);

    // Dataverse brings Sofia into the team; Sofia leaves the desk and Daniel joins it.
    w.dv.set_group_team_members(&w.team, &[SOFIA]);
    sb.edit("users/sales.yaml", "roles: [key-accounts]", "roles: []");
    sb.edit("users/sales.yaml", "roles: [sales-rep]", "roles: [sales-rep, key-accounts]");
    let plan = run(&sb, &w.secret, &["plan", "{dir}", "--detailed-exitcode", "--format", "json"]);
    plan.expect(2);
    let changes = support::changes(&plan.json());
    assert!(changes.contains(&("entra.assignment.daniel.osei/key-accounts".into(), "assign".into())), "{changes:?}");
    assert!(
        changes.contains(&("entra.assignment.sofia.lindqvist/key-accounts".into(), "revoke".into())),
        "{changes:?}"
    );
    assert!(!changes.iter().any(|(a, _)| a.starts_with("d365.assignment.")), "{changes:?}");
    run(&sb, &w.secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let daniel = w.graph.user(DANIEL).unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(w.graph.members(&w.group), vec![daniel]);
    run(&sb, &w.secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}
