//! `keyward plan`.

use std::collections::BTreeMap;
use std::path::Path;

use super::session::{self, Config};
use super::{CliResult, Exit, Failure, PlanArgs, PlanFormat};
use crate::model::{LiveTarget, Name};
use crate::output::{self, Printer, plan_markdown, plan_text};
use crate::plan::{self, Plan};
use crate::provider::Access;

/// Loads and validates the configuration folder `dir` as it was at git revision `rev`.
pub fn load_base(dir: &Path, rev: &str, printer: &Printer) -> Result<Config, Failure> {
    let loaded = crate::load::load_revision(dir, rev)
        .map_err(|e| Failure::error(format!("cannot read the base revision {rev:?}: {e}")))?;
    let validated = crate::validate::validate(&loaded);
    if validated.has_errors() {
        session::print_diagnostics(printer, &validated.diagnostics, Some(&loaded));
        return Err(Failure::error(format!(
            "the configuration at the base revision {rev:?} is not valid ({})",
            output::diagnostics::tally(&validated.diagnostics)
        )));
    }
    Ok(Config { loaded, validated })
}

/// Plans `dir` against its targets, returning the live state the plan was computed from too.
///
/// With a base revision, the plan is split: a change that the base revision's own plan (live
/// against the base's desired state) holds too, with the same address, action and values, is
/// drift already present; every other is a change the revision since `base` asks for.
pub async fn make(
    config: &Config,
    base: Option<(&Config, &str)>,
    dir: &Path,
    read: session::Read,
) -> Result<(Plan, BTreeMap<Name, LiveTarget>), Failure> {
    let state = config.state();
    let session::Read { names, mut open, live } = read;
    let now = session::now();
    let baseline = base.map(|(b, _)| b.state());
    let undelivered = session::undelivered(state, dir)?;
    let mut changes = session::compute_with_baseline(state, &live, &open.capabilities, now, baseline, &undelivered)?;
    session::attribute(&mut open, &mut changes).await;
    let split = match base {
        None => None,
        Some((base, rev)) => {
            let without =
                session::compute(base.state(), &live, &open.capabilities, now, &undelivered).map_err(|f| Failure {
                    message: format!("at the base revision {rev:?}: {}", f.message),
                    exit: f.exit,
                })?;
            let key = |c: &plan::Change| {
                (c.address.to_string(), c.action, serde_json::to_string(&c.after).unwrap_or_default())
            };
            let already: std::collections::BTreeSet<_> = without.iter().map(key).collect();
            let sections = changes
                .iter()
                .map(|c| {
                    let section = if already.contains(&key(c)) { plan::Section::Drift } else { plan::Section::Change };
                    (c.address.to_string(), section)
                })
                .collect();
            Some(plan::BaseSplit { revision: rev.to_string(), sections })
        }
    };
    let mut plan = plan::assemble(changes, session::config_ref(config, dir), names, now);
    plan.base = split;
    Ok((plan, live))
}

/// Writes a file whole or not at all.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), Failure> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, contents)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Failure::error(format!("cannot write {}: {e}", path.display())))
}

pub async fn run(args: PlanArgs, printer: &Printer) -> CliResult {
    let select = |s: &_| session::select_targets(s, &args.targets);
    let (config, read) = session::load_and_read(&args.dir, printer, Access::Read, select).await?;
    let base = match &args.base {
        Some(rev) => Some((load_base(&args.dir, rev, printer)?, rev.as_str())),
        None => None,
    };
    let base = base.as_ref().map(|(config, rev)| (config, *rev));
    let (plan, live) = make(&config, base, &args.dir, read?).await?;
    let findings = super::policy::evaluate_config(&config, Some(&plan), Some(&live), plan.created_at);
    if let Some(out) = &args.out {
        write_atomic(out, &output::plan_json(&plan))?;
        printer.status(&format!("Saved the plan to {}; apply it with: keyward apply {}", out.display(), out.display()));
    }
    match args.format {
        PlanFormat::Text => {
            printer.out(&plan_text::render(&plan, plan_text::TextOptions { color: printer.color_out }));
            super::policy::print_text(printer, &findings, &config.loaded, true);
        }
        PlanFormat::Json => {
            printer.out(&output::plan_json(&plan));
            super::policy::print_text(printer, &findings, &config.loaded, false);
        }
        PlanFormat::Markdown => {
            let policy = output::findings::render_markdown(&findings, plan_markdown::MAX_CHARS / 4);
            let budget = plan_markdown::MAX_CHARS.saturating_sub(policy.len() + 2);
            let mut text = plan_markdown::render(&plan, budget);
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push('\n');
            text.push_str(&policy);
            printer.out(&text);
        }
        PlanFormat::Sarif => printer.out(&output::sarif::render(&findings, &super::policy::repo_prefix(&args.dir))),
    }
    Ok(if crate::policy::has_deny(&findings) {
        Exit::Denied
    } else if args.detailed_exitcode && !plan.is_empty() {
        Exit::Changes
    } else {
        Exit::Success
    })
}
