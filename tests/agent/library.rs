//! The library: first SVID, renewals, restarts, and what happens when the
//! CA is away or says no.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use sigil_agent::{Agent, Error, Event, SvidFiles};

use crate::common::{DataDir, Server, block_on};

pub(crate) const AGENT_ID: &str = "spiffe://example.org/agents/support/7";

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The next event within `within`.
pub(crate) async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    within: Duration,
) -> Event {
    tokio::time::timeout(within, events.recv())
        .await
        .expect("an event in time")
        .unwrap()
}

/// A CA whose SVIDs live 4 s, so that renewal comes every ~2 s.
pub(crate) fn short_lived_ca(dir: &DataDir) -> Server {
    dir.start_with(&["--default-ttl", "4s", "--min-ttl", "1s"])
}

#[test]
fn an_agent_bootstraps_attests_and_renews_with_a_new_key_each_time() {
    let dir = DataDir::init();
    let server = short_lived_ca(&dir);
    let token = server.token(AGENT_ID);
    runtime().block_on(async {
        let builder = Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&token);
        let mut events = builder.events();
        let agent = builder.start().await.unwrap();
        let first = agent.svid();
        assert_eq!(first.spiffe_id().as_str(), AGENT_ID);
        assert!(matches!(
            next_event(&mut events, Duration::from_secs(1)).await,
            Event::Issued { .. }
        ));
        let mut serials = HashSet::from([first.serial().to_owned()]);
        let mut keys = HashSet::from([first.private_key_pem().to_owned()]);
        for _ in 0..2 {
            let event = next_event(&mut events, Duration::from_secs(10)).await;
            let Event::Renewed { serial, .. } = event else {
                panic!("expected a renewal, got {event:?}");
            };
            let current = agent.svid();
            assert_eq!(current.serial(), serial);
            assert!(serials.insert(serial), "a new serial each time");
            assert!(
                keys.insert(current.private_key_pem().to_owned()),
                "a new key each time"
            );
        }
    });
}

#[test]
fn a_wrong_fingerprint_fails_closed() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let result = runtime().block_on(
        Agent::builder(&server.url)
            .fingerprint(&wrong)
            .join_token(&token)
            .start(),
    );
    assert!(
        matches!(
            result,
            Err(Error::Trust(sigil_verifier::Error::Fingerprint(_)))
        ),
        "{result:?}"
    );
    // The token was never sent: it still works.
    let (_, csr) = crate::common::p256_csr();
    assert_eq!(server.redeem(&token, &csr).status, 200);
}

#[test]
fn while_the_ca_is_away_the_agent_keeps_its_svid_and_renews_when_it_returns() {
    let dir = DataDir::init();
    let server = short_lived_ca(&dir);
    let port = server.port();
    let token = server.token(AGENT_ID);
    let runtime = runtime();
    let (agent, mut events) = runtime.block_on(async {
        let builder = Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&token);
        let events = builder.events();
        (builder.start().await.unwrap(), events)
    });
    let held = agent.svid();
    drop(server);
    runtime.block_on(async {
        // The renewal window opens and fails; the SVID stays in use.
        loop {
            match next_event(&mut events, Duration::from_secs(10)).await {
                Event::RenewalFailed { .. } => break,
                Event::Issued { .. } => {}
                other => panic!("expected a failed renewal, got {other:?}"),
            }
        }
        assert_eq!(agent.svid().serial(), held.serial());
    });
    let listen = format!("127.0.0.1:{port}");
    let _server = Server::spawn(
        &[
            "serve",
            "--data-dir",
            dir.arg(),
            "--listen",
            &listen,
            "--default-ttl",
            "4s",
            "--min-ttl",
            "1s",
        ],
        dir.path.clone(),
    );
    runtime.block_on(async {
        loop {
            match next_event(&mut events, Duration::from_secs(15)).await {
                Event::Renewed {
                    previous_serial, ..
                } => {
                    assert_eq!(previous_serial, held.serial());
                    break;
                }
                Event::RenewalFailed { .. } => {}
                other => panic!("expected a renewal, got {other:?}"),
            }
        }
        assert_ne!(agent.svid().serial(), held.serial());
    });
}

#[test]
fn a_restart_with_a_valid_svid_on_disk_renews_without_a_token() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");
    runtime().block_on(async {
        let first = Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&token)
            .files(SvidFiles::new(&out))
            .start()
            .await
            .unwrap();
        let first_serial = first.svid().serial().to_owned();
        drop(first);

        let builder = Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .files(SvidFiles::new(&out));
        let mut events = builder.events();
        let restarted = builder.start().await.unwrap();
        match next_event(&mut events, Duration::from_secs(1)).await {
            Event::Renewed {
                previous_serial, ..
            } => assert_eq!(previous_serial, first_serial),
            other => panic!("expected a renewal over mTLS, got {other:?}"),
        }
        let on_disk = SvidFiles::new(&out).load().unwrap().unwrap();
        assert_eq!(on_disk.serial(), restarted.svid().serial());
    });
}

#[test]
fn a_restart_with_an_expired_svid_and_no_token_says_what_to_do() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--default-ttl", "1s", "--min-ttl", "1s"]);
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");
    let runtime = runtime();
    runtime.block_on(async {
        let agent = Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&token)
            .files(SvidFiles::new(&out))
            .start()
            .await
            .unwrap();
        let not_after = agent.svid().not_after();
        drop(agent);
        let wait = not_after
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(1100)).await;
    });
    let result = runtime.block_on(
        Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .files(SvidFiles::new(&out))
            .start(),
    );
    let Err(Error::NoIdentity(message)) = result else {
        panic!("expected NoIdentity, got {result:?}");
    };
    assert!(message.contains("expired"), "{message}");
    assert!(message.contains("sigil token create"), "{message}");
}

#[test]
fn a_revoked_agent_is_refused_renewal_and_reports_it() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let runtime = runtime();
    let agent = runtime.block_on(
        Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&token)
            .start(),
    );
    let agent = agent.unwrap();
    let revoked = block_on(
        server
            .admin()
            .post_json("/admin/v1/revocations", &json!({"spiffe_id": AGENT_ID})),
    )
    .unwrap();
    assert_eq!(revoked.status, 200);
    runtime.block_on(async {
        let mut events = agent.events();
        let result = agent.renew_now().await;
        let Err(Error::Revoked { code, .. }) = result else {
            panic!("expected a final refusal, got {result:?}");
        };
        assert_eq!(code, "banned");
        // The host program hears of it, once, and renewal is over.
        match next_event(&mut events, Duration::from_secs(1)).await {
            Event::Revoked { code, .. } => assert_eq!(code, "banned"),
            other => panic!("expected Revoked, got {other:?}"),
        }
        let stopped = tokio::time::timeout(Duration::from_secs(1), agent.stopped())
            .await
            .expect("stopped() answers at once once renewal is over");
        assert!(matches!(stopped, Event::Revoked { .. }));
    });
}

#[test]
fn concurrent_renewals_are_serialised_and_never_fork_the_identity() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    runtime().block_on(async {
        let agent = Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&token)
            .start()
            .await
            .unwrap();
        // Three at once would present one certificate three times: the CA
        // would take the third for a second holder and ban the identity.
        let (a, b, c) = tokio::join!(agent.renew_now(), agent.renew_now(), agent.renew_now());
        let serials: HashSet<String> = [a, b, c]
            .into_iter()
            .map(|renewed| renewed.unwrap().serial().to_owned())
            .collect();
        assert_eq!(serials.len(), 3, "each renewal renewed the one before");
        // And the line is intact: one more renewal works.
        agent.renew_now().await.unwrap();
    });
}

#[test]
fn a_rate_limited_renewal_carries_the_cas_retry_after() {
    let dir = DataDir::init();
    // One renewal, then one every 20 s per address.
    let server = dir.start_with(&["--renewal-limit", "0.05", "--renewal-burst", "1"]);
    let token = server.token(AGENT_ID);
    runtime().block_on(async {
        let agent = Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&token)
            .start()
            .await
            .unwrap();
        agent.renew_now().await.unwrap();
        let error = agent.renew_now().await.unwrap_err();
        assert!(error.is_transient(), "{error}");
        let asked = error.retry_after().expect("a Retry-After");
        assert!(
            (Duration::from_secs(10)..=Duration::from_secs(20)).contains(&asked),
            "{asked:?}"
        );
        assert!(
            matches!(error, Error::Refused { status: 429, .. }),
            "{error}"
        );
    });
}
