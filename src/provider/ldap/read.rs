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

        let mut users: Vec<UserRead> = Vec::with_capacity(entries.len());
        let mut by_dn: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        let mut seen: HashSet<String> = HashSet::new();
        for e in &entries {
            let Some(u) = self.user_read(e, &e.dn) else { continue };
            if !seen.insert(key(&u.user_name)) {
                tracing::warn!(target_name = %self.target, dn = %e.dn, "a second entry with the same userName is ignored");
                continue;
            }
            by_dn.insert(u.dn.key(), users.len());
            users.push(u);
        }

        let mut state = State::default();
        let mut live = LiveTarget::default();
        for u in &users {
            // A DN on the wire, a userName in the model; a manager keyward cannot see is left
            // unset, so the plan sets it again.
            let account = self.account_of(u, |m| by_dn.get(&dn::normalize(m)).map(|&i| users[i].user_name.clone()));
            state.users.insert(key(&u.user_name), UserEntry { dn: u.raw_dn.clone(), uac: u.uac() });
            live.accounts.push(account);
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
            let (binding, member_keys) =
                group_of(&g.dn, id, name.clone(), &all_members, |_, k| by_dn.get(k).map(|&i| users[i].id.clone()));
            state.groups.entry(key(&name)).or_insert(GroupEntry { dn: g.dn.clone(), members: member_keys });
            live.bindings.push(binding);
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

/// A user entry as read: its DN, attributes, id and userName.
pub(super) struct UserRead {
    pub dn: Dn,
    pub raw_dn: String,
    pub attrs: HashMap<String, Vec<String>>,
    pub id: String,
    pub user_name: String,
}

impl UserRead {
    /// Its `userAccountControl`, where it has one.
    pub fn uac(&self) -> Option<u32> {
        first(&self.attrs, "userAccountControl").and_then(|v| v.parse().ok())
    }
}

impl LdapProvider {
    /// The entry `e`, whose DN is `raw_dn`, as a user; `None` when it is not an account keyward
    /// sees (no user key, or a DN that does not parse).
    pub(super) fn user_read(&self, e: &SearchEntry, raw_dn: &str) -> Option<UserRead> {
        let attrs = client::attrs_by_lower_name(e);
        let user_name = first(&attrs, &self.conn.user_key).cloned()?;
        let Ok(parsed) = Dn::parse(raw_dn) else {
            tracing::warn!(target_name = %self.target, dn = %raw_dn, "skipping an entry whose DN does not parse");
            return None;
        };
        let id = entry_id(e, &attrs, &parsed.key());
        Some(UserRead { dn: parsed, raw_dn: raw_dn.to_string(), attrs, id, user_name })
    }

    /// A user as the model has it; `manager` gives the userName of the account whose DN (as
    /// the entry holds it) is the manager, if keyward sees it.
    pub(super) fn account_of(&self, u: &UserRead, manager: impl Fn(&str) -> Option<String>) -> LiveAccount {
        let flavor = self.conn.flavor;
        let mut attrs = UserAttrs::default();
        for f in UserField::ALL {
            let v = first(&u.attrs, field_attribute(flavor, f)).cloned();
            *attrs.slot(f) = match f {
                UserField::Manager => v.and_then(|m| manager(&m)),
                _ => v,
            };
        }
        let active = self.is_active(&u.dn, &u.attrs);
        LiveAccount {
            id: u.id.clone(),
            user_name: u.user_name.clone(),
            fingerprint: digest(&(u.dn.key(), &u.user_name, &attrs, active)),
            attrs,
            active,
            last_sign_in: None,
            registered_methods: None,
        }
    }
}

/// A group as the model has it, and its members' DN keys. `member` gives the account id of
/// the member at position `i` of `member_dns` with DN key `k`; a member that is no account
/// keyward sees is kept as its DN. Empty values (the placeholder) are no members.
pub(super) fn group_of(
    dn: &str,
    id: String,
    name: String,
    member_dns: &[String],
    member: impl Fn(usize, &str) -> Option<String>,
) -> (LiveBinding, HashSet<String>) {
    let member_dns: Vec<(usize, &String)> =
        member_dns.iter().enumerate().filter(|(_, d)| !d.trim().is_empty()).collect();
    let mut member_keys: Vec<String> = member_dns.iter().map(|(_, d)| dn::normalize(d)).collect();
    let members: Vec<String> = member_dns
        .iter()
        .zip(&member_keys)
        .map(|((i, raw), k)| member(*i, k).unwrap_or_else(|| raw.to_string()))
        .collect();
    member_keys.sort();
    let fingerprint = group_fingerprint(&dn::normalize(dn), &member_keys);
    (LiveBinding { id, binding: Binding::Group(name), members, fingerprint }, member_keys.into_iter().collect())
}

/// A group's fingerprint: its DN key and its members' DN keys, sorted.
pub(super) fn group_fingerprint(dn_key: &str, sorted_member_keys: &[String]) -> String {
    digest(&(dn_key, sorted_member_keys))
}
