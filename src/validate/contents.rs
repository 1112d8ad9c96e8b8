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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    const DIRECTORY_ONLY: &str = "version: 1\ntargets:\n  directory: {provider: file, path: dir.json}\n";
    const WITH_FNO: &str = "version: 1\ntargets:\n  directory: {provider: file, path: dir.json}\n  finance: {provider: fno, url: https://x.operations.dynamics.com, tenant: 456e4037-8afc-4f71-ae73-f9e51f634295, clientId: 2c15416f-b9fe-4f04-8b2b-532d023e2193, clientSecret: '${env:S}'}\n";
    const ROLES: &str = "kind: Role\nname: clerk\nduties: [vendor-payment]\nbindings: {directory: {group: clerks}}\n";

    /// (level, code, field) of each diagnostic.
    fn diagnostics(settings: &str, extra: &str) -> Vec<(String, String, String)> {
        let files = vec![
            (PathBuf::from("keyward.yaml"), settings.as_bytes().to_vec()),
            (PathBuf::from("roles.yaml"), ROLES.as_bytes().to_vec()),
            (PathBuf::from("extra.yaml"), extra.as_bytes().to_vec()),
        ];
        let loaded = crate::load::load_files(Path::new("/c"), files).unwrap();
        crate::validate::validate(&loaded)
            .diagnostics
            .iter()
            // The fno target's secret reference is not the subject here.
            .filter(|d| d.code != "secrets-undeclared")
            .map(|d| (format!("{:?}", d.level), d.code.to_string(), d.field.clone().unwrap_or_default()))
            .collect()
    }

    fn one(level: &str, code: &str, field: &str) -> Vec<(String, String, String)> {
        vec![(level.to_string(), code.to_string(), field.to_string())]
    }

    #[test]
    fn privileges_need_a_target_that_has_role_contents() {
        let rule = "kind: SodRule\nname: r\nfirst: {privileges: [prvX]}\nsecond: {roles: [clerk]}\n";
        assert_eq!(diagnostics(DIRECTORY_ONLY, rule), one("Error", "privileges-without-target", "first.privileges"));
        assert_eq!(diagnostics(WITH_FNO, rule), vec![]);
        let blank = "kind: SodRule\nname: r\nfirst: {privileges: [' ']}\nsecond: {roles: [clerk]}\n";
        assert_eq!(diagnostics(WITH_FNO, blank), one("Error", "empty-privilege", "first.privileges[0]"));
        let dc = "kind: DataClassification\nname: pay\nlevel: public\nassets: {directory: {privileges: [prvX]}}\n";
        assert_eq!(diagnostics(WITH_FNO, dc), one("Error", "privileges-on-target", "assets.directory.privileges"));
    }

    #[test]
    fn a_duty_no_role_declares_is_an_error_unless_it_may_be_a_live_fno_duty() {
        let rule = "kind: SodRule\nname: r\nfirst: {duties: [LedgerJournalPost]}\nsecond: {roles: [clerk]}\n";
        assert_eq!(diagnostics(DIRECTORY_ONLY, rule), one("Error", "unknown-duty", "first.duties[0]"));
        assert_eq!(diagnostics(WITH_FNO, rule), vec![]);
        // One that looks like a declared duty misspelt is a warning.
        let typo = "kind: SodRule\nname: r\nfirst: {duties: [vendor-paymnt]}\nsecond: {roles: [clerk]}\n";
        assert_eq!(diagnostics(WITH_FNO, typo), one("Warning", "unknown-duty", "first.duties[0]"));
    }
}
