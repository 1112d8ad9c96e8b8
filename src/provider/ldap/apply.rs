//! Applying changes: one LDAP operation (or a few) per change, managers before their reports.

use super::*;

impl LdapProvider {
    pub(super) async fn apply_changes(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        if self.access != Access::Write {
            return changes.iter().map(|_| Err(ApplyError::new("the target was opened read-only"))).collect();
        }
        let Some(mut state) = self.state.take() else {
            return changes.iter().map(|_| Err(ApplyError::new("apply called before read"))).collect();
        };
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => {
                self.state = Some(state);
                return changes.iter().map(|_| Err(ApplyError::new(e.to_string()))).collect();
            }
        };
        let mut results: Vec<Option<Result<(), ApplyError>>> = vec![None; changes.len()];
        for i in creation_order(changes) {
            let w = Writer { conn: &self.conn, client: &client, state: &mut state };
            results[i] = Some(w.run(&changes[i].operation).await);
        }
        self.state = Some(state);
        tracing::info!(target_name = %self.target, changes = changes.len(), "applied to LDAP target");
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(ApplyError::new("no outcome was recorded")))).collect()
    }
}

/// The order changes run in: the plan's, except that a user is created after the manager
/// created in the same batch.
fn creation_order(changes: &[&Change]) -> Vec<usize> {
    let items: Vec<_> = changes
        .iter()
        .map(|c| match &c.operation {
            Operation::CreateUser { user_name, attrs, .. } => Some((user_name.as_str(), attrs.manager.as_deref())),
            _ => None,
        })
        .collect();
    crate::provider::order::managers_first(&items)
}

/// Carries out one operation against the directory, keeping [`State`] current.
struct Writer<'a> {
    conn: &'a LdapConnection,
    client: &'a Client,
    state: &'a mut State,
}

fn failed(e: LdapFailure) -> ApplyError {
    ApplyError::new(e.to_string())
}

fn one(v: &str) -> HashSet<String> {
    [v.to_string()].into()
}

impl Writer<'_> {
    fn flavor(&self) -> LdapFlavor {
        self.conn.flavor
    }

    fn user_dn(&self, user_name: &str) -> Result<String, ApplyError> {
        self.state
            .users
            .get(&key(user_name))
            .map(|u| u.dn.clone())
            .ok_or_else(|| ApplyError::conflict(format!("account {user_name} does not exist on the target")))
    }

    async fn run(self, op: &Operation) -> Result<(), ApplyError> {
        match op {
            Operation::CreateUser { user_name, attrs, active } => self.create_user(user_name, attrs, *active).await,
            Operation::UpdateUser { user_name, set } => self.update_user(user_name, set).await,
            Operation::SetUserActive { user_name, active } => self.set_active(user_name, *active).await,
            Operation::DeleteUser { user_name } => {
                let Some(u) = self.state.users.get(&key(user_name)) else {
                    return Ok(()); // Already gone: the desired end state.
                };
                if self.flavor() == LdapFlavor::Ad {
                    // AD puts objects below accounts (devices, mail containers): without the
                    // Tree Delete control such an account cannot be deleted (66).
                    self.client.delete_tree(&u.dn, &[rc::NO_SUCH_OBJECT]).await.map_err(failed)?;
                } else {
                    self.client.delete(&u.dn, &[rc::NO_SUCH_OBJECT]).await.map_err(failed)?;
                }
                self.state.users.remove(&key(user_name));
                Ok(())
            }
            Operation::CreateBinding { binding: Binding::Group(name) } => self.create_group(name).await,
            Operation::CreateBinding { binding } => Err(ApplyError::new(format!(
                "{} cannot be created on an LDAP target, which has groups only",
                binding.label()
            ))),
            Operation::Assign { principal, binding } | Operation::Revoke { principal, binding } => {
                let adding = matches!(op, Operation::Assign { .. });
                let Binding::Group(group) = binding else {
                    return Err(ApplyError::new(format!("{} does not exist on an LDAP target", binding.label())));
                };
                let Principal::User(user) = principal else {
                    return Err(ApplyError::new("an LDAP target has no service accounts"));
                };
                self.membership(user, group, adding).await
            }
            other => Err(ApplyError::new(format!("{} is not supported by an LDAP target", op_name(other)))),
        }
    }

    async fn create_user(self, user_name: &str, attrs: &UserAttrs, active: bool) -> Result<(), ApplyError> {
        let values = new_user_attributes(self.conn, &self.state.users, user_name, attrs, active)?;
        let dn = new_user_dn(self.conn, user_name, active);
        match self.client.add(&dn, values, &[]).await {
            // Created by an earlier, interrupted run (or by someone else): adopt the entry
            // holding this userName and give it the desired values.
            Err(e) if e.rc() == Some(rc::ALREADY_EXISTS) => return self.adopt(user_name, attrs, active, e).await,
            Err(e) => return Err(failed(e)),
            Ok(_) => {}
        }
        let uac = (self.flavor() == LdapFlavor::Ad)
            .then_some(UAC_NORMAL_ACCOUNT | if active { 0 } else { UAC_ACCOUNTDISABLE });
        self.state.users.insert(key(user_name), UserEntry { dn, uac });
        Ok(())
    }

    /// `refused` is the server's answer to the creation, kept when there is nothing to adopt
    /// (on AD, 68 also means the sAMAccountName is taken elsewhere in the domain).
    async fn adopt(
        self,
        user_name: &str,
        attrs: &UserAttrs,
        active: bool,
        refused: LdapFailure,
    ) -> Result<(), ApplyError> {
        let filter = format!("(&{}{})", user_filter(self.flavor()), dn::eq_filter(&self.conn.user_key, user_name));
        let mut found = Vec::new();
        let mut bases = vec![self.conn.users_base.clone()];
        if let LdapDisable::MoveTo(to) = &self.conn.disable {
            bases.push(to.clone());
        }
        for (i, base) in bases.iter().enumerate() {
            let r = self
                .client
                .search_paged(base, &filter, &["userAccountControl"], PAGE_SIZE, i > 0)
                .await
                .map_err(failed)?;
            found.extend(r);
        }
        let Some(entry) = found.into_iter().next() else {
            return Err(ApplyError::new(format!(
                "cannot create {user_name}: {refused}; no entry below usersBase holds it as {}",
                self.conn.user_key
            )));
        };
        let uac = client::attrs_by_lower_name(&entry).get("useraccountcontrol").and_then(|v| v.first()?.parse().ok());
        self.state.users.insert(key(user_name), UserEntry { dn: entry.dn.clone(), uac });
        let Writer { conn, client, state } = self;
        Writer { conn, client, state: &mut *state }.update_user(user_name, attrs).await?;
        Writer { conn, client, state }.set_active(user_name, active).await
    }

    async fn update_user(self, user_name: &str, set: &UserAttrs) -> Result<(), ApplyError> {
        let dn = self.user_dn(user_name)?;
        let mut mods: Vec<Mod<String>> = Vec::new();
        for field in UserField::ALL {
            let Some(v) = set.get(field) else { continue };
            let attr = field_attribute(self.flavor(), field).to_string();
            if attr.eq_ignore_ascii_case(&self.conn.user_key) {
                continue;
            }
            let values = if v.is_empty() {
                HashSet::new()
            } else if field == UserField::Manager {
                one(&self
                    .user_dn(v)
                    .map_err(|_| ApplyError::new(format!("the manager {v} does not exist on the target")))?)
            } else {
                one(v)
            };
            mods.push(Mod::Replace(attr, values));
        }
        if mods.is_empty() {
            return Ok(());
        }
        self.client.modify(&dn, mods, &[]).await.map_err(failed)?;
        Ok(())
    }

    async fn set_active(mut self, user_name: &str, active: bool) -> Result<(), ApplyError> {
        let dn = self.user_dn(user_name)?;
        match &self.conn.disable {
            LdapDisable::AccountControl => {
                let current = self.state.users.get(&key(user_name)).and_then(|u| u.uac).unwrap_or(UAC_NORMAL_ACCOUNT);
                let uac = if active { current & !UAC_ACCOUNTDISABLE } else { current | UAC_ACCOUNTDISABLE };
                let mods = vec![Mod::Replace("userAccountControl".to_string(), one(&uac.to_string()))];
                self.client.modify(&dn, mods, &[]).await.map_err(failed)?;
                if let Some(u) = self.state.users.get_mut(&key(user_name)) {
                    u.uac = Some(uac);
                }
            }
            LdapDisable::Attribute { name, value } => {
                let m = if active {
                    Mod::Delete(name.clone(), HashSet::new())
                } else {
                    Mod::Replace(name.clone(), one(value))
                };
                self.client.modify(&dn, vec![m], &[rc::NO_SUCH_ATTRIBUTE]).await.map_err(failed)?;
            }
            LdapDisable::MoveTo(to) => {
                let target_base = if active { &self.conn.users_base } else { to };
                let parsed = Dn::parse(&dn).map_err(|e| ApplyError::new(e.to_string()))?;
                let within = Dn::parse(target_base).map(|b| parsed.is_within(&b)).unwrap_or(false);
                // Already in place; an entry below a sub-OU of usersBase counts as enabled.
                let in_place =
                    if active { !Dn::parse(to).map(|t| parsed.is_within(&t)).unwrap_or(false) } else { within };
                if in_place {
                    return Ok(());
                }
                let rdn = parsed.rdn_string().ok_or_else(|| ApplyError::new(format!("{dn} has no RDN")))?;
                self.client.move_entry(&dn, &rdn, target_base).await.map_err(failed)?;
                let new_dn = format!("{rdn},{target_base}");
                self.rewrite_member(&dn, &new_dn).await?;
                if let Some(u) = self.state.users.get_mut(&key(user_name)) {
                    u.dn = new_dn;
                }
            }
        }
        Ok(())
    }

    /// After a move: replaces `old` by `new` in the groups read that hold it, one value at a
    /// time (a server with the refint overlay has done it already, which is fine).
    async fn rewrite_member(&mut self, old: &str, new: &str) -> Result<(), ApplyError> {
        let (old_key, new_key) = (dn::normalize(old), dn::normalize(new));
        let holding: Vec<String> =
            self.state.groups.iter().filter(|(_, g)| g.members.contains(&old_key)).map(|(k, _)| k.clone()).collect();
        for g in holding {
            let group_dn = self.state.groups[&g].dn.clone();
            let add = vec![Mod::Add("member".to_string(), one(new))];
            self.client.modify(&group_dn, add, &[rc::ATTRIBUTE_OR_VALUE_EXISTS]).await.map_err(failed)?;
            let del = vec![Mod::Delete("member".to_string(), one(old))];
            self.client.modify(&group_dn, del, &[rc::NO_SUCH_ATTRIBUTE]).await.map_err(failed)?;
            if let Some(e) = self.state.groups.get_mut(&g) {
                e.members.remove(&old_key);
                e.members.insert(new_key.clone());
            }
        }
        Ok(())
    }

    async fn create_group(self, name: &str) -> Result<(), ApplyError> {
        if self.state.groups.contains_key(&key(name)) {
            return Ok(());
        }
        let dn = dn::child("cn", name, &self.conn.groups_base);
        let mut values: Vec<(String, HashSet<String>)> = vec![("cn".into(), one(name))];
        match self.flavor() {
            LdapFlavor::Openldap => {
                values.push(("objectClass".into(), ["top", "groupOfNames"].iter().map(|s| s.to_string()).collect()));
                values.push(("member".into(), one(PLACEHOLDER_MEMBER)));
            }
            LdapFlavor::Ad => {
                values.push(("objectClass".into(), ["top", "group"].iter().map(|s| s.to_string()).collect()));
                values.push(("sAMAccountName".into(), one(name)));
            }
        }
        let code = self.client.add(&dn, values, &[rc::ALREADY_EXISTS]).await;
        let code = code.map_err(failed)?;
        if code == rc::ALREADY_EXISTS {
            // An entry at the DN is the group (created by an earlier, interrupted run). On AD,
            // 68 also means the sAMAccountName is taken elsewhere in the domain: then nothing
            // exists at the DN, and the group was not created.
            let exists = self.client.entry_matches(&dn, group_filter(self.flavor())).await.map_err(failed)?;
            if !exists {
                return Err(ApplyError::new(format!(
                    "cannot create group {name}: the directory answered 68 (already exists), but no group exists at {dn}; {}",
                    match self.flavor() {
                        LdapFlavor::Ad =>
                            "on Active Directory this means the sAMAccountName is taken by another object in the domain: rename one of them",
                        LdapFlavor::Openldap => "an entry of another kind may hold the name",
                    }
                )));
            }
        }
        self.state.groups.insert(key(name), GroupEntry { dn, members: HashSet::new() });
        Ok(())
    }

    async fn membership(self, user: &str, group: &str, adding: bool) -> Result<(), ApplyError> {
        let user_dn = self.user_dn(user)?;
        let Some(g) = self.state.groups.get(&key(group)) else {
            return Err(ApplyError::new(format!("group {group} does not exist on the target")));
        };
        let group_dn = g.dn.clone();
        let member = "member".to_string();
        // AD answers 68 to adding a present member and 53 to removing an absent one (where the
        // standard codes are 20 and 16); 53 also has other causes, so either is taken as done
        // only once a read of the group shows the member there (or gone).
        let ad_codes: &[u32] = match (self.flavor(), adding) {
            (LdapFlavor::Ad, true) => &[rc::ALREADY_EXISTS],
            (LdapFlavor::Ad, false) => &[rc::UNWILLING_TO_PERFORM],
            (LdapFlavor::Openldap, _) => &[],
        };
        let (client, user_dn_ref, group_dn_ref) = (self.client, user_dn.as_str(), group_dn.as_str());
        let confirm = |r: Result<u32, LdapFailure>| async move {
            let (user_dn, group_dn) = (user_dn_ref, group_dn_ref);
            match r {
                Err(e) if e.rc().is_some_and(|c| ad_codes.contains(&c)) => {
                    let filter = dn::eq_filter("member", user_dn);
                    let present = client.entry_matches(group_dn, &filter).await.map_err(failed)?;
                    if present == adding { Ok(Ok(0)) } else { Err(failed(e)) }
                }
                r => Ok(r),
            }
        };
        if adding {
            let mods = vec![Mod::Add(member, one(&user_dn))];
            let r = self.client.modify(&group_dn, mods, &[rc::ATTRIBUTE_OR_VALUE_EXISTS]).await;
            confirm(r).await?.map_err(failed)?;
        } else {
            let mods = vec![Mod::Delete(member.clone(), one(&user_dn))];
            let r = self.client.modify(&group_dn, mods, &[rc::NO_SUCH_ATTRIBUTE]).await;
            match confirm(r).await? {
                Err(e) if e.rc() == Some(rc::OBJECT_CLASS_VIOLATION) && self.flavor() == LdapFlavor::Openldap => {
                    // The last member of a groupOfNames: the placeholder takes its place, in
                    // the same modification.
                    let mods =
                        vec![Mod::Add(member.clone(), one(PLACEHOLDER_MEMBER)), Mod::Delete(member, one(&user_dn))];
                    self.client.modify(&group_dn, mods, &[]).await.map_err(failed)?;
                }
                Err(e) => return Err(failed(e)),
                Ok(_) => {}
            }
        }
        let k = dn::normalize(&user_dn);
        if let Some(g) = self.state.groups.get_mut(&key(group)) {
            if adding {
                g.members.insert(k);
            } else {
                g.members.remove(&k);
            }
        }
        Ok(())
    }
}

/// The attribute values of a new user entry; `users` gives the manager's DN.
fn new_user_attributes(
    conn: &LdapConnection,
    users: &HashMap<String, UserEntry>,
    user_name: &str,
    attrs: &UserAttrs,
    active: bool,
) -> Result<Vec<(String, HashSet<String>)>, ApplyError> {
    let f = conn.flavor;
    let classes: &[&str] = match f {
        LdapFlavor::Openldap => &["top", "person", "organizationalPerson", "inetOrgPerson"],
        LdapFlavor::Ad => &["top", "person", "organizationalPerson", "user"],
    };
    let mut out: Vec<(String, HashSet<String>)> =
        vec![("objectClass".into(), classes.iter().map(|c| c.to_string()).collect())];
    let user_key = &conn.user_key;
    out.push((user_key.clone(), one(user_name)));
    // person requires cn and sn: the display name and family name when managed, else the
    // userName (AD names the entry CN=userName).
    if !user_key.eq_ignore_ascii_case("cn") {
        let cn = match f {
            LdapFlavor::Openldap => attrs.display_name.as_deref().unwrap_or(user_name),
            LdapFlavor::Ad => user_name,
        };
        out.push(("cn".into(), one(cn)));
    }
    if attrs.family_name.is_none() && f == LdapFlavor::Openldap {
        out.push(("sn".into(), one(user_name)));
    }
    for field in UserField::ALL {
        let Some(v) = attrs.get(field).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = match field {
            UserField::Manager => users.get(&key(v)).map(|u| u.dn.clone()).ok_or_else(|| {
                ApplyError::new(format!("the manager {v} of {user_name} does not exist on the target"))
            })?,
            _ => v.clone(),
        };
        let attr = field_attribute(f, field);
        if !attr.eq_ignore_ascii_case(user_key) {
            out.push((attr.to_string(), one(&value)));
        }
    }
    match &conn.disable {
        LdapDisable::AccountControl => {
            let uac = UAC_NORMAL_ACCOUNT | if active { 0 } else { UAC_ACCOUNTDISABLE };
            out.push(("userAccountControl".into(), one(&uac.to_string())));
        }
        LdapDisable::Attribute { name, value } if !active => out.push((name.clone(), one(value))),
        _ => {}
    }
    Ok(out)
}

/// The DN of a new user entry.
fn new_user_dn(conn: &LdapConnection, user_name: &str, active: bool) -> String {
    let base = match &conn.disable {
        LdapDisable::MoveTo(to) if !active => to.as_str(),
        _ => conn.users_base.as_str(),
    };
    let rdn_attr = match conn.flavor {
        LdapFlavor::Openldap => conn.user_key.as_str(),
        LdapFlavor::Ad => "CN",
    };
    dn::child(rdn_attr, user_name, base)
}

fn op_name(op: &Operation) -> &'static str {
    match op {
        Operation::CreateServiceAccount { .. } | Operation::UpdateServiceAccount { .. } => "a service account",
        Operation::AddCredential { .. } | Operation::RemoveCredential { .. } => "credential rotation",
        Operation::SetAuthMethod { .. } => "a sign-in methods policy",
        _ => "this operation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Name;
    use crate::plan::{Action, Address, ObjectKind, Reason, ReasonKind};

    fn create(name: &str, manager: Option<&str>) -> Change {
        Change {
            address: Address::new(&Name::new("t").unwrap(), ObjectKind::User, name),
            action: Action::Create,
            reason: Reason::new(ReasonKind::Config, "x"),
            before: None,
            after: None,
            fingerprint: "absent".into(),
            subject: None,
            notes: vec![],
            operation: Operation::CreateUser {
                user_name: name.into(),
                attrs: UserAttrs { manager: manager.map(str::to_string), ..Default::default() },
                active: true,
            },
        }
    }

    #[test]
    fn managers_are_created_before_their_reports() {
        let c = [
            create("d", Some("C")),
            create("a", None),
            create("b", Some("a")),
            create("c", Some("b")),
            create("e", Some("e")),
        ];
        let refs: Vec<&Change> = c.iter().collect();
        let order = creation_order(&refs);
        let pos = |i: usize| order.iter().position(|&x| x == i).unwrap();
        assert!(pos(1) < pos(2) && pos(2) < pos(3) && pos(3) < pos(0));
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn flavors_map_fields_to_their_attributes() {
        assert_eq!(field_attribute(LdapFlavor::Openldap, UserField::Department), "departmentNumber");
        assert_eq!(field_attribute(LdapFlavor::Ad, UserField::Department), "department");
        assert_eq!(field_attribute(LdapFlavor::Openldap, UserField::EmployeeId), "employeeNumber");
        assert_eq!(field_attribute(LdapFlavor::Ad, UserField::EmployeeId), "employeeID");
        assert_eq!(field_attribute(LdapFlavor::Ad, UserField::FamilyName), "sn");
    }

    fn connection(flavor: LdapFlavor, disable: LdapDisable) -> LdapConnection {
        LdapConnection {
            url: "ldaps://x".into(),
            start_tls: false,
            bind_dn: "cn=k,dc=x".into(),
            password: SecretRef::Env("P".into()),
            users_base: "ou=people,dc=x".into(),
            groups_base: "ou=groups,dc=x".into(),
            flavor,
            user_key: if flavor == LdapFlavor::Ad { "sAMAccountName".into() } else { "uid".into() },
            disable,
            access_log: None,
        }
    }

    fn values(v: &[(String, HashSet<String>)], attr: &str) -> Vec<String> {
        let mut out: Vec<String> =
            v.iter().filter(|(a, _)| a.eq_ignore_ascii_case(attr)).flat_map(|(_, s)| s.iter().cloned()).collect();
        out.sort();
        out
    }

    #[test]
    fn new_entries_follow_each_flavor() {
        let users: HashMap<String, UserEntry> =
            [("boss".to_string(), UserEntry { dn: "uid=boss,ou=people,dc=x".into(), uac: None })].into();
        let attrs = UserAttrs {
            display_name: Some("Ann Example".into()),
            department: Some("Finance".into()),
            employee_id: Some("E1".into()),
            manager: Some("Boss".into()),
            ..Default::default()
        };
        let ppolicy = LdapDisable::Attribute { name: "pwdAccountLockedTime".into(), value: "000001010000Z".into() };
        let c = connection(LdapFlavor::Openldap, ppolicy);
        let v = new_user_attributes(&c, &users, "a,nn", &attrs, false).unwrap();
        assert_eq!(values(&v, "objectClass"), ["inetOrgPerson", "organizationalPerson", "person", "top"]);
        assert_eq!(values(&v, "uid"), ["a,nn"]);
        assert_eq!(values(&v, "cn"), ["Ann Example"]);
        assert_eq!(values(&v, "sn"), ["a,nn"], "person needs sn; the userName stands in");
        assert_eq!(values(&v, "departmentNumber"), ["Finance"]);
        assert_eq!(values(&v, "employeeNumber"), ["E1"]);
        assert_eq!(values(&v, "manager"), ["uid=boss,ou=people,dc=x"]);
        assert_eq!(values(&v, "pwdAccountLockedTime"), ["000001010000Z"]);
        assert_eq!(new_user_dn(&c, "a,nn", false), r"uid=a\2cnn,ou=people,dc=x");
        let active = new_user_attributes(&c, &users, "a", &attrs, true).unwrap();
        assert!(values(&active, "pwdAccountLockedTime").is_empty());
        let missing = UserAttrs { manager: Some("nobody".into()), ..Default::default() };
        assert!(new_user_attributes(&c, &users, "a", &missing, true).is_err());

        let moved = connection(LdapFlavor::Openldap, LdapDisable::MoveTo("ou=off,dc=x".into()));
        assert_eq!(new_user_dn(&moved, "#a", false), r"uid=\23a,ou=off,dc=x");
        assert_eq!(new_user_dn(&moved, "#a", true), r"uid=\23a,ou=people,dc=x");

        let ad = connection(LdapFlavor::Ad, LdapDisable::AccountControl);
        let v = new_user_attributes(&ad, &users, "ann", &attrs, false).unwrap();
        assert_eq!(values(&v, "objectClass"), ["organizationalPerson", "person", "top", "user"]);
        assert_eq!(values(&v, "sAMAccountName"), ["ann"]);
        assert_eq!(values(&v, "cn"), ["ann"]);
        assert_eq!(values(&v, "department"), ["Finance"]);
        assert_eq!(values(&v, "employeeID"), ["E1"]);
        assert_eq!(values(&v, "userAccountControl"), ["514"]);
        assert!(values(&v, "sn").is_empty());
        let v = new_user_attributes(&ad, &users, "ann", &attrs, true).unwrap();
        assert_eq!(values(&v, "userAccountControl"), ["512"]);
        assert_eq!(new_user_dn(&ad, "Ann, Jr.", true), r"CN=Ann\2c Jr.,ou=people,dc=x");
    }

    #[test]
    fn plain_ldap_is_refused_except_on_loopback_or_with_start_tls() {
        let open = |url: &str, start_tls: bool| {
            let mut c = connection(LdapFlavor::Openldap, LdapDisable::AccountControl);
            c.url = url.into();
            c.start_tls = start_tls;
            c.password = SecretRef::Env("KEYWARD_LDAP_UNIT_TEST_UNSET".into());
            let target = Target {
                name: Name::new("t").unwrap(),
                users: crate::model::UsersScope::All,
                ca_file: None,
                connection: Connection::Ldap(c),
            };
            match LdapProvider::open(&target, Path::new("."), Access::Read) {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            }
        };
        assert!(open("ldap://ldap.example.com", false).contains("plain ldap://"));
        // The others get past the URL check and stop at the unset password variable.
        for (url, tls) in [("ldap://127.0.0.1:389", false), ("ldap://ldap.example.com", true), ("ldaps://x", false)] {
            let e = open(url, tls);
            assert!(e.contains("KEYWARD_LDAP_UNIT_TEST_UNSET"), "{url}: {e}");
        }
    }

    #[test]
    fn object_guids_print_in_their_usual_form() {
        let b: Vec<u8> = (0u8..16).collect();
        assert_eq!(guid_string(&b), "03020100-0504-0706-0809-0a0b0c0d0e0f");
    }
}
