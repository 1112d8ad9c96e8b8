//! How a role is held on one target: the `Binding` a role names per target, and its kinds.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a role is on one target, written as a map with one key: `{group: admins}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Binding {
    /// A group keyward may create (scim, ldap, file, graph).
    Group(String),
    /// A predefined directory role (graph).
    DirectoryRole(String),
    /// An application role (graph).
    AppRole(AppRoleRef),
    /// A predefined security role (dataverse, fno).
    SecurityRole(String),
    /// An existing owner team whose members keyward keeps (dataverse).
    Team(String),
    /// An existing Microsoft Entra group team in a business unit (dataverse): its members come
    /// from the Entra group, which keyward keeps on the Graph target that holds it.
    GroupTeam(GroupTeamRef),
    /// A column (field) security profile that keyward keeps for a DataClassification
    /// (dataverse). Never written in a Role: it is derived from the classification's `assets`
    /// and readers (see `plan::derived`), and carries the columns so that a saved plan holds
    /// everything needed to create the profile.
    #[schemars(skip)]
    FieldSecurityProfile(FieldProfileRef),
}

/// A field security profile: its name and the `table.column`s its holders may read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldProfileRef {
    pub name: String,
    /// Lower-cased `table.column`s, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// A Microsoft Entra group team: the Dataverse team of business unit `business_unit` whose
/// members are those of the Entra group `group` (by display name on the Graph target).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupTeamRef {
    /// The Microsoft Entra group, by display name, on the Graph target that holds it.
    pub group: String,
    /// The business unit the team belongs to, by name.
    pub business_unit: String,
    /// The security roles the team holds, which keyward then keeps exactly (assigning and
    /// removing the copies of the team's business unit). Without it, the team's roles are read,
    /// never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppRoleRef {
    pub app: String,
    pub role: String,
}

impl Binding {
    pub fn kind(&self) -> BindingKind {
        match self {
            Binding::Group(_) => BindingKind::Group,
            Binding::DirectoryRole(_) => BindingKind::DirectoryRole,
            Binding::AppRole(_) => BindingKind::AppRole,
            Binding::SecurityRole(_) => BindingKind::SecurityRole,
            Binding::Team(_) => BindingKind::Team,
            Binding::GroupTeam(_) => BindingKind::GroupTeam,
            Binding::FieldSecurityProfile(_) => BindingKind::FieldSecurityProfile,
        }
    }
    /// A human-readable label: `group ap-clerks`, `appRole Finance Portal/Approver`.
    pub fn label(&self) -> String {
        match self {
            Binding::Group(g) => format!("group {g}"),
            Binding::DirectoryRole(r) => format!("directoryRole {r}"),
            Binding::AppRole(a) => format!("appRole {}/{}", a.app, a.role),
            Binding::SecurityRole(r) => format!("securityRole {r}"),
            Binding::Team(t) => format!("team {t}"),
            Binding::GroupTeam(t) => format!("groupTeam {} in business unit {}", t.group, t.business_unit),
            Binding::FieldSecurityProfile(p) => format!("fieldSecurityProfile {}", p.name),
        }
    }
    /// The display name of the bound object on its target.
    pub fn object_name(&self) -> String {
        match self {
            Binding::Group(g) | Binding::DirectoryRole(g) | Binding::SecurityRole(g) | Binding::Team(g) => g.clone(),
            Binding::AppRole(a) => format!("{}/{}", a.app, a.role),
            Binding::GroupTeam(t) => format!("{} in business unit {}", t.group, t.business_unit),
            Binding::FieldSecurityProfile(p) => p.name.clone(),
        }
    }

    /// Whether the live object `live` (found by kind and name) is all this binding asks for:
    /// a field security profile must let its holders read at least the listed columns.
    pub fn satisfied_by(&self, live: &Binding) -> bool {
        match (self, live) {
            (Binding::FieldSecurityProfile(want), Binding::FieldSecurityProfile(have)) => {
                want.columns.iter().all(|c| have.columns.iter().any(|h| h.eq_ignore_ascii_case(c)))
            }
            _ => true,
        }
    }
}

/// The shapes a binding can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BindingKind {
    Group,
    DirectoryRole,
    AppRole,
    SecurityRole,
    Team,
    GroupTeam,
    FieldSecurityProfile,
}

impl fmt::Display for BindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindingKind::Group => "group",
            BindingKind::DirectoryRole => "directoryRole",
            BindingKind::AppRole => "appRole",
            BindingKind::SecurityRole => "securityRole",
            BindingKind::Team => "team",
            BindingKind::GroupTeam => "groupTeam",
            BindingKind::FieldSecurityProfile => "fieldSecurityProfile",
        })
    }
}
