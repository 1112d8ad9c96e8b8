//! The Graph HTTP client: bearer tokens, paging, JSON batching, throttling and Graph errors.
//!
//! Guarantees:
//! - the token goes only into the `Authorization` header of requests to the configured
//!   endpoint: an `@odata.nextLink` or `@odata.deltaLink` pointing elsewhere is refused,
//!   redirects are not followed;
//!   a `401` drops the cached token and the request is sent once more with a new one;
//! - a `429` (or `503` with `Retry-After`), whether for a whole request or for one request
//!   inside a `$batch`, pauses every request of this client until the time asked has passed and
//!   halves the number of requests in flight; successes raise it again one step at a time
//!   (additive increase, multiplicative decrease), so a throttled run slows down instead of
//!   failing; retries are bounded;
//! - paging follows `@odata.nextLink` whole (reference sheet §2.9);
//! - errors carry the HTTP status, Graph's `error.code` and `message`, and the request id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::provider::bounds::{ReadBudget, ReadLimits};
use crate::remote::entra::TokenSource;
use crate::remote::http::{self, RetryPolicy};
use crate::remote::http::{Dialect, ServiceError};

/// Why a Graph endpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Insecure(#[from] http::UrlError),
    #[error("`{endpoint}` is not a usable endpoint: {reason}")]
    NotUsable { endpoint: String, reason: String },
}

mod delta;

/// The largest successful body read (a page of 999 users, or a batch of 20 such pages).
const BODY_CAP: usize = 256 * 1024 * 1024;
/// Requests in one `$batch` (§2.10).
pub const BATCH_LIMIT: usize = 20;
/// Retries of one request that is throttled or temporarily unavailable.
const MAX_THROTTLE_RETRIES: u32 = 12;
/// Retries of one request inside batches: each batch round waits for the pause the service
/// asked for, so a long queue under a steady throttle needs more rounds.
const MAX_BATCHED_RETRIES: u32 = 40;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Concurrency bounds of the adaptive limiter.
const MIN_IN_FLIGHT: usize = 1;
const START_IN_FLIGHT: usize = 4;
const MAX_IN_FLIGHT: usize = 8;

/// Why a Graph request failed (the providers' one [`ServiceError`], in Graph's words).
pub type GraphError = ServiceError;

/// From an error body `{"error": {"code", "message", "innerError": {"request-id"}}}`.
pub fn graph_error(status: u16, body: Option<&Value>, header_request_id: Option<String>) -> GraphError {
    let e = body.and_then(|b| b.get("error"));
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let inner = e.and_then(|e| e.get("innerError").or_else(|| e.get("innererror")));
    ServiceError::Status {
        dialect: Dialect::Graph,
        status,
        code: s(e.and_then(|e| e.get("code"))),
        message: s(e.and_then(|e| e.get("message"))).map(|m| m.chars().take(500).collect()),
        request_id: s(inner.and_then(|i| i.get("request-id"))).or(header_request_id),
    }
}

/// One request of a batch, or on its own.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// Relative to the version root, starting with `/` (for example `/users/{id}`).
    pub url: String,
    pub body: Option<Value>,
}

impl Call {
    pub fn new(method: Method, url: impl Into<String>, body: Option<Value>) -> Call {
        Call { method, url: url.into(), body }
    }
}

/// The outcome of a call: status and body.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    pub body: Option<Value>,
}

/// Additive-increase, multiplicative-decrease limit on requests in flight, with a shared pause
/// after a throttling answer.
#[derive(Debug)]
struct Limiter {
    state: Mutex<LimitState>,
    notify: tokio::sync::Notify,
}

#[derive(Debug)]
struct LimitState {
    limit: usize,
    active: usize,
    successes: usize,
    resume_at: Option<Instant>,
}

impl Limiter {
    fn new() -> Limiter {
        Limiter {
            state: Mutex::new(LimitState { limit: START_IN_FLIGHT, active: 0, successes: 0, resume_at: None }),
            notify: tokio::sync::Notify::new(),
        }
    }

    async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().expect("limiter");
                let now = Instant::now();
                match s.resume_at {
                    Some(t) if t > now => Some(t - now),
                    _ if s.active < s.limit => {
                        s.active += 1;
                        return;
                    }
                    _ => None,
                }
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                // A release between the check above and this wait would be missed: wait at
                // most a moment before looking again.
                None => {
                    let _ = tokio::time::timeout(Duration::from_millis(20), self.notify.notified()).await;
                }
            }
        }
    }

    fn release(&self) {
        self.state.lock().expect("limiter").active -= 1;
        self.notify.notify_waiters();
    }

    fn succeeded(&self) {
        let mut s = self.state.lock().expect("limiter");
        s.successes += 1;
        if s.successes >= s.limit && s.limit < MAX_IN_FLIGHT {
            s.limit += 1;
            s.successes = 0;
        }
        drop(s);
        self.notify.notify_waiters();
    }

    /// A throttling answer: pause everyone for `wait`, halve the limit.
    fn throttled(&self, wait: Duration) {
        let mut s = self.state.lock().expect("limiter");
        let until = Instant::now() + wait;
        if s.resume_at.is_none_or(|t| t < until) {
            s.resume_at = Some(until);
        }
        s.limit = (s.limit / 2).max(MIN_IN_FLIGHT);
        s.successes = 0;
    }

    fn limit(&self) -> usize {
        self.state.lock().expect("limiter").limit
    }
}

/// A client for one Graph endpoint.
pub struct GraphClient {
    /// `{endpoint}/v1.0`.
    root: Url,
    http: reqwest::Client,
    tokens: TokenSource,
    retry: RetryPolicy,
    limiter: Limiter,
    /// HTTP requests sent (each `$batch` counts once).
    requests: AtomicUsize,
    /// Throttling answers received (whole requests and requests inside batches).
    throttled: AtomicUsize,
    /// Bounds on reading one collection.
    limits: ReadLimits,
}

impl GraphClient {
    /// The same client, retrying as `retry` says (at most four retries: Graph's own
    /// guidance for throttled requests).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = RetryPolicy { max_retries: retry.max_retries.min(4), ..retry };
        self
    }

    pub fn new(endpoint: &Url, http: reqwest::Client, tokens: TokenSource) -> Result<GraphClient, EndpointError> {
        http::check_url(endpoint)?;
        let root = format!("{}/v1.0", endpoint.as_str().trim_end_matches('/'))
            .parse::<Url>()
            .map_err(|e| EndpointError::NotUsable { endpoint: endpoint.to_string(), reason: e.to_string() })?;
        Ok(GraphClient {
            root,
            http,
            tokens,
            retry: RetryPolicy { max_retries: 4, ..RetryPolicy::default() },
            limiter: Limiter::new(),
            requests: AtomicUsize::new(0),
            throttled: AtomicUsize::new(0),
            limits: ReadLimits::default(),
        })
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn throttled(&self) -> usize {
        self.throttled.load(Ordering::Relaxed)
    }

    pub fn concurrency(&self) -> usize {
        self.limiter.limit()
    }

    /// `https://graph.microsoft.com/v1.0/directoryObjects/{id}`, for `@odata.id` and binds.
    pub fn object_ref(&self, id: &str) -> String {
        format!("{}/directoryObjects/{id}", self.root)
    }

    fn absolute(&self, relative: &str) -> Result<Url, GraphError> {
        format!("{}{relative}", self.root).parse().map_err(|e| GraphError::Invalid(format!("bad request URL: {e}")))
    }

    /// A next link must stay on the configured endpoint: the bearer token goes with it.
    fn check_next(&self, next: &str) -> Result<Url, GraphError> {
        let url: Url = next.parse().map_err(|e| GraphError::Invalid(format!("@odata.nextLink is not a URL: {e}")))?;
        if url.origin() != self.root.origin() || !url.path().starts_with(self.root.path()) {
            return Err(GraphError::Invalid(format!(
                "@odata.nextLink points outside {}; refusing to send the token there",
                self.root
            )));
        }
        Ok(url)
    }

    /// Sends one request: the limiter, the token (renewed once after a 401), retries of
    /// throttling and temporary failures. Returns the status and the JSON body, if any.
    async fn send_raw(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Outcome, GraphError> {
        let mut renewed = false;
        let mut attempt = 0u32;
        loop {
            self.limiter.acquire().await;
            let result = self.send_once(&method, &url, body).await;
            self.limiter.release();
            let (status, after, body) = result?;
            if status == 401 && !renewed {
                renewed = true;
                self.tokens.invalidate();
                continue;
            }
            if status == 429 || (http::is_retryable(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))) {
                let wait = match after {
                    Some(d) if status == 429 || d > Duration::ZERO => {
                        if d > MAX_RETRY_AFTER {
                            None
                        } else {
                            Some(d + Duration::from_secs_f64((d.as_secs_f64() * 0.05).min(0.5) * http::jitter_unit()))
                        }
                    }
                    _ => self.retry.delay(attempt, None, http::jitter_unit()),
                };
                if status == 429 {
                    self.throttled.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(w) = wait.filter(|_| attempt < MAX_THROTTLE_RETRIES) {
                    if status == 429 || after.is_some() {
                        self.limiter.throttled(w);
                    }
                    tracing::debug!(status, wait_ms = w.as_millis() as u64, attempt, "Graph asked to wait; retrying");
                    tokio::time::sleep(w).await;
                    attempt += 1;
                    continue;
                }
            }
            if status < 400 {
                self.limiter.succeeded();
            }
            return Ok(Outcome { status, body });
        }
    }

    /// One attempt: status, `Retry-After`, and the JSON body.
    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<(u16, Option<Duration>, Option<Value>), GraphError> {
        let token = self.tokens.bearer().await.map_err(|e| GraphError::Transport(e.to_string()))?;
        let mut rb = self
            .http
            .request(method.clone(), url.clone())
            .header(reqwest::header::AUTHORIZATION, format!("Bearer {}", token.expose()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let shown = display_url(url);
        let resp = rb
            .send()
            .await
            .map_err(|e| GraphError::Transport(format!("cannot reach {shown}: {}", http::error_chain(&e))))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| http::parse_retry_after(v, SystemTime::now()));
        let request_id = resp.headers().get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        if status >= 400 {
            let bytes = http::read_error_body(resp).await;
            let v: Option<Value> = serde_json::from_slice(&bytes).ok();
            let mut v = v.unwrap_or(Value::Null);
            // The body is the service's text: it may echo the request, token included.
            for field in ["/error/message", "/error/code"] {
                if let Some(Value::String(text)) = v.pointer_mut(field) {
                    *text = crate::remote::redact::redact(text, token.expose());
                }
            }
            if !v.is_null()
                && v.pointer("/error/innerError/request-id").is_none()
                && let Some(r) = request_id
                && let Some(e) = v.get_mut("error").and_then(Value::as_object_mut)
            {
                e.insert("innerError".into(), json!({"request-id": r}));
            }
            return Ok((status, retry_after, Some(v).filter(|v| !v.is_null())));
        }
        let bytes = http::read_body(resp, BODY_CAP, &shown).await.map_err(|e| GraphError::Transport(e.to_string()))?;
        let v = if bytes.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| GraphError::Invalid(format!("{shown} answered with invalid JSON: {e}")))?,
            )
        };
        Ok((status, retry_after, v))
    }

    /// One request; a status of 400 or more becomes a [`GraphError::Status`].
    pub async fn call(&self, call: &Call) -> Result<Outcome, GraphError> {
        let url = self.absolute(&call.url)?;
        let o = self.send_raw(call.method.clone(), url, call.body.as_ref()).await?;
        if o.status >= 400 {
            return Err(graph_error(o.status, o.body.as_ref(), None));
        }
        Ok(o)
    }

    /// Every item of a collection, following `@odata.nextLink` whole.
    pub async fn get_all(&self, relative: &str) -> Result<Vec<Value>, GraphError> {
        let first = self.absolute(relative)?;
        self.follow(first, Vec::new()).await
    }

    /// The items of at most `max_pages` pages of a collection (for logs, which can be long).
    pub async fn get_pages(&self, relative: &str, max_pages: usize) -> Result<Vec<Value>, GraphError> {
        let mut next = self.absolute(relative)?;
        let mut items = Vec::new();
        for _ in 0..max_pages {
            let o = self.send_raw(Method::GET, next.clone(), None).await?;
            if o.status >= 400 {
                return Err(graph_error(o.status, o.body.as_ref(), None));
            }
            let body = o.body.unwrap_or(Value::Null);
            items.extend(body.get("value").and_then(Value::as_array).into_iter().flatten().cloned());
            match body.get("@odata.nextLink").and_then(Value::as_str) {
                Some(n) => next = self.check_next(n)?,
                None => break,
            }
        }
        Ok(items)
    }

    /// Continues a collection from `next`, appending to `items`, within [`ReadLimits`]: a
    /// next link given before (the paging would loop) or a read past the limits is an error.
    pub async fn follow(&self, next: Url, mut items: Vec<Value>) -> Result<Vec<Value>, GraphError> {
        let mut pages = Pages::new(next, self.limits);
        loop {
            let body = self.next_page(&mut pages, &mut items).await?;
            match body.get("@odata.nextLink").and_then(Value::as_str) {
                Some(n) => pages.advance(self.check_next(n)?)?,
                None => return Ok(items),
            }
        }
    }

    /// Reads the page `pages` stands at, appends its `value` to `items`, counts it against the
    /// read's limits, and returns the whole body (for its links).
    async fn next_page(&self, pages: &mut Pages, items: &mut Vec<Value>) -> Result<Value, GraphError> {
        let o = self.send_raw(Method::GET, pages.next.clone(), None).await?;
        if o.status >= 400 {
            return Err(graph_error(o.status, o.body.as_ref(), None));
        }
        let body = o.body.unwrap_or(Value::Null);
        let Some(values) = body.get("value").and_then(Value::as_array) else {
            return Err(GraphError::Invalid(format!("{} answered without a value array", display_url(&pages.next))));
        };
        items.extend(values.iter().cloned());
        pages
            .budget
            .page(values.len())
            .map_err(|b| GraphError::Invalid(format!("reading {} stopped: {b}", display_url(&pages.next))))?;
        Ok(body)
    }

    /// One round of a delta query (§2.1 Delta): from `start` (a path relative to the version
    /// root, or a delta link from an earlier round), following `@odata.nextLink` to the page that
    /// carries `@odata.deltaLink`. Returns the objects and that link. Both links must stay on the
    /// configured endpoint.
    pub async fn delta_round(&self, start: &str) -> Result<(Vec<Value>, String), GraphError> {
        let first = if start.starts_with('/') { self.absolute(start)? } else { self.check_next(start)? };
        let mut pages = Pages::new(first, self.limits);
        let mut items = Vec::new();
        loop {
            let body = self.next_page(&mut pages, &mut items).await?;
            if let Some(n) = body.get("@odata.nextLink").and_then(Value::as_str) {
                pages.advance(self.check_next(n)?)?;
                continue;
            }
            let Some(delta) = body.get("@odata.deltaLink").and_then(Value::as_str) else {
                return Err(GraphError::Invalid(format!(
                    "{} ended a delta round without @odata.deltaLink",
                    display_url(&pages.next)
                )));
            };
            self.check_next(delta)?;
            return Ok((items, delta.to_string()));
        }
    }

    /// Resolves a relative next link (from a batch response) for [`GraphClient::follow`].
    pub fn next_link(&self, link: &str) -> Result<Url, GraphError> {
        self.check_next(link)
    }

    /// Runs calls as `$batch` requests of up to 20, several batches at once (within the
    /// limiter). Each call is retried on its own when throttled (`429`, honouring its
    /// `Retry-After`), temporarily unavailable (`502/503/504`) or failed by a dependency that
    /// was; `retry_404` says which calls may meet a `404` because the object they name was
    /// just created (§2.1 replication delay), retried with bounded backoff. Returns one
    /// outcome per call, in order.
    pub async fn batch(&self, calls: &[Call], retry_404: impl Fn(usize) -> bool) -> Vec<Result<Outcome, GraphError>> {
        let mut results: Vec<Option<Result<Outcome, GraphError>>> = vec![None; calls.len()];
        let mut pending: Vec<usize> = (0..calls.len()).collect();
        // Per call: throttled or unavailable answers, and 404s, so far.
        let mut transient_tries = vec![0u32; calls.len()];
        let mut late_tries = vec![0u32; calls.len()];
        while !pending.is_empty() {
            let chunks: Vec<Vec<usize>> = pending.chunks(BATCH_LIMIT).map(<[usize]>::to_vec).collect();
            let answers = futures_util::future::join_all(chunks.iter().map(|c| self.send_batch(calls, c))).await;
            let mut again = Vec::new();
            let mut wait_404: Option<u32> = None;
            for (chunk, answer) in chunks.iter().zip(answers) {
                match answer {
                    Err(e) => {
                        for &i in chunk {
                            results[i] = Some(Err(e.clone()));
                        }
                    }
                    Ok(outcomes) => {
                        for (&i, o) in chunk.iter().zip(outcomes) {
                            let transient =
                                matches!(o.status, 429 | 502 | 503 | 504) && transient_tries[i] < MAX_BATCHED_RETRIES;
                            let late = o.status == 404 && retry_404(i) && late_tries[i] < 5;
                            if transient || late {
                                if transient {
                                    transient_tries[i] += 1;
                                } else {
                                    wait_404 = Some(wait_404.unwrap_or(0).max(late_tries[i]));
                                    late_tries[i] += 1;
                                }
                                again.push(i);
                                results[i] = Some(Ok(o));
                            } else if o.status >= 400 {
                                results[i] = Some(Err(graph_error(o.status, o.body.as_ref(), None)));
                            } else {
                                results[i] = Some(Ok(o));
                            }
                        }
                    }
                }
            }
            if let Some(n) = wait_404 {
                // Replication delay: back off 0.25, 0.5, 1, 2, 4 s.
                let d = Duration::from_millis(250 << n.min(4));
                tracing::debug!(
                    calls = again.len(),
                    wait_ms = d.as_millis() as u64,
                    "objects not yet replicated; retrying"
                );
                tokio::time::sleep(d).await;
            }
            // Throttled calls wait in the limiter, which the batch answer paused.
            again.sort_unstable();
            pending = again;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(GraphError::Invalid("no outcome was recorded".into()))))
            .map(|r| match r {
                Ok(o) if o.status >= 400 => Err(graph_error(o.status, o.body.as_ref(), None)),
                other => other,
            })
            .collect()
    }

    /// One `$batch` of the calls at `indexes`; answers matched back by id.
    async fn send_batch(&self, calls: &[Call], indexes: &[usize]) -> Result<Vec<Outcome>, GraphError> {
        let requests: Vec<Value> = indexes
            .iter()
            .map(|&i| {
                let c = &calls[i];
                let mut r = json!({"id": i.to_string(), "method": c.method.as_str(), "url": c.url});
                if let Some(b) = &c.body {
                    r["body"] = b.clone();
                    r["headers"] = json!({"Content-Type": "application/json"});
                }
                r
            })
            .collect();
        let url = self.absolute("/$batch")?;
        let o = self.send_raw(Method::POST, url, Some(&json!({"requests": requests}))).await?;
        if o.status >= 400 {
            return Err(graph_error(o.status, o.body.as_ref(), None));
        }
        let body = o.body.unwrap_or(Value::Null);
        let mut by_id: HashMap<String, Outcome> = HashMap::new();
        let mut max_wait: Option<Duration> = None;
        for r in body.get("responses").and_then(Value::as_array).into_iter().flatten() {
            let Some(id) = r.get("id").and_then(Value::as_str) else { continue };
            let status = r.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
            if status == 429 {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                let after = inner_retry_after(r).unwrap_or(Duration::from_secs(1));
                max_wait = Some(max_wait.map_or(after, |m| m.max(after)));
            }
            by_id.insert(id.to_string(), Outcome { status, body: r.get("body").cloned() });
        }
        if let Some(w) = max_wait {
            let w = w.min(MAX_RETRY_AFTER);
            self.limiter
                .throttled(w + Duration::from_secs_f64((w.as_secs_f64() * 0.05).min(0.5) * http::jitter_unit()));
        } else {
            self.limiter.succeeded();
        }
        Ok(indexes
            .iter()
            .map(|i| {
                by_id.remove(&i.to_string()).unwrap_or(Outcome {
                    status: 502,
                    body: Some(json!({"error": {"code": "missingBatchResponse", "message": "the batch answer has no response for this request"}})),
                })
            })
            .collect())
    }
}

/// The `Retry-After` of a response inside a batch (its `headers` object).
fn inner_retry_after(r: &Value) -> Option<Duration> {
    r.get("headers")
        .and_then(Value::as_object)
        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("retry-after")))
        .and_then(|(_, v)| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())))
        .and_then(|v| http::parse_retry_after(&v, SystemTime::now()))
}

/// The URL without its query, for messages.
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Where a paged read stands: the page to read next, the links read so far (a link given twice
/// would loop), and the read's budget.
struct Pages {
    next: Url,
    seen: std::collections::HashSet<String>,
    budget: ReadBudget,
}

impl Pages {
    fn new(first: Url, limits: ReadLimits) -> Self {
        Pages {
            seen: std::collections::HashSet::from([first.to_string()]),
            next: first,
            budget: ReadBudget::new(limits),
        }
    }

    /// Moves to `url`, refusing a link given before: the paging would never end.
    fn advance(&mut self, url: Url) -> Result<(), GraphError> {
        if !self.seen.insert(url.to_string()) {
            return Err(GraphError::Invalid(format!(
                "{} gave a @odata.nextLink it gave before; the paging would never end",
                display_url(&self.next)
            )));
        }
        self.next = url;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_show_code_message_and_request_id() {
        let body = json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation.",
            "innerError": {"date": "2026-01-01T00:00:00", "request-id": "r-1", "client-request-id": "r-1"}}});
        let e = graph_error(403, Some(&body), None).to_string();
        assert_eq!(
            e,
            "HTTP 403 Forbidden: Authorization_RequestDenied: Insufficient privileges to complete the operation. (request id r-1)"
        );
        let e = graph_error(503, None, Some("r-2".into())).to_string();
        assert_eq!(e, "HTTP 503 Service Unavailable (request id r-2)");
    }

    #[test]
    fn an_endpoint_in_plain_http_to_another_host_is_refused() {
        use crate::model::SecretRef;
        use crate::model::config::ClientCredential;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "test-value").unwrap();
        let http = http::client(None, Duration::from_secs(5)).unwrap();
        let cred = ClientCredential::Secret(SecretRef::File("s".into()));
        let scope = "https://graph.example/.default";
        let tokens = TokenSource::new(http.clone(), None, "t.example", "c", &cred, scope, dir.path(), "g").unwrap();
        let endpoint: Url = "http://graph.example/".parse().unwrap();
        let e = GraphClient::new(&endpoint, http, tokens).err().unwrap();
        assert!(matches!(e, EndpointError::Insecure(http::UrlError::PlainHttp(_))), "{e:?}");
        assert_eq!(
            e.to_string(),
            "`http://graph.example/` is plain http to a host other than loopback; endpoints other than loopback must use https"
        );
        let e = EndpointError::NotUsable { endpoint: "https://x/".into(), reason: "why".into() };
        assert_eq!(e.to_string(), "`https://x/` is not a usable endpoint: why");
    }

    #[tokio::test]
    async fn the_limiter_halves_on_throttling_and_grows_back() {
        let l = Limiter::new();
        assert_eq!(l.limit(), START_IN_FLIGHT);
        l.throttled(Duration::from_millis(1));
        assert_eq!(l.limit(), START_IN_FLIGHT / 2);
        l.throttled(Duration::from_millis(1));
        l.throttled(Duration::from_millis(1));
        assert_eq!(l.limit(), MIN_IN_FLIGHT);
        for _ in 0..20 {
            l.succeeded();
        }
        assert!(l.limit() > MIN_IN_FLIGHT);
        for _ in 0..200 {
            l.succeeded();
        }
        assert_eq!(l.limit(), MAX_IN_FLIGHT);
    }
}
