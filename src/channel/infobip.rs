//! Infobip.
//!
//! - Inbound SMS: a JSON POST `{"results":[{"messageId","from","to","text",
//!   "cleanText","keyword","receivedAt","smsCount","price","callbackData"}],
//!   "messageCount","pendingMessageCount"}`; one [`SmsIn`] per result.
//!   `from` comes without `+` (`996555123456`).
//! - Delivery reports: a JSON POST `{"results":[{"messageId","status":
//!   {"groupName","name",…},"error":{…},…}]}`. `status.groupName` gives the
//!   state: `DELIVERED`; `PENDING`, `ACCEPTED`; `UNDELIVERABLE`, `REJECTED`,
//!   `EXPIRED`. Reports for a message sent with a `notifyUrl` carry our id in
//!   its `m` query parameter.
//! - Sending: `POST {base_url}/sms/2/text/advanced` with
//!   `Authorization: App KEY` and a JSON body with one message to one
//!   destination. Our message id goes along as Infobip's `messageId`, so a
//!   resend after a crash is recognisable. Each message's `status.groupName`
//!   in the answer says accepted or rejected, and its `status.name` whose
//!   failure a rejection is ([`RULES`]).
//!
//! Infobip adds fields without notice: unknown ones are ignored. Infobip
//! signs nothing: requests are authenticated by a secret in the callback URL
//! (`?secret=…`, or the password of HTTP Basic authentication) and/or an IP
//! allow-list ([`SharedSecretAuth`]). USSD is not offered.
//!
//! Settings: `base_url` (required: each Infobip account has its own, like
//! `https://xxxxx.api.infobip.com`), `api_key_env` (needed to send), `from`
//! (sender id), `public_url` (when set, each message asks for delivery
//! reports at [`status_url`]), `tps` (default 10).

use async_trait::async_trait;
use http::Method;
use serde::{Deserialize, Serialize};

use super::send::{self, Body, Meaning, Rules, Unreadable};
use super::settings::{Checks, default_tps, positive, url};
use super::{
    Channel, ChannelError, DeliveryState, Event, OutSms, Request, SendOutcome, SharedSecretAuth,
    SmsIn, StatusIn, id_ok, parse_json, reason_ok, status_url,
};
use crate::config::ChannelKind;
use crate::phone::PhoneNumber;

/// Most results accepted in one webhook request.
pub const MAX_RESULTS: usize = 100;
/// Longest inbound text accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 2048;

/// What sending needs.
#[derive(Clone)]
struct Sender {
    base_url: String,
    api_key: String,
    from: Option<String>,
    /// Where delivery reports should go (the gateway's public base URL).
    public_url: Option<String>,
    /// The channel's shared secret, carried in the report URL.
    secret: Option<String>,
    http: reqwest::Client,
}

/// The Infobip adapter.
pub struct Infobip {
    name: String,
    auth: SharedSecretAuth,
    sender: Option<Sender>,
    tps: u32,
}

impl std::fmt::Debug for Infobip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Infobip")
            .field("name", &self.name)
            .field("can_send", &self.sender.is_some())
            .finish_non_exhaustive()
    }
}

/// The settings of `kind = "infobip"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default, deserialize_with = "url")]
    base_url: Option<String>,
    api_key_env: Option<String>,
    from: Option<String>,
    #[serde(default, deserialize_with = "url")]
    public_url: Option<String>,
    #[serde(default = "default_tps", deserialize_with = "positive")]
    tps: u32,
}

impl Infobip {
    /// From the channel's settings; `None` (with problems in `checks`)
    /// when a required one is missing.
    pub fn new(checks: &mut Checks<'_>, http: reqwest::Client) -> Option<Self> {
        let s: Settings = checks.read()?;
        let cfg = checks.cfg();
        let base_url = checks.required("base_url", s.base_url);
        if let Some(u) = base_url
            .as_deref()
            .filter(|u| reqwest::Url::parse(u).is_err())
        {
            checks.problem("base_url", Some(u), "is not a valid URL");
        }
        let api_key = checks.secret(s.api_key_env.as_deref());
        if let Some(k) = &api_key
            && http::HeaderValue::from_str(&format!("App {k}")).is_err()
        {
            // Never echo the key itself.
            let msg = "the API key has characters an HTTP header cannot carry";
            checks.problem("api_key_env", None, msg);
        }
        let base_url = base_url?;
        let sender = api_key.map(|api_key| Sender {
            base_url,
            api_key,
            from: s.from,
            public_url: s.public_url,
            secret: cfg.secret.clone(),
            http,
        });
        Some(Infobip {
            name: cfg.name.clone(),
            auth: SharedSecretAuth::from_config(cfg),
            sender,
            tps: s.tps,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Inbound {
    results: Vec<InboundResult>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InboundResult {
    message_id: String,
    from: String,
    #[serde(default)]
    to: String,
    text: String,
}

#[derive(Debug, Deserialize)]
struct Reports {
    results: Vec<Report>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    message_id: String,
    status: Status,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    group_name: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Serialize)]
struct SendBody<'a> {
    messages: [SendMessage<'a>; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SendMessage<'a> {
    destinations: [Destination<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_content_type: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Destination<'a> {
    to: &'a str,
    message_id: &'a str,
}

#[derive(Debug, Deserialize)]
struct SendReply {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SentMessage {
    #[serde(default)]
    message_id: Option<String>,
    status: Status,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorReply {
    request_error: RequestError,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestError {
    service_exception: ServiceException,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceException {
    message_id: String,
}

/// Map a status group to our state; `None` for an unknown group.
fn state_of(group_name: &str) -> Option<DeliveryState> {
    match group_name {
        "DELIVERED" => Some(DeliveryState::Delivered),
        "PENDING" | "ACCEPTED" => Some(DeliveryState::Sent),
        "UNDELIVERABLE" | "REJECTED" | "EXPIRED" => Some(DeliveryState::Failed),
        _ => None,
    }
}

/// Refuse a batch larger than [`MAX_RESULTS`] (an empty one is harmless).
fn check_batch<T>(results: &[T]) -> Result<(), ChannelError> {
    if results.len() > MAX_RESULTS {
        return Err(ChannelError::BadRequest(format!(
            "results has more than {MAX_RESULTS} entries"
        )));
    }
    Ok(())
}

/// How Infobip's answers to a send differ on the common ladder.
pub const RULES: Rules = Rules {
    auth_hint: " (check api key)",
    unreadable: Unreadable::Retry {
        reason: "unreadable reply",
        with_status: false,
    },
    empty: "no message accepted",
    codes: &[
        ("REJECTED_DESTINATION", Meaning::Recipient),
        ("REJECTED_INVALID_DESTINATION", Meaning::Recipient),
        ("REJECTED_PREFIX_MISSING", Meaning::Recipient),
        ("REJECTED_DND", Meaning::Recipient),
        ("REJECTED_DESTINATION_NOT_REGISTERED", Meaning::Recipient),
    ],
    // REJECTED_NOT_ENOUGH_CREDITS, REJECTED_SENDER, …: this account's.
    other_code: Meaning::Channel,
};

/// Read Infobip's answer to a send: the message's status, or the code of
/// a request error (`BAD_REQUEST`; its text may quote the request, so it
/// is never used).
fn read(status: u16, body: &[u8]) -> Body {
    let code = |c: String| Body::Code {
        reason: c.clone(),
        code: c,
    };
    if !(200..300).contains(&status) {
        return serde_json::from_slice::<ErrorReply>(body)
            .ok()
            .map(|e| e.request_error.service_exception.message_id)
            .filter(|c| reason_ok(c))
            .map_or(Body::Unreadable, code);
    }
    let Ok(reply) = serde_json::from_slice::<SendReply>(body) else {
        return Body::Unreadable;
    };
    let Some(m) = reply.messages.into_iter().next() else {
        return Body::Empty;
    };
    match state_of(&m.status.group_name) {
        Some(DeliveryState::Failed) => code(
            m.status
                .name
                .filter(|n| reason_ok(n))
                .unwrap_or_else(|| "REJECTED".into()),
        ),
        // Accepted (PENDING, ACCEPTED, or a group this adapter does not
        // know): Infobip holds the message and its reports will follow.
        _ => Body::Accepted {
            provider_id: m.message_id.filter(|id| id_ok(id)),
        },
    }
}

#[async_trait]
impl Channel for Infobip {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Infobip
    }

    fn methods(&self, event: Event) -> Option<&'static [Method]> {
        match event {
            Event::Sms | Event::Status => Some(&[Method::POST]),
            Event::Ussd => None,
        }
    }

    fn authenticate(&self, req: &Request) -> Result<(), ChannelError> {
        self.auth.check(req)
    }

    fn proves_sender(&self) -> bool {
        self.auth.proves_sender()
    }

    fn parse_sms(&self, req: &Request) -> Result<Vec<SmsIn>, ChannelError> {
        let (messages, refused) = self.parse_sms_batch(req)?;
        match refused.into_iter().next() {
            Some(reason) => Err(ChannelError::BadRequest(reason)),
            None => Ok(messages),
        }
    }

    /// Each result on its own: one that cannot be read (an alphanumeric
    /// sender such as `Beeline`, a bad id) is refused, the others are
    /// taken — a woman's `SOS` in the same batch is not lost with it.
    fn parse_sms_batch(&self, req: &Request) -> Result<(Vec<SmsIn>, Vec<String>), ChannelError> {
        let inbound: Inbound = parse_json(&req.body)?;
        check_batch(&inbound.results)?;
        let mut messages = Vec::new();
        let mut refused = Vec::new();
        for (i, r) in inbound.results.into_iter().enumerate() {
            match one_sms(i, r) {
                Ok(m) => messages.push(m),
                Err(reason) => refused.push(reason),
            }
        }
        if messages.is_empty()
            && let Some(reason) = refused.first()
        {
            return Err(ChannelError::BadRequest(reason.clone()));
        }
        Ok((messages, refused))
    }

    fn parse_status(&self, req: &Request) -> Result<Vec<StatusIn>, ChannelError> {
        let ours = match req.query_param("m") {
            Some(m) if id_ok(&m) => Some(m),
            Some(_) => return Err(ChannelError::BadRequest("m is not a valid id".into())),
            None => None,
        };
        let reports: Reports = parse_json(&req.body)?;
        check_batch(&reports.results)?;
        let single = reports.results.len() == 1;
        reports
            .results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                if !id_ok(&r.message_id) {
                    return Err(ChannelError::BadRequest(format!(
                        "results[{i}].messageId is not a valid id"
                    )));
                }
                let state = state_of(&r.status.group_name).ok_or_else(|| {
                    ChannelError::BadRequest(format!(
                        "results[{i}].status.groupName is not a known delivery status"
                    ))
                })?;
                // The URL names one message: it belongs to a lone report,
                // or to the report about that very message.
                let message_id = ours.clone().filter(|m| single || *m == r.message_id);
                let reason = if state == DeliveryState::Failed {
                    r.status.name.filter(|n| reason_ok(n))
                } else {
                    None
                };
                Ok(StatusIn {
                    provider_id: Some(r.message_id),
                    message_id,
                    state,
                    reason,
                })
            })
            .collect()
    }

    fn can_send(&self) -> bool {
        self.sender.is_some()
    }

    fn tps(&self) -> u32 {
        self.tps
    }

    fn reports_name_our_id(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| s.public_url.is_some())
    }

    async fn send(&self, msg: OutSms<'_>) -> SendOutcome {
        let Some(s) = &self.sender else {
            return send::not_configured();
        };
        let notify_url = s
            .public_url
            .as_deref()
            .map(|u| status_url(u, &self.name, s.secret.as_deref(), msg.id));
        let notify_content_type = notify_url.as_ref().map(|_| "application/json");
        let body = SendBody {
            messages: [SendMessage {
                destinations: [Destination {
                    to: msg.to.as_str().trim_start_matches('+'),
                    message_id: msg.id,
                }],
                from: s.from.as_deref(),
                text: msg.text,
                notify_url,
                notify_content_type,
            }],
        };
        let resp = s
            .http
            .post(format!("{}/sms/2/text/advanced", s.base_url))
            .header("Authorization", format!("App {}", s.api_key))
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await;
        send::finish(resp, &RULES, read).await
    }
}

/// Result `i` of an inbound batch as a message, or why it cannot be read
/// (naming the field, never its value).
fn one_sms(i: usize, r: InboundResult) -> Result<SmsIn, String> {
    if !id_ok(&r.message_id) {
        return Err(format!("results[{i}].messageId is not a valid id"));
    }
    let from =
        PhoneNumber::parse_international(&r.from).map_err(|e| format!("results[{i}].from: {e}"))?;
    if r.text.len() > MAX_TEXT_BYTES {
        return Err(format!("results[{i}].text is too long"));
    }
    if r.to.len() > 32 {
        return Err(format!("results[{i}].to is too long"));
    }
    Ok(SmsIn {
        message_id: Some(r.message_id),
        from,
        to: r.to,
        text: r.text,
    })
}

#[cfg(test)]
mod tests;
