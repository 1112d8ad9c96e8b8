//! The state's small documents, typed, read and updated with optimistic concurrency.
//!
//! [`update`] reads a document and its version, changes it, and writes it only if it is still at
//! that version; when another writer got there first it reads again and re-applies the change
//! (bounded). A write whose answer was lost is read back: if the document holds exactly what was
//! written, the write landed.
//!
//! | document | holds |
//! |---|---|
//! | [`Applied`] (`applied.json`) | per target: the last applied commit, the configuration's digest, completed or partial |
//! | [`AuditHead`] (`audit-head.json`) | the audit chain's head (record count and hash) after the last apply |
//! | [`Undelivered`] (`undelivered.json`) | credentials issued but not delivered (never material) |
//! | [`FeedStates`] (`feeds.json`) | per target: the live state `keyward drift` built, its change feed's cursor, when it was last read in full, a digest of the target's settings |

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::trail::ChainHead;
use super::{DocName, Expect, StateError, StateStore, Version, backoff};
use crate::model::{Timestamp, UndeliveredCredential};

/// How often [`update`] re-reads after another writer changed the document first.
const CONFLICT_RETRIES: u32 = 16;

/// How often a write whose outcome is unknown is read back and tried again.
const UNKNOWN_RETRIES: u32 = 6;

/// A typed state document.
pub trait Document: Serialize + DeserializeOwned + Default + Send {
    const NAME: DocName;
}

/// Whether an apply carried out every change of its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyStatus {
    Completed,
    /// Some changes failed or were skipped; a re-run converges.
    Partial,
}

/// The last apply to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRecord {
    /// The configuration's commit, when it was a git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The digest of the configuration that was applied.
    pub config_digest: String,
    pub status: ApplyStatus,
    /// When the apply ended.
    pub at: Timestamp,
    /// The audit chain's record count after the apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_records: Option<u64>,
    /// The commit of the last apply to this target that completed: the configuration the live
    /// target was last brought to whole. Equal to `commit` when `status` is completed; kept from
    /// the earlier apply when this one was partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_commit: Option<String>,
    /// User attributes the target was found not to keep when written (a SCIM service that
    /// answered without them), with the reason: later plans leave them unmanaged there. Kept
    /// from apply to apply; removing the entry from the state makes keyward try again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unkept: BTreeMap<crate::model::UserField, String>,
}

impl TargetRecord {
    /// The commit the last completed apply brought the target to, if any.
    pub fn completed(&self) -> Option<&str> {
        match self.status {
            ApplyStatus::Completed => self.commit.as_deref(),
            ApplyStatus::Partial => self.completed_commit.as_deref(),
        }
    }
}

/// `applied.json`: the last apply per target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    #[serde(default)]
    pub targets: BTreeMap<String, TargetRecord>,
}

impl Document for Applied {
    const NAME: DocName = DocName::Applied;
}

/// `audit-head.json`: the audit chain's head as the last apply left it, so a log cut short is
/// noticed (`audit verify` compares the log with it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditHead {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<ChainHead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

impl Document for AuditHead {
    const NAME: DocName = DocName::AuditHead;
}

/// `undelivered.json`, in the format `credential::state` reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Undelivered {
    #[serde(default)]
    pub undelivered: Vec<UndeliveredCredential>,
}

impl Document for Undelivered {
    const NAME: DocName = DocName::Undelivered;
}

/// One target's live state as `keyward drift` left it, to be brought up to date through the
/// target's change feed by the next run. As sensitive as the audit log (it names every account
/// and grant of the target).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedState {
    /// A digest of the target's settings when it was read: other settings mean a full read.
    pub settings_digest: String,
    /// When the target was last read in full.
    pub last_full: Timestamp,
    /// The feed's cursor, opaque (see [`crate::model::feed::Cursor`]).
    pub cursor: BTreeMap<String, String>,
    pub live: crate::model::LiveTarget,
    /// Who made each drift item of the target the run reported (by address and action), as
    /// the run that first saw it found: a later run that reads through the feed looks up only
    /// what its round changed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributions: BTreeMap<String, crate::model::Attribution>,
    /// When the run that stored it checked (the bound of an unattributed detection latency at
    /// the next run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    /// The drift items of the target that run reported (by address and action): an item not
    /// among them is new at the next run.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub drift: std::collections::BTreeSet<String>,
}

/// `feeds.json`: per target, the state the next `keyward drift` reads through the feed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedStates {
    #[serde(default)]
    pub targets: BTreeMap<String, FeedState>,
}

impl Document for FeedStates {
    const NAME: DocName = DocName::Feeds;
}

/// A document and the version it was read at (`None` when it did not exist).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: Option<Version>,
}

fn what<T: Document>(store: &dyn StateStore) -> String {
    format!("{} at {}", T::NAME.file_name(), store.location())
}

fn encode<T: Document>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("state documents serialize");
    bytes.push(b'\n');
    bytes
}

/// Reads a document; a missing one is the default value.
pub async fn read<T: Document>(store: &dyn StateStore) -> Result<Versioned<T>, StateError> {
    match store.doc_get(T::NAME).await? {
        None => Ok(Versioned { value: T::default(), version: None }),
        Some(doc) => {
            let value = serde_json::from_slice(&doc.bytes)
                .map_err(|e| StateError::Corrupt { what: what::<T>(store), message: e.to_string() })?;
            Ok(Versioned { value, version: Some(doc.version) })
        }
    }
}

/// Writes `bytes` under `expect` once: a write whose answer was lost, or that was refused as a
/// conflict after an earlier attempt may have landed, is read back; if the document holds
/// exactly `bytes`, it landed.
async fn put_exactly_once(
    store: &dyn StateStore,
    name: DocName,
    bytes: &[u8],
    expect: &Expect,
) -> Result<Version, StateError> {
    let mut tries = 0u32;
    let mut unknown_before = false;
    loop {
        let err = match store.doc_put(name, bytes, expect).await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_outcome_unknown() || (e.is_conflict() && unknown_before) => e,
            Err(e) => return Err(e),
        };
        let current = loop {
            match store.doc_get(name).await {
                Ok(c) => break c,
                Err(e) if e.is_outcome_unknown() && tries < UNKNOWN_RETRIES => {
                    tries += 1;
                    backoff(tries).await;
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(doc) = &current
            && doc.bytes == bytes
        {
            return Ok(doc.version.clone());
        }
        if err.is_conflict() || tries >= UNKNOWN_RETRIES {
            return Err(err);
        }
        unknown_before = true;
        tries += 1;
        backoff(tries).await;
    }
}

/// Reads a document, lets `change` edit it, and writes it back if no one changed it meanwhile;
/// otherwise reads again and re-applies `change`. Returns the value written. `change` returning
/// `false` means "nothing to write".
pub async fn update<T: Document>(
    store: &dyn StateStore,
    mut change: impl FnMut(&mut T) -> bool + Send,
) -> Result<T, StateError> {
    let mut conflicts = 0;
    loop {
        let Versioned { mut value, version } = read::<T>(store).await?;
        if !change(&mut value) {
            return Ok(value);
        }
        let expect = match version {
            Some(v) => Expect::Version(v),
            None => Expect::Absent,
        };
        match put_exactly_once(store, T::NAME, &encode(&value), &expect).await {
            Ok(_) => return Ok(value),
            Err(e) if e.is_conflict() && conflicts < CONFLICT_RETRIES => conflicts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Records the outcome of an apply to `target`. A partial apply keeps the commit of the last
/// completed one (see [`TargetRecord::completed_commit`]).
pub async fn record_applied(store: &dyn StateStore, target: &str, record: TargetRecord) -> Result<(), StateError> {
    update::<Applied>(store, |doc| {
        let mut record = record.clone();
        record.completed_commit = match record.status {
            ApplyStatus::Completed => record.commit.clone(),
            ApplyStatus::Partial => doc.targets.get(target).and_then(|r| r.completed().map(str::to_string)),
        };
        if let Some(before) = doc.targets.get(target) {
            for (field, reason) in &before.unkept {
                record.unkept.entry(*field).or_insert_with(|| reason.clone());
            }
        }
        doc.targets.insert(target.to_string(), record);
        true
    })
    .await
    .map(drop)
}

/// Records the audit chain's head, unless a later head is already recorded.
pub async fn record_head(store: &dyn StateStore, head: &ChainHead, at: Timestamp) -> Result<(), StateError> {
    update::<AuditHead>(store, |doc| {
        if doc.head.as_ref().is_some_and(|h| h.records >= head.records) {
            return false;
        }
        doc.head = Some(head.clone());
        doc.at = Some(at);
        true
    })
    .await
    .map(drop)
}

/// Adds an undelivered credential (idempotent), as `credential::state::record` does.
pub async fn undelivered_add(store: &dyn StateStore, item: UndeliveredCredential) -> Result<(), StateError> {
    update::<Undelivered>(store, |doc| {
        let known = doc
            .undelivered
            .iter()
            .any(|u| u.target == item.target && u.account == item.account && u.id == item.id && u.name == item.name);
        if !known {
            doc.undelivered.push(item.clone());
        }
        !known
    })
    .await
    .map(drop)
}

/// Drops the entry of credential `id` of `account` on `target`, as `credential::state::forget`.
pub async fn undelivered_forget(
    store: &dyn StateStore,
    target: &str,
    account: &str,
    id: &str,
) -> Result<(), StateError> {
    update::<Undelivered>(store, |doc| {
        let before = doc.undelivered.len();
        doc.undelivered.retain(|u| !(u.target == target && u.account == account && u.id == id));
        doc.undelivered.len() != before
    })
    .await
    .map(drop)
}

/// Drops the entry of an issue whose answer never came (recorded with an empty id), as
/// `credential::state::forget_unconfirmed`.
pub async fn undelivered_forget_unconfirmed(
    store: &dyn StateStore,
    target: &str,
    account: &str,
    name: &str,
) -> Result<(), StateError> {
    update::<Undelivered>(store, |doc| {
        let before = doc.undelivered.len();
        doc.undelivered.retain(|u| !(u.target == target && u.account == account && u.id.is_empty() && u.name == name));
        doc.undelivered.len() != before
    })
    .await
    .map(drop)
}
