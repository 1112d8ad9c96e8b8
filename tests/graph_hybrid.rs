//! Hybrid Entra tenants end to end, against the Graph fake: users synchronized from
//! on-premises Active Directory (`onPremisesSyncEnabled`) and groups whose members a rule
//! decides (`DynamicMembership`). keyward plans no change Graph refuses for them, and the plan
//! says why.

mod support;

use keyward_fakes::graph::Graph;
use support::{Run, Sandbox};

const TENANT: &str = "northwind.example";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const SECRET_VAR: &str = "KEYWARD_TEST_GRAPH_SECRET";

/// A secret unique to this run, never a literal.
fn canary() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("canary-hybrid-{:016x}", h.finish())
}

/// The fake with a registered client and the break-glass account that lives only there.
fn tenant(secret: &str) -> Graph {
    let g = Graph::new();
    g.entra().register(CLIENT, Some(secret));
    g.add_user("breakglass@northwind.example", "Break Glass", true);
    g
}

/// The quick start, its target rewritten to `provider: graph` at the fake.
fn quickstart(url: &str) -> Sandbox {
    let sb = Sandbox::example("quickstart");
    sb.edit(
        "keyward.yaml",
        "    provider: file\n    path: .keyward/directory.json   # a local JSON file that stands in for a live directory\n",
        &format!(
            "    provider: graph\n    tenant: {TENANT}\n    clientId: {CLIENT}\n    clientSecret: ${{env:{SECRET_VAR}}}\n    endpoint: {url}\n    authority: {url}\n"
        ),
    );
    sb
}

fn run(sb: &Sandbox, secret: &str, args: &[&str]) -> Run {
    sb.run_with_env(args, &[(SECRET_VAR, secret)])
}

#[test]
fn a_synced_users_attributes_are_left_to_active_directory_and_the_plan_says_so() {
    let secret = canary();
    let g = tenant(&secret);
    // Nancy comes from on-premises Active Directory: her name there differs from git's, and
    // Graph refuses every change to what Entra Connect synchronizes.
    g.add_synced_user("nancy.davolio@northwind.example", "Davolio, Nancy", true);
    let fake = g.serve();
    let sb = quickstart(&fake.url());

    let plan = run(&sb, &secret, &["plan", "{dir}", "--format", "json"]);
    plan.expect(0);
    let json = plan.json();
    let changes = support::changes(&json);
    assert!(
        !changes.iter().any(|(a, act)| a == "directory.user.nancy.davolio" && act == "update"),
        "an update Graph refuses is planned: {changes:?}"
    );
    // Her group membership is Entra's to change, and is planned.
    assert!(changes.contains(&("directory.assignment.nancy.davolio/finance-admin".into(), "assign".into())));
    let notices = json["notices"].as_array().expect("notices");
    let owned = notices.iter().find(|n| n["code"] == "owned-elsewhere").expect("a notice of what AD owns");
    let message = owned["message"].as_str().unwrap();
    assert!(message.contains("`nancy.davolio`") && message.contains("on-premises Active Directory"), "{message}");
    assert!(message.contains("displayName") && message.contains("manager"), "{message}");

    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let nancy = g.user("nancy.davolio@northwind.example").unwrap();
    assert_eq!(nancy["displayName"], "Davolio, Nancy", "what AD owns was not touched");
    // Converged: nothing left to change; the notice stays while git and AD disagree.
    let again = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    again.expect(0);
    assert!(again.stdout.contains("on-premises Active Directory"), "{}", again.stdout);
}

#[test]
fn an_apply_sends_graph_no_change_it_refuses_for_a_synced_user() {
    let secret = canary();
    let g = tenant(&secret);
    g.add_synced_user("nancy.davolio@northwind.example", "Davolio, Nancy", true);
    let fake = g.serve();
    let sb = quickstart(&fake.url());
    let r = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    assert_eq!(g.log().count_status(400), 0, "Graph refused a request\n{}\n{}", r.stdout, r.stderr);
    r.expect(0);
}

/// An Active Directory target beside the Entra one: the directory of record of synced users.
const AD_TARGET: &str = "  corp-ad:\n    provider: ldap\n    url: ldaps://dc1.northwind.example\n    bindDn: CN=keyward,CN=Users,DC=northwind,DC=example\n    password: ${env:KEYWARD_TEST_AD_PASSWORD}\n    usersBase: CN=Users,DC=northwind,DC=example\n    groupsBase: CN=Users,DC=northwind,DC=example\n    flavor: ad\n    userKey: userPrincipalName\n";

#[test]
fn the_plan_names_what_active_directory_owns_and_the_target_to_change_it_in() {
    let secret = canary();
    let g = tenant(&secret);
    g.add_synced_user("nancy.davolio@northwind.example", "Davolio, Nancy", true);
    let fake = g.serve();
    let sb = quickstart(&fake.url());
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    sb.edit("keyward.yaml", "\nownership:", &format!("{AD_TARGET}\nownership:"));
    // Git changes a job title AD owns, and one Entra owns.
    sb.edit("users/finance.yaml", "jobTitle: Financial Controller", "jobTitle: Head of Financial Control");
    sb.edit("users/finance.yaml", "jobTitle: General Ledger Accountant", "jobTitle: Senior Accountant");

    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "directory", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("synced_user_plan", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--target", "directory", "--auto-approve"]).expect(0);
    assert_eq!(g.user("yusuf.demir@northwind.example").unwrap()["jobTitle"], "Senior Accountant");
    run(&sb, &secret, &["plan", "{dir}", "--target", "directory", "--detailed-exitcode"]).expect(0);
}

#[test]
fn a_synced_user_who_leaves_git_is_left_to_active_directory() {
    let secret = canary();
    let g = tenant(&secret);
    g.add_synced_user("ex.employee@northwind.example", "Ex Employee", true);
    let fake = g.serve();
    let sb = quickstart(&fake.url());
    let plan = run(&sb, &secret, &["plan", "{dir}", "--format", "json"]);
    plan.expect(0);
    let json = plan.json();
    assert!(
        !support::changes(&json).iter().any(|(a, _)| a == "directory.user.ex.employee@northwind.example"),
        "{json}"
    );
    let message = json["notices"][0]["message"].as_str().unwrap();
    assert!(message.contains("`ex.employee@northwind.example` is no longer wanted here"), "{message}");
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(g.user("ex.employee@northwind.example").unwrap()["accountEnabled"], true);
}

#[test]
fn a_role_bound_to_a_dynamic_group_is_refused_at_its_line_naming_the_group() {
    let secret = canary();
    let g = tenant(&secret);
    g.add_dynamic_group("it-admins", "user.department -eq \"IT\"");
    let fake = g.serve();
    let sb = quickstart(&fake.url());
    let plan = run(&sb, &secret, &["plan", "{dir}"]);
    plan.expect(1);
    // Refused at the binding's line, as validation reports errors, before anything is planned.
    let all =
        format!("{}{}", plan.stdout, plan.stderr).replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(all.contains("role `it-admin` binds group it-admins,"), "{all}");
    assert!(all.contains("its membership rule `user.department -eq \"IT\"`"), "{all}");
    assert!(all.contains("[roles/it.yaml:10:14]"), "{all}");
    let before = g.graph_requests();
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(1);
    assert_eq!(g.log().count_status(400), 0, "no member change was sent");
    assert!(g.graph_requests() > before);
    assert!(g.members(&g.group_id("it-admins").unwrap()).is_empty());
}

#[test]
fn a_saved_plan_with_a_note_of_what_active_directory_owns_still_applies() {
    let secret = canary();
    let g = tenant(&secret);
    g.add_synced_user("nancy.davolio@northwind.example", "Davolio, Nancy", true);
    let fake = g.serve();
    let sb = quickstart(&fake.url());
    let saved = sb.path("plan.json");
    let saved = saved.to_str().unwrap();
    run(&sb, &secret, &["plan", "{dir}", "--out", saved]).expect(0);
    assert!(sb.read("plan.json").contains("owned-elsewhere"));
    // Only a target planned offline refuses a saved plan; this note does not.
    run(&sb, &secret, &["apply", saved, "--config", "{dir}", "--auto-approve"]).expect(0);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}
