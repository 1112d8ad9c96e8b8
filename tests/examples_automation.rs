//! The ready-to-use automation in examples/github and examples/kubernetes: every file is valid
//! YAML, and every `keyward ...` invocation in it names only subcommands and long flags that the
//! command line has (checked against clap's command tree, so a renamed flag breaks this test
//! rather than a user's pipeline).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use keyward::cli::Cli;

fn example_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = Vec::new();
    for dir in ["github", "kubernetes"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("examples/{dir}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "examples/{dir} holds no YAML");
        out.extend(files);
    }
    out
}

fn documents(path: &Path) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
        })
        .collect()
}

/// Splits a shell line into words, keeping quoted parts together and splitting off `;`.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() || c == ';' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                if c == ';' {
                    words.push(";".into());
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

const SEPARATORS: &[&str] = &["&&", "||", "|", ";", "then", "do", "else", "!", "time", "exec"];

/// Every `keyward ...` invocation in a shell script: `keyward` in command position, up to the
/// next operator or redirection.
fn invocations_in_script(script: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in script.lines() {
        let words = shell_words(line);
        for (i, w) in words.iter().enumerate() {
            let command_position = i == 0 || SEPARATORS.contains(&words[i - 1].as_str());
            // A bare `keyward` (a name, not a command) is not an invocation.
            if w == "keyward" && command_position && i + 1 < words.len() {
                let args: Vec<String> = words[i + 1..]
                    .iter()
                    .take_while(|w| !SEPARATORS.contains(&w.as_str()) && !w.starts_with('>') && !w.starts_with("2>"))
                    .cloned()
                    .collect();
                out.push(args);
            }
        }
    }
    out
}

/// Walks a YAML value: script strings, and containers whose image is keyward (their `args`).
fn collect(value: &serde_yaml::Value, out: &mut Vec<Vec<String>>) {
    match value {
        serde_yaml::Value::String(s) => out.extend(invocations_in_script(s)),
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| collect(v, out)),
        serde_yaml::Value::Mapping(map) => {
            let image = map.get("image").and_then(|v| v.as_str()).unwrap_or_default();
            if image.rsplit('/').next().is_some_and(|last| last.starts_with("keyward:") || last == "keyward") {
                let mut args: Vec<String> = map
                    .get("command")
                    .and_then(|v| v.as_sequence())
                    .map(|s| s.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                if args.first().is_some_and(|a| a == "keyward") {
                    args.remove(0);
                }
                if let Some(seq) = map.get("args").and_then(|v| v.as_sequence()) {
                    args.extend(seq.iter().filter_map(|v| v.as_str().map(String::from)));
                }
                assert!(!args.is_empty(), "a keyward container without args");
                out.push(args);
            }
            for (_, v) in map {
                collect(v, out);
            }
        }
        _ => {}
    }
}

/// Checks one invocation's words against the command tree; returns the problems.
fn check(args: &[String]) -> Vec<String> {
    let root = Cli::command();
    let globals: Vec<clap::Arg> = root.get_arguments().filter(|a| a.is_global_set()).cloned().collect();
    let mut path = vec![root.clone()];
    let mut problems = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        let cmd = path.last().unwrap().clone();
        i += 1;
        if let Some(flag) = word.strip_prefix("--") {
            let (name, inline_value) = match flag.split_once('=') {
                Some((n, _)) => (n, true),
                None => (flag, false),
            };
            if name == "help" || name == "version" {
                continue;
            }
            let arg = cmd.get_arguments().chain(globals.iter()).find(|a| a.get_long() == Some(name));
            match arg {
                None => problems.push(format!("`keyward {}` has no flag --{name}", command_path(&path))),
                Some(a) => {
                    if a.get_action().takes_values() && !inline_value {
                        i += 1;
                    }
                }
            }
            continue;
        }
        if word.starts_with('-') && word.len() > 1 {
            continue;
        }
        if cmd.has_subcommands() {
            match cmd.find_subcommand(word) {
                Some(sub) => path.push(sub.clone()),
                None => {
                    problems.push(format!("`keyward {}` has no subcommand `{word}`", command_path(&path)));
                    return problems;
                }
            }
        }
    }
    if path.last().unwrap().has_subcommands() {
        problems.push(format!("`keyward {}` needs a subcommand", command_path(&path)));
    }
    problems
}

fn command_path(path: &[clap::Command]) -> String {
    path.iter().skip(1).map(|c| c.get_name().to_string()).collect::<Vec<_>>().join(" ")
}

#[test]
fn examples_are_valid_yaml() {
    for f in example_files() {
        let docs = documents(&f);
        assert!(!docs.is_empty(), "{} holds no documents", f.display());
        for d in &docs {
            assert!(d.is_mapping(), "{}: every document is a mapping", f.display());
        }
    }
}

#[test]
fn example_invocations_name_existing_commands_and_flags() {
    let mut problems = Vec::new();
    let mut seen = 0;
    for f in example_files() {
        let mut found = Vec::new();
        for d in documents(&f) {
            collect(&d, &mut found);
        }
        let name = f.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&f).display().to_string();
        assert!(!found.is_empty() || name.contains("namespace"), "{name}: no keyward invocation found");
        seen += found.len();
        for args in found {
            for p in check(&args) {
                problems.push(format!("{name}: `keyward {}`: {p}", args.join(" ")));
            }
        }
    }
    assert!(seen >= 5, "found only {seen} invocations");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_rejects_unknown_commands_and_flags() {
    let words = |s: &str| invocations_in_script(s).remove(0);
    assert!(check(&words("keyward plan --format markdown --out plan.json .")).is_empty());
    assert!(check(&words("keyward --color never audit verify --log x.jsonl")).is_empty());
    assert!(!check(&words("keyward plna .")).is_empty());
    assert!(!check(&words("keyward plan --formt json")).is_empty());
    assert!(!check(&words("keyward audit")).is_empty());
    // `keyward` as an argument of another command is not an invocation.
    assert!(invocations_in_script("cargo install keyward --locked").is_empty());
    assert_eq!(invocations_in_script("set -e; keyward validate . > out.txt")[0], vec!["validate", "."]);
}
