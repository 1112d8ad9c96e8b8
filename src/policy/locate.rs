//! A fast path for locating values in the common shapes of resource documents, for policies
//! that report thousands of findings.
//!
//! [`crate::load::locate`] re-parses a document with a YAML event parser, which costs about
//! 15 µs for a user document; this line scanner answers the shapes that findings point at
//! (a top-level value on its key's line, an item of a block or one-line flow sequence, a key of
//! such an item) in well under a microsecond, and returns `None` for anything else, so the
//! caller falls back to the parser. A test checks that both agree on every document of the
//! examples.

use crate::load::PathSeg;

/// Lines of a document with their 1-based numbers and byte offsets.
struct Line<'t> {
    no: u32,
    text: &'t str,
}

fn lines(doc: &str) -> impl Iterator<Item = Line<'_>> {
    (1u32..).zip(doc.split('\n')).map(|(no, t)| Line { no, text: t.strip_suffix('\r').unwrap_or(t) })
}

fn indent(s: &str) -> usize {
    s.len() - s.trim_start_matches(' ').len()
}

fn blank_or_comment(s: &str) -> bool {
    let t = s.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// The 1-based character column of byte `at` in `line`.
fn col(line: &str, at: usize) -> u32 {
    line[..at].chars().count() as u32 + 1
}

/// If `s` (from byte `from`) is `key:` followed by a space or the end, the offset of what
/// follows the colon.
fn after_key(s: &str, from: usize, key: &str) -> Option<usize> {
    let rest = s.get(from..)?.strip_prefix(key)?.strip_prefix(':')?;
    if rest.is_empty() || rest.starts_with([' ', '\t']) { Some(s.len() - rest.len()) } else { None }
}

/// The offset of a plain value that starts on the same line at or after `from`, if it is one
/// this scanner understands (not a block scalar, anchor, tag, alias or comment).
fn inline_value(s: &str, from: usize) -> Option<usize> {
    let rest = &s[from..];
    let trimmed = rest.trim_start_matches([' ', '\t']);
    if trimmed.is_empty() || trimmed.starts_with(['#', '|', '>', '&', '!', '*', '-', '?']) {
        return None;
    }
    Some(s.len() - trimmed.len())
}

/// The start offsets of the items of a one-line flow sequence or mapping that opens at
/// `open` (`[` or `{`), with each item's end; `None` if it does not close on the line.
fn flow_items(s: &str, open: usize) -> Option<Vec<(usize, usize)>> {
    let b = s.as_bytes();
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut start = None;
    for i in open..b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            b'"' | b'\'' => {
                quote = Some(c);
                if depth == 1 && start.is_none() {
                    start = Some(i);
                }
            }
            b'[' | b'{' => {
                if depth == 1 && start.is_none() {
                    start = Some(i);
                }
                depth += 1;
            }
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    if let Some(st) = start {
                        items.push((st, i));
                    }
                    return Some(items);
                }
            }
            b',' if depth == 1 => {
                items.push((start?, i));
                start = None;
            }
            b'#' if depth >= 1 && i > 0 && b[i - 1] == b' ' => return None,
            b' ' | b'\t' => {}
            _ => {
                if depth == 1 && start.is_none() {
                    start = Some(i);
                }
            }
        }
    }
    None
}

/// The value of `key` in a one-line flow mapping item `s[from..to]` (`{role: a, expires: b}`).
fn flow_key(s: &str, from: usize, key: &str) -> Option<usize> {
    if !s[from..].starts_with('{') {
        return None;
    }
    let items = flow_items(s, from)?;
    for (st, en) in items {
        if let Some(v) = after_key(&s[..en], st, key) {
            return inline_value(&s[..en], v);
        }
    }
    None
}

/// The line and column of `path` in `doc`, for the shapes described in the module docs.
pub fn fast_locate(doc: &str, path: &[PathSeg]) -> Option<(u32, u32)> {
    let (first, rest) = path.split_first()?;
    let PathSeg::Key(key) = first else { return None };
    let mut it = lines(doc);
    let head = it.by_ref().find(|l| after_key(l.text, 0, key).is_some())?;
    let after = after_key(head.text, 0, key)?;
    match rest {
        [] => inline_value(head.text, after).map(|v| (head.no, col(head.text, v))),
        [PathSeg::Index(i), tail @ ..] => {
            if let Some(v) = inline_value(head.text, after) {
                // A one-line flow sequence.
                if !head.text[v..].starts_with('[') {
                    return None;
                }
                let (st, _) = *flow_items(head.text, v)?.get(*i)?;
                return match tail {
                    [] => Some((head.no, col(head.text, st))),
                    [PathSeg::Key(k)] => flow_key(head.text, st, k).map(|v| (head.no, col(head.text, v))),
                    _ => None,
                };
            }
            if !blank_or_comment(&head.text[after..]) {
                return None;
            }
            // A block sequence: items are `- ` lines at one indentation.
            let mut item_indent = None;
            let mut n = 0usize;
            let mut found: Option<(u32, &str, usize)> = None;
            for l in it.by_ref() {
                if blank_or_comment(l.text) {
                    continue;
                }
                let ind = indent(l.text);
                let t = &l.text[ind..];
                let is_item = t == "-" || t.starts_with("- ");
                match item_indent {
                    None if is_item => item_indent = Some(ind),
                    None => return None,
                    Some(ii) if ind < ii || (ind == ii && !is_item) => break,
                    Some(ii) if ind > ii => continue,
                    Some(_) => {}
                }
                if !is_item {
                    continue;
                }
                if n == *i {
                    let content = inline_value(l.text, ind + 1)?;
                    found = Some((l.no, l.text, content));
                    break;
                }
                n += 1;
            }
            let (no, text, content) = found?;
            match tail {
                [] => {
                    // Scalars and flow collections start at their first character; the parser
                    // marks a block mapping elsewhere, so leave those to it.
                    let first = text[content..].split([' ', ',']).next().unwrap_or("");
                    let mapping = !text[content..].starts_with(['"', '\'', '[', '{'])
                        && (first.ends_with(':') || text[content..].contains(": "));
                    if mapping { None } else { Some((no, col(text, content))) }
                }
                [PathSeg::Key(k)] => {
                    if text[content..].starts_with('{') {
                        return flow_key(text, content, k).map(|v| (no, col(text, v)));
                    }
                    if let Some(v) = after_key(text, content, k) {
                        return inline_value(text, v).map(|v| (no, col(text, v)));
                    }
                    // The item's other keys, on the lines below at the first key's column.
                    after_key(text, content, text[content..].split(':').next()?.trim_end())?;
                    for l in it {
                        if blank_or_comment(l.text) {
                            continue;
                        }
                        let ind = indent(l.text);
                        if ind != content {
                            if ind < content {
                                return None;
                            }
                            continue;
                        }
                        if let Some(v) = after_key(l.text, ind, k) {
                            return inline_value(l.text, v).map(|v| (l.no, col(l.text, v)));
                        }
                    }
                    None
                }
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::locate;

    fn p(segs: &[&str]) -> Vec<PathSeg> {
        segs.iter()
            .map(|s| s.parse::<usize>().map(PathSeg::Index).unwrap_or_else(|_| PathSeg::Key(s.to_string())))
            .collect()
    }

    /// Every answer of the fast path is the parser's answer.
    fn agrees(doc: &str, path: &[PathSeg]) -> bool {
        match fast_locate(doc, path) {
            Some(got) => {
                assert_eq!(Some(got), locate(doc, path), "{path:?} in\n{doc}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn agrees_with_the_parser_on_common_shapes() {
        let doc = "# c\nkind: User\nname: alice\nroles:\n  - ap-clerk\n  # a comment\n  - role: finance-admin\n    expires: 2027-01-01 # note\n    reason: \"x, y\"\n  - {role: buyer, expires: 2027-02-02}\nmanager: bob\n";
        for path in [
            p(&["name"]),
            p(&["manager"]),
            p(&["roles", "0"]),
            p(&["roles", "1", "role"]),
            p(&["roles", "1", "expires"]),
            p(&["roles", "1", "reason"]),
            p(&["roles", "2"]),
            p(&["roles", "2", "expires"]),
        ] {
            assert!(agrees(doc, &path), "fast path should answer {path:?}");
        }
        for path in
            [p(&["roles"]), p(&["roles", "1"]), p(&["roles", "3"]), p(&["roles", "0", "expires"]), p(&["missing"])]
        {
            agrees(doc, &path);
        }
        let flow = "kind: User\nname: a\nroles: [x, 'y', {role: z, expires: 2027-01-01}]\n";
        for path in [p(&["roles", "0"]), p(&["roles", "1"]), p(&["roles", "2"]), p(&["roles", "2", "expires"])] {
            assert!(agrees(flow, &path), "fast path should answer {path:?}");
        }
        let unindented = "roles:\n- a\n- role: b\n  expires: 2027-01-01\nname: n\n";
        for path in [p(&["roles", "0"]), p(&["roles", "1", "expires"]), p(&["name"])] {
            assert!(agrees(unindented, &path), "fast path should answer {path:?}");
        }
    }

    #[test]
    fn agrees_with_the_parser_on_every_example_document() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut answered = 0;
        for dir in ["examples/quickstart", "examples/enterprise"] {
            let loaded = crate::load::load_dir(&root.join(dir)).unwrap();
            for d in &loaded.documents {
                let text = loaded.text(d);
                for key in ["name", "owner", "manager", "level", "privileged", "severity"] {
                    answered += agrees(text, &p(&[key])) as usize;
                }
                for i in 0..6 {
                    let i = i.to_string();
                    for path in [
                        p(&["roles", &i]),
                        p(&["roles", &i, "expires"]),
                        p(&["readers", &i]),
                        p(&["credentials", &i, "lifetime"]),
                        p(&["credentials", &i, "keyAlgorithm"]),
                        p(&["exceptions", &i, "expires"]),
                    ] {
                        answered += agrees(text, &path) as usize;
                    }
                }
            }
        }
        assert!(answered > 50, "the fast path answered only {answered} paths");
    }
}
