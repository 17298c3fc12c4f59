//! The `hotline` binary: everything lives in the library; see `hotline::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hotline::cli::main()
}
