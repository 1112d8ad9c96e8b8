//! `validate`: the offline checks, then the policies that need no live data.

use std::path::PathBuf;

use super::{Clock, EngineError};
use crate::load::Loaded;
use crate::policy::Finding;
use crate::validate::Validated;

/// What `validate` needs.
#[derive(Debug, Clone)]
pub struct ValidateSettings {
    pub dir: PathBuf,
    pub clock: Clock,
}

/// A configuration checked offline: its diagnostics (errors or not) and policy findings.
pub struct Checked {
    pub loaded: Loaded,
    pub validated: Validated,
    pub findings: Vec<Finding>,
}

impl Checked {
    pub fn is_valid(&self) -> bool {
        !self.validated.has_errors()
    }
}

/// Loads and validates; evaluates the policies over a valid configuration. An error only when
/// the folder cannot be read: a configuration with errors is a result.
pub fn validate(settings: &ValidateSettings) -> Result<Checked, EngineError> {
    let loaded = super::config::timed_load(&settings.dir)?;
    let validated = super::config::timed_validation(&loaded);
    let findings = super::policy::evaluate(&loaded, &validated, None, None, settings.clock.now);
    Ok(Checked { loaded, validated, findings })
}
