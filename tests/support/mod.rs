//! A temp-folder harness for driving the `keyward` binary end to end.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The fixed "now" the tests plan at, unless a test moves the clock.
pub const NOW: &str = "2026-11-28T12:00:00Z";

/// A private copy of a configuration folder.
pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub now: String,
}

/// What a command printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies a configuration folder, skipping hidden entries (such as a `.keyward` state folder).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

impl Sandbox {
    /// A copy of `examples/<name>`.
    pub fn example(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(name);
        copy_dir(&repo_root().join("examples").join(name), &root);
        Sandbox { _dir: dir, root, now: NOW.to_string() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_keyward"));
        c.args(args)
            .env("KEYWARD_NOW", &self.now)
            .env("KEYWARD_ACTOR", "test-runner")
            .env("NO_COLOR", "1")
            .env_remove("KEYWARD_LOG")
            .stdin(std::process::Stdio::null());
        c
    }

    /// Runs `keyward ARGS`, with the sandbox folder substituted for `{dir}`.
    pub fn run(&self, args: &[&str]) -> Run {
        let dir = self.root.to_string_lossy().into_owned();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &dir)).collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Run::from(self.cmd(&refs).output().unwrap())
    }

    /// [`Sandbox::run`] with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let dir = self.root.to_string_lossy().into_owned();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &dir)).collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = self.cmd(&refs);
        for (k, v) in env {
            c.env(k, v);
        }
        Run::from(c.output().unwrap())
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Replaces `from` with `to` in a file, asserting it was there exactly once.
    #[track_caller]
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert_eq!(text.matches(from).count(), 1, "{from:?} should occur once in {rel}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// The file directory's JSON document.
    pub fn directory(&self) -> Value {
        serde_json::from_str(&self.read(".keyward/directory.json")).unwrap()
    }

    pub fn set_directory(&self, v: &Value) {
        self.write(".keyward/directory.json", &serde_json::to_string_pretty(v).unwrap());
    }

    /// The plan as JSON.
    pub fn plan_json(&self) -> Value {
        let r = self.run(&["plan", "{dir}", "--format", "json"]);
        r.expect(0);
        r.json()
    }

    /// Applies with --auto-approve and asserts success.
    pub fn apply_ok(&self) {
        self.run(&["apply", "{dir}", "--auto-approve"]).expect(0);
    }
}

/// The (address, action) pairs of a plan's changes.
pub fn changes(plan: &Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["address"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect()
}

/// Finds a user object in the directory document by userName.
pub fn find_user<'a>(dir: &'a mut Value, user_name: &str) -> &'a mut Value {
    dir["users"].as_array_mut().unwrap().iter_mut().find(|u| u["userName"] == user_name).expect("user in directory")
}

pub fn find_group<'a>(dir: &'a mut Value, name: &str) -> &'a mut Value {
    dir["groups"].as_array_mut().unwrap().iter_mut().find(|g| g["name"] == name).expect("group in directory")
}
