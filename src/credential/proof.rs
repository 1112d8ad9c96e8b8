//! The proof of possession Microsoft Graph asks for before it adds or removes a key credential
//! (`addKey` / `removeKey`): a JWT signed with the private key of one of the application's
//! current certificates.
//!
//! Claims: `aud` = `00000002-0000-0000-c000-000000000000`, `iss` = the application's object
//! id, `nbf`, `exp` = `nbf` + 10 minutes. Header: `alg` (RS256 for RSA keys, ES256 / ES384 for
//! ECDSA P-256 / P-384), `typ: JWT`, `x5t` = base64url of the certificate's SHA-1.
//!
//! The signing certificate is the one keyward last delivered for the credential: apply reads
//! it back from the credential's sink (the PEM of certificate and key) and checks that its
//! thumbprint is one of the account's live, unexpired certificates.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};

use super::CredentialError;
use crate::model::{Secret, Timestamp};

/// The audience of a proof token (the legacy Azure AD Graph application id, as Graph
/// documents it).
pub const AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";

/// How long a proof token is valid.
pub const LIFETIME_SECONDS: i64 = 600;

/// A certificate with its private key, read from a sink.
pub struct SigningCertificate {
    der: Vec<u8>,
    key: Secret<Vec<u8>>,
}

impl std::fmt::Debug for SigningCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCertificate").field("thumbprint", &self.thumbprint()).finish_non_exhaustive()
    }
}

/// The `(label, DER)` blocks of a PEM text.
fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line.trim().strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.trim() == end {
                break;
            }
            body.push_str(l.trim());
        }
        if let Ok(der) = STANDARD.decode(body.as_bytes()) {
            out.push((label.to_string(), der));
        }
    }
    out
}

impl SigningCertificate {
    /// Reads a PEM text holding a certificate and its PKCS#8 private key (as keyward delivers
    /// them). Errors never quote the text.
    pub fn from_pem(text: &str) -> Result<Self, CredentialError> {
        let mut der = None;
        let mut key = None;
        for (label, bytes) in pem_blocks(text) {
            match label.as_str() {
                "CERTIFICATE" if der.is_none() => der = Some(bytes),
                "PRIVATE KEY" => key = Some(Secret::new(bytes)),
                _ => {}
            }
        }
        match (der, key) {
            (Some(der), Some(key)) => Ok(SigningCertificate { der, key }),
            _ => Err(CredentialError::Invalid(
                "the delivered PEM does not hold both a CERTIFICATE and a PKCS#8 PRIVATE KEY".into(),
            )),
        }
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-1 of the certificate, upper-case hex.
    pub fn thumbprint(&self) -> String {
        super::generate::thumbprint(&self.der)
    }
}

enum Signer {
    Ecdsa(EcdsaKeyPair, &'static str),
    Rsa(RsaKeyPair),
}

fn signer(key: &[u8]) -> Result<Signer, CredentialError> {
    let rng = SystemRandom::new();
    if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, key, &rng) {
        return Ok(Signer::Ecdsa(k, "ES256"));
    }
    if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, key, &rng) {
        return Ok(Signer::Ecdsa(k, "ES384"));
    }
    RsaKeyPair::from_pkcs8(key)
        .map(Signer::Rsa)
        .map_err(|_| CredentialError::Invalid("the private key is not an ECDSA P-256/P-384 or RSA PKCS#8 key".into()))
}

/// A proof token for the application with object id `application_id`, valid from `nbf` for
/// ten minutes.
pub fn proof_token(
    cert: &SigningCertificate,
    application_id: &str,
    nbf: Timestamp,
) -> Result<Secret<String>, CredentialError> {
    let signer = signer(cert.key.expose())?;
    let alg = match &signer {
        Signer::Ecdsa(_, alg) => *alg,
        Signer::Rsa(_) => "RS256",
    };
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert.der);
    let header = serde_json::json!({"alg": alg, "typ": "JWT", "x5t": URL_SAFE_NO_PAD.encode(sha1.as_ref())});
    let nbf = nbf.timestamp();
    let claims = serde_json::json!({"aud": AUDIENCE, "iss": application_id, "nbf": nbf, "exp": nbf + LIFETIME_SECONDS});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string().as_bytes()),
        URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
    );
    let rng = SystemRandom::new();
    let fail = || CredentialError::Generate { what: "proof token".into(), message: "signing failed".into() };
    let sig = match &signer {
        Signer::Ecdsa(k, _) => k.sign(&rng, signing_input.as_bytes()).map_err(|_| fail())?.as_ref().to_vec(),
        Signer::Rsa(k) => {
            let mut sig = vec![0u8; k.public().modulus_len()];
            k.sign(&signature::RSA_PKCS1_SHA256, &rng, signing_input.as_bytes(), &mut sig).map_err(|_| fail())?;
            sig
        }
    };
    Ok(Secret::new(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))))
}
