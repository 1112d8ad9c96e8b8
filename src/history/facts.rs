//! The facts of one configuration file whose history is followed, read leniently from its YAML.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::model::Kind;

/// Something in the configuration whose history is followed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FactKey {
    /// A resource (its whole document).
    Resource { kind: Kind, name: String },
    /// A role held by a User or a ServiceAccount (one item of its `roles`).
    Grant { kind: Kind, holder: String, role: String },
    /// What a role is on a target (one entry of its `bindings`).
    Binding { role: String, target: String },
    /// An exception to a SodRule for one user.
    Exception { rule: String, user: String },
}

impl fmt::Display for FactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactKey::Resource { kind, name } => write!(f, "{kind}/{name}"),
            FactKey::Grant { kind, holder, role } => write!(f, "{kind}/{holder}/roles/{role}"),
            FactKey::Binding { role, target } => write!(f, "Role/{role}/bindings/{target}"),
            FactKey::Exception { rule, user } => write!(f, "SodRule/{rule}/exceptions/{user}"),
        }
    }
}

impl Serialize for FactKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Every fact of one YAML file, with a canonical text of its value (to tell a change).
/// Documents that are not YAML mappings with a known `kind` and a string `name` are skipped.
pub fn facts_of(text: &str) -> BTreeMap<FactKey, String> {
    use serde::Deserialize;
    use serde_yaml::Value;

    let mut out = BTreeMap::new();
    let canonical = |v: &Value| serde_json::to_string(v).unwrap_or_default();
    for doc in serde_yaml::Deserializer::from_str(text) {
        // A syntax error ends the stream (the deserializer would repeat it forever).
        let Ok(value) = Value::deserialize(doc) else { break };
        let Some(map) = value.as_mapping() else { continue };
        let Some(kind) = map.get("kind").and_then(Value::as_str).and_then(Kind::parse) else { continue };
        let Some(name) = map.get("name").and_then(Value::as_str) else { continue };
        let name = name.to_string();
        out.insert(FactKey::Resource { kind, name: name.clone() }, canonical(&value));
        match kind {
            Kind::User | Kind::ServiceAccount => {
                for item in map.get("roles").and_then(Value::as_sequence).into_iter().flatten() {
                    let role = match item {
                        Value::String(r) => Some(r.as_str()),
                        Value::Mapping(m) => m.get("role").and_then(Value::as_str),
                        _ => None,
                    };
                    if let Some(role) = role {
                        let key = FactKey::Grant { kind, holder: name.clone(), role: role.to_string() };
                        out.insert(key, canonical(item));
                    }
                }
            }
            Kind::Role => {
                for (target, binding) in map.get("bindings").and_then(Value::as_mapping).into_iter().flatten() {
                    if let Some(target) = target.as_str() {
                        let key = FactKey::Binding { role: name.clone(), target: target.to_string() };
                        out.insert(key, canonical(binding));
                    }
                }
            }
            Kind::SodRule => {
                for e in map.get("exceptions").and_then(Value::as_sequence).into_iter().flatten() {
                    if let Some(user) = e.as_mapping().and_then(|m| m.get("user")).and_then(Value::as_str) {
                        let key = FactKey::Exception { rule: name.clone(), user: user.to_string() };
                        out.insert(key, canonical(e));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_bindings_exceptions_and_resources() {
        let text = "kind: User\nname: ann\nuserName: ann@x\nroles: [a, {role: b, expires: 2027-01-01}]\n---\n\
                    kind: Role\nname: b\nbindings: {dir: {group: bs}}\n---\n\
                    kind: SodRule\nname: r\nfirst: {roles: [a]}\nsecond: {roles: [b]}\n\
                    exceptions: [{user: ann, reason: small team, expires: 2027-01-01}]\n---\n\
                    not: a resource\n---\n[1, 2]\n";
        let f = facts_of(text);
        let keys: Vec<String> = f.keys().map(ToString::to_string).collect();
        assert_eq!(
            keys,
            [
                "User/ann",
                "Role/b",
                "SodRule/r",
                "User/ann/roles/a",
                "User/ann/roles/b",
                "Role/b/bindings/dir",
                "SodRule/r/exceptions/ann"
            ]
        );
        assert_eq!(f[&FactKey::Grant { kind: Kind::User, holder: "ann".into(), role: "a".into() }], "\"a\"");
        assert!(f[&FactKey::Grant { kind: Kind::User, holder: "ann".into(), role: "b".into() }].contains("2027"));
        // Text that is not YAML gives nothing, and no error.
        assert!(facts_of("kind: User\nname: [unclosed").is_empty());
    }
}
