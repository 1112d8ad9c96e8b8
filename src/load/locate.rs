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
}

impl Locator<'_> {
    /// The path of the node that starts now, given the frames above it.
    fn current_matches(&self) -> bool {
        if self.stack.len() != self.target.len() {
            return false;
        }
        self.stack.iter().zip(self.target).all(|(frame, seg)| match (frame, seg) {
            (Frame::Map { key: Some(k), .. }, PathSeg::Key(want)) => k == want,
            (Frame::Seq { index }, PathSeg::Index(want)) => index == want,
            _ => false,
        })
    }

    /// Called when a node (scalar, alias, or the start of a collection) begins.
    fn node_start(&mut self, mark: Marker, scalar: Option<&str>) -> bool {
        if let Some(Frame::Map { expecting_key: true, .. }) = self.stack.last() {
            // This node is a key.
            if let Some(Frame::Map { expecting_key, key }) = self.stack.last_mut() {
                *key = scalar.map(str::to_string);
                *expecting_key = false;
            }
            return false;
        }
        if self.found.is_none() && self.current_matches() {
            self.found = Some(mark);
        }
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
    let mut locator = Locator { target: path, stack: Vec::new(), found: None };
    let mut parser = Parser::new_from_str(doc);
    // A syntax error after the value was found does not matter.
    let _ = parser.load(&mut locator, false);
    locator.found.map(|m| (m.line() as u32, m.col() as u32 + 1))
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

    #[test]
    fn renders_paths() {
        let p = ["roles".into(), 2.into(), "expires".into()];
        assert_eq!(DisplayPath(&p).to_string(), "roles[2].expires");
    }
}
