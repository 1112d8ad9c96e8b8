//! A service account's settings per target (`targets: {T: {applicationId, businessUnit}}`):
//! the target exists, knows service accounts by their application (Dataverse, Finance &
//! Operations), and the client id is a GUID no other service account claims there. The client
//! id may be left out only when the account has a Microsoft Graph target: keyward keeps its app
//! registration there, and the plan takes the registration's client id.

use std::collections::BTreeMap;

use super::Checker;
use crate::diagnostic::Diagnostic;
use crate::load::PathSeg;
use crate::model::{Kind, Name, RoleGrant, ServiceAccount, ServiceAccountTargetSettings, capabilities};

pub(super) fn check(
    c: &mut Checker,
    name: &Name,
    sa: &ServiceAccount,
    settings: &BTreeMap<Name, ServiceAccountTargetSettings>,
) {
    let roles: Vec<&Name> = sa.roles.iter().map(RoleGrant::role).collect();
    let registered = !c.state.registration_targets(sa, &roles).is_empty();
    for (t, s) in settings {
        let path = |field: &str| -> Vec<PathSeg> { vec!["targets".into(), t.as_str().into(), field.into()] };
        if !c.target_exists(Kind::ServiceAccount, name, &["targets".into(), t.as_str().into()], t) {
            continue;
        }
        let provider = c.state.settings.targets[t].provider();
        let caps = capabilities(provider);
        match &s.application_id {
            // Taken from the account's app registration on its Graph target, at plan time.
            None if caps.application_users && registered => {}
            None if caps.application_users => c.report(
                Kind::ServiceAccount,
                name,
                &["targets".into(), t.as_str().into()],
                Diagnostic::error(
                    "missing-application-id",
                    format!("target `{t}` (provider `{provider}`) knows service accounts by their Entra application, and no applicationId is given"),
                )
                .help("set applicationId to the client id (appId) of the account's app registration, or put the account on a Microsoft Graph target (one with `users: all`, or where one of its roles is bound) so keyward keeps its app registration there and takes the client id from it"),
            ),
            None => {}
            Some(_) if !caps.application_users => c.report(
                Kind::ServiceAccount,
                name,
                &path("applicationId"),
                Diagnostic::error(
                    "no-application-users",
                    format!("target `{t}` (provider `{provider}`) does not know service accounts by an applicationId"),
                )
                .help("applicationId applies to dataverse and fno targets"),
            ),
            Some(id) => {
                if !is_guid(id) {
                    c.report(
                        Kind::ServiceAccount,
                        name,
                        &path("applicationId"),
                        Diagnostic::error(
                            "invalid-application-id",
                            format!("applicationId `{id}` is not a GUID, as Entra client ids are"),
                        )
                            .help("copy the Application (client) ID of the app registration, such as 0f8fad5b-d9cb-469f-a165-70867728950e"),
                    );
                }
                let first = c
                    .state
                    .service_accounts
                    .iter()
                    .find(|(_, other)| other.application_id(t) == Some(id.as_str()))
                    .map(|(n, _)| n);
                if let Some(first) = first.filter(|f| *f != name) {
                    c.report(
                        Kind::ServiceAccount,
                        name,
                        &path("applicationId"),
                        Diagnostic::error(
                            "duplicate-application-id",
                            format!("service account `{first}` has applicationId `{id}` on target `{t}` too"),
                        )
                        .help("a target has one application user per application; give each account its own app registration"),
                    );
                }
            }
        }
        if s.business_unit.is_some() && !caps.business_units {
            c.report(
                Kind::ServiceAccount,
                name,
                &path("businessUnit"),
                Diagnostic::error(
                    "no-business-units",
                    format!("target `{t}` (provider `{provider}`) has no business units"),
                )
                .help("businessUnit applies to dataverse targets"),
            );
        }
    }
}

/// Whether `s` is a GUID: 8-4-4-4-12 hexadecimal digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_ids_are_guids() {
        assert!(super::is_guid("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(super::is_guid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
        for bad in [
            "",
            "not-a-guid",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5bd9cb469fa16570867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
            "0f8fad5b-d9cb-469f-a165-70867728950e-",
        ] {
            assert!(!super::is_guid(bad), "{bad}");
        }
    }
}
