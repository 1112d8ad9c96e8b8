//! What a target can do, as data: the planner, validation and the renderers read it; the
//! providers declare it. It lives here, below all of them, so none imports another for it.

use std::collections::{BTreeMap, BTreeSet};

use super::{BindingKind, ProviderKind, UserField};

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
    /// The kinds of binding a principal can be made eligible for (Privileged Identity
    /// Management), with activation rules of their own; an eligible assignment of a role bound
    /// otherwise gives nothing on the target.
    pub eligibility: BTreeSet<BindingKind>,
    /// Whether accounts belong to business units keyward places them in (`businessUnit`).
    pub business_units: bool,
    /// Whether the target's groups are Microsoft Entra groups, whose members a Dataverse
    /// group team (`groupTeam`) takes as its own.
    pub entra_groups: bool,
    /// Whether the target knows service accounts by their Entra application's client id
    /// (`targets: {T: {applicationId}}`): a service account without one is not managed there.
    pub application_users: bool,
    /// Whether the target's service accounts are Microsoft Entra app registrations, whose
    /// client id a target with `application_users` takes when `applicationId` is left out.
    pub entra_applications: bool,
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
        eligibility: BTreeSet::new(),
        business_units: false,
        entra_groups: false,
        application_users: false,
        entra_applications: false,
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
            eligibility: [Group, DirectoryRole].into(),
            entra_groups: true,
            entra_applications: true,
            restorable_days: Some(30),
            service_accounts: true,
            credentials: true,
            auth_methods_policy: true,
            sign_in_activity: true,
            ..base
        },
        ProviderKind::Dataverse => Capabilities {
            bindings: [
                (SecurityRole, Predefined),
                (Team, Predefined),
                (GroupTeam, Predefined),
                (FieldSecurityProfile, Creatable),
            ]
            .into(),
            user_fields: [UserField::GivenName, UserField::FamilyName, UserField::Email, UserField::JobTitle].into(),
            delete_users: false,
            service_accounts: true,
            application_users: true,
            conditional_writes: true,
            business_units: true,
            order: 1,
            ..base
        },
        ProviderKind::Fno => Capabilities {
            bindings: [(SecurityRole, Predefined)].into(),
            user_fields: [UserField::DisplayName, UserField::Email].into(),
            delete_users: false,
            service_accounts: true,
            application_users: true,
            order: 1,
            ..base
        },
        ProviderKind::Ldap => Capabilities { bindings: [(Group, Creatable)].into(), user_fields: all_fields, ..base },
    }
}
