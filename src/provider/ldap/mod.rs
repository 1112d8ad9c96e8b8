//! The `ldap` provider: OpenLDAP (`inetOrgPerson`, `groupOfNames`) and Active Directory
//! (`user`, `group`, `userAccountControl`).
//!
//! Guarantees:
//! - reading uses the paged-results control (RFC 2696) for users and groups, so a directory
//!   whose size limit is below its number of entries is still read whole; a group whose
//!   members AD returns in ranges (`member;range=0-1499`) is read range by range;
//! - reading first checks the server's schema (see [`schema`]): a target whose schema lacks an
//!   attribute keyward would write (the disable attribute, the user key, a user field) is
//!   refused when it is read, so an apply never fails halfway on an undefined attribute;
//! - a user is keyed by the configured attribute (`userKey`: `uid` by default, `sAMAccountName`
//!   for AD); entries without it are not accounts keyward sees;
//! - writes touch only the attributes keyward manages: a modification replaces exactly the
//!   attributes that change; membership changes are single-value `add` / `delete` of `member`,
//!   never a replace of the whole attribute, so members keyward does not know (nested groups,
//!   entries of other systems) stay;
//! - every value placed in a filter is escaped per RFC 4515 and every value placed in a DN per
//!   RFC 4514 (see [`dn`]);
//! - writes are idempotent: adding a present member (20 attributeOrValueExists), removing an
//!   absent one (16 noSuchAttribute), deleting a missing entry (32 noSuchObject) and creating a
//!   group that exists (68 entryAlreadyExists) succeed; a user creation that meets an existing
//!   entry of the same userName adopts it and sets its attributes;
//! - errors carry the LDAP result code, its name and the server's diagnostic message; the bind
//!   password is never printed.
//!
//! Account ids are the entry's `entryUUID` (OpenLDAP, RFC 4530) or `objectGUID` (AD), not its
//! DN: they stay the same when an entry is renamed or moved (disabling by moving to another OU
//! moves it), so a plan and its apply agree on who is who. Group members are DNs; each member
//! DN is matched to the account read at that DN (compared as the directory compares DNs) and
//! mapped to its id; a DN that matches no account is a foreign member, kept as the DN.
//!
//! `groupOfNames` must have at least one `member`. A group keyward creates holds the empty DN
//! (the root DSE, which names no person and grants nothing) as a placeholder member, which keyward
//! never reports or removes; so removing a group's last managed member never empties it. A
//! group created elsewhere whose last member is removed gets the placeholder in the same
//! modification.
//!
//! Disabling: AD sets the ACCOUNTDISABLE bit (2) of `userAccountControl`. OpenLDAP uses the
//! configured method: an attribute set while disabled (by default the ppolicy lock,
//! `pwdAccountLockedTime: 000001010000Z`), or a move below another OU (`disable.moveTo`), in
//! which case keyward also rewrites the moved DN in the groups it read, as the refint overlay
//! would.

pub mod client;
/// The DN and filter escaping, kept in the model (validation checks DNs too).
pub use crate::model::dn;

mod accesslog;
mod apply;
mod attribution;
mod feed;
mod read;
pub mod schema;
pub mod usn;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ldap3::{Mod, SearchEntry};

use self::client::{Client, ConnectOptions, LdapFailure, rc};
use super::{Access, ApplyError, Attribution, Capabilities, FeedError, Provider, ProviderError, capabilities};
use crate::model::config::{Connection, LdapConnection, LdapDisable, LdapFlavor};
use crate::model::dn::Dn;
use crate::model::feed::{Changes, Cursor};
use crate::model::{
    Binding, LiveAccount, LiveBinding, LiveTarget, ProviderKind, Secret, SecretRef, Target, UserAttrs, UserField,
    digest,
};
use crate::plan::{Change, Operation, Principal};
use crate::remote::http;

/// Entries per page of a paged search.
pub const PAGE_SIZE: i32 = 500;

/// The placeholder member of a `groupOfNames` keyward creates: the empty DN.
const PLACEHOLDER_MEMBER: &str = "";

/// `userAccountControl` bits (AD).
const UAC_ACCOUNTDISABLE: u32 = 0x2;
const UAC_NORMAL_ACCOUNT: u32 = 0x200;

/// The attribute that holds a user field, by flavor.
pub fn field_attribute(flavor: LdapFlavor, f: UserField) -> &'static str {
    match (flavor, f) {
        (_, UserField::DisplayName) => "displayName",
        (_, UserField::GivenName) => "givenName",
        (_, UserField::FamilyName) => "sn",
        (_, UserField::Email) => "mail",
        (LdapFlavor::Openldap, UserField::Department) => "departmentNumber",
        (LdapFlavor::Ad, UserField::Department) => "department",
        (_, UserField::JobTitle) => "title",
        (_, UserField::Manager) => "manager",
        (LdapFlavor::Openldap, UserField::EmployeeId) => "employeeNumber",
        (LdapFlavor::Ad, UserField::EmployeeId) => "employeeID",
    }
}

fn user_filter(flavor: LdapFlavor) -> &'static str {
    match flavor {
        LdapFlavor::Openldap => "(objectClass=inetOrgPerson)",
        LdapFlavor::Ad => "(&(objectCategory=person)(objectClass=user))",
    }
}

fn group_filter(flavor: LdapFlavor) -> &'static str {
    match flavor {
        LdapFlavor::Openldap => "(objectClass=groupOfNames)",
        LdapFlavor::Ad => "(objectClass=group)",
    }
}

fn id_attribute(flavor: LdapFlavor) -> &'static str {
    match flavor {
        LdapFlavor::Openldap => "entryUUID",
        LdapFlavor::Ad => "objectGUID",
    }
}

fn key(s: &str) -> String {
    s.to_lowercase()
}

/// An account as last seen or written.
#[derive(Debug, Clone)]
struct UserEntry {
    dn: String,
    uac: Option<u32>,
}

/// A group as last seen or written, with its members' DN keys.
#[derive(Debug, Clone)]
struct GroupEntry {
    dn: String,
    members: HashSet<String>,
}

/// What keyward knows of the directory since its read.
#[derive(Debug, Default)]
struct State {
    /// By lower-cased userName.
    users: HashMap<String, UserEntry>,
    /// By lower-cased group name (`cn`).
    groups: HashMap<String, GroupEntry>,
}

pub struct LdapProvider {
    target: String,
    caps: Capabilities,
    access: Access,
    conn: LdapConnection,
    ca_file: Option<PathBuf>,
    password: Secret<String>,
    password_ref: SecretRef,
    client: Option<Client>,
    state: Option<State>,
    page_size: i32,
    /// Fingerprints of the groups the last feed round read, by id, with their sorted members.
    feed_fingerprints: HashMap<String, (Vec<String>, String)>,
}

impl LdapProvider {
    pub fn open(target: &Target, root: &Path, access: Access) -> Result<Self, ProviderError> {
        let name = target.name.to_string();
        let fail = |message: String| ProviderError::Remote { target: name.clone(), message };
        let Connection::Ldap(conn) = &target.connection else {
            return Err(fail("the target is not an LDAP target".into()));
        };
        // Validation enforces this too; a target built another way must not send the password
        // in the clear to another host.
        let scheme = conn.url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
        let plain_ok = conn.start_tls || conn.url.parse::<reqwest::Url>().is_ok_and(|u| http::is_loopback(&u));
        if scheme != "ldaps" && !(scheme == "ldap" && plain_ok) {
            return Err(fail(format!(
                "`{}` is not ldaps://, and plain ldap:// without startTls is allowed only on loopback",
                conn.url
            )));
        }
        let password = http::resolve_secret(&conn.password, root).map_err(|e| fail(e.to_string()))?;
        Ok(LdapProvider {
            target: name,
            caps: capabilities(ProviderKind::Ldap),
            access,
            conn: conn.clone(),
            ca_file: target.ca_file.as_ref().map(|c| root.join(c)),
            password,
            password_ref: conn.password.clone(),
            client: None,
            state: None,
            page_size: PAGE_SIZE,
            feed_fingerprints: HashMap::new(),
        })
    }

    /// Sets the page size of paged searches (for tests of paging).
    pub fn with_page_size(mut self, size: i32) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// Pages read by paged searches since the provider connected.
    pub fn pages_read(&self) -> usize {
        self.client.as_ref().map(Client::pages_read).unwrap_or(0)
    }

    fn remote(&self, what: &str, e: &LdapFailure) -> ProviderError {
        let hint = match e.rc() {
            Some(rc::INVALID_CREDENTIALS) => format!("; check bindDn and the password in {}", self.password_ref),
            Some(rc::SIZE_LIMIT_EXCEEDED) => "; the server does not page this search".to_string(),
            _ => String::new(),
        };
        ProviderError::Remote { target: self.target.clone(), message: format!("cannot {what}: {e}{hint}") }
    }

    async fn client(&mut self) -> Result<Client, ProviderError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let options = ConnectOptions {
            url: &self.conn.url,
            start_tls: self.conn.start_tls,
            ca_file: self.ca_file.as_deref(),
            bind_dn: &self.conn.bind_dn,
            password: self.password.expose(),
        };
        let c = Client::connect(&options).await.map_err(|e| self.remote("connect", &e))?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// The attributes read for a user.
    fn user_attributes(&self) -> Vec<String> {
        let f = self.conn.flavor;
        let mut a: Vec<String> = vec![self.conn.user_key.clone(), "cn".into(), id_attribute(f).into()];
        a.extend(UserField::ALL.iter().map(|u| field_attribute(f, *u).to_string()));
        match &self.conn.disable {
            LdapDisable::AccountControl => a.push("userAccountControl".into()),
            LdapDisable::Attribute { name, .. } => a.push(name.clone()),
            LdapDisable::MoveTo(_) => {}
        }
        a
    }

    /// The bases users are read from: `usersBase`, and the disabled OU when it lies elsewhere.
    fn user_bases(&self) -> Vec<String> {
        let mut bases = vec![self.conn.users_base.clone()];
        if let LdapDisable::MoveTo(to) = &self.conn.disable {
            let within = match (Dn::parse(to), Dn::parse(&self.conn.users_base)) {
                (Ok(t), Ok(u)) => t.is_within(&u),
                _ => false,
            };
            if !within {
                bases.push(to.clone());
            }
        }
        bases
    }

    fn is_active(&self, dn: &Dn, attrs: &HashMap<String, Vec<String>>) -> bool {
        match &self.conn.disable {
            LdapDisable::AccountControl => first(attrs, "userAccountControl")
                .and_then(|v| v.parse::<u32>().ok())
                .is_none_or(|uac| uac & UAC_ACCOUNTDISABLE == 0),
            LdapDisable::Attribute { name, .. } => first(attrs, name).is_none(),
            LdapDisable::MoveTo(to) => Dn::parse(to).map(|t| !dn.is_within(&t)).unwrap_or(true),
        }
    }
}

fn first<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> Option<&'a String> {
    attrs.get(&name.to_ascii_lowercase()).and_then(|v| v.first())
}

/// An entry's id: `entryUUID`, `objectGUID` (as its GUID string) or, lacking both, its DN key.
fn entry_id(e: &SearchEntry, attrs: &HashMap<String, Vec<String>>, dn_key: &str) -> String {
    if let Some(u) = first(attrs, "entryUUID") {
        return u.to_ascii_lowercase();
    }
    let guid = e.bin_attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case("objectGUID")).and_then(|(_, v)| v.first());
    match guid {
        Some(g) if g.len() == 16 => guid_string(g),
        _ => dn_key.to_string(),
    }
}

/// A GUID's usual text form: the first three fields are little-endian on the wire.
fn guid_string(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

#[async_trait]
impl Provider for LdapProvider {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
        self.read_live().await
    }

    async fn read_with_cursor(&mut self) -> Result<(LiveTarget, Option<Cursor>), ProviderError> {
        match self.conn.flavor {
            LdapFlavor::Openldap => self.read_with_feed().await,
            LdapFlavor::Ad => self.read_with_usn().await,
        }
    }

    async fn read_changes(&mut self, cursor: &Cursor, last: &LiveTarget) -> Result<Changes, FeedError> {
        match self.conn.flavor {
            LdapFlavor::Openldap => self.changes_since(cursor, last).await,
            LdapFlavor::Ad => self.usn_changes(cursor, last).await,
        }
    }

    fn binding_fingerprint(&self, binding: &LiveBinding) -> String {
        self.feed_fingerprint(binding).unwrap_or_else(|| digest(&(&binding.id, &binding.binding, &binding.members)))
    }

    /// LDAP operations sent so far: the bind, each page of a search, each write.
    fn requests(&self) -> Option<usize> {
        Some(self.client.as_ref().map(Client::operations).unwrap_or(0))
    }

    async fn attribute(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        match self.conn.flavor {
            LdapFlavor::Openldap => self.attribute_entries(changes).await,
            LdapFlavor::Ad => self.attribute_when_changed(changes).await,
        }
    }

    async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        self.apply_changes(changes).await
    }
}
