//! Channel health: whether a channel can send right now, and why not.
//!
//! A send that fails because of the *channel* — no sending credentials,
//! credentials refused, no credit, sender id refused, the aggregator down
//! or timing out — says nothing about the recipient. Such a failure must
//! never count as a lawyer's decline (a case would climb its escalation
//! chain in milliseconds) and must never drop a message before
//! `outbox.max_age_secs`: the message waits and is retried, an operator is
//! told (`hotline_channel_up` turns 0, `HotlineChannelDown` fires), and
//! offers go through the dispatch's fallback SMS channel when one is
//! configured.
//!
//! This instance's view only, in memory: each instance learns from its own
//! sends (a restarted instance starts by assuming every channel is up, and
//! learns otherwise at its first send).
//!
//! It also counts the messages this instance holds for retry because their
//! channel cannot send (`hotline_outbox_held{channel}` and the age of the
//! oldest, `hotline_outbox_held_oldest_seconds`): the store's queues are
//! not counted by channel (that would mean opening every message), so
//! these gauges are per instance — sum or max them across instances. A
//! held message another instance picked up is forgotten here after
//! [`HELD_STALE_MS`] without being held again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::metrics::Metrics;

/// Why a channel could not send, as a metric label (a fixed vocabulary).
pub type Reason = &'static str;

/// No sending credentials here (`can_send()` is false).
pub const NO_CREDENTIALS: Reason = "no_credentials";
/// The aggregator refused for good for a reason of the account or the
/// sender (credentials, balance, sender id).
pub const REFUSED: Reason = "refused";
/// The aggregator is down, throttling or timing out.
pub const UNAVAILABLE: Reason = "unavailable";
/// Every reason, for zeroed metric series.
pub const REASONS: [Reason; 3] = [NO_CREDENTIALS, REFUSED, UNAVAILABLE];

/// One channel's recent history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// When a send last succeeded (ms).
    pub last_ok_ms: Option<u64>,
    /// When a send last failed because of the channel (ms), and why.
    pub last_failure: Option<(u64, String)>,
    /// Channel failures since the last success.
    pub failures_in_a_row: u32,
}

impl Health {
    /// Up: no channel failure since the last success.
    pub fn is_up(&self) -> bool {
        self.failures_in_a_row == 0
    }
}

/// A held message is forgotten when this instance has not held it again
/// for this long (another instance sent it, or it was given up there):
/// well above the longest retry delay of a held message (30 s) plus a
/// lease.
pub const HELD_STALE_MS: u64 = 10 * 60 * 1000;

/// Most held messages tracked (beyond it, new ones are not counted).
const MAX_HELD: usize = 50_000;

/// One message held for retry.
#[derive(Debug, Clone)]
struct Held {
    channel: String,
    created_ms: u64,
    last_held_ms: u64,
}

/// Messages held on one channel, as this instance saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldCount {
    /// How many.
    pub count: usize,
    /// When the oldest was queued (ms).
    pub oldest_created_ms: Option<u64>,
}

/// Every channel's health, as this instance saw it.
#[derive(Debug)]
pub struct ChannelHealth {
    by_channel: Mutex<HashMap<String, Health>>,
    /// Messages held for retry, by job id.
    held: Mutex<HashMap<String, Held>>,
    metrics: Metrics,
}

impl ChannelHealth {
    /// All channels up, until a send says otherwise.
    pub fn new<'a>(channels: impl IntoIterator<Item = &'a str>, metrics: Metrics) -> Self {
        let by_channel = channels
            .into_iter()
            .map(|c| {
                metrics.channel_up.with_label_values(&[c]).set(1);
                for r in REASONS {
                    metrics.channel_failures.with_label_values(&[c, r]);
                }
                (c.to_owned(), Health::default())
            })
            .collect();
        ChannelHealth {
            by_channel: Mutex::new(by_channel),
            held: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn with<T>(&self, channel: &str, f: impl FnOnce(&mut Health) -> T) -> T {
        // A std mutex: held for a few field writes, never across an await.
        let mut map = self
            .by_channel
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(map.entry(channel.to_owned()).or_default())
    }

    /// A send on `channel` succeeded at `now_ms`.
    pub fn ok(&self, channel: &str, now_ms: u64) {
        let was_down = self.with(channel, |h| {
            let down = !h.is_up();
            h.last_ok_ms = Some(now_ms);
            h.failures_in_a_row = 0;
            down
        });
        self.metrics.channel_up.with_label_values(&[channel]).set(1);
        if was_down {
            tracing::info!(channel, "channel can send again");
        }
    }

    /// A send on `channel` failed at `now_ms` because of the channel;
    /// `detail` is the aggregator's code (no free text).
    pub fn failed(&self, channel: &str, reason: Reason, detail: &str, now_ms: u64) {
        let first = self.with(channel, |h| {
            h.last_failure = Some((now_ms, format!("{reason}: {detail}")));
            h.failures_in_a_row = h.failures_in_a_row.saturating_add(1);
            h.failures_in_a_row == 1
        });
        self.metrics.channel_up.with_label_values(&[channel]).set(0);
        self.metrics
            .channel_failures
            .with_label_values(&[channel, reason])
            .inc();
        if first {
            tracing::error!(
                channel,
                reason,
                "channel cannot send: messages wait and are retried"
            );
        }
    }

    /// Whether a send on `channel` succeeded after `since_ms`.
    pub fn ok_since(&self, channel: &str, since_ms: u64) -> bool {
        self.with(channel, |h| h.last_ok_ms.is_some_and(|t| t > since_ms))
    }

    /// Whether `channel` is up (unknown channels count as up).
    pub fn is_up(&self, channel: &str) -> bool {
        self.with(channel, |h| h.is_up())
    }

    /// Message `id` (queued at `created_ms`) waits for `channel` to send
    /// again.
    pub fn hold(&self, id: &str, channel: &str, created_ms: u64, now_ms: u64) {
        let mut held = self.held_map();
        if held.len() >= MAX_HELD && !held.contains_key(id) {
            return;
        }
        held.insert(
            id.to_owned(),
            Held {
                channel: channel.to_owned(),
                created_ms,
                last_held_ms: now_ms,
            },
        );
    }

    /// Message `id` is no longer held (sent or given up).
    pub fn release(&self, id: &str) {
        self.held_map().remove(id);
    }

    /// Held messages by channel at `now_ms` (forgetting stale ones).
    pub fn held(&self, now_ms: u64) -> HashMap<String, HeldCount> {
        let mut held = self.held_map();
        held.retain(|_, h| now_ms.saturating_sub(h.last_held_ms) < HELD_STALE_MS);
        let mut out: HashMap<String, HeldCount> = HashMap::new();
        for h in held.values() {
            let c = out.entry(h.channel.clone()).or_default();
            c.count += 1;
            c.oldest_created_ms = Some(
                c.oldest_created_ms
                    .map_or(h.created_ms, |o| o.min(h.created_ms)),
            );
        }
        out
    }

    /// Set the held-message gauges of every channel as of `now_ms`.
    pub fn publish_held(&self, now_ms: u64) {
        let held = self.held(now_ms);
        let channels: Vec<String> = self.snapshot().into_keys().collect();
        for ch in channels.iter().chain(held.keys()) {
            let h = held.get(ch).copied().unwrap_or_default();
            let age = h
                .oldest_created_ms
                .map_or(0, |t| now_ms.saturating_sub(t) / 1000);
            let m = &self.metrics;
            m.outbox_held
                .with_label_values(&[ch])
                .set(i64::try_from(h.count).unwrap_or(i64::MAX));
            m.outbox_held_oldest
                .with_label_values(&[ch])
                .set(i64::try_from(age).unwrap_or(i64::MAX));
        }
    }

    fn held_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // A std mutex: held for a map operation, never across an await.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of every channel's health (for status pages and tests).
    pub fn snapshot(&self) -> HashMap<String, Health> {
        self.by_channel
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_is_down_from_its_first_failure_until_its_next_success() {
        let m = Metrics::new(["at"], [], []);
        let h = ChannelHealth::new(["at"], m.clone());
        assert!(h.is_up("at"));
        h.failed("at", REFUSED, "http_401", 10);
        h.failed("at", REFUSED, "http_401", 20);
        assert!(!h.is_up("at"));
        assert_eq!(h.snapshot()["at"].failures_in_a_row, 2);
        assert!(m.render().contains(r#"hotline_channel_up{channel="at"} 0"#));
        h.ok("at", 30);
        assert!(h.is_up("at"));
        assert!(m.render().contains(r#"hotline_channel_up{channel="at"} 1"#));
        assert!(
            m.render()
                .contains(r#"hotline_channel_failures_total{channel="at",reason="refused"} 2"#)
        );
    }

    #[test]
    fn held_messages_are_counted_until_sent_or_stale() {
        let m = Metrics::new(["at"], [], []);
        let h = ChannelHealth::new(["at"], m.clone());
        h.hold("m1", "at", 1_000, 10_000);
        h.hold("m2", "at", 4_000, 10_000);
        h.publish_held(61_000);
        let text = m.render();
        assert!(
            text.contains(r#"hotline_outbox_held{channel="at"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"hotline_outbox_held_oldest_seconds{channel="at"} 60"#));
        h.release("m1");
        assert_eq!(h.held(61_000)["at"].count, 1);
        // Not held again here for a long while: another instance has it.
        assert!(h.held(10_000 + HELD_STALE_MS).is_empty());
        h.publish_held(10_000 + HELD_STALE_MS);
        assert!(
            m.render()
                .contains(r#"hotline_outbox_held{channel="at"} 0"#)
        );
    }
}
