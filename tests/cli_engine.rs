//! End-to-end tests of plan and apply on the embedded file directory, through the binary.

mod support;

use serde_json::json;
use support::{Sandbox, changes, commit_all, find_group, find_user};

#[test]
fn plan_apply_then_plan_again_shows_no_changes() {
    let s = Sandbox::example("quickstart");
    let r = s.run(&["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(2);
    assert!(r.stdout.contains("+ directory.user.andrew.fuller"), "{}", r.stdout);
    assert!(r.stdout.contains("Plan: "), "{}", r.stdout);

    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(0);
    assert!(r.stdout.contains("Apply complete!"), "{}", r.stdout);

    let r = s.run(&["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(0);
    assert!(r.stdout.contains("No changes."), "{}", r.stdout);
}

#[test]
fn editing_one_field_plans_exactly_that_change() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    s.edit("users/it.yaml", "jobTitle: Head of IT", "jobTitle: Chief Information Officer");
    let plan = s.plan_json();
    assert_eq!(changes(&plan), vec![("directory.user.steven.buchanan".to_string(), "update".to_string())]);
    let c = &plan["changes"][0];
    assert_eq!(c["before"], json!({"jobTitle": "Head of IT"}));
    assert_eq!(c["after"], json!({"jobTitle": "Chief Information Officer"}));
    assert_eq!(c["operation"]["type"], "updateUser");
    // Only the changed field is sent.
    assert_eq!(c["operation"]["set"], json!({"jobTitle": "Chief Information Officer"}));
}

#[test]
fn removing_a_field_from_yaml_leaves_it_unmanaged() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    s.edit("users/it.yaml", "jobTitle: Head of IT\n", "");
    assert!(changes(&s.plan_json()).is_empty(), "an absent field must not clear the live value");
}

#[test]
fn a_foreign_edit_of_the_directory_is_planned_back() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    let mut dir = s.directory();
    find_user(&mut dir, "yusuf.demir@northwind.example")["displayName"] = json!("Mallory");
    let priya = find_user(&mut dir, "priya.raman@northwind.example")["id"].clone();
    find_group(&mut dir, "it-admins")["members"].as_array_mut().unwrap().push(priya);
    s.set_directory(&dir);

    let plan = s.plan_json();
    let mut got = changes(&plan);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("directory.assignment.priya.raman/it-admin".to_string(), "revoke".to_string()),
            ("directory.user.yusuf.demir".to_string(), "update".to_string()),
        ]
    );
    s.apply_ok();
    assert!(changes(&s.plan_json()).is_empty());
}

#[test]
fn an_expired_assignment_is_revoked() {
    let mut s = Sandbox::example("quickstart");
    s.apply_ok();
    // nancy.davolio holds finance-admin until 2027-06-30 (inclusive).
    s.now = "2027-06-30T23:00:00Z".into();
    let revokes: Vec<_> = changes(&s.plan_json()).into_iter().filter(|(a, _)| a.contains("finance-admin")).collect();
    assert!(revokes.is_empty(), "still valid on its last day: {revokes:?}");
    s.now = "2027-07-01T00:00:01Z".into();
    let plan = s.plan_json();
    let c = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "directory.assignment.nancy.davolio/finance-admin")
        .expect("the expired assignment is revoked");
    assert_eq!(c["action"], "revoke");
    assert_eq!(c["reason"]["kind"], "expiry");
    assert!(c["reason"]["message"].as_str().unwrap().contains("2027-06-30"));
}

#[test]
fn min_admins_guard_refuses_and_can_be_lowered_explicitly() {
    let mut s = Sandbox::example("quickstart");
    s.apply_ok();
    // Both it-admin assignments end on 2027-03-31.
    s.now = "2027-04-01T09:00:00Z".into();
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(r.stderr.contains("guards.minAdmins"), "{}", r.stderr);
    assert!(r.stderr.contains("leaves 0 active holders of role `it-admin`"), "{}", r.stderr);
    // Nothing was applied.
    assert_eq!(find_group(&mut s.directory(), "it-admins")["members"].as_array().unwrap().len(), 2);
    s.run(&["apply", "{dir}", "--auto-approve", "--min-admins", "0"]).expect(0);
    assert!(find_group(&mut s.directory(), "it-admins")["members"].as_array().unwrap().is_empty());
}

/// Revoking the real admins and "replacing" them with a disabled account and a member outside
/// `ownership.scope` leaves no one who can administer: refused, naming who was counted.
#[test]
fn min_admins_counts_only_enabled_in_scope_holders() {
    let s = Sandbox::example("quickstart");
    let ghost = "kind: User\nname: ghost.admin\nuserName: ghost.admin@northwind.example\nstatus: disabled\n";
    s.write("users/ghost.yaml", ghost);
    s.apply_ok();
    let mut dir = s.directory();
    dir["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "v-1", "userName": "vendor@partner.example", "active": true}));
    find_group(&mut dir, "it-admins")["members"].as_array_mut().unwrap().push(json!("v-1"));
    s.set_directory(&dir);
    for ticket in ["CHG-1987", "CHG-1988"] {
        s.edit(
            "users/it.yaml",
            &format!(
                "roles:\n  - role: it-admin\n    expires: 2027-03-31\n    reason: Directory administration, reviewed each quarter\n    ticket: {ticket}\n"
            ),
            "",
        );
    }
    s.write(
        "users/ghost.yaml",
        &format!(
            "{ghost}roles:\n  - role: it-admin\n    expires: 2027-03-31\n    reason: stand-in\n    ticket: CHG-2000\n"
        ),
    );
    let got = changes(&s.plan_json());
    assert!(got.contains(&("directory.assignment.ghost.admin/it-admin".into(), "assign".into())), "{got:?}");
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    let line = r.stderr.lines().find(|l| l.contains("guards.minAdmins")).unwrap_or_else(|| panic!("{}", r.stderr));
    insta::assert_snapshot!(line.trim_start_matches(['-', ' ']));
    // Nothing was applied.
    let members = find_group(&mut s.directory(), "it-admins")["members"].as_array().unwrap().len();
    assert_eq!(members, 3);
}

/// The quick start, committed and applied, with a member keyward does not manage
/// (outside `ownership.scope`) in the finance-admins group.
fn applied_with_an_outside_finance_admin() -> Sandbox {
    let s = Sandbox::example("quickstart");
    commit_all(&s.root, "Quick start", "Laura Callahan", None);
    s.apply_ok();
    let mut dir = s.directory();
    dir["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "v-1", "userName": "auditor@partner.example", "active": true}));
    find_group(&mut dir, "finance-admins")["members"].as_array_mut().unwrap().push(json!("v-1"));
    s.set_directory(&dir);
    s
}

/// Rebinding a role to another group revokes the old group from the members keyward manages
/// (the pull request's plan shows it against `--base`), and hands the group back naming the
/// member it keeps.
#[test]
fn a_rebound_role_revokes_the_old_group_and_names_who_keeps_it() {
    let s = applied_with_an_outside_finance_admin();
    s.edit("roles/finance.yaml", "directory: {group: finance-admins}", "directory: {group: finance-admins-v2}");
    let r = s.run(&["plan", "{dir}", "--base", "HEAD", "--format", "json"]);
    r.expect(0);
    let plan = r.json();
    let revokes: Vec<&serde_json::Value> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "revoke" && c["before"]["binding"] == "group finance-admins")
        .collect();
    assert_eq!(revokes.len(), 1, "{plan:#}");
    assert_eq!(revokes[0]["address"], "directory.assignment.nancy.davolio/finance-admin");
    let notes = revokes[0]["notes"].to_string();
    assert!(notes.contains("handed back") && notes.contains("auditor@partner.example"), "{notes}");
    // Applied from the working tree: the state's last applied commit says keyward managed the
    // old group, so apply revokes it too, and leaves only the member it does not manage.
    s.apply_ok();
    let old = find_group(&mut s.directory(), "finance-admins")["members"].clone();
    assert_eq!(old, json!(["v-1"]));
    assert_eq!(find_group(&mut s.directory(), "finance-admins-v2")["members"].as_array().unwrap().len(), 1);
    assert!(changes(&s.plan_json()).is_empty());
}

/// Deleting a role revokes its group from every member keyward manages.
#[test]
fn a_deleted_role_leaves_no_member_it_manages_in_its_group() {
    let s = Sandbox::example("quickstart");
    let role = "kind: Role\nname: auditor\nbindings:\n  directory: {group: auditors}\n";
    s.write("roles/auditor.yaml", role);
    s.edit("users/it.yaml", "employeeId: \"E1021\"\n", "employeeId: \"E1021\"\nroles: [auditor]\n");
    commit_all(&s.root, "Auditors", "Laura Callahan", None);
    s.apply_ok();
    let mut dir = s.directory();
    dir["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "v-1", "userName": "auditor@partner.example", "active": true}));
    find_group(&mut dir, "auditors")["members"].as_array_mut().unwrap().push(json!("v-1"));
    s.set_directory(&dir);
    assert_eq!(find_group(&mut s.directory(), "auditors")["members"].as_array().unwrap().len(), 2);
    std::fs::remove_file(s.path("roles/auditor.yaml")).unwrap();
    s.edit("users/it.yaml", "roles: [auditor]\n", "");
    let got = changes(&s.plan_json());
    assert!(got.contains(&("directory.assignment.priya.raman/auditor".into(), "revoke".into())), "{got:?}");
    s.apply_ok();
    assert_eq!(find_group(&mut s.directory(), "auditors")["members"], json!(["v-1"]));
}

/// Members of a privileged group that keyward does not manage, or that imitate a managed
/// userName, are never invisible: the plan's findings and the access review name them.
#[test]
fn outside_and_look_alike_members_of_a_privileged_group_are_reported() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    let twin = "n\u{0430}ncy.davolio@northwind.example";
    let mut dir = s.directory();
    let users = dir["users"].as_array_mut().unwrap();
    users.push(json!({"id": "v-1", "userName": "auditor@partner.example", "active": true}));
    users.push(json!({"id": "v-2", "userName": twin, "active": true}));
    find_group(&mut dir, "finance-admins")["members"].as_array_mut().unwrap().extend([json!("v-1"), json!("v-2")]);
    s.set_directory(&dir);
    let r = s.run(&["plan", "{dir}"]);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("hygiene.unmanaged-privileged-member"), "{all}");
    assert!(all.contains("`auditor@partner.example` holds privileged role `finance-admin`"), "{all}");
    assert!(all.contains("looks like `nancy.davolio@northwind.example` but is another account"), "{all}");
    let v = s.run(&["audit", "review", "{dir}", "--format", "json"]).json();
    let items: Vec<&serde_json::Value> =
        v["items"].as_array().unwrap().iter().filter(|i| i["section"] == "privileged-members").collect();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.iter().all(|i| i["target"] == "directory"), "{items:?}");
}

#[test]
fn max_deletes_guard_refuses_and_can_be_raised_explicitly() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    // Six in-scope accounts that git does not know: all would be disabled; the guard allows five.
    let mut dir = s.directory();
    for i in 0..6 {
        dir["users"].as_array_mut().unwrap().push(json!({
            "id": format!("stray-{i}"), "userName": format!("stray{i}@northwind.example"), "active": true
        }));
    }
    s.set_directory(&dir);
    let disables = changes(&s.plan_json()).iter().filter(|(_, a)| a == "disable").count();
    assert_eq!(disables, 6);
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(r.stderr.contains("guards.maxDeletes"), "{}", r.stderr);
    assert!(r.stderr.contains("disables or deletes 6 accounts or credentials, 1 over the limit of 5"), "{}", r.stderr);
    assert_eq!(find_user(&mut s.directory(), "stray0@northwind.example")["active"], json!(true));
    s.run(&["apply", "{dir}", "--auto-approve", "--max-deletes", "6"]).expect(0);
    assert_eq!(find_user(&mut s.directory(), "stray0@northwind.example")["active"], json!(false));
}

#[test]
fn protected_and_out_of_scope_accounts_are_never_touched() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    let mut dir = s.directory();
    let users = dir["users"].as_array_mut().unwrap();
    users.push(json!({"id": "x-1", "userName": "breakglass@northwind.example", "active": true}));
    users.push(json!({"id": "x-2", "userName": "vendor@partner.example", "active": true}));
    find_group(&mut dir, "it-admins")["members"].as_array_mut().unwrap().extend([json!("x-1"), json!("x-2")]);
    s.set_directory(&dir);
    let plan = s.plan_json();
    assert!(changes(&plan).is_empty(), "{:?}", changes(&plan));
}

#[test]
fn a_user_removed_from_git_is_disabled_and_stripped() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    let text = s.read("users/operations.yaml");
    // Keep every document but margaret.peacock's.
    let kept: Vec<&str> = text.split("\n---\n").filter(|d| !d.contains("name: carlos.mendes")).collect();
    s.write("users/operations.yaml", &kept.join("\n---\n"));
    let got = changes(&s.plan_json());
    assert!(got.contains(&("directory.user.carlos.mendes@northwind.example".into(), "disable".into())), "{got:?}");
    assert!(got.iter().any(|(a, x)| x == "revoke" && a.starts_with("directory.assignment.carlos.mendes@")), "{got:?}");
    s.apply_ok();
    assert!(changes(&s.plan_json()).is_empty());
}

#[test]
fn a_saved_plan_applies_exactly_and_a_stale_one_is_refused() {
    let s = Sandbox::example("quickstart");
    let plan_file = s.root.parent().unwrap().join("plan.json");
    let plan_arg = plan_file.to_string_lossy().into_owned();
    s.run(&["plan", "{dir}", "--out", &plan_arg]).expect(0);
    s.run(&["apply", &plan_arg, "--config", "{dir}"]).expect(0);
    assert!(changes(&s.plan_json()).is_empty());

    // A plan whose live object changes before apply is refused.
    s.edit("users/it.yaml", "jobTitle: Head of IT", "jobTitle: Chief Information Officer");
    s.run(&["plan", "{dir}", "--out", &plan_arg]).expect(0);
    let mut dir = s.directory();
    find_user(&mut dir, "steven.buchanan@northwind.example")["department"] = json!("Elsewhere");
    s.set_directory(&dir);
    let r = s.run(&["apply", &plan_arg, "--config", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("stale") && r.stderr.contains("directory.user.steven.buchanan"), "{}", r.stderr);
    assert_eq!(find_user(&mut s.directory(), "steven.buchanan@northwind.example")["jobTitle"], "Head of IT");
    // The refusal left the state unlocked: the next run need not wait.
    s.run(&["apply", "{dir}", "--auto-approve", "--lock-timeout", "0"]).expect(0);

    // A plan whose configuration changed since is refused.
    s.run(&["plan", "{dir}", "--out", &plan_arg]).expect(0);
    s.edit("users/it.yaml", "jobTitle: Chief Information Officer", "jobTitle: CIO");
    let r = s.run(&["apply", &plan_arg, "--config", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("configuration") && r.stderr.contains("changed since the plan"), "{}", r.stderr);
}

#[test]
fn a_tampered_audit_log_fails_verify() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    s.run(&["audit", "verify", "{dir}"]).expect(0);
    let log = s.read(".keyward/audit.jsonl");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > 10);
    assert!(lines.iter().all(|l| l.contains("\"actor\":\"test-runner\"")));
    let tampered = log.replacen("\"outcome\":\"applied\"", "\"outcome\":\"failed\"", 1);
    let first_outcome = lines.iter().position(|l| l.contains("\"outcome\":\"applied\"")).unwrap() + 1;
    s.write(".keyward/audit.jsonl", &tampered);
    let r = s.run(&["audit", "verify", "{dir}"]);
    r.expect(1);
    assert!(r.stdout.contains(&format!("line {first_outcome}:")), "{}", r.stdout);
    // Removing a record is found too.
    let removed: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != 4).map(|(_, l)| *l).collect();
    s.write(".keyward/audit.jsonl", &(removed.join("\n") + "\n"));
    let r = s.run(&["audit", "verify", "{dir}"]);
    r.expect(1);
    assert!(r.stdout.contains("line 5"), "{}", r.stdout);
}

#[test]
fn an_apply_failure_leaves_a_consistent_directory_and_a_rerun_converges() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    s.edit("users/it.yaml", "jobTitle: Head of IT", "jobTitle: Chief Information Officer");
    s.edit(
        "users/finance.yaml",
        "department: Finance\njobTitle: General Ledger Accountant",
        "department: Treasury\njobTitle: General Ledger Accountant",
    );
    let mut dir = s.directory();
    find_user(&mut dir, "steven.buchanan@northwind.example")["readOnly"] = json!(true);
    s.set_directory(&dir);

    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(
        r.stdout.contains("Apply incomplete") && r.stdout.contains("directory.user.steven.buchanan"),
        "{}",
        r.stdout
    );
    // The directory is whole and holds the change that succeeded.
    let mut dir = s.directory();
    assert_eq!(find_user(&mut dir, "steven.buchanan@northwind.example")["jobTitle"], "Head of IT");
    let treasury = dir["users"].as_array().unwrap().iter().filter(|u| u["department"] == "Treasury").count();
    assert_eq!(treasury, 1);
    // The failure is in the audit log.
    assert!(s.read(".keyward/audit.jsonl").contains("\"outcome\":\"failed\""));
    s.run(&["audit", "verify", "{dir}"]).expect(0);

    find_user(&mut dir, "steven.buchanan@northwind.example")["readOnly"] = json!(false);
    s.set_directory(&dir);
    let users_before = dir["users"].as_array().unwrap().len();
    s.apply_ok();
    let dir = s.directory();
    assert_eq!(dir["users"].as_array().unwrap().len(), users_before, "nothing created twice");
    assert!(changes(&s.plan_json()).is_empty());
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let s = Sandbox::example("quickstart");
    let r = s.run(&["apply", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("--auto-approve"), "{}", r.stderr);
    assert!(!s.path(".keyward/directory.json").exists(), "nothing applied");
}

#[test]
fn a_second_apply_refuses_while_the_directory_is_locked() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    let lock = std::fs::OpenOptions::new().write(true).open(s.path(".keyward/directory.json.lock")).unwrap();
    lock.lock().unwrap();
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(r.stderr.contains("locked by another keyward apply"), "{}", r.stderr);
    drop(lock);
    s.apply_ok();
}

#[test]
fn a_missing_predefined_role_is_a_plan_error() {
    let s = Sandbox::example("quickstart");
    s.edit("roles/it.yaml", "directory: {group: it-admins}", "directory: {directoryRole: Global Administrator}");
    let r = s.run(&["plan", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("directoryRole Global Administrator, which does not exist there"), "{}", r.stderr);
}

#[test]
fn plan_for_an_unknown_target_is_an_error() {
    let s = Sandbox::example("quickstart");
    let r = s.run(&["plan", "{dir}", "--target", "nope"]);
    r.expect(1);
    assert!(r.stderr.contains("there is no target `nope`"), "{}", r.stderr);
}

#[test]
fn markdown_and_json_formats() {
    let s = Sandbox::example("quickstart");
    let r = s.run(&["plan", "{dir}", "--format", "markdown"]);
    r.expect(0);
    assert!(r.stdout.starts_with("### keyward plan"), "{}", r.stdout);
    assert!(r.stdout.contains("<details>"));
    let plan = s.plan_json();
    assert_eq!(plan["format_version"], "1");
    assert!(plan["configuration"]["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn text_output_shows_the_first_findings_and_counts_the_rest() {
    let s = Sandbox::example("quickstart");
    // Sixty more people who hold both sides of the warn-level requisition rule.
    let mut yaml = String::new();
    for i in 0..60 {
        yaml.push_str(&format!(
            "---\nkind: User\nname: buyer{i}\nuserName: buyer{i}@northwind.example\nroles: [purchasing-manager, buyer]\n"
        ));
    }
    s.write("users/buyers.yaml", &yaml);
    let r = s.run(&["validate", "{dir}"]);
    r.expect(0);
    assert!(r.stderr.contains("... and 11 more findings (0 deny, 11 warn, 0 info) not shown here"), "{}", r.stderr);
    assert!(r.stderr.contains("0 deny, 61 warn"), "{}", r.stderr);
    let json = s.run(&["validate", "{dir}", "--format", "json"]);
    assert_eq!(json.json()["findings"].as_array().unwrap().len(), 61, "JSON lists them all");
}

#[test]
fn usage_errors_exit_1_not_2() {
    // 2 means "changes present" to CI scripts; a mistyped flag must not look like that.
    let s = Sandbox::example("quickstart");
    let r = s.run(&["plan", "{dir}", "--detailed-exitcod"]);
    r.expect(1);
    assert!(r.stderr.contains("unexpected argument"), "{}", r.stderr);
    s.run(&["--version"]).expect(0);
}

/// Targets are read while the resources are validated: the configuration's own problems are
/// still what a command reports first, and what the unreadable target said is not shown.
#[test]
fn a_configuration_error_comes_before_a_target_read_while_validating() {
    let s = Sandbox::example("quickstart");
    s.write(".keyward/directory.json", "{\"users\": [ truncated");
    s.edit("users/it.yaml", "manager: andrew.fuller", "manager: andrew.fullr");
    for cmd in ["plan", "drift", "apply"] {
        let r = s.run(
            &[cmd, "{dir}", "--auto-approve"]
                .into_iter()
                .filter(|a| cmd == "apply" || !a.starts_with("--"))
                .collect::<Vec<_>>(),
        );
        r.expect(1);
        assert!(r.stderr.contains("andrew.fullr"), "{cmd}: {}", r.stderr);
        assert!(!r.stderr.contains("truncated") && !r.stderr.contains("directory.json"), "{cmd}: {}", r.stderr);
    }
    // With the configuration fixed, the read's failure is the error.
    s.edit("users/it.yaml", "manager: andrew.fullr", "manager: andrew.fuller");
    for cmd in ["plan", "drift"] {
        let r = s.run(&[cmd, "{dir}"]);
        r.expect(1);
        assert!(r.stderr.contains("directory.json"), "{cmd}: {}", r.stderr);
        assert!(!r.stderr.contains("andrew.fullr"), "{cmd}: {}", r.stderr);
    }
}

/// A second apply waits for the state's lock, then fails naming the holder; `state show` names
/// the holder too, and after the holder is gone the applies continue one audit chain.
#[tokio::test(flavor = "current_thread")]
async fn apply_waits_for_the_state_lock_and_names_its_holder() {
    use keyward::state::{LockHolder, LockOptions, local::LocalStore, lock};
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    let store: std::sync::Arc<dyn keyward::state::StateStore> =
        std::sync::Arc::new(LocalStore::new(&s.root, std::path::Path::new(".keyward/audit.jsonl")));
    let mut holder = LockHolder::current(Some("c0ffee".into())).unwrap();
    holder.actor = "nightly-apply".into();
    let guard = lock::acquire(store.clone(), holder, LockOptions::default()).await.unwrap();

    let started = std::time::Instant::now();
    let r = s.run(&["apply", "{dir}", "--auto-approve", "--lock-timeout", "1s"]);
    r.expect(1);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "it waited for the lock");
    assert!(r.stderr.contains("is locked after waiting") && r.stderr.contains("nightly-apply"), "{}", r.stderr);
    assert!(r.stderr.contains(&guard.id().to_string()), "the lock id is named: {}", r.stderr);
    let shown = s.run(&["state", "show", "{dir}"]);
    shown.expect(0);
    assert!(shown.stdout.contains("Lock: held by nightly-apply"), "{}", shown.stdout);
    guard.release().await.unwrap();

    let before = s.run(&["audit", "show", "{dir}", "--format", "json"]).json().as_array().unwrap().len();
    assert!(before > 0);
    s.edit("users/sales.yaml", "jobTitle: Head of Sales", "jobTitle: Sales Director");
    let applied = s.run(&["apply", "{dir}", "--auto-approve"]);
    applied.expect(0);
    // The change's attempt and its outcome.
    assert!(applied.stdout.contains(&format!("Audit chain head: {} records", before + 2)), "{}", applied.stdout);
    s.run(&["audit", "verify", "{dir}"]).expect(0);
    let shown = s.run(&["state", "show", "{dir}"]);
    shown.expect(0);
    assert!(shown.stdout.contains("Lock: free"), "{}", shown.stdout);
    assert!(shown.stdout.contains("directory: completed"), "{}", shown.stdout);
    assert!(shown.stdout.contains(&format!("Audit chain: {} records", before + 2)), "{}", shown.stdout);
}

/// The records count and hash an apply printed as the audit chain's head.
fn printed_head(stdout: &str) -> (u64, String) {
    let line = stdout.lines().find(|l| l.starts_with("Audit chain head: ")).unwrap_or_else(|| panic!("{stdout}"));
    let rest = line.trim_start_matches("Audit chain head: ");
    let (n, rest) = rest.split_once(" records, last hash ").unwrap();
    (n.parse().unwrap(), rest.split_whitespace().next().unwrap().to_string())
}

/// `audit verify` reads the log of the configured state, checks it reaches the head the last
/// apply recorded (so a cut-off tail is found unasked), and `--expect-head` checks a head kept
/// elsewhere: a head still in the chain passes, one cut off or rewritten fails.
#[test]
fn audit_verify_finds_a_cut_off_tail_and_checks_an_expected_head() {
    let s = Sandbox::example("quickstart");
    // The log lives where keyward.yaml says, not at the default path.
    s.edit("keyward.yaml", "path: .keyward/audit.jsonl", "path: trail/audit.jsonl");
    let first = s.run(&["apply", "{dir}", "--auto-approve"]);
    first.expect(0);
    let (n1, h1) = printed_head(&first.stdout);
    s.edit("users/sales.yaml", "jobTitle: Head of Sales", "jobTitle: Sales Director");
    let second = s.run(&["apply", "{dir}", "--auto-approve"]);
    second.expect(0);
    let (n2, h2) = printed_head(&second.stdout);
    assert_eq!(n2, n1 + 2, "the change's attempt and its outcome");
    assert!(!s.path(".keyward/audit.jsonl").exists());

    let r = s.run(&["audit", "verify", "{dir}"]);
    r.expect(0);
    assert!(r.stdout.contains(&format!("trail/audit.jsonl: intact, {n2} records, head {h2}")), "{}", r.stdout);
    let shown = s.run(&["audit", "show", "{dir}", "--format", "json"]).json();
    assert_eq!(shown.as_array().unwrap().len() as u64, n2);
    // A head kept from either apply is in the chain.
    for h in [&h1, &h2] {
        let r = s.run(&["audit", "verify", "{dir}", "--expect-head", h]);
        r.expect(0);
        assert!(r.stdout.contains("reaches the expected head"), "{}", r.stdout);
    }
    let n2s = n2.to_string();
    s.run(&["audit", "verify", "{dir}", "--expect-head", &h2, "--expect-records", &n2s]).expect(0);

    // Cut the last record off: the chain that is left is intact, but the state's recorded head
    // and the kept one both say records are missing.
    let log = s.read("trail/audit.jsonl");
    let lines: Vec<&str> = log.lines().collect();
    s.write("trail/audit.jsonl", &(lines[..lines.len() - 1].join("\n") + "\n"));
    let r = s.run(&["audit", "verify", "{dir}"]);
    r.expect(1);
    let left = n2 - 1;
    assert!(r.stdout.contains(&format!("ends after {left} records")) && r.stdout.contains("cut off"), "{}", r.stdout);
    let r = s.run(&["audit", "verify", "{dir}", "--expect-head", &h2]);
    r.expect(1);
    assert!(r.stdout.contains(&format!("no record has the hash of the expected head, {h2}")), "{}", r.stdout);
    let r = s.run(&["audit", "verify", "{dir}", "--expect-head", &h2, "--expect-records", &n2s]);
    r.expect(1);
    assert!(r.stdout.contains("records were cut off"), "{}", r.stdout);
    // The head of the first apply is still reached.
    s.run(&["audit", "verify", "{dir}", "--expect-head", &h1]).expect(0);
    // A record numbered as the head with another hash: rewritten.
    let n1s = n1.to_string();
    let r = s.run(&["audit", "verify", "{dir}", "--expect-head", &h2, "--expect-records", &n1s]);
    r.expect(1);
    assert!(r.stdout.contains("the log was rewritten"), "{}", r.stdout);
}

/// The hash covers the whole record: a field added to a record fails `audit verify`; and a log
/// emptied (or removed) after an apply fails against the head that apply recorded, rather than
/// reading as "no log yet".
#[test]
fn audit_verify_refuses_an_added_field_and_an_emptied_log() {
    let s = Sandbox::example("quickstart");
    let first = s.run(&["apply", "{dir}", "--auto-approve"]);
    first.expect(0);
    let (n, h) = printed_head(&first.stdout);
    let log = s.read(".keyward/audit.jsonl");
    s.run(&["audit", "verify", "{dir}"]).expect(0);

    let edited = log.replacen(r#""actor":"#, r#""approvedByCfo":"yes","actor":"#, 1);
    assert_ne!(edited, log);
    s.write(".keyward/audit.jsonl", &edited);
    let r = s.run(&["audit", "verify", "{dir}"]);
    r.expect(1);
    assert!(r.stdout.contains("line 1: the record is not in its canonical form"), "{}", r.stdout);

    for emptied in [true, false] {
        if emptied {
            s.write(".keyward/audit.jsonl", "");
        } else {
            std::fs::remove_file(s.path(".keyward/audit.jsonl")).unwrap();
        }
        let r = s.run(&["audit", "verify", "{dir}"]);
        r.expect(1);
        let said = format!(
            "the log ends after 0 records, before the head the last apply recorded in the state ({n} records, {h}): records were cut off"
        );
        assert!(r.stdout.contains(&said), "emptied {emptied}: {}{}", r.stdout, r.stderr);
    }
}

/// Runs `keyward ARGS` in `s` with the size of the files it writes limited to `blocks` blocks of
/// 512 bytes (`ulimit -f`, the signal for going past it ignored): writing past the limit fails
/// as on a full disk, for every file, and is the only fault.
#[cfg(unix)]
fn run_with_file_size_limit(s: &Sandbox, blocks: u64, args: &[&str]) -> support::Run {
    let dir = s.root.to_string_lossy().into_owned();
    let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &dir)).collect();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_keyward"))
        .args(&args)
        .env("KEYWARD_NOW", &s.now)
        .env("KEYWARD_ACTOR", "test-runner")
        .env("NO_COLOR", "1")
        .env_remove("KEYWARD_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The audit log records an operation before it is sent: with the log unable to grow (its
/// file already at the size limit, as on a full disk) the change is not sent, the target is
/// unchanged and apply exits 1 saying why. Once the log can grow, the change is applied and
/// its attempt and outcome are both in the log, shown paired by `audit show`.
#[cfg(unix)]
#[test]
fn an_operation_whose_attempt_cannot_be_recorded_is_not_sent() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    s.edit("users/sales.yaml", "jobTitle: Head of Sales", "jobTitle: Sales Director");
    let directory = s.read(".keyward/directory.json");
    let log = s.read(".keyward/audit.jsonl");
    // Every other file apply writes (the directory, the lock's holder) stays under the limit.
    let blocks = log.len() as u64 / 512;
    assert!(directory.len() < (blocks * 512) as usize, "the directory fits under the limit");

    let r = run_with_file_size_limit(&s, blocks, &["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert_eq!(s.read(".keyward/directory.json"), directory, "the target is unchanged");
    assert!(r.stderr.contains("not sent: 1 operation(s) on target `directory`"), "{}", r.stderr);
    assert!(r.stderr.contains("cannot record them first"), "{}", r.stderr);
    assert_eq!(s.read(".keyward/audit.jsonl"), log, "nothing was written to the log");

    s.apply_ok();
    assert_eq!(find_user(&mut s.directory(), "robert.king@northwind.example")["jobTitle"], "Sales Director");
    let records = s.run(&["audit", "show", "{dir}", "--format", "json"]).json();
    let records = records.as_array().unwrap();
    let last_two: Vec<(&str, &str)> = records[records.len() - 2..]
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(last_two, [("update", "attempting"), ("update", "applied")]);
    let shown = s.run(&["audit", "show", "{dir}", "--last", "1"]);
    assert!(shown.stdout.contains("applied  update"), "{}", shown.stdout);
    assert!(!shown.stdout.contains("unknown"), "{}", shown.stdout);

    // A run that stopped after recording an attempt (killed, or its outcome not recordable):
    // the attempt is shown with its outcome unknown.
    let last = records.last().unwrap();
    let mut log = keyward::audit::AuditLog::open(&s.path(".keyward/audit.jsonl")).unwrap();
    let mut entry: keyward::audit::Entry = serde_json::from_value(last.clone()).unwrap();
    entry.outcome = keyward::audit::Outcome::Attempting;
    entry.plan_hash = "sha256:another-plan".into();
    log.append(entry).unwrap();
    drop(log);
    let shown = s.run(&["audit", "show", "{dir}", "--last", "2"]);
    let lines: Vec<&str> = shown.stdout.lines().collect();
    assert!(lines[0].contains("applied  update"), "{}", shown.stdout);
    assert!(lines[1].contains("unknown  update") && lines[1].contains("outcome unknown"), "{}", shown.stdout);
    s.run(&["audit", "verify", "{dir}"]).expect(0);
}

/// A log whose final line is an interrupted write (no newline, not a record): the next apply
/// removes it, says so on stderr, records the removal with the removed bytes' length and hash,
/// and goes on; the chain verifies. A damaged record before the end stays refused, and so does
/// a final line that is a record but does not continue the chain.
#[test]
fn a_torn_final_line_is_removed_said_and_recorded() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    let log = s.read(".keyward/audit.jsonl");
    let torn = r#"{"action":"update","actor":"test-runner","address":"directory.user.rob"#;
    s.write(".keyward/audit.jsonl", &format!("{log}{torn}"));
    s.edit("users/sales.yaml", "jobTitle: Head of Sales", "jobTitle: Sales Director");
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(0);
    let said = format!("ended in an interrupted write ({} bytes without a newline that are no record", torn.len());
    assert!(r.stderr.contains(&said), "{}", r.stderr);
    s.run(&["audit", "verify", "{dir}"]).expect(0);
    let records = s.run(&["audit", "show", "{dir}", "--format", "json"]).json();
    let repair = records.as_array().unwrap().iter().find(|r| r["action"] == "repair").expect("the repair is recorded");
    let hash = keyward::model::digest_bytes(torn.as_bytes());
    let detail = repair["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("{} bytes without a newline, {hash}", torn.len())), "{detail}");
    assert_eq!(repair["address"], "audit.log");
    assert_eq!(repair["seq"].as_u64().unwrap() as usize, log.lines().count() + 1, "recorded first, where it was");
    assert_eq!(find_user(&mut s.directory(), "robert.king@northwind.example")["jobTitle"], "Sales Director");

    // A final line that parses as a record but does not continue the chain is damage: refused.
    let log = s.read(".keyward/audit.jsonl");
    let last = log.lines().last().unwrap().to_string();
    let forged = last.replace("\"seq\":", "\"seq\":1");
    s.write(".keyward/audit.jsonl", &format!("{log}{forged}"));
    s.edit("users/sales.yaml", "jobTitle: Sales Director", "jobTitle: Head of Sales");
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
    assert_eq!(s.read(".keyward/audit.jsonl"), format!("{log}{forged}"), "nothing repaired");

    // A damaged record before the end: refused, nothing removed.
    let lines: Vec<&str> = log.lines().collect();
    let i = lines.iter().position(|l| l.contains("\"outcome\":\"applied\"")).unwrap();
    let middle = lines[i].replace("\"outcome\":\"applied\"", "\"outcome\":\"failed\"");
    let damaged = log.replacen(lines[i], &middle, 1);
    assert_ne!(damaged, log);
    s.write(".keyward/audit.jsonl", &damaged);
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    assert!(r.stderr.contains(&format!("damaged at line {}", i + 1)), "{}", r.stderr);
    assert_eq!(s.read(".keyward/audit.jsonl"), damaged);
}

/// A log whose last record lacks only its newline: the next apply adds the newline and loses
/// nothing; the record, and the head the apply before recorded, are still in the chain.
#[test]
fn a_last_record_missing_only_its_newline_is_kept() {
    let s = Sandbox::example("quickstart");
    let first = s.run(&["apply", "{dir}", "--auto-approve"]);
    first.expect(0);
    let (n1, h1) = printed_head(&first.stdout);
    let log = s.read(".keyward/audit.jsonl");
    s.write(".keyward/audit.jsonl", log.strip_suffix('\n').unwrap());
    // Read as it is, the record is there: the chain reaches the head the apply recorded.
    let r = s.run(&["audit", "verify", "{dir}"]);
    r.expect(0);
    assert!(
        r.stdout.contains(&format!("intact, {n1} records, head {h1}; the last line lacks its newline")),
        "{}",
        r.stdout
    );
    s.edit("users/sales.yaml", "jobTitle: Head of Sales", "jobTitle: Sales Director");
    let r = s.run(&["apply", "{dir}", "--auto-approve"]);
    r.expect(0);
    assert!(
        r.stderr.contains(&format!("ended in record {n1} without its newline: the newline was added")),
        "{}",
        r.stderr
    );
    let (n2, _) = printed_head(&r.stdout);
    assert_eq!(n2, n1 + 2, "the change's attempt and outcome follow every earlier record");
    assert!(s.read(".keyward/audit.jsonl").starts_with(&log), "nothing before was changed or lost");
    s.run(&["audit", "verify", "{dir}"]).expect(0);
    s.run(&["audit", "verify", "{dir}", "--expect-head", &h1, "--expect-records", &n1.to_string()]).expect(0);
}

/// `guards.maxDeletes` counts over a window: disables applied on one target (`--target
/// directory`) count when the next run plans more on another (`--target archive`), so the two
/// runs together cannot pass more than the limit. Raising the limit for the run to the total
/// lets it through; with the window set to 0s only the plan itself counts.
#[test]
fn max_deletes_counts_what_earlier_runs_removed_on_any_target() {
    let s = Sandbox::example("quickstart");
    s.edit(
        "keyward.yaml",
        "    path: .keyward/directory.json",
        "    path: .keyward/directory.json\n  archive:\n    provider: file\n    path: .keyward/archive.json\n",
    );
    s.edit("keyward.yaml", "maxDeletes: 5", "maxDeletes: 3");
    s.apply_ok();
    // The sales users leave: two disables on each target.
    std::fs::remove_file(s.path("users/sales.yaml")).unwrap();
    s.run(&["apply", "{dir}", "--auto-approve", "--target", "directory"]).expect(0);

    let r = s.run(&["apply", "{dir}", "--auto-approve", "--target", "archive"]);
    r.expect(1);
    let said = "the plan disables or deletes 2 accounts or credentials, and applies within the last 24h disabled or \
                deleted 2 more (on any target, as the audit log records): 4 in all, 1 over the limit of 3";
    assert!(r.stderr.contains(said), "{}", r.stderr);
    assert!(r.stderr.contains("--max-deletes 4"), "{}", r.stderr);
    let archive: serde_json::Value = serde_json::from_str(&s.read(".keyward/archive.json")).unwrap();
    assert_eq!(find_user(&mut archive.clone(), "robert.king@northwind.example")["active"], true, "nothing applied");

    s.run(&["apply", "{dir}", "--auto-approve", "--target", "archive", "--max-deletes", "4"]).expect(0);
    let mut archive: serde_json::Value = serde_json::from_str(&s.read(".keyward/archive.json")).unwrap();
    assert_eq!(find_user(&mut archive, "robert.king@northwind.example")["active"], false);

    // With no window, each run counts alone: two disables, then three (five within a day).
    let t = Sandbox::example("quickstart");
    t.edit("keyward.yaml", "maxDeletes: 5", "maxDeletes: 3\n  maxDeletesWindow: 0s");
    t.apply_ok();
    std::fs::remove_file(t.path("users/sales.yaml")).unwrap();
    t.apply_ok();
    std::fs::remove_file(t.path("users/operations.yaml")).unwrap();
    t.apply_ok();
}

/// `--lock-timeout 0` does not wait: a held lock fails the apply at once, naming the holder.
#[tokio::test(flavor = "current_thread")]
async fn lock_timeout_zero_fails_at_once() {
    use keyward::state::{LockHolder, LockOptions, local::LocalStore, lock};
    let s = Sandbox::example("quickstart");
    let store: std::sync::Arc<dyn keyward::state::StateStore> =
        std::sync::Arc::new(LocalStore::new(&s.root, std::path::Path::new(".keyward/audit.jsonl")));
    let mut holder = LockHolder::current(None).unwrap();
    holder.actor = "hourly-apply".into();
    let guard = lock::acquire(store, holder, LockOptions::default()).await.unwrap();
    let r = s.run(&["apply", "{dir}", "--auto-approve", "--lock-timeout", "0"]);
    r.expect(1);
    assert!(r.stderr.contains("is locked: held by hourly-apply"), "{}", r.stderr);
    assert!(!r.stderr.contains("after waiting"), "{}", r.stderr);
    guard.release().await.unwrap();
    s.run(&["apply", "{dir}", "--auto-approve", "--lock-timeout", "0"]).expect(0);
    // Zero is the only interval without a unit.
    s.run(&["apply", "{dir}", "--auto-approve", "--lock-timeout", "5"]).expect(1);
}

/// `state migrate` between two local states: the chain is verified, copied whole with the
/// documents, the copy recorded at the destination; into itself it is refused.
#[test]
fn state_migrate_copies_the_chain_and_the_documents() {
    let s = Sandbox::example("quickstart");
    let applied = s.run(&["apply", "{dir}", "--auto-approve"]);
    applied.expect(0);
    let (n, h) = printed_head(&applied.stdout);
    let dest = tempfile::tempdir().unwrap();
    std::fs::write(dest.path().join("keyward.yaml"), "version: 1\naudit: {path: kept/audit.jsonl}\n").unwrap();
    let to = dest.path().to_str().unwrap();
    let m = s.run(&["state", "migrate", "{dir}", "--to", to]);
    m.expect(0);
    assert!(m.stdout.contains("Copied applied.json") && m.stdout.contains("Copied audit-head.json"), "{}", m.stdout);
    let kept = dest.path().join("kept/audit.jsonl");
    let text = std::fs::read_to_string(&kept).unwrap();
    assert_eq!(text.lines().count() as u64, n + 1);
    assert!(text.starts_with(&s.read(".keyward/audit.jsonl")), "the chain is copied byte for byte");
    assert!(dest.path().join("kept/applied.json").exists());
    let v = s.run(&["audit", "verify", "{dir}", "--log", kept.to_str().unwrap(), "--expect-head", &h]);
    v.expect(0);
    assert!(v.stdout.contains(&format!("intact, {} records", n + 1)), "{}", v.stdout);
    let r = s.run(&["state", "migrate", "{dir}", "--to", "{dir}/keyward.yaml"]);
    r.expect(1);
    assert!(r.stderr.contains("this configuration's own settings"), "{}", r.stderr);
    // Another settings file selecting the same state (audit paths are relative to the folder of
    // their settings file, so it sits beside keyward.yaml).
    std::fs::write(s.path("same.yaml"), "version: 1\naudit: {path: .keyward/audit.jsonl}\n").unwrap();
    let r = s.run(&["state", "migrate", "{dir}", "--to", s.path("same.yaml").to_str().unwrap()]);
    r.expect(1);
    assert!(r.stderr.contains("they are the same state"), "{}", r.stderr);
}
