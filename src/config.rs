//! Configuration: the TOML file, environment overrides, and validation.
//!
//! Everything is read and checked before a port is bound. Each problem names
//! its file and key (`config/hotline.toml: server.listen = "x": …`) or its
//! environment variable; `hotline serve` exits 64 (EX_USAGE) on any error.
//!
//! Secrets never live in the file: the file names the environment variable
//! that holds each one (`secret_env = "HOTLINE_AT_SECRET"`). Environment is
//! read through the [`Env`] trait so tests pass a map instead of touching the
//! process environment.
//!
//! Relative paths in the file are relative to the file's own folder.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::problem::{Problem, quoted};
use crate::store::RateLimit;

/// Default config file, relative to the working directory.
pub const DEFAULT_CONFIG: &str = "config/hotline.toml";

/// Where configuration reads environment variables from.
pub trait Env {
    /// The variable's value, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

impl Env for BTreeMap<&str, &str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| (*v).to_owned())
    }
}

/// Which config file to read: `--config`, else `HOTLINE_CONFIG`, else the default.
pub fn config_path(flag: Option<&Path>, env: &dyn Env) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| env.var("HOTLINE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

// ---------------------------------------------------------------- raw file

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    privacy: RawPrivacy,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    outbox: RawOutbox,
    flows: Option<RawFlows>,
    dispatch: Option<RawDispatch>,
    #[serde(default)]
    channels: Vec<RawChannel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: String,
    admin_listen: String,
    max_body_bytes: usize,
    header_read_timeout_ms: u64,
    request_timeout_ms: u64,
    max_connections: usize,
    shutdown_grace_secs: u64,
    per_ip_per_second: u32,
    per_ip_burst: u32,
    log_format: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            max_body_bytes: 16 * 1024,
            header_read_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            max_connections: 1024,
            shutdown_grace_secs: 10,
            per_ip_per_second: 200,
            per_ip_burst: 400,
            log_format: "text".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    kind: String,
    max_sessions: usize,
    key_prefix: String,
    spool_dir: String,
    connect_timeout_ms: u64,
    response_timeout_ms: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            kind: "memory".into(),
            max_sessions: 100_000,
            key_prefix: "hotline".into(),
            spool_dir: "../var/spool".into(),
            connect_timeout_ms: 1_000,
            response_timeout_ms: 500,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPrivacy {
    pii_key_env: String,
    require_pii_key: bool,
    case_retention_hours: u64,
}

impl Default for RawPrivacy {
    fn default() -> Self {
        RawPrivacy {
            pii_key_env: "HOTLINE_PII_KEY".into(),
            require_pii_key: false,
            case_retention_hours: 72,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    per_number_per_minute: u32,
    per_number_burst: u32,
    dedupe_ttl_secs: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            per_number_per_minute: 30,
            per_number_burst: 15,
            dedupe_ttl_secs: 24 * 3600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawOutbox {
    max_attempts: u32,
    max_age_secs: u64,
    lease_secs: u64,
    poll_ms: u64,
    backoff_base_ms: u64,
    backoff_max_secs: u64,
    concurrency: usize,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox {
            max_attempts: 8,
            max_age_secs: 3600,
            lease_secs: 60,
            poll_ms: 1000,
            backoff_base_ms: 2000,
            backoff_max_secs: 300,
            concurrency: 16,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDispatch {
    roster: String,
    #[serde(default = "default_texts")]
    texts: String,
    sms_channel: String,
    #[serde(default = "default_auto_close_days")]
    auto_close_days: u64,
}

fn default_texts() -> String {
    "lawyer_texts.toml".into()
}

fn default_auto_close_days() -> u64 {
    7
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlows {
    dir: String,
    default: String,
    fallback_phone: String,
}

#[derive(Debug, Deserialize)]
struct RawChannel {
    name: String,
    kind: String,
    #[serde(default = "enabled_default")]
    enabled: bool,
    #[serde(default)]
    flow: Option<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    #[serde(flatten)]
    settings: toml::Table,
}

fn enabled_default() -> bool {
    true
}

// ---------------------------------------------------------------- validated

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
    /// The number shown where a flow says `{fallback}`.
    pub fallback_phone: String,
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

/// An IP network for allow-lists (`10.0.0.0/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parse `addr` or `addr/prefix`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
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

/// Why configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read at all (`hotline check` exits 2).
    Unreadable(Problem),
    /// The file was read; these problems were found (errors among them).
    Invalid(Vec<Problem>),
}

struct Ctx<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    fn error(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem::error(self.file, key, msg));
    }

    fn env_error(&mut self, name: &str, value: &str, msg: &str) {
        self.problems.push(Problem::error(
            "environment",
            format!("{name}={value:?}"),
            format!("is not valid: {msg}"),
        ));
    }

    fn addr(&mut self, key: &str, file_value: &str, env_name: &str, env: &dyn Env) -> SocketAddr {
        const MSG: &str = "not an address like 127.0.0.1:8080";
        if let Some(v) = env.var(env_name) {
            return v.parse().unwrap_or_else(|_| {
                self.env_error(env_name, &v, MSG);
                SocketAddr::from(([127, 0, 0, 1], 0))
            });
        }
        file_value.parse().unwrap_or_else(|_| {
            self.error(quoted(key, file_value), MSG);
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    fn positive(&mut self, key: &str, value: u64) {
        if value == 0 {
            self.error(format!("{key} = 0"), "must be more than zero");
        }
    }
}

/// A path written without `.` and `x/..` parts, for messages
/// (`config/../flows` reads as `flows`).
fn lexical(path: &Path) -> String {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    let p: PathBuf = out.iter().collect();
    if p.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        p.display().to_string()
    }
}

fn env_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Load and validate the configuration at `path`.
///
/// # Errors
/// [`LoadError::Unreadable`] when the file cannot be read;
/// [`LoadError::Invalid`] with every problem otherwise.
pub fn load(path: &Path, env: &dyn Env) -> Result<(Config, Vec<Problem>), LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        LoadError::Unreadable(Problem::error(&file, "", format!("cannot read: {e}")))
    })?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    parse(&text, &file, &base, env)
}

/// Parse and validate configuration text (`file` names it in problems;
/// relative paths resolve against `base`).
///
/// # Errors
/// [`LoadError::Invalid`] with every problem found.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    env: &dyn Env,
) -> Result<(Config, Vec<Problem>), LoadError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| {
                format!(
                    "line {}",
                    text[..s.start.min(text.len())].matches('\n').count() + 1
                )
            })
            .unwrap_or_default();
        LoadError::Invalid(vec![Problem::error(file, line, e.message().to_owned())])
    })?;
    let mut c = Ctx {
        file,
        problems: Vec::new(),
    };

    // server
    let s = &raw.server;
    let listen = c.addr("server.listen", &s.listen, "HOTLINE_LISTEN", env);
    let admin_listen = c.addr(
        "server.admin_listen",
        &s.admin_listen,
        "HOTLINE_ADMIN_LISTEN",
        env,
    );
    if listen == admin_listen && listen.port() != 0 {
        c.error(
            quoted("server.admin_listen", &s.admin_listen),
            "must differ from server.listen",
        );
    }
    if !(1024..=1 << 20).contains(&s.max_body_bytes) {
        c.error(
            format!("server.max_body_bytes = {}", s.max_body_bytes),
            "must be between 1024 and 1048576",
        );
    }
    c.positive("server.header_read_timeout_ms", s.header_read_timeout_ms);
    c.positive("server.request_timeout_ms", s.request_timeout_ms);
    c.positive("server.max_connections", s.max_connections as u64);
    c.positive("server.per_ip_per_second", u64::from(s.per_ip_per_second));
    c.positive("server.per_ip_burst", u64::from(s.per_ip_burst));
    let log_format = env
        .var("HOTLINE_LOG_FORMAT")
        .unwrap_or_else(|| s.log_format.clone());
    if log_format != "text" && log_format != "json" {
        c.error(
            quoted("server.log_format", &log_format),
            "must be \"text\" or \"json\"",
        );
    }
    let server = ServerConfig {
        listen,
        admin_listen,
        max_body_bytes: s.max_body_bytes,
        header_read_timeout: Duration::from_millis(s.header_read_timeout_ms),
        request_timeout: Duration::from_millis(s.request_timeout_ms),
        max_connections: s.max_connections,
        shutdown_grace: Duration::from_secs(s.shutdown_grace_secs),
        per_ip_per_second: s.per_ip_per_second,
        per_ip_burst: s.per_ip_burst,
        log_json: log_format == "json",
    };

    // store
    let st = &raw.store;
    let kind = match (env.var("HOTLINE_REDIS_URL"), st.kind.as_str()) {
        (Some(url), _) => {
            let parts: Vec<&str> = url.split(',').map(str::trim).collect();
            if parts.iter().any(|u| u.starts_with("rediss://")) {
                c.env_error(
                    "HOTLINE_REDIS_URL",
                    "<hidden>",
                    "rediss:// (TLS) is not built in: keep Redis on a private network or loopback and use redis://",
                );
            } else if !parts.iter().all(|u| {
                u.starts_with("redis://")
                    || u.starts_with("redis+unix://")
                    || u.starts_with("unix://")
            }) {
                c.env_error(
                    "HOTLINE_REDIS_URL",
                    "<hidden>",
                    "must be redis://… (several, comma-separated, for a cluster)",
                );
            }
            StoreKind::Redis(url)
        }
        (None, "memory") => StoreKind::Memory,
        (None, "redis") => {
            c.error(
                quoted("store.kind", "redis"),
                "set HOTLINE_REDIS_URL to the Redis URL",
            );
            StoreKind::Memory
        }
        (None, other) => {
            c.error(
                quoted("store.kind", other),
                "must be \"memory\" or \"redis\"",
            );
            StoreKind::Memory
        }
    };
    c.positive("store.max_sessions", st.max_sessions as u64);
    if st.key_prefix.is_empty() || st.key_prefix.contains(['{', '}', ' ']) {
        c.error(
            quoted("store.key_prefix", &st.key_prefix),
            "must be non-empty, without braces or spaces",
        );
    }
    c.positive("store.connect_timeout_ms", st.connect_timeout_ms);
    c.positive("store.response_timeout_ms", st.response_timeout_ms);
    let store = StoreConfig {
        kind,
        max_sessions: st.max_sessions,
        key_prefix: st.key_prefix.clone(),
        spool_dir: base.join(&st.spool_dir),
        connect_timeout: Duration::from_millis(st.connect_timeout_ms),
        response_timeout: Duration::from_millis(st.response_timeout_ms),
    };

    // privacy
    let p = &raw.privacy;
    if !env_name_ok(&p.pii_key_env) {
        c.error(
            quoted("privacy.pii_key_env", &p.pii_key_env),
            "not an environment variable name",
        );
    }
    let (pii_key, is_dev_key) = match env.var(&p.pii_key_env) {
        Some(k) if k.len() >= crate::privacy::MIN_KEY_LEN => (k.into_bytes(), false),
        Some(_) => {
            c.env_error(
                &p.pii_key_env,
                "<hidden>",
                &format!("must be at least {} bytes", crate::privacy::MIN_KEY_LEN),
            );
            (Vec::new(), false)
        }
        None if p.require_pii_key => {
            c.error(
                "privacy.require_pii_key = true",
                format!("{} is not set", p.pii_key_env),
            );
            (Vec::new(), false)
        }
        None => (crate::privacy::DEV_KEY.as_bytes().to_vec(), true),
    };
    c.positive("privacy.case_retention_hours", p.case_retention_hours);
    let privacy = PrivacyConfig {
        pii_key,
        is_dev_key,
        case_retention: Duration::from_secs(p.case_retention_hours * 3600),
    };

    // limits
    let l = &raw.limits;
    c.positive(
        "limits.per_number_per_minute",
        u64::from(l.per_number_per_minute),
    );
    c.positive("limits.per_number_burst", u64::from(l.per_number_burst));
    c.positive("limits.dedupe_ttl_secs", l.dedupe_ttl_secs);
    let limits = Limits {
        rate: RateLimit {
            per_minute: l.per_number_per_minute.max(1),
            burst: l.per_number_burst.max(1),
        },
        dedupe_ttl: Duration::from_secs(l.dedupe_ttl_secs),
    };

    // outbox
    let o = &raw.outbox;
    c.positive("outbox.max_attempts", u64::from(o.max_attempts));
    c.positive("outbox.max_age_secs", o.max_age_secs);
    c.positive("outbox.lease_secs", o.lease_secs);
    c.positive("outbox.poll_ms", o.poll_ms);
    c.positive("outbox.backoff_base_ms", o.backoff_base_ms);
    c.positive("outbox.backoff_max_secs", o.backoff_max_secs);
    c.positive("outbox.concurrency", o.concurrency as u64);
    if o.lease_secs < 20 {
        c.error(
            format!("outbox.lease_secs = {}", o.lease_secs),
            "must be at least 20: a send may take 15 s",
        );
    }
    let outbox = OutboxConfig {
        max_attempts: o.max_attempts,
        max_age: Duration::from_secs(o.max_age_secs),
        lease: Duration::from_secs(o.lease_secs),
        poll: Duration::from_millis(o.poll_ms),
        backoff_base: Duration::from_millis(o.backoff_base_ms),
        backoff_max: Duration::from_secs(o.backoff_max_secs),
        concurrency: o.concurrency.max(1),
    };

    // flows
    let flows = match &raw.flows {
        Some(f) => {
            if f.fallback_phone.trim().is_empty() {
                c.error(
                    "flows.fallback_phone",
                    "set the number callers can ring when the menu cannot help",
                );
            }
            FlowsConfig {
                dir: base.join(&f.dir),
                display_dir: lexical(&base.join(&f.dir)),
                default: f.default.clone(),
                fallback_phone: f.fallback_phone.clone(),
            }
        }
        None => {
            c.error(
                "flows",
                "missing: add a [flows] table with dir, default and fallback_phone",
            );
            FlowsConfig {
                dir: base.join("flows"),
                display_dir: "flows".into(),
                default: String::new(),
                fallback_phone: String::new(),
            }
        }
    };

    // dispatch
    let dispatch = raw.dispatch.as_ref().map(|d| {
        c.positive("dispatch.auto_close_days", d.auto_close_days);
        DispatchConfig {
            roster: base.join(&d.roster),
            texts: base.join(&d.texts),
            texts_display: lexical(&base.join(&d.texts)),
            sms_channel: d.sms_channel.clone(),
            auto_close: Duration::from_secs(d.auto_close_days.max(1) * 24 * 3600),
        }
    });

    // channels
    let mut channels = Vec::new();
    let mut disabled_channels = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, ch) in raw.channels.iter().enumerate() {
        let key = format!("channels[{i}]");
        let name_ok = !ch.name.is_empty()
            && ch
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !name_ok {
            c.error(
                quoted(&format!("{key}.name"), &ch.name),
                "use lowercase letters, digits, `_` or `-`",
            );
        }
        if !names.insert(ch.name.clone()) {
            c.error(
                quoted(&format!("{key}.name"), &ch.name),
                "another channel has this name",
            );
        }
        let Some(kind) = ChannelKind::ALL
            .iter()
            .find(|(n, _)| *n == ch.kind)
            .map(|(_, k)| *k)
        else {
            let known: Vec<&str> = ChannelKind::ALL.iter().map(|(n, _)| *n).collect();
            c.error(
                quoted(&format!("{key}.kind"), &ch.kind),
                format!("unknown kind (known: {})", known.join(", ")),
            );
            continue;
        };
        if !ch.enabled {
            // Kept for names and a clear 404; settings are checked once enabled.
            disabled_channels.push(ch.name.clone());
            continue;
        }
        let secret = match &ch.secret_env {
            Some(name) if !env_name_ok(name) => {
                c.error(
                    quoted(&format!("{key}.secret_env"), name),
                    "not an environment variable name",
                );
                None
            }
            Some(name) => match env.var(name) {
                Some(v) => Some(v),
                None => {
                    c.error(
                        quoted(&format!("{key}.secret_env"), name),
                        format!("environment variable {name} is not set"),
                    );
                    None
                }
            },
            None => None,
        };
        let mut allow_ips = Vec::new();
        for (j, ip) in ch.allow_ips.iter().enumerate() {
            match IpNet::parse(ip) {
                Some(net) => allow_ips.push(net),
                None => c.error(
                    quoted(&format!("{key}.allow_ips[{j}]"), ip),
                    "not an IP address or network like 10.0.0.0/8",
                ),
            }
        }
        // Settings ending in `_env` name secrets: read them now so a missing
        // one is reported before any port is bound.
        let mut env_values = BTreeMap::new();
        for (k, v) in &ch.settings {
            if let (true, Some(name)) = (k.ends_with("_env"), v.as_str()) {
                match env.var(name) {
                    Some(val) => {
                        env_values.insert(name.to_owned(), val);
                    }
                    None => c.error(
                        quoted(&format!("{key}.{k}"), name),
                        format!("environment variable {name} is not set"),
                    ),
                }
            }
        }
        channels.push(ChannelConfig {
            name: ch.name.clone(),
            kind,
            flow: ch.flow.clone().unwrap_or_else(|| flows.default.clone()),
            secret,
            allow_ips,
            settings: ch.settings.clone(),
            env: env_values,
        });
    }

    let config = Config {
        source: file.to_owned(),
        server,
        store,
        privacy,
        limits,
        outbox,
        flows,
        dispatch,
        channels,
        disabled_channels,
    };
    if let Some(d) = &config.dispatch
        && !config.channels.iter().any(|ch| ch.name == d.sms_channel)
    {
        c.error(
            quoted("dispatch.sms_channel", &d.sms_channel),
            "no enabled channel has this name",
        );
    }
    if c.problems.iter().any(Problem::is_error) {
        Err(LoadError::Invalid(c.problems))
    } else {
        Ok((config, c.problems))
    }
}

#[cfg(test)]
mod tests;
