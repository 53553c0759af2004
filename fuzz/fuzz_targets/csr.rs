// Run with: cargo fuzz run csr   (from the repository root)
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil::csr::{KeyPolicy, verify_csr_der, verify_csr_pem};

fuzz_target!(|data: &[u8]| {
    let policy = KeyPolicy { allow_rsa: true };
    let _ = verify_csr_der(data, policy);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify_csr_pem(text, policy);
    }
});
