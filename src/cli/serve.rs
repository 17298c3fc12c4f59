//! `hotline serve`: load, connect, bind, serve until SIGTERM.

use std::error::Error as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use super::error::fail;
use super::{CliError, EXIT_CONFIG, build_store, init_logging, load_config, print_problems};
use crate::app::App;
use crate::clock::Clock;
use crate::config::{ChannelKind, Config, Env, ProcessEnv};
use crate::problem::Problem;

const NOT_STARTING: &str = "hotline: configuration is not valid; not starting";

pub(super) fn serve(flag: Option<PathBuf>) -> ExitCode {
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
    for w in store.setup_warnings().await {
        tracing::error!("{w}");
    }
    let (app, flow_warnings) =
        App::build(config, store, Clock::System, env).map_err(CliError::Build)?;
    log_warnings(&app, warnings, &flow_warnings);
    // Install the signal handlers before anyone can see us listening.
    let shutdown = crate::server::shutdown_signal();
    // From here a SIGHUP reloads instead of ending the process.
    drop(crate::server::hangup_signal());
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
        store = app.deps.store.kind(),
        flows = app.flows().flows.len(),
        channels = app.channels.len(),
        "hotline listening"
    );
    if let Some(name) = app
        .channels
        .iter()
        .find_map(|(n, c)| c.console().map(|_| n.clone()))
    {
        tracing::warn!(
            channel = %name,
            page = %format!("http://{admin_addr}/console"),
            "development configuration: the console channel keeps every SMS it sends in memory and shows it on the admin listener's /console page; nothing reaches a phone"
        );
    }
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
    for name in &app.config.disabled_channels {
        tracing::info!(channel = %name, "channel is disabled (enabled = false); its webhooks answer 404");
    }
    for ch in &app.config.channels {
        let no_webhooks = matches!(ch.kind, ChannelKind::Twilio | ChannelKind::Console);
        if ch.secret.is_none() && ch.allow_ips.is_empty() && !no_webhooks {
            tracing::warn!(channel = %ch.name, "channel accepts unauthenticated requests: set secret_env or allow_ips before going live");
        }
    }
}
