//! HTTP listeners: the public webhook listener and the private admin one.
//!
//! hyper 1.x with hyper-util. Each listener accepts under a semaphore
//! (`server.max_connections`): at the limit, new connections wait in the
//! kernel's backlog instead of exhausting memory. Each connection gets a
//! header-read timeout; each request a whole-request timeout (body and
//! handling) and a body cap ([`public`]).
//!
//! Shutdown: when `shutdown` resolves, the app starts draining (`/readyz`
//! answers 503), the public listener stops accepting, in-flight requests
//! finish (keep-alive connections close after their current request), and
//! `run` returns once they are done or `server.shutdown_grace` has passed.
//! The admin listener keeps answering until then.

pub mod admin;
pub mod public;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

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
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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

/// Serve the public and admin listeners until `shutdown` resolves, then drain.
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
    let public_task = tokio::spawn(accept_loop(app.clone(), public, public::handle, rx_public));
    let admin_task = tokio::spawn(accept_loop(
        app.clone(),
        admin,
        |app, req, _peer| admin::handle(app, req),
        rx_admin,
    ));

    // Forget idle per-IP limiter entries so the map stays small.
    let sweeper = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                app.ip_limiter.retain_recent();
            }
        })
    };

    let workers = crate::worker::spawn_all(&app);

    shutdown.await;
    tracing::info!("shutting down: draining in-flight requests");
    app.start_draining();
    let _ = stop_public.send(true);
    let public_graceful = public_task.await.unwrap_or_default();
    let grace = app.config.server.shutdown_grace;
    if tokio::time::timeout(grace, public_graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "grace period over; abandoning unfinished requests"
        );
    }
    let _ = stop_admin.send(true);
    let admin_graceful = admin_task.await.unwrap_or_default();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(1), admin_graceful.shutdown()).await;
    sweeper.abort();
    for w in workers {
        w.abort();
    }
    tracing::info!("shut down");
    Ok(())
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
