//! Shared Key authorization for the Blob service, as Microsoft's "Authorize with Shared Key"
//! documents it (version 2009-09-19 and later):
//!
//! ```text
//! StringToSign = VERB + "\n" + Content-Encoding + "\n" + Content-Language + "\n" +
//!                Content-Length + "\n" + Content-MD5 + "\n" + Content-Type + "\n" +
//!                Date + "\n" + If-Modified-Since + "\n" + If-Match + "\n" +
//!                If-None-Match + "\n" + If-Unmodified-Since + "\n" + Range + "\n" +
//!                CanonicalizedHeaders + CanonicalizedResource
//! Authorization = "SharedKey " + account + ":" + base64(HMAC-SHA256(base64decode(key), UTF-8(StringToSign)))
//! ```
//!
//! - Content-Length is the empty string when it is zero (version 2015-02-21 and later); `Date`
//!   is empty because `x-ms-date` is sent instead.
//! - CanonicalizedHeaders: every `x-ms-` header, its name in lower case, sorted by name, each
//!   once, as `name:value\n`, with the value's runs of whitespace folded to one space and
//!   trimmed.
//! - CanonicalizedResource: `/` + account + the URI path as sent (for an emulator's URL, whose
//!   path starts with the account, the account appears twice); then for each query parameter,
//!   sorted by its lower-cased name, `\nname:value`, its values decoded, sorted and joined with
//!   `,`.
//!
//! The key lives in a [`Secret`] and is only ever handed to HMAC.

use base64::Engine as _;
use reqwest::Request;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use crate::model::Secret;

/// The standard headers of the string to sign, in order, after the verb.
const STANDARD: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// Why an account key cannot be used. The messages never show the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the account key is not base64 (copy it as the portal shows it)")]
    NotBase64,
    #[error("the account key is empty")]
    Empty,
}

/// An account name and its decoded key.
pub struct SharedKey {
    account: String,
    key: Secret<Vec<u8>>,
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKey").field("account", &self.account).field("key", &"(sensitive)").finish()
    }
}

impl SharedKey {
    /// `key` is the account key as the portal shows it (base64). Errors never show it.
    pub fn new(account: &str, key: &Secret<String>) -> Result<SharedKey, KeyError> {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(key.expose().trim()).map_err(|_| KeyError::NotBase64)?;
        if decoded.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(SharedKey { account: account.to_string(), key: Secret::new(decoded) })
    }

    /// Adds the `Authorization` header to a request that carries every other header it will be
    /// sent with (including `x-ms-date` and `x-ms-version`).
    pub fn sign(&self, req: &mut Request) {
        let text = string_to_sign(&self.account, req);
        let value = format!("SharedKey {}:{}", self.account, signature(self.key.expose(), &text));
        req.headers_mut().insert(AUTHORIZATION, HeaderValue::from_str(&value).expect("base64 is a header value"));
    }
}

/// base64 of HMAC-SHA256 of `text` under `key`.
pub fn signature(key: &[u8], text: &str) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&k, text.as_bytes()).as_ref())
}

/// The string to sign for `req` on behalf of `account`.
pub fn string_to_sign(account: &str, req: &Request) -> String {
    let headers = req.headers();
    let mut s = String::with_capacity(256);
    s.push_str(req.method().as_str());
    s.push('\n');
    let body_len = req.body().and_then(|b| b.as_bytes()).map(<[u8]>::len).unwrap_or(0);
    for name in STANDARD {
        let value = if name == "content-length" {
            // Sent by the HTTP client from the body, not set as a header.
            let v = headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            v.unwrap_or_else(|| body_len.to_string())
        } else {
            headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
        };
        if !(name == "content-length" && value == "0") {
            s.push_str(&value);
        }
        s.push('\n');
    }
    s.push_str(&canonicalized_headers(headers));
    s.push_str(&canonicalized_resource(account, req.url()));
    s
}

fn canonicalized_headers(headers: &reqwest::header::HeaderMap) -> String {
    let mut names: Vec<&str> =
        headers.keys().map(|k| k.as_str()).filter(|k| k.starts_with("x-ms-")).collect::<Vec<_>>();
    names.sort_unstable();
    names.dedup();
    let mut s = String::new();
    for name in names {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        s.push_str(name);
        s.push(':');
        s.push_str(&values.join(","));
        s.push('\n');
    }
    s
}

fn canonicalized_resource(account: &str, url: &reqwest::Url) -> String {
    let mut s = format!("/{account}{}", url.path());
    let mut params: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (k, v) in url.query_pairs() {
        params.entry(k.to_lowercase()).or_default().push(v.into_owned());
    }
    for (k, mut values) in params {
        values.sort();
        s.push('\n');
        s.push_str(&k);
        s.push(':');
        s.push_str(&values.join(","));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Method;

    fn request(method: Method, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Request {
        let mut req = Request::new(method, url.parse().unwrap());
        for (k, v) in headers {
            req.headers_mut()
                .append(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        if let Some(b) = body {
            *req.body_mut() = Some(b.to_vec().into());
        }
        req
    }

    /// The worked example of "Authorize with Shared Key" (Blob, Queue and File services): Get
    /// Container Metadata against an emulator-style URL, where the account appears twice in the
    /// canonicalized resource.
    #[test]
    fn the_documented_example_string_to_sign() {
        let req = request(
            Method::GET,
            "http://127.0.0.1:10000/myaccount/mycontainer?restype=container&comp=metadata&timeout=20",
            &[("x-ms-date", "Sun, 11 Oct 2009 21:49:13 GMT"), ("x-ms-version", "2009-09-19")],
            None,
        );
        assert_eq!(
            string_to_sign("myaccount", &req),
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2009-09-19\n\
             /myaccount/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
        );
    }

    /// The documentation's canonicalized-resource examples: query names sorted and lower-cased,
    /// repeated parameters joined in sorted order, values decoded.
    #[test]
    fn the_documented_canonicalized_resources() {
        let url = "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata";
        assert_eq!(
            canonicalized_resource("myaccount", &url.parse().unwrap()),
            "/myaccount/mycontainer\ncomp:metadata\nrestype:container"
        );
        let url = "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=list\
                   &include=snapshots&include=metadata&include=uncommittedblobs";
        assert_eq!(
            canonicalized_resource("myaccount", &url.parse().unwrap()),
            "/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots,uncommittedblobs\nrestype:container"
        );
        let url = "https://myaccount.blob.core.windows.net/c/b?Prefix=a%2Fb%20c";
        assert_eq!(canonicalized_resource("myaccount", &url.parse().unwrap()), "/myaccount/c/b\nprefix:a/b c");
    }

    #[test]
    fn standard_headers_take_their_places_and_a_zero_length_is_empty() {
        let req = request(
            Method::PUT,
            "https://acct.blob.core.windows.net/c/audit.jsonl?comp=appendblock",
            &[
                ("if-match", "\"0x8D\""),
                ("x-ms-version", "2024-11-04"),
                ("x-ms-blob-condition-appendpos", "42"),
                ("x-ms-date", "Sat, 21 Feb 2015 00:48:38 GMT"),
                ("x-ms-meta-note", "  two   spaces\tand a tab "),
                ("content-type", "application/octet-stream"),
            ],
            Some(b"line\n"),
        );
        assert_eq!(
            string_to_sign("acct", &req),
            "PUT\n\n\n5\n\napplication/octet-stream\n\n\n\"0x8D\"\n\n\n\n\
             x-ms-blob-condition-appendpos:42\nx-ms-date:Sat, 21 Feb 2015 00:48:38 GMT\n\
             x-ms-meta-note:two spaces and a tab\nx-ms-version:2024-11-04\n\
             /acct/c/audit.jsonl\ncomp:appendblock"
        );
        let empty = request(Method::PUT, "https://acct.blob.core.windows.net/c/x", &[], Some(b""));
        assert!(string_to_sign("acct", &empty).starts_with("PUT\n\n\n\n"), "zero is the empty string");
    }

    /// The HMAC and its encoding, against a value computed independently with Node's
    /// `crypto.createHmac("sha256", Buffer.from(key, "base64")).update(text).digest("base64")`,
    /// the computation Azurite checks signatures with. The key is a made-up test value.
    #[test]
    fn the_signature_matches_an_independent_implementation() {
        let key = Secret::new(base64::engine::general_purpose::STANDARD.encode(b"keyward test key, not a secret"));
        let sk = SharedKey::new("myaccount", &key).unwrap();
        let text = "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2009-09-19\n\
                    /myaccount/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20";
        assert_eq!(signature(sk.key.expose(), text), "YtghtyGv3xqnm22uU4hvetrfuKxnShl1jGu+UjWgokY=");
        let mut req = request(
            Method::GET,
            "http://127.0.0.1:10000/myaccount/mycontainer?restype=container&comp=metadata&timeout=20",
            &[("x-ms-date", "Sun, 11 Oct 2009 21:49:13 GMT"), ("x-ms-version", "2009-09-19")],
            None,
        );
        sk.sign(&mut req);
        assert_eq!(req.headers()[AUTHORIZATION], "SharedKey myaccount:YtghtyGv3xqnm22uU4hvetrfuKxnShl1jGu+UjWgokY=");
        assert!(!format!("{sk:?}").contains(key.expose()));
    }

    #[test]
    fn a_key_that_is_not_base64_is_refused_without_showing_it() {
        let e = SharedKey::new("a", &Secret::new("not base64 !!".into())).unwrap_err();
        assert_eq!(e, KeyError::NotBase64);
        assert_eq!(e.to_string(), "the account key is not base64 (copy it as the portal shows it)");
        let e = SharedKey::new("a", &Secret::new("  ".into())).unwrap_err();
        assert_eq!(e.to_string(), "the account key is empty");
    }
}
