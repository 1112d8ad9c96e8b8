//! Privileged Identity Management: eligibility for directory roles
//! (`/roleManagement/directory/roleEligibility…`) and for group membership or ownership
//! (`/identityGovernance/privilegedAccess/group/eligibility…`), made through schedule requests
//! checked against the role management policies ([`super::pim_policy`]). Facts and sources in
//! `docs/reference/graph.md` §3.
//!
//! - `POST …ScheduleRequests` with `action` `adminAssign`, `adminUpdate`, `adminExtend`,
//!   `adminRenew` or `adminRemove` (case-insensitive, as the documented examples write both)
//!   answers `201` with the request (`status` `Provisioned`, or `Revoked` for a removal) and
//!   creates, changes or ends the schedule (its id is the request's id for roles,
//!   `{groupId}_{accessId}_{requestId}` for groups: documented examples).
//! - Refusals: an eligibility that exists already (`400 RoleAssignmentExists` "The Role
//!   assignment already exists."), policy rules (`400 RoleAssignmentRequestPolicyValidationFailed`
//!   "The following policy rules failed: [\"ExpirationRule\"]", also `JustificationRule`), an
//!   unknown role (`400 RoleNotFound`): codes documented for Azure resource PIM, seen for Graph
//!   [3P]. Removing what does not exist (`400 RoleAssignmentDoesNotExist`) and the self-service
//!   actions (`400`, an application cannot act for itself) are [UNVERIFIED].
//! - Schedules list without a filter for roles, and need `$filter` on `groupId` or `principalId`
//!   for groups (documented). Instances are the schedules in force at the fake's clock.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::http::{Req, Resp, iso};
use super::pim_policy::Policies;
use super::tenant::Tenant;

/// PIM state: schedules, requests, policies.
#[derive(Debug, Default)]
pub(super) struct PimState {
    /// Role eligibility schedules by id.
    pub(super) roles: BTreeMap<String, Value>,
    pub(super) role_requests: Vec<Value>,
    /// Group eligibility schedules by id.
    pub(super) groups: BTreeMap<String, Value>,
    pub(super) group_requests: Vec<Value>,
    pub(super) policies: Policies,
}

/// `a eq 'x' and b eq 'y'` over `allowed` field names → field → value.
pub(super) fn eq_filter(f: &str, allowed: &[&str]) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for clause in f.split(" and ") {
        let (field, value) = clause.trim().split_once(" eq ")?;
        let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
        if !allowed.contains(&field.trim()) {
            return None;
        }
        out.insert(field.trim().to_string(), value.replace("''", "'"));
    }
    Some(out)
}

/// An ISO 8601 duration (`P365D`, `PT8H`, `PT1H45M`, `P1Y2M`) in seconds; years as 365 days
/// and months as 30 ([UNVERIFIED] how Graph counts them).
pub(super) fn parse_duration(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    if date.is_empty() && time.is_empty() {
        return None;
    }
    let mut total = 0u64;
    for (part, units) in [
        (date, &[('Y', 365 * 86_400), ('M', 30 * 86_400), ('W', 7 * 86_400), ('D', 86_400)][..]),
        (time, &[('H', 3600), ('M', 60), ('S', 1)][..]),
    ] {
        let mut num = String::new();
        let mut at = 0;
        for ch in part.chars() {
            if ch.is_ascii_digit() {
                num.push(ch);
                continue;
            }
            let i = units.iter().skip(at).position(|(u, _)| *u == ch)? + at;
            total += num.parse::<u64>().ok()? * units[i].1;
            num.clear();
            at = i + 1;
        }
        if !num.is_empty() {
            return None;
        }
    }
    Some(total)
}

/// A UTC date-time (`2024-04-10T00:00:00Z`, fractions and `+00:00` allowed) as a Unix time.
pub(super) fn parse_iso(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z').trim_end_matches("+00:00");
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next().flatten().unwrap_or(0));
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + sec).ok()
}

/// A checked schedule: start, end (none: permanent), and the normalized `scheduleInfo`.
struct Schedule {
    start: u64,
    end: Option<u64>,
    info: Value,
}

fn schedule(info: Option<&Value>, now: u64) -> Result<Schedule, Resp> {
    let Some(info) = info.filter(|i| i.is_object()) else {
        return Err(Resp::bad("scheduleInfo is required."));
    };
    let start = match info.get("startDateTime").filter(|v| !v.is_null()) {
        None => now,
        Some(v) => v.as_str().and_then(parse_iso).ok_or_else(|| Resp::bad("startDateTime is not a date-time."))?,
    };
    let exp = &info["expiration"];
    let kind = exp["type"].as_str().unwrap_or("noExpiration").to_ascii_lowercase();
    let (end, kind) = match kind.as_str() {
        "noexpiration" => (None, "noExpiration"),
        "afterdatetime" => {
            let end = exp["endDateTime"]
                .as_str()
                .and_then(parse_iso)
                .ok_or_else(|| Resp::bad("expiration.endDateTime is required for afterDateTime."))?;
            if end <= start {
                return Err(Resp::bad("expiration.endDateTime must be after startDateTime."));
            }
            (Some(end), "afterDateTime")
        }
        "afterduration" => {
            let d = exp["duration"]
                .as_str()
                .and_then(parse_duration)
                .filter(|d| *d > 0)
                .ok_or_else(|| Resp::bad("expiration.duration is required for afterDuration."))?;
            (Some(start + d), "afterDuration")
        }
        _ => return Err(Resp::bad("expiration.type must be noExpiration, afterDateTime or afterDuration.")),
    };
    let info = json!({"startDateTime": iso(start), "recurrence": null,
        "expiration": {"type": kind, "endDateTime": end.map(iso), "duration": exp.get("duration").cloned().unwrap_or(Value::Null)}});
    Ok(Schedule { start, end, info })
}

fn policy_failed(rules: &[&str]) -> Resp {
    let list: Vec<String> = rules.iter().map(|r| format!("\"{r}\"")).collect();
    Resp::error(
        400,
        "RoleAssignmentRequestPolicyValidationFailed",
        &format!("The following policy rules failed: [{}]", list.join(",")),
    )
}

/// The admin-eligibility rules of a policy applied to a request.
fn check_policy(policies: &Policies, scope: &str, role: &str, body: &Value, s: &Schedule) -> Result<(), Resp> {
    let mut failed = Vec::new();
    if let Some(r) = policies.rule(scope, role, "Expiration_Admin_Eligibility")
        && r["isExpirationRequired"] == true
    {
        let max = r["maximumDuration"].as_str().and_then(parse_duration).unwrap_or(u64::MAX);
        if s.end.is_none_or(|end| end - s.start > max) {
            failed.push("ExpirationRule");
        }
    }
    if let Some(r) = policies.rule(scope, role, "Enablement_Admin_Eligibility") {
        let on = |x: &str| r["enabledRules"].as_array().is_some_and(|a| a.iter().any(|v| v == x));
        if on("Justification") && body["justification"].as_str().is_none_or(|j| j.trim().is_empty()) {
            failed.push("JustificationRule");
        }
        if on("Ticketing") && body["ticketInfo"]["ticketNumber"].as_str().is_none_or(str::is_empty) {
            failed.push("TicketingRule");
        }
        if on("MultiFactorAuthentication") {
            // An application cannot answer a multifactor challenge ([UNVERIFIED] rule name).
            failed.push("MfaRule");
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(policy_failed(&failed)) }
}

/// The schedule of an action other than a removal, checked: its `scheduleInfo`, that the
/// eligibility exists (or not, for `adminAssign`), and the policy of `(scope, role)`.
fn checked_schedule(
    policies: &Policies,
    (scope, role): (&str, &str),
    action: &str,
    exists_now: bool,
    body: &Value,
    now: u64,
) -> Result<Schedule, Resp> {
    let s = schedule(body.get("scheduleInfo"), now)?;
    match (action, exists_now) {
        ("adminAssign", true) => return Err(exists()),
        ("adminAssign", false) | (_, true) => {}
        (_, false) => return Err(does_not_exist()),
    }
    check_policy(policies, scope, role, body, &s)?;
    Ok(s)
}

/// The documented actions, canonically spelled.
fn action(body: &Value) -> Result<&'static str, Resp> {
    let a = body["action"].as_str().unwrap_or_default().to_ascii_lowercase();
    Ok(match a.as_str() {
        "adminassign" => "adminAssign",
        "adminupdate" => "adminUpdate",
        "adminremove" => "adminRemove",
        "adminextend" => "adminExtend",
        "adminrenew" => "adminRenew",
        "selfactivate" | "selfdeactivate" | "selfextend" | "selfrenew" => {
            return Err(Resp::bad(
                "Self-service actions are made by the principal itself; an application cannot make them for it.",
            ));
        }
        _ => {
            return Err(Resp::bad(
                "action must be one of adminAssign, adminUpdate, adminRemove, adminExtend, adminRenew.",
            ));
        }
    })
}

fn exists() -> Resp {
    Resp::error(400, "RoleAssignmentExists", "The Role assignment already exists.")
}

fn does_not_exist() -> Resp {
    Resp::error(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
}

fn in_force(s: &Value, now: u64) -> bool {
    let start = s["scheduleInfo"]["startDateTime"].as_str().and_then(parse_iso).unwrap_or(0);
    let end = s["scheduleInfo"]["expiration"]["endDateTime"].as_str().and_then(parse_iso);
    start <= now && end.is_none_or(|e| e > now)
}

fn not_expired(s: &Value, now: u64) -> bool {
    s["scheduleInfo"]["expiration"]["endDateTime"].as_str().and_then(parse_iso).is_none_or(|e| e > now)
}

impl Tenant {
    fn pim_actor(&self) -> Value {
        json!({"application": {"id": "keyward-client", "displayName": "keyward"}, "device": null, "user": null})
    }

    /// `POST /roleManagement/directory/roleEligibilityScheduleRequests`.
    pub(super) fn request_role_eligibility(&mut self, req: &Req) -> Resp {
        let Some(body) = req.body.clone().filter(Value::is_object) else { return Resp::bad("a body is required") };
        let action = match action(&body) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let (Some(principal), Some(role)) = (body["principalId"].as_str(), body["roleDefinitionId"].as_str()) else {
            return Resp::bad("principalId and roleDefinitionId are required.");
        };
        let scope = match (body["directoryScopeId"].as_str(), body["appScopeId"].as_str()) {
            (Some(d), _) => d.to_string(),
            (None, Some(_)) => return Resp::bad("Application scopes are not modelled; use directoryScopeId."),
            (None, None) => return Resp::bad("Either directoryScopeId or appScopeId is required."),
        };
        let Some(def) = self.role_definitions.values().find(|d| d["id"] == role || d["templateId"] == role) else {
            return Resp::error(400, "RoleNotFound", &format!("The role {role} is not found."));
        };
        let template = def["templateId"].as_str().unwrap_or(role).to_string();
        match self.object_type(principal) {
            Some("#microsoft.graph.user") => {}
            Some("#microsoft.graph.group") if self.groups[principal].body["isAssignableToRole"] == true => {}
            Some(_) => {
                return Resp::bad("Only users and role-assignable groups can be made eligible for a directory role.");
            }
            None => return Resp::not_found(principal),
        }
        let now = self.clock_secs();
        let existing = self
            .pim
            .roles
            .iter()
            .find(|(_, s)| {
                s["principalId"] == principal
                    && (s["roleDefinitionId"] == role || s["roleDefinitionId"] == template.as_str())
                    && s["directoryScopeId"] == scope.as_str()
                    && not_expired(s, now)
            })
            .map(|(id, _)| id.clone());
        self.next += 1;
        let request_id = format!("e1000000-0000-4000-8000-{:012x}", self.next);
        let mut request = json!({"id": request_id, "status": "Provisioned", "createdDateTime": iso(now),
            "completedDateTime": iso(now), "approvalId": null, "customData": null, "action": action,
            "principalId": principal, "roleDefinitionId": role, "directoryScopeId": scope, "appScopeId": null,
            "isValidationOnly": body["isValidationOnly"] == true, "targetScheduleId": null,
            "justification": body["justification"], "createdBy": self.pim_actor(), "scheduleInfo": null,
            "ticketInfo": {"ticketNumber": body["ticketInfo"]["ticketNumber"], "ticketSystem": body["ticketInfo"]["ticketSystem"]}});
        if action == "adminRemove" {
            let Some(id) = existing else { return does_not_exist() };
            request["status"] = json!("Revoked");
            request["completedDateTime"] = Value::Null;
            if body["isValidationOnly"] != true {
                self.pim.roles.remove(&id);
                self.audit(
                    "Remove eligible member from role in PIM completed",
                    "RoleManagement",
                    principal,
                    Tenant::app_actor(),
                );
            }
            self.pim.role_requests.push(request.clone());
            return Resp::created(request);
        }
        let s = match checked_schedule(&self.pim.policies, ("/", &template), action, existing.is_some(), &body, now) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let schedule_id = existing.clone().unwrap_or_else(|| request_id.clone());
        request["targetScheduleId"] = json!(schedule_id);
        request["scheduleInfo"] = s.info.clone();
        if body["isValidationOnly"] != true {
            let created =
                self.pim.roles.get(&schedule_id).map(|e| e["createdDateTime"].clone()).unwrap_or(json!(iso(now)));
            self.pim.roles.insert(
                schedule_id.clone(),
                json!({"id": schedule_id, "principalId": principal, "roleDefinitionId": role, "directoryScopeId": scope,
                    "appScopeId": null, "createdUsing": request_id, "createdDateTime": created,
                    "modifiedDateTime": iso(now), "status": "Provisioned", "memberType": "Direct",
                    "scheduleInfo": s.info}),
            );
            let what = if s.end.is_some() { "timebound" } else { "permanent" };
            let activity = format!("Add eligible member to role in PIM completed ({what})");
            self.audit(&activity, "RoleManagement", principal, Tenant::app_actor());
        }
        self.pim.role_requests.push(request.clone());
        Resp::created(request)
    }

    /// `GET …/roleEligibilitySchedules` and `…/roleEligibilityScheduleInstances`; expired
    /// schedules are left out ([UNVERIFIED]).
    pub(super) fn list_role_eligibility(&mut self, req: &Req, instances: bool) -> Resp {
        let filter = match req.query.get("$filter") {
            None => BTreeMap::new(),
            Some(f) => match eq_filter(f, &["principalId", "roleDefinitionId", "directoryScopeId"]) {
                Some(c) => c,
                None => {
                    return Resp::bad("Unsupported $filter: use principalId, roleDefinitionId, directoryScopeId eq.");
                }
            },
        };
        let now = self.clock_secs();
        let expand = req.query.get("$expand").map(String::as_str).unwrap_or_default();
        let all: Vec<Value> = self
            .pim
            .roles
            .values()
            .filter(|s| filter.iter().all(|(k, v)| s[k.as_str()] == v.as_str()))
            .filter(|s| if instances { in_force(s, now) } else { not_expired(s, now) })
            .map(|s| {
                let mut out = if instances {
                    json!({"id": format!("{}-i", s["id"].as_str().unwrap_or_default()), "principalId": s["principalId"],
                        "roleDefinitionId": s["roleDefinitionId"], "directoryScopeId": s["directoryScopeId"],
                        "appScopeId": null, "startDateTime": s["scheduleInfo"]["startDateTime"],
                        "endDateTime": s["scheduleInfo"]["expiration"]["endDateTime"], "memberType": "Direct",
                        "roleEligibilityScheduleId": s["id"]})
                } else {
                    s.clone()
                };
                self.expand_pim(&mut out, expand);
                out
            })
            .collect();
        Resp::ok(json!({"value": all}))
    }

    /// `$expand=principal` and `$expand=roleDefinition` (comma-separated).
    fn expand_pim(&self, out: &mut Value, expand: &str) {
        for e in expand.split(',').map(str::trim) {
            match e {
                "principal" => {
                    let p = out["principalId"].as_str().unwrap_or_default();
                    out["principal"] =
                        json!({"@odata.type": self.object_type(p), "id": p, "displayName": self.display_name(p)});
                }
                "roleDefinition" => {
                    let r = out["roleDefinitionId"].as_str().unwrap_or_default();
                    out["roleDefinition"] = self
                        .role_definitions
                        .values()
                        .find(|d| d["id"] == r || d["templateId"] == r)
                        .cloned()
                        .unwrap_or(Value::Null);
                }
                _ => {}
            }
        }
    }

    /// `POST /identityGovernance/privilegedAccess/group/eligibilityScheduleRequests`.
    pub(super) fn request_group_eligibility(&mut self, req: &Req) -> Resp {
        let Some(body) = req.body.clone().filter(Value::is_object) else { return Resp::bad("a body is required") };
        let action = match action(&body) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let (Some(principal), Some(group), Some(access)) =
            (body["principalId"].as_str(), body["groupId"].as_str(), body["accessId"].as_str())
        else {
            return Resp::bad("accessId, principalId and groupId are required.");
        };
        if access != "member" && access != "owner" {
            return Resp::bad("accessId must be member or owner.");
        }
        let Some(g) = self.groups.get(group) else { return Resp::not_found(group) };
        if g.body["onPremisesSyncEnabled"] == true || super::hybrid::is_dynamic(&g.body) {
            // [UNVERIFIED]: PIM for Groups manages cloud groups whose members are assigned.
            return Resp::bad("Privileged access cannot be managed for a synced or dynamic group.");
        }
        match self.object_type(principal) {
            Some("#microsoft.graph.user" | "#microsoft.graph.group") => {}
            Some(_) => return Resp::bad("Only users and groups can be made eligible for a group."),
            None => return Resp::not_found(principal),
        }
        self.pim.policies.ensure_group(group);
        let now = self.clock_secs();
        let existing = self
            .pim
            .groups
            .iter()
            .find(|(_, s)| {
                s["principalId"] == principal && s["groupId"] == group && s["accessId"] == access && not_expired(s, now)
            })
            .map(|(id, _)| id.clone());
        self.next += 1;
        let request_id = format!("e2000000-0000-4000-8000-{:012x}", self.next);
        let mut request = json!({"id": request_id, "status": "Provisioned", "createdDateTime": iso(now),
            "completedDateTime": iso(now), "action": action, "isValidationOnly": body["isValidationOnly"] == true,
            "justification": body["justification"], "principalId": principal, "accessId": access, "groupId": group,
            "targetScheduleId": null, "createdBy": self.pim_actor(), "scheduleInfo": null});
        if action == "adminRemove" {
            let Some(id) = existing else { return does_not_exist() };
            request["status"] = json!("Revoked");
            if body["isValidationOnly"] != true {
                self.pim.groups.remove(&id);
                self.audit(
                    "Remove eligible member from group in PIM completed",
                    "GroupManagement",
                    principal,
                    Tenant::app_actor(),
                );
            }
            self.pim.group_requests.push(request.clone());
            return Resp::created(request);
        }
        // scheduleInfo is required for groups (documented).
        let s = match checked_schedule(&self.pim.policies, (group, access), action, existing.is_some(), &body, now) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let schedule_id = existing.unwrap_or_else(|| format!("{group}_{access}_{request_id}"));
        request["targetScheduleId"] = json!(schedule_id);
        request["scheduleInfo"] = s.info.clone();
        if body["isValidationOnly"] != true {
            self.pim.groups.insert(
                schedule_id.clone(),
                json!({"id": schedule_id, "scheduleInfo": s.info, "createdUsing": request_id,
                    "createdDateTime": iso(now), "modifiedDateTime": iso(now), "status": "Provisioned",
                    "memberType": "Direct", "accessId": access, "principalId": principal, "groupId": group}),
            );
            self.audit(
                "Add eligible member to group in PIM completed",
                "GroupManagement",
                principal,
                Tenant::app_actor(),
            );
        }
        self.pim.group_requests.push(request.clone());
        Resp::created(request)
    }

    /// `GET …/group/eligibilitySchedules` and `…/eligibilityScheduleInstances`: `$filter` on
    /// `groupId` or `principalId` is required (documented).
    pub(super) fn list_group_eligibility(&mut self, req: &Req, instances: bool) -> Resp {
        let Some(filter) = req
            .query
            .get("$filter")
            .and_then(|f| eq_filter(f, &["groupId", "principalId", "accessId"]))
            .filter(|c| c.contains_key("groupId") || c.contains_key("principalId"))
        else {
            return Resp::bad("This request requires $filter on groupId or principalId (eq).");
        };
        let now = self.clock_secs();
        let all: Vec<Value> = self
            .pim
            .groups
            .values()
            .filter(|s| filter.iter().all(|(k, v)| s[k.as_str()] == v.as_str()))
            .filter(|s| if instances { in_force(s, now) } else { not_expired(s, now) })
            .map(|s| {
                if instances {
                    json!({"id": format!("{}-i", s["id"].as_str().unwrap_or_default()), "accessId": s["accessId"],
                        "principalId": s["principalId"], "groupId": s["groupId"], "memberType": "Direct",
                        "startDateTime": s["scheduleInfo"]["startDateTime"],
                        "endDateTime": s["scheduleInfo"]["expiration"]["endDateTime"],
                        "eligibilityScheduleId": s["id"]})
                } else {
                    s.clone()
                }
            })
            .collect();
        Resp::ok(json!({"value": all}))
    }

    /// A request by id, from either list.
    pub(super) fn get_pim_request(&self, groups: bool, id: &str) -> Resp {
        let list = if groups { &self.pim.group_requests } else { &self.pim.role_requests };
        match list.iter().find(|r| r["id"] == id) {
            Some(r) => Resp::ok(r.clone()),
            None => Resp::not_found(id),
        }
    }

    /// The PIM and policy routes; `None` when the path is not one of them.
    pub(super) fn route_pim(&mut self, req: &Req) -> Option<Resp> {
        let s: Vec<&str> = req.segments.iter().map(String::as_str).collect();
        Some(match (req.method.as_str(), s.as_slice()) {
            ("GET", ["roleManagement", "directory", "roleEligibilitySchedules"]) => {
                self.list_role_eligibility(req, false)
            }
            ("GET", ["roleManagement", "directory", "roleEligibilitySchedules", id]) => match self.pim.roles.get(*id) {
                Some(s) => Resp::ok(s.clone()),
                None => Resp::not_found(id),
            },
            ("GET", ["roleManagement", "directory", "roleEligibilityScheduleInstances"]) => {
                self.list_role_eligibility(req, true)
            }
            ("GET", ["roleManagement", "directory", "roleEligibilityScheduleRequests"]) => {
                self.list_pim_requests(false, req)
            }
            ("GET", ["roleManagement", "directory", "roleEligibilityScheduleRequests", id]) => {
                self.get_pim_request(false, id)
            }
            ("POST", ["roleManagement", "directory", "roleEligibilityScheduleRequests"]) => {
                self.request_role_eligibility(req)
            }
            ("GET", ["identityGovernance", "privilegedAccess", "group", "eligibilitySchedules"]) => {
                self.list_group_eligibility(req, false)
            }
            ("GET", ["identityGovernance", "privilegedAccess", "group", "eligibilityScheduleInstances"]) => {
                self.list_group_eligibility(req, true)
            }
            ("GET", ["identityGovernance", "privilegedAccess", "group", "eligibilityScheduleRequests"]) => {
                self.list_pim_requests(true, req)
            }
            ("GET", ["identityGovernance", "privilegedAccess", "group", "eligibilityScheduleRequests", id]) => {
                self.get_pim_request(true, id)
            }
            ("POST", ["identityGovernance", "privilegedAccess", "group", "eligibilityScheduleRequests"]) => {
                self.request_group_eligibility(req)
            }
            ("GET", ["policies", "roleManagementPolicies"]) => self.list_role_policies(req),
            ("GET", ["policies", "roleManagementPolicies", id]) => self.get_role_policy(id, req),
            ("GET", ["policies", "roleManagementPolicies", id, "rules"]) => self.list_policy_rules(id),
            ("GET", ["policies", "roleManagementPolicies", id, "rules", rule]) => self.get_policy_rule(id, rule),
            ("PATCH", ["policies", "roleManagementPolicies", id, "rules", rule]) => {
                self.update_policy_rule(id, rule, req)
            }
            ("GET", ["policies", "roleManagementPolicyAssignments"]) => self.list_policy_assignments(req),
            ("GET", ["policies", "roleManagementPolicyAssignments", id]) => {
                match self.pim.policies.assignments.iter().find(|a| a["id"] == *id) {
                    Some(a) => Resp::ok(a.clone()),
                    None => Resp::not_found(id),
                }
            }
            _ => return None,
        })
    }

    pub(super) fn list_pim_requests(&self, groups: bool, req: &Req) -> Resp {
        let list = if groups { &self.pim.group_requests } else { &self.pim.role_requests };
        let filter =
            req.query.get("$filter").and_then(|f| eq_filter(f, &["principalId", "groupId", "roleDefinitionId"]));
        if req.query.contains_key("$filter") && filter.is_none() {
            return Resp::bad("Unsupported $filter.");
        }
        let filter = filter.unwrap_or_default();
        let all: Vec<Value> =
            list.iter().filter(|r| filter.iter().all(|(k, v)| r[k.as_str()] == v.as_str())).cloned().collect();
        Resp::ok(json!({"value": all}))
    }
}
