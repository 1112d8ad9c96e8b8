//! Credential material: generation, proof tokens, delivery sinks and the record of
//! credentials issued but not delivered.
//!
//! Guarantees:
//! - material (a secret's text, a certificate's private key) lives only in [`Secret`] values,
//!   from the moment it is generated or received until it is written to its sink; it is never
//!   logged, put in an error, a plan or an audit record;
//! - certificates are generated in-process (rcgen; RSA keys with the `rsa` crate, since ring
//!   cannot generate them) with the requested algorithm and exactly the planned validity;
//! - secrets come from the operating system's random generator;
//! - a file sink is written atomically with mode 0600; a Key Vault sink is written with one
//!   `PUT {vault}/secrets/{name}`;
//! - a credential issued but not delivered is recorded in a small state file beside the audit
//!   log (ids and names only), so the next plan replaces it and removes it.
//!
//! Assumes the caller (apply) has already issued the credential on its target before
//! delivering, and removes old credentials only in later runs (the planner's rule).

pub mod generate;
pub mod keyvault;
pub mod proof;
pub mod sink;
pub mod state;

use crate::model::Secret;

/// Why generating, signing or delivering credential material failed. Messages never carry
/// material.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot generate the {what}: {message}")]
    Generate { what: String, message: String },
    #[error("cannot deliver to {sink}: {message}")]
    Deliver { sink: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The material of a new credential, ready for its sink.
pub enum Material {
    /// A secret's text.
    Secret(Secret<String>),
    /// A certificate and its private key, as one PEM text (certificate first).
    Certificate(Secret<String>),
}

impl Material {
    /// The text written to the sink.
    pub fn text(&self) -> &Secret<String> {
        match self {
            Material::Secret(s) | Material::Certificate(s) => s,
        }
    }

    /// The MIME type a sink records, where it records one.
    pub fn content_type(&self) -> &'static str {
        match self {
            Material::Secret(_) => "text/plain",
            Material::Certificate(_) => "application/x-pem-file",
        }
    }
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Material(sensitive)")
    }
}
