//! The SCIM HTTP client: bearer authentication, retries, and SCIM error bodies.
//!
//! Guarantees: the token goes only into the `Authorization` header of requests to the
//! configured base URL (redirects are not followed), and never into a log line or an error;
//! every response body is read with a bound; a non-2xx answer becomes a [`ScimError::Status`]
//! carrying the HTTP status and the `scimType` and `detail` of the SCIM error body
//! (RFC 7644 §3.12).

use std::time::Instant;

use reqwest::{Method, Url, header};
use serde_json::Value;

use super::wire::ErrorBody;
use crate::model::Secret;
use crate::remote::http::{self, RetryPolicy};
use crate::remote::http::{Dialect, ServiceError};
use crate::remote::redact::redact;

/// The largest successful body read (a page of users or groups with their members).
const BODY_CAP: usize = 128 * 1024 * 1024;

/// The SCIM media type (RFC 7644 §3.8); `application/json` is accepted back.
pub const MEDIA_TYPE: &str = "application/scim+json";

/// A successful answer.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    /// The `ETag` header.
    pub etag: Option<String>,
    /// The `Location` header.
    pub location: Option<String>,
    /// The JSON body, when there is one.
    pub body: Option<Value>,
}

/// Why a SCIM request failed (the providers' one [`ServiceError`], in SCIM's words).
pub type ScimError = ServiceError;

/// A value already in use (RFC 7644 §3.3: 409 with `scimType: uniqueness`). A 409 without a
/// scimType counts too: some services leave it out.
pub fn is_uniqueness(e: &ScimError) -> bool {
    e.status() == Some(409) && e.code().is_none_or(|t| t.eq_ignore_ascii_case("uniqueness"))
}

/// An error answer: its status and SCIM error body.
pub fn scim_error(status: u16, body: &ErrorBody) -> ScimError {
    ServiceError::Status {
        dialect: Dialect::Scim,
        status,
        code: body.scim_type.clone(),
        message: body.detail.clone(),
        request_id: None,
    }
}

/// A client for one SCIM service.
pub struct ScimClient {
    base: Url,
    http: reqwest::Client,
    token: Secret<String>,
    retry: RetryPolicy,
    /// HTTP requests sent (each attempt of a retried request counts).
    sent: std::sync::atomic::AtomicUsize,
}

/// Why a service root cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error(transparent)]
    Insecure(#[from] http::UrlError),
    #[error("`{0}` cannot be a base URL")]
    CannotBeABase(String),
}

impl ScimClient {
    /// `base` is the service root (for example `https://scim.eu-west-1.amazonaws.com/TENANT/scim/v2`); it must be
    /// https, or http on loopback.
    pub fn new(
        base: Url,
        http: reqwest::Client,
        token: Secret<String>,
        retry: RetryPolicy,
    ) -> Result<Self, BaseUrlError> {
        http::check_url(&base)?;
        if base.cannot_be_a_base() {
            return Err(BaseUrlError::CannotBeABase(base.to_string()));
        }
        Ok(ScimClient { base, http, token, retry, sent: Default::default() })
    }

    /// The URL of a path below the root: each segment is percent-encoded as needed.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut p = url.path_segments_mut().expect("checked in new");
            p.pop_if_empty();
            for s in segments {
                p.push(s);
            }
        }
        url
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// HTTP requests sent so far.
    pub fn requests(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends one request (with retries) and reads its answer.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        if_match: Option<&str>,
    ) -> Result<Reply, ScimError> {
        // Checked again per request, so no code path can send the token in clear to a remote host.
        http::check_url(&url).map_err(|e| ScimError::Transport(e.to_string()))?;
        let started = Instant::now();
        let shown = display_url(&url);
        let resp = http::send_with_retry(&self.retry, &shown, || {
            self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut rb = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.token.expose())
                .header(header::ACCEPT, format!("{MEDIA_TYPE}, application/json"));
            if let Some(tag) = if_match {
                rb = rb.header(header::IF_MATCH, tag);
            }
            if let Some(b) = &body {
                rb = rb.header(header::CONTENT_TYPE, MEDIA_TYPE).body(b.clone());
            }
            rb
        })
        .await
        .map_err(|e| ScimError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let text_header = |name: header::HeaderName| {
            resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string).filter(|s| !s.is_empty())
        };
        let etag = text_header(header::ETAG);
        let location = text_header(header::LOCATION);
        tracing::debug!(
            method = %method,
            url = %shown,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "scim request"
        );
        if !resp.status().is_success() {
            let bytes = http::read_error_body(resp).await;
            let mut body = ErrorBody::parse(&bytes);
            // The body is the service's text: it may echo the request, token included.
            for text in [&mut body.scim_type, &mut body.detail].into_iter().flatten() {
                *text = redact(text, self.token.expose());
            }
            return Err(scim_error(status, &body));
        }
        let bytes = http::read_body(resp, BODY_CAP, &shown).await.map_err(|e| ScimError::Transport(e.to_string()))?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(serde_json::from_slice(&bytes).map_err(|e| {
                ScimError::Invalid(format!("{method} {shown} answered {status} with a body that is not JSON: {e}"))
            })?)
        };
        Ok(Reply { status, etag, location, body })
    }

    /// GET, expecting a JSON body.
    pub async fn get_json(&self, url: Url) -> Result<(Value, Option<String>), ScimError> {
        let shown = display_url(&url);
        let r = self.send(Method::GET, url, None, None).await?;
        let body = r.body.ok_or_else(|| ScimError::Invalid(format!("GET {shown} answered with no body")))?;
        Ok((body, r.etag))
    }

    /// Sends a JSON body.
    pub async fn send_json(
        &self,
        method: Method,
        url: Url,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Reply, ScimError> {
        let bytes = serde_json::to_vec(body).expect("JSON values serialize");
        self.send(method, url, Some(bytes), if_match).await
    }
}

/// A URL for logs and errors: without its query (which may hold userNames in filters).
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_show_status_scim_type_and_detail() {
        let e =
            scim_error(409, &ErrorBody { scim_type: Some("uniqueness".into()), detail: Some("userName taken".into()) });
        assert_eq!(e.to_string(), "HTTP 409 Conflict (scimType uniqueness): userName taken");
        assert!(is_uniqueness(&e));
        assert!(is_uniqueness(&scim_error(409, &ErrorBody::default())));
        let mutability = scim_error(409, &ErrorBody { scim_type: Some("mutability".into()), detail: None });
        assert!(!is_uniqueness(&mutability));
        let pre = scim_error(412, &ErrorBody::default());
        assert_eq!(pre.to_string(), "HTTP 412 Precondition Failed");
        assert!(pre.is_precondition_failed());
    }

    #[test]
    fn urls_are_built_and_shown_safely() {
        let http = reqwest::Client::new();
        let c = ScimClient::new(
            "http://127.0.0.1:9/scim/v2/".parse().unwrap(),
            http.clone(),
            Secret::new("t".into()),
            RetryPolicy::default(),
        )
        .unwrap();
        assert_eq!(c.url(&["Users", "a b/c"]).as_str(), "http://127.0.0.1:9/scim/v2/Users/a%20b%2Fc");
        let mut u = c.url(&["Users"]);
        u.set_query(Some("filter=userName%20eq%20%22x%22"));
        assert_eq!(display_url(&u), "http://127.0.0.1:9/scim/v2/Users");
        let remote = ScimClient::new(
            "http://scim.example.com/v2".parse().unwrap(),
            http,
            Secret::new("t".into()),
            RetryPolicy::default(),
        );
        let e = remote.err().unwrap();
        assert!(matches!(e, BaseUrlError::Insecure(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "`http://scim.example.com/v2` is plain http to a host other than loopback; endpoints other than loopback must use https"
        );
        let e = ScimClient::new(
            "mailto:a@b.example".parse().unwrap(),
            reqwest::Client::new(),
            Secret::new("t".into()),
            RetryPolicy::default(),
        );
        assert_eq!(e.err().unwrap().to_string(), "`mailto:a@b.example` has scheme `mailto`; use https");
        assert_eq!(BaseUrlError::CannotBeABase("data:x".into()).to_string(), "`data:x` cannot be a base URL");
    }

    /// Regression: a service whose error `detail` echoed the request's Authorization header
    /// had the bearer token printed in keyward's error message.
    #[tokio::test]
    async fn token_echoed_in_a_scim_error_detail_is_redacted() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut auth = String::new();
            for line in BufReader::new(stream.try_clone().unwrap()).lines() {
                let line = line.unwrap();
                if line.is_empty() {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    auth = line;
                }
            }
            let body = serde_json::json!({"scimType": auth, "detail": format!("rejected {auth}")}).to_string();
            let head =
                format!("HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            stream.write_all(format!("{head}{body}").as_bytes()).unwrap();
        });
        let c = ScimClient::new(
            format!("http://127.0.0.1:{port}/scim/v2").parse().unwrap(),
            reqwest::Client::new(),
            Secret::new("tok-3f9a1c77e2".into()),
            RetryPolicy::default(),
        )
        .unwrap();
        let e = c.get_json(c.url(&["Users"])).await.unwrap_err().to_string();
        server.join().unwrap();
        assert!(e.contains("rejected") && e.contains("(sensitive)"), "{e}");
        assert!(!e.contains("tok-3f9a1c77e2"), "{e}");
    }
}
