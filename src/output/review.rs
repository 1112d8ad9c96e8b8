//! Renderings of the access review: text for a terminal, Markdown for a ticket or wiki page,
//! JSON for tools, CSV for a spreadsheet (one row per item, a header row first).

use crate::model::escape::{Term, markdown_code, markdown_text};
use crate::review::{Review, Section};

fn header(r: &Review) -> String {
    format!("Access review, {} (expiries within {})", r.generated.format("%Y-%m-%d %H:%M UTC"), r.within)
}

fn when(date: &Option<String>, days: Option<i64>) -> String {
    match (date, days) {
        (Some(d), Some(n)) if n < 0 => format!("{d} ({} days ago)", -n),
        (Some(d), Some(0)) => format!("{d} (today)"),
        (Some(d), Some(n)) => format!("{d} (in {n} days)"),
        (Some(d), None) => d.clone(),
        _ => String::new(),
    }
}

pub fn render_text(r: &Review) -> String {
    let mut out = format!("{}\n", header(r));
    for s in Section::ALL {
        let items: Vec<_> = r.section(s).collect();
        // Shown when they list someone: only targets that record licences can list licences,
        // and only configurations with SodRules conflicts.
        if items.is_empty() && matches!(s, Section::Licences | Section::SodConflicts) {
            continue;
        }
        out.push_str(&format!("\n{} ({})\n", s.title(), items.len()));
        if items.is_empty() {
            out.push_str("  none\n");
        }
        for i in items {
            let mut line = format!("  {:<12} {}", Term(&i.status), Term(&i.subject));
            if let Some(t) = &i.target {
                line.push_str(&format!(" on {}", Term(t)));
            }
            let w =
                if s == Section::AuditActivity { i.date.clone().unwrap_or_default() } else { when(&i.date, i.days) };
            if !w.is_empty() {
                line.push_str(&format!("  {}", Term(&w)));
            }
            out.push_str(&format!("{line}\n      {}\n", Term(&i.detail)));
        }
    }
    out
}

pub fn render_markdown(r: &Review) -> String {
    let mut out = format!("# {}\n", header(r));
    for s in Section::ALL {
        let items: Vec<_> = r.section(s).collect();
        if items.is_empty() && matches!(s, Section::Licences | Section::SodConflicts) {
            continue;
        }
        out.push_str(&format!("\n## {} ({})\n\n", s.title(), items.len()));
        if items.is_empty() {
            out.push_str("None.\n");
            continue;
        }
        out.push_str("| Status | Subject | Target | When | Detail |\n|---|---|---|---|---|\n");
        for i in items {
            let w =
                if s == Section::AuditActivity { i.date.clone().unwrap_or_default() } else { when(&i.date, i.days) };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                markdown_text(&i.status),
                markdown_code(&i.subject),
                markdown_text(i.target.as_deref().unwrap_or("")),
                markdown_text(&w),
                markdown_text(&i.detail)
            ));
        }
    }
    out
}

pub fn render_json(r: &Review) -> String {
    format!("{}\n", serde_json::to_string_pretty(r).expect("reviews serialize"))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

pub fn render_csv(r: &Review) -> String {
    let mut out = String::from("section,status,subject,target,date,days,detail\n");
    for i in &r.items {
        let row = [
            i.section.as_str().to_string(),
            i.status.clone(),
            i.subject.clone(),
            i.target.clone().unwrap_or_default(),
            i.date.clone().unwrap_or_default(),
            i.days.map(|d| d.to_string()).unwrap_or_default(),
            i.detail.clone(),
        ];
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Duration;
    use crate::review::Item;

    fn sample() -> Review {
        Review {
            generated: chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc(),
            within: Duration::from_days(30),
            items: vec![Item {
                section: Section::SodExceptions,
                subject: "rule/ann".into(),
                target: None,
                date: Some("2026-12-01".into()),
                days: Some(3),
                status: "expiring".into(),
                detail: "reason: a, \"quoted\" | piped".into(),
            }],
        }
    }

    #[test]
    fn csv_quotes_fields_and_has_a_header() {
        let csv = render_csv(&sample());
        assert_eq!(
            csv,
            "section,status,subject,target,date,days,detail\n\
             sod-exceptions,expiring,rule/ann,,2026-12-01,3,\"reason: a, \"\"quoted\"\" | piped\"\n"
        );
    }

    #[test]
    fn markdown_escapes_pipes_and_shows_empty_sections() {
        let md = render_markdown(&sample());
        assert!(md.contains("\\| piped"), "{md}");
        assert!(md.contains("## Stale accounts (0)\n\nNone."), "{md}");
        let text = render_text(&sample());
        assert!(text.contains("2026-12-01 (in 3 days)"), "{text}");
    }
}
