//! `keyward plan`.

use std::path::Path;

use super::session::{self, Config};
use super::{CliResult, Exit, Failure, PlanArgs, PlanFormat};
use crate::output::{self, Printer, plan_markdown, plan_text};
use crate::plan::{self, Plan};
use crate::provider::Access;

/// Plans `dir` against its targets.
pub async fn make(config: &Config, dir: &Path, targets: &[String], printer: &Printer) -> Result<Plan, Failure> {
    let state = config.state();
    let names = session::select_targets(state, targets)?;
    let mut open = session::open_targets(state, dir, &names, Access::Read)?;
    let live = session::read_all(&mut open, printer).await?;
    let now = session::now();
    let changes = session::compute(state, &live, &open.capabilities, now)?;
    Ok(plan::assemble(changes, session::config_ref(config, dir), names, now))
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
    let config = session::load_config(&args.dir, printer)?;
    let plan = make(&config, &args.dir, &args.targets, printer).await?;
    if let Some(out) = &args.out {
        write_atomic(out, &output::plan_json(&plan))?;
        printer.status(&format!("Saved the plan to {}; apply it with: keyward apply {}", out.display(), out.display()));
    }
    let text = match args.format {
        PlanFormat::Text => plan_text::render(&plan, plan_text::TextOptions { color: printer.color_out }),
        PlanFormat::Json => output::plan_json(&plan),
        PlanFormat::Markdown => plan_markdown::render(&plan, plan_markdown::MAX_CHARS),
    };
    printer.out(&text);
    Ok(if args.detailed_exitcode && !plan.is_empty() { Exit::Changes } else { Exit::Success })
}
