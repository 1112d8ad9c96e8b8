//! The planner: a pure function of (desired state, live state, capabilities, clock, baseline)
//! to a list of typed changes.
//!
//! Rules it keeps:
//! - only live accounts inside `ownership.scope` are considered; protected accounts are never
//!   disabled, deleted or stripped of roles;
//! - an attribute is compared only when the configuration sets it and the target stores it
//!   (absent means unmanaged, never "clear");
//! - a managed user that left git is disabled, or deleted when `lifecycle.removedUsers` says so
//!   and the target deletes users;
//! - an assignment past its `expires` date is revoked;
//! - a predefined role (directory role, security role) that does not exist is an error, never
//!   created;
//! - a declared credential is rotated (a new one issued) when the account has none, when the
//!   current one (the newest delivered instance named `NAME@DATE`) is expired, inside its
//!   `rotateBefore` window, was not issued by keyward, or was never delivered; an older
//!   instance is revoked only once a newer one has been valid for `overlap` (or it expired),
//!   so never in the run that issues its replacement; a credential that matches no declared
//!   name, on an account that declares credentials, is drift and deleted;
//! - on a target that knows service accounts by their Entra application (Dataverse, F&O), a
//!   service account is matched by the `applicationId` it declares there, and one the
//!   configuration, its baseline or its previous revision declared that git no longer puts
//!   there is disabled, never deleted (see `appusers`).
//!
//! It reads capabilities as data and never branches on a provider's name.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::FxHashMap;

use serde_json::{Value, json};

mod accounts;
mod appids;
mod appusers;
mod auth;
mod bindings;
mod credentials;
mod eligibility;
mod held;
mod teams;
mod units;
pub(super) use appids::AppIds;
pub use appids::application_id_errors;
pub use held::held_notices;

use super::derived;
use super::types::*;
use crate::model::config::RemovedUsers;
use crate::model::lifecycle::{self, CredentialStatus};
use crate::model::{
    Binding, BindingKind, BindingSupport, Capabilities, CredentialSpec, CredentialType, Curve, Deliver, DesiredState,
    HeldElsewhere, KeyAlgorithm, LiveAccount, LiveBinding, LiveCredential, LiveServiceAccount, LiveTarget,
    MembersDecided, Name, RoleGrant, ServiceAccount, Target, Timestamp, UndeliveredCredential, User, UserAttrs,
    UserField, UserStatus, UsersScope,
};

/// Everything the planner needs, as values.
pub struct PlanInput<'a> {
    pub desired: &'a DesiredState,
    /// The live state of each target that was read. Targets not listed are not planned.
    pub live: &'a BTreeMap<Name, LiveTarget>,
    pub capabilities: &'a BTreeMap<Name, Capabilities>,
    pub now: Timestamp,
    /// The desired state the live systems were last brought to (for example the base
    /// revision); a difference that git did not ask for is reported as drift.
    pub baseline: Option<&'a DesiredState>,
    /// Credentials apply issued but could not deliver (from the state file beside the audit
    /// log); they are replaced and removed.
    pub undelivered: &'a [UndeliveredCredential],
    /// The configuration keyward last brought the targets to (the base revision, or the commit
    /// last applied): an object one of its roles bound that no role binds now was managed by
    /// keyward, and its managed members are revoked rather than left holding it.
    pub previous: Option<&'a DesiredState>,
}

/// A problem that makes a plan impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "target `{target}`: role `{role}` binds {binding}, which does not exist there; keyward does not create {kind} bindings, so create it on the target or correct the binding"
    )]
    MissingBinding { target: Name, role: Name, binding: String, kind: String },
    #[error(
        "target `{target}`: userName `{user_name}` (user `{user}`) matches {} live accounts that differ only in case: {}; keyward matches userNames without regard to case, so rename or delete all but one of them on the target",
        candidates.len(),
        candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousAccount { target: Name, user: Name, user_name: String, candidates: Vec<String> },
    #[error("target `{target}`: {count} live objects match {binding}; rename them so the binding is unambiguous")]
    AmbiguousBinding { target: Name, binding: String, count: usize },
    #[error(
        "target `{target}`: {what} cannot be given to `{user}`: {binding} does not exist in {scope}, where the account is; create it there, or move the account"
    )]
    OutOfReach { target: Name, what: String, user: String, binding: String, scope: String },
    #[error(
        "target `{target}`: role `{role}` binds {binding}, whose members {by} decides; keyward cannot add or remove them, so bind the role to a group whose members are assigned, or remove the binding"
    )]
    MembersDecided { target: Name, role: Name, binding: String, by: String },
    #[error(
        "target `{target}`: user `{user}` belongs in business unit `{unit}`, which does not exist there; create it on the target or correct `businessUnit`"
    )]
    UnknownBusinessUnit { target: Name, user: String, unit: String },
    #[error(
        "target `{target}`: role `{role}` binds the Microsoft Entra group team of group {group}, which no Graph target holds; keyward keeps the team's members through that group, so create it on the Graph target or correct `groupTeam.group`"
    )]
    GroupTeamWithoutGroup { target: Name, role: Name, group: String },
    #[error(
        "target `{target}`: role `{role}` binds the Microsoft Entra group team of group {group}, which is found on a Graph target (the group's object id names the team, and its members are the team's), but {unread} {} not read in this run; plan them together: `{command}`",
        if unread.contains(',') { "were" } else { "was" }
    )]
    GroupTeamGraphNotRead { target: Name, role: Name, group: String, unread: String, command: String },
    #[error(
        "target `{target}`: role `{role}` binds the Microsoft Entra group team of group {group}, which several Graph targets hold ({holders}); rename the group on all but one of them"
    )]
    GroupTeamGroupAmbiguous { target: Name, role: Name, group: String, holders: String },
    #[error(
        "target `{target}`: role `{role}` lists security role `{security_role}` for its group team, which business unit `{unit}` has no copy of; a team holds only the copies of its own unit, so create the role there or correct `securityRoles`"
    )]
    TeamRoleMissing { target: Name, role: Name, security_role: String, unit: String },
    #[error(
        "target `{target}`: service account `{account}` declares applicationId `{declared}` (targets.{target}.applicationId), but its app registration on `{graph}` has client id `{registered}`; roles given to `{declared}` would go to another application, so correct applicationId or leave it out to take the registration's"
    )]
    ApplicationIdMismatch { target: Name, account: Name, declared: String, registered: String, graph: Name },
    #[error(
        "target `{target}`: service account `{account}` declares applicationId `{declared}` (targets.{target}.applicationId), but its app registration on `{graph}` does not exist yet: this plan creates it, and Entra gives it a client id of its own; leave applicationId out to take that one"
    )]
    ApplicationIdBeforeRegistration { target: Name, account: Name, declared: String, graph: Name },
    #[error(
        "target `{target}`: service account `{account}` has app registrations with different client ids ({ids}); set targets.{target}.applicationId to the one its application user stands for"
    )]
    ApplicationIdAmbiguous { target: Name, account: Name, ids: String },
    #[error(
        "target `{target}`: service accounts `{other}` and `{account}` both come to client id `{id}` (one of them from its app registration on Graph); one application user cannot stand for both, so correct applicationId or the registrations"
    )]
    ApplicationIdTaken { target: Name, account: Name, other: Name, id: String },
}

/// The marker fingerprint for a live object that does not exist.
pub const ABSENT: &str = "absent";

/// Computes the changes that bring the live targets to the desired state, in apply order.
pub fn plan_changes(input: &PlanInput) -> Result<Vec<Change>, Vec<PlanError>> {
    let mut changes = Vec::new();
    let (group_teams, mut errors) = teams::GroupTeams::resolve(input);
    let (app_ids, app_id_errors) =
        appids::AppIds::resolve(input.desired, input.live, input.capabilities, Some(input.now));
    errors.extend(app_id_errors);
    // Lower-cased userNames, made once: most are lower case already and only borrowed.
    let user_keys: Vec<Cow<str>> = input.desired.users.values().map(|u| lower_key(&u.user_name)).collect();
    for (target_name, live) in input.live {
        let Some(target) = input.desired.settings.targets.get(target_name) else { continue };
        let Some(caps) = input.capabilities.get(target_name) else { continue };
        let account_keys: Vec<Cow<str>> = live.accounts.iter().map(|a| lower_key(&a.user_name)).collect();
        let twins = case_twins(input.desired, &user_keys, live, &account_keys, &target.name);
        if !twins.is_empty() {
            // Planning this target would act on one of the twins, chosen by read order.
            errors.extend(twins);
            continue;
        }
        let keys = Keys { users: &user_keys, accounts: &account_keys };
        let mut tp = TargetPlanner::new(input, target, caps, live, keys, &app_ids);
        tp.group_teams = Some(&group_teams);
        // Accounts and bindings are planned side by side; the changes are sorted below, so
        // the result does not depend on which finishes first.
        let (mut accounts, (mut bindings, result)) = both(
            || {
                let mut out = Vec::new();
                tp.accounts(&mut out);
                tp.service_accounts(&mut out);
                tp.retired_app_users(&mut out);
                tp.credentials(&mut out);
                tp.auth_methods(&mut out);
                out
            },
            || {
                let mut out = Vec::new();
                let result = tp.bindings(&mut out);
                tp.eligibility(&mut out);
                (out, result)
            },
        );
        if caps.restorable_days.is_none() {
            drop_revokes_of_deleted(&accounts, &mut bindings);
        }
        changes.append(&mut accounts);
        changes.append(&mut bindings);
        if let Err(mut e) = result {
            errors.append(&mut e);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    sort_for_apply(&mut changes, input.capabilities);
    Ok(changes)
}

/// Drops the revokes of users whose account `accounts` deletes: the delete removes their
/// memberships with them, and a revoke sent first can only fail (a server refusing the member
/// path, a user already gone) where the delete would succeed. Only where deleted users cannot be
/// restored: a restore would bring back memberships that were not revoked.
fn drop_revokes_of_deleted(accounts: &[Change], bindings: &mut Vec<Change>) {
    let deleted: HashSet<Cow<str>> = accounts
        .iter()
        .filter_map(|c| match &c.operation {
            Operation::DeleteUser { user_name } => Some(lower_key(user_name)),
            _ => None,
        })
        .collect();
    if deleted.is_empty() {
        return;
    }
    bindings.retain(|c| match &c.operation {
        Operation::Revoke { principal: Principal::User(u), .. } => !deleted.contains(&lower_key(u)),
        _ => true,
    });
}

/// A plan error for each user in git whose userName matches more than one live account
/// (userNames that differ only in case, which a case-sensitive service allows side by side).
fn case_twins(
    desired: &DesiredState,
    user_keys: &[Cow<str>],
    live: &LiveTarget,
    account_keys: &[Cow<str>],
    target: &Name,
) -> Vec<PlanError> {
    let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    for (a, key) in live.accounts.iter().zip(account_keys) {
        by_key.entry(key.as_ref()).or_default().push(a.user_name.as_str());
    }
    let mut errors = Vec::new();
    for ((name, user), key) in desired.users.iter().zip(user_keys) {
        if let Some(found) = by_key.get(key.as_ref()).filter(|f| f.len() > 1) {
            let mut candidates: Vec<String> = found.iter().map(|s| s.to_string()).collect();
            candidates.sort();
            errors.push(PlanError::AmbiguousAccount {
                target: target.clone(),
                user: name.clone(),
                user_name: user.user_name.clone(),
                candidates,
            });
        }
    }
    errors
}

/// Runs `a` on another thread while `b` runs on this one; a panic in either is raised here.
fn both<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|scope| {
        let a = scope.spawn(a);
        let b = b();
        (a.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), b)
    })
}

/// Sorts changes by apply phase, then target order (directories first), then address.
pub fn sort_for_apply(changes: &mut [Change], caps: &BTreeMap<Name, Capabilities>) {
    let order = |c: &Change| caps.get(&c.address.target).map(|k| k.order).unwrap_or(0);
    changes.sort_by(|a, b| {
        (a.action.phase(), order(a), &a.address.target, kind_rank(a), &a.address).cmp(&(
            b.action.phase(),
            order(b),
            &b.address.target,
            kind_rank(b),
            &b.address,
        ))
    });
}

/// Within a phase, roles before accounts (creating a group before its members' accounts does
/// not matter, but keeps output tidy), then the rest.
fn kind_rank(c: &Change) -> u8 {
    match c.address.kind {
        ObjectKind::Role => 0,
        ObjectKind::User => 1,
        ObjectKind::ServiceAccount => 2,
        _ => 3,
    }
}

struct TargetPlanner<'a> {
    input: &'a PlanInput<'a>,
    desired: &'a DesiredState,
    target: &'a Target,
    caps: &'a Capabilities,
    live: &'a LiveTarget,
    /// Live accounts by lower-cased userName.
    by_user_name: FxHashMap<&'a str, &'a LiveAccount>,
    /// Live accounts by id, with their lower-cased userName.
    by_id: FxHashMap<&'a str, (&'a LiveAccount, &'a str)>,
    /// Lower-cased userName of each live account, in the order of `live.accounts`.
    account_keys: &'a [Cow<'a, str>],
    sa_by_name: FxHashMap<&'a str, &'a LiveServiceAccount>,
    sa_by_id: FxHashMap<&'a str, &'a LiveServiceAccount>,
    /// Desired users on this target, by lower-cased userName.
    present_users: BTreeMap<&'a str, (&'a Name, &'a User)>,
    present_sas: BTreeMap<&'a str, &'a ServiceAccount>,
    /// Lower-cased userNames of every user in git.
    in_git: FxHashMap<&'a str, &'a Name>,
    /// Every grant of the principals present on this target, by role: built once, so planning
    /// costs O(users + assignments), not O(roles x users).
    grants_by_role: FxHashMap<&'a Name, Vec<Grant<'a>>>,
    /// Live bindings by kind and lower-cased name.
    live_bindings: FxHashMap<(crate::model::BindingKind, String), Vec<&'a LiveBinding>>,
    /// What the target refuses to change on accounts another directory masters, by account id.
    held: FxHashMap<&'a str, &'a HeldElsewhere>,
    /// Bindings whose members keyward cannot change, by kind and lower-cased name.
    decided: FxHashMap<(crate::model::BindingKind, String), &'a MembersDecided>,
    /// Users who move to another business unit, by lower-cased userName, with the unit.
    moves: FxHashMap<&'a str, &'a str>,
    /// Business units the configuration names that the target does not have.
    unit_errors: Vec<PlanError>,
    /// The configuration's Microsoft Entra group teams, resolved against the Graph targets.
    group_teams: Option<&'a teams::GroupTeams<'a>>,
    /// Service accounts that move to another business unit, by their key here, with the unit.
    sa_moves: FxHashMap<&'a str, &'a str>,
    /// The name in git of each service account the configuration, its baseline or its previous
    /// revision knows on this target, by the key the target knows it by (see `sa_key`).
    sa_names: FxHashMap<&'a str, &'a str>,
    /// Each service account's client id on the targets that know accounts by it.
    app_ids: &'a appids::AppIds<'a>,
}

/// The key a target knows service account `name` by: where it knows accounts by their
/// application ([`Capabilities::application_users`]), the client id (declared, or its app
/// registration's, see `appids`) when there is one; else its name.
fn sa_key<'a>(
    app_ids: &appids::AppIds<'a>,
    caps: &Capabilities,
    target: &Name,
    name: &'a str,
    sa: &'a ServiceAccount,
) -> &'a str {
    if caps.application_users { app_ids.key(target, name, sa).unwrap_or(name) } else { name }
}

/// Lower-cased userNames, in the order of `desired.users` and of `live.accounts`.
struct Keys<'a> {
    users: &'a [Cow<'a, str>],
    accounts: &'a [Cow<'a, str>],
}

/// A [`Principal`] by borrowed key (a lower-cased userName or a service account's name),
/// ordered as `Principal` is: the planner's sets of holders cost no copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key<'a> {
    User(&'a str),
    ServiceAccount(&'a str),
}

impl Key<'_> {
    /// The key as [`Principal::key`] gives it.
    fn as_str(&self) -> &str {
        match self {
            Key::User(k) | Key::ServiceAccount(k) => k,
        }
    }
}

/// One principal's grant of one role.
struct Grant<'a> {
    principal: Key<'a>,
    /// The principal's name in git.
    subject: &'a str,
    expires: Option<crate::model::Expiry>,
    /// Eligible rather than active: planned as an eligibility where the target keeps them,
    /// never as a membership.
    eligible: bool,
    /// The assignment as written, for what activating it takes.
    grant: &'a RoleGrant,
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// `s` lower-cased as [`str::to_lowercase`] does it, borrowed when it is lower case already.
fn lower_key(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) { Cow::Borrowed(s) } else { Cow::Owned(lower(s)) }
}

/// Whether two userNames are the same, without regard to case.
fn same_user_name(a: &str, b: &str) -> bool {
    a == b || lower_key(a) == lower_key(b)
}

fn active_grants(grants: &[RoleGrant], now: Timestamp) -> impl Iterator<Item = &RoleGrant> {
    grants.iter().filter(move |g| g.expires().is_none_or(|d| !d.has_passed(now)))
}

impl<'a> TargetPlanner<'a> {
    fn new(
        input: &'a PlanInput<'a>,
        target: &'a Target,
        caps: &'a Capabilities,
        live: &'a LiveTarget,
        keys: Keys<'a>,
        app_ids: &'a appids::AppIds<'a>,
    ) -> Self {
        let desired = input.desired;
        // The live side's indexes and the desired side's are independent: built side by side.
        let index_live = || {
            let mut by_user_name = FxHashMap::with_capacity_and_hasher(live.accounts.len(), Default::default());
            let mut by_id = FxHashMap::with_capacity_and_hasher(live.accounts.len(), Default::default());
            for (a, key) in live.accounts.iter().zip(keys.accounts) {
                by_user_name.insert(key.as_ref(), a);
                by_id.insert(a.id.as_str(), (a, key.as_ref()));
            }
            let sa_by_name = live.service_accounts.iter().map(|s| (s.name.as_str(), s)).collect();
            let sa_by_id = live.service_accounts.iter().map(|s| (s.id.as_str(), s)).collect();
            let mut live_bindings: FxHashMap<_, Vec<&'a LiveBinding>> = FxHashMap::default();
            for b in &live.bindings {
                live_bindings.entry((b.binding.kind(), lower(&b.binding.object_name()))).or_default().push(b);
            }
            let held = live.held_elsewhere.iter().map(|h| (h.account.as_str(), h)).collect();
            let decided =
                live.members_decided.iter().map(|d| ((d.binding.kind(), lower(&d.binding.object_name())), d)).collect();
            (by_user_name, by_id, sa_by_name, sa_by_id, live_bindings, held, decided)
        };
        let index_desired = || {
            let now = input.now;
            let mut present_users = BTreeMap::new();
            let mut in_git = FxHashMap::with_capacity_and_hasher(desired.users.len(), Default::default());
            for ((name, user), key) in desired.users.iter().zip(keys.users) {
                in_git.insert(key.as_ref(), name);
                let roles = active_grants(&user.roles, now).map(RoleGrant::role);
                if desired.present_on(user.explicit_targets(), roles, target) {
                    present_users.insert(key.as_ref(), (name, user));
                }
            }
            let mut present_sas = BTreeMap::new();
            if caps.service_accounts {
                for (name, sa) in &desired.service_accounts {
                    // Without its application's client id the target cannot tell which account
                    // it is: not managed there (the plan's notices say so).
                    if caps.application_users && app_ids.key(&target.name, name.as_str(), sa).is_none() {
                        continue;
                    }
                    let roles = active_grants(&sa.roles, now).map(RoleGrant::role);
                    if desired.present_on(sa.explicit_targets(), roles, target) {
                        present_sas.insert(name.as_str(), sa);
                    }
                }
            }
            let mut grants_by_role: FxHashMap<&'a Name, Vec<Grant<'a>>> =
                FxHashMap::with_capacity_and_hasher(desired.roles.len(), Default::default());
            for (key, (name, user)) in &present_users {
                for g in &user.roles {
                    grants_by_role.entry(g.role()).or_default().push(Grant {
                        principal: Key::User(key),
                        subject: name.as_str(),
                        expires: g.expires(),
                        eligible: g.eligible(),
                        grant: g,
                    });
                }
            }
            for (name, sa) in &present_sas {
                for g in &sa.roles {
                    grants_by_role.entry(g.role()).or_default().push(Grant {
                        principal: Key::ServiceAccount(sa_key(app_ids, caps, &target.name, name, sa)),
                        subject: name,
                        expires: g.expires(),
                        eligible: g.eligible(),
                        grant: g,
                    });
                }
            }
            (present_users, in_git, present_sas, grants_by_role)
        };
        let (
            (by_user_name, by_id, sa_by_name, sa_by_id, live_bindings, held, decided),
            (present_users, in_git, present_sas, grants_by_role),
        ) = both(index_live, index_desired);
        // Known: the configuration's and the previous revision's (as for released bindings),
        // and where accounts are known by their application, the baseline's too.
        let mut sa_names = FxHashMap::default();
        let baseline = input.baseline.filter(|_| caps.application_users);
        let known = [input.previous, baseline].into_iter().flatten().chain([desired]);
        for state in known {
            for (name, sa) in &state.service_accounts {
                sa_names.insert(sa_key(app_ids, caps, &target.name, name.as_str(), sa), name.as_str());
            }
        }
        let mut tp = TargetPlanner {
            group_teams: None,
            sa_moves: FxHashMap::default(),
            sa_names,
            app_ids,
            moves: FxHashMap::default(),
            unit_errors: Vec::new(),
            held,
            decided,
            live_bindings,
            grants_by_role,
            input,
            desired,
            target,
            caps,
            live,
            by_user_name,
            by_id,
            account_keys: keys.accounts,
            sa_by_name,
            sa_by_id,
            present_users,
            present_sas,
            in_git,
        };
        (tp.moves, tp.unit_errors) = tp.find_moves();
        let (sa_moves, sa_unit_errors) = tp.find_app_user_moves();
        tp.sa_moves = sa_moves;
        tp.unit_errors.extend(sa_unit_errors);
        tp
    }

    fn addr(&self, kind: ObjectKind, name: impl Into<String>) -> Address {
        Address::new(&self.target.name, kind, name)
    }

    fn protected(&self, user_name: &str) -> bool {
        self.desired.settings.is_protected(user_name)
    }

    fn managed(&self, user_name: &str) -> bool {
        self.desired.settings.scope.contains(user_name) && !self.protected(user_name)
    }

    /// The attributes the configuration sets for `user` that this target stores.
    fn desired_attrs(&self, user: &'a User) -> UserAttrs {
        let mut out = UserAttrs::default();
        for f in UserField::ALL {
            *out.slot(f) = self.want(user, f).map(str::to_string);
        }
        out
    }

    /// The value the configuration sets for `field` of `user`, if this target stores it (for
    /// the manager, the manager's userName).
    fn want(&self, user: &'a User, field: UserField) -> Option<&'a str> {
        if !self.caps.user_fields.contains(&field) || self.live.unkept.contains_key(&field) {
            return None;
        }
        let value = match field {
            UserField::DisplayName => &user.display_name,
            UserField::GivenName => &user.given_name,
            UserField::FamilyName => &user.family_name,
            UserField::Email => &user.email,
            UserField::Department => &user.department,
            UserField::JobTitle => &user.job_title,
            UserField::EmployeeId => &user.employee_id,
            // A manager with no account on this target cannot be referred to: it is left unset
            // (and the plan says so, see `manager_off_target`), so the plan converges.
            UserField::Manager => {
                let m = user.manager.as_ref().and_then(|m| self.desired.users.get(m))?;
                return self.has_account(&m.user_name).then_some(m.user_name.as_str());
            }
        };
        value.as_deref()
    }

    /// Whether `user_name` has an account on this target after the plan: it is one of the
    /// users the target holds, or an account that is already there.
    fn has_account(&self, user_name: &str) -> bool {
        let key = lower_key(user_name);
        self.present_users.contains_key(key.as_ref()) || self.by_user_name.contains_key(key.as_ref())
    }

    /// The note for a user whose manager has no account on this target (a target that holds
    /// only users with roles there), so the manager is not set.
    fn manager_off_target(&self, user: &User) -> Option<String> {
        if !self.caps.user_fields.contains(&UserField::Manager) {
            return None;
        }
        let name = user.manager.as_ref()?;
        let m = self.desired.users.get(name)?;
        (!self.has_account(&m.user_name))
            .then(|| format!("manager {name} has no account on this target, so the manager is not set here"))
    }

    fn baseline_user(&self, name: &Name) -> Option<&'a User> {
        self.input.baseline.and_then(|b| b.users.get(name))
    }

    /// Drift when the baseline asked for the same thing (git did not change, live did).
    fn kind_for(&self, same_in_baseline: bool) -> ReasonKind {
        if same_in_baseline { ReasonKind::Drift } else { ReasonKind::Config }
    }
}

/// The fingerprint of a membership: whether the principal holds the binding, and the binding.
pub fn membership_fingerprint(binding: Option<&LiveBinding>, principal: &Principal, present: bool) -> String {
    fingerprint_of(binding, principal.key(), present)
}

fn fingerprint_of(binding: Option<&LiveBinding>, key: &str, present: bool) -> String {
    match binding {
        None => ABSENT.into(),
        Some(b) => crate::model::digest(&(&b.id, key, present)),
    }
}

/// The key algorithm for a certificate that names none: ECDSA P-256 unless an
/// EncryptionPolicy's `keys` rule it out, then P-384, then the smallest RSA size they allow.
pub fn default_key_algorithm(desired: &DesiredState) -> KeyAlgorithm {
    let keys: Vec<_> = desired.encryption_policies.values().filter_map(|p| p.keys.as_ref()).collect();
    let curve_ok = |c: Curve| keys.iter().all(|k| k.allowed_curves.as_ref().is_none_or(|a| a.contains(&c)));
    let min_rsa = keys.iter().filter_map(|k| k.min_rsa_bits).max().unwrap_or(0);
    if curve_ok(Curve::P256) {
        KeyAlgorithm::EcdsaP256
    } else if curve_ok(Curve::P384) {
        KeyAlgorithm::EcdsaP384
    } else if min_rsa <= 3072 {
        KeyAlgorithm::Rsa3072
    } else {
        KeyAlgorithm::Rsa4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_case_as_to_lowercase_does_and_copy_only_when_they_must() {
        for s in ["alice@example.com", "Alice@Example.COM", "ÄNGSTRÖM@x", "İstanbul", "ΣΑΣ", "", "a-b_c.d"] {
            assert_eq!(lower_key(s), s.to_lowercase(), "{s}");
        }
        assert!(matches!(lower_key("alice@example.com"), Cow::Borrowed(_)));
        assert!(matches!(lower_key("Alice@example.com"), Cow::Owned(_)));
        assert!(same_user_name("Alice@Example.com", "alice@example.COM"));
        assert!(same_user_name("Ä@x", "ä@x"));
        assert!(!same_user_name("alice@example.com", "alice@example.org"));
    }
}
