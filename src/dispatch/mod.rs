//! Lawyer dispatch: getting an opened case to a lawyer who accepts it.
//!
//! - [`roster`] — who works where, who is on call in a city at any instant
//!   (rotations, overrides, time zones), and each city's escalation chain.
//!   Pure: loaded once from `config/roster.toml`, then queried with an
//!   instant; it never reads the clock and never does I/O after loading.
//! - [`lifecycle`] — the case lifecycle as pure functions: open, escalate,
//!   accept, decline, close, the caller's fallback message, automatic close.
//! - [`commands`] — parsing lawyers' SMS commands (`OK 4821`, `НЕТ 4821`, …).
//! - [`texts`] — what lawyers read (`config/lawyer_texts.toml`).
//! - [`timers`] — the worker that fires escalation, fallback, close and
//!   erase timers, each exactly once across instances.
//! - [`report`] — statistics safe to publish.
//!
//! This module ties them to the store: a case's dispatch state lives inside
//! its sealed data and changes only by compare-and-set, together with the
//! messages and timers the change causes; two lawyers answering at once
//! cannot both win, and a timer fired by two instances acts once.
//!
//! Nothing here may log or report a lawyer's (or a caller's) phone number.

pub mod commands;
pub mod lifecycle;
pub mod report;
pub mod roster;
pub mod texts;
pub mod timers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::case::CaseData;
use crate::conversation::CasePlanner;
use crate::flow::FlowSet;
use crate::outbox::worker::{OutboxEvents, Undelivered};
use crate::outbox::{self, CaseRef, OutMsg, Purpose, Recipient};
use crate::phone::PhoneNumber;
use crate::privacy::Privacy;
use crate::store::{BUCKETS, CaseRecord, CaseUpdate, Job, Queue, StoreError};
use commands::Command;
use lifecycle::{Action, Ctx, Reply, Status, Timer};
use roster::{Lawyer, Roster};
use texts::{LawyerTexts, fill};

/// Offers must fit two SMS parts (UCS-2: 134 characters).
pub const OFFER_MAX_UNITS: usize = 134;

/// A timer job's payload (no personal data: ids only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimerJob {
    /// The case id.
    pub case: String,
    /// The timer.
    pub timer: Timer,
}

/// Metric events, applied once a change is stored.
#[derive(Debug, Default)]
struct Effects {
    escalated: Vec<&'static str>,
    accepted_after_ms: Option<u64>,
    exhausted: bool,
    unanswered: bool,
}

/// The dispatcher: roster, texts and the rules for sending.
pub struct Dispatcher {
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
    /// Keys (job ids, sealing).
    pub privacy: Privacy,
    /// The hotline's fallback number.
    pub fallback: String,
    /// How long a closed case keeps its number and location.
    pub retention_ms: u64,
    /// How long a case may stay open before it is closed automatically.
    pub auto_close_ms: u64,
    /// Lawyers who said OFF (refreshed from the store by the timer worker).
    off: RwLock<BTreeSet<String>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("sms_channel", &self.sms_channel)
            .finish_non_exhaustive()
    }
}

fn now_ts(ms: u64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Cut a text to `max` characters with an ellipsis.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

impl Dispatcher {
    /// Build (the config was validated by the caller).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        roster: Roster,
        texts: LawyerTexts,
        sms_channel: String,
        sending_channels: BTreeSet<String>,
        flows: Arc<FlowSet>,
        privacy: Privacy,
        fallback: String,
        retention_ms: u64,
        auto_close_ms: u64,
    ) -> Self {
        Dispatcher {
            roster,
            texts,
            sms_channel,
            sending_channels,
            flows,
            privacy,
            fallback,
            retention_ms,
            auto_close_ms,
            off: RwLock::new(BTreeSet::new()),
        }
    }

    fn off_set(&self) -> BTreeSet<String> {
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

    /// The metric label of a city: its roster id, or `other` (labels come
    /// from a fixed set).
    fn city_label<'a>(&'a self, city: &str) -> &'a str {
        self.roster
            .city_ids()
            .into_iter()
            .find(|c| *c == city)
            .unwrap_or("other")
    }

    /// A lawyer's texts, and the case's city and situation in her language.
    fn labels(&self, case: &CaseData, lawyer: &Lawyer) -> (&texts::Texts, String, String) {
        let t = self.texts.for_langs(&lawyer.languages);
        let lang = lawyer.languages.first().map_or("en", String::as_str);
        let city = self
            .roster
            .city_name(&case.city, lang)
            .unwrap_or(&case.city)
            .to_owned();
        let situation = case
            .vars
            .get("situation")
            .and_then(|s| t.situations.get(s))
            .cloned()
            .unwrap_or_default();
        (t, city, situation)
    }

    /// The offer text for `lawyer`, with `{code}` and `{minutes}` left for
    /// the sender to fill in, cut to fit two SMS parts.
    pub fn offer_text(&self, case: &CaseData, lawyer: &Lawyer) -> String {
        let (t, city, situation) = self.labels(case, lawyer);
        let abuse = case
            .vars
            .get("abuse")
            .and_then(|a| t.abuse.get(a))
            .cloned()
            .unwrap_or_default();
        let callback = case.callback().unwrap_or("").to_owned();
        let location = case
            .vars
            .get("location")
            .cloned()
            .unwrap_or_else(|| t.unknown.clone());
        let render = |loc: &str| {
            fill(
                &t.offer,
                &[
                    ("city", &city),
                    ("situation", &situation),
                    ("abuse", &abuse),
                    ("location", loc),
                    ("callback", &callback),
                ],
            )
        };
        // Measure with the longest code (six digits) and three-digit minutes.
        let measure = |text: &str| {
            crate::text::measure(&text.replace("{code}", "000000").replace("{minutes}", "999"))
                .units
        };
        let full = render(&location);
        let over = measure(&full).saturating_sub(OFFER_MAX_UNITS);
        if over == 0 {
            return full;
        }
        let keep = location.chars().count().saturating_sub(over + 1).max(1);
        render(&cut(&location, keep))
    }

    fn lawyer_msg(
        &self,
        channel: &str,
        lawyer: &Lawyer,
        text: String,
        purpose: Purpose,
        case: Option<CaseRef>,
        now: u64,
    ) -> OutMsg {
        OutMsg {
            channel: channel.to_owned(),
            to: lawyer.phone.clone(),
            text,
            purpose,
            recipient: Recipient::Lawyer {
                id: lawyer.id.as_str().to_owned(),
            },
            case,
            created_ms: now,
        }
    }

    fn reply_text(&self, lawyer: &Lawyer, reply: &Reply, case: &CaseData) -> String {
        let t = self.texts.for_langs(&lawyer.languages);
        let name_of = |id: &str| {
            self.roster
                .lawyer(id)
                .map_or_else(|| id.to_owned(), |l| l.name.clone())
        };
        let callback = case.callback().unwrap_or("").to_owned();
        let location = case
            .vars
            .get("location")
            .cloned()
            .unwrap_or_else(|| t.unknown.clone());
        match reply {
            Reply::Accepted => fill(
                &t.accepted,
                &[("callback", &callback), ("location", &location)],
            ),
            Reply::Declined => t.declined.clone(),
            Reply::Closed => t.closed.clone(),
            Reply::AlreadyTaken(by) => fill(&t.already_taken, &[("name", &name_of(by))]),
            Reply::AlreadyYours => t.already_yours.clone(),
            Reply::NotOffered => t.not_offered.clone(),
            Reply::IsClosed => t.is_closed.clone(),
        }
    }

    /// The channel a woman is written to: her own if it can send, else the
    /// dispatch channel.
    fn caller_channel(&self, case: &CaseData) -> String {
        if self.sending_channels.contains(&case.channel) {
            case.channel.clone()
        } else {
            self.sms_channel.clone()
        }
    }

    /// Turn actions into jobs (messages and timers) for a case in `bucket`.
    /// `reply_channel` carries replies to the lawyer who sent a command.
    fn jobs(
        &self,
        case: &CaseData,
        bucket: u16,
        actions: &[Action],
        reply_channel: &str,
        now: u64,
    ) -> (Vec<(Queue, Job)>, Effects) {
        let mut jobs = Vec::new();
        let mut fx = Effects::default();
        let case_ref = Some(CaseRef {
            bucket,
            id: case.id.clone(),
        });
        let seq = case.dispatch.seq;
        let caller_pseudonym = case
            .caller
            .as_ref()
            .map(|c| self.privacy.pseudonym(c.as_str()).as_str().to_owned());
        let flow = self.flows.get(&case.flow);
        let privacy = &self.privacy;
        let msg_job = |key: String, msg: OutMsg| outbox::job(privacy, bucket, &key, &msg, now);
        for action in actions {
            match action {
                Action::Offer(id) => {
                    if let Some(l) = self.roster.lawyer(id.as_str()) {
                        let text = self.offer_text(case, l);
                        jobs.push(msg_job(
                            format!("offer:{}:{}:{seq}", case.id, l.id),
                            self.lawyer_msg(
                                &self.sms_channel,
                                l,
                                text,
                                Purpose::Offer,
                                case_ref.clone(),
                                now,
                            ),
                        ));
                    }
                }
                Action::Taken { to, by } => {
                    if let Some(l) = self.roster.lawyer(to) {
                        let t = self.texts.for_langs(&l.languages);
                        let by_name = self
                            .roster
                            .lawyer(by)
                            .map_or_else(|| by.clone(), |b| b.name.clone());
                        let text = fill(&t.taken, &[("name", &by_name)]);
                        jobs.push(msg_job(
                            format!("taken:{}:{to}", case.id),
                            self.lawyer_msg(
                                &self.sms_channel,
                                l,
                                text,
                                Purpose::Taken,
                                case_ref.clone(),
                                now,
                            ),
                        ));
                    }
                }
                Action::Reply(to, reply) => {
                    if let Some(l) = self.roster.lawyer(to) {
                        let text = self.reply_text(l, reply, case);
                        jobs.push(msg_job(
                            format!("reply:{}:{to}:{seq}", case.id),
                            self.lawyer_msg(
                                reply_channel,
                                l,
                                text,
                                Purpose::Notice,
                                case_ref.clone(),
                                now,
                            ),
                        ));
                    }
                }
                Action::CoordinatorAlert(id) => {
                    if let Some(l) = self.roster.lawyer(id.as_str()) {
                        let (t, city, situation) = self.labels(case, l);
                        let text = fill(
                            &t.unanswered,
                            &[
                                ("city", &city),
                                ("situation", &situation),
                                ("callback", case.callback().unwrap_or("")),
                            ],
                        );
                        jobs.push(msg_job(
                            format!("alert:{}:{seq}", case.id),
                            self.lawyer_msg(
                                &self.sms_channel,
                                l,
                                text,
                                Purpose::Notice,
                                case_ref.clone(),
                                now,
                            ),
                        ));
                    }
                }
                Action::Confirm | Action::Unanswered => {
                    let (Some(caller), Some(pseudonym), Some(flow)) =
                        (&case.caller, &caller_pseudonym, flow)
                    else {
                        continue;
                    };
                    let (text, purpose) = match action {
                        Action::Confirm => (flow.spec.messages.confirm.as_ref(), Purpose::Confirm),
                        _ => (flow.spec.messages.unanswered.as_ref(), Purpose::Unanswered),
                    };
                    let Some(text) = text else { continue };
                    let text = flow
                        .text(text, &case.lang)
                        .replace("{fallback}", &self.fallback);
                    jobs.push(msg_job(
                        format!("{}:{}", purpose.as_str(), case.id),
                        OutMsg {
                            channel: self.caller_channel(case),
                            to: caller.clone(),
                            text,
                            purpose,
                            recipient: Recipient::Caller {
                                pseudonym: pseudonym.clone(),
                            },
                            case: case_ref.clone(),
                            created_ms: now,
                        },
                    ));
                    if matches!(action, Action::Unanswered) {
                        fx.unanswered = true;
                    }
                }
                Action::Timer(timer, due) => {
                    let payload = serde_json::to_vec(&TimerJob {
                        case: case.id.clone(),
                        timer: *timer,
                    })
                    .unwrap_or_default();
                    jobs.push((
                        Queue::Timers,
                        Job {
                            id: format!("{bucket:02}.t.{}.{}", case.id, timer.name()),
                            due_ms: *due,
                            payload,
                        },
                    ));
                }
                Action::Escalated(kind) => fx.escalated.push(kind.as_str()),
                Action::AcceptedAfter(ms) => fx.accepted_after_ms = Some(*ms),
                Action::Exhausted => fx.exhausted = true,
            }
        }
        (jobs, fx)
    }

    fn apply_effects(&self, app: &App, city: &str, fx: &Effects) {
        let label = self.city_label(city);
        let m = &app.metrics;
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
            tracing::warn!(
                city = label,
                "case went through every escalation level unanswered"
            );
        }
        if fx.unanswered {
            m.cases_unanswered.with_label_values(&[label]).inc();
        }
    }

    fn open_case(&self, rec: &CaseRecord) -> Option<CaseData> {
        serde_json::from_slice(&self.privacy.open(&rec.data).ok()?).ok()
    }

    /// Load a case, apply `change`, and store it with its jobs by
    /// compare-and-set, retrying on a concurrent change. Returns what the
    /// change produced (`None` when the case does not exist).
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    async fn change_case<F>(
        &self,
        app: &App,
        bucket: u16,
        id: &str,
        reply_channel: &str,
        change: F,
    ) -> Result<Option<Vec<Action>>, StoreError>
    where
        F: Fn(&mut CaseData, &Ctx<'_>) -> Vec<Action> + Send + Sync,
    {
        let store = &app.conversations.store;
        for _ in 0..5 {
            let now = app.conversations.clock.now_ms();
            let Some(rec) = store.case(bucket, id).await? else {
                return Ok(None);
            };
            let Some(mut case) = self.open_case(&rec) else {
                tracing::error!(case = %id, "case data cannot be opened (wrong HOTLINE_PII_KEY?)");
                return Ok(None);
            };
            let before = case.clone();
            let off = self.off_set();
            let city = case.city.clone();
            let ctx = Ctx {
                roster: &self.roster,
                city: &city,
                now_ms: now,
                opened_at_ms: case.opened_at_ms,
                off: &off,
            };
            let actions = change(&mut case, &ctx);
            if case == before && actions.is_empty() {
                return Ok(Some(actions));
            }
            let (jobs, fx) = self.jobs(&case, bucket, &actions, reply_channel, now);
            let close = case.dispatch.status == Status::Closed && rec.open;
            let update = CaseUpdate {
                bucket,
                id: id.to_owned(),
                code: rec.code.clone(),
                expected_version: rec.version,
                data: self
                    .privacy
                    .seal(&serde_json::to_vec(&case).unwrap_or_default()),
                close,
                jobs,
                now_ms: now,
            };
            if store.update_case(update).await? {
                self.apply_effects(app, &case.city, &fx);
                app.outbox_notify.notify_one();
                return Ok(Some(actions));
            }
        }
        Err(StoreError::Unavailable(
            "case kept changing under us; try again".into(),
        ))
    }

    /// Every open case with its bucket, record and data.
    async fn open_cases(&self, app: &App) -> Result<Vec<(u16, CaseRecord, CaseData)>, StoreError> {
        let store = &app.conversations.store;
        let mut out = Vec::new();
        for bucket in 0..BUCKETS {
            for id in store.case_ids(bucket, true).await? {
                if let Some(rec) = store.case(bucket, &id).await?
                    && let Some(data) = self.open_case(&rec)
                {
                    out.push((bucket, rec, data));
                }
            }
        }
        Ok(out)
    }

    /// Send a lawyer a message not tied to a case change.
    async fn tell(
        &self,
        app: &App,
        channel: &str,
        lawyer: &Lawyer,
        key: &str,
        text: String,
    ) -> Result<(), StoreError> {
        let now = app.conversations.clock.now_ms();
        let bucket = self
            .privacy
            .pseudonym(lawyer.phone.as_str())
            .bucket(BUCKETS);
        let msg = self.lawyer_msg(channel, lawyer, text, Purpose::Notice, None, now);
        let (queue, job) = outbox::job(
            &self.privacy,
            bucket,
            &format!("tell:{}:{key}:{now}", lawyer.id),
            &msg,
            now,
        );
        app.conversations
            .store
            .schedule(bucket, queue, vec![job])
            .await?;
        app.outbox_notify.notify_one();
        Ok(())
    }

    /// The lawyer whose number this is, if any.
    pub fn lawyer_for(&self, phone: &PhoneNumber) -> Option<&Lawyer> {
        self.roster.lawyer_by_phone(phone)
    }

    /// Handle an SMS from a lawyer. Returns the metric outcome.
    pub async fn command(
        &self,
        app: &App,
        channel: &str,
        lawyer: &Lawyer,
        text: &str,
    ) -> &'static str {
        let cmd = commands::parse(text);
        let reply_channel = if self.sending_channels.contains(channel) {
            channel
        } else {
            self.sms_channel.as_str()
        };
        let result = self.run_command(app, reply_channel, lawyer, &cmd).await;
        let outcome = match &result {
            Ok(o) => *o,
            Err(_) => "store_unavailable",
        };
        app.metrics
            .lawyer_commands
            .with_label_values(&[cmd.as_str(), outcome])
            .inc();
        tracing::info!(lawyer = %lawyer.id, command = cmd.as_str(), outcome, "lawyer command");
        if outcome == "store_unavailable" {
            "store_unavailable"
        } else {
            "ok"
        }
    }

    async fn run_command(
        &self,
        app: &App,
        channel: &str,
        lawyer: &Lawyer,
        cmd: &Command,
    ) -> Result<&'static str, StoreError> {
        let t = self.texts.for_langs(&lawyer.languages);
        let me = lawyer.id.as_str().to_owned();
        match cmd {
            Command::Accept(code) | Command::Decline(code) | Command::Done(code) => {
                let target = match code {
                    Some(code) => match app.conversations.store.case_by_code(code).await? {
                        Some(rec) => Some((crate::store::code_bucket(code).unwrap_or(0), rec.id)),
                        None => {
                            self.tell(
                                app,
                                channel,
                                lawyer,
                                "nf",
                                fill(&t.not_found, &[("code", code)]),
                            )
                            .await?;
                            return Ok("not_found");
                        }
                    },
                    None => None,
                };
                let (bucket, id) = match target {
                    Some(x) => x,
                    None => {
                        // A bare command: the only case waiting on this lawyer
                        // (accept, decline) or held by her (done).
                        let mine: Vec<(u16, CaseRecord)> = self
                            .open_cases(app)
                            .await?
                            .into_iter()
                            .filter(|(_, _, d)| match cmd {
                                Command::Done(_) => {
                                    d.dispatch.accepted_by.as_deref() == Some(me.as_str())
                                }
                                _ => lifecycle::pending_for(&d.dispatch, &me),
                            })
                            .map(|(b, r, _)| (b, r))
                            .collect();
                        match mine.as_slice() {
                            [] => {
                                self.tell(app, channel, lawyer, "none", t.none_pending.clone())
                                    .await?;
                                return Ok("none_pending");
                            }
                            [(b, r)] => (*b, r.id.clone()),
                            many => {
                                let list: Vec<&str> =
                                    many.iter().map(|(_, r)| r.code.as_str()).collect();
                                let text = fill(
                                    &t.which,
                                    &[("list", &list.join(", ")), ("code", list[0])],
                                );
                                self.tell(app, channel, lawyer, "which", text).await?;
                                return Ok("ambiguous");
                            }
                        }
                    }
                };
                let retention = self.retention_ms;
                let kind = cmd.clone();
                let who = me.clone();
                let actions = self
                    .change_case(app, bucket, &id, channel, move |case, ctx| match &kind {
                        Command::Accept(_) => lifecycle::accept(&mut case.dispatch, ctx, &who),
                        Command::Decline(_) => lifecycle::decline(&mut case.dispatch, ctx, &who),
                        _ => lifecycle::close(&mut case.dispatch, ctx, &who, retention),
                    })
                    .await?;
                let refused = actions.as_deref().unwrap_or_default().iter().any(|a| {
                    matches!(a, Action::Reply(_, r) if !matches!(r, Reply::Accepted | Reply::Declined | Reply::Closed))
                });
                Ok(if refused { "refused" } else { "ok" })
            }
            Command::On | Command::Off => {
                let off = matches!(cmd, Command::Off);
                let now = app.conversations.clock.now_ms();
                let value = off.then(|| b"1".to_vec());
                app.conversations
                    .store
                    .put(None, &format!("off:{me}"), value, None, now)
                    .await?;
                let mut set = self.off_set();
                if off {
                    set.insert(me.clone());
                } else {
                    set.remove(&me);
                }
                self.set_off(set);
                self.tell(
                    app,
                    channel,
                    lawyer,
                    if off { "off" } else { "on" },
                    if off { t.off.clone() } else { t.on.clone() },
                )
                .await?;
                Ok("ok")
            }
            Command::Status => {
                let mut list = Vec::new();
                for (_, rec, d) in self.open_cases(app).await? {
                    if d.dispatch.accepted_by.as_deref() == Some(me.as_str()) {
                        list.push(format!("{} ✓", rec.code));
                    } else if lifecycle::pending_for(&d.dispatch, &me) {
                        list.push(format!("{} ?", rec.code));
                    }
                }
                let text = if list.is_empty() {
                    t.status_none.clone()
                } else {
                    fill(&t.status, &[("list", &list.join(", "))])
                };
                self.tell(app, channel, lawyer, "status", text).await?;
                Ok("ok")
            }
            Command::Help | Command::Unknown => {
                self.tell(app, channel, lawyer, "help", t.help.clone())
                    .await?;
                Ok(if matches!(cmd, Command::Help) {
                    "ok"
                } else {
                    "unknown"
                })
            }
        }
    }

    /// Refresh the set of lawyers off call from the store.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn refresh_off(&self, app: &App) -> Result<(), StoreError> {
        let now = app.conversations.clock.now_ms();
        let mut off = BTreeSet::new();
        for l in self.roster.lawyers() {
            if app
                .conversations
                .store
                .get(None, &format!("off:{}", l.id), now)
                .await?
                .is_some()
            {
                off.insert(l.id.as_str().to_owned());
            }
        }
        self.set_off(off);
        Ok(())
    }

    /// Fire one timer of a case.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails (the timer is retried).
    pub async fn fire(&self, app: &App, bucket: u16, job: &TimerJob) -> Result<(), StoreError> {
        let retention = self.retention_ms;
        let timer = job.timer;
        let channel = self.sms_channel.clone();
        self.change_case(
            app,
            bucket,
            &job.case,
            &channel,
            move |case, ctx| match timer {
                Timer::Escalate { seq } => lifecycle::escalate(&mut case.dispatch, ctx, seq),
                Timer::Unanswered => lifecycle::unanswered(&mut case.dispatch),
                Timer::AutoClose => lifecycle::auto_close(&mut case.dispatch, ctx, retention),
                Timer::Erase => {
                    case.erase();
                    Vec::new()
                }
            },
        )
        .await?;
        Ok(())
    }

    /// Warnings for offers that would not fit two SMS parts for some
    /// lawyer, even with the longest location cut: measured on a case with
    /// every field at its longest (`texts_file` names the texts in problems).
    pub fn check_offers(&self, texts_file: &str) -> Vec<crate::problem::Problem> {
        let mut vars = BTreeMap::new();
        vars.insert("situation".to_owned(), "detained_other".to_owned());
        vars.insert("abuse".to_owned(), "planted".to_owned());
        vars.insert("location".to_owned(), "Ж".repeat(80));
        vars.insert("callback".to_owned(), "+996555000000000".to_owned());
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for lawyer in self.roster.lawyers() {
            let lang = lawyer
                .languages
                .first()
                .cloned()
                .unwrap_or_else(|| "en".into());
            for city in self.roster.city_ids() {
                let case = CaseData {
                    id: "c_check".into(),
                    flow: String::new(),
                    lang: "ru".into(),
                    channel: String::new(),
                    caller: None,
                    city: city.to_owned(),
                    vars: vars.clone(),
                    opened_at_ms: 0,
                    dispatch: lifecycle::Dispatch::default(),
                };
                let text = self
                    .offer_text(&case, lawyer)
                    .replace("{code}", "000000")
                    .replace("{minutes}", "999");
                let m = crate::text::measure(&text);
                if m.sms_segments() > 2 && seen.insert(lang.clone()) {
                    problems.push(crate::problem::Problem::warning(
                        texts_file,
                        format!("{lang}.offer"),
                        format!(
                            "an offer for {city} is {} characters in {} ({} SMS parts) even with the location cut: shorten the text",
                            m.units,
                            m.encoding,
                            m.sms_segments()
                        ),
                    ));
                }
            }
        }
        problems
    }

    /// Hours in the next 24 with nobody on call, per city (for the gauge).
    pub fn gap_hours(&self, now_ms: u64) -> BTreeMap<String, f64> {
        let from = now_ts(now_ms);
        self.roster
            .city_ids()
            .into_iter()
            .map(|c| {
                let secs: i64 = self
                    .roster
                    .gaps(c, from, 24)
                    .iter()
                    .map(|(a, b)| b.as_second() - a.as_second())
                    .sum();
                (c.to_owned(), secs as f64 / 3600.0)
            })
            .collect()
    }
}

impl CasePlanner for Dispatcher {
    fn plan(&self, case: &mut CaseData, bucket: u16) -> Vec<(Queue, Job)> {
        let off = self.off_set();
        let city = case.city.clone();
        let ctx = Ctx {
            roster: &self.roster,
            city: &city,
            now_ms: case.opened_at_ms,
            opened_at_ms: case.opened_at_ms,
            off: &off,
        };
        let (state, actions) = lifecycle::open(&ctx, self.auto_close_ms);
        case.dispatch = state;
        let (jobs, _) = self.jobs(case, bucket, &actions, &self.sms_channel, case.opened_at_ms);
        jobs
    }
}

#[async_trait]
impl OutboxEvents for Dispatcher {
    async fn undelivered(&self, app: &App, event: Undelivered) {
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
            .change_case(app, case.bucket, &case.id, &channel, move |c, ctx| {
                let mut actions = lifecycle::decline(&mut c.dispatch, ctx, &who);
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

#[cfg(test)]
mod tests;
