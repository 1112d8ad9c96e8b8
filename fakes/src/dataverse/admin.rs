//! Business units, teams, application users, role privileges and change tracking, set up by a
//! test or changed outside keyward (as an administrator in the Power Platform admin center
//! would), and read back.

use serde_json::{Value, json};

use super::security::Depth;
use super::{Dataverse, Row};

impl Dataverse {
    /// Creates a business unit under `parent` as Dataverse does: it receives a copy of every
    /// root role (`_parentrootroleid_value` naming the root role). [`Dataverse::add_business_unit`]
    /// makes one without copies, to set up environments where a copy is missing.
    pub fn create_business_unit(&self, name: &str, parent: &str) -> String {
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("name".into(), json!(name));
        row.insert("_parentbusinessunitid_value".into(), json!(parent));
        let id = Self::insert(&mut inner, "businessunits", row);
        inner.copy_root_roles(&id);
        id
    }

    /// The copy of role `name` in business unit `bu`.
    pub fn role_in(&self, name: &str, bu: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .sets
            .get("roles")?
            .iter()
            .find(|(_, r)| r["name"] == json!(name) && r["_businessunitid_value"] == json!(bu))
            .map(|(id, _)| id.clone())
    }

    /// The business unit of a user.
    pub fn user_business_unit(&self, domain_name: &str) -> Option<String> {
        self.user(domain_name)?.get("_businessunitid_value")?.as_str().map(str::to_string)
    }

    /// Moves a user to another business unit outside keyward; the user loses every role, as in
    /// Dataverse.
    pub fn move_user(&self, domain_name: &str, bu: &str) {
        let id = self.user_id(domain_name).expect("user");
        let _ = self.lock().move_user(&id, bu);
    }

    /// Sets a column of a user outside keyward (a change change tracking reports).
    pub fn set_user_field(&self, domain_name: &str, field: &str, value: Value) {
        let id = self.user_id(domain_name).expect("user");
        let mut inner = self.lock();
        inner.version += 1;
        let version = inner.version;
        if let Some(row) = inner.sets.get_mut("systemusers").and_then(|m| m.get_mut(&id)) {
            row.insert(field.to_string(), value);
            row.insert("@odata.etag".into(), json!(format!("W/\"{version}\"")));
        }
    }

    /// Deletes a user row outside keyward (change tracking reports it as deleted).
    pub fn remove_user(&self, domain_name: &str) {
        if let Some(id) = self.user_id(domain_name) {
            self.lock().remove_row("systemusers", &id);
        }
    }

    /// Adds an application user for the Entra application `application_id` (the app
    /// registration's client id), with its service principal's object id, in business unit
    /// `bu` (the root one when `None`); returns its id.
    pub fn add_app_user(&self, application_id: &str, object_id: &str, bu: Option<&str>) -> String {
        let bu = bu.map(str::to_string).unwrap_or_else(|| self.root_business_unit());
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("applicationid".into(), json!(application_id));
        row.insert("azureactivedirectoryobjectid".into(), json!(object_id));
        row.insert("_businessunitid_value".into(), json!(bu));
        inner.create_user(row).unwrap_or_else(|_| panic!("an application user for {application_id} in {bu}"))
    }

    /// The id of the user for an Entra application.
    pub fn app_user_id(&self, application_id: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .sets
            .get("systemusers")?
            .iter()
            .find(|(_, u)| u["applicationid"] == json!(application_id))
            .map(|(id, _)| id.clone())
    }

    /// Gives a role copy to a user as an administrator would in the admin center: unlike
    /// [`Dataverse::associate_role`], the audit table records it (action 55), where change
    /// tracking on `audits` sees it.
    pub fn admin_assign_role(&self, domain_name: &str, role: &str) {
        self.associate_role(domain_name, role);
        let id = self.user_id(domain_name).expect("user");
        self.lock().audit(55, &id, "systemuser");
    }

    /// The user (by id) the audit rows written from now on name as having made the change
    /// (`_userid_value`); `None`: no one.
    pub fn set_audit_actor(&self, user: Option<&str>) {
        self.lock().audit_actor = user.map(str::to_string);
    }

    /// Takes every copy of a role from a user as an administrator would in the admin center; the
    /// audit table records it (action 56).
    pub fn admin_remove_role(&self, domain_name: &str, role: &str) {
        let id = self.user_id(domain_name).expect("user");
        let mut inner = self.lock();
        let copies: Vec<String> =
            inner.sets["roles"].iter().filter(|(_, r)| r["name"] == json!(role)).map(|(rid, _)| rid.clone()).collect();
        let before = inner.user_roles.len();
        inner.user_roles.retain(|(u, r)| !(u == &id && copies.contains(r)));
        if inner.user_roles.len() != before {
            inner.audit(56, &id, "systemuser");
        }
    }

    /// Removes a user (by domain name) from a team outside keyward.
    pub fn remove_team_member(&self, team: &str, domain_name: &str) {
        let user = self.user_id(domain_name).expect("user");
        self.lock().team_members.retain(|(t, u)| !(t == team && u == &user));
    }

    /// The names of the roles of a user by id, sorted.
    pub fn roles_of_id(&self, user: &str) -> Vec<String> {
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .user_roles
            .iter()
            .filter(|(u, _)| u == user)
            .filter_map(|(_, r)| inner.sets["roles"].get(r)?["name"].as_str().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// Adds an owner team (`teamtype` 0) in a business unit (the root one when `None`).
    pub fn add_owner_team(&self, name: &str, bu: Option<&str>) -> String {
        self.add_team(json!({"name": name, "teamtype": 0}), bu)
    }

    /// Adds a Microsoft Entra security group team (`teamtype` 2) for the group
    /// `group_object_id`, with a `membershiptype` (0 members and guests, 1 members, 2 owners,
    /// 3 guests).
    pub fn add_group_team(&self, name: &str, bu: Option<&str>, group_object_id: &str, membershiptype: i64) -> String {
        self.add_team(
            json!({"name": name, "teamtype": 2, "azureactivedirectoryobjectid": group_object_id,
                "membershiptype": membershiptype}),
            bu,
        )
    }

    fn add_team(&self, fields: Value, bu: Option<&str>) -> String {
        let bu = bu.map(str::to_string).unwrap_or_else(|| self.root_business_unit());
        let mut row: Row = fields.as_object().cloned().unwrap_or_default();
        row.insert("_businessunitid_value".into(), json!(bu));
        self.lock().create_team(row).unwrap_or_else(|_| panic!("a valid team"))
    }

    /// The id of the team with this name.
    pub fn team_id(&self, name: &str) -> Option<String> {
        let inner = self.lock();
        inner.sets.get("teams")?.iter().find(|(_, t)| t["name"] == json!(name)).map(|(id, _)| id.clone())
    }

    /// Sets the members of a Microsoft Entra group team as Dataverse does from the group (by
    /// domain names).
    pub fn set_group_team_members(&self, team: &str, domain_names: &[&str]) {
        let ids: Vec<String> = domain_names.iter().map(|d| self.user_id(d).expect("user")).collect();
        let mut inner = self.lock();
        inner.team_members.retain(|(t, _)| t != team);
        inner.team_members.extend(ids.into_iter().map(|u| (team.to_string(), u)));
    }

    /// Adds a user (by domain name) to an owner team outside keyward.
    pub fn add_team_member(&self, team: &str, domain_name: &str) {
        let user = self.user_id(domain_name).expect("user");
        let mut inner = self.lock();
        assert_eq!(super::col(&inner.sets["teams"][team], "teamtype"), &json!(0), "an owner team");
        inner.team_members.push((team.to_string(), user));
    }

    /// Gives a role (the copy in the team's business unit) to a team outside keyward.
    pub fn assign_team_role(&self, team: &str, role: &str) {
        let mut inner = self.lock();
        let bu = super::col(&inner.sets["teams"][team], "_businessunitid_value").clone();
        let rid = inner.sets["roles"]
            .iter()
            .find(|(_, r)| r["name"] == json!(role) && r["_businessunitid_value"] == bu)
            .map(|(id, _)| id.clone())
            .expect("a copy of the role in the team's business unit");
        inner.team_roles.push((team.to_string(), rid));
        inner.audit(53, team, "team");
    }

    /// The names of a team's roles, sorted.
    pub fn team_roles(&self, team: &str) -> Vec<String> {
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .team_roles
            .iter()
            .filter(|(t, _)| t == team)
            .filter_map(|(_, r)| inner.sets["roles"].get(r)?["name"].as_str().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// The domain names of a team's members, sorted.
    pub fn team_members(&self, team: &str) -> Vec<String> {
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .team_members
            .iter()
            .filter(|(t, _)| t == team)
            .filter_map(|(_, u)| inner.sets["systemusers"].get(u)?["domainname"].as_str().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// Adds a privilege (`prvReadAccount`, …) that can be granted at every depth; returns its id.
    pub fn add_privilege(&self, name: &str) -> String {
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("name".into(), json!(name));
        let right = if name.starts_with("prvRead") {
            1
        } else if name.starts_with("prvWrite") {
            2
        } else {
            0
        };
        row.insert("accessright".into(), json!(right));
        for d in ["canbebasic", "canbelocal", "canbedeep", "canbeglobal"] {
            row.insert(d.into(), json!(true));
        }
        Self::insert(&mut inner, "privileges", row)
    }

    /// Grants a privilege to the root role `role` (its copies hold the same privileges) at a
    /// depth, outside keyward; a second grant changes the depth.
    pub fn grant_privilege(&self, role: &str, privilege: &str, depth: Depth) {
        let mut inner = self.lock();
        let root_bu = inner.root_bu();
        let find = |set: &str, name: &str, bu: Option<&str>| {
            inner.sets[set]
                .iter()
                .find(|(_, r)| r["name"] == json!(name) && bu.is_none_or(|b| r["_businessunitid_value"] == json!(b)))
                .map(|(id, _)| id.clone())
        };
        let rid = find("roles", role, Some(&root_bu)).expect("a root role");
        let pid = find("privileges", privilege, None).expect("a privilege");
        let mask = depth.mask();
        if let Some(r) =
            inner.role_privileges.iter_mut().find(|r| r["roleid"] == json!(rid) && r["privilegeid"] == json!(pid))
        {
            r.insert("privilegedepthmask".into(), json!(mask));
            return;
        }
        inner.next_id += 1;
        let id = format!("00000000-0000-0000-0001-{:012}", inner.next_id);
        let mut row = Row::new();
        row.insert("roleprivilegeid".into(), json!(id));
        row.insert("roleid".into(), json!(rid));
        row.insert("privilegeid".into(), json!(pid));
        row.insert("privilegedepthmask".into(), json!(mask));
        inner.role_privileges.push(row);
    }

    /// Turns change tracking on for an entity set; false for a set that cannot be tracked
    /// (intersect collections, unknown sets). Once on, it cannot be turned off (documented).
    pub fn enable_change_tracking(&self, set: &str) -> bool {
        if super::key_of(set).is_none() {
            return false;
        }
        self.lock().tracked.insert(set.to_string());
        true
    }

    /// Sets the clock change tracking tokens are judged by (a Unix time).
    pub fn set_now(&self, unix: u64) {
        self.lock().now = Some(unix);
    }

    /// How many days changes are kept (`ExpireChangeTrackingInDays`, 7 by default).
    pub fn set_change_tracking_days(&self, days: u64) {
        self.lock().tracking_days = days;
    }
}
