//! The LDAP test harness: the slapd that `cargo xtask test` (or `cargo xtask slapd`) started,
//! found through its environment variables, one private OU per test below its suffix, and the
//! real OpenLDAP command-line clients (`ldapadd`, `ldapmodify`, `ldapsearch`) for changes made
//! outside keyward.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyward::model::config::{Connection, LdapConnection, LdapDisable, LdapFlavor};
use keyward::model::{Name, SecretRef, Target, UsersScope};

/// The variable through which keyward reads the bind password in these tests.
pub const PASSWORD_VAR: &str = "KEYWARD_TEST_LDAP_PASSWORD";

/// The running server, as `cargo xtask` describes it.
pub struct Server {
    pub url: String,
    pub base: String,
    pub admin_dn: String,
    admin_password: String,
    pub bind_dn: String,
    pub bind_password: String,
    pub size_limit: usize,
    /// The ldaps:// URL and the CA file, when the server has TLS.
    pub tls: Option<(String, String)>,
}

impl Server {
    /// The server from the environment. These tests are ignored unless asked for
    /// (`--include-ignored`, as `cargo xtask test` runs them); asked for without a server, they
    /// fail, as the SCIM tests do: a test that cannot reach its peer has checked nothing.
    pub fn from_env() -> Server {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (var("KEYWARD_LDAP_URL"), var("KEYWARD_LDAP_BASE")) {
            (Some(url), Some(base)) => Server {
                url,
                base,
                admin_dn: var("KEYWARD_LDAP_ADMIN_DN").expect("KEYWARD_LDAP_ADMIN_DN"),
                admin_password: var("KEYWARD_LDAP_ADMIN_PASSWORD").expect("KEYWARD_LDAP_ADMIN_PASSWORD"),
                bind_dn: var("KEYWARD_LDAP_BIND_DN").expect("KEYWARD_LDAP_BIND_DN"),
                bind_password: var("KEYWARD_LDAP_BIND_PASSWORD").expect("KEYWARD_LDAP_BIND_PASSWORD"),
                size_limit: var("KEYWARD_LDAP_SIZE_LIMIT").and_then(|v| v.parse().ok()).unwrap_or(1000),
                tls: var("KEYWARD_LDAP_LDAPS_URL").zip(var("KEYWARD_LDAP_CA_FILE")),
            },
            _ => panic!(
                "KEYWARD_LDAP_URL and KEYWARD_LDAP_BASE are not set: this test needs a real slapd. \
                 Run `cargo xtask test`, or start one with `cargo xtask slapd` (README › Running the tests)"
            ),
        }
    }
}

/// A test's own corner of the directory: `ou=NAME-RANDOM` with `people`, `groups` and
/// `disabled` below it, and a folder for files.
pub struct Corner<'a> {
    pub server: &'a Server,
    pub ou: String,
    pub people: String,
    pub groups: String,
    pub disabled: String,
    pub tmp: tempfile::TempDir,
}

impl<'a> Corner<'a> {
    pub fn new(server: &'a Server, name: &str) -> Corner<'a> {
        let ou = format!("ou={name}-{},{}", random_hex(4), server.base);
        let people = format!("ou=people,{ou}");
        let groups = format!("ou=groups,{ou}");
        let disabled = format!("ou=disabled,{ou}");
        let tmp = tempfile::tempdir().unwrap();
        let c = Corner { server, ou, people, groups, disabled, tmp };
        let mut ldif = format!("dn: {}\nobjectClass: organizationalUnit\nou: {name}\n\n", c.ou);
        for (dn, o) in [(&c.people, "people"), (&c.groups, "groups"), (&c.disabled, "disabled")] {
            ldif.push_str(&format!("dn: {dn}\nobjectClass: organizationalUnit\nou: {o}\n\n"));
        }
        c.ldap_tool("ldapadd", &[], &ldif).expect_ok();
        c
    }

    fn admin_password_file(&self) -> PathBuf {
        let p = self.tmp.path().join("admin.pw");
        if !p.exists() {
            std::fs::write(&p, &self.server.admin_password).unwrap();
        }
        p
    }

    /// Runs an OpenLDAP client bound as the root DN, with `stdin` as its input.
    pub fn ldap_tool(&self, tool: &str, args: &[&str], stdin: &str) -> ToolRun {
        let mut cmd = Command::new(tool);
        cmd.args(["-x", "-H", &self.server.url, "-D", &self.server.admin_dn, "-y"])
            .arg(self.admin_password_file())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        // Fed from a thread: the tool writes its progress while it reads, and both pipes fill.
        let mut input = child.stdin.take().unwrap();
        let text = stdin.to_string();
        let feeder = std::thread::spawn(move || input.write_all(text.as_bytes()));
        let out = child.wait_with_output().unwrap();
        let _ = feeder.join();
        ToolRun(out)
    }

    /// `ldapmodify` as the root DN: a change made outside keyward.
    pub fn ldapmodify(&self, ldif: &str) {
        self.ldap_tool("ldapmodify", &[], ldif).expect_ok();
    }

    /// `ldapsearch` as the root DN, unwrapped LDIF.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Vec<Entry> {
        let mut args = vec!["-LLL", "-o", "ldif-wrap=no", "-b", base, filter];
        args.extend(attrs);
        let out = self.ldap_tool("ldapsearch", &args, "");
        out.expect_ok();
        parse_ldif(&String::from_utf8_lossy(&out.0.stdout))
    }

    /// The entry with `attr=value` below this corner.
    pub fn entry(&self, base: &str, attr: &str, value: &str) -> Entry {
        let filter = format!("({attr}={})", keyward::provider::ldap::dn::filter_value(value));
        let found = self.search(base, &filter, &["*", "+"]);
        assert_eq!(found.len(), 1, "{filter} below {base}: {found:#?}");
        found.into_iter().next().unwrap()
    }

    /// The `targets:` block of keyward.yaml for this corner.
    pub fn target_yaml(&self, extra: &str) -> String {
        format!(
            "targets:\n  directory:\n    provider: ldap\n    url: {}\n    bindDn: \"{}\"\n    password: ${{env:{PASSWORD_VAR}}}\n    \
             usersBase: \"{}\"\n    groupsBase: \"{}\"\n    flavor: openldap\n{extra}",
            self.server.url,
            yaml_escape(&self.server.bind_dn),
            yaml_escape(&self.people),
            yaml_escape(&self.groups)
        )
    }

    /// A resolved target for driving the provider as a library.
    pub fn target(&self, disable: LdapDisable, password: &str) -> Target {
        self.target_at(&self.server.url.clone(), false, None, disable, password)
    }

    /// A resolved target at another URL, with StartTLS and a CA file as given.
    pub fn target_at(
        &self,
        url: &str,
        start_tls: bool,
        ca_file: Option<&str>,
        disable: LdapDisable,
        password: &str,
    ) -> Target {
        let file = self.tmp.path().join(format!("bind-{}.pw", random_hex(4)));
        std::fs::write(&file, password).unwrap();
        Target {
            name: Name::new("directory").unwrap(),
            users: UsersScope::All,
            ca_file: ca_file.map(str::to_string),
            connection: Connection::Ldap(LdapConnection {
                url: url.to_string(),
                start_tls,
                bind_dn: self.server.bind_dn.clone(),
                password: SecretRef::File(file.display().to_string()),
                users_base: self.people.clone(),
                groups_base: self.groups.clone(),
                flavor: LdapFlavor::Openldap,
                user_key: "uid".into(),
                disable,
                access_log: None,
            }),
        }
    }

    /// Runs the keyward binary in `dir` with the bind password in its environment.
    pub fn keyward(&self, dir: &Path, args: &[&str]) -> Output {
        self.keyward_with_password(dir, &self.server.bind_password, args)
    }

    pub fn keyward_with_password(&self, dir: &Path, password: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_keyward"))
            .current_dir(dir)
            .args(args)
            .env(PASSWORD_VAR, password)
            .env("KEYWARD_NOW", "2026-11-28")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("keyward runs")
    }
}

impl Drop for Corner<'_> {
    fn drop(&mut self) {
        // Best effort: the server's data folder goes away with the run anyway.
        let _ = Command::new("ldapdelete")
            .args(["-x", "-r", "-H", &self.server.url, "-D", &self.server.admin_dn, "-y"])
            .arg(self.admin_password_file())
            .arg(&self.ou)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub struct ToolRun(pub Output);

impl ToolRun {
    #[track_caller]
    pub fn expect_ok(&self) {
        assert!(
            self.0.status.success(),
            "LDAP tool failed ({}):\n{}\n{}",
            self.0.status,
            String::from_utf8_lossy(&self.0.stdout),
            String::from_utf8_lossy(&self.0.stderr)
        );
    }
}

/// One LDIF entry: its DN and attributes (names lower-cased, base64 values decoded; binary
/// values such as objectGUID lossily).
#[derive(Debug, Clone)]
pub struct Entry {
    pub dn: String,
    pub attrs: Vec<(String, String)>,
}

impl Entry {
    pub fn get(&self, attr: &str) -> Option<&str> {
        self.all(attr).into_iter().next()
    }
    pub fn all(&self, attr: &str) -> Vec<&str> {
        let a = attr.to_ascii_lowercase();
        self.attrs.iter().filter(|(k, _)| *k == a).map(|(_, v)| v.as_str()).collect()
    }
}

/// Parses unwrapped LDIF (`ldapsearch -LLL -o ldif-wrap=no`).
pub fn parse_ldif(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut dn = None;
        let mut attrs = Vec::new();
        for line in block.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (name, value) = if let Some((n, v)) = line.split_once(":: ") {
                (n, String::from_utf8_lossy(&base64_decode(v)).into_owned())
            } else if let Some((n, v)) = line.split_once(": ") {
                (n, v.to_string())
            } else if let Some(n) = line.strip_suffix(':') {
                (n, String::new())
            } else {
                continue;
            };
            if name.eq_ignore_ascii_case("dn") {
                dn = Some(value);
            } else {
                attrs.push((name.to_ascii_lowercase(), value));
            }
        }
        if let Some(dn) = dn {
            out.push(Entry { dn, attrs });
        }
    }
    out
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => 0,
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=' && !b.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | (val(c) as u32) << (18 - 6 * i));
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

/// A double-quoted YAML scalar's content.
pub fn yaml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    use std::io::Read;
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[track_caller]
pub fn expect_exit(o: &Output, code: i32) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(code), "exit code\n--- stdout\n{out}\n--- stderr\n{err}");
}

/// Replaces the `targets:` block of a keyward.yaml (up to the next top-level key).
pub fn retarget(config: &str, targets: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in config.lines() {
        if line.starts_with("targets:") {
            skipping = true;
            out.push_str(targets);
            continue;
        }
        if skipping && (line.is_empty() || line.starts_with(' ') || line.starts_with('#')) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}
