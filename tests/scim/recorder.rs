//! A recording proxy in front of a real SCIM server: every request keyward sends passes
//! through it unchanged (one connection per request), and its method, path with query, and
//! JSON body are kept for the test to read. The servers' own logs hold no bodies.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// One request as keyward sent it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path with its query.
    pub target: String,
    pub body: Option<Value>,
}

pub struct Recorder {
    pub port: u16,
    seen: Arc<Mutex<Vec<Recorded>>>,
    /// While set, a `filter` on `meta.lastModified` is dropped from the query before it is
    /// forwarded: the service then answers as one that ignores the filter.
    pub drop_stamp_filter: Arc<AtomicBool>,
}

impl Recorder {
    /// Listens on a free loopback port and forwards to `upstream_port` on loopback.
    pub fn start(upstream_port: u16) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let drop_stamp_filter = Arc::new(AtomicBool::new(false));
        let drop = drop_stamp_filter.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                let drop = drop.load(Ordering::Relaxed);
                std::thread::spawn(move || forward(stream, upstream_port, &log, drop));
            }
        });
        Recorder { port, seen, drop_stamp_filter }
    }

    /// The base URL keyward is given.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

/// `target` without its `filter` on `meta.lastModified`.
fn without_stamp_filter(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else { return target.to_string() };
    let kept: Vec<&str> = query.split('&').filter(|p| !p.starts_with("filter=meta.lastModified")).collect();
    format!("{path}?{}", kept.join("&"))
}

fn forward(mut client: TcpStream, upstream_port: u16, log: &Mutex<Vec<Recorded>>, drop_stamp_filter: bool) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap_or(0);
        }
        if !name.eq_ignore_ascii_case("connection") {
            headers.push(line.trim_end().to_string());
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    log.lock().unwrap().push(Recorded { method, target, body: serde_json::from_slice(&body).ok() });
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port)).unwrap();
    let mut head = if drop_stamp_filter {
        let mut parts = request_line.split_whitespace();
        let (m, t, v) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or("HTTP/1.1"));
        format!("{m} {} {v}\r\n", without_stamp_filter(t))
    } else {
        request_line.trim_end().to_string() + "\r\n"
    };
    for h in headers {
        head.push_str(&h);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes()).unwrap();
    upstream.write_all(&body).unwrap();
    let mut answer = Vec::new();
    let _ = upstream.read_to_end(&mut answer);
    let _ = client.write_all(&answer);
    let _ = client.shutdown(std::net::Shutdown::Both);
}
