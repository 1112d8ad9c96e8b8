//! The OData multipart `$batch` format (OData v4 §11.7 as Dataverse and F&O accept it): every
//! operation a part of its own, outside any change set, so each succeeds or fails alone.

use serde_json::Value;

use super::{BatchOp, ODataError, Reply};

/// A boundary that no JSON body of ours contains.
pub fn boundary_token() -> String {
    format!("{:016x}", (crate::remote::http::jitter_unit() * u64::MAX as f64) as u64)
}

/// The request body of a batch.
pub fn encode<'a>(boundary: &str, ops: impl IntoIterator<Item = &'a BatchOp>) -> Vec<u8> {
    let mut s = String::new();
    for op in ops {
        s.push_str(&format!("--{boundary}\r\n"));
        s.push_str("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n");
        s.push_str(&format!("{} {} HTTP/1.1\r\n", op.method, op.url));
        s.push_str("Accept: application/json\r\n");
        if let Some(tag) = &op.if_match {
            s.push_str(&format!("If-Match: {tag}\r\n"));
        }
        match &op.body {
            Some(b) => {
                s.push_str("Content-Type: application/json\r\n\r\n");
                s.push_str(&b.to_string());
                s.push_str("\r\n");
            }
            None => s.push_str("\r\n"),
        }
    }
    s.push_str(&format!("--{boundary}--\r\n"));
    s.into_bytes()
}

/// One answer inside a batch response.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub status: u16,
    pub entity_id: Option<String>,
    pub etag: Option<String>,
    /// The part's own `Retry-After`, when it has one (a throttled operation).
    pub retry_after: Option<std::time::Duration>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn into_result(self) -> Result<Reply, ODataError> {
        if (200..300).contains(&self.status) {
            let body = serde_json::from_slice::<Value>(&self.body).ok();
            Ok(Reply { status: self.status, entity_id: self.entity_id, etag: self.etag, body })
        } else {
            Err(super::odata_error(self.status, &self.body, ""))
        }
    }
}

/// Splits a `multipart/mixed` batch response into its parts' HTTP answers, in order. Nested
/// change sets are flattened.
pub fn decode(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = boundary_of(content_type)
        .ok_or_else(|| format!("the $batch answer is not multipart (Content-Type {content_type:?})"))?;
    let text = String::from_utf8_lossy(body);
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    for chunk in text.split(delim.as_str()).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.trim_start_matches(['\r', '\n']);
        let (headers, rest) = split_head(chunk);
        if let Some(ct) = header_value(headers, "content-type")
            && ct.to_ascii_lowercase().starts_with("multipart/mixed")
        {
            parts.extend(decode(ct, rest.as_bytes())?);
            continue;
        }
        let (head, payload) = split_head(rest);
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("a $batch answer part has no HTTP status line ({status_line:?})"))?;
        parts.push(Part {
            status,
            entity_id: header_value(head, "odata-entityid").map(str::to_string),
            etag: header_value(head, "etag").map(str::to_string),
            retry_after: header_value(head, "retry-after")
                .and_then(|v| crate::remote::http::parse_retry_after(v, std::time::SystemTime::now())),
            body: payload.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
        });
    }
    Ok(parts)
}

fn boundary_of(content_type: &str) -> Option<&str> {
    content_type.split(';').map(str::trim).find_map(|p| p.strip_prefix("boundary=")).map(|b| b.trim_matches('"'))
}

/// Splits at the first blank line: (headers, rest).
fn split_head(s: &str) -> (&str, &str) {
    for sep in ["\r\n\r\n", "\n\n"] {
        if let Some(i) = s.find(sep) {
            return (&s[..i], &s[i + sep.len()..]);
        }
    }
    (s, "")
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip() {
        let ops = vec![BatchOp {
            method: reqwest::Method::POST,
            url: "https://x.example/api/data/v9.2/systemusers(1)/systemuserroles_association/$ref".parse().unwrap(),
            body: Some(serde_json::json!({"@odata.id": "https://x.example/api/data/v9.2/roles(2)"})),
            if_match: None,
        }];
        let text = String::from_utf8(encode("batch_b", &ops)).unwrap();
        assert!(text.starts_with("--batch_b\r\nContent-Type: application/http\r\n"));
        assert!(
            text.contains(
                "POST https://x.example/api/data/v9.2/systemusers(1)/systemuserroles_association/$ref HTTP/1.1"
            )
        );
        assert!(text.ends_with("--batch_b--\r\n"));

        let answer = "--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 204 No Content\r\nOData-EntityId: https://x.example/api/data/v9.2/systemusers(9)\r\n\r\n\r\n--batchresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x80040237\",\"message\":\"Cannot insert duplicate key.\"}}\r\n--batchresponse_1--\r\n";
        let parts = decode("multipart/mixed; boundary=batchresponse_1", answer.as_bytes()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].status, 204);
        assert_eq!(parts[0].entity_id.as_deref(), Some("https://x.example/api/data/v9.2/systemusers(9)"));
        let e = parts[1].clone().into_result().unwrap_err();
        assert_eq!(e.code(), Some("0x80040237"));
    }
}
