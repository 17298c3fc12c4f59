//! `[server]`: the listeners, HTTP limits, trusted proxies and shutdown.
//!
//! The connection limits bound the public listener's memory:
//! `max_connections × (max_header_bytes + max_body_bytes + ~8 KiB)` (hyper's
//! read buffer, the collected body, per-connection bookkeeping); the
//! defaults give 1,024 × 40 KiB ≈ 40 MiB. `ops/systemd/hotline.service`
//! sets `MemoryMax=` with that figure in mind.

use std::time::Duration;

use serde::Deserialize;

use super::IpNet;
use super::check::Ctx;
use super::env::{ADMIN_LISTEN_VAR, ADMIN_TOKEN_VAR, Env, LISTEN_VAR, LOG_FORMAT_VAR};
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
    max_connections_per_ip: usize,
    idle_timeout_ms: u64,
    max_header_bytes: usize,
    body_read_timeout_ms: u64,
    shutdown_grace_secs: u64,
    drain_delay_secs: u64,
    per_ip_per_second: u32,
    per_ip_burst: u32,
    auth_failures_per_minute: u32,
    auth_failures_burst: u32,
    trusted_proxies: Vec<String>,
    proxy_protocol: bool,
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
            max_connections_per_ip: 64,
            idle_timeout_ms: 2_000,
            max_header_bytes: 16 * 1024,
            body_read_timeout_ms: 5_000,
            shutdown_grace_secs: 10,
            drain_delay_secs: 0,
            per_ip_per_second: 200,
            per_ip_burst: 400,
            auth_failures_per_minute: 60,
            auth_failures_burst: 10,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
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
    c.positive(
        "server.max_connections_per_ip",
        s.max_connections_per_ip as u64,
    );
    c.positive("server.idle_timeout_ms", s.idle_timeout_ms);
    c.positive("server.body_read_timeout_ms", s.body_read_timeout_ms);
    if !(MIN_HEADER_BYTES..=1 << 20).contains(&s.max_header_bytes) {
        c.error(
            format!("server.max_header_bytes = {}", s.max_header_bytes),
            format!("must be between {MIN_HEADER_BYTES} and 1048576"),
        );
    }
    c.positive("server.per_ip_per_second", u64::from(s.per_ip_per_second));
    c.positive("server.per_ip_burst", u64::from(s.per_ip_burst));
    c.positive(
        "server.auth_failures_per_minute",
        u64::from(s.auth_failures_per_minute),
    );
    c.positive(
        "server.auth_failures_burst",
        u64::from(s.auth_failures_burst),
    );
    let trusted_proxies = trusted_proxies(&s.trusted_proxies, c);
    if s.proxy_protocol && s.trusted_proxies.is_empty() {
        c.error(
            "server.proxy_protocol = true",
            "needs server.trusted_proxies: only a trusted proxy's PROXY header is read",
        );
    }
    // A bad value is blamed on where it came from: the variable wins.
    const LOG_FORMATS: &str = "must be \"text\" or \"json\"";
    let log_format = match env.var(LOG_FORMAT_VAR) {
        Some(v) => {
            if v != "text" && v != "json" {
                c.env_error(LOG_FORMAT_VAR, &v, LOG_FORMATS);
            }
            v
        }
        None => {
            if s.log_format != "text" && s.log_format != "json" {
                c.error(quoted("server.log_format", &s.log_format), LOG_FORMATS);
            }
            s.log_format.clone()
        }
    };
    let admin_token = env.var(ADMIN_TOKEN_VAR);
    if let Some(t) = &admin_token
        && t.len() < 16
    {
        c.env_error(ADMIN_TOKEN_VAR, "…", "must be at least 16 characters");
    }
    ServerConfig {
        admin_token: admin_token.map(super::schema::AdminToken),
        listen,
        admin_listen,
        max_body_bytes: s.max_body_bytes,
        header_read_timeout: Duration::from_millis(s.header_read_timeout_ms),
        request_timeout: Duration::from_millis(s.request_timeout_ms),
        max_connections: s.max_connections,
        max_connections_per_ip: s.max_connections_per_ip,
        idle_timeout: Duration::from_millis(s.idle_timeout_ms),
        max_header_bytes: s.max_header_bytes.max(MIN_HEADER_BYTES),
        body_read_timeout: Duration::from_millis(s.body_read_timeout_ms),
        shutdown_grace: Duration::from_secs(s.shutdown_grace_secs),
        drain_delay: Duration::from_secs(s.drain_delay_secs),
        per_ip_per_second: s.per_ip_per_second,
        per_ip_burst: s.per_ip_burst,
        auth_failures_per_minute: s.auth_failures_per_minute,
        auth_failures_burst: s.auth_failures_burst,
        trusted_proxies,
        proxy_protocol: s.proxy_protocol,
        log_json: log_format == "json",
    }
}

/// hyper refuses a read buffer under 8 KiB (it panics), so the header cap,
/// which is also the buffer's size, starts there.
const MIN_HEADER_BYTES: usize = 8192;

/// `server.trusted_proxies`: networks; a bad entry is reported and skipped.
fn trusted_proxies(entries: &[String], c: &mut Ctx<'_>) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        match IpNet::parse(entry) {
            Some(net) => nets.push(net),
            None => c.error(
                quoted(&format!("server.trusted_proxies[{i}]"), entry),
                "not an address or network like 10.0.0.0/8",
            ),
        }
    }
    nets
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::config::{LoadError, parse};

    const REST: &str = r#"
[flows]
dir = "../flows"
default = "legal_help"
fallback_phone = "+996 000 000 000"
[[channels]]
name = "africastalking"
kind = "africastalking"
"#;

    fn errors(server: &str) -> Vec<String> {
        let env: BTreeMap<&str, &str> = BTreeMap::new();
        let text = format!("[server]\n{server}\n{REST}");
        match parse(&text, "c.toml", Path::new("config"), &env) {
            Ok(_) => Vec::new(),
            Err(LoadError::Invalid(ps)) => ps.iter().map(ToString::to_string).collect(),
            Err(LoadError::Unreadable(p)) => vec![p.to_string()],
        }
    }

    #[test]
    fn the_systemd_memory_limit_leaves_room_above_the_connection_bound() {
        let unit = include_str!("../../ops/systemd/hotline.service");
        let max_mib: usize = unit
            .lines()
            .find_map(|l| l.strip_prefix("MemoryMax="))
            .and_then(|v| v.trim().strip_suffix('M'))
            .and_then(|v| v.parse().ok())
            .expect("MemoryMax=<n>M in the unit");
        let env: BTreeMap<&str, &str> = BTreeMap::new();
        let text = include_str!("../../config/hotline.toml");
        let (config, _) = parse(text, "hotline.toml", Path::new("config"), &env).unwrap();
        let bound_mib = config.server.connection_memory_bound() / (1024 * 1024);
        assert_eq!(bound_mib, 40, "the figure the docs quote");
        assert!(max_mib >= 4 * bound_mib, "MemoryMax={max_mib}M");
    }

    #[test]
    fn hostile_network_settings_are_checked() {
        assert_eq!(
            errors("trusted_proxies = [\"10.0.0.0/8\", \"proxy.local\"]"),
            vec![
                r#"c.toml: server.trusted_proxies[1] = "proxy.local": not an address or network like 10.0.0.0/8"#
            ]
        );
        assert_eq!(
            errors("max_header_bytes = 4096"),
            vec!["c.toml: server.max_header_bytes = 4096: must be between 8192 and 1048576"]
        );
        assert_eq!(
            errors("max_connections_per_ip = 0\nidle_timeout_ms = 0"),
            vec![
                "c.toml: server.max_connections_per_ip = 0: must be more than zero",
                "c.toml: server.idle_timeout_ms = 0: must be more than zero",
            ]
        );
        assert!(
            errors("trusted_proxies = [\"::1\", \"127.0.0.1\"]\ndrain_delay_secs = 5").is_empty()
        );
    }

    #[test]
    fn the_proxy_protocol_needs_trusted_proxies() {
        assert_eq!(
            errors("proxy_protocol = true"),
            [
                "c.toml: server.proxy_protocol = true: needs server.trusted_proxies: only a trusted proxy's PROXY header is read"
            ]
        );
        assert!(errors("proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\"]").is_empty());
    }
}
