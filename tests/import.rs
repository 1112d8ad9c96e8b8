//! `keyward import`: adopting live users, groups and memberships into a configuration, so that
//! the next plan shows no changes. Against the embedded file directory, and (ignored by default)
//! against the real scim2-server.

mod support;

#[path = "scim/harness.rs"]
mod harness;

use support::Sandbox;

const EXTRA_ROLE: &str =
    "kind: Role\nname: auditors\ndescription: Internal audit\nbindings:\n  directory: {group: Internal Auditors}\n";
const EXTRA_USER: &str = "kind: User\nname: olga.ivanova\nuserName: Olga.Ivanova@northwind.example\ndisplayName: Olga Ivanova\n\
status: disabled\nmanager: robert.king\nroles: [auditors, ap-clerk]\n";

#[test]
fn import_then_plan_shows_no_changes() {
    let s = Sandbox::example("quickstart");
    s.write("roles/extra.yaml", EXTRA_ROLE);
    s.write("users/extra.yaml", EXTRA_USER);
    s.apply_ok();
    // Forget a role and four users (one disabled, one holding the forgotten role).
    for f in ["roles/extra.yaml", "users/extra.yaml", "users/sales.yaml"] {
        std::fs::remove_file(s.path(f)).unwrap();
    }
    // A service account in the forgotten group: import asks for a hand edit.
    let mut dir = s.directory();
    let sa_id = dir["serviceAccounts"][0]["id"].clone();
    support::find_group(&mut dir, "Internal Auditors")["members"].as_array_mut().unwrap().push(sa_id);
    s.set_directory(&dir);
    let r = s.run(&["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(2);

    let r = s.run(&["import", "--target", "directory", "{dir}"]);
    r.expect(0);
    assert!(
        r.stderr
            .contains("service account payments-bot is a member of group Internal Auditors: add `- internal-auditors`"),
        "{}",
        r.stderr
    );
    s.edit("service-accounts/payments-bot.yaml", "roles: [ap-clerk]", "roles: [ap-clerk, internal-auditors]");
    assert!(r.stdout.contains("users/imported-directory.yaml (4 users)"), "{}", r.stdout);
    assert!(r.stdout.contains("roles/imported-directory.yaml (1 roles)"), "{}", r.stdout);
    let users = s.read("users/imported-directory.yaml");
    let roles = s.read("roles/imported-directory.yaml");
    for text in [&users, &roles] {
        for doc in text.split("\n---\n") {
            assert!(doc.starts_with("# yaml-language-server: $schema=../../../schemas/"), "{doc}");
        }
    }
    assert!(users.contains("name: olga.ivanova\nuserName: Olga.Ivanova@northwind.example"), "{users}");
    assert!(users.contains("status: disabled"), "{users}");
    assert!(users.contains("- internal-auditors"), "{users}");
    assert!(users.contains("manager: robert.king"), "{users}");
    assert!(!users.contains("breakglass"), "protected accounts are left out: {users}");
    assert!(roles.contains("name: internal-auditors") && roles.contains("group: Internal Auditors"), "{roles}");

    let r = s.run(&["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(0);
    assert!(r.stdout.contains("No changes."), "{}", r.stdout);

    // Never overwrites.
    let r = s.run(&["import", "--target", "directory", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("never overwrites"), "{}", r.stderr);
    assert_eq!(s.read("users/imported-directory.yaml"), users);
}

#[test]
fn import_into_another_folder_and_unknown_target() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().to_string_lossy().into_owned();
    let r = s.run(&["import", "--target", "directory", "--out", &out_s, "{dir}"]);
    r.expect(0);
    assert!(r.stdout.contains("Nothing to import"), "{}", r.stdout);
    let r = s.run(&["import", "--target", "nope", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("there is no target `nope`"), "{}", r.stderr);
}

#[test]
#[ignore = "needs scim2-server: cargo xtask test"]
fn import_round_trip_against_scim2_server() {
    let server = harness::Server::start();
    let dir = harness::quickstart(&server);
    let root = dir.path();
    std::fs::write(root.join("roles/extra.yaml"), EXTRA_ROLE).unwrap();
    std::fs::write(root.join("users/extra.yaml"), EXTRA_USER).unwrap();
    let o = harness::keyward(root, &server.token, &["apply", "--auto-approve", "."]);
    harness::expect_exit(&o, 0);
    for f in ["roles/extra.yaml", "users/extra.yaml", "users/sales.yaml"] {
        std::fs::remove_file(root.join(f)).unwrap();
    }
    let o = harness::keyward(root, &server.token, &["import", "--target", "directory", "."]);
    harness::expect_exit(&o, 0);
    let users = std::fs::read_to_string(root.join("users/imported-directory.yaml")).unwrap();
    assert!(users.contains("name: olga.ivanova"), "{users}");
    let o = harness::keyward(root, &server.token, &["plan", "--detailed-exitcode", "."]);
    harness::expect_exit(&o, 0);
}

/// Two live accounts whose userNames differ only in case would be imported as two users with
/// one userName: import says so, naming the problem, and writes nothing.
#[test]
fn import_refuses_to_write_a_configuration_that_does_not_validate() {
    let s = Sandbox::example("quickstart");
    s.apply_ok();
    let mut dir = s.directory();
    let janet = support::find_user(&mut dir, "janet.leverling@northwind.example").clone();
    for (id, user_name) in [("u-twin-1", "Twin@northwind.example"), ("u-twin-2", "twin@northwind.example")] {
        let mut u = janet.clone();
        u["id"] = id.into();
        u["userName"] = user_name.into();
        dir["users"].as_array_mut().unwrap().push(u);
    }
    s.set_directory(&dir);
    let r = s.run(&["import", "--target", "directory", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("import would write a configuration that does not validate"), "{}", r.stderr);
    assert!(r.stderr.contains("duplicate-user-name"), "{}", r.stderr);
    assert!(r.stderr.contains("users/imported-directory.yaml"), "{}", r.stderr);
    assert!(!s.path("users/imported-directory.yaml").exists(), "nothing is written");
    s.run(&["validate", "{dir}"]).expect(0);
}
