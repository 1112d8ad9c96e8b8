//! Microsoft Graph v1.0 (Entra ID), as far as keyward uses it, written from the reference sheet
//! (section 2; "§2.x" below). Each behaviour is marked **documented** (with its section) or
//! **assumed** (a plausible reading where the sheet is silent, kept simple).
//!
//! Served under `/v1.0`, next to the token endpoint of [`crate::entra`]; every Graph request
//! needs a bearer token issued for the scope `{this server's URL}/.default` (the resource of a
//! national cloud or a test endpoint is its own URL: assumed).
//!
//! Named scenarios ([`Scenario`]) make the failure modes keyward must survive reproducible:
//! throttling (a token bucket, applied to each request inside a `$batch` too, §2.10/§2.11),
//! replication delay (a created object is `404` on its next K uses, §2.1 "eventual
//! consistency", modelled as assumed), transient `503`s (every Nth request), and insufficient
//! privileges (`403 Authorization_RequestDenied` on every write, §2.11).
//!
//! Application credentials (§2.5): `addPassword` generates the secret and returns `secretText`
//! in its answer only (stored without it, with a three-character `hint`); `removePassword`;
//! `addKey` and `removeKey` need a proof token ([`crate::proof`]) signed by one of the
//! application's current certificates, judged by this fake's clock ([`Graph::set_now`]), and
//! `addKey` is refused while the application has none (documented: use PATCH). A PATCH of
//! `keyCredentials` replaces the list and is accepted whether or not the application has a
//! valid certificate (assumed: Graph's update of an application is not restricted so), provided
//! every entry carries its certificate in `key`; a PATCH of `passwordCredentials` is refused
//! (documented). `key` is returned only with `$select=keyCredentials` on a single application
//! (documented). `customKeyIdentifier` is the base64 of the certificate's SHA-1 (assumed).
//!
//! Delta queries on users, groups and directory roles ([`delta`]'s module documentation, and
//! `docs/reference/graph.md` for the facts and their sources): every change, whether made through
//! the API, by a seeding helper or in the portal ([`Graph::portal`]), reaches the next delta round.
//!
//! Seeding helpers build large tenants quickly (20,000 users, a 30,000-member group) without
//! requests; [`Graph::log`] counts the requests answered, for tests and benchmarks.

mod apps;
mod audit;
mod credentials;
pub mod delta;
mod groups;
mod http;
pub mod hybrid;
mod pim;
mod pim_policy;
mod portal;
mod roles;
mod seed;
mod state;
mod tenant;
#[cfg(test)]
mod tests;
mod users;

use std::sync::{Arc, Mutex};

use axum::Router;
use serde_json::json;

use crate::entra::Entra;
use crate::{RequestLog, Running, Throttle};

pub use delta::{DELTA_MEMBERS_PAGE, DELTA_PAGE, TOKEN_LIFETIME_SECS};
pub use http::iso;
pub use portal::Portal;
use tenant::{Scenarios, Tenant};

/// Largest page (§2.1 users, §2.9 groups, members, service principals: max `$top` 999).
pub const MAX_PAGE: usize = 999;
/// Default page (§2.1: 100).
pub const DEFAULT_PAGE: usize = 100;
/// Largest page with `signInActivity` selected (§2.1: 500).
pub const MAX_PAGE_SIGN_IN: usize = 500;
/// Most requests in one `$batch` (§2.10) and most members in one `members@odata.bind` (§2.2).
pub const BATCH_LIMIT: usize = 20;

/// A failure mode to reproduce.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// A token bucket: `rate` requests per second, bursts of `burst`; over it, `429` with
    /// `Retry-After` (documented §2.11), for each request inside a batch too (documented §2.10).
    /// The outer `$batch` request itself takes no token (assumed).
    Throttle { rate: f64, burst: u32 },
    /// Each object created through the API answers `404 Request_ResourceNotFound` to the next
    /// `k` requests that name its id (in the path or body). Documented that replication delays
    /// exist (§2.1); this shape of them is assumed.
    ReplicationDelay { k: u32 },
    /// Every `every`-th HTTP request (outer, not inside a batch) answers `503` (assumed shape;
    /// 503 is a documented status, §2.11).
    Transient5xx { every: u64 },
    /// Every write answers `403 Authorization_RequestDenied` (documented §2.11 example).
    InsufficientPrivileges,
    /// The tenant has no licence for `signInActivity`: selecting it answers `403` (assumed code
    /// `Authentication_RequestFromNonPremiumTenantOrB2CTenant`).
    NoSignInActivity,
}

/// The fake Graph service. Cheap to clone; clones share the tenant.
#[derive(Debug, Clone)]
pub struct Graph {
    tenant: Arc<Mutex<Tenant>>,
    entra: Entra,
    log: RequestLog,
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}

const BUILTIN_ROLES: [(&str, &str); 6] = [
    ("62e90394-69f5-4237-9190-012177145e10", "Global Administrator"),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    ("29232cdf-9323-42fd-ade2-1d097af3e4de", "Exchange Administrator"),
    ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
    ("194ae4cb-b126-40b2-bd5b-6091b380977d", "Security Administrator"),
    ("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "Application Administrator"),
];

const METHOD_CONFIGS: [(&str, &str, &str); 8] = [
    ("Fido2", "fido2AuthenticationMethodConfiguration", "enabled"),
    ("MicrosoftAuthenticator", "microsoftAuthenticatorAuthenticationMethodConfiguration", "enabled"),
    ("Sms", "smsAuthenticationMethodConfiguration", "enabled"),
    ("Voice", "voiceAuthenticationMethodConfiguration", "disabled"),
    ("Email", "emailAuthenticationMethodConfiguration", "enabled"),
    ("TemporaryAccessPass", "temporaryAccessPassAuthenticationMethodConfiguration", "disabled"),
    ("SoftwareOath", "softwareOathAuthenticationMethodConfiguration", "disabled"),
    ("X509Certificate", "x509CertificateAuthenticationMethodConfiguration", "disabled"),
];

impl Graph {
    /// An empty tenant with the built-in directory roles and the default authentication methods
    /// policy.
    pub fn new() -> Graph {
        let mut t = Tenant::default();
        for (id, name) in BUILTIN_ROLES {
            t.role_definitions
                .insert(id.to_string(), json!({"id": id, "templateId": id, "displayName": name, "isBuiltIn": true}));
        }
        let roles: Vec<&str> = BUILTIN_ROLES.iter().map(|(id, _)| *id).collect();
        t.pim.policies = pim_policy::Policies::for_roles(&roles);
        for (id, ty, state) in METHOD_CONFIGS {
            t.methods_policy.push(json!({"@odata.type": format!("#microsoft.graph.{ty}"), "id": id, "state": state,
                "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": false}]}));
        }
        Graph { tenant: Arc::new(Mutex::new(t)), entra: Entra::new(), log: RequestLog::default() }
    }

    /// The token endpoint in front of this fake (register clients on it).
    pub fn entra(&self) -> &Entra {
        &self.entra
    }

    /// Every request answered (token requests included; Graph paths start with `/v1.0`).
    pub fn log(&self) -> &RequestLog {
        &self.log
    }

    /// HTTP requests to Graph itself (not the token endpoint).
    pub fn graph_requests(&self) -> usize {
        self.log.count("GET", |p| p.starts_with("/v1.0"))
            + self.log.count("POST", |p| p.starts_with("/v1.0"))
            + self.log.count("PATCH", |p| p.starts_with("/v1.0"))
            + self.log.count("PUT", |p| p.starts_with("/v1.0"))
            + self.log.count("DELETE", |p| p.starts_with("/v1.0"))
    }

    /// Turns a scenario on (several may be on at once).
    pub fn scenario(&self, s: Scenario) -> &Self {
        let mut t = self.tenant.lock().expect("graph");
        match s {
            Scenario::Throttle { rate, burst } => t.scenarios.throttle = Some(Throttle::new(rate, burst)),
            Scenario::ReplicationDelay { k } => t.scenarios.delay = Some(k),
            Scenario::Transient5xx { every } => t.scenarios.transient = Some(every.max(1)),
            Scenario::InsufficientPrivileges => t.scenarios.deny_writes = true,
            Scenario::NoSignInActivity => t.scenarios.no_sign_in = true,
        }
        self
    }

    /// Turns every scenario off.
    pub fn calm(&self) -> &Self {
        self.tenant.lock().expect("graph").scenarios = Scenarios::default();
        self
    }

    /// Requests refused by the throttle so far.
    pub fn throttled(&self) -> u64 {
        self.tenant.lock().expect("graph").scenarios.throttle.as_ref().map_or(0, Throttle::rejected)
    }

    /// The router: the token endpoint, Graph under `/v1.0`, and the request log.
    pub fn router(&self) -> Router {
        let graph = Router::new().fallback(http::handle).with_state(self.clone());
        self.log.layer(self.entra.router().merge(graph))
    }

    /// Serves this fake on a loopback port.
    pub fn serve(&self) -> Running {
        crate::serve(self.router())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tenant) -> R) -> R {
        f(&mut self.tenant.lock().expect("graph"))
    }
}
