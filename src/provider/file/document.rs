//! The JSON document of the `file` provider, and how operations change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    AppRoleRef, AuthMethod, Binding, CredentialType, LiveAccount, LiveBinding, LiveCredential, LiveServiceAccount,
    LiveTarget, Timestamp, UserAttrs, UserField, digest,
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
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileAccount {
    pub id: String,
    pub user_name: String,
    #[serde(flatten)]
    pub attrs: UserAttrs,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sign_in: Option<Timestamp>,
    /// Refuses every write (a stand-in for a system that rejects a change).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
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

    fn matches(&self, b: &Binding) -> bool {
        self.to_binding().is_some_and(|mine| {
            mine.kind() == b.kind() && mine.object_name().to_lowercase() == b.object_name().to_lowercase()
        })
    }
}

impl DirectoryFile {
    /// The live state as the planner sees it.
    pub fn to_live(&self) -> LiveTarget {
        LiveTarget {
            accounts: self
                .users
                .iter()
                .map(|u| LiveAccount {
                    id: u.id.clone(),
                    user_name: u.user_name.clone(),
                    attrs: u.attrs.clone(),
                    active: u.active,
                    last_sign_in: u.last_sign_in,
                    fingerprint: digest(u),
                })
                .collect(),
            service_accounts: self
                .service_accounts
                .iter()
                .map(|s| LiveServiceAccount {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    display_name: s.display_name.clone(),
                    description: s.description.clone(),
                    owner: s.owner.clone(),
                    credentials: s
                        .credentials
                        .iter()
                        .map(|c| LiveCredential {
                            id: c.id.clone(),
                            name: c.name.clone(),
                            kind: c.kind,
                            start: c.start,
                            end: c.end,
                            thumbprint: c.thumbprint.clone(),
                        })
                        .collect(),
                    fingerprint: digest(s),
                })
                .collect(),
            bindings: self
                .groups
                .iter()
                .chain(&self.roles)
                .filter_map(|b| {
                    Some(LiveBinding {
                        id: b.id.clone(),
                        binding: b.to_binding()?,
                        members: b.members.clone(),
                        fingerprint: digest(b),
                    })
                })
                .collect(),
            auth_methods: self.authentication_methods.clone(),
        }
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    fn user_mut(&mut self, user_name: &str) -> Result<&mut FileAccount, ApplyError> {
        let u = self
            .users
            .iter_mut()
            .find(|u| u.user_name.eq_ignore_ascii_case(user_name))
            .ok_or_else(|| ApplyError::conflict(format!("account {user_name} no longer exists")))?;
        if u.read_only {
            return Err(ApplyError::new(format!("account {user_name} is read-only on this directory")));
        }
        Ok(u)
    }

    fn principal_id(&self, p: &Principal) -> Result<String, ApplyError> {
        match p {
            Principal::User(u) => {
                let acc = self
                    .users
                    .iter()
                    .find(|a| a.user_name.eq_ignore_ascii_case(u))
                    .ok_or_else(|| ApplyError::new(format!("account {u} does not exist")))?;
                if acc.read_only {
                    return Err(ApplyError::new(format!("account {u} is read-only on this directory")));
                }
                Ok(acc.id.clone())
            }
            Principal::ServiceAccount(n) => self
                .service_accounts
                .iter()
                .find(|s| &s.name == n)
                .map(|s| s.id.clone())
                .ok_or_else(|| ApplyError::new(format!("service account {n} does not exist"))),
        }
    }

    fn binding_mut(&mut self, b: &Binding) -> Result<&mut FileBinding, ApplyError> {
        self.groups
            .iter_mut()
            .chain(self.roles.iter_mut())
            .find(|fb| fb.matches(b))
            .ok_or_else(|| ApplyError::new(format!("{} does not exist", b.label())))
    }

    /// Applies one operation. Idempotent: applying an operation whose effect is already there
    /// succeeds without change, so a re-run after a partial failure converges.
    pub fn apply(&mut self, op: &Operation) -> Result<(), ApplyError> {
        match op {
            Operation::CreateUser { user_name, attrs, active } => {
                if let Some(existing) = self.users.iter_mut().find(|u| u.user_name.eq_ignore_ascii_case(user_name)) {
                    // Adopt an account created since the plan instead of duplicating it.
                    if existing.read_only {
                        return Err(ApplyError::new(format!("account {user_name} is read-only on this directory")));
                    }
                    existing.attrs.overlay(attrs);
                    existing.active = *active;
                    return Ok(());
                }
                let id = self.new_id("u");
                self.users.push(FileAccount {
                    id,
                    user_name: user_name.clone(),
                    attrs: attrs.clone(),
                    active: *active,
                    last_sign_in: None,
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
            Operation::DeleteUser { user_name } => {
                let id = self.user_mut(user_name)?.id.clone();
                self.users.retain(|u| u.id != id);
                for b in self.groups.iter_mut().chain(self.roles.iter_mut()) {
                    b.members.retain(|m| m != &id);
                }
                Ok(())
            }
            Operation::CreateBinding { binding } => {
                if self.binding_mut(binding).is_ok() {
                    return Ok(());
                }
                let Binding::Group(name) = binding else {
                    return Err(ApplyError::new(format!("{} is predefined and cannot be created", binding.label())));
                };
                let id = self.new_id("g");
                self.groups.push(FileBinding { id, kind: "group".into(), name: name.clone(), members: vec![] });
                Ok(())
            }
            Operation::Assign { principal, binding } => {
                let id = self.principal_id(principal)?;
                let b = self.binding_mut(binding)?;
                if !b.members.contains(&id) {
                    b.members.push(id);
                }
                Ok(())
            }
            Operation::Revoke { principal, binding } => {
                let id = self.principal_id(principal)?;
                let b = self.binding_mut(binding)?;
                b.members.retain(|m| m != &id);
                Ok(())
            }
            Operation::CreateServiceAccount { name, display_name, description, owner } => {
                if self.service_accounts.iter().any(|s| &s.name == name) {
                    return Ok(());
                }
                let id = self.new_id("sa");
                self.service_accounts.push(FileServiceAccount {
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
                let s = self
                    .service_accounts
                    .iter_mut()
                    .find(|s| &s.name == name)
                    .ok_or_else(|| ApplyError::conflict(format!("service account {name} no longer exists")))?;
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
            Operation::AddCredential { .. } | Operation::RemoveCredential { .. } => {
                Err(ApplyError::new("credential rotation is not supported by this version of the file provider"))
            }
            Operation::SetAuthMethod { method, enabled } => {
                self.authentication_methods.get_or_insert_with(BTreeMap::new).insert(*method, *enabled);
                Ok(())
            }
        }
    }
}
