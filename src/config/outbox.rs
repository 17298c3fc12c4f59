//! `[outbox]`: how outbound messages are sent and retried.

use std::time::Duration;

use serde::Deserialize;

use super::check::Ctx;
use super::schema::OutboxConfig;

/// How much longer than the send timeout a lease must be, so that another
/// worker never takes a message over while its send is still in flight.
const LEASE_MARGIN_SECS: u64 = 5;

/// `outbox.poll_ms` when not set: the longest an idle worker sleeps, and
/// how often it probes one bucket (`docs/redis.md`, *Background work*).
pub const DEFAULT_POLL_MS: u64 = 1000;

/// `[outbox]` as written; absent keys take the defaults below.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawOutbox {
    max_attempts: u32,
    max_age_secs: u64,
    lease_secs: u64,
    poll_ms: u64,
    backoff_base_ms: u64,
    backoff_max_secs: u64,
    concurrency: usize,
    send_timeout_ms: u64,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox {
            max_attempts: 8,
            max_age_secs: 3600,
            lease_secs: 60,
            poll_ms: DEFAULT_POLL_MS,
            backoff_base_ms: 2000,
            backoff_max_secs: 300,
            concurrency: 16,
            send_timeout_ms: 15_000,
        }
    }
}

/// Check `[outbox]`.
pub(super) fn validate(o: &RawOutbox, c: &mut Ctx<'_>) -> OutboxConfig {
    c.positive("outbox.max_attempts", u64::from(o.max_attempts));
    c.positive("outbox.max_age_secs", o.max_age_secs);
    c.positive("outbox.lease_secs", o.lease_secs);
    c.positive("outbox.poll_ms", o.poll_ms);
    c.positive("outbox.backoff_base_ms", o.backoff_base_ms);
    c.positive("outbox.backoff_max_secs", o.backoff_max_secs);
    c.positive("outbox.concurrency", o.concurrency as u64);
    c.positive("outbox.send_timeout_ms", o.send_timeout_ms);
    let min_lease = o.send_timeout_ms.div_ceil(1000) + LEASE_MARGIN_SECS;
    if o.lease_secs < min_lease {
        c.error(
            format!("outbox.lease_secs = {}", o.lease_secs),
            format!(
                "must be at least {min_lease}: a send may take outbox.send_timeout_ms ({} ms)",
                o.send_timeout_ms
            ),
        );
    }
    OutboxConfig {
        max_attempts: o.max_attempts,
        max_age: Duration::from_secs(o.max_age_secs),
        lease: Duration::from_secs(o.lease_secs),
        poll: Duration::from_millis(o.poll_ms),
        backoff_base: Duration::from_millis(o.backoff_base_ms),
        backoff_max: Duration::from_secs(o.backoff_max_secs),
        concurrency: o.concurrency.max(1),
        send_timeout: Duration::from_millis(o.send_timeout_ms.max(1)),
    }
}
