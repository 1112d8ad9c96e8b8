//! Closing a campaign: `revoke` decisions (and, when the campaign says so, lines nobody
//! reviewed by the due date) become edits of the configuration, and the evidence is written.

use super::*;

/// One reviewer's decision on a line, with the commit that recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    pub reviewer: String,
    pub file: PathBuf,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The commit that last wrote the decision; `None` when git does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Provenance>,
    /// The commit's author is the person holding the access: the decision does not count.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub self_certified: bool,
}

/// What closing did with one assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Kept,
    Revoked,
    /// Nobody reviewed it by the due date, and the campaign revokes such lines.
    RevokedUnreviewed,
    /// Nobody reviewed it; it stays.
    Unreviewed,
    /// The assignment was already gone from the configuration.
    Gone,
}

/// One assignment of the campaign as closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Closed {
    pub holder: Holder,
    pub role: Name,
    pub flags: Vec<Flag>,
    pub evidence: Evidence,
    pub reviewers: Vec<String>,
    pub decisions: Vec<Decided>,
    pub outcome: Outcome,
    /// For a revocation: the file changed, or why it must be changed by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// The evidence file of a closed campaign (`reviews/NAME/evidence.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceFile {
    /// `keyward-certification/1`.
    pub format: String,
    pub campaign: Campaign,
    /// The commit the campaign was closed at (the reviewers' decisions are in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at_commit: Option<String>,
    pub summary: Summary,
    pub assignments: Vec<Closed>,
    /// Lines nobody could certify when the campaign opened are not here; see `certify open`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manual: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub assignments: usize,
    pub kept: usize,
    pub revoked: usize,
    pub revoked_unreviewed: usize,
    pub unreviewed: usize,
    pub gone: usize,
}

/// Everything [`close`] needs.
pub struct CloseInput<'a> {
    pub name: &'a Name,
    pub state: &'a DesiredState,
    pub loaded: &'a Loaded,
    pub origins: &'a Origins,
    /// The commits that last wrote each decision's line.
    pub blame: &'a Blame,
    pub now: Timestamp,
    pub commit: Option<String>,
    /// Close before the due date even though lines are not reviewed (they stay).
    pub early: bool,
}

/// A closed campaign: the files to write and the evidence.
#[derive(Debug, Clone)]
pub struct Closing {
    /// New texts of configuration files (revocations), and of the campaign file.
    pub files: Vec<(PathBuf, String)>,
    pub evidence: EvidenceFile,
}

/// The (file, line) of every decision of campaign `name`, to ask git who wrote them.
pub fn decision_lines(state: &DesiredState, loaded: &Loaded, origins: &Origins, name: &Name) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for c in parts(state, name) {
        for (i, l) in c.lines.iter().enumerate() {
            if l.decision.is_none() {
                continue;
            }
            let path: Vec<PathSeg> = vec!["lines".into(), i.into(), "decision".into()];
            if let Some(loc) = origins.locate(loaded, Kind::Certification, &c.name, &path) {
                out.push((loc.file, loc.line));
            }
        }
    }
    out
}

/// Closes campaign `name`.
pub fn close(input: &CloseInput) -> Result<Closing, CampaignError> {
    let (state, name, now) = (input.state, input.name, input.now);
    let campaign = state.campaigns.get(name).ok_or_else(|| CampaignError::Missing(name.clone()))?;
    if let Some(closed) = campaign.closed {
        return Err(CampaignError::Closed { name: name.clone(), closed });
    }
    let due_passed = campaign.due.has_passed(now);

    // Every line by assignment, with each reviewer's decision.
    let mut lines: BTreeMap<(Holder, Name), Closed> = BTreeMap::new();
    for c in parts(state, name) {
        for (i, l) in c.lines.iter().enumerate() {
            let holder = match (&l.user, &l.service_account) {
                (Some(u), None) => Holder::User(u.clone()),
                (None, Some(s)) => Holder::ServiceAccount(s.clone()),
                _ => continue,
            };
            let entry = lines.entry((holder.clone(), l.role.clone())).or_insert_with(|| Closed {
                holder: holder.clone(),
                role: l.role.clone(),
                flags: l.flags.clone(),
                evidence: l.evidence.clone(),
                reviewers: Vec::new(),
                decisions: Vec::new(),
                outcome: Outcome::Unreviewed,
                change: None,
            });
            entry.reviewers.push(c.reviewer.to_string());
            let Some(decision) = l.decision else { continue };
            let path: Vec<PathSeg> = vec!["lines".into(), i.into(), "decision".into()];
            let recorded = input
                .origins
                .locate(input.loaded, Kind::Certification, &c.name, &path)
                .and_then(|loc| input.blame.get(&(loc.file, loc.line)).cloned());
            let holder_emails: Vec<String> = owners::beneficiaries(state, &holder)
                .iter()
                .filter_map(|p| state.users.get(p).and_then(|u| u.email.clone()))
                .map(|e| e.to_ascii_lowercase())
                .collect();
            let self_certified = recorded.as_ref().is_some_and(|p| {
                let author = p.author.to_ascii_lowercase();
                holder_emails.iter().any(|e| author.contains(&format!("<{e}>")))
            });
            entry.decisions.push(Decided {
                reviewer: c.reviewer.to_string(),
                file: certification_path(c),
                decision,
                reason: l.reason.clone(),
                recorded,
                self_certified,
            });
        }
    }
    let pending = lines.values().filter(|l| l.decisions.iter().all(|d| d.self_certified)).count();
    if pending > 0 && !due_passed && !input.early {
        return Err(CampaignError::NotDue { name: name.clone(), pending, total: lines.len(), due: campaign.due });
    }

    // Decide, and edit the configuration for each revocation.
    let mut texts: BTreeMap<usize, String> = BTreeMap::new();
    let mut revocations: BTreeMap<(usize, usize), Vec<(Holder, Name)>> = BTreeMap::new();
    for ((holder, role), l) in lines.iter_mut() {
        let counted: Vec<&Decided> = l.decisions.iter().filter(|d| !d.self_certified).collect();
        let still_held = match holder {
            Holder::User(u) => state.users.get(u).map(|u| &u.roles),
            Holder::ServiceAccount(s) => state.service_accounts.get(s).map(|s| &s.roles),
        }
        .is_some_and(|gs| gs.iter().any(|g| g.role() == role));
        l.outcome = if !still_held {
            Outcome::Gone
        } else if counted.iter().any(|d| d.decision == Decision::Revoke) {
            Outcome::Revoked
        } else if !counted.is_empty() {
            Outcome::Kept
        } else if due_passed && campaign.unreviewed == Unreviewed::Revoke {
            Outcome::RevokedUnreviewed
        } else {
            Outcome::Unreviewed
        };
        if matches!(l.outcome, Outcome::Revoked | Outcome::RevokedUnreviewed)
            && let Some(origin) = input.origins.get(holder.kind(), holder.name())
        {
            let doc = &input.loaded.documents[origin.doc];
            revocations.entry((doc.file, origin.doc)).or_default().push((holder.clone(), role.clone()));
        }
    }
    // Documents later in a file first, so earlier documents' positions stay as read.
    let mut files_changed: BTreeMap<usize, Revocations> = BTreeMap::new();
    for ((file, doc), list) in revocations {
        files_changed.entry(file).or_default().push((doc, list));
    }
    for (file, mut docs) in files_changed {
        docs.sort_by_key(|(d, _)| std::cmp::Reverse(input.loaded.documents[*d].span.start));
        let mut text = input.loaded.files[file].text.clone();
        let path = input.loaded.files[file].path.clone();
        for (d, list) in docs {
            let mut span = input.loaded.documents[d].span.clone();
            for (holder, role) in list {
                let result = edit::remove_grant(&text, span.clone(), role.as_str());
                let l = lines.get_mut(&(holder, role)).expect("listed above");
                match result {
                    Ok(new) => {
                        span.end = span.end + new.len() - text.len();
                        text = new;
                        l.change = Some(format!("removed from {}", path.display()));
                    }
                    Err(e) => l.change = Some(format!("not removed: {e} ({})", path.display())),
                }
            }
        }
        texts.insert(file, text);
    }

    let mut summary = Summary { assignments: lines.len(), ..Summary::default() };
    for l in lines.values() {
        *match l.outcome {
            Outcome::Kept => &mut summary.kept,
            Outcome::Revoked => &mut summary.revoked,
            Outcome::RevokedUnreviewed => &mut summary.revoked_unreviewed,
            Outcome::Unreviewed => &mut summary.unreviewed,
            Outcome::Gone => &mut summary.gone,
        } += 1;
    }
    let manual: Vec<String> = lines
        .values()
        .filter_map(|l| {
            l.change.as_ref().filter(|c| c.starts_with("not removed")).map(|c| format!("{} {}: {c}", l.holder, l.role))
        })
        .collect();
    let mut closed = campaign.clone();
    closed.closed = Some(Instant(chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)));
    let mut files: Vec<(PathBuf, String)> =
        texts.into_iter().map(|(f, t)| (input.loaded.files[f].path.clone(), t)).collect();
    files.push((folder(name).join(CAMPAIGN_FILE), render_campaign(&closed)));
    let evidence = EvidenceFile {
        format: EVIDENCE_FORMAT.to_string(),
        campaign: closed,
        closed_at_commit: input.commit.clone(),
        summary,
        assignments: lines.into_values().collect(),
        manual,
    };
    Ok(Closing { files, evidence })
}
