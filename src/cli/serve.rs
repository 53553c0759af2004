//! `sigil serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use sigil_core::TrustDomain;

use super::local::{DEFAULT_ADMIN_TTL, write_admin_credential};
use crate::api::PolicyUpdate;
use crate::attestation::jwt::JwtAttestors;
use crate::ca::{CaFiles, Passphrase};
use crate::config::{LoadedConfig, Overrides, Settings};
use crate::datadir::DataDir;
use crate::dev;
use crate::duration::HumanDuration;
use crate::namespace::Namespace;
use crate::server::{Hangups, Reloader, ServeOptions, serve};

// The defaults are applied by `crate::config::Settings::resolve`, after the
// configuration file, so that a flag left out does not hide the file's
// value; the `[default: …]` texts below repeat them for `--help` (a test
// keeps them in step).
#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Configuration file (see docs/sigil.toml); flags win over it
    /// [default: DATA_DIR/sigil.toml, if it exists]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8443]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where clients reach the CA; leaves name <URL>/v1/crl/<issuer> as CRL
    /// distribution point [default: https://localhost:<port>]
    #[arg(long)]
    public_url: Option<String>,
    /// SVID lifetime when a request names none [default: 1h]
    #[arg(long)]
    default_ttl: Option<HumanDuration>,
    /// Shortest SVID lifetime a request may ask for (at least 1s) [default: 1m]
    #[arg(long)]
    min_ttl: Option<HumanDuration>,
    /// Longest SVID lifetime a request may ask for (at most 30d) [default: 24h]
    #[arg(long)]
    max_ttl: Option<HumanDuration>,
    /// How long the issuing CA's CRLs are valid (their nextUpdate), 1m to 7d
    /// [default: 1h]
    #[arg(long)]
    crl_ttl: Option<HumanDuration>,
    /// How old the issuing CA's CRL gets before it is re-signed; below
    /// --crl-ttl [default: half of --crl-ttl]
    #[arg(long)]
    crl_resign: Option<HumanDuration>,
    /// How long the issuing CAs the server makes when it rotates live,
    /// 1d to 3650d [default: 365d]
    #[arg(long)]
    issuing_ttl: Option<HumanDuration>,
    /// How long before the issuing CA expires the server rotates it; at
    /// least twice --max-ttl, below --issuing-ttl [default: 30d]
    #[arg(long)]
    issuing_rotate_before: Option<HumanDuration>,
    /// How long a root the server adds (when its root has too little
    /// life left) waits in the bundle before it takes over, 0s to 365d
    /// [default: 1d]
    #[arg(long)]
    root_activation_delay: Option<HumanDuration>,
    /// Connections served at once [default: 4096]
    #[arg(long)]
    max_connections: Option<usize>,
    /// Connections from one IP address at once [default: 256]
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Attestations and admin calls per second one address may make
    /// [default: 200]
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Attestations and admin calls one idle address may make at once (a
    /// fleet restarting behind one NAT) [default: 2000]
    #[arg(long)]
    rate_burst: Option<f64>,
    /// Renewals per second one address may make [default: 200]
    #[arg(long)]
    renewal_limit: Option<f64>,
    /// Renewals one idle address may make at once (a fleet renewing after
    /// the CA was down) [default: 2000]
    #[arg(long)]
    renewal_burst: Option<f64>,
    /// Failed attestations per second one address may make before it gets
    /// 429 on every attestation [default: 2]
    #[arg(long)]
    failed_attestation_limit: Option<f64>,
    /// Failed attestations one address may make at once [default: 20]
    #[arg(long)]
    failed_attestation_burst: Option<f64>,
    /// Accept RSA agent keys (2048 to 4096 bits)
    #[arg(long)]
    allow_rsa: bool,
    /// Run on the public development trust domain in certs-dev/
    #[arg(long)]
    dev: bool,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            public_url: self.public_url.clone(),
            default_ttl: self.default_ttl,
            min_ttl: self.min_ttl,
            max_ttl: self.max_ttl,
            crl_ttl: self.crl_ttl,
            crl_resign: self.crl_resign,
            issuing_ttl: self.issuing_ttl,
            issuing_rotate_before: self.issuing_rotate_before,
            root_activation_delay: self.root_activation_delay,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
            renewal_limit: self.renewal_limit,
            renewal_burst: self.renewal_burst,
            failed_attestation_limit: self.failed_attestation_limit,
            failed_attestation_burst: self.failed_attestation_burst,
            allow_rsa: self.allow_rsa,
        }
    }
}

pub(super) async fn run(
    data_dir: Option<PathBuf>,
    args: ServeArgs,
    passphrase: Option<Passphrase>,
) -> anyhow::Result<()> {
    let default_dir = if args.dev {
        "./sigil-dev"
    } else {
        "./sigil-data"
    };
    let dir = DataDir::new(data_dir.unwrap_or_else(|| PathBuf::from(default_dir)));
    // From here on SIGHUP reloads (once serving) instead of ending the
    // process, also while the keys are decrypted and the JWKS fetched.
    let hangups = Hangups::take()?;
    // Every configuration error stops the server before it touches
    // anything.
    let config = LoadedConfig::load(args.config.as_deref(), dir.path())?;
    let config_name = config.path.as_ref().map_or_else(
        || "sigil.toml".to_owned(),
        |path| path.display().to_string(),
    );
    let settings = Settings::resolve(args.overrides(), config)?;

    // Held while the server runs: no other server, and no offline
    // rotation, changes this CA's files meanwhile.
    let ca_lock;
    let files = if args.dev {
        if passphrase.is_some() {
            bail!(
                "the development CA's keys are public and not encrypted; \
                 `sigil serve --dev` takes no CA passphrase"
            );
        }
        dev::prepare(&dir)?;
        ca_lock = serving_lock(&dir)?;
        CaFiles::read(&dir, None)?
    } else {
        if dev::is_dev_root(&CaFiles::read_initial_root_fingerprint(&dir)?) {
            bail!(
                "{} holds the public development CA from certs-dev/, whose keys anyone can read; \
                 run `sigil serve --dev` for development, or `sigil init` a real CA",
                dir.path().display()
            );
        }
        ca_lock = serving_lock(&dir)?;
        CaFiles::read(&dir, passphrase.as_ref())?
    };
    let trust_domain = trust_domain(&files)?;
    let update = policy_update(&settings, &trust_domain, &config_name).await?;
    let admins = update.admins;
    let jwt_attestors = update.jwt_attestors;
    if let Some(admins) = &admins {
        let namespace = Namespace::new(&trust_domain).with_admins(admins.clone())?;
        warn_if_local_admin_is_refused(&dir, &namespace);
    }
    let reload = reloader(
        hangups,
        args.overrides(),
        args.config.clone(),
        dir.clone(),
        trust_domain.clone(),
        settings.clone(),
    );
    let options = ServeOptions {
        listen: settings.listen,
        public_url: settings.public_url,
        ttl: settings.ttl,
        keys: settings.keys,
        crl_validity: settings.crl_ttl,
        crl_resign: settings.crl_resign,
        rotation: settings.rotation,
        connections: settings.connections,
        rate_limits: settings.rate_limits,
        admins,
        jwt_attestors,
        reload: Some(reload),
        // Kept for rotations (`POST /admin/v1/ca/rotate`), which encrypt
        // the new issuing key with it; wiped when dropped.
        passphrase,
    };

    let served = if args.dev {
        write_admin_credential(&dir, None, "dev", DEFAULT_ADMIN_TTL, &dir.admin_dir()).await?;
        serve(&dir, files, options, |addr| dev_banner(&dir, addr)).await
    } else {
        serve(&dir, files, options, |_| String::new()).await
    };
    drop(ca_lock);
    served
}

/// The data dir's CA lock, for a server.
fn serving_lock(dir: &DataDir) -> anyhow::Result<std::fs::File> {
    dir.lock_ca()
        .context("is another `sigil serve` running on this data dir?")
}

/// The reloadable settings of a configuration, with its JWT attestors
/// loaded (their JWKS fetched or read).
async fn policy_update(
    settings: &Settings,
    trust_domain: &TrustDomain,
    config_name: &str,
) -> anyhow::Result<PolicyUpdate> {
    let admins = settings.admins(trust_domain)?;
    let jwt_attestors = JwtAttestors::load(
        &settings.attestors.jwt,
        &settings.attestors.dir,
        &Namespace::new(trust_domain),
    )
    .await
    .map_err(|error| anyhow::anyhow!("{config_name}: {error}"))?;
    Ok(PolicyUpdate {
        ttl: settings.ttl,
        keys: settings.keys,
        rate_limits: settings.rate_limits,
        admins,
        jwt_attestors: Arc::new(jwt_attestors),
    })
}

/// What SIGHUP runs: the configuration file read again, under the same
/// flags (which keep winning over it). Settings that only a restart can
/// change (listen address, public URL, connection limits, CRL lifetimes)
/// are named in the log when they changed, and otherwise left alone.
fn reloader(
    hangups: Hangups,
    overrides: Overrides,
    config: Option<PathBuf>,
    dir: DataDir,
    trust_domain: TrustDomain,
    started_with: Settings,
) -> Reloader {
    Reloader::new(hangups, move || {
        let (overrides, config, dir, trust_domain, started_with) = (
            overrides.clone(),
            config.clone(),
            dir.clone(),
            trust_domain.clone(),
            started_with.clone(),
        );
        Box::pin(async move {
            let loaded = LoadedConfig::load(config.as_deref(), dir.path())?;
            let config_name = loaded.path.as_ref().map_or_else(
                || "sigil.toml".to_owned(),
                |path| path.display().to_string(),
            );
            let settings = Settings::resolve(overrides, loaded)?;
            for changed in settings.restart_only_changes(&started_with) {
                tracing::warn!(
                    setting = changed,
                    "{config_name}: this setting changed; it takes effect at the next restart"
                );
            }
            policy_update(&settings, &trust_domain, &config_name).await
        })
    })
}

/// Warns when the data dir's admin credential, which the local admin
/// commands use by default, is not among the configured admins.
fn warn_if_local_admin_is_refused(dir: &DataDir, namespace: &Namespace) {
    let id = std::fs::read_to_string(dir.admin_dir().join("svid.pem"))
        .ok()
        .and_then(|text| pem::parse(text).ok())
        .and_then(|leaf| crate::svid::read_svid(leaf.contents()).ok())
        .map(|(id, _)| id);
    if let Some(id) = id.filter(|id| !namespace.is_admin(id)) {
        tracing::warn!(
            %id,
            "admin_ids leaves out the data dir's admin credential; local admin commands \
             need --admin-cert and --admin-key of an admitted one"
        );
    }
}

/// The trust domain of a CA's root.
fn trust_domain(files: &CaFiles) -> anyhow::Result<TrustDomain> {
    let root = pem::parse(&files.root_pem).context("root CA certificate")?;
    crate::svid::trust_domain_of_root(root.contents()).map_err(anyhow::Error::msg)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;
    use crate::api::RateLimits;
    use crate::config::DEFAULT_LISTEN;
    use crate::issuance::TtlPolicy;
    use crate::server::ConnectionLimits;

    #[derive(Debug, clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn help_states_the_defaults_that_apply() {
        let help = Serve::command().render_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let ttl = TtlPolicy::default();
        for (text, default) in [
            ("1h", ttl.default),
            ("1m", ttl.min),
            ("24h", ttl.max),
            ("1h", crate::ca::DEFAULT_CRL_VALIDITY),
        ] {
            assert_eq!(text.parse::<HumanDuration>().unwrap().get(), default);
            assert!(help.contains(&format!("[default: {text}]")), "{text}");
        }
        let connections = ConnectionLimits::default();
        let rates = RateLimits::default();
        for default in [
            DEFAULT_LISTEN.to_string(),
            connections.total.to_string(),
            connections.per_ip.to_string(),
            rates.requests.per_second.to_string(),
            rates.requests.burst.to_string(),
            rates.renewals.per_second.to_string(),
            rates.renewals.burst.to_string(),
            rates.failed_attestations.per_second.to_string(),
            rates.failed_attestations.burst.to_string(),
        ] {
            let text = format!("[default: {default}]");
            assert!(help.contains(&text), "{text} missing from:\n{help}");
        }
    }
}
