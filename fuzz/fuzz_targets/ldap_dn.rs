//! A DN built from an RDN value escaped with the LDAP provider's DN escaping must parse
//! back to the same value. The property is `keyward::fuzzing::ldap_dn`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::ldap_dn(data));
