//! A service account's `targets`: the targets it exists on (a list), or settings per target (a
//! map) for targets that know it by its Entra application: a Dataverse application user, a
//! Finance & Operations user mapped to the application.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{Name, ServiceAccount};

/// A service account's `targets`: where it exists, or settings per target.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ServiceAccountTargets {
    /// The targets this account exists on, and no others.
    List(Vec<Name>),
    /// Settings per target; the account exists where the usual rules put it (every target
    /// that holds all users, and those where its roles are bound).
    Settings(BTreeMap<Name, ServiceAccountTargetSettings>),
}

/// A service account's settings on one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceAccountTargetSettings {
    /// dataverse, fno: the client id (`appId`) of the account's Entra app registration. The
    /// target knows the account by it: a Dataverse application user, or the Finance &
    /// Operations user the application is mapped to (Microsoft Entra applications). Leave it
    /// out when the account is on a graph target: the client id of the app registration keyward
    /// keeps there is taken (the application user is made once that registration exists); a
    /// declared one that is not that registration's is refused.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lower_case")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"))]
    pub application_id: Option<String>,
    /// dataverse: the business unit the application user belongs to (by name); the target's
    /// `businessUnit` when absent, else the root unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_unit: Option<String>,
}

/// Client ids compare without regard to case: kept in lower case, as targets report them.
fn lower_case<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| s.to_ascii_lowercase()))
}

impl ServiceAccount {
    /// The targets this account exists on, when `targets` lists them.
    pub fn explicit_targets(&self) -> Option<&[Name]> {
        match &self.targets {
            Some(ServiceAccountTargets::List(l)) => Some(l),
            _ => None,
        }
    }

    /// The settings `targets` gives this account on `target`.
    pub fn target_settings(&self, target: &Name) -> Option<&ServiceAccountTargetSettings> {
        match &self.targets {
            Some(ServiceAccountTargets::Settings(m)) => m.get(target),
            _ => None,
        }
    }

    /// The client id of the account's application on `target`, in lower case.
    pub fn application_id(&self, target: &Name) -> Option<&str> {
        self.target_settings(target)?.application_id.as_deref()
    }
}

/// A list or a map, told apart by their shape, so an error inside either names the field at
/// fault instead of "no variant matched".
impl<'de> Deserialize<'de> for ServiceAccountTargets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> Visitor<'de> for Shape {
            type Value = ServiceAccountTargets;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a list of target names, or a map of target name to settings ({applicationId, businessUnit})",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ServiceAccountTargets, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(ServiceAccountTargets::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ServiceAccountTargets, A::Error> {
                BTreeMap::deserialize(de::value::MapAccessDeserializer::new(map)).map(ServiceAccountTargets::Settings)
            }
        }
        d.deserialize_any(Shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_a_list_or_settings_and_client_ids_are_kept_in_lower_case() {
        let list: ServiceAccountTargets = serde_yaml::from_str("[d365, entra]").unwrap();
        assert_eq!(list, ServiceAccountTargets::List(vec![Name::new("d365").unwrap(), Name::new("entra").unwrap()]));
        let map: ServiceAccountTargets =
            serde_yaml::from_str("d365: {applicationId: AAAAAAAA-0000-0000-0000-0000000000A1, businessUnit: Sales}")
                .unwrap();
        let ServiceAccountTargets::Settings(m) = map else { panic!("a map") };
        let s = &m[&Name::new("d365").unwrap()];
        assert_eq!(s.application_id.as_deref(), Some("aaaaaaaa-0000-0000-0000-0000000000a1"));
        assert_eq!(s.business_unit.as_deref(), Some("Sales"));
        let e = serde_yaml::from_str::<ServiceAccountTargets>("d365: {appId: x}").unwrap_err().to_string();
        assert!(e.contains("appId"), "{e}");
    }
}
