//! Checks of what the configuration says about role contents: `contents: pinned` on a Role,
//! privileges on an SodRule side, privileges in a DataClassification's `assets`. Role contents
//! exist only on `dataverse` and `fno` targets, and only on `securityRole` bindings.

use super::{Origins, Sink};
use crate::diagnostic::Diagnostic;
use crate::load::PathSeg;
use crate::model::{Binding, ContentsMode, DesiredState, Kind, Name, ProviderKind};

pub(super) fn check(sink: &mut Sink, origins: &Origins, state: &DesiredState) {
    let report = |sink: &mut Sink, kind: Kind, name: &Name, path: &[PathSeg], diag: Diagnostic| {
        if let Some(origin) = origins.get(kind, name) {
            let doc = &sink.loaded.documents[origin.doc];
            sink.at(doc, path, diag);
        }
    };
    let has_contents = |t: &Name| {
        state
            .settings
            .targets
            .get(t)
            .is_some_and(|t| matches!(t.provider(), ProviderKind::Dataverse | ProviderKind::Fno))
    };
    for (name, role) in &state.roles {
        if role.contents != Some(ContentsMode::Pinned) {
            continue;
        }
        let pinnable = role.bindings.iter().any(|(t, b)| matches!(b, Binding::SecurityRole(_)) && has_contents(t));
        if !pinnable {
            report(
                sink,
                Kind::Role,
                name,
                &["contents".into()],
                Diagnostic::error(
                    "nothing-to-pin",
                    format!("role `{name}` pins its contents, but it has no `securityRole` binding on a `dataverse` or `fno` target"),
                )
                .help("role contents (privileges, duties) are read from Dataverse and Finance & Operations security roles; remove `contents`, or bind the role to a security role there"),
            );
        }
    }
    let any_contents = state.settings.targets.keys().any(has_contents);
    for (name, rule) in &state.sod_rules {
        for (side_name, side) in [("first", &rule.first), ("second", &rule.second)] {
            if !side.privileges.is_empty() && !any_contents {
                report(
                    sink,
                    Kind::SodRule,
                    name,
                    &[side_name.into(), "privileges".into()],
                    Diagnostic::error(
                        "privileges-without-target",
                        format!("SodRule `{name}` names privileges, but no target is `dataverse` or `fno`"),
                    )
                    .help("privileges are read from the security roles of Dataverse and Finance & Operations targets; name roles or duties instead"),
                );
            }
            for (i, p) in side.privileges.iter().enumerate() {
                if p.trim().is_empty() {
                    report(
                        sink,
                        Kind::SodRule,
                        name,
                        &[side_name.into(), "privileges".into(), i.into()],
                        Diagnostic::error("empty-privilege", "a privilege name is empty"),
                    );
                }
            }
        }
    }
    for (name, dc) in &state.data_classifications {
        for t in dc.assets.iter().filter(|(_, a)| !a.privileges.is_empty()).map(|(t, _)| t) {
            if state.settings.targets.contains_key(t) && !has_contents(t) {
                report(
                    sink,
                    Kind::DataClassification,
                    name,
                    &["assets".into(), t.as_str().into(), "privileges".into()],
                    Diagnostic::error(
                        "privileges-on-target",
                        format!("DataClassification `{name}` lists privileges on `{t}`, which is not a `dataverse` or `fno` target"),
                    )
                    .help("privileges are read from Dataverse and Finance & Operations security roles; list tables and columns for other targets"),
                );
            }
        }
    }
}
