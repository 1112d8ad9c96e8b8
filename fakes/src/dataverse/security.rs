//! The security model: business units and the copies of roles they hold, users (people and
//! application users) and their business unit, owner and Microsoft Entra group teams, the N:N
//! relationships between them, and role privileges. Facts and sources in
//! `docs/reference/dataverse.md`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::dispatch::not_found;
use super::{Dataverse, Inner, Row, col};
use crate::odata::{Answer, error};

/// A many-to-many relationship the API writes through `…/$ref`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rel {
    /// `systemusers(id)/systemuserroles_association`.
    UserRoles,
    /// `fieldsecurityprofiles(id)/systemuserprofiles_association` (the user is referenced).
    UserProfiles,
    /// `teams(id)/teamroles_association`.
    TeamRoles,
    /// `teams(id)/teammembership_association` (the user is referenced).
    TeamMembers,
}

impl Rel {
    pub(super) fn of(set: &str, nav: &str) -> Option<Rel> {
        Some(match (set, nav) {
            ("systemusers", "systemuserroles_association") => Rel::UserRoles,
            ("fieldsecurityprofiles", "systemuserprofiles_association") => Rel::UserProfiles,
            ("teams", "teamroles_association") => Rel::TeamRoles,
            ("teams", "teammembership_association") => Rel::TeamMembers,
            _ => return None,
        })
    }
    /// (set of the entity in the path, set of the referenced one).
    fn sets(self) -> (&'static str, &'static str) {
        match self {
            Rel::UserRoles => ("systemusers", "roles"),
            Rel::UserProfiles => ("fieldsecurityprofiles", "systemusers"),
            Rel::TeamRoles => ("teams", "roles"),
            Rel::TeamMembers => ("teams", "systemusers"),
        }
    }
}

/// The intersect collections that can be listed, with their two key columns.
pub(super) fn intersect(set: &str) -> Option<(&'static str, &'static str)> {
    Some(match set {
        "systemuserrolescollection" => ("systemuserid", "roleid"),
        "systemuserprofilescollection" => ("systemuserid", "fieldsecurityprofileid"),
        "teamrolescollection" => ("teamid", "roleid"),
        "teammembershipcollection" => ("teamid", "systemuserid"),
        "roleprivilegescollection" => ("roleid", "privilegeid"),
        _ => return None,
    })
}

/// Privilege depths as `privilegedepthmask` bits and `PrivilegeDepth` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The user's own records (mask 1).
    Basic,
    /// The business unit (mask 2).
    Local,
    /// The business unit and its children (mask 4).
    Deep,
    /// The organization (mask 8).
    Global,
}

impl Depth {
    pub(super) fn mask(self) -> i64 {
        match self {
            Depth::Basic => 1,
            Depth::Local => 2,
            Depth::Deep => 4,
            Depth::Global => 8,
        }
    }
    fn name(mask: i64) -> &'static str {
        match mask {
            1 => "Basic",
            2 => "Local",
            4 => "Deep",
            _ => "Global",
        }
    }
}

fn bad(code: &str, message: &str) -> Answer {
    error(StatusCode::BAD_REQUEST, code, message)
}

impl Inner {
    fn row(&self, set: &str, id: &str) -> Option<&Row> {
        self.sets.get(set)?.get(id)
    }

    fn pairs(&mut self, rel: Rel) -> &mut Vec<(String, String)> {
        match rel {
            Rel::UserRoles => &mut self.user_roles,
            Rel::UserProfiles => &mut self.user_profiles,
            Rel::TeamRoles => &mut self.team_roles,
            Rel::TeamMembers => &mut self.team_members,
        }
    }

    /// Writes an audit row (reference sheet §3.5: action 53/54 role to or from a team, 55/56 to
    /// or from a user).
    pub(super) fn audit(&mut self, action: i64, object: &str, object_type: &str) {
        let mut a = Row::new();
        a.insert("action".into(), json!(action));
        a.insert("operation".into(), json!(2));
        a.insert("objectid".into(), json!(object));
        a.insert("objecttypecode".into(), json!(object_type));
        a.insert("_objectid_value".into(), json!(object));
        if let Some(actor) = &self.audit_actor {
            a.insert("_userid_value".into(), json!(actor));
        }
        a.insert("createdon".into(), json!(format!("2026-01-01T00:00:{:02}Z", self.next_id % 60)));
        Dataverse::insert(self, "audits", a);
    }

    /// Associates or disassociates a pair. A user or team holds only the copy of a role in its
    /// own business unit ([UNVERIFIED] for teams); a Microsoft Entra group team's members come
    /// from its group and cannot be written.
    pub(super) fn relate(&mut self, rel: Rel, id: &str, other: &str, add: bool) -> Answer {
        let (set, other_set) = rel.sets();
        if self.row(set, id).is_none() {
            return not_found(&set[..set.len() - 1], id);
        }
        if self.row(other_set, other).is_none() {
            return not_found(other_set, other);
        }
        let pair = (id.to_string(), other.to_string());
        let pair = if rel == Rel::UserProfiles { (pair.1, pair.0) } else { pair };
        if rel == Rel::TeamMembers && col(&self.sets["teams"][id], "teamtype").as_i64().is_some_and(|t| t >= 2) {
            return bad(
                "0x80040203",
                "The members of a Microsoft Entra group team come from its group; change the group.",
            );
        }
        if rel == Rel::TeamMembers && col(&self.sets["teams"][id], "isdefault") == true {
            return bad("0x80040203", "The members of a business unit's default team are its users.");
        }
        if add {
            if self.pairs(rel).contains(&pair) {
                return bad("0x80040237", "Cannot insert duplicate key.");
            }
            if matches!(rel, Rel::UserRoles | Rel::TeamRoles) {
                let holder_bu = col(&self.sets[set][id], "_businessunitid_value");
                if holder_bu.is_null() || holder_bu != col(&self.sets["roles"][other], "_businessunitid_value") {
                    let holder = if rel == Rel::UserRoles { "user" } else { "team" };
                    return bad(
                        "0x80040217",
                        &format!("The role and the {holder} belong to different business units."),
                    );
                }
            }
            self.pairs(rel).push(pair);
        } else {
            self.pairs(rel).retain(|p| *p != pair);
        }
        match rel {
            Rel::UserRoles => self.audit(if add { 55 } else { 56 }, id, "systemuser"),
            Rel::TeamRoles => self.audit(if add { 53 } else { 54 }, id, "team"),
            _ => {}
        }
        Answer::no_content()
    }

    /// The rows of an intersect collection.
    pub(super) fn intersect_rows(&self, set: &str) -> Vec<Value> {
        let (a, b) = intersect(set).expect("an intersect set");
        let pairs = match set {
            "systemuserrolescollection" => &self.user_roles,
            "systemuserprofilescollection" => &self.user_profiles,
            "teamrolescollection" => &self.team_roles,
            "teammembershipcollection" => &self.team_members,
            _ => return self.role_privileges.iter().map(|r| Value::Object(r.clone())).collect(),
        };
        pairs.iter().map(|(x, y)| json!({a: x, b: y})).collect()
    }

    /// `GET set(id)/nav`: the records on the other side.
    pub(super) fn related(&self, set: &str, id: &str, nav: &str) -> Answer {
        if self.row(set, id).is_none() {
            return not_found(set, id);
        }
        let (other_set, ids): (&str, Vec<String>) = match (set, nav) {
            ("systemusers", "systemuserroles_association") => {
                ("roles", self.user_roles.iter().filter(|p| p.0 == id).map(|p| p.1.clone()).collect())
            }
            ("systemusers", "teammembership_association") => {
                ("teams", self.team_members.iter().filter(|p| p.1 == id).map(|p| p.0.clone()).collect())
            }
            ("teams", "teamroles_association") => {
                ("roles", self.team_roles.iter().filter(|p| p.0 == id).map(|p| p.1.clone()).collect())
            }
            ("teams", "teammembership_association") => {
                ("systemusers", self.team_members.iter().filter(|p| p.0 == id).map(|p| p.1.clone()).collect())
            }
            ("roles", "roleprivileges_association") => {
                let root = self.root_role(id);
                let ids = self.role_privileges.iter().filter(|r| r["roleid"] == root.as_str());
                ("privileges", ids.filter_map(|r| r["privilegeid"].as_str().map(str::to_string)).collect())
            }
            _ => return error(StatusCode::NOT_FOUND, "0x8006088a", &format!("No relationship {nav} on {set}.")),
        };
        let rows: Vec<Value> =
            ids.iter().filter_map(|i| self.row(other_set, i)).map(|r| Value::Object(r.clone())).collect();
        Answer::json(json!({"value": rows}))
    }

    /// The root role a role is a copy of (itself for a root role).
    fn root_role(&self, id: &str) -> String {
        self.row("roles", id)
            .and_then(|r| r.get("_parentrootroleid_value"))
            .and_then(Value::as_str)
            .unwrap_or(id)
            .to_string()
    }

    /// `RetrieveRolePrivilegesRole(RoleId=…)`: the privileges of a role with their depth. A copy
    /// in a business unit answers its root role's privileges ([UNVERIFIED]).
    pub(super) fn retrieve_role_privileges(&self, args: Option<&str>) -> Answer {
        let Some(id) = args.and_then(|a| a.strip_prefix("roleid=")).map(|i| i.trim_matches('\'')) else {
            return bad("0x80040203", "RoleId is required.");
        };
        let Some(role) = self.row("roles", id) else { return not_found("role", id) };
        let bu = col(role, "_businessunitid_value").clone();
        let root = self.root_role(id);
        let privileges: Vec<Value> = self
            .role_privileges
            .iter()
            .filter(|r| r["roleid"] == root.as_str())
            .map(|r| {
                let pid = r["privilegeid"].as_str().unwrap_or_default();
                json!({"Depth": Depth::name(r["privilegedepthmask"].as_i64().unwrap_or(8)), "PrivilegeId": pid,
                    "BusinessUnitId": bu, "PrivilegeName": self.row("privileges", pid).map(|p| col(p, "name").clone())})
            })
            .collect();
        Answer::json(json!({"RolePrivileges": privileges}))
    }

    /// `POST systemusers`: a person (`domainname`, `internalemailaddress`, `lastname` and a
    /// business unit required) or an application user (`applicationid` and a business unit).
    pub(super) fn create_user(&mut self, mut row: Row) -> Result<String, Answer> {
        if row.contains_key("isdisabled") {
            return Err(bad("0x80048d19", "isdisabled is not valid for create."));
        }
        let app = row.get("applicationid").is_some_and(|a| !a.is_null());
        let required: &[&str] = if app {
            &["_businessunitid_value"]
        } else {
            &["domainname", "internalemailaddress", "lastname", "_businessunitid_value"]
        };
        for r in required {
            if row.get(*r).is_none_or(Value::is_null) {
                return Err(bad(
                    "0x80040203",
                    &format!("{} is required.", r.trim_start_matches('_').trim_end_matches("_value")),
                ));
            }
        }
        let bu = row["_businessunitid_value"].as_str().unwrap_or_default().to_string();
        if self.row("businessunits", &bu).is_none() {
            return Err(not_found("businessunit", &bu));
        }
        if app {
            let app_id = row["applicationid"].clone();
            let taken =
                self.sets.get("systemusers").is_some_and(|m| m.values().any(|u| col(u, "applicationid") == &app_id));
            if taken {
                return Err(bad("0x80040237", "An application user for this application already exists."));
            }
            row.entry("domainname").or_insert_with(|| json!(format!("# {}", app_id.as_str().unwrap_or_default())));
            row.entry("accessmode").or_insert(json!(4));
            row.entry("islicensed").or_insert(json!(false));
        } else {
            row.entry("applicationid").or_insert(Value::Null);
        }
        row.insert("isdisabled".into(), json!(false));
        Ok(Dataverse::insert(self, "systemusers", row))
    }

    /// Moves a user to another business unit: every security role the user held is removed
    /// (documented: "By changing the business unit for a user, you remove all security role
    /// assignments for the user").
    pub(super) fn move_user(&mut self, id: &str, bu: &str) -> Result<(), Answer> {
        if self.row("systemusers", id).is_none() {
            return Err(not_found("systemuser", id));
        }
        if self.row("businessunits", bu).is_none() {
            return Err(not_found("businessunit", bu));
        }
        let held: Vec<(String, String)> = self.user_roles.iter().filter(|p| p.0 == id).cloned().collect();
        self.user_roles.retain(|p| p.0 != id);
        for _ in held {
            self.audit(56, id, "systemuser");
        }
        self.version += 1;
        let version = self.version;
        let row = self.sets.get_mut("systemusers").and_then(|m| m.get_mut(id)).expect("checked");
        row.insert("_businessunitid_value".into(), json!(bu));
        row.insert("@odata.etag".into(), json!(format!("W/\"{version}\"")));
        Ok(())
    }

    /// `POST businessunits`: a child of an existing unit (there is one root), which receives a
    /// copy of every root role (documented: security roles are copied to every business unit).
    pub(super) fn create_business_unit(&mut self, row: Row) -> Result<String, Answer> {
        let parent = row.get("_parentbusinessunitid_value").and_then(Value::as_str).map(str::to_string);
        let Some(parent) = parent else {
            return Err(bad(
                "0x80040203",
                "parentbusinessunitid is required: an organization has one root business unit.",
            ));
        };
        if self.row("businessunits", &parent).is_none() {
            return Err(not_found("businessunit", &parent));
        }
        if row.get("name").is_none_or(Value::is_null) {
            return Err(bad("0x80040203", "name is required."));
        }
        let id = Dataverse::insert(self, "businessunits", row);
        self.copy_root_roles(&id);
        Ok(id)
    }

    /// Copies every root role into a business unit.
    pub(super) fn copy_root_roles(&mut self, bu: &str) {
        let root_bu = self.root_bu();
        let roots: Vec<(String, Value)> = self
            .sets
            .get("roles")
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|(_, r)| col(r, "_businessunitid_value") == root_bu.as_str())
            .map(|(id, r)| (id.clone(), col(r, "name").clone()))
            .collect();
        for (root, name) in roots {
            let mut copy = Row::new();
            copy.insert("name".into(), name);
            copy.insert("_businessunitid_value".into(), json!(bu));
            copy.insert("_parentrootroleid_value".into(), json!(root));
            copy.insert("_parentroleid_value".into(), json!(root));
            Dataverse::insert(self, "roles", copy);
        }
    }

    pub(super) fn root_bu(&self) -> String {
        self.sets
            .get("businessunits")
            .into_iter()
            .flat_map(|m| m.iter())
            .find(|(_, r)| r.get("_parentbusinessunitid_value").is_none_or(Value::is_null))
            .map(|(id, _)| id.clone())
            .unwrap_or_default()
    }

    /// `POST teams`: an owner (0) or access (1) team, or a Microsoft Entra security group (2) or
    /// Office group (3) team, which needs `azureactivedirectoryobjectid` and `membershiptype`.
    pub(super) fn create_team(&mut self, mut row: Row) -> Result<String, Answer> {
        let kind = row.get("teamtype").and_then(Value::as_i64).unwrap_or(0);
        if !(0..=3).contains(&kind) {
            return Err(bad("0x80040203", "teamtype must be 0 (Owner), 1 (Access), 2 or 3 (Microsoft Entra group)."));
        }
        for r in ["name", "_businessunitid_value"] {
            if row.get(r).is_none_or(Value::is_null) {
                return Err(bad(
                    "0x80040203",
                    &format!("{} is required.", r.trim_start_matches('_').trim_end_matches("_value")),
                ));
            }
        }
        let bu = row["_businessunitid_value"].as_str().unwrap_or_default().to_string();
        if self.row("businessunits", &bu).is_none() {
            return Err(not_found("businessunit", &bu));
        }
        if kind >= 2 {
            let oid = row.get("azureactivedirectoryobjectid").cloned().unwrap_or(Value::Null);
            if oid.is_null() {
                return Err(bad("0x80040203", "A Microsoft Entra group team needs azureactivedirectoryobjectid."));
            }
            let m = row.get("membershiptype").and_then(Value::as_i64);
            if m.is_none_or(|m| !(0..=3).contains(&m)) {
                return Err(bad("0x80040203", "membershiptype must be 0, 1, 2 or 3."));
            }
            let taken = self.sets.get("teams").is_some_and(|t| {
                t.values().any(|x| {
                    col(x, "azureactivedirectoryobjectid") == &oid && col(x, "_businessunitid_value") == bu.as_str()
                })
            });
            if taken {
                return Err(bad("0x80040237", "A team for this group already exists in the business unit."));
            }
        } else {
            row.entry("membershiptype").or_insert(json!(0));
        }
        row.insert("teamtype".into(), json!(kind));
        row.entry("isdefault").or_insert(json!(false));
        Ok(Dataverse::insert(self, "teams", row))
    }
}
