//! Validated names: the stable keys of resources and targets.
//!
//! A [`Name`] always matches `[a-z0-9][a-z0-9._-]*` and is at most 253 bytes long, so it can
//! appear in plan addresses, file names and audit records without quoting.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 253;

/// A resource or target name, validated on construction.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// Why a string is not a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("a name is at most {MAX_NAME_LEN} bytes long")]
    TooLong,
    #[error("a name must start with a lowercase letter or digit, not {0:?}")]
    BadStart(char),
    #[error("a name may hold only lowercase letters, digits, '.', '_' and '-', not {0:?}")]
    BadChar(char),
}

impl Name {
    /// Validates `s` as a name.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        Self::check(&s)?;
        Ok(Name(s))
    }

    fn check(s: &str) -> Result<(), NameError> {
        let mut chars = s.chars();
        let first = chars.next().ok_or(NameError::Empty)?;
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(NameError::BadStart(first));
        }
        for c in chars {
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')) {
                return Err(NameError::BadChar(c));
            }
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::new(s)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(s.clone()).map_err(|e| serde::de::Error::custom(format!("invalid name {s:?}: {e}")))
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9._-]*$",
            "maxLength": MAX_NAME_LEN,
            "description": "A name: lowercase letters, digits, '.', '_' and '-', starting with a letter or digit."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for s in ["alice", "a", "0", "ap-clerk", "svc.payments_1"] {
            assert!(Name::new(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new("Alice"), Err(NameError::BadStart('A')));
        assert_eq!(Name::new("-x"), Err(NameError::BadStart('-')));
        assert_eq!(Name::new("a b"), Err(NameError::BadChar(' ')));
        // Cyrillic 'а' looks like Latin 'a'.
        assert_eq!(Name::new("\u{430}lice"), Err(NameError::BadStart('\u{430}')));
        assert_eq!(Name::new("x".repeat(254)), Err(NameError::TooLong));
    }
}
