//! What a hop writes besides its session: the SMS it queues and the case
//! it opens (sealed, with its first dispatch jobs and code candidates).

use super::{Conversations, Hop};
use crate::case::CaseData;
use crate::flow::engine::{Effect, Step};
use crate::outbox::{self, OutMsg, Purpose, Recipient};
use crate::privacy::Pseudonym;
use crate::store::{CODE_CANDIDATES, Job, NewCase, Queue, code_candidates};

impl Conversations {
    pub(super) fn sms_job(
        &self,
        hop: &Hop<'_>,
        key: &str,
        text: String,
        purpose: Purpose,
        case: Option<outbox::CaseRef>,
        now: u64,
    ) -> Result<(Queue, Job), serde_json::Error> {
        // A channel that only receives would hold her screens for good.
        let channel = self
            .sms_out
            .get(hop.channel)
            .map_or(hop.channel, String::as_str);
        let msg = OutMsg {
            channel: channel.to_owned(),
            to: hop.from.clone(),
            text,
            purpose,
            recipient: Recipient::Caller {
                pseudonym: hop.pseudonym.as_str().to_owned(),
            },
            case,
            created_ms: now,
            case_opened_ms: None,
        };
        outbox::job(&self.deps.privacy, hop.bucket, key, &msg, now)
    }

    /// A request that completed its flow but left no case: she is given
    /// the fallback number (`messages.unavailable`: her last USSD screen, or
    /// an SMS; by SMS during an outage the aggregator delivers her message
    /// again), never a code, and the operator is told (`hotline_cases_not_recorded_total`, alert
    /// `HotlineCasesNotRecorded`). `reason` is one of
    /// [`crate::metrics::NOT_RECORDED_REASONS`].
    pub(super) fn not_recorded(&self, hop: &Hop<'_>, reason: &'static str) {
        self.deps
            .metrics
            .cases_not_recorded
            .with_label_values(&[reason])
            .inc();
        tracing::error!(
            channel = hop.channel,
            caller = %hop.pseudonym,
            reason,
            "a completed request left no case: she is given the fallback number, not a code"
        );
    }

    pub(super) fn count_case(&self, channel: &str, pseudonym: &Pseudonym, city: &str) {
        let label = if self.flows.get().cities().contains(city) {
            city
        } else {
            "other"
        };
        self.deps
            .metrics
            .cases_opened
            .with_label_values(&[label])
            .inc();
        tracing::info!(channel, caller = %pseudonym, city = label, "case opened");
    }

    /// The case `step` opens, if any, for the session started at `t0`
    /// ([`crate::privacy::Privacy::case_id`]'s instance).
    pub(super) fn case_for(
        &self,
        step: &Step,
        hop: &Hop<'_>,
        t0: u64,
    ) -> Result<Option<(NewCase, CaseData)>, serde_json::Error> {
        let Some(Effect::OpenCase(draft)) = step.effects.first().cloned() else {
            return Ok(None);
        };
        let privacy = &self.deps.privacy;
        let id = privacy.case_id(&hop.session_key, t0);
        let mut data = CaseData::from_draft(id.clone(), hop.channel, hop.from.clone(), draft);
        let jobs = self
            .planner
            .as_ref()
            .map(|p| p.plan(&mut data, hop.bucket))
            .unwrap_or_default();
        let sealed = privacy.seal_json(&data)?;
        let mut codes = code_candidates(hop.bucket, &data.id, CODE_CANDIDATES);
        if let Some(spool) = &self.spool {
            // Not a code of a case Redis may have taken back (src/spool).
            spool.spare_codes(&id, &mut codes);
        }
        Ok(Some((
            NewCase {
                id,
                code_candidates: codes,
                data: sealed,
                jobs,
            },
            data,
        )))
    }
}
