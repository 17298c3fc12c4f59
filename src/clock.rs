//! Wall-clock time, injectable.
//!
//! Everything that needs "now" (store requests, case timestamps) asks a
//! [`Clock`]; tests use a manual one and move it forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that moves only when told to (tests).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: u64) -> Self {
        Clock::Manual(Arc::new(AtomicU64::new(start_ms)))
    }

    /// Now, in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Move a manual clock forward (no effect on the system clock).
    pub fn advance(&self, ms: u64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}
