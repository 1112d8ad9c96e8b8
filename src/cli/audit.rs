//! `keyward audit verify|show|review`.

use super::console::Console;
use super::{
    AuditArgs, AuditCommand, AuditReviewArgs, AuditVerifyArgs, CliResult, Context, DiagFormat, Exit, ReviewFormat,
};
use crate::audit::Outcome;
use crate::engine::audit::{self, ExpectedHead, LogSettings, ReviewSettings};
use crate::model::escape::Term;
use crate::output::{self, Printer, paint, styles};
use crate::state::trail::{ChainHead, HeadCheck};

fn log_settings(args: &AuditArgs) -> LogSettings {
    LogSettings { dir: args.dir.clone(), log: args.log.clone() }
}

pub async fn run(cmd: AuditCommand, ctx: Context, printer: &Printer) -> CliResult {
    match cmd {
        AuditCommand::Review(args) => review(args, ctx, printer).await,
        AuditCommand::Verify(args) => verify(args, printer).await,
        AuditCommand::Show(args) => {
            let shown = audit::show(&log_settings(&args.common), args.last).await?;
            match args.format {
                DiagFormat::Json => {
                    printer.out(&format!("{}\n", serde_json::to_string_pretty(&shown.records).expect("serializes")));
                }
                DiagFormat::Text => {
                    if shown.records.is_empty() {
                        printer.out(&format!("{} holds no records.\n", Term(&shown.location)));
                    }
                    let mut out = String::new();
                    for r in &shown.paired {
                        let e = &r.entry;
                        let note = match (&e.error, e.outcome) {
                            (_, Outcome::Attempting) => {
                                "  (attempted; no outcome was recorded: the run stopped, outcome unknown)".to_string()
                            }
                            (Some(x), _) => format!("  ({})", Term(x)),
                            (None, _) => String::new(),
                        };
                        out.push_str(&format!(
                            "{:>6}  {}  {:<8} {:<8} {}  by {}{note}\n",
                            r.seq,
                            e.time.format("%Y-%m-%d %H:%M:%S"),
                            e.outcome.label(),
                            Term(&e.action),
                            Term(&e.address),
                            Term(&e.actor),
                        ));
                    }
                    printer.out(&out);
                }
            }
            Ok(Exit::Success)
        }
    }
}

async fn verify(args: AuditVerifyArgs, printer: &Printer) -> CliResult {
    let expect =
        args.expect_head.map(|hash| ExpectedHead { hash: hash.trim().to_string(), records: args.expect_records });
    let v = audit::verify(&log_settings(&args.common), expect.as_ref()).await?;
    let (location, report) = (&v.location, &v.report);
    if !report.is_intact() {
        let mut msg =
            format!("{location}: the audit log was tampered with ({} intact records before it)\n", report.records);
        for p in &report.problems {
            msg.push_str(&format!("  line {}: {}\n", p.line, Term(&p.message)));
        }
        printer.out(&msg);
        return Ok(Exit::Error);
    }
    let last = report.head().map(|(_, h)| h.to_string()).unwrap_or_else(|| crate::audit::GENESIS.to_string());
    let cut = |head: &ChainHead, asked: bool| {
        let whose = if asked { "the expected head" } else { "the head the last apply recorded in the state" };
        match &v.check {
            HeadCheck::EndsBefore { records } => Some(format!(
                "the log ends after {records} records, before {whose} ({} records, {}): records were cut off",
                head.records, head.hash
            )),
            HeadCheck::Differs { found } => Some(format!(
                "record {} has the hash {found}, not {whose} {}: the log was rewritten",
                head.records, head.hash
            )),
            HeadCheck::Missing => Some(format!(
                "no record has the hash of {whose}, {} (the log holds {} records, ending at {last}): \
                 records were cut off or rewritten",
                head.hash, report.records
            )),
            HeadCheck::NotAsked | HeadCheck::Reached => None,
        }
    };
    if let Some(problem) = v.against.as_ref().and_then(|(head, asked)| cut(head, *asked)) {
        printer.out(&format!("{location}: {problem}\n"));
        return Ok(Exit::Error);
    }
    let mut line = format!("{location}: intact, {} records, head {last}", report.records);
    if let Some((_, true)) = v.against {
        line.push_str("; it reaches the expected head");
    }
    if report.torn_tail {
        line.push_str(
            "; the last line lacks its newline (the next apply adds it to a whole record, or removes an \
             interrupted write and records the removal)",
        );
    }
    printer.out(&format!("{}\n", paint(printer.color_out, styles::GREEN, &line)));
    Ok(Exit::Success)
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
