//! Completing a request while the store is down.
//!
//! A woman who reached the last screen must not lose her request because
//! the store failed at that moment: her case goes into the durable local
//! [`Spool`](crate::spool::Spool). On USSD she is shown the flow's last
//! screen with a code this instance leased for outages
//! ([`crate::codes::OfflineCodes`]) — written into the spool entry, and the
//! code her case gets on replay. With no leased code ready she is shown
//! `messages.received` (received, no code, the fallback number; the
//! flow's `unavailable` screen when it has none) instead: no code rather
//! than one that might be another woman's. Her case is kept either way. An
//! SMS screen is queued with the case and gets its code when it is sent.
//! With an Africa's Talking cumulative text, a session whose state cannot be
//! loaded is replayed from its first answer and spooled the same way.

use super::{Answer, Conversations, Done, Hop};
use crate::flow::Flow;
use crate::flow::engine;
use crate::outcome::Outcome;
use crate::spool::Appended;
use crate::store::NewCase;

impl Conversations {
    /// Keep a completed case in the local spool when the store failed; the
    /// caller is then shown the flow's last screen with a leased code, or
    /// `messages.unavailable` when none is ready. `None`: not spooled.
    pub(super) async fn spool_case(
        &self,
        done: &Done,
        case: NewCase,
        city: &str,
        hop: &Hop<'_>,
        now: u64,
    ) -> Option<Answer> {
        let spool = self.spool.as_ref()?;
        // An SMS screen gets its code from the recorded case when sent.
        // Not a code a case recorded again has taken over (its lease is
        // only found gone at the next renewal).
        let lease = match &self.codes {
            Some(codes) if !hop.is_sms() => {
                codes.take_unless(hop.bucket, now, |c| spool.code_taken(c, &case.id))
            }
            _ => None,
        };
        let (shown, new) = match spool.append(hop.bucket, &case, lease.as_ref(), now).await {
            Ok(Appended::Added) => (lease.map(|l| l.code), true),
            Ok(Appended::Already { code }) => {
                // A retry: show what the first attempt showed (and count
                // nothing twice).
                self.give_back(lease);
                (code, false)
            }
            Err(e) => {
                self.give_back(lease);
                tracing::error!(channel = hop.channel, caller = %hop.pseudonym, error = %e, "could not spool a completed case");
                return None;
            }
        };
        let metrics = &self.deps.metrics;
        metrics.spool_pending.set(spool.waiting() as i64);
        if let Some(codes) = &self.codes {
            metrics.offline_codes.set(codes.ready() as i64);
        }
        if new {
            metrics.cases_spooled.inc();
            self.count_case(hop.channel, &hop.pseudonym, city);
            if let Some(outcome) = done.step.outcome {
                metrics
                    .sessions_finished
                    .with_label_values(&[done.flow.id(), outcome.as_str()])
                    .inc();
            }
        }
        tracing::warn!(channel = hop.channel, caller = %hop.pseudonym, code_shown = shown.is_some(), "store unavailable: completed case kept in the local spool");
        Some(match shown {
            Some(code) => Answer {
                text: crate::template::render(&done.step.reply, &[("code", &code)]),
                end: true,
                outcome: Outcome::StoreUnavailable,
            },
            // Kept, so not "we cannot take your request": the flow's
            // `received` screen (no code), where it has one.
            None => match &done.flow.spec.messages.received {
                Some(t) => Answer {
                    text: done.flow.text(t, &done.lang, hop.caller.country),
                    end: true,
                    outcome: Outcome::StoreUnavailable,
                },
                None => self.unavailable(
                    Some(&done.flow),
                    Some(&done.lang),
                    hop.caller.country,
                    Outcome::StoreUnavailable,
                ),
            },
        })
    }

    fn give_back(&self, lease: Option<crate::store::CodeLease>) {
        if let (Some(codes), Some(lease)) = (&self.codes, lease) {
            codes.give_back(lease);
        }
    }

    /// With the store down, replay a cumulative USSD text from the start.
    /// When every answer is accepted: a menu not yet finished shows its
    /// next screen (nothing is stored; her next hop replays the text
    /// again), and the answer that completes the flow spools the case and
    /// shows the last screen. Otherwise (a wrong answer, or a typed `*`
    /// that makes the text ambiguous) `None`: she is shown the fallback.
    /// The next screen of a menu walked while the store is down.
    fn continue_offline(step: &engine::Step) -> Answer {
        Answer {
            text: crate::template::render(&step.reply, &[]),
            end: step.end,
            outcome: Outcome::StoreUnavailable,
        }
    }

    pub(super) async fn replay_offline(
        &self,
        flow: &std::sync::Arc<Flow>,
        hop: &Hop<'_>,
        text: &str,
        now: u64,
    ) -> Option<Answer> {
        if text.is_empty() {
            let step = engine::start(flow, &hop.caller, None, now);
            return Some(Self::continue_offline(&step));
        }
        let step = super::plan::replay_cumulative(flow, &hop.caller, text, now)?;
        if !step.end {
            return Some(Self::continue_offline(&step));
        }
        // USSD: the session's key alone names its case (as online).
        let (case, data) = match self.case_for(&step, hop, 0) {
            Ok(Some(x)) => x,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, "case could not be serialised");
                return None;
            }
        };
        let done = Done {
            lang: step.state.language(flow, &hop.caller).to_owned(),
            flow: flow.clone(),
            step,
            case: None,
        };
        let spooled = self.spool_case(&done, case, &data.city, hop, now).await;
        if spooled.is_none() {
            self.not_recorded(hop, "spool_failed");
        }
        spooled
    }
}
