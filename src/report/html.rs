//! The report as one self-contained HTML page, rendered with maud (compile-time templates
//! that escape every value they interpolate).
//!
//! The page carries its stylesheet, its script and its charts (SVG) inline. A
//! Content-Security-Policy allows exactly that stylesheet and that script (by their SHA-256)
//! and nothing from anywhere: the page makes no request when opened, from a file, a mail
//! attachment or `keyward watch`. Links (to pull requests, commits, CI runs) are followed only
//! when clicked, and only `http`/`https` ones are made links at all.

use base64::Engine;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use super::model::*;
use crate::explain::LiveState;
use crate::history::CommitInfo;

const CSS: &str = include_str!("assets/report.css");
const JS: &str = include_str!("assets/report.js");

/// The actions in the order their colours stack in the weekly chart.
const ACTIONS: [&str; 8] = ["create", "update", "enable", "assign", "rotate", "revoke", "disable", "delete"];

fn csp_hash(text: &str) -> String {
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes())))
}

/// The page's Content-Security-Policy: nothing but its own inline style and script.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
        csp_hash(CSS),
        csp_hash(JS)
    )
}

/// `url` when it may be a link: `http` or `https` only.
fn linkable(url: &str) -> Option<&str> {
    (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
}

fn day(t: &crate::model::Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn minute(t: &crate::model::Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn link(url: Option<&str>, text: &str) -> Markup {
    match url.and_then(linkable) {
        Some(u) => html! { a href=(u) rel="noreferrer noopener" { (text) } },
        None => html! { (text) },
    }
}

fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}

/// A sortable column header.
fn th_sort(label: &str) -> Markup {
    html! { th scope="col" aria-sort="none" { button.sort type="button" { (label) } } }
}

/// A filter box for table `id`, with the live region that tells how many rows are shown.
fn filter_box(id: &str, label: &str, placeholder: &str) -> Markup {
    html! {
        div.filter {
            label for={ (id) "-filter" } { (label) }
            input type="search" id={ (id) "-filter" } data-filter=(id) placeholder=(placeholder) autocomplete="off";
            output id={ (id) "-status" } aria-live="polite" {}
        }
    }
}

/// A commit, as a link to its pull request (or itself), with who merged and approved it.
fn commit_cell(c: Option<&CommitInfo>) -> Markup {
    let Some(c) = c else { return html! { span.muted { "not in git history" } } };
    html! {
        @if let Some(n) = c.pull_request {
            (link(c.pull_request_url.as_deref(), &format!("PR #{n}")))
            " "
        }
        span.mono { (short(&c.id)) }
        " " (day(&c.time))
        br;
        span.muted { (c.summary) }
    }
}

/// Who approved a commit's change: `Approved-by` trailers, else who merged it, else its author.
fn approvers(c: Option<&CommitInfo>) -> Markup {
    let Some(c) = c else { return html! {} };
    html! {
        @if !c.approved_by.is_empty() {
            (c.approved_by.join(", ")) br; span.muted { "approved" }
            @if let Some(m) = &c.merged_by { br; span.muted { "merged by " (m) } }
        } @else if let Some(m) = &c.merged_by {
            (m) br; span.muted { "merged" }
        } @else {
            (c.author) br; span.muted { "committed" }
        }
    }
}

fn live_badge(l: LiveState) -> Markup {
    match l {
        LiveState::Held => badge("held", "held"),
        LiveState::Missing => badge("missing", "not held yet"),
        LiveState::Unknown => badge("unknown", "not read"),
    }
}

fn summary(r: &Report) -> Markup {
    let s = &r.summary;
    let unknown = "unknown";
    let opt = |v: Option<usize>| v.map_or(unknown.to_string(), |n| n.to_string());
    html! {
        section #summary aria-labelledby="summary-h" {
            h2 #summary-h { "Summary" }
            dl.cards {
                div.card { dt { "People" } dd { (s.people) } }
                div.card { dt { "Service accounts" } dd { (s.service_accounts) } }
                div.card { dt { "Privileged holders" } dd { (s.privileged_holders) } }
                div class={ "card" @if s.pending_changes.unwrap_or(0) > 0 { " caution" } } {
                    dt { "Pending changes" } dd { (opt(s.pending_changes)) }
                }
                div class={ "card" @if s.drift_items.unwrap_or(0) > 0 { " alert" } } {
                    dt { "Drift items" } dd { (opt(s.drift_items)) }
                }
                div class={ "card" @if s.deny_findings > 0 { " alert" } } { dt { "Deny findings" } dd { (s.deny_findings) } }
                div class={ "card" @if s.warn_findings > 0 { " caution" } } { dt { "Warn findings" } dd { (s.warn_findings) } }
                div class={ "card" @if s.credentials_expiring.unwrap_or(0) > 0 { " caution" } } {
                    dt { "Credentials expiring within " (s.expiring_within_days) " days" } dd { (opt(s.credentials_expiring)) }
                }
                div class={ "card" @if s.assignments_expiring > 0 { " caution" } } {
                    dt { "Assignments expiring within " (s.expiring_within_days) " days" } dd { (s.assignments_expiring) }
                }
            }
        }
    }
}

fn access(r: &Report) -> Markup {
    html! {
        section #access aria-labelledby="access-h" {
            h2 #access-h { "Access" }
            p.lead {
                "Every role the configuration gives, per target: the duties it carries, since when it is held "
                "(when keyward applied it, from the audit log), the pull request that granted it and who approved "
                "that, the ticket and reason, and when it expires. Filter by a person, a role or a duty "
                "(for example " code { "vendor-payment" } "); select a column heading to sort."
            }
            (filter_box("assignments", "Filter assignments", "person, role, duty, ticket…"))
            div.table-wrap {
                table #assignments data-sortable {
                    caption { "Role assignments and their provenance" }
                    thead { tr {
                        (th_sort("Person")) (th_sort("Role")) (th_sort("Duties")) (th_sort("Target"))
                        (th_sort("Held since")) (th_sort("Granted in")) (th_sort("Approved by"))
                        (th_sort("Expires")) (th_sort("Ticket and reason")) (th_sort("Defined at")) (th_sort("Live"))
                    } }
                    tbody {
                        @for a in &r.assignments {
                            @let added = a.added.as_deref().and_then(|id| r.commits.get(id));
                            tr class=[a.expiring.then_some("expiring")] data-search=(a.binding) {
                                td data-sort=(a.holder) {
                                    (a.holder)
                                    @if let Some(d) = &a.display_name { br; span.muted { (d) } }
                                }
                                td data-sort=(a.role) {
                                    (a.role)
                                    @if a.privileged { " " (badge("privileged", "privileged")) }
                                }
                                td { (a.duties.join(", ")) }
                                td { (a.target) br; span.muted { (a.binding) } }
                                @match &a.applied {
                                    Some(ap) => td data-sort=(ap.time.to_rfc3339()) {
                                        (day(&ap.time))
                                        br; span.muted { "applied by " (ap.actor) " (audit #" (ap.seq) ")" }
                                        @if let Some(p) = &ap.provenance {
                                            @if let Some(u) = &p.run_url { br; (link(Some(u), "CI run")) }
                                        }
                                    },
                                    None => td data-sort=(added.map(|c| c.time.to_rfc3339()).unwrap_or_default()) {
                                        span.muted { "no apply recorded" }
                                        @if let Some(c) = added { br; span.muted { "in git since " (day(&c.time)) } }
                                    },
                                }
                                td data-sort=(added.map(|c| c.time.to_rfc3339()).unwrap_or_default()) { (commit_cell(added)) }
                                td { (approvers(added)) }
                                td data-sort=(a.expires.map(|e| e.to_string()).unwrap_or_else(|| "9999".into())) {
                                    @match a.expires {
                                        Some(e) if a.expiring => { (badge("expiring", "expiring")) " " (e) },
                                        Some(e) => (e),
                                        None => span.muted { "no expiry" },
                                    }
                                }
                                td {
                                    @if let Some(t) = &a.ticket { span.mono { (t) } }
                                    @if let Some(reason) = &a.reason { br; (reason) }
                                }
                                td.mono { @if let Some(s) = &a.source { (s.file) ":" (s.line) } }
                                td { (live_badge(a.live)) }
                            }
                        }
                    }
                }
            }
            @for m in &r.matrices {
                @let id = format!("matrix-{}", m.target);
                h3 { "Access matrix: target " (m.target) }
                (filter_box(&id, &format!("Filter people on {}", m.target), "person or department…"))
                div.table-wrap {
                    table id=(id) data-sortable {
                        caption.sr-only { "People by role on " (m.target) }
                        thead { tr {
                            (th_sort("Person"))
                            @for role in &m.roles {
                                th scope="col" class=[role.privileged.then_some("priv")] aria-sort="none" {
                                    button.sort type="button" { (role.name) }
                                    @if role.privileged { br; (badge("privileged", "privileged")) }
                                }
                            }
                        } }
                        tbody {
                            @for row in &m.rows {
                                @let live_only = row.cells.iter().flatten().any(|c| !c.granted);
                                @let soon = row.cells.iter().flatten().any(|c| c.expiring);
                                tr class=[live_only.then_some("live-only").or(soon.then_some("expiring"))]
                                    data-search=(row.department.clone().unwrap_or_default()) {
                                    th scope="row" data-sort=(row.holder) {
                                        (row.holder)
                                        @if let Some(d) = &row.display_name { br; span.muted { (d) } }
                                        @if row.kind == "live-account" { br; (badge("live-only", "not in git")) }
                                        @else if row.kind == "service-account" { br; span.muted { "service account" } }
                                    }
                                    @for c in &row.cells {
                                        @match c {
                                            None => td.cell data-sort="0" { span.sr-only { "no" } },
                                            Some(c) if !c.granted => td.cell.live-only data-sort="1" {
                                                (badge("live-only", "live only"))
                                            },
                                            Some(c) => td class={ "cell held" @if c.expiring { " expiring" } } data-sort="2" {
                                                "✓" span.sr-only { "holds" }
                                                @if let Some(e) = c.expires { br; span class=[c.expiring.then_some("badge expiring")] { "until " (e) } }
                                                @if c.live == LiveState::Missing { br; (badge("missing", "not held yet")) }
                                            },
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Roles and duties" }
            div.table-wrap {
                table #roles data-sortable {
                    caption.sr-only { "Roles" }
                    thead { tr { (th_sort("Role")) (th_sort("Description")) (th_sort("Duties")) (th_sort("Bindings")) (th_sort("Holders")) } }
                    tbody {
                        @for role in &r.roles {
                            tr {
                                td { (role.name) @if role.privileged { " " (badge("privileged", "privileged")) } }
                                td { (role.description.clone().unwrap_or_default()) }
                                td { (role.duties.join(", ")) }
                                td { @for (t, b) in &role.bindings { (t) ": " (b) br; } }
                                td.num { (role.holders) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn finding_table(id: &str, caption: &str, rows: &[FindingRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "None." }
        } @else {
            div.table-wrap {
                table id=(id) data-sortable {
                    caption { (caption) }
                    thead { tr { (th_sort("Severity")) (th_sort("Rule")) (th_sort("Concerns")) (th_sort("Finding")) (th_sort("Defined at")) } }
                    tbody {
                        @for f in rows {
                            tr {
                                td { (badge(&f.severity.to_string(), &f.severity.to_string())) }
                                td.mono { (f.rule) }
                                td.mono { (f.address) }
                                td { (f.message) }
                                td.mono { @if let Some(s) = &f.source { (s.file) ":" (s.line) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn sod(r: &Report) -> Markup {
    let s = &r.sod;
    html! {
        section #sod aria-labelledby="sod-h" {
            h2 #sod-h { "Segregation of duties" }
            h3 { "Rules" }
            @if s.rules.is_empty() { p { "The configuration has no SodRule." } } @else {
                div.table-wrap { table #sod-rules data-sortable {
                    caption.sr-only { "Segregation-of-duties rules" }
                    thead { tr { (th_sort("Rule")) (th_sort("Severity")) (th_sort("Not together: first")) (th_sort("…and second")) (th_sort("Why")) (th_sort("Mitigation")) } }
                    tbody { @for rule in &s.rules { tr {
                        td.mono { (rule.name) }
                        td { (badge(&rule.severity.to_string(), &rule.severity.to_string())) }
                        td { (rule.first.join(", ")) }
                        td { (rule.second.join(", ")) }
                        td { (rule.description.clone().unwrap_or_default()) }
                        td { (rule.mitigation.clone().unwrap_or_default()) }
                    } } }
                } }
            }
            h3 { "Conflicts" }
            (finding_table("sod-conflicts", "Segregation-of-duties conflicts", &s.conflicts))
            h3 { "Exceptions" }
            @if s.exceptions.is_empty() { p { "None." } } @else {
                div.table-wrap { table #sod-exceptions data-sortable {
                    caption.sr-only { "Exceptions" }
                    thead { tr { (th_sort("Rule")) (th_sort("Person")) (th_sort("Reason")) (th_sort("Owner (approved by)")) (th_sort("Granted in")) (th_sort("Expires")) (th_sort("Status")) } }
                    tbody { @for e in &s.exceptions {
                        @let added = e.added.as_deref().and_then(|id| r.commits.get(id));
                        tr class=[(e.status != "active").then_some("expiring")] {
                            td.mono { (e.rule) }
                            td { (e.user) }
                            td { (e.reason) }
                            td { (e.owner.clone().unwrap_or_else(|| "unknown".into())) }
                            td { (commit_cell(added)) }
                            td { (e.expires) }
                            td { (badge(e.status, e.status)) }
                        }
                    } }
                } }
            }
        }
    }
}

/// A y scale with a round maximum: (max, step) for about four grid lines.
fn scale(max: usize) -> (usize, usize) {
    let max = max.max(1);
    let step = [1usize, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000]
        .into_iter()
        .find(|s| max.div_ceil(*s) <= 5)
        .unwrap_or(max.div_ceil(5).max(1));
    (max.div_ceil(step) * step, step)
}

/// The segments of a week's stacked bar: (action, count below it, count), bottom first.
fn stack(b: &WeekBar) -> Vec<(&'static str, usize, usize)> {
    let counts = ACTIONS.iter().map(|a| (*a, b.counts.get(*a).copied().unwrap_or(0)));
    let mut base = 0;
    let mut out = Vec::new();
    for (action, n) in counts.chain(std::iter::once(("failed", b.failed))).filter(|(_, n)| *n > 0) {
        out.push((action, base, n));
        base += n;
    }
    out
}

fn weekly_chart(weeks: &[WeekBar]) -> Markup {
    let (w, h, left, bottom, top) = (760.0f64, 240.0f64, 40.0f64, 40.0f64, 12.0f64);
    let totals: Vec<usize> = weeks.iter().map(|b| b.counts.values().sum::<usize>() + b.failed).collect();
    let (max, step) = scale(totals.iter().copied().max().unwrap_or(0));
    let plot_h = h - bottom - top;
    let slot = (w - left - 8.0) / weeks.len().max(1) as f64;
    let bar_w = (slot * 0.7).max(2.0);
    let y = |v: usize| top + plot_h - plot_h * v as f64 / max as f64;
    let label_every = weeks.len().div_ceil(10).max(1);
    html! {
        svg.chart viewBox={ "0 0 " (w) " " (h) } width=(w) height=(h) role="img" aria-labelledby="chart-weeks-t chart-weeks-d" {
            title #chart-weeks-t { "Changes applied per week, by action" }
            desc #chart-weeks-d { "Stacked bars, one per week; the table below the chart holds the same numbers." }
            @for i in 0..=(max / step) {
                @let v = i * step;
                line.grid x1=(left) x2=(w - 4.0) y1=(y(v)) y2=(y(v)) {}
                text x=(left - 6.0) y=(y(v) + 4.0) text-anchor="end" { (v) }
            }
            line.axis x1=(left) x2=(left) y1=(top) y2=(top + plot_h) {}
            @for (i, b) in weeks.iter().enumerate() {
                @let x = left + 4.0 + slot * i as f64;
                @for (action, base, n) in stack(b) {
                    rect class={ "c-" (action) } x=(x) y=(y(base + n)) width=(bar_w) height=(y(base) - y(base + n)) {
                        title { "week of " (b.week) ": " (n) " " (action) }
                    }
                }
                @if i % label_every == 0 {
                    text x=(x + bar_w / 2.0) y=(h - bottom + 16.0) text-anchor="middle" { (b.week.0.format("%m-%d")) }
                }
            }
            text x=(left) y=(h - 6.0) { "week starting (month-day)" }
        }
    }
}

fn credential_chart(creds: &[CredentialSpan], today: crate::model::Date) -> Markup {
    let start = creds.iter().map(|c| c.start).min().unwrap_or(today).min(today);
    let end = creds.iter().map(|c| c.end).max().unwrap_or(today).max(today);
    let span = ((end.0 - start.0).num_days().max(1)) as f64;
    let (w, row, left, top) = (760.0f64, 26.0f64, 220.0f64, 24.0f64);
    let h = top + row * creds.len() as f64 + 28.0;
    let x = |d: crate::model::Date| left + (w - left - 10.0) * (d.0 - start.0).num_days() as f64 / span;
    html! {
        svg.chart viewBox={ "0 0 " (w) " " (h) } width=(w) height=(h) role="img" aria-labelledby="chart-creds-t chart-creds-d" {
            title #chart-creds-t { "Credential validity, rotation windows and expiry" }
            desc #chart-creds-d { "One bar per live credential from its start to its end; the rotation window in amber, time past the end in red; the dashed line is today." }
            text x=(left) y="14" { (start) }
            text x=(w - 10.0) y="14" text-anchor="end" { (end) }
            @for (i, c) in creds.iter().enumerate() {
                @let yy = top + row * i as f64;
                text x=(left - 6.0) y=(yy + 15.0) text-anchor="end" { (c.account) "/" (c.credential) }
                rect.c-valid x=(x(c.start)) y=(yy + 4.0) width=((x(c.end) - x(c.start)).max(1.0)) height=(row - 10.0) {
                    title { (c.account) "/" (c.credential) " on " (c.target) ": " (c.start) " to " (c.end) " (" (c.status) ")" }
                }
                @if let Some(rf) = c.rotate_from {
                    rect.c-window x=(x(rf)) y=(yy + 4.0) width=((x(c.end) - x(rf)).max(1.0)) height=(row - 10.0) {
                        title { "rotation window from " (rf) }
                    }
                }
                @if c.end < today {
                    rect.c-past x=(x(c.end)) y=(yy + 4.0) width=((x(today) - x(c.end)).max(1.0)) height=(row - 10.0) {
                        title { "expired on " (c.end) }
                    }
                }
            }
            line.today x1=(x(today)) x2=(x(today)) y1=(top - 4.0) y2=(h - 24.0) {}
            text x=(x(today)) y=(h - 8.0) text-anchor="middle" { "today " (today) }
        }
    }
}

fn expiry_chart(months: &[MonthBar]) -> Markup {
    let (w, h, left, bottom, top) = (760.0f64, 200.0f64, 40.0f64, 34.0f64, 12.0f64);
    let (max, step) = scale(months.iter().map(|m| m.count).max().unwrap_or(0));
    let plot_h = h - bottom - top;
    let slot = (w - left - 8.0) / months.len().max(1) as f64;
    let bar_w = slot * 0.6;
    let y = |v: usize| top + plot_h - plot_h * v as f64 / max as f64;
    html! {
        svg.chart viewBox={ "0 0 " (w) " " (h) } width=(w) height=(h) role="img" aria-labelledby="chart-exp-t chart-exp-d" {
            title #chart-exp-t { "Role assignments ending, by month" }
            desc #chart-exp-d { "Bars per month for the next twelve months; privileged assignments in purple." }
            @for i in 0..=(max / step) {
                @let v = i * step;
                line.grid x1=(left) x2=(w - 4.0) y1=(y(v)) y2=(y(v)) {}
                text x=(left - 6.0) y=(y(v) + 4.0) text-anchor="end" { (v) }
            }
            @for (i, m) in months.iter().enumerate() {
                @let x = left + 4.0 + slot * i as f64;
                @if m.count > m.privileged {
                    rect.c-expiry x=(x) y=(y(m.count)) width=(bar_w) height=(y(m.privileged) - y(m.count)) {
                        title { (m.month) ": " (m.count) " ending" }
                    }
                }
                @if m.privileged > 0 {
                    rect.c-priv x=(x) y=(y(m.privileged)) width=(bar_w) height=(y(0) - y(m.privileged)) {
                        title { (m.month) ": " (m.privileged) " privileged ending" }
                    }
                }
                text x=(x + bar_w / 2.0) y=(h - bottom + 16.0) text-anchor="middle" { (m.month) }
            }
        }
    }
}

fn charts(r: &Report) -> Markup {
    let c = &r.charts;
    let used: Vec<&str> = ACTIONS
        .iter()
        .copied()
        .filter(|a| c.weeks.iter().any(|w| w.counts.contains_key(*a)))
        .chain(c.weeks.iter().any(|w| w.failed > 0).then_some("failed"))
        .collect();
    html! {
        section #timelines aria-labelledby="timelines-h" {
            h2 #timelines-h { "Timelines" }
            figure #chart-weeks {
                figcaption { "Changes applied per week, " (r.period.since) " to " (r.period.until) }
                (weekly_chart(&c.weeks))
                ul.legend aria-hidden="true" {
                    @for a in &used { li { span class={ "swatch s-" (a) } {} (a) } }
                }
                details {
                    summary { "The numbers" }
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "Week of" } @for a in &used { th scope="col" { (a) } } } }
                        tbody { @for w in &c.weeks { tr {
                            th scope="row" { (w.week) }
                            @for a in &used {
                                td.num { @if *a == "failed" { (w.failed) } @else { (w.counts.get(*a).copied().unwrap_or(0)) } }
                            }
                        } } }
                    } }
                }
            }
            figure #chart-credentials {
                figcaption { "Credentials: validity, rotation and expiry" }
                @if !r.live.read {
                    p.muted { "The live targets were not read: credential dates are unknown." }
                } @else if c.credentials.is_empty() {
                    p { "No live service-account credentials." }
                } @else {
                    (credential_chart(&c.credentials, crate::model::Date(r.generated.date_naive())))
                    div.table-wrap { table #credentials data-sortable {
                        caption.sr-only { "Credentials" }
                        thead { tr { (th_sort("Account")) (th_sort("Credential")) (th_sort("Target")) (th_sort("Type")) (th_sort("Start")) (th_sort("Rotate from")) (th_sort("End")) (th_sort("Status")) } }
                        tbody { @for cr in &c.credentials { tr {
                            td { (cr.account) } td.mono { (cr.credential) } td { (cr.target) } td { (cr.kind) }
                            td { (cr.start) } td { @if let Some(rf) = cr.rotate_from { (rf) } } td { (cr.end) }
                            td { (badge(&cr.status, &cr.status)) }
                        } } }
                    } }
                }
            }
            figure #chart-expiries {
                figcaption { "Assignment expiries ahead" }
                (expiry_chart(&c.expiries))
                details {
                    summary { "The numbers" }
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "Month" } th scope="col" { "Ending" } th scope="col" { "Of them privileged" } } }
                        tbody { @for m in &c.expiries { tr { th scope="row" { (m.month) } td.num { (m.count) } td.num { (m.privileged) } } } }
                    } }
                }
            }
        }
    }
}

fn change_table(id: &str, caption: &str, rows: &[ChangeRow], r: &Report) -> Markup {
    html! {
        @if rows.is_empty() { p { "None." } } @else {
            div.table-wrap { table id=(id) data-sortable {
                caption.sr-only { (caption) }
                thead { tr {
                    (th_sort("#")) (th_sort("When")) (th_sort("Change")) (th_sort("Action")) (th_sort("Outcome"))
                    (th_sort("Why")) (th_sort("Applied by")) (th_sort("Asked for in"))
                } }
                tbody { @for c in rows {
                    tr class=[(c.outcome != "applied").then_some("expiring")] {
                        td.num data-sort=(c.seq) { (c.seq) }
                        td data-sort=(c.time.to_rfc3339()) { (minute(&c.time)) }
                        td.mono { (c.address) }
                        td { (c.action) }
                        td {
                            (badge(&c.outcome, &c.outcome))
                            @if let Some(e) = &c.error { br; span.muted { (e) } }
                        }
                        td { (c.reason.clone().unwrap_or_default()) }
                        td {
                            (c.actor)
                            @if let Some(p) = &c.provenance { @if let Some(u) = &p.run_url { br; (link(Some(u), "CI run")) } }
                        }
                        td {
                            @if let Some(p) = &c.provenance {
                                @if let Some(n) = p.pull_request { (link(p.pull_request_url.as_deref(), &format!("PR #{n}"))) br; }
                                @if let Some(u) = &p.change_url { (link(Some(u), "change request")) br; }
                                @if p.dirty { (badge("warn", "uncommitted changes")) br; }
                            }
                            @if let Some(commit) = &c.commit {
                                @let known = r.commits.get(commit.trim_end_matches("-dirty"));
                                span.mono { (link(c.commit_url.as_deref(), short(commit))) }
                                @if let Some(k) = known { br; span.muted { (k.summary) } }
                            }
                        }
                    }
                } }
            } }
        }
    }
}

fn changes(r: &Report) -> Markup {
    html! {
        section #changes aria-labelledby="changes-h" {
            h2 #changes-h { "Changes in the period" }
            p.lead { "Every operation keyward attempted from " (r.period.since) " to " (r.period.until) ", from the audit log, with who applied it, its outcome, and the pull request and commit it came from." }
            (filter_box("changes-table", "Filter changes", "address, action, actor, PR…"))
            (change_table("changes-table", "Changes in the period", &r.changes, r))
        }
    }
}

fn drift_rows(id: &str, rows: &[DriftRow]) -> Markup {
    html! {
        @if rows.is_empty() { p { "None." } } @else {
            div.table-wrap { table id=(id) data-sortable {
                thead { tr { (th_sort("Address")) (th_sort("keyward apply would")) (th_sort("Why")) (th_sort("Who made it")) } }
                tbody { @for d in rows { tr {
                    td.mono { (d.address) } td { (d.action) } td { (d.reason) }
                    td { @for n in &d.notes { (n) br; } }
                } } }
            } }
        }
    }
}

fn drift(r: &Report) -> Markup {
    html! {
        section #drift aria-labelledby="drift-h" {
            h2 #drift-h { "Drift incidents" }
            h3 { "Open: live access that differs from git" }
            @match &r.drift.open {
                Some(rows) => (drift_rows("drift-open", rows)),
                None => p.muted { "The live targets were not read." },
            }
            h3 { "Resolved in the period" }
            p.lead { "Changes keyward applied because the live state had drifted from git." }
            (change_table("drift-resolved", "Drift resolved", &r.drift.resolved, r))
            h3 { "Pending: merged in git, not applied yet" }
            @match &r.drift.pending {
                Some(rows) => (drift_rows("drift-pending", rows)),
                None => p.muted { "The live targets were not read." },
            }
        }
    }
}

fn review_table(id: &str, items: &[crate::review::Item]) -> Markup {
    html! {
        @if items.is_empty() { p { "None." } } @else {
            div.table-wrap { table id=(id) data-sortable {
                thead { tr { (th_sort("Who")) (th_sort("Target")) (th_sort("Last sign-in")) (th_sort("Status")) (th_sort("Detail")) } }
                tbody { @for i in items { tr {
                    td.mono { (i.subject) } td { (i.target.clone().unwrap_or_default()) } td { (i.date.clone().unwrap_or_default()) }
                    td { (badge(&i.status, &i.status)) } td { (i.detail) }
                } } }
            } }
        }
    }
}

fn review(r: &Report) -> Markup {
    html! {
        section #review aria-labelledby="review-h" {
            h2 #review-h { "Stale accounts and missing authentication" }
            h3 { "Stale accounts" }
            (review_table("stale", &r.stale))
            h3 { "Privileged people without required authentication" }
            (review_table("authentication", &r.authentication))
            h3 { "Policy findings" }
            (finding_table("findings", "Deny and warn findings", &r.findings))
        }
    }
}

fn audit(r: &Report) -> Markup {
    let a = &r.audit;
    html! {
        section #audit aria-labelledby="audit-h" {
            h2 #audit-h { "Audit chain" }
            dl {
                dt { "Log" } dd.mono { (a.path) }
                dt { "Verification" }
                dd {
                    @if a.intact {
                        span.chain-ok { "Intact" } ": " (a.records) " records, each chained to the one before by SHA-256."
                    } @else {
                        span.chain-bad { "Tampered" } ": " (a.records) " intact records before the first problem."
                    }
                    @if a.torn_tail { " The last line is an interrupted write, not a record." }
                }
                @if let (Some(seq), Some(hash)) = (a.head_seq, &a.head_hash) {
                    dt { "Head" } dd { "record " (seq) ", " span.mono { (hash) } }
                }
            }
            @if !a.problems.is_empty() {
                ul { @for (line, p) in &a.problems { li { "line " (line) ": " (p) } } }
            }
        }
    }
}

fn certifications(r: &Report) -> Markup {
    html! {
        section #certifications aria-labelledby="certifications-h" {
            h2 #certifications-h { "Certification campaigns" }
            @if r.certifications.is_empty() { p { "No closed campaign." } }
            @for c in &r.certifications {
                h3 { (c.campaign) " (" (c.scope) ")" }
                p {
                    "Opened " (minute(&c.opened)) ", due " (c.due)
                    @if let Some(closed) = &c.closed { ", closed " (minute(closed)) }
                    @if let Some(id) = &c.closed_at_commit { " at commit " span.mono { (short(id)) } }
                    ": " (c.assignments) " assignments, " (c.kept) " kept, " (c.revoked) " revoked, "
                    (c.unreviewed) " not reviewed. Evidence: " span.mono { (c.file) } "."
                }
                div.table-wrap { table id={ "certification-" (c.campaign) } data-sortable {
                    thead { tr { (th_sort("Holder")) (th_sort("Role")) (th_sort("Reviewer")) (th_sort("Decision")) (th_sort("Reason")) (th_sort("Commit")) (th_sort("Outcome")) } }
                    tbody { @for d in &c.decisions { tr {
                        td.mono { (d.holder) } td.mono { (d.role) } td { (d.reviewer) }
                        td { (badge(&d.decision, &d.decision)) @if d.self_certified { " " (badge("deny", "own access: not counted")) } }
                        td { (d.reason.clone().unwrap_or_default()) }
                        td {
                            @if let Some(id) = &d.commit { span.mono { (short(id)) } }
                            @if let (Some(a), Some(t)) = (&d.author, &d.time) { br; (a) ", " (minute(t)) }
                        }
                        td { (badge(&d.outcome, &d.outcome)) }
                    } } }
                } }
            }
        }
    }
}

/// Renders the report as one HTML page.
pub fn render(r: &Report) -> String {
    let sections: [(&str, &str); 9] = [
        ("summary", "Summary"),
        ("access", "Access"),
        ("sod", "Segregation of duties"),
        ("timelines", "Timelines"),
        ("changes", "Changes"),
        ("drift", "Drift"),
        ("review", "Stale accounts and authentication"),
        ("certifications", "Certifications"),
        ("audit", "Audit chain"),
    ];
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(content_security_policy());
                meta name="referrer" content="no-referrer";
                meta http-equiv="x-dns-prefetch-control" content="off";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="generator" content={ "keyward " (env!("CARGO_PKG_VERSION")) };
                title { "Access report: " (r.title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.page {
                    h1 { "Access report: " (r.title) }
                    p { "Generated " (minute(&r.generated)) " by keyward from the configuration"
                        @if let Some(c) = &r.commit { " at commit " span.mono { (c) } }
                        ", its git history, the audit log"
                        @if r.live.read { " and the live state of " (r.live.targets.join(", ")) } @else { " (the live targets were not read)" }
                        "." }
                    p { "Period: " (r.period.since) " to " (r.period.until) "." }
                }
                nav.toc aria-label="Sections" {
                    ul { @for (id, label) in sections { li { a href={ "#" (id) } { (label) } } } }
                }
                main {
                    @if !r.notes.is_empty() {
                        ul.notes aria-label="Notes" { @for n in &r.notes { li { (n) } } }
                    }
                    (summary(r))
                    (access(r))
                    (sod(r))
                    (charts(r))
                    (changes(r))
                    (drift(r))
                    (review(r))
                    (certifications(r))
                    (audit(r))
                }
                script { (PreEscaped(JS)) }
            }
        }
    };
    page.into_string()
}
