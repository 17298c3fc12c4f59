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
    tls_ca_file: Option<String>,
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
            tls_ca_file: None,
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
    let tls_ca_file = st.tls_ca_file.as_ref().map(|f| base.join(f));
    if let (Some(name), Some(path)) = (&st.tls_ca_file, &tls_ca_file) {
        check_ca_file(name, path, &kind, c);
    }
    StoreConfig {
        kind,
        max_sessions: st.max_sessions,
        key_prefix: st.key_prefix.clone(),
        spool_dir: base.join(&st.spool_dir),
        offline_codes: st.offline_codes.min(MAX_OFFLINE_CODES),
        connect_timeout: Duration::from_millis(st.connect_timeout_ms),
        response_timeout: Duration::from_millis(st.response_timeout_ms),
        tls_ca_file,
        redis_url_missing: st.kind == "redis" && env.var(REDIS_URL_VAR).is_none(),
    }
}

/// `store.tls_ca_file`: a readable PEM certificate, for `rediss://` only.
fn check_ca_file(name: &str, path: &Path, kind: &StoreKind, c: &mut Ctx<'_>) {
    let key = quoted("store.tls_ca_file", name);
    match std::fs::read(path) {
        Ok(pem) if contains(&pem, b"-----BEGIN CERTIFICATE-----") => {}
        Ok(_) => c.error(key.clone(), "holds no PEM certificate"),
        Err(e) => c.error(key.clone(), format!("cannot be read: {e}")),
    }
    if let StoreKind::Redis(url) = kind
        && !url.split(',').all(|u| u.trim().starts_with("rediss://"))
    {
        c.error(key, "needs HOTLINE_REDIS_URL to use rediss:// (TLS)");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
    let tls = parts.iter().filter(|u| u.starts_with("rediss://")).count();
    if !parts.iter().all(|u| {
        u.starts_with("redis://")
            || u.starts_with("rediss://")
            || u.starts_with("redis+unix://")
            || u.starts_with("unix://")
    }) {
        c.env_error(
            REDIS_URL_VAR,
            "<hidden>",
            "must be redis://… or rediss://… (several, comma-separated, for a cluster)",
        );
    } else if tls != 0 && tls != parts.len() {
        c.env_error(
            REDIS_URL_VAR,
            "<hidden>",
            "mixes rediss:// (TLS) and plain URLs: use one kind for every node",
        );
    }
}
