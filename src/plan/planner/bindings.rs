//! Bindings (groups, roles, field security profiles) and their members: create, update,
//! assign, revoke.

use super::*;

impl<'a> TargetPlanner<'a> {
    /// Finds the live object a binding names: by kind and case-insensitive name.
    fn find_binding(&self, binding: &Binding) -> Result<Option<&'a LiveBinding>, PlanError> {
        let found = self.live_bindings.get(&(binding.kind(), lower(&binding.object_name())));
        match found.map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(*one)),
            Some(many) => Err(PlanError::AmbiguousBinding {
                target: self.target.name.clone(),
                binding: binding.label(),
                count: many.len(),
            }),
        }
    }

    /// What decides the members of `binding`, when keyward cannot add or remove them.
    fn members_decided(&self, binding: &Binding) -> Option<&'a MembersDecided> {
        self.decided.get(&(binding.kind(), lower(&binding.object_name()))).copied()
    }

    pub(super) fn bindings(&self, out: &mut Vec<Change>) -> Result<(), Vec<PlanError>> {
        let mut errors = self.unit_errors.clone();
        self.moves(out);
        for (role_name, role) in &self.desired.roles {
            let Some(binding) = role.bindings.get(&self.target.name) else { continue };
            if let Binding::GroupTeam(team) = binding {
                self.group_team(role_name, team, out, &mut errors);
                continue;
            }
            self.binding(Grantor::Role(role_name), binding, &[role_name], out, &mut errors);
        }
        let mut bound_now: HashSet<(BindingKind, String)> =
            self.delegated_groups(out, &mut errors).into_iter().collect();
        for role in self.desired.roles.values() {
            if let Some(b) = role.bindings.get(&self.target.name) {
                bound_now.insert((b.kind(), lower(&b.object_name())));
            }
        }
        if self.caps.binding(BindingKind::FieldSecurityProfile) != BindingSupport::Unsupported {
            for d in derived::field_profiles(self.desired, &self.target.name) {
                bound_now.insert((d.binding.kind(), lower(&d.binding.object_name())));
                self.binding(Grantor::Data(d.classification), &d.binding, &d.readers, out, &mut errors);
            }
        }
        if let Some(previous) = self.input.previous {
            let mut released = HashSet::new();
            for (role_name, old) in self.previously_bound(previous) {
                let key = (old.kind(), lower(&old.object_name()));
                if bound_now.contains(&key) || !released.insert(key) {
                    continue;
                }
                // Gone already, or ambiguous (then nothing is touched), or its members are not
                // keyward's to change: nothing is left behind.
                if let Ok(Some(lb)) = self.find_binding(&old)
                    && self.members_decided(&lb.binding).is_none()
                {
                    self.release(role_name, &old, lb, out);
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Revokes `lb`, which role `role` bound in the previous configuration and nothing binds
    /// now, from every member keyward manages; members it does not manage (outside
    /// `ownership.scope`, protected, service accounts it does not know) keep it, and each
    /// revoke's notes name them, so the object is handed back with its remaining members listed.
    fn release(&self, role: &Name, old: &Binding, lb: &'a LiveBinding, out: &mut Vec<Change>) {
        let mut revoke: Vec<(String, Principal, &'a str)> = Vec::new();
        let mut kept: Vec<&'a str> = Vec::new();
        for id in &lb.members {
            if let Some((acc, key)) = self.by_id.get(id.as_str()) {
                if self.managed(&acc.user_name) {
                    let subject = self.in_git.get(key).map_or(acc.user_name.as_str(), |n| n.as_str());
                    revoke.push((subject.to_string(), Principal::User(acc.user_name.clone()), key));
                } else {
                    kept.push(&acc.user_name);
                }
            } else if let Some(sa) = self.sa_by_id.get(id.as_str()) {
                if let Some(git) = self.sa_names.get(sa.name.as_str()) {
                    revoke.push((git.to_string(), Principal::ServiceAccount(sa.name.clone()), &sa.name));
                } else {
                    kept.push(&sa.name);
                }
            }
        }
        kept.sort_unstable();
        let note = (!kept.is_empty()).then(|| {
            format!(
                "{} is handed back with {} member(s) keyward does not manage: {}",
                old.label(),
                kept.len(),
                kept.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            )
        });
        for (subject, principal, key) in revoke {
            let mut before = Values::new();
            before.insert("role".into(), json!(role));
            before.insert("binding".into(), json!(old.label()));
            out.push(
                Change::new(
                    self.addr(ObjectKind::Assignment, format!("{subject}/{role}")),
                    Action::Revoke,
                    Reason::of(
                        ReasonKind::Config,
                        Why::BindingReleased { role: role.to_string(), binding: old.label() },
                    ),
                    Operation::Revoke { principal, binding: old.clone() },
                )
                .before(before)
                .fingerprint(fingerprint_of(Some(lb), key, true))
                .subject(subject)
                .notes(note.clone()),
            );
        }
    }

    /// Plans one binding: creates or updates the bound object where it may, and brings its
    /// members to the holders of `holder_roles` present on this target.
    pub(super) fn binding(
        &self,
        grantor: Grantor<'a>,
        binding: &Binding,
        holder_roles: &[&'a Name],
        out: &mut Vec<Change>,
        errors: &mut Vec<PlanError>,
    ) {
        let now = self.input.now;
        let live_binding = match self.find_binding(binding) {
            Ok(b) => b,
            Err(e) => {
                errors.push(e);
                return;
            }
        };
        match live_binding {
            None => match self.caps.binding(binding.kind()) {
                BindingSupport::Creatable => out.push(
                    Change::new(
                        self.addr(grantor.object_kind(), grantor.name().as_str()),
                        Action::Create,
                        Reason::of(
                            ReasonKind::Config,
                            Why::BindingMissing { granting: grantor.granting(), binding: binding.label() },
                        ),
                        Operation::CreateBinding { binding: binding.clone() },
                    )
                    .after(binding_values(binding)),
                ),
                _ => {
                    errors.push(PlanError::MissingBinding {
                        target: self.target.name.clone(),
                        role: grantor.name().clone(),
                        binding: binding.label(),
                        kind: binding.kind().to_string(),
                    });
                    return;
                }
            },
            Some(lb) if !binding.satisfied_by(&lb.binding) => out.push(
                Change::new(
                    self.addr(grantor.object_kind(), grantor.name().as_str()),
                    Action::Update,
                    Reason::of(ReasonKind::Config, Why::BindingSettings { binding: binding.label() }),
                    Operation::UpdateBinding { binding: binding.clone() },
                )
                .before(binding_values(&lb.binding))
                .after(binding_values(binding))
                .fingerprint(lb.fingerprint.clone()),
            ),
            Some(_) => {}
        }
        if let Some(d) = live_binding.and_then(|lb| self.members_decided(&lb.binding)) {
            errors.push(PlanError::MembersDecided {
                target: self.target.name.clone(),
                role: grantor.name().clone(),
                binding: binding.label(),
                by: d.by.clone(),
            });
            return;
        }
        // Who should hold it, by principal. Several holder roles may grant it: it is held
        // while any of them is (the longest expiry wins; none means none).
        let mut wanted: BTreeMap<Key<'a>, (&'a str, Option<crate::model::Expiry>)> = BTreeMap::new();
        let mut expired: BTreeMap<Key<'a>, (&'a str, crate::model::Expiry)> = BTreeMap::new();
        for role_name in holder_roles {
            for grant in self.grants_by_role.get(*role_name).into_iter().flatten().filter(|g| !g.eligible) {
                match grant.expires {
                    Some(d) if d.has_passed(now) => {
                        expired.insert(grant.principal, (grant.subject, d));
                    }
                    e => {
                        let slot = wanted.entry(grant.principal).or_insert((grant.subject, e));
                        slot.1 = match (slot.1, e) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            _ => None,
                        };
                    }
                }
            }
        }
        expired.retain(|p, _| !wanted.contains_key(p));
        // Who holds it now, with the name the target knows them by.
        let mut held: BTreeMap<Key<'a>, &'a str> = BTreeMap::new();
        if let Some(lb) = live_binding {
            for id in &lb.members {
                if let Some((acc, key)) = self.by_id.get(id.as_str()) {
                    held.insert(Key::User(key), &acc.user_name);
                } else if let Some(sa) = self.sa_by_id.get(id.as_str()) {
                    held.insert(Key::ServiceAccount(&sa.name), &sa.name);
                }
            }
        }
        // Users who move to another business unit lose it with the move: given again after it.
        let rehomed = |key: &Key<'a>| self.moving_to(*key).filter(|_| self.lost_in_move(binding));
        for (key, (subject, expires)) in &wanted {
            let moves_to = rehomed(key);
            if held.contains_key(key) && moves_to.is_none() {
                continue;
            }
            let real = match key {
                Key::User(k) => {
                    let user_name = &self.present_users[k].1.user_name;
                    let account = self.by_user_name.get(k).map(|a| a.id.as_str());
                    let missing = match moves_to {
                        Some(unit) => self
                            .live
                            .business_units
                            .as_ref()
                            .filter(|u| !u.has_copy(unit, &binding.object_name()))
                            .map(|_| format!("business unit `{unit}`")),
                        None => self.out_of_reach(binding, account).map(str::to_string),
                    };
                    if let Some(scope) = missing {
                        errors.push(PlanError::OutOfReach {
                            target: self.target.name.clone(),
                            what: grantor.describe(),
                            user: user_name.clone(),
                            binding: binding.label(),
                            scope,
                        });
                        continue;
                    }
                    Principal::User(user_name.clone())
                }
                Key::ServiceAccount(n) => {
                    // An application user holds only the copies of its unit's roles: the unit
                    // it moves to, is created in, or is in.
                    if let Some(unit) = self.app_user_unit(n, subject, moves_to)
                        && self.lost_in_move(binding)
                        && self.live.business_units.as_ref().is_some_and(|u| !u.has_copy(unit, &binding.object_name()))
                    {
                        errors.push(PlanError::OutOfReach {
                            target: self.target.name.clone(),
                            what: grantor.describe(),
                            user: subject.to_string(),
                            binding: binding.label(),
                            scope: format!("business unit `{unit}`"),
                        });
                        continue;
                    }
                    Principal::ServiceAccount(n.to_string())
                }
            };
            let mut after = grantor.values(binding);
            if let Some(e) = expires {
                after.insert("expires".into(), json!(e.to_string()));
            }
            let same_base = self.in_baseline_any(*key, subject, holder_roles);
            out.push(
                Change::new(
                    self.addr(grantor.member_kind(), format!("{subject}/{}", grantor.name())),
                    Action::Assign,
                    Reason::of(self.kind_for(same_base), {
                        let (granting, subject) = (grantor.granting(), subject.to_string());
                        if same_base {
                            Why::LostOutside { granting, subject }
                        } else {
                            Why::Given { granting, subject }
                        }
                    }),
                    Operation::Assign { principal: real, binding: binding.clone() },
                )
                .after(after)
                .fingerprint(fingerprint_of(live_binding, key.as_str(), held.contains_key(key)))
                .subject(subject.to_string())
                .notes(moves_to.map(|unit| {
                    format!("given again as the copy in business unit `{unit}`, after the move that removes it")
                })),
            );
        }
        for (key, live_key) in &held {
            // Held and not wanted: kept, or removed by the user's move (its notes say so).
            if wanted.contains_key(key) || rehomed(key).is_some() {
                continue;
            }
            let (address_name, subject, reason) = match key {
                Key::User(k) => {
                    if !self.managed(live_key) {
                        continue;
                    }
                    match (expired.get(key), self.in_git.get(k)) {
                        (Some((name, date)), _) => (
                            name.to_string(),
                            Some(name.to_string()),
                            Reason::of(ReasonKind::Expiry, Why::AssignmentExpired { date: *date }),
                        ),
                        (None, Some(name)) => {
                            let base_has = self.in_baseline_any(*key, name.as_str(), holder_roles);
                            let kind = if self.input.baseline.is_some() && !base_has {
                                ReasonKind::Drift
                            } else {
                                ReasonKind::Config
                            };
                            let (granting, subject) = (grantor.granting(), name.to_string());
                            let why = if kind == ReasonKind::Drift {
                                Why::GivenOutside { granting, subject }
                            } else {
                                Why::NotGiven { granting, subject }
                            };
                            (name.to_string(), Some(name.to_string()), Reason::of(kind, why))
                        }
                        (None, None) => (
                            live_key.to_string(),
                            None,
                            Reason::of(ReasonKind::Config, Why::NotInConfiguration { account: live_key.to_string() }),
                        ),
                    }
                }
                Key::ServiceAccount(key) => {
                    // Service accounts keyward does not know are left alone; elsewhere than on
                    // targets that know them by their application, so are those git dropped.
                    let Some(name) = self.sa_names.get(key) else { continue };
                    if !self.caps.application_users && !self.desired.service_accounts.keys().any(|n| n.as_str() == *key)
                    {
                        continue;
                    }
                    match expired.get(&Key::ServiceAccount(key)) {
                        Some((_, date)) => (
                            name.to_string(),
                            Some(name.to_string()),
                            Reason::of(ReasonKind::Expiry, Why::AssignmentExpired { date: *date }),
                        ),
                        None => (
                            name.to_string(),
                            Some(name.to_string()),
                            Reason::of(
                                ReasonKind::Config,
                                Why::NotGiven { granting: grantor.granting(), subject: name.to_string() },
                            ),
                        ),
                    }
                }
            };
            let real = match key {
                Key::User(_) => Principal::User(live_key.to_string()),
                Key::ServiceAccount(n) => Principal::ServiceAccount(n.to_string()),
            };
            out.push(
                Change::new(
                    self.addr(grantor.member_kind(), format!("{address_name}/{}", grantor.name())),
                    Action::Revoke,
                    reason,
                    Operation::Revoke { principal: real, binding: binding.clone() },
                )
                .before(grantor.values(binding))
                .fingerprint(fingerprint_of(live_binding, key.as_str(), true))
                .subject_opt(subject),
            );
        }
    }

    /// Where `binding` is missing for the account `account` (`None`: an account to create),
    /// as the target reported it.
    fn out_of_reach(&self, binding: &Binding, account: Option<&str>) -> Option<&'a str> {
        let key = (binding.kind(), lower(&binding.object_name()));
        self.live
            .out_of_reach
            .iter()
            .find(|o| o.account.as_deref() == account && (o.binding.kind(), lower(&o.binding.object_name())) == key)
            .map(|o| o.scope.as_str())
    }

    /// Whether the baseline gave this principal any of these roles (unexpired).
    fn in_baseline_any(&self, principal: Key, subject: &str, roles: &[&Name]) -> bool {
        roles.iter().any(|r| self.in_baseline(principal, subject, r))
    }
    /// Whether the baseline gave this principal this role (unexpired).
    fn in_baseline(&self, principal: Key, subject: &str, role: &Name) -> bool {
        let Some(b) = self.input.baseline else { return false };
        let now = self.input.now;
        let grants = match principal {
            Key::User(_) => Name::new(subject).ok().and_then(|n| b.users.get(&n)).map(|u| &u.roles),
            Key::ServiceAccount(_) => {
                Name::new(subject).ok().and_then(|n| b.service_accounts.get(&n)).map(|s| &s.roles)
            }
        };
        grants.is_some_and(|gs| active_grants(gs, now).any(|g| g.role() == role && !g.eligible()))
    }
}

pub(super) enum Grantor<'a> {
    Role(&'a Name),
    Data(&'a Name),
}

impl Grantor<'_> {
    fn name(&self) -> &Name {
        match self {
            Grantor::Role(n) | Grantor::Data(n) => n,
        }
    }

    /// The kind of the bound object's address.
    fn object_kind(&self) -> ObjectKind {
        match self {
            Grantor::Role(_) => ObjectKind::Role,
            Grantor::Data(_) => ObjectKind::FieldProfile,
        }
    }

    /// The kind of a membership's address.
    fn member_kind(&self) -> ObjectKind {
        match self {
            Grantor::Role(_) => ObjectKind::Assignment,
            Grantor::Data(_) => ObjectKind::FieldProfile,
        }
    }

    fn describe(&self) -> String {
        match self {
            Grantor::Role(r) => format!("role `{r}`"),
            Grantor::Data(d) => format!("read access to `{d}`"),
        }
    }

    fn values(&self, binding: &Binding) -> Values {
        let mut v = Values::new();
        match self {
            Grantor::Role(r) => v.insert("role".into(), json!(r)),
            Grantor::Data(d) => v.insert("dataClassification".into(), json!(d)),
        };
        v.insert("binding".into(), json!(binding.label()));
        v
    }

    /// What the binding grants, as reasons name it.
    fn granting(&self) -> Granting {
        match self {
            Grantor::Role(r) => Granting::Role(r.to_string()),
            Grantor::Data(d) => Granting::Data(d.to_string()),
        }
    }
}

/// The display values of a binding: its label, and for a field security profile its columns.
fn binding_values(binding: &Binding) -> Values {
    let mut v = Values::new();
    v.insert("binding".into(), json!(binding.label()));
    if let Binding::FieldSecurityProfile(p) = binding {
        v.insert("columns".into(), json!(p.columns));
    }
    v
}
