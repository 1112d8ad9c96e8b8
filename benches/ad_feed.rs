//! The cost of one `watch` check of an Active Directory domain of 10,000 entries, full read
//! against the `uSNChanged` feed, on the Samba AD DC of `cargo xtask samba`: LDAP operations
//! and keyward's CPU time per idle check and per check with 10 changes (5 user updates, 1 user
//! created, 3 memberships added, 1 removed; then 4 user updates, 1 user renamed, 1 deleted, 1
//! created, 2 memberships added, 1 removed), made with `ldapmodify` as the domain's
//! Administrator.
//!
//! A check is what `watch` does for the target: open the provider and connect (the bind is
//! an operation), then a full read (`read`), or the feed's round (`read_changes`) folded into
//! the held state. CPU time is this thread's (`CLOCK_THREAD_CPUTIME_ID`): keyward's client
//! alone, the DC runs in processes of its own.
//!
//! Run with `cargo xtask samba > samba.env &`, `eval "$(cat samba.env)"`, then `cargo bench
//! --bench ad_feed`. The size is `KEYWARD_BENCH_AD_ENTRIES` (10,000 by default): a hundredth
//! of them groups of 50 members, the rest users. Seeding takes minutes. Prints Markdown.

// A benchmark report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyward::model::config::{Connection, LdapConnection, LdapDisable, LdapFlavor, Target};
use keyward::model::feed::{self, Cursor};
use keyward::model::{LiveTarget, Name, SecretRef, UsersScope};
use keyward::provider::{self, Access, Provider};

/// CPU time of this thread so far (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for clock_gettime to write.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: start `cargo xtask samba` and load its variables"))
}

struct Domain {
    url: String,
    admin_dn: String,
    admin_pw: std::path::PathBuf,
    target: Target,
}

impl Domain {
    /// An OpenLDAP client as Administrator with `stdin` as input; `-c` goes on after errors.
    fn tool(&self, tool: &str, stdin: &str) {
        let mut child = Command::new(tool)
            .args(["-x", "-c", "-H", &self.url, "-D", &self.admin_dn, "-y"])
            .arg(&self.admin_pw)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        let mut input = child.stdin.take().unwrap();
        let text = stdin.to_string();
        let feeder = std::thread::spawn(move || input.write_all(text.as_bytes()));
        let out = child.wait_with_output().unwrap();
        let _ = feeder.join();
        assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn open(&self, root: &Path) -> Box<dyn Provider> {
        provider::open(&self.target, root, Access::Read).unwrap()
    }
}

/// One measured check: operations, CPU time, wall time, objects changed.
struct Check {
    requests: usize,
    cpu: Duration,
    wall: Duration,
    changed: usize,
}

fn full(rt: &tokio::runtime::Runtime, d: &Domain, root: &Path) -> (Check, LiveTarget) {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let mut p = d.open(root);
    let live = rt.block_on(p.read()).unwrap();
    let check = Check { requests: p.requests().unwrap(), cpu: thread_cpu() - cpu, wall: wall.elapsed(), changed: 0 };
    (check, live)
}

fn incremental(
    rt: &tokio::runtime::Runtime,
    d: &Domain,
    root: &Path,
    live: &mut LiveTarget,
    cursor: &mut Cursor,
) -> Check {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let mut p = d.open(root);
    let changes = rt.block_on(p.read_changes(cursor, live)).unwrap();
    feed::apply(live, &changes.changes, |b| p.binding_fingerprint(b));
    *cursor = changes.cursor.clone();
    Check { requests: p.requests().unwrap(), cpu: thread_cpu() - cpu, wall: wall.elapsed(), changed: changes.objects() }
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
    let n: usize = std::env::var("KEYWARD_BENCH_AD_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let groups_n = (n / 100).max(4);
    let users_n = n - groups_n;
    let dir = tempfile::tempdir().unwrap();
    let base = var("KEYWARD_AD_BASE");
    let tag = format!("{:x}", std::process::id());
    let ou = format!("OU=bench-{tag},{base}");
    let (people, groups) = (format!("OU=people,{ou}"), format!("OU=groups,{ou}"));
    let admin_pw = dir.path().join("admin.pw");
    std::fs::write(&admin_pw, var("KEYWARD_AD_ADMIN_PASSWORD")).unwrap();
    let bind_pw = dir.path().join("bind.pw");
    std::fs::write(&bind_pw, var("KEYWARD_AD_BIND_PASSWORD")).unwrap();
    let url = var("KEYWARD_AD_URL");
    let d = Domain {
        url: url.clone(),
        admin_dn: var("KEYWARD_AD_ADMIN_DN"),
        admin_pw,
        target: Target {
            name: Name::new("directory").unwrap(),
            users: UsersScope::All,
            ca_file: None,
            connection: Connection::Ldap(LdapConnection {
                url,
                start_tls: false,
                bind_dn: var("KEYWARD_AD_BIND_DN"),
                password: SecretRef::File(bind_pw.display().to_string()),
                users_base: people.clone(),
                groups_base: groups.clone(),
                flavor: LdapFlavor::Ad,
                user_key: "sAMAccountName".into(),
                disable: LdapDisable::AccountControl,
                access_log: None,
            }),
        },
    };
    let user = |i: usize| format!("b{tag}-u{i:05}");
    let user_dn = |i: usize| format!("CN={},{people}", user(i));
    let group_dn = |i: usize| format!("CN=b{tag}-g{i:04},{groups}");

    let seeding = Instant::now();
    let mut ldif = format!(
        "dn: {ou}\nobjectClass: organizationalUnit\n\ndn: {people}\nobjectClass: organizationalUnit\n\ndn: {groups}\nobjectClass: organizationalUnit\n\n"
    );
    for i in 0..users_n {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: user\nsAMAccountName: {}\ndisplayName: User {i}\ntitle: Staff\nuserAccountControl: 512\n\n",
            user_dn(i),
            user(i)
        ));
    }
    for g in 0..groups_n {
        ldif.push_str(&format!("dn: {}\nobjectClass: group\nsAMAccountName: b{tag}-g{g:04}\n", group_dn(g)));
        for k in 0..50 {
            ldif.push_str(&format!("member: {}\n", user_dn((g * 50 + k) % users_n)));
        }
        ldif.push('\n');
    }
    d.tool("ldapadd", &ldif);
    let seeded = seeding.elapsed();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!(
        "== One watch check of an Active Directory domain of {users_n} users and {groups_n} groups of 50 members (Samba AD; seeded in {:.0} s)",
        seeded.as_secs_f64()
    );
    println!("| check | runs | LDAP operations per run | CPU (median) | wall (median) | objects changed |");
    println!("|---|---:|---|---:|---:|---:|");

    let (mut live, mut cursor) = {
        let mut p = d.open(dir.path());
        let (live, cursor) = rt.block_on(p.read_with_cursor()).unwrap();
        (live, cursor.expect("a feed"))
    };
    assert_eq!(live.accounts.len(), users_n);
    assert_eq!(live.bindings.len(), groups_n);

    let fulls: Vec<Check> = (0..3).map(|_| full(&rt, &d, dir.path()).0).collect();
    row("full read, idle", &fulls);
    let idle: Vec<Check> = (0..10).map(|_| incremental(&rt, &d, dir.path(), &mut live, &mut cursor)).collect();
    row("incremental, idle", &idle);

    let mut fulls = Vec::new();
    let mut incs = Vec::new();
    for round in 0..5 {
        // Ten changes: 5 user updates, 1 user created, 3 members added, 1 removed.
        let mut ldif = String::new();
        for k in 0..5 {
            let u = (round * 7 + k * 13 + 1000) % users_n;
            ldif.push_str(&format!("dn: {}\nchangetype: modify\nreplace: title\ntitle: title {round}\n\n", user_dn(u)));
        }
        ldif.push_str(&format!(
            "dn: CN=b{tag}-hire{round},{people}\nchangetype: add\nobjectClass: user\nsAMAccountName: b{tag}-hire{round}\nuserAccountControl: 512\n\n"
        ));
        for k in 0..3 {
            // Users from the end are in no group of the first few.
            let member = user_dn(users_n - 1 - (round * 3 + k));
            ldif.push_str(&format!("dn: {}\nchangetype: modify\nadd: member\nmember: {member}\n\n", group_dn(k)));
        }
        ldif.push_str(&format!(
            "dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n\n",
            group_dn(3),
            user_dn(3 * 50 + round)
        ));
        d.tool("ldapmodify", &ldif);
        incs.push(incremental(&rt, &d, dir.path(), &mut live, &mut cursor));
        if round < 2 {
            let (check, truth) = full(&rt, &d, dir.path());
            assert!(
                feed::kept(&live) == feed::kept(&truth),
                "the feed's state equals a full read: {:?}",
                feed::differences(&live, &truth)
            );
            fulls.push(check);
        }
    }
    row("full read, after 10 changes", &fulls);
    row("incremental, 10 changes", &incs);

    // Ten changes of which one renames and one deletes a user that groups hold: the groups
    // that hold them are read again (their USN does not show it).
    let mut renames = Vec::new();
    for round in 0..3 {
        let mut ldif = String::new();
        for k in 0..4 {
            let u = (round * 7 + k * 13 + 3000) % users_n;
            ldif.push_str(&format!(
                "dn: {}\nchangetype: modify\nreplace: title\ntitle: title r{round}\n\n",
                user_dn(u)
            ));
        }
        let (renamed, deleted) = ((users_n / 5 + round * 2) % users_n, (users_n / 5 + round * 2 + 1) % users_n);
        ldif.push_str(&format!(
            "dn: {}\nchangetype: modrdn\nnewrdn: CN={}-renamed\ndeleteoldrdn: 1\n\n",
            user_dn(renamed),
            user(renamed)
        ));
        ldif.push_str(&format!("dn: {}\nchangetype: delete\n\n", user_dn(deleted)));
        ldif.push_str(&format!(
            "dn: CN=b{tag}-hire-r{round},{people}\nchangetype: add\nobjectClass: user\nsAMAccountName: b{tag}-hire-r{round}\nuserAccountControl: 512\n\n"
        ));
        for k in 0..2 {
            let member = user_dn(users_n - 100 - (round * 2 + k));
            ldif.push_str(&format!(
                "dn: {}\nchangetype: modify\nadd: member\nmember: {member}\n\n",
                group_dn((10 + k) % groups_n)
            ));
        }
        ldif.push_str(&format!(
            "dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n\n",
            group_dn(12 % groups_n),
            user_dn(((12 % groups_n) * 50 + round) % users_n)
        ));
        d.tool("ldapmodify", &ldif);
        renames.push(incremental(&rt, &d, dir.path(), &mut live, &mut cursor));
        let (_, truth) = full(&rt, &d, dir.path());
        assert!(
            feed::kept(&live) == feed::kept(&truth),
            "the feed's state equals a full read after a rename and a deletion: {:?}",
            feed::differences(&live, &truth)
        );
    }
    row("incremental, 10 changes with a rename and a deletion", &renames);
    // The OU stays: the domain is thrown away with the DC `cargo xtask samba` started.
}
