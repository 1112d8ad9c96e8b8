//! Every built-in rule on a violating and a clean configuration, through the library: load,
//! validate, evaluate with a fixed clock (and, for the live rules, a live state and a plan).

use std::collections::BTreeMap;
use std::path::PathBuf;

use keyward::model::{
    AuthMethod, Binding, CredentialType, LiveAccount, LiveBinding, LiveCredential, LiveServiceAccount, LiveTarget,
    Name, Severity, Timestamp, UserAttrs,
};
use keyward::plan::{Action, Address, Change, ConfigRef, ObjectKind, Operation, Plan, Principal, Reason, ReasonKind};
use keyward::policy::{self, Finding, PolicyContext, PolicyOptions};

const NOW: &str = "2026-11-28T12:00:00Z";

const SETTINGS: &str = "version: 1\ntargets:\n  directory:\n    provider: file\n    path: .keyward/directory.json\n";

const ROLES: &str = "\
kind: Role
name: buyer
duties: [purchase-requisition]
bindings:
  directory: {group: buyers}
---
kind: Role
name: approver
duties: [purchase-order-approval]
bindings:
  directory: {group: approvers}
---
kind: Role
name: admin
privileged: true
requires: {authentication: mfa, clearance: restricted}
bindings:
  directory: {group: admins}
";

const SOD: &str = "\
kind: SodRule
name: requisition-vs-approval
first: {duties: [purchase-requisition]}
second: {roles: [approver]}
severity: deny
description: Nobody approves their own purchases
mitigation: Route approvals to a second person
";

fn now(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// A configuration folder written from (path, text) pairs; `keyward.yaml` is added unless
/// given.
struct Config {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Config {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        if !files.iter().any(|(p, _)| *p == "keyward.yaml") {
            std::fs::write(root.join("keyward.yaml"), SETTINGS).unwrap();
        }
        for (p, text) in files {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Config { _dir: dir, root }
    }

    fn eval(&self, at: &str, live: Option<&BTreeMap<Name, LiveTarget>>, plan: Option<&Plan>) -> Vec<Finding> {
        let loaded = keyward::load::load_dir(&self.root).unwrap();
        let validated = keyward::validate::validate(&loaded);
        assert!(!validated.has_errors(), "the fixture must be valid: {:#?}", validated.diagnostics);
        let ctx = PolicyContext {
            desired: validated.state.as_ref().unwrap(),
            loaded: &loaded,
            origins: &validated.origins,
            now: now(at),
            plan,
            live,
            undelivered: &[],
            pinned: &keyward::model::contents::NO_SNAPSHOTS,
            options: PolicyOptions::default(),
        };
        policy::evaluate(&ctx)
    }

    fn findings(&self) -> Vec<Finding> {
        self.eval(NOW, None, None)
    }
}

/// The findings of one rule, as (severity, "file:line:column").
fn of(findings: &[Finding], rule: &str) -> Vec<(Severity, String)> {
    findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| {
            let at = f.location.as_ref().map(|l| format!("{}:{}:{}", l.file.display(), l.line, l.column));
            (f.severity, at.unwrap_or_default())
        })
        .collect()
}

fn one<'a>(findings: &'a [Finding], rule: &str) -> &'a Finding {
    let all: Vec<&Finding> = findings.iter().filter(|f| f.rule == rule).collect();
    assert_eq!(all.len(), 1, "expected one {rule} finding, got {findings:#?}");
    all[0]
}

fn user(name: &str, extra: &str) -> String {
    format!("kind: User\nname: {name}\nuserName: {name}@example.test\n{extra}")
}

// ---------------------------------------------------------------------------------------------
// Segregation of duties

#[test]
fn sod_conflict_points_at_the_grant_that_completes_it() {
    let users = [user("alice", "roles: [buyer]\n"), user("bob", "roles:\n  - buyer\n  - approver\n")].join("---\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("sod.yaml", SOD), ("users.yaml", &users)]);
    let f = c.findings();
    assert_eq!(of(&f, "sod.conflict"), vec![(Severity::Deny, "users.yaml:11:5".to_string())]);
    let bob = one(&f, "sod.conflict");
    assert_eq!(bob.address, "user.bob");
    assert!(bob.message.contains("`buyer` (purchase-requisition) and `approver`"), "{}", bob.message);
    assert!(bob.message.contains("Nobody approves their own purchases"), "{}", bob.message);
    let help = bob.help.as_deref().unwrap();
    assert!(help.starts_with("Route approvals to a second person."), "{help}");
    assert!(help.contains("sod.yaml:2"), "{help}");
}

#[test]
fn sod_clean_configuration_has_no_conflict() {
    let users = [user("alice", "roles: [buyer]\n"), user("bob", "roles: [approver]\n")].join("---\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("sod.yaml", SOD), ("users.yaml", &users)]);
    assert!(of(&c.findings(), "sod.conflict").is_empty());
}

#[test]
fn sod_detailed_grant_points_at_its_role() {
    let users = user("bob", "roles:\n  - approver\n  - role: buyer\n    expires: 2027-01-31\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("sod.yaml", SOD), ("users.yaml", &users)]);
    assert_eq!(of(&c.findings(), "sod.conflict"), vec![(Severity::Deny, "users.yaml:6:11".to_string())]);
}

#[test]
fn sod_exception_allows_until_it_expires() {
    let sod = format!("{SOD}exceptions:\n  - user: bob\n    reason: Two-person team\n    expires: 2027-01-31\n");
    let users = user("bob", "roles: [buyer, approver]\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("sod.yaml", &sod), ("users.yaml", &users)]);
    // Before and on the expiry date: allowed, nothing reported.
    for at in [NOW, "2027-01-31T23:59:59Z"] {
        let f = c.eval(at, None, None);
        assert!(of(&f, "sod.conflict").is_empty(), "{at}: {f:#?}");
        assert!(of(&f, "sod.exception-expired").is_empty(), "{at}");
    }
    // After it: the conflict is back, and the stale exception is reported on its date.
    let f = c.eval("2027-02-01T00:00:00Z", None, None);
    let conflict = one(&f, "sod.conflict");
    assert_eq!(conflict.severity, Severity::Deny);
    assert!(conflict.message.contains("exception for `bob` expired on 2027-01-31"), "{}", conflict.message);
    assert_eq!(of(&f, "sod.exception-expired"), vec![(Severity::Warn, "sod.yaml:11:14".to_string())]);
}

#[test]
fn sod_expired_grants_do_not_count() {
    let users = user("bob", "roles:\n  - approver\n  - role: buyer\n    expires: 2026-01-31\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("sod.yaml", SOD), ("users.yaml", &users)]);
    let f = c.findings();
    assert!(of(&f, "sod.conflict").is_empty());
    assert_eq!(of(&f, "hygiene.expired-assignment"), vec![(Severity::Info, "users.yaml:7:14".to_string())]);
}

#[test]
fn sod_applies_to_service_accounts() {
    let sa = "kind: ServiceAccount\nname: bot\nowner: alice\nroles: [buyer, approver]\n";
    let c =
        Config::new(&[("roles.yaml", ROLES), ("sod.yaml", SOD), ("users.yaml", &user("alice", "")), ("sa.yaml", sa)]);
    let f = c.findings();
    assert_eq!(one(&f, "sod.conflict").address, "service-account.bot");
}

#[test]
fn sod_rule_severity_is_the_findings_severity() {
    let sod = SOD.replace("severity: deny", "severity: warn");
    let c = Config::new(&[
        ("roles.yaml", ROLES),
        ("sod.yaml", &sod),
        ("users.yaml", &user("bob", "roles: [buyer, approver]\n")),
    ]);
    assert_eq!(one(&c.findings(), "sod.conflict").severity, Severity::Warn);
}

fn account(id: &str, user_name: &str, active: bool) -> LiveAccount {
    LiveAccount {
        id: id.into(),
        user_name: user_name.into(),
        attrs: UserAttrs::default(),
        active,
        last_sign_in: None,
        registered_methods: None,
        fingerprint: format!("fp-{id}"),
    }
}

fn group(id: &str, name: &str, members: &[&str]) -> LiveBinding {
    LiveBinding {
        id: id.into(),
        binding: Binding::Group(name.into()),
        members: members.iter().map(|m| m.to_string()).collect(),
        fingerprint: format!("fp-{id}"),
    }
}

fn live(target: LiveTarget) -> BTreeMap<Name, LiveTarget> {
    [(Name::new("directory").unwrap(), target)].into()
}

fn plan_of(changes: Vec<Change>) -> Plan {
    let directory = Name::new("directory").unwrap();
    keyward::plan::assemble(changes, ConfigRef { digest: "sha256:0".into(), commit: None }, vec![directory], now(NOW))
}

fn revoke(who: &str, user_name: &str, group: &str) -> Change {
    Change {
        address: Address::new(&Name::new("directory").unwrap(), ObjectKind::Assignment, format!("{who}/{group}")),
        action: Action::Revoke,
        reason: Reason::new(ReasonKind::Drift, "given outside git"),
        before: None,
        after: None,
        fingerprint: "fp".into(),
        subject: Some(who.into()),
        notes: vec![],
        operation: Operation::Revoke {
            principal: Principal::User(user_name.into()),
            binding: Binding::Group(group.into()),
        },
    }
}

#[test]
fn live_conflicts_that_git_does_not_explain_are_findings() {
    let users = [user("alice", "roles: [buyer]\n"), user("bob", "roles: [buyer, approver]\n")].join("---\n");
    let sod = format!("{SOD}exceptions:\n  - user: bob\n    reason: Two-person team\n    expires: 2027-01-31\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("sod.yaml", &sod), ("users.yaml", &users)]);
    let state = live(LiveTarget {
        accounts: vec![
            account("1", "Alice@example.test", true),
            account("2", "bob@example.test", true),
            account("3", "mallory@elsewhere.test", true),
        ],
        bindings: vec![group("g1", "buyers", &["1", "2", "3"]), group("g2", "Approvers", &["1", "2", "3"])],
        ..LiveTarget::default()
    });
    // Without a plan that fixes it, a live conflict has the rule's severity.
    let f = c.eval(NOW, Some(&state), None);
    let mut got: Vec<(String, Severity)> =
        f.iter().filter(|f| f.rule == "sod.live-conflict").map(|f| (f.address.clone(), f.severity)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            // alice got `approver` outside git; bob's is in git and excepted, so not reported.
            ("directory.assignment.alice/approver".to_string(), Severity::Deny),
            ("directory.assignment.mallory@elsewhere.test/approver".to_string(), Severity::Deny),
        ]
    );
    let alice = f.iter().find(|f| f.address.starts_with("directory.assignment.alice")).unwrap();
    assert!(alice.message.contains("git does not give them `approver`"), "{}", alice.message);
    assert_eq!(alice.location.as_ref().unwrap().line, 2, "points at alice's document");
    // A plan that revokes alice's extra role resolves hers: reported as a warning.
    let plan = plan_of(vec![revoke("alice", "Alice@example.test", "approvers")]);
    let f = c.eval(NOW, Some(&state), Some(&plan));
    let alice = f.iter().find(|f| f.address.starts_with("directory.assignment.alice")).unwrap();
    assert_eq!(alice.severity, Severity::Warn);
    assert!(alice.help.as_deref().unwrap().contains("the plan removes"));
}

#[test]
fn live_state_that_matches_git_is_clean() {
    let users = [user("alice", "roles: [buyer]\n"), user("bob", "roles: [approver]\n")].join("---\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("sod.yaml", SOD), ("users.yaml", &users)]);
    let state = live(LiveTarget {
        accounts: vec![account("1", "alice@example.test", true), account("2", "bob@example.test", true)],
        bindings: vec![group("g1", "buyers", &["1"]), group("g2", "approvers", &["2"])],
        ..LiveTarget::default()
    });
    let f = c.eval(NOW, Some(&state), None);
    assert!(f.is_empty(), "{f:#?}");
}

// ---------------------------------------------------------------------------------------------
// Access hygiene

#[test]
fn privileged_roles_need_an_expiry() {
    let users = [user("alice", "roles: [admin]\n"), user("bob", "roles:\n  - role: admin\n    expires: 2027-01-31\n")]
        .join("---\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("users.yaml", &users)]);
    let f = c.findings();
    assert_eq!(of(&f, "hygiene.privileged-without-expiry"), vec![(Severity::Deny, "users.yaml:4:9".to_string())]);
    assert!(of(&f, "hygiene.privileged-expiry-too-long").is_empty(), "no maximum is configured");
}

#[test]
fn privileged_assignments_beyond_the_maximum() {
    let settings = format!("{SETTINGS}policy:\n  maxPrivilegedAssignment: 90d\n");
    let users = [
        user("alice", "roles:\n  - role: admin\n    expires: 2027-02-20\n"),
        user("bob", "roles:\n  - role: admin\n    expires: 2027-06-30\n"),
    ]
    .join("---\n");
    let c = Config::new(&[("keyward.yaml", &settings), ("roles.yaml", ROLES), ("users.yaml", &users)]);
    let f = c.findings();
    assert_eq!(of(&f, "hygiene.privileged-expiry-too-long"), vec![(Severity::Deny, "users.yaml:13:14".to_string())]);
    assert!(one(&f, "hygiene.privileged-expiry-too-long").help.as_deref().unwrap().contains("2027-02-26"));
}

#[test]
fn manager_chains_where_required() {
    let settings = format!("{SETTINGS}policy:\n  requireManager: all\n  topOfChain: [ceo]\n");
    let users = [
        user("ceo", ""),
        user("alice", "manager: ceo\n"),
        user("bob", "manager: gone\n"),
        user("gone", "manager: ceo\nstatus: disabled\n"),
        user("carol", ""),
    ]
    .join("---\n");
    let c = Config::new(&[("keyward.yaml", &settings), ("users.yaml", &users)]);
    let f = c.findings();
    let mut got: Vec<&str> =
        f.iter().filter(|f| f.rule == "hygiene.manager-chain").map(|f| f.address.as_str()).collect();
    got.sort();
    assert_eq!(got, vec!["user.bob", "user.carol"]);
    // Not required: nothing.
    let c = Config::new(&[("users.yaml", &users)]);
    assert!(of(&c.findings(), "hygiene.manager-chain").is_empty());
}

#[test]
fn service_accounts_need_an_active_owner() {
    let users = [user("alice", ""), user("gone", "status: disabled\n")].join("---\n");
    let sas =
        "kind: ServiceAccount\nname: ok-bot\nowner: alice\n---\nkind: ServiceAccount\nname: orphan\nowner: gone\n";
    let c = Config::new(&[("users.yaml", &users), ("sa.yaml", sas)]);
    let f = c.findings();
    assert_eq!(of(&f, "hygiene.service-account-owner"), vec![(Severity::Warn, "sa.yaml:7:8".to_string())]);
    // Live: an unowned service account git does not know.
    let state = live(LiveTarget {
        service_accounts: vec![LiveServiceAccount {
            application_id: None,
            active: None,
            id: "s1".into(),
            name: "shadow-bot".into(),
            display_name: None,
            description: None,
            owner: None,
            credentials: vec![],
            fingerprint: "fp".into(),
        }],
        ..LiveTarget::default()
    });
    let f = c.eval(NOW, Some(&state), None);
    assert!(f.iter().any(|f| f.address == "directory.service-account.shadow-bot"), "{f:#?}");
    // An application user stands for an app registration: its owner is the directory's to report.
    let app = "aaaaaaaa-0000-0000-0000-0000000000a1";
    let state = live(LiveTarget {
        service_accounts: vec![LiveServiceAccount {
            application_id: Some(app.into()),
            active: Some(true),
            id: "s2".into(),
            name: app.into(),
            display_name: None,
            description: None,
            owner: None,
            credentials: vec![],
            fingerprint: "fp".into(),
        }],
        ..LiveTarget::default()
    });
    let f = c.eval(NOW, Some(&state), None);
    assert!(!f.iter().any(|f| f.address.contains(app)), "{f:#?}");
    // An app registration read from Graph carries its client id too, and is still reported.
    let state = live(LiveTarget {
        service_accounts: vec![LiveServiceAccount {
            application_id: Some(app.into()),
            active: None,
            id: "s3".into(),
            name: "orphan-bot".into(),
            display_name: None,
            description: None,
            owner: None,
            credentials: vec![],
            fingerprint: "fp".into(),
        }],
        ..LiveTarget::default()
    });
    let f = c.eval(NOW, Some(&state), None);
    assert!(f.iter().any(|f| f.address == "directory.service-account.orphan-bot"), "{f:#?}");
}

#[test]
fn disabled_users_holding_roles() {
    let users = [user("alice", "status: disabled\nroles: [buyer]\n"), user("bob", "status: disabled\n")].join("---\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("users.yaml", &users)]);
    let f = c.findings();
    assert_eq!(of(&f, "hygiene.disabled-user-with-roles"), vec![(Severity::Warn, "users.yaml:4:9".to_string())]);
    // Live: a disabled account still in a group.
    let c = Config::new(&[("roles.yaml", ROLES), ("users.yaml", &user("bob", "status: disabled\n"))]);
    let state = live(LiveTarget {
        accounts: vec![account("2", "bob@example.test", false)],
        bindings: vec![group("g1", "buyers", &["2"])],
        ..LiveTarget::default()
    });
    let f = c.eval(NOW, Some(&state), None);
    assert_eq!(one(&f, "hygiene.disabled-user-with-roles").address, "directory.user.bob");
}

// ---------------------------------------------------------------------------------------------
// Authentication

const MFA: &str = "kind: AuthenticationPolicy\nname: privileged-mfa\nappliesTo: {privileged: true}\nmfa: required\nmethods:\n  allowed: [fido2]\n  forbidden: [sms]\nstaleAfter: 90d\n";

#[test]
fn privileged_holders_need_mfa() {
    let users = user("alice", "roles:\n  - role: admin\n    expires: 2027-01-31\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("users.yaml", &users)]);
    let f = c.findings();
    assert_eq!(of(&f, "auth.privileged-without-mfa"), vec![(Severity::Deny, "roles.yaml:15:13".to_string())]);
    assert!(one(&f, "auth.privileged-without-mfa").message.contains("`alice`"));
    let c = Config::new(&[("roles.yaml", ROLES), ("users.yaml", &users), ("auth.yaml", MFA)]);
    assert!(of(&c.findings(), "auth.privileged-without-mfa").is_empty());
    // A policy that lists the role covers its holders too.
    let by_role = MFA.replace("{privileged: true}", "{roles: [admin]}");
    let c = Config::new(&[("roles.yaml", ROLES), ("users.yaml", &users), ("auth.yaml", &by_role)]);
    assert!(of(&c.findings(), "auth.privileged-without-mfa").is_empty());
}

#[test]
fn phishing_resistant_roles_need_a_strict_policy() {
    let roles = ROLES.replace("authentication: mfa", "authentication: phishing-resistant");
    let users = user("alice", "roles:\n  - role: admin\n    expires: 2027-01-31\n");
    let lax = MFA.replace("allowed: [fido2]", "allowed: [fido2, microsoftAuthenticator]");
    let c = Config::new(&[("roles.yaml", &roles), ("users.yaml", &users), ("auth.yaml", &lax)]);
    assert_eq!(
        of(&c.findings(), "auth.phishing-resistant-not-enforced"),
        vec![(Severity::Deny, "roles.yaml:16:28".to_string())]
    );
    let c = Config::new(&[("roles.yaml", &roles), ("users.yaml", &users), ("auth.yaml", MFA)]);
    assert!(of(&c.findings(), "auth.phishing-resistant-not-enforced").is_empty());
}

#[test]
fn forbidden_methods_enabled_on_a_target() {
    let c = Config::new(&[("auth.yaml", MFA)]);
    let methods =
        |sms: bool| live(LiveTarget { auth_methods: Some([(AuthMethod::Sms, sms)].into()), ..LiveTarget::default() });
    let f = c.eval(NOW, Some(&methods(true)), None);
    let found = one(&f, "auth.forbidden-method-enabled");
    assert_eq!((found.severity, found.address.as_str()), (Severity::Deny, "directory.auth-method.sms"));
    assert_eq!(of(&f, "auth.forbidden-method-enabled")[0].1, "auth.yaml:7:15");
    // When the plan turns it off, it is a warning.
    let off = Change {
        address: Address::new(&Name::new("directory").unwrap(), ObjectKind::AuthMethod, "sms"),
        action: Action::Update,
        reason: Reason::new(ReasonKind::Policy, "forbidden"),
        before: None,
        after: None,
        fingerprint: "fp".into(),
        subject: None,
        notes: vec![],
        operation: Operation::SetAuthMethod { method: AuthMethod::Sms, enabled: false },
    };
    let f = c.eval(NOW, Some(&methods(true)), Some(&plan_of(vec![off])));
    assert_eq!(one(&f, "auth.forbidden-method-enabled").severity, Severity::Warn);
    let f = c.eval(NOW, Some(&methods(false)), None);
    assert!(of(&f, "auth.forbidden-method-enabled").is_empty());
}

#[test]
fn stale_accounts() {
    let users = [
        user("alice", "roles:\n  - role: admin\n    expires: 2027-01-31\n"),
        user("bob", "roles:\n  - role: admin\n    expires: 2027-01-31\n"),
    ]
    .join("---\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("users.yaml", &users), ("auth.yaml", MFA)]);
    let mut alice = account("1", "alice@example.test", true);
    alice.last_sign_in = Some(now("2026-06-01T00:00:00Z"));
    let mut bob = account("2", "bob@example.test", true);
    bob.last_sign_in = Some(now("2026-11-01T00:00:00Z"));
    let f = c.eval(NOW, Some(&live(LiveTarget { accounts: vec![alice, bob], ..LiveTarget::default() })), None);
    assert_eq!(one(&f, "auth.stale-account").address, "directory.user.alice");
}

// ---------------------------------------------------------------------------------------------
// Credentials

fn sa_with(cred: &str) -> String {
    format!("kind: ServiceAccount\nname: bot\nowner: alice\ncredentials:\n{cred}")
}

#[test]
fn credential_lifetimes_above_policy() {
    let settings = format!("{SETTINGS}policy:\n  maxSecretLifetime: 180d\n");
    let long = sa_with("  - name: api-secret\n    type: secret\n    lifetime: 365d\n");
    let c = Config::new(&[("keyward.yaml", &settings), ("users.yaml", &user("alice", "")), ("sa.yaml", &long)]);
    assert_eq!(
        of(&c.findings(), "credential.lifetime-exceeds-policy"),
        vec![(Severity::Deny, "sa.yaml:7:15".to_string())]
    );
    let ok = sa_with("  - name: api-secret\n    type: secret\n    lifetime: 90d\n");
    let c = Config::new(&[("keyward.yaml", &settings), ("users.yaml", &user("alice", "")), ("sa.yaml", &ok)]);
    assert!(of(&c.findings(), "credential.lifetime-exceeds-policy").is_empty());
}

fn live_credential(name: &str, start: &str, end: &str) -> BTreeMap<Name, LiveTarget> {
    live(LiveTarget {
        service_accounts: vec![LiveServiceAccount {
            application_id: None,
            active: None,
            id: "s1".into(),
            name: "bot".into(),
            display_name: None,
            description: None,
            owner: Some("alice@example.test".into()),
            credentials: vec![LiveCredential {
                id: "c1".into(),
                name: name.into(),
                kind: CredentialType::Secret,
                start: now(start),
                end: now(end),
                thumbprint: None,
            }],
            fingerprint: "fp".into(),
        }],
        ..LiveTarget::default()
    })
}

#[test]
fn credentials_in_their_rotation_window_or_expired() {
    let sa = sa_with("  - name: api-secret\n    type: secret\n    lifetime: 90d\n    rotateBefore: 14d\n");
    let c = Config::new(&[("users.yaml", &user("alice", "")), ("sa.yaml", &sa)]);
    // Ends in 30 days: clean.
    let fresh = live_credential("api-secret@2026-11-01", "2026-11-01T00:00:00Z", "2026-12-28T00:00:00Z");
    let f = c.eval(NOW, Some(&fresh), None);
    assert!(f.iter().all(|f| !f.rule.starts_with("credential.")), "{f:#?}");
    // Ends in 10 days: inside the window; nothing in the plan rotates it.
    let due = live_credential("api-secret@2026-09-10", "2026-09-10T00:00:00Z", "2026-12-08T00:00:00Z");
    let f = c.eval(NOW, Some(&due), None);
    let w = one(&f, "credential.rotation-window");
    assert_eq!((w.severity, w.address.as_str()), (Severity::Warn, "directory.credential.bot/api-secret"));
    assert_eq!(of(&f, "credential.rotation-window")[0].1, "sa.yaml:5:11");
    // Past its end.
    let gone = live_credential("api-secret", "2026-08-01T00:00:00Z", "2026-10-30T00:00:00Z");
    let f = c.eval(NOW, Some(&gone), None);
    assert_eq!(one(&f, "credential.expired").severity, Severity::Warn);
    // Made outside keyward with a longer lifetime than the configuration's.
    let long = live_credential("api-secret@2026-11-01", "2026-11-01T00:00:00Z", "2027-11-01T00:00:00Z");
    let f = c.eval(NOW, Some(&long), None);
    assert_eq!(one(&f, "credential.lifetime-exceeds-policy").severity, Severity::Warn);
}

// ---------------------------------------------------------------------------------------------
// Data

#[test]
fn data_readers_need_clearance() {
    let dc = "kind: DataClassification\nname: payroll\nlevel: restricted\nreaders: [admin, buyer]\n";
    let c = Config::new(&[("roles.yaml", ROLES), ("data.yaml", dc)]);
    let f = c.findings();
    assert_eq!(of(&f, "data.reader-without-clearance"), vec![(Severity::Deny, "data.yaml:4:18".to_string())]);
    assert!(one(&f, "data.reader-without-clearance").message.contains("role `buyer`"));
    let ok = "kind: DataClassification\nname: payroll\nlevel: restricted\nreaders: [admin]\n";
    let c = Config::new(&[("roles.yaml", ROLES), ("data.yaml", ok)]);
    assert!(of(&c.findings(), "data.reader-without-clearance").is_empty());
}

#[test]
fn data_assets_are_readable_by_roles_bound_there() {
    let dc =
        "kind: DataClassification\nname: payroll\nlevel: confidential\nassets:\n  directory:\n    tables: [payroll]\n";
    let c = Config::new(&[("roles.yaml", ROLES), ("data.yaml", dc)]);
    let f = c.findings();
    let mut got: Vec<&str> =
        f.iter().filter(|f| f.rule == "data.reader-without-clearance").map(|f| f.address.as_str()).collect();
    got.sort();
    assert_eq!(got, vec!["role.approver", "role.buyer"]);
    assert_eq!(of(&f, "data.reader-without-clearance")[0].1, "roles.yaml:5:14");
    // Naming the readers limits who can read it.
    let c = Config::new(&[("roles.yaml", ROLES), ("data.yaml", &format!("{dc}readers: [admin]\n"))]);
    assert!(of(&c.findings(), "data.reader-without-clearance").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Encryption

const ENCRYPTION: &str = "kind: EncryptionPolicy\nname: baseline\nkeys: {minRsaBits: 4096, allowedCurves: [p384]}\ncertificates: {maxLifetime: 397d}\nsecrets: {forbidInRepo: true}\n";

#[test]
fn weak_keys_and_long_certificates() {
    let sa = sa_with(
        "  - name: rsa-cert\n    type: certificate\n    lifetime: 90d\n    keyAlgorithm: rsa-3072\n  - name: ec-cert\n    type: certificate\n    lifetime: 800d\n    keyAlgorithm: ecdsa-p256\n  - name: good-cert\n    type: certificate\n    lifetime: 90d\n    keyAlgorithm: ecdsa-p384\n",
    );
    let c = Config::new(&[("users.yaml", &user("alice", "")), ("sa.yaml", &sa), ("enc.yaml", ENCRYPTION)]);
    let f = c.findings();
    assert_eq!(
        of(&f, "encryption.weak-key"),
        vec![(Severity::Deny, "sa.yaml:8:19".to_string()), (Severity::Deny, "sa.yaml:12:19".to_string())]
    );
    assert_eq!(of(&f, "encryption.certificate-lifetime"), vec![(Severity::Deny, "sa.yaml:11:15".to_string())]);
    // Without an EncryptionPolicy nothing is checked.
    let c = Config::new(&[("users.yaml", &user("alice", "")), ("sa.yaml", &sa)]);
    let f = c.findings();
    assert!(f.iter().all(|f| !f.rule.starts_with("encryption.")), "{f:#?}");
}

#[test]
fn insecure_target_urls() {
    // Validation already refuses plain http URLs; the policy checks the resolved settings too.
    let c = Config::new(&[]);
    let loaded = keyward::load::load_dir(&c.root).unwrap();
    let validated = keyward::validate::validate(&loaded);
    let mut state = validated.state.clone().unwrap();
    let target = state.settings.targets.values_mut().next().unwrap();
    target.connection = keyward::model::config::Connection::Scim {
        url: "http://scim.example.test/v2".into(),
        token: keyward::model::SecretRef::parse("${env:T}").unwrap(),
    };
    let ctx = PolicyContext::offline(&state, &loaded, &validated.origins, now(NOW));
    let f = policy::evaluate(&ctx);
    assert_eq!(one(&f, "encryption.insecure-url").address, "settings.targets.directory");
    target_loopback_is_fine(&c);
}

fn target_loopback_is_fine(c: &Config) {
    let loaded = keyward::load::load_dir(&c.root).unwrap();
    let validated = keyward::validate::validate(&loaded);
    let mut state = validated.state.clone().unwrap();
    let target = state.settings.targets.values_mut().next().unwrap();
    target.connection = keyward::model::config::Connection::Scim {
        url: "http://127.0.0.1:8080/v2".into(),
        token: keyward::model::SecretRef::parse("${env:T}").unwrap(),
    };
    let f = policy::evaluate(&PolicyContext::offline(&state, &loaded, &validated.origins, now(NOW)));
    assert!(of(&f, "encryption.insecure-url").is_empty());
}

/// A token-shaped string made at test time, so no file in git looks like a real secret.
fn generated(prefix: &str, n: usize) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let tail: String = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect();
    format!("{prefix}{tail}")
}

#[test]
fn plaintext_secrets_anywhere_in_the_configuration() {
    let token = generated(&["gh", "p_"].concat(), 36);
    let users = user("alice", &format!("# temporary access token: {token}\ndisplayName: Alice\n"));
    let c = Config::new(&[("users.yaml", &users), ("enc.yaml", ENCRYPTION)]);
    let f = c.findings();
    let s = one(&f, "encryption.plaintext-secret");
    assert_eq!(of(&f, "encryption.plaintext-secret"), vec![(Severity::Deny, "users.yaml:4:27".to_string())]);
    assert_eq!(s.address, "file:users.yaml");
    assert!(s.message.contains("GitHub token"), "{}", s.message);
    let json = serde_json::to_string(&f).unwrap();
    assert!(!json.contains(&token[4..]), "findings must never carry the secret");
    // Without forbidInRepo it is still reported, as a warning.
    let c = Config::new(&[("users.yaml", &users)]);
    assert_eq!(one(&c.findings(), "encryption.plaintext-secret").severity, Severity::Warn);
    // A secret reference is not a secret.
    let c = Config::new(&[("users.yaml", &user("alice", "")), ("enc.yaml", ENCRYPTION)]);
    assert!(of(&c.findings(), "encryption.plaintext-secret").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Settings

#[test]
fn rule_severities_can_be_changed_or_turned_off() {
    let users = user("bob", "roles: [buyer, approver]\n");
    let settings =
        format!("{SETTINGS}policy:\n  rules:\n    sod.conflict: warn\n    hygiene.expired-assignment: off\n");
    let c =
        Config::new(&[("keyward.yaml", &settings), ("roles.yaml", ROLES), ("sod.yaml", SOD), ("users.yaml", &users)]);
    assert_eq!(one(&c.findings(), "sod.conflict").severity, Severity::Warn);
    let typo = format!("{SETTINGS}policy:\n  rules:\n    sod.conflicts: off\n");
    let c = Config::new(&[("keyward.yaml", &typo)]);
    let f = c.findings();
    let s = one(&f, "policy.settings");
    assert_eq!(of(&f, "policy.settings")[0].1, "keyward.yaml:8:20");
    assert!(s.help.as_deref().unwrap().contains("did you mean `sod.conflict`?"), "{:?}", s.help);
}

#[test]
fn every_finding_has_a_location() {
    let users = [user("alice", "roles: [admin]\n"), user("bob", "roles: [buyer, approver]\n")].join("---\n");
    let c = Config::new(&[("roles.yaml", ROLES), ("sod.yaml", SOD), ("users.yaml", &users)]);
    let state = live(LiveTarget {
        accounts: vec![account("3", "mallory@elsewhere.test", true)],
        bindings: vec![group("g1", "buyers", &["3"]), group("g2", "approvers", &["3"])],
        auth_methods: Some([(AuthMethod::Sms, true)].into()),
        ..LiveTarget::default()
    });
    let f = c.eval(NOW, Some(&state), None);
    assert!(f.len() >= 3, "{f:#?}");
    for finding in &f {
        assert!(finding.location.is_some(), "{finding:#?}");
    }
}

#[test]
fn live_certificates_longer_than_the_policy() {
    let sa = sa_with("  - name: api-cert\n    type: certificate\n    lifetime: 90d\n    keyAlgorithm: ecdsa-p384\n");
    let c = Config::new(&[("users.yaml", &user("alice", "")), ("sa.yaml", &sa), ("enc.yaml", ENCRYPTION)]);
    let cert = |end: &str| {
        let mut l = live_credential("api-cert@2026-11-01", "2026-11-01T00:00:00Z", end);
        let t = l.values_mut().next().unwrap();
        t.service_accounts[0].credentials[0].kind = CredentialType::Certificate;
        l
    };
    let f = c.eval(NOW, Some(&cert("2028-11-01T00:00:00Z")), None);
    let long = f.iter().find(|f| f.rule == "encryption.certificate-lifetime").expect("a live finding");
    assert_eq!(
        (long.severity, long.address.as_str()),
        (Severity::Warn, "directory.credential.bot/api-cert@2026-11-01")
    );
    let f = c.eval(NOW, Some(&cert("2027-01-20T00:00:00Z")), None);
    assert!(of(&f, "encryption.certificate-lifetime").is_empty(), "{f:#?}");
}

// ---------------------------------------------------------------------------------------------
// What roles really contain (live role contents on Dataverse)

const D365_SETTINGS: &str = "version: 1\ntargets:\n  d365:\n    provider: dataverse\n    url: https://x.crm.dynamics.com\n    tenant: 456e4037-8afc-4f71-ae73-f9e51f634295\n    clientId: 55b1a2c7-9c3a-4911-a9b3-2555f9df8578\n    clientSecret: ${env:S}\n";

const D365_ROLES: &str = "\
kind: Role
name: clerk
bindings: {d365: {securityRole: Clerk}}
---
kind: Role
name: approver
requires: {clearance: restricted}
bindings: {d365: {securityRole: Approver}}
";

/// The d365 live state: `1` holds Clerk (in git), `2` holds Clerk and Approver (Approver outside
/// git); Clerk's contents are `clerk`.
fn d365(clerk: &[(&str, keyward::model::Depth)]) -> BTreeMap<Name, LiveTarget> {
    let role = |id: &str, name: &str, members: &[&str]| LiveBinding {
        id: id.into(),
        binding: Binding::SecurityRole(name.into()),
        members: members.iter().map(|m| m.to_string()).collect(),
        fingerprint: format!("fp-{id}"),
    };
    let contents = keyward::model::RoleContents {
        privileges: clerk.iter().map(|(p, d)| (p.to_string(), *d)).collect(),
        ..Default::default()
    };
    [(
        Name::new("d365").unwrap(),
        LiveTarget {
            accounts: vec![account("1", "alice@example.test", true), account("2", "bob@example.test", true)],
            bindings: vec![role("r1", "Clerk", &["1", "2"]), role("r2", "Approver", &["2"])],
            role_contents: [("Clerk".to_string(), contents)].into(),
            ..LiveTarget::default()
        },
    )]
    .into()
}

#[test]
fn live_privileges_put_a_role_on_a_side_of_an_sod_rule_in_git_and_live() {
    use keyward::model::Depth;
    let sod =
        "kind: SodRule\nname: post-vs-approve\nfirst: {privileges: [prvPostInvoice]}\nsecond: {roles: [approver]}\n";
    let users = [user("alice", "roles: [clerk, approver]\n"), user("bob", "roles: [clerk]\n")].join("---\n");
    let c = Config::new(&[
        ("keyward.yaml", D365_SETTINGS),
        ("roles.yaml", D365_ROLES),
        ("sod.yaml", sod),
        ("users.yaml", &users),
    ]);
    let rules = |f: &[Finding], rule: &str| -> Vec<String> {
        f.iter().filter(|x| x.rule == rule).map(|x| format!("{} {}", x.address, x.message)).collect()
    };
    // Clerk does not hold the privilege: no conflict anywhere.
    let f = c.eval(NOW, Some(&d365(&[("prvReadInvoice", Depth::Global)])), None);
    assert!(rules(&f, "sod.conflict").is_empty() && rules(&f, "sod.live-conflict").is_empty(), "{f:#?}");
    // It does (names compared without regard to case): alice in git, bob live (Approver outside git).
    let f = c.eval(NOW, Some(&d365(&[("PRVPOSTINVOICE", Depth::Local)])), None);
    assert_eq!(
        rules(&f, "sod.conflict"),
        vec![
            "user.alice `alice` holds `clerk` (privilege `PRVPOSTINVOICE` (local) on `d365`) and `approver`, which SodRule `post-vs-approve` keeps apart"
        ]
    );
    let live = rules(&f, "sod.live-conflict");
    assert_eq!(live.len(), 1, "{live:?}");
    assert!(
        live[0].starts_with(
            "d365.assignment.bob/approver on `d365`, `bob` holds `clerk` (privilege `PRVPOSTINVOICE` (local) on `d365`)"
        ),
        "{live:?}"
    );
    // Offline (validate) there are no live contents: no conflict.
    assert!(rules(&c.eval(NOW, None, None), "sod.conflict").is_empty());
}

#[test]
fn a_live_privilege_that_reads_classified_data_needs_the_clearance() {
    use keyward::model::Depth;
    let dc = "kind: DataClassification\nname: pay\nlevel: restricted\nassets: {d365: {privileges: [prvReadPay]}}\n";
    let c = Config::new(&[("keyward.yaml", D365_SETTINGS), ("roles.yaml", D365_ROLES), ("data.yaml", dc)]);
    let f = c.eval(NOW, Some(&d365(&[("prvReadPay", Depth::Basic)])), None);
    let got: Vec<(&str, &str)> = f
        .iter()
        .filter(|x| x.rule == "data.live-privilege")
        .map(|x| (x.address.as_str(), x.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(
            "role.clerk",
            "role `clerk` holds privilege `prvReadPay` (basic) on `d365`, which reads `pay` (restricted); the role's clearance is public"
        )]
    );
    assert!(c.eval(NOW, Some(&d365(&[])), None).iter().all(|x| x.rule != "data.live-privilege"));
}
