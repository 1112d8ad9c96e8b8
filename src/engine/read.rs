//! Opening and reading targets, at the same time as the configuration is validated.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::{self, Config, timed_load, timed_validation, validated};
use super::{EngineError, Observer};
use crate::model::config::Target;
use crate::model::{Capabilities, LiveTarget, Name, Settings, capabilities};
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
    read_targets_against(settings, None, dir, names, retry, observer).await.map(|(read, _)| read)
}

/// [`read_targets`], connecting as `base` says when given (see [`connections_from_base`]):
/// a target whose connection `settings` changed is not opened but taken as empty, with the
/// capabilities of its provider, and is returned in the second list.
pub async fn read_targets_against<M: Mode>(
    settings: &Settings,
    base: Option<&Settings>,
    dir: &Path,
    names: &[String],
    retry: RetryPolicy,
    observer: &dyn Observer,
) -> Result<(Read<M>, Vec<Name>), EngineError> {
    let names = config::select_targets(settings, names)?;
    let (connect, changed) = match base {
        None => (None, Vec::new()),
        Some(base) => {
            let (connect, changed) = connections_from_base(settings, base);
            (Some(connect), changed)
        }
    };
    let offline: Vec<Name> = names.iter().filter(|n| changed.contains(n)).cloned().collect();
    let online: Vec<Name> = names.iter().filter(|n| !offline.contains(n)).cloned().collect();
    let (mut live, mut open) =
        Targets::<M>::read(connect.as_ref().unwrap_or(settings), dir, &online, retry, observer).await?;
    for name in &offline {
        live.insert(name.clone(), LiveTarget::default());
        open.capabilities.insert(name.clone(), capabilities(settings.targets[name].provider()));
    }
    Ok((Read { names, open, live }, offline))
}

/// How to connect under a base revision: `settings` with every target's connection (provider,
/// URLs, tenant, authority, client ids, secret references, `caFile`), the webhook, the state
/// backend and the audit path taken from `base`. A target of `settings` that `base` lacks, or
/// whose connection or `caFile` differ from the base's, is left out of the result and named in
/// the second list: nothing a revision changes decides where keyward sends credentials
/// before that revision is merged.
pub fn connections_from_base(settings: &Settings, base: &Settings) -> (Settings, Vec<Name>) {
    let mut connect = settings.clone();
    let mut changed = Vec::new();
    connect.targets.clear();
    for (name, target) in &settings.targets {
        match base.targets.get(name) {
            Some(b) if b.connection == target.connection && b.ca_file == target.ca_file => {
                connect.targets.insert(name.clone(), Target { users: target.users, ..b.clone() });
            }
            _ => changed.push(name.clone()),
        }
    }
    connect.notify_webhook = base.notify_webhook.clone();
    connect.state = base.state.clone();
    connect.audit_path = base.audit_path.clone();
    (connect, changed)
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
    let (config, read) = load_and_read_against::<M>(dir, None, names, retry, observer).await?;
    Ok((config, read.map(|(read, _)| read)))
}

/// [`load_and_read`], connecting to the targets as `base` says when given (see
/// [`read_targets_against`]); the second list names the targets that were not read because
/// their connection changed.
pub async fn load_and_read_against<M: Mode>(
    dir: &Path,
    base: Option<&Settings>,
    names: &[String],
    retry: RetryPolicy,
    observer: &dyn Observer,
) -> Result<(Config, ReadAgainst<M>), EngineError> {
    let loaded = timed_load(dir)?;
    let report = |d: &[crate::diagnostic::Diagnostic], l: &crate::load::Loaded| observer.diagnostics(d, l);
    let Some(settings) = validate::settings_of(&loaded) else {
        // keyward.yaml has problems: validation reports them.
        let config = validated(dir, loaded, timed_validation, report)?;
        let read = read_targets_against::<M>(&config.state().settings, base, dir, names, retry, observer).await;
        return Ok((config, read));
    };
    let validation = tokio::task::spawn_blocking(move || {
        let v = timed_validation(&loaded);
        (loaded, v)
    });
    let (validation, read) =
        tokio::join!(validation, read_targets_against::<M>(&settings, base, dir, names, retry, observer));
    // Validation never panics; if it did, the panic is raised here as it would have been inline.
    let (loaded, validation) = validation.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let config = validated(dir, loaded, |_| validation, report)?;
    Ok((config, read))
}

/// What [`load_and_read_against`] read: the targets, and those not read because their
/// connection changed.
pub type ReadAgainst<M> = Result<(Read<M>, Vec<Name>), EngineError>;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn settings(yaml: &str) -> Settings {
        let loaded =
            crate::load::load_files(Path::new("/c"), vec![(PathBuf::from("keyward.yaml"), yaml.into())]).unwrap();
        validate::settings_of(&loaded).expect("valid settings")
    }

    const BASE: &str = "version: 1\ntargets:\n  dir:\n    provider: file\n    path: a.json\n  okta:\n    provider: scim\n    url: https://okta.example.com/scim/v2\n    token: ${env:OKTA}\n";

    fn changed(pr: &str) -> Vec<String> {
        let (_, changed) = connections_from_base(&settings(pr), &settings(BASE));
        changed.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn any_change_to_how_a_target_connects_takes_it_offline() {
        assert!(changed(BASE).is_empty());
        // What a target reconciles is the pull request's to say.
        assert!(changed(&BASE.replace("token: ${env:OKTA}", "token: ${env:OKTA}\n    users: with-roles")).is_empty());
        assert_eq!(changed(&BASE.replace("okta.example.com", "evil.example.com")), ["okta"]);
        assert_eq!(changed(&BASE.replace("${env:OKTA}", "${env:PROD_DB_PASSWORD}")), ["okta"]);
        assert_eq!(changed(&BASE.replace("${env:OKTA}", "${env:OKTA}\n    caFile: ca.pem")), ["okta"]);
        assert_eq!(changed(&BASE.replace("path: a.json", "path: b.json")), ["dir"]);
        assert_eq!(
            changed(&format!(
                "{BASE}  new:\n    provider: scim\n    url: https://x.example.com\n    token: ${{env:X}}\n"
            )),
            ["new"]
        );
    }

    #[test]
    fn the_webhook_state_and_audit_path_come_from_the_base() {
        let pr = settings(&format!("{BASE}notify:\n  webhook: ${{env:EVIL}}\naudit:\n  path: elsewhere.jsonl\n"));
        let base = settings(BASE);
        let (connect, _) = connections_from_base(&pr, &base);
        assert_eq!(connect.notify_webhook, base.notify_webhook);
        assert_eq!(connect.audit_path, base.audit_path);
        assert_eq!(connect.state, base.state);
        assert_eq!(connect.targets, base.targets);
    }
}
