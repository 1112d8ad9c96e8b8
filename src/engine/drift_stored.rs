//! `keyward drift` across runs: each target's live state and change-feed cursor are kept in
//! the state store (`feeds.json`, through the backend's document API), and the next run reads
//! through the feed from them (see [`super::feed`] for when a target is read in full).
//!
//! Guarantees:
//! - the stored states are replaced, as one document, only after a check that succeeded; a
//!   failed run leaves them as they were;
//! - a stored document that does not parse is not used: every target is read in full, a
//!   warning says so, and the run replaces it;
//! - `full` reads every target in full (and stores the result);
//! - states of targets this run did not check are kept, those of targets no longer configured
//!   are dropped.

use std::collections::BTreeMap;
use std::time::Duration;

use super::drift::{self, Attempt, DriftSettings};
use super::feed::{Feeds, TargetFeed};
use super::{EngineError, Observer};
use crate::model::Name;
use crate::state::{StateError, documents};

/// How `drift` uses the stored states.
#[derive(Debug, Clone, Copy)]
pub struct StoredFeeds {
    /// Read targets in full when their stored state was last read in full this long ago.
    pub resync: Duration,
    /// Read every target in full.
    pub full: bool,
}

/// A check through the stored feeds: the check, how each target was read, and warnings for
/// the user (a stored state refused, a state that could not be stored).
pub struct StoredCheck {
    pub attempt: Attempt,
    pub reads: BTreeMap<Name, TargetFeed>,
    pub warnings: Vec<String>,
}

/// [`drift::check`], reading targets through their change feeds from the states stored by the
/// last run, and storing the states this run built.
pub async fn check(
    settings: &DriftSettings,
    observer: &dyn Observer,
    options: StoredFeeds,
) -> Result<StoredCheck, EngineError> {
    let store = super::store::open_settings(&settings.dir)?;
    let backend = store.backend().clone();
    let mut warnings = Vec::new();
    let stored = match documents::read::<documents::FeedStates>(&*backend).await {
        Ok(v) => v.value.targets,
        Err(StateError::Corrupt { what, message }) => {
            let w =
                format!("the stored change-feed state {what} does not parse ({message}); reading every target in full");
            tracing::warn!("{w}");
            warnings.push(w);
            BTreeMap::new()
        }
        Err(e) => return Err(e.into()),
    };
    let now = settings.clock.now;
    let mut feeds = Feeds::from_stored(options.resync, if options.full { BTreeMap::new() } else { stored }, now);
    let attempt = drift::check_fed(settings, observer, &mut feeds).await?;
    let reads = feeds.report().clone();
    if attempt.checked.is_ok() {
        let configured = &attempt.config.state().settings.targets;
        let held = feeds.stored(now);
        let saved = documents::update::<documents::FeedStates>(&*backend, |doc| {
            doc.targets
                .retain(|n, _| !reads.keys().any(|r| r.as_str() == n) && configured.keys().any(|c| c.as_str() == n));
            doc.targets.extend(held.clone());
            true
        })
        .await;
        let saved = match saved {
            // A document that does not parse is replaced whole.
            Err(StateError::Corrupt { .. }) => replace(&*backend, held).await,
            other => other.map(drop),
        };
        if let Err(e) = saved {
            let w =
                format!("could not store the change-feed state: {e}; the next run reads from the one stored before");
            tracing::warn!("{w}");
            warnings.push(w);
        }
    }
    Ok(StoredCheck { attempt, reads, warnings })
}

/// Replaces `feeds.json` whole with `held`.
async fn replace(
    backend: &dyn crate::state::StateStore,
    held: BTreeMap<String, documents::FeedState>,
) -> Result<(), StateError> {
    let doc = documents::FeedStates { targets: held };
    let mut bytes = serde_json::to_vec(&doc).expect("feed states serialize");
    bytes.push(b'\n');
    let expect = match backend.doc_get(crate::state::DocName::Feeds).await? {
        Some(d) => crate::state::Expect::Version(d.version),
        None => crate::state::Expect::Absent,
    };
    backend.doc_put(crate::state::DocName::Feeds, &bytes, &expect).await.map(drop)
}
