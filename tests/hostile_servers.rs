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
        scim(
            StatusCode::UNAUTHORIZED,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "401", "scimType": format!("echo {value}"), "detail": detail}),
        )
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

// ---------------------------------------------------------------------------------------------
// Graph: the fake tenant, with its `/users` collection answered by a hostile handler.

const GRAPH_CLIENT: &str = "11111111-1111-1111-1111-111111111111";
const GRAPH_SECRET_VAR: &str = "KEYWARD_TEST_HOSTILE_GRAPH_SECRET";

/// The fake Graph tenant, with `GET /v1.0/users` answered by `users(host)` instead.
fn graph(secret: &str, users: impl Fn(&str) -> Value + Clone + Send + Sync + 'static) -> (keyward_fakes::Running, Log) {
    let g = keyward_fakes::graph::Graph::new();
    g.entra().register(GRAPH_CLIENT, Some(secret));
    let log: Log = Arc::default();
    let l = log.clone();
    let app = Router::new()
        .route(
            "/v1.0/users",
            axum::routing::get(move |headers: HeaderMap| {
                let users = users.clone();
                let l = l.clone();
                async move {
                    l.lock().unwrap().push("GET /v1.0/users".into());
                    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
                    axum::Json(users(host))
                }
            }),
        )
        .fallback_service(g.router());
    (keyward_fakes::serve(app), log)
}

/// The quick start on a Graph target at `url`.
fn graph_quickstart(url: &str) -> support::Sandbox {
    let sb = support::Sandbox::example("quickstart");
    sb.edit(
        "keyward.yaml",
        "    provider: file\n    path: .keyward/directory.json   # a local JSON file that stands in for a live directory\n",
        &format!(
            "    provider: graph\n    tenant: northwind.example\n    clientId: {GRAPH_CLIENT}\n    \
             clientSecret: ${{env:{GRAPH_SECRET_VAR}}}\n    endpoint: {url}\n    authority: {url}\n"
        ),
    );
    sb
}

/// Runs `keyward plan` with a deadline: a read that never ends fails the test instead of
/// hanging it.
fn plan_within(sb: &support::Sandbox, secret: &str, deadline: std::time::Duration) -> (Option<i32>, String) {
    let dir = sb.path("");
    let mut child = sb
        .cmd(&["plan", &dir.to_string_lossy()])
        .env(GRAPH_SECRET_VAR, secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!("keyward was still reading after {deadline:?}\n{}", String::from_utf8_lossy(&o.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    (o.status.code(), text(&o))
}

fn graph_user(id: &str, upn: &str) -> Value {
    json!({"id": id, "userPrincipalName": upn, "displayName": upn, "accountEnabled": true})
}

/// Regression: a `@odata.nextLink` that pointed back to a page already read was followed for
/// ever. It is refused the second time it is given.
#[test]
fn graph_a_next_link_that_loops_is_refused() {
    let secret = test_token();
    let (s, log) = graph(&secret, |host| {
        json!({"value": [graph_user("0a000000-0000-4000-8000-000000000001", "ann@northwind.example")],
            "@odata.nextLink": format!("http://{host}/v1.0/users?$skiptoken=again")})
    });
    let sb = graph_quickstart(&s.url());
    let (code, out) = plan_within(&sb, &secret, std::time::Duration::from_secs(60));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("gave a @odata.nextLink it gave before; the paging would never end"), "{out}");
    assert_eq!(log.lock().unwrap().len(), 2, "the first page and the page it links to");
}

/// Regression: Graph ids went into request paths unchecked. A directory object id that is not
/// a GUID, or the same id for two users, is refused when read, before anything is written.
#[test]
fn graph_ids_that_are_not_guids_or_repeat_are_refused() {
    let secret = test_token();
    let cases: [(Vec<Value>, &str); 3] = [
        (vec![graph_user("..", "zoe@northwind.example")], "user `zoe@northwind.example` read from"),
        (vec![graph_user("0a000000-0000-4000-8000-000000000001/../x", "zoe@northwind.example")], "is not a GUID"),
        (
            vec![
                graph_user("0a000000-0000-4000-8000-000000000001", "ann@northwind.example"),
                graph_user("0A000000-0000-4000-8000-000000000001", "zoe@northwind.example"),
            ],
            "answered the user id `0A000000-0000-4000-8000-000000000001` twice",
        ),
    ];
    for (users, expected) in cases {
        let (s, _) = graph(&secret, move |_| json!({"value": users.clone()}));
        let sb = graph_quickstart(&s.url());
        let (code, out) = plan_within(&sb, &secret, std::time::Duration::from_secs(60));
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(expected), "{expected}: {out}");
    }
}

/// Member ids go into paths too (`/groups/{g}/members/{id}/$ref`): one that is not a GUID is
/// refused when read.
#[test]
fn graph_a_member_id_that_is_not_a_guid_is_refused() {
    let secret = test_token();
    let g = keyward_fakes::graph::Graph::new();
    g.entra().register(GRAPH_CLIENT, Some(&secret));
    let group = g.add_group("it-admins");
    g.add_members(&group, &["../../users".to_string()]);
    let s = g.serve();
    let sb = graph_quickstart(&s.url());
    let (code, out) = plan_within(&sb, &secret, std::time::Duration::from_secs(60));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("a member read from") && out.contains("its id `../../users` is not a GUID"), "{out}");
}

/// A Graph fake behind a hostile `$batch`: `answer` makes the batch's answer from the requests
/// sent and the host; every other request reaches the fake. Returns the server, the target's
/// directory and the batches received.
fn graph_behind_hostile_batch(
    answer: impl Fn(&[Value], &str) -> Value + Clone + Send + Sync + 'static,
) -> (keyward_fakes::Running, tempfile::TempDir, keyward::model::config::Target, Log) {
    use keyward::model::config::{ClientCredential, Connection, Target};
    use keyward::model::{Name, SecretRef};

    let secret = test_token();
    let g = keyward_fakes::graph::Graph::new();
    g.entra().register(GRAPH_CLIENT, Some(&secret));
    let log: Log = Arc::default();
    let l = log.clone();
    let app = Router::new()
        .route(
            "/v1.0/$batch",
            axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
                let (l, answer) = (l.clone(), answer.clone());
                async move {
                    l.lock().unwrap().push("POST /v1.0/$batch".into());
                    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
                    let requests = body["requests"].as_array().cloned().unwrap_or_default();
                    axum::Json(answer(&requests, &host))
                }
            }),
        )
        .fallback_service(g.router());
    let s = keyward_fakes::serve(app);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("client-secret"), &secret).unwrap();
    let target = Target {
        name: Name::new("entra").unwrap(),
        users: keyward::model::UsersScope::All,
        ca_file: None,
        connection: Connection::Graph {
            tenant: "northwind.example".into(),
            client_id: GRAPH_CLIENT.into(),
            credential: ClientCredential::Secret(SecretRef::File("client-secret".into())),
            endpoint: Some(s.url()),
            authority: Some(s.url()),
            federated_domains: vec![],
        },
    };
    (s, dir, target, log)
}

/// Starts the feed against `answer`'s batches, within 30 s; the error it ends with.
async fn feed_start_error(answer: impl Fn(&[Value], &str) -> Value + Clone + Send + Sync + 'static) -> (String, Log) {
    let (_s, dir, target, log) = graph_behind_hostile_batch(answer);
    let mut p = keyward::provider::open(&target, dir.path(), keyward::provider::Access::Read).unwrap();
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), p.read_with_cursor()).await;
    let e = match read {
        Err(_) => panic!("still reading the delta pages after 30 s ({} batches)", log.lock().unwrap().len()),
        Ok(Ok(_)) => panic!("a hostile batch answer was read as a state"),
        Ok(Err(e)) => e.to_string(),
    };
    (e, log)
}

/// Regression: a delta round (the change feed `watch` reads Graph through) followed
/// `@odata.nextLink` with no bound, so a server that links a page to itself kept the watcher
/// reading for ever. A link given twice is refused, as in a full read (the rounds now go in
/// `$batch`es: the link loops there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_a_delta_next_link_that_loops_is_refused() {
    let (e, log) = feed_start_error(|requests, host| {
        let responses: Vec<Value> = requests
            .iter()
            .map(|r| {
                json!({"id": r["id"], "status": 200, "body": {"value": [],
                "@odata.nextLink": format!("http://{host}/v1.0/users/delta?$skiptoken=again")}})
            })
            .collect();
        json!({"responses": responses})
    })
    .await;
    assert!(e.contains("gave a @odata.nextLink it gave before; the paging would never end"), "{e}");
    assert_eq!(log.lock().unwrap().len(), 2, "the first pages and the pages they link to");
}

/// A batch answer that leaves a delta query unanswered, or answers one twice, is refused: the
/// round is not guessed at (an empty round would hide changes, a second answer could replace
/// the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_a_batch_answer_missing_or_doubling_a_delta_query_is_refused() {
    let ok = |r: &Value, host: &str| {
        json!({"id": r["id"], "status": 200, "body": {"value": [],
            "@odata.deltaLink": format!("http://{host}/v1.0/users/delta?$deltatoken=x")}})
    };
    let (e, log) = feed_start_error(
        move |requests, host| json!({"responses": requests[1..].iter().map(|r| ok(r, host)).collect::<Vec<_>>()}),
    )
    .await;
    assert!(e.contains("the batch answer has no response to request `0`"), "{e}");
    assert_eq!(log.lock().unwrap().len(), 1);
    let (e, _) = feed_start_error(move |requests, host| {
        let mut responses: Vec<Value> = requests.iter().map(|r| ok(r, host)).collect();
        responses.push(ok(&requests[2], host));
        json!({"responses": responses})
    })
    .await;
    assert!(e.contains("the batch answer has two responses to request `2`"), "{e}");
}
