//! Sigil: a small certificate authority that gives AI agents and other
//! workloads short-lived, attested SPIFFE X509-SVIDs.
//!
//! This crate is the CA service and its command line. The pieces that agents
//! and servers embed live in `sigil-agent` and `sigil-verifier`; what all of
//! them share lives in `sigil-core`.
#![forbid(unsafe_code)]

pub mod api;
pub mod attestation;
pub mod audit;
pub mod ca;
pub mod cli;
pub mod client;
pub mod config;
pub mod crl_board;
pub mod crypto_provider;
pub mod csr;
pub mod datadir;
pub mod dev;
pub mod duration;
pub mod hostname;
pub mod issuance;
pub mod join_token;
pub mod metrics;
pub mod namespace;
pub mod revocation;
pub mod rfc3339;
pub mod root_rotation;
pub mod rotation;
pub mod serial;
pub mod server;
pub mod store;
pub mod svid;
