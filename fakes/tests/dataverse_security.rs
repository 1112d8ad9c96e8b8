//! The Dataverse security model on the fake, driven over HTTP: business units and role copies,
//! moving a user between units, owner and Microsoft Entra group teams, application users, role
//! privileges with their depth, and the licence and access columns of users.

mod common;

use common::Client;
use keyward_fakes::dataverse::{API, Dataverse, Depth};
use keyward_fakes::entra::Entra;
use keyward_fakes::{RequestLog, Running};
use serde_json::{Value, json};

fn setup() -> (Dataverse, Running, Client) {
    let dv = Dataverse::new("northwind");
    dv.add_role_everywhere("Salesperson");
    dv.add_role_everywhere("Sales Manager");
    let entra = Entra::new();
    let server = dv.serve(&entra, &RequestLog::default(), None);
    let c = Client::new(&entra, &server.url());
    (dv, server, c)
}

fn path(rest: &str) -> String {
    format!("{API}{rest}")
}

fn rows(c: &Client, rest: &str) -> Vec<Value> {
    let r = c.get(&path(rest));
    assert_eq!(r.status, 200, "{rest}: {:?}", r.body);
    r.body["value"].as_array().unwrap().clone()
}

fn created_id(r: &common::Reply) -> String {
    let loc = r.header("odata-entityid").expect("OData-EntityId");
    loc.rsplit_once('(').unwrap().1.trim_end_matches(')').to_string()
}

fn role_ref(c: &Client, id: &str) -> Value {
    json!({"@odata.id": format!("{}{API}roles({id})", c.url)})
}

#[test]
fn a_new_business_unit_gets_a_copy_of_every_root_role() {
    let (dv, _s, c) = setup();
    let root = dv.root_business_unit();
    let r = c.post(
        &path("businessunits"),
        &json!({"name": "Retail", "parentbusinessunitid@odata.bind": format!("/businessunits({root})")}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    let retail = created_id(&r);
    let roles = rows(&c, "roles");
    let root_sales =
        roles.iter().find(|r| r["name"] == "Salesperson" && r["_businessunitid_value"] == root.as_str()).unwrap();
    assert_eq!(root_sales["_parentrootroleid_value"], root_sales["roleid"], "a root role names itself");
    let copy =
        roles.iter().find(|r| r["name"] == "Salesperson" && r["_businessunitid_value"] == retail.as_str()).unwrap();
    assert_eq!(copy["_parentrootroleid_value"], root_sales["roleid"]);
    assert_eq!(roles.iter().filter(|r| r["_businessunitid_value"] == retail.as_str()).count(), 2);
    // One root: a unit without a parent is refused.
    assert_eq!(c.post(&path("businessunits"), &json!({"name": "Second root"})).status, 400);
    let units = rows(&c, "businessunits");
    assert_eq!(units.iter().filter(|u| u["_parentbusinessunitid_value"].is_null()).count(), 1);
}

#[test]
fn moving_a_user_to_another_business_unit_removes_every_role() {
    let (dv, _s, c) = setup();
    let root = dv.root_business_unit();
    let retail = dv.create_business_unit("Retail", &root);
    let user = dv.add_user("sofia@northwind.example", None);
    dv.associate_role("sofia@northwind.example", "Salesperson");
    dv.associate_role("sofia@northwind.example", "Sales Manager");
    let before = dv.audits().len();
    let r = c.patch(
        &path(&format!("systemusers({user})")),
        &json!({"businessunitid@odata.bind": format!("/businessunits({retail})")}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert!(dv.roles_of("sofia@northwind.example").is_empty(), "roles removed by the move");
    assert_eq!(dv.user_business_unit("sofia@northwind.example").as_deref(), Some(retail.as_str()));
    let removed: Vec<(i64, String)> = dv.audits()[before..].to_vec();
    assert_eq!(removed.iter().filter(|(a, _)| *a == 56).count(), 2);
    // Only the copies of the new unit can be given back.
    let root_copy = dv.role_in("Salesperson", &root).unwrap();
    let r = c.post(&path(&format!("systemusers({user})/systemuserroles_association/$ref")), &role_ref(&c, &root_copy));
    assert_eq!((r.status, r.code()), (400, "0x80040217"));
    let retail_copy = dv.role_in("Salesperson", &retail).unwrap();
    let r =
        c.post(&path(&format!("systemusers({user})/systemuserroles_association/$ref")), &role_ref(&c, &retail_copy));
    assert_eq!(r.status, 204);
    assert_eq!(dv.roles_of("sofia@northwind.example"), vec!["Salesperson"]);
    // The bound action does the same.
    let r = c.post(
        &path(&format!("systemusers({user})/Microsoft.Dynamics.CRM.SetBusinessSystemUser")),
        &json!({"BusinessUnit": {"@odata.type": "Microsoft.Dynamics.CRM.businessunit", "businessunitid": root},
            "ReassignPrincipal": {"@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": user}}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert!(dv.roles_of("sofia@northwind.example").is_empty());
    assert_eq!(dv.user_business_unit("sofia@northwind.example").as_deref(), Some(root.as_str()));
    let r = c.post(
        &path(&format!("systemusers({user})/Microsoft.Dynamics.CRM.SetBusinessSystemUser")),
        &json!({"BusinessUnit": {"businessunitid": retail}}),
    );
    assert_eq!(r.status, 400, "ReassignPrincipal is required");
}

#[test]
fn owner_teams_hold_roles_and_members_and_group_teams_take_members_from_entra() {
    let (dv, _s, c) = setup();
    let root = dv.root_business_unit();
    let retail = dv.create_business_unit("Retail", &root);
    let ann = dv.add_user("ann@northwind.example", None);
    let bob = dv.add_user("bob@northwind.example", None);
    let r = c.post(
        &path("teams"),
        &json!({"name": "Sales desk", "teamtype": 0, "businessunitid@odata.bind": format!("/businessunits({root})")}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    let owner = created_id(&r);
    let group = "7a1c0000-0000-4000-8000-000000000001";
    let missing_oid = json!({"name": "Sales group", "teamtype": 2, "membershiptype": 0, "businessunitid@odata.bind": format!("/businessunits({root})")});
    assert_eq!(c.post(&path("teams"), &missing_oid).status, 400);
    let r = c.post(
        &path("teams"),
        &json!({"name": "Sales group", "teamtype": 2, "membershiptype": 1,
        "azureactivedirectoryobjectid": group, "businessunitid@odata.bind": format!("/businessunits({root})")}),
    );
    assert_eq!(r.status, 204);
    let group_team = created_id(&r);
    let team = rows(&c, &format!("teams?$filter=teamid eq {group_team}"));
    let t = team.iter().find(|t| t["teamid"] == group_team.as_str()).unwrap();
    assert_eq!((t["teamtype"].as_i64(), t["membershiptype"].as_i64()), (Some(2), Some(1)));
    assert_eq!(t["azureactivedirectoryobjectid"], group);
    assert_eq!(
        c.patch(&path(&format!("teams({group_team})")), &json!({"teamtype": 0})).status,
        400,
        "teamtype is not updatable"
    );
    assert_eq!(c.patch(&path(&format!("teams({group_team})")), &json!({"membershiptype": 0})).status, 400);

    // Roles: the copy of the team's unit only.
    let sales = dv.role_in("Salesperson", &root).unwrap();
    let retail_sales = dv.role_in("Salesperson", &retail).unwrap();
    let add_role = |team: &str, role: &str| {
        c.post(&path(&format!("teams({team})/teamroles_association/$ref")), &role_ref(&c, role))
    };
    assert_eq!(add_role(&owner, &sales).status, 204);
    assert_eq!(add_role(&owner, &retail_sales).code(), "0x80040217");
    assert_eq!(add_role(&owner, &sales).code(), "0x80040237", "a duplicate");
    assert_eq!(add_role(&group_team, &sales).status, 204);
    assert_eq!(dv.team_roles(&owner), vec!["Salesperson"]);
    let related = rows(&c, &format!("teams({owner})/teamroles_association"));
    assert_eq!(related[0]["roleid"], sales.as_str());
    assert_eq!(rows(&c, "teamrolescollection").len(), 2);

    // Members: written on owner teams, read from the group on group teams.
    let user_ref = |u: &str| json!({"@odata.id": format!("{}{API}systemusers({u})", c.url)});
    let r = c.post(&path(&format!("teams({owner})/teammembership_association/$ref")), &user_ref(&ann));
    assert_eq!(r.status, 204);
    let r = c.post(&path(&format!("teams({group_team})/teammembership_association/$ref")), &user_ref(&bob));
    assert_eq!((r.status, r.code()), (400, "0x80040203"));
    dv.set_group_team_members(&group_team, &["bob@northwind.example"]);
    let members = rows(&c, &format!("teams({group_team})/teammembership_association"));
    assert_eq!(members[0]["domainname"], "bob@northwind.example");
    let mine = rows(&c, &format!("systemusers({ann})/teammembership_association"));
    assert_eq!(mine[0]["teamid"], owner.as_str());
    assert_eq!(rows(&c, "teammembershipcollection").len(), 2);
    let r = c.delete(&path(&format!("teams({owner})/teammembership_association({ann})/$ref")));
    assert_eq!(r.status, 204);
    assert!(dv.team_members(&owner).is_empty());
    let r = c.delete(&path(&format!("teams({owner})/teamroles_association({sales})/$ref")));
    assert_eq!(r.status, 204);
    let actions: Vec<i64> = dv.audits().iter().map(|(a, _)| *a).collect();
    assert!(actions.contains(&53) && actions.contains(&54), "{actions:?}");
}

#[test]
fn an_application_user_is_a_system_user_with_an_application_id() {
    let (dv, _s, c) = setup();
    let root = dv.root_business_unit();
    let app = "c1ient00-0000-4000-8000-000000000001";
    let body = json!({"applicationid": app, "azureactivedirectoryobjectid": "5e000000-0000-4000-8000-000000000001",
        "businessunitid@odata.bind": format!("/businessunits({root})")});
    let r = c.post(&path("systemusers"), &body);
    assert_eq!(r.status, 204, "{:?}", r.body);
    let id = created_id(&r);
    let users = rows(&c, "systemusers");
    let u = users.iter().find(|u| u["systemuserid"] == id.as_str()).unwrap();
    assert_eq!(u["applicationid"], app);
    assert_eq!(u["_businessunitid_value"], root.as_str());
    assert_eq!(
        (u["accessmode"].as_i64(), u["islicensed"].as_bool(), u["isdisabled"].as_bool()),
        (Some(4), Some(false), Some(false))
    );
    assert_eq!(c.post(&path("systemusers"), &body).code(), "0x80040237", "one user per application");
    let mut no_bu = body.clone();
    no_bu.as_object_mut().unwrap().remove("businessunitid@odata.bind");
    no_bu["applicationid"] = json!("c1ient00-0000-4000-8000-000000000002");
    assert_eq!(c.post(&path("systemusers"), &no_bu).status, 400);
    let sales = dv.role_in("Salesperson", &root).unwrap();
    let r = c.post(&path(&format!("systemusers({id})/systemuserroles_association/$ref")), &role_ref(&c, &sales));
    assert_eq!(r.status, 204);
    assert_eq!(dv.roles_of_id(&dv.app_user_id(app).unwrap()), vec!["Salesperson"]);
    // A person needs the person columns.
    assert_eq!(c.post(&path("systemusers"), &json!({"domainname": "x@northwind.example", "businessunitid@odata.bind": format!("/businessunits({root})")})).status, 400);
}

#[test]
fn role_privileges_are_read_with_their_depth() {
    let (dv, _s, c) = setup();
    let root = dv.root_business_unit();
    let retail = dv.create_business_unit("Retail", &root);
    dv.add_privilege("prvReadAccount");
    dv.add_privilege("prvWriteAccount");
    dv.grant_privilege("Salesperson", "prvReadAccount", Depth::Global);
    dv.grant_privilege("Salesperson", "prvWriteAccount", Depth::Local);
    let privileges = rows(&c, "privileges");
    assert_eq!(privileges.len(), 2);
    let rp = rows(&c, "roleprivilegescollection");
    let root_sales = dv.role_in("Salesperson", &root).unwrap();
    let masks: Vec<i64> = rp
        .iter()
        .filter(|r| r["roleid"] == root_sales.as_str())
        .map(|r| r["privilegedepthmask"].as_i64().unwrap())
        .collect();
    assert_eq!(masks, [8, 2]);
    let copy = dv.role_in("Salesperson", &retail).unwrap();
    let related = rows(&c, &format!("roles({copy})/roleprivileges_association"));
    let names: Vec<&str> = related.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["prvReadAccount", "prvWriteAccount"]);
    let r = c.get(&path(&format!("RetrieveRolePrivilegesRole(RoleId={copy})")));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let list = r.body["RolePrivileges"].as_array().unwrap();
    assert_eq!(list[0]["Depth"], "Global");
    assert_eq!(list[1]["Depth"], "Local");
    assert_eq!(list[0]["BusinessUnitId"], retail.as_str());
    assert_eq!(list[1]["PrivilegeName"], "prvWriteAccount");
    // A changed depth is seen.
    dv.grant_privilege("Salesperson", "prvWriteAccount", Depth::Deep);
    let r = c.get(&path(&format!("RetrieveRolePrivilegesRole(RoleId={root_sales})")));
    assert_eq!(r.body["RolePrivileges"][1]["Depth"], "Deep");
    assert!(
        rows(&c, &format!("roles({})/roleprivileges_association", dv.role_in("Sales Manager", &root).unwrap()))
            .is_empty()
    );
}

#[test]
fn users_carry_their_access_mode_and_licence_state() {
    let (dv, _s, c) = setup();
    dv.add_user("ann@northwind.example", None);
    let users = rows(&c, "systemusers");
    assert_eq!(users[0]["accessmode"], 0);
    assert_eq!(users[0]["islicensed"], true);
    assert_eq!(users[0]["isdisabled"], false);
}
