//! The end of an apply: what was applied, what failed and why.

use crate::apply::ApplyReport;
use crate::audit::Outcome;
use crate::model::escape::Term;

use super::{paint, styles};

/// `Apply complete! N changes applied.`, or the counts and every change not applied. Changes
/// whose live object changed since the plan are counted apart: they need a new plan, not a
/// re-run of this one.
pub fn render(report: &ApplyReport, color: bool) -> String {
    let applied = report.count(Outcome::Applied);
    let failed: Vec<_> = report.outcomes.iter().filter(|o| o.outcome != Outcome::Applied).collect();
    if failed.is_empty() {
        let line = format!("Apply complete! {applied} changes applied.");
        return format!("{}\n", paint(color, styles::GREEN.bold(), &line));
    }
    let mut msg = format!(
        "Apply incomplete: {applied} applied, {} failed, {} skipped.",
        report.count(Outcome::Failed),
        report.count(Outcome::Skipped)
    );
    let (conflicts, lasting) = (report.conflicts(), report.lasting());
    if conflicts > 0 {
        msg.push_str(&format!(
            " {conflicts} of the failed changed on the target since the plan: plan again and review the new plan."
        ));
    }
    if lasting > 0 {
        msg.push_str(&format!(
            " {lasting} of the failed will not converge however often apply runs: the target does not do what they ask (see each)."
        ));
    }
    if conflicts == 0 && lasting < failed.len() {
        msg.push_str(" Fix the cause and run apply again; it converges.");
    }
    msg.push('\n');
    for o in failed {
        msg.push_str(&format!(
            "  - {} ({}): {}\n",
            Term(&o.address),
            Term(&o.action),
            Term(o.error.as_deref().unwrap_or("failed"))
        ));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{CONFLICT, ChangeOutcome, WILL_NOT_CONVERGE};

    fn outcome(address: &str, outcome: Outcome, error: Option<&str>, conflict: bool) -> ChangeOutcome {
        ChangeOutcome {
            address: address.into(),
            action: "update".into(),
            outcome,
            error: error.map(String::from),
            conflict,
        }
    }

    #[test]
    fn conflicts_are_counted_apart_and_ask_for_a_new_plan() {
        let report = ApplyReport {
            outcomes: vec![
                outcome("t.user.alice", Outcome::Applied, None, false),
                outcome(
                    "t.user.bob",
                    Outcome::Failed,
                    Some(&format!("{CONFLICT}: account bob no longer exists")),
                    true,
                ),
                outcome("t.user.carol", Outcome::Failed, Some("HTTP 500 Internal Server Error"), false),
            ],
        };
        insta::assert_snapshot!(render(&report, false), @r"
        Apply incomplete: 1 applied, 2 failed, 0 skipped. 1 of the failed changed on the target since the plan: plan again and review the new plan.
          - t.user.bob (update): changed since the plan; plan again: account bob no longer exists
          - t.user.carol (update): HTTP 500 Internal Server Error
        ");
        let without = ApplyReport { outcomes: vec![report.outcomes[2].clone()] };
        assert!(render(&without, false).contains("Fix the cause and run apply again; it converges."));
    }

    #[test]
    fn changes_a_rerun_cannot_make_are_said_not_to_converge() {
        let error = format!("{WILL_NOT_CONVERGE}: user dan: the service answered the update without `jobTitle`");
        let lasting = outcome("t.user.dan", Outcome::Failed, Some(&error), false);
        let text = render(&ApplyReport { outcomes: vec![lasting.clone()] }, false);
        assert!(text.contains("1 of the failed will not converge however often apply runs"), "{text}");
        assert!(!text.contains("it converges"), "{text}");
        let other = outcome("t.user.carol", Outcome::Failed, Some("HTTP 500 Internal Server Error"), false);
        let text = render(&ApplyReport { outcomes: vec![lasting, other] }, false);
        assert!(text.contains("will not converge") && text.contains("it converges."), "{text}");
    }
}
