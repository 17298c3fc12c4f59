//! Conversations: one inbound message in, one screen out.
//!
//! This is where a USSD hop or an SMS goes after its adapter parsed it:
//! round trip one to the store (dedupe, rate limit, load the session), the
//! pure flow engine ([`plan`]), round trip two (save the session; record a
//! case when the flow opened one; queue the SMS screen). Nothing else on
//! this path waits on the store.
//!
//! - USSD: the screen is the HTTP answer. When the store is down or the
//!   caller is over the limit, a calm last screen with the fallback number
//!   (`messages.unavailable`), never an error. A completed request whose
//!   store write failed (or, with a cumulative text, whose session could not
//!   be loaded) is kept in the durable spool (`offline.rs`): she is shown the
//!   flow's last screen with a code this instance leased for outages (the
//!   code her case gets on replay), or, with no leased code ready,
//!   `messages.unavailable` — never a code that might not be hers.
//! - SMS: a keyword starts its flow; every later SMS from that number is the
//!   next answer; each screen is queued as one SMS in the outbox. A text that
//!   starts nothing gets the help text (once an hour); `STOP` ends the
//!   session and stops messages to the number.
//!
//! Logs carry the caller's pseudonym only; never the number, what she typed,
//! or the screen text.
//!
//! Over 600 lines: the two round trips and the commit they build read best
//! together; the pure parts are in [`plan`], the outage path in `offline`,
//! the embedded store's compact session form in `codec`.

mod codec;
pub mod limited;
mod offline;
pub mod plan;
mod writes;

use std::sync::Arc;

pub use plan::STOP_WORDS;
use plan::{FlowStep, Incoming, Plan, SessionData, SessionDataRef};

use crate::case::CaseData;
use crate::channel::{SmsIn, UssdIn, UssdInput};
use crate::codes::OfflineCodes;
use crate::config::Limits;
use crate::deps::Deps;
use crate::flow::Flow;
use crate::flow::engine::{Caller, Step};
use crate::outbox::{self, Purpose};
use crate::outcome::Outcome;
use crate::phone::{Country, PhoneNumber};
use crate::privacy::Pseudonym;
use crate::reload::{FlowVersions, Live};
use crate::spool::Spool;
use crate::store::{
    BUCKETS, Begin, BeginRequest, CachedReply, Commit, CommitRequest, Job, KvWrite, NewCase, Queue,
    SessionRecord, SessionWrite, keys,
};

/// How long a number that got the SMS help text is not sent it again.
const HELP_QUIET_MS: u64 = 3600 * 1000;
/// Without an aggregator message id, the same text from the same number
/// within this window, before we sent that number anything, is a retry.
const SMS_DEDUPE_WINDOW_MS: u64 = 10_000;
/// USSD that sends only the latest answer: the same answer in the same
/// session within this window is a retry (nobody reads the next screen and
/// types the same again that fast on a basic phone).
const LATEST_DEDUPE_WINDOW_MS: u64 = 4_000;

/// Decides the jobs scheduled with a new case (its first offer and its
/// escalation timer). Lawyer dispatch implements it.
pub trait CasePlanner: Send + Sync {
    /// Record the case's first dispatch state in `case` and return the jobs
    /// to write in the same commit (its first offer, its timers).
    fn plan(&self, case: &mut CaseData, bucket: u16) -> Vec<(Queue, Job)>;
}

/// What the caller is shown, and how the request is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The screen (USSD); empty for SMS, whose screens go through the outbox.
    pub text: String,
    /// Whether the session is over.
    pub end: bool,
    /// How the request ended, for the metric.
    pub outcome: Outcome,
}

/// Marks a cached reply's text as sealed (texts cached before sealing
/// existed are read as they are).
const SEALED_REPLY: &str = "s1:";

impl Answer {
    /// The answer to a delivery seen before: the same screen again (USSD);
    /// nothing for SMS, whose screen was queued the first time.
    fn duplicate(reply: &CachedReply, is_sms: bool) -> Answer {
        Answer {
            text: if is_sms {
                String::new()
            } else {
                reply.render()
            },
            end: reply.end,
            outcome: Outcome::Duplicate,
        }
    }
}

/// The conversation service.
#[derive(Clone)]
pub struct Conversations {
    /// Store, clock, keys, metrics, outbox wake-up.
    pub deps: Deps,
    /// The flows in force, and the versions live sessions began on (a
    /// reload swaps them; each message reads them once).
    pub flows: Live<FlowVersions>,
    /// Caller limits.
    pub limits: Limits,
    /// Jobs for new cases (none until dispatch is configured).
    pub planner: Option<Arc<dyn CasePlanner>>,
    /// Where cases go when the store fails as they complete.
    pub spool: Option<Arc<Spool>>,
    /// Codes this instance leased, the only ones shown while the store is
    /// down.
    pub codes: Option<Arc<OfflineCodes>>,
    /// The flow an SMS without a keyword is helped towards (its
    /// `messages.sms_help` and keywords), normally the default flow.
    pub default_flow: String,
    /// The channel her SMS go out on, by the channel she wrote on, where
    /// that one cannot send (no sending credentials: a channel that only
    /// receives): `dispatch.sms_channel`, as for her confirmation. A
    /// channel not in it sends on itself.
    pub sms_out: Arc<std::collections::HashMap<String, String>>,
    /// Callers over their rate limit: who was told by SMS lately, and the
    /// limit on the log line ([`limited`]).
    pub limited: Arc<limited::Limited>,
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations")
            .field("deps", &self.deps)
            .finish_non_exhaustive()
    }
}

/// Everything one inbound message needs.
struct Hop<'a> {
    channel: &'a str,
    from: &'a PhoneNumber,
    pseudonym: Pseudonym,
    bucket: u16,
    caller: Caller,
    session_key: String,
    dedupe_key: String,
    dedupe_scope: Option<String>,
    dedupe_ttl_ms: u64,
    incoming: Incoming<'a>,
    /// The flow a new USSD session starts.
    flow: Option<Arc<Flow>>,
    /// The flows as they were when the message came in.
    flows: Arc<FlowVersions>,
}

impl Hop<'_> {
    fn is_sms(&self) -> bool {
        matches!(self.incoming, Incoming::Sms(_))
    }
}

/// A commit ready for round trip two, and what to report once it is stored.
struct Prepared {
    commit: CommitRequest,
    done: Option<Done>,
}

/// The flow step a commit stores.
struct Done {
    flow: Arc<Flow>,
    step: Step,
    lang: String,
    /// The case it opens, with its city (for the spool when the store fails).
    case: Option<(NewCase, String)>,
}

impl Conversations {
    /// The calm last screen (`messages.unavailable`) in `lang`, else her
    /// country's language, with her country's fallback number.
    fn unavailable(
        &self,
        flow: Option<&Flow>,
        lang: Option<&str>,
        country: Option<&Country>,
        outcome: Outcome,
    ) -> Answer {
        let text = flow.map_or_else(
            || "Service unavailable.".to_owned(),
            |f| {
                let lang = lang.unwrap_or_else(|| f.default_language(country));
                f.text(&f.spec.messages.unavailable, lang, country)
            },
        );
        Answer {
            text,
            end: true,
            outcome,
        }
    }

    /// A screen as the reply cache keeps it: sealed, so a store dump does
    /// not show which path she took (the case code stays beside it, in
    /// clear, for the store's scripts). A store whose data never leaves
    /// the process keeps it as it is ([`crate::store::Store::in_process`]).
    fn seal_reply(&self, text: String) -> String {
        use base64::Engine as _;
        if text.is_empty() {
            return text;
        }
        if self.deps.store.in_process() && !text.starts_with(SEALED_REPLY) {
            return text;
        }
        let sealed = self.deps.privacy.seal(text.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(sealed);
        format!("{SEALED_REPLY}{b64}")
    }

    /// A cached reply with its text opened (an unreadable one comes back
    /// empty: a retry then shows an empty screen rather than a wrong one).
    fn open_reply(&self, mut reply: CachedReply) -> CachedReply {
        use base64::Engine as _;
        let Some(b64) = reply.text.strip_prefix(SEALED_REPLY) else {
            return reply;
        };
        let opened = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64)
            .ok()
            .and_then(|b| self.deps.privacy.open(&b).ok())
            .and_then(|p| String::from_utf8(p).ok());
        if opened.is_none() {
            tracing::warn!("a cached reply could not be opened (wrong HOTLINE_PII_KEY?)");
        }
        reply.text = opened.unwrap_or_default();
        reply
    }

    fn dedupe_ttl_ms(&self) -> u64 {
        u64::try_from(self.limits.dedupe_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Handle one USSD hop on `channel`, whose sessions start `flow_id`.
    pub async fn ussd(&self, channel: &str, flow_id: &str, req: UssdIn) -> Answer {
        let flows = self.flows.get();
        let Some(flow) = flows.get(flow_id).cloned() else {
            tracing::error!(
                channel,
                flow = flow_id,
                "channel names a flow that is not loaded"
            );
            return self.unavailable(None, None, None, Outcome::Error);
        };
        let pseudonym = self.deps.privacy.pseudonym(req.from.as_str());
        let session_key = keys::ussd_session(channel, &req.session_id, pseudonym.as_str());
        let (incoming, dedupe_key, ttl) = match &req.input {
            UssdInput::Cumulative(text) => (
                Incoming::Cumulative(text),
                keys::ussd_cumulative_delivery(&session_key, plan::step_count(text)),
                self.dedupe_ttl_ms(),
            ),
            // The operator's hop id names a retry however late it comes;
            // without one, the same answer within a few seconds is one.
            UssdInput::Latest { text, first } => match &req.hop_id {
                Some(id) => (
                    Incoming::Latest {
                        text,
                        first: *first,
                    },
                    keys::ussd_hop_delivery(&session_key, &plan::short_hash(id)),
                    self.dedupe_ttl_ms(),
                ),
                None => (
                    Incoming::Latest {
                        text,
                        first: *first,
                    },
                    keys::ussd_latest_delivery(&session_key, *first, &plan::short_hash(text)),
                    LATEST_DEDUPE_WINDOW_MS,
                ),
            },
        };
        let hop = Hop {
            channel,
            from: &req.from,
            bucket: pseudonym.bucket(BUCKETS),
            pseudonym,
            caller: Caller {
                country: req.from.country(),
            },
            session_key,
            dedupe_key,
            dedupe_scope: None,
            dedupe_ttl_ms: ttl,
            incoming,
            flow: Some(flow),
            flows,
        };
        self.run(hop).await
    }

    /// Handle one inbound SMS (not from a lawyer) on `channel`.
    pub async fn sms(&self, channel: &str, msg: &SmsIn) -> Answer {
        let pseudonym = self.deps.privacy.pseudonym(msg.from.as_str());
        let (dedupe_key, scope, ttl) = match &msg.message_id {
            Some(id) => (keys::sms_delivery(channel, id), None, self.dedupe_ttl_ms()),
            None => (
                keys::sms_delivery_by_text(channel, &pseudonym, &plan::short_hash(msg.text.trim())),
                Some(keys::last_sent(&pseudonym)),
                SMS_DEDUPE_WINDOW_MS,
            ),
        };
        let hop = Hop {
            channel,
            from: &msg.from,
            bucket: pseudonym.bucket(BUCKETS),
            session_key: keys::sms_session(channel, &pseudonym),
            pseudonym,
            caller: Caller {
                country: msg.from.country(),
            },
            dedupe_key,
            dedupe_scope: scope,
            dedupe_ttl_ms: ttl,
            incoming: Incoming::Sms(&msg.text),
            flow: None,
            flows: self.flows.get(),
        };
        self.run(hop).await
    }

    /// The SMS help text: the default flow's `messages.sms_help` in the
    /// language of a caller from `country` (her country's first language),
    /// with every flow's keywords.
    pub fn help_text(&self, country: Option<&Country>) -> String {
        let flows = self.flows.get();
        let keywords: Vec<&str> = flows
            .flows
            .values()
            .flat_map(|f| f.spec.keywords.iter().map(String::as_str))
            .collect();
        let list = keywords.join(", ");
        match flows
            .get(&self.default_flow)
            .or_else(|| flows.flows.values().next())
        {
            Some(f) => match &f.spec.messages.sms_help {
                Some(t) => crate::template::render(
                    &f.text(t, f.default_language(country), country),
                    &[("keywords", &list)],
                ),
                None => format!("{list}?"),
            },
            None => list,
        }
    }

    async fn run(&self, hop: Hop<'_>) -> Answer {
        for _attempt in 0..2 {
            let now = self.deps.clock.now_ms();
            let loaded = match self.begin(&hop, now).await {
                Ok(loaded) => loaded,
                Err(answer) => return answer,
            };
            let version = loaded.as_ref().map_or(0, |r| r.version);
            let existing = loaded.as_ref().and_then(|r| self.open_session(r));
            let Some(plan) = plan::plan(
                &hop.flows,
                hop.flow.as_ref(),
                &hop.caller,
                hop.incoming,
                existing,
                now,
            ) else {
                return self.unavailable(None, None, None, Outcome::Error);
            };
            let prepared = match self.prepare(&hop, plan, version, now) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return Answer {
                        text: String::new(),
                        end: true,
                        outcome: Outcome::Ok,
                    };
                }
                Err(e) => {
                    tracing::error!(channel = hop.channel, caller = %hop.pseudonym, error = %e, "session could not be serialised");
                    return self.unavailable(
                        hop.flow.as_deref(),
                        None,
                        hop.caller.country,
                        Outcome::Error,
                    );
                }
            };
            if let Some(answer) = self.store(&hop, prepared, now).await {
                return answer;
            }
        }
        self.unavailable(
            hop.flow.as_deref(),
            None,
            hop.caller.country,
            Outcome::Error,
        )
    }

    /// Round trip one. `Err` is the answer to give without going further.
    async fn begin(&self, hop: &Hop<'_>, now: u64) -> Result<Option<SessionRecord>, Answer> {
        let begin = self
            .deps
            .store
            .begin(BeginRequest {
                bucket: hop.bucket,
                dedupe_key: hop.dedupe_key.clone(),
                rate_key: hop.pseudonym.as_str().to_owned(),
                rate: self.limits.rate,
                session_key: hop.session_key.clone(),
                dedupe_scope: hop.dedupe_scope.clone(),
                now_ms: now,
            })
            .await;
        match begin {
            Ok(Begin::Proceed(rec)) => Ok(rec),
            Ok(Begin::Duplicate(reply)) => {
                tracing::info!(channel = hop.channel, caller = %hop.pseudonym, "retry answered from cache");
                Err(Answer::duplicate(&self.open_reply(reply), hop.is_sms()))
            }
            Ok(Begin::Limited { retry_after_ms }) => {
                if let Some(suppressed) = self.limited.log(hop.channel) {
                    tracing::warn!(channel = hop.channel, caller = %hop.pseudonym, retry_after_ms, suppressed, "caller over the rate limit");
                }
                // Her session was not read (the limit refused her first):
                // the language she chose is her text's first answer, when
                // the text carries every answer so far.
                let lang = match (hop.flow.as_deref(), hop.incoming) {
                    (Some(flow), plan::Incoming::Cumulative(text)) if !text.is_empty() => {
                        let first = text.split('*').next().unwrap_or_default();
                        let started = crate::flow::engine::start(flow, &hop.caller, None, now);
                        crate::flow::engine::advance(flow, started.state, &hop.caller, first, now)
                            .state
                            .lang
                    }
                    _ => None,
                };
                // An SMS names no flow before her session is read: the
                // default flow's text, as her help text is.
                let flow = hop.flow.as_deref().or_else(|| {
                    hop.flows
                        .get(&self.default_flow)
                        .or_else(|| hop.flows.flows.values().next())
                        .map(|f| &**f)
                });
                let mut answer = self.unavailable(
                    flow,
                    lang.as_deref(),
                    hop.caller.country,
                    Outcome::RateLimited,
                );
                if hop.is_sms() && self.limited.tell(hop.pseudonym.as_str(), now) {
                    // No reply carries it on SMS: her fallback number by
                    // SMS, once per window ([`limited`]). Boxed: rare.
                    let text = std::mem::take(&mut answer.text);
                    Box::pin(self.fallback_by_sms(hop, text, now)).await;
                }
                Err(answer)
            }
            Err(e) => {
                self.deps.store_failed("begin", &e);
                // The session cannot be loaded. If a USSD text holds every
                // answer so far, replay it: the menu goes on, and a
                // completed request keeps its case; otherwise end calmly.
                // Boxed: a store outage's path, kept out of the size of
                // every hop's future (which hyper moves, whole, per request).
                if let (Incoming::Cumulative(text), Some(flow)) = (hop.incoming, &hop.flow)
                    && let Some(answer) = Box::pin(self.replay_offline(flow, hop, text, now)).await
                {
                    return Err(answer);
                }
                // In the language her answers chose, where they tell.
                let lang = match (hop.incoming, &hop.flow) {
                    (Incoming::Cumulative(text), Some(flow)) => {
                        Some(plan::cumulative_language(flow, &hop.caller, text, now))
                    }
                    _ => None,
                };
                Err(self.unavailable(
                    hop.flow.as_deref(),
                    lang.as_deref(),
                    hop.caller.country,
                    Outcome::StoreUnavailable,
                ))
            }
        }
    }

    /// Session state as the store keeps it: sealed JSON, or the compact
    /// in-process form ([`codec`]) in a store whose data never leaves the
    /// process.
    fn seal_state(&self, data: &SessionDataRef<'_>) -> Result<Vec<u8>, serde_json::Error> {
        if self.deps.store.in_process() {
            Ok(codec::encode(data))
        } else {
            self.deps.privacy.seal_json(data)
        }
    }

    fn open_session(&self, rec: &SessionRecord) -> Option<SessionData> {
        let opened = if self.deps.store.in_process() {
            codec::decode(&rec.data).map_err(|e| e.to_string())
        } else {
            self.deps
                .privacy
                .open_json(&rec.data)
                .map_err(|e| e.to_string())
        };
        match opened {
            Ok(d) => Some(d),
            Err(e) => {
                // Unreadable (a changed key, an older format): start afresh.
                tracing::warn!(error = %e, "session data unreadable; starting afresh");
                None
            }
        }
    }

    /// The commit for a plan; `None` when there is nothing to store.
    fn prepare(
        &self,
        hop: &Hop<'_>,
        plan: Plan,
        version: u64,
        now: u64,
    ) -> Result<Option<Prepared>, serde_json::Error> {
        // Job ids derive from the delivery and the version it advanced, so
        // a message is queued once however often it is retried.
        let job_key = keys::numbered(&hop.dedupe_key, '@', version);
        let mut commit = CommitRequest {
            bucket: hop.bucket,
            session_key: hop.session_key.clone(),
            expected_version: version,
            session: SessionWrite::Delete,
            dedupe_key: hop.dedupe_key.clone(),
            reply: CachedReply {
                text: String::new(),
                end: true,
                code: None,
            },
            dedupe_ttl_ms: hop.dedupe_ttl_ms,
            dedupe_scope: hop.dedupe_scope.clone(),
            case: None,
            jobs: Vec::new(),
            kv: Vec::new(),
            now_ms: now,
        };
        let done = match plan {
            Plan::Silent => return Ok(None),
            Plan::Stop => {
                commit.kv.push(KvWrite::set(
                    keys::opted_out(&hop.pseudonym),
                    b"1".to_vec(),
                    None,
                ));
                tracing::info!(channel = hop.channel, caller = %hop.pseudonym, "caller opted out");
                None
            }
            Plan::Help => {
                let text = self.help_text(hop.caller.country);
                commit.session = SessionWrite::Save {
                    data: self.seal_state(&SessionData::default().as_ref())?,
                    ttl_ms: HELP_QUIET_MS,
                };
                let job = self.sms_job(hop, &job_key, text.clone(), Purpose::Help, None, now)?;
                commit.jobs.push(job);
                commit.reply.text = text;
                None
            }
            Plan::Step(step) => Some(self.prepare_step(hop, step, &job_key, &mut commit)?),
        };
        Ok(Some(Prepared { commit, done }))
    }

    fn prepare_step(
        &self,
        hop: &Hop<'_>,
        s: FlowStep,
        job_key: &str,
        commit: &mut CommitRequest,
    ) -> Result<Done, serde_json::Error> {
        let is_sms = hop.is_sms();
        if s.started {
            self.deps
                .metrics
                .sessions_started
                .with_label_values(&[s.flow.id()])
                .inc();
            if is_sms {
                // She wrote to us again: messages to her may resume.
                commit
                    .kv
                    .push(KvWrite::delete(keys::opted_out(&hop.pseudonym)));
            }
        }
        // The case's id: the session's key, and its start where the key
        // may name several sessions. An SMS conversation's key is her
        // number's alone; an operator sending only the latest answer may
        // give her an id again (a counter, her number). A cumulative USSD
        // session (Africa's Talking) is replayed from its text during an
        // outage, where its start cannot be read: its key alone names the
        // case, the same on a retry and on the outage path, and its ids
        // must be new for every session (docs/ussd-adapter.md).
        let instance = match hop.incoming {
            Incoming::Cumulative(_) => 0,
            Incoming::Latest { .. } | Incoming::Sms(_) => s.t0,
        };
        let case = self.case_for(&s.step, hop, instance)?;
        if !s.step.end {
            let data = SessionDataRef {
                f: s.flow.id(),
                v: &s.flow.version,
                st: Some(&s.step.state),
                c: s.consumed,
                t0: s.t0,
            };
            let ttl_secs = if is_sms {
                s.flow.spec.sms_session_timeout_secs
            } else {
                s.flow.spec.session_timeout_secs
            };
            commit.session = SessionWrite::Save {
                data: self.seal_state(&data)?,
                ttl_ms: ttl_secs * 1000,
            };
        }
        if is_sms {
            let case_ref = case.as_ref().map(|(c, _)| outbox::CaseRef {
                bucket: hop.bucket,
                id: c.id.clone(),
            });
            let text = s.step.reply.clone();
            let job = self.sms_job(hop, job_key, text, Purpose::Screen, case_ref, commit.now_ms)?;
            commit.jobs.push(job);
        }
        commit.reply = CachedReply {
            text: s.step.reply.clone(),
            end: s.step.end,
            code: None,
        };
        commit.case = case.as_ref().map(|(c, _)| c.clone());
        Ok(Done {
            lang: s.step.state.language(&s.flow, &hop.caller).to_owned(),
            flow: s.flow,
            step: s.step,
            case: case.map(|(c, d)| (c, d.city)),
        })
    }

    /// Round trip two. `None`: the session changed under us; try again.
    async fn store(&self, hop: &Hop<'_>, prepared: Prepared, now: u64) -> Option<Answer> {
        let Prepared { mut commit, done } = prepared;
        let jobs = commit.jobs.clone();
        // A store that faltered may have lost the codes of cases recorded
        // before (another instance's too), and calls them free until the
        // loss is found and the cases are recorded again: her case is kept
        // in the spool, shown a code leased for outages, and recorded from
        // there (`Store::trusted`). An SMS gets its code when it is sent.
        if !hop.is_sms()
            && self.spool.is_some()
            && !self.deps.store.trusted(hop.bucket)
            && let Some(d) = done.as_ref()
            && let Some((case, city)) = &d.case
        {
            let mut case = case.clone();
            case.jobs.extend(jobs.iter().cloned());
            tracing::info!(channel = hop.channel, caller = %hop.pseudonym, "the store faltered and may have lost codes: the case is kept in the spool until its data is known to be whole");
            if let Some(mut answer) = Box::pin(self.spool_case(d, case, city, hop, now)).await {
                // Served as she would be: the store answers.
                answer.outcome = Outcome::Ok;
                return Some(answer);
            }
        }
        commit.reply.text = self.seal_reply(std::mem::take(&mut commit.reply.text));
        match self.deps.store.commit(commit).await {
            Ok(Commit::Saved { code }) => {
                // Kept a while, to record again if the store takes it back.
                if let (Some(spool), Some(code), Some((case, _))) = (
                    &self.spool,
                    &code,
                    done.as_ref().and_then(|d| d.case.as_ref()),
                ) {
                    let mut case = case.clone();
                    case.jobs.extend(jobs);
                    spool.remember(hop.bucket, &case, code, now);
                }
                Some(self.saved(hop, done.as_ref(), code))
            }
            Ok(Commit::Conflict(Some(reply))) => {
                tracing::info!(channel = hop.channel, caller = %hop.pseudonym, "concurrent duplicate lost the race; answering with the winner's reply");
                Some(Answer::duplicate(&self.open_reply(reply), hop.is_sms()))
            }
            Ok(Commit::Conflict(None)) => {
                tracing::info!(channel = hop.channel, caller = %hop.pseudonym, "session changed under this message; retrying once");
                None
            }
            Err(e) => {
                self.deps.store_failed("commit", &e);
                // Only an outage is worth spooling: a replay would meet an
                // exhausted code space again.
                let outage = matches!(e, crate::store::StoreError::Unavailable(_));
                // A menu screen whose write failed (Redis died between the
                // hop's two round trips) on a channel that sends every
                // answer so far: shown all the same, as the outage path
                // shows it; her next hop is replayed from its text (or
                // catches up on the stored session), so the menu goes on
                // instead of ending (hostile-traffic audit: 4–6 sessions
                // in flight were sent away at each Redis kill).
                if outage
                    && matches!(hop.incoming, Incoming::Cumulative(_))
                    && let Some(d) = done.as_ref()
                    && d.case.is_none()
                    && !d.step.end
                {
                    return Some(Answer {
                        text: crate::store::render_reply(&d.step.reply, None),
                        end: false,
                        outcome: Outcome::StoreUnavailable,
                    });
                }
                if let (true, Some(done)) = (outage, done.as_ref())
                    && let Some((case, city)) = &done.case
                {
                    let mut case = case.clone();
                    // Her last SMS screen goes out with the case.
                    case.jobs.extend(jobs);
                    // Boxed, as `replay_offline` above: an outage's path.
                    let spooled = Box::pin(self.spool_case(done, case, city, hop, now)).await;
                    if let Some(mut answer) = spooled {
                        if hop.is_sms() {
                            answer.text.clear();
                        }
                        return Some(answer);
                    }
                }
                if done.as_ref().is_some_and(|d| d.case.is_some()) {
                    self.not_recorded(
                        hop,
                        match e {
                            crate::store::StoreError::CodesExhausted => "codes_exhausted",
                            crate::store::StoreError::Unavailable(_) => "spool_failed",
                            _ => "store_error",
                        },
                    );
                }
                let (flow, lang) = done.map_or((None, None), |d| (Some(d.flow), Some(d.lang)));
                // An outage: the aggregator delivers an SMS again (503).
                // Anything else (every code taken, data it cannot read) a
                // retry would meet again: an error, acknowledged.
                let outcome = if outage {
                    Outcome::StoreUnavailable
                } else {
                    Outcome::Error
                };
                let mut answer = self.unavailable(
                    flow.as_deref(),
                    lang.as_deref(),
                    hop.caller.country,
                    outcome,
                );
                if hop.is_sms() && !outage {
                    // Her fallback number by SMS, as USSD shows it: the
                    // store is up. Boxed: a rare path.
                    let text = std::mem::take(&mut answer.text);
                    Box::pin(self.fallback_by_sms(hop, text, now)).await;
                }
                Some(answer)
            }
        }
    }

    /// Queue `text` (her `messages.unavailable`) to her by SMS, once per
    /// delivery (the job is named after it).
    async fn fallback_by_sms(&self, hop: &Hop<'_>, text: String, now: u64) {
        let key = format!("fallback:{}", hop.dedupe_key);
        let queued = match self.sms_job(hop, &key, text, outbox::Purpose::Screen, None, now) {
            Ok((queue, job)) => self.deps.store.schedule(hop.bucket, queue, vec![job]).await,
            Err(e) => Err(crate::store::StoreError::Corrupt(e.to_string())),
        };
        if let Err(e) = queued {
            tracing::error!(channel = hop.channel, caller = %hop.pseudonym, error = %e, "could not queue her the fallback number");
        }
    }

    /// The answer once round trip two stored the step.
    fn saved(&self, hop: &Hop<'_>, done: Option<&Done>, code: Option<String>) -> Answer {
        self.deps
            .metrics
            .store_up
            .set(i64::from(!self.deps.store.degraded()));
        if let Some(d) = done {
            if let Some(outcome) = d.step.outcome {
                self.deps
                    .metrics
                    .sessions_finished
                    .with_label_values(&[d.flow.id(), outcome.as_str()])
                    .inc();
            }
            if let Some((_, city)) = &d.case {
                self.count_case(hop.channel, &hop.pseudonym, city);
            }
        }
        let end = done.is_none_or(|d| d.step.end);
        tracing::info!(
            channel = hop.channel,
            caller = %hop.pseudonym,
            flow = done.map_or("", |d| d.flow.id()),
            node = done.map_or("", |d| d.step.state.node.as_str()),
            lang = done.map_or("", |d| d.lang.as_str()),
            end,
            sms = hop.is_sms(),
            "hop"
        );
        Answer {
            text: match done {
                Some(d) if !hop.is_sms() => {
                    crate::store::render_reply(&d.step.reply, code.as_deref())
                }
                _ => String::new(),
            },
            end,
            outcome: Outcome::Ok,
        }
    }
}
