//! Certification campaigns: who holds what, certified in a pull request by the people
//! accountable for it, with the evidence an auditor asks for.
//!
//! - [`open`] lists the assignments in scope, gives each to its reviewers (the role's owners,
//!   else the holder's manager, else the default owners; never the holder) with what keyward
//!   knows about it, and the access review's findings as flags;
//! - [`status`] counts the decisions made;
//! - [`close`] turns `revoke` decisions (and, when the campaign says so, lines nobody reviewed
//!   by the due date) into edits of the configuration, and writes the evidence: who certified
//!   what, when, in which commit.
//!
//! Guarantees: pure over values: the configuration, the live state, the review, the facts git
//! and the audit log give (passed in as maps) and the clock. A line in several reviewers' files
//! is revoked when any of them revokes it; a decision made in a commit by the person holding
//! the access does not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::edit;
use super::owners::{self, Holder};
use crate::load::{Loaded, PathSeg};
use crate::model::certification::{Evidence, Provenance, Unreviewed};
use crate::model::{
    Campaign, CampaignScope, Certification, CertificationLine, Date, Decision, DesiredState, Flag, Instant, Kind,
    LiveTarget, Name, Owner, RoleGrant, SodSide, Timestamp, UserStatus,
};
use crate::review::{Item, Section};
use crate::validate::{Location, Origins};

/// The folder campaigns live in, below the configuration folder.
pub const REVIEWS: &str = "reviews";

/// The file of the campaign itself, in its folder.
pub const CAMPAIGN_FILE: &str = "campaign.yaml";

/// The evidence file `close` writes, in the campaign's folder.
pub const EVIDENCE_FILE: &str = "evidence.json";

/// The `format` of evidence files this keyward writes and reads.
pub const EVIDENCE_FORMAT: &str = "keyward-certification/1";

/// The folder of campaign `name`, relative to the configuration folder.
pub fn folder(name: &Name) -> PathBuf {
    Path::new(REVIEWS).join(name.as_str())
}

/// What git says about a line of the configuration: (file, line) to the commit that last
/// wrote it.
pub type Blame = BTreeMap<(PathBuf, u32), Provenance>;

/// One assignment in scope, and where it is written.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub holder: Holder,
    pub grant: &'a RoleGrant,
    pub location: Option<Location>,
}

/// The assignments a campaign of `scope` covers, in the configuration's order.
pub fn subjects<'a>(
    state: &'a DesiredState,
    loaded: &Loaded,
    origins: &Origins,
    scope: &CampaignScope,
) -> Vec<Subject<'a>> {
    let mut out = Vec::new();
    for (holder, grants) in owners::holders(state) {
        for (i, g) in grants.iter().enumerate() {
            let Some(role) = state.roles.get(g.role()) else { continue };
            let wanted = match scope {
                CampaignScope::Privileged => role.privileged,
                CampaignScope::All => true,
                CampaignScope::Role(r) => r == g.role(),
            };
            if !wanted {
                continue;
            }
            let path: Vec<PathSeg> = match g {
                RoleGrant::Name(_) => vec!["roles".into(), i.into()],
                RoleGrant::Detailed(_) => vec!["roles".into(), i.into(), "role".into()],
            };
            let location = origins.locate(loaded, holder.kind(), holder.name(), &path);
            out.push(Subject { holder: holder.clone(), grant: g, location });
        }
    }
    out
}

/// When each assignment was last applied, from the audit log: `(holder, role)` to the time.
pub fn applied_times(records: &[crate::audit::Record]) -> BTreeMap<(String, String), Instant> {
    let mut out = BTreeMap::new();
    for r in records {
        let e = &r.entry;
        if e.action != "assign" || e.outcome != crate::audit::Outcome::Applied {
            continue;
        }
        let Ok(a) = e.address.parse::<crate::plan::Address>() else { continue };
        if a.kind != crate::plan::ObjectKind::Assignment {
            continue;
        }
        if let Some((holder, role)) = a.name.split_once('/') {
            out.insert((holder.to_string(), role.to_string()), Instant(e.time));
        }
    }
    out
}

/// Everything [`open`] needs.
pub struct OpenInput<'a> {
    pub name: Name,
    pub scope: CampaignScope,
    pub due: Date,
    pub unreviewed: Unreviewed,
    pub description: Option<String>,
    pub state: &'a DesiredState,
    pub loaded: &'a Loaded,
    pub origins: &'a Origins,
    /// The live state of the targets read (empty when none were).
    pub live: &'a BTreeMap<Name, LiveTarget>,
    /// Which targets report sign-ins.
    pub sign_ins: &'a BTreeSet<Name>,
    /// The access review's items (`keyward audit review`).
    pub review: &'a [Item],
    /// The commits that last wrote each assignment's line.
    pub blame: &'a Blame,
    /// When each assignment was last applied ([`applied_times`]).
    pub applied: &'a BTreeMap<(String, String), Instant>,
    pub now: Timestamp,
    /// The commit the campaign opens at.
    pub commit: Option<String>,
}

/// An opened campaign, and what could be given to nobody.
#[derive(Debug, Clone)]
pub struct Opened {
    pub campaign: Campaign,
    pub certifications: Vec<Certification>,
    /// Lines nobody can certify (every candidate is the holder), with why.
    pub unassigned: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("campaign `{0}` exists already (reviews/{0}/campaign.yaml); open it under another name")]
    Exists(Name),
    #[error("there is no campaign `{0}` (reviews/{0}/campaign.yaml)")]
    Missing(Name),
    #[error("campaign `{name}` was closed at {closed}")]
    Closed { name: Name, closed: Instant },
    #[error("{0} in scope: there is nothing to certify")]
    Empty(String),
    #[error("reviewers `{0}` (a user) and `{0}` (a group of reviewers) would share the file {0}.yaml; rename one")]
    ReviewerClash(Name),
    #[error(
        "{pending} of {total} lines of campaign `{name}` are not reviewed and it is due {due}; wait for the reviewers, or close it early (--early) to keep them as they are"
    )]
    NotDue { name: Name, pending: usize, total: usize, due: Date },
}

/// Who certifies a line: the role's owners, else the holder's manager (a service account's
/// owner), else the default owners, leaving out the people gaining the access.
fn reviewers_of(state: &DesiredState, holder: &Holder, role: &Name) -> Vec<Owner> {
    let gaining = owners::beneficiaries(state, holder);
    let can = |o: &Owner| !owners::people(state, std::slice::from_ref(o)).iter().all(|p| gaining.contains(p));
    let own: Vec<Owner> =
        state.roles.get(role).map(|r| r.owners.iter().filter(|o| can(o)).cloned().collect()).unwrap_or_default();
    if !own.is_empty() {
        return own;
    }
    let boss = match holder {
        Holder::User(u) => state.users.get(u).and_then(|u| u.manager.clone()),
        Holder::ServiceAccount(s) => state.service_accounts.get(s).map(|s| s.owner.clone()),
    };
    if let Some(m) = boss.filter(|m| !gaining.contains(m) && state.users.contains_key(m)) {
        return vec![Owner::User(m)];
    }
    state.settings.governance.default_owners.iter().filter(|o| can(o)).cloned().collect()
}

/// The file stem of a reviewer: a User's name, or a group's.
fn stem(o: &Owner) -> &Name {
    match o {
        Owner::User(n) => n,
        Owner::Group(g) => &g.group,
    }
}

/// The roles on one side of an SoD rule: those named, and those granting a duty named.
fn side_roles<'a>(state: &'a DesiredState, side: &SodSide) -> BTreeSet<&'a Name> {
    state
        .roles
        .iter()
        .filter(|(n, r)| side.roles.contains(n) || r.duties.iter().any(|d| side.duties.contains(d)))
        .map(|(n, _)| n)
        .collect()
}

/// A flag of the review, its words, and the one role it is about (else every role).
type Noted<'a> = (Flag, String, Option<&'a str>);

/// The assignments to revoke in one document (by index), holder and role.
type Revocations = Vec<(usize, Vec<(Holder, Name)>)>;

/// Opens a campaign: the campaign and one certification per reviewer.
pub fn open(input: &OpenInput) -> Result<Opened, CampaignError> {
    let state = input.state;
    if state.campaigns.contains_key(&input.name) {
        return Err(CampaignError::Exists(input.name.clone()));
    }
    let subjects = subjects(state, input.loaded, input.origins, &input.scope);
    if subjects.is_empty() {
        return Err(CampaignError::Empty(match &input.scope {
            CampaignScope::Privileged => "no assignment of a privileged role is".into(),
            CampaignScope::All => "no assignment is".into(),
            CampaignScope::Role(r) => format!("no assignment of role `{r}` is"),
        }));
    }
    let now = input.now;

    // Flags and notes from the review: by holder (for one role, or for every privileged
    // role), and by role.
    let mut by_holder: BTreeMap<&str, Vec<Noted>> = BTreeMap::new();
    let mut by_role: BTreeMap<&str, Vec<(Flag, String)>> = BTreeMap::new();
    for item in input.review {
        match item.section {
            Section::StaleAccounts => {
                let note = format!("stale on {}: {}", item.target.as_deref().unwrap_or("a target"), item.detail);
                by_holder.entry(item.subject.as_str()).or_default().push((Flag::Stale, note, None));
            }
            Section::ExpiringAssignments => {
                let Some((who, role)) = item.subject.split_once('/') else { continue };
                let flag = if item.status == "expired" { Flag::Expired } else { Flag::Expiring };
                by_holder.entry(who).or_default().push((flag, item.detail.clone(), Some(role)));
            }
            Section::Authentication => {
                // `T.user.NAME` is about a person; `role.NAME` about everyone holding the role.
                if let Some((_, who)) = item.subject.split_once(".user.") {
                    by_holder.entry(who).or_default().push((Flag::MissingAuthentication, item.detail.clone(), None));
                } else if let Some(role) = item.subject.strip_prefix("role.") {
                    by_role.entry(role).or_default().push((Flag::MissingAuthentication, item.detail.clone()));
                }
            }
            _ => {}
        }
    }

    // Segregation of duties: both sides held without a current exception, and exceptions.
    let mut sod: BTreeMap<(Name, Name), (Vec<String>, Vec<String>)> = BTreeMap::new();
    let rules: Vec<_> = state
        .sod_rules
        .iter()
        .map(|(n, r)| (n, r, side_roles(state, &r.first), side_roles(state, &r.second)))
        .collect();
    for (holder, grants) in owners::holders(state) {
        let held: BTreeSet<&Name> =
            grants.iter().filter(|g| g.expires().is_none_or(|e| !e.has_passed(now))).map(RoleGrant::role).collect();
        for (rule_name, rule, first, second) in &rules {
            let sides: Vec<&&Name> = held.iter().filter(|r| first.contains(**r) || second.contains(**r)).collect();
            if !held.iter().any(|r| first.contains(*r)) || !held.iter().any(|r| second.contains(*r)) {
                continue;
            }
            let exception = rule
                .exceptions
                .iter()
                .find(|e| matches!(&holder, Holder::User(u) if *u == e.user) && !e.expires.has_passed(now));
            for r in sides {
                let slot = sod.entry((holder.name().clone(), (*r).clone())).or_default();
                match exception {
                    Some(e) => slot.1.push(format!("{rule_name}: {} (until {})", e.reason, e.expires)),
                    None => slot.0.push(format!("holds both sides of SodRule {rule_name}")),
                }
            }
        }
    }

    let mut files: BTreeMap<Owner, Vec<CertificationLine>> = BTreeMap::new();
    let mut unassigned = Vec::new();
    for s in &subjects {
        let role = s.grant.role();
        let holder = s.holder.name();
        let mut evidence = Evidence {
            targets: state.roles[role]
                .bindings
                .keys()
                .filter(|t| state.settings.targets.contains_key(*t))
                .cloned()
                .collect(),
            expires: s.grant.expires(),
            ..Evidence::default()
        };
        if let RoleGrant::Detailed(d) = s.grant {
            evidence.grant_reason = d.reason.clone();
            evidence.ticket = d.ticket.clone();
        }
        if let Holder::User(u) = &s.holder {
            let user_name = &state.users[u].user_name;
            for t in &evidence.targets {
                let Some(lt) = input.live.get(t).filter(|_| input.sign_ins.contains(t)) else { continue };
                let Some(acc) = lt.accounts.iter().find(|a| a.user_name.eq_ignore_ascii_case(user_name)) else {
                    evidence.last_sign_in.insert(t.clone(), "no account".into());
                    continue;
                };
                let seen = acc.last_sign_in.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "never".into());
                evidence.last_sign_in.insert(t.clone(), seen);
            }
            if state.users[u].status == UserStatus::Disabled {
                evidence.notes.push("the account is disabled in the configuration".into());
            }
        }
        evidence.granted = s.location.as_ref().and_then(|l| input.blame.get(&(l.file.clone(), l.line)).cloned());
        evidence.applied = input.applied.get(&(holder.to_string(), role.to_string())).copied();
        let mut flags = BTreeSet::new();
        for (flag, note, only_role) in by_holder.get(holder.as_str()).into_iter().flatten() {
            let applies = match (only_role, flag) {
                (Some(r), _) => *r == role.as_str(),
                (None, Flag::MissingAuthentication) => state.roles[role].privileged,
                (None, _) => true,
            };
            if applies && flags.insert(*flag) {
                evidence.notes.push(note.clone());
            }
        }
        for (flag, note) in by_role.get(role.as_str()).into_iter().flatten() {
            if flags.insert(*flag) {
                evidence.notes.push(note.clone());
            }
        }
        if let Some((conflicts, exceptions)) = sod.get(&(holder.clone(), role.clone())) {
            if !conflicts.is_empty() {
                flags.insert(Flag::SodConflict);
                evidence.notes.extend(conflicts.iter().cloned());
            }
            if !exceptions.is_empty() {
                flags.insert(Flag::SodException);
                evidence.sod_exceptions.extend(exceptions.iter().cloned());
            }
        }
        let line = CertificationLine {
            user: matches!(s.holder, Holder::User(_)).then(|| holder.clone()),
            service_account: matches!(s.holder, Holder::ServiceAccount(_)).then(|| holder.clone()),
            role: role.clone(),
            flags: flags.into_iter().collect(),
            evidence,
            decision: None,
            reason: None,
        };
        let reviewers = reviewers_of(state, &s.holder, role);
        if reviewers.is_empty() {
            unassigned.push(format!(
                "{} holds {role}: no owner of the role, manager or default owner other than the holder can certify it",
                s.holder
            ));
            continue;
        }
        for r in reviewers {
            files.entry(r).or_default().push(line.clone());
        }
    }

    let users: BTreeSet<&Name> =
        files.keys().filter_map(|o| if let Owner::User(u) = o { Some(u) } else { None }).collect();
    for o in files.keys() {
        if let Owner::Group(g) = o
            && users.contains(&g.group)
        {
            return Err(CampaignError::ReviewerClash(g.group.clone()));
        }
    }
    let certifications = files
        .into_iter()
        .map(|(reviewer, lines)| Certification {
            kind: crate::model::CertificationKind::Tag,
            name: certification_name(&input.name, stem(&reviewer)),
            campaign: input.name.clone(),
            reviewer,
            lines,
        })
        .collect();
    let campaign = Campaign {
        kind: crate::model::CampaignKind::Tag,
        name: input.name.clone(),
        description: input.description.clone(),
        scope: input.scope.clone(),
        opened: Instant(chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)),
        commit: input.commit.clone(),
        due: input.due,
        unreviewed: input.unreviewed,
        closed: None,
    };
    Ok(Opened { campaign, certifications, unassigned })
}

/// `CAMPAIGN.REVIEWER`, a valid name whenever both are.
fn certification_name(campaign: &Name, reviewer: &Name) -> Name {
    Name::new(format!("{campaign}.{reviewer}")).unwrap_or_else(|_| campaign.clone())
}

/// The file a certification is written to, relative to the configuration folder.
pub fn certification_path(c: &Certification) -> PathBuf {
    folder(&c.campaign).join(format!("{}.yaml", stem(&c.reviewer)))
}

/// The text of `reviews/NAME/campaign.yaml`.
pub fn render_campaign(c: &Campaign) -> String {
    let mut s = format!(
        "# Certification campaign {}, opened with `keyward certify open`.\n\
         # Reviewers fill in the files beside this one; `keyward certify status {}` shows progress and\n\
         # `keyward certify close {}` turns revocations into configuration changes and writes the evidence.\n",
        c.name, c.name, c.name
    );
    s.push_str(&serde_yaml::to_string(c).expect("campaigns serialize"));
    s
}

/// The text of a reviewer's file: the certification with an empty `decision` and `reason` on
/// every line, for the reviewer to fill in.
pub fn render_certification(c: &Certification, campaign: &Campaign) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Line<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a Name>,
        #[serde(skip_serializing_if = "Option::is_none")]
        service_account: Option<&'a Name>,
        role: &'a Name,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        flags: &'a [Flag],
        evidence: &'a Evidence,
        decision: Option<Decision>,
        reason: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct File<'a> {
        kind: &'static str,
        name: &'a Name,
        campaign: &'a Name,
        reviewer: &'a Owner,
        lines: Vec<Line<'a>>,
    }
    let file = File {
        kind: "Certification",
        name: &c.name,
        campaign: &c.campaign,
        reviewer: &c.reviewer,
        lines: c
            .lines
            .iter()
            .map(|l| Line {
                user: l.user.as_ref(),
                service_account: l.service_account.as_ref(),
                role: &l.role,
                flags: &l.flags,
                evidence: &l.evidence,
                decision: l.decision,
                reason: l.reason.as_deref(),
            })
            .collect(),
    };
    let who = match &c.reviewer {
        Owner::User(u) => format!("{u}"),
        Owner::Group(g) => format!("any member of the group of reviewers {}", g.group),
    };
    let mut s = format!(
        "# Campaign {}: access for {who} to certify by {}.\n\
         # On each line set `decision` to keep or revoke (revoke needs a `reason`), commit, and open a\n\
         # pull request. The evidence is what keyward knew when the campaign opened; leave it as it is.\n",
        campaign.name, campaign.due
    );
    let yaml = serde_yaml::to_string(&file).expect("certifications serialize");
    // An empty value reads as "not decided"; `null` would read the same but invites a typo.
    for line in yaml.lines() {
        match line {
            "  decision: null" => s.push_str("  decision:         # keep or revoke\n"),
            "  reason: null" => s.push_str("  reason:\n"),
            _ => {
                s.push_str(line);
                s.push('\n');
            }
        }
    }
    s
}

/// Progress of one reviewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewerStatus {
    pub reviewer: String,
    pub file: PathBuf,
    pub lines: usize,
    pub kept: usize,
    pub revoked: usize,
    pub pending: usize,
}

/// A campaign's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub campaign: Name,
    pub scope: String,
    pub due: Date,
    pub overdue: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<Instant>,
    pub reviewers: Vec<ReviewerStatus>,
    /// Assignments (a line in several files counts once): decided (kept or revoked) and not.
    pub assignments: usize,
    pub decided: usize,
    pub pending: usize,
}

/// The certifications of campaign `name`, by their reviewers' file names.
fn parts<'a>(state: &'a DesiredState, name: &Name) -> Vec<&'a Certification> {
    state.certifications.values().filter(|c| &c.campaign == name).collect()
}

/// How far campaign `name` has got.
pub fn status(state: &DesiredState, name: &Name, now: Timestamp) -> Result<Status, CampaignError> {
    let campaign = state.campaigns.get(name).ok_or_else(|| CampaignError::Missing(name.clone()))?;
    let mut reviewers = Vec::new();
    let mut decided: BTreeMap<(Name, Name), bool> = BTreeMap::new();
    for c in parts(state, name) {
        let mut r = ReviewerStatus {
            reviewer: c.reviewer.to_string(),
            file: certification_path(c),
            lines: c.lines.len(),
            kept: 0,
            revoked: 0,
            pending: 0,
        };
        for l in &c.lines {
            match l.decision {
                Some(Decision::Keep) => r.kept += 1,
                Some(Decision::Revoke) => r.revoked += 1,
                None => r.pending += 1,
            }
            if let Some(h) = l.holder() {
                *decided.entry((h.clone(), l.role.clone())).or_default() |= l.decision.is_some();
            }
        }
        reviewers.push(r);
    }
    let done = decided.values().filter(|d| **d).count();
    Ok(Status {
        campaign: name.clone(),
        scope: campaign.scope.to_string(),
        due: campaign.due,
        overdue: campaign.closed.is_none() && campaign.due.has_passed(now),
        closed: campaign.closed,
        reviewers,
        assignments: decided.len(),
        decided: done,
        pending: decided.len() - done,
    })
}

mod close;
pub use self::close::*;
