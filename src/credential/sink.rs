//! Delivery sinks: where a new credential's material goes, chosen per credential by
//! `deliver`.
//!
//! - `file: PATH` (relative to the configuration folder): written to a temporary file in the
//!   same folder created with mode 0600, fsynced, renamed over the old file, the folder
//!   fsynced; a reader sees the old material or the new, never a torn file, and the file is
//!   never readable by others, not even for an instant. Missing folders are created (0700).
//! - `keyVault: {vault, secret}`: a new version of the secret (see [`super::keyvault`]).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::keyvault::KeyVault;
use super::{CredentialError, Material};
use crate::model::{Deliver, Secret, Timestamp};

/// Delivers material to the sinks of one configuration.
#[derive(Clone)]
pub struct Sinks {
    root: PathBuf,
    key_vault: Option<KeyVault>,
}

impl Sinks {
    /// Sinks whose relative file paths resolve against `root`; no Key Vault access.
    pub fn new(root: &Path) -> Self {
        Sinks { root: root.to_path_buf(), key_vault: None }
    }

    pub fn with_key_vault(mut self, kv: KeyVault) -> Self {
        self.key_vault = Some(kv);
        self
    }

    fn file_path(&self, p: &str) -> PathBuf {
        self.root.join(p)
    }

    fn vault(&self, d: &Deliver) -> Result<&KeyVault, CredentialError> {
        self.key_vault.as_ref().ok_or_else(|| CredentialError::Deliver {
            sink: d.label(),
            message: "no Key Vault access is configured for this run: Key Vault delivery uses the Entra ID \
                      identity of a graph, dataverse or fno target, and this configuration has none"
                .into(),
        })
    }

    /// Writes `material` to the sink `d`; `start` and `end` are the credential's validity.
    pub async fn deliver(
        &self,
        d: &Deliver,
        material: &Material,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<(), CredentialError> {
        match d {
            Deliver::File(p) => {
                let path = self.file_path(p);
                write_private(&path, material.text().expose().as_bytes())
                    .map_err(|e| CredentialError::Deliver { sink: d.label(), message: e.to_string() })
            }
            Deliver::KeyVault(k) => {
                self.vault(d)?
                    .put_secret(&k.vault, &k.secret, material.text(), material.content_type(), start, end)
                    .await
            }
        }
    }

    /// What the sink holds now (the last delivered material), or `None`.
    pub async fn current(&self, d: &Deliver) -> Result<Option<Secret<String>>, CredentialError> {
        match d {
            Deliver::File(p) => match fs::read_to_string(self.file_path(p)) {
                Ok(t) => Ok(Some(Secret::new(t))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CredentialError::Deliver { sink: d.label(), message: e.to_string() }),
            },
            Deliver::KeyVault(k) => self.vault(d)?.get_secret(&k.vault, &k.secret).await,
        }
    }
}

/// Replaces `path` atomically with `bytes`, readable and writable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.exists() {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "credential".into());
    let (tmp, mut file) = create_private(dir, &name)?;
    let written = file.write_all(bytes).and_then(|_| file.sync_all()).and_then(|_| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

fn create_private(dir: &Path, name: &str) -> std::io::Result<(PathBuf, File)> {
    let mut nonce = [0u8; 8];
    for _ in 0..16 {
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| std::io::Error::other("no randomness"))?;
        let p = dir.join(format!(".{name}.tmp-{}", u64::from_le_bytes(nonce)));
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        match o.open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("cannot create a temporary file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/nested/bot.pem");
        write_private(&path, b"first").unwrap();
        write_private(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("bot.pem")]);
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_file_readable_by_others_becomes_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot.pem");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
