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
        let op = format!("searching {base} for {filter}");
        let mut budget = ReadBudget::new(limits);
        let mut out = Vec::new();
        let mut cookie: Vec<u8> = Vec::new();
        loop {
            let control = PagedResults { size: page_size, cookie: std::mem::take(&mut cookie) };
            let mut controls: Vec<RawControl> = vec![control.into()];
            controls.extend(extra.iter().cloned());
            let mut ldap = self.op();
            let r = ldap
                .with_timeout(OP_TIMEOUT)
                .with_controls(controls)
                .search(base, Scope::Subtree, filter, attrs.to_vec())
                .await
                .map_err(|e| transport(&op, e))?;
            let (entries, result) = (r.0, r.1);
            let result = check(&op, Ok(result), &[])?;
            self.pages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let before = out.len();
            // Search references are not entries (see `search_paged_with`).
            out.extend(entries.into_iter().filter(|e| !e.is_ref() && !e.is_intermediate()).map(SearchEntry::construct));
            budget.page(out.len() - before).map_err(|bound| BoundedFailure::Bound { op: op.clone(), bound })?;
            cookie = result
                .ctrls
                .iter()
                .find_map(|c| match c {
                    Control(Some(ControlType::PagedResults), raw) => Some(raw.parse::<PagedResults>().cookie),
                    _ => None,
                })
                .unwrap_or_default();
            if cookie.is_empty() {
                return Ok(out);
            }
        }
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn ranges_must_move_on() {
        assert!(range_moves_on("member;range=1500-2999", 1499));
        assert!(range_moves_on("member;range=1500-*", 1499));
        assert!(!range_moves_on("member;range=0-1499", 1499));
        assert!(!range_moves_on("member;range=1500-1400", 1499));
        assert!(!range_moves_on("member;range=x-*", 1499));
        assert!(!range_moves_on("member", 1499));
    }

    /// A BER element: tag, definite length, content.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// Reads one BER element from `r`: its tag and content.
    async fn read_tlv(r: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
        let tag = r.read_u8().await.ok()?;
        let first = r.read_u8().await.ok()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let mut n = 0usize;
            for _ in 0..(first & 0x7f) {
                n = (n << 8) | r.read_u8().await.ok()? as usize;
            }
            n
        };
        let mut content = vec![0; len];
        r.read_exact(&mut content).await.ok()?;
        Some((tag, content))
    }

    /// An LDAP server that accepts any bind and answers every search with no entry and a
    /// paging cookie, for ever; it counts the searches.
    async fn endless_pager(searches: Arc<std::sync::atomic::AtomicUsize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            while let Some((_, msg)) = read_tlv(&mut s).await {
                // messageID (INTEGER), then the operation's tag.
                let id = &msg[..2 + msg[1] as usize];
                let op = msg[2 + msg[1] as usize];
                let done = [tlv(0x0a, &[0]), tlv(0x04, b""), tlv(0x04, b"")].concat();
                let reply = match op {
                    0x60 => [id.to_vec(), tlv(0x61, &done)].concat(),
                    0x63 => {
                        searches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let value = tlv(0x30, &[tlv(0x02, &[0]), tlv(0x04, b"more")].concat());
                        let control = tlv(0x30, &[tlv(0x04, b"1.2.840.113556.1.4.319"), tlv(0x04, &value)].concat());
                        [id.to_vec(), tlv(0x65, &done), tlv(0xa0, &control)].concat()
                    }
                    _ => return,
                };
                if s.write_all(&tlv(0x30, &reply)).await.is_err() {
                    return;
                }
            }
        });
        url
    }

    #[tokio::test]
    async fn a_server_that_pages_without_end_is_stopped_at_the_bound() {
        let searches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let url = endless_pager(searches.clone()).await;
        let o = ConnectOptions { url: &url, start_tls: false, ca_file: None, bind_dn: "cn=x", password: "p" };
        let client = Client::connect(&o).await.unwrap();
        let limits = ReadLimits { max_pages: 5, max_objects: 100, max_time: Duration::from_secs(60) };
        let e = client.search_paged_bounded("dc=x", "(objectClass=*)", &["cn"], 10, limits, &[]).await.unwrap_err();
        assert_eq!(
            e,
            BoundedFailure::Bound { op: "searching dc=x for (objectClass=*)".into(), bound: BoundError::Pages(5) }
        );
        assert!(e.to_string().contains("more than 5 pages"), "{e}");
        assert_eq!(searches.load(std::sync::atomic::Ordering::Relaxed), 6, "stops right after the bound");
        assert_eq!(client.operations(), 7, "the bind and six pages");
    }
}
