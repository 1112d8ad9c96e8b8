//! Sending writes as SCIM Bulk requests (RFC 7644 §3.7) and matching the outcomes to them.

use super::*;

impl Run<'_> {
    // -----------------------------------------------------------------------------------------
    // Bulk.

    /// Sends the writes in Bulk requests; returns those that must go one by one (too large
    /// for any Bulk request, or needing PUT because the service has no PATCH).
    pub(super) async fn execute_bulk(
        &mut self,
        works: Vec<Work>,
        limits: BulkLimits,
        adopt: &mut Vec<Work>,
        retry: &mut Vec<Work>,
    ) -> Vec<Work> {
        let mut alone = Vec::new();
        let mut queue: std::collections::VecDeque<Work> = works.into();
        let mut packer = Packer::new(limits);
        let mut counter = 0usize;
        while !queue.is_empty() {
            packer.reset();
            let mut batch: Vec<(Work, BulkOp)> = Vec::new();
            // userName / group name → bulkId, for references within this request.
            let mut created: HashMap<String, String> = HashMap::new();
            let mut touched: HashSet<String> = HashSet::new();
            while let Some(w) = queue.pop_front() {
                let Some(op) = self.bulk_op(&w, &created, &touched, &mut counter) else {
                    alone.push(w);
                    continue;
                };
                match packer.try_add(op.bytes.len()) {
                    Fit::Added => {
                        match &w.unit {
                            Unit::CreateUser { user_name, .. } => {
                                created.insert(key(user_name), op.bulk_id.clone().expect("a POST has a bulkId"));
                            }
                            Unit::PatchGroup { group, .. } => {
                                touched.insert(format!("g:{}", key(group)));
                            }
                            Unit::PatchUser { user, .. } | Unit::DeleteUser { user } => {
                                touched.insert(format!("u:{}", key(user)));
                            }
                            Unit::CreateGroup { .. } => {}
                        }
                        batch.push((w, op));
                    }
                    Fit::Full => {
                        queue.push_front(w);
                        break;
                    }
                    Fit::TooLarge => alone.push(w),
                }
            }
            if batch.is_empty() {
                continue;
            }
            self.send_bulk(batch, &mut alone, adopt, retry).await;
        }
        alone
    }

    /// The Bulk operation for a write, or `None` when it cannot go in a Bulk request.
    fn bulk_op(
        &self,
        w: &Work,
        created: &HashMap<String, String>,
        touched: &HashSet<String>,
        counter: &mut usize,
    ) -> Option<BulkOp> {
        let path = |endpoint: &str, id: &str| format!("/{endpoint}/{}", encode(id));
        let mut next_id = |prefix: &str| {
            *counter += 1;
            format!("{prefix}{counter}")
        };
        let (op, bulk_id) = match &w.unit {
            Unit::CreateGroup { name } => {
                let id = next_id("g");
                let data = json!({"schemas": [GROUP_SCHEMA], "displayName": name});
                (json!({"method": "POST", "path": "/Groups", "bulkId": id, "data": data}), Some(id))
            }
            Unit::CreateUser { user_name, attrs, active } => {
                let id = next_id("u");
                // RFC 7644 §3.7.2: a resource created earlier in the same request is named by
                // "bulkId:<id>".
                let manager = attrs.manager.as_deref().and_then(|m| {
                    self.state
                        .users
                        .get(&key(m))
                        .map(|u| u.id.clone())
                        .or_else(|| created.get(&key(m)).map(|b| format!("bulkId:{b}")))
                });
                let data = wire::user_create_body(user_name, attrs, *active, manager.as_deref());
                (json!({"method": "POST", "path": "/Users", "bulkId": id, "data": data}), Some(id))
            }
            Unit::PatchUser { user, set, active } => {
                if !self.config.patch {
                    return None;
                }
                let entry = self.state.users.get(&key(user))?;
                let ops = self.user_ops(entry, set, *active);
                if ops.is_empty() {
                    // Nothing it can say (a manager not on the target): reported by `single`.
                    return None;
                }
                let mut op =
                    json!({"method": "PATCH", "path": path("Users", &entry.id), "data": wire::patch_body(ops)});
                if let Some(v) = self.etag(&entry.version).filter(|_| !touched.contains(&format!("u:{}", key(user)))) {
                    op["version"] = json!(v);
                }
                (op, None)
            }
            Unit::PatchGroup { group, add, remove, .. } => {
                if !self.config.patch {
                    return None;
                }
                let entry = self.state.groups.get(&key(group))?;
                let mut op = json!({"method": "PATCH", "path": path("Groups", &entry.id), "data": wire::patch_body(member_ops(add, remove, self.config.remove_members_by_value))});
                // A later part of the same group's change in this request cannot know the
                // version the earlier part leaves: only the first is conditional.
                if let Some(v) = self.etag(&entry.version).filter(|_| !touched.contains(&format!("g:{}", key(group)))) {
                    op["version"] = json!(v);
                }
                (op, None)
            }
            Unit::DeleteUser { user } => {
                let entry = self.state.users.get(&key(user))?;
                let mut op = json!({"method": "DELETE", "path": path("Users", &entry.id)});
                if let Some(v) = self.etag(&entry.version).filter(|_| !touched.contains(&format!("u:{}", key(user)))) {
                    op["version"] = json!(v);
                }
                (op, None)
            }
        };
        Some(BulkOp { bytes: serde_json::to_vec(&op).expect("JSON values serialize"), bulk_id })
    }

    fn user_ops(&self, entry: &UserEntry, set: &UserAttrs, active: Option<bool>) -> Vec<Value> {
        let manager = set.manager.as_deref().and_then(|m| self.state.users.get(&key(m))).map(|u| u.id.clone());
        let mut ops = wire::user_patch_ops(set, manager.as_deref(), &entry.emails);
        if let Some(a) = active {
            ops.push(wire::active_op(a));
        }
        ops
    }

    async fn send_bulk(
        &mut self,
        batch: Vec<(Work, BulkOp)>,
        alone: &mut Vec<Work>,
        adopt: &mut Vec<Work>,
        retry: &mut Vec<Work>,
    ) {
        let ops: Vec<Vec<u8>> = batch.iter().map(|(_, op)| op.bytes.clone()).collect();
        let body = bulk::assemble(&ops);
        self.requests += 1;
        let reply = self.client.send(Method::POST, self.client.url(&["Bulk"]), Some(body), None).await;
        let reply = match reply {
            Ok(r) => r,
            // The service counts differently than announced: send these one by one instead.
            Err(e) if e.status() == Some(413) => {
                tracing::warn!(
                    operations = batch.len(),
                    "the SCIM service refused a Bulk request as too large ({e}); sending its operations one by one"
                );
                alone.extend(batch.into_iter().map(|(w, _)| w));
                return;
            }
            Err(e) => {
                for (w, _) in batch {
                    let err = ApplyError::new(format!("{}: the Bulk request failed: {e}", w.unit.describe()));
                    self.record(&w, Err(err));
                }
                return;
            }
        };
        let outcomes = reply.body.as_ref().and_then(|b| wire::get(b, "Operations")).and_then(Value::as_array);
        let matched = match_outcomes(&batch, outcomes.map(Vec::as_slice).unwrap_or(&[]));
        for ((w, op), outcome) in batch.into_iter().zip(matched) {
            let r = match outcome {
                None => Err(ScimError::Invalid("the Bulk response gave no outcome for this operation".into())),
                Some(o) => self.bulk_effect(&w, &op, o),
            };
            self.settle(w, r, adopt, retry);
        }
    }

    /// The effect of one Bulk outcome (RFC 7644 §3.7.3): a 2xx status with `location` and
    /// `version`, or an error status with the error in `response`.
    fn bulk_effect(&self, w: &Work, _op: &BulkOp, o: &Value) -> Result<Effect, ScimError> {
        let status = wire::bulk_status(o).ok_or_else(|| ScimError::Invalid("a Bulk outcome has no status".into()))?;
        let version = wire::get(o, "version").and_then(Value::as_str).map(str::to_string).filter(|_| self.config.etag);
        let location = wire::get(o, "location").and_then(Value::as_str);
        if !(200..300).contains(&status) {
            // A DELETE of a user that is already gone reached the desired state.
            if status == 404 && matches!(w.unit, Unit::DeleteUser { .. }) {
                return Ok(effect_of(&w.unit, None, None, self.state));
            }
            let body = wire::get(o, "response").map(wire::ErrorBody::from_value).unwrap_or_default();
            return Err(client::scim_error(status, &body));
        }
        let id = location.and_then(wire::id_from_location);
        if matches!(w.unit, Unit::CreateUser { .. } | Unit::CreateGroup { .. }) && id.is_none() {
            return Err(ScimError::Invalid("the Bulk outcome of a creation has no location".into()));
        }
        Ok(effect_of(&w.unit, id, version, self.state))
    }
}

/// A serialized Bulk operation.
#[derive(Debug, Clone)]
pub(super) struct BulkOp {
    pub(super) bytes: Vec<u8>,
    pub(super) bulk_id: Option<String>,
}

/// PATCH operations for group members (RFC 7644 §3.5.2.1 add, §3.5.2.2 remove with a filter;
/// `by_value`: remove with `path: members` and a value list, the form services that refuse
/// the filter path take).
pub(super) fn member_ops(add: &[String], remove: &[String], by_value: bool) -> Vec<Value> {
    let values = |ids: &[String]| -> Vec<Value> { ids.iter().map(|id| json!({ "value": id })).collect() };
    let mut ops = Vec::new();
    if !add.is_empty() {
        ops.push(json!({"op": "add", "path": "members", "value": values(add)}));
    }
    if by_value && !remove.is_empty() {
        ops.push(json!({"op": "remove", "path": "members", "value": values(remove)}));
    } else {
        for id in remove {
            ops.push(json!({"op": "remove", "path": filter::member_path(id)}));
        }
    }
    ops
}

/// Pairs each operation sent with its outcome: by position when the counts agree (the
/// outcomes follow the request's order, as scim2-server and the RFC's examples do), else POSTs
/// by `bulkId` and the others by method and location, in order.
pub(super) fn match_outcomes<'a>(batch: &[(Work, BulkOp)], outcomes: &'a [Value]) -> Vec<Option<&'a Value>> {
    let method_of = |o: &Value| wire::get(o, "method").and_then(Value::as_str).map(str::to_ascii_uppercase);
    let sent_method = |op: &BulkOp| {
        serde_json::from_slice::<Value>(&op.bytes).ok().and_then(|v| v["method"].as_str().map(str::to_string))
    };
    if outcomes.len() == batch.len()
        && batch.iter().zip(outcomes).all(|((_, op), o)| {
            method_of(o).is_none_or(|m| Some(m) == sent_method(op))
                && op
                    .bulk_id
                    .as_deref()
                    .is_none_or(|b| wire::get(o, "bulkId").and_then(Value::as_str).is_none_or(|ob| ob == b))
        })
    {
        return outcomes.iter().map(Some).collect();
    }
    let mut used = vec![false; outcomes.len()];
    batch
        .iter()
        .map(|(_, op)| {
            let sent: Value = serde_json::from_slice(&op.bytes).ok()?;
            let found = outcomes.iter().enumerate().position(|(j, o)| {
                !used[j]
                    && match &op.bulk_id {
                        Some(b) => wire::get(o, "bulkId").and_then(Value::as_str) == Some(b.as_str()),
                        None => {
                            method_of(o).as_deref() == sent["method"].as_str()
                                && wire::get(o, "location")
                                    .and_then(Value::as_str)
                                    .and_then(wire::id_from_location)
                                    .zip(sent["path"].as_str().and_then(wire::id_from_location))
                                    .is_some_and(|(a, b)| a == b)
                        }
                    }
            })?;
            used[found] = true;
            Some(&outcomes[found])
        })
        .collect()
}
