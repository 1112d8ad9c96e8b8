//! `keyward audit verify|show|review`.

use super::console::Console;
use super::{AuditArgs, AuditCommand, AuditReviewArgs, CliResult, Context, DiagFormat, Exit, ReviewFormat};
use crate::engine::audit::{self, LogSettings, ReviewSettings};
use crate::output::{self, Printer, paint, styles};

fn log_settings(args: &AuditArgs) -> LogSettings {
    LogSettings { dir: args.dir.clone(), log: args.log.clone() }
}

pub async fn run(cmd: AuditCommand, ctx: Context, printer: &Printer) -> CliResult {
    match cmd {
        AuditCommand::Review(args) => review(args, ctx, printer).await,
        AuditCommand::Verify(args) => verify(&log_settings(&args), printer),
        AuditCommand::Show(args) => {
            let (path, records) = audit::show(&log_settings(&args.common), args.last)?;
            match args.format {
                DiagFormat::Json => {
                    printer.out(&format!("{}\n", serde_json::to_string_pretty(&records).expect("serializes")));
                }
                DiagFormat::Text => {
                    if records.is_empty() {
                        printer.out(&format!("{} holds no records.\n", path.display()));
                    }
                    let mut out = String::new();
                    for r in &records {
                        let e = &r.entry;
                        out.push_str(&format!(
                            "{:>6}  {}  {:<8} {:<8} {}  by {}{}\n",
                            r.seq,
                            e.time.format("%Y-%m-%d %H:%M:%S"),
                            format!("{:?}", e.outcome).to_lowercase(),
                            e.action,
                            e.address,
                            e.actor,
                            e.error.as_ref().map(|x| format!("  ({x})")).unwrap_or_default()
                        ));
                    }
                    printer.out(&out);
                }
            }
            Ok(Exit::Success)
        }
    }
}

fn verify(settings: &LogSettings, printer: &Printer) -> CliResult {
    let (path, report) = audit::verify(settings)?;
    if report.is_intact() {
        let mut line = format!("{}: intact, {} records", path.display(), report.records);
        if report.torn_tail {
            line.push_str("; the last line is an interrupted write, not a record (the next apply removes it)");
        }
        printer.out(&format!("{}\n", paint(printer.color_out, styles::GREEN, &line)));
        return Ok(Exit::Success);
    }
    let mut msg =
        format!("{}: the audit log was tampered with ({} intact records before it)\n", path.display(), report.records);
    for p in &report.problems {
        msg.push_str(&format!("  line {}: {}\n", p.line, p.message));
    }
    printer.out(&msg);
    Ok(Exit::Error)
}

/// `keyward audit review`: reads the configuration, the live targets and the audit log.
async fn review(args: AuditReviewArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings = ReviewSettings {
        log: log_settings(&args.common),
        clock: ctx.clock,
        retry: ctx.retry,
        targets: args.targets.clone(),
        within: args.within,
        last: args.last,
        since: args.since,
    };
    let report = audit::review(&settings, &Console::new(printer)).await?;
    printer.out(&match args.format {
        ReviewFormat::Text => output::review::render_text(&report),
        ReviewFormat::Markdown => output::review::render_markdown(&report),
        ReviewFormat::Json => output::review::render_json(&report),
        ReviewFormat::Csv => output::review::render_csv(&report),
    });
    Ok(Exit::Success)
}
