//! Policy findings rendered like compiler diagnostics (with the YAML line shown), as JSON, and
//! as a Markdown table for pull-request comments.
//!
//! Source lines are shown with every plain-text secret masked, so a finding about a secret
//! never prints it.

use std::collections::HashMap;
use std::fmt::Write;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan,
    SpanContents,
};

use super::diagnostics::{offset_of, token_len};
use super::{paint, styles};
use crate::load::Loaded;
use crate::model::Severity;
use crate::policy::{Finding, Tally, builtin::secrets};

/// A few lines of a file around a finding, numbered as in the file, so rendering costs the
/// same whatever the file's size.
#[derive(Debug)]
struct Window {
    name: String,
    text: String,
    /// The 0-based line number of the window's first line in the file.
    first_line: usize,
}

impl SourceCode for Window {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self.text.as_str().read_span(span, before, after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// A file's text with its secrets masked, and where each line starts.
struct Masked {
    text: String,
    line_starts: Vec<usize>,
}

impl Masked {
    fn new(text: &str) -> Self {
        let text = secrets::redact(text).into_owned();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Masked { text, line_starts }
    }

    /// The lines from `line - CONTEXT` to `line + CONTEXT` (1-based `line`).
    fn window(&self, name: String, line: u32) -> Option<(Window, u32)> {
        const CONTEXT: usize = 2;
        let l = (line as usize).checked_sub(1).filter(|l| *l < self.line_starts.len())?;
        let first = l.saturating_sub(CONTEXT);
        let last = (l + CONTEXT + 1).min(self.line_starts.len());
        let start = self.line_starts[first];
        let end = self.line_starts.get(last).copied().unwrap_or(self.text.len());
        let text = self.text[start..end].to_string();
        Some((Window { name, text, first_line: first }, (l - first + 1) as u32))
    }
}

/// A finding with its source text, in the shape miette renders.
#[derive(Debug)]
struct Report<'a> {
    finding: &'a Finding,
    source: Option<Window>,
    span: Option<SourceSpan>,
}

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.finding.severity, self.finding.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(&self.finding.rule))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.finding.severity {
            Severity::Deny => miette::Severity::Error,
            Severity::Warn => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.finding.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(Some(self.finding.address.clone()), span))))
    }
}

/// Renders findings like a compiler, each with its YAML line; `width` fixes the wrap width.
pub fn render_text(findings: &[Finding], loaded: Option<&Loaded>, color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    // Each file's text with its secrets masked, computed once.
    let mut masked: HashMap<&std::path::Path, Masked> = HashMap::new();
    let mut out = String::new();
    for f in findings {
        let file = loaded.zip(f.location.as_ref()).and_then(|(l, loc)| l.files.iter().find(|s| s.path == loc.file));
        let (source, span) = match (file, &f.location) {
            (Some(sf), Some(loc)) => {
                let m = masked.entry(sf.path.as_path()).or_insert_with(|| Masked::new(&sf.text));
                match m.window(sf.path.display().to_string(), loc.line) {
                    Some((window, line)) => {
                        let off = offset_of(&window.text, line, loc.column);
                        let span = off.map(|o| SourceSpan::new(o.into(), token_len(&window.text, o)));
                        (Some(window), span)
                    }
                    None => (None, None),
                }
            }
            _ => (None, None),
        };
        if span.is_none()
            && let Some(loc) = &f.location
        {
            let where_ = format!("{}:{}:{}", loc.file.display(), loc.line, loc.column);
            let _ = writeln!(out, "{}", paint(color, styles::BOLD, &where_));
        }
        let report = Report { finding: f, source, span };
        let _ = handler.render_report(&mut out, &report);
        out.push('\n');
    }
    out
}

/// `Policy findings: 1 deny, 2 warn, 0 info.`
pub fn summary(findings: &[Finding]) -> String {
    let t = Tally::of(findings);
    format!("Policy findings: {} deny, {} warn, {} info.", t.deny, t.warn, t.info)
}

/// The summary line, coloured by the worst severity.
pub fn summary_line(findings: &[Finding], color: bool) -> String {
    let t = Tally::of(findings);
    let style = if t.deny > 0 {
        styles::RED.bold()
    } else if t.warn > 0 {
        styles::YELLOW.bold()
    } else {
        styles::BOLD
    };
    let mut s = paint(color, style, &summary(findings));
    if t.deny > 0 {
        s.push_str(" Findings of severity deny block apply.");
    }
    s.push('\n');
    s
}

/// The findings as a JSON value: `{findings: [...], summary: {deny, warn, info}}`.
pub fn json_value(findings: &[Finding]) -> serde_json::Value {
    serde_json::json!({ "findings": findings, "summary": Tally::of(findings) })
}

/// The findings as pretty JSON.
pub fn render_json(findings: &[Finding]) -> String {
    let mut s = serde_json::to_string_pretty(&json_value(findings)).expect("findings serialize");
    s.push('\n');
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The findings as a Markdown section for a pull-request comment, at most `max_chars` long.
pub fn render_markdown(findings: &[Finding], max_chars: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {}\n", summary(findings).trim_end_matches('.'));
    if findings.is_empty() {
        return out;
    }
    out.push_str("| severity | rule | where | finding |\n|---|---|---|---|\n");
    for (i, f) in findings.iter().enumerate() {
        let where_ = f
            .location
            .as_ref()
            .map(|l| format!("`{}:{}`", l.file.display(), l.line))
            .unwrap_or_else(|| format!("`{}`", f.address));
        let mut row = format!("| {} | `{}` | {} | {}", f.severity, f.rule, md_cell(&where_), md_cell(&f.message));
        if let Some(h) = &f.help {
            row.push_str(&format!("<br>_{}_", md_cell(h)));
        }
        row.push_str(" |\n");
        let note = format!("\n_{} more findings not shown; run `keyward validate` for all._\n", findings.len() - i);
        if out.len() + row.len() + note.len() > max_chars {
            out.push_str(&note);
            break;
        }
        out.push_str(&row);
    }
    out
}
