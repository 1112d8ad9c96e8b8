//! Writes: the changes of an apply prepared into `$batch` operations, sent in at most two
//! rounds, and what each success means for the provider's knowledge of the environment.

use super::ApplyError;
use crate::model::{Binding, UserAttrs};
use crate::plan::{Change, Operation};
use crate::provider::odata::{BatchOp, ODataError, Reply};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;

use super::*;

/// What a write's success means for keyward's knowledge of the environment.
#[derive(Debug, Clone)]
pub(super) enum Effect {
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

pub(super) struct Pending {
    pub(super) op: BatchOp,
    pub(super) changes: Vec<usize>,
    pub(super) effect: Effect,
}

impl DataverseProvider {
    pub(super) async fn run(&self, state: &mut State, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
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

    pub(super) fn op(&self, method: Method, path: &str, body: Option<Value>, if_match: Option<String>) -> BatchOp {
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
        let what = || format!("{} {}", p.op.method, crate::provider::odata::display_url(&p.op.url));
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
