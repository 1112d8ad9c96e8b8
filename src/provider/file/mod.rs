//! The embedded `file` provider: a JSON document standing in for a live directory, for the
//! quick start, demos and offline tests.
//!
//! Guarantees:
//! - the document is only ever replaced whole: written to a temporary file in the same folder,
//!   fsynced, renamed over the old one, and the folder fsynced, so a reader sees the old or the
//!   new document, never a torn one;
//! - a lock file beside it (`<name>.lock`) is held shared while reading for a plan and
//!   exclusively for the whole of an apply, so two applies never interleave;
//! - a missing document is an empty directory; a malformed one is an error naming the file
//!   and position, never silently replaced.
//!
//! An account with `"readOnly": true` refuses every write: a stand-in for a live system that
//! rejects a change, used to exercise partial failures.

mod document;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

pub use document::{DirectoryFile, Editor, FileAccount, FileBinding, FileCredential, FileServiceAccount};

use super::{Access, ApplyError, Capabilities, Provider, ProviderError, capabilities};
use crate::model::{LiveTarget, ProviderKind, Target};
use crate::plan::{Change, Operation};

pub struct FileProvider {
    target: String,
    path: PathBuf,
    caps: Capabilities,
    access: Access,
    /// Held for the provider's lifetime; dropping it releases the lock. `None` when reading a
    /// directory that was never written.
    _lock: Option<File>,
    doc: Option<Editor>,
}

impl FileProvider {
    pub fn open(target: &Target, path: &Path, access: Access) -> Result<Self, ProviderError> {
        let name = target.name.to_string();
        let io = |source: std::io::Error, p: &Path| ProviderError::Io {
            target: name.clone(),
            path: p.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent()
            && access == Access::Write
            && !parent.as_os_str().is_empty()
        {
            fs::create_dir_all(parent).map_err(|e| io(e, parent))?;
        }
        let lock_path = lock_path(path);
        let lock = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(access == Access::Write)
            .truncate(false)
            .open(&lock_path)
        {
            Ok(f) => Some(f),
            // Reading a directory that was never written: nothing to lock.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && access != Access::Write => None,
            Err(e) => return Err(io(e, &lock_path)),
        };
        let lock = match lock {
            None => None,
            Some(f) => {
                let locked = match access {
                    Access::Read | Access::Review => f.try_lock_shared(),
                    Access::Write => f.try_lock(),
                };
                match locked {
                    Ok(()) => Some(f),
                    Err(fs::TryLockError::WouldBlock) => {
                        return Err(ProviderError::Locked {
                            target: name,
                            message: format!(
                                "{} is locked by another keyward apply; wait for it to finish and run again",
                                path.display()
                            ),
                        });
                    }
                    Err(fs::TryLockError::Error(e)) => return Err(io(e, &lock_path)),
                }
            }
        };
        Ok(FileProvider {
            target: name,
            path: path.to_path_buf(),
            caps: capabilities(ProviderKind::File),
            access,
            _lock: lock,
            doc: None,
        })
    }

    fn load(&self) -> Result<DirectoryFile, ProviderError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ProviderError::Corrupt {
                target: self.target.clone(),
                path: self.path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DirectoryFile::default()),
            Err(source) => {
                Err(ProviderError::Io { target: self.target.clone(), path: self.path.display().to_string(), source })
            }
        }
    }

    /// Replaces the document atomically.
    fn save(&self, doc: &DirectoryFile) -> std::io::Result<()> {
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut tmp = tempfile_in(dir, &self.path)?;
        {
            let mut w = std::io::BufWriter::new(&mut tmp.1);
            serde_json::to_writer_pretty(&mut w, doc).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
            w.flush()?;
        }
        tmp.1.sync_all()?;
        fs::rename(&tmp.0, &self.path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }
}

fn unique() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    t ^ (N.fetch_add(1, Ordering::Relaxed) as u128)
}

fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<(PathBuf, File)> {
    let base = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "directory".into());
    for _ in 0..16 {
        let p = dir.join(format!(".{base}.tmp-{}-{}", std::process::id(), unique()));
        match OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("cannot create a temporary file"))
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

#[async_trait]
impl Provider for FileProvider {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
        let doc = self.load()?;
        let live = doc.to_live();
        self.doc = Some(Editor::new(doc));
        Ok(live)
    }

    async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        if self.access != Access::Write {
            return changes.iter().map(|_| Err(ApplyError::new("the directory was opened read-only"))).collect();
        }
        let Some(editor) = self.doc.as_mut() else {
            return changes.iter().map(|_| Err(ApplyError::new("apply called before read"))).collect();
        };
        let outcomes: Vec<Result<(), ApplyError>> = changes.iter().map(|c| editor.apply(&c.operation)).collect();
        if outcomes.iter().any(Result::is_ok) {
            let saved = self.save(self.doc.as_ref().expect("present").doc());
            if let Err(e) = saved {
                // Nothing of this batch reached the disk: go back to what is there.
                self.doc = self.load().ok().map(Editor::new);
                let msg = format!("cannot write {}: {e}", self.path.display());
                return changes.iter().map(|_| Err(ApplyError::new(msg.clone()))).collect();
            }
        }
        outcomes
    }
}

/// Applies one operation to an in-memory directory; exposed for tests and benchmarks.
pub fn apply_operation(doc: &mut DirectoryFile, op: &Operation) -> Result<(), ApplyError> {
    let mut editor = Editor::new(std::mem::take(doc));
    let result = editor.apply(op);
    *doc = editor.into_doc();
    result
}
