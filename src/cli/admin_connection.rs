//! How admin commands reach the CA: its URL, the admin credential and the
//! trust bundle, from flags or from the data dir.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::client::{CaClient, ClientIdentity};
use crate::datadir::{self, DataDir};

/// How an admin command reaches the CA.
#[derive(Debug, Args)]
pub(super) struct AdminConnection {
    /// The CA's URL [default: the URL `sigil serve` recorded in the data dir]
    #[arg(long = "ca")]
    ca_url: Option<String>,
    /// Admin certificate chain [default: DATA_DIR/admin/svid.pem]
    #[arg(long)]
    admin_cert: Option<PathBuf>,
    /// Admin private key [default: DATA_DIR/admin/svid.key]
    #[arg(long)]
    admin_key: Option<PathBuf>,
    /// Trust bundle [default: DATA_DIR/bundle.pem]
    #[arg(long)]
    bundle: Option<PathBuf>,
}

impl AdminConnection {
    /// A client of the CA that presents the admin credential.
    pub(super) fn client(&self, dir: &DataDir) -> anyhow::Result<CaClient> {
        let url = match &self.ca_url {
            Some(url) => url.clone(),
            None => datadir::read_text(&dir.server_url())
                .context("no --ca given and no server URL recorded; is `sigil serve` running on this data dir?")?
                .trim()
                .to_owned(),
        };
        let bundle = datadir::read_text(&self.bundle.clone().unwrap_or_else(|| dir.bundle()))?;
        let chain = datadir::read_text(
            &self
                .admin_cert
                .clone()
                .unwrap_or_else(|| dir.admin_dir().join("svid.pem")),
        )?;
        let key = datadir::read_text(
            &self
                .admin_key
                .clone()
                .unwrap_or_else(|| dir.admin_dir().join("svid.key")),
        )?;
        CaClient::new(
            &url,
            &bundle,
            Some(ClientIdentity {
                chain_pem: &chain,
                key_pem: &key,
            }),
        )
    }
}
