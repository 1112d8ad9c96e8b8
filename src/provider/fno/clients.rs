//! Entra applications mapped to Finance & Operations users (System administration › Setup ›
//! Microsoft Entra applications, table `SysAADClientTable`, entity `SysAADClients`:
//! docs/reference/fno.md §3), and the licence each role needs (§2).
//!
//! - Each row maps a client id (`AADClientId`) to the F&O user (`UserId`) the application acts
//!   as. keyward reports the user as a service account whose name is the client id (lower
//!   case), so the planner matches it to the ServiceAccount declaring that `applicationId`;
//!   mapped users are not people and are left out of the accounts.
//! - Creating one is two writes, in order: `POST SystemUsers` (a `UserID` made from the
//!   account's display name, `Enabled`, no alias: the user is no person) and `POST
//!   SysAADClients` naming it. Enabling and disabling are `PATCH SystemUsers` (`Enabled`); its
//!   roles are assigned as a person's. Neither the user nor the mapping is ever deleted.
//! - An environment whose `SysAADClients` is not exposed (404) has no application users
//!   keyward can see: the read goes on without them, and says so in the log.
//! - `SecurityRoles.UserLicenseType` (a value of the `UserLicenseType` enum) is the licence a
//!   role needs; `None` needs none.

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde_json::{Value, json};

use super::odata::{self, BatchOp};
use super::{FnoProvider, State, key, new_user_id, text};
use crate::model::{Licensing, LiveServiceAccount, digest};
use crate::provider::{ApplyError, ProviderError};

pub const AAD_CLIENTS: &str = "SysAADClients";

/// One mapping read: (lower-cased client id, name, UserId).
pub(super) type Mapping = (String, String, String);

impl FnoProvider {
    /// The Entra applications mapped to users; none where the entity is not exposed.
    pub(super) async fn read_clients(&self) -> Result<Vec<Mapping>, ProviderError> {
        let rows = match self.client.get_all(AAD_CLIENTS, "$select=AADClientId,Name,UserId").await {
            Ok(rows) => rows,
            Err(e) if e.status() == Some(404) => {
                tracing::warn!(target_name = %self.target, "the environment exposes no SysAADClients: application users are not read");
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(ProviderError::Remote {
                    target: self.target.clone(),
                    message: format!("cannot read {AAD_CLIENTS}: {e}"),
                });
            }
        };
        Ok(rows
            .iter()
            .filter_map(|r| Some((text(r, "AADClientId")?.to_ascii_lowercase(), text(r, "Name")?, text(r, "UserId")?)))
            .collect())
    }
}

/// The service accounts of the mappings, with each mapped user's `Enabled`, and what apply
/// needs to find them.
pub(super) fn service_accounts(
    state: &mut State,
    mappings: &[Mapping],
    enabled: &HashMap<String, bool>,
) -> Vec<LiveServiceAccount> {
    let mut out = Vec::new();
    for (app, name, user) in mappings {
        // A mapping to a user that does not exist gives the application nothing.
        let Some(active) = enabled.get(&key(user)) else { continue };
        state.app_users.insert(app.clone(), user.clone());
        out.push(LiveServiceAccount {
            id: user.clone(),
            name: app.clone(),
            display_name: Some(name.clone()),
            description: None,
            owner: None,
            credentials: Vec::new(),
            fingerprint: digest(&(app, name, user, active)),
            application_id: Some(app.clone()),
            active: Some(*active),
        });
    }
    out
}

/// The licence each role needs, by role name, from the `SecurityRoles` rows.
pub(super) fn licensing(roles: &[Value]) -> Licensing {
    let roles = roles
        .iter()
        .filter_map(|r| {
            let licence = text(r, "UserLicenseType").filter(|l| l != "None")?;
            Some((text(r, "SecurityRoleName")?, licence))
        })
        .collect();
    Licensing { roles, ..Licensing::default() }
}

/// The writes that create the user application `app` acts as and map it: the user, then the
/// mapping (which needs the user).
pub(super) fn create(
    provider: &FnoProvider,
    state: &mut State,
    app: &str,
    display_name: Option<&str>,
) -> Result<(BatchOp, BatchOp), ApplyError> {
    if state.app_users.contains_key(&key(app)) {
        return Err(ApplyError::conflict(format!("application {app} was mapped to a user since the plan; plan again")));
    }
    let label = display_name.unwrap_or(app);
    let taken: HashSet<String> = state.user_ids.clone();
    let id = new_user_id(label, &taken);
    state.user_ids.insert(key(&id));
    state.app_users.insert(key(app), id.clone());
    let user = BatchOp {
        method: Method::POST,
        url: provider.client.url("SystemUsers", None),
        body: Some(json!({"UserID": id, "UserName": label, "Enabled": true})),
        if_match: None,
    };
    let mapping = BatchOp {
        method: Method::POST,
        url: provider.client.url(AAD_CLIENTS, None),
        body: Some(json!({"AADClientId": app, "Name": label, "UserId": id})),
        if_match: None,
    };
    Ok((user, mapping))
}

/// The `PATCH` that enables or disables the user application `app` acts as.
pub(super) fn set_active(
    provider: &FnoProvider,
    state: &State,
    app: &str,
    active: bool,
) -> Result<BatchOp, ApplyError> {
    let id = state
        .app_users
        .get(&key(app))
        .ok_or_else(|| ApplyError::conflict(format!("application {app} is not mapped to a user on the target")))?;
    Ok(BatchOp {
        method: Method::PATCH,
        url: provider.client.url(&format!("SystemUsers(UserID={})", odata::key_literal(id)), None),
        body: Some(json!({"Enabled": active})),
        if_match: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_needing_no_licence_are_left_out() {
        let l = licensing(&[
            json!({"SecurityRoleName": "Clerk", "UserLicenseType": "Activity"}),
            json!({"SecurityRoleName": "Viewer", "UserLicenseType": "None"}),
            json!({"SecurityRoleName": "Old"}),
        ]);
        assert_eq!(l.roles.into_iter().collect::<Vec<_>>(), vec![("Clerk".to_string(), "Activity".to_string())]);
    }

    #[test]
    fn a_mapping_to_a_missing_user_is_no_service_account() {
        let mut state = State::default();
        let enabled: HashMap<String, bool> = [("bot".to_string(), false)].into();
        let maps = vec![
            ("aaaaaaaa-0000-0000-0000-0000000000a1".to_string(), "Bot".to_string(), "BOT".to_string()),
            ("aaaaaaaa-0000-0000-0000-0000000000a2".to_string(), "Gone".to_string(), "gone".to_string()),
        ];
        let sas = service_accounts(&mut state, &maps, &enabled);
        assert_eq!(sas.len(), 1);
        assert_eq!((sas[0].id.as_str(), sas[0].active), ("BOT", Some(false)));
        assert_eq!(state.app_users["aaaaaaaa-0000-0000-0000-0000000000a1"], "BOT");
    }
}
