//! OpenMetrics text of a drift check, for `keyward drift --metrics-file` (a Prometheus node
//! exporter's textfile collector) and `keyward watch`'s `/metrics`.
//!
//! Guarantees: every metric has `# HELP` and `# TYPE` lines; label values are escaped; the text
//! ends with `# EOF`. Only counts, names of targets and kinds, and times appear: never a value
//! of a live object.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::{Severity, Timestamp};
use crate::plan::Summary;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What one drift check found, as counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriftMetrics {
    /// Whether the last check succeeded.
    pub up: bool,
    /// Drift items by (target, kind).
    pub drift: BTreeMap<(String, String), usize>,
    /// Pending changes by action.
    pub pending: Summary,
    /// Policy findings by severity.
    pub findings: BTreeMap<Severity, usize>,
    /// Live credentials whose end falls within the horizon.
    pub expiring_credentials: usize,
    /// Declared credentials whose current instance is inside its `rotateBefore` window.
    pub rotation_due_credentials: usize,
    /// Declared credentials whose current instance has expired.
    pub expired_credentials: usize,
    /// Credentials issued but never delivered to their sink.
    pub undelivered_credentials: usize,
    /// Assignments in git whose `expires` falls within the horizon.
    pub expiring_assignments: usize,
    /// The horizon of the two counts above, in days.
    pub horizon_days: u32,
    /// When a check last succeeded.
    pub last_success: Option<Timestamp>,
    /// How the last check read each target, by target name (`watch`, and `drift` through the
    /// stored change feeds).
    pub reads: BTreeMap<String, ReadMetrics>,
    /// The detection latency of the last drift item `watch` alerted, by target name.
    pub detection_latency: BTreeMap<String, DetectionLatency>,
}

/// How long after a change `watch` alerted it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DetectionLatency {
    /// Seconds from the change (or the bound, see `attributed`) to the alert.
    pub seconds: f64,
    /// From the change's time as the target's audit log gives it (true), or from the start of
    /// the last successful check before the one that alerted it (false: an upper bound).
    pub attributed: bool,
}

/// How one target was read at a check of `watch` or a run of `drift`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadMetrics {
    /// Through the change feed (true) or in full (false).
    pub incremental: bool,
    /// Requests sent to the target, where its provider counts them.
    pub requests: Option<usize>,
    /// Objects the feed reported changed.
    pub changed: usize,
    /// Seconds since the target was last read in full.
    pub since_full_read: f64,
    /// Cursors the target refused since watching began.
    pub feed_restarts: u64,
    /// Changes the target's feed could not follow since watching began (each read in full; no
    /// cursor was refused).
    pub feed_unfollowed: u64,
    /// Resyncs whose full read differed from the state built from the feed.
    pub feed_mismatches: u64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// Renders the metrics as OpenMetrics text, ending with `# EOF`.
pub fn render(m: &DriftMetrics) -> String {
    let mut out = String::new();
    head(&mut out, "keyward_up", "Whether the last drift check succeeded (1) or failed (0).");
    let _ = writeln!(out, "keyward_up {}", u8::from(m.up));

    head(
        &mut out,
        "keyward_drift_items",
        "Live differences from git found by the last drift check, by target and kind.",
    );
    for ((target, kind), n) in &m.drift {
        let _ = writeln!(out, "keyward_drift_items{{target=\"{}\",kind=\"{}\"}} {n}", escape(target), escape(kind));
    }

    head(&mut out, "keyward_pending_changes", "Changes a plan would make now, by action.");
    let p = &m.pending;
    for (action, n) in [
        ("create", p.create),
        ("update", p.update),
        ("enable", p.enable),
        ("disable", p.disable),
        ("delete", p.delete),
        ("assign", p.assign),
        ("revoke", p.revoke),
        ("rotate", p.rotate),
    ] {
        let _ = writeln!(out, "keyward_pending_changes{{action=\"{action}\"}} {n}");
    }

    head(&mut out, "keyward_policy_findings", "Policy findings of the last check, by severity.");
    for severity in [Severity::Deny, Severity::Warn, Severity::Info] {
        let n = m.findings.get(&severity).copied().unwrap_or(0);
        let _ = writeln!(out, "keyward_policy_findings{{severity=\"{severity}\"}} {n}");
    }

    head(
        &mut out,
        "keyward_expiring_credentials",
        &format!("Live service-account credentials that expire within {} days.", m.horizon_days),
    );
    let _ = writeln!(out, "keyward_expiring_credentials {}", m.expiring_credentials);
    head(
        &mut out,
        "keyward_credentials_needing_rotation",
        "Declared service-account credentials whose current instance is expired or inside its rotateBefore window, or that were issued but never delivered.",
    );
    for (state, n) in [
        ("expired", m.expired_credentials),
        ("rotation-due", m.rotation_due_credentials),
        ("undelivered", m.undelivered_credentials),
    ] {
        let _ = writeln!(out, "keyward_credentials_needing_rotation{{state=\"{state}\"}} {n}");
    }
    head(
        &mut out,
        "keyward_expiring_assignments",
        &format!("Role assignments in git that expire within {} days.", m.horizon_days),
    );
    let _ = writeln!(out, "keyward_expiring_assignments {}", m.expiring_assignments);

    if !m.reads.is_empty() {
        render_reads(&mut out, &m.reads);
    }
    if !m.detection_latency.is_empty() {
        render_latency(&mut out, &m.detection_latency);
    }

    head(
        &mut out,
        "keyward_last_success_timestamp_seconds",
        "When a drift check last succeeded, as a unix timestamp (0: never).",
    );
    let _ =
        writeln!(out, "keyward_last_success_timestamp_seconds {}", m.last_success.map(|t| t.timestamp()).unwrap_or(0));
    out.push_str("# EOF\n");
    out
}

/// One gauge per target: its HELP and TYPE, then a sample for each target `value` gives one.
fn per_target<T>(
    out: &mut String,
    name: &str,
    help: &str,
    by_target: &BTreeMap<String, T>,
    value: impl Fn(&T) -> Option<String>,
) {
    head(out, name, help);
    for (t, v) in by_target {
        if let Some(v) = value(v) {
            let _ = writeln!(out, "{name}{{target=\"{}\"}} {v}", escape(t));
        }
    }
}

fn render_latency(out: &mut String, latency: &BTreeMap<String, DetectionLatency>) {
    per_target(
        out,
        "keyward_detection_latency_seconds",
        "Seconds from a change outside git to its alert, for the last drift item watch alerted (or this drift run reported first) on each target: from the change's time where the target's audit log gives it (keyward_detection_latency_attributed 1), else from the start of the last successful check before the alert, an upper bound (0).",
        latency,
        |l| Some(format!("{:.3}", l.seconds)),
    );
    per_target(
        out,
        "keyward_detection_latency_attributed",
        "Whether keyward_detection_latency_seconds is measured from the change's own time (1) or bounded by the previous check (0).",
        latency,
        |l| Some(u8::from(l.attributed).to_string()),
    );
}

fn render_reads(out: &mut String, reads: &BTreeMap<String, ReadMetrics>) {
    head(
        out,
        "keyward_read_mode",
        "How the last check read each target: through its change feed, or in full (1 for the mode used).",
    );
    for (t, r) in reads {
        let t = escape(t);
        let _ = writeln!(out, "keyward_read_mode{{target=\"{t}\",mode=\"full\"}} {}", u8::from(!r.incremental));
        let _ = writeln!(out, "keyward_read_mode{{target=\"{t}\",mode=\"incremental\"}} {}", u8::from(r.incremental));
    }
    per_target(
        out,
        "keyward_read_requests",
        "Requests the last check sent to each target (targets that count them).",
        reads,
        |r| r.requests.map(|n| n.to_string()),
    );
    per_target(
        out,
        "keyward_read_changed_objects",
        "Objects each target's change feed reported changed at the last check.",
        reads,
        |r| Some(r.changed.to_string()),
    );
    per_target(
        out,
        "keyward_seconds_since_full_read",
        "Seconds since each target was last read in full.",
        reads,
        |r| Some(format!("{:.3}", r.since_full_read)),
    );
    per_target(
        out,
        "keyward_feed_restarts",
        "Change-feed cursors each target refused since watch started (drift: in this run), each followed by a full read.",
        reads,
        |r| Some(r.feed_restarts.to_string()),
    );
    per_target(
        out,
        "keyward_feed_unfollowed",
        "Changes each target's change feed could not follow since watch started (drift: in this run), each followed by a full read (no cursor refused).",
        reads,
        |r| Some(r.feed_unfollowed.to_string()),
    );
    per_target(
        out,
        "keyward_feed_mismatches",
        "Full reads at a resync that differed from the state built from the change feed, since watch started (drift: in this run).",
        reads,
        |r| Some(r.feed_mismatches.to_string()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_has_a_type_and_the_text_ends_with_eof() {
        let mut m = DriftMetrics { up: true, horizon_days: 14, ..Default::default() };
        m.drift.insert(("dir\"ectory".into(), "user".into()), 2);
        m.reads.insert(
            "entra".into(),
            ReadMetrics {
                incremental: true,
                requests: Some(2),
                changed: 3,
                since_full_read: 1.5,
                feed_unfollowed: 4,
                ..Default::default()
            },
        );
        m.detection_latency.insert("entra".into(), DetectionLatency { seconds: 2.25, attributed: true });
        let text = render(&m);
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("keyward_drift_items{target=\"dir\\\"ectory\",kind=\"user\"} 2\n"));
        for line in [
            "keyward_read_mode{target=\"entra\",mode=\"incremental\"} 1",
            "keyward_read_mode{target=\"entra\",mode=\"full\"} 0",
            "keyward_read_requests{target=\"entra\"} 2",
            "keyward_read_changed_objects{target=\"entra\"} 3",
            "keyward_seconds_since_full_read{target=\"entra\"} 1.500",
            "keyward_feed_restarts{target=\"entra\"} 0",
            "keyward_feed_unfollowed{target=\"entra\"} 4",
            "keyward_feed_mismatches{target=\"entra\"} 0",
            "keyward_detection_latency_seconds{target=\"entra\"} 2.250",
            "keyward_detection_latency_attributed{target=\"entra\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} gauge")), "{line}");
        }
    }
}
