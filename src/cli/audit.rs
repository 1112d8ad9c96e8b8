//! `keyward audit verify|show`.

use std::path::{Path, PathBuf};

use super::session;
use super::{AuditArgs, AuditCommand, AuditReviewArgs, CliResult, DiagFormat, Exit, Failure, ReviewFormat};
use crate::audit;
use crate::model::ConfigFile;
use crate::output::{self, Printer, paint, styles};
use crate::provider::Access;
use crate::validate::settings_audit_path;

/// The log a command reads: `--log`, or the one keyward.yaml names (even when the rest of the
/// configuration does not validate).
fn log_path(args: &AuditArgs) -> PathBuf {
    if let Some(l) = &args.log {
        return l.clone();
    }
    let configured = std::fs::read_to_string(args.dir.join(crate::load::SETTINGS_FILE))
        .ok()
        .and_then(|t| serde_yaml::from_str::<ConfigFile>(&t).ok())
        .and_then(|c| c.audit.and_then(|a| a.path));
    args.dir.join(configured.unwrap_or_else(|| settings_audit_path().to_string()))
}

pub async fn run(cmd: AuditCommand, printer: &Printer) -> CliResult {
    match cmd {
        AuditCommand::Review(args) => review(args, printer).await,
        AuditCommand::Verify(args) => verify(&log_path(&args), printer),
        AuditCommand::Show(args) => {
            let path = log_path(&args.common);
            let mut records = audit::read(&path)?;
            if let Some(n) = args.last {
                let skip = records.len().saturating_sub(n);
                records.drain(..skip);
            }
            match args.format {
                DiagFormat::Json => {
                    printer.out(&format!("{}\n", serde_json::to_string_pretty(&records).expect("serializes")));
                }
                DiagFormat::Text => {
                    if records.is_empty() {
                        printer.out(&format!("{} holds no records.\n", path.display()));
                    }
                    let mut out = String::new();
                    for r in &records {
                        let e = &r.entry;
                        out.push_str(&format!(
                            "{:>6}  {}  {:<8} {:<8} {}  by {}{}\n",
                            r.seq,
                            e.time.format("%Y-%m-%d %H:%M:%S"),
                            format!("{:?}", e.outcome).to_lowercase(),
                            e.action,
                            e.address,
                            e.actor,
                            e.error.as_ref().map(|x| format!("  ({x})")).unwrap_or_default()
                        ));
                    }
                    printer.out(&out);
                }
            }
            Ok(Exit::Success)
        }
    }
}

fn verify(path: &Path, printer: &Printer) -> CliResult {
    if !path.exists() {
        return Err(Failure::error(format!("there is no audit log at {}", path.display())));
    }
    let report = audit::verify(path)?;
    if report.is_intact() {
        let mut line = format!("{}: intact, {} records", path.display(), report.records);
        if report.torn_tail {
            line.push_str("; the last line is an interrupted write, not a record (the next apply removes it)");
        }
        printer.out(&format!("{}\n", paint(printer.color_out, styles::GREEN, &line)));
        return Ok(Exit::Success);
    }
    let mut msg =
        format!("{}: the audit log was tampered with ({} intact records before it)\n", path.display(), report.records);
    for p in &report.problems {
        msg.push_str(&format!("  line {}: {}\n", p.line, p.message));
    }
    printer.out(&msg);
    Ok(Exit::Error)
}

/// `keyward audit review`: reads the configuration, the live targets and the audit log.
async fn review(args: AuditReviewArgs, printer: &Printer) -> CliResult {
    let dir = &args.common.dir;
    let select = |s: &_| session::select_targets(s, &args.targets);
    let (config, read) = session::load_and_read(dir, printer, Access::Review, select).await?;
    let session::Read { mut open, mut live, .. } = read?;
    let state = config.state();
    for (name, p) in open.providers.iter_mut() {
        if let Some(lt) = live.get_mut(name) {
            lt.history = p.role_history().await?;
        }
    }
    let now = session::now();
    let findings = super::policy::evaluate_config(&config, None, Some(&live), now);

    let path = log_path(&args.common);
    let mut records = if path.exists() { audit::read(&path)? } else { Vec::new() };
    if let Some(since) = args.since {
        let start = since.0.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        records.retain(|r| r.entry.time >= start);
    }
    if let Some(n) = args.last.or(if args.since.is_some() { None } else { Some(20) }) {
        let skip = records.len().saturating_sub(n);
        records.drain(..skip);
    }
    let undelivered = session::undelivered(state, dir)?;
    let report = crate::review::review(&crate::review::ReviewInput {
        desired: state,
        live: &live,
        findings: &findings,
        records: &records,
        now,
        within: args.within,
        undelivered: &undelivered,
    });
    printer.out(&match args.format {
        ReviewFormat::Text => output::review::render_text(&report),
        ReviewFormat::Markdown => output::review::render_markdown(&report),
        ReviewFormat::Json => output::review::render_json(&report),
        ReviewFormat::Csv => output::review::render_csv(&report),
    });
    Ok(Exit::Success)
}
