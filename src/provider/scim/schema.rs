//! What the service says it keeps: the User resource type in `/ResourceTypes` (which schema
//! extensions it takes) and the User schemas in `/Schemas` (which attributes they have),
//! RFC 7643 §6 and §7. Read once per run, with the service provider configuration.
//!
//! A managed attribute the service does not list is not kept there: keyward leaves it
//! unmanaged on that target (see [`crate::model::LiveTarget::unkept`]) instead of sending it
//! on every run. A service that serves neither document, or answers with something that is not
//! a list of them, is taken to keep everything.

use std::collections::BTreeMap;

use serde_json::Value;

use super::client::ScimClient;
use super::wire::{self, ENTERPRISE, USER_SCHEMA};
use crate::model::UserField;

/// The attributes of keyward's model, by the schema and attribute (and sub-attribute) that
/// hold them on the wire.
const CORE: &[(UserField, &str, Option<&str>)] = &[
    (UserField::DisplayName, "displayName", None),
    (UserField::GivenName, "name", Some("givenName")),
    (UserField::FamilyName, "name", Some("familyName")),
    (UserField::Email, "emails", None),
    (UserField::JobTitle, "title", None),
];
const EXTENSION: &[(UserField, &str)] = &[
    (UserField::Department, "department"),
    (UserField::EmployeeId, "employeeNumber"),
    (UserField::Manager, "manager"),
];

/// The user attributes the service does not keep, with the reason.
pub async fn unkept(client: &ScimClient, target: &str) -> BTreeMap<UserField, String> {
    let types = resources(client, "ResourceTypes", target).await;
    let schemas = resources(client, "Schemas", target).await;
    unkept_from(types.as_deref(), schemas.as_deref())
}

/// [`unkept`], from the documents as read (`None`: not served).
pub fn unkept_from(types: Option<&[Value]>, schemas: Option<&[Value]>) -> BTreeMap<UserField, String> {
    let mut out = BTreeMap::new();
    let user_type = types.and_then(|t| {
        t.iter().find(|r| wire::get(r, "schema").and_then(Value::as_str).is_some_and(|s| s == USER_SCHEMA))
    });
    let extension_taken = match user_type {
        None => true,
        Some(t) => wire::get(t, "schemaExtensions").and_then(Value::as_array).is_some_and(|exts| {
            exts.iter().any(|e| wire::get(e, "schema").and_then(Value::as_str).is_some_and(|s| s == ENTERPRISE))
        }),
    };
    if !extension_taken {
        for (field, _) in EXTENSION {
            out.insert(*field, "its User resource type lists no enterprise extension".to_string());
        }
    }
    let schema = |id: &str| {
        schemas?.iter().find(|s| wire::get(s, "id").and_then(Value::as_str) == Some(id)).and_then(|s| {
            let attrs = wire::get(s, "attributes")?.as_array()?;
            Some(attrs.as_slice())
        })
    };
    if let Some(attrs) = schema(USER_SCHEMA) {
        for (field, name, sub) in CORE {
            let kept = match (attribute(attrs, name), sub) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(a), Some(sub)) => match wire::get(a, "subAttributes").and_then(Value::as_array) {
                    Some(subs) => attribute(subs, sub).is_some(),
                    None => true,
                },
            };
            if !kept {
                let shown = sub.map_or_else(|| name.to_string(), |s| format!("{name}.{s}"));
                out.insert(*field, format!("its User schema has no `{shown}`"));
            }
        }
    }
    if extension_taken && let Some(attrs) = schema(ENTERPRISE) {
        for (field, name) in EXTENSION {
            if attribute(attrs, name).is_none() {
                out.insert(*field, format!("its enterprise User schema has no `{name}`"));
            }
        }
    }
    out
}

/// The attribute `name` of a schema's list, unless it is read-only (RFC 7643 §2.2).
fn attribute<'a>(attrs: &'a [Value], name: &str) -> Option<&'a Value> {
    attrs.iter().find(|a| {
        wire::get(a, "name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(name))
            && !wire::get(a, "mutability").and_then(Value::as_str).is_some_and(|m| m.eq_ignore_ascii_case("readOnly"))
    })
}

/// The resources of a discovery endpoint, or `None` when the service does not serve it as a
/// list (some answer 404 or 501; others a bare array).
async fn resources(client: &ScimClient, endpoint: &str, target: &str) -> Option<Vec<Value>> {
    match client.get_json(client.url(&[endpoint])).await {
        // Lenient: django-scim2's lists of them carry no totalResults.
        Ok((v, _)) => match (wire::get(&v, "Resources").and_then(Value::as_array), v.as_array()) {
            (Some(a), _) | (None, Some(a)) => Some(a.clone()),
            (None, None) => {
                tracing::warn!(target_name = %target, endpoint, "ignoring the SCIM service's discovery document: it lists no Resources");
                None
            }
        },
        Err(e) => {
            tracing::info!(target_name = %target, endpoint, "the SCIM service does not serve its schema: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user_type(extensions: Option<Value>) -> Value {
        let mut t = json!({"id": "User", "name": "User", "endpoint": "/Users", "schema": USER_SCHEMA});
        if let Some(e) = extensions {
            t["schemaExtensions"] = e;
        }
        t
    }

    #[test]
    fn a_user_type_without_the_enterprise_extension_keeps_none_of_its_attributes() {
        let types = [user_type(None)];
        let unkept = unkept_from(Some(&types), None);
        assert_eq!(
            unkept.keys().copied().collect::<Vec<_>>(),
            vec![UserField::Department, UserField::Manager, UserField::EmployeeId]
        );
        let types = [user_type(Some(json!([{"schema": ENTERPRISE, "required": false}])))];
        assert!(unkept_from(Some(&types), None).is_empty());
        // Nothing served: everything is kept.
        assert!(unkept_from(None, None).is_empty());
    }

    #[test]
    fn attributes_a_schema_lacks_or_makes_read_only_are_not_kept() {
        let schemas = [
            json!({"id": USER_SCHEMA, "attributes": [
                {"name": "userName"}, {"name": "displayName", "mutability": "readOnly"},
                {"name": "name", "subAttributes": [{"name": "givenName"}]}, {"name": "emails"}]}),
            json!({"id": ENTERPRISE, "attributes": [{"name": "department"}, {"name": "manager"}]}),
        ];
        let unkept = unkept_from(None, Some(&schemas));
        assert_eq!(
            unkept,
            BTreeMap::from([
                (UserField::DisplayName, "its User schema has no `displayName`".to_string()),
                (UserField::FamilyName, "its User schema has no `name.familyName`".to_string()),
                (UserField::JobTitle, "its User schema has no `title`".to_string()),
                (UserField::EmployeeId, "its enterprise User schema has no `employeeNumber`".to_string()),
            ])
        );
    }
}
