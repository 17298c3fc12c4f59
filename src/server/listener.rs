//! The accept loop both listeners share, and the limits each one applies.
//!
//! Connections are served under a semaphore (`server.max_connections`), so
//! memory stays bounded. At the limit, a new connection takes the place of
//! one that is not serving a request ([`super::conn::Open::evict_one`]):
//! one still reading its first head (a slow head, or silence since it
//! opened), the oldest first, else the keep-alive one idle longest. It is
//! closed unanswered (counted in
//! `hotline_connections_closed_total{reason="evicted"}` on the public
//! listener), so a flood of silent or slow sockets cannot keep an honest
//! request waiting in the kernel's backlog. A connection serving a request
//! is never chosen; only when every one is does the newcomer wait for a
//! slot. On the public listener, an address over
//! `server.max_connections_per_ip` ([`super::conn::PerIp`]) is answered a
//! short 503 and closed without being served or taking a slot (counted in
//! `hotline_ip_rate_limited_total`). Each connection gets hyper's
//! header-read timeout, a read buffer and head cap of
//! `server.max_header_bytes`, and an idle timeout
//! ([`super::conn::IdleIo`]; closes counted in
//! `hotline_connections_closed_total{reason="idle_timeout"}`). With
//! `server.proxy_protocol`, a connection from a trusted proxy first gives
//! its PROXY header
//! ([`super::proxy_protocol`]) within the header-read timeout, or is closed
//! (counted in `hotline_proxy_headers_refused_total`); the client address in
//! it is then the connection's address, per-address caps included.
//!
//! A request hyper refuses before any handler runs — a head over
//! `server.max_header_bytes` (431), one that is not HTTP/1.1 (400), or no
//! complete head within the header-read timeout (closed) — has no channel,
//! so the public listener counts it here, by reason
//! (`hotline_connections_refused_total`, [`refusal`]). It is not logged
//! but at debug: anyone can send them.

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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};

use super::Response;
use super::client_ip::is_trusted;
use super::conn::{Activity, IdleIo, Open, PerIp, Registered, Slot};
use super::proxy_protocol::{self, Prefixed, Source};
use crate::app::App;
use crate::config::{IpNet, ServerConfig};

/// What one listener allows.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once.
    max_connections: usize,
    /// Per-address connection cap and the peers exempt from it (`None`:
    /// no per-address cap, as on the private admin listener).
    per_ip: Option<(Arc<PerIp>, Vec<IpNet>)>,
    /// hyper's time limit for a request head.
    header_read_timeout: Duration,
    /// Close a connection idle this long.
    idle_timeout: Duration,
    /// Largest head, and the read buffer's size.
    max_header_bytes: usize,
    /// Peers whose connections start with a PROXY protocol header (the
    /// trusted proxies, when `server.proxy_protocol` is on; else none).
    proxy_protocol_from: Vec<IpNet>,
    /// Count requests hyper refuses (`hotline_connections_refused_total`)
    /// and connections closed unasked (`hotline_connections_closed_total`):
    /// the public listener's.
    count_refusals: bool,
}

impl Limits {
    /// The public listener's: every limit in `[server]`.
    pub fn public(cfg: &ServerConfig) -> Limits {
        Limits {
            max_connections: cfg.max_connections,
            per_ip: Some((
                PerIp::new(cfg.max_connections_per_ip),
                cfg.trusted_proxies.clone(),
            )),
            header_read_timeout: cfg.header_read_timeout,
            idle_timeout: cfg.idle_timeout,
            max_header_bytes: cfg.max_header_bytes,
            proxy_protocol_from: if cfg.proxy_protocol {
                cfg.trusted_proxies.clone()
            } else {
                Vec::new()
            },
            count_refusals: true,
        }
    }

    /// The admin listener's: private, so no per-address cap, and at most
    /// `max_connections` (or the public limit, if lower).
    pub fn admin(cfg: &ServerConfig, max_connections: usize) -> Limits {
        Limits {
            max_connections: max_connections.min(cfg.max_connections),
            per_ip: None,
            proxy_protocol_from: Vec::new(),
            count_refusals: false,
            ..Limits::public(cfg)
        }
    }

    fn http1(&self) -> http1::Builder {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes)
            .max_header_size(self.max_header_bytes);
        b
    }
}

/// What an address over its connection cap reads before the close.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Connection: close\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\n\
too many connections\n";

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Accept connections until `stop` flips, serving each with `handler`
/// (given the request and the TCP peer). Returns the graceful-shutdown
/// tracker of the connections it started.
pub async fn accept_loop<F, Fut>(
    app: App,
    listener: TcpListener,
    handler: F,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown
where
    F: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let open = Open::new();
    let limits = Arc::new(limits);
    loop {
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
        if is_trusted(&limits.proxy_protocol_from, peer.ip()) {
            let Some(permit) = slot_for_newcomer(&permits, &open, &mut stop).await else {
                return graceful;
            };
            // The header first, off the accept loop: a slow proxy delays
            // only its own connection.
            let limits = limits.clone();
            let (app, handler, graceful) = (app.clone(), handler.clone(), graceful.watcher());
            let open = open.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                let (client, rest) =
                    match proxy_protocol::read(&mut stream, limits.header_read_timeout).await {
                        Ok((Source::Client(client), rest)) => (client, rest),
                        Ok((Source::Local, rest)) => (peer, rest),
                        Err(e) => {
                            app.metrics().proxy_headers_refused.inc();
                            tracing::warn!(error = %e, "connection from a trusted proxy refused");
                            return;
                        }
                    };
                let Ok(slot) = admit(&limits, &stream, client) else {
                    app.metrics().ip_limited.inc();
                    return;
                };
                let activity = Activity::new();
                let conn = graceful.watch(serve(
                    &limits,
                    Prefixed::new(rest, stream),
                    client,
                    handler,
                    activity.clone(),
                ));
                let tracked = open.register(activity.clone());
                run(&app, &limits, tracked, activity, conn).await;
                drop(slot);
                drop(permit);
            });
            continue;
        }
        // Over its per-address cap: refused before it can take a slot or
        // make another connection give up its own.
        let Ok(slot) = admit(&limits, &stream, peer) else {
            app.metrics().ip_limited.inc();
            continue;
        };
        let Some(permit) = slot_for_newcomer(&permits, &open, &mut stop).await else {
            return graceful;
        };
        let activity = Activity::new();
        let conn = graceful.watch(serve(
            &limits,
            Prefixed::new(Vec::new(), stream),
            peer,
            handler.clone(),
            activity.clone(),
        ));
        // Tracked from here, before the next accept can look for room.
        let tracked = open.register(activity.clone());
        let (app, limits) = (app.clone(), limits.clone());
        tokio::spawn(async move {
            run(&app, &limits, tracked, activity, conn).await;
            drop(slot);
            drop(permit);
        });
    }
}

/// One of the `max_connections` slots for a connection just accepted: a
/// free one, or, when all are taken, the one a connection that is not
/// serving a request gives up when told to ([`Open::evict_one`]). When
/// every connection is serving a request, wait for one to end. `None` once
/// the listener stops.
async fn slot_for_newcomer(
    permits: &Arc<Semaphore>,
    open: &Open,
    stop: &mut watch::Receiver<bool>,
) -> Option<OwnedSemaphorePermit> {
    match permits.clone().try_acquire_owned() {
        Ok(p) => return Some(p),
        Err(TryAcquireError::Closed) => return None,
        Err(TryAcquireError::NoPermits) => {}
    }
    open.evict_one();
    tokio::select! {
        p = permits.clone().acquire_owned() => p.ok(),
        _ = stopped(stop) => None,
    }
}

/// Drive one connection to its end, or until it is told to make room
/// while serving no request (then it is dropped, which closes it
/// unanswered). Counts how it ended.
async fn run<C>(app: &App, limits: &Limits, tracked: Registered, activity: Arc<Activity>, conn: C)
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let mut conn = std::pin::pin!(conn);
    loop {
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    ended_with(app, limits, &e);
                }
                if activity.idled() {
                    closed(app, limits, "idle_timeout");
                }
                return;
            }
            () = tracked.evicted() => {
                // The connection is not being polled here, so no request
                // can begin between this check and the drop.
                if activity.is_busy() {
                    tracked.decline();
                } else {
                    closed(app, limits, "evicted");
                    return;
                }
            }
        }
    }
}

/// The gateway closed a connection that served no request, for `reason`.
fn closed(app: &App, limits: &Limits, reason: &'static str) {
    if limits.count_refusals {
        app.metrics()
            .connections_closed
            .with_label_values(&[reason])
            .inc();
    }
}

/// Why hyper refused a request before any handler ran (a label of
/// `hotline_connections_refused_total`), or `None` for an error that is no
/// refusal (the client went away mid-request, a reset).
pub fn refusal(e: &hyper::Error) -> Option<&'static str> {
    if e.is_parse_too_large() {
        Some("head_too_large")
    } else if e.is_parse() {
        Some("malformed")
    } else if e.is_timeout() {
        Some("head_timeout")
    } else {
        None
    }
}

/// A connection ended with `e`: counted when hyper refused its request.
fn ended_with(app: &App, limits: &Limits, e: &hyper::Error) {
    tracing::debug!(error = %e, "connection ended with an error");
    if let Some(reason) = refusal(e).filter(|_| limits.count_refusals) {
        app.metrics()
            .connections_refused
            .with_label_values(&[reason])
            .inc();
    }
}

/// Serve one connection from `client` with `handler`, with the idle
/// timeout and hyper's limits; `activity` tells whether it is serving a
/// request.
fn serve<F, Fut>(
    limits: &Limits,
    stream: Prefixed<TcpStream>,
    client: SocketAddr,
    handler: F,
    activity: Arc<Activity>,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send + 'static
where
    F: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let io = TokioIo::new(IdleIo::new(stream, activity.clone(), limits.idle_timeout));
    let svc = service_fn(move |req| {
        let busy = activity.begin();
        let answer = handler(req, client);
        async move {
            let response = answer.await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    limits.http1().serve_connection(io, svc)
}

/// The per-address slot for a new connection (`None` when the listener has
/// no per-address cap or the peer is a trusted proxy), or `Err` when the
/// peer is over its cap: it is told so, best effort, and dropped.
fn admit(limits: &Limits, stream: &TcpStream, peer: SocketAddr) -> Result<Option<Slot>, ()> {
    // (`peer`: the client address, the PROXY header's when there is one.)
    let Some((per_ip, trusted)) = &limits.per_ip else {
        return Ok(None);
    };
    if is_trusted(trusted, peer.ip()) {
        return Ok(None);
    }
    match per_ip.try_open(peer.ip()) {
        Some(slot) => Ok(Some(slot)),
        None => {
            // Never wait on a client that is already over its share.
            let _ = stream.try_write(TOO_MANY_CONNECTIONS);
            Err(())
        }
    }
}
