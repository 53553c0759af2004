//! The server's configuration file, `sigil.toml`: `DATA_DIR/sigil.toml`, or
//! the file `sigil serve --config FILE` names. Every setting is optional: a
//! flag given on the command line wins over the file, and the file over the
//! built-in default. `docs/sigil.toml` documents every field.
//!
//! Unknown keys, anywhere, are refused with the key's name and line, and so
//! are values of the wrong shape; [`Settings::resolve`] then checks that the
//! values make sense together.

mod locate;
mod settings;

pub use settings::{
    Attestors, DEFAULT_ROOT_ACTIVATION_DELAY, DEFAULT_ROTATE_BEFORE, MAX_ROOT_ACTIVATION_DELAY,
    Overrides, RotationSchedule, Settings,
};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::attestation::jwt::config::JwtAttestorConfig;
use crate::duration::HumanDuration;

/// The file's name in the data dir.
pub const FILE_NAME: &str = "sigil.toml";

/// Where the server listens by default.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8443);

/// Bounds of `crl_ttl`.
pub const MIN_CRL_TTL: Duration = Duration::from_secs(60);
/// Bounds of `crl_ttl`.
pub const MAX_CRL_TTL: Duration = Duration::from_secs(7 * 86_400);

/// `sigil.toml` as written; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Where clients reach the CA (`https://host[:port]`).
    pub public_url: Option<String>,
    /// SVID lifetime when a request names none.
    pub default_ttl: Option<HumanDuration>,
    /// Shortest SVID lifetime a request may ask for.
    pub min_ttl: Option<HumanDuration>,
    /// Longest SVID lifetime a request may ask for.
    pub max_ttl: Option<HumanDuration>,
    /// How long the issuing CA's CRLs are valid (their nextUpdate).
    pub crl_ttl: Option<HumanDuration>,
    /// How old the issuing CA's CRL gets before it is re-signed.
    pub crl_resign: Option<HumanDuration>,
    /// How long the issuing CAs the server makes when it rotates live.
    pub issuing_ttl: Option<HumanDuration>,
    /// How long before the issuing CA expires the server rotates it.
    pub issuing_rotate_before: Option<HumanDuration>,
    /// How long a new root waits in the bundle before it takes over.
    pub root_activation_delay: Option<HumanDuration>,
    /// Who may use the admin API: IDs and `…/*` patterns under
    /// `spiffe://<td>/sigil/`.
    pub admin_ids: Option<Vec<String>>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Connections from one IP address at once.
    pub max_connections_per_ip: Option<usize>,
    /// Attestations and admin calls per second one address may make.
    pub rate_limit: Option<f64>,
    /// Attestations and admin calls one idle address may make at once.
    pub rate_burst: Option<f64>,
    /// Renewals per second one address may make.
    pub renewal_limit: Option<f64>,
    /// Renewals one idle address may make at once.
    pub renewal_burst: Option<f64>,
    /// Failed attestations per second one address may make, sustained.
    pub failed_attestation_limit: Option<f64>,
    /// Failed attestations one address may make before it is slowed down.
    pub failed_attestation_burst: Option<f64>,
    /// Accept RSA agent keys.
    pub allow_rsa: Option<bool>,
    /// The `[[attestor.…]]` tables.
    #[serde(default)]
    pub attestor: AttestorsConfig,
}

/// The `attestor` table: one list per kind of attestor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestorsConfig {
    /// The `[[attestor.jwt]]` tables.
    #[serde(default)]
    pub jwt: Vec<JwtAttestorConfig>,
}

impl ServerFile {
    /// Parses the text of a configuration file read from `path` (named in
    /// errors).
    ///
    /// # Errors
    ///
    /// The text is not TOML, or has an unknown key or a value of the wrong
    /// shape; the error names the file, the line and the key.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        toml::from_str(text).map_err(|error| locate::describe(&error, text, path))
    }
}

/// The configuration file as read, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// Its contents (empty when there is no file).
    pub file: ServerFile,
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// The directory that relative paths in the file are read from: the
    /// file's own (the data dir when there is no file).
    pub dir: PathBuf,
}

impl LoadedConfig {
    /// Reads `explicit` (`--config`), else `DATA_DIR/sigil.toml` if it
    /// exists.
    ///
    /// # Errors
    ///
    /// `explicit` cannot be read, the default file exists but cannot be
    /// read, or the file does not parse (see [`ServerFile::parse`]).
    pub fn load(explicit: Option<&Path>, data_dir: &Path) -> anyhow::Result<Self> {
        let path = match explicit {
            Some(path) => path.to_owned(),
            None => data_dir.join(FILE_NAME),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                return Ok(Self {
                    file: ServerFile::default(),
                    path: None,
                    dir: data_dir.to_owned(),
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                bail!("the configuration file {} does not exist", path.display())
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("reading the configuration file {}", path.display()));
            }
        };
        let file = ServerFile::parse(&text, &path)?;
        let absolute = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        let dir = absolute
            .parent()
            .map_or_else(|| data_dir.to_owned(), Path::to_owned);
        Ok(Self {
            file,
            path: Some(path),
            dir,
        })
    }
}

#[cfg(test)]
mod tests;
