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
        let user_attrs = self.user_attributes();
        let user_attrs: Vec<&str> = user_attrs.iter().map(String::as_str).collect();
        let entries = self.search_users(&client, None, &user_attrs).await?;
        let groups = self.search_groups(&client, None, &self.group_attributes()).await?;
        let users = self.index_users(&entries);
        let (accounts, mut state) = self.map_users(&users);
        let (bindings, groups_state) = self.map_groups(&client, &users, &groups).await?;
        state.groups = groups_state;
        let live = LiveTarget { accounts, bindings, ..LiveTarget::default() };
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

    /// The attributes read for a group.
    pub(super) fn group_attributes(&self) -> Vec<&'static str> {
        vec!["cn", "member", id_attribute(self.conn.flavor)]
    }

    /// The users below the user bases, paged, with `attrs`; `and` narrows the user filter.
    pub(super) async fn search_users(
        &self,
        client: &Client,
        and: Option<&str>,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, ProviderError> {
        let filter = narrowed(user_filter(self.conn.flavor), and);
        let mut entries = Vec::new();
        for (i, base) in self.user_bases().iter().enumerate() {
            let found = client
                .search_paged(base, &filter, attrs, self.page_size, i > 0)
                .await
                .map_err(|e| self.remote("read the users", &e))?;
            entries.extend(found);
        }
        Ok(entries)
    }

    /// The groups below the groups base, paged, with `attrs`; `and` narrows the group filter.
    pub(super) async fn search_groups(
        &self,
        client: &Client,
        and: Option<&str>,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, ProviderError> {
        let filter = narrowed(group_filter(self.conn.flavor), and);
        client
            .search_paged(&self.conn.groups_base, &filter, attrs, self.page_size, false)
            .await
            .map_err(|e| self.remote("read the groups", &e))
    }

    /// The user entries keyward sees (those with a userName and a DN that parses, the first of
    /// each userName), with the index by DN key that members and managers resolve against.
    pub(super) fn index_users<'e>(&self, entries: impl IntoIterator<Item = &'e SearchEntry>) -> UserIndex {
        let mut users: Vec<ReadUser> = Vec::new();
        let mut by_dn: HashMap<String, usize> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        for e in entries {
            let Some(u) = self.user_read(e, &e.dn) else { continue };
            if !seen.insert(key(&u.user_name)) {
                tracing::warn!(target_name = %self.target, dn = %e.dn, "a second entry with the same userName is ignored");
                continue;
            }
            by_dn.insert(u.dn.key(), users.len());
            users.push(u);
        }
        UserIndex { users, by_dn }
    }

    /// One user entry as the model has it; its manager resolved against `index` (a manager
    /// keyward cannot see is left unset, so the plan sets it again).
    pub(super) fn map_user(&self, index: &UserIndex, u: &ReadUser) -> LiveAccount {
        self.account_of(u, |m| index.manager(Some(m)))
    }

    /// Every user of `index` as the model has it, and what apply needs of each.
    fn map_users(&self, index: &UserIndex) -> (Vec<LiveAccount>, State) {
        let mut state = State::default();
        let mut accounts = Vec::with_capacity(index.users.len());
        for u in &index.users {
            state.users.insert(key(&u.user_name), UserEntry { dn: u.raw_dn.clone(), uac: u.uac() });
            accounts.push(self.map_user(index, u));
        }
        (accounts, state)
    }

    /// Group entries as the model has them, members resolved against `index`, and what apply
    /// needs of each (by lower-cased name).
    pub(super) async fn map_groups(
        &self,
        client: &Client,
        index: &UserIndex,
        groups: &[SearchEntry],
    ) -> Result<(Vec<LiveBinding>, HashMap<String, GroupEntry>), ProviderError> {
        let mut bindings = Vec::with_capacity(groups.len());
        let mut state: HashMap<String, GroupEntry> = HashMap::new();
        for g in groups {
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
            let (binding, member_keys) = group_of(&g.dn, id, name.clone(), &all_members, |_, k| {
                index.by_dn.get(k).map(|&i| index.users[i].id.clone())
            });
            state.entry(key(&name)).or_insert(GroupEntry { dn: g.dn.clone(), members: member_keys });
            bindings.push(binding);
        }
        Ok((bindings, state))
    }
}

/// `filter`, narrowed by `and` when given.
fn narrowed(filter: &str, and: Option<&str>) -> String {
    match and {
        Some(and) => format!("(&{filter}{and})"),
        None => filter.to_string(),
    }
}

/// An account's fingerprint: its DN, userName, attributes and whether it is active.
pub(super) fn account_fingerprint(dn: &Dn, user_name: &str, attrs: &UserAttrs, active: bool) -> String {
    digest(&(dn.key(), user_name, attrs, active))
}

/// A user entry read.
pub(super) struct ReadUser {
    pub(super) dn: Dn,
    pub(super) raw_dn: String,
    pub(super) attrs: HashMap<String, Vec<String>>,
    pub(super) id: String,
    pub(super) user_name: String,
}

/// The users read, and their index by DN key.
pub(super) struct UserIndex {
    pub(super) users: Vec<ReadUser>,
    pub(super) by_dn: HashMap<String, usize>,
}

impl UserIndex {
    /// The userName of the user at manager DN `dn`, if keyward sees one there.
    fn manager(&self, dn: Option<&str>) -> Option<String> {
        dn.and_then(|m| self.by_dn.get(&dn::normalize(m))).map(|&i| self.users[i].user_name.clone())
    }
}

/// A user entry as read (the Active Directory feed's name for it).
pub(super) type UserRead = ReadUser;

impl ReadUser {
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
            fingerprint: account_fingerprint(&u.dn, &u.user_name, &attrs, active),
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
