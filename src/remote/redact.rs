//! Removing a secret from text a service sent back.
//!
//! A service's error body is its own text, and some echo the request they refused, headers
//! included. Before such text reaches an error message, [`redact`] replaces:
//! - every `Bearer <value>` and every `Authorization: <value>` (to the end of its line),
//!   whatever the value is: a request header is never repeated back to the user;
//! - the secret in any letter case, and any run of 8 or more of its first characters (a
//!   truncated echo);
//! - its percent-encoded form (hexadecimal digits in either case), and runs of 8 or more of its
//!   first characters;
//! - its standard and URL-safe base64 forms, at each of the three alignments a secret can have
//!   inside a longer encoded text (so `base64("Authorization: Bearer <secret>")` is caught too).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// What a redacted span is replaced with.
pub const MASK: &str = "(sensitive)";

/// The shortest prefix of a secret that counts as an echo of it.
const MIN_PREFIX: usize = 8;
/// The shortest base64 run that counts as an echo of the secret.
const MIN_ENCODED: usize = 8;

/// `text` with every form of `secret` listed in the module documentation replaced by
/// [`MASK`], and every bearer or `Authorization` value too.
pub fn redact(text: &str, secret: &str) -> String {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    header_values(text, &mut spans);
    if !secret.is_empty() {
        for form in [secret.to_string(), percent_encoded(secret)] {
            prefixes(text, &form, &mut spans);
        }
        for encoded in base64_runs(secret) {
            exact(text, &encoded, &mut spans);
        }
    }
    mask(text, spans)
}

/// Spans of `text` that begin a case-insensitive match of at least [`MIN_PREFIX`] characters
/// of `form` (or all of it, when shorter).
fn prefixes(text: &str, form: &str, spans: &mut Vec<(usize, usize)>) {
    let (t, f) = (text.as_bytes(), form.as_bytes());
    let need = f.len().min(MIN_PREFIX);
    for start in 0..t.len() {
        let n = t[start..].iter().zip(f).take_while(|(a, b)| a.eq_ignore_ascii_case(b)).count();
        if n >= need {
            spans.push((start, start + n));
        }
    }
}

fn exact(text: &str, needle: &str, spans: &mut Vec<(usize, usize)>) {
    if needle.is_empty() {
        return;
    }
    spans.extend(text.match_indices(needle).map(|(i, m)| (i, i + m.len())));
}

/// The value after every `Bearer ` and every `Authorization:` / `Authorization=`.
fn header_values(text: &str, spans: &mut Vec<(usize, usize)>) {
    let lower = text.to_ascii_lowercase();
    for key in ["bearer", "authorization"] {
        for (i, _) in lower.match_indices(key) {
            let rest = &text[i + key.len()..];
            let skip = rest
                .char_indices()
                .find(|(_, c)| !(c.is_whitespace() || matches!(c, ':' | '=' | '"' | '\'')))
                .map_or(rest.len(), |(j, _)| j);
            // `Bearer` must be followed by a space to be the scheme, not a word.
            if skip == 0 || (key == "bearer" && !rest.starts_with(char::is_whitespace)) {
                continue;
            }
            let value = &rest[skip..];
            // A bearer token ends at a space; an `Authorization` value (scheme and credentials)
            // at the end of its line or of the quoted or listed value holding it.
            let ends = |c: char| {
                matches!(c, '"' | '\'' | ',' | ';' | '}' | ']' | '<' | '\n' | '\r')
                    || (key == "bearer" && c.is_whitespace())
            };
            let len = value.char_indices().find(|(_, c)| ends(*c)).map_or(value.len(), |(j, _)| j);
            let start = i + key.len() + skip;
            if len > 0 {
                spans.push((start, start + len));
            }
        }
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The base64 characters that depend on the secret alone, at each alignment, in both
/// alphabets.
fn base64_runs(secret: &str) -> Vec<String> {
    let mut out = Vec::new();
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        for lead in 0..3usize {
            let mut bytes = vec![0u8; lead];
            bytes.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&bytes);
            // The first group mixes in the lead bytes, and a final partial group the bytes
            // that follow the secret in the echo: keep only whole groups of secret bytes.
            let first = if lead == 0 { 0 } else { 4 };
            let whole = (bytes.len() / 3) * 4;
            if whole > first && whole - first >= MIN_ENCODED {
                out.push(enc[first..whole].to_string());
            }
        }
    }
    out
}

/// `text` with the union of `spans` replaced by [`MASK`] (spans widened to whole characters).
fn mask(text: &str, mut spans: Vec<(usize, usize)>) -> String {
    if spans.is_empty() {
        return text.to_string();
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0usize;
    for (mut s, mut e) in spans {
        while !text.is_char_boundary(s) {
            s -= 1;
        }
        while e < text.len() && !text.is_char_boundary(e) {
            e += 1;
        }
        if e <= at {
            continue; // inside a span already masked
        }
        if s >= at {
            out.push_str(&text[at..s]);
            out.push_str(MASK);
        }
        // A span that overlaps the previous one widens it.
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token made at test time, with characters that base64 and percent-encoding change.
    fn token() -> String {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        format!("tk{n:08x}/Ab+Cd=Ef{:06x}", n.rotate_left(7) & 0xffffff)
    }

    fn variants(t: &str) -> Vec<String> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let b64url = |s: &str| URL_SAFE_NO_PAD.encode(s);
        vec![
            t.to_string(),
            t.to_uppercase(),
            t.to_lowercase(),
            t[..9].to_string(),
            t[..t.len() - 3].to_string(),
            b64(t),
            b64url(t),
            b64(&format!("Authorization: Bearer {t}")),
            b64url(&format!("x{t}")),
            b64(&format!("xy{t}")),
            percent_encoded(t),
            percent_encoded(t).to_lowercase(),
        ]
    }

    #[test]
    fn every_form_of_the_secret_is_masked() {
        let t = token();
        for v in variants(&t) {
            let text = format!("refused {v} here");
            let r = redact(&text, &t);
            assert!(r.starts_with("refused ") && r.ends_with(" here") && r.contains(MASK), "{v}: {r}");
            assert!(!r.contains(&v), "{v}: {r}");
        }
    }

    #[test]
    fn request_headers_are_never_echoed() {
        for text in [
            "got Authorization: Bearer abc.def.ghi",
            "got authorization=Basic dXNlcjpwYXNz",
            "{\"Authorization\": \"Bearer zzz\"}",
            "bearer   qqq-123",
        ] {
            let r = redact(text, "unrelated-secret");
            for secret in ["abc.def.ghi", "dXNlcjpwYXNz", "zzz", "qqq-123"] {
                assert!(!r.contains(secret), "{text}: {r}");
            }
        }
    }

    #[test]
    fn other_text_is_kept() {
        let t = token();
        assert_eq!(redact("userName taken", &t), "userName taken");
        assert_eq!(redact("no bearer", &t), "no bearer");
        assert_eq!(redact(&t, &t), MASK);
        assert_eq!(redact("é tk é", "tk"), "é (sensitive) é");
        // Seven characters of the secret are not enough to count as an echo.
        assert_eq!(redact(&format!("x {} y", &t[..7]), &t), format!("x {} y", &t[..7]));
    }
}
