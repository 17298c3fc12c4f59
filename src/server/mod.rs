//! HTTP listeners: the public webhook listener and the private admin one.
//!
//! hyper 1.x with hyper-util. Each listener accepts under a semaphore
//! (`server.max_connections`): at the limit, new connections wait in the
//! kernel's backlog instead of exhausting memory. Each connection gets a
//! header-read timeout; each request a whole-request timeout (body and
//! handling) and a body cap ([`public`]).
//!
//! [`run`] composes the two listeners and the background workers
//! ([`crate::worker::Workers`]). Shutdown: when `shutdown` resolves, the app
//! starts draining (`/readyz` answers 503), the public listener stops
//! accepting, in-flight requests finish (keep-alive connections close after
//! their current request), then the workers stop taking work and finish
//! what they hold, each within `server.shutdown_grace`. The admin listener
//! keeps answering until then.

pub mod admin;
pub mod public;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::app::App;

/// A response with a fully buffered body: every answer here is small.
pub type Response = http::Response<http_body_util::Full<bytes::Bytes>>;

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Accept connections until `stop` flips, serving each with `handler`.
/// Returns the graceful-shutdown tracker of the connections it started.
async fn accept_loop<F, Fut>(
    app: App,
    listener: TcpListener,
    handler: F,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown
where
    F: Fn(App, http::Request<Incoming>, SocketAddr) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(app.config.server.max_connections));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return graceful },
            _ = stopped(&mut stop) => return graceful,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return graceful,
        };
        let app2 = app.clone();
        let svc = service_fn(move |req| {
            let app = app2.clone();
            async move { Ok::<_, Infallible>(handler(app, req, peer).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(app.config.server.header_read_timeout)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Serve the public and admin listeners and run the background workers
/// until `shutdown` resolves, then drain: `/readyz` turns 503, the public
/// listener stops accepting, in-flight requests finish, the workers stop
/// taking work and finish what they hold (an SMS being sent is sent and
/// recorded), each within `server.shutdown_grace`; the admin listener
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
    let (stop_public, rx_public) = watch::channel(false);
    let (stop_admin, rx_admin) = watch::channel(false);
    let mut listeners = JoinSet::new();
    let public_task = listeners.spawn(accept_loop(app.clone(), public, public::handle, rx_public));
    listeners.spawn(accept_loop(
        app.clone(),
        admin,
        |app, req, _peer| admin::handle(app, req),
        rx_admin,
    ));
    let sweeper = tokio::spawn(sweep_ip_limiter(app.clone()));
    let workers = app.start_workers();

    shutdown.await;
    tracing::info!("shutting down: draining in-flight requests");
    app.start_draining();
    let grace = app.config.server.shutdown_grace;
    let _ = stop_public.send(true);
    drain_listener(&mut listeners, public_task.id(), grace).await;
    sweeper.abort();
    workers.shutdown(grace).await;
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

/// Forget idle per-IP limiter entries so the map stays small.
async fn sweep_ip_limiter(app: App) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        app.ip_limiter.retain_recent();
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
