//! Paged searches and ranged reads with a bound: a server that answers a paging cookie for
//! ever (RFC 2696 leaves the end to the server), or ranges of values that never reach `*`, is
//! stopped with an error naming the bound, instead of being read until memory runs out.
//! The Active Directory change feed reads through these.

use super::*;
use crate::provider::bounds::{BoundError, ReadBudget, ReadLimits};

/// A bounded read that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundedFailure {
    #[error(transparent)]
    Ldap(#[from] LdapFailure),
    /// The server went past a bound of [`ReadLimits`].
    #[error("{op}: {bound}")]
    Bound { op: String, bound: BoundError },
    /// A range of values that does not start after the one before it.
    #[error("{op}: the server answered the range {key} after values up to {after}; it does not move on")]
    Range { op: String, key: String, after: usize },
}

impl Client {
    /// [`Client::search_paged_with`] within `limits`: past them (pages, entries or time), an
    /// error naming the bound.
    pub async fn search_paged_bounded(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        page_size: i32,
        limits: ReadLimits,
        extra: &[RawControl],
    ) -> Result<Vec<SearchEntry>, BoundedFailure> {
        let mut budget = ReadBudget::new(limits);
        self.search_pages(base, filter, attrs, page_size, false, extra, |op, n| {
            budget.page(n).map_err(|bound| BoundedFailure::Bound { op: op.to_string(), bound })
        })
        .await
    }

    /// [`Client::ranged_values_with`] within `limits`; each range must start after the one
    /// before it.
    pub async fn ranged_values_bounded(
        &self,
        dn: &str,
        attr: &str,
        first_key: &str,
        first: &[String],
        limits: ReadLimits,
        extra: &[RawControl],
    ) -> Result<Vec<String>, BoundedFailure> {
        let op = format!("reading the values of {attr} of {dn}");
        let mut budget = ReadBudget::new(limits);
        let mut out = first.to_vec();
        let mut key = first_key.to_ascii_lowercase();
        let prefix = format!("{};range=", attr.to_ascii_lowercase());
        while let Some(end) = range_end(&key) {
            let want = format!("{attr};range={}-*", end.saturating_add(1));
            let Some(e) = self.read_entry_with(dn, &[want.as_str()], extra).await? else { break };
            let Some((k, v)) = attrs_by_lower_name(&e).into_iter().find(|(k, _)| k.starts_with(&prefix)) else {
                break;
            };
            budget.page(v.len()).map_err(|bound| BoundedFailure::Bound { op: op.clone(), bound })?;
            if !range_moves_on(&k, end) {
                return Err(BoundedFailure::Range { op, key: k, after: end });
            }
            out.extend(v);
            key = k;
        }
        Ok(out)
    }
}

/// Whether the range named by `key` starts after `after`, where the one before it ended.
fn range_moves_on(key: &str, after: usize) -> bool {
    let Some((_, range)) = key.split_once(";range=") else { return false };
    let start = range.split_once('-').and_then(|(s, _)| s.parse::<usize>().ok());
    let end = range_end(key);
    start.is_some_and(|s| s > after) && end.is_none_or(|e| e > after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ranges_must_move_on() {
        assert!(range_moves_on("member;range=1500-2999", 1499));
        assert!(range_moves_on("member;range=1500-*", 1499));
        assert!(!range_moves_on("member;range=0-1499", 1499));
        assert!(!range_moves_on("member;range=1500-1400", 1499));
        assert!(!range_moves_on("member;range=x-*", 1499));
        assert!(!range_moves_on("member", 1499));
    }

    #[tokio::test]
    async fn a_server_that_pages_without_end_is_stopped_at_the_bound() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        tokio::spawn(super::super::tests::endless_pager(listener));
        let o = ConnectOptions { url: &url, start_tls: false, ca_file: None, bind_dn: "cn=x", password: "p" };
        let client = Client::connect(&o).await.unwrap();
        let limits = ReadLimits { max_pages: 5, max_objects: 100, max_time: Duration::from_secs(60) };
        let e = client.search_paged_bounded("dc=x", "(objectClass=*)", &["cn"], 10, limits, &[]).await.unwrap_err();
        assert_eq!(
            e,
            BoundedFailure::Bound { op: "searching dc=x for (objectClass=*)".into(), bound: BoundError::Pages(5) }
        );
        assert!(e.to_string().contains("more than 5 pages"), "{e}");
        assert_eq!(client.operations(), 7, "the bind and six pages: stops right after the bound");
    }
}
