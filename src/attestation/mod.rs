//! Attestation beyond join tokens: a workload proves what it is with an
//! identity its platform already signed for it.

pub mod jwt;
