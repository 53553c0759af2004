//! JWT attestation end to end: a real `sigil serve` with two attestors
//! (Kubernetes service-account tokens, GitHub Actions OIDC tokens), tokens
//! signed here with keys made here (RSA, ECDSA P-256, Ed25519), JWKS from a
//! file or from a local HTTPS identity provider with its own CA, and
//! `sigil agent --jwt-file`. Every refusal is a 401 that says what is wrong
//! and a counted record in the audit log; no token is ever logged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod fixture;
mod idp;
mod signer;

mod agent;
mod claims;
mod flood;
mod forgery;
mod issuance;
mod remote;
mod replay;
