//! `keyward schema`.

use super::{CliResult, Exit, Failure, SchemaArgs};
use crate::output::Printer;

pub fn run(args: SchemaArgs, printer: &Printer) -> CliResult {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::error(format!("cannot create {}: {e}", args.out.display())))?;
    let schemas = crate::schema::all();
    for (name, text) in &schemas {
        let path = args.out.join(name);
        std::fs::write(&path, text).map_err(|e| Failure::error(format!("cannot write {}: {e}", path.display())))?;
    }
    printer.out(&format!("Wrote {} schemas to {}\n", schemas.len(), args.out.display()));
    Ok(Exit::Success)
}
