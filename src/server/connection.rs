//! One client connection: the TLS handshake (with a deadline), then HTTP/1.1
//! or HTTP/2 with deadlines of its own, closed gracefully when it has been
//! idle too long or when the server shuts down.

use std::sync::atomic::{AtomicUsize, Ordering};
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
/// How often idleness is checked.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// How often an idle HTTP/2 connection is pinged, and how long the answer
/// may take before the connection is closed.
const H2_KEEP_ALIVE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(10));

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    last_end: Mutex<Instant>,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        RequestGuard(Arc::clone(self))
    }

    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.last_end
            .lock()
            .map(|last| last.elapsed())
            .unwrap_or_default()
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
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(?peer, %error, "connection ended with an error");
                }
                return;
            }
            _ = idle_check.tick(), if !closing => {
                if activity.idle_for() >= IDLE_TIMEOUT {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            _ = shutdown.changed(), if !closing => {
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
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE.0)
        .keep_alive_timeout(H2_KEEP_ALIVE.1);
    builder
}
