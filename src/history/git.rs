//! Reading history with git2.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use git2::{BlameOptions, Commit, DiffOptions, Oid, Repository};

use super::facts::{FactKey, facts_of};
use super::{CommitInfo, FactHistory, History, HistoryError, HistoryOptions, approvals_in, pull_request_link};
use crate::audit::provenance::{Head, pull_request_in};

/// Facts by key, with the canonical text of each value.
type Facts = BTreeMap<FactKey, String>;

/// The repository holding `dir`, and `dir`'s path inside its work tree.
fn open(dir: &Path) -> Option<(Repository, PathBuf)> {
    let abs = dir.canonicalize().ok()?;
    let repo = Repository::discover(&abs).ok()?;
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let sub = abs.strip_prefix(&workdir).ok()?.to_path_buf();
    Some((repo, sub))
}

fn is_config(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        && !path.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

/// HEAD of the repository holding `dir`: its id, message, and whether `dir` has uncommitted
/// changes. `None` outside a repository or before the first commit.
pub fn head(dir: &Path) -> Option<Head> {
    let (repo, sub) = open(dir)?;
    let commit = repo.head().ok()?.peel_to_commit().ok()?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true);
    if !sub.as_os_str().is_empty() {
        opts.pathspec(&sub);
    }
    let dirty = repo.statuses(Some(&mut opts)).map(|s| !s.is_empty()).unwrap_or(false);
    Some(Head { id: commit.id().to_string(), message: commit.message().unwrap_or("").to_string(), dirty })
}

/// The URL of the repository's `origin` remote, if it has one.
pub fn remote_url(dir: &Path) -> Option<String> {
    let (repo, _) = open(dir)?;
    let remote = repo.find_remote("origin").ok()?;
    remote.url().map(str::to_string)
}

fn signature_time(c: &Commit) -> crate::model::Timestamp {
    chrono::DateTime::from_timestamp(c.time().seconds(), 0).unwrap_or_default()
}

/// A commit as [`CommitInfo`]; `merged_by` is set for merge commits.
fn info(c: &Commit, remote: Option<&str>) -> CommitInfo {
    let message = c.message().unwrap_or("");
    let pull_request = pull_request_in(message);
    CommitInfo {
        id: c.id().to_string(),
        author: c.author().name().unwrap_or("").to_string(),
        time: signature_time(c),
        summary: c.summary().unwrap_or("").to_string(),
        pull_request,
        pull_request_url: pull_request.and_then(|n| remote.and_then(|r| pull_request_link(r, n))),
        merged_by: (c.parent_count() > 1).then(|| c.author().name().unwrap_or("").to_string()),
        approved_by: approvals_in(message),
    }
}

/// The facts of every configuration file that changed between `older` and `newer` (the
/// configuration folder `sub` of each tree), on each side.
fn changed_facts(
    repo: &Repository,
    older: Option<&git2::Tree>,
    newer: &git2::Tree,
    sub: &Path,
    cache: &mut HashMap<Oid, Facts>,
) -> Result<(Facts, Facts), HistoryError> {
    let mut opts = DiffOptions::new();
    if !sub.as_os_str().is_empty() {
        opts.pathspec(sub);
    }
    let diff = repo.diff_tree_to_tree(older, Some(newer), Some(&mut opts))?;
    let (mut old_side, mut new_side) = (BTreeMap::new(), BTreeMap::new());
    for delta in diff.deltas() {
        for (file, side) in [(delta.old_file(), &mut old_side), (delta.new_file(), &mut new_side)] {
            let Some(path) = file.path() else { continue };
            let rel = path.strip_prefix(sub).unwrap_or(path);
            if file.id().is_zero() || !is_config(rel) {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(file.id()) {
                let blob = repo.find_blob(file.id())?;
                slot.insert(std::str::from_utf8(blob.content()).map(facts_of).unwrap_or_default());
            }
            side.extend(cache[&file.id()].iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    Ok((old_side, new_side))
}

/// The history of every fact of the configuration folder `dir` as it is at HEAD. Outside a
/// repository, or before the first commit, the history is empty.
pub fn history(dir: &Path, options: HistoryOptions) -> Result<History, HistoryError> {
    let Some((repo, sub)) = open(dir) else { return Ok(History::default()) };
    let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) else { return Ok(History::default()) };
    let remote = repo.find_remote("origin").ok().and_then(|r| r.url().map(str::to_string));
    let mut out = History { head: Some(head.id().to_string()), ..History::default() };

    // Facts at HEAD: every configuration file of the folder.
    let mut cache: HashMap<Oid, Facts> = HashMap::new();
    let (_, current) = changed_facts(&repo, None, &head.tree()?, &sub, &mut cache)?;
    // Facts whose start is not found yet: (added found, changed found).
    let mut open_facts: BTreeMap<FactKey, (Option<String>, Option<String>)> =
        current.keys().map(|k| (k.clone(), (None, None))).collect();

    let mut commit = head;
    let mut walked = 0usize;
    loop {
        walked += 1;
        let parent = commit.parents().next();
        let parent_tree = parent.as_ref().map(Commit::tree).transpose()?;
        let (old_side, new_side) = changed_facts(&repo, parent_tree.as_ref(), &commit.tree()?, &sub, &mut cache)?;
        let id = commit.id().to_string();
        let mut used = false;
        for (key, (added, changed)) in open_facts.iter_mut() {
            let Some(now) = new_side.get(key) else { continue };
            match old_side.get(key) {
                None => {
                    added.get_or_insert_with(|| id.clone());
                    changed.get_or_insert_with(|| id.clone());
                    used = true;
                }
                Some(before) if before != now && changed.is_none() && current.get(key) == Some(now) => {
                    *changed = Some(id.clone());
                    used = true;
                }
                Some(_) => {}
            }
        }
        if used {
            out.commits.insert(id.clone(), info(&commit, remote.as_deref()));
        }
        open_facts.retain(|key, (added, changed)| match (added, changed) {
            (Some(a), Some(c)) => {
                out.facts.insert(key.clone(), FactHistory { added: a.clone(), changed: c.clone() });
                false
            }
            _ => true,
        });
        let Some(parent) = parent else { break };
        if open_facts.is_empty() {
            break;
        }
        if walked >= options.max_commits {
            out.truncated = true;
            // Older than the history read: dated to the oldest commit read.
            let oldest = commit.id().to_string();
            out.commits.entry(oldest.clone()).or_insert_with(|| info(&commit, remote.as_deref()));
            for (key, (added, changed)) in std::mem::take(&mut open_facts) {
                let changed = changed.unwrap_or_else(|| oldest.clone());
                out.facts.insert(key, FactHistory { added: added.unwrap_or_else(|| oldest.clone()), changed });
            }
            break;
        }
        commit = parent;
    }
    Ok(out)
}

/// Who last wrote each of `lines` (1-based) of `file` (relative to the configuration folder
/// `dir`), following every parent; the working tree's content counts, so a line changed but not
/// committed is absent from the answer. Lines past the end are absent too.
pub fn blame(dir: &Path, file: &Path, lines: &[u32]) -> Result<BTreeMap<u32, CommitInfo>, HistoryError> {
    let mut out = BTreeMap::new();
    let Some((repo, sub)) = open(dir) else { return Ok(out) };
    if repo.head().and_then(|h| h.peel_to_commit()).is_err() {
        return Ok(out);
    }
    let remote = repo.find_remote("origin").ok().and_then(|r| r.url().map(str::to_string));
    let in_repo = sub.join(file);
    let mut opts = BlameOptions::new();
    let blame = match repo.blame_file(&in_repo, Some(&mut opts)) {
        Ok(b) => b,
        // A file not committed yet has no blame.
        Err(_) => return Ok(out),
    };
    let working = std::fs::read(dir.join(file)).ok();
    let blame = match &working {
        Some(buffer) => blame.blame_buffer(buffer)?,
        None => blame,
    };
    let mut infos: HashMap<Oid, CommitInfo> = HashMap::new();
    for &line in lines {
        let Some(hunk) = blame.get_line(line as usize) else { continue };
        let id = hunk.final_commit_id();
        if id.is_zero() {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = infos.entry(id) {
            let Ok(c) = repo.find_commit(id) else { continue };
            slot.insert(info(&c, remote.as_deref()));
        }
        out.insert(line, infos[&id].clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::testing::TestRepo;
    use crate::model::Kind;

    fn grant(holder: &str, role: &str) -> FactKey {
        FactKey::Grant { kind: Kind::User, holder: holder.into(), role: role.into() }
    }

    const JANET: &str = "kind: User\nname: janet\nuserName: janet@n.example\nroles:\n  - gl-accountant\n";
    const JANET_AP: &str =
        "kind: User\nname: janet\nuserName: janet@n.example\nroles:\n  - gl-accountant\n  - ap-clerk\n";

    /// Initial commit; a pull request merged with a merge commit; a squash-merged pull request;
    /// a direct commit changing a grant.
    fn northwind() -> (TestRepo, [Oid; 5]) {
        let r = TestRepo::new();
        r.set_origin("https://github.com/northwind/access.git");
        let initial = r.commit(
            &[("config/keyward.yaml", "version: 1\n"), ("config/users/janet.yaml", JANET)],
            "Initial configuration",
            "Laura Callahan",
            1,
        );
        let side = r.side_commit(&[("config/users/janet.yaml", JANET_AP)], "Janet takes over AP", "Nancy Davolio", 3);
        let merge = r.merge(
            side,
            "Merge pull request #12 from northwind/janet-ap\n\nGrant Janet AP\n\nApproved-by: Laura Callahan <laura@n.example>",
            "Andrew Fuller",
            4,
        );
        let squash = r.commit(
            &[(
                "config/users/anne.yaml",
                "kind: User\nname: anne\nuserName: anne@n.example\nroles:\n  - {role: ap-clerk, expires: 2027-01-31, ticket: CHG-7}\n",
            )],
            "Give Anne AP until January (#15)",
            "Anne Dodsworth",
            6,
        );
        let direct = r.commit(
            &[(
                "config/users/anne.yaml",
                "kind: User\nname: anne\nuserName: anne@n.example\nroles:\n  - {role: ap-clerk, expires: 2027-03-31, ticket: CHG-9}\n",
            )],
            "Extend Anne's AP access",
            "Nancy Davolio",
            8,
        );
        (r, [initial, side, merge, squash, direct])
    }

    #[test]
    fn grants_are_dated_to_the_merge_that_brought_them_and_the_change_that_shaped_them() {
        let (r, [initial, _side, merge, squash, direct]) = northwind();
        let h = history(&r.path().join("config"), HistoryOptions::default()).unwrap();
        assert_eq!(h.head.as_deref(), Some(direct.to_string().as_str()));
        assert!(!h.truncated);

        let gl = h.added(&grant("janet", "gl-accountant")).unwrap();
        assert_eq!(gl.id, initial.to_string());
        assert_eq!(gl.author, "Laura Callahan");

        let ap = h.added(&grant("janet", "ap-clerk")).unwrap();
        assert_eq!(ap.id, merge.to_string());
        assert_eq!(ap.pull_request, Some(12));
        assert_eq!(ap.pull_request_url.as_deref(), Some("https://github.com/northwind/access/pull/12"));
        assert_eq!(ap.merged_by.as_deref(), Some("Andrew Fuller"));
        assert_eq!(ap.approved_by, vec!["Laura Callahan"]);
        assert_eq!(ap.time.format("%Y-%m-%d").to_string(), "2026-11-04");
        assert_eq!(h.changed(&grant("janet", "ap-clerk")).unwrap().id, merge.to_string());

        let anne_added = h.added(&grant("anne", "ap-clerk")).unwrap();
        assert_eq!((anne_added.id.as_str(), anne_added.pull_request), (squash.to_string().as_str(), Some(15)));
        assert_eq!(anne_added.merged_by, None, "a squash has one parent: who merged it is not known");
        assert_eq!(h.changed(&grant("anne", "ap-clerk")).unwrap().id, direct.to_string());
        assert_eq!(h.changed(&grant("anne", "ap-clerk")).unwrap().summary, "Extend Anne's AP access");

        // The configuration folder's own files only.
        assert!(h.facts.keys().all(|k| !k.to_string().contains("keyward")));
        assert_eq!(
            h.added(&FactKey::Resource { kind: Kind::User, name: "anne".into() }).unwrap().id,
            squash.to_string()
        );
    }

    #[test]
    fn blame_names_the_commit_inside_the_pull_request() {
        let (r, [initial, side, ..]) = northwind();
        let dir = r.path().join("config");
        let lines = blame(&dir, Path::new("users/janet.yaml"), &[5, 6, 99]).unwrap();
        assert_eq!(lines[&5].id, initial.to_string());
        assert_eq!(lines[&6].id, side.to_string());
        assert_eq!(lines[&6].author, "Nancy Davolio");
        assert!(!lines.contains_key(&99));
        // A line changed in the working tree and not committed has no author yet.
        std::fs::write(dir.join("users/janet.yaml"), JANET_AP.replace("ap-clerk", "buyer")).unwrap();
        let lines = blame(&dir, Path::new("users/janet.yaml"), &[5, 6]).unwrap();
        assert_eq!(lines.keys().copied().collect::<Vec<_>>(), vec![5]);
        assert!(head(&dir).unwrap().dirty);
    }

    #[test]
    fn a_long_history_is_cut_and_says_so() {
        let (r, [.., squash, direct]) = northwind();
        let h = history(&r.path().join("config"), HistoryOptions { max_commits: 2 }).unwrap();
        assert!(h.truncated);
        // Older than the two commits read: dated to the oldest commit read, the squash.
        assert_eq!(h.added(&grant("janet", "ap-clerk")).unwrap().id, squash.to_string());
        assert_eq!(h.changed(&grant("anne", "ap-clerk")).unwrap().id, direct.to_string());
    }

    #[test]
    fn outside_a_repository_there_is_no_history() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(history(dir.path(), HistoryOptions::default()).unwrap(), History::default());
        assert!(blame(dir.path(), Path::new("a.yaml"), &[1]).unwrap().is_empty());
        assert!(head(dir.path()).is_none());
        assert!(remote_url(dir.path()).is_none());
    }
}
