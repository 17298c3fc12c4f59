//! Africa's Talking.
//!
//! USSD: a form POST with `sessionId`, `serviceCode`, `phoneNumber`,
//! `networkCode` and `text` (every input so far joined with `*`, empty on the
//! first hop). The answer is `text/plain` starting `CON ` (wait for input) or
//! `END ` (close). AT adds fields without notice: unknown ones are ignored.
//! A 4xx makes AT end the session, which is the right thing for bad input.
//!
//! AT signs nothing: requests are authenticated by a secret in the callback
//! URL (`?secret=…`) and/or an IP allow-list ([`SharedSecretAuth`]).

use http::{Method, StatusCode};
use serde::Deserialize;

use super::{Channel, ChannelError, Event, Reply, Request, SharedSecretAuth, UssdIn, UssdInput};
use crate::config::{ChannelConfig, ChannelKind};
use crate::phone::PhoneNumber;

/// Longest session id accepted.
const MAX_ID_LEN: usize = 128;

/// The Africa's Talking adapter.
#[derive(Debug)]
pub struct AfricasTalking {
    name: String,
    auth: SharedSecretAuth,
}

impl AfricasTalking {
    /// From the channel's config.
    pub fn new(cfg: &ChannelConfig) -> Self {
        AfricasTalking {
            name: cfg.name.clone(),
            auth: SharedSecretAuth::from_config(cfg),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UssdForm {
    session_id: String,
    service_code: String,
    phone_number: String,
    #[serde(default)]
    text: String,
}

/// Parse a form body; the error names the field, never its value.
pub(crate) fn parse_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ChannelError> {
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

fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.chars().all(|c| c.is_ascii_graphic())
}

impl Channel for AfricasTalking {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::AfricasTalking
    }

    fn methods(&self, event: Event) -> Option<&'static [Method]> {
        match event {
            Event::Ussd => Some(&[Method::POST]),
            Event::Sms | Event::Status => None,
        }
    }

    fn authenticate(&self, req: &Request) -> Result<(), ChannelError> {
        self.auth.check(req)
    }

    fn parse_ussd(&self, req: &Request) -> Result<UssdIn, ChannelError> {
        let form: UssdForm = parse_form(&req.body)?;
        if !id_ok(&form.session_id) {
            return Err(ChannelError::BadRequest(
                "sessionId is not a valid id".into(),
            ));
        }
        if form.service_code.len() > 32 {
            return Err(ChannelError::BadRequest("serviceCode is too long".into()));
        }
        if form.text.len() > 1024 {
            return Err(ChannelError::BadRequest("text is too long".into()));
        }
        let from = PhoneNumber::parse_international(&form.phone_number)
            .map_err(|e| ChannelError::BadRequest(format!("phoneNumber: {e}")))?;
        Ok(UssdIn {
            session_id: form.session_id,
            from,
            service_code: form.service_code,
            input: UssdInput::Cumulative(form.text),
        })
    }

    fn render_ussd(&self, text: &str, end: bool) -> Reply {
        let prefix = if end { "END " } else { "CON " };
        Reply::text(StatusCode::OK, format!("{prefix}{text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    fn at() -> AfricasTalking {
        AfricasTalking {
            name: "africastalking".into(),
            auth: SharedSecretAuth::default(),
        }
    }

    fn req(body: &str) -> Request {
        Request {
            method: Method::POST,
            query: None,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            peer: "127.0.0.1".parse().unwrap(),
        }
    }

    #[test]
    fn parses_the_documented_fields_and_ignores_extras() {
        let r = at()
            .parse_ussd(&req(
                "sessionId=ATUid_1&serviceCode=%2A384%2A1%23&phoneNumber=%2B996555123456&networkCode=43701&text=1%2A2&extra=x",
            ))
            .unwrap();
        assert_eq!(r.session_id, "ATUid_1");
        assert_eq!(r.service_code, "*384*1#");
        assert_eq!(r.from.as_str(), "+996555123456");
        assert_eq!(r.input, UssdInput::Cumulative("1*2".into()));
    }

    #[test]
    fn missing_and_malformed_fields_are_named_without_values() {
        let cases = [
            (
                "serviceCode=1&phoneNumber=%2B996555123456",
                "missing field `sessionId`",
            ),
            (
                "sessionId=a&phoneNumber=%2B996555123456",
                "missing field `serviceCode`",
            ),
            ("sessionId=a&serviceCode=1", "missing field `phoneNumber`"),
            (
                "sessionId=a&serviceCode=1&phoneNumber=hello",
                "phoneNumber: phone number has a character that is not a digit",
            ),
            (
                "sessionId=a&serviceCode=1&phoneNumber=%2B12",
                "phoneNumber: phone number has the wrong number of digits",
            ),
            (
                "sessionId=&serviceCode=1&phoneNumber=%2B996555123456",
                "sessionId is not a valid id",
            ),
            (
                "sessionId=a%20b&serviceCode=1&phoneNumber=%2B996555123456",
                "sessionId is not a valid id",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                at().parse_ussd(&req(body)).unwrap_err(),
                ChannelError::BadRequest(want.into()),
                "{body}"
            );
        }
    }

    #[test]
    fn replies_are_con_or_end_plain_text() {
        let r = at().render_ussd("Где вы?\n1 Бишкек", false);
        assert_eq!(r.body, "CON Где вы?\n1 Бишкек");
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.content_type.starts_with("text/plain"));
        assert_eq!(at().render_ussd("Bye", true).body, "END Bye");
    }
}
