//! Eligibility and activation rules on Graph (Privileged Identity Management,
//! docs/reference/graph.md §3): reading who is eligible for which directory role and group,
//! and each one's role management policy; and the schedule requests and rule updates that
//! bring them to the plan.
//!
//! Reading costs two requests for directory roles (their eligibility schedules, and their
//! policy assignments with the policies' rules expanded) and two per group, sent in the
//! `$batch`es that read the groups' members. A tenant where they cannot be read (no
//! Privileged Identity Management licence, or no permission to read it) is reported once and
//! read as having no eligibility; writing to it then fails with Graph's answer.

use super::pim::{self, Schedule};
use super::*;
use crate::model::{BindingKind, LiveActivation, LiveEligibility, Timestamp};

const ROLE_SCHEDULES: &str = "/roleManagement/directory/roleEligibilitySchedules";
const ROLE_REQUESTS: &str = "/roleManagement/directory/roleEligibilityScheduleRequests";
const GROUP_REQUESTS: &str = "/identityGovernance/privilegedAccess/group/eligibilityScheduleRequests";
/// The justification keyward gives its schedule requests.
const JUSTIFICATION: &str = "keyward: eligibility from the configuration in git";

/// A `$filter` value with its spaces and quotes escaped for a URL.
fn filter(expr: &str) -> String {
    expr.replace(' ', "%20").replace('\'', "%27")
}

fn role_policies_url() -> String {
    format!(
        "/policies/roleManagementPolicyAssignments?$filter={}&$expand=policy($expand=rules)",
        filter("scopeId eq '/' and scopeType eq 'DirectoryRole'")
    )
}

/// The URLs that read a group's eligibility schedules and its membership policy, in that order.
pub(super) fn group_urls(group: &str) -> [String; 2] {
    [
        format!(
            "/identityGovernance/privilegedAccess/group/eligibilitySchedules?$filter={}",
            filter(&format!("groupId eq '{group}'"))
        ),
        format!(
            "/policies/roleManagementPolicyAssignments?$filter={}&$expand=policy($expand=rules)",
            filter(&format!("scopeId eq '{group}' and scopeType eq 'Group' and roleDefinitionId eq 'member'"))
        ),
    ]
}

/// Whether an error reading eligibility means the tenant does not offer it to this caller.
fn unavailable(e: &GraphError) -> bool {
    matches!(e.status(), Some(400 | 403 | 404))
}

/// A binding's kind and lower-cased object name.
type PolicyKey = (BindingKind, String);
/// A role management policy's id, and its rules as read.
type Policy = (String, Vec<Value>);

/// The policies and ids keyward needs to write eligibility and activation rules.
#[derive(Debug, Default)]
pub(super) struct PimState {
    /// Whether eligibility could be read at all.
    pub available: bool,
    /// (binding kind, lower-cased object name) → (policy id, its rules as read).
    pub policies: HashMap<PolicyKey, Policy>,
    /// (binding kind, lower-cased object name, principal id) of every eligibility read or made.
    pub eligible: HashSet<(BindingKind, String, String)>,
}

fn schedule_fingerprint(s: &Schedule) -> String {
    digest(&(&s.id, &s.principal, &s.object, s.end.map(|e| e.timestamp())))
}

fn activation(
    binding: Binding,
    assignment: &Value,
    upn_by_id: &HashMap<&str, &str>,
) -> Option<(PolicyKey, Policy, LiveActivation)> {
    let policy = assignment.get("policy")?;
    // The policy id goes into request paths (`/policies/roleManagementPolicies/{id}/…`): one
    // that would change the path is not taken, and the policy counts as missing.
    let policy_id = str_of(policy, "id")
        .or_else(|| str_of(assignment, "policyId"))
        .filter(|id| crate::provider::ids::path_segment(id).is_ok())?;
    let rules: Vec<Value> = policy.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut read = pim::activation_of(&rules);
    if let Some(approvers) = read.approvers.as_mut() {
        for a in approvers.iter_mut() {
            *a = match upn_by_id.get(a.as_str()) {
                Some(upn) => key(upn),
                None => format!("id:{a}"),
            };
        }
        approvers.sort();
    }
    let fingerprint = digest(&(&policy_id, &read));
    let k = (binding.kind(), key(&binding.object_name()));
    Some((k, (policy_id, rules), LiveActivation { binding, rules: read, fingerprint }))
}

impl GraphProvider {
    /// Reads the directory roles' eligibility and policies into `live` and `pim`; `role_defs`
    /// as read (for their names).
    pub(super) async fn read_role_eligibility(
        &self,
        role_defs: &[Value],
        upn_by_id: &HashMap<&str, &str>,
        live: &mut LiveTarget,
        pim: &mut PimState,
    ) -> Result<(), ProviderError> {
        let schedules = match self.client.get_all(ROLE_SCHEDULES).await {
            Ok(s) => s,
            Err(e) if unavailable(&e) => {
                tracing::warn!(target_name = %self.target, error = %e, "eligibility (Privileged Identity Management) cannot be read on this tenant; it is read as none");
                return Ok(());
            }
            Err(e) => return Err(self.pim_error("the directory roles' eligibility schedules", e)),
        };
        let policies = match self.client.get_all(&role_policies_url()).await {
            Ok(p) => p,
            Err(e) if unavailable(&e) => {
                tracing::warn!(target_name = %self.target, error = %e, "the directory roles' role management policies cannot be read; eligibility is read as none");
                return Ok(());
            }
            Err(e) => return Err(self.pim_error("the directory roles' role management policies", e)),
        };
        pim.available = true;
        // A schedule or policy may name a role by its id or by its template id.
        let mut names: HashMap<String, String> = HashMap::new();
        for d in role_defs {
            let Some(name) = str_of(d, "displayName") else { continue };
            if let Some(t) = str_of(d, "templateId") {
                names.insert(t, name.clone());
            }
            if let Some(id) = id_of(d) {
                names.insert(id, name);
            }
        }
        for s in schedules.iter().filter_map(pim::role_schedule) {
            let Some(name) = names.get(&s.object) else { continue };
            pim.eligible.insert((BindingKind::DirectoryRole, key(name), s.principal.clone()));
            live.eligibility.push(LiveEligibility {
                binding: Binding::DirectoryRole(name.clone()),
                principal: s.principal.clone(),
                end: s.end,
                fingerprint: schedule_fingerprint(&s),
                id: s.id,
            });
        }
        for a in &policies {
            let Some(name) = str_of(a, "roleDefinitionId").and_then(|r| names.get(&r)) else { continue };
            if let Some((k, policy, act)) = activation(Binding::DirectoryRole(name.clone()), a, upn_by_id) {
                pim.policies.insert(k, policy);
                live.activation.push(act);
            }
        }
        Ok(())
    }

    /// Adds what [`group_urls`] read for `group` (its id) named `name`.
    pub(super) fn add_group_eligibility(
        &self,
        group: &str,
        name: &str,
        answers: [Result<Vec<Value>, GraphError>; 2],
        upn_by_id: &HashMap<&str, &str>,
        live: &mut LiveTarget,
        pim: &mut PimState,
    ) -> Result<(), ProviderError> {
        let [schedules, policies] = answers;
        let (schedules, policies) = match (schedules, policies) {
            (Ok(s), Ok(p)) => (s, p),
            (Err(e), _) | (_, Err(e)) if unavailable(&e) => {
                tracing::debug!(target_name = %self.target, group = %name, error = %e, "the group's eligibility cannot be read; it is read as none");
                return Ok(());
            }
            (Err(e), _) | (_, Err(e)) => return Err(self.pim_error(&format!("the eligibility of group {name}"), e)),
        };
        for s in schedules.iter().filter_map(pim::group_schedule).filter(|s| s.object == group) {
            pim.eligible.insert((BindingKind::Group, key(name), s.principal.clone()));
            live.eligibility.push(LiveEligibility {
                binding: Binding::Group(name.to_string()),
                principal: s.principal.clone(),
                end: s.end,
                fingerprint: schedule_fingerprint(&s),
                id: s.id,
            });
        }
        if let Some((k, policy, act)) = policies
            .iter()
            .find(|a| str_of(a, "roleDefinitionId").as_deref() == Some("member"))
            .and_then(|a| activation(Binding::Group(name.to_string()), a, upn_by_id))
        {
            pim.policies.insert(k, policy);
            live.activation.push(act);
        }
        Ok(())
    }

    fn pim_error(&self, what: &str, e: GraphError) -> ProviderError {
        ProviderError::Remote {
            target: self.target.clone(),
            message: format!("cannot read {what} from {}: {e}", self.client.root()),
        }
    }
}

/// The id Graph knows `binding` by for eligibility: a role definition's or a group's.
fn object_id(state: &State, binding: &Binding) -> Result<String, ApplyError> {
    let found = match binding {
        Binding::DirectoryRole(n) => state.roles.get(&key(n)),
        Binding::Group(n) => state.groups.get(&key(n)),
        _ => None,
    };
    found.cloned().ok_or_else(|| {
        ApplyError::conflict(format!(
            "{} does not exist on the target (any more), or keeps no eligibility",
            binding.label()
        ))
    })
}

/// The schedule request of `action` for `principal` and `binding`.
fn request(binding: &Binding, action: &str, principal: &str, object: &str, schedule: Option<Value>) -> Call {
    let (url, body) = match binding {
        Binding::Group(_) => (GROUP_REQUESTS, pim::group_request(action, principal, object, schedule, JUSTIFICATION)),
        _ => (ROLE_REQUESTS, pim::role_request(action, principal, object, schedule, JUSTIFICATION)),
    };
    Call::new(Method::POST, url, Some(body))
}

/// The calls that carry out an eligibility operation: each with a description, and whether a
/// "does not exist" answer means the goal is met.
pub(super) fn calls(
    state: &State,
    principal_id: impl Fn(&Principal) -> Result<String, ApplyError>,
    op: &Operation,
    now: Timestamp,
) -> Result<Vec<(Call, String, bool)>, ApplyError> {
    if !state.pim.available {
        return Err(ApplyError::new(
            "eligibility (Privileged Identity Management) could not be read on this target, so it is not written",
        ));
    }
    match op {
        Operation::MakeEligible { principal, binding, end } => {
            let object = object_id(state, binding)?;
            let pid = principal_id(principal)?;
            let held = state.pim.eligible.contains(&(binding.kind(), key(&binding.object_name()), pid.clone()));
            let action = if held { "adminUpdate" } else { "adminAssign" };
            let schedule = pim::schedule_info(now, *end);
            Ok(vec![(
                request(binding, action, &pid, &object, Some(schedule)),
                format!("make {} eligible for {}", principal.key(), binding.label()),
                false,
            )])
        }
        Operation::EndEligibility { principal, binding } => {
            let object = object_id(state, binding)?;
            let pid = principal_id(principal)?;
            Ok(vec![(
                request(binding, "adminRemove", &pid, &object, None),
                format!("end the eligibility of {} for {}", principal.key(), binding.label()),
                true,
            )])
        }
        Operation::SetActivation { binding, rules } => {
            let (policy, current) =
                state.pim.policies.get(&(binding.kind(), key(&binding.object_name()))).ok_or_else(|| {
                    ApplyError::conflict(format!("{} has no role management policy on the target", binding.label()))
                })?;
            let mut want = rules.clone();
            if let Some(approvers) = want.approvers.as_mut() {
                let mut ids = Vec::with_capacity(approvers.len());
                for a in approvers.iter() {
                    ids.push(
                        state
                            .users
                            .get(&key(a))
                            .cloned()
                            .ok_or_else(|| ApplyError::new(format!("the approver {a} does not exist on the target")))?,
                    );
                }
                ids.sort();
                *approvers = ids;
            }
            Ok(pim::rule_updates(current, &want)
                .into_iter()
                .map(|(rule, body)| {
                    (
                        Call::new(
                            Method::PATCH,
                            format!("/policies/roleManagementPolicies/{policy}/rules/{rule}"),
                            Some(body),
                        ),
                        format!("set rule {rule} of what activating {} takes", binding.label()),
                        false,
                    )
                })
                .collect())
        }
        _ => Err(ApplyError::new("not an eligibility operation")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_escaped_for_a_url() {
        let [schedules, policies] = group_urls("g-1");
        assert_eq!(
            schedules,
            "/identityGovernance/privilegedAccess/group/eligibilitySchedules?$filter=groupId%20eq%20%27g-1%27"
        );
        assert!(policies.contains("scopeId%20eq%20%27g-1%27%20and%20scopeType%20eq%20%27Group%27"), "{policies}");
    }

    #[test]
    fn a_policy_id_that_would_change_a_path_is_not_taken() {
        let users = HashMap::new();
        let with = |id: &str| json!({"policy": {"id": id, "rules": []}});
        let binding = Binding::Group("g".into());
        assert!(activation(binding.clone(), &with("Group_1_2"), &users).is_some());
        for id in ["..", "a/../b", "a?b"] {
            assert!(activation(binding.clone(), &with(id), &users).is_none(), "{id}");
        }
    }
}
