//! Idempotency: adopting the account a creation met (409 uniqueness), setting only what differs
//! from it, and replaying membership changes refused whole one member at a time.

use super::*;

impl Run<'_> {
    // -----------------------------------------------------------------------------------------
    // Idempotency.

    /// Adopts accounts that already exist under the userName a creation asked for (a 409
    /// uniqueness): looks them up by filter and brings their attributes to the desired ones.
    pub(super) async fn adopt(&mut self, works: Vec<Work>) {
        for batch in works.chunks(LOOKUP_BATCH) {
            let names: Vec<&str> = batch
                .iter()
                .filter_map(|w| match &w.unit {
                    Unit::CreateUser { user_name, .. } => Some(user_name.as_str()),
                    _ => None,
                })
                .collect();
            let found = self.lookup_users(&names).await;
            for w in batch {
                let Unit::CreateUser { user_name, attrs, active } = &w.unit else { continue };
                let existing = match &found {
                    Ok(map) => map.get(&key(user_name)).cloned(),
                    Err(e) => {
                        let err = ApplyError::new(format!(
                            "user {user_name} already exists and cannot be looked up to adopt it: {e}"
                        ));
                        self.record(w, Err(err));
                        continue;
                    }
                };
                let Some(existing) = existing else {
                    let err = ApplyError::new(format!(
                        "user {user_name}: the service refused the creation as a duplicate (409 uniqueness), but no account has that userName"
                    ));
                    self.record(w, Err(err));
                    continue;
                };
                tracing::info!(user = %user_name, id = %existing.id, "adopting an existing SCIM account");
                let entry = UserEntry {
                    id: existing.id.clone(),
                    version: existing.version.clone().filter(|_| self.config.etag),
                    emails: existing.emails.clone(),
                };
                self.state.users.insert(key(user_name), entry);
                // Only what differs from the account as it is.
                let (set, active) = adoption_changes(attrs, *active, &existing, &*self.state);
                if set == UserAttrs::default() && active.is_none() {
                    let effect = Effect::UserUpdated {
                        user: user_name.clone(),
                        version: existing.version.clone().filter(|_| self.config.etag),
                        emails: None,
                        dropped: Vec::new(),
                    };
                    self.record(w, Ok(effect));
                    continue;
                }
                let patch =
                    Work { unit: Unit::PatchUser { user: user_name.clone(), set, active }, changes: w.changes.clone() };
                let (r, n) = single(self.client, &self.config, &*self.state, &patch, None).await;
                self.requests += n;
                let r = r.map_err(|e| apply_error(&format!("user {user_name} (adopting the existing account)"), &e));
                self.record(&patch, r);
            }
        }
    }

    /// The accounts named `names`, by lower-cased userName: found with a filter, or, where
    /// the service announces no filtering (`filter.supported: false`), by reading the list.
    async fn lookup_users(&mut self, names: &[&str]) -> Result<HashMap<String, WireUser>, ScimError> {
        let resources = if self.config.filter {
            let Some(f) = filter::any_eq("userName", names.iter().copied()) else { return Ok(HashMap::new()) };
            let mut url = self.client.url(&["Users"]);
            url.set_query(Some(&query(&[("filter", &f), ("attributes", &wire::user_attributes())])));
            self.requests += 1;
            let (v, _) = self.client.get_json(url).await?;
            ListPage::parse(&v).map_err(|e| ScimError::Invalid(e.to_string()))?.resources
        } else {
            let page = self.config.max_results.unwrap_or(DEFAULT_PAGE).max(1);
            let limits = crate::provider::bounds::ReadLimits::default();
            let all =
                crate::provider::scim::list::list_all(self.client, "Users", &wire::user_attributes(), page, limits)
                    .await;
            all.map_err(|e| match e {
                crate::provider::scim::list::ListError::Request(e) => e,
                e => ScimError::Invalid(e.to_string()),
            })?
        };
        let mut out = HashMap::new();
        for r in &resources {
            let u = WireUser::parse(r).map_err(|e| ScimError::Invalid(e.to_string()))?;
            // Only an exact (case-insensitive) match is adopted, whatever the filter matched.
            if names.iter().any(|n| key(n) == key(&u.user_name)) {
                out.insert(key(&u.user_name), u);
            }
        }
        Ok(out)
    }

    /// Replays, one member at a time, membership changes a service refused whole because one
    /// member was already there (or already gone).
    pub(super) async fn retry_memberships(&mut self, works: Vec<Work>) {
        for w in works {
            let Unit::PatchGroup { group, add, remove, .. } = &w.unit else { continue };
            let singles = add
                .iter()
                .map(|id| (vec![id.clone()], vec![]))
                .chain(remove.iter().map(|id| (vec![], vec![id.clone()])))
                .zip(w.changes.iter());
            for ((a, r), &change) in singles {
                let single_work =
                    Work { unit: Unit::PatchGroup { group: group.clone(), add: a, remove: r }, changes: vec![change] };
                let (res, n) = single(self.client, &self.config, &*self.state, &single_work, None).await;
                self.requests += n;
                let mut none = Vec::new();
                self.settle(single_work, res, &mut none, &mut Vec::new());
            }
        }
    }
}

/// What adopting `existing` for a creation of `attrs` and `active` must change: the fields
/// whose value differs (a `""` asked for an absent attribute is no change), and the lifecycle
/// when it differs. The manager is compared by id.
fn adoption_changes(attrs: &UserAttrs, active: bool, existing: &WireUser, state: &State) -> (UserAttrs, Option<bool>) {
    let mut set = UserAttrs::default();
    for f in crate::model::UserField::ALL {
        let Some(want) = attrs.get(f).map(String::as_str) else { continue };
        let have = existing.attrs.get(f).map(String::as_str).unwrap_or_default();
        let same = match f {
            crate::model::UserField::Manager => {
                state.users.get(&key(want)).is_some_and(|m| m.id == have) || (want.is_empty() && have.is_empty())
            }
            _ => want == have,
        };
        if !same {
            *set.slot(f) = Some(want.to_string());
        }
    }
    (set, (existing.active != active).then_some(active))
}
