//! OAuth 2.0 client-credentials tokens for the Dynamics 365 targets (reference sheet §0).
//!
//! The same interface as the shared Entra token source (`TokenSource::new`, `bearer`,
//! `invalidate`), limited to client secrets and federated token files; certificate
//! credentials are refused with a clear error. The Dynamics 365 providers switch to the shared
//! module once it is available, and this file goes.
//!
//! Guarantees: a token is cached until a minute before it expires, and one request refreshes
//! it however many callers ask at once; neither the token nor the client secret ever appears
//! in a log line or an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::model::config::ClientCredential;
use crate::model::{Secret, SecretRef};
use crate::provider::ProviderError;
use crate::provider::http::{self, RetryPolicy};

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Refresh this long before the token expires.
const AHEAD: Duration = Duration::from_secs(60);

#[derive(Clone)]
enum Proof {
    Secret(SecretRef),
    TokenFile(PathBuf),
}

struct Cached {
    token: Secret<String>,
    until: Instant,
}

/// Cheap to clone (shared cache inside).
#[derive(Clone)]
pub struct TokenSource {
    http: reqwest::Client,
    url: reqwest::Url,
    client_id: String,
    scope: String,
    proof: Proof,
    root: PathBuf,
    target: String,
    cache: Arc<Mutex<Option<Cached>>>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl TokenSource {
    /// `authority` defaults to https://login.microsoftonline.com; `scope` is
    /// `{resource}/.default`; `root` resolves relative token-file paths; `target` names the
    /// target in errors.
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
    ) -> Result<TokenSource, ProviderError> {
        let fail = |message: String| ProviderError::Remote { target: target.to_string(), message };
        let authority = authority.unwrap_or(DEFAULT_AUTHORITY).trim_end_matches('/');
        let url: reqwest::Url = format!("{authority}/{tenant}/oauth2/v2.0/token")
            .parse()
            .map_err(|e| fail(format!("the token authority `{authority}` is not a URL: {e}")))?;
        http::check_url(&url).map_err(&fail)?;
        let proof = match credential {
            ClientCredential::Secret(r) => Proof::Secret(r.clone()),
            ClientCredential::FederatedTokenFile(p) => Proof::TokenFile(root.join(p)),
            ClientCredential::Certificate(_) => {
                return Err(fail(
                    "certificate credentials are not available for this target in this build; use clientSecret or federatedTokenFile".into(),
                ));
            }
        };
        Ok(TokenSource {
            http,
            url,
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            proof,
            root: root.to_path_buf(),
            target: target.to_string(),
            cache: Arc::new(Mutex::new(None)),
        })
    }

    fn fail(&self, message: String) -> ProviderError {
        ProviderError::Remote { target: self.target.clone(), message }
    }

    /// A bearer token, cached and refreshed ahead of expiry.
    pub async fn bearer(&self) -> Result<Secret<String>, ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && c.until > Instant::now()
        {
            return Ok(c.token.clone());
        }
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
        ];
        match &self.proof {
            Proof::Secret(r) => {
                let s = http::resolve_secret(r, &self.root).map_err(|m| self.fail(m))?;
                form.push(("client_secret", s.expose().to_string()));
            }
            Proof::TokenFile(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| self.fail(format!("cannot read the federated token file {}: {e}", p.display())))?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", text.trim().to_string()));
            }
        }
        let shown = self.url.to_string();
        let resp =
            http::send_with_retry(&RetryPolicy::default(), &shown, || self.http.post(self.url.clone()).form(&form))
                .await
                .map_err(|e| self.fail(format!("cannot get a token: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let body = http::read_error_body(resp).await;
            let e: TokenError = serde_json::from_slice(&body).unwrap_or_default();
            return Err(self.fail(format!(
                "the token endpoint refused client {} (HTTP {}): {} {}",
                self.client_id,
                status.as_u16(),
                e.error.unwrap_or_default(),
                e.error_description.unwrap_or_default()
            )));
        }
        let body = http::read_body(resp, 1024 * 1024, &shown).await.map_err(|e| self.fail(e.to_string()))?;
        let reply: TokenReply = serde_json::from_slice(&body)
            .map_err(|e| self.fail(format!("the token endpoint answered with an unexpected body: {e}")))?;
        let life = Duration::from_secs(reply.expires_in.unwrap_or(3599));
        let token = Secret::new(reply.access_token);
        *cache = Some(Cached { token: token.clone(), until: Instant::now() + life.saturating_sub(AHEAD) });
        Ok(token)
    }

    /// Forgets the cached token (after a 401).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.try_lock() {
            *c = None;
        }
    }
}
