//! Callers over their per-number rate limit: what they are told, and what
//! is logged.
//!
//! A USSD hop over the limit gets her `messages.unavailable` screen (the
//! calm "please call us" with her country's fallback number) as its
//! reply. An SMS has no reply of its own: the aggregator is answered 200 (a
//! retry would only meet the limit again) and nothing would reach her. So
//! she is sent that same text by SMS — but at most once per
//! [`TELL_EVERY_MS`] per number on this instance, so that a flood posted as
//! her number (on a channel that admits anyone) cannot turn into a flood of
//! SMS to her phone, at the hotline's cost ([`Limited::tell`]).
//!
//! The warning `caller over the rate limit` is logged at most once per
//! channel every 10 s ([`crate::server::log_limit`]), with how many were
//! left out since: one number hammering the gateway through its
//! aggregator must not bury the journal. `hotline_webhook_requests_total
//! {outcome="rate_limited"}` counts every one.
//!
//! Both are in memory, per instance: bounded to [`MAX_TOLD`] numbers (by
//! pseudonym, never a number) told in the last window; past that, nobody
//! more is told until the window frees room.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::server::log_limit::LogLimit;

/// A number over its limit is told by SMS at most once per this long.
pub const TELL_EVERY_MS: u64 = 10 * 60 * 1000;
/// Most numbers remembered as told.
pub const MAX_TOLD: usize = 4096;

/// Who was told lately, and the log lines' limit.
#[derive(Debug, Default)]
pub struct Limited {
    log: LogLimit,
    /// When each pseudonym was last told (ms).
    told: Mutex<HashMap<String, u64>>,
}

impl Limited {
    /// Whether to log a refusal on `channel` now: `Some(n)` with how many
    /// were left out since the last line.
    pub fn log(&self, channel: &str) -> Option<u64> {
        self.log
            .admit(channel, "caller over the rate limit", Instant::now())
    }

    /// Whether to send the caller `pseudonym` her fallback text now, at
    /// `now_ms`; `true` records that she was.
    pub fn tell(&self, pseudonym: &str, now_ms: u64) -> bool {
        let mut told = self.told.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = |at: u64| now_ms.saturating_sub(at) < TELL_EVERY_MS;
        if told.get(pseudonym).is_some_and(|&at| fresh(at)) {
            return false;
        }
        if told.len() >= MAX_TOLD && !told.contains_key(pseudonym) {
            told.retain(|_, at| fresh(*at));
            if told.len() >= MAX_TOLD {
                return false;
            }
        }
        told.insert(pseudonym.to_owned(), now_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_number_is_told_once_per_window() {
        let l = Limited::default();
        assert!(l.tell("p_a", 1_000));
        assert!(!l.tell("p_a", 2_000));
        assert!(l.tell("p_b", 2_000));
        assert!(!l.tell("p_a", 1_000 + TELL_EVERY_MS - 1));
        assert!(l.tell("p_a", 1_000 + TELL_EVERY_MS));
    }

    #[test]
    fn the_memory_is_bounded_and_frees_old_entries() {
        let l = Limited::default();
        for i in 0..MAX_TOLD {
            assert!(l.tell(&format!("p_{i}"), 0));
        }
        // Full of fresh entries: nobody new is told.
        assert!(!l.tell("p_new", 1));
        // Once the window passed, the old ones make room.
        assert!(l.tell("p_new", TELL_EVERY_MS));
        assert!(l.told.lock().unwrap().len() == 1);
    }
}
