//! Africa's Talking.
//!
//! - USSD: a form POST with `sessionId`, `serviceCode`, `phoneNumber`,
//!   `networkCode` and `text` (every input so far joined with `*`, empty on
//!   the first hop). The answer is `text/plain` starting `CON ` (wait for
//!   input) or `END ` (close). A 4xx makes AT end the session.
//! - Inbound SMS: a form POST with `from`, `to`, `text`, `date`, `id`,
//!   `linkId` (may be empty or absent), `networkCode`.
//! - Delivery reports: a form POST with `id`, `status` (`Sent`, `Submitted`,
//!   `Buffered`, `Rejected`, `Success`, `Failed`), `phoneNumber`,
//!   `networkCode`, `retryCount`, `failureReason`.
//! - Sending: `POST {base}/version1/messaging` with the `apiKey` header and a
//!   form (`username`, `to`, `message`, `from`, `bulkSMSMode=1`); each
//!   recipient's `statusCode` says sent (100–102), permanent (401–407:
//!   403, 404, 407 the recipient's, 401, 402, 405 the channel's, 406 opted
//!   out) or retry (500–502); [`RULES`] and [`super::send`] classify it.
//!
//! AT adds fields without notice: unknown ones are ignored. AT signs
//! nothing: requests are authenticated by a secret in the callback URL
//! (`?secret=…`) and/or an IP allow-list ([`SharedSecretAuth`]).
//!
//! Settings: `username`, `api_key_env` (both needed to send), `from` (sender
//! id or short code), `base_url` (default the live API, or the sandbox when
//! `username = "sandbox"`), `tps` (default 10).

use std::borrow::Cow;

use async_trait::async_trait;
use http::{Method, StatusCode};
use serde::Deserialize;

use super::form;
use super::send::{self, Body, Meaning, Rules, Unreadable};
use super::settings::{Checks, default_tps, positive, url};
use super::{
    Channel, ChannelError, DeliveryState, Event, OutSms, Reply, Request, SendOutcome,
    SharedSecretAuth, SmsIn, StatusIn, UssdIn, UssdInput, id_ok, parse_form, reason_ok,
};
use crate::config::ChannelKind;
use crate::phone::PhoneNumber;

/// The live API.
pub const LIVE_URL: &str = "https://api.africastalking.com";
/// The sandbox API, used when `username = "sandbox"`.
pub const SANDBOX_URL: &str = "https://api.sandbox.africastalking.com";

/// What sending needs.
#[derive(Clone)]
struct Sender {
    username: String,
    api_key: String,
    from: Option<String>,
    base_url: String,
    http: reqwest::Client,
}

/// The Africa's Talking adapter.
pub struct AfricasTalking {
    name: String,
    auth: SharedSecretAuth,
    sender: Option<Sender>,
    tps: u32,
}

impl std::fmt::Debug for AfricasTalking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfricasTalking")
            .field("name", &self.name)
            .field("can_send", &self.sender.is_some())
            .finish_non_exhaustive()
    }
}

/// The settings of `kind = "africastalking"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    username: Option<String>,
    api_key_env: Option<String>,
    from: Option<String>,
    #[serde(default, deserialize_with = "url")]
    base_url: Option<String>,
    #[serde(default = "default_tps", deserialize_with = "positive")]
    tps: u32,
}

impl AfricasTalking {
    /// From the channel's settings; `None` (with problems in `checks`)
    /// when they cannot be read.
    pub fn new(checks: &mut Checks<'_>, http: reqwest::Client) -> Option<Self> {
        let settings: Settings = checks.read()?;
        let cfg = checks.cfg();
        let named = settings.api_key_env.is_some();
        let api_key = checks.secret(settings.api_key_env.as_deref());
        let sender = match (settings.username, api_key) {
            (Some(username), Some(api_key)) => Some(Sender {
                base_url: settings.base_url.unwrap_or_else(|| {
                    if username == "sandbox" {
                        SANDBOX_URL.to_owned()
                    } else {
                        LIVE_URL.to_owned()
                    }
                }),
                username,
                api_key,
                from: settings.from,
                http,
            }),
            // Named but not set: `secret` said so already (newcomer
            // audit: "needs both" read as false beside it).
            (Some(_), None) if named => None,
            (Some(_), None) => {
                checks.problem("api_key_env", None, BOTH);
                None
            }
            (None, Some(_)) => {
                checks.problem("username", None, BOTH);
                None
            }
            (None, None) => None,
        };
        Some(AfricasTalking {
            name: cfg.name.clone(),
            auth: SharedSecretAuth::from_config(cfg),
            sender,
            tps: settings.tps,
        })
    }
}

const BOTH: &str = "sending needs both username and api_key_env";

/// The USSD form's fields, in the order a missing one is reported.
const USSD_FORM: [form::Field; 4] = [
    form::required("sessionId"),
    form::required("serviceCode"),
    form::required("phoneNumber"),
    form::optional("text"),
];

/// The SMS form's fields.
const SMS_FORM: [form::Field; 4] = [
    form::required("from"),
    form::optional("to"),
    form::required("text"),
    form::optional("id"),
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusForm {
    id: String,
    status: String,
    #[serde(default)]
    failure_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SendReply {
    #[serde(rename = "SMSMessageData")]
    data: SendData,
}

#[derive(Debug, Deserialize)]
struct SendData {
    #[serde(rename = "Recipients", default)]
    recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
struct Recipient {
    #[serde(rename = "statusCode")]
    status_code: u16,
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// How Africa's Talking's answers to a send differ on the common ladder.
pub const RULES: Rules = Rules {
    auth_hint: " (check username and api key)",
    unreadable: Unreadable::Retry {
        reason: "unreadable reply",
        with_status: false,
    },
    empty: "no recipient accepted",
    codes: &[
        ("401", Meaning::Channel),   // RiskHold
        ("402", Meaning::Channel),   // InvalidSenderId
        ("403", Meaning::Recipient), // InvalidPhoneNumber
        ("404", Meaning::Recipient), // UnsupportedNumberType
        ("405", Meaning::Channel),   // InsufficientBalance
        ("406", Meaning::OptedOut),  // UserInBlacklist
        ("407", Meaning::Recipient), // CouldNotRoute
    ],
    // 500 InternalServerError, 501 GatewayError, 502 RejectedByGateway,
    // and codes AT may add.
    other_code: Meaning::Retry,
};

/// Read AT's answer to a send: the first recipient's `statusCode` (the
/// body of an HTTP error is text, never read).
fn read(status: u16, body: &[u8]) -> Body {
    if !(200..300).contains(&status) {
        return Body::Unreadable;
    }
    let Ok(reply) = serde_json::from_slice::<SendReply>(body) else {
        return Body::Unreadable;
    };
    let Some(r) = reply.data.recipients.into_iter().next() else {
        return Body::Empty;
    };
    if (100..=102).contains(&r.status_code) {
        return Body::Accepted {
            provider_id: r.message_id.filter(|id| id_ok(id) && id != "None"),
        };
    }
    let code = r.status_code.to_string();
    Body::Code {
        reason: r
            .status
            .filter(|s| reason_ok(s))
            .unwrap_or_else(|| code.clone()),
        code,
    }
}

#[async_trait]
impl Channel for AfricasTalking {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::AfricasTalking
    }

    fn methods(&self, event: Event) -> Option<&'static [Method]> {
        match event {
            Event::Ussd | Event::Sms | Event::Status => Some(&[Method::POST]),
        }
    }

    fn authenticate(&self, req: &Request) -> Result<(), ChannelError> {
        self.auth.check(req)
    }

    fn proves_sender(&self) -> bool {
        self.auth.proves_sender()
    }

    fn parse_ussd(&self, req: &Request) -> Result<UssdIn, ChannelError> {
        // The hot path: fields borrowed from the body (`form.rs`), read as
        // `parse_form` would read them.
        form::content_type(&req.headers)?;
        let [session_id, service_code, phone_number, text] =
            form::fields(&req.body, USSD_FORM)?.map(Option::unwrap_or_default);
        if !id_ok(&session_id) {
            return Err(ChannelError::BadRequest(
                "sessionId is not a valid id".into(),
            ));
        }
        if service_code.len() > 32 {
            return Err(ChannelError::BadRequest("serviceCode is too long".into()));
        }
        if text.len() > 1024 {
            return Err(ChannelError::BadRequest("text is too long".into()));
        }
        let from = PhoneNumber::parse_international(&phone_number)
            .map_err(|e| ChannelError::BadRequest(format!("phoneNumber: {e}")))?;
        Ok(UssdIn {
            hop_id: None,
            session_id: session_id.into_owned(),
            from,
            service_code: service_code.into_owned(),
            input: UssdInput::Cumulative(text.into_owned()),
        })
    }

    fn render_ussd(&self, text: &str, end: bool) -> Reply {
        let prefix = if end { "END " } else { "CON " };
        Reply::text(StatusCode::OK, format!("{prefix}{text}"))
    }

    fn parse_sms(&self, req: &Request) -> Result<Vec<SmsIn>, ChannelError> {
        form::content_type(&req.headers)?;
        let [from, to, text, id] = form::fields(&req.body, SMS_FORM)?;
        let from = PhoneNumber::parse_international(&from.unwrap_or_default())
            .map_err(|e| ChannelError::BadRequest(format!("from: {e}")))?;
        let text = text.unwrap_or_default();
        if text.len() > 2048 {
            return Err(ChannelError::BadRequest("text is too long".into()));
        }
        let message_id = match id.filter(|s| !s.is_empty()) {
            Some(id) if id_ok(&id) => Some(id.into_owned()),
            Some(_) => return Err(ChannelError::BadRequest("id is not a valid id".into())),
            None => None,
        };
        Ok(vec![SmsIn {
            message_id,
            from,
            to: to.map(Cow::into_owned).unwrap_or_default(),
            text: text.into_owned(),
        }])
    }

    fn parse_status(&self, req: &Request) -> Result<Vec<StatusIn>, ChannelError> {
        form::content_type(&req.headers)?;
        let form: StatusForm = parse_form(&req.body)?;
        if !id_ok(&form.id) {
            return Err(ChannelError::BadRequest("id is not a valid id".into()));
        }
        let state = match form.status.as_str() {
            "Success" => DeliveryState::Delivered,
            "Sent" | "Submitted" | "Buffered" => DeliveryState::Sent,
            "Rejected" | "Failed" => DeliveryState::Failed,
            _ => {
                return Err(ChannelError::BadRequest(
                    "status is not a known delivery status".into(),
                ));
            }
        };
        Ok(vec![StatusIn {
            provider_id: Some(form.id),
            message_id: None,
            state,
            reason: form.failure_reason.filter(|r| reason_ok(r)),
        }])
    }

    fn can_send(&self) -> bool {
        self.sender.is_some()
    }

    fn tps(&self) -> u32 {
        self.tps
    }

    async fn send(&self, msg: OutSms<'_>) -> SendOutcome {
        let Some(s) = &self.sender else {
            return send::not_configured();
        };
        let mut form: Vec<(&str, &str)> = vec![
            ("username", &s.username),
            ("to", msg.to.as_str()),
            ("message", msg.text),
            ("bulkSMSMode", "1"),
        ];
        if let Some(from) = &s.from {
            form.push(("from", from));
        }
        let resp = s
            .http
            .post(format!("{}/version1/messaging", s.base_url))
            .header("apiKey", &s.api_key)
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await;
        send::finish(resp, &RULES, read).await
    }
}

#[cfg(test)]
mod tests;
