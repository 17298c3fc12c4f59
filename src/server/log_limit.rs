//! At most one log line per channel and reason every [`LOG_EVERY`] for
//! refused webhook requests.
//!
//! Anyone can send the public listener bad requests, and a line for each
//! would let them fill the disk (and bury everything else in the journal).
//! So the first refusal of a kind (channel and reason) is logged at once;
//! further ones within [`LOG_EVERY`] are only counted, and the next line
//! of that kind says how many were left out since the last
//! (`suppressed=N`). The metrics (`hotline_webhook_requests_total`) still
//! count every request.
//!
//! The state is bounded: channels come from the config and reasons from a
//! fixed vocabulary and the adapters' field names (a reason never quotes a
//! value the request sent: `channel::parse_json`), yet to be sure at most
//! [`MAX_KINDS`] kinds are tracked;
//! past that, every new kind shares one more ([`OTHER_REASONS`]), whose
//! line names the channel and reason that opened its window.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The shortest time between two lines of the same kind.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Most kinds (channel and reason) tracked.
pub const MAX_KINDS: usize = 256;

/// The reason new kinds are tracked under once [`MAX_KINDS`] are.
pub const OTHER_REASONS: &str = "(other reasons)";

/// When each kind was last logged, and how many were left out since.
#[derive(Debug)]
struct Kind {
    logged_at: Instant,
    suppressed: u64,
}

/// Rate-limits log lines by channel and reason.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    /// By (channel, reason); at most [`MAX_KINDS`] and the shared one.
    kinds: Mutex<HashMap<(String, String), Kind>>,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(LOG_EVERY)
    }
}

impl LogLimit {
    /// At most one line per kind every `every`.
    pub fn new(every: Duration) -> Self {
        LogLimit {
            every,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Whether to log a refusal of `channel` for `reason` at `now`:
    /// `Some(n)`, with `n` left out since the last line of its kind, or
    /// `None` (left out, and counted for the next line).
    pub fn admit(&self, channel: &str, reason: &str, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = (channel.to_owned(), reason.to_owned());
        if !kinds.contains_key(&key) && kinds.len() >= MAX_KINDS {
            key = (String::new(), OTHER_REASONS.to_owned());
        }
        match kinds.entry(key) {
            Entry::Vacant(e) => {
                e.insert(Kind {
                    logged_at: now,
                    suppressed: 0,
                });
                Some(0)
            }
            Entry::Occupied(mut e) => {
                let kind = e.get_mut();
                if now.saturating_duration_since(kind.logged_at) >= self.every {
                    kind.logged_at = now;
                    Some(std::mem::take(&mut kind.suppressed))
                } else {
                    kind.suppressed += 1;
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_period_then_the_count_left_out() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.admit("at", "missing field `text`", t0), Some(0));
        for i in 1..=500 {
            let t = t0 + Duration::from_millis(i * 10);
            assert_eq!(limit.admit("at", "missing field `text`", t), None);
        }
        // Other kinds have their own period.
        assert_eq!(limit.admit("at", "forbidden", t0), Some(0));
        assert_eq!(limit.admit("kannel", "missing field `text`", t0), Some(0));
        assert_eq!(limit.admit("kannel", "forbidden", t0), Some(0));
        // Ten seconds after its last line: logged, with the 500 left out.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(limit.admit("at", "missing field `text`", t1), Some(500));
        assert_eq!(limit.admit("at", "missing field `text`", t1), None);
        assert_eq!(
            limit.admit("at", "missing field `text`", t1 + Duration::from_secs(10)),
            Some(1)
        );
    }

    #[test]
    fn past_the_bound_new_reasons_share_one_kind() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..MAX_KINDS {
            assert_eq!(
                limit.admit("at", &format!("unknown variant {i}"), t0),
                Some(0)
            );
        }
        // Reasons seen before keep their kinds; new ones share one.
        assert_eq!(limit.admit("at", "unknown variant 0", t0), None);
        assert_eq!(limit.admit("at", "unknown variant x", t0), Some(0));
        for i in 0..1000 {
            assert_eq!(
                limit.admit("at", &format!("unknown variant y{i}"), t0),
                None
            );
        }
        assert_eq!(limit.admit("kannel", "new", t0), None, "shared by all");
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(limit.admit("at", "unknown variant z", t1), Some(1001));
        let tracked = limit.kinds.lock().unwrap().len();
        assert_eq!(tracked, MAX_KINDS + 1, "bounded");
    }
}
