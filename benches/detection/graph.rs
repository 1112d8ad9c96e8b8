//! The Graph case: the quick start applied to the in-repo Graph fake, beside
//! `KEYWARD_BENCH_DETECTION_USERS` (100,000 by default) users of another domain, out of the
//! configuration's scope, and a fiftieth as many groups of 50 of them. Each change sets the
//! job title of a different person of the quick start in the fake's portal.

use keyward_fakes::graph::Graph;
use serde_json::json;

use super::watch::{self, Case, Change, Summary};
use crate::support;

const TENANT: &str = "northwind.example";
const CLIENT: &str = "11111111-1111-1111-1111-111111111111";

pub fn run() -> Option<Summary> {
    let n: usize = std::env::var("KEYWARD_BENCH_DETECTION_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let groups_n = (n / 50).max(4);
    let g = Graph::new();
    let users = g.add_users("user", "bench.example", n);
    for i in 0..groups_n {
        let gid = g.add_group(&format!("bulk-{i:04}"));
        let from = (i * 50) % n;
        g.add_members(&gid, &users[from..(from + 50).min(n)]);
    }
    let sb = support::Sandbox::example("quickstart");
    let secret = super::secret();
    g.entra().register(CLIENT, Some(&secret));
    std::fs::write(sb.root.join("client-secret"), &secret).unwrap();
    let fake = g.serve();
    let url = fake.url();
    sb.edit(
        "keyward.yaml",
        "    provider: file\n    path: .keyward/directory.json   # a local JSON file that stands in for a live directory\n",
        &format!(
            "    provider: graph\n    tenant: {TENANT}\n    clientId: {CLIENT}\n    clientSecret: ${{file:client-secret}}\n    endpoint: {url}\n    authority: {url}\n"
        ),
    );
    sb.run(&["apply", "{dir}", "--auto-approve"]).expect(0);

    let admin = g.portal("admin@northwind.example");
    let changes = super::PEOPLE
        .iter()
        .enumerate()
        .map(|(k, person)| {
            let (g, admin) = (&g, &admin);
            Change::new(
                format!("{person}: job title"),
                &[&format!("drift: update directory.user.{person}")],
                move || {
                    let id = g.user(&format!("{person}@{TENANT}")).unwrap()["id"].as_str().unwrap().to_string();
                    admin.update_user(&id, json!({"jobTitle": format!("Changed outside git {k}")}));
                },
            )
        })
        .collect();
    let summary = watch::measure(Case {
        title: format!("{n} users and {groups_n} groups beside the quick start (Graph fake)"),
        command: sb.cmd(&[]),
        dir: sb.root.clone(),
        target: "directory".into(),
        extra: vec![],
        changes,
    });
    drop(fake);
    Some(summary)
}
