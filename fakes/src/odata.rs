//! Pieces the OData fakes (Dataverse, Finance & Operations) share: answers that become either
//! an HTTP response or a part of a `$batch` response, the multipart `$batch` itself, and
//! server-driven paging.

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One answer, before it becomes an HTTP response or a batch part.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl Answer {
    pub fn no_content() -> Answer {
        Answer { status: StatusCode::NO_CONTENT, headers: vec![], body: None }
    }
    pub fn json(v: Value) -> Answer {
        Answer { status: StatusCode::OK, headers: vec![], body: Some(v) }
    }
}

/// An OData error answer `{"error":{"code":…,"message":…}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    Answer { status, headers: vec![], body: Some(json!({"error": {"code": code, "message": message}})) }
}

pub fn into_response(a: Answer) -> Response {
    let mut resp = match a.body {
        Some(b) => (a.status, axum::Json(b)).into_response(),
        None => a.status.into_response(),
    };
    for (k, v) in a.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

pub fn split_head(s: &str) -> (&str, &str) {
    for sep in ["\r\n\r\n", "\n\n"] {
        if let Some(i) = s.find(sep) {
            return (&s[..i], &s[i + sep.len()..]);
        }
    }
    (s, "")
}

/// The page of `rows` a request asks for: `Prefer: odata.maxpagesize` (at most `max`, and at
/// most `cap` when the server limits pages further), from the `$skiptoken` of the query; with
/// `@odata.nextLink` = `link_base?query&$skiptoken=N` while rows remain.
pub fn page(
    rows: &[Value],
    prefer: Option<&str>,
    query: &str,
    max: usize,
    cap: Option<usize>,
    link_base: &str,
) -> Answer {
    let asked = prefer
        .and_then(|p| p.split(',').find_map(|x| x.trim().strip_prefix("odata.maxpagesize=")))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(max)
        .clamp(1, max);
    let size = cap.map_or(asked, |c| c.min(asked));
    let skip: usize =
        query.split('&').find_map(|kv| kv.strip_prefix("$skiptoken=")).and_then(|t| t.parse().ok()).unwrap_or(0);
    let items: Vec<Value> = rows.iter().skip(skip).take(size).cloned().collect();
    let mut out = json!({"value": items});
    if skip + size < rows.len() {
        let kept: Vec<&str> = query.split('&').filter(|kv| !kv.starts_with("$skiptoken=") && !kv.is_empty()).collect();
        let mut q = kept.join("&");
        if !q.is_empty() {
            q.push('&');
        }
        out["@odata.nextLink"] = json!(format!("{link_base}?{q}$skiptoken={}", skip + size));
    }
    let mut a = Answer::json(out);
    a.headers.push(("Preference-Applied", format!("odata.maxpagesize={size}")));
    a
}

/// A multipart `$batch`: each part is carried out in order by `dispatch`, as its own request
/// (`api` is the service root path, which part URLs contain); at most `max` parts.
pub fn batch(
    content_type: &str,
    body: &[u8],
    api: &str,
    headers: &[(String, String)],
    max: usize,
    mut dispatch: impl FnMut(&Method, &str, &str, &[(String, String)], &[u8]) -> Answer,
) -> Response {
    let Some(boundary) = content_type.split(';').map(str::trim).find_map(|p| p.strip_prefix("boundary=")) else {
        return into_response(error(StatusCode::BAD_REQUEST, "0x80040216", "A $batch must be multipart/mixed."));
    };
    let text = String::from_utf8_lossy(body).to_string();
    let delim = format!("--{}", boundary.trim_matches('"'));
    let parts: Vec<&str> = text.split(delim.as_str()).skip(1).take_while(|p| !p.starts_with("--")).collect();
    if parts.len() > max {
        return into_response(error(
            StatusCode::BAD_REQUEST,
            "0x8005f103",
            &format!("The number of requests in a batch exceeds {max}."),
        ));
    }
    let out_boundary = "batchresponse_fake";
    let mut out = String::new();
    for part in parts {
        let part = part.trim_start_matches(['\r', '\n']);
        let (_, rest) = split_head(part);
        let (head, payload) = split_head(rest);
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default();
        let mut words = request_line.split_whitespace();
        let method: Method = words.next().and_then(|m| m.parse().ok()).unwrap_or(Method::GET);
        let url = words.next().unwrap_or_default();
        let path_and_query = url.find(api).map_or(url, |i| &url[i + api.len()..]);
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let mut part_headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        part_headers.extend(headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("prefer")).cloned());
        let answer = dispatch(&method, path, query, &part_headers, payload.trim().as_bytes());
        out.push_str(&format!(
            "--{out_boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        ));
        out.push_str(&format!(
            "HTTP/1.1 {} {}\r\n",
            answer.status.as_u16(),
            answer.status.canonical_reason().unwrap_or("")
        ));
        for (k, v) in &answer.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        match &answer.body {
            Some(b) => out.push_str(&format!("Content-Type: application/json; odata.metadata=minimal\r\n\r\n{b}\r\n")),
            None => out.push_str("\r\n\r\n"),
        }
    }
    out.push_str(&format!("--{out_boundary}--\r\n"));
    let mut resp = (StatusCode::OK, out).into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_str(&format!("multipart/mixed; boundary={out_boundary}")).expect("header"),
    );
    resp
}
