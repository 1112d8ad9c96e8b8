//! The command line: clap arguments, resolved into one value per command, and exit codes.
//!
//! Exit codes are the same everywhere: 0 success, 1 error, 2 changes or drift present (where
//! asked for), 3 blocked by a policy finding of severity deny.

mod apply;
mod audit;
mod plan;
mod policy;
mod schema;
mod session;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::{ColorChoice, Printer};

/// keyward reconciles identity and access with a configuration kept in git.
#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version,
    about = "Declarative reconciler for identity and access: plan, apply and audit access kept in git",
    long_about = "keyward compares the desired state of access, kept as YAML in a git repository, with live \
directories and ERPs, shows a plan, and applies it safely.\n\n\
Exit codes: 0 success, 1 error, 2 changes present (with --detailed-exitcode), 3 blocked by a policy finding of severity deny.",
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
    /// Check and read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write the JSON Schemas of the configuration files.
    Schema(SchemaArgs),
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
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exit 1 when it was tampered with.
    Verify(AuditArgs),
    /// List the audit log's records.
    Show(AuditShowArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The configuration folder (its keyward.yaml says where the log is).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Read this log instead of the configured one.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
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

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::error(e.to_string())
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
    let cli = Cli::parse();
    init_logging(&cli);
    let printer = Printer::new(cli.color);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            printer.err(&format!("error: cannot start the runtime: {e}\n"));
            return Exit::Error.into();
        }
    };
    let result = runtime.block_on(run(cli.command, &printer));
    match result {
        Ok(exit) => exit.into(),
        Err(f) => {
            let label = crate::output::paint(printer.color_err, crate::output::styles::RED.bold(), "error");
            printer.err(&format!("{label}: {}\n", f.message));
            f.exit.into()
        }
    }
}

async fn run(command: Command, printer: &Printer) -> CliResult {
    match command {
        Command::Validate(a) => validate::run(a, printer),
        Command::Plan(a) => plan::run(a, printer).await,
        Command::Apply(a) => apply::run(a, printer).await,
        Command::Audit(a) => audit::run(a, printer),
        Command::Schema(a) => schema::run(a, printer),
    }
}
