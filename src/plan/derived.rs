//! Bindings derived from the desired state rather than written in a Role: the field (column)
//! security profile that keeps a DataClassification's columns readable only by its readers.
//!
//! A pure function of the desired model, so the planner treats a derived binding like any
//! other: it is created when missing (where the target can create it), its settings are kept,
//! and its membership is planned back when it drifts.

use crate::model::{Binding, DataClassification, DesiredState, FieldProfileRef, Level, Name};

/// A binding the configuration implies on one target, and the roles whose holders belong in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedBinding<'a> {
    /// The DataClassification it enforces.
    pub classification: &'a Name,
    pub binding: Binding,
    /// The roles whose holders are its members.
    pub readers: Vec<&'a Name>,
}

/// The roles that may read `dc`: its `readers`, or without them every role whose
/// `requires.clearance` reaches its level.
pub fn readers<'a>(desired: &'a DesiredState, dc: &'a DataClassification) -> Vec<&'a Name> {
    match &dc.readers {
        Some(list) => list.iter().collect(),
        None => desired
            .roles
            .iter()
            .filter(|(_, r)| r.requires.as_ref().and_then(|q| q.clearance).unwrap_or(Level::Public) >= dc.level)
            .map(|(n, _)| n)
            .collect(),
    }
}

/// The field security profiles `target` must hold: one per DataClassification listing columns
/// there, named after the classification, letting the holders of its reader roles (and only
/// them) read those columns.
pub fn field_profiles<'a>(desired: &'a DesiredState, target: &Name) -> Vec<DerivedBinding<'a>> {
    let mut out = Vec::new();
    for (name, dc) in &desired.data_classifications {
        let Some(assets) = dc.assets.get(target) else { continue };
        if assets.columns.is_empty() {
            continue;
        }
        let mut columns: Vec<String> = assets.columns.iter().map(|c| c.to_lowercase()).collect();
        columns.sort();
        columns.dedup();
        out.push(DerivedBinding {
            classification: name,
            binding: Binding::FieldSecurityProfile(FieldProfileRef { name: name.to_string(), columns }),
            readers: readers(desired, dc),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enterprise() -> DesiredState {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/enterprise");
        let v = crate::validate::validate(&crate::load::load_dir(&root).unwrap());
        assert!(!v.has_errors(), "{:?}", v.diagnostics);
        v.state.unwrap()
    }

    #[test]
    fn a_profile_per_classification_with_columns_on_the_target() {
        let state = enterprise();
        let d365 = Name::new("d365").unwrap();
        let got = field_profiles(&state, &d365);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].classification.as_str(), "customer-credit");
        assert_eq!(
            got[0].binding,
            Binding::FieldSecurityProfile(FieldProfileRef {
                name: "customer-credit".into(),
                columns: vec!["account.creditlimit".into(), "account.creditonhold".into()],
            })
        );
        let readers: Vec<&str> = got[0].readers.iter().map(|n| n.as_str()).collect();
        assert_eq!(readers, vec!["sales-manager"]);
        // No columns on the other targets.
        assert!(field_profiles(&state, &Name::new("finance").unwrap()).is_empty());
    }

    #[test]
    fn without_readers_the_roles_cleared_for_the_level_read() {
        let state = enterprise();
        let mut dc = state.data_classifications[&Name::new("vendor-bank-details").unwrap()].clone();
        dc.readers = None;
        let mut got: Vec<&str> = readers(&state, &dc).iter().map(|n| n.as_str()).collect();
        got.sort();
        assert_eq!(got, vec!["ap-manager", "finance-admin", "it-admin"]);
    }
}
