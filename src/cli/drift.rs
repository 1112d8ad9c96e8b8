//! `keyward drift`: report what changed outside git; alert and write metrics.

use super::console::Console;
use super::{CliResult, Context, DriftArgs, DriftFormat, Exit, Failure};
use crate::engine::EngineError;
use crate::engine::drift::{self, DriftSettings, Webhook, WebhookError};
use crate::output::{self, Printer, plan_markdown, plan_text};
use crate::plan::{Change, Plan};

pub async fn run(args: DriftArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings =
        DriftSettings { dir: args.dir.clone(), clock: ctx.clock, retry: ctx.retry, targets: args.targets.clone() };
    let attempt = drift::check(&settings, &Console::new(printer)).await?;
    let webhook = if args.notify {
        match Webhook::from_config(&attempt.config, &args.dir).map_err(EngineError::from)? {
            Some(w) => Some(w),
            None => return Err(EngineError::from(WebhookError::Missing).into()),
        }
    } else {
        None
    };
    let drift::Checked { plan, metrics, .. } = match attempt.checked {
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
        DriftFormat::Text => printer.out(&render_text(&plan, printer.color_out)),
        DriftFormat::Json => printer.out(&output::plan_json(&plan)),
        DriftFormat::Markdown => {
            let text = plan_markdown::render(&plan, plan_markdown::MAX_CHARS);
            printer.out(&text.replacen("### keyward plan", "### keyward drift", 1));
        }
    }
    if plan.is_empty() {
        return Ok(Exit::Success);
    }
    if let Some(w) = &webhook {
        let items: Vec<&Change> = plan.changes.iter().collect();
        w.post(&drift::alert_text(&args.dir, &items)).await.map_err(EngineError::from)?;
        printer.status("Sent the drift alert to notify.webhook.");
    }
    Ok(Exit::Changes)
}

fn render_text(plan: &Plan, color: bool) -> String {
    if plan.is_empty() {
        return "No drift. The live targets match the configuration.\n".to_string();
    }
    let mut out = format!(
        "Drift: {} live difference{} from the configuration (changed outside git, or not applied yet).\n\n",
        plan.changes.len(),
        if plan.changes.len() == 1 { "" } else { "s" }
    );
    let heading = "To bring the targets back to the configuration, `keyward apply` would make these changes:";
    out.push_str(&plan_text::render_with_heading(plan, plan_text::TextOptions { color }, heading));
    out
}
