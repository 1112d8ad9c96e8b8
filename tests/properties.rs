//! Properties over generated inputs (proptest, modest case counts so the suite stays fast):
//! - planning is idempotent: applying a plan to a file directory and planning again gives no
//!   changes, whatever the desired and live states;
//! - a plan never names a protected account or one outside `ownership.scope`;
//! - SCIM filter literals round-trip through a JSON parser for any string;
//! - loading and validating never panic, whatever the bytes of a configuration file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::*;

use keyward::model::{DesiredState, Name, ProviderKind, Timestamp};
use keyward::plan::{Change, Operation, PlanInput, Principal, plan_changes};
use keyward::provider::capabilities;
use keyward::provider::file::{DirectoryFile, Editor, FileAccount, FileBinding};

const CASES: u32 = 64;

fn now() -> Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc()
}

fn target() -> Name {
    Name::new("directory").unwrap()
}

/// The roles of the generated configurations and the groups they bind.
const ROLES: [(&str, &str); 3] = [("role-a", "grp-a"), ("role-b", "grp-b"), ("role-c", "grp-c")];

/// One user in git.
#[derive(Debug, Clone)]
struct GitUser {
    /// Index into the pool of local parts (`u0`...).
    who: usize,
    roles: Vec<bool>,
    display_name: Option<String>,
    job_title: Option<String>,
    disabled: bool,
}

/// One account in the live directory.
#[derive(Debug, Clone)]
struct LiveUser {
    user_name: String,
    active: bool,
    display_name: Option<String>,
    job_title: Option<String>,
    department: Option<String>,
}

/// A live directory: accounts, which groups exist, and who is a member of each.
#[derive(Debug, Clone)]
struct Live {
    users: Vec<LiveUser>,
    groups: Vec<Option<Vec<bool>>>,
}

fn value() -> impl Strategy<Value = String> {
    // Printable values, including quotes, colons, '#' and non-ASCII, that YAML must carry.
    "[A-Za-z0-9 .:#'\"é✓-]{1,10}"
}

fn git_user(pool: usize) -> impl Strategy<Value = GitUser> {
    (
        0..pool,
        prop::collection::vec(any::<bool>(), ROLES.len()),
        prop::option::of(value()),
        prop::option::of(value()),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(who, roles, display_name, job_title, disabled)| GitUser {
            who,
            roles,
            display_name,
            job_title,
            disabled,
        })
}

/// Randomly upper-cases ASCII letters: userNames match case-insensitively.
fn recase(s: &str, mask: u64) -> String {
    s.chars().enumerate().map(|(i, c)| if mask >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c }).collect()
}

/// Live accounts drawn from `names` (each at most once), with random case, status, attributes,
/// and random group memberships.
fn live(names: Vec<String>) -> impl Strategy<Value = Live> {
    let n = names.len();
    let user = (
        any::<bool>(),
        any::<u64>(),
        prop::bool::weighted(0.8),
        prop::option::of(value()),
        prop::option::of(value()),
        prop::option::of(value()),
    );
    (
        prop::collection::vec(user, n),
        prop::collection::vec(prop::option::of(prop::collection::vec(any::<bool>(), n + 1)), ROLES.len()),
    )
        .prop_map(move |(users, groups)| Live {
            users: names
                .iter()
                .zip(users)
                .filter(|(_, u)| u.0)
                .map(|(name, (_, mask, active, display_name, job_title, department))| LiveUser {
                    user_name: recase(name, mask),
                    active,
                    display_name,
                    job_title,
                    department,
                })
                .collect(),
            groups,
        })
}

fn directory(live: &Live) -> DirectoryFile {
    let mut doc = DirectoryFile::default();
    for (i, u) in live.users.iter().enumerate() {
        let mut acc: FileAccount = serde_json::from_value(serde_json::json!({
            "id": format!("live-{i}"),
            "userName": u.user_name,
            "active": u.active,
        }))
        .unwrap();
        acc.attrs.display_name = u.display_name.clone();
        acc.attrs.job_title = u.job_title.clone();
        acc.attrs.department = u.department.clone();
        doc.users.push(acc);
    }
    for (g, members) in live.groups.iter().enumerate() {
        let Some(members) = members else { continue };
        doc.groups.push(FileBinding {
            id: format!("grp-{g}"),
            kind: "group".into(),
            name: ROLES[g].1.into(),
            members: members
                .iter()
                .enumerate()
                .filter(|(i, m)| **m && *i < live.users.len())
                .map(|(i, _)| format!("live-{i}"))
                // An id no account has (deleted outside keyward): not ours to manage.
                .chain(members.get(live.users.len()).filter(|m| **m).map(|_| format!("ghost-{g}")))
                .collect(),
        });
    }
    doc.next_id = 1000;
    doc
}

/// Writes a configuration (settings, the three roles, the users) and loads and validates it.
fn desired(settings_extra: &str, users: &[GitUser], user_name: impl Fn(usize) -> String) -> DesiredState {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("keyward.yaml"),
        format!("version: 1\ntargets:\n  directory:\n    provider: file\n    path: directory.json\n{settings_extra}"),
    )
    .unwrap();
    let mut roles = String::new();
    for (role, group) in ROLES {
        roles.push_str(&format!(
            "---\nkind: Role\nname: {role}\ndescription: Test role\nbindings:\n  directory: {{group: {group}}}\n"
        ));
    }
    std::fs::write(root.join("roles.yaml"), roles).unwrap();
    let mut text = String::new();
    let mut seen = BTreeSet::new();
    for u in users {
        if !seen.insert(u.who) {
            continue;
        }
        text.push_str(&format!("---\nkind: User\nname: u{}\nuserName: {}\n", u.who, user_name(u.who)));
        let q = |s: &String| serde_json::to_string(s).unwrap();
        if let Some(v) = &u.display_name {
            text.push_str(&format!("displayName: {}\n", q(v)));
        }
        if let Some(v) = &u.job_title {
            text.push_str(&format!("jobTitle: {}\n", q(v)));
        }
        if u.disabled {
            text.push_str("status: disabled\n");
        }
        let roles: Vec<&str> = ROLES.iter().zip(&u.roles).filter(|(_, on)| **on).map(|(r, _)| r.0).collect();
        if !roles.is_empty() {
            text.push_str(&format!("roles: [{}]\n", roles.join(", ")));
        }
    }
    if !text.is_empty() {
        std::fs::write(root.join("users.yaml"), text).unwrap();
    }
    load_valid(root)
}

fn load_valid(root: &Path) -> DesiredState {
    let loaded = keyward::load::load_dir(root).expect("loads");
    let v = keyward::validate::validate(&loaded);
    assert!(!v.has_errors(), "generated configuration is invalid: {:#?}", v.diagnostics);
    v.state.expect("valid")
}

fn plan(state: &DesiredState, doc: &DirectoryFile) -> Vec<Change> {
    let caps = BTreeMap::from([(target(), capabilities(ProviderKind::File))]);
    let live = BTreeMap::from([(target(), doc.to_live())]);
    let input = PlanInput {
        desired: state,
        live: &live,
        capabilities: &caps,
        now: now(),
        baseline: None,
        undelivered: &[],
        previous: None,
    };
    plan_changes(&input).unwrap_or_else(|e| panic!("plan failed: {e:?}"))
}

/// The userName an operation acts on, if any.
fn user_named(op: &Operation) -> Option<&str> {
    match op {
        Operation::CreateUser { user_name, .. }
        | Operation::UpdateUser { user_name, .. }
        | Operation::SetUserActive { user_name, .. }
        | Operation::DeleteUser { user_name } => Some(user_name),
        Operation::Assign { principal: Principal::User(u), .. }
        | Operation::Revoke { principal: Principal::User(u), .. } => Some(u),
        _ => None,
    }
}

const POOL: usize = 6;

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn planning_is_idempotent(
        users in prop::collection::vec(git_user(POOL), 0..POOL),
        delete in any::<bool>(),
        live in live((0..POOL).map(|i| format!("u{i}@ex.test")).chain(["other@elsewhere.test".to_string()]).collect()),
    ) {
        let extra = format!(
            "ownership:\n  scope: {{userNameSuffix: \"@ex.test\"}}\nlifecycle:\n  removedUsers: {}\n",
            if delete { "delete" } else { "disable" }
        );
        let state = desired(&extra, &users, |i| format!("u{i}@ex.test"));
        let doc = directory(&live);
        let changes = plan(&state, &doc);
        let mut editor = Editor::new(doc);
        for c in &changes {
            editor.apply(&c.operation).unwrap_or_else(|e| panic!("{} failed: {e:?}", c.address));
        }
        let again = plan(&state, editor.doc());
        let left: Vec<String> = again.iter().map(|c| format!("{} {}", c.action.as_str(), c.address)).collect();
        prop_assert!(again.is_empty(), "after applying {} changes, the plan still has {:?}", changes.len(), left);
    }

    #[test]
    fn plans_never_touch_protected_or_out_of_scope_accounts(
        users in prop::collection::vec(git_user(POOL), 0..POOL),
        delete in any::<bool>(),
        live in live(
            (0..POOL).map(|i| format!("u{i}@ex.test"))
                .chain(["prot0@ex.test", "prot1@ex.test", "out0@elsewhere.test", "u1@notex.test", "u2@ex.test.evil"].map(String::from))
                .collect()
        ),
    ) {
        let extra = format!(
            "ownership:\n  scope: {{userNameSuffix: \"@ex.test\"}}\n  protected: [prot0@ex.test, PROT1@ex.test]\nlifecycle:\n  removedUsers: {}\n",
            if delete { "delete" } else { "disable" }
        );
        let state = desired(&extra, &users, |i| format!("u{i}@ex.test"));
        let changes = plan(&state, &directory(&live));
        for c in &changes {
            if let Some(u) = user_named(&c.operation) {
                let u = u.to_ascii_lowercase();
                prop_assert!(u.ends_with("@ex.test"), "{} names {u}, outside the scope", c.address);
                prop_assert!(!u.starts_with("prot"), "{} names the protected account {u}", c.address);
            }
        }
    }

    // The round trip is the fuzz target's property (keyward::fuzzing), which panics when broken.
    #[test]
    fn scim_filter_literals_round_trip(s in any::<String>()) {
        keyward::fuzzing::scim_filter_value(&s);
    }

    #[test]
    fn scim_filter_literals_of_hostile_strings_round_trip(s in r#"[\\"\x00-\x1f\x7f a-z\[\]()]{0,24}"#) {
        keyward::fuzzing::scim_filter_value(&s);
    }

    #[test]
    fn loading_arbitrary_bytes_beside_a_valid_configuration_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keyward.yaml"), VALID_SETTINGS).unwrap();
        std::fs::write(dir.path().join("fuzz.yaml"), &bytes).unwrap();
        load_and_validate(dir.path());
    }

    #[test]
    fn loading_arbitrary_bytes_as_settings_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keyward.yaml"), &bytes).unwrap();
        load_and_validate(dir.path());
    }

    #[test]
    fn loading_yaml_like_text_never_panics(
        resource in prop::collection::vec(prop::sample::select(YAML_PIECES), 0..40),
        settings in prop::collection::vec(prop::sample::select(YAML_PIECES), 0..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keyward.yaml"), format!("{VALID_SETTINGS}{}", settings.concat())).unwrap();
        std::fs::write(dir.path().join("fuzz.yaml"), resource.concat()).unwrap();
        load_and_validate(dir.path());
    }
}

const VALID_SETTINGS: &str = "version: 1\ntargets:\n  directory:\n    provider: file\n    path: directory.json\n";

/// Fragments that make arbitrary text look enough like a configuration to get past the parser.
const YAML_PIECES: &[&str] = &[
    "kind: User\n",
    "kind: Role\n",
    "kind: ServiceAccount\n",
    "kind: SodRule\n",
    "kind: AuthenticationPolicy\n",
    "name: a\n",
    "name: b\n",
    "userName: a@x\n",
    "roles: [a, b]\n",
    "roles:\n  - role: a\n    expires: 2020-01-01\n",
    "bindings:\n  directory: {group: g}\n",
    "---\n",
    "  ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a\n",
    "<<: *a\n",
    "!!binary ",
    "\"",
    "'",
    "#",
    "\n",
    "\t",
    "${env:X}",
    "${file:/etc/passwd}",
    "9999999999999999999999",
    "-1",
    "~",
    "null",
    "true",
    "2026-02-30",
    "\u{feff}",
    "é",
    "\\u0000",
    "version: 2\n",
    "targets: 5\n",
    "ownership:\n  scope: {userNameSuffix: \"\"}\n",
    "manager: a\n",
    "status: gone\n",
];

fn load_and_validate(root: &Path) {
    if let Ok(loaded) = keyward::load::load_dir(root) {
        let _ = keyward::validate::validate(&loaded);
    }
}
