//! The enterprise example pointed at in-process fakes: Entra ID stands in as the embedded
//! `file` directory (the Graph fake is another target's), Dynamics 365 Sales is the Dataverse
//! fake, Finance & Operations the F&O fake (or a `file` stand-in), and AWS IAM Identity Center a `file` directory.
//! The directory is a target of order 0 and the ERPs of order 1, so every apply shows the
//! directory-first order.

#![allow(dead_code)]

use keyward_fakes::dataverse::Dataverse;
use keyward_fakes::entra::Entra;

use crate::support::{Run, Sandbox};

pub const TENANT: &str = "456e4037-8afc-4f71-ae73-f9e51f634295";
pub const D365_CLIENT: &str = "55b1a2c7-9c3a-4911-a9b3-2555f9df8578";
pub const FNO_CLIENT: &str = "2c15416f-b9fe-4f04-8b2b-532d023e2193";

/// A client secret made at test time.
pub fn secret() -> String {
    format!(
        "test-{:x}-{:x}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

/// The enterprise example with its targets retargeted: `dataverse` is the Dataverse fake's URL;
/// `fno` the F&O fake's URL, or `None` for a `file` stand-in with the F&O security roles.
pub fn enterprise(dataverse: &str, fno: Option<&str>) -> Sandbox {
    let sb = enterprise_with_vault(dataverse, fno);
    // The service accounts' credentials are issued by the `entra` stand-in: deliver them to files
    // in the sandbox instead of the example's Key Vault.
    let accounts = sb.read("service-accounts/integrations.yaml");
    let mut delivered = String::with_capacity(accounts.len());
    for line in accounts.lines() {
        match line.split_once("keyVault: {vault: https://northwind-kv.vault.azure.net, secret: ") {
            Some((indent, rest)) => {
                let name = rest.trim_end_matches('}');
                delivered.push_str(&format!("{indent}file: .keyward/delivered/{name}\n"));
            }
            None => {
                delivered.push_str(line);
                delivered.push('\n');
            }
        }
    }
    assert_ne!(accounts, delivered, "the example delivers to Key Vault");
    sb.write("service-accounts/integrations.yaml", &delivered);
    sb
}

/// The example without its Dynamics 365 security model, its service accounts delivering to the
/// example's Key Vault (point it at a fake one).
pub fn enterprise_with_vault(dataverse: &str, fno: Option<&str>) -> Sandbox {
    let sb = enterprise_complete(dataverse, fno);
    without_security_model(&sb);
    sb
}

/// The parts of the example that need the environment set up for them (tests/enterprise.rs
/// does): Sofia's business unit `Sales`, the key accounts desk's Entra group team, the web shop
/// order sync's application user and its `Web Shop Integration` role, the pinned contents of
/// `sales-rep` and the SodRule on a live privilege. Without them the example is what the tests
/// of one feature at a time expect.
pub fn without_security_model(sb: &Sandbox) {
    for file in [
        "roles/key-accounts.yaml",
        "roles/integrations.yaml",
        "service-accounts/sales-sync.yaml",
        "policies/live-privileges.yaml",
    ] {
        std::fs::remove_file(sb.path(file)).unwrap();
    }
    sb.edit(
        "users/sales.yaml",
        "# Sofia works the Sales business unit's accounts in Dynamics 365.\ntargets: {d365: {businessUnit: Sales}}\n",
        "",
    );
    sb.edit("users/sales.yaml", "roles: [sales-rep, key-accounts]\n", "roles: [sales-rep]\n");
    let roles = sb.read("roles/sales.yaml");
    let pinned = roles.find("# What Salesperson grants").expect("sales-rep is pinned");
    let end =
        pinned + roles[pinned..].find("contents: pinned\n").expect("contents: pinned") + "contents: pinned\n".len();
    sb.write("roles/sales.yaml", &format!("{}{}", &roles[..pinned], &roles[end..]));
}

/// The example as it is, with its targets retargeted as [`enterprise_with_vault`] does.
pub fn enterprise_complete(dataverse: &str, fno: Option<&str>) -> Sandbox {
    let sb = Sandbox::example("enterprise");
    let fno_target = match fno {
        Some(url) => format!(
            "  finance:\n    provider: fno\n    url: {url}\n    authority: {url}\n    tenant: {TENANT}\n    clientId: {FNO_CLIENT}\n    clientSecret: ${{env:FNO_CLIENT_SECRET}}\n"
        ),
        None => "  finance:\n    provider: file\n    path: .keyward/finance.json\n    users: with-roles\n".to_string(),
    };
    let settings = sb.read("keyward.yaml");
    let rest = &settings[settings.find("ownership:").unwrap()..];
    sb.write(
        "keyward.yaml",
        &format!(
            "version: 1\ntargets:\n  entra:\n    provider: file\n    path: .keyward/entra.json\n  d365:\n    provider: dataverse\n    url: {dataverse}\n    authority: {dataverse}\n    tenant: {TENANT}\n    clientId: {D365_CLIENT}\n    clientSecret: ${{env:D365_CLIENT_SECRET}}\n{fno_target}  aws:\n    provider: file\n    path: .keyward/aws.json\n    users: with-roles\n{rest}"
        ),
    );
    sb.write(
        ".keyward/entra.json",
        r#"{"roles": [
            {"id": "r-ga", "kind": "directoryRole", "name": "Global Administrator"},
            {"id": "r-pa", "kind": "appRole", "name": "Northwind Bank Portal/Payment Approver"}]}"#,
    );
    if fno.is_none() {
        let roles: Vec<String> = FNO_ROLES
            .iter()
            .enumerate()
            .map(|(i, r)| format!(r#"{{"id": "s{i}", "kind": "securityRole", "name": "{r}"}}"#))
            .collect();
        sb.write(".keyward/finance.json", &format!(r#"{{"roles": [{}]}}"#, roles.join(",")));
    }
    sb
}

/// The F&O security roles the example binds to.
pub const FNO_ROLES: [&str; 6] = [
    "Accounting manager",
    "Accountant",
    "Accounts payable clerk",
    "Accounts payable manager",
    "Purchasing agent",
    "System administrator",
];

/// The Dataverse security roles the example binds to.
pub const DATAVERSE_ROLES: [&str; 3] = ["System Administrator", "Salesperson", "Sales Manager"];

/// A Dataverse environment with the example's roles in its root business unit, and the
/// built-in System Administrator field security profile.
pub fn dataverse(entra: &Entra, secret: &str) -> Dataverse {
    entra.register(D365_CLIENT, Some(secret));
    let dv = Dataverse::new("northwind");
    for r in DATAVERSE_ROLES {
        dv.add_role_everywhere(r);
    }
    dv.add_profile("System Administrator", &[]);
    dv
}

/// Runs keyward with the targets' secrets in the environment, and checks that neither the
/// secret nor a bearer token appears in its output.
pub fn run(sb: &Sandbox, secret: &str, args: &[&str]) -> Run {
    let r = sb.run_with_env(
        args,
        &[
            ("D365_CLIENT_SECRET", secret),
            ("FNO_CLIENT_SECRET", secret),
            ("ENTRA_CLIENT_SECRET", secret),
            ("KEYWARD_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
        ],
    );
    assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "the client secret was printed");
    for line in r.stdout.lines().chain(r.stderr.lines()) {
        assert!(!line.contains("fake-access-token-"), "a bearer token was printed: {line}");
    }
    r
}

/// The F&O role identifier of a role name: `Accounts payable clerk` → `ACCOUNTSPAYABLECLERK`.
pub fn fno_role_id(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_uppercase()
}

/// A Finance & Operations environment with the example's roles and its built-in admin.
pub fn fno(entra: &Entra, secret: &str) -> keyward_fakes::fno::Fno {
    entra.register(FNO_CLIENT, Some(secret));
    let f = keyward_fakes::fno::Fno::new();
    for r in FNO_ROLES {
        f.add_role(&fno_role_id(r), r);
    }
    f.add_user("Admin", "", true);
    f
}
