//! The `azureblob` state backend: a container (and a folder in it) in Azure Blob Storage, over
//! the REST API with keyward's own HTTP client (rustls; https, or http on loopback only).
//!
//! | state | blob | operations |
//! |---|---|---|
//! | audit log | `PREFIX/audit.jsonl`, an append blob | Put Blob (`If-None-Match: *`) to create; Append Block with `x-ms-blob-condition-appendpos`; Get Blob with `x-ms-range` |
//! | lock | `PREFIX/lock`, an empty block blob | Lease Blob: acquire with a proposed lease id (the lock id) and a fixed duration of 15 to 60 s, renew, release, break (period 0); the holder in the blob's metadata |
//! | documents | `PREFIX/applied.json`, … block blobs | Get Blob; Put Blob with `If-Match` / `If-None-Match: *` |
//!
//! Authentication, one of: Shared Key (the account key signs each request, see [`sign`]), a
//! shared access signature appended to each request, or Entra ID bearer tokens (scope
//! `https://storage.azure.com/.default`, fetched as targets fetch theirs). Requests carry
//! `x-ms-version` [`API_VERSION`] (bearer tokens need 2017-11-09 or later).
//!
//! Errors carry the service's error code (`x-ms-error-code`) and request id, and the first line
//! of its message; never a key, a SAS (URLs in messages are shown without their query, and any
//! `sig=` value is masked) or a token.

pub mod sign;
mod url;

pub use self::url::{ContainerUrl, LocationError, mask_signatures, normalize_prefix};

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use reqwest::header::{CONTENT_TYPE, ETAG, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Request, RequestBuilder, Response, Url};

use super::{Doc, DocName, Expect, LockHolder, LockId, LockStatus, StateError, StateStore, TryLock, Version};
use crate::model::config::{AzureBlobState, BlobAuth};
use crate::model::{Secret, Timestamp};
use crate::remote::entra::TokenSource;
use crate::remote::http::{self, HttpError, RetryPolicy};

/// The REST API version sent with every request.
pub const API_VERSION: &str = "2024-11-04";

/// The scope of Entra ID tokens for Blob Storage.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// The audit log's blob name, below the prefix.
pub const LOG_BLOB: &str = "audit.jsonl";

/// The lock's blob name, below the prefix.
pub const LOCK_BLOB: &str = "lock";

/// The largest document read.
const DOC_CAP: usize = 16 * 1024 * 1024;

/// How often a read whose answer was lost is sent again.
const READ_RETRIES: u32 = 6;

/// How the backend talks to the service.
#[derive(Debug, Clone)]
pub struct Options {
    /// The per-request timeout (`KEYWARD_HTTP_TIMEOUT` overrides it).
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options { timeout: Duration::from_secs(30), retry: RetryPolicy::default() }
    }
}

enum Auth {
    SharedKey(sign::SharedKey),
    /// The token's query string, without a leading `?`.
    Sas(Secret<String>),
    Bearer(TokenSource),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::SharedKey(_) => "shared key",
            Auth::Sas(_) => "shared access signature",
            Auth::Bearer(_) => "Entra ID",
        })
    }
}

/// The state in an Azure Blob Storage container.
#[derive(Debug)]
pub struct AzureBlobStore {
    http: Client,
    url: ContainerUrl,
    prefix: String,
    auth: Auth,
    retry: RetryPolicy,
}

/// The characters metadata values keep as they are; the rest is percent-encoded (values are
/// HTTP header values: ASCII only).
const META: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':').remove(b'@').remove(b'+');

impl AzureBlobStore {
    /// Resolves the secrets `settings` name (relative `${file:}` paths against `root`) and sets
    /// up the client. Nothing is sent yet.
    pub fn new(settings: &AzureBlobState, root: &Path, options: Options) -> Result<AzureBlobStore, StateError> {
        let url = ContainerUrl::parse(&settings.url).map_err(|e| StateError::Config(e.to_string()))?;
        let prefix = normalize_prefix(&settings.prefix).map_err(|e| StateError::Config(e.to_string()))?;
        let ca = settings.ca_file.as_ref().map(|c| root.join(c));
        let http = http::client(ca.as_deref(), options.timeout).map_err(|e| StateError::Config(e.to_string()))?;
        let auth = match &settings.auth {
            BlobAuth::AccountKey(r) => {
                let key = http::resolve_secret(r, root).map_err(|e| StateError::Config(e.to_string()))?;
                Auth::SharedKey(
                    sign::SharedKey::new(&url.account, &key).map_err(|e| StateError::Config(format!("{r}: {e}")))?,
                )
            }
            BlobAuth::SasToken(r) => {
                let sas = http::resolve_secret(r, root).map_err(|e| StateError::Config(e.to_string()))?;
                let t = sas.expose().trim().trim_start_matches('?');
                if !t.split('&').any(|p| p.starts_with("sig=")) || t.contains(['#', ' ', '\n']) {
                    return Err(StateError::Config(format!(
                        "{r} is not a shared access signature (a query string with sig=…)"
                    )));
                }
                Auth::Sas(Secret::new(t.to_string()))
            }
            BlobAuth::Entra { tenant, client_id, credential, authority } => Auth::Bearer(
                TokenSource::new(
                    http.clone(),
                    authority.as_deref(),
                    tenant,
                    client_id,
                    credential,
                    STORAGE_SCOPE,
                    root,
                    "state",
                )
                .map_err(|e| StateError::Config(e.to_string()))?,
            ),
        };
        Ok(AzureBlobStore { http, url, prefix, auth, retry: options.retry })
    }

    fn base_location(&self) -> String {
        format!("azureblob {}/{}", self.url.base, self.prefix)
    }

    fn blob_location(&self, blob: &str) -> String {
        format!("azureblob {}/{}{blob}", self.url.base, self.prefix)
    }

    /// The URL of `blob` (below the prefix; `None` for the container itself) with `query`, and
    /// the SAS when that is how this store authenticates.
    fn url_for(&self, blob: Option<&str>, query: &[(&str, &str)]) -> Url {
        let mut url = self.url.base.clone();
        if let Some(b) = blob {
            url.set_path(&format!("{}/{}{b}", self.url.base.path(), self.prefix));
        }
        let mut q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if let Auth::Sas(sas) = &self.auth {
            q.push(sas.expose().clone());
        }
        if !q.is_empty() {
            url.set_query(Some(&q.join("&")));
        }
        url
    }

    /// Sends one operation (with the transport's retries, each attempt dated and signed anew),
    /// and returns the answer, whatever its status. `blob` names the blob in errors. Reads
    /// (GET, HEAD) are also tried again when their answer was lost or was a server error: they
    /// change nothing. Writes are not: their callers decide, knowing what they wrote.
    async fn send(
        &self,
        operation: &'static str,
        blob: Option<&str>,
        method: Method,
        query: &[(&str, &str)],
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Response, StateError> {
        let read = method == Method::GET || method == Method::HEAD;
        let mut attempt = 0u32;
        loop {
            let result = self.send_once(operation, blob, method.clone(), query, headers.clone(), body.clone()).await;
            let unknown = match &result {
                Ok(resp) => matches!(resp.status().as_u16(), 500 | 502 | 503 | 504),
                Err(e) => e.is_outcome_unknown(),
            };
            if !(read && unknown) || attempt >= READ_RETRIES {
                return result;
            }
            attempt += 1;
            super::backoff(attempt).await;
        }
    }

    async fn send_once(
        &self,
        operation: &'static str,
        blob: Option<&str>,
        method: Method,
        query: &[(&str, &str)],
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Response, StateError> {
        let location = blob.map(|b| self.blob_location(b)).unwrap_or_else(|| self.base_location());
        let mut builder = self.http.request(method, self.url_for(blob, query)).headers(headers);
        builder = builder.header("x-ms-version", API_VERSION);
        if let Some(b) = body {
            // Sent even when zero: the service asks a PUT for its length, and the HTTP client
            // leaves the header out of an empty body.
            builder = builder.header(reqwest::header::CONTENT_LENGTH, b.len()).body(b);
        }
        let template =
            builder.build().map_err(|e| StateError::Config(format!("{location}: cannot build the request: {e}")))?;
        let mut token_renewed = false;
        loop {
            let bearer = match &self.auth {
                Auth::Bearer(ts) => Some(
                    ts.bearer()
                        .await
                        .map_err(|e| StateError::Auth { location: location.clone(), message: e.to_string() })?,
                ),
                _ => None,
            };
            let make = || {
                let mut req = template.try_clone().expect("request bodies are bytes");
                self.authorize(&mut req, bearer.as_ref());
                RequestBuilder::from_parts(self.http.clone(), req)
            };
            let resp = http::send_with_retry(&self.retry, &location, make)
                .await
                .map_err(|e| transport_error(&location, operation, e))?;
            // A token refused once (revoked, or expired early): fetch a new one and resend.
            if resp.status() == 401
                && !token_renewed
                && let Auth::Bearer(ts) = &self.auth
            {
                ts.invalidate();
                token_renewed = true;
                continue;
            }
            return Ok(resp);
        }
    }

    fn authorize(&self, req: &mut Request, bearer: Option<&Secret<String>>) {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        req.headers_mut().insert("x-ms-date", HeaderValue::from_str(&date).expect("a date is a header value"));
        match &self.auth {
            Auth::SharedKey(k) => k.sign(req),
            Auth::Sas(_) => {}
            Auth::Bearer(_) => {
                if let Some(t) = bearer
                    && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
                {
                    v.set_sensitive(true);
                    req.headers_mut().insert(reqwest::header::AUTHORIZATION, v);
                }
            }
        }
    }

    /// The error for an answer that is not one of the expected statuses.
    async fn refused(&self, blob: Option<&str>, operation: &'static str, resp: Response) -> StateError {
        let location = blob.map(|b| self.blob_location(b)).unwrap_or_else(|| self.base_location());
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut code = header("x-ms-error-code");
        let request_id = header("x-ms-request-id");
        let body = http::read_error_body(resp).await;
        let text = String::from_utf8_lossy(&body);
        if code.is_none() {
            code = xml_element(&text, "Code");
        }
        let message = xml_element(&text, "Message")
            .and_then(|m| m.lines().next().map(|l| l.trim().chars().take(300).collect::<String>()))
            .filter(|m| !m.is_empty())
            .map(|m| mask_signatures(&m));
        StateError::Service { location, operation, status, code, request_id, message }
    }

    /// Creates the container if it does not exist (the state's container is usually made with
    /// the storage account; this is for tests and first set-ups).
    pub async fn create_container(&self) -> Result<(), StateError> {
        let resp = self
            .send(
                "create the container",
                None,
                Method::PUT,
                &[("restype", "container")],
                HeaderMap::new(),
                Some(vec![]),
            )
            .await?;
        match resp.status().as_u16() {
            201 => Ok(()),
            409 if error_code(&resp).as_deref() == Some("ContainerAlreadyExists") => Ok(()),
            _ => Err(self.refused(None, "create the container", resp).await),
        }
    }

    async fn create_blob(&self, blob: &str, kind: &str, operation: &'static str) -> Result<(), StateError> {
        let mut h = HeaderMap::new();
        h.insert("x-ms-blob-type", HeaderValue::from_str(kind).expect("a blob type is a header value"));
        h.insert("if-none-match", HeaderValue::from_static("*"));
        let resp = self.send(operation, Some(blob), Method::PUT, &[], h, Some(vec![])).await?;
        match resp.status().as_u16() {
            201 => Ok(()),
            409 if error_code(&resp).as_deref() == Some("BlobAlreadyExists") => Ok(()),
            // Precondition failed: it exists.
            412 => Ok(()),
            _ => Err(self.refused(Some(blob), operation, resp).await),
        }
    }

    async fn lease(
        &self,
        operation: &'static str,
        action: &'static str,
        extra: &[(&'static str, String)],
    ) -> Result<Response, StateError> {
        let mut h = HeaderMap::new();
        h.insert("x-ms-lease-action", HeaderValue::from_static(action));
        for (k, v) in extra {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).map_err(|_| StateError::Config(format!("{k}: not a header value")))?,
            );
        }
        self.send(operation, Some(LOCK_BLOB), Method::PUT, &[("comp", "lease")], h, Some(vec![])).await
    }

    /// The lock blob's lease state and holder (from its metadata), and its ETag.
    async fn lock_properties(&self) -> Result<Option<(String, Option<LockHolder>, Option<String>)>, StateError> {
        let op = "read the lock";
        let resp = self.send(op, Some(LOCK_BLOB), Method::HEAD, &[], HeaderMap::new(), None).await?;
        match resp.status().as_u16() {
            200 => {
                let h = resp.headers();
                let state = h.get("x-ms-lease-state").and_then(|v| v.to_str().ok()).unwrap_or("available").to_string();
                let etag = h.get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
                Ok(Some((state, holder_from_metadata(h), etag)))
            }
            404 => Ok(None),
            _ => Err(self.refused(Some(LOCK_BLOB), op, resp).await),
        }
    }

    async fn set_lock_metadata(&self, id: &LockId, holder: Option<&LockHolder>) -> Result<Response, StateError> {
        let mut h = HeaderMap::new();
        h.insert("x-ms-lease-id", HeaderValue::from_str(&id.0).map_err(|_| StateError::Config("bad lock id".into()))?);
        if let Some(holder) = holder {
            for (k, v) in holder_metadata(holder) {
                let name =
                    HeaderName::from_bytes(format!("x-ms-meta-{k}").as_bytes()).expect("metadata names are valid");
                h.insert(name, HeaderValue::from_str(&v).expect("percent-encoded values are ASCII"));
            }
        }
        self.send("describe the lock holder", Some(LOCK_BLOB), Method::PUT, &[("comp", "metadata")], h, Some(vec![]))
            .await
    }
}

fn error_code(resp: &Response) -> Option<String> {
    resp.headers().get("x-ms-error-code").and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The text of the first `<name>` element of an XML error body (entities decoded), if any.
fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    let raw = &text[start..end];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn transport_error(location: &str, operation: &'static str, e: HttpError) -> StateError {
    match e {
        HttpError::NoAnswer { message, .. } => {
            StateError::NoAnswer { location: location.to_string(), operation, message: mask_signatures(&message) }
        }
        HttpError::Transport { message, .. } => {
            StateError::Unreachable { location: location.to_string(), operation, message: mask_signatures(&message) }
        }
        HttpError::TooLarge { cap, .. } => StateError::TooLarge {
            what: location.to_string(),
            message: format!("the answer to `{operation}` is larger than {cap} bytes"),
        },
        HttpError::Config(m) => StateError::Config(mask_signatures(&m)),
    }
}

/// The holder as metadata: `keyward_*` names, percent-encoded values.
fn holder_metadata(h: &LockHolder) -> Vec<(&'static str, String)> {
    let enc = |s: &str| utf8_percent_encode(s, META).to_string();
    let mut m = vec![
        ("keyward_lock_id", enc(&h.id.0)),
        ("keyward_actor", enc(&h.actor)),
        ("keyward_host", enc(&h.host)),
        ("keyward_run", enc(&h.run_id)),
        ("keyward_since", enc(&h.since.to_rfc3339())),
    ];
    if let Some(c) = &h.commit {
        m.push(("keyward_commit", enc(c)));
    }
    if let Some(p) = h.pid {
        m.push(("keyward_pid", p.to_string()));
    }
    m
}

fn holder_from_metadata(headers: &HeaderMap) -> Option<LockHolder> {
    let get = |k: &str| {
        headers
            .get(format!("x-ms-meta-{k}").as_str())
            .and_then(|v| v.to_str().ok())
            .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
    };
    let since: Timestamp = chrono::DateTime::parse_from_rfc3339(&get("keyward_since")?).ok()?.to_utc();
    Some(LockHolder {
        id: LockId(get("keyward_lock_id")?),
        actor: get("keyward_actor").unwrap_or_default(),
        host: get("keyward_host").unwrap_or_default(),
        run_id: get("keyward_run").unwrap_or_default(),
        commit: get("keyward_commit"),
        since,
        pid: get("keyward_pid").and_then(|p| p.parse().ok()),
    })
}

fn header_u64(resp: &Response, name: &str) -> Option<u64> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

#[async_trait]
impl StateStore for AzureBlobStore {
    fn location(&self) -> String {
        self.base_location()
    }

    fn log_location(&self) -> String {
        self.blob_location(LOG_BLOB)
    }

    async fn log_len(&self) -> Result<u64, StateError> {
        let op = "read the audit log's length";
        let resp = self.send(op, Some(LOG_BLOB), Method::HEAD, &[], HeaderMap::new(), None).await?;
        match resp.status().as_u16() {
            // The Content-Length header of a HEAD answer is the blob's length.
            200 => header_u64(&resp, "content-length").ok_or_else(|| StateError::Service {
                location: self.blob_location(LOG_BLOB),
                operation: op,
                status: 200,
                code: None,
                request_id: None,
                message: Some("the answer has no Content-Length".into()),
            }),
            404 => Ok(0),
            _ => Err(self.refused(Some(LOG_BLOB), op, resp).await),
        }
    }

    async fn log_read(&self, from: u64, max: u64) -> Result<Vec<u8>, StateError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let op = "read the audit log";
        let mut h = HeaderMap::new();
        let range = format!("bytes={from}-{}", from + max - 1);
        h.insert("x-ms-range", HeaderValue::from_str(&range).expect("a range is a header value"));
        let resp = self.send(op, Some(LOG_BLOB), Method::GET, &[], h, None).await?;
        let location = self.blob_location(LOG_BLOB);
        match resp.status().as_u16() {
            206 => {
                let cap = usize::try_from(max).unwrap_or(usize::MAX);
                http::read_body(resp, cap, &location).await.map_err(|e| transport_error(&location, op, e))
            }
            // A service that ignored the range sent the whole blob.
            200 => {
                let body = http::read_body(resp, DOC_CAP.max(max as usize), &location)
                    .await
                    .map_err(|e| transport_error(&location, op, e))?;
                let start = usize::try_from(from).unwrap_or(usize::MAX).min(body.len());
                let end = start.saturating_add(usize::try_from(max).unwrap_or(usize::MAX)).min(body.len());
                Ok(body[start..end].to_vec())
            }
            // The range starts at or past the end (or the blob is empty).
            416 => Ok(Vec::new()),
            404 => Ok(Vec::new()),
            _ => Err(self.refused(Some(LOG_BLOB), op, resp).await),
        }
    }

    async fn log_append(&self, at: u64, bytes: &[u8]) -> Result<u64, StateError> {
        if bytes.last() != Some(&b'\n') {
            return Err(StateError::Config("an append must end with a newline".into()));
        }
        let op = "append to the audit log";
        let mut created = false;
        loop {
            let mut h = HeaderMap::new();
            h.insert("x-ms-blob-condition-appendpos", HeaderValue::from(at));
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
            let resp =
                self.send(op, Some(LOG_BLOB), Method::PUT, &[("comp", "appendblock")], h, Some(bytes.to_vec())).await?;
            match (resp.status().as_u16(), error_code(&resp).as_deref()) {
                (201, _) => return Ok(at + bytes.len() as u64),
                (412, Some("AppendPositionConditionNotMet")) => {
                    return Err(StateError::Conflict { what: format!("the audit log at {}", self.location()) });
                }
                (404, Some("BlobNotFound")) if at == 0 && !created => {
                    self.create_blob(LOG_BLOB, "AppendBlob", "create the audit log").await?;
                    created = true;
                }
                (404, Some("BlobNotFound")) => {
                    return Err(StateError::Damaged {
                        what: format!("the audit log at {}", self.location()),
                        line: 0,
                        message: format!("it is gone, although it held {at} bytes when read"),
                    });
                }
                _ => return Err(self.refused(Some(LOG_BLOB), op, resp).await),
            }
        }
    }

    async fn lock_try(&self, holder: &LockHolder, lease: Duration) -> Result<TryLock, StateError> {
        let op = "take the lock";
        let mut created = false;
        loop {
            let resp = self
                .lease(
                    op,
                    "acquire",
                    &[
                        ("x-ms-lease-duration", lease.as_secs().to_string()),
                        ("x-ms-proposed-lease-id", holder.id.0.clone()),
                    ],
                )
                .await?;
            match (resp.status().as_u16(), error_code(&resp).as_deref()) {
                (200 | 201, _) => {
                    let resp = self.set_lock_metadata(&holder.id, Some(holder)).await?;
                    if resp.status().is_success() {
                        return Ok(TryLock::Acquired);
                    }
                    // Lost in the moment between taking the lease and describing the holder, or
                    // refused: give back what may still be held.
                    let e = self.refused(Some(LOCK_BLOB), "describe the lock holder", resp).await;
                    let _ = self.lock_release(&holder.id).await;
                    return Err(e);
                }
                (409, Some("LeaseAlreadyPresent")) => {
                    let holder = self.lock_properties().await?.and_then(|(_, h, _)| h);
                    return Ok(TryLock::Held(holder));
                }
                (404, Some("BlobNotFound")) if !created => {
                    self.create_blob(LOCK_BLOB, "BlockBlob", "create the lock").await?;
                    created = true;
                }
                _ => return Err(self.refused(Some(LOCK_BLOB), op, resp).await),
            }
        }
    }

    async fn lock_renew(&self, id: &LockId, _lease: Duration) -> Result<(), StateError> {
        let op = "renew the lock";
        let resp = self.lease(op, "renew", &[("x-ms-lease-id", id.0.clone())]).await?;
        match resp.status().as_u16() {
            200 => Ok(()),
            409 | 412 | 404 => {
                let e = self.refused(Some(LOCK_BLOB), op, resp).await;
                Err(StateError::LockLost { location: self.location(), id: id.clone(), message: e.to_string() })
            }
            _ => Err(self.refused(Some(LOCK_BLOB), op, resp).await),
        }
    }

    async fn lock_release(&self, id: &LockId) -> Result<(), StateError> {
        // The description goes first, so no one reads a released holder as current.
        let _ = self.set_lock_metadata(id, None).await;
        let op = "release the lock";
        let resp = self.lease(op, "release", &[("x-ms-lease-id", id.0.clone())]).await?;
        match resp.status().as_u16() {
            200 => Ok(()),
            // No longer held under this id (expired and taken, or broken): nothing to release.
            409 | 412 | 404 => Ok(()),
            _ => Err(self.refused(Some(LOCK_BLOB), op, resp).await),
        }
    }

    async fn lock_status(&self) -> Result<LockStatus, StateError> {
        Ok(match self.lock_properties().await? {
            Some((state, holder, _)) if state == "leased" || state == "breaking" => LockStatus::Held(holder),
            _ => LockStatus::Free,
        })
    }

    async fn lock_break(&self, id: &LockId) -> Result<LockHolder, StateError> {
        let (state, holder, etag) = self.lock_properties().await?.unwrap_or_else(|| ("available".into(), None, None));
        let held = state == "leased" || state == "breaking";
        let holder = match holder {
            Some(h) if held && &h.id == id => h,
            other => {
                return Err(StateError::NotLocked {
                    location: self.location(),
                    id: id.clone(),
                    holder: other.filter(|_| held).map(Box::new),
                });
            }
        };
        let op = "break the lock";
        let mut extra = vec![("x-ms-lease-break-period", "0".to_string())];
        if let Some(e) = etag {
            // Only if the lock did not change hands since it was read.
            extra.push(("if-match", e));
        }
        let resp = self.lease(op, "break", &extra).await?;
        match resp.status().as_u16() {
            200 | 202 => Ok(holder),
            412 => Err(StateError::Conflict { what: format!("the lock at {}", self.location()) }),
            409 => Err(StateError::NotLocked { location: self.location(), id: id.clone(), holder: None }),
            _ => Err(self.refused(Some(LOCK_BLOB), op, resp).await),
        }
    }

    async fn doc_get(&self, name: DocName) -> Result<Option<Doc>, StateError> {
        let blob = name.file_name();
        let op = "read a state document";
        let resp = self.send(op, Some(blob), Method::GET, &[], HeaderMap::new(), None).await?;
        match resp.status().as_u16() {
            200 => {
                let version = resp.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(|v| Version(v.to_string()));
                let location = self.blob_location(blob);
                let bytes =
                    http::read_body(resp, DOC_CAP, &location).await.map_err(|e| transport_error(&location, op, e))?;
                let version = version.ok_or_else(|| StateError::Corrupt {
                    what: location,
                    message: "the service sent no ETag".into(),
                })?;
                Ok(Some(Doc { bytes, version }))
            }
            404 => Ok(None),
            _ => Err(self.refused(Some(blob), op, resp).await),
        }
    }

    async fn doc_put(&self, name: DocName, bytes: &[u8], expect: &Expect) -> Result<Version, StateError> {
        let blob = name.file_name();
        let op = "write a state document";
        let mut h = HeaderMap::new();
        h.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
        h.insert("x-ms-blob-content-type", HeaderValue::from_static("application/json"));
        match expect {
            Expect::Absent => {
                h.insert("if-none-match", HeaderValue::from_static("*"));
            }
            Expect::Version(v) => {
                h.insert(
                    "if-match",
                    HeaderValue::from_str(&v.0)
                        .map_err(|_| StateError::Config("an ETag that is no header value".into()))?,
                );
            }
        }
        let resp = self.send(op, Some(blob), Method::PUT, &[], h, Some(bytes.to_vec())).await?;
        match (resp.status().as_u16(), error_code(&resp).as_deref()) {
            (201, _) => {
                resp.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(|v| Version(v.to_string())).ok_or_else(
                    || StateError::Corrupt {
                        what: self.blob_location(blob),
                        message: "the service sent no ETag".into(),
                    },
                )
            }
            (412, _) | (409, Some("BlobAlreadyExists")) => {
                Err(StateError::Conflict { what: format!("{blob} at {}", self.location()) })
            }
            _ => Err(self.refused(Some(blob), op, resp).await),
        }
    }
}

#[cfg(test)]
mod tests;
