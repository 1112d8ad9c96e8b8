use super::bulk_requests::{BulkOp, match_outcomes};
use super::*;

fn create(name: &str, manager: Option<&str>) -> Work {
    Work {
        unit: Unit::CreateUser {
            user_name: name.into(),
            attrs: UserAttrs { manager: manager.map(str::to_string), ..Default::default() },
            active: true,
        },
        changes: vec![],
    }
}

#[test]
fn managers_are_created_first() {
    // d → c → b → a (a at the top), e reports to someone not being created, f and g form a cycle.
    let works = vec![
        create("d", Some("C")),
        create("a", None),
        create("b", Some("a")),
        create("c", Some("b")),
        create("e", Some("elsewhere")),
        create("f", Some("g")),
        create("g", Some("f")),
        Work { unit: Unit::DeleteUser { user: "x".into() }, changes: vec![] },
    ];
    let levels = creation_levels(&works);
    assert_eq!(&levels[..5], &[3, 0, 1, 2, 0]);
    // A cycle is broken: one of the two goes first.
    assert_eq!(levels[5].min(levels[6]), 0);
    assert_eq!(levels[5].max(levels[6]), 1);
    assert_eq!(levels[7], 0);
}

#[test]
fn membership_noops() {
    let e = |status: u16, t: Option<&str>| ScimError::Status {
        dialect: Dialect::Scim,
        status,
        code: t.map(str::to_string),
        message: None,
        request_id: None,
    };
    assert!(is_membership_noop(&e(409, Some("uniqueness")), true));
    assert!(!is_membership_noop(&e(409, None), true));
    assert!(!is_membership_noop(&e(409, Some("uniqueness")), false));
    assert!(is_membership_noop(&e(400, Some("noTarget")), false));
    assert!(!is_membership_noop(&e(400, Some("invalidValue")), false));
    assert!(!is_membership_noop(&e(500, None), true));
}

#[test]
fn member_operations() {
    let ops = member_ops(&["a".into(), "b".into()], &["c\"d".into()], false);
    assert_eq!(
        ops,
        vec![
            json!({"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]}),
            json!({"op": "remove", "path": "members[value eq \"c\\\"d\"]"}),
        ]
    );
    assert_eq!(
        member_ops(&[], &["c".into(), "d".into()], true),
        vec![json!({"op": "remove", "path": "members", "value": [{"value": "c"}, {"value": "d"}]})]
    );
}

#[test]
fn query_strings_are_percent_encoded() {
    assert_eq!(
        query(&[("filter", r#"userName eq "a+b c""#), ("count", "10")]),
        "filter=userName%20eq%20%22a%2Bb%20c%22&count=10"
    );
}

fn op(method: &str, bulk_id: Option<&str>, path: &str) -> (Work, BulkOp) {
    let mut v = json!({"method": method, "path": path});
    if let Some(b) = bulk_id {
        v["bulkId"] = json!(b);
    }
    (
        Work { unit: Unit::DeleteUser { user: "x".into() }, changes: vec![] },
        BulkOp { bytes: serde_json::to_vec(&v).unwrap(), bulk_id: bulk_id.map(str::to_string) },
    )
}

#[test]
fn bulk_outcomes_are_matched_to_operations() {
    let batch =
        vec![op("POST", Some("u1"), "/Users"), op("PATCH", None, "/Groups/g1"), op("POST", Some("u2"), "/Users")];
    // In order, as scim2-server answers.
    let inorder = vec![
        json!({"method": "POST", "bulkId": "u1", "status": "201"}),
        json!({"method": "PATCH", "location": "http://x/v2/Groups/g1", "status": "200"}),
        json!({"method": "POST", "bulkId": "u2", "status": {"code": "409"}}),
    ];
    let m = match_outcomes(&batch, &inorder);
    assert_eq!(
        m.iter().map(|o| wire::bulk_status(o.unwrap())).collect::<Vec<_>>(),
        vec![Some(201), Some(200), Some(409)]
    );
    // Shuffled and one missing: matched by bulkId and location.
    let shuffled = vec![inorder[2].clone(), inorder[1].clone()];
    let m = match_outcomes(&batch, &shuffled);
    assert!(m[0].is_none());
    assert_eq!(wire::bulk_status(m[1].unwrap()), Some(200));
    assert_eq!(wire::bulk_status(m[2].unwrap()), Some(409));
}

/// A creation answered with an id that would change later request paths gives no id.
#[test]
fn a_created_id_that_would_change_a_path_is_not_taken() {
    let reply = |id: &str| Reply { status: 201, body: Some(serde_json::json!({"id": id})), ..Default::default() };
    assert_eq!(created_id(&reply("2819c223")).as_deref(), Some("2819c223"));
    for id in ["..", ".", "a/b", "a?b", ""] {
        assert_eq!(created_id(&reply(id)), None, "{id:?}");
    }
    let located = Reply { status: 201, location: Some("https://x/v2/Users/%2E%2E".into()), ..Default::default() };
    assert_eq!(created_id(&located), None);
}
