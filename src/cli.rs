//! The command line: `hotline serve`, `hotline check`, `hotline simulate`.
//!
//! Exit codes: `serve` 0 after a clean shutdown, 64 (EX_USAGE) on a bad
//! config, 69 (EX_UNAVAILABLE) when a port or the store cannot be had;
//! `check` 0 clean, 1 problems found, 2 config unreadable; `simulate` 0.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::channel::{UssdIn, UssdInput};
use crate::clock::Clock;
use crate::config::{self, Config, Env, LoadError, ProcessEnv, StoreKind};
use crate::flow::lint;
use crate::phone::PhoneNumber;
use crate::problem::Problem;
use crate::store::Store;
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

fn load_config(
    flag: Option<&std::path::Path>,
    env: &dyn Env,
) -> Result<(Config, Vec<Problem>), (u8, Vec<Problem>)> {
    let path = config::config_path(flag, env);
    match config::load(&path, env) {
        Ok(x) => Ok(x),
        Err(LoadError::Unreadable(p)) => Err((2, vec![p])),
        Err(LoadError::Invalid(ps)) => Err((1, ps)),
    }
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
/// A message when Redis is asked for and cannot be used.
pub async fn build_store(config: &Config) -> Result<Arc<dyn Store>, String> {
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
            .map_err(|e| e.to_string())?;
            Ok(Arc::new(store))
        }
    }
}

fn serve(flag: Option<PathBuf>) -> ExitCode {
    let env = ProcessEnv;
    let (config, warnings) = match load_config(flag.as_deref(), &env) {
        Ok(x) => x,
        Err((_, problems)) => {
            init_logging(false);
            print_problems(&problems);
            eprintln!("hotline: configuration is not valid; not starting");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(config.server.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hotline: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    runtime.block_on(async move {
        let store = match build_store(&config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot use the configured store");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
        };
        let (app, flow_warnings) = match App::build(config, store, Clock::System, &env) {
            Ok(x) => x,
            Err(problems) => {
                print_problems(&problems);
                eprintln!("hotline: configuration is not valid; not starting");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        for p in warnings.iter().chain(&flow_warnings) {
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
            if ch.secret.is_none() && ch.allow_ips.is_empty() && ch.kind != crate::config::ChannelKind::Twilio {
                tracing::warn!(channel = %ch.name, "channel accepts unauthenticated requests: set secret_env or allow_ips before going live");
            }
        }
        // Install the signal handlers before anyone can see us listening.
        let shutdown = crate::server::shutdown_signal();
        let public = match tokio::net::TcpListener::bind(app.config.server.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %app.config.server.listen, error = %e, "cannot bind the webhook listener");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
        };
        let admin = match tokio::net::TcpListener::bind(app.config.server.admin_listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %app.config.server.admin_listen, error = %e, "cannot bind the admin listener");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
        };
        let public_addr = public.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let admin_addr = admin.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(
            public = %public_addr,
            admin = %admin_addr,
            store = app.deps.store.kind(),
            flows = app.flows.flows.len(),
            channels = app.channels.len(),
            "hotline listening"
        );
        match crate::server::run(app, public, admin, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}

fn check(flag: Option<PathBuf>, list_screens: bool) -> ExitCode {
    let env = ProcessEnv;
    let (config, mut problems) = match load_config(flag.as_deref(), &env) {
        Ok(x) => x,
        Err((code, problems)) => {
            print_problems(&problems);
            return ExitCode::from(code);
        }
    };
    let (flows, mut flow_problems) = crate::app::load_flows(&config);
    let (channels, mut channel_problems) = crate::app::build_channels(&config, &flows);
    problems.append(&mut flow_problems);
    problems.append(&mut channel_problems);
    let flows = Arc::new(flows);
    let privacy = crate::privacy::Privacy::new(&config.privacy.pii_key);
    let (dispatcher, mut dispatch_problems) = crate::app::load_dispatch(
        &config,
        &flows,
        &channels,
        &privacy,
        &env,
        Clock::System.now_ms(),
    );
    problems.append(&mut dispatch_problems);
    if let Some(d) = &dispatcher {
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
        if list_screens {
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

fn simulate(flag: Option<PathBuf>, flow: Option<String>, number: &str) -> ExitCode {
    let env = ProcessEnv;
    let (config, _) = match load_config(flag.as_deref(), &env) {
        Ok(x) => x,
        Err((_, problems)) => {
            print_problems(&problems);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Ok(from) = PhoneNumber::parse_international(number) else {
        eprintln!("hotline: --number must be an international number like +996555000001");
        return ExitCode::from(EXIT_CONFIG);
    };
    let store = App::memory_store(&config);
    let (app, _) = match App::build(config, store, Clock::System, &env) {
        Ok(x) => x,
        Err(problems) => {
            print_problems(&problems);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let flow_id = flow.unwrap_or_else(|| app.config.flows.default.clone());
    if app.flows.get(&flow_id).is_none() {
        eprintln!("hotline: no flow {flow_id:?}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let session_id = format!("sim-{:08x}", rand::random::<u32>());
    let mut text = String::new();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut lines = stdin.lock().lines();
    let mut screen_no = 1;
    loop {
        let answer = runtime.block_on(app.gateway.conversations().ussd(
            "simulator",
            &flow_id,
            UssdIn {
                session_id: session_id.clone(),
                from: from.clone(),
                service_code: "*000#".into(),
                input: UssdInput::Cumulative(text.clone()),
            },
        ));
        let m = measure(&answer.text);
        let verdict = if m.fits_ussd() { "fits" } else { "TOO LONG" };
        let _ = writeln!(
            out,
            "── screen {screen_no} · {} · {}/{} characters · {} · {verdict} ──",
            if answer.end { "END" } else { "CON" },
            m.units,
            m.ussd_limit(),
            m.encoding
        );
        let _ = writeln!(out, "{}", answer.text);
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

fn report(flag: Option<PathBuf>, format: &str, threshold: u64) -> ExitCode {
    let env = ProcessEnv;
    if format != "md" && format != "csv" {
        eprintln!("hotline: --format must be md or csv");
        return ExitCode::from(EXIT_CONFIG);
    }
    let (config, _) = match load_config(flag.as_deref(), &env) {
        Ok(x) => x,
        Err((_, problems)) => {
            print_problems(&problems);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if config.store.kind == StoreKind::Memory {
        eprintln!(
            "hotline: the memory store keeps nothing between processes; set HOTLINE_REDIS_URL to report on the live store"
        );
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async move {
        let store = match build_store(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hotline: cannot use the store: {e}");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
        };
        let privacy = crate::privacy::Privacy::new(&config.privacy.pii_key);
        let stats = match crate::dispatch::report::collect(store.as_ref(), &privacy).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hotline: cannot read cases: {e}");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
        };
        let tables = crate::dispatch::report::build(&stats, threshold.max(1));
        let out = if format == "csv" {
            crate::dispatch::report::to_csv(&tables, threshold.max(1))
        } else {
            crate::dispatch::report::to_markdown(&tables, threshold.max(1))
        };
        print!("{out}");
        ExitCode::SUCCESS
    })
}
