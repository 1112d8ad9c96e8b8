//! Where keyward remembers things between runs: the audit log, the lock, the last apply per
//! target and the credentials issued but not delivered.
//!
//! The engine reaches them only through [`Store`], which holds the [`StateStore`] that `state:`
//! in keyward.yaml selects (`local` by default: files beside the configuration). Nothing here
//! or above knows which backend it talks to.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::EngineError;
use crate::audit::Record;
use crate::model::{DesiredState, UndeliveredCredential};
use crate::state::{self, AuditTrail, LockGuard, LockHolder, LockOptions, StateStore, documents, lock, trail};

/// The state of one configuration.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn StateStore>,
}

impl Store {
    /// The state `state:` in the configuration at `dir` selects.
    pub fn open(state: &DesiredState, dir: &Path) -> Result<Store, EngineError> {
        Ok(Store { backend: state::open(&state.settings, dir)? })
    }

    /// A state already opened.
    pub fn with_backend(backend: Arc<dyn StateStore>) -> Store {
        Store { backend }
    }

    pub fn backend(&self) -> &Arc<dyn StateStore> {
        &self.backend
    }

    /// Where the state is, for messages. Never a secret.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// The credentials apply issued but could not deliver.
    pub async fn undelivered(&self) -> Result<Vec<UndeliveredCredential>, EngineError> {
        Ok(documents::read::<documents::Undelivered>(&*self.backend).await?.value.undelivered)
    }

    /// Opens the audit log for appending; it is read and verified first.
    pub async fn open_audit(&self) -> Result<AuditTrail, EngineError> {
        Ok(AuditTrail::open(self.backend.clone()).await?)
    }

    /// Every intact record of the audit log; none when there is no log yet.
    pub async fn audit_records(&self) -> Result<Vec<Record>, EngineError> {
        Ok(trail::records(&*self.backend).await?)
    }

    /// Takes the run lock for this process, waiting up to `timeout` for another holder.
    pub async fn lock(&self, commit: Option<String>, timeout: Duration) -> Result<LockGuard, EngineError> {
        let holder = LockHolder::current(commit)?;
        let options = LockOptions { timeout, ..LockOptions::default() };
        Ok(lock::acquire(self.backend.clone(), holder, options).await?)
    }
}

/// What `keyward state show` shows.
#[derive(Debug, Clone)]
pub struct Summary {
    pub location: String,
    /// The last apply per target.
    pub applied: std::collections::BTreeMap<String, state::TargetRecord>,
    pub lock: state::LockStatus,
    /// The audit chain as read now: its head and whether it verifies.
    pub head: trail::ChainHead,
    pub intact: bool,
    /// The head the last apply recorded.
    pub recorded_head: Option<trail::ChainHead>,
}

impl Store {
    /// The state's backend, last applies, lock holder and audit chain head.
    pub async fn summary(&self) -> Result<Summary, EngineError> {
        let backend = &*self.backend;
        let applied = documents::read::<documents::Applied>(backend).await?.value.targets;
        let lock = backend.lock_status().await?;
        let recorded_head = documents::read::<documents::AuditHead>(backend).await?.value.head;
        let (report, _) = trail::verify(backend, None).await?;
        let head = match report.head() {
            Some((records, hash)) => trail::ChainHead { records, hash: hash.to_string() },
            None => trail::ChainHead::empty(),
        };
        Ok(Summary { location: self.location(), applied, lock, head, intact: report.is_intact(), recorded_head })
    }

    /// Breaks the lock `id` whoever holds it, and records that in the audit log. Returns the
    /// holder it broke.
    pub async fn unlock(&self, id: &state::LockId, now: crate::model::Timestamp) -> Result<LockHolder, EngineError> {
        let holder = lock::unlock(&*self.backend, id).await?;
        let mut audit = self.open_audit().await?;
        audit
            .append(crate::audit::Entry {
                time: now,
                actor: crate::audit::actor(),
                commit: holder.commit.clone(),
                plan_hash: String::new(),
                address: "state.lock".into(),
                action: "unlock".into(),
                outcome: crate::audit::Outcome::Applied,
                error: None,
                detail: Some(format!("broke the lock held by {holder}")),
                reason: None,
                provenance: None,
            })
            .await?;
        Ok(holder)
    }
}
