//! Kannel (the open-source SMS gateway, bearerbox + smsbox).
//!
//! - Inbound SMS: an `sms-service` whose `get-url` calls
//!   `/webhooks/{name}/sms?secret=S&from=%p&to=%P&text=%b&ts=%T&id=%I&smsc=%i&coding=%c&charset=%C`
//!   (GET; a POST with the same fields as a form body or query also works).
//!   With `mo-recode = true` Kannel turns UCS-2 messages into UTF-8 and says
//!   `coding=0&charset=UTF-8`; without it `text` carries the raw UCS-2BE bytes
//!   and `charset=UTF-16BE` (`coding=2`). Both are decoded here. Use `%b`,
//!   never `%a` (which squashes spaces and newlines).
//! - The reply body would go back to the phone as an SMS: the service must
//!   have `max-messages = 0`. We answer 200 with an empty body, because any
//!   other status makes Kannel re-request (`http-request-retry`).
//! - Delivery reports: the `dlr-url` we give with each message is our own
//!   status webhook, `…/status?secret=S&m=<our id>&d=%d` (the secret, when
//!   set, so Kannel's reports authenticate; it is then in Kannel's DLR
//!   storage), with the DLR bits:
//!   1 delivered to the phone, 2 not delivered to the phone, 4 queued on the
//!   SMSC, 8 accepted by the SMSC, 16 rejected by the SMSC.
//! - Sending: `GET {sendsms_url}?username&password&to&from&text&charset=UTF-8`
//!   plus `coding=2` for text outside GSM-7 (else Kannel sends `?` for every
//!   Cyrillic letter), `dlr-mask` and `dlr-url`. Success is 202
//!   `0: Accepted for delivery` or `3: Queued for later delivery` (no id);
//!   403 bad credentials; 503 `Temporal failure, try again later.` A
//!   refusal is the channel's ([`RULES`]: smsbox's 4xx answers are about
//!   the request or the credentials) except two about the number: 403
//!   `Not routable. Do not try again.` (no SMSC routes it) and `Number(s)
//!   has/have been denied by white- and/or black-lists.`, which are the
//!   recipient's (an offer's: the lawyer's decline at once).
//!
//! Kannel signs nothing: requests are authenticated by a secret in the
//! get-url and dlr-url (`?secret=…`) and/or an IP allow-list
//! ([`SharedSecretAuth`]).
//!
//! Settings: `sendsms_url`, `username`, `password_env` (all three needed to
//! send), `from` (sender; without it smsbox refuses every message, 400
//! `Sender missing and no global set`, unless it sets `global-sender`;
//! `hotline check` warns), `public_url` (this gateway's
//! base URL as Kannel reaches it; without it no delivery reports are asked
//! for), `dlr_mask` (default 31), `tps` (default 10).

use async_trait::async_trait;
use http::{HeaderMap, Method, StatusCode};

use serde::Deserialize;

use super::send::{self, Body, Meaning, Rules, Unreadable};
use super::settings::{Checks, default_tps, positive, url};
use super::{
    Channel, ChannelError, DeliveryState, Event, OutSms, Reply, Request, SendOutcome,
    SharedSecretAuth, SmsIn, StatusIn, id_ok, status_url,
};
use crate::config::ChannelKind;
use crate::phone::PhoneNumber;
use crate::text::{Encoding, measure};

/// How the reason for a sender that is no phone number begins (the
/// reason says why, never the value).
const SENDER_NOT_A_NUMBER: &str = "from: ";

/// Longest decoded inbound text accepted, in bytes.
const MAX_TEXT: usize = 4096;
/// Longest `to` (a short code or number) accepted.
const MAX_TO: usize = 64;

/// What sending needs.
#[derive(Clone)]
struct Sender {
    sendsms_url: String,
    username: String,
    password: String,
    from: Option<String>,
    /// Base URL for the per-message `dlr-url`; `None`: no reports asked for.
    public_url: Option<String>,
    dlr_mask: u32,
    http: reqwest::Client,
}

/// The Kannel adapter.
pub struct KannelAdapter {
    name: String,
    auth: SharedSecretAuth,
    /// The shared secret again, to put into each `dlr-url`.
    secret: Option<String>,
    sender: Option<Sender>,
    tps: u32,
}

impl std::fmt::Debug for KannelAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KannelAdapter")
            .field("name", &self.name)
            .field("can_send", &self.sender.is_some())
            .finish_non_exhaustive()
    }
}

/// The settings of `kind = "kannel"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default, deserialize_with = "url")]
    sendsms_url: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
    from: Option<String>,
    #[serde(default, deserialize_with = "url")]
    public_url: Option<String>,
    #[serde(default = "default_dlr_mask", deserialize_with = "positive")]
    dlr_mask: u32,
    #[serde(default = "default_tps", deserialize_with = "positive")]
    tps: u32,
}

fn default_dlr_mask() -> u32 {
    31
}

impl KannelAdapter {
    /// From the channel's settings; `None` (with problems in `checks`)
    /// when they cannot be read.
    pub fn new(checks: &mut Checks<'_>, http: reqwest::Client) -> Option<Self> {
        let s: Settings = checks.read()?;
        let cfg = checks.cfg();
        if s.dlr_mask > 31 {
            checks.problem(
                "dlr_mask",
                Some(&s.dlr_mask.to_string()),
                "must be between 1 and 31 (1 delivered, 2 not delivered, 4 queued on the SMSC, \
                 8 accepted by the SMSC, 16 rejected by the SMSC)",
            );
        }
        // Presence by key: a key that is there but invalid (or names an
        // unset variable) has been reported already.
        let keys = ["sendsms_url", "username", "password_env"];
        let missing: Vec<&str> = keys.into_iter().filter(|k| !checks.given(k)).collect();
        let sends = missing.is_empty();
        if missing.len() < keys.len() {
            for k in missing {
                checks.problem(
                    k,
                    None,
                    "sending needs sendsms_url, username and password_env",
                );
            }
        }
        if sends && !checks.given("from") {
            checks.warning(
                "from",
                "missing: Kannel refuses every message without a sender \
                 (400 \"Sender missing and no global set\") unless its smsbox sets global-sender",
            );
        }
        if sends && !checks.given("public_url") {
            checks.warning(
                "public_url",
                "missing: no delivery report is asked for, so an offer the SMSC rejects \
                 is never the lawyer's decline and waits out its level (docs/channels.md)",
            );
        }
        let password = checks.secret(s.password_env.as_deref());
        let sender = match (s.sendsms_url, s.username, password) {
            (Some(sendsms_url), Some(username), Some(password)) => Some(Sender {
                sendsms_url,
                username,
                password,
                from: s.from,
                public_url: s.public_url,
                dlr_mask: s.dlr_mask.min(31),
                http,
            }),
            _ => None,
        };
        Some(KannelAdapter {
            name: cfg.name.clone(),
            auth: SharedSecretAuth::from_config(cfg),
            secret: cfg.secret.clone(),
            sender,
            tps: s.tps,
        })
    }
}

/// A request's fields with their raw (percent-decoded) bytes: Kannel's `%b`
/// is binary, so `text` may be UCS-2 and is decoded only once the charset
/// is known. A `%` without two hex digits anywhere makes every field a
/// refusal (`bad`), and so does a field read that appears twice
/// (`from=…&from=…`, or in both the body and the query): which one Kannel
/// meant cannot be known, and the first may be anyone's.
struct Params {
    pairs: Vec<(String, Vec<u8>)>,
    bad: bool,
}

impl Params {
    /// The form body (POST with a form or no content type) first, then the
    /// query.
    fn of(req: &Request) -> Params {
        let mut pairs = Vec::new();
        let mut bad = false;
        if req.method == Method::POST && is_form(&req.headers) {
            bad |= form_pairs(&req.body, &mut pairs).is_none();
        }
        if let Some(q) = &req.query {
            bad |= form_pairs(q.as_bytes(), &mut pairs).is_none();
        }
        Params { pairs, bad }
    }

    /// A field's bytes, `None` when absent.
    fn bytes(&self, name: &str) -> Result<Option<&[u8]>, ChannelError> {
        if self.bad {
            return Err(ChannelError::BadRequest(
                "request is not a valid form: bad percent-encoding".into(),
            ));
        }
        let mut found = self.pairs.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_slice());
        if found.next().is_some() {
            return Err(ChannelError::BadRequest(format!(
                "duplicate field `{name}`"
            )));
        }
        Ok(first)
    }

    /// A field that must be there, as UTF-8.
    fn required(&self, name: &str) -> Result<String, ChannelError> {
        self.optional(name)?
            .ok_or_else(|| ChannelError::BadRequest(format!("missing field `{name}`")))
    }

    /// A field that may be absent, as UTF-8.
    fn optional(&self, name: &str) -> Result<Option<String>, ChannelError> {
        match self.bytes(name)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b.to_vec())
                .map(Some)
                .map_err(|_| ChannelError::BadRequest(format!("{name} is not valid UTF-8"))),
        }
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    match headers.get(http::header::CONTENT_TYPE) {
        None => true,
        Some(v) => v
            .to_str()
            .map(|s| {
                s.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            })
            .unwrap_or(false),
    }
}

/// Split `a=1&b=2` into `out` and decode each side: `+` is a space, `%XX`
/// a byte. `None` when a `%` is not followed by two hex digits.
fn form_pairs(s: &[u8], out: &mut Vec<(String, Vec<u8>)>) -> Option<()> {
    for p in s.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (p.get(..i).unwrap_or(p), p.get(i + 1..).unwrap_or(&[])),
            None => (p, &[][..]),
        };
        out.push((
            String::from_utf8_lossy(&unescape(k)?).into_owned(),
            unescape(v)?,
        ));
    }
    Some(())
}

fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let h = tail.first().copied().and_then(hex)?;
                let l = tail.get(1).copied().and_then(hex)?;
                out.push(h << 4 | l);
                rest = tail.get(2..).unwrap_or(&[]);
            }
            b => out.push(b),
        }
    }
    Some(out)
}

/// Decode `text` by Kannel's `charset` (`%C`), falling back on `coding`
/// (`%c`, 2 = UCS-2) when no charset was given.
fn decode_text(
    bytes: &[u8],
    coding: Option<&str>,
    charset: Option<&str>,
) -> Result<String, ChannelError> {
    let charset = charset.map(|c| c.trim().to_ascii_uppercase());
    match charset.as_deref() {
        Some("UTF-16BE" | "UTF-16" | "UCS-2" | "UCS-2BE") => ucs2(bytes),
        Some("UTF-8" | "UTF8") => utf8(bytes),
        Some("ISO-8859-1" | "ISO8859-1" | "LATIN1") => Ok(latin1(bytes)),
        // Binary 8-bit data: text only if a phone app put UTF-8 in it.
        Some("8-BIT") => Ok(utf8(bytes).unwrap_or_else(|_| latin1(bytes))),
        None | Some("") if coding.map(str::trim) == Some("2") => ucs2(bytes),
        None | Some("") => utf8(bytes),
        Some(_) => Err(ChannelError::BadRequest("charset is not supported".into())),
    }
}

fn utf8(bytes: &[u8]) -> Result<String, ChannelError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ChannelError::BadRequest("text is not valid UTF-8".into()))
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// UCS-2 big-endian (read as UTF-16, so phones' surrogate pairs survive;
/// a lone surrogate becomes U+FFFD).
fn ucs2(bytes: &[u8]) -> Result<String, ChannelError> {
    let chunks = bytes.chunks_exact(2);
    if !chunks.remainder().is_empty() {
        return Err(ChannelError::BadRequest("text is not valid UCS-2".into()));
    }
    let units = chunks.map(|c| u16::from_be_bytes([c[0], c[1]]));
    let text: String = char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text))
}

/// What a DLR value (`%d`) means.
fn dlr_state(d: &str) -> Option<DeliveryState> {
    match d.trim() {
        "1" => Some(DeliveryState::Delivered),
        "2" | "16" => Some(DeliveryState::Failed),
        "4" | "8" => Some(DeliveryState::Sent),
        _ => None,
    }
}

/// How smsbox's answers to a sendsms request differ on the common ladder.
pub const RULES: Rules = Rules {
    auth_hint: "",
    // Not an answer Kannel gives to one recipient: whether it was queued
    // is unknown, and a duplicate beats a loss.
    unreadable: Unreadable::Retry {
        reason: "unexpected reply",
        with_status: true,
    },
    empty: "no message accepted",
    // The two refusals that are about the number, not the channel: no
    // SMSC routes it (`denied-prefix`, `allowed-prefix`…: 403 "Not
    // routable. Do not try again."), or the sendsms-user's white or black
    // list denies it. The lawyer cannot be reached there: her decline at
    // once, not the channel held down for everyone.
    codes: &[
        ("not_routable", Meaning::Recipient),
        ("denied", Meaning::Recipient),
    ],
    other_code: Meaning::Channel,
};

/// Read smsbox's answer: `0: Accepted for delivery` or `3: Queued for
/// later delivery` (no id); a refusal of the number ([`RULES`]); anything
/// else is not understood.
fn read(status: u16, body: &[u8]) -> Body {
    let body = body.trim_ascii_start();
    if (200..300).contains(&status) && (body.starts_with(b"0:") || body.starts_with(b"3:")) {
        Body::Accepted { provider_id: None }
    } else if !(200..300).contains(&status) && body.starts_with(b"Not routable") {
        Body::Code {
            code: "not_routable".into(),
            reason: format!("http {status} not routable"),
        }
    } else if !(200..300).contains(&status) && body.windows(11).any(|w| w == b"white- and/") {
        Body::Code {
            code: "denied".into(),
            reason: format!("http {status} number denied by a white or black list"),
        }
    } else {
        Body::Unreadable
    }
}

#[async_trait]
impl Channel for KannelAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Kannel
    }

    fn methods(&self, event: Event) -> Option<&'static [Method]> {
        match event {
            Event::Sms | Event::Status => Some(&[Method::GET, Method::POST]),
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
        let p = Params::of(req);
        let from = p.required("from")?;
        let raw_text = p
            .bytes("text")?
            .ok_or_else(|| ChannelError::BadRequest("missing field `text`".into()))?;
        let from = PhoneNumber::parse_international(&from)
            .map_err(|e| ChannelError::BadRequest(format!("{SENDER_NOT_A_NUMBER}{e}")))?;
        let coding = p.optional("coding")?;
        let charset = p.optional("charset")?;
        let text = decode_text(raw_text, coding.as_deref(), charset.as_deref())?;
        if text.len() > MAX_TEXT {
            return Err(ChannelError::BadRequest("text is too long".into()));
        }
        let to = p.optional("to")?.unwrap_or_default();
        if to.len() > MAX_TO {
            return Err(ChannelError::BadRequest("to is too long".into()));
        }
        let message_id = match p.optional("id")?.filter(|s| !s.is_empty()) {
            Some(id) if id_ok(&id) => Some(id),
            Some(_) => return Err(ChannelError::BadRequest("id is not a valid id".into())),
            None => None,
        };
        Ok(vec![SmsIn {
            message_id,
            from,
            to,
            text,
        }])
    }

    /// An SMS whose sender is no phone number (an operator's `Beeline`, a
    /// network notice) is refused alone: answered 200, counted in
    /// `hotline_sms_refused_total`. A 400 would make Kannel ask again
    /// (`http-request-retry`) for the same refusal.
    fn parse_sms_batch(&self, req: &Request) -> Result<(Vec<SmsIn>, Vec<String>), ChannelError> {
        match self.parse_sms(req) {
            Err(ChannelError::BadRequest(reason)) if reason.starts_with(SENDER_NOT_A_NUMBER) => {
                Ok((Vec::new(), vec![reason]))
            }
            other => other.map(|m| (m, Vec::new())),
        }
    }

    fn parse_status(&self, req: &Request) -> Result<Vec<StatusIn>, ChannelError> {
        let p = Params::of(req);
        let m = p.required("m")?;
        if !id_ok(&m) {
            return Err(ChannelError::BadRequest("m is not a valid id".into()));
        }
        let d = p.required("d")?;
        let state = dlr_state(&d).ok_or_else(|| {
            ChannelError::BadRequest("d is not a known delivery report value".into())
        })?;
        let reason = (state == DeliveryState::Failed).then(|| format!("dlr-{}", d.trim()));
        Ok(vec![StatusIn {
            provider_id: None,
            message_id: Some(m),
            state,
            reason,
        }])
    }

    /// 200 and nothing else: another status makes Kannel ask again, and
    /// a body could become a reply SMS if the service allowed one.
    fn render_ack(&self, _event: Event) -> Reply {
        Reply::text(StatusCode::OK, "")
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
        let mut query: Vec<(&str, &str)> = vec![
            ("username", &s.username),
            ("password", &s.password),
            ("to", msg.to.as_str()),
            ("text", msg.text),
            ("charset", "UTF-8"),
        ];
        if measure(msg.text).encoding == Encoding::Ucs2 {
            query.push(("coding", "2"));
        }
        if let Some(from) = &s.from {
            query.push(("from", from));
        }
        let mask = s.dlr_mask.to_string();
        // `%d` goes out percent-encoded inside the value; Kannel decodes it
        // and substitutes the DLR bits when it calls back.
        let dlr_url = s.public_url.as_deref().map(|base| {
            format!(
                "{}&d=%d",
                status_url(base, &self.name, self.secret.as_deref(), msg.id)
            )
        });
        if let Some(url) = &dlr_url {
            query.push(("dlr-mask", &mask));
            query.push(("dlr-url", url));
        }
        let resp = s.http.get(&s.sendsms_url).query(&query).send().await;
        send::finish(resp, &RULES, read).await
    }
}

#[cfg(test)]
mod tests;
