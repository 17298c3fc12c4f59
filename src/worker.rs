//! Background workers: work that can wait, off the webhook path.
//!
//! - the spool replayer: cases completed while the store was down go into
//!   the store as soon as it answers again;
//! - the store watch: pings the store every few seconds for
//!   `hotline_store_up`;
//! - the outbox sender ([`crate::outbox::worker`]);
//! - the dispatch timers ([`crate::dispatch::timers`]), when dispatch is on.
//!
//! Workers run for as long as [`crate::server::run`] does and are stopped
//! with it. Every one of them tolerates store outages: it logs, waits, and
//! tries again; none needs a restart to recover.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::app::App;

/// How often the spool is retried while it holds cases.
pub const SPOOL_INTERVAL: Duration = Duration::from_millis(500);

/// Start every background worker.
pub fn spawn_all(app: &App) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(crate::outbox::worker::run(app.clone()))];
    if let Some(d) = &app.dispatcher {
        tasks.push(tokio::spawn(crate::dispatch::timers::run(
            app.clone(),
            d.clone(),
        )));
    }
    tasks.push(tokio::spawn(store_watch(app.clone())));
    if app.conversations.spool.is_some() {
        tasks.push(tokio::spawn(spool_replayer(app.clone())));
    }
    tasks
}

/// How often the store is pinged for `hotline_store_up`.
pub const STORE_PING_INTERVAL: Duration = Duration::from_secs(5);

/// Keep `hotline_store_up` true to the store's state even without traffic.
async fn store_watch(app: App) {
    let mut tick = tokio::time::interval(STORE_PING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ok = tokio::time::timeout(Duration::from_secs(2), app.conversations.store.ping())
            .await
            .is_ok_and(|r| r.is_ok());
        app.metrics.store_up.set(i64::from(ok));
        if !ok {
            app.metrics.store_errors.with_label_values(&["ping"]).inc();
        }
    }
}

async fn spool_replayer(app: App) {
    let Some(spool) = app.conversations.spool.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(SPOOL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        app.metrics.spool_pending.set(spool.pending() as i64);
        if spool.pending() == 0 {
            continue;
        }
        let now = app.conversations.clock.now_ms();
        match spool.replay(app.conversations.store.as_ref(), now).await {
            Ok(n) => {
                app.metrics.store_up.set(1);
                tracing::info!(replayed = n, "spool replayed into the store");
            }
            Err(e) => {
                tracing::debug!(error = %e, pending = spool.pending(), "spool not replayed yet")
            }
        }
        app.metrics.spool_pending.set(spool.pending() as i64);
    }
}
