//! Delivery reports: where a sent message got to.
//!
//! A report names our message id (a per-message callback URL) or the
//! aggregator's (looked up in `p:{channel}:{id}`). Its state is written to
//! the message's [`SentRecord`] as [`next_state`] says: `delivered` is
//! final (Kannel can send its `d=8` or a `d=16` after `d=1`, and nothing
//! after the handset got the message makes it undelivered), a late `sent`
//! never overwrites `failed`, and a `failed` is told to whoever reacts to
//! undelivered messages (dispatch, for an offer) only when it changes the
//! record — so an offer whose SMS was delivered never becomes the lawyer's
//! decline, and a replayed `failed` declines nobody twice.
//!
//! Counting: a report that changes its record is counted in
//! `hotline_delivery_reports_total{channel,state}` under its state; one
//! that changes nothing (the same state again, or one that came after the
//! final state) under `state="duplicate"`; one that matches no record only
//! in `hotline_delivery_reports_unmatched_total`. Each report is counted
//! once, when it is applied or given up. Reports for one message are
//! applied one at a time on an instance (a read and a write of its record);
//! two instances applying reports for one message at the same moment could
//! still both read the old state.
//!
//! ## Reports that overtake their send
//!
//! The outbox records a message (its [`SentRecord`] and the `p:…` lookup)
//! only once the aggregator has answered the send. Kannel and Africa's
//! Talking can report within milliseconds, before that answer arrives. A
//! report whose message is not (yet) known is therefore not dropped but
//! *parked* ([`Parked`]): kept in this process's memory and tried again
//! (after 100 ms, then doubling up to every 2 s) until its record exists,
//! for at most `outbox.send_timeout_ms` + [`PARK_MARGIN`] (a record is
//! written at the latest that long after the aggregator got the message).
//! Any instance may write the record: the retries read the store. A
//! report that is still unmatched then is counted in
//! `hotline_delivery_reports_unmatched_total{channel}` and dropped.
//!
//! The waiting set is bounded: at most [`PARKED_REPORTS_MAX`] reports. At
//! the bound the oldest one is pushed out and counted as unmatched (it has
//! had the most time already; a fresh report is likelier to be for a send
//! in flight now). Stray or hostile reports (they must pass the channel's
//! authentication) therefore cost at most that much memory and a few store
//! reads each, never more. Parked reports live in memory only: a restart
//! loses them (the message keeps its last recorded state; an offer whose
//! `failed` report was lost then waits out its level as if unanswered).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::worker::{Outbox, Undelivered};
use super::{SENT_RECORD_TTL_MS, SentRecord, bucket_of};
use crate::channel::{DeliveryState, StatusIn};
use crate::store::{StoreError, keys};

/// Delivery-report failure reasons that are the sender account's, not the
/// recipient's: Africa's Talking `InsufficientCredit`; Twilio 30001 (queue
/// overflow) and 30002 (account suspended).
pub const CHANNEL_REASONS: &[&str] = &["InsufficientCredit", "30001", "30002"];

/// Most delivery reports kept waiting for their message's record.
pub const PARKED_REPORTS_MAX: usize = 1024;

/// How much longer than `outbox.send_timeout_ms` a report waits for its
/// message's record (the record's write after the send's answer).
pub const PARK_MARGIN: Duration = Duration::from_secs(5);

/// The first wait before a parked report is tried again; it doubles.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two tries of a parked report.
const MAX_RETRY_GAP: Duration = Duration::from_secs(2);

/// The state label of reports that changed nothing.
pub const DUPLICATE: &str = "duplicate";

/// The state a message's record takes when `reported` arrives for it in
/// state `recorded`; `None` when the report changes nothing: the same
/// state again, anything after `delivered` (final: the handset has it), or
/// a late `sent` after `failed`. A `delivered` after `failed` is recorded
/// (the handset has it after all).
pub fn next_state(recorded: DeliveryState, reported: DeliveryState) -> Option<DeliveryState> {
    use DeliveryState::{Delivered, Failed, Sent};
    match (recorded, reported) {
        (Delivered, _) | (Sent, Sent) | (Failed, Sent | Failed) => None,
        (Sent | Failed, Delivered) | (Sent, Failed) => Some(reported),
    }
}

/// Locks serialising the reports for one message on this instance (by a
/// hash of its id).
const REPORT_LOCKS: usize = 64;

/// What became of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// Written to its message's record.
    Applied,
    /// Its message's record already said as much (or more): nothing changed.
    Unchanged,
    /// Its message is not known (yet): park it.
    NotYet,
    /// It can never match (no usable id, or a record this key cannot open).
    Never,
}

/// A delivery report waiting for its message's record.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The channel it came in on.
    pub channel: String,
    /// The report.
    pub report: StatusIn,
    /// When it was parked.
    since: Instant,
    /// When to try it again.
    retry_at: Instant,
    /// Tries so far (after the first).
    tries: u32,
}

/// Delivery reports that arrived before their message's record: a bounded
/// set, oldest first ([module docs](self)).
#[derive(Debug)]
pub struct Parked {
    /// How long a report waits at most.
    window: Duration,
    /// The reports, by the order they were parked in.
    waiting: Mutex<(u64, BTreeMap<u64, Waiting>)>,
    /// Wakes the retry loop when a report is parked.
    wake: Notify,
    /// One report per message at a time ([`REPORT_LOCKS`]).
    locks: Vec<tokio::sync::Mutex<()>>,
}

impl Parked {
    /// An empty set whose reports wait at most `window`.
    pub fn new(window: Duration) -> Self {
        Parked {
            window,
            waiting: Mutex::new((0, BTreeMap::new())),
            wake: Notify::new(),
            locks: (0..REPORT_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// How long a report waits at most.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Reports waiting now (not counting those being tried).
    pub fn len(&self) -> usize {
        self.lock().1.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Waiting>)> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keep `report` (received on `channel` at `now`) to try again. Returns
    /// the channels of the reports pushed out to make room: unmatched.
    pub fn park(&self, channel: &str, report: StatusIn, now: Instant) -> Vec<String> {
        let mut guard = self.lock();
        let (next, waiting) = &mut *guard;
        let seq = *next;
        *next += 1;
        waiting.insert(
            seq,
            Waiting {
                channel: channel.to_owned(),
                report,
                since: now,
                retry_at: now + FIRST_RETRY,
                tries: 0,
            },
        );
        let pushed_out = trim(waiting);
        drop(guard);
        self.wake.notify_one();
        pushed_out
    }

    /// Take the reports due for another try at `now` (with their places).
    pub fn take_due(&self, now: Instant) -> Vec<(u64, Waiting)> {
        let mut guard = self.lock();
        let waiting = &mut guard.1;
        let due: Vec<u64> = waiting
            .iter()
            .filter(|(_, w)| w.retry_at <= now)
            .map(|(seq, _)| *seq)
            .collect();
        due.into_iter()
            .filter_map(|seq| Some((seq, waiting.remove(&seq)?)))
            .collect()
    }

    /// Put back a report taken by [`Parked::take_due`] that still matched
    /// nothing at `now`, in its old place. Returns the channels of the
    /// reports that are unmatched for good: this one when its time is up,
    /// or the oldest when the set is full.
    pub fn put_back(&self, seq: u64, mut w: Waiting, now: Instant) -> Vec<String> {
        let deadline = w.since + self.window;
        if now >= deadline {
            return vec![w.channel];
        }
        w.tries += 1;
        let gap = FIRST_RETRY
            .saturating_mul(1 << w.tries.min(8))
            .min(MAX_RETRY_GAP);
        w.retry_at = (now + gap).min(deadline);
        let mut guard = self.lock();
        guard.1.insert(seq, w);
        trim(&mut guard.1)
    }

    /// The lock for reports about message `id`.
    fn lock_for(&self, id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        &self.locks[(h.finish() % REPORT_LOCKS as u64) as usize]
    }

    /// When the next report is due, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.lock().1.values().map(|w| w.retry_at).min()
    }
}

/// Push the oldest reports out while there are too many; their channels.
fn trim(waiting: &mut BTreeMap<u64, Waiting>) -> Vec<String> {
    let mut out = Vec::new();
    while waiting.len() > PARKED_REPORTS_MAX {
        if let Some((_, w)) = waiting.pop_first() {
            out.push(w.channel);
        }
    }
    out
}

impl Outbox {
    /// Apply delivery reports received on `channel`; a report whose message
    /// is not recorded (yet) is parked and tried again ([module docs](self)).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store is down (the aggregator
    /// should then deliver the report again).
    pub async fn on_status(&self, channel: &str, reports: Vec<StatusIn>) -> Result<(), StoreError> {
        for report in reports {
            match self.apply_report(channel, &report).await? {
                Match::Applied | Match::Unchanged => {}
                Match::Never => self.unmatched(channel),
                Match::NotYet => {
                    tracing::debug!(
                        channel,
                        "delivery report before its message's record; kept to try again"
                    );
                    let now = Instant::now();
                    for ch in self.parked_reports().park(channel, report, now) {
                        self.unmatched(&ch);
                    }
                }
            }
        }
        Ok(())
    }

    /// Try the parked delivery reports again as they fall due, until
    /// `stop` turns true. Every instance runs it beside [`Outbox::run`].
    pub async fn retry_parked_reports(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let parked = self.parked_reports();
        loop {
            if *stop.borrow() {
                return;
            }
            for (seq, w) in parked.take_due(Instant::now()) {
                let unmatched = match self.apply_report(&w.channel, &w.report).await {
                    Ok(Match::Applied | Match::Unchanged) => {
                        tracing::debug!(
                            channel = %w.channel,
                            waited_ms = w.since.elapsed().as_millis() as u64,
                            "delivery report applied after its message was recorded"
                        );
                        Vec::new()
                    }
                    Ok(Match::Never) => vec![w.channel],
                    // Not yet, or the store did not answer: later.
                    Ok(Match::NotYet) | Err(_) => parked.put_back(seq, w, Instant::now()),
                };
                for ch in unmatched {
                    self.unmatched(&ch);
                }
            }
            let next = parked.next_due();
            tokio::select! {
                () = async {
                    match next {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
                () = parked.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Count a report that matched no message.
    fn unmatched(&self, channel: &str) {
        tracing::debug!(channel, "delivery report matched no message");
        self.deps()
            .metrics
            .delivery_reports_unmatched
            .with_label_values(&[channel])
            .inc();
    }

    async fn apply_report(&self, channel: &str, report: &StatusIn) -> Result<Match, StoreError> {
        let store = &self.deps().store;
        let now = self.deps().clock.now_ms();
        let id = match (&report.message_id, &report.provider_id) {
            (Some(m), _) => m.clone(),
            (None, Some(pid)) => {
                let found = store
                    .get(
                        None,
                        &keys::provider_id(channel, self.deps().privacy.pseudonym(pid)),
                        now,
                    )
                    .await?;
                match found.map(String::from_utf8) {
                    Some(Ok(id)) => id,
                    Some(Err(_)) => return Ok(Match::Never),
                    None => return Ok(Match::NotYet),
                }
            }
            (None, None) => return Ok(Match::Never),
        };
        let Some(bucket) = bucket_of(&id) else {
            return Ok(Match::Never);
        };
        // Read and write the record with no other report for it between.
        let one_at_a_time = self.parked_reports().lock_for(&id).lock().await;
        let key = keys::sent_record(&id);
        let Some(sealed) = store.get(Some(bucket), &key, now).await? else {
            return Ok(Match::NotYet);
        };
        let Ok(mut record) = self.deps().privacy.open_json::<SentRecord>(&sealed) else {
            return Ok(Match::Never);
        };
        let Some(state) = next_state(record.state, report.state) else {
            tracing::debug!(channel, message_id = %id, recorded = record.state.as_str(), reported = report.state.as_str(), "delivery report changes nothing");
            self.deps()
                .metrics
                .delivery_reports
                .with_label_values(&[channel, DUPLICATE])
                .inc();
            return Ok(Match::Unchanged);
        };
        record.state = state;
        let bytes = self
            .deps()
            .privacy
            .seal_json(&record)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        store
            .put(Some(bucket), &key, bytes, Some(SENT_RECORD_TTL_MS), now)
            .await?;
        drop(one_at_a_time);
        self.deps()
            .metrics
            .delivery_reports
            .with_label_values(&[channel, state.as_str()])
            .inc();
        tracing::info!(channel, message_id = %id, state = report.state.as_str(), reason = report.reason.as_deref().unwrap_or(""), "delivery report");
        let reason = report.reason.as_deref().unwrap_or("undelivered");
        if report.state == DeliveryState::Failed && CHANNEL_REASONS.contains(&reason) {
            // The account's fault, not the number's: no lawyer declined.
            let now = self.deps().clock.now_ms();
            self.health()
                .failed(&record.channel, super::health::REFUSED, reason, now);
        } else if report.state == DeliveryState::Failed {
            self.tell_undelivered(Undelivered {
                channel: record.channel.clone(),
                purpose: record.purpose,
                recipient: record.recipient.clone(),
                case: record.case.clone(),
                reason: reason.to_owned(),
            })
            .await;
        }
        Ok(Match::Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> StatusIn {
        StatusIn {
            provider_id: Some(id.to_owned()),
            message_id: None,
            state: DeliveryState::Failed,
            reason: None,
        }
    }

    /// Kannel sends `d=8` (sent) or even `d=16` (rejected) after `d=1`
    /// (delivered): nothing after delivered changes the record, so an
    /// offer's delivered SMS never turns into the lawyer's decline.
    #[test]
    fn delivered_is_final_and_repeats_change_nothing() {
        use DeliveryState::{Delivered, Failed, Sent};
        for later in [Sent, Delivered, Failed] {
            assert_eq!(next_state(Delivered, later), None, "{later:?}");
        }
        assert_eq!(next_state(Sent, Sent), None);
        assert_eq!(next_state(Sent, Delivered), Some(Delivered));
        assert_eq!(next_state(Sent, Failed), Some(Failed));
        assert_eq!(next_state(Failed, Failed), None, "declines nobody twice");
        assert_eq!(next_state(Failed, Sent), None);
        assert_eq!(next_state(Failed, Delivered), Some(Delivered));
    }

    #[test]
    fn at_the_bound_the_oldest_report_is_pushed_out_and_named() {
        let parked = Parked::new(Duration::from_secs(20));
        let t0 = Instant::now();
        for i in 0..PARKED_REPORTS_MAX {
            assert!(parked.park("at", report(&format!("r{i}")), t0).is_empty());
        }
        assert_eq!(parked.len(), PARKED_REPORTS_MAX);
        // Three more, on another channel: the three oldest go.
        for i in 0..3 {
            assert_eq!(
                parked.park("kannel", report(&format!("k{i}")), t0),
                vec!["at".to_owned()]
            );
        }
        assert_eq!(parked.len(), PARKED_REPORTS_MAX);
        let due = parked.take_due(t0 + FIRST_RETRY);
        assert_eq!(due.len(), PARKED_REPORTS_MAX);
        let ids: Vec<&str> = due
            .iter()
            .filter_map(|(_, w)| w.report.provider_id.as_deref())
            .collect();
        assert_eq!(ids[0], "r3", "r0, r1 and r2 were pushed out");
        assert_eq!(&ids[PARKED_REPORTS_MAX - 3..], ["k0", "k1", "k2"]);
        assert!(parked.is_empty(), "taken while being tried");
        // Put back in their old places: a new one still pushes out r3.
        for (seq, w) in due {
            assert!(parked.put_back(seq, w, t0 + FIRST_RETRY).is_empty());
        }
        assert_eq!(
            parked.park("kannel", report("k3"), t0),
            vec!["at".to_owned()]
        );
        assert_eq!(parked.len(), PARKED_REPORTS_MAX);
    }

    #[test]
    fn a_report_is_tried_with_growing_gaps_until_its_window_ends() {
        let window = Duration::from_secs(20);
        let parked = Parked::new(window);
        let t0 = Instant::now();
        assert!(parked.park("at", report("x"), t0).is_empty());
        assert!(parked.take_due(t0).is_empty(), "not due at once");
        let mut tries = Vec::new();
        let end = loop {
            let now = parked.next_due().expect("waiting");
            let mut due = parked.take_due(now);
            assert_eq!(due.len(), 1);
            let (seq, w) = due.pop().unwrap();
            tries.push(now - t0);
            let gone = parked.put_back(seq, w, now);
            if !gone.is_empty() {
                assert_eq!(gone, ["at"]);
                break now;
            }
        };
        assert_eq!(end - t0, window, "the last try is at the window's end");
        assert_eq!(tries[0], FIRST_RETRY);
        assert_eq!(tries[1] - tries[0], 2 * FIRST_RETRY);
        assert!(
            tries.windows(2).all(|w| w[1] - w[0] <= MAX_RETRY_GAP),
            "{tries:?}"
        );
        assert!(
            tries.len() < 20,
            "a few store reads, not a busy loop: {tries:?}"
        );
        assert!(parked.is_empty() && parked.next_due().is_none());
    }
}
