//! Hostile SCIM servers: ids that would change a request's path, error bodies that echo the
//! token, and a token that cannot be sent at all. Each server records every request it gets,
//! so the tests can say what keyward sent, not only what it printed.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

const TOKEN_VAR: &str = "KEYWARD_TEST_HOSTILE_TOKEN";

/// Every request a server got: `METHOD /path`.
type Log = Arc<Mutex<Vec<String>>>;

fn spc() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": 100},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": []
    })
}

fn scim(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/scim+json")], body.to_string()).into_response()
}

fn list(resources: Vec<Value>) -> Response {
    scim(
        StatusCode::OK,
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": resources.len(), "Resources": resources}),
    )
}

/// A server that records every request and answers `/v2/Users` with `users(headers)`, an
/// empty list of groups, and `204` to every write.
fn server(users: impl Fn(&HeaderMap) -> Response + Clone + Send + Sync + 'static) -> (keyward_fakes::Running, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let app = Router::new().fallback(move |req: Request| {
        let users = users.clone();
        let log = l.clone();
        async move {
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            log.lock().unwrap().push(format!("{method} {path}"));
            match (method, path.as_str()) {
                (Method::GET, "/v2/ServiceProviderConfig") => scim(StatusCode::OK, spc()),
                (Method::GET, "/v2/Users") => users(req.headers()),
                (Method::GET, "/v2/Groups") => list(vec![]),
                (Method::GET, _) => scim(StatusCode::NOT_FOUND, json!({"status": "404"})),
                _ => StatusCode::NO_CONTENT.into_response(),
            }
        }
    });
    (keyward_fakes::serve(app), log)
}

/// A configuration with one SCIM target at `url`, deleting users that left git, and one user.
fn config(dir: &Path, url: &str) {
    let yaml = format!(
        "version: 1\ntargets:\n  directory:\n    provider: scim\n    url: \"{url}/v2\"\n    token: \"${{env:{TOKEN_VAR}}}\"\n\
         ownership:\n  scope: {{userNameSuffix: \"@northwind.example\"}}\nlifecycle:\n  removedUsers: delete\n\
         secrets:\n  env: [{TOKEN_VAR}]\n"
    );
    std::fs::write(dir.join("keyward.yaml"), yaml).unwrap();
    std::fs::create_dir(dir.join("users")).unwrap();
    std::fs::write(
        dir.join("users/ann.yaml"),
        "kind: User\nname: ann\nuserName: ann@northwind.example\nstatus: disabled\n",
    )
    .unwrap();
}

fn keyward(dir: &Path, args: &[&str], token: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir)
        .args(args)
        .env(TOKEN_VAR, token)
        .env("KEYWARD_NOW", "2026-11-28")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "200")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A token made at test time, with characters that base64 and percent-encoding change.
fn test_token() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("hx{n:08x}+Tq/{:08x}", n.rotate_left(11))
}

/// Regression: a SCIM user id of `..` made the delete of that user `DELETE /scim/v2/Users`,
/// and apply reported success. The user is refused when it is read: nothing is deleted.
#[test]
fn a_user_id_of_dot_dot_never_becomes_a_delete_of_the_collection() {
    for id in ["..", ".", "a/../..", "x?y", "x#y", "x\u{1b}[2J"] {
        let (s, log) = server(move |_| {
            list(vec![
                json!({"id": "ann-1", "userName": "ann@northwind.example", "active": false}),
                json!({"id": id, "userName": "zoe@northwind.example", "active": true}),
            ])
        });
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), &s.url());
        let o = keyward(dir.path(), &["apply", "--auto-approve", "."], &test_token());
        let out = text(&o).replace(&s.addr.port().to_string(), "PORT");
        let sent = log.lock().unwrap().clone();
        assert!(!sent.iter().any(|r| !r.starts_with("GET ")), "{id:?}: nothing is written: {sent:?}\n{out}");
        assert_eq!(o.status.code(), Some(1), "{id:?}: {out}");
        assert!(
            out.contains("user zoe@northwind.example is refused: its id")
                && out.contains("http://127.0.0.1:PORT/v2")
                && out.contains("request path"),
            "{id:?}: the error names the server, the user and the id: {out}"
        );
        assert!(!out.contains('\u{1b}'), "{id:?}: {out}");
        if id == ".." {
            insta::assert_snapshot!(out);
        }
    }
}

/// Regression: only the exact token was redacted from a SCIM error body; a prefix, a base64
/// form or an upper-cased echo was printed. This server echoes the `Authorization` header it
/// got in many forms.
#[test]
fn an_echoed_token_is_redacted_in_every_form() {
    let token = test_token();
    let (s, _) = server(|headers| {
        let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let value = auth.strip_prefix("Bearer ").unwrap_or(&auth).to_string();
        let b64 = base64::engine::general_purpose::STANDARD;
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let pct: String = value
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02x}") })
            .collect();
        let detail = format!(
            "denied; header {auth}; token {value}; upper {}; lower {}; prefix {}; b64 {}; b64url {}; \
             b64-header {}; url {pct}; raw authorization={value}",
            value.to_uppercase(),
            value.to_lowercase(),
            &value[..10],
            b64.encode(&value),
            b64url.encode(&value),
            b64.encode(format!("Authorization: {auth}")),
        );
        scim(StatusCode::UNAUTHORIZED, json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "401", "scimType": format!("echo {value}"), "detail": detail}))
    });
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &s.url());
    let o = keyward(dir.path(), &["plan", "."], &token);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("denied") && out.contains("(sensitive)"), "the error is still shown: {out}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut forms = vec![token.clone(), token.to_uppercase(), token.to_lowercase(), token[..10].to_string()];
    forms.push(b64.encode(&token).trim_end_matches('=').to_string());
    forms.push(b64url.encode(&token));
    let header = b64.encode(format!("Authorization: Bearer {token}"));
    forms.push(header[header.len() - 16..].trim_end_matches('=').to_string());
    forms.push(token.replace('+', "%2b").replace('/', "%2f"));
    for form in forms {
        // Eight characters of any form would already say too much.
        for w in form.as_bytes().windows(8) {
            let w = String::from_utf8_lossy(w);
            assert!(!out.contains(&*w), "`{w}` of `{form}` is printed:\n{out}");
        }
    }
}

/// Regression: a token holding a newline was reported as "no answer ... may have been carried
/// out". It is a configuration error, found before any request.
#[test]
fn a_token_that_is_not_a_header_value_is_a_configuration_error() {
    let (s, log) = server(|_| list(vec![json!({"id": "z", "userName": "zoe@northwind.example"})]));
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &s.url());
    let token = format!("{}\nX-Injected: 1", test_token());
    for args in [&["plan", "."][..], &["apply", "--auto-approve", "."]] {
        let o = keyward(dir.path(), args, &token);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains(&format!(
                "the token for target directory (${{env:{TOKEN_VAR}}}) is not a valid header value: it holds a control character"
            )),
            "{out}"
        );
        assert!(!out.contains("may have been carried out"), "{out}");
        assert!(!out.contains("X-Injected"), "{out}");
    }
    assert_eq!(log.lock().unwrap().len(), 0, "no request is sent");
}
