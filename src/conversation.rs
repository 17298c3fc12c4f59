//! Conversations: one inbound message in, one screen out.
//!
//! This is where a USSD hop goes after its adapter parsed it: round trip one
//! to the store (dedupe, rate limit, load the session), the pure flow engine,
//! round trip two (save the session; record a case when the flow opened
//! one). Nothing else on this path waits on the store.
//!
//! It always produces an answer for the caller: when the store is down or
//! the caller is over the limit, a calm last screen with the fallback number
//! (`messages.unavailable`), never an error.
//!
//! Logs carry the caller's pseudonym only; never the number, what she typed,
//! or the screen text.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::case::CaseData;
use crate::channel::{UssdIn, UssdInput};
use crate::clock::Clock;
use crate::config::Limits;
use crate::flow::engine::{self, Caller, Effect, State, Step};
use crate::flow::{Flow, FlowSet};
use crate::metrics::Metrics;
use crate::privacy::{Privacy, Pseudonym};
use crate::spool::Spool;
use crate::store::{
    BUCKETS, Begin, BeginRequest, CachedReply, Commit, CommitRequest, Job, NewCase, Queue,
    SessionRecord, SessionWrite, Store, StoreError, code_candidates,
};

/// How many case codes to offer the store at once.
const CODE_CANDIDATES: usize = 8;

/// A session as stored (sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionData {
    /// Flow id.
    f: String,
    /// Engine state.
    st: State,
    /// Bytes of the aggregator's cumulative text already consumed.
    #[serde(default)]
    c: usize,
    /// When the session started (ms).
    t0: u64,
}

/// Decides the jobs scheduled with a new case (its first offer and its
/// escalation timer). Lawyer dispatch implements it.
pub trait CasePlanner: Send + Sync {
    /// The jobs to write in the same commit as the case.
    fn plan(&self, case: &CaseData, bucket: u16) -> Vec<(Queue, Job)>;
}

/// What the caller is shown, and how the request is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The screen.
    pub text: String,
    /// Whether the session is over.
    pub end: bool,
    /// Metric outcome (`ok`, `duplicate`, `rate_limited`, `store_unavailable`).
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
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations")
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
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

    /// Handle one USSD hop on `channel`, whose sessions start `flow_id`.
    pub async fn ussd(&self, channel: &str, flow_id: &str, req: UssdIn) -> Answer {
        let flow = self.flows.get(flow_id).cloned();
        let Some(flow) = flow else {
            tracing::error!(
                channel,
                flow = flow_id,
                "channel names a flow that is not loaded"
            );
            return self.unavailable(None, None, "error");
        };
        let UssdInput::Cumulative(text) = &req.input else {
            return self.unavailable(Some(&flow), None, "error");
        };
        let pseudonym = self.privacy.pseudonym(req.from.as_str());
        let bucket = pseudonym.bucket(BUCKETS);
        let session_key = format!("u:{channel}:{}", req.session_id);
        let dedupe_key = format!("{session_key}:{}", step_count(text));
        let caller = Caller {
            country: req.from.country(),
        };

        for _attempt in 0..2 {
            let now = self.clock.now_ms();
            let begin = self
                .store
                .begin(BeginRequest {
                    bucket,
                    dedupe_key: dedupe_key.clone(),
                    rate_key: pseudonym.as_str().to_owned(),
                    rate: self.limits.rate,
                    session_key: session_key.clone(),
                    now_ms: now,
                })
                .await;
            let loaded = match begin {
                Ok(Begin::Duplicate(reply)) => {
                    tracing::info!(channel, caller = %pseudonym, "ussd retry answered from cache");
                    return Answer {
                        text: reply.render(),
                        end: reply.end,
                        outcome: "duplicate",
                    };
                }
                Ok(Begin::Limited { retry_after_ms }) => {
                    tracing::warn!(channel, caller = %pseudonym, retry_after_ms, "caller over the rate limit");
                    return self.unavailable(Some(&flow), None, "rate_limited");
                }
                Ok(Begin::Proceed(rec)) => rec,
                Err(e) => {
                    self.store_failed("begin", &e);
                    // The session cannot be loaded. If the hop's text holds
                    // every answer of a completed request, replay it and
                    // keep the case; otherwise end calmly.
                    if let Some(answer) = self
                        .replay_offline(&flow, &caller, channel, &req, &session_key, bucket, now)
                        .await
                    {
                        return answer;
                    }
                    return self.unavailable(Some(&flow), None, "store_unavailable");
                }
            };
            let version = loaded.as_ref().map_or(0, |r| r.version);
            let existing = loaded.as_ref().and_then(|r| self.open(r));
            let (step, started) = match existing {
                // The same text again after its cached reply was forgotten:
                // show the current screen again, advance nothing.
                Some(data) if data.f == flow.id() && data.c > 0 && text.len() <= data.c => {
                    (engine::redisplay(&flow, &data.st, &caller), data.t0)
                }
                Some(data) if data.f == flow.id() => {
                    let input = newest_input(text, data.c);
                    (engine::step(&flow, &data.st, &caller, input, now), data.t0)
                }
                // New session, an unknown session id with stale input (start
                // afresh), unreadable data, or a flow renamed under it.
                _ => {
                    self.metrics
                        .sessions_started
                        .with_label_values(&[flow.id()])
                        .inc();
                    (engine::start(&flow, &caller, None, now), now)
                }
            };
            let lang = step.state.language(&flow).to_owned();
            let case = self.case_for(&step, channel, &req, &session_key, bucket);
            let session = if step.end {
                SessionWrite::Delete
            } else {
                let data = SessionData {
                    f: flow.id().to_owned(),
                    st: step.state.clone(),
                    c: text.len(),
                    t0: started,
                };
                let plain = serde_json::to_vec(&data).unwrap_or_default();
                SessionWrite::Save {
                    data: self.privacy.seal(&plain),
                    ttl_ms: flow.spec.session_timeout_secs * 1000,
                }
            };
            let city = case.as_ref().map(|(_, data)| data.city.clone());
            let spare = case.as_ref().map(|(c, _)| c.clone());
            let commit = self
                .store
                .commit(CommitRequest {
                    bucket,
                    session_key: session_key.clone(),
                    expected_version: version,
                    session,
                    dedupe_key: dedupe_key.clone(),
                    reply: CachedReply {
                        text: step.reply.clone(),
                        end: step.end,
                        code: None,
                    },
                    dedupe_ttl_ms: u64::try_from(self.limits.dedupe_ttl.as_millis())
                        .unwrap_or(u64::MAX),
                    case: case.map(|(c, _)| c),
                    now_ms: now,
                })
                .await;
            match commit {
                Ok(Commit::Saved { code }) => {
                    self.metrics.store_up.set(1);
                    if let Some(outcome) = step.outcome {
                        self.metrics
                            .sessions_finished
                            .with_label_values(&[flow.id(), outcome.as_str()])
                            .inc();
                    }
                    if let Some(city) = &city {
                        let label = if self.flows.cities().contains(city) {
                            city.as_str()
                        } else {
                            "other"
                        };
                        self.metrics.cases_opened.with_label_values(&[label]).inc();
                        tracing::info!(channel, caller = %pseudonym, city = label, "case opened");
                    }
                    tracing::info!(
                        channel,
                        caller = %pseudonym,
                        flow = flow.id(),
                        node = %step.state.node,
                        lang = %lang,
                        end = step.end,
                        "ussd hop"
                    );
                    let reply = CachedReply {
                        text: step.reply,
                        end: step.end,
                        code,
                    };
                    return Answer {
                        text: reply.render(),
                        end: step.end,
                        outcome: "ok",
                    };
                }
                Ok(Commit::Conflict(Some(reply))) => {
                    tracing::info!(channel, caller = %pseudonym, "concurrent duplicate lost the race; answering with the winner's reply");
                    return Answer {
                        text: reply.render(),
                        end: reply.end,
                        outcome: "duplicate",
                    };
                }
                Ok(Commit::Conflict(None)) => {
                    tracing::info!(channel, caller = %pseudonym, "session changed under this hop; retrying once");
                }
                Err(e) => {
                    self.store_failed("commit", &e);
                    // Only an outage is worth spooling: a replay would meet
                    // an exhausted code space again.
                    if let (Some(case), Some(city), StoreError::Unavailable(_)) = (spare, &city, &e)
                        && let Some(answer) = self
                            .spool_case(&flow, &step, case, city, channel, &pseudonym, bucket, now)
                            .await
                    {
                        return answer;
                    }
                    return self.unavailable(Some(&flow), Some(&lang), "store_unavailable");
                }
            }
        }
        self.unavailable(Some(&flow), None, "error")
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
    #[allow(clippy::too_many_arguments)]
    async fn spool_case(
        &self,
        flow: &Flow,
        step: &Step,
        case: NewCase,
        city: &str,
        channel: &str,
        pseudonym: &Pseudonym,
        bucket: u16,
        now: u64,
    ) -> Option<Answer> {
        let spool = self.spool.as_ref()?;
        let code = case.code_candidates.first()?.clone();
        if let Err(e) = spool.append(bucket, &case, now).await {
            tracing::error!(channel, caller = %pseudonym, error = %e, "could not spool a completed case");
            return None;
        }
        self.metrics.cases_spooled.inc();
        self.metrics.spool_pending.set(spool.pending() as i64);
        self.count_case(channel, pseudonym, city);
        if let Some(outcome) = step.outcome {
            self.metrics
                .sessions_finished
                .with_label_values(&[flow.id(), outcome.as_str()])
                .inc();
        }
        tracing::warn!(channel, caller = %pseudonym, "store unavailable: completed case kept in the local spool");
        Some(Answer {
            text: step.reply.replace("{code}", &code),
            end: true,
            outcome: "store_unavailable",
        })
    }

    /// With the store down, replay a cumulative USSD text from the start. If
    /// every answer is accepted and the last one completes the flow, the case
    /// is spooled and the caller sees the last screen; otherwise `None`.
    #[allow(clippy::too_many_arguments)]
    async fn replay_offline(
        &self,
        flow: &Flow,
        caller: &Caller,
        channel: &str,
        req: &UssdIn,
        session_key: &str,
        bucket: u16,
        now: u64,
    ) -> Option<Answer> {
        let UssdInput::Cumulative(text) = &req.input else {
            return None;
        };
        if text.is_empty() {
            return None;
        }
        let inputs: Vec<&str> = text.split('*').collect();
        let mut step = engine::start(flow, caller, None, now);
        for (i, input) in inputs.iter().enumerate() {
            let before = step.state.steps;
            step = engine::step(flow, &step.state, caller, input, now);
            let advanced = step.state.steps == before + 1;
            if !advanced || (step.end && i + 1 != inputs.len()) {
                return None;
            }
        }
        if !step.end {
            return None;
        }
        let (case, data) = self.case_for(&step, channel, req, session_key, bucket)?;
        let pseudonym = self.privacy.pseudonym(req.from.as_str());
        self.spool_case(
            flow, &step, case, &data.city, channel, &pseudonym, bucket, now,
        )
        .await
    }

    fn store_failed(&self, op: &str, e: &StoreError) {
        self.metrics.store_errors.with_label_values(&[op]).inc();
        if matches!(e, StoreError::Unavailable(_)) {
            self.metrics.store_up.set(0);
        }
        tracing::error!(op, error = %e, "store operation failed");
    }

    fn case_for(
        &self,
        step: &Step,
        channel: &str,
        req: &UssdIn,
        session_key: &str,
        bucket: u16,
    ) -> Option<(NewCase, CaseData)> {
        let Effect::OpenCase(draft) = step.effects.first()?.clone();
        let id = self.privacy.case_id(session_key);
        let data = CaseData::from_draft(id.clone(), channel, req.from.clone(), draft);
        let jobs = self
            .planner
            .as_ref()
            .map(|p| p.plan(&data, bucket))
            .unwrap_or_default();
        let sealed = self
            .privacy
            .seal(&serde_json::to_vec(&data).unwrap_or_default());
        Some((
            NewCase {
                id,
                code_candidates: code_candidates(bucket, &data.id, CODE_CANDIDATES),
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
}
