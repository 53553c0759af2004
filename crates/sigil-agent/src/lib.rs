//! `sigil-agent`: the client library that agents embed to fetch their
//! SPIFFE X509-SVID from a Sigil CA at start-up and renew it by themselves.
//!
//! This crate is an empty shell so far: the agent library lands after
//! renewal. Nothing here is usable yet.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
