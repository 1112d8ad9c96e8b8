//! Diagnostics rendered like compiler errors (with the offending line shown), or as JSON.

use std::fmt::Write;

use std::collections::HashMap;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan,
    SpanContents,
};

use super::{paint, styles};
use crate::diagnostic::{Diagnostic, Level};
use crate::load::Loaded;
use crate::model::escape::{Term, is_unsafe, terminal};

/// A problem with its source lines, in the shape miette renders; diagnostics and policy
/// findings both render through it.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub code: &'a str,
    pub severity: miette::Severity,
    pub message: String,
    pub help: Option<&'a str>,
    pub label: String,
    pub source: Option<Snippet>,
    pub span: Option<SourceSpan>,
}

/// The few lines of a file around a problem, with their real line numbers: miette is given
/// this instead of the whole file, so rendering thousands of diagnostics in large files stays
/// proportional to what is shown.
#[derive(Debug)]
pub(crate) struct Snippet {
    name: String,
    text: String,
    /// 0-based line number of the snippet's first line in its file.
    first_line: usize,
}

impl Snippet {
    /// Replaces the bytes under `span` with asterisks (a value that must not be shown).
    fn hide(mut self, span: SourceSpan) -> Self {
        let (start, end) = (span.offset(), span.offset() + span.len());
        if end <= self.text.len() && self.text.is_char_boundary(start) && self.text.is_char_boundary(end) {
            self.text.replace_range(start..end, &"*".repeat(end - start));
        }
        self
    }
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self.text.read_span(span, before, after)?;
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

/// Byte offsets of the start of every line of a text.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }
}

/// How many lines around the problem are shown.
const CONTEXT: usize = 2;

/// The snippet around 1-based `line`/`column` of `text`, and the span of the token there.
pub(crate) fn snippet(
    name: &str,
    text: &str,
    index: &LineIndex,
    line: u32,
    column: u32,
) -> Option<(Snippet, SourceSpan)> {
    let l = (line as usize).checked_sub(1)?;
    let line_start = *index.starts.get(l)?;
    let first = l.saturating_sub(CONTEXT);
    let last = (l + CONTEXT + 1).min(index.starts.len());
    let start = index.starts[first];
    let end = index.starts.get(last).copied().unwrap_or(text.len());
    let body = &text[start..end];
    let line_text = &text[line_start..index.starts.get(l + 1).copied().unwrap_or(text.len())];
    let col = (column.max(1) - 1) as usize;
    let within = line_text.char_indices().nth(col).map(|(b, _)| b).unwrap_or(line_text.trim_end_matches('\n').len());
    let at = line_start + within - start;
    let span = SourceSpan::new(at.into(), token_len(body, at));
    Some((Snippet { name: terminal(name).into_owned(), text: same_length_visible(body), first_line: first }, span))
}

/// `text` with every unsafe character but the line break replaced by a visible one of the same
/// UTF-8 length (`?`, `¿`, `\u{fffd}`), so the spans into it stay where they were and a file
/// cannot send control sequences or bidi overrides to the terminal through a snippet.
fn same_length_visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => c,
            c if is_unsafe(c) => match c.len_utf8() {
                1 => '?',
                2 => '¿',
                _ => '\u{fffd}',
            },
            c => c,
        })
        .collect()
}

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", Term(&self.message))
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(Term(self.code)))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.help.map(|h| Box::new(Term(h)) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        let label = terminal(&self.label).into_owned();
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(Some(label), span))))
    }
}

/// The length of the token at `offset` (to the end of a word or value), at least 1.
pub(crate) fn token_len(text: &str, offset: usize) -> usize {
    let rest = &text[offset..];
    let end = rest.find(['\n', ',', '}', ']', '#']).unwrap_or(rest.len());
    rest[..end].trim_end().len().max(1)
}

/// Renders diagnostics like a compiler, with source lines; `width` fixes the wrap width.
pub fn render_text(diags: &[Diagnostic], loaded: Option<&Loaded>, color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    let files: HashMap<&std::path::Path, &crate::load::SourceFile> =
        loaded.map(|l| l.files.iter().map(|f| (f.path.as_path(), f)).collect()).unwrap_or_default();
    // Each file's text with plain-text secrets masked, and its line index, computed once.
    let mut masked: HashMap<&std::path::Path, (String, LineIndex)> = HashMap::new();
    for d in diags {
        let file_text = d.file.as_deref().and_then(|f| files.get(f).copied());
        let (source, span) = match (file_text, d.line) {
            (Some(sf), Some(line)) => {
                let (text, index) = masked.entry(sf.path.as_path()).or_insert_with(|| {
                    let text = crate::policy::builtin::secrets::redact(&sf.text).into_owned();
                    let index = LineIndex::new(&text);
                    (text, index)
                });
                match snippet(&sf.path.display().to_string(), text, index, line, d.column.unwrap_or(1)) {
                    // A literal secret is hidden whatever it looks like.
                    Some((snip, span)) if d.code == "literal-secret" => (Some(snip.hide(span)), Some(span)),
                    Some((snip, span)) => (Some(snip), Some(span)),
                    None => (None, None),
                }
            }
            _ => (None, None),
        };
        let location = match (&d.file, d.line) {
            (Some(f), Some(l)) => format!("{}:{}:{}", f.display(), l, d.column.unwrap_or(1)),
            (Some(f), None) => f.display().to_string(),
            _ => String::new(),
        };
        if !location.is_empty() && span.is_none() {
            let _ = writeln!(out, "{}", paint(color, styles::BOLD, &terminal(&location)));
        }
        let report = Report {
            code: d.code,
            severity: match d.level {
                Level::Error => miette::Severity::Error,
                Level::Warning => miette::Severity::Warning,
            },
            message: d.message.clone(),
            help: d.help.as_deref(),
            label: d.field.as_ref().map(|f| format!("in `{f}`")).unwrap_or_else(|| "here".to_string()),
            source,
            span,
        };
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
    fn snippets_keep_real_line_numbers() {
        let text: String = (1..=50).map(|i| format!("key{i}: value{i}\n")).collect();
        let index = LineIndex::new(&text);
        let (snip, span) = snippet("f.yaml", &text, &index, 40, 8).unwrap();
        assert_eq!(snip.first_line, 37);
        assert_eq!(snip.text.lines().count(), 5);
        let contents = snip.read_span(&span, 0, 0).unwrap();
        assert_eq!(contents.line(), 39, "0-based line 39 is line 40");
        assert_eq!(std::str::from_utf8(contents.data()).unwrap(), "value40");
        assert_eq!(&snip.text[span.offset()..span.offset() + span.len()], "value40");
        assert!(snippet("f.yaml", &text, &index, 99, 1).is_none());
    }
}
