//! The Dataverse case, on the in-repo Dataverse fake: the enterprise example's `d365` target
//! (as tests/d365/harness.rs retargets it) applied, beside `KEYWARD_BENCH_DETECTION_DV_USERS`
//! (100,000 by default) users outside the configuration's scope, as benches/dataverse_feed.rs
//! seeds them, with change tracking on the tables the feed needs. Each change gives a role
//! (System Administrator, or Sales Manager) a person of the example does not hold, in the admin
//! center (audited, so the feed's read of the audit table sees it), watched with `--target d365`.

use super::watch::{self, Case, Change, Summary};
use crate::d365_harness as harness;
use crate::support;
use keyward_fakes::RequestLog;
use keyward_fakes::entra::Entra;

/// The tables a full read of the provider needs change tracking on (docs/servers.md).
const TRACKED: [&str; 6] =
    ["systemusers", "businessunits", "roles", "teams", "fieldsecurityprofiles", "fieldpermissions"];
/// Roles given to people of the enterprise example in Dynamics 365 that they do not hold
/// (`d365` has `users: with-roles`: its people are the sales team and the IT admins).
const GRANTS: [(&str, &str); 7] = [
    ("robert.king", "System Administrator"),
    ("emma.brennan", "System Administrator"),
    ("daniel.osei", "System Administrator"),
    ("mei.tanaka", "System Administrator"),
    ("sofia.lindqvist", "System Administrator"),
    ("mei.tanaka", "Sales Manager"),
    ("daniel.osei", "Sales Manager"),
];

pub fn run() -> Option<Summary> {
    let n: usize =
        std::env::var("KEYWARD_BENCH_DETECTION_DV_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let (entra, secret) = (Entra::new(), harness::secret());
    let dv = harness::dataverse(&entra, &secret);
    for i in 0..n {
        dv.add_user(&format!("user{i}@bench.example"), None);
    }
    for t in TRACKED {
        assert!(dv.enable_change_tracking(t));
    }
    let server = dv.serve(&entra, &RequestLog::default(), None);
    let sb = harness::enterprise(&server.url(), None);
    harness::run(&sb, &secret, &["apply", "{dir}", "--auto-approve"]).expect(0);
    harness::run(&sb, &secret, &["plan", "{dir}", "--target", "d365", "--detailed-exitcode"]).expect(0);
    let (hook, _bodies) = support::webhook("/hooks/alerts");

    let dv = &dv;
    let changes = GRANTS
        .iter()
        .map(|&(person, role)| {
            let who = format!("{person}@northwind.example");
            assert!(dv.user(&who).is_some(), "{who} is in the environment");
            Change::new(format!("{person}: {role}"), &["drift: revoke d365.", person], move || {
                dv.admin_assign_role(&who, role);
            })
        })
        .collect();
    let mut command = sb.cmd(&[]);
    command.env("D365_CLIENT_SECRET", &secret).env("FNO_CLIENT_SECRET", &secret).env("KEYWARD_WEBHOOK_URL", &hook);
    let summary = watch::measure(Case {
        title: format!("{n} users beside the enterprise example's people (Dataverse fake, `--target d365`)"),
        command,
        dir: sb.root.clone(),
        target: "d365".into(),
        extra: vec!["--target".into(), "d365".into()],
        changes,
    });
    drop(server);
    Some(summary)
}
