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
//!   in `I-Twilio-Idempotency-Token`. An error's `code` names the reason;
//!   [`RULES`] says which codes are the recipient's and which opt out.
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

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use serde::Deserialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::send::{self, Body, Meaning, Rules, Unreadable};
use super::settings::{Checks, default_tps, positive, text, url};
use super::{
    Channel, ChannelError, DeliveryState, Event, OutSms, Reply, Request, SendOutcome,
    SharedSecretAuth, SmsIn, StatusIn, id_ok, parse_form, reason_ok, status_url,
};
use crate::config::ChannelKind;
use crate::phone::PhoneNumber;

/// The live API.
pub const LIVE_URL: &str = "https://api.twilio.com";

/// The header carrying the request signature.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The answer to an inbound SMS: no reply rides on it.
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

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

/// The settings of `kind = "twilio"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default, deserialize_with = "text")]
    account_sid: Option<String>,
    auth_token_env: Option<String>,
    #[serde(default, deserialize_with = "url")]
    public_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    from: Option<String>,
    messaging_service_sid: Option<String>,
    #[serde(default, deserialize_with = "url")]
    base_url: Option<String>,
    #[serde(default = "default_tps", deserialize_with = "positive")]
    tps: u32,
}

/// Who sends: exactly one of `from` and `messaging_service_sid`.
fn origin(
    checks: &mut Checks<'_>,
    from: Option<String>,
    service: Option<String>,
) -> Option<Origin> {
    match (from, service) {
        (Some(f), None) => Some(Origin::From(f)),
        (None, Some(s)) if sid_ok(&s, "MG") => Some(Origin::Service(s)),
        (None, Some(s)) => {
            let msg = "must be MG followed by 32 hex digits";
            checks.problem("messaging_service_sid", Some(&s), msg);
            None
        }
        (Some(_), Some(_)) => {
            let msg = "set either from or messaging_service_sid, not both";
            checks.problem("messaging_service_sid", None, msg);
            None
        }
        (None, None) => {
            if !checks.refused("from") {
                let msg = "missing: set from (a Twilio number) or messaging_service_sid";
                checks.problem("from", None, msg);
            }
            None
        }
    }
}

impl Twilio {
    /// From the channel's settings; `None` (with problems in `checks`)
    /// when a required one is missing.
    pub fn new(checks: &mut Checks<'_>, http: reqwest::Client) -> Option<Self> {
        let s: Settings = checks.read()?;
        let cfg = checks.cfg();
        let account_sid = checks.required("account_sid", s.account_sid);
        if let Some(sid) = account_sid.as_deref().filter(|sid| !sid_ok(sid, "AC")) {
            checks.problem(
                "account_sid",
                Some(sid),
                "must be AC followed by 32 hex digits",
            );
        }
        let auth_token = checks.required_secret("auth_token_env", s.auth_token_env.as_deref());
        let public_url = checks.required("public_url", s.public_url);
        if let Some(u) = public_url.as_deref().filter(|u| u.contains(['?', '#'])) {
            let msg = "must be a base URL without query or fragment";
            checks.problem("public_url", Some(u), msg);
        }
        let origin = origin(checks, s.from, s.messaging_service_sid);
        Some(Twilio {
            name: cfg.name.clone(),
            account_sid: account_sid?,
            // An unset variable was reported by the config loader.
            auth_token: auth_token.unwrap_or_default(),
            public_url: public_url?,
            secret: cfg.secret.clone(),
            auth: SharedSecretAuth::from_config(cfg),
            origin,
            base_url: s.base_url.unwrap_or_else(|| LIVE_URL.to_owned()),
            http,
            tps: s.tps,
        })
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

/// How Twilio's answers to a send differ on the common ladder: its error
/// `code` names every failure.
pub const RULES: Rules = Rules {
    auth_hint: "",
    // Accepted even if the body is unreadable: retrying could only send
    // twice, and the status callback carries our own id.
    unreadable: Unreadable::Sent,
    empty: "no message accepted",
    codes: &[
        ("20003", Meaning::Channel),   // authentication failed
        ("21211", Meaning::Recipient), // invalid 'To' number
        ("21217", Meaning::Recipient), // number does not appear valid
        ("21610", Meaning::OptedOut),  // the recipient replied STOP
        ("21612", Meaning::Recipient), // 'To' not reachable by SMS
        ("21614", Meaning::Recipient), // 'To' is not a mobile number
    ],
    other_code: Meaning::Channel,
};

/// Read Twilio's answer to a send: the message's `sid` when created, else
/// the error's `code` (never its `message`: it quotes numbers).
fn read(status: u16, body: &[u8]) -> Body {
    if (200..300).contains(&status) {
        return match serde_json::from_slice::<Created>(body) {
            Ok(c) => Body::Accepted {
                provider_id: c.sid.filter(|s| id_ok(s)),
            },
            Err(_) => Body::Unreadable,
        };
    }
    match serde_json::from_slice::<ApiError>(body)
        .ok()
        .and_then(|e| e.code)
    {
        Some(c) => Body::Code {
            code: c.to_string(),
            reason: format!("twilio {c}"),
        },
        None => Body::Unreadable,
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

    /// Every request carries Twilio's signature over the URL and body.
    fn proves_sender(&self) -> bool {
        true
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
        super::form::content_type(&req.headers)?;
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
        super::form::content_type(&req.headers)?;
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

    fn reports_name_our_id(&self) -> bool {
        // Every send carries its `StatusCallback` with our id.
        true
    }

    async fn send(&self, msg: OutSms<'_>) -> SendOutcome {
        let Some(origin) = &self.origin else {
            return send::not_configured();
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
        send::finish(resp, &RULES, read).await
    }
}

#[cfg(test)]
mod tests;
