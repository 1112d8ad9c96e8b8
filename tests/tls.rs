//! TLS as keyward's HTTP providers use it, against local TLS servers whose CA and certificates
//! are generated at test time:
//! - a server whose certificate chains to an unknown CA is refused, and accepted once that CA
//!   is the target's `caFile`;
//! - keyward never offers, and never accepts, a TLS version below 1.2.
//!
//! The configuration is the quick start with its directory on `provider: scim`; the server
//! answers every request with a SCIM 401, so a 401 in keyward's error proves the handshake
//! succeeded.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use tokio_rustls::rustls;

const TOKEN_VAR: &str = "KEYWARD_TEST_TLS_TOKEN";

/// A CA and a server certificate for 127.0.0.1 it issued, as PEM.
struct Pki {
    ca_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "keyward test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_cert: cert.der().clone(),
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// Serves TLS (1.2 and 1.3, rustls with ring) on a loopback port from a thread of its own,
/// answering each request with a SCIM 401.
fn serve_tls(pki: &Pki) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = vec![0u8; 16 * 1024];
                    let _ = tls.read(&mut buf).await;
                    let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401","detail":"no"}"#;
                    let resp = format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    port
}

/// A copy of the quick start whose directory is `provider: scim` at `url`, with `caFile` when
/// given.
fn config(dir: &Path, url: &str, ca: Option<&str>) {
    support::copy_dir(&support::repo_root().join("examples/quickstart"), dir);
    let path = dir.join("keyward.yaml");
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut target: serde_yaml::Value =
        serde_yaml::from_str(&format!("{{provider: scim, url: \"{url}\", token: \"${{env:{TOKEN_VAR}}}\"}}")).unwrap();
    if let Some(ca) = ca {
        std::fs::write(dir.join("ca.pem"), ca).unwrap();
        target["caFile"] = "ca.pem".into();
    }
    doc["targets"]["directory"] = target;
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
}

fn plan(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir)
        .args(["plan", "."])
        .env(TOKEN_VAR, "tls-test-token-not-a-secret")
        .env("KEYWARD_NOW", "2026-11-28")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_unless_the_ca_file_names_it() {
    let pki = pki();
    let port = serve_tls(&pki);
    let url = format!("https://127.0.0.1:{port}/v2");

    let untrusted = tempfile::tempdir().unwrap();
    config(untrusted.path(), &url, None);
    let o = plan(untrusted.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "the error says the certificate is the problem: {err}");
    assert!(!err.contains("401 Unauthorized"), "no request may be answered over an untrusted connection: {err}");

    let trusted = tempfile::tempdir().unwrap();
    config(trusted.path(), &url, Some(&pki.ca_pem));
    let o = plan(trusted.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("401 Unauthorized"),
        "with the CA trusted, the handshake succeeds and the server's 401 shows: {err}"
    );
    assert!(!err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains("tls-test-token"), "the token never shows: {err}");
}

/// The versions a ClientHello offers: its `supported_versions` extension (TLS 1.3 clients) or
/// else its legacy version field.
fn offered_versions(hello: &[u8]) -> Vec<u16> {
    // Record header (5) + handshake header (4) + legacy_version (2) + random (32).
    let legacy = u16::from_be_bytes([hello[9], hello[10]]);
    let mut i = 5 + 4 + 2 + 32;
    let sid = hello[i] as usize;
    i += 1 + sid;
    let suites = u16::from_be_bytes([hello[i], hello[i + 1]]) as usize;
    i += 2 + suites;
    let comp = hello[i] as usize;
    i += 1 + comp;
    let ext_end = i + 2 + u16::from_be_bytes([hello[i], hello[i + 1]]) as usize;
    i += 2;
    while i + 4 <= ext_end.min(hello.len()) {
        let kind = u16::from_be_bytes([hello[i], hello[i + 1]]);
        let len = u16::from_be_bytes([hello[i + 2], hello[i + 3]]) as usize;
        if kind == 0x002b {
            let list = &hello[i + 5..i + 4 + len];
            return list.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        }
        i += 4 + len;
    }
    vec![legacy]
}

#[test]
fn tls_below_1_2_is_never_offered_nor_accepted() {
    // A server that reads the ClientHello and answers with a TLS 1.1 ServerHello.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut hello = vec![0u8; 5];
        s.read_exact(&mut hello).unwrap();
        let len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
        hello.resize(5 + len, 0);
        s.read_exact(&mut hello[5..]).unwrap();
        // ServerHello: version 3.2 (TLS 1.1), a random, no session id,
        // TLS_RSA_WITH_AES_128_CBC_SHA, no compression.
        let mut body = vec![0x03, 0x02];
        body.extend_from_slice(&[7u8; 32]);
        body.extend_from_slice(&[0x00, 0x00, 0x2f, 0x00]);
        let mut hs = vec![0x02, 0x00, 0x00, body.len() as u8];
        hs.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x02, 0x00, hs.len() as u8];
        record.extend_from_slice(&hs);
        let _ = s.write_all(&record);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        hello
    });
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &format!("https://127.0.0.1:{port}/v2"), None);
    let o = plan(dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("401 Unauthorized"));

    let hello = server.join().unwrap();
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    let versions = offered_versions(&hello);
    assert!(!versions.is_empty());
    for v in &versions {
        // 0x0303 is TLS 1.2, 0x0304 TLS 1.3; GREASE values (0x?a?a) are ignored by servers.
        let grease = v & 0x0f0f == 0x0a0a;
        assert!(*v == 0x0303 || *v == 0x0304 || grease, "offers version {v:#06x}: {versions:x?}");
    }
    assert!(versions.contains(&0x0304) || versions.contains(&0x0303));
}
