//! The `local` state backend: today's files beside the configuration, for the quick start and
//! for machines that keep their disk.
//!
//! Layout, in the folder of the audit log (`.keyward/` by default):
//! - the audit log itself (`audit.jsonl`), the same file `audit::AuditLog` writes and
//!   `keyward audit verify` reads;
//! - `applied.json`, `audit-head.json`, `undelivered.json`: the documents (`undelivered.json`
//!   is the file `credential::state` has always used);
//! - `state.lock`: the run lock, an operating-system lock on the file, held for as long as the
//!   holder runs and freed by the kernel when it dies; the file holds the holder's description;
//! - `documents.lock`: held for the moment a document is compared and replaced.
//!
//! Guarantees: an append takes the log's exclusive lock (the one `AuditLog` holds), checks that
//! the log is as long as the caller read, cuts off a final line torn by a crash (never
//! acknowledged, so never part of the log), writes the records with one write and fsyncs them.
//! The audit trail looks at such a line first ([`StateStore::log_tail`]) and repairs it through
//! [`StateStore::log_replace_tail`], under the same lock, only if it is still exactly the line it
//! looked at.
//! A document is replaced by writing a temporary file with an unpredictable name (mode 0600),
//! fsyncing it, renaming it over the old one and fsyncing the folder, so a crash leaves the old
//! document or the new one. A document's version is the digest of its content. Every file is
//! opened in a folder reached from the configuration folder without following a symbolic link
//! (see [`crate::atomic::Dir`]): a link planted there is refused, naming it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Doc, DocName, Expect, LockHolder, LockId, LockStatus, StateError, StateStore, TryLock, Version};
use crate::atomic::{Dir, Open};
use crate::model::digest_bytes;

/// How long an append or a document write waits for another process's short hold of a file
/// lock (an `AuditLog` held by an apply of an older keyward holds the log's lock for the whole
/// apply).
const FILE_LOCK_WAIT: Duration = Duration::from_secs(30);

/// The state in a folder on this machine.
#[derive(Debug)]
pub struct LocalStore {
    /// The configuration folder, and the state folder relative to it.
    root: PathBuf,
    rel: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    /// Locks this process holds, by id, with their open lock file (closing it frees the lock).
    held: Mutex<HashMap<LockId, (File, LockHolder)>>,
}

impl LocalStore {
    /// The state of the configuration at `root` whose audit log is `audit_path` (relative to
    /// `root`): the documents and the lock live beside the log.
    pub fn new(root: &Path, audit_path: &Path) -> LocalStore {
        let log = root.join(audit_path);
        let dir = log.parent().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
        let rel = audit_path.parent().map(Path::to_path_buf).unwrap_or_default();
        LocalStore { root: root.to_path_buf(), rel, dir, log, held: Mutex::new(HashMap::new()) }
    }

    /// The audit log's path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The folder holding the documents and the lock.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> StateError {
        let path = path.to_path_buf();
        move |source| StateError::Io { path: path.clone(), source }
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("state.lock")
    }

    fn doc_path(&self, name: DocName) -> PathBuf {
        self.dir.join(name.file_name())
    }

    /// The state folder, reached without following a symbolic link below the configuration
    /// folder; created when `create`.
    fn folder(&self, create: bool) -> std::io::Result<Dir> {
        Dir::below(&self.root, &self.rel, create.then_some(0o777))
    }

    /// The file `name` in the state folder (created with it for [`Open::Create`] and
    /// [`Open::Append`]).
    fn open(&self, name: &Path, how: Open) -> std::io::Result<File> {
        let name = name.file_name().unwrap_or(OsStr::new(""));
        self.folder(matches!(how, Open::Create | Open::Append))?.open_file(name, how)
    }
}

/// Takes `file`'s exclusive lock, waiting up to `wait` for another holder.
async fn lock_exclusive(file: &File, path: &Path, wait: Duration) -> Result<(), StateError> {
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(StateError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        format!("still locked by another process after {}s", wait.as_secs()),
                    ),
                });
            }
            Err(TryLockError::Error(source)) => return Err(StateError::Io { path: path.to_path_buf(), source }),
        }
    }
}

/// The length of `file` up to the end of its last complete line: a final line without a newline
/// is a write a crash interrupted.
fn committed_len(mut file: &File) -> std::io::Result<u64> {
    let mut end = file.metadata()?.len();
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The longest final line without a newline that [`LocalStore::log_tail`] reads: no record
/// is this long (an append takes at most 4 MiB).
const MAX_TAIL: u64 = 8 * 1024 * 1024;

/// The final line of `file` when it lacks its newline, and where it starts.
fn read_tail(mut file: &File) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    let full = file.metadata()?.len();
    let start = committed_len(file)?;
    if start == full {
        return Ok(None);
    }
    if full - start > MAX_TAIL {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("its final {} bytes have no newline: no record is that long", full - start),
        ));
    }
    let mut tail = vec![0u8; (full - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut tail)?;
    Ok(Some((start, tail)))
}

fn read_holder(mut file: &File) -> Option<LockHolder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[async_trait]
impl StateStore for LocalStore {
    fn location(&self) -> String {
        format!("local {}", self.dir.display())
    }

    fn log_location(&self) -> String {
        self.log.display().to_string()
    }

    async fn log_torn_tail(&self) -> Result<bool, StateError> {
        match File::open(&self.log) {
            Ok(f) => {
                let io = self.io(&self.log);
                let full = f.metadata().map_err(&io)?.len();
                Ok(committed_len(&f).map_err(&io)? < full)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io(&self.log)(e)),
        }
    }

    async fn log_tail(&self) -> Result<Option<(u64, Vec<u8>)>, StateError> {
        let io = self.io(&self.log);
        let file = match self.open(&self.log, Open::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        read_tail(&file).map_err(&io)
    }

    async fn log_replace_tail(&self, at: u64, tail: &[u8], bytes: &[u8]) -> Result<u64, StateError> {
        if bytes.last() != Some(&b'\n') {
            return Err(StateError::Config("a replacement must end with a newline".into()));
        }
        let io = self.io(&self.log);
        let mut file = self.open(&self.log, Open::Append).map_err(&io)?;
        lock_exclusive(&file, &self.log, FILE_LOCK_WAIT).await?;
        let found = read_tail(&file).map_err(&io)?;
        if found.as_ref().is_none_or(|(start, t)| *start != at || t.as_slice() != tail) {
            return Err(StateError::Conflict { what: format!("the audit log {}", self.log.display()) });
        }
        match bytes.strip_prefix(tail) {
            // The line was whole but for its end: add what is missing, lose nothing.
            Some(rest) => file.write_all(rest).map_err(&io)?,
            None => {
                file.set_len(at).map_err(&io)?;
                file.write_all(bytes).map_err(&io)?;
            }
        }
        file.sync_data().map_err(&io)?;
        Ok(at + bytes.len() as u64)
    }

    async fn log_len(&self) -> Result<u64, StateError> {
        match self.open(&self.log, Open::Read) {
            Ok(f) => committed_len(&f).map_err(self.io(&self.log)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(self.io(&self.log)(e)),
        }
    }

    async fn log_read(&self, from: u64, max: u64) -> Result<Vec<u8>, StateError> {
        let io = self.io(&self.log);
        let mut file = match self.open(&self.log, Open::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let end = committed_len(&file).map_err(&io)?;
        if from >= end {
            return Ok(Vec::new());
        }
        let n = (end - from).min(max);
        let mut buf = vec![0u8; usize::try_from(n).map_err(|_| StateError::Config("read too large".into()))?];
        file.seek(SeekFrom::Start(from)).map_err(&io)?;
        file.read_exact(&mut buf).map_err(&io)?;
        Ok(buf)
    }

    async fn log_append(&self, at: u64, bytes: &[u8]) -> Result<u64, StateError> {
        if bytes.last() != Some(&b'\n') {
            return Err(StateError::Config("an append must end with a newline".into()));
        }
        let io = self.io(&self.log);
        let mut file = self.open(&self.log, Open::Append).map_err(&io)?;
        lock_exclusive(&file, &self.log, FILE_LOCK_WAIT).await?;
        let committed = committed_len(&file).map_err(&io)?;
        if committed != at {
            return Err(StateError::Conflict { what: format!("the audit log {}", self.log.display()) });
        }
        if file.metadata().map_err(&io)?.len() > committed {
            // A final line torn by a crash: never acknowledged, so not part of the log.
            file.set_len(committed).map_err(&io)?;
        }
        file.write_all(bytes).map_err(&io)?;
        file.sync_data().map_err(&io)?;
        Ok(at + bytes.len() as u64)
    }

    async fn lock_try(&self, holder: &LockHolder, _lease: Duration) -> Result<TryLock, StateError> {
        let path = self.lock_path();
        let io = self.io(&path);
        let mut file = self.open(&path, Open::Create).map_err(&io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(TryLock::Held(read_holder(&file))),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut text = serde_json::to_vec_pretty(holder).expect("holders serialize");
        text.push(b'\n');
        file.set_len(0).map_err(&io)?;
        file.seek(SeekFrom::Start(0)).map_err(&io)?;
        file.write_all(&text).map_err(&io)?;
        self.held.lock().expect("held locks").insert(holder.id.clone(), (file, holder.clone()));
        Ok(TryLock::Acquired)
    }

    async fn lock_renew(&self, id: &LockId, _lease: Duration) -> Result<(), StateError> {
        if self.held.lock().expect("held locks").contains_key(id) {
            return Ok(());
        }
        Err(StateError::LockLost {
            location: self.location(),
            id: id.clone(),
            message: "this process does not hold it".into(),
        })
    }

    async fn lock_release(&self, id: &LockId) -> Result<(), StateError> {
        let held = self.held.lock().expect("held locks").remove(id);
        if let Some((file, _)) = held {
            // The description goes first, so no one reads a released holder as current.
            let _ = file.set_len(0);
            file.unlock().map_err(self.io(&self.lock_path()))?;
        }
        Ok(())
    }

    async fn lock_status(&self) -> Result<LockStatus, StateError> {
        let path = self.lock_path();
        let io = self.io(&path);
        let file = match self.open(&path, Open::ReadWrite) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockStatus::Free),
            Err(e) => return Err(io(e)),
        };
        match file.try_lock_shared() {
            Ok(()) => {
                file.unlock().map_err(&io)?;
                Ok(LockStatus::Free)
            }
            Err(TryLockError::WouldBlock) => Ok(LockStatus::Held(read_holder(&file))),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    async fn lock_break(&self, id: &LockId) -> Result<LockHolder, StateError> {
        let mine = self.held.lock().expect("held locks").get(id).map(|(_, h)| h.clone());
        if let Some(holder) = mine {
            self.lock_release(id).await?;
            return Ok(holder);
        }
        match self.lock_status().await? {
            LockStatus::Held(Some(h)) if &h.id == id => Err(StateError::Unbreakable {
                location: self.location(),
                message: format!(
                    "the lock {id} is held by a running process ({h}); a local lock is freed by the operating \
                     system as soon as its process ends: stop that process instead"
                ),
            }),
            LockStatus::Held(holder) => {
                Err(StateError::NotLocked { location: self.location(), id: id.clone(), holder: holder.map(Box::new) })
            }
            LockStatus::Free => Err(StateError::NotLocked { location: self.location(), id: id.clone(), holder: None }),
        }
    }

    async fn doc_get(&self, name: DocName) -> Result<Option<Doc>, StateError> {
        let path = self.doc_path(name);
        let read = || -> std::io::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            self.open(&path, Open::Read)?.read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        match read() {
            Ok(bytes) => {
                let version = Version(digest_bytes(&bytes));
                Ok(Some(Doc { bytes, version }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path)(e)),
        }
    }

    async fn doc_put(&self, name: DocName, bytes: &[u8], expect: &Expect) -> Result<Version, StateError> {
        let lock_path = self.dir.join("documents.lock");
        let lock = self.open(&lock_path, Open::Create).map_err(self.io(&lock_path))?;
        lock_exclusive(&lock, &lock_path, FILE_LOCK_WAIT).await?;
        let current = self.doc_get(name).await?;
        let matches = match (expect, &current) {
            (Expect::Absent, None) => true,
            (Expect::Version(v), Some(doc)) => &doc.version == v,
            _ => false,
        };
        if !matches {
            return Err(StateError::Conflict { what: format!("{}", self.doc_path(name).display()) });
        }
        let path = self.doc_path(name);
        let file_name = path.file_name().unwrap_or(OsStr::new(""));
        self.folder(true)
            .and_then(|d| d.replace_with(file_name, crate::atomic::Access::Private, true, |w| w.write_all(bytes)))
            .map_err(self.io(&path))?;
        Ok(Version(digest_bytes(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The state folder a symbolic link planted below the configuration folder after
    /// validation: the audit log, the run lock and the documents are neither written nor read
    /// through it, and the outside stays empty.
    #[cfg(unix)]
    #[tokio::test]
    async fn nothing_is_written_through_a_planted_symbolic_link() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join(".keyward")).unwrap();
        let store = LocalStore::new(root.path(), Path::new(".keyward/audit.jsonl"));
        let link = |e: StateError| assert!(format!("{e:?}").contains("is a symbolic link"), "{e:?}");
        link(store.log_append(0, b"{}\n").await.unwrap_err());
        link(store.log_len().await.unwrap_err());
        link(store.doc_put(DocName::Applied, b"{}", &Expect::Absent).await.unwrap_err());
        link(store.doc_get(DocName::Applied).await.unwrap_err());
        link(store.lock_try(&LockHolder::current(None).unwrap(), Duration::from_secs(60)).await.unwrap_err());
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);

        // The same store in a real folder works.
        std::fs::remove_file(root.path().join(".keyward")).unwrap();
        assert_eq!(store.log_append(0, b"{}\n").await.unwrap(), 3);
        store.doc_put(DocName::Applied, b"{}", &Expect::Absent).await.unwrap();
        assert_eq!(store.doc_get(DocName::Applied).await.unwrap().unwrap().bytes, b"{}");
    }

    /// A final line without its newline is read apart, and replaced only while it is still
    /// exactly the line read: whole (only the missing newline is written) or by other bytes.
    #[tokio::test]
    async fn a_final_line_is_replaced_only_while_it_is_the_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path(), Path::new("audit.jsonl"));
        let path = dir.path().join("audit.jsonl");
        assert_eq!(store.log_tail().await.unwrap(), None, "no log");
        fs::write(&path, b"a\nbc").unwrap();
        assert_eq!(store.log_tail().await.unwrap(), Some((2, b"bc".to_vec())));
        assert!(store.log_replace_tail(2, b"bX", b"bX\n").await.unwrap_err().is_conflict());
        assert!(store.log_replace_tail(1, b"bc", b"bc\n").await.unwrap_err().is_conflict());
        assert_eq!(store.log_replace_tail(2, b"bc", b"bc\n").await.unwrap(), 5);
        assert_eq!(fs::read(&path).unwrap(), b"a\nbc\n");
        assert_eq!(store.log_tail().await.unwrap(), None);
        assert!(store.log_replace_tail(5, b"", b"x\n").await.unwrap_err().is_conflict(), "no final line now");
        fs::write(&path, b"a\n{\"se").unwrap();
        assert_eq!(store.log_replace_tail(2, b"{\"se", b"rec\n").await.unwrap(), 6);
        assert_eq!(fs::read(&path).unwrap(), b"a\nrec\n");
    }

    #[test]
    fn the_committed_length_ends_at_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        for (content, want) in [(&b""[..], 0), (b"a\n", 2), (b"a\nbc", 2), (b"abc", 0), (b"a\nb\n", 4)] {
            fs::write(&p, content).unwrap();
            assert_eq!(committed_len(&File::open(&p).unwrap()).unwrap(), want, "{content:?}");
        }
        // Across the read buffer's boundary.
        let mut big = vec![b'x'; 200 * 1024];
        big[10] = b'\n';
        fs::write(&p, &big).unwrap();
        assert_eq!(committed_len(&File::open(&p).unwrap()).unwrap(), 11);
    }
}
