//! Finding the line and column of a field inside a YAML document, for diagnostics.
//!
//! serde_yaml locates syntax and type errors itself; checks made after parsing (dangling
//! references, policy findings) use this to point at the offending value. It re-reads one
//! document with an event parser, so it costs nothing unless a problem is reported.

use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a path into a document: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl From<&str> for PathSeg {
    fn from(s: &str) -> Self {
        PathSeg::Key(s.to_string())
    }
}

impl From<usize> for PathSeg {
    fn from(i: usize) -> Self {
        PathSeg::Index(i)
    }
}

/// Renders a path the way diagnostics show it: `roles[2].expires`.
pub struct DisplayPath<'a>(pub &'a [PathSeg]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

enum Frame {
    Map { expecting_key: bool, key: Option<String> },
    Seq { index: usize },
}

struct Locator<'p> {
    target: &'p [PathSeg],
    stack: Vec<Frame>,
    found: Option<Marker>,
    /// When set, every scalar directly inside `target` that equals this is collected.
    child_value: Option<&'p str>,
    /// When set, every key of the mapping at `target` that equals this is collected.
    child_key: Option<&'p str>,
    children: Vec<(PathSeg, Marker)>,
}

impl<'p> Locator<'p> {
    fn new(target: &'p [PathSeg]) -> Self {
        Locator { target, stack: Vec::new(), found: None, child_value: None, child_key: None, children: Vec::new() }
    }

    /// Whether the outermost frames are the path `path`.
    fn frames_match(&self, path: &[PathSeg]) -> bool {
        self.stack.len() >= path.len()
            && self.stack.iter().zip(path).all(|(frame, seg)| match (frame, seg) {
                (Frame::Map { key: Some(k), .. }, PathSeg::Key(want)) => k == want,
                (Frame::Seq { index }, PathSeg::Index(want)) => index == want,
                _ => false,
            })
    }

    /// The path of the node that starts now, given the frames above it.
    fn current_matches(&self) -> bool {
        self.stack.len() == self.target.len() && self.frames_match(self.target)
    }

    /// Collects the scalar value that starts now if it sits directly inside `target` and
    /// equals `child_value`.
    fn collect_child(&mut self, mark: Marker, scalar: Option<&str>) {
        let (Some(want), Some(s)) = (self.child_value, scalar) else { return };
        if s != want || self.stack.len() != self.target.len() + 1 || !self.frames_match(self.target) {
            return;
        }
        let seg = match self.stack.last() {
            Some(Frame::Map { key: Some(k), .. }) => PathSeg::Key(k.clone()),
            Some(Frame::Seq { index }) => PathSeg::Index(*index),
            _ => return,
        };
        self.children.push((seg, mark));
    }

    /// Called when a node (scalar, alias, or the start of a collection) begins.
    fn node_start(&mut self, mark: Marker, scalar: Option<&str>) -> bool {
        if let Some(Frame::Map { expecting_key: true, .. }) = self.stack.last() {
            // This node is a key.
            if let (Some(want), Some(s)) = (self.child_key, scalar)
                && s == want
                && self.stack.len() == self.target.len() + 1
                && self.frames_match(self.target)
            {
                self.children.push((PathSeg::Key(s.to_string()), mark));
            }
            if let Some(Frame::Map { expecting_key, key }) = self.stack.last_mut() {
                *key = scalar.map(str::to_string);
                *expecting_key = false;
            }
            return false;
        }
        if self.found.is_none() && self.current_matches() {
            self.found = Some(mark);
        }
        self.collect_child(mark, scalar);
        true
    }

    /// Called when a value node has ended.
    fn value_end(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { expecting_key, .. }) => *expecting_key = true,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Locator<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(ref s, ..) if self.node_start(mark, Some(s)) => {
                self.value_end();
            }
            Event::Alias(_) if self.node_start(mark, None) => {
                self.value_end();
            }
            Event::MappingStart(..) => {
                let is_value = self.node_start(mark, None);
                if !is_value {
                    // A complex key: keys that are collections are not addressable.
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = None;
                    }
                }
                self.stack.push(Frame::Map { expecting_key: true, key: None });
            }
            Event::SequenceStart(..) => {
                self.node_start(mark, None);
                self.stack.push(Frame::Seq { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_end();
            }
            _ => {}
        }
    }
}

/// The 1-based line and column where the value at `path` starts in `doc`, if it is there.
/// An empty path is the document itself.
pub fn locate(doc: &str, path: &[PathSeg]) -> Option<(u32, u32)> {
    if path.is_empty() {
        return Some((1, 1));
    }
    let mut locator = Locator::new(path);
    walk(doc, &mut locator, |l| l.found.is_some());
    locator.found.map(|m| (m.line() as u32, m.col() as u32 + 1))
}

/// The scalars directly inside the collection at `parent` whose value is `value`: the last
/// step of their path, and their 1-based line and column. For checks that know the bad value
/// and the collection holding it, but not which entry it is.
pub fn children_with_value(doc: &str, parent: &[PathSeg], value: &str) -> Vec<(PathSeg, u32, u32)> {
    let mut locator = Locator::new(parent);
    locator.child_value = Some(value);
    walk(doc, &mut locator, |_| false);
    locator.children.into_iter().map(|(seg, m)| (seg, m.line() as u32, m.col() as u32 + 1)).collect()
}

/// Where the key `key` is written in the mapping at `parent`: once, or more than once when the
/// mapping repeats it.
pub fn key_positions(doc: &str, parent: &[PathSeg], key: &str) -> Vec<(u32, u32)> {
    let mut locator = Locator::new(parent);
    locator.child_key = Some(key);
    walk(doc, &mut locator, |_| false);
    locator.children.into_iter().map(|(_, m)| (m.line() as u32, m.col() as u32 + 1)).collect()
}

/// Feeds the events of `doc`'s first document to `locator` until `done` says so.
fn walk(doc: &str, locator: &mut Locator, done: impl Fn(&Locator) -> bool) {
    let mut parser = Parser::new_from_str(doc);
    // Pull events one by one rather than with `Parser::load`, which recurses once per nesting
    // level and overflows the stack on a deeply nested document. Stop at the end of the
    // document or a syntax error (one after what was looked for does not matter).
    while !done(locator) {
        match parser.next_token() {
            Ok((Event::StreamEnd | Event::DocumentEnd, _)) | Err(_) => break,
            Ok((ev, mark)) => locator.on_event(ev, mark),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "kind: User\nname: alice\nroles:\n  - ap-clerk\n  - role: finance-admin\n    expires: 2027-01-01\nmanager: bob\n";

    #[test]
    fn finds_values() {
        assert_eq!(locate(DOC, &["name".into()]), Some((2, 7)));
        assert_eq!(locate(DOC, &["roles".into(), 0.into()]), Some((4, 5)));
        assert_eq!(locate(DOC, &["roles".into(), 1.into(), "expires".into()]), Some((6, 14)));
        assert_eq!(locate(DOC, &["manager".into()]), Some((7, 10)));
        assert_eq!(locate(DOC, &["missing".into()]), None);
        assert_eq!(locate(DOC, &[]), Some((1, 1)));
    }

    #[test]
    fn finds_values_in_flow_style() {
        let doc = "kind: Role\nbindings: {directory: {group: admins}}\n";
        assert_eq!(locate(doc, &["bindings".into(), "directory".into(), "group".into()]), Some((2, 31)));
    }

    /// Regression: `locate` used `Parser::load`, which recursed once per nesting level, so a
    /// diagnostic on a document with 10,000 nested block sequences overflowed the stack.
    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let doc = format!("kind: Usr\nroles:\n{}x\nname: alice\n", "- ".repeat(10_000));
        assert_eq!(locate(&doc, &["kind".into()]), Some((1, 7)));
        assert_eq!(locate(&doc, &["name".into()]), Some((4, 7)));
        let flow = format!("kind: Usr\nroles: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert_eq!(locate(&flow, &["roles".into(), 0.into()]), Some((2, 9)));
        // Deeper flow nesting is a scan error; the caller falls back to the enclosing value.
        let flow = format!("kind: Usr\nroles: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(locate(&flow, &["roles".into(), 0.into()]), None);
    }

    #[test]
    fn finds_children_by_value() {
        let doc = "kind: User\nname: Bob\ndisplayName: Bob\ncredentials:\n  - name: x\n    lifetime: 90 days\n";
        assert_eq!(
            children_with_value(doc, &["credentials".into(), 0.into()], "90 days"),
            vec![(PathSeg::Key("lifetime".into()), 6, 15)]
        );
        assert_eq!(children_with_value(doc, &[], "Bob").len(), 2);
        assert_eq!(children_with_value("targets: [a, B]\n", &["targets".into()], "B"), vec![(1.into(), 1, 14)]);
        assert!(children_with_value(doc, &[], "90 days").is_empty());
    }

    #[test]
    fn finds_repeated_keys() {
        let doc = "kind: User\nname: a\nroles:\n  - role: x\n    role: y\nname: b\n";
        assert_eq!(key_positions(doc, &[], "name"), vec![(2, 1), (6, 1)]);
        assert_eq!(key_positions(doc, &["roles".into(), 0.into()], "role"), vec![(4, 5), (5, 5)]);
    }

    #[test]
    fn renders_paths() {
        let p = ["roles".into(), 2.into(), "expires".into()];
        assert_eq!(DisplayPath(&p).to_string(), "roles[2].expires");
    }
}
