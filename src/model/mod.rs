//! The typed desired and live state of access.
//!
//! Guarantees: no IO, no async, no printing. Every value here was either parsed from a
//! configuration (and then checked by `validate`) or normalised by a provider at its edge.

mod attribution;
mod capabilities;
pub mod certification;
pub mod config;
pub mod contents;
pub mod dn;
pub mod eligibility;
pub mod escape;
pub mod feed;
pub mod lifecycle;
pub mod live;
mod name;
pub mod resource;
mod secret;
mod state;
mod time;

pub use attribution::Attribution;
pub use capabilities::{BindingSupport, Capabilities, capabilities};
pub use certification::{Campaign, CampaignScope, Certification, CertificationLine, Decision, Flag};
pub use config::{ConfigFile, ProviderKind, Settings, Target, UsersScope};
pub use contents::{ContentsMode, Depth, RoleContents, RoleSnapshot, Snapshots};
pub use eligibility::{ActivationApproval, ActivationRequirements, ActivationRules, LiveActivation, LiveEligibility};
pub use lifecycle::{CredentialStatus, current_instance};
pub use live::*;
pub use name::{MAX_NAME_LEN, Name, NameError};
pub use resource::*;
pub use secret::{Secret, SecretRef, SecretRefError};
pub use state::DesiredState;
pub use time::{Date, Duration, Expiry, Instant, TimeError, Timestamp};
