//! `sigil-bench`: the load generator behind `scripts/bench.sh`.
//!
//! - `issue`: N join-token issuances over C keep-alive HTTPS connections;
//! - `renew`: a fleet of M agents, each renewing once over a new mTLS
//!   connection;
//! - `floor`: the crypto floor in-process (CSR verify + leaf sign);
//! - `target`: another CA's sign endpoint (cfssl), same report.
//!
//! Every load subcommand prints a human-readable report and one
//! machine-readable `RESULT key=value ...` line.
#![forbid(unsafe_code)]

mod floor;
mod net;
mod report;
mod seed;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hyper::body::Bytes;
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
use sigil_core::SpiffeId;
use sigil_core::wire::{Attestation, RenewRequest, Secret, SvidRequest, SvidResponse};
use sigil_verifier::{Credentials, Policy, SpiffeServerVerifier, TrustSource, client_config};

use crate::net::{Endpoint, Reply};
use crate::report::{CpuProbe, Outcome, Report};

#[derive(Debug, Parser)]
#[command(name = "sigil-bench", about = "Issuance load generator for Sigil")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyKind {
    P256,
    Ed25519,
}

#[derive(Debug, clap::Args)]
struct Load {
    /// Concurrent workers, one connection each
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Requests in all
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// The server's pid: report its CPU time per certificate from
    /// /proc/PID/stat
    #[arg(long)]
    server_pid: Option<u32>,
    /// Clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`)
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// POST /v1/svid with a join token, over keep-alive HTTPS connections
    Issue {
        #[command(flatten)]
        ca: CaArgs,
        #[command(flatten)]
        load: Load,
    },
    /// Obtain COUNT SVIDs, then renew each once over a new mTLS connection
    Renew {
        #[command(flatten)]
        ca: CaArgs,
        #[command(flatten)]
        load: Load,
    },
    /// The crypto floor: CSR verify + leaf sign in-process, no HTTP, no store
    Floor {
        /// Threads [default: all cores]
        #[arg(long)]
        threads: Option<usize>,
        /// Operations in all
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Agent key type in the CSRs
        #[arg(long, value_enum, default_value = "p256")]
        key: KeyKind,
        /// Sign with this data dir's issuing CA (default: a fresh P-256 CA)
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Add one full mTLS handshake (both ends) per operation: the floor
        /// of a renewal over a new connection
        #[arg(long)]
        handshake: bool,
    },
    /// Add certificates (some revoked, unexpired) to a data dir's store,
    /// directly by SQL; the CA must not be running
    Seed {
        #[arg(long)]
        data_dir: PathBuf,
        /// Certificates to add
        #[arg(long, default_value_t = 1_000_000)]
        certificates: u64,
        /// Of which revoked and unexpired
        #[arg(long, default_value_t = 100_000)]
        revoked: u64,
        /// Uniformly random serials, as Sigil drew them before serials
        /// carried their issuance time: a store upgraded from then
        #[arg(long)]
        random_serials: bool,
    },
    /// Time the CA's CRL regeneration (store query, signing, storing) on a
    /// data dir's store; the CA must not be running
    Crl {
        #[arg(long)]
        data_dir: PathBuf,
        /// Regenerations; the median is reported
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Drive another CA's sign endpoint (e.g. cfssl), counting 2xx answers
    Target {
        /// The sign endpoint, http:// or https://
        #[arg(long)]
        url: String,
        /// Request body; `{{csr}}` is replaced by the JSON-escaped CSR PEM
        #[arg(long)]
        body_template: PathBuf,
        /// PEM roots for an https:// URL
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Agent key type in the CSRs
        #[arg(long, value_enum, default_value = "p256")]
        key: KeyKind,
        #[command(flatten)]
        load: Load,
    },
}

#[derive(Debug, clap::Args)]
struct CaArgs {
    /// The CA, https://host:port
    #[arg(long)]
    ca: String,
    /// The CA's trust bundle (DATA_DIR/bundle.pem)
    #[arg(long)]
    bundle: PathBuf,
    /// A join token with enough uses for every request
    #[arg(long)]
    token: String,
    /// The SPIFFE ID the token grants; every answer must name it
    #[arg(long)]
    spiffe_id: String,
    /// Agent key type in the CSRs
    #[arg(long, value_enum, default_value = "p256")]
    key: KeyKind,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Floor {
            threads,
            count,
            key,
            data_dir,
            handshake,
        } => floor::run(threads, count, key, data_dir.as_deref(), handshake),
        Command::Seed {
            data_dir,
            certificates,
            revoked,
            random_serials,
        } => seed::seed(&data_dir, certificates, revoked, random_serials),
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_async(command)),
    }
}

async fn run_async(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Crl { data_dir, runs } => seed::crl(&data_dir, runs).await?,
        Command::Issue { ca, load } => {
            let bench = CaBench::new(&ca)?;
            let csrs = generate_csrs(load.count, ca.key)?;
            let bodies = bench.issue_bodies(&csrs)?;
            let (report, _) = bench.issue(bodies, &load).await?;
            report.print("issue");
        }
        Command::Renew { ca, load } => {
            let bench = CaBench::new(&ca)?;
            let csrs = generate_csrs(load.count, ca.key)?;
            let bodies = bench.issue_bodies(&csrs)?;
            eprintln!("renew: obtaining {} SVIDs first", load.count);
            let (setup, svids) = bench.issue(bodies, &load).await?;
            let setup_errors = setup.errors;
            setup.print("renew-setup");
            if svids.iter().any(Option::is_none) {
                bail!("renew: {setup_errors} setup issuances failed");
            }
            let fresh = generate_csrs(load.count, ca.key)?;
            let mut agents = Vec::with_capacity(load.count);
            for ((svid, (key, _)), (_, csr)) in svids.into_iter().zip(&csrs).zip(&fresh) {
                let Some(svid) = svid else { continue };
                let credentials =
                    Credentials::from_pem(svid.cert_chain_pem.as_bytes(), key.as_bytes())
                        .context("agent credentials")?;
                let tls = bench.tls(Some(credentials))?;
                let body = serde_json::to_vec(&RenewRequest {
                    csr: csr.clone(),
                    ttl_seconds: None,
                })?;
                agents.push((tls, Bytes::from(body)));
            }
            let report = bench.renew(agents, &load).await?;
            report.print("renew");
        }
        Command::Target {
            url,
            body_template,
            bundle,
            key,
            load,
        } => {
            let template = std::fs::read_to_string(&body_template)
                .with_context(|| format!("reading {}", body_template.display()))?;
            let endpoint = Endpoint::parse(&url)?;
            let tls = match (&endpoint.tls, bundle) {
                (true, Some(bundle)) => Some(net::webpki_config(&bundle)?),
                (true, None) => bail!("an https:// target needs --bundle"),
                (false, _) => None,
            };
            let csrs = generate_csrs(load.count, key)?;
            let mut bodies = Vec::with_capacity(csrs.len());
            for (_, csr) in &csrs {
                let escaped = serde_json::to_string(csr)?;
                let inner = escaped
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(&escaped);
                bodies.push(Bytes::from(template.replace("{{csr}}", inner)));
            }
            let report = keep_alive_load(&endpoint, tls, bodies, &load, |reply| {
                if (200..300).contains(&reply.status) {
                    Ok(())
                } else {
                    Err(format!("status {}", reply.status))
                }
            })
            .await?
            .0;
            report.print("target");
        }
        Command::Floor { .. } | Command::Seed { .. } => unreachable!("run synchronously"),
    }
    Ok(())
}

/// Key pairs (PEM) and CSRs (PEM), made before any timing starts.
fn generate_csrs(count: usize, kind: KeyKind) -> anyhow::Result<Vec<(String, String)>> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let key = match kind {
            KeyKind::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
            KeyKind::Ed25519 => KeyPair::generate_for(&PKCS_ED25519)?,
        };
        let csr = CertificateParams::default()
            .serialize_request(&key)?
            .pem()?;
        out.push((key.serialize_pem(), csr));
    }
    eprintln!(
        "generated {count} CSRs in {:.2}s (not measured)",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// A Sigil CA under test.
struct CaBench {
    endpoint: Endpoint,
    source: TrustSource,
    expected: SpiffeId,
    token: String,
}

impl CaBench {
    fn new(args: &CaArgs) -> anyhow::Result<Self> {
        let bundle = std::fs::read(&args.bundle)
            .with_context(|| format!("reading {}", args.bundle.display()))?;
        let source = TrustSource::from_pem(&bundle)?;
        let endpoint = Endpoint::parse(&args.ca)?;
        if !endpoint.tls {
            bail!("the CA URL must be https://");
        }
        let expected: SpiffeId = args
            .spiffe_id
            .parse()
            .map_err(|e| anyhow::anyhow!("--spiffe-id: {e}"))?;
        Ok(Self {
            endpoint,
            source,
            expected,
            token: args.token.clone(),
        })
    }

    /// As sigil's own client: the server must present
    /// `spiffe://<td>/sigil/server` chained to the bundle.
    fn tls(&self, credentials: Option<Credentials>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let server_id = self
            .source
            .trust_domain()
            .spiffe_id("/sigil/server")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let verifier = SpiffeServerVerifier::builder(
            self.source.clone(),
            Policy::deny_all().allow_id(server_id),
        )
        .allow_missing_crls()
        .server_verifier();
        Ok(Arc::new(client_config(verifier, credentials)?))
    }

    fn issue_bodies(&self, csrs: &[(String, String)]) -> anyhow::Result<Vec<Bytes>> {
        csrs.iter()
            .map(|(_, csr)| {
                let request = SvidRequest {
                    csr: csr.clone(),
                    attestation: Attestation::JoinToken {
                        token: Secret::new(self.token.clone()),
                    },
                    ttl_seconds: None,
                };
                Ok(Bytes::from(serde_json::to_vec(&request)?))
            })
            .collect()
    }

    fn check(&self, reply: &Reply) -> Result<SvidResponse, String> {
        if reply.status != 200 {
            return Err(format!(
                "status {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        let svid: SvidResponse =
            serde_json::from_slice(&reply.body).map_err(|e| format!("not an SvidResponse: {e}"))?;
        if svid.spiffe_id != self.expected {
            return Err(format!("wrong SPIFFE ID {}", svid.spiffe_id));
        }
        Ok(svid)
    }

    async fn issue(
        &self,
        bodies: Vec<Bytes>,
        load: &Load,
    ) -> anyhow::Result<(Report, Vec<Option<SvidResponse>>)> {
        let mut endpoint = self.endpoint.clone();
        endpoint.path = "/v1/svid".to_owned();
        keep_alive_load(&endpoint, Some(self.tls(None)?), bodies, load, |reply| {
            self.check(reply)
        })
        .await
    }

    /// Each agent: a new mTLS connection, one POST /v1/renew.
    async fn renew(
        &self,
        agents: Vec<(Arc<rustls::ClientConfig>, Bytes)>,
        load: &Load,
    ) -> anyhow::Result<Report> {
        let mut endpoint = self.endpoint.clone();
        endpoint.path = "/v1/renew".to_owned();
        let agents = Arc::new(agents);
        let next = Arc::new(AtomicUsize::new(0));
        let cpu = CpuProbe::start(load.server_pid, load.clk_tck)?;
        let own = CpuProbe::start(Some(std::process::id()), load.clk_tck)?;
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..load.concurrency.max(1) {
            let agents = Arc::clone(&agents);
            let next = Arc::clone(&next);
            let endpoint = endpoint.clone();
            workers.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((tls, body)) = agents.get(i) else {
                        break;
                    };
                    let t0 = Instant::now();
                    let reply = match endpoint.connect(Some(Arc::clone(tls))).await {
                        Ok(mut conn) => conn.post(&endpoint, body.clone()).await,
                        Err(e) => Err(e),
                    };
                    outcomes.push((i, t0.elapsed(), reply));
                }
                outcomes
            }));
        }
        let mut outcomes = Vec::new();
        for worker in workers {
            outcomes.extend(worker.await?);
        }
        let elapsed = started.elapsed();
        let cpu_ms = cpu.finish()?;
        let mut report = Report::new(load.concurrency, elapsed, cpu_ms);
        report.set_client_cpu(own.finish()?);
        for (_, latency, reply) in outcomes {
            let result = match reply {
                Ok(reply) => self.check(&reply).map(|_| ()),
                Err(e) => Err(format!("{e:#}")),
            };
            report.add(Outcome { latency, result });
        }
        Ok(report)
    }
}

/// C workers, one keep-alive connection each (re-opened after a failure),
/// sending `bodies` in order. Returns the report and each request's checked
/// answer.
async fn keep_alive_load<T, F>(
    endpoint: &Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    bodies: Vec<Bytes>,
    load: &Load,
    check: F,
) -> anyhow::Result<(Report, Vec<Option<T>>)>
where
    F: Fn(&Reply) -> Result<T, String>,
{
    let count = bodies.len();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    // Connect every worker before the clock starts.
    let mut conns = Vec::new();
    for _ in 0..load.concurrency.max(1) {
        conns.push(endpoint.connect(tls.clone()).await?);
    }
    let cpu = CpuProbe::start(load.server_pid, load.clk_tck)?;
    let own = CpuProbe::start(Some(std::process::id()), load.clk_tck)?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for mut conn in conns {
        let bodies = Arc::clone(&bodies);
        let next = Arc::clone(&next);
        let endpoint = endpoint.clone();
        let tls = tls.clone();
        workers.push(tokio::spawn(async move {
            let mut outcomes: Vec<(usize, Duration, anyhow::Result<Reply>)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t0 = Instant::now();
                let reply = conn.post(&endpoint, body.clone()).await;
                if reply.is_err() || !conn.is_ready() {
                    // Counted as an error; carry on with a new connection.
                    if let Ok(fresh) = endpoint.connect(tls.clone()).await {
                        conn = fresh;
                    }
                }
                outcomes.push((i, t0.elapsed(), reply));
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await?);
    }
    let elapsed = started.elapsed();
    let cpu_ms = cpu.finish()?;
    let mut report = Report::new(load.concurrency, elapsed, cpu_ms);
    report.set_client_cpu(own.finish()?);
    let mut answers: Vec<Option<T>> = (0..count).map(|_| None).collect();
    for (i, latency, reply) in outcomes {
        let result = match reply {
            Ok(reply) => check(&reply),
            Err(e) => Err(format!("{e:#}")),
        };
        let result = match result {
            Ok(answer) => {
                if let Some(slot) = answers.get_mut(i) {
                    *slot = Some(answer);
                }
                Ok(())
            }
            Err(e) => Err(e),
        };
        report.add(Outcome { latency, result });
    }
    Ok((report, answers))
}
