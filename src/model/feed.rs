//! Change feeds: what changed on a target since a cursor, and applying it to the live state
//! held from an earlier read.
//!
//! A provider with a feed answers a read with a [`Cursor`], and later, given that cursor, with
//! [`Changes`]: accounts created or updated (whole, as a read would return them), whether
//! another directory masters an account, accounts removed, bindings created or renamed,
//! bindings removed, and members added or removed; and, for targets that place accounts in
//! units (Dataverse), an account's unit, the bindings out of its reach and its licence, as a full
//! read derives them.
//! [`apply`] folds them into a [`LiveTarget`]; [`normalized`] is the form in which a state built
//! from a feed is compared with a fresh full read (order of lists is not part of the state).
//!
//! Guarantees: [`apply`] is pure and idempotent per change (creating what exists updates it,
//! removing what is gone does nothing, adding a present member does nothing); an account
//! removed leaves every binding's members (a full read lists no member that is not an
//! object of the directory), is held elsewhere no more, and has no licence, unit or binding out
//! of its reach recorded; a member
//! added in the same round to an account the round removes is not added (the feeds report each
//! collection in turn, so a group may report a membership of a user its users' feed reported
//! deleted).

use std::collections::{BTreeMap, BTreeSet};

use super::{Binding, HeldElsewhere, LiveAccount, LiveBinding, LiveLicence, LiveTarget, OutOfReach};

/// Where a provider's feed stands: opaque to everyone but the provider that made it (on
/// Microsoft Graph, the delta links by collection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(pub BTreeMap<String, String>);

/// One change read from a feed.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveChange {
    /// An account created or updated, whole.
    Account(Box<LiveAccount>),
    /// Whether another directory masters the account `account`, and what the target therefore
    /// refuses to change (`None`: nothing), as a full read reports it.
    AccountHeld { account: String, held: Option<HeldElsewhere> },
    /// The account with this id is gone (deleted, soft-deleted, or out of scope).
    AccountRemoved { id: String },
    /// The business unit (by name) the account `account` is in, `None`: none; for targets
    /// that report units ([`LiveTarget::business_units`]), ignored by others.
    AccountUnit { account: String, unit: Option<String> },
    /// Every binding out of the reach of the account `account`, as a full read reports them
    /// (replacing what was held for it).
    AccountOutOfReach { account: String, out_of_reach: Vec<OutOfReach> },
    /// What the target records about the account's licence (`None`: nothing).
    AccountLicence { account: String, licence: Option<LiveLicence> },
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
                LiveChange::AccountRemoved { id }
                | LiveChange::AccountHeld { account: id, .. }
                | LiveChange::AccountUnit { account: id, .. }
                | LiveChange::AccountOutOfReach { account: id, .. }
                | LiveChange::AccountLicence { account: id, .. } => ("account", id),
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
    if changes.is_empty() {
        return;
    }
    // Only the accounts the changes name are indexed: one pass, however many accounts.
    let wanted: BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            LiveChange::Account(a) => Some(a.id.as_str()),
            LiveChange::AccountRemoved { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let index = |accounts: &[LiveAccount]| -> BTreeMap<String, usize> {
        if wanted.is_empty() {
            return BTreeMap::new();
        }
        accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| wanted.contains(a.id.as_str()))
            .map(|(i, a)| (a.id.clone(), i))
            .collect()
    };
    let mut accounts = index(&live.accounts);
    let mut bindings: BTreeMap<String, usize> =
        live.bindings.iter().enumerate().map(|(i, b)| (b.id.clone(), i)).collect();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut removed_accounts: BTreeSet<String> = BTreeSet::new();
    let mut reach_touched = false;
    // Accounts the round removes (held or not) and does not report again: a membership the
    // round reports for one of them is of an object a full read no longer lists.
    let mut gone: BTreeSet<&str> = BTreeSet::new();
    for change in changes {
        match change {
            LiveChange::Account(a) => {
                gone.remove(a.id.as_str());
                if removed_accounts.remove(&a.id) {
                    // Removed earlier in this round: its old entry goes before the new one.
                    live.accounts.retain(|x| x.id != a.id);
                    accounts = index(&live.accounts);
                }
                match accounts.get(&a.id) {
                    Some(&i) => live.accounts[i] = (**a).clone(),
                    None => {
                        accounts.insert(a.id.clone(), live.accounts.len());
                        live.accounts.push((**a).clone());
                    }
                }
            }
            LiveChange::AccountHeld { account, held } => {
                live.held_elsewhere.retain(|h| &h.account != account);
                live.held_elsewhere.extend(held.iter().cloned());
            }
            LiveChange::AccountRemoved { id } => {
                gone.insert(id.as_str());
                if accounts.remove(id).is_some() {
                    removed_accounts.insert(id.clone());
                }
                live.held_elsewhere.retain(|h| &h.account != id);
                live.licences.remove(id);
                if let Some(units) = live.business_units.as_mut() {
                    units.of_account.remove(id);
                }
                let before = live.out_of_reach.len();
                live.out_of_reach.retain(|o| o.account.as_ref() != Some(id));
                reach_touched |= live.out_of_reach.len() != before;
                for b in &mut live.bindings {
                    let before = b.members.len();
                    b.members.retain(|m| m != id);
                    if b.members.len() != before {
                        touched.insert(b.id.clone());
                    }
                }
            }
            LiveChange::AccountUnit { account, unit } => {
                if let Some(units) = live.business_units.as_mut() {
                    match unit {
                        Some(u) => units.of_account.insert(account.clone(), u.clone()),
                        None => units.of_account.remove(account),
                    };
                }
            }
            LiveChange::AccountOutOfReach { account, out_of_reach } => {
                live.out_of_reach.retain(|o| o.account.as_ref() != Some(account));
                live.out_of_reach.extend(out_of_reach.iter().filter(|o| o.account.as_ref() == Some(account)).cloned());
                reach_touched = true;
            }
            LiveChange::AccountLicence { account, licence } => match licence {
                Some(l) => {
                    live.licences.insert(account.clone(), l.clone());
                }
                None => {
                    live.licences.remove(account);
                }
            },
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
                if gone.contains(member.as_str()) {
                    continue;
                }
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
    }
    if reach_touched {
        sort_out_of_reach(&mut live.out_of_reach);
    }
    for b in live.bindings.iter_mut().filter(|b| touched.contains(&b.id)) {
        b.members.sort();
        b.fingerprint = fingerprint(b);
    }
}

/// Bindings out of reach in the order a full read lists them: by account (those of accounts to
/// be created first), then binding.
pub fn sort_out_of_reach(out_of_reach: &mut [OutOfReach]) {
    out_of_reach.sort_by_cached_key(|o| (o.account.clone(), o.binding.label()));
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
/// bindings by id, members sorted, and the accounts held elsewhere by account. The rest of a
/// live state (service accounts, eligibility, activation rules, policies) comes from full reads
/// only.
pub fn kept(live: &LiveTarget) -> (Vec<LiveAccount>, Vec<LiveBinding>, Vec<HeldElsewhere>) {
    let n = normalized(live);
    (n.accounts, n.bindings, n.held_elsewhere)
}

/// `live` in the form two reads of the same state share: accounts, service accounts and
/// bindings by id, members sorted, accounts held elsewhere by account.
pub fn normalized(live: &LiveTarget) -> LiveTarget {
    let mut n = live.clone();
    n.accounts.sort_by(|a, b| a.id.cmp(&b.id));
    n.held_elsewhere.sort_by(|a, b| a.account.cmp(&b.account));
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
    let held_by =
        |t: &LiveTarget| t.held_elsewhere.iter().map(|h| (h.account.clone(), h.clone())).collect::<BTreeMap<_, _>>();
    let (hh, rh) = (held_by(&held), held_by(&read));
    for id in hh.keys().chain(rh.keys()).collect::<BTreeSet<_>>() {
        if hh.get(id) != rh.get(id) {
            out.push(format!("account {id}: held elsewhere differs"));
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::model::{UserAttrs, digest};

    fn fingerprint(b: &LiveBinding) -> String {
        digest(&(&b.id, &b.binding, &b.members))
    }

    /// The directory, as plain maps: the state built directly.
    #[derive(Debug, Clone, Default)]
    struct Directory {
        accounts: BTreeMap<String, LiveAccount>,
        bindings: BTreeMap<String, (String, BTreeSet<String>)>,
    }

    impl Directory {
        fn live(&self) -> LiveTarget {
            LiveTarget {
                accounts: self.accounts.values().cloned().collect(),
                bindings: self
                    .bindings
                    .iter()
                    .map(|(id, (name, members))| {
                        let mut b = LiveBinding {
                            id: id.clone(),
                            binding: Binding::Group(name.clone()),
                            members: members.iter().cloned().collect(),
                            fingerprint: String::new(),
                        };
                        b.fingerprint = fingerprint(&b);
                        b
                    })
                    .collect(),
                ..LiveTarget::default()
            }
        }

        /// Carries out one operation and returns the changes a feed reports for it.
        fn run(&mut self, op: &Op) -> Vec<LiveChange> {
            match op {
                Op::Upsert { account, title } => {
                    let id = format!("u{account}");
                    let a = LiveAccount {
                        id: id.clone(),
                        user_name: format!("{id}@example.test"),
                        attrs: UserAttrs { job_title: Some(format!("t{title}")), ..UserAttrs::default() },
                        active: true,
                        last_sign_in: None,
                        registered_methods: None,
                        fingerprint: format!("f{title}"),
                    };
                    self.accounts.insert(id, a.clone());
                    vec![LiveChange::Account(Box::new(a))]
                }
                Op::RemoveAccount { account } => {
                    let id = format!("u{account}");
                    self.accounts.remove(&id);
                    for (_, members) in self.bindings.values_mut() {
                        members.remove(&id);
                    }
                    vec![LiveChange::AccountRemoved { id }]
                }
                Op::Group { group, name } => {
                    let id = format!("g{group}");
                    let name = format!("n{name}");
                    self.bindings.entry(id.clone()).or_default().0 = name.clone();
                    vec![LiveChange::Binding { id, binding: Binding::Group(name) }]
                }
                Op::RemoveGroup { group } => {
                    let id = format!("g{group}");
                    self.bindings.remove(&id);
                    vec![LiveChange::BindingRemoved { id }]
                }
                Op::Member { group, account, added } => {
                    let (binding, member) = (format!("g{group}"), format!("u{account}"));
                    // Only existing objects can be members of existing groups.
                    let Some((_, members)) = self.bindings.get_mut(&binding) else { return vec![] };
                    if !self.accounts.contains_key(&member) {
                        return vec![];
                    }
                    if *added {
                        members.insert(member.clone());
                        vec![LiveChange::MemberAdded { binding, member }]
                    } else {
                        members.remove(&member);
                        vec![LiveChange::MemberRemoved { binding, member }]
                    }
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert { account: u8, title: u8 },
        RemoveAccount { account: u8 },
        Group { group: u8, name: u8 },
        RemoveGroup { group: u8 },
        Member { group: u8, account: u8, added: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..12u8, 0..4u8).prop_map(|(account, title)| Op::Upsert { account, title }),
            (0..12u8).prop_map(|account| Op::RemoveAccount { account }),
            (0..5u8, 0..4u8).prop_map(|(group, name)| Op::Group { group, name }),
            (0..5u8).prop_map(|group| Op::RemoveGroup { group }),
            (0..5u8, 0..12u8, any::<bool>()).prop_map(|(group, account, added)| Op::Member { group, account, added }),
            (0..5u8, 0..12u8).prop_map(|(group, account)| Op::Member { group, account, added: true }),
        ]
    }

    proptest! {
        /// Applying random change sets, in random batches (each batch one feed round, a change
        /// possibly reported again in the next round), equals the state built directly.
        #[test]
        fn applying_changes_equals_the_state_built_directly(
            setup in prop::collection::vec(op(), 0..30),
            rounds in prop::collection::vec((prop::collection::vec(op(), 0..12), any::<bool>()), 1..8),
        ) {
            let mut dir = Directory::default();
            for o in &setup {
                dir.run(o);
            }
            let mut held = dir.live();
            for (ops, repeat) in &rounds {
                let mut changes: Vec<LiveChange> = ops.iter().flat_map(|o| dir.run(o)).collect();
                if *repeat {
                    // A round that reports its changes twice (a change made while a full read ran
                    // comes from the read and from the feed): applying one again changes nothing.
                    changes.extend(changes.clone());
                }
                apply(&mut held, &changes, fingerprint);
                prop_assert_eq!(normalized(&held), normalized(&dir.live()));
                prop_assert!(differences(&held, &dir.live()).is_empty());
            }
        }
    }

    #[test]
    fn a_removed_account_leaves_every_group_and_objects_are_counted_once() {
        let mut dir = Directory::default();
        dir.run(&Op::Upsert { account: 1, title: 0 });
        dir.run(&Op::Group { group: 1, name: 1 });
        dir.run(&Op::Member { group: 1, account: 1, added: true });
        let mut held = dir.live();
        let changes = dir.run(&Op::RemoveAccount { account: 1 });
        held.licences.insert(
            "u1".into(),
            crate::model::LiveLicence { access_mode: "Read-Write".into(), exempt: false, licensed: true },
        );
        apply(&mut held, &changes, fingerprint);
        assert!(held.bindings[0].members.is_empty());
        assert!(held.licences.is_empty(), "a removed account's licence goes with it");
        assert_eq!(held.bindings[0].fingerprint, fingerprint(&held.bindings[0]));
        let c = Changes {
            changes: vec![
                LiveChange::MemberAdded { binding: "g1".into(), member: "u2".into() },
                LiveChange::MemberRemoved { binding: "g1".into(), member: "u3".into() },
                LiveChange::AccountRemoved { id: "u2".into() },
            ],
            cursor: Cursor::default(),
        };
        assert_eq!(c.objects(), 2);
    }

    #[test]
    fn a_member_added_to_an_account_the_round_removes_is_not_added() {
        let mut dir = Directory::default();
        dir.run(&Op::Upsert { account: 1, title: 0 });
        dir.run(&Op::Group { group: 1, name: 1 });
        let mut held = dir.live();
        // The users' feed reports u1 deleted; the groups' feed, read after, its addition.
        let changes = vec![
            LiveChange::AccountRemoved { id: "u1".into() },
            LiveChange::MemberAdded { binding: "g1".into(), member: "u1".into() },
            // An account never held, removed in the round, is no member either.
            LiveChange::AccountRemoved { id: "u9".into() },
            LiveChange::MemberAdded { binding: "g1".into(), member: "u9".into() },
        ];
        apply(&mut held, &changes, fingerprint);
        assert!(held.bindings[0].members.is_empty(), "{:?}", held.bindings[0].members);
        // Reported again after its removal (restored), it is a member again.
        let mut again = changes[..2].to_vec();
        again.push(LiveChange::Account(Box::new(dir.accounts["u1"].clone())));
        again.push(LiveChange::MemberAdded { binding: "g1".into(), member: "u1".into() });
        let mut held = dir.live();
        apply(&mut held, &again, fingerprint);
        assert_eq!(held.bindings[0].members, vec!["u1".to_string()]);
    }

    #[test]
    fn an_accounts_unit_reach_and_licence_are_replaced_and_go_with_the_account() {
        use crate::model::{BusinessUnits, LiveLicence, OutOfReach};
        let reach = |account: &str, role: &str| OutOfReach {
            binding: Binding::SecurityRole(role.into()),
            account: Some(account.into()),
            scope: "business unit `west`".into(),
        };
        let mut held = LiveTarget {
            business_units: Some(BusinessUnits {
                root: "root".into(),
                roles: BTreeMap::new(),
                of_account: [("u1".to_string(), "root".to_string())].into(),
            }),
            out_of_reach: vec![reach("u1", "A"), reach("u2", "A")],
            ..LiveTarget::default()
        };
        let licence = LiveLicence { access_mode: "Read-Write".into(), exempt: false, licensed: true };
        let changes = vec![
            LiveChange::AccountUnit { account: "u1".into(), unit: Some("west".into()) },
            LiveChange::AccountOutOfReach {
                account: "u1".into(),
                out_of_reach: vec![reach("u1", "C"), reach("u1", "B")],
            },
            LiveChange::AccountLicence { account: "u1".into(), licence: Some(licence.clone()) },
        ];
        apply(&mut held, &changes, |_| String::new());
        assert_eq!(held.business_units.as_ref().unwrap().of_account["u1"], "west");
        assert_eq!(held.out_of_reach, vec![reach("u1", "B"), reach("u1", "C"), reach("u2", "A")], "replaced, in order");
        assert_eq!(held.licences.get("u1"), Some(&licence));
        assert_eq!(Changes { changes, cursor: Cursor::default() }.objects(), 1, "one account");

        apply(&mut held, &[LiveChange::AccountRemoved { id: "u1".into() }], |_| String::new());
        assert!(held.business_units.as_ref().unwrap().of_account.is_empty(), "the unit goes with the account");
        assert_eq!(held.out_of_reach, vec![reach("u2", "A")], "and what was out of its reach");
        assert!(held.licences.is_empty());
    }
}
