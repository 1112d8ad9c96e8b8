//! Reading a configuration folder, or the same folder at a git revision, into documents that
//! remember their file and line.
//!
//! Guarantees: every `*.yaml`/`*.yml` file below the root is read (hidden folders and files are
//! skipped, and so is `role-contents/`, the snapshots of pinned roles' contents), in a stable order; each YAML document (`---`) becomes one [`Document`] whose
//! `start_line` is the 1-based line of its first line in the file. Files larger than
//! [`MAX_FILE_BYTES`] or not UTF-8 are reported, not read. Nothing here decides what is valid.

mod git;
pub mod locate;

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use git::{GitError, blame, commit_of, head_commit, load_revision, repository_prefix, uncommitted};
pub use locate::{PathSeg, locate};

use crate::diagnostic::Diagnostic;

/// The largest configuration file keyward reads.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The settings file at the root of every configuration.
pub const SETTINGS_FILE: &str = "keyward.yaml";

/// One source file's text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Relative to the configuration root, with `/` separators.
    pub path: PathBuf,
    pub text: String,
}

/// An index into [`Loaded::files`].
pub type FileId = usize;

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: FileId,
    /// Byte range of the document's text in its file.
    pub span: Range<usize>,
    /// 1-based line of the first line of `span`.
    pub start_line: u32,
}

/// A configuration as read from disk or git.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub root: PathBuf,
    pub files: Vec<SourceFile>,
    /// Documents of `keyward.yaml` (there should be exactly one).
    pub settings: Vec<Document>,
    /// Resource documents of every other file.
    pub documents: Vec<Document>,
    /// Read problems: files too large, not UTF-8, or unreadable.
    pub diagnostics: Vec<Diagnostic>,
    /// Every `*.rego` file, for custom policies.
    pub rego: Vec<FileId>,
}

impl Loaded {
    pub fn text(&self, doc: &Document) -> &str {
        &self.files[doc.file].text[doc.span.clone()]
    }

    pub fn path(&self, doc: &Document) -> &Path {
        &self.files[doc.file].path
    }
}

/// Why a configuration could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0} is not a folder")]
    NotADirectory(PathBuf),
    #[error("{root} has no keyward.yaml; a configuration folder needs one at its root (see docs/configuration.md)")]
    NoSettings { root: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// A configuration given in memory as (path relative to the root, content) pairs, as if read
/// from a folder: the same size and encoding checks, the same document splitting. For tools
/// and fuzzing.
pub fn load_files(root: &Path, files: Vec<(PathBuf, Vec<u8>)>) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded { root: root.to_path_buf(), ..Loaded::default() };
    let mut files = files;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (rel, bytes) in files {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            loaded.diagnostics.push(too_large(&rel, bytes.len() as u64));
            continue;
        }
        loaded.add_file(rel, bytes);
    }
    loaded.finish()
}

/// Reads the configuration folder at `root`. A symbolic link is followed when it stays inside
/// the folder (a file is read through it; a folder is read where it really is, once); one that
/// leaves the folder, or points nowhere, is an error naming it, never followed nor silently
/// skipped.
pub fn load_dir(root: &Path) -> Result<Loaded, LoadError> {
    let meta = fs::metadata(root).map_err(|source| LoadError::Io { path: root.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(LoadError::NotADirectory(root.to_path_buf()));
    }
    let real_root = fs::canonicalize(root).map_err(|source| LoadError::Io { path: root.to_path_buf(), source })?;
    let mut found = Found::default();
    walk(root, &real_root, Path::new(""), &mut found)?;
    found.files.sort();
    let mut loaded = Loaded { root: root.to_path_buf(), diagnostics: found.problems, ..Loaded::default() };
    for (rel, full) in found.files {
        let size = fs::metadata(&full).map_err(|source| LoadError::Io { path: full.clone(), source })?.len();
        if size > MAX_FILE_BYTES {
            loaded.diagnostics.push(too_large(&rel, size));
            continue;
        }
        let bytes = fs::read(&full).map_err(|source| LoadError::Io { path: full.clone(), source })?;
        loaded.add_file(rel, bytes);
    }
    loaded.finish()
}

/// What [`walk`] finds: configuration files (relative path, where to read it) and links that
/// leave the folder.
#[derive(Default)]
struct Found {
    files: Vec<(PathBuf, PathBuf)>,
    problems: Vec<Diagnostic>,
}

fn too_large(rel: &Path, size: u64) -> Diagnostic {
    Diagnostic::error(
        "file-too-large",
        format!(
            "file is {:.1} MiB; keyward reads configuration files of at most {} MiB",
            size as f64 / (1024.0 * 1024.0),
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    )
    .in_file(rel)
    .help("split it into several files; any folder layout works")
}

/// Reports the first byte of `bytes` that is not UTF-8, at `offset`, with its line and column.
fn not_utf8(rel: &Path, bytes: &[u8], offset: usize) -> Diagnostic {
    let valid = &bytes[..offset];
    let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let line = valid.iter().filter(|b| **b == b'\n').count() as u32 + 1;
    // The prefix is valid UTF-8, so its characters can be counted.
    let column = String::from_utf8_lossy(&valid[line_start..]).chars().count() as u32 + 1;
    let help = if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        "the file is UTF-16; save it as UTF-8"
    } else {
        "save the file as UTF-8 (it may be in Latin-1 or a Windows code page)"
    };
    Diagnostic::error("not-utf8", format!("file is not valid UTF-8: byte 0x{:02X} at offset {offset}", bytes[offset]))
        .in_file(rel)
        .at(line, column)
        .help(help)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

fn walk(root: &Path, real_root: &Path, rel: &Path, found: &mut Found) -> Result<(), LoadError> {
    let dir = root.join(rel);
    let entries = fs::read_dir(&dir).map_err(|source| LoadError::Io { path: dir.clone(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Io { path: dir.clone(), source })?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let file_type = entry.file_type().map_err(|source| LoadError::Io { path: entry.path(), source })?;
        let child = rel.join(&name);
        if file_type.is_dir() {
            walk(root, real_root, &child, found)?;
        } else if file_type.is_file() && is_config_file(&child) {
            found.files.push((child, entry.path()));
        } else if file_type.is_symlink() {
            link(real_root, &child, &entry.path(), found);
        }
    }
    Ok(())
}

/// A symbolic link found at `rel` (`full` from the working folder): a configuration file inside
/// the folder is read through it; a folder inside is already read where it is; anything that
/// could hold configuration and leaves the folder, or a configuration file's link that points
/// nowhere, is an error naming it.
fn link(real_root: &Path, rel: &Path, full: &Path, found: &mut Found) {
    let target = fs::read_link(full).map(|t| t.display().to_string()).unwrap_or_default();
    let config = is_config_file(rel);
    match fs::canonicalize(full) {
        Ok(real) if real.starts_with(real_root) => {
            if config && real.is_file() {
                found.files.push((rel.to_path_buf(), real));
            }
        }
        Ok(real) => {
            if config || real.is_dir() {
                found.problems.push(
                    Diagnostic::error(
                        "link-outside-configuration",
                        format!("{} is a symbolic link to {target}, outside the configuration folder", rel.display()),
                    )
                    .in_file(rel)
                    .help("keyward reads only files inside the configuration folder; copy the file in, or remove the link"),
                );
            }
        }
        Err(_) if config => found.problems.push(
            Diagnostic::error(
                "broken-link",
                format!("{} is a symbolic link to {target}, which does not exist", rel.display()),
            )
            .in_file(rel)
            .help("remove the link, or point it at a file inside the configuration folder"),
        ),
        Err(_) => {}
    }
}

/// Whether `p` (relative to the configuration root) is configuration: YAML or Rego, outside
/// the folder of role content snapshots, which keyward reads itself (`engine::contents`).
fn is_config_file(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "rego"))
        && !p.starts_with(crate::model::contents::SNAPSHOT_DIR)
}

impl Loaded {
    /// Adds one file's bytes, splitting YAML into documents.
    pub(crate) fn add_file(&mut self, rel: PathBuf, bytes: Vec<u8>) {
        // A UTF-8 byte-order mark, as some Windows editors write, is not part of the text.
        let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => rest.to_vec(),
            None => bytes,
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                self.diagnostics.push(not_utf8(&rel, e.as_bytes(), e.utf8_error().valid_up_to()));
                return;
            }
        };
        let id = self.files.len();
        let is_rego = rel.extension().is_some_and(|e| e == "rego");
        let is_settings = rel == Path::new(SETTINGS_FILE);
        let docs = if is_rego { Vec::new() } else { split_documents(id, &text) };
        if !is_rego && docs.is_empty() {
            let (msg, help) = if is_settings {
                (
                    "keyward.yaml is empty; it needs at least `version: 1`",
                    "write `version: 1` and the targets to reconcile; see docs/configuration.md",
                )
            } else {
                ("file holds no YAML document", "add a resource with `kind` and `name`, or remove the file")
            };
            self.diagnostics.push(Diagnostic::error("empty-file", msg).in_file(&rel).help(help));
        }
        self.files.push(SourceFile { path: rel, text });
        if is_rego {
            self.rego.push(id);
        } else if is_settings {
            self.settings.extend(docs);
        } else {
            self.documents.extend(docs);
        }
    }

    pub(crate) fn finish(self) -> Result<Loaded, LoadError> {
        let has_settings = self.files.iter().any(|f| f.path == Path::new(SETTINGS_FILE))
            || self.diagnostics.iter().any(|d| d.file.as_deref() == Some(Path::new(SETTINGS_FILE)));
        if !has_settings {
            return Err(LoadError::NoSettings { root: self.root.clone() });
        }
        Ok(self)
    }
}

/// Splits a YAML stream into documents at `---` and `...` lines, dropping documents that hold
/// only comments and blank lines. A `---` at column 0 cannot occur inside a block scalar of a
/// top-level mapping, so splitting on lines is exact for configuration files.
fn split_documents(file: FileId, text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u32;
    let mut offset = 0usize;
    let push = |docs: &mut Vec<Document>, range: Range<usize>, first_line: u32| {
        let body = &text[range.clone()];
        let has_content = body.lines().any(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
        });
        if has_content {
            docs.push(Document { file, span: range, start_line: first_line });
        }
    };
    for (line_no, line) in (1u32..).zip(text.split_inclusive('\n')) {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_start = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "..." || bare.starts_with("... ");
        if is_start || is_end {
            push(&mut docs, start..offset, start_line);
            if is_start && bare.len() > 3 {
                // Content on the marker line itself (`--- {kind: User}`).
                start = offset + 4;
                start_line = line_no;
            } else {
                start = offset + line.len();
                start_line = line_no + 1;
            }
        }
        offset += line.len();
    }
    push(&mut docs, start..text.len(), start_line);
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_lines() {
        let text = "# header\nkind: User\nname: a\n---\n# only a comment\n---\nkind: Role\nname: r\n...\n";
        let docs = split_documents(0, text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].start_line, 1);
        assert_eq!(&text[docs[0].span.clone()], "# header\nkind: User\nname: a\n");
        assert_eq!(docs[1].start_line, 7);
        assert_eq!(&text[docs[1].span.clone()], "kind: Role\nname: r\n");
    }

    /// Regression: a file that is not UTF-8 was reported at column 1 of the line.
    #[test]
    fn not_utf8_names_byte_line_and_column() {
        let d = not_utf8(Path::new("a.yaml"), b"kind: User\nname: \xc3\xa9\xff\n", 19);
        assert_eq!((d.line, d.column), (Some(2), Some(8)));
        assert_eq!(d.message, "file is not valid UTF-8: byte 0xFF at offset 19");
        let d = not_utf8(Path::new("a.yaml"), b"\xff\xfek\x00", 0);
        assert_eq!(
            (d.line, d.column, d.help.as_deref()),
            (Some(1), Some(1), Some("the file is UTF-16; save it as UTF-8"))
        );
    }

    /// Regression: an empty keyward.yaml was told to "add a resource with `kind` and `name`".
    #[test]
    fn empty_settings_file_asks_for_settings() {
        let mut loaded = Loaded::default();
        loaded.add_file(SETTINGS_FILE.into(), Vec::new());
        loaded.add_file("users/empty.yaml".into(), b"# nothing yet\n".to_vec());
        let help: Vec<&str> = loaded.diagnostics.iter().filter_map(|d| d.help.as_deref()).collect();
        assert_eq!(help.len(), 2);
        assert!(help[0].starts_with("write `version: 1`"), "{}", help[0]);
        assert!(help[1].starts_with("add a resource"), "{}", help[1]);
    }

    #[test]
    fn empty_stream_has_no_documents() {
        assert!(split_documents(0, "").is_empty());
        assert!(split_documents(0, "# nothing\n\n---\n").is_empty());
    }

    /// Snapshots of pinned roles' contents are YAML but not configuration documents.
    #[test]
    fn role_content_snapshots_are_not_configuration() {
        assert!(is_config_file(Path::new("roles/finance.yaml")));
        assert!(is_config_file(Path::new("policies/sod.rego")));
        assert!(!is_config_file(Path::new("role-contents/ap-clerk.yaml")));
        assert!(is_config_file(Path::new("roles/role-contents/x.yaml")));
        assert!(!is_config_file(Path::new("README.md")));
    }
}
