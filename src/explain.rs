//! `keyward explain USER`: why one person (or service account) has each access they have.
//!
//! For every role the configuration gives them: the YAML line that grants it, the commits
//! that added it and last changed it (with the pull request, who merged and who approved it),
//! who wrote the line, the ticket and reason, when it expires, what the role is on each target
//! and when keyward applied it there (the audit record, with its provenance); then the live
//! access that git does not explain (drift, with who made it where the target says).
//!
//! Guarantees: [`explain`] is a pure function of its [`ExplainInput`]: the desired state with
//! the documents it came from, git history facts, blame, audit records, drift changes and live
//! state passed in as values, and the clock injected. Nothing here reads, writes or prints.
//! Nothing secret is in an explanation: names, roles, dates, commit metadata and addresses.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::audit::{Outcome, Provenance, Record};
use crate::history::{CommitInfo, FactKey, History};
use crate::load::{Loaded, PathSeg};
use crate::model::{Binding, Date, DesiredState, Expiry, Kind, LiveTarget, Name, RoleGrant, Timestamp, UserStatus};
use crate::plan::{Change, ObjectKind, ReasonKind};
use crate::policy::Finding;
use crate::validate::Origins;

/// A place in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SourceRef {
    /// Relative to the configuration folder, with `/` separators.
    pub file: String,
    pub line: u32,
}

impl std::fmt::Display for SourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The holder explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// `user` or `service-account`.
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    /// The manager, or for a service account its owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
    /// The commit from which on the holder has been in the configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<CommitInfo>,
}

/// One audit record, as an explanation shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub seq: u64,
    pub time: Timestamp,
    pub actor: String,
    pub action: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

impl Applied {
    pub fn of(r: &Record) -> Self {
        Applied {
            seq: r.seq,
            time: r.entry.time,
            actor: r.entry.actor.clone(),
            action: r.entry.action.clone(),
            outcome: r.entry.outcome,
            commit: r.entry.commit.clone(),
            provenance: r.entry.provenance.clone(),
        }
    }
}

/// Whether the live target holds what the configuration gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveState {
    /// The account is a member of the bound object.
    Held,
    /// It is not (the next apply assigns it).
    Missing,
    /// The target was not read.
    Unknown,
}

/// What a role is on one target, for this holder.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetAccess {
    pub target: String,
    /// `group finance-admins`, `securityRole Accountant`.
    pub binding: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_source: Option<SourceRef>,
    pub live: LiveState,
    /// The last time keyward assigned it there (applied), from the audit log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// The plan's address of the assignment: `directory.assignment.nancy.davolio/finance-admin`.
    pub address: String,
}

/// A segregation-of-duties fact about a role held.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SodNote {
    pub rule: String,
    /// `exception` (an unexpired exception names the holder), `expired-exception`, or the
    /// severity of a conflict finding.
    pub status: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Date>,
}

/// One role the configuration gives the holder, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub privileged: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duties: Vec<String>,
    /// The line of the grant in the holder's `roles`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expiry>,
    /// Days from now to the end of `expires` (negative: expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The first-parent commit that added the grant (a pull request's merge, a squash, or a
    /// direct commit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<CommitInfo>,
    /// The first-parent commit that gave the grant its current form, when later than `added`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<CommitInfo>,
    /// The commit that last wrote the grant's line (inside the pull request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<CommitInfo>,
    /// The grant is in the working tree but not committed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub uncommitted: bool,
    pub targets: Vec<TargetAccess>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sod: Vec<SodNote>,
}

/// Live access or state git does not explain, or that the configuration does not have yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unexplained {
    pub address: String,
    /// What `keyward apply` would do about it.
    pub action: String,
    pub reason: String,
    /// Who made the change and when, where the target's audit log tells.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The whole explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub generated: Timestamp,
    pub holder: Holder,
    pub access: Vec<Access>,
    /// Drift concerning the holder: live access git does not explain, access git gives that
    /// was taken away outside git, attributes changed outside git.
    pub unexplained: Vec<Unexplained>,
    /// Whether the live targets were read (drift and live state are known).
    pub live_read: bool,
    /// Policy findings about the holder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Everything an explanation is made from.
pub struct ExplainInput<'a> {
    pub desired: &'a DesiredState,
    pub loaded: &'a Loaded,
    pub origins: &'a Origins,
    /// The holder: a User's or ServiceAccount's name, or a userName or e-mail address.
    pub who: &'a str,
    /// Only these targets (all when empty).
    pub targets: &'a [Name],
    pub history: &'a History,
    /// Who last wrote each line, by (file relative to the configuration, line); see
    /// [`lines_to_blame`].
    pub blame: &'a BTreeMap<(PathBuf, u32), CommitInfo>,
    pub records: &'a [Record],
    /// The live state, when the targets were read.
    pub live: Option<&'a BTreeMap<Name, LiveTarget>>,
    /// The drift plan's changes (every difference of the live targets from the configuration).
    pub drift: &'a [Change],
    pub findings: &'a [Finding],
    /// The working tree has uncommitted changes.
    pub dirty: bool,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("there is no user or service account `{who}` in the configuration{hint}")]
    NotFound { who: String, hint: String },
}

/// The holder `who` names: by name, then by userName or e-mail (without regard to case).
pub fn find_holder(desired: &DesiredState, who: &str) -> Result<(Kind, Name), ExplainError> {
    if let Some(u) = desired.users.values().find(|u| u.name.as_str() == who) {
        return Ok((Kind::User, u.name.clone()));
    }
    if let Some(s) = desired.service_accounts.values().find(|s| s.name.as_str() == who) {
        return Ok((Kind::ServiceAccount, s.name.clone()));
    }
    let by_login = desired.users.values().find(|u| {
        u.user_name.eq_ignore_ascii_case(who) || u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(who))
    });
    if let Some(u) = by_login {
        return Ok((Kind::User, u.name.clone()));
    }
    let names = desired.users.keys().chain(desired.service_accounts.keys()).map(Name::as_str);
    let hint = names
        .map(|n| (strsim::jaro_winkler(n, who), n))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    Err(ExplainError::NotFound { who: who.to_string(), hint })
}

fn grants<'d>(desired: &'d DesiredState, kind: Kind, name: &Name) -> &'d [RoleGrant] {
    match kind {
        Kind::User => desired.users.get(name).map(|u| u.roles.as_slice()).unwrap_or_default(),
        _ => desired.service_accounts.get(name).map(|s| s.roles.as_slice()).unwrap_or_default(),
    }
}

fn source(loaded: &Loaded, origins: &Origins, kind: Kind, name: &Name, path: &[PathSeg]) -> Option<SourceRef> {
    origins
        .locate(loaded, kind, name, path)
        .map(|l| SourceRef { file: l.file.to_string_lossy().replace('\\', "/"), line: l.line })
}

/// The lines whose authors an explanation of `who` shows: each grant's line.
pub fn lines_to_blame(desired: &DesiredState, loaded: &Loaded, origins: &Origins, who: &str) -> Vec<(PathBuf, u32)> {
    let Ok((kind, name)) = find_holder(desired, who) else { return Vec::new() };
    (0..grants(desired, kind, &name).len())
        .filter_map(|i| source(loaded, origins, kind, &name, &["roles".into(), i.into()]))
        .map(|s| (PathBuf::from(s.file), s.line))
        .collect()
}

/// Whether the live account `user_name` (or service account `sa`) is a member of `binding`.
fn holds(live: &LiveTarget, key: &str, kind: Kind, binding: &Binding) -> bool {
    let id = match kind {
        Kind::User => live.accounts.iter().find(|a| a.user_name.eq_ignore_ascii_case(key)).map(|a| &a.id),
        _ => live.service_accounts.iter().find(|s| s.name == key).map(|s| &s.id),
    };
    let Some(id) = id else { return false };
    let want = binding.object_name().to_lowercase();
    live.bindings.iter().any(|b| {
        b.binding.kind() == binding.kind() && b.binding.object_name().to_lowercase() == want && b.members.contains(id)
    })
}

fn days(now: Timestamp, t: Timestamp) -> i64 {
    (t - now).num_days()
}

/// Whether `change` concerns the holder `name` (with live key `key`).
fn concerns(change: &Change, name: &str, key: &str) -> bool {
    if change.subject.as_deref() == Some(name) {
        return true;
    }
    let a = &change.address.name;
    let holder = a.split_once('/').map_or(a.as_str(), |(h, _)| h);
    holder == name || holder.eq_ignore_ascii_case(key)
}

/// Explains the access of the holder `input.who`.
pub fn explain(input: &ExplainInput) -> Result<Explanation, ExplainError> {
    let ExplainInput { desired, loaded, origins, history, blame, records, live, now, .. } = *input;
    let (kind, name) = find_holder(desired, input.who)?;
    let picked = |t: &Name| input.targets.is_empty() || input.targets.contains(t);
    let holder = match kind {
        Kind::User => {
            let u = &desired.users[&name];
            Holder {
                kind: "user",
                name: name.to_string(),
                user_name: Some(u.user_name.clone()),
                display_name: u.display_name.clone(),
                department: u.department.clone(),
                job_title: u.job_title.clone(),
                manager: u.manager.as_ref().map(Name::to_string),
                active: u.status == UserStatus::Active,
                source: source(loaded, origins, kind, &name, &[]),
                added: history.added(&FactKey::Resource { kind, name: name.to_string() }).cloned(),
            }
        }
        _ => {
            let s = &desired.service_accounts[&name];
            Holder {
                kind: "service-account",
                name: name.to_string(),
                user_name: None,
                display_name: s.display_name.clone(),
                department: None,
                job_title: None,
                manager: Some(s.owner.to_string()),
                active: true,
                source: source(loaded, origins, kind, &name, &[]),
                added: history.added(&FactKey::Resource { kind, name: name.to_string() }).cloned(),
            }
        }
    };
    // The live key: a user's userName, a service account's name.
    let key = holder.user_name.clone().unwrap_or_else(|| name.to_string());

    let mut access = Vec::new();
    for (i, g) in grants(desired, kind, &name).iter().enumerate() {
        let role_name = g.role();
        let Some(role) = desired.roles.get(role_name) else { continue };
        let src = source(loaded, origins, kind, &name, &["roles".into(), i.into()]);
        let fact = FactKey::Grant { kind, holder: name.to_string(), role: role_name.to_string() };
        let added = history.added(&fact).cloned();
        let changed = history.changed(&fact).filter(|c| added.as_ref().is_none_or(|a| a.id != c.id)).cloned();
        let written = src.as_ref().and_then(|s| blame.get(&(PathBuf::from(&s.file), s.line))).cloned();
        let (reason, ticket) = match g {
            RoleGrant::Detailed(d) => (d.reason.clone(), d.ticket.clone()),
            RoleGrant::Name(_) => (None, None),
        };
        let mut targets = Vec::new();
        for (t, binding) in role.bindings.iter().filter(|(t, _)| picked(t)) {
            let address = format!("{t}.{}.{name}/{role_name}", ObjectKind::Assignment);
            let applied = records
                .iter()
                .rev()
                .find(|r| {
                    r.entry.address == address && r.entry.action == "assign" && r.entry.outcome == Outcome::Applied
                })
                .map(Applied::of);
            // A service account a target knows by its application: by client id there, declared
            // or its app registration's (read from Graph).
            let by_application = desired
                .settings
                .targets
                .get(t)
                .is_some_and(|target| crate::model::capabilities(target.provider()).application_users);
            let key = desired
                .service_accounts
                .get(&name)
                .filter(|_| kind == Kind::ServiceAccount && by_application)
                .and_then(|sa| sa.application_id(t).or_else(|| registration_id(live, &name)))
                .unwrap_or(&key);
            let live_state = match live.and_then(|l| l.get(t)) {
                Some(lt) if holds(lt, key, kind, binding) => LiveState::Held,
                Some(_) => LiveState::Missing,
                None => LiveState::Unknown,
            };
            targets.push(TargetAccess {
                target: t.to_string(),
                binding: binding.label(),
                binding_source: source(loaded, origins, Kind::Role, role_name, &["bindings".into(), t.as_str().into()]),
                live: live_state,
                applied,
                address,
            });
        }
        if targets.is_empty() && !input.targets.is_empty() {
            continue;
        }
        let mut sod = Vec::new();
        for rule in desired.sod_rules.values() {
            let on = |side: &crate::model::SodSide| {
                side.roles.contains(role_name) || role.duties.iter().any(|d| side.duties.contains(d))
            };
            if !on(&rule.first) && !on(&rule.second) {
                continue;
            }
            if let Some(e) = rule.exceptions.iter().find(|e| e.user == name) {
                let expired = e.expires.has_passed(now);
                sod.push(SodNote {
                    rule: rule.name.to_string(),
                    status: if expired { "expired-exception" } else { "exception" }.into(),
                    detail: e.reason.clone(),
                    expires: Some(e.expires),
                });
            }
        }
        access.push(Access {
            role: role_name.to_string(),
            description: role.description.clone(),
            privileged: role.privileged,
            duties: role.duties.clone(),
            uncommitted: added.is_none() && history.head.is_some(),
            source: src,
            expires: g.expires(),
            expires_in_days: g.expires().map(|d| days(now, d.end())),
            reason,
            ticket,
            added,
            changed,
            written,
            targets,
            sod,
        });
    }

    // Without the live state there is no drift to tell.
    let drift = if live.is_some() { input.drift } else { &[] };
    let unexplained = drift
        .iter()
        .filter(|c| c.reason.kind == ReasonKind::Drift && picked(&c.address.target) && concerns(c, name.as_str(), &key))
        .map(|c| Unexplained {
            address: c.address.to_string(),
            action: c.action.to_string(),
            reason: c.reason.message(),
            notes: c.notes.iter().map(ToString::to_string).collect(),
        })
        .collect();

    let own = format!("{}.{name}", holder.kind);
    let findings = input
        .findings
        .iter()
        .filter(|f| {
            f.address == own
                || f.address.starts_with(&format!("{own}/"))
                || f.address.parse::<crate::plan::Address>().is_ok_and(|a| {
                    picked(&a.target) && (a.name == name.as_str() || a.name.starts_with(&format!("{name}/")))
                })
        })
        .cloned()
        .collect();

    let mut notes = Vec::new();
    if history.head.is_none() {
        notes.push("the configuration is not in a git repository with commits: no history".to_string());
    }
    if history.truncated {
        notes.push("the git history was longer than keyward reads: the oldest dates are upper bounds".to_string());
    }
    if input.dirty {
        notes.push("the configuration has uncommitted changes".to_string());
    }
    if live.is_none() {
        notes.push("the live targets were not read: live state and drift are unknown".to_string());
    }
    Ok(Explanation { generated: now, holder, access, unexplained, live_read: live.is_some(), findings, notes })
}

/// The client id of service account `name`'s one app registration among the live targets read
/// (a Graph target reports it; an application user's own name is its client id, so it is not
/// one), if there is exactly one.
fn registration_id<'l>(live: Option<&'l BTreeMap<Name, LiveTarget>>, name: &Name) -> Option<&'l str> {
    let mut ids = live?
        .values()
        .flat_map(|lt| &lt.service_accounts)
        .filter(|s| s.name == name.as_str())
        .filter_map(|s| s.application_id.as_deref())
        .filter(|id| *id != name.as_str());
    let first = ids.next()?;
    ids.all(|id| id == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Entry, Provenance};
    use crate::history::testing::TestRepo;
    use crate::history::{HistoryOptions, blame, history};
    use crate::model::{LiveAccount, LiveBinding, UserAttrs};
    use crate::plan::{Action, Address, Operation, Principal, Reason};

    const SETTINGS: &str =
        "version: 1\ntargets:\n  directory:\n    provider: file\n    path: .keyward/directory.json\n";
    const ROLES: &str = "kind: Role\nname: ap-clerk\ndescription: Enters vendor invoices and prepares vendor payment runs\n\
        duties: [vendor-invoice-entry, vendor-payment]\nbindings:\n  directory: {group: ap-clerks}\n---\n\
        kind: Role\nname: purchasing-manager\nduties: [vendor-maintenance]\nbindings:\n  directory: {group: purchasing-managers}\n---\n\
        kind: Role\nname: finance-admin\nprivileged: true\nbindings:\n  directory: {group: finance-admins}\n";
    const SOD: &str = "kind: SodRule\nname: vendor-maintenance-vs-payment\nfirst: {duties: [vendor-maintenance]}\n\
        second: {duties: [vendor-payment]}\nseverity: deny\n";
    const JANET: &str = "kind: User\nname: janet\nuserName: janet@northwind.example\ndisplayName: Janet Leverling\n\
        department: Finance\nmanager: laura\nroles: []\n---\nkind: User\nname: laura\nuserName: laura@northwind.example\n";
    const JANET_AP: &str = "kind: User\nname: janet\nuserName: janet@northwind.example\ndisplayName: Janet Leverling\n\
        department: Finance\nmanager: laura\nroles:\n  - role: ap-clerk\n    reason: Covers vendor payments\n    ticket: CHG-12\n    \
        expires: 2027-01-31\n---\nkind: User\nname: laura\nuserName: laura@northwind.example\n";

    fn at(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// A configuration whose history has an initial commit and a pull request merged with a
    /// merge commit that gives janet `ap-clerk`.
    fn repo() -> TestRepo {
        let r = TestRepo::new();
        r.set_origin("git@github.com:northwind/access.git");
        r.commit(
            &[
                ("keyward.yaml", SETTINGS),
                ("roles/all.yaml", ROLES),
                ("policies/sod.yaml", SOD),
                ("users/finance.yaml", JANET),
            ],
            "Initial configuration",
            "Laura Callahan",
            1,
        );
        let side =
            r.side_commit(&[("users/finance.yaml", JANET_AP)], "Janet covers vendor payments", "Nancy Davolio", 2);
        r.merge(
            side,
            "Merge pull request #12 from northwind/janet-ap\n\nApproved-by: Laura Callahan <laura@northwind.example>",
            "Andrew Fuller",
            3,
        );
        r
    }

    fn record(seq: u64, address: &str, pr: u64) -> Record {
        Record {
            version: crate::audit::HASH_VERSION,
            seq,
            entry: Entry {
                time: at("2026-11-03T15:00:00Z"),
                actor: "apply-bot".into(),
                commit: Some("c".repeat(40)),
                plan_hash: "sha256:p".into(),
                address: address.into(),
                action: "assign".into(),
                outcome: Outcome::Applied,
                error: None,
                detail: None,
                reason: Some("config".into()),
                provenance: Some(Provenance {
                    pull_request: Some(pr),
                    pull_request_url: Some(format!("https://github.com/northwind/access/pull/{pr}")),
                    run_url: Some("https://github.com/northwind/access/actions/runs/7".into()),
                    ..Provenance::default()
                }),
                approved_by: Vec::new(),
            },
            prev: String::new(),
            hash: String::new(),
        }
    }

    fn live() -> BTreeMap<Name, LiveTarget> {
        let account = |id: &str, user_name: &str| LiveAccount {
            id: id.into(),
            user_name: user_name.into(),
            attrs: UserAttrs::default(),
            active: true,
            last_sign_in: None,
            registered_methods: None,
            fingerprint: "f".into(),
        };
        let group = |name: &str, members: &[&str]| LiveBinding {
            id: name.into(),
            binding: Binding::Group(name.into()),
            members: members.iter().map(|m| m.to_string()).collect(),
            fingerprint: "f".into(),
        };
        let t = LiveTarget {
            accounts: vec![account("1", "JANET@northwind.example"), account("2", "laura@northwind.example")],
            bindings: vec![group("ap-clerks", &["1"]), group("purchasing-managers", &["1"])],
            ..LiveTarget::default()
        };
        BTreeMap::from([(Name::new("directory").unwrap(), t)])
    }

    fn drift() -> Vec<Change> {
        let target = Name::new("directory").unwrap();
        vec![Change {
            address: Address::new(&target, ObjectKind::Assignment, "janet/purchasing-manager"),
            action: Action::Revoke,
            reason: Reason::new(
                ReasonKind::Drift,
                "the configuration does not give `janet` role `purchasing-manager` here",
            ),
            before: None,
            after: None,
            fingerprint: "f".into(),
            subject: Some("janet".into()),
            notes: vec![
                "changed by helpdesk@northwind.example at 2026-11-20 09:12 UTC (the target's audit log)".into(),
            ],
            operation: Operation::Revoke {
                principal: Principal::User("JANET@northwind.example".into()),
                binding: Binding::Group("purchasing-managers".into()),
            },
        }]
    }

    fn explained(
        r: &TestRepo,
        who: &str,
        targets: &[Name],
        live_state: Option<&BTreeMap<Name, LiveTarget>>,
    ) -> Explanation {
        let dir = r.path();
        let loaded = crate::load::load_dir(&dir).unwrap();
        let validated = crate::validate::validate(&loaded);
        assert!(!validated.has_errors(), "{:?}", validated.diagnostics);
        let desired = validated.state.as_ref().unwrap();
        let h = history(&dir, HistoryOptions::default()).unwrap();
        let mut blamed = BTreeMap::new();
        for (file, line) in lines_to_blame(desired, &loaded, &validated.origins, who) {
            for (l, c) in blame(&dir, &file, &[line]).unwrap() {
                blamed.insert((file.clone(), l), c);
            }
        }
        let records = vec![
            record(1, "directory.assignment.janet/ap-clerk", 11),
            record(2, "directory.assignment.janet/ap-clerk", 12),
            record(3, "directory.assignment.laura/ap-clerk", 12),
        ];
        let changes = drift();
        explain(&ExplainInput {
            desired,
            loaded: &loaded,
            origins: &validated.origins,
            who,
            targets,
            history: &h,
            blame: &blamed,
            records: &records,
            live: live_state,
            drift: &changes,
            findings: &[],
            dirty: false,
            now: at("2026-11-28T12:00:00Z"),
        })
        .unwrap()
    }

    #[test]
    fn a_grant_is_traced_to_its_line_pull_request_approver_and_apply() {
        let r = repo();
        let l = live();
        let e = explained(&r, "janet@NORTHWIND.example", &[], Some(&l));
        assert_eq!(e.holder.name, "janet");
        assert_eq!(e.holder.added.as_ref().unwrap().summary, "Initial configuration");
        assert_eq!(e.access.len(), 1);
        let a = &e.access[0];
        assert_eq!(a.role, "ap-clerk");
        assert_eq!(a.duties, ["vendor-invoice-entry", "vendor-payment"]);
        assert_eq!(a.source.as_ref().unwrap().to_string(), "users/finance.yaml:8");
        assert_eq!((a.ticket.as_deref(), a.reason.as_deref()), (Some("CHG-12"), Some("Covers vendor payments")));
        assert_eq!(a.expires_in_days, Some(64));
        let added = a.added.as_ref().unwrap();
        assert_eq!(added.pull_request, Some(12));
        assert_eq!(added.pull_request_url.as_deref(), Some("https://github.com/northwind/access/pull/12"));
        assert_eq!(added.merged_by.as_deref(), Some("Andrew Fuller"));
        assert_eq!(added.approved_by, ["Laura Callahan"]);
        assert_eq!(a.changed, None, "not changed since it was added");
        assert_eq!(a.written.as_ref().unwrap().author, "Nancy Davolio");
        let t = &a.targets[0];
        assert_eq!((t.target.as_str(), t.binding.as_str(), t.live), ("directory", "group ap-clerks", LiveState::Held));
        // The latest apply of this very assignment, not another person's.
        let applied = t.applied.as_ref().unwrap();
        assert_eq!((applied.seq, applied.provenance.as_ref().unwrap().pull_request), (2, Some(12)));
        // The live membership that git does not give, with who made it.
        assert_eq!(e.unexplained.len(), 1);
        assert_eq!(e.unexplained[0].address, "directory.assignment.janet/purchasing-manager");
        assert!(e.unexplained[0].notes[0].contains("helpdesk@"));
        assert!(e.notes.is_empty(), "{:?}", e.notes);

        insta::assert_snapshot!("explain_text", crate::output::explain::render_text(&e));
        insta::assert_snapshot!("explain_markdown", crate::output::explain::render_markdown(&e));
        let json: serde_json::Value = serde_json::from_str(&crate::output::explain::render_json(&e)).unwrap();
        assert_eq!(json["access"][0]["added"]["pullRequest"], 12);
        assert_eq!(
            json["access"][0]["targets"][0]["applied"]["provenance"]["runUrl"],
            "https://github.com/northwind/access/actions/runs/7"
        );
    }

    #[test]
    fn without_live_state_or_history_it_says_so() {
        let r = repo();
        let e = explained(&r, "janet", &[], None);
        assert_eq!(e.access[0].targets[0].live, LiveState::Unknown);
        assert!(e.unexplained.is_empty());
        assert!(e.notes.iter().any(|n| n.contains("not read")), "{:?}", e.notes);
        // --target of a target the role is not bound on leaves nothing.
        let e = explained(&r, "janet", &[Name::new("elsewhere").unwrap()], Some(&live()));
        assert!(e.access.is_empty() && e.unexplained.is_empty());
    }

    #[test]
    fn an_unknown_holder_is_an_error_with_a_suggestion() {
        let r = repo();
        let loaded = crate::load::load_dir(&r.path()).unwrap();
        let validated = crate::validate::validate(&loaded);
        let err = find_holder(validated.state.as_ref().unwrap(), "jannet").unwrap_err();
        assert_eq!(
            err.to_string(),
            "there is no user or service account `jannet` in the configuration; did you mean `janet`?"
        );
    }
}
