//! `keyward apply`: a fresh plan after confirmation, or exactly a saved plan.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::Path;

use super::session::{self, Config};
use super::{ApplyArgs, CliResult, Exit, Failure};
use crate::apply::{self, AuditContext};
use crate::audit::{AuditLog, Outcome};
use crate::model::{LiveTarget, Name};
use crate::output::{self, Printer, paint, plan_text, styles};
use crate::plan::{self, GuardOverrides, Plan};
use crate::provider::Access;

pub async fn run(args: ApplyArgs, printer: &Printer) -> CliResult {
    if args.path.is_file() {
        if !args.targets.is_empty() {
            return Err(Failure::error("--target cannot narrow a saved plan; plan again with --target instead"));
        }
        return apply_saved(&args, printer).await;
    }
    let dir = &args.path;
    // Lock every target for the whole apply, then read and plan under the lock.
    let select = |s: &_| session::select_targets(s, &args.targets);
    let (config, read) = session::load_and_read(dir, printer, Access::Write, select).await?;
    let session::Read { names, mut open, live } = read?;
    let state = config.state();
    let now = session::now();
    let undelivered = session::undelivered(state, dir)?;
    let changes = session::compute(state, &live, &open.capabilities, now, &undelivered)?;
    let plan = plan::assemble(changes, session::config_ref(&config, dir), names, now);
    printer.out(&plan_text::render(&plan, plan_text::TextOptions { color: printer.color_out }));
    let findings = super::policy::evaluate_config(&config, Some(&plan), Some(&live), now);
    super::policy::print_text(printer, &findings, &config.loaded, true);
    super::policy::gate(&findings)?;
    if plan.is_empty() {
        return Ok(Exit::Success);
    }
    check_guards(&plan, &config, &live, &args, printer)?;
    if !args.auto_approve && !confirm(printer)? {
        printer.out("Apply cancelled.\n");
        return Ok(Exit::Error);
    }
    execute(&plan, &config, dir, &mut open.providers, printer).await
}

async fn apply_saved(args: &ApplyArgs, printer: &Printer) -> CliResult {
    let text = std::fs::read_to_string(&args.path)
        .map_err(|e| Failure::error(format!("cannot read {}: {e}", args.path.display())))?;
    let saved: Plan = serde_json::from_str(&text)
        .map_err(|e| Failure::error(format!("{} is not a keyward plan: {e}", args.path.display())))?;
    if saved.format_version != plan::FORMAT_VERSION {
        return Err(Failure::error(format!(
            "{} has plan format {}, this keyward reads format {}",
            args.path.display(),
            saved.format_version,
            plan::FORMAT_VERSION
        )));
    }
    let dir = &args.config;
    let config = session::load_config(dir, printer)?;
    let digest = session::config_digest(&config.loaded);
    if digest != saved.configuration.digest {
        return Err(Failure::error(format!(
            "the configuration in {} changed since the plan was made; make a new plan",
            dir.display()
        )));
    }
    let state = config.state();
    for t in &saved.targets {
        if !state.settings.targets.contains_key(t) {
            return Err(Failure::error(format!(
                "the plan names target `{t}`, which the configuration does not define"
            )));
        }
    }
    let mut open = session::open_targets(&state.settings, dir, &saved.targets, Access::Write)?;
    let live = session::read_all(&mut open, printer).await?;
    // Every saved change must still be what a fresh plan would do, from the same live object.
    let undelivered = session::undelivered(state, dir)?;
    let fresh = session::compute(state, &live, &open.capabilities, session::now(), &undelivered)?;
    let fresh: BTreeMap<(String, &str), &str> =
        fresh.iter().map(|c| ((c.address.to_string(), c.action.as_str()), c.fingerprint.as_str())).collect();
    let stale: Vec<String> = saved
        .changes
        .iter()
        .filter(|c| fresh.get(&(c.address.to_string(), c.action.as_str())) != Some(&c.fingerprint.as_str()))
        .map(|c| format!("  - {} ({})", c.address, c.action))
        .collect();
    if !stale.is_empty() {
        return Err(Failure::error(format!(
            "the saved plan is stale: the live objects of {} of its changes changed since it was made:\n{}\nmake a new plan",
            stale.len(),
            stale.join("\n")
        )));
    }
    printer.out(&plan_text::render(&saved, plan_text::TextOptions { color: printer.color_out }));
    let findings = super::policy::evaluate_config(&config, Some(&saved), Some(&live), session::now());
    super::policy::print_text(printer, &findings, &config.loaded, true);
    super::policy::gate(&findings)?;
    if saved.is_empty() {
        return Ok(Exit::Success);
    }
    check_guards(&saved, &config, &live, args, printer)?;
    execute(&saved, &config, dir, &mut open.providers, printer).await
}

fn check_guards(
    plan: &Plan,
    config: &Config,
    live: &BTreeMap<Name, LiveTarget>,
    args: &ApplyArgs,
    _printer: &Printer,
) -> Result<(), Failure> {
    let overrides = GuardOverrides { max_deletes: args.max_deletes, min_admins: args.min_admins };
    let violations = plan::guards::check(&plan.changes, config.state(), live, overrides);
    if violations.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = violations.iter().map(|v| format!("  - {v}")).collect();
    Err(Failure::error(format!(
        "refusing to apply: the plan trips {} guard(s):\n{}",
        violations.len(),
        list.join("\n")
    )))
}

fn confirm(printer: &Printer) -> Result<bool, Failure> {
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

async fn execute(
    plan: &Plan,
    config: &Config,
    dir: &Path,
    providers: &mut BTreeMap<Name, Box<dyn crate::provider::Provider>>,
    printer: &Printer,
) -> CliResult {
    let audit_path = dir.join(&config.state().settings.audit_path);
    let mut audit = AuditLog::open(&audit_path)?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let gathered = crate::audit::provenance::gather(&env, crate::history::head(dir).as_ref());
    let ctx = AuditContext {
        actor: gathered.actor,
        provenance: Some(gathered.provenance),
        commit: plan.configuration.commit.clone(),
        plan_hash: crate::model::digest_bytes(output::plan_json(plan).as_bytes()),
        clock: || chrono::Utc::now(),
    };
    let bar = output::progress::Progress::bar(printer, plan.changes.len() as u64, "Applying");
    let mut progress = |done: usize, total: usize| {
        bar.set(done as u64, total as u64);
        if total > 1000 && !bar.is_visible() {
            printer.status(&format!("Applied {done}/{total} changes"));
        }
    };
    let mut sinks = crate::credential::sink::Sinks::new(dir);
    match crate::credential::keyvault::from_settings(config.state(), dir) {
        Ok(Some(kv)) => sinks = sinks.with_key_vault(kv),
        Ok(None) => {}
        // Deliveries to Key Vault fail (and are recorded as undelivered); the rest proceeds.
        Err(e) => printer.err(&format!(
            "warning: no Key Vault access for credential delivery: {e}
"
        )),
    }
    let creds = apply::CredentialContext {
        sinks,
        state_path: session::undelivered_path(config.state(), dir),
        now: session::now(),
    };
    let report = apply::execute_with(plan, providers, &mut audit, &ctx, &creds, &mut progress).await?;
    bar.finish();
    let applied = report.count(Outcome::Applied);
    let failed: Vec<_> = report.outcomes.iter().filter(|o| o.outcome != Outcome::Applied).collect();
    if failed.is_empty() {
        let line = format!("Apply complete! {applied} changes applied.");
        printer.out(&format!("{}\n", paint(printer.color_out, styles::GREEN.bold(), &line)));
        return Ok(Exit::Success);
    }
    let mut msg = format!(
        "Apply incomplete: {applied} applied, {} failed, {} skipped. Fix the cause and run apply again; it converges.\n",
        report.count(Outcome::Failed),
        report.count(Outcome::Skipped)
    );
    for o in failed {
        msg.push_str(&format!("  - {} ({}): {}\n", o.address, o.action, o.error.as_deref().unwrap_or("failed")));
    }
    printer.out(&msg);
    Ok(Exit::Error)
}
