//! One LDAP connection: connect (ldaps, or ldap with StartTLS, or plain ldap on loopback),
//! simple bind, paged search, and errors that carry the LDAP result code and the server's
//! diagnostic message.
//!
//! TLS is rustls with the ring provider, TLS 1.2 at least, certificates verified against the
//! system's roots plus the target's `caFile`. The bind password is never part of an error.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::{Control, ControlType, PagedResults, RawControl};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Mod, Scope, SearchEntry};

mod bounded;
pub use bounded::BoundedFailure;

/// The longest one operation may take.
const OP_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages one paged search reads at most (a million entries at 500 a page): a server that keeps
/// answering a paging cookie cannot keep keyward reading forever.
pub const MAX_PAGES: usize = 2000;

/// A failed LDAP operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdapFailure {
    /// The server answered with a result code other than success.
    #[error("{op}: LDAP result {rc} ({}){}", code_name(*rc), diagnostic(text))]
    Result { op: String, rc: u32, text: String },
    /// The connection, TLS or the protocol failed.
    #[error("{op}: {message}")]
    Transport { op: String, message: String },
    /// A paged search still answered a paging cookie after [`MAX_PAGES`] pages.
    #[error("{op}: the server still answers a paging cookie after {pages} pages; keyward stops reading there")]
    TooManyPages { op: String, pages: usize },
}

fn diagnostic(text: &str) -> String {
    if text.trim().is_empty() { String::new() } else { format!(": {}", text.trim()) }
}

impl LdapFailure {
    /// The LDAP result code, when the server answered.
    pub fn rc(&self) -> Option<u32> {
        match self {
            LdapFailure::Result { rc, .. } => Some(*rc),
            LdapFailure::Transport { .. } | LdapFailure::TooManyPages { .. } => None,
        }
    }
}

/// Result codes of RFC 4511 Appendix A that keyward acts on.
/// Active Directory's Tree Delete control.
pub const TREE_DELETE_OID: &str = "1.2.840.113556.1.4.805";

pub mod rc {
    pub const SUCCESS: u32 = 0;
    pub const SIZE_LIMIT_EXCEEDED: u32 = 4;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
    pub const UNWILLING_TO_PERFORM: u32 = 53;
    pub const NOT_ALLOWED_ON_NON_LEAF: u32 = 66;
    pub const ALREADY_EXISTS: u32 = 68;
}

/// The RFC 4511 name of a result code.
pub fn code_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        71 => "affectsMultipleDSAs",
        80 => "other",
        _ => "unknown result code",
    }
}

/// How to reach and authenticate to the directory.
pub struct ConnectOptions<'a> {
    pub url: &'a str,
    pub start_tls: bool,
    pub ca_file: Option<&'a Path>,
    pub bind_dn: &'a str,
    pub password: &'a str,
}

/// A bound connection.
#[derive(Clone)]
pub struct Client {
    ldap: Ldap,
    /// Pages read by paged searches since the connection opened.
    pages: Arc<std::sync::atomic::AtomicUsize>,
    /// Operations sent since the connection opened (the bind, each search page, each write).
    operations: Arc<std::sync::atomic::AtomicUsize>,
}

fn transport(op: &str, e: impl std::fmt::Display) -> LdapFailure {
    LdapFailure::Transport { op: op.to_string(), message: e.to_string() }
}

/// Turns an operation's outcome into a result, keeping `ok` codes as success.
fn check(op: &str, r: ldap3::result::Result<LdapResult>, ok: &[u32]) -> Result<LdapResult, LdapFailure> {
    let r = r.map_err(|e| transport(op, e))?;
    if r.rc == rc::SUCCESS || ok.contains(&r.rc) {
        Ok(r)
    } else {
        Err(LdapFailure::Result { op: op.to_string(), rc: r.rc, text: r.text })
    }
}

/// The rustls configuration: TLS 1.2 and 1.3 with the ring provider, the system's roots and
/// the extra CA, if any.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the CA file {} is not PEM: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("the CA file {} holds no certificate", path.display()));
        }
        for c in certs {
            roots.add(c).map_err(|e| format!("a certificate in {} is not usable: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

impl Client {
    /// Connects and binds.
    pub async fn connect(o: &ConnectOptions<'_>) -> Result<Client, LdapFailure> {
        let op = format!("connecting to {}", o.url);
        let config = tls_config(o.ca_file).map_err(|e| transport(&op, e))?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(CONNECT_TIMEOUT)
            .set_starttls(o.start_tls)
            .set_config(Arc::new(config));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, o.url).await.map_err(|e| transport(&op, e))?;
        ldap3::drive!(conn);
        let bind = ldap.with_timeout(OP_TIMEOUT).simple_bind(o.bind_dn, o.password).await;
        check(&format!("binding as {}", o.bind_dn), bind, &[])?;
        Ok(Client { ldap, pages: Arc::default(), operations: Arc::new(1.into()) })
    }

    /// Operations sent so far, the bind included.
    pub fn operations(&self) -> usize {
        self.operations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The connection for one more operation.
    fn op(&self) -> Ldap {
        self.operations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.ldap.clone()
    }

    /// Pages read by paged searches so far.
    pub fn pages_read(&self) -> usize {
        self.pages.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every entry below `base` matching `filter`, by pages of `page_size` (RFC 2696), with
    /// the attributes `attrs`. A missing base is an empty result when `missing_ok`.
    pub async fn search_paged(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        page_size: i32,
        missing_ok: bool,
    ) -> Result<Vec<SearchEntry>, LdapFailure> {
        self.search_paged_with(base, filter, attrs, page_size, missing_ok, &[]).await
    }

    /// [`Client::search_paged`], with the controls `extra` on every page besides the paging
    /// control.
    pub async fn search_paged_with(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        page_size: i32,
        missing_ok: bool,
        extra: &[RawControl],
    ) -> Result<Vec<SearchEntry>, LdapFailure> {
        self.search_pages(base, filter, attrs, page_size, missing_ok, extra, |_, _| Ok::<(), LdapFailure>(())).await
    }

    /// The paging loop of every paged search: `on_page` sees each page's operation name and
    /// entry count and may stop the search with an error of its own. Past [`MAX_PAGES`] pages
    /// the search stops whatever `on_page` says.
    #[allow(clippy::too_many_arguments)]
    async fn search_pages<E: From<LdapFailure>>(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        page_size: i32,
        missing_ok: bool,
        extra: &[RawControl],
        mut on_page: impl FnMut(&str, usize) -> Result<(), E>,
    ) -> Result<Vec<SearchEntry>, E> {
        let op = format!("searching {base} for {filter}");
        let mut out = Vec::new();
        let mut cookie: Vec<u8> = Vec::new();
        let mut pages = 0;
        loop {
            if pages == MAX_PAGES {
                return Err(LdapFailure::TooManyPages { op, pages }.into());
            }
            pages += 1;
            let control = PagedResults { size: page_size, cookie: std::mem::take(&mut cookie) };
            let mut controls: Vec<RawControl> = vec![control.into()];
            controls.extend(extra.iter().cloned());
            let mut ldap = self.op();
            let r = ldap
                .with_timeout(OP_TIMEOUT)
                .with_controls(controls)
                .search(base, Scope::Subtree, filter, attrs.to_vec())
                .await
                .map_err(|e| transport(&op, e))?;
            let (entries, result) = (r.0, r.1);
            if missing_ok && result.rc == rc::NO_SUCH_OBJECT {
                return Ok(out);
            }
            let result = check(&op, Ok(result), &[])?;
            self.pages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let before = out.len();
            // Search references (AD answers them for partitions below a domain root) are
            // not entries; keyward reads one naming context and leaves them.
            out.extend(entries.into_iter().filter(|e| !e.is_ref() && !e.is_intermediate()).map(SearchEntry::construct));
            on_page(&op, out.len() - before)?;
            cookie = result
                .ctrls
                .iter()
                .find_map(|c| match c {
                    Control(Some(ControlType::PagedResults), raw) => Some(raw.parse::<PagedResults>().cookie),
                    _ => None,
                })
                .unwrap_or_default();
            if cookie.is_empty() {
                return Ok(out);
            }
        }
    }

    /// One entry by its DN, or `None` when it does not exist.
    pub async fn read_entry(&self, dn: &str, attrs: &[&str]) -> Result<Option<SearchEntry>, LdapFailure> {
        self.read_entry_with(dn, attrs, &[]).await
    }

    /// [`Client::read_entry`], with the controls `extra`.
    pub async fn read_entry_with(
        &self,
        dn: &str,
        attrs: &[&str],
        extra: &[RawControl],
    ) -> Result<Option<SearchEntry>, LdapFailure> {
        let op = format!("reading {dn}");
        let mut ldap = self.op();
        let r = ldap
            .with_timeout(OP_TIMEOUT)
            .with_controls(extra.to_vec())
            .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
            .await
            .map_err(|e| transport(&op, e))?;
        if r.1.rc == rc::NO_SUCH_OBJECT {
            return Ok(None);
        }
        check(&op, Ok(r.1), &[])?;
        Ok(r.0.into_iter().find(|e| !e.is_ref() && !e.is_intermediate()).map(SearchEntry::construct))
    }

    /// The values of `attributeTypes` in the server's subschema subentry (RFC 4512 §5.1): the
    /// root DSE names the subentry in `subschemaSubentry`. `None` when the server names none
    /// or the subentry cannot be read.
    pub async fn attribute_types(&self) -> Result<Option<Vec<String>>, LdapFailure> {
        let Some(root) = self.read_entry("", &["subschemaSubentry"]).await? else {
            return Ok(None);
        };
        let Some(dn) = attrs_by_lower_name(&root).get("subschemasubentry").and_then(|v| v.first().cloned()) else {
            return Ok(None);
        };
        let op = format!("reading the schema at {dn}");
        let mut ldap = self.op();
        let r = ldap
            .with_timeout(OP_TIMEOUT)
            .search(&dn, Scope::Base, "(objectClass=subschema)", vec!["attributeTypes"])
            .await
            .map_err(|e| transport(&op, e))?;
        if r.1.rc != 0 {
            return Ok(None);
        }
        let entry = r.0.into_iter().find(|e| !e.is_ref() && !e.is_intermediate()).map(SearchEntry::construct);
        Ok(entry.and_then(|e| attrs_by_lower_name(&e).remove("attributetypes")))
    }

    /// Adds an entry; `ok` lists result codes taken as success.
    pub async fn add(&self, dn: &str, attrs: Vec<(String, HashSet<String>)>, ok: &[u32]) -> Result<u32, LdapFailure> {
        let mut ldap = self.op();
        let r = ldap.with_timeout(OP_TIMEOUT).add(dn, attrs).await;
        check(&format!("adding {dn}"), r, ok).map(|r| r.rc)
    }

    /// Modifies an entry; `ok` lists result codes taken as success.
    pub async fn modify(&self, dn: &str, mods: Vec<Mod<String>>, ok: &[u32]) -> Result<u32, LdapFailure> {
        let mut ldap = self.op();
        let r = ldap.with_timeout(OP_TIMEOUT).modify(dn, mods).await;
        check(&format!("modifying {dn}"), r, ok).map(|r| r.rc)
    }

    /// Deletes an entry; `ok` lists result codes taken as success.
    pub async fn delete(&self, dn: &str, ok: &[u32]) -> Result<u32, LdapFailure> {
        let mut ldap = self.op();
        let r = ldap.with_timeout(OP_TIMEOUT).delete(dn).await;
        check(&format!("deleting {dn}"), r, ok).map(|r| r.rc)
    }

    /// Deletes an entry and everything below it, with Active Directory's Tree Delete control
    /// ([MS-ADTS] LDAP_SERVER_TREE_DELETE_OID); `ok` lists result codes taken as success.
    pub async fn delete_tree(&self, dn: &str, ok: &[u32]) -> Result<u32, LdapFailure> {
        let mut ldap = self.op();
        let control = RawControl { ctype: TREE_DELETE_OID.to_string(), crit: true, val: None };
        let r = ldap.with_timeout(OP_TIMEOUT).with_controls(control).delete(dn).await;
        check(&format!("deleting {dn} and the entries below it"), r, ok).map(|r| r.rc)
    }

    /// Whether the entry at `dn` matches `filter` (a base search); a missing entry does not.
    pub async fn entry_matches(&self, dn: &str, filter: &str) -> Result<bool, LdapFailure> {
        let op = format!("reading {dn}");
        let mut ldap = self.op();
        let r = ldap
            .with_timeout(OP_TIMEOUT)
            .search(dn, Scope::Base, filter, vec!["1.1"])
            .await
            .map_err(|e| transport(&op, e))?;
        if r.1.rc == rc::NO_SUCH_OBJECT {
            return Ok(false);
        }
        check(&op, Ok(r.1), &[])?;
        Ok(r.0.iter().any(|e| !e.is_ref() && !e.is_intermediate()))
    }

    /// Moves an entry below `new_superior`, keeping its RDN.
    pub async fn move_entry(&self, dn: &str, rdn: &str, new_superior: &str) -> Result<(), LdapFailure> {
        let mut ldap = self.op();
        let r = ldap.with_timeout(OP_TIMEOUT).modifydn(dn, rdn, true, Some(new_superior)).await;
        check(&format!("moving {dn} to {new_superior}"), r, &[]).map(|_| ())
    }

    /// All values of a multi-valued attribute that the server returned in ranges (AD answers
    /// `member;range=0-1499` for a large group): reads the following ranges until the last,
    /// whose end is `*`. `first_key` and `first` are the attribute name and values returned
    /// with the entry.
    pub async fn ranged_values(
        &self,
        dn: &str,
        attr: &str,
        first_key: &str,
        first: &[String],
    ) -> Result<Vec<String>, LdapFailure> {
        self.ranged_values_with(dn, attr, first_key, first, &[]).await
    }

    /// [`Client::ranged_values`], with the controls `extra` on each read.
    pub async fn ranged_values_with(
        &self,
        dn: &str,
        attr: &str,
        first_key: &str,
        first: &[String],
        extra: &[RawControl],
    ) -> Result<Vec<String>, LdapFailure> {
        let mut out = first.to_vec();
        let mut key = first_key.to_ascii_lowercase();
        let prefix = format!("{};range=", attr.to_ascii_lowercase());
        while let Some(end) = range_end(&key) {
            let want = format!("{attr};range={}-*", end + 1);
            let Some(e) = self.read_entry_with(dn, &[want.as_str()], extra).await? else { break };
            let Some((k, v)) = attrs_by_lower_name(&e).into_iter().find(|(k, _)| k.starts_with(&prefix)) else {
                break;
            };
            out.extend(v);
            key = k;
        }
        Ok(out)
    }

    pub async fn unbind(&self) {
        let mut ldap = self.ldap.clone();
        let _ = ldap.unbind().await;
    }
}

/// The last index of a ranged attribute's name (`member;range=0-1499` → 1499), or `None` for
/// the last range (`member;range=1500-*`) or a name without a range.
pub fn range_end(key: &str) -> Option<usize> {
    let (_, range) = key.split_once(";range=")?;
    range.split_once('-')?.1.parse().ok()
}

/// An entry's attributes by lower-cased name (servers answer in their schema's case).
pub fn attrs_by_lower_name(e: &SearchEntry) -> HashMap<String, Vec<String>> {
    e.attrs.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_code_and_the_diagnostic() {
        let f = LdapFailure::Result { op: "binding as cn=x".into(), rc: 49, text: "bad password ".into() };
        assert_eq!(f.to_string(), "binding as cn=x: LDAP result 49 (invalidCredentials): bad password");
        let f = LdapFailure::Result { op: "adding cn=y".into(), rc: 68, text: String::new() };
        assert_eq!(f.to_string(), "adding cn=y: LDAP result 68 (entryAlreadyExists)");
        assert_eq!(f.rc(), Some(68));
    }

    /// A BER TLV.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// A BER INTEGER's contents (two's complement, minimal).
    fn int(v: u32) -> Vec<u8> {
        let mut b: Vec<u8> = v.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        if b.first().is_none_or(|f| f & 0x80 != 0) {
            b.insert(0, 0);
        }
        b
    }

    /// Reads one LDAP message: its id and its operation's tag.
    async fn read_message(s: &mut tokio::net::TcpStream) -> Option<(u32, u8)> {
        use tokio::io::AsyncReadExt;
        let mut head = [0u8; 2];
        s.read_exact(&mut head).await.ok()?;
        let len = if head[1] & 0x80 == 0 {
            head[1] as usize
        } else {
            let mut l = vec![0u8; (head[1] & 0x7f) as usize];
            s.read_exact(&mut l).await.ok()?;
            l.iter().fold(0usize, |a, b| (a << 8) | *b as usize)
        };
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.ok()?;
        let id_len = body[1] as usize;
        let id = body[2..2 + id_len].iter().fold(0u32, |a, b| (a << 8) | *b as u32);
        Some((id, body[2 + id_len]))
    }

    /// A server that binds anyone and answers every search with no entry and a paging cookie.
    pub(super) async fn endless_pager(listener: tokio::net::TcpListener) {
        use tokio::io::AsyncWriteExt;
        let (mut s, _) = listener.accept().await.unwrap();
        let result = [tlv(0x0a, &[0]), tlv(0x04, &[]), tlv(0x04, &[])].concat();
        while let Some((id, op)) = read_message(&mut s).await {
            let reply = match op {
                0x60 => tlv(0x30, &[tlv(0x02, &int(id)), tlv(0x61, &result)].concat()),
                0x63 => {
                    let value = tlv(0x30, &[tlv(0x02, &[0]), tlv(0x04, b"again")].concat());
                    let control = tlv(0x30, &[tlv(0x04, b"1.2.840.113556.1.4.319"), tlv(0x04, &value)].concat());
                    tlv(0x30, &[tlv(0x02, &int(id)), tlv(0x65, &result), tlv(0xa0, &control)].concat())
                }
                _ => break,
            };
            if s.write_all(&reply).await.is_err() {
                break;
            }
        }
    }

    #[test]
    fn a_server_that_pages_without_end_is_stopped() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("ldap://{}", listener.local_addr().unwrap());
            tokio::spawn(endless_pager(listener));
            let o = ConnectOptions { url: &url, start_tls: false, ca_file: None, bind_dn: "cn=k", password: "p" };
            let client = Client::connect(&o).await.unwrap();
            let e = client.search_paged("dc=x", "(objectClass=*)", &["cn"], 500, false).await.unwrap_err();
            assert_eq!(
                e,
                LdapFailure::TooManyPages { op: "searching dc=x for (objectClass=*)".into(), pages: MAX_PAGES }
            );
            assert!(e.to_string().contains("after 2000 pages"), "{e}");
            assert_eq!(client.operations(), 1 + MAX_PAGES, "the bind and the pages, no more");
        });
    }

    #[test]
    fn ranges_of_values() {
        assert_eq!(range_end("member;range=0-1499"), Some(1499));
        assert_eq!(range_end("member;range=1500-*"), None);
        assert_eq!(range_end("member"), None);
    }

    #[test]
    fn tls_configuration_refuses_a_bad_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        assert!(tls_config(Some(&p)).unwrap_err().contains("holds no certificate"));
        assert!(tls_config(Some(&dir.path().join("missing.pem"))).is_err());
        assert!(tls_config(None).is_ok());
    }
}
