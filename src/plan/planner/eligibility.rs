//! Eligible assignments and what activating them takes, on targets that keep eligibility
//! (Privileged Identity Management): make eligible, move the end, end; and the activation
//! rules of each role with eligible holders.
//!
//! An eligible assignment never becomes a membership (see `bindings`); on a target without
//! eligibility for the role's binding it gives nothing.

use super::*;
use crate::model::{ActivationApproval, ActivationRules, Expiry, LiveActivation, LiveEligibility, Owner};

/// Seconds, for comparing ends (a schedule's end is kept to the second).
fn secs(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.timestamp())
}

fn end_value(end: Option<Timestamp>) -> Value {
    match end {
        Some(t) => json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => json!("never"),
    }
}

impl<'a> TargetPlanner<'a> {
    pub(super) fn eligibility(&self, out: &mut Vec<Change>) {
        if self.caps.eligibility.is_empty() {
            return;
        }
        for (role_name, role) in &self.desired.roles {
            let Some(binding) = role.bindings.get(&self.target.name) else { continue };
            if !self.caps.eligibility.contains(&binding.kind()) {
                continue;
            }
            self.eligible_holders(role_name, binding, out);
            self.activation(role_name, role, binding, out);
        }
    }

    fn same_binding(a: &Binding, b: &Binding) -> bool {
        a.kind() == b.kind() && lower(&a.object_name()) == lower(&b.object_name())
    }

    /// Brings who is eligible for `binding` to the eligible holders of `role_name`.
    fn eligible_holders(&self, role_name: &'a Name, binding: &Binding, out: &mut Vec<Change>) {
        let now = self.input.now;
        let mut wanted: BTreeMap<&'a str, (&'a str, Option<Timestamp>)> = BTreeMap::new();
        let mut expired: BTreeMap<&'a str, (&'a str, Expiry)> = BTreeMap::new();
        for g in self.grants_by_role.get(role_name).into_iter().flatten().filter(|g| g.eligible) {
            let Key::User(key) = g.principal else { continue };
            match g.expires {
                Some(e) if e.has_passed(now) => {
                    expired.insert(key, (g.subject, e));
                }
                e => {
                    let end = e.map(|e| e.end());
                    let slot = wanted.entry(key).or_insert((g.subject, end));
                    slot.1 = match (slot.1, end) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                }
            }
        }
        expired.retain(|k, _| !wanted.contains_key(k));
        let mut held: BTreeMap<&'a str, (&'a LiveAccount, &'a LiveEligibility)> = BTreeMap::new();
        for e in self.live.eligibility.iter().filter(|e| Self::same_binding(&e.binding, binding)) {
            if let Some((acc, key)) = self.by_id.get(e.principal.as_str()) {
                held.insert(key, (acc, e));
            }
        }
        let role = role_name.to_string();
        let values = |end: Option<Timestamp>| {
            let mut v = Values::new();
            v.insert("role".into(), json!(role_name));
            v.insert("binding".into(), json!(binding.label()));
            v.insert("ends".into(), end_value(end));
            v
        };
        for (key, (subject, end)) in &wanted {
            let user_name = &self.present_users[key].1.user_name;
            let principal = Principal::User(user_name.clone());
            let address = self.addr(ObjectKind::Eligibility, format!("{subject}/{role_name}"));
            let operation = Operation::MakeEligible { principal, binding: binding.clone(), end: *end };
            match held.get(key) {
                None => {
                    let same_base = self.eligible_in_baseline(subject, role_name);
                    let why = if same_base {
                        Why::EligibilityLostOutside { role: role.clone(), subject: subject.to_string() }
                    } else {
                        Why::EligibleGiven { role: role.clone(), subject: subject.to_string() }
                    };
                    out.push(
                        Change::new(address, Action::Assign, Reason::of(self.kind_for(same_base), why), operation)
                            .after(values(*end))
                            .fingerprint(ABSENT)
                            .subject(subject.to_string()),
                    );
                }
                Some((_, live)) if secs(live.end) != secs(*end) => {
                    let same_base = self.eligible_in_baseline(subject, role_name);
                    out.push(
                        Change::new(
                            address,
                            Action::Update,
                            Reason::of(
                                self.kind_for(same_base),
                                Why::EligibilityEnds { role: role.clone(), subject: subject.to_string(), end: *end },
                            ),
                            operation,
                        )
                        .before(values(live.end))
                        .after(values(*end))
                        .fingerprint(live.fingerprint.clone())
                        .subject(subject.to_string()),
                    );
                }
                Some(_) => {}
            }
        }
        for (key, (acc, live)) in &held {
            if wanted.contains_key(key) || !self.managed(&acc.user_name) {
                continue;
            }
            let (name, subject, reason) = match (expired.get(key), self.in_git.get(key)) {
                (Some((name, date)), _) => (
                    name.to_string(),
                    Some(name.to_string()),
                    Reason::of(ReasonKind::Expiry, Why::AssignmentExpired { date: *date }),
                ),
                (None, Some(name)) => {
                    let (role, subject) = (role.clone(), name.to_string());
                    // Drift when the baseline did not make them eligible either.
                    let reason =
                        if self.input.baseline.is_some() && !self.eligible_in_baseline(name.as_str(), role_name) {
                            Reason::of(ReasonKind::Drift, Why::EligibilityGivenOutside { role, subject })
                        } else {
                            Reason::of(ReasonKind::Config, Why::EligibleNotGiven { role, subject })
                        };
                    (name.to_string(), Some(name.to_string()), reason)
                }
                (None, None) => (
                    acc.user_name.clone(),
                    None,
                    Reason::of(ReasonKind::Config, Why::NotInConfiguration { account: acc.user_name.clone() }),
                ),
            };
            out.push(
                Change::new(
                    self.addr(ObjectKind::Eligibility, format!("{name}/{role_name}")),
                    Action::Revoke,
                    reason,
                    Operation::EndEligibility {
                        principal: Principal::User(acc.user_name.clone()),
                        binding: binding.clone(),
                    },
                )
                .before(values(live.end))
                .fingerprint(live.fingerprint.clone())
                .subject_opt(subject),
            );
        }
    }

    /// Whether the baseline made `subject` eligible for `role` (unexpired).
    fn eligible_in_baseline(&self, subject: &str, role: &Name) -> bool {
        let Some(b) = self.input.baseline else { return false };
        let now = self.input.now;
        Name::new(subject)
            .ok()
            .and_then(|n| b.users.get(&n))
            .is_some_and(|u| active_grants(&u.roles, now).any(|g| g.role() == role && g.eligible()))
    }

    /// Whether an eligible assignment of `role` in the baseline asked for the same activation
    /// rules (so a difference on the target is drift).
    fn activation_in_baseline(&self, role: &Name, want: &ActivationRules) -> bool {
        let Some(b) = self.input.baseline else { return false };
        let now = self.input.now;
        let max = want.max_duration.map(|d| d.seconds());
        b.users.values().flat_map(|u| active_grants(&u.roles, now)).any(|g| match g {
            RoleGrant::Detailed(d) if d.eligible && &d.role == role => {
                let r = d.requires.clone().unwrap_or_default();
                d.max_activation.map(|d| d.seconds()) == max
                    && r.mfa == want.mfa
                    && r.justification == want.justification
                    && r.ticket == want.ticket
                    && r.approval.is_some() == want.approvers.is_some()
            }
            _ => false,
        })
    }

    /// Plans what activating `binding` takes, when an eligible assignment of the role says.
    fn activation(&self, role_name: &'a Name, role: &'a crate::model::Role, binding: &Binding, out: &mut Vec<Change>) {
        let Some(want) = self.activation_rules(role_name, role) else { return };
        let live: Option<&LiveActivation> =
            self.live.activation.iter().find(|a| Self::same_binding(&a.binding, binding));
        let have = live.map(|l| l.rules.clone()).unwrap_or_default();
        if live.is_some() && want.satisfied_by(&have) {
            return;
        }
        let fields = differing(&want, &have);
        let kind = self.kind_for(live.is_some() && self.activation_in_baseline(role_name, &want));
        let mut after = Values::new();
        let mut before = Values::new();
        for f in &fields {
            after.insert(f.clone(), rule_value(&want, f));
            before.insert(f.clone(), rule_value(&have, f));
        }
        out.push(
            Change::new(
                self.addr(ObjectKind::Activation, role_name.as_str()),
                Action::Update,
                Reason::of(kind, Why::ActivationDiffers { role: role_name.to_string(), fields }),
                Operation::SetActivation { binding: binding.clone(), rules: want },
            )
            .before(before)
            .after(after)
            .fingerprint(live.map_or_else(|| ABSENT.to_string(), |l| l.fingerprint.clone())),
        );
    }

    /// The activation rules the eligible assignments of `role_name` ask for (validation makes
    /// them agree); `None` when none asks for any.
    fn activation_rules(&self, role_name: &'a Name, role: &'a crate::model::Role) -> Option<ActivationRules> {
        let grant = self.grants_by_role.get(role_name).into_iter().flatten().find_map(|g| match g.grant {
            RoleGrant::Detailed(d) if d.eligible && (d.max_activation.is_some() || d.requires.is_some()) => Some(d),
            _ => None,
        })?;
        let requires = grant.requires.clone().unwrap_or_default();
        let approvers = match requires.approval {
            None => None,
            Some(ActivationApproval::None) => Some(Vec::new()),
            Some(ActivationApproval::Owners) => Some(self.approvers(role)),
        };
        let rules = ActivationRules {
            max_duration: grant.max_activation,
            mfa: requires.mfa,
            justification: requires.justification,
            ticket: requires.ticket,
            approvers,
        };
        (!rules.is_empty()).then_some(rules)
    }

    /// The userNames (lower case, sorted) of the people who own `role`, else of the default
    /// owners: users named, and the members of groups of reviewers.
    fn approvers(&self, role: &crate::model::Role) -> Vec<String> {
        let governance = &self.desired.settings.governance;
        let owners = if role.owners.is_empty() { governance.default_owners.as_slice() } else { role.owners.as_slice() };
        let mut names: Vec<&Name> = Vec::new();
        for o in owners {
            match o {
                Owner::User(n) => names.push(n),
                Owner::Group(g) => {
                    if let Some(group) = governance.reviewers.get(&g.group) {
                        names.extend(group.members.iter());
                    }
                }
            }
        }
        let mut out: Vec<String> =
            names.into_iter().filter_map(|n| self.desired.users.get(n)).map(|u| lower(&u.user_name)).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The managed fields of `want` that `have` does not match, by their names in the
/// configuration.
fn differing(want: &ActivationRules, have: &ActivationRules) -> Vec<String> {
    let mut out = Vec::new();
    if want.max_duration.is_some() && secs_of(want.max_duration) != secs_of(have.max_duration) {
        out.push("maxActivation".to_string());
    }
    for (name, w, h) in [
        ("mfa", want.mfa, have.mfa),
        ("justification", want.justification, have.justification),
        ("ticket", want.ticket, have.ticket),
    ] {
        if w.is_some() && w != h {
            out.push(name.to_string());
        }
    }
    if want.approvers.is_some() && want.approvers != have.approvers {
        out.push("approvers".to_string());
    }
    out
}

fn secs_of(d: Option<crate::model::Duration>) -> Option<i64> {
    d.map(|d| d.seconds())
}

/// The display value of one field of the rules (`null` when not known).
fn rule_value(rules: &ActivationRules, field: &str) -> Value {
    match field {
        "maxActivation" => rules.max_duration.map_or(Value::Null, |d| json!(d.to_string())),
        "mfa" => json!(rules.mfa),
        "justification" => json!(rules.justification),
        "ticket" => json!(rules.ticket),
        "approvers" => json!(rules.approvers),
        _ => Value::Null,
    }
}
