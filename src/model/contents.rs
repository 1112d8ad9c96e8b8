//! What a security role really contains on its target (Dataverse privileges with their depth,
//! Finance & Operations duties and privileges), the snapshot a pinned role is compared with,
//! and the comparison.
//!
//! Privilege and duty names are compared without regard to case (Dataverse privilege names and
//! F&O AOT names are case-insensitive); they are kept as the target spells them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Name;

/// The folder, at the root of a configuration, that holds the snapshots of pinned roles. The
/// loader does not read it as configuration.
pub const SNAPSHOT_DIR: &str = "role-contents";

/// The snapshot file of role `role`, relative to the configuration root.
pub fn snapshot_path(role: &Name) -> std::path::PathBuf {
    std::path::Path::new(SNAPSHOT_DIR).join(format!("{role}.yaml"))
}

/// How far a privilege reaches. Dataverse grants each privilege at a depth; Finance &
/// Operations has none (`granted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Depth {
    /// The user's own records (Dataverse mask 1).
    Basic,
    /// The user's business unit (mask 2).
    Local,
    /// The business unit and the units below it (mask 4).
    Deep,
    /// The whole organization (mask 8).
    Global,
    /// Held, on a target whose privileges have no depth (Finance & Operations).
    Granted,
}

impl Depth {
    /// The depth of a Dataverse `privilegedepthmask`; the widest bit set wins. `None` for a
    /// mask with no known bit.
    pub fn from_mask(mask: i64) -> Option<Depth> {
        [(8, Depth::Global), (4, Depth::Deep), (2, Depth::Local), (1, Depth::Basic)]
            .into_iter()
            .find(|(bit, _)| mask & bit != 0)
            .map(|(_, d)| d)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Depth::Basic => "basic",
            Depth::Local => "local",
            Depth::Deep => "deep",
            Depth::Global => "global",
            Depth::Granted => "granted",
        }
    }
}

impl fmt::Display for Depth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The live contents of one security role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleContents {
    /// The duties the role holds (Finance & Operations), by identifier.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub duties: BTreeSet<String>,
    /// Each privilege the role grants (directly or through a duty), by name, with its depth.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub privileges: BTreeMap<String, Depth>,
}

impl RoleContents {
    /// The privilege of this name (compared without regard to case), with its depth.
    pub fn privilege(&self, name: &str) -> Option<(&str, Depth)> {
        self.privileges.iter().find(|(p, _)| p.eq_ignore_ascii_case(name)).map(|(p, d)| (p.as_str(), *d))
    }

    /// The duty of this name (compared without regard to case).
    pub fn duty(&self, name: &str) -> Option<&str> {
        self.duties.iter().find(|d| d.eq_ignore_ascii_case(name)).map(String::as_str)
    }
}

/// `Role.contents`: what keyward holds the role's live contents to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ContentsMode {
    /// The live contents must equal the snapshot `keyward import` wrote to
    /// `role-contents/ROLE.yaml`; any difference is reported by plan and drift.
    Pinned,
}

/// The snapshot of a pinned role's contents, `role-contents/ROLE.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleSnapshot {
    /// The Role's name.
    pub role: Name,
    /// The contents on each target the role is bound on, by target name.
    #[serde(default)]
    pub targets: BTreeMap<Name, RoleContents>,
}

/// The pinned snapshots of a configuration, by role name.
pub type Snapshots = BTreeMap<Name, RoleSnapshot>;

/// No snapshots: for evaluations without live state.
pub static NO_SNAPSHOTS: Snapshots = Snapshots::new();

/// One way live contents differ from their snapshot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContentsChange {
    PrivilegeAdded { privilege: String, depth: Depth },
    PrivilegeRemoved { privilege: String, depth: Depth },
    DepthChanged { privilege: String, from: Depth, to: Depth },
    DutyAdded { duty: String },
    DutyRemoved { duty: String },
}

impl fmt::Display for ContentsChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentsChange::PrivilegeAdded { privilege, depth } => write!(f, "privilege `{privilege}` added ({depth})"),
            ContentsChange::PrivilegeRemoved { privilege, depth } => {
                write!(f, "privilege `{privilege}` removed (was {depth})")
            }
            ContentsChange::DepthChanged { privilege, from, to } => {
                write!(f, "privilege `{privilege}` changed from {from} to {to}")
            }
            ContentsChange::DutyAdded { duty } => write!(f, "duty `{duty}` added"),
            ContentsChange::DutyRemoved { duty } => write!(f, "duty `{duty}` removed"),
        }
    }
}

/// How `live` differs from `pinned`, names compared without regard to case; in a stable order.
pub fn compare(pinned: &RoleContents, live: &RoleContents) -> Vec<ContentsChange> {
    let mut out = Vec::new();
    for (p, &d) in &live.privileges {
        match pinned.privilege(p) {
            None => out.push(ContentsChange::PrivilegeAdded { privilege: p.clone(), depth: d }),
            Some((_, was)) if was != d => {
                out.push(ContentsChange::DepthChanged { privilege: p.clone(), from: was, to: d })
            }
            Some(_) => {}
        }
    }
    for (p, &d) in &pinned.privileges {
        if live.privilege(p).is_none() {
            out.push(ContentsChange::PrivilegeRemoved { privilege: p.clone(), depth: d });
        }
    }
    for duty in &live.duties {
        if pinned.duty(duty).is_none() {
            out.push(ContentsChange::DutyAdded { duty: duty.clone() });
        }
    }
    for duty in &pinned.duties {
        if live.duty(duty).is_none() {
            out.push(ContentsChange::DutyRemoved { duty: duty.clone() });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(privileges: &[(&str, Depth)], duties: &[&str]) -> RoleContents {
        RoleContents {
            duties: duties.iter().map(|d| d.to_string()).collect(),
            privileges: privileges.iter().map(|(p, d)| (p.to_string(), *d)).collect(),
        }
    }

    #[test]
    fn masks_give_the_widest_depth() {
        assert_eq!(Depth::from_mask(1), Some(Depth::Basic));
        assert_eq!(Depth::from_mask(2), Some(Depth::Local));
        assert_eq!(Depth::from_mask(4), Some(Depth::Deep));
        assert_eq!(Depth::from_mask(8), Some(Depth::Global));
        assert_eq!(Depth::from_mask(3), Some(Depth::Local));
        assert_eq!(Depth::from_mask(0), None);
        assert_eq!(Depth::from_mask(16), None);
    }

    #[test]
    fn changes_name_what_was_added_removed_and_widened() {
        let pinned = contents(&[("prvReadAccount", Depth::Local), ("prvDeleteAccount", Depth::Basic)], &["A"]);
        let live = contents(&[("PRVREADACCOUNT", Depth::Global), ("prvWriteAccount", Depth::Basic)], &["a", "B"]);
        let changes: Vec<String> = compare(&pinned, &live).iter().map(ToString::to_string).collect();
        assert_eq!(
            changes,
            vec![
                "privilege `prvWriteAccount` added (basic)",
                "privilege `prvDeleteAccount` removed (was basic)",
                "privilege `PRVREADACCOUNT` changed from local to global",
                "duty `B` added",
            ]
        );
        assert!(compare(&live, &live).is_empty());
    }

    #[test]
    fn a_snapshot_is_written_the_same_way_every_time() {
        let snap = RoleSnapshot {
            role: Name::new("ap-clerk").unwrap(),
            targets: [(
                Name::new("d365").unwrap(),
                contents(&[("prvWriteAccount", Depth::Local), ("prvReadAccount", Depth::Global)], &[]),
            )]
            .into(),
        };
        let text = serde_yaml::to_string(&snap).unwrap();
        assert_eq!(
            text,
            "role: ap-clerk\ntargets:\n  d365:\n    privileges:\n      prvReadAccount: global\n      prvWriteAccount: local\n"
        );
        assert_eq!(serde_yaml::from_str::<RoleSnapshot>(&text).unwrap(), snap);
    }
}
