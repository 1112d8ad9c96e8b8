//! Escaping of values that come from outside (live userNames and display names, configuration
//! text, server messages) for each place they are shown: a terminal, Markdown, a chat webhook.
//!
//! A value never reaches a reader raw: it cannot clear a screen, reorder text with bidi
//! overrides, forge a new line such as `Plan: 0 to create`, break out of a Markdown table or
//! code span, or ping a channel. The terminal form is also the base of the other two, so
//! control characters are visible everywhere.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` must not reach a reader as it is: C0 controls (newline, tab and ESC included),
/// DEL, C1 controls, bidi embeddings, overrides, isolates and marks, and the Unicode line and
/// paragraph separators.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{200e}' | '\u{200f}' | '\u{061c}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        | '\u{2028}' | '\u{2029}')
}

/// `s` with every [`is_unsafe`] character shown as a Rust-style escape (`\u{1b}`, `\u{a}`), so
/// a value stays on one line and its control characters are visible. Borrowed when nothing
/// needed escaping.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_terminal(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_terminal(out: &mut String, c: char) {
    if is_unsafe(c) {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    } else {
        out.push(c);
    }
}

/// [`terminal`] for a text of several lines, such as an error message: line breaks are kept,
/// every other unsafe character is escaped.
pub fn terminal_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\n' { out.push(c) } else { push_terminal(&mut out, c) }
    }
    Cow::Owned(out)
}

/// Shows a value through [`terminal`] when formatted: `format!("{}", Term(&address))`.
#[derive(Debug, Clone, Copy)]
pub struct Term<T>(pub T);

impl<T: fmt::Display> fmt::Display for Term<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.to_string();
        f.pad(&terminal(&s))
    }
}

/// `s` as Markdown text that renders as exactly these characters: no emphasis, code, masked
/// links (`[text](url)`), HTML (`</details>` included), headings, table cells or `@` mentions. Safe in a
/// paragraph, a block quote and a table cell; line breaks and control characters are escaped
/// as on a terminal.
pub fn markdown_text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '#' => {
                out.push('\\');
                out.push(c);
            }
            // A list item, a setext heading underline: only at the start.
            '-' | '+' | '=' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            // A word joiner after an `@` that could start a mention (`@team`, not the `@` of
            // an e-mail address) stops GitHub's mentions. A bare URL stays a link: it shows
            // where it goes, unlike `[text](url)`.
            '@' if i == 0 || !chars[i - 1].is_alphanumeric() => out.push_str("@\u{2060}"),
            c => push_terminal(&mut out, c),
        }
    }
    out
}

/// `s` as text inside raw HTML in Markdown (a `<summary>`): `&`, `<`, `>` and `"` as entities,
/// a word joiner after `@`, control characters and line breaks escaped as on a terminal.
pub fn html_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '@' if !out.ends_with(|p: char| p.is_alphanumeric()) => out.push_str("@\u{2060}"),
            c => push_terminal(&mut out, c),
        }
    }
    out
}

/// `s` as a Markdown code span: a fence of backticks longer than any run inside it, so the
/// value cannot close it, with `|` escaped so it stays in its table cell. Control characters
/// and line breaks are escaped as on a terminal.
pub fn markdown_code(s: &str) -> String {
    let body: String = terminal(s).replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // A span that starts or ends with a backtick needs a space between it and the fence; one
    // space on each side is stripped again when rendered.
    let pad = if body.starts_with('`') || body.ends_with('`') || body.is_empty() { " " } else { "" };
    format!("{fence}{pad}{body}{pad}{fence}")
}

/// `s` for the text of a chat webhook message (Slack mrkdwn, or Microsoft Teams Markdown):
/// `&`, `<` and `>` as `&amp;` `&lt;` `&gt;`, so `<!channel>`, `<@U123>` and `<http://x|y>`
/// links are inert, inside a code span (`` ` `` shown as `ˋ`, since neither format can escape
/// it there) so Markdown links and emphasis are too. Control characters and line breaks are
/// escaped as on a terminal.
pub fn webhook_code(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    out.push('`');
    for c in terminal(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push('\u{2cb}'),
            c => out.push(c),
        }
    }
    out.push('`');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_shows_controls_bidi_and_line_breaks_escaped() {
        assert_eq!(terminal("alice"), Cow::Borrowed("alice"));
        assert_eq!(terminal("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(terminal("x\nPlan: 0 to create\r"), "x\\u{a}Plan: 0 to create\\u{d}");
        assert_eq!(terminal("\u{7f}\u{85}\u{9b}"), "\\u{7f}\\u{85}\\u{9b}");
        assert_eq!(terminal("\u{202e}gpj.exe\u{2066}\u{2069}"), "\\u{202e}gpj.exe\\u{2066}\\u{2069}");
        assert_eq!(terminal("Zoë Ünal 山田"), "Zoë Ünal 山田");
        assert_eq!(terminal_lines("a\x1b[2J\nb"), "a\\u{1b}[2J\nb");
        assert_eq!(format!("[{:<8}]", Term("a\tb")), "[a\\u{9}b ]");
    }

    #[test]
    fn markdown_text_is_inert() {
        let md = markdown_text("x`</details><img src=x>[link](http://evil) @team *b* | (@org/team)");
        for raw in ["</details>", "<img", "[link](", "@team", "*b*", " | ", "@org"] {
            assert!(!md.contains(raw), "{raw} in {md}");
        }
        assert!(md.starts_with("x\\`"), "{md}");
        assert_eq!(markdown_text("a\nb"), "a\\u{a}b");
        assert_eq!(markdown_text("janet.leverling@northwind.example"), "janet.leverling@northwind.example");
    }

    #[test]
    fn markdown_code_cannot_be_closed_from_inside() {
        assert_eq!(markdown_code("alice"), "`alice`");
        assert_eq!(markdown_code("a`b"), "``a`b``");
        assert_eq!(markdown_code("``x"), "``` ``x ```");
        assert_eq!(markdown_code("a|b\nc"), "`a\\|b\\u{a}c`");
    }

    #[test]
    fn html_text_is_inert_inside_a_summary() {
        assert_eq!(
            html_text("main</summary><b \"x\">@team&\n"),
            "main&lt;/summary&gt;&lt;b &quot;x&quot;&gt;@\u{2060}team&amp;\\u{a}"
        );
        assert_eq!(html_text("anne@northwind.example"), "anne@northwind.example");
    }

    #[test]
    fn webhook_code_makes_slack_controls_inert() {
        assert_eq!(webhook_code("<!channel> <http://x|y> & `z`"), "`&lt;!channel&gt; &lt;http://x|y&gt; &amp; ˋzˋ`");
    }
}
