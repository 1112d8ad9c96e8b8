//! Distinguished names (RFC 4514) and filter values (RFC 4515).
//!
//! Guarantees:
//! - [`filter_value`] escapes every character RFC 4515 §3 forbids unescaped in an assertion
//!   value (`*`, `(`, `)`, `\` and NUL); everything else, UTF-8 included, passes as it is, as
//!   the RFC allows;
//! - [`rdn_value`] escapes an attribute value for an RDN per RFC 4514 §2.4: `"`, `+`, `,`, `;`,
//!   `<`, `=`, `>`, `\` and NUL always, a leading `#` or space and a trailing space;
//! - [`Dn::parse`] reads any RFC 4514 string (and, leniently, spaces around separators as
//!   older servers write them), so [`Dn::parse`] of an escaped value gives the value back;
//! - [`normalize`] gives two DNs that a directory treats as the same entry (differing only in
//!   the case of attribute types or values, in escaping, in the order of a multi-valued RDN or
//!   in insignificant spaces) the same key.
//!
//! Both escaping functions are ldap3's, whose behaviour the tests below pin against the RFCs'
//! edge cases (a leading `#`, leading and trailing spaces, NUL, non-ASCII).

use std::fmt;

/// An assertion value for a search filter, escaped per RFC 4515.
pub fn filter_value(value: &str) -> String {
    ldap3::ldap_escape(value).into_owned()
}

/// An attribute value for an RDN, escaped per RFC 4514.
pub fn rdn_value(value: &str) -> String {
    ldap3::dn_escape(value).into_owned()
}

/// The DN of the entry named `attr=value` directly below `base`.
pub fn child(attr: &str, value: &str, base: &str) -> String {
    if base.trim().is_empty() {
        format!("{attr}={}", rdn_value(value))
    } else {
        format!("{attr}={},{base}", rdn_value(value))
    }
}

/// An equality filter `(attr=value)` with the value escaped.
pub fn eq_filter(attr: &str, value: &str) -> String {
    format!("({attr}={})", filter_value(value))
}

/// One attribute type and value of an RDN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    /// The attribute type as written (a descriptor or an OID).
    pub attr: String,
    /// The value, unescaped. A value written as `#hex` (BER) is kept as that text.
    pub value: String,
    /// Whether the value was written as `#hex`.
    pub ber: bool,
}

/// A parsed distinguished name: its RDNs, the entry's own first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn {
    pub rdns: Vec<Vec<Ava>>,
}

/// Why a string is not a DN: the string, and what is wrong in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{dn}` is not a distinguished name: {problem}")]
pub struct DnError {
    pub dn: String,
    pub problem: DnProblem,
}

/// What is wrong in a DN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnProblem {
    #[error("an attribute type is missing at offset {0}")]
    MissingAttribute(usize),
    #[error("`=` expected after `{0}`")]
    EqualsExpected(String),
    #[error("unexpected `{found}` at offset {offset}")]
    Unexpected { found: char, offset: usize },
    #[error("`{0}` is not a BER value in hex")]
    NotHex(String),
    #[error("an unterminated quoted value")]
    Unterminated,
    #[error("a value that is not UTF-8")]
    NotUtf8,
    #[error("a value ends with a lone `\\`")]
    LoneBackslash,
    #[error("`\\{0}` is not a valid escape")]
    BadEscape(char),
    #[error("an unescaped `{}` in a value", .0.escape_default())]
    Unescaped(char),
}

impl Dn {
    /// Parses an RFC 4514 string. The empty string is the empty DN.
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        let b = s.as_bytes();
        let mut i = 0;
        let mut rdns = Vec::new();
        let err = |problem: DnProblem| DnError { dn: s.to_string(), problem };
        skip_spaces(b, &mut i);
        if i == b.len() {
            return Ok(Dn { rdns });
        }
        loop {
            let mut rdn = Vec::new();
            loop {
                skip_spaces(b, &mut i);
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'.') {
                    i += 1;
                }
                let attr = &s[start..i];
                if attr.is_empty() || !(attr.as_bytes()[0].is_ascii_alphabetic() || attr.as_bytes()[0].is_ascii_digit())
                {
                    return Err(err(DnProblem::MissingAttribute(start)));
                }
                skip_spaces(b, &mut i);
                if i >= b.len() || b[i] != b'=' {
                    return Err(err(DnProblem::EqualsExpected(attr.to_string())));
                }
                i += 1;
                skip_spaces(b, &mut i);
                let ber = b.get(i) == Some(&b'#');
                let value = parse_value(s, &mut i).map_err(err)?;
                rdn.push(Ava { attr: attr.to_string(), value, ber });
                if i < b.len() && b[i] == b'+' {
                    i += 1;
                    continue;
                }
                break;
            }
            rdns.push(rdn);
            if i == b.len() {
                break;
            }
            match b[i] {
                b',' | b';' => i += 1,
                c => return Err(err(DnProblem::Unexpected { found: c as char, offset: i })),
            }
        }
        Ok(Dn { rdns })
    }

    /// The value of `attr` in the entry's own RDN.
    pub fn rdn_value(&self, attr: &str) -> Option<&str> {
        self.rdns.first()?.iter().find(|a| a.attr.eq_ignore_ascii_case(attr)).map(|a| a.value.as_str())
    }

    /// The entry's own RDN as a string, escaped.
    pub fn rdn_string(&self) -> Option<String> {
        self.rdns.first().map(|r| format_rdn(r))
    }

    /// Whether `self` is `base` or below it.
    pub fn is_within(&self, base: &Dn) -> bool {
        if base.rdns.len() > self.rdns.len() {
            return false;
        }
        let tail = &self.rdns[self.rdns.len() - base.rdns.len()..];
        tail.iter().zip(&base.rdns).all(|(a, b)| rdn_key(a) == rdn_key(b))
    }

    /// The comparison key (see [`normalize`]).
    pub fn key(&self) -> String {
        self.rdns.iter().map(|r| rdn_key(r)).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.rdns.iter().map(|r| format_rdn(r)).collect();
        f.write_str(&parts.join(","))
    }
}

fn format_rdn(rdn: &[Ava]) -> String {
    rdn.iter()
        .map(|a| if a.ber { format!("{}={}", a.attr, a.value) } else { format!("{}={}", a.attr, rdn_value(&a.value)) })
        .collect::<Vec<_>>()
        .join("+")
}

fn is_hex_form(v: &str) -> bool {
    v.len() > 1 && v.len() % 2 == 1 && v[1..].bytes().all(|c| c.is_ascii_hexdigit())
}

/// The comparison key of one RDN: types lower-cased, values case-folded with insignificant
/// spaces removed (as caseIgnoreMatch prepares them, RFC 4518), AVAs sorted.
fn rdn_key(rdn: &[Ava]) -> String {
    let mut avas: Vec<String> = rdn
        .iter()
        .map(|a| {
            let folded: String = a.value.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            let value = if a.ber { a.value.clone() } else { rdn_value(&folded) };
            format!("{}={value}", a.attr.to_ascii_lowercase())
        })
        .collect();
    avas.sort();
    avas.join("+")
}

/// A key under which DNs that name the same entry are equal. A string that does not parse
/// keys as its lower-cased self, so it can still be compared with itself.
pub fn normalize(dn: &str) -> String {
    match Dn::parse(dn) {
        Ok(d) => d.key(),
        Err(_) => dn.to_lowercase(),
    }
}

fn skip_spaces(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i] == b' ' {
        *i += 1;
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Reads one attribute value up to an unescaped `,`, `;`, `+` or the end. Unescaped trailing
/// spaces are dropped (RFC 4514 §3: a space before a separator is not part of the value).
fn parse_value(s: &str, i: &mut usize) -> Result<String, DnProblem> {
    let b = s.as_bytes();
    if *i < b.len() && b[*i] == b'#' {
        let start = *i;
        *i += 1;
        while *i < b.len() && b[*i].is_ascii_hexdigit() {
            *i += 1;
        }
        let text = s[start..*i].to_ascii_lowercase();
        if !is_hex_form(&text) {
            return Err(DnProblem::NotHex(text));
        }
        skip_spaces(b, i);
        return Ok(text);
    }
    if *i < b.len() && b[*i] == b'"' {
        // RFC 2253's quoted form, still written by some servers.
        *i += 1;
        let mut out = Vec::new();
        while *i < b.len() && b[*i] != b'"' {
            if b[*i] == b'\\' && *i + 1 < b.len() {
                *i += 1;
            }
            out.push(b[*i]);
            *i += 1;
        }
        if *i >= b.len() {
            return Err(DnProblem::Unterminated);
        }
        *i += 1;
        skip_spaces(b, i);
        return String::from_utf8(out).map_err(|_| DnProblem::NotUtf8);
    }
    let mut out: Vec<u8> = Vec::new();
    // Bytes of `out` up to which the value is certain (escaped or followed by non-space).
    let mut keep = 0;
    while *i < b.len() {
        let c = b[*i];
        match c {
            b',' | b';' | b'+' => break,
            b'\\' => {
                let n = b.get(*i + 1).copied().ok_or(DnProblem::LoneBackslash)?;
                if let (Some(h), Some(l)) = (hex(n), b.get(*i + 2).copied().and_then(hex)) {
                    out.push(h << 4 | l);
                    *i += 3;
                } else if b"\\\"+,;<=># ".contains(&n) {
                    out.push(n);
                    *i += 2;
                } else {
                    return Err(DnProblem::BadEscape(n as char));
                }
                keep = out.len();
            }
            b'"' | b'<' | b'>' | 0 => {
                return Err(DnProblem::Unescaped(c as char));
            }
            _ => {
                out.push(c);
                *i += 1;
                if c != b' ' {
                    keep = out.len();
                }
            }
        }
    }
    out.truncate(keep);
    String::from_utf8(out).map_err(|_| DnProblem::NotUtf8)
}

/// Reverses [`filter_value`]: `\XX` to the byte XX. For tests and diagnostics.
pub fn unescape_filter_value(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let h = hex(*b.get(i + 1)?)?;
                let l = hex(*b.get(i + 2)?)?;
                out.push(h << 4 | l);
                i += 3;
            }
            b'*' | b'(' | b')' | 0 => return None,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOSTILE: &[&str] = &[
        "*)(uid=*",
        "a,b",
        "#x",
        "o\"neil",
        "back\\slash",
        " lead",
        "trail ",
        "  both  ",
        "x+y=z;<w>",
        "nul\0byte",
        "Ünïcødé ø",
        " ",
        "#",
    ];

    #[test]
    fn filter_values_escape_exactly_rfc4515_specials() {
        assert_eq!(filter_value("*)(uid=*"), r"\2a\29\28uid=\2a");
        assert_eq!(filter_value("back\\slash"), r"back\5cslash");
        assert_eq!(filter_value("nul\0"), r"nul\00");
        // Non-ASCII is valid UTF-8 in an assertion value (RFC 4515 UTFMB) and stays as it is.
        assert_eq!(filter_value("Ünïcødé"), "Ünïcødé");
        assert_eq!(filter_value("a,b #x o\"neil"), "a,b #x o\"neil");
        assert_eq!(eq_filter("uid", "*"), r"(uid=\2a)");
    }

    #[test]
    fn rdn_values_escape_rfc4514_specials_and_edges() {
        assert_eq!(rdn_value("a,b"), r"a\2cb");
        assert_eq!(rdn_value("#x"), r"\23x");
        assert_eq!(rdn_value("x#"), "x#");
        assert_eq!(rdn_value("o\"neil"), r"o\22neil");
        assert_eq!(rdn_value("back\\slash"), r"back\5cslash");
        assert_eq!(rdn_value(" lead"), r"\20lead");
        assert_eq!(rdn_value("trail "), r"trail\20");
        assert_eq!(rdn_value(" "), r"\20");
        assert_eq!(rdn_value("a b"), "a b");
        assert_eq!(rdn_value("nul\0"), r"nul\00");
        assert_eq!(rdn_value("x+y=z;<w>"), r"x\2by\3dz\3b\3cw\3e");
        assert_eq!(rdn_value("Ünïcødé"), "Ünïcødé");
        assert_eq!(child("uid", "a,b", "ou=people,dc=x"), r"uid=a\2cb,ou=people,dc=x");
    }

    #[test]
    fn hostile_values_round_trip_through_a_dn() {
        for v in HOSTILE {
            crate::fuzzing::ldap_dn_value(v);
            crate::fuzzing::ldap_filter_value(v);
            let parsed = Dn::parse(&child("UID", v, "dc=x")).unwrap();
            assert_eq!(parsed.rdn_value("uid"), Some(*v), "attribute types match without case");
        }
    }

    #[test]
    fn parsing_reads_the_forms_servers_write() {
        let d = Dn::parse("CN=Smith\\, John+UID=js, OU=People ; DC=Example,DC=com").unwrap();
        assert_eq!(d.rdns.len(), 4);
        assert_eq!(d.rdn_value("cn"), Some("Smith, John"));
        assert_eq!(d.rdn_value("uid"), Some("js"));
        assert_eq!(Dn::parse("cn=\"a,b\",dc=x").unwrap().rdn_value("cn"), Some("a,b"));
        assert_eq!(Dn::parse("cn=#04024869,dc=x").unwrap().rdn_value("cn"), Some("#04024869"));
        assert_eq!(Dn::parse("").unwrap().rdns.len(), 0);
        assert!(Dn::parse("cn").is_err());
        assert!(Dn::parse("=x").is_err());
        assert!(Dn::parse("cn=a\\").is_err());
        assert!(Dn::parse("cn=a\\zz").is_err());
        assert!(Dn::parse("cn=a<b").is_err());
    }

    #[test]
    fn errors_quote_the_dn_and_say_what_is_wrong() {
        let says = |s: &str| Dn::parse(s).unwrap_err().to_string();
        let e = Dn::parse("cn").unwrap_err();
        assert_eq!(e, DnError { dn: "cn".into(), problem: DnProblem::EqualsExpected("cn".into()) });
        assert_eq!(e.to_string(), "`cn` is not a distinguished name: `=` expected after `cn`");
        assert_eq!(says("=x"), "`=x` is not a distinguished name: an attribute type is missing at offset 0");
        assert_eq!(says("cn=a\\"), "`cn=a\\` is not a distinguished name: a value ends with a lone `\\`");
        assert_eq!(says("cn=a\\zz"), "`cn=a\\zz` is not a distinguished name: `\\z` is not a valid escape");
        assert_eq!(says("cn=a<b"), "`cn=a<b` is not a distinguished name: an unescaped `<` in a value");
        assert_eq!(says("cn=\"ab"), "`cn=\"ab` is not a distinguished name: an unterminated quoted value");
        assert_eq!(says("cn=#0"), "`cn=#0` is not a distinguished name: `#0` is not a BER value in hex");
        assert_eq!(says("cn=\"a\"x"), "`cn=\"a\"x` is not a distinguished name: unexpected `x` at offset 6");
        assert_eq!(says("cn=\\ff"), "`cn=\\ff` is not a distinguished name: a value that is not UTF-8");
    }

    #[test]
    fn normalization_equates_what_the_directory_equates() {
        let a = normalize("UID=Bob,OU=People,DC=Example,DC=Com");
        assert_eq!(a, normalize("uid=bob, ou=people, dc=example, dc=com"));
        assert_eq!(a, normalize(r"uid=\42ob,ou=people,dc=example,dc=com"));
        assert_eq!(normalize("cn=a+uid=b,dc=x"), normalize("uid=b+cn=a,dc=x"));
        assert_ne!(normalize(r"uid=a\2cb,dc=x"), normalize("uid=a,b=,dc=x"));
        assert_ne!(a, normalize("uid=bob2,ou=people,dc=example,dc=com"));
        let base = Dn::parse("OU=Disabled,DC=x").unwrap();
        assert!(Dn::parse("uid=a,ou=disabled,dc=X").unwrap().is_within(&base));
        assert!(!Dn::parse("uid=a,ou=people,dc=x").unwrap().is_within(&base));
        assert!(!Dn::parse("dc=x").unwrap().is_within(&base));
    }

    proptest! {
        #[test]
        fn any_value_round_trips_through_an_rdn(v in "\\PC{1,24}|[ #,+\"\\\\<>;=\\x00a-c]{1,12}") {
            // Parses back to the value, and prints again as the same string.
            crate::fuzzing::ldap_dn_value(&v);
        }

        #[test]
        fn any_value_round_trips_through_a_filter(v in "\\PC{0,24}|[*()\\\\\\x00a-c]{1,12}") {
            // Unescapes to the value, and parses with ldap3's filter parser to an equality
            // match of exactly its bytes.
            crate::fuzzing::ldap_filter_value(&v);
        }
    }
}
