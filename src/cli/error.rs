//! Why a command stopped, and the exit code that says so.

use std::net::SocketAddr;
use std::process::ExitCode;

use super::{EXIT_CONFIG, EXIT_UNAVAILABLE, print_problems};
use crate::config::LoadError;
use crate::problem::Problem;
use crate::store::StoreError;

/// Why a command stopped. Each kind has its exit code ([`CliError::exit_code`]);
/// the underlying error stays reachable through `source()`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config file cannot be read or is not valid.
    #[error("configuration is not valid")]
    Config(#[from] LoadError),
    /// The config loaded, but the flows, channels or roster it names have errors.
    #[error("configuration is not valid")]
    Build(Vec<Problem>),
    /// A command-line argument is wrong.
    #[error("{0}")]
    Usage(String),
    /// The configured store cannot be used (Redis unreachable).
    #[error("cannot use the store")]
    Store(#[source] StoreError),
    /// `report` with the memory store: its cases live inside the running
    /// gateway's process, which another process cannot read.
    #[error(
        "cannot report on the memory store: its cases live only inside the running gateway's process. Set HOTLINE_REDIS_URL to report on a Redis store"
    )]
    MemoryStore,
    /// The async runtime cannot start.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// A listener cannot be bound.
    #[error("cannot bind the {listener} listener")]
    Bind {
        /// `webhook` or `admin`.
        listener: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The store's cases cannot be read.
    #[error("cannot read cases")]
    ReadCases(#[source] StoreError),
    /// A running gateway's admin listener cannot be read (`hotline cases`
    /// on the memory store).
    #[error("cannot read the running gateway's cases from its admin listener: {0}")]
    Admin(String),
    /// A running gateway's admin listener cannot be reached, or answered
    /// an error (`hotline test-sms` on the memory store).
    #[error("the running gateway's admin listener: {0}")]
    Gateway(String),
    /// The server stopped with an error.
    #[error("server failed")]
    Server(#[source] std::io::Error),
}

impl CliError {
    /// The exit code: 64 (EX_USAGE) for what the operator must fix in the
    /// config or the command line, 69 (EX_UNAVAILABLE) for what may come
    /// back by itself (a port, Redis), 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_)
            | CliError::Build(_)
            | CliError::Usage(_)
            | CliError::MemoryStore => ExitCode::from(EXIT_CONFIG),
            CliError::Store(_)
            | CliError::Runtime(_)
            | CliError::Bind { .. }
            | CliError::ReadCases(_)
            | CliError::Admin(_)
            | CliError::Gateway(_) => ExitCode::from(EXIT_UNAVAILABLE),
            CliError::Server(_) => ExitCode::FAILURE,
        }
    }
}

/// The error and every source under it, joined by `: `.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Tell the operator on stderr why a command stopped; its exit code.
pub(super) fn fail(e: &CliError) -> ExitCode {
    match e {
        CliError::Config(load) => print_problems(load.problems()),
        CliError::Build(problems) => print_problems(problems),
        other => eprintln!("hotline: {}", with_sources(other)),
    }
    e.exit_code()
}
