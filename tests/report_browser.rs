//! The HTML report in a real browser: headless Chromium driven through ChromeDriver's W3C
//! WebDriver API (with the project's own HTTP client). The report of the quick start, after a
//! pull request was merged and applied, is opened from a file; every section must render, the
//! script must run under the page's Content-Security-Policy, filtering and sorting must work
//! by keyboard and by click, printing must break pages per section, and the page must make no
//! network request. Screenshots (desktop and A4 print) and the A4 PDF are kept under
//! `target/tmp/report-browser/` for people to look at; they are not committed.
//!
//! `cargo xtask test` installs Debian's `chromium` and `chromium-driver` and sets
//! `KEYWARD_CHROMIUM` and `KEYWARD_CHROMEDRIVER`; with `KEYWARD_PEERS=1` a missing browser is a
//! failure, otherwise the test says so and returns.
// A skipped run and the artifacts are reported on stderr, as test output.
#![allow(clippy::print_stderr)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::Sandbox;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn peer(var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("KEYWARD_PEERS").as_deref() != Ok("1"),
        "KEYWARD_PEERS=1 but {} is missing ({var}); cargo xtask test installs it",
        path.display()
    );
    eprintln!("skipping: {} is missing; run `cargo xtask test`, or set {var}", path.display());
    None
}

/// ChromeDriver and the browser it started; both are killed when dropped.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: Option<String>,
    browser_pid: Option<u32>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.browser_pid {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(chromedriver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            session: None,
            browser_pid: None,
        };
        let started = Instant::now();
        loop {
            if let Ok(r) = d.http.get(format!("{}/status", d.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        d
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = match &self.session {
            Some(id) => format!("{}/session/{id}{path}", self.base),
            None => format!("{}{path}", self.base),
        };
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{url}: {status}: {v}");
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn new_session(&mut self, chromium: &Path, profile: &Path) {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"performance": "ALL"},
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = self.post("/session", caps).await;
        self.session = Some(v["sessionId"].as_str().unwrap().to_string());
        self.browser_pid = v["capabilities"]["goog:processID"].as_u64().map(|p| p as u32);
    }

    async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []})).await
    }

    async fn find(&self, css: &str) -> String {
        let v = self.post("/element", json!({"using": "css selector", "value": css})).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/value"), json!({"text": text})).await;
    }

    /// Presses keys (WebDriver key codes) on whatever has the focus.
    async fn press(&self, keys: &[&str]) {
        let mut actions = Vec::new();
        for k in keys {
            actions.push(json!({"type": "keyDown", "value": k}));
            actions.push(json!({"type": "keyUp", "value": k}));
        }
        self.post("/actions", json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})).await;
    }

    /// The (document, URL) pairs of the requests made since the last call (Chromium's
    /// performance log).
    async fn requests(&self) -> Vec<(String, String)> {
        let log = self.post("/se/log", json!({"type": "performance"})).await;
        let mut out = Vec::new();
        for entry in log.as_array().unwrap() {
            let m: Value = serde_json::from_str(entry["message"].as_str().unwrap()).unwrap();
            if m["message"]["method"] == "Network.requestWillBeSent" {
                let p = &m["message"]["params"];
                let text = |v: &Value| v.as_str().unwrap_or("").to_string();
                out.push((text(&p["documentURL"]), text(&p["request"]["url"])));
            }
        }
        out
    }

    async fn screenshot(&self, path: &Path) {
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, bytes).unwrap();
    }

    async fn close(&mut self) {
        if self.session.is_some() {
            self.call(reqwest::Method::DELETE, "", None).await;
            self.session = None;
            self.browser_pid = None;
        }
    }
}

#[tokio::test]
#[ignore = "needs chromium: cargo xtask test"]
async fn the_report_renders_sorts_filters_prints_and_stays_offline_in_chromium() {
    let (Some(chromium), Some(chromedriver)) =
        (peer("KEYWARD_CHROMIUM", "/usr/bin/chromium"), peer("KEYWARD_CHROMEDRIVER", "/usr/bin/chromedriver"))
    else {
        return;
    };
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    let sb = Sandbox::example("quickstart");
    let page = artifacts.join("report.html");
    support::quickstart_with_merged_pull_request(&sb);
    sb.run(&["report", "{dir}", "--out", page.to_str().unwrap(), "--since", "2026-11-01"]).expect(0);

    let profile = tempfile::tempdir().unwrap();
    let mut d = Driver::start(&chromedriver).await;
    d.new_session(&chromium, profile.path()).await;
    d.post("/url", json!({"url": "about:blank"})).await;
    d.requests().await; // the browser's own start page
    d.post("/window/rect", json!({"width": 1366, "height": 900})).await;
    let url = format!("file://{}", page.display());
    d.post("/url", json!({"url": url})).await;

    // The script ran: the Content-Security-Policy admits it by its hash.
    assert_eq!(d.js("return document.documentElement.dataset.script").await, "ready");
    // Every section renders, with its heading.
    for (id, heading) in [
        ("summary", "Summary"),
        ("access", "Access"),
        ("sod", "Segregation of duties"),
        ("timelines", "Timelines"),
        ("changes", "Changes in the period"),
        ("drift", "Drift incidents"),
        ("review", "Stale accounts and missing authentication"),
        ("audit", "Audit chain"),
    ] {
        let v = d
            .js(&format!(
                "var s = document.getElementById('{id}'); return s ? [s.querySelector('h2').textContent, s.offsetHeight] : null"
            ))
            .await;
        assert_eq!(v[0], heading, "section {id}: {v}");
        assert!(v[1].as_u64().unwrap() > 40, "section {id} has no height: {v}");
    }
    assert_eq!(d.js("return document.querySelectorAll('.cards .card').length").await, 9);
    let bars = d.js("return document.querySelectorAll('#chart-weeks svg rect').length").await;
    assert!(bars.as_u64().unwrap() >= 2, "the weekly chart has bars: {bars}");
    assert!(d.js("return document.querySelector('#audit .chain-ok') !== null").await.as_bool().unwrap());

    // Filtering by keyboard: who can pay vendors?
    let visible = "return Array.from(document.querySelectorAll('#assignments tbody tr'))\
                   .filter(r => r.offsetParent !== null).map(r => r.cells[0].getAttribute('data-sort'))";
    d.click("#assignments-filter").await;
    d.type_into("#assignments-filter", "vendor-payment").await;
    assert_eq!(d.js(visible).await, json!(["anne.dodsworth", "janet.leverling", "payments-bot"]));
    let status = d.js("return document.getElementById('assignments-status').textContent").await;
    assert!(status.as_str().unwrap().starts_with("3 of "), "{status}");
    // Anne's row answers since when and who approved it.
    let anne = d
        .js("return Array.from(document.querySelectorAll('#assignments tbody tr'))\
             .find(r => r.cells[0].getAttribute('data-sort') === 'anne.dodsworth').innerText")
        .await;
    let anne = anne.as_str().unwrap();
    for needle in ["PR #7", "Laura Callahan", "approved", "applied by andrew-fuller", "users/finance.yaml:73"] {
        assert!(anne.contains(needle), "{needle} in {anne}");
    }
    // The pull request links to the page CI recorded for it (the repository has no remote).
    let link = d.js("return document.querySelector('#assignments a[href$=\"/pull/7\"]').href").await;
    assert_eq!(link, "https://github.com/northwind/access/pull/7");
    d.js("document.getElementById('assignments').scrollIntoView()").await;
    d.screenshot(&artifacts.join("report-who-can-pay-vendors.png")).await;
    d.press(&["\u{E00C}"]).await; // Escape clears the filter
    let all = d.js(visible).await.as_array().unwrap().len();
    assert!(all > 3, "Escape shows every row again ({all})");

    // Sorting by keyboard: Tab from the filter to the first column's button, then Enter.
    d.click("#assignments-filter").await;
    d.press(&["\u{E004}"]).await; // Tab
    assert_eq!(d.js("return document.activeElement.textContent").await, "Person");
    d.press(&["\u{E007}"]).await; // Enter
    let first_col = "return Array.from(document.querySelectorAll('#assignments tbody tr')).map(r => r.cells[0].getAttribute('data-sort'))";
    let asc: Vec<String> = serde_json::from_value(d.js(first_col).await).unwrap();
    let mut sorted = asc.clone();
    sorted.sort_by_key(|s| s.to_lowercase());
    assert_eq!(asc, sorted, "ascending after Enter");
    assert_eq!(
        d.js("return document.querySelector('#assignments thead th').getAttribute('aria-sort')").await,
        "ascending"
    );
    // ...and by click: descending.
    d.click("#assignments thead th button.sort").await;
    let desc: Vec<String> = serde_json::from_value(d.js(first_col).await).unwrap();
    sorted.reverse();
    assert_eq!(desc, sorted, "descending after a click");

    // The page asked for nothing but itself.
    let requested: Vec<String> =
        d.requests().await.into_iter().filter(|(doc, _)| *doc == url).map(|(_, u)| u).collect();
    assert_eq!(requested, std::slice::from_ref(&url), "the report's requests");
    assert_eq!(d.js("return performance.getEntriesByType('resource').length").await, 0);

    // Screenshots: desktop, then the print stylesheet at A4 width; and the A4 PDF.
    d.js("window.scrollTo(0, 0)").await;
    d.screenshot(&artifacts.join("report-desktop.png")).await;
    d.post("/goog/cdp/execute", json!({"cmd": "Emulation.setEmulatedMedia", "params": {"media": "print"}})).await;
    assert_eq!(d.js("return getComputedStyle(document.querySelector('nav.toc')).display").await, "none");
    assert_eq!(d.js("return getComputedStyle(document.getElementById('sod')).breakBefore").await, "page");
    d.post("/window/rect", json!({"width": 794, "height": 1123})).await;
    d.screenshot(&artifacts.join("report-a4-print.png")).await;
    let pdf = d.post("/print", json!({"page": {"width": 21.0, "height": 29.7}, "background": true})).await;
    let pdf = base64::engine::general_purpose::STANDARD.decode(pdf.as_str().unwrap()).unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    std::fs::write(artifacts.join("report-a4.pdf"), &pdf).unwrap();
    let text = String::from_utf8_lossy(&pdf);
    let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
    assert!(pages >= 8, "a page per section at least, found {pages} pages");

    // The check above can fail: a page that loads something is seen.
    d.post("/url", json!({"url": "data:text/html,<img src='http://127.0.0.1:9/x.png'>"})).await;
    let control = d.requests().await;
    assert!(control.iter().any(|(_, u)| u.starts_with("http://127.0.0.1:9/")), "the log sees requests: {control:?}");
    d.close().await;
    eprintln!("report browser test: screenshots and PDF in {}", artifacts.display());
}
