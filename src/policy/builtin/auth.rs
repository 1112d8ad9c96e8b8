//! Authentication: holders of privileged roles covered by an AuthenticationPolicy with
//! `mfa: required` (and limited to phishing-resistant methods where a role requires it);
//! forbidden methods enabled on a target; accounts that have not signed in for too long; people
//! whom `mfa: required` covers but who have registered no second method it accepts (where the
//! target reports registered methods).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Index, PlanIndex, RoleIndex, default_severity, list_some};
use crate::model::{AppliesTo, AuthMethod, AuthStrength, Kind, MfaRequirement, Name, Severity};
use crate::policy::Rule;
use crate::policy::{Finding, PolicyContext};

const PHISHING_RESISTANT: [AuthMethod; 3] =
    [AuthMethod::Fido2, AuthMethod::WindowsHelloForBusiness, AuthMethod::X509Certificate];

pub(super) fn check(ctx: &PolicyContext, ix: &Index, out: &mut Vec<Finding>) {
    coverage(ctx, ix, out);
    forbidden_methods(ctx, &ix.plan, out);
    stale(ctx, ix, out);
    unregistered(ctx, ix, out);
}

/// Whether a policy covers someone who holds `held` (role indexes).
fn applies(a: &AppliesTo, roles: &RoleIndex, held: &[u32], privileged: bool) -> bool {
    a.all == Some(true)
        || (a.privileged == Some(true) && privileged)
        || a.roles.as_ref().is_some_and(|rs| held.iter().any(|&r| rs.contains(roles.names[r as usize])))
}

fn coverage(ctx: &PolicyContext, ix: &Index, out: &mut Vec<Finding>) {
    let roles = &ix.roles;
    let policies: Vec<&crate::model::AuthenticationPolicy> = ctx.desired.authentication_policies.values().collect();
    let mfa: Vec<&AppliesTo> =
        policies.iter().filter(|p| p.mfa == Some(MfaRequirement::Required)).map(|p| &p.applies_to).collect();
    let strict: Vec<&AppliesTo> = policies
        .iter()
        .filter(|p| p.mfa == Some(MfaRequirement::Required))
        .filter(|p| {
            p.methods
                .as_ref()
                .is_some_and(|m| !m.allowed.is_empty() && m.allowed.iter().all(|a| PHISHING_RESISTANT.contains(a)))
        })
        .map(|p| &p.applies_to)
        .collect();
    let blanket = mfa.iter().any(|a| a.all == Some(true) || a.privileged == Some(true));
    let privileged: Vec<bool> = roles.roles.iter().map(|r| r.privileged).collect();
    let needs_strict: Vec<bool> = roles
        .roles
        .iter()
        .map(|r| r.requires.as_ref().and_then(|q| q.authentication) == Some(AuthStrength::PhishingResistant))
        .collect();
    if !privileged.iter().any(|p| *p) && !needs_strict.iter().any(|p| *p) {
        return;
    }
    let mut uncovered: BTreeMap<u32, Vec<&Name>> = BTreeMap::new();
    let mut weak: BTreeMap<u32, Vec<&Name>> = BTreeMap::new();
    let mut held: Vec<u32> = Vec::new();
    for h in ix.users() {
        if h.disabled || h.held.is_empty() {
            continue;
        }
        let name = h.name;
        held.clear();
        held.extend(h.held.iter().map(|&(r, _)| r));
        let is_privileged = held.iter().any(|&r| privileged[r as usize]);
        if is_privileged && !blanket && !mfa.iter().any(|a| applies(a, roles, &held, true)) {
            for &r in held.iter().filter(|&&r| privileged[r as usize]) {
                uncovered.entry(r).or_default().push(name);
            }
        }
        if held.iter().any(|&r| needs_strict[r as usize])
            && !strict.iter().any(|a| applies(a, roles, &held, is_privileged))
        {
            for &r in held.iter().filter(|&&r| needs_strict[r as usize]) {
                weak.entry(r).or_default().push(name);
            }
        }
    }
    for (r, names) in uncovered {
        let role = roles.names[r as usize];
        out.push(
            Finding::new(
                Rule::AuthPrivilegedWithoutMfa.id(),
                default_severity(Rule::AuthPrivilegedWithoutMfa),
                format!("role.{role}"),
                format!(
                    "privileged role `{role}` has {} holder{} not covered by an AuthenticationPolicy with `mfa: required`: {}",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    list_some(&names, 5)
                ),
            )
            .help("add an AuthenticationPolicy with appliesTo: {privileged: true} and mfa: required, or list the role in one's appliesTo.roles")
            .at(ctx.locate(Kind::Role, role, &["privileged".into()])),
        );
    }
    for (r, names) in weak {
        let role = roles.names[r as usize];
        out.push(
            Finding::new(
                Rule::AuthPhishingResistantNotEnforced.id(),
                default_severity(Rule::AuthPhishingResistantNotEnforced),
                format!("role.{role}"),
                format!(
                    "role `{role}` requires phishing-resistant authentication, but no AuthenticationPolicy covering {} limits them to phishing-resistant methods",
                    list_some(&names, 5)
                ),
            )
            .help("in a policy with mfa: required that covers the role, set methods.allowed to fido2, windowsHelloForBusiness and x509Certificate only")
            .at(ctx.locate(Kind::Role, role, &["requires".into(), "authentication".into()])),
        );
    }
}

/// Methods that a policy forbids, enabled in a target's live policy.
fn forbidden_methods(ctx: &PolicyContext, plan: &PlanIndex, out: &mut Vec<Finding>) {
    let Some(live) = ctx.live else { return };
    for (t, lt) in live {
        let Some(enabled) = &lt.auth_methods else { continue };
        let mut seen: HashSet<AuthMethod> = HashSet::new();
        for (pname, p) in &ctx.desired.authentication_policies {
            let Some(m) = &p.methods else { continue };
            for (i, method) in m.forbidden.iter().enumerate() {
                if enabled.get(method) != Some(&true) || !seen.insert(*method) {
                    continue;
                }
                let fixed = plan.turns_off(t, method.as_str());
                let (severity, help) = if fixed {
                    (Severity::Warn, "the plan turns it off; apply it".to_string())
                } else {
                    (
                        default_severity(Rule::AuthForbiddenMethodEnabled),
                        format!(
                            "turn `{}` off on `{t}`; keyward cannot change this target's methods policy",
                            method.as_str()
                        ),
                    )
                };
                out.push(
                    Finding::new(
                        Rule::AuthForbiddenMethodEnabled.id(),
                        severity,
                        format!("{t}.auth-method.{}", method.as_str()),
                        format!(
                            "sign-in method `{}` is enabled on `{t}`, but AuthenticationPolicy `{pname}` forbids it",
                            method.as_str()
                        ),
                    )
                    .help(help)
                    .at(ctx.locate(
                        Kind::AuthenticationPolicy,
                        pname,
                        &["methods".into(), "forbidden".into(), i.into()],
                    )),
                );
            }
        }
    }
}

/// Lower-cased userName → index of the person in git, for the people of the live index.
fn people_in_git<'a>(live: &'a super::LiveIndex) -> HashMap<&'a str, usize> {
    live.principals.iter().filter(|p| !p.service_account).filter_map(|p| p.git.map(|g| (p.lower.as_ref(), g))).collect()
}

/// Active accounts that have not signed in for longer than a covering policy's `staleAfter`.
fn stale(ctx: &PolicyContext, ix: &Index, out: &mut Vec<Finding>) {
    let (Some(targets), Some(live)) = (ctx.live, &ix.live) else { return };
    let roles = &ix.roles;
    let policies: Vec<(&Name, &crate::model::AuthenticationPolicy)> =
        ctx.desired.authentication_policies.iter().filter(|(_, p)| p.stale_after.is_some()).collect();
    if policies.is_empty() {
        return;
    }
    let git = people_in_git(live);
    for (t, lt) in targets {
        for a in lt.accounts.iter().filter(|a| a.active) {
            let Some(last) = a.last_sign_in else { continue };
            let holder = git.get(super::lower(&a.user_name).as_ref()).map(|&g| &ix.holders[g]);
            let held: Vec<u32> = holder.map(|h| h.held.iter().map(|&(r, _)| r).collect()).unwrap_or_default();
            let privileged = held.iter().any(|&r| roles.roles[r as usize].privileged);
            let Some((pname, p)) = policies.iter().find(|(_, p)| applies(&p.applies_to, roles, &held, privileged))
            else {
                continue;
            };
            let after = p.stale_after.expect("filtered");
            if ctx.now - last <= after.to_chrono() {
                continue;
            }
            let who = holder.map(|h| h.name.to_string()).unwrap_or_else(|| a.user_name.clone());
            let days = (ctx.now - last).num_days();
            let location = match holder {
                Some(h) => ctx.locate(h.kind, h.name, &["name".into()]),
                None => ctx.locate(Kind::AuthenticationPolicy, pname, &["staleAfter".into()]),
            };
            out.push(
                Finding::new(
                    Rule::AuthStaleAccount.id(),
                    default_severity(Rule::AuthStaleAccount),
                    format!("{t}.user.{who}"),
                    format!(
                        "`{}` on `{t}` last signed in {days} days ago, longer than staleAfter ({after}) of AuthenticationPolicy `{pname}`",
                        a.user_name
                    ),
                )
                .help("disable the account (status: disabled), or remove the user from the configuration")
                .at(location),
            );
        }
    }
}

/// Methods that do not count as a second factor: the password itself, a temporary access pass
/// (a bootstrap credential) and email (a recovery channel).
const NOT_SECOND_FACTOR: [AuthMethod; 3] = [AuthMethod::Password, AuthMethod::TemporaryAccessPass, AuthMethod::Email];

/// Active accounts covered by a policy with `mfa: required` whose registered methods (where the
/// target reports them) include no second factor that policy accepts.
fn unregistered(ctx: &PolicyContext, ix: &Index, out: &mut Vec<Finding>) {
    let (Some(targets), Some(live)) = (ctx.live, &ix.live) else { return };
    let roles = &ix.roles;
    let policies: Vec<(&Name, &crate::model::AuthenticationPolicy)> =
        ctx.desired.authentication_policies.iter().filter(|(_, p)| p.mfa == Some(MfaRequirement::Required)).collect();
    if policies.is_empty() {
        return;
    }
    let git = people_in_git(live);
    for (t, lt) in targets {
        for a in lt.accounts.iter().filter(|a| a.active) {
            let Some(registered) = &a.registered_methods else { continue };
            let Some(holder) = git.get(super::lower(&a.user_name).as_ref()).map(|&g| &ix.holders[g]) else {
                continue;
            };
            let held: Vec<u32> = holder.held.iter().map(|&(r, _)| r).collect();
            let privileged = held.iter().any(|&r| roles.roles[r as usize].privileged);
            for (pname, p) in policies.iter().filter(|(_, p)| applies(&p.applies_to, roles, &held, privileged)) {
                let accepted = |m: &AuthMethod| {
                    !NOT_SECOND_FACTOR.contains(m)
                        && p.methods.as_ref().is_none_or(|ms| {
                            (ms.allowed.is_empty() || ms.allowed.contains(m)) && !ms.forbidden.contains(m)
                        })
                };
                if registered.iter().any(accepted) {
                    continue;
                }
                let shown: Vec<&str> = registered.iter().map(|m| m.as_str()).collect();
                out.push(
                    Finding::new(
                        Rule::AuthMfaNotRegistered.id(),
                        default_severity(Rule::AuthMfaNotRegistered),
                        format!("{t}.user.{}", holder.name),
                        format!(
                            "`{}` on `{t}` has registered no second sign-in method that AuthenticationPolicy `{pname}` accepts (registered: {})",
                            a.user_name,
                            if shown.is_empty() { "none".to_string() } else { shown.join(", ") }
                        ),
                    )
                    .help("ask the person to register an accepted method (for example a FIDO2 key or the authenticator app)")
                    .at(ctx.locate(holder.kind, holder.name, &["name".into()])),
                );
                break;
            }
        }
    }
}
