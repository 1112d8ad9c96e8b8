//! Dynamics 365 Finance & Operations OData data entities (reference sheet §4), enough for
//! identity and access: `SystemUsers`, `SecurityRoles`, role assignments and
//! `SegregationOfDutiesConflicts`.
//!
//! Documented behaviour reproduced: the root `/data/`; bearer tokens for the environment URL;
//! entity keys in parentheses (`SystemUsers(UserID='jsmith')`, every key field of a compound
//! key); server-driven paging with `@odata.nextLink` (at most 10,000 rows a page); `$batch`;
//! error bodies `{"error":{"code":…,"message":…,"innererror":{"message":…}}}`.
//!
//! Also the security entities that show what a role contains (`SecurityRoleDuties`,
//! `SecurityDuties`, `SecurityPrivileges`: read-only), the licence type of roles and of
//! `SecurityUserRoles` rows (`UserLicenseType`), the Entra application ↔ user mapping
//! (`SysAADClients`, keyed by `AADClientId`), and `$filter` with `eq` clauses joined by `and`
//! (other operators are refused). Facts, sources and what is UNVERIFIED:
//! `docs/reference/fno.md`.
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
    /// SecurityRoleIdentifier → user licence type (`UserLicenseType` enum value).
    licenses: BTreeMap<String, String>,
    /// SecurityDutyIdentifier → name.
    duties: BTreeMap<String, String>,
    /// SecurityPrivilegeIdentifier → name.
    privileges: BTreeMap<String, String>,
    /// (role, duty).
    role_duties: Vec<(String, String)>,
    /// (duty, privilege).
    duty_privileges: Vec<(String, String)>,
    /// (role, privilege) granted to a role directly.
    role_privileges: Vec<(String, String)>,
    /// AADClientId → (Name, UserId): the Entra applications mapped to users.
    aad_clients: BTreeMap<String, (String, String)>,
}

/// The read-only security entities (role → duty → privilege).
pub const READ_ONLY: [&str; 3] = ["SecurityRoleDuties", "SecurityDuties", "SecurityPrivileges"];
/// The Entra application ↔ user mapping (System administration › Setup › Microsoft Entra
/// applications, table `SysAADClientTable`).
pub const AAD_CLIENTS: &str = "SysAADClients";
/// The values of the `UserLicenseType` enum.
pub const LICENSE_TYPES: [&str; 13] = [
    "None",
    "SelfServe",
    "Task",
    "Functional",
    "Enterprise",
    "Server",
    "Universal",
    "Activity",
    "Finance",
    "SCM",
    "Commerce",
    "Project",
    "HR",
];

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

    /// Makes an assignment collection (or `SysAADClients`) refuse writes with 405.
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

    /// Sets the licence type a role needs (a `UserLicenseType` value: `Enterprise`, `Activity`,
    /// `Universal`, …).
    pub fn set_role_license(&self, role: &str, license: &str) -> &Self {
        assert!(LICENSE_TYPES.contains(&license), "a UserLicenseType value");
        self.lock().licenses.insert(role.to_string(), license.to_string());
        self
    }

    pub fn add_duty(&self, id: &str, name: &str) -> &Self {
        self.lock().duties.insert(id.to_string(), name.to_string());
        self
    }

    pub fn add_privilege(&self, id: &str, name: &str) -> &Self {
        self.lock().privileges.insert(id.to_string(), name.to_string());
        self
    }

    /// Puts a duty in a role (outside keyward: roles are made in Visual Studio or the security
    /// configuration workspace, not through OData).
    pub fn add_duty_to_role(&self, role: &str, duty: &str) -> &Self {
        self.lock().role_duties.push((role.to_string(), duty.to_string()));
        self
    }

    pub fn add_privilege_to_duty(&self, duty: &str, privilege: &str) -> &Self {
        self.lock().duty_privileges.push((duty.to_string(), privilege.to_string()));
        self
    }

    /// Grants a privilege to a role directly (not through a duty).
    pub fn add_privilege_to_role(&self, role: &str, privilege: &str) -> &Self {
        self.lock().role_privileges.push((role.to_string(), privilege.to_string()));
        self
    }

    /// Maps an Entra application (client id) to a user, as System administration › Setup ›
    /// Microsoft Entra applications does.
    pub fn add_aad_client(&self, client_id: &str, name: &str, user_id: &str) -> &Self {
        self.lock().aad_clients.insert(client_id.to_lowercase(), (name.to_string(), user_id.to_string()));
        self
    }

    /// The Entra applications mapped to users: client id → (name, user id).
    pub fn aad_clients(&self) -> BTreeMap<String, (String, String)> {
        self.lock().aad_clients.clone()
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

    /// The names of the roles of the user with this UserID, sorted.
    pub fn roles_of_user(&self, user_id: &str) -> Vec<String> {
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .assignments
            .iter()
            .filter(|(u, _)| u == user_id)
            .filter_map(|(_, r)| inner.roles.get(r).cloned())
            .collect();
        out.sort();
        out
    }

    /// The row of the user with this UserID.
    pub fn user_row(&self, user_id: &str) -> Option<Map<String, Value>> {
        self.lock().users.get(user_id).cloned()
    }

    pub fn serve(&self, entra: &Entra, log: &RequestLog, throttle: Option<&Throttle>) -> Running {
        let api = Router::new().route("/data/{*rest}", any(handle)).with_state((self.clone(), entra.clone()));
        let api = match throttle {
            Some(t) => t.layer(api),
            None => api,
        };
        crate::serve(log.layer(api.merge(entra.router())))
    }

    /// A role's licence type (`None` when unset).
    fn license(inner: &Inner, role: &str) -> String {
        inner.licenses.get(role).cloned().unwrap_or_else(|| "None".into())
    }

    /// `SecurityRoleDuties` (role → duty), `SecurityDuties` (role, duty and each privilege of the
    /// duty: the collection keyed by role and duty that names privileges, [3P]) and
    /// `SecurityPrivileges` (role → privilege, granted directly or through a duty:
    /// [UNVERIFIED]).
    fn security_rows(inner: &Inner, set: &str) -> Vec<Value> {
        let role_name = |r: &str| inner.roles.get(r).cloned();
        let duty_name = |d: &str| inner.duties.get(d).cloned();
        let priv_name = |p: &str| inner.privileges.get(p).cloned();
        match set {
            "SecurityRoleDuties" => inner
                .role_duties
                .iter()
                .map(|(r, d)| {
                    json!({"SecurityRoleIdentifier": r, "SecurityDutyIdentifier": d, "SecurityRoleName": role_name(r),
                        "SecurityDutyName": duty_name(d)})
                })
                .collect(),
            "SecurityDuties" => inner
                .role_duties
                .iter()
                .flat_map(|(r, d)| {
                    inner.duty_privileges.iter().filter(move |(dd, _)| dd == d).map(move |(_, p)| {
                        json!({"SecurityRoleIdentifier": r, "SecurityDutyIdentifier": d, "SecurityRoleName": role_name(r),
                            "SecurityDutyName": duty_name(d), "SecurityPrivilegeIdentifier": p,
                            "SecurityPrivilegeName": priv_name(p)})
                    })
                })
                .collect(),
            _ => {
                let mut pairs: Vec<(String, String)> = inner.role_privileges.clone();
                for (r, d) in &inner.role_duties {
                    for (_, p) in inner.duty_privileges.iter().filter(|(dd, _)| dd == d) {
                        pairs.push((r.clone(), p.clone()));
                    }
                }
                pairs.sort();
                pairs.dedup();
                pairs
                    .iter()
                    .map(|(r, p)| {
                        json!({"SecurityRoleIdentifier": r, "SecurityPrivilegeIdentifier": p, "SecurityRoleName": role_name(r),
                            "SecurityPrivilegeName": priv_name(p)})
                    })
                    .collect()
            }
        }
    }

    fn assignment_rows(inner: &Inner, with_license: bool) -> Vec<Value> {
        inner
            .assignments
            .iter()
            .map(|(u, r)| {
                let mut row = json!({"UserId": u, "SecurityRoleIdentifier": r, "SecurityRoleName": inner.roles.get(r),
                    "AssignmentStatus": "Enabled", "AssignmentMode": "Manual"});
                if with_license {
                    row["UserLicenseType"] = json!(Self::license(inner, r));
                }
                row
            })
            .collect()
    }

    /// `SysAADClients`: POST (`AADClientId`, `Name`, `UserId`; the user must exist: assumed),
    /// PATCH of `Name` or `UserId`, DELETE, by the key `AADClientId`.
    fn aad_client(
        inner: &mut Inner,
        method: &Method,
        key: Option<BTreeMap<String, String>>,
        body: Option<Value>,
    ) -> Answer {
        let get = |f: &str| body.as_ref().and_then(|b| b.get(f)).and_then(Value::as_str).map(str::to_string);
        let id = key.as_ref().and_then(|k| k.get("AADClientId").or_else(|| k.get("")).cloned());
        match (method, id) {
            (&Method::POST, None) => {
                let (Some(client), Some(name), Some(user)) = (get("AADClientId"), get("Name"), get("UserId")) else {
                    return err(StatusCode::BAD_REQUEST, "AADClientId, Name and UserId are required.");
                };
                if !inner.users.contains_key(&user) {
                    return err(StatusCode::BAD_REQUEST, &format!("The user {user} does not exist."));
                }
                if inner.aad_clients.contains_key(&client.to_lowercase()) {
                    return err(StatusCode::CONFLICT, &format!("The record already exists: AADClientId {client}."));
                }
                inner.aad_clients.insert(client.to_lowercase(), (name, user));
                Answer { status: StatusCode::CREATED, headers: vec![], body }
            }
            (&Method::GET, Some(id)) => match inner.aad_clients.get(&id.to_lowercase()) {
                Some((name, user)) => {
                    Answer::json(json!({"AADClientId": id.to_lowercase(), "Name": name, "UserId": user}))
                }
                None => err(StatusCode::NOT_FOUND, "No record matches the key."),
            },
            (&Method::PATCH, Some(id)) => {
                let user = get("UserId");
                if user.as_ref().is_some_and(|u| !inner.users.contains_key(u)) {
                    return err(StatusCode::BAD_REQUEST, "The user does not exist.");
                }
                let Some(entry) = inner.aad_clients.get_mut(&id.to_lowercase()) else {
                    return err(StatusCode::NOT_FOUND, "No record matches the key.");
                };
                if let Some(n) = get("Name") {
                    entry.0 = n;
                }
                if let Some(u) = user {
                    entry.1 = u;
                }
                Answer::no_content()
            }
            (&Method::DELETE, Some(id)) => match inner.aad_clients.remove(&id.to_lowercase()) {
                Some(_) => Answer::no_content(),
                None => err(StatusCode::NOT_FOUND, "No record matches the key."),
            },
            _ => err(StatusCode::METHOD_NOT_ALLOWED, "Not supported on SysAADClients."),
        }
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
        if READ_ONLY.contains(&set) && *method != Method::GET {
            return err(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("Write not allowed for entity '{set}': it is read-only."),
            );
        }
        if set == AAD_CLIENTS && *method != Method::GET && inner.refused.iter().any(|r| r == set) {
            return err(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("Write not allowed for entity '{set}': it is read-only."),
            );
        }
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
                        .map(|(id, n)| {
                            json!({"SecurityRoleIdentifier": id, "SecurityRoleName": n, "AccessToSensitiveData": false,
                                "UserLicenseType": Self::license(&inner, id)})
                        })
                        .collect(),
                    ASSOCIATIONS | USER_ROLES => Self::assignment_rows(&inner, set == USER_ROLES),
                    "SegregationOfDutiesConflicts" => Self::conflict_rows(&inner),
                    "SecurityRoleDuties" | "SecurityDuties" | "SecurityPrivileges" => Self::security_rows(&inner, set),
                    AAD_CLIENTS => inner
                        .aad_clients
                        .iter()
                        .map(|(id, (name, user))| json!({"AADClientId": id, "Name": name, "UserId": user}))
                        .collect(),
                    _ => return err(StatusCode::NOT_FOUND, &format!("Resource not found for the segment '{set}'.")),
                };
                let rows = match filter_rows(rows, query) {
                    Ok(r) => r,
                    Err(a) => return a,
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
            (_, AAD_CLIENTS, key) => Self::aad_client(&mut inner, method, key, body),
            _ => err(StatusCode::METHOD_NOT_ALLOWED, &format!("{method} is not supported on {path}.")),
        }
    }
}

/// `$filter` of `Field eq 'value'` clauses joined by `and` (the operators the reference sheet
/// lists beyond `eq` are not modelled: refused).
fn filter_rows(rows: Vec<Value>, query: &str) -> Result<Vec<Value>, Answer> {
    let Some(f) = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "$filter").map(|(_, v)| v.into_owned())
    else {
        return Ok(rows);
    };
    let mut clauses = Vec::new();
    for c in f.split(" and ") {
        let Some((field, value)) = c.trim().split_once(" eq ") else {
            return Err(err(StatusCode::BAD_REQUEST, "Only 'Field eq value' filters joined by 'and' are modelled."));
        };
        let value = value.trim();
        let value = match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            Some(v) => json!(v.replace("''", "'")),
            None => {
                serde_json::from_str(value).map_err(|_| err(StatusCode::BAD_REQUEST, "A filter value is not valid."))?
            }
        };
        clauses.push((field.trim().to_string(), value));
    }
    Ok(rows.into_iter().filter(|r| clauses.iter().all(|(k, v)| &r[k.as_str()] == v)).collect())
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
