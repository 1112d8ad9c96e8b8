//! The fuzz targets' properties over their committed inputs, with the stable compiler.
//!
//! Every target under `fuzz/fuzz_targets/` calls one `keyward::fuzzing` function. This test runs
//! that function over each file in `fuzz/seeds/TARGET/` (hand-picked inputs fuzzing starts
//! from) and `fuzz/regressions/TARGET/` (inputs that once failed, committed with their fix), so
//! both stay checked by plain `cargo test` without a nightly compiler or cargo-fuzz.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use keyward::fuzzing;

/// A property over arbitrary bytes: panics exactly when it fails.
type Property = fn(&[u8]);

/// Each fuzz target and the property it checks.
const TARGETS: &[(&str, Property)] = &[
    ("load_config", fuzzing::load_config),
    ("scim_filter", fuzzing::scim_filter),
    ("ldap_filter", fuzzing::ldap_filter),
    ("ldap_dn", fuzzing::ldap_dn),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files directly in `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs `property` over every seed and regression input of `target`; fails naming each input
/// whose property fails.
fn check(target: &str) {
    let (_, property) = TARGETS.iter().find(|(t, _)| *t == target).expect("a known target");
    let seeds = files(&fuzz_dir().join("seeds").join(target));
    assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ has no inputs");
    let inputs: Vec<PathBuf> = seeds.into_iter().chain(files(&fuzz_dir().join("regressions").join(target))).collect();
    let mut failed = Vec::new();
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| property(&data))).is_err() {
            failed.push(path.strip_prefix(fuzz_dir()).unwrap_or(path).display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: the property fails for {} of {} inputs: {failed:#?}",
        failed.len(),
        inputs.len()
    );
}

#[test]
fn every_fuzz_target_is_checked_here_and_has_seeds() {
    let mut on_disk: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    on_disk.sort();
    let mut here: Vec<String> = TARGETS.iter().map(|(t, _)| t.to_string()).collect();
    here.sort();
    assert_eq!(on_disk, here, "fuzz/fuzz_targets/ and this test's TARGETS differ");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (t, _) in TARGETS {
        assert!(manifest.contains(&format!("name = \"{t}\"")), "fuzz/Cargo.toml has no [[bin]] for {t}");
        let call = format!("keyward::fuzzing::{t}(data)");
        let source = std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{t}.rs"))).unwrap();
        assert!(source.contains(&call), "fuzz/fuzz_targets/{t}.rs does not call {call}");
    }
}

#[test]
fn load_config_seeds_and_regressions() {
    check("load_config");
}

#[test]
fn scim_filter_seeds_and_regressions() {
    check("scim_filter");
}

#[test]
fn ldap_filter_seeds_and_regressions() {
    check("ldap_filter");
}

#[test]
fn ldap_dn_seeds_and_regressions() {
    check("ldap_dn");
}
