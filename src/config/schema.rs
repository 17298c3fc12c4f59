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
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Per-client-IP request rate on the public listener.
    pub per_ip_per_second: u32,
    /// Per-client-IP burst.
    pub per_ip_burst: u32,
    /// `text` or `json` log lines.
    pub log_json: bool,
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
    /// Redis connect timeout.
    pub connect_timeout: Duration,
    /// Redis response timeout.
    pub response_timeout: Duration,
}

/// Privacy settings.
#[derive(Clone)]
pub struct PrivacyConfig {
    /// The master key for pseudonyms and sealing.
    pub pii_key: Vec<u8>,
    /// Whether it is the development default.
    pub is_dev_key: bool,
    /// How long a closed case keeps its number and location.
    pub case_retention: Duration,
}

impl std::fmt::Debug for PrivacyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacyConfig")
            .field("is_dev_key", &self.is_dev_key)
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
    /// How often the outbox is polled for due messages.
    pub poll: Duration,
    /// First retry delay; doubles each attempt (with jitter).
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Messages being sent at once per instance.
    pub concurrency: usize,
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
}

impl ChannelKind {
    /// Every kind with its config name.
    pub const ALL: [(&'static str, ChannelKind); 5] = [
        ("africastalking", ChannelKind::AfricasTalking),
        ("twilio", ChannelKind::Twilio),
        ("kannel", ChannelKind::Kannel),
        ("infobip", ChannelKind::Infobip),
        ("ussd", ChannelKind::Ussd),
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
