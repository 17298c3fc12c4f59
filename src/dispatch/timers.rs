//! The timer worker: escalations, the caller's fallback message, automatic
//! close and retention erase, fired exactly once across instances.
//!
//! Timers live in the store's timer queue, never in a task's memory. A
//! worker claims due timers under a lease; the case changes by
//! compare-and-set and each timer carries the generation it belongs to, so
//! a timer fired twice (two instances, or a worker that died after acting
//! but before finishing) acts once. The worker also refreshes the set of
//! lawyers off call and the on-call gap gauge.

use std::sync::Arc;
use std::time::Duration;

use super::{Dispatcher, TimerJob};
use crate::app::App;
use crate::store::{BUCKETS, Queue};

/// How long a claimed timer is held before another worker may take it.
pub const LEASE_MS: u64 = 30_000;
/// How often the off-call set and the gap gauge are refreshed.
const REFRESH: Duration = Duration::from_secs(10);

/// Fire due timers until the task is stopped.
pub async fn run(app: App, dispatcher: Arc<Dispatcher>) {
    let poll = app.config.outbox.poll;
    let mut last_refresh: Option<tokio::time::Instant> = None;
    loop {
        if last_refresh.is_none_or(|t| t.elapsed() >= REFRESH) {
            if let Err(e) = dispatcher.refresh_off(&app).await {
                tracing::debug!(error = %e, "could not refresh the off-call set");
            }
            for (city, hours) in dispatcher.gap_hours(app.conversations.clock.now_ms()) {
                app.metrics
                    .oncall_gap_hours
                    .with_label_values(&[&city])
                    .set(hours);
            }
            last_refresh = Some(tokio::time::Instant::now());
        }
        let mut fired = false;
        for bucket in 0..BUCKETS {
            let now = app.conversations.clock.now_ms();
            let claimed = match app
                .conversations
                .store
                .claim(bucket, Queue::Timers, now, LEASE_MS, 16)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "timer claim failed; will retry");
                    break;
                }
            };
            for job in claimed {
                fired = true;
                let Ok(timer) = serde_json::from_slice::<TimerJob>(&job.job.payload) else {
                    tracing::error!(timer = %job.job.id, "unreadable timer dropped");
                    let _ = app
                        .conversations
                        .store
                        .finish(bucket, Queue::Timers, &job.job.id, job.attempt)
                        .await;
                    continue;
                };
                match dispatcher.fire(&app, bucket, &timer).await {
                    Ok(()) => {
                        let _ = app
                            .conversations
                            .store
                            .finish(bucket, Queue::Timers, &job.job.id, job.attempt)
                            .await;
                    }
                    // Leave it: the lease expires and it is tried again.
                    Err(e) => {
                        tracing::warn!(timer = %job.job.id, error = %e, "timer failed; will retry")
                    }
                }
            }
        }
        if !fired {
            tokio::time::sleep(poll).await;
        }
    }
}
