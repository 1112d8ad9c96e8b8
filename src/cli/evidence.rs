//! `keyward explain` and `keyward report`: the engine gathers the evidence; this prints it.

use super::console::Console;
use super::{CliResult, Context, Exit, ExplainArgs, ExplainFormat, ReportArgs, ReportFormat};
use crate::engine::evidence::{self, EvidenceSettings};
use crate::output::{self, Printer};

/// `keyward explain USER`.
pub async fn explain(args: ExplainArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings = EvidenceSettings {
        dir: args.dir.clone(),
        clock: ctx.clock,
        retry: ctx.retry,
        targets: args.targets.clone(),
        offline: args.offline,
    };
    let ev = evidence::gather(&settings, &Console::new(printer)).await?;
    let e = evidence::explain(&ev, &args.dir, &args.user, &args.targets)?;
    printer.out(&match args.format {
        ExplainFormat::Text => output::explain::render_text(&e),
        ExplainFormat::Markdown => output::explain::render_markdown(&e),
        ExplainFormat::Json => output::explain::render_json(&e),
    });
    Ok(Exit::Success)
}

/// `keyward report`.
pub async fn report(args: ReportArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings = EvidenceSettings {
        dir: args.dir.clone(),
        clock: ctx.clock,
        retry: ctx.retry,
        targets: args.targets.clone(),
        offline: args.offline,
    };
    let ev = evidence::gather(&settings, &Console::new(printer)).await?;
    let report = evidence::report(&ev, &args.dir, args.since);
    let text = match args.format {
        ReportFormat::Html => crate::report::html::render(&report),
        ReportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report).expect("reports serialize")),
    };
    match &args.out {
        Some(out) => {
            crate::atomic::write(out, text.as_bytes(), crate::atomic::Access::Shared)
                .map_err(crate::engine::EngineError::io("write", out))?;
            printer.status(&format!("Wrote the report to {}", out.display()));
        }
        None => printer.out(&text),
    }
    Ok(Exit::Success)
}
