//! Bad input: every broken configuration gives clear diagnostics and exit 1; never a panic, a
//! hang or a huge allocation.
//!
//! Each case is a folder under `tests/bad-input/`, or is generated here in a temporary folder
//! when it cannot sensibly be committed (invalid UTF-8, a 50 MB file, 10,000 levels of
//! nesting). Every case is checked twice:
//! - through the library (`load_dir` + `validate`): the expected diagnostic codes, every
//!   diagnostic naming a file and saying what to do, and a snapshot of the rendered text
//!   (colour off, width 100; paths are relative to the configuration folder);
//! - through the binary (`keyward validate DIR`): exit code 1, and stderr naming the file and
//!   line of every error.
//!
//! The alias-bomb, deep-nesting, huge-document and many-problems cases rely on the limits in
//! `validate::limits` (checked before serde_yaml parses a document), keyward's iterative YAML
//! walking and the cap on reported problems; they assert the `too-complex` code or the summary
//! rather than a timing, and a regression shows as a hang, a stack overflow or an
//! out-of-memory abort of this test.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use keyward::diagnostic::Diagnostic;
use keyward::load::{self, LoadError, Loaded};
use keyward::output::diagnostics::render_text;
use keyward::validate;

/// The wrap width of snapshots.
const WIDTH: usize = 100;

/// A minimal valid keyward.yaml with one `file` target.
const SETTINGS: &str = "version: 1\ntargets:\n  directory:\n    provider: file\n    path: .keyward/directory.json\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input").join(name)
}

/// A temporary configuration folder holding the minimal keyward.yaml and `files`.
fn generated(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("keyward.yaml"), SETTINGS).expect("write keyward.yaml");
    for (rel, bytes) in files {
        let path = dir.path().join(rel);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create folder");
        fs::write(path, bytes).expect("write file");
    }
    dir
}

/// Loads and validates `dir` through the library; it must be invalid.
fn library(dir: &Path) -> (Loaded, Vec<Diagnostic>) {
    let loaded = load::load_dir(dir).unwrap_or_else(|e| panic!("{} does not load: {e}", dir.display()));
    let validated = validate::validate(&loaded);
    assert!(validated.has_errors(), "{} validated without errors", dir.display());
    assert!(validated.state.is_none(), "an invalid configuration has no state");
    for d in &validated.diagnostics {
        assert!(d.file.is_some(), "diagnostic names no file: {d:?}");
        assert!(d.help.is_some(), "diagnostic does not say what to do: {d:?}");
        assert!(!d.message.trim().is_empty(), "diagnostic has no message: {d:?}");
    }
    (loaded, validated.diagnostics)
}

/// Runs `keyward validate DIR`.
fn binary(dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("validate")
        .arg(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run keyward");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Checks one case through the library and the binary, snapshots the rendered diagnostics and
/// returns them for further assertions.
fn check(name: &str, dir: &Path, codes: &[&str]) -> Vec<Diagnostic> {
    let (loaded, diags) = library(dir);
    let got: Vec<&str> = diags.iter().map(|d| d.code).collect();
    assert_eq!(got, codes, "diagnostic codes of {name}");
    insta::assert_snapshot!(name, render_text(&diags, Some(&loaded), false, WIDTH));

    let (code, stderr) = binary(dir);
    assert_eq!(code, Some(1), "keyward validate {name} exits 1; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "keyward panicked on {name}:\n{stderr}");
    for d in diags.iter().filter(|d| d.is_error()) {
        let file = d.file.as_ref().expect("checked above").display();
        let place = match d.line {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        };
        assert!(stderr.contains(&place), "stderr of {name} does not name {place}:\n{stderr}");
    }
    diags
}

fn case(name: &str, codes: &[&str]) -> Vec<Diagnostic> {
    check(name, &fixture(name), codes)
}

#[test]
fn malformed_yaml() {
    case("malformed-yaml", &["yaml-syntax", "yaml-syntax"]);
}

#[test]
fn wrong_type() {
    case("wrong-type", &["invalid-type", "invalid-type"]);
}

#[test]
fn unknown_field() {
    let diags = case("unknown-field", &["unknown-field"]);
    assert_eq!(diags[0].help.as_deref(), Some("did you mean `email`?"));
}

#[test]
fn unknown_kind() {
    let diags = case("unknown-kind", &["unknown-kind"]);
    assert_eq!(diags[0].help.as_deref(), Some("did you mean `User`?"));
}

#[test]
fn missing_kind() {
    case("missing-kind", &["missing-kind"]);
}

#[test]
fn empty_file() {
    case("empty-file", &["empty-file", "empty-file"]);
}

#[test]
fn empty_settings() {
    case("empty-settings", &["empty-file"]);
}

#[test]
fn bad_settings() {
    case("bad-settings", &["unknown-value"]);
}

#[test]
fn no_settings() {
    let dir = fixture("no-settings");
    let err = load::load_dir(&dir).expect_err("a folder without keyward.yaml does not load");
    assert!(matches!(err, LoadError::NoSettings { .. }), "{err:?}");
    let message = err.to_string().replace(&dir.display().to_string(), "<dir>");
    insta::assert_snapshot!("no-settings", message);

    let (code, stderr) = binary(&dir);
    assert_eq!(code, Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("has no keyward.yaml"), "{stderr}");
}

#[test]
fn non_utf8() {
    let dir = generated(&[
        ("users/alice.yaml", b"kind: User\nname: \xff\xfe\nuserName: alice@example.com\n"),
        ("users/bob.yaml", b"kind: User\nname: bob\nuserName: bob@example.com\n"),
        // Latin-1, as an old editor might save it.
        ("roles/zurich.yaml", b"kind: Role\nname: zurich-office\ndescription: Z\xfcrich office\n"),
    ]);
    let diags = check("non-utf8", dir.path(), &["not-utf8", "not-utf8"]);
    assert_eq!((diags[0].line, diags[1].line), (Some(3), Some(2)));
}

#[test]
fn non_utf8_settings() {
    let dir = generated(&[("users/bob.yaml", b"kind: User\nname: bob\nuserName: bob@example.com\n")]);
    fs::write(dir.path().join("keyward.yaml"), b"# Z\xfcrich\nversion: 1\n").expect("write keyward.yaml");
    check("non-utf8-settings", dir.path(), &["not-utf8"]);
}

#[test]
fn large_file() {
    let dir = generated(&[("users/bob.yaml", b"kind: User\nname: bob\nuserName: bob@example.com\n")]);
    // 50 MB of valid YAML documents: too large to read, whatever it holds.
    let chunk = "kind: User\nname: user\nuserName: user@example.com\n---\n".repeat(20_000);
    let mut file = fs::File::create(dir.path().join("users/huge.yaml")).expect("create");
    let mut written = 0;
    while written < 50 * 1024 * 1024 {
        file.write_all(chunk.as_bytes()).expect("write");
        written += chunk.len();
    }
    drop(file);
    let (loaded, _) = library(dir.path());
    assert!(!loaded.files.iter().any(|f| f.path.ends_with("huge.yaml")), "the large file was read");
    check("large-file", dir.path(), &["file-too-large"]);
}

#[test]
fn billion_laughs() {
    let diags = case("billion-laughs", &["too-complex", "too-complex"]);
    assert!(diags.iter().all(|d| d.message.contains("alias bomb")), "{diags:?}");
}

#[test]
fn deep_nesting() {
    const DEPTH: usize = 10_000;
    // The value of `kind` nests 10,000 lists, one `[` per line.
    let flow = format!("kind:\n{}{}", " [\n".repeat(DEPTH), " ]\n".repeat(DEPTH));
    // 10,000 nested block lists on one line, below a kind keyward does not know.
    let block = format!("kind: Usr\nname: carol\n# a runaway list\nroles:\n{}x\n", "- ".repeat(DEPTH));
    // The same without a kind.
    let headless = format!("name: dave\n\nroles:\n{}x\n", "- ".repeat(DEPTH));
    // 10,000 nested mappings, one `{` per line, where a string belongs.
    let maps = format!(
        "kind: User\nname: erin\nuserName: erin@example.com\ndisplayName:\n{}{}",
        " {a:\n".repeat(DEPTH),
        " }\n".repeat(DEPTH)
    );
    let dir = generated(&[
        ("users/flow.yaml", flow.as_bytes()),
        ("users/block.yaml", block.as_bytes()),
        ("users/headless.yaml", headless.as_bytes()),
        ("users/maps.yaml", maps.as_bytes()),
    ]);
    check("deep-nesting", dir.path(), &["unknown-kind", "too-complex", "missing-kind", "too-complex"]);
}

#[test]
fn huge_document() {
    // 1 MB, well under the file limit, but 250,000 list items in one document: serde_yaml
    // would hold about 100 bytes per item, and checking each would take minutes.
    let doc = format!("kind: User\nname: erin\nuserName: erin@example.com\nroles:\n{}", "- a\n".repeat(250_000));
    let dir = generated(&[("users/erin.yaml", doc.as_bytes())]);
    check("huge-document", dir.path(), &["too-complex"]);
}

#[test]
fn many_problems_are_capped() {
    // 1,000 dangling references in one document: the first ones are shown, the rest counted.
    let roles: Vec<String> = (0..1000).map(|i| format!("missing-{i}")).collect();
    let doc = format!("kind: User\nname: erin\nuserName: erin@example.com\nroles: [{}]\n", roles.join(", "));
    let dir = generated(&[("users/erin.yaml", doc.as_bytes())]);
    let loaded = load::load_dir(dir.path()).expect("loads");
    let diags = validate::validate(&loaded).diagnostics;
    assert_eq!(diags.len(), 21, "20 problems and a summary");
    assert!(diags[..20].iter().all(|d| d.code == "unknown-reference"));
    let summary = &diags[20];
    assert!(summary.is_error());
    insta::assert_snapshot!("many-problems-summary", render_text(&diags[20..], Some(&loaded), false, WIDTH));

    let (code, stderr) = binary(dir.path());
    assert_eq!(code, Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("980 more problems are not shown"), "{stderr}");
}

#[test]
fn name_with_space() {
    let diags = case("name-with-space", &["invalid-value"]);
    assert_eq!(diags[0].field.as_deref(), Some("name"));
    assert!(diags[0].help.as_deref().is_some_and(|h| h.ends_with("for example `alice-smith`")));
}

#[test]
fn unicode_lookalike() {
    let diags = case("unicode-lookalike", &["invalid-value"]);
    assert!(diags[0].help.as_deref().is_some_and(|h| h.contains("U+0430")));
}

#[test]
fn invalid_date() {
    let diags = case("invalid-date", &["invalid-value"]);
    assert_eq!(diags[0].field.as_deref(), Some("roles[0].expires"));
}

#[test]
fn bad_duration() {
    let diags = case("bad-duration", &["invalid-value"]);
    assert_eq!(diags[0].field.as_deref(), Some("credentials[0].lifetime"));
}

#[test]
fn duplicate_name() {
    case("duplicate-name", &["duplicate-name"]);
}

#[test]
fn duplicate_user_name() {
    case("duplicate-user-name", &["duplicate-user-name"]);
}

/// A role with one invalid field is reported once, where it is; the settings that name it say
/// it has errors instead of calling it not defined, and the user who holds it says nothing.
#[test]
fn reference_to_a_resource_with_errors() {
    let diags = case("reference-to-invalid", &["reference-to-invalid", "invalid-type"]);
    assert!(diags.iter().all(|d| !d.message.contains("not defined")), "{diags:#?}");
    assert!(diags[0].message.contains("which has errors (see roles/it.yaml)"), "{}", diags[0].message);
}

/// Who is accountable: role owners and reviewers that name nothing, GitHub logins that are not
/// logins or are claimed twice, and a revocation without a reason.
#[test]
fn governance() {
    let diags = case(
        "governance",
        &[
            "unknown-reference",      // keyward.yaml: reviewer who is not a User
            "invalid-github-team",    // keyward.yaml: team without @
            "unknown-reviewers",      // keyward.yaml: default owners name an undefined group
            "empty-reason",           // certification: revoke without a reason
            "unknown-reference",      // role: misspelt owner
            "unknown-reviewers",      // role: misspelt group
            "invalid-github-login",   // user: login written with @
            "duplicate-github-login", // user: the same login in another case
        ],
    );
    assert_eq!(diags[4].help.as_deref(), Some("did you mean `laura`?"));
    assert_eq!(diags[5].help.as_deref(), Some("did you mean `finance-leads`?"));
}

#[test]
fn dangling_references() {
    case(
        "dangling-references",
        &[
            "unknown-reference", // authentication policy: role
            "unknown-reference", // SoD rule: role
            "unknown-duty",      // SoD rule: duty
            "unknown-reference", // SoD exception: user
            "unknown-target",    // role binding: misspelt target
            "unknown-target",    // role binding: target not defined
            "unknown-reference", // service account: owner
            "unknown-reference", // user: manager
            "unknown-reference", // user: role
            "unknown-reference", // user: role with expiry
            "unknown-target",    // user: target
            "unknown-reference", // user: misspelt manager
        ],
    );
}

#[test]
fn literal_secret() {
    let diags = case("literal-secret", &["literal-secret"]);
    assert!(!diags[0].message.contains("hunter2"), "the diagnostic repeats the secret");
}

#[test]
fn insecure_url() {
    case("insecure-url", &["insecure-url"]);
}

#[test]
fn state_settings() {
    let diags = case("state-settings", &["credential-choice", "insecure-url", "invalid-prefix"]);
    assert!(diags[0].message.contains("accountKey and sasToken"), "{}", diags[0].message);
    let diags = case("state-unknown-field", &["unknown-field"]);
    assert_eq!(diags[0].help.as_deref(), Some("did you mean `accountKey`?"));
    let diags = case("state-literal-key", &["literal-secret"]);
    assert!(!diags[0].message.contains("hunter2"), "the diagnostic repeats the secret");
    assert_eq!(diags[0].field.as_deref(), Some("state.accountKey"));
}

#[test]
fn ldap_settings() {
    let diags = case(
        "ldap-settings",
        &[
            "field-not-for-provider",
            "invalid-dn",
            "invalid-attribute",
            "invalid-disable",
            "invalid-disable",
            "field-not-for-provider",
        ],
    );
    assert!(diags[1].message.contains("ou=people,,dc=example,dc=com"), "{}", diags[1].message);
    assert!(diags[5].message.contains("`accessLog` does not apply to flavor `ad`"), "{}", diags[5].message);
}

#[test]
fn manager_cycle() {
    case("manager-cycle", &["manager-cycle", "self-manager"]);
}

#[test]
fn binding_not_supported() {
    case("binding-not-supported", &["binding-not-supported"]);
}

#[test]
fn multiple_problems_are_all_reported_in_order() {
    let diags = case(
        "multiple-problems",
        &["unknown-field", "invalid-type", "unknown-reference", "invalid-value", "unknown-kind", "yaml-syntax"],
    );
    let places: Vec<(&Path, u32)> =
        diags.iter().map(|d| (d.file.as_deref().expect("a file"), d.line.expect("a line"))).collect();
    let mut sorted = places.clone();
    sorted.sort();
    assert_eq!(places, sorted, "diagnostics are sorted by file and line");
    let files: std::collections::BTreeSet<&Path> = places.iter().map(|(f, _)| *f).collect();
    assert_eq!(files.len(), 3, "every file's problems are reported");
}
