//! Channels: one adapter per aggregator kind.
//!
//! An adapter turns an aggregator's HTTP request into the project's own
//! types ([`UssdIn`], …) and the gateway's answer back into the aggregator's
//! format (`CON`/`END` text, TwiML, JSON). It also authenticates requests.
//! Everything after the adapter speaks the project's types and never sees a
//! raw HTTP request.
//!
//! One file per kind, all implementing [`Channel`]:
//! - [`africastalking`] — Africa's Talking USSD, SMS, delivery reports.
//! - [`infobip`] — Infobip SMS (JSON) and delivery reports.
//! - [`twilio`] — Twilio SMS and status callbacks (signed with
//!   `X-Twilio-Signature`).
//! - [`ussd`] — USSD from any operator, its field names and reply format
//!   set in config (`kind = "ussd"`).
//! - [`kannel`] — Kannel (open-source SMS gateway): SMS via `get-url`,
//!   delivery reports via a per-message `dlr-url`, sending via `sendsms`.
//! - [`form`] — a form body's named fields, read as `serde_urlencoded`
//!   reads them but borrowed (the Africa's Talking hot path).
//! - [`console`] — the development sink: SMS kept in memory for the
//!   admin listener's `/console` page; no webhooks; refused in a
//!   production configuration.
//!
//! An adapter also sends: [`Channel::send`] posts one SMS to the aggregator's
//! API, and [`send`] classifies the answer with one ladder for every kind
//! ([`SendOutcome`], with whose failure a permanent one is) so the outbox
//! worker knows whether to record, retry, give up, or stop messaging a
//! number.
//!
//! Each kind's settings are a serde struct beside its adapter, read and
//! checked through [`settings`]; [`build`] makes the adapter for a
//! configured channel or names every problem with its settings.
//!
//! Adapters must never put a phone number or message text into an error:
//! errors become HTTP bodies and log lines.

pub mod africastalking;
pub mod console;
pub mod form;
pub mod infobip;
pub mod kannel;
// The stand-in aggregator API, shared with the integration tests: one
// source file, compiled only into tests.
#[cfg(test)]
#[path = "../../tests/common/mock.rs"]
mod mock;
#[cfg(test)]
mod props;

/// A loopback port where nothing listens, for "the aggregator is down"
/// tests: bound but never listening, and reserved while the returned socket
/// lives (a port merely freed could be taken meanwhile by another test's
/// mock server, which would answer).
#[cfg(test)]
pub(crate) fn dead_port() -> (tokio::net::TcpSocket, u16) {
    let held = tokio::net::TcpSocket::new_v4().expect("a socket");
    held.bind(([127, 0, 0, 1], 0).into())
        .expect("bind a free port");
    let port = held.local_addr().expect("its address").port();
    (held, port)
}
pub mod send;
pub mod settings;
pub mod twilio;
pub mod ussd;

pub use send::{Fault, OutSms, SendOutcome, http_client};

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use subtle::ConstantTimeEq;

use crate::config::{ChannelConfig, ChannelKind, IpNet};
use crate::phone::PhoneNumber;
use crate::problem::Problem;

/// The parts of an HTTP request an adapter may look at.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path as received (`/webhooks/{channel}/{event}`), for adapters
    /// that sign the URL (Twilio).
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body (already size-capped).
    pub body: Bytes,
    /// The client's address.
    pub peer: IpAddr,
}

impl Request {
    /// A query parameter's value; `None` when it is absent or given more
    /// than once (`?secret=right&secret=wrong` authenticated as the first:
    /// hostile-traffic audit).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        let mut found = serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v);
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }
}

/// An HTTP answer in the aggregator's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Reply {
    /// A `text/plain` answer.
    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// The events a channel receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A USSD hop.
    Ussd,
    /// An inbound SMS.
    Sms,
    /// A delivery report.
    Status,
}

impl Event {
    /// Every event, for zeroed metric series.
    pub const ALL: [Event; 3] = [Event::Ussd, Event::Sms, Event::Status];

    /// Parse the last path segment.
    pub fn parse(s: &str) -> Option<Event> {
        match s {
            "ussd" => Some(Event::Ussd),
            "sms" => Some(Event::Sms),
            "status" => Some(Event::Status),
            _ => None,
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Ussd => "ussd",
            Event::Sms => "sms",
            Event::Status => "status",
        }
    }
}

/// How the aggregator sends a USSD session's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UssdInput {
    /// Every input so far joined with `*` (Africa's Talking); empty at first.
    Cumulative(String),
    /// Only what the caller typed on this screen; `first` marks the hop that
    /// opens the session (whose text, if any, is the dialled string, not an
    /// answer).
    Latest {
        /// The answer.
        text: String,
        /// Whether this hop opens the session.
        first: bool,
    },
}

/// One USSD hop.
#[derive(Debug, Clone)]
pub struct UssdIn {
    /// The aggregator's session id.
    pub session_id: String,
    /// The caller.
    pub from: PhoneNumber,
    /// The dialled code (`*384*123#`).
    pub service_code: String,
    /// What the caller typed.
    pub input: UssdInput,
    /// The operator's id of this hop, the same on its retries and new on
    /// every other hop (`hop_id_field` of a `kind = "ussd"` channel with
    /// latest input): a retry is then known by it, however late.
    pub hop_id: Option<String>,
}

/// An inbound SMS.
#[derive(Clone)]
pub struct SmsIn {
    /// The aggregator's message id, when it gives one (dedupe key).
    pub message_id: Option<String>,
    /// The sender.
    pub from: PhoneNumber,
    /// The number or short code it was sent to (as the aggregator wrote it).
    pub to: String,
    /// The text, decoded to UTF-8.
    pub text: String,
}

impl std::fmt::Debug for SmsIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsIn")
            .field("message_id", &self.message_id)
            .field("text_len", &self.text.chars().count())
            .finish_non_exhaustive()
    }
}

/// Where a sent message got to, normalised across aggregators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Accepted by the aggregator or the network; not yet on the handset.
    Sent,
    /// On the handset.
    Delivered,
    /// Will not arrive.
    Failed,
}

impl DeliveryState {
    /// Every state, for zeroed metric series.
    pub const ALL: [DeliveryState; 3] = [
        DeliveryState::Sent,
        DeliveryState::Delivered,
        DeliveryState::Failed,
    ];

    /// Metric label (also its stored form).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One delivery report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusIn {
    /// The aggregator's id of the message, when the report carries one.
    pub provider_id: Option<String>,
    /// Our own message id, when the report came to a per-message callback
    /// URL that carries it (`?m=…`).
    pub message_id: Option<String>,
    /// The new state.
    pub state: DeliveryState,
    /// The aggregator's reason code for a failure (a fixed vocabulary such
    /// as `UserInBlackList` or `30003`; never free text).
    pub reason: Option<String>,
}

/// Longest id accepted from an aggregator (session ids, message ids).
pub const MAX_ID_LEN: usize = 128;

/// Parse a form body (or query string); the error names the field, never
/// its value. A `%` without two hex digits, or a name or value that is not
/// UTF-8 once decoded, is refused ([`form::check`]).
///
/// # Errors
/// [`ChannelError::BadRequest`].
pub fn parse_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ChannelError> {
    // `serde_urlencoded` keeps a bad `%` escape as it is and replaces bytes
    // that are not UTF-8 with U+FFFD: refuse those first.
    form::check(body)?;
    serde_urlencoded::from_bytes(body).map_err(|e| {
        let msg = e.to_string();
        // serde_urlencoded's messages name fields ("missing field `text`");
        // keep only those, never a value.
        let safe = if msg.starts_with("missing field") || msg.starts_with("duplicate field") {
            msg
        } else {
            "body is not a valid form".to_owned()
        };
        ChannelError::BadRequest(safe)
    })
}

/// Parse a JSON body; the error says where, never what the value was.
///
/// # Errors
/// [`ChannelError::BadRequest`].
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ChannelError> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let safe = if let Some(rest) = msg.strip_prefix("unknown variant") {
            // "unknown variant `<what the request sent>`, expected one of
            // `a`, `b` at line 1 column 9": the request's value may be
            // anything (a number, a text) and must not reach a log or a
            // reply; keep what was expected.
            let expected = rest
                .rfind("`, expected")
                .map(|i| &rest[i + 1..])
                .and_then(|r| r.split(" at line").next())
                .unwrap_or("");
            format!("unknown variant{expected}")
        } else if msg.starts_with("missing field") || msg.starts_with("duplicate field") {
            // "missing field `to` at line 1 column 20": keep the field name.
            msg.split(" at line")
                .next()
                .unwrap_or("body is not valid JSON")
                .to_owned()
        } else {
            "body is not valid JSON of the expected shape".to_owned()
        };
        ChannelError::BadRequest(safe)
    })
}

/// Whether an aggregator id is acceptable (printable ASCII, bounded).
pub fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.chars().all(|c| c.is_ascii_graphic())
}

/// Whether a failure reason is a code (letters, digits, `_`, `-`, `.`),
/// safe for logs and metrics.
pub fn reason_ok(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The URL an aggregator should post delivery reports for one message to,
/// when the kind allows a per-message URL: the channel's public base URL,
/// its status webhook, its shared secret (if any) and our message id.
pub fn status_url(
    public_url: &str,
    channel: &str,
    secret: Option<&str>,
    message_id: &str,
) -> String {
    let mut q: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = secret {
        q.push(("secret", s));
    }
    q.push(("m", message_id));
    let query = serde_urlencoded::to_string(&q).unwrap_or_default();
    format!(
        "{}/webhooks/{channel}/status?{query}",
        public_url.trim_end_matches('/')
    )
}

/// Why an adapter refused a request. Texts are short, fixed, and safe to
/// send back and to log: they never contain the caller's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Missing or malformed field; the reason is sent back.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is declared as a type this event is not sent in (a form
    /// event's `text/plain`, `multipart/form-data`): 415 with the reason.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(&'static str),
    /// Authentication failed.
    #[error("forbidden")]
    Forbidden,
    /// This channel kind does not handle this event.
    #[error("not supported by this channel")]
    NotSupported,
}

/// An aggregator adapter.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// The channel's name (from the config).
    fn name(&self) -> &str;

    /// Its kind.
    fn kind(&self) -> ChannelKind;

    /// Methods accepted for an event (others get 405). `None`: the event
    /// is not served by this channel (404).
    fn methods(&self, event: Event) -> Option<&'static [Method]>;

    /// Check that the request comes from the aggregator.
    ///
    /// # Errors
    /// [`ChannelError::Forbidden`].
    fn authenticate(&self, req: &Request) -> Result<(), ChannelError>;

    /// Whether a request that passes [`Channel::authenticate`] proves it
    /// comes from the aggregator: a signature, a shared secret, or an
    /// `allow_ips` no wider than an IPv4 /8 or an IPv6 /16. Such requests
    /// are not charged to the per-address budget (`server.per_ip_*`): every
    /// woman arrives from the aggregator's address, and one number
    /// flooding through it must not get the others 429 (the per-number
    /// limit holds that number). A channel that admits anyone is charged.
    fn proves_sender(&self) -> bool {
        false
    }

    /// Parse a USSD hop.
    ///
    /// # Errors
    /// [`ChannelError::BadRequest`] with a short reason.
    fn parse_ussd(&self, _req: &Request) -> Result<UssdIn, ChannelError> {
        Err(ChannelError::NotSupported)
    }

    /// Render a USSD screen.
    fn render_ussd(&self, _text: &str, _end: bool) -> Reply {
        Reply::text(StatusCode::NOT_FOUND, "not supported")
    }

    /// Render a USSD screen answering a hop of session `session_id`. For
    /// adapters whose replies repeat the session id (some JSON protocols);
    /// the default ignores it and calls [`Channel::render_ussd`].
    fn render_ussd_in_session(&self, session_id: &str, text: &str, end: bool) -> Reply {
        let _ = session_id;
        self.render_ussd(text, end)
    }

    /// Render a refusal in the aggregator's convention.
    fn render_error(&self, status: StatusCode, message: &str) -> Reply {
        Reply::text(status, message)
    }

    /// Parse an inbound SMS webhook (some aggregators batch several).
    ///
    /// # Errors
    /// [`ChannelError::BadRequest`] with a short reason.
    fn parse_sms(&self, _req: &Request) -> Result<Vec<SmsIn>, ChannelError> {
        Err(ChannelError::NotSupported)
    }

    /// Parse an inbound SMS webhook that may batch several messages: the
    /// messages that can be read, and why each of the others cannot (a
    /// sender that is no phone number, a bad id). One bad message must not
    /// cost the others theirs: an aggregator that retries the batch gets
    /// the same refusal every time. The default is [`Channel::parse_sms`]
    /// (one message, or all refused).
    ///
    /// # Errors
    /// As [`Channel::parse_sms`]; a batch none of whose messages can be
    /// read is refused whole.
    fn parse_sms_batch(&self, req: &Request) -> Result<(Vec<SmsIn>, Vec<String>), ChannelError> {
        self.parse_sms(req).map(|m| (m, Vec::new()))
    }

    /// Parse a delivery report webhook.
    ///
    /// # Errors
    /// [`ChannelError::BadRequest`] with a short reason (an unknown status
    /// value is one).
    fn parse_status(&self, _req: &Request) -> Result<Vec<StatusIn>, ChannelError> {
        Err(ChannelError::NotSupported)
    }

    /// The success answer to an SMS or status webhook. Replies to the
    /// caller never ride on it: every outbound message goes through the
    /// outbox.
    fn render_ack(&self, _event: Event) -> Reply {
        Reply::text(StatusCode::OK, "")
    }

    /// Whether this channel is configured to send SMS.
    fn can_send(&self) -> bool {
        false
    }

    /// Messages per second this channel may send (per gateway instance).
    fn tps(&self) -> u32 {
        1
    }

    /// Whether every delivery report of a message this channel sends names
    /// our message id (a per-message callback URL, [`status_url`]): then
    /// the aggregator's id needs no lookup key of its own
    /// (`p:{channel}:{id}`), one write less per message.
    fn reports_name_our_id(&self) -> bool {
        false
    }

    /// The development sink behind this channel, when it is one (the
    /// `/console` page and `hotline simulate` read it).
    fn console(&self) -> Option<&console::Console> {
        None
    }

    /// Send one SMS and classify the answer. Must not panic; must time out.
    async fn send(&self, _msg: OutSms<'_>) -> SendOutcome {
        send::not_configured()
    }
}

/// Shared authentication: an optional IP allow-list and an optional secret,
/// presented as the `secret` query parameter or as the password of HTTP
/// Basic authentication; compared in constant time.
#[derive(Debug, Clone, Default)]
pub struct SharedSecretAuth {
    secret: Option<String>,
    allow: Vec<IpNet>,
}

impl SharedSecretAuth {
    /// From a channel's config.
    pub fn from_config(cfg: &ChannelConfig) -> Self {
        SharedSecretAuth {
            secret: cfg.secret.clone(),
            allow: cfg.allow_ips.clone(),
        }
    }

    /// Whether passing [`SharedSecretAuth::check`] proves anything: a
    /// secret is set, or an allow-list holding no network wider than an
    /// IPv4 /8 or an IPv6 /16 (a wider one counts as none, as `hotline
    /// check` counts it).
    pub fn proves_sender(&self) -> bool {
        self.secret.is_some() || (!self.allow.is_empty() && !self.allow.iter().any(IpNet::is_wide))
    }

    /// Check a request.
    ///
    /// # Errors
    /// [`ChannelError::Forbidden`].
    pub fn check(&self, req: &Request) -> Result<(), ChannelError> {
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(req.peer)) {
            return Err(ChannelError::Forbidden);
        }
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let presented = req
            .query_param("secret")
            .or_else(|| basic_password(&req.headers));
        match presented {
            Some(p) if bool::from(p.as_bytes().ct_eq(secret.as_bytes())) => Ok(()),
            _ => Err(ChannelError::Forbidden),
        }
    }
}

fn basic_password(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, p)| p.to_owned())
}

/// Build the adapter for a configured channel; problems name its keys.
///
/// # Errors
/// The problems with the channel's kind-specific settings.
pub fn build(
    index: usize,
    cfg: &ChannelConfig,
    file: &str,
    http: &reqwest::Client,
) -> Result<Arc<dyn Channel>, Vec<Problem>> {
    build_warned(index, cfg, file, http).map(|(channel, _warnings)| channel)
}

/// A channel built, with the warnings about it.
pub type Warned = (Arc<dyn Channel>, Vec<Problem>);

/// [`build`], with the warnings about a channel that is built all the
/// same (`check` shows them).
///
/// # Errors
/// Every problem, when any is an error.
pub fn build_warned(
    index: usize,
    cfg: &ChannelConfig,
    file: &str,
    http: &reqwest::Client,
) -> Result<Warned, Vec<Problem>> {
    fn boxed<C: Channel>(c: Option<C>) -> Option<Arc<dyn Channel>> {
        c.map(|c| Arc::new(c) as Arc<dyn Channel>)
    }
    let mut checks = settings::Checks::new(cfg, index, file);
    let http = http.clone();
    let channel = match cfg.kind {
        ChannelKind::AfricasTalking => {
            boxed(africastalking::AfricasTalking::new(&mut checks, http))
        }
        ChannelKind::Infobip => boxed(infobip::Infobip::new(&mut checks, http)),
        ChannelKind::Twilio => boxed(twilio::Twilio::new(&mut checks, http)),
        ChannelKind::Ussd => boxed(ussd::Ussd::new(&mut checks)),
        ChannelKind::Kannel => boxed(kannel::KannelAdapter::new(&mut checks, http)),
        ChannelKind::Console => boxed(console::Console::new(&mut checks)),
    };
    let problems = checks.finish();
    match channel {
        Some(channel) if !problems.iter().any(Problem::is_error) => Ok((channel, problems)),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(query: Option<&str>, auth: Option<&str>, peer: &str) -> Request {
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        Request {
            method: Method::POST,
            path: "/webhooks/test/sms".into(),
            query: query.map(str::to_owned),
            headers,
            body: Bytes::new(),
            peer: peer.parse().unwrap(),
        }
    }

    #[test]
    fn a_json_error_never_quotes_what_the_request_sent() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Kind {
            Sms,
            Ussd,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            kind: Kind,
            to: String,
        }
        let err = |body: &str| match parse_json::<Body>(body.as_bytes()) {
            Err(ChannelError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        for value in ["+996555123456", "Dom 5`, expected 2", "x` at line 9"] {
            let body = serde_json::json!({ "kind": value, "to": "1" }).to_string();
            let m = err(&body);
            assert_eq!(m, "unknown variant, expected `Sms` or `Ussd`", "{value}");
            assert!(!m.contains("996") && !m.contains("Dom"), "{m}");
        }
        assert_eq!(err(r#"{"kind": "Sms"}"#), "missing field `to`");
        assert_eq!(
            err(r#"{"kind": "Sms", "to": "+996555123456", "to": "2"}"#),
            "duplicate field `to`"
        );
        assert_eq!(
            err(r#"{"kind": 1, "to": "+996555123456"}"#),
            "body is not valid JSON of the expected shape"
        );
    }

    #[test]
    fn shared_secret_from_query_or_basic_auth() {
        let auth = SharedSecretAuth {
            secret: Some("s3cret".into()),
            allow: vec![],
        };
        assert!(
            auth.check(&req(Some("secret=s3cret"), None, "1.2.3.4"))
                .is_ok()
        );
        assert!(
            auth.check(&req(Some("secret=wrong"), None, "1.2.3.4"))
                .is_err()
        );
        assert!(auth.check(&req(None, None, "1.2.3.4")).is_err());
        // Given twice: refused, whichever comes first (the first used to
        // win).
        for q in [
            "secret=s3cret&secret=nope",
            "secret=nope&secret=s3cret",
            "secret=s3cret&secret=s3cret",
        ] {
            assert!(auth.check(&req(Some(q), None, "1.2.3.4")).is_err(), "{q}");
        }
        // "user:s3cret"
        assert!(
            auth.check(&req(None, Some("Basic dXNlcjpzM2NyZXQ="), "1.2.3.4"))
                .is_ok()
        );
        assert!(
            auth.check(&req(None, Some("Basic dXNlcjp4"), "1.2.3.4"))
                .is_err()
        );
    }

    #[test]
    fn allow_list_checks_networks() {
        let auth = SharedSecretAuth {
            secret: None,
            allow: vec![
                IpNet::parse("10.1.0.0/16").unwrap(),
                IpNet::parse("::1").unwrap(),
            ],
        };
        assert!(auth.check(&req(None, None, "10.1.200.3")).is_ok());
        assert!(auth.check(&req(None, None, "::1")).is_ok());
        assert!(auth.check(&req(None, None, "::ffff:10.1.0.9")).is_ok());
        assert!(auth.check(&req(None, None, "10.2.0.1")).is_err());
    }
}
