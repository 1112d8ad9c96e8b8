//! The audit trail on a [`StateStore`]: the hash-chained records of `crate::audit`, read in
//! pages and appended conditionally, whatever the backend.
//!
//! Guarantees:
//! - [`AuditTrail::open`] reads and verifies the whole log, and refuses a damaged one (as
//!   `AuditLog::open` does for a local file); a final line without its newline is repaired only
//!   when that is provably safe (see [`TailRepair`]), and the repair is said and recorded;
//! - [`AuditTrail::append_all`] appends at the position it read. When another writer appended
//!   first, it reads what they wrote, checks that it continues the chain, and chains its own
//!   records after theirs: both writers succeed, one after the other, and the chain never forks;
//! - a retried append never writes a record twice: after an answer was lost (or a write was
//!   refused because the log moved), the log is read back at the position written; if it holds
//!   exactly the bytes sent, they landed. Records carry their sequence number, the previous
//!   hash and a timestamp, so two different appends never produce the same bytes;
//! - records are written in blocks of at most [`MAX_BLOCK`] bytes, cut between records, so a
//!   crash between two blocks leaves a shorter, intact chain.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{StateError, StateStore, backoff};
use crate::audit::{self, Entry, Record, Verifier, VerifyReport};

/// The largest append: Azure's Append Block took at most 4 MiB before version 2022-11-02.
pub const MAX_BLOCK: usize = 4 * 1024 * 1024;

/// How many bytes a read asks for at once.
pub const PAGE: u64 = 4 * 1024 * 1024;

/// How often an append whose outcome is unknown is tried again.
const UNKNOWN_RETRIES: u32 = 8;

/// How often an append is rebuilt after another writer appended first.
const CONFLICT_RETRIES: u32 = 16;

/// The chain's last record: how many records there are and the hash of the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainHead {
    pub records: u64,
    /// The last record's hash; [`audit::GENESIS`] for an empty log.
    pub hash: String,
}

impl ChainHead {
    pub fn empty() -> ChainHead {
        ChainHead { records: 0, hash: audit::GENESIS.to_string() }
    }
}

/// Feeds a log, read in pages, to `each` one complete line at a time (with its newline), with
/// the line's length in bytes. Stops when `each` returns `false`.
async fn for_each_line(
    store: &dyn StateStore,
    from: u64,
    mut each: impl FnMut(&str, u64) -> bool,
) -> Result<(), StateError> {
    let mut at = from;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let page = store.log_read(at, PAGE).await?;
        if page.is_empty() {
            break;
        }
        at += page.len() as u64;
        carry.extend_from_slice(&page);
        let mut start = 0;
        while let Some(i) = carry[start..].iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&carry[start..start + i + 1]);
            start += i + 1;
            if !each(&line, i as u64 + 1) {
                return Ok(());
            }
        }
        carry.drain(..start);
    }
    if !carry.is_empty() {
        // A store returns only complete lines; a remainder is a final line without its newline.
        each(&String::from_utf8_lossy(&carry), carry.len() as u64);
    }
    Ok(())
}

/// Feeds the log's final line without a newline, if there is one, to `each` (after
/// [`for_each_line`] has fed every complete line): a whole record that lacks only its newline
/// is still a record; anything else there reads as a torn tail.
async fn feed_tail(store: &dyn StateStore, mut each: impl FnMut(&str, u64) -> bool) -> Result<(), StateError> {
    if let Some((_, tail)) = store.log_tail().await? {
        each(&String::from_utf8_lossy(&tail), tail.len() as u64);
    }
    Ok(())
}

/// Checks the whole log's chain, reading it in pages. With `expect`, also checks that the log
/// reaches that head: the returned [`HeadCheck`] says whether it ends early or differs.
pub async fn verify(
    store: &dyn StateStore,
    expect: Option<&ChainHead>,
) -> Result<(VerifyReport, HeadCheck), StateError> {
    let mut v = Verifier::new();
    let mut at_expected: Option<String> = None;
    let mut each = |line: &str, _| match v.line(line) {
        Ok(Some(r)) => {
            if expect.is_some_and(|e| e.records == r.seq) {
                at_expected = Some(r.hash);
            }
            true
        }
        Ok(None) => true,
        Err(()) => false,
    };
    for_each_line(store, 0, &mut each).await?;
    feed_tail(store, &mut each).await?;
    let report = v.finish();
    let check = match expect {
        None => HeadCheck::NotAsked,
        Some(e) if e.records == 0 => HeadCheck::Reached,
        Some(e) => match at_expected {
            Some(h) if h == e.hash => HeadCheck::Reached,
            Some(h) => HeadCheck::Differs { found: h },
            None => HeadCheck::EndsBefore { records: report.records as u64 },
        },
    };
    Ok((report, check))
}

/// Checks the whole log's chain, and that one of its records has the hash `hash` (a head
/// printed by an earlier apply, whose record count is not known): [`HeadCheck::Reached`] when
/// one has, [`HeadCheck::Missing`] when none has (records were cut off or rewritten).
pub async fn verify_hash(store: &dyn StateStore, hash: &str) -> Result<(VerifyReport, HeadCheck), StateError> {
    let mut v = Verifier::new();
    let mut found = hash == audit::GENESIS;
    let mut each = |line: &str, _| match v.line(line) {
        Ok(Some(r)) => {
            found |= r.hash == hash;
            true
        }
        Ok(None) => true,
        Err(()) => false,
    };
    for_each_line(store, 0, &mut each).await?;
    feed_tail(store, &mut each).await?;
    let report = v.finish();
    Ok((report, if found { HeadCheck::Reached } else { HeadCheck::Missing }))
}

/// Whether a log reaches an expected head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadCheck {
    NotAsked,
    /// The record numbered as the head has the head's hash.
    Reached,
    /// The log ends before the head's record: records were cut off.
    EndsBefore {
        records: u64,
    },
    /// The record numbered as the head has another hash: the log was rewritten.
    Differs {
        found: String,
    },
    /// No record has the head's hash: the log ends before it, or was rewritten.
    Missing,
}

/// Every intact record of the log, oldest first (reading stops at the first damaged line); a
/// final record that lacks only its newline is included.
pub async fn records(store: &dyn StateStore) -> Result<Vec<Record>, StateError> {
    let mut v = Verifier::new();
    let mut out = Vec::new();
    let mut each = |line: &str, _| match v.line(line) {
        Ok(Some(r)) => {
            out.push(r);
            true
        }
        Ok(None) => true,
        Err(()) => false,
    };
    for_each_line(store, 0, &mut each).await?;
    feed_tail(store, &mut each).await?;
    Ok(out)
}

/// An audit log open for appending.
#[derive(Debug)]
pub struct AuditTrail {
    store: Arc<dyn StateStore>,
    /// The log's length in bytes, up to the end of the last record this trail knows.
    len: u64,
    head: ChainHead,
    /// What opening the log repaired at its end, if anything.
    repair: Option<TailRepair>,
}

/// A final line without its newline, repaired when the log was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailRepair {
    /// The line was a whole record continuing the chain, missing only its newline: the newline
    /// was added and nothing was lost.
    Terminated { location: String, seq: u64 },
    /// The line was no record (a write interrupted by a crash or a full disk, never
    /// acknowledged): it was removed, and the removal recorded as record `seq`.
    Removed { location: String, bytes: usize, hash: String, seq: u64 },
}

impl std::fmt::Display for TailRepair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TailRepair::Terminated { location, seq } => write!(
                f,
                "the audit log at {location} ended in record {seq} without its newline: the newline was added, \
                 nothing was lost"
            ),
            TailRepair::Removed { location, bytes, hash, seq } => write!(
                f,
                "the audit log at {location} ended in an interrupted write ({bytes} bytes without a newline that \
                 are no record, {hash}): they were removed, and the removal is recorded as record {seq}"
            ),
        }
    }
}

impl AuditTrail {
    /// Reads and verifies the whole log; a damaged log is refused. A final line without its
    /// newline is repaired only where that is provably safe: a whole record that continues the
    /// chain gets its newline; a line that is no record at all (a torn write) is removed, and
    /// the removal recorded in the log with the removed bytes' length and SHA-256. A final line
    /// that is a record but does not continue the chain is damage, and refused. See
    /// [`AuditTrail::repair`].
    pub async fn open(store: Arc<dyn StateStore>) -> Result<AuditTrail, StateError> {
        let mut v = Verifier::new();
        let mut len = 0u64;
        for_each_line(&*store, 0, |line, bytes| {
            let ok = v.line(line).is_ok();
            if ok {
                len += bytes;
            }
            ok
        })
        .await?;
        let damaged = |store: &Arc<dyn StateStore>, p: &audit::Problem| StateError::Damaged {
            what: format!("the audit log at {}", store.location()),
            line: p.line,
            message: p.message.clone(),
        };
        // A final line without its newline (read apart: `log_read` stops before it).
        let tail = match store.log_tail().await? {
            Some((at, tail)) if at == len => {
                let record = v.line(&String::from_utf8_lossy(&tail)).ok().flatten();
                Some((at, tail, record))
            }
            _ => None,
        };
        let report = v.finish();
        if let Some(p) = report.problems.first() {
            return Err(damaged(&store, p));
        }
        let head = match report.head() {
            Some((seq, hash)) => ChainHead { records: seq, hash: hash.to_string() },
            None => ChainHead::empty(),
        };
        let mut trail = AuditTrail { store, len, head, repair: None };
        match tail {
            None => {}
            Some((at, tail, Some(record))) => {
                let mut whole = tail.clone();
                whole.push(b'\n');
                trail.len = trail.store.log_replace_tail(at, &tail, &whole).await?;
                trail.repair = Some(TailRepair::Terminated { location: trail.store.log_location(), seq: record.seq });
            }
            Some((at, tail, None)) => {
                let hash = crate::model::digest_bytes(&tail);
                let entry = Entry {
                    time: chrono::Utc::now(),
                    actor: audit::actor(),
                    commit: None,
                    plan_hash: String::new(),
                    address: "audit.log".into(),
                    action: "repair".into(),
                    outcome: audit::Outcome::Applied,
                    error: None,
                    detail: Some(format!(
                        "removed an interrupted write after record {}: {} bytes without a newline, {hash}",
                        trail.head.records,
                        tail.len()
                    )),
                    reason: None,
                    provenance: None,
                    approved_by: Vec::new(),
                };
                let (records, bytes) = trail.seal(&[entry])?;
                trail.len = trail.store.log_replace_tail(at, &tail, &bytes).await?;
                let record = records.last().expect("one record");
                trail.head = ChainHead { records: record.seq, hash: record.hash.clone() };
                trail.repair = Some(TailRepair::Removed {
                    location: trail.store.log_location(),
                    bytes: tail.len(),
                    hash,
                    seq: record.seq,
                });
            }
        }
        Ok(trail)
    }

    /// What opening the log repaired at its end, if anything: to be said to whoever runs it.
    pub fn repair(&self) -> Option<&TailRepair> {
        self.repair.as_ref()
    }

    /// The chain's head as this trail last saw it.
    pub fn head(&self) -> &ChainHead {
        &self.head
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Appends one record.
    pub async fn append(&mut self, entry: Entry) -> Result<Record, StateError> {
        let mut records = self.append_all(vec![entry]).await?;
        Ok(records.pop().expect("one record"))
    }

    /// Appends records, chained after the current head. If another writer appended since this
    /// trail last read the log, their records are read and checked, and these are chained after
    /// them.
    pub async fn append_all(&mut self, entries: Vec<Entry>) -> Result<Vec<Record>, StateError> {
        let mut pending = entries;
        let mut written = Vec::with_capacity(pending.len());
        let mut conflicts = 0;
        while !pending.is_empty() {
            let (records, bytes) = self.seal(&pending)?;
            let n = records.len();
            match append_exactly_once(&*self.store, self.len, &bytes).await {
                Ok(new_len) => {
                    self.len = new_len;
                    let last = records.last().expect("at least one record");
                    self.head = ChainHead { records: last.seq, hash: last.hash.clone() };
                    pending.drain(..n);
                    written.extend(records);
                }
                Err(e) if e.is_conflict() && conflicts < CONFLICT_RETRIES => {
                    conflicts += 1;
                    self.catch_up().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Chains as many of `entries` as fit in one block; returns them and their bytes.
    fn seal(&self, entries: &[Entry]) -> Result<(Vec<Record>, Vec<u8>), StateError> {
        let mut bytes = Vec::new();
        let mut records = Vec::new();
        let (mut seq, mut prev) = (self.head.records, self.head.hash.clone());
        for entry in entries {
            seq += 1;
            let record = audit::seal(seq, entry.clone(), prev);
            let mut line = record.line().into_bytes();
            line.push(b'\n');
            if bytes.len() + line.len() > MAX_BLOCK {
                if records.is_empty() {
                    return Err(StateError::TooLarge {
                        what: format!("the audit record for {}", entry.address),
                        message: format!("it takes {} bytes; at most {MAX_BLOCK} fit in one append", line.len()),
                    });
                }
                break;
            }
            bytes.extend_from_slice(&line);
            prev = record.hash.clone();
            records.push(record);
        }
        Ok((records, bytes))
    }

    /// Reads what other writers appended after this trail's position and checks that it
    /// continues the chain.
    async fn catch_up(&mut self) -> Result<(), StateError> {
        let mut v = Verifier::resume(self.head.records, &self.head.hash);
        let mut added = 0u64;
        for_each_line(&*self.store, self.len, |line, bytes| {
            let ok = v.line(line).is_ok();
            if ok {
                added += bytes;
            }
            ok
        })
        .await?;
        let report = v.finish();
        if let Some(p) = report.problems.first() {
            return Err(StateError::Damaged {
                what: format!("the audit log at {} (records appended by another writer)", self.store.location()),
                line: p.line,
                message: p.message.clone(),
            });
        }
        if let Some((seq, hash)) = report.head() {
            self.head = ChainHead { records: seq, hash: hash.to_string() };
        }
        self.len += added;
        Ok(())
    }
}

/// Appends `bytes` at `at` once: when the outcome of an attempt is unknown, or the log moved,
/// reads the log at `at` to learn whether these very bytes landed before trying again.
/// [`StateError::Conflict`] when other bytes are there.
pub async fn append_exactly_once(store: &dyn StateStore, at: u64, bytes: &[u8]) -> Result<u64, StateError> {
    let mut tries = 0u32;
    loop {
        let err = match store.log_append(at, bytes).await {
            Ok(len) => return Ok(len),
            Err(e) if e.is_conflict() || e.is_outcome_unknown() => e,
            Err(e) => return Err(e),
        };
        // Did these bytes land? Reading back is itself retried while its answers are lost.
        let found = loop {
            match store.log_read(at, bytes.len() as u64).await {
                Ok(found) => break found,
                Err(e) if e.is_outcome_unknown() && tries < UNKNOWN_RETRIES => {
                    tries += 1;
                    backoff(tries).await;
                }
                Err(e) => return Err(e),
            }
        };
        if found == bytes {
            tracing::debug!(at, len = bytes.len(), "an append whose answer was lost had landed");
            return Ok(at + bytes.len() as u64);
        }
        if !found.is_empty() {
            return Err(StateError::Conflict { what: format!("the audit log at {}", store.location()) });
        }
        // Nothing at `at`. After a refusal because the log moved, that means the log is now
        // shorter than it was read: say so rather than write into a gap.
        if err.is_conflict() {
            return Err(StateError::Damaged {
                what: format!("the audit log at {}", store.location()),
                line: 0,
                message: format!("it is shorter than the {at} bytes it held when read"),
            });
        }
        if tries >= UNKNOWN_RETRIES {
            return Err(err);
        }
        tries += 1;
        backoff(tries).await;
    }
}
