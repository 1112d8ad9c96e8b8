//! Change tracking (`Prefer: odata.track-changes`), written from "Use change tracking to
//! synchronize data with external systems" (powerapps-docs; `docs/reference/dataverse.md`):
//!
//! - On a table with change tracking enabled, a read with `Prefer: odata.track-changes` answers
//!   `Preference-Applied: odata.track-changes` and, on its last page, `@odata.deltaLink` (the
//!   query with a `$deltatoken` of the form `{version}!{MM/dd/yyyy HH:mm:ss}`).
//! - A read with that delta link answers what changed since: created and updated rows as rows,
//!   then deleted ones as `{"@odata.context": "…$metadata#{set}/$deletedEntity", "id", "reason":
//!   "deleted"}`, and a new delta link; `@odata.context` ends in `/$delta`. A row created and
//!   deleted between two reads comes as deleted. More than a page of changes pages as usual.
//! - `$filter`, `$orderby`, `$expand` and `$top` are refused with "The "$filter" query parameter
//!   isn't supported when Change Tracking is enabled."
//! - Changes are kept 7 days (`ExpireChangeTrackingInDays`); an older token is refused.
//!
//! Assumed: a table without change tracking ignores the preference (no delta link); the error
//! codes (`0x80040203`); intersect tables cannot be tracked; the `audits` table is tracked from
//! the start (documented as one of the system tables that are).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{API, Inner, MAX_PAGE, key_of};
use crate::odata::{Answer, error};

/// How long changes are kept by default (documented: 7 days).
pub const CHANGE_TRACKING_DAYS: u64 = 7;

fn version_of(row: &super::Row) -> u64 {
    row.get("@odata.etag")
        .and_then(Value::as_str)
        .and_then(|t| t.trim_start_matches("W/").trim_matches('"').parse().ok())
        .unwrap_or(0)
}

/// `MM/dd/yyyy HH:mm:ss` of a Unix time.
fn token_date(secs: u64) -> String {
    let iso = crate::graph::iso(secs);
    format!("{}/{}/{} {}", &iso[5..7], &iso[8..10], &iso[..4], &iso[11..19])
}

fn token_secs(date: &str) -> Option<u64> {
    let (d, t) = date.split_once(' ')?;
    let mut p = d.split('/');
    let (m, day, y) = (p.next()?, p.next()?, p.next()?);
    let iso = format!("{y}-{m}-{day}T{t}Z");
    (iso.len() == 20).then(|| parse_iso(&iso)).flatten()
}

fn parse_iso(s: &str) -> Option<u64> {
    let y: i64 = s.get(..4)?.parse().ok()?;
    let m: i64 = s.get(5..7)?.parse().ok()?;
    let d: i64 = s.get(8..10)?.parse().ok()?;
    let (h, mi, se): (i64, i64, i64) =
        (s.get(11..13)?.parse().ok()?, s.get(14..16)?.parse().ok()?, s.get(17..19)?.parse().ok()?);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se).ok()
}

fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

impl Inner {
    pub(super) fn clock(&self) -> u64 {
        self.now.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
        })
    }

    /// Removes a row: the change tracking journal records the deletion, and the relationships
    /// naming it end.
    pub(super) fn remove_row(&mut self, set: &str, id: &str) {
        if self.sets.get_mut(set).and_then(|m| m.remove(id)).is_none() {
            return;
        }
        self.version += 1;
        self.deletions.push((self.version, set.to_string(), id.to_string()));
        let keep = |p: &(String, String)| p.0 != id && p.1 != id;
        self.user_roles.retain(keep);
        self.user_profiles.retain(keep);
        self.team_roles.retain(keep);
        self.team_members.retain(keep);
        self.role_privileges.retain(|r| r["roleid"] != id && r["privilegeid"] != id);
    }

    /// A change-tracking read, or `None` when the request is not one (an ordinary read).
    pub(super) fn tracked_read(
        &self,
        set: &str,
        has_id: bool,
        query: &str,
        prefer: Option<&str>,
        base: &str,
    ) -> Option<Answer> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        let skip = get("$skiptoken").filter(|s| s.starts_with("ct."));
        let wants = prefer.is_some_and(|p| p.split(',').any(|x| x.trim() == "odata.track-changes"));
        let token = get("$deltatoken");
        if has_id || (!wants && token.is_none() && skip.is_none()) {
            return None;
        }
        if !(self.tracked.contains(set) || set == "audits") || key_of(set).is_none() {
            // Not tracked: the preference is not applied (assumed); a token cannot be valid.
            return token.map(|_| bad_token("Change tracking is not enabled for this table."));
        }
        for opt in ["$filter", "$orderby", "$expand", "$top"] {
            if get(opt).is_some() {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "0x80040203",
                    &format!("The \"{opt}\" query parameter isn't supported when Change Tracking is enabled."),
                ));
            }
        }
        let select: Option<Vec<String>> = get("$select").map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
        // Round state in the skip token: ct.{offset}.{start}.{from}.
        let (offset, start, from) = match (skip, token) {
            (Some(s), _) => {
                let p: Vec<u64> = s[3..].split('.').filter_map(|x| x.parse().ok()).collect();
                let [o, st, f] = p[..] else { return Some(bad_token("The skip token is not valid.")) };
                (o as usize, st, f)
            }
            (None, Some(t)) => {
                let Some((v, date)) = t.split_once('!') else {
                    return Some(bad_token("The delta token is not valid."));
                };
                let (Ok(v), Some(issued)) = (v.parse::<u64>(), token_secs(date)) else {
                    return Some(bad_token("The delta token is not valid."));
                };
                if v > self.version {
                    return Some(bad_token("The delta token is not valid."));
                }
                let days = if self.tracking_days == 0 { CHANGE_TRACKING_DAYS } else { self.tracking_days };
                if self.clock().saturating_sub(issued) > days * 86_400 {
                    return Some(bad_token(&format!(
                        "The delta token has expired: changes are kept {days} days (ExpireChangeTrackingInDays); synchronize again."
                    )));
                }
                (0, self.version, v)
            }
            (None, None) => (0, self.version, 0),
        };
        let key = key_of(set).expect("checked");
        // Created and updated rows (by version), then deletions (documented order).
        let mut rows: Vec<&super::Row> = self
            .sets
            .get(set)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|r| (from + 1..=start).contains(&version_of(r)))
            .collect();
        rows.sort_by_key(|r| version_of(r));
        let mut items: Vec<Value> = rows
            .into_iter()
            .map(|r| match &select {
                None => Value::Object(r.clone()),
                Some(cols) => {
                    let mut o = serde_json::Map::new();
                    o.insert("@odata.etag".into(), r["@odata.etag"].clone());
                    for c in cols {
                        o.insert(c.clone(), r.get(c).cloned().unwrap_or(Value::Null));
                    }
                    o.insert(key.into(), r[key].clone());
                    Value::Object(o)
                }
            })
            .collect();
        if from > 0 {
            items.extend(self.deletions.iter().filter(|(v, s, _)| s == set && (from + 1..=start).contains(v)).map(|(_, _, id)| {
                json!({"@odata.context": format!("{base}{API}$metadata#{set}/$deletedEntity"), "id": id, "reason": "deleted"})
            }));
        }
        let size = prefer
            .and_then(|p| p.split(',').find_map(|x| x.trim().strip_prefix("odata.maxpagesize=")))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(MAX_PAGE)
            .clamp(1, MAX_PAGE);
        let size = self.page_cap.map_or(size, |c| c.min(size));
        let page: Vec<Value> = items.iter().skip(offset).take(size).cloned().collect();
        let sel = select.as_ref().map(|s| format!("$select={}&", enc(&s.join(",")))).unwrap_or_default();
        let context = if from > 0 { "/$delta" } else { "" };
        let mut body = json!({"@odata.context": format!("{base}{API}$metadata#{set}{context}"), "value": page});
        if offset + size < items.len() {
            body["@odata.nextLink"] =
                json!(format!("{base}{API}{set}?{sel}$skiptoken=ct.{}.{start}.{from}", offset + size));
        } else {
            let token = format!("{start}!{}", token_date(self.clock()));
            body["@odata.deltaLink"] = json!(format!("{base}{API}{set}?{sel}$deltatoken={}", enc(&token)));
        }
        let mut a = Answer::json(body);
        if wants {
            a.headers.push(("Preference-Applied", format!("odata.track-changes,odata.maxpagesize={size}")));
        }
        Some(a)
    }
}

fn bad_token(message: &str) -> Answer {
    error(StatusCode::BAD_REQUEST, "0x80040203", message)
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_dates_round_trip() {
        assert_eq!(super::token_date(1_503_389_444), "08/22/2017 08:10:44");
        assert_eq!(super::token_secs("08/22/2017 08:10:44"), Some(1_503_389_444));
        assert_eq!(super::token_secs("garbage"), None);
    }
}
