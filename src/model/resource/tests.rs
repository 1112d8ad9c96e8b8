use super::*;

#[test]
fn bindings_are_single_key_maps() {
    let b: Binding = serde_yaml::from_str("{group: admins}").unwrap();
    assert_eq!(b, Binding::Group("admins".into()));
    let b: Binding = serde_yaml::from_str("appRole: {app: Portal, role: Approver}").unwrap();
    assert_eq!(b.label(), "appRole Portal/Approver");
    let e = serde_yaml::from_str::<Binding>("{grop: admins}").unwrap_err().to_string();
    assert!(e.contains("unknown variant `grop`"), "{e}");
    let e = serde_yaml::from_str::<Binding>("{group: a, securityRole: b}").unwrap_err().to_string();
    assert!(e.contains("remove `securityRole`"), "{e}");
    // JSON round trip, as plans store bindings.
    let json = serde_json::to_string(&Binding::SecurityRole("X".into())).unwrap();
    assert_eq!(json, r#"{"securityRole":"X"}"#);
}

#[test]
fn role_grants_take_both_shapes() {
    let g: Vec<RoleGrant> = serde_yaml::from_str("[a, {role: b, expires: 2027-01-31, ticket: T-1}]").unwrap();
    assert_eq!(g[0].role().as_str(), "a");
    assert_eq!(g[1].expires().unwrap().to_string(), "2027-01-31");
    let e = serde_yaml::from_str::<Vec<RoleGrant>>("[{role: b, expire: 2027-01-31}]").unwrap_err().to_string();
    assert!(e.contains("unknown field `expire`"), "{e}");
}

#[test]
fn a_team_binding_is_a_single_key_map() {
    let b: Binding = serde_yaml::from_str("{team: Key Accounts}").unwrap();
    assert_eq!(b, Binding::Team("Key Accounts".into()));
    assert_eq!(
        (b.label(), b.kind().to_string(), b.object_name()),
        ("team Key Accounts".into(), "team".into(), "Key Accounts".into())
    );
    assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"team":"Key Accounts"}"#);
    let e = serde_yaml::from_str::<Binding>("{teams: x}").unwrap_err().to_string();
    assert!(e.contains("securityRole or team") || e.contains("`team`"), "{e}");
}

#[test]
fn a_group_team_binding_names_its_group_and_business_unit() {
    let b: Binding = serde_yaml::from_str("{groupTeam: {group: Key Accounts EMEA, businessUnit: Sales}}").unwrap();
    assert_eq!(
        (b.label(), b.kind().to_string()),
        ("groupTeam Key Accounts EMEA in business unit Sales".into(), "groupTeam".into())
    );
    let Binding::GroupTeam(t) = &b else { panic!("{b:?}") };
    assert_eq!(t.security_roles, None);
    let b: Binding =
        serde_yaml::from_str("{groupTeam: {group: G, businessUnit: S, securityRoles: [Salesperson]}}").unwrap();
    assert_eq!(
        serde_json::to_string(&b).unwrap(),
        r#"{"groupTeam":{"group":"G","businessUnit":"S","securityRoles":["Salesperson"]}}"#
    );
    let e = serde_yaml::from_str::<Binding>("{groupTeam: {group: G, unit: S}}").unwrap_err().to_string();
    assert!(e.contains("unknown field `unit`"), "{e}");
}
