// Run with: cargo fuzz run crl   (from the repository root)
//
// CRL loading in `sigil-verifier`: any bytes given as PEM CRLs to a trust
// source for the development trust domain are loaded or refused (a CRL
// must parse, be signed by a CA of the bundle and carry nothing the
// verifier cannot honour); never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_verifier::TrustSource;

const BUNDLE: &[u8] = include_bytes!("../../certs-dev/bundle.pem");

fuzz_target!(|data: &[u8]| {
    // The bundle is fixed and valid.
    let Ok(source) = TrustSource::from_pem(BUNDLE) else {
        return;
    };
    let _ = source.update_crls_pem(data);
});
