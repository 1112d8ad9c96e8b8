//! A fault-injecting HTTP/1.1 proxy for loopback servers (scim2-server, the fakes).
//!
//! Each request is forwarded to the upstream unless the seeded schedule picks a fault for it:
//!
//! | fault            | what the client sees                             | did the upstream act? |
//! |------------------|--------------------------------------------------|-----------------------|
//! | `error_before`   | `500` with a JSON error body                     | no                    |
//! | `error_after`    | `500`, although the upstream answered            | yes                   |
//! | `throttle`       | a burst of `429` with `Retry-After: 1`           | no                    |
//! | `reset_before`   | the connection reset (RST) before any response   | no                    |
//! | `reset_after`    | the connection reset after the upstream answered | yes                   |
//! | `hang_after`     | no answer for `hang`, then a reset               | yes                   |
//!
//! The "after" faults are the hard ones: the change happened but the client cannot know, so a
//! correct client must neither report success nor, on its next run, do the change twice.
//!
//! The proxy speaks just enough HTTP/1.1 for a client like reqwest: one request per connection
//! (it answers with `Connection: close`), bodies sized by `Content-Length`. Every decision is
//! counted in [`FaultStats`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How often each fault happens, as a probability per request, and the schedule's seed.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub seed: u64,
    pub error_before: f64,
    pub error_after: f64,
    /// Probability that a request starts a burst of `throttle_burst` 429 answers.
    pub throttle: f64,
    pub throttle_burst: u32,
    pub reset_before: f64,
    pub reset_after: f64,
    pub hang_after: f64,
    pub hang: Duration,
}

impl FaultPlan {
    /// No faults: a plain proxy.
    pub fn none() -> Self {
        FaultPlan {
            seed: 1,
            error_before: 0.0,
            error_after: 0.0,
            throttle: 0.0,
            throttle_burst: 0,
            reset_before: 0.0,
            reset_after: 0.0,
            hang_after: 0.0,
            hang: Duration::ZERO,
        }
    }
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct FaultStats {
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    pub error_before: AtomicU64,
    pub error_after: AtomicU64,
    pub throttled: AtomicU64,
    pub reset_before: AtomicU64,
    pub reset_after: AtomicU64,
    pub hang_after: AtomicU64,
}

impl FaultStats {
    /// Every fault injected, of any kind.
    pub fn faults(&self) -> u64 {
        [
            &self.error_before,
            &self.error_after,
            &self.throttled,
            &self.reset_before,
            &self.reset_after,
            &self.hang_after,
        ]
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .sum()
    }

    pub fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "requests {}, forwarded {}, 500 before {}, 500 after {}, 429 {}, reset before {}, reset after {}, hang {}",
            g(&self.requests),
            g(&self.forwarded),
            g(&self.error_before),
            g(&self.error_after),
            g(&self.throttled),
            g(&self.reset_before),
            g(&self.reset_after),
            g(&self.hang_after)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    ErrorBefore,
    ErrorAfter,
    Throttle,
    ResetBefore,
    ResetAfter,
    HangAfter,
}

struct Shared {
    plan: std::sync::Mutex<FaultPlan>,
    upstream: SocketAddr,
    stats: Arc<FaultStats>,
    state: std::sync::Mutex<Schedule>,
}

struct Schedule {
    rng: u64,
    burst_left: u32,
}

impl Schedule {
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Shared {
    fn decide(&self) -> Fault {
        let plan = self.plan.lock().expect("fault plan").clone();
        let mut s = self.state.lock().expect("fault schedule");
        if s.burst_left > 0 {
            s.burst_left -= 1;
            return Fault::Throttle;
        }
        let u = s.next_unit();
        let mut edge = 0.0;
        for (p, fault) in [
            (plan.error_before, Fault::ErrorBefore),
            (plan.error_after, Fault::ErrorAfter),
            (plan.throttle, Fault::Throttle),
            (plan.reset_before, Fault::ResetBefore),
            (plan.reset_after, Fault::ResetAfter),
            (plan.hang_after, Fault::HangAfter),
        ] {
            edge += p;
            if u < edge {
                if fault == Fault::Throttle {
                    s.burst_left = plan.throttle_burst.saturating_sub(1);
                }
                return fault;
            }
        }
        Fault::None
    }
}

/// A running proxy. Dropping it stops it.
pub struct FaultProxy {
    pub addr: SocketAddr,
    pub stats: Arc<FaultStats>,
    shared: Arc<Shared>,
    _server: crate::Running,
}

impl FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the fault plan (for example with [`FaultPlan::none`] for a clean final run).
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.shared.plan.lock().expect("fault plan") = plan;
    }
}

/// Starts a proxy on a loopback port in front of `upstream`.
pub fn start(upstream: SocketAddr, plan: FaultPlan) -> FaultProxy {
    let stats = Arc::new(FaultStats::default());
    let shared = Arc::new(Shared {
        state: std::sync::Mutex::new(Schedule { rng: plan.seed, burst_left: 0 }),
        plan: std::sync::Mutex::new(plan),
        upstream,
        stats: stats.clone(),
    });
    let s2 = shared.clone();
    let server = crate::spawn_task(move |listener: TcpListener| async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else { continue };
            let s = s2.clone();
            tokio::spawn(async move {
                let _ = handle(s, conn).await;
            });
        }
    });
    FaultProxy { addr: server.addr, stats, shared, _server: server }
}

/// Reads one HTTP/1.1 message head and its `Content-Length` body (none for the answer to a
/// `HEAD`, whose `Content-Length` is that of the resource). Returns the head lines and the
/// body, or `None` on EOF.
async fn read_message(
    conn: &mut TcpStream,
    until_eof: bool,
    head_only: bool,
) -> std::io::Result<Option<(Vec<String>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let lines: Vec<String> = head.split("\r\n").map(str::to_string).collect();
    let length = lines.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
    });
    let mut body = buf[head_end + 4..].to_vec();
    if head_only {
        return Ok(Some((lines, Vec::new())));
    }
    match length {
        Some(n) => {
            while body.len() < n {
                let k = conn.read(&mut chunk).await?;
                if k == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..k]);
            }
            body.truncate(n);
        }
        None if until_eof => {
            conn.read_to_end(&mut body).await?;
        }
        None => {}
    }
    Ok(Some((lines, body)))
}

fn serialize(lines: &[String], body: &[u8], close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 512);
    for (i, l) in lines.iter().enumerate() {
        let lower = l.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("keep-alive:")) {
            continue;
        }
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn canned(status: u16, reason: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn reset(conn: TcpStream) {
    // Linger 0 makes close send RST instead of FIN: the client sees "connection reset". A zero
    // linger never blocks the thread, which is what the deprecation warns about.
    #[allow(deprecated)]
    let _ = conn.set_linger(Some(Duration::ZERO));
    drop(conn);
}

async fn forward(shared: &Shared, lines: &[String], body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(shared.upstream).await?;
    // The Host header is passed on unchanged, as a transparent proxy does: services that check
    // the audience of a token against the host they were called by see the client's view.
    up.write_all(&serialize(lines, body, true)).await?;
    let head = lines.first().is_some_and(|l| l.starts_with("HEAD "));
    let Some((resp_lines, resp_body)) = read_message(&mut up, true, head).await? else {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "upstream closed without answering"));
    };
    shared.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    if head {
        // The answer to a HEAD has no body; its Content-Length describes the resource.
        return Ok(serialize(&resp_lines, &[], true));
    }
    // Re-frame the body with an exact Content-Length.
    let mut out_lines: Vec<String> = resp_lines
        .into_iter()
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            !lower.starts_with("content-length:") && !lower.starts_with("transfer-encoding:")
        })
        .collect();
    out_lines.push(format!("Content-Length: {}", resp_body.len()));
    Ok(serialize(&out_lines, &resp_body, true))
}

async fn handle(shared: Arc<Shared>, mut conn: TcpStream) -> std::io::Result<()> {
    let Some((lines, body)) = read_message(&mut conn, false, false).await? else { return Ok(()) };
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let fault = shared.decide();
    let stats = &shared.stats;
    let error_body = r#"{"detail":"injected fault","status":"500"}"#;
    match fault {
        Fault::None => {
            let resp = forward(&shared, &lines, &body).await?;
            conn.write_all(&resp).await?;
        }
        Fault::ErrorBefore => {
            stats.error_before.fetch_add(1, Ordering::Relaxed);
            conn.write_all(&canned(500, "Internal Server Error", "", error_body)).await?;
        }
        Fault::ErrorAfter => {
            forward(&shared, &lines, &body).await?;
            stats.error_after.fetch_add(1, Ordering::Relaxed);
            conn.write_all(&canned(500, "Internal Server Error", "", error_body)).await?;
        }
        Fault::Throttle => {
            stats.throttled.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"detail":"too many requests","status":"429"}"#;
            conn.write_all(&canned(429, "Too Many Requests", "Retry-After: 1\r\n", body)).await?;
        }
        Fault::ResetBefore => {
            stats.reset_before.fetch_add(1, Ordering::Relaxed);
            reset(conn);
            return Ok(());
        }
        Fault::ResetAfter => {
            forward(&shared, &lines, &body).await?;
            stats.reset_after.fetch_add(1, Ordering::Relaxed);
            reset(conn);
            return Ok(());
        }
        Fault::HangAfter => {
            forward(&shared, &lines, &body).await?;
            stats.hang_after.fetch_add(1, Ordering::Relaxed);
            let hang = shared.plan.lock().expect("fault plan").hang;
            tokio::time::sleep(hang).await;
            reset(conn);
            return Ok(());
        }
    }
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;

    fn get(addr: SocketAddr, body: &str) -> Result<String, String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn forwards_and_injects_each_fault_on_schedule() {
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let app = Router::new().route(
            "/echo",
            post(move |body: String| {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::Relaxed);
                    format!("echo:{body}")
                }
            }),
        );
        let upstream = crate::serve(app);
        let proxy = start(upstream.addr, FaultPlan::none());
        let out = get(proxy.addr, "hello").unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.ends_with("echo:hello"), "{out}");

        proxy.set_plan(FaultPlan { error_after: 1.0, ..FaultPlan::none() });
        let out = get(proxy.addr, "x").unwrap();
        assert!(out.starts_with("HTTP/1.1 500"), "{out}");
        assert_eq!(hits.load(Ordering::Relaxed), 2, "an error-after fault reaches the upstream");

        proxy.set_plan(FaultPlan { error_before: 1.0, ..FaultPlan::none() });
        assert!(get(proxy.addr, "x").unwrap().starts_with("HTTP/1.1 500"));
        assert_eq!(hits.load(Ordering::Relaxed), 2, "an error-before fault does not");

        proxy.set_plan(FaultPlan { throttle: 1.0, throttle_burst: 3, ..FaultPlan::none() });
        for _ in 0..3 {
            let out = get(proxy.addr, "x").unwrap();
            assert!(out.starts_with("HTTP/1.1 429") && out.contains("Retry-After: 1"), "{out}");
        }

        proxy.set_plan(FaultPlan { reset_after: 1.0, ..FaultPlan::none() });
        let before = hits.load(Ordering::Relaxed);
        let r = get(proxy.addr, "x");
        assert!(r.is_err() || r.as_deref() == Ok(""), "a reset gives no response: {r:?}");
        assert_eq!(hits.load(Ordering::Relaxed), before + 1);

        let s = &proxy.stats;
        assert_eq!(s.error_after.load(Ordering::Relaxed), 1);
        assert_eq!(s.error_before.load(Ordering::Relaxed), 1);
        assert_eq!(s.throttled.load(Ordering::Relaxed), 3);
        assert_eq!(s.reset_after.load(Ordering::Relaxed), 1);
        assert_eq!(s.faults(), 6);
    }

    /// The answer to a HEAD has no body, and its Content-Length is the resource's length (Blob
    /// Storage reports a blob's length so); the proxy passes it on instead of the empty body's.
    #[test]
    fn head_answers_keep_the_resources_length() {
        use std::io::{Read, Write};
        let app = Router::new().route("/blob", axum::routing::get(|| async { "0123456789" }));
        let upstream = crate::serve(app);
        let proxy = start(upstream.addr, FaultPlan::none());
        let mut s = std::net::TcpStream::connect(proxy.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"HEAD /blob HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.to_ascii_lowercase().contains("content-length: 10\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "a HEAD answer has no body: {out:?}");
    }

    #[test]
    fn the_schedule_is_reproducible_from_its_seed() {
        let plan = FaultPlan { seed: 42, error_before: 0.05, reset_after: 0.05, ..FaultPlan::none() };
        let run = || {
            let shared = Shared {
                state: std::sync::Mutex::new(Schedule { rng: plan.seed, burst_left: 0 }),
                plan: std::sync::Mutex::new(plan.clone()),
                upstream: "127.0.0.1:9".parse().unwrap(),
                stats: Arc::default(),
            };
            (0..1000).map(|_| shared.decide()).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let faults = a.iter().filter(|f| **f != Fault::None).count();
        assert!((50..=150).contains(&faults), "about 10% of 1000 requests: {faults}");
    }
}
