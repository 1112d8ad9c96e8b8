//! Opening and reading targets, at the same time as the configuration is validated.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::{self, Config, timed_load, timed_validation, validated};
use super::{EngineError, Observer};
use crate::model::{Capabilities, LiveTarget, Name, Settings};
use crate::plan::{Change, ReasonKind};
use crate::provider::{self, Access, Provider};
use crate::remote::RetryPolicy;
use crate::validate;

/// Open targets, by name.
pub struct Targets {
    pub providers: BTreeMap<Name, Box<dyn Provider>>,
    pub capabilities: BTreeMap<Name, Capabilities>,
}

impl Targets {
    /// Opens the targets `names` of `settings` (relative paths resolve against `root`).
    /// HTTP requests are retried as `retry` says.
    pub fn open(
        settings: &Settings,
        root: &Path,
        names: &[Name],
        access: Access,
        retry: RetryPolicy,
    ) -> Result<Targets, EngineError> {
        let mut providers = BTreeMap::new();
        let mut capabilities = BTreeMap::new();
        for name in names {
            let target = &settings.targets[name];
            let p = provider::open_with(target, root, access, retry)?;
            capabilities.insert(name.clone(), p.capabilities().clone());
            providers.insert(name.clone(), p);
        }
        Ok(Targets { providers, capabilities })
    }

    /// Reads every target, all at once: the slowest target, not the sum of them, sets the
    /// time. The first failure ends the read.
    pub async fn read_all(&mut self, observer: &dyn Observer) -> Result<BTreeMap<Name, LiveTarget>, EngineError> {
        let names: Vec<Name> = self.providers.keys().cloned().collect();
        observer.reading(&names);
        let reads = self.providers.iter_mut().map(|(name, p)| async move {
            let started = std::time::Instant::now();
            let t = p.read().await?;
            observer.read_target(name, &t);
            tracing::info!(
                target_name = %name,
                accounts = t.accounts.len(),
                bindings = t.bindings.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "read target"
            );
            Ok::<_, EngineError>((name.clone(), t))
        });
        let live = futures_util::future::try_join_all(reads).await?;
        observer.read_done();
        Ok(live.into_iter().collect())
    }

    /// Adds to each drift change a note saying who made the live difference and when, where
    /// its target's audit log tells (see [`Provider::attribute`]).
    pub async fn attribute(&mut self, changes: &mut [Change]) {
        for (name, p) in self.providers.iter_mut() {
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
    names: &[String],
    access: Access,
    retry: RetryPolicy,
    observer: &dyn Observer,
) -> Result<Read, EngineError> {
    let names = config::select_targets(settings, names)?;
    let mut open = Targets::open(settings, dir, &names, access, retry)?;
    let live = open.read_all(observer).await?;
    Ok(Read { names, open, live })
}

/// Loads the configuration at `dir` and reads the targets named (all when none is), validating
/// the resources while the targets are read: parsing a large configuration and waiting on the
/// targets' answers overlap. The configuration comes first: when it is not valid, that is the
/// error, and what the targets said is not used (reading has no effect on them). Otherwise the
/// configuration is returned with the outcome of the read.
pub async fn load_and_read(
    dir: &Path,
    names: &[String],
    access: Access,
    retry: RetryPolicy,
    observer: &dyn Observer,
) -> Result<(Config, Result<Read, EngineError>), EngineError> {
    let loaded = timed_load(dir)?;
    let report = |d: &[crate::diagnostic::Diagnostic], l: &crate::load::Loaded| observer.diagnostics(d, l);
    let Some(settings) = validate::settings_of(&loaded) else {
        // keyward.yaml has problems: validation reports them.
        let config = validated(dir, loaded, timed_validation, report)?;
        let read = read_targets(&config.state().settings, dir, names, access, retry, observer).await;
        return Ok((config, read));
    };
    let validation = tokio::task::spawn_blocking(move || {
        let v = timed_validation(&loaded);
        (loaded, v)
    });
    let (validation, read) = tokio::join!(validation, read_targets(&settings, dir, names, access, retry, observer));
    // Validation never panics; if it did, the panic is raised here as it would have been inline.
    let (loaded, validation) = validation.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let config = validated(dir, loaded, |_| validation, report)?;
    Ok((config, read))
}
