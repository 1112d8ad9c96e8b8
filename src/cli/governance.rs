//! `keyward codeowners`, `keyward approvals verify`, `keyward certify open|status|close` and
//! `keyward elevate`: arguments, what to print, and exit codes. The work is in
//! [`crate::engine::governance`], the decisions in [`crate::governance`].

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::console::{Console, print_findings};
use super::{CliResult, Context, Exit, Failure};
use crate::engine::governance::{
    self as gov, ApproverInput, CloseSettings, CodeownersSettings, ElevateSettings, OpenSettings, VerifySettings,
};
use crate::governance::elevate;
use crate::model::certification::Unreviewed;
use crate::model::escape::terminal_lines;
use crate::model::{CampaignScope, Date, Duration, Name};
use crate::output::{self, Printer};

#[derive(Debug, Args)]
pub struct CodeownersArgs {
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Where to write it (default: .github/CODEOWNERS at the root of the repository).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write nothing; exit 2 when the file differs from what it would be.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Fail (exit 3) when a privileged change since REV lacks the approval of an owner of the role who is not the person gaining the access.
    Verify(VerifyArgs),
}

/// Output formats of `keyward approvals verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    Text,
    Markdown,
    Json,
    /// The unapproved changes as SARIF 2.1.0 findings, on their YAML lines.
    Sarif,
}

/// Who approved, as the command line gives it.
#[derive(Debug, Args)]
pub struct ApproverArgs {
    /// Who approved: GitHub logins or User names, separated by commas.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub approved_by: Vec<String>,
    /// GitHub's pull-request reviews JSON (GET /repos/OWNER/REPO/pulls/N/reviews; pages one after another are read as one list).
    #[arg(long, value_name = "FILE")]
    pub reviews: Option<PathBuf>,
    /// With --reviews: count only approvals of this commit (the pull request's head).
    #[arg(long, value_name = "SHA")]
    pub head: Option<String>,
}

impl ApproverArgs {
    pub fn input(&self) -> ApproverInput {
        ApproverInput { approved_by: self.approved_by.clone(), reviews: self.reviews.clone(), head: self.head.clone() }
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The configuration folder, as the pull request leaves it.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The git revision the pull request goes into (for example origin/main): owners and logins are read from it.
    #[arg(long, value_name = "REV")]
    pub base: String,
    #[command(flatten)]
    pub approvers: ApproverArgs,
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
}

#[derive(Debug, Subcommand)]
pub enum CertifyCommand {
    /// Open a campaign: write reviews/NAME/campaign.yaml and one reviews/NAME/REVIEWER.yaml per reviewer.
    Open(OpenArgs),
    /// Show how far a campaign has got.
    Status(StatusArgs),
    /// Turn revoke decisions into configuration changes and write reviews/NAME/evidence.json.
    Close(CloseArgs),
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The campaign's name, for example 2027-q1.
    pub name: String,
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// What to certify: privileged, all, or role:NAME.
    #[arg(long, default_value = "privileged", value_parser = CampaignScope::parse)]
    pub scope: CampaignScope,
    /// The last day to review (default: 30 days from today).
    #[arg(long, value_name = "DATE", value_parser = Date::parse)]
    pub due: Option<Date>,
    /// What closing does with lines nobody reviewed by the due date.
    #[arg(long, value_enum, default_value_t = UnreviewedArg::Keep)]
    pub unreviewed: UnreviewedArg,
    /// A description of the campaign.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Do not read the targets (no last sign-ins or stale accounts in the evidence).
    #[arg(long)]
    pub offline: bool,
    /// Read only this target (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnreviewedArg {
    Keep,
    Revoke,
}

/// Output formats of `keyward certify status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub name: String,
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    pub name: String,
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Close before the due date although lines are not reviewed (they stay as they are).
    #[arg(long)]
    pub early: bool,
}

#[derive(Debug, Args)]
pub struct ElevateArgs {
    /// The User to elevate.
    pub user: String,
    /// The Role to give them.
    pub role: String,
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// How long: a number and a unit, m or h (at most governance.elevation.maxDuration, 8h by default).
    #[arg(long = "for", value_name = "DURATION", value_parser = Duration::parse)]
    pub duration: Duration,
    /// Why, in one line: recorded in the YAML, the pull request and the audit log.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
    /// Write the pull request's description (Markdown) to this file.
    #[arg(long, value_name = "FILE")]
    pub pr_body: Option<PathBuf>,
    /// Apply the grant now (only it), when the policies allow it; recorded in the audit log.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// With --apply: how long to wait for another run holding the state's lock.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = super::watch::parse_interval)]
    pub lock_timeout: std::time::Duration,
    #[command(flatten)]
    pub approvers: ApproverArgs,
}

fn name(s: &str, what: &str) -> Result<Name, Failure> {
    Name::new(s).map_err(|e| Failure::error(format!("{what} {s:?} is not a valid name: {e}")))
}

/// `keyward codeowners`.
pub fn codeowners(args: CodeownersArgs, _ctx: Context, printer: &Printer) -> CliResult {
    let settings = CodeownersSettings { dir: args.dir.clone(), out: args.out.clone() };
    let built = gov::codeowners(&settings, &Console::new(printer))?;
    printer.err(&terminal_lines(&output::governance::codeowners_notes(&built.built)));
    if args.check {
        if built.current.as_deref() == Some(built.text.as_str()) {
            printer.status(&format!("{} is up to date.", built.path.display()));
            return Ok(Exit::Success);
        }
        printer.out(&format!(
            "{} differs from the owners of roles; run `keyward codeowners` and commit it.\n",
            built.path.display()
        ));
        return Ok(Exit::Changes);
    }
    gov::write_codeowners(&built)?;
    printer.status(&format!("Wrote {} ({} rules).", built.path.display(), built.built.rules.len()));
    Ok(Exit::Success)
}

/// `keyward approvals verify`.
pub fn verify(args: VerifyArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings = VerifySettings {
        dir: args.dir.clone(),
        base: args.base.clone(),
        approvers: args.approvers.input(),
        clock: ctx.clock,
    };
    let v = gov::verify(&settings, &Console::new(printer))?;
    match args.format {
        VerifyFormat::Text => {
            printer.out(&terminal_lines(&output::governance::approvals_text(&v.verdict)));
            if !v.findings.is_empty() {
                printer.out("\n");
            }
            print_findings(printer, &v.findings, &v.head.loaded, true);
        }
        VerifyFormat::Markdown => {
            let mut text = output::governance::approvals_markdown(&v.verdict);
            text.push('\n');
            text.push_str(&output::findings::render_markdown(&v.findings, 16_000));
            printer.out(&text);
        }
        VerifyFormat::Json => printer.out(&output::governance::approvals_json(&v.verdict, &v.findings)),
        VerifyFormat::Sarif => {
            printer.out(&output::sarif::render(&v.findings, &crate::engine::policy::repo_prefix(&args.dir)))
        }
    }
    Ok(if crate::policy::has_deny(&v.findings) { Exit::Denied } else { Exit::Success })
}

pub async fn certify(cmd: CertifyCommand, ctx: Context, printer: &Printer) -> CliResult {
    match cmd {
        CertifyCommand::Open(a) => open(a, ctx, printer).await,
        CertifyCommand::Status(a) => status(a, ctx, printer),
        CertifyCommand::Close(a) => close(a, ctx, printer),
    }
}

async fn open(args: OpenArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings = OpenSettings {
        dir: args.dir.clone(),
        name: name(&args.name, "campaign")?,
        scope: args.scope.clone(),
        due: args.due,
        unreviewed: match args.unreviewed {
            UnreviewedArg::Keep => Unreviewed::Keep,
            UnreviewedArg::Revoke => Unreviewed::Revoke,
        },
        description: args.description.clone(),
        offline: args.offline,
        targets: args.targets.clone(),
        clock: ctx.clock,
        retry: ctx.retry,
    };
    let done = gov::certify_open(&settings, &Console::new(printer)).await?;
    let c = &done.opened.campaign;
    let mut text = format!(
        "Opened campaign {} ({}), due {}: {} reviewer files in {}\n",
        c.name,
        c.scope,
        c.due,
        done.opened.certifications.len(),
        crate::governance::campaign::folder(&c.name).display()
    );
    for (cert, path) in done.opened.certifications.iter().zip(done.files.iter().skip(1)) {
        text.push_str(&format!("  {} ({} lines)\n", path.display(), cert.lines.len()));
    }
    for u in &done.opened.unassigned {
        text.push_str(&format!("  nobody can certify: {u}\n"));
    }
    text.push_str(&format!(
        "Commit these files and open a pull request; reviewers mark each line keep or revoke, then `keyward certify close {}`.\n",
        c.name
    ));
    printer.out(&text);
    Ok(Exit::Success)
}

fn status(args: StatusArgs, ctx: Context, printer: &Printer) -> CliResult {
    let campaign = name(&args.name, "campaign")?;
    let s = gov::certify_status(&args.dir, &campaign, ctx.clock, &Console::new(printer))?;
    printer.out(&match args.format {
        StatusFormat::Text => terminal_lines(&output::governance::status_text(&s)).into_owned(),
        StatusFormat::Markdown => output::governance::status_markdown(&s),
        StatusFormat::Json => format!("{}\n", serde_json::to_string_pretty(&s).expect("statuses serialize")),
    });
    Ok(Exit::Success)
}

fn close(args: CloseArgs, ctx: Context, printer: &Printer) -> CliResult {
    let settings = CloseSettings {
        dir: args.dir.clone(),
        name: name(&args.name, "campaign")?,
        early: args.early,
        clock: ctx.clock,
    };
    let closed = gov::certify_close(&settings, &Console::new(printer))?;
    let mut text = output::governance::closed_text(&closed.evidence);
    text.push_str(&format!(
        "Wrote {}. Review the changes (`git diff`, `keyward plan`) and commit them with the evidence in the campaign's pull request.\n",
        closed.evidence_path.display()
    ));
    printer.out(&terminal_lines(&text));
    Ok(Exit::Success)
}

/// `keyward elevate`.
pub async fn elevate(args: ElevateArgs, ctx: Context, printer: &Printer) -> CliResult {
    let console = Console::new(printer);
    let settings = ElevateSettings {
        dir: args.dir.clone(),
        request: elevate::Request {
            user: name(&args.user, "user")?,
            role: name(&args.role, "role")?,
            duration: args.duration,
            reason: args.reason.clone(),
            ticket: args.ticket.clone(),
        },
        clock: ctx.clock,
        retry: ctx.retry,
        approvers: args.approvers.input(),
        lock_timeout: args.lock_timeout,
    };
    let (before, elevated) = gov::elevate(&settings, &console)?;
    let r = &settings.request;
    printer.status(&format!(
        "Wrote the grant of {} to {} until {} into {}.",
        r.role,
        r.user,
        elevated.until,
        elevated.file.display()
    ));
    if let Some(path) = &args.pr_body {
        crate::atomic::write(
            path,
            format!("{}\n\n{}", elevated.title, elevated.body).as_bytes(),
            crate::atomic::Access::Shared,
        )
        .map_err(|e| Failure::error(format!("cannot write {}: {e}", path.display())))?;
    }
    if !args.apply {
        printer.out(&format!("{}\n\n{}", elevated.title, elevated.body));
        return Ok(Exit::Success);
    }
    // Whatever happens next, the grant stays in the work tree, ready for a pull request.
    let ready = gov::prepare_elevation(&settings, &before, &elevated, &console).await?;
    // The state stays locked from the read until here, whatever happened.
    let mut prepared = ready.prepared;
    let result: CliResult = async {
        printer.out(&output::plan_text::render(
            &prepared.plan,
            output::plan_text::TextOptions { color: printer.color_out },
        ));
        print_findings(printer, &prepared.findings, &prepared.config.loaded, true);
        if crate::policy::has_deny(&prepared.findings) {
            printer.err(&format!(
                "not applied: a policy finding of severity deny (above); the grant stays in {} for a pull request\n",
                elevated.file.display()
            ));
            return Ok(Exit::Denied);
        }
        prepared.check_guards()?;
        if !args.auto_approve && !super::apply::confirm(printer)? {
            printer.out("Elevation cancelled.\n");
            return Ok(Exit::Error);
        }
        super::apply::execute(&mut prepared, &console).await
    }
    .await;
    let location = prepared.state_location();
    if let Err(e) = prepared.release().await {
        printer.err(&format!("warning: cannot release the state lock at {location}: {}\n", Failure::from(e).message));
    }
    let exit = result?;
    if exit == Exit::Success {
        printer.out(&format!(
            "{} holds {} until {}; the first apply after that revokes it. Commit {} so that the configuration says so too: an apply from a revision without the grant takes it back.\n",
            r.user,
            r.role,
            elevated.until,
            elevated.file.display()
        ));
    }
    Ok(exit)
}
