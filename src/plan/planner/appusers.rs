//! Application users: service accounts a target knows by their Entra application's client id
//! (`targets: {T: {applicationId}}`, or, left out, its app registration's on a Graph target: see
//! `appids`), a Dataverse application user or the Finance & Operations user the application is
//! mapped to. Their key on such a target is the client id.
//!
//! A present one is created (in its business unit, where the target has units), enabled when
//! disabled, and moved when in another unit (its security roles given back after the move, as a
//! user's). One the configuration, its baseline or its previous revision declared for this
//! target that git no longer puts here is disabled (these targets never delete users); its
//! roles are revoked like any known account's. Application users keyward never knew are left
//! alone.
//!
//! Licences: where the target reports them ([`crate::model::Licensing`]), creating or enabling
//! an account carries a note on what it means for licences.

use super::*;

impl<'a> TargetPlanner<'a> {
    fn key_of(&self, name: &'a str, sa: &'a ServiceAccount) -> &'a str {
        sa_key(self.app_ids, self.caps, &self.target.name, name, sa)
    }

    /// The business unit the configuration puts application user `sa` in here, if any.
    pub(super) fn wanted_sa_unit(&self, sa: &'a ServiceAccount) -> Option<&'a str> {
        if !self.caps.business_units {
            return None;
        }
        sa.target_settings(&self.target.name)
            .and_then(|s| s.business_unit.as_deref())
            .or(self.target.default_business_unit())
    }

    /// Application users that move to another unit, by key, with the unit (as the target
    /// names it); and an error for each unit the target does not have.
    pub(super) fn find_app_user_moves(&self) -> (FxHashMap<&'a str, &'a str>, Vec<PlanError>) {
        let mut moves = FxHashMap::default();
        let mut errors = Vec::new();
        let Some(units) = self.live.business_units.as_ref().filter(|_| self.caps.application_users) else {
            return (moves, errors);
        };
        for (name, sa) in &self.present_sas {
            let Some(want) = self.wanted_sa_unit(sa) else { continue };
            let Some(unit) = units.find(want) else {
                errors.push(PlanError::UnknownBusinessUnit {
                    target: self.target.name.clone(),
                    user: name.to_string(),
                    unit: want.to_string(),
                });
                continue;
            };
            // A new application user is created in its unit.
            let key = self.key_of(name, sa);
            if let Some(live) = self.sa_by_name.get(key)
                && units.of_account.get(&live.id).map(String::as_str) != Some(unit)
            {
                moves.insert(key, unit);
            }
        }
        (moves, errors)
    }

    /// Creates, enables and moves the application user of `sa`.
    pub(super) fn app_user(&self, name: &'a str, sa: &'a ServiceAccount, out: &mut Vec<Change>) {
        let key = self.key_of(name, sa);
        let principal = Key::ServiceAccount(key);
        let Some(live) = self.sa_by_name.get(key) else {
            let unit = self.wanted_sa_unit(sa).map(|u| {
                self.live.business_units.as_ref().and_then(|b| b.find(u)).map_or(u.to_string(), str::to_string)
            });
            let mut after = Values::new();
            after.insert("applicationId".into(), json!(key));
            let mut notes = self.licence_notes(principal, None);
            if let Some(appids::Source::Registered { graph, .. }) = self.app_ids.source(&self.target.name, name) {
                notes.insert(0, format!("applicationId: the client id of its app registration on `{graph}`"));
            }
            if let Some(u) = &unit {
                after.insert("businessUnit".into(), json!(u));
            }
            out.push(
                Change::new(
                    self.addr(ObjectKind::ServiceAccount, name),
                    Action::Create,
                    Reason::of(ReasonKind::Config, Why::ServiceAccountNotOnTarget),
                    Operation::CreateServiceAccount {
                        name: key.to_string(),
                        display_name: sa.display_name.clone(),
                        description: sa.description.clone(),
                        owner: None,
                        application_id: Some(key.to_string()),
                        business_unit: unit,
                    },
                )
                .after(after)
                .subject(name.to_string())
                .notes(notes),
            );
            return;
        };
        if live.active == Some(false) {
            out.push(
                Change::new(
                    self.addr(ObjectKind::ServiceAccount, name),
                    Action::Enable,
                    Reason::of(ReasonKind::Config, Why::ServiceAccountDisabled),
                    Operation::SetServiceAccountActive { name: key.to_string(), active: true },
                )
                .before([("active".to_string(), json!(false))].into())
                .after([("active".to_string(), json!(true))].into())
                .fingerprint(live.fingerprint.clone())
                .subject(name.to_string())
                .notes(self.licence_notes(principal, Some(&live.id))),
            );
        }
        if let Some(unit) = self.sa_moves.get(key)
            && let Some(units) = &self.live.business_units
        {
            let from = units.of_account.get(&live.id).map_or(units.root.as_str(), String::as_str);
            out.push(
                Change::new(
                    self.addr(ObjectKind::ServiceAccount, name),
                    Action::Update,
                    Reason::of(
                        ReasonKind::Config,
                        Why::BusinessUnitDiffers { from: from.to_string(), to: unit.to_string() },
                    ),
                    Operation::MoveUser { user_name: key.to_string(), business_unit: unit.to_string() },
                )
                .before([("businessUnit".to_string(), json!(from))].into())
                .after([("businessUnit".to_string(), json!(unit))].into())
                .fingerprint(live.fingerprint.clone())
                .subject(name.to_string())
                .note(format!(
                    "moving an application user removes its security roles here; keyward gives its roles back as the copies in `{unit}`, right after the move"
                )),
            );
        }
    }

    /// Disables the application users keyward managed that git no longer puts here.
    pub(super) fn retired_app_users(&self, out: &mut Vec<Change>) {
        if !self.caps.application_users {
            return;
        }
        let present: HashSet<&str> = self.present_sas.iter().map(|(n, sa)| self.key_of(n, sa)).collect();
        for live in &self.live.service_accounts {
            if live.application_id.is_none() || present.contains(live.name.as_str()) || live.active == Some(false) {
                continue;
            }
            // Application users keyward never knew are left alone.
            let Some(git) = self.sa_names.get(live.name.as_str()) else { continue };
            let in_git = self.desired.service_accounts.keys().any(|n| n.as_str() == *git);
            let mut notes = Vec::new();
            if self.desired.settings.removed_users == RemovedUsers::Delete && !self.caps.delete_users {
                notes.push("this target never deletes users, so the application user is disabled instead".to_string());
            }
            out.push(
                Change::new(
                    self.addr(ObjectKind::ServiceAccount, *git),
                    Action::Disable,
                    Reason::of(ReasonKind::Config, Why::ServiceAccountRemoved { in_git }),
                    Operation::SetServiceAccountActive { name: live.name.clone(), active: false },
                )
                .before([("active".to_string(), json!(true))].into())
                .after([("active".to_string(), json!(false))].into())
                .fingerprint(live.fingerprint.clone())
                .subject(git.to_string())
                .notes(notes),
            );
        }
    }

    /// What creating (`account` `None`) or enabling the account of `principal` means for
    /// licences here, as plan notes, where the target reports licences.
    pub(super) fn licence_notes(&self, principal: Key<'a>, account: Option<&str>) -> Vec<String> {
        let Some(l) = &self.live.licensing else { return Vec::new() };
        let mut notes = Vec::new();
        match account {
            None => notes.extend(match principal {
                Key::User(_) => l.new_person.clone(),
                Key::ServiceAccount(_) => l.new_service_account.clone(),
            }),
            Some(id) => {
                if let Some(rec) = self.live.licences.get(id).filter(|r| !r.exempt && !r.licensed) {
                    notes.push(format!(
                        "licence: the target records no licence for this account (access mode {}): it gains no access until one is assigned",
                        rec.access_mode
                    ));
                }
            }
        }
        if !l.roles.is_empty() {
            let now = self.input.now;
            let mut need: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (role_name, role) in &self.desired.roles {
                let Some(binding) = role.bindings.get(&self.target.name) else { continue };
                let holds = self.grants_by_role.get(role_name).is_some_and(|gs| {
                    gs.iter().any(|g| {
                        g.principal == principal && !g.eligible && g.expires.is_none_or(|d| !d.has_passed(now))
                    })
                });
                let object = binding.object_name();
                let licence = l.roles.iter().find(|(r, _)| r.eq_ignore_ascii_case(&object)).map(|(_, v)| v.as_str());
                if holds && let Some(licence) = licence {
                    need.entry(licence).or_default().push(format!("`{object}`"));
                }
            }
            if !need.is_empty() {
                let list: Vec<String> =
                    need.iter().map(|(lic, roles)| format!("`{lic}` (for {})", roles.join(", "))).collect();
                notes.push(format!("licence: the roles given here need user licence {}", list.join(", ")));
            }
        }
        notes
    }
}
