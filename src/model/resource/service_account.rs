//! Service accounts: non-human identities and the credentials keyward keeps fresh on them.

use super::*;

/// A non-human identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceAccount {
    pub kind: ServiceAccountKind,
    pub name: Name,
    /// The User accountable for this account.
    pub owner: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleGrant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialSpec>,
    /// The targets the account exists on (a list), or settings per target (a map: the
    /// `applicationId` a Dataverse or Finance & Operations target knows it by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<ServiceAccountTargets>,
}

/// A credential keyward keeps fresh on a service account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialSpec {
    pub name: Name,
    #[serde(rename = "type")]
    pub kind: CredentialType,
    /// How long a new credential is valid.
    pub lifetime: Duration,
    /// Rotate when the current credential expires within this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_before: Option<Duration>,
    /// How long the old credential stays valid beside the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<KeyAlgorithm>,
    /// Where a new credential is delivered. It never appears anywhere else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver: Option<Deliver>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CredentialType {
    Secret,
    Certificate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Deliver {
    /// A file written with mode 0600, atomically.
    File(String),
    /// An Azure Key Vault secret.
    KeyVault(KeyVaultSink),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyVaultSink {
    pub vault: String,
    pub secret: String,
}

impl Deliver {
    /// Where a credential is delivered, as plans and errors show it: `file PATH` or
    /// `keyVault VAULT/SECRET` (a location, never material).
    pub fn label(&self) -> String {
        match self {
            Deliver::File(p) => format!("file {p}"),
            Deliver::KeyVault(k) => format!("keyVault {}/{}", k.vault.trim_end_matches('/'), k.secret),
        }
    }
}

impl KeyVaultSink {
    /// Whether `name` is a valid Key Vault secret name: 1 to 127 of `[0-9a-zA-Z-]`.
    pub fn valid_secret_name(name: &str) -> bool {
        (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }
}
