//! The built-in rules, one file per family. Each family reads the [`PolicyContext`] and pushes
//! findings; shared indexes (roles by name, live bindings by role, plan operations) are built
//! once here.

mod auth;
mod contents;
mod credential;
mod data;
mod encryption;
mod hygiene;
pub mod secrets;
mod sod;
mod teams;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use super::{Finding, PolicyContext, Rule, rule_info};
use crate::load::PathSeg;
use crate::model::{
    Binding, BindingKind, DesiredState, Kind, Level, LiveBinding, LiveTarget, Name, Role, RoleGrant, Severity,
    Timestamp, UserStatus,
};
use crate::plan::{Action, Operation, Principal};

/// Runs every built-in rule.
pub(super) fn run(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    let ix = Index::new(ctx);
    sod::check(ctx, &ix, out);
    sod::reported(ctx, out);
    hygiene::check(ctx, &ix, out);
    auth::check(ctx, &ix, out);
    credential::check(ctx, &ix.plan, out);
    data::check(ctx, out);
    contents::check(ctx, out);
    encryption::check(ctx, out);
    secrets::check(ctx, out);
    settings(ctx, out);
}

/// FxHash (rustc's): much faster than SipHash for the short keys hashed here, and the keys
/// come from the configuration and the targets, not from an adversary who could benefit from
/// collisions.
pub(crate) type FxMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// Roles by a dense index, so per-user work is over small integers.
pub(crate) struct RoleIndex<'a> {
    pub names: Vec<&'a Name>,
    pub roles: Vec<&'a Role>,
    by_name: FxMap<&'a str, u32>,
}

impl<'a> RoleIndex<'a> {
    pub fn new(desired: &'a DesiredState) -> Self {
        let mut names = Vec::with_capacity(desired.roles.len());
        let mut roles = Vec::with_capacity(desired.roles.len());
        let mut by_name = FxMap::default();
        for (i, (n, r)) in desired.roles.iter().enumerate() {
            names.push(n);
            roles.push(r);
            by_name.insert(n.as_str(), i as u32);
        }
        RoleIndex { names, roles, by_name }
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The role bound to each binding of `target`, keyed by binding kind and lower-cased
    /// object name (how the planner matches live bindings).
    pub fn bound_on(&self, target: &Name) -> FxMap<(BindingKind, String), u32> {
        let mut out = FxMap::default();
        for (i, r) in self.roles.iter().enumerate() {
            if let Some(b) = r.bindings.get(target) {
                out.insert(binding_key(b), i as u32);
            }
        }
        out
    }
}

/// A user or service account of the configuration, with the grants in force resolved.
pub(crate) struct Holder<'a> {
    pub kind: Kind,
    pub name: &'a Name,
    /// A user's userName.
    pub user_name: Option<&'a str>,
    pub grants: &'a [RoleGrant],
    /// A user with `status: disabled`.
    pub disabled: bool,
    /// (role index, grant index) of each grant in force, in the order written.
    pub held: Vec<(u32, usize)>,
    /// Roles held through a Dataverse team that a held role binds and not held otherwise:
    /// (role index, grant index of the role that binds the team, that role's index).
    pub through_teams: Vec<(u32, usize, u32)>,
}

impl Holder<'_> {
    /// The most specific path of grant `i`: the role's name.
    pub fn grant_path(&self, i: usize) -> Vec<PathSeg> {
        match &self.grants[i] {
            RoleGrant::Name(_) => vec!["roles".into(), i.into()],
            RoleGrant::Detailed(_) => vec!["roles".into(), i.into(), "role".into()],
        }
    }

    pub fn address(&self) -> String {
        format!("{}.{}", sod::kind_address(self.kind), self.name)
    }
}

/// What the built-in rules share: roles, holders (users first, then service accounts), the
/// plan, and the live state indexed by principal.
pub(crate) struct Index<'a> {
    pub roles: RoleIndex<'a>,
    pub holders: Vec<Holder<'a>>,
    pub plan: PlanIndex,
    pub live: Option<LiveIndex<'a>>,
}

impl<'a> Index<'a> {
    fn new(ctx: &PolicyContext<'a>) -> Self {
        let roles = RoleIndex::new(ctx.desired);
        // An expiry date is inclusive: a grant is in force through its `expires` day (UTC); an
        // expiry time ends it at that instant.
        let now = ctx.now;
        let resolve = |grants: &'a [RoleGrant]| -> Vec<(u32, usize)> {
            grants
                .iter()
                .enumerate()
                .filter(|(_, g)| g.expires().is_none_or(|d| !d.has_passed(now)))
                .filter_map(|(i, g)| roles.get(g.role().as_str()).map(|r| (r, i)))
                .collect()
        };
        let mut holders = Vec::with_capacity(ctx.desired.users.len() + ctx.desired.service_accounts.len());
        for (name, u) in &ctx.desired.users {
            holders.push(Holder {
                kind: Kind::User,
                name,
                user_name: Some(&u.user_name),
                grants: &u.roles,
                disabled: u.status == UserStatus::Disabled,
                held: resolve(&u.roles),
                through_teams: Vec::new(),
            });
        }
        for (name, s) in &ctx.desired.service_accounts {
            holders.push(Holder {
                kind: Kind::ServiceAccount,
                name,
                user_name: None,
                grants: &s.roles,
                disabled: false,
                held: resolve(&s.roles),
                through_teams: Vec::new(),
            });
        }
        let through = teams::through_teams(&roles, ctx.live);
        if !through.is_empty() {
            for h in &mut holders {
                for &(r, g) in &h.held {
                    for (q, _) in through.get(&r).into_iter().flatten() {
                        if !h.held.iter().any(|(x, _)| x == q) && !h.through_teams.iter().any(|(x, _, _)| x == q) {
                            h.through_teams.push((*q, g, r));
                        }
                    }
                }
            }
        }
        let live = ctx.live.map(|l| LiveIndex::new(l, &roles, &holders));
        Index { plan: PlanIndex::new(ctx), roles, holders, live }
    }

    pub fn users(&self) -> impl Iterator<Item = &Holder<'a>> {
        self.holders.iter().filter(|h| h.kind == Kind::User)
    }
}

/// A person or service account found on the live targets, across targets.
pub(crate) struct LivePrincipal<'a> {
    pub service_account: bool,
    /// The lower-cased userName, or the service account's name.
    pub lower: Cow<'a, str>,
    /// The userName (as the first target spells it) or the service account's name.
    pub name: &'a str,
    /// Index into [`Index::holders`] when git describes this principal.
    pub git: Option<usize>,
}

impl LivePrincipal<'_> {
    /// The key the plan index uses for this principal.
    pub fn key(&self) -> String {
        if self.service_account { format!("s:{}", self.lower) } else { format!("u:{}", self.lower) }
    }
}

/// One live membership of a principal.
pub(crate) struct Membership<'a> {
    pub target: usize,
    pub binding: &'a LiveBinding,
    /// The role bound to this binding on the target.
    pub role: Option<u32>,
    /// Whether the member account is active there.
    pub active: bool,
}

/// The live state by principal.
pub(crate) struct LiveIndex<'a> {
    pub targets: Vec<&'a Name>,
    pub principals: Vec<LivePrincipal<'a>>,
    pub memberships: Vec<Vec<Membership<'a>>>,
}

impl<'a> LiveIndex<'a> {
    fn new(live: &'a BTreeMap<Name, LiveTarget>, roles: &RoleIndex, holders: &[Holder<'a>]) -> Self {
        // Principals by (is a service account, lower-cased key).
        let mut known: FxMap<(bool, Cow<'a, str>), (usize, Option<usize>)> = FxMap::default();
        for (i, h) in holders.iter().enumerate() {
            let key = match h.user_name {
                Some(u) => (false, lower(u)),
                None => (true, Cow::Borrowed(h.name.as_str())),
            };
            known.insert(key, (usize::MAX, Some(i)));
        }
        let mut ix = LiveIndex { targets: Vec::new(), principals: Vec::new(), memberships: Vec::new() };
        let mut principal = |ix: &mut LiveIndex<'a>, service_account: bool, name: &'a str| -> usize {
            let key = (service_account, if service_account { Cow::Borrowed(name) } else { lower(name) });
            let entry = known.entry(key).or_insert((usize::MAX, None));
            if entry.0 == usize::MAX {
                entry.0 = ix.principals.len();
                ix.principals.push(LivePrincipal {
                    service_account,
                    lower: entry_key_clone(name, service_account),
                    name,
                    git: entry.1,
                });
                ix.memberships.push(Vec::new());
            }
            entry.0
        };
        for (ti, (t, lt)) in live.iter().enumerate() {
            ix.targets.push(t);
            let bound = roles.bound_on(t);
            let mut ids: FxMap<&str, (usize, bool)> = FxMap::default();
            ids.reserve(lt.accounts.len() + lt.service_accounts.len());
            for a in &lt.accounts {
                let p = principal(&mut ix, false, &a.user_name);
                ids.insert(a.id.as_str(), (p, a.active));
            }
            for s in &lt.service_accounts {
                let p = principal(&mut ix, true, &s.name);
                ids.insert(s.id.as_str(), (p, true));
            }
            for b in &lt.bindings {
                let role = if bound.is_empty() { None } else { bound.get(&binding_key(&b.binding)).copied() };
                // A team's members hold its security roles too.
                let through: Vec<u32> = lt
                    .team_roles
                    .get(&b.id)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| bound.get(&(BindingKind::SecurityRole, r.to_lowercase())).copied())
                    .collect();
                for m in &b.members {
                    if let Some(&(p, active)) = ids.get(m.as_str()) {
                        ix.memberships[p].push(Membership { target: ti, binding: b, role, active });
                        for &q in &through {
                            ix.memberships[p].push(Membership { target: ti, binding: b, role: Some(q), active });
                        }
                    }
                }
            }
        }
        ix
    }
}

fn entry_key_clone(name: &str, service_account: bool) -> Cow<'_, str> {
    if service_account { Cow::Borrowed(name) } else { lower(name) }
}

pub(crate) fn binding_key(b: &Binding) -> (BindingKind, String) {
    (b.kind(), b.object_name().to_lowercase())
}

/// Whether a grant is still in force at `now`.
pub(crate) fn in_force(g: &RoleGrant, now: Timestamp) -> bool {
    g.expires().is_none_or(|d| !d.has_passed(now))
}

/// Lower-cases a userName, without allocating when it already is.
pub(crate) fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) || !s.is_ascii() {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// What the plan will do, indexed for the rules that weigh a live finding against it.
#[derive(Default)]
pub(crate) struct PlanIndex {
    /// (target, principal key, binding key) of every revoke.
    revokes: HashSet<(String, String, (BindingKind, String))>,
    /// (target, principal key, binding key) of every assign.
    assigns: HashSet<(String, String, (BindingKind, String))>,
    /// Every (address, action).
    actions: HashSet<(String, Action)>,
    /// (target, method) the plan turns off.
    methods_off: HashSet<(String, String)>,
}

/// A principal's key: lower-cased userName for people, the name for service accounts.
pub(crate) fn principal_key(p: &Principal) -> String {
    match p {
        Principal::User(u) => format!("u:{}", u.to_lowercase()),
        Principal::ServiceAccount(s) => format!("s:{s}"),
    }
}

impl PlanIndex {
    fn new(ctx: &PolicyContext) -> Self {
        let mut ix = PlanIndex::default();
        let Some(plan) = ctx.plan else { return ix };
        for c in &plan.changes {
            let target = c.address.target.to_string();
            ix.actions.insert((c.address.to_string(), c.action));
            match &c.operation {
                Operation::Revoke { principal, binding } => {
                    ix.revokes.insert((target, principal_key(principal), binding_key(binding)));
                }
                Operation::Assign { principal, binding } => {
                    ix.assigns.insert((target, principal_key(principal), binding_key(binding)));
                }
                Operation::SetAuthMethod { method, enabled: false } => {
                    ix.methods_off.insert((target, method.as_str().to_string()));
                }
                _ => {}
            }
        }
        ix
    }

    pub fn revokes(&self, target: &Name, principal: &str, binding: &(BindingKind, String)) -> bool {
        self.revokes.contains(&(target.to_string(), principal.to_string(), binding.clone()))
    }

    pub fn assigns(&self, target: &Name, principal: &str, binding: &(BindingKind, String)) -> bool {
        self.assigns.contains(&(target.to_string(), principal.to_string(), binding.clone()))
    }

    pub fn has(&self, address: &str, action: Action) -> bool {
        self.actions.contains(&(address.to_string(), action))
    }

    pub fn turns_off(&self, target: &Name, method: &str) -> bool {
        self.methods_off.contains(&(target.to_string(), method.to_string()))
    }
}

pub(crate) fn level_str(l: Level) -> &'static str {
    match l {
        Level::Public => "public",
        Level::Internal => "internal",
        Level::Confidential => "confidential",
        Level::Restricted => "restricted",
    }
}

/// `n` items of a list, then "and N more".
pub(crate) fn list_some<S: AsRef<str>>(items: &[S], n: usize) -> String {
    let shown: Vec<String> = items.iter().take(n).map(|s| format!("`{}`", s.as_ref())).collect();
    let mut s = shown.join(", ");
    if items.len() > n {
        s.push_str(&format!(" and {} more", items.len() - n));
    }
    s
}

/// The default severity of a built-in rule.
pub(crate) fn default_severity(rule: Rule) -> Severity {
    rule.severity()
}

/// `policy.settings`: keyward.yaml's `policy` section names rules and users that exist.
fn settings(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    let p = &ctx.desired.settings.policy;
    for id in p.rules.keys() {
        let known = rule_info(id).is_some() || id.starts_with("rego.");
        if !known {
            let ids = super::RULES.iter().map(|r| r.id);
            let mut f = Finding::new(
                Rule::PolicySettings.id(),
                default_severity(Rule::PolicySettings),
                "settings.policy.rules",
                format!("policy.rules names rule `{id}`, which does not exist"),
            )
            .at(ctx.locate_setting(&["policy".into(), "rules".into(), id.as_str().into()]));
            f = match crate::validate::closest(id, ids) {
                Some(s) => f.help(format!("did you mean `{s}`? The rules are listed in docs/policies.md")),
                None => f.help("the rules are listed in docs/policies.md; Rego rules start with `rego.`"),
            };
            out.push(f);
        }
    }
    for (i, name) in p.top_of_chain.iter().enumerate() {
        if !ctx.desired.users.contains_key(name) {
            out.push(
                Finding::new(
                    Rule::PolicySettings.id(),
                    default_severity(Rule::PolicySettings),
                    "settings.policy.topOfChain",
                    format!("policy.topOfChain names user `{name}`, who is not defined"),
                )
                .help("list User names (the `name` of a User document)")
                .at(ctx.locate_setting(&["policy".into(), "topOfChain".into(), i.into()])),
            );
        }
    }
}

/// The location of a whole resource's `name`.
pub(crate) fn at_name(ctx: &PolicyContext, kind: Kind, name: &Name) -> Option<crate::validate::Location> {
    ctx.locate(kind, name, &["name".into()])
}
