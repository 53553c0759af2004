//! `sigil demo`: the whole story in one command, in-process and on
//! 127.0.0.1 only. A CA in a throwaway data dir issues an agent its SVID;
//! an echo server that embeds `sigil-verifier` accepts the agent; an admin
//! revokes it; the next handshake and the agent's renewal are refused.

mod echo;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use rustls::AlertDescription;
use sigil_agent::Agent;
use sigil_core::wire::{JoinTokenRequest, JoinTokenResponse, RevokeRequest, RevokeResponse};
use sigil_verifier::{PeerIdentity, Policy};

use super::admin_connection::AdminConnection;
use super::init::{self, InitArgs};
use super::serve::{self, ServeArgs};
use crate::ca::CaFiles;
use crate::client::CaClient;
use crate::datadir::DataDir;
use echo::EchoServer;
use support::{STEP_TIMEOUT, Scratch, Task, minutes_left, parse_args, timeout, took, unexpected};

const TRUST_DOMAIN: &str = "demo.sigil.test";
const AGENT_ID: &str = "spiffe://demo.sigil.test/agents/support-bot";
const ECHO_ID: &str = "spiffe://demo.sigil.test/tools/echo";
/// Whom the echo server accepts.
const ECHO_ALLOWS: &str = "spiffe://demo.sigil.test/agents/*";
/// How long a revocation may take to reach the echo server.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub(super) struct DemoArgs {}

pub(super) async fn run(_args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let scratch = Scratch::create()?;
    println!("sigil demo: a CA, an agent and an echo server, all in this process on 127.0.0.1\n");
    // The story's servers stop when it ends or is interrupted: their
    // handles abort their tasks on drop. Ctrl-C also stops the CA (`serve`
    // listens for it), so it is checked first to name the real cause.
    let outcome = tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        outcome = story(&scratch.dir) => outcome,
    };
    drop(scratch);
    outcome?;
    println!(
        "\nAll six steps behaved as expected, in {}. The throwaway data dir is gone.",
        took(started.elapsed())
    );
    Ok(())
}

async fn story(dir: &DataDir) -> anyhow::Result<()> {
    // 1. The CA.
    let step = Instant::now();
    println!(
        "1. Starting a CA for trust domain {TRUST_DOMAIN} in {}",
        dir.path().display()
    );
    let init_args = parse_args::<InitArgs>("init", &["--trust-domain", TRUST_DOMAIN])?;
    let serve_args = parse_args::<ServeArgs>("serve", &["--listen", "127.0.0.1:0"])?;
    // `init` prints the root fingerprint and `serve` its address, each as
    // one line on stdout: with these prefixes they read as part of step 1.
    print!("   root fingerprint ");
    init::run(dir, init_args, None)
        .await
        .inspect_err(|_| println!())?;
    let fingerprint = CaFiles::read_root_fingerprint(dir)?;
    print!("   CA ");
    let mut server = Task(tokio::spawn(serve::run(
        Some(dir.path().to_owned()),
        serve_args,
        None,
    )));
    let admin = wait_until_serving(dir, &mut server)
        .await
        .inspect_err(|_| println!())?;
    let url = crate::datadir::read_text(&dir.server_url())?
        .trim()
        .to_owned();
    println!("   CA started in {}", took(step.elapsed()));

    // 2. A join token for the agent, through the admin API.
    let step = Instant::now();
    let token = join_token(&admin, AGENT_ID).await?;
    println!(
        "2. Join token created by the admin for {AGENT_ID} (one use, expires {}) in {}",
        token.expires_at,
        took(step.elapsed())
    );

    // 3. The agent trades it for an SVID.
    let step = Instant::now();
    let agent = timeout(
        "the agent's start",
        Agent::builder(&url)
            .fingerprint(&fingerprint)
            .join_token(token.token.expose())
            .start(),
    )
    .await?
    .context("step 3: the agent could not get its SVID")?;
    let svid = agent.svid();
    if svid.spiffe_id().as_str() != AGENT_ID {
        bail!(unexpected(3, AGENT_ID, svid.spiffe_id()));
    }
    println!(
        "3. SVID issued to {} by the CA: serial {}, expires in {} min",
        svid.spiffe_id(),
        svid.serial(),
        minutes_left(svid.not_after())
    );
    println!(
        "   (pinned the root by fingerprint, made a key, attested with the token: {})",
        took(step.elapsed())
    );

    // 4. The echo server, with its own SVID from its own token, accepts the
    // agent; the agent accepts only the echo server's SPIFFE ID.
    let echo_token = join_token(&admin, ECHO_ID).await?;
    let echo_agent = timeout(
        "the echo server's agent",
        Agent::builder(&url)
            .fingerprint(&fingerprint)
            .join_token(echo_token.token.expose())
            .start(),
    )
    .await?
    .context("step 4: the echo server could not get its SVID")?;
    let echo = timeout(
        "the echo server's start",
        EchoServer::start(&url, &fingerprint, &echo_agent.svid(), ECHO_ALLOWS),
    )
    .await??;
    println!(
        "4. Echo server {ECHO_ID} (serial {}) listens on https://{}, allowing {ECHO_ALLOWS}",
        echo_agent.svid().serial(),
        echo.addr
    );
    let client = Arc::new(agent.client_config(Policy::deny_all().allow(ECHO_ID)?)?);
    let step = Instant::now();
    match timeout("the call", echo::get(Arc::clone(&client), echo.addr)).await? {
        Ok((200, body)) if body.contains(AGENT_ID) => println!(
            "   accepted the agent over mTLS: GET / -> 200 \"{body}\" in {}",
            took(step.elapsed())
        ),
        Ok((status, body)) => bail!(unexpected(
            4,
            "200 naming the agent",
            format!("{status} {body:?}")
        )),
        Err(error) => bail!(unexpected(4, "the call to be accepted", error)),
    }

    // 5. The admin revokes the agent; the echo server hears of it and
    // refuses the next handshake.
    let step = Instant::now();
    let request = RevokeRequest {
        serial: None,
        spiffe_id: Some(AGENT_ID.to_owned()),
        reason: None,
    };
    let revoked: RevokeResponse = timeout(
        "the revocation",
        admin.post_json("/admin/v1/revocations", &request),
    )
    .await??
    .success()?
    .json()?;
    let revoked_at = Instant::now();
    if !revoked.revoked.iter().any(|serial| serial == svid.serial()) {
        bail!(unexpected(
            5,
            &format!("serial {} among the revoked", svid.serial()),
            format!("{:?}", revoked.revoked)
        ));
    }
    println!(
        "5. Revoked by the admin: {AGENT_ID}, serial {} (the ID is banned too) in {}",
        svid.serial(),
        took(step.elapsed())
    );
    let identity = PeerIdentity::from_verified_chain(svid.chain())
        .context("the agent's SVID does not parse")?;
    let already = echo.knows_revoked(&identity);
    let deadline = Instant::now() + PROPAGATION_TIMEOUT;
    while !echo.knows_revoked(&identity) {
        if Instant::now() >= deadline {
            bail!(unexpected(
                5,
                "the echo server's trust source to hold the new CRL",
                format!("it did not within {}", took(PROPAGATION_TIMEOUT))
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if already {
        println!(
            "   the echo server's live trust source had the new CRL before the admin call returned"
        );
    } else {
        println!(
            "   the echo server's live trust source had the new CRL {} later",
            took(revoked_at.elapsed())
        );
    }
    match timeout("the call", echo::get(client, echo.addr)).await? {
        Err(error) if echo::alert_of(&error) == Some(AlertDescription::CertificateRevoked) => {
            println!(
                "   next handshake refused with TLS alert {:?}: revoked -> refused in {}",
                AlertDescription::CertificateRevoked,
                took(revoked_at.elapsed())
            );
        }
        Err(error) => bail!(unexpected(5, "the alert CertificateRevoked", error)),
        Ok((status, body)) => bail!(unexpected(
            5,
            "the handshake to be refused",
            format!("it was accepted: {status} {body:?}")
        )),
    }

    // 6. The agent cannot renew its way back.
    let step = Instant::now();
    match timeout("the renewal", agent.renew_now()).await? {
        Err(sigil_agent::Error::Revoked { code, message }) => println!(
            "6. Renewal refused by the CA ({code}: {message}) in {}",
            took(step.elapsed())
        ),
        Err(error) => bail!(unexpected(6, "the renewal refused as revoked", error)),
        Ok(renewed) => bail!(unexpected(
            6,
            "the renewal refused",
            format!("it was renewed as serial {}", renewed.serial())
        )),
    }
    Ok(())
}

/// Waits until the CA has recorded its URL and answers `/readyz`; the
/// admin's client of it.
async fn wait_until_serving(
    dir: &DataDir,
    server: &mut Task<anyhow::Result<()>>,
) -> anyhow::Result<CaClient> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !dir.server_url().exists() {
        if server.0.is_finished() {
            return Err(match (&mut server.0).await {
                Ok(Err(error)) => error.context("the CA stopped"),
                Ok(Ok(())) => anyhow!("the CA stopped"),
                Err(error) => anyhow!("the CA stopped: {error}"),
            });
        }
        if Instant::now() >= deadline {
            bail!("the CA did not start within {}", took(STEP_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let admin = parse_args::<AdminConnection>("admin", &[])?.client(dir)?;
    timeout("the CA's /readyz", admin.get("/readyz"))
        .await??
        .success()?;
    Ok(admin)
}

/// A one-use, ten-minute join token for `spiffe_id`.
async fn join_token(admin: &CaClient, spiffe_id: &str) -> anyhow::Result<JoinTokenResponse> {
    let request = JoinTokenRequest {
        spiffe_id: spiffe_id.to_owned(),
        ttl_seconds: Some(600),
        uses: Some(1),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
    };
    timeout(
        "the join token",
        admin.post_json("/admin/v1/join-tokens", &request),
    )
    .await??
    .success()?
    .json()
}
