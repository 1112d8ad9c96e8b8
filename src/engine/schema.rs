//! `schema`: the JSON Schemas of the configuration files, written to a folder.

use std::path::Path;

use super::EngineError;

/// Writes every schema into `dir` (created when missing); returns how many.
pub fn write(dir: &Path) -> Result<usize, EngineError> {
    std::fs::create_dir_all(dir).map_err(EngineError::io("create", dir))?;
    let schemas = crate::schema::all();
    for (name, text) in &schemas {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(EngineError::io("write", &path))?;
    }
    Ok(schemas.len())
}
