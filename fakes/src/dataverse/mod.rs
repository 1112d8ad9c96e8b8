//! The Dataverse Web API (reference sheet §3), enough for identity and access: business units,
//! security roles, system users, field security profiles and permissions, their N:N
//! relationships, and the audit table.
//!
//! Documented behaviour reproduced: the service root `/api/data/v9.2/`; bearer tokens for the
//! environment URL; `Prefer: odata.maxpagesize=N` (at most 5000) answered with
//! `Preference-Applied` and an `@odata.nextLink` holding a `$skiptoken`; `@odata.etag` on every
//! row and `If-Match` (412 on a mismatch); `POST` answering 204 with `OData-EntityId`;
//! `@odata.bind` lookups; `isdisabled` refused on create; associate / disassociate through
//! `…/$ref`; the intersect collections `systemuserrolescollection` (GET only); multipart
//! `$batch` of up to 1000 operations; error bodies `{"error":{"code":"0x…","message":…}}`;
//! audit rows with action 55 / 56 when a role is given to or taken from a user.
//!
//! The security model ([`security`]): business units whose creation copies every root role
//! (`_parentrootroleid_value`), users moved between units losing their roles, owner and
//! Microsoft Entra group teams with `teamroles_association` and `teammembership_association`,
//! application users, role privileges with their depth (`roleprivilegescollection`,
//! `RetrieveRolePrivilegesRole`), `accessmode` and `islicensed` on users; and change tracking
//! ([`tracking`]). Facts, sources and what is assumed: `docs/reference/dataverse.md`.
//!
//! Assumed: a user can hold only the copy of a role that belongs to their own business unit
//! (any other is refused with `0x80040217`); associating a pair twice answers `0x80040237`
//! (duplicate key); `systemuserprofilescollection` can be listed like
//! `systemuserrolescollection`; GUIDs are issued in sequence.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value, json};

use crate::entra::Entra;
use crate::odata::{self, error, into_response};
use crate::{RequestLog, Running, Throttle};

mod admin;
mod dispatch;
pub mod security;
mod seed;
pub mod tracking;

pub use security::Depth;
pub use tracking::CHANGE_TRACKING_DAYS;

pub const API: &str = "/api/data/v9.2/";
pub(super) const MAX_PAGE: usize = 5000;
const MAX_BATCH: usize = 1000;

pub(super) type Row = Map<String, Value>;

/// A column of a row, `null` when absent (indexing a map by a missing key would panic).
pub(super) fn col<'a>(r: &'a Row, k: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    r.get(k).unwrap_or(&NULL)
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    /// Entity set → id → row.
    pub(super) sets: BTreeMap<String, BTreeMap<String, Row>>,
    /// (systemuserid, roleid) pairs.
    pub(super) user_roles: Vec<(String, String)>,
    /// (systemuserid, fieldsecurityprofileid) pairs.
    pub(super) user_profiles: Vec<(String, String)>,
    pub(super) next_id: u64,
    pub(super) version: u64,
    /// The server's own page limit, below the client's preference (to force paging).
    pub(super) page_cap: Option<usize>,
    /// Entity sets that refuse writes with 403 (privilege denied).
    pub(super) denied: Vec<String>,
    /// Next links that never advance (a broken service).
    pub(super) stuck_paging: bool,
    /// Service protection applied to each operation inside a `$batch`: a part past the rate is
    /// answered 429 with `Retry-After` and not carried out.
    pub(super) part_throttle: Option<crate::Throttle>,
    /// (teamid, roleid) pairs.
    pub(super) team_roles: Vec<(String, String)>,
    /// (teamid, systemuserid) pairs.
    pub(super) team_members: Vec<(String, String)>,
    /// `roleprivileges` rows: roleprivilegeid, roleid (a root role), privilegeid,
    /// privilegedepthmask.
    pub(super) role_privileges: Vec<Row>,
    /// Entity sets with change tracking enabled.
    pub(super) tracked: std::collections::BTreeSet<String>,
    /// (version, entity set, id) of every row deleted.
    pub(super) deletions: Vec<(u64, String, String)>,
    /// The clock (a Unix time) change tracking tokens are judged by; the system clock when unset.
    pub(super) now: Option<u64>,
    /// How many days changes are kept (`ExpireChangeTrackingInDays`).
    pub(super) tracking_days: u64,
    /// The user audit rows name as having made the change (`_userid_value`).
    pub(super) audit_actor: Option<String>,
}

/// A fake Dataverse environment. Clone it to inspect or change its state from a test.
#[derive(Debug, Clone, Default)]
pub struct Dataverse {
    inner: Arc<Mutex<Inner>>,
}

/// The primary key of an entity set.
pub(super) fn key_of(set: &str) -> Option<&'static str> {
    Some(match set {
        "businessunits" => "businessunitid",
        "roles" => "roleid",
        "systemusers" => "systemuserid",
        "fieldsecurityprofiles" => "fieldsecurityprofileid",
        "fieldpermissions" => "fieldpermissionid",
        "audits" => "auditid",
        "teams" => "teamid",
        "privileges" => "privilegeid",
        _ => return None,
    })
}

impl Dataverse {
    /// An empty environment with a root business unit named `root`.
    pub fn new(root: &str) -> Self {
        let d = Dataverse::default();
        d.add_business_unit(root, None);
        d
    }

    /// Throttles each operation inside a `$batch` with `throttle` (service protection counts
    /// the operations of a batch, not the batch).
    pub fn throttle_batch_parts(&self, throttle: &crate::Throttle) {
        self.lock().part_throttle = Some(throttle.clone());
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("dataverse")
    }

    pub(super) fn insert(inner: &mut Inner, set: &str, mut row: Row) -> String {
        inner.next_id += 1;
        inner.version += 1;
        let id = format!("00000000-0000-0000-0000-{:012}", inner.next_id);
        let key = key_of(set).expect("known set");
        row.insert(key.into(), json!(id));
        row.insert("@odata.etag".into(), json!(format!("W/\"{}\"", inner.version)));
        inner.sets.entry(set.to_string()).or_default().insert(id.clone(), row);
        id
    }

    /// The server's page limit (to make paging visible with few rows).
    pub fn page_cap(&self, n: usize) -> &Self {
        self.lock().page_cap = Some(n.max(1));
        self
    }

    /// Next links that point back at the first page, so paging never ends.
    pub fn stuck_paging(&self) -> &Self {
        self.lock().stuck_paging = true;
        self
    }

    /// Writes to an entity set answer 403 `PrivilegeDenied`.
    pub fn deny_writes(&self, set: &str) -> &Self {
        self.lock().denied.push(set.to_string());
        self
    }

    /// Serves the environment (and the Entra token endpoint, for `entra`'s clients) on a
    /// loopback port. Every request is recorded in `log`; `throttle`, when given, answers 429
    /// with `Retry-After` past its rate.
    pub fn serve(&self, entra: &Entra, log: &RequestLog, throttle: Option<&Throttle>) -> Running {
        let api = Router::new().route("/api/data/v9.2/{*rest}", any(handle)).with_state((self.clone(), entra.clone()));
        let api = match throttle {
            Some(t) => t.layer(api),
            None => api,
        };
        crate::serve(log.layer(api.merge(entra.router())))
    }
}

async fn handle(State((dv, entra)): State<(Dataverse, Entra)>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers: &HeaderMap = &parts.headers;
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
    let base = format!("http://{host}");
    if let Err(resp) = entra.check(headers, &base) {
        return resp;
    }
    let bytes: Bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let path = parts.uri.path().strip_prefix(API).unwrap_or_default().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let header_list: Vec<(String, String)> =
        headers.iter().filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string()))).collect();
    if path == "$batch" && parts.method == Method::POST {
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let throttle = dv.lock().part_throttle.clone();
        return odata::batch(&ct, &bytes, API, &header_list, MAX_BATCH, |m, p, q, h, b| {
            if let Some(Err(wait)) = throttle.as_ref().map(crate::Throttle::take) {
                let mut a = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "0x80072322",
                    "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
                );
                a.headers.push(("Retry-After", format!("{:.3}", wait.as_secs_f64().max(0.001))));
                return a;
            }
            dv.dispatch(m, p, q, h, b, &base)
        });
    }
    into_response(dv.dispatch(&parts.method, &path, &query, &header_list, &bytes, &base))
}
