//! Africa's Talking: parsing its webhooks, classifying its answers to a
//! send, and sending to a stand-in API.

use super::*;
use crate::channel::Fault;
use bytes::Bytes;
use http::HeaderMap;

fn at() -> AfricasTalking {
    AfricasTalking {
        name: "africastalking".into(),
        auth: SharedSecretAuth::default(),
        sender: None,
        tps: 10,
    }
}

fn req(body: &str) -> Request {
    Request {
        method: Method::POST,
        path: "/webhooks/africastalking/sms".into(),
        query: None,
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_owned()),
        peer: "127.0.0.1".parse().unwrap(),
    }
}

#[test]
fn ussd_parses_the_documented_fields_and_ignores_extras() {
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
fn ussd_missing_and_malformed_fields_are_named_without_values() {
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
fn ussd_replies_are_con_or_end_plain_text() {
    let r = at().render_ussd("Где вы?\n1 Бишкек", false);
    assert_eq!(r.body, "CON Где вы?\n1 Бишкек");
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/plain"));
    assert_eq!(at().render_ussd("Bye", true).body, "END Bye");
}

#[test]
fn sms_parses_every_documented_field() {
    let body = "from=%2B996555123456&to=21212&text=%D0%9F%D0%9E%D0%9C%D0%9E%D0%A9%D0%AC&date=2017-05-03+06%3A04%3A45&id=ATXid_7&linkId=&networkCode=43701";
    let m = at().parse_sms(&req(body)).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].from.as_str(), "+996555123456");
    assert_eq!(m[0].to, "21212");
    assert_eq!(m[0].text, "ПОМОЩЬ");
    assert_eq!(m[0].message_id.as_deref(), Some("ATXid_7"));
    // Without linkId and id at all, and with a second date form.
    let m = at()
        .parse_sms(&req(
            "from=996555123456&to=21212&text=HELP&date=2017-05-03T06%3A04%3A45Z",
        ))
        .unwrap();
    assert_eq!(m[0].message_id, None);
    assert!(
        !format!("{:?}", m[0]).contains("HELP"),
        "Debug hides the text"
    );
}

#[test]
fn sms_missing_and_malformed_fields() {
    for (body, want) in [
        ("to=1&text=x&id=1", "missing field `from`"),
        ("from=%2B996555123456&to=1&id=1", "missing field `text`"),
        (
            "from=abc&to=1&text=x",
            "from: phone number has a character that is not a digit",
        ),
        (
            "from=%2B996555123456&to=1&text=x&id=a%0Ab",
            "id is not a valid id",
        ),
    ] {
        assert_eq!(
            at().parse_sms(&req(body)).unwrap_err(),
            ChannelError::BadRequest(want.into()),
            "{body}"
        );
    }
}

#[test]
fn every_delivery_status_maps_and_unknown_ones_are_refused() {
    let cases = [
        ("Success", DeliveryState::Delivered),
        ("Sent", DeliveryState::Sent),
        ("Submitted", DeliveryState::Sent),
        ("Buffered", DeliveryState::Sent),
        ("Rejected", DeliveryState::Failed),
        ("Failed", DeliveryState::Failed),
    ];
    for (status, state) in cases {
        let body = format!(
            "id=ATXid_1&status={status}&phoneNumber=%2B996555123456&networkCode=43701&retryCount=0&failureReason=UserInBlackList"
        );
        let s = at().parse_status(&req(&body)).unwrap();
        assert_eq!(s[0].state, state, "{status}");
        assert_eq!(s[0].provider_id.as_deref(), Some("ATXid_1"));
        assert_eq!(s[0].reason.as_deref(), Some("UserInBlackList"));
    }
    assert_eq!(
        at().parse_status(&req("id=ATXid_1&status=Teleported"))
            .unwrap_err(),
        ChannelError::BadRequest("status is not a known delivery status".into())
    );
    assert_eq!(
        at().parse_status(&req("status=Success")).unwrap_err(),
        ChannelError::BadRequest("missing field `id`".into())
    );
}

/// Classify an answer as a send would.
fn classify(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> SendOutcome {
    send::classify(
        &RULES,
        send::Answer::Http {
            status: status.as_u16(),
            retry_after: send::retry_after(headers),
            body: read(status.as_u16(), body),
        },
    )
}

fn reply(code: u16, status: &str) -> Vec<u8> {
    format!(
        r#"{{"SMSMessageData":{{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{{"statusCode":{code},"number":"+254711XXXYYY","status":"{status}","cost":"KES 0.8000","messageId":"ATXid_abc"}}]}}}}"#
    )
    .into_bytes()
}

#[test]
fn each_recipients_status_code_is_classified() {
    let h = reqwest::header::HeaderMap::new();
    let ok = reqwest::StatusCode::CREATED;
    assert_eq!(
        classify(ok, &h, &reply(101, "Success")),
        SendOutcome::Sent {
            provider_id: Some("ATXid_abc".into())
        }
    );
    assert_eq!(
        classify(ok, &h, &reply(102, "Queued")),
        SendOutcome::Sent {
            provider_id: Some("ATXid_abc".into())
        }
    );
    assert_eq!(
        classify(ok, &h, &reply(406, "UserInBlacklist")),
        SendOutcome::OptedOut
    );
    for (code, status, fault) in [
        (401, "RiskHold", Fault::Channel),
        (402, "InvalidSenderId", Fault::Channel),
        (403, "InvalidPhoneNumber", Fault::Recipient),
        (404, "UnsupportedNumberType", Fault::Recipient),
        (405, "InsufficientBalance", Fault::Channel),
        (407, "CouldNotRoute", Fault::Recipient),
    ] {
        assert_eq!(
            classify(ok, &h, &reply(code, status)),
            SendOutcome::Permanent {
                reason: status.into(),
                fault
            },
            "{code}"
        );
    }
    // A status text that is not a code is not used.
    assert_eq!(
        classify(ok, &h, &reply(403, "Invalid phone number +254711")),
        SendOutcome::Permanent {
            reason: "403".into(),
            fault: Fault::Recipient
        }
    );
    assert!(matches!(
        classify(ok, &h, &reply(500, "InternalServerError")),
        SendOutcome::Retry { .. }
    ));
    assert!(matches!(
        classify(ok, &h, &reply(502, "RejectedByGateway")),
        SendOutcome::Retry { .. }
    ));
}

#[test]
fn http_answers_are_classified() {
    let h = reqwest::header::HeaderMap::new();
    let ok = reqwest::StatusCode::CREATED;
    let mut h429 = reqwest::header::HeaderMap::new();
    h429.insert("Retry-After", "7".parse().unwrap());
    assert_eq!(
        classify(reqwest::StatusCode::TOO_MANY_REQUESTS, &h429, b""),
        SendOutcome::Retry {
            after: Some(std::time::Duration::from_secs(7)),
            reason: "http 429".into()
        }
    );
    assert_eq!(
        classify(
            reqwest::StatusCode::UNAUTHORIZED,
            &h,
            b"The supplied authentication is invalid"
        ),
        SendOutcome::Permanent {
            reason: "http 401 (check username and api key)".into(),
            fault: Fault::Channel
        }
    );
    assert!(matches!(
        classify(reqwest::StatusCode::BAD_GATEWAY, &h, b""),
        SendOutcome::Retry { .. }
    ));
    assert!(matches!(
        classify(ok, &h, b"not json"),
        SendOutcome::Retry { .. }
    ));
    assert_eq!(
        classify(
            ok,
            &h,
            br#"{"SMSMessageData":{"Message":"InvalidSenderId","Recipients":[]}}"#
        ),
        SendOutcome::Permanent {
            reason: "no recipient accepted".into(),
            fault: Fault::Channel
        }
    );
}

fn sending_at(url: &str) -> AfricasTalking {
    AfricasTalking {
        name: "africastalking".into(),
        auth: SharedSecretAuth::default(),
        sender: Some(Sender {
            username: "hotline".into(),
            api_key: "key-123".into(),
            from: Some("21212".into()),
            base_url: url.to_owned(),
            http: crate::channel::http_client(),
        }),
        tps: 10,
    }
}

#[tokio::test]
async fn send_posts_the_documented_request_to_the_api() {
    use crate::channel::mock::{MockResponse, MockServer};
    let api = MockServer::start(vec![MockResponse::new(
        201,
        String::from_utf8(reply(101, "Success")).unwrap(),
    )])
    .await;
    let to = PhoneNumber::parse_international("+996555123456").unwrap();
    let out = sending_at(&api.url)
        .send(OutSms {
            id: "m1",
            to: &to,
            text: "Код 4821",
        })
        .await;
    assert_eq!(
        out,
        SendOutcome::Sent {
            provider_id: Some("ATXid_abc".into())
        }
    );
    let r = &api.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/version1/messaging");
    assert_eq!(r.header("apikey"), Some("key-123"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(r.field("username").as_deref(), Some("hotline"));
    assert_eq!(r.field("to").as_deref(), Some("+996555123456"));
    assert_eq!(r.field("message").as_deref(), Some("Код 4821"));
    assert_eq!(r.field("from").as_deref(), Some("21212"));
    assert_eq!(r.field("bulkSMSMode").as_deref(), Some("1"));
}

#[tokio::test]
async fn send_against_a_dead_or_slow_api_asks_for_a_retry() {
    use crate::channel::mock::{MockResponse, MockServer};
    let to = PhoneNumber::parse_international("+996555123456").unwrap();
    let (_held, port) = crate::channel::dead_port();
    let out = sending_at(&format!("http://127.0.0.1:{port}"))
        .send(OutSms {
            id: "m1",
            to: &to,
            text: "x",
        })
        .await;
    assert_eq!(
        out,
        SendOutcome::Retry {
            after: None,
            reason: "connect".into()
        }
    );
    let slow = MockServer::start(vec![
        MockResponse::new(201, "{}").delayed(std::time::Duration::from_secs(30)),
    ])
    .await;
    let mut at = sending_at(&slow.url);
    if let Some(s) = at.sender.as_mut() {
        s.http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(200))
            .build()
            .unwrap();
    }
    assert_eq!(
        at.send(OutSms {
            id: "m1",
            to: &to,
            text: "x"
        })
        .await,
        SendOutcome::Retry {
            after: None,
            reason: "timeout".into()
        }
    );
}
