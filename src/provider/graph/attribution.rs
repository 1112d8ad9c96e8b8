//! Who changed a live object outside keyward, from the directory audit log.

use super::*;

impl GraphProvider {
    /// Looks the drift changes up in `/auditLogs/directoryAudits` (§2.8): the newest entry of
    /// the last 30 days whose target is the changed object (the account for memberships and
    /// account changes) and whose activity concerns the same kind of thing.
    pub(super) async fn attribute_drift(&mut self, changes: &[&Change]) -> Vec<Option<Attribution>> {
        let none = vec![None; changes.len()];
        let Some(state) = &self.state else { return none };
        let wanted: Vec<Option<(String, &'static str)>> =
            changes.iter().map(|c| audit_key(state, &c.operation)).collect();
        if wanted.iter().all(Option::is_none) {
            return none;
        }
        let since = (chrono::Utc::now() - chrono::Duration::days(AUDIT_LOOKBACK_DAYS))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let url = format!("/auditLogs/directoryAudits?$filter=activityDateTime ge {since}&$top=999");
        let mut entries = match self.client.get_pages(&url, AUDIT_MAX_PAGES).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target_name = %self.target, error = %e, "cannot read the directory audit log; drift is shown without who made it");
                return none;
            }
        };
        entries.sort_by_key(|e| std::cmp::Reverse(str_of(e, "activityDateTime")));
        wanted
            .iter()
            .map(|w| {
                let (id, word) = w.as_ref()?;
                let e = entries.iter().find(|e| {
                    let activity = str_of(e, "activityDisplayName").unwrap_or_default().to_lowercase();
                    activity.contains(word)
                        && e.get("targetResources")
                            .and_then(Value::as_array)
                            .is_some_and(|t| t.iter().any(|r| str_of(r, "id").as_deref() == Some(id.as_str())))
                })?;
                let by = e.get("initiatedBy")?;
                let actor = by
                    .get("user")
                    .and_then(|u| str_of(u, "userPrincipalName").or_else(|| str_of(u, "displayName")))
                    .or_else(|| by.get("app").and_then(|a| str_of(a, "displayName").or_else(|| str_of(a, "appId"))))?;
                let time = chrono::DateTime::parse_from_rfc3339(&str_of(e, "activityDateTime")?).ok()?;
                Some(Attribution {
                    actor: Some(actor),
                    time: time.with_timezone(&chrono::Utc),
                    activity: str_of(e, "activityDisplayName")?,
                })
            })
            .collect()
    }
}

/// The id of the object whose audit entries tell who made a change, and a word its activity
/// names (`Add member to group`, `Add member to role`, `Update user`, …).
fn audit_key(state: &State, op: &Operation) -> Option<(String, &'static str)> {
    let principal = |p: &Principal| match p {
        Principal::User(u) => state.users.get(&key(u)).cloned(),
        Principal::ServiceAccount(s) => state.service_accounts.get(s).and_then(|e| e.sp_id.clone()),
    };
    match op {
        Operation::Assign { principal: p, binding } | Operation::Revoke { principal: p, binding } => {
            let word = match binding {
                Binding::Group(_) => "group",
                Binding::DirectoryRole(_) => "role",
                Binding::AppRole(_) => "app role",
                Binding::SecurityRole(_)
                | Binding::Team(_)
                | Binding::GroupTeam(_)
                | Binding::FieldSecurityProfile(_) => return None,
            };
            Some((principal(p)?, word))
        }
        Operation::UpdateUser { user_name, .. }
        | Operation::SetUserActive { user_name, .. }
        | Operation::DeleteUser { user_name } => Some((state.users.get(&key(user_name))?.clone(), "user")),
        Operation::UpdateServiceAccount { name, .. } => {
            Some((state.service_accounts.get(name)?.app_object_id.clone(), "application"))
        }
        Operation::SetAuthMethod { method, .. } => Some((wire::method_config(*method)?.0.to_string(), "polic")),
        _ => None,
    }
}
