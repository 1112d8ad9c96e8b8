//! The directory's schema, read from its subschema subentry (RFC 4512 §4.2, §5.1), so that a
//! plan that would write an attribute the server does not define is refused when the target
//! is read, before anything is written.
//!
//! Without this, an OpenLDAP server that does not load the ppolicy module accepts the users
//! and groups of an apply and then fails halfway, at the first disable, with "LDAP result 17
//! undefinedAttributeType: pwdAccountLockedTime: attribute type undefined".
//!
//! A server that does not name a subschema subentry, or does not let the bind DN read it, is
//! read without the check (a warning says so): the check prevents a half-applied plan, it
//! does not decide what the directory is.

use std::collections::BTreeSet;

use crate::model::UserField;
use crate::model::config::{LdapDisable, LdapFlavor};

/// The attribute type names a directory defines, lower-cased (names are case-insensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    attributes: BTreeSet<String>,
}

impl Schema {
    /// The schema from the values of a subschema subentry's `attributeTypes`.
    pub fn from_attribute_types<'a>(values: impl IntoIterator<Item = &'a String>) -> Schema {
        let attributes = values.into_iter().flat_map(|v| names(v)).map(|n| n.to_ascii_lowercase()).collect();
        Schema { attributes }
    }

    /// Whether the directory defines an attribute type of this name.
    pub fn defines(&self, name: &str) -> bool {
        self.attributes.contains(&name.to_ascii_lowercase())
    }

    /// How many attribute types were read.
    pub fn len(&self) -> usize {
        self.attributes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }
}

/// An attribute keyward would write that the directory does not define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub attribute: String,
    /// What keyward uses the attribute for, in words.
    pub role: String,
}

/// The attributes keyward writes on a target with this flavor, user key and disable method,
/// each with what it is for.
pub fn written_attributes(flavor: LdapFlavor, user_key: &str, disable: &LdapDisable) -> Vec<(String, String)> {
    let mut out = vec![(user_key.to_string(), "the user key (`userKey`)".to_string())];
    for f in UserField::ALL {
        out.push((super::field_attribute(flavor, f).to_string(), format!("the user field `{}`", f.as_str())));
    }
    match disable {
        LdapDisable::Attribute { name, .. } => out.push((name.clone(), "the `disable` method".to_string())),
        LdapDisable::AccountControl => out.push(("userAccountControl".into(), "disabling accounts".into())),
        LdapDisable::MoveTo(_) => {}
    }
    out
}

/// The written attributes the schema does not define, in the order they were given.
pub fn missing(schema: &Schema, written: &[(String, String)]) -> Vec<Missing> {
    let mut seen = BTreeSet::new();
    written
        .iter()
        .filter(|(a, _)| !schema.defines(a) && seen.insert(a.to_ascii_lowercase()))
        .map(|(a, role)| Missing { attribute: a.clone(), role: role.clone() })
        .collect()
}

/// The message that refuses a plan, naming each missing attribute and, for the disable
/// method, the alternatives.
pub fn refusal(missing: &[Missing], disable: &LdapDisable) -> String {
    let list: Vec<String> = missing.iter().map(|m| format!("`{}` (used for {})", m.attribute, m.role)).collect();
    let mut msg = format!("the directory's schema does not define {}; nothing was written. ", list.join(", "));
    let disable_missing = match disable {
        LdapDisable::Attribute { name, .. } => missing.iter().any(|m| m.attribute.eq_ignore_ascii_case(name)),
        _ => false,
    };
    if disable_missing {
        msg.push_str(
            "To disable accounts, load the module that defines the attribute (for \
             `pwdAccountLockedTime`: `moduleload ppolicy` and `overlay ppolicy` in slapd), or set \
             `disable: {moveTo: DN}` (disabled accounts move below an OU) or `disable: {attribute: \
             NAME, value: VALUE}` with an attribute the schema defines",
        );
    } else {
        msg.push_str("Load the schema that defines it, or change `userKey`");
    }
    msg
}

/// The names of one AttributeTypeDescription (RFC 4512 §4.1.2): `( OID NAME 'cn' ... )` or
/// `( OID NAME ( 'cn' 'commonName' ) ... )`. A description without NAME has none.
fn names(description: &str) -> Vec<String> {
    let mut tokens = Tokens { rest: description };
    // Up to NAME; a quoted string before it (none is allowed by the grammar) is skipped whole.
    loop {
        match tokens.next() {
            None => return Vec::new(),
            Some(Token::Word("NAME")) => break,
            Some(_) => {}
        }
    }
    match tokens.next() {
        Some(Token::Quoted(n)) => vec![n.to_string()],
        Some(Token::Open) => {
            let mut out = Vec::new();
            while let Some(t) = tokens.next() {
                match t {
                    Token::Quoted(n) => out.push(n.to_string()),
                    Token::Close => break,
                    _ => {}
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

enum Token<'a> {
    Open,
    Close,
    Quoted(&'a str),
    Word(&'a str),
}

struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Option<Token<'a>> {
        self.rest = self.rest.trim_start();
        let c = self.rest.chars().next()?;
        match c {
            '(' => {
                self.rest = &self.rest[1..];
                Some(Token::Open)
            }
            ')' => {
                self.rest = &self.rest[1..];
                Some(Token::Close)
            }
            '\'' => {
                let body = &self.rest[1..];
                let end = body.find('\'').unwrap_or(body.len());
                self.rest = body.get(end + 1..).unwrap_or("");
                Some(Token::Quoted(&body[..end]))
            }
            _ => {
                let end = self.rest.find(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '\'');
                let end = end.unwrap_or(self.rest.len());
                let word = &self.rest[..end];
                self.rest = &self.rest[end..];
                Some(Token::Word(word))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(values: &[&str]) -> Schema {
        let v: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        Schema::from_attribute_types(&v)
    }

    #[test]
    fn names_are_read_in_both_forms_and_compared_without_case() {
        let s = schema(&[
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) DESC 'RFC4519: common name(s) for which the entity is known by' SUP name )",
            "( 0.9.2342.19200300.100.1.1 NAME 'uid' EQUALITY caseIgnoreMatch )",
            "( 1.2.3 DESC 'a description with NAME ( inside ) quotes' NAME 'x-odd' )",
            "( 1.2.4 SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
        ]);
        assert!(s.defines("cn") && s.defines("commonName") && s.defines("CN"));
        assert!(s.defines("UID"));
        assert!(s.defines("x-odd"));
        assert!(!s.defines("inside"));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn a_missing_ppolicy_attribute_is_refused_with_the_disable_alternatives() {
        // The core, cosine and inetorgperson names keyward writes, without ppolicy's.
        let core =
            ["uid", "displayName", "givenName", "sn", "mail", "departmentNumber", "title", "manager", "employeeNumber"];
        let values: Vec<String> = core.iter().enumerate().map(|(i, n)| format!("( 1.{i} NAME '{n}' )")).collect();
        let s = Schema::from_attribute_types(&values);
        let disable = LdapDisable::Attribute {
            name: LdapDisable::PPOLICY_ATTRIBUTE.into(),
            value: LdapDisable::PPOLICY_LOCKED.into(),
        };
        let written = written_attributes(LdapFlavor::Openldap, "uid", &disable);
        let m = missing(&s, &written);
        assert_eq!(m, vec![Missing { attribute: "pwdAccountLockedTime".into(), role: "the `disable` method".into() }]);
        let msg = refusal(&m, &disable);
        assert!(msg.contains("does not define `pwdAccountLockedTime`"), "{msg}");
        assert!(msg.contains("moveTo") && msg.contains("overlay ppolicy"), "{msg}");

        let moved = LdapDisable::MoveTo("ou=disabled,dc=example".into());
        assert!(missing(&s, &written_attributes(LdapFlavor::Openldap, "uid", &moved)).is_empty());
    }

    #[test]
    fn a_user_key_the_schema_lacks_is_named() {
        let s = schema(&["( 1 NAME 'cn' )"]);
        let written = written_attributes(LdapFlavor::Openldap, "employeeUid", &LdapDisable::MoveTo("ou=x".into()));
        let m = missing(&s, &written);
        assert_eq!(m[0].attribute, "employeeUid");
        assert!(refusal(&m, &LdapDisable::MoveTo("ou=x".into())).contains("change `userKey`"));
    }
}
