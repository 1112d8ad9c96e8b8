//! Service-account credentials: rotate, revoke replaced instances, delete undeclared ones.

use super::*;

impl<'a> TargetPlanner<'a> {
    pub(super) fn credentials(&self, out: &mut Vec<Change>) {
        if !self.caps.credentials {
            return;
        }
        let now = self.input.now;
        let target = self.target.name.as_str();
        let undelivered: HashSet<(&str, &str)> = self
            .input
            .undelivered
            .iter()
            .filter(|u| u.target == target && !u.id.is_empty())
            .map(|u| (u.account.as_str(), u.id.as_str()))
            .collect();
        // Issues whose answer never came (no id known): a live credential of that account with
        // that exact name may exist without ever having been delivered.
        let unconfirmed: HashSet<(&str, &str)> = self
            .input
            .undelivered
            .iter()
            .filter(|u| u.target == target && u.id.is_empty())
            .map(|u| (u.account.as_str(), u.name.as_str()))
            .collect();
        for (name, sa) in &self.present_sas {
            // No declared credentials: keyward does not manage this account's credentials.
            if sa.credentials.is_empty() {
                continue;
            }
            let live = self.sa_by_name.get(name).copied();
            let creds: &[LiveCredential] = live.map(|l| l.credentials.as_slice()).unwrap_or(&[]);
            let is_undelivered = |c: &LiveCredential| {
                undelivered.contains(&(*name, c.id.as_str())) || unconfirmed.contains(&(*name, c.name.as_str()))
            };
            let mut claimed: HashSet<&str> = HashSet::new();
            // The sink of a certificate of this account, for proof tokens.
            let proof_from = sa
                .credentials
                .iter()
                .filter(|c| c.kind == CredentialType::Certificate)
                .find_map(|c| c.deliver.as_ref());
            for spec in &sa.credentials {
                let instances: Vec<&LiveCredential> =
                    creds.iter().filter(|c| c.instance_of(spec.name.as_str())).collect();
                claimed.extend(instances.iter().map(|c| c.id.as_str()));
                let fingerprint = match live {
                    None => ABSENT.to_string(),
                    Some(l) => {
                        let mut ids: Vec<&str> = instances.iter().map(|c| c.id.as_str()).collect();
                        ids.sort_unstable();
                        crate::model::digest(&(&l.id, spec.name.as_str(), ids))
                    }
                };
                let current = crate::model::current_instance(spec, creds, &is_undelivered);
                if let Some(reason) = self.rotation_reason(spec, current, &instances, &is_undelivered) {
                    out.push(self.rotate_change(name, spec, current, reason, fingerprint.clone()));
                }
                for old in &instances {
                    if current.is_some_and(|c| c.id == old.id) {
                        continue;
                    }
                    let why = if is_undelivered(old) {
                        Why::NeverDelivered { credential: old.name.clone() }
                    } else if old.end <= now {
                        Why::CredentialExpired { credential: old.name.clone(), end: old.end }
                    } else if let Some(c) = current {
                        let overlap = spec.overlap.map(|o| o.to_chrono()).unwrap_or_default();
                        if c.start + overlap > now {
                            continue; // Both stay valid through the overlap.
                        }
                        Why::Replaced {
                            by: c.name.clone(),
                            on: c.start,
                            overlap: spec.overlap.map(|o| (o, c.start + overlap)),
                        }
                    } else {
                        continue; // No delivered replacement yet: keep it.
                    };
                    let reason = Reason::of(ReasonKind::Config, why);
                    out.push(self.remove_credential(name, old, Action::Revoke, reason, proof_from));
                }
            }
            // Credentials the configuration does not declare.
            for c in creds.iter().filter(|c| !claimed.contains(c.id.as_str())) {
                let reason = Reason::of(
                    ReasonKind::Drift,
                    Why::Undeclared { credential: c.name.clone(), account: name.to_string() },
                );
                out.push(self.remove_credential(name, c, Action::Delete, reason, proof_from));
            }
        }
    }

    /// Why a declared credential needs a new instance now, if it does.
    fn rotation_reason(
        &self,
        spec: &CredentialSpec,
        current: Option<&LiveCredential>,
        instances: &[&LiveCredential],
        is_undelivered: &dyn Fn(&LiveCredential) -> bool,
    ) -> Option<Reason> {
        let now = self.input.now;
        // The last issued instance never reached its sink: replace it, whatever the current.
        if let Some(u) = instances.iter().filter(|c| is_undelivered(c)).max_by_key(|c| c.start)
            && current.is_none_or(|c| u.start >= c.start)
        {
            return Some(Reason::of(
                ReasonKind::Config,
                Why::RotateUndelivered { credential: u.name.clone(), issued: u.start },
            ));
        }
        let Some(c) = current else {
            return Some(Reason::of(ReasonKind::Config, Why::RotateNew { credential: spec.name.to_string() }));
        };
        let status = lifecycle::status(spec, Some(c), now);
        if status == CredentialStatus::Expired {
            return Some(Reason::of(ReasonKind::Expiry, Why::RotateExpired { credential: c.name.clone(), end: c.end }));
        }
        if !c.issued_by_keyward() {
            return Some(Reason::of(ReasonKind::Drift, Why::RotateUnknown { credential: c.name.clone() }));
        }
        if status == CredentialStatus::RotationDue
            && let Some(window) = spec.rotate_before
        {
            return Some(Reason::of(
                ReasonKind::Policy,
                Why::RotateInWindow {
                    credential: c.name.clone(),
                    end: c.end,
                    window,
                    from: c.end - window.to_chrono(),
                },
            ));
        }
        None
    }

    fn rotate_change(
        &self,
        account: &str,
        spec: &CredentialSpec,
        current: Option<&LiveCredential>,
        reason: Reason,
        fingerprint: String,
    ) -> Change {
        let now = self.input.now;
        let key_algorithm = match spec.kind {
            CredentialType::Certificate => Some(spec.key_algorithm.unwrap_or_else(|| self.default_key_algorithm())),
            CredentialType::Secret => None,
        };
        let before = current.map(credential_values);
        let mut after = Values::new();
        after.insert("credential".into(), json!(format!("{}@{}", spec.name, day(now))));
        after.insert("type".into(), json!(spec.kind));
        after.insert("start".into(), json!(day(now)));
        after.insert("end".into(), json!(day(now + spec.lifetime.to_chrono())));
        if let Some(a) = key_algorithm {
            after.insert("keyAlgorithm".into(), json!(a));
        }
        let mut notes = Vec::new();
        match &spec.deliver {
            Some(d) => {
                after.insert("deliver".into(), json!(d.label()));
            }
            None => notes.push(
                "the credential has no `deliver`: apply refuses to issue a credential nobody receives".to_string(),
            ),
        }
        if let Some(o) = spec.overlap
            && current.is_some_and(|c| c.end > now)
        {
            notes.push(format!("the current credential stays valid beside the new one for overlap {o}"));
        }
        Change::new(
            self.addr(ObjectKind::Credential, format!("{account}/{}", spec.name)),
            Action::Rotate,
            reason,
            Operation::AddCredential {
                account: account.to_string(),
                credential: spec.name.to_string(),
                kind: spec.kind,
                lifetime_seconds: spec.lifetime.seconds(),
                key_algorithm,
                deliver: spec.deliver.clone(),
            },
        )
        .before_opt(before)
        .after(after)
        .fingerprint(fingerprint)
        .subject(account.to_string())
        .notes(notes)
    }

    fn remove_credential(
        &self,
        account: &str,
        c: &LiveCredential,
        action: Action,
        reason: Reason,
        proof_from: Option<&Deliver>,
    ) -> Change {
        Change::new(
            self.addr(ObjectKind::Credential, format!("{account}/{}", c.name)),
            action,
            reason,
            Operation::RemoveCredential {
                account: account.to_string(),
                credential_id: c.id.clone(),
                proof_from: proof_from.cloned(),
            },
        )
        .before(credential_values(c))
        .fingerprint(crate::model::digest(&(account, &c.id, c.start, c.end)))
        .subject(account.to_string())
    }

    /// The key algorithm for a certificate that names none: the first the EncryptionPolicies
    /// allow, preferring ECDSA P-256.
    fn default_key_algorithm(&self) -> KeyAlgorithm {
        default_key_algorithm(self.desired)
    }
}

fn day(t: Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// A credential as plans show it: name and dates, never material.
fn credential_values(c: &LiveCredential) -> Values {
    let mut v = Values::new();
    v.insert("credential".into(), json!(c.name));
    v.insert("type".into(), json!(c.kind));
    v.insert("start".into(), json!(day(c.start)));
    v.insert("end".into(), json!(day(c.end)));
    v
}
