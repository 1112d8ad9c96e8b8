//! Reading a whole SCIM collection by pages (RFC 7644 §3.4.2.4), bounded.
//!
//! Paging is not stateful, so a resource seen twice with the same name (the list moved between
//! pages) is kept once; the same id for two different resources hides one of them and is
//! refused, as is a page that brings nothing new and a read that goes past [`ReadLimits`].

use std::collections::HashMap;

use serde_json::Value;

use super::client::{ScimClient, ScimError};
use super::query;
use super::wire::{self, ListPage};
use crate::provider::bounds::{BoundError, ReadBudget, ReadLimits};

/// Why a collection could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0}")]
    Request(ScimError),
    #[error("the list of {endpoint} is not a SCIM list response: {message}")]
    NotAList { endpoint: String, message: String },
    #[error(
        "the list of {endpoint} does not advance: the page at startIndex {start} holds only resources already \
         read, while totalResults says {total}; the service seems to ignore startIndex"
    )]
    Stuck { endpoint: String, start: usize, total: usize },
    #[error("the list of {endpoint} names the id `{id}` twice, for {first} and for {second}; one would be hidden")]
    Duplicate { endpoint: String, id: String, first: String, second: String },
    #[error("reading the list of {endpoint} stopped: {bound}")]
    Bound { endpoint: String, bound: BoundError },
}

/// The name a resource is known by (`userName`, `displayName`), to tell a repeat from a clash.
fn name_of(r: &Value) -> String {
    ["userName", "displayName"]
        .iter()
        .find_map(|k| wire::get(r, k).and_then(Value::as_str))
        .map(|n| n.to_lowercase())
        .unwrap_or_default()
}

/// Every resource of `endpoint`, by pages of `page`.
pub async fn list_all(
    client: &ScimClient,
    endpoint: &str,
    attributes: &str,
    page: usize,
    limits: ReadLimits,
) -> Result<Vec<Value>, ListError> {
    Ok(list_where(client, endpoint, attributes, None, page, limits).await?.resources)
}

/// What [`list_where`] read.
#[derive(Debug)]
pub struct Listed {
    pub resources: Vec<Value>,
    /// Requests it took.
    pub pages: usize,
}

/// Every resource of `endpoint` that `filter` selects (all of them for `None`), by pages of
/// `page`.
pub async fn list_where(
    client: &ScimClient,
    endpoint: &str,
    attributes: &str,
    filter: Option<&str>,
    page: usize,
    limits: ReadLimits,
) -> Result<Listed, ListError> {
    let mut pages = 0usize;
    let mut out = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut budget = ReadBudget::new(limits);
    let mut start = 1usize;
    loop {
        let mut url = client.url(&[endpoint]);
        let (start_s, count_s) = (start.to_string(), page.to_string());
        let mut pairs = vec![("attributes", attributes)];
        if let Some(f) = filter {
            pairs.push(("filter", f));
        }
        pairs.extend([("startIndex", start_s.as_str()), ("count", count_s.as_str())]);
        url.set_query(Some(&query(&pairs)));
        pages += 1;
        let (v, _) = client.get_json(url).await.map_err(ListError::Request)?;
        let p = ListPage::parse(&v)
            .map_err(|e| ListError::NotAList { endpoint: endpoint.into(), message: e.to_string() })?;
        let n = p.resources.len();
        budget.page(n).map_err(|bound| ListError::Bound { endpoint: endpoint.into(), bound })?;
        let mut fresh = 0usize;
        let mut in_page: HashMap<String, String> = HashMap::new();
        for r in p.resources {
            let id = wire::get(&r, "id").and_then(Value::as_str).unwrap_or_default().to_string();
            let name = name_of(&r);
            let clash = |first: &String| ListError::Duplicate {
                endpoint: endpoint.into(),
                id: id.escape_debug().to_string(),
                first: shown(first),
                second: shown(&name),
            };
            // Within one page the same id twice is never a move of the list.
            if let Some(first) = in_page.get(&id) {
                return Err(clash(first));
            }
            in_page.insert(id.clone(), name.clone());
            match seen.get(&id) {
                Some(first) if *first != name => return Err(clash(first)),
                Some(_) => {}
                None => {
                    seen.insert(id, name);
                    out.push(r);
                    fresh += 1;
                }
            }
        }
        // A full page of resources already seen means the service ignores startIndex (or
        // its totalResults is wrong): reading on would never end.
        if n > 0 && fresh == 0 {
            return Err(ListError::Stuck { endpoint: endpoint.into(), start, total: p.total_results });
        }
        start += n;
        if n == 0 || start > p.total_results {
            break;
        }
    }
    Ok(Listed { resources: out, pages })
}

fn shown(name: &str) -> String {
    if name.is_empty() { "a resource without a name".into() } else { format!("`{}`", name.escape_debug()) }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::extract::Query;
    use axum::routing::get;
    use serde_json::json;

    use super::*;
    use crate::model::Secret;
    use crate::remote::http::RetryPolicy;

    fn client(running: &keyward_fakes::Running) -> ScimClient {
        ScimClient::new(
            format!("{}/v2", running.url()).parse().unwrap(),
            reqwest::Client::new(),
            Secret::new("t".into()),
            RetryPolicy::default(),
        )
        .unwrap()
    }

    /// Serves `/v2/Users` from `page(startIndex)`, counting requests.
    fn server(
        page: impl Fn(usize) -> Vec<Value> + Clone + Send + Sync + 'static,
        delay: Duration,
    ) -> (keyward_fakes::Running, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let app = Router::new().route(
            "/v2/Users",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let page = page.clone();
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    let start: usize = q.get("startIndex").and_then(|s| s.parse().ok()).unwrap_or(1);
                    let resources = page(start);
                    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                        "totalResults": 1_000_000_000u64, "startIndex": start, "Resources": resources})
                    .to_string()
                }
            }),
        );
        (keyward_fakes::serve(app), calls)
    }

    fn user(id: &str, name: &str) -> Value {
        json!({"id": id, "userName": name})
    }

    fn limits(max_pages: usize, max_objects: usize, max_time: Duration) -> ReadLimits {
        ReadLimits { max_pages, max_objects, max_time }
    }

    /// A service that always has a next page of new users is stopped at the page bound.
    #[tokio::test]
    async fn a_service_paging_without_end_is_stopped() {
        let (s, calls) = server(|start| vec![user(&format!("u{start}"), &format!("u{start}@x"))], Duration::ZERO);
        let e =
            list_all(&client(&s), "Users", "userName", 1, limits(25, 1000, Duration::from_secs(60))).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "reading the list of Users stopped: the service returned more than 25 pages; it seems to page without end"
        );
        assert_eq!(calls.load(Ordering::Relaxed), 26);

        let (s, _) = server(
            |start| (0..10).map(|i| user(&format!("u{start}-{i}"), &format!("u{start}-{i}@x"))).collect(),
            Duration::ZERO,
        );
        let e = list_all(&client(&s), "Users", "userName", 10, limits(1000, 35, Duration::from_secs(60)))
            .await
            .unwrap_err();
        assert!(matches!(e, ListError::Bound { bound: BoundError::Objects(35), .. }), "{e}");
    }

    /// A slow service paging without end is stopped at the time bound.
    #[tokio::test]
    async fn a_slow_endless_read_is_stopped_in_time() {
        let (s, calls) =
            server(|start| vec![user(&format!("u{start}"), &format!("u{start}@x"))], Duration::from_millis(50));
        let started = std::time::Instant::now();
        let e = list_all(&client(&s), "Users", "userName", 1, limits(100_000, 100_000, Duration::from_millis(400)))
            .await
            .unwrap_err();
        assert!(matches!(e, ListError::Bound { bound: BoundError::Time(_), .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(calls.load(Ordering::Relaxed) < 50);
    }

    /// Regression: the same id for a second account hid it (the first one read won).
    #[tokio::test]
    async fn one_id_for_two_accounts_is_refused() {
        // In one page.
        let (s, _) = server(
            |start| if start == 1 { vec![user("7", "ann@x"), user("7", "bob@x")] } else { vec![] },
            Duration::ZERO,
        );
        let e = list_all(&client(&s), "Users", "userName", 10, ReadLimits::default()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "the list of Users names the id `7` twice, for `ann@x` and for `bob@x`; one would be hidden"
        );
        // On two pages.
        let (s, _) = server(
            |start| match start {
                1 => vec![user("7", "ann@x")],
                2 => vec![user("7", "bob@x")],
                _ => vec![],
            },
            Duration::ZERO,
        );
        let e = list_all(&client(&s), "Users", "userName", 1, ReadLimits::default()).await.unwrap_err();
        assert!(matches!(&e, ListError::Duplicate { id, .. } if id == "7"), "{e}");
        // The same account again on a later page (the list moved) is read once.
        let (s, _) = server(
            |start| match start {
                1 => vec![user("7", "ann@x")],
                2 => vec![user("7", "Ann@x"), user("8", "bob@x")],
                _ => vec![],
            },
            Duration::ZERO,
        );
        let users = list_all(&client(&s), "Users", "userName", 1, ReadLimits::default()).await.unwrap();
        assert_eq!(users.len(), 2);
    }
}
