//! The report's data: everything the page shows, as plain serialisable values.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::Provenance;
use crate::explain::{LiveState, SourceRef};
use crate::history::CommitInfo;
use crate::model::{Date, Expiry, Severity, Timestamp};
use crate::review::Item;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub generated: Timestamp,
    /// What the report is about: the configuration folder's name.
    pub title: String,
    /// HEAD's commit (`-dirty` when the folder has uncommitted changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub period: Period,
    pub live: LiveStatus,
    pub summary: Summary,
    pub roles: Vec<RoleRow>,
    pub matrices: Vec<Matrix>,
    pub assignments: Vec<AssignmentRow>,
    pub sod: SodSection,
    pub charts: Charts,
    pub changes: Vec<ChangeRow>,
    pub drift: DriftSection,
    pub stale: Vec<Item>,
    pub authentication: Vec<Item>,
    pub findings: Vec<FindingRow>,
    pub audit: AuditStatus,
    /// Closed certification campaigns, from their evidence files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certifications: Vec<CertificationRow>,
    /// Commits the report refers to, by id (assignments and exceptions name them).
    pub commits: BTreeMap<String, CommitInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The period of "changes in the period" and the weekly chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    pub since: Date,
    pub until: Date,
}

/// Whether the live state is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveStatus {
    pub read: bool,
    pub targets: Vec<String>,
    /// Why the targets were not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The summary cards. A count is absent when it needs the live state and that was not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub people: usize,
    pub service_accounts: usize,
    pub privileged_holders: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_changes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_items: Option<usize>,
    pub deny_findings: usize,
    pub warn_findings: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_expiring: Option<usize>,
    pub assignments_expiring: usize,
    /// The window of "expiring", in days.
    pub expiring_within_days: i64,
}

/// A role and what it grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRow {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub privileged: bool,
    pub duties: Vec<String>,
    /// Target name → what the role is there.
    pub bindings: BTreeMap<String, String>,
    pub holders: usize,
}

/// The access matrix of one target: holders by roles bound there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    pub target: String,
    /// The roles bound on the target, in order of the columns.
    pub roles: Vec<MatrixRole>,
    pub rows: Vec<MatrixRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixRole {
    pub name: String,
    pub privileged: bool,
}

/// One holder's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixRow {
    pub holder: String,
    /// `user` or `service-account`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// One cell per role column; `None` where the holder has nothing of that role.
    pub cells: Vec<Option<Cell>>,
}

/// One role held (or held live only) by one holder on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// Git gives it.
    pub granted: bool,
    pub live: LiveState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expiry>,
    /// Expires within the summary's window (or has expired).
    pub expiring: bool,
}

/// One role given to one holder, on one target, with its whole provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentRow {
    pub holder: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub role: String,
    pub privileged: bool,
    pub duties: Vec<String>,
    pub target: String,
    pub binding: String,
    pub live: LiveState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expiry>,
    pub expiring: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
    /// The commit that added the grant (by id, in [`Report::commits`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<String>,
    /// When keyward first assigned it on the target (the earliest applied record since the
    /// grant was added), from the audit log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<AppliedRef>,
}

/// An audit record an assignment points at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedRef {
    pub seq: u64,
    pub time: Timestamp,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SodSection {
    pub rules: Vec<SodRuleRow>,
    /// SoD findings: conflicts in git, live, and those the targets report.
    pub conflicts: Vec<FindingRow>,
    pub exceptions: Vec<ExceptionRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SodRuleRow {
    pub name: String,
    pub severity: Severity,
    /// The roles and duties of each side, as written.
    pub first: Vec<String>,
    pub second: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionRow {
    pub rule: String,
    pub user: String,
    pub reason: String,
    pub expires: Date,
    /// `active`, `expiring` or `expired`.
    pub status: &'static str,
    /// Who answers for the exception: the author of the commit that added it, and who
    /// approved that commit (see `added`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
}

/// A policy finding, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingRow {
    pub rule: String,
    pub severity: Severity,
    pub address: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
}

/// The data of the SVG charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Charts {
    /// Changes applied per week of the period, by action.
    pub weeks: Vec<WeekBar>,
    /// Live credentials: when each started, ends, and enters its rotation window.
    pub credentials: Vec<CredentialSpan>,
    /// Role assignments ending in each of the next twelve months.
    pub expiries: Vec<MonthBar>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeekBar {
    /// The Monday the week starts.
    pub week: Date,
    pub counts: BTreeMap<String, usize>,
    /// Operations that failed that week.
    pub failed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSpan {
    pub target: String,
    pub account: String,
    pub credential: String,
    /// `secret` or `certificate`.
    pub kind: &'static str,
    pub start: Date,
    pub end: Date,
    /// The first day of the rotation window (`end - rotateBefore`), when the configuration
    /// declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate_from: Option<Date>,
    /// `valid`, `rotation-due`, `expiring`, `expired`, `superseded` or `undelivered`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthBar {
    /// `YYYY-MM`.
    pub month: String,
    pub count: usize,
    pub privileged: usize,
}

/// One audited operation of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRow {
    pub seq: u64,
    pub time: Timestamp,
    pub address: String,
    pub action: String,
    /// `applied`, `failed` or `skipped`.
    pub outcome: String,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// A link to the commit, when the repository's remote is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftSection {
    /// Live differences from git now (open incidents); absent when the targets were not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<Vec<DriftRow>>,
    /// Changes that undid drift in the period (from the audit log): how incidents were resolved.
    pub resolved: Vec<ChangeRow>,
    /// Changes the configuration asks for that are not applied yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Vec<DriftRow>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftRow {
    pub address: String,
    pub action: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The audit log's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditStatus {
    /// The log's path, relative to the configuration folder.
    pub path: String,
    pub records: usize,
    pub intact: bool,
    /// `(line, problem)` for each problem found.
    pub problems: Vec<(usize, String)>,
    pub torn_tail: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_hash: Option<String>,
}

/// A closed certification campaign (`reviews/NAME/evidence.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificationRow {
    pub campaign: String,
    pub scope: String,
    pub opened: Timestamp,
    pub due: Date,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<Timestamp>,
    /// The commit the campaign was closed at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at_commit: Option<String>,
    /// The evidence file, relative to the configuration folder.
    pub file: String,
    pub assignments: usize,
    pub kept: usize,
    pub revoked: usize,
    pub unreviewed: usize,
    /// Every decision: who certified what, when, in which commit.
    pub decisions: Vec<CertificationDecision>,
}

/// One reviewer's decision on one assignment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificationDecision {
    pub holder: String,
    pub role: String,
    pub reviewer: String,
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The commit's author holds the access: the decision did not count.
    pub self_certified: bool,
    /// What closing did with the assignment.
    pub outcome: String,
}
