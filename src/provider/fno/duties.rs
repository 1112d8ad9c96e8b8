//! What Finance & Operations security roles contain: their duties, and the privileges they
//! grant directly or through a duty (docs/reference/fno.md §1).
//!
//! Guarantees:
//! - two paged requests whatever the number of roles, made only when asked (see
//!   [`crate::provider::Provider::role_contents`]): `SecurityRoleDuties` (role → duty) and
//!   `SecurityPrivileges` (role → privilege, granted directly or through a duty);
//! - duties and privileges are named by identifier (the AOT name), compared without regard to
//!   case; F&O privileges have no depth, so each is `granted`;
//! - a row without its role or duty / privilege identifier is an error of the read, never
//!   skipped (a privilege left out could hide a conflict).
//!
//! Assumed ([UNVERIFIED], docs/reference/fno.md §1): `SecurityPrivileges` lists every privilege a
//! role grants, directly or through a duty, so `SecurityDuties` is not needed.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{FnoProvider, key, text};
use crate::model::{Depth, RoleContents};
use crate::provider::ProviderError;

pub const ROLE_DUTY_SELECT: &str = "SecurityRoleIdentifier,SecurityDutyIdentifier";
pub const ROLE_PRIVILEGE_SELECT: &str = "SecurityRoleIdentifier,SecurityPrivilegeIdentifier";

/// A row of `entity` as (role identifier, other identifier).
fn pair(entity: &str, v: &Value, other: &str) -> Result<(String, String), String> {
    match (text(v, "SecurityRoleIdentifier"), text(v, other)) {
        (Some(r), Some(o)) => Ok((r, o)),
        (None, _) => Err(format!("a {entity} row has no `SecurityRoleIdentifier`")),
        (Some(r), None) => Err(format!("the {entity} row of role {r} has no `{other}`")),
    }
}

/// The contents of `roles` (lower-cased identifier → role name) from the rows read.
pub(super) fn contents(
    roles: &HashMap<String, String>,
    duties: &[(String, String)],
    privileges: &[(String, String)],
) -> BTreeMap<String, RoleContents> {
    let mut out: BTreeMap<String, RoleContents> =
        roles.values().map(|name| (name.clone(), RoleContents::default())).collect();
    for (role, duty) in duties {
        if let Some(name) = roles.get(&key(role)) {
            out.get_mut(name).expect("every wanted role has contents").duties.insert(duty.clone());
        }
    }
    for (role, privilege) in privileges {
        if let Some(name) = roles.get(&key(role)) {
            out.get_mut(name)
                .expect("every wanted role has contents")
                .privileges
                .insert(privilege.clone(), Depth::Granted);
        }
    }
    out
}

impl FnoProvider {
    /// See [`crate::provider::Provider::role_contents`].
    pub(super) async fn read_role_contents(
        &mut self,
        roles: &[String],
    ) -> Result<BTreeMap<String, RoleContents>, ProviderError> {
        let Some(state) = &self.state else {
            return Err(ProviderError::Remote {
                target: self.target.clone(),
                message: "role contents asked before the read".into(),
            });
        };
        let wanted: HashMap<String, String> =
            roles.iter().filter_map(|r| state.roles.get(&key(r)).map(|id| (key(id), r.clone()))).collect();
        if wanted.is_empty() {
            return Ok(BTreeMap::new());
        }
        let invalid = |m: String| ProviderError::Remote {
            target: self.target.clone(),
            message: format!("role contents read from the environment are not valid: {m}"),
        };
        let duties = self
            .list("SecurityRoleDuties", ROLE_DUTY_SELECT)
            .await?
            .iter()
            .map(|v| pair("SecurityRoleDuties", v, "SecurityDutyIdentifier"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let privileges = self
            .list("SecurityPrivileges", ROLE_PRIVILEGE_SELECT)
            .await?
            .iter()
            .map(|v| pair("SecurityPrivileges", v, "SecurityPrivilegeIdentifier"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        Ok(contents(&wanted, &duties, &privileges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duties_and_privileges_go_to_the_roles_asked_for() {
        let roles: HashMap<String, String> = [("apclerk".to_string(), "Accounts payable clerk".to_string())].into();
        let duties = vec![("APCLERK".to_string(), "VendInvoiceEnter".to_string()), ("OTHER".into(), "X".into())];
        let privileges = vec![("ApClerk".to_string(), "VendInvoicePost".to_string())];
        let got = contents(&roles, &duties, &privileges);
        assert_eq!(got.len(), 1);
        let c = &got["Accounts payable clerk"];
        assert_eq!(c.duty("vendinvoiceenter"), Some("VendInvoiceEnter"));
        assert_eq!(c.privilege("VENDINVOICEPOST"), Some(("VendInvoicePost", Depth::Granted)));
    }

    #[test]
    fn rows_without_their_keys_are_refused() {
        let e = pair(
            "SecurityPrivileges",
            &serde_json::json!({"SecurityRoleIdentifier": "R"}),
            "SecurityPrivilegeIdentifier",
        );
        assert_eq!(e.unwrap_err(), "the SecurityPrivileges row of role R has no `SecurityPrivilegeIdentifier`");
        let e = pair("SecurityRoleDuties", &serde_json::json!({}), "SecurityDutyIdentifier");
        assert_eq!(e.unwrap_err(), "a SecurityRoleDuties row has no `SecurityRoleIdentifier`");
    }
}
