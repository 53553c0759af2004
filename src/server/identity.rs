//! The CA server's own SVID, `spiffe://<td>/sigil/server`, minted at start
//! and renewed in the background at half its lifetime.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use super::tls::ServerIdentity;
use crate::api::ServerIdentityHooks;
use crate::ca::IssuedCertificate;
use crate::hostname::{Host, HttpsUrl};
use crate::issuance::Issuance;
use crate::namespace::Namespace;

/// The lifetime of the server's own certificate.
const SERVER_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long to wait before retrying a failed renewal.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The DNS and IP SANs of the server certificate.
#[derive(Debug, Clone, Default)]
pub(super) struct ServerNames {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

impl ServerNames {
    /// `localhost` and 127.0.0.1, the listen address (loopback of its
    /// family when listening on every interface), and the public URL's host, so that clients verify the
    /// server against `bundle.pem` by the name they dialled.
    pub(super) fn for_listener(local: SocketAddr, public_url: &str) -> anyhow::Result<Self> {
        let mut names = Self {
            dns: vec!["localhost".to_owned()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        };
        names.add_ip(super::reachable(local).ip());
        let url = HttpsUrl::parse(public_url).context("--public-url")?;
        match url.host {
            Host::Ip(ip) => names.add_ip(ip),
            Host::Dns(name) if !names.dns.contains(&name) => names.dns.push(name),
            Host::Dns(_) => {}
        }
        Ok(names)
    }

    /// Every name, as hosts.
    pub(super) fn hosts(&self) -> Vec<Host> {
        let dns = self.dns.iter().cloned().map(Host::Dns);
        dns.chain(self.ips.iter().copied().map(Host::Ip)).collect()
    }

    fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }
}

/// Mints the first server SVID and keeps it fresh, minting another at
/// once when the hooks' `refresh` is notified (a new root took over), and
/// retrying that every [`RETRY_AFTER`] until it succeeds. The hooks' `issuer`
/// always names the issuing CA of the certificate in use.
pub(super) async fn start(
    issuance: Issuance,
    names: ServerNames,
    hooks: Option<ServerIdentityHooks>,
) -> anyhow::Result<Arc<ServerIdentity>> {
    let (chain, key, issued) = mint(&issuance, &names).await?;
    let identity = Arc::new(ServerIdentity::new(chain, key)?);
    if let Some(hooks) = &hooks {
        hooks.set_issuer(&issued.issuer_key_id);
    }
    let renewing = Arc::clone(&identity);
    tokio::spawn(async move {
        let mut not_after = issued.not_after;
        // A refresh was asked for and has not succeeded yet.
        let mut refresh_pending = false;
        loop {
            let remaining = (not_after - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
            let wait = match refresh_pending {
                true => Duration::ZERO,
                false => Duration::try_from(remaining / 2)
                    .unwrap_or(RETRY_AFTER)
                    .max(Duration::from_secs(1)),
            };
            let sleep = tokio::time::sleep(wait);
            match &hooks {
                Some(hooks) => tokio::select! {
                    () = sleep => {}
                    () = hooks.refresh.notified() => refresh_pending = true,
                },
                None => sleep.await,
            }
            let renewed = match mint(&issuance, &names).await {
                Ok((chain, key, issued)) => renewing.replace(chain, key).map(|()| issued),
                Err(error) => Err(error),
            };
            match renewed {
                Ok(issued) => {
                    tracing::info!(not_after = %crate::rfc3339::format(issued.not_after), "renewed the server certificate");
                    not_after = issued.not_after;
                    refresh_pending = false;
                    if let Some(hooks) = &hooks {
                        hooks.set_issuer(&issued.issuer_key_id);
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "renewing the server certificate failed");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    });
    Ok(identity)
}

async fn mint(
    issuance: &Issuance,
    names: &ServerNames,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, Vec<u8>, IssuedCertificate)> {
    let namespace = Namespace::new(issuance.ca().trust_domain());
    let (issued, key) = issuance
        .mint_local(
            "svid.issue",
            namespace.server(),
            &names.dns,
            &names.ips,
            SERVER_TTL,
        )
        .await
        .context("minting the server certificate")?;
    // Its own issuer: a rotation may have come in between.
    let issuer = issuance.ca().issuer_of(&issued).der().clone();
    let chain = vec![issued.der.clone(), issuer];
    Ok((chain, key.serialize_der(), issued))
}
