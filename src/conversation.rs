//! Conversations: one inbound message in, one screen out.
//!
//! This is where a USSD hop or an SMS goes after its adapter parsed it:
//! round trip one to the store (dedupe, rate limit, load the session), the
//! pure flow engine, round trip two (save the session; record a case when
//! the flow opened one; queue the SMS screen). Nothing else on this path
//! waits on the store.
//!
//! - USSD: the screen is the HTTP answer. When the store is down or the
//!   caller is over the limit, a calm last screen with the fallback number
//!   (`messages.unavailable`), never an error. A completed request whose
//!   store write failed (or, with a cumulative text, whose session could not
//!   be loaded) is kept in the durable spool and acknowledged.
//! - SMS: a keyword starts its flow; every later SMS from that number is the
//!   next answer; each screen is queued as one SMS in the outbox. A text that
//!   starts nothing gets the help text (once an hour); `STOP` ends the
//!   session and stops messages to the number.
//!
//! Logs carry the caller's pseudonym only; never the number, what she typed,
//! or the screen text.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::case::CaseData;
use crate::channel::{SmsIn, UssdIn, UssdInput};
use crate::clock::Clock;
use crate::config::Limits;
use crate::flow::engine::{self, Caller, Effect, Step};
use crate::flow::{Flow, FlowSet};
use crate::metrics::Metrics;
use crate::outbox::{self, OutMsg, Purpose, Recipient};
use crate::phone::PhoneNumber;
use crate::privacy::{Privacy, Pseudonym};
use crate::spool::Spool;
use crate::store::{
    BUCKETS, Begin, BeginRequest, CachedReply, Commit, CommitRequest, Job, KvWrite, NewCase, Queue,
    SessionRecord, SessionWrite, Store, StoreError, code_candidates,
};

/// How many case codes to offer the store at once.
const CODE_CANDIDATES: usize = 8;
/// How long a number that got the SMS help text is not sent it again.
const HELP_QUIET_MS: u64 = 3600 * 1000;
/// Without an aggregator message id, the same text from the same number
/// within this window, before we sent that number anything, is a retry.
const SMS_DEDUPE_WINDOW_MS: u64 = 10_000;
/// USSD that sends only the latest answer: the same answer in the same
/// session within this window is a retry (nobody reads the next screen and
/// types the same again that fast on a basic phone).
const LATEST_DEDUPE_WINDOW_MS: u64 = 4_000;
/// Words that stop all messages to a number (any case).
pub const STOP_WORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "QUIT",
    "СТОП",
    "ТОКТОТ",
];

/// A session as stored (sealed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SessionData {
    /// Flow id; empty for a "was sent the help text" marker.
    #[serde(default)]
    f: String,
    /// Engine state.
    #[serde(default)]
    st: Option<engine::State>,
    /// Bytes of the aggregator's cumulative text already consumed.
    #[serde(default)]
    c: usize,
    /// When the session started (ms).
    #[serde(default)]
    t0: u64,
}

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
    /// Metric outcome (`ok`, `duplicate`, `rate_limited`, `store_unavailable`, `error`).
    pub outcome: &'static str,
}

/// The conversation service.
#[derive(Clone)]
pub struct Conversations {
    /// Sessions, dedupe, cases.
    pub store: Arc<dyn Store>,
    /// Loaded flows.
    pub flows: Arc<FlowSet>,
    /// Keys for pseudonyms and sealing.
    pub privacy: Privacy,
    /// Metrics.
    pub metrics: Metrics,
    /// Caller limits.
    pub limits: Limits,
    /// Now.
    pub clock: Clock,
    /// Jobs for new cases (none until dispatch is configured).
    pub planner: Option<Arc<dyn CasePlanner>>,
    /// Where cases go when the store fails as they complete.
    pub spool: Option<Arc<Spool>>,
    /// The flow an SMS without a keyword is helped towards (its
    /// `messages.sms_help` and keywords), normally the default flow.
    pub default_flow: String,
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

/// What came in.
#[derive(Debug, Clone, Copy)]
enum Incoming<'a> {
    /// USSD, every answer so far joined with `*`.
    Cumulative(&'a str),
    /// USSD, this screen's answer only.
    Latest { text: &'a str, first: bool },
    /// An SMS.
    Sms(&'a str),
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
}

/// What to do with a message, decided from the loaded session.
enum Plan {
    /// A flow step.
    Step {
        flow: Arc<Flow>,
        step: Step,
        t0: u64,
        consumed: usize,
        started: bool,
    },
    /// SMS that starts nothing: the help text, then quiet for an hour.
    Help(String),
    /// SMS STOP.
    Stop,
    /// Nothing to do (help was sent recently).
    Silent,
}

fn short_hash(text: &str) -> String {
    let h = Sha256::digest(text.as_bytes());
    h[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Steps in an Africa's Talking cumulative text.
fn step_count(text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        text.split('*').count()
    }
}

/// The newest input in a cumulative text, given how much was consumed. Uses
/// the consumed length rather than splitting on `*`, so a `*` typed inside
/// free text stays part of the answer.
fn newest_input(text: &str, consumed: usize) -> &str {
    match text.get(consumed..) {
        Some(rest) if consumed > 0 && !rest.is_empty() => rest.strip_prefix('*').unwrap_or(rest),
        Some(rest) if consumed == 0 => rest,
        _ => text.rsplit('*').next().unwrap_or(""),
    }
}

fn first_word(text: &str) -> String {
    text.split_whitespace().next().unwrap_or("").to_uppercase()
}

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
            outcome: "duplicate",
        }
    }
}

impl Conversations {
    fn unavailable(
        &self,
        flow: Option<&Flow>,
        lang: Option<&str>,
        outcome: &'static str,
    ) -> Answer {
        let text = flow.map_or_else(
            || "Service unavailable.".to_owned(),
            |f| {
                f.text(
                    &f.spec.messages.unavailable,
                    lang.unwrap_or(&f.spec.default_language),
                )
            },
        );
        Answer {
            text,
            end: true,
            outcome,
        }
    }

    fn open(&self, rec: &SessionRecord) -> Option<SessionData> {
        let plain = self.privacy.open(&rec.data).ok()?;
        serde_json::from_slice(&plain).ok()
    }

    fn dedupe_ttl_ms(&self) -> u64 {
        u64::try_from(self.limits.dedupe_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Handle one USSD hop on `channel`, whose sessions start `flow_id`.
    pub async fn ussd(&self, channel: &str, flow_id: &str, req: UssdIn) -> Answer {
        let Some(flow) = self.flows.get(flow_id).cloned() else {
            tracing::error!(
                channel,
                flow = flow_id,
                "channel names a flow that is not loaded"
            );
            return self.unavailable(None, None, "error");
        };
        let pseudonym = self.privacy.pseudonym(req.from.as_str());
        let session_key = format!("u:{channel}:{}", req.session_id);
        let (incoming, dedupe_key, ttl) = match &req.input {
            UssdInput::Cumulative(text) => (
                Incoming::Cumulative(text),
                format!("{session_key}:{}", step_count(text)),
                self.dedupe_ttl_ms(),
            ),
            UssdInput::Latest { text, first } => (
                Incoming::Latest {
                    text,
                    first: *first,
                },
                format!("{session_key}:L{}:{}", u8::from(*first), short_hash(text)),
                LATEST_DEDUPE_WINDOW_MS,
            ),
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
        };
        self.run(hop).await
    }

    /// Handle one inbound SMS (not from a lawyer) on `channel`.
    pub async fn sms(&self, channel: &str, msg: &SmsIn) -> Answer {
        let pseudonym = self.privacy.pseudonym(msg.from.as_str());
        let (dedupe_key, scope, ttl) = match &msg.message_id {
            Some(id) => (format!("s:{channel}:{id}"), None, self.dedupe_ttl_ms()),
            None => (
                format!("s:{channel}:{pseudonym}:{}", short_hash(msg.text.trim())),
                Some(outbox::last_sent_key(pseudonym.as_str())),
                SMS_DEDUPE_WINDOW_MS,
            ),
        };
        let hop = Hop {
            channel,
            from: &msg.from,
            bucket: pseudonym.bucket(BUCKETS),
            session_key: format!("m:{channel}:{pseudonym}"),
            pseudonym,
            caller: Caller {
                country: msg.from.country(),
            },
            dedupe_key,
            dedupe_scope: scope,
            dedupe_ttl_ms: ttl,
            incoming: Incoming::Sms(&msg.text),
            flow: None,
        };
        self.run(hop).await
    }

    /// Decide what a message means given the loaded session.
    fn plan(&self, hop: &Hop<'_>, existing: Option<SessionData>, now: u64) -> Option<Plan> {
        let active = existing
            .as_ref()
            .and_then(|d| Some((self.flows.get(&d.f)?.clone(), d.st.clone()?, d)));
        match hop.incoming {
            Incoming::Cumulative(text) => {
                let flow = hop.flow.clone()?;
                Some(match active {
                    // The same text again after its cached reply was
                    // forgotten: show the current screen again.
                    Some((f, st, d)) if f.id() == flow.id() && d.c > 0 && text.len() <= d.c => {
                        Plan::Step {
                            step: engine::redisplay(&f, &st, &hop.caller),
                            flow: f,
                            t0: d.t0,
                            consumed: text.len(),
                            started: false,
                        }
                    }
                    Some((f, st, d)) if f.id() == flow.id() => Plan::Step {
                        step: engine::step(&f, &st, &hop.caller, newest_input(text, d.c), now),
                        flow: f,
                        t0: d.t0,
                        consumed: text.len(),
                        started: false,
                    },
                    // New session, an unknown session id with stale input
                    // (start afresh), unreadable data, or a renamed flow.
                    _ => Plan::Step {
                        step: engine::start(&flow, &hop.caller, None, now),
                        flow,
                        t0: now,
                        consumed: text.len(),
                        started: true,
                    },
                })
            }
            Incoming::Latest { text, first } => {
                let flow = hop.flow.clone()?;
                Some(match active {
                    Some((f, st, d)) if !first && f.id() == flow.id() => Plan::Step {
                        step: engine::step(&f, &st, &hop.caller, text, now),
                        flow: f,
                        t0: d.t0,
                        consumed: 0,
                        started: false,
                    },
                    _ => Plan::Step {
                        step: engine::start(&flow, &hop.caller, None, now),
                        flow,
                        t0: now,
                        consumed: 0,
                        started: true,
                    },
                })
            }
            Incoming::Sms(text) => {
                let word = first_word(text);
                if STOP_WORDS.contains(&word.as_str()) {
                    return Some(Plan::Stop);
                }
                if let Some(flow) = self.flows.by_keyword(&word) {
                    return Some(Plan::Step {
                        step: engine::start(flow, &hop.caller, None, now),
                        flow: flow.clone(),
                        t0: now,
                        consumed: 0,
                        started: true,
                    });
                }
                let had_session = existing.is_some();
                match active {
                    Some((f, st, d)) => Some(Plan::Step {
                        step: engine::step(&f, &st, &hop.caller, text, now),
                        flow: f,
                        t0: d.t0,
                        consumed: 0,
                        started: false,
                    }),
                    None if had_session => Some(Plan::Silent),
                    None => Some(Plan::Help(self.help_text())),
                }
            }
        }
    }

    /// The SMS help text: the default flow's `messages.sms_help` with every
    /// flow's keywords.
    pub fn help_text(&self) -> String {
        let keywords: Vec<&str> = self
            .flows
            .flows
            .values()
            .flat_map(|f| f.spec.keywords.iter().map(String::as_str))
            .collect();
        let list = keywords.join(", ");
        match self
            .flows
            .get(&self.default_flow)
            .or_else(|| self.flows.flows.values().next())
        {
            Some(f) => match &f.spec.messages.sms_help {
                Some(t) => f
                    .text(t, &f.spec.default_language)
                    .replace("{keywords}", &list),
                None => format!("{list}?"),
            },
            None => list,
        }
    }

    async fn run(&self, hop: Hop<'_>) -> Answer {
        let is_sms = matches!(hop.incoming, Incoming::Sms(_));
        for _attempt in 0..2 {
            let now = self.clock.now_ms();
            let begin = self
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
            let loaded = match begin {
                Ok(Begin::Duplicate(reply)) => {
                    tracing::info!(channel = hop.channel, caller = %hop.pseudonym, "retry answered from cache");
                    return Answer::duplicate(&reply, is_sms);
                }
                Ok(Begin::Limited { retry_after_ms }) => {
                    tracing::warn!(channel = hop.channel, caller = %hop.pseudonym, retry_after_ms, "caller over the rate limit");
                    return self.unavailable(hop.flow.as_deref(), None, "rate_limited");
                }
                Ok(Begin::Proceed(rec)) => rec,
                Err(e) => {
                    self.store_failed("begin", &e);
                    // The session cannot be loaded. If a USSD text holds
                    // every answer of a completed request, replay it and
                    // keep the case; otherwise end calmly.
                    if let (Incoming::Cumulative(text), Some(flow)) = (hop.incoming, &hop.flow)
                        && let Some(answer) = self.replay_offline(flow, &hop, text, now).await
                    {
                        return answer;
                    }
                    return self.unavailable(hop.flow.as_deref(), None, "store_unavailable");
                }
            };
            let version = loaded.as_ref().map_or(0, |r| r.version);
            let existing = loaded.as_ref().and_then(|r| self.open(r));
            // Job ids derive from the delivery and the version it advanced,
            // so a message is queued once however often it is retried.
            let dedupe_key = hop.dedupe_key.clone();
            let job_key = format!("{dedupe_key}@{version}");
            let Some(plan) = self.plan(&hop, existing, now) else {
                return self.unavailable(None, None, "error");
            };
            let mut commit = CommitRequest {
                bucket: hop.bucket,
                session_key: hop.session_key.clone(),
                expected_version: version,
                session: SessionWrite::Delete,
                dedupe_key: dedupe_key.clone(),
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
            let mut finished = None;
            let mut case_city = None;
            let mut lang = None;
            let mut step_for_spool = None;
            let mut flow_for_metrics = None;
            match plan {
                Plan::Silent => {
                    return Answer {
                        text: String::new(),
                        end: true,
                        outcome: "ok",
                    };
                }
                Plan::Stop => {
                    commit.kv.push(KvWrite {
                        key: format!("o:{}", hop.pseudonym),
                        value: Some(b"1".to_vec()),
                        ttl_ms: None,
                    });
                    tracing::info!(channel = hop.channel, caller = %hop.pseudonym, "caller opted out");
                }
                Plan::Help(text) => {
                    commit.session = SessionWrite::Save {
                        data: self
                            .privacy
                            .seal(&serde_json::to_vec(&SessionData::default()).unwrap_or_default()),
                        ttl_ms: HELP_QUIET_MS,
                    };
                    commit.jobs.push(self.sms_job(
                        &hop,
                        &job_key,
                        text.clone(),
                        Purpose::Help,
                        None,
                        now,
                    ));
                    commit.reply.text = text;
                }
                Plan::Step {
                    flow,
                    step,
                    t0,
                    consumed,
                    started,
                } => {
                    if started {
                        self.metrics
                            .sessions_started
                            .with_label_values(&[flow.id()])
                            .inc();
                        if is_sms {
                            // She wrote to us again: messages to her may resume.
                            commit.kv.push(KvWrite {
                                key: format!("o:{}", hop.pseudonym),
                                value: None,
                                ttl_ms: None,
                            });
                        }
                    }
                    lang = Some(step.state.language(&flow).to_owned());
                    let case = self.case_for(&step, &hop);
                    if !step.end {
                        let data = SessionData {
                            f: flow.id().to_owned(),
                            st: Some(step.state.clone()),
                            c: consumed,
                            t0,
                        };
                        let ttl_secs = if is_sms {
                            flow.spec.sms_session_timeout_secs
                        } else {
                            flow.spec.session_timeout_secs
                        };
                        commit.session = SessionWrite::Save {
                            data: self
                                .privacy
                                .seal(&serde_json::to_vec(&data).unwrap_or_default()),
                            ttl_ms: ttl_secs * 1000,
                        };
                    }
                    if is_sms {
                        let case_ref = case.as_ref().map(|(c, _)| outbox::CaseRef {
                            bucket: hop.bucket,
                            id: c.id.clone(),
                        });
                        commit.jobs.push(self.sms_job(
                            &hop,
                            &job_key,
                            step.reply.clone(),
                            Purpose::Screen,
                            case_ref,
                            now,
                        ));
                    }
                    commit.reply = CachedReply {
                        text: step.reply.clone(),
                        end: step.end,
                        code: None,
                    };
                    case_city = case.as_ref().map(|(_, d)| d.city.clone());
                    commit.case = case.map(|(c, _)| c);
                    finished = step.outcome;
                    step_for_spool = Some(step);
                    flow_for_metrics = Some(flow);
                }
            }
            let spare = commit.case.clone();
            let spare_jobs = commit.jobs.clone();
            match self.store.commit(commit).await {
                Ok(Commit::Saved { code }) => {
                    self.metrics.store_up.set(1);
                    if let (Some(outcome), Some(flow)) = (finished, &flow_for_metrics) {
                        self.metrics
                            .sessions_finished
                            .with_label_values(&[flow.id(), outcome.as_str()])
                            .inc();
                    }
                    if let Some(city) = &case_city {
                        self.count_case(hop.channel, &hop.pseudonym, city);
                    }
                    let (text, end) = step_for_spool
                        .as_ref()
                        .map_or((String::new(), true), |s| (s.reply.clone(), s.end));
                    tracing::info!(
                        channel = hop.channel,
                        caller = %hop.pseudonym,
                        flow = flow_for_metrics.as_ref().map_or("", |f| f.id()),
                        node = step_for_spool.as_ref().map_or("", |s| s.state.node.as_str()),
                        lang = lang.as_deref().unwrap_or(""),
                        end,
                        sms = is_sms,
                        "hop"
                    );
                    let reply = CachedReply { text, end, code };
                    return Answer {
                        text: if is_sms {
                            String::new()
                        } else {
                            reply.render()
                        },
                        end,
                        outcome: "ok",
                    };
                }
                Ok(Commit::Conflict(Some(reply))) => {
                    tracing::info!(channel = hop.channel, caller = %hop.pseudonym, "concurrent duplicate lost the race; answering with the winner's reply");
                    return Answer::duplicate(&reply, is_sms);
                }
                Ok(Commit::Conflict(None)) => {
                    tracing::info!(channel = hop.channel, caller = %hop.pseudonym, "session changed under this message; retrying once");
                }
                Err(e) => {
                    self.store_failed("commit", &e);
                    // Only an outage is worth spooling: a replay would meet
                    // an exhausted code space again.
                    if let (
                        Some(mut case),
                        Some(city),
                        Some(step),
                        Some(flow),
                        StoreError::Unavailable(_),
                    ) = (spare, &case_city, &step_for_spool, &flow_for_metrics, &e)
                    {
                        // Her last SMS screen goes out with the case.
                        case.jobs.extend(spare_jobs);
                        if let Some(mut answer) =
                            self.spool_case(flow, step, case, city, &hop, now).await
                        {
                            if is_sms {
                                answer.text.clear();
                            }
                            return answer;
                        }
                    }
                    return self.unavailable(
                        flow_for_metrics.as_deref(),
                        lang.as_deref(),
                        "store_unavailable",
                    );
                }
            }
        }
        self.unavailable(hop.flow.as_deref(), None, "error")
    }

    fn sms_job(
        &self,
        hop: &Hop<'_>,
        key: &str,
        text: String,
        purpose: Purpose,
        case: Option<outbox::CaseRef>,
        now: u64,
    ) -> (Queue, Job) {
        let msg = OutMsg {
            channel: hop.channel.to_owned(),
            to: hop.from.clone(),
            text,
            purpose,
            recipient: Recipient::Caller {
                pseudonym: hop.pseudonym.as_str().to_owned(),
            },
            case,
            created_ms: now,
        };
        outbox::job(&self.privacy, hop.bucket, key, &msg, now)
    }

    fn count_case(&self, channel: &str, pseudonym: &Pseudonym, city: &str) {
        let label = if self.flows.cities().contains(city) {
            city
        } else {
            "other"
        };
        self.metrics.cases_opened.with_label_values(&[label]).inc();
        tracing::info!(channel, caller = %pseudonym, city = label, "case opened");
    }

    /// Keep a completed case in the local spool when the store failed; the
    /// caller is then shown the flow's last screen with the case's code.
    async fn spool_case(
        &self,
        flow: &Flow,
        step: &Step,
        case: NewCase,
        city: &str,
        hop: &Hop<'_>,
        now: u64,
    ) -> Option<Answer> {
        let spool = self.spool.as_ref()?;
        let code = case.code_candidates.first()?.clone();
        if let Err(e) = spool.append(hop.bucket, &case, now).await {
            tracing::error!(channel = hop.channel, caller = %hop.pseudonym, error = %e, "could not spool a completed case");
            return None;
        }
        self.metrics.cases_spooled.inc();
        self.metrics.spool_pending.set(spool.pending() as i64);
        self.count_case(hop.channel, &hop.pseudonym, city);
        if let Some(outcome) = step.outcome {
            self.metrics
                .sessions_finished
                .with_label_values(&[flow.id(), outcome.as_str()])
                .inc();
        }
        tracing::warn!(channel = hop.channel, caller = %hop.pseudonym, "store unavailable: completed case kept in the local spool");
        Some(Answer {
            text: step.reply.replace("{code}", &code),
            end: true,
            outcome: "store_unavailable",
        })
    }

    /// With the store down, replay a cumulative USSD text from the start. If
    /// every answer is accepted and the last one completes the flow, the case
    /// is spooled and the caller sees the last screen; otherwise `None`.
    async fn replay_offline(
        &self,
        flow: &Flow,
        hop: &Hop<'_>,
        text: &str,
        now: u64,
    ) -> Option<Answer> {
        if text.is_empty() {
            return None;
        }
        let inputs: Vec<&str> = text.split('*').collect();
        let mut step = engine::start(flow, &hop.caller, None, now);
        for (i, input) in inputs.iter().enumerate() {
            let before = step.state.steps;
            step = engine::step(flow, &step.state, &hop.caller, input, now);
            let advanced = step.state.steps == before + 1;
            if !advanced || (step.end && i + 1 != inputs.len()) {
                return None;
            }
        }
        if !step.end {
            return None;
        }
        let (case, data) = self.case_for(&step, hop)?;
        self.spool_case(flow, &step, case, &data.city, hop, now)
            .await
    }

    fn store_failed(&self, op: &str, e: &StoreError) {
        self.metrics.store_errors.with_label_values(&[op]).inc();
        if matches!(e, StoreError::Unavailable(_)) {
            self.metrics.store_up.set(0);
        }
        tracing::error!(op, error = %e, "store operation failed");
    }

    fn case_for(&self, step: &Step, hop: &Hop<'_>) -> Option<(NewCase, CaseData)> {
        let Effect::OpenCase(draft) = step.effects.first()?.clone();
        let id = self.privacy.case_id(&hop.session_key);
        let mut data = CaseData::from_draft(id.clone(), hop.channel, hop.from.clone(), draft);
        let jobs = self
            .planner
            .as_ref()
            .map(|p| p.plan(&mut data, hop.bucket))
            .unwrap_or_default();
        let sealed = self
            .privacy
            .seal(&serde_json::to_vec(&data).unwrap_or_default());
        Some((
            NewCase {
                id,
                code_candidates: code_candidates(hop.bucket, &data.id, CODE_CANDIDATES),
                data: sealed,
                jobs,
            },
            data,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_newest_input_from_cumulative_text() {
        assert_eq!(step_count(""), 0);
        assert_eq!(step_count("1"), 1);
        assert_eq!(step_count("1*2*Station 5"), 3);
        assert_eq!(newest_input("", 0), "");
        assert_eq!(newest_input("1", 0), "1");
        assert_eq!(newest_input("1*2", 1), "2");
        assert_eq!(
            newest_input("1*2*Street *5", 3),
            "Street *5",
            "a typed * stays in the answer"
        );
        assert_eq!(
            newest_input("1*2", 9),
            "2",
            "inconsistent lengths fall back to the last field"
        );
    }

    #[test]
    fn stop_and_keywords_are_the_first_word_in_any_case() {
        assert_eq!(first_word("  stop please"), "STOP");
        assert_eq!(first_word("помощь"), "ПОМОЩЬ");
        assert_eq!(first_word(""), "");
        assert!(STOP_WORDS.contains(&first_word("Стоп").as_str()));
    }
}
