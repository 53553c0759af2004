//! The library: first SVID, renewals, and the configurations it builds.

use std::collections::HashSet;
use std::time::Duration;

use sigil_agent::{Agent, Event};

use crate::common::DataDir;

const AGENT_ID: &str = "spiffe://example.org/agents/support/7";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn an_agent_bootstraps_attests_and_renews_with_a_new_key_each_time() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--default-ttl", "4s", "--min-ttl", "1s"]);
    let token = server.token(AGENT_ID);
    let runtime = runtime();
    runtime.block_on(async {
        let builder = Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&token);
        let mut events = builder.events();
        let agent = builder.start().await.unwrap();
        let first = agent.svid();
        assert_eq!(first.spiffe_id().as_str(), AGENT_ID);
        assert!(matches!(events.recv().await.unwrap(), Event::Issued { .. }));
        let mut serials = HashSet::from([first.serial().to_owned()]);
        let mut keys = HashSet::from([first.private_key_pem().to_owned()]);
        for _ in 0..2 {
            let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .expect("a renewal within 10 s")
                .unwrap();
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
