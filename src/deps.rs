//! The narrow dependencies the domain services hold.
//!
//! The conversation service, the dispatcher, the outbox worker and the timer
//! worker each hold one [`Deps`]: the store, the clock, the privacy keys,
//! the metrics, a way to wake the outbox, and whom to tell of a case
//! settled (the spool's copy for rechecks). Nothing in the domain holds
//! the whole application ([`crate::app::App`]); this value is all it may
//! reach, so a reader knows what a service can touch from its fields.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::privacy::Privacy;
use crate::store::{BUCKETS, Queue, Store, StoreError};

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
    /// Told when this instance stores a case accepted or closed, so the
    /// copy it keeps to recheck after a store fault is current
    /// ([`crate::spool`]); set once the spool is open (none on the
    /// embedded store).
    pub settled: SettledHook,
    /// Failed store operations are logged at most once per operation every
    /// 10 s ([`Deps::store_failed`]): an outage under load wrote hundreds
    /// of lines a second (hostile-traffic audit).
    pub store_log: Arc<crate::server::log_limit::LogLimit>,
}

/// A case this instance stored accepted or closed ([`CaseSettled`]).
#[derive(Debug)]
pub struct Settled<'a> {
    /// Its bucket.
    pub bucket: u16,
    /// Its id.
    pub id: &'a str,
    /// The code it is recorded with.
    pub code: &'a str,
    /// Whether it also has an alias (a code shown during an outage).
    pub aliased: bool,
    /// Its new sealed data.
    pub data: &'a [u8],
    /// The timers this change scheduled.
    pub timers: &'a [crate::store::Job],
    /// Closed (else accepted).
    pub closed: bool,
    /// When it was opened (ms).
    pub opened_ms: u64,
    /// Now (ms).
    pub now_ms: u64,
}

/// What learns of cases settled (accepted, closed) on this instance.
pub trait CaseSettled: Send + Sync {
    /// `case` was stored accepted or closed.
    fn case_settled(&self, case: &Settled<'_>);
}

/// The [`CaseSettled`] of this process, once there is one. Cheap to clone.
#[derive(Clone, Default)]
pub struct SettledHook(Arc<std::sync::OnceLock<Arc<dyn CaseSettled>>>);

impl std::fmt::Debug for SettledHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettledHook")
            .field("set", &self.0.get().is_some())
            .finish()
    }
}

impl SettledHook {
    /// Set the listener (once; a second call is ignored).
    pub fn set(&self, to: Arc<dyn CaseSettled>) {
        let _ = self.0.set(to);
    }

    /// The listener, if set.
    pub fn get(&self) -> Option<&Arc<dyn CaseSettled>> {
        self.0.get()
    }
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
            settled: SettledHook::default(),
            store_log: Arc::default(),
        }
    }

    /// Count and log a failed store operation; an outage also turns
    /// `hotline_store_up` to 0. Each is counted
    /// (`hotline_store_errors_total{op}`); the log has at most one line per
    /// operation every 10 s, with how many were left out since
    /// (`left_out`).
    pub fn store_failed(&self, op: &str, e: &StoreError) {
        self.metrics.store_errors.with_label_values(&[op]).inc();
        if matches!(e, StoreError::Unavailable(_)) {
            self.metrics.store_up.set(0);
        }
        if let Some(left_out) = self.store_log.admit("store", op, std::time::Instant::now()) {
            tracing::error!(op, error = %e, left_out, "store operation failed");
        }
    }
}

/// Wake-ups for the background workers, with the bucket (and due time) of
/// what was queued, so a worker claims the one bucket that has work instead
/// of all of them. [`crate::store::waking::Waking`] sends one for every job
/// the store accepts; the workers merge them into their
/// [`crate::worker::DueBuckets`].
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<WakeInner>);

#[derive(Debug, Default)]
struct WakeInner {
    outbox: Signal,
    timers: Signal,
}

#[derive(Debug, Default)]
struct Signal {
    notify: Notify,
    /// Bucket → earliest due time queued since the worker last looked.
    hints: Mutex<BTreeMap<u16, u64>>,
}

impl Wake {
    fn signal(&self, queue: Queue) -> &Signal {
        match queue {
            Queue::Outbox => &self.0.outbox,
            Queue::Timers => &self.0.timers,
        }
    }

    /// Wake the outbox worker without naming a bucket: it claims the
    /// buckets it already knows to be due (a no-op when it is awake; one
    /// wake-up is remembered while it is busy).
    pub fn outbox(&self) {
        self.0.outbox.notify.notify_one();
    }

    /// A job due at `due_ms` was queued in `bucket`: tell its worker.
    pub fn queued(&self, queue: Queue, bucket: u16, due_ms: u64) {
        let signal = self.signal(queue);
        {
            let mut hints = signal
                .hints
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = hints.entry(bucket % BUCKETS).or_insert(due_ms);
            *due = (*due).min(due_ms);
        }
        signal.notify.notify_one();
    }

    /// The buckets queued in since the last call, each with its earliest
    /// due time.
    pub fn take(&self, queue: Queue) -> Vec<(u16, u64)> {
        let mut hints = self
            .signal(queue)
            .hints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *hints).into_iter().collect()
    }

    /// Resolves at the next wake-up of `queue`'s worker.
    pub async fn woken(&self, queue: Queue) {
        self.signal(queue).notify.notified().await;
    }
}
