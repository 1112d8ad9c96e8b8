//! Plain words for the errors serde_yaml and libyaml report: a clearer message where theirs is
//! jargon, and a `help` that says what to do.
//!
//! Everything here is a pure function of an error's text, so each rewording is unit-tested.

use crate::load::PathSeg;

/// A YAML syntax error in plain words.
pub(super) struct Syntax {
    pub message: String,
    pub help: String,
    /// Where the construct the parser was reading began (1-based line and column within the
    /// document), when that is the better place to show than where the parser gave up.
    pub at: Option<(u32, u32)>,
}

/// `full` is serde_yaml's message with its marks; `message` is the same without them;
/// `at_end` says the parser gave up at the end of the document.
pub(super) fn syntax(full: &str, message: &str, at_end: bool) -> Syntax {
    // libyaml adds where the construct it was reading began: "..., while parsing a flow
    // sequence at line 4 column 8".
    let context = full.rfind(", while ").and_then(|i| {
        let rest = &full[i..];
        rest.find(" at line ").and_then(|j| line_column(&rest[j + " at line ".len()..]))
    });
    if message.contains("while scanning a quoted scalar") {
        // Reported at the end of the file; the quote that was never closed is the useful place.
        return Syntax {
            message: "this quoted value has no closing quote".into(),
            help: "end the value with the same quote it starts with (\" or ')".into(),
            at: context,
        };
    }
    let help = if message.starts_with("mapping values are not allowed") {
        "line this key up with the keys around it; if a value holds a colon and a space, put the value in quotes"
    } else if message.contains("did not find expected key") {
        "a line here is indented differently from the keys around it; start sibling keys in the same column"
    } else if message.contains("did not find expected '-' indicator") {
        "the items of a list must line up; start every `- ` in the same column"
    } else if message.contains("block sequence entries are not allowed") {
        "a `- ` list item cannot follow a value on the same line; put the list on the lines below its key"
    } else if message.contains("tab character") {
        "indent with spaces: YAML does not allow tabs in indentation"
    } else if message.contains("cannot start any plain scalar") || message.contains("cannot start any token") {
        "quote the value: a value that starts with @, `, % or another reserved character must be in quotes"
    } else if message.contains("did not find expected ',' or") {
        "close the list `[...]` or mapping `{...}` and separate its items with commas"
    } else if message.contains("unknown anchor") || message.contains("undefined alias") {
        "define the anchor (`&name`) before the alias that uses it (`*name`)"
    } else {
        "check indentation and quoting on that line"
    };
    Syntax { message: message.to_string(), help: help.to_string(), at: if at_end { context } else { None } }
}

/// serde_yaml's limits on nesting and alias expansion, in plain words.
pub(super) fn too_complex(message: &str) -> (String, String) {
    if message.contains("repetition limit") {
        (
            "document expands its aliases too many times (an alias bomb?)".into(),
            "keyward stops when `*alias` references would make a document more than 100 times larger; \
             write the values out instead of aliasing them"
                .into(),
        )
    } else {
        (
            "document is nested too deeply (more than 128 levels of lists and mappings)".into(),
            "a keyward resource needs only a few levels; look for an unclosed `[` or `{`".into(),
        )
    }
}

/// What to write instead of a value of the wrong type, from serde's "expected ...".
pub(super) fn type_help(message: &str) -> String {
    let expected = message.split_once(", expected ").map(|(_, e)| e).unwrap_or("");
    let help = if expected.starts_with("a boolean") {
        "write `true` or `false`, without quotes"
    } else if expected.starts_with("a sequence") {
        "write a list: `[a, b]`, or one `- item` per line below the key"
    } else if expected.starts_with("a string") {
        "write a single value here, not a list or a mapping"
    } else if expected.starts_with("struct") || expected.starts_with("a map") {
        "write a mapping of `key: value` entries here"
    } else if expected.starts_with("u") || expected.starts_with("i") || expected.contains("integer") {
        "write a whole number, without quotes"
    } else if expected.starts_with("a kind") {
        "write one kind, such as `kind: User`"
    } else if expected.starts_with("a role name") {
        "write a role name, or a mapping such as `{role: ap-clerk, expires: 2027-03-31}`"
    } else {
        "see the kind's schema in schemas/ for what this field takes"
    };
    help.to_string()
}

/// A hint for a value that has the right type but is not valid: names, dates, durations.
pub(super) fn value_help(message: &str) -> Option<String> {
    let value = quoted_value(message);
    if message.starts_with("invalid name") || message.starts_with("invalid role name") {
        return Some(name_help(value.as_deref().unwrap_or("")));
    }
    if message.contains("is not a real calendar date") {
        return Some(date_help(value.as_deref().unwrap_or("")));
    }
    if message.contains("is not a date") {
        return Some("write dates as YYYY-MM-DD, for example 2027-03-31".into());
    }
    if message.contains("is not a duration") {
        return Some("units: s (seconds), m (minutes), h (hours), d (days), w (weeks); for example 12h or 90d".into());
    }
    None
}

fn name_help(value: &str) -> String {
    const RULE: &str =
        "names use only lowercase letters a-z, digits, '.', '_' and '-', and start with a letter or digit";
    if let Some(c) = value.chars().find(|c| !c.is_ascii()) {
        let what = match c as u32 {
            0x0370..=0x03FF => ", a Greek letter that looks like a Latin one",
            0x0400..=0x052F => ", a Cyrillic letter that looks like a Latin one",
            0xFF01..=0xFF5E => ", a full-width character",
            _ => "",
        };
        return format!("{c:?} is U+{:04X}{what}; retype the name: {RULE}", c as u32);
    }
    if value.is_empty() {
        return format!("give it a name: {RULE}");
    }
    if value.len() > crate::model::MAX_NAME_LEN {
        return format!("shorten it to at most {} characters", crate::model::MAX_NAME_LEN);
    }
    let mut slug = String::new();
    for c in value.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_') { c } else { '-' };
        if !(c == '-' && (slug.is_empty() || slug.ends_with('-'))) {
            slug.push(c);
        }
    }
    let slug = slug.trim_start_matches(['.', '_']).trim_end_matches('-');
    if slug.is_empty() || slug == value { RULE.to_string() } else { format!("{RULE}; for example `{slug}`") }
}

fn date_help(value: &str) -> String {
    let parts: Vec<u32> = value.split('-').filter_map(|p| p.parse().ok()).collect();
    if let [year, month, _] = parts[..] {
        if !(1..=12).contains(&month) {
            return "months run from 01 to 12; write dates as YYYY-MM-DD".into();
        }
        let next = if month == 12 { (year as i32 + 1, 1) } else { (year as i32, month + 1) };
        if let Some(last) = chrono::NaiveDate::from_ymd_opt(next.0, next.1, 1).and_then(|d| d.pred_opt()) {
            return format!(
                "{year:04}-{month:02} has {} days; write a date that exists, for example {}",
                chrono::Datelike::day(&last),
                last.format("%Y-%m-%d")
            );
        }
    }
    "write a date that exists, as YYYY-MM-DD".into()
}

/// The first double-quoted string in a message, unescaped: our value checks quote the bad value
/// with `{:?}`.
pub(super) fn quoted_value(message: &str) -> Option<String> {
    let start = message.find('"')? + 1;
    let mut out = String::new();
    let mut chars = message[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                'u' => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Parses a path as serde_yaml writes it (`credentials[0].lifetime`); empty for the document.
pub(super) fn parse_path(path: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
            out.push(PathSeg::Key(key.to_string()));
        }
        for index in pieces {
            match index.trim_end_matches(']').parse() {
                Ok(i) => out.push(PathSeg::Index(i)),
                Err(_) => return Vec::new(),
            }
        }
    }
    out
}

/// `line N column M` at the start of `s`.
fn line_column(s: &str) -> Option<(u32, u32)> {
    let (line, rest) = s.split_once(" column ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, column.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclosed_quotes_point_at_the_quote() {
        let full =
            "found unexpected end of stream at line 5 column 1, while scanning a quoted scalar at line 3 column 11";
        let s = syntax(full, "found unexpected end of stream, while scanning a quoted scalar", true);
        assert_eq!(s.at, Some((3, 11)));
        assert!(s.message.contains("no closing quote"));
    }

    #[test]
    fn errors_at_the_end_point_at_what_was_left_open() {
        let full =
            "did not find expected ',' or ']' at line 5 column 1, while parsing a flow sequence at line 4 column 8";
        let message = "did not find expected ',' or ']', while parsing a flow sequence";
        assert_eq!(syntax(full, message, true).at, Some((4, 8)));
        assert_eq!(syntax(full, message, false).at, None);
    }

    #[test]
    fn names_get_an_example() {
        assert!(name_help("alice smith").ends_with("for example `alice-smith`"));
        assert!(name_help("Bob").ends_with("for example `bob`"));
        assert!(name_help("\u{430}lice").starts_with("'\u{430}' is U+0430, a Cyrillic letter"));
    }

    #[test]
    fn dates_get_the_last_day_of_the_month() {
        assert_eq!(date_help("2027-02-30"), "2027-02 has 28 days; write a date that exists, for example 2027-02-28");
        assert_eq!(date_help("2028-02-30"), "2028-02 has 29 days; write a date that exists, for example 2028-02-29");
        assert!(date_help("2027-13-01").starts_with("months run from 01 to 12"));
    }

    #[test]
    fn quoted_values_and_paths() {
        assert_eq!(quoted_value("invalid name \"a\\\"b\": x").as_deref(), Some("a\"b"));
        assert_eq!(quoted_value("\"\\u{430}lice\" x").as_deref(), Some("\u{430}lice"));
        assert_eq!(quoted_value("no quotes"), None);
        assert_eq!(parse_path("credentials[0].lifetime"), vec!["credentials".into(), 0.into(), "lifetime".into()]);
        assert!(parse_path("").is_empty());
    }
}
