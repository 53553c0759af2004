use std::process::ExitCode;

fn main() -> ExitCode {
    sigil::cli::main()
}

/// mimalloc instead of glibc's malloc: under issuance load, buffers are
/// allocated on one thread (a runtime worker) and freed on another (the
/// store's), which glibc's per-thread arenas handle poorly;
/// BENCHMARKS.md has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
