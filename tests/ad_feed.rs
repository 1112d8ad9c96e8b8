//! Active Directory's change feed (`uSNChanged`) against the Samba AD DC of `cargo xtask test`:
//! after each of a scripted run of changes made outside keyward (as the domain's Administrator,
//! with the OpenLDAP clients), the state built from the feed equals a fresh full read; an idle
//! round costs two operations (the bind and the rootDSE); a cursor from another DC, from before
//! a restore, or ahead of the DC is refused so the caller reads in full; and `keyward watch`
//! end to end, reading the directory through the feed and alerting a member added outside
//! keyward.

// A test report, not the product's output.
#![allow(clippy::print_stderr)]

#[path = "ad/harness.rs"]
mod harness;
mod support;

use support::{http_get, metrics_until, sample};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::{Dc, Ou, PASSWORD_VAR, expect_exit, text};
use keyward::model::feed::{self, Cursor};
use keyward::model::{LiveTarget, Target};
use keyward::provider::{self, Access, FeedError, Provider};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn open(target: &Target, root: &Path) -> Box<dyn Provider> {
    provider::open(target, root, Access::Read).unwrap()
}

/// What a watcher holds between checks.
struct Held {
    live: LiveTarget,
    cursor: Cursor,
}

/// One round of the feed on a new connection (as `watch` opens one per check), applied to
/// `held`: the operations it sent, the objects it reported, and whether the DC's USN moved.
async fn catch_up(target: &Target, root: &Path, held: &mut Held) -> Result<(usize, usize, bool), FeedError> {
    let mut p = open(target, root);
    let changes = p.read_changes(&held.cursor, &held.live).await?;
    feed::apply(&mut held.live, &changes.changes, |b| p.binding_fingerprint(b));
    let moved = changes.cursor != held.cursor;
    held.cursor = changes.cursor.clone();
    Ok((p.requests().expect("the LDAP provider counts its operations"), changes.objects(), moved))
}

/// Catches up and checks that the state equals a full read; returns the operations the round
/// sent (the bind included) and the objects it reported.
async fn step(target: &Target, root: &Path, held: &mut Held, what: &str) -> (usize, usize) {
    let (ops_sent, changed, _) = catch_up(target, root, held).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let full = open(target, root).read().await.unwrap();
    assert_eq!(
        feed::normalized(&held.live).accounts,
        feed::normalized(&full).accounts,
        "{what}: accounts differ: {:?}",
        feed::differences(&held.live, &full)
    );
    assert!(
        feed::differences(&held.live, &full).is_empty() && feed::kept(&held.live) == feed::kept(&full),
        "{what}: the state built from the feed differs from a full read: {:?}",
        feed::differences(&held.live, &full)
    );
    (ops_sent, changed)
}

/// Issue 21's bound on a round with changes, the bind included: the bind, the rootDSE, the
/// DC's invocationId and one search of the changes, nothing read again.
const ROUND_WITH_CHANGES: usize = 4;

fn user_ldif(ou: &Ou, name: &str) -> String {
    format!(
        "dn: CN={name},{}\nobjectClass: user\nsAMAccountName: {name}\ndisplayName: {name}\nuserAccountControl: 512\n\n",
        ou.people
    )
}

fn account<'a>(live: &'a LiveTarget, user_name: &str) -> &'a keyward::model::LiveAccount {
    live.accounts.iter().find(|a| a.user_name == user_name).unwrap_or_else(|| panic!("account {user_name}"))
}

fn members<'a>(live: &'a LiveTarget, group: &str) -> &'a [String] {
    &live
        .bindings
        .iter()
        .find(|b| b.binding == keyward::model::Binding::Group(group.into()))
        .unwrap_or_else(|| panic!("group {group}"))
        .members
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn the_state_built_from_the_feed_equals_a_full_read_after_each_change_made_outside_keyward() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "feed");
    let s = harness::random_hex(3);
    let (ann, bob, cat) = (format!("ann-{s}"), format!("bob-{s}"), format!("cat-{s}"));
    let (staff, ops) = (format!("staff-{s}"), format!("ops-{s}"));
    let mut seed = user_ldif(&ou, &ann) + &user_ldif(&ou, &bob);
    for g in [&staff, &ops] {
        seed.push_str(&format!("dn: CN={g},{}\nobjectClass: group\nsAMAccountName: {g}\n\n", ou.groups));
    }
    ou.ldap_tool("ldapadd", &[], &seed).expect_ok();
    let dn = |name: &str| format!("CN={name},{}", ou.people);
    let group_dn = |name: &str| format!("CN={name},{}", ou.groups);
    ou.ldapmodify(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: {}\n\ndn: {}\nchangetype: modify\nreplace: manager\nmanager: {}\n",
        group_dn(&staff),
        dn(&ann),
        dn(&ann),
        dn(&bob)
    ));
    let target = ou.target();
    let root = ou.tmp.path().to_path_buf();
    let rt = runtime();
    rt.block_on(async {
        let (live, cursor) = open(&target, &root).read_with_cursor().await.unwrap();
        let mut held = Held { live, cursor: cursor.expect("Active Directory has a change feed") };
        assert_eq!(account(&held.live, &ann).attrs.manager.as_deref(), Some(bob.as_str()));

        // Idle: nothing of ours changed. Two operations (the bind and the rootDSE) when the
        // DC's USN did not move; when another test changed the domain meanwhile, the
        // invocationId and one search more, and still nothing reported.
        let (ops_sent, changed, moved) = catch_up(&target, &root, &mut held).await.unwrap();
        assert_eq!(changed, 0);
        if moved {
            assert!(ops_sent <= 4, "an idle round with the USN moved: {ops_sent} operations");
        } else {
            assert_eq!(ops_sent, 2, "an idle round");
        }

        // Title updates, a new user and membership changes in one round: nothing to read
        // again (no DN a group holds changed), so four operations.
        let fay = format!("fay-{s}");
        ou.ldapmodify(&format!(
            "dn: {}\nchangetype: modify\nreplace: title\ntitle: Lead\n\n\
             dn: {}\nchangetype: modify\nreplace: title\ntitle: Clerk\n\n\
             dn: {}\nchangetype: add\n{}\
             dn: {}\nchangetype: modify\nadd: member\nmember: {}\nmember: {}\n\n\
             dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n\n",
            dn(&ann),
            dn(&bob),
            dn(&fay),
            user_ldif(&ou, &fay).split_once('\n').unwrap().1,
            group_dn(&ops),
            dn(&fay),
            dn(&bob),
            group_dn(&ops),
            dn(&bob),
        ));
        let (ops_sent, changed) = step(&target, &root, &mut held, "titles, a new user and memberships").await;
        assert!(
            ops_sent <= ROUND_WITH_CHANGES,
            "a round of updates, a new user and memberships: {ops_sent} operations"
        );
        assert_eq!(changed, 4, "ann, bob, fay and ops");
        assert_eq!(members(&held.live, &ops), std::slice::from_ref(&account(&held.live, &fay).id));

        ou.ldap_tool("ldapadd", &[], &user_ldif(&ou, &cat)).expect_ok();
        let (ops_sent, changed) = step(&target, &root, &mut held, "a user created").await;
        assert_eq!(changed, 1);
        assert!(ops_sent <= ROUND_WITH_CHANGES, "a user created: {ops_sent} operations");
        ou.ldapmodify(&format!("dn: {}\nchangetype: modify\nreplace: title\ntitle: Hacker\n", dn(&ann)));
        // Ann is in staff, under the DN staff holds: the group is not read again.
        let (ops_sent, changed) = step(&target, &root, &mut held, "an attribute changed").await;
        assert_eq!(changed, 1);
        assert!(ops_sent <= ROUND_WITH_CHANGES, "an attribute changed: {ops_sent} operations");
        assert_eq!(account(&held.live, &ann).attrs.job_title.as_deref(), Some("Hacker"));
        ou.ldapmodify(&format!(
            "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n",
            dn(&bob)
        ));
        step(&target, &root, &mut held, "a user disabled through userAccountControl").await;
        assert!(!account(&held.live, &bob).active);
        ou.ldapmodify(&format!("dn: {}\nchangetype: modify\nadd: member\nmember: {}\n", group_dn(&staff), dn(&cat)));
        step(&target, &root, &mut held, "a member added").await;
        let cat_id = account(&held.live, &cat).id.clone();
        assert!(members(&held.live, &staff).contains(&cat_id));
        // A member from outside the users' base is kept as its DN; moved in, it is an account.
        let dan = format!("dan-{s}");
        let outside = format!("CN={dan},{}", ou.ou);
        ou.ldap_tool("ldapadd", &[], &user_ldif(&ou, &dan).replace(&dn(&dan), &outside)).expect_ok();
        ou.ldapmodify(&format!("dn: {}\nchangetype: modify\nadd: member\nmember: {outside}\n", group_dn(&staff)));
        step(&target, &root, &mut held, "a foreign member added").await;
        assert!(members(&held.live, &staff).contains(&outside));
        // Renamed outside the users' base, it is still a foreign member, under its new DN
        // (the group's USN does not move): the group is read again.
        ou.ldap_tool("ldapmodrdn", &["-r"], &format!("{outside}\nCN={dan}-x\n")).expect_ok();
        let outside = format!("CN={dan}-x,{}", ou.ou);
        step(&target, &root, &mut held, "a foreign member renamed").await;
        assert!(members(&held.live, &staff).contains(&outside));
        // A manager outside the users' base is no account: no manager. Moved in, its reports
        // name it (their USN does not move either): they are read again (`directReports`).
        ou.ldapmodify(&format!("dn: {}\nchangetype: modify\nreplace: manager\nmanager: {outside}\n", dn(&fay)));
        step(&target, &root, &mut held, "a manager outside the users' base").await;
        assert_eq!(account(&held.live, &fay).attrs.manager, None);
        ou.ldap_tool("ldapmodrdn", &["-r", "-s", &ou.people], &format!("{outside}\nCN={dan}\n")).expect_ok();
        step(&target, &root, &mut held, "a foreign member and manager moved into the users' base").await;
        let dan_id = account(&held.live, &dan).id.clone();
        assert!(members(&held.live, &staff).contains(&dan_id));
        assert_eq!(account(&held.live, &fay).attrs.manager.as_deref(), Some(dan.as_str()));
        ou.ldap_tool("ldapdelete", &[], &format!("{}\n", dn(&dan))).expect_ok();
        step(&target, &root, &mut held, "a member deleted").await;
        ou.ldapmodify(&format!("dn: {}\nchangetype: modify\ndelete: member\nmember: {}\n", group_dn(&staff), dn(&ann)));
        step(&target, &root, &mut held, "a member removed").await;
        assert_eq!(members(&held.live, &staff), std::slice::from_ref(&cat_id));
        // A manager renamed: the accounts it manages show the new name (their USN does not
        // move), and a member renamed changes its group's fingerprint (nor does the group's).
        let bob2 = format!("bob2-{s}");
        ou.ldapmodify(&format!(
            "dn: {}\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: {bob2}\n",
            dn(&bob)
        ));
        step(&target, &root, &mut held, "a manager's userName changed").await;
        assert_eq!(account(&held.live, &ann).attrs.manager.as_deref(), Some(bob2.as_str()));
        ou.ldap_tool("ldapmodrdn", &["-r"], &format!("{}\nCN={cat}-moved\n", dn(&cat))).expect_ok();
        step(&target, &root, &mut held, "a member's entry renamed").await;
        // A member deleted: the group loses it without a new USN of its own.
        ou.ldap_tool("ldapdelete", &[], &format!("CN={cat}-moved,{}\n", ou.people)).expect_ok();
        step(&target, &root, &mut held, "a member deleted").await;
        assert!(members(&held.live, &staff).is_empty());
        assert!(held.live.accounts.iter().all(|a| a.id != cat_id));
        ou.ldap_tool("ldapdelete", &[], &format!("{}\n", group_dn(&ops))).expect_ok();
        step(&target, &root, &mut held, "a group deleted").await;
        assert_eq!(held.live.bindings.len(), 1);
        // A manager deleted: its reports' manager is gone from a full read, and from the feed.
        ou.ldap_tool("ldapdelete", &[], &format!("{}\n", dn(&bob))).expect_ok();
        step(&target, &root, &mut held, "a manager deleted").await;
        assert_eq!(account(&held.live, &ann).attrs.manager, None);
        // A user moved out of the users' base is gone, as a full read says.
        ou.ldap_tool("ldapmodrdn", &["-r", "-s", &ou.ou], &format!("{}\nCN={ann}\n", dn(&ann))).expect_ok();
        step(&target, &root, &mut held, "a user moved out of scope").await;
        let left: Vec<&str> = held.live.accounts.iter().map(|a| a.user_name.as_str()).collect();
        assert_eq!(left, [fay.as_str()]);
    });
}

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn a_cursor_from_another_dc_from_before_a_restore_or_ahead_of_the_dc_is_refused() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "cursor");
    let target = ou.target();
    let root = ou.tmp.path().to_path_buf();
    runtime().block_on(async {
        let (live, cursor) = open(&target, &root).read_with_cursor().await.unwrap();
        let cursor = cursor.unwrap();
        assert!(cursor.0.contains_key("dsServiceName") && cursor.0.contains_key("invocationId"), "{cursor:?}");
        let refused = |c: Cursor| {
            let (target, root, live) = (&target, &root, &live);
            async move { open(target, root).read_changes(&c, live).await }
        };
        let mut other = cursor.clone();
        other.0.insert(
            "dsServiceName".into(),
            "CN=NTDS Settings,CN=DC2,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,DC=keyward,DC=test"
                .into(),
        );
        match refused(other).await {
            Err(FeedError::Expired { message, .. }) => {
                assert!(message.contains("another domain controller"), "{message}")
            }
            other => panic!("another DC's cursor: {other:?}"),
        }
        // A restored DC: a new invocationId (noticed once the USN moved).
        let mut restored = cursor.clone();
        restored.0.insert("invocationId".into(), "00000000-0000-0000-0000-000000000001".into());
        let usn: u64 = cursor.0["highestCommittedUSN"].parse().unwrap();
        restored.0.insert("highestCommittedUSN".into(), (usn - 1).to_string());
        match refused(restored).await {
            Err(FeedError::Expired { message, .. }) => assert!(message.contains("invocationId"), "{message}"),
            other => panic!("a cursor from before a restore: {other:?}"),
        }
        let mut ahead = cursor.clone();
        ahead.0.insert("highestCommittedUSN".into(), (usn + 1_000_000).to_string());
        match refused(ahead).await {
            Err(FeedError::Expired { message, .. }) => assert!(message.contains("went back"), "{message}"),
            other => panic!("a cursor ahead of the DC: {other:?}"),
        }
        match refused(Cursor::default()).await {
            Err(FeedError::Expired { .. }) => {}
            other => panic!("another target's cursor: {other:?}"),
        }
    });
}

// -- keyward watch, end to end --------------------------------------------------------------------

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

const MODE_INCREMENTAL: &str = "keyward_read_mode{target=\"directory\",mode=\"incremental\"}";

#[test]
#[ignore = "needs samba: cargo xtask test"]
fn watch_reads_the_directory_through_the_feed_and_alerts_a_member_added_outside_keyward() {
    let Some(dc) = Dc::from_env() else { return };
    let ou = Ou::new(&dc, "watch");
    ou.hold_quickstart_names();
    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"), dir.path());
    retarget(dir.path(), &ou.target_yaml(""));
    expect_exit(&ou.keyward(dir.path(), &["apply", "--auto-approve", "."]), 0);

    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir.path())
        .args(["watch", ".", "--interval", "300ms", "--listen", "127.0.0.1:0"])
        .env(PASSWORD_VAR, &dc.bind_password)
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
        let line = errs.recv_timeout(Duration::from_secs(60)).expect("watch announces its address");
        if let Some(rest) = line.split_once("serving http://") {
            break rest.1.split('/').next().unwrap().to_string();
        }
    };

    let m = metrics_until(&addr, "checks turn incremental", |m| sample(m, MODE_INCREMENTAL) == Some(1.0));
    let requests = sample(&m, "keyward_read_requests{target=\"directory\"}").unwrap();
    assert!((2.0..=4.0).contains(&requests), "an idle check: {requests} operations\n{m}");
    assert_eq!(sample(&m, "keyward_read_changed_objects{target=\"directory\"}"), Some(0.0), "{m}");
    support::assert_no_alert(&outs, "no drift, no alert");

    // Hannah is added to it-admins outside keyward: alerted, read through the feed.
    let it = ou.entry(&ou.groups, "cn", "it-admins");
    let hannah = ou.entry(&ou.people, "sAMAccountName", "hannah.schulz@northwind.example");
    let changed = Instant::now();
    ou.ldapmodify(&format!("dn: {}\nchangetype: modify\nadd: member\nmember: {}\n", it.dn, hannah.dn));
    let line = outs.recv_timeout(Duration::from_secs(20)).expect("the grant is alerted");
    assert!(line.contains("drift: revoke directory.") && line.contains("hannah.schulz"), "{line}");
    eprintln!("alerted {:?} after the change", changed.elapsed());
    let m = http_get(&addr, "/metrics");
    assert_eq!(sample(&m, MODE_INCREMENTAL), Some(1.0), "{m}");
    assert_eq!(sample(&m, "keyward_feed_mismatches{target=\"directory\"}").unwrap_or(0.0), 0.0, "{m}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // Drift says when the group changed; Active Directory does not say who.
    let o = ou.keyward(dir.path(), &["drift", "."]);
    expect_exit(&o, 2);
    let (out, _) = text(&o);
    assert!(out.contains("changed outside git at") && out.contains("(Add member to group)"), "{out}");
    assert!(!out.contains("changed outside git by"), "{out}");
}
