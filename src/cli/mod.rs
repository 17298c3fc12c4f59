//! The command line: `hotline serve`, `hotline check`, `hotline simulate`,
//! `hotline report`, `hotline cases`, `hotline oncall`, `hotline test-sms`,
//! `hotline texts export|import`.
//!
//! Exit codes: `serve` 0 after a clean shutdown, 64 (EX_USAGE) on a bad
//! config, 69 (EX_UNAVAILABLE) when a port or the store cannot be had;
//! `check` 0 clean, 1 errors, 3 warnings only, 2 config unreadable;
//! `simulate` 0;
//! `report` 0, 64 on a bad config or argument or on the memory store (whose
//! cases live only inside the running gateway), 69 when Redis cannot be
//! read; `cases` 0, 64 on a bad config, 69 when the store (or, on the
//! memory store, the running gateway's admin listener) cannot be read;
//! `oncall` 0, 64 on a bad config or argument or without dispatch;
//! `texts` 0, 1 rows or a result rejected (nothing written), 64 a bad
//! config, argument or CSV file. Each
//! failure is a [`CliError`], which says which code it gets.
//!
//! One file per command (`serve`, `check`, `simulate`, `report`, `cases`,
//! `oncall`, `test_sms`, `texts`); `error`
//! holds [`CliError`].

mod cases;
mod check;
mod error;
mod oncall;
mod report;
mod serve;
mod simulate;
mod test_sms;
mod texts;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::{self, Config, Env, LoadError, StoreKind};
use crate::problem::Problem;
use crate::store::redis::{RedisOptions, RedisStore};
use crate::store::{Store, StoreError};

pub use error::CliError;
pub use texts::HEADER as TEXTS_CSV_HEADER;

/// EX_USAGE: the configuration is wrong.
pub const EXIT_CONFIG: u8 = 64;
/// EX_UNAVAILABLE: a port or the store cannot be had.
pub const EXIT_UNAVAILABLE: u8 = 69;

/// hotline — an SMS/USSD gateway that gets urgent legal help to women
/// detained by police.
#[derive(Debug, Parser)]
#[command(name = "hotline", version = crate::LONG_VERSION, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (default: $HOTLINE_CONFIG, else config/hotline.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the config and flows; measure every screen.
    Check {
        /// Config file (default: $HOTLINE_CONFIG, else config/hotline.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also list every screen with its length, encoding and SMS parts.
        #[arg(long)]
        screens: bool,
    },
    /// Statistics safe to publish: cases by city, week, situation and abuse
    /// type, and time to accept; outcome tables by quarter (outcome × city,
    /// outcome × abuse type, time to accept × outcome) and how many closed
    /// cases had no outcome given; small counts suppressed.
    ///
    /// Reads the cases in Redis (HOTLINE_REDIS_URL). Exit codes: 0 printed;
    /// 64 a bad config or argument, or the memory store (its cases live only
    /// inside the running gateway, out of this command's reach); 69 Redis
    /// cannot be reached or read.
    Report {
        /// Config file (default: $HOTLINE_CONFIG, else config/hotline.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// `md` or `csv`.
        #[arg(long, default_value = "md")]
        format: String,
        /// Counts below this are suppressed.
        #[arg(long, default_value_t = 5)]
        threshold: u64,
        /// Only this city's cases (a city id of the flows: `osh`), for one
        /// working group.
        #[arg(long)]
        city: Option<String>,
    },
    /// Send a lawyer the welcome SMS (the commands; she replies OK, which
    /// confirms her number).
    ///
    /// With Redis the welcome is queued in the store for the running
    /// gateways to send; with the memory store the running gateway is asked
    /// through its admin listener (`POST /test-sms`, bearer token from
    /// HOTLINE_ADMIN_TOKEN). Exit codes: 0 queued; 64 a bad config or an
    /// unknown lawyer or a refused token; 69 the store or gateway cannot be
    /// reached.
    TestSms {
        /// The lawyer: roster id or name (Latin or Cyrillic).
        lawyer: String,
        /// Config file (default: $HOTLINE_CONFIG, else config/hotline.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The gateway's admin URL (default: http:// + the config's admin listener).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Open cases by city: code, age, level and pass, who was offered and
    /// when, who accepted and after how long. Never a number or a place.
    ///
    /// Reads Redis directly; with the memory store, asks the running
    /// gateway's admin listener (HOTLINE_ADMIN_LISTEN; HOTLINE_ADMIN_TOKEN
    /// as bearer token when set). Exit codes: 0 printed; 64 a bad config;
    /// 69 the store or the gateway cannot be read.
    Cases {
        /// Config file (default: $HOTLINE_CONFIG, else config/hotline.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also the cases closed in the last 72 hours.
        #[arg(long)]
        all: bool,
        /// Only this city (its id, as in the roster).
        #[arg(long)]
        city: Option<String>,
    },
    /// The on-call schedule per city in local time: shifts, overrides,
    /// gaps. Exit codes: 0 printed; 64 a bad config, argument, or no
    /// dispatch configured.
    Oncall {
        /// Config file (default: $HOTLINE_CONFIG, else config/hotline.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// How many days ahead, from now.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Only this city.
        #[arg(long)]
        city: Option<String>,
    },
    /// Every text a woman or a lawyer reads, as CSV for translators, and
    /// back into the TOML files (comments kept).
    Texts {
        /// `export` or `import`.
        #[command(subcommand)]
        action: TextsAction,
    },
    /// An interactive phone in the terminal, running a flow over USSD; then
    /// the offer to the lawyer, answered as her, with timers fast-forwarded
    /// (`:wait 10m`).
    Simulate {
        /// Config file (default: $HOTLINE_CONFIG, else config/hotline.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The flow to run (default: the config's default flow).
        #[arg(long)]
        flow: Option<String>,
        /// The caller's number; its country decides which options show.
        #[arg(long, default_value = "+996555000001")]
        number: String,
        /// After her last screen, answer as this lawyer (her roster id or
        /// name, any case; by default the lawyer who got the offer).
        #[arg(long)]
        lawyer: Option<String>,
    },
}

/// `hotline texts` subcommands.
#[derive(Debug, Subcommand)]
pub enum TextsAction {
    /// Every screen, message and lawyer text as CSV: file, key_path, node,
    /// language, kind, limit, length, encoding, text. Exit codes: 0
    /// written; 64 a bad config or argument.
    Export {
        /// Config file (default: $HOTLINE_CONFIG, else config/hotline.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Only `csv`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Write the texts of a CSV (as exported, edited) back into the TOML
    /// files. Every row is checked first (file and key known, length within
    /// its limit, the same placeholders), then the result as `hotline check`
    /// would; nothing is written unless all pass. Exit codes: 0 written or
    /// nothing to change; 1 rejected, nothing written; 64 a bad config,
    /// argument or CSV file.
    Import {
        /// The CSV file.
        csv: PathBuf,
        /// Config file (default: $HOTLINE_CONFIG, else config/hotline.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The log filter without `RUST_LOG`: `info`, but only errors from the
/// Redis client, whose own warnings during a cluster outage (a line per
/// failed connection and slot refresh: ~1,800 in 30 s per instance, Redis
/// Cluster audit) buried the gateway's; the gateway logs a store outage
/// itself, once.
pub const DEFAULT_LOG_FILTER: &str = "info,redis=error";

/// Set up logging: `RUST_LOG` (default [`DEFAULT_LOG_FILTER`]), text or
/// JSON lines on stderr.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if json {
        let _ = builder.json().flatten_event(true).try_init();
    } else {
        let _ = builder.try_init();
    }
}

fn print_problems(problems: &[Problem]) {
    for p in problems {
        let tag = if p.is_error() { "error" } else { "warning" };
        eprintln!("{tag}: {p}");
    }
}

fn load_config(flag: Option<&Path>, env: &dyn Env) -> Result<(Config, Vec<Problem>), LoadError> {
    config::load(&config::config_path(flag, env), env)
}

/// Run the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve::serve(config),
        Command::Check { config, screens } => check::check(config, screens),
        Command::Simulate {
            config,
            flow,
            number,
            lawyer,
        } => simulate::simulate(config, flow, &number, lawyer),
        Command::Report {
            config,
            format,
            threshold,
            city,
        } => report::report(config, &format, threshold, city.as_deref()),
        Command::Cases { config, all, city } => {
            cases::cases(config, crate::dispatch::board::Filter { all, city })
        }
        Command::Oncall { config, days, city } => oncall::oncall(config, days, city),
        Command::Texts { action } => match action {
            TextsAction::Export {
                config,
                format,
                output,
            } => texts::export(config, &format, output),
            TextsAction::Import {
                csv,
                config,
                dry_run,
            } => texts::import(config, &csv, dry_run),
        },
        Command::TestSms {
            lawyer,
            config,
            admin,
        } => test_sms::test_sms(config, &lawyer, admin),
    }
}

/// Build the store a config asks for.
///
/// # Errors
/// [`CliError::Store`] when Redis is asked for and cannot be used.
pub async fn build_store(config: &Config) -> Result<Arc<dyn Store>, CliError> {
    match &config.store.kind {
        StoreKind::Memory => Ok(App::memory_store(config)),
        StoreKind::Redis(url) => {
            let tls_ca = match &config.store.tls_ca_file {
                Some(path) => Some(
                    std::fs::read(path)
                        .map_err(|e| CliError::Store(StoreError::Unavailable(Box::new(e))))?,
                ),
                None => None,
            };
            let opts = RedisOptions {
                connect_timeout: config.store.connect_timeout,
                response_timeout: config.store.response_timeout,
                tls_ca,
            };
            let store = RedisStore::connect_with(url, &config.store.key_prefix, &opts)
                .await
                .map_err(CliError::Store)?;
            Ok(Arc::new(store))
        }
    }
}
