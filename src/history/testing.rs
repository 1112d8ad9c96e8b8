//! A temporary git repository to write histories into, for tests.

use std::path::PathBuf;

use git2::{Oid, Repository, Signature, Time};

pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
}

impl TestRepo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        TestRepo { dir, repo }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Writes files into the work tree (an empty text removes the file).
    pub fn write(&self, files: &[(&str, &str)]) {
        for (rel, text) in files {
            let p = self.dir.path().join(rel);
            if text.is_empty() {
                let _ = std::fs::remove_file(&p);
            } else {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, text).unwrap();
            }
        }
    }

    fn sig(who: &str, day: u32) -> Signature<'static> {
        // Day `day` of November 2026, at noon UTC.
        let secs = chrono::NaiveDate::from_ymd_opt(2026, 11, day).unwrap().and_hms_opt(12, 0, 0).unwrap();
        Signature::new(
            who,
            &format!("{}@northwind.example", who.to_lowercase().replace(' ', ".")),
            &Time::new(secs.and_utc().timestamp(), 0),
        )
        .unwrap()
    }

    /// Commits the whole work tree on the current branch, with `parents` (HEAD when empty).
    pub fn commit_with(&self, message: &str, who: &str, day: u32, extra_parents: &[Oid]) -> Oid {
        let mut index = self.repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Self::sig(who, day);
        let mut parents: Vec<git2::Commit> = Vec::new();
        if let Ok(h) = self.repo.head().and_then(|h| h.peel_to_commit()) {
            parents.push(h);
        }
        for p in extra_parents {
            parents.push(self.repo.find_commit(*p).unwrap());
        }
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        self.repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &refs).unwrap()
    }

    pub fn commit(&self, files: &[(&str, &str)], message: &str, who: &str, day: u32) -> Oid {
        self.write(files);
        self.commit_with(message, who, day, &[])
    }

    /// Makes a commit on a side branch off HEAD (HEAD does not move) with `files`, by `who`.
    pub fn side_commit(&self, files: &[(&str, &str)], message: &str, who: &str, day: u32) -> Oid {
        let head = self.repo.head().unwrap().peel_to_commit().unwrap();
        let mut builder = git2::build::TreeUpdateBuilder::new();
        for (rel, text) in files {
            if text.is_empty() {
                builder.remove(*rel);
            } else {
                let blob = self.repo.blob(text.as_bytes()).unwrap();
                builder.upsert(*rel, blob, git2::FileMode::Blob);
            }
        }
        let tree = builder.create_updated(&self.repo, &head.tree().unwrap()).unwrap();
        let tree = self.repo.find_tree(tree).unwrap();
        let sig = Self::sig(who, day);
        self.repo.commit(None, &sig, &sig, message, &tree, &[&head]).unwrap()
    }

    /// Merges `side` into HEAD with a merge commit whose tree is `side`'s (no conflicts).
    pub fn merge(&self, side: Oid, message: &str, who: &str, day: u32) -> Oid {
        let side_commit = self.repo.find_commit(side).unwrap();
        self.repo.checkout_tree(side_commit.as_object(), Some(git2::build::CheckoutBuilder::new().force())).unwrap();
        self.commit_with(message, who, day, &[side])
    }

    pub fn set_origin(&self, url: &str) {
        self.repo.remote("origin", url).unwrap();
    }
}
