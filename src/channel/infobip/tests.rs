use super::*;
use crate::channel::mock::{MockResponse, MockServer};
use crate::problem::Problem;
use bytes::Bytes;
use http::HeaderMap;
use std::time::Duration;

fn ib() -> Infobip {
    Infobip {
        name: "infobip".into(),
        auth: SharedSecretAuth::default(),
        sender: None,
        tps: 10,
    }
}

fn req_q(query: Option<&str>, body: &str) -> Request {
    Request {
        path: String::new(),
        method: Method::POST,
        query: query.map(str::to_owned),
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_owned()),
        peer: "127.0.0.1".parse().unwrap(),
    }
}

fn req(body: &str) -> Request {
    req_q(None, body)
}

fn bad(msg: &str) -> ChannelError {
    ChannelError::BadRequest(msg.into())
}

/// Infobip's documented inbound message, with a Kyrgyz sender, Cyrillic
/// text and a field Infobip does not document (yet).
const INBOUND: &str = r#"{
  "results": [
    {
      "messageId": "817790313235066447",
      "from": "996555123456",
      "to": "996312000111",
      "text": "ПОМОЩЬ Бишкек",
      "cleanText": "Бишкек",
      "keyword": "ПОМОЩЬ",
      "receivedAt": "2016-10-06T09:28:39.220+0000",
      "smsCount": 1,
      "price": {"pricePerMessage": 0, "currency": "EUR"},
      "callbackData": "callbackData",
      "entityId": "new-field"
    }
  ],
  "messageCount": 1,
  "pendingMessageCount": 0
}"#;

fn inbound(result: &str) -> String {
    format!(r#"{{"results":[{result}],"messageCount":1,"pendingMessageCount":0}}"#)
}

#[test]
fn sms_parses_the_documented_payload_and_ignores_extras() {
    let m = ib().parse_sms(&req(INBOUND)).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].message_id.as_deref(), Some("817790313235066447"));
    assert_eq!(m[0].from.as_str(), "+996555123456", "Infobip omits the +");
    assert_eq!(m[0].to, "996312000111");
    assert_eq!(m[0].text, "ПОМОЩЬ Бишкек", "text, not cleanText");
    assert!(
        !format!("{:?}", m[0]).contains("ПОМОЩЬ"),
        "Debug hides the text"
    );
}

#[test]
fn sms_batch_gives_one_message_per_result_in_order() {
    let body = r#"{"results":[
        {"messageId":"a1","from":"996555123456","to":"1","text":"first"},
        {"messageId":"a2","from":"380501234567","to":"1","text":"second"}
    ],"messageCount":2,"pendingMessageCount":0}"#;
    let m = ib().parse_sms(&req(body)).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].message_id.as_deref(), Some("a1"));
    assert_eq!(m[0].text, "first");
    assert_eq!(m[1].message_id.as_deref(), Some("a2"));
    assert_eq!(m[1].from.as_str(), "+380501234567");
    assert_eq!(m[1].text, "second");
}

#[test]
fn sms_missing_fields_are_named_without_values() {
    for (result, field) in [
        (
            r#"{"from":"996555123456","to":"1","text":"x"}"#,
            "messageId",
        ),
        (r#"{"messageId":"a","to":"1","text":"x"}"#, "from"),
        (
            r#"{"messageId":"a","from":"996555123456","to":"1"}"#,
            "text",
        ),
    ] {
        assert_eq!(
            ib().parse_sms(&req(&inbound(result))).unwrap_err(),
            bad(&format!("missing field `{field}`")),
            "{result}"
        );
    }
    assert_eq!(
        ib().parse_sms(&req(r#"{"messageCount":0}"#)).unwrap_err(),
        bad("missing field `results`")
    );
    // `to` is informative only: a report without it still gets through.
    let m = ib()
        .parse_sms(&req(&inbound(
            r#"{"messageId":"a","from":"996555123456","text":"x"}"#,
        )))
        .unwrap();
    assert_eq!(m[0].to, "");
}

#[test]
fn sms_malformed_input_is_refused_without_echoing_it() {
    let secret_text = "ПОМОЩЬ Бишкек";
    let cases = [
        (
            "not json".to_owned(),
            "body is not valid JSON of the expected shape",
        ),
        (
            format!(
                r#"{{"results":[{{"messageId":"a","from":"996555123456","text":"{secret_text}""#
            ),
            "body is not valid JSON of the expected shape",
        ),
        (
            r#"{"results":{"messageId":"a"}}"#.to_owned(),
            "body is not valid JSON of the expected shape",
        ),
        (
            inbound(r#"{"messageId":"a","from":996555123456,"text":"x"}"#),
            "body is not valid JSON of the expected shape",
        ),
        (
            inbound(r#"{"messageId":"a","from":"InfoSMS","text":"x"}"#),
            "results[0].from: phone number has a character that is not a digit",
        ),
        (
            inbound(r#"{"messageId":"a","from":"12","text":"x"}"#),
            "results[0].from: phone number has the wrong number of digits",
        ),
        (
            inbound(r#"{"messageId":"a b","from":"996555123456","text":"x"}"#),
            "results[0].messageId is not a valid id",
        ),
        (
            inbound(r#"{"messageId":"","from":"996555123456","text":"x"}"#),
            "results[0].messageId is not a valid id",
        ),
    ];
    for (body, want) in cases {
        let e = ib().parse_sms(&req(&body)).unwrap_err();
        assert_eq!(e, bad(want), "{body}");
        assert!(!e.to_string().contains("996555123456"));
        assert!(!e.to_string().contains(secret_text));
    }
}

#[test]
fn sms_text_and_batch_size_are_bounded() {
    let long = "я".repeat(MAX_TEXT_BYTES / 2 + 1);
    let body = inbound(&format!(
        r#"{{"messageId":"a","from":"996555123456","text":"{long}"}}"#
    ));
    assert_eq!(
        ib().parse_sms(&req(&body)).unwrap_err(),
        bad("results[0].text is too long")
    );
    let at_limit = "я".repeat(MAX_TEXT_BYTES / 2);
    let body = inbound(&format!(
        r#"{{"messageId":"a","from":"996555123456","text":"{at_limit}"}}"#
    ));
    assert!(ib().parse_sms(&req(&body)).is_ok());

    let one = r#"{"messageId":"a","from":"996555123456","text":"x"}"#;
    let batch = |n: usize| format!(r#"{{"results":[{}]}}"#, vec![one; n].join(","));
    assert_eq!(
        ib().parse_sms(&req(&batch(MAX_RESULTS))).unwrap().len(),
        MAX_RESULTS
    );
    assert_eq!(
        ib().parse_sms(&req(&batch(MAX_RESULTS + 1))).unwrap_err(),
        bad("results has more than 100 entries")
    );
    assert!(
        ib().parse_sms(&req(r#"{"results":[]}"#))
            .unwrap()
            .is_empty()
    );
}

/// Infobip's documented delivery report, with the status group varied.
fn report(message_id: &str, group: &str, name: &str) -> String {
    format!(
        r#"{{"results":[{{"bulkId":"BULK-ID-123-xyz","messageId":"{message_id}","to":"996555123456","sentAt":"2019-11-09T16:00:00.000+0000","doneAt":"2019-11-09T16:00:00.000+0000","smsCount":1,"price":{{"pricePerMessage":0.01,"currency":"EUR"}},"status":{{"groupId":3,"groupName":"{group}","id":5,"name":"{name}","description":"Message delivered to handset"}},"error":{{"groupId":0,"groupName":"OK","id":0,"name":"NO_ERROR","description":"No Error","permanent":false}},"callbackData":"x"}}]}}"#
    )
}

#[test]
fn every_delivery_group_maps_and_unknown_ones_are_refused() {
    let cases = [
        (
            "DELIVERED",
            "DELIVERED_TO_HANDSET",
            DeliveryState::Delivered,
            None,
        ),
        ("PENDING", "PENDING_ENROUTE", DeliveryState::Sent, None),
        ("ACCEPTED", "MESSAGE_ACCEPTED", DeliveryState::Sent, None),
        (
            "UNDELIVERABLE",
            "UNDELIVERABLE_NOT_DELIVERED",
            DeliveryState::Failed,
            Some("UNDELIVERABLE_NOT_DELIVERED"),
        ),
        (
            "REJECTED",
            "REJECTED_NETWORK",
            DeliveryState::Failed,
            Some("REJECTED_NETWORK"),
        ),
        (
            "EXPIRED",
            "EXPIRED_EXPIRED",
            DeliveryState::Failed,
            Some("EXPIRED_EXPIRED"),
        ),
    ];
    for (group, name, state, reason) in cases {
        let s = ib()
            .parse_status(&req(&report("MESSAGE-ID-123-xyz", group, name)))
            .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].state, state, "{group}");
        assert_eq!(s[0].provider_id.as_deref(), Some("MESSAGE-ID-123-xyz"));
        assert_eq!(s[0].message_id, None, "no m in the URL");
        assert_eq!(s[0].reason.as_deref(), reason, "{group}");
    }
    assert_eq!(
        ib().parse_status(&req(&report("x", "TELEPORTED", "X")))
            .unwrap_err(),
        bad("results[0].status.groupName is not a known delivery status")
    );
    // A failure whose name is not a code keeps no reason.
    let s = ib()
        .parse_status(&req(&report("x", "REJECTED", "rejected by +996555123456")))
        .unwrap();
    assert_eq!(s[0].state, DeliveryState::Failed);
    assert_eq!(s[0].reason, None);
}

#[test]
fn status_reports_carry_our_id_from_the_notify_url() {
    let s = ib()
        .parse_status(&req_q(
            Some("secret=s&m=msg-42"),
            &report("msg-42", "DELIVERED", "DELIVERED_TO_HANDSET"),
        ))
        .unwrap();
    assert_eq!(s[0].message_id.as_deref(), Some("msg-42"));
    // Infobip chose its own id: the lone report still belongs to the URL's.
    let s = ib()
        .parse_status(&req_q(
            Some("m=msg-42"),
            &report("2250be2d4219-3af1", "DELIVERED", "DELIVERED_TO_HANDSET"),
        ))
        .unwrap();
    assert_eq!(s[0].message_id.as_deref(), Some("msg-42"));
    assert_eq!(s[0].provider_id.as_deref(), Some("2250be2d4219-3af1"));
    // In a batch, only the report about that message gets it.
    let batch = r#"{"results":[
        {"messageId":"msg-42","status":{"groupName":"DELIVERED","name":"DELIVERED_TO_HANDSET"}},
        {"messageId":"other","status":{"groupName":"EXPIRED","name":"EXPIRED_EXPIRED"}}
    ]}"#;
    let s = ib().parse_status(&req_q(Some("m=msg-42"), batch)).unwrap();
    assert_eq!(s[0].message_id.as_deref(), Some("msg-42"));
    assert_eq!(s[1].message_id, None);
    assert_eq!(s[1].provider_id.as_deref(), Some("other"));
    assert_eq!(s[1].reason.as_deref(), Some("EXPIRED_EXPIRED"));
    assert_eq!(
        ib().parse_status(&req_q(Some("m=a%20b"), &report("x", "DELIVERED", "D")))
            .unwrap_err(),
        bad("m is not a valid id")
    );
}

#[test]
fn status_missing_fields_are_named() {
    for (body, field) in [
        (
            r#"{"results":[{"status":{"groupName":"DELIVERED"}}]}"#,
            "messageId",
        ),
        (r#"{"results":[{"messageId":"a"}]}"#, "status"),
        (
            r#"{"results":[{"messageId":"a","status":{"name":"X"}}]}"#,
            "groupName",
        ),
        (r#"{}"#, "results"),
    ] {
        assert_eq!(
            ib().parse_status(&req(body)).unwrap_err(),
            bad(&format!("missing field `{field}`")),
            "{body}"
        );
    }
    assert_eq!(
        ib().parse_status(&req("results=1")).unwrap_err(),
        bad("body is not valid JSON of the expected shape")
    );
}

#[test]
fn only_sms_and_status_are_served_and_auth_is_the_shared_secret() {
    let c = ib();
    assert_eq!(c.methods(Event::Sms), Some(&[Method::POST][..]));
    assert_eq!(c.methods(Event::Status), Some(&[Method::POST][..]));
    assert_eq!(c.methods(Event::Ussd), None);
    assert_eq!(
        c.parse_ussd(&req("")).unwrap_err(),
        ChannelError::NotSupported
    );

    let mut cfg = config(&[]);
    cfg.secret = Some("s3cret".into());
    let c = Infobip::new(
        &cfg,
        &Settings::new(&cfg, 0, "t.toml"),
        reqwest::Client::new(),
    );
    assert!(c.authenticate(&req_q(Some("secret=s3cret"), "")).is_ok());
    assert_eq!(
        c.authenticate(&req_q(Some("secret=nope"), "")),
        Err(ChannelError::Forbidden)
    );
    assert_eq!(c.authenticate(&req("")), Err(ChannelError::Forbidden));
}

const ACCEPTED: &str = r#"{"bulkId":"2034072219640523072","messages":[{"to":"996555123456","status":{"groupId":1,"groupName":"PENDING","id":26,"name":"PENDING_ACCEPTED","description":"Message sent to next instance"},"messageId":"m1"}]}"#;

fn sending_ib(url: &str, public_url: Option<&str>) -> Infobip {
    Infobip {
        name: "infobip".into(),
        auth: SharedSecretAuth::default(),
        sender: Some(Sender {
            base_url: url.to_owned(),
            api_key: "key-123".into(),
            from: Some("Hotline".into()),
            public_url: public_url.map(str::to_owned),
            secret: Some("s3cret".into()),
            http: crate::channel::http_client(),
        }),
        tps: 10,
    }
}

fn to() -> PhoneNumber {
    PhoneNumber::parse_international("+996555123456").unwrap()
}

async fn send_once(c: &Infobip) -> SendOutcome {
    let to = to();
    c.send(OutSms {
        id: "m1",
        to: &to,
        text: "Код 4821",
    })
    .await
}

#[tokio::test]
async fn send_posts_the_documented_request_to_the_api() {
    let api = MockServer::start(vec![MockResponse::new(200, ACCEPTED)]).await;
    let out = send_once(&sending_ib(&api.url, Some("https://hotline.example.org/"))).await;
    assert_eq!(
        out,
        SendOutcome::Sent {
            provider_id: Some("m1".into())
        }
    );
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/sms/2/text/advanced");
    assert_eq!(r.header("authorization"), Some("App key-123"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"messages":[{
            "destinations":[{"to":"996555123456","messageId":"m1"}],
            "from":"Hotline",
            "text":"Код 4821",
            "notifyUrl":"https://hotline.example.org/webhooks/infobip/status?secret=s3cret&m=m1",
            "notifyContentType":"application/json"
        }]})
    );
}

#[tokio::test]
async fn send_without_public_url_or_sender_id_leaves_them_out() {
    let api = MockServer::start(vec![MockResponse::new(200, ACCEPTED)]).await;
    let mut c = sending_ib(&api.url, None);
    if let Some(s) = c.sender.as_mut() {
        s.from = None;
    }
    assert!(matches!(send_once(&c).await, SendOutcome::Sent { .. }));
    let body: serde_json::Value = serde_json::from_slice(&api.requests()[0].body).unwrap();
    let m = &body["messages"][0];
    assert!(m.get("notifyUrl").is_none());
    assert!(m.get("notifyContentType").is_none());
    assert!(m.get("from").is_none());
    assert_eq!(m["destinations"][0]["to"], "996555123456");
}

#[tokio::test]
async fn send_answers_are_classified() {
    let rejected = r#"{"bulkId":"b","messages":[{"to":"996555123456","status":{"groupId":5,"groupName":"REJECTED","id":51,"name":"REJECTED_DESTINATION","description":"Destination rejected"},"messageId":"m1"}]}"#;
    let unauthorized = r#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#;
    let bad_request = r#"{"requestError":{"serviceException":{"messageId":"BAD_REQUEST","text":"Invalid destination address 996555123456"}}}"#;
    let cases = [
        (
            MockResponse::new(200, rejected),
            SendOutcome::Permanent {
                reason: "REJECTED_DESTINATION".into(),
            },
        ),
        (
            MockResponse::new(429, "").header("Retry-After", "7"),
            SendOutcome::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "http 429".into(),
            },
        ),
        (
            MockResponse::new(500, "oops"),
            SendOutcome::Retry {
                after: None,
                reason: "http 500".into(),
            },
        ),
        (
            MockResponse::new(503, "").header("Retry-After", "30"),
            SendOutcome::Retry {
                after: Some(Duration::from_secs(30)),
                reason: "http 503".into(),
            },
        ),
        (
            MockResponse::new(401, unauthorized),
            SendOutcome::Permanent {
                reason: "http 401 (check api key)".into(),
            },
        ),
        (
            MockResponse::new(403, unauthorized),
            SendOutcome::Permanent {
                reason: "http 403 (check api key)".into(),
            },
        ),
        (
            MockResponse::new(400, bad_request),
            SendOutcome::Permanent {
                reason: "BAD_REQUEST".into(),
            },
        ),
        (
            MockResponse::new(404, "<html>not found</html>"),
            SendOutcome::Permanent {
                reason: "http 404".into(),
            },
        ),
        (
            MockResponse::new(200, "<html>proxy</html>"),
            SendOutcome::Retry {
                after: None,
                reason: "unreadable reply".into(),
            },
        ),
        (
            MockResponse::new(200, r#"{"bulkId":"b","messages":[]}"#),
            SendOutcome::Permanent {
                reason: "no message accepted".into(),
            },
        ),
    ];
    for (answer, want) in cases {
        let api = MockServer::start(vec![answer.clone()]).await;
        let out = send_once(&sending_ib(&api.url, None)).await;
        assert_eq!(out, want, "{} {}", answer.status, answer.body);
        if let SendOutcome::Permanent { reason } | SendOutcome::Retry { reason, .. } = &out {
            assert!(!reason.contains("996555123456"), "no number in {reason}");
        }
    }
}

#[tokio::test]
async fn send_against_a_dead_or_slow_api_asks_for_a_retry() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = send_once(&sending_ib(&format!("http://127.0.0.1:{port}"), None)).await;
    assert_eq!(
        out,
        SendOutcome::Retry {
            after: None,
            reason: "connect".into()
        }
    );
    let slow = MockServer::start(vec![
        MockResponse::new(200, ACCEPTED).delayed(Duration::from_secs(30)),
    ])
    .await;
    let mut c = sending_ib(&slow.url, None);
    if let Some(s) = c.sender.as_mut() {
        s.http = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
    }
    assert_eq!(
        send_once(&c).await,
        SendOutcome::Retry {
            after: None,
            reason: "timeout".into()
        }
    );
}

fn config(settings: &[(&str, &str)]) -> ChannelConfig {
    let mut table = toml::Table::new();
    for (k, v) in settings {
        table.insert((*k).to_owned(), toml::Value::String((*v).to_owned()));
    }
    ChannelConfig {
        name: "infobip".into(),
        kind: ChannelKind::Infobip,
        flow: "default".into(),
        secret: None,
        allow_ips: vec![],
        settings: table,
        env: [("IB_KEY".to_owned(), "key-123".to_owned())].into(),
    }
}

fn problems(cfg: &ChannelConfig) -> Vec<Problem> {
    crate::channel::build(2, cfg, "hotline.toml", &reqwest::Client::new())
        .err()
        .unwrap_or_default()
}

fn keys(cfg: &ChannelConfig) -> Vec<String> {
    problems(cfg).into_iter().map(|p| p.key).collect()
}

#[test]
fn settings_problems_name_their_keys() {
    let good = config(&[
        ("base_url", "https://xk2d9.api.infobip.com"),
        ("api_key_env", "IB_KEY"),
        ("from", "Hotline"),
        ("public_url", "https://hotline.example.org"),
    ]);
    assert_eq!(problems(&good), vec![]);
    let ch = crate::channel::build(2, &good, "hotline.toml", &reqwest::Client::new())
        .ok()
        .unwrap();
    assert_eq!(ch.kind(), ChannelKind::Infobip);
    assert!(ch.can_send());
    assert_eq!(ch.tps(), 10);

    // Receiving only: no key.
    let recv = config(&[("base_url", "https://xk2d9.api.infobip.com")]);
    let ch = crate::channel::build(2, &recv, "hotline.toml", &reqwest::Client::new())
        .ok()
        .unwrap();
    assert!(!ch.can_send());

    let missing = config(&[("api_key_env", "IB_KEY")]);
    let p = problems(&missing);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "channels[2].base_url");
    assert_eq!(p[0].message, "missing: infobip channels need it");

    for url in ["xk2d9.api.infobip.com", "ftp://x", "https://bad host"] {
        assert_eq!(
            keys(&config(&[("base_url", url)])),
            vec![format!("channels[2].base_url = {url:?}")],
            "{url}"
        );
    }
    assert_eq!(
        keys(&config(&[("base_url", "https://[::1")])),
        vec!["channels[2].base_url = \"https://[::1\"".to_owned()]
    );
    assert_eq!(
        keys(&config(&[
            ("base_url", "https://x.api.infobip.com"),
            ("public_url", "hotline.example.org"),
        ])),
        vec!["channels[2].public_url = \"hotline.example.org\"".to_owned()]
    );
    assert_eq!(
        keys(&config(&[
            ("base_url", "https://x.api.infobip.com"),
            ("username", "me"),
        ])),
        vec!["channels[2].username".to_owned()]
    );

    let mut bad_key = config(&[
        ("base_url", "https://x.api.infobip.com"),
        ("api_key_env", "IB_KEY"),
    ]);
    bad_key.env.insert("IB_KEY".into(), "abc\ndef".into());
    let p = problems(&bad_key);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "channels[2].api_key_env");
    assert!(!p[0].to_string().contains("abc"), "never echo the key");
}

#[tokio::test]
async fn a_configured_channel_sends_with_its_settings() {
    let api = MockServer::start(vec![MockResponse::new(200, ACCEPTED)]).await;
    let mut cfg = config(&[
        ("base_url", &format!("{}/", api.url)),
        ("api_key_env", "IB_KEY"),
        ("from", "Hotline"),
        ("public_url", "https://hotline.example.org"),
    ]);
    cfg.secret = Some("s3cret".into());
    let ch = crate::channel::build(0, &cfg, "hotline.toml", &crate::channel::http_client())
        .ok()
        .unwrap();
    let to = to();
    let out = ch
        .send(OutSms {
            id: "m7",
            to: &to,
            text: "x",
        })
        .await;
    assert!(matches!(out, SendOutcome::Sent { .. }), "{out:?}");
    let r = &api.requests()[0];
    assert_eq!(r.uri, "/sms/2/text/advanced");
    assert_eq!(r.header("authorization"), Some("App key-123"));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["messages"][0]["from"], "Hotline");
    assert_eq!(body["messages"][0]["destinations"][0]["messageId"], "m7");
    assert_eq!(
        body["messages"][0]["notifyUrl"],
        "https://hotline.example.org/webhooks/infobip/status?secret=s3cret&m=m7"
    );
}
