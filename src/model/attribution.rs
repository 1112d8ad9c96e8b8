//! Who changed a live object outside keyward, as a target's own audit log tells.

/// Who changed a live object outside keyward, from the target's own audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribution {
    /// The person or application that made the change, where the target reports it (an LDAP
    /// directory's `modifiersName`, Graph's directory audits); `None` where it reports only a
    /// time (Active Directory's `whenChanged`, SCIM's `meta.lastModified`).
    pub actor: Option<String>,
    pub time: super::Timestamp,
    /// The audit log's name for what they did (for example `Add member to group`).
    pub activity: String,
}

impl Attribution {
    /// The plan note that shows it beside the change.
    pub fn note(&self) -> String {
        let time = self.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match &self.actor {
            Some(actor) => format!("changed outside git by {actor} at {time} ({})", self.activity),
            None => format!("changed outside git at {time} ({})", self.activity),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_the_actor_only_where_the_target_reports_one() {
        let time = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let mut a = Attribution { actor: Some("ann@example.com".into()), time, activity: "Update user".into() };
        assert_eq!(a.note(), "changed outside git by ann@example.com at 2026-12-01T10:00:00Z (Update user)");
        a.actor = None;
        assert_eq!(a.note(), "changed outside git at 2026-12-01T10:00:00Z (Update user)");
    }
}
