//! Objects the API may not change as it changes cloud objects: users and groups synchronized
//! from on-premises Active Directory (`onPremisesSyncEnabled: true`), and groups whose members a
//! rule decides (`groupTypes` contains `DynamicMembership`). Facts and sources in
//! `docs/reference/graph.md` §2.
//!
//! - A synced user refuses changes to the attributes Microsoft Entra Connect synchronizes
//!   (the documented list of synchronized attributes, named as Graph names them), its password
//!   and its manager, with `400 Request_BadRequest` "Unable to update the specified properties for
//!   on-premises mastered Directory Sync objects or objects currently undergoing migration."
//!   (that code and message: [3P], Graph documentation issues). Other properties can be set.
//! - The `onPremises…` properties the directory sets are read-only on every user ([3P] message
//!   "Property '…' is read-only and cannot be set.").
//! - A synced group refuses member changes and property changes with the same answer.
//! - A dynamic group refuses member additions and removals (removal refused: documented; the
//!   code and message: [UNVERIFIED]); its members change when the rule is processed
//!   ([`Graph::set_dynamic_members`]). Creating one needs `membershipRule`, and it cannot be
//!   role-assignable (documented for `isAssignableToRole`).
//! - Deleting a synced user through the API is refused too ([UNVERIFIED], strict).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::Graph;
use super::http::Resp;
use super::tenant::Tenant;

/// Graph user properties filled from attributes Microsoft Entra Connect synchronizes
/// (E:`identity/hybrid/connect/reference-connect-sync-attributes-synchronized.md`, mapped to
/// Graph names: `sn` → `surname`, `title` → `jobTitle`, `company` → `companyName`, `l` → `city`,
/// `st` → `state`, `c`/`co` → `country`, `telephoneNumber` → `businessPhones`, `mobile` →
/// `mobilePhone`, `facsimiletelephonenumber` → `faxNumber`, `physicalDeliveryOfficeName` →
/// `officeLocation`, `employeeID` → `employeeId`, `extensionAttribute1-15` →
/// `onPremisesExtensionAttributes`, the source anchor → `onPremisesImmutableId`), and the
/// password (its reset needs password writeback, not modelled: [UNVERIFIED]).
pub const ON_PREMISES_MASTERED: [&str; 26] = [
    "accountEnabled",
    "displayName",
    "givenName",
    "surname",
    "userPrincipalName",
    "mail",
    "mailNickname",
    "jobTitle",
    "department",
    "companyName",
    "employeeId",
    "businessPhones",
    "mobilePhone",
    "faxNumber",
    "officeLocation",
    "streetAddress",
    "city",
    "state",
    "postalCode",
    "country",
    "preferredLanguage",
    "proxyAddresses",
    "usageLocation",
    "onPremisesExtensionAttributes",
    "onPremisesImmutableId",
    "passwordProfile",
];

/// Properties the directory sets from on-premises, read-only on every user
/// (G:`resources/user.md`: "Read-only").
pub const ON_PREMISES_READ_ONLY: [&str; 8] = [
    "onPremisesSyncEnabled",
    "onPremisesLastSyncDateTime",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesUserPrincipalName",
    "onPremisesProvisioningErrors",
];

const ON_PREMISES_MASTERED_MESSAGE: &str = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.";

pub(super) fn on_premises_mastered() -> Resp {
    Resp::bad(ON_PREMISES_MASTERED_MESSAGE)
}

fn is_synced(v: &Value) -> bool {
    v["onPremisesSyncEnabled"] == true
}

impl Tenant {
    /// The refusal of a change to these user properties, if any.
    pub(super) fn refuse_user_change<'k>(&self, id: &str, mut keys: impl Iterator<Item = &'k String>) -> Option<Resp> {
        let synced = self.users.get(id).is_some_and(is_synced);
        let mut mastered = false;
        for k in keys.by_ref() {
            if ON_PREMISES_READ_ONLY.contains(&k.as_str()) {
                return Some(Resp::bad(&format!("Property '{k}' is read-only and cannot be set.")));
            }
            mastered |= synced && (ON_PREMISES_MASTERED.contains(&k.as_str()) || k == "manager");
        }
        mastered.then(on_premises_mastered)
    }

    /// Whether a user is synchronized from on-premises.
    pub(super) fn is_synced_user(&self, id: &str) -> bool {
        self.users.get(id).is_some_and(is_synced)
    }

    /// The refusal of a member change on this group, if any.
    pub(super) fn refuse_member_change(&self, gid: &str) -> Option<Resp> {
        let g = self.groups.get(gid)?;
        if is_synced(&g.body) {
            return Some(on_premises_mastered());
        }
        if is_dynamic(&g.body) {
            return Some(Resp::bad(
                "Members of a group with dynamic membership cannot be added or removed: its membership rule decides them.",
            ));
        }
        None
    }

    /// The refusal of a property change on this group, if any.
    pub(super) fn refuse_group_change(&self, gid: &str, props: &Map<String, Value>) -> Option<Resp> {
        let g = self.groups.get(gid)?;
        let changes_props = props.keys().any(|k| !k.ends_with("@odata.bind") && k != "id");
        (is_synced(&g.body) && changes_props).then(on_premises_mastered)
    }

    /// The refusal of a new group's body, if any.
    pub(super) fn refuse_new_group(&self, b: &Map<String, Value>) -> Option<Resp> {
        if let Some(k) = b.keys().find(|k| k.starts_with("onPremises")) {
            return Some(Resp::bad(&format!("Property '{k}' is read-only and cannot be set.")));
        }
        let body = Value::Object(b.clone());
        if is_dynamic(&body) {
            if b.get("membershipRule").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Some(Resp::bad("A group with dynamic membership needs a membershipRule."));
            }
            if b.get("isAssignableToRole") == Some(&json!(true)) {
                return Some(Resp::bad(
                    "A group with isAssignableToRole set to true cannot be of dynamic membership type.",
                ));
            }
            if b.contains_key("members@odata.bind") {
                return Some(Resp::bad(
                    "Members of a group with dynamic membership cannot be added: its membership rule decides them.",
                ));
            }
        }
        None
    }
}

pub(super) fn is_dynamic(g: &Value) -> bool {
    g["groupTypes"].as_array().is_some_and(|t| t.iter().any(|x| x == "DynamicMembership"))
}

impl Graph {
    /// Adds a user synchronized from on-premises Active Directory (`onPremisesSyncEnabled`
    /// true, with its `onPremises…` properties); returns its id.
    pub fn add_synced_user(&self, upn: &str, display_name: &str, enabled: bool) -> String {
        self.with(|t| {
            let id = t.new_id(1);
            let (sam, domain) = upn.split_once('@').unwrap_or((upn, "corp.example"));
            let netbios = domain.split('.').next().unwrap_or(domain).to_uppercase();
            use base64::Engine as _;
            let immutable = base64::engine::general_purpose::STANDARD.encode(id.as_bytes());
            t.insert_user(
                &id,
                json!({"id": id, "userPrincipalName": upn, "displayName": display_name, "mailNickname": sam,
                    "accountEnabled": enabled, "createdDateTime": "2026-01-01T00:00:00Z",
                    "onPremisesSyncEnabled": true, "onPremisesImmutableId": immutable,
                    "onPremisesLastSyncDateTime": "2026-01-01T00:30:00Z",
                    "onPremisesDistinguishedName": format!("CN={display_name},OU=Users,DC={}", domain.replace('.', ",DC=")),
                    "onPremisesDomainName": domain, "onPremisesSamAccountName": sam,
                    "onPremisesUserPrincipalName": upn,
                    "onPremisesSecurityIdentifier": format!("S-1-5-21-1004336348-1177238915-682003330-{}", 1000 + t.next),
                    "onPremisesNetBiosName": netbios}),
            );
            id
        })
    }

    /// Adds a security group synchronized from on-premises; returns its id.
    pub fn add_synced_group(&self, name: &str) -> String {
        self.with(|t| {
            let id = t.new_id(2);
            let body = json!({"id": id, "displayName": name, "mailNickname": name, "mailEnabled": false,
                "securityEnabled": true, "groupTypes": [], "onPremisesSyncEnabled": true,
                "onPremisesLastSyncDateTime": "2026-01-01T00:30:00Z", "onPremisesSamAccountName": name,
                "onPremisesSecurityIdentifier": format!("S-1-5-21-1004336348-1177238915-682003330-{}", 1000 + t.next)});
            t.insert_group(&id, body, BTreeSet::new());
            id
        })
    }

    /// Adds a security group whose members `rule` decides (`groupTypes: ["DynamicMembership"]`,
    /// `membershipRule`, `membershipRuleProcessingState: "On"`); returns its id. Its members
    /// change only by [`Graph::set_dynamic_members`].
    pub fn add_dynamic_group(&self, name: &str, rule: &str) -> String {
        self.with(|t| {
            let id = t.new_id(2);
            let body = json!({"id": id, "displayName": name, "mailNickname": name, "mailEnabled": false,
                "securityEnabled": true, "groupTypes": ["DynamicMembership"], "membershipRule": rule,
                "membershipRuleProcessingState": "On"});
            t.insert_group(&id, body, BTreeSet::new());
            id
        })
    }

    /// Sets the members of a group as the processing of its rule (or on-premises
    /// synchronization) would: the changes reach the next delta round.
    pub fn set_dynamic_members(&self, group: &str, ids: &[String]) {
        self.with(|t| {
            let Some(current) = t.groups.get(group).map(|g| g.members.clone()) else { return };
            let wanted: BTreeSet<String> = ids.iter().cloned().collect();
            for gone in current.difference(&wanted) {
                t.remove_group_member(group, gone);
            }
            for new in wanted.difference(&current) {
                t.add_group_member(group, new);
            }
        })
    }
}
