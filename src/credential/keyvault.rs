//! Azure Key Vault secrets through the REST API: `PUT {vault}/secrets/{name}?api-version=7.4`
//! with `{"value", "contentType", "attributes": {"nbf", "exp"}}`, and `GET` of the same URL to
//! read the current version back (for signing a proof token).
//!
//! The bearer token is for scope `https://vault.azure.net/.default`; it comes from a
//! [`BearerSource`] (the shared Entra token source implements it), is never logged and never
//! put in an error. A 401 forgets the cached token and retries once; 429 and 5xx are retried
//! per the shared HTTP retry policy, honouring `Retry-After`.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Client, Method, StatusCode, Url};

use super::CredentialError;
use crate::model::{KeyVaultSink, Secret, Timestamp};
use crate::remote::http::{self, RetryPolicy};

/// The API version keyward speaks.
pub const API_VERSION: &str = "7.4";

/// The OAuth scope of Key Vault's data plane.
pub const SCOPE: &str = "https://vault.azure.net/.default";

/// Gives bearer tokens for Key Vault.
#[async_trait]
pub trait BearerSource: Send + Sync {
    /// A token; errors name the source, never a credential.
    async fn bearer(&self) -> Result<Secret<String>, String>;
    /// Forgets a cached token (after a 401).
    fn invalidate(&self) {}
}

/// A Key Vault client.
#[derive(Clone)]
pub struct KeyVault {
    http: Client,
    token: Arc<dyn BearerSource>,
    retry: RetryPolicy,
}

/// Whether `name` is a valid Key Vault secret name (see [`KeyVaultSink::valid_secret_name`]).
pub fn valid_secret_name(name: &str) -> bool {
    KeyVaultSink::valid_secret_name(name)
}

impl KeyVault {
    pub fn new(http: Client, token: Arc<dyn BearerSource>) -> Self {
        KeyVault { http, token, retry: RetryPolicy::default() }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn url(vault: &str, name: &str) -> Result<Url, CredentialError> {
        let invalid = |m: String| CredentialError::Invalid(m);
        if !valid_secret_name(name) {
            return Err(invalid(format!(
                "`{name}` is not a Key Vault secret name (1 to 127 letters, digits and dashes)"
            )));
        }
        let not_url = || invalid(format!("keyVault vault `{vault}` is not a URL"));
        let base = Url::parse(vault).map_err(|_| not_url())?;
        http::check_url(&base).map_err(|e| invalid(e.to_string()))?;
        let mut url = Url::parse(&format!("{}/secrets/{name}", vault.trim_end_matches('/'))).map_err(|_| not_url())?;
        url.query_pairs_mut().append_pair("api-version", API_VERSION);
        Ok(url)
    }

    /// Sends one request with the bearer token, refreshing the token once after a 401.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, String> {
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        let mut refreshed = false;
        loop {
            let token = self.token.bearer().await?;
            let resp = http::send_with_retry(&self.retry, &shown, || {
                let mut r = self.http.request(method.clone(), url.clone()).bearer_auth(token.expose());
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            })
            .await
            .map_err(|e| e.to_string())?;
            if resp.status() == StatusCode::UNAUTHORIZED && !refreshed {
                self.token.invalidate();
                refreshed = true;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Writes a new version of secret `name` in `vault`.
    pub async fn put_secret(
        &self,
        vault: &str,
        name: &str,
        value: &Secret<String>,
        content_type: &str,
        nbf: Timestamp,
        exp: Timestamp,
    ) -> Result<(), CredentialError> {
        let sink = format!("keyVault {}/{name}", vault.trim_end_matches('/'));
        let url = Self::url(vault, name)?;
        let body = serde_json::json!({
            "value": value.expose(),
            "contentType": content_type,
            "attributes": {"enabled": true, "nbf": nbf.timestamp(), "exp": exp.timestamp()},
        });
        let resp = self
            .send(Method::PUT, &url, Some(&body))
            .await
            .map_err(|message| CredentialError::Deliver { sink: sink.clone(), message })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        Err(CredentialError::Deliver { sink, message: error_message(status, resp).await })
    }

    /// The current value of secret `name`, or `None` when the vault has none.
    pub async fn get_secret(&self, vault: &str, name: &str) -> Result<Option<Secret<String>>, CredentialError> {
        let sink = format!("keyVault {}/{name}", vault.trim_end_matches('/'));
        let url = Self::url(vault, name)?;
        let resp = self
            .send(Method::GET, &url, None)
            .await
            .map_err(|message| CredentialError::Deliver { sink: sink.clone(), message })?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(CredentialError::Deliver { sink, message: error_message(status, resp).await });
        }
        #[derive(serde::Deserialize)]
        struct Bundle {
            value: Option<String>,
        }
        let bytes = http::read_body(resp, 1024 * 1024, &sink)
            .await
            .map_err(|e| CredentialError::Deliver { sink: sink.clone(), message: e.to_string() })?;
        let bundle: Bundle = serde_json::from_slice(&bytes).map_err(|_| CredentialError::Deliver {
            sink: sink.clone(),
            message: "the answer is not a secret bundle".into(),
        })?;
        Ok(bundle.value.map(Secret::new))
    }
}

/// The status and Key Vault's error code and message (`{"error": {"code", "message"}}`); the
/// request body (the secret) is never part of it.
async fn error_message(status: StatusCode, resp: reqwest::Response) -> String {
    let body = http::read_error_body(resp).await;
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Outer>(&body) {
        Ok(o) => format!(
            "the vault answered {status}: {} {}",
            o.error.code.unwrap_or_default(),
            o.error.message.unwrap_or_default().chars().take(300).collect::<String>()
        )
        .trim_end()
        .to_string(),
        Err(_) => format!("the vault answered {status}"),
    }
}

#[async_trait]
impl BearerSource for crate::remote::entra::TokenSource {
    async fn bearer(&self) -> Result<Secret<String>, String> {
        crate::remote::entra::TokenSource::bearer(self).await.map_err(|e| e.to_string())
    }
    fn invalidate(&self) {
        crate::remote::entra::TokenSource::invalidate(self)
    }
}

/// Key Vault access for a configuration, when one of its credentials is delivered to Key
/// Vault: a token for [`SCOPE`] from the first Entra ID identity among its targets (graph
/// targets first, then dataverse, then fno, each in name order), through that target's HTTP
/// settings (`caFile`). `Ok(None)` when no credential needs Key Vault or no target has an Entra
/// identity; delivery then fails and the credential is recorded as undelivered.
pub fn from_settings(state: &crate::model::DesiredState, root: &std::path::Path) -> Result<Option<KeyVault>, String> {
    use crate::model::config::Connection;
    use crate::model::{Deliver, ProviderKind};
    let needed = state
        .service_accounts
        .values()
        .flat_map(|s| &s.credentials)
        .any(|c| matches!(c.deliver, Some(Deliver::KeyVault(_))));
    if !needed {
        return Ok(None);
    }
    let rank = |k: ProviderKind| match k {
        ProviderKind::Graph => 0,
        ProviderKind::Dataverse => 1,
        ProviderKind::Fno => 2,
        _ => 3,
    };
    let mut targets: Vec<_> = state.settings.targets.values().filter(|t| rank(t.provider()) < 3).collect();
    targets.sort_by_key(|t| (rank(t.provider()), t.name.clone()));
    let Some(target) = targets.first() else { return Ok(None) };
    let (tenant, client_id, credential, authority) = match &target.connection {
        Connection::Graph { tenant, client_id, credential, authority, .. }
        | Connection::Dataverse { tenant, client_id, credential, authority, .. }
        | Connection::Fno { tenant, client_id, credential, authority, .. } => {
            (tenant, client_id, credential, authority.as_deref())
        }
        _ => return Ok(None),
    };
    let ca = target.ca_file.as_ref().map(|c| root.join(c));
    let http = http::client(ca.as_deref(), std::time::Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let name = target.name.to_string();
    let tokens = crate::remote::entra::TokenSource::new(
        http.clone(),
        authority,
        tenant,
        client_id,
        credential,
        SCOPE,
        root,
        &name,
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(KeyVault::new(http, Arc::new(tokens))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_names() {
        let u = KeyVault::url("https://kv.vault.azure.net", "payments-bot").unwrap();
        assert_eq!(u.as_str(), "https://kv.vault.azure.net/secrets/payments-bot?api-version=7.4");
        let u = KeyVault::url("https://kv.vault.azure.net/", "a").unwrap();
        assert_eq!(u.as_str(), "https://kv.vault.azure.net/secrets/a?api-version=7.4");
        assert!(KeyVault::url("http://kv.vault.azure.net", "a").is_err());
        assert!(KeyVault::url("http://127.0.0.1:9", "a").is_ok());
        assert!(KeyVault::url("https://kv.vault.azure.net", "a_b").is_err());
        assert!(KeyVault::url("https://kv.vault.azure.net", "../x").is_err());
    }
}
