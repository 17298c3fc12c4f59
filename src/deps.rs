//! The narrow dependencies the domain services hold.
//!
//! The conversation service, the dispatcher, the outbox worker and the timer
//! worker each hold one [`Deps`]: the store, the clock, the privacy keys,
//! the metrics, and a way to wake the outbox. Nothing in the domain holds
//! the whole application ([`crate::app::App`]); this value is all it may
//! reach, so a reader knows what a service can touch from its fields.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::privacy::Privacy;
use crate::store::{Store, StoreError};

/// What every domain service may use. Cheap to clone.
#[derive(Clone)]
pub struct Deps {
    /// Sessions, cases, jobs: every state that outlives a request.
    pub store: Arc<dyn Store>,
    /// Now.
    pub clock: Clock,
    /// Pseudonyms and sealing, keyed by `HOTLINE_PII_KEY`.
    pub privacy: Privacy,
    /// Every metric (one registry, owned by the app).
    pub metrics: Metrics,
    /// Wakes the outbox worker when this instance queued a message, so a
    /// message goes out without waiting for the next poll.
    pub wake: Wake,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

impl Deps {
    /// Dependencies of their own: an embedded store (default bound), fresh
    /// metrics, `clock`. For tools that inspect a config (`check`) and for
    /// tests.
    pub fn detached(privacy: Privacy, clock: Clock) -> Self {
        Deps {
            store: Arc::new(crate::store::memory::MemoryStore::new(10_000)),
            clock,
            privacy,
            metrics: Metrics::new([], [], []),
            wake: Wake::default(),
        }
    }

    /// Count and log a failed store operation; an outage also turns
    /// `hotline_store_up` to 0.
    pub fn store_failed(&self, op: &str, e: &StoreError) {
        self.metrics.store_errors.with_label_values(&[op]).inc();
        if matches!(e, StoreError::Unavailable(_)) {
            self.metrics.store_up.set(0);
        }
        tracing::error!(op, error = %e, "store operation failed");
    }
}

/// A wake-up for the outbox worker.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Wake the outbox worker (a no-op when it is already awake; one
    /// wake-up is remembered while it is busy).
    pub fn outbox(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next [`Wake::outbox`].
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}
