//! The `ldap` provider against a real OpenLDAP slapd (Debian's package), started for the run
//! by `cargo xtask test` (or by hand with `cargo xtask slapd`, see README › Testing), which
//! exports its URL, suffix and credentials. Each test works in its own OU, so tests run in
//! parallel in one server.
//!
//! Through the binary: the quick start retargeted to LDAP plans, applies and converges; a
//! member added with `ldapmodify` outside keyward is reported by `keyward drift` and removed
//! by `apply` while a foreign member stays; hostile names round-trip; a wrong password is an
//! error with the LDAP result code and the server's message. Through the library: 10,000
//! entries are read with paged results past a size limit that an unpaged search hits; names
//! with leading and trailing spaces round-trip; disabling by moving to another OU keeps the
//! account's memberships; removing a group's last member keeps the group and its foreign
//! members; ldaps and StartTLS verify the server's certificate against the configured CA.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stderr)]

#[path = "ldap/harness.rs"]
mod harness;
mod support;

use std::path::Path;

use harness::{Corner, Server, expect_exit, retarget, text};
use keyward::model::config::LdapDisable;
use keyward::model::{Binding, Name, UserAttrs};
use keyward::plan::{Action, Address, Change, ObjectKind, Operation, Principal, Reason, ReasonKind};
use keyward::provider::ldap::LdapProvider;
use keyward::provider::{Access, Provider};

/// The quick start's configuration, retargeted to this corner.
fn quickstart(corner: &Corner) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"), dir.path());
    let path = dir.path().join("keyward.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, retarget(&config, &corner.target_yaml(""))).unwrap();
    dir
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn change(kind: ObjectKind, name: &str, action: Action, operation: Operation) -> Change {
    Change {
        address: Address::new(&Name::new("directory").unwrap(), kind, name),
        action,
        reason: Reason::new(ReasonKind::Config, "test"),
        before: None,
        after: None,
        fingerprint: "absent".into(),
        subject: None,
        notes: vec![],
        operation,
    }
}

fn create_user(user_name: &str, active: bool) -> Change {
    let attrs = UserAttrs { display_name: Some(format!("Display {user_name}")), ..Default::default() };
    change(
        ObjectKind::User,
        user_name,
        Action::Create,
        Operation::CreateUser { user_name: user_name.into(), attrs, active },
    )
}

fn membership(user: &str, group: &str, assign: bool) -> Change {
    let principal = Principal::User(user.into());
    let binding = Binding::Group(group.into());
    if assign {
        change(ObjectKind::Assignment, user, Action::Assign, Operation::Assign { principal, binding })
    } else {
        change(ObjectKind::Assignment, user, Action::Revoke, Operation::Revoke { principal, binding })
    }
}

/// Applies changes through a freshly read provider and asserts that each succeeded.
async fn apply_all(provider: &mut LdapProvider, changes: &[Change]) {
    provider.read().await.unwrap();
    let refs: Vec<&Change> = changes.iter().collect();
    for (c, r) in changes.iter().zip(provider.apply(&refs).await) {
        r.unwrap_or_else(|e| panic!("{}: {e}", c.address));
    }
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn quickstart_plans_applies_and_converges() {
    let server = Server::from_env();
    let corner = Corner::new(&server, "quickstart");
    let dir = quickstart(&corner);
    let o = corner.keyward(dir.path(), &["plan", "--detailed-exitcode", "."]);
    expect_exit(&o, 2);
    let (out, _) = text(&o);
    assert!(out.contains("directory.user.nancy.davolio"), "{out}");
    assert!(out.contains("Plan: 21 to create, 0 to update, 10 to assign, 0 to revoke"), "{out}");
    // payments-bot holds ap-clerk, bound on this target, which has no service accounts: the
    // plan says it is not managed there, rather than leaving it out without a word.
    assert!(
        out.contains("service account `payments-bot` is not managed on target `directory`"),
        "the service account is dropped silently:\n{out}"
    );

    let o = corner.keyward(dir.path(), &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    assert!(text(&o).0.contains("Apply complete! 31 changes applied."), "{}", text(&o).0);

    // What the directory now holds, as ldapsearch sees it.
    let people = corner.search(&corner.people, "(objectClass=inetOrgPerson)", &["uid"]);
    assert_eq!(people.len(), 15);
    let nancy = corner.entry(&corner.people, "uid", "nancy.davolio@northwind.example");
    let laura = corner.entry(&corner.people, "uid", "laura.callahan@northwind.example");
    assert_eq!(nancy.get("displayName"), Some("Nancy Davolio"));
    assert_eq!(nancy.get("givenName"), Some("Nancy"));
    assert_eq!(nancy.get("sn"), Some("Davolio"));
    assert_eq!(nancy.get("mail"), Some("nancy.davolio@northwind.example"));
    assert_eq!(nancy.get("departmentNumber"), Some("Finance"));
    assert_eq!(nancy.get("title"), Some("Financial Controller"));
    assert_eq!(nancy.get("employeeNumber"), Some("E1005"));
    assert_eq!(nancy.get("manager"), Some(laura.dn.as_str()));
    assert!(nancy.dn.starts_with("uid=nancy.davolio@northwind.example,ou=people,"), "{}", nancy.dn);
    // The disabled user is locked with the default method (ppolicy's permanent lock).
    let tomas = corner.entry(&corner.people, "uid", "tomas.novak@northwind.example");
    assert_eq!(tomas.get("pwdAccountLockedTime"), Some("000001010000Z"));
    assert_eq!(nancy.get("pwdAccountLockedTime"), None);
    let groups = corner.search(&corner.groups, "(objectClass=groupOfNames)", &["cn", "member"]);
    assert_eq!(groups.len(), 6, "{groups:#?}");
    let gl = corner.entry(&corner.groups, "cn", "gl-accountants");
    let yusuf = corner.entry(&corner.people, "uid", "yusuf.demir@northwind.example");
    let mut members = gl.all("member");
    members.sort();
    let mut expected = vec!["", nancy.dn.as_str(), yusuf.dn.as_str()];
    expected.sort();
    assert_eq!(members, expected, "the placeholder and the two accountants");

    let o = corner.keyward(dir.path(), &["plan", "--detailed-exitcode", "."]);
    expect_exit(&o, 0);
    assert!(text(&o).0.contains("No changes"), "{}", text(&o).0);
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn a_member_added_with_ldapmodify_is_reported_and_removed_while_foreign_members_stay() {
    let server = Server::from_env();
    let corner = Corner::new(&server, "drift");
    let dir = quickstart(&corner);
    expect_exit(&corner.keyward(dir.path(), &["apply", "--auto-approve", "."]), 0);

    let it = corner.entry(&corner.groups, "cn", "it-admins");
    let hannah = corner.entry(&corner.people, "uid", "hannah.schulz@northwind.example");
    let foreign = format!("cn=backup-robot,ou=services,{}", server.base);
    corner.ldapmodify(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: {}\nmember: {foreign}\n",
        it.dn, hannah.dn
    ));

    let o = corner.keyward(dir.path(), &["drift", "."]);
    expect_exit(&o, 2);
    let (out, _) = text(&o);
    assert!(out.contains("directory.assignment.hannah.schulz/it-admin"), "{out}");
    assert!(!out.contains("backup-robot"), "a foreign member is not drift: {out}");

    let o = corner.keyward(dir.path(), &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    let it = corner.entry(&corner.groups, "cn", "it-admins");
    let members = it.all("member");
    assert!(!members.contains(&hannah.dn.as_str()), "{members:?}");
    assert!(members.contains(&foreign.as_str()), "the foreign member stays: {members:?}");
    assert!(members.len() >= 3, "the admins, the placeholder and the foreign member: {members:?}");

    let o = corner.keyward(dir.path(), &["drift", "."]);
    expect_exit(&o, 0);
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn hostile_names_round_trip() {
    let server = Server::from_env();
    let corner = Corner::new(&server, "hostile");
    let dir = tempfile::tempdir().unwrap();
    let names = ["*)(uid=*", "a,b", "#x", "o\"neil", "back\\slash", "x+y=z;<w>", "Ünïcødé"];
    let groups = ["*)(cn=*", "g,1+2", "#g", "o\"g\\h"];
    std::fs::write(dir.path().join("keyward.yaml"), format!("version: 1\n{}", corner.target_yaml(""))).unwrap();
    let mut roles = String::new();
    for (i, g) in groups.iter().enumerate() {
        roles.push_str(&format!(
            "---\nkind: Role\nname: role-{i}\nbindings:\n  directory: {{group: \"{}\"}}\n",
            harness::yaml_escape(g)
        ));
    }
    std::fs::write(dir.path().join("roles.yaml"), roles).unwrap();
    let mut users = String::new();
    for (i, n) in names.iter().enumerate() {
        let manager = if i > 0 { "manager: user-0\n".to_string() } else { String::new() };
        users.push_str(&format!(
            "---\nkind: User\nname: user-{i}\nuserName: \"{}\"\ndisplayName: \"Name {}\"\n{manager}roles: [role-{}]\n",
            harness::yaml_escape(n),
            harness::yaml_escape(n),
            i % groups.len()
        ));
    }
    std::fs::write(dir.path().join("users.yaml"), users).unwrap();

    let o = corner.keyward(dir.path(), &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    for n in names {
        let e = corner.entry(&corner.people, "uid", n);
        assert_eq!(e.get("uid"), Some(n));
        assert_eq!(e.get("displayName"), Some(format!("Name {n}").as_str()));
    }
    // The injection attempt matched exactly one entry, itself.
    let first = corner.entry(&corner.people, "uid", names[0]);
    assert_eq!(corner.entry(&corner.people, "uid", names[3]).get("manager"), Some(first.dn.as_str()));
    for (i, g) in groups.iter().enumerate() {
        let e = corner.entry(&corner.groups, "cn", g);
        let holders: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(k, _)| k % groups.len() == i)
            .map(|(_, n)| corner.entry(&corner.people, "uid", n).dn)
            .collect();
        for h in &holders {
            assert!(e.all("member").contains(&h.as_str()), "{g}: {h} in {:?}", e.all("member"));
        }
    }
    // Read back and planned again: nothing to do.
    let o = corner.keyward(dir.path(), &["plan", "--detailed-exitcode", "."]);
    expect_exit(&o, 0);
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn names_with_leading_and_trailing_spaces_round_trip_through_the_provider() {
    let server = Server::from_env();
    let corner = Corner::new(&server, "spaces");
    let target = corner.target(LdapDisable::MoveTo(corner.disabled.clone()), &server.bind_password);
    let names = [" lead", "trail ", "  both  ", "#x ", " "];
    runtime().block_on(async {
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        let mut changes: Vec<Change> = names.iter().map(|n| create_user(n, true)).collect();
        changes.push(change(
            ObjectKind::Role,
            "g",
            Action::Create,
            Operation::CreateBinding { binding: Binding::Group(" spaced group ".into()) },
        ));
        changes.extend(names.iter().map(|n| membership(n, " spaced group ", true)));
        apply_all(&mut p, &changes).await;

        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Read).unwrap();
        let live = p.read().await.unwrap();
        let mut read: Vec<&str> = live.accounts.iter().map(|a| a.user_name.as_str()).collect();
        read.sort();
        let mut want = names.to_vec();
        want.sort();
        assert_eq!(read, want);
        let group = &live.bindings[0];
        assert_eq!(group.binding, Binding::Group(" spaced group ".into()));
        let mut members = group.members.clone();
        members.sort();
        let mut ids: Vec<String> = live.accounts.iter().map(|a| a.id.clone()).collect();
        ids.sort();
        assert_eq!(members, ids, "every member maps to its account");
    });
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn ten_thousand_entries_are_read_with_paged_results() {
    let server = Server::from_env();
    let corner = Corner::new(&server, "paged");
    let n = 10_000;
    assert!(server.size_limit < n, "the server's size limit must be below the entries read");
    let mut ldif = String::with_capacity(n * 160);
    for i in 0..n {
        ldif.push_str(&format!(
            "dn: uid=user{i:05},{}\nobjectClass: inetOrgPerson\nuid: user{i:05}\ncn: User {i}\nsn: User\n\n",
            corner.people
        ));
    }
    corner.ldap_tool("ldapadd", &[], &ldif).expect_ok();

    // Unpaged, the service account hits the size limit (result 4, sizeLimitExceeded).
    let pw = corner.tmp.path().join("bind.pw");
    std::fs::write(&pw, &server.bind_password).unwrap();
    let unpaged = std::process::Command::new("ldapsearch")
        .args(["-x", "-LLL", "-H", &server.url, "-D", &server.bind_dn, "-y"])
        .arg(&pw)
        .args(["-b", &corner.people, "(objectClass=inetOrgPerson)", "uid"])
        .output()
        .unwrap();
    assert_eq!(unpaged.status.code(), Some(4), "{}", String::from_utf8_lossy(&unpaged.stderr));

    let target = corner.target(LdapDisable::MoveTo(corner.disabled.clone()), &server.bind_password);
    runtime().block_on(async {
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Read).unwrap();
        let started = std::time::Instant::now();
        let live = p.read().await.unwrap();
        // Printed for the record, never asserted.
        eprintln!("read {n} entries in {} pages in {:.2?}", p.pages_read(), started.elapsed());
        assert_eq!(live.accounts.len(), n);
        let mut seen: Vec<&str> = live.accounts.iter().map(|a| a.user_name.as_str()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n, "each entry once");
        // 20 pages of 500 users, at least one of the (empty) disabled OU and one of groups.
        let pages = p.pages_read();
        assert!(pages >= n / keyward::provider::ldap::PAGE_SIZE as usize + 2, "{pages} pages");
    });
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn a_wrong_password_shows_the_result_code_and_diagnostic() {
    let server = Server::from_env();
    let corner = Corner::new(&server, "badbind");
    let dir = quickstart(&corner);
    let wrong = format!("wrong-{}", harness::random_hex(8));
    let o = corner.keyward_with_password(dir.path(), &wrong, &["plan", "."]);
    expect_exit(&o, 1);
    let (out, err) = text(&o);
    assert!(err.contains("LDAP result 49 (invalidCredentials)"), "{err}");
    assert!(err.contains(&format!("binding as {}", server.bind_dn)), "{err}");
    assert!(err.contains("check bindDn and the password in ${env:KEYWARD_TEST_LDAP_PASSWORD}"), "{err}");
    assert!(!err.contains(&wrong) && !out.contains(&wrong), "the password was printed");
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn disabling_by_moving_keeps_memberships_and_enabling_moves_back() {
    let server = Server::from_env();
    let corner = Corner::new(&server, "moveto");
    let target = corner.target(LdapDisable::MoveTo(corner.disabled.clone()), &server.bind_password);
    runtime().block_on(async {
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        apply_all(
            &mut p,
            &[
                create_user("ann", true),
                create_user("bob", false),
                change(
                    ObjectKind::Role,
                    "g",
                    Action::Create,
                    Operation::CreateBinding { binding: Binding::Group("staff".into()) },
                ),
                membership("ann", "staff", true),
            ],
        )
        .await;
        assert!(corner.entry(&corner.disabled, "uid", "bob").dn.ends_with(&corner.disabled));

        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        let set = |user: &str, active: bool| {
            change(
                ObjectKind::User,
                user,
                if active { Action::Enable } else { Action::Disable },
                Operation::SetUserActive { user_name: user.into(), active },
            )
        };
        apply_all(&mut p, &[set("ann", false), set("bob", true)]).await;
        let ann = corner.entry(&corner.disabled, "uid", "ann");
        let bob = corner.entry(&corner.people, "uid", "bob");
        assert!(bob.dn.ends_with(&corner.people), "{}", bob.dn);
        let staff = corner.entry(&corner.groups, "cn", "staff");
        assert!(staff.all("member").contains(&ann.dn.as_str()), "the moved DN replaced the old one: {staff:?}");

        let live = LdapProvider::open(&target, Path::new("/"), Access::Read).unwrap().read().await.unwrap();
        let by_name = |n: &str| live.accounts.iter().find(|a| a.user_name == n).unwrap();
        assert!(!by_name("ann").active && by_name("bob").active);
        assert_eq!(live.bindings[0].members, vec![by_name("ann").id.clone()]);
    });
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn removing_the_last_member_keeps_the_group_and_its_foreign_members() {
    let server = Server::from_env();
    let corner = Corner::new(&server, "lastmember");
    let target = corner.target(
        LdapDisable::Attribute { name: "pwdAccountLockedTime".into(), value: "000001010000Z".into() },
        &server.bind_password,
    );
    // A group made elsewhere with one person and no placeholder.
    corner.ldap_tool(
        "ldapadd",
        &[],
        &format!(
            "dn: uid=solo,{0}\nobjectClass: inetOrgPerson\nuid: solo\ncn: solo\nsn: solo\n\n\
             dn: cn=outside,{1}\nobjectClass: groupOfNames\ncn: outside\nmember: uid=solo,{0}\n\n\
             dn: cn=mixed,{1}\nobjectClass: groupOfNames\ncn: mixed\nmember: uid=solo,{0}\nmember: cn=other-system,{2}\n",
            corner.people, corner.groups, server.base
        ),
    )
    .expect_ok();
    runtime().block_on(async {
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        apply_all(&mut p, &[membership("solo", "outside", false), membership("solo", "mixed", false)]).await;
        let outside = corner.entry(&corner.groups, "cn", "outside");
        assert_eq!(outside.all("member"), vec![""], "the placeholder took the last member's place");
        let mixed = corner.entry(&corner.groups, "cn", "mixed");
        assert_eq!(mixed.all("member"), vec![format!("cn=other-system,{}", server.base).as_str()]);
        // Revoking again is a no-op, not an error.
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        apply_all(&mut p, &[membership("solo", "mixed", false)]).await;

        let live = LdapProvider::open(&target, Path::new("/"), Access::Read).unwrap().read().await.unwrap();
        let outside = live.bindings.iter().find(|b| b.binding == Binding::Group("outside".into())).unwrap();
        assert!(outside.members.is_empty(), "the placeholder is not a member: {:?}", outside.members);
    });
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn ldaps_and_start_tls_verify_the_server_certificate() {
    let server = Server::from_env();
    // A server without TLS cannot show that certificates are verified: that is a failure of
    // the set-up, not a pass.
    let (ldaps, ca) = server.tls.clone().expect(
        "slapd serves no ldaps:// (KEYWARD_LDAP_LDAPS_URL and KEYWARD_LDAP_CA_FILE are not set): \
         openssl could not make its certificates; this test needs them",
    );
    let corner = Corner::new(&server, "tls");
    corner
        .ldap_tool(
            "ldapadd",
            &[],
            &format!("dn: uid=tls-user,{}\nobjectClass: inetOrgPerson\nuid: tls-user\ncn: t\nsn: t\n", corner.people),
        )
        .expect_ok();
    let disable = || LdapDisable::MoveTo(corner.disabled.clone());
    let pw = &server.bind_password;
    runtime().block_on(async {
        for (url, start_tls) in [(ldaps.as_str(), false), (server.url.as_str(), true)] {
            let target = corner.target_at(url, start_tls, Some(&ca), disable(), pw);
            let mut p = LdapProvider::open(&target, Path::new("/"), Access::Read).unwrap();
            let live = p.read().await.unwrap_or_else(|e| panic!("{url} (startTls {start_tls}): {e}"));
            assert_eq!(live.accounts.len(), 1, "{url}");
            assert_eq!(live.accounts[0].user_name, "tls-user");
        }
        // Without the CA, the self-made certificate is not trusted: no bind, no password sent.
        for (url, start_tls) in [(ldaps.as_str(), false), (server.url.as_str(), true)] {
            let target = corner.target_at(url, start_tls, None, disable(), pw);
            let mut p = LdapProvider::open(&target, Path::new("/"), Access::Read).unwrap();
            let e = p.read().await.expect_err("an untrusted certificate is refused").to_string();
            assert!(e.contains("cannot connect") && e.to_lowercase().contains("certificate"), "{url}: {e}");
        }
    });
}

/// A disable attribute the directory's schema does not define (as `pwdAccountLockedTime` is
/// undefined on a slapd without the ppolicy module) refuses the plan when the target is read,
/// naming the attribute and the alternatives, and an apply writes nothing: before, the users
/// and groups were written and the apply failed halfway at the first disable with "LDAP
/// result 17 undefinedAttributeType".
#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn a_disable_attribute_the_schema_lacks_refuses_the_plan_before_anything_is_written() {
    let server = Server::from_env();
    let corner = Corner::new(&server, "schema");
    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"), dir.path());
    let path = dir.path().join("keyward.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    let extra = "    disable: {attribute: keywardLockedSince, value: \"000001010000Z\"}\n";
    std::fs::write(&path, retarget(&config, &corner.target_yaml(extra))).unwrap();

    let o = corner.keyward(dir.path(), &["plan", "."]);
    expect_exit(&o, 1);
    let (out, err) = text(&o);
    let all = format!("{out}{err}");
    assert!(all.contains("does not define `keywardLockedSince` (used for the `disable` method)"), "{all}");
    assert!(all.contains("moveTo"), "{all}");

    let o = corner.keyward(dir.path(), &["apply", "--auto-approve", "."]);
    expect_exit(&o, 1);
    assert!(corner.search(&corner.people, "(objectClass=inetOrgPerson)", &["uid"]).is_empty(), "no user written");
    assert!(corner.search(&corner.groups, "(objectClass=groupOfNames)", &["cn"]).is_empty(), "no group written");

    // The same configuration with the ppolicy attribute, which this slapd loads, plans.
    std::fs::write(&path, retarget(&config, &corner.target_yaml(""))).unwrap();
    let o = corner.keyward(dir.path(), &["plan", "--detailed-exitcode", "."]);
    expect_exit(&o, 2);
}
