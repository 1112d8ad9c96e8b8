//! `keyward drift`: report what changed outside git; alert and write metrics.

use super::console::Console;
use super::{CliResult, Context, DriftArgs, DriftFormat, Exit, Failure};
use crate::engine::EngineError;
use std::collections::BTreeMap;

use crate::engine::drift::{self, Against, DriftSettings, Webhook, WebhookError};
use crate::engine::drift_stored;
use crate::engine::feed::ReadMode;
use crate::model::Name;
use crate::model::escape::{Term, markdown_code};
use crate::output::{self, Printer, plan_markdown, plan_text};
use crate::plan::{Change, Plan};

pub async fn run(args: DriftArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings =
        DriftSettings { dir: args.dir.clone(), clock: ctx.clock, retry: ctx.retry, targets: args.targets.clone() };
    let options = drift_stored::StoredFeeds { resync: args.resync, full: args.full };
    let stored = drift_stored::check(&settings, &Console::new(printer), options).await?;
    for w in &stored.warnings {
        printer.err(&format!("warning: {}\n", Term(w)));
    }
    for (name, read) in stored.reads.iter().filter(|(_, r)| r.has_feed) {
        printer.err(&match read.mode {
            ReadMode::Incremental => format!(
                "{}: read through the change feed ({} object{} changed since the last run).\n",
                Term(name),
                read.changed,
                if read.changed == 1 { "" } else { "s" }
            ),
            ReadMode::Full => format!("{}: read in full.\n", Term(name)),
        });
    }
    let attempt = stored.attempt;
    let webhook = if args.notify {
        match Webhook::from_config(&attempt.config, &args.dir).map_err(EngineError::from)? {
            Some(w) => Some(w),
            None => return Err(EngineError::from(WebhookError::Missing).into()),
        }
    } else {
        None
    };
    let drift::Checked { plan, pending, against, metrics, contents, .. } = match attempt.checked {
        Ok(c) => c,
        Err(e) => {
            let f = Failure::from(e);
            if let Some(path) = &args.metrics_file
                && let Err(e) = drift::write_metrics(path, &drift::failed_metrics(Some(path)))
            {
                printer.err(&format!("warning: {}\n", Failure::from(e).message));
            }
            if let Some(w) = &webhook
                && let Err(e) = w.post(&drift::failure_text(&args.dir, &f.message)).await
            {
                printer.err(&format!("warning: {e}\n"));
            }
            return Err(f);
        }
    };
    if let Some(path) = &args.metrics_file {
        drift::write_metrics(path, &metrics)?;
    }
    match args.format {
        DriftFormat::Text => {
            printer.out(&render_text(&plan, &pending, &against, printer.color_out));
            printer.out(&render_contents(&contents));
        }
        DriftFormat::Json => printer.out(&output::plan_json(&plan)),
        DriftFormat::Markdown => {
            let mut text = plan_markdown::render(&plan, plan_markdown::MAX_CHARS);
            text = text.replacen("### keyward plan", "### keyward drift", 1);
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push('\n');
            text.push_str(&compared_with(&against, "- "));
            if !contents.is_empty() {
                text.push_str(&format!("\n**Role contents changed outside git** ({} pinned):\n\n", contents.len()));
                for f in &contents {
                    text.push_str(&format!("- {}: {}\n", markdown_code(&f.address), markdown_code(&f.message)));
                }
            }
            if !pending.is_empty() {
                text.push_str(&format!("\n**Pending** (merged, not applied yet; not drift): {}\n\n", pending.len()));
                for c in &pending {
                    text.push_str(&format!("- {} {}\n", markdown_code(&c.address.to_string()), c.action));
                }
            }
            printer.out(&text);
        }
    }
    if let Some(w) = &webhook
        && !contents.is_empty()
    {
        w.post(&drift::contents_alert_text(&args.dir, &contents)).await.map_err(EngineError::from)?;
    }
    if plan.is_empty() {
        return Ok(if contents.is_empty() { Exit::Success } else { Exit::Changes });
    }
    if let Some(w) = &webhook {
        let items: Vec<&Change> = plan.changes.iter().collect();
        w.post(&drift::alert_text(&args.dir, &items)).await.map_err(EngineError::from)?;
        printer.status("Sent the drift alert to notify.webhook.");
    }
    Ok(Exit::Changes)
}

/// What each target was compared with, one line per distinct baseline, each line starting with
/// `prefix`.
fn compared_with(against: &BTreeMap<Name, Against>, prefix: &str) -> String {
    let mut by: BTreeMap<&Against, Vec<&str>> = BTreeMap::new();
    for (t, a) in against {
        by.entry(a).or_default().push(t.as_str());
    }
    let mut out = String::new();
    for (a, targets) in by {
        out.push_str(&format!("{prefix}{}: compared with {a}.\n", targets.join(", ")));
    }
    out
}

/// Pinned roles whose live contents left their snapshot, one line each.
fn render_contents(contents: &[crate::policy::Finding]) -> String {
    if contents.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\nRole contents changed outside git: {} pinned role{} (keyward does not change role contents; undo the change on the target, or accept it with `keyward import --target NAME --contents`):\n",
        contents.len(),
        if contents.len() == 1 { "" } else { "s" }
    );
    for f in contents {
        out.push_str(&format!("  {}: {}\n", Term(&f.address), Term(&f.message)));
    }
    out
}

fn render_text(plan: &Plan, pending: &[Change], against: &BTreeMap<Name, Against>, color: bool) -> String {
    let mut out = compared_with(against, "");
    out.push('\n');
    // Notices once, above the drift (or its absence).
    for notice in &plan.notices {
        out.push_str(&format!("Note: {}\n", Term(&notice.message)));
    }
    if !plan.notices.is_empty() {
        out.push('\n');
    }
    let plan = &Plan { notices: Vec::new(), ..plan.clone() };
    if plan.is_empty() {
        out.push_str("No drift. The live targets match the configuration they were last applied from.\n");
    } else {
        out.push_str(&format!(
            "Drift: {} live difference{} from the configuration last applied (changed outside git).\n\n",
            plan.changes.len(),
            if plan.changes.len() == 1 { "" } else { "s" }
        ));
        let heading = "To bring the targets back to that configuration, `keyward apply` would make these changes:";
        out.push_str(&plan_text::render_with_heading(plan, plan_text::TextOptions { color }, heading));
    }
    if !pending.is_empty() {
        out.push_str(&format!(
            "\nPending: {} change{} merged but not applied yet (not drift; the next `keyward apply` makes {}):\n",
            pending.len(),
            if pending.len() == 1 { "" } else { "s" },
            if pending.len() == 1 { "it" } else { "them" }
        ));
        for c in pending {
            out.push_str(&format!("  {} {} ({})\n", c.action, Term(&c.address), Term(&c.reason.why)));
        }
    }
    out
}
