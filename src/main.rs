//! The `hotline` binary: everything lives in the library; see `hotline::cli`.
#![forbid(unsafe_code)]

/// mimalloc instead of glibc's malloc: a hop makes ~100 small allocations,
/// and glibc's allocator (with its fastbin consolidation) was the largest
/// single item of the embedded store's profile (docs/performance.md).
/// Built without its transparent-huge-page requests (`no_thp` in
/// Cargo.toml): with them the same 100,000 sessions held 11-12 MiB more.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hotline::cli::main()
}
