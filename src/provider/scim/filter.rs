//! SCIM filter literals (RFC 7644 §3.4.2.2): every value keyward places in a filter or a PATCH
//! path goes through [`string`], so a userName or an id can never change the filter's meaning.
//!
//! The RFC defines string literals by JSON's rules (RFC 7159 §7): a double-quoted string in
//! which `"` and `\` must be escaped, and control characters must be written `\uXXXX`.
//! scim2-server parses them that way (observed: `userName eq "we\"ird\\name"` finds the user
//! `we"ird\name`).

/// A filter string literal: `value` in double quotes, escaped by JSON's rules.
pub fn string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `attr eq "value"`.
pub fn eq(attr: &str, value: &str) -> String {
    format!("{attr} eq {}", string(value))
}

/// `attr eq "a" or attr eq "b" ...`; `None` for no values.
pub fn any_eq<'a>(attr: &str, values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let parts: Vec<String> = values.into_iter().map(|v| eq(attr, v)).collect();
    (!parts.is_empty()).then(|| parts.join(" or "))
}

/// The PATCH path of one member of a group: `members[value eq "ID"]`.
pub fn member_path(id: &str) -> String {
    format!("members[{}]", eq("value", id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_quoted() {
        assert_eq!(eq("userName", "bjensen@example.com"), r#"userName eq "bjensen@example.com""#);
        assert_eq!(member_path("2819c223"), r#"members[value eq "2819c223"]"#);
    }

    #[test]
    fn hostile_values_stay_literals() {
        // A value trying to close the literal and add a clause.
        let evil = r#"x" or userName pr or userName eq "y"#;
        assert_eq!(eq("userName", evil), r#"userName eq "x\" or userName pr or userName eq \"y""#);
        // Backslashes, including one right before the closing quote.
        assert_eq!(string(r"a\b\"), r#""a\\b\\""#);
        assert_eq!(string(r#"\""#), r#""\\\"""#);
        // Brackets and parentheses need no escape inside a literal.
        assert_eq!(member_path(r#"1"] or [value pr"#), r#"members[value eq "1\"] or [value pr"]"#);
        // Control characters become JSON escapes; other characters pass through.
        assert_eq!(string("a\nb\u{1}c\u{7f}"), r#""a\nb\u0001c\u007f""#);
        assert_eq!(string("Zoë O'Malley"), r#""Zoë O'Malley""#);
    }

    #[test]
    fn escaped_literals_are_json_strings() {
        // The RFC's literal grammar is JSON's: every escaped value must round-trip through a
        // JSON parser to itself.
        for v in [r#"x" or "1"="1"#, r"\\\", "\"\"", "tab\there", "nul\u{0}", "ünïcødé ✓", ""] {
            let lit = string(v);
            let back: String = serde_json::from_str(&lit).unwrap();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn or_lists() {
        assert_eq!(any_eq("userName", []), None);
        assert_eq!(any_eq("userName", ["a", "b\""]).unwrap(), r#"userName eq "a" or userName eq "b\"""#);
    }
}
