//! The validated configuration: the types the rest of the gateway reads.
//!
//! Every value here has been checked; durations are durations, paths are
//! resolved against the config file's folder, secrets have been read from
//! the environment (and are kept out of `Debug`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::IpNet;
use crate::store::RateLimit;

/// Listener and HTTP settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Public webhook listener.
    pub listen: SocketAddr,
    /// Private admin listener (metrics, health).
    pub admin_listen: SocketAddr,
    /// Largest request body accepted; larger gets 413 unread.
    pub max_body_bytes: usize,
    /// Time allowed to send the request head.
    pub header_read_timeout: Duration,
    /// Time allowed for a whole request, body and handling included.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Public connections one address (an IPv6 /64) may hold at once, so
    /// one client cannot take every slot; trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// A connection that has sent nothing since its last response (or since
    /// it opened) for this long is closed, freeing its slot.
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers), and the size of
    /// each connection's read buffer: what bounds memory per connection.
    pub max_header_bytes: usize,
    /// Time allowed to send the body once the head is in (408 otherwise).
    pub body_read_timeout: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// On shutdown, how long `/readyz` answers 503 while the public
    /// listener still serves, so a load balancer can stop sending first.
    pub drain_delay: Duration,
    /// Per-client-IP rate of authenticated requests on the public listener.
    pub per_ip_per_second: u32,
    /// Per-client-IP burst of authenticated requests.
    pub per_ip_burst: u32,
    /// Per-client-IP rate of failed authentications (kept apart from the
    /// authenticated budget so bad secrets cannot spend it).
    pub auth_failures_per_minute: u32,
    /// Per-client-IP burst of failed authentications.
    pub auth_failures_burst: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Connections from a trusted proxy start with a PROXY protocol header
    /// (v1 or v2) naming the client.
    pub proxy_protocol: bool,
    /// `text` or `json` log lines.
    pub log_json: bool,
    /// The admin `POST` endpoints' token (`HOTLINE_ADMIN_TOKEN`), if set.
    pub admin_token: Option<AdminToken>,
}

/// A secret bearer token. `Debug` never shows it; compared in constant time.
#[derive(Clone)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// Whether `given` is the token (constant time in the token's length).
    pub fn matches(&self, given: &str) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_bytes(), given.as_bytes()).into()
    }
}

impl ServerConfig {
    /// What the public listener's connections can hold at most, in bytes:
    /// `max_connections × (max_header_bytes + max_body_bytes + 8 KiB)` (the
    /// read buffer, the collected body, hyper's and the task's own state).
    /// `ops/systemd/hotline.service` sets `MemoryMax=` well above it.
    pub fn connection_memory_bound(&self) -> usize {
        const PER_CONNECTION_OVERHEAD: usize = 8 * 1024;
        self.max_connections
            .saturating_mul(self.max_header_bytes + self.max_body_bytes + PER_CONNECTION_OVERHEAD)
    }
}

/// Which store to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded in-memory store.
    Memory,
    /// Redis at this URL (from `HOTLINE_REDIS_URL`; may list cluster nodes).
    Redis(String),
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Which store.
    pub kind: StoreKind,
    /// Live sessions the memory store keeps before evicting the oldest.
    pub max_sessions: usize,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// Folder of the durable spool for cases completed while Redis is down.
    pub spool_dir: PathBuf,
    /// Case codes per bucket this instance leases (while the store is up)
    /// to show callers while it is down; 0: never show a code offline.
    pub offline_codes: usize,
    /// Redis connect timeout.
    pub connect_timeout: Duration,
    /// Redis response timeout.
    pub response_timeout: Duration,
    /// CA certificate (PEM) trusted for `rediss://` instead of the
    /// system's roots, for a Redis with a self-signed certificate.
    pub tls_ca_file: Option<PathBuf>,
    /// The file asked for Redis (`kind = "redis"`) but `HOTLINE_REDIS_URL`
    /// is not set: an error already, and `kind` is the memory store only
    /// so that the rest can be checked (not a choice to warn about).
    pub redis_url_missing: bool,
}

/// Privacy settings.
#[derive(Clone)]
pub struct PrivacyConfig {
    /// The master key for pseudonyms and sealing.
    pub pii_key: Vec<u8>,
    /// The key before a rotation (`<pii_key_env>_PREVIOUS`), to open what
    /// it sealed.
    pub previous_pii_key: Option<Vec<u8>>,
    /// Whether it is the development default.
    pub is_dev_key: bool,
    /// `privacy.require_pii_key`: the operator declared this a production
    /// set-up (see [`Config::is_production`]).
    pub require_pii_key: bool,
    /// How long a closed case keeps its number and location.
    pub case_retention: Duration,
}

impl std::fmt::Debug for PrivacyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacyConfig")
            .field("is_dev_key", &self.is_dev_key)
            .field("previous_pii_key", &self.previous_pii_key.is_some())
            .field("require_pii_key", &self.require_pii_key)
            .field("case_retention", &self.case_retention)
            .finish_non_exhaustive()
    }
}

/// Limits on callers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Per-number rate limit.
    pub rate: RateLimit,
    /// How long a delivery is remembered for dedupe.
    pub dedupe_ttl: Duration,
}

/// How outbound messages are sent.
#[derive(Debug, Clone, Copy)]
pub struct OutboxConfig {
    /// Attempts before a message is given up.
    pub max_attempts: u32,
    /// Age after which a message is given up instead of sent late.
    pub max_age: Duration,
    /// How long a worker holds a claimed message before another may take it.
    pub lease: Duration,
    /// The longest an idle outbox or timer worker sleeps; while nothing is
    /// due it claims one bucket per poll (work queued by other instances),
    /// otherwise only the buckets it knows to have work due.
    pub poll: Duration,
    /// First retry delay; doubles each attempt (with jitter).
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Messages being sent at once per instance.
    pub concurrency: usize,
    /// How long one send to an aggregator may take (then it is retried).
    pub send_timeout: Duration,
}

/// Lawyer dispatch.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// The roster file.
    pub roster: PathBuf,
    /// The lawyers' texts file.
    pub texts: PathBuf,
    /// The texts file as written, for messages.
    pub texts_display: String,
    /// The channel offers and lawyers' replies go out on.
    pub sms_channel: String,
    /// A second channel for them while `sms_channel` cannot send.
    pub fallback_sms_channel: Option<String>,
    /// Cases still open after this long are closed automatically.
    pub auto_close: Duration,
}

/// Where flows live and how they are used.
#[derive(Debug, Clone)]
pub struct FlowsConfig {
    /// The folder.
    pub dir: PathBuf,
    /// The folder as written, for messages.
    pub display_dir: String,
    /// The flow a USSD dial starts.
    pub default: String,
    /// The numbers shown where a flow says `{fallback}`: the caller's
    /// country's (`fallback_phones`), else `fallback_phone`.
    pub fallbacks: crate::flow::Fallbacks,
    /// The operator handles cases outside this gateway: a flow may open
    /// cases without `[dispatch]`.
    pub cases_handled_elsewhere: bool,
}

/// Aggregator kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Africa's Talking.
    AfricasTalking,
    /// Twilio.
    Twilio,
    /// Kannel.
    Kannel,
    /// Infobip.
    Infobip,
    /// A USSD adapter configured by field names.
    Ussd,
    /// The development sink: SMS kept in memory and shown on `/console`.
    Console,
}

impl ChannelKind {
    /// Every kind with its config name.
    pub const ALL: [(&'static str, ChannelKind); 6] = [
        ("africastalking", ChannelKind::AfricasTalking),
        ("twilio", ChannelKind::Twilio),
        ("kannel", ChannelKind::Kannel),
        ("infobip", ChannelKind::Infobip),
        ("ussd", ChannelKind::Ussd),
        ("console", ChannelKind::Console),
    ];

    /// The config name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("unknown", |(n, _)| n)
    }
}

/// One aggregator channel.
#[derive(Clone)]
pub struct ChannelConfig {
    /// The name in webhook URLs (`/webhooks/{name}/…`) and metrics.
    pub name: String,
    /// The aggregator kind.
    pub kind: ChannelKind,
    /// The flow USSD sessions on this channel start (default: `flows.default`).
    pub flow: String,
    /// The shared secret callers must present, read from `secret_env`.
    pub secret: Option<String>,
    /// Addresses allowed to call the webhooks; empty allows any.
    pub allow_ips: Vec<IpNet>,
    /// Kind-specific settings, validated by the channel itself.
    pub settings: toml::Table,
    /// Environment variables the settings name, already read.
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("flow", &self.flow)
            .field("has_secret", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, as named.
    pub source: String,
    /// Listeners and HTTP.
    pub server: ServerConfig,
    /// The store.
    pub store: StoreConfig,
    /// Keys and retention.
    pub privacy: PrivacyConfig,
    /// Caller limits.
    pub limits: Limits,
    /// Outbound messages.
    pub outbox: OutboxConfig,
    /// Flows.
    pub flows: FlowsConfig,
    /// Lawyer dispatch (absent: cases are recorded but offered to nobody).
    pub dispatch: Option<DispatchConfig>,
    /// Aggregator channels.
    pub channels: Vec<ChannelConfig>,
    /// Names of channels present but `enabled = false` (their webhooks
    /// answer 404 until they are configured and enabled).
    pub disabled_channels: Vec<String>,
}

impl Config {
    /// Whether this is a production configuration (the reason is
    /// [`Config::production`], the one place it is decided); the admin
    /// listener asks for its token when it is true.
    pub fn is_production(&self) -> bool {
        self.production().is_some()
    }

    /// Whether the admin listener asks for `HOTLINE_ADMIN_TOKEN` on
    /// everything beyond `/metrics`, `/healthz` and `/readyz`: in
    /// production, when the admin listener is not on loopback, or whenever
    /// a token is set. Only the embedded development default on loopback
    /// serves its pages without one.
    pub fn admin_token_required(&self) -> bool {
        self.is_production()
            || !self.server.admin_listen.ip().is_loopback()
            || self.server.admin_token.is_some()
    }
}
