//! Business units: where a target places its accounts (Dataverse). A user's unit comes from
//! their `targets: {TARGET: {businessUnit: NAME}}`, else the target's `businessUnit`; without
//! either, keyward leaves the user where they are.
//!
//! A move removes the user's security roles on the target (each unit has its own copy of a
//! role, and a user holds only their unit's copies). So a move is planned with its
//! re-assignments as one ordered group: the move (an update, applied first), then an assignment
//! of each security role the user should hold, as the new unit's copies (applied after every
//! update). Roles the user holds and should not are removed by the move itself, so no revoke is
//! planned for them; the move's notes list both.
//!
//! A security role the unit a user or application user ends up in has no copy of cannot be
//! given there: that is a plan error naming the account, the unit and the role
//! ([`PlanError::OutOfReach`]), never a failure at apply.

use super::*;

impl<'a> TargetPlanner<'a> {
    /// The business unit the configuration puts `user` in on this target, if any.
    fn wanted_unit(&self, user: &'a User) -> Option<&'a str> {
        if !self.caps.business_units {
            return None;
        }
        user.business_unit(&self.target.name).or(self.target.default_business_unit())
    }

    /// Users who move to another unit, by lower-cased userName, with the unit (as the target
    /// names it); and an error for each unit the target does not have.
    pub(super) fn find_moves(&self) -> (FxHashMap<&'a str, &'a str>, Vec<PlanError>) {
        let mut moves = FxHashMap::default();
        let mut errors = Vec::new();
        let Some(units) = &self.live.business_units else { return (moves, errors) };
        for (key, (name, user)) in &self.present_users {
            let Some(want) = self.wanted_unit(user) else { continue };
            let Some(unit) = units.find(want) else {
                errors.push(PlanError::UnknownBusinessUnit {
                    target: self.target.name.clone(),
                    user: name.to_string(),
                    unit: want.to_string(),
                });
                continue;
            };
            // A new account is created in the root unit.
            let have = match self.by_user_name.get(key) {
                Some(live) => units.of_account.get(&live.id).map(String::as_str),
                None => Some(units.root.as_str()),
            };
            if have != Some(unit) {
                moves.insert(*key, unit);
            }
        }
        (moves, errors)
    }

    /// The unit `principal` moves to in this plan, if it moves.
    pub(super) fn moving_to(&self, principal: Key) -> Option<&'a str> {
        match principal {
            Key::User(k) => self.moves.get(k).copied(),
            Key::ServiceAccount(k) => self.sa_moves.get(k).copied(),
        }
    }

    /// The unit application user `key` (service account `name`) is in once this plan's move
    /// (to `moves_to`) or creation is applied, where the target has units.
    pub(super) fn app_user_unit(&self, key: &str, name: &str, moves_to: Option<&'a str>) -> Option<&'a str> {
        let units = self.live.business_units.as_ref()?;
        if let Some(unit) = moves_to {
            return Some(unit);
        }
        if let Some(live) = self.sa_by_name.get(key) {
            return Some(units.of_account.get(&live.id).map_or(units.root.as_str(), String::as_str));
        }
        // Created in its unit (an unknown one is an error of its own), else in the root.
        let sa = self.present_sas.get(name)?;
        match self.wanted_sa_unit(sa) {
            Some(want) => units.find(want),
            None => Some(units.root.as_str()),
        }
    }

    /// Whether a move takes `binding` from its holders: security roles exist per unit.
    pub(super) fn lost_in_move(&self, binding: &Binding) -> bool {
        self.caps.business_units && binding.kind() == BindingKind::SecurityRole
    }

    /// The moves, with notes of the roles they remove and those given back after them.
    pub(super) fn moves(&self, out: &mut Vec<Change>) {
        let Some(units) = &self.live.business_units else { return };
        for (key, unit) in &self.moves {
            let (name, user) = self.present_users[key];
            let live = self.by_user_name.get(key);
            let from = live.and_then(|l| units.of_account.get(&l.id)).map_or(units.root.as_str(), String::as_str);
            let mut held: Vec<String> = live
                .map(|l| {
                    self.live
                        .bindings
                        .iter()
                        .filter(|b| self.lost_in_move(&b.binding) && b.members.contains(&l.id))
                        .map(|b| b.binding.object_name())
                        .collect()
                })
                .unwrap_or_default();
            held.sort();
            let mut given: Vec<String> = self
                .desired
                .roles
                .iter()
                .filter(|(r, _)| {
                    self.grants_by_role.get(r).is_some_and(|gs| {
                        gs.iter().any(|g| {
                            g.principal == Key::User(key)
                                && !g.eligible
                                && g.expires.is_none_or(|d| !d.has_passed(self.input.now))
                        })
                    })
                })
                .filter_map(|(_, role)| role.bindings.get(&self.target.name))
                .filter(|b| self.lost_in_move(b))
                .map(|b| b.object_name())
                .collect();
            given.sort();
            given.dedup();
            let list = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
                }
            };
            let mut notes = vec![format!(
                "moving a user removes their security roles here (held now: {}); keyward gives back {} as the copies in `{unit}`, right after the move",
                list(&held),
                list(&given)
            )];
            if live.is_none() {
                notes.push(format!("the account is created in the root business unit `{from}` first"));
            }
            let mut change = Change::new(
                self.addr(ObjectKind::User, name.as_str()),
                Action::Update,
                Reason::of(
                    ReasonKind::Config,
                    Why::BusinessUnitDiffers { from: from.to_string(), to: unit.to_string() },
                ),
                Operation::MoveUser { user_name: user.user_name.clone(), business_unit: unit.to_string() },
            )
            .before([("businessUnit".to_string(), json!(from))].into())
            .after([("businessUnit".to_string(), json!(unit))].into())
            .subject(name.to_string())
            .notes(notes);
            if let Some(l) = live {
                change = change.fingerprint(l.fingerprint.clone());
            }
            out.push(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::model::{BusinessUnits, LiveAccount, LiveBinding, LiveServiceAccount, UserAttrs};

    const APP: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const SETTINGS: &str = "version: 1
targets:
  d365: {provider: dataverse, url: https://x.crm.dynamics.com, tenant: 456e4037-8afc-4f71-ae73-f9e51f634295, clientId: 55b1a2c7-9c3a-4911-a9b3-2555f9df8578, clientSecret: '${env:S}'}
";

    fn desired(unit: &str) -> DesiredState {
        let resources = format!(
            "kind: Role
name: clerk
bindings: {{d365: {{securityRole: Clerk}}}}
---
kind: User
name: ann
userName: ann@example.com
givenName: Ann
familyName: Lee
email: ann@example.com
roles: [clerk]
targets: {{d365: {{businessUnit: {unit}}}}}
---
kind: ServiceAccount
name: sync
owner: ann
displayName: Sync
targets: {{d365: {{applicationId: {APP}, businessUnit: {unit}}}}}
roles: [clerk]
"
        );
        let files = vec![
            (PathBuf::from("keyward.yaml"), SETTINGS.as_bytes().to_vec()),
            (PathBuf::from("resources.yaml"), resources.into_bytes()),
        ];
        let loaded = crate::load::load_files(Path::new("/c"), files).unwrap();
        let v = crate::validate::validate(&loaded);
        assert!(!v.has_errors(), "{:?}", v.diagnostics);
        v.state.unwrap()
    }

    /// Units `Root` (holding `Clerk`) and `Outlet` (no copy of it); `ann` and the application
    /// user in the root unit when `live_accounts`.
    fn live(live_accounts: bool) -> LiveTarget {
        let mut of_account = BTreeMap::new();
        let mut live = LiveTarget {
            bindings: vec![LiveBinding {
                id: "role-clerk".into(),
                binding: Binding::SecurityRole("Clerk".into()),
                members: Vec::new(),
                fingerprint: "r".into(),
            }],
            ..Default::default()
        };
        if live_accounts {
            live.accounts.push(LiveAccount {
                id: "u-ann".into(),
                user_name: "ann@example.com".into(),
                attrs: UserAttrs {
                    given_name: Some("Ann".into()),
                    family_name: Some("Lee".into()),
                    email: Some("ann@example.com".into()),
                    ..Default::default()
                },
                active: true,
                last_sign_in: None,
                registered_methods: None,
                fingerprint: "a".into(),
            });
            live.service_accounts.push(LiveServiceAccount {
                id: "u-sync".into(),
                name: APP.into(),
                display_name: Some("Sync".into()),
                description: None,
                owner: None,
                credentials: Vec::new(),
                fingerprint: "s".into(),
                application_id: Some(APP.into()),
                active: Some(true),
            });
            live.bindings[0].members = vec!["u-ann".into(), "u-sync".into()];
            of_account.insert("u-ann".to_string(), "Root".to_string());
            of_account.insert("u-sync".to_string(), "Root".to_string());
        }
        live.business_units = Some(BusinessUnits {
            root: "Root".into(),
            roles: [("Root".to_string(), vec!["Clerk".to_string()]), ("Outlet".to_string(), Vec::new())].into(),
            of_account,
        });
        live
    }

    fn plan(desired: &DesiredState, live: LiveTarget) -> Result<Vec<Change>, Vec<PlanError>> {
        let name = Name::new("d365").unwrap();
        let live = [(name.clone(), live)].into();
        let caps = [(name, crate::model::capabilities(crate::model::ProviderKind::Dataverse))].into();
        plan_changes(&PlanInput {
            desired,
            live: &live,
            capabilities: &caps,
            now: chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().to_utc(),
            baseline: None,
            undelivered: &[],
            previous: None,
        })
    }

    fn out_of_reach(user: &str) -> PlanError {
        PlanError::OutOfReach {
            target: Name::new("d365").unwrap(),
            what: "role `clerk`".into(),
            user: user.into(),
            binding: "securityRole Clerk".into(),
            scope: "business unit `Outlet`".into(),
        }
    }

    #[test]
    fn a_unit_without_a_copy_of_a_role_is_a_plan_error_for_users_and_application_users() {
        // Moved there: both lose the role and cannot get it back.
        let errors = plan(&desired("Outlet"), live(true)).unwrap_err();
        assert_eq!(errors, vec![out_of_reach("ann@example.com"), out_of_reach("sync")]);
        let message = errors[1].to_string();
        assert!(
            message.contains("`sync`") && message.contains("`Outlet`") && message.contains("securityRole Clerk"),
            "{message}"
        );
        // Created there (the application user in its unit; the user in the root, then moved).
        let errors = plan(&desired("Outlet"), live(false)).unwrap_err();
        assert_eq!(errors, vec![out_of_reach("ann@example.com"), out_of_reach("sync")]);
        // Where the unit has the copy, nothing is in the way.
        plan(&desired("Root"), live(true)).unwrap();
        plan(&desired("Root"), live(false)).unwrap();
    }
}
