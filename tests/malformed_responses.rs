//! A catalogue of malformed server responses, each with the clear error keyward must give
//! instead of hanging, crashing, or reading without end. A small SCIM server built for each
//! case answers the discovery request correctly and then misbehaves on the list of users.
//! The errors are snapshot-tested (the port replaced by `PORT`).

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

const TOKEN_VAR: &str = "KEYWARD_TEST_MALFORMED_TOKEN";

fn spc() -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": 100},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": []
    })
}

fn scim(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/scim+json")], body.into()).into_response()
}

fn empty_list() -> Response {
    let body =
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "Resources": []});
    scim(StatusCode::OK, body.to_string())
}

/// Serves `users` for `/v2/Users`, an empty list of groups and a plain discovery document.
fn server(users: impl Fn() -> Response + Clone + Send + Sync + 'static) -> keyward_fakes::Running {
    let app = Router::new()
        .route("/v2/ServiceProviderConfig", get(|| async { scim(StatusCode::OK, spc().to_string()) }))
        .route("/v2/Users", get(move || std::future::ready(users())))
        .route("/v2/Groups", get(|| async { empty_list() }));
    keyward_fakes::serve(app)
}

fn config(dir: &Path, url: &str) {
    support::copy_dir(&support::repo_root().join("examples/quickstart"), dir);
    let path = dir.join("keyward.yaml");
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["targets"]["directory"] =
        serde_yaml::from_str(&format!("{{provider: scim, url: \"{url}/v2\", token: \"${{env:{TOKEN_VAR}}}\"}}"))
            .unwrap();
    doc["secrets"] = serde_yaml::from_str(&format!("{{env: [{TOKEN_VAR}]}}")).unwrap();
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
}

/// Runs `keyward plan` against the server and returns its output, with the port normalised.
fn plan_against(running: &keyward_fakes::Running) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &running.url());
    let o = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .current_dir(dir.path())
        .args(["plan", "."])
        .env(TOKEN_VAR, "malformed-test-token")
        .env("KEYWARD_NOW", "2026-11-28")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "200")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).replace(&running.addr.port().to_string(), "PORT");
    assert_eq!(o.status.code(), Some(1), "a malformed response is an error (exit 1)\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("malformed-test-token"), "the token never shows: {err}");
    (o, err)
}

#[test]
fn truncated_json() {
    let s = server(|| {
        scim(
            StatusCode::OK,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":2,"Resources":[{"id":"1","userName":"a@x"#,
        )
    });
    insta::assert_snapshot!(plan_against(&s).1);
}

#[test]
fn wrong_types_in_a_list_response() {
    let s = server(|| scim(StatusCode::OK, json!({"totalResults": "two", "Resources": []}).to_string()));
    insta::assert_snapshot!("wrong_types_total", plan_against(&s).1);
    let s = server(|| scim(StatusCode::OK, json!({"totalResults": 1, "Resources": {"id": "1"}}).to_string()));
    insta::assert_snapshot!("wrong_types_resources", plan_against(&s).1);
}

#[test]
fn a_user_without_a_user_name() {
    let s = server(|| {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1,
            "Resources": [{"id": "u1", "userName": 42, "active": "yes"}]});
        scim(StatusCode::OK, body.to_string())
    });
    insta::assert_snapshot!(plan_against(&s).1);
}

#[test]
fn not_json_at_all() {
    let s = server(|| {
        (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "<html><body>Sign in</body></html>").into_response()
    });
    insta::assert_snapshot!(plan_against(&s).1);
}

/// A server that ignores `startIndex` and claims a billion users: the same page forever.
#[test]
fn pages_that_never_end() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let s = server(move || {
        c.fetch_add(1, Ordering::Relaxed);
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 1_000_000_000u64, "itemsPerPage": 2, "startIndex": 1,
            "Resources": [{"id": "u1", "userName": "a@northwind.example", "active": true},
                          {"id": "u2", "userName": "b@northwind.example", "active": true}]});
        scim(StatusCode::OK, body.to_string())
    });
    insta::assert_snapshot!(plan_against(&s).1);
    assert!(calls.load(Ordering::Relaxed) <= 3, "stops as soon as a page brings nothing new");
}

/// A body that never ends: read up to the cap, then refused.
#[test]
fn a_body_that_never_ends() {
    let s = server(|| {
        let chunk = axum::body::Bytes::from(vec![b' '; 1 << 20]);
        let stream = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        scim(StatusCode::OK, Body::from_stream(stream))
    });
    insta::assert_snapshot!(plan_against(&s).1);
}

/// A 10 MB error body: read only up to the error cap, shown as a short excerpt.
#[test]
fn a_ten_megabyte_error_body() {
    let s = server(|| scim(StatusCode::INTERNAL_SERVER_ERROR, "E".repeat(10 * 1024 * 1024)));
    let (_, err) = plan_against(&s);
    assert!(err.len() < 4096, "the error is an excerpt, not the body: {} bytes", err.len());
    insta::assert_snapshot!(err);
}
