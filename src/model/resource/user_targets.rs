//! A user's `targets`: the targets the user exists on (a list), or settings per target (a map).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{Name, User};

/// A user's `targets`: where the user exists, or settings per target.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum UserTargets {
    /// The targets this user exists on, and no others.
    List(Vec<Name>),
    /// Settings per target; the user exists where the usual rules put them.
    Settings(BTreeMap<Name, UserTargetSettings>),
}

/// A user's settings on one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserTargetSettings {
    /// dataverse: the business unit the user belongs to (by name). Moving a user removes their
    /// security roles in Dataverse; keyward gives them back, as the new unit's copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_unit: Option<String>,
}

impl User {
    /// The targets this user exists on, when `targets` lists them.
    pub fn explicit_targets(&self) -> Option<&[Name]> {
        match &self.targets {
            Some(UserTargets::List(l)) => Some(l),
            _ => None,
        }
    }

    /// The targets `targets` names, in either form.
    pub fn named_targets(&self) -> Vec<&Name> {
        match &self.targets {
            Some(UserTargets::List(l)) => l.iter().collect(),
            Some(UserTargets::Settings(m)) => m.keys().collect(),
            None => Vec::new(),
        }
    }

    /// The business unit `targets` gives this user on `target`.
    pub fn business_unit(&self, target: &Name) -> Option<&str> {
        match &self.targets {
            Some(UserTargets::Settings(m)) => m.get(target)?.business_unit.as_deref(),
            _ => None,
        }
    }
}

/// A list or a map, told apart by their shape, so an error inside either names the field at
/// fault instead of "no variant matched".
impl<'de> Deserialize<'de> for UserTargets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> Visitor<'de> for Shape {
            type Value = UserTargets;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of target names, or a map of target name to settings ({businessUnit})")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<UserTargets, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(UserTargets::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<UserTargets, A::Error> {
                BTreeMap::deserialize(de::value::MapAccessDeserializer::new(map)).map(UserTargets::Settings)
            }
        }
        d.deserialize_any(Shape)
    }
}
