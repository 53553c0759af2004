//! `sigil audit verify` (from the data dir, no server) and `sigil audit
//! tail` (through the admin API).

use anyhow::bail;
use clap::Subcommand;
use serde_json::Value;

use super::admin_connection::AdminConnection;
use crate::audit::{AuditKey, verify_chain};
use crate::datadir::DataDir;
use crate::store::{SqliteStore, Store};

/// How many records one read returns.
const PAGE: u32 = 1000;

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Recompute the hash chain against the latest signed checkpoint; name
    /// the first broken record
    Verify,
    /// Print the audit log
    Tail {
        /// Records after this sequence number, oldest first [default: the
        /// newest records]
        #[arg(long)]
        after: Option<u64>,
        /// At most this many records
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: AdminConnection,
    },
}

pub(super) async fn run(dir: &DataDir, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify => verify(dir).await,
        AuditCommand::Tail {
            after,
            limit,
            json,
            connection,
        } => tail(dir, after, limit, json, &connection).await,
    }
}

async fn verify(dir: &DataDir) -> anyhow::Result<()> {
    dir.require_initialised()?;
    let key = AuditKey::load(dir)?;
    let store = SqliteStore::open(&dir.store())?;
    let mut records = Vec::new();
    loop {
        let after = records
            .last()
            .map_or(0, |r: &crate::audit::AuditRecord| r.seq);
        let page = store.audit_page(after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        records.extend(page);
    }
    let checkpoints = store.checkpoints().await?;
    if let Err(broken) = verify_chain(&records, &checkpoints, &key) {
        bail!("the audit log does not verify: {broken}");
    }
    match checkpoints.last() {
        Some(checkpoint) => println!(
            "audit log verified: {} records, signed checkpoint at record {}",
            records.len(),
            checkpoint.seq
        ),
        None => println!(
            "audit log verified: {} records, no signed checkpoint yet",
            records.len()
        ),
    }
    Ok(())
}

async fn tail(
    dir: &DataDir,
    after: Option<u64>,
    limit: u32,
    json: bool,
    connection: &AdminConnection,
) -> anyhow::Result<()> {
    let client = connection.client(dir)?;
    let query = match after {
        Some(after) => format!("after={after}&limit={limit}"),
        None => format!("last={limit}"),
    };
    let response = client
        .get(&format!("/admin/v1/audit?{query}"))
        .await?
        .success()?;
    let body: Value = response.json()?;
    let events = body["events"].as_array().cloned().unwrap_or_default();
    for event in events {
        if json {
            println!("{event}");
        } else {
            println!(
                "{:>6}  {}  {:<20}  {}  {}  {}",
                event["seq"],
                event["time"].as_str().unwrap_or_default(),
                event["action"].as_str().unwrap_or_default(),
                event["actor"].as_str().unwrap_or_default(),
                event["subject"].as_str().unwrap_or_default(),
                event["details"],
            );
        }
    }
    Ok(())
}
