//! Policy findings as SARIF 2.1.0, for code scanning: one run whose `tool.driver` lists every
//! built-in rule (and each Rego rule that reported), and one result per finding with its rule,
//! level (`error` for deny, `warning` for warn, `note` for info), message and the YAML line
//! (`artifactLocation.uri` relative to the repository root, `region.startLine/startColumn`).

use serde_json::{Value, json};

use crate::model::Severity;
use crate::policy::{Finding, RULES, rule_info};

/// The schema URI written into every log.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Deny => "error",
        Severity::Warn => "warning",
        Severity::Info => "note",
    }
}

/// `sod.conflict` → `SodConflict`, the rule's readable `name`.
fn pascal(id: &str) -> String {
    id.split(['.', '-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Rules that are not policies: notices a plan carries (see [`crate::plan::Notice`]), as
/// (id, summary, help).
const NOTICE_RULES: &[(&str, &str, &str)] = &[
    (
        "plan.connection-changed",
        "A target's connection settings changed in this pull request; the target was planned offline, without its settings or secrets.",
        "The new settings take effect after merge: check where they point before merging.",
    ),
    (
        "plan.not-kept",
        "A target does not keep a user attribute the configuration sets; keyward does not manage it there.",
        "Remove the attribute from the users on that target, or make the target keep it (its schema).",
    ),
    (
        "plan.not-managed",
        "The configuration places a service account on a target that has no service accounts keyward manages.",
        "Remove the target from the service account (its targets or the roles bound there), or manage it elsewhere.",
    ),
    (
        "plan.owned-elsewhere",
        "Git asks for a change to an account another directory masters (a user synchronized from on-premises Active Directory); it is not planned on this target.",
        "Change the attribute or status in the directory of record, or align git with it.",
    ),
];

/// Percent-encodes what may not appear in a URI path.
fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A short, stable fingerprint of a finding, so code scanning follows it across runs.
fn fingerprint(f: &Finding) -> String {
    let d = crate::model::digest(&(&f.rule, &f.address, &f.message));
    d.trim_start_matches("sha256:")[..32].to_string()
}

/// Renders the findings as a SARIF 2.1.0 log. `uri_prefix` is the configuration folder's path
/// from the repository root (`""` or `"examples/quickstart/"`).
pub fn render(findings: &[Finding], uri_prefix: &str) -> String {
    let mut rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": pascal(r.id),
                "shortDescription": {"text": r.summary},
                "help": {"text": r.help},
                "defaultConfiguration": {"level": level(r.severity)},
                "properties": {"tags": ["security", "access-governance"]},
            })
        })
        .collect();
    let mut ids: Vec<String> = RULES.iter().map(|r| r.id.to_string()).collect();
    for f in findings {
        if rule_info(&f.rule).is_none() && !ids.contains(&f.rule) {
            ids.push(f.rule.clone());
            if let Some((id, summary, help)) = NOTICE_RULES.iter().find(|(id, _, _)| *id == f.rule) {
                rules.push(json!({
                    "id": id,
                    "name": pascal(id),
                    "shortDescription": {"text": summary},
                    "help": {"text": help},
                    "defaultConfiguration": {"level": "warning"},
                    "properties": {"tags": ["security"]},
                }));
                continue;
            }
            rules.push(json!({
                "id": f.rule,
                "name": pascal(&f.rule),
                "shortDescription": {"text": format!("Custom Rego policy {}", f.rule)},
                "defaultConfiguration": {"level": level(f.severity)},
                "properties": {"tags": ["security", "access-governance", "rego"]},
            }));
        }
    }
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut text = f.message.clone();
            if let Some(h) = &f.help {
                text.push_str(&format!("\nHelp: {h}"));
            }
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": ids.iter().position(|i| *i == f.rule).unwrap_or(0),
                "level": level(f.severity),
                "message": {"text": text},
                "partialFingerprints": {"keywardFinding/v1": fingerprint(f)},
                "properties": {"address": f.address, "severity": f.severity},
            });
            let mut location = json!({
                "logicalLocations": [{"fullyQualifiedName": f.address}],
            });
            if let Some(l) = &f.location {
                let path = l.file.to_string_lossy().replace('\\', "/");
                location["physicalLocation"] = json!({
                    "artifactLocation": {"uri": uri_path(&format!("{uri_prefix}{path}")), "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": l.line.max(1), "startColumn": l.column.max(1)},
                });
            }
            result["locations"] = json!([location]);
            result
        })
        .collect();
    let log = json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "keyward",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&log).expect("SARIF serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris() {
        assert_eq!(pascal("sod.conflict"), "SodConflict");
        assert_eq!(pascal("hygiene.privileged-without-expiry"), "HygienePrivilegedWithoutExpiry");
        assert_eq!(uri_path("examples/quick start/users/a b.yaml"), "examples/quick%20start/users/a%20b.yaml");
    }
}
