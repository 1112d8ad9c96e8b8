//! New credential material: random secrets and self-signed certificates.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

use super::CredentialError;
use crate::model::{KeyAlgorithm, Secret, Timestamp};

/// Why a key pair could not be made: the error of the library that made it, as it says it.
#[derive(Debug, thiserror::Error)]
enum KeyGenError {
    #[error(transparent)]
    Rcgen(#[from] rcgen::Error),
    #[error(transparent)]
    Rsa(#[from] rsa::Error),
    #[error(transparent)]
    Pkcs8(#[from] rsa::pkcs8::Error),
}

/// Random bytes in a new secret: 36 bytes, 48 base64url characters (288 bits).
const SECRET_BYTES: usize = 36;

/// A new random secret from the operating system's generator: 48 characters of
/// `[A-Za-z0-9_-]`.
pub fn secret() -> Result<Secret<String>, CredentialError> {
    let mut bytes = [0u8; SECRET_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CredentialError::Generate { what: "secret".into(), message: "no randomness".into() })?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(bytes)))
}

/// A new self-signed certificate and its key.
pub struct NewCertificate {
    /// The certificate (public), DER.
    pub der: Vec<u8>,
    /// SHA-1 of the DER in upper-case hex, as Entra ID shows certificate thumbprints.
    pub thumbprint: String,
    /// The certificate and its PKCS#8 private key, as one PEM text.
    pub pem: Secret<String>,
}

impl std::fmt::Debug for NewCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCertificate").field("thumbprint", &self.thumbprint).finish_non_exhaustive()
    }
}

/// SHA-1 of `der`, upper-case hex.
pub fn thumbprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    d.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

fn offset(t: Timestamp) -> Result<time::OffsetDateTime, CredentialError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map_err(|e| CredentialError::Invalid(format!("date {t} is out of range for a certificate: {e}")))
}

/// Generates a key of `algorithm` and a self-signed certificate for `common_name`, valid from
/// `start` to `end` (whole seconds).
pub fn certificate(
    algorithm: KeyAlgorithm,
    common_name: &str,
    start: Timestamp,
    end: Timestamp,
) -> Result<NewCertificate, CredentialError> {
    let what = format!("{} certificate", algorithm_name(algorithm));
    let fail = |message: String| CredentialError::Generate { what: what.clone(), message };
    if end <= start {
        return Err(CredentialError::Invalid("a certificate must end after it starts".into()));
    }
    let key: Result<rcgen::KeyPair, KeyGenError> = match algorithm {
        KeyAlgorithm::EcdsaP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(Into::into),
        KeyAlgorithm::EcdsaP384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(Into::into),
        KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let bits = if algorithm == KeyAlgorithm::Rsa3072 { 3072 } else { 4096 };
            rsa_pkcs8(bits).and_then(|der| Ok(rcgen::KeyPair::try_from(der.expose().as_slice())?))
        }
    };
    let key = key.map_err(|e| fail(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    params.not_before = offset(start)?;
    params.not_after = offset(end)?;
    let mut serial = [0u8; 16];
    SystemRandom::new().fill(&mut serial).map_err(|_| fail("no randomness".into()))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    let der = cert.der().to_vec();
    let mut pem = cert.pem();
    pem.push_str(&key.serialize_pem());
    Ok(NewCertificate { thumbprint: thumbprint(&der), der, pem: Secret::new(pem) })
}

/// A new RSA key of `bits`, PKCS#8 DER.
fn rsa_pkcs8(bits: usize) -> Result<Secret<Vec<u8>>, KeyGenError> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)?;
    let doc = key.to_pkcs8_der()?;
    Ok(Secret::new(doc.as_bytes().to_vec()))
}

pub fn algorithm_name(a: KeyAlgorithm) -> &'static str {
    match a {
        KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
        KeyAlgorithm::Rsa3072 => "rsa-3072",
        KeyAlgorithm::Rsa4096 => "rsa-4096",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_url_safe() {
        let a = secret().unwrap();
        let b = secret().unwrap();
        assert!(a.expose().len() >= 32, "{}", a.expose().len());
        assert_eq!(a.expose().len(), 48);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(format!("{a}"), "(sensitive)");
    }

    #[test]
    fn a_key_that_cannot_be_made_says_what_its_library_said() {
        let inner = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 8).unwrap_err();
        let e = rsa_pkcs8(8).err().unwrap();
        assert!(matches!(e, KeyGenError::Rsa(_)), "{e:?}");
        assert_eq!(e.to_string(), inner.to_string());
        let e = KeyGenError::from(rcgen::Error::CouldNotParseKeyPair);
        assert_eq!(e.to_string(), rcgen::Error::CouldNotParseKeyPair.to_string());
    }

    #[test]
    fn thumbprints_are_sha1_hex() {
        // SHA-1("abc") from FIPS 180-2.
        assert_eq!(thumbprint(b"abc"), "A9993E364706816ABA3E25717850C26C9CD0D89D");
    }
}
