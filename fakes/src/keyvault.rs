//! Azure Key Vault secrets (data plane, API version 7.4).
//!
//! Documented behaviour reproduced: `PUT /secrets/{name}?api-version=…` with
//! `{"value", "contentType"?, "attributes"?: {"enabled"?, "nbf"?, "exp"?}}` creates a new
//! version and answers `200` with the secret bundle (`value`, `id` =
//! `{vault}/secrets/{name}/{version}`, `contentType`, `attributes` with `created` / `updated`
//! in Unix seconds); `GET /secrets/{name}?api-version=…` answers the latest version, or `404`
//! with `{"error": {"code": "SecretNotFound", "message"}}`; names are 1–127 of `[0-9a-zA-Z-]`;
//! a missing `api-version` is `400`; requests need a bearer token issued for
//! `https://vault.azure.net` (checked with the Entra fake), else `401`.
//!
//! Assumed (not checked against the service): the exact error codes of a bad name
//! (`BadParameter`) and of a missing api-version (`MissingApiVersionParameter`); versions are
//! 32 hex characters, here counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::entra::Entra;

/// One stored version of a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSecret {
    pub value: String,
    pub content_type: Option<String>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub version: String,
}

#[derive(Default)]
struct Inner {
    secrets: HashMap<String, Vec<StoredSecret>>,
    next: u64,
    /// Status codes to answer to the next PUTs instead of storing (failure injection).
    fail_puts: Vec<u16>,
}

/// The fake vault. Cheap to clone (shared state).
#[derive(Clone)]
pub struct KeyVault {
    entra: Entra,
    inner: Arc<Mutex<Inner>>,
}

/// The resource Key Vault tokens are issued for.
pub const RESOURCE: &str = "https://vault.azure.net";

impl KeyVault {
    /// A vault accepting tokens `entra` issued for `https://vault.azure.net`.
    pub fn new(entra: &Entra) -> Self {
        KeyVault { entra: entra.clone(), inner: Arc::default() }
    }

    /// Answers the next `n` PUTs with `status` (and stores nothing).
    pub fn fail_next_puts(&self, status: u16, n: usize) -> &Self {
        self.inner.lock().expect("vault").fail_puts.extend(std::iter::repeat_n(status, n));
        self
    }

    /// The latest version of secret `name`.
    pub fn current(&self, name: &str) -> Option<StoredSecret> {
        self.inner.lock().expect("vault").secrets.get(name).and_then(|v| v.last().cloned())
    }

    /// Every version of secret `name`, oldest first.
    pub fn versions(&self, name: &str) -> Vec<StoredSecret> {
        self.inner.lock().expect("vault").secrets.get(name).cloned().unwrap_or_default()
    }

    /// The router of the vault (`/secrets/...`); serve it with the Entra router merged in.
    pub fn router(&self) -> Router {
        Router::new().route("/secrets/{name}", put(put_secret).get(get_secret)).with_state(self.clone())
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[allow(clippy::result_large_err)]
fn precheck(
    vault: &KeyVault,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    name: &str,
) -> Result<(), Response> {
    vault.entra.check(headers, RESOURCE)?;
    if !query.contains_key("api-version") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    }
    if !valid_name(name) {
        return Err(error(StatusCode::BAD_REQUEST, "BadParameter", "The request URI contains an invalid name."));
    }
    Ok(())
}

fn bundle(host: &str, name: &str, s: &StoredSecret) -> Value {
    let mut attributes = json!({"enabled": true, "created": 1_700_000_000, "updated": 1_700_000_000, "recoveryLevel": "Recoverable+Purgeable"});
    if let Some(n) = s.nbf {
        attributes["nbf"] = json!(n);
    }
    if let Some(e) = s.exp {
        attributes["exp"] = json!(e);
    }
    let mut b = json!({"value": s.value, "id": format!("http://{host}/secrets/{name}/{}", s.version), "attributes": attributes});
    if let Some(ct) = &s.content_type {
        b["contentType"] = json!(ct);
    }
    b
}

async fn put_secret(
    State(vault): State<KeyVault>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = precheck(&vault, &headers, &query, &name) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "BadParameter", "The request body is not valid JSON.");
    };
    let Some(value) = body.get("value").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "BadParameter", "Property 'value' is required.");
    };
    let mut inner = vault.inner.lock().expect("vault");
    if !inner.fail_puts.is_empty() {
        let status = inner.fail_puts.remove(0);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status, "Forbidden", "The user, group or application does not have secrets set permission.");
    }
    inner.next += 1;
    let attrs = body.get("attributes");
    let stored = StoredSecret {
        value: value.to_string(),
        content_type: body.get("contentType").and_then(Value::as_str).map(str::to_string),
        nbf: attrs.and_then(|a| a.get("nbf")).and_then(Value::as_i64),
        exp: attrs.and_then(|a| a.get("exp")).and_then(Value::as_i64),
        version: format!("{:032x}", inner.next),
    };
    inner.secrets.entry(name.clone()).or_default().push(stored.clone());
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("vault");
    Json(bundle(host, &name, &stored)).into_response()
}

async fn get_secret(
    State(vault): State<KeyVault>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = precheck(&vault, &headers, &query, &name) {
        return r;
    }
    let inner = vault.inner.lock().expect("vault");
    match inner.secrets.get(&name).and_then(|v| v.last()) {
        Some(s) => {
            let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("vault");
            Json(bundle(host, &name, s)).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            &format!("A secret with (name/id) {name} was not found in this key vault."),
        ),
    }
}
