//! Enabling or disabling an account on its own when the write that carried it with other
//! attributes was refused: one attribute the service does not take (django-scim2 answers 501
//! to a PATCH of `title` with its stock user adapter) must not leave an account disabled that
//! the configuration enables, or enabled that it disables.

use super::*;

impl Run<'_> {
    /// Whether a refused user write carried an enable or disable beside other changes, and was
    /// refused for a reason that sending the lifecycle change alone may avoid. A write refused
    /// because the account changed since it was read (412), is gone (404), or for the token's
    /// rights (401, 403) is not sent again; nor is one whose outcome is unknown (no status).
    pub(super) fn carries_lifecycle_beside_others(&self, w: &Work, e: &ScimError) -> bool {
        let Unit::PatchUser { active: Some(_), .. } = &w.unit else { return false };
        let lifecycle = w.changes.iter().filter(|i| self.lifecycle.contains(i)).count();
        let refused_as_such = e.status().is_some_and(|s| !matches!(s, 401 | 403 | 404 | 412));
        lifecycle > 0 && lifecycle < w.changes.len() && refused_as_such
    }

    /// Sends the enable or disable of each refused write alone, and reports the write's other
    /// changes as refused, with the service's answer.
    pub(super) async fn send_lifecycle_alone(&mut self, refused: Vec<(Work, ScimError)>) {
        for (w, e) in refused {
            let Unit::PatchUser { user, active, .. } = &w.unit else { continue };
            let (lifecycle, others): (Vec<usize>, Vec<usize>) =
                w.changes.iter().partition(|i| self.lifecycle.contains(i));
            let err = apply_error(&w.unit.describe(), &e);
            for i in others {
                self.fail(i, err.clone());
            }
            tracing::info!(user = %user, "the service refused a user's attributes; sending the enable or disable alone");
            let alone = Work {
                unit: Unit::PatchUser { user: user.clone(), set: UserAttrs::default(), active: *active },
                changes: lifecycle,
            };
            let (r, n) = single(self.client, &self.config, &*self.state, &alone, None).await;
            self.requests += n;
            let r = r.map_err(|e| apply_error(&alone.unit.describe(), &e));
            self.record(&alone, r);
        }
    }
}
