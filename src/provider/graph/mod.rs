//! The `graph` provider: Entra ID through Microsoft Graph v1.0 (reference sheet section 2).
//!
//! Guarantees:
//! - reading costs one request per page of 999 users, one per page of groups, service
//!   principals and applications, and the groups' member pages and service principals'
//!   app-role-assignment pages fetched twenty at a time in `$batch` requests (their follow-up
//!   pages one by one, following `@odata.nextLink` whole), plus the role definitions, role
//!   assignments and methods policy: never one request per user. Sign-in activity, which
//!   caps pages at 500 and needs a licence, is read only for the access review
//!   ([`Access::Review`]); a tenant without the licence is reported once and skipped;
//! - writes go in `$batch` requests of twenty; memberships are added twenty per
//!   `members@odata.bind` PATCH (all or nothing, §2.2), so 1,000 additions to one group take
//!   three HTTP requests; throttled requests inside a batch are retried alone after their
//!   `Retry-After`, and the client slows down instead of failing (see [`client`]);
//! - a `404` for an object this run created is replication delay (§2.1): retried with bounded
//!   backoff; any other `404` on a removal means it is already gone;
//! - a new user gets a random initial password that must be changed at first sign-in; the
//!   password goes only into the create request and is never printed, logged or kept;
//! - deleted users are soft-deleted: restorable for 30 days (the plan says so, from the
//!   capabilities);
//! - errors show Graph's `error.code`, `message` and the request id.
//!
//! It assumes: users are keyed by `userPrincipalName`, groups by `displayName`, directory roles
//! by role definition `displayName` (assignments at tenant scope `/` only), app roles by
//! `{service principal displayName}/{appRole value}` (or its display name when it has no
//! value); keyward's service accounts are applications tagged `keyward:NAME`, whose service
//! principal is the account that holds roles. Their credentials are the application's
//! `passwordCredentials` and certificate `keyCredentials` (§2.5): secrets come from
//! `addPassword` (the `secretText` goes only to delivery), certificates are added with
//! `addKey` and removed with `removeKey`, each with a proof token signed by the certificate
//! keyward delivered last, or, when keyward holds no current certificate of the application,
//! by a PATCH of `keyCredentials` that keeps the others. Also assumed, not on the reference sheet: `$expand=manager($select=id)` on the
//! user list and `$expand=owners($select=id)` on the application list; `PUT
//! /users/{id}/manager/$ref`; listing role assignments without a `$filter`.

pub mod client;
pub mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde_json::{Value, json};

use self::client::{Call, GraphClient, GraphError};
use self::wire::{SERVICE_ACCOUNT_TAG, USER_SELECT, WireUser};
use super::{
    Access, ApplyError, Attribution, Capabilities, IssueMaterial, IssueRequest, Issued, Provider, ProviderError,
    capabilities,
};
use crate::credential::proof::{SigningCertificate, proof_token};
use crate::model::config::Connection;
use crate::model::{
    AppRoleRef, Binding, CredentialType, LiveAccount, LiveBinding, LiveServiceAccount, LiveTarget, ProviderKind,
    Secret, Target, digest,
};
use crate::plan::{Change, Operation, Principal};
use crate::remote::entra::TokenSource;
use crate::remote::http;

/// The public-cloud Graph endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://graph.microsoft.com";
/// The longest a single request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Most members bound by one PATCH (§2.2).
const BIND_LIMIT: usize = 20;
/// How far back the directory audit log is searched for who made a drift difference.
const AUDIT_LOOKBACK_DAYS: i64 = 30;
/// The most pages of the directory audit log read for one plan.
const AUDIT_MAX_PAGES: usize = 10;

fn key(s: &str) -> String {
    s.to_lowercase()
}

/// A service account as read or created.
#[derive(Debug, Clone, Default)]
struct SaEntry {
    app_object_id: String,
    sp_id: Option<String>,
    owners: Vec<String>,
    /// Password credential key ids.
    passwords: HashSet<String>,
    /// Certificate key credentials: key id → (thumbprint, end).
    keys: HashMap<String, (Option<String>, crate::model::Timestamp)>,
}

/// Natural keys to ids, from the read and the writes since.
#[derive(Debug, Default)]
struct State {
    users: HashMap<String, String>,
    groups: HashMap<String, String>,
    /// Role definition display name → id.
    roles: HashMap<String, String>,
    /// (role definition id, principal id) → assignment id.
    role_assignments: HashMap<(String, String), String>,
    /// `app/role` → (service principal id, app role id).
    app_roles: HashMap<String, (String, String)>,
    /// (service principal id, app role id, principal id) → assignment id.
    app_role_assignments: HashMap<(String, String, String), String>,
    service_accounts: HashMap<String, SaEntry>,
}

pub struct GraphProvider {
    target: String,
    caps: Capabilities,
    access: Access,
    client: GraphClient,
    state: Option<State>,
    /// Ids of objects this provider created, whose 404s are replication delay.
    created: HashSet<String>,
    /// userPrincipalName domains (lower case) federated with another identity provider.
    federated_domains: Vec<String>,
}

impl GraphProvider {
    pub fn open(target: &Target, root: &Path, access: Access) -> Result<Self, ProviderError> {
        let name = target.name.to_string();
        let fail = |message: String| ProviderError::Remote { target: name.clone(), message };
        let Connection::Graph { tenant, client_id, credential, endpoint, authority, federated_domains } =
            &target.connection
        else {
            return Err(fail("the target is not a Graph target".into()));
        };
        let endpoint = endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/');
        let url: Url = endpoint.parse().map_err(|e| fail(format!("`{endpoint}` is not a URL: {e}")))?;
        http::check_url(&url).map_err(&fail)?;
        let ca = target.ca_file.as_ref().map(|c| root.join(c));
        let http = http::client(ca.as_deref(), REQUEST_TIMEOUT).map_err(|e| fail(e.to_string()))?;
        let scope = format!("{endpoint}/.default");
        let tokens =
            TokenSource::new(http.clone(), authority.as_deref(), tenant, client_id, credential, &scope, root, &name)?;
        let client = GraphClient::new(&url, http, tokens).map_err(&fail)?;
        Ok(GraphProvider {
            target: name,
            caps: capabilities(ProviderKind::Graph),
            access,
            client,
            state: None,
            created: HashSet::new(),
            federated_domains: federated_domains.clone(),
        })
    }

    /// HTTP requests sent so far (each `$batch` once), for measurements.
    pub fn requests(&self) -> usize {
        self.client.requests()
    }

    fn read_error(&self, what: &str, e: GraphError) -> ProviderError {
        let hint = match e.status() {
            Some(401) => "; check the client credentials",
            Some(403) => "; the application may lack the Graph permission to read it",
            _ => "",
        };
        ProviderError::Remote {
            target: self.target.clone(),
            message: format!("cannot read {what} from {}: {e}{hint}", self.client.root()),
        }
    }

    fn invalid(&self, message: String) -> ProviderError {
        ProviderError::Remote { target: self.target.clone(), message }
    }

    /// Follows each first page of `urls` (fetched in batches) to its last page.
    async fn collections(&self, what: &str, urls: &[String]) -> Result<Vec<Vec<Value>>, ProviderError> {
        let calls: Vec<Call> = urls.iter().map(|u| Call::new(Method::GET, u.clone(), None)).collect();
        let outcomes = self.client.batch(&calls, |_| false).await;
        let mut out = Vec::with_capacity(urls.len());
        for o in outcomes {
            let o = o.map_err(|e| self.read_error(what, e))?;
            let body = o.body.unwrap_or(Value::Null);
            let items = body.get("value").and_then(Value::as_array).cloned().unwrap_or_default();
            let items = match body.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => {
                    let next = self.client.next_link(next).map_err(|e| self.read_error(what, e))?;
                    self.client.follow(next, items).await.map_err(|e| self.read_error(what, e))?
                }
                None => items,
            };
            out.push(items);
        }
        Ok(out)
    }

    /// Each user's registered sign-in methods (§2.6), in batches of twenty, for the access
    /// review. Without the permission to read them (403) they are reported once and left out.
    async fn read_registered_methods(
        &self,
        users: &[WireUser],
    ) -> Result<HashMap<String, Vec<crate::model::AuthMethod>>, ProviderError> {
        let calls: Vec<Call> = users
            .iter()
            .map(|u| Call::new(Method::GET, format!("/users/{}/authentication/methods", u.id), None))
            .collect();
        let mut out = HashMap::with_capacity(users.len());
        for (u, o) in users.iter().zip(self.client.batch(&calls, |_| false).await) {
            match o {
                Ok(o) => {
                    let body = o.body.unwrap_or(Value::Null);
                    let mut methods: Vec<crate::model::AuthMethod> = body
                        .get("value")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(wire::registered_method).collect())
                        .unwrap_or_default();
                    methods.sort();
                    methods.dedup();
                    out.insert(u.id.clone(), methods);
                }
                Err(e) if e.status() == Some(403) => {
                    tracing::warn!(target_name = %self.target, error = %e, "users' registered sign-in methods cannot be read (UserAuthenticationMethod.Read.All); they are left out of the review");
                    return Ok(HashMap::new());
                }
                Err(e) => return Err(self.read_error("the users' sign-in methods", e)),
            }
        }
        Ok(out)
    }

    async fn read_sign_ins(&self) -> Result<HashMap<String, crate::model::Timestamp>, ProviderError> {
        match self.client.get_all("/users?$select=id,signInActivity&$top=500").await {
            Ok(items) => Ok(items
                .iter()
                .filter_map(|v| Some((v.get("id")?.as_str()?.to_string(), wire::last_sign_in(v)?)))
                .collect()),
            Err(e) if e.status() == Some(403) => {
                tracing::warn!(target_name = %self.target, error = %e, "sign-in activity is not available on this tenant; last sign-in times are left out");
                Ok(HashMap::new())
            }
            Err(e) => Err(self.read_error("sign-in activity", e)),
        }
    }
}

impl GraphProvider {
    /// A request about application `app`; a `404` for one this run created is replication
    /// delay (§2.1), retried with bounded backoff as apply's batches do.
    async fn app_call(&self, app: &str, call: Call) -> Result<client::Outcome, GraphError> {
        let mut tries = 0u32;
        loop {
            match self.client.call(&call).await {
                Err(e) if e.status() == Some(404) && tries < 5 && self.created.contains(app) => {
                    tokio::time::sleep(Duration::from_millis(250 << tries)).await;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    fn entry(&self, account: &str) -> Result<&SaEntry, ApplyError> {
        if self.access != Access::Write {
            return Err(ApplyError::new("the target was opened read-only"));
        }
        let state = self.state.as_ref().ok_or_else(|| ApplyError::new("credential change before read"))?;
        state
            .service_accounts
            .get(account)
            .ok_or_else(|| ApplyError::new(format!("the service account {account} does not exist on the target")))
    }

    fn entry_mut(&mut self, account: &str) -> Option<&mut SaEntry> {
        self.state.as_mut()?.service_accounts.get_mut(account)
    }

    /// A proof token for application `app` (§2.5), valid from now.
    fn proof(&self, cert: &SigningCertificate, app: &str, what: &str) -> Result<Secret<String>, ApplyError> {
        let now = chrono::Utc::now();
        let nbf = chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        proof_token(cert, app, nbf).map_err(|e| ApplyError::new(format!("cannot {what}: {e}")))
    }

    /// The application's key credentials with their `key` (returned only when selected on the
    /// single object, §2.5), for a PATCH that keeps them.
    async fn key_credentials(&self, app: &str, what: &str) -> Result<Vec<Value>, ApplyError> {
        let o = self
            .app_call(app, Call::new(Method::GET, format!("/applications/{app}?$select=keyCredentials"), None))
            .await
            .map_err(|e| write_error(what, e))?;
        let keys = o
            .body
            .as_ref()
            .and_then(|b| b.get("keyCredentials"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(k) = keys.iter().find(|k| k.get("key").and_then(Value::as_str).is_none_or(str::is_empty)) {
            return Err(ApplyError::new(format!(
                "cannot {what}: Graph did not return the key of the existing key credential {}, which a PATCH must keep",
                k.get("keyId").and_then(Value::as_str).unwrap_or("(without keyId)")
            )));
        }
        Ok(keys)
    }

    async fn set_key_credentials(&self, app: &str, keys: Vec<Value>, what: &str) -> Result<(), ApplyError> {
        self.app_call(
            app,
            Call::new(Method::PATCH, format!("/applications/{app}"), Some(json!({"keyCredentials": keys}))),
        )
        .await
        .map(|_| ())
        .map_err(|e| write_error(what, e))
    }
}

/// Whether `cert` is one of the account's certificates that has not expired (a proof must be
/// signed by a current certificate, §2.5).
fn current_key(entry: &SaEntry, cert: &SigningCertificate) -> bool {
    let thumbprint = cert.thumbprint();
    let now = chrono::Utc::now();
    entry.keys.values().any(|(t, end)| t.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(&thumbprint)) && *end > now)
}

/// A failed credential write, with Graph's code, message and request id (never a secret: the
/// request bodies are not quoted).
fn write_error(what: &str, e: GraphError) -> ApplyError {
    let hint = match e.status() {
        Some(403) => "; the application may lack Application.ReadWrite.All or ownership of the application",
        _ => "",
    };
    ApplyError::new(format!("cannot {what}: {e}{hint}"))
}

/// A 400 that says the reference or assignment exists already (§2.2: adding a present member
/// is a 400; the wording of the role and app-role cases is assumed).
fn already_there(e: &GraphError) -> bool {
    let m = e.to_string().to_lowercase();
    m.contains("already exist") || m.contains("conflicting object")
}

fn id_of(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_str).map(str::to_string)
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

#[async_trait]
impl Provider for GraphProvider {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
        let c = &self.client;
        let users = c
            .get_all(&format!("/users?$select={USER_SELECT}&$expand=manager($select=id)&$top=999"))
            .await
            .map_err(|e| self.read_error("the users", e))?;
        let users: Vec<WireUser> = users
            .iter()
            .map(WireUser::parse)
            .collect::<Result<_, _>>()
            .map_err(|m| self.invalid(format!("a user read from Graph is not valid: {m}")))?;
        let (sign_ins, registered) = if self.access == Access::Review {
            (self.read_sign_ins().await?, self.read_registered_methods(&users).await?)
        } else {
            (HashMap::new(), HashMap::new())
        };
        let groups =
            c.get_all("/groups?$select=id,displayName&$top=999").await.map_err(|e| self.read_error("the groups", e))?;
        let member_urls: Vec<String> =
            groups.iter().filter_map(id_of).map(|id| format!("/groups/{id}/members?$select=id&$top=999")).collect();
        let members = self.collections("group members", &member_urls).await?;
        let role_defs = c
            .get_all("/roleManagement/directory/roleDefinitions?$select=id,displayName,templateId")
            .await
            .map_err(|e| self.read_error("the directory role definitions", e))?;
        let role_assignments = c
            .get_all("/roleManagement/directory/roleAssignments?$top=999")
            .await
            .map_err(|e| self.read_error("the directory role assignments", e))?;
        let sps = c
            .get_all("/servicePrincipals?$select=id,appId,displayName,appRoles&$top=999")
            .await
            .map_err(|e| self.read_error("the service principals", e))?;
        let with_roles: Vec<&Value> =
            sps.iter().filter(|s| s.get("appRoles").and_then(Value::as_array).is_some_and(|r| !r.is_empty())).collect();
        let assignment_urls: Vec<String> = with_roles
            .iter()
            .filter_map(|s| id_of(s))
            .map(|id| format!("/servicePrincipals/{id}/appRoleAssignedTo?$top=999"))
            .collect();
        let app_assignments = self.collections("app role assignments", &assignment_urls).await?;
        let apps = c
            .get_all(&format!("/applications?$select={}&$expand=owners($select=id)&$top=999", wire::APPLICATION_SELECT))
            .await
            .map_err(|e| self.read_error("the applications", e))?;
        let policy = c
            .call(&Call::new(Method::GET, "/policies/authenticationMethodsPolicy", None))
            .await
            .map_err(|e| self.read_error("the authentication methods policy", e))?;

        let mut state = State::default();
        let mut live = LiveTarget::default();
        let upn_by_id: HashMap<&str, &str> = users.iter().map(|u| (u.id.as_str(), u.user_name.as_str())).collect();
        for u in &users {
            let mut attrs = u.attrs.clone();
            attrs.manager = u.manager_id.as_deref().and_then(|m| upn_by_id.get(m)).map(|n| n.to_string());
            state.users.insert(key(&u.user_name), u.id.clone());
            live.accounts.push(LiveAccount {
                id: u.id.clone(),
                user_name: u.user_name.clone(),
                fingerprint: digest(&(&u.id, &u.user_name, &attrs, u.active)),
                attrs,
                active: u.active,
                last_sign_in: sign_ins.get(&u.id).copied(),
                registered_methods: registered.get(&u.id).cloned(),
            });
        }
        for (g, members) in groups.iter().zip(members) {
            let (Some(id), Some(name)) = (id_of(g), str_of(g, "displayName")) else { continue };
            let members: Vec<String> = members.iter().filter_map(id_of).collect();
            state.groups.entry(key(&name)).or_insert(id.clone());
            live.bindings.push(LiveBinding {
                fingerprint: digest(&(&id, &name, &members)),
                id,
                binding: Binding::Group(name),
                members,
            });
        }
        let mut role_members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in &role_assignments {
            if a.get("directoryScopeId").and_then(Value::as_str) != Some("/") {
                continue;
            }
            let (Some(aid), Some(def), Some(p)) = (id_of(a), str_of(a, "roleDefinitionId"), str_of(a, "principalId"))
            else {
                continue;
            };
            role_members.entry(def.clone()).or_default().push(p.clone());
            state.role_assignments.insert((def, p), aid);
        }
        for d in &role_defs {
            let (Some(id), Some(name)) = (id_of(d), str_of(d, "displayName")) else { continue };
            let mut members = role_members.remove(&id).unwrap_or_default();
            // An assignment may name the template id instead (§2.3).
            if let Some(t) = str_of(d, "templateId").filter(|t| *t != id) {
                for p in role_members.remove(&t).unwrap_or_default() {
                    if let Some(aid) = state.role_assignments.remove(&(t.clone(), p.clone())) {
                        state.role_assignments.insert((id.clone(), p.clone()), aid);
                    }
                    members.push(p);
                }
            }
            members.sort();
            members.dedup();
            state.roles.insert(key(&name), id.clone());
            live.bindings.push(LiveBinding {
                fingerprint: digest(&(&id, &name, &members)),
                id,
                binding: Binding::DirectoryRole(name),
                members,
            });
        }
        for (sp, assignments) in with_roles.iter().zip(app_assignments) {
            let (Some(sp_id), Some(app)) = (id_of(sp), str_of(sp, "displayName")) else { continue };
            for r in sp.get("appRoles").and_then(Value::as_array).into_iter().flatten() {
                let (Some(rid), Some(role)) = (id_of(r), str_of(r, "value").or_else(|| str_of(r, "displayName")))
                else {
                    continue;
                };
                let mut members = Vec::new();
                for a in assignments.iter().filter(|a| str_of(a, "appRoleId").as_deref() == Some(rid.as_str())) {
                    let (Some(aid), Some(p)) = (id_of(a), str_of(a, "principalId")) else { continue };
                    state.app_role_assignments.insert((sp_id.clone(), rid.clone(), p.clone()), aid);
                    members.push(p);
                }
                members.sort();
                let binding = Binding::AppRole(AppRoleRef { app: app.clone(), role });
                state.app_roles.insert(key(&binding.object_name()), (sp_id.clone(), rid.clone()));
                live.bindings.push(LiveBinding {
                    fingerprint: digest(&(&sp_id, &rid, &members)),
                    id: format!("{sp_id}/{rid}"),
                    binding,
                    members,
                });
            }
        }
        let sp_by_app: HashMap<String, String> =
            sps.iter().filter_map(|s| Some((str_of(s, "appId")?, id_of(s)?))).collect();
        for a in &apps {
            let tags = a.get("tags").and_then(Value::as_array).cloned().unwrap_or_default();
            let Some(name) = tags
                .iter()
                .filter_map(Value::as_str)
                .find_map(|t| t.strip_prefix(SERVICE_ACCOUNT_TAG))
                .map(str::to_string)
            else {
                continue;
            };
            let (Some(obj), Some(app_id)) = (id_of(a), str_of(a, "appId")) else { continue };
            let owners: Vec<String> =
                a.get("owners").and_then(Value::as_array).into_iter().flatten().filter_map(id_of).collect();
            let owner = owners.iter().find_map(|o| upn_by_id.get(o.as_str())).map(|u| u.to_string());
            let sp_id = sp_by_app.get(&app_id).cloned();
            let display_name = str_of(a, "displayName");
            let description = str_of(a, "description");
            let (credentials, skipped) = wire::application_credentials(a);
            for why in skipped {
                tracing::warn!(target_name = %self.target, account = %name, "{why}; it is left out");
            }
            let passwords =
                credentials.iter().filter(|c| c.kind == CredentialType::Secret).map(|c| c.id.clone()).collect();
            let keys = credentials
                .iter()
                .filter(|c| c.kind == CredentialType::Certificate)
                .map(|c| (c.id.clone(), (c.thumbprint.clone(), c.end)))
                .collect();
            live.service_accounts.push(LiveServiceAccount {
                // The service principal holds roles; without one, the application stands in.
                id: sp_id.clone().unwrap_or_else(|| obj.clone()),
                name: name.clone(),
                fingerprint: digest(&(&obj, &name, &display_name, &description, &owner)),
                display_name,
                description,
                owner,
                credentials,
            });
            state.service_accounts.insert(name, SaEntry { app_object_id: obj, sp_id, owners, passwords, keys });
        }
        let mut methods = BTreeMap::new();
        for cfg in policy
            .body
            .as_ref()
            .and_then(|b| b.get("authenticationMethodConfigurations"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(m), Some(st)) =
                (str_of(cfg, "id").and_then(|i| wire::method_of_config(&i)), str_of(cfg, "state"))
            {
                methods.insert(m, st == "enabled");
            }
        }
        for m in wire::UNGOVERNED_METHODS {
            methods.insert(m, true);
        }
        live.auth_methods = Some(methods);
        tracing::info!(target_name = %self.target, users = live.accounts.len(), groups = groups.len(),
            requests = self.client.requests(), "read Graph target");
        self.state = Some(state);
        Ok(live)
    }

    async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        if self.access != Access::Write {
            return changes.iter().map(|_| Err(ApplyError::new("the target was opened read-only"))).collect();
        }
        let Some(state) = self.state.as_mut() else {
            return changes.iter().map(|_| Err(ApplyError::new("apply called before read"))).collect();
        };
        let before = self.client.requests();
        let mut run = Run {
            client: &self.client,
            state,
            created: &mut self.created,
            federated_domains: &self.federated_domains,
            results: vec![None; changes.len()],
            deferred: Vec::new(),
        };
        run.execute(changes).await;
        tracing::info!(target_name = %self.target, changes = changes.len(), requests = self.client.requests() - before,
            throttled = self.client.throttled(), "applied to Graph target");
        run.results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    /// Secrets: `addPassword` (§2.5), whose `secretText` is returned once and handed back
    /// for delivery. Certificates: `addKey` with a proof token signed by `proof` when it is one
    /// of the application's current certificates; otherwise the application's
    /// `keyCredentials` are set by PATCH, the existing ones kept (§2.5: an application without
    /// a valid certificate cannot use `addKey`).
    async fn issue(&mut self, request: &IssueRequest<'_>) -> Result<Issued, ApplyError> {
        let entry = self.entry(request.account)?;
        let app = entry.app_object_id.clone();
        let what = format!("issue `{}` on service account {}", request.name, request.account);
        match &request.material {
            IssueMaterial::Secret { .. } => {
                let body = json!({"passwordCredential": {
                    "displayName": request.name,
                    "startDateTime": wire::date_time(request.start),
                    "endDateTime": wire::date_time(request.end),
                }});
                let o = self
                    .app_call(&app, Call::new(Method::POST, format!("/applications/{app}/addPassword"), Some(body)))
                    .await
                    .map_err(|e| write_error(&what, e))?;
                let b = o.body.unwrap_or(Value::Null);
                let id = str_of(&b, "keyId")
                    .ok_or_else(|| ApplyError::new(format!("cannot {what}: addPassword answered without a keyId")))?;
                let secret = b.get("secretText").and_then(Value::as_str).filter(|t| !t.is_empty()).ok_or_else(|| {
                    ApplyError::new(format!(
                        "cannot {what}: addPassword answered without secretText; remove the password credential {id} by hand"
                    ))
                })?;
                let secret = Secret::new(secret.to_string());
                if let Some(e) = self.entry_mut(request.account) {
                    e.passwords.insert(id.clone());
                }
                Ok(Issued { id, secret: Some(secret) })
            }
            IssueMaterial::Certificate { der, thumbprint, proof } => {
                let new = wire::key_credential(der, request.name, request.start, request.end);
                let id = match proof.filter(|p| current_key(entry, p)) {
                    Some(p) => {
                        let token = self.proof(p, &app, &what)?;
                        let body = json!({"keyCredential": new, "passwordCredential": null, "proof": token.expose()});
                        let o = self
                            .app_call(&app, Call::new(Method::POST, format!("/applications/{app}/addKey"), Some(body)))
                            .await
                            .map_err(|e| write_error(&what, e))?;
                        o.body
                            .as_ref()
                            .and_then(|b| str_of(b, "keyId"))
                            .ok_or_else(|| ApplyError::new(format!("cannot {what}: addKey answered without a keyId")))?
                    }
                    None => {
                        let id = wire::random_guid().map_err(|e| ApplyError::new(format!("cannot {what}: {e}")))?;
                        let mut keys = self.key_credentials(&app, &what).await?;
                        let mut new = new;
                        new["keyId"] = json!(id);
                        keys.push(new);
                        self.set_key_credentials(&app, keys, &what).await?;
                        id
                    }
                };
                if let Some(e) = self.entry_mut(request.account) {
                    e.keys.insert(id.clone(), (Some(thumbprint.to_string()), request.end));
                }
                Ok(Issued { id, secret: None })
            }
        }
    }

    /// `removePassword`, or `removeKey` with a proof token signed by `proof` (a current
    /// certificate of the application), or else a PATCH of `keyCredentials` without the key.
    /// A credential the read did not see, or that Graph no longer has, counts as removed.
    async fn remove_credential(
        &mut self,
        account: &str,
        credential_id: &str,
        proof: Option<&SigningCertificate>,
    ) -> Result<(), ApplyError> {
        let entry = self.entry(account)?;
        let app = entry.app_object_id.clone();
        let what = format!("remove credential {credential_id} of service account {account}");
        if entry.passwords.contains(credential_id) {
            let body = json!({"keyId": credential_id});
            match self
                .app_call(&app, Call::new(Method::POST, format!("/applications/{app}/removePassword"), Some(body)))
                .await
            {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(write_error(&what, e)),
            }
            if let Some(e) = self.entry_mut(account) {
                e.passwords.remove(credential_id);
            }
            return Ok(());
        }
        if !entry.keys.contains_key(credential_id) {
            tracing::debug!(target_name = %self.target, account, credential_id, "credential already gone");
            return Ok(());
        }
        match proof.filter(|p| current_key(entry, p)) {
            Some(p) => {
                let token = self.proof(p, &app, &what)?;
                let body = json!({"keyId": credential_id, "proof": token.expose()});
                match self
                    .app_call(&app, Call::new(Method::POST, format!("/applications/{app}/removeKey"), Some(body)))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(write_error(&what, e)),
                }
            }
            None => {
                let keys = self.key_credentials(&app, &what).await?;
                let before = keys.len();
                let keys: Vec<Value> = keys
                    .into_iter()
                    .filter(|k| k.get("keyId").and_then(Value::as_str) != Some(credential_id))
                    .collect();
                if keys.len() != before {
                    self.set_key_credentials(&app, keys, &what).await?;
                }
            }
        }
        if let Some(e) = self.entry_mut(account) {
            e.keys.remove(credential_id);
        }
        Ok(())
    }

    /// Looks the drift changes up in `/auditLogs/directoryAudits` (§2.8): the newest entry of
    /// the last 30 days whose target is the changed object (the account for memberships and
    /// account changes) and whose activity concerns the same kind of thing.
    async fn attribute(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        let none = vec![None; changes.len()];
        let Some(state) = &self.state else { return none };
        let wanted: Vec<Option<(String, &'static str)>> =
            changes.iter().map(|c| audit_key(state, &c.operation)).collect();
        if wanted.iter().all(Option::is_none) {
            return none;
        }
        let since = (chrono::Utc::now() - chrono::Duration::days(AUDIT_LOOKBACK_DAYS))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let url = format!("/auditLogs/directoryAudits?$filter=activityDateTime ge {since}&$top=999");
        let mut entries = match self.client.get_pages(&url, AUDIT_MAX_PAGES).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target_name = %self.target, error = %e, "cannot read the directory audit log; drift is shown without who made it");
                return none;
            }
        };
        entries.sort_by_key(|e| std::cmp::Reverse(str_of(e, "activityDateTime")));
        wanted
            .iter()
            .map(|w| {
                let (id, word) = w.as_ref()?;
                let e = entries.iter().find(|e| {
                    let activity = str_of(e, "activityDisplayName").unwrap_or_default().to_lowercase();
                    activity.contains(word)
                        && e.get("targetResources")
                            .and_then(Value::as_array)
                            .is_some_and(|t| t.iter().any(|r| str_of(r, "id").as_deref() == Some(id.as_str())))
                })?;
                let by = e.get("initiatedBy")?;
                let actor = by
                    .get("user")
                    .and_then(|u| str_of(u, "userPrincipalName").or_else(|| str_of(u, "displayName")))
                    .or_else(|| by.get("app").and_then(|a| str_of(a, "displayName").or_else(|| str_of(a, "appId"))))?;
                let time = chrono::DateTime::parse_from_rfc3339(&str_of(e, "activityDateTime")?).ok()?;
                Some(Attribution {
                    actor,
                    time: time.with_timezone(&chrono::Utc),
                    activity: str_of(e, "activityDisplayName")?,
                })
            })
            .collect()
    }
}

/// The id of the object whose audit entries tell who made a change, and a word its activity
/// names (`Add member to group`, `Add member to role`, `Update user`, …).
fn audit_key(state: &State, op: &Operation) -> Option<(String, &'static str)> {
    let principal = |p: &Principal| match p {
        Principal::User(u) => state.users.get(&key(u)).cloned(),
        Principal::ServiceAccount(s) => state.service_accounts.get(s).and_then(|e| e.sp_id.clone()),
    };
    match op {
        Operation::Assign { principal: p, binding } | Operation::Revoke { principal: p, binding } => {
            let word = match binding {
                Binding::Group(_) => "group",
                Binding::DirectoryRole(_) => "role",
                Binding::AppRole(_) => "app role",
                Binding::SecurityRole(_) | Binding::FieldSecurityProfile(_) => return None,
            };
            Some((principal(p)?, word))
        }
        Operation::UpdateUser { user_name, .. }
        | Operation::SetUserActive { user_name, .. }
        | Operation::DeleteUser { user_name } => Some((state.users.get(&key(user_name))?.clone(), "user")),
        Operation::UpdateServiceAccount { name, .. } => {
            Some((state.service_accounts.get(name)?.app_object_id.clone(), "application"))
        }
        Operation::SetAuthMethod { method, .. } => Some((wire::method_config(*method)?.0.to_string(), "polic")),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Apply.

/// What to do with the answer to a call.
#[derive(Debug, Clone)]
enum Then {
    Nothing,
    /// A user was created: remember its id; set its manager next.
    UserCreated {
        user_name: String,
        manager: Option<String>,
    },
    GroupCreated {
        name: String,
    },
    /// An application was created: make its service principal and add its owner next.
    AppCreated {
        name: String,
        owner: Option<String>,
    },
    SpCreated {
        name: String,
    },
    /// A chunk of `members@odata.bind`: on a 400, add its members one by one.
    BoundChunk {
        group: String,
        members: Vec<(usize, String)>,
    },
    RoleAssigned {
        def: String,
        principal: String,
    },
    AppRoleAssigned {
        sp: String,
        role: String,
        principal: String,
    },
}

struct Pending {
    call: Call,
    changes: Vec<usize>,
    then: Then,
    /// Names an object this run created (a 404 is replication delay).
    fresh: bool,
    /// A 404 means the goal is already met (a removal of something gone).
    gone_ok: bool,
    /// A 400 means the goal is already met (an addition that exists).
    exists_ok: bool,
    what: String,
}

struct Run<'a> {
    client: &'a GraphClient,
    state: &'a mut State,
    created: &'a mut HashSet<String>,
    federated_domains: &'a [String],
    results: Vec<Option<Result<(), ApplyError>>>,
    /// References to users that may be created in the same round, resolved after it.
    deferred: Vec<Deferred>,
}

#[derive(Debug, Clone, Copy)]
enum Ref {
    Manager,
    Owner,
}

/// A manager or owner (by userName) to set on a new user or application.
#[derive(Debug)]
struct Deferred {
    kind: Ref,
    subject: String,
    name: String,
    changes: Vec<usize>,
}

impl Run<'_> {
    fn fail(&mut self, i: usize, e: ApplyError) {
        if !matches!(self.results[i], Some(Err(_))) {
            self.results[i] = Some(Err(e));
        }
    }

    fn user_id(&self, user_name: &str) -> Option<String> {
        self.state.users.get(&key(user_name)).cloned()
    }

    fn principal_id(&self, p: &Principal) -> Result<String, ApplyError> {
        match p {
            Principal::User(u) => self
                .user_id(u)
                .ok_or_else(|| ApplyError::conflict(format!("user {u} does not exist on the target (any more)"))),
            Principal::ServiceAccount(s) => {
                self.state.service_accounts.get(s).and_then(|e| e.sp_id.clone()).ok_or_else(|| {
                    ApplyError::conflict(format!("service account {s} has no service principal on the target"))
                })
            }
        }
    }

    fn pending(&self, call: Call, changes: Vec<usize>, then: Then, what: String, ids: &[&str]) -> Pending {
        let fresh = ids.iter().any(|i| self.created.contains(*i));
        Pending { call, changes, then, fresh, gone_ok: false, exists_ok: false, what }
    }

    /// Turns the changes into calls, sends them in batches, then the follow-ups their answers
    /// call for.
    async fn execute(&mut self, changes: &[&Change]) {
        let mut calls: Vec<Pending> = Vec::new();
        // Additions to each group, bound twenty at a time.
        let mut binds: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
        for (i, c) in changes.iter().enumerate() {
            match self.plan_call(i, &c.operation, &mut binds) {
                Ok(mut ps) => calls.append(&mut ps),
                Err(e) => self.fail(i, e),
            }
        }
        for (group, members) in binds {
            for chunk in members.chunks(BIND_LIMIT) {
                let refs: Vec<String> = chunk.iter().map(|(_, id)| self.client.object_ref(id)).collect();
                let mut ids: Vec<&str> = chunk.iter().map(|(_, id)| id.as_str()).collect();
                ids.push(&group);
                let p = self.pending(
                    Call::new(Method::PATCH, format!("/groups/{group}"), Some(json!({"members@odata.bind": refs}))),
                    chunk.iter().map(|(i, _)| *i).collect(),
                    Then::BoundChunk { group: group.clone(), members: chunk.to_vec() },
                    "add members to the group".into(),
                    &ids,
                );
                calls.push(p);
            }
        }
        let mut round = 0;
        while !calls.is_empty() && round < 4 {
            calls = self.send(calls).await;
            round += 1;
        }
    }

    /// Sends calls and settles their changes; returns the follow-up calls.
    async fn send(&mut self, calls: Vec<Pending>) -> Vec<Pending> {
        let plain: Vec<Call> = calls.iter().map(|p| p.call.clone()).collect();
        let outcomes = self.client.batch(&plain, |i| calls[i].fresh).await;
        let mut next = Vec::new();
        for (p, outcome) in calls.into_iter().zip(outcomes) {
            match outcome {
                Ok(o) => {
                    let body = o.body.unwrap_or(Value::Null);
                    self.settle(&p, Some(&body), &mut next);
                }
                Err(e) if p.gone_ok && e.status() == Some(404) => self.settle(&p, None, &mut next),
                Err(e) if p.exists_ok && e.status() == Some(400) && already_there(&e) => {
                    self.settle(&p, None, &mut next)
                }
                Err(e) if e.status() == Some(400) && matches!(p.then, Then::BoundChunk { .. }) => {
                    // All or nothing: one member already there fails the chunk; add one by one.
                    if let Then::BoundChunk { group, members } = &p.then {
                        for (i, id) in members {
                            let mut q = self.pending(
                                Call::new(
                                    Method::POST,
                                    format!("/groups/{group}/members/$ref"),
                                    Some(json!({"@odata.id": self.client.object_ref(id)})),
                                ),
                                vec![*i],
                                Then::Nothing,
                                "add a member to the group".into(),
                                &[group, id],
                            );
                            q.exists_ok = true;
                            next.push(q);
                        }
                    }
                }
                Err(e) => {
                    for &i in &p.changes {
                        self.fail(i, ApplyError::new(format!("cannot {}: {e}", p.what)));
                    }
                }
            }
        }
        for d in std::mem::take(&mut self.deferred) {
            let role = match d.kind {
                Ref::Manager => "manager",
                Ref::Owner => "owner",
            };
            match self.user_id(&d.name) {
                Some(uid) => next.push(match d.kind {
                    Ref::Manager => self.manager_call(&d.subject, &uid, d.changes),
                    Ref::Owner => self.owner_call(&d.subject, &uid, d.changes),
                }),
                None => {
                    for &i in &d.changes {
                        self.fail(i, ApplyError::new(format!("the {role} {} does not exist on the target", d.name)));
                    }
                }
            }
        }
        next
    }

    fn settle(&mut self, p: &Pending, body: Option<&Value>, next: &mut Vec<Pending>) {
        let new_id = body.and_then(id_of);
        match &p.then {
            Then::Nothing | Then::BoundChunk { .. } => {}
            Then::UserCreated { user_name, manager } => {
                let Some(id) = new_id else { return self.missing_id(p) };
                self.state.users.insert(key(user_name), id.clone());
                self.created.insert(id.clone());
                if let Some(m) = manager {
                    // The manager may be created by this same round: resolved after it.
                    self.deferred.push(Deferred {
                        kind: Ref::Manager,
                        subject: id,
                        name: m.clone(),
                        changes: p.changes.clone(),
                    });
                }
            }
            Then::GroupCreated { name } => {
                let Some(id) = new_id else { return self.missing_id(p) };
                self.state.groups.insert(key(name), id.clone());
                self.created.insert(id);
            }
            Then::AppCreated { name, owner } => {
                let Some(obj) = new_id else { return self.missing_id(p) };
                let app_id = body.and_then(|b| str_of(b, "appId")).unwrap_or_default();
                self.created.insert(obj.clone());
                self.state
                    .service_accounts
                    .insert(name.clone(), SaEntry { app_object_id: obj.clone(), ..SaEntry::default() });
                next.push(self.pending(
                    Call::new(Method::POST, "/servicePrincipals", Some(json!({"appId": app_id}))),
                    p.changes.clone(),
                    Then::SpCreated { name: name.clone() },
                    "create the service principal".into(),
                    &[&obj],
                ));
                if let Some(o) = owner {
                    self.deferred.push(Deferred {
                        kind: Ref::Owner,
                        subject: obj.clone(),
                        name: o.clone(),
                        changes: p.changes.clone(),
                    });
                }
            }
            Then::SpCreated { name } => {
                let Some(id) = new_id else { return self.missing_id(p) };
                self.created.insert(id.clone());
                if let Some(e) = self.state.service_accounts.get_mut(name) {
                    e.sp_id = Some(id);
                }
            }
            Then::RoleAssigned { def, principal } => {
                if let Some(id) = new_id {
                    self.state.role_assignments.insert((def.clone(), principal.clone()), id);
                }
            }
            Then::AppRoleAssigned { sp, role, principal } => {
                if let Some(id) = new_id {
                    self.state.app_role_assignments.insert((sp.clone(), role.clone(), principal.clone()), id);
                }
            }
        }
        for &i in &p.changes {
            if self.results[i].is_none() {
                self.results[i] = Some(Ok(()));
            }
        }
    }

    fn missing_id(&mut self, p: &Pending) {
        for &i in &p.changes {
            self.fail(i, ApplyError::new(format!("cannot {}: Graph answered without the new object's id", p.what)));
        }
    }

    fn manager_call(&self, user: &str, manager: &str, changes: Vec<usize>) -> Pending {
        self.pending(
            Call::new(
                Method::PUT,
                format!("/users/{user}/manager/$ref"),
                Some(json!({"@odata.id": self.client.object_ref(manager)})),
            ),
            changes,
            Then::Nothing,
            "set the manager".into(),
            &[user, manager],
        )
    }

    fn owner_call(&self, app: &str, owner: &str, changes: Vec<usize>) -> Pending {
        let mut p = self.pending(
            Call::new(
                Method::POST,
                format!("/applications/{app}/owners/$ref"),
                Some(json!({"@odata.id": self.client.object_ref(owner)})),
            ),
            changes,
            Then::Nothing,
            "add the owner".into(),
            &[app, owner],
        );
        p.exists_ok = true;
        p
    }

    /// The calls for one change; memberships to add go to `binds` instead.
    fn plan_call(
        &mut self,
        i: usize,
        op: &Operation,
        binds: &mut BTreeMap<String, Vec<(usize, String)>>,
    ) -> Result<Vec<Pending>, ApplyError> {
        let gone = |name: &str| ApplyError::conflict(format!("{name} does not exist on the target (any more)"));
        Ok(match op {
            Operation::CreateUser { user_name, attrs, active } => {
                if let Some(id) = self.user_id(user_name) {
                    // Created since the read (a re-run): adopt it and update instead.
                    let mut out = Vec::new();
                    let mut patch = wire::user_patch(attrs);
                    patch.insert("accountEnabled".into(), json!(active));
                    out.push(self.pending(
                        Call::new(Method::PATCH, format!("/users/{id}"), Some(Value::Object(patch))),
                        vec![i],
                        Then::Nothing,
                        format!("update user {user_name}"),
                        &[&id],
                    ));
                    return Ok(out);
                }
                let mut body = wire::user_patch(attrs);
                body.insert("userPrincipalName".into(), json!(user_name));
                body.entry("displayName").or_insert(json!(user_name));
                body.insert("mailNickname".into(), json!(wire::mail_nickname(user_name)));
                body.insert("accountEnabled".into(), json!(active));
                if wire::is_federated(user_name, self.federated_domains) {
                    // Signs in at the federated identity provider: no password; the immutable
                    // id links the account to that provider's (§2.1).
                    let immutable = attrs.employee_id.as_deref().unwrap_or(user_name);
                    body.insert("onPremisesImmutableId".into(), json!(immutable));
                } else {
                    let password = wire::random_password().map_err(ApplyError::new)?;
                    // The password goes only into this request body.
                    body.insert(
                        "passwordProfile".into(),
                        json!({"password": password.expose(), "forceChangePasswordNextSignIn": true}),
                    );
                }
                vec![self.pending(
                    Call::new(Method::POST, "/users", Some(Value::Object(body))),
                    vec![i],
                    Then::UserCreated { user_name: user_name.clone(), manager: attrs.manager.clone() },
                    format!("create user {user_name}"),
                    &[],
                )]
            }
            Operation::UpdateUser { user_name, set } => {
                let id = self.user_id(user_name).ok_or_else(|| gone(&format!("user {user_name}")))?;
                let mut out = Vec::new();
                let patch = wire::user_patch(set);
                if !patch.is_empty() {
                    out.push(self.pending(
                        Call::new(Method::PATCH, format!("/users/{id}"), Some(Value::Object(patch))),
                        vec![i],
                        Then::Nothing,
                        format!("update user {user_name}"),
                        &[&id],
                    ));
                }
                if let Some(m) = &set.manager {
                    let mid =
                        self.user_id(m).ok_or_else(|| ApplyError::new(format!("the manager {m} does not exist")))?;
                    out.push(self.manager_call(&id, &mid, vec![i]));
                }
                out
            }
            Operation::SetUserActive { user_name, active } => {
                let id = self.user_id(user_name).ok_or_else(|| gone(&format!("user {user_name}")))?;
                vec![self.pending(
                    Call::new(Method::PATCH, format!("/users/{id}"), Some(json!({"accountEnabled": active}))),
                    vec![i],
                    Then::Nothing,
                    format!("{} user {user_name}", if *active { "enable" } else { "disable" }),
                    &[&id],
                )]
            }
            Operation::DeleteUser { user_name } => {
                let Some(id) = self.user_id(user_name) else { return Ok(vec![]) };
                let mut p = self.pending(
                    Call::new(Method::DELETE, format!("/users/{id}"), None),
                    vec![i],
                    Then::Nothing,
                    format!("delete user {user_name}"),
                    &[&id],
                );
                p.gone_ok = true;
                vec![p]
            }
            Operation::UpdateBinding { binding } => {
                return Err(ApplyError::new(format!("{} has no settings keyward keeps on Graph", binding.label())));
            }
            Operation::CreateBinding { binding } => match binding {
                Binding::Group(name) => {
                    if self.state.groups.contains_key(&key(name)) {
                        return Ok(vec![]);
                    }
                    vec![self.pending(
                        Call::new(
                            Method::POST,
                            "/groups",
                            Some(json!({"displayName": name, "mailNickname": wire::mail_nickname(name),
                                "mailEnabled": false, "securityEnabled": true})),
                        ),
                        vec![i],
                        Then::GroupCreated { name: name.clone() },
                        format!("create group {name}"),
                        &[],
                    )]
                }
                other => {
                    return Err(ApplyError::new(format!(
                        "{} is predefined on Graph and cannot be created",
                        other.label()
                    )));
                }
            },
            Operation::Assign { principal, binding } => {
                let pid = self.principal_id(principal)?;
                match binding {
                    Binding::Group(name) => {
                        let gid =
                            self.state.groups.get(&key(name)).cloned().ok_or_else(|| gone(&format!("group {name}")))?;
                        binds.entry(gid).or_default().push((i, pid));
                        vec![]
                    }
                    Binding::DirectoryRole(name) => {
                        let def = self
                            .state
                            .roles
                            .get(&key(name))
                            .cloned()
                            .ok_or_else(|| gone(&format!("directory role {name}")))?;
                        let mut p = self.pending(
                            Call::new(
                                Method::POST,
                                "/roleManagement/directory/roleAssignments",
                                Some(json!({"@odata.type": "#microsoft.graph.unifiedRoleAssignment",
                                    "roleDefinitionId": def, "principalId": pid, "directoryScopeId": "/"})),
                            ),
                            vec![i],
                            Then::RoleAssigned { def: def.clone(), principal: pid.clone() },
                            format!("assign directory role {name}"),
                            &[&pid],
                        );
                        p.exists_ok = true;
                        vec![p]
                    }
                    Binding::AppRole(r) => {
                        let (sp, role) = self
                            .state
                            .app_roles
                            .get(&key(&binding.object_name()))
                            .cloned()
                            .ok_or_else(|| gone(&format!("app role {}/{}", r.app, r.role)))?;
                        let mut p = self.pending(
                            Call::new(
                                Method::POST,
                                format!("/servicePrincipals/{sp}/appRoleAssignedTo"),
                                Some(json!({"principalId": pid, "resourceId": sp, "appRoleId": role})),
                            ),
                            vec![i],
                            Then::AppRoleAssigned { sp: sp.clone(), role: role.clone(), principal: pid.clone() },
                            format!("assign app role {}/{}", r.app, r.role),
                            &[&pid],
                        );
                        p.exists_ok = true;
                        vec![p]
                    }
                    Binding::SecurityRole(_) | Binding::FieldSecurityProfile(_) => {
                        return Err(ApplyError::new(format!("{} is not a Graph binding", binding.label())));
                    }
                }
            }
            Operation::Revoke { principal, binding } => {
                let pid = match self.principal_id(principal) {
                    Ok(p) => p,
                    // The holder is gone, and the assignment with it.
                    Err(_) => return Ok(vec![]),
                };
                let (url, what) = match binding {
                    Binding::Group(name) => {
                        let Some(gid) = self.state.groups.get(&key(name)).cloned() else { return Ok(vec![]) };
                        (format!("/groups/{gid}/members/{pid}/$ref"), format!("remove a member from group {name}"))
                    }
                    Binding::DirectoryRole(name) => {
                        let Some(def) = self.state.roles.get(&key(name)).cloned() else { return Ok(vec![]) };
                        let Some(aid) = self.state.role_assignments.get(&(def, pid.clone())).cloned() else {
                            return Ok(vec![]);
                        };
                        (
                            format!("/roleManagement/directory/roleAssignments/{aid}"),
                            format!("revoke directory role {name}"),
                        )
                    }
                    Binding::AppRole(r) => {
                        let Some((sp, role)) = self.state.app_roles.get(&key(&binding.object_name())).cloned() else {
                            return Ok(vec![]);
                        };
                        let Some(aid) = self.state.app_role_assignments.get(&(sp.clone(), role, pid.clone())).cloned()
                        else {
                            return Ok(vec![]);
                        };
                        (
                            format!("/servicePrincipals/{sp}/appRoleAssignedTo/{aid}"),
                            format!("revoke app role {}/{}", r.app, r.role),
                        )
                    }
                    Binding::SecurityRole(_) | Binding::FieldSecurityProfile(_) => {
                        return Err(ApplyError::new(format!("{} is not a Graph binding", binding.label())));
                    }
                };
                let mut p = self.pending(Call::new(Method::DELETE, url, None), vec![i], Then::Nothing, what, &[]);
                p.gone_ok = true;
                vec![p]
            }
            Operation::CreateServiceAccount { name, display_name, description, owner } => {
                if self.state.service_accounts.contains_key(name) {
                    return Ok(vec![]);
                }
                let mut body = json!({"displayName": display_name.clone().unwrap_or_else(|| name.clone()),
                    "tags": [format!("{SERVICE_ACCOUNT_TAG}{name}")]});
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                vec![self.pending(
                    Call::new(Method::POST, "/applications", Some(body)),
                    vec![i],
                    Then::AppCreated { name: name.clone(), owner: owner.clone() },
                    format!("create the application of service account {name}"),
                    &[],
                )]
            }
            Operation::UpdateServiceAccount { name, display_name, description, owner } => {
                let e = self
                    .state
                    .service_accounts
                    .get(name)
                    .cloned()
                    .ok_or_else(|| gone(&format!("service account {name}")))?;
                let mut out = Vec::new();
                let mut patch = serde_json::Map::new();
                if let Some(d) = display_name {
                    patch.insert("displayName".into(), json!(d));
                }
                if let Some(d) = description {
                    patch.insert("description".into(), json!(d));
                }
                if !patch.is_empty() {
                    out.push(self.pending(
                        Call::new(
                            Method::PATCH,
                            format!("/applications/{}", e.app_object_id),
                            Some(Value::Object(patch)),
                        ),
                        vec![i],
                        Then::Nothing,
                        format!("update service account {name}"),
                        &[&e.app_object_id],
                    ));
                }
                if let Some(o) = owner {
                    let uid =
                        self.user_id(o).ok_or_else(|| ApplyError::new(format!("the owner {o} does not exist")))?;
                    out.push(self.owner_call(&e.app_object_id, &uid, vec![i]));
                    for old in e.owners.iter().filter(|x| **x != uid && self.state.users.values().any(|u| u == *x)) {
                        let mut p = self.pending(
                            Call::new(
                                Method::DELETE,
                                format!("/applications/{}/owners/{old}/$ref", e.app_object_id),
                                None,
                            ),
                            vec![i],
                            Then::Nothing,
                            "remove the previous owner".into(),
                            &[],
                        );
                        p.gone_ok = true;
                        out.push(p);
                    }
                }
                out
            }
            Operation::AddCredential { .. } | Operation::RemoveCredential { .. } => {
                return Err(ApplyError::new("credential changes go through issue and remove_credential, not apply"));
            }
            Operation::SetAuthMethod { method, enabled } => {
                let Some((id, ty)) = wire::method_config(*method) else {
                    return Err(ApplyError::new(format!(
                        "{} is not configured through the authentication methods policy",
                        method.as_str()
                    )));
                };
                vec![self.pending(
                    Call::new(
                        Method::PATCH,
                        format!("/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/{id}"),
                        Some(json!({"@odata.type": format!("#microsoft.graph.{ty}"),
                            "state": if *enabled { "enabled" } else { "disabled" }})),
                    ),
                    vec![i],
                    Then::Nothing,
                    format!("{} sign-in method {}", if *enabled { "enable" } else { "disable" }, method.as_str()),
                    &[],
                )]
            }
        })
    }
}
