//! `keyward drift`: a plan that reports what changed outside git, alerts and metrics.
//!
//! Every difference between the live targets and the configuration at HEAD counts as drift
//! (the planner runs with the configuration as its own baseline). Alerts go to
//! `notify.webhook` as `{"text": ...}`, which Slack and Microsoft Teams incoming webhooks both
//! accept; they carry addresses, actions and counts only. The webhook URL is a secret: it is
//! never printed, logged or put in an error.

use std::path::Path;
use std::time::Duration;

use super::plan::write_atomic;
use super::session::{self, Config};
use super::{CliResult, DriftArgs, DriftFormat, Exit, Failure};
use crate::model::{Secret, SecretRef, Timestamp};
use crate::output::metrics::DriftMetrics;
use crate::output::{self, Printer, plan_markdown, plan_text};
use crate::plan::{self, Plan};
use crate::provider::{Access, http};

/// Credentials and assignments that expire within this many days are counted in the metrics.
pub const EXPIRY_HORIZON_DAYS: u32 = 14;

/// The most drift items an alert lists by address.
const ALERT_ITEMS: usize = 20;

/// What one drift check found.
pub struct Checked {
    pub plan: Plan,
    pub metrics: DriftMetrics,
    /// The live state read, and the policy findings over it, for the report `watch` serves.
    pub live: std::collections::BTreeMap<crate::model::Name, crate::model::LiveTarget>,
    pub findings: Vec<crate::policy::Finding>,
}

/// Plans with the configuration as its own baseline, on targets already read, so every change
/// is reported as drift; counts what the metrics show.
pub async fn check(config: &Config, dir: &Path, read: session::Read) -> Result<Checked, Failure> {
    let state = config.state();
    let session::Read { names, mut open, live } = read;
    let now = session::now();
    let undelivered = session::undelivered(state, dir)?;
    let mut changes = session::compute_with_baseline(state, &live, &open.capabilities, now, Some(state), &undelivered)?;
    session::attribute(&mut open, &mut changes).await;
    let plan = plan::assemble(changes, session::config_ref(config, dir), names, now);
    let findings = super::policy::evaluate_config(config, Some(&plan), Some(&live), now);

    let mut m = DriftMetrics {
        up: true,
        pending: plan.summary,
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
    m.undelivered_credentials = live
        .iter()
        .flat_map(|(t, lt)| lt.service_accounts.iter().map(move |s| (t, s)))
        .flat_map(|(t, s)| s.credentials.iter().map(move |c| (t, s, c)))
        .filter(|(t, s, c)| undelivered.iter().any(|u| u.matches(t.as_str(), &s.name, c)))
        .count();
    for (t, lt) in live.iter() {
        for ls in &lt.service_accounts {
            let Some(sa) = state.service_accounts.get(ls.name.as_str()) else { continue };
            for spec in &sa.credentials {
                let current = ls
                    .credentials
                    .iter()
                    .filter(|c| {
                        c.instance_of(spec.name.as_str())
                            && !undelivered.iter().any(|u| u.matches(t.as_str(), &ls.name, c))
                    })
                    .max_by_key(|c| c.start);
                let Some(c) = current else { continue };
                if c.end <= now {
                    m.expired_credentials += 1;
                } else if spec.rotate_before.is_some_and(|w| c.end - now <= w.to_chrono()) {
                    m.rotation_due_credentials += 1;
                }
            }
        }
    }
    Ok(Checked { plan, metrics: m, live, findings })
}

/// Where alerts go: the resolved `notify.webhook`.
pub struct Webhook {
    url: Secret<reqwest::Url>,
    reference: SecretRef,
}

impl Webhook {
    /// Resolves `notify.webhook`; `None` when keyward.yaml has none. Errors name the reference,
    /// never the URL.
    pub fn from_config(config: &Config, dir: &Path) -> Result<Option<Webhook>, Failure> {
        let Some(reference) = config.state().settings.notify_webhook.clone() else { return Ok(None) };
        let raw = http::resolve_secret(&reference, dir).map_err(|e| Failure::error(format!("notify.webhook: {e}")))?;
        let url = reqwest::Url::parse(raw.expose().trim())
            .map_err(|_| Failure::error(format!("notify.webhook ({reference}) is not a URL")))?;
        // http::check_url names the URL in its message: keep only the verdict.
        if http::check_url(&url).is_err() {
            return Err(Failure::error(format!(
                "notify.webhook ({reference}) must be an https URL (plain http only to a loopback address)"
            )));
        }
        Ok(Some(Webhook { url: Secret::new(url), reference }))
    }

    /// Posts `{"text": text}`.
    pub async fn post(&self, text: &str) -> Result<(), Failure> {
        let fail =
            |m: String| Failure::error(format!("cannot send the alert to notify.webhook ({}): {m}", self.reference));
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

/// The text of an alert about drift items (address, action, reason kind).
pub fn alert_text(dir: &Path, changes: &[&plan::Change]) -> String {
    let total = changes.len();
    let targets: std::collections::BTreeSet<String> = changes.iter().map(|c| c.address.target.to_string()).collect();
    let mut text = format!(
        "keyward: {total} live difference{} from git in {} (target{} {}): access was changed outside git.",
        if total == 1 { "" } else { "s" },
        dir.display(),
        if targets.len() == 1 { "" } else { "s" },
        targets.into_iter().collect::<Vec<_>>().join(", ")
    );
    for c in changes.iter().take(ALERT_ITEMS) {
        text.push_str(&format!("\n- {} {} ({})", c.action, c.address, c.reason.kind));
        for n in c.notes.iter().filter(|n| crate::provider::Attribution::is_note(n)) {
            text.push_str(&format!(": {n}"));
        }
    }
    if total > ALERT_ITEMS {
        text.push_str(&format!("\n- ... and {} more; run `keyward drift` for all of them", total - ALERT_ITEMS));
    }
    text
}

/// The text of an alert about a failed drift check.
pub fn failure_text(dir: &Path, message: &str) -> String {
    format!("keyward: the drift check of {} failed: {message}", dir.display())
}

/// The last success time a previous metrics file recorded, to carry it over a failed check.
fn previous_success(path: &Path) -> Option<Timestamp> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with("keyward_last_success_timestamp_seconds "))?;
    let secs: i64 = line.rsplit(' ').next()?.parse().ok()?;
    chrono::DateTime::from_timestamp(secs, 0).filter(|_| secs > 0)
}

fn write_metrics(path: &Path, m: &DriftMetrics) -> Result<(), Failure> {
    write_atomic(path, &output::metrics::render(m))
}

pub async fn run(args: DriftArgs, printer: &Printer) -> CliResult {
    let select = |s: &_| session::select_targets(s, &args.targets);
    let (config, read) = session::load_and_read(&args.dir, printer, Access::Read, select).await?;
    let webhook = if args.notify {
        let w = Webhook::from_config(&config, &args.dir)?;
        if w.is_none() {
            return Err(Failure::error("--notify needs notify.webhook in keyward.yaml"));
        }
        w
    } else {
        None
    };
    let checked = match async { check(&config, &args.dir, read?).await }.await {
        Ok(c) => c,
        Err(f) => {
            if let Some(path) = &args.metrics_file {
                let m = DriftMetrics {
                    horizon_days: EXPIRY_HORIZON_DAYS,
                    last_success: previous_success(path),
                    ..Default::default()
                };
                if let Err(e) = write_metrics(path, &m) {
                    printer.err(&format!("warning: {}\n", e.message));
                }
            }
            if let Some(w) = &webhook
                && let Err(e) = w.post(&failure_text(&args.dir, &f.message)).await
            {
                printer.err(&format!("warning: {}\n", e.message));
            }
            return Err(f);
        }
    };
    if let Some(path) = &args.metrics_file {
        write_metrics(path, &checked.metrics)?;
    }
    let plan = &checked.plan;
    match args.format {
        DriftFormat::Text => printer.out(&render_text(plan, printer.color_out)),
        DriftFormat::Json => printer.out(&output::plan_json(plan)),
        DriftFormat::Markdown => {
            let text = plan_markdown::render(plan, plan_markdown::MAX_CHARS);
            printer.out(&text.replacen("### keyward plan", "### keyward drift", 1));
        }
    }
    if plan.is_empty() {
        return Ok(Exit::Success);
    }
    if let Some(w) = &webhook {
        let items: Vec<&plan::Change> = plan.changes.iter().collect();
        w.post(&alert_text(&args.dir, &items)).await?;
        printer.status("Sent the drift alert to notify.webhook.");
    }
    Ok(Exit::Changes)
}

fn render_text(plan: &Plan, color: bool) -> String {
    if plan.is_empty() {
        return "No drift. The live targets match the configuration.\n".to_string();
    }
    let mut out = format!(
        "Drift: {} live difference{} from the configuration (changed outside git, or not applied yet).\n\n",
        plan.changes.len(),
        if plan.changes.len() == 1 { "" } else { "s" }
    );
    let heading = "To bring the targets back to the configuration, `keyward apply` would make these changes:";
    out.push_str(&plan_text::render_with_heading(plan, plan_text::TextOptions { color }, heading));
    out
}

/// Parses an interval: a whole number and a unit, `ms`, `s`, `m` or `h` (`5m`, `30s`).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not an interval such as 30s, 5m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?} is not an interval such as 30s, 5m or 1h (units: ms, s, m, h)")),
    };
    if d.is_zero() {
        return Err("the interval must be longer than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5").is_err());
        assert!(parse_interval("m").is_err());
    }
}
