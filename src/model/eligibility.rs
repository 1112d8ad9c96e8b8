//! Eligible access: an assignment the holder must activate before it takes effect, and what
//! activating takes (Privileged Identity Management on Entra ID).
//!
//! On the desired side an eligible assignment is a [`super::RoleGrantDetail`] with
//! `eligible: true`, and what activating it takes is written beside it (`maxActivation`,
//! `requires`). On the live side a provider that keeps eligibility reports it as
//! [`LiveEligibility`] and [`LiveActivation`], normalised: principals by account id, approvers
//! by userName.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Binding, Duration, Timestamp};

/// What activating an eligible assignment requires, as written on the assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ActivationRequirements {
    /// `owners`: an owner of the role approves each activation; `none`: nobody does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ActivationApproval>,
    /// Multifactor authentication on activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<bool>,
    /// A justification on activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<bool>,
    /// A ticket number on activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<bool>,
}

/// Who approves an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActivationApproval {
    /// The role's owners (their people, on the target).
    Owners,
    /// No approval.
    None,
}

/// The rules of activating a role, as keyward manages them: every field is "not managed" when
/// `None`. On Graph, the role's role management policy: `maxDuration` is
/// `Expiration_EndUser_Assignment.maximumDuration`, `mfa`, `justification` and `ticket` the
/// members `MultiFactorAuthentication`, `Justification` and `Ticketing` of
/// `Enablement_EndUser_Assignment.enabledRules`, and `approvers` the primary approvers of
/// `Approval_EndUser_Assignment` (`Some(empty)`: no approval required).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<bool>,
    /// The userNames of the approvers, sorted and lower-cased; empty: no approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Vec<String>>,
}

impl ActivationRules {
    pub fn is_empty(&self) -> bool {
        *self == ActivationRules::default()
    }

    /// Whether `live` has every setting this manages, as this has it.
    pub fn satisfied_by(&self, live: &ActivationRules) -> bool {
        fn same<T: PartialEq>(want: &Option<T>, have: &Option<T>) -> bool {
            want.is_none() || want == have
        }
        same(&self.max_duration.map(|d| d.seconds()), &live.max_duration.map(|d| d.seconds()))
            && same(&self.mfa, &live.mfa)
            && same(&self.justification, &live.justification)
            && same(&self.ticket, &live.ticket)
            && same(&self.approvers, &live.approvers)
    }
}

/// An eligibility on a target: `principal` (an account id) may activate `binding` until `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveEligibility {
    pub binding: Binding,
    pub principal: String,
    /// When it ends; `None`: permanently eligible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    /// The provider's id of the schedule, and a digest of it for saved plans.
    pub id: String,
    pub fingerprint: String,
}

/// The activation rules of one binding on a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveActivation {
    pub binding: Binding,
    pub rules: ActivationRules,
    pub fingerprint: String,
}
