//! What every case of the detection benchmark shares: `keyward watch --interval 5s` on a
//! configuration with one target, waited for until its checks read through the target's feed,
//! then a series of changes made outside keyward, each timed from the change to its alert line
//! on `watch`'s output, beside the `keyward_detection_latency_seconds` that `watch` reports.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{http_get, sample};

/// The interval every case watches at.
pub const INTERVAL: &str = "5s";

/// One change made outside keyward: what it is (for the table), the parts its alert line
/// contains, and how to make it.
pub struct Change<'a> {
    pub label: String,
    pub alert: Vec<String>,
    pub make: Box<dyn FnMut() + 'a>,
}

impl<'a> Change<'a> {
    pub fn new(label: impl Into<String>, alert: &[&str], make: impl FnMut() + 'a) -> Self {
        Change { label: label.into(), alert: alert.iter().map(|s| s.to_string()).collect(), make: Box::new(make) }
    }
}

/// A case: the `keyward` command (environment and working folder set, no arguments yet), the
/// configuration folder, the target it watches, and the changes to make.
pub struct Case<'a> {
    /// What is watched, with its sizes, for the table's heading.
    pub title: String,
    pub command: Command,
    pub dir: std::path::PathBuf,
    pub target: String,
    /// Extra arguments to `watch` (`--target NAME` where the configuration has others).
    pub extra: Vec<String>,
    pub changes: Vec<Change<'a>>,
}

/// What one change measured.
pub struct Measured {
    pub label: String,
    pub pause: Duration,
    pub alerted: f64,
    pub reported: f64,
    pub attributed: f64,
    pub requests: f64,
}

/// The figures of one case, for the summary.
pub struct Summary {
    pub title: String,
    pub rows: Vec<Measured>,
    /// From `watch`'s start to its checks reading through the feed (the first, full read and
    /// the first round of the feed).
    pub first_check: Duration,
}

fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// `watch`'s metrics, or `None` when it does not answer within a minute (a first full read of
/// a large target can keep it busy).
fn metrics(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `watch` on the case, makes its changes and prints its table; returns its figures.
pub fn measure(mut case: Case<'_>) -> Summary {
    let series = |name: &str| format!("{name}{{target=\"{}\"}}", case.target);
    let incremental = format!("keyward_read_mode{{target=\"{}\",mode=\"incremental\"}}", case.target);
    let dir = case.dir.to_str().unwrap().to_string();
    let mut args = vec!["watch", &dir, "--interval", INTERVAL, "--listen", "127.0.0.1:0"];
    args.extend(case.extra.iter().map(String::as_str));
    let started = Instant::now();
    let mut child = case.command.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let errs = lines(child.stderr.take().unwrap());
    let outs = lines(child.stdout.take().unwrap());
    let mut log = Vec::new();
    let addr = loop {
        let line = errs.recv_timeout(Duration::from_secs(120)).expect("watch announces its address");
        if let Some(rest) = line.split_once("serving http://") {
            break rest.1.split('/').next().unwrap().to_string();
        }
        log.push(line);
    };
    // The first check reads in full; the case starts once checks read through the feed.
    let deadline = Instant::now() + Duration::from_secs(600);
    while metrics(&addr).and_then(|m| sample(&m, &incremental)) != Some(1.0) {
        if Instant::now() > deadline {
            log.extend(errs.try_iter());
            panic!("watch never read {} through its feed:\n{}", case.target, log.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let first_check = started.elapsed();
    // Notes printed once (accounts keyward does not manage, say) are not alerts.
    let early: Vec<String> = outs.try_iter().filter(|l| !l.starts_with("note: ")).collect();
    assert!(early.is_empty(), "no drift before the changes: {early:#?}");

    println!("\n== `keyward watch --interval {INTERVAL}`: {}", case.title);
    println!(
        "| change | pause before it | change to alert (stdout) | keyward_detection_latency_seconds | attributed | requests of the check |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (k, change) in case.changes.iter_mut().enumerate() {
        // Pauses of 0.7 s more each time after the last alert (which follows a check), so the
        // changes fall at different points of the interval.
        let pause = Duration::from_millis(700 * k as u64 % 5000);
        std::thread::sleep(pause);
        let before = sample(&http_get(&addr, "/metrics"), &series("keyward_detection_latency_seconds"));
        let changed = Instant::now();
        (change.make)();
        let deadline = changed + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = outs.recv_timeout(left) else {
                log.extend(errs.try_iter());
                panic!("{}: no alert naming {:?} within 120 s:\n{}", change.label, change.alert, log.join("\n"));
            };
            if change.alert.iter().all(|p| line.contains(p.as_str())) {
                break;
            }
        }
        let alerted = changed.elapsed().as_secs_f64();
        // `watch` prints the alert before it publishes its latency: wait (up to 2 s) for the
        // figure to move from what it was before the change.
        let published = Instant::now() + Duration::from_secs(2);
        let m = loop {
            let m = http_get(&addr, "/metrics");
            let now = sample(&m, &series("keyward_detection_latency_seconds"));
            if (now.is_some() && now != before) || Instant::now() > published {
                break m;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let get = |name: &str| sample(&m, &series(name)).unwrap_or(f64::NAN);
        let row = Measured {
            label: change.label.clone(),
            pause,
            alerted,
            reported: get("keyward_detection_latency_seconds"),
            attributed: get("keyward_detection_latency_attributed"),
            requests: get("keyward_read_requests"),
        };
        println!(
            "| {} | {:.1} s | {:.2} s | {:.2} s | {} | {} |",
            row.label,
            row.pause.as_secs_f64(),
            row.alerted,
            row.reported,
            row.attributed,
            row.requests
        );
        rows.push(row);
    }
    let seen: Vec<f64> = rows.iter().map(|r| r.alerted).collect();
    let (low, high) = seen.iter().fold((f64::INFINITY, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
    println!(
        "\nmedian over {} changes: {:.2} s from change to alert (range {low:.2} to {high:.2} s); {:.2} s reported by watch; first (full) check done {:.1} s after start",
        rows.len(),
        median(seen),
        median(rows.iter().map(|r| r.reported).collect()),
        first_check.as_secs_f64()
    );
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    Summary { title: case.title, rows, first_check }
}
