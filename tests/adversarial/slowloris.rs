//! Slowloris: 1,000 connections hold the server's sockets open, some doing
//! nothing after connecting, some stopping halfway through the TLS
//! handshake, some halfway through the request headers. They come from
//! three addresses, one of them opening more than the per-address cap,
//! which the server closes at once. A well-behaved agent, from its own
//! address, still gets its SVID.

use std::net::{Ipv4Addr, SocketAddr};

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::*;
use crate::support::{server_name, tls_connector};

/// Idle connections from one address: more than the per-address cap (256),
/// so that the cap is what refuses the rest.
const IDLE: usize = 500;
/// The default per-address connection cap.
const PER_ADDRESS_CAP: usize = 256;
/// Connections that send the start of a TLS record and stop.
const HALF_HANDSHAKE: usize = 250;
/// Connections that finish TLS and send half of a request's headers.
const HALF_HEADERS: usize = 250;

/// The start of a TLS handshake record announcing more bytes than follow.
const PARTIAL_CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
/// A request line and one header, never finished.
const PARTIAL_HEADERS: &[u8] = b"POST /v1/svid HTTP/1.1\r\nHost: localhost\r\nContent-";

/// A TCP connection to the server from `source` (an address of 127/8), or
/// none when the server (or the kernel) refused it.
async fn connect_from(source: Ipv4Addr, port: u16) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((source, 0))).ok()?;
    socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .ok()
}

/// The test process needs a file descriptor per connection it holds.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

#[test]
fn a_thousand_idle_and_half_open_connections_do_not_stop_an_agent() {
    raise_open_file_limit();
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/patient");
    let certificates = dir.count("certificates");
    let port = server.port();
    let connector = tls_connector(&server);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (idle, held) = runtime.block_on(async {
        let mut idle = Vec::new();
        for _ in 0..IDLE {
            if let Some(tcp) = connect_from(Ipv4Addr::new(127, 0, 0, 2), port).await {
                idle.push(tcp);
            }
        }
        let mut held = Vec::new();
        for _ in 0..HALF_HANDSHAKE {
            let mut tcp = connect_from(Ipv4Addr::new(127, 0, 0, 3), port)
                .await
                .expect("within the per-address cap, the connection is taken");
            tcp.write_all(PARTIAL_CLIENT_HELLO).await.unwrap();
            held.push(tcp);
        }
        let mut half_requests = Vec::new();
        for _ in 0..HALF_HEADERS {
            let tcp = connect_from(Ipv4Addr::new(127, 0, 0, 4), port)
                .await
                .expect("within the per-address cap, the connection is taken");
            let mut tls = connector.connect(server_name(), tcp).await.unwrap();
            tls.write_all(PARTIAL_HEADERS).await.unwrap();
            tls.flush().await.unwrap();
            half_requests.push(tls);
        }
        (idle, (held, half_requests))
    });
    assert_eq!(held.1.len(), HALF_HEADERS);

    // With every one of them still open, an agent attests.
    let response = server.redeem(&token, &p256_csr().1);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(dir.count("certificates"), certificates + 1);

    // The idle address got its share and no more: the server closed the
    // connections past the cap at once (the others wait for the handshake
    // timeout, which may also have passed by now: hence "at least").
    let closed = runtime.block_on(async {
        let mut reads = tokio::task::JoinSet::new();
        for mut tcp in idle {
            reads.spawn(async move {
                let mut byte = [0u8; 1];
                let read = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut byte));
                matches!(read.await, Ok(Ok(0) | Err(_)))
            });
        }
        reads
            .join_all()
            .await
            .into_iter()
            .filter(|&closed| closed)
            .count()
    });
    assert!(
        closed >= IDLE - PER_ADDRESS_CAP,
        "only {closed} of {IDLE} idle connections from one address were closed"
    );
    drop(held);
}
