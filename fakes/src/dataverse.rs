//! The Dataverse Web API (reference sheet §3), enough for identity and access: business units,
//! security roles, system users, field security profiles and permissions, their N:N
//! relationships, and the audit table.
//!
//! Documented behaviour reproduced: the service root `/api/data/v9.2/`; bearer tokens for the
//! environment URL; `Prefer: odata.maxpagesize=N` (at most 5000) answered with
//! `Preference-Applied` and an `@odata.nextLink` holding a `$skiptoken`; `@odata.etag` on every
//! row and `If-Match` (412 on a mismatch); `POST` answering 204 with `OData-EntityId`;
//! `@odata.bind` lookups; `isdisabled` refused on create; associate / disassociate through
//! `…/$ref`; the intersect collections `systemuserrolescollection` (GET only); multipart
//! `$batch` of up to 1000 operations; error bodies `{"error":{"code":"0x…","message":…}}`;
//! audit rows with action 55 / 56 when a role is given to or taken from a user.
//!
//! Assumed: a user can hold only the copy of a role that belongs to their own business unit
//! (any other is refused with `0x80040217`); associating a pair twice answers `0x80040237`
//! (duplicate key); `systemuserprofilescollection` can be listed like
//! `systemuserrolescollection`; GUIDs are issued in sequence.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value, json};

use crate::entra::Entra;
use crate::odata::{self, Answer, error, into_response};
use crate::{RequestLog, Running, Throttle};

pub const API: &str = "/api/data/v9.2/";
const MAX_PAGE: usize = 5000;
const MAX_BATCH: usize = 1000;

type Row = Map<String, Value>;

#[derive(Debug, Default)]
struct Inner {
    /// Entity set → id → row.
    sets: BTreeMap<String, BTreeMap<String, Row>>,
    /// (systemuserid, roleid) pairs.
    user_roles: Vec<(String, String)>,
    /// (systemuserid, fieldsecurityprofileid) pairs.
    user_profiles: Vec<(String, String)>,
    next_id: u64,
    version: u64,
    /// The server's own page limit, below the client's preference (to force paging).
    page_cap: Option<usize>,
    /// Entity sets that refuse writes with 403 (privilege denied).
    denied: Vec<String>,
    /// Next links that never advance (a broken service).
    stuck_paging: bool,
    /// Service protection applied to each operation inside a `$batch`: a part past the rate is
    /// answered 429 with `Retry-After` and not carried out.
    part_throttle: Option<crate::Throttle>,
}

/// A fake Dataverse environment. Clone it to inspect or change its state from a test.
#[derive(Debug, Clone, Default)]
pub struct Dataverse {
    inner: Arc<Mutex<Inner>>,
}

/// The primary key of an entity set.
fn key_of(set: &str) -> Option<&'static str> {
    Some(match set {
        "businessunits" => "businessunitid",
        "roles" => "roleid",
        "systemusers" => "systemuserid",
        "fieldsecurityprofiles" => "fieldsecurityprofileid",
        "fieldpermissions" => "fieldpermissionid",
        "audits" => "auditid",
        _ => return None,
    })
}

impl Dataverse {
    /// An empty environment with a root business unit named `root`.
    pub fn new(root: &str) -> Self {
        let d = Dataverse::default();
        d.add_business_unit(root, None);
        d
    }

    /// Throttles each operation inside a `$batch` with `throttle` (service protection counts
    /// the operations of a batch, not the batch).
    pub fn throttle_batch_parts(&self, throttle: &crate::Throttle) {
        self.lock().part_throttle = Some(throttle.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("dataverse")
    }

    fn insert(inner: &mut Inner, set: &str, mut row: Row) -> String {
        inner.next_id += 1;
        inner.version += 1;
        let id = format!("00000000-0000-0000-0000-{:012}", inner.next_id);
        let key = key_of(set).expect("known set");
        row.insert(key.into(), json!(id));
        row.insert("@odata.etag".into(), json!(format!("W/\"{}\"", inner.version)));
        inner.sets.entry(set.to_string()).or_default().insert(id.clone(), row);
        id
    }

    /// The server's page limit (to make paging visible with few rows).
    pub fn page_cap(&self, n: usize) -> &Self {
        self.lock().page_cap = Some(n.max(1));
        self
    }

    /// Next links that point back at the first page, so paging never ends.
    pub fn stuck_paging(&self) -> &Self {
        self.lock().stuck_paging = true;
        self
    }

    /// Writes to an entity set answer 403 `PrivilegeDenied`.
    pub fn deny_writes(&self, set: &str) -> &Self {
        self.lock().denied.push(set.to_string());
        self
    }

    pub fn root_business_unit(&self) -> String {
        let inner = self.lock();
        inner.sets["businessunits"]
            .iter()
            .find(|(_, r)| r.get("_parentbusinessunitid_value").is_none_or(Value::is_null))
            .map(|(id, _)| id.clone())
            .expect("a root business unit")
    }

    pub fn business_unit(&self, name: &str) -> Option<String> {
        let inner = self.lock();
        inner.sets.get("businessunits")?.iter().find(|(_, r)| r["name"] == json!(name)).map(|(id, _)| id.clone())
    }

    pub fn add_business_unit(&self, name: &str, parent: Option<&str>) -> String {
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("name".into(), json!(name));
        row.insert("_parentbusinessunitid_value".into(), parent.map_or(Value::Null, |p| json!(p)));
        Self::insert(&mut inner, "businessunits", row)
    }

    /// Adds a security role in a business unit (the root one when `None`).
    pub fn add_role(&self, name: &str, business_unit: Option<&str>) -> String {
        let bu = business_unit.map(str::to_string).unwrap_or_else(|| self.root_business_unit());
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("name".into(), json!(name));
        row.insert("_businessunitid_value".into(), json!(bu));
        Self::insert(&mut inner, "roles", row)
    }

    /// Adds a role to the root unit and a copy to every other unit, as Dataverse does for a
    /// role created in the root business unit.
    pub fn add_role_everywhere(&self, name: &str) {
        let units: Vec<String> = self.lock().sets["businessunits"].keys().cloned().collect();
        for u in units {
            self.add_role(name, Some(&u));
        }
    }

    /// Adds a person (in the root unit when `business_unit` is `None`).
    pub fn add_user(&self, domain_name: &str, business_unit: Option<&str>) -> String {
        let bu = business_unit.map(str::to_string).unwrap_or_else(|| self.root_business_unit());
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("domainname".into(), json!(domain_name));
        row.insert("internalemailaddress".into(), json!(domain_name));
        row.insert("lastname".into(), json!(domain_name.split('@').next().unwrap_or(domain_name)));
        row.insert("isdisabled".into(), json!(false));
        row.insert("applicationid".into(), Value::Null);
        row.insert("_businessunitid_value".into(), json!(bu));
        Self::insert(&mut inner, "systemusers", row)
    }

    /// Adds an application user (a service principal), which keyward must leave alone.
    pub fn add_application_user(&self, name: &str) -> String {
        let bu = self.root_business_unit();
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("domainname".into(), json!(name));
        row.insert("applicationid".into(), json!("11111111-2222-3333-4444-555555555555"));
        row.insert("isdisabled".into(), json!(false));
        row.insert("_businessunitid_value".into(), json!(bu));
        Self::insert(&mut inner, "systemusers", row)
    }

    pub fn user_id(&self, domain_name: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .sets
            .get("systemusers")?
            .iter()
            .find(|(_, r)| r["domainname"].as_str().is_some_and(|d| d.eq_ignore_ascii_case(domain_name)))
            .map(|(id, _)| id.clone())
    }

    /// The domain names of every user, one entry per row (so a user created twice shows twice).
    pub fn users(&self) -> Vec<String> {
        let inner = self.lock();
        let rows = inner.sets.get("systemusers").into_iter().flat_map(|set| set.values());
        rows.filter_map(|r| r["domainname"].as_str().map(str::to_string)).collect()
    }

    /// The user's row.
    pub fn user(&self, domain_name: &str) -> Option<Row> {
        let id = self.user_id(domain_name)?;
        self.lock().sets["systemusers"].get(&id).cloned()
    }

    /// Gives a role copy to a user directly (a change made outside keyward).
    pub fn associate_role(&self, domain_name: &str, role: &str) {
        let user = self.user_id(domain_name).expect("user");
        let mut inner = self.lock();
        let bu = inner.sets["systemusers"][&user]["_businessunitid_value"].clone();
        let rid = inner.sets["roles"]
            .iter()
            .find(|(_, r)| r["name"] == json!(role) && r["_businessunitid_value"] == bu)
            .map(|(id, _)| id.clone())
            .expect("a copy of the role in the user's business unit");
        inner.user_roles.push((user, rid));
    }

    /// The names of the roles a user holds, sorted.
    pub fn roles_of(&self, domain_name: &str) -> Vec<String> {
        let Some(user) = self.user_id(domain_name) else { return vec![] };
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .user_roles
            .iter()
            .filter(|(u, _)| *u == user)
            .filter_map(|(_, r)| inner.sets["roles"].get(r)?["name"].as_str().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// Adds a field security profile with read permission on `columns` (`table.column`).
    pub fn add_profile(&self, name: &str, columns: &[&str]) -> String {
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("name".into(), json!(name));
        let id = Self::insert(&mut inner, "fieldsecurityprofiles", row);
        for c in columns {
            let (t, a) = c.split_once('.').expect("table.column");
            let mut p = Row::new();
            p.insert("entityname".into(), json!(t));
            p.insert("attributelogicalname".into(), json!(a));
            p.insert("canread".into(), json!(4));
            p.insert("cancreate".into(), json!(0));
            p.insert("canupdate".into(), json!(0));
            p.insert("_fieldsecurityprofileid_value".into(), json!(id));
            Self::insert(&mut inner, "fieldpermissions", p);
        }
        id
    }

    fn profile_id(&self, name: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .sets
            .get("fieldsecurityprofiles")?
            .iter()
            .find(|(_, r)| r["name"] == json!(name))
            .map(|(id, _)| id.clone())
    }

    /// Adds a user to a profile directly (a change made outside keyward).
    pub fn add_profile_member(&self, profile: &str, domain_name: &str) {
        let p = self.profile_id(profile).expect("profile");
        let u = self.user_id(domain_name).expect("user");
        self.lock().user_profiles.push((u, p));
    }

    /// The domain names of a profile's members, sorted; `None` when there is no such profile.
    pub fn profile_members(&self, profile: &str) -> Option<Vec<String>> {
        let p = self.profile_id(profile)?;
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .user_profiles
            .iter()
            .filter(|(_, q)| *q == p)
            .filter_map(|(u, _)| inner.sets["systemusers"].get(u)?["domainname"].as_str().map(str::to_string))
            .collect();
        out.sort();
        Some(out)
    }

    /// The `table.column`s a profile may read, sorted.
    pub fn profile_columns(&self, profile: &str) -> Vec<String> {
        let Some(p) = self.profile_id(profile) else { return vec![] };
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .sets
            .get("fieldpermissions")
            .into_iter()
            .flat_map(|s| s.values())
            .filter(|r| r["_fieldsecurityprofileid_value"] == json!(p) && r["canread"] == json!(4))
            .map(|r| {
                format!(
                    "{}.{}",
                    r["entityname"].as_str().unwrap_or(""),
                    r["attributelogicalname"].as_str().unwrap_or("")
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Audit rows (action, user domain name), in order.
    pub fn audits(&self) -> Vec<(i64, String)> {
        let inner = self.lock();
        inner
            .sets
            .get("audits")
            .into_iter()
            .flat_map(|s| s.values())
            .map(|r| {
                let user = r["objectid"].as_str().unwrap_or("");
                let name = inner.sets["systemusers"].get(user).and_then(|u| u["domainname"].as_str()).unwrap_or(user);
                (r["action"].as_i64().unwrap_or(0), name.to_string())
            })
            .collect()
    }

    /// Serves the environment (and the Entra token endpoint, for `entra`'s clients) on a
    /// loopback port. Every request is recorded in `log`; `throttle`, when given, answers 429
    /// with `Retry-After` past its rate.
    pub fn serve(&self, entra: &Entra, log: &RequestLog, throttle: Option<&Throttle>) -> Running {
        let api = Router::new().route("/api/data/v9.2/{*rest}", any(handle)).with_state((self.clone(), entra.clone()));
        let api = match throttle {
            Some(t) => t.layer(api),
            None => api,
        };
        crate::serve(log.layer(api.merge(entra.router())))
    }

    /// Carries out one request below the service root.
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
        let body: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => Some(v),
                Err(_) => return error(StatusCode::BAD_REQUEST, "0x80040216", "The request body is not JSON."),
            }
        };
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let parse = |s: &str| -> (String, Option<String>) {
            match s.split_once('(') {
                Some((set, rest)) => {
                    (set.to_string(), Some(rest.trim_end_matches(')').trim_matches('\'').to_lowercase()))
                }
                None => (s.to_string(), None),
            }
        };
        let mut inner = self.lock();
        match (method, segs.as_slice()) {
            (&Method::GET, [set]) => {
                let (set, id) = parse(set);
                let rows: Vec<Value> = match set.as_str() {
                    "systemuserrolescollection" => {
                        inner.user_roles.iter().map(|(u, r)| json!({"systemuserid": u, "roleid": r})).collect()
                    }
                    "systemuserprofilescollection" => inner
                        .user_profiles
                        .iter()
                        .map(|(u, p)| json!({"systemuserid": u, "fieldsecurityprofileid": p}))
                        .collect(),
                    s if key_of(s).is_some() => match id {
                        Some(id) => {
                            return match inner.sets.get(s).and_then(|m| m.get(&id)) {
                                Some(r) => Answer::json(Value::Object(r.clone())),
                                None => error(
                                    StatusCode::NOT_FOUND,
                                    "0x80040217",
                                    &format!("{s} With Id = {id} Does Not Exist"),
                                ),
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
            (&Method::POST, [set]) => {
                let (set, _) = parse(set);
                if key_of(&set).is_none() || set == "audits" {
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
                let mut row = Row::new();
                for (k, v) in fields {
                    if let Some(nav) = k.strip_suffix("@odata.bind") {
                        let id = v
                            .as_str()
                            .and_then(|s| s.rsplit_once('('))
                            .map(|(_, r)| r.trim_end_matches(')').to_lowercase());
                        row.insert(format!("_{nav}_value"), id.map_or(Value::Null, Value::from));
                    } else {
                        row.insert(k, v);
                    }
                }
                if set == "systemusers" {
                    if row.contains_key("isdisabled") {
                        return error(StatusCode::BAD_REQUEST, "0x80048d19", "isdisabled is not valid for create.");
                    }
                    for required in ["domainname", "internalemailaddress", "lastname", "_businessunitid_value"] {
                        if row.get(required).is_none_or(Value::is_null) {
                            return error(StatusCode::BAD_REQUEST, "0x80040203", &format!("{required} is required."));
                        }
                    }
                    row.insert("isdisabled".into(), json!(false));
                    row.entry("applicationid").or_insert(Value::Null);
                }
                let id = Self::insert(&mut inner, &set, row);
                let mut a = Answer::no_content();
                a.headers.push(("OData-EntityId", format!("{base}{API}{set}({id})")));
                a
            }
            (&Method::PATCH, [entity]) => {
                let (set, Some(id)) = parse(entity) else {
                    return error(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", "PATCH needs an entity.");
                };
                inner.version += 1;
                let version = inner.version;
                let Some(row) = inner.sets.get_mut(&set).and_then(|m| m.get_mut(&id)) else {
                    return error(StatusCode::NOT_FOUND, "0x80040217", &format!("{set} With Id = {id} Does Not Exist"));
                };
                if let Some(tag) = header("if-match")
                    && tag != "*"
                    && row.get("@odata.etag").and_then(Value::as_str) != Some(tag)
                {
                    return error(
                        StatusCode::PRECONDITION_FAILED,
                        "0x80060882",
                        "The version of the existing record doesn't match the RowVersion property provided.",
                    );
                }
                if let Some(Value::Object(fields)) = body {
                    for (k, v) in fields {
                        row.insert(k, v);
                    }
                }
                row.insert("@odata.etag".into(), json!(format!("W/\"{version}\"")));
                Answer::no_content()
            }
            (_, [entity, nav, "$ref"]) => {
                let (set, Some(id)) = parse(entity) else {
                    return error(StatusCode::BAD_REQUEST, "0x80040216", "An entity is required.");
                };
                let (nav, nav_id) = parse(nav);
                self.relationship(&mut inner, method, &set, &id, &nav, nav_id, body)
            }
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", &format!("{method} is not supported on {path}.")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn relationship(
        &self,
        inner: &mut Inner,
        method: &Method,
        set: &str,
        id: &str,
        nav: &str,
        nav_id: Option<String>,
        body: Option<Value>,
    ) -> Answer {
        let (user, other, roles) = match (set, nav) {
            ("systemusers", "systemuserroles_association") => (Some(id.to_string()), nav_id, true),
            ("fieldsecurityprofiles", "systemuserprofiles_association") => (nav_id, Some(id.to_string()), false),
            _ => return error(StatusCode::NOT_FOUND, "0x8006088a", &format!("No relationship {nav} on {set}.")),
        };
        let referenced = body
            .as_ref()
            .and_then(|b| b.get("@odata.id"))
            .and_then(Value::as_str)
            .and_then(|s| s.rsplit_once('('))
            .map(|(_, r)| r.trim_end_matches(')').to_lowercase());
        let (user, other) = match *method {
            Method::POST if roles => (user, referenced),
            Method::POST => (referenced, other),
            Method::DELETE => (user, other),
            _ => return error(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", "Use POST or DELETE on $ref."),
        };
        let (Some(user), Some(other)) = (user, other) else {
            return error(StatusCode::BAD_REQUEST, "0x80040216", "Both sides of the association are required.");
        };
        if inner.sets.get("systemusers").is_none_or(|m| !m.contains_key(&user)) {
            return error(StatusCode::NOT_FOUND, "0x80040217", &format!("systemuser With Id = {user} Does Not Exist"));
        }
        let other_set = if roles { "roles" } else { "fieldsecurityprofiles" };
        if inner.sets.get(other_set).is_none_or(|m| !m.contains_key(&other)) {
            return error(
                StatusCode::NOT_FOUND,
                "0x80040217",
                &format!("{other_set} With Id = {other} Does Not Exist"),
            );
        }
        let pairs = if roles { &mut inner.user_roles } else { &mut inner.user_profiles };
        let pair = (user.clone(), other.clone());
        if *method == Method::POST {
            if pairs.contains(&pair) {
                return error(StatusCode::BAD_REQUEST, "0x80040237", "Cannot insert duplicate key.");
            }
            if roles {
                let ubu = &inner.sets["systemusers"][&user]["_businessunitid_value"];
                let rbu = &inner.sets["roles"][&other]["_businessunitid_value"];
                if ubu != rbu {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "0x80040217",
                        "The role and the user belong to different business units.",
                    );
                }
            }
            let pairs = if roles { &mut inner.user_roles } else { &mut inner.user_profiles };
            pairs.push(pair);
        } else {
            pairs.retain(|p| *p != pair);
        }
        if roles {
            let mut a = Row::new();
            a.insert("action".into(), json!(if *method == Method::POST { 55 } else { 56 }));
            a.insert("operation".into(), json!(2));
            a.insert("objectid".into(), json!(user));
            a.insert("objecttypecode".into(), json!("systemuser"));
            a.insert("_objectid_value".into(), json!(user));
            a.insert("createdon".into(), json!(format!("2026-01-01T00:00:{:02}Z", inner.next_id % 60)));
            Self::insert(inner, "audits", a);
        }
        Answer::no_content()
    }
}

async fn handle(State((dv, entra)): State<(Dataverse, Entra)>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers: &HeaderMap = &parts.headers;
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
    let base = format!("http://{host}");
    if let Err(resp) = entra.check(headers, &base) {
        return resp;
    }
    let bytes: Bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let path = parts.uri.path().strip_prefix(API).unwrap_or_default().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let header_list: Vec<(String, String)> =
        headers.iter().filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string()))).collect();
    if path == "$batch" && parts.method == Method::POST {
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let throttle = dv.lock().part_throttle.clone();
        return odata::batch(&ct, &bytes, API, &header_list, MAX_BATCH, |m, p, q, h, b| {
            if let Some(Err(wait)) = throttle.as_ref().map(crate::Throttle::take) {
                let mut a = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "0x80072322",
                    "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
                );
                a.headers.push(("Retry-After", format!("{:.3}", wait.as_secs_f64().max(0.001))));
                return a;
            }
            dv.dispatch(m, p, q, h, b, &base)
        });
    }
    into_response(dv.dispatch(&parts.method, &path, &query, &header_list, &bytes, &base))
}
