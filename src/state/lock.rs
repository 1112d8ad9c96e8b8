//! The run lock: taken before an apply reads its targets, renewed while it applies, released at
//! the end.
//!
//! Guarantees:
//! - [`acquire`] takes the lock or waits for it up to [`LockOptions::timeout`], then fails with
//!   [`StateError::Locked`] naming the holder (actor, host, run id, commit, since when);
//! - while a [`LockGuard`] lives, a task renews the lease every third of its length; if a
//!   renewal fails for good (the lease expired unrenewed, or someone broke the lock),
//!   [`LockGuard::check`] says so, and the holder must stop writing;
//! - dropping a guard without [`LockGuard::release`] stops the renewals: the lease then runs out
//!   (at most its length, 60 s), as it does when the holder is killed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{LockHolder, LockId, StateError, StateStore, TryLock};

/// The shortest and longest lease Azure Blob Storage grants (a lease of fixed length).
pub const MIN_LEASE: Duration = Duration::from_secs(15);
pub const MAX_LEASE: Duration = Duration::from_secs(60);

/// How to take the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// How long a holder that stops renewing (killed) keeps others out: 15 to 60 s.
    pub lease: Duration,
    /// How long to wait for another holder before failing (`--lock-timeout`, 10 minutes by
    /// default).
    pub timeout: Duration,
    /// How often to try again while waiting.
    pub poll: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions { lease: MAX_LEASE, timeout: Duration::from_secs(600), poll: Duration::from_secs(2) }
    }
}

/// Takes the lock for `holder`, waiting up to `options.timeout`.
pub async fn acquire(
    store: Arc<dyn StateStore>,
    holder: LockHolder,
    options: LockOptions,
) -> Result<LockGuard, StateError> {
    if !(MIN_LEASE..=MAX_LEASE).contains(&options.lease) {
        return Err(StateError::Config(format!(
            "a lock lease of {}s is outside {}..={}s",
            options.lease.as_secs(),
            MIN_LEASE.as_secs(),
            MAX_LEASE.as_secs()
        )));
    }
    let started = Instant::now();
    let mut last_holder = None;
    let mut told = false;
    loop {
        match store.lock_try(&holder, options.lease).await? {
            TryLock::Acquired => break,
            TryLock::Held(h) => {
                if h.is_some() {
                    last_holder = h;
                }
                let waited = started.elapsed();
                if waited >= options.timeout {
                    return Err(StateError::Locked {
                        location: store.location(),
                        holder: last_holder.map(Box::new),
                        waited,
                    });
                }
                if !told {
                    told = true;
                    let held_by =
                        last_holder.as_ref().map(ToString::to_string).unwrap_or_else(|| "another keyward".into());
                    tracing::info!(location = %store.location(), held_by, "the state is locked; waiting");
                }
                tokio::time::sleep(options.poll.min(options.timeout - waited)).await;
            }
        }
    }
    let lost = Arc::new(Mutex::new(None));
    let renewer = tokio::spawn(renew_loop(store.clone(), holder.id.clone(), options.lease, lost.clone()));
    Ok(LockGuard { store, holder, lost, renewer: Some(renewer) })
}

/// Renews every third of the lease; a failure is retried until the lease would have run out,
/// then recorded as lost.
async fn renew_loop(store: Arc<dyn StateStore>, id: LockId, lease: Duration, lost: Arc<Mutex<Option<String>>>) {
    let every = lease / 3;
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match store.lock_renew(&id, lease).await {
            Ok(()) => last_ok = Instant::now(),
            Err(e @ StateError::LockLost { .. }) => {
                *lost.lock().expect("lock state") = Some(e.to_string());
                return;
            }
            Err(e) if last_ok.elapsed() + every >= lease => {
                *lost.lock().expect("lock state") = Some(format!("it could not be renewed in time: {e}"));
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew the state lock; trying again"),
        }
    }
}

/// A held lock. Release it with [`LockGuard::release`].
#[derive(Debug)]
pub struct LockGuard {
    store: Arc<dyn StateStore>,
    holder: LockHolder,
    lost: Arc<Mutex<Option<String>>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl LockGuard {
    pub fn id(&self) -> &LockId {
        &self.holder.id
    }

    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    /// `Ok` while the lock is held; [`StateError::LockLost`] once it was lost. Check before
    /// every write that relies on holding it.
    pub fn check(&self) -> Result<(), StateError> {
        match self.lost.lock().expect("lock state").as_ref() {
            None => Ok(()),
            Some(message) => Err(StateError::LockLost {
                location: self.store.location(),
                id: self.holder.id.clone(),
                message: message.clone(),
            }),
        }
    }

    /// Renews now (besides the background renewals).
    pub async fn renew(&self, lease: Duration) -> Result<(), StateError> {
        self.check()?;
        self.store.lock_renew(&self.holder.id, lease).await
    }

    /// Stops renewing and releases the lock.
    pub async fn release(mut self) -> Result<(), StateError> {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        self.store.lock_release(&self.holder.id).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

/// Breaks the lock `id` (`keyward state unlock ID`); returns the holder it broke. The caller
/// records this in the audit log.
pub async fn unlock(store: &dyn StateStore, id: &LockId) -> Result<LockHolder, StateError> {
    store.lock_break(id).await
}
