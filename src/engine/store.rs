//! Where keyward remembers things between runs: the audit log and the credentials issued but
//! not delivered.
//!
//! Today that is the `local` backend: files beside the configuration (`audit.path`, and
//! `undelivered.json` in the same folder). The rest of the engine reaches them only through
//! [`Store`], so another backend (a lock, the last applied commit per target, all of it kept
//! remotely) replaces this one place.

use std::path::{Path, PathBuf};

use super::EngineError;
use crate::audit::{self, AuditLog, Record};
use crate::model::{DesiredState, UndeliveredCredential};

/// The state of one configuration.
#[derive(Debug, Clone)]
pub struct Store {
    audit_path: PathBuf,
    undelivered_path: PathBuf,
}

impl Store {
    /// The local state of the configuration at `dir`.
    pub fn local(state: &DesiredState, dir: &Path) -> Store {
        Store::at_audit_path(dir, Path::new(&state.settings.audit_path))
    }

    /// The local state whose audit log is `audit_path` (relative to `dir`).
    pub fn at_audit_path(dir: &Path, audit_path: &Path) -> Store {
        Store { audit_path: dir.join(audit_path), undelivered_path: crate::credential::state::path(dir, audit_path) }
    }

    /// Where the audit log is, for messages.
    pub fn audit_path(&self) -> &Path {
        &self.audit_path
    }

    /// The file apply records undelivered credentials in.
    pub fn undelivered_path(&self) -> &Path {
        &self.undelivered_path
    }

    /// The credentials apply issued but could not deliver (see [`crate::credential::state`]).
    pub fn undelivered(&self) -> Result<Vec<UndeliveredCredential>, EngineError> {
        Ok(crate::credential::state::load(&self.undelivered_path)?)
    }

    /// Opens the audit log for appending.
    pub fn open_audit(&self) -> Result<AuditLog, EngineError> {
        Ok(AuditLog::open(&self.audit_path)?)
    }

    /// Every record of the audit log; none when there is no log yet.
    pub fn audit_records(&self) -> Result<Vec<Record>, EngineError> {
        if !self.audit_path.exists() {
            return Ok(Vec::new());
        }
        Ok(audit::read(&self.audit_path)?)
    }
}
