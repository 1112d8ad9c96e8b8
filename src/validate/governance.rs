//! Checks of who is accountable for access: role owners, groups of reviewers, GitHub logins,
//! and the certification files of campaigns.
//!
//! A GitHub login decides whose approval counts, so two users claiming the same login is an
//! error, as is a login GitHub could not have issued.

use std::collections::HashMap;

use super::{Origins, Sink, closest};
use crate::diagnostic::Diagnostic;
use crate::load::PathSeg;
use crate::model::{Decision, DesiredState, Kind, Name, Owner};

pub(super) fn check(sink: &mut Sink, origins: &Origins, state: &DesiredState) {
    let mut c = Checker { sink, origins, state };
    c.logins();
    c.owners();
    c.eligible();
    c.settings();
    c.certifications();
}

struct Checker<'s, 'a> {
    sink: &'s mut Sink<'a>,
    origins: &'s Origins,
    state: &'s DesiredState,
}

/// Whether `s` is a login GitHub could have issued: letters, digits and single hyphens, not
/// at either end, at most 39 characters.
pub fn is_github_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Whether `s` is a GitHub team as CODEOWNERS names it: `@org/team`.
pub fn is_github_team(s: &str) -> bool {
    let Some((org, team)) = s.strip_prefix('@').and_then(|r| r.split_once('/')) else { return false };
    is_github_login(org)
        && !team.is_empty()
        && team.len() <= 100
        && team.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Checker<'_, '_> {
    fn report(&mut self, kind: Kind, name: &Name, path: &[PathSeg], diag: Diagnostic) {
        let Some(origin) = self.origins.get(kind, name) else { return };
        let doc = &self.sink.loaded.documents[origin.doc];
        self.sink.at(doc, path, diag);
    }

    fn report_setting(&mut self, path: &[PathSeg], diag: Diagnostic) {
        let diag = match self.origins.locate_setting(self.sink.loaded, path) {
            Some(loc) => {
                let field = crate::load::locate::DisplayPath(path).to_string();
                diag.in_file(loc.file).at(loc.line, loc.column).field(field)
            }
            None => diag,
        };
        self.sink.diags.push(diag);
    }

    /// The diagnostic for an owner that names nothing, or `None` when it names a User or a group.
    fn unknown_owner(&self, owner: &Owner) -> Option<Diagnostic> {
        match owner {
            Owner::User(u) => {
                if self.state.users.contains_key(u) || self.origins.is_broken(Kind::User, u) {
                    return None;
                }
                let d = Diagnostic::error("unknown-reference", format!("owner `{u}` is not a defined User"));
                Some(match closest(u.as_str(), self.state.users.keys().map(Name::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help("name a User, or a group of reviewers as {group: NAME}"),
                })
            }
            Owner::Group(g) => {
                let groups = &self.state.settings.governance.reviewers;
                if groups.contains_key(&g.group) {
                    return None;
                }
                let d = Diagnostic::error(
                    "unknown-reviewers",
                    format!("group `{}` is not defined under governance.reviewers in keyward.yaml", g.group),
                );
                Some(match closest(g.group.as_str(), groups.keys().map(Name::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!(
                        "define it in keyward.yaml: governance: {{reviewers: {{{}: {{members: [...]}}}}}}",
                        g.group
                    )),
                })
            }
        }
    }

    fn logins(&mut self) {
        let state = self.state;
        let mut seen: HashMap<String, &Name> = HashMap::new();
        for (name, user) in &state.users {
            let Some(login) = &user.github else { continue };
            let path: Vec<PathSeg> = vec!["github".into()];
            if !is_github_login(login) {
                let help = if login.starts_with('@') {
                    "write the login without `@`".to_string()
                } else {
                    "a GitHub login has letters, digits and single hyphens, at most 39 characters".to_string()
                };
                self.report(
                    Kind::User,
                    name,
                    &path,
                    Diagnostic::error("invalid-github-login", format!("`{login}` is not a GitHub login")).help(help),
                );
                continue;
            }
            // Approvers are given as logins or User names: one must never mean two people.
            let lower = login.to_ascii_lowercase();
            if let Some(other) = Name::new(&lower).ok().filter(|n| n != name && state.users.contains_key(n)) {
                self.report(
                    Kind::User,
                    name,
                    &path,
                    Diagnostic::error(
                        "ambiguous-github-login",
                        format!("GitHub login `{login}` of user `{name}` is the name of another user, `{other}`"),
                    )
                    .help(format!(
                        "an approver named `{login}` would mean two people; correct the login or rename a user"
                    )),
                );
            }
            // GitHub logins are not case-sensitive.
            if let Some(first) = seen.insert(lower, name) {
                self.report(
                    Kind::User,
                    name,
                    &path,
                    Diagnostic::error(
                        "duplicate-github-login",
                        format!("GitHub login `{login}` is claimed by users `{first}` and `{name}`"),
                    )
                    .help("a login identifies one person's approvals; give each user their own"),
                );
            }
        }
    }

    fn owners(&mut self) {
        let state = self.state;
        for (name, role) in &state.roles {
            for (i, owner) in role.owners.iter().enumerate() {
                if let Some(d) = self.unknown_owner(owner) {
                    let path: Vec<PathSeg> = match owner {
                        Owner::User(_) => vec!["owners".into(), i.into()],
                        Owner::Group(_) => vec!["owners".into(), i.into(), "group".into()],
                    };
                    let d = Diagnostic { message: format!("role `{name}`: {}", d.message), ..d };
                    self.report(Kind::Role, name, &path, d);
                }
            }
        }
    }

    /// Eligible assignments: activation settings only with `eligible`, at most a day, and the
    /// same for every eligible assignment of a role (they are the role's one policy).
    fn eligible(&mut self) {
        let state = self.state;
        let mut first: std::collections::BTreeMap<&Name, (Kind, &Name, &crate::model::RoleGrantDetail)> =
            std::collections::BTreeMap::new();
        let holders = state
            .users
            .iter()
            .map(|(n, u)| (Kind::User, n, &u.roles))
            .chain(state.service_accounts.iter().map(|(n, s)| (Kind::ServiceAccount, n, &s.roles)));
        for (kind, name, grants) in holders {
            for (i, g) in grants.iter().enumerate() {
                let crate::model::RoleGrant::Detailed(d) = g else { continue };
                let p = |f: &str| -> Vec<PathSeg> { vec!["roles".into(), i.into(), f.into()] };
                if !d.eligible {
                    for (field, set) in
                        [("maxActivation", d.max_activation.is_some()), ("requires", d.requires.is_some())]
                    {
                        if set {
                            self.report(
                                kind,
                                name,
                                &p(field),
                                Diagnostic::error(
                                    "activation-without-eligible",
                                    format!("`{field}` applies only to an eligible assignment"),
                                )
                                .help("add `eligible: true`, or remove the field"),
                            );
                        }
                    }
                    continue;
                }
                if kind == Kind::ServiceAccount {
                    self.report(
                        kind,
                        name,
                        &p("eligible"),
                        Diagnostic::error(
                            "eligible-service-account",
                            "a service account cannot activate a role; its assignments are active",
                        )
                        .help("remove `eligible: true`"),
                    );
                    continue;
                }
                if let Some(m) = d.max_activation
                    && !(60..=86_400).contains(&m.seconds())
                {
                    self.report(
                        kind,
                        name,
                        &p("maxActivation"),
                        Diagnostic::error("invalid-activation", format!("maxActivation {m} is not between 1m and 24h"))
                            .help("an activation lasts at most a day, for example maxActivation: 8h"),
                    );
                }
                let settings = (d.max_activation.map(|m| m.seconds()), &d.requires);
                match first.get(&d.role) {
                    None => {
                        first.insert(&d.role, (kind, name, d));
                    }
                    Some((_, other, o)) if (o.max_activation.map(|m| m.seconds()), &o.requires) != settings => {
                        self.report(
                            kind,
                            name,
                            &p("role"),
                            Diagnostic::error(
                                "activation-mismatch",
                                format!(
                                    "the eligible assignments of `{}` to `{other}` and `{name}` ask for different activation rules (maxActivation, requires)",
                                    d.role
                                ),
                            )
                            .help("what activating a role takes is one setting of the role on the target; write the same on every eligible assignment of it"),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
    }

    fn settings(&mut self) {
        let state = self.state;
        let gov = &state.settings.governance;
        for (group, g) in &gov.reviewers {
            let base: Vec<PathSeg> = vec!["governance".into(), "reviewers".into(), group.as_str().into()];
            if g.members.is_empty() {
                let mut p = base.clone();
                p.push("members".into());
                self.report_setting(
                    &p,
                    Diagnostic::error("empty-reviewers", format!("group of reviewers `{group}` has no members"))
                        .help("list the Users who review for it"),
                );
            }
            for (i, m) in g.members.iter().enumerate() {
                if !state.users.contains_key(m) && !self.origins.is_broken(Kind::User, m) {
                    let mut p = base.clone();
                    p.extend(["members".into(), i.into()]);
                    let mut d = Diagnostic::error(
                        "unknown-reference",
                        format!("group of reviewers `{group}` lists `{m}`, which is not a defined User"),
                    );
                    d = match closest(m.as_str(), state.users.keys().map(Name::as_str)) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help("list Users by their `name`"),
                    };
                    self.report_setting(&p, d);
                }
            }
            if let Some(team) = &g.github
                && !is_github_team(team)
            {
                let mut p = base.clone();
                p.push("github".into());
                self.report_setting(
                    &p,
                    Diagnostic::error("invalid-github-team", format!("`{team}` is not a GitHub team"))
                        .help("write it as CODEOWNERS does: @org/team-name"),
                );
            }
        }
        for (i, owner) in gov.default_owners.iter().enumerate() {
            if let Some(d) = self.unknown_owner(owner) {
                self.report_setting(&["governance".into(), "defaultOwners".into(), i.into()], d);
            }
        }
        if let Some(max) = gov.elevation.as_ref().and_then(|e| e.max_duration)
            && max.seconds() <= 0
        {
            self.report_setting(
                &["governance".into(), "elevation".into(), "maxDuration".into()],
                Diagnostic::error("invalid-duration", "elevation.maxDuration must be longer than zero")
                    .help("for example maxDuration: 8h"),
            );
        }
    }

    fn certifications(&mut self) {
        let state = self.state;
        for (name, cert) in &state.certifications {
            if !state.campaigns.contains_key(&cert.campaign) && !self.origins.is_broken(Kind::Campaign, &cert.campaign)
            {
                self.report(
                    Kind::Certification,
                    name,
                    &["campaign".into()],
                    Diagnostic::error(
                        "unknown-reference",
                        format!("Certification `{name}` belongs to campaign `{}`, which is not defined", cert.campaign),
                    )
                    .help("keep reviews/NAME/campaign.yaml beside the reviewers' files"),
                );
            }
            if let Some(d) = self.unknown_owner(&cert.reviewer) {
                // A reviewer who left since the campaign opened is not a configuration error.
                let mut d = d;
                d.level = crate::diagnostic::Level::Warning;
                self.report(Kind::Certification, name, &["reviewer".into()], d);
            }
            for (i, line) in cert.lines.iter().enumerate() {
                let p = |f: &str| -> Vec<PathSeg> { vec!["lines".into(), i.into(), f.into()] };
                if line.user.is_some() == line.service_account.is_some() {
                    self.report(
                        Kind::Certification,
                        name,
                        &["lines".into(), i.into()],
                        Diagnostic::error(
                            "certification-holder",
                            "a line names exactly one of `user` and `serviceAccount`",
                        )
                        .help("keep the line as `keyward certify open` wrote it"),
                    );
                }
                let no_reason = line.reason.as_deref().is_none_or(|r| r.trim().is_empty());
                if line.decision == Some(Decision::Revoke) && no_reason {
                    self.report(
                        Kind::Certification,
                        name,
                        &p("decision"),
                        Diagnostic::error("empty-reason", "a `revoke` decision needs a reason")
                            .help("add `reason:` to the line, saying why the access should go"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_logins_and_teams() {
        for ok in ["octocat", "a", "Mona-Lisa", "x1-y2-z3", &"a".repeat(39)] {
            assert!(is_github_login(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "@octocat", "a_b", "a.b", &"a".repeat(40), "a b", "a\nb"] {
            assert!(!is_github_login(bad), "{bad:?}");
        }
        assert!(is_github_team("@northwind/finance-leads"));
        assert!(is_github_team("@n/t.x_y"));
        for bad in ["northwind/finance", "@northwind", "@/t", "@n/", "@n/t t", "@n/t\n* @evil"] {
            assert!(!is_github_team(bad), "{bad:?}");
        }
    }
}
