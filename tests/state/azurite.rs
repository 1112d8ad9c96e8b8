//! A real Azure Storage emulator (Azurite's `azurite-blob`, from npm, pinned and installed by
//! `cargo xtask test`, which exports KEYWARD_AZURITE_BLOB) for one test: started on a free
//! loopback port with a throwaway data folder, one storage account whose name and key are made
//! at test time (passed in `AZURITE_ACCOUNTS`, so neither the emulator's well-known development
//! key nor any other key is ever written down), telemetry off, and killed on drop.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// The `azurite-blob` executable that `cargo xtask test` installed.
pub fn azurite_blob() -> PathBuf {
    match std::env::var_os("KEYWARD_AZURITE_BLOB").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "KEYWARD_AZURITE_BLOB is not set: this test needs the real Azure Storage emulator, Azurite. \
             Run `cargo xtask test`, which installs it and sets the variable, or set it to the path of an \
             azurite-blob executable (e.g. target/peers/azurite/node_modules/.bin/azurite-blob)."
        ),
    }
}

/// `n` random bytes from the system's source.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("randomness");
    b
}

/// A storage account key made now: 64 random bytes, base64, as Azure's keys are.
pub fn random_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(random_bytes(64))
}

pub struct Azurite {
    child: Child,
    pub port: u16,
    pub account: String,
    /// The account key (base64), made for this run.
    pub key: String,
    log: PathBuf,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// Waits until the emulator answers HTTP (any status: an unsigned request is refused).
fn wait_ready(child: &mut Child, port: u16, log: &Path, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default()));
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!("GET /probe?comp=list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
            let mut raw = Vec::new();
            if s.write_all(req.as_bytes()).is_ok() && s.read_to_end(&mut raw).is_ok() && raw.starts_with(b"HTTP/1.1 ") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after {timeout:?}: {}", std::fs::read_to_string(log).unwrap_or_default()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Azurite {
    pub fn start() -> Azurite {
        let exe = azurite_blob();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let suffix: String = random_bytes(5).iter().map(|b| format!("{b:02x}")).collect();
        let account = format!("kw{suffix}");
        let key = random_key();
        let mut last_error = String::new();
        // Another process may take the port between our probe and the emulator's bind: retry.
        for attempt in 0..5 {
            let port = free_port();
            let log = dir.path().join(format!("azurite-{attempt}.log"));
            let out = File::create(&log).unwrap();
            let data = dir.path().join(format!("data-{attempt}"));
            std::fs::create_dir_all(&data).unwrap();
            let mut cmd = Command::new(&exe);
            cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--disableTelemetry", "--location"])
                .arg(&data);
            // KEYWARD_AZURITE_DEBUG=DIR keeps the emulator's debug log (every request, and the
            // string it signed) in DIR, for a failing test.
            if let Some(debug) = std::env::var_os("KEYWARD_AZURITE_DEBUG") {
                std::fs::create_dir_all(&debug).unwrap();
                cmd.arg("--debug").arg(Path::new(&debug).join(format!("{account}-{attempt}.log")));
            }
            let mut child = cmd
                .env("AZURITE_ACCOUNTS", format!("{account}:{key}"))
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start azurite-blob ({}): {e}", exe.display()));
            match wait_ready(&mut child, port, &log, Duration::from_secs(60)) {
                Ok(()) => return Azurite { child, port, account, key, log, dir },
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        panic!("azurite-blob did not start: {last_error}");
    }

    /// `http://127.0.0.1:PORT/ACCOUNT/CONTAINER`.
    pub fn container_url(&self, container: &str) -> String {
        format!("http://127.0.0.1:{}/{}/{container}", self.port, self.account)
    }

    /// The same container through another address (a proxy in front of the emulator).
    pub fn container_url_via(&self, addr: std::net::SocketAddr, container: &str) -> String {
        format!("http://{addr}/{}/{container}", self.account)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    /// What the emulator printed (its access log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An account SAS (version 2019-12-12, as "Create an account SAS" documents it) for the
    /// blob service, valid until 2099, with permissions `sp`.
    pub fn account_sas(&self, sp: &str) -> String {
        let (ss, srt, se, spr, sv) = ("b", "sco", "2099-01-01T00:00:00Z", "https,http", "2019-12-12");
        let to_sign = format!("{}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n{spr}\n{sv}\n", self.account);
        let key = base64::engine::general_purpose::STANDARD.decode(&self.key).unwrap();
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let sig = base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&k, to_sign.as_bytes()).as_ref());
        let sig = percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC);
        format!("sv={sv}&ss={ss}&srt={srt}&sp={sp}&se={se}&spr={spr}&sig={sig}")
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
