//! The resource kinds of a configuration, exactly as written in YAML.
//!
//! These types are what users write and what the JSON Schemas in `schemas/` are generated
//! from. Every struct denies unknown fields. An absent optional field means "not managed by
//! keyward", never "clear it". Cross-references (roles, managers, owners, targets) are checked
//! by `validate`, not here.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{Date, Duration, Expiry, Name};

/// Defines a single-valued enum used as the `kind` tag of a resource document, so the schema
/// says `"const": "User"` and serde rejects documents of another kind.
macro_rules! kind_tag {
    ($ty:ident, $lit:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        pub enum $ty {
            #[serde(rename = $lit)]
            Tag,
        }
    };
}

kind_tag!(UserKind, "User");
kind_tag!(RoleKind, "Role");
kind_tag!(ServiceAccountKind, "ServiceAccount");
kind_tag!(DataClassificationKind, "DataClassification");
kind_tag!(AuthenticationPolicyKind, "AuthenticationPolicy");
kind_tag!(EncryptionPolicyKind, "EncryptionPolicy");
kind_tag!(SodRuleKind, "SodRule");
kind_tag!(CampaignKind, "Campaign");
kind_tag!(CertificationKind, "Certification");

/// The kinds of resource document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    User,
    Role,
    ServiceAccount,
    DataClassification,
    AuthenticationPolicy,
    EncryptionPolicy,
    SodRule,
    Campaign,
    Certification,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::User,
        Kind::Role,
        Kind::ServiceAccount,
        Kind::DataClassification,
        Kind::AuthenticationPolicy,
        Kind::EncryptionPolicy,
        Kind::SodRule,
        Kind::Campaign,
        Kind::Certification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Role => "Role",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::DataClassification => "DataClassification",
            Kind::AuthenticationPolicy => "AuthenticationPolicy",
            Kind::EncryptionPolicy => "EncryptionPolicy",
            Kind::SodRule => "SodRule",
            Kind::Campaign => "Campaign",
            Kind::Certification => "Certification",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The file name of this kind's JSON Schema in `schemas/`.
    pub fn schema_file(self) -> &'static str {
        match self {
            Kind::User => "user.json",
            Kind::Role => "role.json",
            Kind::ServiceAccount => "service-account.json",
            Kind::DataClassification => "data-classification.json",
            Kind::AuthenticationPolicy => "authentication-policy.json",
            Kind::EncryptionPolicy => "encryption-policy.json",
            Kind::SodRule => "sod-rule.json",
            Kind::Campaign => "campaign.json",
            Kind::Certification => "certification.json",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct User {
    pub kind: UserKind,
    /// The stable key used in plans and audit records.
    pub name: Name,
    /// The sign-in name on the live systems, for example alice@contoso.com.
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    /// The name of this user's manager, another User.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    /// The person's GitHub login (without `@`): how `keyward approvals verify` knows them among
    /// a pull request's reviewers, and how `keyward codeowners` names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<String>,
    #[serde(default)]
    pub status: UserStatus,
    /// Roles held: a role name, or a role with an expiry and the reason it was granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleGrant>,
    /// A list: the targets this user exists on. Without it: every target with `users: all`,
    /// plus the targets where one of the user's roles has a binding. A map: settings per target
    /// (`{d365: {businessUnit: Sales}}`), which leave where the user exists as without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<UserTargets>,
}

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    #[default]
    Active,
    Disabled,
}

/// One role held by a user or service account.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RoleGrant {
    /// Just the role's name: held without expiry.
    Name(Name),
    /// The role with details.
    Detailed(RoleGrantDetail),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleGrantDetail {
    pub role: Name,
    /// When the assignment ends: a date (it holds through that day, UTC, and is revoked after
    /// it) or an exact time in RFC 3339 (`2027-03-31T14:00:00Z`, for grants of hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expiry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Eligible instead of active: the holder activates the role when they need it, for at
    /// most `maxActivation` (Privileged Identity Management on `graph` targets). Where a target
    /// has no eligibility, an eligible assignment gives nothing there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eligible: bool,
    /// With `eligible`: the longest one activation lasts (at most 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_activation: Option<Duration>,
    /// With `eligible`: what activating requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<super::ActivationRequirements>,
}

impl RoleGrantDetail {
    /// An active assignment of `role` with nothing else said.
    pub fn new(role: Name) -> Self {
        RoleGrantDetail {
            role,
            expires: None,
            reason: None,
            ticket: None,
            eligible: false,
            max_activation: None,
            requires: None,
        }
    }
}

impl RoleGrant {
    /// Whether the assignment is eligible rather than active.
    pub fn eligible(&self) -> bool {
        matches!(self, RoleGrant::Detailed(d) if d.eligible)
    }

    pub fn role(&self) -> &Name {
        match self {
            RoleGrant::Name(n) => n,
            RoleGrant::Detailed(d) => &d.role,
        }
    }
    pub fn expires(&self) -> Option<Expiry> {
        match self {
            RoleGrant::Name(_) => None,
            RoleGrant::Detailed(d) => d.expires,
        }
    }
}

/// Deserializes a value written either as a string or as a map of type `M`, keeping
/// serde_yaml's error locations (an untagged enum would replace them with "data did not match
/// any variant").
pub(crate) fn string_or_map<'de, D, T, M>(
    d: D,
    expecting: &'static str,
    from_str: impl FnOnce(&str) -> Result<T, String>,
    from_map: impl FnOnce(M) -> T,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    M: Deserialize<'de>,
{
    struct V<S, Mp, M> {
        expecting: &'static str,
        from_str: S,
        from_map: Mp,
        _m: std::marker::PhantomData<M>,
    }
    impl<'de, T, M, S, Mp> Visitor<'de> for V<S, Mp, M>
    where
        M: Deserialize<'de>,
        S: FnOnce(&str) -> Result<T, String>,
        Mp: FnOnce(M) -> T,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.from_str)(v).map_err(E::custom)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            M::deserialize(de::value::MapAccessDeserializer::new(map)).map(self.from_map)
        }
    }
    d.deserialize_any(V { expecting, from_str, from_map, _m: std::marker::PhantomData })
}

impl<'de> Deserialize<'de> for RoleGrant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_map(
            d,
            "a role name, or {role, expires, reason, ticket}",
            |s| Name::new(s).map(RoleGrant::Name).map_err(|e| format!("invalid role name {s:?}: {e}")),
            RoleGrant::Detailed,
        )
    }
}

/// A business role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Role {
    pub kind: RoleKind,
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Privileged roles need an expiry on every assignment and the authentication they require.
    #[serde(default)]
    pub privileged: bool,
    /// The duties this role grants, as referenced by SodRules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duties: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Requirements>,
    /// What the role is on each target, by target name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bindings: BTreeMap<Name, Binding>,
    /// Who is accountable for the role: Users, or groups of reviewers named in keyward.yaml
    /// (`{group: NAME}`). They approve grants of it (`keyward approvals verify`), are routed its
    /// files (`keyward codeowners`) and certify who holds it (`keyward certify`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<Owner>,
    /// `pinned`: the role's live contents (privileges, duties) on its `securityRole` bindings
    /// must equal the snapshot `keyward import` writes to `role-contents/NAME.yaml`; plan and
    /// drift report any difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<super::ContentsMode>,
}

/// Someone accountable: a User by name, or `{group: NAME}`, a group of reviewers defined under
/// `governance.reviewers` in keyward.yaml.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Owner {
    /// A User's name.
    User(Name),
    /// A group of reviewers.
    Group(OwnerGroup),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerGroup {
    pub group: Name,
}

impl Owner {
    pub fn group(name: Name) -> Self {
        Owner::Group(OwnerGroup { group: name })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::User(n) => write!(f, "{n}"),
            Owner::Group(g) => write!(f, "group {}", g.group),
        }
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_map(
            d,
            "a User's name, or {group: NAME}",
            |s| Name::new(s).map(Owner::User).map_err(|e| format!("invalid user name {s:?}: {e}")),
            Owner::Group,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Requirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthStrength>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearance: Option<Level>,
}

/// How strongly holders must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthStrength {
    Password,
    Mfa,
    PhishingResistant,
}

/// Sensitivity levels, from least to most sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Public,
    Internal,
    Confidential,
    Restricted,
}

/// A class of data and who may read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataClassification {
    pub kind: DataClassificationKind,
    pub name: Name,
    pub level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The tables and columns of this class, by target name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub assets: BTreeMap<Name, Assets>,
    /// Roles that may read this data. Without it: roles whose clearance reaches the level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readers: Option<Vec<Name>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assets {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Columns as `table.column`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Privileges that read this data on the target (Dataverse privilege names such as
    /// `prvReadSalary`, Finance & Operations privilege identifiers): a role whose live contents
    /// hold one must be among the classification's readers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileges: Vec<String>,
}

/// How people must sign in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthenticationPolicy {
    pub kind: AuthenticationPolicyKind,
    pub name: Name,
    pub applies_to: AppliesTo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaRequirement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Methods>,
    /// An account with no sign-in for this long is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<Duration>,
}

/// Whom a policy covers: exactly one of `all`, `privileged` or `roles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppliesTo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Name>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MfaRequirement {
    Required,
    Optional,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Methods {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<AuthMethod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden: Vec<AuthMethod>,
}

/// Sign-in methods, named as in the Microsoft Graph authentication methods policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuthMethod {
    Password,
    Fido2,
    MicrosoftAuthenticator,
    Sms,
    Voice,
    Email,
    TemporaryAccessPass,
    SoftwareOath,
    X509Certificate,
    WindowsHelloForBusiness,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Fido2 => "fido2",
            AuthMethod::MicrosoftAuthenticator => "microsoftAuthenticator",
            AuthMethod::Sms => "sms",
            AuthMethod::Voice => "voice",
            AuthMethod::Email => "email",
            AuthMethod::TemporaryAccessPass => "temporaryAccessPass",
            AuthMethod::SoftwareOath => "softwareOath",
            AuthMethod::X509Certificate => "x509Certificate",
            AuthMethod::WindowsHelloForBusiness => "windowsHelloForBusiness",
        }
    }
}

/// Requirements on keys, certificates, TLS and secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EncryptionPolicy {
    pub kind: EncryptionPolicyKind,
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeyPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretsPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsPolicy {
    pub min_version: TlsVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rsa_bits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_curves: Option<Vec<Curve>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Curve {
    P256,
    P384,
    P521,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificatePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretsPolicy {
    #[serde(default)]
    pub forbid_in_repo: bool,
}

/// How serious a finding is. `deny` blocks apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    #[default]
    Deny,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Deny => "deny",
        })
    }
}

/// Segregation of duties: nobody may hold something from `first` and something from `second`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SodRule {
    pub kind: SodRuleKind,
    pub name: Name,
    pub first: SodSide,
    pub second: SodSide,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<SodException>,
}

/// Roles, duties and privileges on one side of an SoD rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SodSide {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Name>,
    /// Duties a Role declares in `duties`, or duties of the live Finance & Operations roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duties: Vec<String>,
    /// Privileges in the live contents of the roles (Dataverse privilege names, Finance &
    /// Operations privilege identifiers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileges: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SodException {
    pub user: Name,
    pub reason: String,
    pub expires: Date,
}

/// Deserializes an enum written as a map with exactly one key naming the variant, as JSON and
/// most YAML users write it (serde_yaml itself expects `!variant value` tags).
macro_rules! single_key_enum {
    ($ty:ident, $expecting:literal, { $($key:literal => $variant:ident),+ $(,)? }) => {
        single_key_enum!($ty, $expecting, { $($key => $variant),+ } hidden []);
    };
    ($ty:ident, $expecting:literal, { $($key:literal => $variant:ident),+ $(,)? } hidden [$($hidden:literal),*]) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        const ALL: &[&str] = &[$($key),+];
                        const HIDDEN: &[&str] = &[$($hidden),*];
                        let shown: Vec<String> =
                            ALL.iter().filter(|k| !HIDDEN.contains(k)).map(|k| format!("`{k}`")).collect();
                        let key: String = map.next_key()?.ok_or_else(|| de::Error::custom(concat!("expected ", $expecting)))?;
                        let value = match key.as_str() {
                            $($key => $ty::$variant(map.next_value()?),)+
                            // Worded as serde's own unknown_variant, which needs a static list.
                            other => return Err(de::Error::custom(format!(
                                "unknown variant `{other}`, expected {}",
                                match shown.len() {
                                    1 => shown[0].clone(),
                                    2 => format!("{} or {}", shown[0], shown[1]),
                                    _ => format!("one of {}", shown.join(", ")),
                                }
                            ))),
                        };
                        if let Some(extra) = map.next_key::<String>()? {
                            return Err(de::Error::custom(format!(
                                "expected {}; remove `{extra}`", $expecting
                            )));
                        }
                        Ok(value)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

single_key_enum!(Binding, "a map with one key: group, directoryRole, appRole, securityRole, team or groupTeam", {
    "group" => Group,
    "directoryRole" => DirectoryRole,
    "appRole" => AppRole,
    "securityRole" => SecurityRole,
    "team" => Team,
    "groupTeam" => GroupTeam,
    // Only in plans (derived from DataClassifications); validation refuses it in a Role, and
    // error messages do not offer it.
    "fieldSecurityProfile" => FieldSecurityProfile,
} hidden ["fieldSecurityProfile"]);

single_key_enum!(Deliver, "a map with one key: file or keyVault", {
    "file" => File,
    "keyVault" => KeyVault,
});

mod binding;
mod sa_targets;
mod service_account;
mod user_targets;
pub use self::binding::*;
pub use self::sa_targets::{ServiceAccountTargetSettings, ServiceAccountTargets};
pub use self::service_account::*;
pub use user_targets::{UserTargetSettings, UserTargets};

#[cfg(test)]
mod tests;
