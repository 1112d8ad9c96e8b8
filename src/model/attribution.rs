//! Who changed a live object outside keyward, as a target's own audit log tells.

/// Who changed a live object outside keyward, from the target's own audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// The person or application that made the change.
    pub actor: String,
    pub time: super::Timestamp,
    /// The audit log's name for what they did (for example `Add member to group`).
    pub activity: String,
}

impl Attribution {
    /// The plan note that shows it beside the change.
    pub fn note(&self) -> String {
        format!(
            "changed outside git by {} at {} ({})",
            self.actor,
            self.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.activity
        )
    }
}
