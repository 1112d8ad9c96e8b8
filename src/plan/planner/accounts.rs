//! People's accounts and service accounts: create, update, enable, disable, delete.

use super::*;

impl<'a> TargetPlanner<'a> {
    pub(super) fn accounts(&self, out: &mut Vec<Change>) {
        for (key, (name, user)) in &self.present_users {
            let active = user.status == UserStatus::Active;
            let baseline = self.baseline_user(name);
            match self.by_user_name.get(key) {
                None => {
                    let attrs = self.desired_attrs(user);
                    let mut after = attrs_values(&attrs);
                    after.insert("userName".into(), json!(user.user_name));
                    after.insert("active".into(), json!(active));
                    let was_present = baseline.is_some();
                    out.push(
                        Change::new(
                            self.addr(ObjectKind::User, name.as_str()),
                            Action::Create,
                            Reason::of(
                                self.kind_for(was_present),
                                if was_present { Why::AccountMissing } else { Why::UserNotOnTarget },
                            ),
                            Operation::CreateUser { user_name: user.user_name.clone(), attrs, active },
                        )
                        .after(after)
                        .subject(name.to_string())
                        .notes(self.manager_off_target(user))
                        .notes(if active {
                            self.licence_notes(Key::User(key), None)
                        } else {
                            Vec::new()
                        }),
                    );
                }
                Some(live) => {
                    let mut set = UserAttrs::default();
                    let (mut before, mut after) = (Values::new(), Values::new());
                    let mut all_drift = true;
                    // What another directory masters is left to it (the plan's notices say so).
                    let held = self.held.get(live.id.as_str());
                    for f in UserField::ALL {
                        if held.is_some_and(|h| h.fields.contains(&f)) {
                            continue;
                        }
                        if let Some((have, want)) = self.differs(user, live, f) {
                            *set.slot(f) = Some(want.to_string());
                            before.insert(f.as_str().into(), have.map_or(Value::Null, |h| json!(h)));
                            after.insert(f.as_str().into(), json!(want));
                            let same_base = baseline.is_some_and(|b| self.want(b, f) == Some(want));
                            all_drift &= same_base;
                        }
                    }
                    if !set.is_empty() {
                        let fields: Vec<&String> = before.keys().collect();
                        out.push(
                            Change::new(
                                self.addr(ObjectKind::User, name.as_str()),
                                Action::Update,
                                Reason::of(
                                    self.kind_for(all_drift),
                                    Why::FieldsDiffer { fields: fields.iter().map(|f| f.to_string()).collect() },
                                ),
                                Operation::UpdateUser { user_name: live.user_name.clone(), set },
                            )
                            .before(before)
                            .after(after)
                            .fingerprint(live.fingerprint.clone())
                            .subject(name.to_string()),
                        );
                    }
                    // A protected account is never disabled.
                    let blocked = (!active && self.protected(&live.user_name)) || held.is_some_and(|h| h.lifecycle);
                    if live.active != active && !blocked {
                        let same = baseline.is_some_and(|b| b.status == user.status);
                        let action = if active { Action::Enable } else { Action::Disable };
                        out.push(
                            Change::new(
                                self.addr(ObjectKind::User, name.as_str()),
                                action,
                                Reason::of(self.kind_for(same), Why::StatusSays { active }),
                                Operation::SetUserActive { user_name: live.user_name.clone(), active },
                            )
                            .before([("active".to_string(), json!(live.active))].into())
                            .after([("active".to_string(), json!(active))].into())
                            .fingerprint(live.fingerprint.clone())
                            .subject(name.to_string())
                            .notes(if active {
                                self.licence_notes(Key::User(key), Some(&live.id))
                            } else {
                                Vec::new()
                            }),
                        );
                    }
                }
            }
        }
        // Live accounts not wanted on this target.
        for (live, key) in self.live.accounts.iter().zip(self.account_keys) {
            let key = key.as_ref();
            if self.present_users.contains_key(key) || !self.managed(&live.user_name) {
                continue;
            }
            // Another directory masters its life: the plan's notices say so.
            if self.held.get(live.id.as_str()).is_some_and(|h| h.lifecycle) {
                continue;
            }
            let git_name = self.in_git.get(key).copied();
            if let Some(name) = git_name {
                let user = &self.desired.users[name];
                // On a target that holds only users with roles here, a user who is still in git
                // keeps the account; their assignments are revoked below.
                if self.target.users == UsersScope::WithRoles && user.explicit_targets().is_none() {
                    continue;
                }
            }
            let address_name = git_name.map(|n| n.to_string()).unwrap_or_else(|| live.user_name.clone());
            let in_git = git_name.is_some();
            let wants_delete = self.desired.settings.removed_users == RemovedUsers::Delete;
            let mut notes = Vec::new();
            if wants_delete && self.caps.delete_users {
                if let Some(days) = self.caps.restorable_days {
                    notes.push(format!("the target keeps deleted users restorable for {days} days"));
                }
                out.push(
                    Change::new(
                        self.addr(ObjectKind::User, address_name),
                        Action::Delete,
                        Reason::of(ReasonKind::Config, Why::Removed { in_git, delete: true }),
                        Operation::DeleteUser { user_name: live.user_name.clone() },
                    )
                    .before(live_values(live))
                    .fingerprint(live.fingerprint.clone())
                    .subject_opt(git_name.map(|n| n.to_string()))
                    .notes(notes),
                );
            } else if live.active {
                if wants_delete {
                    notes.push("this target never deletes users, so the account is disabled instead".to_string());
                }
                out.push(
                    Change::new(
                        self.addr(ObjectKind::User, address_name),
                        Action::Disable,
                        Reason::of(ReasonKind::Config, Why::Removed { in_git, delete: false }),
                        Operation::SetUserActive { user_name: live.user_name.clone(), active: false },
                    )
                    .before([("active".to_string(), json!(true))].into())
                    .after([("active".to_string(), json!(false))].into())
                    .fingerprint(live.fingerprint.clone())
                    .subject_opt(git_name.map(|n| n.to_string()))
                    .notes(notes),
                );
            }
        }
    }

    /// The live and the desired value of `field` of `user`, when the configuration sets it, the
    /// target stores it and they differ.
    pub(super) fn differs(
        &self,
        user: &'a User,
        live: &'a LiveAccount,
        f: UserField,
    ) -> Option<(Option<&'a str>, &'a str)> {
        let want = self.want(user, f)?;
        // `""` asks for the attribute to be cleared: it equals an unset one, which is how every
        // provider reads an attribute it holds no value for.
        let have = live.attrs.get(f).map(String::as_str).filter(|h| !h.is_empty());
        let equal = match (f, have) {
            (_, None) => want.is_empty(),
            // userNames compare without regard to case.
            (UserField::Manager, Some(h)) => same_user_name(h, want),
            (_, Some(h)) => h == want,
        };
        (!equal).then_some((have, want))
    }

    pub(super) fn service_accounts(&self, out: &mut Vec<Change>) {
        if !self.caps.service_accounts {
            return;
        }
        for (name, sa) in &self.present_sas {
            if self.caps.application_users {
                self.app_user(name, sa, out);
                continue;
            }
            let owner = self.desired.users.get(&sa.owner).map(|u| u.user_name.clone());
            match self.sa_by_name.get(name) {
                None => {
                    let mut after = Values::new();
                    if let Some(d) = &sa.display_name {
                        after.insert("displayName".into(), json!(d));
                    }
                    if let Some(d) = &sa.description {
                        after.insert("description".into(), json!(d));
                    }
                    if let Some(o) = &owner {
                        after.insert("owner".into(), json!(o));
                    }
                    out.push(
                        Change::new(
                            self.addr(ObjectKind::ServiceAccount, *name),
                            Action::Create,
                            Reason::of(ReasonKind::Config, Why::ServiceAccountNotOnTarget),
                            Operation::CreateServiceAccount {
                                name: name.to_string(),
                                display_name: sa.display_name.clone(),
                                description: sa.description.clone(),
                                owner,
                                application_id: None,
                                business_unit: None,
                            },
                        )
                        .after(after)
                        .subject(name.to_string()),
                    );
                }
                Some(live) => {
                    let (mut before, mut after) = (Values::new(), Values::new());
                    let mut diff = |field: &str, want: &Option<String>, have: &Option<String>| -> Option<String> {
                        let w = want.as_ref()?;
                        let equal = if field == "owner" {
                            have.as_ref().is_some_and(|h| same_user_name(h, w))
                        } else {
                            have.as_ref() == Some(w)
                        };
                        if equal {
                            return None;
                        }
                        before.insert(field.into(), have.as_ref().map_or(Value::Null, |h| json!(h)));
                        after.insert(field.into(), json!(w));
                        Some(w.clone())
                    };
                    let display_name = diff("displayName", &sa.display_name, &live.display_name);
                    let description = diff("description", &sa.description, &live.description);
                    let owner = diff("owner", &owner, &live.owner);
                    if !after.is_empty() {
                        let fields: Vec<String> = after.keys().cloned().collect();
                        out.push(
                            Change::new(
                                self.addr(ObjectKind::ServiceAccount, *name),
                                Action::Update,
                                Reason::of(ReasonKind::Config, Why::FieldsDiffer { fields }),
                                Operation::UpdateServiceAccount {
                                    name: name.to_string(),
                                    display_name,
                                    description,
                                    owner,
                                },
                            )
                            .before(before)
                            .after(after)
                            .fingerprint(live.fingerprint.clone())
                            .subject(name.to_string()),
                        );
                    }
                }
            }
        }
    }
}

pub(super) fn attrs_values(attrs: &UserAttrs) -> Values {
    let mut v = Values::new();
    for f in UserField::ALL {
        if let Some(x) = attrs.get(f) {
            v.insert(f.as_str().into(), json!(x));
        }
    }
    v
}

fn live_values(live: &LiveAccount) -> Values {
    let mut v = attrs_values(&live.attrs);
    v.insert("userName".into(), json!(live.user_name));
    v.insert("active".into(), json!(live.active));
    v
}
