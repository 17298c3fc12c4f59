//! The gateway service: the one layer between HTTP and the domain.
//!
//! The HTTP layer ([`crate::server::public`]) routes, limits, authenticates,
//! parses and renders; everything it hands over is already the project's
//! own types, and everything it gets back is a typed [`Outcome`] (with the
//! screen, for USSD). Here are the decisions in between:
//!
//! - which flow a channel's USSD sessions start;
//! - whether an SMS is a lawyer's command or a woman's message — decided
//!   after the delivery was deduplicated, so a retried webhook never runs a
//!   command twice;
//! - waking the outbox when a request queued something;
//! - applying delivery reports.

use std::collections::HashMap;
use std::sync::Arc;

use crate::channel::{SmsIn, StatusIn, UssdIn};
use crate::conversation::{Answer, Conversations};
use crate::dispatch::roster::Lawyer;
use crate::dispatch::{Begun, CommandOutcome, Dispatcher};
use crate::outbox::worker::Outbox;
pub use crate::outcome::Outcome;
use crate::reload::Live;
use crate::store::{
    CaseBegin, CaseCommandBegin, KvWrite, LawyerBegin, LawyerCommandBegin, RateLimit, code_bucket,
    keys,
};

/// Lawyers' commands are not rate-limited like callers; this only stops a
/// runaway loop between two automatic senders.
const LAWYER_RATE: RateLimit = RateLimit {
    per_minute: 120,
    burst: 30,
};

/// The gateway service.
#[derive(Clone)]
pub struct Gateway {
    conversations: Conversations,
    dispatcher: Option<Live<Dispatcher>>,
    outbox: Arc<Outbox>,
    /// The flow each channel's USSD sessions start, by channel name.
    flows: Arc<HashMap<String, String>>,
    /// The flow for a channel not in `flows`.
    default_flow: String,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// The service over its parts. `flows` maps channel names to the flow
    /// their USSD sessions start; others start `default_flow`.
    pub fn new(
        conversations: Conversations,
        dispatcher: Option<Live<Dispatcher>>,
        outbox: Arc<Outbox>,
        flows: HashMap<String, String>,
        default_flow: String,
    ) -> Self {
        Gateway {
            conversations,
            dispatcher,
            outbox,
            flows: Arc::new(flows),
            default_flow,
        }
    }

    /// The conversation service.
    pub fn conversations(&self) -> &Conversations {
        &self.conversations
    }

    /// One USSD hop on `channel`.
    pub async fn ussd(&self, channel: &str, req: UssdIn) -> Answer {
        let flow = self
            .flows
            .get(channel)
            .map_or(self.default_flow.as_str(), String::as_str);
        let answer = self.conversations.ussd(channel, flow, req).await;
        if answer.end {
            // A last screen may have queued a lawyer's offer: send it now.
            self.conversations.deps.wake.outbox();
        }
        answer
    }

    /// Inbound SMS on `channel`. A message the store cannot take now is
    /// kept in the local inbox (sealed, `fsync`ed; [`crate::spool`]) and
    /// handled once the store answers: the aggregator is told it was
    /// received. [`Outcome::StoreUnavailable`] only when even that failed
    /// (no spool, the disk refused): the aggregator must deliver them again
    /// (its retry is then the only copy).
    pub async fn sms(&self, channel: &str, messages: &[SmsIn]) -> Outcome {
        let mut outcome = Outcome::Ok;
        for msg in messages {
            let mut result = self.handle_sms(channel, msg).await;
            if result == Outcome::StoreUnavailable {
                result = self.keep(channel, msg).await;
            }
            outcome = batch_outcome(outcome, result);
        }
        self.conversations.deps.wake.outbox();
        outcome
    }

    /// Keep a message the store could not take in the local inbox.
    async fn keep(&self, channel: &str, msg: &SmsIn) -> Outcome {
        let deps = &self.conversations.deps;
        let Some(spool) = &self.conversations.spool else {
            return Outcome::StoreUnavailable;
        };
        match spool
            .keep_inbound(&deps.privacy, channel, msg, deps.clock.now_ms())
            .await
        {
            Ok(()) => {
                deps.metrics.sms_kept.with_label_values(&[channel]).inc();
                deps.metrics
                    .inbox_pending
                    .set(i64::try_from(spool.inbox_pending()).unwrap_or(i64::MAX));
                tracing::warn!(
                    channel,
                    "store unavailable: inbound SMS kept in the local inbox, to be handled when it answers"
                );
                Outcome::Ok
            }
            Err(e) => {
                tracing::error!(channel, error = %e, "store unavailable and the inbox could not be written: the aggregator is asked to deliver again");
                Outcome::StoreUnavailable
            }
        }
    }

    /// Inbound SMS kept while the store was down, handled now: like
    /// [`Gateway::sms`], but a message the store still cannot take is not
    /// kept again (`false`: it stays where it is).
    pub async fn sms_kept(&self, channel: &str, msg: &SmsIn) -> bool {
        let outcome = self.handle_sms(channel, msg).await;
        self.conversations.deps.wake.outbox();
        outcome != Outcome::StoreUnavailable
    }

    /// One inbound SMS: a lawyer's command or a woman's message.
    async fn handle_sms(&self, channel: &str, msg: &SmsIn) -> Outcome {
        // The roster as it is now, for this whole message.
        let d = self.dispatcher.as_ref().map(Live::get);
        let lawyer = d
            .as_deref()
            .and_then(|d| Some((d, d.lawyer_for(&msg.from)?)));
        match lawyer {
            // Boxed: a lawyer's command is rare next to women's hops, and
            // would otherwise set the size of every webhook's future
            // (hyper moves it whole, per request).
            Some((d, lawyer)) => Box::pin(self.lawyer_sms(d, channel, lawyer, msg)).await,
            None => self.conversations.sms(channel, msg).await.outcome,
        }
    }

    /// A lawyer's command, deduplicated by the aggregator's message id and
    /// rate-limited, in two round trips on one Redis and in the memory
    /// store. Round trip one: the delivery's mark, her rate and what the
    /// command acts on — with a code (`OK 4821`), the code's case, in the
    /// code's bucket ([`crate::store::Store::begin_case_command`]);
    /// without (`OK`, `DONE`, `STATUS`, `OFF`), her `ON`/`OFF` flag and
    /// her case index with its cases, beside the index
    /// ([`crate::store::Store::begin_lawyer_command`]; on a Redis Cluster
    /// her cases are read apart). Round trip two: the case change with the
    /// mark, or her reply. A command whose only effect is its reply writes
    /// its mark in round trip one; one that changes no case (an unknown
    /// code, nothing pending) writes it on its own after.
    ///
    /// A message without an id (a Kannel `get-url` without `id=%I`) has
    /// nothing to recognise a retry by: it gets an id of its own, never
    /// seen again, and takes the same path under the same rate limit.
    async fn lawyer_sms(
        &self,
        d: &Dispatcher,
        channel: &str,
        lawyer: &Lawyer,
        msg: &SmsIn,
    ) -> Outcome {
        let deps = &self.conversations.deps;
        let now = deps.clock.now_ms();
        let id = match &msg.message_id {
            Some(id) => id.clone(),
            None => format!("noid-{now}-{:016x}", rand::random::<u64>()),
        };
        let mark_key = keys::lawyer_delivery(channel, &id);
        let rate_key = deps
            .privacy
            .pseudonym(lawyer.phone.as_str())
            .as_str()
            .to_owned();
        let ttl =
            u64::try_from(self.conversations.limits.dedupe_ttl.as_millis()).unwrap_or(u64::MAX);
        // What round trip one read, where the mark lives (a code's bucket,
        // or global), and whether round trip one wrote it.
        let (begun, mark_bucket, mark_now) = match Dispatcher::case_code(&msg.text) {
            Some(code) => {
                let begin = deps
                    .store
                    .begin_case_command(CaseCommandBegin {
                        mark_key: mark_key.clone(),
                        rate_key,
                        rate: LAWYER_RATE,
                        now_ms: now,
                        code: code.clone(),
                    })
                    .await;
                match begin {
                    Ok(CaseBegin::Proceed(found)) => (
                        Begun::Code(found),
                        Some(code_bucket(&code).unwrap_or(0)),
                        false,
                    ),
                    Ok(CaseBegin::Duplicate) => return Outcome::Duplicate,
                    Ok(CaseBegin::Limited { .. }) => {
                        tracing::warn!(lawyer = %lawyer.id, "a lawyer's command was over her rate limit: not handled");
                        return Outcome::RateLimited;
                    }
                    Err(e) => {
                        deps.store_failed("begin", &e);
                        return Outcome::StoreUnavailable;
                    }
                }
            }
            None => {
                let mark_now = Dispatcher::only_replies(&msg.text);
                let begin = deps
                    .store
                    .begin_lawyer_command(LawyerCommandBegin {
                        mark_key: mark_key.clone(),
                        mark_now,
                        mark_ttl_ms: ttl,
                        rate_key,
                        rate: LAWYER_RATE,
                        index_key: keys::lawyer_cases(lawyer.id.as_str()),
                        flag: Dispatcher::off_flag(lawyer, &msg.text),
                        now_ms: now,
                    })
                    .await;
                match begin {
                    Ok(LawyerBegin::Proceed(index)) => (Begun::Index(index), None, mark_now),
                    Ok(LawyerBegin::Duplicate) => return Outcome::Duplicate,
                    Ok(LawyerBegin::Limited { .. }) => {
                        tracing::warn!(lawyer = %lawyer.id, "a lawyer's command was over her rate limit: not handled");
                        return Outcome::RateLimited;
                    }
                    Err(e) => {
                        deps.store_failed("begin", &e);
                        return Outcome::StoreUnavailable;
                    }
                }
            }
        };
        let mark = KvWrite::set(mark_key.clone(), b"1".to_vec(), Some(ttl));
        let delivery = keys::sms_delivery(channel, &id);
        let (outcome, marked) = d
            .command_with(
                channel,
                lawyer,
                &msg.text,
                &delivery,
                begun,
                Some((mark, mark_bucket.is_none())),
            )
            .await;
        if outcome == CommandOutcome::StoreUnavailable {
            return Outcome::StoreUnavailable;
        }
        if !marked
            && !mark_now
            && let Err(e) = deps
                .store
                .put(mark_bucket, &mark_key, b"1".to_vec(), Some(ttl), now)
                .await
        {
            // The command took effect; only its dedupe mark is missing.
            deps.store_failed("commit", &e);
        }
        Outcome::Ok
    }

    /// Delivery reports on `channel`.
    pub async fn status(&self, channel: &str, reports: Vec<StatusIn>) -> Outcome {
        match self.outbox.on_status(channel, reports).await {
            Ok(()) => Outcome::Ok,
            Err(e) => {
                tracing::warn!(channel, error = %e, "delivery reports not applied");
                Outcome::StoreUnavailable
            }
        }
    }
}

/// A batch's outcome so far, with one more message's: a store failure
/// stays (the aggregator must deliver the batch again: it is the only copy
/// of that message; the others are then answered as duplicates), else the
/// latest that is not `Ok`.
fn batch_outcome(so_far: Outcome, next: Outcome) -> Outcome {
    match (so_far, next) {
        (Outcome::StoreUnavailable, _) => Outcome::StoreUnavailable,
        (so_far, Outcome::Ok) => so_far,
        (_, next) => next,
    }
}

#[cfg(test)]
mod batch_tests {
    use super::{Outcome, batch_outcome};

    #[test]
    fn a_store_failure_in_a_batch_is_not_hidden_by_a_later_message() {
        let fold = |xs: &[Outcome]| xs.iter().fold(Outcome::Ok, |a, b| batch_outcome(a, *b));
        use Outcome::{Duplicate, Ok, RateLimited, StoreUnavailable};
        assert_eq!(fold(&[StoreUnavailable, Duplicate]), StoreUnavailable);
        assert_eq!(fold(&[StoreUnavailable, Ok]), StoreUnavailable);
        assert_eq!(
            fold(&[Ok, Duplicate, StoreUnavailable, RateLimited]),
            StoreUnavailable
        );
        assert_eq!(fold(&[Ok, Duplicate, Ok]), Duplicate);
        assert_eq!(fold(&[Ok, Ok]), Ok);
    }
}
