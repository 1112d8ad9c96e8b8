//! Graph's JSON shapes, converted to and from the model at the edge.
//!
//! Field mapping of a person (Graph `user`, reference sheet §2.1): userName ↔
//! `userPrincipalName`, displayName, givenName, familyName ↔ `surname`, email ↔ `mail`,
//! department, jobTitle, employeeId, active ↔ `accountEnabled`, manager ↔ the `manager`
//! navigation property (an id on the wire, a userName in the model), last sign-in ↔
//! `signInActivity.lastSignInDateTime`.

use serde_json::{Map, Value, json};

use crate::model::{AuthMethod, CredentialType, LiveCredential, Timestamp, UserAttrs, UserField};
pub use crate::remote::entra::{RandomError, random_guid};

/// Why a user as Graph sent it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("a user without an id")]
    UserWithoutId,
    #[error("user {id} has no userPrincipalName")]
    NoUserPrincipalName { id: String },
}

/// The user properties read (`$select`); `signInActivity` is read separately, as it limits
/// pages to 500 and needs a licence.
pub const USER_SELECT: &str = "id,userPrincipalName,displayName,givenName,surname,mail,department,jobTitle,employeeId,accountEnabled,onPremisesSyncEnabled";

/// The group properties read: a group's kind of membership (`groupTypes` containing
/// `DynamicMembership`, with its `membershipRule`) and whether on-premises masters it.
pub const GROUP_SELECT: &str = "id,displayName,groupTypes,membershipRule,onPremisesSyncEnabled";

/// Where a user synchronized from on-premises is mastered, for messages.
pub const ON_PREMISES: &str = "on-premises Active Directory";

/// The tag that marks an application as keyward's service account `NAME`: `keyward:NAME`.
pub const SERVICE_ACCOUNT_TAG: &str = "keyward:";

/// A user as read.
#[derive(Debug, Clone)]
pub struct WireUser {
    pub id: String,
    pub user_name: String,
    pub attrs: UserAttrs,
    pub active: bool,
    /// The manager's id.
    pub manager_id: Option<String>,
    /// Synchronized from on-premises Active Directory (`onPremisesSyncEnabled: true`): Graph
    /// refuses changes to every attribute keyward manages on it, its manager, its
    /// `accountEnabled` and its deletion (docs/reference/graph.md §2.1).
    pub synced: bool,
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty()).map(str::to_string)
}

/// The Graph property that holds a user field (the manager is a reference, not a property).
pub fn user_property(f: UserField) -> Option<&'static str> {
    Some(match f {
        UserField::DisplayName => "displayName",
        UserField::GivenName => "givenName",
        UserField::FamilyName => "surname",
        UserField::Email => "mail",
        UserField::Department => "department",
        UserField::JobTitle => "jobTitle",
        UserField::EmployeeId => "employeeId",
        UserField::Manager => return None,
    })
}

impl WireUser {
    pub fn parse(v: &Value) -> Result<WireUser, WireError> {
        let id = s(v, "id").ok_or(WireError::UserWithoutId)?;
        let user_name = s(v, "userPrincipalName").ok_or_else(|| WireError::NoUserPrincipalName { id: id.clone() })?;
        let mut attrs = UserAttrs::default();
        for f in UserField::ALL {
            if let Some(p) = user_property(f) {
                *attrs.slot(f) = s(v, p);
            }
        }
        Ok(WireUser {
            id,
            user_name,
            attrs,
            active: v.get("accountEnabled").and_then(Value::as_bool).unwrap_or(true),
            manager_id: v.get("manager").and_then(|m| s(m, "id")),
            synced: synced(v),
        })
    }
}

/// Whether a user or group is synchronized from on-premises (`onPremisesSyncEnabled: true`;
/// `null` or absent for cloud objects).
pub fn synced(v: &Value) -> bool {
    v.get("onPremisesSyncEnabled").and_then(Value::as_bool) == Some(true)
}

/// What decides a group's members when keyward cannot: its membership rule (`groupTypes`
/// containing `DynamicMembership`), or on-premises synchronization.
pub fn members_decided_by(g: &Value) -> Option<String> {
    let dynamic = g
        .get("groupTypes")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|x| x.as_str() == Some("DynamicMembership")));
    if dynamic {
        return Some(match s(g, "membershipRule") {
            Some(rule) => format!("its membership rule `{rule}`"),
            None => "its membership rule".to_string(),
        });
    }
    synced(g).then(|| ON_PREMISES.to_string())
}

/// The properties to PATCH for the fields `set` sets (the manager excluded).
pub fn user_patch(set: &UserAttrs) -> Map<String, Value> {
    let mut m = Map::new();
    for f in UserField::ALL {
        if let (Some(p), Some(v)) = (user_property(f), set.get(f)) {
            // `""` clears the property: Graph takes `null` for that.
            m.insert(p.into(), if v.is_empty() { Value::Null } else { json!(v) });
        }
    }
    m
}

/// `mailNickname` from a userPrincipalName or a group name: the characters Graph allows
/// (ASCII letters, digits and `.-_`), at most 64.
pub fn mail_nickname(s: &str) -> String {
    let local = s.split('@').next().unwrap_or(s);
    let n: String =
        local.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).take(64).collect();
    if n.is_empty() { "keyward".into() } else { n }
}

/// `signInActivity.lastSignInDateTime` (or the last successful one).
pub fn last_sign_in(v: &Value) -> Option<Timestamp> {
    let a = v.get("signInActivity")?;
    let t = a
        .get("lastSignInDateTime")
        .and_then(Value::as_str)
        .or_else(|| a.get("lastSuccessfulSignInDateTime").and_then(Value::as_str))?;
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| d.with_timezone(&chrono::Utc))
}

/// The sign-in method of a registered authentication method (§2.6, `GET
/// /users/{id}/authentication/methods`), by its `@odata.type`; `None` for a type keyward does
/// not model. A phone method counts as `sms` (its voice use is not told apart).
pub fn registered_method(v: &Value) -> Option<AuthMethod> {
    let t = v.get("@odata.type")?.as_str()?.strip_prefix("#microsoft.graph.")?;
    Some(match t {
        "passwordAuthenticationMethod" => AuthMethod::Password,
        "fido2AuthenticationMethod" => AuthMethod::Fido2,
        "microsoftAuthenticatorAuthenticationMethod" => AuthMethod::MicrosoftAuthenticator,
        "phoneAuthenticationMethod" => AuthMethod::Sms,
        "emailAuthenticationMethod" => AuthMethod::Email,
        "temporaryAccessPassAuthenticationMethod" => AuthMethod::TemporaryAccessPass,
        "softwareOathAuthenticationMethod" => AuthMethod::SoftwareOath,
        "windowsHelloForBusinessAuthenticationMethod" => AuthMethod::WindowsHelloForBusiness,
        "x509CertificateAuthenticationMethod" => AuthMethod::X509Certificate,
        _ => return None,
    })
}

/// The method configuration id (§2.6) of a sign-in method, and its `@odata.type`. Password and
/// Windows Hello for Business are not configured in the authentication methods policy.
pub fn method_config(m: AuthMethod) -> Option<(&'static str, &'static str)> {
    Some(match m {
        AuthMethod::Fido2 => ("Fido2", "fido2AuthenticationMethodConfiguration"),
        AuthMethod::MicrosoftAuthenticator => {
            ("MicrosoftAuthenticator", "microsoftAuthenticatorAuthenticationMethodConfiguration")
        }
        AuthMethod::Sms => ("Sms", "smsAuthenticationMethodConfiguration"),
        AuthMethod::Voice => ("Voice", "voiceAuthenticationMethodConfiguration"),
        AuthMethod::Email => ("Email", "emailAuthenticationMethodConfiguration"),
        AuthMethod::TemporaryAccessPass => {
            ("TemporaryAccessPass", "temporaryAccessPassAuthenticationMethodConfiguration")
        }
        AuthMethod::SoftwareOath => ("SoftwareOath", "softwareOathAuthenticationMethodConfiguration"),
        AuthMethod::X509Certificate => ("X509Certificate", "x509CertificateAuthenticationMethodConfiguration"),
        AuthMethod::Password | AuthMethod::WindowsHelloForBusiness => return None,
    })
}

/// The methods the policy does not govern, and how they stand: a password always exists, and
/// Windows Hello for Business is governed by device policy (assumed enabled).
pub const UNGOVERNED_METHODS: [AuthMethod; 2] = [AuthMethod::Password, AuthMethod::WindowsHelloForBusiness];

/// The sign-in method of a method configuration id.
pub fn method_of_config(id: &str) -> Option<AuthMethod> {
    [
        AuthMethod::Fido2,
        AuthMethod::MicrosoftAuthenticator,
        AuthMethod::Sms,
        AuthMethod::Voice,
        AuthMethod::Email,
        AuthMethod::TemporaryAccessPass,
        AuthMethod::SoftwareOath,
        AuthMethod::X509Certificate,
    ]
    .into_iter()
    .find(|m| method_config(*m).is_some_and(|(c, _)| c.eq_ignore_ascii_case(id)))
}

/// A random initial password: 24 characters from upper and lower case letters, digits and
/// symbols, at least one of each (Entra's complexity rule). Never printed, logged or stored.
pub fn random_password() -> Result<crate::model::Secret<String>, RandomError> {
    use ring::rand::SecureRandom as _;
    const SETS: [&[u8]; 4] = [b"ABCDEFGHJKLMNPQRSTUVWXYZ", b"abcdefghijkmnopqrstuvwxyz", b"23456789", b"!#%+-=?@_"];
    let rng = ring::rand::SystemRandom::new();
    let mut bytes = [0u8; 48];
    rng.fill(&mut bytes).map_err(|_| RandomError)?;
    let all: Vec<u8> = SETS.concat();
    let mut out: Vec<u8> = Vec::with_capacity(24);
    for (i, set) in SETS.iter().enumerate() {
        out.push(set[bytes[i] as usize % set.len()]);
    }
    for b in &bytes[4..24] {
        out.push(all[*b as usize % all.len()]);
    }
    // Shuffle so the classes are not in fixed places (Fisher-Yates on the remaining bytes).
    for i in (1..out.len()).rev() {
        let j = bytes[24 + (i % 24)] as usize % (i + 1);
        out.swap(i, j);
    }
    Ok(crate::model::Secret::new(String::from_utf8(out).expect("ASCII")))
}

/// Whether a userPrincipalName is in one of the federated domains (lower case).
pub fn is_federated(user_name: &str, federated_domains: &[String]) -> bool {
    user_name.rsplit_once('@').is_some_and(|(_, d)| federated_domains.iter().any(|f| f.eq_ignore_ascii_case(d)))
}

/// The application properties read for service accounts.
pub const APPLICATION_SELECT: &str = "id,appId,displayName,description,tags,passwordCredentials,keyCredentials";

/// The `type` of a certificate key credential (§2.5).
pub const CERTIFICATE_KEY_TYPE: &str = "AsymmetricX509Cert";

/// An RFC 3339 date-time, whole seconds, `Z`.
pub fn date_time(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_time(v: &Value, k: &str) -> Option<Timestamp> {
    let s = v.get(k).and_then(Value::as_str)?;
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&chrono::Utc))
}

/// A certificate's thumbprint from a key credential: `customKeyIdentifier` as upper-case hex
/// (Graph serialises the binary identifier as base64; hex is accepted too), or else the SHA-1
/// of `key` where it was returned.
fn key_thumbprint(v: &Value) -> Option<String> {
    use base64::Engine as _;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    if let Some(c) = v.get("customKeyIdentifier").and_then(Value::as_str).filter(|c| !c.is_empty()) {
        if c.len() == 40 && c.chars().all(|x| x.is_ascii_hexdigit()) {
            return Some(c.to_ascii_uppercase());
        }
        if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(c)
            && b.len() == 20
        {
            return Some(hex(&b));
        }
    }
    let key = v.get("key").and_then(Value::as_str)?;
    let der = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
    Some(hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref()))
}

/// The credentials of an application (`passwordCredentials` and `keyCredentials`, §2.5) in the
/// model's terms. Entries without a `keyId` or with unreadable dates are left out (with the
/// reason), as are key credentials that are not certificates.
pub fn application_credentials(app: &Value) -> (Vec<LiveCredential>, Vec<String>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let lists = [(CredentialType::Secret, "passwordCredentials"), (CredentialType::Certificate, "keyCredentials")];
    for (kind, field) in lists {
        for c in app.get(field).and_then(Value::as_array).into_iter().flatten() {
            if kind == CredentialType::Certificate
                && c.get("type").and_then(Value::as_str).is_some_and(|t| t != CERTIFICATE_KEY_TYPE)
            {
                continue;
            }
            let (Some(id), Some(start), Some(end)) =
                (s(c, "keyId"), parse_time(c, "startDateTime"), parse_time(c, "endDateTime"))
            else {
                skipped.push(format!("a {field} entry without a keyId or readable dates"));
                continue;
            };
            out.push(LiveCredential {
                name: s(c, "displayName").unwrap_or_else(|| id.clone()),
                id,
                kind,
                start,
                end,
                thumbprint: if kind == CredentialType::Certificate { key_thumbprint(c) } else { None },
            });
        }
    }
    (out, skipped)
}

/// A new key credential as Graph takes it (§2.5): the public certificate, base64.
pub fn key_credential(der: &[u8], name: &str, start: Timestamp, end: Timestamp) -> Value {
    use base64::Engine as _;
    json!({
        "type": CERTIFICATE_KEY_TYPE,
        "usage": "Verify",
        "key": base64::engine::general_purpose::STANDARD.encode(der),
        "displayName": name,
        "startDateTime": date_time(start),
        "endDateTime": date_time(end),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_map_to_the_model() {
        let v = json!({"id": "1", "userPrincipalName": "ann@c.example", "displayName": "Ann", "surname": "Lee",
            "mail": "ann@c.example", "accountEnabled": false, "manager": {"id": "2"}, "jobTitle": null});
        let u = WireUser::parse(&v).unwrap();
        assert_eq!(u.attrs.family_name.as_deref(), Some("Lee"));
        assert_eq!(u.attrs.email.as_deref(), Some("ann@c.example"));
        assert_eq!(u.attrs.job_title, None);
        assert!(!u.active);
        assert_eq!(u.manager_id.as_deref(), Some("2"));
        let patch = user_patch(&UserAttrs {
            family_name: Some("Li".into()),
            manager: Some("bob".into()),
            ..Default::default()
        });
        assert_eq!(Value::Object(patch), json!({"surname": "Li"}));
    }

    #[test]
    fn users_without_an_id_or_a_user_principal_name_are_refused() {
        let e = WireUser::parse(&json!({"userPrincipalName": "ann@c.example"})).unwrap_err();
        assert_eq!(e.to_string(), "a user without an id");
        let e = WireUser::parse(&json!({"id": "1", "userPrincipalName": ""})).unwrap_err();
        assert_eq!(e, WireError::NoUserPrincipalName { id: "1".into() });
        assert_eq!(e.to_string(), "user 1 has no userPrincipalName");
    }

    #[test]
    fn passwords_are_random_and_complex() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_ne!(a.expose(), b.expose());
        let p = a.expose();
        assert_eq!(p.len(), 24);
        assert!(p.chars().any(|c| c.is_ascii_uppercase()) && p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()) && p.chars().any(|c| !c.is_ascii_alphanumeric()));
        assert_eq!(format!("{a:?}"), "(sensitive)");
    }

    #[test]
    fn application_credentials_map_to_the_model() {
        let app = json!({"passwordCredentials": [{"keyId": "p1", "displayName": "hook@2026-11-28", "hint": "abc",
                "startDateTime": "2026-11-28T12:00:00Z", "endDateTime": "2026-12-28T12:00:00.0000000Z", "secretText": null}],
            "keyCredentials": [
                {"keyId": "k1", "displayName": "cert@2026-11-28", "type": "AsymmetricX509Cert", "usage": "Verify",
                 "customKeyIdentifier": "q83vASNFZ4mrze8BI0VniavN7wE=", "key": null,
                 "startDateTime": "2026-11-28T12:00:00Z", "endDateTime": "2027-02-26T12:00:00Z"},
                {"keyId": "k2", "type": "Symmetric", "startDateTime": "2026-11-28T12:00:00Z", "endDateTime": "2027-02-26T12:00:00Z"},
                {"keyId": "k3", "type": "AsymmetricX509Cert", "startDateTime": "not a date", "endDateTime": "2027-02-26T12:00:00Z"}]});
        let (creds, skipped) = application_credentials(&app);
        assert_eq!(creds.len(), 2);
        assert_eq!(creds[0].kind, CredentialType::Secret);
        assert_eq!(creds[0].name, "hook@2026-11-28");
        assert_eq!(creds[0].thumbprint, None);
        assert_eq!(creds[1].id, "k1");
        assert_eq!(creds[1].thumbprint.as_deref(), Some("ABCDEF0123456789ABCDEF0123456789ABCDEF01"));
        assert_eq!(date_time(creds[1].end), "2027-02-26T12:00:00Z");
        assert_eq!(skipped.len(), 1);
        let g = random_guid().unwrap();
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "4");
    }

    #[test]
    fn method_configurations_round_trip() {
        for m in [AuthMethod::Fido2, AuthMethod::Sms, AuthMethod::MicrosoftAuthenticator] {
            assert_eq!(method_of_config(method_config(m).unwrap().0), Some(m));
        }
        assert_eq!(method_config(AuthMethod::Password), None);
        assert_eq!(mail_nickname("ann.lee+x@c.example"), "ann.leex");
        let fed = ["corp.example".to_string()];
        assert!(is_federated("ann@Corp.Example", &fed));
        assert!(!is_federated("ann@sub.corp.example", &fed));
        assert!(!is_federated("corp.example", &fed));
    }
}
