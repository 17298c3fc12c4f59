//! `[server]`: the listeners and HTTP limits.

use std::time::Duration;

use serde::Deserialize;

use super::check::Ctx;
use super::env::{ADMIN_LISTEN_VAR, Env, LISTEN_VAR, LOG_FORMAT_VAR};
use super::schema::ServerConfig;
use crate::problem::quoted;

/// `[server]` as written; absent keys take the defaults below.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
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

/// Check `[server]`, with `HOTLINE_LISTEN`, `HOTLINE_ADMIN_LISTEN` and
/// `HOTLINE_LOG_FORMAT` winning over the file.
pub(super) fn validate(s: &RawServer, env: &dyn Env, c: &mut Ctx<'_>) -> ServerConfig {
    let listen = c.addr("server.listen", &s.listen, LISTEN_VAR, env);
    let admin_listen = c.addr(
        "server.admin_listen",
        &s.admin_listen,
        ADMIN_LISTEN_VAR,
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
        .var(LOG_FORMAT_VAR)
        .unwrap_or_else(|| s.log_format.clone());
    if log_format != "text" && log_format != "json" {
        c.error(
            quoted("server.log_format", &log_format),
            "must be \"text\" or \"json\"",
        );
    }
    ServerConfig {
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
    }
}
