//! `keyward.yaml`, in two stages: [`ConfigFile`] is what the user writes (a flat, forgiving
//! shape that serde can locate errors in), [`Settings`] is the resolved value the rest of
//! keyward uses, with one typed connection per provider.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::resource::string_or_map;
use super::{Duration, Name, SecretRef};

/// The settings file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFile {
    /// The format version; only 1 exists.
    pub version: u32,
    /// Each live system keyward reconciles, by a name of the user's choice.
    #[serde(default)]
    pub targets: BTreeMap<Name, TargetFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guards: Option<Guards>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyFile>,
    /// Settings of the built-in governance policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySettings>,
    /// Where keyward remembers between runs: the audit log, the lock, the last applied commit
    /// per target and the credentials issued but not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateFile>,
    /// The only secret references this configuration may use. Under `plan --base`, the base
    /// revision's list is the one that counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretAllowList>,
    /// Who approves and certifies access: groups of reviewers, default owners, elevation limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance: Option<Governance>,
}

/// `secrets:`: which `${env:}` and `${file:}` references are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretAllowList {
    /// Environment variable names `${env:NAME}` may read; `PREFIX_*` allows every name that
    /// starts with `PREFIX_`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Directories `${file:PATH}` may read below (relative paths are relative to the
    /// configuration folder).
    #[serde(default)]
    pub files: Vec<String>,
}

impl SecretAllowList {
    /// Whether `reference` is allowed: an environment name listed or matching a `PREFIX_*`
    /// entry, or a file below a listed directory, written without `..`.
    pub fn allows(&self, reference: &SecretRef) -> bool {
        match reference {
            SecretRef::Env(name) => self.env.iter().any(|e| match e.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => e == name,
            }),
            SecretRef::File(path) => {
                let path = std::path::Path::new(path);
                let plain = path.components().all(|c| {
                    matches!(c, std::path::Component::Normal(_) | std::path::Component::RootDir)
                        || matches!(c, std::path::Component::CurDir)
                });
                plain
                    && self.files.iter().any(|dir| {
                        let dir = std::path::Path::new(dir);
                        let strip = |p: &std::path::Path| -> std::path::PathBuf {
                            p.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
                        };
                        let dir_ok = dir.components().all(|c| !matches!(c, std::path::Component::ParentDir));
                        dir_ok && strip(path).starts_with(strip(dir)) && strip(path) != strip(dir)
                    })
            }
        }
    }
}

/// `state:` as written. Which fields apply depends on `backend`; validation says which are
/// missing or do not belong.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StateFile {
    /// `local` (default): files under `.keyward/` beside the configuration. `azureblob`: a
    /// container in Azure Blob Storage, shared by every machine that runs keyward.
    #[serde(default)]
    pub backend: StateBackendKind,
    /// azureblob: `https://ACCOUNT.blob.core.windows.net/CONTAINER`, or an emulator's
    /// `http://127.0.0.1:PORT/ACCOUNT/CONTAINER` (plain http only on loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// azureblob: a folder inside the container (for example `prod/identity`), so several
    /// configurations can share one container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// azureblob: the storage account's access key (Shared Key), as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<String>,
    /// azureblob: a shared access signature for the container, as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_token: Option<String>,
    /// azureblob with Entra ID: the tenant of the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// azureblob with Entra ID: the application (client) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// A PEM file holding the certificate and key for a signed client assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// A file holding a federated token (GitHub Actions OIDC, Kubernetes workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_token_file: Option<String>,
    /// The token authority, for national clouds and tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// An extra trusted CA certificate (PEM file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Where the state lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateBackendKind {
    #[default]
    Local,
    Azureblob,
}

impl StateBackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StateBackendKind::Local => "local",
            StateBackendKind::Azureblob => "azureblob",
        }
    }
}

impl fmt::Display for StateBackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One target as written. Which fields apply depends on `provider`; validation says which are
/// missing or do not belong.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetFile {
    pub provider: ProviderKind,
    /// Which live accounts exist on this target: `all` (default for directories) or
    /// `with-roles` (default for ERPs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UsersScope>,
    /// An extra trusted CA certificate (PEM file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// file: the JSON document holding the directory, relative to the configuration folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// scim, dataverse, fno, ldap: the service's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// scim: the bearer token, as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// A PEM file holding the certificate and key for a signed client assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// A file holding a federated token (workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_token_file: Option<String>,
    /// graph: the Graph endpoint, for national clouds and tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// graph: userPrincipalName domains federated with another identity provider. Users there
    /// sign in at that provider: keyward creates them without a password, with
    /// `onPremisesImmutableId` set to their employeeId (or, without one, their userPrincipalName).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_domains: Option<Vec<String>>,
    /// dataverse: the business unit users are placed in unless their `targets` say otherwise
    /// (without it, keyward leaves users in the unit they are in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_unit: Option<String>,
    /// graph, dataverse, fno: the token authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<LdapFlavor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_key: Option<String>,
    /// ldap with flavor `openldap`: how an account is disabled. Default: the ppolicy lock,
    /// `{attribute: pwdAccountLockedTime, value: "000001010000Z"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<LdapDisableFile>,
    /// ldap with flavor `openldap`: the suffix of the accesslog database (slapo-accesslog) that
    /// logs the writes to the directory, such as `cn=accesslog`. With it, the change feed reads
    /// deletions and renames from the log instead of listing every user and group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<String>,
}

/// How an OpenLDAP target disables accounts: one of `moveTo` or `attribute` (with `value`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapDisableFile {
    /// Move disabled accounts below this DN (an OU); enabling moves them back to `usersBase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<String>,
    /// Set this attribute to `value` to disable; remove it to enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// The value `attribute` is set to; optional for `pwdAccountLockedTime`
    /// (`000001010000Z`, locked until an administrator unlocks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The live systems keyward can reconcile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[default]
    File,
    Scim,
    Graph,
    Dataverse,
    Fno,
    Ldap,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::File => "file",
            ProviderKind::Scim => "scim",
            ProviderKind::Graph => "graph",
            ProviderKind::Dataverse => "dataverse",
            ProviderKind::Fno => "fno",
            ProviderKind::Ldap => "ldap",
        }
    }
    /// ERPs hold only the users that need them; directories hold everyone.
    pub fn default_users(self) -> UsersScope {
        match self {
            ProviderKind::Dataverse | ProviderKind::Fno => UsersScope::WithRoles,
            _ => UsersScope::All,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UsersScope {
    All,
    WithRoles,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LdapFlavor {
    #[default]
    Openldap,
    Ad,
}

/// Which live accounts keyward manages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ownership {
    #[serde(default)]
    pub scope: Scope,
    /// userNames that are never disabled, deleted or stripped of roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected: Vec<String>,
}

/// `all`, or `{userNameSuffix: "@contoso.com"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Scope {
    #[default]
    #[schemars(with = "AllLiteral")]
    All,
    Suffix(SuffixScope),
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum AllLiteral {
    #[serde(rename = "all")]
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SuffixScope {
    pub user_name_suffix: String,
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_map(
            d,
            "`all` or {userNameSuffix: ...}",
            |s| match s {
                "all" => Ok(Scope::All),
                other => Err(format!("unknown scope {other:?}; write `all` or {{userNameSuffix: \"@example.com\"}}")),
            },
            Scope::Suffix,
        )
    }
}

impl Scope {
    /// Whether keyward manages the live account with this userName.
    pub fn contains(&self, user_name: &str) -> bool {
        match self {
            Scope::All => true,
            // Compared without regard to ASCII case, byte by byte from the end.
            Scope::Suffix(s) => {
                let (u, suffix) = (user_name.as_bytes(), s.user_name_suffix.as_bytes());
                u.len() >= suffix.len() && u[u.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(default)]
    pub removed_users: RemovedUsers,
}

/// What happens to a managed user that left git.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RemovedUsers {
    #[default]
    Disable,
    Delete,
}

/// How far back applied deletions and disables count against `guards.maxDeletes` when
/// `guards.maxDeletesWindow` is not set.
pub const DEFAULT_MAX_DELETES_WINDOW: Duration = Duration::from_hours(24);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Guards {
    /// A plan with more deletions and disables than this refuses to apply, counting with it
    /// those applied within `maxDeletesWindow` before it, on any target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deletes: Option<u32>,
    /// How far back applied deletions and disables count against `maxDeletes` (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deletes_window: Option<Duration>,
    /// A plan that would leave fewer holders of this role refuses to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_admins: Option<MinAdmins>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinAdmins {
    pub role: Name,
    pub count: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// The audit log, relative to the configuration folder. Default `.keyward/audit.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// A Slack- or Teams-compatible incoming webhook URL, as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

/// Settings of the built-in governance policies (`policy:` in keyward.yaml).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySettings {
    /// The longest a privileged role may be held: every privileged assignment needs an `expires`
    /// at most this far from today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_privileged_assignment: Option<Duration>,
    /// The longest `lifetime` a service-account credential of type `secret` may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_secret_lifetime: Option<Duration>,
    /// Which users need an unbroken chain of active managers: `none` (default), `privileged`
    /// (holders of privileged roles) or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_manager: Option<RequireManager>,
    /// Users at the top of the manager chain, who need no manager (for example the CEO).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_of_chain: Vec<Name>,
    /// The severity of a rule by its id (`deny`, `warn`, `info`), or `off` to silence it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, RuleLevel>,
}

/// Which users need a manager chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequireManager {
    #[default]
    None,
    Privileged,
    All,
}

/// Governance settings (`governance:` in keyward.yaml).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Governance {
    /// Groups of reviewers, by name, that a Role's `owners` may name as `{group: NAME}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reviewers: BTreeMap<Name, ReviewerGroup>,
    /// Who approves changes to roles without owners of their own and to keyward.yaml, and
    /// certifies access nobody else can.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_owners: Vec<super::Owner>,
    /// Time-boxed grants made with `keyward elevate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation: Option<Elevation>,
}

/// A group of reviewers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReviewerGroup {
    /// The group's members, by User name.
    pub members: Vec<Name>,
    /// The GitHub team that holds the same people (`@org/team`), for CODEOWNERS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Limits on `keyward elevate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Elevation {
    /// The longest time-boxed grant `keyward elevate` writes (default 8h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<Duration>,
}

impl Elevation {
    /// The default longest elevation: a working day.
    pub const DEFAULT_MAX: i64 = 8 * 3600;
}

/// A rule's configured severity, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleLevel {
    Off,
    Info,
    Warn,
    Deny,
}

/// The resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub targets: BTreeMap<Name, Target>,
    pub scope: Scope,
    /// Lower-cased userNames of protected accounts.
    pub protected: BTreeSet<String>,
    pub removed_users: RemovedUsers,
    pub max_deletes: Option<u32>,
    /// How far back applied deletions and disables count against `max_deletes`.
    pub max_deletes_window: Duration,
    pub min_admins: Option<MinAdmins>,
    pub audit_path: String,
    pub notify_webhook: Option<SecretRef>,
    /// Settings of the built-in policies; defaults when keyward.yaml has no `policy`.
    pub policy: PolicySettings,
    /// Where the state lives; local when keyward.yaml has no `state`.
    pub state: StateSettings,
    /// The secret references allowed; `None` when keyward.yaml has no `secrets` block.
    pub secrets: Option<SecretAllowList>,
    /// Governance settings; defaults when keyward.yaml has no `governance`.
    pub governance: Governance,
}

/// The resolved `state:` settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StateSettings {
    /// Files beside the audit log (`.keyward/` by default).
    #[default]
    Local,
    AzureBlob(AzureBlobState),
}

/// A container (and a folder in it) in Azure Blob Storage.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureBlobState {
    /// The container's URL, checked: https, or http on loopback.
    pub url: String,
    /// `""`, or a folder ending in `/`.
    pub prefix: String,
    pub auth: BlobAuth,
    pub ca_file: Option<String>,
}

/// How keyward proves itself to Blob Storage.
#[derive(Debug, Clone, PartialEq)]
pub enum BlobAuth {
    /// Shared Key: requests signed with the account key.
    AccountKey(SecretRef),
    /// A shared access signature appended to every request.
    SasToken(SecretRef),
    /// Bearer tokens from Entra ID, as targets get them.
    Entra { tenant: String, client_id: String, credential: ClientCredential, authority: Option<String> },
}

impl Settings {
    pub fn is_protected(&self, user_name: &str) -> bool {
        !self.protected.is_empty() && self.protected.contains(&user_name.to_ascii_lowercase())
    }
}

/// One resolved target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: Name,
    pub users: UsersScope,
    pub ca_file: Option<String>,
    pub connection: Connection,
}

impl Target {
    /// The business unit users are placed in on this target unless they say otherwise
    /// (`businessUnit` of a `dataverse` target).
    pub fn default_business_unit(&self) -> Option<&str> {
        match &self.connection {
            Connection::Dataverse { business_unit, .. } => business_unit.as_deref(),
            _ => None,
        }
    }

    pub fn provider(&self) -> ProviderKind {
        match &self.connection {
            Connection::File { .. } => ProviderKind::File,
            Connection::Scim { .. } => ProviderKind::Scim,
            Connection::Graph { .. } => ProviderKind::Graph,
            Connection::Dataverse { .. } => ProviderKind::Dataverse,
            Connection::Fno { .. } => ProviderKind::Fno,
            Connection::Ldap { .. } => ProviderKind::Ldap,
        }
    }
}

/// How to reach a target.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    File {
        path: String,
    },
    Scim {
        url: String,
        token: SecretRef,
    },
    Graph {
        tenant: String,
        client_id: String,
        credential: ClientCredential,
        endpoint: Option<String>,
        authority: Option<String>,
        /// userPrincipalName domains (lower case) whose users get no password.
        federated_domains: Vec<String>,
    },
    Dataverse {
        url: String,
        tenant: String,
        client_id: String,
        credential: ClientCredential,
        authority: Option<String>,
        /// The business unit users are placed in unless they say otherwise.
        business_unit: Option<String>,
    },
    Fno {
        url: String,
        tenant: String,
        client_id: String,
        credential: ClientCredential,
        authority: Option<String>,
    },
    Ldap(LdapConnection),
}

impl Connection {
    /// Whether the target is an Active Directory domain (`provider: ldap`, `flavor: ad`): the
    /// directory of record for users a hybrid Entra tenant synchronizes from it.
    pub fn is_active_directory(&self) -> bool {
        matches!(self, Connection::Ldap(l) if l.flavor == LdapFlavor::Ad)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LdapConnection {
    pub url: String,
    pub start_tls: bool,
    pub bind_dn: String,
    pub password: SecretRef,
    pub users_base: String,
    pub groups_base: String,
    pub flavor: LdapFlavor,
    pub user_key: String,
    pub disable: LdapDisable,
    /// OpenLDAP: the suffix of the accesslog database the change feed reads, if any.
    pub access_log: Option<String>,
}

/// How a disabled account is marked on an LDAP target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapDisable {
    /// The attribute holds the value while the account is disabled and is absent otherwise.
    Attribute { name: String, value: String },
    /// Disabled accounts live below this DN; enabled ones below `usersBase`.
    MoveTo(String),
    /// Active Directory: the ACCOUNTDISABLE bit (2) of `userAccountControl`.
    AccountControl,
}

impl LdapDisable {
    /// The ppolicy lock attribute and its "locked until an administrator unlocks" value.
    pub const PPOLICY_ATTRIBUTE: &'static str = "pwdAccountLockedTime";
    pub const PPOLICY_LOCKED: &'static str = "000001010000Z";
}

/// How keyward authenticates to Entra ID.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCredential {
    Secret(SecretRef),
    Certificate(SecretRef),
    FederatedTokenFile(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_allow_list_matches_names_prefixes_and_directories_without_dot_dot() {
        let list = SecretAllowList {
            env: vec!["OKTA_TOKEN".into(), "KEYWARD_*".into()],
            files: vec!["/run/secrets".into(), "secrets/dev".into()],
        };
        let env = |n: &str| list.allows(&SecretRef::Env(n.into()));
        let file = |p: &str| list.allows(&SecretRef::File(p.into()));
        assert!(env("OKTA_TOKEN") && env("KEYWARD_X") && env("KEYWARD_"));
        assert!(!env("OKTA_TOKEN_2") && !env("OKTA") && !env("KEYWARDX") && !env("PATH"));
        assert!(
            file("/run/secrets/a.pem") && file("/run/secrets/x/y") && file("secrets/dev/t") && file("./secrets/dev/t")
        );
        assert!(!file("/run/secrets") && !file("/run/secrets/../../etc/shadow") && !file("/run/secretsX/a"));
        assert!(!file("/etc/passwd") && !file("secrets/dev/../../x") && !file("/secrets/dev/t"));
        assert!(!SecretAllowList::default().allows(&SecretRef::Env("A".into())));
    }

    #[test]
    fn a_suffix_scope_matches_the_end_of_a_user_name_without_regard_to_ascii_case() {
        let scope = Scope::Suffix(SuffixScope { user_name_suffix: "@Contoso.COM".into() });
        assert!(scope.contains("alice@contoso.com"));
        assert!(scope.contains("ALICE@CONTOSO.COM"));
        assert!(scope.contains("@contoso.com"));
        assert!(!scope.contains("alice@contoso.co"));
        assert!(!scope.contains("alice@contoso.com.evil"));
        assert!(!scope.contains("contoso.com"));
        assert!(!scope.contains(""));
        // Only ASCII letters fold: `É` and `é` are different bytes.
        let accented = Scope::Suffix(SuffixScope { user_name_suffix: "@café.example".into() });
        assert!(accented.contains("x@CAFé.example"));
        assert!(!accented.contains("x@cafÉ.example"));
        assert!(Scope::All.contains("anyone"));
    }
}
