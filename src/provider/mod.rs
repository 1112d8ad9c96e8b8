//! Live systems: one folder per provider, each translating its wire format to the model at its
//! edge and back.
//!
//! The contract is small: [`Capabilities`] say, as data, what a target can do (which bindings
//! exist and which keyward may create, which user fields it stores, whether it deletes users);
//! [`Provider::read`] returns the normalised live state; [`Provider::apply`] carries out the
//! changes of one apply phase and reports each one's outcome. Providers make no planning
//! decisions.

pub mod dataverse;
pub mod entra;
pub mod file;
pub mod fno;
pub mod graph;
pub mod http;
pub mod odata;
pub mod scim;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use async_trait::async_trait;

use crate::model::{BindingKind, LiveTarget, ProviderKind, Target, UserField};
use crate::plan::Change;

/// Whether a target has a kind of binding, and whether keyward may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingSupport {
    Unsupported,
    /// Must already exist; a missing one is a plan error.
    Predefined,
    /// keyward creates it when missing.
    Creatable,
}

/// What a target can do, as data the planner reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub bindings: BTreeMap<BindingKind, BindingSupport>,
    /// The user attributes the target stores; others are not compared.
    pub user_fields: BTreeSet<UserField>,
    /// Whether users may be deleted (ERPs keep their users, since records reference them).
    pub delete_users: bool,
    /// Days a deleted user can be restored, where the target keeps deleted users.
    pub restorable_days: Option<u32>,
    pub service_accounts: bool,
    pub credentials: bool,
    /// Whether the target has a sign-in methods policy keyward reconciles.
    pub auth_methods_policy: bool,
    /// Whether the target reports last sign-in times.
    pub sign_in_activity: bool,
    /// Whether writes are conditional on the version read (ETag / If-Match or equivalent).
    pub conditional_writes: bool,
    /// Apply order among targets within a phase: directories (0) before ERPs (1), so a person
    /// exists in the directory before an ERP account refers to them.
    pub order: u8,
}

impl Capabilities {
    pub fn binding(&self, kind: BindingKind) -> BindingSupport {
        self.bindings.get(&kind).copied().unwrap_or(BindingSupport::Unsupported)
    }
}

/// The capabilities of each provider.
pub fn capabilities(kind: ProviderKind) -> Capabilities {
    use BindingKind::*;
    use BindingSupport::*;
    let all_fields: BTreeSet<UserField> = UserField::ALL.into_iter().collect();
    let base = Capabilities {
        bindings: BTreeMap::new(),
        user_fields: all_fields.clone(),
        delete_users: true,
        restorable_days: None,
        service_accounts: false,
        credentials: false,
        auth_methods_policy: false,
        sign_in_activity: false,
        conditional_writes: false,
        order: 0,
    };
    match kind {
        ProviderKind::File => Capabilities {
            bindings: [
                (Group, Creatable),
                (DirectoryRole, Predefined),
                (AppRole, Predefined),
                (SecurityRole, Predefined),
            ]
            .into(),
            service_accounts: true,
            credentials: true,
            auth_methods_policy: true,
            sign_in_activity: true,
            conditional_writes: true,
            ..base
        },
        ProviderKind::Scim => Capabilities { bindings: [(Group, Creatable)].into(), conditional_writes: true, ..base },
        ProviderKind::Graph => Capabilities {
            bindings: [(Group, Creatable), (DirectoryRole, Predefined), (AppRole, Predefined)].into(),
            restorable_days: Some(30),
            service_accounts: true,
            credentials: true,
            auth_methods_policy: true,
            sign_in_activity: true,
            ..base
        },
        ProviderKind::Dataverse => Capabilities {
            bindings: [(SecurityRole, Predefined), (FieldSecurityProfile, Creatable)].into(),
            user_fields: [UserField::GivenName, UserField::FamilyName, UserField::Email, UserField::JobTitle].into(),
            delete_users: false,
            service_accounts: true,
            conditional_writes: true,
            order: 1,
            ..base
        },
        ProviderKind::Fno => Capabilities {
            bindings: [(SecurityRole, Predefined)].into(),
            user_fields: [UserField::DisplayName, UserField::Email].into(),
            delete_users: false,
            order: 1,
            ..base
        },
        ProviderKind::Ldap => Capabilities { bindings: [(Group, Creatable)].into(), user_fields: all_fields, ..base },
    }
}

/// Why a provider could not read or open its target.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{target}: cannot access {path}: {source}")]
    Io { target: String, path: String, source: std::io::Error },
    #[error("{target}: {path} is not a valid directory file: {message}")]
    Corrupt { target: String, path: String, message: String },
    #[error("{target}: {message}")]
    Locked { target: String, message: String },
    #[error("{target}: {message}")]
    Remote { target: String, message: String },
    #[error("{target}: provider `{provider}` is not available in this build")]
    Unavailable { target: String, provider: ProviderKind },
}

/// Why one change failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApplyError {
    pub message: String,
    /// The live object changed since it was read (a failed precondition).
    pub conflict: bool,
}

impl ApplyError {
    pub fn new(message: impl Into<String>) -> Self {
        ApplyError { message: message.into(), conflict: false }
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        ApplyError { message: message.into(), conflict: true }
    }
}

/// Who changed a live object outside keyward, from the target's own audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// The person or application that made the change.
    pub actor: String,
    pub time: crate::model::Timestamp,
    /// The audit log's name for what they did (for example `Add member to group`).
    pub activity: String,
}

impl Attribution {
    /// The plan note that shows it beside the change.
    pub fn note(&self) -> String {
        format!(
            "changed outside git by {} at {} ({})",
            self.actor,
            self.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.activity
        )
    }

    /// Whether a plan note is an attribution.
    pub fn is_note(note: &str) -> bool {
        note.starts_with("changed outside git by ")
    }
}

/// How a provider is opened: for reading (plan, drift) or for applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Reading for the access review: also the per-account facts that cost extra requests
    /// (sign-in activity on Graph), which plans and drift checks do not need.
    Review,
}

/// A live system.
#[async_trait]
pub trait Provider: Send {
    fn capabilities(&self) -> &Capabilities;

    /// Reads the live state keyward compares.
    async fn read(&mut self) -> Result<LiveTarget, ProviderError>;

    /// Carries out `changes` (all of one phase, for this target), in order where order
    /// matters, and returns one outcome per change in the same order. It must be called
    /// after [`Provider::read`], which gives it the ids it resolves natural keys with.
    async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>>;

    /// Role assignments and removals the target's own audit log holds, newest first, for the
    /// access review. Called after [`Provider::read`]; targets without such a log have none.
    async fn role_history(&mut self) -> Result<Vec<crate::model::RoleEvent>, ProviderError> {
        Ok(Vec::new())
    }

    /// For changes whose reason is drift: who made the live difference, where the target keeps
    /// an audit log, one entry per change. Called after [`Provider::read`]; by default nothing
    /// is known. A failure to look it up is not an error of the plan: it yields nothing.
    async fn attribute(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        vec![None; changes.len()]
    }
}

/// Opens the provider for a target. `root` is the configuration folder, against which
/// relative paths resolve.
pub fn open(target: &Target, root: &Path, access: Access) -> Result<Box<dyn Provider>, ProviderError> {
    use crate::model::config::Connection;
    match &target.connection {
        Connection::File { path } => Ok(Box::new(file::FileProvider::open(target, &root.join(path), access)?)),
        Connection::Scim { .. } => Ok(Box::new(scim::ScimProvider::open(target, root, access)?)),
        Connection::Dataverse { .. } => Ok(Box::new(dataverse::DataverseProvider::open(target, root, access)?)),
        Connection::Fno { .. } => Ok(Box::new(fno::FnoProvider::open(target, root, access)?)),
        Connection::Graph { .. } => Ok(Box::new(graph::GraphProvider::open(target, root, access)?)),
        _ => Err(ProviderError::Unavailable { target: target.name.to_string(), provider: target.provider() }),
    }
}
