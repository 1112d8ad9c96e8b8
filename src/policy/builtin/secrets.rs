//! `encryption.plaintext-secret`: secrets written out in any file of the configuration.
//!
//! One pass over each file's bytes finds three kinds of secret:
//! - PEM private keys (`-----BEGIN ... PRIVATE KEY-----`);
//! - tokens with a well-known prefix (GitHub, GitLab, Slack, AWS access key ids, Google API
//!   keys, Stripe, npm, SendGrid, JSON Web Tokens);
//! - high-entropy values of keys that name a secret (`password`, `token`, `apiKey`, ...), in YAML
//!   (`key: value`), flow maps and Rego (`key := "value"`), comments included.
//!
//! In YAML files, double-quoted values are also scanned as YAML decodes them, so an escape
//! (`"\x41KIA…"`, `"\u0067hp_…"`) does not hide a token or a secret key's value.
//!
//! Findings never show the secret: only its kind, its length and the first characters of a
//! well-known prefix. [`redact`] masks every secret of a text, for renderers that show source
//! lines.

use std::borrow::Cow;
use std::ops::Range;

use super::default_severity;
use crate::model::Severity;
use crate::policy::Rule;
use crate::policy::{Finding, PolicyContext};
use crate::validate::Location;

/// One secret found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// 1-based line and column (in characters) where it starts.
    pub line: u32,
    pub column: u32,
    /// The bytes to mask: the secret material itself.
    pub mask: Range<usize>,
    /// What it is, without the secret: `a GitHub token (ghp_…, 40 characters)`.
    pub what: String,
}

/// Well-known token prefixes: (prefix, what it is, shortest plausible token).
const PREFIXES: &[(&str, &str, usize)] = &[
    ("ghp_", "GitHub token", 40),
    ("gho_", "GitHub token", 40),
    ("ghu_", "GitHub token", 40),
    ("ghs_", "GitHub token", 40),
    ("ghr_", "GitHub token", 40),
    ("github_pat_", "GitHub token", 40),
    ("glpat-", "GitLab token", 26),
    ("xoxb-", "Slack token", 24),
    ("xoxp-", "Slack token", 24),
    ("xoxa-", "Slack token", 24),
    ("xoxr-", "Slack token", 24),
    ("xoxs-", "Slack token", 24),
    ("xapp-", "Slack token", 24),
    ("AKIA", "AWS access key id", 20),
    ("ASIA", "AWS access key id", 20),
    ("AIza", "Google API key", 39),
    ("sk_live_", "Stripe key", 24),
    ("rk_live_", "Stripe key", 24),
    ("npm_", "npm token", 40),
    ("SG.", "SendGrid key", 60),
    ("eyJ", "JSON Web Token", 40),
];

/// Which classes of characters (lower, upper, digit) a string mixes.
fn classes(s: &str) -> usize {
    let lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let upper = s.bytes().any(|b| b.is_ascii_uppercase());
    let digit = s.bytes().any(|b| b.is_ascii_digit());
    lower as usize + upper as usize + digit as usize
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum()
}

/// The kind of a token with a well-known prefix, if `run` is one.
fn token(run: &str) -> Option<(&'static str, &'static str)> {
    for &(prefix, what, min) in PREFIXES {
        if run.len() < min || !run.starts_with(prefix) {
            continue;
        }
        let tail = &run[prefix.len()..];
        let ok = match prefix {
            "AKIA" | "ASIA" => {
                run.len() == 20
                    && tail.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                    && classes(tail) == 2
            }
            "eyJ" => run.matches('.').count() == 2 && run.split('.').nth(1).is_some_and(|p| p.starts_with("eyJ")),
            "SG." => run.matches('.').count() == 2,
            _ => classes(tail) >= 2 && entropy(tail) >= 3.0,
        };
        if ok {
            return Some((prefix, what));
        }
    }
    None
}

/// Whether a key names a secret: `password`, `clientSecret`, `api_key`, `token`, ...
fn secretish(key: &str) -> bool {
    if key.len() < 3 || key.len() > 40 || !key.bytes().any(|b| matches!(b | 0x20, b'k' | b'w' | b'c')) {
        return false;
    }
    let norm: String =
        key.bytes().filter(|b| !matches!(b, b'_' | b'-' | b'.')).map(|b| b.to_ascii_lowercase() as char).collect();
    ["password", "passwd", "secret", "token", "apikey", "accesskey", "privatekey", "connectionstring"]
        .iter()
        .any(|w| norm.contains(w))
        || norm.ends_with("pwd")
}

/// The value after a key's `:` or `=` at byte `from`: its byte range, if it is a plain scalar or
/// a quoted string on the same line.
fn value_at(text: &str, from: usize) -> Option<Range<usize>> {
    let b = text.as_bytes();
    let mut i = from;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'=') {
        i += 1;
    }
    let quote = b.get(i).copied().filter(|q| *q == b'"' || *q == b'\'');
    let line_end = text[i..].find('\n').map(|e| i + e).unwrap_or(b.len());
    let range = match quote {
        Some(q) => {
            let close = text[i + 1..line_end].find(q as char)?;
            i + 1..i + 1 + close
        }
        None => {
            let mut end = line_end;
            if let Some(c) = text[i..end].find(" #") {
                end = i + c;
            }
            if let Some(c) = text[i..end].find([',', '}', ']']) {
                end = i + c;
            }
            let v = text[i..end].trim_end();
            i..i + v.len()
        }
    };
    Some(range)
}

/// Bytes that make up tokens and keys, as a table.
static RUN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.';
        i += 1;
    }
    t
};

/// Turns byte offsets into lines and columns, moving forward only.
struct Cursor<'t> {
    text: &'t str,
    at: usize,
    line: u32,
    line_start: usize,
}

impl Cursor<'_> {
    fn position(&mut self, at: usize) -> (u32, u32) {
        if at < self.at {
            (self.at, self.line, self.line_start) = (0, 1, 0);
        }
        let b = &self.text.as_bytes()[self.at..at];
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' {
                self.line += 1;
                self.line_start = self.at + i + 1;
            }
        }
        self.at = at;
        (self.line, self.text[self.line_start..at].chars().count() as u32 + 1)
    }
}

/// Finds every secret in `text`.
pub fn scan(text: &str) -> Vec<Hit> {
    let b = text.as_bytes();
    let mut hits = Vec::new();
    let mut cursor = Cursor { text, at: 0, line: 1, line_start: 0 };
    // One tight pass finds the ends of runs of token bytes; only the rare run that could be a
    // secret or a secret's key (long, a PEM header, or followed by `:`/`=`) is looked at.
    let mut run_start = usize::MAX;
    let mut i = 0usize;
    while i < b.len() {
        let c = b[i];
        if RUN[c as usize] {
            if run_start == usize::MAX {
                run_start = i;
            }
            i += 1;
            continue;
        }
        if run_start == usize::MAX {
            i += 1;
            continue;
        }
        let start = std::mem::replace(&mut run_start, usize::MAX);
        let len = i - start;
        let keyish = c == b':' || c == b'=' || (c == b' ' && matches!(b.get(i + 1), Some(b':' | b'=' | b' ')));
        if len < 20 && !keyish && !(len == 10 && b[start] == b'-') {
            i += 1;
            continue;
        }
        match examine(text, start, i, &mut cursor) {
            Some((hit, resume)) => {
                hits.push(hit);
                i = resume.max(i);
            }
            None => i += 1,
        }
    }
    if run_start != usize::MAX
        && let Some((hit, _)) = examine(text, run_start, b.len(), &mut cursor)
    {
        hits.push(hit);
    }
    hits
}

/// Looks at the run `text[start..end]`: a token, a PEM header, or a secret's key. Returns the
/// hit and where to resume scanning.
fn examine(text: &str, start: usize, end: usize, cursor: &mut Cursor) -> Option<(Hit, usize)> {
    let b = text.as_bytes();
    // Runs are ASCII, so these are character boundaries.
    let run = &text[start..end];
    if run.len() >= 20 {
        let (prefix, what) = token(run)?;
        let (line, column) = cursor.position(start);
        let what = format!("a {what} ({prefix}…, {} characters)", run.len());
        return Some((Hit { line, column, mask: start + prefix.len()..end, what }, end));
    }
    if run == "-----BEGIN" {
        let line_end = text[end..].find('\n').map(|e| end + e).unwrap_or(b.len());
        let header = &text[end..line_end];
        let p = header.find(concat!("PRIVATE", " KEY"))?;
        let label = header[..p + 11].trim();
        let body_start = header[p..].find("-----").map(|d| end + p + d + 5).unwrap_or(line_end);
        let window = &text[body_start..(body_start + 64 * 1024).min(b.len())];
        let body_end = window.find("-----END").map(|e| body_start + e).unwrap_or(line_end.max(body_start)).min(b.len());
        let (line, column) = cursor.position(start);
        let what = format!("a PEM private key (-----BEGIN {label}-----)");
        return Some((Hit { line, column, mask: body_start..body_end, what }, body_end));
    }
    let mut j = end;
    while j < b.len() && b[j] == b' ' {
        j += 1;
    }
    if !matches!(b.get(j), Some(b':' | b'=')) || !secretish(run) {
        return None;
    }
    let v = value_at(text, j + 1)?;
    let value = &text[v.clone()];
    // References, nested values, paths and URLs without credentials are not secrets.
    let plain = !value.is_empty()
        && !value.starts_with("${")
        && !value.starts_with(['{', '[', '|', '>', '&', '*', '!', '<', '.', '/', '~'])
        && !value.contains(char::is_whitespace)
        && (!value.contains("://") || value.contains('@'));
    if !plain {
        return None;
    }
    let (what, keep) = match token(value) {
        Some((prefix, what)) => (format!("a {what} ({prefix}…, {} characters)", value.len()), prefix.len()),
        None if value.len() >= 12 && classes(value) >= 2 && entropy(value) >= 3.0 => {
            (format!("the value of `{run}`, {} characters that look random", value.chars().count()), 0)
        }
        None => return None,
    };
    let (line, column) = cursor.position(v.start);
    Some((Hit { line, column, mask: v.start + keep..v.end, what }, v.end))
}

/// `text` with every secret that [`scan`] finds replaced by `*`, one per character, so lines and
/// columns stay where they were.
pub fn redact(text: &str) -> Cow<'_, str> {
    let hits = scan(text);
    if hits.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for h in &hits {
        if h.mask.start < last {
            continue;
        }
        out.push_str(&text[last..h.mask.start]);
        for ch in text[h.mask.clone()].chars() {
            out.push(if ch == '\n' || ch == '\r' { ch } else { '*' });
        }
        last = h.mask.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// Secrets that only a YAML decoder sees: every double-quoted scalar of `text` whose decoded
/// value differs from what is written (escapes), scanned decoded, with the key it is the value
/// of; at the scalar's line and column. A syntax error ends the scan (validation reports it).
pub fn scan_decoded_yaml(text: &str) -> Vec<Hit> {
    use yaml_rust2::parser::{Event, Parser};
    use yaml_rust2::scanner::TScalarStyle;
    // In a mapping: whether the next node is a key.
    let mut frames: Vec<Option<bool>> = Vec::new();
    let mut key: Option<String> = None;
    let mut hits = Vec::new();
    let mut parser = Parser::new_from_str(text);
    // Whether the node that starts now is a mapping's key (and the next one is not).
    let next_is_key = |frames: &mut Vec<Option<bool>>| match frames.last_mut() {
        Some(Some(k)) => {
            let is_key = *k;
            *k = !is_key;
            is_key
        }
        _ => false,
    };
    loop {
        let (event, mark) = match parser.next_token() {
            Ok((Event::StreamEnd, _)) | Err(_) => return hits,
            Ok(next) => next,
        };
        match event {
            Event::Scalar(value, style, ..) => {
                if next_is_key(&mut frames) {
                    key = Some(value);
                    continue;
                }
                // Escapes live only in double-quoted scalars; one written out plainly is seen
                // by [`scan`] already.
                if style != TScalarStyle::DoubleQuoted || text.contains(value.as_str()) {
                    continue;
                }
                let shown = match key.as_deref() {
                    Some(k) if !value.contains(char::is_whitespace) => format!("{k}: {value}"),
                    _ => value.clone(),
                };
                for mut hit in scan(&shown) {
                    hit.what.push_str(", written with YAML escapes");
                    (hit.line, hit.column) = (mark.line() as u32, mark.col() as u32 + 1);
                    hit.mask = 0..0;
                    hits.push(hit);
                }
            }
            Event::Alias(_) => {
                next_is_key(&mut frames);
            }
            Event::MappingStart(..) => {
                next_is_key(&mut frames);
                frames.push(Some(true));
            }
            Event::SequenceStart(..) => {
                next_is_key(&mut frames);
                frames.push(None);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                frames.pop();
            }
            Event::DocumentStart => frames.clear(),
            _ => {}
        }
    }
}

/// The secrets of a file: [`scan`]'s, and for YAML those only its decoded values show
/// ([`scan_decoded_yaml`]) on lines where the raw text shows none.
pub fn scan_file(text: &str, yaml: bool) -> Vec<Hit> {
    let mut hits = scan(text);
    if yaml {
        let decoded: Vec<Hit> =
            scan_decoded_yaml(text).into_iter().filter(|d| !hits.iter().any(|h| h.line == d.line)).collect();
        hits.extend(decoded);
    }
    hits
}

pub(super) fn check(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    let forbidden =
        ctx.desired.encryption_policies.values().any(|p| p.secrets.as_ref().is_some_and(|s| s.forbid_in_repo));
    let severity = if forbidden { default_severity(Rule::EncryptionPlaintextSecret) } else { Severity::Warn };
    for file in &ctx.loaded.files {
        let yaml = file.path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        for hit in scan_file(&file.text, yaml) {
            out.push(
                Finding::new(
                    Rule::EncryptionPlaintextSecret.id(),
                    severity,
                    format!("file:{}", file.path.display()),
                    format!("`{}` holds a plain-text secret: {}", file.path.display(), hit.what),
                )
                .help(
                    "remove it from the file and from the git history, revoke and rotate it (anyone who can read the \
                     repository has it), and reference secrets as ${env:NAME} or ${file:PATH}",
                )
                .at(Some(Location { file: file.path.clone(), line: hit.line, column: hit.column })),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random string of `n` characters from `alphabet`, so no test file
    /// holds anything that looks like a real secret.
    fn fake(seed: u64, n: usize, alphabet: &[u8]) -> String {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize] as char
            })
            .collect()
    }

    const B62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    #[test]
    fn finds_prefixed_tokens_and_masks_them() {
        let gh = format!("{}{}", "ghp", "_") + &fake(1, 36, B62);
        let text = format!("kind: User\n# temporary: {gh}\nname: a\n");
        let hits = scan(&text);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!((hits[0].line, hits[0].column), (2, 14));
        assert!(hits[0].what.contains("GitHub token"), "{}", hits[0].what);
        assert!(!hits[0].what.contains(&gh[4..]), "the finding must not show the secret");
        let masked = redact(&text);
        assert!(!masked.contains(&gh[4..]));
        assert_eq!(masked.len(), text.len());
        assert!(masked.contains(&format!("{}{}", "ghp_", "*".repeat(36))));
    }

    #[test]
    fn finds_aws_key_ids_exactly() {
        let id = format!("{}{}", "AK", "IA") + &fake(2, 16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        assert_eq!(scan(&format!("x: {id}\n")).len(), 1);
        // One character more is not an access key id.
        assert!(scan(&format!("x: {id}Q\n")).is_empty());
    }

    #[test]
    fn finds_pem_private_keys_and_masks_the_body() {
        let body = fake(3, 64, B62);
        let begin = format!("-----BEGIN RSA {}-----", concat!("PRIVATE", " KEY"));
        let end = format!("-----END RSA {}-----", concat!("PRIVATE", " KEY"));
        let text = format!("description: |\n  {begin}\n  {body}\n  {end}\nname: x\n");
        let hits = scan(&text);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!((hits[0].line, hits[0].column), (2, 3));
        let masked = redact(&text);
        assert!(!masked.contains(&body));
        assert!(masked.contains("-----END RSA"));
        assert_eq!(masked.lines().count(), text.lines().count());
    }

    #[test]
    fn finds_high_entropy_values_of_secret_keys_only() {
        let v = fake(4, 32, B62);
        for text in [
            format!("clientSecret: {v}\n"),
            format!("  api_key: \"{v}\"\n"),
            format!("{{name: x, password: {v}}}\n"),
            format!("token := \"{v}\"\n"),
        ] {
            let hits = scan(&text);
            assert_eq!(hits.len(), 1, "{text}: {hits:?}");
            assert!(redact(&text).contains(&"*".repeat(32)), "{text}");
        }
        for text in [
            format!("employeeId: {v}\n"),
            "clientSecret: ${env:CLIENT_SECRET}\n".to_string(),
            "password: changeme\n".to_string(),
            "description: a token that is not here\n".to_string(),
            "secrets: {forbidInRepo: true}\n".to_string(),
            "tokenUrl: https://login.example.test/oauth2/token\n".to_string(),
        ] {
            assert!(scan(&text).is_empty(), "{text}");
        }
    }

    /// `s` as a YAML double-quoted scalar with every character escaped (`\xNN`).
    fn escaped(s: &str) -> String {
        s.bytes().map(|b| format!("\\x{b:02X}")).collect()
    }

    #[test]
    fn yaml_escapes_do_not_hide_a_token_or_a_secret_value() {
        let id = format!("{}{}", "AK", "IA") + &fake(5, 16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        assert_eq!(scan(&format!("x: {id}\n")).len(), 1, "a token as the raw scan sees it");
        let text = format!("kind: User\nname: a\ndescription: \"{}\"\n", escaped(&id));
        assert!(scan(&text).is_empty(), "the raw text shows no token");
        let hits = scan_decoded_yaml(&text);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!((hits[0].line, hits[0].column), (3, 14));
        assert!(
            hits[0].what.contains("AWS access key id") && hits[0].what.contains("YAML escapes"),
            "{}",
            hits[0].what
        );
        assert!(!hits[0].what.contains(&id[4..]), "the finding must not show the secret");

        let v = fake(6, 32, B62);
        let text = format!("targets:\n  x: {{provider: scim, token: \"\\u00{:02x}{}\"}}\n", v.as_bytes()[0], &v[1..]);
        let hits = scan_decoded_yaml(&text);
        assert_eq!(hits.len(), 1, "{text}: {hits:?}");
        assert!(hits[0].what.contains("`token`"), "{}", hits[0].what);
        // The raw scan sees this one too: a file reports it once.
        assert_eq!(scan_file(&text, true).len(), 1, "{text}");
        // An escaped token is reported once, through its decoded value.
        let escaped_token = format!("description: \"{}\"\n", escaped(&id));
        let hits = scan_file(&escaped_token, true);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(hits[0].what.contains("AWS access key id"), "{}", hits[0].what);
        assert!(scan_file(&escaped_token, false).is_empty(), "not YAML: no decoding");

        // A value written out plainly, quoted or not, is left to the raw scan: not found twice.
        let plain = format!("token: \"{v}\"\nother: {v}\n");
        assert!(scan_decoded_yaml(&plain).is_empty());
        // Escaped ordinary text is no secret.
        assert!(scan_decoded_yaml("description: \"caf\\u00e9 \\x41\"\n").is_empty());
    }

    #[test]
    fn ordinary_configuration_has_no_secrets() {
        let text = "kind: ServiceAccount\nname: payments-bot\nowner: nancy.davolio\ncredentials:\n  - name: client-secret\n    type: secret\n    deliver: {file: .keyward/secrets/payments-bot.pem}\n";
        assert!(scan(text).is_empty());
    }
}
