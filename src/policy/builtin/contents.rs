//! What roles really contain, at plan time: the live contents of each Role's security roles
//! (privileges with their depth, duties) as the SoD rules see them, pinned roles whose live
//! contents left their snapshot (`contents.pinned-drift`), and roles holding a privilege that
//! reads a DataClassification they may not read (`data.live-privilege`).

use super::{RoleIndex, default_severity, level_str};
use crate::model::contents::{compare, snapshot_path};
use crate::model::{Binding, ContentsMode, Kind, Level, Name, Role, RoleContents, SodSide};
use crate::policy::{Finding, PolicyContext, Rule};

/// The live contents of one role on one target.
pub(crate) struct Held<'a> {
    pub target: &'a Name,
    pub contents: &'a RoleContents,
}

/// Per role index: the live contents of its security roles on the targets read.
pub(crate) fn of_roles<'a>(ctx: &PolicyContext<'a>, roles: &RoleIndex<'a>) -> Vec<Vec<Held<'a>>> {
    let Some(live) = ctx.live else { return roles.roles.iter().map(|_| Vec::new()).collect() };
    roles.roles.iter().map(|r| held(r, live)).collect()
}

fn held<'a>(role: &'a Role, live: &'a std::collections::BTreeMap<Name, crate::model::LiveTarget>) -> Vec<Held<'a>> {
    let mut out = Vec::new();
    for (t, b) in &role.bindings {
        let Binding::SecurityRole(object) = b else { continue };
        let Some((target, lt)) = live.get_key_value(t) else { continue };
        if let Some((_, contents)) = lt.role_contents.iter().find(|(k, _)| k.eq_ignore_ascii_case(object)) {
            out.push(Held { target, contents });
        }
    }
    out
}

/// What of `held` puts a role on `side`: `` privilege `X` on `t` `` and `` duty `Y` on `t` ``.
pub(crate) fn reasons(side: &SodSide, held: &[Held]) -> Vec<String> {
    let mut out = Vec::new();
    for h in held {
        for p in &side.privileges {
            if let Some((name, depth)) = h.contents.privilege(p) {
                out.push(format!("privilege `{name}` ({depth}) on `{}`", h.target));
            }
        }
        for d in &side.duties {
            if let Some(name) = h.contents.duty(d) {
                out.push(format!("duty `{name}` on `{}`", h.target));
            }
        }
    }
    out.dedup();
    out
}

/// `contents.pinned-drift` and `data.live-privilege`.
pub(super) fn check(ctx: &PolicyContext, out: &mut Vec<Finding>) {
    let Some(live) = ctx.live else { return };
    pinned(ctx, live, out);
    classified(ctx, live, out);
}

fn pinned(
    ctx: &PolicyContext,
    live: &std::collections::BTreeMap<Name, crate::model::LiveTarget>,
    out: &mut Vec<Finding>,
) {
    let severity = default_severity(Rule::ContentsPinnedDrift);
    for (name, role) in ctx.desired.roles.iter().filter(|(_, r)| r.contents == Some(ContentsMode::Pinned)) {
        let Some(snapshot) = ctx.pinned.get(name) else { continue };
        let file = snapshot_path(name);
        for h in held(role, live) {
            let object = role.bindings[h.target].object_name();
            let empty = RoleContents::default();
            let pinned = snapshot.targets.get(h.target);
            let changes = compare(pinned.unwrap_or(&empty), h.contents);
            if changes.is_empty() && pinned.is_some() {
                continue;
            }
            let what = if pinned.is_none() {
                format!("{} holds nothing for `{}`", file.display(), h.target)
            } else {
                changes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            out.push(
                Finding::new(
                    Rule::ContentsPinnedDrift.id(),
                    severity,
                    format!("role.{name}"),
                    format!(
                        "the live contents of role `{name}` (securityRole `{object}` on `{}`) differ from its snapshot {}: {what}",
                        h.target,
                        file.display()
                    ),
                )
                .help(format!(
                    "if the change is intended, accept it with `keyward import --target {} --contents` and commit {}; otherwise undo it on the target",
                    h.target,
                    file.display()
                ))
                .at(ctx.locate(Kind::Role, name, &["contents".into()])),
            );
        }
    }
}

fn clearance(role: &Role) -> Level {
    role.requires.as_ref().and_then(|r| r.clearance).unwrap_or(Level::Public)
}

fn classified(
    ctx: &PolicyContext,
    live: &std::collections::BTreeMap<Name, crate::model::LiveTarget>,
    out: &mut Vec<Finding>,
) {
    let severity = default_severity(Rule::DataLivePrivilege);
    for (dc_name, dc) in &ctx.desired.data_classifications {
        for (target, assets) in dc.assets.iter().filter(|(_, a)| !a.privileges.is_empty()) {
            for (rn, role) in &ctx.desired.roles {
                let allowed = match &dc.readers {
                    Some(readers) => readers.contains(rn),
                    None => clearance(role) >= dc.level,
                };
                if allowed {
                    continue;
                }
                for h in held(role, live).into_iter().filter(|h| h.target == target) {
                    for p in &assets.privileges {
                        let Some((privilege, depth)) = h.contents.privilege(p) else { continue };
                        let why = match &dc.readers {
                            Some(_) => "the role is not among its readers".to_string(),
                            None => format!("the role's clearance is {}", level_str(clearance(role))),
                        };
                        out.push(
                            Finding::new(
                                Rule::DataLivePrivilege.id(),
                                severity,
                                format!("role.{rn}"),
                                format!(
                                    "role `{rn}` holds privilege `{privilege}` ({depth}) on `{target}`, which reads `{dc_name}` ({}); {why}",
                                    level_str(dc.level)
                                ),
                            )
                            .help(format!(
                                "remove privilege `{privilege}` from securityRole `{}` on `{target}`, or let role `{rn}` read `{dc_name}`",
                                role.bindings[target].object_name()
                            ))
                            .at(ctx.locate(Kind::Role, rn, &["bindings".into(), target.as_str().into()])),
                        );
                    }
                }
            }
        }
    }
}
