//! `sigil token …`: join tokens, through the admin API.

use std::net::IpAddr;

use clap::Subcommand;
use sigil_core::wire::{JoinTokenRequest, JoinTokenResponse};

use super::admin_connection::AdminConnection;
use crate::datadir::DataDir;
use crate::duration::HumanDuration;

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Create a join token for one SPIFFE ID; prints only the token.
    Create {
        /// The identity the token grants
        #[arg(long)]
        spiffe_id: String,
        /// How long the token may be redeemed
        #[arg(long, default_value = "10m")]
        ttl: HumanDuration,
        /// How many certificates it may yield
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// DNS name to bind to the identity (repeatable)
        #[arg(long = "dns")]
        dns_names: Vec<String>,
        /// IP address to bind to the identity (repeatable)
        #[arg(long = "ip")]
        ip_addresses: Vec<IpAddr>,
        /// Print the whole response as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: AdminConnection,
    },
}

pub(super) async fn run_token(dir: &DataDir, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            spiffe_id,
            ttl,
            uses,
            dns_names,
            ip_addresses,
            json,
            connection,
        } => {
            let client = connection.client(dir)?;
            let request = JoinTokenRequest {
                spiffe_id,
                ttl_seconds: Some(ttl.get().as_secs()),
                uses: Some(uses),
                dns_names,
                ip_addresses,
            };
            let response = client
                .post_json("/admin/v1/join-tokens", &request)
                .await?
                .success()?;
            if json {
                println!("{}", String::from_utf8_lossy(&response.body));
            } else {
                let created: JoinTokenResponse = response.json()?;
                println!("{}", created.token.expose());
            }
            Ok(())
        }
    }
}
