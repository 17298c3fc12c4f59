//! The one clock: "now" as a [`jiff::Timestamp`], injectable.
//!
//! Everything that needs "now" (store requests, case timestamps, timers)
//! asks a [`Clock`]. Production uses [`Clock::System`]. Tests use either a
//! manual clock they move by hand, or [`Clock::tokio`], which follows tokio's
//! clock from a fixed start: under `#[tokio::test(start_paused = true)]`,
//! `tokio::time::advance` moves domain time and every worker's sleep
//! together, so a test of escalation or retries never sleeps for real.
//! The store's API speaks milliseconds since the Unix epoch; [`Clock::now_ms`]
//! is that view of the same instant.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;

/// A source of "now".
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that moves only when told to (ms since the Unix epoch).
    Manual(Arc<AtomicI64>),
    /// `start` plus the time tokio's clock has moved since `origin`.
    Tokio {
        /// Domain time at `origin`.
        start: Timestamp,
        /// tokio's instant when the clock was made.
        origin: tokio::time::Instant,
    },
}

fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Clock {
    /// A manual clock starting at `start_ms` (ms since the Unix epoch).
    pub fn manual(start_ms: u64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(
            i64::try_from(start_ms).unwrap_or(i64::MAX),
        )))
    }

    /// A clock at `start_ms` now, moving with tokio's clock (which a
    /// paused-time test advances at will). Call inside a runtime.
    pub fn tokio(start_ms: u64) -> Self {
        Clock::Tokio {
            start: from_ms(i64::try_from(start_ms).unwrap_or(i64::MAX)),
            origin: tokio::time::Instant::now(),
        }
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Manual(t) => from_ms(t.load(Ordering::SeqCst)),
            Clock::Tokio { start, origin } => {
                let moved = jiff::SignedDuration::try_from(origin.elapsed())
                    .unwrap_or(jiff::SignedDuration::MAX);
                start.checked_add(moved).unwrap_or(*start)
            }
        }
    }

    /// Now, in ms since the Unix epoch (the store's unit).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.now().as_millisecond()).unwrap_or(0)
    }

    /// Move a manual clock forward by `ms` (no effect on the others: move
    /// tokio's clock with `tokio::time::advance`).
    pub fn advance(&self, ms: u64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
        }
    }

    /// Move a manual clock forward by `d`.
    pub fn advance_by(&self, d: Duration) {
        self.advance(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }
}

/// A timestamp as ms since the Unix epoch (0 before it).
pub fn to_ms(t: Timestamp) -> u64 {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

/// ms since the Unix epoch as a timestamp.
pub fn from_epoch_ms(ms: u64) -> Timestamp {
    from_ms(i64::try_from(ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance_by(Duration::from_secs(2));
        assert_eq!(c.now_ms(), 3_000);
        assert_eq!(c.now(), from_epoch_ms(3_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_follows_paused_time() {
        let c = Clock::tokio(5_000);
        assert_eq!(c.now_ms(), 5_000);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(c.now_ms(), 65_000);
        assert_eq!(to_ms(c.now()), 65_000);
    }
}
