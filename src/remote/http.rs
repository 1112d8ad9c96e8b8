//! HTTP plumbing shared by the providers that speak HTTP (SCIM; Graph and Dataverse reuse it).
//!
//! Guarantees:
//! - only `https://` URLs, or `http://` to a loopback address, are ever contacted (SPEC §4);
//!   TLS is rustls (1.2 and 1.3 only, certificates verified against the system roots plus an
//!   optional extra CA file);
//! - a body is never read without a bound: successful bodies are refused past a cap, error
//!   bodies are truncated at [`ERROR_BODY_CAP`];
//! - retries are bounded: only throttling and temporary unavailability (429, 502, 503, 504) and
//!   failures to connect are retried, honouring `Retry-After` (delay-seconds, decimals, or an
//!   HTTP date) and otherwise backing off exponentially with full jitter;
//! - secrets are resolved into [`Secret`] values, which never print themselves; nothing here
//!   logs a header.
//!
//! It assumes nothing about the protocol on top: callers build the requests and interpret the
//! responses.

use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};

use crate::model::{Secret, SecretRef};

/// The largest error body read; the rest is dropped.
pub const ERROR_BODY_CAP: usize = 1024 * 1024;

/// Why a request could not be made or its answer not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Config(String),
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    /// The request was sent but no complete answer came back (reset, timeout): the service
    /// may or may not have acted on it.
    #[error(
        "no answer from {url}: {message}; the request may have been carried out, and the next plan shows whether it was"
    )]
    NoAnswer { url: String, message: String },
    #[error("the response from {url} is larger than {cap} bytes")]
    TooLarge { url: String, cap: usize },
}

/// How a service words its error answers: the name of its error code, and whether it gives a
/// request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SCIM 2.0: `scimType` and `detail` (RFC 7644 §3.12).
    Scim,
    /// OData (Dataverse, Finance & Operations): `error.code` and `error.message`.
    OData,
    /// Microsoft Graph: `error.code`, `error.message` and the request id.
    Graph,
}

/// Why a request to a service failed: the one error type of the providers that speak HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The service could not be reached, or its answer could not be read.
    #[error("{0}")]
    Transport(String),
    /// The service answered with an error status.
    #[error("{}", describe(*.dialect, *.status, code.as_deref(), message.as_deref(), request_id.as_deref()))]
    Status { dialect: Dialect, status: u16, code: Option<String>, message: Option<String>, request_id: Option<String> },
    /// A successful answer that is not what the protocol promises.
    #[error("{0}")]
    Invalid(String),
}

impl ServiceError {
    /// An error status without a body worth reading.
    pub fn status_only(dialect: Dialect, status: u16) -> ServiceError {
        ServiceError::Status { dialect, status, code: None, message: None, request_id: None }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ServiceError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The service's own code for the error (SCIM's `scimType`, OData's and Graph's
    /// `error.code`).
    pub fn code(&self) -> Option<&str> {
        match self {
            ServiceError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// A failed precondition: the object changed since the version the write named
    /// (`If-Match`, RFC 9110 §13.1.1).
    pub fn is_precondition_failed(&self) -> bool {
        self.status() == Some(412)
    }
}

/// `HTTP 409 Conflict (scimType uniqueness): detail`, `HTTP 400 Bad Request (code 0x80040265):
/// message`, `HTTP 403 Forbidden: Authorization_RequestDenied: message (request id …)`.
pub fn describe(
    dialect: Dialect,
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    request_id: Option<&str>,
) -> String {
    let mut s = status_line(status);
    match (dialect, code) {
        (Dialect::Scim, Some(c)) => s.push_str(&format!(" (scimType {c})")),
        (Dialect::OData, Some(c)) => s.push_str(&format!(" (code {c})")),
        (Dialect::Graph, Some(c)) => {
            s.push_str(": ");
            s.push_str(c);
        }
        (_, None) => {}
    }
    if let Some(m) = message {
        s.push_str(": ");
        s.push_str(m);
    }
    if let (Dialect::Graph, Some(r)) = (dialect, request_id) {
        s.push_str(&format!(" (request id {r})"));
    }
    s
}

/// Why a URL may not be contacted. The message names the URL: never build one from a URL
/// that is a secret (a webhook), keep only the verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` is plain http to a host other than loopback; endpoints other than loopback must use https")]
    PlainHttp(String),
    #[error("`{url}` has scheme `{scheme}`; use https")]
    Scheme { url: String, scheme: String },
}

/// Whether a URL may be contacted: https anywhere, http only on loopback.
pub fn check_url(url: &Url) -> Result<(), UrlError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(UrlError::PlainHttp(url.to_string())),
        other => Err(UrlError::Scheme { url: url.to_string(), scheme: other.to_string() }),
    }
}

/// Whether the URL's host is the loopback interface.
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The environment variable that overrides every provider's per-request timeout, in seconds
/// (for slow services, and for tests of what a timeout does).
pub const TIMEOUT_VAR: &str = "KEYWARD_HTTP_TIMEOUT";

/// Builds a client: rustls with TLS 1.2 at least, system roots plus `ca_file`, no redirects
/// (a redirect to another host would carry credentials away), and the given timeouts
/// (`KEYWARD_HTTP_TIMEOUT` seconds instead of `timeout` when set).
pub fn client(ca_file: Option<&Path>, timeout: Duration) -> Result<Client, HttpError> {
    let timeout = match std::env::var(TIMEOUT_VAR) {
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 => Duration::from_secs_f64(secs),
            _ => {
                return Err(HttpError::Config(format!(
                    "{TIMEOUT_VAR} must be a positive number of seconds, not {v:?}"
                )));
            }
        },
        Err(_) => timeout,
    };
    let mut b = Client::builder()
        .use_rustls_tls()
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .https_only(false) // http is allowed on loopback only; check_url enforces it per URL
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| HttpError::Config(format!("cannot read caFile {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| HttpError::Config(format!("caFile {} is not a PEM certificate: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(HttpError::Config(format!("caFile {} holds no certificate", path.display())));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| HttpError::Config(format!("cannot set up the HTTP client: {e}")))
}

/// Why a secret reference could not be resolved. Names the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the environment variable {name} (from {reference}) is empty")]
    EmptyVariable { name: String, reference: SecretRef },
    #[error("the environment variable {name} (from {reference}) is not set")]
    UnsetVariable { name: String, reference: SecretRef },
    #[error("cannot read the secret file {} (from {reference}): {source}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        reference: SecretRef,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret file {} (from {reference}) is empty", path.display())]
    EmptyFile { path: std::path::PathBuf, reference: SecretRef },
}

/// Resolves a secret reference: `${env:NAME}` from the environment, `${file:PATH}` from a file
/// (relative to `root`), without its trailing newline. Errors name the reference, never a value.
pub fn resolve_secret(r: &SecretRef, root: &Path) -> Result<Secret<String>, SecretError> {
    match r {
        SecretRef::Env(name) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            Ok(_) => Err(SecretError::EmptyVariable { name: name.clone(), reference: r.clone() }),
            Err(_) => Err(SecretError::UnsetVariable { name: name.clone(), reference: r.clone() }),
        },
        SecretRef::File(p) => {
            let path = root.join(p);
            let text = std::fs::read_to_string(&path).map_err(|source| SecretError::Unreadable {
                path: path.clone(),
                reference: r.clone(),
                source,
            })?;
            let v = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            if v.is_empty() {
                return Err(SecretError::EmptyFile { path, reference: r.clone() });
            }
            Ok(Secret::new(v.to_string()))
        }
    }
}

/// How many times and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff ceiling; doubled on each retry.
    pub base: Duration,
    /// The largest backoff between two attempts.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a service asking for more is not retried.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// The environment variable that sets how many times a failed request is retried (0: never),
/// for slow or flaky services and for tests of failures that should not wait.
pub const RETRIES_VAR: &str = "KEYWARD_HTTP_RETRIES";

impl RetryPolicy {
    /// The default policy, with `KEYWARD_HTTP_RETRIES` retries when it is set.
    pub fn from_env() -> Result<RetryPolicy, HttpError> {
        let policy = RetryPolicy::default();
        match std::env::var(RETRIES_VAR) {
            Ok(v) => match v.trim().parse::<u32>() {
                Ok(n) if n <= 20 => Ok(RetryPolicy { max_retries: n, ..policy }),
                _ => Err(HttpError::Config(format!("{RETRIES_VAR} must be a whole number from 0 to 20, not {v:?}"))),
            },
            Err(_) => Ok(policy),
        }
    }

    /// The wait before retry number `retry` (0-based), or `None` to give up. `retry_after` is
    /// what the service asked for; `unit` is a uniform random number in [0, 1) for jitter.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let unit = unit.clamp(0.0, 1.0);
        match retry_after {
            Some(d) if d > self.max_retry_after => None,
            // Never earlier than asked; up to 10% (at most a second) later, so that many clients
            // told the same time do not return at once.
            Some(d) => Some(d + Duration::from_secs_f64((d.as_secs_f64() * 0.1).min(1.0) * unit)),
            // Full jitter: uniform in [0, min(max, base * 2^retry)].
            None => {
                let ceiling = self.base.saturating_mul(1u32 << retry.min(20)).min(self.max_backoff);
                Some(Duration::from_secs_f64(ceiling.as_secs_f64() * unit))
            }
        }
    }
}

/// `HTTP 403 Forbidden`: a status and its reason phrase, the start of every provider's error
/// message for an answer it refused.
pub fn status_line(status: u16) -> String {
    match StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()) {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

/// Whether a status is worth retrying: throttled or temporarily unavailable.
pub fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, which some services send
/// with decimals, or an HTTP date (IMF-fixdate, or the obsolete RFC 850 and asctime forms),
/// taken relative to `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = v.parse().ok()?;
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A small, non-cryptographic source of jitter (splitmix64), seeded per process.
pub fn jitter_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut s = STATE.load(Ordering::Relaxed);
    if s == 0 {
        let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        s = t ^ ((std::process::id() as u64) << 32) | 1;
    }
    s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    STATE.store(s, Ordering::Relaxed);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Sends a request, retrying per `policy`. `build` makes a fresh request for each attempt.
/// Returns the last response (which may be an error status) or the transport failure.
pub async fn send_with_retry(
    policy: &RetryPolicy,
    url_for_errors: &str,
    build: impl Fn() -> RequestBuilder,
) -> Result<Response, HttpError> {
    let mut retry = 0u32;
    loop {
        let result = build().send().await;
        let (wait, outcome) = match result {
            Ok(resp) if is_retryable(resp.status()) => {
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                (policy.delay(retry, after, jitter_unit()), Ok(resp))
            }
            Ok(resp) => return Ok(resp),
            // Only failures to connect are retried: the request never reached the service, so
            // retrying cannot do anything twice.
            Err(e) if e.is_connect() => (
                policy.delay(retry, None, jitter_unit()),
                Err(HttpError::Transport { url: url_for_errors.to_string(), message: error_chain(&e) }),
            ),
            // A request that could not be built (a header value that is not one) was never sent.
            Err(e) if e.is_builder() => {
                return Err(HttpError::Config(format!(
                    "the request to {url_for_errors} could not be made, so it was not sent: {}",
                    error_chain(&e)
                )));
            }
            Err(e) => {
                return Err(HttpError::NoAnswer { url: url_for_errors.to_string(), message: error_chain(&e) });
            }
        };
        match wait {
            Some(d) => {
                tracing::debug!(url = url_for_errors, retry, wait_ms = d.as_millis() as u64, "retrying request");
                tokio::time::sleep(d).await;
                retry += 1;
            }
            None => return outcome,
        }
    }
}

/// Why `value` cannot be sent as an HTTP header value (RFC 9110 §5.5: visible ASCII, spaces
/// and tabs), if it cannot.
pub fn header_value_problem(value: &str) -> Option<&'static str> {
    value.chars().find_map(|c| match c {
        '\t' | ' '..='~' => None,
        c if c.is_control() => Some("a control character"),
        _ => Some("a character that is not ASCII"),
    })
}

/// The error and its sources, joined: reqwest's top-level message alone hides the cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

/// Reads a body up to `cap` bytes; `Err(TooLarge)` past it.
pub async fn read_body(mut resp: Response, cap: usize, url_for_errors: &str) -> Result<Vec<u8>, HttpError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(HttpError::TooLarge { url: url_for_errors.to_string(), cap });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HttpError::NoAnswer { url: url_for_errors.to_string(), message: error_chain(&e) })?
    {
        if out.len() + chunk.len() > cap {
            return Err(HttpError::TooLarge { url: url_for_errors.to_string(), cap });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads an error body up to [`ERROR_BODY_CAP`], dropping the rest; never fails.
pub async fn read_error_body(mut resp: Response) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = ERROR_BODY_CAP - out.len();
        if chunk.len() >= room {
            out.extend_from_slice(&chunk[..room]);
            break;
        }
        out.extend_from_slice(&chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        // The obsolete forms recipients must still accept (RFC 9110 §5.6.7).
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:57 GMT", now), Some(Duration::from_secs(20)));
        assert_eq!(parse_retry_after("Sun Nov  6 08:50:37 1994", now), Some(Duration::from_secs(60)));
        // A date in the past: retry now.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        for bad in ["", "soon", "-5", "1e3", "1.2.3", "Sun, 99 Nov 1994 08:49:37 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_delays_are_bounded_and_jittered() {
        let p = RetryPolicy::default();
        // Backoff: within [0, base * 2^n], capped.
        assert_eq!(p.delay(0, None, 0.0), Some(Duration::ZERO));
        assert_eq!(p.delay(0, None, 0.5), Some(Duration::from_millis(125)));
        assert_eq!(p.delay(3, None, 0.999_999).unwrap().as_millis(), 1999);
        assert!(p.delay(4, None, 0.999_999).unwrap() <= p.max_backoff);
        assert_eq!(RetryPolicy { max_retries: 30, ..p }.delay(25, None, 1.0), Some(p.max_backoff));
        // Retry-After: never earlier, at most 10% (and one second) later.
        let ra = Duration::from_secs(2);
        assert_eq!(p.delay(0, Some(ra), 0.0), Some(ra));
        assert_eq!(p.delay(0, Some(ra), 1.0), Some(Duration::from_millis(2200)));
        assert_eq!(p.delay(0, Some(Duration::from_secs(60)), 1.0), Some(Duration::from_secs(61)));
        // Too long a wait, or too many retries: give up.
        assert_eq!(p.delay(0, Some(Duration::from_secs(3600)), 0.5), None);
        assert_eq!(p.delay(p.max_retries, None, 0.5), None);
        // The jitter source stays in [0, 1).
        for _ in 0..1000 {
            let u = jitter_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn only_https_or_loopback_http() {
        for ok in ["https://scim.example.com/v2", "http://127.0.0.1:8080/v2", "http://localhost/x", "http://[::1]:1/"] {
            assert!(check_url(&ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in ["http://scim.example.com/v2", "http://10.0.0.1/", "ftp://127.0.0.1/", "http://127.0.0.1.nip.io/"] {
            assert!(check_url(&bad.parse().unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_resolve_without_showing_themselves() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "s3cr3t-value\n").unwrap();
        let s = resolve_secret(&SecretRef::File("tok".into()), dir.path()).unwrap();
        assert_eq!(s.expose(), "s3cr3t-value");
        assert_eq!(format!("{s:?}"), "(sensitive)");
        let e = resolve_secret(&SecretRef::Env("KEYWARD_TEST_SURELY_UNSET_VAR".into()), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("${env:KEYWARD_TEST_SURELY_UNSET_VAR}"), "{e}");
    }

    /// A one-thread HTTP server answering each connection with the next canned response.
    fn canned(answers: Vec<&'static str>) -> (String, std::thread::JoinHandle<usize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/x", listener.local_addr().unwrap().port());
        let handle = std::thread::spawn(move || {
            let mut served = 0;
            for a in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                s.write_all(a.as_bytes()).unwrap();
                served += 1;
            }
            served
        });
        (url, handle)
    }

    #[tokio::test]
    async fn throttled_requests_are_retried_after_the_time_asked() {
        let (url, server) = canned(vec![
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0.3\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            // A date in the past: retry at once.
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ]);
        let http = client(None, Duration::from_secs(10)).unwrap();
        let started = std::time::Instant::now();
        let resp = send_with_retry(&RetryPolicy::default(), &url, || http.get(&url)).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(read_body(resp, 10, &url).await.unwrap(), b"ok");
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
        assert_eq!(server.join().unwrap(), 3);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let busy =
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy";
        let (url, server) = canned(vec![busy; 3]);
        let http = client(None, Duration::from_secs(10)).unwrap();
        let policy = RetryPolicy { max_retries: 2, ..RetryPolicy::default() };
        let resp = send_with_retry(&policy, &url, || http.get(&url)).await.unwrap();
        // The last answer is returned as it is, after the first attempt and two retries.
        assert_eq!(resp.status(), 503);
        assert_eq!(read_error_body(resp).await, b"busy");
        assert_eq!(server.join().unwrap(), 3);
    }

    #[tokio::test]
    async fn bodies_are_read_with_a_cap() {
        let (url, server) =
            canned(vec!["HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world"]);
        let http = client(None, Duration::from_secs(10)).unwrap();
        let resp = send_with_retry(&RetryPolicy::default(), &url, || http.get(&url)).await.unwrap();
        assert!(matches!(read_body(resp, 5, &url).await, Err(HttpError::TooLarge { cap: 5, .. })));
        server.join().unwrap();
    }

    /// Regression: a header value that is not one (a token holding a newline) was reported as
    /// "no answer … may have been carried out"; the request was never built, let alone sent.
    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_reported_as_not_sent() {
        let http = client(None, Duration::from_secs(10)).unwrap();
        let url = "http://127.0.0.1:9/x";
        let e = send_with_retry(&RetryPolicy::default(), url, || http.get(url).bearer_auth("tok\nX-Injected: 1"))
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Config(_)), "{e}");
        let shown = e.to_string();
        assert!(shown.contains("was not sent") && !shown.contains("may have been carried out"), "{shown}");
        assert!(!shown.contains("X-Injected"), "{shown}");
        assert_eq!(header_value_problem("tok\nx"), Some("a control character"));
        assert_eq!(header_value_problem("tök"), Some("a character that is not ASCII"));
        assert_eq!(header_value_problem("Bearer a.b-c_d~e+f/g=\t"), None);
    }
}
