//! `sigil-verifier`: the rustls verifier that servers embed to accept only
//! callers with a valid, unrevoked SPIFFE X509-SVID their policy allows,
//! checked inside the TLS handshake.
//!
//! This crate is an empty shell so far: the verifier lands with the
//! revocation work. Nothing here is usable yet.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
