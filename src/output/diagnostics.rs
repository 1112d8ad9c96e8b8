//! Diagnostics rendered like compiler errors (with the offending line shown), or as JSON.

use std::fmt::Write;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

use super::{paint, styles};
use crate::diagnostic::{Diagnostic, Level};
use crate::load::Loaded;

/// A diagnostic with its source text, in the shape miette renders.
#[derive(Debug)]
struct Report<'a> {
    diag: &'a Diagnostic,
    source: Option<NamedSource<String>>,
    span: Option<SourceSpan>,
}

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.level {
            Level::Error => miette::Severity::Error,
            Level::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.diag.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        let label = self.diag.field.as_ref().map(|f| format!("in `{f}`")).unwrap_or_else(|| "here".to_string());
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(Some(label), span))))
    }
}

/// Byte offset of a 1-based line and column in `text`.
fn offset_of(text: &str, line: u32, column: u32) -> Option<usize> {
    let mut off = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            let col = (column.max(1) - 1) as usize;
            let within = l.char_indices().nth(col).map(|(b, _)| b).unwrap_or(l.trim_end_matches('\n').len());
            return Some(off + within);
        }
        off += l.len();
    }
    None
}

/// The length of the token at `offset` (to the end of a word or value), at least 1.
fn token_len(text: &str, offset: usize) -> usize {
    let rest = &text[offset..];
    let end = rest.find(['\n', ',', '}', ']', '#']).unwrap_or(rest.len());
    rest[..end].trim_end().len().max(1)
}

/// Renders diagnostics like a compiler, with source lines; `width` fixes the wrap width.
pub fn render_text(diags: &[Diagnostic], loaded: Option<&Loaded>, color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    for d in diags {
        let file_text = loaded.zip(d.file.as_ref()).and_then(|(l, f)| l.files.iter().find(|s| &s.path == f));
        let (source, span) = match (file_text, d.line) {
            (Some(sf), Some(line)) => {
                let off = offset_of(&sf.text, line, d.column.unwrap_or(1));
                let span = off.map(|o| SourceSpan::new(o.into(), token_len(&sf.text, o)));
                (Some(NamedSource::new(sf.path.display().to_string(), sf.text.clone())), span)
            }
            _ => (None, None),
        };
        let location = match (&d.file, d.line) {
            (Some(f), Some(l)) => format!("{}:{}:{}", f.display(), l, d.column.unwrap_or(1)),
            (Some(f), None) => f.display().to_string(),
            _ => String::new(),
        };
        if !location.is_empty() && span.is_none() {
            let _ = writeln!(out, "{}", paint(color, styles::BOLD, &location));
        }
        let report = Report { diag: d, source, span };
        let _ = handler.render_report(&mut out, &report);
        out.push('\n');
    }
    out
}

/// A closing line: `2 errors, 1 warning`.
pub fn tally(diags: &[Diagnostic]) -> String {
    let errors = diags.iter().filter(|d| d.level == Level::Error).count();
    let warnings = diags.len() - errors;
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!("{}, {}", plural(errors, "error"), plural(warnings, "warning"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        let t = "ab\ncdé\nf";
        assert_eq!(offset_of(t, 1, 1), Some(0));
        assert_eq!(offset_of(t, 2, 3), Some(5));
        assert_eq!(offset_of(t, 3, 1), Some(8));
        assert_eq!(offset_of(t, 9, 1), None);
    }
}
