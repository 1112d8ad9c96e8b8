//! `keyward import`: write YAML for a target's live users, groups and memberships that the
//! configuration does not yet have.

use super::console::Console;
use super::{CliResult, Context, Exit, ImportArgs};
use crate::engine::import::{self, ImportSettings};
use crate::model::escape::Term;
use crate::output::Printer;

pub async fn run(args: ImportArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings = ImportSettings {
        dir: args.dir.clone(),
        target: args.target.clone(),
        out: args.out.clone(),
        retry: ctx.retry,
        contents_only: args.contents,
    };
    let imported = import::import(&settings, &Console::new(printer)).await?;
    let target = &imported.target;
    if imported.written.is_empty() {
        printer.out(&format!("Nothing to import: the configuration already describes everything in {target}.\n"));
    } else {
        printer.out(&format!("Imported from {target}:\n"));
        for w in &imported.written {
            printer.out(&format!("  {}\n", Term(w)));
        }
    }
    for n in &imported.notes {
        printer.err(&format!("note: {}\n", Term(n)));
    }
    Ok(Exit::Success)
}
