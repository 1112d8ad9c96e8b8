//! Policy findings rendered like compiler diagnostics (with the YAML line shown), as JSON, and
//! as a Markdown table for pull-request comments.
//!
//! Source lines are shown with every plain-text secret masked, so a finding about a secret
//! never prints it.

use std::collections::HashMap;
use std::fmt::Write;

use miette::{GraphicalReportHandler, GraphicalTheme};

use super::diagnostics::{LineIndex, Report, snippet};
use super::{paint, styles};
use crate::load::Loaded;
use crate::model::Severity;
use crate::model::escape::{markdown_code, markdown_text};
use crate::policy::{Finding, Tally, builtin::secrets};

/// Renders findings like a compiler, each with its YAML line; `width` fixes the wrap width.
pub fn render_text(findings: &[Finding], loaded: Option<&Loaded>, color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    // Each file's text with its secrets masked, and its line index, computed once; miette is
    // given only the few lines around each finding, so rendering costs the same whatever the
    // file's size.
    let files: HashMap<&std::path::Path, &crate::load::SourceFile> =
        loaded.map(|l| l.files.iter().map(|f| (f.path.as_path(), f)).collect()).unwrap_or_default();
    let mut masked: HashMap<&std::path::Path, (String, LineIndex)> = HashMap::new();
    let mut out = String::new();
    for f in findings {
        let file = f.location.as_ref().and_then(|loc| files.get(loc.file.as_path()).copied());
        let (source, span) = match (file, &f.location) {
            (Some(sf), Some(loc)) => {
                let (text, index) = masked.entry(sf.path.as_path()).or_insert_with(|| {
                    let text = secrets::redact(&sf.text).into_owned();
                    let index = LineIndex::new(&text);
                    (text, index)
                });
                match snippet(&sf.path.display().to_string(), text, index, loc.line, loc.column) {
                    Some((snip, span)) => (Some(snip), Some(span)),
                    None => (None, None),
                }
            }
            _ => (None, None),
        };
        if span.is_none()
            && let Some(loc) = &f.location
        {
            let where_ = format!("{}:{}:{}", loc.file.display(), loc.line, loc.column);
            let _ = writeln!(out, "{}", paint(color, styles::BOLD, &crate::model::escape::terminal(&where_)));
        }
        let report = Report {
            code: &f.rule,
            severity: match f.severity {
                Severity::Deny => miette::Severity::Error,
                Severity::Warn => miette::Severity::Warning,
                Severity::Info => miette::Severity::Advice,
            },
            message: format!("{}: {}", f.severity, f.message),
            help: f.help.as_deref(),
            label: f.address.clone(),
            source,
            span,
        };
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
            .map(|l| markdown_code(&format!("{}:{}", l.file.display(), l.line)))
            .unwrap_or_else(|| markdown_code(&f.address));
        let mut row =
            format!("| {} | {} | {} | {}", f.severity, markdown_code(&f.rule), where_, markdown_text(&f.message));
        if let Some(h) = &f.help {
            row.push_str(&format!("<br>_{}_", markdown_text(h)));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A finding about a live account whose userName holds Markdown and HTML, as the live
    /// segregation-of-duties rule writes it.
    #[test]
    fn hostile_values_stay_inside_their_table_cell() {
        let name = "x`</details><img src=x onerror=alert(1)>[docs](http://evil.example) @northwind/security | *y*";
        let finding = Finding::new(
            "sod.live-conflict",
            Severity::Warn,
            format!("okta.user.{name}"),
            format!("`{name}` holds `buyer` and `purchasing-manager`\n| forged | row |"),
        )
        .help(format!("remove `{name}` from one group"));
        let md = render_markdown(&[finding], 10_000);
        insta::assert_snapshot!(md);
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), 3, "header, separator and one row: {md}");
        // Cells are split by unescaped pipes only: five in the one row.
        let row = rows[2];
        let pipes: Vec<usize> =
            row.char_indices().filter(|&(i, c)| c == '|' && !row[..i].ends_with('\\')).map(|(i, _)| i).collect();
        assert_eq!(pipes.len(), 5, "{row}");
        // The address is one code span, closed by a fence longer than its backtick run.
        assert!(row[pipes[2] + 1..pipes[3]].trim().starts_with("``okta.user.x`<"), "{row}");
        // The message is text: nothing in it is HTML, a link, emphasis or a mention.
        let message = &row[pipes[3] + 1..pipes[4]];
        for raw in ["</details>", "<img", "[docs](", "@northwind", "*y*", "\n"] {
            assert!(!message.contains(raw), "{raw} raw in {message}");
        }
    }
}
