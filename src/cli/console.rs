//! The engine's events, shown on the terminal: diagnostics, progress, warnings; and the
//! policy findings' text.

use std::cell::RefCell;

use crate::diagnostic::Diagnostic;
use crate::engine::Observer;
use crate::load::Loaded;
use crate::model::{LiveTarget, Name, Severity};
use crate::output::progress::Progress;
use crate::output::{Printer, diagnostics, findings as render};
use crate::policy::Finding;

/// Shows what the engine tells while it runs.
pub struct Console<'p> {
    pub printer: &'p Printer,
    bar: RefCell<Option<Progress>>,
    /// With `watch`: the diagnostics printed last, so the same ones are not printed again at
    /// every check.
    last_diagnostics: Option<RefCell<Option<Vec<Diagnostic>>>>,
}

impl<'p> Console<'p> {
    pub fn new(printer: &'p Printer) -> Self {
        Console { printer, bar: RefCell::new(None), last_diagnostics: None }
    }

    /// A console that prints diagnostics only when they differ from the last ones printed.
    pub fn deduplicating(printer: &'p Printer) -> Self {
        Console { last_diagnostics: Some(RefCell::new(None)), ..Console::new(printer) }
    }

    /// Shows a progress bar over `total` changes while applying.
    pub fn start_apply(&self, total: usize) {
        *self.bar.borrow_mut() = Some(Progress::bar(self.printer, total as u64, "Applying"));
    }

    /// Removes the progress bar.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish();
        }
    }
}

impl Observer for Console<'_> {
    fn diagnostics(&self, diags: &[Diagnostic], loaded: &Loaded) {
        if let Some(last) = &self.last_diagnostics {
            let mut last = last.borrow_mut();
            if last.as_deref() == Some(diags) {
                return;
            }
            *last = Some(diags.to_vec());
        }
        print_diagnostics(self.printer, diags, Some(loaded));
    }

    fn reading(&self, targets: &[Name]) {
        let bar = Progress::bar(self.printer, targets.len() as u64, "Reading targets");
        let names: Vec<&str> = targets.iter().map(Name::as_str).collect();
        bar.set_message(&format!("Reading {}", names.join(", ")));
        if !bar.is_visible() {
            for name in targets {
                self.printer.status(&format!("Reading target {name}..."));
            }
        }
        *self.bar.borrow_mut() = Some(bar);
    }

    fn read_target(&self, _target: &Name, _live: &LiveTarget) {
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.inc(1);
        }
    }

    fn read_done(&self) {
        self.finish();
    }

    fn applied(&self, done: usize, total: usize) {
        let bar = self.bar.borrow();
        let visible = bar.as_ref().is_some_and(|b| {
            b.set(done as u64, total as u64);
            b.is_visible()
        });
        if total > 1000 && !visible {
            self.printer.status(&format!("Applied {done}/{total} changes"));
        }
    }

    fn warning(&self, message: &str) {
        self.printer.err(&format!("warning: {}\n", crate::model::escape::terminal_lines(message)));
    }
}

/// Prints diagnostics to stderr.
pub fn print_diagnostics(printer: &Printer, diags: &[Diagnostic], loaded: Option<&Loaded>) {
    if diags.is_empty() {
        return;
    }
    printer.err(&diagnostics::render_text(diags, loaded, printer.color_err, 100));
}

/// How many findings the text output shows in detail.
pub const MAX_SHOWN: usize = 50;

/// Prints findings as text (nothing when there are none), then the summary line.
pub fn print_findings(printer: &Printer, findings: &[Finding], loaded: &Loaded, to_stdout: bool) {
    if findings.is_empty() {
        return;
    }
    let color = if to_stdout { printer.color_out } else { printer.color_err };
    // The worst first; a large tenant can have thousands of findings, so the text shows the
    // first ones in detail and counts the rest (JSON and SARIF always carry all of them).
    let mut shown: Vec<&Finding> = findings.iter().collect();
    shown.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let rest = shown.split_off(shown.len().min(MAX_SHOWN));
    let shown: Vec<Finding> = shown.into_iter().cloned().collect();
    let mut text = render::render_text(&shown, Some(loaded), color, 100);
    if !rest.is_empty() {
        let count = |s: Severity| rest.iter().filter(|f| f.severity == s).count();
        text.push_str(&format!(
            "... and {} more findings ({} deny, {} warn, {} info) not shown here; --format json or --format sarif lists them all.\n",
            rest.len(),
            count(Severity::Deny),
            count(Severity::Warn),
            count(Severity::Info)
        ));
    }
    text.push_str(&render::summary_line(findings, color));
    if to_stdout { printer.out(&text) } else { printer.err(&text) }
}
