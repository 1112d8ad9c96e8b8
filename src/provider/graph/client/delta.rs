//! Delta rounds sent together (§2.1 Delta, §2.10 JSON batching): the first page of every
//! round goes in one `$batch`, and the pages that follow (`@odata.nextLink`) in later batches,
//! one request per round still under way, so an idle check of several feeds costs one request.
//!
//! Guarantees, beyond [`GraphClient::delta_round`]'s (links stay on the endpoint, paging that
//! loops or passes the read's limits stops):
//! - every start is checked before anything is sent: a link pointing elsewhere sends nothing;
//! - a batch answer must hold exactly one answer per request sent: one missing, unknown or
//!   given twice fails every round (a hostile or broken answer is not guessed at);
//! - an inner `429` (or `502/503/504`) is sent again in the next batch, after the pause it asked
//!   for (which pauses the whole client), at most [`super::MAX_BATCHED_RETRIES`] times;
//! - any other inner error ends that round only, with the status and Graph's code, so the
//!   caller can tell a refused link (`400 syncStateNotFound`, `410`) from a failure.

use serde_json::{Value, json};

use super::{BATCH_LIMIT, GraphClient, GraphError, MAX_BATCHED_RETRIES, Method, Pages, display_url, graph_error};

/// A delta round's objects and its new delta link.
pub type Round = (Vec<Value>, String);

/// One round under way.
struct Running {
    pages: Pages,
    items: Vec<Value>,
    tries: u32,
    done: Option<Result<String, GraphError>>,
}

impl GraphClient {
    /// The request's url relative to the version root, as a batch wants it.
    fn relative(&self, url: &reqwest::Url) -> Result<String, GraphError> {
        url.as_str()
            .strip_prefix(self.root.as_str())
            .filter(|rest| rest.starts_with('/'))
            .map(str::to_string)
            .ok_or_else(|| GraphError::Invalid(format!("{} is not under {}", display_url(url), self.root)))
    }

    /// One round of each delta query of `starts` (paths relative to the version root, or
    /// delta links from earlier rounds), in `$batch`es: see the module's guarantees. The outer
    /// error fails every round (a start that is not on the endpoint, a batch refused or
    /// answered wrongly); an inner one, that round.
    pub async fn delta_rounds(&self, starts: &[&str]) -> Result<Vec<Result<Round, GraphError>>, GraphError> {
        if starts.len() > BATCH_LIMIT {
            return Err(GraphError::Invalid(format!("more than {BATCH_LIMIT} delta queries in one batch")));
        }
        let mut rounds = Vec::with_capacity(starts.len());
        for start in starts {
            let first = if start.starts_with('/') { self.absolute(start)? } else { self.check_next(start)? };
            self.relative(&first)?;
            rounds.push(Running { pages: Pages::new(first, self.limits), items: Vec::new(), tries: 0, done: None });
        }
        loop {
            let pending: Vec<usize> = (0..rounds.len()).filter(|&i| rounds[i].done.is_none()).collect();
            if pending.is_empty() {
                break;
            }
            let mut requests = Vec::with_capacity(pending.len());
            for &i in &pending {
                let url = self.relative(&rounds[i].pages.next)?;
                requests.push(json!({"id": i.to_string(), "method": "GET", "url": url}));
            }
            let o =
                self.send_raw(Method::POST, self.absolute("/$batch")?, Some(&json!({"requests": requests}))).await?;
            if o.status >= 400 {
                return Err(graph_error(o.status, o.body.as_ref(), None));
            }
            let answers = answers(o.body.as_ref(), &pending)?;
            let mut pause = None;
            for (i, answer) in pending.into_iter().zip(answers) {
                let status = answer.get("status").and_then(Value::as_u64).unwrap_or(0);
                let round = &mut rounds[i];
                if matches!(status, 429 | 502 | 503 | 504) && round.tries < MAX_BATCHED_RETRIES {
                    round.tries += 1;
                    if status == 429 {
                        self.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let after = super::inner_retry_after(answer).unwrap_or(std::time::Duration::from_secs(1));
                    pause = Some(pause.map_or(after, |p: std::time::Duration| p.max(after)));
                    continue;
                }
                if !(200..300).contains(&status) {
                    round.done = Some(Err(graph_error(status as u16, answer.get("body"), None)));
                    continue;
                }
                round.done = self.page(round, answer.get("body").unwrap_or(&Value::Null));
            }
            match pause {
                Some(w) => self.limiter.throttled(w.min(super::MAX_RETRY_AFTER)),
                None => self.limiter.succeeded(),
            }
        }
        Ok(rounds
            .into_iter()
            .map(|r| {
                let link = r.done.expect("every round ended");
                link.map(|l| (r.items, l))
            })
            .collect())
    }

    /// Takes one page of `round`: its objects, then its next link (the round goes on: `None`)
    /// or its delta link (the round ends).
    fn page(&self, round: &mut Running, body: &Value) -> Option<Result<String, GraphError>> {
        let Some(values) = body.get("value").and_then(Value::as_array) else {
            let url = display_url(&round.pages.next);
            return Some(Err(GraphError::Invalid(format!("{url} answered without a value array"))));
        };
        round.items.extend(values.iter().cloned());
        if let Err(b) = round.pages.budget.page(values.len()) {
            let url = display_url(&round.pages.next);
            return Some(Err(GraphError::Invalid(format!("reading {url} stopped: {b}"))));
        }
        if let Some(n) = body.get("@odata.nextLink").and_then(Value::as_str) {
            let next = self.check_next(n).and_then(|u| self.relative(&u).map(|_| u));
            return match next.and_then(|u| round.pages.advance(u)) {
                Ok(()) => None,
                Err(e) => Some(Err(e)),
            };
        }
        match body.get("@odata.deltaLink").and_then(Value::as_str) {
            Some(d) => Some(self.check_next(d).map(|_| d.to_string())),
            None => Some(Err(GraphError::Invalid(format!(
                "{} ended a delta round without @odata.deltaLink",
                display_url(&round.pages.next)
            )))),
        }
    }
}

/// The answers of a batch, in the order of `ids`: exactly one each.
fn answers<'a>(body: Option<&'a Value>, ids: &[usize]) -> Result<Vec<&'a Value>, GraphError> {
    let mut found: Vec<Option<&Value>> = vec![None; ids.len()];
    for r in body.and_then(|b| b.get("responses")).and_then(Value::as_array).into_iter().flatten() {
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        let Some(k) = ids.iter().position(|i| i.to_string() == id) else {
            return Err(GraphError::Invalid(format!("the batch answer has a response to a request not sent: `{id}`")));
        };
        if found[k].replace(r).is_some() {
            return Err(GraphError::Invalid(format!("the batch answer has two responses to request `{id}`")));
        }
    }
    found
        .into_iter()
        .zip(ids)
        .map(|(r, id)| {
            r.ok_or_else(|| GraphError::Invalid(format!("the batch answer has no response to request `{id}`")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_answer_must_answer_each_request_once() {
        let a = json!({"id": "0", "status": 200});
        let b = json!({"id": "2", "status": 410});
        let body = json!({"responses": [b, a]});
        let got = answers(Some(&body), &[0, 2]).unwrap();
        assert_eq!(got, vec![&a, &b], "in the order sent, whatever the order answered");
        let missing = answers(Some(&json!({"responses": [a]})), &[0, 2]).unwrap_err().to_string();
        assert!(missing.contains("no response to request `2`"), "{missing}");
        let twice = answers(Some(&json!({"responses": [a, b, a]})), &[0, 2]).unwrap_err().to_string();
        assert!(twice.contains("two responses to request `0`"), "{twice}");
        let unknown = answers(Some(&json!({"responses": [a, b, {"id": "7"}]})), &[0, 2]).unwrap_err().to_string();
        assert!(unknown.contains("not sent: `7`"), "{unknown}");
        assert!(answers(None, &[0]).is_err(), "no responses at all");
    }
}
