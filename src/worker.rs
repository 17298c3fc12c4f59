//! Background workers and their lifecycle: work that can wait, off the
//! webhook path.
//!
//! - [`StoreWatch`] pings the store every few seconds for
//!   `hotline_store_up`;
//! - [`SpoolReplayer`] puts cases completed while the store was down into
//!   the store as soon as it answers again — this instance's spool and any
//!   spool no live instance holds — and writes the cases recorded in the
//!   last hour to disk, so that a restart does not forget to recheck them;
//! - [`CodeLeaser`] keeps this instance's leased case codes (the only codes
//!   shown during an outage) renewed and topped up;
//! - the outbox sender ([`crate::outbox::worker::Outbox`]), and beside it
//!   the retries of delivery reports that came before their message's
//!   record ([`crate::outbox::status`]);
//! - the dispatch timers ([`crate::dispatch::timers::TimerWorker`]), when
//!   dispatch is on.
//!
//! Each worker is a value with a `tick` that does one round (tests call it
//! directly) and a `run` loop that ticks until told to stop. [`Workers`]
//! owns them in one `JoinSet`: [`Workers::shutdown`] tells every loop to
//! stop taking work, lets the round in progress finish (an SMS being sent
//! is sent and recorded) within the grace, and only then aborts what is
//! left. Every worker tolerates store outages: it logs, waits, and tries
//! again; none needs a restart to recover.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::codes::OfflineCodes;
use crate::deps::Deps;
use crate::dispatch::timers::TimerWorker;
use crate::outbox::worker::Outbox;
use crate::spool::{Replayed, Spool};
use crate::store::{BUCKETS, ClaimBatch};

/// How often the spool is retried while it holds cases.
pub const SPOOL_INTERVAL: Duration = Duration::from_millis(500);
/// How often leased codes are renewed and topped up while the store
/// answers (a lease lasts [`crate::codes::LEASE_TTL_MS`]).
pub const LEASE_INTERVAL: Duration = Duration::from_secs(30);
/// How soon a failed lease renewal is tried again.
const LEASE_RETRY: Duration = Duration::from_secs(2);
/// How often the store is pinged for `hotline_store_up`.
pub const STORE_PING_INTERVAL: Duration = Duration::from_secs(5);
/// How long one ping may take before the store counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Sleep `every`, or until `stop` turns; true when it is time to stop.
async fn wait(every: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(every) => {}
        _ = stop.changed() => {}
    }
    *stop.borrow()
}

/// When each bucket's queue next needs a claim, as far as this instance
/// knows: the outbox and timer workers sleep until the earliest of these
/// instead of polling every bucket. A bucket learns its time from its last
/// claim ([`crate::store::Store::claim_next`]) and from wake-ups for jobs
/// this instance queued ([`crate::deps::Wake::queued`]). Work queued by
/// another instance (or left by one that died) is found by a probe: while
/// nothing is due, one bucket in turn is claimed every `probe_every`, so
/// an idle worker makes one claim per poll interval, not one per bucket.
#[derive(Debug, Clone)]
pub struct DueBuckets {
    /// Domain time (ms) each bucket is next due; 0 at start (unknown:
    /// claim at once), `u64::MAX` when its queue is empty.
    next: [u64; BUCKETS as usize],
    /// The bucket the next probe claims.
    probe: u16,
    /// When the last probe (or claim) was made, in real time.
    last_probe: Option<tokio::time::Instant>,
}

impl Default for DueBuckets {
    fn default() -> Self {
        DueBuckets {
            next: [0; BUCKETS as usize],
            probe: 0,
            last_probe: None,
        }
    }
}

impl DueBuckets {
    /// Every bucket due at once (a worker's start).
    pub fn new() -> Self {
        Self::default()
    }

    /// Something in `bucket` is due at `due_ms`.
    pub fn hint(&mut self, bucket: u16, due_ms: u64) {
        let b = usize::from(bucket % BUCKETS);
        self.next[b] = self.next[b].min(due_ms);
    }

    /// A claim of `bucket` (of at most `max` jobs, at `now_ms`) said when
    /// its queue is next due. A full batch is claimed again at once; a
    /// store that cannot tell (it answers a time already past without a
    /// full batch) is asked again after `poll`.
    pub fn claimed(
        &mut self,
        bucket: u16,
        got: &ClaimBatch,
        now_ms: u64,
        max: usize,
        poll: Duration,
    ) {
        let poll_ms = u64::try_from(poll.as_millis()).unwrap_or(1000).max(1);
        let next = match got.next_due_ms {
            _ if got.jobs.len() >= max => now_ms,
            Some(at) if at <= now_ms => now_ms + poll_ms,
            Some(at) => at,
            None => u64::MAX,
        };
        self.next[usize::from(bucket % BUCKETS)] = next;
    }

    /// A claim failed (the store is down): try `buckets` again after `poll`.
    pub fn retry_later(&mut self, buckets: &[u16], now_ms: u64, poll: Duration) {
        let poll_ms = u64::try_from(poll.as_millis()).unwrap_or(1000).max(1);
        for b in buckets {
            let b = usize::from(b % BUCKETS);
            self.next[b] = self.next[b].max(now_ms + poll_ms);
        }
    }

    /// The buckets to claim at `now_ms`: every due one; when none is, the
    /// next bucket in turn once `probe_every` has passed since the last
    /// probe.
    pub fn to_claim(&mut self, now_ms: u64, probe_every: Duration) -> Vec<u16> {
        let due: Vec<u16> = (0..BUCKETS)
            .filter(|b| self.next[usize::from(*b)] <= now_ms)
            .collect();
        let now = tokio::time::Instant::now();
        if !due.is_empty() {
            return due;
        }
        if self
            .last_probe
            .is_some_and(|t| now.duration_since(t) < probe_every)
        {
            return Vec::new();
        }
        self.last_probe = Some(now);
        let b = self.probe;
        self.probe = (self.probe + 1) % BUCKETS;
        vec![b]
    }

    /// How long to sleep at `now_ms`: until the earliest known due time,
    /// at most `poll` (a manual clock may jump; a probe is due every poll).
    pub fn sleep_for(&self, now_ms: u64, poll: Duration) -> Duration {
        let earliest = self.next.iter().copied().min().unwrap_or(u64::MAX);
        let until = Duration::from_millis(earliest.saturating_sub(now_ms));
        until.min(poll)
    }
}

/// Keeps `hotline_store_up` true to the store's state even without traffic,
/// and logs each change of it once: `store operation failed` (`op=ping`,
/// with the error) when the store stops answering, `store reachable again`
/// when it answers again. Its ping also tells whether the store lost what
/// it held ([`crate::store::Store::watch`]): then `the store lost its data`
/// is logged and `hotline_store_data_lost_total` counted (the critical
/// alert `HotlineStoreDataLost`): every open case, queued offer and timer
/// in it is gone, and nobody else would notice.
#[derive(Debug, Clone)]
pub struct StoreWatch {
    deps: Deps,
    /// Whether the last ping was answered (the store is taken as up at
    /// start: the gateway checked it then).
    was_up: Arc<std::sync::atomic::AtomicBool>,
}

impl StoreWatch {
    /// A watch over `deps.store`.
    pub fn new(deps: Deps) -> Self {
        StoreWatch {
            deps,
            was_up: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// Read the sentinels once ([`Store::watch`]); a loss is counted and
    /// logged. `Ok(true)`: the store lost its data since the last read.
    async fn read_sentinels(&self) -> Result<bool, String> {
        let result = match tokio::time::timeout(PING_TIMEOUT, self.deps.store.watch()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", PING_TIMEOUT.as_millis())),
        };
        // Each loss once, whichever watch found it (the spool's worker
        // reads the sentinels too), and also when the watch is an error:
        // on a cluster one slot may show a loss while another does not
        // answer (Redis Cluster audit: a second loss was never paged).
        let found = self.deps.store.take_data_losses();
        if found > 0 {
            self.deps.metrics.store_data_lost.inc_by(found);
            tracing::error!(
                "the store lost its data: a sentinel key is gone or went back in time (Redis restarted without persistence or from an older snapshot, flushed, or failed over to a replica that lacked its writes); open cases, queued offers and timers written before (or since that copy) are gone; the cases this instance recorded in the last hour are recorded again"
            );
        }
        result.map(|lost| lost || found > 0)
    }

    /// Ping once; returns whether the store answered.
    pub async fn tick(&self) -> bool {
        use std::sync::atomic::Ordering;
        let result = self.read_sentinels().await.map(|_| ());
        let ok = result.is_ok();
        self.deps.metrics.store_up.set(i64::from(ok));
        let was_up = self.was_up.swap(ok, Ordering::Relaxed);
        match result {
            Err(e) => {
                self.deps
                    .metrics
                    .store_errors
                    .with_label_values(&["ping"])
                    .inc();
                if was_up {
                    tracing::error!(op = "ping", error = %e, "store operation failed");
                }
            }
            Ok(()) if !was_up => tracing::info!("store reachable again"),
            Ok(()) => {}
        }
        ok
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            self.tick().await;
            if wait(STORE_PING_INTERVAL, &mut stop).await {
                return;
            }
        }
    }
}

/// Replays the spool into the store.
#[derive(Debug, Clone)]
pub struct SpoolReplayer {
    deps: Deps,
    spool: Arc<Spool>,
    /// Reads the sentinels before kept SMS are handled.
    watch: StoreWatch,
    /// [`crate::store::Store::data_losses`] as of the last tick.
    losses_seen: Arc<std::sync::atomic::AtomicU64>,
    /// When a loss was last seen or counted (ms; 0: never).
    loss_at_ms: Arc<std::sync::atomic::AtomicU64>,
    /// The last write of the recent cases failed (logged once a streak).
    save_failed: Arc<std::sync::atomic::AtomicBool>,
}

impl SpoolReplayer {
    /// A replayer of `spool` into `deps.store`.
    pub fn new(deps: Deps, spool: Arc<Spool>) -> Self {
        SpoolReplayer {
            watch: StoreWatch::new(deps.clone()),
            losses_seen: Arc::default(),
            loss_at_ms: Arc::default(),
            deps,
            spool,
            save_failed: Arc::default(),
        }
    }

    /// Write the cases recorded since the last call to the recent file, so
    /// a restart does not forget them ([`Spool::save_recent`]).
    async fn save_recent(&self, now_ms: u64) {
        match self.spool.save_recent(now_ms).await {
            Ok(_) => {
                if self
                    .save_failed
                    .swap(false, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::info!("the recent cases are written to disk again");
                }
            }
            Err(e) => {
                if !self
                    .save_failed
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::error!(error = %e, "could not write the recent cases to disk (a restart would not recheck them); will retry");
                }
            }
        }
    }

    /// Whether the store answers and has lost nothing since the spool's
    /// last recheck (the sentinels read now; a loss is counted, logged and
    /// rechecked as the store watch's would be).
    async fn store_kept_its_data(&self) -> bool {
        let before = self.deps.store.disturbances();
        matches!(self.watch.read_sentinels().await, Ok(false))
            && self.deps.store.disturbances() == before
    }

    /// Replay what is pending in this instance's spool and every spool no
    /// live instance holds (as of `now_ms`); returns how many cases were
    /// recorded.
    pub async fn tick(&self, now_ms: u64) -> usize {
        let metrics = &self.deps.metrics;
        let store = self.deps.store.as_ref();
        let mut done = Replayed::default();
        // A store that faltered is read again within a tick, not the store
        // watch's 5 s: until then new cases wait in the spool
        // (`Store::trusted`). A loss found is counted and logged there.
        if store.doubtful() {
            let _ = self.watch.read_sentinels().await;
        }
        match self.spool.recheck(store.disturbances(), now_ms).await {
            Ok((0, _)) => {}
            Ok((n, true)) => tracing::warn!(
                cases = n,
                "the store faltered: rechecking the cases recorded in the last hour"
            ),
            // Cases taken over from a stopped instance (logged as such when
            // taken): every restart does this, nothing faltered.
            Ok((n, false)) => tracing::debug!(cases = n, "rechecking the cases taken over"),
            Err(e) => {
                tracing::error!(error = %e, "could not spool the recent cases to recheck; will retry");
            }
        }
        self.save_recent(now_ms).await;
        // Whether every case this tick could replay was replayed.
        let mut replayed = true;
        if self.spool.pending() > 0 {
            match self.spool.replay(store, now_ms).await {
                Ok(n) => done += n,
                Err(e) => {
                    replayed = false;
                    let pending = self.spool.pending();
                    tracing::debug!(error = %e, pending, "spool not replayed yet");
                }
            }
        }
        match self.spool.replay_orphans(store, now_ms).await {
            Ok(n) => done += n,
            Err(e) => {
                replayed = false;
                tracing::debug!(error = %e, "orphaned spools not replayed yet");
            }
        }
        // Inbound SMS kept while the store was down, after the cases (a
        // lawyer's OK for a spooled case finds it) — and after the cases
        // the store may have lost meanwhile are back: a Redis that returns
        // empty answers at once, while the store watch that notices the
        // loss reads its sentinels only every 5 s; a lawyer's kept `OK` for
        // a case it lost was answered "No case" and her acceptance lost
        // (operator audit). So the sentinels are read first: a loss found
        // now is rechecked (and its cases restored) next tick, then these.
        if self.spool.inbox_pending() > 0 && replayed && self.store_kept_its_data().await {
            match self.spool.replay_inbox().await {
                Ok(r) if r.handled > 0 => {
                    tracing::info!(
                        handled = r.handled,
                        left = r.remaining,
                        "inbound SMS kept while the store was down were handled"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "could not read or rewrite the inbox; will retry")
                }
            }
        }
        if done.recorded > 0 {
            metrics.store_up.set(i64::from(!store.degraded()));
            tracing::info!(replayed = done.recorded, "spool replayed into the store");
            self.deps.wake.outbox();
        }
        metrics
            .spool_codes_changed
            .inc_by(done.codes_changed as u64);
        metrics
            .spool_codes_aliased
            .inc_by(done.codes_aliased as u64);
        metrics.cases_restored.inc_by(done.restored as u64);
        // A loss seen (or counted here) within the hour covers every
        // restore of that hour: a restore that spans ticks pages once.
        let losses = store.data_losses();
        if self
            .losses_seen
            .swap(losses, std::sync::atomic::Ordering::Relaxed)
            != losses
        {
            self.loss_at_ms
                .store(now_ms.max(1), std::sync::atomic::Ordering::Relaxed);
        }
        let last = self.loss_at_ms.load(std::sync::atomic::Ordering::Relaxed);
        let unseen = last == 0 || now_ms.saturating_sub(last) > crate::spool::RECHECK_WINDOW_MS;
        if done.restored > 0 && unseen {
            self.loss_at_ms
                .store(now_ms.max(1), std::sync::atomic::Ordering::Relaxed);
            // Cases the store had acknowledged are gone, and no sentinel
            // told since the last tick: the store was emptied while no
            // instance watched (this one restarted and found its
            // predecessor's cases missing), or a failover the client
            // followed without an error took back writes. A loss all the
            // same: what HotlineStoreDataLost pages for.
            metrics.store_data_lost.inc();
            tracing::error!(
                restored = done.restored,
                "the store lost its data: cases it had acknowledged are missing (found rechecking the cases recorded in the last hour); open cases, queued offers, timers, OFF flags and covers written before are gone; the cases of the last hour are recorded again"
            );
        }
        metrics.cases_rechecked.inc_by(done.rechecked as u64);
        metrics.spool_pending.set(self.spool.waiting() as i64);
        metrics
            .inbox_pending
            .set(i64::try_from(self.spool.inbox_pending()).unwrap_or(i64::MAX));
        done.recorded
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            self.tick(self.deps.clock.now_ms()).await;
            if wait(SPOOL_INTERVAL, &mut stop).await {
                self.save_recent(self.deps.clock.now_ms()).await;
                return;
            }
        }
    }
}

/// Renews this instance's leased case codes.
#[derive(Debug, Clone)]
pub struct CodeLeaser {
    deps: Deps,
    codes: Arc<OfflineCodes>,
}

impl CodeLeaser {
    /// A leaser of `codes` in `deps.store`.
    pub fn new(deps: Deps, codes: Arc<OfflineCodes>) -> Self {
        CodeLeaser { deps, codes }
    }

    /// Renew and top up every bucket's leases (as of `now_ms`); returns
    /// whether the store answered.
    pub async fn tick(&self, now_ms: u64) -> bool {
        let result = self.codes.renew(self.deps.store.as_ref(), now_ms).await;
        let ready = self.codes.ready();
        self.deps.metrics.offline_codes.set(ready as i64);
        match result {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, ready, "code leases not renewed yet");
                false
            }
        }
    }

    /// A graceful stop gives back the codes not shown yet, so restarts do
    /// not park them for a day.
    pub async fn release(&self) {
        let now = self.deps.clock.now_ms();
        match self.codes.release_free(self.deps.store.as_ref(), now).await {
            Ok(n) => tracing::info!(released = n, "unused outage codes given back"),
            // The store is down: nothing can be given back. The codes stay
            // reserved, unused, until their leases end (codes::LEASE_TTL_MS).
            Err(e) => {
                tracing::info!(error = %e, "outage codes not given back (the store does not answer); their leases end on their own within 24 h")
            }
        }
        self.deps
            .metrics
            .offline_codes
            .set(self.codes.ready() as i64);
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let ok = self.tick(self.deps.clock.now_ms()).await;
            let every = if ok { LEASE_INTERVAL } else { LEASE_RETRY };
            if wait(every, &mut stop).await {
                self.release().await;
                return;
            }
        }
    }
}

/// The background workers of one instance.
#[derive(Debug)]
pub struct Workers {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Start the outbox sender, the store watch, and, when given, the
    /// timer worker, the spool replayer and the code leaser.
    pub fn start(
        outbox: Arc<Outbox>,
        watch: StoreWatch,
        timers: Option<TimerWorker>,
        spool: Option<SpoolReplayer>,
        codes: Option<CodeLeaser>,
    ) -> Self {
        let (stop, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(outbox.clone().retry_parked_reports(rx.clone()));
        tasks.spawn(outbox.run(rx.clone()));
        tasks.spawn(watch.run(rx.clone()));
        if let Some(t) = timers {
            tasks.spawn(t.run(rx.clone()));
        }
        if let Some(s) = spool {
            tasks.spawn(s.run(rx.clone()));
        }
        if let Some(c) = codes {
            tasks.spawn(c.run(rx));
        }
        Workers { tasks, stop }
    }

    /// Stop taking work, let the rounds in progress finish within `grace`,
    /// then abort whatever is left.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "workers still busy after the grace period; abandoning their work (leases expire and another instance retries it)"
            );
            self.tasks.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Claimed, Job};

    const POLL: Duration = Duration::from_secs(1);

    fn batch(jobs: usize, next: Option<u64>) -> ClaimBatch {
        let job = Claimed {
            job: Job {
                id: "j".into(),
                due_ms: 0,
                payload: Vec::new(),
            },
            attempt: 1,
            case_code: None,
            case_alias: None,
        };
        ClaimBatch {
            jobs: vec![job; jobs],
            next_due_ms: next,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_bucket_first_then_only_due_ones_and_one_probe_per_poll() {
        let mut due = DueBuckets::new();
        let all = due.to_claim(1000, POLL);
        assert_eq!(all.len(), usize::from(BUCKETS), "unknown at start: all");
        for b in all {
            let next = (b == 3).then_some(5000);
            due.claimed(b, &batch(0, next), 1000, 16, POLL);
        }
        assert_eq!(due.sleep_for(1000, POLL), POLL, "at most a poll");
        assert_eq!(due.sleep_for(4500, POLL), Duration::from_millis(500));
        assert_eq!(due.to_claim(5000, POLL), [3], "the due bucket, no probe");
        due.claimed(3, &batch(0, None), 5000, 16, POLL);
        // Nothing due: one bucket per poll, in turn.
        let first = due.to_claim(5000, POLL);
        assert_eq!(first.len(), 1);
        assert!(
            due.to_claim(5000, POLL).is_empty(),
            "not again within a poll"
        );
        tokio::time::advance(POLL).await;
        let second = due.to_claim(5000, POLL);
        assert_eq!(second, [(first[0] + 1) % BUCKETS]);
        // A wake-up for a job due now makes its bucket due.
        due.hint(9, 4000);
        assert_eq!(due.to_claim(5000, POLL), [9]);
    }

    #[test]
    fn a_full_batch_is_claimed_again_and_a_store_that_cannot_tell_waits_a_poll() {
        let mut due = DueBuckets::new();
        due.claimed(2, &batch(16, Some(9000)), 1000, 16, POLL);
        assert!(due.to_claim(1000, POLL).contains(&2), "more may be due");
        due.claimed(2, &batch(0, Some(1000)), 1000, 16, POLL);
        assert!(!due.to_claim(1500, POLL).contains(&2));
        assert!(
            due.to_claim(2000, POLL).contains(&2),
            "asked again after a poll"
        );
        due.retry_later(&[2], 2000, POLL);
        assert!(
            !due.to_claim(2500, POLL).contains(&2),
            "a failed claim waits"
        );
    }
}
