//! Values from outside (live userNames, configuration text) reach no terminal, comment or
//! webhook raw: no escape sequence, bidi override or forged line.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Run, Sandbox, find_user};

const CLEAR: &str = "evil\x1b[2J\u{202e}@northwind.example";
const FORGE: &str = "forge\nPlan: 0 to add, 0 to change@northwind.example";

/// Adds two live accounts in scope that git does not know, copied from janet.leverling.
fn hostile_live_users(sb: &Sandbox, names: &[&str]) {
    let mut dir = sb.directory();
    let janet = find_user(&mut dir, "janet.leverling@northwind.example").clone();
    for (i, name) in names.iter().enumerate() {
        let mut u = janet.clone();
        u["id"] = Value::from(format!("u-hostile-{i}"));
        u["userName"] = Value::from(*name);
        u["displayName"] = Value::from(format!("Mallory\x1b]0;title\x07\u{2066}{i}"));
        u["email"] = Value::from(*name);
        dir["users"].as_array_mut().unwrap().push(u);
    }
    sb.set_directory(&dir);
}

#[track_caller]
fn assert_nothing_raw(what: &str, run: &Run) {
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        for bad in ['\x1b', '\x07', '\u{202e}', '\u{2066}', '\u{85}', '\u{9b}'] {
            assert!(!text.contains(bad), "{what} {stream} holds {bad:?} raw:\n{text}");
        }
        assert!(!text.contains("\nPlan: 0 to add"), "{what} {stream} holds a forged line:\n{text}");
    }
}

#[test]
fn live_user_names_with_escapes_and_line_breaks_reach_no_terminal_raw() {
    let sb = Sandbox::example("quickstart");
    sb.apply_ok();
    hostile_live_users(&sb, &[CLEAR, FORGE]);

    let plan = sb.run(&["plan", "{dir}"]);
    plan.expect(0);
    assert_nothing_raw("plan", &plan);
    assert!(plan.stdout.contains("directory.user.evil\\u{1b}[2J\\u{202e}@northwind.example"), "{}", plan.stdout);
    assert!(plan.stdout.contains("directory.user.forge\\u{a}Plan: 0 to add"), "{}", plan.stdout);
    let rendered = &plan.stdout[..plan.stdout.find("\nPlan: ").expect("a summary line") + 1];
    insta::assert_snapshot!("hostile_live_user_names_plan", rendered);

    let drift = sb.run(&["drift", "{dir}"]);
    drift.expect(2);
    assert_nothing_raw("drift", &drift);

    let apply = sb.run(&["apply", "{dir}", "--auto-approve"]);
    apply.expect(0);
    assert_nothing_raw("apply", &apply);

    let show = sb.run(&["audit", "show", "{dir}"]);
    show.expect(0);
    assert_nothing_raw("audit show", &show);
    assert!(show.stdout.contains("directory.user.evil\\u{1b}[2J"), "{}", show.stdout);
}

#[test]
fn configuration_text_with_escapes_reaches_no_terminal_raw_from_validate() {
    let sb = Sandbox::example("quickstart");
    // An invalid name (a diagnostic quoting the line) next to a display name holding a bidi
    // override and a C1 control, both allowed raw in YAML.
    sb.write(
        "users/mallory.yaml",
        "kind: User\nname: Mallory\ndisplayName: \"Mal\u{202e}lory\u{85}x\"\nuserName: mallory@northwind.example\n",
    );
    let validate = sb.run(&["validate", "{dir}"]);
    validate.expect(1);
    assert_nothing_raw("validate", &validate);
    assert!(validate.stderr.contains("Mal\u{fffd}lory\u{bf}x"), "{}", validate.stderr);
}

#[test]
fn markdown_plan_keeps_hostile_live_user_names_in_their_code_block() {
    let sb = Sandbox::example("quickstart");
    sb.apply_ok();
    let name = "x```\n</details>\n[link](http://evil.example) @northwind/security | y@northwind.example";
    hostile_live_users(&sb, &[name]);
    let md = sb.run(&["plan", "{dir}", "--format", "markdown"]);
    md.expect(0);
    let out = &md.stdout;
    // Only the lines keyward writes open and close blocks.
    let closing = out.lines().filter(|l| l.trim_start().starts_with("</details>")).count();
    assert_eq!(out.matches("<details>").count(), closing, "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("```")).count(), 2, "one fence, opened and closed: {out}");
    // The value stays on its one line inside the fence.
    let line = out.lines().find(|l| l.contains("y@northwind.example")).expect("the change line");
    assert!(line.starts_with("! disable directory.user.x"), "{line}");
    assert!(line.contains("\\u{a}</details>\\u{a}[link]"), "{line}");
    let plan_part = &out[..out.find("### Policy findings").unwrap_or(out.len())];
    insta::assert_snapshot!("hostile_live_user_name_markdown_plan", plan_part);
}

#[test]
fn drift_alerts_make_slack_and_teams_controls_in_live_names_inert() {
    let sb = Sandbox::example("quickstart");
    let text = sb.read("keyward.yaml");
    sb.write("keyward.yaml", &format!("{text}\nnotify:\n  webhook: ${{env:KEYWARD_TEST_WEBHOOK}}\n"));
    sb.apply_ok();
    let name = "<!channel> <http://evil.example|click> [here](http://evil.example) `x`\n- forged@northwind.example";
    hostile_live_users(&sb, &[name]);
    let (url, bodies) = support::webhook("/hooks/escaping");
    let drift = sb.run_with_env(&["drift", "{dir}", "--notify"], &[("KEYWARD_TEST_WEBHOOK", url.as_str())]);
    drift.expect(2);
    let body = bodies.recv_timeout(Duration::from_secs(10)).expect("the webhook got the alert");
    let payload: Value = serde_json::from_str(&body).unwrap();
    let text = payload["text"].as_str().expect("{\"text\": ...}");
    for raw in ["<!channel>", "<http://", "|click>"] {
        assert!(!text.contains(raw), "{raw} raw in the alert: {text}");
    }
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    // The address is one code span on its own line: no link, no forged list item.
    let line = text.lines().find(|l| l.contains("channel")).expect("the drift line");
    assert!(line.starts_with("- disable `directory.user.&lt;!channel&gt;"), "{line}");
    assert!(line.contains("[here](http://evil.example) ˋxˋ\\u{a}- forged@northwind.example`"), "{line}");
    assert!(!text.lines().any(|l| l.starts_with("- forged")), "{text}");
}
