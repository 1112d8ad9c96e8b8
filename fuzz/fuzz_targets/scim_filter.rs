//! A SCIM filter string literal must read back as the exact value it was made from. The
//! property is `keyward::fuzzing::scim_filter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::scim_filter(data));
