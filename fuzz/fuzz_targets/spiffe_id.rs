// Run with: cargo fuzz run spiffe_id   (from the repository root)
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::{SpiffeId, TrustDomain};

fuzz_target!(|text: &str| {
    if let Ok(id) = text.parse::<SpiffeId>() {
        // A parsed ID prints back exactly and re-parses to itself.
        assert_eq!(id.as_str(), text);
        assert_eq!(id.as_str().parse::<SpiffeId>().ok(), Some(id.clone()));
        assert!(id.is_member_of(id.trust_domain()));
    }
    if let Ok(td) = text.parse::<TrustDomain>() {
        assert_eq!(td.as_str(), text);
    }
});
