//! Turning loaded documents into the validated [`DesiredState`].
//!
//! Guarantees: every problem found is reported (one structural error per document, then every
//! reference, duplicate and setting problem), each with file, line, field and a hint; a state
//! is returned only when there is no error. No network, no secret resolution.

mod references;
mod settings;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::diagnostic::{self, Diagnostic};
use crate::load::{Document, Loaded, PathSeg, locate};
use crate::model::{
    AuthenticationPolicy, DataClassification, DesiredState, EncryptionPolicy, Kind, Name, Role, ServiceAccount,
    SodRule, User,
};

/// Where a resource came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index into [`Loaded::documents`].
    pub doc: usize,
}

/// A file position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
}

/// The origin of every resource, to point findings at their YAML.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    map: HashMap<(Kind, Name), Origin>,
    /// Resources whose document failed to parse.
    broken: std::collections::HashSet<(Kind, Name)>,
    settings: Option<usize>,
}

impl Origins {
    pub fn get(&self, kind: Kind, name: &Name) -> Option<Origin> {
        self.map.get(&(kind, name.clone())).copied()
    }

    /// Whether a document of this kind and name exists but failed to parse.
    pub fn is_broken(&self, kind: Kind, name: &Name) -> bool {
        self.broken.contains(&(kind, name.clone()))
    }

    /// The position of `path` inside the resource `kind`/`name`, or of the resource itself when
    /// the path is not written out.
    pub fn locate(&self, loaded: &Loaded, kind: Kind, name: &Name, path: &[PathSeg]) -> Option<Location> {
        let origin = self.get(kind, name)?;
        Some(doc_location(loaded, &loaded.documents[origin.doc], path))
    }

    /// The position of `path` inside `keyward.yaml`.
    pub fn locate_setting(&self, loaded: &Loaded, path: &[PathSeg]) -> Option<Location> {
        let doc = &loaded.settings[self.settings?];
        Some(doc_location(loaded, doc, path))
    }
}

/// The position of `path` in `doc`; the closest written ancestor when the path itself is not.
pub fn doc_location(loaded: &Loaded, doc: &Document, path: &[PathSeg]) -> Location {
    let text = loaded.text(doc);
    let mut prefix = path;
    let (line, column) = loop {
        if let Some(found) = locate(text, prefix) {
            break found;
        }
        if prefix.is_empty() {
            break (1, 1);
        }
        prefix = &prefix[..prefix.len() - 1];
    };
    Location { file: loaded.path(doc).to_path_buf(), line: doc.start_line + line - 1, column }
}

/// The result of validation.
#[derive(Debug)]
pub struct Validated {
    /// `None` when any error was found.
    pub state: Option<DesiredState>,
    pub origins: Origins,
    pub diagnostics: Vec<Diagnostic>,
}

impl Validated {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Collects diagnostics, attaching file and line.
pub(crate) struct Sink<'a> {
    pub loaded: &'a Loaded,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub fn at(&mut self, doc: &Document, path: &[PathSeg], diag: Diagnostic) {
        let loc = doc_location(self.loaded, doc, path);
        let mut diag = diag.in_file(loc.file).at(loc.line, loc.column);
        if !path.is_empty() && diag.field.is_none() {
            diag.field = Some(crate::load::locate::DisplayPath(path).to_string());
        }
        self.diags.push(diag);
    }
}

/// Validates a loaded configuration.
pub fn validate(loaded: &Loaded) -> Validated {
    let mut sink = Sink { loaded, diags: loaded.diagnostics.clone() };
    let mut origins = Origins::default();

    let settings = settings::resolve(&mut sink, &mut origins);

    let mut parsed = Parsed::default();
    for (i, doc) in loaded.documents.iter().enumerate() {
        parse_document(&mut sink, &mut parsed, &mut origins, i, doc);
    }

    let state = settings.map(|settings| DesiredState {
        settings,
        users: parsed.users.into_iter().collect(),
        roles: parsed.roles.into_iter().collect(),
        service_accounts: parsed.service_accounts.into_iter().collect(),
        data_classifications: parsed.data_classifications.into_iter().collect(),
        authentication_policies: parsed.authentication_policies.into_iter().collect(),
        encryption_policies: parsed.encryption_policies.into_iter().collect(),
        sod_rules: parsed.sod_rules.into_iter().collect(),
    });
    if let Some(state) = &state {
        references::check(&mut sink, &origins, state);
    }
    let mut diagnostics = sink.diags;
    diagnostic::sort(&mut diagnostics);
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    Validated { state: if ok { state } else { None }, origins, diagnostics }
}

#[derive(Default)]
struct Parsed {
    users: Vec<(Name, User)>,
    roles: Vec<(Name, Role)>,
    service_accounts: Vec<(Name, ServiceAccount)>,
    data_classifications: Vec<(Name, DataClassification)>,
    authentication_policies: Vec<(Name, AuthenticationPolicy)>,
    encryption_policies: Vec<(Name, EncryptionPolicy)>,
    sod_rules: Vec<(Name, SodRule)>,
}

/// The scalar value of a top-level `key:` written on a line of its own, if any.
fn sniff_top_level(text: &str, key: &str) -> Option<String> {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let value = rest.split(" #").next().unwrap_or("").trim();
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            if !value.is_empty() {
                return Some(value.to_string());
            }
        }
    }
    None
}

/// Finds `kind:` on a line of its own at the top level; falls back to a full parse for
/// documents written in flow style.
fn sniff_kind(text: &str) -> Result<Option<String>, serde_yaml::Error> {
    if let Some(k) = sniff_top_level(text, "kind") {
        return Ok(Some(k));
    }
    #[derive(serde::Deserialize)]
    struct Header {
        kind: Option<serde_yaml::Value>,
    }
    let header: Header = serde_yaml::from_str(text)?;
    Ok(header.kind.map(|k| match k {
        serde_yaml::Value::String(s) => s,
        other => serde_yaml::to_string(&other).unwrap_or_default().trim().to_string(),
    }))
}

fn parse_document(sink: &mut Sink, parsed: &mut Parsed, origins: &mut Origins, index: usize, doc: &Document) {
    let text = sink.loaded.text(doc);
    let kind_name = match sniff_kind(text) {
        Ok(Some(k)) => k,
        Ok(None) => {
            sink.at(
                doc,
                &[],
                Diagnostic::error("missing-kind", "document has no `kind`")
                    .help(format!("add `kind:` with one of {}", kind_list())),
            );
            return;
        }
        Err(e) => {
            sink.diags.push(serde_diagnostic(sink.loaded, doc, &e));
            return;
        }
    };
    let Some(kind) = Kind::parse(&kind_name) else {
        let mut d = Diagnostic::error("unknown-kind", format!("unknown kind `{kind_name}`")).field("kind");
        d = match closest(&kind_name, Kind::ALL.iter().map(|k| k.as_str())) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("kind must be one of {}", kind_list())),
        };
        sink.at(doc, &["kind".into()], d);
        return;
    };
    macro_rules! take {
        ($ty:ty, $list:ident) => {{
            match parse_as::<$ty>(sink, doc) {
                Some(v) => {
                    let name = v.name.clone();
                    if register(sink, origins, kind, &name, index, doc) {
                        parsed.$list.push((name, v));
                    }
                }
                None => {
                    // Remember the name of a document that failed to parse, so references to it
                    // do not add "not defined" errors on top of the real one.
                    if let Some(name) = sniff_top_level(text, "name").and_then(|n| Name::new(n).ok()) {
                        origins.broken.insert((kind, name));
                    }
                }
            }
        }};
    }
    match kind {
        Kind::User => take!(User, users),
        Kind::Role => take!(Role, roles),
        Kind::ServiceAccount => take!(ServiceAccount, service_accounts),
        Kind::DataClassification => take!(DataClassification, data_classifications),
        Kind::AuthenticationPolicy => take!(AuthenticationPolicy, authentication_policies),
        Kind::EncryptionPolicy => take!(EncryptionPolicy, encryption_policies),
        Kind::SodRule => take!(SodRule, sod_rules),
    }
}

fn kind_list() -> String {
    Kind::ALL.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
}

/// Records where a resource came from; reports a duplicate name.
fn register(sink: &mut Sink, origins: &mut Origins, kind: Kind, name: &Name, index: usize, doc: &Document) -> bool {
    if let Some(first) = origins.map.get(&(kind, name.clone())) {
        let first = doc_location(sink.loaded, &sink.loaded.documents[first.doc], &["name".into()]);
        sink.at(
            doc,
            &["name".into()],
            Diagnostic::error("duplicate-name", format!("{kind} `{name}` is defined twice")).help(format!(
                "the first definition is at {}:{}; names are unique per kind",
                first.file.display(),
                first.line
            )),
        );
        return false;
    }
    origins.map.insert((kind, name.clone()), Origin { doc: index });
    true
}

pub(crate) fn parse_as<T: DeserializeOwned>(sink: &mut Sink, doc: &Document) -> Option<T> {
    match serde_yaml::from_str::<T>(sink.loaded.text(doc)) {
        Ok(v) => Some(v),
        Err(e) => {
            sink.diags.push(serde_diagnostic(sink.loaded, doc, &e));
            None
        }
    }
}

/// Converts a serde_yaml error into a located diagnostic with a hint.
pub(crate) fn serde_diagnostic(loaded: &Loaded, doc: &Document, e: &serde_yaml::Error) -> Diagnostic {
    let raw = strip_marks(&e.to_string());
    // serde_yaml prefixes the path of the failing value: `roles[1]: unknown field ...`.
    let (field, message) = match raw.split_once(": ") {
        Some((p, m)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c)) => {
            (Some(p.to_string()), m.to_string())
        }
        _ => (None, raw.clone()),
    };
    let code = if message.starts_with("unknown field") {
        "unknown-field"
    } else if message.starts_with("missing field") {
        "missing-field"
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        "invalid-type"
    } else if message.starts_with("unknown variant") {
        "unknown-value"
    } else if message.contains("recursion limit") || message.contains("repetition limit") {
        "too-complex"
    } else if e.location().is_some() && field.is_none() && !message.starts_with("invalid") {
        "yaml-syntax"
    } else {
        "invalid-value"
    };
    let mut d = Diagnostic::error(code, message.clone());
    if let Some(f) = &field {
        d = d.field(f.clone());
    }
    d = match code {
        "unknown-field" | "unknown-value" => match suggest(&message) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help("remove it; see the kind's schema in schemas/ for the fields it takes"),
        },
        "missing-field" => d.help("add the field; see docs/configuration.md"),
        "too-complex" => d.help("the document nests too deeply or expands too many aliases; write it out plainly"),
        "yaml-syntax" => d.help("check indentation and quoting on that line"),
        _ => d,
    };
    let (line, column) = match e.location() {
        Some(loc) => (doc.start_line + loc.line() as u32 - 1, loc.column() as u32),
        None => (doc.start_line, 1),
    };
    d.in_file(loaded.path(doc)).at(line, column.max(1))
}

/// Removes serde_yaml's ` at line N column M` marks from a message.
fn strip_marks(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
        let after = &after[digits..];
        rest = match after.strip_prefix(" column ") {
            Some(a) => {
                let d = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                &a[d..]
            }
            None => after,
        };
    }
    out.push_str(rest);
    out
}

/// From "unknown field `emial`, expected one of `a`, `b`" picks the closest expected name.
fn suggest(message: &str) -> Option<String> {
    let mut parts = message.split('`');
    parts.next()?;
    let got = parts.next()?;
    let candidates: Vec<&str> = parts.skip(1).step_by(2).collect();
    closest(got, candidates.into_iter())
}

/// The candidate most like `got`, if any is close enough to be a likely typo.
pub(crate) fn closest<'a>(got: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let got_l = got.to_ascii_lowercase();
    candidates
        .map(|c| (strsim::jaro_winkler(&got_l, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// The audit log's path when keyward.yaml does not name one.
pub fn settings_audit_path() -> &'static str {
    settings::DEFAULT_AUDIT_PATH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_marks() {
        assert_eq!(strip_marks("bad at line 3 column 5, while x at line 1 column 1"), "bad, while x");
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(suggest("unknown field `emial`, expected one of `email`, `name`").as_deref(), Some("email"));
        assert_eq!(suggest("unknown field `zzz`, expected one of `email`, `name`"), None);
    }
}
