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
            "version: 1\ntargets:\n  entra:\n    provider: graph\n    tenant: {TENANT}\n    clientId: {GRAPH_CLIENT}\n    clientSecret: ${{env:ENTRA_CLIENT_SECRET}}\n    endpoint: {graph}\n    authority: {graph}\n  d365:\n    provider: dataverse\n    url: {dv}\n    authority: {dv}\n    tenant: {TENANT}\n    clientId: {D365_CLIENT}\n    clientSecret: ${{env:D365_CLIENT_SECRET}}\nownership:\n  scope: {{userNameSuffix: \"@northwind.example\"}}\naudit:\n  path: .keyward/audit.jsonl\nsecrets:\n  env: [ENTRA_CLIENT_SECRET, D365_CLIENT_SECRET]\n"
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

#[test]
fn the_roles_a_group_team_lists_are_kept_and_a_change_outside_git_is_drift() {
    let w = world();
    w.dv.assign_team_role(&w.team, "Salesperson");
    let (graph, log) = (w.graph.serve(), RequestLog::default());
    let dv = w.dv.serve(w.graph.entra(), &log, None);
    let sb = sandbox(&graph.url(), &dv.url(), &team(", securityRoles: [Sales Manager]"));

    let plan = run(&sb, &w.secret, &["plan", "{dir}", "--target", "d365", "--target", "entra", "--format", "json"]);
    plan.expect(0);
    let changes = support::changes(&plan.json());
    assert!(changes.contains(&("d365.role.key-accounts".into(), "update".into())), "{changes:?}");
    run(&sb, &w.secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(w.dv.team_roles(&w.team), vec!["Sales Manager"]);
    run(&sb, &w.secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);

    // Someone gives the team System Administrator in the environment.
    w.dv.assign_team_role(&w.team, "System Administrator");
    let drift = run(&sb, &w.secret, &["drift", "{dir}"]);
    drift.expect(2);
    insta::assert_snapshot!("group_team_roles_drift", drift.stdout);
    run(&sb, &w.secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(w.dv.team_roles(&w.team), vec!["Sales Manager"]);
    run(&sb, &w.secret, &["drift", "{dir}"]).expect(0);
}

#[test]
fn a_group_no_graph_target_holds_and_a_team_the_environment_lacks_are_plan_errors() {
    let w = world();
    let (graph, log) = (w.graph.serve(), RequestLog::default());
    let dv = w.dv.serve(w.graph.entra(), &log, None);
    let sb = sandbox(&graph.url(), &dv.url(), "{group: Key Accounts APAC, businessUnit: northwind}");
    let r = run(&sb, &w.secret, &["plan", "{dir}"]);
    r.expect(1);
    assert!(
        r.stderr.contains(
            "target `d365`: role `key-accounts` binds the Microsoft Entra group team of group Key Accounts APAC, which no Graph target holds;"
        ),
        "{}",
        r.stderr
    );
    // Planning Dataverse alone cannot see the Graph target: the error says to plan it too.
    let r = run(&sb, &w.secret, &["plan", "{dir}", "--target", "d365"]);
    r.expect(1);
    assert!(r.stderr.contains("plan them together: `--target entra --target d365`"), "{}", r.stderr);

    // The group exists, but has no team in business unit Retail.
    w.dv.create_business_unit("Retail", "northwind");
    sb.edit(
        "roles/sales.yaml",
        "{group: Key Accounts APAC, businessUnit: northwind}",
        &team("").replace("northwind", "Retail"),
    );
    let r = run(&sb, &w.secret, &["plan", "{dir}"]);
    r.expect(1);
    assert!(
        r.stderr.contains(&format!(
            "target `d365`: role `key-accounts` binds groupTeam {GROUP} in business unit Retail (group object id {}), which does not exist there",
            w.group
        )),
        "{}",
        r.stderr
    );
    assert_eq!(w.graph.members(&w.group), Vec::<String>::new());
}

/// Selling and setting quotas are kept apart.
const SOD: &str = "kind: SodRule\nname: selling-vs-quotas\nfirst: {roles: [sales-rep]}\nsecond: {roles: [sales-manager]}\nseverity: deny\ndescription: Whoever sells must not set their own quota\n";

#[test]
fn a_security_role_held_through_a_group_team_reaches_segregation_of_duties() {
    let w = world();
    // The team holds Sales Manager in Dataverse; git never gives Daniel `sales-manager`.
    w.dv.assign_team_role(&w.team, "Sales Manager");
    let (graph, log) = (w.graph.serve(), RequestLog::default());
    let dv = w.dv.serve(w.graph.entra(), &log, None);
    let sb = sandbox(&graph.url(), &dv.url(), &team(""));
    sb.write("policies/sod.yaml", SOD);
    sb.edit("users/sales.yaml", "roles: [sales-rep]", "roles: [sales-rep, key-accounts]");
    // Offline, the team's roles are unknown: nothing to find.
    sb.run(&["validate", "{dir}"]).expect(0);

    let plan = run(&sb, &w.secret, &["plan", "{dir}"]);
    plan.expect(3);
    let all = flat(&format!("{}{}", plan.stdout, plan.stderr));
    assert!(
        all.contains("`daniel.osei` holds `sales-rep` and `sales-manager`, which SodRule `selling-vs-quotas` keeps apart (holding `sales-manager` through the Dataverse team of role `key-accounts`)"),
        "{all}"
    );
    assert!(!all.contains("`sofia.lindqvist` holds"), "{all}");
    run(&sb, &w.secret, &["apply", "{dir}", "--auto-approve"]).expect(3);
    assert_eq!(w.graph.members(&w.group), Vec::<String>::new(), "a deny finding blocks the apply");

    // Listed on the binding, the team's roles are known offline too.
    sb.edit("roles/sales.yaml", "businessUnit: northwind}", "businessUnit: northwind, securityRoles: [Sales Manager]}");
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(3);
    let all = flat(&format!("{}{}", r.stdout, r.stderr));
    assert!(all.contains("through the Dataverse team of role `key-accounts`"), "{all}");
}

/// Diagnostics as one line: wrapped lines joined, the frame's bars dropped.
fn flat(text: &str) -> String {
    text.replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn a_group_team_of_a_dynamic_group_is_refused_at_its_line_before_any_change() {
    let secret = secret();
    let graph = Graph::new();
    graph.entra().register(GRAPH_CLIENT, Some(&secret));
    let dv = dataverse(graph.entra(), &secret);
    let group = graph.add_dynamic_group(GROUP, "user.department -eq \"Key Accounts\"");
    dv.add_group_team("Key Accounts (EMEA)", None, &group, 0);
    let (fake, log) = (graph.serve(), RequestLog::default());
    let server = dv.serve(graph.entra(), &log, None);
    let sb = sandbox(&fake.url(), &server.url(), &team(""));
    let before = graph.graph_requests();
    for command in [&["plan", "{dir}"][..], &["apply", "{dir}", "--auto-approve"]] {
        let r = run(&sb, &secret, command);
        r.expect(1);
        let dir = sb.path("");
        let stderr = r.stderr.replace(dir.to_string_lossy().trim_end_matches('/'), "{dir}");
        insta::assert_snapshot!("group_team_dynamic_group", stderr);
    }
    assert!(graph.graph_requests() > before, "the targets were read");
    assert_eq!(graph.log().count_status(400), 0, "no member change was sent");
    assert!(graph.user(SOFIA).is_none(), "nothing was applied");
}

#[test]
fn a_group_team_binding_that_goes_releases_the_members_keyward_gave_its_group() {
    let w = world();
    let (graph, log) = (w.graph.serve(), RequestLog::default());
    let dv = w.dv.serve(w.graph.entra(), &log, None);
    let sb = sandbox(&graph.url(), &dv.url(), &team(""));
    sb.write(".gitignore", ".keyward/\n");
    support::commit_all(&sb.root, "Key accounts desk", "Nancy Davolio", None);
    run(&sb, &w.secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(w.graph.members(&w.group).len(), 1);
    // Planned alone, the Graph target still keeps the group for the group team.
    run(&sb, &w.secret, &["plan", "{dir}", "--target", "entra", "--detailed-exitcode"]).expect(0);
    sb.edit("users/sales.yaml", "roles: [sales-rep]", "roles: [sales-rep, key-accounts]");
    let plan = run(&sb, &w.secret, &["plan", "{dir}", "--target", "entra", "--format", "json"]);
    let changes = support::changes(&plan.json());
    assert_eq!(changes, vec![("entra.assignment.daniel.osei/key-accounts".to_string(), "assign".to_string())]);
    sb.edit("users/sales.yaml", "roles: [sales-rep, key-accounts]", "roles: [sales-rep]");

    // The desk is served through an owner team now: the group is handed back, emptied.
    w.dv.add_owner_team("Key Accounts", None);
    sb.edit("roles/sales.yaml", &format!("d365: {{groupTeam: {}}}", team("")), "d365: {team: Key Accounts}");
    support::commit_all(&sb.root, "Key accounts through a security role", "Nancy Davolio", None);
    let plan = run(&sb, &w.secret, &["plan", "{dir}", "--format", "json"]);
    plan.expect(0);
    let changes = support::changes(&plan.json());
    assert!(
        changes.contains(&("entra.assignment.sofia.lindqvist/key-accounts".into(), "revoke".into())),
        "{changes:?}"
    );
    run(&sb, &w.secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(w.graph.members(&w.group), Vec::<String>::new());
    run(&sb, &w.secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}

#[test]
fn validation_refuses_a_group_two_roles_would_keep_an_empty_team_and_a_group_team_off_dataverse() {
    let sb = sandbox("https://graph.microsoft.com", "https://northwind.crm4.dynamics.com", &team(""));
    sb.run(&["validate", "{dir}"]).expect(0);
    let desk = format!(
        "---\nkind: Role\nname: desk\ndescription: The desk's shared mailbox\nbindings:\n  entra: {{group: {GROUP}}}\n"
    );
    let roles = sb.read("roles/sales.yaml");
    sb.write("roles/sales.yaml", &format!("{roles}{desk}"));
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    let all = flat(&r.stderr);
    assert!(
        all.contains(&format!(
            "role `key-accounts` binds the Microsoft Entra group team of group {GROUP} on `d365`, and role `desk` binds group {GROUP} on target `entra`"
        )),
        "{all}"
    );
    sb.write("roles/sales.yaml", &roles.replace("businessUnit: northwind", "businessUnit: \"\""));
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    assert!(
        flat(&r.stderr).contains("role `key-accounts` binds a group team with an empty `businessUnit` on `d365`"),
        "{}",
        r.stderr
    );
    sb.write("roles/sales.yaml", &roles.replace("  d365: {groupTeam:", "  entra: {groupTeam:"));
    let r = sb.run(&["validate", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("target `entra` (provider `graph`) has no groupTeam bindings"), "{}", r.stderr);
}

#[test]
fn a_security_role_an_owner_team_holds_reaches_segregation_of_duties_for_its_members() {
    let w = world();
    let owner = w.dv.add_owner_team("Key Accounts", None);
    w.dv.assign_team_role(&owner, "Sales Manager");
    let (graph, log) = (w.graph.serve(), RequestLog::default());
    let dv = w.dv.serve(w.graph.entra(), &log, None);
    let sb = sandbox(&graph.url(), &dv.url(), "x");
    sb.edit("roles/sales.yaml", "d365: {groupTeam: x}", "d365: {team: Key Accounts}");
    sb.write("policies/sod.yaml", SOD);
    run(&sb, &w.secret, &["apply", "{dir}", "--auto-approve"]).expect(0);

    // Daniel joins the desk: through the team, he would hold Sales Manager beside sales-rep.
    sb.edit("users/sales.yaml", "roles: [sales-rep]", "roles: [sales-rep, key-accounts]");
    let plan = run(&sb, &w.secret, &["plan", "{dir}"]);
    plan.expect(3);
    let all = flat(&format!("{}{}", plan.stdout, plan.stderr));
    assert!(all.contains("(holding `sales-manager` through the Dataverse team of role `key-accounts`)"), "{all}");
    assert_eq!(w.dv.team_members(&owner), vec![SOFIA]);

    // Added to the team outside git, he holds it live: the live check reports it.
    sb.edit("users/sales.yaml", "roles: [sales-rep, key-accounts]", "roles: [sales-rep]");
    w.dv.add_team_member(&owner, DANIEL);
    let plan = run(&sb, &w.secret, &["plan", "{dir}"]);
    let all = flat(&format!("{}{}", plan.stdout, plan.stderr));
    assert!(all.contains("sod.live-conflict"), "{all}");
    assert!(all.contains("`daniel.osei` holds `sales-rep` and `sales-manager`"), "{all}");
}

#[test]
fn import_leaves_group_teams_to_the_graph_target() {
    let w = world();
    w.dv.add_owner_team("Key Accounts", None);
    let (graph, log) = (w.graph.serve(), RequestLog::default());
    let dv = w.dv.serve(w.graph.entra(), &log, None);
    let sb = sandbox(&graph.url(), &dv.url(), &team(""));
    run(&sb, &w.secret, &["import", "{dir}", "--target", "d365", "--out", "{dir}/imported"]).expect(0);
    let mut written = String::new();
    let mut dirs = vec![sb.path("imported")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                written.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    // The owner team is imported as a role; the group team, read by its group's object id, is not.
    assert!(written.contains("team: Key Accounts"), "{written}");
    assert!(!written.contains("groupTeam") && !written.contains(&w.group), "{written}");
}

#[test]
fn a_listed_role_the_teams_business_unit_lacks_is_a_plan_error() {
    let w = world();
    let (graph, log) = (w.graph.serve(), RequestLog::default());
    let dv = w.dv.serve(w.graph.entra(), &log, None);
    let sb = sandbox(&graph.url(), &dv.url(), &team(", securityRoles: [Key Account Director]"));
    let r = run(&sb, &w.secret, &["plan", "{dir}"]);
    r.expect(1);
    assert!(
        r.stderr.contains("target `d365`: role `key-accounts` lists security role `Key Account Director` for its group team, which business unit `northwind` has no copy of"),
        "{}",
        r.stderr
    );
    assert!(w.dv.team_roles(&w.team).is_empty());
}

/// The group's object id names the team: `--target d365` alone cannot plan a group team
/// binding, whether or not the group exists, and says which targets to plan together; planned
/// together, the same configuration plans and applies.
#[test]
fn a_group_team_planned_without_its_graph_target_says_to_plan_them_together() {
    let w = world();
    let (graph, log) = (w.graph.serve(), RequestLog::default());
    let dv = w.dv.serve(w.graph.entra(), &log, None);
    let sb = sandbox(&graph.url(), &dv.url(), &team(""));
    for command in ["plan", "drift"] {
        let r = run(&sb, &w.secret, &[command, "{dir}", "--target", "d365"]);
        r.expect(1);
        assert!(
            r.stderr.contains(&format!(
                "target `d365`: role `key-accounts` binds the Microsoft Entra group team of group {GROUP}, which is found on a Graph target (the group's object id names the team, and its members are the team's), but target `entra` was not read in this run; plan them together: `--target entra --target d365`"
            )),
            "{command}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("create it on the Graph target"), "the group exists: {}", r.stderr);
    }
    run(&sb, &w.secret, &["apply", "{dir}", "--target", "d365", "--auto-approve"]).expect(1);
    assert_eq!(w.graph.members(&w.group), Vec::<String>::new(), "nothing was applied");
    run(&sb, &w.secret, &["plan", "{dir}", "--target", "entra", "--target", "d365", "--detailed-exitcode"]).expect(2);
    run(&sb, &w.secret, &["apply", "{dir}", "--target", "entra", "--target", "d365", "--auto-approve"]).expect(0);
    run(&sb, &w.secret, &["plan", "{dir}", "--target", "entra", "--target", "d365", "--detailed-exitcode"]).expect(0);
}
