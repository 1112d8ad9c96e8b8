//! The `graph` provider end to end, against the in-repo Graph fake (`keyward_fakes::graph`):
//! the quick-start company retargeted to Entra ID plans, applies and converges; each named
//! scenario (throttling, replication delay, transient 5xx, insufficient privileges); large
//! reads in pages; the federated-credential path; and no secret, token or initial password in
//! any output. Request counts are asserted (they are deterministic); times never are.

mod support;

use std::path::Path;

use keyward::model::config::{ClientCredential, Connection, Target};
use keyward::model::{Binding, Name, SecretRef, UsersScope};
use keyward::provider::{self, Access};
use keyward_fakes::graph::{Graph, Scenario};
use serde_json::json;
use support::{Run, Sandbox};

const TENANT: &str = "northwind.example";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const SECRET_VAR: &str = "KEYWARD_TEST_GRAPH_SECRET";

/// A secret unique to this run, never a literal.
fn canary(label: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("canary-{label}-{:016x}", h.finish())
}

/// The fake with a registered client and the break-glass account that lives only there.
fn tenant(secret: &str) -> Graph {
    let g = Graph::new();
    g.entra().register(CLIENT, Some(secret));
    g.add_user("breakglass@northwind.example", "Break Glass", true);
    g
}

/// The quick start, its target rewritten to `provider: graph` at the fake.
fn quickstart(url: &str, credential: &str) -> Sandbox {
    let sb = Sandbox::example("quickstart");
    sb.edit(
        "keyward.yaml",
        "    provider: file\n    path: .keyward/directory.json   # a local JSON file that stands in for a live directory\n",
        &format!(
            "    provider: graph\n    tenant: {TENANT}\n    clientId: {CLIENT}\n    {credential}\n    endpoint: {url}\n    authority: {url}\n"
        ),
    );
    sb
}

fn secret_credential() -> String {
    format!("clientSecret: ${{env:{SECRET_VAR}}}")
}

fn run(sb: &Sandbox, secret: &str, args: &[&str]) -> Run {
    sb.run_with_env(args, &[(SECRET_VAR, secret)])
}

#[test]
fn the_quickstart_plans_applies_and_converges_on_graph() {
    let secret = canary("secret");
    let g = tenant(&secret);
    let fake = g.serve();
    let sb = quickstart(&fake.url(), &secret_credential());

    let plan = run(&sb, &secret, &["plan", "{dir}", "--format", "json", "--detailed-exitcode"]);
    plan.expect(2);
    let changes = support::changes(&plan.json());
    assert!(changes.contains(&("directory.user.nancy.davolio".into(), "create".into())), "{changes:?}");
    assert!(changes.iter().any(|(a, _)| a == "directory.auth-method.sms"), "{changes:?}");

    let before = g.graph_requests();
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let apply_requests = g.graph_requests() - before;

    // Converged: a second plan is empty.
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);

    let nancy = g.user("nancy.davolio@northwind.example").expect("created");
    assert_eq!(nancy["surname"], "Davolio");
    assert_eq!(nancy["accountEnabled"], true);
    let admins = g.group_id("it-admins").expect("group created");
    assert_eq!(g.members(&admins).len(), 2);
    let states = g.method_states();
    assert_eq!(states["Sms"], "disabled");
    assert_eq!(states["Fido2"], "enabled");
    let apps = g.applications();
    let bot = apps.iter().find(|a| a["tags"][0] == "keyward:payments-bot").expect("service account");
    assert_eq!(bot["owners"].as_array().unwrap().len(), 1);
    // Writes are batched: far fewer requests than changes.
    assert!(apply_requests < changes.len(), "{apply_requests} requests for {} changes", changes.len());
    // Every user got its own random initial password, changed at first sign-in.
    let pws = g.passwords();
    assert!(pws.len() >= 9);
    let mut unique = pws.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), pws.len());
}

/// Applies the quick start with a scenario on; returns the run and the fake.
fn apply_with(scenario: Scenario) -> (Run, Graph, Sandbox, String, keyward_fakes::Running) {
    let secret = canary("secret");
    let g = tenant(&secret);
    let fake = g.serve();
    let sb = quickstart(&fake.url(), &secret_credential());
    g.scenario(scenario);
    let r = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    (r, g, sb, secret, fake)
}

#[test]
fn throttling_slows_the_apply_down_without_failing_it() {
    let (r, g, sb, secret, _fake) = apply_with(Scenario::Throttle { rate: 20.0, burst: 10 });
    r.expect(0);
    assert!(g.throttled() > 0, "the throttle never bit");
    g.calm();
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}

#[test]
fn objects_missing_right_after_their_creation_are_retried() {
    let (r, g, sb, secret, _fake) = apply_with(Scenario::ReplicationDelay { k: 2 });
    r.expect(0);
    // Memberships of new users and groups met 404s first, and were retried.
    assert!(g.log().count_status(200) > 0);
    g.calm();
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    let admins = g.group_id("it-admins").unwrap();
    assert_eq!(g.members(&admins).len(), 2);
}

#[test]
fn transient_server_errors_are_retried() {
    let (r, g, sb, secret, _fake) = apply_with(Scenario::Transient5xx { every: 5 });
    r.expect(0);
    assert!(g.log().count_status(503) > 0);
    g.calm();
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}

#[test]
fn insufficient_privileges_fail_with_the_graph_code_and_request_id() {
    let (r, g, _sb, _secret, _fake) = apply_with(Scenario::InsufficientPrivileges);
    r.expect(1);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(out.contains("Authorization_RequestDenied"), "{out}");
    assert!(out.contains("Insufficient privileges to complete the operation."), "{out}");
    assert!(out.contains("request id"), "{out}");
    assert_eq!(g.user_count(), 1, "nothing was written");
}

#[test]
fn a_federated_token_file_is_read_for_each_token() {
    let g = Graph::new();
    g.entra().register(CLIENT, None);
    let fake = g.serve();
    let sb = quickstart(&fake.url(), "federatedTokenFile: tokens/azure-identity-token");
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256", "typ": "JWT", "x5t": "t"})),
        b64(json!({"aud": format!("{}/{TENANT}/oauth2/v2.0/token", fake.url()), "iss": CLIENT, "sub": CLIENT,
            "jti": canary("jti"), "nbf": 0, "exp": 4_000_000_000u64}))
    );
    sb.write("tokens/azure-identity-token", &token);
    sb.run(&["plan", "{dir}", "--detailed-exitcode"]).expect(2);
    assert_eq!(g.entra().assertions(), vec![token.clone()]);
    // The token itself never shows.
    let r = sb.run(&["plan", "{dir}", "--log-level", "trace"]);
    assert!(!r.stdout.contains(&token) && !r.stderr.contains(&token));
}

#[test]
fn no_secret_token_or_password_appears_in_any_output() {
    let secret = canary("secret");
    let g = tenant(&secret);
    let fake = g.serve();
    let sb = quickstart(&fake.url(), &secret_credential());
    let mut outputs = Vec::new();
    for args in [
        &["plan", "{dir}", "--log-level", "trace", "--out", "{dir}/plan.json"][..],
        &["apply", "{dir}", "--auto-approve", "--log-level", "trace"][..],
        &["drift", "{dir}", "--log-level", "trace"][..],
        &["audit", "review", "{dir}", "--log-level", "trace"][..],
    ] {
        let r = run(&sb, &secret, args);
        outputs.push((format!("{args:?}"), format!("{}\n{}", r.stdout, r.stderr)));
    }
    outputs.push(("plan file".into(), sb.read("plan.json")));
    outputs.push(("audit log".into(), sb.read(".keyward/audit.jsonl")));
    let passwords = g.passwords();
    assert!(!passwords.is_empty());
    let mut needles = vec![secret.clone(), "fake-access-token-".to_string()];
    needles.extend(passwords);
    for (label, text) in &outputs {
        for n in &needles {
            assert!(!text.contains(n.as_str()), "{label} shows a secret");
        }
    }
    // Trace logging did run (the outputs are not trivially empty).
    assert!(outputs[0].1.len() > 100);
}

// -- Reads through the library ------------------------------------------------------------------

fn target(url: &str) -> Target {
    Target {
        name: Name::new("entra").unwrap(),
        users: UsersScope::All,
        ca_file: None,
        connection: Connection::Graph {
            tenant: TENANT.into(),
            client_id: CLIENT.into(),
            credential: ClientCredential::Secret(SecretRef::File("client-secret".into())),
            endpoint: Some(url.into()),
            authority: Some(url.into()),
            federated_domains: vec![],
        },
    }
}

fn open(g: &Graph, url: &str, root: &Path, access: Access) -> Box<dyn provider::Provider> {
    let secret = canary("secret");
    g.entra().register(CLIENT, Some(&secret));
    std::fs::write(root.join("client-secret"), &secret).unwrap();
    provider::open(&target(url), root, access).unwrap()
}

#[tokio::test]
async fn a_group_of_30000_members_is_read_in_pages_not_per_member() {
    let g = Graph::new();
    let users = g.add_users("member", TENANT, 30_000);
    let big = g.add_group("everyone");
    g.add_members(&big, &users);
    let fake = g.serve();
    let dir = tempfile::tempdir().unwrap();
    let mut p = open(&g, &fake.url(), dir.path(), Access::Read);
    let live = p.read().await.unwrap();
    let everyone = live.bindings.iter().find(|b| b.binding == Binding::Group("everyone".into())).unwrap();
    assert_eq!(everyone.members.len(), 30_000);
    assert_eq!(live.accounts.len(), 30_000);
    // ceil(30000/999) = 31 member pages: the first inside a $batch, the other 30 followed.
    assert_eq!(g.log().count("GET", |p| p.ends_with("/members")), 30);
    assert_eq!(g.log().count("POST", |p| p == "/v1.0/$batch"), 1);
    // ceil(30000/999) = 31 user pages.
    assert_eq!(g.log().count("GET", |p| p == "/v1.0/users"), 31);
    // Plus the directory roles' eligibility schedules and policies (two requests); the group's
    // eligibility and policy ride in the members' $batch.
    assert!(g.graph_requests() <= 31 + 30 + 1 + 6 + 2, "{}", g.graph_requests());
}

#[tokio::test]
async fn sign_in_activity_is_read_for_the_review_only_and_where_licensed() {
    let g = Graph::new();
    let id = g.add_user("ann@northwind.example", "Ann", true);
    g.set_last_sign_in(&id, "2026-10-01T08:00:00Z");
    let fake = g.serve();
    let dir = tempfile::tempdir().unwrap();
    let live = open(&g, &fake.url(), dir.path(), Access::Read).read().await.unwrap();
    assert_eq!(live.accounts[0].last_sign_in, None);
    let live = open(&g, &fake.url(), dir.path(), Access::Review).read().await.unwrap();
    assert_eq!(live.accounts[0].last_sign_in.map(|t| t.to_rfc3339()), Some("2026-10-01T08:00:00+00:00".into()));
    g.scenario(Scenario::NoSignInActivity);
    let live = open(&g, &fake.url(), dir.path(), Access::Review).read().await.unwrap();
    assert_eq!(live.accounts[0].last_sign_in, None);
}

#[test]
fn drift_shows_who_granted_access_outside_git_and_when() {
    let secret = canary("secret");
    let g = tenant(&secret);
    let fake = g.serve();
    let sb = quickstart(&fake.url(), &secret_credential());
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    // Someone makes Michael a finance admin in the portal.
    let michael = g.user("michael.suyama@northwind.example").unwrap()["id"].as_str().unwrap().to_string();
    let admins = g.group_id("finance-admins").unwrap();
    g.add_members(&admins, std::slice::from_ref(&michael));
    g.outside_write("Add member to group", &michael, "eve.mallory@northwind.example");

    let r = run(&sb, &secret, &["drift", "{dir}"]);
    r.expect(2);
    assert!(r.stdout.contains("directory.assignment.michael.suyama/finance-admin"), "{}", r.stdout);
    assert!(r.stdout.contains("changed outside git by eve.mallory@northwind.example at "), "{}", r.stdout);
    assert!(r.stdout.contains("(Add member to group)"), "{}", r.stdout);
    let md = run(&sb, &secret, &["drift", "{dir}", "--format", "markdown"]);
    assert!(md.stdout.contains("(changed outside git by eve.mallory@northwind.example at "), "{}", md.stdout);
    // Keyward's own earlier writes are not blamed for it.
    assert_eq!(r.stdout.matches("changed outside git by").count(), 1, "{}", r.stdout);

    // The drift alert says it too.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
                    return body.to_string();
                }
            }
            if n == 0 {
                return String::new();
            }
        }
    });
    sb.edit("keyward.yaml", "audit:\n", "notify:\n  webhook: ${env:KEYWARD_TEST_HOOK}\naudit:\n");
    let r = sb.run_with_env(&["drift", "{dir}", "--notify"], &[(SECRET_VAR, &secret), ("KEYWARD_TEST_HOOK", &hook)]);
    r.expect(2);
    let alert = server.join().unwrap();
    assert!(alert.contains("michael.suyama/finance-admin"), "{alert}");
    assert!(alert.contains("changed outside git by eve.mallory@northwind.example"), "{alert}");
}

fn assign(user: &str, group: &str) -> keyward::plan::Change {
    use keyward::plan::{Action, Address, Change, ObjectKind, Operation, Principal, Reason, ReasonKind};
    Change {
        address: Address::new(&Name::new("entra").unwrap(), ObjectKind::Assignment, format!("{user}/{group}")),
        action: Action::Assign,
        reason: Reason::new(ReasonKind::Config, "test"),
        before: None,
        after: None,
        fingerprint: "absent".into(),
        subject: None,
        notes: vec![],
        operation: Operation::Assign { principal: Principal::User(user.into()), binding: Binding::Group(group.into()) },
    }
}

#[tokio::test]
async fn a_member_added_since_the_read_does_not_fail_the_others_of_its_chunk() {
    let g = Graph::new();
    let users = g.add_users("u", TENANT, 3);
    let gid = g.add_group("team");
    let fake = g.serve();
    let dir = tempfile::tempdir().unwrap();
    let mut p = open(&g, &fake.url(), dir.path(), Access::Write);
    p.read().await.unwrap();
    // Someone adds u1 after the read: the all-or-nothing bind of u0, u1, u2 is refused.
    g.add_members(&gid, &users[1..2]);
    let changes: Vec<_> = (0..3).map(|i| assign(&format!("u{i}@{TENANT}"), "team")).collect();
    let refs: Vec<_> = changes.iter().collect();
    let results = p.apply(&refs).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(g.members(&gid).len(), 3);
    // Three $batch requests: the read's member pages, the refused bind, the single additions.
    assert_eq!(g.log().count("POST", |p| p == "/v1.0/$batch"), 3);
}

#[test]
fn users_in_federated_domains_get_no_password() {
    let secret = canary("secret");
    let g = tenant(&secret);
    g.add_federated_domain("northwind.example");
    let fake = g.serve();
    let sb = quickstart(&fake.url(), &secret_credential());
    sb.edit("keyward.yaml", "    endpoint: ", "    federatedDomains: [Northwind.Example]\n    endpoint: ");
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    // The fake refuses a federated user without onPremisesImmutableId: every user was created
    // with one, and none with a password.
    assert!(g.passwords().is_empty(), "no initial password was sent");
    let nancy = g.user("nancy.davolio@northwind.example").expect("created");
    let immutable = nancy["onPremisesImmutableId"].as_str().unwrap();
    assert_eq!(immutable, nancy["employeeId"].as_str().unwrap_or("nancy.davolio@northwind.example"));

    // federatedDomains belongs to graph targets only.
    let other = Sandbox::example("quickstart");
    other.edit(
        "keyward.yaml",
        "    path: .keyward/directory.json",
        "    path: .keyward/directory.json\n    federatedDomains: [northwind.example]",
    );
    let r = other.run(&["validate", "{dir}"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("federatedDomains") || r.stdout.contains("federatedDomains"), "{}{}", r.stdout, r.stderr);
}

/// The access review reads each person's registered sign-in methods and names the privileged
/// people covered by `mfa: required` who have registered no method the policy accepts.
#[test]
fn the_access_review_names_admins_without_an_accepted_second_factor() {
    let secret = canary("secret");
    let g = tenant(&secret);
    let fake = g.serve();
    let sb = quickstart(&fake.url(), &secret_credential());
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    let id = |upn: &str| g.user(upn).unwrap()["id"].as_str().unwrap().to_string();
    // Both hold it-admin; the quick start's policy accepts fido2, the authenticator app and
    // Windows Hello, and forbids sms.
    let steven = id("steven.buchanan@northwind.example");
    let michael = id("michael.suyama@northwind.example");
    g.add_user_method(&steven, "#microsoft.graph.passwordAuthenticationMethod");
    g.add_user_method(&steven, "#microsoft.graph.fido2AuthenticationMethod");
    g.add_user_method(&michael, "#microsoft.graph.passwordAuthenticationMethod");
    g.add_user_method(&michael, "#microsoft.graph.phoneAuthenticationMethod");

    let before = g.log().count("POST", |p| p.ends_with("/$batch"));
    let r = run(&sb, &secret, &["audit", "review", "{dir}", "--format", "json"]);
    r.expect(0);
    let items = r.json()["items"].as_array().unwrap().clone();
    let unregistered: Vec<&serde_json::Value> = items
        .iter()
        .filter(|i| i["detail"].as_str().is_some_and(|d| d.contains("[auth.mfa-not-registered]")))
        .collect();
    // Michael registered only a password and sms (forbidden); Nancy (finance-admin, also
    // privileged) registered nothing; Steven has a FIDO2 key.
    let subjects: Vec<&str> = unregistered.iter().map(|i| i["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["directory.user.michael.suyama", "directory.user.nancy.davolio"], "{}", r.stdout);
    let detail = unregistered[0]["detail"].as_str().unwrap();
    assert!(detail.contains("(registered: password, sms)"), "{detail}");
    assert!(unregistered[1]["detail"].as_str().unwrap().contains("(registered: none)"));
    // Read in batches of twenty, not one request per person.
    let batches = g.log().count("POST", |p| p.ends_with("/$batch")) - before;
    let people = g.user_count();
    assert!(batches < people, "{batches} batches for {people} people");

    // A plan does not read them (they cost a request per twenty people), so it has no such finding.
    let r = run(&sb, &secret, &["plan", "{dir}", "--format", "json"]);
    r.expect(0);
    assert!(!r.stdout.contains("auth.mfa-not-registered"), "{}", r.stdout);
}

// -- Eligibility (Privileged Identity Management) -----------------------------------------------

/// Global Administrator's role template id, as the fake (and Entra ID) has it.
const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";

/// Makes Priya eligible for Global Administrator (until a set time, activated for at most 4h
/// with MFA, a justification and an owner's approval) and for the it-admins group (activated
/// for at most 2h).
fn make_priya_eligible(sb: &Sandbox) {
    sb.write(
        "roles/admin.yaml",
        "kind: Role\nname: global-admin\ndescription: Administers the whole tenant\nprivileged: true\nowners: [steven.buchanan, andrew.fuller]\nbindings:\n  directory: {directoryRole: Global Administrator}\n",
    );
    sb.edit(
        "users/it.yaml",
        "employeeId: \"E1021\"\n",
        "employeeId: \"E1021\"\nroles:\n  - role: global-admin\n    eligible: true\n    expires: 2030-12-31T18:00:00Z\n    maxActivation: 4h\n    requires: {approval: owners, mfa: true, justification: true}\n  - role: it-admin\n    eligible: true\n    expires: 2030-12-31\n    maxActivation: 2h\n",
    );
}

#[test]
fn eligible_assignments_converge_on_graph_and_their_drift_is_planned_back() {
    let secret = canary("secret");
    let g = tenant(&secret);
    let fake = g.serve();
    let sb = quickstart(&fake.url(), &secret_credential());
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    make_priya_eligible(&sb);

    let plan = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    plan.expect(2);
    insta::assert_snapshot!("eligibility_plan", plan.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);

    // Eligible, not active: no role assignment and no membership for Priya.
    let priya = g.user("priya.raman@northwind.example").unwrap()["id"].as_str().unwrap().to_string();
    let roles = g.role_eligibilities();
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(roles[0]["principalId"], priya.as_str());
    assert_eq!(roles[0]["roleDefinitionId"], GLOBAL_ADMIN);
    assert_eq!(roles[0]["scheduleInfo"]["expiration"]["endDateTime"], "2030-12-31T18:00:00Z");
    assert!(!g.role_assignments().iter().any(|a| a["principalId"] == priya.as_str()));
    let admins = g.group_id("it-admins").unwrap();
    assert!(!g.members(&admins).contains(&priya));
    let groups = g.group_eligibilities();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!((groups[0]["principalId"].as_str(), groups[0]["groupId"].as_str()), (Some(&*priya), Some(&*admins)));
    // The role's activation rules are its policy's.
    let rule = |r: &str| g.policy_rule(GLOBAL_ADMIN, r).unwrap();
    assert_eq!(rule("Expiration_EndUser_Assignment")["maximumDuration"], "PT4H");
    assert_eq!(
        rule("Enablement_EndUser_Assignment")["enabledRules"],
        json!(["MultiFactorAuthentication", "Justification"])
    );
    let approval = rule("Approval_EndUser_Assignment");
    assert_eq!(approval["setting"]["isApprovalRequired"], true);
    let mut approvers: Vec<String> = approval["setting"]["approvalStages"][0]["primaryApprovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["userId"].as_str().unwrap().to_string())
        .collect();
    approvers.sort();
    let mut owners: Vec<String> = ["steven.buchanan", "andrew.fuller"]
        .iter()
        .map(|u| g.user(&format!("{u}@northwind.example")).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    owners.sort();
    assert_eq!(approvers, owners);
    let group_rule = g.group_policy_rule(&admins, "member", "Expiration_EndUser_Assignment").unwrap();
    assert_eq!(group_rule["maximumDuration"], "PT2H");

    // Changed outside git: the policy loosened, the eligibility removed, someone else made
    // eligible. The plan puts each back.
    let portal = g.portal("breakglass@northwind.example");
    portal.update_policy_rule(GLOBAL_ADMIN, "Expiration_EndUser_Assignment", json!({"maximumDuration": "PT12H"}));
    portal.update_policy_rule(GLOBAL_ADMIN, "Enablement_EndUser_Assignment", json!({"enabledRules": []}));
    portal.remove_role_eligibility(roles[0]["id"].as_str().unwrap());
    let michael = g.user("michael.suyama@northwind.example").unwrap()["id"].as_str().unwrap().to_string();
    portal.make_role_eligible("Global Administrator", &michael, None).unwrap();
    let drift = run(&sb, &secret, &["plan", "{dir}", "--format", "json", "--detailed-exitcode"]);
    drift.expect(2);
    let mut changes = support::changes(&drift.json());
    changes.sort();
    assert_eq!(
        changes,
        [
            ("directory.activation.global-admin".to_string(), "update".to_string()),
            ("directory.eligibility.michael.suyama/global-admin".to_string(), "revoke".to_string()),
            ("directory.eligibility.priya.raman/global-admin".to_string(), "assign".to_string()),
        ]
    );
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    assert_eq!(rule("Expiration_EndUser_Assignment")["maximumDuration"], "PT4H");
    let roles = g.role_eligibilities();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["principalId"], priya.as_str());

    // Ending the eligibility in git ends it on the tenant.
    sb.edit("users/it.yaml", "    expires: 2030-12-31T18:00:00Z\n", "    expires: 2030-06-30T12:00:00Z\n");
    let moved = run(&sb, &secret, &["plan", "{dir}", "--format", "json"]);
    assert_eq!(
        support::changes(&moved.json()),
        [("directory.eligibility.priya.raman/global-admin".to_string(), "update".to_string())]
    );
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(g.role_eligibilities()[0]["scheduleInfo"]["expiration"]["endDateTime"], "2030-06-30T12:00:00Z");
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}
