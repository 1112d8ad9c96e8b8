//! `keyward validate`: offline checks, then the policies that need no live data.

use super::console::print_findings;
use super::{CliResult, Exit, ValidateArgs, ValidateFormat};
use crate::engine::Clock;
use crate::engine::validate::{self, ValidateSettings};
use crate::output::{Printer, diagnostics, findings as render, sarif};

pub fn run(args: ValidateArgs, clock: Clock, printer: &Printer) -> CliResult {
    let checked = validate::validate(&ValidateSettings { dir: args.dir.clone(), clock })?;
    let (loaded, validated, findings) = (&checked.loaded, &checked.validated, &checked.findings);
    let diags = &validated.diagnostics;
    let ok = checked.is_valid();
    let denied = crate::policy::has_deny(findings);
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
            let policy = render::json_value(findings);
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
            printer.err(&diagnostics::render_text(diags, Some(loaded), printer.color_err, 100));
            let mut all = crate::engine::policy::diagnostics_as_findings(diags);
            all.extend(findings.iter().cloned());
            printer.out(&sarif::render(&all, &crate::engine::policy::repo_prefix(&args.dir)));
        }
        ValidateFormat::Text => {
            printer.err(&diagnostics::render_text(diags, Some(loaded), printer.color_err, 100));
            print_findings(printer, findings, loaded, false);
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
                    let t = crate::policy::Tally::of(findings);
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
