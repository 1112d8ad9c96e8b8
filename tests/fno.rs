//! The `fno` provider through the binary, against the in-repo Finance & Operations fake
//! (`keyward_fakes::fno`), together with the Dataverse fake: one apply provisions the same
//! people in the directory and both ERPs, directory first; the collection that accepts role
//! assignments is found once and remembered; F&O's own SoD conflicts show up as findings;
//! reads are paged and writes batched.

#[path = "d365/harness.rs"]
mod harness;
mod support;

use keyward_fakes::RequestLog;
use keyward_fakes::entra::Entra;
use keyward_fakes::fno::{ASSOCIATIONS, USER_ROLES};

use harness::{dataverse, enterprise, fno, fno_role_id, run, secret};

/// People whose roles bind to `finance`.
const FINANCE_PEOPLE: [&str; 9] = [
    "anne.dodsworth@northwind.example",
    "carlos.mendes@northwind.example",
    "grace.okafor@northwind.example",
    "janet.leverling@northwind.example",
    "margaret.peacock@northwind.example",
    "michael.suyama@northwind.example",
    "nancy.davolio@northwind.example",
    "steven.buchanan@northwind.example",
    "yusuf.demir@northwind.example",
];

#[test]
fn one_apply_provisions_directory_and_both_erps_directory_first_and_converges() {
    let (entra, secret) = (Entra::new(), secret());
    let (dv_log, fno_log) = (RequestLog::default(), RequestLog::default());
    let dv = dataverse(&entra, &secret);
    let f = fno(&entra, &secret);
    let dv_server = dv.serve(&entra, &dv_log, None);
    let fno_server = f.serve(&entra, &fno_log, None);
    let sb = enterprise(&dv_server.url(), Some(&fno_server.url()));

    let r = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(2);
    // Directory accounts come before the ERP accounts that refer to them.
    let pos = |s: &str| r.stdout.find(s).unwrap_or_else(|| panic!("{s} in plan:\n{}", r.stdout));
    assert!(pos("entra.user.nancy.davolio") < pos("d365.user.robert.king"));
    assert!(pos("entra.user.nancy.davolio") < pos("finance.user.nancy.davolio"));
    // The plan groups each person's changes across targets.
    assert!(r.stdout.contains("By person"), "{}", r.stdout);

    let a = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    a.expect(0);
    for p in FINANCE_PEOPLE {
        assert!(f.user(p).is_some(), "{p} was created on F&O");
    }
    assert!(f.user("robert.king@northwind.example").is_none(), "users: with-roles keeps others out");
    assert_eq!(f.roles_of("nancy.davolio@northwind.example"), vec!["Accountant", "Accounting manager"]);
    assert_eq!(f.roles_of("grace.okafor@northwind.example"), vec!["Accounts payable manager"]);
    assert_eq!(f.user("yusuf.demir@northwind.example").unwrap()["UserID"], "yusuf.demir");
    assert!(dv.user("robert.king@northwind.example").is_some());
    // The first collection took the writes: one probe, then the rest in $batch.
    assert_eq!(f.writes().get(ASSOCIATIONS).copied(), Some(10), "{:?}", f.writes());
    assert_eq!(f.writes().get(USER_ROLES), None);
    assert_eq!(fno_log.count("POST", |p| p == "/data/SecurityUserRoleAssociations"), 1, "only the probe goes alone");
    assert_eq!(fno_log.count("POST", |p| p == "/data/SystemUsers"), 0, "users are created in $batch");
    assert_eq!(fno_log.count("POST", |p| p == "/data/$batch"), 2, "users in one batch, assignments in another");

    let r = run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]);
    r.expect(0);
    assert!(r.stdout.contains("No changes"), "{}", r.stdout);

    // A person removed from git is disabled on F&O, never deleted, and the plan says so.
    let users = sb.read("users/finance.yaml");
    let start = users.find("---\nkind: User\nname: anne.dodsworth").unwrap();
    sb.write("users/finance.yaml", &users[..start]);
    sb.edit("keyward.yaml", "removedUsers: disable", "removedUsers: delete");
    let r = run(&sb, &secret, &["plan", "{dir}"]);
    r.expect(0);
    assert!(r.stdout.contains("finance.user.anne.dodsworth@northwind.example"), "{}", r.stdout);
    assert!(r.stdout.contains("never deletes users"), "{}", r.stdout);
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(f.user("anne.dodsworth@northwind.example").unwrap()["Enabled"], false);
}

#[test]
fn a_refusing_write_collection_is_tried_once_and_the_other_one_remembered() {
    let (entra, secret) = (Entra::new(), secret());
    let (dv_log, fno_log) = (RequestLog::default(), RequestLog::default());
    let dv = dataverse(&entra, &secret);
    let f = fno(&entra, &secret);
    f.refuse_writes(ASSOCIATIONS);
    let dv_server = dv.serve(&entra, &dv_log, None);
    let fno_server = f.serve(&entra, &fno_log, None);
    let sb = enterprise(&dv_server.url(), Some(&fno_server.url()));

    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    assert_eq!(f.roles_of("nancy.davolio@northwind.example"), vec!["Accountant", "Accounting manager"]);
    let writes = f.writes();
    assert_eq!(writes.get(ASSOCIATIONS).copied(), Some(1), "refused once, then never asked again: {writes:?}");
    assert_eq!(writes.get(USER_ROLES).copied(), Some(10), "{writes:?}");
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
}

#[test]
fn live_sod_conflicts_of_fno_appear_as_findings() {
    let (entra, secret) = (Entra::new(), secret());
    let (dv_log, fno_log) = (RequestLog::default(), RequestLog::default());
    let dv = dataverse(&entra, &secret);
    let f = fno(&entra, &secret);
    let (clerk, manager) = (fno_role_id("Accounts payable clerk"), fno_role_id("Accounts payable manager"));
    f.add_sod_rule("Enter and approve vendor invoices", &clerk, &manager);
    // Someone outside git holds both sides.
    f.add_user("contractor", "contractor@northwind.example", true)
        .assign("contractor", &clerk)
        .assign("contractor", &manager);
    let dv_server = dv.serve(&entra, &dv_log, None);
    let fno_server = f.serve(&entra, &fno_log, None);
    let sb = enterprise(&dv_server.url(), Some(&fno_server.url()));

    // SARIF carries every finding whole (the text output wraps long messages).
    let r = run(&sb, &secret, &["plan", "{dir}", "--format", "sarif"]);
    r.expect(0);
    let sarif = r.json();
    let found: Vec<&serde_json::Value> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ruleId"] == "sod.target-conflict")
        .collect();
    assert_eq!(found.len(), 1, "{}", r.stdout);
    let all = found[0].to_string();
    assert!(all.contains("finance.user.contractor@northwind.example"), "{all}");
    assert!(all.contains("Enter and approve vendor invoices"), "{all}");
    assert_eq!(found[0]["level"], "warning", "{all}");
    // keyward's own rule sees the same conflict from the live roles.
    assert!(r.stdout.contains("sod.live-conflict"), "{}", r.stdout);
    assert!(all.contains("`Accounts payable clerk`") && all.contains("`Accounts payable manager`"), "{all}");
}

#[test]
fn reads_are_paged_and_writes_batched() {
    let (entra, secret) = (Entra::new(), secret());
    let (dv_log, fno_log) = (RequestLog::default(), RequestLog::default());
    let dv = dataverse(&entra, &secret);
    let f = fno(&entra, &secret);
    f.page_cap(4);
    let dv_server = dv.serve(&entra, &dv_log, None);
    let fno_server = f.serve(&entra, &fno_log, None);
    let sb = enterprise(&dv_server.url(), Some(&fno_server.url()));
    run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    fno_log.clear();
    run(&sb, &secret, &["plan", "{dir}", "--detailed-exitcode"]).expect(0);
    // 10 users (9 people and Admin) in pages of 4, 6 roles in 2 pages, 10 assignments in 3.
    assert_eq!(fno_log.count("GET", |p| p == "/data/SystemUsers"), 3);
    assert_eq!(fno_log.count("GET", |p| p == "/data/SecurityRoles"), 2);
    assert_eq!(fno_log.count("GET", |p| p == "/data/SecurityUserRoles"), 3);
    // The Entra applications mapped to users: none, one page.
    assert_eq!(fno_log.count("GET", |p| p == "/data/SysAADClients"), 1);
    assert_eq!(fno_log.count("GET", |_| true), 3 + 2 + 3 + 1 + 1);
}

#[test]
fn when_no_collection_takes_writes_the_error_says_why() {
    let (entra, secret) = (Entra::new(), secret());
    let (dv_log, fno_log) = (RequestLog::default(), RequestLog::default());
    let dv = dataverse(&entra, &secret);
    let f = fno(&entra, &secret);
    f.refuse_writes(ASSOCIATIONS).refuse_writes(USER_ROLES);
    let dv_server = dv.serve(&entra, &dv_log, None);
    let fno_server = f.serve(&entra, &fno_log, None);
    let sb = enterprise(&dv_server.url(), Some(&fno_server.url()));
    let r = run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]);
    r.expect(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    // F&O's error detail is in `innererror.message`.
    assert!(all.contains("no collection accepts role assignments"), "{all}");
    assert!(all.contains("Write not allowed for entity 'SecurityUserRoles'"), "{all}");
    // Users were still created; both collections were asked once, not once per assignment.
    assert!(f.user("nancy.davolio@northwind.example").is_some());
    assert_eq!(f.writes().values().sum::<usize>(), 2, "{:?}", f.writes());
    assert_eq!(f.roles_of("nancy.davolio@northwind.example"), Vec::<String>::new());
}
