//! Project tasks for keyward, run as `cargo xtask <command>`.
//!
//! - `test`: the one full test command (formatting, lints, test peers, the whole test suite).
//! - `peers`: install the test peers only and print the environment the tests read.
//! - `fuzz`: run the cargo-fuzz targets under `fuzz/` briefly (needs a nightly toolchain).
//! - `slapd`: start the test OpenLDAP server by hand, for running the LDAP tests alone.
//! - `samba`: start the test Active Directory domain controller by hand, for the AD tests.
//! - `gen-fixture`: write a large, realistic configuration folder for benchmarks and tests.

mod args;
mod azurite;
mod bench;
mod deny;
mod fixture;
mod fuzz;
mod layers;
mod peers;
mod rng;
mod samba;
mod slapd;
mod test_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test [--no-peers] [--skip-peer NAME]... [-- TEST-ARGS...]
      Check formatting and the module layers, run cargo deny and clippy, install the test
      peers (scim2-server, slapd, django-scim2, samba, azurite), start a throwaway slapd and
      a throwaway Samba AD domain controller for the run, and run
      `cargo test --workspace -- --include-ignored`.
      Stops at the first failing step; the servers are stopped at the end, pass or fail.
      --no-peers        install no peer (tests that need one skip or fail on their own)
      --skip-peer NAME  install every peer but NAME (scim2-server, slapd, django-scim2,
                        samba or azurite); repeatable
      TEST-ARGS         appended to the test binaries' arguments (e.g. a name filter)
      A peer that cannot be installed is an error when CI=true and a warning otherwise.

  deny
      Run `cargo deny check` offline with a pinned cargo-deny (installed under target/tools
      when missing): advisories from the snapshot in deny/advisory-db/, licenses, duplicate
      versions and sources, as deny.toml says.

  layers
      List the `crate::` edges between the library's top-level modules and fail on one that
      points to the same or a higher layer (xtask/src/layers.rs holds the layers).

  peers [--no-peers] [--skip-peer NAME]...
      Install the test peers only and print `export` lines for the variables the tests read.

  slapd
      Install slapd if needed, start a throwaway server on a free loopback port, print
      `export` lines for the variables the LDAP tests read, and serve until interrupted.

  samba
      Install Samba's AD DC if needed, provision a throwaway domain, start the domain
      controller in a network namespace of its own (needs root), print `export` lines for the
      variables the AD tests read, and serve until interrupted.

  bench [--sizes 10000,100000] [--runs 5] [--no-criterion]
      Build release binaries, generate fixtures, and measure end to end: `keyward validate`,
      `keyward apply` (onboarding everything) and `keyward plan` with 1% of users changed
      outside git (median wall time of RUNS runs, peak memory); then the Graph provider
      against its fake (benches/graph.rs), the built-in policies on the largest fixture
      (benches/policy.rs), 5,000 users onboarded into scim2-server (installed if needed)
      with request counts, and the criterion benchmarks (benches/engine.rs).

  fuzz [--seconds 30] [--target NAME]...
      Run each libFuzzer target under fuzz/ (or the named ones) for SECONDS with a pinned
      cargo-fuzz (installed under target/tools when missing) and the nightly toolchain,
      starting from the committed inputs in fuzz/seeds/TARGET/ and fuzz/regressions/TARGET/.
      Crashing inputs are kept under target/fuzz/artifacts/TARGET/.

  gen-fixture --users N --out DIR [--seed S] [--roles R] [--sod-rules K]
              [--service-accounts M]
      Write a configuration folder with N users (1,000 per file under users/), R roles
      (default max(6, N/50)), K segregation-of-duties rules (default 50), M service accounts
      (default N/1000 rounded up), data classifications and policies. The seed defaults to 1;
      the same arguments always give the same files. DIR must be missing, empty, or an
      earlier gen-fixture output, which is replaced.
";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(command) = argv.next() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = argv.collect();
    let result = match command.as_str() {
        "test" => args::TestArgs::parse(&rest).and_then(|a| test_cmd::run(&a)),
        "peers" => args::TestArgs::parse(&rest).and_then(|a| test_cmd::peers_only(&a)),
        "slapd" => test_cmd::slapd_only(&rest),
        "samba" => test_cmd::samba_only(&rest),
        "layers" => layers::run(&workspace_root()),
        "deny" => deny::run(&workspace_root()),
        "bench" => bench::BenchArgs::parse(&rest).and_then(|a| bench::run_bench(&a)),
        "fuzz" => fuzz::FuzzArgs::parse(&rest).and_then(|a| fuzz::run(&a)),
        "gen-fixture" => args::FixtureArgs::parse(&rest).and_then(|a| fixture::run(&a)),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives inside the workspace").to_path_buf()
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace_root().join(dir) }
        }
        _ => workspace_root().join("target"),
    }
}
