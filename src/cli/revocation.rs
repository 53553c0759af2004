//! `sigil revoke`, `sigil unban` and `sigil certs list`: thin clients of the
//! admin API.

use clap::{Args, Subcommand};
use sigil_core::wire::{CertificateList, RevokeRequest, RevokeResponse};

use super::admin_connection::AdminConnection;
use crate::datadir::DataDir;

#[derive(Debug, Args)]
pub(super) struct RevokeArgs {
    /// Revoke one certificate, by serial
    #[arg(
        long,
        conflicts_with = "spiffe_id",
        required_unless_present = "spiffe_id"
    )]
    serial: Option<String>,
    /// Revoke every live certificate of an identity and ban it
    #[arg(long)]
    spiffe_id: Option<String>,
    /// RFC 5280 reason, such as keyCompromise
    #[arg(long)]
    reason: Option<String>,
    /// Print the whole response as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: AdminConnection,
}

#[derive(Debug, Args)]
pub(super) struct UnbanArgs {
    /// The banned identity
    #[arg(long)]
    spiffe_id: String,
    #[command(flatten)]
    connection: AdminConnection,
}

#[derive(Debug, Subcommand)]
pub(super) enum CertsCommand {
    /// List certificates (live ones unless asked otherwise)
    List {
        /// Only this identity
        #[arg(long)]
        spiffe_id: Option<String>,
        /// Revoked certificates instead of live ones
        #[arg(long, conflicts_with = "all")]
        revoked: bool,
        /// Every certificate
        #[arg(long)]
        all: bool,
        /// At most this many
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print the response as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: AdminConnection,
    },
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved
/// characters stay as they are).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) async fn revoke(dir: &DataDir, args: RevokeArgs) -> anyhow::Result<()> {
    let client = args.connection.client(dir)?;
    let request = RevokeRequest {
        serial: args.serial,
        spiffe_id: args.spiffe_id,
        reason: args.reason,
    };
    let response = client
        .post_json("/admin/v1/revocations", &request)
        .await?
        .success()?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&response.body));
        return Ok(());
    }
    let revoked: RevokeResponse = response.json()?;
    for serial in &revoked.revoked {
        println!("{serial}");
    }
    if revoked.revoked.is_empty() {
        eprintln!("no live certificate to revoke");
    }
    Ok(())
}

pub(super) async fn unban(dir: &DataDir, args: UnbanArgs) -> anyhow::Result<()> {
    let client = args.connection.client(dir)?;
    let path = format!("/admin/v1/bans/{}", encode(&args.spiffe_id));
    client
        .request(http::Method::DELETE, &path, None, Vec::new())
        .await?
        .success()?;
    eprintln!("lifted the ban on {}", args.spiffe_id);
    Ok(())
}

pub(super) async fn certs(dir: &DataDir, command: CertsCommand) -> anyhow::Result<()> {
    let CertsCommand::List {
        spiffe_id,
        revoked,
        all,
        limit,
        json,
        connection,
    } = command;
    let client = connection.client(dir)?;
    let status = match (revoked, all) {
        (true, _) => "revoked",
        (_, true) => "all",
        _ => "live",
    };
    let mut path = format!("/admin/v1/certificates?status={status}&limit={limit}");
    if let Some(id) = &spiffe_id {
        path.push_str(&format!("&spiffe_id={}", encode(id)));
    }
    let response = client.get(&path).await?.success()?;
    if json {
        println!("{}", String::from_utf8_lossy(&response.body));
        return Ok(());
    }
    let list: CertificateList = response.json()?;
    println!(
        "{:<32}  {:<20}  {:<20}  SPIFFE ID",
        "SERIAL", "NOT AFTER", "REVOKED"
    );
    for cert in list.certificates {
        let revoked = match (&cert.revoked_at, &cert.reason) {
            (Some(_), Some(reason)) => reason.clone(),
            _ => "-".to_owned(),
        };
        println!(
            "{:<32}  {:<20}  {:<20}  {}",
            cert.serial, cert.not_after, revoked, cert.spiffe_id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_are_percent_encoded_as_one_path_segment() {
        assert_eq!(
            encode("spiffe://example.org/a b"),
            "spiffe%3A%2F%2Fexample.org%2Fa%20b"
        );
        assert_eq!(encode("A-z.0_~"), "A-z.0_~");
    }
}
