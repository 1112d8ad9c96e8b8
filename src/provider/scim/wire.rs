//! SCIM 2.0 JSON (RFC 7643, RFC 7644) and its conversion to and from keyward's model.
//!
//! Reading is lenient, as RFC 7643 §2.1 asks (attribute names are case-insensitive) and as
//! real services need (numbers sent as strings, `Resources` spelled in lower case): values are
//! taken from `serde_json::Value` with case-insensitive lookups rather than strict structs.
//!
//! How the model maps onto SCIM:
//!
//! | model        | SCIM attribute                                                  |
//! |--------------|-----------------------------------------------------------------|
//! | userName     | `userName` (`caseExact: false`, compared case-insensitively)    |
//! | displayName  | `displayName`                                                   |
//! | givenName    | `name.givenName`                                                |
//! | familyName   | `name.familyName`                                               |
//! | email        | the `primary` email, else the `work` one, else the first       |
//! | jobTitle     | `title`                                                         |
//! | department   | enterprise `department`                                         |
//! | employeeId   | enterprise `employeeNumber`                                     |
//! | manager      | enterprise `manager.value` (an id; keyward speaks userNames)    |
//! | active       | `active`; absent means active                                   |
//! | group        | a Group, by `displayName` (case-insensitive), members by `value` |

use serde_json::{Map, Value, json};

use crate::model::{UserAttrs, UserField};
use crate::provider::ids::{self, IdError};

/// Why a list page, user or group as the service sent it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the list response has no totalResults")]
    NoTotalResults,
    #[error("the list response's totalResults is not a whole number")]
    TotalResultsNotWhole,
    #[error("the list response's Resources is not an array")]
    ResourcesNotArray,
    #[error("a user has no id")]
    UserWithoutId,
    #[error("user {id} has no userName")]
    NoUserName { id: String },
    #[error("user {id} has a userName that is not a string")]
    UserNameNotString { id: String },
    /// The id would change a request path (`/Users/{id}`).
    #[error("user {user_name} is refused: {source}")]
    UserId { user_name: String, source: IdError },
    #[error("a group has no id")]
    GroupWithoutId,
    #[error("group {id} has no displayName")]
    NoDisplayName { id: String },
    #[error("group {display_name} is refused: {source}")]
    GroupId { display_name: String, source: IdError },
}

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// The user attributes keyward reads (`attributes=`, RFC 7644 §3.4.2.5). `id` is always
/// returned; `meta.version` carries the ETag, `meta.lastModified` the change feed's stamp.
pub fn user_attributes() -> String {
    [
        "userName".to_string(),
        "displayName".into(),
        "name.givenName".into(),
        "name.familyName".into(),
        "emails".into(),
        "title".into(),
        "active".into(),
        format!("{ENTERPRISE}:department"),
        format!("{ENTERPRISE}:employeeNumber"),
        format!("{ENTERPRISE}:manager"),
        "meta.version".into(),
        "meta.lastModified".into(),
    ]
    .join(",")
}

pub const GROUP_ATTRIBUTES: &str = "displayName,members,meta.version,meta.lastModified";

/// A case-insensitive attribute lookup (RFC 7643 §2.1).
pub fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get(v, key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A number that some services send as a string.
pub fn get_u64(v: &Value, key: &str) -> Option<u64> {
    match get(v, key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn get_bool(v: &Value, key: &str) -> Option<bool> {
    match get(v, key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// What the service announces in `/ServiceProviderConfig` (RFC 7643 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub patch: bool,
    pub bulk: Option<BulkLimits>,
    pub etag: bool,
    /// `filter.maxResults`: the most resources one list request returns.
    pub max_results: Option<usize>,
    /// `filter.supported`: without it, keyward finds users by reading the list, never with
    /// `filter=`.
    pub filter: bool,
    /// Remove group members with `path: members` and a value list instead of a
    /// `members[value eq "ID"]` path: learned when a service refuses the filter path (it is
    /// announced nowhere).
    pub remove_members_by_value: bool,
    /// `sort.supported`: the change feed learns the newest `meta.lastModified` before a full
    /// read by sorting on it.
    pub sort: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimits {
    pub max_operations: usize,
    pub max_payload_size: usize,
}

impl ServiceConfig {
    pub fn parse(v: &Value) -> ServiceConfig {
        let supported = |k: &str| get(v, k).and_then(|f| get_bool(f, "supported")).unwrap_or(false);
        let bulk = get(v, "bulk").filter(|b| get_bool(b, "supported") == Some(true)).and_then(|b| {
            let ops = get_u64(b, "maxOperations")? as usize;
            let size = get_u64(b, "maxPayloadSize")? as usize;
            // A service announcing room for nothing (or for a single operation, which gains
            // nothing over a plain request) is treated as not supporting Bulk.
            (ops > 1 && size > 0).then_some(BulkLimits { max_operations: ops, max_payload_size: size })
        });
        ServiceConfig {
            patch: supported("patch"),
            bulk,
            etag: supported("etag"),
            max_results: get(v, "filter").and_then(|f| get_u64(f, "maxResults")).map(|n| n as usize).filter(|n| *n > 0),
            filter: supported("filter"),
            remove_members_by_value: false,
            sort: supported("sort"),
        }
    }
}

/// One page of a list response (RFC 7644 §3.4.2).
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub total_results: usize,
    pub resources: Vec<Value>,
}

impl ListPage {
    pub fn parse(v: &Value) -> Result<ListPage, WireError> {
        let total = match get(v, "totalResults") {
            None => return Err(WireError::NoTotalResults),
            Some(_) => get_u64(v, "totalResults").ok_or(WireError::TotalResultsNotWhole)?,
        } as usize;
        let resources = match get(v, "Resources") {
            Some(Value::Array(a)) => a.clone(),
            None | Some(Value::Null) => vec![],
            Some(_) => return Err(WireError::ResourcesNotArray),
        };
        Ok(ListPage { total_results: total, resources })
    }
}

/// A user as read, before manager ids are turned into userNames.
#[derive(Debug, Clone, PartialEq)]
pub struct WireUser {
    pub id: String,
    pub user_name: String,
    /// `manager` holds the manager's id here.
    pub attrs: UserAttrs,
    pub active: bool,
    pub version: Option<String>,
    /// `meta.lastModified`, as the service wrote it.
    pub last_modified: Option<String>,
    /// The emails as read, kept so an update replaces only the one keyward manages.
    pub emails: Vec<Value>,
}

impl WireUser {
    pub fn parse(v: &Value) -> Result<WireUser, WireError> {
        let id = get_str(v, "id").ok_or(WireError::UserWithoutId)?.to_string();
        let user_name = match get(v, "userName") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => return Err(WireError::NoUserName { id }),
            Some(_) => return Err(WireError::UserNameNotString { id }),
        };
        // The id goes into request paths (`/Users/{id}`): one that would change the path is
        // refused here, before any write can be sent to it.
        ids::path_segment(&id).map_err(|source| WireError::UserId { user_name: user_name.clone(), source })?;
        let name = get(v, "name");
        let ext = get(v, ENTERPRISE);
        let emails: Vec<Value> = get(v, "emails").and_then(Value::as_array).cloned().unwrap_or_default();
        let attrs = UserAttrs {
            display_name: get_str(v, "displayName").map(str::to_string),
            given_name: name.and_then(|n| get_str(n, "givenName")).map(str::to_string),
            family_name: name.and_then(|n| get_str(n, "familyName")).map(str::to_string),
            email: managed_email(&emails).and_then(|i| get_str(&emails[i], "value")).map(str::to_string),
            department: ext.and_then(|e| get_str(e, "department")).map(str::to_string),
            job_title: get_str(v, "title").map(str::to_string),
            manager: ext.and_then(|e| get(e, "manager")).and_then(|m| get_str(m, "value")).map(str::to_string),
            employee_id: ext.and_then(|e| get_str(e, "employeeNumber")).map(str::to_string),
        };
        Ok(WireUser {
            id,
            user_name,
            attrs,
            active: get_bool(v, "active").unwrap_or(true),
            version: get(v, "meta").and_then(|m| get_str(m, "version")).map(str::to_string),
            last_modified: last_modified(v),
            emails,
        })
    }
}

/// The attributes `asked` sets (to a value, not `""`) that the resource `answer` lacks. For
/// the manager, `asked` holds the id sent. An answer that holds none of the attributes keyward
/// reads (not even `active`) is taken for a short answer (some services return little more
/// than the id), not for a service that keeps nothing: it names none.
pub fn dropped(asked: &UserAttrs, answer: &Value) -> Vec<UserField> {
    let Ok(u) = WireUser::parse(answer) else { return Vec::new() };
    let full = get(answer, "active").is_some() || UserField::ALL.into_iter().any(|f| u.attrs.get(f).is_some());
    if !full {
        return Vec::new();
    }
    UserField::ALL
        .into_iter()
        .filter(|f| asked.get(*f).is_some_and(|v| !v.is_empty()) && u.attrs.get(*f).is_none())
        .collect()
}

/// The index of the email keyward manages: the primary one, else the work one, else the first.
pub fn managed_email(emails: &[Value]) -> Option<usize> {
    emails
        .iter()
        .position(|e| get_bool(e, "primary") == Some(true))
        .or_else(|| emails.iter().position(|e| get_str(e, "type").is_some_and(|t| t.eq_ignore_ascii_case("work"))))
        .or_else(|| (!emails.is_empty()).then_some(0))
}

/// A resource's `meta.lastModified` (RFC 7643 §3.1), as the service wrote it.
pub fn last_modified(v: &Value) -> Option<String> {
    get(v, "meta").and_then(|m| get_str(m, "lastModified")).map(str::to_string)
}

/// A group as read.
#[derive(Debug, Clone, PartialEq)]
pub struct WireGroup {
    pub id: String,
    pub display_name: String,
    pub members: Vec<String>,
    pub version: Option<String>,
    /// `meta.lastModified`, as the service wrote it.
    pub last_modified: Option<String>,
}

impl WireGroup {
    pub fn parse(v: &Value) -> Result<WireGroup, WireError> {
        let id = get_str(v, "id").ok_or(WireError::GroupWithoutId)?.to_string();
        let display_name =
            get_str(v, "displayName").ok_or_else(|| WireError::NoDisplayName { id: id.clone() })?.to_string();
        ids::path_segment(&id).map_err(|source| WireError::GroupId { display_name: display_name.clone(), source })?;
        let members = get(v, "members")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|m| get_str(m, "value").map(str::to_string)).collect())
            .unwrap_or_default();
        Ok(WireGroup {
            id,
            display_name,
            members,
            version: get(v, "meta").and_then(|m| get_str(m, "version")).map(str::to_string),
            last_modified: last_modified(v),
        })
    }
}

/// The body that creates a user. `manager_ref` is the manager's id or a `bulkId:` reference;
/// `None` leaves the manager out.
/// A value to write: `""` means "no value" and is left out of a creation.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

pub fn user_create_body(user_name: &str, attrs: &UserAttrs, active: bool, manager_ref: Option<&str>) -> Value {
    let mut body = Map::new();
    let mut schemas = vec![json!(USER_SCHEMA)];
    body.insert("userName".into(), json!(user_name));
    if let Some(v) = given(&attrs.display_name) {
        body.insert("displayName".into(), json!(v));
    }
    let mut name = Map::new();
    if let Some(v) = given(&attrs.given_name) {
        name.insert("givenName".into(), json!(v));
    }
    if let Some(v) = given(&attrs.family_name) {
        name.insert("familyName".into(), json!(v));
    }
    if !name.is_empty() {
        body.insert("name".into(), Value::Object(name));
    }
    if let Some(v) = given(&attrs.email) {
        body.insert("emails".into(), json!([{"value": v, "type": "work", "primary": true}]));
    }
    if let Some(v) = given(&attrs.job_title) {
        body.insert("title".into(), json!(v));
    }
    body.insert("active".into(), json!(active));
    let mut ext = Map::new();
    if let Some(v) = given(&attrs.department) {
        ext.insert("department".into(), json!(v));
    }
    if let Some(v) = given(&attrs.employee_id) {
        ext.insert("employeeNumber".into(), json!(v));
    }
    if let Some(m) = manager_ref {
        ext.insert("manager".into(), json!({ "value": m }));
    }
    if !ext.is_empty() {
        schemas.push(json!(ENTERPRISE));
        body.insert(ENTERPRISE.into(), Value::Object(ext));
    }
    body.insert("schemas".into(), Value::Array(schemas));
    Value::Object(body)
}

/// PATCH operations that set the fields `set` holds (RFC 7644 §3.5.2.3 `replace`, which adds a
/// missing attribute). `emails` is the list as read: only the managed email changes.
pub fn user_patch_ops(set: &UserAttrs, manager_ref: Option<&str>, emails: &[Value]) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut replace = |path: String, value: Value| match value {
        // `""` clears the attribute (RFC 7644 §3.5.2.2: `remove` of a single-valued path).
        Value::String(s) if s.is_empty() => ops.push(json!({"op": "remove", "path": path})),
        Value::Array(a) if a.is_empty() => ops.push(json!({"op": "remove", "path": path})),
        value => ops.push(json!({"op": "replace", "path": path, "value": value})),
    };
    for f in UserField::ALL {
        let Some(v) = set.get(f) else { continue };
        match f {
            UserField::Email if v.is_empty() => {
                // Only the managed email is removed; the others are kept.
                let mut rest = emails.to_vec();
                if let Some(i) = managed_email(&rest) {
                    rest.remove(i);
                }
                replace("emails".into(), Value::Array(rest))
            }
            UserField::DisplayName => replace("displayName".into(), json!(v)),
            UserField::GivenName => replace("name.givenName".into(), json!(v)),
            UserField::FamilyName => replace("name.familyName".into(), json!(v)),
            UserField::JobTitle => replace("title".into(), json!(v)),
            UserField::Department => replace(format!("{ENTERPRISE}:department"), json!(v)),
            UserField::EmployeeId => replace(format!("{ENTERPRISE}:employeeNumber"), json!(v)),
            UserField::Email => replace("emails".into(), Value::Array(emails_with(emails, v))),
            UserField::Manager => {
                if let Some(m) = manager_ref {
                    replace(format!("{ENTERPRISE}:manager"), json!({ "value": m }));
                }
            }
        }
    }
    ops
}

/// The emails with the managed one set to `value` (added as the primary work email if none).
pub fn emails_with(emails: &[Value], value: &str) -> Vec<Value> {
    let mut out = emails.to_vec();
    match managed_email(&out) {
        Some(i) => {
            if let Some(obj) = out[i].as_object_mut() {
                obj.retain(|k, _| !k.eq_ignore_ascii_case("value"));
                obj.insert("value".into(), json!(value));
            } else {
                out[i] = json!({"value": value, "type": "work", "primary": true});
            }
        }
        None => out.push(json!({"value": value, "type": "work", "primary": true})),
    }
    out
}

/// `replace active`.
pub fn active_op(active: bool) -> Value {
    json!({"op": "replace", "path": "active", "value": active})
}

/// A PatchOp request body.
pub fn patch_body(ops: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// Applies user PATCH operations to a full resource, for services without PATCH (which are
/// then written with PUT, RFC 7644 §3.5.1). Only the paths [`user_patch_ops`] and
/// [`active_op`] produce are understood.
pub fn apply_user_ops(resource: &mut Value, ops: &[Value]) {
    for op in ops {
        let Some(path) = op.get("path").and_then(Value::as_str) else { continue };
        let Some(obj) = resource.as_object_mut() else { return };
        let Some(value) = op.get("value") else {
            // A `remove`: the attribute is left out of the resource written back.
            if let Some(sub) = path.strip_prefix(ENTERPRISE).and_then(|p| p.strip_prefix(':')) {
                if let Some(e) = obj.get_mut(ENTERPRISE).and_then(Value::as_object_mut) {
                    e.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                }
            } else if let Some((parent, child)) = path.split_once('.') {
                if let Some(p) = obj.get_mut(parent).and_then(Value::as_object_mut) {
                    p.retain(|k, _| !k.eq_ignore_ascii_case(child));
                }
            } else {
                obj.retain(|k, _| !k.eq_ignore_ascii_case(path));
            }
            continue;
        };
        if let Some(sub) = path.strip_prefix(ENTERPRISE).and_then(|p| p.strip_prefix(':')) {
            let ext = obj.entry(ENTERPRISE.to_string()).or_insert_with(|| json!({}));
            if let Some(e) = ext.as_object_mut() {
                e.insert(sub.to_string(), value.clone());
            }
            if let Some(Value::Array(schemas)) = obj.get_mut("schemas")
                && !schemas.iter().any(|s| s == ENTERPRISE)
            {
                schemas.push(json!(ENTERPRISE));
            }
        } else if let Some((parent, child)) = path.split_once('.') {
            let p = obj.entry(parent.to_string()).or_insert_with(|| json!({}));
            if let Some(p) = p.as_object_mut() {
                p.insert(child.to_string(), value.clone());
            }
        } else {
            obj.retain(|k, _| !k.eq_ignore_ascii_case(path));
            obj.insert(path.to_string(), value.clone());
        }
    }
}

/// Adds and removes group members on a full resource, for services without PATCH.
pub fn apply_member_changes(resource: &mut Value, add: &[String], remove: &[String]) {
    let Some(obj) = resource.as_object_mut() else { return };
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case("members")).cloned().unwrap_or_else(|| "members".into());
    let members = obj.entry(key).or_insert_with(|| json!([]));
    if !members.is_array() {
        *members = json!([]);
    }
    let list = members.as_array_mut().expect("an array");
    list.retain(|m| get_str(m, "value").is_none_or(|v| !remove.iter().any(|r| r == v)));
    for a in add {
        if !list.iter().any(|m| get_str(m, "value") == Some(a.as_str())) {
            list.push(json!({ "value": a }));
        }
    }
}

/// What a group resource returned by the service lacks of the member changes asked for:
/// `None` when every added member is listed and no removed one is (an answer without
/// `members` lists none).
pub fn members_not_applied(answer: &Value, add: &[String], remove: &[String]) -> Option<String> {
    let listed: Vec<&str> = match get(answer, "members") {
        Some(Value::Array(list)) => list.iter().filter_map(|m| get_str(m, "value")).collect(),
        _ => Vec::new(),
    };
    let missing = add.iter().filter(|a| !listed.contains(&a.as_str())).count();
    let kept = remove.iter().filter(|r| listed.contains(&r.as_str())).count();
    if missing == 0 && kept == 0 {
        return None;
    }
    let mut parts = Vec::new();
    if missing > 0 {
        parts.push(format!("{missing} of {} added members are not listed", add.len()));
    }
    if kept > 0 {
        parts.push(format!("{kept} of {} removed members are still listed", remove.len()));
    }
    Some(format!("`members` ({})", parts.join(", ")))
}

/// A SCIM error body (RFC 7644 §3.12): `status` (a string, though some send a number),
/// `scimType` and `detail`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub scim_type: Option<String>,
    pub detail: Option<String>,
}

impl ErrorBody {
    pub fn parse(bytes: &[u8]) -> ErrorBody {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => ErrorBody::from_value(&v),
            Err(_) => {
                // Not JSON (a proxy's HTML page, say): keep a short, printable excerpt.
                let printable = String::from_utf8_lossy(bytes);
                let mut chars = printable.chars().filter(|c| !c.is_control() || *c == ' ');
                let mut text: String = chars.by_ref().take(300).collect::<String>().trim().to_string();
                if chars.next().is_some() {
                    text.push_str("… (truncated)");
                }
                ErrorBody { scim_type: None, detail: (!text.is_empty()).then_some(text) }
            }
        }
    }

    pub fn from_value(v: &Value) -> ErrorBody {
        ErrorBody {
            scim_type: get_str(v, "scimType").map(str::to_string),
            detail: get_str(v, "detail").map(|d| d.chars().take(1000).collect()),
        }
    }
}

/// The status of a bulk operation's outcome. RFC 7644 §3.7.3 writes `"status": "201"`, while
/// the example in §3.7.2 writes `"status": {"code": "201"}` (corrected by erratum 7916); both
/// are accepted, as is a bare number.
pub fn bulk_status(op: &Value) -> Option<u16> {
    let s = get(op, "status")?;
    let s = match s {
        Value::Object(_) => get(s, "code")?,
        other => other,
    };
    match s {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(t) => t.trim().parse().ok(),
        _ => None,
    }
}

/// The last path segment of a location URL: the resource's id.
pub fn id_from_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?;
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    // An id that would change a later request's path is not taken (`%2E%2E` decodes to `..`).
    Some(percent_decode(last)).filter(|id| ids::path_segment(id).is_ok())
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_provider_config_of_scim2_server() {
        // As served by scim2-server 0.8.3 by default (observed).
        let v = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true}, "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576},
            "filter": {"supported": true, "maxResults": 1000}, "changePassword": {"supported": true},
            "sort": {"supported": true}, "etag": {"supported": true}});
        let c = ServiceConfig::parse(&v);
        assert_eq!(
            c,
            ServiceConfig {
                patch: true,
                bulk: Some(BulkLimits { max_operations: 1000, max_payload_size: 1_048_576 }),
                etag: true,
                max_results: Some(1000),
                filter: true,
                remove_members_by_value: false,
                sort: true,
            }
        );
        // Lenient: other cases, numbers as strings, missing sections.
        let v = json!({"Bulk": {"Supported": "true", "MaxOperations": "50", "maxPayloadSize": 1000}, "ETAG": {"supported": false}});
        let c = ServiceConfig::parse(&v);
        assert_eq!(c.bulk, Some(BulkLimits { max_operations: 50, max_payload_size: 1000 }));
        assert!(!c.patch && !c.etag && !c.filter && !c.sort && c.max_results.is_none());
        let off = json!({"bulk": {"supported": false, "maxOperations": 1000, "maxPayloadSize": 1}});
        assert_eq!(ServiceConfig::parse(&off).bulk, None);
    }

    #[test]
    fn both_bulk_status_shapes() {
        assert_eq!(bulk_status(&json!({"status": "201"})), Some(201));
        assert_eq!(bulk_status(&json!({"status": {"code": "201"}})), Some(201));
        assert_eq!(bulk_status(&json!({"status": {"code": 409}})), Some(409));
        assert_eq!(bulk_status(&json!({"Status": 204})), Some(204));
        assert_eq!(bulk_status(&json!({"status": "created"})), None);
        assert_eq!(bulk_status(&json!({})), None);
    }

    #[test]
    fn users_round_trip_through_the_wire() {
        let attrs = UserAttrs {
            display_name: Some("Nancy Davolio".into()),
            given_name: Some("Nancy".into()),
            family_name: Some("Davolio".into()),
            email: Some("nancy@example.com".into()),
            department: Some("Finance".into()),
            job_title: Some("Controller".into()),
            manager: Some("laura@example.com".into()),
            employee_id: Some("E1005".into()),
        };
        let mut body = user_create_body("nancy@example.com", &attrs, false, Some("id-of-laura"));
        body["id"] = json!("id-1");
        body["meta"] = json!({"version": "W/\"7\""});
        let u = WireUser::parse(&body).unwrap();
        assert_eq!(u.user_name, "nancy@example.com");
        assert_eq!(u.attrs, UserAttrs { manager: Some("id-of-laura".into()), ..attrs.clone() });
        assert!(!u.active);
        assert_eq!(u.version.as_deref(), Some("W/\"7\""));
        // A user with only a userName: active by default, nothing else set.
        let bare = WireUser::parse(&json!({"id": "2", "userName": "x"})).unwrap();
        assert!(bare.active && bare.attrs.is_empty());
        // No enterprise schema when no enterprise attribute is set.
        let b = user_create_body("x", &UserAttrs::default(), true, None);
        assert_eq!(b["schemas"], json!([USER_SCHEMA]));
    }

    #[test]
    fn the_managed_email_is_the_primary_then_work_then_first() {
        let e = |v: Value| v.as_array().unwrap().clone();
        assert_eq!(
            managed_email(&e(json!([{"value": "a", "type": "home"}, {"value": "b", "primary": true}]))),
            Some(1)
        );
        assert_eq!(managed_email(&e(json!([{"value": "a", "type": "home"}, {"value": "b", "type": "Work"}]))), Some(1));
        assert_eq!(managed_email(&e(json!([{"value": "a", "type": "home"}]))), Some(0));
        assert_eq!(managed_email(&[]), None);
        // Updating keeps the other addresses.
        let updated = emails_with(&e(json!([{"value": "h", "type": "home"}, {"value": "w", "type": "work"}])), "new");
        assert_eq!(updated, e(json!([{"value": "h", "type": "home"}, {"type": "work", "value": "new"}])));
        assert_eq!(emails_with(&[], "n"), e(json!([{"value": "n", "type": "work", "primary": true}])));
    }

    #[test]
    fn patch_ops_set_only_what_changed() {
        let set = UserAttrs { job_title: Some("CFO".into()), department: Some("Fin".into()), ..Default::default() };
        let ops = user_patch_ops(&set, None, &[]);
        assert_eq!(
            ops,
            vec![
                json!({"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Fin"}),
                json!({"op": "replace", "path": "title", "value": "CFO"}),
            ]
        );
        // The PUT fallback applies the same operations to a full resource.
        let mut r = json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "u", "title": "old"});
        apply_user_ops(&mut r, &ops);
        apply_user_ops(&mut r, &[active_op(false), json!({"op": "replace", "path": "name.givenName", "value": "G"})]);
        assert_eq!(r["title"], "CFO");
        assert_eq!(r[ENTERPRISE]["department"], "Fin");
        assert_eq!(r["schemas"], json!([USER_SCHEMA, ENTERPRISE]));
        assert_eq!(r["active"], false);
        assert_eq!(r["name"]["givenName"], "G");
    }

    #[test]
    fn attributes_an_answer_lacks_are_named_unless_it_is_a_short_answer() {
        let asked = UserAttrs {
            display_name: Some("Ada".into()),
            job_title: Some("Engineer".into()),
            department: Some("".into()),
            ..Default::default()
        };
        let answer = json!({"id": "1", "userName": "ada", "displayName": "Ada"});
        assert_eq!(dropped(&asked, &answer), vec![UserField::JobTitle]);
        // Kept under another value is kept (a service may normalise it).
        let answer = json!({"id": "1", "userName": "ada", "displayName": "ADA", "title": "Eng."});
        assert!(dropped(&asked, &answer).is_empty());
        // An answer holding something else keyward reads, but not what was sent.
        let answer = json!({"id": "1", "userName": "ada", "active": true});
        assert_eq!(dropped(&asked, &answer), vec![UserField::DisplayName, UserField::JobTitle]);
        // A short answer names nothing.
        assert!(dropped(&asked, &json!({"id": "1", "userName": "ada"})).is_empty());
        assert!(dropped(&asked, &json!({"id": "1"})).is_empty());
    }

    #[test]
    fn member_changes_for_put() {
        let mut g = json!({"displayName": "g", "members": [{"value": "a"}, {"value": "b"}]});
        apply_member_changes(&mut g, &["c".into(), "a".into()], &["b".into(), "zz".into()]);
        assert_eq!(g["members"], json!([{"value": "a"}, {"value": "c"}]));
        let mut empty = json!({"displayName": "g"});
        apply_member_changes(&mut empty, &["x".into()], &[]);
        assert_eq!(empty["members"], json!([{"value": "x"}]));
    }

    #[test]
    fn error_bodies() {
        let e = ErrorBody::parse(
            br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"taken"}"#,
        );
        assert_eq!(e, ErrorBody { scim_type: Some("uniqueness".into()), detail: Some("taken".into()) });
        let e = ErrorBody::parse(b"<html>\n<h1>Bad Gateway</h1></html>");
        assert_eq!(e.detail.as_deref(), Some("<html><h1>Bad Gateway</h1></html>"));
        assert_eq!(ErrorBody::parse(b""), ErrorBody::default());
    }

    #[test]
    fn list_pages_and_locations() {
        let p = ListPage::parse(&json!({"totalResults": "3", "resources": [{"id": "1"}]})).unwrap();
        assert_eq!(p.total_results, 3);
        assert_eq!(p.resources.len(), 1);
        assert_eq!(ListPage::parse(&json!({"totalResults": 0})).unwrap().resources.len(), 0);
        assert_eq!(ListPage::parse(&json!({"Resources": []})), Err(WireError::NoTotalResults));
        let says = |v: Value| ListPage::parse(&v).unwrap_err().to_string();
        assert_eq!(says(json!({"totalResults": -1})), "the list response's totalResults is not a whole number");
        assert_eq!(says(json!({"totalResults": 1, "Resources": {}})), "the list response's Resources is not an array");
    }

    #[test]
    fn users_and_groups_that_cannot_be_read_say_why() {
        let user = |v: Value| WireUser::parse(&v).unwrap_err().to_string();
        assert_eq!(user(json!({"userName": "x"})), "a user has no id");
        assert_eq!(user(json!({"id": "1"})), "user 1 has no userName");
        assert_eq!(user(json!({"id": "1", "userName": 7})), "user 1 has a userName that is not a string");
        let e = WireUser::parse(&json!({"id": "..", "userName": "x"})).unwrap_err();
        assert_eq!(e, WireError::UserId { user_name: "x".into(), source: IdError::DotSegment("..".into()) });
        assert_eq!(
            e.to_string(),
            "user x is refused: its id `..` is a dot segment, which would change the request path"
        );
        let group = |v: Value| WireGroup::parse(&v).unwrap_err().to_string();
        assert_eq!(group(json!({"displayName": "g"})), "a group has no id");
        assert_eq!(group(json!({"id": "1"})), "group 1 has no displayName");
        assert_eq!(
            group(json!({"id": "a/b", "displayName": "g"})),
            "group g is refused: its id `a/b` holds a `/`, which could change the request path"
        );
        assert_eq!(id_from_location("https://x/v2/Users/abc%20d/").as_deref(), Some("abc d"));
        assert_eq!(id_from_location("http://127.0.0.1:1/v2/Groups/0cb8?x=1").as_deref(), Some("0cb8"));
        for hostile in ["https://x/v2/Users/%2E%2E", "https://x/v2/Users/a%2Fb", "https://x/v2/Users/a%0Ab"] {
            assert_eq!(id_from_location(hostile), None, "{hostile}");
        }
    }
}
