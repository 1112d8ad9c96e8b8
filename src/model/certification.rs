//! Certification campaigns as files: `reviews/NAME/campaign.yaml` (a [`Campaign`]) and one
//! `reviews/NAME/REVIEWER.yaml` per reviewer (a [`Certification`]).
//!
//! `keyward certify open` writes them; reviewers fill in `decision` (and `reason`) in a pull
//! request; `keyward certify close` reads them back. Everything else on a line is evidence
//! keyward wrote when the campaign opened: reviewers read it and leave it as it is.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::resource::{CampaignKind, CertificationKind, Owner};
use super::{Date, Expiry, Instant, Name, NameError};

/// A certification campaign: who holds what, certified by the accountable people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Campaign {
    pub kind: CampaignKind,
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Which access is certified: `privileged` roles, `all` roles, or one role (`role:NAME`).
    pub scope: CampaignScope,
    /// When the campaign was opened.
    pub opened: Instant,
    /// The git commit the campaign was opened at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The last day to review.
    pub due: Date,
    /// What closing does with lines nobody reviewed by `due`: `keep` them (the default) or
    /// `revoke` them.
    #[serde(default)]
    pub unreviewed: Unreviewed,
    /// When the campaign was closed; a closed campaign is not closed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Instant>,
}

/// Why a string is not a campaign scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("invalid role name {role:?}: {source}")]
    RoleName { role: String, source: NameError },
    #[error("unknown scope {0:?}; write `privileged`, `all` or `role:NAME`")]
    Unknown(String),
}

/// What a campaign covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CampaignScope {
    /// Every assignment of a privileged role.
    Privileged,
    /// Every assignment.
    All,
    /// Every assignment of one role.
    Role(Name),
}

impl CampaignScope {
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        match s {
            "privileged" => Ok(CampaignScope::Privileged),
            "all" => Ok(CampaignScope::All),
            _ => match s.strip_prefix("role:") {
                Some(r) => Name::new(r)
                    .map(CampaignScope::Role)
                    .map_err(|source| ScopeError::RoleName { role: r.to_string(), source }),
                None => Err(ScopeError::Unknown(s.to_string())),
            },
        }
    }
}

impl fmt::Display for CampaignScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CampaignScope::Privileged => f.write_str("privileged"),
            CampaignScope::All => f.write_str("all"),
            CampaignScope::Role(r) => write!(f, "role:{r}"),
        }
    }
}

impl Serialize for CampaignScope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CampaignScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CampaignScope::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for CampaignScope {
    fn schema_name() -> Cow<'static, str> {
        "CampaignScope".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(privileged|all|role:[a-z0-9][a-z0-9._-]*)$",
            "description": "privileged, all, or role:NAME"
        })
    }
}

/// What closing a campaign does with lines nobody reviewed by the due date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unreviewed {
    #[default]
    Keep,
    Revoke,
}

/// One reviewer's part of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Certification {
    pub kind: CertificationKind,
    /// `CAMPAIGN.REVIEWER`.
    pub name: Name,
    /// The campaign this belongs to.
    pub campaign: Name,
    /// Who certifies these lines: a User, or `{group: NAME}` (any of its members).
    pub reviewer: Owner,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<CertificationLine>,
}

/// One assignment to certify. Exactly one of `user` and `serviceAccount` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificationLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<Name>,
    pub role: Name,
    /// Findings of the access review about this assignment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Flag>,
    /// What keyward knew when the campaign opened.
    #[serde(default)]
    pub evidence: Evidence,
    /// The reviewer's decision: `keep` or `revoke`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Why; required with `revoke`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CertificationLine {
    /// The holder's name: the user's, or the service account's.
    pub fn holder(&self) -> Option<&Name> {
        self.user.as_ref().or(self.service_account.as_ref())
    }
}

/// A reviewer's decision on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Keep,
    Revoke,
}

/// A finding of the access review (`keyward audit review`) about a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// No sign-in within an AuthenticationPolicy's `staleAfter` on a target that reports them.
    Stale,
    /// The assignment has expired (the next apply revokes it).
    Expired,
    /// The assignment expires within the review window.
    Expiring,
    /// The holder's roles break a segregation-of-duties rule without a current exception.
    SodConflict,
    /// The holder has an exception to a segregation-of-duties rule that names this role.
    SodException,
    /// The privileged access lacks the authentication it requires.
    MissingAuthentication,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Stale => "stale",
            Flag::Expired => "expired",
            Flag::Expiring => "expiring",
            Flag::SodConflict => "sod-conflict",
            Flag::SodException => "sod-exception",
            Flag::MissingAuthentication => "missing-authentication",
        }
    }
}

/// What keyward knows about an assignment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Evidence {
    /// The targets the role is bound on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Name>,
    /// The last sign-in on each target that reports it; `never` when it reports none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_sign_in: BTreeMap<Name, String>,
    /// The commit that last wrote the assignment's line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<Provenance>,
    /// When keyward last applied it, from the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Instant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expiry>,
    /// The grant's reason and ticket, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Exceptions to segregation-of-duties rules that cover this assignment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sod_exceptions: Vec<String>,
    /// What the access review says, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A git commit, as evidence: its id, time and author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Provenance {
    pub commit: String,
    pub time: Instant,
    /// `Name <email>` as git recorded it.
    pub author: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_errors_say_what_to_write() {
        assert_eq!(CampaignScope::parse("all"), Ok(CampaignScope::All));
        assert_eq!(CampaignScope::parse("role:admins").unwrap().to_string(), "role:admins");
        let e = CampaignScope::parse("everyone").unwrap_err();
        assert_eq!(e, ScopeError::Unknown("everyone".into()));
        assert_eq!(e.to_string(), r#"unknown scope "everyone"; write `privileged`, `all` or `role:NAME`"#);
        let e = CampaignScope::parse("role:Admins").unwrap_err();
        assert_eq!(e, ScopeError::RoleName { role: "Admins".into(), source: NameError::BadStart('A') });
        assert_eq!(
            e.to_string(),
            r#"invalid role name "Admins": a name must start with a lowercase letter or digit, not 'A'"#
        );
    }
}
