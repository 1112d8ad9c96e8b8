//! Time-boxed grants: a role given to a person until an exact time, with the reason, written
//! into their YAML as any assignment is, so the planner revokes it when the time comes.
//!
//! Guarantees: pure; the grant ends at `now + duration` (to the second), never later than
//! `governance.elevation.maxDuration` allows; a standing assignment, or one that lasts longer,
//! is never shortened by an elevation.

use std::path::PathBuf;

use super::edit::{self, EditError};
use crate::load::Loaded;
use crate::model::{DesiredState, config::Elevation};
use crate::model::{Duration, Expiry, Instant, Kind, Name, RoleGrantDetail, Timestamp};
use crate::validate::Origins;

/// What to elevate.
#[derive(Debug, Clone)]
pub struct Request {
    pub user: Name,
    pub role: Name,
    pub duration: Duration,
    pub reason: String,
    pub ticket: Option<String>,
}

/// A time-boxed grant, written into the configuration.
#[derive(Debug, Clone)]
pub struct Elevated {
    pub grant: RoleGrantDetail,
    pub until: Instant,
    /// The file changed, relative to the configuration folder, and its new text.
    pub file: PathBuf,
    pub text: String,
    /// A title and body for the pull request (Markdown).
    pub title: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElevateError {
    #[error("there is no User `{0}`")]
    UnknownUser(Name),
    #[error("there is no Role `{0}`")]
    UnknownRole(Name),
    #[error("--for {asked} is longer than governance.elevation.maxDuration ({max})")]
    TooLong { asked: Duration, max: String },
    #[error("--for must be longer than zero")]
    NotPositive,
    #[error("the reason is empty, longer than 500 characters, or holds control characters; say in one line why")]
    BadReason,
    #[error("`{user}` holds `{role}` {how}; an elevation would not add to it")]
    AlreadyHeld { user: Name, role: Name, how: String },
    #[error("cannot write the grant into {file}: {source}")]
    Edit {
        file: PathBuf,
        #[source]
        source: EditError,
    },
}

fn one_line(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= 500 && !s.chars().any(char::is_control)
}

/// The longest elevation keyward.yaml allows, in seconds.
pub fn max_seconds(state: &DesiredState) -> i64 {
    state
        .settings
        .governance
        .elevation
        .as_ref()
        .and_then(|e| e.max_duration)
        .map_or(Elevation::DEFAULT_MAX, |d| d.seconds())
}

/// Writes the grant of `request` into the configuration as it is at `now`.
pub fn elevate(
    state: &DesiredState,
    loaded: &Loaded,
    origins: &Origins,
    request: &Request,
    now: Timestamp,
) -> Result<Elevated, ElevateError> {
    let user = state.users.get(&request.user).ok_or_else(|| ElevateError::UnknownUser(request.user.clone()))?;
    let role = state.roles.get(&request.role).ok_or_else(|| ElevateError::UnknownRole(request.role.clone()))?;
    if request.duration.seconds() <= 0 {
        return Err(ElevateError::NotPositive);
    }
    let max = max_seconds(state);
    if request.duration.seconds() > max {
        let max = state
            .settings
            .governance
            .elevation
            .as_ref()
            .and_then(|e| e.max_duration)
            .map_or_else(|| "8h, the default".to_string(), |d| d.to_string());
        return Err(ElevateError::TooLong { asked: request.duration, max });
    }
    if !one_line(&request.reason) || request.ticket.as_deref().is_some_and(|t| !one_line(t)) {
        return Err(ElevateError::BadReason);
    }
    // To the second: the time written is the time it ends.
    let start = chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    let until = Instant(start + request.duration.to_chrono());
    if let Some(held) = user.roles.iter().find(|g| g.role() == &request.role) {
        match held.expires() {
            None => {
                return Err(ElevateError::AlreadyHeld {
                    user: request.user.clone(),
                    role: request.role.clone(),
                    how: "without an expiry".into(),
                });
            }
            Some(e) if e.end() >= until.0 => {
                return Err(ElevateError::AlreadyHeld {
                    user: request.user.clone(),
                    role: request.role.clone(),
                    how: format!("until {e}"),
                });
            }
            Some(_) => {} // Ended, or ends sooner: the elevation replaces it.
        }
    }
    let grant = RoleGrantDetail {
        expires: Some(Expiry::At(until)),
        reason: Some(request.reason.trim().to_string()),
        ticket: request.ticket.clone(),
        ..RoleGrantDetail::new(request.role.clone())
    };
    let origin =
        origins.get(Kind::User, &request.user).ok_or_else(|| ElevateError::UnknownUser(request.user.clone()))?;
    let doc = &loaded.documents[origin.doc];
    let file = loaded.files[doc.file].path.clone();
    let text = edit::set_grant(&loaded.files[doc.file].text, doc.span.clone(), &grant)
        .map_err(|source| ElevateError::Edit { file: file.clone(), source })?;
    let title = format!("Elevate {} to {} for {} (until {until})", request.user, request.role, request.duration);
    let mut body = format!(
        "Time-boxed grant written by `keyward elevate`.\n\n\
         | | |\n|---|---|\n| user | `{}` ({}) |\n| role | `{}`{} |\n| for | {} |\n| until | {until} |\n| reason | {} |\n",
        request.user,
        user.user_name,
        request.role,
        if role.privileged { " (privileged)" } else { "" },
        request.duration,
        request.reason.trim().replace('|', "\\|"),
    );
    if let Some(t) = &request.ticket {
        body.push_str(&format!("| ticket | {} |\n", t.replace('|', "\\|")));
    }
    body.push_str(&format!(
        "\nThe next apply after {until} revokes it. Merge and apply soon: the time runs from when the grant was written.\n"
    ));
    if role.privileged {
        let (owners, _) = super::owners::of_role(state, Some(role));
        let people: Vec<String> = super::owners::people(state, owners).iter().map(|p| format!("`{p}`")).collect();
        if !people.is_empty() {
            body.push_str(&format!(
                "\nNeeds an approval from an owner of `{}` other than `{}`: {}.\n",
                request.role,
                request.user,
                people.join(", ")
            ));
        }
    }
    Ok(Elevated { grant, until, file, text, title, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra_settings: &str) -> (Loaded, crate::validate::Validated) {
        let files = vec![
            (
                PathBuf::from("keyward.yaml"),
                format!("version: 1\ntargets:\n  directory: {{provider: file, path: d.json}}\n{extra_settings}").into_bytes(),
            ),
            (
                PathBuf::from("people.yaml"),
                b"kind: User\nname: ann\nuserName: ann@x.example\nroles: [reader]\n---\nkind: User\nname: bob\nuserName: bob@x.example\nroles:\n  - role: admin\n    expires: 2027-01-01\n".to_vec(),
            ),
            (
                PathBuf::from("roles.yaml"),
                b"kind: Role\nname: admin\nprivileged: true\nowners: [bob]\nbindings: {directory: {group: admins}}\n---\nkind: Role\nname: reader\nbindings: {directory: {group: readers}}\n".to_vec(),
            ),
        ];
        let loaded = crate::load::load_files(std::path::Path::new("/c"), files).unwrap();
        let v = crate::validate::validate(&loaded);
        assert!(!v.has_errors(), "{:?}", v.diagnostics);
        (loaded, v)
    }

    fn request(user: &str, role: &str, duration: &str) -> Request {
        Request {
            user: Name::new(user).unwrap(),
            role: Name::new(role).unwrap(),
            duration: Duration::parse(duration).unwrap(),
            reason: "Incident 7: rotate the relay's keys".into(),
            ticket: Some("INC-7".into()),
        }
    }

    fn now() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:30.25Z").unwrap().to_utc()
    }

    #[test]
    fn writes_a_grant_that_ends_at_the_exact_time() {
        let (loaded, v) = config("");
        let e = elevate(v.state.as_ref().unwrap(), &loaded, &v.origins, &request("ann", "admin", "2h"), now()).unwrap();
        assert_eq!(e.until.to_string(), "2026-11-28T14:00:30Z");
        assert_eq!(e.file, PathBuf::from("people.yaml"));
        assert!(
            e.text.starts_with("kind: User\nname: ann\nuserName: ann@x.example\nroles: [reader, {role: admin, expires: 2026-11-28T14:00:30Z, reason: \"Incident 7: rotate the relay's keys\", ticket: INC-7}]\n---\n"),
            "{}",
            e.text
        );
        assert!(e.body.contains("Needs an approval from an owner of `admin` other than `ann`: `bob`."), "{}", e.body);
    }

    #[test]
    fn limits_hold() {
        let (loaded, v) = config("governance:\n  elevation: {maxDuration: 4h}\n");
        let state = v.state.as_ref().unwrap();
        let too_long = elevate(state, &loaded, &v.origins, &request("ann", "admin", "5h"), now()).unwrap_err();
        assert_eq!(too_long.to_string(), "--for 5h is longer than governance.elevation.maxDuration (4h)");
        let (loaded, v) = config("");
        let state = v.state.as_ref().unwrap();
        assert!(matches!(
            elevate(state, &loaded, &v.origins, &request("ann", "admin", "9h"), now()),
            Err(ElevateError::TooLong { .. })
        ));
        // bob holds admin until 2027-01-01: two hours would not add to it.
        let held = elevate(state, &loaded, &v.origins, &request("bob", "admin", "2h"), now()).unwrap_err();
        assert_eq!(held.to_string(), "`bob` holds `admin` until 2027-01-01; an elevation would not add to it");
        let standing = elevate(state, &loaded, &v.origins, &request("ann", "reader", "2h"), now()).unwrap_err();
        assert!(standing.to_string().contains("without an expiry"), "{standing}");
        let mut r = request("ann", "admin", "2h");
        r.reason = "ok\nstatus: disabled".into();
        assert_eq!(elevate(state, &loaded, &v.origins, &r, now()).unwrap_err(), ElevateError::BadReason);
        assert!(matches!(
            elevate(state, &loaded, &v.origins, &request("zed", "admin", "2h"), now()),
            Err(ElevateError::UnknownUser(_))
        ));
    }
}
