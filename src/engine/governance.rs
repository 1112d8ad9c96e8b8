//! Governance: CODEOWNERS, the approval of a change, certification campaigns, elevation.
//!
//! What is decided is in [`crate::governance`], pure over values; this gathers what it needs
//! (the configuration, the base revision, git's blame and status, the live targets, the audit
//! log, GitHub's reviews), and writes what it makes, every file whole or not at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::read::{self, Read};
use super::store::Store;
use super::{Clock, Config, EngineError, Observer};
use crate::governance::approvals::{self, Approver, Head, Ignored, Verdict};
use crate::governance::campaign::{self, CampaignError, EvidenceFile, Opened};
use crate::governance::codeowners::{self, CodeOwners};
use crate::governance::elevate::{self, ElevateError, Elevated, Request};
use crate::model::certification::Unreviewed;
use crate::model::{CampaignScope, Date, DesiredState, Duration, Name};
use crate::plan::{Action, Change, ObjectKind, ReasonKind};
use crate::policy::Finding;
use crate::provider::handle::Reviewing;
use crate::remote::RetryPolicy;

/// The largest reviews file read (GitHub answers a page of 100 reviews in well under 1 MiB).
const MAX_REVIEWS_BYTES: u64 = 16 * 1024 * 1024;

/// Why a governance command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("{}: {source}", path.display())]
    Reviews {
        path: PathBuf,
        #[source]
        source: approvals::ReviewsError,
    },
    #[error("{} is larger than 16 MiB; it is not a list of reviews", path.display())]
    ReviewsTooLarge { path: PathBuf },
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    #[error(transparent)]
    Elevate(#[from] ElevateError),
    #[error("{} exists; open the campaign under another name", path.display())]
    CampaignExists { path: PathBuf },
    #[error(
        "certify close records the commits of the decisions, so the campaign must be in a git repository: {source}"
    )]
    NotARepository {
        #[source]
        source: crate::load::GitError,
    },
    #[error(
        "the reviewers' decisions must be committed first, so the evidence can name their commits; not committed:\n{}",
        paths.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n")
    )]
    Uncommitted { paths: Vec<PathBuf> },
    #[error(
        "the elevation changes nothing live: `{user}` has no account on a target where `{role}` is bound, or holds it there already; apply the configuration first"
    )]
    NothingToElevate { user: Name, role: Name },
}

/// Who approved, as given: names or logins, and GitHub's reviews.
#[derive(Debug, Clone, Default)]
pub struct ApproverInput {
    /// GitHub logins or User names.
    pub approved_by: Vec<String>,
    /// GitHub's pull-request reviews JSON.
    pub reviews: Option<PathBuf>,
    /// Count only approvals of this commit.
    pub head: Option<String>,
}

impl ApproverInput {
    pub fn is_empty(&self) -> bool {
        self.approved_by.is_empty() && self.reviews.is_none()
    }
}

/// The approvers given, as the configuration `known` knows them, and the reviews that do not
/// count.
pub fn approvers(input: &ApproverInput, known: &DesiredState) -> Result<(Vec<Approver>, Vec<Ignored>), EngineError> {
    let mut found = approvals::resolve(known, &input.approved_by, "command-line");
    let mut ignored = Vec::new();
    if let Some(path) = &input.reviews {
        let size = std::fs::metadata(path).map_err(EngineError::io("read", path))?.len();
        if size > MAX_REVIEWS_BYTES {
            return Err(GovernanceError::ReviewsTooLarge { path: path.clone() }.into());
        }
        let text = std::fs::read_to_string(path).map_err(EngineError::io("read", path))?;
        let reviews = approvals::parse_reviews(&text)
            .map_err(|source| GovernanceError::Reviews { path: path.clone(), source })?;
        let (logins, not_counted) = approvals::approving_logins(&reviews, input.head.as_deref());
        found.extend(approvals::resolve(known, &logins, "review"));
        ignored = not_counted;
    }
    Ok((found, ignored))
}

/// Records the approvers given on the audit records of the changes the configuration asks
/// for (not drift corrections or expiries, which nobody approved).
pub fn record_approvals(prepared: &mut super::apply::Prepared, input: &ApproverInput) -> Result<(), EngineError> {
    if input.is_empty() {
        return Ok(());
    }
    let (found, _) = approvers(input, prepared.config.state())?;
    let names: Vec<String> = found
        .iter()
        .map(|a| a.user.as_ref().map_or_else(|| a.given.clone(), Name::to_string))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for c in prepared.plan.changes.iter().filter(|c| c.reason.kind == ReasonKind::Config) {
        prepared.approvals.approved_by.insert(c.address.to_string(), names.clone());
    }
    Ok(())
}

/// What `keyward codeowners` needs.
#[derive(Debug, Clone)]
pub struct CodeownersSettings {
    pub dir: PathBuf,
    /// Where the file goes; `.github/CODEOWNERS` at the repository's root by default.
    pub out: Option<PathBuf>,
}

/// A CODEOWNERS file as it would be written, and the file as it is.
pub struct Codeowners {
    pub path: PathBuf,
    pub built: CodeOwners,
    pub text: String,
    /// What the file holds now (`None` when there is none).
    pub current: Option<String>,
}

/// Builds the CODEOWNERS file of the configuration at `dir`.
pub fn codeowners(settings: &CodeownersSettings, observer: &dyn Observer) -> Result<Codeowners, EngineError> {
    let config = super::config::load(&settings.dir, observer)?;
    let (prefix, root) = match crate::load::repository_prefix(&settings.dir) {
        Some((p, r)) => (p, Some(r)),
        None => (String::new(), None),
    };
    let path = match (&settings.out, &root) {
        (Some(o), _) => o.clone(),
        (None, Some(r)) => r.join(".github/CODEOWNERS"),
        (None, None) => settings.dir.join(".github/CODEOWNERS"),
    };
    // Where the file lives from the repository's root, so that it names itself.
    let own = root
        .as_ref()
        .and_then(|r| {
            let r = r.canonicalize().unwrap_or_else(|_| r.clone());
            std::path::absolute(&path).ok()?.strip_prefix(&r).ok().map(Path::to_path_buf)
        })
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_else(|| ".github/CODEOWNERS".into());
    let layout = codeowners::Layout { prefix: &prefix, codeowners_path: &own };
    let built = codeowners::build(config.state(), &config.loaded, &config.validated.origins, &layout);
    let text = built.render();
    let current = std::fs::read_to_string(&path).ok();
    Ok(Codeowners { path, built, text, current })
}

/// Writes a CODEOWNERS file.
pub fn write_codeowners(c: &Codeowners) -> Result<(), EngineError> {
    if let Some(parent) = c.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(EngineError::io("create", parent))?;
    }
    write(&c.path, &c.text)
}

fn write(path: &Path, text: &str) -> Result<(), EngineError> {
    crate::atomic::write(path, text.as_bytes(), crate::atomic::Access::Shared).map_err(EngineError::io("write", path))
}

/// What `keyward approvals verify` needs.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub dir: PathBuf,
    pub base: String,
    pub approvers: ApproverInput,
    pub clock: Clock,
}

/// The verdict over a change, and every finding (the verdict's and the Rego policies' over
/// `input.approvals`).
pub struct Verified {
    pub head: Config,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
}

/// Checks every privileged change since the base revision against the approvers.
pub fn verify(settings: &VerifySettings, observer: &dyn Observer) -> Result<Verified, EngineError> {
    let head = super::config::load(&settings.dir, observer)?;
    let base = super::config::load_base(&settings.dir, &settings.base, observer)?;
    let (found, ignored) = approvers(&settings.approvers, base.state())?;
    let now = settings.clock.now;
    let h = Head { state: head.state(), loaded: &head.loaded, origins: &head.validated.origins };
    let verdict = approvals::verify(base.state(), &settings.base, &h, found, ignored, now);
    let mut findings = approvals::findings(&verdict);
    findings.extend(rego_with_approvals(&head, &verdict, None, None, now));
    crate::policy::sort(&mut findings);
    Ok(Verified { head, verdict, findings })
}

/// The configuration's policies with the approvals as `input.approvals` (plus `extra` in it):
/// Rego only, or, with a plan, every policy.
fn rego_with_approvals(
    config: &Config,
    verdict: &Verdict,
    extra: Option<(&str, serde_json::Value)>,
    plan: Option<(&crate::plan::Plan, super::policy::Live)>,
    now: crate::model::Timestamp,
) -> Vec<Finding> {
    let mut json = serde_json::to_value(verdict).unwrap_or(serde_json::Value::Null);
    if let (Some((k, v)), Some(obj)) = (extra, json.as_object_mut()) {
        obj.insert(k.to_string(), v);
    }
    let mut ctx = crate::policy::PolicyContext::offline(config.state(), &config.loaded, &config.validated.origins, now);
    match plan {
        Some((plan, live)) => {
            ctx.plan = Some(plan);
            ctx.live = Some(live.targets);
            ctx.undelivered = live.undelivered;
        }
        None => ctx.options.builtin = false,
    }
    crate::policy::evaluate_with_approvals(&ctx, Some(&json))
}

/// What `keyward certify open` needs.
#[derive(Debug, Clone)]
pub struct OpenSettings {
    pub dir: PathBuf,
    pub name: Name,
    pub scope: CampaignScope,
    /// The last day to review; 30 days from now by default.
    pub due: Option<Date>,
    pub unreviewed: Unreviewed,
    pub description: Option<String>,
    /// Read no target.
    pub offline: bool,
    /// Read only these targets (all when empty).
    pub targets: Vec<String>,
    pub clock: Clock,
    pub retry: RetryPolicy,
}

/// An opened campaign and the files written for it.
pub struct OpenedCampaign {
    pub opened: Opened,
    /// Relative to the configuration folder: the campaign's file, then the reviewers'.
    pub files: Vec<PathBuf>,
}

/// Opens a campaign: reads what the evidence needs and writes the campaign's files.
pub async fn certify_open(settings: &OpenSettings, observer: &dyn Observer) -> Result<OpenedCampaign, EngineError> {
    let dir = &settings.dir;
    let folder = campaign::folder(&settings.name);
    if dir.join(&folder).exists() {
        return Err(GovernanceError::CampaignExists { path: dir.join(&folder) }.into());
    }
    let now = settings.clock.now;
    let (config, live, sign_ins) = if settings.offline {
        (super::config::load(dir, observer)?, BTreeMap::new(), BTreeSet::new())
    } else {
        let (config, read) = read::load_and_read::<Reviewing>(dir, &settings.targets, settings.retry, observer).await?;
        let Read { open, live, .. } = read?;
        let sign_ins = open.capabilities.iter().filter(|(_, c)| c.sign_in_activity).map(|(n, _)| n.clone()).collect();
        (config, live, sign_ins)
    };
    let state = config.state();
    let store = Store::open(state, dir)?;
    let undelivered = store.undelivered().await?;
    let live_state = super::policy::Live {
        targets: &live,
        undelivered: &undelivered,
        pinned: &crate::model::contents::NO_SNAPSHOTS,
    };
    let findings = super::policy::evaluate_config(&config, None, Some(live_state), now);
    let records = store.audit_records().await?;
    let review = crate::review::review(&crate::review::ReviewInput {
        desired: state,
        live: &live,
        findings: &findings,
        records: &[],
        now,
        within: Duration::from_days(30),
        undelivered: &undelivered,
    });
    let lines: Vec<(PathBuf, u32)> =
        campaign::subjects(state, &config.loaded, &config.validated.origins, &settings.scope)
            .into_iter()
            .filter_map(|s| s.location.map(|l| (l.file, l.line)))
            .collect();
    // Outside a repository there is no commit to name: the evidence says nothing of it.
    let blame = crate::load::blame(dir, &lines).unwrap_or_default();
    let due = settings.due.unwrap_or_else(|| Date((now + chrono::TimeDelta::days(30)).date_naive()));
    let opened = campaign::open(&campaign::OpenInput {
        name: settings.name.clone(),
        scope: settings.scope.clone(),
        due,
        unreviewed: settings.unreviewed,
        description: settings.description.clone(),
        state,
        loaded: &config.loaded,
        origins: &config.validated.origins,
        live: &live,
        sign_ins: &sign_ins,
        review: &review.items,
        blame: &blame,
        applied: &campaign::applied_times(&records),
        now,
        commit: crate::load::head_commit(dir),
    })
    .map_err(GovernanceError::from)?;
    std::fs::create_dir_all(dir.join(&folder)).map_err(EngineError::io("create", dir.join(&folder)))?;
    let mut files = vec![folder.join(campaign::CAMPAIGN_FILE)];
    write(&dir.join(&files[0]), &campaign::render_campaign(&opened.campaign))?;
    for c in &opened.certifications {
        let path = campaign::certification_path(c);
        write(&dir.join(&path), &campaign::render_certification(c, &opened.campaign))?;
        files.push(path);
    }
    Ok(OpenedCampaign { opened, files })
}

/// How far campaign `name` of the configuration at `dir` has got.
pub fn certify_status(
    dir: &Path,
    name: &Name,
    clock: Clock,
    observer: &dyn Observer,
) -> Result<campaign::Status, EngineError> {
    let config = super::config::load(dir, observer)?;
    Ok(campaign::status(config.state(), name, clock.now).map_err(GovernanceError::from)?)
}

/// What `keyward certify close` needs.
#[derive(Debug, Clone)]
pub struct CloseSettings {
    pub dir: PathBuf,
    pub name: Name,
    /// Close before the due date although lines are not reviewed.
    pub early: bool,
    pub clock: Clock,
}

/// A closed campaign: the evidence, where it was written, and the files changed.
pub struct ClosedCampaign {
    pub evidence: EvidenceFile,
    pub evidence_path: PathBuf,
    pub changed: Vec<PathBuf>,
}

/// Closes a campaign whose decisions are committed: edits the configuration and writes the
/// evidence.
pub fn certify_close(settings: &CloseSettings, observer: &dyn Observer) -> Result<ClosedCampaign, EngineError> {
    let dir = &settings.dir;
    let config = super::config::load(dir, observer)?;
    let folder = campaign::folder(&settings.name);
    let dirty = crate::load::uncommitted(dir, &folder).map_err(|source| GovernanceError::NotARepository { source })?;
    if !dirty.is_empty() {
        return Err(GovernanceError::Uncommitted { paths: dirty }.into());
    }
    let state = config.state();
    let lines = campaign::decision_lines(state, &config.loaded, &config.validated.origins, &settings.name);
    let blame = crate::load::blame(dir, &lines).map_err(|source| GovernanceError::NotARepository { source })?;
    let closing = campaign::close(&campaign::CloseInput {
        name: &settings.name,
        state,
        loaded: &config.loaded,
        origins: &config.validated.origins,
        blame: &blame,
        now: settings.clock.now,
        commit: crate::load::head_commit(dir),
        early: settings.early,
    })
    .map_err(GovernanceError::from)?;
    for (path, text) in &closing.files {
        write(&dir.join(path), text)?;
    }
    let evidence_path = folder.join(campaign::EVIDENCE_FILE);
    let mut json = serde_json::to_string_pretty(&closing.evidence).expect("evidence serializes");
    json.push('\n');
    write(&dir.join(&evidence_path), &json)?;
    Ok(ClosedCampaign {
        evidence: closing.evidence,
        evidence_path,
        changed: closing.files.into_iter().map(|(p, _)| p).collect(),
    })
}

/// The evidence files of the closed campaigns of a configuration, with their paths; one that
/// cannot be read, or is another campaign's, is left out with a warning.
pub fn closed_campaigns(state: &DesiredState, dir: &Path, observer: &dyn Observer) -> Vec<(String, EvidenceFile)> {
    let mut out = Vec::new();
    for c in state.campaigns.values().filter(|c| c.closed.is_some()) {
        let rel = campaign::folder(&c.name).join(campaign::EVIDENCE_FILE);
        let path = dir.join(&rel);
        let parsed = std::fs::metadata(&path)
            .map_err(|e| e.to_string())
            .and_then(|m| if m.len() > crate::load::MAX_FILE_BYTES { Err("it is too large".into()) } else { Ok(()) })
            .and_then(|()| std::fs::read_to_string(&path).map_err(|e| e.to_string()))
            .and_then(|t| serde_json::from_str::<EvidenceFile>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(e) if e.format == campaign::EVIDENCE_FORMAT && e.campaign.name == c.name => {
                out.push((rel.to_string_lossy().replace('\\', "/"), e))
            }
            Ok(_) => {
                observer.warning(&format!("{} is not the evidence of campaign {}; left out", rel.display(), c.name))
            }
            Err(e) => observer.warning(&format!("cannot read {}: {e}; left out", rel.display())),
        }
    }
    out
}

/// What `keyward elevate` needs.
#[derive(Debug, Clone)]
pub struct ElevateSettings {
    pub dir: PathBuf,
    pub request: Request,
    pub clock: Clock,
    pub retry: RetryPolicy,
    pub approvers: ApproverInput,
    /// How long `--apply` waits for another run holding the state's lock.
    pub lock_timeout: std::time::Duration,
}

/// Writes the time-boxed grant into the configuration; returns it, and the configuration as
/// it was before.
pub fn elevate(settings: &ElevateSettings, observer: &dyn Observer) -> Result<(Config, Elevated), EngineError> {
    let config = super::config::load(&settings.dir, observer)?;
    let elevated = elevate::elevate(
        config.state(),
        &config.loaded,
        &config.validated.origins,
        &settings.request,
        settings.clock.now,
    )
    .map_err(GovernanceError::from)?;
    write(&settings.dir.join(&elevated.file), &elevated.text)?;
    Ok((config, elevated))
}

/// An elevation ready to apply: exactly its changes, checked as a pull request would be.
pub struct PreparedElevation {
    pub prepared: super::apply::Prepared,
    pub verdict: Verdict,
}

/// Plans exactly the changes of an elevation written by [`elevate`] (its targets read and
/// locked), checks the approvers as `approvals verify` would against `before`, and evaluates
/// every policy with the approvals and the elevation as `input.approvals`. The approvers and
/// the reason go on the audit records.
pub async fn prepare_elevation(
    settings: &ElevateSettings,
    before: &Config,
    elevated: &Elevated,
    observer: &dyn Observer,
) -> Result<PreparedElevation, EngineError> {
    let request = &settings.request;
    let key = format!("{}/{}", request.user, request.role);
    let role = request.role.to_string();
    let keep = move |c: &Change| {
        (c.address.kind == ObjectKind::Assignment && c.address.name == key && c.action == Action::Assign)
            || (c.address.kind == ObjectKind::Role && c.address.name == role && c.action == Action::Create)
    };
    let apply_settings = super::apply::ApplySettings {
        dir: settings.dir.clone(),
        clock: settings.clock,
        retry: settings.retry,
        targets: Vec::new(),
        guards: Default::default(),
        lock_timeout: settings.lock_timeout,
    };
    let mut prepared = super::apply::prepare_only(&apply_settings, &keep, observer).await?;
    if !prepared.plan.changes.iter().any(|c| c.action == Action::Assign) {
        return Err(GovernanceError::NothingToElevate { user: request.user.clone(), role: request.role.clone() }.into());
    }
    let (found, ignored) = approvers(&settings.approvers, before.state())?;
    let now = settings.clock.now;
    let after = &prepared.config;
    let h = Head { state: after.state(), loaded: &after.loaded, origins: &after.validated.origins };
    let verdict = approvals::verify(before.state(), "the configuration before the elevation", &h, found, ignored, now);
    let elevation = serde_json::json!({
        "user": request.user, "role": request.role, "for": request.duration.to_string(),
        "until": elevated.until.to_string(), "reason": request.reason, "ticket": request.ticket,
    });
    let undelivered = Store::open(after.state(), &settings.dir)?.undelivered().await?;
    let live = super::policy::Live {
        targets: &prepared.live,
        undelivered: &undelivered,
        pinned: &crate::model::contents::NO_SNAPSHOTS,
    };
    let mut findings = approvals::findings(&verdict);
    findings.extend(rego_with_approvals(
        after,
        &verdict,
        Some(("elevation", elevation)),
        Some((&prepared.plan, live)),
        now,
    ));
    crate::policy::sort(&mut findings);
    prepared.findings = findings;
    let approved_by: Vec<String> = verdict
        .changes
        .iter()
        .flat_map(|c| c.approved_by.iter().map(Name::to_string))
        .chain(verdict.approvers.iter().filter(|a| a.user.is_none()).map(|a| a.given.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let detail = format!(
        "elevated for {} until {}: {}{}",
        request.duration,
        elevated.until,
        request.reason,
        request.ticket.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
    );
    let addresses: Vec<String> = prepared.plan.changes.iter().map(|c| c.address.to_string()).collect();
    for a in addresses {
        prepared.approvals.approved_by.insert(a.clone(), approved_by.clone());
        prepared.approvals.detail.insert(a, detail.clone());
    }
    Ok(PreparedElevation { prepared, verdict })
}
