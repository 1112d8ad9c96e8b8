//! The properties the fuzz targets under `fuzz/` check, as plain functions.
//!
//! Each function takes arbitrary bytes and panics exactly when its property fails; it returns
//! normally otherwise. The libFuzzer targets are one-line calls to them, `tests/fuzz_seeds.rs`
//! runs them over the committed seeds and regression inputs with the stable compiler, and the
//! LDAP escaping proptests call the `*_value` forms, so the property is written once.
//!
//! Bytes that are not UTF-8 are read lossily (each bad sequence becomes U+FFFD) by the targets
//! that need a string, so every input exercises the escaper instead of being skipped.
//!
//! Not part of keyward's interface: it exists for the fuzz crate and the tests.

use std::path::{Path, PathBuf};

use ldap3::asn1::{OctetString, Sequence, Tag, TagClass};

use crate::model::dn;
use crate::provider::scim::filter;

/// A valid `keyward.yaml` for [`load_config`] to put beside the input.
const SETTINGS: &[u8] = b"version: 1\ntargets:\n  directory:\n    provider: file\n    path: directory.json\n";

/// The base DN below which [`ldap_dn_value`] names its entry.
const BASE_DN: &str = "ou=people,dc=example,dc=com";

/// The context-specific tag of an equalityMatch filter (RFC 4511 §4.5.1).
const EQUALITY_MATCH: u64 = 3;

/// The input as a resource file beside a valid `keyward.yaml`, and as `keyward.yaml` itself:
/// loading and validation must not panic, whatever the bytes.
pub fn load_config(data: &[u8]) {
    let root = Path::new("/fuzz");
    for files in [
        vec![(PathBuf::from("keyward.yaml"), SETTINGS.to_vec()), (PathBuf::from("input.yaml"), data.to_vec())],
        vec![(PathBuf::from("keyward.yaml"), data.to_vec())],
    ] {
        if let Ok(loaded) = crate::load::load_files(root, files) {
            let _ = crate::validate::validate(&loaded);
        }
    }
}

/// [`scim_filter_value`] of the input read as text.
pub fn scim_filter(data: &[u8]) {
    scim_filter_value(&String::from_utf8_lossy(data));
}

/// A SCIM filter string literal (RFC 7644 §3.4.2.2, JSON string rules) reads back as exactly
/// `value`, and an equality filter quotes it after the attribute.
pub fn scim_filter_value(value: &str) {
    let literal = filter::string(value);
    let back: String = serde_json::from_str(&literal)
        .unwrap_or_else(|e| panic!("the filter literal {literal:?} is not a JSON string: {e}"));
    assert_eq!(back, value, "the filter literal {literal:?} reads back as another value");
    let eq = filter::eq("userName", value);
    assert_eq!(eq, format!("userName eq {literal}"), "the equality filter does not quote its value");
}

/// [`ldap_filter_value`] of the input read as text.
pub fn ldap_filter(data: &[u8]) {
    ldap_filter_value(&String::from_utf8_lossy(data));
}

/// A value escaped for an LDAP filter (RFC 4515) has no unescaped special left, unescapes to
/// exactly `value`, and `(uid=VALUE)` parses, with the filter parser ldap3 uses to encode the
/// search it sends, to one equality match of `uid` against exactly the bytes of `value`.
pub fn ldap_filter_value(value: &str) {
    let escaped = dn::filter_value(value);
    assert!(
        !escaped.contains(['*', '(', ')', '\0']),
        "the escaped value {escaped:?} keeps a character RFC 4515 forbids unescaped"
    );
    assert_eq!(
        dn::unescape_filter_value(&escaped).as_deref(),
        Some(value),
        "the escaped value {escaped:?} unescapes to another value"
    );
    let text = dn::eq_filter("uid", value);
    let parsed = ldap3::parse_filter(&text).unwrap_or_else(|()| panic!("the filter {text:?} does not parse"));
    let Tag::Sequence(Sequence { class: TagClass::Context, id: EQUALITY_MATCH, inner }) = parsed else {
        panic!("the filter {text:?} parses to something other than an equality match: {parsed:?}");
    };
    let [Tag::OctetString(OctetString { inner: attr, .. }), Tag::OctetString(OctetString { inner: asserted, .. })] =
        inner.as_slice()
    else {
        panic!("the filter {text:?} parses to an equality match of another shape: {inner:?}");
    };
    assert_eq!(attr.as_slice(), b"uid", "the filter {text:?} names another attribute");
    assert_eq!(asserted.as_slice(), value.as_bytes(), "the filter {text:?} asserts another value");
}

/// [`ldap_dn_value`] of the input read as text.
pub fn ldap_dn(data: &[u8]) {
    ldap_dn_value(&String::from_utf8_lossy(data));
}

/// A DN made of `uid=VALUE` (the value escaped for an RDN, RFC 4514) below a three-RDN base
/// parses back to four RDNs whose first holds exactly `value`, and prints as the same string.
pub fn ldap_dn_value(value: &str) {
    let text = dn::child("uid", value, BASE_DN);
    let parsed = dn::Dn::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.rdn_value("uid"), Some(value), "the DN {text:?} holds another value");
    assert_eq!(parsed.rdns.len(), 4, "the DN {text:?} splits into {} RDNs", parsed.rdns.len());
    assert_eq!(parsed.to_string(), text, "the DN {text:?} prints as another string");
}
