//! The validated desired state: every resource of a configuration, keyed by name, with all
//! cross-references checked.

use std::collections::BTreeMap;

use super::{
    AuthenticationPolicy, Campaign, Certification, DataClassification, EncryptionPolicy, Name, Role, ServiceAccount,
    Settings, SodRule, Target, User, UsersScope,
};

#[derive(Debug, Clone)]
pub struct DesiredState {
    pub settings: Settings,
    pub users: BTreeMap<Name, User>,
    pub roles: BTreeMap<Name, Role>,
    pub service_accounts: BTreeMap<Name, ServiceAccount>,
    pub data_classifications: BTreeMap<Name, DataClassification>,
    pub authentication_policies: BTreeMap<Name, AuthenticationPolicy>,
    pub encryption_policies: BTreeMap<Name, EncryptionPolicy>,
    pub sod_rules: BTreeMap<Name, SodRule>,
    /// Certification campaigns (`reviews/NAME/campaign.yaml`); they change no access.
    pub campaigns: BTreeMap<Name, Campaign>,
    /// Reviewers' parts of campaigns (`reviews/NAME/REVIEWER.yaml`).
    pub certifications: BTreeMap<Name, Certification>,
}

impl DesiredState {
    pub fn empty(settings: Settings) -> Self {
        DesiredState {
            settings,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            service_accounts: BTreeMap::new(),
            data_classifications: BTreeMap::new(),
            authentication_policies: BTreeMap::new(),
            encryption_policies: BTreeMap::new(),
            sod_rules: BTreeMap::new(),
            campaigns: BTreeMap::new(),
            certifications: BTreeMap::new(),
        }
    }

    /// Whether a user (or service account) with these explicit `targets` and these roles
    /// exists on `target`.
    pub fn present_on<'r>(
        &self,
        explicit: Option<&[Name]>,
        roles: impl Iterator<Item = &'r Name>,
        target: &Target,
    ) -> bool {
        if let Some(list) = explicit {
            return list.contains(&target.name);
        }
        match target.users {
            UsersScope::All => true,
            UsersScope::WithRoles => self.any_bound(roles, &target.name),
        }
    }

    /// The targets on which service account `sa`, holding `roles`, is a Microsoft Entra app
    /// registration keyward keeps ([`super::Capabilities::entra_applications`]): where a target
    /// that knows it by its application takes its client id from when `applicationId` is left
    /// out.
    pub fn registration_targets<'s>(&'s self, sa: &'s ServiceAccount, roles: &[&Name]) -> Vec<&'s Name> {
        self.settings
            .targets
            .values()
            .filter(|t| super::capabilities(t.provider()).entra_applications)
            .filter(|t| self.present_on(sa.explicit_targets(), roles.iter().copied(), t))
            .map(|t| &t.name)
            .collect()
    }

    fn any_bound<'r>(&self, mut roles: impl Iterator<Item = &'r Name>, target: &Name) -> bool {
        roles.any(|r| self.roles.get(r).is_some_and(|role| role.bindings.contains_key(target)))
    }
}
