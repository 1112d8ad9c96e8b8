//! Delta queries (change tracking) on users, groups and directory roles, written from the
//! Graph documentation (`docs/reference/graph.md` lists each fact with its page):
//!
//! - `GET /users/delta`, `/groups/delta`, `/directoryRoles/delta`: a first round returns every
//!   object that exists, in pages linked by `@odata.nextLink` (with a `$skiptoken`), the last
//!   page carrying `@odata.deltaLink` (with a `$deltatoken`) and no next link; a round started
//!   from that delta link returns only what changed since: created and updated objects, removed
//!   ones as `{"id", "@removed": {"reason": "changed" | "deleted"}}`, and membership changes as
//!   `members@delta` (on groups and directory roles) or `manager@delta` (on users, when
//!   `manager` is selected), a removed member carrying `@removed`.
//! - `$select` is given on the first request only; the tokens carry it. A change to a property
//!   that is not selected does not bring the object back. Without `$select` users come with
//!   the default property set and groups with all properties and their members.
//! - By default a changed object comes with all its selected properties; with
//!   `Prefer: return=minimal` only with those that changed (a cleared one as `null`).
//!   Properties never set are left out.
//! - `$filter` only as `id eq '…'` joined by `or`, at most 50 ids (users and groups);
//!   `$top`, `$expand` and `$orderby` are not supported; `$deltatoken=latest` answers a delta
//!   link and no objects.
//! - Tokens of directory objects last seven days; an expired or unknown token answers
//!   `400 syncStateNotFound`. After a synchronization reset ([`crate::graph::Graph::reset_sync`])
//!   every earlier token answers `410 Gone` with a `Location` header holding the initial query.
//! - A soft-deleted user keeps its group memberships: the groups' `members@delta` shows nothing
//!   until it is deleted for good.
//!
//! Assumed where the documentation is silent: page sizes (100 objects, 500 member references
//! a page, both settable), the error codes of unsupported query options
//! (`Request_UnsupportedQuery`), the body of the `410` (`resyncRequired`), refusing every other
//! option next to a `$skiptoken` or a `$deltatoken`, and the shape of `manager@delta`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::http::{Req, Resp};
use super::tenant::Tenant;

/// How long a token lasts: seven days for directory objects (documented).
pub const TOKEN_LIFETIME_SECS: u64 = 7 * 24 * 3600;
/// Objects on a delta page (assumed; Graph does not document it and varies it).
pub const DELTA_PAGE: usize = 100;
/// Member references on a delta page before a group continues on the next page (assumed).
pub const DELTA_MEMBERS_PAGE: usize = 500;
/// Most ids a `$filter` may name (documented for users and groups).
const MAX_FILTER_IDS: usize = 50;

/// The user properties a delta query returns without `$select` (documented example).
const DEFAULT_USER_PROPS: [&str; 10] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

/// A tracked collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Coll {
    Users,
    Groups,
    DirectoryRoles,
}

impl Coll {
    fn path(self) -> &'static str {
        match self {
            Coll::Users => "users",
            Coll::Groups => "groups",
            Coll::DirectoryRoles => "directoryRoles",
        }
    }
    /// The navigation property reported as `…@delta`.
    fn link(self) -> &'static str {
        match self {
            Coll::Users => "manager",
            Coll::Groups | Coll::DirectoryRoles => "members",
        }
    }
}

/// One change, as the journal holds it.
#[derive(Debug, Clone)]
pub(super) enum Event {
    /// Properties set; a creation names them all.
    Props { names: BTreeSet<String>, created: bool },
    /// The object went: `changed` (restorable) or `deleted` (for good).
    Removed { reason: &'static str },
    /// A member (or a user's manager) added or removed.
    Member { member: String, kind: &'static str, added: bool },
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    coll: Coll,
    id: String,
    event: Event,
}

/// What a query tracks, carried by its tokens.
#[derive(Debug, Clone)]
struct Query {
    coll: Coll,
    select: Option<Vec<String>>,
    filter: Option<BTreeSet<String>>,
}

#[derive(Debug)]
struct Token {
    query: Query,
    seq: u64,
    issued: u64,
    generation: u64,
}

/// One object of a round: all of it (first round) or what changed.
#[derive(Debug, Clone)]
enum Item {
    Current(String),
    Changed(Changed),
}

#[derive(Debug, Clone, Default)]
struct Changed {
    id: String,
    removed: Option<&'static str>,
    created: bool,
    props: BTreeSet<String>,
    /// member → (type, added), the last change of each.
    links: BTreeMap<String, (&'static str, bool)>,
}

#[derive(Debug)]
struct Round {
    query: Query,
    end_seq: u64,
    items: Vec<Item>,
    issued: u64,
    generation: u64,
}

/// The journal, the tokens and the rounds under way.
#[derive(Debug)]
pub(super) struct DeltaState {
    /// Changes are journalled once a delta query has been answered.
    enabled: bool,
    /// A fault: changes are not journalled ([`crate::graph::Graph::set_delta_blind`]).
    pub(super) blind: bool,
    seq: u64,
    journal: Vec<Entry>,
    tokens: HashMap<String, Token>,
    rounds: HashMap<u64, Round>,
    next_id: u64,
    generation: u64,
    pub(super) lifetime: u64,
    pub(super) page_size: usize,
    pub(super) members_page: usize,
}

impl Default for DeltaState {
    fn default() -> Self {
        DeltaState {
            enabled: false,
            blind: false,
            seq: 0,
            journal: Vec::new(),
            tokens: HashMap::new(),
            rounds: HashMap::new(),
            next_id: 0,
            generation: 0,
            lifetime: TOKEN_LIFETIME_SECS,
            page_size: DELTA_PAGE,
            members_page: DELTA_MEMBERS_PAGE,
        }
    }
}

impl DeltaState {
    /// A synchronization reset: every token and round issued so far answers `410 Gone`.
    pub(super) fn reset(&mut self) {
        self.generation += 1;
    }

    fn token(&mut self, query: Query, seq: u64, issued: u64) -> String {
        self.next_id += 1;
        // Opaque to clients (documented): a counter and a scrambled tail.
        let tail = self.next_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.generation;
        let t = format!("{:x}.{:016x}", self.next_id, tail);
        self.tokens.insert(t.clone(), Token { query, seq, issued, generation: self.generation });
        t
    }
}

fn unsupported(message: &str) -> Resp {
    Resp::error(400, "Request_UnsupportedQuery", message)
}

fn sync_state_not_found() -> Resp {
    Resp::error(
        400,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
}

/// `id eq 'a' or id eq 'b'` → the ids.
fn parse_id_filter(f: &str) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for clause in f.split(" or ") {
        let v = clause.trim().strip_prefix("id eq ")?.trim();
        let v = v.strip_prefix('\'')?.strip_suffix('\'')?;
        if v.is_empty() || v.contains('\'') {
            return None;
        }
        out.insert(v.to_string());
    }
    Some(out)
}

fn param<'r>(req: &'r Req, name: &str) -> Option<&'r String> {
    req.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

impl Tenant {
    /// Journals a change (once delta queries are in use).
    pub(super) fn record(&mut self, coll: Coll, id: &str, event: Event) {
        if !self.delta.enabled || self.delta.blind {
            return;
        }
        self.delta.seq += 1;
        let seq = self.delta.seq;
        self.delta.journal.push(Entry { seq, coll, id: id.to_string(), event });
    }

    pub(super) fn clock_secs(&self) -> u64 {
        self.now.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
        })
    }

    /// `GET /{users|groups|directoryRoles}/delta`.
    pub(super) fn delta_query(&mut self, coll: Coll, req: &Req) -> Resp {
        self.delta.enabled = true;
        let now = self.clock_secs();
        for (k, _) in req.query.iter() {
            let k = k.to_ascii_lowercase();
            match k.as_str() {
                "$top" | "$expand" | "$orderby" if coll != Coll::DirectoryRoles => {
                    return unsupported(&format!("The query option '{k}' is not supported with delta queries."));
                }
                "$select" | "$filter" | "$skiptoken" | "$deltatoken" => {}
                _ => return unsupported(&format!("The query option '{k}' is not supported with delta queries.")),
            }
        }
        if let Some(skip) = param(req, "$skiptoken") {
            if req.query.len() > 1 {
                return unsupported("A $skiptoken carries the query; no other option may be given with it.");
            }
            return self.delta_page(coll, skip, req);
        }
        let query = match self.delta_request_query(coll, req) {
            Ok(q) => q,
            Err(r) => return r,
        };
        match param(req, "$deltatoken").map(String::as_str) {
            Some(t) if t.eq_ignore_ascii_case("latest") => {
                // "Sync from now": a delta link and no objects (documented).
                let seq = self.delta.seq;
                let token = self.delta.token(query, seq, now);
                Resp::ok(json!({"value": [], "@odata.deltaLink": delta_link(req.base, coll, "$deltatoken", &token)}))
            }
            Some(t) if !t.is_empty() => {
                if req.query.len() > 1 {
                    return unsupported("A $deltatoken carries the query; no other option may be given with it.");
                }
                let Some(tok) = self.delta.tokens.get(t) else { return sync_state_not_found() };
                if tok.query.coll != coll {
                    return sync_state_not_found();
                }
                if tok.generation != self.delta.generation {
                    return gone(req.base, &tok.query);
                }
                if now.saturating_sub(tok.issued) > self.delta.lifetime {
                    return sync_state_not_found();
                }
                let (query, from) = (tok.query.clone(), tok.seq);
                let items = self.changes_since(&query, from);
                self.start_round(query, items, now, req)
            }
            _ => {
                let items = self.current_items(&query);
                self.start_round(query, items, now, req)
            }
        }
    }

    /// The `$select` and `$filter` of a first request.
    fn delta_request_query(&self, coll: Coll, req: &Req) -> Result<Query, Resp> {
        let select = param(req, "$select")
            .map(|s| s.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect::<Vec<_>>());
        let filter = match param(req, "$filter") {
            None => None,
            Some(f) => match parse_id_filter(f) {
                Some(ids) if coll != Coll::DirectoryRoles && ids.len() > MAX_FILTER_IDS => {
                    return Err(unsupported("A delta $filter may name at most 50 objects."));
                }
                Some(ids) => Some(ids),
                None => return Err(unsupported("A delta query supports only $filter=id eq '{id}' (or ...).")),
            },
        };
        Ok(Query { coll, select, filter })
    }

    /// Every object of the collection as it is now (a first round).
    fn current_items(&self, q: &Query) -> Vec<Item> {
        let ids: Vec<String> = match q.coll {
            Coll::Users => self.users.keys().cloned().collect(),
            Coll::Groups => self.groups.keys().cloned().collect(),
            Coll::DirectoryRoles => self.role_definitions.keys().filter_map(|d| self.directory_role_id(d)).collect(),
        };
        ids.into_iter().filter(|id| q.filter.as_ref().is_none_or(|f| f.contains(id))).map(Item::Current).collect()
    }

    /// What changed after `from`, one item per object, in the order objects first changed.
    fn changes_since(&self, q: &Query, from: u64) -> Vec<Item> {
        let mut order: Vec<String> = Vec::new();
        let mut by_id: HashMap<String, Changed> = HashMap::new();
        let start = self.delta.journal.partition_point(|e| e.seq <= from);
        for e in self.delta.journal[start..].iter().filter(|e| e.coll == q.coll) {
            if q.filter.as_ref().is_some_and(|f| !f.contains(&e.id)) {
                continue;
            }
            let c = by_id.entry(e.id.clone()).or_insert_with(|| {
                order.push(e.id.clone());
                Changed { id: e.id.clone(), ..Changed::default() }
            });
            match &e.event {
                Event::Props { names, created } => {
                    c.removed = None;
                    c.created |= created;
                    c.props.extend(names.iter().cloned());
                }
                Event::Removed { reason } => {
                    c.removed = Some(reason);
                    c.created = false;
                    c.props.clear();
                    c.links.clear();
                }
                Event::Member { member, kind, added } => {
                    c.links.insert(member.clone(), (kind, *added));
                }
            }
        }
        let links_tracked = q.select.as_ref().is_none_or(|s| s.iter().any(|f| f == q.coll.link()))
            && (q.coll != Coll::Users || q.select.is_some());
        order
            .into_iter()
            .filter_map(|id| by_id.remove(&id))
            .filter(|c| {
                let props = q.select.as_ref().map_or(!c.props.is_empty(), |s| c.props.iter().any(|p| s.contains(p)));
                c.removed.is_some() || c.created || props || (links_tracked && !c.links.is_empty())
            })
            .map(Item::Changed)
            .collect()
    }

    fn start_round(&mut self, query: Query, items: Vec<Item>, now: u64, req: &Req) -> Resp {
        self.delta.next_id += 1;
        let id = self.delta.next_id;
        // Rounds abandoned half-way are dropped once many are open.
        if self.delta.rounds.len() > 256 {
            let oldest = *self.delta.rounds.keys().min().expect("not empty");
            self.delta.rounds.remove(&oldest);
        }
        let round = Round { query, end_seq: self.delta.seq, items, issued: now, generation: self.delta.generation };
        self.delta.rounds.insert(id, round);
        self.serve_round(id, 0, 0, req)
    }

    fn delta_page(&mut self, coll: Coll, skip: &str, req: &Req) -> Resp {
        let parts: Vec<u64> = skip.split('.').filter_map(|p| u64::from_str_radix(p, 16).ok()).collect();
        let [round, offset, moff] = parts[..] else { return sync_state_not_found() };
        let Some(r) = self.delta.rounds.get(&round) else { return sync_state_not_found() };
        if r.query.coll != coll {
            return sync_state_not_found();
        }
        if r.generation != self.delta.generation {
            let q = r.query.clone();
            return gone(req.base, &q);
        }
        if self.clock_secs().saturating_sub(r.issued) > self.delta.lifetime {
            return sync_state_not_found();
        }
        self.serve_round(round, offset as usize, moff as usize, req)
    }

    /// One page of a round from item `offset` (and member `moff` of that item). A group with more
    /// members than a page holds continues on the next page, its properties repeated
    /// (documented, delta-query-groups: paging through members in a large group).
    fn serve_round(&mut self, round: u64, mut offset: usize, mut moff: usize, req: &Req) -> Resp {
        let minimal = req.prefer.as_deref().is_some_and(|p| p.to_ascii_lowercase().contains("return=minimal"));
        let r = &self.delta.rounds[&round];
        let (page_size, mut budget) = (self.delta.page_size.max(1), self.delta.members_page.max(1));
        let mut value = Vec::new();
        while offset < r.items.len() && value.len() < page_size {
            let (obj, links) = self.render(&r.query, &r.items[offset], minimal);
            let Some(mut obj) = obj else {
                (offset, moff) = (offset + 1, 0);
                continue;
            };
            if links.is_empty() || moff >= links.len() {
                if moff == 0 {
                    value.push(obj);
                }
                (offset, moff) = (offset + 1, 0);
                continue;
            }
            if budget == 0 {
                break;
            }
            let take = (links.len() - moff).min(budget);
            obj[format!("{}@delta", r.query.coll.link())] = Value::Array(links[moff..moff + take].to_vec());
            value.push(obj);
            budget -= take;
            if moff + take < links.len() {
                moff += take;
                break;
            }
            (offset, moff) = (offset + 1, 0);
        }
        let coll = r.query.coll;
        let mut body = json!({"value": value});
        if offset < r.items.len() {
            let skip = format!("{round:x}.{offset:x}.{moff:x}");
            body["@odata.nextLink"] = json!(delta_link(req.base, coll, "$skiptoken", &skip));
        } else {
            let r = self.delta.rounds.remove(&round).expect("present");
            let now = self.clock_secs();
            let token = self.delta.token(r.query, r.end_seq, now);
            body["@odata.deltaLink"] = json!(delta_link(req.base, coll, "$deltatoken", &token));
        }
        Resp::ok(body)
    }

    /// An item as returned (`None` when the object went while the round was served: its removal
    /// comes in the next round), with its member (or manager) references.
    fn render(&self, q: &Query, item: &Item, minimal: bool) -> (Option<Value>, Vec<Value>) {
        let (id, changed) = match item {
            Item::Current(id) => (id.as_str(), None),
            Item::Changed(c) => (c.id.as_str(), Some(c)),
        };
        if let Some(reason) = changed.and_then(|c| c.removed) {
            return (Some(json!({"id": id, "@removed": {"reason": reason}})), vec![]);
        }
        let Some(current) = self.current_object(q.coll, id) else { return (None, vec![]) };
        let names: Vec<String> = match (&q.select, q.coll) {
            (Some(s), _) => s.iter().filter(|f| f.as_str() != q.coll.link()).cloned().collect(),
            (None, Coll::Users) => DEFAULT_USER_PROPS.iter().map(|s| s.to_string()).collect(),
            (None, _) => current.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default(),
        };
        let mut out = Map::new();
        for n in names {
            let was_changed = changed.is_none_or(|c| c.created || c.props.contains(&n));
            if minimal && !was_changed {
                continue;
            }
            match current.get(&n) {
                Some(v) => {
                    out.insert(n, v.clone());
                }
                // Cleared since: null; never set: left out (documented).
                None if changed.is_some_and(|c| !c.created && c.props.contains(&n)) => {
                    out.insert(n, Value::Null);
                }
                None => {}
            }
        }
        out.insert("id".into(), json!(id));
        let tracked = q.select.as_ref().is_none_or(|s| s.iter().any(|f| f == q.coll.link()))
            && (q.coll != Coll::Users || q.select.is_some());
        let links = if !tracked {
            vec![]
        } else if let Some(c) = changed.filter(|c| !c.created) {
            c.links
                .iter()
                .map(|(m, (kind, added))| {
                    let mut v = json!({"@odata.type": kind, "id": m});
                    if !added {
                        v["@removed"] = json!({"reason": "deleted"});
                    }
                    v
                })
                .collect()
        } else {
            self.current_links(q.coll, id)
                .into_iter()
                .map(|m| json!({"@odata.type": self.object_type(&m).unwrap_or("#microsoft.graph.directoryObject"), "id": m}))
                .collect()
        };
        (Some(Value::Object(out)), links)
    }

    fn current_object(&self, coll: Coll, id: &str) -> Option<Value> {
        match coll {
            Coll::Users => self.users.get(id).map(|u| {
                let mut u = u.clone();
                // Returned only on $select of a list (documented) and not tracked.
                u.as_object_mut().map(|o| o.remove("signInActivity"));
                u
            }),
            Coll::Groups => self.groups.get(id).map(|g| g.body.clone()),
            Coll::DirectoryRoles => self.directory_role(id),
        }
    }

    fn current_links(&self, coll: Coll, id: &str) -> Vec<String> {
        match coll {
            Coll::Users => self.managers.get(id).cloned().into_iter().collect(),
            Coll::Groups => self.groups.get(id).map(|g| g.members.iter().cloned().collect()).unwrap_or_default(),
            Coll::DirectoryRoles => self.directory_role_members(id),
        }
    }

    /// A directory role object (documented shape: id, displayName, description,
    /// roleTemplateId).
    pub(super) fn directory_role(&self, id: &str) -> Option<Value> {
        let d = self
            .role_definitions
            .values()
            .find(|d| d["templateId"].as_str().and_then(|t| self.directory_role_id(t)).as_deref() == Some(id))?;
        Some(json!({"id": id, "displayName": d["displayName"], "description": d["displayName"],
            "roleTemplateId": d["templateId"]}))
    }

    /// The members of a directory role: the principals of the tenant-wide assignments of its
    /// role definition.
    pub(super) fn directory_role_members(&self, id: &str) -> Vec<String> {
        let defs: Vec<&str> = self
            .role_definitions
            .values()
            .filter(|d| d["templateId"].as_str().and_then(|t| self.directory_role_id(t)).as_deref() == Some(id))
            .flat_map(|d| [d["id"].as_str(), d["templateId"].as_str()])
            .flatten()
            .collect();
        let set: BTreeSet<String> = self
            .role_assignments
            .values()
            .filter(|a| a["directoryScopeId"] == "/")
            .filter(|a| a["roleDefinitionId"].as_str().is_some_and(|r| defs.contains(&r)))
            .filter_map(|a| a["principalId"].as_str().map(str::to_string))
            .collect();
        set.into_iter().collect()
    }
}

/// A query value percent-encoded (the option names keep their `$`, as Graph's links do).
fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

fn delta_link(base: &str, coll: Coll, name: &str, token: &str) -> String {
    format!("{base}/{}/delta?{name}={}", coll.path(), enc(token))
}

/// `410 Gone` with a `Location` of the initial query with an empty `$deltatoken` (documented:
/// synchronization reset).
fn gone(base: &str, q: &Query) -> Resp {
    let mut query = String::new();
    if let Some(s) = &q.select {
        query.push_str(&format!("$select={}&", enc(&s.join(","))));
    }
    if let Some(f) = &q.filter {
        let clauses: Vec<String> = f.iter().map(|id| format!("id eq '{id}'")).collect();
        query.push_str(&format!("$filter={}&", enc(&clauses.join(" or "))));
    }
    query.push_str("$deltatoken=");
    let mut r = Resp::error(
        410,
        "resyncRequired",
        "The delta token is no longer valid, and the app must reset the sync state.",
    );
    r.headers.push(("Location", format!("{base}/{}/delta?{query}", q.coll.path())));
    r
}
