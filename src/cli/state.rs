//! `keyward state show|unlock|migrate`: the state that `state:` in keyward.yaml selects.

use super::console::Console;
use super::{CliResult, Context, Exit, StateCommand};
use crate::engine::audit::LogSettings;
use crate::engine::store::{self, Store};
use crate::output::Printer;
use crate::state::{LockId, LockStatus};

pub async fn run(cmd: StateCommand, ctx: Context, printer: &Printer) -> CliResult {
    match cmd {
        StateCommand::Show(args) => {
            let config = crate::engine::config::load(&args.dir, &Console::new(printer))?;
            let store = Store::open(config.state(), &args.dir)?;
            let s = store.summary().await?;
            let mut out = format!("State: {}\n\nLast applied:\n", s.location);
            if s.applied.is_empty() {
                out.push_str("  (no apply recorded yet)\n");
            }
            for (target, r) in &s.applied {
                out.push_str(&format!(
                    "  {target}: {} at {}, commit {}{}\n",
                    match r.status {
                        crate::state::ApplyStatus::Completed => "completed",
                        crate::state::ApplyStatus::Partial => "partial",
                    },
                    r.at.format("%Y-%m-%d %H:%M:%S UTC"),
                    r.commit.as_deref().unwrap_or("(none: not a git repository)"),
                    match (r.status, r.completed_commit.as_deref()) {
                        (crate::state::ApplyStatus::Partial, Some(c)) => format!("; last completed at commit {c}"),
                        _ => String::new(),
                    }
                ));
            }
            out.push_str(&match &s.lock {
                LockStatus::Free => "\nLock: free\n".to_string(),
                LockStatus::Held(Some(h)) => format!("\nLock: held by {h}\n"),
                LockStatus::Held(None) => "\nLock: held (its holder is not recorded)\n".to_string(),
            });
            out.push_str(&format!(
                "\nAudit chain: {} records, head {}{}\n",
                s.head.records,
                s.head.hash,
                if s.intact { "" } else { " (damaged: run `keyward audit verify`)" }
            ));
            if let Some(h) = &s.recorded_head {
                out.push_str(&format!("Head recorded by the last apply: {} records, {}\n", h.records, h.hash));
            }
            printer.out(&out);
            Ok(Exit::Success)
        }
        StateCommand::Migrate(args) => {
            let settings_file = |p: &std::path::Path| {
                let f = if p.is_dir() { p.join(crate::load::SETTINGS_FILE) } else { p.to_path_buf() };
                std::fs::canonicalize(f).ok()
            };
            if settings_file(&args.dir).is_some_and(|f| Some(f) == settings_file(&args.to)) {
                return Err(super::Failure::error(
                    "state migrate: --to names this configuration's own settings; give the settings of the destination",
                ));
            }
            let from = LogSettings { dir: args.dir.clone(), log: None }.store()?;
            let to = store::open_settings(&args.to)?;
            let m = from.migrate_to(&to, args.lock_timeout, ctx.clock.now).await?;
            let mut out = if m.copied_log {
                format!("Copied the audit chain from {} to {}.\n", m.from, m.to)
            } else {
                format!("{} already holds this audit chain (an earlier migration copied it).\n", m.to)
            };
            for d in &m.documents {
                out.push_str(&format!("Copied {}.\n", d.file_name()));
            }
            out.push_str(&format!(
                "Verified at {}: intact, {} records, head {}.\nPoint `state:` in keyward.yaml at it; the old state is left as it was.\n",
                m.to, m.head.records, m.head.hash
            ));
            printer.out(&out);
            Ok(Exit::Success)
        }
        StateCommand::Unlock(args) => {
            let config = crate::engine::config::load(&args.dir, &Console::new(printer))?;
            let store = Store::open(config.state(), &args.dir)?;
            let holder = store.unlock(&LockId(args.id.clone()), ctx.clock.now).await?;
            printer.out(&format!(
                "Broke the state lock at {} held by {holder}; recorded in the audit log.\n",
                store.location()
            ));
            Ok(Exit::Success)
        }
    }
}
