//! `drift`: a plan that reports what changed outside git, alerts and metrics.
//!
//! Drift is every difference between a live target and the configuration it was last applied
//! from: the commit the last completed apply to that target recorded in the state, read from
//! git. What was merged since that commit is pending: listed apart, counted apart in the
//! metrics, never alerted. With no applied commit recorded, or one git no longer has, the
//! target is compared with the configuration at HEAD, and [`Against`] says so. Alerts go to
//! `notify.webhook` as `{"text": ...}`, which Slack and Microsoft Teams incoming webhooks both
//! accept; they carry addresses, actions and counts only. The webhook URL is a secret: it is
//! never printed, logged or put in an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::read::{self, Read};
use super::store::Store;
use super::{Clock, Config, EngineError, Observer};
use std::collections::BTreeMap;

use crate::model::escape::webhook_code;
use crate::model::lifecycle::{self, CredentialStatus};
use crate::model::{
    DesiredState, LiveCredential, LiveTarget, Name, Secret, SecretRef, Timestamp, UndeliveredCredential,
};
use crate::output::metrics::DriftMetrics;
use crate::plan::{self, Change, Plan};
use crate::provider::handle::Reading;
use crate::remote::RetryPolicy;
use crate::remote::http;

/// Credentials and assignments that expire within this many days are counted in the metrics.
pub const EXPIRY_HORIZON_DAYS: u32 = 14;

/// The most drift items an alert lists by address.
const ALERT_ITEMS: usize = 20;

/// What `drift` needs.
#[derive(Debug, Clone)]
pub struct DriftSettings {
    pub dir: PathBuf,
    pub clock: Clock,
    /// How requests to the targets are retried.
    pub retry: RetryPolicy,
    /// Check only these targets (all when empty).
    pub targets: Vec<String>,
}

/// A drift check whose configuration loaded: the configuration, and the outcome of reading
/// and planning (a failure there is still a check that can be alerted with the configuration's
/// webhook).
pub struct Attempt {
    pub config: Config,
    pub checked: Result<Checked, EngineError>,
}

/// What one drift check found: the drift as a plan (live against the configuration each target
/// was last applied from), the pending changes (merged since, not applied yet), what each
/// target was compared with, the metrics, and the live state and policy findings it was
/// computed from (for the report `watch` serves).
pub struct Checked {
    pub plan: Plan,
    /// What the configuration at HEAD asks for beyond the drift: merged, not applied yet.
    pub pending: Vec<Change>,
    /// Per target read, the configuration its live state was compared with.
    pub against: BTreeMap<Name, Against>,
    pub metrics: DriftMetrics,
    pub live: BTreeMap<Name, LiveTarget>,
    pub findings: Vec<crate::policy::Finding>,
    /// Pinned roles whose live contents left their snapshot (`contents.pinned-drift`
    /// findings, also in `findings`): drift keyward cannot undo, so it reports it.
    pub contents: Vec<crate::policy::Finding>,
}

/// The configuration a target's live state is compared with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Against {
    /// The configuration at the commit last applied to the target completely.
    Applied { commit: String },
    /// The configuration as it is now, because no usable applied commit is known.
    Head { why: NoApplied },
}

/// Why a target is compared with the configuration as it is now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoApplied {
    /// No completed apply to the target is recorded in the state.
    NeverApplied,
    /// The last apply was recorded without a commit (the folder was not a git repository).
    NoCommit,
    /// The last apply was made from uncommitted changes to `commit`.
    Uncommitted { commit: String },
    /// Git does not have the commit any more, or it does not hold a valid configuration.
    Unreadable { commit: String, message: String },
}

impl std::fmt::Display for Against {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Against::Applied { commit } => write!(f, "the configuration last applied, commit {}", short(commit)),
            Against::Head { why } => {
                f.write_str("the configuration at HEAD (")?;
                match why {
                    NoApplied::NeverApplied => f.write_str("no completed apply is recorded yet")?,
                    NoApplied::NoCommit => f.write_str("the last apply recorded no git commit")?,
                    NoApplied::Uncommitted { commit } => {
                        write!(f, "the last apply was of uncommitted changes to {}", short(commit))?
                    }
                    NoApplied::Unreadable { commit, message } => {
                        write!(f, "the last applied commit {} cannot be read from git: {message}", short(commit))?
                    }
                }
                f.write_str("; merged changes not applied yet count as drift)")
            }
        }
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Loads, reads, and compares. An error is returned only when the configuration cannot be
/// loaded; reading and planning failures are in [`Attempt::checked`].
pub async fn check(settings: &DriftSettings, observer: &dyn Observer) -> Result<Attempt, EngineError> {
    let (config, read) =
        read::load_and_read::<Reading>(&settings.dir, &settings.targets, settings.retry, observer).await?;
    let checked = match read {
        Ok(read) => check_read(&config, &settings.dir, settings.clock, read).await,
        Err(e) => Err(e),
    };
    Ok(Attempt { config, checked })
}

/// [`check`], reading the targets through their change feeds where `feeds` holds their
/// state (see [`super::feed`]); for `watch` and `drift`. Validation runs before the read. The
/// metrics say how each target was read ([`super::feed::Feeds::metrics`]).
pub async fn check_fed(
    settings: &DriftSettings,
    observer: &dyn Observer,
    feeds: &mut super::feed::Feeds,
) -> Result<Attempt, EngineError> {
    let loaded = super::config::timed_load(&settings.dir)?;
    let config = super::config::validated(&settings.dir, loaded, super::config::timed_validation, |d, l| {
        observer.diagnostics(d, l)
    })?;
    let target_settings = &config.state().settings;
    let read = match super::config::select_targets(target_settings, &settings.targets) {
        Ok(names) => feeds
            .read(target_settings, &settings.dir, &names, settings.retry, observer)
            .await
            .map(|(live, open)| Read { names, open, live }),
        Err(e) => Err(e),
    };
    let checked = match read {
        Ok(read) => check_read(&config, &settings.dir, settings.clock, read).await.map(|mut c| {
            c.metrics.reads = feeds.metrics();
            c
        }),
        Err(e) => Err(e),
    };
    Ok(Attempt { config, checked })
}

/// What each target is compared with: the commit its last completed apply recorded, read from
/// git; HEAD when there is none or git cannot give it. Returns the desired states by commit.
async fn baselines(
    config: &Config,
    store: &Store,
    dir: &Path,
    names: &[Name],
) -> Result<(BTreeMap<Name, Against>, BTreeMap<String, DesiredState>), EngineError> {
    let applied = super::applied::last_applied(config.state(), store).await?;
    let head = crate::load::commit_of(dir);
    let mut against = BTreeMap::new();
    let mut states: BTreeMap<String, DesiredState> = BTreeMap::new();
    let mut unreadable: BTreeMap<String, String> = BTreeMap::new();
    for name in names {
        let a = match applied.get(name.as_str()) {
            None => Against::Head { why: NoApplied::NeverApplied },
            Some(r) => match (r.completed(), r.commit.as_deref()) {
                (None, None) if r.status == crate::state::ApplyStatus::Completed => {
                    Against::Head { why: NoApplied::NoCommit }
                }
                (None, _) => Against::Head { why: NoApplied::NeverApplied },
                (Some(c), _) if c.ends_with("-dirty") => {
                    Against::Head { why: NoApplied::Uncommitted { commit: c.trim_end_matches("-dirty").into() } }
                }
                (Some(c), _) if head.as_deref() == Some(c) || states.contains_key(c) => {
                    Against::Applied { commit: c.to_string() }
                }
                (Some(c), _) => match unreadable.get(c) {
                    Some(message) => {
                        Against::Head { why: NoApplied::Unreadable { commit: c.to_string(), message: message.clone() } }
                    }
                    None => match state_at(dir, c) {
                        Ok(s) => {
                            states.insert(c.to_string(), s);
                            Against::Applied { commit: c.to_string() }
                        }
                        Err(message) => {
                            unreadable.insert(c.to_string(), message.clone());
                            Against::Head { why: NoApplied::Unreadable { commit: c.to_string(), message } }
                        }
                    },
                },
            },
        };
        against.insert(name.clone(), a);
    }
    Ok((against, states))
}

/// The desired state of the configuration at `commit`, or why git cannot give it.
fn state_at(dir: &Path, commit: &str) -> Result<DesiredState, String> {
    let loaded = crate::load::load_revision(dir, commit).map_err(|e| e.to_string())?;
    let validated = crate::validate::validate(&loaded);
    match validated.state {
        Some(s) if !validated.has_errors() => Ok(s),
        _ => Err(format!(
            "it is not a valid configuration ({})",
            crate::output::diagnostics::tally(&validated.diagnostics)
        )),
    }
}

/// Compares targets already read: with the configuration each was last applied from (drift),
/// and with HEAD (what was merged since is pending); counts what the metrics show.
pub async fn check_read(
    config: &Config,
    dir: &Path,
    clock: Clock,
    read: Read<Reading>,
) -> Result<Checked, EngineError> {
    let state = config.state();
    let Read { names, mut open, mut live } = read;
    let now = clock.now;
    let store = Store::open(state, dir)?;
    super::applied::add_unkept(&store, &mut live).await?;
    let undelivered = store.undelivered().await?;
    let pinned = super::contents::prepare(state, dir, &mut open.sessions, &mut live).await?;
    let (against, states) = baselines(config, &store, dir, &names).await?;

    // Drift: per commit compared with, the live targets against that configuration.
    let mut groups: BTreeMap<Option<&str>, BTreeMap<Name, LiveTarget>> = BTreeMap::new();
    for (name, lt) in &live {
        let key = match against.get(name) {
            Some(Against::Applied { commit }) if states.contains_key(commit) => Some(commit.as_str()),
            _ => None,
        };
        groups.entry(key).or_default().insert(name.clone(), lt.clone());
    }
    let mut drift = Vec::new();
    for (commit, part) in &groups {
        let base = commit.and_then(|c| states.get(c)).unwrap_or(state);
        let changes = super::plan::compute(base, part, &open.capabilities, now, Some(base), &undelivered, None)
            .map_err(|errors| match commit {
                Some(rev) => EngineError::BasePlan { rev: rev.to_string(), errors },
                None => EngineError::Plan { errors },
            })?;
        drift.extend(changes);
    }
    open.attribute(&mut drift).await;

    // Pending: what HEAD's plan holds beyond the drift.
    let head_changes = super::plan::compute(state, &live, &open.capabilities, now, None, &undelivered, None)
        .map_err(|errors| EngineError::Plan { errors })?;
    let split = super::plan::split(&head_changes, &drift, "applied");
    let pending: Vec<Change> = head_changes
        .iter()
        .filter(|c| split.sections.get(&c.address.to_string()) != Some(&plan::Section::Drift))
        .cloned()
        .collect();

    let reference = config.reference(dir);
    let head_plan = plan::assemble(head_changes, reference.clone(), names.clone(), now);
    let mut plan = plan::assemble(drift, reference, names, now);
    // What the plan notes (accounts another directory masters, ...) is noted here too.
    plan.notices = plan::notices(state, &live, &open.capabilities);
    plan.notices.extend(plan::held_notices(&plan::PlanInput {
        desired: state,
        live: &live,
        capabilities: &open.capabilities,
        now,
        baseline: None,
        undelivered: &undelivered,
        previous: None,
    }));
    let live_state = super::policy::Live { targets: &live, undelivered: &undelivered, pinned: &pinned };
    let findings = super::policy::evaluate_config(config, Some(&head_plan), Some(live_state), now);

    let mut m = DriftMetrics {
        up: true,
        pending: plan::Summary::of(&pending),
        horizon_days: EXPIRY_HORIZON_DAYS,
        last_success: Some(now),
        ..Default::default()
    };
    for c in &plan.changes {
        *m.drift.entry((c.address.target.to_string(), c.address.kind.to_string())).or_default() += 1;
    }
    for f in &findings {
        *m.findings.entry(f.severity).or_default() += 1;
    }
    let horizon = now + chrono::Duration::days(i64::from(EXPIRY_HORIZON_DAYS));
    let soon = |t: Timestamp| t > now && t <= horizon;
    m.expiring_credentials =
        live.values().flat_map(|t| &t.service_accounts).flat_map(|s| &s.credentials).filter(|c| soon(c.end)).count();
    let grants =
        state.users.values().flat_map(|u| &u.roles).chain(state.service_accounts.values().flat_map(|s| &s.roles));
    m.expiring_assignments = grants.filter_map(|g| g.expires()).filter(|d| soon(d.end())).count();
    let counts = credential_counts(state, &live, &undelivered, now);
    m.undelivered_credentials = counts.undelivered;
    m.expired_credentials = counts.expired;
    m.rotation_due_credentials = counts.rotation_due;
    let contents =
        findings.iter().filter(|f| f.rule == crate::policy::Rule::ContentsPinnedDrift.id()).cloned().collect();
    Ok(Checked { plan, pending, against, metrics: m, live, findings, contents })
}

/// Declared credentials by where their current instance stands, and live instances issued
/// but never delivered (see [`crate::model::lifecycle`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CredentialCounts {
    pub expired: usize,
    pub rotation_due: usize,
    pub undelivered: usize,
}

/// Counts the declared credentials of `state` on the live targets: expired or due for rotation
/// (by their current instance), and the instances nobody received.
pub fn credential_counts(
    state: &DesiredState,
    live: &BTreeMap<Name, LiveTarget>,
    undelivered: &[UndeliveredCredential],
    now: Timestamp,
) -> CredentialCounts {
    let mut counts = CredentialCounts::default();
    for (t, lt) in live {
        for ls in &lt.service_accounts {
            let lost = |c: &LiveCredential| lifecycle::is_undelivered(undelivered, t.as_str(), &ls.name, c);
            counts.undelivered += ls.credentials.iter().filter(|c| lost(c)).count();
            let Some(sa) = state.service_accounts.get(ls.name.as_str()) else { continue };
            for spec in &sa.credentials {
                let current = lifecycle::current_instance(spec, &ls.credentials, &lost);
                match lifecycle::status(spec, current, now) {
                    CredentialStatus::Expired => counts.expired += 1,
                    CredentialStatus::RotationDue => counts.rotation_due += 1,
                    CredentialStatus::Missing | CredentialStatus::Valid => {}
                }
            }
        }
    }
    counts
}

/// The metrics of a failed check: down, with the last success a previous metrics file at
/// `previous` recorded (if any).
pub fn failed_metrics(previous: Option<&Path>) -> DriftMetrics {
    DriftMetrics {
        horizon_days: EXPIRY_HORIZON_DAYS,
        last_success: previous.and_then(previous_success),
        ..Default::default()
    }
}

/// The last success time a previous metrics file recorded, to carry it over a failed check.
fn previous_success(path: &Path) -> Option<Timestamp> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with("keyward_last_success_timestamp_seconds "))?;
    let secs: i64 = line.rsplit(' ').next()?.parse().ok()?;
    chrono::DateTime::from_timestamp(secs, 0).filter(|_| secs > 0)
}

/// Writes OpenMetrics text for a node exporter's textfile collector, atomically.
pub fn write_metrics(path: &Path, m: &DriftMetrics) -> Result<(), EngineError> {
    crate::atomic::write(path, crate::output::metrics::render(m).as_bytes(), crate::atomic::Access::Shared)
        .map_err(EngineError::io("write", path))
}

/// Why an alert could not be sent, or the webhook not be used. Never holds the URL.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("notify.webhook: {0}")]
    Unresolved(#[source] http::SecretError),
    #[error("notify.webhook ({reference}) is not a URL")]
    NotAUrl { reference: SecretRef },
    #[error("notify.webhook ({reference}) must be an https URL (plain http only to a loopback address)")]
    NotHttps { reference: SecretRef },
    #[error("--notify needs notify.webhook in keyward.yaml")]
    Missing,
    #[error("cannot send the alert to notify.webhook ({reference}): {message}")]
    Send { reference: SecretRef, message: String },
}

/// Where alerts go: the resolved `notify.webhook`.
pub struct Webhook {
    url: Secret<reqwest::Url>,
    reference: SecretRef,
}

impl Webhook {
    /// Resolves `notify.webhook`; `None` when keyward.yaml has none. Errors name the reference,
    /// never the URL.
    pub fn from_config(config: &Config, dir: &Path) -> Result<Option<Webhook>, WebhookError> {
        let Some(reference) = config.state().settings.notify_webhook.clone() else { return Ok(None) };
        let raw = http::resolve_secret(&reference, dir).map_err(WebhookError::Unresolved)?;
        let Ok(url) = reqwest::Url::parse(raw.expose().trim()) else {
            return Err(WebhookError::NotAUrl { reference });
        };
        // http::check_url names the URL in its message: keep only the verdict.
        if http::check_url(&url).is_err() {
            return Err(WebhookError::NotHttps { reference });
        }
        Ok(Some(Webhook { url: Secret::new(url), reference }))
    }

    /// Posts `{"text": text}`.
    pub async fn post(&self, text: &str) -> Result<(), WebhookError> {
        let fail = |message: String| WebhookError::Send { reference: self.reference.clone(), message };
        let client = http::client(None, Duration::from_secs(15)).map_err(|e| fail(e.to_string()))?;
        let resp = client
            .post(self.url.expose().clone())
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .map_err(|e| fail(http::error_chain(&e.without_url())))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(fail(format!("the webhook answered {status}")));
        }
        Ok(())
    }
}

/// The text of an alert about drift items (address, action, reason kind). Every value from
/// outside (the folder, addresses, who made a change) is shown through
/// [`webhook_code`], so it cannot ping a channel, link, or forge a line in Slack or Teams.
pub fn alert_text(dir: &Path, changes: &[&Change]) -> String {
    let total = changes.len();
    let targets: std::collections::BTreeSet<String> = changes.iter().map(|c| c.address.target.to_string()).collect();
    let mut text = format!(
        "keyward: {total} live difference{} from git in {} (target{} {}): access was changed outside git.",
        if total == 1 { "" } else { "s" },
        webhook_code(&dir.display().to_string()),
        if targets.len() == 1 { "" } else { "s" },
        targets.into_iter().collect::<Vec<_>>().join(", ")
    );
    for c in changes.iter().take(ALERT_ITEMS) {
        text.push_str(&format!("\n- {} {} ({})", c.action, webhook_code(&c.address.to_string()), c.reason.kind));
        for n in c.notes.iter().filter(|n| n.is_attribution()) {
            text.push_str(&format!(": {}", webhook_code(&n.to_string())));
        }
    }
    if total > ALERT_ITEMS {
        text.push_str(&format!("\n- ... and {} more; run `keyward drift` for all of them", total - ALERT_ITEMS));
    }
    text
}

/// The text of an alert about pinned roles whose live contents changed (the findings'
/// addresses only, through [`webhook_code`]).
pub fn contents_alert_text(dir: &Path, findings: &[crate::policy::Finding]) -> String {
    let mut text = format!(
        "keyward: the contents of {} pinned role{} in {} changed outside git.",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        webhook_code(&dir.display().to_string())
    );
    for f in findings.iter().take(ALERT_ITEMS) {
        text.push_str(&format!("\n- {}", webhook_code(&f.address)));
    }
    if findings.len() > ALERT_ITEMS {
        text.push_str(&format!(
            "\n- ... and {} more; run `keyward drift` for all of them",
            findings.len() - ALERT_ITEMS
        ));
    }
    text
}

/// The text of an alert about a failed drift check.
pub fn failure_text(dir: &Path, message: &str) -> String {
    format!(
        "keyward: the drift check of {} failed: {}",
        webhook_code(&dir.display().to_string()),
        webhook_code(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;
    use crate::policy::Finding;

    /// The alert names the pinned roles by address, escaped, and stops after [`ALERT_ITEMS`].
    #[test]
    fn a_contents_alert_names_the_roles_only() {
        let finding = |role: &str| {
            Finding::new("contents.pinned-drift", Severity::Deny, format!("role.{role}"), "privilege `<@here>` added")
        };
        let text = contents_alert_text(Path::new("access"), &[finding("sales-rep")]);
        assert_eq!(text, "keyward: the contents of 1 pinned role in `access` changed outside git.\n- `role.sales-rep`");
        assert!(!text.contains("@here"), "the message is not in the alert");
        let many: Vec<Finding> = (0..ALERT_ITEMS + 2).map(|i| finding(&format!("r{i}"))).collect();
        let text = contents_alert_text(Path::new("access"), &many);
        assert!(text.ends_with("- ... and 2 more; run `keyward drift` for all of them"), "{text}");
    }
}
