//! Limits on a document's size, nesting and aliases, checked before serde_yaml parses it.
//!
//! serde_yaml (libyaml) keeps every token of a document in memory, about a hundred bytes each,
//! and its scanner slows quadratically with the depth of nested `[` and `{`: a 1 MB document
//! of nested `{a:` takes minutes, a 16 MiB one hours. No keyward resource needs more than a
//! few levels or [`MAX_INDICATORS`] entries, so larger documents are refused up front, cheaply
//! and without being fooled:
//! - every token of a YAML document but a few needs one of the indicator bytes counted here,
//!   so their count bounds the tokens (and memory) even when it overcounts prose;
//! - a document with at most [`MAX_DEPTH`] opening brackets cannot nest deeper than that;
//!   one with more is scanned with yaml_rust2, whose scanner stops at 256 levels;
//! - a document with aliases (`*name`) is measured as if they were expanded, so an alias bomb
//!   ("billion laughs") is refused by name, whatever field it hides in.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, Scanner};

/// The most indicator bytes (`- : ? , [ ] { } & * !`) a document may hold.
pub const MAX_INDICATORS: usize = 200_000;

/// The deepest nesting of `[` and `{` accepted; serde_yaml stops at 128 levels anyway.
pub const MAX_DEPTH: usize = 128;

/// Expanding aliases may make a document at most this many times larger, plus
/// [`ALIAS_ALLOWANCE`] values.
pub const MAX_ALIAS_GROWTH: u64 = 10;
pub const ALIAS_ALLOWANCE: u64 = 10_000;

/// Why a document is not parsed. Lines and columns are 1-based, within the document.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Exceeded {
    TooLarge {
        indicators: usize,
    },
    TooDeep {
        line: u32,
        column: u32,
    },
    /// Expanding the aliases would give more than `limit` values, as found at this place.
    Aliases {
        limit: u64,
        line: u32,
        column: u32,
    },
    /// yaml_rust2 found a syntax error; serde_yaml is not trusted past it (see [`scan`]).
    Syntax {
        message: String,
        line: u32,
        column: u32,
    },
}

/// Checks `text` against the limits.
pub(super) fn check(text: &str) -> Result<(), Exceeded> {
    let mut indicators = 0usize;
    let mut openers = 0usize;
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                openers += 1;
                indicators += 1;
            }
            b'-' | b':' | b'?' | b',' | b']' | b'}' | b'&' | b'*' | b'!' => indicators += 1,
            _ => {}
        }
    }
    if indicators > MAX_INDICATORS {
        return Err(Exceeded::TooLarge { indicators });
    }
    if openers > MAX_DEPTH {
        scan(text)?;
    }
    if text.contains('&') && text.contains('*') {
        aliases(text, indicators)?;
    }
    Ok(())
}

/// Scans a document with too many brackets to be sure of its depth from counting them. The
/// indicator limit bounds what the scanner buffers. A document yaml_rust2 rejects is not handed
/// to serde_yaml either, lest libyaml read on past the error into deep nesting.
fn scan(text: &str) -> Result<(), Exceeded> {
    let mut scanner = Scanner::new(text.chars());
    for _ in scanner.by_ref() {}
    match scanner.get_error() {
        None => Ok(()),
        Some(e) => {
            let (line, column) = position(e.marker());
            if e.info().contains("recursion limit") {
                Err(Exceeded::TooDeep { line, column })
            } else {
                Err(Exceeded::Syntax { message: e.info().to_string(), line, column })
            }
        }
    }
}

/// Counts the values of `text` as if its aliases were expanded, and fails as soon as that
/// passes the limit. A syntax error ends the count: serde_yaml reports it.
fn aliases(text: &str, indicators: usize) -> Result<(), Exceeded> {
    // Every value but the first follows an indicator (see the module comment).
    let limit = (2 * indicators as u64 + 1) * MAX_ALIAS_GROWTH + ALIAS_ALLOWANCE;
    let mut parser = Parser::new_from_str(text);
    // The size of each anchored value, and of each collection being read with its anchor.
    let mut anchored: HashMap<usize, u64> = HashMap::new();
    let mut open: Vec<(usize, u64)> = vec![(0, 0)];
    loop {
        let (event, mark) = match parser.next_token() {
            Ok((Event::StreamEnd, _)) | Err(_) => return Ok(()),
            Ok(next) => next,
        };
        let added = match event {
            Event::Scalar(_, _, anchor, _) => {
                if anchor > 0 {
                    anchored.insert(anchor, 1);
                }
                1
            }
            Event::Alias(anchor) => anchored.get(&anchor).copied().unwrap_or(1),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, 1));
                0
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (anchor, size) = open.pop().unwrap_or_default();
                if anchor > 0 {
                    anchored.insert(anchor, size);
                }
                size
            }
            _ => 0,
        };
        if let Some(top) = open.last_mut() {
            top.1 = top.1.saturating_add(added);
            if top.1 > limit {
                let (line, column) = position(&mark);
                return Err(Exceeded::Aliases { limit, line, column });
            }
        }
    }
}

fn position(m: &Marker) -> (u32, u32) {
    (m.line() as u32, m.col() as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_pass() {
        let doc = "kind: Role\nname: a\nbindings:\n  directory: {group: a}\nduties: [x, y]\n";
        assert_eq!(check(doc), Ok(()));
        // Many brackets, shallow nesting: scanned and accepted.
        let wide = format!("kind: Role\nname: a\nduties: [{}]\n", "[x], ".repeat(500));
        assert_eq!(check(&wide), Ok(()));
        // A few aliases.
        assert_eq!(check("kind: Role\nname: a\nduties: &d [x, y]\nx: [*d, *d, *d]\n"), Ok(()));
    }

    /// Regression: 40,000 nested `{a:` took minutes in libyaml's scanner.
    #[test]
    fn deep_flow_nesting_is_refused() {
        let doc = format!("kind: User\ndisplayName:\n{}{}", " {a:\n".repeat(40_000), " }\n".repeat(40_000));
        assert!(matches!(check(&doc), Err(Exceeded::TooDeep { line, .. }) if line > 200));
        // Closing brackets inside quotes do not hide the depth.
        let tricky = format!("x: {}\n", "[a \"b, \"]]]]]]]]\", ".repeat(300));
        assert!(matches!(check(&tricky), Err(Exceeded::TooDeep { .. })));
    }

    /// Regression: a 15 MB flat list took gigabytes of memory in serde_yaml.
    #[test]
    fn huge_documents_are_refused() {
        let doc = format!("kind: User\nroles:\n{}", "- a\n".repeat(MAX_INDICATORS + 1));
        assert!(matches!(check(&doc), Err(Exceeded::TooLarge { indicators }) if indicators > MAX_INDICATORS));
    }

    /// Regression: `kind: *bomb` in a flow-style document expanded 10^10 values into memory.
    #[test]
    fn alias_bombs_are_refused() {
        let mut bomb = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (name, prev) in [('b', 'a'), ('c', 'b'), ('d', 'c'), ('e', 'd'), ('f', 'e')] {
            bomb.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 9].join(", ")));
        }
        // 9^6 values from about 250 written: refused on line 5, where `e` passes 12,000.
        assert!(matches!(check(&bomb), Err(Exceeded::Aliases { line: 5, .. })), "{:?}", check(&bomb));
    }

    #[test]
    fn syntax_errors_in_bracket_heavy_documents_are_reported() {
        let doc = format!("x: [{} \"unclosed\n", "[a], ".repeat(200));
        assert!(matches!(check(&doc), Err(Exceeded::Syntax { .. })));
    }
}
