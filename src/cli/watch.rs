//! `keyward watch`: the drift check, run continuously.
//!
//! Guarantees:
//! - each drift item (address and action) is alerted once while it lasts; an item that was
//!   resolved and comes back is alerted again; an alert that could not be sent is retried at
//!   the next check; likewise each pinned role whose live contents left its snapshot
//!   (`contents.pinned-drift`, read and compared as `drift` does), by the role's address;
//! - a failing check is alerted once, when checks start failing, and never stops the loop: the
//!   configuration is read afresh at every check;
//! - `/metrics` serves the same OpenMetrics text as `keyward drift --metrics-file`; `/healthz`
//!   answers 200 while the last check succeeded within twice the interval (plus a minute), 503
//!   otherwise; `/` serves the report page of the last successful check (`keyward report`),
//!   read-only;
//! - the HTTP responder reads at most [`MAX_REQUEST_BYTES`] of a request, gives each
//!   connection [`IO_TIMEOUT`], keeps at most [`MAX_CONNECTIONS`] open, and closes every
//!   connection after one answer; a new connection is always accepted, closing the oldest
//!   open one when all are taken (preferring one that has not sent its request yet), so idle
//!   connections cannot stall `/healthz`;
//! - each notice of the check (what another directory masters, ...) is printed once while it
//!   lasts;
//! - SIGTERM or SIGINT stops the loop and the responder cleanly (exit 0);
//! - the live state of each target is held between checks: a target with a change feed
//!   (Microsoft Graph) is read through it, in full at the first check, when the feed must start
//!   again, and every `--resync` (see [`crate::engine::feed`]); `/metrics` says per target how
//!   it was read.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::console::Console;
use super::{CliResult, Context, Exit, Failure, WatchArgs};
use crate::engine::drift::{self, DriftSettings, Webhook};
use crate::engine::feed::Feeds;
use crate::engine::latency;
use crate::engine::{Clock, EngineError};
use crate::model::Timestamp;
use crate::model::escape::Term;
use crate::output::Printer;
use crate::output::metrics::{self, DetectionLatency, DriftMetrics};
use crate::plan::Action;

/// The largest request head the responder reads.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a connection may take to send its request and read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once; a new one closes the oldest.
pub const MAX_CONNECTIONS: usize = 32;

/// What the responder shows.
struct Shared {
    metrics: DriftMetrics,
    /// The report page of the last successful check.
    page: Option<String>,
    last_success: Option<Instant>,
    healthy_within: Duration,
}

impl Shared {
    fn healthy(&self) -> bool {
        self.metrics.up && self.last_success.is_some_and(|t| t.elapsed() <= self.healthy_within)
    }
}

type State = Arc<Mutex<Shared>>;

pub async fn run(args: WatchArgs, ctx: Context, printer: &Printer) -> CliResult {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::error(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr().map_err(|e| Failure::error(format!("cannot listen on {}: {e}", args.listen)))?;
    let state: State = Arc::new(Mutex::new(Shared {
        metrics: DriftMetrics { horizon_days: drift::EXPIRY_HORIZON_DAYS, ..Default::default() },
        page: None,
        last_success: None,
        healthy_within: args.interval * 2 + Duration::from_secs(60),
    }));
    let server = tokio::spawn(serve(listener, state.clone()));

    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::error(format!("cannot handle SIGTERM: {e}")))?;
    let stop = async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::pin!(stop);

    printer.err(&format!(
        "keyward watch: checking {} every {:?} (targets with a change feed read in full every {:?}); serving http://{addr}/ (the report), http://{addr}/metrics and http://{addr}/healthz\n",
        args.dir.display(),
        args.interval,
        args.resync
    ));
    let console = Console::deduplicating(printer);
    let mut watcher = Watcher {
        alerted: BTreeSet::new(),
        contents_alerted: BTreeSet::new(),
        noticed: BTreeSet::new(),
        failing: false,
        webhook: None,
        feeds: Feeds::new(args.resync),
        checked_from: None,
        latency: BTreeMap::new(),
    };
    loop {
        tokio::select! {
            _ = watcher.once(&args, ctx, &state, &console) => {}
            _ = &mut stop => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = &mut stop => break,
        }
    }
    server.abort();
    printer.err("keyward watch: stopped\n");
    Ok(Exit::Success)
}

/// What the loop remembers between checks.
struct Watcher {
    /// Notices already printed (what another directory masters, ...): each once while it lasts.
    noticed: BTreeSet<String>,
    /// Drift items already alerted, by address and action.
    alerted: BTreeSet<(String, Action)>,
    /// Pinned roles whose changed contents were already alerted, by address.
    contents_alerted: BTreeSet<String>,
    /// Whether the last check failed (a failure is alerted when checks start failing).
    failing: bool,
    /// The last webhook resolved, to alert a failure to read the configuration.
    webhook: Option<Arc<Webhook>>,
    /// The live states held between checks.
    feeds: Feeds,
    /// When the last successful check started: a change alerted by the next check was made
    /// after it (the bound of an unattributed detection latency).
    checked_from: Option<Timestamp>,
    /// The detection latency of the last drift item alerted, by target.
    latency: BTreeMap<String, DetectionLatency>,
}

impl Watcher {
    async fn once(&mut self, args: &WatchArgs, ctx: Context, state: &State, console: &Console<'_>) {
        let printer = console.printer;
        match self.check(args, ctx, console).await {
            Ok((m, page, new_items)) => {
                if self.failing {
                    printer.err("keyward watch: the drift check succeeds again\n");
                }
                self.failing = false;
                let mut s = state.lock().expect("the state lock is never poisoned");
                s.metrics = m;
                s.page = Some(page);
                s.last_success = Some(Instant::now());
                drop(s);
                if new_items > 0 {
                    tracing::info!(new_items, "alerted new drift");
                }
            }
            Err(f) => {
                printer.err(&format!("keyward watch: the drift check failed: {}\n", Term(&f.message)));
                state.lock().expect("the state lock is never poisoned").metrics.up = false;
                if !self.failing
                    && let Some(w) = &self.webhook
                    && let Err(e) = w.post(&drift::failure_text(&args.dir, &f.message)).await
                {
                    printer.err(&format!("keyward watch: {e}\n"));
                }
                self.failing = true;
            }
        }
    }

    /// One check, with the clock read afresh; alerts the drift items not alerted yet. Returns
    /// the metrics and how many items were new.
    async fn check(
        &mut self,
        args: &WatchArgs,
        ctx: Context,
        console: &Console<'_>,
    ) -> Result<(DriftMetrics, String, usize), Failure> {
        let printer = console.printer;
        let started = chrono::Utc::now();
        let settings = DriftSettings {
            dir: args.dir.clone(),
            clock: Clock::from_env(),
            retry: ctx.retry,
            targets: args.targets.clone(),
        };
        let attempt = drift::check_fed(&settings, console, &mut self.feeds).await?;
        self.webhook = Webhook::from_config(&attempt.config, &args.dir).map_err(EngineError::from)?.map(Arc::new);
        let checked = attempt.checked?;
        let plan = &checked.plan;
        let current: BTreeSet<(String, Action)> =
            plan.changes.iter().map(|c| (c.address.to_string(), c.action)).collect();
        // A resolved item may alert again later.
        self.alerted.retain(|k| current.contains(k));
        let notices: BTreeSet<String> = plan.notices.iter().map(|n| n.message.clone()).collect();
        for message in notices.difference(&self.noticed) {
            printer.out(&format!("note: {}\n", Term(message)));
        }
        self.noticed = notices;
        let new: Vec<&crate::plan::Change> =
            plan.changes.iter().filter(|c| !self.alerted.contains(&(c.address.to_string(), c.action))).collect();
        if !new.is_empty() {
            for c in &new {
                printer.out(&format!(
                    "drift: {} {} ({}: {})\n",
                    c.action,
                    Term(&c.address),
                    c.reason.kind,
                    Term(&c.reason.why)
                ));
            }
            let sent = match &self.webhook {
                Some(w) => match w.post(&drift::alert_text(&args.dir, &new)).await {
                    Ok(()) => true,
                    Err(e) => {
                        printer.err(&format!("keyward watch: {e} (will retry at the next check)\n"));
                        false
                    }
                },
                None => true,
            };
            if sent {
                self.alerted.extend(new.iter().map(|c| (c.address.to_string(), c.action)));
                self.latency.extend(latency::latencies(&new, chrono::Utc::now(), self.checked_from));
            }
        }
        self.checked_from = Some(started);
        let new = new.len() + self.alert_contents(args, console, &checked.contents).await;
        let mut metrics = checked.metrics.clone();
        metrics.detection_latency = self.latency.clone();
        let page = crate::engine::evidence::watch_page(attempt.config, &args.dir, settings.clock, checked)
            .await
            .map_err(Failure::from)?;
        Ok((metrics, page, new))
    }
}

impl Watcher {
    /// Prints and alerts the pinned roles whose live contents left their snapshot (what
    /// `drift` reports from the same check), each once while it lasts. Returns how many were
    /// new.
    async fn alert_contents(
        &mut self,
        args: &WatchArgs,
        console: &Console<'_>,
        contents: &[crate::policy::Finding],
    ) -> usize {
        let printer = console.printer;
        let current: BTreeSet<&str> = contents.iter().map(|f| f.address.as_str()).collect();
        // A role whose contents went back to its snapshot may alert again later.
        self.contents_alerted.retain(|a| current.contains(a.as_str()));
        let new: Vec<crate::policy::Finding> =
            contents.iter().filter(|f| !self.contents_alerted.contains(&f.address)).cloned().collect();
        if new.is_empty() {
            return 0;
        }
        for f in &new {
            printer.out(&format!(
                "drift: contents of {} changed outside git: {}\n",
                Term(&f.address),
                Term(&f.message)
            ));
        }
        let sent = match &self.webhook {
            Some(w) => match w.post(&drift::contents_alert_text(&args.dir, &new)).await {
                Ok(()) => true,
                Err(e) => {
                    printer.err(&format!("keyward watch: {e} (will retry at the next check)\n"));
                    false
                }
            },
            None => true,
        };
        if sent {
            self.contents_alerted.extend(new.iter().map(|f| f.address.clone()));
        }
        new.len()
    }
}

/// An open connection: its task, and whether it is still waiting for its request.
struct Open {
    task: tokio::task::AbortHandle,
    reading: Arc<AtomicBool>,
}

async fn serve(listener: TcpListener, state: State) {
    let mut open: VecDeque<Open> = VecDeque::new();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                open.retain(|c| !c.task.is_finished());
                if open.len() >= MAX_CONNECTIONS {
                    let oldest = open.iter().position(|c| c.reading.load(Ordering::Relaxed)).unwrap_or(0);
                    if let Some(c) = open.remove(oldest) {
                        c.task.abort();
                        tracing::debug!("closed the oldest connection to accept a new one");
                    }
                }
                let state = state.clone();
                let reading = Arc::new(AtomicBool::new(true));
                let flag = reading.clone();
                let task = tokio::spawn(async move {
                    if tokio::time::timeout(IO_TIMEOUT, answer(stream, &state, &flag)).await.is_err() {
                        tracing::debug!(%peer, "closed a slow connection");
                    }
                });
                open.push_back(Open { task: task.abort_handle(), reading });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request head and answers it; clears `reading` once the head is read.
async fn answer(mut stream: TcpStream, state: &State, reading: &AtomicBool) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let complete = loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if buf.len() >= MAX_REQUEST_BYTES {
            break false;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break !buf.is_empty() && buf.contains(&b'\n'),
            Ok(n) => buf.extend_from_slice(&chunk[..n.min(MAX_REQUEST_BYTES - buf.len())]),
        }
    };
    reading.store(false, Ordering::Relaxed);
    let (status, content_type, body, head_only) = if !complete {
        (431, "text/plain; charset=utf-8", "request header too large\n".to_string(), false)
    } else {
        route(&buf, state)
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !head_only {
        response.push_str(&body);
    }
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Read what the client still sends (bounded), so closing does not reset the connection
    // before it has read the answer.
    let mut drained = 0;
    while drained < 64 * 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn route(request: &[u8], state: &State) -> (u16, &'static str, String, bool) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let head = String::from_utf8_lossy(request);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return (400, TEXT, "bad request\n".into(), false);
    };
    if !version.starts_with("HTTP/1.") {
        return (400, TEXT, "bad request\n".into(), false);
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return (405, TEXT, "method not allowed\n".into(), false);
    }
    let path = target.split('?').next().unwrap_or(target);
    let s = state.lock().expect("the state lock is never poisoned");
    match path {
        "/" => match &s.page {
            Some(page) => (200, "text/html; charset=utf-8", page.clone(), head_only),
            None => {
                (503, TEXT, "no drift check has succeeded yet; the report follows the first one\n".into(), head_only)
            }
        },
        "/metrics" => (200, metrics::CONTENT_TYPE, metrics::render(&s.metrics), head_only),
        "/healthz" if s.healthy() => (200, TEXT, "ok\n".into(), head_only),
        "/healthz" => (503, TEXT, "the last drift check did not succeed recently\n".into(), head_only),
        _ => (404, TEXT, "not found: try /, /metrics or /healthz\n".into(), head_only),
    }
}

/// The default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// Parses an interval: a whole number and a unit, `ms`, `s`, `m` or `h` (`5m`, `30s`).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not an interval such as 30s, 5m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?} is not an interval such as 30s, 5m or 1h (units: ms, s, m, h)")),
    };
    if d.is_zero() {
        return Err("the interval must be longer than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(up: bool) -> State {
        Arc::new(Mutex::new(Shared {
            metrics: DriftMetrics { up, ..Default::default() },
            page: up.then(|| "<!DOCTYPE html><title>report</title>".to_string()),
            last_success: up.then(Instant::now),
            healthy_within: Duration::from_secs(60),
        }))
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("1ms"), Ok(Duration::from_millis(1)), "the shortest interval");
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)), "--resync's default");
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5").is_err());
        assert!(parse_interval("m").is_err());
    }

    #[test]
    fn routes() {
        let ok = state(true);
        assert_eq!(route(b"GET /healthz HTTP/1.1\r\n\r\n", &ok).0, 200);
        assert_eq!(route(b"GET /healthz HTTP/1.1\r\n\r\n", &state(false)).0, 503);
        let (status, content_type, body, head_only) = route(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", &ok);
        assert_eq!((status, content_type, head_only), (200, metrics::CONTENT_TYPE, false));
        assert!(body.ends_with("# EOF\n"));
        assert!(route(b"HEAD /metrics HTTP/1.0\r\n\r\n", &ok).3);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n", &ok).0, 405);
        assert_eq!(route(b"GET /other HTTP/1.1\r\n\r\n", &ok).0, 404);
        let (status, content_type, body, _) = route(b"GET / HTTP/1.1\r\n\r\n", &ok);
        assert_eq!((status, content_type), (200, "text/html; charset=utf-8"));
        assert!(body.starts_with("<!DOCTYPE html>"));
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n", &state(false)).0, 503);
        assert_eq!(route(b"garbage\r\n\r\n", &ok).0, 400);
        assert_eq!(route(b"GET / SMTP\r\n\r\n", &ok).0, 400);
    }

    #[tokio::test]
    async fn oversized_requests_are_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, state(true)));
        let mut s = TcpStream::connect(addr).await.unwrap();
        let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_REQUEST_BYTES));
        let _ = s.write_all(big.as_bytes()).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431 "));
    }

    /// Many more idle connections than [`MAX_CONNECTIONS`], opened first, do not keep
    /// `/healthz` from answering.
    #[tokio::test]
    async fn idle_connections_do_not_stall_healthz() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, state(true)));
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS * 3 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let health = async {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            out
        };
        let out = tokio::time::timeout(Duration::from_secs(10), health).await.expect("/healthz answers");
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&out));
        drop(idle);
    }
}
