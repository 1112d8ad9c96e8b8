//! Segregation of duties: nobody holds something from both sides of a SodRule, in git or live.
//!
//! Rules are compiled once into per-role side tables, and each role knows the rules it sits on
//! the `first` side of; a holder is checked only against the rules that one of their roles
//! opens, so the cost is about (holders × roles held), whatever the number of rules.

use std::collections::BTreeSet;

use super::contents::{self, Held};
use super::{Index, RoleIndex, at_name, binding_key, default_severity};
use crate::model::{Kind, Name, ReportedKind, Severity, SodException, SodRule, SodSide};
use crate::policy::Rule;
use crate::policy::{Finding, PolicyContext};

/// One rule, compiled against the roles.
struct Compiled<'a> {
    name: &'a Name,
    rule: &'a SodRule,
    /// Per role index: whether the role is on the first / second side.
    first: Vec<bool>,
    second: Vec<bool>,
}

/// Every rule, compiled.
pub(super) struct Rules<'a> {
    rules: Vec<Compiled<'a>>,
    /// Per role index: the rules whose first side the role is on.
    opens: Vec<Vec<u32>>,
    /// Per role index: the live contents of its security roles, where they were read.
    live: Vec<Vec<Held<'a>>>,
}

/// A conflict of one holder with one rule: the holder's entries on each side (indexes into the
/// holder's list).
struct Conflict {
    rule: u32,
    first: Vec<usize>,
    second: Vec<usize>,
}

/// Whether a role is on `side`: named, declaring a listed duty, or holding a listed duty or
/// privilege in its live contents.
fn on_side(side: &SodSide, name: &Name, duties: &[String], live: &[Held]) -> bool {
    side.roles.contains(name)
        || duties.iter().any(|d| side.duties.contains(d))
        || !contents::reasons(side, live).is_empty()
}

impl<'a> Rules<'a> {
    pub fn compile(ctx: &PolicyContext<'a>, roles: &RoleIndex<'a>) -> Self {
        let n = roles.len();
        let mut rules = Vec::with_capacity(ctx.desired.sod_rules.len());
        let mut opens = vec![Vec::new(); n];
        let live = contents::of_roles(ctx, roles);
        for (k, (name, rule)) in ctx.desired.sod_rules.iter().enumerate() {
            let mut first = vec![false; n];
            let mut second = vec![false; n];
            for i in 0..n {
                let (rn, r) = (roles.names[i], roles.roles[i]);
                first[i] = on_side(&rule.first, rn, &r.duties, &live[i]);
                second[i] = on_side(&rule.second, rn, &r.duties, &live[i]);
                if first[i] {
                    opens[i].push(k as u32);
                }
            }
            rules.push(Compiled { name, rule, first, second });
        }
        Rules { rules, opens, live }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The conflicts of a holder of `held` (role indexes, in the holder's order).
    fn conflicts(&self, held: &[u32]) -> Vec<Conflict> {
        let mut candidates: Vec<u32> = Vec::new();
        for &r in held {
            candidates.extend_from_slice(&self.opens[r as usize]);
        }
        if candidates.is_empty() {
            return Vec::new();
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut out = Vec::new();
        for k in candidates {
            let c = &self.rules[k as usize];
            let second: Vec<usize> = (0..held.len()).filter(|&i| c.second[held[i] as usize]).collect();
            if second.is_empty() {
                continue;
            }
            let first: Vec<usize> = (0..held.len()).filter(|&i| c.first[held[i] as usize]).collect();
            out.push(Conflict { rule: k, first, second });
        }
        out
    }

    /// Whether a holder of `held` conflicts with rule `k`.
    fn conflicts_with(&self, k: u32, held: &[u32]) -> bool {
        let c = &self.rules[k as usize];
        held.iter().any(|&r| c.first[r as usize]) && held.iter().any(|&r| c.second[r as usize])
    }
}

/// `` `buyer` (purchase-requisition) `` for each role of a side; what the role's live contents
/// add: `` `buyer` (privilege `prvApprove` (global) on `d365`) ``.
fn describe(roles: &RoleIndex, rules: &Rules, side: &SodSide, held: &[u32], hits: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for &i in hits {
        let r = held[i] as usize;
        let mut duties: Vec<String> =
            roles.roles[r].duties.iter().filter(|d| side.duties.contains(d)).cloned().collect();
        duties.extend(contents::reasons(side, &rules.live[r]));
        let s = if duties.is_empty() || side.roles.contains(roles.names[r]) {
            format!("`{}`", roles.names[r])
        } else {
            format!("`{}` ({})", roles.names[r], duties.join(", "))
        };
        if !parts.contains(&s) {
            parts.push(s);
        }
    }
    parts.join(" and ")
}

fn exception_for<'r>(rule: &'r SodRule, user: &Name) -> Option<&'r SodException> {
    rule.exceptions.iter().find(|e| &e.user == user)
}

pub(super) fn check(ctx: &PolicyContext, ix: &Index, out: &mut Vec<Finding>) {
    if ctx.desired.sod_rules.is_empty() {
        return;
    }
    let roles = &ix.roles;
    let rules = Rules::compile(ctx, roles);
    let now = ctx.now;
    let mut held: Vec<u32> = Vec::new();
    let mut grants: Vec<(u32, usize)> = Vec::new();
    for h in &ix.holders {
        if h.held.is_empty() {
            continue;
        }
        // Roles held through a team count as held, granted by the role that binds the team.
        grants.clear();
        grants.extend(h.held.iter().copied());
        grants.extend(h.through_teams.iter().map(|&(q, g, _)| (q, g)));
        held.clear();
        held.extend(grants.iter().map(|&(r, _)| r));
        for c in rules.conflicts(&held) {
            let compiled = &rules.rules[c.rule as usize];
            let rule = compiled.rule;
            let exception = if h.kind == Kind::User { exception_for(rule, h.name) } else { None };
            if exception.is_some_and(|e| !e.expires.has_passed(now)) {
                continue;
            }
            // The grant that completes the conflict: the later of the first grant on each side.
            let completing = grants[c.first[0]].1.max(grants[c.second[0]].1);
            let who = h.name.as_str();
            let mut message = format!(
                "`{who}` holds {} and {}, which SodRule `{}` keeps apart",
                describe(roles, &rules, &rule.first, &held, &c.first),
                describe(roles, &rules, &rule.second, &held, &c.second),
                compiled.name
            );
            let via: Vec<String> = c
                .first
                .iter()
                .chain(&c.second)
                .filter_map(|&i| h.through_teams.iter().find(|(q, _, _)| *q == held[i]))
                .map(|&(q, _, r)| {
                    format!(
                        "`{}` through the Dataverse team of role `{}`",
                        roles.names[q as usize], roles.names[r as usize]
                    )
                })
                .collect();
            if !via.is_empty() {
                message.push_str(&format!(" (holding {})", via.join(", ")));
            }
            if let Some(d) = &rule.description {
                message.push_str(&format!(": {}", d.trim()));
            }
            if let Some(e) = exception {
                message.push_str(&format!(" (the exception for `{who}` expired on {})", e.expires));
            }
            let rule_at = at_name(ctx, Kind::SodRule, compiled.name)
                .map(|l| format!(" ({}:{})", l.file.display(), l.line))
                .unwrap_or_default();
            let mut help = String::new();
            if let Some(m) = &rule.mitigation {
                help.push_str(&format!("{}. ", m.trim().trim_end_matches('.')));
            }
            if h.kind == Kind::User {
                help.push_str(&format!(
                    "Remove one of the roles, or add an exception for `{who}` with a reason and an expiry date to SodRule `{}`{rule_at}",
                    compiled.name
                ));
            } else {
                help.push_str("Split the roles between two service accounts");
            }
            out.push(
                Finding::new(Rule::SodConflict.id(), rule.severity, h.address(), message).help(help).at(ctx.locate(
                    h.kind,
                    h.name,
                    &h.grant_path(completing),
                )),
            );
        }
    }
    expired_exceptions(ctx, out);
    if ix.live.is_some() {
        live(ctx, ix, &rules, out);
    }
}

pub(crate) fn kind_address(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "user",
        Kind::Role => "role",
        Kind::ServiceAccount => "service-account",
        Kind::DataClassification => "data-classification",
        Kind::AuthenticationPolicy => "authentication-policy",
        Kind::EncryptionPolicy => "encryption-policy",
        Kind::SodRule => "sod-rule",
        Kind::Campaign => "campaign",
        Kind::Certification => "certification",
    }
}

/// `sod.exception-expired`: exceptions past their date.
fn expired_exceptions(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    for (name, rule) in &ctx.desired.sod_rules {
        for (i, e) in rule.exceptions.iter().enumerate() {
            if !e.expires.has_passed(ctx.now) {
                continue;
            }
            out.push(
                Finding::new(
                    Rule::SodExceptionExpired.id(),
                    default_severity(Rule::SodExceptionExpired),
                    format!("sod-rule.{name}"),
                    format!("the exception for `{}` in SodRule `{name}` expired on {}", e.user, e.expires),
                )
                .help("remove the exception, or renew it with a new reason and date after a review")
                .at(ctx.locate(
                    Kind::SodRule,
                    name,
                    &["exceptions".into(), i.into(), "expires".into()],
                )),
            );
        }
    }
}

/// `sod.live-conflict`: conflicts in the live state that git does not explain.
fn live(ctx: &PolicyContext, ix: &Index, rules: &Rules, out: &mut Vec<Finding>) {
    let Some(live) = &ix.live else { return };
    if rules.is_empty() {
        return;
    }
    let roles = &ix.roles;
    let now = ctx.now;
    let mut held: Vec<u32> = Vec::new();
    for (p, principal) in live.principals.iter().enumerate() {
        let ms = &live.memberships[p];
        held.clear();
        held.extend(ms.iter().filter(|m| m.active).filter_map(|m| m.role));
        if held.is_empty() {
            continue;
        }
        held.sort_unstable();
        held.dedup();
        let conflicts = rules.conflicts(&held);
        if conflicts.is_empty() {
            continue;
        }
        let key = principal.key();
        let git = principal.git.map(|g| &ix.holders[g]);
        // What git gives, including what it gives through a team (reported from the desired state).
        let git_held: Vec<u32> = git
            .map(|g| g.held.iter().map(|&(r, _)| r).chain(g.through_teams.iter().map(|&(q, _, _)| q)).collect())
            .unwrap_or_default();
        for c in conflicts {
            let compiled = &rules.rules[c.rule as usize];
            if let Some(g) = git {
                // Reported (or excepted) from the desired state.
                if rules.conflicts_with(c.rule, &git_held) {
                    continue;
                }
                if g.kind == Kind::User
                    && exception_for(compiled.rule, g.name).is_some_and(|e| !e.expires.has_passed(now))
                {
                    continue;
                }
            }
            // What the live state will hold after the plan.
            let mut after: Vec<u32> = Vec::new();
            for m in ms.iter().filter(|m| m.active) {
                if let Some(r) = m.role
                    && !ix.plan.revokes(live.targets[m.target], &key, &binding_key(&m.binding.binding))
                {
                    after.push(r);
                }
            }
            for &r in &git_held {
                for (t, b) in &roles.roles[r as usize].bindings {
                    if ix.plan.assigns(t, &key, &binding_key(b)) {
                        after.push(r);
                    }
                }
            }
            let resolved = !rules.conflicts_with(c.rule, &after);
            let severity = if resolved { Severity::Warn } else { compiled.rule.severity };
            let who = git.map(|g| g.name.as_str()).unwrap_or(principal.name);
            // The roles held outside git; the first names the address.
            let outside: Vec<u32> = c
                .first
                .iter()
                .chain(&c.second)
                .map(|&i| held[i])
                .filter(|r| !git_held.contains(r))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let first_outside = outside.first().copied().unwrap_or(held[c.first[0]]);
            let target = ms
                .iter()
                .find(|m| m.active && m.role == Some(first_outside))
                .map(|m| live.targets[m.target])
                .expect("held roles come from memberships");
            let targets: BTreeSet<&str> =
                ms.iter().filter(|m| m.active && m.role.is_some()).map(|m| live.targets[m.target].as_str()).collect();
            let outside_names: Vec<&str> = outside.iter().map(|&r| roles.names[r as usize].as_str()).collect();
            let mut message = format!(
                "on {}, `{who}` holds {} and {}, which SodRule `{}` keeps apart; ",
                targets.into_iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "),
                describe(roles, rules, &compiled.rule.first, &held, &c.first),
                describe(roles, rules, &compiled.rule.second, &held, &c.second),
                compiled.name
            );
            message.push_str(&match git {
                Some(_) => format!("git does not give them {}", super::list_some(&outside_names, 5)),
                None => "the account is not in git".to_string(),
            });
            let help = if resolved {
                "the plan removes the access granted outside git; apply it, and find out who granted it".to_string()
            } else {
                "the plan does not remove this access (the account is outside ownership.scope, protected, or unknown \
                 to git); remove it on the target, or record it in git with an exception"
                    .to_string()
            };
            let location = match git {
                Some(g) => ctx.locate(g.kind, g.name, &["name".into()]),
                None => at_name(ctx, Kind::SodRule, compiled.name),
            };
            let address = format!("{target}.assignment.{who}/{}", roles.names[first_outside as usize]);
            out.push(Finding::new(Rule::SodLiveConflict.id(), severity, address, message).help(help).at(location));
        }
    }
}

/// `sod.target-conflict`: segregation-of-duties conflicts a target reports itself (Finance &
/// Operations records them against its own rules), shown beside keyward's own; one the target
/// records as resolved (overridden or excluded) is information only.
pub(super) fn reported(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    let Some(live) = ctx.live else { return };
    let severity = super::default_severity(Rule::SodTargetConflict);
    for (target, lt) in live {
        for r in lt.reported.iter().filter(|r| r.kind == ReportedKind::SodConflict) {
            let git = r.user_name.as_deref().and_then(|u| {
                ctx.desired.users.iter().find(|(_, user)| user.user_name.eq_ignore_ascii_case(u)).map(|(n, _)| n)
            });
            let who = match (git, &r.user_name) {
                (Some(n), _) => n.to_string(),
                (None, Some(u)) => u.clone(),
                (None, None) => "unknown".to_string(),
            };
            let location = git.and_then(|n| ctx.locate(Kind::User, n, &["roles".into()]));
            out.push(
                Finding::new(
                    Rule::SodTargetConflict.id(),
                    if r.resolved { Severity::Info } else { severity },
                    format!("{target}.user.{who}"),
                    r.message.clone(),
                )
                .help("remove one of the two roles (in git, or on the target if git does not give it), or resolve the conflict on the target with a reason")
                .at(location),
            );
        }
    }
}
