//! `sigil agent`: gets this workload's SVID from the CA and keeps it current
//! in files, for programs that read certificates from disk; optionally
//! starts and supervises such a program.

mod supervise;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::builder::NonEmptyStringValueParser;
use clap::{ArgGroup, Args, ValueEnum};
use nix::sys::signal::Signal;
use sigil_agent::{Agent, Event, KeyType, SvidFiles};
use sigil_core::wire::Secret;

use crate::duration::HumanDuration;

/// The environment variable that may hold the join token.
const TOKEN_ENV: &str = "SIGIL_JOIN_TOKEN";
/// The environment variable that may name the JWT file.
const JWT_FILE_ENV: &str = "SIGIL_JWT_FILE";
/// The environment variable that may name the CA's JWT attestor.
const ATTESTOR_ENV: &str = "SIGIL_ATTESTOR";

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("trust").required(true).args(["fingerprint", "bundle"])),
    after_long_help = "\
Files in --out DIR, each replaced atomically:
  svid.pem     the SVID and its chain (leaf first)
  svid.key     its private key (mode 0600), new on each rotation
  bundle.pem   the trust bundle, kept current
  crls.pem     the CA's CRLs, kept current

A join token is needed only when DIR holds no valid SVID: a restart renews
the SVID on disk over mTLS. Each event is logged as one line on stderr.
Exit status: 0 after --once; the program's status when one is supervised
(128+N if it died of signal N); 1 when the SVID cannot be obtained or
renewal stops for good (revoked, banned or expired).

Instead of a join token, --jwt-file PATH --attestor NAME attests with a JWT
the platform writes to a file (a Kubernetes projected service-account token,
a GitHub Actions OIDC token), judged by the CA's attestor NAME. The file is
re-read at each attestation, because platforms rotate these tokens. Once the
agent holds an SVID it renews over mTLS instead of re-attesting: Kubernetes
reuses a pod's token until it rotates.

Examples:
  # Init container: fetch once and exit.
  sigil agent --ca https://ca.internal:8443 --fingerprint sha256:... \\
      --token-file /run/secrets/join-token --out /var/run/identity --once

  # Kubernetes: attest with the pod's projected service-account token.
  sigil agent --ca https://ca.internal:8443 --fingerprint sha256:... \\
      --jwt-file /var/run/secrets/tokens/sigil --attestor k8s \\
      --out /var/run/identity

  # Sidecar: keep renewing, reload nginx after each rotation.
  sigil agent --ca https://ca.internal:8443 --bundle bundle.pem \\
      --out /var/run/identity --exec 'nginx -s reload'

  # Supervisor: run the agent program, send it SIGHUP after each rotation.
  SIGIL_JOIN_TOKEN=... sigil agent --ca https://ca.internal:8443 \\
      --fingerprint sha256:... --out ./identity -- python agent.py"
)]
pub(super) struct AgentArgs {
    /// The CA's URL (https://host:port)
    #[arg(long = "ca", value_name = "URL")]
    ca_url: String,
    /// Trust only the CA root with this fingerprint, as `sigil init` and
    /// `sigil fingerprint` print it
    #[arg(long, value_name = "sha256:HEX")]
    fingerprint: Option<String>,
    /// Trust the roots in this bundle file (PEM) instead of a fingerprint
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// A join token from `sigil token create`; needed only when DIR holds no
    /// valid SVID. Prefer --token-file or the environment: command lines
    /// are visible to other users
    #[arg(long, value_name = "TOKEN", env = TOKEN_ENV, hide_env_values = true)]
    token: Option<TokenArg>,
    /// Read the join token from this file (surrounding whitespace is
    /// ignored); takes precedence over --token and the environment
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Attest with the JWT in this file (a Kubernetes projected
    /// service-account token, a CI OIDC token) for the CA's attestor
    /// --attestor, instead of a join token. The file is re-read at each
    /// attestation, as platforms rotate these tokens; once the agent holds
    /// an SVID it renews over mTLS instead of re-attesting (Kubernetes
    /// reuses a pod's token until it rotates)
    #[arg(
        long,
        value_name = "PATH",
        env = JWT_FILE_ENV,
        requires = "attestor",
        conflicts_with_all = ["token", "token_file"]
    )]
    jwt_file: Option<PathBuf>,
    /// The name of the CA's JWT attestor that judges the token in --jwt-file
    /// (such as k8s or github)
    #[arg(
        long,
        value_name = "NAME",
        env = ATTESTOR_ENV,
        requires = "jwt_file",
        value_parser = NonEmptyStringValueParser::new()
    )]
    attestor: Option<String>,
    /// Where to keep svid.pem, svid.key, bundle.pem and crls.pem (created
    /// if missing)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Get an SVID (or renew the one in DIR), write the files and exit, as
    /// an init container does
    #[arg(long, conflicts_with_all = ["exec", "command"])]
    once: bool,
    /// The SVID lifetime to ask for, such as 1h [default: the CA's]
    #[arg(long, value_name = "DURATION")]
    ttl: Option<HumanDuration>,
    /// The algorithm of the SVID's keys
    #[arg(long, value_enum, default_value_t = AgentKeyType::P256)]
    key_type: AgentKeyType,
    /// Run this shell command (with `sh -c`) after each rotation, such as
    /// 'nginx -s reload'
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// The signal sent to COMMAND after each rotation (HUP, USR1, …)
    #[arg(long, value_name = "SIGNAL", default_value = "HUP", value_parser = parse_signal, requires = "command")]
    signal: Signal,
    /// A program to start once the files are written, and to supervise:
    /// it gets --signal after each rotation and SIGTERM/SIGINT when sigil
    /// agent gets them; sigil agent exits with its status
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// The join token as given on the command line or in the environment;
/// `Debug` never shows it.
#[derive(Clone)]
struct TokenArg(String);

impl std::str::FromStr for TokenArg {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl std::fmt::Debug for TokenArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenArg(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AgentKeyType {
    /// ECDSA P-256
    P256,
    /// Ed25519
    Ed25519,
}

impl From<AgentKeyType> for KeyType {
    fn from(key_type: AgentKeyType) -> Self {
        match key_type {
            AgentKeyType::P256 => Self::P256,
            AgentKeyType::Ed25519 => Self::Ed25519,
        }
    }
}

/// A signal by name (`HUP`, `SIGHUP`, `usr1`) or number.
fn parse_signal(text: &str) -> Result<Signal, String> {
    let upper = text.trim().to_ascii_uppercase();
    let parsed = match upper.parse::<i32>() {
        Ok(number) => Signal::try_from(number).ok(),
        Err(_) if upper.starts_with("SIG") => upper.parse().ok(),
        Err(_) => format!("SIG{upper}").parse().ok(),
    };
    parsed.ok_or_else(|| format!("'{text}' is not a signal; use a name such as HUP, USR1 or TERM"))
}

/// Writes one line about the agent to stderr.
fn log(line: impl std::fmt::Display) {
    eprintln!("sigil agent: {line}");
}

pub(super) async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let mut builder = Agent::builder(&args.ca_url)
        .files(SvidFiles::new(&args.out))
        .key_type(args.key_type.into());
    builder = match (&args.fingerprint, &args.bundle) {
        (Some(fingerprint), _) => builder.fingerprint(fingerprint),
        (None, Some(path)) => builder.bundle_pem(
            &std::fs::read(path)
                .with_context(|| format!("reading the trust bundle {}", path.display()))?,
        ),
        (None, None) => bail!("give the CA's root with --fingerprint or --bundle"),
    };
    if let Some(token) = join_token(&args)? {
        builder = builder.join_token(token.expose());
    }
    // clap has made sure that both are given, or neither.
    if let (Some(path), Some(attestor)) = (&args.jwt_file, &args.attestor) {
        builder = builder.jwt_file(attestor, path);
    }
    if let Some(ttl) = args.ttl {
        builder = builder.ttl(ttl.get());
    }
    let mut events = builder.events();
    let agent = builder
        .start()
        .await
        .map_err(|error| explain(error, &args))?;
    // The event of the first SVID (issued, renewed on restart, or a renewal
    // that failed for now while the SVID on disk is still valid).
    while let Ok(event) = events.try_recv() {
        log(&event);
    }
    if args.once {
        return Ok(ExitCode::SUCCESS);
    }
    supervise::run(
        agent,
        events,
        supervise::Plan {
            hook: args.exec,
            command: args.command,
            signal: args.signal,
            dir: args.out,
        },
    )
    .await
}

/// The join token from --token-file, --token or the environment, trimmed;
/// `None` if there is none.
fn join_token(args: &AgentArgs) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the join token from {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            bail!("the join token file {} is empty", path.display());
        }
        return Ok(Some(Secret::new(token)));
    }
    Ok(args
        .token
        .as_ref()
        .map(|TokenArg(token)| token.trim())
        .filter(|token| !token.is_empty())
        .map(Secret::new))
}

/// Turns the library's error into what an operator should read: what
/// failed, and what to do about it.
fn explain(error: sigil_agent::Error, args: &AgentArgs) -> anyhow::Error {
    let dir = args.out.display();
    let jwt = args.jwt_file.as_ref().zip(args.attestor.as_ref());
    match error {
        sigil_agent::Error::Trust(sigil_verifier::Error::Fingerprint(message)) => anyhow!(
            "--fingerprint: {message}; nothing was written. Give the root fingerprint that \
             `sigil init` or `sigil fingerprint` printed for this CA"
        ),
        sigil_agent::Error::Trust(error) => {
            anyhow!(
                "cannot establish trust in the CA at {}: {error}",
                args.ca_url
            )
        }
        sigil_agent::Error::Refused {
            status,
            code,
            message,
            ..
        } if code == "invalid_attestation" => match jwt {
            Some((path, attestor)) => anyhow!(
                "the CA's attestor {attestor} refused the JWT in {} ({status} {code}): \
                 {message}. Check that the token has not expired and that its issuer, \
                 audience and subject are what the attestor {attestor} expects",
                path.display()
            ),
            None => anyhow!(
                "the CA refused the join token ({status} {code}): {message}. A join token is \
                 single-use and expires: create a new one with `sigil token create --spiffe-id <id>`"
            ),
        },
        sigil_agent::Error::Revoked { code, message } => anyhow!(
            "the identity in {dir} is {code} ({message}); it can no longer be renewed. \
             An admin must lift a ban (`sigil unban`) if there is one and create a new join \
             token; then remove {} and {} and start again with the token",
            args.out.join(sigil_agent::SVID_FILE).display(),
            args.out.join(sigil_agent::KEY_FILE).display(),
        ),
        // An empty or oversized JWT file.
        sigil_agent::Error::NoIdentity(message) if jwt.is_some() => anyhow!(message),
        sigil_agent::Error::NoIdentity(message) => anyhow!(
            "{message} (or with --token-file FILE, or in the {TOKEN_ENV} environment variable; \
             or attest with --jwt-file PATH --attestor NAME)"
        ),
        sigil_agent::Error::Io { path, source }
            if jwt.is_some_and(|(jwt_file, _)| jwt_file.display().to_string() == path) =>
        {
            anyhow!("cannot read the JWT file {path} (--jwt-file): {source}")
        }
        other => anyhow!(other),
    }
}

/// The error for an event that stopped renewal for good.
fn stopped(event: &Event, dir: &Path) -> anyhow::Error {
    match event {
        Event::Expired { .. } => anyhow!(
            "{event}; the SVID in {} has expired: create a join token with `sigil token create` \
             and restart with --token",
            dir.display()
        ),
        _ => anyhow!(
            "{event}; the identity in {} can no longer be renewed: an admin must lift a ban \
             (`sigil unban`) if there is one and create a new join token; then remove the files \
             in {} and start again with the token",
            dir.display(),
            dir.display()
        ),
    }
}
