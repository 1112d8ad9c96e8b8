//! Where an applied change came from: the actor, whether the working tree was dirty, and in CI
//! the pull request (number, URL, merge commit) and the run that applied it.
//!
//! Guarantees: [`gather`] is a pure function of an environment map and the facts of the
//! repository's HEAD, so tests give both; it never reads the process environment itself. Only
//! `http`/`https` URLs without user information are recorded (a URL with a password in it is
//! dropped, not stored), each at most [`MAX_URL_LEN`] bytes, so nothing secret reaches the log
//! and a report can link to them safely.
//!
//! What is read, by CI system:
//!
//! | fact | GitHub Actions | GitLab CI | elsewhere |
//! |---|---|---|---|
//! | actor | `GITHUB_ACTOR` | `GITLAB_USER_LOGIN` | `USER` / `USERNAME` |
//! | run | `GITHUB_SERVER_URL`/`GITHUB_REPOSITORY`/actions/runs/`GITHUB_RUN_ID` | `CI_JOB_URL` (or `CI_PIPELINE_URL`) | |
//! | pull request | `GITHUB_REF` = `refs/pull/N/merge`, or HEAD's message | `CI_MERGE_REQUEST_IID`, or HEAD's message | HEAD's message |
//!
//! `KEYWARD_ACTOR` and `KEYWARD_CHANGE_URL` override and complete these everywhere. HEAD's
//! message names the pull request when HEAD merged one: `Merge pull request #N from ...`
//! (GitHub's merge commit), `... (#N)` at the end of the subject (a squash merge), or
//! `See merge request GROUP/PROJECT!N` (GitLab's merge commit); HEAD is then its merge commit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The longest URL recorded.
pub const MAX_URL_LEN: usize = 2048;

/// The CI systems whose variables are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CiSystem {
    GithubActions,
    GitlabCi,
}

/// The provenance of an audit record. Every field is optional; absent ones are not written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<CiSystem>,
    /// The pull (or merge) request that asked for the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request_url: Option<String>,
    /// The commit that merged the pull request into the applied branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_commit: Option<String>,
    /// The CI run (job) that applied the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// `KEYWARD_CHANGE_URL`: a change ticket or any other page that asked for the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_url: Option<String>,
    /// The configuration had uncommitted changes: what was applied is not in git.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dirty: bool,
}

impl Provenance {
    pub fn is_empty(&self) -> bool {
        *self == Provenance::default()
    }
}

/// What the repository says about the commit being applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The full commit id.
    pub id: String,
    /// Its whole message.
    pub message: String,
    /// Whether the configuration folder has uncommitted changes.
    pub dirty: bool,
}

/// The actor and provenance of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathered {
    pub actor: String,
    pub provenance: Provenance,
}

/// The pull request a commit message says the commit merged: GitHub's `Merge pull request #N
/// from ...`, a squash merge's `subject (#N)`, or GitLab's `See merge request PATH!N`.
pub fn pull_request_in(message: &str) -> Option<u64> {
    let subject = message.lines().next().unwrap_or("").trim();
    if let Some(rest) = subject.strip_prefix("Merge pull request #") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && rest[digits.len()..].starts_with(" from ") {
            return digits.parse().ok();
        }
    }
    if let Some(open) = subject.strip_suffix(')').and_then(|s| s.rfind("(#").map(|i| &s[i + 2..]))
        && !open.is_empty()
        && open.bytes().all(|b| b.is_ascii_digit())
    {
        return open.parse().ok();
    }
    for line in message.lines().rev() {
        if let Some(rest) = line.trim().strip_prefix("See merge request ") {
            let number = rest.rsplit_once('!').map(|(_, n)| n)?;
            if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
                return number.parse().ok();
            }
        }
    }
    None
}

/// `url` when it is fit to record: `http`/`https`, no user information, no whitespace or
/// control characters, at most [`MAX_URL_LEN`] bytes.
pub fn safe_url(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(url.to_string())
}

fn var<'e>(env: &'e BTreeMap<String, String>, name: &str) -> Option<&'e str> {
    env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Who is acting: `KEYWARD_ACTOR`, else the CI actor, else the local user, else `unknown`.
pub fn actor_of(env: &BTreeMap<String, String>) -> String {
    ["KEYWARD_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER", "USERNAME"]
        .into_iter()
        .find_map(|k| var(env, k))
        .unwrap_or("unknown")
        .to_string()
}

/// The actor and provenance from the environment `env` and the repository's HEAD (`None`
/// outside a repository).
pub fn gather(env: &BTreeMap<String, String>, head: Option<&Head>) -> Gathered {
    let mut p = Provenance {
        dirty: head.is_some_and(|h| h.dirty),
        change_url: var(env, "KEYWARD_CHANGE_URL").and_then(safe_url),
        ..Provenance::default()
    };
    let merged = head.and_then(|h| pull_request_in(&h.message).map(|n| (n, h.id.clone())));
    let is = |k: &str| var(env, k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is("GITHUB_ACTIONS") {
        p.ci = Some(CiSystem::GithubActions);
        let server = var(env, "GITHUB_SERVER_URL").unwrap_or("https://github.com").trim_end_matches('/');
        let repo = var(env, "GITHUB_REPOSITORY").filter(|r| r.split('/').count() == 2);
        if let (Some(repo), Some(run)) = (repo, var(env, "GITHUB_RUN_ID").and_then(digits)) {
            let attempt = var(env, "GITHUB_RUN_ATTEMPT").and_then(digits).filter(|a| *a > 1);
            let url = match attempt {
                Some(a) => format!("{server}/{repo}/actions/runs/{run}/attempts/{a}"),
                None => format!("{server}/{repo}/actions/runs/{run}"),
            };
            p.run_url = safe_url(&url);
        }
        let from_ref = var(env, "GITHUB_REF")
            .and_then(|r| r.strip_prefix("refs/pull/"))
            .and_then(|r| r.split('/').next())
            .and_then(digits);
        match (from_ref, &merged) {
            (Some(n), _) => p.pull_request = Some(n),
            (None, Some((n, merge))) => {
                p.pull_request = Some(*n);
                p.merge_commit = Some(merge.clone());
            }
            (None, None) => {}
        }
        if let (Some(n), Some(repo)) = (p.pull_request, repo) {
            p.pull_request_url = safe_url(&format!("{server}/{repo}/pull/{n}"));
        }
    } else if is("GITLAB_CI") {
        p.ci = Some(CiSystem::GitlabCi);
        p.run_url = var(env, "CI_JOB_URL").or_else(|| var(env, "CI_PIPELINE_URL")).and_then(safe_url);
        let project = var(env, "CI_MERGE_REQUEST_PROJECT_URL").or_else(|| var(env, "CI_PROJECT_URL"));
        match (var(env, "CI_MERGE_REQUEST_IID").and_then(digits), &merged) {
            (Some(n), _) => p.pull_request = Some(n),
            (None, Some((n, merge))) => {
                p.pull_request = Some(*n);
                p.merge_commit = Some(merge.clone());
            }
            (None, None) => {}
        }
        if let (Some(n), Some(project)) = (p.pull_request, project) {
            p.pull_request_url = safe_url(&format!("{}/-/merge_requests/{n}", project.trim_end_matches('/')));
        }
    } else if let Some((n, merge)) = merged {
        p.pull_request = Some(n);
        p.merge_commit = Some(merge);
    }
    Gathered { actor: actor_of(env), provenance: p }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn head(message: &str) -> Head {
        Head { id: "a".repeat(40), message: message.into(), dirty: false }
    }

    #[test]
    fn pull_requests_are_read_from_merge_squash_and_gitlab_messages() {
        assert_eq!(pull_request_in("Merge pull request #42 from acme/grant-ap\n\nGrant AP"), Some(42));
        assert_eq!(pull_request_in("Grant Janet the AP clerk role (#7)\n\nbody"), Some(7));
        assert_eq!(
            pull_request_in("Merge branch 'ap' into 'main'\n\nGrant AP\n\nSee merge request finance/access!13\n"),
            Some(13)
        );
        assert_eq!(pull_request_in("Fix #12 in the docs"), None);
        assert_eq!(pull_request_in("Merge pull request #x from a/b"), None);
        assert_eq!(pull_request_in("Grant (#)"), None);
        assert_eq!(pull_request_in("Merge pull request #5"), None);
    }

    #[test]
    fn github_actions_push_after_a_merge() {
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "octo-admin"),
            ("GITHUB_SERVER_URL", "https://github.example"),
            ("GITHUB_REPOSITORY", "northwind/access"),
            ("GITHUB_RUN_ID", "9001"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_REF", "refs/heads/main"),
        ]);
        let h = head("Merge pull request #42 from northwind/grant-ap\n\nGrant AP");
        let g = gather(&e, Some(&h));
        assert_eq!(g.actor, "octo-admin");
        assert_eq!(
            g.provenance,
            Provenance {
                ci: Some(CiSystem::GithubActions),
                pull_request: Some(42),
                pull_request_url: Some("https://github.example/northwind/access/pull/42".into()),
                merge_commit: Some(h.id.clone()),
                run_url: Some("https://github.example/northwind/access/actions/runs/9001/attempts/2".into()),
                change_url: None,
                dirty: false,
            }
        );
    }

    #[test]
    fn github_actions_pull_request_event_has_no_merge_commit() {
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "northwind/access"),
            ("GITHUB_RUN_ID", "5"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_REF", "refs/pull/17/merge"),
        ]);
        let g = gather(&e, Some(&head("Merge abc into def")));
        assert_eq!(g.provenance.pull_request, Some(17));
        assert_eq!(g.provenance.pull_request_url.as_deref(), Some("https://github.com/northwind/access/pull/17"));
        assert_eq!(g.provenance.run_url.as_deref(), Some("https://github.com/northwind/access/actions/runs/5"));
        assert_eq!(g.provenance.merge_commit, None);
    }

    #[test]
    fn gitlab_ci_merge_request_and_merged_commit() {
        let e = env(&[
            ("GITLAB_CI", "true"),
            ("GITLAB_USER_LOGIN", "gl-admin"),
            ("CI_JOB_URL", "https://gitlab.example/fin/access/-/jobs/77"),
            ("CI_PROJECT_URL", "https://gitlab.example/fin/access"),
        ]);
        let h = head("Merge branch 'ap' into 'main'\n\nSee merge request fin/access!13");
        let g = gather(&e, Some(&h));
        assert_eq!(g.actor, "gl-admin");
        assert_eq!(g.provenance.ci, Some(CiSystem::GitlabCi));
        assert_eq!(g.provenance.pull_request, Some(13));
        assert_eq!(
            g.provenance.pull_request_url.as_deref(),
            Some("https://gitlab.example/fin/access/-/merge_requests/13")
        );
        assert_eq!(g.provenance.merge_commit.as_deref(), Some(h.id.as_str()));
        assert_eq!(g.provenance.run_url.as_deref(), Some("https://gitlab.example/fin/access/-/jobs/77"));

        let mr = env(&[
            ("GITLAB_CI", "true"),
            ("CI_MERGE_REQUEST_IID", "21"),
            ("CI_MERGE_REQUEST_PROJECT_URL", "https://gitlab.example/fin/access/"),
            ("CI_PIPELINE_URL", "https://gitlab.example/fin/access/-/pipelines/3"),
        ]);
        let g = gather(&mr, None);
        assert_eq!(g.provenance.pull_request, Some(21));
        assert_eq!(
            g.provenance.pull_request_url.as_deref(),
            Some("https://gitlab.example/fin/access/-/merge_requests/21")
        );
        assert_eq!(g.provenance.run_url.as_deref(), Some("https://gitlab.example/fin/access/-/pipelines/3"));
        assert_eq!(g.provenance.merge_commit, None);
    }

    #[test]
    fn keyward_variables_override_and_a_dirty_tree_is_recorded() {
        let e = env(&[
            ("KEYWARD_ACTOR", "change-board"),
            ("GITHUB_ACTOR", "someone-else"),
            ("KEYWARD_CHANGE_URL", "https://tickets.example/CHG-2041"),
            ("USER", "root"),
        ]);
        let h = Head { dirty: true, ..head("Grant AP (#8)") };
        let g = gather(&e, Some(&h));
        assert_eq!(g.actor, "change-board");
        assert_eq!(g.provenance.change_url.as_deref(), Some("https://tickets.example/CHG-2041"));
        assert!(g.provenance.dirty);
        // Outside CI the pull request is known from the message, without a URL.
        assert_eq!(g.provenance.pull_request, Some(8));
        assert_eq!(g.provenance.pull_request_url, None);
        assert_eq!(actor_of(&env(&[])), "unknown");
        assert_eq!(actor_of(&env(&[("USER", "  "), ("USERNAME", "win")])), "win");
    }

    #[test]
    fn urls_with_credentials_or_other_schemes_are_not_recorded() {
        for bad in [
            "https://user:hunter2@tickets.example/CHG-1",
            "https://token@tickets.example/",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https:///no-host",
            "https://a.example/with space",
            "https://a.example/\u{7}",
        ] {
            assert_eq!(safe_url(bad), None, "{bad}");
            let g = gather(&env(&[("KEYWARD_CHANGE_URL", bad)]), None);
            assert_eq!(g.provenance.change_url, None, "{bad}");
        }
        assert_eq!(safe_url(&format!("https://a.example/{}", "x".repeat(MAX_URL_LEN))), None);
        assert_eq!(safe_url(" https://a.example/x?y=1#z "), Some("https://a.example/x?y=1#z".into()));
        // A GitHub server URL carrying credentials gives no run URL.
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://x:y@github.example"),
            ("GITHUB_REPOSITORY", "a/b"),
            ("GITHUB_RUN_ID", "1"),
        ]);
        assert_eq!(gather(&e, None).provenance.run_url, None);
    }
}
