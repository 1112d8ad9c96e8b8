//! Change tracking on the Dataverse fake, driven over HTTP: the delta link of a tracked read,
//! the changes and deletions a later read returns, paging, the refused query options, token
//! expiry, and the tables that are or cannot be tracked.

mod common;

use common::Client;
use keyward_fakes::dataverse::{API, Dataverse};
use keyward_fakes::entra::Entra;
use keyward_fakes::{RequestLog, Running};
use serde_json::{Value, json};

const TRACK: (&str, &str) = ("Prefer", "odata.track-changes");
const NOW: u64 = 1_800_000_000;

fn setup() -> (Dataverse, Running, Client) {
    let dv = Dataverse::new("northwind");
    dv.set_now(NOW);
    dv.add_role_everywhere("Salesperson");
    for u in ["ann", "bob", "cid"] {
        dv.add_user(&format!("{u}@northwind.example"), None);
    }
    let entra = Entra::new();
    let server = dv.serve(&entra, &RequestLog::default(), None);
    let c = Client::new(&entra, &server.url());
    (dv, server, c)
}

/// Follows next links to the delta link; returns the rows and the delta link.
fn round(c: &Client, first: &str, headers: &[(&str, &str)]) -> (Vec<Value>, String) {
    let mut url = first.to_string();
    let mut all = Vec::new();
    loop {
        let r = c.get_with(&url, headers);
        assert_eq!(r.status, 200, "{url}: {:?}", r.body);
        all.extend(r.body["value"].as_array().unwrap().iter().cloned());
        if let Some(n) = r.body["@odata.nextLink"].as_str() {
            url = n.to_string();
            continue;
        }
        return (all, r.body["@odata.deltaLink"].as_str().expect("a delta link").to_string());
    }
}

#[test]
fn a_table_without_change_tracking_ignores_the_preference() {
    let (_dv, _s, c) = setup();
    let r = c.get_with(&format!("{API}systemusers"), &[TRACK]);
    assert_eq!(r.status, 200);
    assert!(r.body.get("@odata.deltaLink").is_none());
    assert!(r.header("preference-applied").is_none_or(|p| !p.contains("track-changes")));
}

#[test]
fn a_tracked_read_ends_with_a_delta_link_and_a_later_read_returns_changes_and_deletions() {
    let (dv, _s, c) = setup();
    assert!(dv.enable_change_tracking("systemusers"));
    let first = c.get_with(&format!("{API}systemusers?$select=domainname,isdisabled"), &[TRACK]);
    assert_eq!(first.status, 200);
    assert!(first.header("preference-applied").unwrap().contains("odata.track-changes"));
    let delta = first.body["@odata.deltaLink"].as_str().unwrap().to_string();
    assert!(delta.contains("$select=domainname%2Cisdisabled&$deltatoken="), "{delta}");
    assert!(delta.contains("%2101%2F15%2F2027+08%3A00%3A00"), "version!MM/dd/yyyy HH:mm:ss: {delta}");
    let rows = first.body["value"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["@odata.etag", "domainname", "isdisabled", "systemuserid"]);

    // A user created through the API, one disabled, one deleted in the admin center.
    let root = dv.root_business_unit();
    let r = c.post(&format!("{API}systemusers"), &json!({"domainname": "dan@northwind.example",
        "internalemailaddress": "dan@northwind.example", "lastname": "dan", "businessunitid@odata.bind": format!("/businessunits({root})")}));
    assert_eq!(r.status, 204);
    let bob = dv.user_id("bob@northwind.example").unwrap();
    assert_eq!(c.patch(&format!("{API}systemusers({bob})"), &json!({"isdisabled": true})).status, 204);
    let cid = dv.user_id("cid@northwind.example").unwrap();
    dv.remove_user("cid@northwind.example");
    // A role given to a user changes no systemuser row.
    dv.associate_role("ann@northwind.example", "Salesperson");

    let r = c.get(&delta);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["@odata.context"].as_str().unwrap().ends_with("$metadata#systemusers/$delta"));
    let changes = r.body["value"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[0]["domainname"], "dan@northwind.example");
    assert_eq!(
        (changes[1]["systemuserid"].as_str(), changes[1]["isdisabled"].as_bool()),
        (Some(bob.as_str()), Some(true))
    );
    let deleted = &changes[2];
    assert!(deleted["@odata.context"].as_str().unwrap().ends_with("$metadata#systemusers/$deletedEntity"));
    assert_eq!((deleted["id"].as_str(), deleted["reason"].as_str()), (Some(cid.as_str()), Some("deleted")));
    let next = r.body["@odata.deltaLink"].as_str().unwrap().to_string();
    assert_ne!(next, delta);
    let r = c.get(&next);
    assert_eq!(r.body["value"], json!([]), "nothing changed since");
}

#[test]
fn a_row_created_and_deleted_between_two_reads_comes_as_deleted() {
    let (dv, _s, c) = setup();
    dv.enable_change_tracking("systemusers");
    let (_, delta) = round(&c, &format!("{API}systemusers"), &[TRACK]);
    let eve = dv.add_user("eve@northwind.example", None);
    dv.remove_user("eve@northwind.example");
    let (changes, _) = round(&c, &delta, &[]);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["id"], eve.as_str());
}

#[test]
fn tracked_reads_page_like_any_other() {
    let (dv, _s, c) = setup();
    dv.enable_change_tracking("systemusers");
    for i in 0..4 {
        dv.add_user(&format!("u{i}@northwind.example"), None);
    }
    let (all, delta) =
        round(&c, &format!("{API}systemusers"), &[TRACK, ("Prefer", "odata.track-changes,odata.maxpagesize=3")]);
    assert_eq!(all.len(), 7);
    for i in 0..5 {
        dv.set_user_field(&format!("u{}@northwind.example", i % 4), "title", json!(format!("t{i}")));
    }
    let (changes, _) = round(&c, &delta, &[("Prefer", "odata.maxpagesize=2")]);
    assert_eq!(changes.len(), 4, "each changed user once");
}

#[test]
fn filter_orderby_expand_and_top_are_refused_with_change_tracking() {
    let (dv, _s, c) = setup();
    dv.enable_change_tracking("systemusers");
    for opt in ["$filter=isdisabled eq false", "$orderby=domainname", "$expand=businessunitid", "$top=2"] {
        let r = c.get_with(&format!("{API}systemusers?{opt}"), &[TRACK]);
        assert_eq!(r.status, 400, "{opt}");
        let name = opt.split('=').next().unwrap();
        assert_eq!(
            r.body["error"]["message"],
            format!("The \"{name}\" query parameter isn't supported when Change Tracking is enabled.")
        );
    }
}

#[test]
fn a_token_older_than_the_retention_is_refused() {
    let (dv, _s, c) = setup();
    dv.enable_change_tracking("systemusers");
    let (_, delta) = round(&c, &format!("{API}systemusers"), &[TRACK]);
    dv.set_now(NOW + 6 * 86_400);
    assert_eq!(c.get(&delta).status, 200);
    dv.set_now(NOW + 8 * 86_400);
    let r = c.get(&delta);
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("expired"));
    dv.set_change_tracking_days(30);
    assert_eq!(c.get(&delta).status, 200);
    assert_eq!(c.get(&format!("{API}systemusers?$deltatoken=not-a-token")).status, 400);
}

#[test]
fn intersect_tables_cannot_be_tracked_and_audits_are() {
    let (dv, _s, c) = setup();
    assert!(!dv.enable_change_tracking("systemuserrolescollection"));
    let r = c.get_with(&format!("{API}systemuserrolescollection"), &[TRACK]);
    assert!(r.body.get("@odata.deltaLink").is_none());
    // Role assignments show in the audit table, which is tracked.
    let (_, delta) = round(&c, &format!("{API}audits"), &[TRACK]);
    dv.associate_role("ann@northwind.example", "Salesperson");
    let ann = dv.user_id("ann@northwind.example").unwrap();
    let role = dv.role_in("Salesperson", &dv.root_business_unit()).unwrap();
    let r = c.post(
        &format!("{API}systemusers({ann})/systemuserroles_association/$ref"),
        &json!({"@odata.id": format!("{}{API}roles({role})", c.url)}),
    );
    assert_eq!(r.status, 400, "already held");
    let bob = dv.user_id("bob@northwind.example").unwrap();
    let r = c.post(
        &format!("{API}systemusers({bob})/systemuserroles_association/$ref"),
        &json!({"@odata.id": format!("{}{API}roles({role})", c.url)}),
    );
    assert_eq!(r.status, 204);
    let cid = dv.user_id("cid@northwind.example").unwrap();
    dv.admin_assign_role("cid@northwind.example", "Salesperson");
    let (changes, _) = round(&c, &delta, &[]);
    assert_eq!(changes.len(), 2, "the associate made through the API and the admin's: {changes:?}");
    assert_eq!((changes[0]["action"].as_i64(), changes[0]["objectid"].as_str()), (Some(55), Some(bob.as_str())));
    assert_eq!(changes[1]["objectid"], cid.as_str());
}
