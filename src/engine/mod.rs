//! The reconcile pipeline as a library: load → validate → read → plan → policy → apply/audit.
//!
//! Every command of the CLI is one call here with one settings value; the CLI only parses
//! arguments into that value, prints what comes back, and maps errors to exit codes. Anything
//! else that drives keyward (a server, a scheduled job, a report) calls the same functions.
//!
//! Guarantees:
//! - the clock is read once per command, by the caller, and passed in as [`Clock`]: a plan, its
//!   policy findings, the credentials an apply issues and the drift metrics of one run all
//!   see the same time;
//! - nothing here prints: what a person should see while the pipeline runs (diagnostics,
//!   progress, warnings) goes to an [`Observer`]; results come back as values;
//! - errors are [`EngineError`], typed, with their sources kept;
//! - the configuration's problems come first: when it is not valid, that is the error, even
//!   if reading the targets (which happens at the same time) failed too;
//! - where keyward remembers things between runs (the audit log, the credentials issued but
//!   not delivered) is reached only through [`store::Store`].
//!
//! Assumptions: the caller runs the futures on a tokio runtime with timers and IO enabled.

pub mod applied;
pub mod apply;
pub mod audit;
pub mod config;
pub mod contents;
pub mod drift;
pub mod drift_stored;
mod error;
pub mod evidence;
pub mod feed;
pub mod governance;
pub mod import;
pub mod latency;
pub mod plan;
pub mod policy;
pub mod read;
pub mod schema;
pub mod store;
pub mod validate;

pub use config::Config;
pub use error::{EngineError, SavedPlanError};
pub use read::{Read, Targets};

use crate::diagnostic::Diagnostic;
use crate::load::Loaded;
use crate::model::{LiveTarget, Name, Timestamp};

/// The time a command runs at: read once, at the start, and passed everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now: Timestamp,
}

/// The variable that sets the clock, for reproducible plans and tests.
pub const NOW_VAR: &str = "KEYWARD_NOW";

impl Clock {
    pub fn at(now: Timestamp) -> Self {
        Clock { now }
    }

    /// `KEYWARD_NOW` (RFC 3339, or `YYYY-MM-DD` meaning noon UTC) when set and valid; the
    /// system clock otherwise.
    pub fn from_env() -> Self {
        Clock { now: std::env::var(NOW_VAR).ok().and_then(|v| parse_now(&v)).unwrap_or_else(chrono::Utc::now) }
    }
}

/// Parses a `KEYWARD_NOW` value.
pub fn parse_now(v: &str) -> Option<Timestamp> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(12, 0, 0)).map(|t| t.and_utc())
}

/// What the pipeline tells while it runs. Every method has a default that ignores the event,
/// so an observer implements only what it shows. Called from the task running the pipeline.
pub trait Observer {
    /// Validation's diagnostics (warnings too), with the files they point into.
    fn diagnostics(&self, diags: &[Diagnostic], loaded: &Loaded) {
        let _ = (diags, loaded);
    }
    /// Reading `targets` begins (all at once).
    fn reading(&self, targets: &[Name]) {
        let _ = targets;
    }
    /// One target was read.
    fn read_target(&self, target: &Name, live: &LiveTarget) {
        let _ = (target, live);
    }
    /// Every target was read.
    fn read_done(&self) {}
    /// `done` of `total` changes were applied (after each batch).
    fn applied(&self, done: usize, total: usize) {
        let _ = (done, total);
    }
    /// Something went wrong that does not stop the command.
    fn warning(&self, message: &str) {
        let _ = message;
    }
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}
