//! Every rotation a fleet meets in a year, in one minute, with no failed
//! handshake. Client agents (`sigil-agent`) renew by themselves and call
//! an echo server over mTLS back to back; the echo server is an agent too,
//! and checks its callers with `sigil-verifier` inside the handshake, as
//! the clients check it. Meanwhile:
//!
//! 1. the server rotates its issuing CA by its schedule;
//! 2. an admin forces another rotation (`sigil ca rotate`);
//! 3. an admin rotates the root (`sigil ca root rotate`): the new root
//!    joins the bundle, every agent picks it up by itself, it takes over,
//!    and once no live certificate chains to the old root, the old root
//!    leaves the bundle.
//!
//! Every handshake, on both ends, must succeed throughout, and every
//! renewal too.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use sigil_agent::{Agent, Event};
use sigil_verifier::{PeerIdentity, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_parser::prelude::FromDer;

const CLIENTS: usize = 3;
const ECHO_ID: &str = "spiffe://example.org/tools/echo";
/// Short enough that every agent renews several times in the test, and
/// that the old root's last leaves expire soon after it is replaced.
const SVID_TTL: Duration = Duration::from_secs(12);
/// The init issuing CA lives one day; the schedule rotates it this long
/// after `sigil init`.
const SCHEDULED_AFTER_SECONDS: u64 = 8;

/// What went wrong anywhere, to be empty at the end.
#[derive(Default)]
struct Failures(std::sync::Mutex<Vec<String>>);

impl Failures {
    fn push(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
}

async fn start_agent(url: &str, bundle: &str, token: &str, failures: Arc<Failures>) -> Agent {
    let builder = Agent::builder(url)
        .bundle_pem(bundle.as_bytes())
        .join_token(token)
        .ttl(SVID_TTL);
    let mut events = builder.events();
    let agent = builder.start().await.unwrap();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if !matches!(event, Event::Issued { .. } | Event::Renewed { .. }) {
                failures.push(format!("agent event: {event}"));
            }
        }
    });
    agent
}

#[test]
fn the_fleet_sees_no_failed_handshake_through_scheduled_forced_and_root_rotations() {
    let dir = DataDir::init_with(&["--issuing-ttl", "1d"]);
    std::fs::write(
        dir.file("sigil.toml"),
        format!(
            "min_ttl = \"1s\"\nmax_ttl = \"1h\"\nissuing_ttl = \"90d\"\n\
             issuing_rotate_before = \"{}s\"\n",
            86_400 - SCHEDULED_AFTER_SECONDS
        ),
    )
    .unwrap();
    let mut server = dir.start();
    let admin = server.admin();
    let first = status_as(&admin);
    let old_root = keys_of(&first, "root")[0].to_owned();
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|index| server.token(&format!("spiffe://example.org/agents/fleet-{index}")))
        .collect();
    let echo_token = server.token(ECHO_ID);

    let failures = Arc::new(Failures::default());
    let stop = Arc::new(AtomicBool::new(false));
    let handshakes = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (url, bundle) = (server.url.clone(), server.bundle_pem.clone());

    // The echo server: an agent, whose configuration presents each of its
    // renewals and checks callers against its live bundle and CRLs.
    let (echo, addr) = runtime.block_on(async {
        let echo = start_agent(&url, &bundle, &echo_token, Arc::clone(&failures)).await;
        let config = echo
            .server_config(
                Policy::deny_all()
                    .allow("spiffe://example.org/agents/*")
                    .unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (failures, stop) = (Arc::clone(&failures), Arc::clone(&stop));
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let (failures, stop) = (Arc::clone(&failures), Arc::clone(&stop));
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(mut tls) => {
                            let peer = PeerIdentity::from_connection(tls.get_ref().1).unwrap();
                            let reply = format!("{}\n", peer.spiffe_id());
                            let _ = tls.write_all(reply.as_bytes()).await;
                            let _ = tls.shutdown().await;
                        }
                        Err(error) if !stop.load(Ordering::Relaxed) => {
                            failures.push(format!("echo server refused a caller: {error}"));
                        }
                        Err(_) => {}
                    }
                });
            }
        });
        (echo, addr)
    });

    // The clients: each calls the echo server back to back.
    let clients: Vec<Agent> = runtime.block_on(async {
        let mut clients = Vec::new();
        for token in &tokens {
            clients.push(start_agent(&url, &bundle, token, Arc::clone(&failures)).await);
        }
        clients
    });
    for (index, client) in clients.iter().enumerate() {
        let config = Arc::new(
            client
                .client_config(Policy::deny_all().allow(ECHO_ID).unwrap())
                .unwrap(),
        );
        let (failures, stop, handshakes) = (
            Arc::clone(&failures),
            Arc::clone(&stop),
            Arc::clone(&handshakes),
        );
        let expected = format!("spiffe://example.org/agents/fleet-{index}\n");
        runtime.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
                match connector
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await
                {
                    Ok(mut tls) => {
                        let mut reply = String::new();
                        let _ = tls.read_to_string(&mut reply).await;
                        if reply == expected {
                            handshakes.fetch_add(1, Ordering::Relaxed);
                        } else if !stop.load(Ordering::Relaxed) {
                            failures.push(format!("client {index}: echo said {reply:?}"));
                        }
                    }
                    Err(error) => failures.push(format!("client {index} handshake: {error}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    // 1. The schedule rotates the issuing CA.
    wait_for_status(
        &admin,
        Duration::from_secs(30),
        "a scheduled rotation",
        |s| keys_of(s, "retired").len() == 1,
    );
    let after_scheduled = handshakes.load(Ordering::Relaxed);

    // 2. An admin forces another.
    std::thread::sleep(Duration::from_secs(2));
    let forced = sigil(&["ca", "rotate", "--data-dir", dir.arg()]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    let after_forced = handshakes.load(Ordering::Relaxed);

    // 3. An admin rotates the root: every agent learns the new root before
    //    it takes over.
    std::thread::sleep(Duration::from_secs(2));
    let rotated = sigil(&[
        "ca",
        "root",
        "rotate",
        "--activate-after",
        "5s",
        "--data-dir",
        dir.arg(),
    ]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let new_fingerprint = stdout(&rotated).trim().to_owned();
    // The test's own clients trust the data dir's bundle, which now holds
    // both roots, as the agents' live sources do.
    server.bundle_pem = dir.read("bundle.pem");
    let admin = server.admin();
    let added = status_as(&admin);
    let new_root = keys_of(&added, "next_root")[0].to_owned();
    assert_eq!(added["spiffe_sequence"], 2, "{added:#}");
    std::thread::sleep(Duration::from_secs(3));
    let bundle_now = block_on(server.anonymous().get("/v1/bundle")).unwrap();
    let served_roots = String::from_utf8(bundle_now.body.to_vec()).unwrap();
    assert_eq!(served_roots.matches("BEGIN CERTIFICATE").count(), 2);
    for agent in clients.iter().chain(std::iter::once(&echo)) {
        assert_eq!(
            agent
                .trust_source()
                .bundle_pem()
                .matches("BEGIN CERTIFICATE")
                .count(),
            2,
            "an agent has not picked up the new root before it takes over"
        );
    }
    let activated = wait_for_status(
        &admin,
        Duration::from_secs(20),
        "the new root active",
        |s| keys_of(s, "root") == [new_root.as_str()],
    );
    assert_eq!(keys_of(&activated, "previous_root"), [old_root.as_str()]);
    let after_activation = handshakes.load(Ordering::Relaxed);

    // The admin credential `sigil init` wrote chains to the old root; the
    // operator takes one under the new root and revokes the old one, or
    // the old root would stay until it expires.
    let old_admin = chain_der(&dir.read("admin/svid.pem"));
    let old_admin_serial = hex::encode(
        x509_parser::parse_x509_certificate(&old_admin[0])
            .unwrap()
            .1
            .raw_serial(),
    );
    let (chain, key, _) = dir.admin_credential("rotated-admin", &[]);
    let admin = server.client_as(&chain, &key);
    let revoked = block_on(admin.post_json(
        "/admin/v1/revocations",
        &json!({"serial": old_admin_serial, "reason": "superseded"}),
    ))
    .unwrap();
    assert_eq!(
        revoked.status,
        200,
        "{}",
        String::from_utf8_lossy(&revoked.body)
    );

    // The old root leaves once its last leaves (renewed into the new
    // root's chain) have expired.
    let dropped = wait_for_status(
        &admin,
        Duration::from_secs(40),
        "the old root dropped",
        |s| keys_of(s, "previous_root").is_empty(),
    );
    assert_eq!(dropped["spiffe_sequence"], 3, "{dropped:#}");
    // Every agent stops trusting the old root by itself, within seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    while clients.iter().chain(std::iter::once(&echo)).any(|agent| {
        agent
            .trust_source()
            .bundle_pem()
            .matches("BEGIN CERTIFICATE")
            .count()
            != 1
    }) {
        assert!(
            Instant::now() < deadline,
            "an agent still trusts the dropped root"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        keys_of(&dropped, "retired"),
        Vec::<&str>::new(),
        "{dropped:#}"
    );
    let after_drop = handshakes.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let total = handshakes.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));

    let failures = failures.0.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:#?}");
    // Handshakes went on between every step.
    let steps = [
        after_scheduled,
        after_forced,
        after_activation,
        after_drop,
        total,
    ];
    assert!(
        steps.windows(2).all(|pair| pair[1] > pair[0]) && steps[0] > 0,
        "handshakes per step: {steps:?}"
    );
    // The bundle holds the new root alone, and every agent an SVID under
    // it.
    let served = String::from_utf8(
        block_on(server.anonymous().get("/v1/bundle"))
            .unwrap()
            .body
            .to_vec(),
    )
    .unwrap();
    let served = chain_der(&served);
    assert_eq!(served.len(), 1);
    let new_root_der = &served[0];
    assert_eq!(sigil::ca::fingerprint(new_root_der), new_fingerprint);
    // The old root's CRL, and those of the issuing CAs it signed, are no
    // longer served.
    let crls = block_on(server.anonymous().get("/v1/crls")).unwrap();
    let issuers: Vec<Vec<u8>> = pem::parse_many(&crls.body)
        .unwrap()
        .iter()
        .map(|crl| {
            let (_, parsed) =
                x509_parser::revocation_list::CertificateRevocationList::from_der(crl.contents())
                    .unwrap();
            parsed.issuer().as_raw().to_vec()
        })
        .collect();
    let new_root_subject = x509_parser::parse_x509_certificate(new_root_der)
        .unwrap()
        .1
        .subject()
        .as_raw()
        .to_vec();
    assert_eq!(issuers.len(), 2, "the new root's and its issuing CA's");
    assert!(issuers.contains(&new_root_subject));
    for agent in clients.iter().chain(std::iter::once(&echo)) {
        let chain = agent.svid().chain().to_vec();
        let issuer = x509_parser::parse_x509_certificate(&chain[1]).unwrap().1;
        let root = x509_parser::parse_x509_certificate(new_root_der).unwrap().1;
        assert_eq!(issuer.issuer(), root.subject());
    }
    // The audit log tells the whole story.
    let audit: Value = block_on(admin.get("/admin/v1/audit?after=0&limit=1000"))
        .unwrap()
        .json()
        .unwrap();
    let steps: Vec<(String, String)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["action"].as_str().unwrap().starts_with("ca."))
        .map(|event| {
            (
                event["action"].as_str().unwrap().to_owned(),
                event["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let actions: Vec<&str> = steps.iter().map(|(action, _)| action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "ca.init",
            "ca.rotate",
            "ca.rotate",
            "ca.root.add",
            "ca.root.activate",
            "ca.root.drop"
        ],
        "{steps:?}"
    );
    let actors: Vec<&str> = steps.iter().map(|(_, actor)| actor.as_str()).collect();
    let admin_id = "spiffe://example.org/sigil/admin/admin";
    assert_eq!(
        actors,
        [
            "local",
            "scheduler",
            admin_id,
            admin_id,
            "scheduler",
            "scheduler"
        ]
    );
    eprintln!(
        "handshakes: {after_scheduled} by the scheduled rotation, {after_forced} by the forced \
         one, {after_activation} by the root's activation, {after_drop} by its drop, {total} in all"
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
}
