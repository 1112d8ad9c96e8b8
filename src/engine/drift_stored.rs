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
//! - the metrics say how each target was read, and the detection latency of the drift items
//!   this run reports that the run which stored the target's state did not (each stored state
//!   keeps its drift items and when its run checked).

use std::collections::BTreeMap;
use std::time::Duration;

use super::drift::{self, Attempt, DriftSettings};
use super::feed::{Feeds, TargetFeed};
use super::{EngineError, Observer, latency};
use crate::model::{Attribution, Name};
use crate::plan::{Change, Note, ReasonKind};
use crate::state::{DocName, Expect, StateError, StateStore, Version, documents};

/// The most bytes the stored states may take (the most a state backend reads back of a
/// document: Azure Blob Storage's cap). Larger states are not stored: every run reads in full.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

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
    let (all, version) = load(&*backend, &mut warnings).await?;
    let now = settings.clock.now;
    let stored = if options.full { BTreeMap::new() } else { all.clone() };
    let mut known: BTreeMap<String, BTreeMap<String, Attribution>> =
        stored.iter().map(|(t, s)| (t.clone(), s.attributions.clone())).collect();
    let mut feeds = Feeds::from_stored(options.resync, stored, now);
    let mut attempt = drift::check_fed(settings, observer, &mut feeds).await?;
    let reads = feeds.report().clone();
    if let Ok(checked) = &mut attempt.checked {
        let configured = &attempt.config.state().settings.targets;
        let mut held = feeds.stored(now);
        // Drift items keep who made them, as the run that first saw them found.
        for c in checked.plan.changes.iter_mut().filter(|c| c.reason.kind == ReasonKind::Drift) {
            let target = c.address.target.to_string();
            let key = attribution_key(c);
            let found = c.notes.iter().find_map(|n| match n {
                Note::Attribution(a) => Some(a.clone()),
                Note::Text(_) => None,
            });
            let found = match found {
                Some(a) => Some(a),
                None => {
                    let a = known.get_mut(&target).and_then(|k| k.remove(&key));
                    if let Some(a) = &a {
                        c.notes.push(Note::Attribution(a.clone()));
                    }
                    a
                }
            };
            if let Some(state) = held.get_mut(&target) {
                state.drift.insert(key.clone());
                if let Some(a) = found {
                    state.attributions.insert(key, a);
                }
            }
        }
        checked.metrics.detection_latency = detection_latency(&checked.plan.changes, &all, &reads, now);
        let mut doc = documents::FeedStates { targets: all };
        doc.targets.retain(|n, _| !reads.keys().any(|r| r.as_str() == n) && configured.keys().any(|c| c.as_str() == n));
        doc.targets.extend(held);
        let saved = save(&*backend, &doc, version).await;
        if let Err(e) = saved {
            let w = format!(
                "could not store the change-feed state ({e}); the next run reads from the one stored before, if any"
            );
            tracing::warn!("{w}");
            warnings.push(w);
        }
    }
    Ok(StoredCheck { attempt, reads, warnings })
}

/// The detection latency of the drift items this run reports that the run which stored the
/// state of their target did not (see [`latency::latencies`]: from the change's attributed time,
/// else from when that run checked), by target; the first run of a target measures attributed
/// items only, and a target read without a stored state (in full) none that the stored state
/// already reported.
fn detection_latency(
    changes: &[Change],
    stored: &BTreeMap<String, documents::FeedState>,
    reads: &BTreeMap<Name, TargetFeed>,
    now: crate::model::Timestamp,
) -> BTreeMap<String, crate::output::metrics::DetectionLatency> {
    let mut out = BTreeMap::new();
    // Targets without a feed keep no state between runs: their items are never known as new.
    for name in reads.iter().filter(|(_, r)| r.has_feed).map(|(n, _)| n) {
        let before = stored.get(name.as_str());
        let new: Vec<&Change> = changes
            .iter()
            .filter(|c| c.reason.kind == ReasonKind::Drift && &c.address.target == name)
            .filter(|c| before.is_none_or(|s| !s.drift.contains(&attribution_key(c))))
            .collect();
        out.extend(latency::latencies(&new, now, before.and_then(|s| s.checked_at)));
    }
    out
}

/// A drift item's key among the attributions stored: its address and action.
fn attribution_key(c: &Change) -> String {
    format!("{} {}", c.address, c.action)
}

/// The stored states and the document's version. One that does not parse, or is larger than
/// [`MAX_BYTES`], is not used (a warning says so).
async fn load(
    backend: &dyn StateStore,
    warnings: &mut Vec<String>,
) -> Result<(BTreeMap<String, documents::FeedState>, Option<Version>), EngineError> {
    let mut refuse = |why: String| {
        let w = format!("the stored change-feed state {why}; reading every target in full");
        tracing::warn!("{w}");
        warnings.push(w);
    };
    let what = format!("{} at {}", DocName::Feeds.file_name(), backend.location());
    match backend.doc_get(DocName::Feeds).await {
        Ok(None) => Ok((BTreeMap::new(), None)),
        Ok(Some(doc)) if doc.bytes.len() > MAX_BYTES => {
            refuse(format!("{what} is larger than {MAX_BYTES} bytes"));
            Ok((BTreeMap::new(), Some(doc.version)))
        }
        Ok(Some(doc)) => match serde_json::from_slice::<documents::FeedStates>(&doc.bytes) {
            Ok(v) => Ok((v.targets, Some(doc.version))),
            Err(e) => {
                refuse(format!("{what} does not parse ({e})"));
                Ok((BTreeMap::new(), Some(doc.version)))
            }
        },
        Err(StateError::TooLarge { what, message }) => {
            refuse(format!("{what} cannot be read ({message})"));
            Ok((BTreeMap::new(), None))
        }
        Err(e) => Err(e.into()),
    }
}

/// Replaces the stored states whole with `doc`, if the document is still at `version` (another
/// run that stored first wins) and `doc` is at most [`MAX_BYTES`].
async fn save(backend: &dyn StateStore, doc: &documents::FeedStates, version: Option<Version>) -> Result<(), String> {
    let mut bytes = serde_json::to_vec(doc).expect("feed states serialize");
    bytes.push(b'\n');
    if bytes.len() > MAX_BYTES {
        return Err(format!("it would take {} bytes, more than {MAX_BYTES}", bytes.len()));
    }
    let expect = match version {
        Some(v) => Expect::Version(v),
        None => Expect::Absent,
    };
    backend.doc_put(DocName::Feeds, &bytes, &expect).await.map(drop).map_err(|e| e.to_string())
}
