// Run with: cargo fuzz run config   (from the repository root)
//
// `sigil.toml` as `sigil serve` reads it: any text either parses or is
// refused with an error that names the file, line and key; never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sigil::config::ServerFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ServerFile::parse(text, Path::new("sigil.toml"));
    }
});
