//! A real scim2-server for the tests: started on a free loopback port with a bearer token made
//! at test time, ready within a bounded wait, killed on drop. Its request log (the WSGI
//! server's one line per request on stderr) is how tests count requests.
//!
//! Also: a tiny blocking HTTP client to change the server's data behind keyward's back, and
//! configuration folders retargeted at the server.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const TOKEN_VAR: &str = "KEYWARD_TEST_SCIM_TOKEN";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The scim2-server executable that `cargo xtask test` installed.
pub fn scim2_server() -> PathBuf {
    match std::env::var_os("KEYWARD_SCIM2_SERVER").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "KEYWARD_SCIM2_SERVER is not set: this test needs the real scim2-server. \
             Run `cargo xtask test`, which installs it and sets the variable, or set it to the \
             path of a scim2-server executable (e.g. target/peers/scim-venv/bin/scim2-server)."
        ),
    }
}

/// A random token for one test run.
pub fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::new();
    for _ in 0..4 {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos());
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s
}

/// One request line of the server's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    /// The path with its query.
    pub target: String,
    pub status: u16,
}

impl Logged {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// The SCIM servers the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// scim2-server (PyPI), with Bulk, ETags, sort and filters.
    Scim2Server,
    /// django-scim2 (PyPI) in the Django project under xtask/peers/django_scim/, with the
    /// enterprise user adapter: no Bulk, ETags or sort, pages of 50, no `members[value eq]`
    /// remove path.
    DjangoScim2,
    /// django-scim2 with its stock user adapter, which keeps no `title` and no enterprise
    /// extension.
    DjangoScim2Stock,
}

impl Kind {
    pub fn is_django(self) -> bool {
        matches!(self, Kind::DjangoScim2 | Kind::DjangoScim2Stock)
    }
}

/// The virtualenv Python that runs the django-scim2 project (`cargo xtask test` installs it).
pub fn django_python() -> PathBuf {
    match std::env::var_os("KEYWARD_DJANGO_SCIM_PYTHON").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "KEYWARD_DJANGO_SCIM_PYTHON is not set: this test needs the real django-scim2. \
             Run `cargo xtask test`, which installs it and sets the variable, or `cargo xtask peers`."
        ),
    }
}

pub struct Server {
    child: Child,
    pub kind: Kind,
    pub port: u16,
    pub token: String,
    log: PathBuf,
    /// What the server announced at /ServiceProviderConfig when it started.
    pub config: Value,
    _dir: tempfile::TempDir,
}

/// A service provider configuration like scim2-server's default, with changes.
pub fn service_provider_config(bulk: Option<(u64, u64)>, max_results: u64) -> Value {
    let bulk = match bulk {
        Some((ops, size)) => json!({"supported": true, "maxOperations": ops, "maxPayloadSize": size}),
        None => json!({"supported": false, "maxOperations": 0, "maxPayloadSize": 0}),
    };
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": bulk,
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true}
    })
}

fn wait_ready(child: &mut Child, port: u16, token: &str, log: &Path, timeout: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default()));
        }
        // scim2-server's configuration endpoint needs no token (as RFC 7643 §5 allows);
        // django-scim2's does.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!(
                "GET /v2/ServiceProviderConfig HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            );
            let mut raw = Vec::new();
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_to_end(&mut raw).is_ok()
                && raw.split(|b| *b == b' ').nth(1) == Some(b"200".as_slice())
            {
                let body = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| &raw[i + 4..]).unwrap_or_default();
                return Ok(serde_json::from_slice(body).unwrap_or(Value::Null));
            }
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

impl Server {
    /// The default configuration: Bulk (1000 operations, 1 MiB), pages of 1000, ETags.
    pub fn start() -> Server {
        Server::start_with(None)
    }

    /// With a `--service-provider-config` file, when given.
    pub fn start_with(spc: Option<Value>) -> Server {
        Server::start_kind_with(Kind::Scim2Server, spc)
    }

    /// A server of `kind` with its default configuration.
    pub fn start_kind(kind: Kind) -> Server {
        Server::start_kind_with(kind, None)
    }

    /// A server of `kind`, announcing `spc` where given. django-scim2 takes only `patch` and
    /// `filter` from it (it has no Bulk, ETags or sort to announce).
    pub fn start_kind_with(kind: Kind, spc: Option<Value>) -> Server {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let token = random_token();
        let spc = spc.map(|mut v| {
            if kind.is_django() {
                assert_ne!(v["bulk"]["supported"], true, "django-scim2 has no Bulk to announce");
                v = json!({"patch": v["patch"], "filter": v["filter"]});
            }
            v
        });
        let spc_path = spc.map(|v| {
            let p = dir.path().join("service-provider-config.json");
            std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
            p
        });
        let mut last_error = String::new();
        // Another process may take the port between our probe and the server's bind: retry.
        for attempt in 0..5 {
            let port = free_port();
            let log = dir.path().join(format!("server-{attempt}.log"));
            let out = File::create(&log).unwrap();
            let mut cmd = match kind {
                Kind::Scim2Server => {
                    let mut c = Command::new(scim2_server());
                    c.args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", &token]);
                    if let Some(p) = &spc_path {
                        c.arg("--service-provider-config").arg(p);
                    }
                    c
                }
                Kind::DjangoScim2 | Kind::DjangoScim2Stock => {
                    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("xtask/peers/django_scim/serve.py");
                    let mut c = Command::new(django_python());
                    c.arg(project).args(["--port", &port.to_string(), "--db"]);
                    c.arg(dir.path().join(format!("db-{attempt}.sqlite3")));
                    c.env("KEYWARD_DJANGO_SCIM_TOKEN", &token);
                    if kind == Kind::DjangoScim2Stock {
                        c.args(["--user-adapter", "stock"]);
                    }
                    if let Some(p) = &spc_path {
                        c.arg("--service-provider-config").arg(p);
                    }
                    c
                }
            };
            cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start the {kind:?} server: {e}"));
            match wait_ready(&mut child, port, &token, &log, Duration::from_secs(30)) {
                Ok(config) => return Server { child, kind, port, token, log, config, _dir: dir },
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        panic!("the {kind:?} server did not start: {last_error}");
    }

    /// Whether the server announced Bulk.
    pub fn announces_bulk(&self) -> bool {
        self.config["bulk"]["supported"] == true
    }

    /// Whether the server announced ETags.
    pub fn announces_etag(&self) -> bool {
        self.config["etag"]["supported"] == true
    }

    /// Removes a member outside keyward, in a form the server understands: the RFC 7644
    /// filter path `members[value eq "ID"]`, or, for django-scim2, which refuses that (501),
    /// `path: members` with the member as the value.
    pub fn remove_member(&self, group_id: &str, user_id: &str) -> Resp {
        let op = if self.kind.is_django() {
            json!([{"op": "remove", "path": "members", "value": [{"value": user_id}]}])
        } else {
            json!([{"op": "remove", "path": format!("members[value eq \"{user_id}\"]")}])
        };
        self.patch("Groups", group_id, op)
    }

    /// The base URL keyward is given.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.port)
    }

    /// Every request the server logged so far.
    pub fn requests(&self) -> Vec<Logged> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(parse_log_line).collect()
    }

    /// Waits until the log has been quiet for a moment: the server writes a request's line just
    /// after sending the answer, so a client can see the answer before the line.
    pub fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = self.requests().len();
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(150) {
            std::thread::sleep(Duration::from_millis(10));
            let now = self.requests().len();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
    }

    /// Requests logged after the first `mark` ones.
    pub fn requests_since(&self, mark: usize) -> Vec<Logged> {
        self.requests().into_iter().skip(mark).collect()
    }

    fn try_request(
        &self,
        method: &str,
        target: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Resp> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nConnection: close\r\nAccept: application/scim+json\r\n",
            self.port, self.token
        );
        if !body.is_empty() {
            head.push_str(&format!("Content-Type: application/scim+json\r\nContent-Length: {}\r\n", body.len()));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(&body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let rest = raw.get(split + 4..).unwrap_or_default();
        let body = if rest.is_empty() { Value::Null } else { serde_json::from_slice(rest).unwrap_or(Value::Null) };
        Ok(Resp { status, head, body })
    }

    /// A request straight to the server, as an administrator changing data outside keyward.
    pub fn request(&self, method: &str, target: &str, body: Option<&Value>) -> Resp {
        let before = self.requests().len();
        let r = self.try_request(method, target, body, &[]).unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        // Wait for its log line, so it is never counted as someone else's request.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.requests().len() <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        r
    }

    /// Every user, whole.
    pub fn users(&self) -> Vec<Value> {
        self.list("Users")
    }

    /// Every group, whole.
    pub fn groups(&self) -> Vec<Value> {
        self.list("Groups")
    }

    fn list(&self, endpoint: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let r = self.request("GET", &format!("/v2/{endpoint}?startIndex={start}&count=1000"), None);
            assert_eq!(r.status, 200, "{:?}", r.body);
            let page = r.body["Resources"].as_array().cloned().unwrap_or_default();
            let total = r.body["totalResults"].as_u64().unwrap() as usize;
            start += page.len();
            let empty = page.is_empty();
            out.extend(page);
            if empty || start > total {
                return out;
            }
        }
    }

    pub fn user(&self, user_name: &str) -> Value {
        self.users()
            .into_iter()
            .find(|u| u["userName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(user_name)))
            .unwrap_or_else(|| panic!("no user {user_name}"))
    }

    pub fn group(&self, name: &str) -> Value {
        self.groups()
            .into_iter()
            .find(|g| g["displayName"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no group {name}"))
    }

    /// The userNames of a group's members.
    pub fn member_names(&self, group: &str) -> Vec<String> {
        let users = self.users();
        let g = self.group(group);
        let mut names: Vec<String> = g["members"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| {
                let id = m["value"].as_str()?;
                users.iter().find(|u| u["id"] == id).and_then(|u| u["userName"].as_str()).map(str::to_string)
            })
            .collect();
        names.sort();
        names
    }

    pub fn patch(&self, endpoint: &str, id: &str, ops: Value) -> Resp {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let r = self.request("PATCH", &format!("/v2/{endpoint}/{id}"), Some(&body));
        assert!(matches!(r.status, 200 | 204), "PATCH {endpoint}/{id}: {} {:?}", r.status, r.body);
        r
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Value,
}

/// `127.0.0.1 - - [28/Nov/2026 22:57:44] "GET /v2/Users?x=1 HTTP/1.1" 200 160`
fn parse_log_line(line: &str) -> Option<Logged> {
    let start = line.find("] \"")? + 2;
    let end = line.rfind('"')?;
    let request = line.get(start + 1..end)?;
    let mut parts = request.split(' ');
    let method = parts.next().filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()))?.to_string();
    let target = parts.next()?.to_string();
    let status = line[end + 1..].split_whitespace().next()?.parse().ok()?;
    Some(Logged { method, target, status })
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Configuration folders and the binary.

/// Points the `directory` target of a configuration folder at the server.
pub fn retarget(dir: &Path, server: &Server) {
    retarget_url(dir, &server.url());
}

/// Points the `directory` target of a configuration folder at a SCIM base URL (the server, or a
/// proxy in front of it).
pub fn retarget_url(dir: &Path, url: &str) {
    let path = dir.join("keyward.yaml");
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let target: serde_yaml::Value =
        serde_yaml::from_str(&format!("{{provider: scim, url: \"{url}\", token: \"${{env:{TOKEN_VAR}}}\"}}")).unwrap();
    doc["targets"]["directory"] = target;
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
}

/// A copy of examples/quickstart whose `directory` target is the server.
pub fn quickstart(server: &Server) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    super::support::copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"), dir.path());
    retarget(dir.path(), server);
    dir
}

/// A generated configuration: `users` people `user00000@bench.example`, each reporting to
/// user `(i-1)/8` (a manager tree), holding `per_user` of `roles` roles bound to groups
/// `group-000`...
pub fn synthetic(server: &Server, users: usize, roles: usize, per_user: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("keyward.yaml"),
        "version: 1\ntargets:\n  directory:\n    provider: file\n    path: unused.json\nownership:\n  scope: {userNameSuffix: \"@bench.example\"}\n",
    )
    .unwrap();
    retarget(root, server);
    let mut r = String::new();
    for i in 0..roles {
        r.push_str(&format!(
            "---\nkind: Role\nname: role-{i:03}\ndescription: Role {i}\nbindings:\n  directory: {{group: group-{i:03}}}\n"
        ));
    }
    std::fs::write(root.join("roles.yaml"), r).unwrap();
    write_users(root, 0..users, roles, per_user);
    dir
}

/// Writes `users.yaml` with the users of `range` (see [`synthetic`]).
pub fn write_users(root: &Path, range: std::ops::Range<usize>, roles: usize, per_user: usize) {
    let mut u = String::with_capacity(range.len() * 300);
    for i in range {
        let manager = if i == 0 { String::new() } else { format!("manager: user{:05}\n", (i - 1) / 8) };
        let held: Vec<String> = (0..per_user).map(|k| format!("role-{:03}", (i + k * 7) % roles)).collect();
        u.push_str(&format!(
            "---\nkind: User\nname: user{i:05}\nuserName: user{i:05}@bench.example\ndisplayName: User {i}\n\
             givenName: Given{i}\nfamilyName: Family{i}\nemail: user{i:05}@bench.example\ndepartment: Dept {}\n\
             jobTitle: Title {}\nemployeeId: \"E{i:06}\"\n{manager}roles: [{}]\n",
            i % 10,
            i % 7,
            held.join(", ")
        ));
    }
    std::fs::write(root.join("users.yaml"), u).unwrap();
}

/// Runs keyward in `dir` with the server's token and a fixed clock.
pub fn keyward(dir: &Path, token: &str, args: &[&str]) -> Output {
    keyward_cmd(dir, token, args).output().expect("keyward runs")
}

pub fn keyward_cmd(dir: &Path, token: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.current_dir(dir)
        .args(args)
        .env(TOKEN_VAR, token)
        .env("KEYWARD_NOW", "2026-11-28")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts an exit code, showing the output when it differs.
pub fn expect_exit(o: &Output, code: i32) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(code), "exit code\n--- stdout\n{out}\n--- stderr\n{err}");
}
