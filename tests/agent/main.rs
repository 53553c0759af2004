//! `sigil-agent` against a real `sigil serve`: bootstrap from a pinned
//! fingerprint, attestation, renewal in the background with a fresh key,
//! and rustls configurations that follow each renewal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod configs;
mod library;
