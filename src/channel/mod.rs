//! Channels: one adapter per aggregator kind.
//!
//! An adapter turns an aggregator's HTTP request into the project's own
//! types ([`UssdIn`], …) and the gateway's answer back into the aggregator's
//! format (`CON`/`END` text, TwiML, JSON). It also authenticates requests.
//! Everything after the adapter speaks the project's types and never sees a
//! raw HTTP request.
//!
//! One file per kind, all implementing [`Channel`]:
//! - [`africastalking`] — Africa's Talking USSD.
//!
//! Adapters must never put a phone number or message text into an error:
//! errors become HTTP bodies and log lines.

pub mod africastalking;

use std::net::IpAddr;
use std::sync::Arc;

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
    /// A query parameter's value (first occurrence).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
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
}

/// Why an adapter refused a request. Texts are short, fixed, and safe to
/// send back and to log: they never contain the caller's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Missing or malformed field; the reason is sent back.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Authentication failed.
    #[error("forbidden")]
    Forbidden,
    /// This channel kind does not handle this event.
    #[error("not supported by this channel")]
    NotSupported,
}

/// An aggregator adapter.
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

    /// Render a refusal in the aggregator's convention.
    fn render_error(&self, status: StatusCode, message: &str) -> Reply {
        Reply::text(status, message)
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

    /// Whether anything is checked at all.
    pub fn is_open(&self) -> bool {
        self.secret.is_none() && self.allow.is_empty()
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
) -> Result<Arc<dyn Channel>, Vec<Problem>> {
    match cfg.kind {
        ChannelKind::AfricasTalking => Ok(Arc::new(africastalking::AfricasTalking::new(cfg))),
        other => Err(vec![Problem::error(
            file,
            format!("channels[{index}].kind = {:?}", other.as_str()),
            "this kind is not available in this build yet",
        )]),
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
            query: query.map(str::to_owned),
            headers,
            body: Bytes::new(),
            peer: peer.parse().unwrap(),
        }
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
