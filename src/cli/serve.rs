//! `sigil serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::local::{DEFAULT_ADMIN_TTL, write_admin_credential};
use crate::api::RateLimit;
use crate::ca::CaFiles;
use crate::csr::KeyPolicy;
use crate::datadir::DataDir;
use crate::dev;
use crate::duration::HumanDuration;
use crate::issuance::TtlPolicy;
use crate::server::{ConnectionLimits, ServeOptions, serve};

/// Bounds of `--crl-ttl`.
const MIN_CRL_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const MAX_CRL_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Where clients reach the CA; leaves name <URL>/v1/crl/<issuer> as CRL
    /// distribution point [default: https://localhost:<port>]
    #[arg(long)]
    public_url: Option<String>,
    /// SVID lifetime when a request names none
    #[arg(long, default_value = "1h")]
    default_ttl: HumanDuration,
    /// Shortest SVID lifetime a request may ask for (at least 1s)
    #[arg(long, default_value = "1m")]
    min_ttl: HumanDuration,
    /// Longest SVID lifetime a request may ask for
    #[arg(long, default_value = "24h")]
    max_ttl: HumanDuration,
    /// How long the issuing CA's CRLs are valid (their nextUpdate); they
    /// are re-signed after half of it
    #[arg(long, default_value = "1h")]
    crl_ttl: HumanDuration,
    /// Connections served at once
    #[arg(long, default_value_t = ConnectionLimits::default().total)]
    max_connections: usize,
    /// Connections from one IP address at once
    #[arg(long, default_value_t = ConnectionLimits::default().per_ip)]
    max_connections_per_ip: usize,
    /// Requests per second one address may make to the routes that cost
    /// work (issuance, renewal, admin)
    #[arg(long, default_value_t = RateLimit::default().per_second)]
    rate_limit: f64,
    /// Requests one idle address may make at once (a fleet restarting
    /// behind one NAT)
    #[arg(long, default_value_t = RateLimit::default().burst)]
    rate_burst: f64,
    /// Accept RSA agent keys (2048 to 4096 bits)
    #[arg(long)]
    allow_rsa: bool,
    /// Run on the public development trust domain in certs-dev/
    #[arg(long)]
    dev: bool,
}

pub(super) async fn run(data_dir: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let ttl = TtlPolicy {
        default: args.default_ttl.get(),
        min: args.min_ttl.get(),
        max: args.max_ttl.get(),
    }
    .validate()
    .map_err(anyhow::Error::msg)?;
    let crl_validity = args.crl_ttl.get();
    if !(MIN_CRL_TTL..=MAX_CRL_TTL).contains(&crl_validity) {
        bail!("--crl-ttl must lie between 1m and 7d");
    }
    if args.max_connections == 0 || args.max_connections_per_ip == 0 {
        bail!("--max-connections and --max-connections-per-ip must be at least 1");
    }
    let rate_ok = args.rate_limit > 0.0
        && args.rate_limit.is_finite()
        && args.rate_burst >= 1.0
        && args.rate_burst.is_finite();
    if !rate_ok {
        bail!("--rate-limit must be above 0 and --rate-burst at least 1");
    }
    let options = ServeOptions {
        rate_limit: RateLimit {
            per_second: args.rate_limit,
            burst: args.rate_burst,
        },
        crl_validity,
        connections: ConnectionLimits {
            total: args.max_connections,
            per_ip: args.max_connections_per_ip,
        },
        listen: args.listen,
        public_url: args.public_url,
        ttl,
        keys: KeyPolicy {
            allow_rsa: args.allow_rsa,
        },
    };

    if args.dev {
        let dir = DataDir::new(data_dir.unwrap_or_else(|| PathBuf::from("./sigil-dev")));
        dev::prepare(&dir)?;
        write_admin_credential(&dir, "dev", DEFAULT_ADMIN_TTL, &dir.admin_dir()).await?;
        let files = CaFiles::read(&dir)?;
        return serve(&dir, &files, options, |addr| dev_banner(&dir, addr)).await;
    }

    let dir = DataDir::new(data_dir.unwrap_or_else(|| PathBuf::from("./sigil-data")));
    let files = CaFiles::read(&dir)?;
    if dev::is_dev_root(&files) {
        bail!(
            "{} holds the public development CA from certs-dev/, whose keys anyone can read; \
             run `sigil serve --dev` for development, or `sigil init` a real CA",
            dir.path().display()
        );
    }
    serve(&dir, &files, options, |_| String::new()).await
}

/// What `--dev` prints once the server listens: how to get a token and an
/// SVID, ready to paste.
fn dev_banner(dir: &DataDir, addr: SocketAddr) -> String {
    let d = dir.path().display();
    let td = dev::TRUST_DOMAIN;
    let port = addr.port();
    [
        String::new(),
        format!("DEVELOPMENT MODE: trust domain {td}, whose keys are public (certs-dev/). Never use it in production."),
        String::new(),
        format!("Get a join token (as the admin credential in {d}/admin/):"),
        format!("  TOKEN=$(sigil token create --data-dir {d} --spiffe-id spiffe://{td}/agents/demo)"),
        String::new(),
        "Trade it and a CSR for an SVID (needs openssl, jq and curl):".to_owned(),
        "  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj / -keyout agent.key -out agent.csr".to_owned(),
        r#"  jq -n --rawfile csr agent.csr --arg token "$TOKEN" '{csr: $csr, attestation: {type: "join_token", token: $token}}' \"#.to_owned(),
        format!("    | curl -sS --cacert {d}/bundle.pem -H 'content-type: application/json' --data-binary @- \\"),
        format!("      https://localhost:{port}/v1/svid | jq -r .cert_chain_pem > agent.pem"),
        "  openssl x509 -in agent.pem -noout -ext subjectAltName".to_owned(),
    ]
    .join("\n")
}
