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
//! Paths the configuration names ([`write_below`], [`Dir`]) are confined to the configuration
//! folder: [`confined`] refuses absolute paths and `..` when validating, and at write time each
//! folder below the configuration folder is opened relative to the one above it without
//! following symbolic links (`openat` with `O_NOFOLLOW | O_DIRECTORY`), so a link planted after
//! validation (`secrets -> /etc`, or the file itself a link to `~/.bashrc`) is refused and
//! nothing is written outside. Paths given on the command line ([`write`]) are the operator's
//! and are taken as they are; their target is replaced, not followed, when it is a link.
//!
//! Assumes the target's folder is on a file system where rename within a folder is atomic
//! (POSIX).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// Who may read the file written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// As any new file (mode 0666 less the umask); missing folders are not created.
    Shared,
    /// The owner only (0600), from the first byte; missing folders are created with 0700.
    Private,
}

/// Why a path the configuration names is not one keyward may write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unconfined {
    #[error("`{0}` is an absolute path; paths keyward writes are relative to the configuration folder")]
    Absolute(String),
    #[error("`{0}` has a `..` component; paths keyward writes stay inside the configuration folder")]
    Parent(String),
    #[error("`{0}` does not name a file")]
    NoFile(String),
}

/// Checks that `p` is relative, has no `..` component and names a file: a path that stays
/// inside the folder it is resolved against (symbolic links aside, which [`write_below`]
/// refuses at write time). Both `/` and `\` count as separators, so a configuration means the
/// same on every system.
pub fn confined(p: &str) -> Result<&Path, Unconfined> {
    let bytes = p.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    let path = Path::new(p);
    if p.starts_with(['/', '\\']) || drive || path.has_root() || path.is_absolute() {
        return Err(Unconfined::Absolute(p.to_string()));
    }
    let segments: Vec<&str> = p.split(['/', '\\']).collect();
    if segments.contains(&"..") {
        return Err(Unconfined::Parent(p.to_string()));
    }
    if p.contains('\0') || segments.last().is_none_or(|s| s.is_empty() || *s == ".") {
        return Err(Unconfined::NoFile(p.to_string()));
    }
    Ok(path)
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
    let name = path.file_name().ok_or_else(|| io::Error::other(format!("{} does not name a file", path.display())))?;
    let dir = Dir::open(dir)?;
    dir.replace_with(name, access, false, fill)
}

/// Replaces `root/rel` with `bytes`, following no symbolic link below `root` (see [`Dir`]).
pub fn write_below(root: &Path, rel: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    write_below_with(root, rel, access, |w| w.write_all(bytes))
}

/// Replaces `root/rel` with what `fill` writes, following no symbolic link below `root`; a
/// missing folder is created (0700) for [`Access::Private`].
pub fn write_below_with(
    root: &Path,
    rel: &Path,
    access: Access,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let (folder, name) = split(rel)?;
    let create = (access == Access::Private).then_some(0o700);
    Dir::below(root, folder, create)?.replace_with(name, access, true, fill)
}

/// `rel` as its folder and file name, when it is relative and has no `..`.
pub fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    let unconfined = || io::Error::new(io::ErrorKind::InvalidInput, format!("{} leaves its folder", rel.display()));
    if !rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(unconfined());
    }
    let name = rel.file_name().ok_or_else(unconfined)?;
    Ok((rel.parent().unwrap_or(Path::new("")), name))
}

/// How [`Dir::open_file`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// For reading.
    Read,
    /// For reading and writing, when it exists.
    ReadWrite,
    /// For reading and writing, created when missing, never truncated.
    Create,
    /// For reading and appending, created when missing.
    Append,
}

/// An open folder: below a root, reached without following symbolic links.
pub struct Dir {
    #[cfg(unix)]
    fd: std::os::fd::OwnedFd,
    /// Where it is, for messages (and, off Unix, to reach it).
    path: PathBuf,
}

fn link_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link; keyward follows no symbolic link below the configuration folder, \
             replace it with a real folder or file",
            path.display()
        ),
    )
}

#[cfg(unix)]
mod sys {
    use super::*;
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawMode};
    use std::os::fd::OwnedFd;

    const DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

    pub fn open(path: &Path) -> io::Result<OwnedFd> {
        Ok(rustix::fs::openat(rustix::fs::CWD, path, DIR, Mode::empty())?)
    }

    pub fn child(dir: &OwnedFd, name: &OsStr, create: Option<u32>) -> io::Result<OwnedFd> {
        let flags = DIR | OFlags::NOFOLLOW;
        match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) if create.is_some() => {
                let mode = Mode::from_raw_mode(create.unwrap_or(0o700) as RawMode);
                match rustix::fs::mkdirat(dir, name, mode) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
            }
            r => Ok(r?),
        }
    }

    pub fn is_link(dir: &OwnedFd, name: &OsStr) -> bool {
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
    }

    pub fn file(dir: &OwnedFd, name: &OsStr, how: Open, mode: u32) -> io::Result<File> {
        let flags = OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | match how {
                Open::Read => OFlags::RDONLY,
                Open::ReadWrite => OFlags::RDWR,
                Open::Create => OFlags::RDWR | OFlags::CREATE,
                Open::Append => OFlags::RDWR | OFlags::CREATE | OFlags::APPEND,
            };
        Ok(File::from(rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode as RawMode))?))
    }

    pub fn create_new(dir: &OwnedFd, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode as RawMode))?))
    }

    pub fn rename(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::renameat(dir, from, dir, to)?)
    }

    pub fn remove(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
    }

    pub fn sync(dir: &OwnedFd) -> io::Result<()> {
        Ok(rustix::fs::fsync(dir)?)
    }
}

impl Dir {
    /// The folder `path`, as it is (links in it followed: the caller chose it).
    pub fn open(path: &Path) -> io::Result<Dir> {
        #[cfg(unix)]
        let fd = sys::open(path)?;
        #[cfg(not(unix))]
        if !fs::metadata(path)?.is_dir() {
            return Err(io::Error::other(format!("{} is not a folder", path.display())));
        }
        Ok(Dir {
            #[cfg(unix)]
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The folder `root/rel`: `root` as it is, then each component of `rel` opened relative to
    /// the one above without following a symbolic link; a link is refused, naming it. With
    /// `create`, a missing folder is made with that mode (less the umask). `rel` must be
    /// relative without `..` (see [`confined`]).
    pub fn below(root: &Path, rel: &Path, create: Option<u32>) -> io::Result<Dir> {
        let mut dir = Dir::open(root)?;
        for c in rel.components() {
            match c {
                Component::CurDir => {}
                Component::Normal(name) => dir = dir.child(name, create)?,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} leaves {}", rel.display(), root.display()),
                    ));
                }
            }
        }
        Ok(dir)
    }

    fn child(&self, name: &OsStr, create: Option<u32>) -> io::Result<Dir> {
        let path = self.path.join(name);
        #[cfg(unix)]
        {
            match sys::child(&self.fd, name, create) {
                Ok(fd) => Ok(Dir { fd, path }),
                Err(_) if sys::is_link(&self.fd, name) => Err(link_refused(&path)),
                Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            }
        }
        #[cfg(not(unix))]
        {
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&path)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create.is_some() => fs::create_dir(&path)?,
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            Ok(Dir { path })
        }
    }

    /// Where the folder is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file `name` in this folder, refusing it when it is a symbolic link; a file
    /// created is made with mode 0666 less the umask.
    pub fn open_file(&self, name: &OsStr, how: Open) -> io::Result<File> {
        #[cfg(unix)]
        {
            match sys::file(&self.fd, name, how, 0o666) {
                Err(_) if sys::is_link(&self.fd, name) => Err(link_refused(&self.path.join(name))),
                r => r,
            }
        }
        #[cfg(not(unix))]
        {
            let path = self.path.join(name);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(link_refused(&path));
            }
            let mut o = fs::OpenOptions::new();
            o.read(true);
            match how {
                Open::Read => &mut o,
                Open::ReadWrite => o.write(true),
                Open::Create => o.write(true).create(true).truncate(false),
                Open::Append => o.append(true).create(true),
            }
            .open(path)
        }
    }

    /// Replaces the file `name` in this folder with what `fill` writes (see the module). With
    /// `refuse_link`, a symbolic link in its place is refused rather than replaced.
    pub fn replace_with(
        &self,
        name: &OsStr,
        access: Access,
        refuse_link: bool,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        if refuse_link && self.is_link(name) {
            return Err(link_refused(&self.path.join(name)));
        }
        let (tmp, file) = self.create_temporary(&name.to_string_lossy(), access)?;
        let written = (|| {
            let mut w = io::BufWriter::new(file);
            fill(&mut w)?;
            let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
            self.rename(&tmp, name)
        })();
        if let Err(e) = written {
            let _ = self.remove(&tmp);
            return Err(e);
        }
        self.sync()
    }

    fn is_link(&self, name: &OsStr) -> bool {
        #[cfg(unix)]
        return sys::is_link(&self.fd, name);
        #[cfg(not(unix))]
        return fs::symlink_metadata(self.path.join(name)).is_ok_and(|m| m.file_type().is_symlink());
    }

    fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        #[cfg(unix)]
        return sys::rename(&self.fd, from, to);
        #[cfg(not(unix))]
        return fs::rename(self.path.join(from), self.path.join(to));
    }

    fn remove(&self, name: &OsStr) -> io::Result<()> {
        #[cfg(unix)]
        return sys::remove(&self.fd, name);
        #[cfg(not(unix))]
        return fs::remove_file(self.path.join(name));
    }

    fn sync(&self) -> io::Result<()> {
        #[cfg(unix)]
        return sys::sync(&self.fd);
        #[cfg(not(unix))]
        return File::open(&self.path)?.sync_all();
    }

    /// A new file `.NAME.tmp-RANDOM` in this folder, created exclusively.
    fn create_temporary(&self, name: &str, access: Access) -> io::Result<(std::ffi::OsString, File)> {
        let random = ring::rand::SystemRandom::new();
        let mut nonce = [0u8; 16];
        let mode = if access == Access::Private { 0o600 } else { 0o666 };
        for _ in 0..16 {
            ring::rand::SecureRandom::fill(&random, &mut nonce).map_err(|_| io::Error::other("no randomness"))?;
            let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
            let tmp = std::ffi::OsString::from(format!(".{name}.tmp-{hex}"));
            #[cfg(unix)]
            let created = sys::create_new(&self.fd, &tmp, mode);
            #[cfg(not(unix))]
            let created = {
                let _ = mode;
                fs::OpenOptions::new().write(true).create_new(true).open(self.path.join(&tmp))
            };
            match created {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("cannot create a temporary file"))
    }
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
        let d = Dir::open(dir.path()).unwrap();
        let (a, _) = d.create_temporary("x", Access::Shared).unwrap();
        let (b, _) = d.create_temporary("x", Access::Shared).unwrap();
        assert_ne!(a, b);
        let tail = a.to_string_lossy().rsplit('-').next().unwrap().to_string();
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

    #[test]
    fn configured_paths_must_stay_inside_their_folder() {
        for ok in ["a.pem", ".keyward/secrets/bot.pem", "./x/y.json", "a..b/c..d.txt"] {
            assert_eq!(confined(ok), Ok(Path::new(ok)), "{ok}");
        }
        for absolute in ["/etc/passwd", "\\\\server\\share\\x", "C:\\x.pem", "c:x"] {
            assert_eq!(confined(absolute), Err(Unconfined::Absolute(absolute.into())), "{absolute}");
        }
        for parent in ["../victim.txt", "secrets/../../x", "a\\..\\..\\b", "..", "x/.."] {
            assert_eq!(confined(parent), Err(Unconfined::Parent(parent.into())), "{parent}");
        }
        for no_file in ["", ".", "secrets/", "secrets/.", "a\0b"] {
            assert_eq!(confined(no_file), Err(Unconfined::NoFile(no_file.into())), "{no_file:?}");
        }
    }

    #[test]
    fn writes_below_a_root_create_private_folders_and_refuse_to_leave_it() {
        let root = tempfile::tempdir().unwrap();
        write_below(root.path(), Path::new("secrets/nested/bot.pem"), b"key", Access::Private).unwrap();
        assert_eq!(fs::read(root.path().join("secrets/nested/bot.pem")).unwrap(), b"key");
        write_below(root.path(), Path::new("./plain.json"), b"{}", Access::Shared).unwrap();
        assert_eq!(fs::read(root.path().join("plain.json")).unwrap(), b"{}");
        // A shared write does not create folders; `..` and absolute paths are refused.
        assert!(write_below(root.path(), Path::new("no/such.json"), b"x", Access::Shared).is_err());
        for bad in ["../x", "/tmp/x", "a/../../x"] {
            let e = write_below(root.path(), Path::new(bad), b"x", Access::Private).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    /// Links planted after validation: a folder below the root that points elsewhere, and the
    /// file itself a link to a file outside. Both are refused, naming the link, and nothing
    /// outside changes.
    #[cfg(unix)]
    #[test]
    fn symbolic_links_below_the_root_are_refused_at_write_time() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join("secrets")).unwrap();
        let e = write_below(root.path(), Path::new("secrets/bot.pem"), b"key", Access::Private).unwrap_err();
        assert!(e.to_string().contains("secrets is a symbolic link"), "{e}");
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);

        // A link deeper down, under a real folder, is refused the same way.
        fs::create_dir(root.path().join("real")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join("real/inner")).unwrap();
        let e = write_below(root.path(), Path::new("real/inner/bot.pem"), b"key", Access::Private).unwrap_err();
        assert!(e.to_string().contains("inner is a symbolic link"), "{e}");
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);

        let victim = elsewhere.path().join("bashrc");
        fs::write(&victim, "original").unwrap();
        std::os::unix::fs::symlink(&victim, root.path().join("bot.pem")).unwrap();
        let e = write_below(root.path(), Path::new("bot.pem"), b"key", Access::Private).unwrap_err();
        assert!(e.to_string().contains("bot.pem is a symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
        assert!(fs::symlink_metadata(root.path().join("bot.pem")).unwrap().file_type().is_symlink());
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 3);

        // Opening a file through a linked folder is refused as well.
        let e = Dir::below(root.path(), Path::new("secrets"), None).err().unwrap();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let dir = Dir::open(root.path()).unwrap();
        let e = dir.open_file(OsStr::new("bot.pem"), Open::Create).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
    }
}
