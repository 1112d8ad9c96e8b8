//! The change-feed state `keyward drift` stores between runs (`.keyward/feeds.json` with the
//! default local state backend), for the tests of drift through the feed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::Sandbox;

/// Where the local state backend keeps it.
pub fn path(sb: &Sandbox) -> PathBuf {
    sb.root.join(".keyward/feeds.json")
}

/// The stored document.
pub fn document(sb: &Sandbox) -> Value {
    let text = std::fs::read_to_string(path(sb)).expect("feeds.json is stored");
    serde_json::from_str(&text).expect("feeds.json parses")
}

pub fn write(sb: &Sandbox, doc: &Value) {
    std::fs::write(path(sb), serde_json::to_vec(doc).unwrap()).unwrap();
}

/// The cursor stored for `target`, by key.
#[track_caller]
pub fn cursor(sb: &Sandbox, target: &str) -> BTreeMap<String, String> {
    let doc = document(sb);
    serde_json::from_value(doc["targets"][target]["cursor"].clone())
        .unwrap_or_else(|e| panic!("a cursor for {target} ({e}): {doc}"))
}

/// Replaces part `key` of the cursor stored for `target` with `value`.
#[track_caller]
pub fn edit_cursor(sb: &Sandbox, target: &str, key: &str, value: &str) {
    let mut doc = document(sb);
    let shown = doc.to_string();
    let cursor = doc["targets"][target]["cursor"].as_object_mut().unwrap_or_else(|| panic!("a cursor: {shown}"));
    assert!(cursor.contains_key(key), "{key} in {cursor:?}");
    cursor.insert(key.into(), Value::String(value.into()));
    write(sb, &doc);
}
