//! A value escaped into `(uid=VALUE)` must parse back, with ldap3's filter parser, to
//! exactly VALUE. The property is `keyward::fuzzing::ldap_filter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::ldap_filter(data));
