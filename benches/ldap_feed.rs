//! The cost of one `watch` check of an OpenLDAP directory of 10,000 users, full read against
//! the change feed (listing the ids for removals, or reading the accesslog database the test
//! slapd has, `KEYWARD_LDAP_LOG_BASE`), on the slapd of `cargo xtask slapd` (with the syncprov
//! and accesslog overlays): requests
//! and keyward's CPU time per idle check and per check with 10 changes (5 user updates, 1 user
//! created, 3 memberships added, 1 removed), made as the root DN with `ldapmodify`.
//!
//! A check here is what `watch` does for the target: open the provider (a new connection and
//! bind), then a full read (`read`), or the feed's round (`read_changes`) folded into the held
//! state. Requests are LDAP operations (the bind, each page of a search). CPU time is the time
//! the benchmark's thread spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`): the client runs on it
//! alone, slapd is another process.
//!
//! Run `cargo xtask slapd > slapd.env &`, then `eval "$(cat slapd.env)"` and
//! `cargo bench --bench ldap_feed`. The directory's size is `KEYWARD_BENCH_LDAP_USERS` (10,000
//! by default) users and a fiftieth as many groups of 50 members. Prints Markdown.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyward::model::config::{Connection, LdapConnection, LdapDisable, LdapFlavor, Target};
use keyward::model::feed::{self, Cursor};
use keyward::model::{LiveTarget, Name, SecretRef, UsersScope};
use keyward::provider::ldap::LdapProvider;
use keyward::provider::{Access, Provider};

/// CPU time of this thread so far (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for clock_gettime to write.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: start slapd with `cargo xtask slapd` first"))
}

/// Runs an OpenLDAP client as the root DN with `input` on its standard input.
fn as_root(b: &Bench, tool: &str, input: &str) {
    let mut child = Command::new(tool)
        .args(["-x", "-H", &var("KEYWARD_LDAP_URL"), "-D", &var("KEYWARD_LDAP_ADMIN_DN"), "-y"])
        .arg(&b.admin_password)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "{tool}");
}

struct Bench {
    target: Target,
    /// The same target with the accesslog configured.
    logged: Target,
    admin_password: std::path::PathBuf,
    people: String,
    groups: String,
}

impl Bench {
    fn open(&self) -> LdapProvider {
        LdapProvider::open(&self.target, Path::new("/"), Access::Read).unwrap()
    }
    fn open_logged(&self) -> LdapProvider {
        LdapProvider::open(&self.logged, Path::new("/"), Access::Read).unwrap()
    }
    fn user(&self, i: usize) -> String {
        format!("uid=user{i:05},{}", self.people)
    }
    fn group(&self, i: usize) -> String {
        format!("cn=group-{i:04},{}", self.groups)
    }
}

/// One measured check: requests, CPU time, wall time, objects changed.
struct Check {
    requests: usize,
    cpu: Duration,
    wall: Duration,
    changed: usize,
}

fn full(rt: &tokio::runtime::Runtime, b: &Bench) -> (Check, LiveTarget) {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let mut p = b.open();
    let live = rt.block_on(p.read()).unwrap();
    let check = Check { requests: p.requests().unwrap(), cpu: thread_cpu() - cpu, wall: wall.elapsed(), changed: 0 };
    (check, live)
}

fn incremental(rt: &tokio::runtime::Runtime, b: &Bench, held: &mut (LiveTarget, Cursor), log: bool) -> Check {
    let (live, cursor) = (&mut held.0, &mut held.1);
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let mut p = if log { b.open_logged() } else { b.open() };
    let changes = rt.block_on(p.read_changes(cursor, live)).unwrap();
    feed::apply(live, &changes.changes, |x| p.binding_fingerprint(x));
    *cursor = changes.cursor.clone();
    Check { requests: p.requests().unwrap(), cpu: thread_cpu() - cpu, wall: wall.elapsed(), changed: changes.objects() }
}

/// Ten changes as the root DN, in one `ldapmodify`.
fn ten_changes(b: &Bench, n: usize, round: usize) {
    let mut ldif = String::new();
    for k in 0..5 {
        let u = b.user((round * 7 + k * 13) % n);
        ldif.push_str(&format!("dn: {u}\nchangetype: modify\nreplace: title\ntitle: title {round}\n\n"));
    }
    ldif.push_str(&format!(
        "dn: uid=hire{round},{}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: hire{round}\ncn: New Hire\nsn: Hire\n\n",
        b.people
    ));
    for k in 0..3 {
        // Users 0..49 are in group 0; these are at the end, in groups of their own.
        let member = b.user(n - 1 - (round * 3 + k));
        ldif.push_str(&format!("dn: {}\nchangetype: modify\nadd: member\nmember: {member}\n\n", b.group(k)));
    }
    ldif.push_str(&format!(
        "dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n\n",
        b.group(3),
        b.user(150 + round)
    ));
    as_root(b, "ldapmodify", &ldif);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn row(label: &str, checks: &[Check]) {
    let requests: Vec<usize> = checks.iter().map(|c| c.requests).collect();
    let changed: Vec<usize> = checks.iter().map(|c| c.changed).collect();
    println!(
        "| {label} | {} | {:?} | {:.1} ms | {:.1} ms | {} |",
        checks.len(),
        requests,
        median(checks.iter().map(|c| c.cpu).collect()).as_secs_f64() * 1e3,
        median(checks.iter().map(|c| c.wall).collect()).as_secs_f64() * 1e3,
        changed.iter().max().copied().unwrap_or(0),
    );
}

fn main() {
    let n: usize = std::env::var("KEYWARD_BENCH_LDAP_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let groups_n = (n / 50).max(4);
    let base = var("KEYWARD_LDAP_BASE");
    let ou = format!("ou=bench-{},{base}", std::process::id());
    let (people, groups) = (format!("ou=people,{ou}"), format!("ou=groups,{ou}"));
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("bind.pw");
    std::fs::write(&password, var("KEYWARD_LDAP_BIND_PASSWORD")).unwrap();
    let target = Target {
        name: Name::new("directory").unwrap(),
        users: UsersScope::All,
        ca_file: None,
        connection: Connection::Ldap(LdapConnection {
            url: var("KEYWARD_LDAP_URL"),
            start_tls: false,
            bind_dn: var("KEYWARD_LDAP_BIND_DN"),
            password: SecretRef::File(password.display().to_string()),
            users_base: people.clone(),
            groups_base: groups.clone(),
            flavor: LdapFlavor::Openldap,
            user_key: "uid".into(),
            disable: LdapDisable::Attribute { name: "pwdAccountLockedTime".into(), value: "000001010000Z".into() },
            access_log: None,
        }),
    };
    let admin_password = dir.path().join("admin.pw");
    std::fs::write(&admin_password, var("KEYWARD_LDAP_ADMIN_PASSWORD")).unwrap();
    // The OpenLDAP clients warn about a password file others can read.
    std::fs::set_permissions(&admin_password, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut logged = target.clone();
    if let Connection::Ldap(c) = &mut logged.connection {
        c.access_log = Some(var("KEYWARD_LDAP_LOG_BASE"));
    }
    let b = Bench { target, logged, admin_password, people, groups };

    // Seed as the root DN: the OU, n users, groups of 50 members.
    let mut ldif = format!("dn: {ou}\nobjectClass: organizationalUnit\nou: bench-{}\n\n", std::process::id());
    for o in [&b.people, &b.groups] {
        let name = o.split(',').next().unwrap().trim_start_matches("ou=");
        ldif.push_str(&format!("dn: {o}\nobjectClass: organizationalUnit\nou: {name}\n\n"));
    }
    for i in 0..n {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: user{i:05}\ncn: User {i}\nsn: User\ntitle: Staff\n\n",
            b.user(i)
        ));
    }
    for g in 0..groups_n {
        ldif.push_str(&format!("dn: {}\nobjectClass: groupOfNames\ncn: group-{g:04}\n", b.group(g)));
        let from = (g * 50) % n;
        for u in from..(from + 50).min(n) {
            ldif.push_str(&format!("member: {}\n", b.user(u)));
        }
        ldif.push('\n');
    }
    as_root(&b, "ldapadd", &ldif);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!("== One watch check of an OpenLDAP directory of {n} users and {groups_n} groups of 50 members (slapd)");
    println!("| check | runs | requests per run | CPU (median) | wall (median) | objects changed |");
    println!("|---|---:|---|---:|---:|---:|");

    let start = || {
        let mut p = b.open();
        let (live, cursor) = rt.block_on(p.read_with_cursor()).unwrap();
        (live, cursor.expect("slapd with syncprov has a feed"))
    };
    // Two watchers: one that lists the ids for removals, one that reads the accesslog.
    let (mut listing, mut logging) = (start(), start());
    assert_eq!(listing.0.accounts.len(), n);

    let fulls: Vec<Check> = (0..3).map(|_| full(&rt, &b).0).collect();
    row("full read, idle", &fulls);
    let idle: Vec<Check> = (0..10).map(|_| incremental(&rt, &b, &mut listing, false)).collect();
    row("incremental, idle", &idle);
    let idle: Vec<Check> = (0..10).map(|_| incremental(&rt, &b, &mut logging, true)).collect();
    row("incremental with the accesslog, idle", &idle);

    let mut fulls = Vec::new();
    let (mut listed, mut logged) = (Vec::new(), Vec::new());
    for round in 0..5 {
        ten_changes(&b, n, round);
        listed.push(incremental(&rt, &b, &mut listing, false));
        logged.push(incremental(&rt, &b, &mut logging, true));
        if round < 2 {
            let (check, truth) = full(&rt, &b);
            assert_eq!(feed::normalized(&listing.0), feed::normalized(&truth), "the feed's state equals a full read");
            assert_eq!(feed::normalized(&logging.0), feed::normalized(&truth), "with the accesslog too");
            fulls.push(check);
        }
    }
    row("full read, after 10 changes", &fulls);
    row("incremental, 10 changes (ids listed)", &listed);
    row("incremental with the accesslog, 10 changes", &logged);

    let _ = Command::new("ldapdelete")
        .args(["-x", "-r", "-H", &var("KEYWARD_LDAP_URL"), "-D", &var("KEYWARD_LDAP_ADMIN_DN"), "-y"])
        .arg(&b.admin_password)
        .arg(&ou)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
