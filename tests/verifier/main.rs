//! `sigil-verifier` end to end: a real `sigil serve`, a server on loopback
//! that verifies its callers with a LIVE trust source following that CA
//! (`LiveSource::from_fingerprint`), and real clients (rustls, curl, the
//! crate's examples) presenting SVIDs the CA issued — or deliberately bad
//! certificates signed with the CA's real issuing key.
//!
//! Refusals are observed where they are observable: on the client side as
//! the TLS alert the server sent (under TLS 1.3 it arrives on the client's
//! first read, so every attempt makes a request), and on the server side by
//! calling `SpiffeClientVerifier::verify` on the same chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

// What the tests share: the CA and its SVIDs, the echo servers, the client.
mod ca;
mod client;
mod echo;

// The tests, by what they check.
mod examples;
mod policy;
mod refusals;
mod revocation;
