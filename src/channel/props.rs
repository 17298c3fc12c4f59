//! Property tests for every adapter's parsers: whatever arrives — any bytes
//! in the body, any query, any headers an aggregator might send — a parser
//! answers `Ok` or a `ChannelError`, never panics, and never echoes what it
//! was sent in its error.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, Method};
use proptest::prelude::*;

use super::{Channel, ChannelError, Request, build, http_client};

const CONFIG: &str = r#"
[flows]
dir = "flows"
default = "legal_help"
fallback_phone = "112"
[[channels]]
name = "africastalking"
kind = "africastalking"
[[channels]]
name = "twilio"
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token_env = "T_TOKEN"
from = "+12025550143"
public_url = "https://gw.hotline.test"
[[channels]]
name = "kannel"
kind = "kannel"
[[channels]]
name = "infobip"
kind = "infobip"
base_url = "https://x.api.infobip.com"
[[channels]]
name = "ussdjson"
kind = "ussd"
format = "json"
session_field = "session.id"
phone_field = "msisdn"
text_field = "input"
input = "latest"
reply = "json"
reply_end_field = "end"
[[channels]]
name = "ussdform"
kind = "ussd"
format = "form"
session_field = "sid"
phone_field = "from"
text_field = "text"
input = "cumulative"
reply = "text"
"#;

fn channels() -> Vec<std::sync::Arc<dyn Channel>> {
    let env: BTreeMap<&str, &str> = [("T_TOKEN", "token")].into_iter().collect();
    let (cfg, _) = crate::config::parse(CONFIG, "c.toml", Path::new("."), &env).expect("config");
    let http = http_client();
    cfg.channels
        .iter()
        .enumerate()
        .map(|(i, c)| build(i, c, "c.toml", &http).expect("channel builds"))
        .collect()
}

fn request(body: Vec<u8>, query: Option<String>, json: bool) -> Request {
    let mut headers = HeaderMap::new();
    let ct = if json {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
    Request {
        path: "/webhooks/x/sms".into(),
        method: Method::POST,
        query,
        headers,
        body: Bytes::from(body),
        peer: "127.0.0.1".parse().unwrap(),
    }
}

/// Bodies shaped like what aggregators send, with arbitrary values.
fn body() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let value = prop_oneof!["\\PC{0,30}", "[0-9+]{0,20}", Just(String::new())];
    let names = prop::sample::select(vec![
        "sessionId",
        "serviceCode",
        "phoneNumber",
        "text",
        "from",
        "to",
        "id",
        "status",
        "failureReason",
        "MessageSid",
        "From",
        "To",
        "Body",
        "AccountSid",
        "MessageStatus",
        "ErrorCode",
        "m",
        "d",
        "sid",
        "msisdn",
        "input",
        "coding",
        "charset",
    ]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| (b, false)),
        prop::collection::vec((names.clone(), value.clone()), 0..8)
            .prop_map(|f| (serde_urlencoded::to_string(&f).unwrap_or_default().into_bytes(), false)),
        prop::collection::vec((names, value), 0..8).prop_map(|f| {
            let obj: serde_json::Map<String, serde_json::Value> = f.into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
            let results = serde_json::json!({ "results": [obj.clone()], "session": { "id": obj.get("sid").cloned() }, "msisdn": obj.get("msisdn").cloned(), "input": obj.get("text").cloned() });
            (results.to_string().into_bytes(), true)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_parser_panics_or_echoes_its_input((body, json) in body(), query in proptest::option::of("[a-z=&%0-9+]{0,40}"), secret in "[0-9]{9}") {
        // Plant a number-like string: it must never come back in an error.
        let mut planted = body.clone();
        planted.extend_from_slice(format!("&text=99655{secret}").as_bytes());
        for ch in channels() {
            for b in [&body, &planted] {
                let req = request(b.clone(), query.clone(), json);
                let results: Vec<Result<(), ChannelError>> = vec![
                    ch.parse_ussd(&req).map(|_| ()),
                    ch.parse_sms(&req).map(|_| ()),
                    ch.parse_status(&req).map(|_| ()),
                    ch.authenticate(&req),
                ];
                for r in results {
                    if let Err(e) = r {
                        prop_assert!(!e.to_string().contains(&secret), "{} echoed its input: {e}", ch.name());
                    }
                }
            }
        }
    }
}
