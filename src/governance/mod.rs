//! Governance in git: who is accountable for each role, who approved a change, and campaigns
//! that certify who holds what, all as files and commits.
//!
//! - [`owners`]: a role's owners resolved to people, and people to their GitHub logins;
//! - [`codeowners`]: a CODEOWNERS file routing each role's files to its owners;
//! - [`approvals`]: whether every privileged grant of a change was approved by an owner of the
//!   role who is not the person gaining the access;
//! - [`campaign`]: certification campaigns: opening, progress and closing;
//! - [`edit`]: the text edits that add or remove a role assignment in a YAML file, keeping
//!   everything else as written;
//! - [`elevate`]: time-boxed grants of a role.
//!
//! Guarantees: every function here is pure over values (configurations, live state, git
//! facts, the clock as a parameter); nothing reads the system clock, the environment, files or
//! the network. The command line gathers the values and writes the results.

pub mod approvals;
pub mod campaign;
pub mod codeowners;
pub mod edit;
pub mod elevate;
pub mod owners;
