//! Terraform-style text rendering of a plan.

use std::fmt::Write;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::{paint, styles};
use crate::model::escape::{Term, terminal};
use crate::plan::{Action, Change, Plan, Section, Summary};

/// How to render.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    pub color: bool,
}

/// The symbol shown before a change.
pub fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create | Action::Assign => "+",
        Action::Update | Action::Enable | Action::Disable => "~",
        Action::Delete | Action::Revoke => "-",
        Action::Rotate => "-/+",
    }
}

fn action_style(action: Action) -> anstyle::Style {
    match action {
        Action::Create | Action::Assign => styles::GREEN,
        Action::Update | Action::Enable | Action::Disable | Action::Rotate => styles::YELLOW,
        Action::Delete | Action::Revoke => styles::RED,
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "will be created",
        Action::Update => "will be updated in place",
        Action::Enable => "will be enabled",
        Action::Disable => "will be disabled",
        Action::Delete => "will be deleted",
        Action::Assign => "will be assigned",
        Action::Revoke => "will be revoked",
        Action::Rotate => "will be rotated",
    }
}

/// A JSON value as Terraform shows it: strings quoted, others as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "(unset)".to_string(),
        other => terminal(&other.to_string()).into_owned(),
    }
}

/// The heading of a plan that `apply` would carry out.
pub const PLAN_HEADING: &str = "keyward will perform the following actions:";

/// Renders the plan; `No changes.` when empty.
pub fn render(plan: &Plan, opts: TextOptions) -> String {
    render_with_heading(plan, opts, PLAN_HEADING)
}

/// Renders the plan under `heading` (for reports that change nothing, such as drift).
pub fn render_with_heading(plan: &Plan, opts: TextOptions, heading: &str) -> String {
    let mut out = String::new();
    for notice in &plan.notices {
        let _ = writeln!(out, "{} {}", paint(opts.color, styles::YELLOW.bold(), "Note:"), Term(&notice.message));
    }
    if !plan.notices.is_empty() {
        out.push('\n');
    }
    if plan.changes.is_empty() {
        let _ = writeln!(out, "{}", paint(opts.color, styles::GREEN.bold(), "No changes."));
        let _ = writeln!(out, "The live targets match the configuration.");
        return out;
    }
    match &plan.base {
        Some(split) => {
            let (mine, drift): (Vec<&Change>, Vec<&Change>) =
                plan.changes.iter().partition(|c| split.sections.get(&c.address.to_string()) != Some(&Section::Drift));
            let _ = writeln!(out, "Changes this revision asks for (against {}):\n", Term(&split.revision));
            render_changes(&mut out, &mine, opts);
            if mine.is_empty() {
                let _ = writeln!(out, "  (none)\n");
            }
            let _ = writeln!(out, "Drift already present at {} (changed outside git):\n", Term(&split.revision));
            render_changes(&mut out, &drift, opts);
            if drift.is_empty() {
                let _ = writeln!(out, "  (none)\n");
            }
        }
        None => {
            let _ = writeln!(out, "{heading}\n");
            let all: Vec<&Change> = plan.changes.iter().collect();
            render_changes(&mut out, &all, opts);
        }
    }
    render_by_person(&mut out, plan, opts);
    let _ = writeln!(out, "{}", paint(opts.color, styles::BOLD, &summary_line(&plan.summary)));
    out
}

/// `Plan: 3 to create, 1 to update, 2 to assign, 2 to revoke, 0 to disable, 0 to delete.`
pub fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "Plan: {} to create, {} to update, {} to assign, {} to revoke, {} to disable, {} to delete",
        s.create,
        s.update + s.enable,
        s.assign,
        s.revoke,
        s.disable,
        s.delete
    );
    if s.rotate > 0 {
        let _ = write!(line, ", {} to rotate", s.rotate);
    }
    line.push('.');
    line
}

/// Each person's (or service account's) changes, in apply order, when someone's changes
/// span several targets: who gets what, everywhere, at a glance. Empty otherwise.
pub fn by_person(plan: &Plan) -> Vec<(&str, Vec<&Change>)> {
    let mut people: std::collections::BTreeMap<&str, Vec<&Change>> = std::collections::BTreeMap::new();
    for c in &plan.changes {
        if let Some(s) = &c.subject {
            people.entry(s.as_str()).or_default().push(c);
        }
    }
    let spans = |cs: &Vec<&Change>| cs.iter().any(|c| c.address.target != cs[0].address.target);
    if !people.values().any(spans) {
        return Vec::new();
    }
    people.into_iter().collect()
}

fn render_by_person(out: &mut String, plan: &Plan, opts: TextOptions) {
    let people = by_person(plan);
    if people.is_empty() {
        return;
    }
    let _ = writeln!(out, "By person:\n");
    for (who, changes) in people {
        let _ = writeln!(out, "  {}", paint(opts.color, styles::BOLD, &terminal(who)));
        for c in changes {
            let sym = symbol(c.action);
            let _ = writeln!(
                out,
                "    {} {} ({})",
                paint(opts.color, action_style(c.action), sym),
                Term(&c.address),
                c.action
            );
        }
    }
    out.push('\n');
}

fn render_changes(out: &mut String, changes: &[&Change], opts: TextOptions) {
    for c in changes {
        render_change(out, c, opts);
    }
}

fn render_change(out: &mut String, c: &Change, opts: TextOptions) {
    let header = format!("  # {} {}", Term(&c.address), verb(c.action));
    let _ = writeln!(out, "{}", paint(opts.color, styles::BOLD, &header));
    let _ = writeln!(
        out,
        "{}",
        paint(opts.color, styles::DIM, &format!("    ({}: {})", c.reason.kind, Term(&c.reason.why)))
    );
    for n in &c.notes {
        let _ = writeln!(out, "{}", paint(opts.color, styles::CYAN, &format!("    note: {}", Term(n))));
    }
    let sym = symbol(c.action);
    let _ = writeln!(out, "  {} {}", paint(opts.color, action_style(c.action), sym), Term(&c.address));
    let empty = Default::default();
    let before = c.before.as_ref().unwrap_or(&empty);
    let after = c.after.as_ref().unwrap_or(&empty);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let width = keys.iter().map(|k| terminal(k).len()).max().unwrap_or(0);
    for key in keys {
        let k = terminal(key);
        let k = k.as_ref();
        let line = match (before.get(key), after.get(key)) {
            (None, Some(a)) => format!("{} {k:width$} = {}", paint(opts.color, styles::GREEN, "+"), show(a)),
            (Some(b), None) => format!("{} {k:width$} = {}", paint(opts.color, styles::RED, "-"), show(b)),
            (Some(b), Some(a)) => {
                format!("{} {k:width$} = {}", paint(opts.color, styles::YELLOW, "~"), value_diff(b, a, opts.color))
            }
            (None, None) => continue,
        };
        let _ = writeln!(out, "      {line}");
    }
    out.push('\n');
}

/// `old -> new`; for long strings, a word diff marking what changed.
fn value_diff(before: &Value, after: &Value, color: bool) -> String {
    match (before, after) {
        (Value::String(b), Value::String(a)) if b.len() + a.len() > 80 => {
            let diff = TextDiff::from_words(b.as_str(), a.as_str());
            // Collect a replaced phrase whole, so it reads [-old words-]{+new words+}: unchanged
            // spaces between changed words belong to both sides.
            let mut s = String::from("\"");
            let (mut dels, mut ins) = (String::new(), String::new());
            let flush = |s: &mut String, dels: &mut String, ins: &mut String| {
                let space = if ins.is_empty() { split_trailing_space(dels).1 } else { split_trailing_space(ins).1 };
                let space = space.to_string();
                if !dels.trim().is_empty() {
                    s.push_str(&paint(color, styles::RED, &format!("[-{}-]", dels.trim_end())));
                }
                if !ins.trim().is_empty() {
                    s.push_str(&paint(color, styles::GREEN, &format!("{{+{}+}}", ins.trim_end())));
                }
                s.push_str(&space);
                dels.clear();
                ins.clear();
            };
            for ch in diff.iter_all_changes() {
                let v = ch.value();
                match ch.tag() {
                    ChangeTag::Delete => dels.push_str(&terminal(v)),
                    ChangeTag::Insert => ins.push_str(&terminal(v)),
                    ChangeTag::Equal if v.trim().is_empty() && !(dels.is_empty() && ins.is_empty()) => {
                        if !dels.is_empty() {
                            dels.push_str(&terminal(v));
                        }
                        if !ins.is_empty() {
                            ins.push_str(&terminal(v));
                        }
                    }
                    ChangeTag::Equal => {
                        flush(&mut s, &mut dels, &mut ins);
                        s.push_str(&terminal(v));
                    }
                }
            }
            flush(&mut s, &mut dels, &mut ins);
            s.push('"');
            s
        }
        _ => format!("{} -> {}", show(before), show(after)),
    }
}

fn split_trailing_space(s: &str) -> (&str, &str) {
    let body = s.trim_end();
    (body, &s[body.len()..])
}
