//! `keyward plan`.

use super::console::{Console, print_findings};
use super::{CliResult, Context, Exit, PlanArgs, PlanFormat};
use crate::engine::plan::{self, PlanSettings};
use crate::output::{self, Printer, plan_markdown, plan_text};

pub async fn run(args: PlanArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings = PlanSettings {
        dir: args.dir.clone(),
        clock: ctx.clock,
        retry: ctx.retry,
        targets: args.targets.clone(),
        base: args.base.clone(),
    };
    let planned = plan::plan(&settings, &Console::new(printer)).await?;
    let (plan, findings) = (&planned.plan, &planned.findings);
    if let Some(out) = &args.out {
        plan::save(plan, out, plan_key().as_deref())?;
        printer.status(&format!("Saved the plan to {}; apply it with: keyward apply {}", out.display(), out.display()));
    }
    match args.format {
        PlanFormat::Text => {
            printer.out(&plan_text::render(plan, plan_text::TextOptions { color: printer.color_out }));
            print_findings(printer, findings, &planned.config.loaded, true);
        }
        PlanFormat::Json => {
            printer.out(&output::plan_json(plan));
            print_findings(printer, findings, &planned.config.loaded, false);
        }
        PlanFormat::Markdown => {
            let policy = output::findings::render_markdown(findings, plan_markdown::MAX_CHARS / 4);
            let budget = plan_markdown::MAX_CHARS.saturating_sub(policy.len() + 2);
            let mut text = plan_markdown::render(plan, budget);
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push('\n');
            text.push_str(&policy);
            printer.out(&text);
        }
        PlanFormat::Sarif => {
            let mut all = plan::notice_findings(&planned.config, plan);
            all.extend(findings.iter().cloned());
            printer.out(&output::sarif::render(&all, &crate::engine::policy::repo_prefix(&args.dir)))
        }
    }
    Ok(if crate::policy::has_deny(findings) {
        Exit::Denied
    } else if args.detailed_exitcode && !plan.is_empty() {
        Exit::Changes
    } else {
        Exit::Success
    })
}

/// `KEYWARD_PLAN_KEY`, the key saved plans are signed with and checked against.
pub(super) fn plan_key() -> Option<Vec<u8>> {
    std::env::var_os("KEYWARD_PLAN_KEY").filter(|k| !k.is_empty()).map(|k| k.into_encoded_bytes())
}
