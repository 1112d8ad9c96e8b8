//! The OpenLDAP case, on the slapd of `cargo xtask slapd` (its variables loaded): the quick
//! start applied to a corner of the directory of its own, beside `KEYWARD_BENCH_DETECTION_LDAP_USERS`
//! (10,000 by default) users outside the configuration's scope (uids without the quick start's
//! `@northwind.example`) and a fiftieth as many groups of 50 of them, seeded as
//! benches/ldap_feed.rs seeds them. Each change sets the `title` of a different person of the
//! quick start with `ldapmodify` as the root DN. Where `KEYWARD_LDAP_LOG_BASE` names the
//! server's accesslog (the slapd of `cargo xtask slapd` sets it), the target reads it
//! (`accessLog`), as a deployment with delta-syncrepl would.

use std::process::{Command, Stdio};

use super::watch::{self, Case, Change, Summary};
use crate::ldap_harness::{Corner, PASSWORD_VAR, Server, expect_exit, retarget};
use crate::support;

pub fn run() -> Option<Summary> {
    if std::env::var("KEYWARD_LDAP_URL").map_or(true, |v| v.is_empty()) {
        println!(
            "\n== openldap: skipped, no slapd (start `cargo xtask slapd > slapd.env &` and `eval \"$(cat slapd.env)\"`)"
        );
        return None;
    }
    let n: usize =
        std::env::var("KEYWARD_BENCH_DETECTION_LDAP_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let groups_n = (n / 50).max(4);
    let server = Server::from_env();
    let corner = Corner::new(&server, "latency");
    let user = |i: usize| format!("uid=user{i:05},{}", corner.people);
    let mut ldif = String::new();
    for i in 0..n {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: user{i:05}\ncn: User {i}\nsn: User\ntitle: Staff\n\n",
            user(i)
        ));
    }
    for g in 0..groups_n {
        ldif.push_str(&format!("dn: cn=group-{g:04},{}\nobjectClass: groupOfNames\ncn: group-{g:04}\n", corner.groups));
        let from = (g * 50) % n;
        for u in from..(from + 50).min(n) {
            ldif.push_str(&format!("member: {}\n", user(u)));
        }
        ldif.push('\n');
    }
    corner.ldap_tool("ldapadd", &[], &ldif).expect_ok();

    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&support::repo_root().join("examples/quickstart"), dir.path());
    let path = dir.path().join("keyward.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    // The accesslog where the server has one (the slapd of `cargo xtask slapd` does): deletions
    // and renames from the log, so a check with a change costs 4 operations, not a listing.
    let log = std::env::var("KEYWARD_LDAP_LOG_BASE").ok().filter(|v| !v.is_empty());
    let extra = log.as_ref().map(|l| format!("    accessLog: \"{l}\"\n")).unwrap_or_default();
    std::fs::write(&path, retarget(&config, &corner.target_yaml(&extra))).unwrap();
    expect_exit(&corner.keyward(dir.path(), &["apply", "--auto-approve", "."]), 0);

    let corner = &corner;
    let changes = super::PEOPLE
        .iter()
        .enumerate()
        .map(|(k, person)| {
            let dn = corner.entry(&corner.people, "uid", &format!("{person}@northwind.example")).dn;
            Change::new(format!("{person}: title"), &[&format!("drift: update directory.user.{person}")], move || {
                corner.ldapmodify(&format!(
                    "dn: {dn}\nchangetype: modify\nreplace: title\ntitle: Changed outside git {k}\n"
                ));
            })
        })
        .collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    command.env(PASSWORD_VAR, &server.bind_password).env("NO_COLOR", "1").env_remove("RUST_LOG").stdin(Stdio::null());
    Some(watch::measure(Case {
        title: format!(
            "{n} users and {groups_n} groups of 50 beside the quick start (OpenLDAP, slapd with syncprov{})",
            if log.is_some() { " and the accesslog" } else { "" }
        ),
        command,
        dir: dir.path().to_path_buf(),
        target: "directory".into(),
        extra: vec![],
        changes,
    }))
}
