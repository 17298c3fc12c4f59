//! Twilio Programmable Messaging.
//!
//! - Inbound SMS: a form POST with `MessageSid`, `SmsSid`, `SmsMessageSid`,
//!   `AccountSid`, `MessagingServiceSid`, `From`, `To`, `Body`, `NumMedia`,
//!   `NumSegments`, `FromCountry`/`FromCity`/…, `ToCountry`/…,
//!   `SmsStatus=received`, `ApiVersion=2010-04-01`. Twilio adds parameters
//!   without notice: unknown ones are ignored (but signed). The answer is
//!   an empty TwiML `<Response/>`: replies go through the outbox, never in
//!   TwiML.
//! - Status callbacks: a form POST with `MessageSid`, `MessageStatus` and,
//!   on failure, `ErrorCode`, to the per-message URL given when sending
//!   (`/webhooks/{name}/status?m={our id}`). `receiving`/`received` (states
//!   of inbound messages) are acknowledged without a report.
//! - Sending: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`
//!   with HTTP Basic `AccountSid:AuthToken` and a form (`To`, `From` or
//!   `MessagingServiceSid`, `Body`, `StatusCallback`); our message id rides
//!   in `I-Twilio-Idempotency-Token`.
//!
//! Every webhook is authenticated by `X-Twilio-Signature` ([`signature`]),
//! computed over the public URL Twilio called: `public_url` + the request
//! path + `?query`. The optional IP allow-list of the channel applies too,
//! and so does `secret_env` when set: the secret must then also be in the
//! URL configured at Twilio (`?secret=…`, which the status callback URLs
//! carry by themselves) — a second, independent check, not a replacement.
//!
//! Settings: `account_sid` and `auth_token_env` (required), exactly one of
//! `from` (a Twilio number or sender id) and `messaging_service_sid`,
//! `public_url` (required: the base URL as configured at Twilio, e.g.
//! `https://hotline.example.org`), `base_url` (default the live API), `tps`
//! (default 10).
//!
//! This adapter must never put a number, a message text or Twilio's error
//! `message` (which quotes numbers) into an error or a reason.

use crate::channel::classify_response;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use serde::Deserialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::settings::Settings;
use super::{
    Channel, ChannelError, DeliveryState, Event, OutSms, Reply, Request, SendOutcome,
    SharedSecretAuth, SmsIn, StatusIn, id_ok, parse_form, reason_ok, retry_after, status_url,
};
use crate::config::{ChannelConfig, ChannelKind};
use crate::phone::PhoneNumber;

/// The live API.
pub const LIVE_URL: &str = "https://api.twilio.com";

/// The header carrying the request signature.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The answer to an inbound SMS: no reply rides on it.
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

/// Twilio's error code for "the recipient has opted out" (replied STOP).
const OPTED_OUT: u64 = 21610;

/// Longest inbound `Body` accepted, in characters (Twilio's own limit).
const MAX_BODY_CHARS: usize = 1600;

type HmacSha1 = Hmac<Sha1>;

/// `X-Twilio-Signature` for a request: base64(HMAC-SHA1(auth token, URL +
/// every POST parameter sorted by name, then value, bytewise, as
/// name+value)). `url` is the full URL Twilio called, query included.
pub fn signature(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    let mut sorted = params.to_vec();
    // `str` orders bytewise: by name, then by value for repeated names.
    sorted.sort_unstable();
    let mut mac = <HmacSha1 as Mac>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A TwiML answer that replies with one message, the text XML-escaped.
/// (The gateway replies through the outbox; this is for callers that
/// answer in TwiML.) Characters XML 1.0 forbids are dropped.
pub fn twiml_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 80);
    out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>"#);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out.push_str("</Message></Response>");
    out
}

/// Where sent messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// A Twilio number, short code or alphanumeric sender id (`From`).
    From(String),
    /// A Messaging Service, which picks the number (`MessagingServiceSid`).
    Service(String),
}

/// The Twilio adapter.
pub struct Twilio {
    /// Name in webhook URLs.
    name: String,
    /// Our account: inbound requests must name it; sends go to it.
    account_sid: String,
    /// Signs webhooks and authenticates sends.
    auth_token: String,
    /// Base URL as configured at Twilio, for signatures and callbacks.
    public_url: String,
    /// The channel's shared secret, put into status callback URLs.
    secret: Option<String>,
    /// IP allow-list and shared secret, checked before the signature.
    auth: SharedSecretAuth,
    /// Who sends; `None` only when the settings had a problem.
    origin: Option<Origin>,
    /// The API.
    base_url: String,
    /// Client with bounded timeouts.
    http: reqwest::Client,
    /// Messages per second.
    tps: u32,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio")
            .field("name", &self.name)
            .field("can_send", &self.origin.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether `sid` is a Twilio SID of the kind `prefix` (`AC`, `MG`):
/// the prefix and 32 hex digits.
fn sid_ok(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 32 && rest.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Twilio {
    /// From the channel's config; problems go to `settings`.
    pub fn new(cfg: &ChannelConfig, settings: &Settings<'_>, http: reqwest::Client) -> Self {
        let account_sid = settings.str("account_sid");
        if !account_sid.is_empty() && !sid_ok(&account_sid, "AC") {
            settings.problem(
                "account_sid",
                Some(&account_sid),
                "must be AC followed by 32 hex digits",
            );
        }
        let auth_token = settings.secret("auth_token_env");
        let public_url = settings.url("public_url");
        if public_url.contains(['?', '#']) {
            settings.problem(
                "public_url",
                Some(&public_url),
                "must be a base URL without query or fragment",
            );
        }
        let from = settings.opt_str("from");
        let service = settings.opt_str("messaging_service_sid");
        let origin = match (from, service) {
            (Some(f), None) if !f.trim().is_empty() => Some(Origin::From(f)),
            (Some(_), None) => {
                settings.problem("from", Some(""), "must not be empty");
                None
            }
            (None, Some(s)) if sid_ok(&s, "MG") => Some(Origin::Service(s)),
            (None, Some(s)) => {
                settings.problem(
                    "messaging_service_sid",
                    Some(&s),
                    "must be MG followed by 32 hex digits",
                );
                None
            }
            (Some(_), Some(_)) => {
                settings.problem(
                    "messaging_service_sid",
                    None,
                    "set either from or messaging_service_sid, not both",
                );
                None
            }
            (None, None) => {
                settings.problem(
                    "from",
                    None,
                    "missing: set from (a Twilio number) or messaging_service_sid",
                );
                None
            }
        };
        Twilio {
            name: cfg.name.clone(),
            account_sid,
            auth_token,
            public_url,
            secret: cfg.secret.clone(),
            auth: SharedSecretAuth::from_config(cfg),
            origin,
            base_url: settings
                .opt_url("base_url")
                .unwrap_or_else(|| LIVE_URL.to_owned()),
            http,
            tps: settings.u32_or("tps", 10),
        }
    }

    /// The URL Twilio signed: our public base, the path, the query.
    fn signed_url(&self, req: &Request) -> String {
        let mut url = format!("{}{}", self.public_url, req.path);
        if let Some(q) = &req.query {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    /// A request that names another account was not meant for us.
    fn check_account(&self, account_sid: &str) -> Result<(), ChannelError> {
        if account_sid == self.account_sid {
            Ok(())
        } else {
            Err(ChannelError::Forbidden)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SmsForm {
    message_sid: String,
    account_sid: String,
    from: String,
    to: String,
    body: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StatusForm {
    message_sid: String,
    message_status: String,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    account_sid: Option<String>,
}

/// The parts of a 201 we use.
#[derive(Debug, Deserialize)]
struct Created {
    #[serde(default)]
    sid: Option<String>,
}

/// The parts of an error reply we use (never its `message`: it quotes
/// numbers).
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: Option<u64>,
}

/// Classify Twilio's answer to a send.
fn classify(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> SendOutcome {
    let code = serde_json::from_slice::<ApiError>(body)
        .ok()
        .and_then(|e| e.code);
    let reason = code.map_or_else(
        || format!("http {}", status.as_u16()),
        |c| format!("twilio {c}"),
    );
    match status.as_u16() {
        200..=299 => SendOutcome::Sent {
            // Accepted even if the body is unreadable: retrying could only
            // send twice, and the status callback carries our own id.
            provider_id: serde_json::from_slice::<Created>(body)
                .ok()
                .and_then(|c| c.sid)
                .filter(|s| id_ok(s)),
        },
        400 if code == Some(OPTED_OUT) => SendOutcome::OptedOut,
        408 | 429 => SendOutcome::Retry {
            after: retry_after(headers),
            reason,
        },
        s if s >= 500 => SendOutcome::Retry {
            after: retry_after(headers),
            reason,
        },
        _ => SendOutcome::Permanent { reason },
    }
}

#[async_trait]
impl Channel for Twilio {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Twilio
    }

    fn methods(&self, event: Event) -> Option<&'static [Method]> {
        match event {
            Event::Sms | Event::Status => Some(&[Method::POST]),
            Event::Ussd => None,
        }
    }

    fn authenticate(&self, req: &Request) -> Result<(), ChannelError> {
        self.auth.check(req)?;
        let presented = req
            .headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(ChannelError::Forbidden)?;
        let params: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&req.body).map_err(|_| ChannelError::Forbidden)?;
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let expected = signature(&self.auth_token, &self.signed_url(req), &params);
        if bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
            Ok(())
        } else {
            Err(ChannelError::Forbidden)
        }
    }

    fn parse_sms(&self, req: &Request) -> Result<Vec<SmsIn>, ChannelError> {
        let form: SmsForm = parse_form(&req.body)?;
        self.check_account(&form.account_sid)?;
        if !id_ok(&form.message_sid) {
            return Err(ChannelError::BadRequest(
                "MessageSid is not a valid id".into(),
            ));
        }
        let from = PhoneNumber::parse_international(&form.from)
            .map_err(|e| ChannelError::BadRequest(format!("From: {e}")))?;
        if form.to.trim().is_empty() || form.to.len() > 64 || form.to.chars().any(char::is_control)
        {
            return Err(ChannelError::BadRequest("To is not a valid address".into()));
        }
        if form.body.chars().count() > MAX_BODY_CHARS {
            return Err(ChannelError::BadRequest("Body is too long".into()));
        }
        Ok(vec![SmsIn {
            message_id: Some(form.message_sid),
            from,
            to: form.to,
            text: form.body,
        }])
    }

    fn parse_status(&self, req: &Request) -> Result<Vec<StatusIn>, ChannelError> {
        let form: StatusForm = parse_form(&req.body)?;
        if let Some(account) = &form.account_sid {
            self.check_account(account)?;
        }
        if !id_ok(&form.message_sid) {
            return Err(ChannelError::BadRequest(
                "MessageSid is not a valid id".into(),
            ));
        }
        let state = match form.message_status.as_str() {
            "delivered" | "read" => DeliveryState::Delivered,
            "queued" | "sending" | "sent" | "accepted" | "scheduled" | "partially_delivered" => {
                DeliveryState::Sent
            }
            "failed" | "undelivered" | "canceled" => DeliveryState::Failed,
            // States of inbound messages: nothing to record about ours.
            "receiving" | "received" => return Ok(Vec::new()),
            _ => {
                return Err(ChannelError::BadRequest(
                    "MessageStatus is not a known message status".into(),
                ));
            }
        };
        let message_id = match req.query_param("m") {
            Some(m) if id_ok(&m) => Some(m),
            Some(_) => return Err(ChannelError::BadRequest("m is not a valid id".into())),
            None => None,
        };
        Ok(vec![StatusIn {
            provider_id: Some(form.message_sid),
            message_id,
            state,
            reason: form.error_code.filter(|r| reason_ok(r)),
        }])
    }

    fn render_ack(&self, event: Event) -> Reply {
        match event {
            Event::Sms => Reply {
                status: StatusCode::OK,
                content_type: "text/xml",
                body: EMPTY_TWIML.to_owned(),
            },
            Event::Ussd | Event::Status => Reply::text(StatusCode::OK, ""),
        }
    }

    fn can_send(&self) -> bool {
        self.origin.is_some()
    }

    fn tps(&self) -> u32 {
        self.tps
    }

    async fn send(&self, msg: OutSms<'_>) -> SendOutcome {
        let Some(origin) = &self.origin else {
            return SendOutcome::Permanent {
                reason: "sending is not configured for this channel".into(),
            };
        };
        let callback = status_url(&self.public_url, &self.name, self.secret.as_deref(), msg.id);
        let mut form: Vec<(&str, &str)> = vec![
            ("To", msg.to.as_str()),
            ("Body", msg.text),
            ("StatusCallback", &callback),
        ];
        match origin {
            Origin::From(f) => form.push(("From", f)),
            Origin::Service(s) => form.push(("MessagingServiceSid", s)),
        }
        let resp = self
            .http
            .post(format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.base_url, self.account_sid
            ))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header("I-Twilio-Idempotency-Token", msg.id)
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await;
        classify_response(resp, classify).await
    }
}

#[cfg(test)]
mod tests;
