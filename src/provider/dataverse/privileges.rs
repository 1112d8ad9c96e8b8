//! What Dataverse security roles contain: their privileges with the depth of each
//! (docs/reference/dataverse.md §5).
//!
//! Guarantees:
//! - two paged requests whatever the number of roles: `privileges` (id and name) and the
//!   intersect collection `roleprivilegescollection` (role, privilege, `privilegedepthmask`),
//!   made only when asked (see [`crate::provider::Provider::role_contents`]); two more
//!   (`businessunits` and `roles`, to find the root copies) when the session was read through
//!   the change feed, which does not list the roles;
//! - privileges are held by the root role (the copy in the root business unit): a role's
//!   contents are its root copy's;
//! - a row naming a privilege that was not listed, or a depth mask with no known bit, is an
//!   error of the read, never skipped (a privilege left out could hide a conflict); ids are
//!   GUIDs (checked, as everywhere).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{DataverseProvider, key, wire};
use crate::model::{Depth, RoleContents};
use crate::provider::{ProviderError, ids};

pub const PRIVILEGE_SELECT: &str = "privilegeid,name";
pub const ROLE_PRIVILEGE_SELECT: &str = "roleid,privilegeid,privilegedepthmask";

/// A `roleprivileges` row: (role id, privilege id, depth).
fn role_privilege(v: &Value) -> Result<(String, String, Depth), String> {
    let (role, privilege) = wire::pair(v, "roleid", "privilegeid")?;
    ids::guid(&role).map_err(|e| format!("a roleprivileges row is refused: {e}"))?;
    let mask = v
        .get("privilegedepthmask")
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("the roleprivileges row of role {role} has no `privilegedepthmask`"))?;
    let depth = Depth::from_mask(mask).ok_or_else(|| {
        format!("the roleprivileges row of role {role} has depth mask {mask}, which has no known bit")
    })?;
    Ok((role, privilege, depth))
}

/// The contents of `roles` (by lower-cased name → root role id) from the rows read.
pub(super) fn contents(
    roles: &BTreeMap<String, (String, String)>,
    privileges: &[(String, String)],
    rows: &[(String, String, Depth)],
) -> Result<BTreeMap<String, RoleContents>, String> {
    let names: HashMap<&str, &str> = privileges.iter().map(|(id, n)| (id.as_str(), n.as_str())).collect();
    let wanted: HashMap<&str, &str> = roles.values().map(|(name, id)| (id.as_str(), name.as_str())).collect();
    let mut out: BTreeMap<String, RoleContents> =
        roles.values().map(|(name, _)| (name.clone(), RoleContents::default())).collect();
    for (role, privilege, depth) in rows {
        let Some(name) = wanted.get(role.as_str()) else { continue };
        let privilege_name = names
            .get(privilege.as_str())
            .ok_or_else(|| format!("role {name} holds privilege {privilege}, which `privileges` does not list"))?;
        let slot =
            out.get_mut(*name).expect("every wanted role has contents").privileges.entry(privilege_name.to_string());
        // Two rows for one privilege: the wider depth holds.
        let d = slot.or_insert(*depth);
        *d = (*d).max(*depth);
    }
    Ok(out)
}

impl DataverseProvider {
    /// See [`crate::provider::Provider::role_contents`].
    pub(super) async fn read_role_contents(
        &mut self,
        roles: &[String],
    ) -> Result<BTreeMap<String, RoleContents>, ProviderError> {
        // Lower-cased name → (name as asked, root role id).
        let wanted: BTreeMap<String, (String, String)> = match &self.state {
            Some(state) => {
                let root = state.root_unit.clone().unwrap_or_default();
                roles
                    .iter()
                    .filter_map(|r| {
                        state.roles.get(&(key(r), root.clone())).map(|id| (key(r), (r.clone(), id.clone())))
                    })
                    .collect()
            }
            // Read through the change feed (`watch`): the roles were not listed, so list them.
            None => self.root_roles(roles).await?,
        };
        if wanted.is_empty() {
            return Ok(BTreeMap::new());
        }
        let privileges =
            self.list("privileges", PRIVILEGE_SELECT, "privileges", |v| wire::pair(v, "privilegeid", "name")).await?;
        let rows =
            self.list("roleprivilegescollection", ROLE_PRIVILEGE_SELECT, "role privileges", role_privilege).await?;
        contents(&wanted, &privileges, &rows).map_err(|m| ProviderError::Remote {
            target: self.target.clone(),
            message: format!("role privileges read from the environment are not valid: {m}"),
        })
    }
}

impl DataverseProvider {
    /// The root copies of `roles` (lower-cased name → (name as asked, id)), read from the
    /// environment: the business units (for the root one) and the security roles.
    async fn root_roles(&self, roles: &[String]) -> Result<BTreeMap<String, (String, String)>, ProviderError> {
        let units =
            self.list("businessunits", wire::BU_SELECT, "business units", wire::WireBusinessUnit::parse).await?;
        let all = self.list("roles", wire::ROLE_SELECT, "security roles", wire::WireRole::parse).await?;
        let Some(root) = units.iter().find(|u| u.parent.is_none()) else { return Ok(BTreeMap::new()) };
        let asked: HashMap<String, &String> = roles.iter().map(|r| (key(r), r)).collect();
        Ok(all
            .into_iter()
            .filter(|r| r.business_unit == root.id)
            .filter_map(|r| asked.get(&key(&r.name)).map(|name| (key(&r.name), ((*name).clone(), r.id))))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "00000000-0000-0000-0000-0000000000a1";
    const OTHER: &str = "00000000-0000-0000-0000-0000000000a2";
    const READ: &str = "00000000-0000-0000-0000-0000000000b1";

    #[test]
    fn rows_parse_with_their_depth() {
        let row = |mask: i64| serde_json::json!({"roleid": ROLE.to_uppercase(), "privilegeid": READ, "privilegedepthmask": mask});
        assert_eq!(role_privilege(&row(4)).unwrap(), (ROLE.to_string(), READ.to_string(), Depth::Deep));
        assert!(role_privilege(&row(0)).unwrap_err().contains("no known bit"));
        let no_mask = serde_json::json!({"roleid": ROLE, "privilegeid": READ});
        assert!(role_privilege(&no_mask).unwrap_err().contains("privilegedepthmask"));
        let bad_id = serde_json::json!({"roleid": "../x", "privilegeid": READ, "privilegedepthmask": 1});
        assert!(role_privilege(&bad_id).unwrap_err().contains("refused"));
    }

    #[test]
    fn only_the_roles_asked_for_are_kept_and_unknown_privileges_are_refused() {
        let roles: BTreeMap<String, (String, String)> =
            [("salesperson".to_string(), ("Salesperson".to_string(), ROLE.to_string()))].into();
        let privileges = vec![(READ.to_string(), "prvReadAccount".to_string())];
        let rows = vec![
            (ROLE.to_string(), READ.to_string(), Depth::Local),
            (ROLE.to_string(), READ.to_string(), Depth::Global),
            (OTHER.to_string(), READ.to_string(), Depth::Basic),
        ];
        let got = contents(&roles, &privileges, &rows).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got["Salesperson"].privilege("PRVREADACCOUNT"), Some(("prvReadAccount", Depth::Global)));
        let unknown = vec![(ROLE.to_string(), "00000000-0000-0000-0000-0000000000ff".to_string(), Depth::Basic)];
        assert!(contents(&roles, &privileges, &unknown).unwrap_err().contains("does not list"));
    }
}
