//! `[store]`: which store, and its limits and timeouts.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::check::Ctx;
use super::env::{Env, REDIS_URL_VAR};
use super::schema::{StoreConfig, StoreKind};
use crate::problem::quoted;

/// Codes per bucket each instance leases to show during an outage.
const DEFAULT_OFFLINE_CODES: usize = 8;
/// At most this many per bucket: each is a four-digit code (562 per
/// bucket) no other case can take while leased.
const MAX_OFFLINE_CODES: usize = 64;

/// `[store]` as written; absent keys take the defaults below.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    kind: String,
    max_sessions: usize,
    key_prefix: String,
    spool_dir: String,
    offline_codes: usize,
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
            offline_codes: DEFAULT_OFFLINE_CODES,
            connect_timeout_ms: 1_000,
            response_timeout_ms: 500,
        }
    }
}

/// Check `[store]`; `HOTLINE_REDIS_URL`, when set, chooses Redis whatever
/// `kind` says. Relative paths resolve against `base`.
pub(super) fn validate(st: &RawStore, base: &Path, env: &dyn Env, c: &mut Ctx<'_>) -> StoreConfig {
    let kind = kind(&st.kind, env, c);
    c.positive("store.max_sessions", st.max_sessions as u64);
    if st.key_prefix.is_empty() || st.key_prefix.contains(['{', '}', ' ']) {
        c.error(
            quoted("store.key_prefix", &st.key_prefix),
            "must be non-empty, without braces or spaces",
        );
    }
    if st.offline_codes > MAX_OFFLINE_CODES {
        c.error(
            format!("store.offline_codes = {}", st.offline_codes),
            format!("must be at most {MAX_OFFLINE_CODES}"),
        );
    }
    c.positive("store.connect_timeout_ms", st.connect_timeout_ms);
    c.positive("store.response_timeout_ms", st.response_timeout_ms);
    StoreConfig {
        kind,
        max_sessions: st.max_sessions,
        key_prefix: st.key_prefix.clone(),
        spool_dir: base.join(&st.spool_dir),
        offline_codes: st.offline_codes.min(MAX_OFFLINE_CODES),
        connect_timeout: Duration::from_millis(st.connect_timeout_ms),
        response_timeout: Duration::from_millis(st.response_timeout_ms),
    }
}

/// The store kind: Redis when `HOTLINE_REDIS_URL` is set (its URLs checked,
/// never shown: they may hold a password), else `store.kind`.
fn kind(file_kind: &str, env: &dyn Env, c: &mut Ctx<'_>) -> StoreKind {
    match (env.var(REDIS_URL_VAR), file_kind) {
        (Some(url), _) => {
            check_redis_urls(&url, c);
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
    }
}

fn check_redis_urls(url: &str, c: &mut Ctx<'_>) {
    let parts: Vec<&str> = url.split(',').map(str::trim).collect();
    if parts.iter().any(|u| u.starts_with("rediss://")) {
        c.env_error(
            REDIS_URL_VAR,
            "<hidden>",
            "rediss:// (TLS) is not built in: keep Redis on a private network or loopback and use redis://",
        );
    } else if !parts.iter().all(|u| {
        u.starts_with("redis://") || u.starts_with("redis+unix://") || u.starts_with("unix://")
    }) {
        c.env_error(
            REDIS_URL_VAR,
            "<hidden>",
            "must be redis://… (several, comma-separated, for a cluster)",
        );
    }
}
