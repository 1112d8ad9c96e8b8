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
mod write;

use write::{Effect, Pending};
pub mod wire;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde_json::Value;

use self::wire::{WireBusinessUnit, WirePermission, WireRole, WireTeam, WireUser};
use super::odata::{ODataClient, ODataError};
use super::{Access, ApplyError, Capabilities, Provider, ProviderError, capabilities};
use crate::model::config::Connection;
use crate::model::{LiveTarget, ProviderKind, RoleEvent, Target};
use crate::plan::Change;
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
    /// After a round of the change feed (which leaves `state` unset): the ids of the users the
    /// state it brought up to date holds, by lower-cased domain name, for attribution.
    fed_users: HashMap<String, String>,
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
            fed_users: HashMap::new(),
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
        let changes = self.changes(cursor, last).await?;
        self.fed_users = attribution::users_after(last, &changes.changes);
        Ok(changes)
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
