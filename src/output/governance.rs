//! Renderings of governance results: the approval of a change (text, Markdown for a
//! pull-request comment, JSON), a campaign's progress, and a closed campaign's summary.

use crate::governance::approvals::{Status, Verdict};
use crate::governance::campaign::{self, EvidenceFile, Outcome};
use crate::governance::codeowners::CodeOwners;

fn names(v: &[crate::model::Name]) -> String {
    if v.is_empty() { "nobody".into() } else { v.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ") }
}

fn mark(s: Status) -> &'static str {
    match s {
        Status::Approved => "approved",
        Status::MissingOwner => "NOT APPROVED",
        Status::SelfApproval => "SELF-APPROVED",
        Status::NoOwners => "NO OWNERS",
    }
}

fn approver_list(v: &Verdict) -> String {
    if v.approvers.is_empty() {
        return "none".into();
    }
    v.approvers
        .iter()
        .map(|a| match &a.user {
            Some(u) if u.as_str() == a.given => u.to_string(),
            Some(u) => format!("{} ({u})", a.given),
            None => format!("{} (no User has this login)", a.given),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verdict for a terminal or a CI log.
pub fn approvals_text(v: &Verdict) -> String {
    let mut out = format!("Approvers: {}\n", approver_list(v));
    for i in &v.ignored {
        out.push_str(&format!("Not counted: {}: {}\n", i.login, i.why));
    }
    if v.changes.is_empty() {
        out.push_str(&format!("\nNo privileged changes since {}.\n", v.base));
        return out;
    }
    out.push_str(&format!("\nPrivileged changes since {} ({}):\n", v.base, v.changes.len()));
    for c in &v.changes {
        let at = c.location.as_ref().map(|l| format!(" ({}:{})", l.file.display(), l.line)).unwrap_or_default();
        out.push_str(&format!("  {:<13} {}{at}\n", mark(c.status), c.description));
        let detail = match c.status {
            Status::Approved => format!("approved by {}", names(&c.approved_by)),
            Status::NoOwners => {
                "the role has no owners at the base revision, and governance.defaultOwners names nobody".into()
            }
            _ => {
                let gaining: Vec<crate::model::Name> =
                    c.beneficiaries.iter().filter(|b| c.owners.contains(b)).cloned().collect();
                format!(
                    "needs one of: {}{}",
                    names(&c.owners),
                    if gaining.is_empty() {
                        String::new()
                    } else {
                        format!(" other than {}, who gains the access", names(&gaining))
                    }
                )
            }
        };
        out.push_str(&format!("                {detail}\n"));
    }
    let open = v.changes.iter().filter(|c| c.status != Status::Approved).count();
    out.push_str(&if open == 0 {
        "\nEvery privileged change is approved by an owner.\n".to_string()
    } else {
        format!(
            "\n{open} privileged change{} lack{} an owner's approval.\n",
            plural(open),
            if open == 1 { "s" } else { "" }
        )
    });
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A value in a table cell or a line of text: every Markdown character escaped.
fn cell(s: &str) -> String {
    crate::model::escape::markdown_text(s)
}

/// The verdict for a pull-request comment.
pub fn approvals_markdown(v: &Verdict) -> String {
    let open = v.changes.iter().filter(|c| c.status != Status::Approved).count();
    let mut out = String::from("### keyward: approvals\n\n");
    if v.changes.is_empty() {
        out.push_str(&format!("No privileged changes since {}.\n", crate::model::escape::markdown_code(&v.base)));
        return out;
    }
    out.push_str(&if open == 0 {
        format!("All {} privileged changes are approved by an owner.\n\n", v.changes.len())
    } else {
        format!("**{open} of {} privileged changes lack an owner's approval.**\n\n", v.changes.len())
    });
    out.push_str("| | Change | Owners | Approved by |\n|---|---|---|---|\n");
    for c in &v.changes {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            mark(c.status),
            cell(&c.description),
            cell(&names(&c.owners)),
            cell(&names(&c.approved_by))
        ));
    }
    out.push_str(&format!("\nApprovers: {}\n", cell(&approver_list(v))));
    out
}

/// The verdict and the findings as JSON.
pub fn approvals_json(v: &Verdict, findings: &[crate::policy::Finding]) -> String {
    let doc = serde_json::json!({"verdict": v, "findings": findings});
    format!("{}\n", serde_json::to_string_pretty(&doc).expect("verdicts serialize"))
}

/// What `keyward codeowners` could not route, for the terminal.
pub fn codeowners_notes(c: &CodeOwners) -> String {
    let mut out = String::new();
    for u in &c.unrouted {
        out.push_str(&format!("not routed: {}: {}\n", u.subject, u.why));
    }
    out
}

/// A campaign's progress for a terminal.
pub fn status_text(s: &campaign::Status) -> String {
    let state = match (&s.closed, s.overdue) {
        (Some(c), _) => format!("closed {c}"),
        (None, true) => format!("OVERDUE since {}", s.due),
        (None, false) => format!("due {}", s.due),
    };
    let mut out = format!(
        "Campaign {} ({}), {state}: {} of {} assignments decided, {} pending\n\n",
        s.campaign, s.scope, s.decided, s.assignments, s.pending
    );
    out.push_str(&format!("  {:<28} {:>5} {:>5} {:>7} {:>7}\n", "reviewer", "lines", "kept", "revoked", "pending"));
    for r in &s.reviewers {
        out.push_str(&format!("  {:<28} {:>5} {:>5} {:>7} {:>7}\n", r.reviewer, r.lines, r.kept, r.revoked, r.pending));
    }
    out
}

/// A campaign's progress for a pull-request comment.
pub fn status_markdown(s: &campaign::Status) -> String {
    let mut out = format!(
        "### Campaign `{}` ({})\n\n{} of {} assignments decided, {} pending; due {}{}.\n\n| Reviewer | File | Lines | Kept | Revoked | Pending |\n|---|---|---|---|---|---|\n",
        s.campaign,
        s.scope,
        s.decided,
        s.assignments,
        s.pending,
        s.due,
        if s.overdue { " (overdue)" } else { "" }
    );
    for r in &s.reviewers {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            cell(&r.reviewer),
            crate::model::escape::markdown_code(&r.file.display().to_string()),
            r.lines,
            r.kept,
            r.revoked,
            r.pending
        ));
    }
    out
}

/// What closing a campaign did, for a terminal.
pub fn closed_text(e: &EvidenceFile) -> String {
    let s = &e.summary;
    let mut out = format!(
        "Closed campaign {}: {} assignments, {} kept, {} revoked, {} revoked unreviewed, {} unreviewed, {} already gone.\n",
        e.campaign.name, s.assignments, s.kept, s.revoked, s.revoked_unreviewed, s.unreviewed, s.gone
    );
    for a in &e.assignments {
        if matches!(a.outcome, Outcome::Revoked | Outcome::RevokedUnreviewed) {
            out.push_str(&format!(
                "  - {} {}: {}\n",
                a.holder,
                a.role,
                a.change.as_deref().unwrap_or("not in the configuration")
            ));
        }
    }
    for m in &e.manual {
        out.push_str(&format!("  change by hand: {m}\n"));
    }
    out
}
