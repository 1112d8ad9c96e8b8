//! Progress on long reads and applies: an `indicatif` bar or spinner on stderr, only when stderr
//! is a terminal and not in CI (`CI` set). Everywhere else it draws nothing, so piped and CI
//! output stays quiet and parseable.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Printer;

/// A progress indicator that may be hidden; every method is a no-op when it is.
pub struct Progress {
    bar: Option<ProgressBar>,
}

/// Whether progress may be drawn: stderr is a terminal and this is not a CI run.
pub fn enabled(printer: &Printer) -> bool {
    printer.err_is_terminal && std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false")
}

impl Progress {
    /// A hidden indicator.
    pub fn hidden() -> Self {
        Progress { bar: None }
    }

    /// A bar over `total` steps.
    pub fn bar(printer: &Printer, total: u64, message: &str) -> Self {
        if !enabled(printer) {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .expect("the template is valid")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    /// A spinner for work of unknown length.
    pub fn spinner(printer: &Printer, message: &str) -> Self {
        if !enabled(printer) {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("the template is valid"));
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    pub fn set_message(&self, message: &str) {
        if let Some(b) = &self.bar {
            b.set_message(message.to_string());
        }
    }

    /// Sets the position and, when it changed, the total.
    pub fn set(&self, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            if b.length() != Some(total) {
                b.set_length(total);
            }
            b.set_position(done);
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Removes the indicator from the terminal.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_when_stderr_is_not_a_terminal() {
        let printer = Printer { color_out: false, color_err: false, err_is_terminal: false };
        let p = Progress::bar(&printer, 10, "x");
        assert!(!p.is_visible());
        p.set(5, 10);
        p.inc(1);
        p.finish();
        assert!(!Progress::spinner(&printer, "y").is_visible());
    }
}
