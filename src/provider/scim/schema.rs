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
use super::wire::{self, ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA};
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

/// Why users and groups cannot be taken to carry `meta.lastModified`: what a schema says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoStamps {
    #[error("its {schema} schema says `meta` is never returned")]
    MetaNeverReturned { schema: &'static str },
    #[error("its {schema} schema's `meta` has no `lastModified`")]
    NoLastModified { schema: &'static str },
    #[error("its {schema} schema says `meta.lastModified` is never returned")]
    LastModifiedNeverReturned { schema: &'static str },
}

/// What the discovery documents say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The user attributes the service does not keep, with the reason.
    pub unkept: BTreeMap<UserField, String>,
    /// Whether users and groups carry `meta.lastModified` as far as the schemas tell (see
    /// [`stamps_from`]); the reason when they do not.
    pub stamps: Result<(), NoStamps>,
}

/// Reads `/ResourceTypes` and `/Schemas`.
pub async fn discover(client: &ScimClient, target: &str) -> Discovered {
    let types = resources(client, "ResourceTypes", target).await;
    let schemas = resources(client, "Schemas", target).await;
    Discovered { unkept: unkept_from(types.as_deref(), schemas.as_deref()), stamps: stamps_from(schemas.as_deref()) }
}

/// Whether the User and Group schemas leave `meta.lastModified` to users and groups.
/// `meta` is a common attribute (RFC 7643 §3.1) that schemas usually do not list: a schema
/// that does not list it, or a service that serves no schemas, leaves the question to the
/// resources themselves (the change feed also needs every resource read to carry one). A
/// schema that lists `meta` with sub-attributes but no `lastModified`, or says it is never
/// returned, does not.
pub fn stamps_from(schemas: Option<&[Value]>) -> Result<(), NoStamps> {
    for (id, what) in [(USER_SCHEMA, "User"), (GROUP_SCHEMA, "Group")] {
        let Some(schema) =
            schemas.and_then(|s| s.iter().find(|s| wire::get(s, "id").and_then(Value::as_str) == Some(id)))
        else {
            continue;
        };
        let attrs = wire::get(schema, "attributes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let Some(meta) = named(attrs, "meta") else { continue };
        let never = |a: &Value| {
            wire::get(a, "returned").and_then(Value::as_str).is_some_and(|r| r.eq_ignore_ascii_case("never"))
        };
        if never(meta) {
            return Err(NoStamps::MetaNeverReturned { schema: what });
        }
        if let Some(subs) = wire::get(meta, "subAttributes").and_then(Value::as_array) {
            match named(subs, "lastModified") {
                None => return Err(NoStamps::NoLastModified { schema: what }),
                Some(l) if never(l) => {
                    return Err(NoStamps::LastModifiedNeverReturned { schema: what });
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
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

/// The attribute `name` of a schema's list, whatever its mutability.
fn named<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|a| wire::get(a, "name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(name)))
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
    fn last_modified_is_left_to_the_resources_unless_a_schema_lists_meta_without_it() {
        // Not served, or `meta` not listed (the usual case: a common attribute).
        assert_eq!(stamps_from(None), Ok(()));
        let plain = [json!({"id": USER_SCHEMA, "attributes": [{"name": "userName"}]})];
        assert_eq!(stamps_from(Some(&plain)), Ok(()));
        let with = |subs: Value| [json!({"id": GROUP_SCHEMA, "attributes": [{"name": "Meta", "subAttributes": subs}]})];
        assert_eq!(stamps_from(Some(&with(json!([{"name": "created"}, {"name": "lastModified"}])))), Ok(()));
        let says = |r: Result<(), NoStamps>| r.unwrap_err().to_string();
        let no_last = stamps_from(Some(&with(json!([{"name": "created"}, {"name": "version"}]))));
        assert_eq!(no_last, Err(NoStamps::NoLastModified { schema: "Group" }));
        assert_eq!(says(no_last), "its Group schema's `meta` has no `lastModified`");
        assert_eq!(
            says(stamps_from(Some(&with(json!([{"name": "lastModified", "returned": "never"}]))))),
            "its Group schema says `meta.lastModified` is never returned"
        );
        let never = [json!({"id": USER_SCHEMA, "attributes": [{"name": "meta", "returned": "NEVER"}]})];
        assert_eq!(says(stamps_from(Some(&never))), "its User schema says `meta` is never returned");
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
