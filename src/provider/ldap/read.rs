//! Reading the directory: users under the user bases, groups under the groups base.

use super::*;

impl LdapProvider {
    /// Refuses a target whose schema lacks an attribute keyward would write (see [`schema`]).
    async fn check_schema(&self, client: &Client) -> Result<(), ProviderError> {
        let types = match client.attribute_types().await {
            Ok(Some(t)) if !t.is_empty() => t,
            Ok(_) => {
                tracing::warn!(target_name = %self.target, "the directory's schema cannot be read; attributes are not checked before writing");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(target_name = %self.target, error = %e, "the directory's schema cannot be read; attributes are not checked before writing");
                return Ok(());
            }
        };
        let schema = schema::Schema::from_attribute_types(&types);
        let written = schema::written_attributes(self.conn.flavor, &self.conn.user_key, &self.conn.disable);
        let missing = schema::missing(&schema, &written);
        if missing.is_empty() {
            return Ok(());
        }
        Err(ProviderError::Unsupported {
            target: self.target.clone(),
            message: schema::refusal(&missing, &self.conn.disable),
        })
    }

    pub(super) async fn read_live(&mut self) -> Result<LiveTarget, ProviderError> {
        let client = self.client().await?;
        self.check_schema(&client).await?;
        let flavor = self.conn.flavor;
        let user_attrs = self.user_attributes();
        let user_attrs: Vec<&str> = user_attrs.iter().map(String::as_str).collect();
        let mut entries = Vec::new();
        for (i, base) in self.user_bases().iter().enumerate() {
            let found = client
                .search_paged(base, user_filter(flavor), &user_attrs, self.page_size, i > 0)
                .await
                .map_err(|e| self.remote("read the users", &e))?;
            entries.extend(found);
        }
        let group_attrs = ["cn", "member", id_attribute(flavor)];
        let groups = client
            .search_paged(&self.conn.groups_base, group_filter(flavor), &group_attrs, self.page_size, false)
            .await
            .map_err(|e| self.remote("read the groups", &e))?;

        // Users: the DN key of each to its id and userName, for members and managers.
        struct Read {
            dn: Dn,
            raw_dn: String,
            attrs: HashMap<String, Vec<String>>,
            id: String,
            user_name: String,
        }
        let mut users: Vec<Read> = Vec::with_capacity(entries.len());
        let mut by_dn: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        let mut seen: HashSet<String> = HashSet::new();
        for e in &entries {
            let attrs = client::attrs_by_lower_name(e);
            let Some(user_name) = first(&attrs, &self.conn.user_key).cloned() else {
                continue;
            };
            let Ok(parsed) = Dn::parse(&e.dn) else {
                tracing::warn!(target_name = %self.target, dn = %e.dn, "skipping an entry whose DN does not parse");
                continue;
            };
            if !seen.insert(key(&user_name)) {
                tracing::warn!(target_name = %self.target, dn = %e.dn, "a second entry with the same userName is ignored");
                continue;
            }
            let dn_key = parsed.key();
            let id = entry_id(e, &attrs, &dn_key);
            by_dn.insert(dn_key, users.len());
            users.push(Read { dn: parsed, raw_dn: e.dn.clone(), attrs, id, user_name });
        }

        let mut state = State::default();
        let mut live = LiveTarget::default();
        for u in &users {
            let mut attrs = UserAttrs::default();
            for f in UserField::ALL {
                let v = first(&u.attrs, field_attribute(flavor, f)).cloned();
                *attrs.slot(f) = match f {
                    // A DN on the wire, a userName in the model; a manager keyward cannot see is
                    // left unset, so the plan sets it again.
                    UserField::Manager => {
                        v.and_then(|m| by_dn.get(&dn::normalize(&m))).map(|&i| users[i].user_name.clone())
                    }
                    _ => v,
                };
            }
            let active = self.is_active(&u.dn, &u.attrs);
            let uac = first(&u.attrs, "userAccountControl").and_then(|v| v.parse().ok());
            state.users.insert(key(&u.user_name), UserEntry { dn: u.raw_dn.clone(), uac });
            live.accounts.push(LiveAccount {
                id: u.id.clone(),
                user_name: u.user_name.clone(),
                fingerprint: digest(&(u.dn.key(), &u.user_name, &attrs, active)),
                attrs,
                active,
                last_sign_in: None,
                registered_methods: None,
            });
        }
        for g in &groups {
            let attrs = client::attrs_by_lower_name(g);
            let Some(name) = first(&attrs, "cn").cloned() else {
                continue;
            };
            let dn_key = dn::normalize(&g.dn);
            let id = entry_id(g, &attrs, &dn_key);
            let mut all_members = attrs.get("member").cloned().unwrap_or_default();
            if let Some((k, first)) = attrs.iter().find(|(k, _)| k.starts_with("member;range=")) {
                all_members = client
                    .ranged_values(&g.dn, "member", k, first)
                    .await
                    .map_err(|e| self.remote("read the members of a large group", &e))?;
            }
            let member_dns: Vec<&String> = all_members.iter().filter(|d| !d.trim().is_empty()).collect();
            let mut member_keys: Vec<String> = member_dns.iter().map(|d| dn::normalize(d)).collect();
            let members: Vec<String> = member_dns
                .iter()
                .zip(&member_keys)
                .map(|(raw, k)| by_dn.get(k).map(|&i| users[i].id.clone()).unwrap_or_else(|| raw.to_string()))
                .collect();
            member_keys.sort();
            let fingerprint = digest(&(&dn_key, &member_keys));
            state
                .groups
                .entry(key(&name))
                .or_insert(GroupEntry { dn: g.dn.clone(), members: member_keys.into_iter().collect() });
            live.bindings.push(LiveBinding { id, binding: Binding::Group(name), members, fingerprint });
        }
        tracing::info!(
            target_name = %self.target,
            users = live.accounts.len(),
            groups = live.bindings.len(),
            pages = client.pages_read(),
            "read LDAP target"
        );
        self.state = Some(state);
        Ok(live)
    }
}
