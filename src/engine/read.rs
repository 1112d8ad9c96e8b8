//! Opening and reading targets, at the same time as the configuration is validated.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::{self, Config, timed_load, timed_validation, validated};
use super::{EngineError, Observer};
use crate::model::{Capabilities, LiveTarget, Name, Settings};
use crate::plan::{Change, ReasonKind};
use crate::provider::handle::{self, Mode, Session};
use crate::remote::RetryPolicy;
use crate::validate;

/// Targets that were read, by name: the sessions that act on what was read, in mode `M`.
pub struct Targets<M: Mode> {
    pub sessions: BTreeMap<Name, Session<M>>,
    pub capabilities: BTreeMap<Name, Capabilities>,
}

impl<M: Mode> Targets<M> {
    /// Opens the targets `names` of `settings` in mode `M` (relative paths resolve against
    /// `root`) and reads them all at once: the slowest target, not the sum of them, sets the
    /// time. The first failure ends the read. HTTP requests are retried as `retry` says.
    pub async fn read(
        settings: &Settings,
        root: &Path,
        names: &[Name],
        retry: RetryPolicy,
        observer: &dyn Observer,
    ) -> Result<(BTreeMap<Name, LiveTarget>, Targets<M>), EngineError> {
        let mut opened = Vec::with_capacity(names.len());
        for name in names {
            opened.push((name.clone(), handle::open::<M>(&settings.targets[name], root, retry)?));
        }
        let capabilities = opened.iter().map(|(n, o)| (n.clone(), o.capabilities().clone())).collect();
        observer.reading(names);
        let reads = opened.into_iter().map(|(name, o)| async move {
            let started = std::time::Instant::now();
            let (t, session) = o.read().await?;
            observer.read_target(&name, &t);
            tracing::info!(
                target_name = %name,
                accounts = t.accounts.len(),
                bindings = t.bindings.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "read target"
            );
            Ok::<_, EngineError>((name, t, session))
        });
        let read = futures_util::future::try_join_all(reads).await?;
        observer.read_done();
        let mut live = BTreeMap::new();
        let mut sessions = BTreeMap::new();
        for (name, t, session) in read {
            live.insert(name.clone(), t);
            sessions.insert(name, session);
        }
        Ok((live, Targets { sessions, capabilities }))
    }

    /// Adds to each drift change a note saying who made the live difference and when, where
    /// its target's audit log tells (see [`crate::provider::Provider::attribute`]).
    pub async fn attribute(&mut self, changes: &mut [Change]) {
        for (name, p) in self.sessions.iter_mut() {
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
                    changes[i].notes.push(crate::plan::Note::Attribution(a));
                }
            }
        }
    }
}

/// The targets picked from a configuration, opened and read.
pub struct Read<M: Mode> {
    pub names: Vec<Name>,
    pub open: Targets<M>,
    pub live: BTreeMap<Name, LiveTarget>,
}

/// Picks, opens and reads the targets of a valid configuration.
pub async fn read_targets<M: Mode>(
    settings: &Settings,
    dir: &Path,
    names: &[String],
    retry: RetryPolicy,
    observer: &dyn Observer,
) -> Result<Read<M>, EngineError> {
    let names = config::select_targets(settings, names)?;
    let (live, open) = Targets::<M>::read(settings, dir, &names, retry, observer).await?;
    Ok(Read { names, open, live })
}

/// Loads the configuration at `dir` and reads the targets named (all when none is), validating
/// the resources while the targets are read: parsing a large configuration and waiting on the
/// targets' answers overlap. The configuration comes first: when it is not valid, that is the
/// error, and what the targets said is not used (reading has no effect on them). Otherwise the
/// configuration is returned with the outcome of the read.
pub async fn load_and_read<M: Mode>(
    dir: &Path,
    names: &[String],
    retry: RetryPolicy,
    observer: &dyn Observer,
) -> Result<(Config, Result<Read<M>, EngineError>), EngineError> {
    let loaded = timed_load(dir)?;
    let report = |d: &[crate::diagnostic::Diagnostic], l: &crate::load::Loaded| observer.diagnostics(d, l);
    let Some(settings) = validate::settings_of(&loaded) else {
        // keyward.yaml has problems: validation reports them.
        let config = validated(dir, loaded, timed_validation, report)?;
        let read = read_targets::<M>(&config.state().settings, dir, names, retry, observer).await;
        return Ok((config, read));
    };
    let validation = tokio::task::spawn_blocking(move || {
        let v = timed_validation(&loaded);
        (loaded, v)
    });
    let (validation, read) = tokio::join!(validation, read_targets::<M>(&settings, dir, names, retry, observer));
    // Validation never panics; if it did, the panic is raised here as it would have been inline.
    let (loaded, validation) = validation.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let config = validated(dir, loaded, |_| validation, report)?;
    Ok((config, read))
}
