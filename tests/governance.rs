//! Governance through the library: CODEOWNERS from role owners, and the approval of privileged
//! changes between two configurations. The command line (`keyward codeowners`, `keyward
//! approvals verify`, `keyward certify`, `keyward elevate`) is tested in `governance_cli.rs`.

use std::path::{Path, PathBuf};

use keyward::governance::approvals::{self, Head, Status};
use keyward::governance::codeowners::{self, Layout};
use keyward::load::{self, Loaded};
use keyward::validate::{self, Validated};

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart")
}

/// A file of the quick start, and how to change its text.
type Edit<'a> = (&'a str, &'a dyn Fn(&str) -> String);

fn valid(loaded: Loaded) -> (Loaded, Validated) {
    let v = validate::validate(&loaded);
    assert!(!v.has_errors(), "{:#?}", v.diagnostics);
    (loaded, v)
}

/// The quick start with `edit` applied to the text of file `rel`.
fn quickstart_with(edits: &[Edit]) -> (Loaded, Validated) {
    let root = quickstart();
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(&root).unwrap().to_path_buf();
            if rel.to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                let mut text = std::fs::read_to_string(&p).unwrap();
                for (file, edit) in edits {
                    if rel == Path::new(file) {
                        text = edit(&text);
                    }
                }
                files.push((rel, text.into_bytes()));
            }
        }
    }
    valid(load::load_files(&root, files).unwrap())
}

#[test]
fn codeowners_routes_files_whose_roles_share_owners_and_explains_the_rest() {
    let (loaded, v) = valid(load::load_dir(&quickstart()).unwrap());
    let state = v.state.as_ref().unwrap();
    let layout = Layout { prefix: "examples/quickstart/", codeowners_path: ".github/CODEOWNERS" };
    let co = codeowners::build(state, &loaded, &v.origins, &layout);
    let text = co.render();
    // roles/it.yaml and the users holding it-admin have the same owners: routed to them.
    assert!(text.contains("\n/examples/quickstart/roles/it.yaml @afuller @sbuchanan\n"), "{text}");
    assert!(text.contains("\n/examples/quickstart/users/it.yaml @afuller @sbuchanan\n"), "{text}");
    // roles/finance.yaml defines roles owned by laura and by nancy: not routed, explained.
    assert!(!text.contains("/examples/quickstart/roles/finance.yaml "), "{text}");
    assert!(co.unrouted.iter().any(|u| u.subject == "roles/finance.yaml" && u.why.contains("different owners")));
    // The folder, keyward.yaml and CODEOWNERS itself belong to the default owners, the
    // folder first so that the specific lines after it win.
    assert_eq!(co.rules[0].pattern, "/examples/quickstart/");
    assert!(text.contains("\n/examples/quickstart/keyward.yaml @northwind/security\n"), "{text}");
    assert!(text.ends_with("/.github/CODEOWNERS @northwind/security\n"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn a_path_codeowners_cannot_name_is_explained_not_written() {
    let root = quickstart();
    let loaded = load::load_dir(&root).unwrap();
    let mut files: Vec<(PathBuf, Vec<u8>)> =
        loaded.files.iter().map(|f| (f.path.clone(), f.text.clone().into_bytes())).collect();
    for f in &mut files {
        if f.0 == Path::new("roles/it.yaml") {
            f.0 = PathBuf::from("roles/it[admin].yaml");
        }
    }
    let (loaded, v) = valid(load::load_files(&root, files).unwrap());
    let co = codeowners::build(
        v.state.as_ref().unwrap(),
        &loaded,
        &v.origins,
        &Layout { prefix: "", codeowners_path: ".github/CODEOWNERS" },
    );
    assert!(!co.render().contains("it[admin]\n"), "{}", co.render());
    assert!(co.unrouted.iter().any(|u| u.subject == "roles/it[admin].yaml"), "{:?}", co.unrouted);
}

fn at(s: &str) -> keyward::model::Timestamp {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Verifies the quick start changed by `edits` against the quick start as it is.
fn verify(edits: &[Edit], approvers: &[&str]) -> approvals::Verdict {
    let (_, base) = valid(load::load_dir(&quickstart()).unwrap());
    let (loaded, head) = quickstart_with(edits);
    let base = base.state.as_ref().unwrap();
    let given: Vec<String> = approvers.iter().map(|s| s.to_string()).collect();
    let approvers = approvals::resolve(base, &given, "command-line");
    let head = Head { state: head.state.as_ref().unwrap(), loaded: &loaded, origins: &head.origins };
    approvals::verify(base, "main", &head, approvers, vec![], at("2026-11-28T12:00:00Z"))
}

fn grant_finance_admin_to_yusuf(text: &str) -> String {
    text.replace(
        "roles: [gl-accountant]",
        "roles:\n  - gl-accountant\n  - {role: finance-admin, expires: 2027-01-31, reason: Year-end close}",
    )
}

#[test]
fn a_privileged_grant_needs_an_owner_who_is_not_the_grantee() {
    let edit: &dyn Fn(&str) -> String = &grant_finance_admin_to_yusuf;
    let by_owner = verify(&[("users/finance.yaml", edit)], &["lcallahan"]);
    assert_eq!(by_owner.changes.len(), 1, "{by_owner:#?}");
    let c = &by_owner.changes[0];
    assert_eq!((c.role.as_str(), c.status), ("finance-admin", Status::Approved));
    assert_eq!(c.approved_by.iter().map(|n| n.as_str()).collect::<Vec<_>>(), ["laura.callahan"]);
    assert!(by_owner.approved());
    let at = c.location.as_ref().unwrap();
    assert_eq!((at.file.to_str().unwrap(), at.line), ("users/finance.yaml", 49), "{at:?}");

    let by_other = verify(&[("users/finance.yaml", edit)], &["ndavolio", "someone-else"]);
    assert_eq!(by_other.changes[0].status, Status::MissingOwner);
    assert!(by_other.approvers.iter().any(|a| a.given == "someone-else" && a.user.is_none()));
    let f = approvals::findings(&by_other);
    assert_eq!(f[0].rule, "approval.missing-owner");
    assert!(f[0].message.contains("gives finance-admin to user yusuf.demir until 2027-01-31"), "{}", f[0].message);

    let nobody = verify(&[("users/finance.yaml", edit)], &[]);
    assert_eq!(nobody.changes[0].status, Status::MissingOwner);
}

#[test]
fn an_owner_granting_themselves_needs_another_owner() {
    // steven.buchanan owns it-admin and already holds it: extending his own grant.
    let edit: &dyn Fn(&str) -> String = &|t: &str| t.replacen("expires: 2027-03-31", "expires: 2027-09-30", 1);
    let text = std::fs::read_to_string(quickstart().join("users/it.yaml")).unwrap();
    assert!(text.contains("expires: 2027-03-31"), "the quick start changed; update this test:\n{text}");
    let own = verify(&[("users/it.yaml", edit)], &["sbuchanan"]);
    assert_eq!(own.changes.len(), 1, "{own:#?}");
    assert_eq!(own.changes[0].status, Status::SelfApproval, "{own:#?}");
    assert_eq!(approvals::findings(&own)[0].rule, "approval.self-approval");
    let other = verify(&[("users/it.yaml", edit)], &["sbuchanan", "afuller"]);
    assert_eq!(other.changes[0].status, Status::Approved);
    assert_eq!(other.changes[0].approved_by.iter().map(|n| n.as_str()).collect::<Vec<_>>(), ["andrew.fuller"]);
}

#[test]
fn owners_come_from_the_base_revision() {
    // The change makes yusuf an owner of finance-admin and grants it to him; his own approval,
    // and that of a login the change gives laura, count for nothing.
    let roles: &dyn Fn(&str) -> String = &|t: &str| t.replacen("owners: [laura.callahan]", "owners: [yusuf.demir]", 1);
    let users: &dyn Fn(&str) -> String = &|t: &str| {
        grant_finance_admin_to_yusuf(t)
            .replace("github: lcallahan", "github: mallory")
            .replace("employeeId: \"E1014\"", "employeeId: \"E1014\"\ngithub: yusuf-d")
    };
    let v = verify(&[("roles/finance.yaml", roles), ("users/finance.yaml", users)], &["yusuf-d", "mallory"]);
    let statuses: Vec<(approvals::ChangeKind, Status)> = v.changes.iter().map(|c| (c.kind, c.status)).collect();
    assert!(statuses.contains(&(approvals::ChangeKind::Grant, Status::MissingOwner)), "{v:#?}");
    // The owner change itself is a change to a privileged role, for its base owners to approve.
    assert!(statuses.contains(&(approvals::ChangeKind::Role, Status::MissingOwner)), "{v:#?}");
    assert!(!v.approved());
}

#[test]
fn re_pointing_an_account_or_enabling_it_counts_as_a_grant() {
    let edit: &dyn Fn(&str) -> String =
        &|t: &str| t.replace("userName: michael.suyama@northwind.example", "userName: mallory@northwind.example");
    let v = verify(&[("users/it.yaml", edit)], &[]);
    assert_eq!(v.changes.len(), 1, "{v:#?}");
    assert_eq!(v.changes[0].kind, approvals::ChangeKind::Holder);
    assert!(v.changes[0].description.contains("from account michael.suyama@northwind.example to mallory"));
}

#[test]
fn unprivileged_grants_and_revocations_need_no_approval() {
    let edit: &dyn Fn(&str) -> String =
        &|t: &str| t.replace("roles: [gl-accountant]", "roles: [gl-accountant, ap-clerk]");
    assert!(verify(&[("users/finance.yaml", edit)], &[]).changes.is_empty());
    let revoke: &dyn Fn(&str) -> String = &|t: &str| {
        let start = t.find("  - role: finance-admin").unwrap();
        let end = t[start..].find("ticket: CHG-2041\n").unwrap() + start + "ticket: CHG-2041\n".len();
        format!("{}{}", &t[..start], &t[end..])
    };
    let v = verify(&[("users/finance.yaml", revoke)], &[]);
    assert!(v.changes.is_empty(), "{v:#?}");
}

#[test]
fn rego_policies_see_who_approved_as_input_approvals() {
    let edit: &dyn Fn(&str) -> String = &grant_finance_admin_to_yusuf;
    let verdict = verify(&[("users/finance.yaml", edit)], &["lcallahan"]);
    let json = serde_json::to_value(&verdict).unwrap();
    assert_eq!(json["changes"][0]["approvedBy"], serde_json::json!(["laura.callahan"]));
    assert_eq!(json["approvers"][0]["user"], "laura.callahan");

    // A policy of the team's own: finance-admin grants need two approvers.
    let policy = r#"package keyward.two_approvers

deny contains msg if {
    some c in input.approvals.changes
    c.role == "finance-admin"
    count(input.approvals.approvers) < 2
    msg := sprintf("%s: finance-admin needs two approvers", [c.description])
}
"#;
    let (loaded, _) = quickstart_with(&[("users/finance.yaml", edit)]);
    let mut files: Vec<(PathBuf, Vec<u8>)> =
        loaded.files.iter().map(|f| (f.path.clone(), f.text.clone().into_bytes())).collect();
    files.push((PathBuf::from("policies/two-approvers.rego"), policy.as_bytes().to_vec()));
    let (loaded, v) = valid(load::load_files(&quickstart(), files).unwrap());
    let state = v.state.as_ref().unwrap();
    let now = at("2026-11-28T12:00:00Z");
    let mut ctx = keyward::policy::PolicyContext::offline(state, &loaded, &v.origins, now);
    ctx.options.builtin = false;
    let findings = keyward::policy::evaluate_with_approvals(&ctx, Some(&json));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].rule, "rego.two_approvers");
    assert!(findings[0].message.contains("gives finance-admin to user yusuf.demir"), "{}", findings[0].message);
    // Without approvals in the input, the policy has nothing to look at.
    assert!(keyward::policy::evaluate(&ctx).is_empty());
}

/// Fills in a reviewer's decision on the line about `holder`, as a person would in an editor.
fn decide(text: &str, holder: &str, decision: &str, reason: Option<&str>) -> String {
    let start = text.find(&format!("- user: {holder}\n")).unwrap_or_else(|| panic!("no line for {holder}:\n{text}"));
    let at = start + text[start..].find("  decision:").expect("a decision field");
    let end = at + text[at..].find('\n').unwrap();
    let mut out = format!("{}  decision: {decision}{}", &text[..at], &text[end..]);
    if let Some(r) = reason {
        let at = out[start..].find("  reason:").unwrap() + start;
        let end = at + out[at..].find('\n').unwrap();
        out = format!("{}  reason: {r}{}", &out[..at], &out[end..]);
    }
    out
}

#[test]
fn a_campaign_opens_for_each_owner_and_closes_into_revocations_and_evidence() {
    use keyward::governance::campaign::{self, CloseInput, OpenInput, Outcome};
    use keyward::model::{CampaignScope, Date, Name, certification::Unreviewed};
    let root = quickstart();
    let (loaded, v) = valid(load::load_dir(&root).unwrap());
    let state = v.state.as_ref().unwrap();
    let now = at("2026-11-28T12:00:00Z");
    let live = Default::default();
    let review = keyward::review::review(&keyward::review::ReviewInput {
        desired: state,
        live: &live,
        findings: &[],
        records: &[],
        now,
        within: keyward::model::Duration::parse("30d").unwrap(),
        undelivered: &[],
    });
    let opened = campaign::open(&OpenInput {
        name: Name::new("2026-q4").unwrap(),
        scope: CampaignScope::Privileged,
        due: Date::parse("2026-12-31").unwrap(),
        unreviewed: Unreviewed::Keep,
        description: None,
        state,
        loaded: &loaded,
        origins: &v.origins,
        live: &live,
        sign_ins: &Default::default(),
        review: &review.items,
        blame: &Default::default(),
        applied: &Default::default(),
        now,
        commit: Some("0123abcd".into()),
    })
    .unwrap();
    assert!(opened.unassigned.is_empty(), "{:?}", opened.unassigned);
    let files: Vec<(String, Vec<String>)> = opened
        .certifications
        .iter()
        .map(|c| {
            let lines = c.lines.iter().map(|l| format!("{}/{}", l.holder().unwrap(), l.role)).collect();
            (campaign::certification_path(c).display().to_string(), lines)
        })
        .collect();
    // Nobody certifies their own access: steven's it-admin goes to the other owner only.
    assert_eq!(
        files,
        [
            (
                "reviews/2026-q4/andrew.fuller.yaml".to_string(),
                vec!["michael.suyama/it-admin".to_string(), "steven.buchanan/it-admin".to_string()]
            ),
            ("reviews/2026-q4/laura.callahan.yaml".to_string(), vec!["nancy.davolio/finance-admin".to_string()]),
            ("reviews/2026-q4/steven.buchanan.yaml".to_string(), vec!["michael.suyama/it-admin".to_string()]),
        ]
    );
    let nancy = &opened.certifications[1].lines[0];
    assert_eq!(nancy.flags, [keyward::model::Flag::SodException]);
    assert!(nancy.evidence.sod_exceptions[0].starts_with("journal-entry-vs-posting: Three-person finance team"));

    // The files as written, read back as part of the configuration.
    let mut texts: Vec<(PathBuf, String)> = loaded.files.iter().map(|f| (f.path.clone(), f.text.clone())).collect();
    texts.push((
        campaign::folder(&opened.campaign.name).join("campaign.yaml"),
        campaign::render_campaign(&opened.campaign),
    ));
    for c in &opened.certifications {
        texts.push((campaign::certification_path(c), campaign::render_certification(c, &opened.campaign)));
    }
    let laura = texts.iter().find(|(p, _)| p.ends_with("laura.callahan.yaml")).unwrap();
    insta::assert_snapshot!("certification_file", &laura.1);
    let reload = |texts: &[(PathBuf, String)]| {
        valid(
            load::load_files(&root, texts.iter().map(|(p, t)| (p.clone(), t.clone().into_bytes())).collect()).unwrap(),
        )
    };
    let (loaded2, v2) = reload(&texts);
    assert_eq!(v2.state.as_ref().unwrap().certifications.len(), 3);
    let name = Name::new("2026-q4").unwrap();
    let st = campaign::status(v2.state.as_ref().unwrap(), &name, now).unwrap();
    assert_eq!((st.assignments, st.decided, st.pending), (3, 0, 3));

    // Closing before the due date with lines undecided is refused.
    let close = |loaded: &Loaded, v: &Validated, early: bool| {
        campaign::close(&CloseInput {
            name: &name,
            state: v.state.as_ref().unwrap(),
            loaded,
            origins: &v.origins,
            blame: &Default::default(),
            now,
            commit: Some("4567cdef".into()),
            early,
        })
    };
    assert!(matches!(close(&loaded2, &v2, false), Err(campaign::CampaignError::NotDue { pending: 3, .. })));

    // Two reviewers decide: laura revokes nancy's finance-admin; andrew keeps both it-admins.
    for (path, text) in texts.iter_mut() {
        if path.ends_with("laura.callahan.yaml") {
            *text = decide(text, "nancy.davolio", "revoke", Some("The month-end close moves to the new controller"));
        }
        if path.ends_with("andrew.fuller.yaml") {
            *text = decide(&decide(text, "steven.buchanan", "keep", None), "michael.suyama", "keep", None);
        }
    }
    let (loaded3, v3) = reload(&texts);
    let st = campaign::status(v3.state.as_ref().unwrap(), &name, now).unwrap();
    assert_eq!((st.decided, st.pending), (3, 0), "{st:#?}");
    let closing = close(&loaded3, &v3, false).unwrap();
    let outcomes: Vec<(String, Outcome)> =
        closing.evidence.assignments.iter().map(|a| (format!("{}/{}", a.holder.name(), a.role), a.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("michael.suyama/it-admin".to_string(), Outcome::Kept),
            ("nancy.davolio/finance-admin".to_string(), Outcome::Revoked),
            ("steven.buchanan/it-admin".to_string(), Outcome::Kept),
        ]
    );
    let changed: Vec<&Path> = closing.files.iter().map(|(p, _)| p.as_path()).collect();
    assert_eq!(changed, [Path::new("users/finance.yaml"), Path::new("reviews/2026-q4/campaign.yaml")]);
    let finance = &closing.files[0].1;
    assert!(!finance.contains("finance-admin"), "{finance}");
    assert!(finance.contains("  - gl-accountant\n"), "{finance}");
    assert!(closing.files[1].1.contains("closed: 2026-11-28T12:00:00Z"));
    // Closed, the configuration still validates, and the campaign is not closed twice.
    for (p, t) in &closing.files {
        texts.iter_mut().find(|(q, _)| q == p).unwrap().1 = t.clone();
    }
    let (loaded4, v4) = reload(&texts);
    assert!(matches!(close(&loaded4, &v4, true), Err(campaign::CampaignError::Closed { .. })));
    assert_eq!(closing.evidence.summary.revoked, 1);
    assert_eq!(closing.evidence.closed_at_commit.as_deref(), Some("4567cdef"));
    // The evidence reads back as written (`keyward report` reads it).
    let json = serde_json::to_string_pretty(&closing.evidence).unwrap();
    assert_eq!(serde_json::from_str::<campaign::EvidenceFile>(&json).unwrap(), closing.evidence);
}
