//! A SCIM filter string literal (RFC 7644 §3.4.2.2, JSON string rules) must read back as the
//! exact value it was made from, for any string.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let literal = keyward::provider::scim::filter::string(s);
    let back: String = serde_json::from_str(&literal).expect("a filter literal is a JSON string");
    assert_eq!(back, s);
    let f = keyward::provider::scim::filter::eq("userName", s);
    assert!(f.starts_with("userName eq \""));
});
