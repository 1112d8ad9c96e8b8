//! A CODEOWNERS file from the owners of roles, for GitHub (GitLab reads the same format).
//!
//! CODEOWNERS routes whole files: a file matched by a line needs an approval from one of that
//! line's owners. So a file is routed to a role's owners only when every role it defines or
//! grants that has owners has the same ones; otherwise one owner could approve for another,
//! and the file is left to the default owners, with an explanation. `keyward approvals verify`
//! checks each grant on its own whatever the layout, and is what CI should run.
//!
//! Guarantees: a pure function of the configuration; the output holds only paths that CODEOWNERS
//! can name exactly (others are explained, not written) and handles that validation checked
//! (GitHub logins and teams) or plain e-mail addresses, so no configuration value can add a
//! line of its own.

use std::collections::{BTreeMap, BTreeSet};

use crate::load::Loaded;
use crate::model::{DesiredState, Kind, Name, Owner};
use crate::validate::Origins;

/// The CODEOWNERS lines, in order (later lines win), and what could not be routed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeOwners {
    pub rules: Vec<Rule>,
    pub unrouted: Vec<Unrouted>,
}

/// One line: a path pattern and its owners' handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The pattern, escaped for CODEOWNERS, anchored at the repository root.
    pub pattern: String,
    pub owners: Vec<String>,
    /// Why, in words (written as a comment above the line).
    pub why: String,
}

/// Something that could not be routed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrouted {
    /// The file (relative to the configuration folder), or a role.
    pub subject: String,
    pub why: String,
}

/// What [`build`] needs besides the configuration.
pub struct Layout<'a> {
    /// The configuration folder's path inside the repository (`""` at its root, else ending
    /// with `/`).
    pub prefix: &'a str,
    /// Where the CODEOWNERS file itself lives, from the repository root (it needs owners too).
    pub codeowners_path: &'a str,
}

/// The handle CODEOWNERS knows a person by: `@login`, else an e-mail address.
fn user_handle(state: &DesiredState, user: &Name) -> Option<String> {
    let u = state.users.get(user)?;
    if let Some(login) = &u.github
        && crate::validate::is_github_login(login)
    {
        return Some(format!("@{login}"));
    }
    u.email.as_ref().filter(|e| is_plain_email(e)).cloned()
}

/// An address CODEOWNERS can hold: one `@`, no spaces, controls or characters with a meaning
/// in the file.
fn is_plain_email(e: &str) -> bool {
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && !"#\\*?[]!@,".contains(c));
    matches!(e.split_once('@'), Some((a, b)) if ok(a) && ok(b))
}

/// The handles of `owners`, and the names that have none.
fn handles(state: &DesiredState, owners: &[Owner]) -> (BTreeSet<String>, Vec<String>) {
    let (mut out, mut missing) = (BTreeSet::new(), Vec::new());
    for o in owners {
        match o {
            Owner::User(u) => match user_handle(state, u) {
                Some(h) => {
                    out.insert(h);
                }
                None => missing.push(format!("user {u} (no `github` login or e-mail)")),
            },
            Owner::Group(g) => {
                let Some(group) = state.settings.governance.reviewers.get(&g.group) else { continue };
                if let Some(team) = group.github.as_ref().filter(|t| crate::validate::is_github_team(t)) {
                    out.insert(team.clone());
                    continue;
                }
                for m in &group.members {
                    match user_handle(state, m) {
                        Some(h) => {
                            out.insert(h);
                        }
                        None => missing.push(format!("user {m} of group {} (no `github` login or e-mail)", g.group)),
                    }
                }
            }
        }
    }
    (out, missing)
}

/// `path` as a CODEOWNERS pattern anchored at the root, or `None` when it holds characters
/// CODEOWNERS cannot name exactly.
fn pattern(prefix: &str, path: &str) -> Option<String> {
    let full = format!("{prefix}{path}");
    if full.is_empty()
        || !full.chars().all(|c| c.is_alphanumeric() || "-_./@+~= ".contains(c))
        || full.split('/').any(|s| s == "..")
    {
        return None;
    }
    Some(format!("/{}", full.replace(' ', "\\ ")))
}

/// Shows a set of handles: `@a @b`.
fn show(h: &BTreeSet<String>) -> String {
    h.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// Builds the CODEOWNERS lines for a validated configuration.
pub fn build(state: &DesiredState, loaded: &Loaded, origins: &Origins, layout: &Layout) -> CodeOwners {
    let mut out = CodeOwners::default();
    let defaults = &state.settings.governance.default_owners;
    let (default_handles, default_missing) = handles(state, defaults);
    for m in default_missing {
        out.unrouted.push(Unrouted { subject: "governance.defaultOwners".into(), why: format!("{m} cannot be named") });
    }

    // The handles that decide for each role with owners.
    let mut role_handles: BTreeMap<&Name, BTreeSet<String>> = BTreeMap::new();
    for (name, role) in &state.roles {
        if role.owners.is_empty() {
            if role.privileged {
                out.unrouted
                    .push(Unrouted { subject: format!("role {name}"), why: "privileged, and names no owners".into() });
            }
            continue;
        }
        let (h, missing) = handles(state, &role.owners);
        for m in &missing {
            out.unrouted.push(Unrouted { subject: format!("role {name}"), why: format!("owner {m} cannot be named") });
        }
        if !h.is_empty() {
            role_handles.insert(name, h);
        }
    }

    // What each file asks for: the owner sets of the roles it defines and grants.
    let mut files: BTreeMap<usize, BTreeMap<BTreeSet<String>, BTreeSet<&Name>>> = BTreeMap::new();
    let file_of = |kind: Kind, name: &Name| origins.get(kind, name).map(|o| loaded.documents[o.doc].file);
    for name in state.roles.keys() {
        let Some(file) = file_of(Kind::Role, name) else { continue };
        let entry = files.entry(file).or_default();
        if let Some(h) = role_handles.get(name) {
            entry.entry(h.clone()).or_default().insert(name);
        }
    }
    let grants = state
        .users
        .iter()
        .map(|(n, u)| (Kind::User, n, &u.roles))
        .chain(state.service_accounts.iter().map(|(n, s)| (Kind::ServiceAccount, n, &s.roles)));
    for (kind, name, roles) in grants {
        let Some(file) = file_of(kind, name) else { continue };
        let entry = files.entry(file).or_default();
        for g in roles {
            if let Some((role, h)) = role_handles.get_key_value(g.role()) {
                entry.entry(h.clone()).or_default().insert(role);
            }
        }
    }

    // The configuration folder and keyward.yaml first: later, more specific lines win.
    if !default_handles.is_empty() {
        let owners: Vec<String> = default_handles.iter().cloned().collect();
        let folder = if layout.prefix.is_empty() {
            "*".to_string()
        } else {
            pattern(layout.prefix, "").map(|p| format!("{}/", p.trim_end_matches('/'))).unwrap_or_default()
        };
        if !folder.is_empty() {
            out.rules.push(Rule {
                pattern: folder,
                owners: owners.clone(),
                why: "the configuration: governance.defaultOwners".into(),
            });
        }
    } else {
        out.unrouted.push(Unrouted {
            subject: crate::load::SETTINGS_FILE.into(),
            why: "governance.defaultOwners names nobody, so keyward.yaml (targets, reviewers, policy settings), the policies and this file have no owners".into(),
        });
    }

    for (file, sets) in files {
        let path = loaded.files[file].path.to_string_lossy().replace('\\', "/");
        if sets.is_empty() {
            continue;
        }
        if sets.len() > 1 {
            let listed: Vec<String> = sets
                .iter()
                .map(|(h, roles)| {
                    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                    format!("{} ({})", roles.join(", "), show(h))
                })
                .collect();
            out.unrouted.push(Unrouted {
                subject: path,
                why: format!(
                    "defines or grants roles with different owners: {}; CODEOWNERS routes whole files, so keep each role's grants and definition in files of their own to route them",
                    listed.join("; ")
                ),
            });
            continue;
        }
        let (h, roles) = sets.into_iter().next().expect("one set");
        let Some(pattern) = pattern(layout.prefix, &path) else {
            out.unrouted.push(Unrouted {
                subject: path.escape_debug().to_string(),
                why: "its path has characters CODEOWNERS cannot name exactly; rename it".into(),
            });
            continue;
        };
        let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        out.rules.push(Rule {
            pattern,
            owners: h.into_iter().collect(),
            why: format!("owners of {}", roles.join(", ")),
        });
    }

    if !default_handles.is_empty() {
        let owners: Vec<String> = default_handles.iter().cloned().collect();
        let sensitive = std::iter::once((layout.prefix.to_string(), crate::load::SETTINGS_FILE.to_string()))
            .chain(std::iter::once((String::new(), layout.codeowners_path.to_string())));
        for (prefix, path) in sensitive {
            if let Some(pattern) = pattern(&prefix, &path) {
                out.rules.push(Rule { pattern, owners: owners.clone(), why: "governance.defaultOwners".into() });
            }
        }
    }
    out
}

impl CodeOwners {
    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# CODEOWNERS written by `keyward codeowners` from the owners of roles in the configuration.\n\
             # Change roles' `owners` (and governance in keyward.yaml) and run it again, rather than\n\
             # editing this file. `keyward approvals verify` checks every privileged grant in CI.\n",
        );
        if !self.unrouted.is_empty() {
            s.push_str("#\n# Not routed:\n");
            for u in &self.unrouted {
                s.push_str(&format!("# - {}: {}\n", one_line(&u.subject), one_line(&u.why)));
            }
        }
        for r in &self.rules {
            s.push_str(&format!("\n# {}\n{} {}\n", one_line(&r.why), r.pattern, r.owners.join(" ")));
        }
        s
    }
}

/// Text safe inside a comment line.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_name_paths_exactly_or_not_at_all() {
        assert_eq!(pattern("", "roles/finance.yaml").as_deref(), Some("/roles/finance.yaml"));
        assert_eq!(pattern("config/", "users/a b.yaml").as_deref(), Some("/config/users/a\\ b.yaml"));
        for bad in ["users/*.yaml", "users/[a].yaml", "users/#x.yaml", "a\n* @evil", "../x.yaml", "a!.yaml"] {
            assert_eq!(pattern("", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_plain_addresses_are_handles() {
        assert!(is_plain_email("laura@northwind.example"));
        for bad in ["laura", "a b@x", "a@b@c", "@x", "x@", "a@x\n* @evil", "a#b@x"] {
            assert!(!is_plain_email(bad), "{bad:?}");
        }
    }
}
