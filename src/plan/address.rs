//! Where a change lands: a plan address, `TARGET.KIND.NAME`, and the kinds of live object.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::Name;

/// The kind of live object a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    User,
    Role,
    Assignment,
    ServiceAccount,
    Credential,
    AuthMethod,
    /// A field security profile kept for a DataClassification (`NAME`), and its members
    /// (`SUBJECT/NAME`).
    FieldProfile,
    /// An eligible assignment (`SUBJECT/ROLE`): the holder may activate the role.
    Eligibility,
    /// What activating a role takes on the target (`ROLE`).
    Activation,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 9] = [
        ObjectKind::User,
        ObjectKind::Role,
        ObjectKind::Assignment,
        ObjectKind::ServiceAccount,
        ObjectKind::Credential,
        ObjectKind::AuthMethod,
        ObjectKind::FieldProfile,
        ObjectKind::Eligibility,
        ObjectKind::Activation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::User => "user",
            ObjectKind::Role => "role",
            ObjectKind::Assignment => "assignment",
            ObjectKind::ServiceAccount => "service-account",
            ObjectKind::Credential => "credential",
            ObjectKind::AuthMethod => "auth-method",
            ObjectKind::FieldProfile => "field-profile",
            ObjectKind::Eligibility => "eligibility",
            ObjectKind::Activation => "activation",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `TARGET.KIND.NAME`, for example `okta.user.alice` or `okta.assignment.alice/ap-clerk`.
///
/// NAME is the resource's name in git; for a live account that git does not know, it is the
/// account's userName.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub target: Name,
    pub kind: ObjectKind,
    pub name: String,
}

impl Address {
    pub fn new(target: &Name, kind: ObjectKind, name: impl Into<String>) -> Self {
        Address { target: target.clone(), kind, name: name.into() }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.target, self.kind, self.name)
    }
}

/// Why a string is not an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("bad target in address {address:?}: {source}")]
    Target { address: String, source: crate::model::NameError },
    #[error("{0:?} is not an address of the form TARGET.KIND.NAME")]
    Shape(String),
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        for kind in ObjectKind::ALL {
            let sep = format!(".{}.", kind.as_str());
            if let Some(i) = s.find(&sep) {
                let target =
                    Name::new(&s[..i]).map_err(|source| AddressError::Target { address: s.to_string(), source })?;
                let name = &s[i + sep.len()..];
                if name.is_empty() {
                    break;
                }
                return Ok(Address { target, kind, name: name.to_string() });
            }
        }
        Err(AddressError::Shape(s.to_string()))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for s in
            ["okta.user.alice", "okta.assignment.alice/ap-clerk", "a.b.user.old@x.example", "t.service-account.bot"]
        {
            let a: Address = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert_eq!("a.b.user.x".parse::<Address>().unwrap().target.as_str(), "a.b");
        assert_eq!("nonsense".parse::<Address>(), Err(AddressError::Shape("nonsense".into())));
        assert_eq!(
            "t.user.".parse::<Address>().unwrap_err().to_string(),
            r#""t.user." is not an address of the form TARGET.KIND.NAME"#
        );
        assert_eq!(
            "T.user.x".parse::<Address>().unwrap_err().to_string(),
            r#"bad target in address "T.user.x": a name must start with a lowercase letter or digit, not 'T'"#
        );
    }
}
