// Run with: cargo fuzz run svid_request   (from the repository root)
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil::join_token;
use sigil_core::wire::{Attestation, JoinTokenRequest, SvidRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(SvidRequest {
        attestation: Attestation::JoinToken { token },
        ..
    }) = serde_json::from_slice::<SvidRequest>(data)
    {
        let _ = join_token::lookup_id(&token);
    }
    let _ = serde_json::from_slice::<JoinTokenRequest>(data);
});
