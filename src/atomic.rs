//! Replacing a file whole or not at all: the one way keyward writes files that others read
//! (saved plans, metrics, the `file` provider's directory, delivered credentials, the record of
//! undelivered credentials).
//!
//! Guarantees: the new content goes to a temporary file in the same folder, created with
//! `O_EXCL` under an unpredictable name (another user of a shared folder can neither guess it
//! in advance nor have it opened for us), fsynced, renamed over the target, and the folder
//! fsynced; a reader sees the old content or the new, never a torn file, and after a crash the
//! rename is either durable or not done. A failed write removes its temporary file.
//!
//! Assumes the target's folder is on a file system where rename within a folder is atomic
//! (POSIX); the target itself is replaced, not followed, when it is a symbolic link.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Who may read the file written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// As any new file (mode 0666 less the umask); missing folders are not created.
    Shared,
    /// The owner only (0600), from the first byte; missing folders are created with 0700.
    Private,
}

/// Replaces `path` with `bytes`.
pub fn write(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    write_with(path, access, |w| w.write_all(bytes))
}

/// Replaces `path` with what `fill` writes (buffered).
pub fn write_with(path: &Path, access: Access, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if access == Access::Private && !dir.exists() {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (tmp, file) = create_temporary(dir, &name, access)?;
    let written = (|| {
        let mut w = io::BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// A new file `.NAME.tmp-RANDOM` in `dir`, created exclusively.
fn create_temporary(dir: &Path, name: &str, access: Access) -> io::Result<(PathBuf, File)> {
    let random = ring::rand::SystemRandom::new();
    let mut nonce = [0u8; 16];
    for _ in 0..16 {
        ring::rand::SecureRandom::fill(&random, &mut nonce).map_err(|_| io::Error::other("no randomness"))?;
        let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let p = dir.join(format!(".{name}.tmp-{hex}"));
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        if access == Access::Private {
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        }
        match o.open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("cannot create a temporary file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write(&path, b"first", Access::Shared).unwrap();
        write(&path, b"second", Access::Shared).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("plan.json")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.prom");
        write(&path, b"old", Access::Shared).unwrap();
        let err = write_with(&path, Access::Shared, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_shared_write_into_a_missing_folder_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(&dir.path().join("no/such/file"), b"x", Access::Shared).is_err());
    }

    #[test]
    fn temporary_names_are_unpredictable() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = create_temporary(dir.path(), "x", Access::Shared).unwrap();
        let (b, _) = create_temporary(dir.path(), "x", Access::Shared).unwrap();
        assert_ne!(a, b);
        let tail = a.file_name().unwrap().to_string_lossy().rsplit('-').next().unwrap().to_string();
        assert_eq!(tail.len(), 32, "{a:?}");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_never_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/nested/bot.pem");
        write(&path, b"first", Access::Private).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
