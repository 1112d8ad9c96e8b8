//! Whether a change to the configuration was approved by the people accountable for it.
//!
//! A change (the configuration at a base revision against the working tree) is checked for
//! every *privileged change*: a privileged role given to someone, given for longer or again,
//! to a re-enabled account or a different account; a service account holding a privileged
//! role given to a new owner; a privileged role's definition changed (bindings, `privileged`,
//! owners, or the GitHub login of an owner). Each needs an approval from one of the role's
//! owners who is not the person gaining the access (for a service account, its owner); when
//! the role's only owners are the people gaining it, or it has none, `governance.defaultOwners`
//! decide.
//!
//! Guarantees:
//! - who the owners are, and which GitHub login is whose, is read from the **base** revision:
//!   a change cannot name its own approvers;
//! - a role counts as privileged when it is privileged at the base or in the change;
//! - an approval of someone's own access does not count, whatever their role;
//! - GitHub reviews count as GitHub counts them: a person's latest approving or
//!   changes-requested review decides, a dismissed one withdraws theirs, comments do not count;
//!   with a head commit given, approvals of other commits do not count;
//! - pure: the clock is a parameter.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::owners::{self, Holder, OwnersFrom};
use crate::load::{Loaded, PathSeg};
use crate::model::{DesiredState, Kind, Name, Role, RoleGrant, Severity, Timestamp, UserStatus};
use crate::policy::Finding;
use crate::validate::{Location, Origins};

/// Someone who approved, as given on the command line or found in the reviews.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Approver {
    /// As given: a GitHub login or a User's name.
    pub given: String,
    /// The User it is, by the base revision's `github` logins and names; `None` when nobody.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Name>,
    /// Where it came from: `command-line` or `review`.
    pub source: &'static str,
}

/// A review that did not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub login: String,
    pub why: String,
}

/// One review as GitHub's "list reviews for a pull request" returns it (other fields ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct GitHubReview {
    /// `null` for a deleted account.
    pub user: Option<GitHubUser>,
    pub state: String,
    #[serde(default)]
    pub commit_id: Option<String>,
    #[serde(default)]
    pub submitted_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GitHubUser {
    pub login: String,
}

/// Why a reviews file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the reviews are not GitHub's pull-request reviews JSON (an array of reviews): {source}")]
pub struct ReviewsError {
    #[source]
    source: serde_json::Error,
}

/// Reads GitHub's pull-request reviews JSON: one array, or several (as `gh api --paginate`
/// writes pages one after another).
pub fn parse_reviews(text: &str) -> Result<Vec<GitHubReview>, ReviewsError> {
    let mut out = Vec::new();
    for page in serde_json::Deserializer::from_str(text).into_iter::<Vec<GitHubReview>>() {
        out.extend(page.map_err(|source| ReviewsError { source })?);
    }
    Ok(out)
}

/// The logins whose approval stands, as GitHub counts them, and the approvals that do not.
/// With `head`, an approval of another commit does not count (the change moved on since).
pub fn approving_logins(reviews: &[GitHubReview], head: Option<&str>) -> (Vec<String>, Vec<Ignored>) {
    // In the order submitted (GitHub lists them so; a timestamp, where given, decides).
    let mut ordered: Vec<(usize, &GitHubReview)> = reviews.iter().enumerate().collect();
    ordered.sort_by(|(i, a), (j, b)| match (&a.submitted_at, &b.submitted_at) {
        (Some(x), Some(y)) => x.cmp(y).then(i.cmp(j)),
        _ => i.cmp(j),
    });
    let mut latest: BTreeMap<String, (String, &GitHubReview)> = BTreeMap::new();
    for (_, r) in ordered {
        let Some(user) = &r.user else { continue };
        let state = r.state.to_ascii_uppercase();
        if matches!(state.as_str(), "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED") {
            latest.insert(user.login.to_ascii_lowercase(), (user.login.clone(), r));
        }
    }
    let (mut approving, mut ignored) = (Vec::new(), Vec::new());
    for (login, r) in latest.into_values() {
        match r.state.to_ascii_uppercase().as_str() {
            "APPROVED" => match (head, r.commit_id.as_deref()) {
                (Some(h), Some(c)) if !h.eq_ignore_ascii_case(c) => ignored
                    .push(Ignored { login, why: format!("approved commit {}, not the head {}", short(c), short(h)) }),
                (Some(h), None) => ignored
                    .push(Ignored { login, why: format!("the approval names no commit; the head is {}", short(h)) }),
                _ => approving.push(login),
            },
            "CHANGES_REQUESTED" => ignored.push(Ignored { login, why: "requested changes last".into() }),
            _ => ignored.push(Ignored { login, why: "the approval was dismissed".into() }),
        }
    }
    (approving, ignored)
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

/// Finds the User each approver is, by the base revision: a User's name, or a `github` login.
pub fn resolve(base: &DesiredState, given: &[String], source: &'static str) -> Vec<Approver> {
    let mut out: Vec<Approver> = Vec::new();
    for g in given {
        let g = g.trim();
        if g.is_empty() {
            continue;
        }
        let bare = g.strip_prefix('@').unwrap_or(g);
        let by_name = Name::new(bare).ok().filter(|n| base.users.contains_key(n) && !g.starts_with('@'));
        let user = by_name.or_else(|| owners::by_login(base, bare).cloned());
        let a = Approver { given: bare.to_string(), user, source };
        if !out.iter().any(|o| o.given.eq_ignore_ascii_case(&a.given) && o.user == a.user) {
            out.push(a);
        }
    }
    out
}

/// What kind of privileged change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A role given to someone who did not hold it.
    Grant,
    /// Held for longer, for good, or again after it ended.
    Extension,
    /// Someone holding it gains it in a new way (an account enabled or re-pointed, a service
    /// account with a new owner).
    Holder,
    /// The role's definition: bindings, `privileged`, owners.
    Role,
}

/// Whether a privileged change was approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Approved,
    /// No owner of the role approved.
    MissingOwner,
    /// The only approvals are from the people gaining the access.
    SelfApproval,
    /// Neither the role nor governance.defaultOwners names anyone who could approve.
    NoOwners,
}

/// One privileged change and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivilegedChange {
    pub kind: ChangeKind,
    pub role: Name,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
    /// What changes, in words.
    pub description: String,
    /// The people who may approve it (at the base revision), and where they come from.
    pub owners: Vec<Name>,
    pub owners_from: OwnersFrom,
    /// The people who gain the access; their approvals do not count.
    pub beneficiaries: Vec<Name>,
    /// The owners whose approvals count.
    pub approved_by: Vec<Name>,
    pub status: Status,
    /// Where the change is in the configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// The verdict over a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub base: String,
    pub approvers: Vec<Approver>,
    pub ignored: Vec<Ignored>,
    pub changes: Vec<PrivilegedChange>,
}

impl Verdict {
    pub fn approved(&self) -> bool {
        self.changes.iter().all(|c| c.status == Status::Approved)
    }
}

/// The configuration after the change, with what locates its YAML.
pub struct Head<'a> {
    pub state: &'a DesiredState,
    pub loaded: &'a Loaded,
    pub origins: &'a Origins,
}

/// Checks a change from `base` (at revision `base_rev`) to `head` against the approvers.
pub fn verify(
    base: &DesiredState,
    base_rev: &str,
    head: &Head,
    approvers: Vec<Approver>,
    ignored: Vec<Ignored>,
    now: Timestamp,
) -> Verdict {
    let mut changes = Vec::new();
    let privileged = |role: &Name| {
        base.roles.get(role).is_some_and(|r| r.privileged) || head.state.roles.get(role).is_some_and(|r| r.privileged)
    };
    let approver_users: BTreeSet<&Name> = approvers.iter().filter_map(|a| a.user.as_ref()).collect();
    let mut push = |kind: ChangeKind, role: &Name, holder: Option<Holder>, description: String, path: Location| {
        let mut beneficiaries = BTreeSet::new();
        if let Some(h) = &holder {
            // By the base and by the change: whoever the holder is in either gains.
            beneficiaries.extend(owners::beneficiaries(base, h));
            beneficiaries.extend(owners::beneficiaries(head.state, h));
        }
        let (owner_list, mut owners_from) = owners::of_role(base, base.roles.get(role));
        let mut owners = owners::people(base, owner_list);
        // When the only owners are the people gaining the access, the default owners decide.
        if owners_from == OwnersFrom::Role && owners.iter().all(|o| beneficiaries.contains(o)) {
            let defaults = owners::people(base, &base.settings.governance.default_owners);
            if defaults.iter().any(|o| !beneficiaries.contains(o)) {
                owners.extend(defaults);
                owners_from = OwnersFrom::Default;
            }
        }
        let approved_by: Vec<Name> =
            owners.iter().filter(|o| approver_users.contains(o) && !beneficiaries.contains(*o)).cloned().collect();
        let status = if !approved_by.is_empty() {
            Status::Approved
        } else if owners.is_empty() {
            Status::NoOwners
        } else if !approver_users.is_empty() && approver_users.iter().all(|a| beneficiaries.contains(*a)) {
            Status::SelfApproval
        } else {
            Status::MissingOwner
        };
        changes.push(PrivilegedChange {
            kind,
            role: role.clone(),
            holder,
            description,
            owners: owners.into_iter().collect(),
            owners_from,
            beneficiaries: beneficiaries.into_iter().collect(),
            approved_by,
            status,
            location: Some(path),
        });
    };

    // Grants, extensions, and holders gaining access in a new way.
    for (holder, grants) in owners::holders(head.state) {
        let kind = holder.kind();
        let name = holder.name().clone();
        let locate = |path: &[PathSeg]| head.origins.locate(head.loaded, kind, &name, path);
        let base_grants: Option<&[RoleGrant]> = match &holder {
            Holder::User(n) => base.users.get(n).map(|u| u.roles.as_slice()),
            Holder::ServiceAccount(n) => base.service_accounts.get(n).map(|s| s.roles.as_slice()),
        };
        let mut held_privileged = Vec::new();
        for (i, g) in grants.iter().enumerate() {
            let role = g.role();
            if !privileged(role) || g.expires().is_some_and(|e| e.has_passed(now)) {
                continue;
            }
            held_privileged.push(role.clone());
            let before = base_grants.and_then(|gs| gs.iter().find(|b| b.role() == role));
            let what = match before {
                None => Some((ChangeKind::Grant, format!("gives {role} to {holder}{}", until(g)))),
                Some(b) if b.expires().is_some_and(|e| e.has_passed(now)) => {
                    Some((ChangeKind::Extension, format!("gives {role} to {holder} again{}", until(g))))
                }
                Some(b) => match (b.expires(), g.expires()) {
                    (Some(_), None) => {
                        Some((ChangeKind::Extension, format!("lets {holder} hold {role} without an expiry")))
                    }
                    (Some(old), Some(new)) if new > old => {
                        Some((ChangeKind::Extension, format!("extends {holder}'s {role} from {old} to {new}")))
                    }
                    _ => None,
                },
            };
            if let Some((k, description)) = what {
                let path: Vec<PathSeg> = vec!["roles".into(), i.into()];
                push(k, role, Some(holder.clone()), description, locate(&path).unwrap_or_else(|| unknown(head)));
            }
        }
        if held_privileged.is_empty() {
            continue;
        }
        let roles = held_privileged.iter().map(Name::as_str).collect::<Vec<_>>().join(", ");
        // The same grants reaching someone else, or reaching them again.
        let gained: Option<(String, &str)> = match &holder {
            Holder::User(n) => match (base.users.get(n), head.state.users.get(n)) {
                (Some(b), Some(h)) if !b.user_name.eq_ignore_ascii_case(&h.user_name) => Some((
                    format!("re-points user {n}, who holds {roles}, from account {} to {}", b.user_name, h.user_name),
                    "userName",
                )),
                (Some(b), Some(h)) if b.status == UserStatus::Disabled && h.status == UserStatus::Active => {
                    Some((format!("enables user {n}, who holds {roles}"), "status"))
                }
                _ => None,
            },
            Holder::ServiceAccount(n) => match (base.service_accounts.get(n), head.state.service_accounts.get(n)) {
                (Some(b), Some(h)) if b.owner != h.owner => {
                    Some((format!("makes {} the owner of service account {n}, which holds {roles}", h.owner), "owner"))
                }
                _ => None,
            },
        };
        if let Some((description, field)) = gained {
            let at = locate(&[field.into()]).unwrap_or_else(|| unknown(head));
            for role in &held_privileged {
                push(ChangeKind::Holder, role, Some(holder.clone()), description.clone(), at.clone());
            }
        }
    }

    // Definitions of privileged roles.
    let roles: BTreeSet<&Name> = base.roles.keys().chain(head.state.roles.keys()).collect();
    for role in roles {
        if !privileged(role) {
            continue;
        }
        let (b, h) = (base.roles.get(role), head.state.roles.get(role));
        let Some(h) = h else { continue }; // Removing a role takes access away.
        let mut what = Vec::new();
        match b {
            None => what.push("defines it".to_string()),
            Some(b) => {
                if b.bindings != h.bindings {
                    what.push("changes its bindings".into());
                }
                if b.privileged && !h.privileged {
                    what.push("marks it not privileged".into());
                }
                if owner_identities(base, b) != owner_identities(head.state, h) {
                    what.push("changes who its owners are or the GitHub logins they approve with".into());
                }
            }
        }
        if what.is_empty() {
            continue;
        }
        let at = head.origins.locate(head.loaded, Kind::Role, role, &[]).unwrap_or_else(|| unknown(head));
        push(ChangeKind::Role, role, None, format!("privileged role {role}: {}", what.join("; ")), at);
    }

    changes.sort_by(|a, b| {
        let loc = |c: &PrivilegedChange| c.location.as_ref().map(|l| (l.file.clone(), l.line));
        (loc(a), a.kind, &a.role).cmp(&(loc(b), b.kind, &b.role))
    });
    Verdict { base: base_rev.to_string(), approvers, ignored, changes }
}

/// `, until EXPIRY` for a grant with one.
fn until(g: &RoleGrant) -> String {
    g.expires().map(|e| format!(" until {e}")).unwrap_or_default()
}

/// The people a role's owners stand for, each with the login they approve with.
fn owner_identities(state: &DesiredState, role: &Role) -> BTreeSet<(Name, Option<String>)> {
    owners::people(state, &role.owners)
        .into_iter()
        .map(|p| {
            let login = state.users.get(&p).and_then(|u| u.github.as_ref()).map(|l| l.to_ascii_lowercase());
            (p, login)
        })
        .collect()
}

fn unknown(head: &Head) -> Location {
    Location { file: head.loaded.root.join(crate::load::SETTINGS_FILE), line: 1, column: 1 }
}

/// The verdict's problems as policy findings (severity deny), for the same renderers and
/// SARIF as every other finding.
pub fn findings(verdict: &Verdict) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in &verdict.changes {
        let names = |v: &[Name]| v.iter().map(Name::as_str).collect::<Vec<_>>().join(", ");
        let (rule, message, help) = match c.status {
            Status::Approved => continue,
            Status::MissingOwner => (
                "approval.missing-owner",
                format!("{}: no owner of {} approved it", c.description, c.role),
                format!("one of {} must approve the pull request", names(&c.owners)),
            ),
            Status::SelfApproval => (
                "approval.self-approval",
                format!("{}: the only approval is from the person gaining the access", c.description),
                format!("another owner of {} must approve: {}", c.role, names(&c.owners)),
            ),
            Status::NoOwners => (
                "approval.no-owners",
                format!("{}: nobody can approve it: {} has no owners at {}", c.description, c.role, verdict.base),
                "give the role owners, or set governance.defaultOwners in keyward.yaml, in a change of its own".into(),
            ),
        };
        let address = match &c.holder {
            Some(Holder::User(n)) => format!("user.{n}"),
            Some(Holder::ServiceAccount(n)) => format!("service-account.{n}"),
            None => format!("role.{}", c.role),
        };
        out.push(Finding::new(rule, Severity::Deny, address, message).help(help).at(c.location.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(login: &str, state: &str, commit: &str, at: &str) -> GitHubReview {
        GitHubReview {
            user: Some(GitHubUser { login: login.into() }),
            state: state.into(),
            commit_id: Some(commit.into()),
            submitted_at: Some(at.into()),
        }
    }

    #[test]
    fn the_latest_deciding_review_of_each_person_counts() {
        let reviews = vec![
            review("laura", "APPROVED", "c1", "2027-01-02T10:00:00Z"),
            review("laura", "COMMENTED", "c1", "2027-01-02T11:00:00Z"),
            review("Bob", "APPROVED", "c1", "2027-01-02T10:00:00Z"),
            review("bob", "CHANGES_REQUESTED", "c1", "2027-01-02T12:00:00Z"),
            review("carol", "APPROVED", "c1", "2027-01-02T09:00:00Z"),
            review("carol", "DISMISSED", "c1", "2027-01-02T09:30:00Z"),
            review("dave", "APPROVED", "c0", "2027-01-01T09:00:00Z"),
        ];
        let (ok, ignored) = approving_logins(&reviews, None);
        assert_eq!(ok, ["dave", "laura"]);
        assert_eq!(ignored.len(), 2);
        let (ok, ignored) = approving_logins(&reviews, Some("c1"));
        assert_eq!(ok, ["laura"]);
        assert!(ignored.iter().any(|i| i.login == "dave" && i.why.contains("not the head")), "{ignored:?}");
    }

    #[test]
    fn paginated_reviews_read_as_one_list() {
        let one = r#"[{"user": {"login": "a"}, "state": "APPROVED", "commit_id": "c"}]"#;
        let two = format!("{one}\n[{{\"user\": null, \"state\": \"APPROVED\"}}]");
        assert_eq!(parse_reviews(&two).unwrap().len(), 2);
        assert!(parse_reviews("{\"message\": \"Not Found\"}").is_err());
    }
}
