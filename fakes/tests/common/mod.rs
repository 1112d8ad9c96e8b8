//! A small blocking HTTP/1.1 client for driving the fakes over real sockets, and bearer tokens
//! from the fakes' token endpoint. One request per connection (`Connection: close`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

/// An answer: status, headers (names lower-cased) and the body as JSON (`Null` when empty,
/// a JSON string when it is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// A client secret unique to this run, never a literal.
pub fn secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("test-secret-{:016x}", h.finish())
}

/// A client of one fake at `url` (`http://127.0.0.1:PORT`), sending `token` as bearer.
#[derive(Debug, Clone)]
pub struct Client {
    pub url: String,
    pub token: String,
    /// Extra headers sent with every request.
    pub headers: Vec<(String, String)>,
}

impl Client {
    /// Registers a client on `entra` and takes a token for `{url}/.default`.
    pub fn new(entra: &keyward_fakes::entra::Entra, url: &str) -> Client {
        let client_id = "22222222-2222-2222-2222-222222222222";
        let s = secret();
        entra.register(client_id, Some(&s));
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", &s)
            .append_pair("scope", &format!("{url}/.default"))
            .finish();
        let r = send(
            "POST",
            &format!("{url}/contoso.example/oauth2/v2.0/token"),
            &[("content-type".into(), "application/x-www-form-urlencoded".into())],
            Some(form.into_bytes()),
        );
        assert_eq!(r.status, 200, "token: {:?}", r.body);
        Client { url: url.to_string(), token: r.body["access_token"].as_str().unwrap().to_string(), headers: vec![] }
    }

    /// The absolute URL of `path` (absolute URLs, such as next links, are kept).
    pub fn abs(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_string() } else { format!("{}{}", self.url, path) }
    }

    pub fn request(&self, method: &str, path: &str, extra: &[(&str, &str)], body: Option<&Value>) -> Reply {
        let mut headers: Vec<(String, String)> = vec![("authorization".into(), format!("Bearer {}", self.token))];
        headers.extend(self.headers.iter().cloned());
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let body = body.map(|b| {
            headers.push(("content-type".into(), "application/json".into()));
            serde_json::to_vec(b).unwrap()
        });
        send(method, &self.abs(path), &headers, body)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", path, headers, None)
    }
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, &[], Some(body))
    }
    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.request("PATCH", path, &[], Some(body))
    }
    pub fn put(&self, path: &str, body: &Value) -> Reply {
        self.request("PUT", path, &[], Some(body))
    }
    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, &[], None)
    }
}

/// One request on a fresh connection.
pub fn send(method: &str, url: &str, headers: &[(String, String)], body: Option<Vec<u8>>) -> Reply {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let path = path.replace(' ', "%20");
    let mut stream = TcpStream::connect(host).expect("connect to the fake");
    let body = body.unwrap_or_default();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut payload = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        payload = dechunk(&payload);
    }
    let body = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&payload).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload).into()))
    };
    Reply { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

/// Follows `@odata.nextLink` from `first` to the page with `@odata.deltaLink`; returns every
/// object of every page and the delta link.
pub fn delta_round(c: &Client, first: &str, headers: &[(&str, &str)]) -> (Vec<Value>, String, usize) {
    let mut url = first.to_string();
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let r = c.get_with(&url, headers);
        assert_eq!(r.status, 200, "{url}: {:?}", r.body);
        pages += 1;
        all.extend(r.body["value"].as_array().unwrap().iter().cloned());
        let next = r.body["@odata.nextLink"].as_str();
        let delta = r.body["@odata.deltaLink"].as_str();
        assert!(next.is_some() != delta.is_some(), "a page has a next link or a delta link, never both: {:?}", r.body);
        match (next, delta) {
            (Some(n), None) => url = n.to_string(),
            (None, Some(d)) => return (all, d.to_string(), pages),
            _ => unreachable!(),
        }
    }
}
