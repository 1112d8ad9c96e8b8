//! Change feeds: what changed on a target since a cursor, and applying it to the live state
//! held from an earlier read.
//!
//! A provider with a feed answers a read with a [`Cursor`], and later, given that cursor, with
//! [`Changes`]: accounts created or updated (whole, as a read would return them), accounts
//! removed, bindings created or renamed, bindings removed, and members added or removed.
//! [`apply`] folds them into a [`LiveTarget`]; [`normalized`] is the form in which a state built
//! from a feed is compared with a fresh full read (order of lists is not part of the state).
//!
//! Guarantees: [`apply`] is pure and idempotent per change (creating what exists updates it,
//! removing what is gone does nothing, adding a present member does nothing); an account
//! removed leaves every binding's members (a full read lists no member that is not an
//! object of the directory).

use std::collections::{BTreeMap, BTreeSet};

use super::{Binding, LiveAccount, LiveBinding, LiveTarget};

/// Where a provider's feed stands: opaque to everyone but the provider that made it (on
/// Microsoft Graph, the delta links by collection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(pub BTreeMap<String, String>);

/// One change read from a feed.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveChange {
    /// An account created or updated, whole.
    Account(LiveAccount),
    /// The account with this id is gone (deleted, soft-deleted, or out of scope).
    AccountRemoved { id: String },
    /// A binding created or renamed; its members are untouched (new: none).
    Binding { id: String, binding: Binding },
    /// The binding with this id is gone.
    BindingRemoved { id: String },
    /// A member added to the binding `binding` (by binding id).
    MemberAdded { binding: String, member: String },
    /// A member removed from the binding `binding`.
    MemberRemoved { binding: String, member: String },
}

/// What changed since a cursor, in the order the feed reported it, and the cursor to ask
/// from next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub changes: Vec<LiveChange>,
    pub cursor: Cursor,
}

impl Changes {
    /// Objects the changes name (accounts and bindings, each once).
    pub fn objects(&self) -> usize {
        let mut ids: BTreeSet<(&str, &str)> = BTreeSet::new();
        for c in &self.changes {
            ids.insert(match c {
                LiveChange::Account(a) => ("account", a.id.as_str()),
                LiveChange::AccountRemoved { id } => ("account", id),
                LiveChange::Binding { id, .. } | LiveChange::BindingRemoved { id } => ("binding", id),
                LiveChange::MemberAdded { binding, .. } | LiveChange::MemberRemoved { binding, .. } => {
                    ("binding", binding)
                }
            });
        }
        ids.len()
    }
}

/// Applies `changes` to `live`, in order. `fingerprint` gives a binding's fingerprint from its
/// id, name and members, as its provider computes it on a full read; it is called once per
/// binding the changes touch.
pub fn apply(live: &mut LiveTarget, changes: &[LiveChange], fingerprint: impl Fn(&LiveBinding) -> String) {
    let mut accounts: BTreeMap<String, usize> =
        live.accounts.iter().enumerate().map(|(i, a)| (a.id.clone(), i)).collect();
    let mut bindings: BTreeMap<String, usize> =
        live.bindings.iter().enumerate().map(|(i, b)| (b.id.clone(), i)).collect();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut removed_accounts: BTreeSet<String> = BTreeSet::new();
    for change in changes {
        match change {
            LiveChange::Account(a) => {
                removed_accounts.remove(&a.id);
                match accounts.get(&a.id) {
                    Some(&i) => live.accounts[i] = a.clone(),
                    None => {
                        accounts.insert(a.id.clone(), live.accounts.len());
                        live.accounts.push(a.clone());
                    }
                }
            }
            LiveChange::AccountRemoved { id } => {
                removed_accounts.insert(id.clone());
                // Members are taken out at the end, once, for every removed account.
            }
            LiveChange::Binding { id, binding } => match bindings.get(id) {
                Some(&i) => {
                    let old = std::mem::replace(&mut live.bindings[i].binding, binding.clone());
                    if &old != binding {
                        rename(live, &old, binding);
                    }
                    touched.insert(id.clone());
                }
                None => {
                    bindings.insert(id.clone(), live.bindings.len());
                    live.bindings.push(LiveBinding {
                        id: id.clone(),
                        binding: binding.clone(),
                        members: Vec::new(),
                        fingerprint: String::new(),
                    });
                    touched.insert(id.clone());
                }
            },
            LiveChange::BindingRemoved { id } => {
                if let Some(i) = bindings.remove(id) {
                    let gone = live.bindings[i].binding.clone();
                    live.eligibility.retain(|e| e.binding != gone);
                    live.activation.retain(|a| a.binding != gone);
                    live.bindings.retain(|b| &b.id != id);
                    bindings = live.bindings.iter().enumerate().map(|(i, b)| (b.id.clone(), i)).collect();
                    touched.remove(id);
                }
            }
            LiveChange::MemberAdded { binding, member } => {
                if let Some(&i) = bindings.get(binding) {
                    let b = &mut live.bindings[i];
                    if !b.members.contains(member) {
                        b.members.push(member.clone());
                        touched.insert(binding.clone());
                    }
                }
            }
            LiveChange::MemberRemoved { binding, member } => {
                if let Some(&i) = bindings.get(binding) {
                    let b = &mut live.bindings[i];
                    let before = b.members.len();
                    b.members.retain(|m| m != member);
                    if b.members.len() != before {
                        touched.insert(binding.clone());
                    }
                }
            }
        }
    }
    if !removed_accounts.is_empty() {
        live.accounts.retain(|a| !removed_accounts.contains(&a.id));
        for b in &mut live.bindings {
            let before = b.members.len();
            b.members.retain(|m| !removed_accounts.contains(m));
            if b.members.len() != before {
                touched.insert(b.id.clone());
            }
        }
    }
    for b in live.bindings.iter_mut().filter(|b| touched.contains(&b.id)) {
        b.members.sort();
        b.fingerprint = fingerprint(b);
    }
}

/// A binding renamed: what the last full read said about eligibility and activation follows
/// the new name.
fn rename(live: &mut LiveTarget, old: &Binding, new: &Binding) {
    for e in live.eligibility.iter_mut().filter(|e| &e.binding == old) {
        e.binding = new.clone();
    }
    for a in live.activation.iter_mut().filter(|a| &a.binding == old) {
        a.binding = new.clone();
    }
}

/// What a feed keeps up to date, in the form two reads of the same state share: accounts and
/// bindings by id, members sorted. The rest of a live state (service accounts, eligibility,
/// activation rules, policies) comes from full reads only.
pub fn kept(live: &LiveTarget) -> (Vec<LiveAccount>, Vec<LiveBinding>) {
    let n = normalized(live);
    (n.accounts, n.bindings)
}

/// `live` in the form two reads of the same state share: accounts, service accounts and
/// bindings by id, members sorted.
pub fn normalized(live: &LiveTarget) -> LiveTarget {
    let mut n = live.clone();
    n.accounts.sort_by(|a, b| a.id.cmp(&b.id));
    n.service_accounts.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.name.cmp(&b.name)));
    n.bindings.sort_by(|a, b| a.id.cmp(&b.id));
    for b in &mut n.bindings {
        b.members.sort();
    }
    n
}

/// What differs between what two states [`kept`], by object, for the log when a resync finds
/// the state built from a feed differs from a full read: ids only, never values.
pub fn differences(held: &LiveTarget, read: &LiveTarget) -> Vec<String> {
    let (held, read) = (normalized(held), normalized(read));
    let mut out = Vec::new();
    let accounts = |t: &LiveTarget| t.accounts.iter().map(|a| (a.id.clone(), a.clone())).collect::<BTreeMap<_, _>>();
    let (ha, ra) = (accounts(&held), accounts(&read));
    for id in ha.keys().chain(ra.keys()).collect::<BTreeSet<_>>() {
        match (ha.get(id), ra.get(id)) {
            (Some(_), None) => out.push(format!("account {id}: held, not read")),
            (None, Some(_)) => out.push(format!("account {id}: read, not held")),
            (Some(a), Some(b)) if a != b => out.push(format!("account {id}: differs")),
            _ => {}
        }
    }
    let bindings = |t: &LiveTarget| t.bindings.iter().map(|b| (b.id.clone(), b.clone())).collect::<BTreeMap<_, _>>();
    let (hb, rb) = (bindings(&held), bindings(&read));
    for id in hb.keys().chain(rb.keys()).collect::<BTreeSet<_>>() {
        match (hb.get(id), rb.get(id)) {
            (Some(_), None) => out.push(format!("binding {id}: held, not read")),
            (None, Some(_)) => out.push(format!("binding {id}: read, not held")),
            (Some(a), Some(b)) if a != b => out.push(format!("binding {id}: differs")),
            _ => {}
        }
    }
    out
}
