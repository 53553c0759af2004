//! Host names as the CA puts them in certificates and dials them: plain DNS
//! names (lowercase, no wildcard, no trailing dot) and IP addresses, and
//! `https://` URLs made of one of them and a port.

use std::fmt;
use std::net::IpAddr;

use anyhow::{Context, bail};

/// A host: a plain DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A plain DNS name, lowercase.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A plain DNS name, lowercased; `None` for anything else (wildcards,
/// trailing dots, IP addresses, invalid labels).
pub fn plain_dns_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with('*') || lower.ends_with('.') || lower.parse::<IpAddr>().is_ok() {
        return None;
    }
    rustls_pki_types::DnsName::try_from(lower.as_str()).ok()?;
    Some(lower)
}

/// An `https://host[:port]` URL: no user, path, query or fragment, since
/// Sigil builds every path itself (CRL distribution points, API routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    /// The host.
    pub host: Host,
    /// The port, 443 when the URL names none.
    pub port: u16,
}

impl HttpsUrl {
    /// Parses an `https://host[:port]` URL (a trailing `/` is allowed).
    ///
    /// # Errors
    ///
    /// Not a URL, not `https`, carries a user, path, query or fragment, or
    /// its host is neither a DNS name nor an IP.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim();
        if url.contains(['@', '?', '#']) {
            bail!("'{url}' must be https://host[:port], without user, query or fragment");
        }
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("'{url}' is not a URL"))?;
        if uri.scheme_str() != Some("https") {
            bail!("'{url}' is not an https:// URL");
        }
        if !matches!(uri.path(), "" | "/") {
            bail!("'{url}' must be https://host[:port], without a path");
        }
        let host = uri
            .host()
            .with_context(|| format!("'{url}' names no host"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Dns(
                plain_dns_name(bare)
                    .with_context(|| format!("'{url}': '{bare}' is not a DNS name"))?,
            ),
        };
        Ok(Self {
            host,
            port: uri.port_u16().unwrap_or(443),
        })
    }
}

impl fmt::Display for HttpsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "https://[{ip}]:{}", self.port),
            host => write!(f, "https://{host}:{}", self.port),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_dns_names_are_lowercased_and_others_refused() {
        assert_eq!(
            plain_dns_name("KB.Example.org").as_deref(),
            Some("kb.example.org")
        );
        assert_eq!(plain_dns_name("localhost").as_deref(), Some("localhost"));
        for bad in [
            "*.example.org",
            "example.org.",
            "not a name",
            "",
            "10.0.0.1",
            "a..b",
        ] {
            assert_eq!(plain_dns_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn https_urls_give_host_and_port() {
        let url = HttpsUrl::parse("https://CA.example.org:8443").unwrap();
        assert_eq!(
            (url.host, url.port),
            (Host::Dns("ca.example.org".to_owned()), 8443)
        );
        let url = HttpsUrl::parse("https://[::1]:9").unwrap();
        assert_eq!((url.host, url.port), (Host::Ip("::1".parse().unwrap()), 9));
        assert_eq!(HttpsUrl::parse("https://127.0.0.1").unwrap().port, 443);
        for bad in [
            "http://ca:1",
            "ca:1",
            "https://",
            "https://*.x:1",
            "not a url",
        ] {
            assert!(HttpsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
