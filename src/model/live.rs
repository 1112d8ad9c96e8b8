//! Live state as read from a target, normalised by its provider into provider-neutral values.
//!
//! Providers own the wire formats; by the time data reaches this module it speaks keyward's
//! language: accounts keyed by userName (compared case-insensitively), bindings by
//! [`Binding`], members by the provider's account ids.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuthMethod, Binding, CredentialType, Timestamp};

/// The managed attributes of a person's account. `None` means "not set" (on the live side) or
/// "not managed" (on the desired side).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    /// The manager's userName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
}

/// The attributes in [`UserAttrs`], as data, so capabilities can list which a target stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UserField {
    DisplayName,
    GivenName,
    FamilyName,
    Email,
    Department,
    JobTitle,
    Manager,
    EmployeeId,
}

impl UserField {
    pub const ALL: [UserField; 8] = [
        UserField::DisplayName,
        UserField::GivenName,
        UserField::FamilyName,
        UserField::Email,
        UserField::Department,
        UserField::JobTitle,
        UserField::Manager,
        UserField::EmployeeId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserField::DisplayName => "displayName",
            UserField::GivenName => "givenName",
            UserField::FamilyName => "familyName",
            UserField::Email => "email",
            UserField::Department => "department",
            UserField::JobTitle => "jobTitle",
            UserField::Manager => "manager",
            UserField::EmployeeId => "employeeId",
        }
    }
}

impl UserAttrs {
    pub fn get(&self, f: UserField) -> Option<&String> {
        match f {
            UserField::DisplayName => self.display_name.as_ref(),
            UserField::GivenName => self.given_name.as_ref(),
            UserField::FamilyName => self.family_name.as_ref(),
            UserField::Email => self.email.as_ref(),
            UserField::Department => self.department.as_ref(),
            UserField::JobTitle => self.job_title.as_ref(),
            UserField::Manager => self.manager.as_ref(),
            UserField::EmployeeId => self.employee_id.as_ref(),
        }
    }

    pub fn slot(&mut self, f: UserField) -> &mut Option<String> {
        match f {
            UserField::DisplayName => &mut self.display_name,
            UserField::GivenName => &mut self.given_name,
            UserField::FamilyName => &mut self.family_name,
            UserField::Email => &mut self.email,
            UserField::Department => &mut self.department,
            UserField::JobTitle => &mut self.job_title,
            UserField::Manager => &mut self.manager,
            UserField::EmployeeId => &mut self.employee_id,
        }
    }

    /// Copies every field that `other` sets.
    pub fn overlay(&mut self, other: &UserAttrs) {
        for f in UserField::ALL {
            if let Some(v) = other.get(f) {
                *self.slot(f) = Some(v.clone());
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        UserField::ALL.iter().all(|f| self.get(*f).is_none())
    }
}

/// A person's account on a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveAccount {
    /// The provider's id for the account.
    pub id: String,
    pub user_name: String,
    pub attrs: UserAttrs,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sign_in: Option<Timestamp>,
    /// The sign-in methods the person has registered, where the target reports them (Graph,
    /// for the access review); `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_methods: Option<Vec<AuthMethod>>,
    /// The ETag or a digest of the account as read; used to refuse stale saved plans.
    pub fingerprint: String,
}

/// What a target says about licences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Licensing {
    /// What creating a person's account means for licences, as a plan note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_person: Option<String>,
    /// What creating a service account means for licences, as a plan note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_service_account: Option<String>,
    /// The licence each security role needs, by role name, where the target derives an
    /// account's licence from its roles (Finance & Operations `UserLicenseType`); roles that
    /// need none are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, String>,
}

/// What a target records about an account's licence (Dataverse `accessmode` and `islicensed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveLicence {
    /// How the account uses the target, as the target names it: `Read-Write`,
    /// `Non-interactive`, ….
    pub access_mode: String,
    /// Whether the account uses the target without a licence (non-interactive, administrative
    /// and support access modes).
    pub exempt: bool,
    /// Whether the target records a licence for the account.
    pub licensed: bool,
}

/// A group or role on a target, with its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveBinding {
    pub id: String,
    pub binding: Binding,
    /// Member account ids (people and service accounts). Ids keyward does not know are foreign
    /// members (nested groups, accounts of other systems) and are never touched.
    pub members: Vec<String>,
    pub fingerprint: String,
}

/// A credential on a service account. Never holds secret material.
///
/// Providers normalise their credentials into this: on Graph, `id` is the `keyId`, `name` the
/// `displayName` (keyward sets it to `NAME@YYYY-MM-DD` when it issues one), `start` / `end` the
/// `startDateTime` / `endDateTime`, and for key credentials `thumbprint` the certificate's
/// SHA-1 in upper-case hex (`customKeyIdentifier`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveCredential {
    pub id: String,
    /// The credential's display name; keyward names its own `NAME@STARTDATE`.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CredentialType,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
}

impl LiveCredential {
    /// Whether this is an instance of the declared credential `name`: keyward names its own
    /// `NAME@STARTDATE`; a credential called just `NAME` counts too (made by hand).
    pub fn instance_of(&self, name: &str) -> bool {
        self.name == name || self.name.strip_prefix(name).is_some_and(|rest| rest.starts_with('@'))
    }

    /// Whether keyward issued it, judged by its name: `NAME@YYYY-MM-DD`.
    pub fn issued_by_keyward(&self) -> bool {
        self.name
            .rsplit_once('@')
            .is_some_and(|(n, d)| !n.is_empty() && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
    }
}

/// A credential keyward issued but could not deliver to its sink: nobody holds its material,
/// so the next plan replaces it and removes it. Recorded by apply (never with the material).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UndeliveredCredential {
    pub target: String,
    /// The service account's name.
    pub account: String,
    /// The credential's id on the target.
    pub id: String,
    /// Its display name, for people reading the state file.
    pub name: String,
    pub issued: Timestamp,
}

impl UndeliveredCredential {
    /// Whether this record is about live credential `c` of service account `account` on
    /// `target`: by id, or, for an issue whose answer never came (no id), by its exact name.
    pub fn matches(&self, target: &str, account: &str, c: &LiveCredential) -> bool {
        self.target == target
            && self.account == account
            && if self.id.is_empty() { self.name == c.name } else { self.id == c.id }
    }
}

/// A service account on a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveServiceAccount {
    pub id: String,
    /// keyward's name for the account.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The owner's userName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub credentials: Vec<LiveCredential>,
    pub fingerprint: String,
    /// The client id (`appId`) of the account's Entra application: on Microsoft Graph, the
    /// app registration's; where the target knows the account by it (a Dataverse application
    /// user, a Finance & Operations user mapped to the application), `name` is that id too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// Whether the account may sign in, where the target can disable it; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// Everything a provider read from one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveTarget {
    pub accounts: Vec<LiveAccount>,
    pub service_accounts: Vec<LiveServiceAccount>,
    pub bindings: Vec<LiveBinding>,
    /// The target's sign-in methods policy (method → enabled), where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_methods: Option<BTreeMap<AuthMethod, bool>>,
    /// Bindings that exist on the target but cannot be given to some accounts (a Dataverse
    /// security role exists once per business unit, and a user can only hold the copy of their
    /// own). The planner turns an assignment into such a gap into a plan error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_of_reach: Vec<OutOfReach>,
    /// Accounts whose attributes another directory masters (users synchronized from
    /// on-premises Active Directory): what the target refuses to change on them. The planner
    /// plans none of it and says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_elsewhere: Vec<HeldElsewhere>,
    /// Bindings whose members something other than keyward decides (a group whose membership
    /// rule picks its members, a group synchronized from on-premises): keyward never adds or
    /// removes their members, and a role bound to one is a plan error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members_decided: Vec<MembersDecided>,
    /// The target's business units and where each account is, where the target places users
    /// in units (Dataverse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_units: Option<BusinessUnits>,
    /// Findings the target itself reports (for example the segregation-of-duties conflicts
    /// Finance & Operations records), shown beside keyward's own policy findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported: Vec<ReportedFinding>,
    /// Role assignments and removals the target's own audit log recorded, newest first, when
    /// they were asked for (`keyward audit review`); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RoleEvent>,
    /// Eligible assignments, where the target keeps them (Privileged Identity Management).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligibility: Vec<super::LiveEligibility>,
    /// What activating each binding takes, where the target says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activation: Vec<super::LiveActivation>,
    /// User attributes this target does not keep, though its provider could write them, with
    /// the reason (a SCIM service whose schema lacks them): the planner leaves them unmanaged
    /// there, and the plan says so once per attribute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unkept: BTreeMap<UserField, String>,
    /// The security roles each team holds (Dataverse owner and Microsoft Entra group teams),
    /// by the id of the team's live binding: its members hold them through the team.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub team_roles: BTreeMap<String, Vec<String>>,
    /// What security roles contain (privileges with their depth, duties), by the role's name on
    /// the target, where the configuration needed it (see `engine::contents`); empty otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub role_contents: BTreeMap<String, super::RoleContents>,
    /// What the target says about licences, where it reports them: the plan notes the licence
    /// effect of creating or enabling an account from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licensing: Option<Licensing>,
    /// What the target records about each account's licence, by account id (people and
    /// service accounts), where it reports it (Dataverse).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub licences: BTreeMap<String, LiveLicence>,
}

/// A role given to or taken from an account, as the target's own audit log recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleEvent {
    pub time: Timestamp,
    /// The account's userName (its id when the account is gone).
    pub user_name: String,
    /// Given (true) or taken (false).
    pub assigned: bool,
    /// What the target says about it.
    pub detail: String,
}

/// A target's business units: a security role exists once per unit, and an account holds only
/// the copies of its own unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BusinessUnits {
    /// The unit new accounts are created in.
    pub root: String,
    /// Each unit by name, with the names of the security roles it holds a copy of.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Each account's unit, by account id.
    pub of_account: BTreeMap<String, String>,
}

impl BusinessUnits {
    /// The unit called `name`, compared without regard to case, by the name the target gives it.
    pub fn find(&self, name: &str) -> Option<&str> {
        self.roles.keys().find(|u| u.eq_ignore_ascii_case(name)).map(String::as_str)
    }

    /// Whether unit `unit` holds a copy of security role `role`.
    pub fn has_copy(&self, unit: &str, role: &str) -> bool {
        self.roles.get(unit).is_some_and(|r| r.iter().any(|x| x.eq_ignore_ascii_case(role)))
    }
}

/// An account another directory masters, and what its target therefore refuses to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldElsewhere {
    /// The account's id.
    pub account: String,
    /// The directory that masters it, for messages: for example "on-premises Active Directory".
    pub source: String,
    /// The fields the target refuses to change.
    pub fields: Vec<UserField>,
    /// Whether the target refuses to enable, disable or delete the account too.
    pub lifecycle: bool,
}

/// A binding whose members something other than keyward decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembersDecided {
    pub binding: Binding,
    /// What decides them, for messages: for example "its membership rule `user.department -eq
    /// \"Sales\"`".
    pub by: String,
}

/// A binding that some accounts cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutOfReach {
    pub binding: Binding,
    /// The account's id; `None` for accounts keyward would create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Where the binding is missing, for messages: for example "business unit `Retail`".
    pub scope: String,
}

/// A finding reported by the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedFinding {
    /// What the target reports; the policies file it under a rule of their own.
    pub kind: ReportedKind,
    /// Whether the target says the finding was dealt with (an override or an exclusion).
    pub resolved: bool,
    /// The account it concerns, by userName, when it concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    pub message: String,
}

/// What a target reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportedKind {
    /// A segregation-of-duties conflict under the target's own rules.
    SodConflict,
}

/// A stable digest of any serializable value, for fingerprints: `sha256:<hex>` of its JSON.
pub fn digest<T: Serialize + ?Sized>(value: &T) -> String {
    /// Feeds the JSON straight into the hash: a fingerprint per live object allocates nothing.
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Sha256::new());
    serde_json::to_writer(&mut h, value).expect("live values serialize");
    finish(h.0)
}

/// `sha256:<hex>` of raw bytes.
pub fn digest_bytes(bytes: &[u8]) -> String {
    digest_parts([bytes])
}

/// `sha256:<hex>` of the concatenation of `parts`, without concatenating them.
pub fn digest_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    finish(h)
}

fn finish(h: Sha256) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in h.finalize() {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_of_the_json_in_lower_case_hex() {
        // The SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        let abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(digest_bytes(b"abc"), abc);
        assert_eq!(digest_parts([&b"a"[..], b"", b"bc"]), abc);
        // A value's digest is that of its JSON text, however the serializer writes it out.
        let value = (String::from("id-1"), vec!["a", "b"], true, None::<u32>);
        assert_eq!(digest(&value), digest_bytes(&serde_json::to_vec(&value).unwrap()));
        assert_ne!(digest(&value), digest(&(String::from("id-1"), vec!["a"], true, None::<u32>)));
    }
}
