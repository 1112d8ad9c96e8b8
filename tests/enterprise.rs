//! `examples/enterprise` against the three in-repo fakes together: Entra ID on the Graph fake,
//! Dynamics 365 Sales on the Dataverse fake, Finance & Operations on the F&O fake (AWS IAM Identity
//! Center stays a `file` stand-in: its real peers are scim2-server and django-scim2, exercised by
//! tests/scim.rs). One apply
//! creates each person in the directory first, then in the ERPs, and a second plan is empty.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::RequestLog;
use keyward_fakes::dataverse::Depth;
use keyward_fakes::graph::Graph;

use harness::{TENANT, dataverse, enterprise_complete, fno, run, secret};
use support::Sandbox;

const ENTRA_CLIENT: &str = "c11b361e-d038-475f-b98e-78737063942d";

#[test]
fn enterprise_example_applies_and_converges_against_graph_dataverse_and_fno() {
    let secret = secret();
    let g = Graph::new();
    g.entra().register(ENTRA_CLIENT, Some(&secret));
    g.add_enterprise_app("Northwind Bank Portal", &["Payment Approver"]);
    let (dv_log, fno_log) = (RequestLog::default(), RequestLog::default());
    let dv = dataverse(g.entra(), &secret);
    let f = fno(g.entra(), &secret);
    let (gs, dvs, fs) = (g.serve(), dv.serve(g.entra(), &dv_log, None), f.serve(g.entra(), &fno_log, None));
    // The service accounts' credentials go to Key Vault: a fake one, behind the same Entra.
    let vault = keyward_fakes::keyvault::KeyVault::new(g.entra());
    let vs = keyward_fakes::serve(vault.router());
    let sb = on_fakes(&gs.url(), &dvs.url(), &fs.url(), &vs.url(), false);

    let r = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(2);
    let pos = |s: &str| r.stdout.find(s).unwrap_or_else(|| panic!("{s} in plan:\n{}", r.stdout));
    assert!(pos("entra.user.nancy.davolio") < pos("finance.user.nancy.davolio"));
    assert!(pos("entra.user.robert.king") < pos("d365.user.robert.king"));
    assert!(r.stdout.contains("By person"), "{}", r.stdout);

    let a = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    if a.code != 0 {
        // The audit log says which change failed and why.
        let audit = sb.read(".keyward/audit.jsonl");
        let failed: Vec<&str> = audit.lines().filter(|l| l.contains("\"failed\"")).collect();
        panic!("apply failed: {failed:#?}");
    }
    assert!(g.user("nancy.davolio@northwind.example").is_some());
    assert!(f.user("nancy.davolio@northwind.example").is_some());
    assert!(dv.user("robert.king@northwind.example").is_some());
    // The Entra service accounts' secret and certificates were issued on Graph and delivered.
    for name in ["payments-bot-client-secret", "payments-bot-bank-mtls", "hr-sync-entra-cert"] {
        assert!(vault.current(name).is_some(), "{name} delivered");
    }
    let secrets = g.secrets();
    assert_eq!(secrets.len(), 1);
    assert_eq!(vault.current("payments-bot-client-secret").unwrap().value, secrets[0]);
    assert_eq!(
        dv.profile_members("customer-credit").unwrap(),
        vec!["emma.brennan@northwind.example", "robert.king@northwind.example"]
    );

    let r = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(0);
}

/// The example with `entra` on the Graph fake at `graph`, `d365` on the Dataverse fake, `finance`
/// on the F&O fake, and its credentials delivered to the Key Vault fake at `vault`.
fn on_fakes(graph: &str, dv: &str, fno: &str, vault: &str, complete: bool) -> Sandbox {
    let sb = enterprise_complete(dv, Some(fno));
    if !complete {
        harness::without_security_model(&sb);
    }
    sb.edit(
        "keyward.yaml",
        "  entra:\n    provider: file\n    path: .keyward/entra.json\n",
        &format!(
            "  entra:\n    provider: graph\n    tenant: {TENANT}\n    clientId: {ENTRA_CLIENT}\n    clientSecret: ${{env:ENTRA_CLIENT_SECRET}}\n    endpoint: {graph}\n    authority: {graph}\n"
        ),
    );
    let text = sb.read("service-accounts/integrations.yaml").replace("https://northwind-kv.vault.azure.net", vault);
    sb.write("service-accounts/integrations.yaml", &text);
    sb
}

const SOFIA: &str = "sofia.lindqvist@northwind.example";
const DANIEL: &str = "daniel.osei@northwind.example";
const KEY_ACCOUNTS_GROUP: &str = "Key Accounts EMEA";

#[test]
fn the_dynamics_365_security_model_plans_applies_converges_and_shows_live_privileges() {
    let secret = secret();
    let g = Graph::new();
    g.entra().register(ENTRA_CLIENT, Some(&secret));
    g.add_enterprise_app("Northwind Bank Portal", &["Payment Approver"]);
    let group = g.add_group(KEY_ACCOUNTS_GROUP);
    let (dv_log, fno_log) = (RequestLog::default(), RequestLog::default());
    let dv = dataverse(g.entra(), &secret);
    let sales = dv.create_business_unit("Sales", &dv.root_business_unit());
    let retail = dv.create_business_unit("Retail", &dv.root_business_unit());
    let team = dv.add_group_team("Key Accounts (EMEA)", None, &group, 0);
    dv.assign_team_role(&team, "Salesperson");
    dv.add_role_everywhere("Web Shop Integration");
    for p in ["prvReadAccount", "prvWriteAccount"] {
        dv.add_privilege(p);
    }
    dv.grant_privilege("Salesperson", "prvReadAccount", Depth::Local);
    let f = fno(g.entra(), &secret);
    let (gs, dvs, fs) = (g.serve(), dv.serve(g.entra(), &dv_log, None), f.serve(g.entra(), &fno_log, None));
    let vault = keyward_fakes::keyvault::KeyVault::new(g.entra());
    let vs = keyward_fakes::serve(vault.router());
    let sb = on_fakes(&gs.url(), &dvs.url(), &fs.url(), &vs.url(), true);

    // The pinned role's snapshot is written from the environment.
    let i = run(&sb, &secret, &["import", "{dir}", "--target", "d365", "--contents"]);
    i.expect(0);
    assert!(sb.read("role-contents/sales-rep.yaml").contains("prvReadAccount"), "{}", i.stdout);

    let plan = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    plan.expect(2);
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let shown = flat(&plan.stdout);
    for expected in [
        // The group team is what membership of its Entra group means on d365.
        "membership of group Key Accounts EMEA is role `key-accounts` on `d365`: its Microsoft Entra group team (business unit northwind) takes the group's members and gives them the security roles Salesperson",
        "+ entra.assignment.daniel.osei/key-accounts",
        // The order sync is an app registration on `entra` (`users: all`); its application
        // user on d365 takes the registration's client id, so it waits for the next run.
        "+ entra.service-account.sales-sync",
        "service account `sales-sync` is not planned on target `d365` yet: it takes its client id from its app registration on `entra`, which this plan creates",
        // Sofia is created in the root unit and placed in Sales.
        "~ businessUnit = \"northwind\" -> \"Sales\"",
    ] {
        assert!(shown.contains(expected), "{expected} in plan:\n{}", plan.stdout);
    }
    assert!(!shown.contains("aws.service-account.sales-sync"), "{}", plan.stdout);
    let a = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}{}", a.stdout, a.stderr);
    assert_eq!(dv.user_business_unit(SOFIA).as_deref(), Some(sales.as_str()));
    assert_eq!(dv.roles_of(SOFIA), vec!["Salesperson"]);
    let daniel = g.user(DANIEL).expect("Daniel's Entra account")["id"].as_str().unwrap().to_string();
    assert_eq!(g.members(&group), vec![daniel], "the group team's members come from the Entra group");
    assert!(!shown.contains("d365.service-account.sales-sync"), "{}", plan.stdout);
    // The next run: the application user in Sales, with the registration's client id and its
    // own security role.
    let sales_sync_app = g
        .applications()
        .iter()
        .find(|a| a["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "keyward:sales-sync")))
        .and_then(|a| a["appId"].as_str().map(str::to_string))
        .expect("the order sync's app registration");
    let plan = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    plan.expect(2);
    let shown = flat(&plan.stdout);
    for expected in [
        format!("+ d365.service-account.sales-sync + applicationId = \"{sales_sync_app}\" + businessUnit = \"Sales\""),
        "applicationId: the client id of its app registration on `entra`".to_string(),
        "an application user has access mode Non-interactive and needs no licence".to_string(),
        "+ d365.assignment.sales-sync/order-sync".to_string(),
    ] {
        assert!(shown.contains(&expected), "{expected} in plan:\n{}", plan.stdout);
    }
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let app = dv.app_user_id(&sales_sync_app).expect("the application user");
    assert_eq!(dv.roles_of_id(&app), vec!["Web Shop Integration"]);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);

    // A second commit: Sofia moves to Retail. Dataverse drops her roles on a move, so the plan
    // moves her and gives her Retail's copy of Salesperson, in that order.
    sb.edit("users/sales.yaml", "{d365: {businessUnit: Sales}}", "{d365: {businessUnit: Retail}}");
    let plan = run(&sb, &secret, &["plan", "{dir}", "--target", "entra", "--target", "d365", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("enterprise_business_unit_move_plan", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(dv.user_business_unit(SOFIA).as_deref(), Some(retail.as_str()));
    assert_eq!(dv.roles_of(SOFIA), vec!["Salesperson"]);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);

    // Outside git, through the environment's admin: Salesperson gains prvWriteAccount.
    dv.grant_privilege("Salesperson", "prvWriteAccount", Depth::Global);
    let d = run(&sb, &secret, &["drift", "{dir}", "--target", "entra", "--target", "d365"]);
    d.expect(2);
    let section = &d.stdout[d.stdout.find("Role contents changed outside git").expect("the drift section")..];
    insta::assert_snapshot!("enterprise_role_contents_drift", section);
    let r = run(&sb, &secret, &["plan", "{dir}", "--target", "entra", "--target", "d365"]);
    r.expect(3);
    let shown = flat(&r.stdout);
    assert!(shown.contains("sod.conflict"), "{}", r.stdout);
    assert!(shown.contains("`sales-rep` (privilege `prvWriteAccount` (global) on `d365`)"), "{}", r.stdout);
    insta::assert_snapshot!(
        "enterprise_live_privilege_findings",
        findings(&r.stdout, &["contents.pinned-drift", "sod.conflict"])
    );
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(3);
}

/// The findings whose rule is one of `rules`: each from its rule line (unindented) to the next
/// unindented line.
fn findings(out: &str, rules: &[&str]) -> String {
    let mut shown = String::new();
    let mut inside = false;
    for line in out.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            inside = rules.contains(&line.trim());
        }
        if inside {
            shown.push_str(line.trim_end());
            shown.push('\n');
        }
    }
    shown
}
