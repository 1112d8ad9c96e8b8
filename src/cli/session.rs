//! Steps shared by commands: load and validate a configuration, open and read targets, plan.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Exit, Failure};
use crate::diagnostic::Diagnostic;
use crate::load::{self, Loaded};
use crate::model::{DesiredState, LiveTarget, Name, Settings, Timestamp, UndeliveredCredential};
use crate::output::{Printer, diagnostics};
use crate::plan::{self, Change, ConfigRef, PlanInput, ReasonKind};
use crate::provider::{self, Access, Capabilities, Provider};
use crate::validate::{self, Validated};

/// A loaded and validated configuration.
pub struct Config {
    pub loaded: Loaded,
    pub validated: Validated,
}

impl Config {
    pub fn state(&self) -> &DesiredState {
        self.validated.state.as_ref().expect("validated configurations have a state")
    }
}

/// The clock: `KEYWARD_NOW` (RFC 3339 or YYYY-MM-DD) when set, for reproducible plans and
/// tests; the system clock otherwise.
pub fn now() -> Timestamp {
    if let Ok(v) = std::env::var("KEYWARD_NOW") {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&v) {
            return t.to_utc();
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
            return d.and_hms_opt(12, 0, 0).expect("noon exists").and_utc();
        }
    }
    chrono::Utc::now()
}

/// Prints diagnostics to stderr.
pub fn print_diagnostics(printer: &Printer, diags: &[Diagnostic], loaded: Option<&Loaded>) {
    if diags.is_empty() {
        return;
    }
    printer.err(&diagnostics::render_text(diags, loaded, printer.color_err, 100));
}

/// Loads and validates; prints diagnostics; fails with exit 1 on any error.
pub fn load_config(dir: &Path, printer: &Printer) -> Result<Config, Failure> {
    let report = |d: &[Diagnostic], l: &Loaded| print_diagnostics(printer, d, Some(l));
    validated(dir, timed_load(dir)?, timed_validation, report)
}

/// The digest of every configuration file's path and text.
pub fn config_digest(loaded: &Loaded) -> String {
    let mut files: Vec<_> = loaded.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<_> = files.iter().map(|f| f.path.to_string_lossy()).collect();
    crate::model::digest_parts(
        files.iter().zip(&paths).flat_map(|(f, path)| [path.as_bytes(), b"\0", f.text.as_bytes(), b"\0"]),
    )
}

pub fn config_ref(config: &Config, dir: &Path) -> ConfigRef {
    ConfigRef { digest: config_digest(&config.loaded), commit: load::commit_of(dir) }
}

/// The targets to work on: all, or those named with `--target`.
pub fn select_targets(settings: &Settings, names: &[String]) -> Result<Vec<Name>, Failure> {
    if names.is_empty() {
        return Ok(settings.targets.keys().cloned().collect());
    }
    let mut out = Vec::new();
    for n in names {
        match Name::new(n.as_str()).ok().filter(|n| settings.targets.contains_key(n)) {
            Some(name) => out.push(name),
            None => {
                let known: Vec<&str> = settings.targets.keys().map(Name::as_str).collect();
                return Err(Failure::error(format!(
                    "there is no target `{n}`; keyward.yaml defines: {}",
                    known.join(", ")
                )));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Open targets.
pub struct Targets {
    pub providers: BTreeMap<Name, Box<dyn Provider>>,
    pub capabilities: BTreeMap<Name, Capabilities>,
}

pub fn open_targets(settings: &Settings, root: &Path, names: &[Name], access: Access) -> Result<Targets, Failure> {
    let mut providers = BTreeMap::new();
    let mut capabilities = BTreeMap::new();
    for name in names {
        let target = &settings.targets[name];
        let p = provider::open(target, root, access)?;
        capabilities.insert(name.clone(), p.capabilities().clone());
        providers.insert(name.clone(), p);
    }
    Ok(Targets { providers, capabilities })
}

/// Reads every open target, all at once: the slowest target, not the sum of them, sets the
/// time. The first failure ends the read.
pub async fn read_all(targets: &mut Targets, printer: &Printer) -> Result<BTreeMap<Name, LiveTarget>, Failure> {
    let total = targets.providers.len() as u64;
    let bar = crate::output::progress::Progress::bar(printer, total, "Reading targets");
    let names: Vec<&str> = targets.providers.keys().map(Name::as_str).collect();
    bar.set_message(&format!("Reading {}", names.join(", ")));
    let reads = targets.providers.iter_mut().map(|(name, p)| {
        if !bar.is_visible() {
            printer.status(&format!("Reading target {name}..."));
        }
        let bar = &bar;
        async move {
            let started = std::time::Instant::now();
            let t = p.read().await?;
            bar.inc(1);
            tracing::info!(
                target_name = %name,
                accounts = t.accounts.len(),
                bindings = t.bindings.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "read target"
            );
            Ok::<_, Failure>((name.clone(), t))
        }
    });
    let live = futures_util::future::try_join_all(reads).await?;
    bar.finish();
    Ok(live.into_iter().collect())
}

/// The targets picked from a configuration, opened and read.
pub struct Read {
    pub names: Vec<Name>,
    pub open: Targets,
    pub live: BTreeMap<Name, LiveTarget>,
}

/// Picks, opens and reads the targets of a valid configuration.
pub async fn read_targets(
    settings: &Settings,
    dir: &Path,
    printer: &Printer,
    access: Access,
    select: impl FnOnce(&Settings) -> Result<Vec<Name>, Failure>,
) -> Result<Read, Failure> {
    let names = select(settings)?;
    let mut open = open_targets(settings, dir, &names, access)?;
    let live = read_all(&mut open, printer).await?;
    Ok(Read { names, open, live })
}

/// Loads the configuration at `dir` and reads the targets `select` picks, validating the
/// resources while the targets are read: parsing a large configuration and waiting on the
/// targets' answers overlap. The configuration comes first, as with [`load_config`]: when it is
/// not valid, that is the error, and what the targets said is not used (reading has no effect
/// on them). Otherwise the configuration is returned with the outcome of the read.
pub async fn load_and_read(
    dir: &Path,
    printer: &Printer,
    access: Access,
    select: impl FnOnce(&Settings) -> Result<Vec<Name>, Failure>,
) -> Result<(Config, Result<Read, Failure>), Failure> {
    let report = |d: &[Diagnostic], l: &Loaded| print_diagnostics(printer, d, Some(l));
    load_and_read_reporting(dir, printer, access, select, report).await
}

/// [`load_and_read`], handing the diagnostics to `report` (which may print them, or not).
pub async fn load_and_read_reporting(
    dir: &Path,
    printer: &Printer,
    access: Access,
    select: impl FnOnce(&Settings) -> Result<Vec<Name>, Failure>,
    report: impl FnOnce(&[Diagnostic], &Loaded),
) -> Result<(Config, Result<Read, Failure>), Failure> {
    let loaded = timed_load(dir)?;
    let Some(settings) = validate::settings_of(&loaded) else {
        // keyward.yaml has problems: validation reports them.
        let config = validated(dir, loaded, timed_validation, report)?;
        let read = read_targets(&config.state().settings, dir, printer, access, select).await;
        return Ok((config, read));
    };
    let validation = tokio::task::spawn_blocking(move || {
        let v = timed_validation(&loaded);
        (loaded, v)
    });
    let (validation, read) = tokio::join!(validation, read_targets(&settings, dir, printer, access, select));
    // Validation never panics; if it did, the panic is raised here as it would have been inline.
    let (loaded, validation) = validation.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let config = validated(dir, loaded, |_| validation, report)?;
    Ok((config, read))
}

fn timed_load(dir: &Path) -> Result<Loaded, Failure> {
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

fn timed_validation(loaded: &Loaded) -> Validated {
    let started = std::time::Instant::now();
    let validated = validate::validate(loaded);
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "validated the configuration");
    validated
}

/// Reports the diagnostics of a validation; fails with exit 1 on any error.
fn validated(
    dir: &Path,
    loaded: Loaded,
    validate: impl FnOnce(&Loaded) -> Validated,
    report: impl FnOnce(&[Diagnostic], &Loaded),
) -> Result<Config, Failure> {
    let validated = validate(&loaded);
    report(&validated.diagnostics, &loaded);
    if validated.has_errors() {
        return Err(Failure {
            message: format!("{} is not valid ({})", dir.display(), diagnostics::tally(&validated.diagnostics)),
            exit: Exit::Error,
        });
    }
    Ok(Config { loaded, validated })
}

/// Adds to each drift change a note saying who made the live difference and when, where its
/// target's audit log tells (see [`crate::provider::Provider::attribute`]).
pub async fn attribute(targets: &mut Targets, changes: &mut [Change]) {
    for (name, p) in targets.providers.iter_mut() {
        let idx: Vec<usize> = (0..changes.len())
            .filter(|&i| &changes[i].address.target == name && changes[i].reason.kind == ReasonKind::Drift)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let found = {
            let refs: Vec<&Change> = idx.iter().map(|&i| &changes[i]).collect();
            p.attribute(&refs).await
        };
        for (i, a) in idx.into_iter().zip(found) {
            if let Some(a) = a {
                changes[i].notes.push(a.note());
            }
        }
    }
}

pub fn compute(
    state: &DesiredState,
    live: &BTreeMap<Name, LiveTarget>,
    caps: &BTreeMap<Name, Capabilities>,
    now: Timestamp,
    undelivered: &[UndeliveredCredential],
) -> Result<Vec<Change>, Failure> {
    compute_with_baseline(state, live, caps, now, None, undelivered)
}

/// The undelivered-credentials state file of the configuration at `dir`.
pub fn undelivered_path(state: &DesiredState, dir: &Path) -> std::path::PathBuf {
    crate::credential::state::path(dir, Path::new(&state.settings.audit_path))
}

/// The credentials apply issued but could not deliver (see [`crate::credential::state`]).
pub fn undelivered(state: &DesiredState, dir: &Path) -> Result<Vec<UndeliveredCredential>, Failure> {
    crate::credential::state::load(&undelivered_path(state, dir)).map_err(|e| Failure::error(e.to_string()))
}

/// [`compute`], labelling as drift what `baseline` asked for too (see [`PlanInput::baseline`]).
pub fn compute_with_baseline(
    state: &DesiredState,
    live: &BTreeMap<Name, LiveTarget>,
    caps: &BTreeMap<Name, Capabilities>,
    now: Timestamp,
    baseline: Option<&DesiredState>,
    undelivered: &[UndeliveredCredential],
) -> Result<Vec<Change>, Failure> {
    let input = PlanInput { desired: state, live, capabilities: caps, now, baseline, undelivered };
    let started = std::time::Instant::now();
    let result = plan::plan_changes(&input);
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "planned");
    result.map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        Failure::error(format!("cannot make a plan:\n{}", list.join("\n")))
    })
}
