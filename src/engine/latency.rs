//! The detection latency of drift: how long after a change outside git it was alerted (`watch`)
//! or reported (`drift`), for the metrics (`keyward_detection_latency_seconds`).

use std::collections::BTreeMap;

use crate::model::Timestamp;
use crate::output::metrics::DetectionLatency;

/// Audit logs give times to the second (Graph's directory audits, AD's `whenChanged`): an
/// attribution this much before the previous check's start may still be the change it alerts.
pub const AUDIT_TIME_SLACK_SECS: i64 = 1;

/// The detection latency of the last of `alerted` on each target, alerted at `at`: from the
/// change's time where its attribution gives one after `checked_from` (less
/// [`AUDIT_TIME_SLACK_SECS`]; an earlier one names an older change of the same object), else from `checked_from`, the start of the last
/// successful check before (an upper bound: that check did not see the change). Items alerted
/// at the first check, without attribution, have no latency.
pub fn latencies(
    alerted: &[&crate::plan::Change],
    at: Timestamp,
    checked_from: Option<Timestamp>,
) -> BTreeMap<String, DetectionLatency> {
    let mut out = BTreeMap::new();
    for c in alerted {
        let attributed = c.notes.iter().find_map(|n| match n {
            crate::plan::Note::Attribution(a) => Some(a.time),
            crate::plan::Note::Text(_) => None,
        });
        let (from, attributed) = match (attributed, checked_from) {
            (Some(t), Some(bound)) if t >= bound - chrono::Duration::seconds(AUDIT_TIME_SLACK_SECS) => (t, true),
            (Some(t), None) => (t, true),
            (_, Some(bound)) => (bound, false),
            (None, None) => continue,
        };
        let seconds = (at - from).num_milliseconds().max(0) as f64 / 1000.0;
        out.insert(c.address.target.to_string(), DetectionLatency { seconds, attributed });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_latency_is_from_the_change_where_attributed_else_bounded_by_the_previous_check() {
        use crate::plan::{Action, Change, Note, Operation, Reason, ReasonKind, Why};
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let change = |address: &str, changed: Option<&str>| {
            let mut c = Change::new(
                address.parse().unwrap(),
                Action::Update,
                Reason::of(ReasonKind::Drift, Why::AccountMissing),
                Operation::DeleteUser { user_name: "ann".into() },
            );
            c.notes.extend(changed.map(|time| {
                Note::Attribution(crate::model::Attribution {
                    actor: Some("eve@example.com".into()),
                    time: t(time),
                    activity: "Update user".into(),
                })
            }));
            c
        };
        let at = t("2026-12-01T10:00:07Z");
        let previous = Some(t("2026-12-01T10:00:00Z"));
        let attributed = change("entra.user.ann", Some("2026-12-01T10:00:04.500Z"));
        let unattributed = change("ldap.user.ann", None);
        // An audit entry older than the previous check names an older change of the object.
        let stale = change("scim.user.ann", Some("2026-12-01T09:59:58Z"));
        // Audit times are whole seconds: a change just after the previous check started can be
        // logged a moment before it.
        let rounded = change("ad.user.ann", Some("2026-12-01T09:59:59.500Z"));
        let got = latencies(&[&attributed, &unattributed, &stale, &rounded], at, previous);
        assert_eq!(got["ad"], DetectionLatency { seconds: 7.5, attributed: true });
        assert_eq!(got["entra"], DetectionLatency { seconds: 2.5, attributed: true });
        assert_eq!(got["ldap"], DetectionLatency { seconds: 7.0, attributed: false });
        assert_eq!(got["scim"], DetectionLatency { seconds: 7.0, attributed: false });
        // The first check: only an attributed item has a latency; the last item of a target wins.
        let later = change("entra.user.bob", Some("2026-12-01T10:00:06Z"));
        let got = latencies(&[&unattributed, &attributed, &later], at, None);
        assert_eq!(got.len(), 1);
        assert_eq!(got["entra"], DetectionLatency { seconds: 1.0, attributed: true });
    }
}
