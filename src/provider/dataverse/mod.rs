//! The `dataverse` provider: Dynamics 365 / Power Platform Dataverse through its Web API
//! (reference sheet §3).
//!
//! Guarantees:
//! - reading costs one paged request per collection (business units, security roles, users,
//!   user-role pairs, field security profiles, their field permissions and their members, teams
//!   and team members), never one request per user: `Prefer: odata.maxpagesize` and
//!   `@odata.nextLink`;
//! - writes go in `$batch` requests of up to 1000 operations, at most two rounds per apply
//!   phase (a user or profile is created first, then what needs its new id);
//! - users are `systemusers` keyed by `domainname` (the Entra user principal name), compared
//!   without regard to case; application users are not people and are left alone; a user is
//!   disabled through `isdisabled` and never deleted (ERP records refer to their users);
//! - a security role is one binding per role name. Dataverse keeps a copy of a role in each
//!   business unit and a user can hold only the copy of their own unit: assignments resolve to
//!   that copy, and a user whose unit has no copy is reported as out of reach, so the plan fails
//!   with the user, the role and the business unit named instead of the apply failing;
//! - each user's business unit is read (`_businessunitid_value`) with the units' role copies; a
//!   move is a `PATCH` of `businessunitid@odata.bind`, after which the user's roles resolve to
//!   the new unit's copies (the plan assigns them again: a move removes them);
//! - a binding `{team: NAME}` is the owner team (`teamtype` 0, not a business unit's default
//!   team) named NAME: keyward keeps its members (`teammembership_association`) and never
//!   creates, changes or deletes the team; a team the environment lacks is a plan error, and
//!   access teams are not read as bindings;
//! - a binding `{groupTeam: ...}` is a Microsoft Entra group team (`teams.rs`): read with its
//!   members and roles, its members never written (they come from the Entra group), its listed
//!   roles kept through `teamroles_association`; every team's roles are read (one paged request);
//! - a field security profile (derived from a DataClassification) is created with read
//!   permission (`canread` 4) on its columns, kept that way, and its members are exactly the
//!   people the plan names;
//! - what roles contain (privileges and depths) is read only when asked, in two more paged
//!   requests (see `privileges`);
//! - user updates are conditional on the row's `@odata.etag` (`If-Match`); a 412 is reported
//!   as "changed since it was read".
//!
//! Assumed: the intersect collections `systemuserrolescollection`,
//! `systemuserprofilescollection` and `teammembershipcollection` can be listed (documented for
//! the first, [UNVERIFIED] for the others; docs/reference/dataverse.md §3); new users are created in the root business unit; associating an already associated
//! pair answers `0x80040237` (duplicate key), which counts as done.

pub mod appusers;
mod attribution;
mod feed;
mod privileges;
mod read;
mod teams;
pub mod wire;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde_json::{Value, json};

use self::wire::{WireBusinessUnit, WirePermission, WireRole, WireTeam, WireUser};
use super::odata::{BatchOp, ODataClient, ODataError, Reply};
use super::{Access, ApplyError, Capabilities, Provider, ProviderError, capabilities};
use crate::model::config::Connection;
use crate::model::{Binding, LiveTarget, ProviderKind, RoleEvent, Target, UserAttrs};
use crate::plan::{Change, Operation};
use crate::remote::RetryPolicy;
use crate::remote::entra::TokenSource;
use crate::remote::http;

/// The Web API version path.
pub const API_PATH: &str = "api/data/v9.2/";
/// Rows per page (the documented maximum).
const PAGE_SIZE: usize = 5000;
/// Operations per `$batch` (the documented maximum).
const BATCH_LIMIT: usize = 1000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The error code of an association that already exists ("Cannot insert duplicate key").
const DUPLICATE_KEY: &str = "0x80040237";
/// Audit rows the access review shows.
const HISTORY_PAGE: usize = 500;

fn key(s: &str) -> String {
    s.to_lowercase()
}

#[derive(Debug, Clone)]
struct UserEntry {
    id: String,
    business_unit: Option<String>,
    etag: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct ProfileEntry {
    id: String,
    /// Column → (fieldpermission id, can read).
    columns: HashMap<String, (String, bool)>,
}

/// What keyward knows of the environment since its read.
#[derive(Debug, Default)]
struct State {
    users: HashMap<String, UserEntry>,
    /// (lower-cased role name, business unit id) → role id.
    roles: HashMap<(String, String), String>,
    business_units: HashMap<String, String>,
    root_unit: Option<String>,
    profiles: HashMap<String, ProfileEntry>,
    /// Lower-cased name → id of the owner teams keyward keeps the members of.
    teams: HashMap<String, String>,
    /// Microsoft Entra group teams by (group object id, unit name), lower-cased.
    group_teams: HashMap<(String, String), teams::GroupTeamEntry>,
    /// Application users by lower-cased client id.
    app_users: HashMap<String, UserEntry>,
}

impl State {
    fn unit_name(&self, id: &str) -> String {
        self.business_units.get(id).cloned().unwrap_or_else(|| id.to_string())
    }
}

pub struct DataverseProvider {
    target: String,
    caps: Capabilities,
    access: Access,
    client: ODataClient,
    state: Option<State>,
    /// While a read starts the change feed: the delta link of each collection read (see
    /// [`feed`]).
    tracking: std::sync::Mutex<Option<std::collections::BTreeMap<String, String>>>,
}

impl DataverseProvider {
    pub fn open(target: &Target, root: &Path, access: Access) -> Result<Self, ProviderError> {
        Self::open_with(target, root, access, RetryPolicy::default())
    }

    /// [`Self::open`], retrying requests as `retry` says.
    pub fn open_with(target: &Target, root: &Path, access: Access, retry: RetryPolicy) -> Result<Self, ProviderError> {
        let name = target.name.to_string();
        let fail = |message: String| ProviderError::Remote { target: name.clone(), message };
        let Connection::Dataverse { url, tenant, client_id, credential, authority, .. } = &target.connection else {
            return Err(fail("the target is not a Dataverse target".into()));
        };
        let env = url.trim_end_matches('/');
        let base: Url = format!("{env}/{API_PATH}").parse().map_err(|e| fail(format!("`{url}` is not a URL: {e}")))?;
        http::check_url(&base).map_err(|e| fail(e.to_string()))?;
        let ca = target.ca_file.as_ref().map(|c| root.join(c));
        let http = http::client(ca.as_deref(), REQUEST_TIMEOUT).map_err(|e| fail(e.to_string()))?;
        let scope = format!("{env}/.default");
        let tokens =
            TokenSource::new(http.clone(), authority.as_deref(), tenant, client_id, credential, &scope, root, &name)?
                .with_retry(retry);
        let client = ODataClient::new(
            base,
            http,
            tokens,
            PAGE_SIZE,
            BATCH_LIMIT,
            vec![("OData-MaxVersion", "4.0"), ("OData-Version", "4.0")],
        )
        .map_err(&fail)?
        .with_retry(retry);
        Ok(DataverseProvider {
            target: name,
            caps: capabilities(ProviderKind::Dataverse),
            access,
            client,
            state: None,
            tracking: Default::default(),
        })
    }

    fn read_error(&self, what: &str, e: ODataError) -> ProviderError {
        let hint = match e.status() {
            Some(401) => "; check the target's tenant, clientId and credential",
            Some(403) => "; the application user of keyward's app registration needs a security role that can read it",
            _ => "",
        };
        ProviderError::Remote { target: self.target.clone(), message: format!("cannot read {what}: {e}{hint}") }
    }

    async fn list<T>(
        &self,
        set: &str,
        select: &str,
        what: &str,
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Vec<T>, ProviderError> {
        let track = self.tracking.lock().is_ok_and(|t| t.is_some());
        let (rows, delta) = self
            .client
            .get_all_tracked(set, &format!("$select={select}"), track)
            .await
            .map_err(|e| self.read_error(what, e))?;
        if let (Some(link), Ok(Some(links))) = (delta, self.tracking.lock().as_deref_mut()) {
            links.insert(set.to_string(), link.to_string());
        }
        rows.iter().map(&parse).collect::<Result<Vec<T>, String>>().map_err(|m| ProviderError::Remote {
            target: self.target.clone(),
            message: format!("{what} read from the environment are not valid: {m}"),
        })
    }

    /// The entity URL the `@odata.id` of an association names.
    fn entity(&self, set: &str, id: &str) -> String {
        self.client.url(&format!("{set}({id})"), None).to_string()
    }
}

#[async_trait]
impl Provider for DataverseProvider {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
        let units = self.list("businessunits", wire::BU_SELECT, "business units", WireBusinessUnit::parse).await?;
        let roles = self.list("roles", wire::ROLE_SELECT, "security roles", WireRole::parse).await?;
        let users = self.list("systemusers", wire::USER_SELECT, "users", WireUser::parse).await?;
        wire::unique_keys("systemuser", users.iter().map(|u| u.id.as_str()))
            .and(wire::unique_keys("role", roles.iter().map(|r| r.id.as_str())))
            .map_err(|m| ProviderError::Remote {
                target: self.target.clone(),
                message: format!("{}: {m}", self.client.root()),
            })?;
        let user_roles = self
            .list("systemuserrolescollection", wire::USER_ROLE_SELECT, "role assignments", |v| {
                wire::pair(v, "systemuserid", "roleid")
            })
            .await?;
        let profiles = self
            .list("fieldsecurityprofiles", wire::PROFILE_SELECT, "field security profiles", |v| {
                wire::pair(v, "fieldsecurityprofileid", "name")
            })
            .await?;
        let permissions =
            self.list("fieldpermissions", wire::PERMISSION_SELECT, "field permissions", WirePermission::parse).await?;
        let user_profiles = self
            .list("systemuserprofilescollection", wire::USER_PROFILE_SELECT, "field security profile members", |v| {
                wire::pair(v, "systemuserid", "fieldsecurityprofileid")
            })
            .await?;
        let teams = self.list("teams", wire::TEAM_SELECT, "teams", WireTeam::parse).await?;
        let team_members = self
            .list("teammembershipcollection", wire::TEAM_MEMBER_SELECT, "team members", |v| {
                wire::pair(v, "teamid", "systemuserid")
            })
            .await?;
        let team_roles = self
            .list("teamrolescollection", wire::TEAM_ROLE_SELECT, "team roles", |v| wire::pair(v, "teamid", "roleid"))
            .await?;
        let mut live = read::normalise(
            &mut self.state,
            &units,
            &roles,
            &users,
            &user_roles,
            &profiles,
            &permissions,
            &user_profiles,
            &teams,
            &team_members,
        );
        if let Some(state) = self.state.as_mut() {
            teams::normalise(state, &mut live, &teams, &team_members, &team_roles, &roles);
        }
        tracing::info!(target_name = %self.target, users = live.accounts.len(), bindings = live.bindings.len(), requests = self.client.requests(), "read Dataverse environment");
        Ok(live)
    }

    async fn role_contents(
        &mut self,
        roles: &[String],
    ) -> Result<std::collections::BTreeMap<String, crate::model::RoleContents>, ProviderError> {
        self.read_role_contents(roles).await
    }

    async fn read_with_cursor(&mut self) -> Result<(LiveTarget, Option<super::Cursor>), ProviderError> {
        self.read_with_feed().await
    }

    async fn read_changes(
        &mut self,
        cursor: &super::Cursor,
        last: &LiveTarget,
    ) -> Result<super::Changes, super::FeedError> {
        self.changes(cursor, last).await
    }

    fn binding_fingerprint(&self, binding: &crate::model::LiveBinding) -> String {
        feed::fingerprint(binding)
    }

    fn requests(&self) -> Option<usize> {
        Some(self.client.requests())
    }

    async fn attribute(&mut self, changes: &[&Change]) -> Vec<Option<crate::model::Attribution>> {
        self.attribute_drift(changes).await
    }

    /// The newest role assignments and removals of the `audits` table (actions 55 and 56),
    /// one page of at most [`HISTORY_PAGE`] rows.
    async fn role_history(&mut self) -> Result<Vec<RoleEvent>, ProviderError> {
        let url = self.client.url(
            "audits",
            Some("$select=auditid,action,createdon,_objectid_value,_userid_value&$filter=action%20eq%2055%20or%20action%20eq%2056&$orderby=createdon%20desc"),
        );
        let prefer = format!("odata.maxpagesize={HISTORY_PAGE}");
        let (_, _, bytes) = self
            .client
            .send(Method::GET, url, None, None, Some(&prefer))
            .await
            .map_err(|e| self.read_error("the audit history (is auditing on?)", e))?;
        let page: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let names: HashMap<&str, String> =
            self.state.iter().flat_map(|s| s.users.iter()).map(|(k, u)| (u.id.as_str(), k.clone())).collect();
        let mut out = Vec::new();
        for row in page.get("value").and_then(Value::as_array).into_iter().flatten() {
            let action = row.get("action").and_then(Value::as_i64);
            let assigned = match action {
                Some(55) => true,
                Some(56) => false,
                _ => continue,
            };
            let Some(time) = row
                .get("createdon")
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc())
            else {
                continue;
            };
            let user = row
                .get("_objectid_value")
                .or_else(|| row.get("objectid"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase();
            let user_name = names.get(user.as_str()).cloned().unwrap_or(user);
            let by = row.get("_userid_value").and_then(Value::as_str).and_then(|u| names.get(u)).cloned();
            out.push(RoleEvent {
                time,
                user_name,
                assigned,
                detail: format!(
                    "{} (audit action {}){}",
                    if assigned { "Assign Role To User" } else { "Remove Role From User" },
                    action.unwrap_or_default(),
                    by.map(|b| format!(" by {b}")).unwrap_or_default()
                ),
            });
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.time));
        Ok(out)
    }

    async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        if self.access != Access::Write {
            return changes.iter().map(|_| Err(ApplyError::new("the target was opened read-only"))).collect();
        }
        let Some(mut state) = self.state.take() else {
            return changes.iter().map(|_| Err(ApplyError::new("apply called before read"))).collect();
        };
        let before = self.client.requests();
        let results = self.run(&mut state, changes).await;
        self.state = Some(state);
        tracing::info!(target_name = %self.target, changes = changes.len(), requests = self.client.requests() - before, "applied to Dataverse environment");
        results
    }
}

/// What a write's success means for keyward's knowledge of the environment.
#[derive(Debug, Clone)]
enum Effect {
    None,
    UserCreated {
        user_name: String,
        active: bool,
    },
    UserPatched {
        user_name: String,
    },
    ProfileCreated {
        name: String,
        columns: Vec<String>,
    },
    PermissionSet {
        profile: String,
        column: String,
    },
    /// An application user created (see [`appusers`]).
    AppUserCreated {
        application_id: String,
        unit: String,
    },
    /// A membership change: adding (an existing pair counts as done) or removing.
    Membership {
        adding: bool,
    },
}

struct Pending {
    op: BatchOp,
    changes: Vec<usize>,
    effect: Effect,
}

impl DataverseProvider {
    async fn run(&self, state: &mut State, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        let mut results: Vec<Option<Result<(), ApplyError>>> = vec![None; changes.len()];
        let mut first: Vec<Pending> = Vec::new();
        // User patches merge per user: (index in `first`).
        let mut patches: HashMap<String, usize> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            match self.prepare(state, c, i, &mut first, &mut patches) {
                Ok(()) => {}
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let mut second: Vec<Pending> = Vec::new();
        self.execute(state, first, &mut results, &mut second).await;
        let mut third = Vec::new();
        self.execute(state, second, &mut results, &mut third).await;
        results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    fn op(&self, method: Method, path: &str, body: Option<Value>, if_match: Option<String>) -> BatchOp {
        BatchOp { method, url: self.client.url(path, None), body, if_match }
    }

    /// Turns one change into writes of the first round.
    fn prepare(
        &self,
        state: &State,
        c: &Change,
        i: usize,
        out: &mut Vec<Pending>,
        patches: &mut HashMap<String, usize>,
    ) -> Result<(), ApplyError> {
        match &c.operation {
            Operation::CreateUser { user_name, attrs, active } => {
                if state.users.contains_key(&key(user_name)) {
                    // Created since the plan: adopt it and bring it to the desired values.
                    let mut body = user_body(attrs);
                    body.insert("isdisabled".into(), json!(!active));
                    self.patch_user(state, user_name, body, i, out, patches)
                } else {
                    let mut body = user_body(attrs);
                    body.insert("domainname".into(), json!(user_name));
                    if !body.contains_key("internalemailaddress") {
                        body.insert("internalemailaddress".into(), json!(user_name));
                    }
                    if !body.contains_key("lastname") {
                        // Dataverse requires a last name; the sign-in name stands in for it.
                        body.insert("lastname".into(), json!(user_name.split('@').next().unwrap_or(user_name)));
                    }
                    let root = state.root_unit.as_ref().ok_or_else(|| {
                        ApplyError::new("the environment has no root business unit to create users in")
                    })?;
                    body.insert("businessunitid@odata.bind".into(), json!(format!("/businessunits({root})")));
                    out.push(Pending {
                        op: self.op(Method::POST, "systemusers", Some(Value::Object(body)), None),
                        changes: vec![i],
                        effect: Effect::UserCreated { user_name: user_name.clone(), active: *active },
                    });
                    Ok(())
                }
            }
            Operation::UpdateUser { user_name, set } => {
                self.patch_user(state, user_name, user_body(set), i, out, patches)
            }
            Operation::SetUserActive { user_name, active } => {
                let mut body = serde_json::Map::new();
                body.insert("isdisabled".into(), json!(!active));
                self.patch_user(state, user_name, body, i, out, patches)
            }
            Operation::MoveUser { user_name, business_unit } => {
                // `businessunitid` is a writable lookup (reference sheet §3.2); the move removes
                // the user's security roles, which the plan's assignments give back after it.
                let unit = state
                    .business_units
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(business_unit))
                    .map(|(id, _)| id.clone())
                    .ok_or_else(|| {
                        ApplyError::conflict(format!("business unit `{business_unit}` does not exist (any more)"))
                    })?;
                let mut body = serde_json::Map::new();
                body.insert("businessunitid@odata.bind".into(), json!(format!("/businessunits({unit})")));
                self.patch_user(state, user_name, body, i, out, patches)
            }
            Operation::DeleteUser { user_name } => Err(ApplyError::new(format!(
                "keyward never deletes Dataverse users ({user_name}): records refer to them; disable the user instead"
            ))),
            Operation::CreateBinding { binding: Binding::FieldSecurityProfile(p) }
            | Operation::UpdateBinding { binding: Binding::FieldSecurityProfile(p) } => {
                match state.profiles.get(&key(&p.name)) {
                    Some(entry) => {
                        for col in &p.columns {
                            out.extend(self.permission(entry, &p.name, col, i));
                        }
                    }
                    None => out.push(Pending {
                        op: self.op(
                            Method::POST,
                            "fieldsecurityprofiles",
                            Some(json!({
                                "name": p.name,
                                "description": format!("Kept by keyward: who may read the columns of DataClassification {}", p.name),
                            })),
                            None,
                        ),
                        changes: vec![i],
                        effect: Effect::ProfileCreated { name: p.name.clone(), columns: p.columns.clone() },
                    }),
                }
                Ok(())
            }
            Operation::UpdateBinding { binding: Binding::GroupTeam(t) } => self.team_roles(state, t, i, out),
            Operation::CreateBinding { binding } | Operation::UpdateBinding { binding } => Err(ApplyError::new(
                format!("{} is predefined on Dataverse; keyward does not create or change it", binding.label()),
            )),
            Operation::Assign { principal, binding } | Operation::Revoke { principal, binding } => {
                let adding = matches!(c.operation, Operation::Assign { .. });
                let (user_name, user) = appusers::principal(state, principal)?;
                let (path, target_entity) = match binding {
                    Binding::SecurityRole(name) => {
                        let unit = user.business_unit.clone().or_else(|| state.root_unit.clone()).unwrap_or_default();
                        let role = state.roles.get(&(key(name), unit.clone())).ok_or_else(|| {
                            ApplyError::conflict(format!(
                                "security role {name} has no copy in business unit `{}` of {user_name}",
                                state.unit_name(&unit)
                            ))
                        })?;
                        if adding {
                            (
                                format!("systemusers({})/systemuserroles_association/$ref", user.id),
                                self.entity("roles", role),
                            )
                        } else {
                            (
                                format!("systemusers({})/systemuserroles_association({role})/$ref", user.id),
                                String::new(),
                            )
                        }
                    }
                    Binding::FieldSecurityProfile(p) => {
                        let profile = state.profiles.get(&key(&p.name)).ok_or_else(|| {
                            ApplyError::conflict(format!("field security profile {} does not exist", p.name))
                        })?;
                        if adding {
                            (
                                format!("fieldsecurityprofiles({})/systemuserprofiles_association/$ref", profile.id),
                                self.entity("systemusers", &user.id),
                            )
                        } else {
                            (
                                format!(
                                    "fieldsecurityprofiles({})/systemuserprofiles_association({})/$ref",
                                    profile.id, user.id
                                ),
                                String::new(),
                            )
                        }
                    }
                    Binding::Team(name) => {
                        let team = state.teams.get(&key(name)).ok_or_else(|| {
                            ApplyError::conflict(format!("owner team {name} does not exist (any more)"))
                        })?;
                        if adding {
                            (
                                format!("teams({team})/teammembership_association/$ref"),
                                self.entity("systemusers", &user.id),
                            )
                        } else {
                            (format!("teams({team})/teammembership_association({})/$ref", user.id), String::new())
                        }
                    }
                    other => return Err(ApplyError::new(format!("{} does not exist on Dataverse", other.label()))),
                };
                let op = if adding {
                    self.op(Method::POST, &path, Some(json!({"@odata.id": target_entity})), None)
                } else {
                    self.op(Method::DELETE, &path, None, None)
                };
                out.push(Pending { op, changes: vec![i], effect: Effect::Membership { adding } });
                Ok(())
            }
            Operation::CreateServiceAccount { application_id: Some(app), business_unit, .. } => {
                let (body, effect) = appusers::create(state, app, business_unit.as_deref())?;
                out.push(Pending {
                    op: self.op(Method::POST, "systemusers", Some(body), None),
                    changes: vec![i],
                    effect,
                });
                Ok(())
            }
            Operation::SetServiceAccountActive { name, active } => {
                let mut body = serde_json::Map::new();
                body.insert("isdisabled".into(), json!(!active));
                self.patch_user(state, name, body, i, out, patches)
            }
            Operation::CreateServiceAccount { .. }
            | Operation::UpdateServiceAccount { .. }
            | Operation::AddCredential { .. }
            | Operation::RemoveCredential { .. } => Err(ApplyError::new(
                "Dataverse keeps application users only: a service account needs the applicationId of its app registration, and credentials stay with Microsoft Graph",
            )),
            Operation::SetAuthMethod { .. } => Err(ApplyError::new("Dataverse has no sign-in methods policy")),
            Operation::MakeEligible { .. } | Operation::EndEligibility { .. } | Operation::SetActivation { .. } => {
                Err(ApplyError::new("Dataverse keeps no eligibility"))
            }
        }
    }

    /// Merges `body` into the one PATCH of this user in the round.
    fn patch_user(
        &self,
        state: &State,
        user_name: &str,
        body: serde_json::Map<String, Value>,
        i: usize,
        out: &mut Vec<Pending>,
        patches: &mut HashMap<String, usize>,
    ) -> Result<(), ApplyError> {
        // A person by domain name, or an application user by client id.
        let user = state
            .users
            .get(&key(user_name))
            .or_else(|| state.app_users.get(&key(user_name)))
            .ok_or_else(|| ApplyError::conflict(format!("user {user_name} no longer exists on the target")))?;
        match patches.get(&key(user_name)) {
            Some(&w) => {
                if let Some(Value::Object(m)) = &mut out[w].op.body {
                    m.extend(body);
                }
                out[w].changes.push(i);
            }
            None => {
                patches.insert(key(user_name), out.len());
                out.push(Pending {
                    op: self.op(
                        Method::PATCH,
                        &format!("systemusers({})", user.id),
                        Some(Value::Object(body)),
                        user.etag.clone(),
                    ),
                    changes: vec![i],
                    effect: Effect::UserPatched { user_name: user_name.to_string() },
                });
            }
        }
        Ok(())
    }

    /// The write that lets `profile` read `column`, unless it already can.
    fn permission(&self, profile: &ProfileEntry, name: &str, column: &str, i: usize) -> Option<Pending> {
        let effect = Effect::PermissionSet { profile: name.to_string(), column: column.to_string() };
        match profile.columns.get(column) {
            Some((_, true)) => None,
            Some((id, false)) => Some(Pending {
                op: self.op(
                    Method::PATCH,
                    &format!("fieldpermissions({id})"),
                    Some(json!({"canread": wire::ALLOWED})),
                    None,
                ),
                changes: vec![i],
                effect,
            }),
            None => {
                let (table, attribute) = column.split_once('.').unwrap_or((column, ""));
                Some(Pending {
                    op: self.op(
                        Method::POST,
                        "fieldpermissions",
                        Some(json!({
                            "entityname": table,
                            "attributelogicalname": attribute,
                            "canread": wire::ALLOWED,
                            "cancreate": 0,
                            "canupdate": 0,
                            "fieldsecurityprofileid@odata.bind": format!("/fieldsecurityprofiles({})", profile.id),
                        })),
                        None,
                    ),
                    changes: vec![i],
                    effect,
                })
            }
        }
    }

    /// Sends one round in `$batch`es and records outcomes; writes that need an id created in
    /// this round go to `next`.
    async fn execute(
        &self,
        state: &mut State,
        round: Vec<Pending>,
        results: &mut [Option<Result<(), ApplyError>>],
        next: &mut Vec<Pending>,
    ) {
        if round.is_empty() {
            return;
        }
        let ops: Vec<BatchOp> = round.iter().map(|p| p.op.clone()).collect();
        let outcomes = self.client.batch(&ops).await;
        for (p, outcome) in round.into_iter().zip(outcomes) {
            let outcome = self.effect(state, &p, outcome, next);
            for i in p.changes {
                // The first failure of a change stands.
                if !matches!(results[i], Some(Err(_))) {
                    results[i] = Some(outcome.clone());
                }
            }
        }
    }

    fn effect(
        &self,
        state: &mut State,
        p: &Pending,
        outcome: Result<Reply, ODataError>,
        next: &mut Vec<Pending>,
    ) -> Result<(), ApplyError> {
        let what = || format!("{} {}", p.op.method, super::odata::display_url(&p.op.url));
        let reply = match (outcome, &p.effect) {
            (Ok(r), _) => r,
            (Err(e), Effect::Membership { adding: true }) if e.code() == Some(DUPLICATE_KEY) => return Ok(()),
            (Err(e), Effect::Membership { adding: false }) if e.status() == Some(404) => return Ok(()),
            (Err(e), _) if e.status() == Some(412) => {
                return Err(ApplyError::conflict(format!(
                    "{}: changed on the target since it was read (HTTP 412); plan again",
                    what()
                )));
            }
            (Err(e), _) => return Err(ApplyError::new(format!("{}: {e}", what()))),
        };
        match &p.effect {
            Effect::None | Effect::Membership { .. } => {}
            Effect::PermissionSet { profile, column } => {
                if let Some(entry) = state.profiles.get_mut(&key(profile)) {
                    let id = reply.entity_id.as_deref().and_then(wire::id_from_entity_url).unwrap_or_default();
                    let slot = entry.columns.entry(column.clone()).or_insert((id, true));
                    slot.1 = true;
                }
            }
            Effect::UserPatched { user_name } => {
                let k = key(user_name);
                let entry = match state.users.get_mut(&k) {
                    Some(u) => Some(u),
                    None => state.app_users.get_mut(&k),
                };
                if let Some(u) = entry {
                    // The row changed; a later conditional write would need the new tag.
                    u.etag = reply.etag.clone();
                    // A move: the user's roles are now the copies of the new unit.
                    let moved =
                        p.op.body.as_ref().and_then(|b| b.get("businessunitid@odata.bind")).and_then(Value::as_str);
                    if let Some(unit) = moved.and_then(|m| m.strip_prefix("/businessunits(")?.strip_suffix(')')) {
                        u.business_unit = Some(unit.to_string());
                    }
                }
            }
            Effect::UserCreated { user_name, active } => {
                let Some(id) = reply.entity_id.as_deref().and_then(wire::id_from_entity_url) else {
                    return Err(ApplyError::new(format!("{}: the answer does not say which user was created", what())));
                };
                state.users.insert(
                    key(user_name),
                    UserEntry { id: id.clone(), business_unit: state.root_unit.clone(), etag: None },
                );
                // `isdisabled` is not valid on create: a disabled user is disabled next.
                if !active {
                    next.push(Pending {
                        op: self.op(
                            Method::PATCH,
                            &format!("systemusers({id})"),
                            Some(json!({"isdisabled": true})),
                            None,
                        ),
                        changes: p.changes.clone(),
                        effect: Effect::None,
                    });
                }
            }
            Effect::AppUserCreated { application_id, unit } => {
                let Some(id) = reply.entity_id.as_deref().and_then(wire::id_from_entity_url) else {
                    return Err(ApplyError::new(format!(
                        "{}: the answer does not say which application user was created",
                        what()
                    )));
                };
                appusers::created(state, id, application_id, unit);
            }
            Effect::ProfileCreated { name, columns } => {
                let Some(id) = reply.entity_id.as_deref().and_then(wire::id_from_entity_url) else {
                    return Err(ApplyError::new(format!(
                        "{}: the answer does not say which profile was created",
                        what()
                    )));
                };
                let entry = ProfileEntry { id, ..ProfileEntry::default() };
                for col in columns {
                    next.extend(self.permission(&entry, name, col, p.changes[0]));
                }
                state.profiles.insert(key(name), entry);
            }
        }
        Ok(())
    }
}

/// The systemuser columns for the attributes keyward manages there.
fn user_body(attrs: &UserAttrs) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("firstname", &attrs.given_name),
        ("lastname", &attrs.family_name),
        ("internalemailaddress", &attrs.email),
        ("jobtitle", &attrs.job_title),
    ] {
        if let Some(v) = v {
            // `""` clears the column.
            m.insert(k.into(), if v.is_empty() { Value::Null } else { json!(v) });
        }
    }
    m
}
