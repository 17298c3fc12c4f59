//! A budget of direct replies per lawyer.
//!
//! Every command a lawyer's number sends gets an SMS back (`No case 4821`,
//! the help text, `STATUS`…), sent by [`crate::dispatch::Dispatcher`]'s
//! `tell`. On a channel that cannot prove who sent a message, anyone can
//! send as a lawyer's number; without a bound, a script sending junk as her
//! number would have the gateway text her up to the commands' rate limit
//! (120 a minute) — at the hotline's cost, and at 3 a.m. on her phone.
//!
//! So each lawyer has a bucket of [`BURST`] replies, refilled one every
//! [`REFILL_MS`]. A reply beyond it is not sent; the command still takes
//! effect (an `OK` still accepts, an `OFF` still goes off call: those are
//! bounded by the command rate, not here), and it is counted in
//! `hotline_lawyer_replies_withheld_total` and logged with her roster id
//! once per empty spell. A lawyer typing by hand never meets it: ten
//! replies at once, then one every three minutes, is more than anyone
//! types at night. Messages that are a case's, not a reply's (an offer,
//! `Case 4821 is yours…` with her number after an `OK`, a case closed, a
//! colleague's acceptance), are not counted and never withheld.
//!
//! Per instance and in memory: behind a load balancer the bound is this
//! many per instance; a restart refills it. Holds roster ids only (one
//! entry per lawyer who sent a command), never a number.

use std::collections::HashMap;
use std::sync::Mutex;

/// Replies a lawyer can get at once.
pub const BURST: u32 = 10;
/// One more reply every this many ms once the burst is spent.
pub const REFILL_MS: u64 = 180_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Replies left.
    left: u32,
    /// When `left` was last refilled (ms).
    at_ms: u64,
    /// Whether the empty bucket was logged already.
    told: bool,
}

/// What [`ReplyBudget::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Send it.
    Send,
    /// Withhold it; the first withheld since the bucket last held one.
    WithholdFirst,
    /// Withhold it (the empty bucket was logged already).
    Withhold,
}

/// Replies left per lawyer (by roster id).
#[derive(Debug, Default)]
pub struct ReplyBudget {
    lawyers: Mutex<HashMap<String, Bucket>>,
}

impl ReplyBudget {
    /// Take one reply for `lawyer` at `now_ms`.
    pub fn take(&self, lawyer: &str, now_ms: u64) -> Spend {
        let mut map = self
            .lawyers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = map.entry(lawyer.to_owned()).or_insert(Bucket {
            left: BURST,
            at_ms: now_ms,
            told: false,
        });
        let refills = now_ms.saturating_sub(b.at_ms) / REFILL_MS;
        if refills > 0 {
            let refills = u32::try_from(refills).unwrap_or(u32::MAX);
            b.left = b.left.saturating_add(refills).min(BURST);
            b.at_ms = if b.left == BURST {
                now_ms
            } else {
                b.at_ms + u64::from(refills) * REFILL_MS
            };
        }
        if b.left > 0 {
            if b.left == BURST {
                b.at_ms = now_ms;
            }
            b.left -= 1;
            b.told = false;
            Spend::Send
        } else if b.told {
            Spend::Withhold
        } else {
            b.told = true;
            Spend::WithholdFirst
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_refill() {
        let b = ReplyBudget::default();
        let t0 = 1_000_000;
        for i in 0..BURST {
            assert_eq!(b.take("aigul", t0 + u64::from(i)), Spend::Send, "{i}");
        }
        assert_eq!(b.take("aigul", t0 + 100), Spend::WithholdFirst);
        assert_eq!(b.take("aigul", t0 + 200), Spend::Withhold);
        // Another lawyer has her own.
        assert_eq!(b.take("nadia", t0 + 200), Spend::Send);
        // One back after a refill period, not two.
        assert_eq!(b.take("aigul", t0 + REFILL_MS + 5), Spend::Send);
        assert_eq!(b.take("aigul", t0 + REFILL_MS + 6), Spend::WithholdFirst);
        // Quiet long enough: the whole burst again, never more.
        let later = t0 + 100 * REFILL_MS;
        for i in 0..BURST {
            assert_eq!(b.take("aigul", later + u64::from(i)), Spend::Send, "{i}");
        }
        assert_eq!(b.take("aigul", later + 20), Spend::WithholdFirst);
    }

    #[test]
    fn a_clock_going_back_spends_without_refilling() {
        let b = ReplyBudget::default();
        for _ in 0..BURST {
            assert_eq!(b.take("aigul", 10 * REFILL_MS), Spend::Send);
        }
        assert_eq!(b.take("aigul", 0), Spend::WithholdFirst);
    }
}
