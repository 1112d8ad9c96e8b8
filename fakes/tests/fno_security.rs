//! The F&O security entities on the fake, driven over HTTP: role → duty → privilege, the
//! licence type of roles and assignments, the Entra application ↔ user mapping, and filters.

mod common;

use common::Client;
use keyward_fakes::entra::Entra;
use keyward_fakes::fno::{Fno, ROOT};
use keyward_fakes::{RequestLog, Running};
use serde_json::{Value, json};

fn setup() -> (Fno, Running, Client) {
    let f = Fno::new();
    f.add_role("LEDGERACCOUNTANT", "Accountant").add_role("VENDPAYMENTCLERK", "Payments clerk");
    f.set_role_license("LEDGERACCOUNTANT", "Finance").set_role_license("VENDPAYMENTCLERK", "Activity");
    f.add_duty("LedgerMaintainJournals", "Maintain journals").add_duty("VendPaymentsProcess", "Process payments");
    f.add_privilege("LedgerJournalTableMaintain", "Maintain journal table")
        .add_privilege("LedgerJournalPost", "Post journals")
        .add_privilege("VendPaymJournalPost", "Post vendor payments")
        .add_privilege("SysInfologView", "View infolog");
    f.add_duty_to_role("LEDGERACCOUNTANT", "LedgerMaintainJournals")
        .add_privilege_to_duty("LedgerMaintainJournals", "LedgerJournalTableMaintain")
        .add_privilege_to_duty("LedgerMaintainJournals", "LedgerJournalPost")
        .add_duty_to_role("VENDPAYMENTCLERK", "VendPaymentsProcess")
        .add_privilege_to_duty("VendPaymentsProcess", "VendPaymJournalPost")
        .add_privilege_to_role("VENDPAYMENTCLERK", "SysInfologView");
    f.add_user("jsmith", "jsmith@contoso.example", true).add_user("svc-payroll", "svc-payroll", true);
    f.assign("jsmith", "LEDGERACCOUNTANT");
    let entra = Entra::new();
    let server = f.serve(&entra, &RequestLog::default(), None);
    let c = Client::new(&entra, &server.url());
    (f, server, c)
}

fn rows(c: &Client, rest: &str) -> Vec<Value> {
    let r = c.get(&format!("{ROOT}{rest}"));
    assert_eq!(r.status, 200, "{rest}: {:?}", r.body);
    r.body["value"].as_array().unwrap().clone()
}

#[test]
fn roles_duties_and_privileges_are_read_from_their_entities() {
    let (_f, _s, c) = setup();
    let rd = rows(&c, "SecurityRoleDuties");
    assert_eq!(rd.len(), 2);
    assert!(rd.contains(
        &json!({"SecurityRoleIdentifier": "LEDGERACCOUNTANT", "SecurityDutyIdentifier": "LedgerMaintainJournals",
        "SecurityRoleName": "Accountant", "SecurityDutyName": "Maintain journals"})
    ));
    let duties = rows(&c, "SecurityDuties?$filter=SecurityRoleIdentifier eq 'LEDGERACCOUNTANT'");
    let privs: Vec<&str> = duties.iter().map(|d| d["SecurityPrivilegeIdentifier"].as_str().unwrap()).collect();
    assert_eq!(privs, ["LedgerJournalTableMaintain", "LedgerJournalPost"]);
    assert!(duties.iter().all(|d| d["SecurityDutyIdentifier"] == "LedgerMaintainJournals"));
    // Direct grants and grants through duties.
    let p = rows(&c, "SecurityPrivileges?$filter=SecurityRoleIdentifier eq 'VENDPAYMENTCLERK'");
    let ids: Vec<&str> = p.iter().map(|x| x["SecurityPrivilegeIdentifier"].as_str().unwrap()).collect();
    assert_eq!(ids, ["SysInfologView", "VendPaymJournalPost"]);
    assert_eq!(p[0]["SecurityPrivilegeName"], "View infolog");
    // Read-only.
    for set in ["SecurityRoleDuties", "SecurityDuties", "SecurityPrivileges"] {
        let r = c.post(&format!("{ROOT}{set}"), &json!({"SecurityRoleIdentifier": "X", "SecurityDutyIdentifier": "Y"}));
        assert_eq!(r.status, 405, "{set}");
    }
}

#[test]
fn roles_and_user_role_rows_carry_the_licence_type() {
    let (_f, _s, c) = setup();
    let roles = rows(&c, "SecurityRoles");
    let acc = roles.iter().find(|r| r["SecurityRoleIdentifier"] == "LEDGERACCOUNTANT").unwrap();
    assert_eq!(acc["UserLicenseType"], "Finance");
    let ur = rows(&c, "SecurityUserRoles?$filter=UserId eq 'jsmith'");
    assert_eq!(ur[0]["UserLicenseType"], "Finance");
    let assoc = rows(&c, "SecurityUserRoleAssociations");
    assert!(assoc[0].get("UserLicenseType").is_none(), "only SecurityUserRoles names it");
}

#[test]
fn entra_applications_are_mapped_to_users_through_sys_aad_clients() {
    let (f, _s, c) = setup();
    let client = "5a7b0000-0000-4000-8000-000000000001";
    let r = c.post(
        &format!("{ROOT}SysAADClients"),
        &json!({"AADClientId": client, "Name": "Payroll sync", "UserId": "svc-payroll"}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let all = rows(&c, "SysAADClients");
    assert_eq!(all, vec![json!({"AADClientId": client, "Name": "Payroll sync", "UserId": "svc-payroll"})]);
    let r = c.post(
        &format!("{ROOT}SysAADClients"),
        &json!({"AADClientId": client, "Name": "again", "UserId": "svc-payroll"}),
    );
    assert_eq!(r.status, 409);
    let r = c.post(&format!("{ROOT}SysAADClients"), &json!({"AADClientId": "other", "Name": "n", "UserId": "nobody"}));
    assert_eq!(r.status, 400, "the user must exist");
    assert_eq!(r.body["error"]["innererror"]["message"], "The user nobody does not exist.");
    let r = c.patch(&format!("{ROOT}SysAADClients(AADClientId='{client}')"), &json!({"UserId": "jsmith"}));
    assert_eq!(r.status, 204);
    assert_eq!(f.aad_clients()[client].1, "jsmith");
    assert_eq!(c.get(&format!("{ROOT}SysAADClients(AADClientId='{client}')")).body["UserId"], "jsmith");
    assert_eq!(c.delete(&format!("{ROOT}SysAADClients(AADClientId='{client}')")).status, 204);
    assert!(f.aad_clients().is_empty());
    f.refuse_writes("SysAADClients");
    let r = c.post(&format!("{ROOT}SysAADClients"), &json!({"AADClientId": client, "Name": "n", "UserId": "jsmith"}));
    assert_eq!(r.status, 405);
}

#[test]
fn filters_other_than_eq_are_refused() {
    let (_f, _s, c) = setup();
    assert_eq!(rows(&c, "SystemUsers?$filter=Enabled eq true").len(), 2);
    assert_eq!(rows(&c, "SystemUsers?$filter=UserID eq 'jsmith' and Enabled eq true").len(), 1);
    assert_eq!(c.get(&format!("{ROOT}SystemUsers?$filter=UserID ne 'jsmith'")).status, 400);
}
