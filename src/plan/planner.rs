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
//!   name, on an account that declares credentials, is drift and deleted.
//!
//! It reads capabilities as data and never branches on a provider's name.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rustc_hash::FxHashMap;

use serde_json::{Value, json};

use super::derived;
use super::types::*;
use crate::model::config::RemovedUsers;
use crate::model::lifecycle::{self, CredentialStatus};
use crate::model::{
    Binding, BindingKind, BindingSupport, Capabilities, CredentialSpec, CredentialType, Curve, Deliver, DesiredState,
    KeyAlgorithm, LiveAccount, LiveBinding, LiveCredential, LiveServiceAccount, LiveTarget, Name, RoleGrant,
    ServiceAccount, Target, Timestamp, UndeliveredCredential, User, UserAttrs, UserField, UserStatus, UsersScope,
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
}

/// A problem that makes a plan impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "target `{target}`: role `{role}` binds {binding}, which does not exist there; keyward does not create {kind} bindings, so create it on the target or correct the binding"
    )]
    MissingBinding { target: Name, role: Name, binding: String, kind: String },
    #[error("target `{target}`: {count} live objects match {binding}; rename them so the binding is unambiguous")]
    AmbiguousBinding { target: Name, binding: String, count: usize },
    #[error(
        "target `{target}`: {what} cannot be given to `{user}`: {binding} does not exist in {scope}, where the account is; create it there, or move the account"
    )]
    OutOfReach { target: Name, what: String, user: String, binding: String, scope: String },
}

/// The marker fingerprint for a live object that does not exist.
pub const ABSENT: &str = "absent";

/// Computes the changes that bring the live targets to the desired state, in apply order.
pub fn plan_changes(input: &PlanInput) -> Result<Vec<Change>, Vec<PlanError>> {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    // Lower-cased userNames, made once: most are lower case already and only borrowed.
    let user_keys: Vec<Cow<str>> = input.desired.users.values().map(|u| lower_key(&u.user_name)).collect();
    for (target_name, live) in input.live {
        let Some(target) = input.desired.settings.targets.get(target_name) else { continue };
        let Some(caps) = input.capabilities.get(target_name) else { continue };
        let account_keys: Vec<Cow<str>> = live.accounts.iter().map(|a| lower_key(&a.user_name)).collect();
        let tp = TargetPlanner::new(input, target, caps, live, Keys { users: &user_keys, accounts: &account_keys });
        // Accounts and bindings are planned side by side; the changes are sorted below, so
        // the result does not depend on which finishes first.
        let (mut accounts, (mut bindings, result)) = both(
            || {
                let mut out = Vec::new();
                tp.accounts(&mut out);
                tp.service_accounts(&mut out);
                tp.credentials(&mut out);
                tp.auth_methods(&mut out);
                out
            },
            || {
                let mut out = Vec::new();
                let result = tp.bindings(&mut out);
                (out, result)
            },
        );
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
    expires: Option<crate::model::Date>,
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
            (by_user_name, by_id, sa_by_name, sa_by_id, live_bindings)
        };
        let index_desired = || {
            let now = input.now;
            let mut present_users = BTreeMap::new();
            let mut in_git = FxHashMap::with_capacity_and_hasher(desired.users.len(), Default::default());
            for ((name, user), key) in desired.users.iter().zip(keys.users) {
                in_git.insert(key.as_ref(), name);
                let roles = active_grants(&user.roles, now).map(RoleGrant::role);
                if desired.present_on(user.targets.as_deref(), roles, target) {
                    present_users.insert(key.as_ref(), (name, user));
                }
            }
            let mut present_sas = BTreeMap::new();
            if caps.service_accounts {
                for (name, sa) in &desired.service_accounts {
                    let roles = active_grants(&sa.roles, now).map(RoleGrant::role);
                    if desired.present_on(sa.targets.as_deref(), roles, target) {
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
                    });
                }
            }
            for (name, sa) in &present_sas {
                for g in &sa.roles {
                    grants_by_role.entry(g.role()).or_default().push(Grant {
                        principal: Key::ServiceAccount(name),
                        subject: name,
                        expires: g.expires(),
                    });
                }
            }
            (present_users, in_git, present_sas, grants_by_role)
        };
        let (
            (by_user_name, by_id, sa_by_name, sa_by_id, live_bindings),
            (present_users, in_git, present_sas, grants_by_role),
        ) = both(index_live, index_desired);
        TargetPlanner {
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
        }
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
        if !self.caps.user_fields.contains(&field) {
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
            UserField::Manager => {
                return user.manager.as_ref().and_then(|m| self.desired.users.get(m)).map(|m| m.user_name.as_str());
            }
        };
        value.as_deref()
    }

    fn baseline_user(&self, name: &Name) -> Option<&'a User> {
        self.input.baseline.and_then(|b| b.users.get(name))
    }

    /// Drift when the baseline asked for the same thing (git did not change, live did).
    fn kind_for(&self, same_in_baseline: bool) -> ReasonKind {
        if same_in_baseline { ReasonKind::Drift } else { ReasonKind::Config }
    }

    fn accounts(&self, out: &mut Vec<Change>) {
        for (key, (name, user)) in &self.present_users {
            let active = user.status == UserStatus::Active;
            let baseline = self.baseline_user(name);
            match self.by_user_name.get(key) {
                None => {
                    let attrs = self.desired_attrs(user);
                    let mut after = attrs_values(&attrs);
                    after.insert("userName".into(), json!(user.user_name));
                    after.insert("active".into(), json!(active));
                    let was_present = baseline.is_some();
                    out.push(Change {
                        address: self.addr(ObjectKind::User, name.as_str()),
                        action: Action::Create,
                        reason: Reason::new(
                            self.kind_for(was_present),
                            if was_present {
                                "the account is missing from the target".to_string()
                            } else {
                                "the user is in the configuration but not on the target".to_string()
                            },
                        ),
                        before: None,
                        after: Some(after),
                        fingerprint: ABSENT.into(),
                        subject: Some(name.to_string()),
                        notes: vec![],
                        operation: Operation::CreateUser { user_name: user.user_name.clone(), attrs, active },
                    });
                }
                Some(live) => {
                    let mut set = UserAttrs::default();
                    let (mut before, mut after) = (Values::new(), Values::new());
                    let mut all_drift = true;
                    for f in UserField::ALL {
                        let Some(want) = self.want(user, f) else { continue };
                        let have = live.attrs.get(f).map(String::as_str);
                        let equal = match f {
                            // userNames compare without regard to case.
                            UserField::Manager => have.is_some_and(|h| same_user_name(h, want)),
                            _ => have == Some(want),
                        };
                        if !equal {
                            *set.slot(f) = Some(want.to_string());
                            before.insert(f.as_str().into(), have.map_or(Value::Null, |h| json!(h)));
                            after.insert(f.as_str().into(), json!(want));
                            let same_base = baseline.is_some_and(|b| self.want(b, f) == Some(want));
                            all_drift &= same_base;
                        }
                    }
                    if !set.is_empty() {
                        let fields: Vec<&String> = before.keys().collect();
                        out.push(Change {
                            address: self.addr(ObjectKind::User, name.as_str()),
                            action: Action::Update,
                            reason: Reason::new(
                                self.kind_for(all_drift),
                                format!(
                                    "{} differ{} from the configuration",
                                    fields.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
                                    if fields.len() == 1 { "s" } else { "" }
                                ),
                            ),
                            before: Some(before),
                            after: Some(after),
                            fingerprint: live.fingerprint.clone(),
                            subject: Some(name.to_string()),
                            notes: vec![],
                            operation: Operation::UpdateUser { user_name: live.user_name.clone(), set },
                        });
                    }
                    // A protected account is never disabled.
                    let blocked = !active && self.protected(&live.user_name);
                    if live.active != active && !blocked {
                        let same = baseline.is_some_and(|b| b.status == user.status);
                        let action = if active { Action::Enable } else { Action::Disable };
                        out.push(Change {
                            address: self.addr(ObjectKind::User, name.as_str()),
                            action,
                            reason: Reason::new(
                                self.kind_for(same),
                                if active {
                                    "the configuration says status: active"
                                } else {
                                    "the configuration says status: disabled"
                                },
                            ),
                            before: Some([("active".to_string(), json!(live.active))].into()),
                            after: Some([("active".to_string(), json!(active))].into()),
                            fingerprint: live.fingerprint.clone(),
                            subject: Some(name.to_string()),
                            notes: vec![],
                            operation: Operation::SetUserActive { user_name: live.user_name.clone(), active },
                        });
                    }
                }
            }
        }
        // Live accounts not wanted on this target.
        for (live, key) in self.live.accounts.iter().zip(self.account_keys) {
            let key = key.as_ref();
            if self.present_users.contains_key(key) || !self.managed(&live.user_name) {
                continue;
            }
            let git_name = self.in_git.get(key).copied();
            if let Some(name) = git_name {
                let user = &self.desired.users[name];
                // On a target that holds only users with roles here, a user who is still in git
                // keeps the account; their assignments are revoked below.
                if self.target.users == UsersScope::WithRoles && user.targets.is_none() {
                    continue;
                }
            }
            let address_name = git_name.map(|n| n.to_string()).unwrap_or_else(|| live.user_name.clone());
            let why = match git_name {
                Some(_) => "the user's `targets` no longer include this target".to_string(),
                None => "the account is not in the configuration".to_string(),
            };
            let wants_delete = self.desired.settings.removed_users == RemovedUsers::Delete;
            let mut notes = Vec::new();
            if wants_delete && self.caps.delete_users {
                if let Some(days) = self.caps.restorable_days {
                    notes.push(format!("the target keeps deleted users restorable for {days} days"));
                }
                out.push(Change {
                    address: self.addr(ObjectKind::User, address_name),
                    action: Action::Delete,
                    reason: Reason::new(ReasonKind::Config, format!("{why}; lifecycle.removedUsers is delete")),
                    before: Some(live_values(live)),
                    after: None,
                    fingerprint: live.fingerprint.clone(),
                    subject: git_name.map(|n| n.to_string()),
                    notes,
                    operation: Operation::DeleteUser { user_name: live.user_name.clone() },
                });
            } else if live.active {
                if wants_delete {
                    notes.push("this target never deletes users, so the account is disabled instead".to_string());
                }
                out.push(Change {
                    address: self.addr(ObjectKind::User, address_name),
                    action: Action::Disable,
                    reason: Reason::new(ReasonKind::Config, format!("{why}; lifecycle.removedUsers is disable")),
                    before: Some([("active".to_string(), json!(true))].into()),
                    after: Some([("active".to_string(), json!(false))].into()),
                    fingerprint: live.fingerprint.clone(),
                    subject: git_name.map(|n| n.to_string()),
                    notes,
                    operation: Operation::SetUserActive { user_name: live.user_name.clone(), active: false },
                });
            }
        }
    }

    fn service_accounts(&self, out: &mut Vec<Change>) {
        if !self.caps.service_accounts {
            return;
        }
        for (name, sa) in &self.present_sas {
            let owner = self.desired.users.get(&sa.owner).map(|u| u.user_name.clone());
            match self.sa_by_name.get(name) {
                None => {
                    let mut after = Values::new();
                    if let Some(d) = &sa.display_name {
                        after.insert("displayName".into(), json!(d));
                    }
                    if let Some(d) = &sa.description {
                        after.insert("description".into(), json!(d));
                    }
                    if let Some(o) = &owner {
                        after.insert("owner".into(), json!(o));
                    }
                    out.push(Change {
                        address: self.addr(ObjectKind::ServiceAccount, *name),
                        action: Action::Create,
                        reason: Reason::new(
                            ReasonKind::Config,
                            "the service account is in the configuration but not on the target",
                        ),
                        before: None,
                        after: Some(after),
                        fingerprint: ABSENT.into(),
                        subject: Some(name.to_string()),
                        notes: vec![],
                        operation: Operation::CreateServiceAccount {
                            name: name.to_string(),
                            display_name: sa.display_name.clone(),
                            description: sa.description.clone(),
                            owner,
                        },
                    });
                }
                Some(live) => {
                    let (mut before, mut after) = (Values::new(), Values::new());
                    let mut diff = |field: &str, want: &Option<String>, have: &Option<String>| -> Option<String> {
                        let w = want.as_ref()?;
                        let equal = if field == "owner" {
                            have.as_ref().is_some_and(|h| same_user_name(h, w))
                        } else {
                            have.as_ref() == Some(w)
                        };
                        if equal {
                            return None;
                        }
                        before.insert(field.into(), have.as_ref().map_or(Value::Null, |h| json!(h)));
                        after.insert(field.into(), json!(w));
                        Some(w.clone())
                    };
                    let display_name = diff("displayName", &sa.display_name, &live.display_name);
                    let description = diff("description", &sa.description, &live.description);
                    let owner = diff("owner", &owner, &live.owner);
                    if !after.is_empty() {
                        let n = after.len();
                        let fields = after.keys().cloned().collect::<Vec<_>>().join(", ");
                        out.push(Change {
                            address: self.addr(ObjectKind::ServiceAccount, *name),
                            action: Action::Update,
                            reason: Reason::new(
                                ReasonKind::Config,
                                format!("{fields} differ{} from the configuration", if n == 1 { "s" } else { "" }),
                            ),
                            before: Some(before),
                            after: Some(after),
                            fingerprint: live.fingerprint.clone(),
                            subject: Some(name.to_string()),
                            notes: vec![],
                            operation: Operation::UpdateServiceAccount {
                                name: name.to_string(),
                                display_name,
                                description,
                                owner,
                            },
                        });
                    }
                }
            }
        }
    }

    fn credentials(&self, out: &mut Vec<Change>) {
        if !self.caps.credentials {
            return;
        }
        let now = self.input.now;
        let target = self.target.name.as_str();
        let undelivered: HashSet<(&str, &str)> = self
            .input
            .undelivered
            .iter()
            .filter(|u| u.target == target && !u.id.is_empty())
            .map(|u| (u.account.as_str(), u.id.as_str()))
            .collect();
        // Issues whose answer never came (no id known): a live credential of that account with
        // that exact name may exist without ever having been delivered.
        let unconfirmed: HashSet<(&str, &str)> = self
            .input
            .undelivered
            .iter()
            .filter(|u| u.target == target && u.id.is_empty())
            .map(|u| (u.account.as_str(), u.name.as_str()))
            .collect();
        for (name, sa) in &self.present_sas {
            // No declared credentials: keyward does not manage this account's credentials.
            if sa.credentials.is_empty() {
                continue;
            }
            let live = self.sa_by_name.get(name).copied();
            let creds: &[LiveCredential] = live.map(|l| l.credentials.as_slice()).unwrap_or(&[]);
            let is_undelivered = |c: &LiveCredential| {
                undelivered.contains(&(*name, c.id.as_str())) || unconfirmed.contains(&(*name, c.name.as_str()))
            };
            let mut claimed: HashSet<&str> = HashSet::new();
            // The sink of a certificate of this account, for proof tokens.
            let proof_from = sa
                .credentials
                .iter()
                .filter(|c| c.kind == CredentialType::Certificate)
                .find_map(|c| c.deliver.as_ref());
            for spec in &sa.credentials {
                let instances: Vec<&LiveCredential> =
                    creds.iter().filter(|c| c.instance_of(spec.name.as_str())).collect();
                claimed.extend(instances.iter().map(|c| c.id.as_str()));
                let fingerprint = match live {
                    None => ABSENT.to_string(),
                    Some(l) => {
                        let mut ids: Vec<&str> = instances.iter().map(|c| c.id.as_str()).collect();
                        ids.sort_unstable();
                        crate::model::digest(&(&l.id, spec.name.as_str(), ids))
                    }
                };
                let current = crate::model::current_instance(spec, creds, &is_undelivered);
                if let Some(reason) = self.rotation_reason(spec, current, &instances, &is_undelivered) {
                    out.push(self.rotate_change(name, spec, current, reason, fingerprint.clone()));
                }
                for old in &instances {
                    if current.is_some_and(|c| c.id == old.id) {
                        continue;
                    }
                    let why = if is_undelivered(old) {
                        format!("`{}` was issued but never delivered, so nobody holds it", old.name)
                    } else if old.end <= now {
                        format!("`{}` expired on {}", old.name, day(old.end))
                    } else if let Some(c) = current {
                        let overlap = spec.overlap.map(|o| o.to_chrono()).unwrap_or_default();
                        if c.start + overlap > now {
                            continue; // Both stay valid through the overlap.
                        }
                        match spec.overlap {
                            Some(o) => format!(
                                "`{}` replaced it on {}; the overlap of {o} ended on {}",
                                c.name,
                                day(c.start),
                                day(c.start + overlap)
                            ),
                            None => format!("`{}` replaced it on {}", c.name, day(c.start)),
                        }
                    } else {
                        continue; // No delivered replacement yet: keep it.
                    };
                    let reason = Reason::new(ReasonKind::Config, why);
                    out.push(self.remove_credential(name, old, Action::Revoke, reason, proof_from));
                }
            }
            // Credentials the configuration does not declare.
            for c in creds.iter().filter(|c| !claimed.contains(c.id.as_str())) {
                let reason = Reason::new(
                    ReasonKind::Drift,
                    format!(
                        "credential `{}` is on the account, but `{name}` declares no credential of that name",
                        c.name
                    ),
                );
                out.push(self.remove_credential(name, c, Action::Delete, reason, proof_from));
            }
        }
    }

    /// Why a declared credential needs a new instance now, if it does.
    fn rotation_reason(
        &self,
        spec: &CredentialSpec,
        current: Option<&LiveCredential>,
        instances: &[&LiveCredential],
        is_undelivered: &dyn Fn(&LiveCredential) -> bool,
    ) -> Option<Reason> {
        let now = self.input.now;
        // The last issued instance never reached its sink: replace it, whatever the current.
        if let Some(u) = instances.iter().filter(|c| is_undelivered(c)).max_by_key(|c| c.start)
            && current.is_none_or(|c| u.start >= c.start)
        {
            return Some(Reason::new(
                ReasonKind::Config,
                format!("not delivered: `{}` was issued on {} but never reached its sink", u.name, day(u.start)),
            ));
        }
        let Some(c) = current else {
            return Some(Reason::new(ReasonKind::Config, format!("new: the account has no `{}` yet", spec.name)));
        };
        let status = lifecycle::status(spec, Some(c), now);
        if status == CredentialStatus::Expired {
            return Some(Reason::new(ReasonKind::Expiry, format!("expired: `{}` ended on {}", c.name, day(c.end))));
        }
        if !c.issued_by_keyward() {
            return Some(Reason::new(
                ReasonKind::Drift,
                format!(
                    "unknown credential: `{}` was not issued by keyward (its dates and holder are unknown); a keyward one replaces it",
                    c.name
                ),
            ));
        }
        if status == CredentialStatus::RotationDue
            && let Some(window) = spec.rotate_before
        {
            return Some(Reason::new(
                ReasonKind::Policy,
                format!(
                    "inside window: `{}` ends on {}, within rotateBefore {window} (from {})",
                    c.name,
                    day(c.end),
                    day(c.end - window.to_chrono())
                ),
            ));
        }
        None
    }

    fn rotate_change(
        &self,
        account: &str,
        spec: &CredentialSpec,
        current: Option<&LiveCredential>,
        reason: Reason,
        fingerprint: String,
    ) -> Change {
        let now = self.input.now;
        let key_algorithm = match spec.kind {
            CredentialType::Certificate => Some(spec.key_algorithm.unwrap_or_else(|| self.default_key_algorithm())),
            CredentialType::Secret => None,
        };
        let before = current.map(credential_values);
        let mut after = Values::new();
        after.insert("credential".into(), json!(format!("{}@{}", spec.name, day(now))));
        after.insert("type".into(), json!(spec.kind));
        after.insert("start".into(), json!(day(now)));
        after.insert("end".into(), json!(day(now + spec.lifetime.to_chrono())));
        if let Some(a) = key_algorithm {
            after.insert("keyAlgorithm".into(), json!(a));
        }
        let mut notes = Vec::new();
        match &spec.deliver {
            Some(d) => {
                after.insert("deliver".into(), json!(d.label()));
            }
            None => notes.push(
                "the credential has no `deliver`: apply refuses to issue a credential nobody receives".to_string(),
            ),
        }
        if let Some(o) = spec.overlap
            && current.is_some_and(|c| c.end > now)
        {
            notes.push(format!("the current credential stays valid beside the new one for overlap {o}"));
        }
        Change {
            address: self.addr(ObjectKind::Credential, format!("{account}/{}", spec.name)),
            action: Action::Rotate,
            reason,
            before,
            after: Some(after),
            fingerprint,
            subject: Some(account.to_string()),
            notes,
            operation: Operation::AddCredential {
                account: account.to_string(),
                credential: spec.name.to_string(),
                kind: spec.kind,
                lifetime_seconds: spec.lifetime.seconds(),
                key_algorithm,
                deliver: spec.deliver.clone(),
            },
        }
    }

    fn remove_credential(
        &self,
        account: &str,
        c: &LiveCredential,
        action: Action,
        reason: Reason,
        proof_from: Option<&Deliver>,
    ) -> Change {
        Change {
            address: self.addr(ObjectKind::Credential, format!("{account}/{}", c.name)),
            action,
            reason,
            before: Some(credential_values(c)),
            after: None,
            fingerprint: crate::model::digest(&(account, &c.id, c.start, c.end)),
            subject: Some(account.to_string()),
            notes: vec![],
            operation: Operation::RemoveCredential {
                account: account.to_string(),
                credential_id: c.id.clone(),
                proof_from: proof_from.cloned(),
            },
        }
    }

    /// The key algorithm for a certificate that names none: the first the EncryptionPolicies
    /// allow, preferring ECDSA P-256.
    fn default_key_algorithm(&self) -> KeyAlgorithm {
        default_key_algorithm(self.desired)
    }

    /// Finds the live object a binding names: by kind and case-insensitive name.
    fn find_binding(&self, binding: &Binding) -> Result<Option<&'a LiveBinding>, PlanError> {
        let found = self.live_bindings.get(&(binding.kind(), lower(&binding.object_name())));
        match found.map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(*one)),
            Some(many) => Err(PlanError::AmbiguousBinding {
                target: self.target.name.clone(),
                binding: binding.label(),
                count: many.len(),
            }),
        }
    }

    fn bindings(&self, out: &mut Vec<Change>) -> Result<(), Vec<PlanError>> {
        let mut errors = Vec::new();
        for (role_name, role) in &self.desired.roles {
            let Some(binding) = role.bindings.get(&self.target.name) else { continue };
            self.binding(Grantor::Role(role_name), binding, &[role_name], out, &mut errors);
        }
        if self.caps.binding(BindingKind::FieldSecurityProfile) != BindingSupport::Unsupported {
            for d in derived::field_profiles(self.desired, &self.target.name) {
                self.binding(Grantor::Data(d.classification), &d.binding, &d.readers, out, &mut errors);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Plans one binding: creates or updates the bound object where it may, and brings its
    /// members to the holders of `holder_roles` present on this target.
    fn binding(
        &self,
        grantor: Grantor<'a>,
        binding: &Binding,
        holder_roles: &[&'a Name],
        out: &mut Vec<Change>,
        errors: &mut Vec<PlanError>,
    ) {
        let now = self.input.now;
        let live_binding = match self.find_binding(binding) {
            Ok(b) => b,
            Err(e) => {
                errors.push(e);
                return;
            }
        };
        match live_binding {
            None => match self.caps.binding(binding.kind()) {
                BindingSupport::Creatable => out.push(Change {
                    address: self.addr(grantor.object_kind(), grantor.name().as_str()),
                    action: Action::Create,
                    reason: Reason::new(ReasonKind::Config, grantor.create_reason(binding)),
                    before: None,
                    after: Some(binding_values(binding)),
                    fingerprint: ABSENT.into(),
                    subject: None,
                    notes: vec![],
                    operation: Operation::CreateBinding { binding: binding.clone() },
                }),
                _ => {
                    errors.push(PlanError::MissingBinding {
                        target: self.target.name.clone(),
                        role: grantor.name().clone(),
                        binding: binding.label(),
                        kind: binding.kind().to_string(),
                    });
                    return;
                }
            },
            Some(lb) if !binding.satisfied_by(&lb.binding) => out.push(Change {
                address: self.addr(grantor.object_kind(), grantor.name().as_str()),
                action: Action::Update,
                reason: Reason::new(
                    ReasonKind::Config,
                    format!("{} does not have every setting the configuration asks for", binding.label()),
                ),
                before: Some(binding_values(&lb.binding)),
                after: Some(binding_values(binding)),
                fingerprint: lb.fingerprint.clone(),
                subject: None,
                notes: vec![],
                operation: Operation::UpdateBinding { binding: binding.clone() },
            }),
            Some(_) => {}
        }
        // Who should hold it, by principal. Several holder roles may grant it: it is held
        // while any of them is (the longest expiry wins; none means none).
        let mut wanted: BTreeMap<Key<'a>, (&'a str, Option<crate::model::Date>)> = BTreeMap::new();
        let mut expired: BTreeMap<Key<'a>, (&'a str, crate::model::Date)> = BTreeMap::new();
        for role_name in holder_roles {
            for grant in self.grants_by_role.get(*role_name).into_iter().flatten() {
                match grant.expires {
                    Some(d) if d.has_passed(now) => {
                        expired.insert(grant.principal, (grant.subject, d));
                    }
                    e => {
                        let slot = wanted.entry(grant.principal).or_insert((grant.subject, e));
                        slot.1 = match (slot.1, e) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            _ => None,
                        };
                    }
                }
            }
        }
        expired.retain(|p, _| !wanted.contains_key(p));
        // Who holds it now, with the name the target knows them by.
        let mut held: BTreeMap<Key<'a>, &'a str> = BTreeMap::new();
        if let Some(lb) = live_binding {
            for id in &lb.members {
                if let Some((acc, key)) = self.by_id.get(id.as_str()) {
                    held.insert(Key::User(key), &acc.user_name);
                } else if let Some(sa) = self.sa_by_id.get(id.as_str()) {
                    held.insert(Key::ServiceAccount(&sa.name), &sa.name);
                }
            }
        }
        for (key, (subject, expires)) in &wanted {
            if held.contains_key(key) {
                continue;
            }
            let real = match key {
                Key::User(k) => {
                    let user_name = &self.present_users[k].1.user_name;
                    let account = self.by_user_name.get(k).map(|a| a.id.as_str());
                    if let Some(scope) = self.out_of_reach(binding, account) {
                        errors.push(PlanError::OutOfReach {
                            target: self.target.name.clone(),
                            what: grantor.describe(),
                            user: user_name.clone(),
                            binding: binding.label(),
                            scope: scope.to_string(),
                        });
                        continue;
                    }
                    Principal::User(user_name.clone())
                }
                Key::ServiceAccount(n) => Principal::ServiceAccount(n.to_string()),
            };
            let mut after = grantor.values(binding);
            if let Some(e) = expires {
                after.insert("expires".into(), json!(e.to_string()));
            }
            let same_base = self.in_baseline_any(*key, subject, holder_roles);
            out.push(Change {
                address: self.addr(grantor.member_kind(), format!("{subject}/{}", grantor.name())),
                action: Action::Assign,
                reason: Reason::new(
                    self.kind_for(same_base),
                    if same_base { grantor.lost_reason(subject) } else { grantor.give_reason(subject) },
                ),
                before: None,
                after: Some(after),
                fingerprint: fingerprint_of(live_binding, key.as_str(), false),
                subject: Some(subject.to_string()),
                notes: vec![],
                operation: Operation::Assign { principal: real, binding: binding.clone() },
            });
        }
        for (key, live_key) in &held {
            if wanted.contains_key(key) {
                continue;
            }
            let (address_name, subject, reason) = match key {
                Key::User(k) => {
                    if !self.managed(live_key) {
                        continue;
                    }
                    match (expired.get(key), self.in_git.get(k)) {
                        (Some((name, date)), _) => (
                            name.to_string(),
                            Some(name.to_string()),
                            Reason::new(ReasonKind::Expiry, format!("the assignment expired on {date}")),
                        ),
                        (None, Some(name)) => {
                            let base_has = self.in_baseline_any(*key, name.as_str(), holder_roles);
                            let kind = if self.input.baseline.is_some() && !base_has {
                                ReasonKind::Drift
                            } else {
                                ReasonKind::Config
                            };
                            let msg = if kind == ReasonKind::Drift {
                                grantor.given_outside_reason(name.as_str())
                            } else {
                                grantor.not_given_reason(name.as_str())
                            };
                            (name.to_string(), Some(name.to_string()), Reason::new(kind, msg))
                        }
                        (None, None) => (
                            live_key.to_string(),
                            None,
                            Reason::new(ReasonKind::Config, format!("`{live_key}` is not in the configuration")),
                        ),
                    }
                }
                Key::ServiceAccount(name) => {
                    if !self.desired.service_accounts.keys().any(|n| n.as_str() == *name) {
                        continue; // Service accounts keyward does not know are left alone.
                    }
                    match expired.get(key) {
                        Some((_, date)) => (
                            name.to_string(),
                            Some(name.to_string()),
                            Reason::new(ReasonKind::Expiry, format!("the assignment expired on {date}")),
                        ),
                        None => (
                            name.to_string(),
                            Some(name.to_string()),
                            Reason::new(ReasonKind::Config, grantor.not_given_reason(name)),
                        ),
                    }
                }
            };
            let real = match key {
                Key::User(_) => Principal::User(live_key.to_string()),
                Key::ServiceAccount(n) => Principal::ServiceAccount(n.to_string()),
            };
            out.push(Change {
                address: self.addr(grantor.member_kind(), format!("{address_name}/{}", grantor.name())),
                action: Action::Revoke,
                reason,
                before: Some(grantor.values(binding)),
                after: None,
                fingerprint: fingerprint_of(live_binding, key.as_str(), true),
                subject,
                notes: vec![],
                operation: Operation::Revoke { principal: real, binding: binding.clone() },
            });
        }
    }

    /// Where `binding` is missing for the account `account` (`None`: an account to create),
    /// as the target reported it.
    fn out_of_reach(&self, binding: &Binding, account: Option<&str>) -> Option<&'a str> {
        let key = (binding.kind(), lower(&binding.object_name()));
        self.live
            .out_of_reach
            .iter()
            .find(|o| o.account.as_deref() == account && (o.binding.kind(), lower(&o.binding.object_name())) == key)
            .map(|o| o.scope.as_str())
    }

    /// Whether the baseline gave this principal any of these roles (unexpired).
    fn in_baseline_any(&self, principal: Key, subject: &str, roles: &[&Name]) -> bool {
        roles.iter().any(|r| self.in_baseline(principal, subject, r))
    }
    /// Whether the baseline gave this principal this role (unexpired).
    fn in_baseline(&self, principal: Key, subject: &str, role: &Name) -> bool {
        let Some(b) = self.input.baseline else { return false };
        let now = self.input.now;
        let grants = match principal {
            Key::User(_) => Name::new(subject).ok().and_then(|n| b.users.get(&n)).map(|u| &u.roles),
            Key::ServiceAccount(_) => {
                Name::new(subject).ok().and_then(|n| b.service_accounts.get(&n)).map(|s| &s.roles)
            }
        };
        grants.is_some_and(|gs| active_grants(gs, now).any(|g| g.role() == role))
    }

    fn auth_methods(&self, out: &mut Vec<Change>) {
        if !self.caps.auth_methods_policy || self.desired.authentication_policies.is_empty() {
            return;
        }
        let mut wanted: BTreeMap<crate::model::AuthMethod, bool> = BTreeMap::new();
        for p in self.desired.authentication_policies.values() {
            if let Some(m) = &p.methods {
                for a in &m.allowed {
                    wanted.entry(*a).or_insert(true);
                }
                // A method forbidden by any policy is off, whatever another allows.
                for f in &m.forbidden {
                    wanted.insert(*f, false);
                }
            }
        }
        let live = self.live.auth_methods.clone().unwrap_or_default();
        for (method, enabled) in wanted {
            let have = live.get(&method).copied();
            if have == Some(enabled) {
                continue;
            }
            out.push(Change {
                address: self.addr(ObjectKind::AuthMethod, method.as_str()),
                action: Action::Update,
                reason: Reason::new(
                    ReasonKind::Policy,
                    if enabled {
                        "an AuthenticationPolicy allows this method"
                    } else {
                        "an AuthenticationPolicy forbids this method"
                    },
                ),
                before: Some([("enabled".to_string(), have.map_or(Value::Null, |h| json!(h)))].into()),
                after: Some([("enabled".to_string(), json!(enabled))].into()),
                fingerprint: crate::model::digest(&(method, have)),
                subject: None,
                notes: vec![],
                operation: Operation::SetAuthMethod { method, enabled },
            });
        }
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

fn day(t: Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// A credential as plans show it: name and dates, never material.
fn credential_values(c: &LiveCredential) -> Values {
    let mut v = Values::new();
    v.insert("credential".into(), json!(c.name));
    v.insert("type".into(), json!(c.kind));
    v.insert("start".into(), json!(day(c.start)));
    v.insert("end".into(), json!(day(c.end)));
    v
}

fn attrs_values(attrs: &UserAttrs) -> Values {
    let mut v = Values::new();
    for f in UserField::ALL {
        if let Some(x) = attrs.get(f) {
            v.insert(f.as_str().into(), json!(x));
        }
    }
    v
}

fn live_values(live: &LiveAccount) -> Values {
    let mut v = attrs_values(&live.attrs);
    v.insert("userName".into(), json!(live.user_name));
    v.insert("active".into(), json!(live.active));
    v
}

/// The set of lower-cased userNames that hold `binding` on `live` and are active.
pub fn active_holders(live: &LiveTarget, binding: &Binding) -> BTreeSet<String> {
    let accounts: HashMap<&str, &LiveAccount> = live.accounts.iter().map(|a| (a.id.as_str(), a)).collect();
    let want = lower(&binding.object_name());
    live.bindings
        .iter()
        .filter(|b| b.binding.kind() == binding.kind() && lower(&b.binding.object_name()) == want)
        .flat_map(|b| b.members.iter())
        .filter_map(|id| accounts.get(id.as_str()))
        .filter(|a| a.active)
        .map(|a| lower(&a.user_name))
        .collect()
}

/// What a binding stands for: a Role, or the readers of a DataClassification.
#[derive(Debug, Clone, Copy)]
enum Grantor<'a> {
    Role(&'a Name),
    Data(&'a Name),
}

impl Grantor<'_> {
    fn name(&self) -> &Name {
        match self {
            Grantor::Role(n) | Grantor::Data(n) => n,
        }
    }

    /// The kind of the bound object's address.
    fn object_kind(&self) -> ObjectKind {
        match self {
            Grantor::Role(_) => ObjectKind::Role,
            Grantor::Data(_) => ObjectKind::FieldProfile,
        }
    }

    /// The kind of a membership's address.
    fn member_kind(&self) -> ObjectKind {
        match self {
            Grantor::Role(_) => ObjectKind::Assignment,
            Grantor::Data(_) => ObjectKind::FieldProfile,
        }
    }

    fn describe(&self) -> String {
        match self {
            Grantor::Role(r) => format!("role `{r}`"),
            Grantor::Data(d) => format!("read access to `{d}`"),
        }
    }

    fn values(&self, binding: &Binding) -> Values {
        let mut v = Values::new();
        match self {
            Grantor::Role(r) => v.insert("role".into(), json!(r)),
            Grantor::Data(d) => v.insert("dataClassification".into(), json!(d)),
        };
        v.insert("binding".into(), json!(binding.label()));
        v
    }

    fn create_reason(&self, binding: &Binding) -> String {
        match self {
            Grantor::Role(r) => format!("role `{r}` is bound to {}, which does not exist yet", binding.label()),
            Grantor::Data(d) => {
                format!("`{d}` lists columns here; {} keeps them readable by its readers only", binding.label())
            }
        }
    }

    fn give_reason(&self, subject: &str) -> String {
        match self {
            Grantor::Role(r) => format!("the configuration gives `{subject}` role `{r}`"),
            Grantor::Data(d) => format!("`{subject}` holds a role that may read `{d}`"),
        }
    }

    fn lost_reason(&self, subject: &str) -> String {
        match self {
            Grantor::Role(r) => format!("`{subject}` lost role `{r}` outside git"),
            Grantor::Data(d) => format!("`{subject}` lost read access to `{d}` outside git"),
        }
    }

    fn not_given_reason(&self, subject: &str) -> String {
        match self {
            Grantor::Role(r) => format!("the configuration does not give `{subject}` role `{r}` here"),
            Grantor::Data(d) => format!("`{subject}` holds no role here that may read `{d}`"),
        }
    }

    fn given_outside_reason(&self, subject: &str) -> String {
        match self {
            Grantor::Role(r) => format!("`{subject}` was given role `{r}` outside git"),
            Grantor::Data(d) => format!("`{subject}` was given read access to `{d}` outside git"),
        }
    }
}

/// The display values of a binding: its label, and for a field security profile its columns.
fn binding_values(binding: &Binding) -> Values {
    let mut v = Values::new();
    v.insert("binding".into(), json!(binding.label()));
    if let Binding::FieldSecurityProfile(p) = binding {
        v.insert("columns".into(), json!(p.columns));
    }
    v
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
