//! The report's data, built from the quick-start example in a git repository with a merged pull
//! request, an audit log and a live directory with one drift.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::audit::{AuditLog, Entry, Provenance};
use crate::history::testing::TestRepo;
use crate::history::{HistoryOptions, history};
use crate::model::{LiveAccount, LiveBinding, LiveCredential, LiveServiceAccount, UserAttrs};
use crate::plan::{Action, Address, ObjectKind, Operation, Principal, Reason};
use crate::policy::{PolicyContext, PolicyOptions};

pub(super) fn at(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

pub(super) const NOW: &str = "2026-11-28T12:00:00Z";

fn example_files(dir: &Path, rel: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let child = rel.join(&name);
        if entry.file_type().unwrap().is_dir() {
            example_files(dir, &child, out);
        } else {
            out.push((child.to_string_lossy().into_owned(), std::fs::read_to_string(dir.join(&child)).unwrap()));
        }
    }
}

/// The quick start in a repository: committed without anne.dodsworth's `ap-clerk`, which pull
/// request #7 (written by Nancy Davolio, merged by Andrew Fuller, approved by Laura Callahan)
/// then gives her.
pub(super) fn quickstart_repo() -> TestRepo {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let mut files = Vec::new();
    example_files(&example, Path::new(""), &mut files);
    files.sort();
    let finance = files.iter().find(|(p, _)| p == "users/finance.yaml").unwrap().1.clone();
    let anne_at = finance.rfind("roles: [ap-clerk]").unwrap();
    let without = format!("{}roles: []{}", &finance[..anne_at], &finance[anne_at + "roles: [ap-clerk]".len()..]);
    let r = TestRepo::new();
    r.set_origin("https://github.com/northwind/access.git");
    let mut initial: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    for f in initial.iter_mut().filter(|(p, _)| *p == "users/finance.yaml") {
        f.1 = &without;
    }
    r.commit(&initial, "Northwind access, as adopted", "Laura Callahan", 2);
    let side = r.side_commit(&[("users/finance.yaml", &finance)], "Anne runs vendor payments too", "Nancy Davolio", 9);
    r.merge(
        side,
        "Merge pull request #7 from northwind/anne-ap\n\nAnne runs vendor payments too\n\nApproved-by: Laura Callahan <laura.callahan@northwind.example>",
        "Andrew Fuller",
        10,
    );
    r
}

fn entry(time: &str, address: &str, action: &str, outcome: Outcome, reason: &str, pr: Option<u64>) -> Entry {
    Entry {
        time: at(time),
        actor: "github-actions".into(),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        plan_hash: "sha256:plan".into(),
        address: address.into(),
        action: action.into(),
        outcome,
        error: (outcome == Outcome::Failed).then(|| "the directory answered 503".into()),
        detail: None,
        reason: Some(reason.into()),
        provenance: pr.map(|n| Provenance {
            ci: Some(crate::audit::provenance::CiSystem::GithubActions),
            pull_request: Some(n),
            pull_request_url: Some(format!("https://github.com/northwind/access/pull/{n}")),
            run_url: Some("https://github.com/northwind/access/actions/runs/4242".into()),
            ..Provenance::default()
        }),
        approved_by: Vec::new(),
    }
}

/// The live directory: what git gives everyone, plus steven.buchanan in ap-clerks outside git
/// and a stranger in finance-admins; payments-bot's certificate inside its rotation window.
fn live(desired: &DesiredState) -> BTreeMap<Name, LiveTarget> {
    let mut t = LiveTarget::default();
    for u in desired.users.values() {
        t.accounts.push(LiveAccount {
            id: format!("u-{}", u.name),
            user_name: u.user_name.clone(),
            attrs: UserAttrs::default(),
            active: u.status == UserStatus::Active,
            last_sign_in: None,
            registered_methods: None,
            fingerprint: "f".into(),
        });
    }
    t.accounts.push(LiveAccount {
        id: "u-stranger".into(),
        user_name: "contractor@elsewhere.example".into(),
        attrs: UserAttrs { display_name: Some("A <b>contractor</b>".into()), ..UserAttrs::default() },
        active: true,
        last_sign_in: None,
        registered_methods: None,
        fingerprint: "f".into(),
    });
    t.service_accounts.push(LiveServiceAccount {
        application_id: None,
        active: None,
        id: "sa-payments-bot".into(),
        name: "payments-bot".into(),
        display_name: None,
        description: None,
        owner: None,
        credentials: vec![LiveCredential {
            id: "cred-1".into(),
            name: "bank-api-cert@2026-09-03".into(),
            kind: CredentialType::Certificate,
            start: at("2026-09-03T00:00:00Z"),
            end: at("2026-12-02T00:00:00Z"),
            thumbprint: None,
        }],
        fingerprint: "f".into(),
    });
    for role in desired.roles.values() {
        let Some(b) = role.bindings.get("directory") else { continue };
        let mut members: Vec<String> = desired
            .users
            .values()
            .filter(|u| u.roles.iter().any(|g| g.role() == &role.name))
            .map(|u| format!("u-{}", u.name))
            .collect();
        if desired.service_accounts.values().any(|s| s.roles.iter().any(|g| g.role() == &role.name)) {
            members.push("sa-payments-bot".into());
        }
        match role.name.as_str() {
            "ap-clerk" => members.push("u-steven.buchanan".into()),
            "finance-admin" => members.push("u-stranger".into()),
            _ => {}
        }
        t.bindings.push(LiveBinding { id: b.object_name(), binding: b.clone(), members, fingerprint: "f".into() });
    }
    BTreeMap::from([(Name::new("directory").unwrap(), t)])
}

fn changes() -> Vec<Change> {
    let target = Name::new("directory").unwrap();
    let change = |name: &str, action, kind, message: &str, notes: Vec<String>| Change {
        address: Address::new(&target, ObjectKind::Assignment, name),
        action,
        reason: Reason::new(kind, message),
        before: None,
        after: None,
        fingerprint: "f".into(),
        subject: None,
        notes: notes.into_iter().map(Into::into).collect(),
        operation: Operation::Revoke {
            principal: Principal::User("x".into()),
            binding: crate::model::Binding::Group("g".into()),
        },
    };
    vec![
        change(
            "steven.buchanan/ap-clerk",
            Action::Revoke,
            ReasonKind::Drift,
            "the configuration does not give `steven.buchanan` role `ap-clerk` here",
            vec!["changed by helpdesk@northwind.example at 2026-11-20 09:12 UTC".into()],
        ),
        change(
            "contractor@elsewhere.example/finance-admin",
            Action::Revoke,
            ReasonKind::Drift,
            "`contractor@elsewhere.example` is not in the configuration",
            vec![],
        ),
        change(
            "hannah.schulz/buyer",
            Action::Assign,
            ReasonKind::Config,
            "the configuration gives `hannah.schulz` role `buyer`",
            vec![],
        ),
    ]
}

pub(super) struct Fixture {
    pub repo: TestRepo,
}

impl Fixture {
    pub fn new() -> Self {
        let repo = quickstart_repo();
        let dir = repo.path();
        let mut log = AuditLog::open(&dir.join(".keyward/audit.jsonl")).unwrap();
        log.append_all(vec![
            entry("2026-11-02T09:00:00Z", "directory.user.janet.leverling", "create", Outcome::Applied, "config", None),
            entry(
                "2026-11-02T09:00:01Z",
                "directory.assignment.janet.leverling/ap-clerk",
                "assign",
                Outcome::Applied,
                "config",
                None,
            ),
            entry(
                "2026-11-02T09:00:02Z",
                "directory.assignment.nancy.davolio/finance-admin",
                "assign",
                Outcome::Applied,
                "config",
                None,
            ),
            entry(
                "2026-11-10T14:30:00Z",
                "directory.assignment.anne.dodsworth/ap-clerk",
                "assign",
                Outcome::Failed,
                "config",
                Some(7),
            ),
            entry(
                "2026-11-10T15:05:00Z",
                "directory.assignment.anne.dodsworth/ap-clerk",
                "assign",
                Outcome::Applied,
                "config",
                Some(7),
            ),
            entry(
                "2026-11-21T06:00:00Z",
                "directory.assignment.carlos.mendes/purchasing-manager",
                "revoke",
                Outcome::Applied,
                "drift",
                None,
            ),
        ])
        .unwrap();
        Fixture { repo }
    }

    pub fn report(&self, live_read: bool) -> Report {
        let dir = self.repo.path();
        let loaded = crate::load::load_dir(&dir).unwrap();
        let validated = crate::validate::validate(&loaded);
        assert!(!validated.has_errors(), "{:?}", validated.diagnostics);
        let desired = validated.state.as_ref().unwrap();
        let now = at(NOW);
        let h = history(&dir, HistoryOptions::default()).unwrap();
        let records = crate::audit::read(&dir.join(".keyward/audit.jsonl")).unwrap();
        let verify = crate::audit::verify(&dir.join(".keyward/audit.jsonl")).unwrap();
        let live = live(desired);
        let changes = changes();
        let findings = crate::policy::evaluate(&PolicyContext {
            desired,
            loaded: &loaded,
            origins: &validated.origins,
            now,
            plan: None,
            live: live_read.then_some(&live),
            undelivered: &[],
            pinned: &crate::model::contents::NO_SNAPSHOTS,
            options: PolicyOptions::default(),
        });
        let head = crate::history::head(&dir).map(|h| h.id);
        build(&ReportInput {
            title: "quickstart",
            desired,
            loaded: &loaded,
            origins: &validated.origins,
            commit: head.as_deref(),
            history: &h,
            remote: Some("https://github.com/northwind/access.git"),
            records: &records,
            verify: &verify,
            audit_path: ".keyward/audit.jsonl",
            live: if live_read { Ok(&live) } else { Err("not asked to") },
            changes: if live_read { &changes } else { &[] },
            findings: &findings,
            undelivered: &[],
            since: Some(Date::parse("2026-11-01").unwrap()),
            now,
            certifications: &[],
        })
    }
}

#[test]
fn who_can_pay_vendors_since_when_and_who_approved_it() {
    let f = Fixture::new();
    let r = f.report(true);
    // Everyone whose role carries the vendor-payment duty, on the directory.
    let payers: Vec<(&str, &str)> = r
        .assignments
        .iter()
        .filter(|a| a.duties.iter().any(|d| d == "vendor-payment"))
        .map(|a| (a.holder.as_str(), a.role.as_str()))
        .collect();
    assert_eq!(payers, [("anne.dodsworth", "ap-clerk"), ("janet.leverling", "ap-clerk"), ("payments-bot", "ap-clerk")]);
    let anne = r.assignments.iter().find(|a| a.holder == "anne.dodsworth").unwrap();
    // Since: the successful apply, not the failed attempt before it.
    let applied = anne.applied.as_ref().unwrap();
    assert_eq!((applied.seq, applied.time), (5, at("2026-11-10T15:05:00Z")));
    assert_eq!(applied.provenance.as_ref().unwrap().pull_request, Some(7));
    // Who approved it: the pull request that added the grant.
    let added = &r.commits[anne.added.as_ref().unwrap()];
    assert_eq!(added.pull_request, Some(7));
    assert_eq!(added.approved_by, ["Laura Callahan"]);
    assert_eq!(added.merged_by.as_deref(), Some("Andrew Fuller"));
    assert_eq!(anne.source.as_ref().unwrap().to_string(), "users/finance.yaml:73");
    // Someone holds it live whom git does not give it to: shown in the matrix and as drift.
    let m = &r.matrices[0];
    let col = m.roles.iter().position(|x| x.name == "ap-clerk").unwrap();
    let steven = m.rows.iter().find(|row| row.holder == "steven.buchanan").unwrap();
    assert_eq!(steven.cells[col].map(|c| c.granted), Some(false));
    assert!(m.rows.iter().any(|row| row.kind == "live-account" && row.holder == "contractor@elsewhere.example"));
    assert_eq!(r.summary.drift_items, Some(2));
    assert_eq!(r.summary.pending_changes, Some(1));
    assert_eq!(r.drift.resolved.len(), 1);
    assert!(r.audit.intact && r.audit.head_seq == Some(6));
    let payments = r.charts.credentials.iter().find(|c| c.account == "payments-bot").unwrap();
    assert_eq!(payments.status, "rotation-due");

    insta::assert_json_snapshot!("report_data", r);
}

#[test]
fn without_live_state_the_report_says_what_it_does_not_know() {
    let f = Fixture::new();
    let r = f.report(false);
    assert!(!r.live.read);
    assert_eq!((r.summary.drift_items, r.summary.pending_changes, r.summary.credentials_expiring), (None, None, None));
    assert!(r.drift.open.is_none());
    assert!(r.assignments.iter().all(|a| a.live == LiveState::Unknown));
    assert!(r.notes.iter().any(|n| n.contains("not read (not asked to)")), "{:?}", r.notes);
    // The audit log still answers "since when".
    let anne = r.assignments.iter().find(|a| a.holder == "anne.dodsworth").unwrap();
    assert_eq!(anne.applied.as_ref().unwrap().seq, 5);
}

#[test]
fn the_page_escapes_values_and_loads_nothing() {
    let f = Fixture::new();
    let r = f.report(true);
    let page = html::render(&r);
    assert!(page.starts_with("<!DOCTYPE html>"));
    // A live display name with markup in it is shown as text.
    assert!(page.contains("A &lt;b&gt;contractor&lt;/b&gt;"));
    assert!(!page.contains("<b>contractor"));
    // Nothing is fetched: no src, no stylesheet link, and a policy that forbids it.
    for needle in [" src=", "<link", "@import", "url(", "fetch(", "XMLHttpRequest"] {
        assert!(!page.contains(needle), "the page contains {needle}");
    }
    let csp = html::content_security_policy();
    assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
    assert!(page.contains(&format!("content=\"{csp}\"")));
    // Every link is an http(s) link to a pull request, commit or run, opened without referrer.
    let hrefs: Vec<&str> = page.split("href=\"").skip(1).map(|s| s.split('"').next().unwrap()).collect();
    assert!(hrefs.contains(&"https://github.com/northwind/access/pull/7"), "{hrefs:?}");
    for h in &hrefs {
        assert!(h.starts_with('#') || h.starts_with("https://github.com/northwind/access/"), "{h}");
    }
    // Every section the page promises.
    for id in ["summary", "access", "sod", "timelines", "changes", "drift", "review", "audit"] {
        assert!(page.contains(&format!("<section id=\"{id}\"")), "section {id}");
    }
}
