//! A recording proxy in front of a real SCIM server: every request keyward sends passes
//! through it unchanged (one connection per request), and its method, path with query, and
//! JSON body are kept for the test to read. The servers' own logs hold no bodies.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
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
}

impl Recorder {
    /// Listens on a free loopback port and forwards to `upstream_port` on loopback.
    pub fn start(upstream_port: u16) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || forward(stream, upstream_port, &log));
            }
        });
        Recorder { port, seen }
    }

    /// The base URL keyward is given.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

fn forward(mut client: TcpStream, upstream_port: u16, log: &Mutex<Vec<Recorded>>) {
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
    let mut head = request_line.trim_end().to_string() + "\r\n";
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
