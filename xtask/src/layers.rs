//! `cargo xtask layers`: the library's modules depend on each other in one direction only.
//!
//! Every `crate::MODULE` path in `src/` (in `use` items, in code, and inside macro calls) is an
//! edge from the top-level module whose file it is in to `MODULE`. Each top-level module has a
//! layer in [`LAYERS`]; an edge must point to a strictly lower layer, so there is no cycle and
//! nothing reaches up the flow cli → engine → (load, validate, provider, plan, policy, apply,
//! audit, output) → model. Code under `#[cfg(test)]` is not counted: a test may build its input
//! with any module. A new top-level module must be given a layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The top-level modules of `src/`, lowest layer first. A module may use only modules of lower
/// layers.
pub const LAYERS: &[(&str, u8)] = &[
    // The typed desired and live state and its vocabulary: no IO.
    ("model", 0),
    ("atomic", 1),
    ("diagnostic", 1),
    ("remote", 1),
    ("audit", 1),
    ("schema", 1),
    ("load", 2),
    ("credential", 2),
    ("state", 2),
    ("plan", 2),
    ("adopt", 2),
    ("history", 2),
    ("validate", 3),
    ("provider", 3),
    ("policy", 4),
    ("apply", 4),
    ("review", 5),
    ("explain", 5),
    // Owners, approvals, campaigns and elevation: decisions over the review and the policies.
    ("governance", 6),
    ("report", 7),
    ("output", 7),
    // The reconcile pipeline as a library.
    ("engine", 8),
    // Arguments, exit codes and printing; and the fuzz properties, which drive everything.
    ("cli", 9),
    ("fuzzing", 9),
];

/// One `crate::` reference that crosses a top-level module boundary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub file: PathBuf,
}

/// Every edge between top-level modules in the `src/` folder at `src`.
pub fn edges(src: &Path) -> Result<Vec<Edge>, String> {
    let mut out = BTreeSet::new();
    for file in rust_files(src)? {
        let rel = file.strip_prefix(src).expect("below src");
        let Some(from) = top_module(rel) else { continue };
        let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let parsed = syn::parse_file(&text).map_err(|e| format!("cannot parse {}: {e}", file.display()))?;
        let mut v = Refs::default();
        v.visit_file(&parsed);
        for to in v.modules {
            if to != from {
                out.insert(Edge { from: from.clone(), to, file: rel.to_path_buf() });
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The problems: edges to a module of the same or a higher layer, and modules without a layer.
pub fn problems(edges: &[Edge]) -> Vec<String> {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut out = Vec::new();
    let mut unknown = BTreeSet::new();
    for e in edges {
        match (layer.get(e.from.as_str()), layer.get(e.to.as_str())) {
            (Some(f), Some(t)) if t < f => {}
            (Some(f), Some(t)) => out.push(format!(
                "{}: `{}` (layer {f}) uses `{}` (layer {t}); a module may use only lower layers",
                e.file.display(),
                e.from,
                e.to
            )),
            (f, t) => {
                if f.is_none() {
                    unknown.insert(e.from.clone());
                }
                if t.is_none() {
                    unknown.insert(e.to.clone());
                }
            }
        }
    }
    for m in unknown {
        out.push(format!("module `{m}` has no layer: give it one in xtask/src/layers.rs"));
    }
    out
}

/// `cargo xtask layers`: prints the edges and fails on a problem.
pub fn run(root: &Path) -> Result<(), String> {
    let edges = edges(&root.join("src"))?;
    let mut pairs: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in &edges {
        *pairs.entry((e.from.as_str(), e.to.as_str())).or_default() += 1;
    }
    println!("    {} module edges ({} files):", pairs.len(), edges.len());
    for ((from, to), files) in &pairs {
        println!("      {from} -> {to} ({files} file{})", if *files == 1 { "" } else { "s" });
    }
    let problems = problems(&edges);
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        eprintln!("    {p}");
    }
    Err(format!("{} module layering problem(s)", problems.len()))
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("cannot list {}: {e}", d.display()))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The top-level module a file belongs to: `model` for `model.rs` and `model/**`; none for
/// the crate roots.
fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The modules a file names as `crate::MODULE`.
#[derive(Default)]
struct Refs {
    modules: BTreeSet<String>,
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>().is_ok_and(|m| matches!(m, syn::Meta::Path(p) if p.is_ident("test")))
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        Fn(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        Type(i) => &i.attrs,
        Use(i) => &i.attrs,
        Macro(i) => &i.attrs,
        _ => &[],
    }
}

impl Refs {
    fn use_tree(&mut self, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => self.modules.extend(first_name(&p.tree)),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t);
                }
            }
            _ => {}
        }
    }

    fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let list: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
        for (i, t) in list.iter().enumerate() {
            match t {
                proc_macro2::TokenTree::Group(g) => self.tokens(g.stream()),
                proc_macro2::TokenTree::Ident(id) if id == "crate" => {
                    if let (
                        Some(proc_macro2::TokenTree::Punct(a)),
                        Some(proc_macro2::TokenTree::Punct(b)),
                        Some(proc_macro2::TokenTree::Ident(m)),
                    ) = (list.get(i + 1), list.get(i + 2), list.get(i + 3))
                        && a.as_char() == ':'
                        && b.as_char() == ':'
                    {
                        self.modules.insert(m.to_string());
                    }
                }
                _ => {}
            }
        }
    }
}

/// The names a `use crate::…` tree starts with, after `crate::`.
fn first_name(tree: &syn::UseTree) -> Vec<String> {
    match tree {
        syn::UseTree::Path(p) => vec![p.ident.to_string()],
        syn::UseTree::Name(n) => vec![n.ident.to_string()],
        syn::UseTree::Rename(r) => vec![r.ident.to_string()],
        syn::UseTree::Group(g) => g.items.iter().flat_map(first_name).collect(),
        syn::UseTree::Glob(_) => vec![],
    }
}

impl<'ast> Visit<'ast> for Refs {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test_only(item_attrs(item)) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if let syn::UseTree::Path(p) = &item.tree
            && p.ident == "crate"
        {
            self.use_tree(&item.tree);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments = path.segments.iter();
        if let (Some(first), Some(second)) = (segments.next(), segments.next())
            && first.ident == "crate"
        {
            self.modules.insert(second.ident.to_string());
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> BTreeSet<String> {
        let mut v = Refs::default();
        v.visit_file(&syn::parse_file(text).unwrap());
        v.modules
    }

    #[test]
    fn finds_every_form_of_crate_path() {
        let found = refs(
            "use crate::model::Name;\n\
             use crate::{plan::{self, Change}, provider};\n\
             fn f() { crate::audit::append(); let x: crate::load::Loaded = todo!(); }\n\
             fn g() { format!(\"{}\", crate::output::render()); }\n\
             #[cfg(test)] mod tests { use crate::validate::validate; }\n\
             /// [`crate::review::Report`] in a doc comment is no edge.\n\
             fn h() {}",
        );
        let want: BTreeSet<String> =
            ["model", "plan", "provider", "audit", "load", "output"].into_iter().map(String::from).collect();
        assert_eq!(found, want);
    }

    #[test]
    fn an_upward_edge_and_an_unknown_module_are_problems() {
        let e = |from: &str, to: &str| Edge { from: from.into(), to: to.into(), file: PathBuf::from("x.rs") };
        assert!(problems(&[e("plan", "model"), e("cli", "engine")]).is_empty());
        let p = problems(&[e("model", "plan"), e("plan", "plan2"), e("provider", "validate")]);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("`model` (layer 0) uses `plan`"), "{p:?}");
        assert!(p.iter().any(|m| m.contains("module `plan2` has no layer")), "{p:?}");
    }

    /// The check itself, over this repository's `src/`.
    #[test]
    fn the_library_has_no_upward_edge() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src");
        let edges = edges(&src).unwrap();
        assert!(edges.len() > 20, "found only {} edges: is src/ read?", edges.len());
        let problems = problems(&edges);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
