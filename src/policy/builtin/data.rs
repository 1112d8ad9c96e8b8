//! Data: every role that can read a DataClassification has the clearance its level needs.
//!
//! A role can read a classification when `readers` lists it or, when `readers` is absent, when
//! the role is bound on a target that holds the classification's assets. (Without `readers` and
//! without assets, the readers are by definition the roles cleared for the level.) A role
//! without `requires.clearance` is cleared for `public` data only.

use super::{default_severity, level_str};
use crate::model::{Kind, Level, Role};
use crate::policy::Rule;
use crate::policy::{Finding, PolicyContext};

fn clearance(role: &Role) -> Level {
    role.requires.as_ref().and_then(|r| r.clearance).unwrap_or(Level::Public)
}

pub(super) fn check(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    let severity = default_severity(Rule::DataReaderWithoutClearance);
    for (name, dc) in &ctx.desired.data_classifications {
        let level = level_str(dc.level);
        let help = |role: &str| {
            format!(
                "raise `requires.clearance` of role `{role}` to {level} (once its holders are cleared), or stop it reading `{name}`"
            )
        };
        match &dc.readers {
            Some(readers) => {
                for (i, r) in readers.iter().enumerate() {
                    let Some(role) = ctx.desired.roles.get(r) else { continue };
                    let has = clearance(role);
                    if has < dc.level {
                        out.push(
                            Finding::new(
                                Rule::DataReaderWithoutClearance.id(),
                                severity,
                                format!("data-classification.{name}"),
                                format!(
                                    "role `{r}` is a reader of `{name}` ({level}), but its clearance is {}",
                                    level_str(has)
                                ),
                            )
                            .help(help(r.as_str()))
                            .at(ctx.locate(
                                Kind::DataClassification,
                                name,
                                &["readers".into(), i.into()],
                            )),
                        );
                    }
                }
            }
            None => {
                for target in dc.assets.keys() {
                    for (rn, role) in &ctx.desired.roles {
                        if !role.bindings.contains_key(target) || clearance(role) >= dc.level {
                            continue;
                        }
                        out.push(
                            Finding::new(
                                Rule::DataReaderWithoutClearance.id(),
                                severity,
                                format!("role.{rn}"),
                                format!(
                                    "role `{rn}` is bound on `{target}`, which holds `{name}` ({level}), but its clearance is {}; `{name}` lists no readers, so the role can read it",
                                    level_str(clearance(role))
                                ),
                            )
                            .help(format!("{}, or list the roles that may read it in `readers` of `{name}`", help(rn.as_str())))
                            .at(ctx.locate(Kind::Role, rn, &["bindings".into(), target.as_str().into()])),
                        );
                    }
                }
            }
        }
    }
}
