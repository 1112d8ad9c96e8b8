//! The audit trail: an append-only JSON-lines log, each record chained to the one before by
//! SHA-256.
//!
//! Guarantees: a record is written with one `write` and fsynced before `append` returns; the
//! log is locked exclusively while a process appends; `verify` finds any edited, removed,
//! inserted or reordered record and names the line. A final line torn by a crash is not a
//! record (it was never acknowledged): `verify` reports it apart from tampering, and the next
//! append cuts it off. Records never hold secrets: only addresses, actions and outcomes.

pub mod provenance;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Timestamp, digest_bytes};

pub use provenance::Provenance;

/// The `prev` of the first record.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// What happened to one attempted operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Failed,
    /// Not attempted because the live object changed since the plan, or a dependency failed.
    Skipped,
    /// About to be sent: written and fsynced before the operation, whose outcome follows in a
    /// record of its own. An attempt no outcome follows (see [`paired`]) was sent, or was
    /// about to be, when the run stopped: its outcome is unknown.
    Attempting,
}

impl Outcome {
    /// How the outcome is shown: an attempt left in [`paired`]'s result is `unknown`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Attempting => "unknown",
        }
    }
}

/// The records to show, attempts paired with their outcomes: an attempt whose outcome a later
/// record of the same plan gives (same address and action) is left out; an attempt no outcome
/// follows is kept, and reads as "outcome unknown".
pub fn paired(records: &[Record]) -> Vec<Record> {
    let key = |r: &Record| (r.entry.plan_hash.clone(), r.entry.address.clone(), r.entry.action.clone());
    let mut open: std::collections::HashMap<(String, String, String), Vec<usize>> = Default::default();
    let mut resolved = vec![false; records.len()];
    for (i, r) in records.iter().enumerate() {
        if r.entry.outcome == Outcome::Attempting {
            open.entry(key(r)).or_default().push(i);
        } else if let Some(first) = open.get_mut(&key(r)).filter(|v| !v.is_empty()).map(|v| v.remove(0)) {
            resolved[first] = true;
        }
    }
    records.iter().zip(resolved).filter(|(_, done)| !done).map(|(r, _)| r.clone()).collect()
}

/// The content of a record, before chaining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub time: Timestamp,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub plan_hash: String,
    pub address: String,
    pub action: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What an applied operation made, where that matters later: for a new credential, its
    /// name, id and sink (never its material). Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Why the plan made the change: `config`, `drift`, `expiry` or `policy`. Absent in older
    /// records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the change came from: pull request, merge commit, CI run (see [`provenance`]).
    /// Absent in older records, and when nothing is known beyond the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// Who approved the change this operation carries out (Users by name, or the login given
    /// when no User has it), where the approvals were given to apply. Absent in older records,
    /// and when nobody's approval was given, so older records hash as they did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
}

/// The hash scheme keyward writes records with: version 2, the SHA-256 of the record's
/// canonical form (see [`Record::line`]).
pub const HASH_VERSION: u32 = 2;

/// A record as stored: the entry, its sequence number and the chain.
///
/// Hash schemes (`v`):
/// - 1 (no `v` field; records written before keyward 0.2): the SHA-256 of the record's known
///   fields serialized in their declaration order, without `hash`. Fields it does not know are
///   not covered, so a version-1 record is checked by that rule only.
/// - 2: the SHA-256 of the record's canonical form without `hash` (`v` included), and the line
///   must be exactly the canonical form of the whole record: JSON without whitespace, object
///   keys sorted by their bytes at every level, strings escaped as keyward escapes them. An
///   added, removed, changed or reordered field, or re-encoded text, fails verification.
///
/// Once a chain holds a version-2 record, every later record must be version 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The hash scheme (absent: 1).
    #[serde(rename = "v", default = "hash_version_1", skip_serializing_if = "is_hash_version_1")]
    pub version: u32,
    pub seq: u64,
    #[serde(flatten)]
    pub entry: Entry,
    pub prev: String,
    pub hash: String,
}

fn hash_version_1() -> u32 {
    1
}

fn is_hash_version_1(v: &u32) -> bool {
    *v == 1
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Unhashed<'a> {
    seq: u64,
    #[serde(flatten)]
    entry: &'a Entry,
    prev: &'a str,
}

/// The version-1 hash: the known fields in declaration order, without `hash`.
fn hash_v1(seq: u64, entry: &Entry, prev: &str) -> String {
    let body = serde_json::to_vec(&Unhashed { seq, entry, prev }).expect("records serialize");
    digest_bytes(&body)
}

/// `value` with the keys of every object sorted by their bytes.
fn canonical(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, canonical(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

impl Record {
    /// The record as one line of the log (without its newline). For version 2, its canonical
    /// form: JSON without whitespace, keys sorted by their bytes at every level.
    pub fn line(&self) -> String {
        let value = serde_json::to_value(self).expect("records serialize");
        if self.version == 1 { value.to_string() } else { canonical(value).to_string() }
    }

    /// The hash the record's content and scheme call for.
    fn expected_hash(&self) -> String {
        if self.version == 1 {
            return hash_v1(self.seq, &self.entry, &self.prev);
        }
        let mut value = serde_json::to_value(self).expect("records serialize");
        if let serde_json::Value::Object(map) = &mut value {
            map.remove("hash");
        }
        digest_bytes(canonical(value).to_string().as_bytes())
    }
}

/// The record that follows the record numbered `seq - 1` whose hash is `prev` (or
/// [`GENESIS`] for the first): `entry` numbered and chained, under the current hash scheme.
pub fn seal(seq: u64, entry: Entry, prev: String) -> Record {
    let mut record = Record { version: HASH_VERSION, seq, entry, prev, hash: String::new() };
    record.hash = record.expected_hash();
    record
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("audit log {path} is damaged at line {line}: {message}; run `keyward audit verify`")]
    Damaged { path: PathBuf, line: usize, message: String },
}

/// An open, locked audit log.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    seq: u64,
    last: String,
}

impl AuditLog {
    /// Opens (creating) the log at `path` and locks it for appending.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io { path: path.to_path_buf(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        file.lock().map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let report = verify_text(&text);
        if let Some(problem) = report.problems.first() {
            return Err(AuditError::Damaged {
                path: path.to_path_buf(),
                line: problem.line,
                message: problem.message.clone(),
            });
        }
        if let Some(torn_at) = report.torn_tail_offset {
            // Cut off a record whose write never completed.
            file.set_len(torn_at as u64).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
        }
        let (seq, last) = report.last.unwrap_or((0, GENESIS.to_string()));
        Ok(AuditLog { path: path.to_path_buf(), file, seq, last })
    }

    /// Appends one record and fsyncs it.
    pub fn append(&mut self, entry: Entry) -> Result<Record, AuditError> {
        Ok(self.append_all(vec![entry])?.pop().expect("one record"))
    }

    /// Appends records with one write and one fsync (for the outcomes of one apply batch).
    pub fn append_all(&mut self, entries: Vec<Entry>) -> Result<Vec<Record>, AuditError> {
        let mut buf = Vec::new();
        let mut records = Vec::with_capacity(entries.len());
        let (mut seq, mut last) = (self.seq, self.last.clone());
        for entry in entries {
            seq += 1;
            let record = seal(seq, entry, last);
            buf.extend_from_slice(record.line().as_bytes());
            buf.push(b'\n');
            last = record.hash.clone();
            records.push(record);
        }
        let io = |source| AuditError::Io { path: self.path.clone(), source };
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.seq = seq;
        self.last = last;
        Ok(records)
    }
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line of the log.
    pub line: usize,
    pub message: String,
}

/// The result of checking a log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub records: usize,
    pub problems: Vec<Problem>,
    /// A final line without a newline that is not a record: a write interrupted by a crash.
    pub torn_tail: bool,
    #[serde(skip)]
    torn_tail_offset: Option<usize>,
    #[serde(skip)]
    last: Option<(u64, String)>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// The sequence number and hash of the last intact record, if any.
    pub fn head(&self) -> Option<(u64, &str)> {
        self.last.as_ref().map(|(seq, hash)| (*seq, hash.as_str()))
    }
}

/// Checks the hash chain of the log at `path`. A missing log is intact and empty.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            Ok(verify_text(&text))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(VerifyReport::default()),
        Err(source) => Err(AuditError::Io { path: path.to_path_buf(), source }),
    }
}

fn verify_text(text: &str) -> VerifyReport {
    let mut v = Verifier::new();
    for raw in text.split_inclusive('\n') {
        if v.line(raw).is_err() {
            break;
        }
    }
    v.finish()
}

/// Checks a log one line at a time, for logs read in pieces (from a remote store, say). Feed
/// it every line in order, each with its newline when it has one; it stops at the first
/// problem, as [`verify`] does.
#[derive(Debug)]
pub struct Verifier {
    report: VerifyReport,
    prev: String,
    expected_seq: u64,
    offset: usize,
    line_no: usize,
    stopped: bool,
    /// The hash scheme of the last record: no later record may use an earlier one.
    hash_version: u32,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Verifier {
            report: VerifyReport::default(),
            prev: GENESIS.to_string(),
            expected_seq: 1,
            offset: 0,
            line_no: 0,
            stopped: false,
            hash_version: 1,
        }
    }

    /// A verifier that continues a chain whose last record is number `records` with hash
    /// `hash` (lines are then counted from the first line fed).
    pub fn resume(records: u64, hash: &str) -> Self {
        Verifier { prev: hash.to_string(), expected_seq: records + 1, ..Verifier::new() }
    }

    /// Checks the next line. `Ok(Some(record))` for an intact record, `Ok(None)` for a line that
    /// is no record and no problem (an unfinished blank line); `Err(())` once a problem or a torn
    /// tail was found: the log is not read further.
    #[allow(clippy::result_unit_err)]
    pub fn line(&mut self, raw: &str) -> Result<Option<Record>, ()> {
        if self.stopped {
            return Err(());
        }
        self.line_no += 1;
        let line_no = self.line_no;
        let start = self.offset;
        self.offset += raw.len();
        let complete = raw.ends_with('\n');
        let line = raw.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            if complete {
                self.report.problems.push(Problem { line: line_no, message: "empty line".into() });
            }
            return Ok(None);
        }
        let record: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(_) if !complete => {
                self.report.torn_tail = true;
                self.report.torn_tail_offset = Some(start);
                self.stopped = true;
                return Err(());
            }
            Err(e) => return self.stop(line_no, format!("not a record: {e}")),
        };
        if record.prev != self.prev {
            let message = if record.seq != self.expected_seq {
                format!(
                    "record {} follows record {}: a record was removed, inserted or moved",
                    record.seq,
                    self.expected_seq - 1
                )
            } else {
                "the chain is broken: the record before this one was changed or removed".into()
            };
            return self.stop(line_no, message);
        }
        if record.seq != self.expected_seq {
            let message = format!("sequence number {} where {} was expected", record.seq, self.expected_seq);
            return self.stop(line_no, message);
        }
        match record.version {
            1 if self.hash_version > 1 => {
                let message =
                    "a record under hash scheme 1 follows records under a later scheme: it was changed".into();
                return self.stop(line_no, message);
            }
            1 => {}
            HASH_VERSION => {
                if record.line() != line {
                    let message = "the record is not in its canonical form: a field was added, removed, reordered \
                                   or re-encoded after it was written"
                        .into();
                    return self.stop(line_no, message);
                }
            }
            v => return self.stop(line_no, format!("hash scheme {v} is unknown to this keyward")),
        }
        if record.expected_hash() != record.hash {
            return self.stop(line_no, "the record was changed after it was written".into());
        }
        self.hash_version = record.version;
        self.prev = record.hash.clone();
        self.expected_seq += 1;
        self.report.records += 1;
        self.report.last = Some((record.seq, record.hash.clone()));
        Ok(Some(record))
    }

    fn stop(&mut self, line: usize, message: String) -> Result<Option<Record>, ()> {
        self.report.problems.push(Problem { line, message });
        self.stopped = true;
        Err(())
    }

    /// The report on every line fed so far.
    pub fn finish(self) -> VerifyReport {
        self.report
    }
}

/// Every intact record of the log, oldest first.
pub fn read(path: &Path) -> Result<Vec<Record>, AuditError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => return Err(AuditError::Io { path: path.to_path_buf(), source }),
    };
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

/// Who is acting: `KEYWARD_ACTOR`, else the CI actor, else the local user (see
/// [`provenance::actor_of`]).
pub fn actor() -> String {
    provenance::actor_of(&std::env::vars().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(address: &str) -> Entry {
        Entry {
            time: chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").unwrap().to_utc(),
            actor: "tester".into(),
            commit: None,
            plan_hash: "sha256:abc".into(),
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

    fn write_log(dir: &Path, n: usize) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 0..n {
            log.append(entry(&format!("t.user.u{i}"))).unwrap();
        }
        path
    }

    #[test]
    fn intact_log_verifies_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 3);
        let report = verify(&path).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.records, 3);
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(log.append(entry("t.user.x")).unwrap().seq, 4);
        assert_eq!(verify(&path).unwrap().records, 4);
    }

    #[test]
    fn detects_edit_removal_and_reorder() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 4);
        let original = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = original.lines().collect();

        fs::write(&path, original.replace("t.user.u1", "t.user.uX")).unwrap();
        let r = verify(&path).unwrap();
        assert_eq!(r.problems[0].line, 2, "{r:?}");

        fs::write(&path, format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3])).unwrap();
        let r = verify(&path).unwrap();
        assert_eq!(r.problems[0].line, 2, "{r:?}");
        assert!(r.problems[0].message.contains("removed"), "{r:?}");

        fs::write(&path, format!("{}\n{}\n{}\n{}\n", lines[0], lines[2], lines[1], lines[3])).unwrap();
        assert_eq!(verify(&path).unwrap().problems[0].line, 2);
    }

    /// A log written before records had `reason` and `provenance` (its hash computed apart, as
    /// the SHA-256 of the record's JSON without `hash`): still intact, still read, and
    /// appended to after.
    #[test]
    fn logs_written_before_provenance_still_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let old = concat!(
            r#"{"seq":1,"time":"2026-11-28T10:00:00Z","actor":"tester","commit":"0123456789abcdef0123456789abcdef01234567","#,
            r#""planHash":"sha256:abc","address":"t.assignment.ann/ap-clerk","action":"assign","outcome":"applied","#,
            r#""prev":"sha256:0000000000000000000000000000000000000000000000000000000000000000","#,
            r#""hash":"sha256:4e3f9019c2a9af78277b28cfa5c04623f2aef60ccb7ce404a13a9ec4bd163088"}"#,
            "\n"
        );
        fs::write(&path, old).unwrap();
        let r = verify(&path).unwrap();
        assert!(r.is_intact() && r.records == 1, "{r:?}");
        let records = read(&path).unwrap();
        assert_eq!(records[0].entry.reason, None);
        assert_eq!(records[0].entry.provenance, None);
        let mut log = AuditLog::open(&path).unwrap();
        let mut e = entry("t.assignment.bob/ap-clerk");
        e.reason = Some("config".into());
        e.provenance = Some(Provenance { pull_request: Some(42), dirty: true, ..Provenance::default() });
        log.append(e.clone()).unwrap();
        drop(log);
        assert!(verify(&path).unwrap().is_intact());
        assert_eq!(read(&path).unwrap()[1].entry, e);
        // The provenance is covered by the chain.
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""provenance":{"dirty":true,"pullRequest":42}"#), "{text}");
        fs::write(&path, text.replace(r#""pullRequest":42"#, r#""pullRequest":43"#)).unwrap();
        assert_eq!(verify(&path).unwrap().problems[0].line, 2);
    }

    /// Records written before `approvedBy` existed still verify, and a log can go on from them.
    #[test]
    fn records_from_before_approvals_still_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // A record as an earlier keyward wrote it, without `approvedBy`: its hash is that of its
        // text without `hash`, as it was then.
        let unhashed = format!(
            r#"{{"seq":1,"time":"2026-11-28T10:00:00Z","actor":"tester","planHash":"sha256:abc","address":"t.user.u0","action":"create","outcome":"applied","prev":"{GENESIS}"}}"#
        );
        let hash = digest_bytes(unhashed.as_bytes());
        let line = format!("{},\"hash\":\"{hash}\"}}", unhashed.trim_end_matches('}'));
        fs::write(&path, format!("{line}\n")).unwrap();
        assert!(verify(&path).unwrap().is_intact());
        let mut log = AuditLog::open(&path).unwrap();
        let mut e = entry("t.assignment.u0/admin");
        e.approved_by = vec!["laura.callahan".into()];
        log.append(e).unwrap();
        let report = verify(&path).unwrap();
        assert!(report.is_intact() && report.records == 2, "{report:?}");
        assert_eq!(read(&path).unwrap()[1].entry.approved_by, ["laura.callahan"]);
    }

    /// Under hash scheme 2 the hash covers the whole record in its canonical form: a field added
    /// (at the top or inside `provenance`), a field changed, keys reordered, whitespace added or
    /// the scheme's `v` removed each fail verification at that line; the untouched log verifies.
    #[test]
    fn the_hash_covers_the_whole_record_in_its_canonical_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 0..3 {
            let mut e = entry(&format!("t.user.u{i}"));
            e.provenance = Some(Provenance { pull_request: Some(7), ..Provenance::default() });
            log.append(e).unwrap();
        }
        drop(log);
        let original = fs::read_to_string(&path).unwrap();
        let lines: Vec<String> = original.lines().map(str::to_string).collect();
        assert!(lines[1].starts_with(r#"{"action":"create","#) && lines[1].contains(r#""v":2"#), "{}", lines[1]);
        assert!(verify(&path).unwrap().is_intact());

        let mut reordered: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&lines[1]).unwrap();
        let seq = reordered.shift_remove("seq").unwrap();
        reordered.insert("seq".into(), seq);
        let edits: Vec<(&str, String)> = vec![
            ("an added field", lines[1].replacen('{', r#"{"approvedByCfo":"yes","#, 1)),
            ("a field added inside provenance", lines[1].replace(r#""pullRequest":7"#, r#""pullRequest":7,"x":1"#)),
            ("a changed field", lines[1].replace("t.user.u1", "t.user.uX")),
            ("reordered keys", serde_json::Value::Object(reordered).to_string()),
            ("added whitespace", lines[1].replace(r#""seq":2"#, r#""seq": 2"#)),
            ("the scheme removed", lines[1].replace(r#","v":2"#, "")),
        ];
        for (what, edited) in edits {
            assert_ne!(edited, lines[1], "{what}: the edit applies");
            fs::write(&path, format!("{}\n{edited}\n{}\n", lines[0], lines[2])).unwrap();
            let r = verify(&path).unwrap();
            assert_eq!(r.problems.first().map(|p| p.line), Some(2), "{what}: {r:?}");
        }
    }

    /// A record under scheme 1 after records under scheme 2 is refused, even with a correct
    /// scheme-1 hash: a chain never goes back to the rule that covers less.
    #[test]
    fn a_chain_never_goes_back_to_the_first_hash_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 1);
        let first = read(&path).unwrap().remove(0);
        let e = entry("t.user.late");
        let old = Record { version: 1, seq: 2, hash: hash_v1(2, &e, &first.hash), entry: e, prev: first.hash };
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        writeln!(f, "{}", old.line()).unwrap();
        drop(f);
        let r = verify(&path).unwrap();
        assert_eq!(r.problems.first().map(|p| p.line), Some(2), "{r:?}");
        assert!(r.problems[0].message.contains("scheme 1"), "{r:?}");
    }

    /// Each attempt is paired with the first outcome of the same plan, address and action that
    /// follows it and left out; an attempt nothing follows is kept (outcome unknown), and so
    /// is one whose outcome belongs to another plan.
    #[test]
    fn attempts_pair_with_their_outcomes_and_one_without_is_unknown() {
        let with = |address: &str, outcome: Outcome, plan: &str| {
            let mut e = entry(address);
            e.outcome = outcome;
            e.plan_hash = plan.into();
            e
        };
        let entries = [
            with("t.user.a", Outcome::Attempting, "p1"),
            with("t.user.b", Outcome::Attempting, "p1"),
            with("t.user.a", Outcome::Applied, "p1"),
            with("t.user.c", Outcome::Attempting, "p1"),
            with("t.user.c", Outcome::Failed, "p2"),
            with("t.user.b", Outcome::Failed, "p1"),
            with("t.user.d", Outcome::Attempting, "p1"),
        ];
        let mut prev = GENESIS.to_string();
        let records: Vec<Record> = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let r = seal(i as u64 + 1, e, prev.clone());
                prev = r.hash.clone();
                r
            })
            .collect();
        let shown: Vec<(u64, &str)> = paired(&records).iter().map(|r| (r.seq, r.entry.outcome.label())).collect();
        assert_eq!(shown, [(3, "applied"), (4, "unknown"), (5, "failed"), (6, "failed"), (7, "unknown")]);
    }

    #[test]
    fn torn_tail_is_not_tampering_and_is_cut_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 2);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":3,\"ti").unwrap();
        drop(f);
        let r = verify(&path).unwrap();
        assert!(r.is_intact() && r.torn_tail && r.records == 2, "{r:?}");
        let mut log = AuditLog::open(&path).unwrap();
        log.append(entry("t.user.z")).unwrap();
        let r = verify(&path).unwrap();
        assert!(r.is_intact() && !r.torn_tail && r.records == 3, "{r:?}");
    }
}
