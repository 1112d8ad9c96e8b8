//! The OpenLDAP change feed against a real slapd with the syncprov overlay (started by
//! `cargo xtask test`, or by hand with `cargo xtask slapd`): after each of a scripted sequence
//! of changes made as the root DN outside keyward, the state built from the feed equals a
//! fresh full read; removals are seen; an idle round costs two requests (the bind and the
//! suffix's `contextCSN`); a cursor the server cannot follow is refused so the caller reads in
//! full; drift is attributed from `modifiersName` and `modifyTimestamp`; and `keyward watch`
//! end to end reads the directory through the feed and alerts a membership added outside
//! keyward within a few intervals; a database without the syncprov overlay has no feed and is
//! read in full.
//!
//! The tests of this binary take turns (a lock): an idle round is idle only while nothing else
//! writes to the suffix.

// A test report, not the product's output (which goes through output::Printer).
#![allow(clippy::print_stderr)]

#[path = "ldap/harness.rs"]
mod harness;
mod support;

use support::{http_get, metrics_until, sample};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use harness::{Corner, PASSWORD_VAR, Server, expect_exit, retarget};
use keyward::model::config::{LdapDisable, Target};
use keyward::model::feed::{self, Cursor};
use keyward::model::{Binding, LiveTarget, Name};
use keyward::plan::{Action, Address, Change, ObjectKind, Operation, Principal, Reason, ReasonKind};
use keyward::provider::ldap::LdapProvider;
use keyward::provider::{Access, FeedError, Provider};

fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock() -> LdapDisable {
    LdapDisable::Attribute { name: "pwdAccountLockedTime".into(), value: "000001010000Z".into() }
}

/// What a watcher holds: the state and the cursor.
struct Held {
    live: LiveTarget,
    cursor: Cursor,
}

struct Directory<'a> {
    corner: Corner<'a>,
    target: Target,
}

impl Directory<'_> {
    fn open(&self) -> LdapProvider {
        LdapProvider::open(&self.target, Path::new("/"), Access::Read).unwrap()
    }

    async fn start(&self) -> Held {
        let (live, cursor) = self.open().read_with_cursor().await.unwrap();
        Held { live, cursor: cursor.expect("slapd with syncprov has a change feed") }
    }

    /// One round of the feed applied to `held`; returns the requests it took and the objects
    /// it named.
    async fn catch_up(&self, held: &mut Held) -> Result<(usize, usize), FeedError> {
        let mut p = self.open();
        let changes = p.read_changes(&held.cursor, &held.live).await?;
        feed::apply(&mut held.live, &changes.changes, |b| p.binding_fingerprint(b));
        held.cursor = changes.cursor.clone();
        Ok((p.requests().unwrap(), changes.objects()))
    }

    async fn full(&self) -> LiveTarget {
        self.open().read().await.unwrap()
    }

    /// Catches up and checks the state equals a full read; returns the objects named.
    async fn step(&self, held: &mut Held, what: &str) -> usize {
        let (_, changed) = self.catch_up(held).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let full = self.full().await;
        assert_eq!(
            feed::normalized(&held.live),
            feed::normalized(&full),
            "{what}: the state built from the feed differs from a full read: {:?}",
            feed::differences(&held.live, &full)
        );
        changed
    }

    fn modify(&self, ldif: &str) {
        self.corner.ldapmodify(ldif);
    }

    fn user(&self, uid: &str) -> String {
        format!("uid={uid},{}", self.corner.people)
    }

    fn group(&self, cn: &str) -> String {
        format!("cn={cn},{}", self.corner.groups)
    }
}

fn directory<'a>(server: &'a Server, name: &str) -> Directory<'a> {
    let corner = Corner::new(server, name);
    let target = corner.target(lock(), &server.bind_password);
    Directory { corner, target }
}

/// The suffix of the test slapd's accesslog database.
fn log_base() -> String {
    std::env::var("KEYWARD_LDAP_LOG_BASE").expect("KEYWARD_LDAP_LOG_BASE: the accesslog database of the test slapd")
}

/// [`directory`], with the accesslog at `log` configured.
fn logged<'a>(server: &'a Server, name: &str, log: &str) -> Directory<'a> {
    let mut d = directory(server, name);
    let keyward::model::config::Connection::Ldap(c) = &mut d.target.connection else { unreachable!() };
    c.access_log = Some(log.to_string());
    d
}

/// Deletes every write the accesslog holds, as its root DN (as `logpurge` would, past any
/// cursor).
fn purge_log(server: &Server) {
    let root = format!("cn=admin,{}", log_base());
    let password = std::env::var("KEYWARD_LDAP_ADMIN_PASSWORD").expect("KEYWARD_LDAP_ADMIN_PASSWORD");
    let auth = ["-x", "-H", &server.url, "-D", &root, "-w", &password];
    let out = Command::new("ldapsearch")
        .args(auth)
        .args(["-b", &log_base(), "-s", "one", "-LLL", "-o", "ldif-wrap=no", "(objectClass=*)", "1.1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dns: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("dn: "))
        .map(str::to_string)
        .collect();
    assert!(!dns.is_empty(), "the log holds writes");
    let status = Command::new("ldapdelete").args(auth).args(&dns).status().unwrap();
    assert!(status.success());
}

fn person(d: &Directory, uid: &str, extra: &str) -> String {
    format!("dn: {}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n{extra}\n", d.user(uid))
}

fn account_id(live: &LiveTarget, user_name: &str) -> String {
    live.accounts.iter().find(|a| a.user_name == user_name).unwrap_or_else(|| panic!("account {user_name}")).id.clone()
}

fn group<'a>(live: &'a LiveTarget, name: &str) -> &'a keyward::model::LiveBinding {
    live.bindings.iter().find(|b| b.binding == Binding::Group(name.into())).unwrap_or_else(|| panic!("group {name}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn the_state_built_from_the_feed_equals_a_full_read_after_each_change() {
    let _turn = turn();
    let server = Server::from_env();
    scripted(&directory(&server, "feed"));
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn with_the_accesslog_the_state_built_from_the_feed_equals_a_full_read_after_each_change() {
    let _turn = turn();
    let server = Server::from_env();
    scripted(&logged(&server, "feed-log", &log_base()));
}

/// The scripted sequence of changes, each followed by a round of the feed and a full read.
fn scripted(d: &Directory) {
    let (alice, bob) = (d.user("alice"), d.user("bob"));
    d.corner
        .ldap_tool(
            "ldapadd",
            &[],
            &format!(
                "{}\n{}\ndn: {}\nobjectClass: groupOfNames\ncn: ops\nmember: {alice}\n\n",
                person(d, "alice", "title: Lead\n"),
                person(d, "bob", &format!("manager: {alice}\n")),
                d.group("ops")
            ),
        )
        .expect_ok();
    runtime().block_on(async {
        let mut held = d.start().await;
        assert_eq!(held.live.accounts.len(), 2);

        // Idle: the bind and the suffix's contextCSN, nothing named.
        let (requests, changed) = d.catch_up(&mut held).await.unwrap();
        assert_eq!((requests, changed), (2, 0), "an idle round");

        d.corner.ldap_tool("ldapadd", &[], &person(d, "carol", "title: New\n")).expect_ok();
        assert_eq!(d.step(&mut held, "a user created").await, 1);
        let carol = account_id(&held.live, "carol");

        d.modify(&format!("dn: {bob}\nchangetype: modify\nreplace: title\ntitle: Engineer\n"));
        assert_eq!(d.step(&mut held, "an attribute changed").await, 1);
        assert_eq!(
            held.live.accounts.iter().find(|a| a.user_name == "bob").unwrap().attrs.job_title.as_deref(),
            Some("Engineer")
        );

        d.modify(&format!(
            "dn: {}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n",
            d.user("carol")
        ));
        d.step(&mut held, "a user locked by ppolicy").await;
        assert!(!held.live.accounts.iter().find(|a| a.id == carol).unwrap().active, "locked reads as inactive");

        d.modify(&format!("dn: {}\nchangetype: modify\nadd: member\nmember: {bob}\n", d.group("ops")));
        d.step(&mut held, "a member added").await;
        let bob_id = account_id(&held.live, "bob");
        assert!(group(&held.live, "ops").members.contains(&bob_id));

        d.modify(&format!("dn: {}\nchangetype: modify\ndelete: member\nmember: {alice}\n", d.group("ops")));
        d.step(&mut held, "a member removed").await;
        assert!(!group(&held.live, "ops").members.contains(&account_id(&held.live, "alice")));

        // Renamed: alice's DN changes, so bob's manager (an unchanged entry) names no user now.
        d.corner.ldap_tool("ldapmodrdn", &["-r", &alice, "uid=alicia"], "").expect_ok();
        d.step(&mut held, "a user renamed").await;
        let manager =
            |live: &LiveTarget| live.accounts.iter().find(|a| a.user_name == "bob").unwrap().attrs.manager.clone();
        assert_eq!(manager(&held.live), None);
        // A userName changed under the same DN: the managed entry (unchanged) reads the new one.
        let ivy = format!("cn=ivy,{}", d.corner.people);
        d.corner
            .ldap_tool("ldapadd", &[], &format!("dn: {ivy}\nobjectClass: inetOrgPerson\nuid: ivy\ncn: ivy\nsn: ivy\n"))
            .expect_ok();
        d.modify(&format!("dn: {bob}\nchangetype: modify\nreplace: manager\nmanager: {ivy}\n"));
        d.step(&mut held, "a manager set").await;
        assert_eq!(manager(&held.live).as_deref(), Some("ivy"));
        d.modify(&format!("dn: {ivy}\nchangetype: modify\nreplace: uid\nuid: ivy.new\n"));
        d.step(&mut held, "a manager's userName changed").await;
        assert_eq!(manager(&held.live).as_deref(), Some("ivy.new"));

        // Deleted while a member (no refint): the group keeps the DN, a foreign member now.
        d.corner.ldap_tool("ldapdelete", &[&bob], "").expect_ok();
        d.step(&mut held, "a member deleted").await;
        assert!(held.live.accounts.iter().all(|a| a.id != bob_id), "the removal is seen");
        assert!(group(&held.live, "ops").members.iter().any(|m| m.eq_ignore_ascii_case(&bob)), "kept as a DN");

        // Created again at that DN: the foreign member resolves to the new account.
        d.corner.ldap_tool("ldapadd", &[], &person(d, "bob", "")).expect_ok();
        d.step(&mut held, "a user created where a group named its DN").await;
        let new_bob = account_id(&held.live, "bob");
        assert_ne!(new_bob, bob_id);
        assert!(group(&held.live, "ops").members.contains(&new_bob));

        let ops = group(&held.live, "ops").id.clone();
        d.corner.ldap_tool("ldapdelete", &[&d.group("ops")], "").expect_ok();
        d.step(&mut held, "a group deleted").await;
        assert!(held.live.bindings.iter().all(|b| b.id != ops), "the group's removal is seen");

        d.corner.ldap_tool("ldapdelete", &[&d.user("carol")], "").expect_ok();
        d.step(&mut held, "a user deleted").await;
        assert!(held.live.accounts.iter().all(|a| a.id != carol), "the user's removal is seen");

        let (requests, changed) = d.catch_up(&mut held).await.unwrap();
        assert_eq!((requests, changed), (2, 0), "idle again");
    });
}

/// Three people in a group, two of them managed by the first, and a second group.
fn team(d: &Directory) {
    let (ann, ben) = (d.user("ann"), d.user("ben"));
    d.corner
        .ldap_tool(
            "ldapadd",
            &[],
            &format!(
                "{}\n{}\n{}\ndn: {}\nobjectClass: groupOfNames\ncn: crew\nmember: {ann}\nmember: {ben}\nmember: {}\n\n\
                 dn: {}\nobjectClass: groupOfNames\ncn: other\nmember: {ben}\n\n",
                person(d, "ann", ""),
                person(d, "ben", &format!("manager: {ann}\n")),
                person(d, "cid", &format!("manager: {ann}\n")),
                d.group("crew"),
                d.user("cid"),
                d.group("other"),
            ),
        )
        .expect_ok();
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn the_accesslog_names_deletions_and_renames_in_four_operations() {
    let _turn = turn();
    let server = Server::from_env();
    let d = logged(&server, "log-ops", &log_base());
    team(&d);
    runtime().block_on(async {
        let mut held = d.start().await;
        let ann = account_id(&held.live, "ann");
        let cid = account_id(&held.live, "cid");

        // A deletion: the bind, the contextCSN, the log and the changes. Listing the ids would
        // take two more searches.
        d.corner.ldap_tool("ldapdelete", &[&d.user("cid")], "").expect_ok();
        let (requests, _) = d.catch_up(&mut held).await.unwrap();
        assert_eq!(requests, 4, "a deletion through the accesslog");
        assert!(held.live.accounts.iter().all(|a| a.id != cid), "the removal is seen");
        assert!(group(&held.live, "crew").members.iter().any(|m| m.eq_ignore_ascii_case(&d.user("cid"))));
        assert_eq!(feed::normalized(&held.live), feed::normalized(&d.full().await), "after the deletion");

        // A rename: the managed user's manager and the group's member resolve anew.
        d.corner.ldap_tool("ldapmodrdn", &["-r", &d.user("ann"), "uid=anna"], "").expect_ok();
        let (requests, _) = d.catch_up(&mut held).await.unwrap();
        assert_eq!(requests, 4, "a rename through the accesslog");
        assert_eq!(account_id(&held.live, "anna"), ann, "the same account, renamed");
        let ben = held.live.accounts.iter().find(|a| a.user_name == "ben").unwrap();
        assert_eq!(ben.attrs.manager, None, "ben's manager DN names nobody now");
        assert!(!group(&held.live, "crew").members.contains(&ann), "the group names the old DN, no account");
        assert_eq!(feed::normalized(&held.live), feed::normalized(&d.full().await), "after the rename");

        // A title update and a member added: no removal, still four.
        d.modify(&format!("dn: {}\nchangetype: modify\nreplace: title\ntitle: Boss\n", d.user("anna")));
        d.modify(&format!("dn: {}\nchangetype: modify\nadd: member\nmember: {}\n", d.group("other"), d.user("anna")));
        let (requests, _) = d.catch_up(&mut held).await.unwrap();
        assert_eq!(requests, 4, "an update and a membership through the accesslog");
        assert!(group(&held.live, "other").members.contains(&ann));
        assert_eq!(feed::normalized(&held.live), feed::normalized(&d.full().await), "after the update");
    });
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn a_purged_accesslog_falls_back_to_listing_the_ids() {
    let _turn = turn();
    let server = Server::from_env();
    let d = logged(&server, "log-purged", &log_base());
    team(&d);
    runtime().block_on(async {
        let mut held = d.start().await;
        let cid = account_id(&held.live, "cid");
        d.corner.ldap_tool("ldapdelete", &[&d.user("cid")], "").expect_ok();
        // The log no longer reaches back to the cursor: the deletion is not in it.
        purge_log(&server);
        d.modify(&format!("dn: {}\nchangetype: modify\nreplace: title\ntitle: Boss\n", d.user("ann")));
        let (requests, _) = d.catch_up(&mut held).await.unwrap();
        assert!(requests > 4, "the ids are listed: {requests} operations");
        assert!(held.live.accounts.iter().all(|a| a.id != cid), "the removal is seen");
        assert_eq!(feed::normalized(&held.live), feed::normalized(&d.full().await), "no false difference");
        // The next round has the log again (the cursor's write is logged).
        d.corner.ldap_tool("ldapdelete", &[&d.user("ben")], "").expect_ok();
        let (requests, _) = d.catch_up(&mut held).await.unwrap();
        assert_eq!(requests, 4, "through the accesslog again");
        assert_eq!(feed::normalized(&held.live), feed::normalized(&d.full().await));
    });
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn an_accesslog_keyward_cannot_read_falls_back_to_listing_the_ids() {
    let _turn = turn();
    let server = Server::from_env();
    let d = logged(&server, "log-unreadable", "cn=nolog");
    team(&d);
    runtime().block_on(async {
        let mut held = d.start().await;
        d.corner.ldap_tool("ldapdelete", &[&d.user("cid")], "").expect_ok();
        let (requests, _) = d.catch_up(&mut held).await.unwrap();
        assert!(requests > 4, "the ids are listed: {requests} operations");
        assert_eq!(feed::normalized(&held.live), feed::normalized(&d.full().await));
    });
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn a_cursor_the_server_cannot_follow_is_refused() {
    let _turn = turn();
    let server = Server::from_env();
    let d = directory(&server, "refused");
    d.corner.ldap_tool("ldapadd", &[], &person(&d, "dave", "")).expect_ok();
    runtime().block_on(async {
        let held = d.start().await;
        let csn = held.cursor.0["contextCSN"].clone();
        let d = &d;
        let refused = |cursor: Cursor| {
            let last = held.live.clone();
            async move {
                let mut p = d.open();
                match p.read_changes(&cursor, &last).await {
                    Err(FeedError::Expired { message, .. }) => message,
                    other => panic!("refused: {:?}", other.map(|c| c.changes.len())),
                }
            }
        };
        let with = |key: &str, value: &str| {
            let mut c = held.cursor.clone();
            c.0.insert(key.into(), value.into());
            c
        };
        // Ahead of the server (a restored database), another server id, not a CSN, elsewhere.
        let ahead = format!("2999{}", &csn[4..]);
        assert!(refused(with("contextCSN", &ahead)).await.contains("older than the cursor"));
        let other_sid = csn.replacen("#000#", "#0a1#", 1);
        assert!(refused(with("contextCSN", &other_sid)).await.contains("server id"));
        refused(with("contextCSN", "x)(uid=*")).await;
        refused(with("suffix", "dc=elsewhere")).await;
        refused(Cursor::default()).await;
        // The cursor itself still works.
        let mut held = held;
        d.catch_up(&mut held).await.unwrap();
    });
}

fn change(name: &str, operation: Operation) -> Change {
    Change {
        address: Address::new(&Name::new("directory").unwrap(), ObjectKind::Assignment, name),
        action: Action::Revoke,
        reason: Reason::new(ReasonKind::Drift, "test"),
        before: None,
        after: None,
        fingerprint: "absent".into(),
        subject: None,
        notes: vec![],
        operation,
    }
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn drift_is_attributed_to_the_modifier_of_the_entry() {
    let _turn = turn();
    let server = Server::from_env();
    let d = directory(&server, "attribution");
    d.corner
        .ldap_tool(
            "ldapadd",
            &[],
            &format!(
                "{}\ndn: {}\nobjectClass: groupOfNames\ncn: admins\nmember: {}\n\n",
                person(&d, "erin", ""),
                d.group("admins"),
                d.user("erin")
            ),
        )
        .expect_ok();
    runtime().block_on(async {
        let mut p = d.open();
        p.read().await.unwrap();
        let grant = change(
            "erin",
            Operation::Revoke { principal: Principal::User("erin".into()), binding: Binding::Group("admins".into()) },
        );
        let update = change("erin", Operation::DeleteUser { user_name: "erin".into() });
        let other = change("x", Operation::CreateBinding { binding: Binding::Group("nobody".into()) });
        let found = p.attribute(&[&grant, &update, &other]).await;
        let a = found[0].as_ref().expect("the group's modifier");
        assert_eq!(a.actor.as_deref().map(str::to_lowercase), Some(server.admin_dn.to_lowercase()));
        assert!((chrono::Utc::now() - a.time).num_minutes().abs() < 10, "{a:?}");
        assert!(a.activity.contains("group"), "{a:?}");
        assert!(found[1].as_ref().expect("the user's modifier").activity.contains("user"));
        assert!(found[2].is_none());
    });
}

// -- keyward watch, end to end --------------------------------------------------------------------

const MODE_INCREMENTAL: &str = "keyward_read_mode{target=\"directory\",mode=\"incremental\"}";

/// A running `keyward watch` every 200 ms: the process, its address, its stdout and stderr lines.
struct Watch {
    child: std::process::Child,
    addr: String,
    outs: mpsc::Receiver<String>,
    errs: mpsc::Receiver<String>,
}

/// The quick start retargeted to `d`'s corner (with a webhook from `KEYWARD_TEST_WEBHOOK`),
/// applied.
fn quickstart(d: &Directory) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"), dir.path());
    let path = dir.path().join("keyward.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    let config = retarget(&config, &d.corner.target_yaml(""));
    std::fs::write(&path, format!("{config}\nnotify:\n  webhook: ${{env:KEYWARD_TEST_WEBHOOK}}\n")).unwrap();
    expect_exit(&d.corner.keyward(dir.path(), &["apply", "--auto-approve", "."]), 0);
    expect_exit(&d.corner.keyward(dir.path(), &["plan", "--detailed-exitcode", "."]), 0);
    dir
}

fn watch(server: &Server, dir: &Path, hook: &str) -> Watch {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["watch", dir.to_str().unwrap(), "--interval", "200ms", "--listen", "127.0.0.1:0"])
        .env(PASSWORD_VAR, &server.bind_password)
        .env("KEYWARD_TEST_WEBHOOK", hook)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (err_tx, errs) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let (out_tx, outs) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let addr = loop {
        let line = errs.recv_timeout(Duration::from_secs(30)).expect("watch announces its address");
        if let Some(rest) = line.split_once("serving http://") {
            break rest.1.split('/').next().unwrap().to_string();
        }
    };
    Watch { child, addr, outs, errs }
}

fn stop(mut child: std::process::Child) {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn watch_reads_the_directory_through_the_feed_and_alerts_a_membership_added_outside() {
    let _turn = turn();
    let server = Server::from_env();
    let d = directory(&server, "watch");
    let (hook, bodies) = support::webhook("/hooks/alerts");
    let dir = quickstart(&d);
    let Watch { child, addr, outs, .. } = watch(&server, dir.path(), &hook);

    let m = metrics_until(&addr, "checks turn incremental", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    assert_eq!(sample(&m, "keyward_read_requests{target=\"directory\"}"), Some(2.0), "{m}");
    support::assert_no_alert(&outs, "no drift, no alert");

    let changed = Instant::now();
    let hannah = d.corner.entry(&d.corner.people, "uid", "hannah.schulz@northwind.example");
    d.modify(&format!("dn: {}\nchangetype: modify\nadd: member\nmember: {}\n", d.group("it-admins"), hannah.dn));
    let line = outs.recv_timeout(Duration::from_secs(10)).expect("the grant is alerted");
    assert!(line.contains("drift: revoke directory.") && line.contains("hannah.schulz"), "{line}");
    assert!(changed.elapsed() < Duration::from_secs(5), "alerted within a few intervals: {:?}", changed.elapsed());
    assert_eq!(sample(&http_get(&addr, "/metrics"), MODE_INCREMENTAL), Some(1.0));
    // The alert says who made it and when: the group's modifiersName and modifyTimestamp.
    let body = bodies.recv_timeout(Duration::from_secs(10)).expect("the webhook is called").to_lowercase();
    assert!(body.contains("hannah.schulz"), "{body}");
    assert!(body.contains(&format!("changed outside git by {}", server.admin_dn.to_lowercase())), "{body}");

    stop(child);
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn a_database_without_syncprov_has_no_feed_and_is_read_in_full() {
    let _turn = turn();
    let mut server = Server::from_env();
    server.base =
        std::env::var("KEYWARD_LDAP_PLAIN_BASE").expect("KEYWARD_LDAP_PLAIN_BASE: a database without syncprov");
    let d = directory(&server, "plain");
    d.corner.ldap_tool("ldapadd", &[], &person(&d, "kim", "title: Clerk\n")).expect_ok();
    runtime().block_on(async {
        let mut p = d.open();
        let (live, cursor) = p.read_with_cursor().await.unwrap();
        assert!(cursor.is_none(), "no contextCSN, no cursor");
        assert_eq!(feed::normalized(&live), feed::normalized(&d.full().await), "read in full");
        assert_eq!(live.accounts.len(), 1);
    });
}

#[test]
#[ignore = "needs slapd: cargo xtask test"]
fn watch_says_once_that_a_database_without_syncprov_is_read_in_full() {
    let _turn = turn();
    let mut server = Server::from_env();
    server.base =
        std::env::var("KEYWARD_LDAP_PLAIN_BASE").expect("KEYWARD_LDAP_PLAIN_BASE: a database without syncprov");
    let d = directory(&server, "plain-watch");
    let (hook, _bodies) = support::webhook("/hooks/alerts");
    let dir = quickstart(&d);
    let w = watch(&server, dir.path(), &hook);
    const MODE_FULL: &str = "keyward_read_mode{target=\"directory\",mode=\"full\"}";
    metrics_until(&w.addr, "a full read", |m| sample(m, MODE_FULL) == Some(1.0));
    // Several checks, each a full read.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sample(&http_get(&w.addr, "/metrics"), MODE_FULL), Some(1.0));
    stop(w.child);
    let said: Vec<String> =
        w.errs.try_iter().filter(|l| l.contains("every check reads the directory in full")).collect();
    assert_eq!(said.len(), 1, "said once: {said:#?}");
    assert!(said[0].contains("syncprov"), "{}", said[0]);
}
