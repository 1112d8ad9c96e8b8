//! A temp-folder harness for driving the `keyward` binary end to end.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod feeds;

/// The fixed "now" the tests plan at, unless a test moves the clock.
pub const NOW: &str = "2026-11-28T12:00:00Z";

/// A private copy of a configuration folder.
pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub now: String,
}

/// What a command printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies a configuration folder, skipping hidden entries (such as a `.keyward` state folder).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

impl Sandbox {
    /// A copy of `examples/<name>`.
    pub fn example(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(name);
        copy_dir(&repo_root().join("examples").join(name), &root);
        Sandbox { _dir: dir, root, now: NOW.to_string() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_keyward"));
        c.args(args)
            .env("KEYWARD_NOW", &self.now)
            .env("KEYWARD_ACTOR", "test-runner")
            .env("NO_COLOR", "1")
            .env_remove("KEYWARD_LOG")
            .stdin(std::process::Stdio::null());
        c
    }

    /// Runs `keyward ARGS`, with the sandbox folder substituted for `{dir}`.
    pub fn run(&self, args: &[&str]) -> Run {
        let dir = self.root.to_string_lossy().into_owned();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &dir)).collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Run::from(self.cmd(&refs).output().unwrap())
    }

    /// [`Sandbox::run`] with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let dir = self.root.to_string_lossy().into_owned();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &dir)).collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = self.cmd(&refs);
        for (k, v) in env {
            c.env(k, v);
        }
        Run::from(c.output().unwrap())
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Replaces `from` with `to` in a file, asserting it was there exactly once.
    #[track_caller]
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert_eq!(text.matches(from).count(), 1, "{from:?} should occur once in {rel}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// The file directory's JSON document.
    pub fn directory(&self) -> Value {
        serde_json::from_str(&self.read(".keyward/directory.json")).unwrap()
    }

    pub fn set_directory(&self, v: &Value) {
        self.write(".keyward/directory.json", &serde_json::to_string_pretty(v).unwrap());
    }

    /// The plan as JSON.
    pub fn plan_json(&self) -> Value {
        let r = self.run(&["plan", "{dir}", "--format", "json"]);
        r.expect(0);
        r.json()
    }

    /// Applies with --auto-approve and asserts success.
    pub fn apply_ok(&self) {
        self.run(&["apply", "{dir}", "--auto-approve"]).expect(0);
    }
}

/// The (address, action) pairs of a plan's changes.
pub fn changes(plan: &Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["address"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect()
}

/// Finds a user object in the directory document by userName.
pub fn find_user<'a>(dir: &'a mut Value, user_name: &str) -> &'a mut Value {
    dir["users"].as_array_mut().unwrap().iter_mut().find(|u| u["userName"] == user_name).expect("user in directory")
}

pub fn find_group<'a>(dir: &'a mut Value, name: &str) -> &'a mut Value {
    dir["groups"].as_array_mut().unwrap().iter_mut().find(|g| g["name"] == name).expect("group in directory")
}

/// Commits everything in `dir` on its current branch (a new repository when there is none).
pub fn commit_all(dir: &Path, message: &str, who: &str, extra_parent: Option<git2::Oid>) -> git2::Oid {
    let repo = git2::Repository::open(dir).unwrap_or_else(|_| git2::Repository::init(dir).unwrap());
    let mut index = repo.index().unwrap();
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now(who, "access@northwind.example").unwrap();
    let mut parents = Vec::new();
    if let Ok(h) = repo.head().and_then(|h| h.peel_to_commit()) {
        parents.push(h);
    }
    if let Some(p) = extra_parent {
        parents.push(repo.find_commit(p).unwrap());
    }
    let refs: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &refs).unwrap()
}

/// Makes the sandbox's quick start a git repository: adopted without anne.dodsworth's
/// `ap-clerk` and applied, then pull request #7 (written by Nancy Davolio, merged by Andrew
/// Fuller, approved by Laura Callahan) giving it to her, merged and applied from a GitHub
/// Actions run.
pub fn quickstart_with_merged_pull_request(sb: &Sandbox) {
    let finance = sb.read("users/finance.yaml");
    let at = finance.rfind("roles: [ap-clerk]").unwrap();
    sb.write("users/finance.yaml", &format!("{}roles: []{}", &finance[..at], &finance[at + 17..]));
    sb.write(".gitignore", ".keyward/\n");
    commit_all(&sb.root, "Northwind access, as adopted", "Laura Callahan", None);
    sb.run(&["apply", "{dir}", "--auto-approve"]).expect(0);
    // The pull request: a branch commit, merged with a merge commit.
    let repo = git2::Repository::open(&sb.root).unwrap();
    let base = repo.head().unwrap().peel_to_commit().unwrap();
    let blob = repo.blob(finance.as_bytes()).unwrap();
    let mut tb = git2::build::TreeUpdateBuilder::new();
    tb.upsert("users/finance.yaml", blob, git2::FileMode::Blob);
    let tree = repo.find_tree(tb.create_updated(&repo, &base.tree().unwrap()).unwrap()).unwrap();
    let sig = git2::Signature::now("Nancy Davolio", "nancy@northwind.example").unwrap();
    let side = repo.commit(None, &sig, &sig, "Anne runs vendor payments too", &tree, &[&base]).unwrap();
    sb.write("users/finance.yaml", &finance);
    commit_all(
        &sb.root,
        "Merge pull request #7 from northwind/anne-ap\n\nApproved-by: Laura Callahan <laura@northwind.example>",
        "Andrew Fuller",
        Some(side),
    );
    let ci = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_REPOSITORY", "northwind/access"),
        ("GITHUB_RUN_ID", "4242"),
        ("GITHUB_ACTOR", "andrew-fuller"),
        ("GITHUB_REF", "refs/heads/main"),
        ("KEYWARD_ACTOR", ""),
    ];
    sb.run_with_env(&["apply", "{dir}", "--auto-approve"], &ci).expect(0);
}

/// A webhook receiver on loopback at `path` (e.g. `/hooks/alerts`); returns its URL and the
/// bodies it receives, one per request.
pub fn webhook(path: &str) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            if tx.send(String::from_utf8(body).unwrap()).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

/// Asserts that `keyward watch` printed no drift since the last look at `outs` (its stdout,
/// line by line): the notes it prints once while they last (a service account a target does
/// not manage, say) are not alerts.
#[allow(dead_code)]
pub fn assert_no_alert(outs: &std::sync::mpsc::Receiver<String>, why: &str) {
    let alerts: Vec<String> = outs.try_iter().filter(|l| !l.starts_with("note: ")).collect();
    assert!(alerts.is_empty(), "{why}: {alerts:#?}");
}

/// The body of `GET path` from the HTTP server at `addr` (`keyward watch`'s pages).
#[allow(dead_code)]
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// The value of one series in OpenMetrics text.
#[allow(dead_code)]
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits (up to a minute: a real directory can be slow) until `keyward watch`'s metrics at
/// `addr` satisfy `ok`; returns them. `what` names the wait in the failure.
#[allow(dead_code)]
pub fn metrics_until(addr: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let m = http_get(addr, "/metrics");
        if ok(&m) {
            return m;
        }
        assert!(std::time::Instant::now() < deadline, "{what}:\n{m}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
