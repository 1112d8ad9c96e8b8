//! The Entra ID token endpoint: OAuth 2.0 client credentials (reference sheet section 0).
//!
//! Documented behaviour reproduced: `POST /{tenant}/oauth2/v2.0/token`, form-encoded, with
//! `grant_type=client_credentials`, `client_id`, `scope` (`{resource}/.default`, one resource),
//! and either `client_secret` or `client_assertion_type` +
//! `client_assertion` (a JWT whose `aud` is the token URL and whose `iss` and `sub` are the client
//! id); success `{"token_type":"Bearer","expires_in":…,"access_token":…}`; failure `400` with
//! `error`, `error_description` (`AADSTS…`), `error_codes`, `trace_id`, `correlation_id`.
//!
//! Assumed: the assertion's signature is not checked here (keyward's own tests verify its
//! signatures against the certificate); the header must name an algorithm and a thumbprint
//! (`x5t#S256` or `x5t`). Issued tokens are opaque strings, valid for the scope they were
//! issued for, until `expires_in` passes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// How a client proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Secret,
    Assertion,
}

#[derive(Debug)]
struct Issued {
    scope: String,
    until: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// client id → expected secret; `None` means the client authenticates only by assertion.
    clients: HashMap<String, Option<String>>,
    tokens: HashMap<String, Issued>,
    next: u64,
    lifetime: Option<Duration>,
    grants: Vec<Grant>,
    /// Every client assertion received, in order (test data only: the fake holds no real secret).
    assertions: Vec<String>,
}

/// The token endpoint's state, shared with the resource fakes that check bearer tokens.
#[derive(Debug, Clone, Default)]
pub struct Entra {
    inner: Arc<Mutex<Inner>>,
}

impl Entra {
    pub fn new() -> Self {
        Entra::default()
    }

    /// Registers a client that authenticates with `secret`, or only with a signed assertion
    /// when `secret` is `None`.
    pub fn register(&self, client_id: &str, secret: Option<&str>) -> &Self {
        self.inner.lock().expect("entra").clients.insert(client_id.to_string(), secret.map(str::to_string));
        self
    }

    /// Sets the lifetime of issued tokens (default 3599 s, as documented).
    pub fn token_lifetime(&self, lifetime: Duration) -> &Self {
        self.inner.lock().expect("entra").lifetime = Some(lifetime);
        self
    }

    /// How many tokens were issued, and by which grant.
    pub fn grants(&self) -> Vec<Grant> {
        self.inner.lock().expect("entra").grants.clone()
    }

    /// The client assertions received, in order, so tests can inspect what a client signed or
    /// which token file content it sent.
    pub fn assertions(&self) -> Vec<String> {
        self.inner.lock().expect("entra").assertions.clone()
    }

    /// Checks the `Authorization: Bearer` header of a resource request against the tokens
    /// issued for `resource` (the scope without `/.default`). The error is the response to send.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, headers: &HeaderMap, resource: &str) -> Result<(), Response> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let inner = self.inner.lock().expect("entra");
        let ok = token.as_ref().and_then(|t| inner.tokens.get(t)).is_some_and(|i| {
            i.until > Instant::now() && i.scope.trim_end_matches("/.default").trim_end_matches('/') == resource
        });
        if ok {
            Ok(())
        } else {
            let body = json!({"error": {"code": "InvalidAuthenticationToken",
                "message": "Access token is empty, expired or not valid for this resource."}});
            Err((StatusCode::UNAUTHORIZED, Json(body)).into_response())
        }
    }

    /// The router of the token endpoint, to merge into a fake's router.
    pub fn router(&self) -> Router {
        Router::new().route("/{tenant}/oauth2/v2.0/token", post(token)).with_state(self.clone())
    }
}

fn refuse(code: u32, error: &str, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": "00000000-0000-0000-0000-000000000001",
        "correlation_id": "00000000-0000-0000-0000-000000000002",
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn b64url_json(part: &str) -> Option<Value> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn token(
    State(entra): State<Entra>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| form.get(k).map(String::as_str);
    if get("grant_type") != Some("client_credentials") {
        return refuse(70003, "unsupported_grant_type", "The app requested an unsupported grant type.");
    }
    let Some(client_id) = get("client_id") else {
        return refuse(900144, "invalid_request", "The request body must contain the parameter: 'client_id'.");
    };
    let Some(scope) = get("scope").filter(|s| s.ends_with("/.default") && !s.contains(' ')) else {
        return refuse(70011, "invalid_scope", "The provided value for the input parameter 'scope' is not valid.");
    };
    let mut inner = entra.inner.lock().expect("entra");
    let Some(expected) = inner.clients.get(client_id).cloned() else {
        return refuse(700016, "unauthorized_client", "Application was not found in the directory.");
    };
    let grant = if let Some(secret) = get("client_secret") {
        if expected.as_deref() != Some(secret) {
            return refuse(7000215, "invalid_client", "Invalid client secret provided.");
        }
        Grant::Secret
    } else if let Some(assertion) = get("client_assertion") {
        if get("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
            return refuse(
                700023,
                "invalid_request",
                "The client_assertion_type is not urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            );
        }
        inner.assertions.push(assertion.to_string());
        let parts: Vec<&str> = assertion.split('.').collect();
        let (Some(header), Some(claims)) =
            (parts.first().and_then(|p| b64url_json(p)), parts.get(1).and_then(|p| b64url_json(p)))
        else {
            return refuse(50027, "invalid_request", "JWT token is invalid or malformed.");
        };
        if parts.len() != 3 || parts[2].is_empty() {
            return refuse(50027, "invalid_request", "JWT token is invalid or malformed.");
        }
        if header.get("alg").and_then(Value::as_str).is_none()
            || (header.get("x5t#S256").is_none() && header.get("x5t").is_none())
        {
            return refuse(700027, "invalid_client", "Client assertion header lacks alg or a thumbprint.");
        }
        let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
        let aud = claims.get("aud").and_then(Value::as_str).unwrap_or_default();
        if !aud.ends_with(&format!("/{tenant}/oauth2/v2.0/token")) || (!host.is_empty() && !aud.contains(host)) {
            return refuse(700212, "invalid_client", "The client assertion's audience is not this token endpoint.");
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let nbf = claims.get("nbf").and_then(Value::as_u64).unwrap_or(u64::MAX);
        if claims.get("iss").and_then(Value::as_str) != Some(client_id)
            || claims.get("sub").and_then(Value::as_str) != Some(client_id)
            || exp <= now
            || nbf > now + 300
            || claims.get("jti").and_then(Value::as_str).is_none()
        {
            return refuse(
                700024,
                "invalid_client",
                "Client assertion is not within its valid time range or names another client.",
            );
        }
        Grant::Assertion
    } else {
        return refuse(
            7000218,
            "invalid_client",
            "The request body must contain 'client_assertion' or 'client_secret'.",
        );
    };
    inner.next += 1;
    let access_token = format!("fake-access-token-{}", inner.next);
    let lifetime = inner.lifetime.unwrap_or(Duration::from_secs(3599));
    inner.tokens.insert(access_token.clone(), Issued { scope: scope.to_string(), until: Instant::now() + lifetime });
    inner.grants.push(grant);
    Json(json!({"token_type": "Bearer", "expires_in": lifetime.as_secs(), "access_token": access_token}))
        .into_response()
}
