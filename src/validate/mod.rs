//! Turning loaded documents into the validated [`DesiredState`].
//!
//! Guarantees: every problem found is reported (one structural error per document, then every
//! reference, duplicate and setting problem), each with file, line, field and a hint; a state
//! is returned only when there is no error. No network, no secret resolution.

mod contents;
mod governance;
mod hints;
mod limits;
mod live;
mod references;
mod settings;
pub use live::{application_ids, members_decided};
pub use settings::{SecretUse, check_secrets, check_secrets_against_uses};

use std::collections::HashMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::diagnostic::{self, Diagnostic};
use crate::load::locate::{DisplayPath, children_with_value, key_positions};
use crate::load::{Document, Loaded, PathSeg, locate};
use crate::model::{
    AuthenticationPolicy, Campaign, Certification, DataClassification, DesiredState, EncryptionPolicy, Kind, Name,
    Role, ServiceAccount, SodRule, User,
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
    /// Resources whose kind and name are known but which have errors, with their document.
    broken: HashMap<(Kind, Name), usize>,
    settings: Option<usize>,
}

impl Origins {
    pub fn get(&self, kind: Kind, name: &Name) -> Option<Origin> {
        self.map.get(&(kind, name.clone())).copied()
    }

    /// Whether a document of this kind and name exists but failed to parse.
    pub fn is_broken(&self, kind: Kind, name: &Name) -> bool {
        self.broken.contains_key(&(kind, name.clone()))
    }

    /// The file of a resource that has errors (see [`Origins::is_broken`]).
    pub fn broken_file<'l>(&self, loaded: &'l Loaded, kind: Kind, name: &Name) -> Option<&'l std::path::Path> {
        let doc = *self.broken.get(&(kind, name.clone()))?;
        Some(loaded.path(&loaded.documents[doc]))
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
    /// Every secret reference of keyward.yaml, where it is.
    pub secret_uses: Vec<SecretUse>,
}

impl Validated {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// At most this many problems are reported per document, and in all; the rest are counted.
/// Locating a problem re-reads its document, so a generated or hostile file with a million
/// problems would otherwise make validation take hours.
pub(crate) const MAX_PER_DOCUMENT: usize = 20;
pub(crate) const MAX_REPORTED: usize = 200;

/// Collects diagnostics, attaching file and line.
pub(crate) struct Sink<'a> {
    pub loaded: &'a Loaded,
    pub diags: Vec<Diagnostic>,
    /// Problems reported through [`Sink::at`], by document (file and first byte), and in all.
    reported: HashMap<(crate::load::FileId, usize), usize>,
    reported_total: usize,
    /// Errors and warnings not reported because of the limits.
    dropped: (usize, usize),
    /// Every secret reference of keyward.yaml, where it is.
    pub secret_uses: Vec<settings::SecretUse>,
}

impl<'a> Sink<'a> {
    fn new(loaded: &'a Loaded) -> Self {
        Sink {
            loaded,
            diags: loaded.diagnostics.clone(),
            reported: HashMap::new(),
            reported_total: 0,
            dropped: (0, 0),
            secret_uses: Vec::new(),
        }
    }

    /// Whether another problem in `doc` is reported. When not, callers can skip building the
    /// diagnostic (finding a "did you mean" is costly) and call [`Sink::drop_one`] instead.
    pub fn accepts(&self, doc: &Document) -> bool {
        self.reported_total < MAX_REPORTED
            && self.reported.get(&(doc.file, doc.span.start)).is_none_or(|n| *n < MAX_PER_DOCUMENT)
    }

    /// Counts a problem that is not reported.
    pub fn drop_one(&mut self, level: crate::diagnostic::Level) {
        match level {
            crate::diagnostic::Level::Error => self.dropped.0 += 1,
            crate::diagnostic::Level::Warning => self.dropped.1 += 1,
        }
    }

    pub fn at(&mut self, doc: &Document, path: &[PathSeg], diag: Diagnostic) {
        if !self.accepts(doc) {
            self.drop_one(diag.level);
            return;
        }
        *self.reported.entry((doc.file, doc.span.start)).or_default() += 1;
        self.reported_total += 1;
        let loc = doc_location(self.loaded, doc, path);
        let mut diag = diag.in_file(loc.file).at(loc.line, loc.column);
        if !path.is_empty() && diag.field.is_none() {
            diag.field = Some(crate::load::locate::DisplayPath(path).to_string());
        }
        self.diags.push(diag);
    }
}

/// The settings of `keyward.yaml` alone, when they are valid: enough to open the targets while
/// the resources are still being validated. [`validate`] reports their problems.
pub fn settings_of(loaded: &Loaded) -> Option<crate::model::Settings> {
    let mut sink = Sink::new(loaded);
    let settings = settings::resolve(&mut sink, &mut Origins::default());
    settings.filter(|_| !sink.diags.iter().any(Diagnostic::is_error))
}

/// Validates a loaded configuration.
pub fn validate(loaded: &Loaded) -> Validated {
    let mut sink = Sink::new(loaded);
    let mut origins = Origins::default();

    let settings = settings::resolve(&mut sink, &mut origins);

    let results = parse_all(loaded);
    let mut parsed = Parsed::default();
    // Sized up front: growing a vector of 100,000 users by doubling copies it several times.
    parsed
        .users
        .reserve(results.iter().filter(|r| matches!(r, DocResult::Ok(r) if matches!(**r, Resource::User(_)))).count());
    for (i, (doc, result)) in loaded.documents.iter().zip(results).enumerate() {
        register_document(&mut sink, &mut parsed, &mut origins, i, doc, result);
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
        campaigns: parsed.campaigns.into_iter().collect(),
        certifications: parsed.certifications.into_iter().collect(),
    });
    if let Some(state) = &state {
        references::check(&mut sink, &origins, state);
        governance::check(&mut sink, &origins, state);
        contents::check(&mut sink, &origins, state);
    }
    let secret_uses = std::mem::take(&mut sink.secret_uses);
    let mut diagnostics = sink.diags;
    diagnostic::sort(&mut diagnostics);
    let (errors, warnings) = sink.dropped;
    if errors + warnings > 0 {
        let message =
            format!("{} more problems are not shown ({errors} errors, {warnings} warnings)", errors + warnings);
        let d = if errors > 0 {
            Diagnostic::error("too-many-problems", message)
        } else {
            Diagnostic::warning("too-many-problems", message)
        };
        diagnostics.push(d.help(format!(
            "keyward shows at most {MAX_PER_DOCUMENT} problems per document and {MAX_REPORTED} in all; fix these and validate again"
        )));
    }
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    Validated { state: if ok { state } else { None }, origins, diagnostics, secret_uses }
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
    campaigns: Vec<(Name, Campaign)>,
    certifications: Vec<(Name, Certification)>,
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
        kind: Option<Scalar>,
    }
    let header: Header = serde_yaml::from_str(text)?;
    Ok(header.kind.map(|k| k.0))
}

/// A scalar written as text. Unlike `serde_yaml::Value`, it refuses a list or mapping before
/// reading it, so `kind: *bomb` cannot expand an alias bomb into memory.
struct Scalar(String);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a kind such as `User`")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A resource of any kind, as parsed.
enum Resource {
    User(User),
    Role(Role),
    ServiceAccount(ServiceAccount),
    DataClassification(DataClassification),
    AuthenticationPolicy(AuthenticationPolicy),
    EncryptionPolicy(EncryptionPolicy),
    SodRule(SodRule),
    Campaign(Campaign),
    Certification(Certification),
}

/// What parsing one document gave: a resource, or its problems.
enum DocResult {
    Ok(Box<Resource>),
    Failed {
        /// A document of a known kind whose name could be read, so references to it are not
        /// reported on top of the real problem.
        broken: Option<(Kind, Name)>,
        /// Diagnostics already located (serde and limit errors).
        located: Vec<Diagnostic>,
        /// Diagnostics still to be located at a path, subject to the reporting limits.
        pending: Vec<(Vec<PathSeg>, Diagnostic)>,
    },
}

/// Parses every document, on as many threads as there are cores; results are in document
/// order, so what is reported does not depend on scheduling.
fn parse_all(loaded: &Loaded) -> Vec<DocResult> {
    let docs = &loaded.documents;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
    // Small configurations are not worth a thread.
    if threads == 1 || docs.len() < 2_000 {
        return docs.iter().map(|d| parse_one(loaded, d)).collect();
    }
    let chunk = docs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = docs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|d| parse_one(loaded, d)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("parsing never panics")).collect()
    })
}

fn failed(located: Vec<Diagnostic>, pending: Vec<(Vec<PathSeg>, Diagnostic)>) -> DocResult {
    DocResult::Failed { broken: None, located, pending }
}

/// Parses one document; pure, so documents can be parsed in parallel.
fn parse_one(loaded: &Loaded, doc: &Document) -> DocResult {
    if let Some(d) = limits_diagnostic(loaded, doc) {
        return failed(vec![d], vec![]);
    }
    let text = loaded.text(doc);
    let kind_name = match sniff_kind(text) {
        Ok(Some(k)) => k,
        Ok(None) => {
            let d = Diagnostic::error("missing-kind", "document has no `kind`")
                .help(format!("add `kind:` with one of {}", kind_list()));
            return failed(vec![], vec![(vec![], d)]);
        }
        Err(e) => return failed(vec![serde_diagnostic(loaded, doc, &e)], vec![]),
    };
    let Some(kind) = Kind::parse(&kind_name) else {
        let mut d = Diagnostic::error("unknown-kind", format!("unknown kind `{kind_name}`")).field("kind");
        d = match closest(&kind_name, Kind::ALL.iter().map(|k| k.as_str())) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("kind must be one of {}", kind_list())),
        };
        return failed(vec![], vec![(vec!["kind".into()], d)]);
    };
    fn parse<T: DeserializeOwned>(
        loaded: &Loaded,
        doc: &Document,
        f: fn(T) -> Resource,
    ) -> Result<Resource, Box<Diagnostic>> {
        serde_yaml::from_str::<T>(loaded.text(doc)).map(f).map_err(|e| Box::new(serde_diagnostic(loaded, doc, &e)))
    }
    let result = match kind {
        Kind::User => parse(loaded, doc, Resource::User),
        Kind::Role => parse(loaded, doc, Resource::Role),
        Kind::ServiceAccount => parse(loaded, doc, Resource::ServiceAccount),
        Kind::DataClassification => parse(loaded, doc, Resource::DataClassification),
        Kind::AuthenticationPolicy => parse(loaded, doc, Resource::AuthenticationPolicy),
        Kind::EncryptionPolicy => parse(loaded, doc, Resource::EncryptionPolicy),
        Kind::SodRule => parse(loaded, doc, Resource::SodRule),
        Kind::Campaign => parse(loaded, doc, Resource::Campaign),
        Kind::Certification => parse(loaded, doc, Resource::Certification),
    };
    match result {
        Ok(r) => DocResult::Ok(Box::new(r)),
        Err(d) => DocResult::Failed {
            broken: sniff_top_level(text, "name").and_then(|n| Name::new(n).ok()).map(|n| (kind, n)),
            located: vec![*d],
            pending: vec![],
        },
    }
}

/// Records a parsed document (in document order): its resource, or its problems.
fn register_document(
    sink: &mut Sink,
    parsed: &mut Parsed,
    origins: &mut Origins,
    index: usize,
    doc: &Document,
    result: DocResult,
) {
    let resource = match result {
        DocResult::Ok(r) => *r,
        DocResult::Failed { broken, located, pending } => {
            if let Some(b) = broken {
                origins.broken.insert(b, index);
            }
            sink.diags.extend(located);
            for (path, d) in pending {
                sink.at(doc, &path, d);
            }
            return;
        }
    };
    macro_rules! take {
        ($v:expr, $kind:expr, $list:ident) => {{
            let v = $v;
            let name = v.name.clone();
            if register(sink, origins, $kind, &name, index, doc) {
                parsed.$list.push((name, v));
            }
        }};
    }
    match resource {
        Resource::User(v) => take!(v, Kind::User, users),
        Resource::Role(v) => take!(v, Kind::Role, roles),
        Resource::ServiceAccount(v) => take!(v, Kind::ServiceAccount, service_accounts),
        Resource::DataClassification(v) => take!(v, Kind::DataClassification, data_classifications),
        Resource::AuthenticationPolicy(v) => take!(v, Kind::AuthenticationPolicy, authentication_policies),
        Resource::EncryptionPolicy(v) => take!(v, Kind::EncryptionPolicy, encryption_policies),
        Resource::SodRule(v) => take!(v, Kind::SodRule, sod_rules),
        Resource::Campaign(v) => take!(v, Kind::Campaign, campaigns),
        Resource::Certification(v) => take!(v, Kind::Certification, certifications),
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

/// Checks a document against [`limits`] before serde_yaml reads it; reports it when it fails.
pub(crate) fn within_limits(sink: &mut Sink, doc: &Document) -> bool {
    match limits_diagnostic(sink.loaded, doc) {
        None => true,
        Some(d) => {
            sink.diags.push(d);
            false
        }
    }
}

/// The located diagnostic for a document over the [`limits`], if it is.
fn limits_diagnostic(loaded: &Loaded, doc: &Document) -> Option<Diagnostic> {
    let (code, message, help, (line, column)) = match limits::check(loaded.text(doc)) {
        Ok(()) => return None,
        Err(limits::Exceeded::TooLarge { indicators }) => (
            "too-complex",
            format!(
                "document is too large to check: about {indicators} list and mapping entries, over the limit of {}",
                limits::MAX_INDICATORS
            ),
            "split it into several documents (`---`) or files; a resource this large is usually generated by mistake"
                .to_string(),
            (1, 1),
        ),
        Err(limits::Exceeded::TooDeep { line, column }) => {
            let (message, help) = hints::too_complex("recursion limit exceeded");
            ("too-complex", message, help, (line, column))
        }
        Err(limits::Exceeded::Aliases { line, column, .. }) => (
            "too-complex",
            format!(
                "aliases (`*name`) would make this document more than {} times larger (an alias bomb?)",
                limits::MAX_ALIAS_GROWTH
            ),
            "write the values out instead of aliasing them".to_string(),
            (line, column),
        ),
        Err(limits::Exceeded::Syntax { message, line, column }) => {
            let s = hints::syntax(&message, &message, false);
            ("yaml-syntax", s.message, s.help, (line, column))
        }
    };
    Some(
        Diagnostic::error(code, message)
            .help(help)
            .in_file(loaded.path(doc))
            .at(doc.start_line + line.max(1) - 1, column.max(1)),
    )
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
    let full = e.to_string();
    let raw = strip_marks(&full);
    // serde_yaml prefixes the path of the failing value: `roles[1]: unknown field ...`.
    let (mut field, mut message) = match raw.split_once(": ") {
        Some((p, m)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c)) => {
            (Some(p.to_string()), m.to_string())
        }
        _ => (None, raw.clone()),
    };
    let code = if message.starts_with("unknown field") {
        "unknown-field"
    } else if message.starts_with("missing field") {
        "missing-field"
    } else if message.starts_with("duplicate field") {
        "duplicate-field"
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
    // Line and column within the document.
    let (mut line, mut column) = e.location().map_or((1, 1), |loc| (loc.line() as u32, loc.column() as u32));
    let help = match code {
        "unknown-field" => Some(match suggest(&message) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "remove it; see the kind's schema in schemas/ for the fields it takes".to_string(),
        }),
        "unknown-value" => {
            message = message.replacen("unknown variant", "unknown value", 1);
            Some(match suggest(&message) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "use one of the values listed".to_string(),
            })
        }
        "missing-field" => Some("add the field; see docs/configuration.md".to_string()),
        "duplicate-field" => {
            // Reported at the enclosing mapping; show the second time the key is written.
            let parent = hints::parse_path(field.as_deref().unwrap_or(""));
            if let Some(key) = message.split('`').nth(1)
                && let Some(&(l, c)) = key_positions(loaded.text(doc), &parent, key).get(1)
            {
                (line, column) = (l, c);
                field = Some(DisplayPath(&[parent, vec![key.into()]].concat()).to_string());
            }
            Some("a key may appear only once in a mapping; remove one of them".to_string())
        }
        "too-complex" => {
            let (m, h) = hints::too_complex(&message);
            message = m;
            Some(h)
        }
        "yaml-syntax" => {
            let at_end = line as usize > loaded.text(doc).lines().count();
            let s = hints::syntax(&full, &message, at_end);
            (line, column) = s.at.unwrap_or((line, column));
            message = s.message;
            Some(s.help)
        }
        "invalid-type" => Some(hints::type_help(&message)),
        _ => {
            // A value check (name, date, duration) fails after serde_yaml has read the value, so
            // serde_yaml places it at the enclosing mapping or list; find the value itself.
            if let Some(value) = hints::quoted_value(&message) {
                let parent = hints::parse_path(field.as_deref().unwrap_or(""));
                if let [(seg, l, c)] = children_with_value(loaded.text(doc), &parent, &value).as_slice() {
                    let mut path = parent;
                    path.push(seg.clone());
                    field = Some(DisplayPath(&path).to_string());
                    (line, column) = (*l, *c);
                }
            }
            hints::value_help(&message)
        }
    };
    let mut d = Diagnostic::error(code, message);
    if let Some(f) = field {
        d = d.field(f);
    }
    if let Some(h) = help {
        d = d.help(h);
    }
    d.in_file(loaded.path(doc)).at(doc.start_line + line.max(1) - 1, column.max(1))
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

pub use governance::{is_github_login, is_github_team};

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

    fn validate_files(files: &[(&str, String)]) -> Validated {
        let mut loaded = Loaded::default();
        loaded
            .add_file("keyward.yaml".into(), b"version: 1\ntargets: {dir: {provider: file, path: d.json}}\n".to_vec());
        for (path, text) in files {
            loaded.add_file(path.into(), text.clone().into_bytes());
        }
        validate(&loaded.finish().expect("has settings"))
    }

    fn codes(v: &Validated) -> Vec<&str> {
        v.diagnostics.iter().map(|d| d.code).collect()
    }

    /// Regression: `kind` was read as a `serde_yaml::Value`, which expands aliases; a 38 KB
    /// document aliasing a 10,000-item list a million times ran out of memory. serde_yaml's
    /// repetition limit counts alias uses, not the values they expand to.
    #[test]
    fn kind_does_not_expand_aliases() {
        let list = |item: &str, n: usize| format!("[{}]", vec![item; n].join(", "));
        let doc = format!(
            "{{a: &a {},\n b: &b {},\n c: &c {},\n kind: *c}}\n",
            list("x", 10_000),
            list("*a", 1000),
            list("*b", 1000)
        );
        let v = validate_files(&[("users/bomb.yaml", doc)]);
        assert_eq!(codes(&v), ["too-complex"]);
        // Past the limits, `kind` still never reads a list, aliased or not.
        assert!(sniff_kind("{a: &a [x, y], kind: *a}").is_err());
        assert_eq!(sniff_kind("{a: &a User, kind: *a}").ok().flatten().as_deref(), Some("User"));
    }

    /// Regression: 30,000 users in one chain of managers took O(n²) steps to check for cycles.
    #[test]
    fn long_manager_chains_are_checked_in_linear_time() {
        let n = 30_000;
        let mut text = String::new();
        for i in 0..n {
            let manager = if i + 1 < n { format!("manager: u{}\n", i + 1) } else { "manager: u0\n".to_string() };
            text.push_str(&format!("kind: User\nname: u{i}\nuserName: u{i}@example.com\n{manager}---\n"));
        }
        let v = validate_files(&[("users/chain.yaml", text)]);
        assert_eq!(codes(&v), ["manager-cycle"]);
        assert!(v.diagnostics[0].message.starts_with("managers form a cycle: u0 -> u1 -> u2 -> "));
    }

    /// Regression: every problem was located by re-reading its document, so a document with
    /// 100,000 dangling references took hours.
    #[test]
    fn problems_beyond_the_limits_are_counted_not_located() {
        let roles: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
        let doc = format!("kind: User\nname: a\nuserName: a@example.com\nroles: [{}]\n", roles.join(", "));
        let v = validate_files(&[("users/a.yaml", doc)]);
        assert_eq!(v.diagnostics.len(), MAX_PER_DOCUMENT + 1);
        let last = v.diagnostics.last().expect("a summary");
        assert_eq!(
            (last.code, last.message.as_str()),
            ("too-many-problems", "10 more problems are not shown (10 errors, 0 warnings)")
        );
        assert!(last.is_error());
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(suggest("unknown field `emial`, expected one of `email`, `name`").as_deref(), Some("email"));
        assert_eq!(suggest("unknown field `zzz`, expected one of `email`, `name`"), None);
    }
}
