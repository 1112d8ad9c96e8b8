//! Delivery sinks: where a new credential's material goes, chosen per credential by
//! `deliver`.
//!
//! - `file: PATH` (relative to the configuration folder): written to a temporary file in the
//!   same folder created with mode 0600, fsynced, renamed over the old file, the folder
//!   fsynced; a reader sees the old material or the new, never a torn file, and the file is
//!   never readable by others, not even for an instant. Missing folders are created (0700).
//!   No symbolic link below the configuration folder is followed, neither to write nor to
//!   read what the sink holds (see [`crate::atomic::write_below`]).
//! - `keyVault: {vault, secret}`: a new version of the secret (see [`super::keyvault`]).

use std::io::Read;
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
            Deliver::File(p) => crate::atomic::write_below(
                &self.root,
                Path::new(p),
                material.text().expose().as_bytes(),
                crate::atomic::Access::Private,
            )
            .map_err(|e| CredentialError::Deliver { sink: d.label(), message: e.to_string() }),
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
            Deliver::File(p) => match read_below(&self.root, Path::new(p)) {
                Ok(t) => Ok(Some(Secret::new(t))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CredentialError::Deliver { sink: d.label(), message: e.to_string() }),
            },
            Deliver::KeyVault(k) => self.vault(d)?.get_secret(&k.vault, &k.secret).await,
        }
    }
}

/// The text of `root/rel`, following no symbolic link below `root`.
fn read_below(root: &Path, rel: &Path) -> std::io::Result<String> {
    let (folder, name) = crate::atomic::split(rel)?;
    let mut text = String::new();
    crate::atomic::Dir::below(root, folder, None)?
        .open_file(name, crate::atomic::Open::Read)?
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Replaces `path` atomically with `bytes`, readable and writable by the owner only (see
/// [`crate::atomic`]).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::atomic::write(path, bytes, crate::atomic::Access::Private)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A link planted after validation, `.keyward/secrets -> elsewhere` or the file itself a
    /// link to a file outside, is refused: nothing is written or read outside the folder.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_planted_symbolic_link_is_neither_written_through_nor_read() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let sinks = Sinks::new(root.path());
        let material = Material::Secret(Secret::new("generated-at-test-time".to_string()));
        let now: Timestamp = chrono::Utc::now();
        let deliver = Deliver::File(".keyward/secrets/bot.pem".into());

        fs::create_dir(root.path().join(".keyward")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join(".keyward/secrets")).unwrap();
        let e = sinks.deliver(&deliver, &material, now, now).await.unwrap_err();
        assert!(e.to_string().contains("secrets is a symbolic link"), "{e}");
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);

        fs::remove_file(root.path().join(".keyward/secrets")).unwrap();
        fs::create_dir(root.path().join(".keyward/secrets")).unwrap();
        let victim = elsewhere.path().join("bashrc");
        fs::write(&victim, "original").unwrap();
        std::os::unix::fs::symlink(&victim, root.path().join(".keyward/secrets/bot.pem")).unwrap();
        let e = sinks.deliver(&deliver, &material, now, now).await.unwrap_err();
        assert!(e.to_string().contains("bot.pem is a symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
        assert!(sinks.current(&deliver).await.is_err(), "the link is not read either");

        // Once the link is gone, delivery works and reads back.
        fs::remove_file(root.path().join(".keyward/secrets/bot.pem")).unwrap();
        sinks.deliver(&deliver, &material, now, now).await.unwrap();
        assert_eq!(sinks.current(&deliver).await.unwrap().unwrap().expose(), "generated-at-test-time");
    }

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
