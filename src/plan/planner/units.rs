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
