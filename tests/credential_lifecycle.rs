//! One credential rule: planner, policies, drift metrics and the access review agree on which
//! instance of a credential is current and where it stands.

use std::collections::BTreeMap;

use keyward::engine::Quiet;
use keyward::engine::drift::{CredentialCounts, credential_counts};
use keyward::engine::policy::{Live, evaluate_config};
use keyward::model::{
    Capabilities, CredentialType, Duration, LiveCredential, LiveServiceAccount, LiveTarget, Name, ProviderKind,
    Timestamp, UndeliveredCredential, capabilities,
};
use keyward::plan::{Action, PlanInput, plan_changes};
use keyward::review::{ReviewInput, Section, review};

fn t(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

const SETTINGS: &str = "version: 1
targets:
  directory:
    provider: file
    path: .keyward/directory.json
";

const ACCOUNT: &str = "kind: User
name: owner
userName: owner@example.com
---
kind: ServiceAccount
name: bot
owner: owner
credentials:
  - name: api
    type: secret
    lifetime: 90d
    rotateBefore: 14d
    deliver: {file: .keyward/secrets/bot.txt}
";

fn cred(id: &str, name: &str, start: &str, end: &str) -> LiveCredential {
    LiveCredential {
        id: id.into(),
        name: name.into(),
        kind: CredentialType::Secret,
        start: t(start),
        end: t(end),
        thumbprint: None,
    }
}

/// The case that used to split four ways: `api@2026-01-01` was delivered and is inside its
/// rotation window; `api@2026-03-25` is newer but was never delivered. The delivered one is
/// current, and it is due for rotation, everywhere.
#[test]
fn a_delivered_credential_in_its_window_beside_a_newer_undelivered_one_is_current_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keyward.yaml"), SETTINGS).unwrap();
    std::fs::write(dir.path().join("resources.yaml"), ACCOUNT).unwrap();
    let config = keyward::engine::config::load(dir.path(), &Quiet).unwrap();
    let state = config.state();
    let target = Name::new("directory").unwrap();
    let now = t("2026-03-26T12:00:00Z");
    let delivered = cred("1", "api@2026-01-01", "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z");
    let lost = cred("2", "api@2026-03-25", "2026-03-25T00:00:00Z", "2026-06-23T00:00:00Z");
    let live: BTreeMap<Name, LiveTarget> = [(
        target.clone(),
        LiveTarget {
            service_accounts: vec![LiveServiceAccount {
                application_id: None,
                active: None,
                id: "sa-1".into(),
                name: "bot".into(),
                display_name: None,
                description: None,
                owner: Some("owner@example.com".into()),
                credentials: vec![delivered.clone(), lost.clone()],
                fingerprint: "f".into(),
            }],
            ..Default::default()
        },
    )]
    .into();
    let undelivered = vec![UndeliveredCredential {
        target: "directory".into(),
        account: "bot".into(),
        id: lost.id.clone(),
        name: lost.name.clone(),
        issued: lost.start,
    }];

    // The planner rotates it, reporting the delivered instance as the one replaced, and
    // removes the undelivered one.
    let caps: BTreeMap<Name, Capabilities> = [(target.clone(), capabilities(ProviderKind::File))].into();
    let input = PlanInput {
        desired: state,
        live: &live,
        capabilities: &caps,
        now,
        baseline: None,
        undelivered: &undelivered,
        previous: None,
    };
    let changes = plan_changes(&input).unwrap();
    let rotate = changes.iter().find(|c| c.action == Action::Rotate).expect("a rotation");
    assert_eq!(rotate.address.to_string(), "directory.credential.bot/api");
    assert_eq!(rotate.before.as_ref().unwrap()["credential"], "api@2026-01-01");
    assert!(
        changes
            .iter()
            .any(|c| c.action == Action::Revoke
                && c.before.as_ref().is_some_and(|b| b["credential"] == "api@2026-03-25")),
        "{changes:#?}"
    );

    // The policies find the delivered instance inside its window (not the newer one's end).
    let live_state =
        Live { targets: &live, undelivered: &undelivered, pinned: &keyward::model::contents::NO_SNAPSHOTS };
    let findings = evaluate_config(&config, None, Some(live_state), now);
    let window: Vec<_> = findings.iter().filter(|f| f.rule == "credential.rotation-window").collect();
    assert_eq!(window.len(), 1, "{findings:#?}");
    assert!(window[0].message.contains("ends on 2026-04-01"), "{}", window[0].message);

    // The drift metrics count one credential due for rotation and one undelivered instance.
    assert_eq!(
        credential_counts(state, &live, &undelivered, now),
        CredentialCounts { expired: 0, rotation_due: 1, undelivered: 1 }
    );

    // The review shows the delivered instance as due for rotation (not superseded by the
    // undelivered one), and the undelivered one as such.
    let report = review(&ReviewInput {
        desired: state,
        live: &live,
        findings: &findings,
        records: &[],
        now,
        within: Duration::parse("30d").unwrap(),
        undelivered: &undelivered,
    });
    let status: BTreeMap<&str, &str> =
        report.section(Section::Credentials).map(|i| (i.subject.as_str(), i.status.as_str())).collect();
    assert_eq!(status.get("bot/api@2026-01-01"), Some(&"rotation-due"), "{status:?}");
    assert_eq!(status.get("bot/api@2026-03-25"), Some(&"undelivered"), "{status:?}");
}
