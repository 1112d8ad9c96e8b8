//! The full read: every user and group, mapped to the model. The change feed ([`super::feed`])
//! maps what it reads with the same functions, so a state built from the feed equals a full
//! read.

use super::*;

/// A full read, with what the change feed needs of it.
pub(super) struct FullRead {
    pub live: LiveTarget,
    pub config: ServiceConfig,
    /// Whether the schemas leave `meta.lastModified` to users and groups (see
    /// [`schema::stamps_from`]).
    pub stamps: Result<(), schema::NoStamps>,
    pub users: Vec<WireUser>,
    pub groups: Vec<WireGroup>,
    pub page: usize,
}

impl ScimProvider {
    /// Reads the service's configuration, its schemas, and every user and group.
    pub(super) async fn read_full(&mut self) -> Result<FullRead, ProviderError> {
        let config = self.discover().await?;
        self.read_with(config).await
    }

    /// [`Self::read_full`], the configuration read already.
    pub(super) async fn read_with(&mut self, config: ServiceConfig) -> Result<FullRead, ProviderError> {
        let discovered = schema::discover(&self.client, &self.target).await;
        let page = config.max_results.unwrap_or(DEFAULT_PAGE).max(1);
        let users = self.list("Users", &wire::user_attributes(), page).await?;
        let groups = self.list("Groups", wire::GROUP_ATTRIBUTES, page).await?;
        let users = self.parse_users(&users)?;
        let groups = self.parse_groups(&groups)?;
        tracing::info!(target_name = %self.target, users = users.len(), groups = groups.len(), page, bulk = ?config.bulk, etag = config.etag, "read SCIM target");

        let name_by_id: HashMap<&str, &str> = users.iter().map(|u| (u.id.as_str(), u.user_name.as_str())).collect();
        let mut state = State::default();
        let mut live = LiveTarget::default();
        self.modified.clear();
        for u in &users {
            state.users.insert(
                key(&u.user_name),
                UserEntry {
                    id: u.id.clone(),
                    version: u.version.clone().filter(|_| config.etag),
                    emails: u.emails.clone(),
                },
            );
            self.stamp(u.last_modified.as_deref(), Stamped::User(&u.user_name));
            live.accounts.push(account_of(u, |id| name_by_id.get(id).map(|n| n.to_string()), config.etag));
        }
        for g in &groups {
            state
                .groups
                .entry(key(&g.display_name))
                .or_insert(GroupEntry { id: g.id.clone(), version: g.version.clone().filter(|_| config.etag) });
            self.stamp(g.last_modified.as_deref(), Stamped::Group(&g.display_name));
            live.bindings.push(binding_of(g, config.etag));
        }
        if !discovered.unkept.is_empty() {
            tracing::info!(target_name = %self.target, fields = ?discovered.unkept.keys().collect::<Vec<_>>(), "the SCIM service does not keep these user attributes");
        }
        live.unkept = discovered.unkept;
        self.config = Some(config.clone());
        self.state = Some(state);
        Ok(FullRead { live, config, stamps: discovered.stamps, users, groups, page })
    }

    pub(super) fn parse_users(&self, users: &[Value]) -> Result<Vec<WireUser>, ProviderError> {
        users
            .iter()
            .map(WireUser::parse)
            .collect::<Result<_, _>>()
            .map_err(|m| self.target_error(format!("a user read from {} is not valid: {m}", self.shown_base())))
    }

    pub(super) fn parse_groups(&self, groups: &[Value]) -> Result<Vec<WireGroup>, ProviderError> {
        groups
            .iter()
            .map(WireGroup::parse)
            .collect::<Result<_, _>>()
            .map_err(|m| self.target_error(format!("a group read from {} is not valid: {m}", self.shown_base())))
    }

    /// Keeps an object's `meta.lastModified` for [`Provider::attribute`]; the first group of a
    /// name wins, as in [`State`].
    pub(super) fn stamp(&mut self, stamp: Option<&str>, what: Stamped<'_>) {
        let Some(stamp) = stamp else { return };
        let k = what.key();
        match what {
            Stamped::User(_) => {
                self.modified.insert(k, stamp.to_string());
            }
            Stamped::Group(_) => {
                self.modified.entry(k).or_insert_with(|| stamp.to_string());
            }
        }
    }
}

/// An object whose `meta.lastModified` is kept, by its natural key.
pub(super) enum Stamped<'a> {
    User(&'a str),
    Group(&'a str),
}

impl Stamped<'_> {
    pub(super) fn key(&self) -> String {
        match self {
            Stamped::User(n) => format!("user {}", key(n)),
            Stamped::Group(n) => format!("group {}", key(n)),
        }
    }
}

/// An account as a full read maps it. `user_name` gives the userName of an id (the manager is
/// an id on the wire and a userName in the model; a manager keyward cannot see is left unset,
/// so the plan sets it again).
pub(super) fn account_of(u: &WireUser, user_name: impl Fn(&str) -> Option<String>, etag: bool) -> LiveAccount {
    let mut attrs = u.attrs.clone();
    attrs.manager = attrs.manager.as_deref().and_then(user_name);
    LiveAccount {
        id: u.id.clone(),
        user_name: u.user_name.clone(),
        fingerprint: account_fingerprint(&u.id, &u.user_name, &attrs, u.active, u.version.as_deref(), etag),
        attrs,
        active: u.active,
        last_sign_in: None,
        registered_methods: None,
    }
}

/// An account's fingerprint: the version read where the service has ETags, else a digest of
/// what keyward compares.
pub(super) fn account_fingerprint(
    id: &str,
    user_name: &str,
    attrs: &UserAttrs,
    active: bool,
    version: Option<&str>,
    etag: bool,
) -> String {
    match version {
        Some(v) if etag => format!("etag:{v}"),
        _ => digest(&(id, user_name, attrs, active)),
    }
}

/// A group as a full read maps it.
pub(super) fn binding_of(g: &WireGroup, etag: bool) -> LiveBinding {
    LiveBinding {
        id: g.id.clone(),
        binding: Binding::Group(g.display_name.clone()),
        members: g.members.clone(),
        fingerprint: group_fingerprint(&g.id, &g.display_name, &g.members, g.version.as_deref(), etag),
    }
}

/// A group's fingerprint: the version read where the service has ETags, else a digest of its
/// id, name and members (in any order: the order of `members` is not part of a group).
pub(super) fn group_fingerprint(id: &str, name: &str, members: &[String], version: Option<&str>, etag: bool) -> String {
    match version {
        Some(v) if etag => format!("etag:{v}"),
        _ => {
            let mut sorted: Vec<&str> = members.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            digest(&(id, name, &sorted))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groups_fingerprint_is_its_version_with_etags_and_ignores_the_order_of_members_without() {
        let members = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = group_fingerprint("g1", "sales", &members(&["u2", "u1"]), Some("W/\"3\""), false);
        assert_eq!(a, group_fingerprint("g1", "sales", &members(&["u1", "u2"]), None, false));
        assert_ne!(a, group_fingerprint("g1", "sales", &members(&["u1"]), None, false));
        assert_ne!(a, group_fingerprint("g1", "ops", &members(&["u1", "u2"]), None, false));
        assert_eq!(group_fingerprint("g1", "sales", &[], Some("W/\"3\""), true), "etag:W/\"3\"");
    }
}
