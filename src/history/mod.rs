//! What git says about a configuration: which commit added each role grant, binding, SoD
//! exception and resource, which commit last changed it, through which pull request, and who
//! wrote each line.
//!
//! Guarantees:
//! - history is read along the first-parent chain of HEAD, the way changes reached the branch
//!   that is applied: a change merged from a pull request is dated and attributed to its merge
//!   (or squash) commit, whose message names the pull request; [`blame`] follows every parent,
//!   so it names the commit that wrote a line inside the pull request;
//! - only the configuration folder is read, and only files whose content changed between two
//!   commits are parsed (each version once); documents that do not parse are skipped, never an
//!   error: history explains, it does not validate;
//! - at most [`HistoryOptions::max_commits`] commits are walked; facts older than that are
//!   reported as added at or before the oldest commit read, with `truncated` set;
//! - nothing here prints, and no value of the configuration other than names and the text of
//!   grants is kept.

mod facts;
mod git;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::BTreeMap;

use serde::Serialize;

pub use facts::{FactKey, facts_of};
pub use git::{blame, head, history, remote_url};

use crate::model::Timestamp;

/// One commit, as people read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    /// The full commit id.
    pub id: String,
    pub author: String,
    pub time: Timestamp,
    /// The first line of the message.
    pub summary: String,
    /// The pull request this commit merged (a merge commit or a squash), from its message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    /// A link to that pull request, when the repository's `origin` is a GitHub or GitLab URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request_url: Option<String>,
    /// Who merged it: the author of a merge commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_by: Option<String>,
    /// The names in `Approved-by:` and `Reviewed-by:` trailers of the message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
}

impl CommitInfo {
    /// The first 12 hex digits of the id.
    pub fn short(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

/// When a fact (a grant, a binding, an exception, a resource) came to be as it is at HEAD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FactHistory {
    /// The first-parent commit from which on the fact has existed without a break.
    pub added: String,
    /// The first-parent commit from which on the fact has had its current value.
    pub changed: String,
}

/// The facts of a configuration's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// HEAD's id, when the configuration is in a repository with commits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// Every commit the facts refer to, by id.
    pub commits: BTreeMap<String, CommitInfo>,
    /// The history of each fact present at HEAD.
    pub facts: BTreeMap<FactKey, FactHistory>,
    /// The history was longer than the commits read.
    pub truncated: bool,
}

impl History {
    pub fn added(&self, key: &FactKey) -> Option<&CommitInfo> {
        self.facts.get(key).and_then(|f| self.commits.get(&f.added))
    }

    pub fn changed(&self, key: &FactKey) -> Option<&CommitInfo> {
        self.facts.get(key).and_then(|f| self.commits.get(&f.changed))
    }
}

/// How much history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    /// The most first-parent commits walked back from HEAD.
    pub max_commits: usize,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions { max_commits: 5_000 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("git: {message}")]
    Git {
        message: String,
        #[source]
        source: git2::Error,
    },
}

impl From<git2::Error> for HistoryError {
    fn from(source: git2::Error) -> Self {
        HistoryError::Git { message: source.message().to_string(), source }
    }
}

/// The names in `Approved-by:` and `Reviewed-by:` trailers (GitLab's merge commit template,
/// Gerrit, the kernel), without their e-mail addresses, in order, each once.
pub fn approvals_in(message: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in message.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let key = key.trim();
        if !key.eq_ignore_ascii_case("approved-by") && !key.eq_ignore_ascii_case("reviewed-by") {
            continue;
        }
        let name = value.split('<').next().unwrap_or("").trim();
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// The web page of pull request `n` of the repository whose remote is `remote`: GitHub's
/// `/pull/N` for a github.com remote, GitLab's `/-/merge_requests/N` for a host named gitlab.
/// User information in the remote (a token in an https URL) is never carried over.
pub fn pull_request_link(remote: &str, n: u64) -> Option<String> {
    let remote = remote.trim();
    let (host, path) = if let Some(rest) = remote.strip_prefix("https://").or_else(|| remote.strip_prefix("http://")) {
        let (authority, path) = rest.split_once('/')?;
        (authority.rsplit('@').next()?, path)
    } else if let Some(rest) = remote.strip_prefix("ssh://") {
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit('@').next()?;
        (host.split(':').next()?, path)
    } else {
        // scp-like: git@github.com:owner/repo.git
        let (authority, path) = remote.split_once(':')?;
        (authority.rsplit('@').next()?, path)
    };
    let host = host.to_ascii_lowercase();
    let path = path.trim_end_matches('/').trim_end_matches(".git").trim_matches('/');
    let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if !valid(&host) || !valid(path) || path.contains("..") {
        return None;
    }
    if host == "github.com" {
        Some(format!("https://{host}/{path}/pull/{n}"))
    } else if host.split('.').any(|label| label == "gitlab") {
        Some(format!("https://{host}/{path}/-/merge_requests/{n}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_come_from_trailers_without_addresses() {
        let m = "Merge branch 'ap' into 'main'\n\nGrant AP\n\nApproved-by: Laura Callahan <laura@n.example>\n\
                 Reviewed-by: Andrew Fuller\nApproved-by: Laura Callahan <laura@n.example>\nSigned-off-by: X <x@y>";
        assert_eq!(approvals_in(m), vec!["Laura Callahan", "Andrew Fuller"]);
        assert!(approvals_in("Grant AP (#3)").is_empty());
    }

    #[test]
    fn pull_request_links_from_remotes() {
        assert_eq!(
            pull_request_link("https://x-access-token:SECRET@github.com/northwind/access.git", 4).as_deref(),
            Some("https://github.com/northwind/access/pull/4")
        );
        assert_eq!(
            pull_request_link("git@github.com:northwind/access.git", 5).as_deref(),
            Some("https://github.com/northwind/access/pull/5")
        );
        assert_eq!(
            pull_request_link("ssh://git@gitlab.example.com:2222/fin/access.git", 6).as_deref(),
            Some("https://gitlab.example.com/fin/access/-/merge_requests/6")
        );
        assert_eq!(pull_request_link("https://git.example/fin/access", 6), None);
        assert_eq!(pull_request_link("/srv/git/access.git", 6), None);
        assert_eq!(pull_request_link("https://github.com/a/b\"><script>", 6), None);
    }
}
