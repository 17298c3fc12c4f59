//! The outbox: every message the gateway sends, and the worker that sends
//! them.
//!
//! Nothing is sent from the request path. A message is a [`Job`] in the
//! store's outbox queue, written in the same commit as the state change that
//! caused it (a screen with its session, an offer with its case). The
//! [`worker`] claims due messages under a lease, sends each through its
//! channel within the channel's rate (`governor`), and records the outcome:
//! sent (with the aggregator's id, for delivery reports), retry later
//! (exponential backoff with jitter, honouring `Retry-After`), failed for good,
//! or recipient opted out.
//!
//! Whose failure it is decides what happens ([`health`]): a failure of the
//! *recipient* (her number refused, unroutable, blacklisted) gives the
//! message up at once — for an offer, the lawyer counts as having declined.
//! A failure of the *channel* (no credentials, credentials or sender id
//! refused, no credit, aggregator down or timing out) never does: the
//! message waits and is retried (at most 30 s apart), the channel is marked
//! down (`hotline_channel_up`), and messages of the dispatch SMS channel go
//! through `dispatch.fallback_sms_channel` meanwhile. A message is given up
//! for the channel's failures only once it is older than
//! `outbox.max_age_secs`, or after `outbox.max_attempts` failed attempts
//! while the same channel sent other messages since it was queued.
//!
//! At least once, almost never twice: a sent message is recorded
//! (`sent:<id>`) before its job is finished, so a worker that dies between
//! the two finds the record when the lease expires and does not send again.
//! The one window left — the aggregator accepted but the process died before
//! the record was written — is closed where the aggregator takes an
//! idempotency key (Twilio's `I-Twilio-Idempotency-Token`, Infobip's
//! `messageId`); elsewhere a resend is possible and documented.
//!
//! Payloads are sealed: the recipient's number and the text are never at
//! rest in clear.

pub mod health;
pub mod status;
pub mod worker;

use serde::{Deserialize, Serialize};

use crate::channel::DeliveryState;
use crate::phone::PhoneNumber;
use crate::privacy::{OpenError, Privacy};
use crate::store::{Job, Queue};

/// Why a message is sent (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// A flow screen, by SMS.
    Screen,
    /// The help text for an SMS that started nothing.
    Help,
    /// A case offered to a lawyer.
    Offer,
    /// "Taken by someone else", to lawyers offered a case that was accepted.
    Taken,
    /// The discreet confirmation to the woman.
    Confirm,
    /// The fallback-number message when nobody accepted in time.
    Unanswered,
    /// Anything else to a lawyer or coordinator (status, help, alerts).
    Notice,
}

impl Purpose {
    /// Every purpose, for zeroed metric series.
    pub const ALL: [Purpose; 7] = [
        Purpose::Screen,
        Purpose::Help,
        Purpose::Offer,
        Purpose::Taken,
        Purpose::Confirm,
        Purpose::Unanswered,
        Purpose::Notice,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Screen => "screen",
            Purpose::Help => "help",
            Purpose::Offer => "offer",
            Purpose::Taken => "taken",
            Purpose::Confirm => "confirm",
            Purpose::Unanswered => "unanswered",
            Purpose::Notice => "notice",
        }
    }
}

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum Recipient {
    /// A woman (or her friend): her opt-out is honoured.
    Caller {
        /// Her pseudonym (opt-out flags are keyed by it).
        pseudonym: String,
    },
    /// A lawyer or coordinator from the roster.
    Lawyer {
        /// The roster id.
        id: String,
    },
}

/// Where a message's case lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRef {
    /// The case's bucket.
    pub bucket: u16,
    /// The case id.
    pub id: String,
}

/// One outbound message (sealed inside its job's payload).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMsg {
    /// The channel to send through.
    pub channel: String,
    /// The recipient's number.
    pub to: PhoneNumber,
    /// The text. `{code}` is replaced by the case's code and `{minutes}` by
    /// the minutes since it opened, at send time.
    pub text: String,
    /// Why.
    pub purpose: Purpose,
    /// Who.
    pub recipient: Recipient,
    /// The case it is about.
    #[serde(default)]
    pub case: Option<CaseRef>,
    /// When it was queued (ms), for giving up on stale messages.
    pub created_ms: u64,
    /// When its case opened (ms), for `{minutes}`: with the code the claim
    /// read, the text is filled in without reading the case. Messages
    /// queued before this field existed read the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_opened_ms: Option<u64>,
}

impl std::fmt::Debug for OutMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutMsg")
            .field("channel", &self.channel)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// The job for a message, in `bucket`, due at `due_ms`. `key` makes the job
/// id (and so the message's idempotency key) deterministic: the same key
/// schedules the same message once.
///
/// # Errors
/// The serialiser's, when the message cannot be written (nothing is queued).
pub fn job(
    privacy: &Privacy,
    bucket: u16,
    key: &str,
    msg: &OutMsg,
    due_ms: u64,
) -> Result<(Queue, Job), serde_json::Error> {
    let digest = privacy.pseudonym(&format!("out:{key}"));
    let mut id = format!("{bucket:02}.{}", &digest.as_str()[2..]);
    // A message about a case of this bucket names it in its id: the claim
    // reads the case's code with the job (`store::job_case`).
    if let Some(case) = msg.case.as_ref().filter(|c| c.bucket == bucket) {
        id.push('.');
        id.push_str(&case.id);
    }
    Ok((
        Queue::Outbox,
        Job {
            id,
            due_ms,
            payload: privacy.seal_json(msg)?,
        },
    ))
}

/// Open a message job's payload.
///
/// # Errors
/// [`OpenError`] when it cannot be decrypted (another `HOTLINE_PII_KEY`) or
/// decoded.
pub fn open(privacy: &Privacy, payload: &[u8]) -> Result<OutMsg, OpenError> {
    privacy.open_json(payload)
}

/// The bucket a message id was made in.
pub fn bucket_of(message_id: &str) -> Option<u16> {
    let (b, _) = message_id.split_once('.')?;
    b.parse().ok().filter(|b| *b < crate::store::BUCKETS)
}

/// What the gateway remembers about a message it sent (for delivery
/// reports), kept for a week under `msg:<id>` in the message's bucket,
/// sealed like every other record that links a case to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    /// The channel it went through.
    pub channel: String,
    /// Why it was sent.
    pub purpose: Purpose,
    /// Who it was for.
    pub recipient: Recipient,
    /// The case it was about.
    #[serde(default)]
    pub case: Option<CaseRef>,
    /// The aggregator's id.
    #[serde(default)]
    pub provider_id: Option<String>,
    /// The last delivery state reported.
    pub state: DeliveryState,
}

/// How long sent-message records are kept.
pub const SENT_RECORD_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_deterministic_sealed_and_carry_their_bucket() {
        let p = Privacy::new(b"0123456789abcdef0123456789abcdef");
        let msg = OutMsg {
            channel: "at".into(),
            to: PhoneNumber::parse_international("+996555123456").unwrap(),
            text: "Код {code}".into(),
            purpose: Purpose::Screen,
            recipient: Recipient::Caller {
                pseudonym: "p_1".into(),
            },
            case: None,
            created_ms: 5,
            case_opened_ms: None,
        };
        let (q, a) = job(&p, 7, "k1", &msg, 10).unwrap();
        let (_, b) = job(&p, 7, "k1", &msg, 10).unwrap();
        assert_eq!(q, Queue::Outbox);
        assert_eq!(a.id, b.id, "same key, same id");
        assert_ne!(a.id, job(&p, 7, "k2", &msg, 10).unwrap().1.id);
        assert_eq!(bucket_of(&a.id), Some(7));
        assert!(!String::from_utf8_lossy(&a.payload).contains("555123456"));
        assert_eq!(open(&p, &a.payload).unwrap(), msg);
        assert!(!format!("{msg:?}").contains("Код"));
    }
}
