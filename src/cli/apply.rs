//! `keyward apply`: a fresh plan after confirmation, or exactly a saved plan.

use std::io::{BufRead, IsTerminal};

use super::console::{Console, print_findings};
use super::{ApplyArgs, CliResult, Context, Exit, Failure};
use crate::engine::apply::{self, ApplySettings, Prepared, SavedApplySettings};
use crate::output::{Printer, plan_text};
use crate::plan::GuardOverrides;

pub async fn run(args: ApplyArgs, ctx: Context, printer: &Printer) -> CliResult {
    let (clock, retry) = (ctx.clock, ctx.retry);
    let guards = GuardOverrides { max_deletes: args.max_deletes, min_admins: args.min_admins };
    let console = Console::new(printer);
    let saved = args.path.is_file();
    let prepared = if saved {
        if !args.targets.is_empty() {
            return Err(Failure::error("--target cannot narrow a saved plan; plan again with --target instead"));
        }
        let settings = SavedApplySettings {
            plan_file: args.path.clone(),
            dir: args.config.clone(),
            clock,
            retry,
            guards,
            lock_timeout: args.lock_timeout,
            plan_key: super::plan::plan_key(),
        };
        apply::prepare_saved(&settings, &console).await?
    } else {
        // Every target is locked for the whole apply; the plan is made under the lock.
        let settings = ApplySettings {
            dir: args.path.clone(),
            clock,
            retry,
            targets: args.targets.clone(),
            guards,
            lock_timeout: args.lock_timeout,
        };
        apply::prepare(&settings, &console).await?
    };
    // The state stays locked from before the targets were read until here, whatever happened.
    let mut prepared = prepared;
    let result = decide_and_apply(&mut prepared, &args, saved, &console).await;
    let location = prepared.state_location();
    if let Err(e) = prepared.release().await {
        printer.err(&format!("warning: cannot release the state lock at {location}: {}\n", Failure::from(e).message));
    }
    result
}

async fn decide_and_apply(prepared: &mut Prepared, args: &ApplyArgs, saved: bool, console: &Console<'_>) -> CliResult {
    let printer = console.printer;
    crate::engine::governance::record_approvals(prepared, &args.approvers.input())?;
    printer.out(&plan_text::render(&prepared.plan, plan_text::TextOptions { color: printer.color_out }));
    print_findings(printer, &prepared.findings, &prepared.config.loaded, true);
    prepared.gate()?;
    if prepared.plan.is_empty() {
        prepared.record_unchanged().await?;
        return Ok(Exit::Success);
    }
    prepared.check_guards()?;
    if !saved && !args.auto_approve && !confirm(printer)? {
        printer.out("Apply cancelled.\n");
        return Ok(Exit::Error);
    }
    execute(prepared, console).await
}

pub(super) fn confirm(printer: &Printer) -> Result<bool, Failure> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::error(
            "refusing to apply without confirmation: there is no terminal to ask on; review the plan and pass --auto-approve",
        ));
    }
    printer.out("Do you want to perform these actions? Only 'yes' will be accepted.\n  Enter a value: ");
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(|e| Failure::error(format!("cannot read the answer: {e}")))?;
    Ok(line.trim() == "yes")
}

pub(super) async fn execute(prepared: &mut Prepared, console: &Console<'_>) -> CliResult {
    let printer = console.printer;
    console.start_apply(prepared.plan.changes.len());
    let report = prepared.apply(console).await;
    console.finish();
    let report = report?;
    printer.out(&crate::output::apply_report::render(&report, printer.color_out));
    if let Some(head) = prepared.audit_head() {
        printer.out(&format!(
            "Audit chain head: {} records, last hash {} ({}).\n",
            head.records,
            head.hash,
            prepared.state_location()
        ));
    }
    Ok(if report.all_applied() { Exit::Success } else { Exit::Error })
}
