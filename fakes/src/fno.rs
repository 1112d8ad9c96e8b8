//! Dynamics 365 Finance & Operations OData data entities (reference sheet §4), enough for
//! identity and access: `SystemUsers`, `SecurityRoles`, role assignments and
//! `SegregationOfDutiesConflicts`.
//!
//! Documented behaviour reproduced: the root `/data/`; bearer tokens for the environment URL;
//! entity keys in parentheses (`SystemUsers(UserID='jsmith')`, every key field of a compound
//! key); server-driven paging with `@odata.nextLink` (at most 10,000 rows a page); `$batch`;
//! error bodies `{"error":{"code":…,"message":…,"innererror":{"message":…}}}`.
//!
//! Assumed, as the reference sheet leaves it open: both `SecurityUserRoleAssociations` and
//! `SecurityUserRoles` list the same assignments and both accept POST and DELETE, unless a
//! test makes one refuse writes ([`Fno::refuse_writes`], answered 405 as a read-only entity
//! would be); an assignment that exists already answers 409. SoD conflicts are computed from
//! the rules ([`Fno::add_sod_rule`]) and the current assignments, resolution `None`, unless
//! marked otherwise.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value, json};

use crate::entra::Entra;
use crate::odata::{self, Answer, into_response};
use crate::{RequestLog, Running, Throttle};

pub const ROOT: &str = "/data/";
const MAX_PAGE: usize = 10_000;
const MAX_BATCH: usize = 1000;

/// The assignment collections; which one takes writes is uncertain on real environments.
pub const ASSOCIATIONS: &str = "SecurityUserRoleAssociations";
pub const USER_ROLES: &str = "SecurityUserRoles";

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    first: String,
    second: String,
    resolution: String,
}

#[derive(Debug, Default)]
struct Inner {
    /// UserID → row.
    users: BTreeMap<String, Map<String, Value>>,
    /// SecurityRoleIdentifier → name.
    roles: BTreeMap<String, String>,
    /// (UserId, SecurityRoleIdentifier).
    assignments: Vec<(String, String)>,
    rules: Vec<Rule>,
    refused: Vec<String>,
    page_cap: Option<usize>,
    /// POSTs and DELETEs per assignment collection.
    writes: BTreeMap<String, usize>,
}

/// A fake Finance & Operations environment. Clone it to inspect or change its state.
#[derive(Debug, Clone, Default)]
pub struct Fno {
    inner: Arc<Mutex<Inner>>,
}

fn err(status: StatusCode, message: &str) -> Answer {
    Answer {
        status,
        headers: vec![],
        body: Some(json!({"error": {"code": "", "message": "An error has occurred.",
            "innererror": {"message": message, "type": "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataException"}}})),
    }
}

/// `K='v',K2='v2'` (or a bare `'v'` for a single key) → key → value.
fn keys(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',') {
        match part.split_once('=') {
            Some((k, v)) => out.insert(k.trim().to_string(), v.trim().trim_matches('\'').replace("''", "'")),
            None => out.insert(String::new(), part.trim().trim_matches('\'').replace("''", "'")),
        };
    }
    out
}

impl Fno {
    pub fn new() -> Self {
        Fno::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fno")
    }

    pub fn page_cap(&self, n: usize) -> &Self {
        self.lock().page_cap = Some(n.max(1));
        self
    }

    /// Makes an assignment collection refuse POST and DELETE with 405.
    pub fn refuse_writes(&self, collection: &str) -> &Self {
        self.lock().refused.push(collection.to_string());
        self
    }

    /// How many writes each assignment collection received.
    pub fn writes(&self) -> BTreeMap<String, usize> {
        self.lock().writes.clone()
    }

    pub fn add_role(&self, id: &str, name: &str) -> &Self {
        self.lock().roles.insert(id.to_string(), name.to_string());
        self
    }

    pub fn add_user(&self, user_id: &str, alias: &str, enabled: bool) -> &Self {
        let row = json!({"UserID": user_id, "UserName": user_id, "Alias": alias, "Email": alias,
            "Enabled": enabled, "NetworkDomain": "https://sts.windows.net/", "Company": "usmf"});
        self.lock().users.insert(user_id.to_string(), row.as_object().cloned().expect("object"));
        self
    }

    /// Gives a role directly (outside keyward).
    pub fn assign(&self, user_id: &str, role_id: &str) -> &Self {
        self.lock().assignments.push((user_id.to_string(), role_id.to_string()));
        self
    }

    /// A segregation-of-duties rule between two roles' duties.
    pub fn add_sod_rule(&self, name: &str, first_role: &str, second_role: &str) -> &Self {
        self.lock().rules.push(Rule {
            name: name.into(),
            first: first_role.into(),
            second: second_role.into(),
            resolution: "None".into(),
        });
        self
    }

    /// The UserID of the user with this alias.
    pub fn user_id(&self, alias: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .users
            .iter()
            .find(|(_, r)| r["Alias"].as_str().is_some_and(|a| a.eq_ignore_ascii_case(alias)))
            .map(|(id, _)| id.clone())
    }

    pub fn user(&self, alias: &str) -> Option<Map<String, Value>> {
        let id = self.user_id(alias)?;
        self.lock().users.get(&id).cloned()
    }

    /// The names of a user's roles, sorted.
    pub fn roles_of(&self, alias: &str) -> Vec<String> {
        let Some(id) = self.user_id(alias) else { return vec![] };
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .assignments
            .iter()
            .filter(|(u, _)| *u == id)
            .filter_map(|(_, r)| inner.roles.get(r).cloned())
            .collect();
        out.sort();
        out
    }

    pub fn serve(&self, entra: &Entra, log: &RequestLog, throttle: Option<&Throttle>) -> Running {
        let api = Router::new().route("/data/{*rest}", any(handle)).with_state((self.clone(), entra.clone()));
        let api = match throttle {
            Some(t) => t.layer(api),
            None => api,
        };
        crate::serve(log.layer(api.merge(entra.router())))
    }

    fn assignment_rows(inner: &Inner) -> Vec<Value> {
        inner
            .assignments
            .iter()
            .map(|(u, r)| {
                json!({"UserId": u, "SecurityRoleIdentifier": r, "SecurityRoleName": inner.roles.get(r),
                    "AssignmentStatus": "Enabled", "AssignmentMode": "Manual"})
            })
            .collect()
    }

    fn conflict_rows(inner: &Inner) -> Vec<Value> {
        let mut out = Vec::new();
        for rule in &inner.rules {
            for (user, _) in inner.users.iter() {
                let has = |r: &str| inner.assignments.iter().any(|(u, x)| u == user && x == r);
                if has(&rule.first) && has(&rule.second) {
                    out.push(json!({
                        "SegregationOfDutiesRuleName": rule.name,
                        "SegregationOfDutiesRuleValidFrom": "1900-01-01T12:00:00Z",
                        "SegregationOfDutiesRuleValidTo": "2154-12-31T23:59:59Z",
                        "User": user,
                        "ExistingRoleIdentifier": rule.first, "ExistingRoleName": inner.roles.get(&rule.first),
                        "ExistingDutyIdentifier": format!("{}Duty", rule.first), "ExistingDutyName": format!("Duty of {}", rule.first),
                        "NewRoleIdentifier": rule.second, "NewRoleName": inner.roles.get(&rule.second),
                        "NewDutyIdentifier": format!("{}Duty", rule.second), "NewDutyName": format!("Duty of {}", rule.second),
                        "AssignmentMode": "Manual", "ReasonForOverride": "", "Resolution": rule.resolution,
                    }));
                }
            }
        }
        out
    }

    fn dispatch(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
        base: &str,
    ) -> Answer {
        let header = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str());
        let body: Option<Value> = serde_json::from_slice(body).ok();
        let (set, key) = match path.split_once('(') {
            Some((s, k)) => (s, Some(keys(k.trim_end_matches(')')))),
            None => (path, None),
        };
        let mut inner = self.lock();
        if matches!(set, ASSOCIATIONS | USER_ROLES) && *method != Method::GET {
            *inner.writes.entry(set.to_string()).or_default() += 1;
            if inner.refused.iter().any(|r| r == set) {
                return err(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &format!("Write not allowed for entity '{set}': it is read-only."),
                );
            }
        }
        match (method, set, key) {
            (&Method::GET, _, None) => {
                let rows: Vec<Value> = match set {
                    "SystemUsers" => inner.users.values().map(|r| Value::Object(r.clone())).collect(),
                    "SecurityRoles" => inner
                        .roles
                        .iter()
                        .map(|(id, n)| json!({"SecurityRoleIdentifier": id, "SecurityRoleName": n, "AccessToSensitiveData": false}))
                        .collect(),
                    ASSOCIATIONS | USER_ROLES => Self::assignment_rows(&inner),
                    "SegregationOfDutiesConflicts" => Self::conflict_rows(&inner),
                    _ => return err(StatusCode::NOT_FOUND, &format!("Resource not found for the segment '{set}'.")),
                };
                odata::page(&rows, header("prefer"), query, MAX_PAGE, inner.page_cap, &format!("{base}{ROOT}{set}"))
            }
            (&Method::POST, "SystemUsers", None) => {
                let Some(Value::Object(row)) = body else { return err(StatusCode::BAD_REQUEST, "A body is required.") };
                let Some(id) = row.get("UserID").and_then(Value::as_str).map(str::to_string) else {
                    return err(StatusCode::BAD_REQUEST, "UserID is required.");
                };
                if id.len() > 20 {
                    return err(StatusCode::BAD_REQUEST, "UserID is longer than 20 characters.");
                }
                if inner.users.contains_key(&id) {
                    return err(StatusCode::CONFLICT, &format!("The record already exists: UserID {id}."));
                }
                inner.users.insert(id, row.clone());
                Answer { status: StatusCode::CREATED, headers: vec![], body: Some(Value::Object(row)) }
            }
            (&Method::PATCH, "SystemUsers", Some(k)) => {
                let id = k.get("UserID").or_else(|| k.get("")).cloned().unwrap_or_default();
                let Some(row) = inner.users.get_mut(&id) else {
                    return err(StatusCode::NOT_FOUND, &format!("No SystemUsers record with UserID {id}."));
                };
                if let Some(Value::Object(fields)) = body {
                    for (f, v) in fields {
                        row.insert(f, v);
                    }
                }
                Answer::no_content()
            }
            (&Method::POST, ASSOCIATIONS | USER_ROLES, None) => {
                let get = |f: &str| body.as_ref().and_then(|b| b.get(f)).and_then(Value::as_str).map(str::to_string);
                let (Some(user), Some(role)) = (get("UserId"), get("SecurityRoleIdentifier")) else {
                    return err(StatusCode::BAD_REQUEST, "UserId and SecurityRoleIdentifier are required.");
                };
                if !inner.users.contains_key(&user) || !inner.roles.contains_key(&role) {
                    return err(StatusCode::BAD_REQUEST, &format!("User {user} or role {role} does not exist."));
                }
                if inner.assignments.contains(&(user.clone(), role.clone())) {
                    return err(StatusCode::CONFLICT, "The record already exists.");
                }
                inner.assignments.push((user, role));
                Answer { status: StatusCode::CREATED, headers: vec![], body }
            }
            (&Method::DELETE, ASSOCIATIONS | USER_ROLES, Some(k)) => {
                let (Some(user), Some(role)) = (k.get("UserId"), k.get("SecurityRoleIdentifier")) else {
                    return err(StatusCode::BAD_REQUEST, "Every key field is required.");
                };
                let pair = (user.clone(), role.clone());
                if !inner.assignments.contains(&pair) {
                    return err(StatusCode::NOT_FOUND, "No record matches the key.");
                }
                inner.assignments.retain(|p| *p != pair);
                Answer::no_content()
            }
            _ => err(StatusCode::METHOD_NOT_ALLOWED, &format!("{method} is not supported on {path}.")),
        }
    }
}

async fn handle(State((fno, entra)): State<(Fno, Entra)>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
    let base = format!("http://{host}");
    if let Err(resp) = entra.check(headers, &base) {
        return resp;
    }
    let bytes: Bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let path = parts.uri.path().strip_prefix(ROOT).unwrap_or_default().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let header_list: Vec<(String, String)> =
        headers.iter().filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string()))).collect();
    if path == "$batch" && parts.method == Method::POST {
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        return odata::batch(&ct, &bytes, ROOT, &header_list, MAX_BATCH, |m, p, q, h, b| {
            fno.dispatch(m, p, q, h, b, &base)
        });
    }
    into_response(fno.dispatch(&parts.method, &path, &query, &header_list, &bytes, &base))
}
