//! Checks the proof-of-possession token Microsoft Graph asks for on `addKey` / `removeKey`
//! (reference sheet §2.5): a JWT signed by one of the application's current certificates, with
//! `aud` = `00000002-0000-0000-c000-000000000000`, `iss` = the application's object id, and
//! `exp` at most ten minutes after `nbf` (documented). Algorithms accepted: RS256, ES256 and
//! ES384 (assumed: the ones a certificate keyward generates can sign with).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The audience a proof token must name.
pub const AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";
/// The longest validity of a proof token, in seconds.
pub const MAX_LIFETIME: i64 = 600;

/// Verifies `token` for application `app_object_id` against `certificates` (key id, DER);
/// returns the key id of the certificate whose key signed it, or why it is refused.
pub fn verify<'a>(
    token: &str,
    app_object_id: &str,
    certificates: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<String, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts.as_slice() else { return Err("the proof is not a JWT".into()) };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|_| "the proof is not base64url".to_string());
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| "the proof header is not JSON")?;
    let claims: Value = serde_json::from_slice(&decode(c)?).map_err(|_| "the proof claims are not JSON")?;
    let signature = decode(s)?;
    if claims["aud"].as_str() != Some(AUDIENCE) {
        return Err("the proof's aud is not 00000002-0000-0000-c000-000000000000".into());
    }
    if claims["iss"].as_str() != Some(app_object_id) {
        return Err("the proof's iss is not the application's object id".into());
    }
    let (Some(nbf), Some(exp)) = (claims["nbf"].as_i64(), claims["exp"].as_i64()) else {
        return Err("the proof has no nbf or exp".into());
    };
    if exp <= nbf || exp - nbf > MAX_LIFETIME {
        return Err("the proof must expire within ten minutes of nbf".into());
    }
    let alg: &'static dyn ring::signature::VerificationAlgorithm = match header["alg"].as_str() {
        Some("RS256") => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        Some("ES256") => &ring::signature::ECDSA_P256_SHA256_FIXED,
        Some("ES384") => &ring::signature::ECDSA_P384_SHA384_FIXED,
        _ => return Err("the proof's alg is not RS256, ES256 or ES384".into()),
    };
    let input = format!("{h}.{c}");
    for (key_id, der) in certificates {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { continue };
        let public = &cert.public_key().subject_public_key.data;
        if ring::signature::UnparsedPublicKey::new(alg, public.as_ref()).verify(input.as_bytes(), &signature).is_ok() {
            return Ok(key_id.to_string());
        }
    }
    Err("the proof is not signed by a current certificate of the application".into())
}

/// The validity of a certificate (DER) as Unix times, when it parses.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()))
}
