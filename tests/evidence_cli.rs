//! `keyward explain` and `keyward report` end to end, on the quick start in a git repository
//! where a pull request was merged and applied from CI: who can pay vendors, since when, and
//! who approved it; drift told apart from pending changes; provenance in the audit log.

mod support;

use support::{Sandbox, find_group, find_user};

fn setup() -> Sandbox {
    let sb = Sandbox::example("quickstart");
    support::quickstart_with_merged_pull_request(&sb);
    sb
}

#[test]
fn apply_records_the_pull_request_the_run_and_the_reason() {
    let sb = setup();
    let r = sb.run(&["audit", "show", "{dir}", "--format", "json"]);
    let records = r.expect(0).json();
    let anne = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "directory.assignment.anne.dodsworth/ap-clerk")
        .expect("anne's assignment was applied");
    assert_eq!(anne["actor"], "andrew-fuller");
    assert_eq!(anne["reason"], "config");
    let p = &anne["provenance"];
    assert_eq!(p["ci"], "github-actions");
    assert_eq!(p["pullRequest"], 7);
    assert_eq!(p["pullRequestUrl"], "https://github.com/northwind/access/pull/7");
    assert_eq!(p["runUrl"], "https://github.com/northwind/access/actions/runs/4242");
    assert_eq!(p["mergeCommit"].as_str().unwrap().len(), 40);
    assert!(p.get("dirty").is_none(), "the tree was clean: {p}");
    sb.run(&["audit", "verify", "{dir}"]).expect(0);
}

#[test]
fn explain_answers_who_approved_a_persons_access_and_since_when() {
    let sb = setup();
    let e = sb.run(&["explain", "anne.dodsworth@NORTHWIND.example", "{dir}", "--format", "json"]).expect(0).json();
    assert_eq!(e["holder"]["name"], "anne.dodsworth");
    let a = &e["access"][0];
    assert_eq!(a["role"], "ap-clerk");
    assert_eq!(a["duties"][1], "vendor-payment");
    assert_eq!(a["source"]["file"], "users/finance.yaml");
    assert_eq!(a["added"]["pullRequest"], 7);
    assert_eq!(a["added"]["mergedBy"], "Andrew Fuller");
    assert_eq!(a["added"]["approvedBy"][0], "Laura Callahan");
    assert_eq!(a["written"]["author"], "Nancy Davolio");
    let t = &a["targets"][0];
    assert_eq!(t["live"], "held");
    assert_eq!(t["applied"]["actor"], "andrew-fuller");
    assert_eq!(t["applied"]["provenance"]["pullRequest"], 7);

    let text = sb.run(&["explain", "anne.dodsworth", "{dir}"]).expect(0).stdout.clone();
    assert!(text.contains("pull request #7") && text.contains("approved by Laura Callahan"), "{text}");
    let md = sb.run(&["explain", "anne.dodsworth", "{dir}", "--format", "markdown"]).expect(0).stdout.clone();
    assert!(md.starts_with("## Access of anne.dodsworth"), "{md}");

    let r = sb.run(&["explain", "ann.dodsworth", "{dir}"]);
    r.expect(1);
    assert!(r.stderr.contains("did you mean `anne.dodsworth`?"), "{}", r.stderr);
}

#[test]
fn drift_is_told_apart_from_changes_merged_but_not_applied() {
    let sb = setup();
    // Outside git: steven.buchanan is put in ap-clerks on the live directory.
    let mut dir = sb.directory();
    let id = find_user(&mut dir, "steven.buchanan@northwind.example")["id"].clone();
    find_group(&mut dir, "ap-clerks")["members"].as_array_mut().unwrap().push(id);
    sb.set_directory(&dir);
    // In git, merged and not applied: hannah.schulz becomes a buyer.
    sb.edit("users/operations.yaml", "employeeId: \"E1015\"\n", "employeeId: \"E1015\"\nroles: [buyer]\n");
    support::commit_all(&sb.root, "Hannah buys too (#8)", "Margaret Peacock", None);

    let e = sb.run(&["explain", "steven.buchanan", "{dir}", "--format", "json"]).expect(0).json();
    let u = e["unexplained"].as_array().unwrap();
    assert_eq!(u.len(), 1, "{e}");
    assert_eq!(u[0]["address"], "directory.assignment.steven.buchanan/ap-clerk");

    let r = sb.run(&["report", "{dir}", "--format", "json"]).expect(0).json();
    assert_eq!(r["summary"]["driftItems"], 1, "{}", r["drift"]);
    assert_eq!(r["summary"]["pendingChanges"], 1, "{}", r["drift"]);
    assert_eq!(r["drift"]["pending"][0]["address"], "directory.assignment.hannah.schulz/buyer");
    let payers: Vec<&str> = r["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["duties"].as_array().unwrap().iter().any(|d| d == "vendor-payment"))
        .map(|a| a["holder"].as_str().unwrap())
        .collect();
    assert_eq!(payers, ["anne.dodsworth", "janet.leverling", "payments-bot"]);
    assert!(r["audit"]["intact"].as_bool().unwrap());

    // Offline: the same from git and the audit log alone, saying what is unknown.
    let off = sb.run(&["report", "{dir}", "--offline", "--format", "json"]).expect(0).json();
    assert_eq!(off["live"]["read"], false);
    assert!(off["summary"].get("driftItems").is_none());
    let html = sb.path("report.html");
    sb.run(&["report", "{dir}", "--out", html.to_str().unwrap()]).expect(0);
    let page = std::fs::read_to_string(html).unwrap();
    assert!(page.contains("<section id=\"drift\"") && page.contains("steven.buchanan/ap-clerk"));
}
