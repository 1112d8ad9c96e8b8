//! Service-account credentials: lifetimes above policy, and (at plan time, with the injected
//! clock) live credentials inside their rotation window or past their end.

use super::{PlanIndex, default_severity};
use crate::model::lifecycle::{self, CredentialStatus};
use crate::model::{CredentialType, Kind, LiveCredential, Severity};
use crate::plan::Action;
use crate::policy::Rule;
use crate::policy::{Finding, PolicyContext};

pub(super) fn check(ctx: &PolicyContext, plan: &PlanIndex, out: &mut Vec<Finding>) {
    if let Some(max) = ctx.desired.settings.policy.max_secret_lifetime {
        for (name, sa) in &ctx.desired.service_accounts {
            for (i, c) in sa.credentials.iter().enumerate() {
                if c.kind == CredentialType::Secret && c.lifetime.seconds() > max.seconds() {
                    out.push(
                        Finding::new(
                            Rule::CredentialLifetimeExceedsPolicy.id(),
                            default_severity(Rule::CredentialLifetimeExceedsPolicy),
                            format!("service-account.{name}"),
                            format!(
                                "secret `{}` of service account `{name}` lives {}, longer than policy.maxSecretLifetime ({max})",
                                c.name, c.lifetime
                            ),
                        )
                        .help(format!("set `lifetime` to {max} or less; keyward rotates it before it ends"))
                        .at(ctx.locate(
                            Kind::ServiceAccount,
                            name,
                            &["credentials".into(), i.into(), "lifetime".into()],
                        )),
                    );
                }
            }
        }
    }
    live(ctx, plan, out);
}

/// Whether a live credential is an instance of the credential named `name` (keyward names its
/// own `NAME@STARTDATE`).
pub(crate) fn instance_of(live: &LiveCredential, name: &str) -> bool {
    live.instance_of(name)
}

fn live(ctx: &PolicyContext, plan: &PlanIndex, out: &mut Vec<Finding>) {
    let Some(live) = ctx.live else { return };
    let now = ctx.now;
    for (t, lt) in live {
        for ls in &lt.service_accounts {
            let Some((name, sa)) = ctx.desired.service_accounts.get_key_value(ls.name.as_str()) else { continue };
            for (i, spec) in sa.credentials.iter().enumerate() {
                let instances: Vec<&LiveCredential> =
                    ls.credentials.iter().filter(|c| instance_of(c, spec.name.as_str())).collect();
                let lost = |c: &LiveCredential| lifecycle::is_undelivered(ctx.undelivered, t.as_str(), &ls.name, c);
                let Some(current) = lifecycle::current_instance(spec, &ls.credentials, &lost) else { continue };
                let status = lifecycle::status(spec, Some(current), now);
                let address = format!("{t}.credential.{name}/{}", spec.name);
                let at = ctx.locate(Kind::ServiceAccount, name, &["credentials".into(), i.into(), "name".into()]);
                let rotating = plan.has(&address, Action::Rotate);
                if status == CredentialStatus::Expired {
                    let help = if rotating {
                        "the plan issues a new credential; apply it, and check what used the expired one"
                    } else {
                        "apply a plan so keyward issues a new credential, or rotate it on the target"
                    };
                    out.push(
                        Finding::new(
                            Rule::CredentialExpired.id(),
                            default_severity(Rule::CredentialExpired),
                            address,
                            format!(
                                "credential `{}` of service account `{name}` on `{t}` expired on {}",
                                spec.name,
                                current.end.format("%Y-%m-%d")
                            ),
                        )
                        .help(help)
                        .at(at),
                    );
                    continue;
                }
                if status == CredentialStatus::RotationDue
                    && let Some(window) = spec.rotate_before
                {
                    let (severity, help) = if rotating {
                        (default_severity(Rule::CredentialRotationWindow), "the plan rotates it; apply it")
                    } else {
                        (Severity::Warn, "the plan does not rotate it; check that the target supports rotation")
                    };
                    out.push(
                        Finding::new(
                            Rule::CredentialRotationWindow.id(),
                            severity,
                            address.clone(),
                            format!(
                                "credential `{}` of service account `{name}` on `{t}` ends on {}, inside its rotation window ({window})",
                                spec.name,
                                current.end.format("%Y-%m-%d")
                            ),
                        )
                        .help(help)
                        .at(at.clone()),
                    );
                }
                for c in instances {
                    let lifetime = c.end - c.start;
                    if lifetime > spec.lifetime.to_chrono() + chrono::TimeDelta::days(1) {
                        out.push(
                            Finding::new(
                                Rule::CredentialLifetimeExceedsPolicy.id(),
                                Severity::Warn,
                                address.clone(),
                                format!(
                                    "live credential `{}` of `{name}` on `{t}` is valid for {} days, longer than its lifetime ({})",
                                    c.name,
                                    lifetime.num_days(),
                                    spec.lifetime
                                ),
                            )
                            .help("it was made outside keyward; remove it and let keyward issue credentials")
                            .at(ctx.locate(
                                Kind::ServiceAccount,
                                name,
                                &["credentials".into(), i.into(), "lifetime".into()],
                            )),
                        );
                    }
                }
            }
        }
    }
}
