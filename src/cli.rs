//! The command line: `hotline serve`, `hotline check`, `hotline simulate`,
//! `hotline report`.
//!
//! Exit codes: `serve` 0 after a clean shutdown, 64 (EX_USAGE) on a bad
//! config, 69 (EX_UNAVAILABLE) when a port or the store cannot be had;
//! `check` 0 clean, 1 problems found, 2 config unreadable; `simulate` 0;
//! `report` 0, 64 on a bad config or argument or on the memory store (whose
//! cases live only inside the running gateway), 69 when Redis cannot be
//! read. Each failure is a [`CliError`], which says which code it gets.

use std::collections::HashMap;
use std::error::Error as _;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::channel::{Channel, UssdIn, UssdInput};
use crate::clock::Clock;
use crate::config::{self, ChannelKind, Config, Env, LoadError, ProcessEnv, StoreKind};
use crate::dispatch::Dispatcher;
use crate::flow::{FlowSet, lint};
use crate::phone::PhoneNumber;
use crate::problem::Problem;
use crate::store::{Store, StoreError};
use crate::text::measure;

/// EX_USAGE: the configuration is wrong.
pub const EXIT_CONFIG: u8 = 64;
/// EX_UNAVAILABLE: a port or the store cannot be had.
pub const EXIT_UNAVAILABLE: u8 = 69;

/// hotline — an SMS/USSD gateway that gets urgent legal help to women
/// detained by police.
#[derive(Debug, Parser)]
#[command(name = "hotline", version, about)]
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
    /// type, and time to accept; small counts suppressed.
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
    },
    /// An interactive phone in the terminal, running a flow over USSD.
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
    },
}

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
            | CliError::ReadCases(_) => ExitCode::from(EXIT_UNAVAILABLE),
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
fn fail(e: &CliError) -> ExitCode {
    match e {
        CliError::Config(load) => print_problems(load.problems()),
        CliError::Build(problems) => print_problems(problems),
        other => eprintln!("hotline: {}", with_sources(other)),
    }
    e.exit_code()
}

/// Set up logging: `RUST_LOG` (default `info`), text or JSON lines on stderr.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
        Command::Serve { config } => serve(config),
        Command::Check { config, screens } => check(config, screens),
        Command::Simulate {
            config,
            flow,
            number,
        } => simulate(config, flow, &number),
        Command::Report {
            config,
            format,
            threshold,
        } => report(config, &format, threshold),
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
            let store = crate::store::redis::RedisStore::connect(
                url,
                &config.store.key_prefix,
                config.store.connect_timeout,
                config.store.response_timeout,
            )
            .await
            .map_err(CliError::Store)?;
            Ok(Arc::new(store))
        }
    }
}

// ---------------------------------------------------------------- serve

const NOT_STARTING: &str = "hotline: configuration is not valid; not starting";

fn serve(flag: Option<PathBuf>) -> ExitCode {
    let env = ProcessEnv;
    let (config, warnings) = match load_config(flag.as_deref(), &env) {
        Ok(x) => x,
        Err(e) => {
            init_logging(false);
            print_problems(e.problems());
            eprintln!("{NOT_STARTING}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(config.server.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&CliError::Runtime(e)),
    };
    runtime.block_on(async move {
        match serve_until_shutdown(config, &warnings, &env).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log_serve_failure(&e);
                e.exit_code()
            }
        }
    })
}

/// Connect the store, build the app, bind both listeners and serve until a
/// shutdown signal.
async fn serve_until_shutdown(
    config: Config,
    warnings: &[Problem],
    env: &dyn Env,
) -> Result<(), CliError> {
    let store = build_store(&config).await?;
    let (app, flow_warnings) =
        App::build(config, store, Clock::System, env).map_err(CliError::Build)?;
    log_warnings(&app, warnings, &flow_warnings);
    // Install the signal handlers before anyone can see us listening.
    let shutdown = crate::server::shutdown_signal();
    let public = bind("webhook", app.config.server.listen).await?;
    let admin = bind("admin", app.config.server.admin_listen).await?;
    let public_addr = public
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let admin_addr = admin
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        public = %public_addr,
        admin = %admin_addr,
        store = app.conversations.store.kind(),
        flows = app.conversations.flows.flows.len(),
        channels = app.channels.len(),
        "hotline listening"
    );
    crate::server::run(app, public, admin, shutdown)
        .await
        .map_err(CliError::Server)
}

async fn bind(
    listener: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, CliError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Bind {
            listener,
            addr,
            source,
        })
}

/// `serve` logs (the runbook names these messages) instead of printing.
fn log_serve_failure(e: &CliError) {
    let source = e.source().map(ToString::to_string).unwrap_or_default();
    match e {
        CliError::Config(load) => {
            print_problems(load.problems());
            eprintln!("{NOT_STARTING}");
        }
        CliError::Build(problems) => {
            print_problems(problems);
            eprintln!("{NOT_STARTING}");
        }
        CliError::Store(_) => tracing::error!(error = %source, "cannot use the configured store"),
        CliError::Bind { addr, .. } => tracing::error!(addr = %addr, error = %source, "{e}"),
        _ => tracing::error!(error = %source, "{e}"),
    }
}

/// What an operator should know before the gateway takes traffic.
fn log_warnings(app: &App, warnings: &[Problem], flow_warnings: &[Problem]) {
    for p in warnings.iter().chain(flow_warnings) {
        tracing::warn!(problem = %p, "configuration warning");
    }
    if app.config.privacy.is_dev_key {
        tracing::warn!(
            "HOTLINE_PII_KEY is not set: using the public development key. Pseudonyms and sealed data are NOT protected. Never run like this with real callers."
        );
    }
    if let Some(d) = &app.dispatcher
        && !d.sending_channels.contains(&d.sms_channel)
    {
        tracing::warn!(channel = %d.sms_channel, "dispatch channel cannot send (no sending credentials): offers to lawyers will fail");
    }
    for name in &app.config.disabled_channels {
        tracing::info!(channel = %name, "channel is disabled (enabled = false); its webhooks answer 404");
    }
    for ch in &app.config.channels {
        if ch.secret.is_none() && ch.allow_ips.is_empty() && ch.kind != ChannelKind::Twilio {
            tracing::warn!(channel = %ch.name, "channel accepts unauthenticated requests: set secret_env or allow_ips before going live");
        }
    }
}

// ---------------------------------------------------------------- check

fn check(flag: Option<PathBuf>, list_screens: bool) -> ExitCode {
    let env = ProcessEnv;
    let (config, mut problems) = match load_config(flag.as_deref(), &env) {
        Ok(x) => x,
        Err(e) => {
            print_problems(e.problems());
            return ExitCode::from(match e {
                LoadError::Unreadable(_) => 2,
                LoadError::Invalid(_) => 1,
            });
        }
    };
    let (flows, mut flow_problems) = crate::app::load_flows(&config);
    let (channels, mut channel_problems) = crate::app::build_channels(&config, &flows);
    problems.append(&mut flow_problems);
    problems.append(&mut channel_problems);
    let flows = Arc::new(flows);
    let (dispatcher, mut dispatch_problems) = check_dispatch(&config, &flows, &channels, &env);
    problems.append(&mut dispatch_problems);
    if let Some(d) = &dispatcher {
        print_dispatch(d);
    }
    print_flows(&flows, list_screens);
    println!(
        "{}: {} channel(s), store {}, {} flow(s)",
        config.source,
        channels.len(),
        match config.store.kind {
            StoreKind::Memory => "memory",
            StoreKind::Redis(_) => "redis",
        },
        flows.flows.len()
    );
    print_problems(&problems);
    if problems.is_empty() {
        println!("no problems found");
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s) found", problems.len());
        ExitCode::from(1)
    }
}

/// Load the roster and texts as `serve` would, to report their problems.
fn check_dispatch(
    config: &Config,
    flows: &Arc<FlowSet>,
    channels: &HashMap<String, Arc<dyn Channel>>,
    env: &dyn Env,
) -> (Option<Arc<Dispatcher>>, Vec<Problem>) {
    let privacy = crate::privacy::Privacy::new(&config.privacy.pii_key);
    crate::app::load_dispatch(
        config,
        flows,
        channels,
        &privacy,
        env,
        Clock::System.now_ms(),
    )
}

fn print_dispatch(d: &Dispatcher) {
    println!(
        "{}: {} lawyers, cities {}; offers go out on channel {:?}{}",
        d.roster.source,
        d.roster.lawyers().count(),
        d.roster.city_ids().join(", "),
        d.sms_channel,
        if d.sending_channels.contains(&d.sms_channel) {
            ""
        } else {
            " (which has no sending credentials here)"
        }
    );
}

/// One line per flow; with `list_screens`, one per screen too.
fn print_flows(flows: &FlowSet, list_screens: bool) {
    for flow in flows.flows.values() {
        let screens = lint::screens(flow);
        let worst = screens
            .iter()
            .map(|s| s.measure.sms_segments())
            .max()
            .unwrap_or(0);
        println!(
            "{}: flow {:?}, {} languages, {} screens, every screen at most {} SMS part(s)",
            flow.source,
            flow.id(),
            flow.spec.languages.len(),
            screens.len(),
            worst
        );
        if !list_screens {
            continue;
        }
        for s in &screens {
            println!(
                "  {}.{} [country {}{}]: {}/{} {} · SMS {} part(s)",
                s.key,
                s.lang,
                s.country,
                if s.reprompt { ", re-prompt" } else { "" },
                s.measure.units,
                s.measure.ussd_limit(),
                s.measure.encoding,
                s.measure.sms_segments()
            );
        }
    }
}

// ---------------------------------------------------------------- simulate

fn simulate(flag: Option<PathBuf>, flow: Option<String>, number: &str) -> ExitCode {
    let (app, flow_id, from) = match simulated_phone(flag, flow, number) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let session_id = format!("sim-{:08x}", rand::random::<u32>());
    let mut text = String::new();
    let mut out = std::io::stdout();
    let mut lines = std::io::stdin().lock().lines();
    let mut screen_no = 1;
    loop {
        let answer = runtime.block_on(app.conversations.ussd(
            "simulator",
            &flow_id,
            UssdIn {
                session_id: session_id.clone(),
                from: from.clone(),
                service_code: "*000#".into(),
                input: UssdInput::Cumulative(text.clone()),
            },
        ));
        print_screen(&mut out, screen_no, &answer.text, answer.end);
        if answer.end {
            let _ = writeln!(out, "── session over ──");
            return ExitCode::SUCCESS;
        }
        let _ = write!(out, "> ");
        let _ = out.flush();
        let Some(Ok(line)) = lines.next() else {
            let _ = writeln!(out);
            return ExitCode::SUCCESS;
        };
        if !text.is_empty() || screen_no > 1 {
            text.push('*');
        }
        text.push_str(line.trim_end_matches(['\r', '\n']));
        screen_no += 1;
    }
}

/// The app on a memory store, the flow to run and the caller's number.
fn simulated_phone(
    flag: Option<PathBuf>,
    flow: Option<String>,
    number: &str,
) -> Result<(App, String, PhoneNumber), CliError> {
    let env = ProcessEnv;
    let (config, _) = load_config(flag.as_deref(), &env)?;
    let from = PhoneNumber::parse_international(number).map_err(|_| {
        CliError::Usage("--number must be an international number like +996555000001".into())
    })?;
    let store = App::memory_store(&config);
    let (app, _) = App::build(config, store, Clock::System, &env).map_err(CliError::Build)?;
    let flow_id = flow.unwrap_or_else(|| app.config.flows.default.clone());
    if app.conversations.flows.get(&flow_id).is_none() {
        return Err(CliError::Usage(format!("no flow {flow_id:?}")));
    }
    Ok((app, flow_id, from))
}

/// A screen as a handset would show it, with its length and encoding.
fn print_screen(out: &mut impl Write, screen_no: u32, text: &str, end: bool) {
    let m = measure(text);
    let verdict = if m.fits_ussd() { "fits" } else { "TOO LONG" };
    let _ = writeln!(
        out,
        "── screen {screen_no} · {} · {}/{} characters · {} · {verdict} ──",
        if end { "END" } else { "CON" },
        m.units,
        m.ussd_limit(),
        m.encoding
    );
    let _ = writeln!(out, "{text}");
}

// ---------------------------------------------------------------- report

fn report(flag: Option<PathBuf>, format: &str, threshold: u64) -> ExitCode {
    let config = match report_config(flag, format) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(report_text(&config, format, threshold.max(1))) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// The config to report on, refusing what cannot work: a format other than
/// `md` or `csv`, or the memory store (nothing to read from this process).
fn report_config(flag: Option<PathBuf>, format: &str) -> Result<Config, CliError> {
    if format != "md" && format != "csv" {
        return Err(CliError::Usage("--format must be md or csv".into()));
    }
    let (config, _) = load_config(flag.as_deref(), &ProcessEnv)?;
    if config.store.kind == StoreKind::Memory {
        return Err(CliError::MemoryStore);
    }
    Ok(config)
}

async fn report_text(config: &Config, format: &str, threshold: u64) -> Result<String, CliError> {
    let store = build_store(config).await?;
    let privacy = crate::privacy::Privacy::new(&config.privacy.pii_key);
    let stats = crate::dispatch::report::collect(store.as_ref(), &privacy)
        .await
        .map_err(CliError::ReadCases)?;
    let tables = crate::dispatch::report::build(&stats, threshold);
    Ok(if format == "csv" {
        crate::dispatch::report::to_csv(&tables, threshold)
    } else {
        crate::dispatch::report::to_markdown(&tables, threshold)
    })
}
