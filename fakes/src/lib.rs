//! In-process HTTP fakes of the services keyward reconciles that cannot run on a test machine:
//! Microsoft Graph, Dataverse and Finance & Operations, with the Entra ID token endpoint they
//! share.
//!
//! Every fake is written from the API reference sheet (`reference/apis.md` of the project
//! documentation); each module says which behaviours are documented and which are assumed.
//! Real servers are used wherever one can run locally (scim2-server, slapd); these fakes exist
//! only for the cloud services.
//!
//! The shared pieces here:
//! - [`serve`] runs a router on a loopback port on its own thread and runtime, so synchronous
//!   tests, async tests and benchmarks can all use it; dropping the [`Running`] stops it.
//! - [`RequestLog`] records every request (method, path, query, status) for request-count
//!   assertions and benchmarks.
//! - [`Throttle`] is a token bucket answering `429` with `Retry-After` once the rate is exceeded.
//! - [`entra`] is the OAuth 2.0 client-credentials token endpoint.
//! - [`graph`] is Microsoft Graph v1.0 (users, groups, roles, app roles, policies, audit logs, `$batch`,
//!   delta queries, synced and dynamic objects, PIM eligibility and role management policies).
//! - [`dataverse`] is the Dataverse Web API (users, business units, roles and their privileges,
//!   teams, field security, audits, change tracking); [`fno`] the F&O data entities (users,
//!   roles, duties and privileges, assignments, SoD conflicts, Entra application mapping).
//!
//! The facts each fake follows beyond the reference sheet, with their sources and what is
//! unverified, are in `docs/reference/` (`graph.md`, `dataverse.md`, `fno.md`).

pub mod dataverse;
pub mod entra;
pub mod faults;
pub mod fno;
pub mod graph;
pub mod keyvault;
pub mod odata;
pub mod proof;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
}

/// Every request a fake answered, in order.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<Logged>>>);

impl RequestLog {
    pub fn push(&self, entry: Logged) {
        self.0.lock().expect("request log").push(entry);
    }

    pub fn entries(&self) -> Vec<Logged> {
        self.0.lock().expect("request log").clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("request log").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.0.lock().expect("request log").clear();
    }

    /// Requests whose method matches and whose path satisfies `pred`.
    pub fn count(&self, method: &str, pred: impl Fn(&str) -> bool) -> usize {
        self.entries().iter().filter(|e| e.method.eq_ignore_ascii_case(method) && pred(&e.path)).count()
    }

    /// Requests answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.entries().iter().filter(|e| e.status == status).count()
    }

    /// Wraps `router` so every request it answers is recorded here.
    pub fn layer<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        let log = self.clone();
        router.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let log = log.clone();
            async move {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let query = req.uri().query().map(str::to_string);
                let resp = next.run(req).await;
                log.push(Logged { method, path, query, status: resp.status().as_u16() });
                resp
            }
        }))
    }
}

/// A token bucket: `rate` requests per second with bursts of up to `burst`. A request over the
/// limit is answered `429 Too Many Requests` with `Retry-After` in whole seconds, as Graph,
/// Dataverse and F&O document; the body shape of Graph's 429 is not documented, so a Graph-style
/// error body is assumed.
#[derive(Debug, Clone)]
pub struct Throttle {
    inner: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    rejected: u64,
}

impl Throttle {
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        Throttle {
            inner: Arc::new(Mutex::new(Bucket {
                rate: rate_per_second,
                burst: burst as f64,
                tokens: burst as f64,
                last: Instant::now(),
                rejected: 0,
            })),
        }
    }

    /// Takes a token, or returns how long until one is available.
    pub fn take(&self) -> Result<(), Duration> {
        let mut b = self.inner.lock().expect("throttle");
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * b.rate).min(b.burst);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            b.rejected += 1;
            Err(Duration::from_secs_f64((1.0 - b.tokens) / b.rate))
        }
    }

    /// How many requests were refused.
    pub fn rejected(&self) -> u64 {
        self.inner.lock().expect("throttle").rejected
    }

    /// A `429` response with `Retry-After` rounded up to whole seconds (at least 1).
    pub fn too_many(wait: Duration) -> Response {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let body = serde_json::json!({"error": {"code": "TooManyRequests", "message": "Too many requests."}});
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        resp.headers_mut().insert("Retry-After", HeaderValue::from(secs));
        resp
    }

    /// Wraps `router` so every request first takes a token.
    pub fn layer<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        let t = self.clone();
        router.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let t = t.clone();
            async move {
                match t.take() {
                    Ok(()) => next.run(req).await,
                    Err(wait) => Throttle::too_many(wait),
                }
            }
        }))
    }
}

/// A fake server running on a loopback port. Dropping it stops the server.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `router` on `127.0.0.1:0` from a thread of its own with a two-worker runtime.
pub fn serve(router: Router) -> Running {
    serve_on(router, "127.0.0.1:0".parse().expect("loopback address"))
}

/// Serves `router` on `addr` (port 0 for any free port).
pub fn serve_on(router: Router, addr: SocketAddr) -> Running {
    spawn_task_on(addr, move |listener| async move {
        axum::serve(listener, router).await.expect("fake server");
    })
}

/// Runs `task` with a listener bound to a free loopback port, on a thread of its own with a
/// two-worker runtime, until the returned [`Running`] is dropped.
pub fn spawn_task<F, Fut>(task: F) -> Running
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    spawn_task_on("127.0.0.1:0".parse().expect("loopback address"), task)
}

fn spawn_task_on<F, Fut>(addr: SocketAddr, task: F) -> Running
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("fake-{addr}"))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("fake server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.expect("bind fake server");
                addr_tx.send(listener.local_addr().expect("local address")).expect("report address");
                tokio::select! {
                    _ = task(listener) => {}
                    _ = shutdown_rx => {}
                }
            });
            // Dropping the runtime here cancels the connections still being served.
        })
        .expect("spawn fake server thread");
    let addr = addr_rx.recv().expect("fake server started");
    Running { addr, shutdown: Some(shutdown_tx), thread: Some(thread) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_refuses_over_the_rate_and_says_how_long() {
        let t = Throttle::new(1.0, 2);
        assert!(t.take().is_ok());
        assert!(t.take().is_ok());
        let wait = t.take().expect_err("third request within the burst window is refused");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert_eq!(t.rejected(), 1);
    }
}
