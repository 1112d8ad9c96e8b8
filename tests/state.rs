//! The state store, through its one interface, against both backends: `local` (files in a
//! temporary folder) and `azureblob` against the real Azure Storage emulator, Azurite (one
//! emulator per test; see `state/azurite.rs`). The same behavioural test runs against each
//! backend where it applies (`NAME::local`, `NAME::azureblob`); the Azurite ones are ignored
//! unless the emulator is installed (`cargo xtask test`).
//!
//! What must hold:
//! - two writers appending at once both succeed, one after the other: no interleaved or
//!   duplicated records, the chain intact;
//! - an append whose answer is lost (injected by the fault proxy) never writes its record twice;
//! - one lock holder at a time; a waiter gets the lock when it is released, or fails naming the
//!   holder; a holder killed with SIGKILL frees it (at once locally, when its lease runs out on
//!   Azure); `state unlock ID` breaks it;
//! - documents are written only at the version read; a process killed while writing leaves the
//!   old or the new document and an intact chain;
//! - Shared Key and SAS are both accepted; a wrong key is refused with the service's error code
//!   and request id and without any secret.

// A test report and the helper processes' protocol, not the product's output (which goes
// through output::Printer).
#![allow(clippy::print_stdout)]

#[path = "state/azurite.rs"]
mod azurite;
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use azurite::Azurite;
use keyward::audit::{self, AuditLog, Entry, Outcome};
use keyward::model::config::{AzureBlobState, BlobAuth};
use keyward::model::{SecretRef, UndeliveredCredential};
use keyward::remote::http::RetryPolicy;
use keyward::state::azureblob::{AzureBlobStore, Options};
use keyward::state::documents::{self, Applied};
use keyward::state::local::LocalStore;
use keyward::state::lock::{self, LockOptions};
use keyward::state::trail::{self, ChainHead, HeadCheck};
use keyward::state::{AuditTrail, DocName, Expect, LockHolder, LockId, LockStatus, StateError, StateStore, TryLock};

/// The shortest lease Azure grants, so the lease-expiry tests stay short.
const LEASE: Duration = Duration::from_secs(15);

/// The audit log's path in a local configuration.
const AUDIT_PATH: &str = ".keyward/audit.jsonl";

/// The prefix every Azure store in these tests uses: configurations share containers.
const PREFIX: &str = "team-a/prod";

/// Variables a test's child process reads (see [`child_store`]).
const CHILD_VAR: &str = "KEYWARD_STATE_TEST_CHILD";
const CHILD_ROOT_VAR: &str = "KEYWARD_STATE_TEST_ROOT";
const CHILD_URL_VAR: &str = "KEYWARD_STATE_TEST_URL";

fn entry(address: &str) -> Entry {
    Entry {
        time: chrono::Utc::now(),
        actor: "state-test".into(),
        commit: Some("0123456789abcdef".into()),
        plan_hash: "sha256:plan".into(),
        address: address.into(),
        action: "create".into(),
        outcome: Outcome::Applied,
        error: None,
        detail: None,
        reason: None,
        provenance: None,
        approved_by: Vec::new(),
    }
}

fn holder(actor: &str) -> LockHolder {
    let mut h = LockHolder::current(Some("feedc0de1234567890".into())).unwrap();
    h.actor = actor.into();
    h.run_id = format!("run-of-{actor}");
    h
}

fn options(timeout: Duration) -> LockOptions {
    LockOptions { lease: LEASE, timeout, poll: Duration::from_millis(200) }
}

/// A backend to test against: a folder, or an Azurite container.
struct Env {
    dir: tempfile::TempDir,
    azurite: Option<Azurite>,
}

impl Env {
    fn local() -> Env {
        Env { dir: tempfile::tempdir().unwrap(), azurite: None }
    }

    async fn azure() -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap(), azurite: Some(Azurite::start()) };
        std::fs::write(env.key_file(), &env.az().key).unwrap();
        env.azure_store(&env.az().container_url("state"), BlobAuth::AccountKey(env.key_ref()), Options::default())
            .create_container()
            .await
            .unwrap();
        env
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn az(&self) -> &Azurite {
        self.azurite.as_ref().expect("an Azure environment")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("account-key")
    }

    fn key_ref(&self) -> SecretRef {
        SecretRef::File(self.key_file().display().to_string())
    }

    fn azure_store(&self, url: &str, auth: BlobAuth, options: Options) -> AzureBlobStore {
        let settings = AzureBlobState { url: url.into(), prefix: PREFIX.into(), auth, ca_file: None };
        AzureBlobStore::new(&settings, self.root(), options).unwrap()
    }

    /// A new, independent store on the same state: another machine.
    fn store(&self) -> Arc<dyn StateStore> {
        match &self.azurite {
            None => Arc::new(LocalStore::new(self.root(), Path::new(AUDIT_PATH))),
            Some(az) => Arc::new(self.azure_store(
                &az.container_url("state"),
                BlobAuth::AccountKey(self.key_ref()),
                Options { timeout: Duration::from_secs(10), ..Options::default() },
            )),
        }
    }

    /// Variables that let a child process open the same state ([`child_store`]).
    fn child_env(&self, cmd: &mut Command) {
        cmd.env(CHILD_ROOT_VAR, self.root());
        if let Some(az) = &self.azurite {
            cmd.env(CHILD_URL_VAR, az.container_url("state"));
        }
    }
}

/// Runs `body` against the local backend (`NAME::local`) and against Azurite
/// (`NAME::azureblob`).
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                $body(Env::local()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs azurite: cargo xtask test"]
            async fn azureblob() {
                $body(Env::azure().await).await
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// The audit log.

async fn two_writers_append_at_once(env: Env) {
    const N: usize = 15;
    // Both read the (empty) log before either writes, so every append of one makes the other's
    // next append find the log moved.
    let mut a = AuditTrail::open(env.store()).await.unwrap();
    let mut b = AuditTrail::open(env.store()).await.unwrap();
    let wa = tokio::spawn(async move {
        for i in 0..N {
            a.append(entry(&format!("t.user.a{i:02}"))).await.unwrap();
        }
        a
    });
    let wb = tokio::spawn(async move {
        for i in 0..N {
            b.append_all(vec![entry(&format!("t.user.b{i:02}"))]).await.unwrap();
        }
        b
    });
    let (a, b) = (wa.await.unwrap(), wb.await.unwrap());

    let reader = env.store();
    let (report, _) = trail::verify(&*reader, None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 2 * N);
    let records = trail::records(&*reader).await.unwrap();
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=(2 * N) as u64).collect::<Vec<_>>());
    let addresses: Vec<&str> = records.iter().map(|r| r.entry.address.as_str()).collect();
    let unique: BTreeSet<&str> = addresses.iter().copied().collect();
    assert_eq!(unique.len(), 2 * N, "a record was written twice: {addresses:?}");
    // Each writer's records keep their order.
    for w in ["a", "b"] {
        let mine: Vec<&str> = addresses.iter().copied().filter(|a| a.starts_with(&format!("t.user.{w}"))).collect();
        let want: Vec<String> = (0..N).map(|i| format!("t.user.{w}{i:02}")).collect();
        assert_eq!(mine, want);
    }
    // The writer that appended last knows the head.
    let head = ChainHead { records: 2 * N as u64, hash: records.last().unwrap().hash.clone() };
    assert!(a.head() == &head || b.head() == &head, "{:?} {:?} {head:?}", a.head(), b.head());
    // A log whose head is recorded: reaching it, and a head it never reached.
    assert_eq!(trail::verify(&*reader, Some(&head)).await.unwrap().1, HeadCheck::Reached);
    let beyond = ChainHead { records: 2 * N as u64 + 1, hash: head.hash.clone() };
    assert_eq!(
        trail::verify(&*reader, Some(&beyond)).await.unwrap().1,
        HeadCheck::EndsBefore { records: 2 * N as u64 }
    );
    let other = ChainHead { records: 3, hash: audit::GENESIS.into() };
    assert!(matches!(trail::verify(&*reader, Some(&other)).await.unwrap().1, HeadCheck::Differs { .. }));
}
both!(two_writers, two_writers_append_at_once);

async fn a_stale_writer_appends_after_the_records_it_missed(env: Env) {
    let mut early = AuditTrail::open(env.store()).await.unwrap();
    let mut other = AuditTrail::open(env.store()).await.unwrap();
    other.append_all(vec![entry("t.user.x1"), entry("t.user.x2")]).await.unwrap();
    let written = early.append(entry("t.user.late")).await.unwrap();
    assert_eq!(written.seq, 3);
    assert_eq!(written.prev, other.head().hash);
    let reopened = AuditTrail::open(env.store()).await.unwrap();
    assert_eq!(reopened.head(), early.head());
}
both!(stale_writer, a_stale_writer_appends_after_the_records_it_missed);

/// The local log is the file `AuditLog` writes and `audit verify` reads, and the undelivered
/// credentials are the file `credential::state` reads.
#[tokio::test]
async fn the_local_layout_is_the_one_the_rest_of_keyward_reads() {
    let env = Env::local();
    let store = env.store();
    let mut t = AuditTrail::open(store.clone()).await.unwrap();
    t.append_all(vec![entry("t.user.a"), entry("t.user.b")]).await.unwrap();
    let path = env.root().join(AUDIT_PATH);
    let report = audit::verify(&path).unwrap();
    assert!(report.is_intact() && report.records == 2, "{report:?}");
    AuditLog::open(&path).unwrap().append(entry("t.user.c")).unwrap();
    let t = AuditTrail::open(store.clone()).await.unwrap();
    assert_eq!(t.head().records, 3);

    // A final line torn by a crash is not part of the log: opening the log for appending
    // removes it and records the removal.
    let before = std::fs::metadata(&path).unwrap().len();
    let mut log = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut log, b"{\"seq\":5,\"ti").unwrap();
    assert_eq!(store.log_len().await.unwrap(), before);
    let mut t = AuditTrail::open(store.clone()).await.unwrap();
    assert!(matches!(t.repair(), Some(keyward::state::trail::TailRepair::Removed { bytes: 12, seq: 4, .. })));
    t.append(entry("t.user.d")).await.unwrap();
    let report = audit::verify(&path).unwrap();
    assert!(report.is_intact() && !report.torn_tail && report.records == 5, "{report:?}");
    assert_eq!(audit::read(&path).unwrap()[3].entry.action, "repair");

    let item = UndeliveredCredential {
        target: "directory".into(),
        account: "bot".into(),
        id: "cred-1".into(),
        name: "bot-secret".into(),
        issued: chrono::Utc::now(),
    };
    documents::undelivered_add(&*store, item.clone()).await.unwrap();
    documents::undelivered_add(&*store, item.clone()).await.unwrap();
    let file = keyward::credential::state::path(env.root(), Path::new(AUDIT_PATH));
    assert_eq!(keyward::credential::state::load(&file).unwrap(), vec![item]);
    documents::undelivered_forget(&*store, "directory", "bot", "cred-1").await.unwrap();
    assert!(keyward::credential::state::load(&file).unwrap().is_empty());
}

/// An append whose answer is lost (the service acted, the client never heard), through the
/// fault proxy: each append is read back before it is tried again, so none lands twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs azurite: cargo xtask test"]
async fn lost_append_answers_never_write_a_record_twice() {
    use keyward_fakes::faults::{self, FaultPlan};
    const N: usize = 40;
    let env = Env::azure().await;
    let plan = FaultPlan {
        seed: 11,
        error_before: 0.04,
        error_after: 0.10,
        throttle: 0.03,
        throttle_burst: 2,
        reset_before: 0.04,
        reset_after: 0.12,
        hang_after: 0.04,
        hang: Duration::from_secs(3),
    };
    let proxy = faults::start(env.az().addr(), plan);
    let options = Options {
        timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            max_retries: 4,
            base: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        },
    };
    let faulty: Arc<dyn StateStore> = Arc::new(env.azure_store(
        &env.az().container_url_via(proxy.addr, "state"),
        BlobAuth::AccountKey(env.key_ref()),
        options,
    ));
    let mut t = AuditTrail::open(faulty.clone()).await.unwrap();
    for i in 0..N {
        t.append(entry(&format!("t.user.u{i:02}"))).await.unwrap_or_else(|e| panic!("append {i}: {e}"));
    }
    for i in 0..8 {
        let record = documents::TargetRecord {
            commit: Some(format!("c{i}")),
            config_digest: format!("sha256:{i}"),
            status: documents::ApplyStatus::Completed,
            at: chrono::Utc::now(),
            audit_records: Some(N as u64),
            completed_commit: None,
            unkept: Default::default(),
        };
        documents::record_applied(&*faulty, &format!("target{i}"), record).await.unwrap();
    }
    let s = &proxy.stats;
    let lost = s.error_after.load(Ordering::Relaxed)
        + s.reset_after.load(Ordering::Relaxed)
        + s.hang_after.load(Ordering::Relaxed);
    assert!(lost > 0, "no answer was lost: {}", s.summary());

    // Read straight from the emulator.
    let direct = env.store();
    let (report, _) = trail::verify(&*direct, Some(t.head())).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    let records = trail::records(&*direct).await.unwrap();
    let addresses: Vec<String> = records.iter().map(|r| r.entry.address.clone()).collect();
    let want: Vec<String> = (0..N).map(|i| format!("t.user.u{i:02}")).collect();
    assert_eq!(addresses, want, "records duplicated or lost ({})", s.summary());
    let applied = documents::read::<Applied>(&*direct).await.unwrap().value;
    assert_eq!(applied.targets.len(), 8);
    println!("lost answers: {lost}; proxy: {}", s.summary());
}

// ---------------------------------------------------------------------------------------------
// The lock.

async fn one_holder_at_a_time_and_waiters_get_it_on_release(env: Env) {
    let alice = holder("alice");
    let guard = lock::acquire(env.store(), alice.clone(), options(Duration::ZERO)).await.unwrap();
    guard.check().unwrap();

    // A second run fails after its timeout, naming the holder.
    let err = lock::acquire(env.store(), holder("bob"), options(Duration::from_millis(600))).await.unwrap_err();
    match &err {
        StateError::Locked { holder: Some(h), .. } => assert_eq!(h.id, alice.id),
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    for part in ["alice", &alice.host, "run-of-alice", "feedc0de1234", "lock id", &alice.id.0] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert_eq!(env.store().lock_status().await.unwrap(), LockStatus::Held(Some(alice.clone())));

    // Renewing works while held.
    guard.renew(LEASE).await.unwrap();

    // A waiter gets it once it is released, not before.
    let released = Arc::new(AtomicBool::new(false));
    let (store, r) = (env.store(), released.clone());
    let waiter = tokio::spawn(async move {
        let g = lock::acquire(store, holder("bob"), options(Duration::from_secs(60))).await;
        (g, r.load(Ordering::SeqCst))
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    released.store(true, Ordering::SeqCst);
    guard.release().await.unwrap();
    let (bob, after_release) = waiter.await.unwrap();
    let bob = bob.unwrap();
    assert!(after_release, "the waiter got the lock before it was released");
    match env.store().lock_status().await.unwrap() {
        LockStatus::Held(Some(h)) => assert_eq!(h.actor, "bob"),
        other => panic!("{other:?}"),
    }
    bob.release().await.unwrap();
    assert_eq!(env.store().lock_status().await.unwrap(), LockStatus::Free);
}
both!(lock_exclusive, one_holder_at_a_time_and_waiters_get_it_on_release);

async fn state_unlock_breaks_a_lock_by_its_id(env: Env) {
    let alice = holder("alice");
    let guard = lock::acquire(env.store(), alice.clone(), options(Duration::ZERO)).await.unwrap();
    let other = env.store();
    let wrong = LockId("00000000-0000-4000-8000-000000000000".into());
    match lock::unlock(&*other, &wrong).await {
        Err(StateError::NotLocked { holder: Some(h), .. }) => assert_eq!(h.id, alice.id),
        other => panic!("{other:?}"),
    }
    if env.azurite.is_none() {
        // A local lock is freed by the kernel when its process dies: it cannot be stuck, and
        // breaking it under a running process would let two applies run at once.
        let e = lock::unlock(&*other, &alice.id).await.unwrap_err();
        assert!(matches!(e, StateError::Unbreakable { .. }) && e.to_string().contains("process"), "{e}");
        guard.release().await.unwrap();
        return;
    }
    let broken = lock::unlock(&*other, &alice.id).await.unwrap();
    assert_eq!(broken, alice);
    // The next run proceeds at once; the old holder learns it lost the lock.
    let bob = lock::acquire(other.clone(), holder("bob"), options(Duration::ZERO)).await.unwrap();
    assert!(matches!(guard.renew(LEASE).await, Err(StateError::LockLost { .. })));
    // Releasing a lock no longer held changes nothing.
    guard.release().await.unwrap();
    match other.lock_status().await.unwrap() {
        LockStatus::Held(Some(h)) => assert_eq!(h.id, bob.id().clone()),
        s => panic!("{s:?}"),
    }
    bob.release().await.unwrap();
    assert!(matches!(lock::unlock(&*other, &alice.id).await, Err(StateError::NotLocked { holder: None, .. })));
}
both!(force_break, state_unlock_breaks_a_lock_by_its_id);

/// The lease is renewed while held: another run is kept out past the lease's length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs azurite: cargo xtask test"]
async fn renewals_keep_the_lease_past_its_length() {
    let env = Env::azure().await;
    let guard = lock::acquire(env.store(), holder("alice"), options(Duration::ZERO)).await.unwrap();
    tokio::time::sleep(LEASE + Duration::from_secs(3)).await;
    guard.check().unwrap();
    match env.store().lock_try(&holder("bob"), LEASE).await.unwrap() {
        TryLock::Held(Some(h)) => assert_eq!(h.actor, "alice"),
        other => panic!("the lease ran out while renewed: {other:?}"),
    }
    guard.release().await.unwrap();
}

/// Opens, in a child process, the state its parent test describes in the environment.
fn child_store() -> Arc<dyn StateStore> {
    let root = PathBuf::from(std::env::var(CHILD_ROOT_VAR).expect("the state's folder"));
    match std::env::var(CHILD_URL_VAR) {
        Err(_) => Arc::new(LocalStore::new(&root, Path::new(AUDIT_PATH))),
        Ok(url) => {
            let key = SecretRef::File(root.join("account-key").display().to_string());
            let settings =
                AzureBlobState { url, prefix: PREFIX.into(), auth: BlobAuth::AccountKey(key), ca_file: None };
            Arc::new(AzureBlobStore::new(&settings, &root, Options::default()).unwrap())
        }
    }
}

/// Starts this test binary again to run test `name` as a child (`CHILD_VAR=role`), and waits
/// for it to print `ready`; returns it and its output from `ready` to the end of that line.
fn spawn_child(env: &Env, name: &str, role: &str, ready: &str) -> (Child, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--include-ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_VAR, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    env.child_env(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = ready.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints `test NAME ... ` before the test's own output, on the same line.
            if let Some(i) = line.find(&ready) {
                let _ = tx.send(line[i..].to_string());
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).expect("the child got ready");
    (child, line)
}

/// In a child: takes the lock, says so, and holds it until killed.
async fn hold_the_lock_until_killed() {
    let store = child_store();
    let g = lock::acquire(store, holder("doomed"), options(Duration::from_secs(60))).await.unwrap();
    println!("HELD {}", g.id());
    tokio::time::sleep(Duration::from_secs(600)).await;
}

async fn a_holder_killed_with_sigkill_frees_the_lock(env: Env, name: &str) {
    let (mut child, line) = spawn_child(&env, name, "hold-lock", "HELD ");
    let id = LockId(line.trim_start_matches("HELD ").trim().to_string());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let store = env.store();
    if env.azurite.is_none() {
        // The kernel freed it with the process.
        let g = lock::acquire(store, holder("next"), options(Duration::ZERO)).await.unwrap();
        g.release().await.unwrap();
        return;
    }
    // The lease outlives its holder until it runs out...
    match store.lock_status().await.unwrap() {
        LockStatus::Held(Some(h)) => assert_eq!((h.id, h.actor.as_str()), (id, "doomed")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(store.lock_try(&holder("next"), LEASE).await.unwrap(), TryLock::Held(_)));
    // ...and then the next run proceeds without anyone unlocking it.
    let g = lock::acquire(store, holder("next"), options(LEASE * 3)).await.unwrap();
    g.release().await.unwrap();
}

mod sigkill {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local() {
        if std::env::var(CHILD_VAR).as_deref() == Ok("hold-lock") {
            return hold_the_lock_until_killed().await;
        }
        a_holder_killed_with_sigkill_frees_the_lock(Env::local(), "sigkill::local").await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs azurite: cargo xtask test"]
    async fn azureblob() {
        if std::env::var(CHILD_VAR).as_deref() == Ok("hold-lock") {
            return hold_the_lock_until_killed().await;
        }
        a_holder_killed_with_sigkill_frees_the_lock(Env::azure().await, "sigkill::azureblob").await
    }
}

// ---------------------------------------------------------------------------------------------
// Documents.

async fn documents_are_written_only_at_the_version_read(env: Env) {
    let (s1, s2) = (env.store(), env.store());
    assert_eq!(s1.doc_get(DocName::Applied).await.unwrap(), None);
    let v1 = s1.doc_put(DocName::Applied, b"{\"targets\":{}}\n", &Expect::Absent).await.unwrap();
    let e = s2.doc_put(DocName::Applied, b"{}\n", &Expect::Absent).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    let read = s2.doc_get(DocName::Applied).await.unwrap().unwrap();
    assert_eq!((read.bytes.as_slice(), &read.version), (&b"{\"targets\":{}}\n"[..], &v1));
    let v2 = s2.doc_put(DocName::Applied, b"{\"targets\":{\"x\":null}}\n", &Expect::Version(v1.clone())).await;
    let v2 = v2.unwrap();
    assert_ne!(v1, v2);
    let e = s1.doc_put(DocName::Applied, b"{\"lost\":1}\n", &Expect::Version(v1)).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    let now = s1.doc_get(DocName::Applied).await.unwrap().unwrap();
    assert_eq!((now.bytes.as_slice(), now.version), (&b"{\"targets\":{\"x\":null}}\n"[..], v2));

    // Typed updates from two writers at once: every change survives.
    s1.doc_put(DocName::Applied, b"{}\n", &Expect::Version(now_version(&*s1).await)).await.unwrap();
    let tasks: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|w| {
            let store = env.store();
            tokio::spawn(async move {
                for i in 0..8 {
                    let record = documents::TargetRecord {
                        commit: Some(format!("{w}{i}")),
                        config_digest: "sha256:x".into(),
                        status: if i % 2 == 0 {
                            documents::ApplyStatus::Completed
                        } else {
                            documents::ApplyStatus::Partial
                        },
                        at: chrono::Utc::now(),
                        audit_records: None,
                        completed_commit: None,
                        unkept: Default::default(),
                    };
                    documents::record_applied(&*store, &format!("{w}-target-{i}"), record).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let applied = documents::read::<Applied>(&*s2).await.unwrap().value;
    assert_eq!(applied.targets.len(), 16, "{:?}", applied.targets.keys().collect::<Vec<_>>());
    assert_eq!(applied.targets["b-target-3"].status, documents::ApplyStatus::Partial);

    // The recorded head only moves forward.
    let at = chrono::Utc::now();
    documents::record_head(&*s1, &ChainHead { records: 5, hash: "sha256:5".into() }, at).await.unwrap();
    documents::record_head(&*s2, &ChainHead { records: 3, hash: "sha256:3".into() }, at).await.unwrap();
    let head = documents::read::<documents::AuditHead>(&*s1).await.unwrap().value;
    assert_eq!(head.head.unwrap().records, 5);
}
both!(document_versions, documents_are_written_only_at_the_version_read);

async fn now_version(store: &dyn StateStore) -> keyward::state::Version {
    store.doc_get(DocName::Applied).await.unwrap().unwrap().version
}

/// In a child: appends records and rewrites a document in a loop until killed.
async fn write_until_killed() {
    let store = child_store();
    let mut t = AuditTrail::open(store.clone()).await.unwrap();
    for i in 0u64.. {
        t.append_all((0..3).map(|k| entry(&format!("t.user.c{i}-{k}"))).collect()).await.unwrap();
        documents::update::<Applied>(&*store, |doc| {
            let record = documents::TargetRecord {
                commit: Some(format!("{i:040}")),
                config_digest: "x".repeat(2048),
                status: documents::ApplyStatus::Completed,
                at: chrono::Utc::now(),
                audit_records: Some(i),
                completed_commit: None,
                unkept: Default::default(),
            };
            doc.targets.insert(format!("t{}", i % 50), record);
            true
        })
        .await
        .unwrap();
        if i == 2 {
            println!("WRITING");
        }
    }
}

async fn a_writer_killed_mid_write_leaves_the_old_state_or_the_new(env: Env, name: &str) {
    for (round, delay) in [350u64, 800, 1300].into_iter().enumerate() {
        let (mut child, _) = spawn_child(&env, name, "write", "WRITING");
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().unwrap(); // SIGKILL, somewhere in a write
        child.wait().unwrap();
        let store = env.store();
        let (report, _) = trail::verify(&*store, None).await.unwrap();
        assert!(report.is_intact(), "round {round}: {report:?}");
        if env.azurite.is_some() {
            // Each batch went in one append: whole or not at all.
            let records = trail::records(&*store).await.unwrap();
            let mut batches: std::collections::BTreeMap<String, usize> = Default::default();
            for r in records.iter().filter(|r| r.entry.address.starts_with("t.user.c")) {
                let batch = r.entry.address.rsplit_once('-').unwrap().0.to_string();
                *batches.entry(batch).or_default() += 1;
            }
            assert!(batches.values().all(|n| n % 3 == 0), "a batch was cut: {batches:?}");
        }
        // The document is whole: it parses.
        let applied = documents::read::<Applied>(&*store).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(!applied.value.targets.is_empty());
        // And the next writer carries on.
        let mut t = AuditTrail::open(store.clone()).await.unwrap();
        t.append(entry(&format!("t.user.after{round}"))).await.unwrap();
    }
    if env.azurite.is_none() {
        // No temporary file survives as a document; leftovers are hidden and never read.
        let names: Vec<String> = std::fs::read_dir(env.root().join(".keyward"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        let known = ["audit.jsonl", "applied.json", "documents.lock", "state.lock"];
        assert!(names.iter().all(|n| known.contains(&n.as_str())), "{names:?}");
    }
}

mod crash {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local() {
        if std::env::var(CHILD_VAR).as_deref() == Ok("write") {
            return write_until_killed().await;
        }
        a_writer_killed_mid_write_leaves_the_old_state_or_the_new(Env::local(), "crash::local").await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs azurite: cargo xtask test"]
    async fn azureblob() {
        if std::env::var(CHILD_VAR).as_deref() == Ok("write") {
            return write_until_killed().await;
        }
        a_writer_killed_mid_write_leaves_the_old_state_or_the_new(Env::azure().await, "crash::azureblob").await
    }
}

// ---------------------------------------------------------------------------------------------
// Azure only: prefixes, authentication, errors.

#[tokio::test]
#[ignore = "needs azurite: cargo xtask test"]
async fn configurations_with_different_prefixes_share_a_container_apart() {
    let env = Env::azure().await;
    let mut t = AuditTrail::open(env.store()).await.unwrap();
    t.append(entry("t.user.a")).await.unwrap();
    let settings = AzureBlobState {
        url: env.az().container_url("state"),
        prefix: "team-b".into(),
        auth: BlobAuth::AccountKey(env.key_ref()),
        ca_file: None,
    };
    let other: Arc<dyn StateStore> = Arc::new(AzureBlobStore::new(&settings, env.root(), Options::default()).unwrap());
    assert_eq!(AuditTrail::open(other.clone()).await.unwrap().head().records, 0);
    assert!(other.location().ends_with("/state/team-b/"), "{}", other.location());
    let g = lock::acquire(other, holder("b"), options(Duration::ZERO)).await.unwrap();
    let g2 = lock::acquire(env.store(), holder("a"), options(Duration::ZERO)).await.unwrap();
    g.release().await.unwrap();
    g2.release().await.unwrap();
}

#[tokio::test]
#[ignore = "needs azurite: cargo xtask test"]
async fn a_sas_and_the_shared_key_are_both_accepted() {
    let env = Env::azure().await;
    let sas_file = env.root().join("sas");
    std::fs::write(&sas_file, format!("?{}\n", env.az().account_sas("racwdl"))).unwrap();
    let sas: Arc<dyn StateStore> = Arc::new(env.azure_store(
        &env.az().container_url("state"),
        BlobAuth::SasToken(SecretRef::File(sas_file.display().to_string())),
        Options::default(),
    ));
    let key = env.store();
    let mut by_sas = AuditTrail::open(sas.clone()).await.unwrap();
    by_sas.append(entry("t.user.by-sas")).await.unwrap();
    let mut by_key = AuditTrail::open(key.clone()).await.unwrap();
    by_key.append(entry("t.user.by-key")).await.unwrap();
    documents::record_head(&*sas, by_key.head(), chrono::Utc::now()).await.unwrap();
    let g = lock::acquire(sas.clone(), holder("sas"), options(Duration::ZERO)).await.unwrap();
    match key.lock_status().await.unwrap() {
        LockStatus::Held(Some(h)) => assert_eq!(h.actor, "sas"),
        s => panic!("{s:?}"),
    }
    g.release().await.unwrap();
    let records = trail::records(&*sas).await.unwrap();
    let addresses: Vec<&str> = records.iter().map(|r| r.entry.address.as_str()).collect();
    assert_eq!(addresses, ["t.user.by-sas", "t.user.by-key"]);
    let head = documents::read::<documents::AuditHead>(&*key).await.unwrap().value.head.unwrap();
    assert_eq!(head.records, 2);
}

/// A wrong key, a forged SAS and an unreachable endpoint: each refused with a clear error
/// (status, the service's error code, its request id) that holds no secret, in Display or Debug.
#[tokio::test]
#[ignore = "needs azurite: cargo xtask test"]
async fn wrong_credentials_are_refused_clearly_and_without_the_secret() {
    let env = Env::azure().await;
    let wrong_key = azurite::random_key();
    let wrong_file = env.root().join("wrong-key");
    std::fs::write(&wrong_file, &wrong_key).unwrap();
    let store = env.azure_store(
        &env.az().container_url("state"),
        BlobAuth::AccountKey(SecretRef::File(wrong_file.display().to_string())),
        Options::default(),
    );
    let e = store.doc_get(DocName::Applied).await.unwrap_err();
    let (shown, debug) = (e.to_string(), format!("{e:?} {store:?}"));
    match &e {
        StateError::Service { status: 403, code: Some(code), request_id: Some(_), .. } => {
            assert!(shown.contains(code.as_str()), "{shown}");
        }
        other => panic!("{other:?}"),
    }
    assert!(shown.contains("403") && shown.contains("request id") && shown.contains("applied.json"), "{shown}");
    for secret in [&wrong_key, &env.az().key] {
        assert!(!shown.contains(secret.as_str()) && !debug.contains(secret.as_str()), "{shown}\n{debug}");
    }

    // A SAS whose signature is forged.
    let good = env.az().account_sas("racwdl");
    let sig = good.split("sig=").nth(1).unwrap().to_string();
    let forged = good.replace(
        &sig,
        &percent_encoding::utf8_percent_encode(&azurite::random_key(), percent_encoding::NON_ALPHANUMERIC).to_string(),
    );
    let forged_sig = forged.split("sig=").nth(1).unwrap().to_string();
    let sas_file = env.root().join("sas");
    std::fs::write(&sas_file, &forged).unwrap();
    let sas_store = env.azure_store(
        &env.az().container_url("state"),
        BlobAuth::SasToken(SecretRef::File(sas_file.display().to_string())),
        Options::default(),
    );
    let e = AuditTrail::open(Arc::new(sas_store)).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("403"), "{shown}");
    assert!(!shown.contains(&forged_sig) && !shown.contains(&sig), "{shown}");

    // Nothing listens: the transport error quotes the URL, but never its signature.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let unreachable = env.azure_store(
        &env.az().container_url_via(closed, "state"),
        BlobAuth::SasToken(SecretRef::File(env.root().join("sas").display().to_string())),
        Options { retry: RetryPolicy { max_retries: 1, ..RetryPolicy::default() }, ..Options::default() },
    );
    let e = unreachable.log_append(0, b"{}\n").await.unwrap_err();
    let shown = format!("{e} {e:?} {unreachable:?}");
    assert!(!shown.contains(&forged_sig), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// The keyward binary on a remote state: several runs, several clones, one chain.

/// A configuration folder (a copy of the quick start) whose `state:` is the Azurite container
/// `state` under [`PREFIX`], with `users` generated users added so an apply takes a while.
fn remote_config(env: &Env, at: &Path, users: usize) {
    support::copy_dir(&support::repo_root().join("examples/quickstart"), at);
    let settings = std::fs::read_to_string(at.join("keyward.yaml")).unwrap();
    let state = format!(
        "\nstate:\n  backend: azureblob\n  url: {}\n  prefix: {PREFIX}\n  accountKey: ${{file:{}}}\n",
        env.az().container_url("state"),
        env.key_file().display()
    );
    std::fs::write(at.join("keyward.yaml"), settings + &state).unwrap();
    let mut text = String::new();
    for i in 0..users {
        text.push_str(&format!(
            "---\nkind: User\nname: gen.user{i:04}\nuserName: gen.user{i:04}@northwind.example\n\
             displayName: Generated User {i}\ndepartment: Operations\njobTitle: Clerk\nroles: [ap-clerk]\n"
        ));
    }
    if users > 0 {
        std::fs::write(at.join("users/generated.yaml"), text).unwrap();
    }
    std::fs::write(at.join(".gitignore"), ".keyward/\n").unwrap();
}

/// `keyward ARGS` in the configuration folder `dir`, run by `actor`.
fn keyward(dir: &Path, actor: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyward"));
    c.args(args)
        .current_dir(dir)
        .env("KEYWARD_ACTOR", actor)
        .env("NO_COLOR", "1")
        .env_remove("KEYWARD_LOG")
        .env_remove("GITHUB_RUN_ID")
        .stdin(Stdio::null());
    c
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ran(o: std::process::Output) -> Ran {
    Ran {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[track_caller]
fn run_ok(dir: &Path, actor: &str, args: &[&str]) -> Ran {
    let r = ran(keyward(dir, actor, args).output().unwrap());
    assert_eq!(r.code, 0, "keyward {args:?}\n--- stdout\n{}\n--- stderr\n{}", r.stdout, r.stderr);
    r
}

/// The record count and hash an apply printed as the audit chain's head.
fn printed_head(stdout: &str) -> (u64, String) {
    let line = stdout.lines().find(|l| l.starts_with("Audit chain head: ")).unwrap_or_else(|| panic!("{stdout}"));
    let (n, rest) = line.trim_start_matches("Audit chain head: ").split_once(" records, last hash ").unwrap();
    (n.parse().unwrap(), rest.split_whitespace().next().unwrap().to_string())
}

/// The actors of the audit records, in order, as `audit show` reads them from the state.
fn record_actors(dir: &Path) -> Vec<String> {
    let shown = run_ok(dir, "auditor", &["audit", "show", ".", "--format", "json"]);
    let records: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    records.as_array().unwrap().iter().map(|r| r["actor"].as_str().unwrap().to_string()).collect()
}

/// Applied twice on a remote state, `audit verify`, `audit show` and `state show` read the
/// remote chain; nothing is written to the local `.keyward/audit.jsonl`.
#[test]
#[ignore = "needs azurite: cargo xtask test"]
fn audit_commands_read_the_remote_chain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::azure());
    let dir = env.root().join("config");
    remote_config(&env, &dir, 0);
    let first = run_ok(&dir, "ci-apply", &["apply", ".", "--auto-approve"]);
    let (n1, _) = printed_head(&first.stdout);
    assert!(n1 > 5, "{}", first.stdout);
    assert!(first.stdout.contains(&format!("azureblob {}", env.az().container_url("state"))), "{}", first.stdout);
    let users = std::fs::read_to_string(dir.join("users/sales.yaml")).unwrap();
    std::fs::write(dir.join("users/sales.yaml"), users.replace("jobTitle: Head of Sales", "jobTitle: Sales Director"))
        .unwrap();
    let second = run_ok(&dir, "ci-apply", &["apply", ".", "--auto-approve"]);
    let (n2, h2) = printed_head(&second.stdout);
    assert_eq!(n2, n1 + 2, "the change's attempt and its outcome");
    assert!(!dir.join(".keyward/audit.jsonl").exists(), "the log went to the remote state only");

    let v = run_ok(&dir, "auditor", &["audit", "verify", "."]);
    assert!(v.stdout.contains(&format!("{PREFIX}/audit.jsonl: intact, {n2} records, head {h2}")), "{}", v.stdout);
    run_ok(&dir, "auditor", &["audit", "verify", ".", "--expect-head", &h2]);
    assert_eq!(record_actors(&dir).len() as u64, n2);
    let shown = run_ok(&dir, "auditor", &["state", "show", "."]);
    assert!(shown.stdout.contains(&format!("Audit chain: {n2} records, head {h2}")), "{}", shown.stdout);

    // The chain as the emulator holds it, read straight through the store.
    let records = rt.block_on(trail::records(&*env.store())).unwrap();
    assert_eq!(records.len() as u64, n2);
    assert_eq!(records.last().unwrap().hash, h2);
}

/// Two `keyward apply` processes started at once against one container, each from its own
/// copy of the configuration (so each has a whole directory to create): one waits for the
/// other's lease, both finish, and the chain verifies with each run's records in one unbroken
/// stretch.
#[test]
#[ignore = "needs azurite: cargo xtask test"]
fn two_applies_at_once_take_turns_on_one_chain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::azure());
    let (a, b) = (env.root().join("runner-a"), env.root().join("runner-b"));
    remote_config(&env, &a, 300);
    remote_config(&env, &b, 300);
    let args = ["apply", ".", "--auto-approve", "--log-level", "info", "--lock-timeout", "5m"];
    let spawn = |dir: &Path, actor: &str| {
        keyward(dir, actor, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let (ca, cb) = (spawn(&a, "runner-a"), spawn(&b, "runner-b"));
    // Both outputs are read at once: a run blocked writing to a full pipe would stop renewing
    // its lease.
    let (wa, wb) = (std::thread::spawn(|| ca.wait_with_output()), std::thread::spawn(|| cb.wait_with_output()));
    let (ra, rb) = (ran(wa.join().unwrap().unwrap()), ran(wb.join().unwrap().unwrap()));
    for (name, r) in [("a", &ra), ("b", &rb)] {
        assert_eq!(r.code, 0, "runner {name}\n--- stderr a\n{}\n--- stderr b\n{}", ra.stderr, rb.stderr);
    }
    let waited: Vec<&str> = [("a", &ra), ("b", &rb)]
        .iter()
        .filter(|(_, r)| r.stderr.contains("the state is locked; waiting"))
        .map(|x| x.0)
        .collect();
    assert_eq!(waited.len(), 1, "exactly one run waits for the lease: {waited:?}\n{}\n{}", ra.stderr, rb.stderr);

    let (na, nb) = (printed_head(&ra.stdout).0, printed_head(&rb.stdout).0);
    let total = na.max(nb);
    assert!(na.min(nb) > 300, "the first run wrote its records before the second: {na} {nb}");
    let v = run_ok(&a, "auditor", &["audit", "verify", "."]);
    assert!(v.stdout.contains(&format!("intact, {total} records")), "{}", v.stdout);
    // Each run's records form one stretch: the actor changes once.
    let actors = record_actors(&b);
    assert_eq!(actors.len() as u64, total);
    let changes = actors.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(changes, 1, "records interleaved: {:?}", actors.iter().collect::<BTreeSet<_>>());
    let first = if waited == ["a"] { "runner-b" } else { "runner-a" };
    assert_eq!(actors[0], first, "the run that did not wait wrote first");
}

/// Three runs from three clones of one git configuration (in three temporary folders, as three
/// runners would check it out) continue one chain, and each sees the others' applies.
#[test]
#[ignore = "needs azurite: cargo xtask test"]
fn three_clones_share_one_lock_state_and_chain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::azure());
    let origin = env.root().join("origin");
    remote_config(&env, &origin, 0);
    let commit = support::commit_all(&origin, "Northwind access", "Andrew Fuller", None).to_string();
    let mut heads = Vec::new();
    let mut clones = Vec::new();
    for (i, actor) in ["runner-1", "runner-2", "runner-3"].iter().enumerate() {
        let checkout = tempfile::tempdir().unwrap();
        let dir = checkout.path().join("config");
        git2::Repository::clone(origin.to_str().unwrap(), &dir).unwrap();
        assert!(!dir.join(".keyward").exists());
        let r = run_ok(&dir, actor, &["apply", ".", "--auto-approve"]);
        let (n, hash) = printed_head(&r.stdout);
        if let Some((prev, _)) = heads.last() {
            assert!(n > *prev, "run {i} continued the chain: {n} after {prev}");
        }
        heads.push((n, hash));
        let shown = run_ok(&dir, actor, &["state", "show", "."]);
        assert!(shown.stdout.contains("directory: completed"), "{}", shown.stdout);
        assert!(shown.stdout.contains(&commit), "{}", shown.stdout);
        clones.push(checkout);
    }
    // Verified from each clone: one chain, every head kept along the way still in it.
    let (n, last) = heads.last().unwrap().clone();
    for checkout in &clones {
        let dir = checkout.path().join("config");
        let v = run_ok(&dir, "auditor", &["audit", "verify", "."]);
        assert!(v.stdout.contains(&format!("intact, {n} records, head {last}")), "{}", v.stdout);
        for (_, h) in &heads {
            run_ok(&dir, "auditor", &["audit", "verify", ".", "--expect-head", h]);
        }
    }
    let actors = record_actors(&clones[0].path().join("config"));
    for actor in ["runner-1", "runner-2", "runner-3"] {
        assert!(actors.iter().any(|a| a == actor), "{actor} wrote to the shared chain");
    }

    // Drift from another clone, with a change merged there but not applied: the commit the
    // shared state records as applied is the comparison, and the new user is pending, not drift.
    let dir = clones[1].path().join("config");
    std::fs::write(
        dir.join("users/new-hire.yaml"),
        "kind: User\nname: new.hire\nuserName: new.hire@northwind.example\ndisplayName: New Hire\n",
    )
    .unwrap();
    support::commit_all(&dir, "A new hire", "Andrew Fuller", None);
    let d = ran(keyward(&dir, "runner-2", &["drift", "."]).output().unwrap());
    assert_eq!(d.code, 0, "a merged, unapplied change is not drift\n{}\n{}", d.stdout, d.stderr);
    assert!(d.stdout.contains(&format!("last applied, commit {}", &commit[..12])), "{}", d.stdout);
    assert!(d.stdout.contains("Pending: 1 change") && d.stdout.contains("directory.user.new.hire"), "{}", d.stdout);
}

/// `state migrate` copies a local state into the Azure one another settings file selects: the
/// chain verifies there, reaches the head the local applies printed, and the migration is in
/// it. Run again it completes nothing twice; a different or damaged chain is refused.
#[test]
#[ignore = "needs azurite: cargo xtask test"]
fn state_migrate_copies_a_local_state_into_azure() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::azure());
    let local = env.root().join("local");
    support::copy_dir(&support::repo_root().join("examples/quickstart"), &local);
    run_ok(&local, "ci-apply", &["apply", ".", "--auto-approve"]);
    let users = std::fs::read_to_string(local.join("users/sales.yaml")).unwrap();
    std::fs::write(
        local.join("users/sales.yaml"),
        users.replace("jobTitle: Head of Sales", "jobTitle: Sales Director"),
    )
    .unwrap();
    let (n, h) = printed_head(&run_ok(&local, "ci-apply", &["apply", ".", "--auto-approve"]).stdout);
    let remote = env.root().join("remote");
    remote_config(&env, &remote, 0);
    let remote_s = remote.to_str().unwrap();

    let m = run_ok(&local, "operator", &["state", "migrate", ".", "--to", remote_s]);
    assert!(m.stdout.contains("Copied the audit chain") && m.stdout.contains("Copied applied.json"), "{}", m.stdout);
    assert!(m.stdout.contains(&format!("intact, {} records", n + 1)), "{}", m.stdout);
    let v = run_ok(&remote, "auditor", &["audit", "verify", "."]);
    assert!(v.stdout.contains(&format!("{PREFIX}/audit.jsonl: intact, {} records", n + 1)), "{}", v.stdout);
    run_ok(&remote, "auditor", &["audit", "verify", ".", "--expect-head", &h, "--expect-records", &n.to_string()]);
    let actors = record_actors(&remote);
    assert_eq!(actors.last().unwrap(), "operator", "the migration is recorded: {actors:?}");
    let shown = run_ok(&remote, "auditor", &["state", "show", "."]);
    assert!(shown.stdout.contains("directory: completed"), "{}", shown.stdout);
    // The local state is left as it was.
    let v = run_ok(&local, "auditor", &["audit", "verify", "."]);
    assert!(v.stdout.contains(&format!("intact, {n} records, head {h}")), "{}", v.stdout);

    // Again: the chain is already there; nothing is copied or recorded twice.
    let again = run_ok(&local, "operator", &["state", "migrate", ".", "--to", remote_s]);
    assert!(again.stdout.contains("already holds this audit chain"), "{}", again.stdout);
    assert!(!again.stdout.contains("Copied applied.json"), "{}", again.stdout);
    assert_eq!(record_actors(&remote).len() as u64, n + 1);

    // Another configuration's chain is refused: the remote one is never overwritten or merged.
    let other = env.root().join("other");
    support::copy_dir(&support::repo_root().join("examples/quickstart"), &other);
    run_ok(&other, "ci-apply", &["apply", ".", "--auto-approve"]);
    let refused = ran(keyward(&other, "operator", &["state", "migrate", ".", "--to", remote_s]).output().unwrap());
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("already holds an audit chain"), "{}", refused.stderr);
    // A damaged chain is refused before anything is written.
    let log = std::fs::read_to_string(other.join(".keyward/audit.jsonl")).unwrap();
    // The first outcome record (attempts come before it).
    let line = log.lines().position(|l| l.contains("\"applied\"")).unwrap() + 1;
    std::fs::write(other.join(".keyward/audit.jsonl"), log.replacen("\"applied\"", "\"failed\"", 1)).unwrap();
    let refused = ran(keyward(&other, "operator", &["state", "migrate", ".", "--to", remote_s]).output().unwrap());
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("source audit log is damaged at line {line}:")), "{}", refused.stderr);
    assert_eq!(record_actors(&remote).len() as u64, n + 1);
}

/// A saved plan refused as stale after the lock was taken releases the lease at once: before,
/// the refusal returned with the lease held, and the next run waited for it to run out.
#[test]
#[ignore = "needs azurite: cargo xtask test"]
fn a_stale_saved_plan_leaves_the_azure_state_unlocked() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(Env::azure());
    let dir = env.root().join("stale");
    remote_config(&env, &dir, 0);
    run_ok(&dir, "runner", &["apply", ".", "--auto-approve"]);
    let users = std::fs::read_to_string(dir.join("users/it.yaml")).unwrap();
    std::fs::write(dir.join("users/it.yaml"), users.replace("jobTitle: Head of IT", "jobTitle: CIO")).unwrap();
    let plan_file = env.root().join("stale.plan.json");
    run_ok(&dir, "runner", &["plan", ".", "--out", plan_file.to_str().unwrap()]);
    // The live object the plan was made from changes before the apply.
    let live_path = dir.join(".keyward/directory.json");
    let live = std::fs::read_to_string(&live_path).unwrap();
    assert!(live.contains("\"department\": \"IT\""), "{live}");
    std::fs::write(&live_path, live.replacen("\"department\": \"IT\"", "\"department\": \"Elsewhere\"", 1)).unwrap();
    let r = ran(keyward(&dir, "runner", &["apply", plan_file.to_str().unwrap(), "--config", "."]).output().unwrap());
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("stale"), "{}", r.stderr);
    run_ok(&dir, "runner", &["apply", ".", "--auto-approve", "--lock-timeout", "0"]);
}
