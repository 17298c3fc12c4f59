//! The sender worker and delivery reports.
//!
//! [`Outbox::tick`] claims every bucket's due messages under a lease and
//! sends them, at most `outbox.concurrency` at once, each channel within its
//! own rate (`tps`, via `governor`); it returns once every claimed message
//! was handled. [`Outbox::run`] ticks until told to stop: immediately when
//! this instance queued something ([`crate::deps::Wake`]), else every
//! `outbox.poll`. A stop lets the tick in progress finish its sends.
//! [`Outbox::on_status`] applies delivery reports to the record of the
//! message they are about; [`Outbox::retry_parked_reports`] tries again
//! those that came before that record.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::health::{self, ChannelHealth};
use super::{CaseRef, OutMsg, Purpose, Recipient, SENT_RECORD_TTL_MS, SentRecord, open};
use crate::case::CaseData;
use crate::channel::{Channel, DeliveryState, Fault, OutSms, SendOutcome};
use crate::config::OutboxConfig;
use crate::deps::Deps;
use crate::store::{BUCKETS, Claimed, KvWrite, Queue, RateLimit, SetAdd, StoreError, keys};
use crate::worker::DueBuckets;

/// How long a caller's "last sent" value is kept.
const LAST_SENT_TTL_MS: u64 = 24 * 3600 * 1000;
/// How often the store-wide outbox gauges are read.
pub const QUEUE_GAUGES_EVERY: Duration = Duration::from_secs(10);
/// Most messages read per bucket for those gauges (a deeper queue is
/// counted exactly by `queue_len`, its channels from the first this many).
pub const QUEUE_GAUGES_PEEK: usize = 2000;

/// A message that will not reach its recipient, for whoever must react
/// (lawyer dispatch escalates an offer that cannot be delivered).
#[derive(Debug, Clone)]
pub struct Undelivered {
    /// The channel it went (or would have gone) through.
    pub channel: String,
    /// Why it was sent.
    pub purpose: Purpose,
    /// Who it was for.
    pub recipient: Recipient,
    /// The case it was about.
    pub case: Option<CaseRef>,
    /// Why it will not arrive (a code).
    pub reason: String,
}

/// Reacts to undelivered messages.
#[async_trait]
pub trait OutboxEvents: Send + Sync {
    /// A message was given up, or a delivery report said it failed.
    async fn undelivered(&self, event: Undelivered);
}

/// The channels messages go out through, by name.
pub type Channels = Arc<HashMap<String, Arc<dyn Channel>>>;

/// The sender.
pub struct Outbox {
    deps: Deps,
    channels: Channels,
    /// Per-channel send rate (`tps`).
    limiters: HashMap<String, DefaultDirectRateLimiter>,
    cfg: OutboxConfig,
    /// Who reacts to undelivered messages (lawyer dispatch), if anyone.
    events: Option<Arc<dyn OutboxEvents>>,
    /// Whether each channel can send, as this instance saw it.
    health: ChannelHealth,
    /// A second channel to use while a channel is down, by channel name.
    fallbacks: HashMap<String, String>,
    /// Messages claimed by this instance and not yet handled.
    in_flight: AtomicUsize,
    /// Delivery reports that came before their message's record.
    parked: super::status::Parked,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

/// What to do with a claimed message before sending it.
enum Preflight {
    /// Send this text.
    Send(String),
    /// Finish the job without sending (already sent, or unreadable).
    Finish,
    /// Give up, for this reason.
    GiveUp(&'static str),
    /// Leave it: the lease expires and it is tried again (store down).
    Later,
}

/// How many times a send waits for the shared channel rate before it goes
/// anyway (a bound, not an expected path: each wait is the GCRA's own).
const SHARED_RATE_TRIES: usize = 100;

/// The longest wait before retrying a message held up by its channel, so
/// that queued offers go out soon after the channel recovers.
const CHANNEL_RETRY_MAX: Duration = Duration::from_secs(30);

impl Outbox {
    /// A sender for `channels` with the `[outbox]` settings.
    pub fn new(
        deps: Deps,
        channels: Channels,
        cfg: OutboxConfig,
        events: Option<Arc<dyn OutboxEvents>>,
    ) -> Self {
        let health = ChannelHealth::new(channels.keys().map(String::as_str), deps.metrics.clone());
        let limiters = channels
            .iter()
            .map(|(name, ch)| {
                let tps = NonZeroU32::new(ch.tps()).unwrap_or(NonZeroU32::MIN);
                (
                    name.clone(),
                    DefaultDirectRateLimiter::direct(Quota::per_second(tps)),
                )
            })
            .collect();
        Outbox {
            deps,
            channels,
            limiters,
            events,
            health,
            fallbacks: HashMap::new(),
            in_flight: AtomicUsize::new(0),
            parked: super::status::Parked::new(
                cfg.send_timeout.saturating_add(super::status::PARK_MARGIN),
            ),
            cfg,
        }
    }

    /// Whether nothing is left to send: this instance holds no message in
    /// flight and the store's outbox holds none (due or not, leased or
    /// not). Tests use it to prove that nothing more will be sent.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be asked.
    pub async fn idle(&self) -> Result<bool, StoreError> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Ok(false);
        }
        for bucket in 0..BUCKETS {
            if self.deps.store.queue_len(bucket, Queue::Outbox).await? > 0 {
                return Ok(false);
            }
        }
        Ok(self.in_flight.load(Ordering::SeqCst) == 0)
    }

    /// Send `channel`'s messages through `fallback` while `channel` is down.
    #[must_use]
    pub fn with_fallback(mut self, channel: &str, fallback: &str) -> Self {
        self.fallbacks
            .insert(channel.to_owned(), fallback.to_owned());
        self
    }

    /// Every channel's health, as this instance saw it.
    pub fn health(&self) -> &ChannelHealth {
        &self.health
    }

    /// The channel to send `msg` through: its own while it is up; its
    /// fallback while it is down and the fallback is up; else its own
    /// again (a send is the probe of recovery), or the fallback when its
    /// own has no sending credentials. `None`: nothing here can send it.
    fn route(&self, msg: &OutMsg) -> Option<(String, Arc<dyn Channel>)> {
        let usable = |name: &str| {
            self.channels
                .get(name)
                .filter(|c| c.can_send())
                .map(|c| (name.to_owned(), c.clone()))
        };
        let own = usable(&msg.channel);
        let fallback = self.fallbacks.get(&msg.channel).and_then(|f| usable(f));
        match (own, fallback) {
            (Some(own), _) if self.health.is_up(&own.0) => Some(own),
            (_, Some(fb)) if self.health.is_up(&fb.0) => Some(fb),
            (Some(own), _) => Some(own),
            (None, fb) => fb,
        }
    }

    /// Delivery reports waiting for their message's record
    /// ([`super::status`]).
    pub fn parked_reports(&self) -> &super::status::Parked {
        &self.parked
    }

    /// The dependencies it was built with.
    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// Tell whoever reacts to undelivered messages.
    pub(super) async fn tell_undelivered(&self, event: Undelivered) {
        if let Some(events) = &self.events {
            events.undelivered(event).await;
        }
    }

    /// Tick until `stop` turns true. Claims only the buckets known to be
    /// due ([`DueBuckets`]): at once when this instance queued a message
    /// ([`crate::deps::Wake`]), else when a bucket's next message falls
    /// due; while nothing is due, one bucket in turn every `outbox.poll`
    /// (messages queued by other instances, leases of a dead one). The
    /// round in progress when `stop` turns finishes.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last_gauges: Option<Instant> = None;
        let mut due = DueBuckets::new();
        loop {
            if *stop.borrow() {
                return;
            }
            if last_gauges.is_none_or(|t| t.elapsed() >= QUEUE_GAUGES_EVERY) {
                self.refresh_queue_gauges().await;
                last_gauges = Some(Instant::now());
            }
            for (bucket, at) in self.deps.wake.take(Queue::Outbox) {
                due.hint(bucket, at);
            }
            let now = self.deps.clock.now_ms();
            let buckets = due.to_claim(now, self.cfg.poll);
            let handled = self.claim_buckets(now, &buckets, &mut due).await;
            if handled == 0 {
                let pause = due.sleep_for(self.deps.clock.now_ms(), self.cfg.poll);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = self.deps.wake.woken(Queue::Outbox) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Read the store's whole outbox (every instance's) and set
    /// `hotline_outbox_depth` and `hotline_outbox_oldest_seconds` per
    /// channel. [`Outbox::run`] calls it every [`QUEUE_GAUGES_EVERY`] —
    /// never a scrape. Costs two reads per bucket and opening each message
    /// read; a bucket deeper than [`QUEUE_GAUGES_PEEK`] adds its unread
    /// messages to the channel of its last one read. A message that cannot
    /// be opened counts under `_unknown`. On a store failure the gauges
    /// keep their last values.
    pub async fn refresh_queue_gauges(&self) {
        let now = self.deps.clock.now_ms();
        let store = &self.deps.store;
        let mut queued: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
        for bucket in 0..BUCKETS {
            let jobs = match store
                .peek_jobs(bucket, Queue::Outbox, QUEUE_GAUGES_PEEK)
                .await
            {
                Ok(j) => j,
                Err(e) => {
                    tracing::debug!(error = %e, "outbox gauges not refreshed");
                    return;
                }
            };
            let mut unread = 0;
            if jobs.len() >= QUEUE_GAUGES_PEEK {
                match store.queue_len(bucket, Queue::Outbox).await {
                    Ok(n) => unread = n.saturating_sub(jobs.len()),
                    Err(e) => {
                        tracing::debug!(error = %e, "outbox gauges not refreshed");
                        return;
                    }
                }
            }
            let mut last = None;
            for (i, job) in jobs.iter().enumerate() {
                // Thousands of decryptions in a row would hold this worker
                // thread (and the requests queued on it): let them through.
                if i % 64 == 63 {
                    tokio::task::yield_now().await;
                }
                let (channel, created) = match open(&self.deps.privacy, &job.payload) {
                    Ok(msg) => (
                        if self.channels.contains_key(&msg.channel) {
                            msg.channel
                        } else {
                            crate::metrics::UNKNOWN_CHANNEL.to_owned()
                        },
                        Some(msg.created_ms),
                    ),
                    Err(_) => (crate::metrics::UNKNOWN_CHANNEL.to_owned(), None),
                };
                let age = created.map_or(0, |c| now.saturating_sub(c) / 1000);
                let e = queued.entry(channel.clone()).or_default();
                e.0 += 1;
                e.1 = e.1.max(i64::try_from(age).unwrap_or(i64::MAX));
                last = Some(channel);
            }
            if let Some(ch) = last
                && unread > 0
            {
                queued.entry(ch).or_default().0 += i64::try_from(unread).unwrap_or(i64::MAX);
            }
        }
        self.deps.metrics.set_outbox_queue(&queued);
    }

    /// Claim every due message (as of `now_ms`) in every bucket and send
    /// them; returns how many were claimed, once all of them were handled.
    pub async fn tick(self: &Arc<Self>, now_ms: u64) -> usize {
        let all: Vec<u16> = (0..BUCKETS).collect();
        self.claim_buckets(now_ms, &all, &mut DueBuckets::new())
            .await
    }

    /// Claim the due messages of `buckets` and send them; note in `due`
    /// when each bucket is next due.
    async fn claim_buckets(
        self: &Arc<Self>,
        now_ms: u64,
        buckets: &[u16],
        due: &mut DueBuckets,
    ) -> usize {
        let permits = Arc::new(Semaphore::new(self.cfg.concurrency.max(1)));
        let lease = u64::try_from(self.cfg.lease.as_millis()).unwrap_or(60_000);
        let mut sends = JoinSet::new();
        let mut claimed = 0;
        for (i, &bucket) in buckets.iter().enumerate() {
            let batch = self.cfg.concurrency.max(1);
            let jobs = match self
                .deps
                .store
                .claim_next(bucket, Queue::Outbox, now_ms, lease, batch)
                .await
            {
                Ok(got) => {
                    due.claimed(bucket, &got, now_ms, batch, self.cfg.poll);
                    got.jobs
                }
                Err(e) => {
                    // Counted and logged: a Redis that refuses writes (full)
                    // stops every offer, and said nothing (operator audit).
                    self.deps.store_failed("claim", &e);
                    due.retry_later(&buckets[i..], now_ms, self.cfg.poll);
                    break;
                }
            };
            for job in jobs {
                claimed += 1;
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let me = self.clone();
                me.in_flight.fetch_add(1, Ordering::SeqCst);
                sends.spawn(async move {
                    me.send_one(bucket, job).await;
                    me.in_flight.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                });
            }
        }
        while sends.join_next().await.is_some() {}
        self.health.publish_held(self.deps.clock.now_ms());
        claimed
    }

    /// Send one claimed message and record what happened.
    pub async fn send_one(&self, bucket: u16, job: Claimed) {
        let id = job.job.id.clone();
        let msg = match open(&self.deps.privacy, &job.job.payload) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "outbox payload cannot be opened; dropped");
                self.finish(bucket, &job).await;
                return;
            }
        };
        let text = match self.preflight(bucket, &job, &msg).await {
            Preflight::Send(text) => text,
            Preflight::Finish => return self.finish(bucket, &job).await,
            Preflight::GiveUp(reason) => return self.give_up(bucket, &job, &msg, reason).await,
            Preflight::Later => return self.retry_at_lease_end(bucket),
        };
        let Some((used, channel)) = self.route(&msg) else {
            let now = self.deps.clock.now_ms();
            self.health
                .failed(&msg.channel, health::NO_CREDENTIALS, "cannot_send", now);
            return self
                .hold(bucket, &job, &msg, &msg.channel, None, "no_credentials")
                .await;
        };
        if let Some(limiter) = self.limiters.get(&used) {
            limiter.until_ready().await;
        }
        if !self
            .shared_rate(&used, channel.tps(), lawyer_index(&msg))
            .await
        {
            // Her case index must name an offer before she gets it (her
            // bare `OK` reads only the index): try again when the store
            // answers.
            tracing::warn!(message_id = %id, "offer held: the lawyer's case index could not be written (store unavailable); sent when its lease ends");
            return self.retry_at_lease_end(bucket);
        }
        let started = Instant::now();
        let outcome = channel
            .send(OutSms {
                id: &id,
                to: &msg.to,
                text: &text,
            })
            .await;
        self.deps
            .metrics
            .send_duration
            .with_label_values(&[&used])
            .observe(started.elapsed().as_secs_f64());
        let now = self.deps.clock.now_ms();
        match outcome {
            SendOutcome::Sent { provider_id } => {
                self.health.ok(&used, now);
                self.record_sent(bucket, &job, &msg, &used, provider_id, &text)
                    .await;
            }
            SendOutcome::Retry { after, reason } => {
                self.health.failed(&used, health::UNAVAILABLE, &reason, now);
                self.hold(bucket, &job, &msg, &used, after, &reason).await;
            }
            SendOutcome::Permanent {
                reason,
                fault: Fault::Channel,
            } => {
                self.health.failed(&used, health::REFUSED, &reason, now);
                self.hold(bucket, &job, &msg, &used, None, &reason).await;
            }
            SendOutcome::Permanent {
                reason,
                fault: Fault::Recipient,
            } => self.give_up(bucket, &job, &msg, &reason).await,
            SendOutcome::OptedOut => self.opted_out(bucket, &job, &msg).await,
        }
    }

    /// Wait for a slot of `channel`'s rate shared by every instance (a GCRA
    /// in the store), so that N instances together stay within the
    /// aggregator's `tps`; the local `governor` limiter before it smooths
    /// this instance's own sends. Real time, not domain time: it is about
    /// the aggregator's clock. A store that does not answer does not hold
    /// a send back (the local limiter still bounds this instance).
    ///
    /// An offer to a lawyer is added to her case index with its first try
    /// (`add`, same script): her bare `OK` finds the case without reading
    /// every open case. Returns false when that add could not be made (the
    /// store did not answer): then the offer is not sent now.
    async fn shared_rate(&self, channel: &str, tps: u32, mut add: Option<SetAdd>) -> bool {
        let tps = tps.max(1);
        let limit = RateLimit {
            per_minute: tps.saturating_mul(60),
            burst: tps,
        };
        let key = keys::channel_rate(channel);
        for _ in 0..SHARED_RATE_TRIES {
            let now = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0);
            match self
                .deps
                .store
                .take_rate_and_add(&key, limit, now, add.clone())
                .await
            {
                Ok(Some(wait)) => {
                    add = None;
                    tokio::time::sleep(Duration::from_millis(wait.min(1000))).await;
                }
                Ok(None) => return true,
                Err(_) => return add.is_none(),
            }
        }
        true
    }

    /// Checks before sending: sent already, opted out, too old, channel
    /// unable to send; then the text with its case's code and minutes.
    async fn preflight(&self, bucket: u16, job: &Claimed, msg: &OutMsg) -> Preflight {
        let store = &self.deps.store;
        let now = self.deps.clock.now_ms();
        // A worker that died after sending but before finishing left a record.
        if job.attempt > 1 {
            match store
                .get(Some(bucket), &keys::sent_marker(&job.job.id), now)
                .await
            {
                Ok(Some(_)) => return Preflight::Finish,
                Ok(None) => {}
                Err(_) => return Preflight::Later,
            }
        }
        if let Recipient::Caller { pseudonym } = &msg.recipient {
            match store
                .get(Some(bucket), &keys::opted_out(pseudonym), now)
                .await
            {
                Ok(Some(_)) => return Preflight::GiveUp("opted_out"),
                Ok(None) => {}
                Err(_) => return Preflight::Later,
            }
        }
        let max_age = u64::try_from(self.cfg.max_age.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(msg.created_ms) > max_age {
            return Preflight::GiveUp("expired");
        }
        if !self.channels.contains_key(&msg.channel) {
            // A channel removed from the config since the message was queued.
            return Preflight::GiveUp("no_such_channel");
        }
        match self.render(msg, job.case_codes().as_deref(), now).await {
            Ok(text) => Preflight::Send(text),
            Err(StoreError::Corrupt(_)) => Preflight::GiveUp("case_missing"),
            Err(_) => Preflight::Later,
        }
    }

    /// Fill in `{code}` and `{minutes}` from the message's case: from the
    /// code its claim read and the opening time it carries when it has
    /// both (no read), else from the case. `{code}` names every code of
    /// the case: its code and, when it has one, its alias
    /// ([`crate::store::named_code`]: `8516/2356`), so that whichever code
    /// she was shown is in what she and the lawyers read.
    async fn render(
        &self,
        msg: &OutMsg,
        claimed_code: Option<&str>,
        now: u64,
    ) -> Result<String, StoreError> {
        let Some(case) = &msg.case else {
            return Ok(crate::template::render(&msg.text, &[]));
        };
        let names = crate::template::names(&msg.text);
        if !names.iter().any(|n| n == "code" || n == "minutes") {
            return Ok(crate::template::render(&msg.text, &[]));
        }
        if let (Some(code), Some(opened)) = (claimed_code, msg.case_opened_ms) {
            let minutes = (now.saturating_sub(opened) / 60_000).to_string();
            return Ok(crate::template::render(
                &msg.text,
                &[("code", code), ("minutes", &minutes)],
            ));
        }
        let rec = self
            .deps
            .store
            .case(case.bucket, &case.id)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt("message names a case that does not exist".into())
            })?;
        let minutes = match self.deps.privacy.open_json::<CaseData>(&rec.data) {
            Ok(c) => now.saturating_sub(c.opened_at_ms) / 60_000,
            Err(e) => {
                tracing::warn!(case = %case.id, error = %e, "case unreadable; minutes shown as 0");
                0
            }
        };
        let minutes = minutes.to_string();
        Ok(crate::template::render(
            &msg.text,
            &[("code", &rec.named_code()), ("minutes", &minutes)],
        ))
    }

    async fn finish(&self, bucket: u16, job: &Claimed) {
        self.health.release(&job.job.id);
        let store = &self.deps.store;
        if let Err(e) = store
            .finish(bucket, Queue::Outbox, &job.job.id, job.attempt)
            .await
        {
            tracing::warn!(message_id = %job.job.id, error = %e, "could not finish a message; its lease will expire");
            self.retry_at_lease_end(bucket);
        }
    }

    /// A claimed message was left to its lease (the store did not answer):
    /// look at its bucket again when the lease ends.
    fn retry_at_lease_end(&self, bucket: u16) {
        let lease = u64::try_from(self.cfg.lease.as_millis()).unwrap_or(60_000);
        let at = self.deps.clock.now_ms().saturating_add(lease);
        self.deps.wake.queued(Queue::Outbox, bucket, at);
    }

    /// Remember a sent message (for retries after a crash, delivery reports
    /// and SMS dedupe), then finish its job. The aggregator's id gets a
    /// lookup key only where `used`'s reports do not name ours anyway.
    async fn record_sent(
        &self,
        bucket: u16,
        job: &Claimed,
        msg: &OutMsg,
        used: &str,
        provider_id: Option<String>,
        text: &str,
    ) {
        // Counted first: the aggregator has it, whatever happens below.
        let m = &self.deps.metrics;
        m.outbox_sent
            .with_label_values(&[used, msg.purpose.as_str()])
            .inc();
        m.sms_segments
            .with_label_values(&[used])
            .inc_by(crate::text::measure(text).sms_segments() as u64);
        let store = &self.deps.store;
        let id = &job.job.id;
        let now = self.deps.clock.now_ms();
        let ttl = Some(SENT_RECORD_TTL_MS);
        let record = SentRecord {
            channel: used.to_owned(),
            purpose: msg.purpose,
            recipient: msg.recipient.clone(),
            case: msg.case.clone(),
            provider_id: provider_id.clone(),
            state: DeliveryState::Sent,
        };
        // The marker, the record and her "last sent" (in the job's bucket)
        // and the aggregator's id (global: a report names only that) go
        // with the job's finish, in one round trip on one Redis.
        let mut kv = vec![KvWrite::set(keys::sent_marker(id), b"1".to_vec(), ttl)];
        let mut global = Vec::new();
        let mut ok = true;
        // Sealed: it links a message to a case and a person's pseudonym.
        match self.deps.privacy.seal_json(&record) {
            Ok(bytes) => kv.push(KvWrite::set(keys::sent_record(id), bytes, ttl)),
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "sent record cannot be serialised");
                ok = false;
            }
        }
        if let Recipient::Caller { pseudonym } = &msg.recipient {
            let value = now.to_string().into_bytes();
            kv.push(KvWrite::set(
                keys::last_sent(pseudonym),
                value,
                Some(LAST_SENT_TTL_MS),
            ));
        }
        let reports_name_ours = self
            .channels
            .get(used)
            .is_some_and(|c| c.reports_name_our_id());
        if let Some(pid) = provider_id.as_ref().filter(|_| !reports_name_ours) {
            let key = keys::provider_id(used, self.deps.privacy.pseudonym(pid));
            global.push(KvWrite::set(key, id.clone().into_bytes(), ttl));
        }
        self.health.release(id);
        match store
            .finish_with(bucket, Queue::Outbox, id, job.attempt, kv, global, now)
            .await
        {
            Ok(_) => {}
            Err(e) => {
                ok = false;
                tracing::warn!(message_id = %id, error = %e, "could not finish a message; its lease will expire");
                self.retry_at_lease_end(bucket);
            }
        }
        if !ok {
            tracing::warn!(message_id = %id, "sent, but its record could not be written; delivery reports may not match");
        }
        tracing::info!(message_id = %id, channel = %used, purpose = msg.purpose.as_str(), attempt = job.attempt, "message sent");
    }

    /// A send failed because of the channel (`used`): the message waits
    /// and is tried again — never counted as the recipient's failure. It is
    /// given up only when it is older than `outbox.max_age_secs`, or when
    /// it failed `outbox.max_attempts` times although the channel has sent
    /// other messages since it was queued (then it is this message's, or
    /// this number's, problem).
    async fn hold(
        &self,
        bucket: u16,
        job: &Claimed,
        msg: &OutMsg,
        used: &str,
        after: Option<Duration>,
        reason: &str,
    ) {
        let sent_others = self.health.ok_since(used, msg.created_ms);
        if job.attempt >= self.cfg.max_attempts && sent_others {
            let why = format!("attempts_exhausted ({reason})");
            return self.give_up(bucket, job, msg, &why).await;
        }
        let cap = hold_cap(self.cfg.backoff_max, sent_others);
        let delay = backoff(self.cfg.backoff_base, cap, job.attempt, after);
        let now = self.deps.clock.now_ms();
        let due = now + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX / 2);
        let id = &job.job.id;
        if let Err(e) = self
            .deps
            .store
            .reschedule(bucket, Queue::Outbox, id, job.attempt, due, None)
            .await
        {
            tracing::warn!(message_id = %id, error = %e, "could not reschedule; its lease will expire");
        }
        self.health.hold(id, used, msg.created_ms, now);
        self.deps
            .metrics
            .outbox_retries
            .with_label_values(&[used])
            .inc();
        tracing::info!(message_id = %id, channel = %used, attempt = job.attempt, reason = %reason, delay_ms = delay.as_millis() as u64, "send will be retried");
    }

    async fn opted_out(&self, bucket: u16, job: &Claimed, msg: &OutMsg) {
        if let Recipient::Caller { pseudonym } = &msg.recipient {
            let now = self.deps.clock.now_ms();
            let key = keys::opted_out(pseudonym);
            if let Err(e) = self
                .deps
                .store
                .put(Some(bucket), &key, b"1".to_vec(), None, now)
                .await
            {
                tracing::warn!(error = %e, "could not record an opt-out");
            }
        }
        self.give_up(bucket, job, msg, "opted_out").await;
    }

    async fn give_up(&self, bucket: u16, job: &Claimed, msg: &OutMsg, reason: &str) {
        self.health.release(&job.job.id);
        if let Err(e) = self
            .deps
            .store
            .finish(bucket, Queue::Outbox, &job.job.id, job.attempt)
            .await
        {
            tracing::warn!(error = %e, "could not finish a failed message; it will be retried");
            return;
        }
        self.deps
            .metrics
            .outbox_failed
            .with_label_values(&[&msg.channel, msg.purpose.as_str()])
            .inc();
        tracing::warn!(
            message_id = %job.job.id,
            channel = %msg.channel,
            purpose = msg.purpose.as_str(),
            attempt = job.attempt,
            reason,
            "message given up"
        );
        self.tell_undelivered(Undelivered {
            channel: msg.channel.clone(),
            purpose: msg.purpose,
            recipient: msg.recipient.clone(),
            case: msg.case.clone(),
            reason: reason.to_owned(),
        })
        .await;
    }
}

/// How long a lawyer's case index lives after the last offer to her
/// (longer than a case stays open unanswered: it closes by itself after
/// `dispatch.auto_close_days`).
const LAWYER_INDEX_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

/// The entry of a lawyer's case index an offer to her adds.
fn lawyer_index(msg: &OutMsg) -> Option<SetAdd> {
    match (&msg.purpose, &msg.recipient, &msg.case) {
        (Purpose::Offer, Recipient::Lawyer { id }, Some(case)) => {
            Some(lawyer_index_entry(id, case.bucket, &case.id))
        }
        _ => None,
    }
}

/// The entry of lawyer `lawyer`'s case index for a case.
pub fn lawyer_index_entry(lawyer: &str, bucket: u16, case_id: &str) -> SetAdd {
    SetAdd {
        key: keys::lawyer_cases(lawyer),
        member: format!("{bucket}:{case_id}"),
        ttl_ms: LAWYER_INDEX_TTL_MS,
    }
}

/// The longest wait before a held message is tried again. While its
/// channel sends nothing: 30 s (`CHANNEL_RETRY_MAX`), so that it goes out soon
/// after the channel recovers. While the channel sends others: this
/// message's (or this number's) own trouble, on the usual doubling backoff
/// up to `outbox.backoff_max_secs`, so that its `max_attempts` span
/// minutes, not the ~90 s that eight tries 30 s apart took (dispatch
/// audit: her confirmation and a lawyer's offer were given up after a
/// short spell of per-number errors).
pub fn hold_cap(backoff_max: Duration, sent_others: bool) -> Duration {
    if sent_others {
        backoff_max
    } else {
        backoff_max.min(CHANNEL_RETRY_MAX)
    }
}

/// Backoff before attempt `attempt + 1`: base × 2^(attempt-1), capped, with
/// jitter (between half and all of it), and never sooner than `after`.
pub fn backoff(base: Duration, max: Duration, attempt: u32, after: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let ms = u64::try_from(capped.as_millis()).unwrap_or(u64::MAX).max(1);
    let jittered = Duration::from_millis(rand::random_range(ms / 2..=ms));
    after.map_or(jittered, |a| jittered.max(a))
}

#[cfg(test)]
mod tests;
