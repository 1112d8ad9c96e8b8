//! Seeding an environment without requests, changes made outside keyward, and inspection.

use serde_json::{Value, json};

use super::{Dataverse, Row};

impl Dataverse {
    pub fn root_business_unit(&self) -> String {
        let inner = self.lock();
        inner.sets["businessunits"]
            .iter()
            .find(|(_, r)| r.get("_parentbusinessunitid_value").is_none_or(Value::is_null))
            .map(|(id, _)| id.clone())
            .expect("a root business unit")
    }

    pub fn business_unit(&self, name: &str) -> Option<String> {
        let inner = self.lock();
        inner.sets.get("businessunits")?.iter().find(|(_, r)| r["name"] == json!(name)).map(|(id, _)| id.clone())
    }

    pub fn add_business_unit(&self, name: &str, parent: Option<&str>) -> String {
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("name".into(), json!(name));
        row.insert("_parentbusinessunitid_value".into(), parent.map_or(Value::Null, |p| json!(p)));
        Self::insert(&mut inner, "businessunits", row)
    }

    /// Adds a security role in a business unit (the root one when `None`).
    pub fn add_role(&self, name: &str, business_unit: Option<&str>) -> String {
        let bu = business_unit.map(str::to_string).unwrap_or_else(|| self.root_business_unit());
        let mut inner = self.lock();
        let root_bu = inner.root_bu();
        // A copy names the root role of the same name; a root role (or one made only in a child
        // unit) names itself (parentrootroleid is system-required).
        let root = inner
            .sets
            .get("roles")
            .into_iter()
            .flat_map(|m| m.iter())
            .find(|(_, r)| r["name"] == json!(name) && r["_businessunitid_value"] == json!(root_bu))
            .map(|(id, _)| id.clone())
            .filter(|_| bu != root_bu);
        let mut row = Row::new();
        row.insert("name".into(), json!(name));
        row.insert("_businessunitid_value".into(), json!(bu));
        row.insert("_parentroleid_value".into(), root.as_ref().map_or(Value::Null, |r| json!(r)));
        let id = Self::insert(&mut inner, "roles", row);
        let root = root.unwrap_or_else(|| id.clone());
        inner
            .sets
            .get_mut("roles")
            .and_then(|m| m.get_mut(&id))
            .expect("inserted")
            .insert("_parentrootroleid_value".into(), json!(root));
        id
    }

    /// Adds a role to the root unit and a copy to every other unit, as Dataverse does for a
    /// role created in the root business unit.
    pub fn add_role_everywhere(&self, name: &str) {
        let units: Vec<String> = self.lock().sets["businessunits"].keys().cloned().collect();
        for u in units {
            self.add_role(name, Some(&u));
        }
    }

    /// Adds a person (in the root unit when `business_unit` is `None`).
    pub fn add_user(&self, domain_name: &str, business_unit: Option<&str>) -> String {
        let bu = business_unit.map(str::to_string).unwrap_or_else(|| self.root_business_unit());
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("domainname".into(), json!(domain_name));
        row.insert("internalemailaddress".into(), json!(domain_name));
        row.insert("lastname".into(), json!(domain_name.split('@').next().unwrap_or(domain_name)));
        row.insert("isdisabled".into(), json!(false));
        row.insert("applicationid".into(), Value::Null);
        row.insert("accessmode".into(), json!(0));
        row.insert("islicensed".into(), json!(true));
        row.insert("_businessunitid_value".into(), json!(bu));
        Self::insert(&mut inner, "systemusers", row)
    }

    /// Adds an application user (a service principal), which keyward must leave alone.
    pub fn add_application_user(&self, name: &str) -> String {
        let bu = self.root_business_unit();
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("domainname".into(), json!(name));
        row.insert("applicationid".into(), json!("11111111-2222-3333-4444-555555555555"));
        row.insert("isdisabled".into(), json!(false));
        row.insert("accessmode".into(), json!(4));
        row.insert("islicensed".into(), json!(false));
        row.insert("_businessunitid_value".into(), json!(bu));
        Self::insert(&mut inner, "systemusers", row)
    }

    pub fn user_id(&self, domain_name: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .sets
            .get("systemusers")?
            .iter()
            .find(|(_, r)| r["domainname"].as_str().is_some_and(|d| d.eq_ignore_ascii_case(domain_name)))
            .map(|(id, _)| id.clone())
    }

    /// The domain names of every user, one entry per row (so a user created twice shows twice).
    pub fn users(&self) -> Vec<String> {
        let inner = self.lock();
        let rows = inner.sets.get("systemusers").into_iter().flat_map(|set| set.values());
        rows.filter_map(|r| r["domainname"].as_str().map(str::to_string)).collect()
    }

    /// The user's row.
    pub fn user(&self, domain_name: &str) -> Option<Row> {
        let id = self.user_id(domain_name)?;
        self.lock().sets["systemusers"].get(&id).cloned()
    }

    /// Gives a role copy to a user directly (a change made outside keyward).
    pub fn associate_role(&self, domain_name: &str, role: &str) {
        let user = self.user_id(domain_name).expect("user");
        let mut inner = self.lock();
        let bu = inner.sets["systemusers"][&user]["_businessunitid_value"].clone();
        let rid = inner.sets["roles"]
            .iter()
            .find(|(_, r)| r["name"] == json!(role) && r["_businessunitid_value"] == bu)
            .map(|(id, _)| id.clone())
            .expect("a copy of the role in the user's business unit");
        inner.user_roles.push((user, rid));
    }

    /// The names of the roles a user holds, sorted.
    pub fn roles_of(&self, domain_name: &str) -> Vec<String> {
        let Some(user) = self.user_id(domain_name) else { return vec![] };
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .user_roles
            .iter()
            .filter(|(u, _)| *u == user)
            .filter_map(|(_, r)| inner.sets["roles"].get(r)?["name"].as_str().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// Adds a field security profile with read permission on `columns` (`table.column`).
    pub fn add_profile(&self, name: &str, columns: &[&str]) -> String {
        let mut inner = self.lock();
        let mut row = Row::new();
        row.insert("name".into(), json!(name));
        let id = Self::insert(&mut inner, "fieldsecurityprofiles", row);
        for c in columns {
            let (t, a) = c.split_once('.').expect("table.column");
            let mut p = Row::new();
            p.insert("entityname".into(), json!(t));
            p.insert("attributelogicalname".into(), json!(a));
            p.insert("canread".into(), json!(4));
            p.insert("cancreate".into(), json!(0));
            p.insert("canupdate".into(), json!(0));
            p.insert("_fieldsecurityprofileid_value".into(), json!(id));
            Self::insert(&mut inner, "fieldpermissions", p);
        }
        id
    }

    pub(super) fn profile_id(&self, name: &str) -> Option<String> {
        let inner = self.lock();
        inner
            .sets
            .get("fieldsecurityprofiles")?
            .iter()
            .find(|(_, r)| r["name"] == json!(name))
            .map(|(id, _)| id.clone())
    }

    /// Adds a user to a profile directly (a change made outside keyward).
    pub fn add_profile_member(&self, profile: &str, domain_name: &str) {
        let p = self.profile_id(profile).expect("profile");
        let u = self.user_id(domain_name).expect("user");
        self.lock().user_profiles.push((u, p));
    }

    /// The domain names of a profile's members, sorted; `None` when there is no such profile.
    pub fn profile_members(&self, profile: &str) -> Option<Vec<String>> {
        let p = self.profile_id(profile)?;
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .user_profiles
            .iter()
            .filter(|(_, q)| *q == p)
            .filter_map(|(u, _)| inner.sets["systemusers"].get(u)?["domainname"].as_str().map(str::to_string))
            .collect();
        out.sort();
        Some(out)
    }

    /// The `table.column`s a profile may read, sorted.
    pub fn profile_columns(&self, profile: &str) -> Vec<String> {
        let Some(p) = self.profile_id(profile) else { return vec![] };
        let inner = self.lock();
        let mut out: Vec<String> = inner
            .sets
            .get("fieldpermissions")
            .into_iter()
            .flat_map(|s| s.values())
            .filter(|r| r["_fieldsecurityprofileid_value"] == json!(p) && r["canread"] == json!(4))
            .map(|r| {
                format!(
                    "{}.{}",
                    r["entityname"].as_str().unwrap_or(""),
                    r["attributelogicalname"].as_str().unwrap_or("")
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Audit rows (action, user domain name), in order.
    pub fn audits(&self) -> Vec<(i64, String)> {
        let inner = self.lock();
        inner
            .sets
            .get("audits")
            .into_iter()
            .flat_map(|s| s.values())
            .map(|r| {
                let user = r["objectid"].as_str().unwrap_or("");
                let name = inner.sets["systemusers"].get(user).and_then(|u| u["domainname"].as_str()).unwrap_or(user);
                (r["action"].as_i64().unwrap_or(0), name.to_string())
            })
            .collect()
    }
}
