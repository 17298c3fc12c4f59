//! The timer worker: escalations, the caller's fallback message, automatic
//! close and retention erase, fired exactly once across instances.
//!
//! Timers live in the store's timer queue, never in a task's memory. A
//! worker claims due timers under a lease; the case changes by
//! compare-and-set and each timer carries the generation it belongs to, so
//! a timer fired twice (two instances, or a worker that died after acting
//! but before finishing) acts once. The worker also refreshes the set of
//! lawyers off call, the coordinators' covers, the on-call gap gauge and
//! the open-case gauges.
//!
//! [`TimerWorker::tick`] does one round at a given instant (tests call it
//! directly); [`TimerWorker::run`] ticks until told to stop.

use std::time::Duration;

use tokio::sync::watch;

use super::{Dispatcher, TimerJob};
use crate::reload::Live;
use crate::store::{BUCKETS, Claimed, Queue};
use crate::worker::DueBuckets;

/// How long a claimed timer is held before another worker may take it.
pub const LEASE_MS: u64 = 30_000;
/// How often the off-call set and the gap gauge are refreshed.
const REFRESH: Duration = Duration::from_secs(10);
/// Timers claimed per bucket per tick.
const BATCH: usize = 16;

/// The timer worker.
#[derive(Debug)]
pub struct TimerWorker {
    /// Read afresh for each timer and refresh: a reload swaps it.
    dispatcher: Live<Dispatcher>,
    /// How long to wait when nothing was due.
    poll: Duration,
}

impl TimerWorker {
    /// A worker firing `dispatcher`'s timers (a fixed one, or the one a
    /// reload swaps), polling every `poll`.
    pub fn new(dispatcher: impl Into<Live<Dispatcher>>, poll: Duration) -> Self {
        TimerWorker {
            dispatcher: dispatcher.into(),
            poll,
        }
    }

    /// Tick until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut last_refresh: Option<tokio::time::Instant> = None;
        let mut due = DueBuckets::new();
        let deps = self.dispatcher.get().deps().clone();
        loop {
            if *stop.borrow() {
                return;
            }
            if last_refresh.is_none_or(|t| t.elapsed() >= REFRESH) {
                self.refresh().await;
                last_refresh = Some(tokio::time::Instant::now());
            }
            // Until the off-call set has been read once (the store was
            // down at start), fire no timer: an escalation would offer the
            // case to a lawyer who sent OFF. Try again each poll.
            if !self.dispatcher.get().state_read() {
                last_refresh = None;
                tokio::select! {
                    () = tokio::time::sleep(self.poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for (bucket, at) in deps.wake.take(Queue::Timers) {
                due.hint(bucket, at);
            }
            let now = deps.clock.now_ms();
            let buckets = due.to_claim(now, self.poll);
            if self.claim_buckets(now, &buckets, &mut due).await == 0 {
                let pause = due.sleep_for(deps.clock.now_ms(), self.poll);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = deps.wake.woken(Queue::Timers) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Refresh the off-call set, the on-call gap gauge and the case gauges
    /// ([`super::board::refresh_gauges`]).
    pub async fn refresh(&self) {
        let d = &self.dispatcher.get();
        if let Err(e) = d.refresh_state().await {
            tracing::debug!(error = %e, "could not refresh the off-call set and the covers");
        }
        for (city, seconds) in d.gap_seconds(d.deps().clock.now()) {
            d.deps()
                .metrics
                .oncall_gap_seconds
                .with_label_values(&[&city])
                .set(seconds);
        }
        super::board::refresh_gauges(d).await;
    }

    /// Fire every timer due at `now_ms`; returns how many were claimed.
    pub async fn tick(&self, now_ms: u64) -> usize {
        let all: Vec<u16> = (0..BUCKETS).collect();
        self.claim_buckets(now_ms, &all, &mut DueBuckets::new())
            .await
    }

    /// Fire the timers of `buckets` due at `now_ms`; note in `due` when
    /// each bucket is next due. Returns how many were claimed.
    async fn claim_buckets(&self, now_ms: u64, buckets: &[u16], due: &mut DueBuckets) -> usize {
        let store = self.dispatcher.get().deps().store.clone();
        let mut fired = 0;
        for (i, &bucket) in buckets.iter().enumerate() {
            let claimed = match store
                .claim_next(bucket, Queue::Timers, now_ms, LEASE_MS, BATCH)
                .await
            {
                Ok(got) => {
                    due.claimed(bucket, &got, now_ms, BATCH, self.poll);
                    got.jobs
                }
                Err(e) => {
                    self.dispatcher.get().deps().store_failed("claim", &e);
                    due.retry_later(&buckets[i..], now_ms, self.poll);
                    break;
                }
            };
            for job in claimed {
                fired += 1;
                self.fire(bucket, &job).await;
            }
        }
        fired
    }

    async fn fire(&self, bucket: u16, job: &Claimed) {
        // The roster in force now: a case opened before a reload escalates
        // along the new chain.
        let d = self.dispatcher.get();
        let store = &d.deps().store;
        let id = &job.job.id;
        let result = match serde_json::from_slice::<TimerJob>(&job.job.payload) {
            Ok(timer) => d.fire(bucket, &timer).await,
            Err(e) => {
                tracing::error!(timer = %id, error = %e, "unreadable timer dropped");
                Ok(())
            }
        };
        match result {
            Ok(()) => {
                if let Err(e) = store.finish(bucket, Queue::Timers, id, job.attempt).await {
                    tracing::warn!(timer = %id, error = %e, "could not finish a timer; it fires again harmlessly");
                    let deps = d.deps();
                    let at = deps.clock.now_ms().saturating_add(LEASE_MS);
                    deps.wake.queued(Queue::Timers, bucket, at);
                }
            }
            // Leave it: the lease expires and it is tried again.
            Err(e) => {
                tracing::warn!(timer = %id, error = %e, "timer failed; will retry");
                let deps = d.deps();
                let at = deps.clock.now_ms().saturating_add(LEASE_MS);
                deps.wake.queued(Queue::Timers, bucket, at);
            }
        }
    }
}
