//! Lawyer dispatch: getting an opened case to a lawyer who accepts it.
//!
//! - [`roster`] — who works where, who is on call in a city at any instant
//!   (rotations, overrides, time zones), and each city's escalation chain.
//!   Pure: loaded once from `config/roster.toml`, then queried with an
//!   instant; it never reads the clock and never does I/O after loading.
//! - [`lifecycle`] — the case lifecycle as pure functions: open, escalate,
//!   accept, decline, close (with the outcome the lawyer gives, which she
//!   may correct until erasure), the caller's fallback message, automatic
//!   close.
//! - [`commands`] — parsing lawyers' SMS commands (`OK 4821`, `НЕТ 4821`, …).
//! - [`cover`] — coordinators' covers (`COVER aida 18:00`) merged into
//!   on-call resolution, and the pure decisions of their commands
//!   (`coordinator.rs` carries them out).
//! - [`onboarding`] — the welcome SMS (`hotline test-sms`) and numbers
//!   confirmed by her `OK`.
//! - [`texts`] — what lawyers read (`config/lawyer_texts.toml`).
//! - [`timers`] — the worker that fires escalation, fallback, close and
//!   erase timers, each exactly once across instances.
//! - [`report`] — statistics safe to publish.
//! - [`board`] — the cases operators and coordinators see (`hotline cases`,
//!   the status page, the case gauges): codes, cities, ages, levels and
//!   lawyers, never a number or a place.
//!
//! This module ties them to the store through [`Dispatcher`]: a case's
//! dispatch state lives inside its sealed data and changes only by
//! compare-and-set (`Dispatcher::change_case`), together with the messages
//! and timers the change causes (`jobs.rs` turns the lifecycle's actions
//! into them; `render.rs` writes the texts); two lawyers answering at once
//! cannot both win, and a timer fired by two instances acts once. A
//! lawyer's SMS is handled in `lawyer.rs`.
//!
//! Nothing here may log or report a lawyer's (or a caller's) phone number.

pub mod board;
pub mod commands;
mod coordinator;
pub mod cover;
mod jobs;
mod lawyer;
pub mod lifecycle;
pub mod onboarding;
mod render;
pub mod replies;
pub mod report;
pub mod roster;
pub mod texts;
pub mod timers;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::case::CaseData;
use crate::conversation::CasePlanner;
use crate::deps::Deps;
use crate::flow::FlowSet;
use crate::outbox::worker::{OutboxEvents, Undelivered};
use crate::outbox::{Purpose, Recipient};
use crate::reload::Live;
use crate::store::{CaseRecord, CaseUpdate, Job, KvWrite, Queue, StoreError};
use cover::Covers;
pub use lawyer::{Begun, CommandOutcome};
use lifecycle::{Action, Ctx, Status, Timer};
use roster::Roster;
use texts::LawyerTexts;

pub use render::OFFER_MAX_UNITS;

/// How many times a case change is retried when the case keeps changing.
const CAS_ATTEMPTS: usize = 5;

/// A timer job's payload (no personal data: ids only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimerJob {
    /// The case id.
    pub case: String,
    /// The timer.
    pub timer: Timer,
}

/// What dispatch is configured with (`[dispatch]`, the roster, the texts).
#[derive(Debug)]
pub struct DispatchSettings {
    /// The roster.
    pub roster: Roster,
    /// Lawyers' texts.
    pub texts: LawyerTexts,
    /// The channel offers and lawyers' replies go out on, and confirmations
    /// to women whose case came by USSD.
    pub sms_channel: String,
    /// Channels able to send (women are answered on their own channel when
    /// it can send).
    pub sending_channels: BTreeSet<String>,
    /// Flows, for the women's `confirm` and `unanswered` texts.
    pub flows: Arc<FlowSet>,
    /// How long a closed case keeps its number and location.
    pub retention_ms: u64,
    /// How long a case may stay open before it is closed automatically.
    pub auto_close_ms: u64,
}

/// The dispatcher: roster, texts and the rules for sending.
pub struct Dispatcher {
    /// The roster.
    pub roster: Roster,
    /// Lawyers' texts.
    pub texts: LawyerTexts,
    /// The channel offers and lawyers' replies go out on.
    pub sms_channel: String,
    /// Channels able to send.
    pub sending_channels: BTreeSet<String>,
    /// Flows, for the women's `confirm` and `unanswered` texts.
    pub flows: Arc<FlowSet>,
    /// How long a closed case keeps its number and location.
    pub retention_ms: u64,
    /// How long a case may stay open before it is closed automatically.
    pub auto_close_ms: u64,
    /// Store, clock, keys, metrics, outbox wake-up.
    deps: Deps,
    /// Lawyers who said OFF (refreshed from the store by the timer worker).
    off: RwLock<BTreeSet<String>>,
    /// Coordinators' covers by city (refreshed like `off`).
    covers: RwLock<Covers>,
    /// Whether `off` and `covers` were read from the store at least once
    /// (by this dispatcher or the one a reload replaced). Until then a
    /// lawyer who sent `OFF` before this process started is not known.
    state_read: std::sync::atomic::AtomicBool,
    /// Direct replies left per lawyer ([`replies`]); shared with the
    /// dispatcher a reload puts in place.
    replies: RwLock<Arc<replies::ReplyBudget>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("sms_channel", &self.sms_channel)
            .finish_non_exhaustive()
    }
}

/// Metric events, applied once a change is stored.
#[derive(Debug, Default)]
struct Effects {
    escalated: Vec<&'static str>,
    accepted_after_ms: Option<u64>,
    exhausted: bool,
    unanswered: bool,
    /// Outcome ids first recorded (or `not_given`), for the closed counter.
    outcomes: Vec<String>,
}

impl Dispatcher {
    /// Build from validated settings.
    pub fn new(s: DispatchSettings, deps: Deps) -> Self {
        let cities: Vec<&str> = s.roster.city_ids().into_iter().chain(["other"]).collect();
        let mut outcomes = s.texts.outcome_ids();
        outcomes.push(lifecycle::NOT_GIVEN);
        deps.metrics.zero_outcomes(&cities, &outcomes);
        Dispatcher {
            roster: s.roster,
            texts: s.texts,
            sms_channel: s.sms_channel,
            sending_channels: s.sending_channels,
            flows: s.flows,
            retention_ms: s.retention_ms,
            auto_close_ms: s.auto_close_ms,
            deps,
            off: RwLock::new(BTreeSet::new()),
            covers: RwLock::new(Covers::new()),
            state_read: std::sync::atomic::AtomicBool::new(false),
            replies: RwLock::new(Arc::default()),
        }
    }

    /// The direct replies left per lawyer.
    fn reply_budget(&self) -> Arc<replies::ReplyBudget> {
        self.replies
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether the off-call set and the covers have been read from the
    /// store since the process started ([`Dispatcher::refresh_state`]).
    pub fn state_read(&self) -> bool {
        self.state_read.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Take over what `old` (the dispatcher a reload replaces) knows:
    /// the off-call set, the covers, and whether they were read.
    pub fn take_state_of(&self, old: &Dispatcher) {
        self.set_off(old.off_set());
        self.set_covers(old.covers());
        *self
            .replies
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = old.reply_budget();
        if old.state_read() {
            self.state_read
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Read the off-call set and the covers from the store: at start,
    /// before the first case can be planned or the first timer fired
    /// ([`crate::app::App::read_dispatch_state`]), then every 10 s by the
    /// timer worker.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn refresh_state(&self) -> Result<(), StoreError> {
        self.refresh_off().await?;
        self.refresh_covers().await?;
        self.state_read
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The dependencies it was built with.
    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// The ids of the lawyers off call (sent `OFF`), as last read.
    pub fn off_set(&self) -> BTreeSet<String> {
        self.off
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replace the set of lawyers off call.
    pub fn set_off(&self, off: BTreeSet<String>) {
        *self
            .off
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = off;
    }

    /// The covers in force (a copy).
    pub fn covers(&self) -> Covers {
        self.covers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replace the covers.
    pub fn set_covers(&self, covers: Covers) {
        *self
            .covers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = covers;
    }

    /// The city whose lawyers answer `case` ("other city" by her country).
    pub(super) fn dispatch_city(&self, case: &CaseData) -> String {
        self.roster
            .resolve(&case.city, case.country.as_deref())
            .to_owned()
    }

    /// The roster id of the lawyer whose number opened `case` (a lawyer
    /// asking for help herself), if any: she is never offered it.
    pub(super) fn caller_lawyer(&self, case: &CaseData) -> Option<String> {
        let caller = case.caller.as_ref()?;
        self.roster
            .lawyer_by_phone(caller)
            .map(|l| l.id.as_str().to_owned())
    }

    /// The metric label of a city: its roster id, or `other` (labels come
    /// from a fixed set).
    fn city_label<'a>(&'a self, city: &str) -> &'a str {
        self.roster
            .city_ids()
            .into_iter()
            .find(|c| *c == city)
            .unwrap_or("other")
    }

    fn apply_effects(&self, city: &str, fx: &Effects) {
        let label = self.city_label(city);
        let m = &self.deps.metrics;
        for level in &fx.escalated {
            m.escalations.with_label_values(&[label, level]).inc();
        }
        if let Some(ms) = fx.accepted_after_ms {
            m.cases_accepted.with_label_values(&[label]).inc();
            m.time_to_accept
                .with_label_values(&[label])
                .observe(ms as f64 / 1000.0);
            tracing::info!(
                city = label,
                minutes = ms / 60_000,
                within_hour = ms <= 3_600_000,
                "case accepted"
            );
        }
        if fx.exhausted {
            m.cases_exhausted.with_label_values(&[label]).inc();
            tracing::warn!(
                city = label,
                "case went through every escalation level unanswered"
            );
        }
        if fx.unanswered {
            m.cases_unanswered.with_label_values(&[label]).inc();
        }
        for outcome in &fx.outcomes {
            // Ids come from the texts (checked by the lifecycle's caller)
            // or `not_given`: a bounded, pre-registered label set.
            m.cases_closed.with_label_values(&[label, outcome]).inc();
        }
    }

    fn open_case(&self, rec: &CaseRecord) -> Option<CaseData> {
        match self.deps.privacy.open_json(&rec.data) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(case = %rec.id, error = %e, "case data cannot be opened (wrong HOTLINE_PII_KEY?)");
                None
            }
        }
    }

    /// Load a case, apply `change`, and store it with its jobs by
    /// compare-and-set, retrying on a concurrent change. Returns what the
    /// change produced (`None` when the case does not exist).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails or the case keeps changing.
    async fn change_case<F>(
        &self,
        bucket: u16,
        id: &str,
        reply_channel: &str,
        change: F,
    ) -> Result<Option<Vec<Action>>, StoreError>
    where
        F: Fn(&mut CaseData, &Ctx<'_>) -> Vec<Action> + Send + Sync,
    {
        self.change_loaded_case(bucket, id, None, None, reply_channel, change)
            .await
    }

    /// [`Dispatcher::change_case`] starting from `loaded`, a record just
    /// read (a lawyer's command found the case by its code): the first
    /// attempt reads nothing; a concurrent change reloads it. With `mark`,
    /// the change writes that mark of its delivery (see
    /// [`CaseUpdate::mark`]; global, [`CaseUpdate::mark_global`], when
    /// its `bool` says so) and sets the flag when it did.
    async fn change_loaded_case<F>(
        &self,
        bucket: u16,
        id: &str,
        mut loaded: Option<CaseRecord>,
        mark: Option<(&KvWrite, bool, &AtomicBool)>,
        reply_channel: &str,
        change: F,
    ) -> Result<Option<Vec<Action>>, StoreError>
    where
        F: Fn(&mut CaseData, &Ctx<'_>) -> Vec<Action> + Send + Sync,
    {
        let store = &self.deps.store;
        for _ in 0..CAS_ATTEMPTS {
            let now = self.deps.clock.now_ms();
            let rec = match loaded.take() {
                Some(rec) => rec,
                None => match store.case(bucket, id).await? {
                    Some(rec) => rec,
                    None => return Ok(None),
                },
            };
            let Some(mut case) = self.open_case(&rec) else {
                return Ok(None);
            };
            let before = case.clone();
            let off = self.off_set();
            let covers = self.covers();
            let city = self.dispatch_city(&case);
            let caller = self.caller_lawyer(&case);
            let ctx = Ctx {
                roster: &self.roster,
                city: &city,
                now_ms: now,
                opened_at_ms: case.opened_at_ms,
                off: &off,
                covers: &covers,
                caller_lawyer: caller.as_deref(),
            };
            let actions = change(&mut case, &ctx);
            if case == before && actions.is_empty() {
                return Ok(Some(actions));
            }
            let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
            let (jobs, fx) = self
                .jobs(
                    &case,
                    bucket,
                    Some(&rec.named_code()),
                    &actions,
                    reply_channel,
                    now,
                )
                .map_err(corrupt)?;
            let closed = case.dispatch.status == Status::Closed;
            let settled = closed || case.dispatch.accepted_by.is_some();
            let data = self.deps.privacy.seal_json(&case).map_err(corrupt)?;
            // For the recheck copy ([`crate::deps::CaseSettled`]): only
            // when the change settles the case (rare next to hops).
            let kept = (settled && self.deps.settled.get().is_some()).then(|| {
                let timers: Vec<crate::store::Job> = jobs
                    .iter()
                    .filter(|(q, _)| *q == crate::store::Queue::Timers)
                    .map(|(_, j)| j.clone())
                    .collect();
                (data.clone(), timers)
            });
            let update = CaseUpdate {
                bucket,
                id: id.to_owned(),
                code: rec.code.clone(),
                alias: rec.alias.clone(),
                expected_version: rec.version,
                data,
                close: closed && rec.open,
                jobs,
                mark: mark.map(|(m, _, _)| m.clone()),
                mark_global: mark.is_some_and(|(_, global, _)| global),
                now_ms: now,
            };
            let outcome = store.update_case_once(update).await?;
            if outcome == crate::store::Updated::Stale {
                continue;
            }
            if let Some((_, _, written)) = mark {
                written.store(true, Ordering::SeqCst);
            }
            // `MadeBefore`: another copy of this delivery made the change
            // and was counted; nothing more to count or send.
            if outcome == crate::store::Updated::Changed {
                self.apply_effects(&case.city, &fx);
                self.deps.wake.outbox();
                if let (Some((data, timers)), Some(hook)) = (kept, self.deps.settled.get()) {
                    hook.case_settled(&crate::deps::Settled {
                        bucket,
                        id,
                        code: &rec.code,
                        aliased: rec.alias.is_some(),
                        data: &data,
                        timers: &timers,
                        closed,
                        opened_ms: case.opened_at_ms,
                        now_ms: now,
                    });
                }
            }
            return Ok(Some(actions));
        }
        Err(StoreError::Contended)
    }

    /// Fire one timer of a case.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (the timer is retried).
    pub async fn fire(&self, bucket: u16, job: &TimerJob) -> Result<(), StoreError> {
        let retention = self.retention_ms;
        let timer = job.timer;
        let channel = self.sms_channel.clone();
        self.change_case(bucket, &job.case, &channel, move |case, ctx| match timer {
            Timer::Escalate { seq } => lifecycle::escalate(&mut case.dispatch, ctx, seq),
            Timer::Unanswered => lifecycle::unanswered(&mut case.dispatch),
            Timer::AutoClose => lifecycle::auto_close(&mut case.dispatch, ctx, retention),
            Timer::Erase => {
                case.erase();
                Vec::new()
            }
        })
        .await?;
        Ok(())
    }

    /// Seconds in the next 24 hours with nobody on call, per city (for the
    /// gauge); a coordinator's cover fills the gaps it overlaps.
    pub fn gap_seconds(&self, now: jiff::Timestamp) -> Vec<(String, f64)> {
        let covers = self.covers();
        self.roster
            .city_ids()
            .into_iter()
            .map(|c| {
                let covered_to = cover::active(&self.roster, &covers, c, now)
                    .map_or(0, |x| i64::try_from(x.until_ms / 1000).unwrap_or(i64::MAX));
                let secs: i64 = self
                    .roster
                    .gaps(c, now, 24)
                    .iter()
                    .map(|(a, b)| {
                        let (a, b) = (a.as_second(), b.as_second());
                        (b - a) - (b.min(covered_to) - a).max(0)
                    })
                    .sum();
                (c.to_owned(), secs as f64)
            })
            .collect()
    }
}

impl CasePlanner for Dispatcher {
    fn plan(&self, case: &mut CaseData, bucket: u16) -> Vec<(Queue, Job)> {
        let off = self.off_set();
        let covers = self.covers();
        let city = self.dispatch_city(case);
        let caller = self.caller_lawyer(case);
        if caller.is_some() {
            // Logged by roster id, never her number.
            tracing::warn!(case = %case.id, lawyer = caller.as_deref().unwrap_or(""), "a lawyer's own number opened a case: it is never offered to her");
        }
        let ctx = Ctx {
            roster: &self.roster,
            city: &city,
            now_ms: case.opened_at_ms,
            opened_at_ms: case.opened_at_ms,
            off: &off,
            covers: &covers,
            caller_lawyer: caller.as_deref(),
        };
        if self.roster.chain(&city).is_none() {
            // Her session began on a flow version a reload has replaced
            // since: nobody can be offered the case. Exhausted at once,
            // counted as `other` (HotlineChainExhausted pages).
            tracing::error!(case = %case.id, "a case for a city the roster does not know: no lawyer can be offered it; reach her by hand");
        }
        let (state, actions) = lifecycle::open(&ctx, self.auto_close_ms);
        case.dispatch = state;
        let (sms, at) = (&self.sms_channel, case.opened_at_ms);
        match self.jobs(case, bucket, None, &actions, sms, at) {
            // What opening did (a chain exhausted at once, levels skipped)
            // is counted now: the case is recorded in the same commit.
            // (A commit that is retried after a conflict plans again and
            // counts again; rare, and a page either way.)
            Ok((jobs, fx)) => {
                self.apply_effects(&city, &fx);
                jobs
            }
            Err(e) => {
                // The case is still recorded; its timers cannot be: an
                // operator must know.
                tracing::error!(case = %case.id, error = %e, "jobs of a new case cannot be serialised");
                Vec::new()
            }
        }
    }
}

#[async_trait]
impl OutboxEvents for Dispatcher {
    async fn undelivered(&self, event: Undelivered) {
        // An offer that cannot reach its lawyer counts as a decline: the
        // case moves on at once instead of waiting out the level.
        let (Purpose::Offer, Recipient::Lawyer { id }, Some(case)) =
            (event.purpose, &event.recipient, &event.case)
        else {
            return;
        };
        tracing::warn!(lawyer = %id, reason = %event.reason, "offer undelivered; escalating");
        let who = id.clone();
        let channel = self.sms_channel.clone();
        let result = self
            .change_case(case.bucket, &case.id, &channel, move |c, ctx| {
                let mut actions = lifecycle::undelivered(&mut c.dispatch, ctx, &who);
                // No reply to a lawyer we cannot reach.
                actions.retain(|a| !matches!(a, Action::Reply(..)));
                actions
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not escalate after an undelivered offer");
        }
    }
}

/// The dispatcher in force, read once per case planned: a reload swaps
/// it ([`crate::reload`]).
impl CasePlanner for Live<Dispatcher> {
    fn plan(&self, case: &mut CaseData, bucket: u16) -> Vec<(Queue, Job)> {
        self.get().plan(case, bucket)
    }
}

/// The dispatcher in force when the event arrives.
#[async_trait]
impl OutboxEvents for Live<Dispatcher> {
    async fn undelivered(&self, event: Undelivered) {
        let d = self.get();
        d.undelivered(event).await;
    }
}

#[cfg(test)]
mod tests;
