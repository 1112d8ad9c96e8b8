//! Markdown rendering of a plan for a pull-request comment: summary first, details folded,
//! never longer than GitHub's comment limit.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::plan_text::{by_person, summary_line, symbol};
use crate::model::escape::{html_text, markdown_code, terminal};
use crate::plan::{Change, Plan, Section, Summary};

/// GitHub's limit on a comment body, in characters.
pub const MAX_CHARS: usize = 65_536;

/// Renders the plan, cutting the details (never the summary) to stay within `max_chars`.
pub fn render(plan: &Plan, max_chars: usize) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "### keyward plan\n");
    for notice in &plan.notices {
        // Notices are keyward's own sentences about a target (a validated name): kept as
        // written, on one line.
        let _ = writeln!(head, "> [!WARNING]\n> {}\n", terminal(&notice.message));
    }
    if plan.changes.is_empty() {
        let _ = writeln!(head, "**No changes.** The live targets match the configuration.");
        return head;
    }
    let _ = writeln!(head, "**{}**\n", summary_line(&plan.summary));
    let _ = writeln!(head, "| target | create | update | assign | revoke | disable | delete |");
    let _ = writeln!(head, "|---|---:|---:|---:|---:|---:|---:|");
    let mut per_target: BTreeMap<String, Vec<&Change>> = BTreeMap::new();
    for c in &plan.changes {
        per_target.entry(c.address.target.to_string()).or_default().push(c);
    }
    for (t, cs) in &per_target {
        let s = Summary::of(cs.iter().copied());
        let _ = writeln!(
            head,
            "| {} | {} | {} | {} | {} | {} | {} |",
            markdown_code(t),
            s.create,
            s.update + s.enable,
            s.assign,
            s.revoke,
            s.disable,
            s.delete
        );
    }
    head.push('\n');

    let sections: Vec<(String, Vec<&Change>)> = match &plan.base {
        Some(split) => {
            let (mine, drift): (Vec<&Change>, Vec<&Change>) =
                plan.changes.iter().partition(|c| split.sections.get(&c.address.to_string()) != Some(&Section::Drift));
            vec![
                (format!("Changes this pull request asks for ({})", mine.len()), mine),
                (format!("Drift already present at `{}` ({})", html_text(&split.revision), drift.len()), drift),
            ]
        }
        None => per_target
            .into_iter()
            .map(|(t, cs)| (format!("Changes on `{}` ({})", html_text(&t), cs.len()), cs))
            .collect(),
    };

    let mut body = String::new();
    // Who gets what across targets, compact, before the details (only when someone's changes
    // span several targets).
    let people = by_person(plan);
    if !people.is_empty() {
        let mut section = String::from("<details><summary>By person</summary>\n\n| person | changes |\n|---|---|\n");
        for (who, changes) in &people {
            let list: Vec<String> = changes
                .iter()
                .map(|c| format!("{} {}", symbol(c.action), markdown_code(&c.address.to_string())))
                .collect();
            let _ = writeln!(section, "| {} | {} |", markdown_code(who), list.join("<br>"));
        }
        section.push_str("\n</details>\n\n");
        if head.len() + section.len() + 400 < max_chars / 2 {
            body.push_str(&section);
        }
    }
    let mut shown = 0usize;
    let total = plan.changes.len();
    // Room kept for the closing of a block and the note on cutting.
    let reserve = 400;
    'outer: for (title, changes) in sections {
        let open = format!("<details><summary>{title}</summary>\n\n```diff\n");
        let close = "```\n\n</details>\n\n";
        if head.len() + body.len() + open.len() + close.len() + reserve > max_chars {
            break;
        }
        body.push_str(&open);
        for c in changes {
            let line = change_line(c);
            if head.len() + body.len() + line.len() + close.len() + reserve > max_chars {
                body.push_str(close);
                break 'outer;
            }
            body.push_str(&line);
            shown += 1;
        }
        body.push_str(close);
    }
    let mut out = head;
    out.push_str(&body);
    if shown < total {
        let _ = writeln!(
            out,
            "> **Plan cut:** {} of {} changes are not shown, to fit the {}-character comment limit. \
             Run `keyward plan` or read the saved plan for all of them.",
            total - shown,
            total,
            max_chars
        );
    }
    out
}

fn change_line(c: &Change) -> String {
    // `diff` highlighting colours lines by their first character.
    let sym = match symbol(c.action) {
        "~" => "!",
        "-/+" => "!",
        s => s,
    };
    let mut detail: Vec<String> = Vec::new();
    if let Some(after) = &c.after {
        for (k, v) in after {
            let before = c.before.as_ref().and_then(|b| b.get(k));
            match before {
                Some(b) => detail.push(format!("{k}: {b} -> {v}")),
                None => detail.push(format!("{k}: {v}")),
            }
        }
    } else if let Some(before) = &c.before {
        for (k, v) in before {
            detail.push(format!("{k}: {v}"));
        }
    }
    let mut line = format!("{sym} {} {} ({}: {})", c.action, c.address, c.reason.kind, c.reason.why);
    if !detail.is_empty() {
        let _ = write!(line, " [{}]", detail.join(", "));
    }
    // Who made a drift difference, where the target's audit log tells.
    for n in c.notes.iter().filter(|n| n.is_attribution()) {
        let _ = write!(line, " ({n})");
    }
    // Inside the ```diff fence: a value stays on its line (no forged `+` lines) and cannot
    // close the fence.
    let mut line = terminal(&line).replace("```", "'''");
    line.push('\n');
    line
}
