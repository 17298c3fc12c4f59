//! The lifecycle's actions as store jobs: messages and timers.
//!
//! Each job's id derives from the case, the action and the case's change
//! counter (`seq`), so the same change stored twice queues each message once.

use super::lifecycle::{Action, Timer};
use super::render::OfferSize;
use super::roster::Lawyer;
use super::{Dispatcher, Effects, TimerJob};
use crate::case::CaseData;
use crate::outbox::{self, CaseRef, OutMsg, Purpose, Recipient};
use crate::store::{Job, Queue};
use crate::template::partial;

/// Jobs under construction for one case change.
struct Batch<'a> {
    d: &'a Dispatcher,
    case: &'a CaseData,
    bucket: u16,
    now: u64,
    jobs: Vec<(Queue, Job)>,
}

impl Batch<'_> {
    fn case_ref(&self) -> Option<CaseRef> {
        Some(CaseRef {
            bucket: self.bucket,
            id: self.case.id.clone(),
        })
    }

    fn message(&mut self, key: String, msg: &OutMsg) -> Result<(), serde_json::Error> {
        let privacy = &self.d.deps.privacy;
        self.jobs
            .push(outbox::job(privacy, self.bucket, &key, msg, self.now)?);
        Ok(())
    }

    fn for_lawyer(
        &mut self,
        key: String,
        channel: &str,
        lawyer: &Lawyer,
        text: String,
        purpose: Purpose,
    ) -> Result<(), serde_json::Error> {
        let mut msg = self
            .d
            .lawyer_msg(channel, lawyer, text, purpose, self.case_ref(), self.now);
        msg.case_opened_ms = Some(self.case.opened_at_ms);
        self.message(key, &msg)
    }

    /// The woman's confirmation or fallback-number message.
    fn for_caller(&mut self, action: &Action) -> Result<bool, serde_json::Error> {
        let case = self.case;
        let Some(caller) = &case.caller else {
            return Ok(false);
        };
        let Some(flow) = self.d.flows.get(&case.flow) else {
            return Ok(false);
        };
        let (text, purpose) = match action {
            Action::Confirm => (flow.spec.messages.confirm.as_ref(), Purpose::Confirm),
            _ => (flow.spec.messages.unanswered.as_ref(), Purpose::Unanswered),
        };
        let Some(text) = text else { return Ok(false) };
        // Her own country's fallback number, in her language.
        let text = flow.text(text, &case.lang, case.country());
        let pseudonym = self.d.deps.privacy.pseudonym(caller.as_str());
        let msg = OutMsg {
            channel: self.d.caller_channel(case),
            to: caller.clone(),
            text,
            purpose,
            recipient: Recipient::Caller {
                pseudonym: pseudonym.as_str().to_owned(),
            },
            case: self.case_ref(),
            created_ms: self.now,
            case_opened_ms: Some(case.opened_at_ms),
        };
        self.message(format!("{}:{}", purpose.as_str(), case.id), &msg)?;
        Ok(true)
    }

    fn timer(&mut self, timer: Timer, due: u64) -> Result<(), serde_json::Error> {
        let payload = serde_json::to_vec(&TimerJob {
            case: self.case.id.clone(),
            timer,
        })?;
        let id = format!("{:02}.t.{}.{}", self.bucket, self.case.id, timer.name());
        self.jobs.push((
            Queue::Timers,
            Job {
                id,
                due_ms: due,
                payload,
            },
        ));
        Ok(())
    }
}

impl Dispatcher {
    pub(super) fn lawyer_msg(
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
            case_opened_ms: None,
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

    /// Turn actions into jobs (messages and timers) for a case in `bucket`
    /// whose `code` is known, as messages name it (with its alias:
    /// [`crate::store::CaseRecord::named_code`]; `None`: a new case, not
    /// stored yet).
    /// `reply_channel` carries replies to the lawyer who sent a command.
    pub(super) fn jobs(
        &self,
        case: &CaseData,
        bucket: u16,
        code: Option<&str>,
        actions: &[Action],
        reply_channel: &str,
        now: u64,
    ) -> Result<(Vec<(Queue, Job)>, Effects), serde_json::Error> {
        let mut b = Batch {
            d: self,
            case,
            bucket,
            now,
            jobs: Vec::new(),
        };
        let mut fx = Effects::default();
        let seq = case.dispatch.seq;
        let sms = self.sms_channel.as_str();
        for action in actions {
            match action {
                Action::Offer(id) => {
                    if let Some(l) = self.roster.lawyer(id.as_str()) {
                        let key = format!("offer:{}:{}:{seq}", case.id, l.id);
                        let minutes = now.saturating_sub(case.opened_at_ms) / 60_000;
                        let size = OfferSize::new(code, minutes);
                        let text = self.offer_text(case, l, size);
                        b.for_lawyer(key, sms, l, text, Purpose::Offer)?;
                    }
                }
                Action::Taken { to, by } | Action::ClosedNotice { to, by } => {
                    if let Some(l) = self.roster.lawyer(to) {
                        let t = self.texts.for_langs(&l.languages);
                        let by_name = self
                            .roster
                            .lawyer(by)
                            .map_or_else(|| by.clone(), |b| b.name.clone());
                        let (template, kind, purpose) = match action {
                            Action::Taken { .. } => (&t.taken, "taken", Purpose::Taken),
                            _ => (&t.closed_notice, "closednotice", Purpose::Notice),
                        };
                        let text = partial(template, &[("name", &by_name)]);
                        let key = format!("{kind}:{}:{to}", case.id);
                        b.for_lawyer(key, sms, l, text, purpose)?;
                    }
                }
                Action::Reply(to, reply) => {
                    if let Some(l) = self.roster.lawyer(to) {
                        let text = self.reply_text(l, reply, case);
                        let key = format!("reply:{}:{to}:{seq}", case.id);
                        b.for_lawyer(key, reply_channel, l, text, Purpose::Notice)?;
                    }
                }
                Action::CoordinatorAlert(id) => {
                    if let Some(l) = self.roster.lawyer(id.as_str()) {
                        let text = self.alert_text(case, l);
                        let key = format!("alert:{}:{seq}", case.id);
                        b.for_lawyer(key, sms, l, text, Purpose::Notice)?;
                    }
                }
                Action::Confirm | Action::Unanswered => {
                    b.for_caller(action)?;
                    // Counted (and paged: HotlineCaseUnanswered) whether or
                    // not she could be sent the fallback number: a flow
                    // without `messages.unanswered`, or a case without her
                    // number, is no less unanswered.
                    fx.unanswered |= matches!(action, Action::Unanswered);
                }
                Action::Timer(timer, due) => b.timer(*timer, *due)?,
                Action::Escalated(kind) => fx.escalated.push(kind.as_str()),
                Action::AcceptedAfter(ms) => fx.accepted_after_ms = Some(*ms),
                Action::Exhausted => fx.exhausted = true,
                Action::Outcomes(ids) => fx.outcomes.extend(ids.iter().cloned()),
            }
        }
        Ok((b.jobs, fx))
    }

    /// The coordinator's "nobody accepted" alert.
    fn alert_text(&self, case: &CaseData, coordinator: &Lawyer) -> String {
        let (t, city, situation) = self.labels(case, coordinator);
        partial(
            &t.unanswered,
            &[
                ("city", &city),
                ("situation", &situation),
                ("callback", case.callback().unwrap_or("")),
            ],
        )
    }
}
