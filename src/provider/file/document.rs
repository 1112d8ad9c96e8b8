//! The JSON document of the `file` provider, and how operations change it.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::model::{
    AppRoleRef, AuthMethod, Binding, BindingKind, CredentialType, LiveAccount, LiveBinding, LiveCredential,
    LiveServiceAccount, LiveTarget, Timestamp, UserAttrs, UserField, digest,
};
use crate::plan::{Operation, Principal};
use crate::provider::ApplyError;

/// The whole directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DirectoryFile {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub users: Vec<FileAccount>,
    #[serde(default)]
    pub groups: Vec<FileBinding>,
    /// Predefined roles: `kind` is directoryRole, appRole or securityRole.
    #[serde(default)]
    pub roles: Vec<FileBinding>,
    #[serde(default)]
    pub service_accounts: Vec<FileServiceAccount>,
    /// Sign-in methods policy: method → enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_methods: Option<BTreeMap<AuthMethod, bool>>,
    /// The next id number to hand out.
    #[serde(default)]
    pub next_id: u64,
}

fn one() -> u32 {
    1
}

impl Default for DirectoryFile {
    fn default() -> Self {
        DirectoryFile {
            version: 1,
            users: vec![],
            groups: vec![],
            roles: vec![],
            service_accounts: vec![],
            authentication_methods: None,
            next_id: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "FileAccountFields")]
pub struct FileAccount {
    pub id: String,
    pub user_name: String,
    #[serde(flatten)]
    pub attrs: UserAttrs,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sign_in: Option<Timestamp>,
    /// Sign-in methods the person registered, for the access review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_methods: Option<Vec<crate::model::AuthMethod>>,
    /// Refuses every write (a stand-in for a system that rejects a change).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// [`FileAccount`] as written, its attributes inline: read without `flatten`, which buffers
/// every account before reading it (a third of reading a directory of 100,000 users) and lets
/// unknown fields through.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileAccountFields {
    id: String,
    user_name: String,
    active: bool,
    #[serde(default)]
    last_sign_in: Option<Timestamp>,
    #[serde(default)]
    registered_methods: Option<Vec<crate::model::AuthMethod>>,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    family_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    job_title: Option<String>,
    #[serde(default)]
    manager: Option<String>,
    #[serde(default)]
    employee_id: Option<String>,
}

impl From<FileAccountFields> for FileAccount {
    fn from(f: FileAccountFields) -> Self {
        FileAccount {
            id: f.id,
            user_name: f.user_name,
            attrs: UserAttrs {
                display_name: f.display_name,
                given_name: f.given_name,
                family_name: f.family_name,
                email: f.email,
                department: f.department,
                job_title: f.job_title,
                manager: f.manager,
                employee_id: f.employee_id,
            },
            active: f.active,
            last_sign_in: f.last_sign_in,
            registered_methods: f.registered_methods,
            read_only: f.read_only,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileBinding {
    pub id: String,
    /// `group` for groups; `directoryRole`, `appRole` or `securityRole` for predefined roles.
    #[serde(default = "group_kind")]
    pub kind: String,
    /// The group or role name; for app roles `APP/ROLE`.
    pub name: String,
    #[serde(default)]
    pub members: Vec<String>,
}

fn group_kind() -> String {
    "group".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileServiceAccount {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub credentials: Vec<FileCredential>,
}

/// Credential metadata; the file never holds secret material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileCredential {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CredentialType,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
}

impl FileBinding {
    fn to_binding(&self) -> Option<Binding> {
        Some(match self.kind.as_str() {
            "group" => Binding::Group(self.name.clone()),
            "directoryRole" => Binding::DirectoryRole(self.name.clone()),
            "securityRole" => Binding::SecurityRole(self.name.clone()),
            "appRole" => {
                let (app, role) = self.name.split_once('/')?;
                Binding::AppRole(AppRoleRef { app: app.into(), role: role.into() })
            }
            _ => return None,
        })
    }
}

impl DirectoryFile {
    /// The live state as the planner sees it.
    pub fn to_live(&self) -> LiveTarget {
        self.clone().into_live()
    }

    /// [`Self::to_live`], taking the document rather than copying it.
    pub fn into_live(self) -> LiveTarget {
        let bindings = self
            .groups
            .into_iter()
            .chain(self.roles)
            .filter_map(|b| {
                Some(LiveBinding { binding: b.to_binding()?, fingerprint: digest(&b), id: b.id, members: b.members })
            })
            .collect();
        LiveTarget {
            accounts: self
                .users
                .into_iter()
                .map(|u| LiveAccount {
                    fingerprint: digest(&u),
                    id: u.id,
                    user_name: u.user_name,
                    attrs: u.attrs,
                    active: u.active,
                    last_sign_in: u.last_sign_in,
                    registered_methods: u.registered_methods,
                })
                .collect(),
            service_accounts: self
                .service_accounts
                .into_iter()
                .map(|s| LiveServiceAccount {
                    application_id: None,
                    active: None,
                    fingerprint: digest(&s),
                    id: s.id,
                    name: s.name,
                    display_name: s.display_name,
                    description: s.description,
                    owner: s.owner,
                    credentials: s
                        .credentials
                        .into_iter()
                        .map(|c| LiveCredential {
                            id: c.id,
                            name: c.name,
                            kind: c.kind,
                            start: c.start,
                            end: c.end,
                            thumbprint: c.thumbprint,
                        })
                        .collect(),
                })
                .collect(),
            bindings,
            auth_methods: self.authentication_methods,
            ..LiveTarget::default()
        }
    }
}

/// Where a binding lives in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Group(usize),
    Role(usize),
}

/// A directory document with indexes, so applying N operations costs O(N), not O(N x users).
pub struct Editor {
    doc: DirectoryFile,
    /// Lower-cased userName -> index in `users`.
    users: HashMap<String, usize>,
    service_accounts: HashMap<String, usize>,
    /// (kind, lower-cased name) -> binding.
    bindings: HashMap<(BindingKind, String), Slot>,
    /// Members of bindings touched so far, for O(1) membership tests.
    members: HashMap<Slot, HashSet<String>>,
}

impl Editor {
    pub fn new(doc: DirectoryFile) -> Self {
        let mut e = Editor {
            doc,
            users: HashMap::new(),
            service_accounts: HashMap::new(),
            bindings: HashMap::new(),
            members: HashMap::new(),
        };
        e.reindex();
        e
    }

    fn reindex(&mut self) {
        self.users = self.doc.users.iter().enumerate().map(|(i, u)| (u.user_name.to_lowercase(), i)).collect();
        self.service_accounts =
            self.doc.service_accounts.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        self.bindings.clear();
        for (i, b) in self.doc.groups.iter().enumerate() {
            if let Some(k) = binding_key(b) {
                self.bindings.entry(k).or_insert(Slot::Group(i));
            }
        }
        for (i, b) in self.doc.roles.iter().enumerate() {
            if let Some(k) = binding_key(b) {
                self.bindings.entry(k).or_insert(Slot::Role(i));
            }
        }
        self.members.clear();
    }

    pub fn doc(&self) -> &DirectoryFile {
        &self.doc
    }

    pub fn into_doc(self) -> DirectoryFile {
        self.doc
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.doc.next_id += 1;
        format!("{prefix}-{}", self.doc.next_id)
    }

    fn user_index(&self, user_name: &str) -> Option<usize> {
        self.users.get(&user_name.to_lowercase()).copied()
    }

    fn user_mut(&mut self, user_name: &str) -> Result<&mut FileAccount, ApplyError> {
        let i = self
            .user_index(user_name)
            .ok_or_else(|| ApplyError::conflict(format!("account {user_name} no longer exists")))?;
        let u = &mut self.doc.users[i];
        if u.read_only {
            return Err(ApplyError::new(format!("account {user_name} is read-only on this directory")));
        }
        Ok(u)
    }

    fn principal_id(&self, p: &Principal) -> Result<String, ApplyError> {
        match p {
            Principal::User(u) => {
                let i = self.user_index(u).ok_or_else(|| ApplyError::new(format!("account {u} does not exist")))?;
                let acc = &self.doc.users[i];
                if acc.read_only {
                    return Err(ApplyError::new(format!("account {u} is read-only on this directory")));
                }
                Ok(acc.id.clone())
            }
            Principal::ServiceAccount(n) => self
                .service_accounts
                .get(n)
                .map(|i| self.doc.service_accounts[*i].id.clone())
                .ok_or_else(|| ApplyError::new(format!("service account {n} does not exist"))),
        }
    }

    fn slot(&self, b: &Binding) -> Result<Slot, ApplyError> {
        self.bindings
            .get(&(b.kind(), b.object_name().to_lowercase()))
            .copied()
            .ok_or_else(|| ApplyError::new(format!("{} does not exist", b.label())))
    }

    fn binding_at(&mut self, slot: Slot) -> &mut FileBinding {
        match slot {
            Slot::Group(i) => &mut self.doc.groups[i],
            Slot::Role(i) => &mut self.doc.roles[i],
        }
    }

    fn member_set(&mut self, slot: Slot) -> &mut HashSet<String> {
        if !self.members.contains_key(&slot) {
            let set = self.binding_at(slot).members.iter().cloned().collect();
            self.members.insert(slot, set);
        }
        self.members.get_mut(&slot).expect("inserted above")
    }

    /// Applies one operation. Idempotent: applying an operation whose effect is already there
    /// succeeds without change, so a re-run after a partial failure converges.
    /// [`Self::apply`], recording an `AddCredential` as issued at `now` (metadata only: no
    /// material is generated or delivered); for tests and benchmarks.
    pub fn apply_at(&mut self, op: &Operation, now: Timestamp) -> Result<(), ApplyError> {
        let Operation::AddCredential { account, credential, kind, lifetime_seconds, .. } = op else {
            return self.apply(op);
        };
        let name = format!("{credential}@{}", now.format("%Y-%m-%d"));
        let end = now + chrono::TimeDelta::seconds(*lifetime_seconds);
        self.add_credential(account, &name, *kind, now, end, None).map(|_| ())
    }

    pub fn apply(&mut self, op: &Operation) -> Result<(), ApplyError> {
        match op {
            Operation::CreateUser { user_name, attrs, active } => {
                if let Some(existing) = self.user_index(user_name).map(|i| &mut self.doc.users[i]) {
                    // Adopt an account created since the plan instead of duplicating it.
                    if existing.read_only {
                        return Err(ApplyError::new(format!("account {user_name} is read-only on this directory")));
                    }
                    existing.attrs.overlay(attrs);
                    existing.active = *active;
                    return Ok(());
                }
                let id = self.new_id("u");
                self.users.insert(user_name.to_lowercase(), self.doc.users.len());
                self.doc.users.push(FileAccount {
                    id,
                    user_name: user_name.clone(),
                    attrs: attrs.clone(),
                    active: *active,
                    last_sign_in: None,
                    registered_methods: None,
                    read_only: false,
                });
                Ok(())
            }
            Operation::UpdateUser { user_name, set } => {
                let u = self.user_mut(user_name)?;
                for f in UserField::ALL {
                    if let Some(v) = set.get(f) {
                        *u.attrs.slot(f) = Some(v.clone());
                    }
                }
                Ok(())
            }
            Operation::SetUserActive { user_name, active } => {
                self.user_mut(user_name)?.active = *active;
                Ok(())
            }
            Operation::MoveUser { user_name, .. } => {
                Err(ApplyError::new(format!("this directory has no business units to move {user_name} between")))
            }
            Operation::DeleteUser { user_name } => {
                let id = self.user_mut(user_name)?.id.clone();
                self.doc.users.retain(|u| u.id != id);
                for b in self.doc.groups.iter_mut().chain(self.doc.roles.iter_mut()) {
                    b.members.retain(|m| m != &id);
                }
                // Deletions are few (guards.maxDeletes); rebuilding the indexes keeps them simple.
                self.reindex();
                Ok(())
            }
            Operation::CreateBinding { binding } => {
                if self.slot(binding).is_ok() {
                    return Ok(());
                }
                let Binding::Group(name) = binding else {
                    return Err(ApplyError::new(format!("{} is predefined and cannot be created", binding.label())));
                };
                let id = self.new_id("g");
                let slot = Slot::Group(self.doc.groups.len());
                self.doc.groups.push(FileBinding { id, kind: "group".into(), name: name.clone(), members: vec![] });
                self.bindings.insert((BindingKind::Group, name.to_lowercase()), slot);
                Ok(())
            }
            Operation::UpdateBinding { binding } => {
                Err(ApplyError::new(format!("{} has no settings this directory keeps", binding.label())))
            }
            Operation::Assign { principal, binding } => {
                let id = self.principal_id(principal)?;
                let slot = self.slot(binding)?;
                if self.member_set(slot).insert(id.clone()) {
                    self.binding_at(slot).members.push(id);
                }
                Ok(())
            }
            Operation::Revoke { principal, binding } => {
                let id = self.principal_id(principal)?;
                let slot = self.slot(binding)?;
                if self.member_set(slot).remove(&id) {
                    self.binding_at(slot).members.retain(|m| m != &id);
                }
                Ok(())
            }
            Operation::CreateServiceAccount { name, display_name, description, owner, .. } => {
                if self.service_accounts.contains_key(name) {
                    return Ok(());
                }
                let id = self.new_id("sa");
                self.service_accounts.insert(name.clone(), self.doc.service_accounts.len());
                self.doc.service_accounts.push(FileServiceAccount {
                    id,
                    name: name.clone(),
                    display_name: display_name.clone(),
                    description: description.clone(),
                    owner: owner.clone(),
                    credentials: vec![],
                });
                Ok(())
            }
            Operation::UpdateServiceAccount { name, display_name, description, owner } => {
                let i = *self
                    .service_accounts
                    .get(name)
                    .ok_or_else(|| ApplyError::conflict(format!("service account {name} no longer exists")))?;
                let s = &mut self.doc.service_accounts[i];
                if display_name.is_some() {
                    s.display_name = display_name.clone();
                }
                if description.is_some() {
                    s.description = description.clone();
                }
                if owner.is_some() {
                    s.owner = owner.clone();
                }
                Ok(())
            }
            Operation::AddCredential { .. } => {
                Err(ApplyError::new("new credentials go through Provider::issue, which hands the material back"))
            }
            Operation::RemoveCredential { account, credential_id, .. } => {
                self.remove_credential(account, credential_id)
            }
            Operation::SetAuthMethod { method, enabled } => {
                self.doc.authentication_methods.get_or_insert_with(BTreeMap::new).insert(*method, *enabled);
                Ok(())
            }
            Operation::MakeEligible { .. } | Operation::EndEligibility { .. } | Operation::SetActivation { .. } => {
                Err(ApplyError::new("the file provider keeps no eligibility"))
            }
            Operation::SetServiceAccountActive { .. } => {
                Err(ApplyError::new("the file provider keeps no application users to enable or disable"))
            }
        }
    }
}

impl Editor {
    fn service_account_mut(&mut self, name: &str) -> Result<&mut FileServiceAccount, ApplyError> {
        let i = *self
            .service_accounts
            .get(name)
            .ok_or_else(|| ApplyError::conflict(format!("service account {name} does not exist")))?;
        Ok(&mut self.doc.service_accounts[i])
    }

    /// Adds credential metadata to a service account; returns the new credential's id.
    pub fn add_credential(
        &mut self,
        account: &str,
        name: &str,
        kind: CredentialType,
        start: Timestamp,
        end: Timestamp,
        thumbprint: Option<&str>,
    ) -> Result<String, ApplyError> {
        self.service_account_mut(account)?;
        let id = self.new_id("c");
        let sa = self.service_account_mut(account)?;
        sa.credentials.push(FileCredential {
            id: id.clone(),
            name: name.to_string(),
            kind,
            start,
            end,
            thumbprint: thumbprint.map(str::to_string),
        });
        Ok(id)
    }

    /// Removes a credential; succeeds when it is already gone.
    pub fn remove_credential(&mut self, account: &str, id: &str) -> Result<(), ApplyError> {
        let Ok(sa) = self.service_account_mut(account) else { return Ok(()) };
        sa.credentials.retain(|c| c.id != id);
        Ok(())
    }
}

fn binding_key(b: &FileBinding) -> Option<(BindingKind, String)> {
    let binding = b.to_binding()?;
    Some((binding.kind(), binding.object_name().to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_read_their_attributes_inline_and_refuse_unknown_fields() {
        let ok = r#"{"users":[{"id":"u-1","userName":"a@x","active":true,"jobTitle":"Clerk","manager":"b@x"}]}"#;
        let doc: DirectoryFile = serde_json::from_str(ok).unwrap();
        let attrs = &doc.users[0].attrs;
        assert_eq!((attrs.job_title.as_deref(), attrs.manager.as_deref()), (Some("Clerk"), Some("b@x")));
        // Written back, the attributes stay inline, and read back the same.
        let again: DirectoryFile = serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
        assert_eq!(again, doc);
        // A misspelt attribute is an error naming it, not a value silently dropped.
        let typo = r#"{"users":[{"id":"u-1","userName":"a@x","active":true,"jobTitel":"Clerk"}]}"#;
        let e = serde_json::from_str::<DirectoryFile>(typo).unwrap_err().to_string();
        assert!(e.contains("unknown field `jobTitel`"), "{e}");
    }
}
