//! Delivery sinks: where a new credential's material goes, chosen per credential by
//! `deliver`.
//!
//! - `file: PATH` (relative to the configuration folder): written to a temporary file in the
//!   same folder created with mode 0600, fsynced, renamed over the old file, the folder
//!   fsynced; a reader sees the old material or the new, never a torn file, and the file is
//!   never readable by others, not even for an instant. Missing folders are created (0700).
//! - `keyVault: {vault, secret}`: a new version of the secret (see [`super::keyvault`]).

use std::fs;
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

/// Replaces `path` atomically with `bytes`, readable and writable by the owner only (see
/// [`crate::atomic`]).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::atomic::write(path, bytes, crate::atomic::Access::Private)
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
