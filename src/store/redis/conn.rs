//! The Redis store's connection layer: how a script or command reaches
//! Redis, and what happens when the network or a node fails.
//!
//! - **One Redis** (one URL): a `ConnectionManager` — multiplexed, connected
//!   lazily, reconnecting by itself — with the configured connect and
//!   response timeouts. Scripts go out as `EVALSHA`, and on `NOSCRIPT` (Redis
//!   restarted) redis-rs loads them and retries once.
//! - **A Redis Cluster** (several URLs): redis-rs's cluster client, wrapped
//!   in [`Cluster`] because on its own it does not survive a master's death
//!   (redis-rs 1.8: a timeout or a dropped connection only reconnects to the
//!   *same* address, so the slot map keeps pointing at the dead master; its
//!   default retry pause of at least 1.28 s never fits a 500 ms budget; and
//!   `SCRIPT LOAD` after `NOSCRIPT` is sent to every node, so one dead node
//!   fails it). The wrapper:
//!   - runs every call inside one time budget (`store.response_timeout_ms`),
//!     retrying errors that a topology change explains (I/O, timeouts,
//!     `CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`, `READONLY`, `LOADING`, no
//!     connection) with short pauses while the budget lasts;
//!   - on such an error, rebuilds the cluster connection in the background
//!     from the configured nodes — a fresh `CLUSTER SLOTS`, so a promoted
//!     replica is found — at most once per [`REFRESH_GAP`];
//!   - answers `NOSCRIPT` with `EVAL` of the script's text, routed by its key
//!     like the `EVALSHA` was, so the node that serves the slot now (a
//!     promoted replica has an empty script cache) caches it and runs it.
//!
//! Retrying a script whose answer was lost is safe for this store: every
//! write script is a compare-and-set or idempotent (a retried `commit`
//! answers with the reply cached by the first one).
//!
//! Both kinds speak TLS for `rediss://` URLs (rustls), trusting the system's
//! roots or, when `store.tls_ca_file` names one, that CA only.
//!
//! Never logs keys, arguments or URLs (a URL may hold a password).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Script, ScriptInvocation,
    ServerErrorKind, TlsCertificates, Value,
};
use tokio::time::Instant;

/// The least time between two rebuilds of the cluster connection.
pub const REFRESH_GAP: Duration = Duration::from_millis(500);

/// The first pause before retrying inside the budget; doubled each time.
const FIRST_PAUSE: Duration = Duration::from_millis(25);

/// How to reach Redis, besides the URL.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Bound on establishing one connection.
    pub connect_timeout: Duration,
    /// Bound on one store call, retries included.
    pub response_timeout: Duration,
    /// PEM certificates of the CA to trust for `rediss://` instead of the
    /// system's roots (`store.tls_ca_file`).
    pub tls_ca: Option<Vec<u8>>,
}

/// The connection, cheap to clone.
#[derive(Clone)]
pub(super) enum Conn {
    /// One Redis, and how often a call to it faltered
    /// ([`Conn::faltered`]).
    Single(ConnectionManager, Arc<AtomicU64>),
    /// A Redis Cluster.
    Cluster(Arc<Cluster>),
}

impl Conn {
    /// Whether this is a Redis Cluster (a script's keys must then share a
    /// slot).
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// Connect. One URL gives a lazy `ConnectionManager`, unless that
    /// Redis answers now as a cluster node (`CLUSTER SLOTS`); several, or
    /// such a node, give a cluster connection, which needs a node to
    /// answer now.
    pub(super) async fn connect(urls: &[String], opts: &RedisOptions) -> RedisResult<Conn> {
        let certs = || TlsCertificates {
            client_tls: None,
            root_cert: opts.tls_ca.clone(),
        };
        if let [url] = urls {
            let client = match opts.tls_ca {
                Some(_) => redis::Client::build_with_tls(url.as_str(), certs())?,
                None => redis::Client::open(url.as_str())?,
            };
            if is_cluster_node(&client, opts.connect_timeout).await {
                tracing::warn!(
                    "HOTLINE_REDIS_URL names one node of a Redis Cluster: using it as a cluster; list several of its nodes (comma-separated) so the gateway can reconnect through another when that one is gone"
                );
                return Self::connect_cluster(urls, opts).await;
            }
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(opts.connect_timeout))
                .set_response_timeout(Some(opts.response_timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            return Ok(Conn::Single(
                ConnectionManager::new_lazy_with_config(client, config)?,
                Arc::new(AtomicU64::new(0)),
            ));
        }
        Self::connect_cluster(urls, opts).await
    }

    /// Connect to a Redis Cluster through the nodes `urls` names.
    async fn connect_cluster(urls: &[String], opts: &RedisOptions) -> RedisResult<Conn> {
        let certs = || TlsCertificates {
            client_tls: None,
            root_cert: opts.tls_ca.clone(),
        };
        let mut builder = ClusterClientBuilder::new(urls.iter().map(String::as_str))
            .connection_timeout(opts.connect_timeout)
            .response_timeout(opts.response_timeout)
            .overall_response_timeout(Some(opts.response_timeout))
            // redis-rs pauses rand(min..min(max, factor * base^n)) ms; its
            // defaults (1.28 s at least) never fit the budget.
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .retry_wait_formula(20, 2);
        if opts.tls_ca.is_some() {
            builder = builder.certs(certs());
        }
        let client = builder.build()?;
        let conn = client.get_async_connection().await?;
        Ok(Conn::Cluster(Arc::new(Cluster {
            client,
            current: RwLock::new(conn),
            rebuilding: AtomicBool::new(false),
            last_rebuild: std::sync::Mutex::new(None),
            budget: opts.response_timeout,
            connect_timeout: opts.connect_timeout,
            rebuilds: AtomicU64::new(0),
            faltered: AtomicU64::new(0),
        })))
    }

    /// Run a script.
    pub(super) async fn invoke(&self, inv: &ScriptInvocation<'_>) -> RedisResult<Value> {
        match self {
            Conn::Single(c, faltered) => {
                count_faltering(inv.invoke_async(&mut c.clone()).await, faltered)
            }
            Conn::Cluster(c) => {
                c.run(|conn| async move {
                    let mut conn = EvalOnNoScript { conn, text: None };
                    inv.invoke_async(&mut conn).await
                })
                .await
            }
        }
    }

    /// Run one command.
    pub(super) async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c, faltered) => {
                count_faltering(cmd.query_async(&mut c.clone()).await, faltered)
            }
            Conn::Cluster(c) => {
                c.run(|mut conn| async move { cmd.query_async::<Value>(&mut conn).await })
                    .await
            }
        }
    }

    /// Load scripts so the first webhook pays no extra round trip. A
    /// cluster needs nothing: each node caches a script the first time it
    /// runs it (`EVAL` after `NOSCRIPT`).
    pub(super) async fn load_scripts(&self, scripts: &[&Script]) -> RedisResult<()> {
        if let Conn::Single(c, _) = self {
            for script in scripts {
                script.load_async(&mut c.clone()).await?;
            }
        }
        Ok(())
    }

    /// How many times the cluster connection was rebuilt (0 for one Redis).
    pub(super) fn rebuilds(&self) -> u64 {
        match self {
            Conn::Single(..) => 0,
            Conn::Cluster(c) => c.rebuilds.load(Ordering::Relaxed),
        }
    }

    /// How many calls met an error that may mean Redis took back writes it
    /// had acknowledged: a dropped or refused connection, a timeout, a
    /// failover (`CLUSTERDOWN`, `MOVED`, `READONLY`…), whether or not a
    /// retry then succeeded. A master that dies before its replica has its
    /// last writes, or a Redis that restarts from an older snapshot, shows
    /// up here first: the spool rechecks the cases this instance recorded
    /// lately after each ([`crate::spool`]).
    pub(super) fn faltered(&self) -> u64 {
        match self {
            Conn::Single(_, n) => n.load(Ordering::Relaxed),
            Conn::Cluster(c) => c.faltered.load(Ordering::Relaxed),
        }
    }
}

/// Whether the Redis at `client` is a node of a Redis Cluster, asked with
/// `CLUSTER SLOTS` (which the shipped ACL grants, unlike `INFO`). A Redis
/// that cannot be reached now, or does not say, is taken as a single one:
/// the gateway starts while Redis is down.
async fn is_cluster_node(client: &redis::Client, within: Duration) -> bool {
    let probe = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Value>(&mut conn)
            .await
    };
    matches!(
        tokio::time::timeout(within, probe).await,
        Ok(Ok(Value::Array(slots))) if !slots.is_empty()
    )
}

/// Count `result` in `faltered` when it is an error of the kind
/// [`Conn::faltered`] counts. A `MOVED` from a single Redis means it is a
/// cluster node after all (it was down when the gateway started, or became
/// one): said once, plainly, as every call to another node's slots fails.
fn count_faltering(result: RedisResult<Value>, faltered: &AtomicU64) -> RedisResult<Value> {
    static MOVED_SAID: AtomicBool = AtomicBool::new(false);
    if let Err(e) = &result
        && needs_new_topology(e)
    {
        faltered.fetch_add(1, Ordering::Relaxed);
        if e.kind() == ErrorKind::Server(ServerErrorKind::Moved)
            && !MOVED_SAID.swap(true, Ordering::Relaxed)
        {
            tracing::error!(
                "Redis answered MOVED: HOTLINE_REDIS_URL names a node of a Redis Cluster that was not reachable as one when the gateway started; restart the gateway (it recognises a cluster node at start) or list several of the cluster's nodes, comma-separated"
            );
        }
    }
    result
}

/// A cluster connection that follows failovers (see the module doc).
pub(super) struct Cluster {
    /// Builds a fresh connection from the configured nodes.
    client: ClusterClient,
    /// The connection calls use now. A std lock: held only to clone or
    /// swap it, never across an `.await`.
    current: RwLock<ClusterConnection>,
    /// Whether a rebuild is under way (one at a time).
    rebuilding: AtomicBool,
    /// When the last rebuild finished, to keep them [`REFRESH_GAP`] apart.
    last_rebuild: std::sync::Mutex<Option<Instant>>,
    /// Time allowed for one call, retries included.
    budget: Duration,
    /// Bound on one rebuild's connecting.
    connect_timeout: Duration,
    /// Rebuilds done, for tests and logs.
    rebuilds: AtomicU64,
    /// Calls that met an error a topology change explains
    /// ([`Conn::faltered`]).
    faltered: AtomicU64,
}

impl Cluster {
    fn current(&self) -> ClusterConnection {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Run `op` within the budget, retrying what a topology change explains.
    async fn run<F, Fut>(self: &Arc<Self>, op: F) -> RedisResult<Value>
    where
        F: Fn(ClusterConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<Value>>,
    {
        let deadline = Instant::now() + self.budget;
        let mut pause = FIRST_PAUSE;
        loop {
            let result = match tokio::time::timeout_at(deadline, op(self.current())).await {
                Ok(r) => r,
                Err(_) => Err(timed_out()),
            };
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) if !needs_new_topology(&e) => return Err(e),
                Err(e) => e,
            };
            self.faltered.fetch_add(1, Ordering::Relaxed);
            self.rebuild_soon();
            if Instant::now() + pause >= deadline {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }

    /// Start a rebuild in the background unless one runs or one finished
    /// less than [`REFRESH_GAP`] ago.
    fn rebuild_soon(self: &Arc<Self>) {
        let recent = self
            .last_rebuild
            .lock()
            .map(|t| t.is_some_and(|t| t.elapsed() < REFRESH_GAP))
            .unwrap_or(false);
        if recent || self.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            // Connecting to every node and reading the slots: a few round
            // trips, each bounded by the connect timeout.
            let bound = me.connect_timeout * 3 + me.budget;
            match tokio::time::timeout(bound, me.client.get_async_connection()).await {
                Ok(Ok(conn)) => {
                    if let Ok(mut current) = me.current.write() {
                        *current = conn;
                    }
                    let n = me.rebuilds.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::info!(
                        rebuilds = n,
                        "Redis Cluster connection rebuilt from a fresh slot map"
                    );
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Redis Cluster connection rebuild failed; will retry");
                }
                Err(_) => tracing::warn!("Redis Cluster connection rebuild timed out; will retry"),
            }
            if let Ok(mut t) = me.last_rebuild.lock() {
                *t = Some(Instant::now());
            }
            me.rebuilding.store(false, Ordering::Release);
        });
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis did not answer within store.response_timeout_ms",
    ))
}

/// Whether an error may mean the cluster's topology changed (a node died,
/// a replica was promoted, slots moved), so that a fresh slot map and a
/// retry may succeed.
pub(super) fn needs_new_topology(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
        return true;
    }
    matches!(
        e.kind(),
        ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(
                ServerErrorKind::ClusterDown
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::Moved
            )
    )
}

/// A cluster connection for one script call that turns the `SCRIPT LOAD`
/// redis-rs sends after `NOSCRIPT` into `EVAL` of the text on the retried
/// call.
///
/// redis-rs's own `SCRIPT LOAD` goes to every node of the slot map and
/// fails when one of them is dead — exactly when a promoted replica lacks
/// the script. `EVAL` goes, by its key, to the one node that serves the
/// slot, and leaves the script in that node's cache for later `EVALSHA`s.
struct EvalOnNoScript {
    conn: ClusterConnection,
    /// The script text, from the intercepted `SCRIPT LOAD`.
    text: Option<Vec<u8>>,
}

impl ConnectionLike for EvalOnNoScript {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let args: Vec<&[u8]> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(b),
                _ => None,
            })
            .collect();
        let verb = |i: usize, s: &str| {
            args.get(i)
                .is_some_and(|a| a.eq_ignore_ascii_case(s.as_bytes()))
        };
        if verb(0, "SCRIPT") && verb(1, "LOAD") && args.len() == 3 {
            let text = args[2].to_vec();
            let hash = sha1_hex(&text);
            self.text = Some(text);
            return Box::pin(async move { Ok(Value::BulkString(hash.into_bytes())) });
        }
        if verb(0, "EVALSHA")
            && let Some(text) = self.text.take()
        {
            let mut eval = redis::cmd("EVAL");
            eval.arg(text);
            for a in &args[2..] {
                eval.arg(*a);
            }
            return Box::pin(async move { self.conn.req_packed_command(&eval).await });
        }
        self.conn.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.conn.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// The SHA-1 of a script, as Redis names it (lower-case hex).
fn sha1_hex(text: &[u8]) -> String {
    use sha1::Digest;
    use std::fmt::Write;
    let digest = sha1::Sha1::digest(text);
    digest.iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_one_redis_uses() {
        let script = Script::new("return KEYS[1]");
        assert_eq!(sha1_hex(b"return KEYS[1]"), script.get_hash());
    }

    #[test]
    fn topology_errors_are_told_from_answers() {
        assert!(needs_new_topology(&timed_out()));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(needs_new_topology(&refused));
        let down = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ClusterDown),
            "CLUSTERDOWN",
        ));
        assert!(needs_new_topology(&down));
        let script = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "ERR"));
        assert!(!needs_new_topology(&script));
        let noscript = RedisError::from((ErrorKind::Server(ServerErrorKind::NoScript), "NOSCRIPT"));
        assert!(!needs_new_topology(&noscript));
    }
}
