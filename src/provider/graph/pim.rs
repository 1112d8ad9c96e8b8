//! Privileged Identity Management on the wire (docs/reference/graph.md §3): eligibility
//! schedules of directory roles and of group membership, the schedule requests that make and
//! end them, and the activation rules of role management policies.
//!
//! Pure conversions between Graph's JSON and [`ActivationRules`] / schedules; the provider
//! does the calls.

use serde_json::{Value, json};

use super::wire::date_time;
use crate::model::{ActivationRules, Duration, Timestamp};

/// The rules keyward manages, by their fixed ids (§3.3).
pub const EXPIRATION_RULE: &str = "Expiration_EndUser_Assignment";
pub const ENABLEMENT_RULE: &str = "Enablement_EndUser_Assignment";
pub const APPROVAL_RULE: &str = "Approval_EndUser_Assignment";

const MFA: &str = "MultiFactorAuthentication";
const JUSTIFICATION: &str = "Justification";
const TICKETING: &str = "Ticketing";

/// A duration as ISO 8601: `PT8H`, `PT90M`, `PT45S`.
pub fn iso_duration(d: Duration) -> String {
    let s = d.seconds();
    if s % 3600 == 0 {
        format!("PT{}H", s / 3600)
    } else if s % 60 == 0 {
        format!("PT{}M", s / 60)
    } else {
        format!("PT{s}S")
    }
}

/// An ISO 8601 duration of days, hours, minutes and seconds (`P1D`, `PT8H`, `PT1H30M`); `None`
/// for years, months, weeks or anything else.
pub fn parse_iso_duration(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total: i64 = 0;
    if !days.is_empty() {
        total += days.strip_suffix('D')?.parse::<i64>().ok()? * 86_400;
    }
    let mut num = String::new();
    let mut seen = false;
    for c in time.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let per = match c {
            'H' => 3600,
            'M' => 60,
            'S' => 1,
            _ => return None,
        };
        total += num.parse::<i64>().ok()? * per;
        num.clear();
        seen = true;
    }
    if !num.is_empty() || (days.is_empty() && !seen) {
        return None;
    }
    let text = if total % 3600 == 0 {
        format!("{}h", total / 3600)
    } else if total % 60 == 0 {
        format!("{}m", total / 60)
    } else {
        format!("{total}s")
    };
    Duration::parse(&text).ok()
}

/// One eligibility schedule as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub id: String,
    pub principal: String,
    /// The role definition (directory roles) or the group (groups).
    pub object: String,
    pub end: Option<Timestamp>,
}

fn end_of(v: &Value) -> Option<Timestamp> {
    let e = v.get("scheduleInfo")?.get("expiration")?;
    let s = e.get("endDateTime").and_then(Value::as_str)?;
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

fn str_at<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// A `unifiedRoleEligibilitySchedule` at the tenant's scope (`/`); `None` for other scopes or
/// what cannot be read.
pub fn role_schedule(v: &Value) -> Option<Schedule> {
    if str_at(v, "directoryScopeId") != Some("/") {
        return None;
    }
    Some(Schedule {
        id: str_at(v, "id")?.to_string(),
        principal: str_at(v, "principalId")?.to_string(),
        object: str_at(v, "roleDefinitionId")?.to_string(),
        end: end_of(v),
    })
}

/// A `privilegedAccessGroupEligibilitySchedule` for membership (`accessId: member`).
pub fn group_schedule(v: &Value) -> Option<Schedule> {
    if str_at(v, "accessId") != Some("member") {
        return None;
    }
    Some(Schedule {
        id: str_at(v, "id")?.to_string(),
        principal: str_at(v, "principalId")?.to_string(),
        object: str_at(v, "groupId")?.to_string(),
        end: end_of(v),
    })
}

/// `scheduleInfo` from `start` until `end` (or for good).
pub fn schedule_info(start: Timestamp, end: Option<Timestamp>) -> Value {
    let expiration = match end {
        Some(e) => json!({"type": "afterDateTime", "endDateTime": date_time(e)}),
        None => json!({"type": "noExpiration"}),
    };
    json!({"startDateTime": date_time(start), "expiration": expiration})
}

/// The schedule request of `action` (`adminAssign`, `adminUpdate`, `adminRemove`) making
/// `principal` eligible for directory role `role` (its definition id), at the tenant's scope.
pub fn role_request(action: &str, principal: &str, role: &str, schedule: Option<Value>, justification: &str) -> Value {
    let mut v = json!({"action": action, "principalId": principal, "roleDefinitionId": role,
        "directoryScopeId": "/", "justification": justification});
    if let Some(s) = schedule {
        v["scheduleInfo"] = s;
    }
    v
}

/// The schedule request making `principal` eligible for membership of `group`.
pub fn group_request(
    action: &str,
    principal: &str,
    group: &str,
    schedule: Option<Value>,
    justification: &str,
) -> Value {
    let mut v = json!({"action": action, "accessId": "member", "principalId": principal, "groupId": group,
        "justification": justification});
    if let Some(s) = schedule {
        v["scheduleInfo"] = s;
    }
    v
}

/// A policy's rules by id.
fn rule<'a>(rules: &'a [Value], id: &str) -> Option<&'a Value> {
    rules.iter().find(|r| str_at(r, "id") == Some(id))
}

/// The activation rules a policy holds; approvers as the ids of single users (group approvers
/// are kept as `group:ID`, which no desired approver equals).
pub fn activation_of(rules: &[Value]) -> ActivationRules {
    let mut out = ActivationRules::default();
    if let Some(r) = rule(rules, EXPIRATION_RULE) {
        out.max_duration = str_at(r, "maximumDuration").and_then(parse_iso_duration);
    }
    if let Some(r) = rule(rules, ENABLEMENT_RULE) {
        let on: Vec<&str> =
            r.get("enabledRules").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        out.mfa = Some(on.contains(&MFA));
        out.justification = Some(on.contains(&JUSTIFICATION));
        out.ticket = Some(on.contains(&TICKETING));
    }
    if let Some(r) = rule(rules, APPROVAL_RULE) {
        let setting = r.get("setting").unwrap_or(&Value::Null);
        let mut approvers: Vec<String> = Vec::new();
        if setting.get("isApprovalRequired") == Some(&Value::Bool(true)) {
            for stage in setting.get("approvalStages").and_then(Value::as_array).into_iter().flatten() {
                for a in stage.get("primaryApprovers").and_then(Value::as_array).into_iter().flatten() {
                    let ty = str_at(a, "@odata.type").unwrap_or_default();
                    if let Some(id) = str_at(a, "userId").filter(|_| ty.ends_with("singleUser")) {
                        approvers.push(id.to_string());
                    } else if let Some(id) = str_at(a, "groupId") {
                        approvers.push(format!("group:{id}"));
                    }
                }
            }
        }
        approvers.sort();
        approvers.dedup();
        out.approvers = Some(approvers);
    }
    out
}

/// The `PATCH` bodies that bring a policy's `rules` to `want` (approvers as user ids), by rule
/// id; each body is the rule as read with the managed settings changed, so what keyward does
/// not manage stays as it is.
pub fn rule_updates(rules: &[Value], want: &ActivationRules) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let have = activation_of(rules);
    let base = |id: &str, ty: &str| -> Value {
        let mut v = rule(rules, id).cloned().unwrap_or_else(|| json!({"id": id}));
        v["@odata.type"] = json!(ty);
        v
    };
    if let Some(d) = want.max_duration
        && have.max_duration.map(|h| h.seconds()) != Some(d.seconds())
    {
        let mut v = base(EXPIRATION_RULE, "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule");
        v["isExpirationRequired"] = json!(true);
        v["maximumDuration"] = json!(iso_duration(d));
        out.push((EXPIRATION_RULE.to_string(), v));
    }
    let flags = [
        (want.mfa, have.mfa, MFA),
        (want.justification, have.justification, JUSTIFICATION),
        (want.ticket, have.ticket, TICKETING),
    ];
    if flags.iter().any(|(w, h, _)| w.is_some() && w != h) {
        let mut v = base(ENABLEMENT_RULE, "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule");
        let mut on: Vec<String> = v
            .get("enabledRules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        for (w, _, name) in flags {
            match w {
                Some(true) if !on.iter().any(|x| x == name) => on.push(name.to_string()),
                Some(false) => on.retain(|x| x != name),
                _ => {}
            }
        }
        v["enabledRules"] = json!(on);
        out.push((ENABLEMENT_RULE.to_string(), v));
    }
    if let Some(approvers) = &want.approvers
        && have.approvers.as_ref() != Some(approvers)
    {
        let mut v = base(APPROVAL_RULE, "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule");
        let mut setting = v.get("setting").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
        setting["isApprovalRequired"] = json!(!approvers.is_empty());
        let primary: Vec<Value> = approvers
            .iter()
            .map(|id| json!({"@odata.type": "#microsoft.graph.singleUser", "userId": id, "isBackup": false}))
            .collect();
        let mut stage =
            setting.get("approvalStages").and_then(Value::as_array).and_then(|a| a.first().cloned()).unwrap_or_else(
                || {
                    json!({"approvalStageTimeOutInDays": 1, "isApproverJustificationRequired": true,
                "escalationTimeInMinutes": 0, "isEscalationEnabled": false, "escalationApprovers": []})
                },
            );
        stage["primaryApprovers"] = json!(primary);
        setting["approvalStages"] = json!([stage]);
        if setting.get("approvalMode").is_none() {
            setting["approvalMode"] = json!("SingleStage");
        }
        v["setting"] = setting;
        out.push((APPROVAL_RULE.to_string(), v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Duration {
        Duration::parse(s).unwrap()
    }

    #[test]
    fn durations_round_trip() {
        for (ours, theirs) in [("8h", "PT8H"), ("90m", "PT90M"), ("45s", "PT45S")] {
            assert_eq!(iso_duration(d(ours)), theirs);
            assert_eq!(parse_iso_duration(theirs).unwrap().seconds(), d(ours).seconds());
        }
        assert_eq!(parse_iso_duration("PT1H30M").unwrap().seconds(), 5400);
        assert_eq!(parse_iso_duration("P365D").unwrap().seconds(), 365 * 86_400);
        for bad in ["", "P", "PT", "8h", "P1Y", "PT1X", "PT8"] {
            assert!(parse_iso_duration(bad).is_none(), "{bad}");
        }
    }

    fn default_rules() -> Vec<Value> {
        vec![
            json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule", "id": EXPIRATION_RULE,
                "isExpirationRequired": true, "maximumDuration": "PT8H", "target": {"caller": "EndUser"}}),
            json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule", "id": ENABLEMENT_RULE,
                "enabledRules": ["MultiFactorAuthentication", "Justification"], "target": {"caller": "EndUser"}}),
            json!({"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule", "id": APPROVAL_RULE,
                "setting": {"isApprovalRequired": false, "approvalMode": "SingleStage",
                    "approvalStages": [{"approvalStageTimeOutInDays": 1, "primaryApprovers": []}]}}),
        ]
    }

    #[test]
    fn reads_the_activation_rules_of_a_policy() {
        let a = activation_of(&default_rules());
        assert_eq!(a.max_duration.map(|d| d.seconds()), Some(8 * 3600));
        assert_eq!((a.mfa, a.justification, a.ticket), (Some(true), Some(true), Some(false)));
        assert_eq!(a.approvers, Some(vec![]));
    }

    #[test]
    fn updates_only_what_differs_and_keeps_the_rest_of_a_rule() {
        let want = ActivationRules { max_duration: Some(d("8h")), mfa: Some(true), ..ActivationRules::default() };
        assert!(rule_updates(&default_rules(), &want).is_empty());
        let want = ActivationRules {
            max_duration: Some(d("4h")),
            ticket: Some(true),
            justification: Some(false),
            approvers: Some(vec!["u-1".into()]),
            ..ActivationRules::default()
        };
        let updates = rule_updates(&default_rules(), &want);
        let ids: Vec<&str> = updates.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, [EXPIRATION_RULE, ENABLEMENT_RULE, APPROVAL_RULE]);
        assert_eq!(updates[0].1["maximumDuration"], "PT4H");
        assert_eq!(updates[0].1["target"]["caller"], "EndUser");
        assert_eq!(updates[1].1["enabledRules"], json!(["MultiFactorAuthentication", "Ticketing"]));
        assert_eq!(updates[2].1["setting"]["isApprovalRequired"], true);
        assert_eq!(updates[2].1["setting"]["approvalStages"][0]["primaryApprovers"][0]["userId"], "u-1");
        assert_eq!(updates[2].1["setting"]["approvalStages"][0]["approvalStageTimeOutInDays"], 1);
        // Applied, they read back as wanted.
        let mut rules = default_rules();
        for (id, body) in updates {
            *rules.iter_mut().find(|r| r["id"] == id.as_str()).unwrap() = body;
        }
        assert!(want.satisfied_by(&activation_of(&rules)));
    }

    #[test]
    fn schedules_at_other_scopes_and_owner_eligibility_are_not_read() {
        let s = json!({"id": "s1", "principalId": "u1", "roleDefinitionId": "r1", "directoryScopeId": "/",
            "scheduleInfo": {"expiration": {"type": "afterDateTime", "endDateTime": "2027-01-01T00:00:00Z"}}});
        assert_eq!(role_schedule(&s).unwrap().end.unwrap().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert!(role_schedule(&json!({"id": "s", "principalId": "u", "roleDefinitionId": "r", "directoryScopeId": "/administrativeUnits/x"})).is_none());
        assert!(group_schedule(&json!({"id": "s", "principalId": "u", "groupId": "g", "accessId": "owner"})).is_none());
        assert_eq!(
            group_schedule(&json!({"id": "s", "principalId": "u", "groupId": "g", "accessId": "member"})).unwrap().end,
            None
        );
    }
}
