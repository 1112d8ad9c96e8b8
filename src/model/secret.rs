//! Secrets: references written in configuration, and values that never display themselves.
//!
//! Configuration files may name a secret only by reference (`${env:NAME}` or `${file:PATH}`);
//! a literal value is rejected by validation. A resolved value lives in a [`Secret`], whose
//! `Display` and `Debug` print `(sensitive)`: the only way to the value is [`Secret::expose`].

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

/// Where a secret comes from. Displays as the reference, which is safe to print.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// `${env:NAME}`: an environment variable.
    Env(String),
    /// `${file:PATH}`: a file's content, without a trailing newline.
    File(String),
}

/// Why a string is not a secret reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    #[error("a secret must be a reference such as ${{env:NAME}} or ${{file:PATH}}, never a literal value")]
    Literal,
    #[error("unknown secret source {0:?}; use ${{env:NAME}} or ${{file:PATH}}")]
    UnknownSource(String),
    #[error("the secret reference names nothing; write ${{env:NAME}} or ${{file:PATH}}")]
    Empty,
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<Self, SecretRefError> {
        let inner = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')).ok_or(SecretRefError::Literal)?;
        let (source, rest) = inner.split_once(':').ok_or(SecretRefError::Literal)?;
        if rest.trim().is_empty() {
            return Err(SecretRefError::Empty);
        }
        match source {
            "env" => Ok(SecretRef::Env(rest.to_string())),
            "file" => Ok(SecretRef::File(rest.to_string())),
            other => Err(SecretRefError::UnknownSource(other.to_string())),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "${{env:{n}}}"),
            SecretRef::File(p) => write!(f, "${{file:{p}}}"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> Cow<'static, str> {
        "SecretRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^\\$\\{(env|file):.+\\}$",
            "description": "A secret reference: ${env:NAME} or ${file:PATH}. Literal secrets are rejected."
        })
    }
}

/// A secret value. Prints as `(sensitive)`; serializes as `"(sensitive)"`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The value itself. Call it only where the value leaves keyward for its destination.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("(sensitive)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(SecretRef::parse("${env:TOKEN}"), Ok(SecretRef::Env("TOKEN".into())));
        assert_eq!(SecretRef::parse("${file:/run/s}"), Ok(SecretRef::File("/run/s".into())));
        assert_eq!(SecretRef::parse("hunter2"), Err(SecretRefError::Literal));
        assert_eq!(SecretRef::parse("${vault:x}"), Err(SecretRefError::UnknownSource("vault".into())));
        assert_eq!(SecretRef::parse("${env:}"), Err(SecretRefError::Empty));
    }

    #[test]
    fn secret_never_displays() {
        let s = Secret::new("canary-4f2a".to_string());
        assert_eq!(format!("{s} {s:?}"), "(sensitive) (sensitive)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"(sensitive)\"");
    }
}
