//! Checks of the configuration against what the targets report about themselves, made once
//! they are read and before anything is planned: errors at the YAML line, as validation
//! reports them.
//!
//! - A role bound to a group whose members something other than keyward decides (a dynamic
//!   group's membership rule, a group synchronized from on-premises) cannot be kept: keyward
//!   would have to add or remove members the target refuses. So is a Dataverse group team
//!   (`groupTeam`) whose Entra group is such a group, on any Graph target read.
//! - A service account's declared `applicationId` on a Dataverse or F&O target that is not the
//!   client id of its own app registration read from a Graph target would give its roles to
//!   another application; so would a client id left out when its registrations disagree, or
//!   one another account comes to as well.

use std::collections::BTreeMap;

use super::{Location, Origins};
use crate::diagnostic::Diagnostic;
use crate::load::{Loaded, PathSeg};
use crate::model::{Binding, Capabilities, DesiredState, Kind, LiveTarget, MembersDecided, Name};
use crate::plan::PlanError;

/// A diagnostic for each role binding whose members the target reports something else decides.
pub fn members_decided(
    state: &DesiredState,
    origins: &Origins,
    loaded: &Loaded,
    live: &BTreeMap<Name, LiveTarget>,
    caps: &BTreeMap<Name, Capabilities>,
) -> Vec<Diagnostic> {
    if live.values().all(|t| t.members_decided.is_empty()) {
        return Vec::new();
    }
    let decided = |target: &Name, binding: &Binding| -> Option<&MembersDecided> {
        let name = binding.object_name();
        live.get(target)?
            .members_decided
            .iter()
            .find(|d| d.binding.kind() == binding.kind() && d.binding.object_name().eq_ignore_ascii_case(&name))
    };
    let mut out = Vec::new();
    for (role, r) in &state.roles {
        for (target, binding) in &r.bindings {
            let found: Vec<(&Name, &MembersDecided)> = match binding {
                Binding::GroupTeam(team) => {
                    let group = Binding::Group(team.group.clone());
                    live.keys()
                        .filter(|t| caps.get(*t).is_some_and(|c| c.entra_groups))
                        .filter_map(|t| Some((t, decided(t, &group)?)))
                        .collect()
                }
                _ => decided(target, binding).map(|d| (target, d)).into_iter().collect(),
            };
            for (holder, d) in found {
                let via = match binding {
                    Binding::GroupTeam(_) => format!(" (the group of its Microsoft Entra group team on `{target}`)"),
                    _ => String::new(),
                };
                let message = format!(
                    "target `{holder}`: role `{role}` binds {}{via}, whose members {} decides; keyward cannot add or remove them",
                    d.binding.label(),
                    d.by
                );
                let mut diag = Diagnostic::error("members-decided", message).help(
                    "bind the role to a group whose members are assigned, or remove the binding; a dynamic group's rule already gives access to the people it matches",
                );
                let path: Vec<PathSeg> = vec!["bindings".into(), target.as_str().into()];
                if let Some(Location { file, line, column }) = origins.locate(loaded, Kind::Role, role, &path) {
                    diag = diag.in_file(file).at(line, column).field(format!("bindings.{target}"));
                }
                out.push(diag);
            }
        }
    }
    out
}

/// A diagnostic for each service account whose client id on a target that knows accounts by it
/// conflicts with its app registrations read from Graph, at its `applicationId` (or `targets`).
pub fn application_ids(
    state: &DesiredState,
    origins: &Origins,
    loaded: &Loaded,
    live: &BTreeMap<Name, LiveTarget>,
    caps: &BTreeMap<Name, Capabilities>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for e in crate::plan::application_id_errors(state, live, caps) {
        let (account, target, field, code, help): (&Name, &Name, Option<&str>, &str, &str) = match &e {
            PlanError::ApplicationIdMismatch { target, account, .. } => (
                account,
                target,
                Some("applicationId"),
                "application-id-mismatch",
                "write the client id of the account's own app registration, or leave applicationId out to take it from the registration",
            ),
            PlanError::ApplicationIdBeforeRegistration { target, account, .. } => (
                account,
                target,
                Some("applicationId"),
                "application-id-mismatch",
                "leave applicationId out: the application user takes the client id Entra gives the registration, in the next plan",
            ),
            PlanError::ApplicationIdAmbiguous { target, account, .. } => (
                account,
                target,
                None,
                "application-id-ambiguous",
                "set applicationId to the client id of the registration the application user stands for",
            ),
            PlanError::ApplicationIdTaken { target, account, .. } => (
                account,
                target,
                None,
                "duplicate-application-id",
                "a target has one application user per application; give each account its own app registration",
            ),
            _ => continue,
        };
        let mut diag = Diagnostic::error(code, e.to_string()).help(help);
        let mut path: Vec<PathSeg> = vec!["targets".into(), target.as_str().into()];
        path.extend(field.map(PathSeg::from));
        if let Some(Location { file, line, column }) = origins.locate(loaded, Kind::ServiceAccount, account, &path) {
            let shown = field.map_or(format!("targets.{target}"), |f| format!("targets.{target}.{f}"));
            diag = diag.in_file(file).at(line, column).field(shown);
        }
        out.push(diag);
    }
    out
}
