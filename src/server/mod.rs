//! HTTP listeners: the public webhook listener and the private admin one.
//!
//! hyper 1.x with hyper-util. [`run`] composes the two listeners and the
//! background workers ([`crate::worker::Workers`]); [`listener`] accepts and
//! serves connections; [`public`] and [`admin`] answer requests
//! ([`console`]: the admin listener's development-sink page).
//!
//! # Hostile networks: what bounds what
//!
//! The webhook listener faces the internet (usually through a reverse
//! proxy). The threats it is built against, and the answer to each:
//!
//! - **Many connections from one address** (idle, or slow): each address
//!   may hold `server.max_connections_per_ip` connections (IPv6: per /64);
//!   one more is answered 503 and closed at once, so one client cannot take
//!   the `server.max_connections` slots everyone shares. A connection that
//!   sends nothing for `server.idle_timeout_ms` (after it opens, or between
//!   requests) is closed. Trusted proxies are exempt from the per-address
//!   cap: they carry everyone, and must cap their own clients.
//! - **Many connections from many addresses** (each under its cap): when
//!   all `server.max_connections` slots are taken, a new connection takes
//!   the place of one serving no request — still on its first head, the
//!   oldest first, else the keep-alive one idle longest ([`listener`],
//!   `hotline_connections_closed_total{reason="evicted"}`) — so an honest
//!   request never waits in the kernel's backlog behind a slowloris or idle
//!   flood. A connection serving a request is never closed for it.
//! - **Header and body bombs**: the request head may be at most
//!   `server.max_header_bytes` (431 beyond; hyper also caps it at 100
//!   headers), which is also the size of the connection's read buffer; the
//!   whole head must arrive within `server.header_read_timeout_ms`. A body
//!   declared over `server.max_body_bytes` gets 413 unread; a chunked one
//!   gets 413 as soon as the bytes read pass the cap (a chunk-size line
//!   alone is not visible above hyper, which rejects sizes that overflow 64
//!   bits as a bad body: 400). A body that stalls gets 408 after
//!   `server.body_read_timeout_ms`. So memory for connections is bounded by
//!   `max_connections × (max_header_bytes + max_body_bytes + ~8 KiB)`,
//!   about 40 MiB with the defaults; `ops/systemd/hotline.service` sets
//!   `MemoryMax=` with room above that.
//! - **Spoofed or hidden clients behind a proxy**: the client address is
//!   the TCP peer, unless the peer is in `server.trusted_proxies`; then it is
//!   the right-most `X-Forwarded-For` hop that is not a trusted proxy
//!   ([`client_ip`]). Per-IP limits and the channels' `allow_ips` use it.
//!   With `server.proxy_protocol`, a trusted peer's connection starts with a
//!   PROXY protocol header ([`proxy_protocol`]) whose client replaces the
//!   peer for the whole connection, per-address cap included.
//! - **Floods of bad secrets**: see [`public`]. Failed authentications
//!   spend their own, stricter per-address budget, and the general per-IP
//!   limit counts only authenticated requests, so a flood of wrong secrets
//!   (even from the aggregator's own address) never gets the aggregator a
//!   429.
//! - **Floods of bad requests, in the logs**: a refused request is logged
//!   at most once per channel and reason every 10 s ([`log_limit`]; the
//!   next line says how many were left out), while the metrics count each
//!   one — those hyper refuses before a channel is known too
//!   (`hotline_connections_refused_total`, [`listener`]).
//!
//! # Shutdown
//!
//! When `shutdown` resolves, `/readyz` turns 503 at once while the public
//! listener keeps serving for `server.drain_delay_secs`, so a load balancer
//! polling it stops sending before anything is refused. Then the public
//! listener stops accepting, in-flight requests finish (keep-alive
//! connections close after their current request), then the workers stop
//! taking work and finish what they hold — both together within
//! `server.shutdown_grace_secs` (the workers get what the requests left of
//! it; work they abandon is retried by another instance, or by this one
//! after its restart, when its lease ends). The admin listener answers
//! until the end, and 1 s more.

pub mod admin;
pub mod admin_auth;
pub mod client_ip;
pub mod conn;
pub mod console;
pub mod listener;
pub mod log_limit;
pub mod proxy_protocol;
pub mod public;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::App;
use listener::{Limits, accept_loop};

/// A response with a fully buffered body: every answer here is small.
pub type Response = http::Response<http_body_util::Full<bytes::Bytes>>;

/// Connections the admin listener serves at once: Prometheus and a load
/// balancer's health checks need a handful.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Serve the public and admin listeners and run the background workers
/// until `shutdown` resolves, then drain: `/readyz` turns 503, webhooks are
/// still served for `server.drain_delay_secs`, the public listener stops
/// accepting, in-flight requests finish, the workers stop
/// taking work and finish what they hold (an SMS being sent is sent and
/// recorded), both within one `server.shutdown_grace`; the admin listener
/// answers until the end.
///
/// # Errors
/// Never in practice; the signature leaves room for listener set-up errors.
pub async fn run(
    app: App,
    public: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    // Before the listeners answer: a SIGHUP from then on reloads (its
    // default would end the process).
    let hangups = hangup_signal();
    let cfg = &app.config.server;
    tracing::info!(
        connection_memory_bound_mib = cfg.connection_memory_bound() / (1024 * 1024),
        max_connections = cfg.max_connections,
        max_connections_per_ip = cfg.max_connections_per_ip,
        trusted_proxies = cfg.trusted_proxies.len(),
        "public listener limits"
    );
    // Who sent OFF before this process started, before any case can be
    // planned (a webhook) or offered (the spool, the timers).
    app.read_dispatch_state().await;
    // The cases a stopped instance recorded lately, before any new case
    // can be given one of their codes.
    if let Some(spool) = &app.spool
        && let Err(e) = spool.adopt_orphans_recent(app.deps.clock.now_ms()).await
    {
        tracing::warn!(error = %e, "could not read a stopped instance's recent cases at start; the spool's worker tries again");
    }
    let (stop_public, rx_public) = watch::channel(false);
    let (stop_admin, rx_admin) = watch::channel(false);
    let webhooks = Arc::new(public::Public::new(app.clone()));
    let mut listeners = JoinSet::new();
    let public_task = listeners.spawn(accept_loop(
        app.clone(),
        public,
        {
            let webhooks = webhooks.clone();
            move |req, peer| {
                let webhooks = webhooks.clone();
                async move { webhooks.handle(req, peer).await }
            }
        },
        Limits::public(cfg),
        rx_public,
    ));
    listeners.spawn(accept_loop(
        app.clone(),
        admin,
        {
            let app = app.clone();
            move |req, _peer| admin::handle(app.clone(), req)
        },
        Limits::admin(cfg, ADMIN_MAX_CONNECTIONS),
        rx_admin,
    ));
    let sweeper = tokio::spawn(sweep_ip_limiters(app.clone(), webhooks));
    let reloader = tokio::spawn(reload_on_sighup(app.clone(), hangups));
    let workers = app.start_workers();

    shutdown.await;
    app.start_draining();
    if !cfg.drain_delay.is_zero() {
        tracing::info!(
            drain_delay_secs = cfg.drain_delay.as_secs(),
            "shutting down: /readyz answers 503; still serving webhooks"
        );
        tokio::time::sleep(cfg.drain_delay).await;
    }
    tracing::info!("shutting down: draining in-flight requests");
    let grace = cfg.shutdown_grace;
    // One grace for requests and workers together: a stop takes at most
    // drain_delay + shutdown_grace + 1 s (the alert and systemd's
    // TimeoutStopSec count on it).
    let deadline = tokio::time::Instant::now() + grace;
    let _ = stop_public.send(true);
    drain_listener(&mut listeners, public_task.id(), grace).await;
    sweeper.abort();
    reloader.abort();
    workers
        .shutdown(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await;
    let _ = stop_admin.send(true);
    while let Some(done) = listeners.join_next().await {
        if let Ok(graceful) = done {
            let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
        }
    }
    tracing::info!("shut down");
    Ok(())
}

/// Wait for the listener task `id` to stop accepting, then for its
/// connections to finish their requests, within `grace`.
async fn drain_listener(
    listeners: &mut JoinSet<GracefulShutdown>,
    id: tokio::task::Id,
    grace: Duration,
) {
    let mut others = Vec::new();
    while let Some(done) = listeners.join_next_with_id().await {
        match done {
            Ok((done_id, graceful)) if done_id == id => {
                if tokio::time::timeout(grace, graceful.shutdown())
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        grace_secs = grace.as_secs(),
                        "grace period over; abandoning unfinished requests"
                    );
                }
                break;
            }
            Ok((_, graceful)) => others.push(graceful),
            Err(_) => break,
        }
    }
    for graceful in others {
        let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
    }
}

/// Forget idle per-IP limiter entries so the maps stay small.
async fn sweep_ip_limiters(app: App, webhooks: Arc<public::Public>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        app.ip_limiter.retain_recent();
        webhooks.auth_failures.retain_recent();
    }
}

/// Reload flows, roster, phones and lawyers' texts ([`App::reload`]) off
/// the async threads (it reads files), with the process environment.
pub async fn reload_now(app: App) -> crate::reload::Report {
    let generation = app.config_generation();
    tokio::task::spawn_blocking(move || app.reload(&crate::config::ProcessEnv))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "reload failed");
            crate::reload::Report {
                applied: false,
                generation,
                problems: Vec::new(),
                restart_keys: Vec::new(),
            }
        })
}

/// SIGHUPs to come.
#[cfg(unix)]
pub type Hangups = Option<tokio::signal::unix::Signal>;
/// SIGHUPs to come.
#[cfg(not(unix))]
pub type Hangups = ();

/// SIGHUP, listened for from now on. Once called, SIGHUP no longer ends
/// the process (`serve` calls it before it binds its listeners).
pub fn hangup_signal() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /reload");
                None
            }
        }
    }
}

/// Reload on every SIGHUP (`systemctl reload hotline`).
async fn reload_on_sighup(app: App, hangups: Hangups) {
    #[cfg(unix)]
    if let Some(mut hup) = hangups {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading flows, roster and texts");
            reload_now(app.clone()).await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (app, hangups);
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when
/// this is called (not when first polled), so a signal that arrives while
/// the server is still starting is not lost. Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                _ => {
                    tracing::warn!("cannot listen for SIGTERM; only Ctrl-C stops the server");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async move {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
