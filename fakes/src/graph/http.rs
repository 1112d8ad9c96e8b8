//! The HTTP side: requests and answers, paging, `$batch`, and the handler every Graph request
//! arrives at.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::tenant::Tenant;
use super::{BATCH_LIMIT, Graph};

/// A request as the dispatcher sees it, outer or inside a batch.
pub(super) struct Req<'a> {
    pub(super) method: String,
    pub(super) segments: Vec<String>,
    pub(super) query: HashMap<String, String>,
    pub(super) body: Option<Value>,
    /// The `Prefer` header, when sent (`return=minimal` on delta queries).
    pub(super) prefer: Option<String>,
    /// `http://host/v1.0`, for `@odata.nextLink`.
    pub(super) base: &'a str,
}

/// An answer: status, extra headers, body.
pub(super) struct Resp {
    pub(super) status: u16,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Option<Value>,
}

impl Resp {
    pub(super) fn ok(body: Value) -> Resp {
        Resp { status: 200, headers: vec![], body: Some(body) }
    }
    pub(super) fn created(body: Value) -> Resp {
        Resp { status: 201, headers: vec![], body: Some(body) }
    }
    pub(super) fn no_content() -> Resp {
        Resp { status: 204, headers: vec![], body: None }
    }
    /// The documented error body (§2.11): `error.code`, `message`, `innerError.request-id`.
    pub(super) fn error(status: u16, code: &str, message: &str) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: Some(json!({"error": {"code": code, "message": message, "innerError": {}}})),
        }
    }
    pub(super) fn not_found(what: &str) -> Resp {
        Resp::error(
            404,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }
    pub(super) fn bad(message: &str) -> Resp {
        Resp::error(400, "Request_BadRequest", message)
    }
}

pub(super) fn now_iso() -> String {
    // Seconds since the epoch, formatted as a UTC date-time without a date library.
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    iso(secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (civil-from-days, proleptic Gregorian).
pub fn iso(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub(super) fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `$select` as a list, when given.
pub(super) fn select(req: &Req) -> Option<Vec<String>> {
    req.query.get("$select").map(|s| s.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect())
}

/// The id at the end of a `…/directoryObjects/{id}` (or `/users/{id}`) reference.
pub(super) fn ref_id(r: &str) -> Option<String> {
    let id = r.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

pub(super) fn page(req: &Req, all: Vec<Value>, default: usize, max: usize) -> Resp {
    let n = all.len();
    page_with(req, n, default, max, |range| all[range].to_vec())
}

/// A page of `$top` (default `default`, at most `max`, else 400) from `$skiptoken` on, with
/// `@odata.nextLink` carrying the whole query when more remain (documented §2.9: follow the
/// link whole; the token's content is opaque, here an offset: assumed).
pub(super) fn page_with(
    req: &Req,
    total: usize,
    default: usize,
    max: usize,
    items: impl FnOnce(std::ops::Range<usize>) -> Vec<Value>,
) -> Resp {
    let top = match req.query.get("$top") {
        None => default,
        Some(t) => match t.parse::<usize>() {
            Ok(t) if (1..=max).contains(&t) => t,
            _ => {
                return Resp::bad(&format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and {max} inclusive."
                ));
            }
        },
    };
    let start = match req.query.get("$skiptoken") {
        None => 0,
        Some(t) => match t
            .strip_prefix("X'")
            .and_then(|t| t.strip_suffix('\''))
            .and_then(|t| usize::from_str_radix(t, 16).ok())
        {
            Some(s) => s,
            None => return Resp::bad("The specified skip token is invalid."),
        },
    };
    let end = (start + top).min(total);
    let mut body = json!({"value": items(start.min(total)..end)});
    if end < total {
        let mut q: Vec<(String, String)> =
            req.query.iter().filter(|(k, _)| k.as_str() != "$skiptoken").map(|(k, v)| (k.clone(), v.clone())).collect();
        q.sort();
        q.push(("$skiptoken".into(), format!("X'{end:x}'")));
        let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish();
        body["@odata.nextLink"] = json!(format!("{}/{}?{query}", req.base, req.segments.join("/")));
    }
    Resp::ok(body)
}

pub(super) fn parse_query(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub(super) fn split_path(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect()
}

/// Every Graph request (and `$batch`) arrives here.
pub(super) async fn handle(State(g): State<Graph>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_string();
    let base = format!("http://{host}/v1.0");
    if let Err(resp) = g.entra.check(&parts.headers, &format!("http://{host}")) {
        return resp;
    }
    let Some(path) = parts.uri.path().strip_prefix("/v1.0") else {
        return respond(Resp::error(404, "BadRequest", "Invalid version."), "");
    };
    let path = path.to_string();
    let bytes: Bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return respond(Resp::bad("body too large"), ""),
    };
    let json_body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(_) => return respond(Resp::bad("Unable to read JSON request payload."), ""),
        }
    };
    let mut t = g.tenant.lock().expect("graph");
    let request_id = t.request_id();
    if let Some(every) = t.scenarios.transient
        && t.requests.is_multiple_of(every)
    {
        let r = Resp::error(503, "serviceNotAvailable", "The service is temporarily unavailable.");
        return respond(r, &request_id);
    }
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let method = parts.method.as_str().to_string();
    if method == "POST" && path == "/$batch" {
        let r = batch(&mut t, json_body, &base);
        return respond(r, &request_id);
    }
    let prefer = parts.headers.get("prefer").and_then(|h| h.to_str().ok()).map(str::to_string);
    let req = Req { method, segments: split_path(&path), query, body: json_body, prefer, base: &base };
    let r = t.dispatch(&req);
    respond(r, &request_id)
}

/// `$batch` (documented §2.10): at most 20 requests, unique case-insensitive ids, relative
/// urls, `Content-Type` with every body, `dependsOn` → 424 when a dependency failed, each
/// request throttled on its own, responses in an order of the fake's choosing (here reversed).
pub(super) fn batch(t: &mut Tenant, body: Option<Value>, base: &str) -> Resp {
    let Some(requests) = body.as_ref().and_then(|b| b["requests"].as_array()).cloned() else {
        return Resp::bad("Invalid batch payload format.");
    };
    if requests.len() > BATCH_LIMIT {
        return Resp::bad("Number of batch request steps exceeds the maximum of 20.");
    }
    let mut ids: Vec<String> = Vec::new();
    for r in &requests {
        let Some(id) = r["id"].as_str() else { return Resp::bad("Batch request id is required.") };
        let lid = id.to_lowercase();
        if ids.contains(&lid) {
            return Resp::bad("Batch request contains duplicate ids.");
        }
        if r["method"].as_str().is_none() || r["url"].as_str().is_none_or(|u| u.starts_with("http")) {
            return Resp::bad("Each batch request needs a method and a relative url.");
        }
        if r.get("body").is_some_and(|b| !b.is_null())
            && !r["headers"].as_object().is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")))
        {
            return Resp::bad("Content-Type header is required when a body is present.");
        }
        ids.push(lid);
    }
    let mut status: HashMap<String, u16> = HashMap::new();
    let mut out = Vec::new();
    for r in &requests {
        let id = r["id"].as_str().expect("checked");
        let deps: Vec<String> = r["dependsOn"]
            .as_array()
            .map(|d| d.iter().filter_map(Value::as_str).map(str::to_lowercase).collect())
            .unwrap_or_default();
        let failed = deps.iter().any(|d| status.get(d).is_none_or(|s| *s >= 400));
        let resp = if failed {
            Resp::error(424, "Failed Dependency", "A request this one depends on failed.")
        } else {
            let url = r["url"].as_str().expect("checked");
            let (path, query) = url.split_once('?').unwrap_or((url, ""));
            let path = path.strip_prefix("/v1.0").unwrap_or(path);
            let req = Req {
                method: r["method"].as_str().expect("checked").to_uppercase(),
                segments: split_path(path),
                query: parse_query(query),
                body: r.get("body").filter(|b| !b.is_null()).cloned(),
                prefer: r["headers"].as_object().and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("prefer"))
                        .and_then(|(_, v)| v.as_str().map(str::to_string))
                }),
                base,
            };
            t.dispatch(&req)
        };
        status.insert(id.to_lowercase(), resp.status);
        let request_id = t.request_id();
        let mut headers = Map::new();
        for (k, v) in &resp.headers {
            headers.insert((*k).to_string(), json!(v));
        }
        let mut body = resp.body.unwrap_or(Value::Null);
        if let Some(inner) = body.pointer_mut("/error/innerError") {
            *inner = json!({"date": now_iso(), "request-id": request_id, "client-request-id": request_id});
        }
        let mut item = json!({"id": id, "status": resp.status, "headers": headers});
        if !body.is_null() {
            item["body"] = body;
        }
        out.push(item);
    }
    out.reverse();
    Resp::ok(json!({"responses": out}))
}

pub(super) fn respond(mut r: Resp, request_id: &str) -> Response {
    if let Some(inner) = r.body.as_mut().and_then(|b| b.pointer_mut("/error/innerError")) {
        *inner = json!({"date": now_iso(), "request-id": request_id, "client-request-id": request_id});
    }
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match r.body {
        Some(b) => (status, axum::Json(b)).into_response(),
        None => status.into_response(),
    };
    let h: &mut HeaderMap = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("request-id", v);
    }
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    resp
}
