//! Sending: what an aggregator said to one SMS, classified once for every
//! kind.
//!
//! Each adapter posts the message in its aggregator's format and hands the
//! answer to [`finish`] with its body reader and its [`Rules`]. The reader
//! turns the body into a [`Body`] (accepted, the aggregator's own code for
//! the message, nothing readable); [`classify`] then applies one ladder to
//! the transport error or the HTTP status, `Retry-After` and that body.
//! What differs between aggregators is data: a `Rules` beside each adapter.
//!
//! | answer | outcome |
//! | --- | --- |
//! | no HTTP answer (connect error, timeout, body cut off) | retry: it may or may not have arrived |
//! | 2xx, accepted | sent |
//! | 2xx, a code of the aggregator's | as the kind's code table says; a code not in it: the kind's `other_code` |
//! | 2xx, a body the adapter cannot read | the kind's `unreadable`: retry (a duplicate beats a loss) or sent (a resend could only send twice) |
//! | 2xx, naming no message | permanent, the channel's |
//! | 408, 429, 5xx | retry, after `Retry-After` when given |
//! | 600 and above (not HTTP) | permanent, the channel's |
//! | another status with a code in the kind's table | as the table says |
//! | another status (401 and 403 among them) | permanent, the channel's |
//!
//! # Whose failure
//!
//! A permanent failure names whose it is ([`Fault`]). The **recipient's**:
//! the number itself cannot be reached, and another channel would fail too.
//! The **channel's**: this channel cannot send (credentials, balance, sender
//! id, configuration), and another channel might. When unsure it is the
//! channel's: calling a good number unreachable would lose the message.
//!
//! | aggregator | the recipient's | the channel's |
//! | --- | --- | --- |
//! | Africa's Talking | recipient `statusCode` 403 InvalidPhoneNumber, 404 UnsupportedNumberType, 407 CouldNotRoute | 401 RiskHold, 402 InvalidSenderId, 405 InsufficientBalance; HTTP 401/403 and other errors |
//! | Twilio | `code` 21211, 21217 (invalid number), 21612 (not reachable by SMS), 21614 (not a mobile number) | 20003 (authentication) and every other code; HTTP errors without a code |
//! | Kannel | none: smsbox's 4xx answers are about the request or credentials | every refusal |
//! | Infobip | status REJECTED_DESTINATION, REJECTED_INVALID_DESTINATION, REJECTED_PREFIX_MISSING, REJECTED_DND, REJECTED_DESTINATION_NOT_REGISTERED | every other status (REJECTED_NOT_ENOUGH_CREDITS, REJECTED_SENDER, …); HTTP errors |
//! | every kind | | sending not configured (`can_send()` is false) |
//!
//! A recipient who opted out (Africa's Talking 406 UserInBlacklist, Twilio
//! 21610) is neither: [`SendOutcome::OptedOut`] stops all messages to the
//! number.
//!
//! Reasons are codes for logs and metrics (`http 429`, `twilio 21211`,
//! `InvalidPhoneNumber`), never an aggregator's free text: it quotes numbers.

use std::time::Duration;

use crate::phone::PhoneNumber;

/// One SMS to send.
#[derive(Clone, Copy)]
pub struct OutSms<'a> {
    /// Our message id: the idempotency key, also carried in the status
    /// callback URL where the aggregator allows one.
    pub id: &'a str,
    /// The recipient.
    pub to: &'a PhoneNumber,
    /// The text (UTF-8; the adapter picks the encoding the API wants).
    pub text: &'a str,
}

impl std::fmt::Debug for OutSms<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutSms")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What an aggregator said to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted; its id for matching delivery reports, when it gives one.
    Sent {
        /// The aggregator's message id.
        provider_id: Option<String>,
    },
    /// Not now: try again later (after `after`, when the aggregator said).
    Retry {
        /// The aggregator's `Retry-After`, if any.
        after: Option<Duration>,
        /// Why, for logs (status code or error code; no message text).
        reason: String,
    },
    /// Never: do not try again.
    Permanent {
        /// Why, for logs and metrics (a code, never message text).
        reason: String,
        /// Whose failure it is: the number's, or this channel's.
        fault: Fault,
    },
    /// The recipient opted out: stop sending to this number.
    OptedOut,
}

/// Whose a permanent failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The number cannot be reached (invalid, unsupported, blacklisted,
    /// unroutable): another channel would fail too.
    Recipient,
    /// This channel cannot send (credentials, balance, sender id, not
    /// configured): another channel might.
    Channel,
}

impl Fault {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Recipient => "recipient",
            Fault::Channel => "channel",
        }
    }
}

/// The answer when a channel has nothing to send with.
pub fn not_configured() -> SendOutcome {
    SendOutcome::Permanent {
        reason: "sending is not configured for this channel".into(),
        fault: Fault::Channel,
    }
}

/// What an aggregator's own code for a message means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Not now: try again later.
    Retry,
    /// Never: the number cannot be reached.
    Recipient,
    /// Never through this channel.
    Channel,
    /// The recipient opted out.
    OptedOut,
}

/// What to make of a 2xx whose body the adapter cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Send again: whether it was queued is unknown, and a duplicate beats
    /// a loss. `reason` follows `http {status} ` when `with_status`.
    Retry {
        /// The reason for logs.
        reason: &'static str,
        /// Whether the reason starts with the status.
        with_status: bool,
    },
    /// Count it as sent: the status says accepted, and a resend could only
    /// send twice.
    Sent,
}

/// How one aggregator kind differs on the common ladder.
#[derive(Debug)]
pub struct Rules {
    /// Appended to `http 401` / `http 403` to make the reason (what to
    /// check in the settings); empty: the aggregator's code, if any, is the
    /// reason, as for any other status.
    pub auth_hint: &'static str,
    /// A 2xx whose body the adapter cannot read.
    pub unreadable: Unreadable,
    /// The reason when a 2xx names no message at all.
    pub empty: &'static str,
    /// The aggregator's own codes and what they mean.
    pub codes: &'static [(&'static str, Meaning)],
    /// What a code missing from `codes` means in a 2xx (elsewhere the
    /// status decides).
    pub other_code: Meaning,
}

impl Rules {
    fn meaning(&self, code: &str) -> Option<Meaning> {
        self.codes.iter().find(|(c, _)| *c == code).map(|(_, m)| *m)
    }
}

/// What an adapter's reader found in the body of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The message was accepted; the aggregator's id for it, if any.
    Accepted {
        /// The aggregator's message id (already checked with `id_ok`).
        provider_id: Option<String>,
    },
    /// The aggregator's own code for the message (Africa's Talking's
    /// recipient `statusCode`, Twilio's error `code`, Infobip's status
    /// name), looked up in [`Rules::codes`].
    Code {
        /// The code as the table spells it.
        code: String,
        /// How logs name it (a code, never free text).
        reason: String,
    },
    /// An answer that names no message (no recipients).
    Empty,
    /// Nothing the adapter understands (an empty body, an error page).
    Unreadable,
}

/// Why no HTTP answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The request or the body took too long.
    Timeout,
    /// No connection.
    Connect,
    /// Anything else (a connection reset, a body cut off).
    Other,
}

impl Transport {
    /// From the client's error.
    pub fn of(e: &reqwest::Error) -> Transport {
        if e.is_timeout() {
            Transport::Timeout
        } else if e.is_connect() {
            Transport::Connect
        } else {
            Transport::Other
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Transport::Timeout => "timeout",
            Transport::Connect => "connect",
            Transport::Other => "transport",
        }
    }
}

/// Everything classification looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// No HTTP answer: the request may or may not have arrived.
    Transport(Transport),
    /// An HTTP answer.
    Http {
        /// The status code.
        status: u16,
        /// `Retry-After`, when given in seconds.
        retry_after: Option<Duration>,
        /// What the adapter read in the body.
        body: Body,
    },
}

/// Classify an answer by the common ladder and a kind's rules (the
/// module doc has the ladder).
pub fn classify(rules: &Rules, answer: Answer) -> SendOutcome {
    let (status, after, body) = match answer {
        Answer::Transport(t) => {
            return SendOutcome::Retry {
                after: None,
                reason: t.as_str().to_owned(),
            };
        }
        Answer::Http {
            status,
            retry_after,
            body,
        } => (status, retry_after, body),
    };
    if (200..300).contains(&status) {
        return accepted(rules, status, body);
    }
    let (reason, meaning) = match body {
        _ if matches!(status, 401 | 403) && !rules.auth_hint.is_empty() => {
            (format!("http {status}{}", rules.auth_hint), None)
        }
        Body::Code { code, reason } => (reason, rules.meaning(&code)),
        _ => (format!("http {status}"), None),
    };
    match (status, meaning) {
        (408 | 429 | 500..=599, _) => SendOutcome::Retry { after, reason },
        (600.., _) | (_, None) => permanent(reason, Fault::Channel),
        (_, Some(m)) => outcome(m, reason),
    }
}

/// A 2xx: the body decides.
fn accepted(rules: &Rules, status: u16, body: Body) -> SendOutcome {
    match body {
        Body::Accepted { provider_id } => SendOutcome::Sent { provider_id },
        Body::Code { code, reason } => {
            outcome(rules.meaning(&code).unwrap_or(rules.other_code), reason)
        }
        Body::Empty => permanent(rules.empty.to_owned(), Fault::Channel),
        Body::Unreadable => match rules.unreadable {
            Unreadable::Sent => SendOutcome::Sent { provider_id: None },
            Unreadable::Retry {
                reason,
                with_status,
            } => SendOutcome::Retry {
                after: None,
                reason: if with_status {
                    format!("http {status} {reason}")
                } else {
                    reason.to_owned()
                },
            },
        },
    }
}

fn outcome(meaning: Meaning, reason: String) -> SendOutcome {
    match meaning {
        Meaning::Retry => SendOutcome::Retry {
            after: None,
            reason,
        },
        Meaning::Recipient => permanent(reason, Fault::Recipient),
        Meaning::Channel => permanent(reason, Fault::Channel),
        Meaning::OptedOut => SendOutcome::OptedOut,
    }
}

fn permanent(reason: String, fault: Fault) -> SendOutcome {
    SendOutcome::Permanent { reason, fault }
}

/// Finish a send: wait for the answer, let the adapter's `read` look at
/// its body, and [`classify`] it.
pub async fn finish(
    resp: Result<reqwest::Response, reqwest::Error>,
    rules: &Rules,
    read: fn(u16, &[u8]) -> Body,
) -> SendOutcome {
    let answer = match resp {
        Err(e) => Answer::Transport(Transport::of(&e)),
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = retry_after(r.headers());
            match r.bytes().await {
                Ok(body) => Answer::Http {
                    status,
                    retry_after,
                    body: read(status, &body),
                },
                Err(e) => Answer::Transport(Transport::of(&e)),
            }
        }
    };
    classify(rules, answer)
}

/// Read a `Retry-After` header given in seconds.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The HTTP client adapters send with: bounded connect and total timeouts,
/// so a slow aggregator cannot hold a worker forever.
pub fn http_client() -> reqwest::Client {
    http_client_with(Duration::from_secs(15))
}

/// The HTTP client adapters send with, each send bounded by `timeout`
/// (`outbox.send_timeout_ms`).
pub fn http_client_with(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .user_agent(concat!("hotline/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
