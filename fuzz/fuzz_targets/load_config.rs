//! Arbitrary bytes as a resource file beside a valid `keyward.yaml`, and as `keyward.yaml`
//! itself: loading and validation must never panic, whatever the input.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

const SETTINGS: &[u8] = b"version: 1\ntargets:\n  directory:\n    provider: file\n    path: directory.json\n";

fuzz_target!(|data: &[u8]| {
    let root = Path::new("/fuzz");
    for files in [
        vec![(PathBuf::from("keyward.yaml"), SETTINGS.to_vec()), (PathBuf::from("input.yaml"), data.to_vec())],
        vec![(PathBuf::from("keyward.yaml"), data.to_vec())],
    ] {
        if let Ok(loaded) = keyward::load::load_files(root, files) {
            let _ = keyward::validate::validate(&loaded);
        }
    }
});
