//! Cross-reference checks over a parsed configuration: every name a resource mentions must
//! exist, bindings must suit their target, and a few structural rules that serde cannot say.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{Origins, Sink, closest};
use crate::diagnostic::{Diagnostic, Level};
use crate::load::PathSeg;
use crate::model::{Binding, BindingKind, CredentialType, DesiredState, Kind, Name, RoleGrant};
use crate::model::{BindingSupport, capabilities};

mod teams;

/// Characters Active Directory refuses in a sAMAccountName.
const AD_SAM_FORBIDDEN: &str = "\"/\\[]:;|=,+*?<>";
/// The longest sAMAccountName of a user on Windows Server AD.
const AD_SAM_MAX: usize = 20;
/// The longest CN (`rangeUpper` of Common-Name).
const AD_CN_MAX: usize = 64;

mod appusers;

pub(super) fn check(sink: &mut Sink, origins: &Origins, state: &DesiredState) {
    let mut c = Checker { sink, origins, state };
    c.users();
    c.roles();
    c.group_teams();
    c.service_accounts();
    c.data();
    c.auth_policies();
    c.sod_rules();
    c.guards();
}

struct Checker<'s, 'a> {
    sink: &'s mut Sink<'a>,
    origins: &'s Origins,
    state: &'s DesiredState,
}

impl Checker<'_, '_> {
    fn report(&mut self, kind: Kind, name: &Name, path: &[PathSeg], diag: Diagnostic) {
        let Some(origin) = self.origins.get(kind, name) else { return };
        let doc = &self.sink.loaded.documents[origin.doc];
        self.sink.at(doc, path, diag);
    }

    /// Whether another problem of `kind`/`name` is reported (see [`Sink::accepts`]); when not,
    /// counts it. Asked before looking for a "did you mean", which reads every name.
    fn accepts(&mut self, kind: Kind, name: &Name) -> bool {
        let Some(origin) = self.origins.get(kind, name) else { return false };
        if self.sink.accepts(&self.sink.loaded.documents[origin.doc]) {
            return true;
        }
        self.sink.drop_one(Level::Error);
        false
    }

    /// Reports `value` if no resource of `target_kind` has that name. `known` is only walked
    /// to suggest a name when the reference dangles, so a check costs one map lookup.
    fn exists<V>(
        &mut self,
        kind: Kind,
        name: &Name,
        path: &[PathSeg],
        target_kind: Kind,
        value: &Name,
        known: &BTreeMap<Name, V>,
    ) -> bool {
        if known.contains_key(value) || self.origins.is_broken(target_kind, value) {
            return true;
        }
        if !self.accepts(kind, name) {
            return false;
        }
        let mut d = Diagnostic::error(
            "unknown-reference",
            format!("{kind} `{name}` refers to {target_kind} `{value}`, which is not defined"),
        );
        d = match closest(value.as_str(), known.keys().map(|n| n.as_str())) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("define a {target_kind} named `{value}`, or correct the name")),
        };
        self.report(kind, name, path, d);
        false
    }

    fn target_exists(&mut self, kind: Kind, name: &Name, path: &[PathSeg], target: &Name) -> bool {
        if self.state.settings.targets.contains_key(target) {
            return true;
        }
        let known: Vec<&str> = self.state.settings.targets.keys().map(Name::as_str).collect();
        let mut d = Diagnostic::error(
            "unknown-target",
            format!("{kind} `{name}` refers to target `{target}`, which keyward.yaml does not define"),
        );
        d = match closest(target.as_str(), known.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("targets defined in keyward.yaml: {}", known.join(", "))),
        };
        self.report(kind, name, path, d);
        false
    }

    fn grants(&mut self, kind: Kind, name: &Name, grants: &[RoleGrant]) {
        let mut seen = BTreeSet::new();
        for (i, g) in grants.iter().enumerate() {
            let role = g.role();
            let known = self.state.roles.contains_key(role) || self.origins.is_broken(Kind::Role, role);
            let first = seen.insert(role);
            if known && first {
                continue; // The common case costs two lookups and no allocation.
            }
            let path: Vec<PathSeg> = match g {
                RoleGrant::Name(_) => vec!["roles".into(), i.into()],
                RoleGrant::Detailed(_) => vec!["roles".into(), i.into(), "role".into()],
            };
            self.exists(kind, name, &path, Kind::Role, role, &self.state.roles);
            if !first {
                self.report(
                    kind,
                    name,
                    &path,
                    Diagnostic::error("duplicate-role", format!("{kind} `{name}` lists role `{role}` twice"))
                        .help("keep one entry per role"),
                );
            }
        }
    }

    /// Active Directory's naming rules, for each `flavor: ad` target that holds the user: keyed
    /// by sAMAccountName, the userName is that attribute (no `" / \ [ ] : ; | = , + * ? < >`, at
    /// most 20 characters); the entry's CN is the userName (at most 64 characters).
    fn ad_names(&mut self, name: &Name, user: &crate::model::User) {
        let state = self.state;
        // (is an error, message): the 20-character limit is Windows Server's; Samba's DC takes
        // longer names, so a longer one is a warning.
        let mut problems: BTreeSet<(bool, String)> = BTreeSet::new();
        for target in state.settings.targets.values() {
            let crate::model::config::Connection::Ldap(conn) = &target.connection else { continue };
            if conn.flavor != crate::model::config::LdapFlavor::Ad
                || !state.present_on(user.explicit_targets(), user.roles.iter().map(RoleGrant::role), target)
            {
                continue;
            }
            let un = &user.user_name;
            let length = un.chars().count();
            if conn.user_key.eq_ignore_ascii_case("sAMAccountName") {
                if let Some(c) = un.chars().find(|c| AD_SAM_FORBIDDEN.contains(*c)) {
                    problems.insert((true, format!(
                        "userName `{un}` is the sAMAccountName on Active Directory target `{}`, which cannot hold `{c}` (none of {AD_SAM_FORBIDDEN})",
                        target.name
                    )));
                }
                if length > AD_SAM_MAX {
                    problems.insert((false, format!(
                        "userName `{un}` is the sAMAccountName on Active Directory target `{}`, which Windows Server AD limits to {AD_SAM_MAX} characters ({length} here)",
                        target.name
                    )));
                }
            }
            if length > AD_CN_MAX {
                problems.insert((true, format!(
                    "userName `{un}` is the CN of the account on Active Directory target `{}`, which holds at most {AD_CN_MAX} characters ({length} here)",
                    target.name
                )));
            }
        }
        for (error, message) in problems {
            let diag =
                if error { Diagnostic::error("ad-naming", message) } else { Diagnostic::warning("ad-naming", message) };
            self.report(
                Kind::User,
                name,
                &["userName".into()],
                diag.help(
                    "shorten or correct the userName, or key the target by userPrincipalName (userKey: userPrincipalName)",
                ),
            );
        }
    }

    fn targets(&mut self, kind: Kind, name: &Name, targets: Option<&Vec<Name>>) {
        for (i, t) in targets.into_iter().flatten().enumerate() {
            self.target_exists(kind, name, &["targets".into(), i.into()], t);
        }
    }

    fn users(&mut self) {
        let state = self.state;
        let mut user_names: HashMap<String, &Name> = HashMap::new();
        for (name, user) in &state.users {
            let un = user.user_name.trim();
            if un.is_empty() || un != user.user_name || un.chars().any(char::is_control) {
                self.report(
                    Kind::User,
                    name,
                    &["userName".into()],
                    Diagnostic::error(
                        "invalid-user-name",
                        format!(
                            "userName {:?} is empty or has surrounding spaces or control characters",
                            user.user_name
                        ),
                    ),
                );
            }
            if let Some(first) = user_names.insert(user.user_name.to_ascii_lowercase(), name) {
                self.report(
                    Kind::User,
                    name,
                    &["userName".into()],
                    Diagnostic::error(
                        "duplicate-user-name",
                        format!("userName `{}` is used by users `{first}` and `{name}`", user.user_name),
                    )
                    .help("userNames are compared without regard to case and must be unique"),
                );
            }
            if !state.settings.scope.contains(&user.user_name) {
                self.report(
                    Kind::User,
                    name,
                    &["userName".into()],
                    Diagnostic::error(
                        "outside-scope",
                        format!(
                            "userName `{}` is outside ownership.scope, so keyward would not manage it",
                            user.user_name
                        ),
                    )
                    .help("correct the userName, or widen ownership.scope in keyward.yaml"),
                );
            }
            if let Some(m) = &user.manager {
                if m == name {
                    self.report(
                        Kind::User,
                        name,
                        &["manager".into()],
                        Diagnostic::error("self-manager", format!("user `{name}` is their own manager"))
                            .help("remove `manager`, or name the user's real manager"),
                    );
                } else {
                    self.exists(Kind::User, name, &["manager".into()], Kind::User, m, &state.users);
                }
            }
            self.grants(Kind::User, name, &user.roles);
            match &user.targets {
                Some(crate::model::UserTargets::Settings(m)) => {
                    for (t, s) in m {
                        let path = ["targets".into(), t.as_str().into()];
                        if !self.target_exists(Kind::User, name, &path, t) || s.business_unit.is_none() {
                            continue;
                        }
                        let provider = self.state.settings.targets[t].provider();
                        if !crate::model::capabilities(provider).business_units {
                            self.report(
                                Kind::User,
                                name,
                                &[path[0].clone(), path[1].clone(), "businessUnit".into()],
                                Diagnostic::error(
                                    "no-business-units",
                                    format!("target `{t}` (provider `{provider}`) has no business units"),
                                )
                                .help("businessUnit applies to dataverse targets"),
                            );
                        }
                    }
                }
                Some(crate::model::UserTargets::List(l)) => self.targets(Kind::User, name, Some(l)),
                None => {}
            }
            self.ad_names(name, user);
        }
        // Manager cycles longer than one. A walk stops at a user an earlier walk has visited,
        // so each user is walked once and each cycle found once: a chain of 50,000 managers
        // costs 50,000 steps, not 50,000 squared.
        let mut visited: HashSet<&Name> = HashSet::with_capacity(state.users.len());
        let (mut seen, mut on_walk) = (Vec::new(), HashMap::new());
        for start in state.users.keys() {
            if !visited.insert(start) {
                continue;
            }
            seen.clear();
            seen.push(start);
            on_walk.clear();
            on_walk.insert(start, 0);
            let mut cur = start;
            while let Some(next) = state.users.get(cur).and_then(|u| u.manager.as_ref()) {
                if next == cur || !state.users.contains_key(next) {
                    break;
                }
                if let Some(&pos) = on_walk.get(next) {
                    if seen.len() - pos > 1 {
                        let names: Vec<&str> = seen[pos..].iter().map(|n| n.as_str()).collect();
                        self.report(
                            Kind::User,
                            next,
                            &["manager".into()],
                            Diagnostic::error(
                                "manager-cycle",
                                format!("managers form a cycle: {} -> {}", names.join(" -> "), next),
                            )
                            .help("someone in the chain must have no manager, or a manager outside the cycle"),
                        );
                    }
                    break;
                }
                if !visited.insert(next) {
                    break;
                }
                on_walk.insert(next, seen.len());
                seen.push(next);
                cur = next;
            }
        }
    }

    fn roles(&mut self) {
        let state = self.state;
        let mut bound: BTreeMap<(&Name, &Binding), &Name> = BTreeMap::new();
        for (name, role) in &state.roles {
            for (target, binding) in &role.bindings {
                let path: Vec<PathSeg> = vec!["bindings".into(), target.as_str().into()];
                if !self.target_exists(Kind::Role, name, &path, target) {
                    continue;
                }
                let provider = state.settings.targets[target].provider();
                let caps = capabilities(provider);
                if binding.kind() == BindingKind::FieldSecurityProfile {
                    // Derived from DataClassifications (plan::derived), never written in a role.
                    self.report(
                        Kind::Role,
                        name,
                        &path,
                        Diagnostic::error(
                            "derived-binding",
                            "field security profiles are not bound in roles; keyward keeps one per DataClassification",
                        )
                        .help(format!("list the columns under `assets: {{{target}: {{columns: [...]}}}}` of a DataClassification, and its reader roles under `readers`")),
                    );
                    continue;
                }
                if caps.binding(binding.kind()) == BindingSupport::Unsupported {
                    let supported: Vec<String> = caps
                        .bindings
                        .keys()
                        .filter(|k| **k != BindingKind::FieldSecurityProfile)
                        .map(|k| k.to_string())
                        .collect();
                    self.report(
                        Kind::Role,
                        name,
                        &path,
                        Diagnostic::error(
                            "binding-not-supported",
                            format!("target `{target}` (provider `{provider}`) has no {} bindings", binding.kind()),
                        )
                        .help(format!("provider `{provider}` supports: {}", supported.join(", "))),
                    );
                }
                if binding.object_name().trim().is_empty() {
                    self.report(
                        Kind::Role,
                        name,
                        &path,
                        Diagnostic::error("empty-binding", format!("role `{name}` binds an empty name on `{target}`")),
                    );
                }
                if let Some(other) = bound.insert((target, binding), name) {
                    self.report(
                        Kind::Role,
                        name,
                        &path,
                        Diagnostic::error(
                            "shared-binding",
                            format!("roles `{other}` and `{name}` both bind {} on target `{target}`", binding.label()),
                        )
                        .help("each group or role on a target belongs to one keyward role; merge the roles or bind different objects"),
                    );
                }
            }
        }
    }

    fn service_accounts(&mut self) {
        let state = self.state;
        for (name, sa) in &state.service_accounts {
            self.exists(Kind::ServiceAccount, name, &["owner".into()], Kind::User, &sa.owner, &state.users);
            self.grants(Kind::ServiceAccount, name, &sa.roles);
            match &sa.targets {
                Some(crate::model::ServiceAccountTargets::List(l)) => self.targets(Kind::ServiceAccount, name, Some(l)),
                Some(crate::model::ServiceAccountTargets::Settings(m)) => appusers::check(self, name, sa, m),
                None => {}
            }
            let mut seen = BTreeSet::new();
            for (i, cred) in sa.credentials.iter().enumerate() {
                let p = |f: &str| -> Vec<PathSeg> { vec!["credentials".into(), i.into(), f.into()] };
                if !seen.insert(&cred.name) {
                    self.report(
                        Kind::ServiceAccount,
                        name,
                        &p("name"),
                        Diagnostic::error(
                            "duplicate-credential",
                            format!("credential `{}` is listed twice", cred.name),
                        ),
                    );
                }
                if cred.kind == CredentialType::Secret && cred.key_algorithm.is_some() {
                    self.report(
                        Kind::ServiceAccount,
                        name,
                        &p("keyAlgorithm"),
                        Diagnostic::error("key-algorithm-on-secret", "keyAlgorithm applies only to certificates")
                            .help("remove keyAlgorithm, or set type: certificate"),
                    );
                }
                if cred.lifetime.seconds() <= 0 {
                    self.report(
                        Kind::ServiceAccount,
                        name,
                        &p("lifetime"),
                        Diagnostic::error("invalid-lifetime", "a credential's lifetime must be longer than zero"),
                    );
                }
                if let Some(rb) = cred.rotate_before
                    && rb >= cred.lifetime
                {
                    self.report(
                        Kind::ServiceAccount,
                        name,
                        &p("rotateBefore"),
                        Diagnostic::error(
                            "rotation-window",
                            format!("rotateBefore ({rb}) must be shorter than lifetime ({})", cred.lifetime),
                        )
                        .help("otherwise every new credential would be rotated at once"),
                    );
                }
                if let Some(crate::model::Deliver::File(file)) = &cred.deliver
                    && let Err(e) = crate::atomic::confined(file)
                {
                    let mut at = p("deliver");
                    at.push("file".into());
                    self.report(
                        Kind::ServiceAccount,
                        name,
                        &at,
                        Diagnostic::error("path-outside-configuration", format!("deliver.file: {e}"))
                            .help("write a path below the configuration folder, such as .keyward/secrets/NAME.pem"),
                    );
                }
                if let Some(crate::model::Deliver::KeyVault(kv)) = &cred.deliver {
                    if !crate::model::KeyVaultSink::valid_secret_name(&kv.secret) {
                        self.report(
                            Kind::ServiceAccount,
                            name,
                            &p("deliver"),
                            Diagnostic::error(
                                "invalid-key-vault-secret",
                                format!("`{}` is not a Key Vault secret name", kv.secret),
                            )
                            .help("use 1 to 127 letters, digits and dashes"),
                        );
                    }
                    let url_ok = reqwest::Url::parse(&kv.vault)
                        .is_ok_and(|u| crate::remote::http::check_url(&u).is_ok() && u.host_str().is_some());
                    if !url_ok {
                        self.report(
                            Kind::ServiceAccount,
                            name,
                            &p("deliver"),
                            Diagnostic::error(
                                "invalid-key-vault-url",
                                format!("keyVault vault `{}` is not an https URL", kv.vault),
                            )
                            .help("write the vault's URL, for example https://contoso-kv.vault.azure.net"),
                        );
                    }
                }
                if let Some(ov) = cred.overlap
                    && ov >= cred.lifetime
                {
                    self.report(
                        Kind::ServiceAccount,
                        name,
                        &p("overlap"),
                        Diagnostic::error(
                            "invalid-overlap",
                            format!("overlap ({ov}) must be shorter than lifetime ({})", cred.lifetime),
                        ),
                    );
                }
            }
        }
    }

    fn data(&mut self) {
        let state = self.state;
        for (name, dc) in &state.data_classifications {
            for target in dc.assets.keys() {
                self.target_exists(Kind::DataClassification, name, &["assets".into(), target.as_str().into()], target);
            }
            for (t, assets) in &dc.assets {
                // Column security is enforced where the target keeps field security profiles;
                // elsewhere listed columns would be a promise keyward cannot keep. (Tables may be
                // listed anywhere: the data policies check who can read them.)
                let provider = state.settings.targets.get(t).map(|x| x.provider());
                if let Some(provider) = provider
                    && !assets.columns.is_empty()
                    && capabilities(provider).binding(BindingKind::FieldSecurityProfile) == BindingSupport::Unsupported
                {
                    self.report(
                        Kind::DataClassification,
                        name,
                        &["assets".into(), t.as_str().into(), "columns".into()],
                        Diagnostic::error(
                            "columns-not-enforceable",
                            format!("target `{t}` (provider `{provider}`) has no column security; keyward can enforce columns only on dataverse targets"),
                        )
                        .help("list the columns under a dataverse target, or list `tables` only here"),
                    );
                }
                for (i, col) in assets.columns.iter().enumerate() {
                    if col.split_once('.').is_none_or(|(a, b)| a.is_empty() || b.is_empty()) {
                        self.report(
                            Kind::DataClassification,
                            name,
                            &["assets".into(), t.as_str().into(), "columns".into(), i.into()],
                            Diagnostic::error(
                                "invalid-column",
                                format!("column `{col}` is not written as table.column"),
                            ),
                        );
                    }
                }
            }
            for (i, r) in dc.readers.iter().flatten().enumerate() {
                self.exists(Kind::DataClassification, name, &["readers".into(), i.into()], Kind::Role, r, &state.roles);
            }
        }
    }

    fn auth_policies(&mut self) {
        let state = self.state;
        for (name, p) in &state.authentication_policies {
            let a = &p.applies_to;
            let chosen = [a.all.is_some(), a.privileged.is_some(), a.roles.is_some()].iter().filter(|b| **b).count();
            if chosen != 1 {
                self.report(
                    Kind::AuthenticationPolicy,
                    name,
                    &["appliesTo".into()],
                    Diagnostic::error("applies-to", "appliesTo needs exactly one of `all`, `privileged` or `roles`")
                        .help("for example appliesTo: {privileged: true}"),
                );
            }
            if a.all == Some(false) || a.privileged == Some(false) {
                self.report(
                    Kind::AuthenticationPolicy,
                    name,
                    &["appliesTo".into()],
                    Diagnostic::error("applies-to", "appliesTo with `false` covers nobody")
                        .help("use `true`, or list roles"),
                );
            }
            for (i, r) in a.roles.iter().flatten().enumerate() {
                self.exists(
                    Kind::AuthenticationPolicy,
                    name,
                    &["appliesTo".into(), "roles".into(), i.into()],
                    Kind::Role,
                    r,
                    &state.roles,
                );
            }
            if let Some(m) = &p.methods {
                for (i, f) in m.forbidden.iter().enumerate() {
                    if m.allowed.contains(f) {
                        self.report(
                            Kind::AuthenticationPolicy,
                            name,
                            &["methods".into(), "forbidden".into(), i.into()],
                            Diagnostic::error(
                                "method-conflict",
                                format!("method `{}` is both allowed and forbidden", f.as_str()),
                            ),
                        );
                    }
                }
            }
        }
    }

    fn sod_rules(&mut self) {
        let state = self.state;
        let duties: BTreeSet<&str> = state.roles.values().flat_map(|r| r.duties.iter().map(String::as_str)).collect();
        let live_duties = state.settings.targets.values().any(|t| t.provider() == crate::model::ProviderKind::Fno);
        for (name, rule) in &state.sod_rules {
            for (side_name, side) in [("first", &rule.first), ("second", &rule.second)] {
                if side.roles.is_empty() && side.duties.is_empty() && side.privileges.is_empty() {
                    self.report(
                        Kind::SodRule,
                        name,
                        &[side_name.into()],
                        Diagnostic::error(
                            "empty-sod-side",
                            format!("`{side_name}` names no roles, no duties and no privileges"),
                        )
                        .help("list roles, duties, privileges, or several of them"),
                    );
                }
                for (i, r) in side.roles.iter().enumerate() {
                    self.exists(
                        Kind::SodRule,
                        name,
                        &[side_name.into(), "roles".into(), i.into()],
                        Kind::Role,
                        r,
                        &state.roles,
                    );
                }
                for (i, d) in side.duties.iter().enumerate() {
                    // A duty no Role declares may be one of a live F&O role (read at plan time).
                    if !duties.contains(d.as_str()) && !live_duties && self.accepts(Kind::SodRule, name) {
                        let mut diag = Diagnostic::error(
                            "unknown-duty",
                            format!("SodRule `{name}` names duty `{d}`, which no role grants"),
                        );
                        diag = match closest(d, duties.iter().copied()) {
                            Some(s) => diag.help(format!("did you mean `{s}`?")),
                            None => diag.help("add the duty to the roles that grant it, or correct the name"),
                        };
                        self.report(Kind::SodRule, name, &[side_name.into(), "duties".into(), i.into()], diag);
                    } else if !duties.contains(d.as_str())
                        && let Some(s) = closest(d, duties.iter().copied())
                    {
                        let diag = Diagnostic::warning(
                            "unknown-duty",
                            format!("SodRule `{name}` names duty `{d}`, which no role declares; it is looked for among the live duties of Finance & Operations roles"),
                        )
                        .help(format!("did you mean `{s}`?"));
                        self.report(Kind::SodRule, name, &[side_name.into(), "duties".into(), i.into()], diag);
                    }
                }
            }
            for (i, ex) in rule.exceptions.iter().enumerate() {
                self.exists(
                    Kind::SodRule,
                    name,
                    &["exceptions".into(), i.into(), "user".into()],
                    Kind::User,
                    &ex.user,
                    &state.users,
                );
                if ex.reason.trim().is_empty() {
                    self.report(
                        Kind::SodRule,
                        name,
                        &["exceptions".into(), i.into(), "reason".into()],
                        Diagnostic::error("empty-reason", "an SoD exception needs a reason"),
                    );
                }
            }
        }
    }

    fn guards(&mut self) {
        let state = self.state;
        if let Some(min) = &state.settings.min_admins
            && !state.roles.contains_key(&min.role)
        {
            let at = ["guards".into(), "minAdmins".into(), "role".into()];
            if let Some(file) = self.origins.broken_file(self.sink.loaded, Kind::Role, &min.role) {
                // The role exists but has errors, reported where it is: say so, not "not defined".
                let mut d = Diagnostic::error(
                    "reference-to-invalid",
                    format!("guards.minAdmins names role `{}`, which has errors (see {})", min.role, file.display()),
                )
                .help(format!("fix the errors of role `{}`; this reference is checked again then", min.role));
                if let Some(loc) = self.origins.locate_setting(self.sink.loaded, &at) {
                    d = d.in_file(loc.file).at(loc.line, loc.column).field("guards.minAdmins.role");
                }
                self.sink.diags.push(d);
                return;
            }
            let known: Vec<&str> = state.roles.keys().map(Name::as_str).collect();
            let mut d = Diagnostic::error(
                "unknown-reference",
                format!("guards.minAdmins names role `{}`, which is not defined", min.role),
            );
            if let Some(s) = closest(min.role.as_str(), known.into_iter()) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            let loc =
                self.origins.locate_setting(self.sink.loaded, &["guards".into(), "minAdmins".into(), "role".into()]);
            if let Some(loc) = loc {
                d = d.in_file(loc.file).at(loc.line, loc.column).field("guards.minAdmins.role");
            }
            self.sink.diags.push(d);
        }
    }
}
