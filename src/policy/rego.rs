//! Custom policies in Rego, evaluated in-process with `regorus`, the way conftest checks
//! Terraform plans.
//!
//! Every `*.rego` file of the configuration is loaded. Packages named `main` or `keyward.*` are
//! evaluated; in each, the rule sets `deny` (and its alias `violation`), `warn` and `info` become
//! findings of that severity. An item of a set is a message string, or an object
//! `{msg, address?, path?, id?}`: `address` names what it is about (`user.alice`, or a plan
//! address such as `directory.assignment.alice/ap-clerk`) and places the finding on that YAML;
//! `path` (for example `["roles", 1]`) narrows it to a field; `id` becomes the rule id
//! `rego.<id>` (the default is `rego.<package>`, without `keyward.`).
//!
//! `input` holds the desired state (`input.desired`), keyward.yaml as written
//! (`input.settings`), the clock (`input.now`), at plan time the plan JSON (`input.plan`), and,
//! when the approvers of a change are known (`keyward approvals verify`, `keyward elevate`),
//! who approved it and the privileged changes it makes (`input.approvals`).
//! docs/policies.md documents the shape.
//!
//! Limits: a policy file is at most [`MAX_POLICY_BYTES`] (and regorus's line limits); each rule
//! set's evaluation stops after [`TIME_LIMIT`], so a policy that loops or builds an exploding
//! set ends in a `rego.error` finding naming its file rather than hanging plan or apply (the
//! time limit also bounds how much such a policy can allocate).

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::{Finding, PolicyContext};
use crate::load::PathSeg;
use crate::model::{
    AuthenticationPolicy, DataClassification, EncryptionPolicy, Kind, Name, Role, ServiceAccount, Severity, SodRule,
    User,
};
use crate::policy::Rule;
use crate::validate::Location;

/// The rule sets read from each package, with their severities.
const RULE_SETS: &[(&str, Severity)] =
    &[("deny", Severity::Deny), ("violation", Severity::Deny), ("warn", Severity::Warn), ("info", Severity::Info)];

/// How long one rule set of one package may evaluate.
pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The largest policy file keyward evaluates.
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// The JSON document a policy sees as `input` (see docs/policies.md).
pub fn input(ctx: &PolicyContext) -> Json {
    serde_json::from_str(&input_text(ctx)).unwrap_or(Json::Null)
}

/// [`input`] as JSON text, written straight from the model (much faster than building a
/// `serde_json::Value` of a large configuration first).
pub fn input_text(ctx: &PolicyContext) -> String {
    input_text_with(ctx, None)
}

/// [`input_text`] with `input.approvals` (see [`super::evaluate_with_approvals`]).
pub fn input_text_with(ctx: &PolicyContext, approvals: Option<&Json>) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Desired<'a> {
        users: &'a BTreeMap<Name, User>,
        roles: &'a BTreeMap<Name, Role>,
        service_accounts: &'a BTreeMap<Name, ServiceAccount>,
        data_classifications: &'a BTreeMap<Name, DataClassification>,
        authentication_policies: &'a BTreeMap<Name, AuthenticationPolicy>,
        encryption_policies: &'a BTreeMap<Name, EncryptionPolicy>,
        sod_rules: &'a BTreeMap<Name, SodRule>,
    }
    #[derive(serde::Serialize)]
    struct Input<'a> {
        keyward: Json,
        now: String,
        settings: Json,
        desired: Desired<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        plan: Option<&'a crate::plan::Plan>,
        #[serde(skip_serializing_if = "Option::is_none")]
        approvals: Option<&'a Json>,
    }
    let d = ctx.desired;
    let input = Input {
        keyward: json!({"version": env!("CARGO_PKG_VERSION")}),
        now: ctx.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        settings: settings_json(ctx),
        desired: Desired {
            users: &d.users,
            roles: &d.roles,
            service_accounts: &d.service_accounts,
            data_classifications: &d.data_classifications,
            authentication_policies: &d.authentication_policies,
            encryption_policies: &d.encryption_policies,
            sod_rules: &d.sod_rules,
        },
        plan: ctx.plan,
        approvals,
    };
    serde_json::to_string(&input).unwrap_or_else(|_| "{}".to_string())
}

fn settings_json(ctx: &PolicyContext) -> Json {
    ctx.loaded
        .settings
        .first()
        .and_then(|doc| serde_yaml::from_str::<crate::model::ConfigFile>(ctx.loaded.text(doc)).ok())
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or(Json::Null)
}

/// The rule id of findings from package `data.keyward.x.y`: `rego.x.y`.
fn package_rule(package: &str) -> String {
    let p = package.strip_prefix("data.").unwrap_or(package);
    let p = p.strip_prefix("keyward.").unwrap_or(p);
    format!("rego.{p}")
}

/// The line where rule `name` is first defined in a Rego file.
fn rule_line(text: &str, name: &str) -> Option<u32> {
    (1u32..).zip(text.lines()).find_map(|(n, l)| {
        let rest = l.trim_start().strip_prefix(name)?;
        rest.starts_with([' ', '[', '{', ':', '=', '\t', '(']).then_some(n)
    })
}

/// A regorus error message carries `path:line:col:`; find the line.
fn error_line(message: &str, path: &str) -> Option<(u32, u32)> {
    let rest = &message[message.find(path)? + path.len()..];
    let mut parts = rest.strip_prefix(':')?.splitn(3, ':');
    let line = parts.next()?.trim().parse().ok()?;
    let col = parts.next().and_then(|c| c.trim().parse().ok()).unwrap_or(1);
    Some((line, col))
}

pub(super) fn run(ctx: &PolicyContext, approvals: Option<&Json>, out: &mut Vec<Finding>) {
    run_within(ctx, approvals, out, TIME_LIMIT);
}

/// [`run`], each rule set's evaluation stopped after `limit`.
fn run_within(ctx: &PolicyContext, approvals: Option<&Json>, out: &mut Vec<Finding>, limit: std::time::Duration) {
    use regorus::utils::limits::{ExecutionTimerConfig, PolicyLengthConfig};
    if ctx.loaded.rego.is_empty() {
        return;
    }
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit,
        check_interval: std::num::NonZeroU32::new(64).unwrap_or(std::num::NonZeroU32::MIN),
    });
    let lengths = PolicyLengthConfig::default();
    engine.set_policy_length_config(PolicyLengthConfig {
        max_file_bytes: std::num::NonZeroUsize::new(MAX_POLICY_BYTES).unwrap_or(lengths.max_file_bytes),
        ..lengths
    });
    // Packages to evaluate, with the file that declares each first.
    let mut packages: Vec<(String, usize)> = Vec::new();
    for &id in &ctx.loaded.rego {
        let file = &ctx.loaded.files[id];
        let path = file.path.display().to_string();
        match engine.add_policy(path.clone(), file.text.clone()) {
            Ok(pkg) => {
                let wanted = pkg == "data.main" || pkg.starts_with("data.keyward.");
                if wanted && !packages.iter().any(|(p, _)| *p == pkg) {
                    packages.push((pkg, id));
                }
            }
            Err(e) => out.push(error(ctx, id, &format!("{e}"), "the policy does not parse")),
        }
    }
    if packages.is_empty() {
        return;
    }
    match serde_json::from_str::<regorus::Value>(&input_text_with(ctx, approvals)) {
        Ok(v) => engine.set_input(v),
        Err(e) => {
            out.push(error(ctx, packages[0].1, &e.to_string(), "cannot pass the input to the policies"));
            return;
        }
    }
    for (pkg, file_id) in &packages {
        let text = &ctx.loaded.files[*file_id].text;
        for &(set, severity) in RULE_SETS {
            // Only rules the package defines: evaluating an unknown rule is an error.
            if rule_line(text, set).is_none() && !defines_elsewhere(ctx, pkg, set) {
                continue;
            }
            let value = match engine.eval_rule(format!("{pkg}.{set}")) {
                Ok(v) => v,
                Err(e) => {
                    let message = format!("{e:#}");
                    let what = if message.contains("exceeded time limit") {
                        format!(
                            "`{set}` did not finish within {}s and was stopped (a policy that loops or builds an \
                             exploding set)",
                            limit.as_secs_f64()
                        )
                    } else {
                        format!("`{set}` fails to evaluate")
                    };
                    out.push(error(ctx, *file_id, &message, &what));
                    continue;
                }
            };
            let items = match serde_json::to_value(&value) {
                Ok(Json::Array(items)) => items,
                Ok(Json::Null) => continue,
                Ok(Json::Bool(false)) => continue,
                Ok(other) => vec![other],
                Err(e) => {
                    out.push(error(ctx, *file_id, &e.to_string(), &format!("`{set}` has a value keyward cannot read")));
                    continue;
                }
            };
            for item in items {
                out.push(finding(ctx, pkg, *file_id, set, severity, item));
            }
        }
    }
}

/// Whether another file of the same package defines rule `set`.
fn defines_elsewhere(ctx: &PolicyContext, pkg: &str, set: &str) -> bool {
    let want = format!("package {}", pkg.strip_prefix("data.").unwrap_or(pkg));
    ctx.loaded
        .rego
        .iter()
        .map(|&i| &ctx.loaded.files[i].text)
        .any(|t| t.lines().any(|l| l.trim() == want) && rule_line(t, set).is_some())
}

fn error(ctx: &PolicyContext, file_id: usize, message: &str, what: &str) -> Finding {
    let file = &ctx.loaded.files[file_id];
    let path = file.path.display().to_string();
    let (line, column) = error_line(message, &path).unwrap_or((1, 1));
    let first = message.lines().find(|l| !l.trim().is_empty()).unwrap_or(message).trim();
    Finding::new(Rule::RegoError.id(), Severity::Deny, format!("file:{path}"), format!("{path}: {what}: {first}"))
        .help("fix the policy; docs/policies.md shows the input and the output keyward expects")
        .at(Some(Location { file: file.path.clone(), line, column }))
}

fn finding(ctx: &PolicyContext, pkg: &str, file_id: usize, set: &str, severity: Severity, item: Json) -> Finding {
    let file = &ctx.loaded.files[file_id];
    let (msg, address, path, id) = match &item {
        Json::String(s) => (s.clone(), None, Vec::new(), None),
        Json::Object(o) => {
            let msg = o.get("msg").or_else(|| o.get("message")).and_then(Json::as_str).map(str::to_string);
            let address = o.get("address").and_then(Json::as_str).map(str::to_string);
            let path = o.get("path").and_then(Json::as_array).map(|p| json_path(p)).unwrap_or_default();
            let id = o.get("id").and_then(Json::as_str).map(str::to_string);
            (msg.unwrap_or_else(|| item.to_string()), address, path, id)
        }
        other => (other.to_string(), None, Vec::new(), None),
    };
    let rule = match id {
        Some(id) if !id.is_empty() => format!("rego.{}", id.strip_prefix("rego.").unwrap_or(&id)),
        _ => package_rule(pkg),
    };
    let location = address
        .as_deref()
        .and_then(|a| locate_address(ctx, a, &path))
        .or_else(|| rule_line(&file.text, set).map(|line| Location { file: file.path.clone(), line, column: 1 }));
    let address = address.unwrap_or_else(|| format!("file:{}", file.path.display()));
    Finding::new(&rule, severity, address, msg)
        .help(format!("reported by `{set}` in package {} ({})", pkg.trim_start_matches("data."), file.path.display()))
        .at(location)
}

fn json_path(p: &[Json]) -> Vec<PathSeg> {
    p.iter()
        .filter_map(|s| match s {
            Json::String(k) => Some(PathSeg::Key(k.clone())),
            Json::Number(n) => n.as_u64().map(|i| PathSeg::Index(i as usize)),
            _ => None,
        })
        .collect()
}

/// The YAML location of an address: a resource (`user.alice`), or a plan address
/// (`directory.user.alice`, `directory.assignment.alice/ap-clerk`, `okta.role.buyer`).
pub fn locate_address(ctx: &PolicyContext, address: &str, path: &[PathSeg]) -> Option<Location> {
    let kinds = [
        ("user.", Kind::User),
        ("role.", Kind::Role),
        ("service-account.", Kind::ServiceAccount),
        ("data-classification.", Kind::DataClassification),
        ("authentication-policy.", Kind::AuthenticationPolicy),
        ("encryption-policy.", Kind::EncryptionPolicy),
        ("sod-rule.", Kind::SodRule),
    ];
    for (prefix, kind) in kinds {
        let Some(name) = address.strip_prefix(prefix).and_then(|n| Name::new(n).ok()) else { continue };
        let name_path: Vec<PathSeg> = match path {
            [] => vec!["name".into()],
            [PathSeg::Key(k), PathSeg::Index(i)] if k == "roles" => grant_path(ctx, kind, &name, *i),
            _ => path.to_vec(),
        };
        if let Some(l) = ctx.locate(kind, &name, &name_path) {
            return Some(l);
        }
    }
    let a: crate::plan::Address = address.parse().ok()?;
    use crate::plan::ObjectKind;
    let name = |n: &str| Name::new(n).ok();
    let path_or = |p: Vec<PathSeg>| if path.is_empty() { p } else { path.to_vec() };
    match a.kind {
        ObjectKind::User => ctx.locate(Kind::User, &name(&a.name)?, &path_or(vec!["name".into()])),
        ObjectKind::ServiceAccount => ctx.locate(Kind::ServiceAccount, &name(&a.name)?, &path_or(vec!["name".into()])),
        ObjectKind::Role => {
            ctx.locate(Kind::Role, &name(&a.name)?, &path_or(vec!["bindings".into(), a.target.as_str().into()]))
        }
        ObjectKind::Activation => ctx.locate(Kind::Role, &name(&a.name)?, &path_or(vec!["name".into()])),
        ObjectKind::Assignment | ObjectKind::Eligibility => {
            let (holder, role) = a.name.split_once('/')?;
            let holder = name(holder)?;
            let (kind, grants) = match ctx.desired.users.get(&holder) {
                Some(u) => (Kind::User, &u.roles),
                None => (Kind::ServiceAccount, &ctx.desired.service_accounts.get(&holder)?.roles),
            };
            let p = match grants.iter().position(|g| g.role().as_str() == role) {
                Some(i) => grant_path(ctx, kind, &holder, i),
                None => vec!["name".into()],
            };
            ctx.locate(kind, &holder, &path_or(p))
        }
        ObjectKind::Credential => {
            let (sa, cred) = a.name.split_once('/')?;
            let sa_name = name(sa)?;
            let i =
                ctx.desired.service_accounts.get(&sa_name)?.credentials.iter().position(|c| c.name.as_str() == cred);
            let p = match i {
                Some(i) => vec!["credentials".into(), i.into()],
                None => vec!["name".into()],
            };
            ctx.locate(Kind::ServiceAccount, &sa_name, &path_or(p))
        }
        ObjectKind::FieldProfile => {
            let class = a.name.rsplit_once('/').map_or(a.name.as_str(), |(_, c)| c);
            ctx.locate(
                Kind::DataClassification,
                &name(class)?,
                &path_or(vec!["assets".into(), a.target.as_str().into()]),
            )
        }
        ObjectKind::AuthMethod => None,
    }
}

/// The path of grant `i` of a user or service account: its role's name.
fn grant_path(ctx: &PolicyContext, kind: Kind, name: &Name, i: usize) -> Vec<PathSeg> {
    let grants = match kind {
        Kind::User => ctx.desired.users.get(name).map(|u| &u.roles),
        Kind::ServiceAccount => ctx.desired.service_accounts.get(name).map(|s| &s.roles),
        _ => None,
    };
    match grants.and_then(|g| g.get(i)) {
        Some(crate::model::RoleGrant::Detailed(_)) => vec!["roles".into(), i.into(), "role".into()],
        _ => vec!["roles".into(), i.into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_has_the_documented_shape() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        let loaded = crate::load::load_dir(&root).unwrap();
        let validated = crate::validate::validate(&loaded);
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc();
        let ctx = PolicyContext::offline(validated.state.as_ref().unwrap(), &loaded, &validated.origins, now);
        let input = input(&ctx);
        assert_eq!(input["now"], "2026-11-28T12:00:00Z");
        assert_eq!(input["settings"]["targets"]["directory"]["provider"], "file");
        assert!(input.get("plan").is_none(), "no plan offline");
        let d = &input["desired"];
        for kind in [
            "users",
            "roles",
            "serviceAccounts",
            "dataClassifications",
            "authenticationPolicies",
            "encryptionPolicies",
            "sodRules",
        ] {
            assert!(d[kind].is_object(), "{kind}");
        }
        let nancy = &d["users"]["nancy.davolio"];
        assert_eq!(nancy["status"], "active");
        assert_eq!(nancy["roles"][0], "gl-accountant");
        assert_eq!(nancy["roles"][1]["ticket"], "CHG-2041");
        assert_eq!(d["roles"]["finance-admin"]["privileged"], true);
        assert_eq!(d["sodRules"]["requisition-vs-order-approval"]["severity"], "warn");
    }

    /// A policy whose rule set would take far longer than any plan may wait (ten billion pairs)
    /// is stopped at the limit, with a `rego.error` finding that names its file.
    #[test]
    fn an_exploding_policy_is_stopped_and_named() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        let mut loaded = crate::load::load_dir(&root).unwrap();
        let validated = crate::validate::validate(&loaded);
        let path = std::path::PathBuf::from("policies/explode.rego");
        loaded.files.push(crate::load::SourceFile {
            path: path.clone(),
            text: "package keyward.explode\n\nimport rego.v1\n\ndeny contains msg if {\n  pairs := {[a, b] | some a in numbers.range(1, 100000); some b in numbers.range(1, 100000)}\n  count(pairs) > 0\n  msg := \"never\"\n}\n".into(),
        });
        loaded.rego.push(loaded.files.len() - 1);
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc();
        let ctx = PolicyContext::offline(validated.state.as_ref().unwrap(), &loaded, &validated.origins, now);
        let mut out = Vec::new();
        run_within(&ctx, None, &mut out, std::time::Duration::from_millis(300));
        let f = out.iter().find(|f| f.rule == Rule::RegoError.id()).unwrap_or_else(|| panic!("{out:?}"));
        assert!(f.message.starts_with("policies/explode.rego: `deny` did not finish within 0.3s"), "{}", f.message);
        assert_eq!(f.severity, Severity::Deny);
    }

    #[test]
    fn package_rule_ids() {
        assert_eq!(package_rule("data.keyward.naming"), "rego.naming");
        assert_eq!(package_rule("data.main"), "rego.main");
        assert_eq!(package_rule("data.keyward.plan.deletes"), "rego.plan.deletes");
    }

    #[test]
    fn finds_rule_lines() {
        let text = "package keyward.x\n\nimport rego.v1\n\n# deny things\ndeny contains msg if {\n  false\n}\nwarn[msg] {\n}\n";
        assert_eq!(rule_line(text, "deny"), Some(6));
        assert_eq!(rule_line(text, "warn"), Some(9));
        assert_eq!(rule_line(text, "info"), None);
    }

    #[test]
    fn reads_error_positions() {
        assert_eq!(error_line("error: policies/a.rego:3:7: unexpected token", "policies/a.rego"), Some((3, 7)));
        assert_eq!(error_line("no position", "policies/a.rego"), None);
    }
}
