//! Dataverse rows as the Web API returns them (reference sheet §3.2), parsed at the edge.

use serde_json::Value;

use crate::provider::ids;

/// The `$select` of each collection keyward reads.
pub const USER_SELECT: &str = "systemuserid,domainname,internalemailaddress,firstname,lastname,jobtitle,isdisabled,azureactivedirectoryobjectid,_businessunitid_value,applicationid,accessmode,islicensed";
pub const ROLE_SELECT: &str = "roleid,name,_businessunitid_value";
pub const BU_SELECT: &str = "businessunitid,name,_parentbusinessunitid_value";
pub const USER_ROLE_SELECT: &str = "systemuserid,roleid";
pub const PROFILE_SELECT: &str = "fieldsecurityprofileid,name";
pub const PERMISSION_SELECT: &str =
    "fieldpermissionid,entityname,attributelogicalname,canread,_fieldsecurityprofileid_value";
pub const USER_PROFILE_SELECT: &str = "systemuserid,fieldsecurityprofileid";
pub const TEAM_SELECT: &str =
    "teamid,name,teamtype,isdefault,_businessunitid_value,azureactivedirectoryobjectid,membershiptype";
pub const TEAM_MEMBER_SELECT: &str = "teamid,systemuserid";
pub const TEAM_ROLE_SELECT: &str = "teamid,roleid";

/// `team.teamtype` of an owner team (1 is an access team, 2 and 3 Microsoft Entra group teams).
pub const OWNER_TEAM: i64 = 0;

/// `fieldpermission.canread` and friends: 4 Allowed, 0 Not Allowed.
pub const ALLOWED: i64 = 4;

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| s.to_lowercase_if_guid())
}

trait GuidCase {
    fn to_lowercase_if_guid(&self) -> String;
}

impl GuidCase for str {
    /// GUIDs compare without regard to case; other strings are kept as they are.
    fn to_lowercase_if_guid(&self) -> String {
        let is_guid = self.len() == 36 && self.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if is_guid { self.to_ascii_lowercase() } else { self.to_string() }
    }
}

fn need(v: &Value, k: &str, what: &str) -> Result<String, String> {
    s(v, k).ok_or_else(|| format!("a {what} row has no `{k}`"))
}

/// A primary key: Dataverse keys are GUIDs, and they go into request paths (`systemusers({id})`).
fn need_guid(v: &Value, k: &str, what: &str) -> Result<String, String> {
    let id = need(v, k, what)?;
    ids::guid(&id).map_err(|e| format!("a {what} row is refused: {e}"))?;
    Ok(id)
}

/// Refuses rows of `what` that share a key: one of them would be hidden.
pub fn unique_keys<'a>(what: &str, keys: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    match ids::first_duplicate(keys) {
        Some(id) => Err(format!("two {what} rows have the key `{id}`; one of them would be hidden")),
        None => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WireUser {
    pub id: String,
    pub domain_name: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub job_title: Option<String>,
    pub disabled: bool,
    pub business_unit: Option<String>,
    /// Application users (service principals) carry an application id.
    pub application: bool,
    /// The application's client id, lower-cased, for an application user.
    pub application_id: Option<String>,
    /// `accessmode` (0 Read-Write, 4 Non-interactive, …) and `islicensed`, where read.
    pub access_mode: Option<i64>,
    pub licensed: Option<bool>,
    pub etag: Option<String>,
}

impl WireUser {
    pub fn parse(v: &Value) -> Result<Self, String> {
        Ok(WireUser {
            id: need_guid(v, "systemuserid", "systemuser")?,
            domain_name: s(v, "domainname"),
            email: s(v, "internalemailaddress"),
            first_name: s(v, "firstname"),
            last_name: s(v, "lastname"),
            job_title: s(v, "jobtitle"),
            disabled: v.get("isdisabled").and_then(Value::as_bool).unwrap_or(false),
            business_unit: s(v, "_businessunitid_value"),
            application: s(v, "applicationid").is_some(),
            application_id: s(v, "applicationid").map(|a| a.to_ascii_lowercase()),
            access_mode: v.get("accessmode").and_then(Value::as_i64),
            licensed: v.get("islicensed").and_then(Value::as_bool),
            etag: s(v, "@odata.etag"),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WireRole {
    pub id: String,
    pub name: String,
    pub business_unit: String,
}

impl WireRole {
    pub fn parse(v: &Value) -> Result<Self, String> {
        Ok(WireRole {
            id: need_guid(v, "roleid", "role")?,
            name: need(v, "name", "role")?,
            business_unit: need(v, "_businessunitid_value", "role")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WireBusinessUnit {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
}

impl WireBusinessUnit {
    pub fn parse(v: &Value) -> Result<Self, String> {
        Ok(WireBusinessUnit {
            id: need(v, "businessunitid", "businessunit")?,
            name: s(v, "name").unwrap_or_default(),
            parent: s(v, "_parentbusinessunitid_value"),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WireTeam {
    pub id: String,
    pub name: String,
    pub team_type: i64,
    /// The default team of a business unit: its members are the unit's users.
    pub default: bool,
    /// The team's business unit (id).
    pub business_unit: Option<String>,
    /// A Microsoft Entra group team's group (`azureactivedirectoryobjectid`), checked as a GUID.
    pub group: Option<String>,
}

impl WireTeam {
    pub fn parse(v: &Value) -> Result<Self, String> {
        Ok(WireTeam {
            id: need_guid(v, "teamid", "team")?,
            name: need(v, "name", "team")?,
            team_type: v.get("teamtype").and_then(Value::as_i64).ok_or("a team row has no `teamtype`")?,
            default: v.get("isdefault").and_then(Value::as_bool).unwrap_or(false),
            business_unit: s(v, "_businessunitid_value"),
            group: match s(v, "azureactivedirectoryobjectid") {
                Some(g) => Some(ids::guid(&g).map(|_| g).map_err(|e| format!("a team row is refused: {e}"))?),
                None => None,
            },
        })
    }

    /// Whether keyward keeps this team's members: an owner team that is not a unit's default.
    pub fn managed(&self) -> bool {
        self.team_type == OWNER_TEAM && !self.default
    }

    /// Whether this is a Microsoft Entra group team (security group 2, Office group 3) of a
    /// group, in a business unit.
    pub fn entra_group_team(&self) -> bool {
        matches!(self.team_type, 2 | 3) && self.group.is_some() && self.business_unit.is_some()
    }
}

/// A row of an intersect (N:N) collection: two ids.
pub fn pair(v: &Value, a: &str, b: &str) -> Result<(String, String), String> {
    Ok((need(v, a, "relationship")?, need(v, b, "relationship")?))
}

#[derive(Debug, Clone, PartialEq)]
pub struct WirePermission {
    pub id: String,
    pub profile: String,
    /// `table.column`, lower-cased.
    pub column: String,
    pub can_read: bool,
}

impl WirePermission {
    pub fn parse(v: &Value) -> Result<Self, String> {
        let table = need(v, "entityname", "fieldpermission")?;
        let column = need(v, "attributelogicalname", "fieldpermission")?;
        Ok(WirePermission {
            id: need(v, "fieldpermissionid", "fieldpermission")?,
            profile: need(v, "_fieldsecurityprofileid_value", "fieldpermission")?,
            column: format!("{table}.{column}").to_lowercase(),
            can_read: v.get("canread").and_then(Value::as_i64) == Some(ALLOWED),
        })
    }
}

/// The id inside an `OData-EntityId` such as `https://…/systemusers(00000000-…)`.
pub fn id_from_entity_url(url: &str) -> Option<String> {
    let open = url.rfind('(')?;
    let inner = url[open + 1..].strip_suffix(')')?;
    Some(inner.trim_matches('\'').to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_and_guids_compare_lower_case() {
        let u = WireUser::parse(&serde_json::json!({
            "@odata.etag": "W/\"12\"", "systemuserid": "AAAAAAAA-0000-0000-0000-000000000001",
            "domainname": "Alice@Contoso.com", "isdisabled": true, "applicationid": null
        }))
        .unwrap();
        assert_eq!(u.id, "aaaaaaaa-0000-0000-0000-000000000001");
        assert_eq!(u.domain_name.as_deref(), Some("Alice@Contoso.com"));
        assert!(u.disabled && !u.application);
        assert_eq!(u.etag.as_deref(), Some("W/\"12\""));
        let role = serde_json::json!({"roleid": "00000000-0000-0000-0000-0000000000aa"});
        assert!(WireRole::parse(&role).unwrap_err().contains("`name`"));
        assert_eq!(id_from_entity_url("https://x/api/data/v9.2/systemusers(ABC)").as_deref(), Some("abc"));
    }

    #[test]
    fn rows_sharing_a_key_are_refused() {
        let a = "aaaaaaaa-0000-0000-0000-000000000001";
        assert_eq!(unique_keys("role", [a, "aaaaaaaa-0000-0000-0000-000000000002"]), Ok(()));
        assert_eq!(
            unique_keys("systemuser", [a, &a.to_uppercase()]),
            Err("two systemuser rows have the key `AAAAAAAA-0000-0000-0000-000000000001`; one of them would be hidden"
                .into())
        );
    }

    /// Only owner teams that are not a business unit's default team are kept as bindings.
    #[test]
    fn only_owner_teams_are_managed() {
        let team = |kind: i64, default: bool| {
            WireTeam::parse(&serde_json::json!({
                "teamid": "AAAAAAAA-0000-0000-0000-0000000000B1", "name": "Key Accounts",
                "teamtype": kind, "isdefault": default
            }))
            .unwrap()
        };
        assert_eq!(team(0, false).id, "aaaaaaaa-0000-0000-0000-0000000000b1");
        assert!(team(0, false).managed());
        assert!(!team(0, true).managed(), "a default team's members are its unit's users");
        for kind in [1, 2, 3] {
            assert!(!team(kind, false).managed(), "teamtype {kind}");
        }
        let e = WireTeam::parse(&serde_json::json!({"teamid": "aaaaaaaa-0000-0000-0000-0000000000b1", "name": "x"}));
        assert_eq!(e.unwrap_err(), "a team row has no `teamtype`");
    }

    /// Keys go into request paths: one that is not a GUID is refused when it is read.
    #[test]
    fn keys_that_are_not_guids_are_refused() {
        for id in ["..", "a/b", "", "00000000-0000-0000-0000-00000000000g"] {
            let e = WireUser::parse(&serde_json::json!({"systemuserid": id})).unwrap_err();
            assert!(e.contains("refused") || e.contains("has no"), "{id:?}: {e}");
        }
        let e = WireRole::parse(&serde_json::json!({"roleid": "..", "name": "x"})).unwrap_err();
        assert_eq!(e, "a role row is refused: its id `..` is not a GUID, as the API's ids are");
    }
}
