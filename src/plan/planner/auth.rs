//! The target's sign-in methods policy.

use super::*;

impl<'a> TargetPlanner<'a> {
    pub(super) fn auth_methods(&self, out: &mut Vec<Change>) {
        if !self.caps.auth_methods_policy || self.desired.authentication_policies.is_empty() {
            return;
        }
        let mut wanted: BTreeMap<crate::model::AuthMethod, bool> = BTreeMap::new();
        for p in self.desired.authentication_policies.values() {
            if let Some(m) = &p.methods {
                for a in &m.allowed {
                    wanted.entry(*a).or_insert(true);
                }
                // A method forbidden by any policy is off, whatever another allows.
                for f in &m.forbidden {
                    wanted.insert(*f, false);
                }
            }
        }
        let live = self.live.auth_methods.clone().unwrap_or_default();
        for (method, enabled) in wanted {
            let have = live.get(&method).copied();
            if have == Some(enabled) {
                continue;
            }
            out.push(
                Change::new(
                    self.addr(ObjectKind::AuthMethod, method.as_str()),
                    Action::Update,
                    Reason::of(ReasonKind::Policy, Why::AuthMethod { allowed: enabled }),
                    Operation::SetAuthMethod { method, enabled },
                )
                .before([("enabled".to_string(), have.map_or(Value::Null, |h| json!(h)))].into())
                .after([("enabled".to_string(), json!(enabled))].into())
                .fingerprint(crate::model::digest(&(method, have))),
            );
        }
    }
}
