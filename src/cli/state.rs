//! `keyward state show|unlock`: the state that `state:` in keyward.yaml selects.

use super::console::Console;
use super::{CliResult, Context, Exit, StateCommand};
use crate::engine::store::Store;
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
