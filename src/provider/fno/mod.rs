//! The `fno` provider: Dynamics 365 Finance & Operations through its OData data entities
//! (reference sheet §4).
//!
//! Guarantees:
//! - reading costs one paged request per entity (`SystemUsers`, `SecurityRoles`,
//!   `SecurityUserRoles`, `SysAADClients`, `SegregationOfDutiesConflicts`), never one per user;
//! - an Entra application mapped to a user (`SysAADClients`) is a service account named by its
//!   client id, and its user is no person (see [`clients`]);
//! - users are keyed by `Alias` (the Entra user principal name), compared without regard to
//!   case; `UserID` (at most 20 characters) is derived from it on creation; a user is disabled
//!   with `Enabled: false` and never deleted;
//! - a binding `{securityRole: NAME}` is the role whose `SecurityRoleName` is NAME (two roles of
//!   the same name make the plan fail as ambiguous);
//! - which collection accepts role assignments is uncertain (`SecurityUserRoleAssociations` or
//!   `SecurityUserRoles`): the first assignment written is sent alone to the first; if that
//!   collection refuses the write (405, 400 or 404), it goes to the other, and the collection
//!   that worked is used for the rest of the run;
//! - writes after that go in `$batch` requests;
//! - what roles contain (duties, privileges) is read only when asked, in two more paged
//!   requests (see `duties`);
//! - the environment's own segregation-of-duties conflicts are reported as findings
//!   (`sod.target-conflict`), resolved ones (overridden or excluded) as such.
//!
//! Assumed: an assignment that exists already answers 409, and deleting a missing one 404
//! (both count as done).

mod clients;
mod duties;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::odata::{self, BatchOp, ODataClient, ODataError};
use super::{Access, ApplyError, Capabilities, Provider, ProviderError, capabilities};
use crate::model::config::Connection;
use crate::model::{
    Binding, LiveAccount, LiveBinding, LiveTarget, ProviderKind, ReportedFinding, ReportedKind, Target, UserAttrs,
    digest,
};
use crate::plan::{Change, Operation, Principal};
use crate::remote::RetryPolicy;
use crate::remote::entra::TokenSource;
use crate::remote::http;

const PAGE_SIZE: usize = 10_000;
const BATCH_LIMIT: usize = 1000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The collections role assignments may be written to, in the order tried.
pub const WRITE_COLLECTIONS: [&str; 2] = ["SecurityUserRoleAssociations", "SecurityUserRoles"];

fn key(s: &str) -> String {
    s.to_lowercase()
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

#[derive(Debug, Default)]
struct State {
    /// Lower-cased alias → UserID.
    users: HashMap<String, String>,
    user_ids: HashSet<String>,
    /// Lower-cased role name → identifier.
    roles: HashMap<String, String>,
    /// Lower-cased client id → UserID of the user the application acts as.
    app_users: HashMap<String, String>,
}

pub struct FnoProvider {
    target: String,
    caps: Capabilities,
    access: Access,
    client: ODataClient,
    state: Option<State>,
    /// The assignment collection that accepted a write in this run.
    write_collection: Option<&'static str>,
}

impl FnoProvider {
    pub fn open(target: &Target, root: &Path, access: Access) -> Result<Self, ProviderError> {
        Self::open_with(target, root, access, RetryPolicy::default())
    }

    /// [`Self::open`], retrying requests as `retry` says.
    pub fn open_with(target: &Target, root: &Path, access: Access, retry: RetryPolicy) -> Result<Self, ProviderError> {
        let name = target.name.to_string();
        let fail = |message: String| ProviderError::Remote { target: name.clone(), message };
        let Connection::Fno { url, tenant, client_id, credential, authority } = &target.connection else {
            return Err(fail("the target is not a Finance & Operations target".into()));
        };
        let env = url.trim_end_matches('/');
        let base: Url = format!("{env}/data/").parse().map_err(|e| fail(format!("`{url}` is not a URL: {e}")))?;
        http::check_url(&base).map_err(|e| fail(e.to_string()))?;
        let ca = target.ca_file.as_ref().map(|c| root.join(c));
        let http = http::client(ca.as_deref(), REQUEST_TIMEOUT).map_err(|e| fail(e.to_string()))?;
        // The token resource is the environment URL without a trailing slash.
        let scope = format!("{env}/.default");
        let tokens =
            TokenSource::new(http.clone(), authority.as_deref(), tenant, client_id, credential, &scope, root, &name)?
                .with_retry(retry);
        let client =
            ODataClient::new(base, http, tokens, PAGE_SIZE, BATCH_LIMIT, vec![]).map_err(&fail)?.with_retry(retry);
        Ok(FnoProvider {
            target: name,
            caps: capabilities(ProviderKind::Fno),
            access,
            client,
            state: None,
            write_collection: None,
        })
    }

    async fn list(&self, entity: &str, select: &str) -> Result<Vec<Value>, ProviderError> {
        let query = if select.is_empty() { String::new() } else { format!("$select={select}") };
        self.client.get_all(entity, &query).await.map_err(|e| {
            let hint = match e.status() {
                Some(401) => "; check the target's tenant, clientId and credential",
                Some(403) => {
                    "; map keyward's client id to a F&O user with the right roles under System administration > Setup > Azure Active Directory applications"
                }
                _ => "",
            };
            ProviderError::Remote { target: self.target.clone(), message: format!("cannot read {entity}: {e}{hint}") }
        })
    }
}

#[async_trait]
impl Provider for FnoProvider {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
        let users = self.list("SystemUsers", "UserID,UserName,Alias,Email,Enabled").await?;
        let roles = self.list("SecurityRoles", "SecurityRoleIdentifier,SecurityRoleName,UserLicenseType").await?;
        let mappings = self.read_clients().await?;
        let mapped: HashSet<String> = mappings.iter().map(|(_, _, u)| key(u)).collect();
        let mut enabled: HashMap<String, bool> = HashMap::new();
        let assignments = self.list("SecurityUserRoles", "UserId,SecurityRoleIdentifier,AssignmentStatus").await?;
        let conflicts = self.list("SegregationOfDutiesConflicts", "").await?;
        let mut state = State::default();
        let mut live = LiveTarget::default();
        let mut alias_of: HashMap<String, String> = HashMap::new();
        for u in &users {
            let Some(id) = text(u, "UserID") else { continue };
            state.user_ids.insert(key(&id));
            enabled.insert(key(&id), u.get("Enabled").and_then(Value::as_bool).unwrap_or(true));
            // The users applications act as are service accounts (see `clients`).
            if mapped.contains(&key(&id)) {
                continue;
            }
            // Accounts without an alias (built-in ones) are not people keyward knows.
            let Some(alias) = text(u, "Alias") else { continue };
            state.users.insert(key(&alias), id.clone());
            alias_of.insert(key(&id), alias.clone());
            let attrs =
                UserAttrs { display_name: text(u, "UserName"), email: text(u, "Email"), ..UserAttrs::default() };
            let active = u.get("Enabled").and_then(Value::as_bool).unwrap_or(true);
            let fingerprint = match text(u, "@odata.etag") {
                Some(t) => format!("etag:{t}"),
                None => digest(&(&id, &alias, &attrs, active)),
            };
            live.accounts.push(LiveAccount {
                id,
                user_name: alias,
                attrs,
                active,
                last_sign_in: None,
                registered_methods: None,
                fingerprint,
            });
        }
        let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for a in &assignments {
            if text(a, "AssignmentStatus").as_deref() == Some("Disabled") {
                continue;
            }
            if let (Some(u), Some(r)) = (text(a, "UserId"), text(a, "SecurityRoleIdentifier")) {
                members.entry(key(&r)).or_default().insert(u);
            }
        }
        for r in &roles {
            let (Some(id), Some(name)) = (text(r, "SecurityRoleIdentifier"), text(r, "SecurityRoleName")) else {
                continue;
            };
            state.roles.entry(key(&name)).or_insert(id.clone());
            let m: Vec<String> = members.remove(&key(&id)).unwrap_or_default().into_iter().collect();
            live.bindings.push(LiveBinding {
                fingerprint: digest(&(&id, &m)),
                id,
                binding: Binding::SecurityRole(name),
                members: m,
            });
        }
        live.service_accounts = clients::service_accounts(&mut state, &mappings, &enabled);
        live.licensing = Some(clients::licensing(&roles));
        for c in &conflicts {
            let user = text(c, "User").unwrap_or_default();
            let resolution = text(c, "Resolution").unwrap_or_else(|| "None".into());
            let side = |role: &str, duty: &str| {
                format!("`{}` (duty {})", text(c, role).unwrap_or_default(), text(c, duty).unwrap_or_default())
            };
            let mut message = format!(
                "Finance & Operations reports a segregation-of-duties conflict under its rule `{}`: user {user} holds {} and {}",
                text(c, "SegregationOfDutiesRuleName").unwrap_or_default(),
                side("ExistingRoleName", "ExistingDutyName"),
                side("NewRoleName", "NewDutyName"),
            );
            if resolution != "None" {
                message.push_str(&format!("; resolved there as {resolution}"));
                if let Some(why) = text(c, "ReasonForOverride") {
                    message.push_str(&format!(" ({why})"));
                }
            }
            live.reported.push(ReportedFinding {
                kind: ReportedKind::SodConflict,
                resolved: resolution != "None",
                user_name: alias_of.get(&key(&user)).cloned(),
                message,
            });
        }
        tracing::info!(target_name = %self.target, users = live.accounts.len(), roles = live.bindings.len(), conflicts = live.reported.len(), requests = self.client.requests(), "read Finance & Operations environment");
        self.state = Some(state);
        Ok(live)
    }

    async fn role_contents(
        &mut self,
        roles: &[String],
    ) -> Result<BTreeMap<String, crate::model::RoleContents>, ProviderError> {
        self.read_role_contents(roles).await
    }

    async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        if self.access != Access::Write {
            return changes.iter().map(|_| Err(ApplyError::new("the target was opened read-only"))).collect();
        }
        let Some(mut state) = self.state.take() else {
            return changes.iter().map(|_| Err(ApplyError::new("apply called before read"))).collect();
        };
        let results = self.run(&mut state, changes).await;
        self.state = Some(state);
        results
    }
}

/// A role assignment to write.
struct Membership {
    change: usize,
    adding: bool,
    user: String,
    role: String,
}

impl FnoProvider {
    fn user_op(&self, state: &mut State, op: &Operation) -> Result<BatchOp, ApplyError> {
        let url = |id: &str| self.client.url(&format!("SystemUsers(UserID={})", odata::key_literal(id)), None);
        match op {
            Operation::CreateUser { user_name, attrs, active } => {
                if let Some(id) = state.users.get(&key(user_name)) {
                    // Created since the plan: adopt it.
                    let mut body = user_body(attrs);
                    body.insert("Enabled".into(), json!(active));
                    return Ok(BatchOp {
                        method: Method::PATCH,
                        url: url(id),
                        body: Some(Value::Object(body)),
                        if_match: None,
                    });
                }
                let id = new_user_id(user_name, &state.user_ids);
                state.user_ids.insert(key(&id));
                state.users.insert(key(user_name), id.clone());
                let mut body = user_body(attrs);
                body.insert("UserID".into(), json!(id));
                body.insert("Alias".into(), json!(user_name));
                body.entry("UserName").or_insert(json!(user_name));
                body.entry("Email").or_insert(json!(user_name));
                body.insert("NetworkDomain".into(), json!("https://sts.windows.net/"));
                body.insert("Enabled".into(), json!(active));
                Ok(BatchOp {
                    method: Method::POST,
                    url: self.client.url("SystemUsers", None),
                    body: Some(Value::Object(body)),
                    if_match: None,
                })
            }
            Operation::UpdateUser { user_name, set } => {
                let id = state.users.get(&key(user_name)).ok_or_else(|| gone(user_name))?;
                Ok(BatchOp {
                    method: Method::PATCH,
                    url: url(id),
                    body: Some(Value::Object(user_body(set))),
                    if_match: None,
                })
            }
            Operation::SetUserActive { user_name, active } => {
                let id = state.users.get(&key(user_name)).ok_or_else(|| gone(user_name))?;
                Ok(BatchOp {
                    method: Method::PATCH,
                    url: url(id),
                    body: Some(json!({"Enabled": active})),
                    if_match: None,
                })
            }
            Operation::DeleteUser { user_name } => Err(ApplyError::new(format!(
                "keyward never deletes Finance & Operations users ({user_name}): records refer to them; disable the user instead"
            ))),
            _ => Err(ApplyError::new("not a user operation")),
        }
    }

    async fn run(&mut self, state: &mut State, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        let mut results: Vec<Option<Result<(), ApplyError>>> = vec![None; changes.len()];
        let mut user_ops: Vec<(usize, BatchOp)> = Vec::new();
        // Writes that need the users of `user_ops` (an application's mapping).
        let mut after_users: Vec<(usize, BatchOp)> = Vec::new();
        let mut memberships: Vec<Membership> = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            match &c.operation {
                Operation::CreateServiceAccount { application_id: Some(app), display_name, .. } => {
                    match clients::create(self, state, app, display_name.as_deref()) {
                        Ok((user, mapping)) => {
                            user_ops.push((i, user));
                            after_users.push((i, mapping));
                        }
                        Err(e) => results[i] = Some(Err(e)),
                    }
                }
                Operation::SetServiceAccountActive { name, active } => {
                    match clients::set_active(self, state, name, *active) {
                        Ok(op) => user_ops.push((i, op)),
                        Err(e) => results[i] = Some(Err(e)),
                    }
                }
                Operation::CreateUser { .. }
                | Operation::UpdateUser { .. }
                | Operation::SetUserActive { .. }
                | Operation::DeleteUser { .. } => match self.user_op(state, &c.operation) {
                    Ok(op) => user_ops.push((i, op)),
                    Err(e) => results[i] = Some(Err(e)),
                },
                Operation::Assign { principal, binding } | Operation::Revoke { principal, binding } => {
                    let adding = matches!(c.operation, Operation::Assign { .. });
                    let resolved = match (principal, binding) {
                        (Principal::User(u), Binding::SecurityRole(r)) => {
                            state.users.get(&key(u)).ok_or_else(|| gone(u)).and_then(|uid| {
                                state
                                    .roles
                                    .get(&key(r))
                                    .map(|rid| (uid.clone(), rid.clone()))
                                    .ok_or_else(|| ApplyError::conflict(format!("security role {r} no longer exists")))
                            })
                        }
                        (Principal::ServiceAccount(app), Binding::SecurityRole(r)) => state
                            .app_users
                            .get(&key(app))
                            .ok_or_else(|| {
                                ApplyError::conflict(format!("application {app} is not mapped to a user on the target"))
                            })
                            .and_then(|uid| {
                                state
                                    .roles
                                    .get(&key(r))
                                    .map(|rid| (uid.clone(), rid.clone()))
                                    .ok_or_else(|| ApplyError::conflict(format!("security role {r} no longer exists")))
                            }),
                        (_, b) => Err(ApplyError::new(format!("{} does not exist on Finance & Operations", b.label()))),
                    };
                    match resolved {
                        Ok((user, role)) => memberships.push(Membership { change: i, adding, user, role }),
                        Err(e) => results[i] = Some(Err(e)),
                    }
                }
                other => {
                    results[i] = Some(Err(ApplyError::new(format!(
                        "Finance & Operations does not support this change ({})",
                        serde_json::to_value(other)
                            .ok()
                            .and_then(|v| v["type"].as_str().map(str::to_string))
                            .unwrap_or_default()
                    ))))
                }
            }
        }
        for round in [user_ops, after_users] {
            let ops: Vec<BatchOp> = round.iter().map(|(_, op)| op.clone()).collect();
            for ((i, op), outcome) in round.iter().zip(self.client.batch(&ops).await) {
                // The first failure of a change stands.
                if matches!(results[*i], Some(Err(_))) {
                    continue;
                }
                results[*i] = Some(outcome.map(|_| ()).map_err(|e| {
                    let what = format!("{} {}", op.method, odata::display_url(&op.url));
                    if e.status() == Some(404) {
                        ApplyError::conflict(format!("{what}: {e}"))
                    } else {
                        ApplyError::new(format!("{what}: {e}"))
                    }
                }));
            }
        }
        // Role assignments: find the collection that takes writes with the first one, alone.
        let mut rest: &[Membership] = &memberships;
        while self.write_collection.is_none()
            && let Some((first, tail)) = rest.split_first()
        {
            rest = tail;
            let outcome = self.probe(first).await;
            let refused_everywhere = self.write_collection.is_none() && outcome.is_err();
            results[first.change] = Some(outcome.clone());
            if refused_everywhere {
                // Asking again for each assignment would only repeat the refusals.
                for m in rest {
                    results[m.change] = Some(outcome.clone());
                }
                rest = &[];
            }
        }
        if let Some(collection) = self.write_collection {
            let ops: Vec<BatchOp> = rest.iter().map(|m| self.membership_op(collection, m)).collect();
            for (m, outcome) in rest.iter().zip(self.client.batch(&ops).await) {
                results[m.change] = Some(membership_outcome(collection, m, outcome.map(|_| ())));
            }
        }
        results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    fn membership_op(&self, collection: &str, m: &Membership) -> BatchOp {
        if m.adding {
            BatchOp {
                method: Method::POST,
                url: self.client.url(collection, None),
                body: Some(json!({"UserId": m.user, "SecurityRoleIdentifier": m.role,
                    "AssignmentStatus": "Enabled", "AssignmentMode": "Manual"})),
                if_match: None,
            }
        } else {
            let path = format!(
                "{collection}(UserId={},SecurityRoleIdentifier={})",
                odata::key_literal(&m.user),
                odata::key_literal(&m.role)
            );
            BatchOp { method: Method::DELETE, url: self.client.url(&path, None), body: None, if_match: None }
        }
    }

    /// Writes `m` to each candidate collection in turn until one accepts writes, and remembers it.
    async fn probe(&mut self, m: &Membership) -> Result<(), ApplyError> {
        let mut refusals = Vec::new();
        for collection in WRITE_COLLECTIONS {
            let op = self.membership_op(collection, m);
            let outcome = self
                .client
                .send(
                    op.method.clone(),
                    op.url.clone(),
                    op.body.as_ref().map(|b| b.to_string().into_bytes()),
                    None,
                    None,
                )
                .await
                .map(|_| ());
            let refused = match &outcome {
                Err(e) if m.adding => matches!(e.status(), Some(405 | 400 | 404)),
                Err(e) => e.status() == Some(405),
                Ok(()) => false,
            };
            if refused {
                tracing::info!(target_name = %self.target, collection, "the collection refused a role assignment write; trying the next");
                refusals.push(format!("{collection}: {}", outcome.unwrap_err()));
                continue;
            }
            self.write_collection = Some(collection);
            tracing::info!(target_name = %self.target, collection, "role assignments are written to this collection");
            return membership_outcome(collection, m, outcome);
        }
        Err(ApplyError::new(format!("no collection accepts role assignments: {}", refusals.join("; "))))
    }
}

fn membership_outcome(collection: &str, m: &Membership, outcome: Result<(), ODataError>) -> Result<(), ApplyError> {
    match outcome {
        Ok(()) => Ok(()),
        // Already there, or already gone: the desired end state.
        Err(e) if m.adding && e.status() == Some(409) => Ok(()),
        Err(e) if !m.adding && e.status() == Some(404) => Ok(()),
        Err(e) => Err(ApplyError::new(format!(
            "{} role {} {} user {} in {collection}: {e}",
            if m.adding { "giving" } else { "removing" },
            m.role,
            if m.adding { "to" } else { "from" },
            m.user
        ))),
    }
}

fn gone(user_name: &str) -> ApplyError {
    ApplyError::conflict(format!("user {user_name} does not exist on the target"))
}

/// The SystemUsers fields for the attributes keyward manages there.
fn user_body(attrs: &UserAttrs) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    if let Some(v) = &attrs.display_name {
        m.insert("UserName".into(), json!(v));
    }
    if let Some(v) = &attrs.email {
        m.insert("Email".into(), json!(v));
    }
    m
}

/// A `UserID` for a new user: the alias's local part, lower-cased, letters, digits, `.`, `_`
/// and `-` only, at most 20 characters, made unique with a number.
pub fn new_user_id(alias: &str, taken: &HashSet<String>) -> String {
    let local = alias.split('@').next().unwrap_or(alias);
    let mut base: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect::<String>()
        .to_lowercase();
    if base.is_empty() {
        base = "user".into();
    }
    base.truncate(20);
    if !taken.contains(&base) {
        return base;
    }
    for n in 2.. {
        let suffix = n.to_string();
        let mut cand = base.clone();
        cand.truncate(20 - suffix.len());
        cand.push_str(&suffix);
        if !taken.contains(&cand) {
            return cand;
        }
    }
    unreachable!("some number is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_short_clean_and_unique() {
        let taken: HashSet<String> = ["nancy.davolio".to_string()].into();
        assert_eq!(new_user_id("Nancy.Davolio@northwind.example", &HashSet::new()), "nancy.davolio");
        assert_eq!(new_user_id("nancy.davolio@northwind.example", &taken), "nancy.davolio2");
        assert_eq!(new_user_id("o'brien+x@northwind.example", &HashSet::new()), "obrienx");
        let long = new_user_id("bartholomew.featherstonehaugh@x.example", &HashSet::new());
        assert_eq!(long.len(), 20);
    }
}
