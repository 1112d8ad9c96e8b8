//! The access review (`keyward audit review`): what a security team checks every month, as one
//! flat list of items that every renderer (text, Markdown, JSON, CSV) can show.
//!
//! Guarantees: a pure function of the desired state, the live state, the policy findings over
//! both, the audit records and an injected clock; nothing here reads, writes or prints. Stale
//! accounts and missing authentication come from the policy findings (`auth.*`), so the review
//! and `keyward plan` never disagree about them.

mod licences;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::Record;
use crate::model::lifecycle::{self, CredentialStatus};
use crate::model::{CredentialType, DesiredState, Duration, LiveCredential, LiveTarget, Name, RoleGrant, Timestamp};
use crate::policy::Finding;

/// The parts of the review, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    StaleAccounts,
    ExpiringAssignments,
    Credentials,
    Authentication,
    PrivilegedMembers,
    SodConflicts,
    SodExceptions,
    Licences,
    AuditActivity,
}

impl Section {
    pub const ALL: [Section; 9] = [
        Section::StaleAccounts,
        Section::ExpiringAssignments,
        Section::Credentials,
        Section::Authentication,
        Section::PrivilegedMembers,
        Section::SodConflicts,
        Section::SodExceptions,
        Section::Licences,
        Section::AuditActivity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Section::StaleAccounts => "stale-accounts",
            Section::ExpiringAssignments => "expiring-assignments",
            Section::Credentials => "credentials",
            Section::Authentication => "authentication",
            Section::PrivilegedMembers => "privileged-members",
            Section::SodConflicts => "sod-conflicts",
            Section::SodExceptions => "sod-exceptions",
            Section::Licences => "licences",
            Section::AuditActivity => "audit-activity",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Section::StaleAccounts => "Stale accounts",
            Section::ExpiringAssignments => "Assignments expiring",
            Section::Credentials => "Credentials expiring or due for rotation",
            Section::Authentication => "Privileged access lacking required authentication",
            Section::PrivilegedMembers => "Privileged groups with members keyward does not manage",
            Section::SodConflicts => "Accounts holding what a segregation-of-duties rule keeps apart",
            Section::SodExceptions => "Segregation-of-duties exceptions expiring",
            Section::Licences => "Accounts holding roles that need a licence they lack",
            Section::AuditActivity => "Recent audit-log activity",
        }
    }
}

/// One line of the review.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub section: Section,
    /// What the line is about: a user, an assignment, a credential, a rule, an audit address.
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The date that matters: an expiry, an end, a last sign-in, an audit record's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Days from now to `date` (negative: in the past).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    /// A short word: expired, expiring, rotation-due, stale, deny/warn/info, or an audit outcome.
    pub status: String,
    pub detail: String,
}

/// The whole review.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub generated: Timestamp,
    pub within: Duration,
    pub items: Vec<Item>,
}

impl Review {
    pub fn section(&self, s: Section) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| i.section == s)
    }
}

/// Everything a review is made from.
pub struct ReviewInput<'a> {
    pub desired: &'a DesiredState,
    pub live: &'a BTreeMap<Name, LiveTarget>,
    pub findings: &'a [Finding],
    /// The audit records to show (attempts already paired with their outcomes by
    /// `audit::paired`, and narrowed to the last N or a date); an attempt left is shown as
    /// outcome unknown.
    pub records: &'a [Record],
    pub now: Timestamp,
    pub within: Duration,
    /// Credentials issued but never delivered (see [`crate::credential::state`]).
    pub undelivered: &'a [crate::model::UndeliveredCredential],
}

fn days_until(now: Timestamp, t: Timestamp) -> i64 {
    let d = t - now;
    // Round towards the future: something ending in 3.2 days is "in 3 days".
    d.num_days()
}

/// `end` is the first instant the thing no longer holds.
fn expiry_status(end: Timestamp, now: Timestamp, within: Duration) -> Option<&'static str> {
    if now >= end {
        Some("expired")
    } else if end - now <= within.to_chrono() {
        Some("expiring")
    } else {
        None
    }
}

pub fn review(input: &ReviewInput) -> Review {
    let ReviewInput { desired, live, findings, records, now, within, undelivered } = *input;
    let mut items = Vec::new();

    // Stale accounts and authentication: the policy's own findings.
    for f in findings {
        if f.rule == "auth.stale-account" {
            let (target, who) = split_address(&f.address);
            let last = target.as_ref().and_then(|t| live.get(t.as_str())).and_then(|lt| {
                let user_name = desired.users.get(who.as_str()).map(|u| u.user_name.as_str()).unwrap_or(who.as_str());
                lt.accounts.iter().find(|a| a.user_name.eq_ignore_ascii_case(user_name)).and_then(|a| a.last_sign_in)
            });
            items.push(Item {
                section: Section::StaleAccounts,
                subject: who,
                target,
                date: last.map(|t| t.format("%Y-%m-%d").to_string()),
                days: last.map(|t| days_until(now, t)),
                status: "stale".into(),
                detail: f.message.clone(),
            });
        } else if f.rule == crate::policy::Rule::HygieneUnmanagedPrivilegedMember.id() {
            let target = f.address.split_once('.').map(|(t, _)| t.to_string());
            items.push(Item {
                section: Section::PrivilegedMembers,
                subject: f.address.clone(),
                target,
                date: None,
                days: None,
                status: f.severity.to_string(),
                detail: f.message.clone(),
            });
        } else if f.rule == crate::policy::Rule::SodConflict.id() || f.rule == crate::policy::Rule::SodLiveConflict.id()
        {
            // What the holder's roles give, in git or in their live contents (privileges,
            // duties), that a rule keeps apart.
            let (target, _) = split_address(&f.address);
            items.push(Item {
                section: Section::SodConflicts,
                subject: f.address.clone(),
                target,
                date: None,
                days: None,
                status: f.severity.to_string(),
                detail: format!("{} [{}]", f.message, f.rule),
            });
        } else if f.rule.starts_with("auth.") {
            items.push(Item {
                section: Section::Authentication,
                subject: f.address.clone(),
                target: None,
                date: None,
                days: None,
                status: f.severity.to_string(),
                detail: format!("{} [{}]", f.message, f.rule),
            });
        }
    }

    // Assignments with an expiry inside the window (or already past it).
    let grants =
        desired.users.values().map(|u| (format!("user {}", u.name), &u.name, &u.roles)).chain(
            desired.service_accounts.values().map(|s| (format!("service account {}", s.name), &s.name, &s.roles)),
        );
    for (who, name, roles) in grants {
        for g in roles {
            let RoleGrant::Detailed(d) = g else { continue };
            let Some(exp) = d.expires else { continue };
            let Some(status) = expiry_status(exp.end(), now, within) else { continue };
            let mut detail = format!("{who} holds {} until {exp}", d.role);
            if let Some(r) = &d.reason {
                detail.push_str(&format!("; reason: {r}"));
            }
            if let Some(t) = &d.ticket {
                detail.push_str(&format!("; ticket: {t}"));
            }
            if status == "expired" {
                detail.push_str("; the next apply revokes it");
            }
            items.push(Item {
                section: Section::ExpiringAssignments,
                subject: format!("{name}/{}", d.role),
                target: None,
                date: Some(exp.to_string()),
                days: Some(days_until(now, exp.end())),
                status: status.into(),
                detail,
            });
        }
    }

    // Live credentials: ended, inside their rotation window, or ending inside the review window.
    for (t, lt) in live {
        for sa in &lt.service_accounts {
            let declared = desired.service_accounts.get(sa.name.as_str()).map(|s| s.credentials.as_slice());
            let declares = declared.is_some_and(|d| !d.is_empty());
            let lost = |c: &LiveCredential| lifecycle::is_undelivered(undelivered, t.as_str(), &sa.name, c);
            for c in &sa.credentials {
                let left = c.end - now;
                let spec = declared.and_then(|d| d.iter().find(|s| c.instance_of(s.name.as_str())));
                let rotate_before = spec.and_then(|s| s.rotate_before);
                // The credential's current instance (the one in use), when it is newer than this one:
                // it replaced this one. An instance never delivered replaces nothing.
                let current = spec.and_then(|s| lifecycle::current_instance(s, &sa.credentials, &lost));
                let newer = current.filter(|n| n.start > c.start);
                let rotation_due =
                    spec.is_some_and(|s| lifecycle::status(s, Some(c), now) == CredentialStatus::RotationDue);
                let lost = lost(c);
                let status = if lost {
                    "undelivered"
                } else if left <= chrono::TimeDelta::zero() {
                    "expired"
                } else if newer.is_some() && (rotation_due || left <= within.to_chrono()) {
                    "superseded"
                } else if rotation_due {
                    "rotation-due"
                } else if left <= within.to_chrono() {
                    "expiring"
                } else {
                    continue;
                };
                let kind = match c.kind {
                    CredentialType::Secret => "secret",
                    CredentialType::Certificate => "certificate",
                };
                let mut detail = format!("{kind} `{}` of {} ends {}", c.name, sa.name, c.end.format("%Y-%m-%d"));
                if lost {
                    detail.push_str(
                        "; it never reached its sink, so nobody holds it: the next apply replaces it and removes it",
                    );
                } else {
                    match (spec, rotate_before, newer) {
                        (Some(s), _, Some(n)) => detail.push_str(&format!(
                            "; replaced by `{}`: the next apply after the overlap{} removes it",
                            n.name,
                            s.overlap.map(|o| format!(" ({o})")).unwrap_or_default()
                        )),
                        (Some(_), Some(r), None) => {
                            detail.push_str(&format!("; rotateBefore {r}: the next apply rotates it"))
                        }
                        (Some(_), None, None) => {}
                        (None, _, _) if declares => {
                            detail.push_str("; not declared by the configuration: the next apply removes it (drift)")
                        }
                        (None, _, _) => detail.push_str("; not managed by the configuration: rotate it by hand"),
                    }
                }
                items.push(Item {
                    section: Section::Credentials,
                    subject: format!("{}/{}", sa.name, c.name),
                    target: Some(t.to_string()),
                    date: Some(c.end.format("%Y-%m-%d").to_string()),
                    days: Some(days_until(now, c.end)),
                    status: status.into(),
                    detail,
                });
            }
        }
    }

    // SoD exceptions inside the window.
    for rule in desired.sod_rules.values() {
        for e in &rule.exceptions {
            let Some(status) = expiry_status(e.expires.end(), now, within) else { continue };
            items.push(Item {
                section: Section::SodExceptions,
                subject: format!("{}/{}", rule.name, e.user),
                target: None,
                date: Some(e.expires.to_string()),
                days: Some(days_until(now, e.expires.end())),
                status: status.into(),
                detail: format!(
                    "exception for {} to SodRule {} ends {}{}; reason: {}",
                    e.user,
                    rule.name,
                    e.expires,
                    if status == "expired" { " (the rule applies again)" } else { "" },
                    e.reason
                ),
            });
        }
    }

    for r in records {
        let e = &r.entry;
        items.push(Item {
            section: Section::AuditActivity,
            subject: e.address.clone(),
            target: None,
            date: Some(e.time.format("%Y-%m-%d %H:%M:%S").to_string()),
            days: Some(days_until(now, e.time)),
            status: e.outcome.label().to_string(),
            detail: format!(
                "#{} {} by {}{}",
                r.seq,
                e.action,
                e.actor,
                match (&e.error, e.outcome) {
                    (_, crate::audit::Outcome::Attempting) =>
                        " (attempted; no outcome was recorded: the run stopped, outcome unknown)".to_string(),
                    (Some(x), _) => format!(" ({x})"),
                    (None, _) => String::new(),
                }
            ),
        });
    }

    items.extend(licences::unlicensed(desired, live));

    // What the targets' own audit logs say about role assignments (made by keyward or not).
    for (t, lt) in live {
        for e in &lt.history {
            let who = desired
                .users
                .iter()
                .find(|(_, u)| u.user_name.eq_ignore_ascii_case(&e.user_name))
                .map_or_else(|| e.user_name.clone(), |(n, _)| n.to_string());
            items.push(Item {
                section: Section::AuditActivity,
                subject: format!("{t}.user.{who}"),
                target: Some(t.to_string()),
                date: Some(e.time.format("%Y-%m-%d %H:%M:%S").to_string()),
                days: Some(days_until(now, e.time)),
                status: if e.assigned { "role-given" } else { "role-taken" }.to_string(),
                detail: format!("the target's audit log: {}", e.detail),
            });
        }
    }

    // Soonest first within each section; audit activity newest last, as the log runs.
    items.sort_by(|a, b| {
        a.section.cmp(&b.section).then_with(|| match a.section {
            Section::AuditActivity => std::cmp::Ordering::Equal,
            _ => a.days.cmp(&b.days).then_with(|| a.subject.cmp(&b.subject)),
        })
    });
    Review { generated: now, within, items }
}

/// `TARGET.user.NAME` into the target and the name.
fn split_address(address: &str) -> (Option<String>, String) {
    match address.split_once(".user.") {
        Some((t, who)) => (Some(t.to_string()), who.to_string()),
        None => (None, address.to_string()),
    }
}
