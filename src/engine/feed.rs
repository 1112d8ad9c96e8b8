//! Reading targets through their change feeds, for `watch`: the live state of each target is
//! held in memory between checks and brought up to date with what changed since. `drift`
//! carries the states across runs through the state store ([`Feeds::from_stored`],
//! [`Feeds::stored`]; see [`super::drift_stored`]).
//!
//! Guarantees:
//! - a target is read in full on the first check, when its connection settings changed, when
//!   its provider has no feed, when the target refuses the cursor (expired, or reset on its
//!   side: logged, and counted in [`TargetFeed::restarts`]), when the feed cannot follow what
//!   changed (a change to Dataverse business units or roles: logged, and counted apart, in
//!   [`TargetFeed::unfollowed`]), and at least every `resync`;
//! - at a resync, the state held is first brought up to date through the feed and then
//!   compared with the full read (what the feed keeps: accounts, which of them another
//!   directory masters, and bindings with their members; the rest of a live state, such as
//!   service accounts and eligibility, comes from full reads only); where they differ, both
//!   are brought up to date once more (a change made between the two reads is not a
//!   difference) and a difference that remains is logged as an error and counted in
//!   [`TargetFeed::mismatches`]; the full read is kept;
//! - a cursor loaded from the state store that the provider will not follow (a failure of the
//!   round, such as a delta link naming another host) means a full read, counted as a restart:
//!   a stored cursor is not trusted to work at the next run either;
//! - any other failure fails the check as a full read's failure would, and the state held is
//!   kept for the next check.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{EngineError, Observer, Targets};
use crate::model::feed::{self, Cursor};
use crate::model::{LiveTarget, Name, Settings, Target, Timestamp};
use crate::output::metrics::ReadMetrics;
use crate::provider::FeedError;
use crate::provider::handle::{self, Opened, Reading, Session};
use crate::remote::RetryPolicy;
use crate::state::documents::FeedState;

/// How a target was read at the last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// A full read.
    #[default]
    Full,
    /// The changes since the last check, through the target's feed.
    Incremental,
}

impl ReadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Full => "full",
            ReadMode::Incremental => "incremental",
        }
    }
}

/// One target's feed, as the last check left it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetFeed {
    pub mode: ReadMode,
    /// Requests the check sent to the target, where its provider counts them.
    pub requests: Option<usize>,
    /// Objects the feed reported changed (0 after a full read).
    pub changed: usize,
    /// Time since the last full read.
    pub since_full: Duration,
    /// Whether the target has a feed.
    pub has_feed: bool,
    /// Cursors the target refused since watching began (each followed by a full read).
    pub restarts: u64,
    /// Changes the feed could not follow since watching began (each followed by a full read;
    /// the cursor was not refused).
    pub unfollowed: u64,
    /// Resyncs whose full read differed from the state built from the feed.
    pub mismatches: u64,
}

impl TargetFeed {
    /// This read's per-target series of the metrics (`watch`'s `/metrics` and
    /// `drift --metrics-file` alike).
    pub fn metrics(&self) -> ReadMetrics {
        ReadMetrics {
            incremental: self.mode == ReadMode::Incremental,
            requests: self.requests,
            changed: self.changed,
            since_full_read: self.since_full.as_secs_f64(),
            feed_restarts: self.restarts,
            feed_unfollowed: self.unfollowed,
            feed_mismatches: self.mismatches,
        }
    }
}

/// What is held for a target between checks.
struct Held {
    /// The target's settings when it was read (a change means a full read).
    target: Target,
    live: LiveTarget,
    cursor: Cursor,
    last_full: Instant,
    /// Loaded from a stored state older than the resync interval (or dated in the future):
    /// the next check is a resync.
    stale: bool,
    /// Loaded from the state store (not read by this process): a cursor the provider cannot
    /// use is not trusted to work at the next check either, so it means a full read.
    loaded: bool,
}

/// The live states held between checks, by target.
pub struct Feeds {
    resync: Duration,
    held: BTreeMap<Name, Held>,
    report: BTreeMap<Name, TargetFeed>,
    /// States loaded from the state store and the clock's time then, until the first check.
    stored: Option<(BTreeMap<String, FeedState>, Timestamp)>,
}

/// One target's outcome of a check.
struct Outcome {
    live: LiveTarget,
    session: Session<Reading>,
    held: Option<Held>,
    feed: TargetFeed,
}

impl Feeds {
    /// Feeds that read every target in full at least every `resync`.
    pub fn new(resync: Duration) -> Self {
        Feeds { resync, held: BTreeMap::new(), report: BTreeMap::new(), stored: None }
    }

    /// Per target, how the last check read it.
    pub fn report(&self) -> &BTreeMap<Name, TargetFeed> {
        &self.report
    }

    /// [`Feeds::report`] as the metrics' per-target series, by target name.
    pub fn metrics(&self) -> BTreeMap<String, ReadMetrics> {
        self.report.iter().map(|(name, f)| (name.to_string(), f.metrics())).collect()
    }

    /// Reads targets `names` of `settings` (see [`Targets::read`]), through their feeds where
    /// the state held allows it.
    pub async fn read(
        &mut self,
        settings: &Settings,
        root: &Path,
        names: &[Name],
        retry: RetryPolicy,
        observer: &dyn Observer,
    ) -> Result<(BTreeMap<Name, LiveTarget>, Targets<Reading>), EngineError> {
        let now = Instant::now();
        let mut jobs = Vec::with_capacity(names.len());
        for name in names {
            let target = &settings.targets[name];
            let held = match self.held.remove(name) {
                Some(h) => Some(h),
                None => self.take_stored(name, target),
            };
            let held = held.filter(|h| &h.target == target);
            let previous = self.report.get(name).cloned().unwrap_or_default();
            jobs.push((name.clone(), target.clone(), held, previous));
        }
        // Targets no longer checked are forgotten.
        self.held.clear();
        self.stored = None;
        observer.reading(names);
        let resync = self.resync;
        let reads = jobs.into_iter().map(|(name, target, held, previous)| async move {
            let out = read_one(&name, &target, root, retry, held, previous, now, resync).await;
            (name, out)
        });
        let results = futures_util::future::join_all(reads).await;
        let mut live = BTreeMap::new();
        let mut targets = Targets { sessions: BTreeMap::new(), capabilities: BTreeMap::new() };
        let mut first_error = None;
        for (name, result) in results {
            match result {
                Ok(o) => {
                    observer.read_target(&name, &o.live);
                    targets.capabilities.insert(name.clone(), o.session.capabilities().clone());
                    targets.sessions.insert(name.clone(), o.session);
                    if let Some(h) = o.held {
                        self.held.insert(name.clone(), h);
                    }
                    self.report.insert(name.clone(), o.feed);
                    live.insert(name, o.live);
                }
                Err((e, held)) => {
                    if let Some(h) = held {
                        self.held.insert(name.clone(), h);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        self.report.retain(|n, _| names.contains(n));
        if let Some(e) = first_error {
            return Err(e);
        }
        observer.read_done();
        Ok((live, targets))
    }
}

/// A digest of a target's settings (secrets are references, never values, in them).
pub fn settings_digest(target: &Target) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!("{target:?}").as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Feeds {
    /// Feeds holding the states `stored` (by target name, as [`Feeds::stored`] gave them). At
    /// the first check, a target whose settings digest matches its stored state is read
    /// through its feed from it, any other in full; `now` is the clock's time: a state last
    /// read in full `resync` or more before it, or dated after it, makes that check a resync.
    pub fn from_stored(resync: Duration, stored: BTreeMap<String, FeedState>, now: Timestamp) -> Self {
        Feeds { stored: Some((stored, now)), ..Feeds::new(resync) }
    }

    /// The stored state of target `name`, if it was stored with these settings.
    fn take_stored(&mut self, name: &Name, target: &Target) -> Option<Held> {
        let (stored, now) = self.stored.as_mut()?;
        let state = stored.remove(name.as_str())?;
        if state.settings_digest != settings_digest(target) {
            tracing::info!(target_name = %name, "the target's settings changed since its stored state; reading in full");
            return None;
        }
        let age = (*now - state.last_full).to_std().ok();
        let stale = age.is_none_or(|a| a >= self.resync);
        let instant = Instant::now();
        let last_full = age.and_then(|a| instant.checked_sub(a)).unwrap_or(instant);
        Some(Held {
            target: target.clone(),
            live: state.live,
            cursor: Cursor(state.cursor),
            last_full,
            stale,
            loaded: true,
        })
    }

    /// The states held, to be stored ([`Feeds::from_stored`] takes them back); `now` is the
    /// clock's time.
    pub fn stored(&self, now: Timestamp) -> BTreeMap<String, FeedState> {
        let instant = Instant::now();
        self.held
            .iter()
            .map(|(name, h)| {
                let age = chrono::Duration::from_std(instant.duration_since(h.last_full)).unwrap_or_default();
                let state = FeedState {
                    settings_digest: settings_digest(&h.target),
                    last_full: now - age,
                    cursor: h.cursor.0.clone(),
                    live: h.live.clone(),
                    attributions: BTreeMap::new(),
                    checked_at: Some(now),
                    drift: Default::default(),
                };
                (name.to_string(), state)
            })
            .collect()
    }
}

type Failed = (EngineError, Option<Held>);

/// Reads one target: through its feed when `held` allows it, in full otherwise.
#[allow(clippy::too_many_arguments)]
async fn read_one(
    name: &Name,
    target: &Target,
    root: &Path,
    retry: RetryPolicy,
    held: Option<Held>,
    previous: TargetFeed,
    now: Instant,
    resync: Duration,
) -> Result<Outcome, Failed> {
    let open = || handle::open::<Reading>(target, root, retry).map_err(EngineError::from);
    let started = Instant::now();
    let mut feed = TargetFeed {
        restarts: previous.restarts,
        unfollowed: previous.unfollowed,
        mismatches: previous.mismatches,
        ..Default::default()
    };
    let Some(held) = held else {
        let opened = open().map_err(|e| (e, None))?;
        return full(target, opened, now, feed, 0).await.map_err(|e| (e, None));
    };
    let due = held.stale || now.duration_since(held.last_full) >= resync;
    let opened = match open() {
        Ok(o) => o,
        Err(e) => return Err((e, Some(held))),
    };
    match opened.read_changes(&held.cursor, &held.live).await {
        Ok((changes, session)) => {
            let Held { target: held_target, live: mut caught_up, last_full, stale, .. } = held;
            let loaded = false;
            feed::apply(&mut caught_up, &changes.changes, |b| session.binding_fingerprint(b));
            let requests = session.requests().unwrap_or(0);
            if !due {
                feed.mode = ReadMode::Incremental;
                feed.has_feed = true;
                feed.requests = session.requests();
                feed.changed = changes.objects();
                feed.since_full = now.duration_since(last_full);
                tracing::info!(target_name = %name, changed = feed.changed, requests,
                    elapsed_ms = started.elapsed().as_millis() as u64, "read target changes");
                let next = Held {
                    target: held_target,
                    live: caught_up.clone(),
                    cursor: changes.cursor,
                    last_full,
                    stale,
                    loaded,
                };
                return Ok(Outcome { live: caught_up, session, held: Some(next), feed });
            }
            // A resync: the full read must equal the state the feed built, which is held should
            // the full read fail.
            let built = Held { target: held_target, live: caught_up, cursor: changes.cursor, last_full, stale, loaded };
            let opened = match open() {
                Ok(o) => o,
                Err(e) => return Err((e, Some(built))),
            };
            match full(target, opened, now, feed, requests).await {
                Ok(out) => verify(name, target, root, retry, built.live, built.cursor, out).await,
                Err(e) => Err((e, Some(built))),
            }
        }
        Err((FeedError::Unsupported, opened)) => full(target, opened, now, feed, 0).await.map_err(|e| (e, Some(held))),
        Err((FeedError::Expired { message, .. }, opened)) => {
            tracing::warn!(target_name = %name, %message, "the change feed must start again; reading in full");
            feed.restarts += 1;
            full(target, opened, now, feed, 0).await.map_err(|e| (e, Some(held)))
        }
        Err((FeedError::Unfollowed { message, .. }, opened)) => {
            tracing::info!(target_name = %name, %message, "the change feed cannot follow a change; reading in full");
            feed.unfollowed += 1;
            full(target, opened, now, feed, 0).await.map_err(|e| (e, Some(held)))
        }
        // A stored cursor the provider will not follow (one naming another host, say): as a
        // stored state that does not parse, it means a full read.
        Err((FeedError::Read(e), opened)) if held.loaded => {
            tracing::warn!(target_name = %name, error = %e, "the stored change-feed cursor cannot be used; reading in full");
            feed.restarts += 1;
            full(target, opened, now, feed, 0).await.map_err(|e| (e, Some(held)))
        }
        Err((FeedError::Read(e), _)) => Err((e.into(), Some(held))),
    }
}

/// A full read, with a cursor where the target has a feed.
async fn full(
    target: &Target,
    opened: Opened<Reading>,
    now: Instant,
    mut feed: TargetFeed,
    earlier_requests: usize,
) -> Result<Outcome, EngineError> {
    let (live, cursor, session) = opened.read_with_cursor().await?;
    feed.mode = ReadMode::Full;
    feed.has_feed = cursor.is_some();
    feed.requests = session.requests().map(|r| r + earlier_requests);
    feed.changed = 0;
    feed.since_full = Duration::ZERO;
    let held = cursor.map(|cursor| Held {
        target: target.clone(),
        live: live.clone(),
        cursor,
        last_full: now,
        stale: false,
        loaded: false,
    });
    Ok(Outcome { live, session, held, feed })
}

/// Compares a resync's full read (`out`) with the state the feed built (`built`, at
/// `built_cursor`); see the module's guarantees.
async fn verify(
    name: &Name,
    target: &Target,
    root: &Path,
    retry: RetryPolicy,
    built: LiveTarget,
    built_cursor: Cursor,
    mut out: Outcome,
) -> Result<Outcome, Failed> {
    if feed::kept(&built) == feed::kept(&out.live) {
        return Ok(out);
    }
    let Some(read) = out.held.as_ref() else { return Ok(out) };
    // Bring both up to date, so that a change made between the two reads is not counted.
    let catch_up = |live: LiveTarget, cursor: Cursor| async move {
        let opened = handle::open::<Reading>(target, root, retry).ok()?;
        let (changes, session) = opened.read_changes(&cursor, &live).await.ok()?;
        let mut live = live;
        feed::apply(&mut live, &changes.changes, |b| session.binding_fingerprint(b));
        Some((live, session.requests().unwrap_or(0)))
    };
    let read_now = catch_up(read.live.clone(), read.cursor.clone()).await;
    let built_now = catch_up(built.clone(), built_cursor).await;
    let (a, b) = match (&built_now, &read_now) {
        (Some((a, _)), Some((b, _))) => (a, b),
        _ => (&built, &out.live),
    };
    let extra: usize = [&built_now, &read_now].iter().filter_map(|x| x.as_ref().map(|(_, r)| *r)).sum();
    out.feed.requests = out.feed.requests.map(|r| r + extra);
    let differences = feed::differences(a, b);
    if !differences.is_empty() {
        out.feed.mismatches += 1;
        tracing::error!(target_name = %name, differences = %differences.join("; "),
            "the state built from the change feed differs from a full read; the full read is kept");
    }
    Ok(out)
}
