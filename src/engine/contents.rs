//! What security roles really contain: which roles' contents a configuration needs, reading
//! them from the targets after the plain read, and the snapshots of pinned roles
//! (`role-contents/ROLE.yaml`).
//!
//! Guarantees:
//! - contents are read only when the configuration uses them: an SodRule that names
//!   privileges (every `securityRole` on Dataverse and F&O targets) or duties no Role declares
//!   (every `securityRole` on F&O targets), a DataClassification naming privileges on a target
//!   (every `securityRole` there), a Role with `contents: pinned` (its own bindings); otherwise
//!   not one request more than a plain read;
//! - a pinned role's snapshot is read whole, at most [`crate::load::MAX_FILE_BYTES`], and must
//!   be valid and name its role: a missing or invalid snapshot is an error naming the file and
//!   what to do, never an empty pin;
//! - snapshots are written deterministically (sorted keys, a fixed header) and atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::EngineError;
use crate::model::contents::{SNAPSHOT_DIR, snapshot_path};
use crate::model::{Binding, ContentsMode, DesiredState, LiveTarget, Name, ProviderKind, RoleSnapshot, Snapshots};
use crate::provider::handle::{Mode, Session};

/// Whether a target's provider has role contents.
fn has_contents(kind: ProviderKind) -> bool {
    matches!(kind, ProviderKind::Dataverse | ProviderKind::Fno)
}

/// Per target, the security roles (as the target names them) whose contents the
/// configuration needs; targets that need none are absent.
pub fn wanted(desired: &DesiredState) -> BTreeMap<Name, BTreeSet<String>> {
    let targets = &desired.settings.targets;
    let declared: BTreeSet<&str> = desired.roles.values().flat_map(|r| r.duties.iter().map(String::as_str)).collect();
    let sides = || desired.sod_rules.values().flat_map(|r| [&r.first, &r.second]);
    let privileges = sides().any(|s| !s.privileges.is_empty());
    let live_duties = sides().flat_map(|s| &s.duties).any(|d| !declared.contains(d.as_str()));
    // Targets where every security role is needed.
    let mut every: BTreeSet<&Name> = BTreeSet::new();
    for (name, t) in targets {
        let kind = t.provider();
        if (privileges && has_contents(kind)) || (live_duties && kind == ProviderKind::Fno) {
            every.insert(name);
        }
    }
    for dc in desired.data_classifications.values() {
        every.extend(dc.assets.iter().filter(|(_, a)| !a.privileges.is_empty()).map(|(t, _)| t));
    }
    let mut out: BTreeMap<Name, BTreeSet<String>> = BTreeMap::new();
    for role in desired.roles.values() {
        for (t, b) in &role.bindings {
            let Binding::SecurityRole(name) = b else { continue };
            let Some(target) = targets.get(t) else { continue };
            if !has_contents(target.provider()) {
                continue;
            }
            if every.contains(t) || role.contents == Some(ContentsMode::Pinned) {
                out.entry(t.clone()).or_default().insert(name.clone());
            }
        }
    }
    out
}

/// Reads the role contents the configuration needs into `live`, from the targets that were
/// read (a target not read is left as it is).
pub async fn read<M: Mode>(
    desired: &DesiredState,
    sessions: &mut BTreeMap<Name, Session<M>>,
    live: &mut BTreeMap<Name, LiveTarget>,
) -> Result<(), EngineError> {
    for (target, roles) in wanted(desired) {
        let (Some(session), Some(lt)) = (sessions.get_mut(&target), live.get_mut(&target)) else { continue };
        let roles: Vec<String> = roles.into_iter().collect();
        let started = std::time::Instant::now();
        lt.role_contents = session.role_contents(&roles).await?;
        tracing::info!(target_name = %target, roles = roles.len(), elapsed_ms = started.elapsed().as_millis() as u64, "read role contents");
    }
    Ok(())
}

/// Loads the pinned roles' snapshots from `dir`, then reads the role contents the
/// configuration needs into `live`: what a command that reads targets and evaluates the
/// policies calls after the read.
pub async fn prepare<M: Mode>(
    desired: &DesiredState,
    dir: &Path,
    sessions: &mut BTreeMap<Name, Session<M>>,
    live: &mut BTreeMap<Name, LiveTarget>,
) -> Result<Snapshots, EngineError> {
    let snapshots = load(desired, dir)?;
    read(desired, sessions, live).await?;
    Ok(snapshots)
}

/// Why a pinned role's snapshot cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct SnapshotError {
    pub path: PathBuf,
    pub message: String,
}

/// The snapshots of the configuration's pinned roles, read from `dir`.
pub fn load(desired: &DesiredState, dir: &Path) -> Result<Snapshots, SnapshotError> {
    let mut out = Snapshots::new();
    for (name, role) in desired.roles.iter().filter(|(_, r)| r.contents == Some(ContentsMode::Pinned)) {
        let rel = snapshot_path(name);
        let fail = |message: String| SnapshotError { path: rel.clone(), message };
        let targets: Vec<&str> = role
            .bindings
            .iter()
            .filter(|(t, b)| {
                matches!(b, Binding::SecurityRole(_))
                    && desired.settings.targets.get(*t).is_some_and(|t| has_contents(t.provider()))
            })
            .map(|(t, _)| t.as_str())
            .collect();
        let import = || {
            targets
                .iter()
                .map(|t| format!("`keyward import {} --target {t}`", dir.display()))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let path = dir.join(&rel);
        let text = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail(format!(
                    "role `{name}` has `contents: pinned` but its snapshot is missing; write it with {}, review it, and commit it",
                    import()
                )));
            }
            Err(e) => return Err(fail(format!("cannot be read: {e}"))),
            Ok(m) if m.len() > crate::load::MAX_FILE_BYTES => {
                return Err(fail(format!("is larger than {} bytes", crate::load::MAX_FILE_BYTES)));
            }
            Ok(_) => std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot be read: {e}")))?,
        };
        let snapshot: RoleSnapshot = serde_yaml::from_str(&text).map_err(|e| {
            fail(format!("is not a valid snapshot of role contents: {e}; write it again with {}", import()))
        })?;
        if &snapshot.role != name {
            return Err(fail(format!(
                "is the snapshot of role `{}`, not of `{name}`; write it again with {}",
                snapshot.role,
                import()
            )));
        }
        out.insert(name.clone(), snapshot);
    }
    Ok(out)
}

const HEADER: &str = "# The live contents of a pinned Role (`contents: pinned`), written by `keyward import`.\n# plan and drift report any difference; review changes to this file like any access change.\n";

/// The snapshot text of `snapshot`: the header, then YAML with sorted keys.
pub fn render(snapshot: &RoleSnapshot) -> Result<String, EngineError> {
    let yaml = serde_yaml::to_string(snapshot).map_err(|e| EngineError::Yaml(e.to_string()))?;
    Ok(format!("{HEADER}{yaml}"))
}

/// Writes the snapshots of the pinned roles bound on `target` from its live contents, keeping
/// what an existing snapshot says of other targets. Returns the files written, relative to
/// `dir`, with the number of privileges each holds on `target`.
pub fn write(
    desired: &DesiredState,
    dir: &Path,
    target: &Name,
    live: &LiveTarget,
) -> Result<Vec<(PathBuf, usize)>, EngineError> {
    let mut written = Vec::new();
    for (name, role) in desired.roles.iter().filter(|(_, r)| r.contents == Some(ContentsMode::Pinned)) {
        let Some(Binding::SecurityRole(object)) = role.bindings.get(target) else { continue };
        let contents = live
            .role_contents
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(object))
            .map(|(_, c)| c.clone())
            .ok_or_else(|| EngineError::Snapshot {
                path: snapshot_path(name),
                message: format!("security role `{object}` of role `{name}` does not exist on `{target}`"),
            })?;
        let rel = snapshot_path(name);
        let path = dir.join(&rel);
        // Keep what the snapshot says of the role's other targets, if it can be read.
        let mut snapshot = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_yaml::from_str::<RoleSnapshot>(&t).ok())
            .filter(|s| &s.role == name)
            .unwrap_or_else(|| RoleSnapshot { role: name.clone(), targets: BTreeMap::new() });
        snapshot.targets.retain(|t, _| role.bindings.contains_key(t));
        let count = contents.privileges.len();
        snapshot.targets.insert(target.clone(), contents);
        let folder = dir.join(SNAPSHOT_DIR);
        std::fs::create_dir_all(&folder).map_err(EngineError::io("create", &folder))?;
        crate::atomic::write_below(dir, &rel, render(&snapshot)?.as_bytes(), crate::atomic::Access::Shared)
            .map_err(EngineError::io("write", &path))?;
        written.push((rel, count));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: &str = "version: 1
targets:
  directory: {provider: file, path: dir.json}
  d365: {provider: dataverse, url: https://x.crm.dynamics.com, tenant: 456e4037-8afc-4f71-ae73-f9e51f634295, clientId: 55b1a2c7-9c3a-4911-a9b3-2555f9df8578, clientSecret: '${env:S}'}
  finance: {provider: fno, url: https://x.operations.dynamics.com, tenant: 456e4037-8afc-4f71-ae73-f9e51f634295, clientId: 2c15416f-b9fe-4f04-8b2b-532d023e2193, clientSecret: '${env:S}'}
";
    const ROLES: &str = "kind: Role
name: clerk
duties: [invoice-entry]
bindings: {directory: {group: clerks}, d365: {securityRole: Clerk}, finance: {securityRole: AP clerk}}
---
kind: Role
name: manager
bindings: {d365: {securityRole: Manager}, finance: {securityRole: AP manager}}
";

    fn state(extra: &str) -> DesiredState {
        let files = vec![
            (PathBuf::from("keyward.yaml"), SETTINGS.as_bytes().to_vec()),
            (PathBuf::from("roles.yaml"), ROLES.as_bytes().to_vec()),
            (PathBuf::from("extra.yaml"), extra.as_bytes().to_vec()),
        ];
        let loaded = crate::load::load_files(Path::new("/c"), files).unwrap();
        let v = crate::validate::validate(&loaded);
        assert!(!v.has_errors(), "{:?}", v.diagnostics);
        v.state.unwrap()
    }

    fn wanted_of(extra: &str) -> Vec<(String, Vec<String>)> {
        wanted(&state(extra)).into_iter().map(|(t, r)| (t.to_string(), r.into_iter().collect())).collect()
    }

    fn roles(target: &str, roles: &[&str]) -> (String, Vec<String>) {
        (target.to_string(), roles.iter().map(|r| r.to_string()).collect())
    }

    #[test]
    fn contents_are_wanted_only_where_the_configuration_uses_them() {
        let declared = "kind: SodRule\nname: r\nfirst: {duties: [invoice-entry]}\nsecond: {roles: [manager]}\n";
        assert_eq!(wanted_of(declared), vec![], "declared duties need no live read");
        let privileges = "kind: SodRule\nname: r\nfirst: {privileges: [prvX]}\nsecond: {roles: [manager]}\n";
        assert_eq!(
            wanted_of(privileges),
            vec![roles("d365", &["Clerk", "Manager"]), roles("finance", &["AP clerk", "AP manager"])]
        );
        let live_duty = "kind: SodRule\nname: r\nfirst: {duties: [VendPaymentRelease]}\nsecond: {roles: [manager]}\n";
        assert_eq!(wanted_of(live_duty), vec![roles("finance", &["AP clerk", "AP manager"])]);
        let classified =
            "kind: DataClassification\nname: pay\nlevel: restricted\nassets: {d365: {privileges: [prvReadPay]}}\n";
        assert_eq!(wanted_of(classified), vec![roles("d365", &["Clerk", "Manager"])]);
        let pinned = "kind: Role\nname: pinned\ncontents: pinned\nbindings: {finance: {securityRole: Auditor}}\n";
        assert_eq!(wanted_of(pinned), vec![roles("finance", &["Auditor"])]);
    }

    #[test]
    fn a_snapshot_that_is_missing_invalid_or_another_roles_is_an_error() {
        let desired = state("kind: Role\nname: pinned\ncontents: pinned\nbindings: {d365: {securityRole: Auditor}}\n");
        let dir = tempfile::tempdir().unwrap();
        let e = load(&desired, dir.path()).unwrap_err();
        assert_eq!(e.path, Path::new("role-contents/pinned.yaml"));
        assert!(e.message.contains("snapshot is missing; write it with `keyward import"), "{}", e.message);
        assert!(e.message.contains("--target d365`"), "{}", e.message);
        std::fs::create_dir(dir.path().join(SNAPSHOT_DIR)).unwrap();
        let file = dir.path().join("role-contents/pinned.yaml");
        std::fs::write(&file, "role: pinned\ntargets: {d365: {privileges: {prvX: everywhere}}}\n").unwrap();
        let e = load(&desired, dir.path()).unwrap_err();
        assert!(e.message.starts_with("is not a valid snapshot of role contents: "), "{}", e.message);
        std::fs::write(&file, "role: other\ntargets: {}\n").unwrap();
        let e = load(&desired, dir.path()).unwrap_err();
        assert!(e.message.starts_with("is the snapshot of role `other`, not of `pinned`"), "{}", e.message);
        std::fs::write(&file, "role: pinned\ntargets: {d365: {privileges: {prvX: deep}}}\n").unwrap();
        let snapshots = load(&desired, dir.path()).unwrap();
        assert_eq!(snapshots["pinned"].targets["d365"].privilege("prvx"), Some(("prvX", crate::model::Depth::Deep)));
    }
}
