//! Arbitrary bytes as a resource file beside a valid `keyward.yaml`, and as `keyward.yaml`
//! itself: loading and validation must never panic. The property is
//! `keyward::fuzzing::load_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::load_config(data));
