//! Snapshot tests of rendered plans: text (no colour), JSON and Markdown.

use std::collections::BTreeMap;

use keyward::model::{DesiredState, LiveTarget, Name};
use keyward::output::{plan_json, plan_markdown, plan_text};
use keyward::plan::{self, ConfigRef, Plan, PlanInput};
use keyward::provider::file::{DirectoryFile, apply_operation_at};
use keyward::provider::{Capabilities, capabilities};

fn now() -> keyward::model::Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc()
}

fn quickstart() -> DesiredState {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let loaded = keyward::load::load_dir(&root).unwrap();
    let v = keyward::validate::validate(&loaded);
    assert!(!v.has_errors(), "{:?}", v.diagnostics);
    v.state.unwrap()
}

fn target() -> Name {
    Name::new("directory").unwrap()
}

fn plan_against(state: &DesiredState, doc: &DirectoryFile) -> Plan {
    let live: BTreeMap<Name, LiveTarget> = [(target(), doc.to_live())].into();
    let caps: BTreeMap<Name, Capabilities> = [(target(), capabilities(keyward::model::ProviderKind::File))].into();
    let input = PlanInput {
        desired: state,
        live: &live,
        capabilities: &caps,
        now: now(),
        baseline: None,
        undelivered: &[],
        previous: None,
    };
    let changes = plan::plan_changes(&input).unwrap();
    let config = ConfigRef { digest: "sha256:fixed-for-snapshots".into(), commit: None };
    plan::assemble(changes, config, vec![target()], now())
}

/// The quick start applied to an empty directory, then changed outside git.
fn drifted() -> (DesiredState, DirectoryFile) {
    let state = quickstart();
    let mut doc = DirectoryFile::default();
    for c in plan_against(&state, &doc).changes {
        apply_operation_at(&mut doc, &c.operation, now()).unwrap();
    }
    assert!(plan_against(&state, &doc).is_empty(), "applying the plan converges");
    let user = |doc: &mut DirectoryFile, n: &str| doc.users.iter_mut().find(|u| u.user_name == n).unwrap().clone();
    // A job title and a department changed by hand; an account disabled by hand.
    for u in doc.users.iter_mut() {
        if u.user_name == "janet.leverling@northwind.example" {
            u.attrs.job_title = Some("Payments Lead".into());
            u.attrs.department = Some("Treasury".into());
        }
        if u.user_name == "robert.king@northwind.example" {
            u.active = false;
        }
    }
    // Someone granted it-admin outside git, and a stray account appeared.
    let priya = user(&mut doc, "priya.raman@northwind.example");
    doc.groups.iter_mut().find(|g| g.name == "it-admins").unwrap().members.push(priya.id.clone());
    let mut stray = priya.clone();
    stray.id = "u-999".into();
    stray.user_name = "temp.contractor@northwind.example".into();
    doc.users.push(stray);
    // A long description edited outside git.
    let sa = doc.service_accounts.iter_mut().find(|s| s.name == "payments-bot").unwrap();
    sa.description = Some(
        "Uploads the daily vendor payment file to the bank and downloads statements for reconciliation every night"
            .into(),
    );
    (state, doc)
}

#[test]
fn text_plan_of_the_quickstart_from_scratch() {
    let state = quickstart();
    let plan = plan_against(&state, &DirectoryFile::default());
    insta::assert_snapshot!(plan_text::render(&plan, plan_text::TextOptions { color: false }));
}

#[test]
fn text_plan_of_drift() {
    let (state, doc) = drifted();
    let plan = plan_against(&state, &doc);
    insta::assert_snapshot!(plan_text::render(&plan, plan_text::TextOptions { color: false }));
}

#[test]
fn json_plan_of_drift() {
    let (state, doc) = drifted();
    let plan = plan_against(&state, &doc);
    let text = plan_json(&plan);
    // The saved form reads back as the same plan.
    let back: Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, plan);
    insta::assert_snapshot!(text);
}

#[test]
fn markdown_plan_of_drift() {
    let (state, doc) = drifted();
    let plan = plan_against(&state, &doc);
    insta::assert_snapshot!(plan_markdown::render(&plan, plan_markdown::MAX_CHARS));
}

#[test]
fn markdown_is_cut_with_a_note_and_keeps_the_summary() {
    let state = quickstart();
    let plan = plan_against(&state, &DirectoryFile::default());
    let full = plan_markdown::render(&plan, plan_markdown::MAX_CHARS);
    assert!(!full.contains("Plan cut"));
    let cut = plan_markdown::render(&plan, 2_000);
    assert!(cut.chars().count() <= 2_000, "{} chars", cut.chars().count());
    assert!(cut.contains(&plan_text::summary_line(&plan.summary)));
    assert!(cut.contains("**Plan cut:**"), "{cut}");
    // Every opened <details> is closed.
    assert_eq!(cut.matches("<details>").count(), cut.matches("</details>").count());
}

#[test]
fn colour_only_when_asked() {
    let (state, doc) = drifted();
    let plan = plan_against(&state, &doc);
    let plain = plan_text::render(&plan, plan_text::TextOptions { color: false });
    let colour = plan_text::render(&plan, plan_text::TextOptions { color: true });
    assert!(!plain.contains('\u{1b}'));
    assert!(colour.contains('\u{1b}'));
}

/// A target that does not keep `jobTitle` and has no service accounts (SCIM's capabilities):
/// the plan sets no title there and says so once, and names the quick start's payments-bot,
/// whose role is bound there, instead of leaving it out without a word.
#[test]
fn attributes_a_target_does_not_keep_and_service_accounts_it_has_none_of_are_notes_not_changes() {
    use keyward::model::{ProviderKind, UserField};
    use keyward::plan::Operation;
    let state = quickstart();
    let mut live = LiveTarget::default();
    live.unkept.insert(UserField::JobTitle, "its User schema has no `title`".into());
    let live: BTreeMap<Name, LiveTarget> = [(target(), live)].into();
    let scim: BTreeMap<Name, Capabilities> = [(target(), capabilities(ProviderKind::Scim))].into();
    let messages: Vec<String> = plan::notices(&state, &live, &scim).into_iter().map(|n| n.message).collect();
    assert_eq!(
        messages,
        vec![
            "target `directory` does not keep `jobTitle` (its User schema has no `title`); keyward will not manage it there",
            "service account `payments-bot` is not managed on target `directory`: keyward manages no service accounts there, so none of its roles on that target are planned",
        ]
    );
    // A target that holds service accounts names only the attribute.
    let file: BTreeMap<Name, Capabilities> = [(target(), capabilities(ProviderKind::File))].into();
    assert_eq!(plan::notices(&state, &live, &file).len(), 1);
    // No title is planned there.
    let input = PlanInput {
        desired: &state,
        live: &live,
        capabilities: &scim,
        now: now(),
        baseline: None,
        undelivered: &[],
        previous: None,
    };
    let changes = plan::plan_changes(&input).unwrap();
    let creations: Vec<_> = changes
        .iter()
        .filter_map(|c| match &c.operation {
            Operation::CreateUser { attrs, .. } => Some(attrs),
            _ => None,
        })
        .collect();
    assert_eq!(creations.len(), 15);
    assert!(creations.iter().all(|a| a.job_title.is_none() && a.department.is_some()), "{creations:#?}");
}
