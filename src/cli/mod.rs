//! The `sigil` command line.

mod admin_connection;
mod agent;
mod audit;
mod ca;
mod demo;
mod init;
mod local;
mod revocation;
mod serve;
mod status;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::ca::Passphrase;
use crate::datadir::DataDir;

/// Sigil: short-lived, attested SPIFFE identities for AI agents and other
/// workloads.
#[derive(Debug, Parser)]
#[command(name = "sigil", version, about)]
struct Cli {
    /// The data directory [default: ./sigil-data, or ./sigil-dev with `serve --dev`]
    #[arg(long, global = true, env = "SIGIL_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// A file whose first line is the passphrase of the CA keys: `init`
    /// encrypts them with it, `serve` and `admin credential` decrypt them.
    /// Without it, the SIGIL_CA_PASSPHRASE environment variable is read
    #[arg(long, global = true, env = "SIGIL_CA_PASSPHRASE_FILE")]
    ca_passphrase_file: Option<PathBuf>,

    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object per line, with the request's ID) for log collectors
    #[arg(long, global = true, env = "SIGIL_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new CA: root, issuing CA, store, trust bundle and the first
    /// admin credential. Prints the root fingerprint.
    Init(init::InitArgs),
    /// Serve the CA over HTTPS.
    Serve(serve::ServeArgs),
    /// Show the whole story in under a second, on 127.0.0.1 with a throwaway
    /// CA: an agent gets its SVID, an echo server accepts it, an admin
    /// revokes it, and the next handshake and its renewal are refused.
    Demo(demo::DemoArgs),
    /// Get this workload's SVID from a CA and keep it current in files
    /// (svid.pem, svid.key, bundle.pem, crls.pem); optionally run a hook or
    /// supervise a program after each rotation.
    Agent(agent::AgentArgs),
    /// Print the root fingerprint (sha256:<hex>) that agents pin: the
    /// active root's, the new one once a root rotation has taken over.
    Fingerprint,
    /// The CA itself: rotate its issuing CA.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Local admin operations.
    #[command(subcommand)]
    Admin(local::AdminCommand),
    /// Join tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Revoke a certificate, or every certificate of an identity (and ban
    /// it). Prints the revoked serials.
    Revoke(revocation::RevokeArgs),
    /// Lift the ban on an identity.
    Unban(revocation::UnbanArgs),
    /// Certificates the CA issued.
    #[command(subcommand)]
    Certs(revocation::CertsCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The CA at a glance: health, issuers and their expiry, certificate
    /// counts, CRL ages, the last audit record.
    Status(status::StatusArgs),
}

impl Cli {
    fn data_dir(&self) -> DataDir {
        DataDir::new(
            self.data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./sigil-data")),
        )
    }
}

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // The request span's fields (its ID) go on every line it covers.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = cli.data_dir();
    // Read only by the commands that use the CA keys.
    let passphrase = || Passphrase::from_file_or_env(cli.ca_passphrase_file.as_deref());
    match cli.command {
        Command::Init(args) => init::run(&dir, args, passphrase()?).await,
        Command::Serve(args) => serve::run(cli.data_dir, args, passphrase()?).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Agent(args) => return agent::run(args).await,
        Command::Fingerprint => local::fingerprint(&dir),
        Command::Ca(command) => ca::run(&dir, command, passphrase()?).await,
        Command::Admin(command) => local::run_admin(&dir, command, passphrase()?).await,
        Command::Token(command) => token::run_token(&dir, command).await,
        Command::Revoke(args) => revocation::revoke(&dir, args).await,
        Command::Unban(args) => revocation::unban(&dir, args).await,
        Command::Certs(command) => revocation::certs(&dir, command).await,
        Command::Audit(command) => audit::run(&dir, command).await,
        Command::Status(args) => status::run(&dir, args).await,
    }
    .map(|()| ExitCode::SUCCESS)
}
