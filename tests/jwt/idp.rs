//! A private identity provider's JWKS endpoint: HTTPS on 127.0.0.1 with a
//! certificate from its own test CA (rcgen), serving a JWKS the test can
//! change, and noting when each fetch arrived.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

/// A CA of its own, and a certificate for 127.0.0.1 it signed.
pub(crate) struct TestCa {
    pub(crate) ca_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, &ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "idp.test");
        let leaf_cert = leaf.signed_by(&key, &issuer).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            server_cert: leaf_cert.der().clone(),
            server_key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

#[derive(Default)]
struct State {
    jwks: Mutex<String>,
    /// When each `GET /jwks` arrived.
    fetches: Mutex<Vec<Instant>>,
    /// Answer 503, as an identity provider that is down.
    down: AtomicBool,
    /// Milliseconds to wait before answering, as a slow one.
    delay_ms: AtomicU64,
}

impl State {
    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, body) = if path != "/jwks" {
            (StatusCode::NOT_FOUND, String::new())
        } else {
            self.fetches.lock().unwrap().push(Instant::now());
            if self.down.load(Ordering::SeqCst) {
                (StatusCode::SERVICE_UNAVAILABLE, String::new())
            } else {
                (StatusCode::OK, self.jwks.lock().unwrap().clone())
            }
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }
}

/// The JWKS endpoint; stops when dropped.
pub(crate) struct Idp {
    /// `https://127.0.0.1:PORT/jwks`.
    pub(crate) url: String,
    state: Arc<State>,
    /// Runs the server; dropping it stops it.
    _runtime: tokio::runtime::Runtime,
}

impl Idp {
    /// Serves `jwks` over HTTPS with `ca`'s certificate for 127.0.0.1.
    pub(crate) fn start(ca: &TestCa, jwks: &Value) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ca.server_cert.clone()], ca.server_key.clone_key())
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("https://{}/jwks", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        *state.jwks.lock().unwrap() = jwks.to_string();
        let serving = Arc::clone(&state);
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request: Request<Incoming>| {
                        let answer = state.answer(request.uri().path());
                        let delay = state.delay_ms.load(Ordering::SeqCst);
                        async move {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                            Ok::<_, Infallible>(answer)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            url,
            state,
            _runtime: runtime,
        }
    }

    /// Serves this JWKS from now on.
    pub(crate) fn serve(&self, jwks: &Value) {
        *self.state.jwks.lock().unwrap() = jwks.to_string();
    }

    /// Answers 503 (or the JWKS again).
    pub(crate) fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Answers each fetch this much later.
    pub(crate) fn set_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap();
        self.state.delay_ms.store(millis, Ordering::SeqCst);
    }

    /// How many fetches arrived so far.
    pub(crate) fn fetches(&self) -> usize {
        self.state.fetches.lock().unwrap().len()
    }

    /// When each fetch arrived.
    pub(crate) fn fetch_times(&self) -> Vec<Instant> {
        self.state.fetches.lock().unwrap().clone()
    }

    /// Waits until the last fetch is more than `gap` old, so that the CA
    /// may fetch again for an unknown key.
    pub(crate) fn wait_since_last_fetch(&self, gap: Duration) {
        if let Some(last) = self.fetch_times().last() {
            let since = last.elapsed();
            if since < gap {
                std::thread::sleep(gap - since);
            }
        }
    }
}
