//! The command line: clap arguments, resolved into one settings value per command for the
//! [`crate::engine`], what comes back printed, and exit codes.
//!
//! Exit codes are the same everywhere: 0 success, 1 error, 2 changes or drift present (where
//! asked for), 3 blocked by a policy finding of severity deny.

mod apply;
mod audit;
mod console;
mod drift;
mod evidence;
mod governance;
mod import;
mod plan;
mod schema;
mod state;
mod validate;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Clock, EngineError};
use crate::output::{ColorChoice, Printer};

/// keyward reconciles identity and access with a configuration kept in git.
#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version,
    about = "Declarative reconciler for identity and access: plan, apply and audit access kept in git",
    long_about = "keyward compares the desired state of access, kept as YAML in a git repository, with live \
directories and ERPs, shows a plan, and applies it safely.\n\n\
Exit codes: 0 success, 1 error, 2 changes present (plan --detailed-exitcode) or drift present (drift), 3 blocked by a policy finding of severity deny.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to use colour.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace), or a filter.
    #[arg(long, global = true, env = "KEYWARD_LOG", default_value = "warn")]
    pub log_level: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a configuration offline: syntax, schema, references, duplicates, policies. Needs no credentials.
    Validate(ValidateArgs),
    /// Read the live targets and show what would change.
    Plan(PlanArgs),
    /// Apply a fresh plan after confirmation, or exactly a saved plan.
    Apply(ApplyArgs),
    /// Report live changes made outside git; exit 2 when there are any.
    Drift(DriftArgs),
    /// Run the drift check continuously, alert new drift, serve /metrics and /healthz.
    Watch(WatchArgs),
    /// Check and read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show the state (backend, last apply per target, lock holder, audit chain head), or break a stuck lock.
    #[command(subcommand)]
    State(StateCommand),
    /// Write the JSON Schemas of the configuration files.
    Schema(SchemaArgs),
    /// Write YAML for a target's live users, groups and memberships that the configuration does not yet have.
    Import(ImportArgs),
    /// Why a person has each access: the YAML line, the commits and pull request that granted it, when it was applied, and live access git does not explain.
    Explain(ExplainArgs),
    /// Write one self-contained HTML page for auditors: access, SoD, timelines, changes with provenance, drift, the audit chain.
    Report(ReportArgs),
    /// Write a CODEOWNERS file that routes each role's files to the role's owners.
    Codeowners(governance::CodeownersArgs),
    /// Check that privileged changes were approved by the roles' owners.
    #[command(subcommand)]
    Approvals(governance::ApprovalsCommand),
    /// Certification campaigns: reviewers certify who holds what, in a pull request.
    #[command(subcommand)]
    Certify(governance::CertifyCommand),
    /// Give a user a role until an exact time, as a pull-request-ready change (or at once with --apply).
    Elevate(governance::ElevateArgs),
}

/// Output formats of `keyward explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The person or service account: its name in git, or a userName or e-mail address.
    pub user: String,
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Explain access on this target only (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
    pub format: ExplainFormat,
    /// Do not read the live targets: git and the audit log only.
    #[arg(long)]
    pub offline: bool,
}

/// Output formats of `keyward report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained page.
    Html,
    /// The report's data, for tools.
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Write the report to this file (stdout without it).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The start of the period whose changes are listed (YYYY-MM-DD; default 90 days ago).
    #[arg(long, value_name = "DATE", value_parser = crate::model::Date::parse)]
    pub since: Option<crate::model::Date>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Read only this target (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Do not read the live targets: configuration, git and the audit log only.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// The plan like Terraform's, then the policy findings.
    Text,
    /// The plan as JSON (docs/plan-format.md); the policy findings as text on stderr.
    Json,
    /// The plan, then the policy findings, for a pull-request comment.
    Markdown,
    /// The policy findings as SARIF 2.1.0, instead of the plan (save the plan with --out).
    Sarif,
}

/// Output formats of `keyward validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    /// Diagnostics and findings like compiler messages, on stderr.
    Text,
    /// Diagnostics, findings and counts as one JSON document, on stdout.
    Json,
    /// Diagnostics and findings as SARIF 2.1.0, on stdout, for code scanning.
    Sarif,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    pub format: ValidateFormat,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Save the plan (JSON) to this file, for `keyward apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Plan only this target (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Exit 2 when the plan has changes, 0 when it has none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Split the plan into what the change since this git revision asks for and drift already
    /// present at it (for pull requests: the target branch, for example `origin/main`).
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The configuration folder, or a plan saved with `keyward plan --out`.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// With a saved plan: the configuration folder it was made from.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub config: PathBuf,
    /// Apply without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Apply only to this target (repeatable; not with a saved plan).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Raise guards.maxDeletes for this run.
    #[arg(long, value_name = "N")]
    pub max_deletes: Option<u32>,
    /// Lower guards.minAdmins.count for this run.
    #[arg(long, value_name = "N")]
    pub min_admins: Option<u32>,
    /// How long to wait for another run holding the state's lock before failing.
    /// 0 fails at once.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_lock_timeout)]
    pub lock_timeout: std::time::Duration,
    /// Who approved the change being applied (recorded on the audit records of the changes the
    /// configuration asks for).
    #[command(flatten)]
    pub approvers: governance::ApproverArgs,
}

/// Output formats of `keyward drift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriftFormat {
    /// The drift like a Terraform plan.
    Text,
    /// The drift as a plan in JSON (docs/plan-format.md).
    Json,
    /// The drift for an issue or pull-request comment.
    Markdown,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value_t = DriftFormat::Text)]
    pub format: DriftFormat,
    /// Check only this target (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Send an alert to notify.webhook when drift is found or the check fails.
    #[arg(long)]
    pub notify: bool,
    /// Write OpenMetrics text to this file (atomically), for a node exporter's textfile collector.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Read targets that have a change feed in full when the state stored by the last run was
    /// read in full this long ago, and check that the state built from the feed equals the
    /// full read. In between, each run reads only what changed since the last one.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = watch::parse_interval)]
    pub resync: std::time::Duration,
    /// Read every target in full, whatever the state store holds from the last run.
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The configuration folder (read afresh at every check).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Time between checks: a number and a unit, ms, s, m or h.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = watch::parse_interval)]
    pub interval: std::time::Duration,
    /// Where to serve /metrics and /healthz.
    #[arg(long, value_name = "ADDR", default_value = watch::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Check only this target (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    /// Read targets that have a change feed in full at least this often, and check that the
    /// state built from the feed equals the full read. A SCIM feed reports no removals: a user
    /// or group deleted there is seen only at this full read.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = watch::parse_interval)]
    pub resync: std::time::Duration,
}

/// `--lock-timeout`: an interval, or `0` (do not wait: fail at once when the lock is held).
fn parse_lock_timeout(s: &str) -> Result<std::time::Duration, String> {
    match s.trim() {
        "0" | "0s" | "0ms" | "0m" | "0h" => Ok(std::time::Duration::ZERO),
        other => watch::parse_interval(other),
    }
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// The backend, the last apply per target, the lock holder and the audit chain's head.
    Show(StateShowArgs),
    /// Break the state lock with this id (a run that died holding it), recorded in the audit log.
    Unlock(StateUnlockArgs),
    /// Copy this configuration's state (audit log, last applies, undelivered credentials) into
    /// the state another settings file selects, e.g. from `local` to `azureblob`.
    Migrate(StateMigrateArgs),
}

#[derive(Debug, Args)]
pub struct StateMigrateArgs {
    /// The configuration folder whose state is copied (its keyward.yaml selects it).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// A settings file (or a folder holding keyward.yaml) whose `state:` is the destination.
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub to: PathBuf,
    /// How long to wait for a run holding either state's lock.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_lock_timeout)]
    pub lock_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct StateShowArgs {
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct StateUnlockArgs {
    /// The lock id, as the waiting run or `keyward state show` names it.
    pub id: String,
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exit 1 when it was tampered with or cut off.
    Verify(AuditVerifyArgs),
    /// List the audit log's records.
    Show(AuditShowArgs),
    /// The monthly access review: stale accounts, expiring assignments, credentials and SoD exceptions, missing authentication, recent activity.
    Review(AuditReviewArgs),
}

/// Output formats of `keyward audit review`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReviewFormat {
    Text,
    Markdown,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct AuditReviewArgs {
    #[command(flatten)]
    pub common: AuditArgs,
    /// Report assignments, credentials and exceptions that expire within this long.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = crate::model::Duration::parse)]
    pub within: crate::model::Duration,
    /// Show the last N audit records (default 20, unless --since is given).
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Show the audit records since this date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = crate::model::Date::parse)]
    pub since: Option<crate::model::Date>,
    /// Review only this target (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    #[arg(long, value_enum, default_value_t = ReviewFormat::Text)]
    pub format: ReviewFormat,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The configuration folder (its keyward.yaml says where the state, and the log, is).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Read this local log file instead of the configured state's.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub common: AuditArgs,
    /// Fail unless the chain reaches this head (the hash an apply printed and kept elsewhere):
    /// finds a log whose tail was cut off or rewritten.
    #[arg(long, value_name = "HASH")]
    pub expect_head: Option<String>,
    /// The record count of --expect-head, as the apply printed it: the check then also tells a
    /// log that ends before the head from one that differs at it.
    #[arg(long, value_name = "N", requires = "expect_head")]
    pub expect_records: Option<u64>,
}

#[derive(Debug, Args)]
pub struct AuditShowArgs {
    #[command(flatten)]
    pub common: AuditArgs,
    /// Show only the last N records.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    #[arg(long, value_enum, default_value_t = DiagFormat::Text)]
    pub format: DiagFormat,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The configuration folder.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The target to import from.
    #[arg(long, value_name = "NAME")]
    pub target: String,
    /// Write the files under this folder instead of the configuration folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write only the snapshots of the contents of the pinned roles bound on the target
    /// (`role-contents/ROLE.yaml`), replacing them: to accept a reviewed change of a role.
    #[arg(long)]
    pub contents: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The folder to write the schemas to.
    #[arg(long, value_name = "DIR", default_value = "schemas")]
    pub out: PathBuf,
}

/// Process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Error = 1,
    Changes = 2,
    Denied = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error at the command line's edge: a message for the user and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit: Exit,
}

impl Failure {
    pub fn error(message: impl Into<String>) -> Self {
        Failure { message: message.into(), exit: Exit::Error }
    }
}

impl From<EngineError> for Failure {
    /// The error and every source it names that its message does not already hold; exit 3
    /// for a policy denial, 1 otherwise.
    fn from(e: EngineError) -> Self {
        let exit = if e.is_denied() { Exit::Denied } else { Exit::Error };
        Failure { message: crate::remote::http::error_chain(&e), exit }
    }
}

pub type CliResult = Result<Exit, Failure>;

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&cli.log_level).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // A usage error exits 1, like every other error: 2 means "changes present".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Error.into() } else { Exit::Success.into() };
        }
    };
    init_logging(&cli);
    let printer = Printer::new(cli.color);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            printer.err(&format!("error: cannot start the runtime: {e}\n"));
            return Exit::Error.into();
        }
    };
    // The clock and the retry policy are read once, here, for the whole command.
    let retry = match crate::remote::RetryPolicy::from_env() {
        Ok(r) => r,
        Err(e) => {
            printer.err(&format!("error: {e}\n"));
            return Exit::Error.into();
        }
    };
    let ctx = Context { clock: Clock::from_env(), retry };
    let result = runtime.block_on(run(cli.command, ctx, &printer));
    match result {
        Ok(exit) => exit.into(),
        Err(f) => {
            let label = crate::output::paint(printer.color_err, crate::output::styles::RED.bold(), "error");
            printer.err(&format!("{label}: {}\n", crate::model::escape::terminal_lines(&f.message)));
            f.exit.into()
        }
    }
}

/// What every command takes from the environment, read once when it starts.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// `KEYWARD_NOW`, or the system clock.
    pub clock: Clock,
    /// `KEYWARD_HTTP_RETRIES`, or the default policy.
    pub retry: crate::remote::RetryPolicy,
}

async fn run(command: Command, ctx: Context, printer: &Printer) -> CliResult {
    match command {
        Command::Validate(a) => validate::run(a, ctx.clock, printer),
        Command::Plan(a) => plan::run(a, ctx, printer).await,
        Command::Apply(a) => apply::run(a, ctx, printer).await,
        Command::Drift(a) => drift::run(a, ctx, printer).await,
        Command::Watch(a) => watch::run(a, ctx, printer).await,
        Command::Audit(a) => audit::run(a, ctx, printer).await,
        Command::State(a) => state::run(a, ctx, printer).await,
        Command::Schema(a) => schema::run(a, printer),
        Command::Import(a) => import::run(a, ctx, printer).await,
        Command::Explain(a) => evidence::explain(a, ctx, printer).await,
        Command::Report(a) => evidence::report(a, ctx, printer).await,
        Command::Codeowners(a) => governance::codeowners(a, ctx, printer),
        Command::Approvals(governance::ApprovalsCommand::Verify(a)) => governance::verify(a, ctx, printer),
        Command::Certify(c) => governance::certify(c, ctx, printer).await,
        Command::Elevate(a) => governance::elevate(a, ctx, printer).await,
    }
}
