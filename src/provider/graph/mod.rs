//! The `graph` provider: Entra ID through Microsoft Graph v1.0 (reference sheet section 2).
//!
//! Guarantees:
//! - reading costs one request per page of 999 users, one per page of groups, service
//!   principals and applications, and the groups' member pages and service principals'
//!   app-role-assignment pages fetched twenty at a time in `$batch` requests (their follow-up
//!   pages one by one, following `@odata.nextLink` whole), plus the role definitions, role
//!   assignments and methods policy: never one request per user. Sign-in activity, which
//!   caps pages at 500 and needs a licence, is read only for the access review
//!   ([`Access::Review`]); a tenant without the licence is reported once and skipped;
//! - writes go in `$batch` requests of twenty; memberships are added twenty per
//!   `members@odata.bind` PATCH (all or nothing, §2.2), so 1,000 additions to one group take
//!   three HTTP requests; throttled requests inside a batch are retried alone after their
//!   `Retry-After`, and the client slows down instead of failing (see [`client`]);
//! - a `404` for an object this run created is replication delay (§2.1): retried with bounded
//!   backoff; any other `404` on a removal means it is already gone;
//! - a new user gets a random initial password that must be changed at first sign-in; the
//!   password goes only into the create request and is never printed, logged or kept;
//! - deleted users are soft-deleted: restorable for 30 days (the plan says so, from the
//!   capabilities);
//! - users synchronized from on-premises (`onPremisesSyncEnabled`) are reported as mastered
//!   there, and groups whose members a rule or on-premises decides as such: the planner sends
//!   none of the changes Graph refuses for them;
//! - errors show Graph's `error.code`, `message` and the request id.
//!
//! It assumes: users are keyed by `userPrincipalName`, groups by `displayName`, directory roles
//! by role definition `displayName` (assignments at tenant scope `/` only), app roles by
//! `{service principal displayName}/{appRole value}` (or its display name when it has no
//! value); keyward's service accounts are applications tagged `keyward:NAME`, whose service
//! principal is the account that holds roles. Their credentials are the application's
//! `passwordCredentials` and certificate `keyCredentials` (§2.5): secrets come from
//! `addPassword` (the `secretText` goes only to delivery), certificates are added with
//! `addKey` and removed with `removeKey`, each with a proof token signed by the certificate
//! keyward delivered last, or, when keyward holds no current certificate of the application,
//! by a PATCH of `keyCredentials` that keeps the others. Also assumed, not on the reference sheet: `$expand=manager($select=id)` on the
//! user list and `$expand=owners($select=id)` on the application list; `PUT
//! /users/{id}/manager/$ref`; listing role assignments without a `$filter`.

mod apply;
mod attribution;
pub mod client;
mod credentials;
mod eligibility;
mod feed;
pub mod pim;
mod read;
pub mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde_json::{Value, json};

use self::client::{Call, GraphClient, GraphError};
use self::wire::{SERVICE_ACCOUNT_TAG, USER_SELECT, WireUser};
use super::{
    Access, ApplyError, Attribution, Capabilities, IssueMaterial, IssueRequest, Issued, Provider, ProviderError,
    capabilities,
};
use crate::credential::proof::{SigningCertificate, proof_token};
use crate::model::config::Connection;
use crate::model::{
    AppRoleRef, Binding, CredentialType, LiveAccount, LiveBinding, LiveServiceAccount, LiveTarget, ProviderKind,
    Secret, Target, digest,
};
use crate::plan::{Change, Operation, Principal};
use crate::remote::RetryPolicy;
use crate::remote::entra::TokenSource;
use crate::remote::http;

/// The public-cloud Graph endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://graph.microsoft.com";
/// The longest a single request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Most members bound by one PATCH (§2.2).
const BIND_LIMIT: usize = 20;
/// How far back the directory audit log is searched for who made a drift difference.
const AUDIT_LOOKBACK_DAYS: i64 = 30;
/// The most pages of the directory audit log read for one plan.
const AUDIT_MAX_PAGES: usize = 10;

fn key(s: &str) -> String {
    s.to_lowercase()
}

/// A service account as read or created.
#[derive(Debug, Clone, Default)]
struct SaEntry {
    app_object_id: String,
    sp_id: Option<String>,
    owners: Vec<String>,
    /// Password credential key ids.
    passwords: HashSet<String>,
    /// Certificate key credentials: key id → (thumbprint, end).
    keys: HashMap<String, (Option<String>, crate::model::Timestamp)>,
}

/// Natural keys to ids, from the read and the writes since.
#[derive(Debug, Default)]
struct State {
    users: HashMap<String, String>,
    groups: HashMap<String, String>,
    /// Role definition display name → id.
    roles: HashMap<String, String>,
    /// Role template id → role definition id (the definitions read that name a template).
    role_templates: HashMap<String, String>,
    /// (role definition id, principal id) → assignment id.
    role_assignments: HashMap<(String, String), String>,
    /// `app/role` → (service principal id, app role id).
    app_roles: HashMap<String, (String, String)>,
    /// (service principal id, app role id, principal id) → assignment id.
    app_role_assignments: HashMap<(String, String, String), String>,
    service_accounts: HashMap<String, SaEntry>,
    /// Eligibility and role management policies (Privileged Identity Management).
    pim: eligibility::PimState,
}

pub struct GraphProvider {
    target: String,
    caps: Capabilities,
    access: Access,
    client: GraphClient,
    state: Option<State>,
    /// Ids of objects this provider created, whose 404s are replication delay.
    created: HashSet<String>,
    /// userPrincipalName domains (lower case) federated with another identity provider.
    federated_domains: Vec<String>,
}

impl GraphProvider {
    pub fn open(target: &Target, root: &Path, access: Access) -> Result<Self, ProviderError> {
        Self::open_with(target, root, access, RetryPolicy::default())
    }

    /// [`Self::open`], retrying requests as `retry` says.
    pub fn open_with(target: &Target, root: &Path, access: Access, retry: RetryPolicy) -> Result<Self, ProviderError> {
        let name = target.name.to_string();
        let fail = |message: String| ProviderError::Remote { target: name.clone(), message };
        let Connection::Graph { tenant, client_id, credential, endpoint, authority, federated_domains } =
            &target.connection
        else {
            return Err(fail("the target is not a Graph target".into()));
        };
        let endpoint = endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/');
        let url: Url = endpoint.parse().map_err(|e| fail(format!("`{endpoint}` is not a URL: {e}")))?;
        http::check_url(&url).map_err(|e| fail(e.to_string()))?;
        let ca = target.ca_file.as_ref().map(|c| root.join(c));
        let http = http::client(ca.as_deref(), REQUEST_TIMEOUT).map_err(|e| fail(e.to_string()))?;
        let scope = format!("{endpoint}/.default");
        let tokens =
            TokenSource::new(http.clone(), authority.as_deref(), tenant, client_id, credential, &scope, root, &name)?
                .with_retry(retry);
        let client = GraphClient::new(&url, http, tokens).map_err(|e| fail(e.to_string()))?.with_retry(retry);
        Ok(GraphProvider {
            target: name,
            caps: capabilities(ProviderKind::Graph),
            access,
            client,
            state: None,
            created: HashSet::new(),
            federated_domains: federated_domains.clone(),
        })
    }

    /// HTTP requests sent so far (each `$batch` once), for measurements.
    pub fn requests(&self) -> usize {
        self.client.requests()
    }
}

/// A failed credential write, with Graph's code, message and request id (never a secret: the
/// request bodies are not quoted).
fn write_error(what: &str, e: GraphError) -> ApplyError {
    let hint = match e.status() {
        Some(403) => "; the application may lack Application.ReadWrite.All or ownership of the application",
        _ => "",
    };
    ApplyError::new(format!("cannot {what}: {e}{hint}"))
}

/// A 400 that says the reference or assignment exists already (§2.2: adding a present member
/// is a 400; the wording of the role and app-role cases is assumed).
fn already_there(e: &GraphError) -> bool {
    let m = e.to_string().to_lowercase();
    m.contains("already exist") || m.contains("conflicting object")
}

/// A 400 that says what a removal names does not exist (§3.2: ending an eligibility nobody has).
fn no_longer_there(e: &GraphError) -> bool {
    e.to_string().to_lowercase().contains("does not exist")
}

fn id_of(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_str).map(str::to_string)
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

#[async_trait]
impl Provider for GraphProvider {
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn read(&mut self) -> Result<LiveTarget, ProviderError> {
        self.read_live().await
    }

    /// Users, groups and directory roles have a feed (delta queries, see [`feed`]); a read for
    /// writing or for the review needs none.
    async fn read_with_cursor(&mut self) -> Result<(LiveTarget, Option<crate::model::feed::Cursor>), ProviderError> {
        if self.access != Access::Read {
            return Ok((self.read_live().await?, None));
        }
        self.read_with_feed().await
    }

    async fn read_changes(
        &mut self,
        cursor: &crate::model::feed::Cursor,
        last: &LiveTarget,
    ) -> Result<crate::model::feed::Changes, super::FeedError> {
        self.changes_since(cursor, last).await
    }

    fn binding_fingerprint(&self, binding: &LiveBinding) -> String {
        feed::binding_fingerprint(binding)
    }

    fn requests(&self) -> Option<usize> {
        Some(self.client.requests())
    }

    async fn apply(&mut self, changes: &[&Change]) -> Vec<Result<(), ApplyError>> {
        self.apply_changes(changes).await
    }

    /// Secrets: `addPassword` (§2.5), whose `secretText` is returned once and handed back
    /// for delivery. Certificates: `addKey` with a proof token signed by `proof` when it is one
    /// of the application's current certificates; otherwise the application's
    /// `keyCredentials` are set by PATCH, the existing ones kept (§2.5: an application without
    /// a valid certificate cannot use `addKey`).
    async fn issue(&mut self, request: &IssueRequest<'_>) -> Result<Issued, ApplyError> {
        self.issue_credential(request).await
    }

    /// `removePassword`, or `removeKey` with a proof token signed by `proof` (a current
    /// certificate of the application), or else a PATCH of `keyCredentials` without the key.
    /// A credential the read did not see, or that Graph no longer has, counts as removed.
    async fn remove_credential(
        &mut self,
        account: &str,
        credential_id: &str,
        proof: Option<&SigningCertificate>,
    ) -> Result<(), ApplyError> {
        self.remove_key_or_password(account, credential_id, proof).await
    }

    /// Looks the drift changes up in `/auditLogs/directoryAudits` (§2.8): the newest entry of
    /// the last 30 days whose target is the changed object (the account for memberships and
    /// account changes) and whose activity concerns the same kind of thing.
    async fn attribute(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        self.attribute_drift(changes).await
    }
}
