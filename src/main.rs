//! The `hotline` binary: everything lives in the library; see `hotline::cli`.
#![forbid(unsafe_code)]

/// mimalloc instead of glibc's malloc: a hop makes ~100 small allocations,
/// and glibc's allocator (with its fastbin consolidation) was the largest
/// single item of the embedded store's profile (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hotline::cli::main()
}
