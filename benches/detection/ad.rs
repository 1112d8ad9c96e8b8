//! The Active Directory case, on the Samba AD DC of `cargo xtask samba` (its variables
//! loaded): the quick start applied to an OU of its own, beside
//! `KEYWARD_BENCH_DETECTION_AD_ENTRIES` (10,000 by default) entries seeded as
//! benches/ad_feed.rs seeds them (a hundredth of them groups of 50 members, the rest users
//! outside the configuration's scope). Each change sets the `title` of a different person of
//! the quick start with `ldapmodify` as the domain's Administrator.

use std::process::{Command, Stdio};
use std::time::Instant;

use super::watch::{self, Case, Change, Summary};
use crate::ad_harness::{Dc, Ou, PASSWORD_VAR, expect_exit, random_hex};
use crate::ldap_harness::retarget;
use crate::support;

pub fn run() -> Option<Summary> {
    if std::env::var("KEYWARD_AD_URL").map_or(true, |v| v.is_empty()) {
        println!(
            "\n== samba: skipped, no Samba AD DC (start `cargo xtask samba > samba.env &` and `eval \"$(cat samba.env)\"`)"
        );
        return None;
    }
    let n: usize =
        std::env::var("KEYWARD_BENCH_DETECTION_AD_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let groups_n = (n / 100).max(4);
    let users_n = n - groups_n;
    let dc = Dc::from_env()?;
    let ou = Ou::new(&dc, "latency");
    ou.hold_quickstart_names();
    let tag = random_hex(3);
    let user = |i: usize| format!("b{tag}-u{i:05}");
    let user_dn = |i: usize| format!("CN={},{}", user(i), ou.people);
    let seeding = Instant::now();
    let mut ldif = String::new();
    for i in 0..users_n {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: user\nsAMAccountName: {}\ndisplayName: User {i}\ntitle: Staff\nuserAccountControl: 512\n\n",
            user_dn(i),
            user(i)
        ));
    }
    for g in 0..groups_n {
        ldif.push_str(&format!(
            "dn: CN=b{tag}-g{g:04},{}\nobjectClass: group\nsAMAccountName: b{tag}-g{g:04}\n",
            ou.groups
        ));
        for k in 0..50 {
            ldif.push_str(&format!("member: {}\n", user_dn((g * 50 + k) % users_n)));
        }
        ldif.push('\n');
    }
    ou.ldap_tool("ldapadd", &["-c"], &ldif).expect_ok();
    let seeded = seeding.elapsed();

    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&support::repo_root().join("examples/quickstart"), dir.path());
    let path = dir.path().join("keyward.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, retarget(&config, &ou.target_yaml(""))).unwrap();
    expect_exit(&ou.keyward(dir.path(), &["apply", "--auto-approve", "."]), 0);

    let ou = &ou;
    let changes = super::PEOPLE
        .iter()
        .enumerate()
        .map(|(k, person)| {
            let dn = ou.entry(&ou.people, "sAMAccountName", &format!("{person}@northwind.example")).dn;
            Change::new(format!("{person}: title"), &[&format!("drift: update directory.user.{person}")], move || {
                ou.ldapmodify(&format!(
                    "dn: {dn}\nchangetype: modify\nreplace: title\ntitle: Changed outside git {k}\n"
                ));
            })
        })
        .collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    command.env(PASSWORD_VAR, &dc.bind_password).env("NO_COLOR", "1").env_remove("RUST_LOG").stdin(Stdio::null());
    Some(watch::measure(Case {
        title: format!(
            "{users_n} users and {groups_n} groups of 50 beside the quick start (Samba AD, `uSNChanged` feed; seeded in {:.0} s)",
            seeded.as_secs_f64()
        ),
        command,
        dir: dir.path().to_path_buf(),
        target: "directory".into(),
        extra: vec![],
        changes,
    }))
}
