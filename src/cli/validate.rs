//! `keyward validate`.

use super::{CliResult, DiagFormat, Exit, ValidateArgs};
use crate::load;
use crate::output::{Printer, diagnostics};
use crate::validate;

pub fn run(args: ValidateArgs, printer: &Printer) -> CliResult {
    let loaded = load::load_dir(&args.dir)?;
    let validated = validate::validate(&loaded);
    let diags = &validated.diagnostics;
    let ok = !validated.has_errors();
    match args.format {
        DiagFormat::Json => {
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
            let v = serde_json::json!({ "valid": ok, "diagnostics": diags, "counts": counts });
            printer.out(&format!("{}\n", serde_json::to_string_pretty(&v).expect("serializes")));
        }
        DiagFormat::Text => {
            printer.err(&diagnostics::render_text(diags, Some(&loaded), printer.color_err, 100));
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
                    printer.out(&format!("{line}\n"));
                }
                _ => printer.err(&format!("{} is not valid: {}\n", args.dir.display(), diagnostics::tally(diags))),
            }
        }
    }
    Ok(if ok { Exit::Success } else { Exit::Error })
}
