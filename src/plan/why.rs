//! Why a change is in the plan, as the planner saw it. Plans carry its text (`reason.message`
//! in the JSON); the text is rendered from these values, never stored by the planner.

use std::fmt;

use crate::model::{Duration, Expiry, Timestamp};

/// What a binding grants: a role, or read access to a DataClassification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Granting {
    Role(String),
    Data(String),
}

/// Why a change is in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The user's account is missing from the target, though the baseline had it.
    AccountMissing,
    /// The user is in the configuration but not on the target.
    UserNotOnTarget,
    /// These fields of an account differ from the configuration.
    FieldsDiffer {
        fields: Vec<String>,
    },
    /// The user's business unit differs from the configuration's.
    BusinessUnitDiffers {
        from: String,
        to: String,
    },
    /// The configuration sets the user's status.
    StatusSays {
        active: bool,
    },
    /// A managed account git no longer puts on this target: `in_git` when the user is still in
    /// git (their `targets` changed); `delete` is what lifecycle.removedUsers says.
    Removed {
        in_git: bool,
        delete: bool,
    },
    ServiceAccountNotOnTarget,
    /// An application user keyward managed that git no longer puts on this target: `in_git`
    /// when the service account is still in git (its roles or `targets` changed).
    ServiceAccountRemoved {
        in_git: bool,
    },
    /// The application user of a service account in git is disabled on the target.
    ServiceAccountDisabled,
    /// An AuthenticationPolicy allows, or forbids, a sign-in method.
    AuthMethod {
        allowed: bool,
    },
    /// A binding to create.
    BindingMissing {
        granting: Granting,
        binding: String,
    },
    /// A bound object lacks settings the configuration asks for.
    BindingSettings {
        binding: String,
    },
    Given {
        granting: Granting,
        subject: String,
    },
    LostOutside {
        granting: Granting,
        subject: String,
    },
    NotGiven {
        granting: Granting,
        subject: String,
    },
    GivenOutside {
        granting: Granting,
        subject: String,
    },
    AssignmentExpired {
        date: Expiry,
    },
    /// The configuration last applied bound `binding` to role `role` on this target and no
    /// role binds it now: keyward managed it, so its members keyward manages lose it.
    BindingReleased {
        role: String,
        binding: String,
    },
    /// A team's security roles differ from those its binding lists (changed outside git when
    /// the baseline listed the same).
    TeamRolesDiffer {
        binding: String,
        outside: bool,
    },
    /// A live account the configuration does not know holds the binding.
    NotInConfiguration {
        account: String,
    },
    /// An old credential instance nobody received.
    NeverDelivered {
        credential: String,
    },
    /// An old credential instance past its end.
    CredentialExpired {
        credential: String,
        end: Timestamp,
    },
    /// An old credential instance replaced by `by`, its overlap (if any) over.
    Replaced {
        by: String,
        on: Timestamp,
        overlap: Option<(Duration, Timestamp)>,
    },
    /// A credential the account's declaration does not name.
    Undeclared {
        credential: String,
        account: String,
    },
    /// A rotation: the newest instance was never delivered.
    RotateUndelivered {
        credential: String,
        issued: Timestamp,
    },
    /// A rotation: the account has no instance yet.
    RotateNew {
        credential: String,
    },
    /// A rotation: the current instance ended.
    RotateExpired {
        credential: String,
        end: Timestamp,
    },
    /// A rotation: the current instance was not issued by keyward.
    RotateUnknown {
        credential: String,
    },
    /// A rotation: the current instance ends within `rotateBefore`.
    RotateInWindow {
        credential: String,
        end: Timestamp,
        window: Duration,
        from: Timestamp,
    },
    /// The configuration makes `subject` eligible for `role`.
    EligibleGiven {
        role: String,
        subject: String,
    },
    /// `subject` lost an eligibility the baseline gave them.
    EligibilityLostOutside {
        role: String,
        subject: String,
    },
    /// The configuration ends `subject`'s eligibility for `role` at another time (`None`: never).
    EligibilityEnds {
        role: String,
        subject: String,
        end: Option<Timestamp>,
    },
    /// `subject` was made eligible for `role` outside git.
    EligibilityGivenOutside {
        role: String,
        subject: String,
    },
    /// The configuration does not make `subject` eligible for `role` here.
    EligibleNotGiven {
        role: String,
        subject: String,
    },
    /// What activating `role` takes differs from the configuration in `fields`.
    ActivationDiffers {
        role: String,
        fields: Vec<String>,
    },
    /// Text from outside the planner: a saved plan read back, a test.
    Text(String),
}

fn day(t: &Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Granting::{Data, Role};
        match self {
            Why::AccountMissing => f.write_str("the account is missing from the target"),
            Why::UserNotOnTarget => f.write_str("the user is in the configuration but not on the target"),
            Why::BusinessUnitDiffers { from, to } => {
                write!(f, "the user is in business unit `{from}`; the configuration puts them in `{to}`")
            }
            Why::FieldsDiffer { fields } => {
                write!(
                    f,
                    "{} differ{} from the configuration",
                    fields.join(", "),
                    if fields.len() == 1 { "s" } else { "" }
                )
            }
            Why::StatusSays { active: true } => f.write_str("the configuration says status: active"),
            Why::StatusSays { active: false } => f.write_str("the configuration says status: disabled"),
            Why::Removed { in_git, delete } => write!(
                f,
                "{}; lifecycle.removedUsers is {}",
                if *in_git {
                    "the user's `targets` no longer include this target"
                } else {
                    "the account is not in the configuration"
                },
                if *delete { "delete" } else { "disable" }
            ),
            Why::ServiceAccountNotOnTarget => {
                f.write_str("the service account is in the configuration but not on the target")
            }
            Why::ServiceAccountRemoved { in_git: true } => {
                f.write_str("the service account no longer has roles on this target")
            }
            Why::ServiceAccountRemoved { in_git: false } => {
                f.write_str("the service account is no longer in the configuration")
            }
            Why::ServiceAccountDisabled => {
                f.write_str("the service account is in the configuration and its account here is disabled")
            }
            Why::AuthMethod { allowed: true } => f.write_str("an AuthenticationPolicy allows this method"),
            Why::AuthMethod { allowed: false } => f.write_str("an AuthenticationPolicy forbids this method"),
            Why::BindingMissing { granting: Role(r), binding } => {
                write!(f, "role `{r}` is bound to {binding}, which does not exist yet")
            }
            Why::BindingMissing { granting: Data(d), binding } => {
                write!(f, "`{d}` lists columns here; {binding} keeps them readable by its readers only")
            }
            Why::BindingSettings { binding } => {
                write!(f, "{binding} does not have every setting the configuration asks for")
            }
            Why::Given { granting: Role(r), subject } => write!(f, "the configuration gives `{subject}` role `{r}`"),
            Why::Given { granting: Data(d), subject } => write!(f, "`{subject}` holds a role that may read `{d}`"),
            Why::LostOutside { granting: Role(r), subject } => write!(f, "`{subject}` lost role `{r}` outside git"),
            Why::LostOutside { granting: Data(d), subject } => {
                write!(f, "`{subject}` lost read access to `{d}` outside git")
            }
            Why::NotGiven { granting: Role(r), subject } => {
                write!(f, "the configuration does not give `{subject}` role `{r}` here")
            }
            Why::NotGiven { granting: Data(d), subject } => {
                write!(f, "`{subject}` holds no role here that may read `{d}`")
            }
            Why::GivenOutside { granting: Role(r), subject } => {
                write!(f, "`{subject}` was given role `{r}` outside git")
            }
            Why::GivenOutside { granting: Data(d), subject } => {
                write!(f, "`{subject}` was given read access to `{d}` outside git")
            }
            Why::AssignmentExpired { date } => write!(f, "the assignment expired on {date}"),
            Why::BindingReleased { role, binding } => {
                write!(f, "role `{role}` bound {binding} in the configuration last applied and nothing binds it now")
            }
            Why::TeamRolesDiffer { binding, outside: true } => {
                write!(f, "the security roles of {binding} were changed outside git")
            }
            Why::TeamRolesDiffer { binding, outside: false } => {
                write!(f, "the security roles of {binding} differ from those the configuration lists")
            }
            Why::NotInConfiguration { account } => write!(f, "`{account}` is not in the configuration"),
            Why::NeverDelivered { credential } => {
                write!(f, "`{credential}` was issued but never delivered, so nobody holds it")
            }
            Why::CredentialExpired { credential, end } => write!(f, "`{credential}` expired on {}", day(end)),
            Why::Replaced { by, on, overlap: Some((o, ended)) } => {
                write!(f, "`{by}` replaced it on {}; the overlap of {o} ended on {}", day(on), day(ended))
            }
            Why::Replaced { by, on, overlap: None } => write!(f, "`{by}` replaced it on {}", day(on)),
            Why::Undeclared { credential, account } => write!(
                f,
                "credential `{credential}` is on the account, but `{account}` declares no credential of that name"
            ),
            Why::RotateUndelivered { credential, issued } => {
                write!(f, "not delivered: `{credential}` was issued on {} but never reached its sink", day(issued))
            }
            Why::RotateNew { credential } => write!(f, "new: the account has no `{credential}` yet"),
            Why::RotateExpired { credential, end } => write!(f, "expired: `{credential}` ended on {}", day(end)),
            Why::RotateUnknown { credential } => write!(
                f,
                "unknown credential: `{credential}` was not issued by keyward (its dates and holder are unknown); a keyward one replaces it"
            ),
            Why::RotateInWindow { credential, end, window, from } => write!(
                f,
                "inside window: `{credential}` ends on {}, within rotateBefore {window} (from {})",
                day(end),
                day(from)
            ),
            Why::EligibleGiven { role, subject } => {
                write!(f, "the configuration makes `{subject}` eligible for role `{role}`")
            }
            Why::EligibilityLostOutside { role, subject } => {
                write!(f, "`{subject}` lost eligibility for role `{role}` outside git")
            }
            Why::EligibilityEnds { role, subject, end: Some(end) } => write!(
                f,
                "the configuration ends `{subject}`'s eligibility for role `{role}` at {}",
                end.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            Why::EligibilityEnds { role, subject, end: None } => {
                write!(f, "the configuration makes `{subject}` eligible for role `{role}` with no end")
            }
            Why::EligibilityGivenOutside { role, subject } => {
                write!(f, "`{subject}` was made eligible for role `{role}` outside git")
            }
            Why::EligibleNotGiven { role, subject } => {
                write!(f, "the configuration does not make `{subject}` eligible for role `{role}` here")
            }
            Why::ActivationDiffers { role, fields } => {
                write!(f, "what activating role `{role}` takes ({}) differs from the configuration", fields.join(", "))
            }
            Why::Text(t) => f.write_str(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn reasons_read_as_plans_have_always_shown_them() {
        let fields = |f: &[&str]| Why::FieldsDiffer { fields: f.iter().map(|s| s.to_string()).collect() };
        assert_eq!(fields(&["jobTitle"]).to_string(), "jobTitle differs from the configuration");
        assert_eq!(fields(&["email", "jobTitle"]).to_string(), "email, jobTitle differ from the configuration");
        assert_eq!(
            Why::Removed { in_git: true, delete: false }.to_string(),
            "the user's `targets` no longer include this target; lifecycle.removedUsers is disable"
        );
        let week = Duration::parse("7d").unwrap();
        let on = t("2026-03-01T00:00:00Z");
        assert_eq!(
            Why::Replaced { by: "api@2026-03-01".into(), on, overlap: Some((week, t("2026-03-08T00:00:00Z"))) }
                .to_string(),
            "`api@2026-03-01` replaced it on 2026-03-01; the overlap of 7d ended on 2026-03-08"
        );
        assert_eq!(
            Why::Replaced { by: "api@2026-03-01".into(), on, overlap: None }.to_string(),
            "`api@2026-03-01` replaced it on 2026-03-01"
        );
        let role = Granting::Role("ap-clerk".into());
        assert_eq!(
            Why::GivenOutside { granting: role, subject: "ann".into() }.to_string(),
            "`ann` was given role `ap-clerk` outside git"
        );
        let data = Granting::Data("payroll".into());
        assert_eq!(
            Why::NotGiven { granting: data, subject: "ann".into() }.to_string(),
            "`ann` holds no role here that may read `payroll`"
        );
    }
}
