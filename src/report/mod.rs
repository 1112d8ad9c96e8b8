//! `keyward report`: one self-contained HTML page for auditors, and the data it shows.
//!
//! Guarantees:
//! - [`build`] is a pure function of its [`ReportInput`]: the desired state with the documents
//!   it came from, git history facts, the audit records and the chain's verification, the live
//!   state and the changes a plan would make (when the targets were read), the policy findings,
//!   and an injected clock. Nothing here reads, writes or prints;
//! - the [`Report`] is plain data (its JSON is what the snapshot tests pin); [`html::render`]
//!   turns it into one page with its styles, script and SVG charts inline, that makes no
//!   network request when opened (a Content-Security-Policy forbids any) and escapes every
//!   value;
//! - nothing secret is in a report: names, roles, duties, dates, addresses, commit metadata,
//!   audit records (which hold no secrets) and policy findings (which describe secrets
//!   without their values).

pub mod html;
mod model;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use model::*;

use crate::audit::{Outcome, Record, VerifyReport};
use crate::explain::{LiveState, SourceRef};
use crate::history::{FactKey, History};
use crate::load::{Loaded, PathSeg};
use crate::model::{
    Binding, CredentialType, Date, DesiredState, Expiry, Kind, LiveTarget, Name, RoleGrant, Severity, Timestamp,
    UndeliveredCredential, UserStatus,
};
use crate::plan::{Change, ReasonKind};
use crate::policy::Finding;
use crate::validate::Origins;

/// Assignments, credentials and exceptions ending within this many days are "expiring".
pub const EXPIRING_WITHIN_DAYS: i64 = 30;

/// The period shown when no `--since` is given, in days before now.
pub const DEFAULT_PERIOD_DAYS: i64 = 90;

/// Everything a report is made from.
pub struct ReportInput<'a> {
    /// The configuration folder's name, for the title.
    pub title: &'a str,
    pub desired: &'a DesiredState,
    pub loaded: &'a Loaded,
    pub origins: &'a Origins,
    /// HEAD's commit, `-dirty` when the folder has uncommitted changes.
    pub commit: Option<&'a str>,
    pub history: &'a History,
    /// The repository's `origin` URL, to link commits.
    pub remote: Option<&'a str>,
    /// Every record of the audit log, oldest first.
    pub records: &'a [Record],
    pub verify: &'a VerifyReport,
    /// The audit log's path, relative to the configuration folder.
    pub audit_path: &'a str,
    /// The live state, when the targets were read; otherwise why not.
    pub live: Result<&'a BTreeMap<Name, LiveTarget>, &'a str>,
    /// The changes a plan makes now, with drift told apart (the configuration at the last
    /// applied commit as the baseline); only when the targets were read.
    pub changes: &'a [Change],
    pub findings: &'a [Finding],
    pub undelivered: &'a [UndeliveredCredential],
    /// The start of the period; [`DEFAULT_PERIOD_DAYS`] before now when absent.
    pub since: Option<Date>,
    pub now: Timestamp,
    /// The evidence of closed certification campaigns, with each file's path.
    pub certifications: &'a [(String, crate::governance::campaign::EvidenceFile)],
}

/// The rows of closed certification campaigns.
fn certifications(list: &[(String, crate::governance::campaign::EvidenceFile)]) -> Vec<CertificationRow> {
    use crate::governance::campaign::Outcome as O;
    list.iter()
        .map(|(file, e)| {
            let mut decisions = Vec::new();
            for a in &e.assignments {
                let outcome = match a.outcome {
                    O::Kept => "kept",
                    O::Revoked => "revoked",
                    O::RevokedUnreviewed => "revoked-unreviewed",
                    O::Unreviewed => "unreviewed",
                    O::Gone => "gone",
                };
                for d in &a.decisions {
                    decisions.push(CertificationDecision {
                        holder: a.holder.name().to_string(),
                        role: a.role.to_string(),
                        reviewer: d.reviewer.clone(),
                        decision: match d.decision {
                            crate::model::Decision::Keep => "keep".into(),
                            crate::model::Decision::Revoke => "revoke".into(),
                        },
                        reason: d.reason.clone(),
                        commit: d.recorded.as_ref().map(|p| p.commit.clone()),
                        time: d.recorded.as_ref().map(|p| p.time.0),
                        author: d.recorded.as_ref().map(|p| p.author.clone()),
                        self_certified: d.self_certified,
                        outcome: outcome.into(),
                    });
                }
                if a.decisions.is_empty() {
                    decisions.push(CertificationDecision {
                        holder: a.holder.name().to_string(),
                        role: a.role.to_string(),
                        reviewer: a.reviewers.join(", "),
                        decision: "none".into(),
                        reason: None,
                        commit: None,
                        time: None,
                        author: None,
                        self_certified: false,
                        outcome: outcome.into(),
                    });
                }
            }
            CertificationRow {
                campaign: e.campaign.name.to_string(),
                scope: e.campaign.scope.to_string(),
                opened: e.campaign.opened.0,
                due: e.campaign.due,
                closed: e.campaign.closed.map(|c| c.0),
                closed_at_commit: e.closed_at_commit.clone(),
                file: file.clone(),
                assignments: e.summary.assignments,
                kept: e.summary.kept,
                revoked: e.summary.revoked + e.summary.revoked_unreviewed,
                unreviewed: e.summary.unreviewed,
                decisions,
            }
        })
        .collect()
}

fn source_of(loaded: &Loaded, origins: &Origins, kind: Kind, name: &Name, path: &[PathSeg]) -> Option<SourceRef> {
    origins
        .locate(loaded, kind, name, path)
        .map(|l| SourceRef { file: l.file.to_string_lossy().replace('\\', "/"), line: l.line })
}

fn date_of(t: Timestamp) -> Date {
    Date(t.date_naive())
}

/// Expired, or ending within [`EXPIRING_WITHIN_DAYS`].
fn expiring(expires: Option<Expiry>, now: Timestamp) -> bool {
    expires.is_some_and(|e| (e.end() - now).num_days() < EXPIRING_WITHIN_DAYS)
}

/// A holder of roles in git.
struct Holder<'d> {
    kind: Kind,
    name: &'d Name,
    /// userName for users, name for service accounts: how the live side knows them.
    key: String,
    display_name: Option<&'d String>,
    department: Option<&'d String>,
    roles: &'d [RoleGrant],
    active: bool,
}

fn holders(desired: &DesiredState) -> Vec<Holder<'_>> {
    let users = desired.users.values().map(|u| Holder {
        kind: Kind::User,
        name: &u.name,
        key: u.user_name.clone(),
        display_name: u.display_name.as_ref(),
        department: u.department.as_ref(),
        roles: &u.roles,
        active: u.status == UserStatus::Active,
    });
    let sas = desired.service_accounts.values().map(|s| Holder {
        kind: Kind::ServiceAccount,
        name: &s.name,
        key: s.name.to_string(),
        display_name: s.display_name.as_ref(),
        department: None,
        roles: &s.roles,
        active: true,
    });
    users.chain(sas).collect()
}

fn kind_word(kind: Kind) -> &'static str {
    if kind == Kind::User { "user" } else { "service-account" }
}

/// The members of the live object `binding` stands for on `lt`, by lower-cased live key
/// (userName or service-account name).
fn live_members(lt: &LiveTarget, binding: &Binding) -> BTreeSet<String> {
    let want = binding.object_name().to_lowercase();
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    for b in &lt.bindings {
        if b.binding.kind() == binding.kind() && b.binding.object_name().to_lowercase() == want {
            ids.extend(b.members.iter().map(String::as_str));
        }
    }
    let accounts = lt.accounts.iter().map(|a| (a.id.as_str(), a.user_name.to_lowercase()));
    let sas = lt.service_accounts.iter().map(|s| (s.id.as_str(), s.name.to_lowercase()));
    accounts.chain(sas).filter(|(id, _)| ids.contains(id)).map(|(_, k)| k).collect()
}

/// The applied records of each address, oldest first.
fn applied_by_address(records: &[Record]) -> std::collections::HashMap<&str, Vec<&Record>> {
    let mut out: std::collections::HashMap<&str, Vec<&Record>> = std::collections::HashMap::new();
    for r in records.iter().filter(|r| r.entry.outcome == Outcome::Applied) {
        out.entry(r.entry.address.as_str()).or_default().push(r);
    }
    out
}

/// The audit record from which on an address has been assigned, given its applied records: the
/// first applied `assign` after the last applied `revoke`.
fn assigned_since<'r>(mine: &[&'r Record]) -> Option<&'r Record> {
    let after = mine.iter().rposition(|r| r.entry.action == "revoke").map_or(0, |i| i + 1);
    mine[after..].iter().find(|r| r.entry.action == "assign").copied()
}

fn finding_row(f: &Finding) -> FindingRow {
    FindingRow {
        rule: f.rule.clone(),
        severity: f.severity,
        address: f.address.clone(),
        message: f.message.clone(),
        source: f
            .location
            .as_ref()
            .map(|l| SourceRef { file: l.file.to_string_lossy().replace('\\', "/"), line: l.line }),
    }
}

/// A link to commit `id` for a GitHub or GitLab remote.
fn commit_link(remote: Option<&str>, id: &str) -> Option<String> {
    let id = id.trim_end_matches("-dirty");
    if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // The pull request link has the repository's web address before `/pull/` or `/-/`.
    let pr = crate::history::pull_request_link(remote?, 1)?;
    let base = pr.strip_suffix("/pull/1").or_else(|| pr.strip_suffix("/-/merge_requests/1"))?;
    Some(if pr.ends_with("/pull/1") { format!("{base}/commit/{id}") } else { format!("{base}/-/commit/{id}") })
}

fn change_row(r: &Record, remote: Option<&str>) -> ChangeRow {
    let e = &r.entry;
    ChangeRow {
        seq: r.seq,
        time: e.time,
        address: e.address.clone(),
        action: e.action.clone(),
        outcome: e.outcome.label().to_string(),
        actor: e.actor.clone(),
        reason: e.reason.clone(),
        commit: e.commit.clone(),
        commit_url: e.commit.as_deref().and_then(|c| commit_link(remote, c)),
        provenance: e.provenance.clone(),
        error: e.error.clone(),
    }
}

/// The Monday of the week of `d`.
fn monday(d: chrono::NaiveDate) -> chrono::NaiveDate {
    use chrono::Datelike;
    d - chrono::Days::new(u64::from(d.weekday().num_days_from_monday()))
}

/// Builds the report.
pub fn build(input: &ReportInput) -> Report {
    let ReportInput { desired, loaded, origins, history, records, now, .. } = *input;
    let live = input.live.ok();
    let today = date_of(now);
    let since = input.since.unwrap_or_else(|| date_of(now - chrono::Duration::days(DEFAULT_PERIOD_DAYS)));
    let period_start = since.0.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    let holders = holders(desired);
    let mut commits = BTreeMap::new();
    let mut keep_commit = |id: &str| {
        if let Some(c) = history.commits.get(id) {
            commits.insert(id.to_string(), c.clone());
        }
        Some(id.to_string())
    };

    // Roles.
    let mut holder_count: BTreeMap<&Name, usize> = BTreeMap::new();
    for h in &holders {
        for g in h.roles {
            *holder_count.entry(g.role()).or_default() += 1;
        }
    }
    let roles: Vec<RoleRow> = desired
        .roles
        .values()
        .map(|r| RoleRow {
            name: r.name.to_string(),
            description: r.description.clone(),
            privileged: r.privileged,
            duties: r.duties.clone(),
            bindings: r.bindings.iter().map(|(t, b)| (t.to_string(), b.label())).collect(),
            holders: holder_count.get(&r.name).copied().unwrap_or(0),
        })
        .collect();

    // Assignments and matrices, per target.
    let applied = applied_by_address(records);
    let mut assignments = Vec::new();
    let mut matrices = Vec::new();
    for t in desired.settings.targets.keys() {
        let lt = live.and_then(|l| l.get(t));
        let bound: Vec<(&Name, &Binding, bool)> =
            desired.roles.values().filter_map(|r| r.bindings.get(t).map(|b| (&r.name, b, r.privileged))).collect();
        if bound.is_empty() {
            continue;
        }
        let members: Vec<BTreeSet<String>> =
            bound.iter().map(|(_, b, _)| lt.map(|lt| live_members(lt, b)).unwrap_or_default()).collect();
        let mut rows = Vec::new();
        let mut known: BTreeSet<String> = BTreeSet::new();
        for h in &holders {
            let key = h.key.to_lowercase();
            known.insert(key.clone());
            let mut cells = Vec::with_capacity(bound.len());
            for (i, (role_name, binding, privileged)) in bound.iter().enumerate() {
                let grant = h.roles.iter().enumerate().find(|(_, g)| g.role() == *role_name);
                let live_state = match lt {
                    Some(_) if members[i].contains(&key) => LiveState::Held,
                    Some(_) => LiveState::Missing,
                    None => LiveState::Unknown,
                };
                let cell = match grant {
                    Some((gi, g)) => {
                        let address = format!("{t}.assignment.{}/{role_name}", h.name);
                        let fact =
                            FactKey::Grant { kind: h.kind, holder: h.name.to_string(), role: role_name.to_string() };
                        let (reason, ticket) = match g {
                            RoleGrant::Detailed(d) => (d.reason.clone(), d.ticket.clone()),
                            RoleGrant::Name(_) => (None, None),
                        };
                        let role = &desired.roles[*role_name];
                        assignments.push(AssignmentRow {
                            holder: h.name.to_string(),
                            kind: kind_word(h.kind),
                            display_name: h.display_name.cloned(),
                            role: role_name.to_string(),
                            privileged: *privileged,
                            duties: role.duties.clone(),
                            target: t.to_string(),
                            binding: binding.label(),
                            live: live_state,
                            expires: g.expires(),
                            expiring: expiring(g.expires(), now),
                            reason,
                            ticket,
                            source: source_of(loaded, origins, h.kind, h.name, &["roles".into(), gi.into()]),
                            added: history.facts.get(&fact).and_then(|f| keep_commit(&f.added)),
                            applied: applied.get(address.as_str()).and_then(|m| assigned_since(m)).map(|r| {
                                AppliedRef {
                                    seq: r.seq,
                                    time: r.entry.time,
                                    actor: r.entry.actor.clone(),
                                    provenance: r.entry.provenance.clone(),
                                }
                            }),
                        });
                        Some(Cell {
                            granted: true,
                            live: live_state,
                            expires: g.expires(),
                            expiring: expiring(g.expires(), now),
                        })
                    }
                    None if live_state == LiveState::Held => {
                        Some(Cell { granted: false, live: LiveState::Held, expires: None, expiring: false })
                    }
                    None => None,
                };
                cells.push(cell);
            }
            if cells.iter().any(Option::is_some) {
                rows.push(MatrixRow {
                    holder: h.name.to_string(),
                    kind: kind_word(h.kind),
                    display_name: h.display_name.cloned(),
                    department: h.department.cloned(),
                    cells,
                });
            }
        }
        // Live accounts git does not know that hold a bound object.
        if let Some(lt) = lt {
            for a in &lt.accounts {
                let key = a.user_name.to_lowercase();
                if known.contains(&key) {
                    continue;
                }
                let cells: Vec<Option<Cell>> = members
                    .iter()
                    .map(|m| {
                        m.contains(&key).then_some(Cell {
                            granted: false,
                            live: LiveState::Held,
                            expires: None,
                            expiring: false,
                        })
                    })
                    .collect();
                if cells.iter().any(Option::is_some) {
                    rows.push(MatrixRow {
                        holder: a.user_name.clone(),
                        kind: "live-account",
                        display_name: a.attrs.display_name.clone(),
                        department: a.attrs.department.clone(),
                        cells,
                    });
                }
            }
        }
        matrices.push(Matrix {
            target: t.to_string(),
            roles: bound.iter().map(|(n, _, p)| MatrixRole { name: n.to_string(), privileged: *p }).collect(),
            rows,
        });
    }

    // Segregation of duties.
    let side = |s: &crate::model::SodSide| -> Vec<String> {
        s.roles.iter().map(|r| format!("role {r}")).chain(s.duties.iter().map(|d| format!("duty {d}"))).collect()
    };
    let mut exceptions = Vec::new();
    for rule in desired.sod_rules.values() {
        for (i, e) in rule.exceptions.iter().enumerate() {
            let fact = FactKey::Exception { rule: rule.name.to_string(), user: e.user.to_string() };
            let added = history.facts.get(&fact).map(|f| f.added.clone());
            let owner = added.as_ref().and_then(|id| history.commits.get(id)).map(|c| {
                c.approved_by.first().cloned().or_else(|| c.merged_by.clone()).unwrap_or_else(|| c.author.clone())
            });
            exceptions.push(ExceptionRow {
                rule: rule.name.to_string(),
                user: e.user.to_string(),
                reason: e.reason.clone(),
                expires: e.expires,
                status: if e.expires.has_passed(now) {
                    "expired"
                } else if expiring(Some(e.expires.into()), now) {
                    "expiring"
                } else {
                    "active"
                },
                owner,
                added: added.and_then(|id| keep_commit(&id)),
                source: source_of(loaded, origins, Kind::SodRule, &rule.name, &["exceptions".into(), i.into()]),
            });
        }
    }
    let sod = SodSection {
        rules: desired
            .sod_rules
            .values()
            .map(|r| SodRuleRow {
                name: r.name.to_string(),
                severity: r.severity,
                first: side(&r.first),
                second: side(&r.second),
                description: r.description.clone(),
                mitigation: r.mitigation.clone(),
            })
            .collect(),
        conflicts: input.findings.iter().filter(|f| f.rule.starts_with("sod.")).map(finding_row).collect(),
        exceptions,
    };

    // Charts.
    let in_period: Vec<&Record> = records.iter().filter(|r| r.entry.time >= period_start).collect();
    // Up to today, or to the last record when the clock was set back (KEYWARD_NOW).
    let last_day = in_period.iter().map(|r| r.entry.time.date_naive()).max().unwrap_or(today.0).max(today.0);
    let mut weeks: BTreeMap<chrono::NaiveDate, WeekBar> = BTreeMap::new();
    let mut w = monday(since.0);
    while w <= last_day {
        weeks.insert(w, WeekBar { week: Date(w), counts: BTreeMap::new(), failed: 0 });
        w = w + chrono::Days::new(7);
    }
    for r in &in_period {
        let Some(bar) = weeks.get_mut(&monday(r.entry.time.date_naive())) else { continue };
        match r.entry.outcome {
            Outcome::Applied => *bar.counts.entry(r.entry.action.clone()).or_default() += 1,
            Outcome::Failed => bar.failed += 1,
            Outcome::Skipped | Outcome::Attempting => {}
        }
    }
    let mut credentials = Vec::new();
    for (t, lt) in live.into_iter().flatten() {
        for sa in &lt.service_accounts {
            let declared = desired.service_accounts.get(sa.name.as_str());
            for c in &sa.credentials {
                let spec = declared.and_then(|d| d.credentials.iter().find(|s| c.instance_of(s.name.as_str())));
                let rotate_from = spec.and_then(|s| s.rotate_before).map(|r| date_of(c.end - r.to_chrono()));
                let newer = sa
                    .credentials
                    .iter()
                    .any(|o| spec.is_some_and(|s| o.instance_of(s.name.as_str())) && o.start > c.start && o.id != c.id);
                let left = c.end - now;
                let status = if input.undelivered.iter().any(|u| u.matches(t.as_str(), &sa.name, c)) {
                    "undelivered"
                } else if left <= chrono::TimeDelta::zero() {
                    "expired"
                } else if newer {
                    "superseded"
                } else if rotate_from.is_some_and(|r| today >= r) {
                    "rotation-due"
                } else if left.num_days() < EXPIRING_WITHIN_DAYS {
                    "expiring"
                } else {
                    "valid"
                };
                credentials.push(CredentialSpan {
                    target: t.to_string(),
                    account: sa.name.clone(),
                    credential: c.name.clone(),
                    kind: match c.kind {
                        CredentialType::Secret => "secret",
                        CredentialType::Certificate => "certificate",
                    },
                    start: date_of(c.start),
                    end: date_of(c.end),
                    rotate_from,
                    status: status.to_string(),
                });
            }
        }
    }
    let mut expiries = Vec::new();
    {
        use chrono::Datelike;
        let (mut y, mut m) = (today.0.year(), today.0.month());
        for _ in 0..12 {
            let label = format!("{y:04}-{m:02}");
            let mut bar = MonthBar { month: label, count: 0, privileged: 0 };
            for h in &holders {
                for g in h.roles {
                    let Some(e) = g.expires() else { continue };
                    if e.last_day().0.year() == y && e.last_day().0.month() == m && !e.has_passed(now) {
                        bar.count += 1;
                        if desired.roles.get(g.role()).is_some_and(|r| r.privileged) {
                            bar.privileged += 1;
                        }
                    }
                }
            }
            expiries.push(bar);
            (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        }
    }

    // Changes, drift and pending changes.
    let changes: Vec<ChangeRow> = in_period.iter().map(|r| change_row(r, input.remote)).collect();
    let drift_row = |c: &Change| DriftRow {
        address: c.address.to_string(),
        action: c.action.to_string(),
        reason: c.reason.message(),
        notes: c.notes.iter().map(ToString::to_string).collect(),
    };
    let open: Option<Vec<DriftRow>> =
        live.map(|_| input.changes.iter().filter(|c| c.reason.kind == ReasonKind::Drift).map(drift_row).collect());
    let pending: Option<Vec<DriftRow>> =
        live.map(|_| input.changes.iter().filter(|c| c.reason.kind != ReasonKind::Drift).map(drift_row).collect());
    let resolved: Vec<ChangeRow> = in_period
        .iter()
        .filter(|r| r.entry.reason.as_deref() == Some("drift") && r.entry.outcome == Outcome::Applied)
        .map(|r| change_row(r, input.remote))
        .collect();

    // Stale accounts and missing authentication: the access review's own items.
    let no_live = BTreeMap::new();
    let review = crate::review::review(&crate::review::ReviewInput {
        desired,
        live: live.unwrap_or(&no_live),
        findings: input.findings,
        records: &[],
        now,
        within: crate::model::Duration::from_days(EXPIRING_WITHIN_DAYS),
        undelivered: input.undelivered,
    });
    let stale: Vec<_> = review.section(crate::review::Section::StaleAccounts).cloned().collect();
    let authentication: Vec<_> = review.section(crate::review::Section::Authentication).cloned().collect();

    // Summary.
    let privileged_holders = holders
        .iter()
        .filter(|h| {
            h.active
                && h.roles.iter().any(|g| {
                    desired.roles.get(g.role()).is_some_and(|r| r.privileged)
                        && !g.expires().is_some_and(|e| e.has_passed(now))
                })
        })
        .count();
    let summary = Summary {
        people: desired.users.values().filter(|u| u.status == UserStatus::Active).count(),
        service_accounts: desired.service_accounts.len(),
        privileged_holders,
        pending_changes: pending.as_ref().map(Vec::len),
        drift_items: open.as_ref().map(Vec::len),
        deny_findings: input.findings.iter().filter(|f| f.severity == Severity::Deny).count(),
        warn_findings: input.findings.iter().filter(|f| f.severity == Severity::Warn).count(),
        credentials_expiring: live.map(|_| {
            credentials.iter().filter(|c| matches!(c.status.as_str(), "expiring" | "rotation-due" | "expired")).count()
        }),
        assignments_expiring: holders
            .iter()
            .flat_map(|h| h.roles)
            .filter(|g| g.expires().is_some_and(|e| !e.has_passed(now) && expiring(Some(e), now)))
            .count(),
        expiring_within_days: EXPIRING_WITHIN_DAYS,
    };

    // The audit chain.
    let v = input.verify;
    let head = v.is_intact().then(|| records.last()).flatten();
    let audit = AuditStatus {
        path: input.audit_path.to_string(),
        records: v.records,
        intact: v.is_intact(),
        problems: v.problems.iter().map(|p| (p.line, p.message.clone())).collect(),
        torn_tail: v.torn_tail,
        head_seq: head.map(|r| r.seq),
        head_hash: head.map(|r| r.hash.clone()),
    };

    // A pull request that git cannot link (no GitHub or GitLab remote) takes the link CI
    // recorded for it in the audit log.
    let mut links: BTreeMap<u64, &str> = BTreeMap::new();
    for p in records.iter().filter_map(|r| r.entry.provenance.as_ref()) {
        if let (Some(n), Some(url)) = (p.pull_request, p.pull_request_url.as_deref()) {
            links.insert(n, url);
        }
    }
    for c in commits.values_mut().filter(|c| c.pull_request_url.is_none()) {
        c.pull_request_url = c.pull_request.and_then(|n| links.get(&n)).map(|u| u.to_string());
    }

    let mut notes = Vec::new();
    if history.head.is_none() {
        notes.push("The configuration is not in a git repository with commits: no change history.".to_string());
    }
    if history.truncated {
        notes.push("The git history is longer than keyward reads: the oldest dates are upper bounds.".to_string());
    }
    if input.commit.is_some_and(|c| c.ends_with("-dirty")) {
        notes.push("The configuration has uncommitted changes: this report shows them as they are.".to_string());
    }
    if let Err(why) = input.live {
        notes.push(format!("The live targets were not read ({why}): live state, drift and credentials are unknown."));
    }

    Report {
        generated: now,
        title: input.title.to_string(),
        commit: input.commit.map(str::to_string),
        period: Period { since, until: today },
        live: LiveStatus {
            read: live.is_some(),
            targets: live.map(|l| l.keys().map(Name::to_string).collect()).unwrap_or_default(),
            error: input.live.err().map(str::to_string),
        },
        summary,
        roles,
        matrices,
        assignments,
        sod,
        charts: Charts { weeks: weeks.into_values().collect(), credentials, expiries },
        changes,
        drift: DriftSection { open, resolved, pending },
        stale,
        authentication,
        findings: input.findings.iter().filter(|f| f.severity != Severity::Info).map(finding_row).collect(),
        audit,
        certifications: certifications(input.certifications),
        commits,
        notes,
    }
}
