//! Planning: what must change so the live targets match the configuration.
//!
//! Guarantees: [`plan_changes`] is a pure function of its input (no IO, no clock, no provider
//! names); the resulting [`Plan`] is a plain value that serializes to the documented, stable
//! JSON format (docs/plan-format.md).

mod address;
pub mod derived;
pub mod guards;
mod notices;
mod planner;
mod types;
mod why;

pub use guards::{GuardOverrides, GuardViolation};
pub use notices::notices;
pub use planner::{
    ABSENT, PlanError, PlanInput, application_id_errors, default_key_algorithm, held_notices, membership_fingerprint,
    plan_changes, sort_for_apply,
};
pub use types::*;

use crate::model::{Name, Timestamp};

/// Wraps planned changes into a [`Plan`].
pub fn assemble(changes: Vec<Change>, configuration: ConfigRef, targets: Vec<Name>, created_at: Timestamp) -> Plan {
    Plan {
        format_version: FORMAT_VERSION.to_string(),
        keyward_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at,
        configuration,
        targets,
        summary: Summary::of(&changes),
        changes,
        base: None,
        notices: Vec::new(),
        digest: None,
        signature: None,
    }
}
