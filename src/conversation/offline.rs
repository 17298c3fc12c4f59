//! Completing a request while the store is down.
//!
//! A woman who reached the last screen must not lose her request because
//! the store failed at that moment: her case goes into the durable local
//! [`Spool`](crate::spool::Spool) and she is shown the flow's last screen.
//! With an Africa's Talking cumulative text, a session whose state cannot be
//! loaded is replayed from its first answer and spooled the same way.

use super::{Answer, Conversations, Done, Hop};
use crate::flow::Flow;
use crate::flow::engine;
use crate::outcome::Outcome;
use crate::store::NewCase;

impl Conversations {
    /// Keep a completed case in the local spool when the store failed; the
    /// caller is then shown the flow's last screen with the case's code.
    pub(super) async fn spool_case(
        &self,
        done: &Done,
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
        let metrics = &self.deps.metrics;
        metrics.cases_spooled.inc();
        metrics.spool_pending.set(spool.pending() as i64);
        self.count_case(hop.channel, &hop.pseudonym, city);
        if let Some(outcome) = done.step.outcome {
            metrics
                .sessions_finished
                .with_label_values(&[done.flow.id(), outcome.as_str()])
                .inc();
        }
        tracing::warn!(channel = hop.channel, caller = %hop.pseudonym, "store unavailable: completed case kept in the local spool");
        Some(Answer {
            text: crate::template::render(&done.step.reply, &[("code", &code)]),
            end: true,
            outcome: Outcome::StoreUnavailable,
        })
    }

    /// With the store down, replay a cumulative USSD text from the start. If
    /// every answer is accepted and the last one completes the flow, the case
    /// is spooled and the caller sees the last screen; otherwise `None`.
    pub(super) async fn replay_offline(
        &self,
        flow: &std::sync::Arc<Flow>,
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
        let (case, data) = match self.case_for(&step, hop) {
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
        self.spool_case(&done, case, &data.city, hop, now).await
    }
}
