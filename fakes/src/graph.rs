//! Microsoft Graph v1.0 (Entra ID), as far as keyward uses it, written from the reference sheet
//! (section 2; "§2.x" below). Each behaviour is marked **documented** (with its section) or
//! **assumed** (a plausible reading where the sheet is silent, kept simple).
//!
//! Served under `/v1.0`, next to the token endpoint of [`crate::entra`]; every Graph request
//! needs a bearer token issued for the scope `{this server's URL}/.default` (the resource of a
//! national cloud or a test endpoint is its own URL: assumed).
//!
//! Named scenarios ([`Scenario`]) make the failure modes keyward must survive reproducible:
//! throttling (a token bucket, applied to each request inside a `$batch` too, §2.10/§2.11),
//! replication delay (a created object is `404` on its next K uses, §2.1 "eventual
//! consistency", modelled as assumed), transient `503`s (every Nth request), and insufficient
//! privileges (`403 Authorization_RequestDenied` on every write, §2.11).
//!
//! Application credentials (§2.5): `addPassword` generates the secret and returns `secretText`
//! in its answer only (stored without it, with a three-character `hint`); `removePassword`;
//! `addKey` and `removeKey` need a proof token ([`crate::proof`]) signed by one of the
//! application's current certificates, judged by this fake's clock ([`Graph::set_now`]), and
//! `addKey` is refused while the application has none (documented: use PATCH). A PATCH of
//! `keyCredentials` replaces the list and is accepted whether or not the application has a
//! valid certificate (assumed: Graph's update of an application is not restricted so), provided
//! every entry carries its certificate in `key`; a PATCH of `passwordCredentials` is refused
//! (documented). `key` is returned only with `$select=keyCredentials` on a single application
//! (documented). `customKeyIdentifier` is the base64 of the certificate's SHA-1 (assumed).
//!
//! Seeding helpers build large tenants quickly (20,000 users, a 30,000-member group) without
//! requests; [`Graph::log`] counts the requests answered, for tests and benchmarks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::entra::Entra;
use crate::{RequestLog, Running, Throttle};

/// Largest page (§2.1 users, §2.9 groups, members, service principals: max `$top` 999).
pub const MAX_PAGE: usize = 999;
/// Default page (§2.1: 100).
pub const DEFAULT_PAGE: usize = 100;
/// Largest page with `signInActivity` selected (§2.1: 500).
pub const MAX_PAGE_SIGN_IN: usize = 500;
/// Most requests in one `$batch` (§2.10) and most members in one `members@odata.bind` (§2.2).
pub const BATCH_LIMIT: usize = 20;

/// A failure mode to reproduce.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// A token bucket: `rate` requests per second, bursts of `burst`; over it, `429` with
    /// `Retry-After` (documented §2.11), for each request inside a batch too (documented §2.10).
    /// The outer `$batch` request itself takes no token (assumed).
    Throttle { rate: f64, burst: u32 },
    /// Each object created through the API answers `404 Request_ResourceNotFound` to the next
    /// `k` requests that name its id (in the path or body). Documented that replication delays
    /// exist (§2.1); this shape of them is assumed.
    ReplicationDelay { k: u32 },
    /// Every `every`-th HTTP request (outer, not inside a batch) answers `503` (assumed shape;
    /// 503 is a documented status, §2.11).
    Transient5xx { every: u64 },
    /// Every write answers `403 Authorization_RequestDenied` (documented §2.11 example).
    InsufficientPrivileges,
    /// The tenant has no licence for `signInActivity`: selecting it answers `403` (assumed code
    /// `Authentication_RequestFromNonPremiumTenantOrB2CTenant`).
    NoSignInActivity,
}

#[derive(Debug, Default)]
struct Scenarios {
    throttle: Option<Throttle>,
    delay: Option<u32>,
    transient: Option<u64>,
    deny_writes: bool,
    no_sign_in: bool,
}

#[derive(Debug, Default)]
struct GroupObj {
    body: Value,
    members: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Tenant {
    next: u64,
    users: BTreeMap<String, Value>,
    /// user id → manager id.
    managers: HashMap<String, String>,
    deleted: BTreeMap<String, Value>,
    groups: BTreeMap<String, GroupObj>,
    role_definitions: BTreeMap<String, Value>,
    role_assignments: BTreeMap<String, Value>,
    applications: BTreeMap<String, Value>,
    /// application id → owner ids.
    owners: HashMap<String, BTreeSet<String>>,
    service_principals: BTreeMap<String, Value>,
    app_role_assignments: BTreeMap<String, Value>,
    methods_policy: Vec<Value>,
    user_methods: HashMap<String, Vec<Value>>,
    audits: Vec<Value>,
    /// id → remaining 404 answers (replication delay).
    recent: HashMap<String, u32>,
    requests: u64,
    scenarios: Scenarios,
    /// Initial passwords received (test data, for "never printed" checks).
    passwords: Vec<String>,
    /// Client secrets handed out by `addPassword` (test data, for "never printed" checks).
    secrets: Vec<String>,
    /// Proof tokens accepted: (operation, application id, key id of the signing certificate).
    proofs: Vec<(String, String, String)>,
    /// The clock for certificate validity, as a Unix time; the system clock when unset.
    now: Option<u64>,
    /// PATCH requests that set `keyCredentials`.
    key_patches: usize,
    /// Federated domains (lower case).
    federated: BTreeSet<String>,
}

/// The fake Graph service. Cheap to clone; clones share the tenant.
#[derive(Debug, Clone)]
pub struct Graph {
    tenant: Arc<Mutex<Tenant>>,
    entra: Entra,
    log: RequestLog,
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}

/// A request as the dispatcher sees it, outer or inside a batch.
struct Req<'a> {
    method: String,
    segments: Vec<String>,
    query: HashMap<String, String>,
    body: Option<Value>,
    /// `http://host/v1.0`, for `@odata.nextLink`.
    base: &'a str,
}

/// An answer: status, extra headers, body.
struct Resp {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Resp {
    fn ok(body: Value) -> Resp {
        Resp { status: 200, headers: vec![], body: Some(body) }
    }
    fn created(body: Value) -> Resp {
        Resp { status: 201, headers: vec![], body: Some(body) }
    }
    fn no_content() -> Resp {
        Resp { status: 204, headers: vec![], body: None }
    }
    /// The documented error body (§2.11): `error.code`, `message`, `innerError.request-id`.
    fn error(status: u16, code: &str, message: &str) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: Some(json!({"error": {"code": code, "message": message, "innerError": {}}})),
        }
    }
    fn not_found(what: &str) -> Resp {
        Resp::error(
            404,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }
    fn bad(message: &str) -> Resp {
        Resp::error(400, "Request_BadRequest", message)
    }
}

const BUILTIN_ROLES: [(&str, &str); 6] = [
    ("62e90394-69f5-4237-9190-012177145e10", "Global Administrator"),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    ("29232cdf-9323-42fd-ade2-1d097af3e4de", "Exchange Administrator"),
    ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
    ("194ae4cb-b126-40b2-bd5b-6091b380977d", "Security Administrator"),
    ("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "Application Administrator"),
];

const METHOD_CONFIGS: [(&str, &str, &str); 8] = [
    ("Fido2", "fido2AuthenticationMethodConfiguration", "enabled"),
    ("MicrosoftAuthenticator", "microsoftAuthenticatorAuthenticationMethodConfiguration", "enabled"),
    ("Sms", "smsAuthenticationMethodConfiguration", "enabled"),
    ("Voice", "voiceAuthenticationMethodConfiguration", "disabled"),
    ("Email", "emailAuthenticationMethodConfiguration", "enabled"),
    ("TemporaryAccessPass", "temporaryAccessPassAuthenticationMethodConfiguration", "disabled"),
    ("SoftwareOath", "softwareOathAuthenticationMethodConfiguration", "disabled"),
    ("X509Certificate", "x509CertificateAuthenticationMethodConfiguration", "disabled"),
];

fn now_iso() -> String {
    // Seconds since the epoch, formatted as a UTC date-time without a date library.
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    iso(secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (civil-from-days, proleptic Gregorian).
pub fn iso(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl Tenant {
    fn new_id(&mut self, kind: u8) -> String {
        self.next += 1;
        format!("{kind:02x}000000-0000-4000-8000-{:012x}", self.next)
    }

    fn request_id(&mut self) -> String {
        self.requests += 1;
        format!("00000000-0000-4000-9000-{:012x}", self.requests)
    }

    fn user_id(&self, key: &str) -> Option<String> {
        if self.users.contains_key(key) {
            return Some(key.to_string());
        }
        let k = key.to_lowercase();
        self.users
            .iter()
            .find(|(_, u)| u["userPrincipalName"].as_str().is_some_and(|p| p.to_lowercase() == k))
            .map(|(id, _)| id.clone())
    }

    fn object_type(&self, id: &str) -> Option<&'static str> {
        if self.users.contains_key(id) {
            Some("#microsoft.graph.user")
        } else if self.groups.contains_key(id) {
            Some("#microsoft.graph.group")
        } else if self.service_principals.contains_key(id) {
            Some("#microsoft.graph.servicePrincipal")
        } else {
            None
        }
    }

    fn display_name(&self, id: &str) -> String {
        let v = self
            .users
            .get(id)
            .or_else(|| self.groups.get(id).map(|g| &g.body))
            .or_else(|| self.service_principals.get(id))
            .or_else(|| self.applications.get(id));
        v.and_then(|v| v["displayName"].as_str()).unwrap_or_default().to_string()
    }

    /// Records a write in the directory audit log (§2.8 item shape). `actor` is a user
    /// (outside writes seeded by tests) or the calling app.
    fn audit(&mut self, activity: &str, category: &str, target_id: &str, actor: Value) {
        self.next += 1;
        let id = format!("audit-{:08}", self.next);
        let target = json!({"id": target_id, "displayName": self.display_name(target_id),
            "type": self.object_type(target_id).map(|t| t.trim_start_matches("#microsoft.graph.")).unwrap_or("other"),
            "userPrincipalName": self.users.get(target_id).and_then(|u| u["userPrincipalName"].as_str()),
            "modifiedProperties": []});
        self.audits.push(json!({
            "id": id, "category": category, "correlationId": id, "result": "success", "resultReason": "",
            "activityDisplayName": activity, "activityDateTime": now_iso(), "loggedByService": "Core Directory",
            "operationType": activity.split(' ').next().unwrap_or("Update"),
            "initiatedBy": actor, "targetResources": [target], "additionalDetails": [],
        }));
    }

    fn app_actor() -> Value {
        json!({"user": null, "app": {"appId": "keyward-client", "displayName": "keyward", "servicePrincipalId": null}})
    }

    /// Ids a request names: path segments and `directoryObjects/{id}` / id fields in its body.
    fn named_ids(&self, req: &Req) -> Vec<String> {
        let mut out: Vec<String> = req.segments.iter().filter(|s| self.recent.contains_key(*s)).cloned().collect();
        if let Some(b) = &req.body {
            let text = b.to_string();
            for id in self.recent.keys() {
                if text.contains(id.as_str()) {
                    out.push(id.clone());
                }
            }
        }
        out
    }

    fn created(&mut self, id: &str) {
        if let Some(k) = self.scenarios.delay {
            self.recent.insert(id.to_string(), k);
        }
    }

    fn is_write(method: &str) -> bool {
        matches!(method, "POST" | "PATCH" | "PUT" | "DELETE")
    }

    /// One request: scenarios first, then the resource. Used for outer and batched requests.
    fn dispatch(&mut self, req: &Req) -> Resp {
        if let Some(t) = &self.scenarios.throttle
            && let Err(wait) = t.take()
        {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut r = Resp::error(429, "TooManyRequests", "Too many requests.");
            r.headers.push(("Retry-After", secs.to_string()));
            return r;
        }
        if self.scenarios.deny_writes && Tenant::is_write(&req.method) {
            return Resp::error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            );
        }
        if self.scenarios.delay.is_some() {
            let named = self.named_ids(req);
            if let Some(id) = named.first() {
                let left = self.recent.get_mut(id).expect("named ids are recent");
                *left -= 1;
                if *left == 0 {
                    self.recent.remove(id);
                }
                return Resp::not_found(id);
            }
        }
        self.route(req)
    }

    fn route(&mut self, req: &Req) -> Resp {
        let s: Vec<&str> = req.segments.iter().map(String::as_str).collect();
        let m = req.method.as_str();
        match (m, s.as_slice()) {
            ("GET", ["users"]) => self.list_users(req),
            ("POST", ["users"]) => self.create_user(req),
            ("GET", ["users", u]) => match self.user_id(u) {
                Some(id) => Resp::ok(self.project_user(&id, &select(req), false)),
                None => Resp::not_found(u),
            },
            ("PATCH", ["users", u]) => self.update_user(u, req),
            ("DELETE", ["users", u]) => self.delete_user(u),
            ("PUT", ["users", u, "manager", "$ref"]) => self.set_manager(u, req),
            ("DELETE", ["users", u, "manager", "$ref"]) => match self.user_id(u) {
                Some(id) => {
                    self.managers.remove(&id);
                    Resp::no_content()
                }
                None => Resp::not_found(u),
            },
            ("GET", ["users", u, "authentication", "methods"]) => match self.user_id(u) {
                Some(id) => Resp::ok(json!({"value": self.user_methods.get(&id).cloned().unwrap_or_default()})),
                None => Resp::not_found(u),
            },
            ("GET", ["directory", "deletedItems", "microsoft.graph.user"]) => {
                Resp::ok(json!({"value": self.deleted.values().cloned().collect::<Vec<_>>()}))
            }
            ("POST", ["directory", "deletedItems", id, "restore"]) => match self.deleted.remove(*id) {
                Some(u) => {
                    self.users.insert(id.to_string(), u.clone());
                    Resp::ok(u)
                }
                None => Resp::not_found(id),
            },
            ("GET", ["groups"]) => self.list_groups(req),
            ("POST", ["groups"]) => self.create_group(req),
            ("GET", ["groups", g]) => match self.groups.get(*g) {
                Some(o) => Resp::ok(o.body.clone()),
                None => Resp::not_found(g),
            },
            ("PATCH", ["groups", g]) => self.patch_group(g, req),
            ("GET", ["groups", g, "members"]) => self.list_members(g, req),
            ("POST", ["groups", g, "members", "$ref"]) => self.add_member(g, req),
            ("DELETE", ["groups", g, "members", member, "$ref"]) => self.remove_member(g, member),
            ("GET", ["roleManagement", "directory", "roleDefinitions"]) => {
                Resp::ok(json!({"value": self.role_definitions.values().cloned().collect::<Vec<_>>()}))
            }
            ("GET", ["roleManagement", "directory", "roleAssignments"]) => {
                let all: Vec<Value> = self.role_assignments.values().cloned().collect();
                page(req, all, DEFAULT_PAGE, MAX_PAGE)
            }
            ("POST", ["roleManagement", "directory", "roleAssignments"]) => self.assign_role(req),
            ("DELETE", ["roleManagement", "directory", "roleAssignments", id]) => {
                match self.role_assignments.remove(*id) {
                    Some(a) => {
                        let p = a["principalId"].as_str().unwrap_or_default().to_string();
                        self.audit("Remove member from role", "RoleManagement", &p, Tenant::app_actor());
                        Resp::no_content()
                    }
                    None => Resp::not_found(id),
                }
            }
            ("GET", ["servicePrincipals"]) => {
                let all: Vec<Value> = self.service_principals.values().cloned().collect();
                page(req, all, DEFAULT_PAGE, MAX_PAGE)
            }
            ("POST", ["servicePrincipals"]) => self.create_service_principal(req),
            ("GET", ["servicePrincipals", sp, "appRoleAssignedTo"]) => {
                if !self.service_principals.contains_key(*sp) {
                    return Resp::not_found(sp);
                }
                let all: Vec<Value> = self
                    .app_role_assignments
                    .values()
                    .filter(|a| a["resourceId"].as_str() == Some(sp))
                    .cloned()
                    .collect();
                page(req, all, DEFAULT_PAGE, MAX_PAGE)
            }
            ("POST", ["servicePrincipals", sp, "appRoleAssignedTo"]) => self.assign_app_role(sp, req),
            ("DELETE", ["servicePrincipals", sp, "appRoleAssignedTo", id]) => {
                match self.app_role_assignments.get(*id) {
                    Some(a) if a["resourceId"].as_str() == Some(sp) => {
                        let a = self.app_role_assignments.remove(*id).expect("present");
                        let p = a["principalId"].as_str().unwrap_or_default().to_string();
                        self.audit(
                            "Remove app role assignment from user",
                            "ApplicationManagement",
                            &p,
                            Tenant::app_actor(),
                        );
                        Resp::no_content()
                    }
                    _ => Resp::not_found(id),
                }
            }
            ("GET", ["applications"]) => self.list_applications(req),
            ("GET", ["applications", a]) => self.get_application(a, req),
            ("POST", ["applications", a, "addPassword"]) => self.add_password(a, req),
            ("POST", ["applications", a, "removePassword"]) => self.remove_password(a, req),
            ("POST", ["applications", a, "addKey"]) => self.add_key(a, req),
            ("POST", ["applications", a, "removeKey"]) => self.remove_key(a, req),
            ("POST", ["applications"]) => self.create_application(req),
            ("PATCH", ["applications", a]) => self.patch_application(a, req),
            ("POST", ["applications", a, "owners", "$ref"]) => self.add_owner(a, req),
            ("DELETE", ["applications", a, "owners", o, "$ref"]) => {
                if self.owners.get_mut(*a).is_some_and(|set| set.remove(*o)) {
                    Resp::no_content()
                } else {
                    Resp::not_found(o)
                }
            }
            ("GET", ["policies", "authenticationMethodsPolicy"]) => Resp::ok(json!({
                "id": "authenticationMethodsPolicy", "policyVersion": "1.5", "registrationEnforcement": {},
                "authenticationMethodConfigurations": self.methods_policy.clone(),
            })),
            ("PATCH", ["policies", "authenticationMethodsPolicy", "authenticationMethodConfigurations", id]) => {
                let state = req.body.as_ref().and_then(|b| b["state"].as_str()).map(str::to_string);
                let Some(state) = state.filter(|s| s == "enabled" || s == "disabled") else {
                    return Resp::bad("state must be enabled or disabled");
                };
                match self
                    .methods_policy
                    .iter_mut()
                    .find(|c| c["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
                {
                    Some(c) => {
                        c["state"] = json!(state);
                        self.audit("Authentication Methods Policy Update", "Policy", id, Tenant::app_actor());
                        Resp::no_content()
                    }
                    None => Resp::not_found(id),
                }
            }
            ("GET", ["auditLogs", "directoryAudits"]) => self.list_audits(req),
            _ => Resp::error(400, "BadRequest", &format!("Resource not found for the segment '{}'.", s.join("/"))),
        }
    }

    fn project_user(&self, id: &str, select: &Option<Vec<String>>, expand_manager: bool) -> Value {
        let u = &self.users[id];
        let mut out = match select {
            Some(fields) => {
                let mut m = Map::new();
                m.insert("id".into(), u["id"].clone());
                for f in fields {
                    if let Some(v) = u.get(f.as_str()) {
                        m.insert(f.clone(), v.clone());
                    } else if f != "signInActivity" {
                        m.insert(f.clone(), Value::Null);
                    }
                }
                Value::Object(m)
            }
            None => {
                let mut v = u.clone();
                // signInActivity only on $select (documented §2.1).
                v.as_object_mut().expect("object").remove("signInActivity");
                v
            }
        };
        if expand_manager {
            out["manager"] = match self.managers.get(id) {
                Some(m) => json!({"@odata.type": "#microsoft.graph.user", "id": m}),
                None => Value::Null,
            };
        }
        out
    }

    fn list_users(&mut self, req: &Req) -> Resp {
        let sel = select(req);
        let wants_sign_in = sel.as_ref().is_some_and(|f| f.iter().any(|x| x == "signInActivity"));
        if wants_sign_in && self.scenarios.no_sign_in {
            return Resp::error(
                403,
                "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                "Neither tenant is B2C or tenant doesn't have premium license",
            );
        }
        let max = if wants_sign_in { MAX_PAGE_SIGN_IN } else { MAX_PAGE };
        // `$expand=manager($select=id)` (assumed supported on the list, as on a single user).
        let expand = req.query.get("$expand").is_some_and(|e| e.starts_with("manager"));
        let ids: Vec<String> = self.users.keys().cloned().collect();
        page_with(req, ids.len(), DEFAULT_PAGE, max, |range| {
            ids[range].iter().map(|id| self.project_user(id, &sel, expand)).collect()
        })
    }

    fn create_user(&mut self, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        for f in ["accountEnabled", "displayName", "mailNickname", "userPrincipalName"] {
            if !b.contains_key(f) {
                return Resp::bad(&format!("Property '{f}' is required (§2.1)."));
            }
        }
        let upn = b["userPrincipalName"].as_str().unwrap_or_default().to_string();
        if self.user_id(&upn).is_some() {
            return Resp::bad("Another object with the same value for property userPrincipalName already exists.");
        }
        // A federated domain needs onPremisesImmutableId (documented §2.1) and, its users signing
        // in elsewhere, no password (assumed); any other domain needs a password.
        let domain = upn.rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default();
        if self.federated.contains(&domain) {
            if b.get("onPremisesImmutableId").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Resp::bad(&format!(
                    "Property onPremisesImmutableId is required for a user in the federated domain {domain}."
                ));
            }
        } else {
            let pw = b.get("passwordProfile").and_then(|p| p["password"].as_str()).unwrap_or_default();
            if pw.len() < 8 {
                return Resp::bad("The specified password does not comply with password complexity requirements.");
            }
            let pw = pw.to_string();
            self.passwords.push(pw);
        }
        let id = self.new_id(1);
        let mut u = Map::new();
        u.insert("id".into(), json!(id));
        for (k, v) in b {
            if k != "passwordProfile" && k != "manager@odata.bind" {
                u.insert(k.clone(), v.clone());
            }
        }
        u.insert("createdDateTime".into(), json!(now_iso()));
        self.users.insert(id.clone(), Value::Object(u));
        self.audit("Add user", "UserManagement", &id, Tenant::app_actor());
        self.created(&id);
        Resp::created(self.project_user(&id, &None, false))
    }

    fn update_user(&mut self, key: &str, req: &Req) -> Resp {
        let Some(id) = self.user_id(key) else { return Resp::not_found(key) };
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        if b.get("displayName").is_some_and(Value::is_null) {
            return Resp::bad("displayName cannot be cleared (§2.1).");
        }
        let u = self.users.get_mut(&id).expect("found").as_object_mut().expect("object");
        for (k, v) in b {
            if k == "id" || k == "passwordProfile" {
                continue;
            }
            u.insert(k.clone(), v.clone());
        }
        self.audit("Update user", "UserManagement", &id, Tenant::app_actor());
        Resp::no_content()
    }

    /// Soft delete: the user moves to deletedItems, restorable for 30 days (documented §2.1).
    fn delete_user(&mut self, key: &str) -> Resp {
        let Some(id) = self.user_id(key) else { return Resp::not_found(key) };
        self.audit("Delete user", "UserManagement", &id, Tenant::app_actor());
        let mut u = self.users.remove(&id).expect("found");
        u["deletedDateTime"] = json!(now_iso());
        self.deleted.insert(id.clone(), u);
        for g in self.groups.values_mut() {
            g.members.remove(&id);
        }
        self.role_assignments.retain(|_, a| a["principalId"].as_str() != Some(&id));
        self.app_role_assignments.retain(|_, a| a["principalId"].as_str() != Some(&id));
        self.managers.remove(&id);
        Resp::no_content()
    }

    /// `PUT /users/{id}/manager/$ref` (Graph user-post-manager; not on the sheet: assumed).
    fn set_manager(&mut self, key: &str, req: &Req) -> Resp {
        let Some(id) = self.user_id(key) else { return Resp::not_found(key) };
        let Some(mid) = req.body.as_ref().and_then(|b| b["@odata.id"].as_str()).and_then(ref_id) else {
            return Resp::bad("@odata.id is required");
        };
        if !self.users.contains_key(&mid) {
            return Resp::not_found(&mid);
        }
        self.managers.insert(id.clone(), mid);
        self.audit("Update user", "UserManagement", &id, Tenant::app_actor());
        Resp::no_content()
    }

    fn list_groups(&mut self, req: &Req) -> Resp {
        let all: Vec<Value> = self.groups.values().map(|g| g.body.clone()).collect();
        page(req, all, DEFAULT_PAGE, MAX_PAGE)
    }

    fn create_group(&mut self, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        for f in ["displayName", "mailEnabled", "mailNickname", "securityEnabled"] {
            if !b.contains_key(f) {
                return Resp::bad(&format!("Property '{f}' is required."));
            }
        }
        let id = self.new_id(2);
        let mut g = Map::new();
        g.insert("id".into(), json!(id));
        for (k, v) in b {
            if !k.ends_with("@odata.bind") {
                g.insert(k.clone(), v.clone());
            }
        }
        self.groups.insert(id.clone(), GroupObj { body: Value::Object(g.clone()), members: BTreeSet::new() });
        self.audit("Add group", "GroupManagement", &id, Tenant::app_actor());
        self.created(&id);
        Resp::created(Value::Object(g))
    }

    /// `members@odata.bind`: at most 20, all or nothing (documented §2.2).
    fn patch_group(&mut self, gid: &str, req: &Req) -> Resp {
        if !self.groups.contains_key(gid) {
            return Resp::not_found(gid);
        }
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        let mut add = Vec::new();
        if let Some(binds) = b.get("members@odata.bind") {
            let Some(list) = binds.as_array() else { return Resp::bad("members@odata.bind must be an array") };
            if list.len() > BATCH_LIMIT {
                return Resp::bad("A maximum of 20 members can be added in a single request.");
            }
            for r in list {
                let Some(id) = r.as_str().and_then(ref_id) else { return Resp::bad("Invalid object identifier.") };
                if self.object_type(&id).is_none() {
                    return Resp::not_found(&id);
                }
                if self.groups[gid].members.contains(&id) {
                    return Resp::bad(
                        "One or more added object references already exist for the following modified properties: 'members'.",
                    );
                }
                add.push(id);
            }
        }
        let g = self.groups.get_mut(gid).expect("checked");
        for (k, v) in b {
            if !k.ends_with("@odata.bind") && k != "id" {
                g.body[k] = v.clone();
            }
        }
        for id in &add {
            g.members.insert(id.clone());
        }
        for id in add {
            self.audit("Add member to group", "GroupManagement", &id, Tenant::app_actor());
        }
        Resp::no_content()
    }

    fn list_members(&mut self, gid: &str, req: &Req) -> Resp {
        let Some(g) = self.groups.get(gid) else { return Resp::not_found(gid) };
        let ids: Vec<&String> = g.members.iter().collect();
        page_with(req, ids.len(), DEFAULT_PAGE, MAX_PAGE, |range| {
            ids[range]
                .iter()
                .map(|id| json!({"@odata.type": self.object_type(id).unwrap_or("#microsoft.graph.directoryObject"), "id": id}))
                .collect()
        })
    }

    /// `POST /groups/{id}/members/$ref`: 204; 400 if already a member; 404 if the object does not
    /// exist (documented §2.2).
    fn add_member(&mut self, gid: &str, req: &Req) -> Resp {
        if !self.groups.contains_key(gid) {
            return Resp::not_found(gid);
        }
        let Some(id) = req.body.as_ref().and_then(|b| b["@odata.id"].as_str()).and_then(ref_id) else {
            return Resp::bad("@odata.id is required");
        };
        if self.object_type(&id).is_none() {
            return Resp::not_found(&id);
        }
        if !self.groups.get_mut(gid).expect("checked").members.insert(id.clone()) {
            return Resp::bad(
                "One or more added object references already exist for the following modified properties: 'members'.",
            );
        }
        self.audit("Add member to group", "GroupManagement", &id, Tenant::app_actor());
        Resp::no_content()
    }

    fn remove_member(&mut self, gid: &str, member: &str) -> Resp {
        let Some(g) = self.groups.get_mut(gid) else { return Resp::not_found(gid) };
        if !g.members.remove(member) {
            return Resp::not_found(member);
        }
        self.audit("Remove member from group", "GroupManagement", member, Tenant::app_actor());
        Resp::no_content()
    }

    /// Unified role assignment at a scope; `roleDefinitionId` may be the template id
    /// (documented §2.3).
    fn assign_role(&mut self, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref() else { return Resp::bad("a body is required") };
        let (Some(def), Some(principal)) = (b["roleDefinitionId"].as_str(), b["principalId"].as_str()) else {
            return Resp::bad("roleDefinitionId and principalId are required");
        };
        if b["directoryScopeId"].as_str().is_none() && b["appScopeId"].as_str().is_none() {
            return Resp::bad("Either directoryScopeId or appScopeId is required.");
        }
        let def_known = self
            .role_definitions
            .values()
            .any(|d| d["id"].as_str() == Some(def) || d["templateId"].as_str() == Some(def));
        if !def_known {
            return Resp::not_found(def);
        }
        if self.object_type(principal).is_none() {
            return Resp::not_found(principal);
        }
        let scope = b["directoryScopeId"].clone();
        if self.role_assignments.values().any(|a| {
            a["roleDefinitionId"].as_str() == Some(def)
                && a["principalId"].as_str() == Some(principal)
                && a["directoryScopeId"] == scope
        }) {
            return Resp::error(
                400,
                "Request_BadRequest",
                "A conflicting object with one or more of the specified property values is present in the directory.",
            );
        }
        let id = self.new_id(3);
        let a = json!({"id": id, "roleDefinitionId": def, "principalId": principal, "directoryScopeId": scope});
        self.role_assignments.insert(id, a.clone());
        self.audit("Add member to role", "RoleManagement", principal, Tenant::app_actor());
        Resp::created(a)
    }

    fn create_service_principal(&mut self, req: &Req) -> Resp {
        let Some(app_id) = req.body.as_ref().and_then(|b| b["appId"].as_str()).map(str::to_string) else {
            return Resp::bad("appId is required");
        };
        let Some(app) = self.applications.values().find(|a| a["appId"].as_str() == Some(&app_id)).cloned() else {
            return Resp::not_found(&app_id);
        };
        if self.service_principals.values().any(|s| s["appId"].as_str() == Some(&app_id)) {
            return Resp::error(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                "The service principal already exists.",
            );
        }
        let id = self.new_id(4);
        let sp = json!({"id": id, "appId": app_id, "displayName": app["displayName"], "appRoles": app["appRoles"].clone(),
            "servicePrincipalType": "Application"});
        self.service_principals.insert(id.clone(), sp.clone());
        self.audit("Add service principal", "ApplicationManagement", &id, Tenant::app_actor());
        self.created(&id);
        Resp::created(sp)
    }

    /// `POST /servicePrincipals/{resource}/appRoleAssignedTo` (documented §2.4).
    fn assign_app_role(&mut self, sp: &str, req: &Req) -> Resp {
        let Some(res) = self.service_principals.get(sp).cloned() else { return Resp::not_found(sp) };
        let Some(b) = req.body.as_ref() else { return Resp::bad("a body is required") };
        let (Some(principal), Some(role)) = (b["principalId"].as_str(), b["appRoleId"].as_str()) else {
            return Resp::bad("principalId and appRoleId are required");
        };
        if b["resourceId"].as_str() != Some(sp) {
            return Resp::bad("resourceId must be the service principal of the path");
        }
        let known = res["appRoles"].as_array().is_some_and(|rs| rs.iter().any(|r| r["id"].as_str() == Some(role)));
        if !known {
            return Resp::bad("Permission being assigned was not found on application");
        }
        let Some(kind) = self.object_type(principal) else { return Resp::not_found(principal) };
        if self.app_role_assignments.values().any(|a| {
            a["principalId"].as_str() == Some(principal)
                && a["appRoleId"].as_str() == Some(role)
                && a["resourceId"].as_str() == Some(sp)
        }) {
            return Resp::bad("Permission being assigned already exists on the object");
        }
        let id = self.new_id(5);
        let a = json!({"id": id, "appRoleId": role, "createdDateTime": now_iso(),
            "principalDisplayName": self.display_name(principal), "principalId": principal,
            "principalType": kind.trim_start_matches("#microsoft.graph.").replace("servicePrincipal", "ServicePrincipal").replace("user", "User").replace("group", "Group"),
            "resourceDisplayName": res["displayName"], "resourceId": sp, "deletedDateTime": null});
        self.app_role_assignments.insert(id, a.clone());
        self.audit("Add app role assignment grant to user", "ApplicationManagement", principal, Tenant::app_actor());
        Resp::created(a)
    }

    fn list_applications(&mut self, req: &Req) -> Resp {
        // `$expand=owners($select=id)` (assumed supported on the list).
        let expand = req.query.get("$expand").is_some_and(|e| e.starts_with("owners"));
        let all: Vec<Value> = self
            .applications
            .values()
            .map(|a| {
                let mut a = hide_keys(a.clone());
                if expand {
                    let owners = self.owners.get(a["id"].as_str().unwrap_or_default()).cloned().unwrap_or_default();
                    a["owners"] =
                        owners.iter().map(|o| json!({"@odata.type": "#microsoft.graph.user", "id": o})).collect();
                }
                a
            })
            .collect();
        page(req, all, DEFAULT_PAGE, MAX_PAGE)
    }

    fn create_application(&mut self, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref().and_then(Value::as_object) else { return Resp::bad("a body is required") };
        if !b.contains_key("displayName") {
            return Resp::bad("Property 'displayName' is required.");
        }
        let id = self.new_id(6);
        self.next += 1;
        let app_id = format!("a0000000-0000-4000-8000-{:012x}", self.next);
        let mut a = Map::new();
        a.insert("id".into(), json!(id));
        a.insert("appId".into(), json!(app_id));
        a.insert("appRoles".into(), json!([]));
        a.insert("passwordCredentials".into(), json!([]));
        a.insert("keyCredentials".into(), json!([]));
        for (k, v) in b {
            if k != "owners@odata.bind" {
                a.insert(k.clone(), v.clone());
            }
        }
        if let Some(list) = b.get("owners@odata.bind").and_then(Value::as_array) {
            let ids: BTreeSet<String> = list.iter().filter_map(|r| r.as_str().and_then(ref_id)).collect();
            self.owners.insert(id.clone(), ids);
        }
        self.applications.insert(id.clone(), Value::Object(a.clone()));
        self.audit("Add application", "ApplicationManagement", &id, Tenant::app_actor());
        self.created(&id);
        Resp::created(Value::Object(a))
    }

    fn patch_application(&mut self, id: &str, req: &Req) -> Resp {
        let Some(b) = req.body.as_ref().and_then(Value::as_object).cloned() else {
            return Resp::bad("a body is required");
        };
        if b.contains_key("passwordCredentials") {
            // Documented §2.5: PATCH on passwordCredentials is not supported.
            return Resp::bad("Property 'passwordCredentials' cannot be updated; use addPassword and removePassword.");
        }
        if let Some(keys) = b.get("keyCredentials") {
            match self.checked_keys(keys) {
                Ok(keys) => {
                    let Some(a) = self.applications.get_mut(id) else { return Resp::not_found(id) };
                    a["keyCredentials"] = Value::Array(keys);
                    self.key_patches += 1;
                }
                Err(r) => return r,
            }
        }
        let Some(a) = self.applications.get_mut(id) else { return Resp::not_found(id) };
        for (k, v) in b {
            if k != "id" && k != "appId" && k != "keyCredentials" {
                a[k.as_str()] = v;
            }
        }
        self.audit("Update application", "ApplicationManagement", id, Tenant::app_actor());
        Resp::no_content()
    }

    fn add_owner(&mut self, id: &str, req: &Req) -> Resp {
        if !self.applications.contains_key(id) {
            return Resp::not_found(id);
        }
        let Some(o) = req.body.as_ref().and_then(|b| b["@odata.id"].as_str()).and_then(ref_id) else {
            return Resp::bad("@odata.id is required");
        };
        if self.object_type(&o).is_none() {
            return Resp::not_found(&o);
        }
        if !self.owners.entry(id.to_string()).or_default().insert(o) {
            return Resp::bad(
                "One or more added object references already exist for the following modified properties: 'owners'.",
            );
        }
        Resp::no_content()
    }

    fn clock(&self) -> String {
        self.now.map(iso).unwrap_or_else(now_iso)
    }

    /// `GET /applications/{id}`: the single object, where `key` of key credentials is returned
    /// when `keyCredentials` is selected (documented §2.5).
    fn get_application(&mut self, id: &str, req: &Req) -> Resp {
        let Some(a) = self.applications.get(id) else { return Resp::not_found(id) };
        match select(req) {
            Some(fields) => {
                let mut out = Map::new();
                out.insert("id".into(), a["id"].clone());
                for f in &fields {
                    if let Some(v) = a.get(f.as_str()) {
                        out.insert(f.clone(), v.clone());
                    }
                }
                let out = Value::Object(out);
                Resp::ok(if fields.iter().any(|f| f == "keyCredentials") { out } else { hide_keys(out) })
            }
            None => Resp::ok(hide_keys(a.clone())),
        }
    }

    fn secret_text(&mut self) -> Result<String, Resp> {
        use base64::Engine as _;
        use ring::rand::SecureRandom as _;
        let mut b = [0u8; 30];
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| Resp::error(500, "InternalServerError", "no randomness"))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
    }

    /// `addPassword` (documented §2.5): all fields optional; start defaults to now and end to two
    /// years later (the default of that doc version); `secretText` is in this answer only.
    fn add_password(&mut self, id: &str, req: &Req) -> Resp {
        if !self.applications.contains_key(id) {
            return Resp::not_found(id);
        }
        let pc = req.body.as_ref().map(|b| b["passwordCredential"].clone()).unwrap_or(Value::Null);
        let secret = match self.secret_text() {
            Ok(s) => s,
            Err(r) => return r,
        };
        let now = self.clock();
        let start = pc["startDateTime"].as_str().map(str::to_string).unwrap_or(now);
        let end = pc["endDateTime"].as_str().map(str::to_string).unwrap_or_else(|| {
            let y: i64 = start[..4].parse().unwrap_or(2000);
            format!("{:04}{}", y + 2, &start[4..])
        });
        let key_id = self.new_id(7);
        let stored = json!({"customKeyIdentifier": null, "displayName": pc["displayName"].clone(), "endDateTime": end,
            "hint": &secret[..3], "keyId": key_id, "secretText": null, "startDateTime": start});
        let mut answer = stored.clone();
        answer["secretText"] = json!(secret);
        self.secrets.push(secret);
        let a = self.applications.get_mut(id).expect("checked");
        a["passwordCredentials"].as_array_mut().expect("an array").push(stored);
        self.audit(
            "Update application – Certificates and secrets management ",
            "ApplicationManagement",
            id,
            Tenant::app_actor(),
        );
        Resp::ok(answer)
    }

    /// `removePassword` (documented §2.5); an unknown keyId is `404` (assumed code).
    fn remove_password(&mut self, id: &str, req: &Req) -> Resp {
        let Some(key_id) = req.body.as_ref().and_then(|b| b["keyId"].as_str()).map(str::to_string) else {
            return Resp::bad("keyId is required");
        };
        let Some(a) = self.applications.get_mut(id) else { return Resp::not_found(id) };
        let list = a["passwordCredentials"].as_array_mut().expect("an array");
        let before = list.len();
        list.retain(|p| p["keyId"].as_str() != Some(&key_id));
        if list.len() == before {
            return Resp::error(
                404,
                "Request_ResourceNotFound",
                &format!("No password credential found with keyId {key_id}."),
            );
        }
        Resp::no_content()
    }

    /// Checks a key credential to add (assumed: Graph parses the certificate and derives
    /// `customKeyIdentifier`, the base64 of its SHA-1, and, when not given, the dates).
    fn checked_key(&mut self, k: &Value) -> Result<Value, Resp> {
        use base64::Engine as _;
        if k["type"].as_str() != Some("AsymmetricX509Cert") || k["usage"].as_str() != Some("Verify") {
            return Err(Resp::bad("Only AsymmetricX509Cert key credentials with usage Verify are modelled."));
        }
        let der = k["key"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or_else(|| Resp::bad("Key credential 'key' is required and must be base64."))?;
        let (nb, na) = crate::proof::validity(&der)
            .ok_or_else(|| Resp::bad("Key credential 'key' is not an X.509 certificate."))?;
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        let mut out = k.clone();
        out["customKeyIdentifier"] = json!(base64::engine::general_purpose::STANDARD.encode(sha1.as_ref()));
        if out["keyId"].as_str().is_none() {
            out["keyId"] = json!(self.new_id(8));
        }
        if out["startDateTime"].as_str().is_none() {
            out["startDateTime"] = json!(iso(nb.max(0) as u64));
        }
        if out["endDateTime"].as_str().is_none() {
            out["endDateTime"] = json!(iso(na.max(0) as u64));
        }
        Ok(out)
    }

    /// The keyCredentials of a PATCH: every entry must carry its certificate (`key`), the
    /// existing ones too, as the whole list is replaced (assumed, as Graph documents no merge).
    fn checked_keys(&mut self, keys: &Value) -> Result<Vec<Value>, Resp> {
        let Some(list) = keys.as_array() else { return Err(Resp::bad("keyCredentials must be an array")) };
        list.iter().map(|k| self.checked_key(k)).collect()
    }

    /// The application's current certificates (key id, DER) by this fake's clock.
    fn current_certificates(&self, id: &str) -> Vec<(String, Vec<u8>)> {
        use base64::Engine as _;
        let now = self.clock();
        self.applications[id]["keyCredentials"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| {
                k["startDateTime"].as_str().is_some_and(|s| s <= now.as_str())
                    && k["endDateTime"].as_str().is_some_and(|e| e > now.as_str())
            })
            .filter_map(|k| {
                let der = base64::engine::general_purpose::STANDARD.decode(k["key"].as_str()?).ok()?;
                Some((k["keyId"].as_str()?.to_string(), der))
            })
            .collect()
    }

    /// The proof of `req` checked against the application's current certificates (§2.5).
    fn check_proof(&mut self, id: &str, op: &str, req: &Req) -> Result<(), Resp> {
        let current = self.current_certificates(id);
        if current.is_empty() {
            // Documented §2.5: an application without a valid certificate must use PATCH.
            return Err(Resp::bad(
                "The application has no valid certificate to verify the proof; update keyCredentials instead.",
            ));
        }
        let Some(token) = req.body.as_ref().and_then(|b| b["proof"].as_str()) else {
            return Err(Resp::bad("proof is required"));
        };
        match crate::proof::verify(token, id, current.iter().map(|(k, d)| (k.as_str(), d.as_slice()))) {
            Ok(signer) => {
                self.proofs.push((op.to_string(), id.to_string(), signer));
                Ok(())
            }
            Err(why) => Err(Resp::error(400, "Request_BadRequest", &format!("Invalid proof: {why}."))),
        }
    }

    /// `addKey` (documented §2.5): the key credential, with a proof signed by a current
    /// certificate; `passwordCredential` only for `X509CertAndPassword` (not modelled).
    fn add_key(&mut self, id: &str, req: &Req) -> Resp {
        if !self.applications.contains_key(id) {
            return Resp::not_found(id);
        }
        let k = req.body.as_ref().map(|b| b["keyCredential"].clone()).unwrap_or(Value::Null);
        let k = match self.checked_key(&k) {
            Ok(k) => k,
            Err(r) => return r,
        };
        if let Err(r) = self.check_proof(id, "addKey", req) {
            return r;
        }
        let a = self.applications.get_mut(id).expect("checked");
        a["keyCredentials"].as_array_mut().expect("an array").push(k.clone());
        let mut answer = k;
        answer["key"] = Value::Null;
        Resp::ok(answer)
    }

    /// `removeKey` (documented §2.5): the keyId and a proof.
    fn remove_key(&mut self, id: &str, req: &Req) -> Resp {
        if !self.applications.contains_key(id) {
            return Resp::not_found(id);
        }
        let Some(key_id) = req.body.as_ref().and_then(|b| b["keyId"].as_str()).map(str::to_string) else {
            return Resp::bad("keyId is required");
        };
        if let Err(r) = self.check_proof(id, "removeKey", req) {
            return r;
        }
        let list = self.applications.get_mut(id).expect("checked")["keyCredentials"].as_array_mut().expect("an array");
        let before = list.len();
        list.retain(|k| k["keyId"].as_str() != Some(&key_id));
        if list.len() == before {
            return Resp::error(
                404,
                "Request_ResourceNotFound",
                &format!("No key credential found with keyId {key_id}."),
            );
        }
        Resp::no_content()
    }

    /// `$filter=activityDateTime ge X` only (documented filter operators §2.8; the rest of the
    /// filter grammar is not modelled). Newest first (assumed, as sign-ins are).
    fn list_audits(&mut self, req: &Req) -> Resp {
        let since = req.query.get("$filter").and_then(|f| f.strip_prefix("activityDateTime ge ")).map(str::to_string);
        let mut all: Vec<Value> = self
            .audits
            .iter()
            .filter(|a| since.as_deref().is_none_or(|s| a["activityDateTime"].as_str().unwrap_or_default() >= s))
            .cloned()
            .collect();
        all.reverse();
        page(req, all, DEFAULT_PAGE, 1000)
    }
}

/// An application with the `key` of its key credentials left out (documented §2.5: returned
/// only with `$select=keyCredentials` on a single object).
fn hide_keys(mut a: Value) -> Value {
    for k in a.get_mut("keyCredentials").and_then(Value::as_array_mut).into_iter().flatten() {
        k["key"] = Value::Null;
    }
    a
}

/// `$select` as a list, when given.
fn select(req: &Req) -> Option<Vec<String>> {
    req.query.get("$select").map(|s| s.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect())
}

/// The id at the end of a `…/directoryObjects/{id}` (or `/users/{id}`) reference.
fn ref_id(r: &str) -> Option<String> {
    let id = r.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

fn page(req: &Req, all: Vec<Value>, default: usize, max: usize) -> Resp {
    let n = all.len();
    page_with(req, n, default, max, |range| all[range].to_vec())
}

/// A page of `$top` (default `default`, at most `max`, else 400) from `$skiptoken` on, with
/// `@odata.nextLink` carrying the whole query when more remain (documented §2.9: follow the
/// link whole; the token's content is opaque, here an offset: assumed).
fn page_with(
    req: &Req,
    total: usize,
    default: usize,
    max: usize,
    items: impl FnOnce(std::ops::Range<usize>) -> Vec<Value>,
) -> Resp {
    let top = match req.query.get("$top") {
        None => default,
        Some(t) => match t.parse::<usize>() {
            Ok(t) if (1..=max).contains(&t) => t,
            _ => {
                return Resp::bad(&format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and {max} inclusive."
                ));
            }
        },
    };
    let start = match req.query.get("$skiptoken") {
        None => 0,
        Some(t) => match t
            .strip_prefix("X'")
            .and_then(|t| t.strip_suffix('\''))
            .and_then(|t| usize::from_str_radix(t, 16).ok())
        {
            Some(s) => s,
            None => return Resp::bad("The specified skip token is invalid."),
        },
    };
    let end = (start + top).min(total);
    let mut body = json!({"value": items(start.min(total)..end)});
    if end < total {
        let mut q: Vec<(String, String)> =
            req.query.iter().filter(|(k, _)| k.as_str() != "$skiptoken").map(|(k, v)| (k.clone(), v.clone())).collect();
        q.sort();
        q.push(("$skiptoken".into(), format!("X'{end:x}'")));
        let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish();
        body["@odata.nextLink"] = json!(format!("{}/{}?{query}", req.base, req.segments.join("/")));
    }
    Resp::ok(body)
}

fn parse_query(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn split_path(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect()
}

impl Graph {
    /// An empty tenant with the built-in directory roles and the default authentication methods
    /// policy.
    pub fn new() -> Graph {
        let mut t = Tenant::default();
        for (id, name) in BUILTIN_ROLES {
            t.role_definitions
                .insert(id.to_string(), json!({"id": id, "templateId": id, "displayName": name, "isBuiltIn": true}));
        }
        for (id, ty, state) in METHOD_CONFIGS {
            t.methods_policy.push(json!({"@odata.type": format!("#microsoft.graph.{ty}"), "id": id, "state": state,
                "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": false}]}));
        }
        Graph { tenant: Arc::new(Mutex::new(t)), entra: Entra::new(), log: RequestLog::default() }
    }

    /// The token endpoint in front of this fake (register clients on it).
    pub fn entra(&self) -> &Entra {
        &self.entra
    }

    /// Every request answered (token requests included; Graph paths start with `/v1.0`).
    pub fn log(&self) -> &RequestLog {
        &self.log
    }

    /// HTTP requests to Graph itself (not the token endpoint).
    pub fn graph_requests(&self) -> usize {
        self.log.count("GET", |p| p.starts_with("/v1.0"))
            + self.log.count("POST", |p| p.starts_with("/v1.0"))
            + self.log.count("PATCH", |p| p.starts_with("/v1.0"))
            + self.log.count("PUT", |p| p.starts_with("/v1.0"))
            + self.log.count("DELETE", |p| p.starts_with("/v1.0"))
    }

    /// Turns a scenario on (several may be on at once).
    pub fn scenario(&self, s: Scenario) -> &Self {
        let mut t = self.tenant.lock().expect("graph");
        match s {
            Scenario::Throttle { rate, burst } => t.scenarios.throttle = Some(Throttle::new(rate, burst)),
            Scenario::ReplicationDelay { k } => t.scenarios.delay = Some(k),
            Scenario::Transient5xx { every } => t.scenarios.transient = Some(every.max(1)),
            Scenario::InsufficientPrivileges => t.scenarios.deny_writes = true,
            Scenario::NoSignInActivity => t.scenarios.no_sign_in = true,
        }
        self
    }

    /// Turns every scenario off.
    pub fn calm(&self) -> &Self {
        self.tenant.lock().expect("graph").scenarios = Scenarios::default();
        self
    }

    /// Requests refused by the throttle so far.
    pub fn throttled(&self) -> u64 {
        self.tenant.lock().expect("graph").scenarios.throttle.as_ref().map_or(0, Throttle::rejected)
    }

    /// The router: the token endpoint, Graph under `/v1.0`, and the request log.
    pub fn router(&self) -> Router {
        let graph = Router::new().fallback(handle).with_state(self.clone());
        self.log.layer(self.entra.router().merge(graph))
    }

    /// Serves this fake on a loopback port.
    pub fn serve(&self) -> Running {
        crate::serve(self.router())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tenant) -> R) -> R {
        f(&mut self.tenant.lock().expect("graph"))
    }

    // -- Seeding (no requests, no audit entries, no replication delay) ---------------------

    /// Adds a user; returns its id.
    pub fn add_user(&self, upn: &str, display_name: &str, enabled: bool) -> String {
        self.with(|t| {
            let id = t.new_id(1);
            let nick = upn.split('@').next().unwrap_or(upn);
            t.users.insert(
                id.clone(),
                json!({"id": id, "userPrincipalName": upn, "displayName": display_name,
                "mailNickname": nick, "accountEnabled": enabled, "createdDateTime": "2026-01-01T00:00:00Z"}),
            );
            id
        })
    }

    /// Adds `n` users `{prefix}{i}@{domain}`; returns their ids.
    pub fn add_users(&self, prefix: &str, domain: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| self.add_user(&format!("{prefix}{i}@{domain}"), &format!("{prefix} {i}"), true)).collect()
    }

    /// Sets a property of a user as if changed in the portal (no audit entry; see
    /// [`Graph::outside_write`]).
    pub fn set_user_field(&self, id: &str, field: &str, value: Value) {
        self.with(|t| {
            if let Some(u) = t.users.get_mut(id) {
                u[field] = value;
            }
        })
    }

    /// Sets a user's last sign-in (`signInActivity.lastSignInDateTime`).
    pub fn set_last_sign_in(&self, id: &str, when: &str) {
        self.set_user_field(
            id,
            "signInActivity",
            json!({"lastSignInDateTime": when, "lastSuccessfulSignInDateTime": when}),
        )
    }

    /// Adds a security group; returns its id.
    pub fn add_group(&self, name: &str) -> String {
        self.with(|t| {
            let id = t.new_id(2);
            let body = json!({"id": id, "displayName": name, "mailNickname": name, "mailEnabled": false, "securityEnabled": true});
            t.groups.insert(id.clone(), GroupObj { body, members: BTreeSet::new() });
            id
        })
    }

    /// Adds members to a group without requests.
    pub fn add_members(&self, group: &str, ids: &[String]) {
        self.with(|t| {
            if let Some(g) = t.groups.get_mut(group) {
                g.members.extend(ids.iter().cloned());
            }
        })
    }

    /// Assigns a directory role (by display name) at tenant scope without a request.
    pub fn add_role_assignment(&self, role: &str, principal: &str) -> String {
        self.with(|t| {
            let def = t.role_definitions.values().find(|d| d["displayName"].as_str() == Some(role)).cloned();
            let def = def.map(|d| d["id"].as_str().unwrap_or_default().to_string()).unwrap_or_default();
            let id = t.new_id(3);
            t.role_assignments.insert(
                id.clone(),
                json!({"id": id, "roleDefinitionId": def, "principalId": principal, "directoryScopeId": "/"}),
            );
            id
        })
    }

    /// Adds an application with a service principal exposing `roles` (app role values);
    /// returns the service principal id.
    pub fn add_enterprise_app(&self, name: &str, roles: &[&str]) -> String {
        self.with(|t| {
            let app = t.new_id(6);
            t.next += 1;
            let app_id = format!("a0000000-0000-4000-8000-{:012x}", t.next);
            let app_roles: Vec<Value> = roles
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    json!({"id": format!("r0000000-0000-4000-8000-{:04x}{:08x}", i, t.next), "displayName": r,
                    "value": r, "allowedMemberTypes": ["User", "Application"], "isEnabled": true})
                })
                .collect();
            t.applications.insert(
                app.clone(),
                json!({"id": app, "appId": app_id, "displayName": name,
                "appRoles": app_roles, "passwordCredentials": [], "keyCredentials": []}),
            );
            let sp = t.new_id(4);
            t.service_principals.insert(
                sp.clone(),
                json!({"id": sp, "appId": app_id, "displayName": name,
                "appRoles": app_roles, "servicePrincipalType": "Application"}),
            );
            sp
        })
    }

    /// Sets the state of a method configuration (`Sms`, `Fido2`, …) without a request.
    pub fn set_method_state(&self, id: &str, enabled: bool) {
        self.with(|t| {
            if let Some(c) = t.methods_policy.iter_mut().find(|c| c["id"].as_str() == Some(id)) {
                c["state"] = json!(if enabled { "enabled" } else { "disabled" });
            }
        })
    }

    /// Registers an authentication method for a user (an `@odata.type` such as
    /// `#microsoft.graph.fido2AuthenticationMethod`).
    pub fn add_user_method(&self, user: &str, odata_type: &str) {
        self.with(|t| {
            let n = t.user_methods.get(user).map_or(0, Vec::len);
            t.user_methods
                .entry(user.to_string())
                .or_default()
                .push(json!({"@odata.type": odata_type, "id": format!("m{n}")}));
        })
    }

    /// Records a change made outside keyward by `actor_upn` in the audit log, as the portal
    /// would (the change itself is made with the other seeding helpers).
    pub fn outside_write(&self, activity: &str, target_id: &str, actor_upn: &str) {
        self.with(|t| {
            let actor = json!({"user": {"id": "outside-actor", "displayName": actor_upn, "userPrincipalName": actor_upn,
                "ipAddress": "192.0.2.10"}, "app": null});
            let category = if activity.contains("role") { "RoleManagement" } else { "GroupManagement" };
            t.audit(activity, category, target_id, actor);
        })
    }

    // -- Inspection ---------------------------------------------------------------------------

    /// The user with this userPrincipalName, as stored (without password).
    pub fn user(&self, upn: &str) -> Option<Value> {
        self.with(|t| t.user_id(upn).map(|id| t.users[&id].clone()))
    }

    pub fn user_count(&self) -> usize {
        self.with(|t| t.users.len())
    }

    /// Soft-deleted users.
    pub fn deleted_users(&self) -> Vec<Value> {
        self.with(|t| t.deleted.values().cloned().collect())
    }

    /// The id of the group with this display name.
    pub fn group_id(&self, name: &str) -> Option<String> {
        self.with(|t| {
            t.groups
                .iter()
                .find(|(_, g)| g.body["displayName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .map(|(id, _)| id.clone())
        })
    }

    /// The display names of every group, one entry per group (duplicates show twice).
    pub fn group_names(&self) -> Vec<String> {
        self.with(|t| t.groups.values().filter_map(|g| g.body["displayName"].as_str().map(str::to_string)).collect())
    }

    /// Member ids of a group.
    pub fn members(&self, group: &str) -> Vec<String> {
        self.with(|t| t.groups.get(group).map(|g| g.members.iter().cloned().collect()).unwrap_or_default())
    }

    /// Role assignments as stored.
    pub fn role_assignments(&self) -> Vec<Value> {
        self.with(|t| t.role_assignments.values().cloned().collect())
    }

    /// App role assignments as stored.
    pub fn app_role_assignments(&self) -> Vec<Value> {
        self.with(|t| t.app_role_assignments.values().cloned().collect())
    }

    /// Applications as stored, with their owner ids under `owners`.
    pub fn applications(&self) -> Vec<Value> {
        self.with(|t| {
            t.applications
                .values()
                .map(|a| {
                    let mut a = a.clone();
                    a["owners"] =
                        json!(t.owners.get(a["id"].as_str().unwrap_or_default()).cloned().unwrap_or_default());
                    a
                })
                .collect()
        })
    }

    /// Makes a domain federated: its users are created without a password and with
    /// `onPremisesImmutableId`.
    pub fn add_federated_domain(&self, domain: &str) {
        self.with(|t| t.federated.insert(domain.to_lowercase()));
    }

    /// Sets the clock certificate validity is judged by (a Unix time), to follow a test's
    /// `KEYWARD_NOW`.
    pub fn set_now(&self, unix: u64) {
        self.with(|t| t.now = Some(unix));
    }

    /// Client secrets handed out by `addPassword`, for "never printed" checks.
    pub fn secrets(&self) -> Vec<String> {
        self.with(|t| t.secrets.clone())
    }

    /// Proof tokens accepted: (`addKey` or `removeKey`, application id, key id of the
    /// certificate that signed it).
    pub fn proofs(&self) -> Vec<(String, String, String)> {
        self.with(|t| t.proofs.clone())
    }

    /// PATCH requests that set `keyCredentials`.
    pub fn key_patches(&self) -> usize {
        self.with(|t| t.key_patches)
    }

    /// The state of each method configuration.
    pub fn method_states(&self) -> BTreeMap<String, String> {
        self.with(|t| {
            t.methods_policy
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or_default().to_string(),
                        c["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
    }

    /// The initial passwords clients sent when creating users.
    pub fn passwords(&self) -> Vec<String> {
        self.with(|t| t.passwords.clone())
    }

    /// The directory audit log, oldest first.
    pub fn audits(&self) -> Vec<Value> {
        self.with(|t| t.audits.clone())
    }
}

/// Every Graph request (and `$batch`) arrives here.
async fn handle(State(g): State<Graph>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_string();
    let base = format!("http://{host}/v1.0");
    if let Err(resp) = g.entra.check(&parts.headers, &format!("http://{host}")) {
        return resp;
    }
    let Some(path) = parts.uri.path().strip_prefix("/v1.0") else {
        return respond(Resp::error(404, "BadRequest", "Invalid version."), "");
    };
    let path = path.to_string();
    let bytes: Bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return respond(Resp::bad("body too large"), ""),
    };
    let json_body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(_) => return respond(Resp::bad("Unable to read JSON request payload."), ""),
        }
    };
    let mut t = g.tenant.lock().expect("graph");
    let request_id = t.request_id();
    if let Some(every) = t.scenarios.transient
        && t.requests.is_multiple_of(every)
    {
        let r = Resp::error(503, "serviceNotAvailable", "The service is temporarily unavailable.");
        return respond(r, &request_id);
    }
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let method = parts.method.as_str().to_string();
    if method == "POST" && path == "/$batch" {
        let r = batch(&mut t, json_body, &base);
        return respond(r, &request_id);
    }
    let req = Req { method, segments: split_path(&path), query, body: json_body, base: &base };
    let r = t.dispatch(&req);
    respond(r, &request_id)
}

/// `$batch` (documented §2.10): at most 20 requests, unique case-insensitive ids, relative
/// urls, `Content-Type` with every body, `dependsOn` → 424 when a dependency failed, each
/// request throttled on its own, responses in an order of the fake's choosing (here reversed).
fn batch(t: &mut Tenant, body: Option<Value>, base: &str) -> Resp {
    let Some(requests) = body.as_ref().and_then(|b| b["requests"].as_array()).cloned() else {
        return Resp::bad("Invalid batch payload format.");
    };
    if requests.len() > BATCH_LIMIT {
        return Resp::bad("Number of batch request steps exceeds the maximum of 20.");
    }
    let mut ids: Vec<String> = Vec::new();
    for r in &requests {
        let Some(id) = r["id"].as_str() else { return Resp::bad("Batch request id is required.") };
        let lid = id.to_lowercase();
        if ids.contains(&lid) {
            return Resp::bad("Batch request contains duplicate ids.");
        }
        if r["method"].as_str().is_none() || r["url"].as_str().is_none_or(|u| u.starts_with("http")) {
            return Resp::bad("Each batch request needs a method and a relative url.");
        }
        if r.get("body").is_some_and(|b| !b.is_null())
            && !r["headers"].as_object().is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")))
        {
            return Resp::bad("Content-Type header is required when a body is present.");
        }
        ids.push(lid);
    }
    let mut status: HashMap<String, u16> = HashMap::new();
    let mut out = Vec::new();
    for r in &requests {
        let id = r["id"].as_str().expect("checked");
        let deps: Vec<String> = r["dependsOn"]
            .as_array()
            .map(|d| d.iter().filter_map(Value::as_str).map(str::to_lowercase).collect())
            .unwrap_or_default();
        let failed = deps.iter().any(|d| status.get(d).is_none_or(|s| *s >= 400));
        let resp = if failed {
            Resp::error(424, "Failed Dependency", "A request this one depends on failed.")
        } else {
            let url = r["url"].as_str().expect("checked");
            let (path, query) = url.split_once('?').unwrap_or((url, ""));
            let path = path.strip_prefix("/v1.0").unwrap_or(path);
            let req = Req {
                method: r["method"].as_str().expect("checked").to_uppercase(),
                segments: split_path(path),
                query: parse_query(query),
                body: r.get("body").filter(|b| !b.is_null()).cloned(),
                base,
            };
            t.dispatch(&req)
        };
        status.insert(id.to_lowercase(), resp.status);
        let request_id = t.request_id();
        let mut headers = Map::new();
        for (k, v) in &resp.headers {
            headers.insert((*k).to_string(), json!(v));
        }
        let mut body = resp.body.unwrap_or(Value::Null);
        if let Some(inner) = body.pointer_mut("/error/innerError") {
            *inner = json!({"date": now_iso(), "request-id": request_id, "client-request-id": request_id});
        }
        let mut item = json!({"id": id, "status": resp.status, "headers": headers});
        if !body.is_null() {
            item["body"] = body;
        }
        out.push(item);
    }
    out.reverse();
    Resp::ok(json!({"responses": out}))
}

fn respond(mut r: Resp, request_id: &str) -> Response {
    if let Some(inner) = r.body.as_mut().and_then(|b| b.pointer_mut("/error/innerError")) {
        *inner = json!({"date": now_iso(), "request-id": request_id, "client-request-id": request_id});
    }
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match r.body {
        Some(b) => (status, axum::Json(b)).into_response(),
        None => status.into_response(),
    };
    let h: &mut HeaderMap = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("request-id", v);
    }
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_798_761_600), "2027-01-01T00:00:00Z");
    }

    fn req<'a>(method: &str, path: &str, body: Option<Value>, base: &'a str) -> Req<'a> {
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        Req { method: method.into(), segments: split_path(p), query: parse_query(q), body, base }
    }

    #[test]
    fn users_page_with_whole_next_links() {
        let g = Graph::new();
        g.add_users("u", "contoso.example", 2500);
        let mut t = g.tenant.lock().unwrap();
        let r = t.dispatch(&req("GET", "/users?$select=id,userPrincipalName&$top=999", None, "http://h/v1.0"));
        let body = r.body.unwrap();
        assert_eq!(body["value"].as_array().unwrap().len(), 999);
        let next = body["@odata.nextLink"].as_str().unwrap().to_string();
        assert!(next.starts_with("http://h/v1.0/users?"), "{next}");
        let q = next.split_once('?').unwrap().1;
        let r = t.dispatch(&req("GET", &format!("/users?{q}"), None, "http://h/v1.0"));
        assert_eq!(r.body.unwrap()["value"].as_array().unwrap().len(), 999);
        let r = t.dispatch(&req("GET", "/users?$top=1000", None, "http://h/v1.0"));
        assert_eq!(r.status, 400);
    }

    #[test]
    fn bind_is_all_or_nothing_and_limited_to_twenty() {
        let g = Graph::new();
        let users = g.add_users("u", "c.example", 25);
        let gid = g.add_group("g");
        let mut t = g.tenant.lock().unwrap();
        let refs = |ids: &[String]| json!({"members@odata.bind": ids.iter().map(|i| format!("https://graph.microsoft.com/v1.0/directoryObjects/{i}")).collect::<Vec<_>>()});
        let path = format!("/groups/{gid}");
        assert_eq!(t.dispatch(&req("PATCH", &path, Some(refs(&users[..21])), "b")).status, 400);
        let mut bad = users[..3].to_vec();
        bad.push("nope".into());
        assert_eq!(t.dispatch(&req("PATCH", &path, Some(refs(&bad)), "b")).status, 404);
        assert!(t.groups[&gid].members.is_empty());
        assert_eq!(t.dispatch(&req("PATCH", &path, Some(refs(&users[..20])), "b")).status, 204);
        assert_eq!(t.groups[&gid].members.len(), 20);
    }

    #[test]
    fn batches_check_ids_and_dependencies() {
        let g = Graph::new();
        let mut t = g.tenant.lock().unwrap();
        let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/users"}]});
        assert_eq!(batch(&mut t, Some(dup), "b").status, 400);
        let dep = json!({"requests": [
            {"id": "1", "method": "GET", "url": "/users/missing"},
            {"id": "2", "dependsOn": ["1"], "method": "GET", "url": "/users"}]});
        let r = batch(&mut t, Some(dep), "b").body.unwrap();
        let by_id: HashMap<&str, u64> = r["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["id"].as_str().unwrap(), x["status"].as_u64().unwrap()))
            .collect();
        assert_eq!(by_id["1"], 404);
        assert_eq!(by_id["2"], 424);
    }

    #[test]
    fn a_created_object_is_missing_for_its_next_k_uses() {
        let g = Graph::new();
        g.scenario(Scenario::ReplicationDelay { k: 2 });
        let mut t = g.tenant.lock().unwrap();
        let body = json!({"accountEnabled": true, "displayName": "A", "mailNickname": "a", "userPrincipalName": "a@c.example",
            "passwordProfile": {"password": "Xy7!long-enough", "forceChangePasswordNextSignIn": true}});
        let r = t.dispatch(&req("POST", "/users", Some(body), "b"));
        let id = r.body.unwrap()["id"].as_str().unwrap().to_string();
        let get = format!("/users/{id}");
        assert_eq!(t.dispatch(&req("GET", &get, None, "b")).status, 404);
        assert_eq!(t.dispatch(&req("GET", &get, None, "b")).status, 404);
        assert_eq!(t.dispatch(&req("GET", &get, None, "b")).status, 200);
    }
}
