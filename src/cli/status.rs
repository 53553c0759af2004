//! `sigil status`: the CA at a glance, through `GET /admin/v1/status`;
//! exits 1 when the CA is degraded.

use clap::Args;
use sigil_core::wire::StatusResponse;

use super::admin_connection::AdminConnection;
use crate::datadir::DataDir;

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// Print the response as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: AdminConnection,
}

/// Seconds as the largest whole unit: `3d`, `5h`, `12m`, `40s`.
fn human(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    let text = match s {
        86_400.. => format!("{}d", s / 86_400),
        3_600.. => format!("{}h", s / 3_600),
        60.. => format!("{}m", s / 60),
        _ => format!("{s}s"),
    };
    format!("{sign}{text}")
}

fn print(status: &StatusResponse) {
    println!(
        "health        {}{}",
        status.health,
        status
            .problem
            .as_ref()
            .map(|problem| format!(" ({problem})"))
            .unwrap_or_default()
    );
    println!("trust domain  {}", status.trust_domain);
    println!("version       {}", status.version);
    for issuer in &status.issuers {
        let activates = issuer
            .activates_at
            .as_ref()
            .map(|at| format!(", takes over {at}"))
            .unwrap_or_default();
        println!(
            "{:<13} {}  expires {} (in {}){activates}",
            format!("{} CA", issuer.role.replace('_', " ")),
            issuer.key_id,
            issuer.not_after,
            human(issuer.expires_in_seconds)
        );
        if let Some(fingerprint) = &issuer.fingerprint {
            println!("{:<13} {fingerprint}", "");
        }
    }
    println!("bundle        spiffe_sequence {}", status.spiffe_sequence);
    if let Some(counts) = status.certificates {
        println!(
            "certificates  {} live, {} revoked (unexpired), {} issued in all",
            counts.live, counts.revoked, counts.issued
        );
    }
    for crl in &status.crls {
        println!(
            "CRL           {}  number {}  signed {} ago, next by {}",
            crl.issuer_key_id,
            crl.number,
            human(crl.age_seconds),
            crl.next_update
        );
    }
    if let Some(seq) = status.last_audit_seq {
        println!("audit log     last record {seq}");
    }
}

pub(super) async fn run(dir: &DataDir, args: StatusArgs) -> anyhow::Result<()> {
    let client = args.connection.client(dir)?;
    let response = client.get("/admin/v1/status").await?.success()?;
    let status: StatusResponse = response.json()?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&response.body));
    } else {
        print(&status);
    }
    // Scripts and probes see a degraded CA in the exit code.
    if status.health != "ok" {
        anyhow::bail!(
            "the CA is {}: {}",
            status.health,
            status.problem.as_deref().unwrap_or("no reason given")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn durations_read_in_their_largest_whole_unit() {
        assert_eq!(human(40), "40s");
        assert_eq!(human(125), "2m");
        assert_eq!(human(7_200), "2h");
        assert_eq!(human(31_536_000), "365d");
        assert_eq!(human(-90), "-1m");
    }
}
