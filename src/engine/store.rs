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
                approved_by: Vec::new(),
            })
            .await?;
        Ok(holder)
    }
}

/// What `keyward state migrate` did.
#[derive(Debug, Clone)]
pub struct Migrated {
    pub from: String,
    pub to: String,
    /// The chain copied (all of it), as verified at the destination afterwards.
    pub head: trail::ChainHead,
    /// Whether the log was copied now (else an earlier, interrupted migration had copied it).
    pub copied_log: bool,
    /// The documents copied.
    pub documents: Vec<state::DocName>,
}

impl Store {
    /// Copies this state (the audit log and the documents) into `to`, which must not hold
    /// another chain: the source chain is verified first (and against the head its last apply
    /// recorded), both states are locked meanwhile, the log is copied in whole records and
    /// verified at the destination, and documents are created only where absent. An
    /// interrupted migration can be run again: a destination whose log is exactly this chain is
    /// completed, anything else is refused. The copy is recorded in the destination's log.
    pub async fn migrate_to(
        &self,
        to: &Store,
        lock_timeout: Duration,
        now: crate::model::Timestamp,
    ) -> Result<Migrated, EngineError> {
        let (from, dest) = (&*self.backend, &*to.backend);
        let refuse = |message: String| EngineError::Migrate { from: from.location(), to: dest.location(), message };
        if from.location() == dest.location() {
            return Err(refuse("they are the same state".into()));
        }
        let source_lock = self.lock(None, lock_timeout).await?;
        let dest_lock = match to.lock(None, lock_timeout).await {
            Ok(l) => l,
            Err(e) => {
                let _ = source_lock.release().await;
                return Err(e);
            }
        };
        let result = self.copy_into(to, now, &refuse).await;
        let released = (dest_lock.release().await, source_lock.release().await);
        let migrated = result?;
        released.0?;
        released.1?;
        Ok(migrated)
    }

    async fn copy_into(
        &self,
        to: &Store,
        now: crate::model::Timestamp,
        refuse: &dyn Fn(String) -> EngineError,
    ) -> Result<Migrated, EngineError> {
        let (from, dest) = (&*self.backend, &*to.backend);
        // The source: intact, and as long as its last apply recorded.
        let recorded = documents::read::<documents::AuditHead>(from).await?.value.head;
        let (report, check) = trail::verify(from, recorded.as_ref()).await?;
        if let Some(p) = report.problems.first() {
            return Err(refuse(format!(
                "the source audit log is damaged at line {}: {}; run `keyward audit verify`",
                p.line, p.message
            )));
        }
        if !matches!(check, trail::HeadCheck::NotAsked | trail::HeadCheck::Reached) {
            return Err(refuse(
                "the source audit log does not reach the head its last apply recorded (records were cut off or \
                 rewritten); run `keyward audit verify`"
                    .into(),
            ));
        }
        let head = match report.head() {
            Some((records, hash)) => trail::ChainHead { records, hash: hash.to_string() },
            None => trail::ChainHead::empty(),
        };
        let len = from.log_len().await?;

        // The destination: empty, or exactly this chain already (an interrupted migration).
        let copied_log = if dest.log_len().await? == 0 {
            let mut at = 0u64;
            while at < len {
                let page = from.log_read(at, trail::MAX_BLOCK as u64).await?;
                let whole = page.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
                if whole == 0 {
                    return Err(refuse(format!("a record at byte {at} of the source log is too large to copy")));
                }
                at = trail::append_exactly_once(dest, at, &page[..whole]).await?;
            }
            true
        } else {
            // This chain is a prefix of the destination's: a hash names its whole history.
            let (dest_report, dest_check) = trail::verify(dest, Some(&head)).await?;
            let same = head.records > 0 && dest_report.is_intact() && dest_check == trail::HeadCheck::Reached;
            if !same {
                return Err(refuse(format!(
                    "the destination already holds an audit chain ({} records) that is not this one; \
                     keyward never overwrites or merges chains",
                    dest_report.records
                )));
            }
            false
        };
        let (dest_report, dest_check) = trail::verify(dest, Some(&head)).await?;
        if !dest_report.is_intact() || dest_check != trail::HeadCheck::Reached {
            return Err(refuse("the copied audit log does not verify at the destination".into()));
        }

        let mut copied = Vec::new();
        for name in state::DocName::ALL {
            let Some(doc) = from.doc_get(name).await? else { continue };
            if dest.doc_get(name).await?.is_some() {
                if copied_log {
                    return Err(refuse(format!("the destination already holds {}", name.file_name())));
                }
                continue;
            }
            dest.doc_put(name, &doc.bytes, &state::Expect::Absent).await?;
            copied.push(name);
        }

        let mut head = head;
        if copied_log {
            let mut audit = to.open_audit().await?;
            audit
                .append(crate::audit::Entry {
                    time: now,
                    actor: crate::audit::actor(),
                    commit: None,
                    plan_hash: String::new(),
                    address: "state".into(),
                    action: "migrate".into(),
                    outcome: crate::audit::Outcome::Applied,
                    error: None,
                    detail: Some(format!("copied {} records from {}", head.records, from.location())),
                    reason: None,
                    provenance: None,
                    approved_by: Vec::new(),
                })
                .await?;
            head = audit.head().clone();
        }
        Ok(Migrated { from: from.location(), to: dest.location(), head, copied_log, documents: copied })
    }
}

/// The state the settings file `path` selects (a keyward.yaml, or a folder holding one): only
/// its settings are read, and they must be valid. Relative paths in it are relative to its
/// folder.
pub fn open_settings(path: &Path) -> Result<Store, EngineError> {
    let file = if path.is_dir() { path.join(crate::load::SETTINGS_FILE) } else { path.to_path_buf() };
    let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let bytes = std::fs::read(&file).map_err(EngineError::io("read", file.clone()))?;
    let loaded = crate::load::load_files(&root, vec![(crate::load::SETTINGS_FILE.into(), bytes)])?;
    let settings = crate::validate::settings_of(&loaded).ok_or(EngineError::StateSettings { file })?;
    Ok(Store::with_backend(state::open(&settings, &root)?))
}
