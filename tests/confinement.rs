//! Nothing is written outside its place (docs/security.md): every path the configuration names
//! for keyward to write (`deliver.file`, `audit.path`, the file provider's `path`) is relative,
//! inside the configuration folder and free of `..`, checked at validate time with file and
//! line; and at write time no symbolic link below the configuration folder is followed, so a
//! link planted after validation is refused and nothing outside changes.

mod support;

use support::Sandbox;

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle in text") + 1
}

const OUTSIDE: [&str; 5] =
    ["../victim.txt", "/tmp/keyward-victim.txt", "secrets/../../victim.txt", "..\\victim.txt", "secrets/"];

/// Validates with `from` in `file` replaced by `with` each path that leaves the folder,
/// expecting an error at that path's line naming it.
fn refused_at_validate(file: &str, from: &str, with: impl Fn(&str) -> String) {
    for bad in OUTSIDE {
        let sb = Sandbox::example("quickstart");
        sb.edit(file, from, &with(bad));
        let run = sb.run(&["validate", "{dir}"]);
        run.expect(1);
        let line = line_of(&sb.read(file), bad);
        assert!(run.stderr.contains(&format!("{file}:{line}:")), "{bad}: {}", run.stderr);
        assert!(run.stderr.contains(&format!("`{bad}`")), "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("path-outside-configuration"), "{bad}: {}", run.stderr);
    }
}

#[test]
fn a_credential_delivered_outside_the_configuration_folder_is_a_validation_error() {
    refused_at_validate(
        "service-accounts/payments-bot.yaml",
        "deliver: {file: .keyward/secrets/payments-bot.pem}",
        |p| format!("deliver: {{file: '{p}'}}"),
    );
}

#[test]
fn an_audit_log_outside_the_configuration_folder_is_a_validation_error() {
    refused_at_validate("keyward.yaml", "path: .keyward/audit.jsonl", |p| format!("path: '{p}'"));
    // Refused with the state written beside it, not only the log.
    let sb = Sandbox::example("quickstart");
    sb.edit("keyward.yaml", "path: .keyward/audit.jsonl", "path: ../audit.jsonl");
    sb.run(&["apply", "{dir}", "--auto-approve"]).expect(1);
    assert!(!sb.path("../audit.jsonl").exists());
}

#[test]
fn a_file_directory_outside_the_configuration_folder_is_a_validation_error() {
    refused_at_validate("keyward.yaml", "path: .keyward/directory.json", |p| format!("path: '{p}'"));
}

#[test]
fn paths_inside_the_folder_still_validate() {
    let sb = Sandbox::example("quickstart");
    sb.edit("keyward.yaml", "path: .keyward/directory.json", "path: ./state/dir.json");
    sb.edit("keyward.yaml", "path: .keyward/audit.jsonl", "path: logs/audit.jsonl");
    sb.edit(
        "service-accounts/payments-bot.yaml",
        "deliver: {file: .keyward/secrets/payments-bot.pem}",
        "deliver: {file: secrets/bot.pem}",
    );
    sb.run(&["validate", "{dir}"]).expect(0);
}

/// A link committed or planted below the configuration folder after validation: the
/// credential's folder points outside. Apply refuses to deliver through it, naming the link,
/// and writes nothing there.
#[cfg(unix)]
#[test]
fn a_credential_is_never_delivered_through_a_planted_symbolic_link() {
    let sb = Sandbox::example("quickstart");
    let elsewhere = tempfile::tempdir().unwrap();
    sb.run(&["validate", "{dir}"]).expect(0);
    std::fs::create_dir_all(sb.path(".keyward")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), sb.path(".keyward/secrets")).unwrap();
    let run = sb.run(&["apply", "{dir}", "--auto-approve"]);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert_ne!(run.code, 0, "{said}");
    assert!(said.contains(".keyward/secrets is a symbolic link"), "{said}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);

    // The delivered file itself a link to a file outside (`~/.bashrc`): refused, untouched.
    let sb = Sandbox::example("quickstart");
    let victim = elsewhere.path().join("bashrc");
    std::fs::write(&victim, "original").unwrap();
    std::fs::create_dir_all(sb.path(".keyward/secrets")).unwrap();
    std::os::unix::fs::symlink(&victim, sb.path(".keyward/secrets/payments-bot.pem")).unwrap();
    let run = sb.run(&["apply", "{dir}", "--auto-approve"]);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert_ne!(run.code, 0, "{said}");
    assert!(said.contains("payments-bot.pem is a symbolic link"), "{said}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "original");
}

/// The file provider's folder, or its document, a link planted outside: plan and apply refuse
/// it, naming the link, and the outside stays as it was.
#[cfg(unix)]
#[test]
fn the_file_directory_is_never_read_or_written_through_a_planted_symbolic_link() {
    let sb = Sandbox::example("quickstart");
    let elsewhere = tempfile::tempdir().unwrap();
    sb.edit("keyward.yaml", "path: .keyward/directory.json", "path: store/directory.json");
    sb.run(&["validate", "{dir}"]).expect(0);
    std::os::unix::fs::symlink(elsewhere.path(), sb.path("store")).unwrap();
    for args in [&["plan", "{dir}"][..], &["apply", "{dir}", "--auto-approve"]] {
        let run = sb.run(args);
        assert_ne!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("store is a symbolic link"), "{args:?}: {}", run.stderr);
    }
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);

    let sb = Sandbox::example("quickstart");
    let victim = elsewhere.path().join("directory.json");
    std::fs::write(&victim, "{}").unwrap();
    std::fs::create_dir_all(sb.path(".keyward")).unwrap();
    std::os::unix::fs::symlink(&victim, sb.path(".keyward/directory.json")).unwrap();
    let run = sb.run(&["apply", "{dir}", "--auto-approve"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("directory.json is a symbolic link"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "{}");
}

/// Reading the configuration: a `*.yaml` (or a folder) that is a symbolic link leaving the
/// folder is an error naming it, never followed nor silently skipped; a link to a file inside is
/// followed; the same holds for a committed link read from a git revision.
#[cfg(unix)]
#[test]
fn configuration_links_that_leave_the_folder_are_errors_and_links_inside_are_followed() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    let secret_user = "kind: User\nname: mallory\nuserName: mallory@northwind.example\ndisplayName: Mallory\n";
    std::fs::write(outside.path().join("mallory.yaml"), secret_user).unwrap();

    let sb = Sandbox::example("quickstart");
    symlink(outside.path().join("mallory.yaml"), sb.path("users/mallory.yaml")).unwrap();
    let run = sb.run(&["validate", "{dir}"]);
    run.expect(1);
    assert!(run.stderr.contains("users/mallory.yaml is a symbolic link to"), "{}", run.stderr);
    assert!(run.stderr.contains("link-outside-configuration"), "{}", run.stderr);
    let loaded = keyward::load::load_dir(&sb.path("")).unwrap();
    assert!(!loaded.files.iter().any(|f| f.text.contains("mallory")), "the outside file is not read");

    // A folder linked from outside is refused as well, rather than silently skipped.
    std::fs::remove_file(sb.path("users/mallory.yaml")).unwrap();
    symlink(outside.path(), sb.path("more-users")).unwrap();
    let run = sb.run(&["validate", "{dir}"]);
    run.expect(1);
    assert!(run.stderr.contains("more-users is a symbolic link to"), "{}", run.stderr);
    std::fs::remove_file(sb.path("more-users")).unwrap();

    // Links to files inside the folder are read through; a link that points nowhere is an
    // error.
    let sb = Sandbox::example("quickstart");
    std::fs::create_dir(sb.path(".shared")).unwrap();
    for entry in std::fs::read_dir(sb.path("roles")).unwrap() {
        let name = entry.unwrap().file_name();
        std::fs::rename(sb.path("roles").join(&name), sb.path(".shared").join(&name)).unwrap();
        symlink(std::path::Path::new("../.shared").join(&name), sb.path("roles").join(&name)).unwrap();
    }
    sb.run(&["validate", "{dir}"]).expect(0);
    std::fs::remove_dir_all(sb.path(".shared")).unwrap();
    let run = sb.run(&["validate", "{dir}"]);
    run.expect(1);
    assert!(run.stderr.contains("which does not exist"), "{}", run.stderr);
}

#[cfg(unix)]
#[test]
fn a_committed_link_that_leaves_the_folder_is_an_error_at_a_revision() {
    use std::os::unix::fs::symlink;
    let sb = Sandbox::example("quickstart");
    symlink("/etc/hostname", sb.path("users/evil.yaml")).unwrap();
    symlink("../roles/finance.yaml", sb.path("users/alias.yaml")).unwrap();
    support::commit_all(&sb.path(""), "links", "Nancy Davolio", None);
    let loaded = keyward::load::load_revision(&sb.path(""), "HEAD").unwrap();
    let said: Vec<String> = loaded.diagnostics.iter().map(|d| d.message.clone()).collect();
    assert!(said.iter().any(|m| m.contains("users/evil.yaml is a symbolic link to /etc/hostname")), "{said:?}");
    let alias = loaded.files.iter().find(|f| f.path == std::path::Path::new("users/alias.yaml")).unwrap();
    assert_eq!(alias.text, sb.read("roles/finance.yaml"), "a link inside is read as its target");
}

/// A UTF-8 byte-order mark at the start of a YAML file, as some Windows editors write, is
/// accepted, before a document marker or straight before the first key; line numbers still
/// count from the first line.
#[test]
fn a_utf8_byte_order_mark_is_accepted() {
    let sb = Sandbox::example("quickstart");
    let settings: String =
        sb.read("keyward.yaml").lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    let user: String =
        sb.read("users/finance.yaml").lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    assert!(user.starts_with("kind: User"), "{user}");
    sb.write("keyward.yaml", &format!("\u{feff}{settings}"));
    for body in [user.clone(), format!("---\n{user}")] {
        sb.write("users/finance.yaml", &format!("\u{feff}{body}"));
        let run = sb.run(&["validate", "{dir}"]);
        assert_eq!(run.code, 0, "{body:?}: {}", run.stderr);
        // An error in a file with a mark is still reported at its line.
        sb.write("users/finance.yaml", &format!("\u{feff}{}", body.replacen("kind: User", "kind: Usr", 1)));
        let run = sb.run(&["validate", "{dir}"]);
        run.expect(1);
        let line = line_of(&body, "kind: User");
        assert!(run.stderr.contains(&format!("users/finance.yaml:{line}:")), "{}", run.stderr);
    }
}
