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

/// A container's URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUrl {
    /// Up to and including the container, without a trailing slash or a query.
    pub base: Url,
    pub account: String,
    pub container: String,
}

impl ContainerUrl {
    /// `https://ACCOUNT.blob.core.windows.net/CONTAINER` (the account is the host's first
    /// label), or an emulator's `http://127.0.0.1:PORT/ACCOUNT/CONTAINER` (when the host is an
    /// IP address or `localhost`, the account is the path's first segment). The message of an
    /// error says what to write instead.
    pub fn parse(s: &str) -> Result<ContainerUrl, String> {
        let url: Url = s.trim().parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        http::check_url(&url).map_err(|e| e.to_string())?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{}` has a query; write the container's URL alone, and a SAS token in `sasToken` as a secret reference",
                without_query(&url)
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the URL holds a user name or password; remove it".into());
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let segments: Vec<&str> =
            url.path_segments().map(|s| s.filter(|p| !p.is_empty()).collect()).unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let path_style = bare == "localhost" || bare.parse::<std::net::IpAddr>().is_ok();
        let (account, container) = match (path_style, segments.as_slice()) {
            (true, [account, container]) => (account.to_string(), container.to_string()),
            (false, [container]) => (host.split('.').next().unwrap_or_default().to_string(), container.to_string()),
            (true, _) => {
                return Err(format!(
                    "`{s}` is not an emulator container URL: write http://127.0.0.1:PORT/ACCOUNT/CONTAINER"
                ));
            }
            (false, _) => {
                return Err(format!(
                    "`{s}` is not a container URL: write https://ACCOUNT.blob.core.windows.net/CONTAINER"
                ));
            }
        };
        check_account(&account)?;
        check_container(&container)?;
        let mut base = url.clone();
        let path = if path_style { format!("/{account}/{container}") } else { format!("/{container}") };
        base.set_path(&path);
        Ok(ContainerUrl { base, account, container })
    }
}

/// Storage account names: 3 to 24 lower-case letters and digits.
fn check_account(a: &str) -> Result<(), String> {
    let ok = (3..=24).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!("`{a}` is not a storage account name (3 to 24 lower-case letters and digits)"))
    }
}

/// Container names: 3 to 63 lower-case letters, digits and single hyphens, starting and ending
/// with a letter or digit.
fn check_container(c: &str) -> Result<(), String> {
    let b = c.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter().all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || *x == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !c.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{c}` is not a container name (3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit)"
        ))
    }
}

/// A prefix as written (`prod/identity`, `prod/identity/`) as it is used: `""` or a folder
/// ending in `/`. Letters, digits, `.`, `_`, `-` and `/` between non-empty segments, none of
/// them `.` or `..`.
pub fn normalize_prefix(p: &str) -> Result<String, String> {
    let t = p.trim().trim_end_matches('/');
    if t.is_empty() {
        return Ok(String::new());
    }
    let bad = || {
        format!(
            "`{p}` is not a prefix: write folder names of letters, digits, `.`, `_` and `-` separated by `/`, \
             for example prod/identity"
        )
    };
    if t.len() > 512 || t.starts_with('/') {
        return Err(bad());
    }
    for seg in t.split('/') {
        let ok = !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(bad());
        }
    }
    Ok(format!("{t}/"))
}

fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Masks the value of every `sig=` parameter in `text` (an error from the HTTP client may quote
/// the URL with its SAS).
pub fn mask_signatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.to_ascii_lowercase().find("sig=") {
        out.push_str(&rest[..i + 4]);
        let after = &rest[i + 4..];
        let end = after
            .find(|c: char| c == '&' || c == ')' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str("(sensitive)");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
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
        let url = ContainerUrl::parse(&settings.url).map_err(StateError::Config)?;
        let prefix = normalize_prefix(&settings.prefix).map_err(StateError::Config)?;
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
mod tests {
    use super::*;

    #[test]
    fn container_urls() {
        let u = ContainerUrl::parse("https://acct1.blob.core.windows.net/keyward-state").unwrap();
        assert_eq!((u.account.as_str(), u.container.as_str()), ("acct1", "keyward-state"));
        assert_eq!(u.base.as_str(), "https://acct1.blob.core.windows.net/keyward-state");
        let u = ContainerUrl::parse("http://127.0.0.1:10000/devacct/state/").unwrap();
        assert_eq!((u.account.as_str(), u.container.as_str()), ("devacct", "state"));
        assert_eq!(u.base.as_str(), "http://127.0.0.1:10000/devacct/state");
        assert!(ContainerUrl::parse("http://localhost:1/devacct/state").is_ok());
        for (bad, says) in [
            ("http://acct.blob.core.windows.net/c0ntainer", "http"),
            ("https://acct.blob.core.windows.net/c?sv=1&sig=abc", "sasToken"),
            ("https://acct.blob.core.windows.net/", "container URL"),
            ("https://acct.blob.core.windows.net/a/b", "container URL"),
            ("http://127.0.0.1:10000/onlyone", "emulator"),
            ("https://acct.blob.core.windows.net/Upper", "container name"),
            ("https://acct.blob.core.windows.net/a--b", "container name"),
            ("https://ACCT-x.blob.core.windows.net/abc", "account name"),
        ] {
            let e = ContainerUrl::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("sig=abc"), "{e}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("prod/identity").unwrap(), "prod/identity/");
        assert_eq!(normalize_prefix("prod/").unwrap(), "prod/");
        for bad in ["/abs", "a//b", "a/../b", "a b", "a?b", "é"] {
            assert!(normalize_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures_are_masked_wherever_they_appear() {
        let s = "error sending request for url (http://127.0.0.1:1/a/c/lock?comp=lease&sv=2019&SIG=abc%2Bdef&se=x): refused";
        let m = mask_signatures(s);
        assert!(!m.contains("abc%2Bdef"), "{m}");
        assert!(m.contains("SIG=(sensitive)&se=x"), "{m}");
    }

    #[test]
    fn holders_survive_metadata() {
        let holder = LockHolder {
            id: LockId("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
            actor: "Zoë O'Brien".into(),
            host: "runner 7".into(),
            run_id: "123.1".into(),
            commit: Some("abc123".into()),
            since: chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").unwrap().to_utc(),
            pid: Some(42),
        };
        let mut h = HeaderMap::new();
        for (k, v) in holder_metadata(&holder) {
            h.insert(
                HeaderName::from_bytes(format!("x-ms-meta-{k}").as_bytes()).unwrap(),
                HeaderValue::from_str(&v).unwrap(),
            );
        }
        assert_eq!(holder_from_metadata(&h), Some(holder));
    }

    /// Entra ID: the storage scope's token as a bearer header with a version that accepts it
    /// (2017-11-09 or later); after a 401 the token is fetched again and the request resent
    /// once. The client secret shows nowhere.
    #[tokio::test]
    async fn entra_tokens_go_as_bearer_with_a_recent_api_version() {
        use axum::http::{HeaderMap as Headers, StatusCode};
        use keyward_fakes::entra::Entra;
        use std::sync::{Arc, Mutex};
        const CLIENT: &str = "44444444-4444-4444-4444-444444444444";
        let dir = tempfile::tempdir().unwrap();
        let secret = format!("canary-{}", crate::remote::entra::random_guid().unwrap());
        std::fs::write(dir.path().join("client-secret"), &secret).unwrap();
        let entra = Entra::new();
        entra.register(CLIENT, Some(&secret));
        let idp = keyward_fakes::serve(entra.router());
        let seen: Arc<Mutex<Vec<Headers>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |headers: Headers| {
            let log = log.clone();
            async move {
                let mut v = log.lock().unwrap();
                v.push(headers);
                if v.len() == 1 {
                    (StatusCode::UNAUTHORIZED, [("x-ms-error-code", "InvalidAuthenticationInfo")])
                } else {
                    (StatusCode::NOT_FOUND, [("x-ms-error-code", "BlobNotFound")])
                }
            }
        });
        let blob = keyward_fakes::serve(app);
        let settings = AzureBlobState {
            url: format!("{}/devacct/state", blob.url()),
            prefix: "p".into(),
            auth: BlobAuth::Entra {
                tenant: "contoso.onmicrosoft.com".into(),
                client_id: CLIENT.into(),
                credential: crate::model::config::ClientCredential::Secret(crate::model::SecretRef::File(
                    "client-secret".into(),
                )),
                authority: Some(idp.url()),
            },
            ca_file: None,
        };
        let store = AzureBlobStore::new(&settings, dir.path(), Options::default()).unwrap();
        assert_eq!(store.doc_get(DocName::Applied).await.unwrap(), None);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "sent once, then once more after the 401");
        assert_eq!(entra.grants().len(), 2, "a new token after the 401");
        for h in seen.iter() {
            assert!(entra.check(h, "https://storage.azure.com").is_ok(), "{h:?}");
            let version = h["x-ms-version"].to_str().unwrap();
            assert!(version >= "2017-11-09", "{version}");
            assert!(h.contains_key("x-ms-date"));
        }
        assert!(!format!("{store:?}").contains(&secret));
    }

    /// Canaries: an account key, a SAS signature and a client secret made now, through the
    /// errors of a service that cannot be reached (whose messages quote the URL) and of a token
    /// endpoint that refuses; none may show in Display or Debug of the store or of an error.
    #[tokio::test]
    async fn secrets_never_show_in_debug_display_or_errors() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let canary = crate::remote::entra::random_guid().unwrap().replace('-', "");
        let key = base64::engine::general_purpose::STANDARD.encode(format!("key-{canary}"));
        let sig = format!("sig{canary}");
        let client_secret = format!("secret-{canary}");
        std::fs::write(dir.path().join("key"), &key).unwrap();
        std::fs::write(dir.path().join("sas"), format!("?sv=2019-12-12&sp=racwdl&sig={sig}")).unwrap();
        std::fs::write(dir.path().join("client-secret"), &client_secret).unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let url = format!("http://{closed}/devacct/state");
        let file = |f: &str| crate::model::SecretRef::File(f.into());
        let auths = [
            BlobAuth::AccountKey(file("key")),
            BlobAuth::SasToken(file("sas")),
            BlobAuth::Entra {
                tenant: "contoso.onmicrosoft.com".into(),
                client_id: "c".into(),
                credential: crate::model::config::ClientCredential::Secret(file("client-secret")),
                authority: Some(format!("http://{closed}")),
            },
        ];
        let options = Options { retry: RetryPolicy { max_retries: 0, ..RetryPolicy::default() }, ..Options::default() };
        for auth in auths {
            let settings = AzureBlobState { url: url.clone(), prefix: "p".into(), auth, ca_file: None };
            let store = AzureBlobStore::new(&settings, dir.path(), options.clone()).unwrap();
            let errors = [
                store.log_append(0, b"{}\n").await.unwrap_err(),
                store.doc_get(DocName::Applied).await.unwrap_err(),
                store.lock_status().await.unwrap_err(),
            ];
            let mut shown = format!("{store:?}");
            for e in &errors {
                shown.push_str(&format!("\n{e}\n{e:?}"));
            }
            assert!(shown.contains(&closed.to_string()), "the errors name the endpoint: {shown}");
            for secret in [&key, &sig, &client_secret, &canary] {
                assert!(!shown.contains(secret.as_str()), "{secret} shows:\n{shown}");
            }
        }
    }

    #[test]
    fn error_bodies_give_their_code_and_first_message_line() {
        let body = "<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to \
                    authenticate the request.\nRequestId:1\nTime:2</Message><AuthenticationErrorDetail>The MAC \
                    signature found in the HTTP request 'x' is not the same</AuthenticationErrorDetail></Error>";
        assert_eq!(xml_element(body, "Code").as_deref(), Some("AuthenticationFailed"));
        assert!(xml_element(body, "Message").unwrap().starts_with("Server failed to authenticate the request.\n"));
        assert_eq!(xml_element("<a>&lt;b&gt; &amp;</a>", "a").as_deref(), Some("<b> &"));
    }
}
