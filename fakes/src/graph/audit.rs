//! The directory audit log (§2.8).

use serde_json::Value;

use super::DEFAULT_PAGE;
use super::http::{Req, Resp, page};
use super::tenant::Tenant;

impl Tenant {
    /// `$filter=activityDateTime ge X` only (documented filter operators §2.8; the rest of the
    /// filter grammar is not modelled). Newest first (assumed, as sign-ins are).
    pub(super) fn list_audits(&mut self, req: &Req) -> Resp {
        let since = req.query.get("$filter").and_then(|f| f.strip_prefix("activityDateTime ge ")).map(str::to_string);
        let mut all: Vec<Value> = self
            .audits
            .iter()
            .filter(|a| since.as_deref().is_none_or(|s| a["activityDateTime"].as_str().unwrap_or_default() >= s))
            .cloned()
            .collect();
        all.reverse();
        page(req, all, DEFAULT_PAGE, 1000)
    }
}
