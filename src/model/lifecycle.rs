//! One declared credential's lifecycle on one service account: which live instance is current,
//! and where it stands. The planner, the policies, the drift metrics and the access review all
//! ask these two functions, so they never disagree about a credential.
//!
//! The rules:
//! - an instance is a live credential named `NAME@DATE` (keyward's) or just `NAME` (by hand);
//! - the current instance is the newest (by start, then end, then id) instance of the declared
//!   type that was delivered: one issued but never delivered is held by nobody, so it is never
//!   current, however new;
//! - the current instance is expired once its end has passed, due for rotation once its end is
//!   within `rotateBefore`, valid otherwise; no current instance is missing.

use super::{CredentialSpec, LiveCredential, Timestamp, UndeliveredCredential};

/// Where a declared credential's current instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStatus {
    /// No delivered instance of the declared type.
    Missing,
    /// The current instance's end has passed.
    Expired,
    /// The current instance ends within `rotateBefore`.
    RotationDue,
    Valid,
}

impl CredentialStatus {
    /// Its name in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Missing => "missing",
            CredentialStatus::Expired => "expired",
            CredentialStatus::RotationDue => "rotation-due",
            CredentialStatus::Valid => "valid",
        }
    }
}

/// The current instance of `spec` among an account's live credentials; `undelivered` tells
/// which were issued but never delivered.
pub fn current_instance<'a>(
    spec: &CredentialSpec,
    credentials: &'a [LiveCredential],
    undelivered: &dyn Fn(&LiveCredential) -> bool,
) -> Option<&'a LiveCredential> {
    credentials
        .iter()
        .filter(|c| c.instance_of(spec.name.as_str()) && c.kind == spec.kind && !undelivered(c))
        .max_by_key(|c| (c.start, c.end, c.id.as_str()))
}

/// Where `spec` stands, given its current instance (from [`current_instance`]) at `now`.
pub fn status(spec: &CredentialSpec, current: Option<&LiveCredential>, now: Timestamp) -> CredentialStatus {
    match current {
        None => CredentialStatus::Missing,
        Some(c) if c.end <= now => CredentialStatus::Expired,
        Some(c) if spec.rotate_before.is_some_and(|w| c.end - now <= w.to_chrono()) => CredentialStatus::RotationDue,
        Some(_) => CredentialStatus::Valid,
    }
}

/// Whether live credential `c` of `account` on `target` was issued but never delivered.
pub fn is_undelivered(undelivered: &[UndeliveredCredential], target: &str, account: &str, c: &LiveCredential) -> bool {
    undelivered.iter().any(|u| u.matches(target, account, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CredentialType, Duration, Name};

    fn t(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn cred(id: &str, name: &str, start: &str, end: &str) -> LiveCredential {
        LiveCredential {
            id: id.into(),
            name: name.into(),
            kind: CredentialType::Secret,
            start: t(start),
            end: t(end),
            thumbprint: None,
        }
    }

    fn spec() -> CredentialSpec {
        CredentialSpec {
            name: Name::new("api").unwrap(),
            kind: CredentialType::Secret,
            lifetime: Duration::parse("90d").unwrap(),
            rotate_before: Some(Duration::parse("14d").unwrap()),
            overlap: None,
            key_algorithm: None,
            deliver: None,
        }
    }

    #[test]
    fn the_newest_delivered_instance_is_current_and_an_undelivered_one_never_is() {
        let creds = vec![
            cred("1", "api@2026-01-01", "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z"),
            cred("2", "api@2026-03-25", "2026-03-25T00:00:00Z", "2026-06-23T00:00:00Z"),
            cred("3", "other@2026-03-26", "2026-03-26T00:00:00Z", "2026-06-24T00:00:00Z"),
        ];
        let none = |_: &LiveCredential| false;
        assert_eq!(current_instance(&spec(), &creds, &none).map(|c| c.id.as_str()), Some("2"));
        let lost = |c: &LiveCredential| c.id == "2";
        let current = current_instance(&spec(), &creds, &lost);
        assert_eq!(current.map(|c| c.id.as_str()), Some("1"));
        assert_eq!(status(&spec(), current, t("2026-03-20T00:00:00Z")), CredentialStatus::RotationDue);
        assert_eq!(status(&spec(), current, t("2026-04-01T00:00:00Z")), CredentialStatus::Expired);
        assert_eq!(status(&spec(), current, t("2026-02-01T00:00:00Z")), CredentialStatus::Valid);
        assert_eq!(status(&spec(), None, t("2026-02-01T00:00:00Z")), CredentialStatus::Missing);
    }
}
