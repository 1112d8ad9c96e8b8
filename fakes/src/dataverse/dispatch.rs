//! One request below the service root, outer or inside a `$batch`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::security::Rel;
use super::{API, Dataverse, Inner, MAX_PAGE, Row, key_of};
use crate::odata::{self, Answer, error};

/// `set(key)` → (set, lower-cased key).
pub(super) fn parse(s: &str) -> (String, Option<String>) {
    match s.split_once('(') {
        Some((set, rest)) => (set.to_string(), Some(rest.trim_end_matches(')').trim_matches('\'').to_lowercase())),
        None => (s.to_string(), None),
    }
}

/// The id inside a reference such as `https://…/roles(00000000-…)`.
pub(super) fn ref_id(v: &Value) -> Option<String> {
    v.as_str().and_then(|s| s.rsplit_once('(')).map(|(_, r)| r.trim_end_matches(')').to_lowercase())
}

pub(super) fn not_found(set: &str, id: &str) -> Answer {
    error(StatusCode::NOT_FOUND, "0x80040217", &format!("{set} With Id = {id} Does Not Exist"))
}

/// Entity sets a `POST` may create rows in.
const CREATABLE: [&str; 6] =
    ["businessunits", "roles", "systemusers", "fieldsecurityprofiles", "fieldpermissions", "teams"];

impl Dataverse {
    /// Carries out one request below the service root.
    pub(super) fn dispatch(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
        base: &str,
    ) -> Answer {
        let header = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str());
        let body: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => Some(v),
                Err(_) => return error(StatusCode::BAD_REQUEST, "0x80040216", "The request body is not JSON."),
            }
        };
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut inner = self.lock();
        match (method, segs.as_slice()) {
            (&Method::GET, [set]) => {
                let (set, id) = parse(set);
                if set == "RetrieveRolePrivilegesRole" {
                    return inner.retrieve_role_privileges(id.as_deref());
                }
                if let Some(a) = inner.tracked_read(&set, id.is_some(), query, header("prefer"), base) {
                    return a;
                }
                let rows: Vec<Value> = match set.as_str() {
                    s if super::security::intersect(s).is_some() => inner.intersect_rows(s),
                    s if key_of(s).is_some() => match id {
                        Some(id) => {
                            return match inner.sets.get(s).and_then(|m| m.get(&id)) {
                                Some(r) => Answer::json(Value::Object(r.clone())),
                                None => not_found(s, &id),
                            };
                        }
                        None => inner
                            .sets
                            .get(s)
                            .into_iter()
                            .flat_map(|m| m.values())
                            .map(|r| Value::Object(r.clone()))
                            .collect(),
                    },
                    _ => {
                        return error(
                            StatusCode::NOT_FOUND,
                            "0x8006088a",
                            &format!("Resource not found for the segment '{set}'."),
                        );
                    }
                };
                let mut a =
                    odata::page(&rows, header("prefer"), query, MAX_PAGE, inner.page_cap, &format!("{base}{API}{set}"));
                if inner.stuck_paging
                    && let Some(b) = a.body.as_mut()
                    && b.get("@odata.nextLink").is_some()
                {
                    b["@odata.nextLink"] = json!(format!("{base}{API}{set}?$skiptoken=0"));
                }
                a
            }
            // The records related to one: `roles(id)/roleprivileges_association`,
            // `teams(id)/teamroles_association`, `systemusers(id)/systemuserroles_association`, …
            (&Method::GET, [entity, nav]) => {
                let (set, Some(id)) = parse(entity) else {
                    return error(StatusCode::BAD_REQUEST, "0x80040216", "An entity is required.");
                };
                inner.related(&set, &id, nav)
            }
            (&Method::POST, [set]) => {
                let (set, _) = parse(set);
                if !CREATABLE.contains(&set.as_str()) {
                    return error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "0x80060888",
                        &format!("POST is not supported on {set}."),
                    );
                }
                if inner.denied.contains(&set) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "0x80040220",
                        "PrivilegeDenied: the caller lacks the privilege to create it.",
                    );
                }
                let Some(Value::Object(fields)) = body else {
                    return error(StatusCode::BAD_REQUEST, "0x80040216", "A body is required.");
                };
                let row = bind(fields);
                let id = match set.as_str() {
                    "systemusers" => inner.create_user(row),
                    "businessunits" => inner.create_business_unit(row),
                    "teams" => inner.create_team(row),
                    _ => Ok(Self::insert(&mut inner, &set, row)),
                };
                let id = match id {
                    Ok(id) => id,
                    Err(a) => return a,
                };
                let mut a = Answer::no_content();
                a.headers.push(("OData-EntityId", format!("{base}{API}{set}({id})")));
                a
            }
            (&Method::POST, [entity, "Microsoft.Dynamics.CRM.SetBusinessSystemUser" | "SetBusinessSystemUser"]) => {
                let (set, Some(id)) = parse(entity) else {
                    return error(StatusCode::BAD_REQUEST, "0x80040216", "An entity is required.");
                };
                if set != "systemusers" {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "0x80040216",
                        "SetBusinessSystemUser is bound to systemuser.",
                    );
                }
                let Some(bu) =
                    body.as_ref().and_then(|b| b["BusinessUnit"]["businessunitid"].as_str()).map(str::to_lowercase)
                else {
                    return error(StatusCode::BAD_REQUEST, "0x80040203", "BusinessUnit is required.");
                };
                if body.as_ref().is_none_or(|b| b["ReassignPrincipal"].is_null()) {
                    return error(StatusCode::BAD_REQUEST, "0x80040203", "ReassignPrincipal is required.");
                }
                match inner.move_user(&id, &bu) {
                    Ok(()) => Answer::no_content(),
                    Err(a) => a,
                }
            }
            (&Method::PATCH, [entity]) => {
                let (set, Some(id)) = parse(entity) else {
                    return error(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", "PATCH needs an entity.");
                };
                let fields = match body {
                    Some(Value::Object(f)) => bind(f),
                    _ => Row::new(),
                };
                inner.patch(&set, &id, fields, header("if-match"))
            }
            (&Method::DELETE, [entity]) => {
                let (set, Some(id)) = parse(entity) else {
                    return error(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", "DELETE needs an entity.");
                };
                inner.delete(&set, &id)
            }
            (_, [entity, nav, "$ref"]) => {
                let (set, Some(id)) = parse(entity) else {
                    return error(StatusCode::BAD_REQUEST, "0x80040216", "An entity is required.");
                };
                let (nav, nav_id) = parse(nav);
                let referenced = body.as_ref().and_then(|b| b.get("@odata.id")).and_then(ref_id);
                let other = match *method {
                    Method::POST => referenced,
                    Method::DELETE => nav_id,
                    _ => return error(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", "Use POST or DELETE on $ref."),
                };
                let Some(rel) = Rel::of(&set, &nav) else {
                    return error(StatusCode::NOT_FOUND, "0x8006088a", &format!("No relationship {nav} on {set}."));
                };
                let Some(other) = other else {
                    return error(StatusCode::BAD_REQUEST, "0x80040216", "Both sides of the association are required.");
                };
                inner.relate(rel, &id, &other, *method == Method::POST)
            }
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", &format!("{method} is not supported on {path}.")),
        }
    }
}

/// A request body with `nav@odata.bind` lookups turned into `_nav_value`.
fn bind(fields: Row) -> Row {
    let mut row = Row::new();
    for (k, v) in fields {
        match k.strip_suffix("@odata.bind") {
            Some(nav) => {
                row.insert(format!("_{nav}_value"), ref_id(&v).map_or(Value::Null, Value::from));
            }
            None => {
                row.insert(k, v);
            }
        }
    }
    row
}

impl Inner {
    /// `PATCH set(id)`: `If-Match`, the columns a table does not let change, and the business
    /// unit move of a user.
    fn patch(&mut self, set: &str, id: &str, fields: Row, if_match: Option<&str>) -> Answer {
        let Some(row) = self.sets.get(set).and_then(|m| m.get(id)) else { return not_found(set, id) };
        if let Some(tag) = if_match
            && tag != "*"
            && row.get("@odata.etag").and_then(Value::as_str) != Some(tag)
        {
            return error(
                StatusCode::PRECONDITION_FAILED,
                "0x80060882",
                "The version of the existing record doesn't match the RowVersion property provided.",
            );
        }
        if set == "teams"
            && let Some(k) =
                ["teamtype", "membershiptype", "azureactivedirectoryobjectid"].iter().find(|k| fields.contains_key(**k))
        {
            // teamtype and membershiptype are not valid for update (documented).
            return error(StatusCode::BAD_REQUEST, "0x80040203", &format!("{k} is not valid for update."));
        }
        let new_bu = fields.get("_businessunitid_value").and_then(Value::as_str).map(str::to_string);
        let moves = set == "systemusers"
            && new_bu.as_ref().is_some_and(|b| row.get("_businessunitid_value") != Some(&json!(b)));
        let mut fields = fields;
        if moves {
            let bu = new_bu.expect("checked");
            if let Err(a) = self.move_user(id, &bu) {
                return a;
            }
            fields.remove("_businessunitid_value");
        }
        self.version += 1;
        let version = self.version;
        let row = self.sets.get_mut(set).and_then(|m| m.get_mut(id)).expect("checked");
        for (k, v) in fields {
            row.insert(k, v);
        }
        row.insert("@odata.etag".into(), json!(format!("W/\"{version}\"")));
        Answer::no_content()
    }

    /// `DELETE set(id)`: teams and roles; users cannot be deleted through the API here
    /// ([UNVERIFIED]: Dataverse deletes a user only once it is gone from Entra ID).
    fn delete(&mut self, set: &str, id: &str) -> Answer {
        if !matches!(set, "teams" | "roles" | "fieldsecurityprofiles" | "fieldpermissions") {
            return error(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", &format!("DELETE is not supported on {set}."));
        }
        if self.sets.get(set).is_none_or(|m| !m.contains_key(id)) {
            return not_found(set, id);
        }
        if set == "teams" && super::col(&self.sets[set][id], "isdefault") == true {
            return error(
                StatusCode::BAD_REQUEST,
                "0x80040203",
                "The default team of a business unit cannot be deleted.",
            );
        }
        self.remove_row(set, id);
        Answer::no_content()
    }
}
