//! keyward: a declarative GitOps reconciler for identity and access.
//!
//! Data flows one way: `load` reads a configuration folder, `validate` turns it into the
//! [`model::DesiredState`], providers read the live state, `plan` computes the changes,
//! `policy` checks them, `apply` carries them out and `audit` records them; `output` renders
//! everything. [`engine`] runs that pipeline for each command; [`cli`] is its command line.
//! README › Layout says what each module owns; `cargo xtask layers` keeps the flow one way.

pub mod adopt;
pub mod apply;
pub mod atomic;
pub mod audit;
pub mod cli;
pub mod credential;
pub mod diagnostic;
pub mod engine;
pub mod explain;
#[doc(hidden)]
pub mod fuzzing;
pub mod governance;
pub mod history;
pub mod load;
pub mod model;
pub mod output;
pub mod plan;
pub mod policy;
pub mod provider;
pub mod remote;
pub mod report;
pub mod review;
pub mod schema;
pub mod state;
pub mod validate;
