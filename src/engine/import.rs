//! `import`: YAML for a target's live users, groups and memberships that the configuration does
//! not yet have, written in the configuration's own layout; and the snapshots of the contents
//! of the pinned roles bound on the target (`role-contents/ROLE.yaml`, replaced each time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::read::Targets;
use super::{EngineError, Observer};
use crate::adopt;
use crate::load::{self, Loaded};
use crate::output::diagnostics;
use crate::provider::handle::Reading;
use crate::remote::RetryPolicy;

const SCHEMA_LINE: &str = "# yaml-language-server: $schema=";

/// What `import` needs.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub dir: PathBuf,
    /// The target to import from.
    pub target: String,
    /// Write under this folder instead of the configuration folder.
    pub out: Option<PathBuf>,
    /// How requests to the target are retried.
    pub retry: RetryPolicy,
    /// Write only the snapshots of pinned roles' contents (replacing them), no Users or Roles.
    pub contents_only: bool,
}

/// What an import wrote.
pub struct Imported {
    pub target: String,
    /// Each file written (relative to the output folder), with what it holds.
    pub written: Vec<String>,
    /// What to edit by hand.
    pub notes: Vec<String>,
}

/// Reads the target and writes the files; never overwrites one.
pub async fn import(settings: &ImportSettings, observer: &dyn Observer) -> Result<Imported, EngineError> {
    let dir = &settings.dir;
    let config = super::config::load(dir, observer)?;
    let state = config.state();
    let names = super::config::select_targets(&state.settings, std::slice::from_ref(&settings.target))?;
    let target = names[0].clone();
    let out_root = settings.out.clone().unwrap_or_else(|| dir.clone());

    let users_dir = kind_folder(&config.loaded, "User").unwrap_or_else(|| PathBuf::from("users"));
    let roles_dir = kind_folder(&config.loaded, "Role").unwrap_or_else(|| PathBuf::from("roles"));
    let users_file = users_dir.join(format!("imported-{target}.yaml"));
    let roles_file = roles_dir.join(format!("imported-{target}.yaml"));
    if !settings.contents_only {
        for f in [&users_file, &roles_file] {
            let p = out_root.join(f);
            if p.exists() {
                return Err(EngineError::WouldOverwrite { path: p });
            }
        }
    }

    let (mut live, mut open) = Targets::<Reading>::read(&state.settings, dir, &names, settings.retry, observer).await?;
    let pinned_here = state
        .roles
        .values()
        .any(|r| r.contents == Some(crate::model::ContentsMode::Pinned) && r.bindings.contains_key(&target));
    if pinned_here {
        super::contents::read(state, &mut open.sessions, &mut live).await?;
    }
    if settings.contents_only {
        let mut written = Vec::new();
        for (rel, n) in super::contents::write(state, &out_root, &target, &live[&target])? {
            written.push(snapshot_line(&rel, n, &target));
        }
        let notes = if pinned_here {
            Vec::new()
        } else {
            vec![format!("no Role with `contents: pinned` is bound on `{target}`: there is no snapshot to write")]
        };
        return Ok(Imported { target: target.to_string(), written, notes });
    }
    let adoption = adopt::adopt(state, &target, &live[&target]);

    let mut files: Vec<(PathBuf, String, String)> = Vec::new();
    if !adoption.users.is_empty() {
        let header = schema_header(&config.loaded, "User", &users_dir, "user.json");
        let text = render_docs(&header, &adoption.users)?;
        files.push((users_file.clone(), text, format!("{} ({} users)", users_file.display(), adoption.users.len())));
    }
    if !adoption.roles.is_empty() {
        let header = schema_header(&config.loaded, "Role", &roles_dir, "role.json");
        let text = render_docs(&header, &adoption.roles)?;
        files.push((roles_file.clone(), text, format!("{} ({} roles)", roles_file.display(), adoption.roles.len())));
    }
    check_valid(&config.loaded, &files, observer)?;
    let mut written = Vec::new();
    for (rel, text, what) in files {
        write_new(&out_root.join(&rel), &text)?;
        written.push(what);
    }
    for (rel, n) in super::contents::write(state, &out_root, &target, &live[&target])? {
        written.push(snapshot_line(&rel, n, &target));
    }
    Ok(Imported { target: target.to_string(), written, notes: adoption.notes })
}

/// Validates the configuration as it would be with the imported files added (at the same
/// paths, also when they go to another folder); reports the diagnostics and refuses when
/// there is an error, before anything is written.
fn check_valid(
    loaded: &Loaded,
    files: &[(PathBuf, String, String)],
    observer: &dyn Observer,
) -> Result<(), EngineError> {
    if files.is_empty() {
        return Ok(());
    }
    let mut all: Vec<(PathBuf, Vec<u8>)> =
        loaded.files.iter().map(|f| (f.path.clone(), f.text.clone().into_bytes())).collect();
    all.extend(files.iter().map(|(rel, text, _)| (rel.clone(), text.clone().into_bytes())));
    let would = load::load_files(&loaded.root, all)?;
    let validated = crate::validate::validate(&would);
    let Some(first) = validated.diagnostics.iter().find(|d| d.level == crate::diagnostic::Level::Error) else {
        return Ok(());
    };
    observer.diagnostics(&validated.diagnostics, &would);
    let at = first.file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default();
    Err(EngineError::ImportInvalid {
        tally: diagnostics::tally(&validated.diagnostics),
        first: format!("{at}{} ({})", first.message, first.code),
    })
}

/// The folder (relative to the configuration root) holding most documents of `kind`.
fn kind_folder(loaded: &Loaded, kind: &str) -> Option<PathBuf> {
    let mut counts: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for d in &loaded.documents {
        if doc_kind(loaded.text(d)).as_deref() == Some(kind) {
            let parent = loaded.path(d).parent().map(Path::to_path_buf).unwrap_or_default();
            *counts.entry(parent).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(p, n)| (*n, std::cmp::Reverse(p.clone()))).map(|(p, _)| p)
}

fn doc_kind(text: &str) -> Option<String> {
    let v: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    v.get("kind")?.as_str().map(String::from)
}

/// The schema comment to open a new file in `folder` with: copied from a file of the same kind
/// in that folder, else pointing at the repository's `schemas/` folder, else at keyward.yaml's
/// schema's folder.
fn schema_header(loaded: &Loaded, kind: &str, folder: &Path, schema_file: &str) -> String {
    for d in &loaded.documents {
        let path = loaded.path(d);
        if path.parent() == Some(folder) && doc_kind(loaded.text(d)).as_deref() == Some(kind) {
            let file = loaded.files.iter().find(|f| f.path == path);
            if let Some(line) = file.and_then(|f| f.text.lines().find(|l| l.starts_with(SCHEMA_LINE))) {
                return line.to_string();
            }
        }
    }
    let up = "../".repeat(folder.components().count());
    let settings_schema = loaded
        .files
        .iter()
        .find(|f| f.path == Path::new(crate::load::SETTINGS_FILE))
        .and_then(|f| f.text.lines().find_map(|l| l.strip_prefix(SCHEMA_LINE)))
        .and_then(|s| s.rsplit_once('/').map(|(dir, _)| dir.to_string()));
    match settings_schema {
        Some(dir) if !dir.contains("://") => format!("{SCHEMA_LINE}{up}{dir}/{schema_file}"),
        Some(dir) => format!("{SCHEMA_LINE}{dir}/{schema_file}"),
        None => format!("{SCHEMA_LINE}{up}schemas/{schema_file}"),
    }
}

fn render_docs<T: serde::Serialize>(header: &str, docs: &[T]) -> Result<String, EngineError> {
    let mut text = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(header);
        text.push('\n');
        // Through JSON, so enums such as bindings are written as maps rather than YAML tags.
        let value = serde_json::to_value(d).map_err(|e| EngineError::Yaml(e.to_string()))?;
        text.push_str(&serde_yaml::to_string(&value).map_err(|e| EngineError::Yaml(e.to_string()))?);
    }
    Ok(text)
}

fn write_new(path: &Path, text: &str) -> Result<(), EngineError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(EngineError::io("create", parent))?;
    }
    // create_new: never overwrite, even if the file appeared since the check.
    use std::io::Write;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(EngineError::io("create", path))?;
    f.write_all(text.as_bytes()).map_err(EngineError::io("write", path))?;
    Ok(())
}

/// How import reports a snapshot it wrote.
fn snapshot_line(rel: &Path, n: usize, target: &crate::model::Name) -> String {
    format!("{} ({n} privilege{} on {target})", rel.display(), if n == 1 { "" } else { "s" })
}
