//! One client connection: the TLS handshake (with a deadline), then HTTP/1.1
//! or HTTP/2 with deadlines of its own, closed gracefully when it has been
//! idle too long or when the server shuts down.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::api::{PeerAddr, PeerCertificates};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may sit with no request in flight.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a new connection may take to start its first request, whatever
/// the protocol (an HTTP/2 client that never opens a stream included).
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often idleness is checked.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How long an idle connection gets to close gracefully before it is
/// dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// HTTP/2 limits: streams per connection, and flow-control windows sized to
/// the 64 KiB body limit, so that one connection cannot make the server
/// buffer much.
const H2_MAX_STREAMS: u32 = 32;
const H2_STREAM_WINDOW: u32 = 64 * 1024;
const H2_CONNECTION_WINDOW: u32 = 256 * 1024;
const MAX_HEADER_BYTES: u32 = 16 * 1024;
/// How often an idle HTTP/2 connection is pinged, and how long the answer
/// may take before the connection is closed.
const H2_KEEP_ALIVE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(10));

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    any_started: AtomicBool,
    last_end: Mutex<Instant>,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.any_started.store(true, Ordering::SeqCst);
        RequestGuard(Arc::clone(self))
    }

    /// True when the connection has been idle too long: no request in
    /// flight, and none started within [`FIRST_REQUEST_TIMEOUT`] of the
    /// handshake or none for [`IDLE_TIMEOUT`] since the last one ended.
    fn overstayed(&self) -> bool {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let limit = if self.any_started.load(Ordering::SeqCst) {
            IDLE_TIMEOUT
        } else {
            FIRST_REQUEST_TIMEOUT
        };
        self.last_end
            .lock()
            .map(|last| last.elapsed() >= limit)
            .unwrap_or(true)
    }
}

struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if let Ok(mut last) = self.0.last_end.lock() {
            *last = Instant::now();
        }
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one accepted TCP connection to the end.
pub(super) async fn serve(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    app: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = tcp.peer_addr().ok();
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(?peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(?peer, "TLS handshake timed out");
            return;
        }
    };
    let chain: Option<Arc<[_]>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect());
    let app = match chain {
        Some(chain) => app.layer(Extension(PeerCertificates(chain))),
        None => app,
    };
    let app = match peer {
        Some(peer) => app.layer(Extension(PeerAddr(peer))),
        None => app,
    };
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        any_started: AtomicBool::new(false),
        last_end: Mutex::new(Instant::now()),
    });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let guard = activity.begin();
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(guard);
                response
            }
        })
    };

    let builder = http_builder();
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let mut idle_check = tokio::time::interval(IDLE_CHECK);
    let mut closing = false;
    let mut drop_at: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(?peer, %error, "connection ended with an error");
                }
                return;
            }
            _ = idle_check.tick() => {
                if drop_at.is_some_and(|at| Instant::now() >= at) {
                    tracing::debug!(?peer, "dropping a connection that would not close");
                    return;
                }
                if !closing && activity.overstayed() {
                    closing = true;
                    drop_at = Some(Instant::now() + CLOSE_GRACE);
                    connection.as_mut().graceful_shutdown();
                }
            }
            _ = shutdown.changed(), if !closing => {
                // In-flight requests may finish; the server bounds the wait.
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// HTTP/1.1 and HTTP/2 with deadlines, so that a slow client cannot hold a
/// connection forever.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES as usize * 4);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE.0)
        .keep_alive_timeout(H2_KEEP_ALIVE.1)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_BYTES);
    builder
}
