//! OData v4 over HTTP for the Dynamics 365 providers (Dataverse Web API and Finance &
//! Operations data entities): bearer authentication, server-driven paging, multipart `$batch`,
//! and error bodies.
//!
//! Guarantees:
//! - a collection is read by following `@odata.nextLink` whole (never rebuilt), resending the
//!   same `Prefer: odata.maxpagesize`, and only while the link stays on the configured host;
//! - writes go in `$batch` requests of at most [`ODataClient::batch_limit`] operations, each
//!   operation with its own outcome (`Prefer: odata.continue-on-error`);
//! - 429 and 503 are retried after `Retry-After` (see [`crate::remote::http`]); a 401 gets a
//!   fresh token and one more attempt; an operation answered 429 inside a `$batch` (service
//!   protection counts the operations, and a throttled one was not carried out) goes again,
//!   alone with the other throttled ones, after the longest `Retry-After` they were given;
//! - an error shows the HTTP status and the service's error code and message (Dataverse's hex
//!   `error.code`, F&O's `error.innererror.message`); the bearer token never appears.

pub mod batch;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::{Method, Url, header};
use serde_json::Value;

use crate::provider::bounds::{ReadBudget, ReadLimits};
use crate::remote::entra::TokenSource;
use crate::remote::http::{self, RetryPolicy};
use crate::remote::http::{Dialect, ServiceError};

/// The largest successful body read (one page, or one batch answer).
const BODY_CAP: usize = 256 * 1024 * 1024;

/// Why an OData request failed (the providers' one [`ServiceError`], in OData's words).
pub type ODataError = ServiceError;

/// An error answer: status plus the OData error body (`error.code`, `error.message`,
/// `error.innererror.message`).
pub fn odata_error(status: u16, body: &[u8], redact: &str) -> ODataError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = v.get("error");
    let code = e.and_then(|e| e.get("code")).and_then(|c| match c {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let mut message = e.and_then(|e| e.get("message")).and_then(Value::as_str).map(str::to_string);
    let inner = e
        .and_then(|e| e.get("innererror").or_else(|| e.get("innerError")))
        .and_then(|i| i.get("message"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if let Some(inner) = inner {
        message = Some(match message {
            Some(m) if !m.is_empty() && m != inner => format!("{m} ({inner})"),
            _ => inner.to_string(),
        });
    }
    if message.is_none() && e.is_none() && !body.is_empty() {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_string();
        message = Some(text).filter(|t| !t.is_empty());
    }
    let message = message.map(|m| crate::remote::redact::redact(&m, redact));
    ServiceError::Status { dialect: Dialect::OData, status, code, message, request_id: None }
}

/// A successful answer.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    /// `OData-EntityId`: the URL of a created entity.
    pub entity_id: Option<String>,
    pub etag: Option<String>,
    pub body: Option<Value>,
}

/// One write inside a `$batch`.
#[derive(Debug, Clone)]
pub struct BatchOp {
    pub method: Method,
    /// Absolute URL.
    pub url: Url,
    pub body: Option<Value>,
    pub if_match: Option<String>,
}

/// A client for one OData service root.
pub struct ODataClient {
    root: Url,
    http: reqwest::Client,
    tokens: TokenSource,
    retry: RetryPolicy,
    /// Rows per page asked for with `Prefer: odata.maxpagesize`.
    pub page_size: usize,
    /// Operations per `$batch`.
    pub batch_limit: usize,
    /// Extra headers every request carries (Dataverse's OData-Version headers).
    extra: Vec<(&'static str, &'static str)>,
    requests: Arc<AtomicUsize>,
    /// Bounds on reading one collection.
    limits: ReadLimits,
}

impl ODataClient {
    /// The same client, retrying as `retry` says.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// `root` is the service root, ending in `/` (for example `https://org.crm.dynamics.com/api/data/v9.2/`).
    pub fn new(
        root: Url,
        http: reqwest::Client,
        tokens: TokenSource,
        page_size: usize,
        batch_limit: usize,
        extra: Vec<(&'static str, &'static str)>,
    ) -> Result<Self, String> {
        http::check_url(&root).map_err(|e| e.to_string())?;
        if root.cannot_be_a_base() || !root.path().ends_with('/') {
            return Err(format!("`{root}` cannot be a service root"));
        }
        Ok(ODataClient {
            root,
            http,
            tokens,
            retry: RetryPolicy::default(),
            page_size,
            batch_limit,
            extra,
            requests: Arc::new(AtomicUsize::new(0)),
            limits: ReadLimits::default(),
        })
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    /// How many HTTP requests this client sent (retries included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// A URL below the root: `path` is an OData resource path such as `systemusers(…)/x/$ref`,
    /// `query` is appended as written (callers encode values).
    pub fn url(&self, path: &str, query: Option<&str>) -> Url {
        let mut u = self.root.join(path).unwrap_or_else(|_| self.root.clone());
        u.set_query(query);
        u
    }

    /// Sends one request; a 401 gets a fresh token and one more attempt.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
        prefer: Option<&str>,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), ODataError> {
        http::check_url(&url).map_err(|e| ODataError::Transport(e.to_string()))?;
        let shown = display_url(&url);
        for attempt in 0..2 {
            let token = self.tokens.bearer().await.map_err(|e| ODataError::Transport(e.to_string()))?;
            let resp = http::send_with_retry(&self.retry, &shown, || {
                self.requests.fetch_add(1, Ordering::Relaxed);
                let mut rb = self
                    .http
                    .request(method.clone(), url.clone())
                    .bearer_auth(token.expose())
                    .header(header::ACCEPT, "application/json");
                for (k, v) in &self.extra {
                    rb = rb.header(*k, *v);
                }
                if let Some(p) = prefer {
                    rb = rb.header("Prefer", p);
                }
                if let Some(b) = &body {
                    rb = rb.header(header::CONTENT_TYPE, content_type.unwrap_or("application/json")).body(b.clone());
                }
                rb
            })
            .await
            .map_err(|e| ODataError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            tracing::debug!(method = %method, url = %shown, status, "odata request");
            if status == 401 && attempt == 0 {
                self.tokens.invalidate();
                continue;
            }
            let headers = resp.headers().clone();
            if !resp.status().is_success() {
                let bytes = http::read_error_body(resp).await;
                return Err(odata_error(status, &bytes, token.expose()));
            }
            let bytes =
                http::read_body(resp, BODY_CAP, &shown).await.map_err(|e| ODataError::Transport(e.to_string()))?;
            return Ok((status, headers, bytes));
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Every row of a collection: the first page from `path?query`, then `@odata.nextLink`.
    pub async fn get_all(&self, path: &str, query: &str) -> Result<Vec<Value>, ODataError> {
        let prefer = format!("odata.maxpagesize={}", self.page_size);
        let url = self.url(path, Some(query).filter(|q| !q.is_empty()));
        Ok(self.get_collection(url, &prefer, None).await?.0)
    }

    /// [`Self::get_all`] with `Prefer: odata.track-changes` when `track`: the rows, and the
    /// `@odata.deltaLink` the last page gave (on a table with change tracking).
    pub async fn get_all_tracked(
        &self,
        path: &str,
        query: &str,
        track: bool,
    ) -> Result<(Vec<Value>, Option<Url>), ODataError> {
        let prefer = if track {
            format!("odata.track-changes,odata.maxpagesize={}", self.page_size)
        } else {
            format!("odata.maxpagesize={}", self.page_size)
        };
        let url = self.url(path, Some(query).filter(|q| !q.is_empty()));
        self.get_collection(url, &prefer, None).await
    }

    /// A link the service gave (a next or delta link, possibly kept since): a URL on the
    /// service root's host, or an error before anything is sent there.
    pub fn own_link(&self, link: &str, shown: &str) -> Result<Url, ODataError> {
        let url = self
            .root
            .join(link)
            .map_err(|e| ODataError::Invalid(format!("{shown} gave a link that is not a URL: {e}")))?;
        if url.origin() != self.root.origin() {
            return Err(ODataError::Invalid(format!(
                "{shown} gave a link to another host ({}); refusing to send the token there",
                display_url(&url)
            )));
        }
        Ok(url)
    }

    /// The rows of a collection from `url` and its `@odata.nextLink` pages (`first`: the first
    /// page, when it was read already, inside a `$batch`), and the `@odata.deltaLink` of the
    /// last page, if any.
    pub async fn get_collection(
        &self,
        mut url: Url,
        prefer: &str,
        first: Option<Value>,
    ) -> Result<(Vec<Value>, Option<Url>), ODataError> {
        let mut rows = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut budget = ReadBudget::new(self.limits);
        let mut first = first;
        loop {
            let shown = display_url(&url);
            let page: Value = match first.take() {
                Some(page) => page,
                None => {
                    let (_, _, bytes) = self.send(Method::GET, url.clone(), None, None, Some(prefer)).await?;
                    serde_json::from_slice(&bytes).map_err(|e| {
                        ODataError::Invalid(format!("GET {shown} answered with a body that is not JSON: {e}"))
                    })?
                }
            };
            match page.get("value") {
                Some(Value::Array(items)) => {
                    rows.extend(items.iter().cloned());
                    budget
                        .page(items.len())
                        .map_err(|b| ODataError::Invalid(format!("reading {shown} stopped: {b}")))?;
                }
                _ => return Err(ODataError::Invalid(format!("GET {shown} answered without a `value` array"))),
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => {
                    let next = self.own_link(next, &format!("GET {shown}"))?;
                    if !seen.insert(next.to_string()) {
                        return Err(ODataError::Invalid(format!(
                            "GET {shown} gave a next link it gave before; the paging would never end"
                        )));
                    }
                    url = next;
                }
                None => {
                    let delta = match page.get("@odata.deltaLink").and_then(Value::as_str) {
                        Some(link) => Some(self.own_link(link, &format!("GET {shown}"))?),
                        None => None,
                    };
                    return Ok((rows, delta));
                }
            }
        }
    }

    /// Sends `ops` in `$batch` requests of at most `batch_limit` operations; one outcome per op,
    /// in order. A batch that fails as a whole fails each of its operations. An operation the
    /// service throttled inside the batch (429: not carried out) is sent again in a later batch
    /// after the longest `Retry-After` given; the retry policy's limit counts rounds in a row in
    /// which none of them got through.
    pub async fn batch(&self, ops: &[BatchOp]) -> Vec<Result<Reply, ODataError>> {
        let mut out: Vec<Option<Result<Reply, ODataError>>> = vec![None; ops.len()];
        let mut pending: Vec<usize> = (0..ops.len()).collect();
        let mut stalled = 0;
        loop {
            let mut throttled = Vec::new();
            let mut wait: Option<std::time::Duration> = None;
            for chunk in pending.chunks(self.batch_limit.max(1)) {
                for (i, outcome) in chunk.iter().zip(self.send_batch(ops, chunk).await) {
                    match outcome {
                        Ok(part) if part.status == 429 => {
                            wait = wait.max(part.retry_after);
                            throttled.push((*i, part));
                        }
                        Ok(part) => out[*i] = Some(part.into_result()),
                        Err(e) => out[*i] = Some(Err(e)),
                    }
                }
            }
            if throttled.is_empty() {
                break;
            }
            stalled = if throttled.len() < pending.len() { 0 } else { stalled + 1 };
            match self.retry.delay(stalled, wait, http::jitter_unit()) {
                Some(d) => {
                    tracing::debug!(
                        operations = throttled.len(),
                        wait_ms = d.as_millis() as u64,
                        "throttled inside $batch"
                    );
                    tokio::time::sleep(d).await;
                    pending = throttled.into_iter().map(|(i, _)| i).collect();
                }
                None => {
                    for (i, part) in throttled {
                        out[i] = Some(part.into_result());
                    }
                    break;
                }
            }
        }
        out.into_iter().map(|o| o.expect("every operation has an outcome")).collect()
    }

    /// One `$batch` request of the operations `which`: each one's answer part, or the error
    /// that stopped the whole batch.
    async fn send_batch(&self, ops: &[BatchOp], which: &[usize]) -> Vec<Result<batch::Part, ODataError>> {
        let boundary = format!("batch_{}", batch::boundary_token());
        let body = batch::encode(&boundary, which.iter().map(|&i| &ops[i]));
        let url = self.url("$batch", None);
        let ct = format!("multipart/mixed; boundary={boundary}");
        match self.send(Method::POST, url, Some(body), Some(&ct), Some("odata.continue-on-error")).await {
            Ok((_, headers, bytes)) => {
                let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
                match batch::decode(ct, &bytes) {
                    Ok(parts) => {
                        let mut parts = parts.into_iter();
                        which
                            .iter()
                            .map(|_| {
                                parts.next().ok_or_else(|| {
                                    ODataError::Invalid(
                                        "the $batch answer has fewer parts than requests; the operation's outcome is unknown"
                                            .into(),
                                    )
                                })
                            })
                            .collect()
                    }
                    Err(m) => which.iter().map(|_| Err(ODataError::Invalid(m.clone()))).collect(),
                }
            }
            Err(e) => which.iter().map(|_| Err(e.clone())).collect(),
        }
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

/// An OData string literal: single-quoted, with embedded quotes doubled.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// [`literal`] for a key in a resource path (`SystemUsers(UserID='…')`): every character that
/// would end or change the path (`/`, `\`, `?`, `#`, `%`, control characters) is
/// percent-encoded, so a key such as `../x` stays inside its parentheses.
pub fn key_literal(s: &str) -> String {
    let mut out = String::new();
    for c in literal(s).chars() {
        if matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_show_codes_and_inner_messages() {
        let dv = br#"{"error":{"code":"0x80040265","message":"Role not found"}}"#;
        assert_eq!(odata_error(400, dv, "").to_string(), "HTTP 400 Bad Request (code 0x80040265): Role not found");
        let fno = br#"{"error":{"code":"","message":"An error has occurred.","innererror":{"message":"Write not allowed for SecurityUserRoles","type":"x"}}}"#;
        assert_eq!(
            odata_error(405, fno, "").to_string(),
            "HTTP 405 Method Not Allowed: An error has occurred. (Write not allowed for SecurityUserRoles)"
        );
        let echo = br#"{"error":{"code":"x","message":"bad token tok-123"}}"#;
        assert!(!odata_error(401, echo, "tok-123").to_string().contains("tok-123"));
    }

    /// Regression: a F&O key holding `/` or `..` changed which resource a request reached.
    #[test]
    fn key_literals_stay_inside_their_segment() {
        let root: Url = "https://fno.example/data/".parse().unwrap();
        for key in ["../../x", "a/b", "a?b", "a#b", "a%2Fb", "a\\b", "a\nb"] {
            let u = root.join(&format!("SystemUsers(UserID={})", key_literal(key))).unwrap();
            assert_eq!(u.path_segments().unwrap().count(), 2, "{key:?}: {u}");
            assert!(u.path().starts_with("/data/SystemUsers(UserID='"), "{key:?}: {u}");
            assert!(u.query().is_none() && u.fragment().is_none(), "{key:?}: {u}");
        }
        assert_eq!(key_literal("O'Neil"), "'O''Neil'");
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(literal("O'Malley"), "'O''Malley'");
    }

    /// Regression: a service whose every page linked to a new next page was read for ever.
    #[tokio::test]
    async fn a_collection_that_pages_without_end_is_stopped() {
        use axum::extract::Query;
        use axum::http::HeaderMap;
        use std::collections::HashMap;

        let secret =
            format!("s-{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        let entra = keyward_fakes::entra::Entra::new();
        entra.register("client", Some(&secret));
        let pages = Arc::new(AtomicUsize::new(0));
        let p = pages.clone();
        let app = axum::Router::new()
            .route(
                "/api/data/v9.2/systemusers",
                axum::routing::get(move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
                    p.fetch_add(1, Ordering::Relaxed);
                    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
                    let n: u64 = q.get("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
                    async move {
                        axum::Json(serde_json::json!({
                            "value": [{"systemuserid": format!("00000000-0000-0000-0000-{n:012}")}],
                            "@odata.nextLink": format!("http://{host}/api/data/v9.2/systemusers?$skiptoken={}", n + 1),
                        }))
                    }
                }),
            )
            .merge(entra.router());
        let running = keyward_fakes::serve(app);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), &secret).unwrap();
        let http = reqwest::Client::new();
        let credential = crate::model::config::ClientCredential::Secret(crate::model::SecretRef::File("secret".into()));
        let url = running.url();
        let tokens = TokenSource::new(
            http.clone(),
            Some(&url),
            "tenant",
            "client",
            &credential,
            &format!("{url}/.default"),
            dir.path(),
            "d365",
        )
        .unwrap();
        let mut client =
            ODataClient::new(format!("{url}/api/data/v9.2/").parse().unwrap(), http, tokens, 1, 10, vec![]).unwrap();
        client.limits = ReadLimits { max_pages: 20, ..ReadLimits::default() };
        let e = client.get_all("systemusers", "").await.unwrap_err().to_string();
        assert!(e.contains("stopped: the service returned more than 20 pages"), "{e}");
        assert_eq!(pages.load(Ordering::Relaxed), 21);
    }
}
