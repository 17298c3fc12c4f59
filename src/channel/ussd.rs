//! A USSD adapter configured by field names (`kind = "ussd"`).
//!
//! No aggregator in Kyrgyzstan, Ukraine or Georgia publishes a standard USSD
//! HTTP API: each operator integration is negotiated. This adapter lets a
//! new operator be connected by configuration alone: where the request's
//! fields are, what they are called, how the caller's input arrives, and
//! how the answer is written back. It handles USSD only (no SMS, no
//! delivery reports, no sending).
//!
//! # Settings
//!
//! Request:
//! - `format` (required): where the request's fields are. `"form"` — an
//!   `application/x-www-form-urlencoded` POST body; `"json"` — a JSON object
//!   POST body; `"query"` — the query string of a GET (or POST).
//! - `session_field`, `phone_field`, `text_field` (required): the names of
//!   the fields holding the operator's session id, the caller's number and
//!   the caller's input. With `format = "json"` a name may be a dotted path
//!   into nested objects (`"session.id"`), and numbers and booleans are
//!   read as their text (`996555123456`, `true`). A missing or `null` text
//!   field is empty input; every other named field must be present.
//! - `service_code_field` (optional): the field holding the dialled code
//!   (`*384*1#`). Without it the service code is empty; when set, the
//!   field must be present on every hop (a hop without it is a 400).
//! - `new_session_field` + `new_session_value` (optional, both or neither,
//!   only with `input = "latest"`): a field whose value marks the hop that
//!   opens a session (`type = "begin"`, `newSession = true` → `"true"`).
//!   When set, the field must be present on every hop.
//! - `hop_id_field` (optional, only with `input = "latest"`): a field whose
//!   value is the same on a retried hop and new on every other hop of the
//!   session (a request id, a hop counter). When set it must be present on
//!   every hop, and a retry is known by it for `limits.dedupe_ttl_secs`
//!   however late it comes; without it, the same answer within 4 s is
//!   taken for a retry and a later one for an answer.
//! - `input` (required): `"cumulative"` — the text is every input so far
//!   joined by `input_separator` (default `"*"`, exactly one character that
//!   is not a letter, digit or space), empty on the first hop, as Africa's
//!   Talking sends it; a custom separator is turned into `*`. `"latest"` —
//!   the text is only this screen's answer; the first hop is recognised by
//!   `new_session_field` when set, else by an empty text or a text equal to
//!   the service code.
//!
//! Reply:
//! - `reply` (required): `"text"` or `"json"`.
//! - With `"text"`: `continue_prefix` (default `"CON "`) and `end_prefix`
//!   (default `"END "`) go before the screen's text; they must differ.
//!   Content type `text/plain`.
//! - With `"json"`: `reply_text_field` (default `"message"`) holds the
//!   screen's text, and exactly one of: `reply_end_field`, a boolean field
//!   that is `true` on the last screen; or `reply_action_field` with
//!   `reply_continue_value` and `reply_end_value` (say `"request"` /
//!   `"end"`). `reply_session_echo = true` copies the session id into the
//!   reply under `session_field`. Dots in reply field names nest objects.
//!   Content type `application/json`; refusals are `{"error": "…"}`.
//!
//! Authentication is the shared one ([`SharedSecretAuth`]): the channel's
//! `secret_env` (presented as `?secret=…` or as the HTTP Basic password)
//! and/or `allow_ips`.
//!
//! # Example
//!
//! A fictitious operator, "Ala-Too Mobile", posts JSON with the session
//! nested, sends only the latest answer with a `type` of `begin` on the
//! first hop, and wants `{"session":{"id":…},"text":…,"action":"request"}`
//! back:
//!
//! ```toml
//! [[channels]]
//! name = "alatoo"
//! kind = "ussd"
//! secret_env = "HOTLINE_ALATOO_SECRET"
//! allow_ips = ["198.51.100.0/24"]
//! format = "json"
//! session_field = "session.id"
//! phone_field = "subscriber.msisdn"
//! text_field = "input"
//! service_code_field = "ussdCode"
//! new_session_field = "type"
//! new_session_value = "begin"
//! input = "latest"
//! reply = "json"
//! reply_text_field = "text"
//! reply_action_field = "action"
//! reply_continue_value = "request"
//! reply_end_value = "end"
//! reply_session_echo = true
//! ```
//!
//! Its callback URL is `https://HOST/webhooks/alatoo/ussd?secret=SECRET`.
//! `docs/ussd-adapter.md` has more profiles.

use http::{Method, StatusCode};
use serde_json::{Map, Value};

use super::{
    Channel, ChannelError, Event, Reply, Request, SharedSecretAuth, UssdIn, UssdInput, id_ok,
};
use crate::config::ChannelKind;
use crate::phone::PhoneNumber;

mod settings;

/// Longest caller input accepted, in bytes (a cumulative text grows with
/// every screen; a handset screen holds at most 182 characters).
pub const MAX_TEXT_BYTES: usize = 1024;
/// Longest service code accepted, in bytes.
pub const MAX_SERVICE_CODE_BYTES: usize = 32;

const JSON: &str = "application/json";

/// Where the request's fields are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Form,
    Json,
    Query,
}

/// One request field: its name as configured (for messages) and its path
/// (one part unless the format is JSON and the name has dots).
#[derive(Debug, Clone)]
struct Field {
    name: String,
    path: Vec<String>,
}

/// How the caller's input arrives.
#[derive(Debug, Clone)]
enum Input {
    Cumulative {
        separator: char,
    },
    Latest {
        new_session: Option<(Field, String)>,
        hop_id: Option<Field>,
    },
}

/// How the end of a session is marked in a JSON reply.
#[derive(Debug, Clone)]
enum EndMark {
    Flag(Vec<String>),
    Action {
        field: Vec<String>,
        continue_value: String,
        end_value: String,
    },
}

/// How replies are written.
#[derive(Debug, Clone)]
enum ReplyStyle {
    Text {
        continue_prefix: String,
        end_prefix: String,
    },
    Json {
        text_field: Vec<String>,
        end: EndMark,
        session_echo: Option<Vec<String>>,
    },
}

/// The configurable USSD adapter.
#[derive(Debug)]
pub struct Ussd {
    /// The channel's name, for routing and metrics.
    name: String,
    /// Who may call.
    auth: SharedSecretAuth,
    /// Where the fields are.
    format: Format,
    /// The session id's field.
    session: Field,
    /// The caller's number's field.
    phone: Field,
    /// The input's field.
    text: Field,
    /// The dialled code's field, when the operator sends one.
    service_code: Option<Field>,
    /// Cumulative or latest input.
    input: Input,
    /// The answer's format.
    reply: ReplyStyle,
}

impl Ussd {
    /// The request's fields, parsed by format.
    fn payload(&self, req: &Request) -> Result<Payload, ChannelError> {
        let pairs = |bytes: &[u8]| {
            // `serde_urlencoded` would keep a bad `%` escape and replace
            // bytes that are not UTF-8 with U+FFFD: refused instead.
            super::form::check(bytes)?;
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
                .map(Payload::Pairs)
                .map_err(|_| ChannelError::BadRequest("body is not a valid form".into()))
        };
        match self.format {
            Format::Form => {
                super::form::content_type(&req.headers)?;
                pairs(&req.body)
            }
            Format::Query => pairs(req.query.as_deref().unwrap_or("").as_bytes())
                .map_err(|_| ChannelError::BadRequest("query string is not a valid form".into())),
            Format::Json => match serde_json::from_slice::<Strict>(&req.body) {
                Ok(Strict(v @ Value::Object(_))) => Ok(Payload::Json(v)),
                Ok(_) => Err(ChannelError::BadRequest("body is not a JSON object".into())),
                Err(e) if e.to_string().starts_with(DUPLICATE_KEY) => Err(
                    ChannelError::BadRequest(format!("body is not valid JSON: {DUPLICATE_KEY}")),
                ),
                Err(_) => Err(ChannelError::BadRequest("body is not valid JSON".into())),
            },
        }
    }

    fn json_reply(&self, status: StatusCode, body: &Value) -> Reply {
        Reply {
            status,
            content_type: JSON,
            body: body.to_string(),
        }
    }
}

/// What a JSON body with a key twice in one object is told (the key is not
/// named: it is the request's, not the config's).
const DUPLICATE_KEY: &str = "an object has a key twice";

/// A JSON value whose objects hold each key once.
///
/// `serde_json::Value` keeps the last of two equal keys; a form with a field
/// twice is refused ([`Payload::get`]), and so is a JSON body: which of
/// `{"input":"1","input":"2"}` the caller typed is not ours to guess, and a
/// proxy in front may have read the other one.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element::<Strict>()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(serde::de::Error::custom(DUPLICATE_KEY));
            }
            let Strict(v) = map.next_value::<Strict>()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

/// A request's fields.
enum Payload {
    Pairs(Vec<(String, String)>),
    Json(Value),
}

impl Payload {
    /// A field's value as text; `None` when absent (or JSON `null`).
    fn get(&self, field: &Field) -> Result<Option<String>, ChannelError> {
        match self {
            Payload::Pairs(pairs) => {
                let mut found = pairs.iter().filter(|(k, _)| *k == field.name);
                let first = found.next().map(|(_, v)| v.clone());
                if found.next().is_some() {
                    return Err(ChannelError::BadRequest(format!(
                        "duplicate field `{}`",
                        field.name
                    )));
                }
                Ok(first)
            }
            Payload::Json(root) => {
                let mut v = root;
                for part in &field.path {
                    match v.get(part) {
                        Some(next) => v = next,
                        None => return Ok(None),
                    }
                }
                match v {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s.clone())),
                    Value::Bool(b) => Ok(Some(b.to_string())),
                    // Integers only: a float's text would pass for a
                    // number with its dot read as a separator.
                    Value::Number(n) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
                    _ => Err(ChannelError::BadRequest(format!(
                        "field `{}` is not a string",
                        field.name
                    ))),
                }
            }
        }
    }

    /// A field that must be present.
    fn require(&self, field: &Field) -> Result<String, ChannelError> {
        self.get(field)?
            .ok_or_else(|| ChannelError::BadRequest(format!("missing field `{}`", field.name)))
    }
}

/// Put `value` at `path` in `obj`, making objects on the way.
fn put(obj: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        let slot = cur
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else {
            return;
        };
        cur = next;
    }
    cur.insert(last.clone(), value);
}

impl Channel for Ussd {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Ussd
    }

    fn methods(&self, event: Event) -> Option<&'static [Method]> {
        match (event, self.format) {
            (Event::Ussd, Format::Query) => Some(&[Method::GET, Method::POST]),
            (Event::Ussd, Format::Form | Format::Json) => Some(&[Method::POST]),
            (Event::Sms | Event::Status, _) => None,
        }
    }

    fn authenticate(&self, req: &Request) -> Result<(), ChannelError> {
        self.auth.check(req)
    }

    fn proves_sender(&self) -> bool {
        self.auth.proves_sender()
    }

    fn parse_ussd(&self, req: &Request) -> Result<UssdIn, ChannelError> {
        let payload = self.payload(req)?;
        let session_id = payload.require(&self.session)?;
        if !id_ok(&session_id) {
            return Err(ChannelError::BadRequest(format!(
                "{} is not a valid id",
                self.session.name
            )));
        }
        let phone = payload.require(&self.phone)?;
        let from = PhoneNumber::parse_international(&phone)
            .map_err(|e| ChannelError::BadRequest(format!("{}: {e}", self.phone.name)))?;
        let service_code = match &self.service_code {
            Some(f) => {
                let code = payload.require(f)?;
                if code.len() > MAX_SERVICE_CODE_BYTES || code.chars().any(char::is_control) {
                    return Err(ChannelError::BadRequest(format!(
                        "{} is not a service code",
                        f.name
                    )));
                }
                code
            }
            None => String::new(),
        };
        let text = payload.get(&self.text)?.unwrap_or_default();
        if text.len() > MAX_TEXT_BYTES {
            return Err(ChannelError::BadRequest(format!(
                "{} is too long",
                self.text.name
            )));
        }
        let mut hop_id = None;
        let input = match &self.input {
            Input::Cumulative { separator: '*' } => UssdInput::Cumulative(text),
            Input::Cumulative { separator } => UssdInput::Cumulative(text.replace(*separator, "*")),
            Input::Latest {
                new_session,
                hop_id: hop_field,
            } => {
                let first = match new_session {
                    Some((field, value)) => payload.require(field)? == *value,
                    None => text.is_empty() || (!service_code.is_empty() && text == service_code),
                };
                if let Some(f) = hop_field {
                    let id = payload.require(f)?;
                    if !id_ok(&id) {
                        return Err(ChannelError::BadRequest(format!(
                            "{} is not a valid id",
                            f.name
                        )));
                    }
                    hop_id = Some(id);
                }
                UssdInput::Latest { text, first }
            }
        };
        Ok(UssdIn {
            session_id,
            from,
            service_code,
            input,
            hop_id,
        })
    }

    fn render_ussd(&self, text: &str, end: bool) -> Reply {
        self.render_ussd_in_session("", text, end)
    }

    fn render_ussd_in_session(&self, session_id: &str, text: &str, end: bool) -> Reply {
        match &self.reply {
            ReplyStyle::Text {
                continue_prefix,
                end_prefix,
            } => {
                let prefix = if end { end_prefix } else { continue_prefix };
                Reply::text(StatusCode::OK, format!("{prefix}{text}"))
            }
            ReplyStyle::Json {
                text_field,
                end: mark,
                session_echo,
            } => {
                let mut obj = Map::new();
                put(&mut obj, text_field, Value::String(text.to_owned()));
                match mark {
                    EndMark::Flag(path) => put(&mut obj, path, Value::Bool(end)),
                    EndMark::Action {
                        field,
                        continue_value,
                        end_value,
                    } => {
                        let v = if end { end_value } else { continue_value };
                        put(&mut obj, field, Value::String(v.clone()));
                    }
                }
                if let Some(path) = session_echo {
                    put(&mut obj, path, Value::String(session_id.to_owned()));
                }
                self.json_reply(StatusCode::OK, &Value::Object(obj))
            }
        }
    }

    fn render_error(&self, status: StatusCode, message: &str) -> Reply {
        match &self.reply {
            ReplyStyle::Text { .. } => Reply::text(status, message),
            ReplyStyle::Json { .. } => {
                let mut obj = Map::new();
                obj.insert("error".into(), Value::String(message.trim_end().to_owned()));
                self.json_reply(status, &Value::Object(obj))
            }
        }
    }
}

#[cfg(test)]
mod tests;
