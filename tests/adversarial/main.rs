//! The adversarial catalogue: one test per attack on a real `sigil serve`,
//! each showing the attack refused with its documented status and code,
//! and that it changed nothing — every row of the store is as it was, and
//! the audit log gained only the counted record of an anonymous refusal
//! (written when the server stops, see [`support::Snapshot`]).
//!
//! Two kinds of attack are answered otherwise, by design. A CSR that *asks*
//! for something (CA:true, name constraints, SANs, another identity, key
//! usages) is not refused: the CA takes only its public key and issues its
//! own leaf profile, which those tests check with x509-parser and openssl.
//! A renewal from a certificate its line has moved on from (a stolen SVID)
//! is refused with `lineage_fork` and changes exactly what DESIGN.md says:
//! the identity is banned and its live certificates are revoked.
//!
//! Attack families, one module each:
//! - `csr_asks`: CSRs asking for more than a leaf — issued as a plain SVID;
//! - `csr_refusals`: CSRs without proof of possession, with keys the CA does
//!   not accept, or not one well-formed PKCS#10 PEM block;
//! - `identities`: SPIFFE IDs with Unicode, upper case, dot segments,
//!   percent-encoding, another trust domain or the CA's namespace, on token
//!   creation, revocation and ban lifting; names a token may not bind and
//!   reasons a revocation may not give;
//! - `tokens`: replayed, expired, banned, forged, guessed and padded join
//!   tokens, and an unknown JWT attestor;
//! - `lifetimes`: TTLs beyond the bounds;
//! - `renewal`: renewing with a revoked, expired, foreign, forged, CA or
//!   superseded certificate (a lineage fork);
//! - `admin`: every admin route called by an agent and by nobody, and
//!   forged, unrecorded, foreign or revoked admin certificates;
//! - `requests`: oversized, deeply nested, duplicated or unknown JSON, broken
//!   or ambiguous HTTP/1.1 framing, wrong content types, methods and routes;
//! - `slowloris`: a thousand connections held open doing nothing, half a
//!   TLS handshake or half an HTTP request, while an agent gets its SVID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

// What the attacks share: the store snapshot, agents, CSR and certificate
// makers, a raw HTTP client.
mod support;

// The attacks, by family.
mod admin;
mod csr_asks;
mod csr_refusals;
mod identities;
mod lifetimes;
mod renewal;
mod requests;
mod slowloris;
mod tokens;
