//! A configuration, loaded and validated; the one at a git base revision; its digest.

use std::path::Path;

use super::{EngineError, Observer};
use crate::load::{self, Loaded};
use crate::model::{DesiredState, Name, Settings};
use crate::output::diagnostics;
use crate::plan::ConfigRef;
use crate::validate::{self, Validated};

/// A loaded and validated configuration (without errors).
pub struct Config {
    pub loaded: Loaded,
    pub validated: Validated,
}

impl Config {
    pub fn state(&self) -> &DesiredState {
        self.validated.state.as_ref().expect("validated configurations have a state")
    }

    /// The digest of every configuration file's path and text.
    pub fn digest(&self) -> String {
        digest(&self.loaded)
    }

    /// The digest and git commit of the configuration at `dir`, as plans record them.
    pub fn reference(&self, dir: &Path) -> ConfigRef {
        ConfigRef { digest: self.digest(), commit: load::commit_of(dir) }
    }
}

/// The digest of every configuration file's path and text.
pub fn digest(loaded: &Loaded) -> String {
    let mut files: Vec<_> = loaded.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<_> = files.iter().map(|f| f.path.to_string_lossy()).collect();
    crate::model::digest_parts(
        files.iter().zip(&paths).flat_map(|(f, path)| [path.as_bytes(), b"\0", f.text.as_bytes(), b"\0"]),
    )
}

/// Loads and validates the configuration at `dir`; its diagnostics go to `observer`. Errors
/// when it does not validate.
pub fn load(dir: &Path, observer: &dyn Observer) -> Result<Config, EngineError> {
    validated(dir, timed_load(dir)?, timed_validation, |d, l| observer.diagnostics(d, l))
}

/// Loads and validates the configuration folder `dir` as it was at git revision `rev`. Its
/// diagnostics go to `observer` only when it has errors.
pub fn load_base(dir: &Path, rev: &str, observer: &dyn Observer) -> Result<Config, EngineError> {
    let loaded =
        load::load_revision(dir, rev).map_err(|source| EngineError::BaseUnreadable { rev: rev.to_string(), source })?;
    let validated = validate::validate(&loaded);
    if validated.has_errors() {
        observer.diagnostics(&validated.diagnostics, &loaded);
        return Err(EngineError::BaseInvalid {
            rev: rev.to_string(),
            tally: diagnostics::tally(&validated.diagnostics),
        });
    }
    Ok(Config { loaded, validated })
}

/// The targets to work on: all, or those named (sorted, without repeats).
pub fn select_targets(settings: &Settings, names: &[String]) -> Result<Vec<Name>, EngineError> {
    if names.is_empty() {
        return Ok(settings.targets.keys().cloned().collect());
    }
    let mut out = Vec::new();
    for n in names {
        match Name::new(n.as_str()).ok().filter(|n| settings.targets.contains_key(n)) {
            Some(name) => out.push(name),
            None => {
                return Err(EngineError::UnknownTarget {
                    name: n.clone(),
                    known: settings.targets.keys().map(|k| k.to_string()).collect(),
                });
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub(super) fn timed_load(dir: &Path) -> Result<Loaded, EngineError> {
    let started = std::time::Instant::now();
    let loaded = load::load_dir(dir)?;
    tracing::info!(
        files = loaded.files.len(),
        documents = loaded.documents.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded the configuration"
    );
    Ok(loaded)
}

pub(super) fn timed_validation(loaded: &Loaded) -> Validated {
    let started = std::time::Instant::now();
    let validated = validate::validate(loaded);
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "validated the configuration");
    validated
}

/// Reports the diagnostics of a validation; errors when there is any error among them.
pub(super) fn validated(
    dir: &Path,
    loaded: Loaded,
    validate: impl FnOnce(&Loaded) -> Validated,
    report: impl FnOnce(&[crate::diagnostic::Diagnostic], &Loaded),
) -> Result<Config, EngineError> {
    let validated = validate(&loaded);
    report(&validated.diagnostics, &loaded);
    if validated.has_errors() {
        return Err(EngineError::Invalid { dir: dir.to_path_buf(), tally: diagnostics::tally(&validated.diagnostics) });
    }
    Ok(Config { loaded, validated })
}
