//! Access hygiene: privileged assignments without (or with too distant) an expiry, expired
//! assignments still in git, users without a chain of active managers, service accounts without
//! an active owner, disabled users that still hold roles, and members of privileged groups that
//! keyward does not manage or whose userName imitates a managed one.

use std::collections::HashMap;

use super::{Holder, Index, RoleIndex, default_severity, in_force, list_some};
use crate::model::config::RequireManager;
use crate::model::{Kind, Name, UserStatus};
use crate::plan::Action;
use crate::policy::Rule;
use crate::policy::{Finding, PolicyContext};

pub(super) fn check(ctx: &PolicyContext, ix: &Index, out: &mut Vec<Finding>) {
    unmanaged_privileged_members(ctx, out);
    for h in &ix.holders {
        grants(ctx, ix, h, out);
        if h.disabled && !h.held.is_empty() {
            let held: Vec<&str> = h.held.iter().map(|&(_, gi)| h.grants[gi].role().as_str()).collect();
            out.push(
                Finding::new(
                    Rule::HygieneDisabledUserWithRoles.id(),
                    default_severity(Rule::HygieneDisabledUserWithRoles),
                    h.address(),
                    format!("user `{}` is disabled but still holds {}", h.name, list_some(&held, 5)),
                )
                .help("remove the roles of users who left; keyward keeps assigning them while they are listed")
                .at(ctx.locate(h.kind, h.name, &["status".into()])),
            );
        }
    }
    for (name, sa) in &ctx.desired.service_accounts {
        let owner = ctx.desired.users.get(&sa.owner);
        if owner.is_some_and(|o| o.status == UserStatus::Disabled) {
            out.push(
                Finding::new(
                    Rule::HygieneServiceAccountOwner.id(),
                    default_severity(Rule::HygieneServiceAccountOwner),
                    format!("service-account.{name}"),
                    format!("service account `{name}` is owned by `{}`, who is disabled", sa.owner),
                )
                .help("give the service account an active owner who answers for it")
                .at(ctx.locate(Kind::ServiceAccount, name, &["owner".into()])),
            );
        }
    }
    manager_chain(ctx, &ix.roles, out);
    live(ctx, ix, out);
}

/// Privileged assignments without an expiry or beyond the maximum; expired assignments.
fn grants(ctx: &PolicyContext, ix: &Index, h: &Holder, out: &mut Vec<Finding>) {
    let max = ctx.desired.settings.policy.max_privileged_assignment;
    let name = h.name;
    for (i, g) in h.grants.iter().enumerate() {
        if let Some(d) = g.expires()
            && d.has_passed(ctx.now)
        {
            let role = g.role();
            out.push(
                Finding::new(
                    Rule::HygieneExpiredAssignment.id(),
                    default_severity(Rule::HygieneExpiredAssignment),
                    h.address(),
                    format!("the assignment of `{role}` to `{name}` expired on {d}; keyward revokes it"),
                )
                .help("remove the expired assignment from the configuration")
                .at(ctx.locate(h.kind, name, &["roles".into(), i.into(), "expires".into()])),
            );
        }
    }
    for &(r, i) in &h.held {
        if !ix.roles.roles[r as usize].privileged {
            continue;
        }
        let g = &h.grants[i];
        let role = g.role();
        match g.expires() {
            None => {
                let max_hint = max.map(|m| format!(" at most {m} from today")).unwrap_or_default();
                out.push(
                    Finding::new(
                        Rule::HygienePrivilegedWithoutExpiry.id(),
                        default_severity(Rule::HygienePrivilegedWithoutExpiry),
                        h.address(),
                        format!("`{name}` holds privileged role `{role}` without an expiry"),
                    )
                    .help(format!(
                        "write the assignment as {{role: {role}, expires: YYYY-MM-DD, reason: ..., ticket: ...}} with a date{max_hint}, and renew it after a review"
                    ))
                    .at(ctx.locate(h.kind, name, &h.grant_path(i))),
                );
            }
            Some(d) => {
                let Some(m) = max else { continue };
                let limit = ctx.now + m.to_chrono();
                if d.end() > limit + chrono::TimeDelta::days(1) {
                    let latest = limit.date_naive().format("%Y-%m-%d");
                    out.push(
                        Finding::new(
                            Rule::HygienePrivilegedExpiryTooLong.id(),
                            default_severity(Rule::HygienePrivilegedExpiryTooLong),
                            h.address(),
                            format!(
                                "`{name}` holds privileged role `{role}` until {d}, longer than policy.maxPrivilegedAssignment ({m})"
                            ),
                        )
                        .help(format!("set `expires` to {latest} or earlier, and renew the assignment when it ends"))
                        .at(ctx.locate(h.kind, name, &["roles".into(), i.into(), "expires".into()])),
                    );
                }
            }
        }
    }
}

/// Whether a user's chain of managers is whole, memoised.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chain {
    Ok,
    /// Broken at this user (index into the users list): no manager, or disabled.
    Broken(usize),
}

fn manager_chain(ctx: &PolicyContext, roles: &RoleIndex, out: &mut Vec<Finding>) {
    let p = &ctx.desired.settings.policy;
    let mode = p.require_manager.unwrap_or_default();
    if mode == RequireManager::None {
        return;
    }
    let users: Vec<(&Name, &crate::model::User)> = ctx.desired.users.iter().collect();
    let index: HashMap<&Name, usize> = users.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
    let top = |n: &Name| p.top_of_chain.contains(n);
    let mut memo: Vec<Option<Chain>> = vec![None; users.len()];
    // The state of the chain above user `i` (not counting `i` itself), walking up iteratively
    // and memoising every user on the way.
    let mut above = |i: usize| -> Chain {
        let mut path = Vec::new();
        let mut cur = i;
        let result = loop {
            if let Some(c) = memo[cur] {
                break c;
            }
            path.push(cur);
            let (name, user) = users[cur];
            if top(name) {
                break Chain::Ok;
            }
            match user.manager.as_ref().and_then(|m| index.get(m)) {
                None => break Chain::Broken(cur),
                // Validation rejects cycles; stop anyway rather than loop.
                Some(_) if path.len() > users.len() => break Chain::Broken(cur),
                Some(&m) if users[m].1.status == UserStatus::Disabled => break Chain::Broken(m),
                Some(&m) => cur = m,
            }
        };
        for p in path {
            memo[p] = Some(result);
        }
        result
    };
    for (i, (name, user)) in users.iter().enumerate() {
        if user.status == UserStatus::Disabled {
            continue;
        }
        if mode == RequireManager::Privileged {
            let privileged = user
                .roles
                .iter()
                .filter(|g| in_force(g, ctx.now))
                .any(|g| roles.get(g.role().as_str()).is_some_and(|r| roles.roles[r as usize].privileged));
            if !privileged {
                continue;
            }
        }
        let Chain::Broken(at) = above(i) else { continue };
        let (broken, bu) = users[at];
        let (message, path) = if at == i {
            (format!("user `{name}` has no manager"), vec!["name".into()])
        } else if bu.status == UserStatus::Disabled {
            (
                format!("the manager chain of `{name}` passes through `{broken}`, who is disabled"),
                vec!["manager".into()],
            )
        } else {
            (
                format!(
                    "the manager chain of `{name}` ends at `{broken}`, who has no manager and is not in policy.topOfChain"
                ),
                vec!["manager".into()],
            )
        };
        out.push(
            Finding::new(Rule::HygieneManagerChain.id(), default_severity(Rule::HygieneManagerChain), format!("user.{name}"), message)
                .help("set `manager` to an active user, or list the head of the organisation in policy.topOfChain in keyward.yaml")
                .at(ctx.locate(Kind::User, name, &path)),
        );
    }
}

/// Live: disabled accounts that are still members of role bindings; service accounts without
/// an owner that git does not know.
fn live(ctx: &PolicyContext, ix: &Index, out: &mut Vec<Finding>) {
    let (Some(live), Some(targets)) = (&ix.live, ctx.live) else { return };
    for (p, principal) in live.principals.iter().enumerate() {
        let ms = &live.memberships[p];
        if ms.iter().all(|m| m.active) {
            continue;
        }
        let git = principal.git.map(|g| &ix.holders[g]);
        let who = git.map(|g| g.name.as_str()).unwrap_or(principal.name);
        for (t, target) in live.targets.iter().enumerate() {
            let labels: Vec<String> =
                ms.iter().filter(|m| m.target == t && !m.active).map(|m| m.binding.binding.label()).collect();
            if labels.is_empty() {
                continue;
            }
            let address = format!("{target}.user.{who}");
            if ix.plan.has(&address, Action::Enable) {
                continue;
            }
            out.push(
                Finding::new(
                    Rule::HygieneDisabledUserWithRoles.id(),
                    default_severity(Rule::HygieneDisabledUserWithRoles),
                    address,
                    format!(
                        "the disabled account `{}` on `{target}` is still a member of {}",
                        principal.name,
                        list_some(&labels, 5)
                    ),
                )
                .help("remove the memberships of accounts that are disabled")
                .at(git.and_then(|g| ctx.locate(g.kind, g.name, &["name".into()]))),
            );
        }
    }
    let git_sas: std::collections::HashSet<&str> = ctx.desired.service_accounts.keys().map(Name::as_str).collect();
    for (t, lt) in targets {
        for s in &lt.service_accounts {
            // An application user (Dataverse, F&O: known by its client id, its name there) stands
            // for an Entra app registration, whose owner is the directory's to report;
            // environments hold several built-in ones.
            if s.owner.as_deref().is_some_and(|o| !o.trim().is_empty())
                || git_sas.contains(s.name.as_str())
                || s.application_id.as_deref() == Some(s.name.as_str())
            {
                continue;
            }
            out.push(
                Finding::new(
                    Rule::HygieneServiceAccountOwner.id(),
                    default_severity(Rule::HygieneServiceAccountOwner),
                    format!("{t}.service-account.{}", s.name),
                    format!("service account `{}` on `{t}` has no owner, and git does not describe it", s.name),
                )
                .help("add a ServiceAccount document with an owner for it (keyward import writes one), or remove it"),
            );
        }
    }
}

/// Members of a live object bound to a privileged role that keyward cannot see as managed: an
/// account outside `ownership.scope` (the planner neither revokes nor shows it), or one whose
/// userName is not a managed userName but reads like one (another case, look-alike letters,
/// invisible characters). Protected accounts are expected there and not reported.
fn unmanaged_privileged_members(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    let Some(live) = ctx.live else { return };
    let settings = &ctx.desired.settings;
    let in_git: HashMap<String, &str> =
        ctx.desired.users.values().map(|u| (skeleton(&u.user_name), u.user_name.as_str())).collect();
    let git_exact: std::collections::HashSet<&str> = ctx.desired.users.values().map(|u| u.user_name.as_str()).collect();
    let git_lower: std::collections::HashSet<String> =
        ctx.desired.users.values().map(|u| u.user_name.to_lowercase()).collect();
    for (target, lt) in live {
        let accounts: HashMap<&str, &crate::model::LiveAccount> =
            lt.accounts.iter().map(|a| (a.id.as_str(), a)).collect();
        let mut twins: HashMap<String, usize> = HashMap::new();
        for a in &lt.accounts {
            *twins.entry(a.user_name.to_lowercase()).or_default() += 1;
        }
        for (role_name, role) in ctx.desired.roles.iter().filter(|(_, r)| r.privileged) {
            let Some(binding) = role.bindings.get(target) else { continue };
            let want = binding.object_name().to_lowercase();
            let bound = lt
                .bindings
                .iter()
                .filter(|b| b.binding.kind() == binding.kind() && b.binding.object_name().to_lowercase() == want);
            for account in bound.flat_map(|b| &b.members).filter_map(|id| accounts.get(id.as_str())) {
                let user_name = account.user_name.as_str();
                if settings.is_protected(user_name) {
                    continue;
                }
                let lower = user_name.to_lowercase();
                let twin = if git_lower.contains(&lower) {
                    // The managed account, written in another case by the target; unless two
                    // live accounts differ only in case, and then each is reported.
                    (!git_exact.contains(user_name) && twins.get(&lower).is_some_and(|n| *n > 1))
                        .then(|| in_git.get(&skeleton(user_name)).copied())
                        .flatten()
                } else {
                    in_git.get(&skeleton(user_name)).copied()
                };
                let why = match twin {
                    Some(managed) => format!("looks like `{managed}` but is another account"),
                    None if !settings.scope.contains(user_name) => {
                        "is outside ownership.scope, so keyward neither manages nor revokes it".to_string()
                    }
                    None => continue,
                };
                out.push(
                    Finding::new(
                        Rule::HygieneUnmanagedPrivilegedMember.id(),
                        default_severity(Rule::HygieneUnmanagedPrivilegedMember),
                        format!("{target}.assignment.{user_name}/{role_name}"),
                        format!(
                            "`{user_name}` holds privileged role `{role_name}` on `{target}` ({}) and {why}",
                            binding.label()
                        ),
                    )
                    .help("remove the account from the group on the target, or bring it into git and inside ownership.scope")
                    .at(ctx.locate(Kind::Role, role_name, &["bindings".into(), target.as_str().into()])),
                );
            }
        }
    }
}

/// A userName as it reads: lower-cased, invisible characters dropped, and letters that look
/// like Latin ones (Cyrillic, Greek, full-width, digits that pass for letters) folded to them.
pub(crate) fn skeleton(user_name: &str) -> String {
    user_name
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}'))
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            'а' | 'α' => 'a',
            'с' | 'ϲ' => 'c',
            'ԁ' => 'd',
            'е' | 'ε' => 'e',
            'һ' => 'h',
            'і' | 'ι' | 'ı' | '1' | '|' => 'l',
            'ј' => 'j',
            'κ' | 'к' => 'k',
            'ν' => 'v',
            'о' | 'ο' | '0' => 'o',
            'р' | 'ρ' => 'p',
            'ѕ' => 's',
            'τ' | 'т' => 't',
            'у' | 'γ' => 'y',
            'х' | 'χ' => 'x',
            'ԝ' | 'ω' => 'w',
            c => c,
        })
        .map(|c| if c == 'i' { 'l' } else { c })
        .collect()
}

#[cfg(test)]
mod lookalike_tests {
    use super::skeleton;

    #[test]
    fn look_alike_user_names_share_a_skeleton_and_others_do_not() {
        let real = skeleton("alice@northwind.example");
        for twin in [
            "Alice@Northwind.example",
            "\u{0430}lice@northwind.example",
            "al\u{200B}ice@northwind.example",
            "a1ice@northwind.example",
        ] {
            assert_eq!(skeleton(twin), real, "{twin:?}");
        }
        assert_ne!(skeleton("alicia@northwind.example"), real);
        assert_ne!(skeleton("bob@northwind.example"), real);
    }
}
