//! `hotline test-sms <lawyer>`: send a lawyer the welcome SMS (the commands,
//! and a request to reply `OK`, which confirms her number).
//!
//! With Redis, the welcome is queued straight into the store and the
//! running gateways' outbox sends it. With the memory store the queue lives
//! inside the running gateway, so the command asks it through its admin
//! listener (`POST /test-sms`, `HOTLINE_ADMIN_TOKEN` as the bearer token).
//! `unverified` is what `hotline check` prints about confirmed numbers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::error::fail;
use super::{CliError, build_store, load_config};
use crate::clock::Clock;
use crate::config::{Config, Env, ProcessEnv, StoreKind};
use crate::deps::{Deps, Wake};
use crate::dispatch::Dispatcher;
use crate::dispatch::onboarding::{self, WelcomeError};
use crate::metrics::Metrics;
use crate::problem::Problem;

pub(super) fn test_sms(flag: Option<PathBuf>, lawyer: &str, admin: Option<String>) -> ExitCode {
    let env = ProcessEnv;
    let config = match load_config(flag.as_deref(), &env) {
        Ok((c, _)) => c,
        Err(e) => return fail(&CliError::Config(e)),
    };
    // What the operator must fix is said before any gateway or store is
    // asked: a config without lawyers, or a lawyer the roster lacks.
    if let Err(e) = known_lawyer(&config, lawyer) {
        return fail(&e);
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        match config.store.kind {
            StoreKind::Memory => via_admin(&config, lawyer, admin, &env).await,
            StoreKind::Redis(_) => via_store(&config, lawyer, &env).await,
        }
    });
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Whether the roster the config names has `lawyer` (an id or a name, as
/// [`crate::dispatch::cover::find_lawyer`] matches it). Only the roster's
/// ids and names are read: the numbers (environment variables, a phones
/// file only the service account may read) are the gateway's business.
fn known_lawyer(config: &Config, lawyer: &str) -> Result<(), CliError> {
    let Some(d) = &config.dispatch else {
        return Err(CliError::Usage(format!(
            "{} has no [dispatch]: there is no roster, so no lawyer to send to",
            config.source
        )));
    };
    let shown = d.roster.display();
    let table: toml::Table = std::fs::read_to_string(&d.roster)
        .map_err(|e| CliError::Usage(format!("cannot read the roster {shown}: {e}")))?
        .parse()
        .map_err(|_| {
            CliError::Usage(format!(
                "the roster {shown} is not valid TOML: run hotline check"
            ))
        })?;
    let known = table
        .get("lawyers")
        .and_then(toml::Value::as_table)
        .is_some_and(|lawyers| {
            lawyers.iter().any(|(id, l)| {
                let name = l.get("name").and_then(toml::Value::as_str).unwrap_or("");
                crate::dispatch::cover::names_lawyer(id, name, lawyer)
            })
        });
    if known {
        Ok(())
    } else {
        Err(CliError::Usage(format!("no lawyer {lawyer:?} in {shown}")))
    }
}

/// Build a dispatcher over the configured (Redis) store.
async fn dispatcher(config: &Config, env: &dyn Env) -> Result<Arc<Dispatcher>, CliError> {
    let store = build_store(config).await?;
    let privacy = crate::privacy::Privacy::from_config(&config.privacy);
    let (flows, _) = crate::app::load_flows(config);
    let (channels, _) = crate::app::build_channels(config);
    let deps = Deps {
        store,
        clock: Clock::System,
        privacy,
        metrics: Metrics::new([], [], []),
        wake: Wake::default(),
        settled: crate::deps::SettledHook::default(),
        store_log: Arc::default(),
    };
    let (d, problems) =
        crate::app::load_dispatch_with(config, &Arc::new(flows), &channels, deps, env);
    d.ok_or(CliError::Build(problems))
}

async fn via_store(config: &Config, lawyer: &str, env: &dyn Env) -> Result<String, CliError> {
    let d = dispatcher(config, env).await?;
    match d.send_welcome(lawyer).await {
        Ok(id) => Ok(format!(
            "welcome queued for {id}; she confirms by replying OK"
        )),
        Err(WelcomeError::NoLawyer(l)) => {
            Err(CliError::Usage(format!("no lawyer {l:?} in the roster")))
        }
        Err(WelcomeError::Store(e)) => Err(CliError::Store(e)),
    }
}

async fn via_admin(
    config: &Config,
    lawyer: &str,
    admin: Option<String>,
    env: &dyn Env,
) -> Result<String, CliError> {
    let base = admin.unwrap_or_else(|| format!("http://{}", config.server.admin_listen));
    let url = format!("{}/test-sms", base.trim_end_matches('/'));
    let mut req = reqwest::Client::new()
        .post(&url)
        .query(&[("lawyer", lawyer)])
        .timeout(std::time::Duration::from_secs(10));
    if let Some(token) = env.var(crate::config::ADMIN_TOKEN_VAR) {
        req = req.bearer_auth(token);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| CliError::Gateway(format!("cannot reach {base}: {}", reqwest_reason(&e))))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    match status.as_u16() {
        202 => Ok(body.trim().to_owned()),
        404 => Err(CliError::Usage(format!(
            "no lawyer {lawyer:?} in the roster"
        ))),
        // The body says which: no token set on the gateway, or the
        // wrong one here.
        401 | 403 => Err(CliError::Usage(format!(
            "the gateway refused: {status}: {}",
            body.trim()
        ))),
        _ => Err(CliError::Gateway(format!(
            "answered {status}: {}",
            body.trim()
        ))),
    }
}

/// A reqwest error's innermost cause (its own text repeats the URL, and
/// its sources repeat each other).
fn reqwest_reason(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// For `hotline check`: whether the store answers, and (with a roster)
/// a line naming lawyers whose number is unconfirmed
/// (Redis only: the memory store's records live inside the running
/// gateway). A store that cannot be reached is a warning, returned: `check`
/// must not pass a deploy whose store is down; so is a store set up to
/// lose data ([`crate::store::Store::setup_warnings`]).
pub(super) fn print_unverified(config: &Config, d: Option<&Dispatcher>) -> Vec<Problem> {
    if config.store.kind == StoreKind::Memory {
        return Vec::new();
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let privacy = crate::privacy::Privacy::from_config(&config.privacy);
    let mut setup = Vec::new();
    let listed = runtime.block_on(async {
        let store = build_store(config).await.map_err(|e| e.to_string())?;
        setup.extend(store.setup_warnings().await);
        match d {
            Some(d) => {
                onboarding::unverified(store.as_ref(), &privacy, &d.roster, Clock::System.now_ms())
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            // No roster: only whether the store answers.
            None => store.ping().await.map(|()| None).map_err(|e| e.to_string()),
        }
    });
    let mut problems: Vec<Problem> = setup
        .into_iter()
        .map(|w| Problem::warning(&config.source, "store", w))
        .collect();
    match listed {
        Ok(None) => {}
        Ok(Some(ids)) if ids.is_empty() => println!("every lawyer's number is confirmed"),
        Ok(Some(ids)) => println!(
            "unconfirmed numbers (send `hotline test-sms <lawyer>`): {}",
            ids.join(", ")
        ),
        Err(e) => {
            problems.push(Problem::warning(
                &config.source,
                "store",
                format!(
                    "the store could not be reached ({e}): `serve` needs it{}",
                    if d.is_some() {
                        "; confirmed numbers not read"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    problems
}
