//! Every rendering: plans (text, JSON, Markdown), diagnostics, apply summaries; and the one
//! printer through which all output goes.
//!
//! Renderers are pure functions to `String`, so snapshot tests see exactly what users see;
//! colour is an option of the renderer and the printer enables it only on a terminal (and
//! never when `NO_COLOR` is set).

#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod apply_report;
pub mod diagnostics;
pub mod explain;
pub mod findings;
pub mod governance;
pub mod metrics;
pub mod plan_markdown;
pub mod plan_text;
pub mod progress;
pub mod review;
pub mod sarif;

use std::io::{IsTerminal, Write};

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Writes to stdout and stderr, deciding once whether each is a colour terminal.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub color_out: bool,
    pub color_err: bool,
    pub err_is_terminal: bool,
}

impl Printer {
    pub fn new(choice: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        };
        Printer {
            color_out: decide(std::io::stdout().is_terminal()),
            color_err: decide(std::io::stderr().is_terminal()),
            err_is_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Writes to stdout. A closed pipe (`keyward plan | head`) is not an error worth a panic.
    pub fn out(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(s.as_bytes());
        let _ = o.flush();
    }

    pub fn err(&self, s: &str) {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(s.as_bytes());
        let _ = e.flush();
    }

    /// A transient status line on stderr, shown only on a terminal.
    pub fn status(&self, s: &str) {
        if self.err_is_terminal {
            self.err(&format!("{s}\n"));
        }
    }
}

/// Paints `text` with `style` when `color` is on.
pub(crate) fn paint(color: bool, style: anstyle::Style, text: &str) -> String {
    if color { format!("{}{text}{}", style.render(), style.render_reset()) } else { text.to_string() }
}

pub(crate) mod styles {
    use anstyle::{AnsiColor, Style};
    pub const GREEN: Style = AnsiColor::Green.on_default();
    pub const RED: Style = AnsiColor::Red.on_default();
    pub const YELLOW: Style = AnsiColor::Yellow.on_default();
    pub const CYAN: Style = AnsiColor::Cyan.on_default();
    pub const BOLD: Style = Style::new().bold();
    pub const DIM: Style = Style::new().dimmed();
}

/// The plan as pretty JSON (the documented format).
pub fn plan_json(plan: &crate::plan::Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).expect("plans serialize");
    s.push('\n');
    s
}
