//! The `ldap` provider with `flavor: ad` against a real Active Directory domain controller:
//! Samba's (Debian's packages), provisioned and started for the run by `cargo xtask test` (or
//! by hand with `cargo xtask samba`, see README › Testing), which exports its URLs, domain and
//! credentials. Each test works in its own OU, so tests run in parallel in one domain.
//!
//! Through the binary: the quick start converges over ldaps:// (users created, a disabled one
//! with the ACCOUNTDISABLE bit of userAccountControl, attributes, managers, memberships);
//! updates, disabling, enabling and deleting reach the directory; memberships are added and
//! removed; a `samba-tool user disable` and a member added with ldapmodify are reported and
//! reverted; hostile names round-trip in CN, sAMAccountName and userPrincipalName; an existing
//! OU with nested groups is imported and re-plans clean. Through the library: a group of 3,000
//! members is read whole, from Samba (which returns every value at once) and through a proxy
//! that answers in `member;range=` pages as Windows does; enabled accounts are created without
//! a password, which Samba accepts and a Windows domain refuses (result 53).
//!
//! Where Samba differs from Windows Server, see docs/servers.md.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stderr)]

#[path = "ad/harness.rs"]
mod harness;
mod support;

use std::path::Path;

use harness::{Dc, Ou, Windows, WindowsProxy, expect_exit, text, uac, yaml_escape};
use keyward::model::{Binding, Name, UserAttrs};
use keyward::plan::{Action, Address, Change, ObjectKind, Operation, Reason, ReasonKind};
use keyward::provider::ldap::LdapProvider;
use keyward::provider::{Access, Provider};

const DISABLED: u32 = 2;
const NORMAL_ACCOUNT: u32 = 512;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Replaces the `targets:` block of a keyward.yaml.
fn retarget(dir: &Path, targets: &str) {
    let path = dir.join("keyward.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in config.lines() {
        if line.starts_with("targets:") {
            skipping = true;
            out.push_str(targets);
            continue;
        }
        if skipping && (line.is_empty() || line.starts_with(' ') || line.starts_with('#')) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
}

/// The quick start's configuration, retargeted to this OU.
fn quickstart(ou: &Ou) -> tempfile::TempDir {
    ou.hold_quickstart_names();
    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"), dir.path());
    retarget(dir.path(), &ou.target_yaml(""));
    dir
}

/// Replaces `from` with `to` in a file of the folder, asserting it was there exactly once.
#[track_caller]
fn edit(dir: &Path, rel: &str, from: &str, to: &str) {
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from:?} should occur once in {rel}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[track_caller]
fn apply(ou: &Ou, dir: &Path) -> String {
    let o = ou.keyward(dir, &["apply", "--auto-approve", "."]);
    expect_exit(&o, 0);
    text(&o).0
}

#[track_caller]
fn converged(ou: &Ou, dir: &Path) {
    let o = ou.keyward(dir, &["plan", "--detailed-exitcode", "."]);
    expect_exit(&o, 0);
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn quickstart_converges_on_active_directory() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "quickstart");
    let dir = quickstart(&ou);
    let o = ou.keyward(dir.path(), &["plan", "--detailed-exitcode", "."]);
    expect_exit(&o, 2);
    assert!(text(&o).0.contains("Plan: 21 to create, 0 to update, 10 to assign, 0 to revoke"), "{}", text(&o).0);
    let out = apply(&ou, dir.path());
    assert!(out.contains("Apply complete! 31 changes applied."), "{out}");

    let people = ou.search(&ou.people, "(objectClass=user)", &["sAMAccountName"]);
    assert_eq!(people.len(), 15);
    let nancy = ou.entry(&ou.people, "sAMAccountName", "nancy.davolio@northwind.example");
    let laura = ou.entry(&ou.people, "sAMAccountName", "laura.callahan@northwind.example");
    assert_eq!(nancy.dn, format!("CN=nancy.davolio@northwind.example,{}", ou.people));
    assert_eq!(nancy.get("displayName"), Some("Nancy Davolio"));
    assert_eq!(nancy.get("givenName"), Some("Nancy"));
    assert_eq!(nancy.get("sn"), Some("Davolio"));
    assert_eq!(nancy.get("mail"), Some("nancy.davolio@northwind.example"));
    assert_eq!(nancy.get("department"), Some("Finance"));
    assert_eq!(nancy.get("title"), Some("Financial Controller"));
    assert_eq!(nancy.get("employeeID"), Some("E1005"));
    assert_eq!(nancy.get("manager"), Some(laura.dn.as_str()));
    assert_eq!(uac(&nancy), NORMAL_ACCOUNT);
    // The user who left is created disabled: the ACCOUNTDISABLE bit (2) of userAccountControl.
    let tomas = ou.entry(&ou.people, "sAMAccountName", "tomas.novak@northwind.example");
    assert_eq!(uac(&tomas), NORMAL_ACCOUNT | DISABLED);

    let groups = ou.search(&ou.groups, "(objectClass=group)", &["cn"]);
    assert_eq!(groups.len(), 6, "{groups:#?}");
    let gl = ou.entry(&ou.groups, "cn", "gl-accountants");
    assert_eq!(gl.get("sAMAccountName"), Some("gl-accountants"));
    let yusuf = ou.entry(&ou.people, "sAMAccountName", "yusuf.demir@northwind.example");
    let mut members = gl.all("member");
    members.sort();
    let mut expected = vec![nancy.dn.as_str(), yusuf.dn.as_str()];
    expected.sort();
    assert_eq!(members, expected);
    converged(&ou, dir.path());
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn updates_disabling_enabling_and_deleting_reach_the_directory() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "lifecycle");
    let dir = quickstart(&ou);
    apply(&ou, dir.path());
    let d = dir.path();

    // Nancy is promoted, Yusuf leaves (disabled), Tomas comes back (enabled).
    edit(d, "users/finance.yaml", "jobTitle: Financial Controller", "jobTitle: Finance Director");
    edit(d, "users/finance.yaml", "employeeId: \"E1014\"\n", "employeeId: \"E1014\"\nstatus: disabled\n");
    edit(d, "users/sales.yaml", "status: disabled\n", "");
    let out = apply(&ou, d);
    // Enabling counts as an update.
    assert!(out.contains("2 to update") && out.contains("1 to disable"), "{out}");
    let nancy = ou.entry(&ou.people, "sAMAccountName", "nancy.davolio@northwind.example");
    assert_eq!(nancy.get("title"), Some("Finance Director"));
    let yusuf = ou.entry(&ou.people, "sAMAccountName", "yusuf.demir@northwind.example");
    assert_eq!(uac(&yusuf), NORMAL_ACCOUNT | DISABLED);
    let tomas = ou.entry(&ou.people, "sAMAccountName", "tomas.novak@northwind.example");
    assert_eq!(uac(&tomas), NORMAL_ACCOUNT);
    converged(&ou, d);

    // Yusuf is back; Tomas leaves for good and is deleted.
    edit(d, "users/finance.yaml", "employeeId: \"E1014\"\nstatus: disabled\n", "employeeId: \"E1014\"\n");
    let sales = std::fs::read_to_string(d.join("users/sales.yaml")).unwrap();
    let start = sales.find("---\n# Left the company").expect("Tomas's document");
    std::fs::write(d.join("users/sales.yaml"), &sales[..start]).unwrap();
    edit(d, "keyward.yaml", "removedUsers: disable", "removedUsers: delete");
    let out = apply(&ou, d);
    assert!(out.contains("1 to update") && out.contains("1 to delete"), "{out}");
    assert!(ou.find(&ou.people, "sAMAccountName", "tomas.novak@northwind.example").is_empty());
    let yusuf = ou.entry(&ou.people, "sAMAccountName", "yusuf.demir@northwind.example");
    assert_eq!(uac(&yusuf), NORMAL_ACCOUNT);
    converged(&ou, d);
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn memberships_are_added_and_removed() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "members");
    let dir = quickstart(&ou);
    apply(&ou, dir.path());
    // Janet moves from accounts payable to the general ledger.
    edit(
        dir.path(),
        "users/finance.yaml",
        "employeeId: \"E1009\"\nroles: [ap-clerk]",
        "employeeId: \"E1009\"\nroles: [gl-accountant]",
    );
    let out = apply(&ou, dir.path());
    assert!(out.contains("1 to assign, 1 to revoke"), "{out}");
    let janet = ou.entry(&ou.people, "sAMAccountName", "janet.leverling@northwind.example");
    let gl = ou.entry(&ou.groups, "cn", "gl-accountants");
    let ap = ou.entry(&ou.groups, "cn", "ap-clerks");
    assert!(gl.all("member").contains(&janet.dn.as_str()), "{gl:?}");
    assert!(!ap.all("member").contains(&janet.dn.as_str()), "{ap:?}");
    assert_eq!(ap.all("member").len(), 1, "Anne stays: {ap:?}");
    converged(&ou, dir.path());
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn a_samba_tool_disable_and_a_member_added_with_ldapmodify_are_reported_and_reverted() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "drift");
    let dir = quickstart(&ou);
    apply(&ou, dir.path());

    // An administrator disables Nancy with samba-tool and adds Hannah and a foreign group to
    // it-admins with ldapmodify.
    let nancy = ou.entry(&ou.people, "sAMAccountName", "nancy.davolio@northwind.example");
    ou.samba_tool(&["user", "disable", "--filter", &format!("(distinguishedName={})", nancy.dn)]);
    assert_eq!(uac(&ou.entry(&ou.people, "sAMAccountName", "nancy.davolio@northwind.example")) & DISABLED, DISABLED);
    let it = ou.entry(&ou.groups, "cn", "it-admins");
    let hannah = ou.entry(&ou.people, "sAMAccountName", "hannah.schulz@northwind.example");
    ou.ldap_tool(
        "ldapadd",
        &[],
        &format!(
            "dn: CN=backup-operators-x,{}\nobjectClass: group\nsAMAccountName: bkp-{}\n",
            ou.ou,
            harness::random_hex(3)
        ),
    )
    .expect_ok();
    let foreign = format!("CN=backup-operators-x,{}", ou.ou);
    ou.ldapmodify(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: {}\nmember: {foreign}\n",
        it.dn, hannah.dn
    ));

    let o = ou.keyward(dir.path(), &["drift", "."]);
    expect_exit(&o, 2);
    let (out, _) = text(&o);
    assert!(out.contains("directory.user.nancy.davolio"), "{out}");
    assert!(out.contains("directory.assignment.hannah.schulz/it-admin"), "{out}");
    assert!(!out.contains("backup-operators"), "a foreign member is not drift: {out}");

    apply(&ou, dir.path());
    assert_eq!(uac(&ou.entry(&ou.people, "sAMAccountName", "nancy.davolio@northwind.example")), NORMAL_ACCOUNT);
    let it = ou.entry(&ou.groups, "cn", "it-admins");
    assert!(!it.all("member").contains(&hannah.dn.as_str()), "{it:?}");
    assert!(it.all("member").contains(&foreign.as_str()), "the foreign member stays: {it:?}");
    let o = ou.keyward(dir.path(), &["drift", "."]);
    expect_exit(&o, 0);
}

/// Writes a configuration of one role per group name and one user per userName (user `i`
/// holds role `i % groups`), with `userKey` as given.
fn hostile_config(ou: &Ou, dir: &Path, user_key: &str, names: &[&str], groups: &[&str]) {
    let extra = format!("    userKey: {user_key}\n");
    std::fs::write(dir.join("keyward.yaml"), format!("version: 1\n{}", ou.target_yaml(&extra))).unwrap();
    let mut roles = String::new();
    for (i, g) in groups.iter().enumerate() {
        roles.push_str(&format!(
            "---\nkind: Role\nname: role-{i}\nbindings:\n  directory: {{group: \"{}\"}}\n",
            yaml_escape(g)
        ));
    }
    std::fs::write(dir.join("roles.yaml"), roles).unwrap();
    let mut users = String::new();
    for (i, n) in names.iter().enumerate() {
        let manager = if i > 0 { "manager: user-0\n" } else { "" };
        users.push_str(&format!(
            "---\nkind: User\nname: user-{i}\nuserName: \"{}\"\ndisplayName: \"Name {}\"\n{manager}roles: [role-{}]\n",
            yaml_escape(n),
            yaml_escape(n),
            i % groups.len()
        ));
    }
    std::fs::write(dir.join("users.yaml"), users).unwrap();
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn hostile_names_round_trip_in_cn_and_sam_account_name() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "hostile-sam");
    let dir = tempfile::tempdir().unwrap();
    // What AD allows in a sAMAccountName (its forbidden characters are " / \ [ ] : ; | = , + * ? < >):
    // `#` first, parentheses, non-ASCII, quotes and ampersands; a trailing space in a group
    // name (keyward refuses userNames with surrounding spaces). The CN holds the same name,
    // escaped in the DN.
    let names = ["#first", "(paren)", "Ünïcødé", "o'neil&co"];
    let groups = ["#g", "(g) ü", "g trail "];
    hostile_config(&ou, dir.path(), "sAMAccountName", &names, &groups);
    apply(&ou, dir.path());
    for n in names {
        let e = ou.entry(&ou.people, "sAMAccountName", n);
        assert_eq!(e.get("cn"), Some(n), "{e:?}");
        assert_eq!(e.get("displayName"), Some(format!("Name {n}").as_str()));
    }
    let first = ou.entry(&ou.people, "sAMAccountName", names[0]);
    assert_eq!(ou.entry(&ou.people, "sAMAccountName", names[2]).get("manager"), Some(first.dn.as_str()));
    for g in groups {
        assert_eq!(ou.entry(&ou.groups, "sAMAccountName", g).get("cn"), Some(g));
    }
    converged(&ou, dir.path());
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn hostile_names_round_trip_in_cn_and_user_principal_name() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "hostile-upn");
    let dir = tempfile::tempdir().unwrap();
    // Keyed by userPrincipalName, the name is the CN and the UPN; AD makes up the
    // sAMAccountName. Commas, `+`, backslashes, `*()` are fine in both.
    let names = [
        "a,b@hostile.example",
        "x+y@hostile.example",
        "#h@hostile.example",
        r"back\slash@hostile.example",
        "*)(cn=*@hostile.example",
        "Ünï@hostile.example",
    ];
    // Groups keep CN = sAMAccountName = name, so only what a sAMAccountName allows (and
    // names no other test uses: a sAMAccountName is unique in the whole domain).
    let groups = ["#u", "(u) ü"];
    hostile_config(&ou, dir.path(), "userPrincipalName", &names, &groups);
    apply(&ou, dir.path());
    for n in names {
        let e = ou.entry(&ou.people, "userPrincipalName", n);
        assert_eq!(e.get("cn"), Some(n), "{e:?}");
        assert_eq!(e.get("userPrincipalName"), Some(n));
    }
    // The injection attempt matched exactly one entry, itself.
    let first = ou.entry(&ou.people, "userPrincipalName", names[0]);
    assert_eq!(ou.entry(&ou.people, "userPrincipalName", names[4]).get("manager"), Some(first.dn.as_str()));
    converged(&ou, dir.path());
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn user_principal_names_keep_their_at_sign() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "upn");
    let dir = quickstart(&ou);
    retarget(dir.path(), &ou.target_yaml("    userKey: userPrincipalName\n"));
    apply(&ou, dir.path());
    let nancy = ou.entry(&ou.people, "userPrincipalName", "nancy.davolio@northwind.example");
    assert_eq!(nancy.get("userPrincipalName"), Some("nancy.davolio@northwind.example"));
    assert_eq!(nancy.dn, format!("CN=nancy.davolio@northwind.example,{}", ou.people));
    converged(&ou, dir.path());
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

/// Adds `n` users `big00000`... and a group `big` holding them all, with ldapadd.
fn seed_big_group(ou: &Ou, n: usize) {
    let mut ldif = String::with_capacity(n * 150);
    for i in 0..n {
        ldif.push_str(&format!("dn: CN=big{i:05},{}\nobjectClass: user\nsAMAccountName: big{i:05}\n\n", ou.people));
    }
    ldif.push_str(&format!(
        "dn: CN=big,{}\nobjectClass: group\nsAMAccountName: big-{}\n",
        ou.groups,
        harness::random_hex(3)
    ));
    for i in 0..n {
        ldif.push_str(&format!("member: CN=big{i:05},{}\n", ou.people));
    }
    ou.ldap_tool("ldapadd", &[], &ldif).expect_ok();
}

/// Reads the OU at `url` and checks that group `big` maps to all `n` accounts.
async fn read_big_group(ou: &Ou<'_>, url: &str, n: usize) {
    let mut p = LdapProvider::open(&ou.target_at(url, "sAMAccountName"), Path::new("/"), Access::Read).unwrap();
    let live = p.read().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(live.accounts.len(), n);
    let big = live.bindings.iter().find(|b| b.binding == Binding::Group("big".into())).expect("group big");
    let mut members = big.members.clone();
    members.sort();
    members.dedup();
    let mut ids: Vec<String> = live.accounts.iter().map(|a| a.id.clone()).collect();
    ids.sort();
    assert_eq!(members, ids, "every member maps to its account");
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn a_group_of_3200_members_is_read_whole_at_once_and_in_ranges() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "ranged");
    const N: usize = 3200;
    seed_big_group(&ou, N);
    runtime().block_on(async {
        // Samba returns all 3,000 values of `member` in one attribute.
        read_big_group(&ou, &dc.url, N).await;
        // Windows returns at most 1,500 (MaxValRange) and names the range.
        let proxy = WindowsProxy::start(&dc.url, Windows { max_val_range: Some(1500), ..Default::default() });
        read_big_group(&ou, &proxy.url, N).await;
        let sent = proxy.ranges_sent.lock().unwrap().clone();
        assert_eq!(sent, ["member;range=0-1499", "member;range=1500-2999", "member;range=3000-*"]);
    });
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn enabled_accounts_are_created_without_a_password() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "password");
    runtime().block_on(async {
        // keyward sets no password. Samba creates the enabled account anyway; it has none, so
        // nobody can sign in with it until one is set elsewhere.
        let mut p =
            LdapProvider::open(&ou.target_at(&dc.url, "sAMAccountName"), Path::new("/"), Access::Write).unwrap();
        p.read().await.unwrap();
        let c = create_user("nopass", true);
        let r = p.apply(&[&c]).await;
        assert!(r[0].is_ok(), "{r:?}");
        let e = ou.entry(&ou.people, "sAMAccountName", "nopass");
        assert_eq!(uac(&e), NORMAL_ACCOUNT);
        assert_eq!(e.get("pwdLastSet"), Some("0"));
        let bind = std::process::Command::new("ldapsearch")
            .args(["-x", "-H", &dc.url, "-D", &e.dn, "-w", "", "-b", "", "-s", "base"])
            .output()
            .unwrap();
        assert_ne!(bind.status.code(), Some(0), "an account without a password cannot bind");

        // A Windows domain whose policy requires a password refuses the enabled account
        // (53 unwillingToPerform, 0000052D); keyward reports the server's words, and still
        // creates accounts that are disabled.
        let proxy = WindowsProxy::start(&dc.url, Windows { require_password: true, ..Default::default() });
        let mut p =
            LdapProvider::open(&ou.target_at(&proxy.url, "sAMAccountName"), Path::new("/"), Access::Write).unwrap();
        p.read().await.unwrap();
        let (enabled, disabled) = (create_user("refused", true), create_user("parked", false));
        let r = p.apply(&[&enabled, &disabled]).await;
        let e = r[0].as_ref().expect_err("Windows refuses an enabled account without a password").to_string();
        assert!(e.contains("53") && e.contains("0000052D"), "{e}");
        assert!(r[1].is_ok(), "{r:?}");
        assert!(ou.find(&ou.people, "sAMAccountName", "refused").is_empty());
        assert_eq!(uac(&ou.entry(&ou.people, "sAMAccountName", "parked")), NORMAL_ACCOUNT | DISABLED);
    });
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn an_existing_ou_with_nested_groups_is_imported_and_replans_clean() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "import");
    let tag = harness::random_hex(3);
    let p = &ou.people;
    let g = &ou.groups;
    let mut ldif = String::new();
    for (n, given) in [("ann", "Ann"), ("bob", "Bob"), ("cy", "Cy")] {
        ldif.push_str(&format!(
            "dn: CN={n}@corp.example,{p}\nobjectClass: user\nsAMAccountName: {n}@corp.example\ngivenName: {given}\n\
             displayName: {given} Example\nuserAccountControl: 512\n\n"
        ));
    }
    // `staff` holds ann and the nested group `admins`, which holds bob.
    ldif.push_str(&format!(
        "dn: CN=admins,{g}\nobjectClass: group\nsAMAccountName: admins-{tag}\nmember: CN=bob@corp.example,{p}\n\n\
         dn: CN=staff,{g}\nobjectClass: group\nsAMAccountName: staff-{tag}\nmember: CN=ann@corp.example,{p}\nmember: CN=admins,{g}\n"
    ));
    ou.ldap_tool("ldapadd", &[], &ldif).expect_ok();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keyward.yaml"), format!("version: 1\n{}", ou.target_yaml(""))).unwrap();
    let o = ou.keyward(dir.path(), &["import", "--target", "directory", "."]);
    expect_exit(&o, 0);
    let users = std::fs::read_to_string(dir.path().join("users/imported-directory.yaml")).unwrap();
    let roles = std::fs::read_to_string(dir.path().join("roles/imported-directory.yaml")).unwrap();
    for n in ["ann@corp.example", "bob@corp.example", "cy@corp.example"] {
        assert!(users.contains(n), "{users}");
    }
    assert!(roles.contains("group: staff") && roles.contains("group: admins"), "{roles}");
    converged(&ou, dir.path());
    // An apply changes nothing, and the nested group stays a member of staff.
    let out = apply(&ou, dir.path());
    assert!(out.contains("No changes"), "{out}");
    let staff = ou.entry(&ou.groups, "cn", "staff");
    assert!(staff.all("member").contains(&format!("CN=admins,{g}").as_str()), "{staff:?}");
}

// ---------------------------------------------------------------------------------------------
// Defects of issue 25, against the real DC.

fn membership(user: &str, group: &str, assign: bool) -> Change {
    let principal = keyward::plan::Principal::User(user.into());
    let binding = Binding::Group(group.into());
    if assign {
        change(ObjectKind::Assignment, user, Action::Assign, Operation::Assign { principal, binding })
    } else {
        change(ObjectKind::Assignment, user, Action::Revoke, Operation::Revoke { principal, binding })
    }
}

fn create_group(name: &str) -> Change {
    change(ObjectKind::Role, name, Action::Create, Operation::CreateBinding { binding: Binding::Group(name.into()) })
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn ad_membership_writes_meeting_68_or_53_are_done() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "idempotent");
    let group = format!("crew-{}", harness::random_hex(3));
    let target = ou.target_at(&dc.url, "sAMAccountName");
    runtime().block_on(async {
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        p.read().await.unwrap();
        let r = p.apply(&[&create_user("mo", true), &create_group(&group)]).await;
        assert!(r.iter().all(Result::is_ok), "{r:?}");
        // keyward reads; then an administrator adds mo to the group.
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        p.read().await.unwrap();
        let mo = ou.entry(&ou.people, "sAMAccountName", "mo");
        let g = ou.entry(&ou.groups, "cn", &group);
        ou.ldapmodify(&format!("dn: {}\nchangetype: modify\nadd: member\nmember: {}\n", g.dn, mo.dn));
        let r = p.apply(&[&membership("mo", &group, true)]).await;
        assert!(r[0].is_ok(), "adding a member who is already there is done, not failed: {r:?}");
        // keyward reads; then the administrator removes mo again.
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        p.read().await.unwrap();
        ou.ldapmodify(&format!("dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n", g.dn, mo.dn));
        let r = p.apply(&[&membership("mo", &group, false)]).await;
        assert!(r[0].is_ok(), "removing a member who is already gone is done, not failed: {r:?}");
    });
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn ad_group_create_meeting_a_taken_sam_account_name_is_not_reported_created() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "samtaken");
    let name = format!("finance-{}", harness::random_hex(3));
    // Another group, elsewhere in the domain, already has this sAMAccountName.
    ou.ldap_tool("ldapadd", &[], &format!("dn: CN=other,{}\nobjectClass: group\nsAMAccountName: {name}\n", ou.ou))
        .expect_ok();
    runtime().block_on(async {
        let mut p =
            LdapProvider::open(&ou.target_at(&dc.url, "sAMAccountName"), Path::new("/"), Access::Write).unwrap();
        p.read().await.unwrap();
        let r = p.apply(&[&create_user("mo", true), &create_group(&name), &membership("mo", &name, true)]).await;
        let exists = !ou.find(&ou.groups, "cn", &name).is_empty();
        assert!(
            exists || r[1].is_err(),
            "the group was reported created ({:?}) but no group {name} exists below groupsBase; then the assign: {:?}",
            r[1],
            r[2]
        );
    });
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn ad_delete_of_a_user_with_child_objects_uses_tree_delete() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "treedelete");
    let target = ou.target_at(&dc.url, "sAMAccountName");
    runtime().block_on(async {
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        p.read().await.unwrap();
        assert!(p.apply(&[&create_user("leaver", true)]).await[0].is_ok());
        // A child object below the account, as devices and mail containers are.
        let user = ou.entry(&ou.people, "sAMAccountName", "leaver");
        ou.ldap_tool("ldapadd", &[], &format!("dn: CN=devices,{}\nobjectClass: classStore\n", user.dn)).expect_ok();
        let mut p = LdapProvider::open(&target, Path::new("/"), Access::Write).unwrap();
        p.read().await.unwrap();
        let delete =
            change(ObjectKind::User, "leaver", Action::Delete, Operation::DeleteUser { user_name: "leaver".into() });
        let r = p.apply(&[&delete]).await;
        assert!(r[0].is_ok(), "{r:?}");
        assert!(ou.find(&ou.people, "sAMAccountName", "leaver").is_empty());
    });
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn ad_create_meeting_a_sam_account_name_taken_outside_users_base_keeps_the_server_message() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "takenuser");
    let name = format!("taken-{}", harness::random_hex(3));
    ou.ldap_tool("ldapadd", &[], &format!("dn: CN=elsewhere,{}\nobjectClass: user\nsAMAccountName: {name}\n", ou.ou))
        .expect_ok();
    runtime().block_on(async {
        let mut p =
            LdapProvider::open(&ou.target_at(&dc.url, "sAMAccountName"), Path::new("/"), Access::Write).unwrap();
        p.read().await.unwrap();
        let r = p.apply(&[&create_user(&name, true)]).await;
        let e = r[0].as_ref().expect_err("the name is taken").to_string();
        assert!(e.contains("already in use"), "the server's own message is kept: {e}");
    });
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn ad_bind_names_user_at_domain_and_domain_backslash_user_are_accepted() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "bindnames");
    for bind in [format!("keyward@{}", dc.realm), format!("{}\\keyward", dc.domain)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("keyward.yaml"),
            format!("version: 1\n{}", ou.target_yaml_at(&dc.ldaps_url, &bind, "")),
        )
        .unwrap();
        let o = ou.keyward(dir.path(), &["plan", "--detailed-exitcode", "."]);
        assert_eq!(o.status.code(), Some(0), "bindDn {bind}:\n{}\n{}", text(&o).0, text(&o).1);
    }
}

#[test]
fn ad_naming_rules_are_checked_at_validation() {
    // No server needed: AD's rules for sAMAccountName (no " / \ [ ] : ; | = , + * ? < >, at most
    // 20 characters) and CN (at most 64 characters) are known before any request.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keyward.yaml"),
        "version: 1\ntargets:\n  directory:\n    provider: ldap\n    flavor: ad\n    url: ldaps://dc.example.com\n    \
         bindDn: \"CN=svc,DC=example,DC=com\"\n    password: ${env:X}\n    usersBase: \"OU=people,DC=example,DC=com\"\n    \
         groupsBase: \"OU=groups,DC=example,DC=com\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("users.yaml"),
        "kind: User\nname: comma\nuserName: \"smith,john\"\n---\nkind: User\nname: long\nuserName: averyveryverylongusername\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["validate", "."])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "validation must refuse them:\n{out}\n{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("users.yaml:3") && all.contains("users.yaml:7"), "file and line of each: {all}");
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn an_empty_string_converges_on_active_directory() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "emptystring");
    let dir = quickstart(&ou);
    edit(dir.path(), "users/finance.yaml", "jobTitle: Financial Controller", "jobTitle: \"\"");
    apply(&ou, dir.path());
    assert_eq!(ou.entry(&ou.people, "sAMAccountName", "nancy.davolio@northwind.example").get("title"), None);
    let o = ou.keyward(dir.path(), &["plan", "--detailed-exitcode", "."]);
    assert_eq!(o.status.code(), Some(0), "`jobTitle: \"\"` (no title) converges:\n{}", text(&o).0);
}
