//! The record of credentials issued but not delivered: `undelivered.json` beside the audit
//! log. It holds target, account, credential id, name and issue time: never material.
//!
//! Apply adds an entry when a delivery fails (after the credential was issued on its target)
//! and drops it once the credential is removed; the planner replaces and removes every
//! credential listed. A missing file is an empty list.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CredentialError;
use crate::model::UndeliveredCredential;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    #[serde(default)]
    undelivered: Vec<UndeliveredCredential>,
}

/// The state file for a configuration at `root` whose audit log is `audit_path`.
pub fn path(root: &Path, audit_path: &Path) -> PathBuf {
    let audit = root.join(audit_path);
    audit.parent().map(|p| p.join("undelivered.json")).unwrap_or_else(|| PathBuf::from("undelivered.json"))
}

pub fn load(path: &Path) -> Result<Vec<UndeliveredCredential>, CredentialError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<StateFile>(&bytes)
            .map(|s| s.undelivered)
            .map_err(|e| CredentialError::Invalid(format!("{} is not a valid state file: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(CredentialError::Invalid(format!("cannot read {}: {e}", path.display()))),
    }
}

fn save(path: &Path, list: Vec<UndeliveredCredential>) -> Result<(), CredentialError> {
    let mut text = serde_json::to_string_pretty(&StateFile { undelivered: list }).expect("state serializes");
    text.push('\n');
    super::sink::write_private(path, text.as_bytes())
        .map_err(|e| CredentialError::Invalid(format!("cannot write {}: {e}", path.display())))
}

/// Adds `item` (idempotent).
pub fn record(path: &Path, item: UndeliveredCredential) -> Result<(), CredentialError> {
    let mut list = load(path)?;
    if !list
        .iter()
        .any(|u| u.target == item.target && u.account == item.account && u.id == item.id && u.name == item.name)
    {
        list.push(item);
    }
    save(path, list)
}

/// Drops the entry of an issue whose answer never came (recorded with an empty id) of
/// credential `name` of `account` on `target`, if any.
pub fn forget_unconfirmed(path: &Path, target: &str, account: &str, name: &str) -> Result<(), CredentialError> {
    let list = load(path)?;
    let before = list.len();
    let kept: Vec<_> = list
        .into_iter()
        .filter(|u| !(u.target == target && u.account == account && u.id.is_empty() && u.name == name))
        .collect();
    if kept.len() == before {
        return Ok(());
    }
    save(path, kept)
}

/// Drops the entry of credential `id` of `account` on `target`, if any.
pub fn forget(path: &Path, target: &str, account: &str, id: &str) -> Result<(), CredentialError> {
    let list = load(path)?;
    let before = list.len();
    let kept: Vec<_> =
        list.into_iter().filter(|u| !(u.target == target && u.account == account && u.id == id)).collect();
    if kept.len() == before {
        return Ok(());
    }
    save(path, kept)
}
