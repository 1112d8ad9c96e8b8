//! Where a target that knows service accounts by their Entra application (Dataverse, F&O,
//! [`Capabilities::application_users`]) gets each account's client id: `applicationId` as
//! declared, or, left out, the `appId` of the app registration keyward keeps for the same
//! account on a Microsoft Graph target ([`Capabilities::entra_applications`]).
//!
//! Resolved once, before any target is planned, for the accounts present on each such target:
//! - declared, and a live registration of the account has another client id: a plan error
//!   naming both (roles would go to another application than the account's own); declared,
//!   and the registration is created by this plan (Entra gives it a client id of its own): a
//!   plan error too;
//! - left out, and the account's registrations read have one client id: that one;
//! - left out, and a Graph target that keeps the registration was read without it: this plan
//!   creates it, so nothing is planned for the account here yet (a notice says so; the next
//!   plan, once Graph has given the registration its client id, creates the application user);
//! - left out, and no such Graph target was read (`--target`): nothing planned, a notice says
//!   which target to plan too;
//! - left out, and the account has no Graph target: not managed (validation refuses it).
//!
//! Accounts of the previous revision or the baseline (retired ones) are known by their declared
//! client id, or else by their live registration's.

use super::*;
use crate::plan::Notice;

/// Where one present account's client id comes from on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source<'a> {
    /// Declared (and, where a registration was read, its client id too).
    Known(&'a str),
    /// Left out, and taken from the account's live registration on `graph`.
    Registered { id: &'a str, graph: &'a Name },
    /// Left out; the registration is created by this plan on `graph`.
    Pending { graph: &'a Name },
    /// Left out; none of the Graph targets that keep the registration was read.
    NotRead { unread: Vec<&'a Name> },
    /// Left out, and the account has no registration keyward keeps.
    Missing,
}

/// One present account's [`Source`] on one target.
struct Resolved<'a> {
    target: &'a Name,
    account: &'a Name,
    source: Source<'a>,
}

/// The client id of every service account on every target read that knows accounts by it.
#[derive(Default)]
pub(crate) struct AppIds<'a> {
    /// By target and account name, for the accounts present there.
    sources: BTreeMap<&'a str, BTreeMap<&'a str, Resolved<'a>>>,
    /// The client ids of the live registrations read, by account name, with their target.
    registered: FxHashMap<&'a str, Vec<(&'a Name, &'a str)>>,
}

impl<'a> AppIds<'a> {
    /// Resolves every account present on every target read with application users, by the
    /// grants active at `now` (all of them without one, as the plan's notices count them).
    pub fn resolve(
        desired: &'a DesiredState,
        live: &'a BTreeMap<Name, LiveTarget>,
        caps: &'a BTreeMap<Name, Capabilities>,
        now: Option<Timestamp>,
    ) -> (Self, Vec<PlanError>) {
        let mut out = AppIds::default();
        let mut errors = Vec::new();
        for (name, lt) in live {
            if !caps.get(name).is_some_and(|c| c.entra_applications) {
                continue;
            }
            for s in &lt.service_accounts {
                if let Some(id) = s.application_id.as_deref() {
                    out.registered.entry(s.name.as_str()).or_default().push((name, id));
                }
            }
        }
        for target_name in live.keys() {
            let Some(target) = desired.settings.targets.get(target_name) else { continue };
            if !caps.get(target_name).is_some_and(|c| c.application_users && c.service_accounts) {
                continue;
            }
            let mut by_id: BTreeMap<&'a str, &'a Name> = BTreeMap::new();
            for (sa_name, sa) in &desired.service_accounts {
                let roles: Vec<&Name> = match now {
                    Some(now) => active_grants(&sa.roles, now).map(RoleGrant::role).collect(),
                    None => sa.roles.iter().map(RoleGrant::role).collect(),
                };
                if !desired.present_on(sa.explicit_targets(), roles.iter().copied(), target) {
                    continue;
                }
                let holders = desired.registration_targets(sa, &roles);
                // The registrations of this account on the Graph targets that keep it.
                let found: Vec<(&'a Name, &'a str)> = out
                    .registered
                    .get(sa_name.as_str())
                    .into_iter()
                    .flatten()
                    .filter(|(g, _)| holders.contains(g))
                    .copied()
                    .collect();
                let mut ids: Vec<&'a str> = found.iter().map(|(_, id)| *id).collect();
                ids.sort_unstable();
                ids.dedup();
                let source = match (sa.application_id(target_name), ids.as_slice()) {
                    (Some(declared), _) if !ids.is_empty() && !ids.contains(&declared) => {
                        let (graph, registered) = found[0];
                        errors.push(PlanError::ApplicationIdMismatch {
                            target: target_name.clone(),
                            account: sa_name.clone(),
                            declared: declared.to_string(),
                            registered: registered.to_string(),
                            graph: graph.clone(),
                        });
                        continue;
                    }
                    (Some(declared), []) if holders.iter().any(|g| live.contains_key(*g)) => {
                        // The registration this plan creates gets a client id of its own.
                        let graph = holders.iter().copied().find(|g| live.contains_key(*g)).unwrap_or(holders[0]);
                        errors.push(PlanError::ApplicationIdBeforeRegistration {
                            target: target_name.clone(),
                            account: sa_name.clone(),
                            declared: declared.to_string(),
                            graph: graph.clone(),
                        });
                        continue;
                    }
                    (Some(declared), _) => Source::Known(declared),
                    (None, [one]) => Source::Registered { id: one, graph: found[0].0 },
                    (None, []) => {
                        let read: Vec<&'a Name> = holders.iter().copied().filter(|g| live.contains_key(*g)).collect();
                        match read.first() {
                            Some(graph) => Source::Pending { graph },
                            None if holders.is_empty() => Source::Missing,
                            None => Source::NotRead { unread: holders },
                        }
                    }
                    (None, many) => {
                        errors.push(PlanError::ApplicationIdAmbiguous {
                            target: target_name.clone(),
                            account: sa_name.clone(),
                            ids: many.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", "),
                        });
                        continue;
                    }
                };
                if let Source::Known(id) | Source::Registered { id, .. } = source {
                    // Declared ids are unique (validation); one taken from Graph may not be.
                    if let Some(first) = by_id.insert(id, sa_name) {
                        errors.push(PlanError::ApplicationIdTaken {
                            target: target_name.clone(),
                            account: sa_name.clone(),
                            other: first.clone(),
                            id: id.to_string(),
                        });
                        continue;
                    }
                }
                let resolved = Resolved { target: target_name, account: sa_name, source };
                out.sources.entry(target_name.as_str()).or_default().insert(sa_name.as_str(), resolved);
            }
        }
        (out, errors)
    }

    /// Where the client id of present account `account` comes from on `target`.
    pub fn source(&self, target: &Name, account: &str) -> Option<&Source<'a>> {
        self.sources.get(target.as_str())?.get(account).map(|r| &r.source)
    }

    /// The client id target `target` knows account `name` (of the configuration, its baseline
    /// or its previous revision) by, if known: resolved, declared, or its one live
    /// registration's.
    pub fn key(&self, target: &Name, name: &'a str, sa: &'a ServiceAccount) -> Option<&'a str> {
        match self.source(target, name) {
            Some(Source::Known(id) | Source::Registered { id, .. }) => return Some(id),
            Some(_) => return None,
            None => {}
        }
        if let Some(id) = sa.application_id(target) {
            return Some(id);
        }
        match self.registered.get(name).map(Vec::as_slice) {
            Some([(_, id)]) => Some(id),
            _ => None,
        }
    }

    /// The notices of accounts whose client id is to come from a registration that this plan
    /// creates, or that was not read (those with no registration at all are
    /// [`Notice::application_id_missing`]'s).
    pub fn notices(&self) -> Vec<Notice> {
        let mut out = Vec::new();
        for Resolved { target, account, source } in self.sources.values().flat_map(BTreeMap::values) {
            match source {
                Source::Pending { graph } => out.push(Notice::application_id_pending(target, account, graph)),
                Source::NotRead { unread } => out.push(Notice::application_id_not_read(target, account, unread)),
                Source::Known(_) | Source::Registered { .. } | Source::Missing => {}
            }
        }
        out
    }
}

/// The conflicts between the client ids service accounts declare and those of their app
/// registrations read from Graph (see the module's documentation), as plan errors: for
/// validation to report at the YAML line before anything is planned.
pub fn application_id_errors(
    desired: &DesiredState,
    live: &BTreeMap<Name, LiveTarget>,
    caps: &BTreeMap<Name, Capabilities>,
) -> Vec<PlanError> {
    AppIds::resolve(desired, live, caps, None).1
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::model::{ProviderKind, capabilities};

    const APP: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const OTHER: &str = "6b29fc40-ca47-1067-b31d-00dd010662da";
    const SETTINGS: &str = "version: 1
targets:
  entra: {provider: graph, tenant: 456e4037-8afc-4f71-ae73-f9e51f634295, clientId: c11b361e-d038-475f-b98e-78737063942d, clientSecret: '${env:S}'}
  d365: {provider: dataverse, url: https://x.crm.dynamics.com, tenant: 456e4037-8afc-4f71-ae73-f9e51f634295, clientId: 55b1a2c7-9c3a-4911-a9b3-2555f9df8578, clientSecret: '${env:S}', users: with-roles}
";
    const REST: &str = "kind: User
name: grace
userName: grace@northwind.example
---
kind: Role
name: order-sync
bindings: {d365: {securityRole: Salesperson}}
";

    fn state(targets: &str) -> DesiredState {
        let sa =
            format!("kind: ServiceAccount\nname: sales-sync\nowner: grace\ntargets: {targets}\nroles: [order-sync]\n");
        let files = vec![
            (PathBuf::from("keyward.yaml"), SETTINGS.as_bytes().to_vec()),
            (PathBuf::from("rest.yaml"), REST.as_bytes().to_vec()),
            (PathBuf::from("sa.yaml"), sa.into_bytes()),
        ];
        let loaded = crate::load::load_files(Path::new("/c"), files).unwrap();
        let v = crate::validate::validate(&loaded);
        assert!(!v.has_errors(), "{:?}", v.diagnostics);
        v.state.unwrap()
    }

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    /// The Graph target holding the account's registration with client id `app`, if any, and
    /// the Dataverse target with the security role.
    fn live(app: Option<&str>) -> BTreeMap<Name, LiveTarget> {
        let mut entra = LiveTarget::default();
        if let Some(app) = app {
            entra.service_accounts.push(LiveServiceAccount {
                id: "8d3e4c1a-0000-4000-8000-000000000001".into(),
                name: "sales-sync".into(),
                display_name: None,
                description: None,
                owner: None,
                credentials: Vec::new(),
                fingerprint: "f".into(),
                application_id: Some(app.into()),
                active: None,
            });
        }
        let mut d365 = LiveTarget::default();
        d365.bindings.push(LiveBinding {
            id: "r-sales".into(),
            binding: Binding::SecurityRole("Salesperson".into()),
            members: Vec::new(),
            fingerprint: "f".into(),
        });
        [(name("entra"), entra), (name("d365"), d365)].into()
    }

    fn caps() -> BTreeMap<Name, Capabilities> {
        [(name("entra"), capabilities(ProviderKind::Graph)), (name("d365"), capabilities(ProviderKind::Dataverse))]
            .into()
    }

    fn plan(desired: &DesiredState, live: &BTreeMap<Name, LiveTarget>) -> Result<Vec<Change>, Vec<PlanError>> {
        let caps = caps();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc();
        let input =
            PlanInput { desired, live, capabilities: &caps, now, baseline: None, undelivered: &[], previous: None };
        plan_changes(&input)
    }

    fn on_d365(changes: &[Change]) -> Vec<&Operation> {
        changes.iter().filter(|c| c.address.target.as_str() == "d365").map(|c| &c.operation).collect()
    }

    #[test]
    fn a_client_id_left_out_is_taken_from_the_live_registration() {
        let desired = state("{d365: {businessUnit: northwind}}");
        let changes = plan(&desired, &live(Some(APP))).unwrap();
        let ops = on_d365(&changes);
        assert!(
            ops.iter().any(|op| matches!(op,
                Operation::CreateServiceAccount { name, application_id: Some(id), .. } if name == APP && id == APP)),
            "{ops:#?}"
        );
        assert!(
            ops.iter().any(|op| matches!(op,
                Operation::Assign { principal: Principal::ServiceAccount(key), .. } if key == APP)),
            "its role is given to the registration's client id: {ops:#?}"
        );
        let create = changes.iter().find(|c| c.address.to_string() == "d365.service-account.sales-sync").unwrap();
        assert_eq!(
            create.notes[0],
            Note::Text("applicationId: the client id of its app registration on `entra`".into())
        );
        let notices = crate::plan::notices(&desired, &live(Some(APP)), &caps());
        assert!(notices.is_empty(), "{notices:?}");
    }

    #[test]
    fn a_declared_client_id_that_is_not_the_registrations_is_refused_naming_both() {
        let desired = state(&format!("{{d365: {{applicationId: {OTHER}}}}}"));
        let errors = plan(&desired, &live(Some(APP))).unwrap_err();
        assert_eq!(
            errors,
            vec![PlanError::ApplicationIdMismatch {
                target: name("d365"),
                account: name("sales-sync"),
                declared: OTHER.into(),
                registered: APP.into(),
                graph: name("entra"),
            }]
        );
        let text = errors[0].to_string();
        assert!(text.contains(OTHER) && text.contains(APP) && text.contains("targets.d365.applicationId"), "{text}");
        // Declared before the registration exists: Entra will give it another client id.
        let errors = plan(&desired, &live(None)).unwrap_err();
        assert!(
            matches!(&errors[..], [PlanError::ApplicationIdBeforeRegistration { declared, .. }] if declared == OTHER),
            "{errors:?}"
        );
        // The same id, declared: planned as before.
        let desired = state(&format!("{{d365: {{applicationId: {}}}}}", APP.to_uppercase()));
        let changes = plan(&desired, &live(Some(APP))).unwrap();
        assert!(
            on_d365(&changes)
                .iter()
                .any(|op| matches!(op, Operation::CreateServiceAccount { name, .. } if name == APP))
        );
    }

    #[test]
    fn a_registration_this_plan_creates_leaves_the_application_user_to_the_next_plan() {
        let desired = state("{d365: {businessUnit: northwind}}");
        let live = live(None);
        let changes = plan(&desired, &live).unwrap();
        assert!(
            changes.iter().any(|c| c.address.target.as_str() == "entra"
                && matches!(&c.operation, Operation::CreateServiceAccount { name, .. } if name == "sales-sync")),
            "the registration is created on Graph"
        );
        assert_eq!(on_d365(&changes), Vec::<&Operation>::new(), "nothing for the account on d365 yet");
        let notices = crate::plan::notices(&desired, &live, &caps());
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(notices[0].code, Notice::APPLICATION_PENDING);
        assert_eq!(notices[0].target.as_str(), "d365");
        assert!(notices[0].message.contains("created by the next plan/apply once the registration has its client id"));
        // Graph not read (`--target d365`): nothing planned, and the notice says what to plan.
        let only_d365: BTreeMap<Name, LiveTarget> = live.into_iter().filter(|(t, _)| t.as_str() == "d365").collect();
        assert_eq!(plan(&desired, &only_d365).unwrap(), Vec::new());
        let notices = crate::plan::notices(&desired, &only_d365, &caps());
        assert_eq!(notices.iter().map(|n| n.code.as_str()).collect::<Vec<_>>(), vec![Notice::APPLICATION_NOT_READ]);
    }

    #[test]
    fn registrations_that_disagree_or_a_client_id_two_accounts_come_to_are_refused() {
        let desired = state("{d365: {businessUnit: northwind}}");
        let mut two = live(Some(APP));
        let mut copy = two[&name("entra")].service_accounts[0].clone();
        copy.application_id = Some(OTHER.into());
        two.get_mut(&name("entra")).unwrap().service_accounts.push(copy);
        let errors = plan(&desired, &two).unwrap_err();
        assert!(matches!(&errors[..], [PlanError::ApplicationIdAmbiguous { .. }]), "{errors:?}");
    }
}
