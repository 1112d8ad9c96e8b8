//! Reading a configuration folder as it was at a git revision.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};

use super::{LoadError, Loaded, MAX_FILE_BYTES, is_config_file, too_large};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path} is not inside a git repository: {message}")]
    NoRepository { path: PathBuf, message: String },
    #[error("cannot resolve revision {rev:?}: {message}")]
    BadRevision { rev: String, message: String },
    #[error("git: {0}")]
    Other(String),
    #[error(
        "the git submodule {} is read at the commit the revision records, {commit}, which is not available \
         ({why}); run `git submodule update --init` (with `--recursive` for submodules inside it) and try again",
        path.display()
    )]
    SubmoduleMissing { path: PathBuf, commit: String, why: String },
}

/// The file mode git gives a symbolic link.
const LINK_MODE: i32 = 0o120000;

/// Where a link in `parent` to `target` points, relative to the folder, when it stays inside.
fn inside(parent: &Path, target: &str) -> Option<PathBuf> {
    let mut at: Vec<&str> = parent.iter().filter_map(|c| c.to_str()).collect();
    if target.starts_with('/') {
        return None;
    }
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                at.pop()?;
            }
            p => at.push(p),
        }
    }
    Some(at.iter().collect())
}

fn other(e: git2::Error) -> GitError {
    GitError::Other(e.message().to_string())
}

fn open(dir: &Path) -> Result<(Repository, PathBuf), GitError> {
    let abs =
        dir.canonicalize().map_err(|e| GitError::NoRepository { path: dir.to_path_buf(), message: e.to_string() })?;
    let repo = Repository::discover(&abs)
        .map_err(|e| GitError::NoRepository { path: dir.to_path_buf(), message: e.message().to_string() })?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| GitError::Other("bare repositories are not supported".into()))?
        .canonicalize()
        .map_err(|e| GitError::Other(e.to_string()))?;
    let sub = abs.strip_prefix(&workdir).map(Path::to_path_buf).unwrap_or_default();
    Ok((repo, sub))
}

/// The commit id of HEAD for the repository holding `dir`, with `-dirty` when the folder has
/// uncommitted changes; `None` outside a repository.
pub fn commit_of(dir: &Path) -> Option<String> {
    let (repo, sub) = open(dir).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true);
    if !sub.as_os_str().is_empty() {
        opts.pathspec(&sub);
    }
    let dirty = repo.statuses(Some(&mut opts)).map(|s| !s.is_empty()).unwrap_or(false);
    Some(format!("{}{}", head.id(), if dirty { "-dirty" } else { "" }))
}

/// Reads the configuration folder `dir` (inside a git work tree) as it was at `rev`.
///
/// A git submodule inside the folder (a policy pack kept in its own repository, say) is read
/// at the commit `rev` records for it, from the submodule's repository on this machine; when
/// that repository or commit is not here, reading fails naming the submodule and the commit
/// (never falling back to whatever is checked out).
pub fn load_revision(dir: &Path, rev: &str) -> Result<Loaded, LoadError> {
    let (repo, sub) = open(dir)?;
    let object = repo
        .revparse_single(rev)
        .map_err(|e| GitError::BadRevision { rev: rev.to_string(), message: e.message().to_string() })?;
    let tree = object
        .peel_to_tree()
        .map_err(|e| GitError::BadRevision { rev: rev.to_string(), message: e.message().to_string() })?;
    let tree = if sub.as_os_str().is_empty() {
        tree
    } else {
        match tree.get_path(&sub) {
            Ok(entry) => repo.find_tree(entry.id()).map_err(other)?,
            Err(_) => return Err(LoadError::NoSettings { root: dir.to_path_buf() }),
        }
    };
    let mut loaded = Loaded { root: dir.to_path_buf(), ..Loaded::default() };
    let mut files = Vec::new();
    collect(&repo, &tree, Path::new(""), &sub, 0, &mut files, &mut loaded.diagnostics)?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, bytes) in files {
        loaded.add_file(path, bytes);
    }
    loaded.finish()
}

/// How deep submodules inside submodules are followed.
const MAX_SUBMODULE_DEPTH: usize = 8;

/// Reads the configuration files of `tree` (of `repo`), found at `prefix` in the configuration
/// folder and at `in_repo` in `repo`'s work tree, into `files`; submodules are read from their
/// own repositories at the commit the tree records.
fn collect(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    prefix: &Path,
    in_repo: &Path,
    depth: usize,
    files: &mut Vec<(PathBuf, Vec<u8>)>,
    diagnostics: &mut Vec<crate::diagnostic::Diagnostic>,
) -> Result<(), LoadError> {
    let mut blobs: Vec<(PathBuf, git2::Oid)> = Vec::new();
    let mut links: Vec<(PathBuf, git2::Oid)> = Vec::new();
    let mut submodules: Vec<(PathBuf, git2::Oid)> = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
        let name = entry.name().unwrap_or("");
        if name.starts_with('.') {
            return TreeWalkResult::Skip;
        }
        let path = Path::new(parent).join(name);
        match entry.kind() {
            Some(ObjectType::Blob) if is_config_file(&path) && entry.filemode() == LINK_MODE => {
                links.push((path, entry.id()))
            }
            Some(ObjectType::Blob) if is_config_file(&path) => blobs.push((path, entry.id())),
            Some(ObjectType::Commit) => submodules.push((path, entry.id())),
            _ => {}
        }
        TreeWalkResult::Ok
    })
    .map_err(other)?;
    // A committed symbolic link is read as the file it names when that stays inside the
    // folder (inside the submodule, for a link in one), as when reading the working tree;
    // otherwise it is an error naming it.
    for (path, oid) in links {
        let blob = repo.find_blob(oid).map_err(other)?;
        let target = String::from_utf8_lossy(blob.content()).into_owned();
        let inside = inside(path.parent().unwrap_or(Path::new("")), &target)
            .and_then(|t| tree.get_path(&t).ok())
            .filter(|e| e.kind() == Some(ObjectType::Blob) && e.filemode() != LINK_MODE);
        match inside {
            Some(e) => blobs.push((path, e.id())),
            None => {
                let shown = prefix.join(&path);
                diagnostics.push(
                    crate::diagnostic::Diagnostic::error(
                        "link-outside-configuration",
                        format!(
                            "{} is a symbolic link to {target}, which is not a file inside the configuration folder",
                            shown.display()
                        ),
                    )
                    .in_file(&shown)
                    .help(
                        "keyward reads only files inside the configuration folder; copy the file in, or remove the link",
                    ),
                )
            }
        }
    }
    for (path, oid) in blobs {
        let blob = repo.find_blob(oid).map_err(other)?;
        let size = blob.size() as u64;
        let shown = prefix.join(&path);
        if size > MAX_FILE_BYTES {
            diagnostics.push(too_large(&shown, size));
            continue;
        }
        files.push((shown, blob.content().to_vec()));
    }
    for (path, commit) in submodules {
        let shown = prefix.join(&path);
        let missing = |why: &str| GitError::SubmoduleMissing {
            path: shown.clone(),
            commit: commit.to_string(),
            why: why.to_string(),
        };
        if depth >= MAX_SUBMODULE_DEPTH {
            return Err(missing("submodules are nested too deeply").into());
        }
        let at = in_repo.join(&path);
        let module = open_submodule(repo, &at).ok_or_else(|| missing("its repository is not on this machine"))?;
        let found = module.find_commit(commit).map_err(|_| missing("its repository does not hold that commit"))?;
        let sub_tree = found.tree().map_err(other)?;
        collect(&module, &sub_tree, &shown, Path::new(""), depth + 1, files, diagnostics)?;
    }
    Ok(())
}

/// The repository of the submodule at `path` in `repo`'s work tree: the one `.gitmodules` names
/// (checked out, or kept in `.git/modules`), else a repository checked out at that path.
fn open_submodule(repo: &Repository, path: &Path) -> Option<Repository> {
    let text = path.to_str()?.replace('\\', "/");
    if let Ok(module) = repo.find_submodule(&text)
        && let Ok(r) = module.open()
    {
        return Some(r);
    }
    let kept = repo.path().join("modules").join(&text);
    if let Ok(r) = Repository::open(&kept) {
        return Some(r);
    }
    Repository::open(repo.workdir()?.join(path)).ok()
}

/// The commit that last wrote each of `lines` (a file relative to `dir`, and a 1-based line of
/// it as it is in the work tree). Lines not committed yet, and files git does not track, are
/// left out.
pub fn blame(
    dir: &Path,
    lines: &[(PathBuf, u32)],
) -> Result<std::collections::BTreeMap<(PathBuf, u32), crate::model::certification::Provenance>, GitError> {
    use crate::model::certification::Provenance;
    let (repo, sub) = open(dir)?;
    let mut out = std::collections::BTreeMap::new();
    let mut by_file: std::collections::BTreeMap<&Path, Vec<u32>> = std::collections::BTreeMap::new();
    for (file, line) in lines {
        by_file.entry(file.as_path()).or_default().push(*line);
    }
    for (file, wanted) in by_file {
        let in_repo = sub.join(file);
        let Ok(committed) = repo.blame_file(&in_repo, None) else { continue };
        // The work tree's text, so that line numbers are those of the file as it is now.
        let Ok(text) = std::fs::read(dir.join(file)) else { continue };
        let Ok(blame) = committed.blame_buffer(&text) else { continue };
        for line in wanted {
            let Some(hunk) = blame.get_line(line as usize) else { continue };
            let id = hunk.final_commit_id();
            if id.is_zero() {
                continue;
            }
            let sig = hunk.final_signature();
            let when = sig.when();
            let Some(time) = chrono::DateTime::from_timestamp(when.seconds(), 0) else { continue };
            let author = match (sig.name(), sig.email()) {
                (Some(n), Some(e)) => format!("{n} <{e}>"),
                (Some(n), None) => n.to_string(),
                (None, Some(e)) => format!("<{e}>"),
                (None, None) => String::new(),
            };
            out.insert(
                (file.to_path_buf(), line),
                Provenance { commit: id.to_string(), time: crate::model::Instant(time), author },
            );
        }
    }
    Ok(out)
}

/// The paths below `rel` (relative to `dir`) that differ from HEAD in the work tree or the
/// index, untracked files included.
pub fn uncommitted(dir: &Path, rel: &Path) -> Result<Vec<PathBuf>, GitError> {
    let (repo, sub) = open(dir)?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    let spec = sub.join(rel);
    if !spec.as_os_str().is_empty() {
        opts.pathspec(&spec);
    }
    let statuses = repo.statuses(Some(&mut opts)).map_err(other)?;
    Ok(statuses
        .iter()
        .filter(|s| !s.status().is_ignored())
        .filter_map(|s| s.path().map(|p| Path::new(p).strip_prefix(&sub).unwrap_or(Path::new(p)).to_path_buf()))
        .collect())
}

/// The path of the folder `dir` inside its repository's work tree (`""` at the root, else
/// ending with `/`), and the work tree's root; `None` outside a repository.
pub fn repository_prefix(dir: &Path) -> Option<(String, PathBuf)> {
    let (repo, sub) = open(dir).ok()?;
    let root = repo.workdir()?.to_path_buf();
    let mut prefix = sub.to_string_lossy().replace('\\', "/");
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Some((prefix, root))
}

/// The commit id HEAD points to, without a dirty marker; `None` outside a repository or before
/// the first commit.
pub fn head_commit(dir: &Path) -> Option<String> {
    let (repo, _) = open(dir).ok()?;
    Some(repo.head().ok()?.peel_to_commit().ok()?.id().to_string())
}
