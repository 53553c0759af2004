//! The one rustls crypto provider Sigil uses everywhere: ring. Chosen
//! explicitly, so that no aws-lc build and no process-wide default is
//! needed (a plain `builder()` panics when two providers are compiled in).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// ring's provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
