//! Application users (docs/reference/dataverse.md §4) and what Dataverse records about
//! licences (§6).
//!
//! - An application user is a `systemusers` row with `applicationid`, the client id of an Entra
//!   app registration. keyward reports each one as a service account whose name is that client
//!   id (lower case); the planner matches it to the ServiceAccount that declares the id
//!   (`targets: {T: {applicationId}}`) and leaves the others alone.
//! - Creating one is `POST systemusers` with `applicationid` and `businessunitid@odata.bind`
//!   (the unit the plan names, else the root unit); enabling, disabling (`isdisabled`) and
//!   moving it are the same `PATCH` as for a person, conditional on its etag; its roles are
//!   assigned as a person's, as the copies of its own unit. It is never deleted.
//! - Licences: each systemuser's `accessmode` and `islicensed` are read. Access modes 1
//!   (Administrative), 3 (Support User) and 4 (Non-interactive) need no licence; a person
//!   (Read-Write) needs one assigned in Microsoft 365, which Dataverse records in `islicensed`.

use serde_json::{Value, json};

use super::wire::WireUser;
use super::{Effect, State, UserEntry, key};
use crate::model::{Licensing, LiveLicence, LiveServiceAccount, LiveTarget, digest};
use crate::plan::Principal;
use crate::provider::ApplyError;

/// The name of a `systemuser.accessmode` value.
pub fn access_mode_name(mode: i64) -> &'static str {
    match mode {
        0 => "Read-Write",
        1 => "Administrative",
        2 => "Read",
        3 => "Support User",
        4 => "Non-interactive",
        5 => "Delegated Admin",
        _ => "unknown",
    }
}

/// Whether an account of this access mode uses Dataverse without a licence: Administrative,
/// Support User and Non-interactive (application users) [UNVERIFIED: from the access modes'
/// descriptions; docs/reference/dataverse.md §6].
fn exempt(mode: i64) -> bool {
    matches!(mode, 1 | 3 | 4)
}

/// What the plan notes on creating an account here.
pub fn licensing() -> Licensing {
    Licensing {
        new_person: Some(
            "licence: a person uses Dataverse with access mode Read-Write, which needs a licence assigned in Microsoft 365 (Dataverse records it in `islicensed`); keyward assigns no licences".into(),
        ),
        new_service_account: Some(
            "licence: an application user has access mode Non-interactive and needs no licence".into(),
        ),
        roles: Default::default(),
    }
}

/// Records the licence columns of a user read, where Dataverse reported them.
pub(super) fn record_licence(live: &mut LiveTarget, u: &WireUser) {
    if let (Some(mode), Some(licensed)) = (u.access_mode, u.licensed) {
        live.licences.insert(
            u.id.clone(),
            LiveLicence { access_mode: access_mode_name(mode).to_string(), exempt: exempt(mode), licensed },
        );
    }
}

/// Adds an application user to the live state and to what apply knows.
pub(super) fn read_app_user(state: &mut State, live: &mut LiveTarget, u: &WireUser) {
    let Some(app) = &u.application_id else { return };
    state
        .app_users
        .insert(key(app), UserEntry { id: u.id.clone(), business_unit: u.business_unit.clone(), etag: u.etag.clone() });
    record_licence(live, u);
    let fingerprint = match &u.etag {
        Some(t) => format!("etag:{t}"),
        None => digest(&(&u.id, app, u.disabled, &u.business_unit)),
    };
    live.service_accounts.push(LiveServiceAccount {
        id: u.id.clone(),
        name: app.clone(),
        display_name: None,
        description: None,
        owner: None,
        credentials: Vec::new(),
        fingerprint,
        application_id: Some(app.clone()),
        active: Some(!u.disabled),
    });
}

/// The systemuser a principal names: a person by `domainname`, an application user by client id.
pub(super) fn principal<'s>(state: &'s State, p: &'s Principal) -> Result<(&'s str, &'s UserEntry), ApplyError> {
    let (name, found) = match p {
        Principal::User(u) => (u.as_str(), state.users.get(&key(u))),
        Principal::ServiceAccount(a) => (a.as_str(), state.app_users.get(&key(a))),
    };
    let what = if matches!(p, Principal::User(_)) { "user" } else { "application user" };
    found.map(|u| (name, u)).ok_or_else(|| ApplyError::conflict(format!("{what} {name} does not exist on the target")))
}

/// The `POST systemusers` that creates the application user of `application_id` in
/// `business_unit` (by name; the root unit when `None`).
pub(super) fn create(
    state: &State,
    application_id: &str,
    business_unit: Option<&str>,
) -> Result<(Value, Effect), ApplyError> {
    if state.app_users.contains_key(&key(application_id)) {
        return Err(ApplyError::conflict(format!(
            "an application user for {application_id} was created since the plan; plan again"
        )));
    }
    let unit = match business_unit {
        Some(name) => state
            .business_units
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(id, _)| id.clone())
            .ok_or_else(|| ApplyError::conflict(format!("business unit `{name}` does not exist (any more)")))?,
        None => state
            .root_unit
            .clone()
            .ok_or_else(|| ApplyError::new("the environment has no root business unit to create users in"))?,
    };
    let body = json!({
        "applicationid": application_id,
        "businessunitid@odata.bind": format!("/businessunits({unit})"),
    });
    Ok((body, Effect::AppUserCreated { application_id: key(application_id), unit }))
}

/// Records a created application user, so the roles of the same apply can be given to it.
pub(super) fn created(state: &mut State, id: String, application_id: &str, unit: &str) {
    state.app_users.insert(key(application_id), UserEntry { id, business_unit: Some(unit.to_string()), etag: None });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_that_need_no_licence() {
        assert_eq!(access_mode_name(4), "Non-interactive");
        assert!(exempt(4) && exempt(1) && exempt(3));
        assert!(!exempt(0) && !exempt(2) && !exempt(5));
        let mut live = LiveTarget::default();
        let user = WireUser::parse(&json!({"systemuserid": "aaaaaaaa-0000-0000-0000-000000000001",
            "accessmode": 0, "islicensed": false}))
        .unwrap();
        record_licence(&mut live, &user);
        let rec = &live.licences["aaaaaaaa-0000-0000-0000-000000000001"];
        assert_eq!((rec.access_mode.as_str(), rec.exempt, rec.licensed), ("Read-Write", false, false));
    }
}
