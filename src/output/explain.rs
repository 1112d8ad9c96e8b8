//! Renderings of `keyward explain`: text for a terminal, Markdown for a ticket or a pull
//! request, JSON for tools.

use crate::explain::{Access, Applied, Explanation, LiveState};
use crate::history::CommitInfo;
use crate::model::escape::Term;

fn day(t: &crate::model::Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// `a1b2c3d4e5f6 on 2026-11-04 by Laura Callahan: "Grant AP" (pull request #12, merged by X,
/// approved by Y)`.
fn commit(c: &CommitInfo) -> String {
    let mut s = format!("{} on {} by {}: \"{}\"", c.short(), day(&c.time), c.author, c.summary);
    let mut extra = Vec::new();
    if let Some(n) = c.pull_request {
        extra.push(match &c.pull_request_url {
            Some(u) => format!("pull request #{n} {u}"),
            None => format!("pull request #{n}"),
        });
    }
    if let Some(m) = &c.merged_by {
        extra.push(format!("merged by {m}"));
    }
    if !c.approved_by.is_empty() {
        extra.push(format!("approved by {}", c.approved_by.join(", ")));
    }
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join(", ")));
    }
    s
}

fn applied(a: &Applied) -> String {
    let mut s = format!("applied {} by {} (audit record #{}", a.time.format("%Y-%m-%d %H:%M UTC"), a.actor, a.seq);
    if let Some(c) = &a.commit {
        s.push_str(&format!(", commit {}", &c[..c.len().min(12)]));
    }
    if let Some(p) = &a.provenance {
        match (p.pull_request, &p.pull_request_url) {
            (Some(n), Some(u)) => s.push_str(&format!(", pull request #{n} {u}")),
            (Some(n), None) => s.push_str(&format!(", pull request #{n}")),
            _ => {}
        }
        if let Some(u) = &p.run_url {
            s.push_str(&format!(", run {u}"));
        }
        if let Some(u) = &p.change_url {
            s.push_str(&format!(", change {u}"));
        }
        if p.dirty {
            s.push_str(", from uncommitted changes");
        }
    }
    s.push(')');
    s
}

fn expiry(a: &Access) -> Option<String> {
    let e = a.expires?;
    Some(match a.expires_in_days {
        Some(d) if d < 0 => format!("expired {e} ({} days ago; the next apply revokes it)", -d),
        Some(d) => format!("expires {e} (in {d} days)"),
        None => format!("expires {e}"),
    })
}

fn live(l: LiveState) -> &'static str {
    match l {
        LiveState::Held => "held",
        LiveState::Missing => "not held yet (the next apply assigns it)",
        LiveState::Unknown => "live state not read",
    }
}

/// The facts of one access, as lines (without indentation).
fn facts(a: &Access) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = &a.source {
        out.push(format!("granted at {s}"));
    }
    if let Some(e) = expiry(a) {
        out.push(e);
    }
    if let Some(r) = &a.reason {
        out.push(format!("reason: {r}"));
    }
    if let Some(t) = &a.ticket {
        out.push(format!("ticket: {t}"));
    }
    match &a.added {
        Some(c) => out.push(format!("added in {}", commit(c))),
        None if a.uncommitted => out.push("not committed yet".into()),
        None => {}
    }
    if let Some(c) = &a.changed {
        out.push(format!("last changed in {}", commit(c)));
    }
    if let Some(c) = a.written.as_ref().filter(|w| Some(&w.id) != a.added.as_ref().map(|x| &x.id)) {
        out.push(format!("line written in {}", commit(c)));
    }
    for t in &a.targets {
        let mut line = format!("{}: {}, {}", t.target, t.binding, live(t.live));
        match &t.applied {
            Some(ap) => line.push_str(&format!("; {}", applied(ap))),
            None => line.push_str("; no apply of it in the audit log"),
        }
        out.push(line);
    }
    for n in &a.sod {
        let until = n.expires.map(|e| format!(" until {e}")).unwrap_or_default();
        let what = if n.status == "expired-exception" { "expired exception" } else { "exception" };
        out.push(format!("segregation of duties: {what} to {}{until}: {}", n.rule, n.detail));
    }
    out
}

fn title(e: &Explanation) -> String {
    let h = &e.holder;
    let mut s = h.name.clone();
    let mut about: Vec<String> = Vec::new();
    if let Some(d) = &h.display_name {
        about.push(d.clone());
    }
    if let Some(u) = &h.user_name {
        about.push(u.clone());
    }
    if !about.is_empty() {
        s.push_str(&format!(" ({})", about.join(", ")));
    }
    s
}

fn holder_lines(e: &Explanation) -> Vec<String> {
    let h = &e.holder;
    let mut out = Vec::new();
    let mut role = Vec::new();
    if let Some(j) = &h.job_title {
        role.push(j.clone());
    }
    if let Some(d) = &h.department {
        role.push(d.clone());
    }
    if let Some(m) = &h.manager {
        role.push(format!("{} {m}", if h.kind == "user" { "manager" } else { "owner" }));
    }
    if !h.active {
        role.push("disabled".into());
    }
    if !role.is_empty() {
        out.push(role.join("; "));
    }
    if let Some(s) = &h.source {
        out.push(format!("defined at {s}"));
    }
    if let Some(c) = &h.added {
        out.push(format!("in the configuration since {}", commit(c)));
    }
    out
}

pub fn render_text(e: &Explanation) -> String {
    let mut out = format!("{}\n", Term(title(e)));
    for l in holder_lines(e) {
        out.push_str(&format!("  {}\n", Term(l)));
    }
    if e.access.is_empty() {
        out.push_str("\nThe configuration gives no role.\n");
    }
    for a in &e.access {
        let mut head = format!("\n{}", Term(&a.role));
        if a.privileged {
            head.push_str("  [privileged]");
        }
        if !a.duties.is_empty() {
            head.push_str(&format!("  duties: {}", Term(a.duties.join(", "))));
        }
        out.push_str(&format!("{head}\n"));
        for l in facts(a) {
            out.push_str(&format!("  {}\n", Term(l)));
        }
    }
    if e.live_read {
        if e.unexplained.is_empty() {
            out.push_str("\nLive access git does not explain: none.\n");
        } else {
            out.push_str("\nLive access git does not explain (drift; `keyward apply` would undo it):\n");
            for u in &e.unexplained {
                out.push_str(&format!("  {} {}: {}\n", Term(&u.action), Term(&u.address), Term(&u.reason)));
                for n in &u.notes {
                    out.push_str(&format!("      {}\n", Term(n)));
                }
            }
        }
    }
    if !e.findings.is_empty() {
        out.push_str("\nPolicy findings:\n");
        for f in &e.findings {
            out.push_str(&format!("  {} {}: {}\n", f.severity, Term(&f.rule), Term(&f.message)));
        }
    }
    for n in &e.notes {
        out.push_str(&format!("\nnote: {}\n", Term(n)));
    }
    out
}

fn md(s: &str) -> String {
    crate::model::escape::markdown_text(s)
}

pub fn render_markdown(e: &Explanation) -> String {
    let mut out = format!("## Access of {}\n\n", md(&title(e)));
    for l in holder_lines(e) {
        out.push_str(&format!("- {}\n", md(&l)));
    }
    if e.access.is_empty() {
        out.push_str("\nThe configuration gives no role.\n");
    }
    for a in &e.access {
        let mut head = format!("\n### {}", md(&a.role));
        if a.privileged {
            head.push_str(" (privileged)");
        }
        out.push_str(&format!("{head}\n\n"));
        if !a.duties.is_empty() {
            out.push_str(&format!("- duties: {}\n", md(&a.duties.join(", "))));
        }
        for l in facts(a) {
            out.push_str(&format!("- {}\n", md(&l)));
        }
    }
    if e.live_read {
        out.push_str("\n### Live access git does not explain\n\n");
        if e.unexplained.is_empty() {
            out.push_str("None.\n");
        }
        for u in &e.unexplained {
            let notes = if u.notes.is_empty() { String::new() } else { format!(" ({})", u.notes.join("; ")) };
            out.push_str(&format!(
                "- {} {}: {}\n",
                md(&u.action),
                crate::model::escape::markdown_code(&u.address),
                md(&(u.reason.clone() + &notes))
            ));
        }
    }
    if !e.findings.is_empty() {
        out.push_str("\n### Policy findings\n\n");
        for f in &e.findings {
            out.push_str(&format!(
                "- {} {}: {}\n",
                f.severity,
                crate::model::escape::markdown_code(&f.rule),
                md(&f.message)
            ));
        }
    }
    for n in &e.notes {
        out.push_str(&format!("\n> note: {}\n", md(n)));
    }
    out
}

pub fn render_json(e: &Explanation) -> String {
    format!("{}\n", serde_json::to_string_pretty(e).expect("explanations serialize"))
}
