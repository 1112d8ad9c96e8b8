//! Adding and removing one role assignment in a User's or ServiceAccount's YAML, as a person
//! would: only the lines of that assignment change (and, for a removal, the comment written
//! just above it); everything else stays as written, comments and all.
//!
//! Guarantees: an edit is checked before it is returned: the document, read again, must hold
//! exactly the assignments it held with that one removed or added, and nothing else of the
//! document may differ. An edit that cannot be made that way is refused with
//! [`EditError::Unsupported`], for a person to make by hand; never half made.

use std::ops::Range;

use crate::model::{RoleGrant, RoleGrantDetail};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the document holds no assignment of role `{0}`")]
    NotFound(String),
    #[error("cannot edit the assignments here by machine ({0}); make the change by hand")]
    Unsupported(String),
}

/// The top-level `roles:` of a document: the byte range of its whole block (key line to the
/// last line of its value), and how its value is written.
struct RolesBlock {
    /// From the start of the `roles:` line to the end of its value's last line (after `\n`).
    range: Range<usize>,
    /// The offset of the value's first byte after `roles:`.
    value_start: usize,
    style: Style,
}

enum Style {
    /// `roles: [a, {role: b}]`, on the key's line (possibly running over more lines).
    Flow,
    /// `roles:` then `- ...` items at `indent` spaces.
    Block { indent: usize, items: Vec<Range<usize>> },
    /// `roles:` with nothing after it (null).
    Empty,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Lines of `text` with their start offsets, each including its `\n`.
fn lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut at = 0;
    for l in text.split_inclusive('\n') {
        out.push((at, l));
        at += l.len();
    }
    out
}

fn find_roles(doc: &str) -> Result<Option<RolesBlock>, EditError> {
    let ls = lines(doc);
    let Some(k) = ls.iter().position(|(_, l)| l.starts_with("roles:")) else { return Ok(None) };
    let (key_at, key_line) = ls[k];
    let after = key_line["roles:".len()..].trim_end_matches(['\n', '\r']);
    let value = strip_comment(after).trim();
    let value_start = key_at + "roles:".len();
    if value.starts_with('[') {
        // A flow sequence: find its closing bracket, across lines.
        let end = flow_end(doc, key_at + key_line.find('[').expect("seen"))
            .ok_or_else(|| EditError::Unsupported("the `roles` list has no closing `]`".into()))?;
        let line_end = doc[end..].find('\n').map_or(doc.len(), |i| end + i + 1);
        return Ok(Some(RolesBlock { range: key_at..line_end, value_start, style: Style::Flow }));
    }
    if !value.is_empty() {
        return Err(EditError::Unsupported(format!("`roles:` is written as `{value}`")));
    }
    // A block sequence below the key (or nothing).
    let mut items: Vec<Range<usize>> = Vec::new();
    let mut indent = None;
    let mut end = key_at + key_line.len();
    for &(at, l) in &ls[k + 1..] {
        if is_blank_or_comment(l) {
            continue;
        }
        let ind = indent_of(l);
        let rest = &l[ind..];
        let item_start = rest.starts_with("- ") || rest.trim_end() == "-";
        match indent {
            None if item_start => indent = Some(ind),
            None => break,
            Some(i) if ind == i && item_start => {}
            Some(i) if ind > i => {
                end = at + l.len();
                if let Some(last) = items.last_mut() {
                    last.end = end;
                }
                continue;
            }
            Some(_) => break,
        }
        items.push(at..at + l.len());
        end = at + l.len();
    }
    let style = match indent {
        Some(indent) => Style::Block { indent, items },
        None => Style::Empty,
    };
    Ok(Some(RolesBlock { range: key_at..end, value_start, style }))
}

/// `s` without a trailing ` # comment` (outside quotes).
fn strip_comment(s: &str) -> &str {
    let mut quote = None;
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, b'"' | b'\'') => quote = Some(c),
            (None, b'#') if i == 0 || b[i - 1] == b' ' => return &s[..i],
            _ => {}
        }
    }
    s
}

/// The offset just past the `]` closing the flow sequence opening at `open`.
fn flow_end(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let b = text.as_bytes();
    let mut i = open;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(b'"') if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b'#' if i > 0 && b[i - 1].is_ascii_whitespace() => {
                    // A comment runs to the end of the line.
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// The items of the flow sequence `[ ... ]` at `range` of `text`, as byte ranges of each
/// item's text (trimmed).
fn flow_items(text: &str, range: Range<usize>) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let (mut items, mut depth, mut quote, mut start) = (Vec::new(), 0usize, None::<u8>, range.start + 1);
    let mut i = range.start;
    let push = |items: &mut Vec<Range<usize>>, s: usize, e: usize| {
        let raw = &text[s..e];
        let lead = raw.len() - raw.trim_start().len();
        let trail = raw.len() - raw.trim_end().len();
        if raw.trim().is_empty() {
            return;
        }
        items.push(s + lead..e - trail);
    };
    while i < range.end {
        let c = b[i];
        match quote {
            Some(b'"') if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        push(&mut items, start, i);
                    }
                }
                b',' if depth == 1 => {
                    push(&mut items, start, i);
                    start = i + 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    items
}

/// The role an item of the list grants, read as YAML.
fn item_role(item: &str) -> Option<String> {
    // A block item keeps its columns: its `-` becomes a space, so the lines below line up.
    let item = match item.find(|c: char| c != ' ') {
        Some(i) if item[i..].starts_with('-') => format!("{} {}", &item[..i], &item[i + 1..]),
        _ => item.to_string(),
    };
    serde_yaml::from_str::<RoleGrant>(&item).ok().map(|g| g.role().to_string())
}

/// The grants a document holds, and the document read as YAML without them.
fn parse(doc: &str) -> Result<(Vec<RoleGrant>, serde_yaml::Value), EditError> {
    let bad = |e: serde_yaml::Error| EditError::Unsupported(format!("the document does not read back: {e}"));
    let mut value: serde_yaml::Value = serde_yaml::from_str(doc).map_err(bad)?;
    let roles = match value.as_mapping_mut().and_then(|m| m.remove("roles")) {
        Some(serde_yaml::Value::Null) | None => Vec::new(),
        Some(v) => serde_yaml::from_value(v).map_err(bad)?,
    };
    Ok((roles, value))
}

/// Checks an edited document against the original: the same document, grants as `expected`.
fn check(before: &str, after: &str, expected: &[RoleGrant]) -> Result<(), EditError> {
    let (_, rest_before) = parse(before)?;
    let (roles, rest_after) = parse(after)?;
    if roles != expected || rest_before != rest_after {
        return Err(EditError::Unsupported("the edited document did not read back as intended".into()));
    }
    Ok(())
}

/// Removes the assignment of `role` from the document at `span` of `text`; returns the new text.
pub fn remove_grant(text: &str, span: Range<usize>, role: &str) -> Result<String, EditError> {
    let doc = &text[span.clone()];
    let (before, _) = parse(doc)?;
    if !before.iter().any(|g| g.role().as_str() == role) {
        return Err(EditError::NotFound(role.to_string()));
    }
    let expected: Vec<RoleGrant> = before.iter().filter(|g| g.role().as_str() != role).cloned().collect();
    let block = find_roles(doc)?.ok_or_else(|| EditError::NotFound(role.to_string()))?;
    let edited = match &block.style {
        Style::Empty => return Err(EditError::NotFound(role.to_string())),
        Style::Flow => {
            let open = block.value_start + doc[block.value_start..].find('[').expect("flow");
            let close = flow_end(doc, open).expect("found before");
            let items = flow_items(doc, open..close);
            let kept: Vec<&str> =
                items.iter().map(|r| &doc[r.clone()]).filter(|t| item_role(t).as_deref() != Some(role)).collect();
            if kept.len() + 1 != items.len() {
                return Err(EditError::Unsupported(format!("role `{role}` is listed in a way keyward cannot read")));
            }
            let multi_line = doc[open..close].contains('\n');
            if multi_line {
                return Err(EditError::Unsupported("the `roles` list runs over several lines".into()));
            }
            format!("{}[{}]{}", &doc[..open], kept.join(", "), &doc[close..])
        }
        Style::Block { items, .. } => {
            let pos =
                items.iter().position(|r| item_role(&doc[r.clone()]).as_deref() == Some(role)).ok_or_else(|| {
                    EditError::Unsupported(format!("role `{role}` is listed in a way keyward cannot read"))
                })?;
            let item = items[pos].clone();
            // The comment lines right above the item go with it.
            let mut start = item.start;
            let ls = lines(&doc[..item.start]);
            for &(at, l) in ls.iter().rev() {
                if l.trim().starts_with('#') && at >= block.range.start && indent_of(l) >= indent_of(&doc[item.clone()])
                {
                    start = at;
                } else {
                    break;
                }
            }
            if items.len() == 1 {
                // The list becomes empty: `roles: []`.
                let key_end = block.value_start;
                let line_end = doc[key_end..].find('\n').map_or(doc.len(), |i| key_end + i);
                format!("{} []{}{}", &doc[..key_end], &doc[line_end..start], &doc[item.end..])
            } else {
                format!("{}{}", &doc[..start], &doc[item.end..])
            }
        }
    };
    check(doc, &edited, &expected)?;
    Ok(format!("{}{}{}", &text[..span.start], edited, &text[span.end..]))
}

/// A YAML scalar for `s`: plain when it cannot be misread, else double-quoted (JSON's string
/// syntax is YAML's double-quoted one).
fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
        && !s.starts_with(['-', '.', ':'])
        && !s.ends_with(':')
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "~"
        );
    if plain { s.to_string() } else { serde_json::to_string(s).expect("strings serialize") }
}

/// Adds `grant` to the document at `span` of `text`, replacing an assignment of the same role;
/// returns the new text.
pub fn set_grant(text: &str, span: Range<usize>, grant: &RoleGrantDetail) -> Result<String, EditError> {
    let doc = &text[span.clone()];
    let role = grant.role.as_str();
    // Replace: remove the old one first, then add.
    let (doc_owned, replaced_text);
    let (doc, base_text) = match remove_grant(text, span.clone(), role) {
        Ok(t) => {
            replaced_text = t;
            let new_end = span.end + replaced_text.len() - text.len();
            doc_owned = replaced_text[span.start..new_end].to_string();
            (doc_owned.as_str(), replaced_text.as_str())
        }
        Err(EditError::NotFound(_)) => (doc, text),
        Err(e) => return Err(e),
    };
    let (before, _) = parse(doc)?;
    let mut expected = before.clone();
    expected.push(RoleGrant::Detailed(grant.clone()));
    let mut fields = vec![("role", grant.role.to_string())];
    if let Some(e) = grant.expires {
        fields.push(("expires", e.to_string()));
    }
    if let Some(r) = &grant.reason {
        fields.push(("reason", r.clone()));
    }
    if let Some(t) = &grant.ticket {
        fields.push(("ticket", t.clone()));
    }
    let edited = match find_roles(doc)? {
        Some(RolesBlock { style: Style::Block { indent, items }, .. }) => {
            let last = items.last().expect("a block has items").clone();
            let pad = " ".repeat(indent);
            let mut item = String::new();
            for (i, (k, v)) in fields.iter().enumerate() {
                let lead = if i == 0 { format!("{pad}- ") } else { format!("{pad}  ") };
                item.push_str(&format!("{lead}{k}: {}\n", scalar(v)));
            }
            let sep = if doc[..last.end].ends_with('\n') { "" } else { "\n" };
            format!("{}{sep}{item}{}", &doc[..last.end], &doc[last.end..])
        }
        Some(RolesBlock { style: Style::Flow, value_start, .. }) => {
            let open = value_start + doc[value_start..].find('[').expect("flow");
            let close = flow_end(doc, open).expect("found before");
            if doc[open..close].contains('\n') {
                return Err(EditError::Unsupported("the `roles` list runs over several lines".into()));
            }
            let map: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {}", scalar(v))).collect();
            let items = flow_items(doc, open..close);
            let sep = if items.is_empty() { "" } else { ", " };
            format!("{}{sep}{{{}}}{}", &doc[..close - 1], map.join(", "), &doc[close - 1..])
        }
        Some(RolesBlock { style: Style::Empty, range, .. }) => {
            let mut item = String::from("roles:\n");
            for (i, (k, v)) in fields.iter().enumerate() {
                let lead = if i == 0 { "  - " } else { "    " };
                item.push_str(&format!("{lead}{k}: {}\n", scalar(v)));
            }
            format!("{}{item}{}", &doc[..range.start], &doc[range.end..])
        }
        None => {
            let mut out = doc.to_string();
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("roles:\n");
            for (i, (k, v)) in fields.iter().enumerate() {
                let lead = if i == 0 { "  - " } else { "    " };
                out.push_str(&format!("{lead}{k}: {}\n", scalar(v)));
            }
            out
        }
    };
    check(doc, &edited, &expected)?;
    let doc_end = span.start + doc.len();
    Ok(format!("{}{}{}", &base_text[..span.start], edited, &base_text[doc_end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Expiry, Name};

    fn remove(doc: &str, role: &str) -> Result<String, EditError> {
        remove_grant(doc, 0..doc.len(), role)
    }

    const BLOCK: &str = "kind: User\nname: nancy\nuserName: n@x\nroles:\n  - gl-accountant\n  # Covered by the SoD exception.\n  - role: finance-admin\n    expires: 2027-06-30\n    reason: Month-end close # until the new hire\n  - ap-clerk\nstatus: active\n";

    #[test]
    fn removes_a_block_item_with_its_comment() {
        let out = remove(BLOCK, "finance-admin").unwrap();
        assert_eq!(
            out,
            "kind: User\nname: nancy\nuserName: n@x\nroles:\n  - gl-accountant\n  - ap-clerk\nstatus: active\n"
        );
        let out = remove(BLOCK, "ap-clerk").unwrap();
        assert!(out.ends_with("    reason: Month-end close # until the new hire\nstatus: active\n"), "{out}");
        assert_eq!(remove(BLOCK, "buyer"), Err(EditError::NotFound("buyer".into())));
    }

    #[test]
    fn removing_the_last_item_leaves_an_empty_list() {
        let doc = "kind: User\nname: a\nuserName: a@x\nroles:\n- role: it-admin\n  expires: 2027-01-01\n# trailing\n";
        assert_eq!(remove(doc, "it-admin").unwrap(), "kind: User\nname: a\nuserName: a@x\nroles: []\n# trailing\n");
    }

    #[test]
    fn removes_from_flow_lists() {
        let doc = "kind: User\nname: a\nuserName: a@x\nroles: [buyer, {role: purchasing-manager, expires: 2027-01-01}, ap-clerk]  # all three\n";
        assert_eq!(
            remove(doc, "purchasing-manager").unwrap(),
            "kind: User\nname: a\nuserName: a@x\nroles: [buyer, ap-clerk]  # all three\n"
        );
        let one = "kind: User\nname: a\nuserName: a@x\nroles: [buyer]\n";
        assert_eq!(remove(one, "buyer").unwrap(), "kind: User\nname: a\nuserName: a@x\nroles: []\n");
    }

    #[test]
    fn edits_only_the_document_given() {
        let text = format!("{BLOCK}---\n{BLOCK}");
        let second = BLOCK.len() + 4..text.len();
        let out = remove_grant(&text, second, "gl-accountant").unwrap();
        assert!(out.starts_with(BLOCK), "{out}");
        assert_eq!(out.matches("gl-accountant").count(), 1);
    }

    fn grant(role: &str, expires: &str, reason: &str) -> RoleGrantDetail {
        RoleGrantDetail {
            expires: Some(Expiry::parse(expires).unwrap()),
            reason: Some(reason.into()),
            ..RoleGrantDetail::new(Name::new(role).unwrap())
        }
    }

    #[test]
    fn adds_to_block_and_flow_lists_and_to_documents_without_roles() {
        let g = grant("it-admin", "2027-01-01T14:00:00Z", "Incident 42: restore the mail relay");
        let out = set_grant(BLOCK, 0..BLOCK.len(), &g).unwrap();
        assert!(
            out.contains("  - ap-clerk\n  - role: it-admin\n    expires: 2027-01-01T14:00:00Z\n    reason: \"Incident 42: restore the mail relay\"\nstatus: active\n"),
            "{out}"
        );
        let flow = "kind: User\nname: a\nuserName: a@x\nroles: [buyer]\n";
        let out = set_grant(flow, 0..flow.len(), &g).unwrap();
        assert_eq!(
            out,
            "kind: User\nname: a\nuserName: a@x\nroles: [buyer, {role: it-admin, expires: 2027-01-01T14:00:00Z, reason: \"Incident 42: restore the mail relay\"}]\n"
        );
        let none = "kind: User\nname: a\nuserName: a@x";
        let out = set_grant(none, 0..none.len(), &grant("it-admin", "2027-01-01", "yes")).unwrap();
        assert_eq!(
            out,
            "kind: User\nname: a\nuserName: a@x\nroles:\n  - role: it-admin\n    expires: 2027-01-01\n    reason: \"yes\"\n"
        );
    }

    #[test]
    fn setting_a_held_role_replaces_its_assignment() {
        let g = grant("finance-admin", "2027-01-01T18:00:00Z", "Close");
        let out = set_grant(BLOCK, 0..BLOCK.len(), &g).unwrap();
        assert_eq!(out.matches("finance-admin").count(), 1, "{out}");
        assert!(!out.contains("2027-06-30"), "{out}");
        assert!(
            out.contains("  - role: finance-admin\n    expires: 2027-01-01T18:00:00Z\n    reason: Close\nstatus"),
            "{out}"
        );
    }

    #[test]
    fn hostile_reasons_stay_one_value() {
        let g = grant("it-admin", "2027-01-01", "x\n  - global-admin\nstatus: disabled # ");
        let out = set_grant(BLOCK, 0..BLOCK.len(), &g).unwrap();
        let (roles, _) = parse(&out).unwrap();
        assert_eq!(roles.len(), 4);
        assert!(out.contains("status: active\n"));
    }

    #[test]
    fn what_cannot_be_edited_safely_is_refused() {
        let anchored = "kind: User\nname: a\nuserName: a@x\nroles: &r [buyer]\n";
        assert!(matches!(remove(anchored, "buyer"), Err(EditError::Unsupported(_))));
        let multi = "kind: User\nname: a\nuserName: a@x\nroles: [buyer,\n  ap-clerk]\n";
        assert!(matches!(remove(multi, "buyer"), Err(EditError::Unsupported(_))));
    }
}
