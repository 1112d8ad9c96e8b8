//! Entra ID access tokens: OAuth 2.0 client credentials (reference sheet section 0), shared by
//! the providers that speak to Microsoft services (Graph, Dataverse, Finance & Operations).
//!
//! Guarantees:
//! - three ways to prove the client: a client secret; a certificate, whose private key signs a
//!   client-assertion JWT (`PS256`, header `x5t#S256`, claims `aud`/`iss`/`sub`/`jti`/`nbf`/
//!   `exp` with a ten-minute life); a federated token file (workload identity, as Kubernetes
//!   and GitHub Actions provide), whose content is the client assertion and is read again on
//!   every token request because those platforms rotate it;
//! - one token per [`TokenSource`] (clones share it), fetched once when several tasks ask at
//!   the same time, and replaced ahead of its expiry (five minutes, or half the lifetime when it
//!   is shorter); [`TokenSource::invalidate`] drops it after a `401`;
//! - the secret, the private key, the assertion and the token are held in [`Secret`] values or
//!   kept private: they never appear in `Debug` output, in logs, or in error messages; errors
//!   carry Entra's `error`, `error_description` (the `AADSTS…` code), and trace and correlation
//!   ids;
//! - the token endpoint is https, or http on loopback (tests), like every other endpoint.
//!
//! It assumes RSA keys for certificates: Entra ID app certificates are RSA, and `PS256` is what
//! the current documentation names.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::Url;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RSA_PSS_SHA256, RsaKeyPair};
use serde_json::{Value, json};

use super::http::{self, RetryPolicy};
use crate::model::config::ClientCredential;
use crate::model::{Secret, SecretRef};

/// The public-cloud authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Why no token could be had: the target it was for, and what went wrong (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {message}")]
pub struct TokenError {
    pub target: String,
    pub message: String,
}

/// The operating system's random source failed (a GUID or a password could not be made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random source failed")]
pub struct RandomError;

/// Why a client certificate, a federated token file or a client assertion cannot be used. The
/// certificate is named by its reference, never by its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the certificate {reference} holds no PEM CERTIFICATE block")]
    NoCertificate { reference: String },
    #[error("the certificate {reference} is not valid PEM: {reason}")]
    BadPem { reference: String, reason: String },
    #[error("the certificate {reference} holds no private key (PEM PRIVATE KEY block)")]
    NoPrivateKey { reference: String },
    #[error("the private key in {reference} is not an RSA key; Entra ID certificates are RSA")]
    NotRsa { reference: String },
    #[error("the private key in {reference} is not a usable RSA key (Entra ID certificates are RSA): {reason}")]
    UnusableRsa { reference: String, reason: String },
    #[error("cannot read the federated token file {path}: {reason}")]
    TokenFileUnreadable { path: String, reason: String },
    #[error("the federated token file {path} is empty")]
    TokenFileEmpty { path: String },
    #[error("the clock is before 1970")]
    ClockBefore1970,
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("RSA signing failed")]
    SigningFailed,
}

/// What is wrong with a token response; the message continues "the token response from URL".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenResponseError {
    #[error("is not JSON: {0}")]
    NotJson(String),
    #[error("has no access_token")]
    NoAccessToken,
    #[error("has token_type `{0}`, not Bearer")]
    NotBearer(String),
    #[error("has no valid expires_in")]
    NoExpiresIn,
}

/// The assertion type for a signed JWT (RFC 7523).
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a signed client assertion is valid (the documentation asks for 5 to 10 minutes).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// The largest token response read.
const BODY_CAP: usize = 256 * 1024;

/// How long before its expiry a token is replaced: five minutes, or half its lifetime when that
/// is shorter, so a token is never used in its last moments.
pub fn refresh_after(expires_in: Duration) -> Duration {
    let margin = Duration::from_secs(300).min(expires_in / 2);
    expires_in.saturating_sub(margin)
}

/// A source of bearer tokens for one resource. Cheap to clone (shared cache inside).
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
    retry: RetryPolicy,
}

struct Inner {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    scope: String,
    target: String,
    proof: Proof,
    /// The current token and when to replace it.
    cached: Mutex<Option<Cached>>,
    /// Held while a token is being fetched, so concurrent callers wait for one request.
    fetching: tokio::sync::Mutex<()>,
}

struct Cached {
    token: Secret<String>,
    refresh_at: Instant,
}

/// How the client proves itself, resolved.
enum Proof {
    Secret(Secret<String>),
    Certificate(Box<Signer>),
    TokenFile(PathBuf),
}

/// An RSA private key and the thumbprint of its certificate.
struct Signer {
    key: RsaKeyPair,
    /// base64url SHA-256 of the certificate's DER encoding.
    x5t_s256: String,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let proof = match &i.proof {
            Proof::Secret(_) => "client secret",
            Proof::Certificate(_) => "certificate",
            Proof::TokenFile(_) => "federated token file",
        };
        f.debug_struct("TokenSource")
            .field("target", &i.target)
            .field("token_url", &i.token_url.as_str())
            .field("client_id", &i.client_id)
            .field("scope", &i.scope)
            .field("proof", &proof)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// `authority` defaults to [`DEFAULT_AUTHORITY`] when `None`; `scope` is
    /// `{resource}/.default`; `root` resolves relative certificate and token-file paths;
    /// `target` names the target in errors.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        http: reqwest::Client,
        authority: Option<&str>,
        tenant: &str,
        client_id: &str,
        credential: &ClientCredential,
        scope: &str,
        root: &Path,
        target: &str,
    ) -> Result<TokenSource, TokenError> {
        let fail = |message: String| TokenError { target: target.to_string(), message };
        let authority = authority.unwrap_or(DEFAULT_AUTHORITY).trim_end_matches('/');
        if tenant.is_empty() || tenant.contains(['/', '?', '#']) {
            return Err(fail(format!("the tenant `{tenant}` is not a tenant id or domain name")));
        }
        let token_url: Url = format!("{authority}/{tenant}/oauth2/v2.0/token")
            .parse()
            .map_err(|e| fail(format!("the authority `{authority}` is not a URL: {e}")))?;
        http::check_url(&token_url).map_err(|e| fail(e.to_string()))?;
        let proof = match credential {
            ClientCredential::Secret(r) => {
                Proof::Secret(http::resolve_secret(r, root).map_err(|e| fail(e.to_string()))?)
            }
            ClientCredential::Certificate(r) => {
                let pem = http::resolve_secret(r, root).map_err(|e| fail(e.to_string()))?;
                Proof::Certificate(Box::new(
                    Signer::from_pem(pem.expose().as_bytes(), r).map_err(|e| fail(e.to_string()))?,
                ))
            }
            ClientCredential::FederatedTokenFile(p) => Proof::TokenFile(root.join(p)),
        };
        Ok(TokenSource {
            inner: Arc::new(Inner {
                http,
                token_url,
                client_id: client_id.to_string(),
                scope: scope.to_string(),
                target: target.to_string(),
                proof,
                cached: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            }),
            retry: RetryPolicy::default(),
        })
    }

    /// A bearer token, cached and refreshed ahead of expiry (a single request when several
    /// tasks ask at once); never logged, never in an error message.
    pub async fn bearer(&self) -> Result<Secret<String>, TokenError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _guard = self.inner.fetching.lock().await;
        // Another task may have fetched one while this one waited.
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let started = Instant::now();
        let (token, expires_in) = self.fetch().await?;
        let refresh_at = started + refresh_after(expires_in);
        *self.inner.cached.lock().expect("token cache") = Some(Cached { token: token.clone(), refresh_at });
        tracing::debug!(target_name = %self.inner.target, expires_in_s = expires_in.as_secs(), "obtained an access token");
        Ok(token)
    }

    /// The same source, retrying token requests as `retry` says.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Forgets the cached token (call after a 401, then retry once).
    pub fn invalidate(&self) {
        *self.inner.cached.lock().expect("token cache") = None;
    }

    fn fresh(&self) -> Option<Secret<String>> {
        let cached = self.inner.cached.lock().expect("token cache");
        cached.as_ref().filter(|c| Instant::now() < c.refresh_at).map(|c| c.token.clone())
    }

    fn error(&self, message: impl Into<String>) -> TokenError {
        TokenError { target: self.inner.target.clone(), message: message.into() }
    }

    /// One token request: the form for the configured proof, sent with retries on 429/5xx.
    async fn fetch(&self) -> Result<(Secret<String>, Duration), TokenError> {
        let i = &self.inner;
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", i.client_id.clone()),
            ("scope", i.scope.clone()),
        ];
        // The secret or assertion goes into the form only, which is never logged.
        let proof: (&str, Secret<String>) = match &i.proof {
            Proof::Secret(s) => ("client_secret", s.clone()),
            Proof::Certificate(signer) => {
                let now = SystemTime::now();
                let assertion = signer
                    .assertion(i.token_url.as_str(), &i.client_id, now)
                    .map_err(|e| self.error(format!("cannot sign the client assertion: {e}")))?;
                ("client_assertion", assertion)
            }
            Proof::TokenFile(path) => {
                ("client_assertion", read_token_file(path).map_err(|e| self.error(e.to_string()))?)
            }
        };
        if proof.0 == "client_assertion" {
            form.push(("client_assertion_type", ASSERTION_TYPE.to_string()));
        }
        let url = i.token_url.as_str();
        let resp = http::send_with_retry(&self.retry, url, || {
            let mut fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            fields.push((proof.0, proof.1.expose().as_str()));
            i.http.post(i.token_url.clone()).form(&fields)
        })
        .await
        .map_err(|e| self.error(format!("cannot get an access token: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let body = http::read_error_body(resp).await;
            return Err(self.error(format!(
                "cannot get an access token from {url}: {}",
                describe_failure(status, &body, proof.1.expose())
            )));
        }
        let body = http::read_body(resp, BODY_CAP, url)
            .await
            .map_err(|e| self.error(format!("cannot read the token response: {e}")))?;
        parse_token(&body).map_err(|e| self.error(format!("the token response from {url} {e}")))
    }
}

/// Reads the federated token file: its whole content, trimmed, is the client assertion.
fn read_token_file(path: &Path) -> Result<Secret<String>, ProofError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ProofError::TokenFileUnreadable { path: path.display().to_string(), reason: e.to_string() })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(ProofError::TokenFileEmpty { path: path.display().to_string() });
    }
    Ok(Secret::new(t.to_string()))
}

/// `{"access_token", "expires_in"}`; `expires_in` may be a number or a numeric string.
fn parse_token(body: &[u8]) -> Result<(Secret<String>, Duration), TokenResponseError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| TokenResponseError::NotJson(e.to_string()))?;
    let token = v.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty());
    let Some(token) = token else { return Err(TokenResponseError::NoAccessToken) };
    if let Some(tt) = v.get("token_type").and_then(Value::as_str)
        && !tt.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenResponseError::NotBearer(tt.to_string()));
    }
    let expires_in = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let Some(expires_in) = expires_in else { return Err(TokenResponseError::NoExpiresIn) };
    Ok((Secret::new(token.to_string()), Duration::from_secs(expires_in)))
}

/// `HTTP 400 Bad Request: invalid_client: AADSTS7000215: … (trace id …, correlation id …)`,
/// from the documented error body; other bodies are not echoed beyond the status. The client
/// secret or assertion (`proof`) is redacted in every form from what is echoed.
fn describe_failure(status: reqwest::StatusCode, body: &[u8], proof: &str) -> String {
    let mut s = format!("HTTP {}", status.as_u16());
    if let Some(r) = status.canonical_reason() {
        s.push(' ');
        s.push_str(r);
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return s };
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(|t| super::redact::redact(t, proof));
    if let Some(e) = field("error") {
        s.push_str(": ");
        s.push_str(&e);
    }
    if let Some(d) = field("error_description") {
        // Entra appends the ids and time on new lines; keep the first line.
        s.push_str(": ");
        s.push_str(d.lines().next().unwrap_or_default().trim());
    }
    let ids: Vec<String> = [("trace id", field("trace_id")), ("correlation id", field("correlation_id"))]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n} {v}")))
        .collect();
    if !ids.is_empty() {
        s.push_str(&format!(" ({})", ids.join(", ")));
    }
    s
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A random version-4 GUID, for the assertion's `jti`.
pub fn random_guid() -> Result<String, RandomError> {
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).map_err(|_| RandomError)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

impl Signer {
    /// Reads the first certificate and the private key of a PEM bundle. `source` names it in
    /// errors (a reference, never the content).
    fn from_pem(pem: &[u8], source: &SecretRef) -> Result<Signer, ProofError> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let reference = || source.to_string();
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or_else(|| ProofError::NoCertificate { reference: reference() })?
            .map_err(|e| ProofError::BadPem { reference: reference(), reason: e.to_string() })?;
        let key =
            PrivateKeyDer::from_pem_slice(pem).map_err(|_| ProofError::NoPrivateKey { reference: reference() })?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(ProofError::NotRsa { reference: reference() }),
        }
        .map_err(|e| ProofError::UnusableRsa { reference: reference(), reason: e.to_string() })?;
        let x5t_s256 = b64url(ring::digest::digest(&ring::digest::SHA256, cert.as_ref()).as_ref());
        Ok(Signer { key, x5t_s256 })
    }

    /// A client-assertion JWT for `aud` (the token URL), issued by and about `client_id`.
    fn assertion(&self, aud: &str, client_id: &str, now: SystemTime) -> Result<Secret<String>, ProofError> {
        let now = now.duration_since(SystemTime::UNIX_EPOCH).map_err(|_| ProofError::ClockBefore1970)?.as_secs();
        let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256});
        let claims = json!({
            "aud": aud,
            "iss": client_id,
            "sub": client_id,
            "jti": random_guid()?,
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input =
            format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PSS_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut sig)
            .map_err(|_| ProofError::SigningFailed)?;
        Ok(Secret::new(format!("{signing_input}.{}", b64url(&sig))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_fakes::entra::{Entra, Grant};

    const RESOURCE: &str = "https://graph.microsoft.com";
    const SCOPE: &str = "https://graph.microsoft.com/.default";
    const TENANT: &str = "contoso.onmicrosoft.com";
    const CLIENT: &str = "11111111-1111-1111-1111-111111111111";

    fn http() -> reqwest::Client {
        http::client(None, Duration::from_secs(10)).unwrap()
    }

    /// A test secret made at run time, never a literal that looks real.
    fn test_secret() -> String {
        format!("canary-secret-{}", random_guid().unwrap())
    }

    fn serve(entra: &Entra) -> keyward_fakes::Running {
        keyward_fakes::serve(entra.router())
    }

    fn source(url: &str, cred: &ClientCredential, root: &Path) -> TokenSource {
        TokenSource::new(http(), Some(url), TENANT, CLIENT, cred, SCOPE, root, "entra").unwrap()
    }

    fn bearer_headers(token: &Secret<String>) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("authorization", format!("Bearer {}", token.expose()).parse().unwrap());
        h
    }

    fn secret_in_file(dir: &Path, value: &str) -> ClientCredential {
        std::fs::write(dir.join("client-secret"), value).unwrap();
        ClientCredential::Secret(SecretRef::File("client-secret".into()))
    }

    #[tokio::test]
    async fn a_client_secret_gets_a_token_that_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let secret = test_secret();
        let entra = Entra::new();
        entra.register(CLIENT, Some(&secret));
        let fake = serve(&entra);
        let ts = source(&fake.url(), &secret_in_file(dir.path(), &secret), dir.path());
        let t1 = ts.bearer().await.unwrap();
        assert!(entra.check(&bearer_headers(&t1), RESOURCE).is_ok());
        // A clone shares the cache: no second request.
        let t2 = ts.clone().bearer().await.unwrap();
        assert_eq!(t1.expose(), t2.expose());
        assert_eq!(entra.grants(), vec![Grant::Secret]);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_request() {
        let dir = tempfile::tempdir().unwrap();
        let secret = test_secret();
        let entra = Entra::new();
        entra.register(CLIENT, Some(&secret));
        let fake = serve(&entra);
        let ts = source(&fake.url(), &secret_in_file(dir.path(), &secret), dir.path());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let ts = ts.clone();
                tokio::spawn(async move { ts.bearer().await.unwrap().expose().clone() })
            })
            .collect();
        let mut tokens = Vec::new();
        for t in tasks {
            tokens.push(t.await.unwrap());
        }
        tokens.dedup();
        assert_eq!(tokens.len(), 1);
        assert_eq!(entra.grants().len(), 1);
    }

    #[tokio::test]
    async fn invalidate_after_a_401_fetches_a_new_token() {
        let dir = tempfile::tempdir().unwrap();
        let secret = test_secret();
        let entra = Entra::new();
        entra.register(CLIENT, Some(&secret));
        let fake = serve(&entra);
        let ts = source(&fake.url(), &secret_in_file(dir.path(), &secret), dir.path());
        let t1 = ts.bearer().await.unwrap();
        ts.invalidate();
        let t2 = ts.bearer().await.unwrap();
        assert_ne!(t1.expose(), t2.expose());
        assert_eq!(entra.grants().len(), 2);
    }

    #[test]
    fn tokens_are_replaced_ahead_of_expiry() {
        assert_eq!(refresh_after(Duration::from_secs(3599)), Duration::from_secs(3299));
        assert_eq!(refresh_after(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn an_expired_token_is_never_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let secret = test_secret();
        let entra = Entra::new();
        entra.register(CLIENT, Some(&secret)).token_lifetime(Duration::ZERO);
        let fake = serve(&entra);
        let ts = source(&fake.url(), &secret_in_file(dir.path(), &secret), dir.path());
        ts.bearer().await.unwrap();
        ts.bearer().await.unwrap();
        assert_eq!(entra.grants().len(), 2);
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let entra = Entra::new();
        entra.register(CLIENT, Some(&test_secret()));
        let fake = serve(&entra);
        let wrong = test_secret();
        let ts = source(&fake.url(), &secret_in_file(dir.path(), &wrong), dir.path());
        let err = ts.bearer().await.unwrap_err().to_string();
        assert!(err.contains("AADSTS7000215") && err.contains("invalid_client"), "{err}");
        assert!(err.contains("trace id"), "{err}");
        assert!(!err.contains(&wrong), "{err}");
        let debug = format!("{ts:?}");
        assert!(!debug.contains(&wrong) && debug.contains("client secret"), "{debug}");
    }

    /// An RSA key and a self-signed certificate for it, made now, as one PEM bundle, with the
    /// public key (PKCS#1 DER) to verify signatures with.
    fn test_certificate() -> (String, Vec<u8>, Vec<u8>) {
        use rsa::pkcs1::EncodeRsaPublicKey as _;
        use rsa::pkcs8::EncodePrivateKey as _;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let key_pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
        let public = key.to_public_key().to_pkcs1_der().unwrap().as_bytes().to_vec();
        let kp = rcgen::KeyPair::from_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["keyward-test".into()]).unwrap().self_signed(&kp).unwrap();
        (format!("{}{key_pem}", cert.pem()), cert.der().to_vec(), public)
    }

    fn decode(part: &str) -> Value {
        use base64::Engine as _;
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_certificate_signs_a_verifiable_client_assertion() {
        let dir = tempfile::tempdir().unwrap();
        let (pem, cert_der, public) = test_certificate();
        std::fs::write(dir.path().join("entra.pem"), &pem).unwrap();
        let entra = Entra::new();
        entra.register(CLIENT, None);
        let fake = serve(&entra);
        let cred = ClientCredential::Certificate(SecretRef::File("entra.pem".into()));
        let ts = source(&fake.url(), &cred, dir.path());
        let token = ts.bearer().await.unwrap();
        assert!(entra.check(&bearer_headers(&token), RESOURCE).is_ok());
        assert_eq!(entra.grants(), vec![Grant::Assertion]);

        let assertions = entra.assertions();
        let parts: Vec<&str> = assertions[0].split('.').collect();
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "PS256");
        let thumb = b64url(ring::digest::digest(&ring::digest::SHA256, &cert_der).as_ref());
        assert_eq!(header["x5t#S256"], thumb.as_str());
        let claims = decode(parts[1]);
        assert_eq!(claims["aud"], format!("{}/{TENANT}/oauth2/v2.0/token", fake.url()).as_str());
        assert_eq!(claims["iss"], CLIENT);
        assert_eq!(claims["sub"], CLIENT);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
        let (nbf, exp) = (claims["nbf"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
        assert!((300..=600).contains(&(exp - nbf)), "{nbf} {exp}");
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let verifier = ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PSS_2048_8192_SHA256, &public);
        verifier.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).expect("signature verifies");
        // The key never shows.
        let debug = format!("{ts:?}");
        assert!(!debug.contains("PRIVATE") && debug.contains("certificate"), "{debug}");
    }

    #[test]
    fn a_pem_without_a_key_or_with_a_non_rsa_key_is_refused_by_reference() {
        let r = SecretRef::File("entra.pem".into());
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&kp).unwrap();
        let e = Signer::from_pem(cert.pem().as_bytes(), &r).err().unwrap();
        assert_eq!(e, ProofError::NoPrivateKey { reference: "${file:entra.pem}".into() });
        assert_eq!(e.to_string(), "the certificate ${file:entra.pem} holds no private key (PEM PRIVATE KEY block)");
        let both = format!("{}{}", cert.pem(), kp.serialize_pem());
        let e = Signer::from_pem(both.as_bytes(), &r).err().unwrap();
        assert_eq!(
            e.to_string(),
            "the private key in ${file:entra.pem} is not a usable RSA key (Entra ID certificates are RSA): WrongAlgorithm"
        );
        let e = Signer::from_pem(b"no pem here", &r).err().unwrap();
        assert_eq!(e.to_string(), "the certificate ${file:entra.pem} holds no PEM CERTIFICATE block");
    }

    #[test]
    fn token_files_and_responses_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("token");
        std::fs::write(&empty, " \n").unwrap();
        let e = read_token_file(&empty).err().unwrap();
        assert_eq!(e.to_string(), format!("the federated token file {} is empty", empty.display()));
        let missing = dir.path().join("missing");
        let e = read_token_file(&missing).err().unwrap();
        assert!(matches!(&e, ProofError::TokenFileUnreadable { path, .. } if *path == missing.display().to_string()));
        let says = |body: &str| parse_token(body.as_bytes()).err().unwrap().to_string();
        assert!(says("<html>").starts_with("is not JSON: "));
        assert_eq!(says(r#"{"expires_in": 3600}"#), "has no access_token");
        assert_eq!(
            says(r#"{"access_token": "t", "token_type": "pop", "expires_in": 1}"#),
            "has token_type `pop`, not Bearer"
        );
        assert_eq!(says(r#"{"access_token": "t", "expires_in": "soon"}"#), "has no valid expires_in");
        assert_eq!(RandomError.to_string(), "the system random source failed");
    }

    /// A token shaped like a workload-identity token, accepted by the fake.
    fn federated_token(fake_url: &str, n: u32) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "x5t": "test"});
        let claims = json!({"aud": format!("{fake_url}/{TENANT}/oauth2/v2.0/token"), "iss": CLIENT, "sub": CLIENT,
            "jti": format!("token-{n}"), "nbf": 0, "exp": 4_000_000_000u64});
        format!("{}.{}.c2lnbmF0dXJl", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()))
    }

    #[tokio::test]
    async fn a_federated_token_file_is_read_again_on_every_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let entra = Entra::new();
        entra.register(CLIENT, None);
        let fake = serve(&entra);
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        let file = dir.path().join("tokens/azure-identity-token");
        let first = federated_token(&fake.url(), 1);
        std::fs::write(&file, format!("{first}\n")).unwrap();
        let cred = ClientCredential::FederatedTokenFile("tokens/azure-identity-token".into());
        let ts = source(&fake.url(), &cred, dir.path());
        let t1 = ts.bearer().await.unwrap();
        assert!(entra.check(&bearer_headers(&t1), RESOURCE).is_ok());
        // The platform rotates the file; the next token request sends the new content.
        let second = federated_token(&fake.url(), 2);
        std::fs::write(&file, &second).unwrap();
        ts.invalidate();
        ts.bearer().await.unwrap();
        assert_eq!(entra.assertions(), vec![first, second]);
        assert_eq!(entra.grants(), vec![Grant::Assertion, Grant::Assertion]);
        // A missing file is an error naming the path, not a panic.
        std::fs::remove_file(&file).unwrap();
        ts.invalidate();
        let e = ts.bearer().await.unwrap_err().to_string();
        assert!(e.contains("azure-identity-token"), "{e}");
    }

    #[test]
    fn an_authority_over_plain_http_elsewhere_than_loopback_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cred = ClientCredential::FederatedTokenFile("t".into());
        let e =
            TokenSource::new(http(), Some("http://login.example.com"), TENANT, CLIENT, &cred, SCOPE, dir.path(), "x")
                .unwrap_err()
                .to_string();
        assert!(e.contains("https"), "{e}");
    }

    #[test]
    fn token_responses_are_parsed_defensively() {
        let (t, d) = parse_token(br#"{"token_type":"Bearer","expires_in":"3599","access_token":"abc"}"#).unwrap();
        assert_eq!((t.expose().as_str(), d), ("abc", Duration::from_secs(3599)));
        assert!(parse_token(br#"{"token_type":"Bearer","expires_in":10}"#).is_err());
        assert!(parse_token(br#"{"token_type":"pop","expires_in":10,"access_token":"x"}"#).is_err());
        let e = parse_token(br#"{"access_token":"sekrit"}"#).unwrap_err();
        assert_eq!(e, TokenResponseError::NoExpiresIn);
        assert!(!e.to_string().contains("sekrit"));
    }

    /// A token endpoint that echoes the client secret (cased, base64) in its error gets it
    /// redacted.
    #[test]
    fn a_client_secret_echoed_by_the_token_endpoint_is_redacted() {
        use base64::Engine as _;
        let secret =
            format!("cs-{:x}~Qz", SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
        let body = json!({"error": format!("bad {}", secret.to_uppercase()),
            "error_description": format!("AADSTS7000215: client_secret={secret} ({b64})"), "trace_id": "t"});
        let s = describe_failure(reqwest::StatusCode::BAD_REQUEST, body.to_string().as_bytes(), &secret);
        assert!(s.starts_with("HTTP 400 Bad Request: bad (sensitive): AADSTS7000215"), "{s}");
        for form in [secret.clone(), secret.to_uppercase(), b64] {
            assert!(!s.contains(&form[..12]), "{form}: {s}");
        }
    }
}
