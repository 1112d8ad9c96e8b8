//! `examples/enterprise` against the three in-repo fakes together: Entra ID on the Graph fake,
//! Dynamics 365 Sales on the Dataverse fake, Finance & Operations on the F&O fake (AWS IAM Identity
//! Center stays a `file` stand-in: its real peers are scim2-server and django-scim2, exercised by
//! tests/scim.rs). One apply
//! creates each person in the directory first, then in the ERPs, and a second plan is empty.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::RequestLog;
use keyward_fakes::graph::Graph;

use harness::{TENANT, dataverse, enterprise_with_vault, fno, run, secret};

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
    let sb = enterprise_with_vault(&dvs.url(), Some(&fs.url()));
    sb.edit(
        "keyward.yaml",
        "  entra:\n    provider: file\n    path: .keyward/entra.json\n",
        &format!(
            "  entra:\n    provider: graph\n    tenant: {TENANT}\n    clientId: {ENTRA_CLIENT}\n    clientSecret: ${{env:ENTRA_CLIENT_SECRET}}\n    endpoint: {0}\n    authority: {0}\n",
            gs.url()
        ),
    );

    let text = sb.read("service-accounts/integrations.yaml").replace("https://northwind-kv.vault.azure.net", &vs.url());
    sb.write("service-accounts/integrations.yaml", &text);

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
