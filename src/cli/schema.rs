//! `keyward schema`.

use super::{CliResult, Exit, SchemaArgs};
use crate::output::Printer;

pub fn run(args: SchemaArgs, printer: &Printer) -> CliResult {
    let written = crate::engine::schema::write(&args.out)?;
    printer.out(&format!("Wrote {written} schemas to {}\n", args.out.display()));
    Ok(Exit::Success)
}
