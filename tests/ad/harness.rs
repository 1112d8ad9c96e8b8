//! The Active Directory test harness: the Samba AD domain controller that `cargo xtask test`
//! (or `cargo xtask samba`) started, found through its environment variables; one private OU
//! per test below the domain; the OpenLDAP clients and `samba-tool` for changes made outside
//! keyward, as the domain's Administrator; and [`WindowsProxy`], which stands in front of the
//! DC and answers the way Windows Server does where Samba does not.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use keyward::model::config::{Connection, LdapConnection, LdapDisable, LdapFlavor};
use keyward::model::{Name, SecretRef, Target, UsersScope};

#[path = "../ldap/harness.rs"]
mod ldap;
pub use ldap::{Entry, ToolRun, expect_exit, parse_ldif, random_hex, text, yaml_escape};

/// The variable through which keyward reads the bind password in these tests.
pub const PASSWORD_VAR: &str = "KEYWARD_TEST_AD_PASSWORD";

/// The running domain controller, as `cargo xtask` describes it.
pub struct Dc {
    pub url: String,
    pub ldaps_url: String,
    pub ca_file: String,
    pub base: String,
    pub realm: String,
    pub domain: String,
    pub admin_dn: String,
    admin_password: String,
    pub bind_dn: String,
    pub bind_password: String,
}

impl Dc {
    /// The DC from the environment; `None` (the test then skips) when there is none and the
    /// peers were not all prepared. With `KEYWARD_PEERS=1` a missing DC is a failure.
    pub fn from_env() -> Option<Dc> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let need = |k: &str| var(k).unwrap_or_else(|| panic!("{k} is not set although KEYWARD_AD_URL is"));
        match var("KEYWARD_AD_URL") {
            Some(url) => Some(Dc {
                url,
                ldaps_url: need("KEYWARD_AD_LDAPS_URL"),
                ca_file: need("KEYWARD_AD_CA_FILE"),
                base: need("KEYWARD_AD_BASE"),
                realm: need("KEYWARD_AD_REALM"),
                domain: need("KEYWARD_AD_DOMAIN"),
                admin_dn: need("KEYWARD_AD_ADMIN_DN"),
                admin_password: need("KEYWARD_AD_ADMIN_PASSWORD"),
                bind_dn: need("KEYWARD_AD_BIND_DN"),
                bind_password: need("KEYWARD_AD_BIND_PASSWORD"),
            }),
            None => {
                assert!(
                    var("KEYWARD_PEERS").is_none(),
                    "KEYWARD_PEERS=1 but KEYWARD_AD_URL is not set: the Samba AD DC did not start"
                );
                eprintln!("skipped: no Samba AD DC (run `cargo xtask test`, or see README › Testing)");
                None
            }
        }
    }
}

/// A test's own OU: `OU=NAME-RANDOM` below the domain with `OU=people` and `OU=groups` in
/// it, and a folder for files.
pub struct Ou<'a> {
    pub dc: &'a Dc,
    pub ou: String,
    pub people: String,
    pub groups: String,
    pub tmp: tempfile::TempDir,
    /// Held while the OU holds the quick start's accounts and groups (see
    /// [`Ou::hold_quickstart_names`]); released after the OU is deleted.
    quickstart_names: std::cell::OnceCell<std::sync::MutexGuard<'static, ()>>,
}

/// sAMAccountNames are unique in the whole domain, and every quick start uses the same ones:
/// tests that load it into their OU take turns.
static QUICKSTART_NAMES: Mutex<()> = Mutex::new(());

impl<'a> Ou<'a> {
    /// Waits until no other OU of this run holds the quick start's names, then holds them until
    /// this OU is deleted.
    pub fn hold_quickstart_names(&self) {
        self.quickstart_names.get_or_init(|| QUICKSTART_NAMES.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn new(dc: &'a Dc, name: &str) -> Ou<'a> {
        let ou = format!("OU={name}-{},{}", random_hex(4), dc.base);
        let people = format!("OU=people,{ou}");
        let groups = format!("OU=groups,{ou}");
        let tmp = tempfile::tempdir().unwrap();
        let o = Ou { dc, ou, people, groups, tmp, quickstart_names: std::cell::OnceCell::new() };
        let mut ldif = format!("dn: {}\nobjectClass: organizationalUnit\n\n", o.ou);
        for dn in [&o.people, &o.groups] {
            ldif.push_str(&format!("dn: {dn}\nobjectClass: organizationalUnit\n\n"));
        }
        o.ldap_tool("ldapadd", &[], &ldif).expect_ok();
        o
    }

    fn admin_password_file(&self) -> PathBuf {
        let p = self.tmp.path().join("admin.pw");
        if !p.exists() {
            std::fs::write(&p, &self.dc.admin_password).unwrap();
        }
        p
    }

    /// Runs an OpenLDAP client bound as Administrator, with `stdin` as its input.
    pub fn ldap_tool(&self, tool: &str, args: &[&str], stdin: &str) -> ToolRun {
        let mut cmd = Command::new(tool);
        cmd.args(["-x", "-H", &self.dc.url, "-D", &self.dc.admin_dn, "-y"])
            .arg(self.admin_password_file())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        let mut input = child.stdin.take().unwrap();
        let text = stdin.to_string();
        let feeder = std::thread::spawn(move || input.write_all(text.as_bytes()));
        let out = child.wait_with_output().unwrap();
        let _ = feeder.join();
        ToolRun(out)
    }

    /// `ldapmodify` as Administrator: a change made outside keyward.
    pub fn ldapmodify(&self, ldif: &str) {
        self.ldap_tool("ldapmodify", &[], ldif).expect_ok();
    }

    /// `ldapsearch` as Administrator (paged, so that large results come whole), unwrapped LDIF.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Vec<Entry> {
        let mut args = vec!["-LLL", "-o", "ldif-wrap=no", "-E", "pr=500/noprompt", "-b", base, filter];
        args.extend(attrs);
        let out = self.ldap_tool("ldapsearch", &args, "");
        out.expect_ok();
        parse_ldif(&String::from_utf8_lossy(&out.0.stdout))
    }

    /// The one entry with `attr=value` below `base`.
    #[track_caller]
    pub fn entry(&self, base: &str, attr: &str, value: &str) -> Entry {
        let filter = format!("({attr}={})", keyward::provider::ldap::dn::filter_value(value));
        let found = self.search(base, &filter, &["*", "+"]);
        assert_eq!(found.len(), 1, "{filter} below {base}: {found:#?}");
        found.into_iter().next().unwrap()
    }

    /// Entries with `attr=value` below `base` (none, one or more).
    pub fn find(&self, base: &str, attr: &str, value: &str) -> Vec<Entry> {
        let filter = format!("({attr}={})", keyward::provider::ldap::dn::filter_value(value));
        self.search(base, &filter, &["*"])
    }

    /// `samba-tool ARGS -H URL` bound as Administrator (the password through the environment,
    /// never the command line).
    pub fn samba_tool(&self, args: &[&str]) -> Output {
        let out = Command::new("samba-tool")
            .args(args)
            .args(["-H", &self.dc.url, "--simple-bind-dn", &self.dc.admin_dn])
            .env("PASSWD", &self.dc.admin_password)
            .stdin(Stdio::null())
            .output()
            .expect("samba-tool runs");
        assert!(
            out.status.success(),
            "samba-tool {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The `targets:` block of keyward.yaml for this OU, at `url` (the DC's ldaps:// by
    /// default), binding as `bind` (the service account's DN by default).
    pub fn target_yaml_at(&self, url: &str, bind: &str, extra: &str) -> String {
        let ca = if url.starts_with("ldaps://") {
            format!("    caFile: \"{}\"\n", yaml_escape(&self.dc.ca_file))
        } else {
            String::new()
        };
        format!(
            "targets:\n  directory:\n    provider: ldap\n    flavor: ad\n    url: {url}\n{ca}    bindDn: \"{}\"\n    \
             password: ${{env:{PASSWORD_VAR}}}\n    usersBase: \"{}\"\n    groupsBase: \"{}\"\n{extra}",
            yaml_escape(bind),
            yaml_escape(&self.people),
            yaml_escape(&self.groups)
        )
    }

    pub fn target_yaml(&self, extra: &str) -> String {
        self.target_yaml_at(&self.dc.ldaps_url, &self.dc.bind_dn, extra)
    }

    /// A resolved target for driving the provider as a library, at `url` (plain ldap:// on
    /// loopback, or ldaps:// with the DC's CA).
    pub fn target_at(&self, url: &str, user_key: &str) -> Target {
        let file = self.tmp.path().join(format!("bind-{}.pw", random_hex(4)));
        std::fs::write(&file, &self.dc.bind_password).unwrap();
        Target {
            name: Name::new("directory").unwrap(),
            users: UsersScope::All,
            ca_file: url.starts_with("ldaps://").then(|| self.dc.ca_file.clone()),
            connection: Connection::Ldap(LdapConnection {
                url: url.to_string(),
                start_tls: false,
                bind_dn: self.dc.bind_dn.clone(),
                password: SecretRef::File(file.display().to_string()),
                users_base: self.people.clone(),
                groups_base: self.groups.clone(),
                flavor: LdapFlavor::Ad,
                user_key: user_key.into(),
                disable: LdapDisable::AccountControl,
                access_log: None,
            }),
        }
    }

    pub fn target(&self) -> Target {
        self.target_at(&self.dc.ldaps_url, "sAMAccountName")
    }

    /// Runs the keyward binary in `dir` with the bind password in its environment.
    pub fn keyward(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_keyward"))
            .current_dir(dir)
            .args(args)
            .env(PASSWORD_VAR, &self.dc.bind_password)
            .env("KEYWARD_NOW", "2026-11-28")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("keyward runs")
    }
}

impl Drop for Ou<'_> {
    fn drop(&mut self) {
        // Best effort: the domain goes away with the run anyway.
        let _ = Command::new("ldapdelete")
            .args(["-x", "-r", "-H", &self.dc.url, "-D", &self.dc.admin_dn, "-y"])
            .arg(self.admin_password_file())
            .arg(&self.ou)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `userAccountControl` of an entry.
pub fn uac(e: &Entry) -> u32 {
    e.get("userAccountControl").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no userAccountControl: {e:?}"))
}

// ---------------------------------------------------------------------------------------------
// A proxy that answers as Windows Server does.

/// What [`WindowsProxy`] does differently from the Samba DC behind it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Windows {
    /// Return a multi-valued `member` of more than this many values in ranges, as Windows does
    /// with its MaxValRange policy (1500 by default): `member;range=0-1499` first, then
    /// `member;range=1500-2999`, ..., the last one `member;range=N-*`, each asked for by name.
    /// Samba returns every value at once.
    pub max_val_range: Option<usize>,
    /// Refuse to add an enabled user (no ACCOUNTDISABLE bit) without a password, as a domain
    /// whose password policy requires one does (result 53, `0000052D`). Samba creates it.
    pub require_password: bool,
}

/// A plain-LDAP proxy on a loopback port in front of the DC, which rewrites what Windows does
/// differently (see [`Windows`]). It parses just enough BER (RFC 4511) to find search requests,
/// search result entries and add requests; everything else passes unchanged.
pub struct WindowsProxy {
    pub url: String,
    /// Ranged attribute names it sent, in order (`member;range=0-1499`, ...).
    pub ranges_sent: Arc<Mutex<Vec<String>>>,
}

impl WindowsProxy {
    pub fn start(dc_url: &str, windows: Windows) -> WindowsProxy {
        let upstream = dc_url.strip_prefix("ldap://").expect("the proxy speaks plain LDAP").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        let ranges_sent = Arc::new(Mutex::new(Vec::new()));
        let log = ranges_sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let log = log.clone();
                std::thread::spawn(move || serve(client, server, windows, log));
            }
        });
        WindowsProxy { url, ranges_sent }
    }
}

/// What the proxy remembers of a search request, by message id.
type Pending = Arc<Mutex<std::collections::HashMap<Vec<u8>, usize>>>;

fn serve(client: TcpStream, server: TcpStream, windows: Windows, log: Arc<Mutex<Vec<String>>>) {
    let pending: Pending = Arc::default();
    let (mut c_read, c_write) = (client.try_clone().unwrap(), client);
    let (mut s_read, mut s_write) = (server.try_clone().unwrap(), server);
    let p = pending.clone();
    let direct = Arc::new(Mutex::new(c_write.try_clone().unwrap()));
    let direct2 = direct.clone();
    let upward = std::thread::spawn(move || {
        while let Some(msg) = read_message(&mut c_read) {
            let out = match rewrite_request(&msg, windows, &p) {
                Request::Forward(m) => m,
                Request::Answer(reply) => {
                    let _ = direct2.lock().unwrap().write_all(&reply);
                    continue;
                }
            };
            if s_write.write_all(&out).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(std::net::Shutdown::Write);
    });
    while let Some(msg) = read_message(&mut s_read) {
        let out = rewrite_response(&msg, windows, &pending, &log);
        if direct.lock().unwrap().write_all(&out).is_err() {
            break;
        }
    }
    let _ = c_write.shutdown(std::net::Shutdown::Write);
    let _ = upward.join();
}

/// One BER element: tag byte, content.
#[derive(Debug, Clone)]
struct Tlv {
    tag: u8,
    content: Vec<u8>,
}

fn encode_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    encode_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// Parses the elements of `data` one after another.
fn parse_all(mut data: &[u8]) -> Option<Vec<Tlv>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (tlv, rest) = parse_one(data)?;
        out.push(tlv);
        data = rest;
    }
    Some(out)
}

fn parse_one(data: &[u8]) -> Option<(Tlv, &[u8])> {
    let tag = *data.first()?;
    let (len, header) = read_len(&data[1..])?;
    let start = 1 + header;
    let content = data.get(start..start + len)?.to_vec();
    Some((Tlv { tag, content }, &data[start + len..]))
}

fn read_len(data: &[u8]) -> Option<(usize, usize)> {
    let first = *data.first()?;
    if first < 0x80 {
        return Some((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    let bytes = data.get(1..1 + n)?;
    Some((bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize), 1 + n))
}

/// Reads one whole LDAPMessage from the stream.
fn read_message(r: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).ok()?;
    let mut msg = head.to_vec();
    let len = if head[1] < 0x80 {
        head[1] as usize
    } else {
        let mut bytes = vec![0u8; (head[1] & 0x7f) as usize];
        r.read_exact(&mut bytes).ok()?;
        msg.extend(&bytes);
        bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize)
    };
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    msg.extend(body);
    Some(msg)
}

enum Request {
    Forward(Vec<u8>),
    /// Answered by the proxy itself.
    Answer(Vec<u8>),
}

fn octets(t: &Tlv) -> String {
    String::from_utf8_lossy(&t.content).into_owned()
}

/// Search requests for `member` (plain or ranged) are noted and sent on asking for plain
/// `member`; add requests of enabled users without a password are refused when asked.
fn rewrite_request(msg: &[u8], windows: Windows, pending: &Pending) -> Request {
    let Some((outer, _)) = parse_one(msg) else { return Request::Forward(msg.to_vec()) };
    let Some(parts) = parse_all(&outer.content) else { return Request::Forward(msg.to_vec()) };
    let (Some(id), Some(op)) = (parts.first(), parts.get(1)) else { return Request::Forward(msg.to_vec()) };
    match op.tag {
        // SearchRequest: baseObject, scope, derefAliases, sizeLimit, timeLimit, typesOnly,
        // filter, attributes.
        0x63 if windows.max_val_range.is_some() => {
            let Some(mut fields) = parse_all(&op.content) else { return Request::Forward(msg.to_vec()) };
            let Some(attrs) = fields.last().and_then(|a| parse_all(&a.content)) else {
                return Request::Forward(msg.to_vec());
            };
            let mut start = None;
            let mut new_attrs = Vec::new();
            for a in attrs {
                let name = octets(&a);
                let lower = name.to_ascii_lowercase();
                if lower == "member" {
                    start = Some(0);
                } else if let Some(range) = lower.strip_prefix("member;range=") {
                    start = range.split('-').next().and_then(|s| s.parse().ok());
                    new_attrs.extend(encode(0x04, b"member"));
                    continue;
                }
                new_attrs.extend(encode(a.tag, &a.content));
            }
            let Some(start) = start else { return Request::Forward(msg.to_vec()) };
            pending.lock().unwrap().insert(id.content.clone(), start);
            let last = fields.len() - 1;
            fields[last] = Tlv { tag: 0x30, content: new_attrs };
            let op_content: Vec<u8> = fields.iter().flat_map(|f| encode(f.tag, &f.content)).collect();
            let mut body = encode(id.tag, &id.content);
            body.extend(encode(0x63, &op_content));
            for rest in &parts[2..] {
                body.extend(encode(rest.tag, &rest.content));
            }
            Request::Forward(encode(outer.tag, &body))
        }
        // AddRequest: entry, attributes.
        0x68 if windows.require_password => {
            let Some(fields) = parse_all(&op.content) else { return Request::Forward(msg.to_vec()) };
            let attrs: Vec<(String, Vec<String>)> = fields
                .get(1)
                .and_then(|a| parse_all(&a.content))
                .unwrap_or_default()
                .iter()
                .filter_map(|pa| {
                    let inner = parse_all(&pa.content)?;
                    let values = parse_all(&inner.get(1)?.content)?.iter().map(octets).collect();
                    Some((octets(inner.first()?).to_ascii_lowercase(), values))
                })
                .collect();
            let get = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default();
            let is_user = get("objectclass").iter().any(|c| c.eq_ignore_ascii_case("user"));
            let enabled =
                get("useraccountcontrol").first().and_then(|v| v.parse::<u32>().ok()).is_some_and(|u| u & 2 == 0);
            if is_user && enabled && get("unicodepwd").is_empty() {
                // AddResponse: resultCode 53, matchedDN "", diagnosticMessage, as Windows says it.
                let diag = "0000052D: SvcErr: DSID-031A1248, problem 5003 (WILL_NOT_PERFORM), data 0\n";
                let mut res = encode(0x0a, &[53]);
                res.extend(encode(0x04, b""));
                res.extend(encode(0x04, diag.as_bytes()));
                let mut body = encode(id.tag, &id.content);
                body.extend(encode(0x69, &res));
                return Request::Answer(encode(0x30, &body));
            }
            Request::Forward(msg.to_vec())
        }
        _ => Request::Forward(msg.to_vec()),
    }
}

/// In an entry answering a noted search, `member` becomes the range Windows would return.
fn rewrite_response(msg: &[u8], windows: Windows, pending: &Pending, log: &Arc<Mutex<Vec<String>>>) -> Vec<u8> {
    let Some(max) = windows.max_val_range else { return msg.to_vec() };
    let Some((outer, _)) = parse_one(msg) else { return msg.to_vec() };
    let Some(parts) = parse_all(&outer.content) else { return msg.to_vec() };
    let (Some(id), Some(op)) = (parts.first(), parts.get(1)) else { return msg.to_vec() };
    if op.tag == 0x65 {
        pending.lock().unwrap().remove(&id.content); // SearchResultDone
        return msg.to_vec();
    }
    let Some(start) = pending.lock().unwrap().get(&id.content).copied() else { return msg.to_vec() };
    if op.tag != 0x64 {
        return msg.to_vec();
    }
    let Some(fields) = parse_all(&op.content) else { return msg.to_vec() };
    let (Some(name), Some(attrs)) = (fields.first(), fields.get(1).and_then(|a| parse_all(&a.content))) else {
        return msg.to_vec();
    };
    let mut new_attrs = Vec::new();
    for pa in attrs {
        let Some(inner) = parse_all(&pa.content) else { return msg.to_vec() };
        let (Some(kind), Some(set)) = (inner.first(), inner.get(1)) else { return msg.to_vec() };
        let values = parse_all(&set.content).unwrap_or_default();
        if !octets(kind).eq_ignore_ascii_case("member") || (start == 0 && values.len() <= max) {
            new_attrs.extend(encode(pa.tag, &pa.content));
            continue;
        }
        let end = (start + max).min(values.len());
        let label = if end == values.len() {
            format!("member;range={start}-*")
        } else {
            format!("member;range={start}-{}", end - 1)
        };
        log.lock().unwrap().push(label.clone());
        let slice: Vec<u8> =
            values.get(start..end).unwrap_or_default().iter().flat_map(|v| encode(v.tag, &v.content)).collect();
        let mut pa_content = encode(0x04, label.as_bytes());
        pa_content.extend(encode(0x31, &slice));
        new_attrs.extend(encode(0x30, &pa_content));
    }
    let mut op_content = encode(name.tag, &name.content);
    op_content.extend(encode(0x30, &new_attrs));
    let mut body = encode(id.tag, &id.content);
    body.extend(encode(0x64, &op_content));
    for rest in &parts[2..] {
        body.extend(encode(rest.tag, &rest.content));
    }
    encode(outer.tag, &body)
}

#[test]
fn ber_lengths_round_trip() {
    for n in [0usize, 5, 127, 128, 255, 256, 70_000] {
        let e = encode(0x04, &vec![b'x'; n]);
        let (t, rest) = parse_one(&e).unwrap();
        assert_eq!((t.tag, t.content.len(), rest.len()), (0x04, n, 0));
    }
}
