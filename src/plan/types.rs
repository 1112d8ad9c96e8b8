//! The plan: a plain, serializable list of typed changes.
//!
//! What `before` and `after` hold for each action:
//!
//! | action    | before                                   | after                                     |
//! |-----------|------------------------------------------|-------------------------------------------|
//! | `create`  | absent                                   | every managed value of the new object     |
//! | `update`  | the live values of the fields that change | the desired values of those fields        |
//! | `enable`  | `{active: false}`                        | `{active: true}`                          |
//! | `disable` | `{active: true}`                         | `{active: false}`                         |
//! | `delete`  | the managed values of the live object    | absent                                    |
//! | `assign`  | absent                                   | `{role, binding, expires?}`               |
//! | `revoke`  | `{role?, binding}`                       | absent                                    |
//! | `rotate`  | the current credential's name and dates, or absent | the new credential's name, dates, key algorithm and sink |
//!
//! For credentials, `revoke` removes an old credential of keyward's (replaced, its overlap
//! over) with `before` = its name and dates; `delete` removes a credential the configuration
//! does not declare (drift), likewise, and counts against `guards.maxDeletes`.
//!
//! Secret values never appear: credentials are described by name and dates only. The
//! [`Operation`] is what apply executes; `reason` only explains, and apply never reads it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use super::address::{Address, AddressError, ObjectKind};
pub use super::why::{Granting, Why};
use crate::model::{
    ActivationRules, Attribution, AuthMethod, Binding, CredentialType, Deliver, KeyAlgorithm, Name, Timestamp,
    UserAttrs,
};

/// The version of the plan JSON format. Bumped only for incompatible changes.
pub const FORMAT_VERSION: &str = "1";

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Enable,
    Disable,
    Delete,
    Assign,
    Revoke,
    Rotate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Delete => "delete",
            Action::Assign => "assign",
            Action::Revoke => "revoke",
            Action::Rotate => "rotate",
        }
    }

    /// The apply phase: accounts first, then assignments, rotations, revocations, disables and
    /// deletions, so nobody loses access before their replacement access exists.
    pub fn phase(self) -> u8 {
        match self {
            Action::Create => 0,
            Action::Update | Action::Enable => 1,
            Action::Assign => 2,
            Action::Rotate => 3,
            Action::Revoke => 4,
            Action::Disable => 5,
            Action::Delete => 6,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a change is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonKind {
    /// The configuration asks for it.
    Config,
    /// The live object was changed outside git.
    Drift,
    /// An assignment or credential expired.
    Expiry,
    /// A policy requires it (a credential inside its rotation window, for example).
    Policy,
}

impl fmt::Display for ReasonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReasonKind::Config => "config",
            ReasonKind::Drift => "drift",
            ReasonKind::Expiry => "expiry",
            ReasonKind::Policy => "policy",
        })
    }
}

/// Why a change is in the plan: its kind, and what the planner saw ([`Why`]), whose text the
/// plan shows as `message`.
#[derive(Debug, Clone)]
pub struct Reason {
    pub kind: ReasonKind,
    pub why: Why,
}

impl Reason {
    pub fn of(kind: ReasonKind, why: Why) -> Self {
        Reason { kind, why }
    }

    /// A reason given as text (a saved plan read back, a test).
    pub fn new(kind: ReasonKind, message: impl Into<String>) -> Self {
        Reason { kind, why: Why::Text(message.into()) }
    }

    /// The text plans show.
    pub fn message(&self) -> String {
        self.why.to_string()
    }
}

/// Two reasons are the same when they read the same: a saved plan's reasons are text.
impl PartialEq for Reason {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message() == other.message()
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            kind: ReasonKind,
            message: &'a str,
        }
        Wire { kind: self.kind, message: &self.message() }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            kind: ReasonKind,
            message: String,
        }
        let w = Wire::deserialize(d)?;
        Ok(Reason::new(w.kind, w.message))
    }
}

/// A holder of a role: a person (by userName) or a service account (by name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Principal {
    User(String),
    ServiceAccount(String),
}

impl Principal {
    pub fn key(&self) -> &str {
        match self {
            Principal::User(u) | Principal::ServiceAccount(u) => u,
        }
    }
}

/// Exactly what apply does for a change, in provider-neutral terms. Live objects are named by
/// their natural keys (userName, binding, service-account name); providers resolve their own
/// ids from a fresh read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Operation {
    #[serde(rename_all = "camelCase")]
    CreateUser {
        user_name: String,
        attrs: UserAttrs,
        active: bool,
    },
    #[serde(rename_all = "camelCase")]
    UpdateUser {
        user_name: String,
        set: UserAttrs,
    },
    #[serde(rename_all = "camelCase")]
    SetUserActive {
        user_name: String,
        active: bool,
    },
    #[serde(rename_all = "camelCase")]
    DeleteUser {
        user_name: String,
    },
    /// Moves the account to business unit `business_unit` (by name). On Dataverse the move
    /// removes the account's security roles; the plan gives them back by `Assign`s after it.
    #[serde(rename_all = "camelCase")]
    MoveUser {
        user_name: String,
        business_unit: String,
    },
    CreateBinding {
        binding: Binding,
    },
    /// Brings an existing bound object's own settings to `binding` (for a field security
    /// profile: lets it read the listed columns).
    UpdateBinding {
        binding: Binding,
    },
    Assign {
        principal: Principal,
        binding: Binding,
    },
    Revoke {
        principal: Principal,
        binding: Binding,
    },
    /// Creates a service account. Where the target knows it by its Entra application
    /// (`application_id`), `name` is that client id and the account is made in `business_unit`
    /// (the target's default unit when absent).
    #[serde(rename_all = "camelCase")]
    CreateServiceAccount {
        name: String,
        display_name: Option<String>,
        description: Option<String>,
        owner: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        application_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        business_unit: Option<String>,
    },
    /// Enables or disables the service account the target knows as `name` (an application
    /// user, by its client id).
    SetServiceAccountActive {
        name: String,
        active: bool,
    },
    #[serde(rename_all = "camelCase")]
    UpdateServiceAccount {
        name: String,
        display_name: Option<String>,
        description: Option<String>,
        owner: Option<String>,
    },
    /// Issues a new credential named `CREDENTIAL@STARTDATE` valid for `lifetime_seconds`, and
    /// delivers its material to `deliver` (the sink's location is not secret; the material never
    /// enters the plan). `key_algorithm` is resolved for certificates.
    #[serde(rename_all = "camelCase")]
    AddCredential {
        account: String,
        credential: String,
        kind: CredentialType,
        lifetime_seconds: i64,
        key_algorithm: Option<KeyAlgorithm>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deliver: Option<Deliver>,
    },
    /// Removes a credential. `proof_from` is the sink of one of the account's certificates,
    /// whose current material signs a proof of possession where the target asks for one.
    #[serde(rename_all = "camelCase")]
    RemoveCredential {
        account: String,
        credential_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof_from: Option<Deliver>,
    },
    SetAuthMethod {
        method: AuthMethod,
        enabled: bool,
    },
    /// Makes `principal` eligible for `binding` until `end` (for good when absent), or moves the
    /// end of an eligibility it has.
    MakeEligible {
        principal: Principal,
        binding: Binding,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<Timestamp>,
    },
    /// Ends `principal`'s eligibility for `binding`.
    EndEligibility {
        principal: Principal,
        binding: Binding,
    },
    /// Sets what activating `binding` takes; the rules left `None` are not touched.
    SetActivation {
        binding: Binding,
        rules: ActivationRules,
    },
}

/// Display values before or after a change.
pub type Values = BTreeMap<String, serde_json::Value>;

/// One change of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    pub reason: Reason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Values>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Values>,
    /// The fingerprint of the live object this change was computed from (`absent` when there
    /// was none); a saved plan is refused when it no longer matches.
    pub fingerprint: String,
    /// The person or service account this change is for, by name in git, to group a plan by
    /// person across targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Extra facts a reviewer should know (for example that a deletion can be undone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    pub operation: Operation,
}

impl Change {
    /// A change with no values, no subject and no notes, computed from no live object
    /// ([`crate::plan::ABSENT`]); the builder methods below fill in the rest.
    pub fn new(address: Address, action: Action, reason: Reason, operation: Operation) -> Self {
        Change {
            address,
            action,
            reason,
            before: None,
            after: None,
            fingerprint: super::ABSENT.to_string(),
            subject: None,
            notes: Vec::new(),
            operation,
        }
    }

    /// The values before the change.
    pub fn before(mut self, values: Values) -> Self {
        self.before = Some(values);
        self
    }

    /// The values after the change.
    pub fn after(mut self, values: Values) -> Self {
        self.after = Some(values);
        self
    }

    /// The fingerprint of the live object the change was computed from.
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = fingerprint.into();
        self
    }

    /// The person or service account the change is for, by name in git.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The subject, when there is one.
    pub fn subject_opt(mut self, subject: Option<String>) -> Self {
        self.subject = subject;
        self
    }

    /// A fact a reviewer should know.
    pub fn note(mut self, note: impl Into<Note>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Facts a reviewer should know.
    pub fn notes<N: Into<Note>>(mut self, notes: impl IntoIterator<Item = N>) -> Self {
        self.notes.extend(notes.into_iter().map(Into::into));
        self
    }

    /// The values before the change, when there are any.
    pub fn before_opt(mut self, values: Option<Values>) -> Self {
        self.before = values;
        self
    }
}

/// A fact about a change a reviewer should know. Plans carry its text; the kinds are told
/// apart by what made them, never by the text.
#[derive(Debug, Clone)]
pub enum Note {
    /// A fact the planner states.
    Text(String),
    /// Who made a live difference outside keyward, from the target's audit log.
    Attribution(Attribution),
}

/// Two notes are the same when they read the same: a saved plan's notes are text.
impl PartialEq for Note {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Note {
    pub fn is_attribution(&self) -> bool {
        matches!(self, Note::Attribution(_))
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Text(t) => f.write_str(t),
            Note::Attribution(a) => f.write_str(&a.note()),
        }
    }
}

impl From<String> for Note {
    fn from(text: String) -> Self {
        Note::Text(text)
    }
}

impl From<&str> for Note {
    fn from(text: &str) -> Self {
        Note::Text(text.to_string())
    }
}

impl Serialize for Note {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A saved plan's notes are text: what made them is not in the file.
impl<'de> Deserialize<'de> for Note {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Note::Text)
    }
}

/// The configuration a plan was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRef {
    /// `sha256:` digest of every configuration file's path and content.
    pub digest: String,
    /// The git commit of the configuration, when it is a repository (`-dirty` when it has
    /// uncommitted changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Counts of changes by action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub enable: usize,
    pub disable: usize,
    pub delete: usize,
    pub assign: usize,
    pub revoke: usize,
    pub rotate: usize,
}

impl Summary {
    pub fn of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Summary {
        let mut s = Summary::default();
        for c in changes {
            *match c.action {
                Action::Create => &mut s.create,
                Action::Update => &mut s.update,
                Action::Enable => &mut s.enable,
                Action::Disable => &mut s.disable,
                Action::Delete => &mut s.delete,
                Action::Assign => &mut s.assign,
                Action::Revoke => &mut s.revoke,
                Action::Rotate => &mut s.rotate,
            } += 1;
        }
        s
    }

    pub fn total(&self) -> usize {
        self.create + self.update + self.enable + self.disable + self.delete + self.assign + self.revoke + self.rotate
    }
}

/// Which part of a `plan --base` a change belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// What the change since the base revision asks for.
    Change,
    /// Live differences from the base revision that were already there.
    Drift,
}

/// A complete plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub keyward_version: String,
    pub created_at: Timestamp,
    pub configuration: ConfigRef,
    /// The targets that were read.
    pub targets: Vec<Name>,
    pub summary: Summary,
    pub changes: Vec<Change>,
    /// With `--base REV`: the base revision and, per change address, which section it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseSplit>,
    /// What the reader must know before the changes: targets that were not read, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    /// In a saved plan: `sha256:` over its changes, checked before anything else by `apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// In a saved plan made with `KEYWARD_PLAN_KEY`: the HMAC-SHA256 of `digest` under that key,
    /// in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Something a plan's reader must know before its changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// A stable code: `connection-changed`, `not-kept`, `not-managed`, `owned-elsewhere`.
    pub code: String,
    /// The target it concerns.
    pub target: Name,
    pub message: String,
}

impl Notice {
    /// The code of [`Notice::connection_changed`].
    pub const CONNECTION_CHANGED: &'static str = "connection-changed";
    /// The code of a notice that git asks for what another directory masters (a user
    /// synchronized from on-premises Active Directory), so nothing is planned for it here.
    pub const OWNED_ELSEWHERE: &'static str = "owned-elsewhere";

    /// The code of [`Notice::not_kept`].
    pub const NOT_KEPT: &'static str = "not-kept";
    /// The code of [`Notice::service_account_not_managed`].
    pub const NOT_MANAGED: &'static str = "not-managed";

    /// The target does not keep a user attribute the configuration sets (`field`, as the
    /// configuration spells it): keyward does not manage it there.
    pub fn not_kept(target: &Name, field: &str, reason: &str) -> Self {
        Notice {
            code: Self::NOT_KEPT.to_string(),
            target: target.clone(),
            message: format!("target `{target}` does not keep `{field}` ({reason}); keyward will not manage it there"),
        }
    }

    /// The configuration places a service account on a target that has none keyward manages.
    pub fn service_account_not_managed(target: &Name, account: &Name) -> Self {
        Notice {
            code: Self::NOT_MANAGED.to_string(),
            target: target.clone(),
            message: format!(
                "service account `{account}` is not managed on target `{target}`: keyward manages no service accounts there, so none of its roles on that target are planned"
            ),
        }
    }

    /// The configuration places a service account on a target that knows service accounts by
    /// their application's client id, without one.
    pub fn application_id_missing(target: &Name, account: &Name) -> Self {
        Notice {
            code: Self::NOT_MANAGED.to_string(),
            target: target.clone(),
            message: format!(
                "service account `{account}` is not managed on target `{target}`: the target knows service accounts by their Entra application, and `targets: {{{target}: {{applicationId: ...}}}}` does not name it, so none of its roles on that target are planned"
            ),
        }
    }

    /// The code of [`Notice::application_id_pending`].
    pub const APPLICATION_PENDING: &'static str = "application-pending";
    /// The code of [`Notice::application_id_not_read`].
    pub const APPLICATION_NOT_READ: &'static str = "application-not-read";

    /// A service account takes its client id on `target` from its app registration on `graph`,
    /// which the plan creates: its application user waits for the next plan.
    pub fn application_id_pending(target: &Name, account: &Name, graph: &Name) -> Self {
        Notice {
            code: Self::APPLICATION_PENDING.to_string(),
            target: target.clone(),
            message: format!(
                "service account `{account}` is not planned on target `{target}` yet: it takes its client id from its app registration on `{graph}`, which this plan creates; its application user is created by the next plan/apply once the registration has its client id"
            ),
        }
    }

    /// A service account takes its client id on `target` from its app registration on a Graph
    /// target that was not read.
    pub fn application_id_not_read(target: &Name, account: &Name, unread: &[&Name]) -> Self {
        let unread: Vec<String> = unread.iter().map(|t| format!("`{t}`")).collect();
        Notice {
            code: Self::APPLICATION_NOT_READ.to_string(),
            target: target.clone(),
            message: format!(
                "service account `{account}` is not planned on target `{target}`: it takes its client id from its app registration on {}, which was not read in this run; plan it too",
                unread.join(", ")
            ),
        }
    }

    /// Whether the notice stops a saved plan from being applied (its target was planned
    /// offline).
    pub fn blocks_apply(&self) -> bool {
        self.code == Self::CONNECTION_CHANGED
    }

    /// Under `--base`: the target's connection settings differ from the base revision's (or
    /// the target is new), so it was planned offline, as if empty, and none of its settings or
    /// secrets were used.
    pub fn connection_changed(target: &Name) -> Self {
        Notice {
            code: Self::CONNECTION_CHANGED.to_string(),
            target: target.clone(),
            message: format!(
                "target `{target}`: connection settings changed in this pull request; they take effect after merge, and were not used"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseSplit {
    pub revision: String,
    pub sections: BTreeMap<String, Section>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// `sha256:` over the changes, as their JSON.
    pub fn changes_digest(&self) -> String {
        crate::model::digest(&self.changes)
    }

    /// The HMAC-SHA256 of `digest` under `key`, in hex.
    pub fn sign(digest: &str, key: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        ring::hmac::sign(&key, digest.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `signature` (hex) is the HMAC-SHA256 of `digest` under `key`, compared in
    /// constant time.
    pub fn verify(digest: &str, signature: &str, key: &[u8]) -> bool {
        let Some(bytes) = (0..signature.len())
            .step_by(2)
            .map(|i| signature.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        ring::hmac::verify(&key, digest.as_bytes(), &bytes).is_ok()
    }
}
