//! The `scim` provider: any SCIM 2.0 service (RFC 7643, RFC 7644).
//!
//! Guarantees:
//! - it adapts to what `/ServiceProviderConfig` announces: the page size (`filter.maxResults`),
//!   Bulk and its `maxOperations` / `maxPayloadSize`, ETags, filtering (without it, accounts are
//!   found by reading the list), and PATCH (without PATCH, a resource is read whole and written
//!   back with PUT);
//! - it manages only the user attributes the service keeps, as `/ResourceTypes` and `/Schemas`
//!   say (see [`schema`]); an enable or disable refused beside another attribute is sent again
//!   on its own;
//! - reading costs one request per page of users and per page of groups, plus discovery: list
//!   requests ask only for the attributes keyward compares (`attributes=`), never one request
//!   per user;
//! - every write of a resource that was read carries `If-Match` with the version read, when the
//!   service supports ETags; a 412 is reported as "changed since it was read", never retried;
//! - writes are idempotent: a create that meets an existing userName (409 uniqueness) adopts
//!   that account instead of failing or duplicating it; a group is created only when none of
//!   its name exists; adding a present member or removing an absent one succeeds;
//! - `watch` reads it through a change feed on `meta.lastModified` where the service can filter
//!   and sort on it (two requests per check when nothing changed; removals only at a full
//!   read), and drift is attributed with the changed object's `meta.lastModified` (see [`feed`]);
//! - every value placed in a filter or a PATCH path is escaped (see [`filter`]);
//! - the bearer token is only ever sent to the configured URL and never printed.
//!
//! It assumes the service keys users by `userName` (case-insensitively, `caseExact: false` in
//! RFC 7643 §4.1) and that groups are found by `displayName`, also case-insensitively.
//!
//! Behaviour observed in scim2-server 0.8.3 (the peer the tests run against), which the RFC
//! allows but does not require: `/ServiceProviderConfig` needs no authentication, so a wrong
//! token shows up on the first list request; ETags are weak counters shared by all resources;
//! a PATCH answers 204 with an `ETag` header; a Bulk outcome carries `location` and `version`
//! but no body; deleting a user leaves its id in groups' `members`; list results are ordered by
//! id; group `displayName` is not unique (RFC 7643 §4.2 gives it no uniqueness), so keyward
//! itself must not create a group twice.

mod apply;
mod bulk;
pub mod client;
mod feed;
pub mod filter;
mod list;
mod read;
pub mod schema;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use self::bulk::{Fit, Packer};
use self::client::{Reply, ScimClient, ScimError};
use self::read::{Stamped, account_of, binding_of};
use self::wire::{BulkLimits, GROUP_SCHEMA, ListPage, ServiceConfig, WireGroup, WireUser};
use super::{
    Access, ApplyError, Attribution, Capabilities, Changes, Cursor, FeedError, Provider, ProviderError, capabilities,
};
use crate::model::config::Connection;
use crate::model::{Binding, LiveAccount, LiveBinding, LiveTarget, ProviderKind, SecretRef, Target, UserAttrs, digest};
use crate::plan::{Change, Operation, Principal};
use crate::provider::bounds::ReadLimits;
use crate::remote::http::{self, RetryPolicy};

/// Requests in flight at once when the service has no Bulk.
const CONCURRENCY: usize = 8;
/// The page size when the service announces no `filter.maxResults`.
const DEFAULT_PAGE: usize = 100;
/// Members added or removed by one PATCH operation.
const MEMBERS_PER_OP: usize = 1000;
/// userNames per lookup filter when adopting existing accounts.
const LOOKUP_BATCH: usize = 20;
/// The longest a single request may take (a Bulk request of many operations is slow).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// An account as last seen or written.
#[derive(Debug, Clone)]
struct UserEntry {
    id: String,
    version: Option<String>,
    emails: Vec<Value>,
}

/// A group as last seen or written.
#[derive(Debug, Clone)]
struct GroupEntry {
    id: String,
    version: Option<String>,
}

/// What keyward knows of the target since its read: natural keys to ids and versions.
#[derive(Debug, Default)]
struct State {
    /// By lower-cased userName.
    users: HashMap<String, UserEntry>,
    /// By lower-cased displayName; the first one read wins (the planner refuses duplicates).
    groups: HashMap<String, GroupEntry>,
}

fn key(s: &str) -> String {
    s.to_lowercase()
}

pub struct ScimProvider {
    target: String,
    caps: Capabilities,
    access: Access,
    client: ScimClient,
    token_ref: SecretRef,
    config: Option<ServiceConfig>,
    state: Option<State>,
    /// User attributes the service answered a write without (see [`Provider::unkept`]).
    learned: std::collections::BTreeMap<crate::model::UserField, String>,
    limits: ReadLimits,
    /// `meta.lastModified` of the objects read (all of them on a full read, those changed on a
    /// feed round), by [`Stamped::key`], for [`Provider::attribute`].
    modified: HashMap<String, String>,
    /// Fingerprints of the groups a feed round read, by id (see [`Provider::binding_fingerprint`]).
    fingerprints: HashMap<String, String>,
}

impl ScimProvider {
    pub fn open(target: &Target, root: &Path, access: Access) -> Result<Self, ProviderError> {
        Self::open_with(target, root, access, RetryPolicy::default())
    }

    /// [`Self::open`], retrying requests as `retry` says.
    pub fn open_with(target: &Target, root: &Path, access: Access, retry: RetryPolicy) -> Result<Self, ProviderError> {
        let name = target.name.to_string();
        let fail = |message: String| ProviderError::Remote { target: name.clone(), message };
        let Connection::Scim { url, token } = &target.connection else {
            return Err(fail("the target is not a SCIM target".into()));
        };
        let base: Url = url.parse().map_err(|e| fail(format!("`{url}` is not a URL: {e}")))?;
        http::check_url(&base).map_err(|e| fail(e.to_string()))?;
        let secret = http::resolve_secret(token, root).map_err(|e| fail(e.to_string()))?;
        if let Some(what) = http::header_value_problem(secret.expose()) {
            return Err(ProviderError::Config {
                target: name.clone(),
                message: format!(
                    "the token for target {name} ({token}) is not a valid header value: it holds {what}; no request was sent"
                ),
            });
        }
        let ca = target.ca_file.as_ref().map(|c| root.join(c));
        let http = http::client(ca.as_deref(), REQUEST_TIMEOUT).map_err(|e| fail(e.to_string()))?;
        let client = ScimClient::new(base, http, secret, retry).map_err(|e| fail(e.to_string()))?;
        Ok(ScimProvider {
            target: name,
            caps: capabilities(ProviderKind::Scim),
            access,
            client,
            token_ref: token.clone(),
            config: None,
            state: None,
            learned: Default::default(),
            limits: ReadLimits::default(),
            modified: HashMap::new(),
            fingerprints: HashMap::new(),
        })
    }

    fn read_error(&self, what: &str, e: ScimError) -> ProviderError {
        let hint = match e.status() {
            Some(401) => format!("; check the token in {}", self.token_ref),
            Some(403) => format!("; the token in {} may lack the rights to read it", self.token_ref),
            _ => String::new(),
        };
        ProviderError::Remote {
            target: self.target.clone(),
            message: format!("cannot read {what} from {}: {e}{hint}", client::display_url(self.client.base())),
        }
    }

    /// Reads `/ServiceProviderConfig` (RFC 7643 §5). A service without it is treated as
    /// announcing PATCH and nothing else.
    async fn discover(&mut self) -> Result<ServiceConfig, ProviderError> {
        match self.client.get_json(self.client.url(&["ServiceProviderConfig"])).await {
            Ok((v, _)) => Ok(ServiceConfig::parse(&v)),
            Err(e) if matches!(e.status(), Some(404 | 501)) => {
                tracing::warn!(target_name = %self.target, "the SCIM service has no /ServiceProviderConfig; assuming PATCH without Bulk or ETags");
                Ok(ServiceConfig {
                    patch: true,
                    bulk: None,
                    etag: false,
                    max_results: None,
                    filter: true,
                    remove_members_by_value: false,
                    sort: false,
                })
            }
            Err(e) => Err(self.read_error("the service provider configuration", e)),
        }
    }

    /// Every resource of an endpoint, by pages of `page` (see [`list::list_all`]).
    async fn list(&self, endpoint: &str, attributes: &str, page: usize) -> Result<Vec<Value>, ProviderError> {
        list::list_all(&self.client, endpoint, attributes, page, self.limits).await.map_err(|e| match e {
            list::ListError::Request(e) => self.read_error(&format!("the {}", endpoint.to_lowercase()), e),
            e => self.target_error(format!("{}: {e}", self.shown_base())),
        })
    }

    /// The service's root URL, as errors show it.
    fn shown_base(&self) -> String {
        client::display_url(self.client.base())
    }

    fn target_error(&self, message: String) -> ProviderError {
        ProviderError::Remote { target: self.target.clone(), message }
    }
}

/// A query string with every value percent-encoded (spaces as `%20`, not `+`).
fn query(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl Provider for ScimProvider {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
        Ok(self.read_full().await?.live)
    }

    /// Users and groups have a feed where the service can filter and sort on
    /// `meta.lastModified` (see [`feed`]); a read for writing or for the review needs none.
    async fn read_with_cursor(&mut self) -> Result<(LiveTarget, Option<Cursor>), ProviderError> {
        if self.access != Access::Read {
            return Ok((self.read().await?, None));
        }
        self.read_with_feed().await
    }

    async fn read_changes(&mut self, cursor: &Cursor, last: &LiveTarget) -> Result<Changes, FeedError> {
        self.changes_since(cursor, last).await
    }

    fn binding_fingerprint(&self, binding: &LiveBinding) -> String {
        self.feed_fingerprint(binding)
    }

    fn requests(&self) -> Option<usize> {
        Some(self.client.requests())
    }

    /// The `meta.lastModified` of the object a drift change concerns (the group, for a
    /// membership), with no actor: SCIM reports when, not who.
    async fn attribute(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        self.attribute_drift(changes)
    }

    async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        self.apply_changes(changes).await
    }

    fn unkept(&self) -> std::collections::BTreeMap<crate::model::UserField, String> {
        self.learned.clone()
    }
}
