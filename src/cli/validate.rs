//! `keyward validate`: offline checks, then the policies that need no live data.

use super::{CliResult, Exit, ValidateArgs, ValidateFormat, policy, session};
use crate::load;
use crate::output::{Printer, diagnostics, findings as render, sarif};
use crate::validate;

pub fn run(args: ValidateArgs, printer: &Printer) -> CliResult {
    let started = std::time::Instant::now();
    let loaded = load::load_dir(&args.dir)?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "loaded the configuration");
    let started = std::time::Instant::now();
    let validated = validate::validate(&loaded);
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "validated the configuration");
    let diags = &validated.diagnostics;
    let ok = !validated.has_errors();
    let started = std::time::Instant::now();
    let findings = policy::evaluate(&loaded, &validated, None, None, session::now());
    tracing::info!(
        findings = findings.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "evaluated the policies"
    );
    let denied = crate::policy::has_deny(&findings);
    match args.format {
        ValidateFormat::Json => {
            let counts = validated.state.as_ref().map(|s| {
                serde_json::json!({
                    "users": s.users.len(),
                    "roles": s.roles.len(),
                    "serviceAccounts": s.service_accounts.len(),
                    "dataClassifications": s.data_classifications.len(),
                    "authenticationPolicies": s.authentication_policies.len(),
                    "encryptionPolicies": s.encryption_policies.len(),
                    "sodRules": s.sod_rules.len(),
                    "targets": s.settings.targets.len(),
                })
            });
            let policy = render::json_value(&findings);
            let v = serde_json::json!({
                "valid": ok,
                "diagnostics": diags,
                "counts": counts,
                "findings": policy["findings"],
                "policySummary": policy["summary"],
            });
            printer.out(&format!("{}\n", serde_json::to_string_pretty(&v).expect("serializes")));
        }
        ValidateFormat::Sarif => {
            printer.err(&diagnostics::render_text(diags, Some(&loaded), printer.color_err, 100));
            let mut all = policy::diagnostics_as_findings(diags);
            all.extend(findings.iter().cloned());
            printer.out(&sarif::render(&all, &policy::repo_prefix(&args.dir)));
        }
        ValidateFormat::Text => {
            printer.err(&diagnostics::render_text(diags, Some(&loaded), printer.color_err, 100));
            policy::print_text(printer, &findings, &loaded, false);
            match &validated.state {
                Some(s) if ok => {
                    let n_assign: usize = s.users.values().map(|u| u.roles.len()).sum();
                    let mut line = format!(
                        "{} is valid: {} users, {} roles, {} assignments, {} service accounts, {} SoD rules, {} targets",
                        args.dir.display(),
                        s.users.len(),
                        s.roles.len(),
                        n_assign,
                        s.service_accounts.len(),
                        s.sod_rules.len(),
                        s.settings.targets.len()
                    );
                    if !diags.is_empty() {
                        line.push_str(&format!(" ({})", diagnostics::tally(diags)));
                    }
                    let t = crate::policy::Tally::of(&findings);
                    line.push_str(&format!("; policy findings: {} deny, {} warn, {} info", t.deny, t.warn, t.info));
                    printer.out(&format!("{line}\n"));
                    if denied {
                        printer.err(&format!(
                            "{} is blocked by {} policy finding{} of severity deny\n",
                            args.dir.display(),
                            t.deny,
                            if t.deny == 1 { "" } else { "s" }
                        ));
                    }
                }
                _ => printer.err(&format!("{} is not valid: {}\n", args.dir.display(), diagnostics::tally(diags))),
            }
        }
    }
    Ok(if !ok {
        Exit::Error
    } else if denied {
        Exit::Denied
    } else {
        Exit::Success
    })
}
