//! Infobip: parsing its inbound messages and delivery reports, and who may
//! call (sending is in `send`).

use super::*;
use crate::config::ChannelConfig;
use bytes::Bytes;
use http::HeaderMap;

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
fn a_message_that_cannot_be_read_is_refused_alone_not_its_whole_batch() {
    // An operator's alphanumeric sender beside a woman's SOS: she must not
    // lose hers (a retried batch meets the same refusal every time).
    let body = r#"{"results":[
        {"messageId":"w1","from":"996700222001","to":"1","text":"SOS"},
        {"messageId":"w2","from":"Beeline","to":"1","text":"Balance"},
        {"messageId":"bad id","from":"996700222003","to":"1","text":"x"}
    ],"messageCount":3,"pendingMessageCount":0}"#;
    let (m, refused) = ib().parse_sms_batch(&req(body)).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].message_id.as_deref(), Some("w1"));
    assert_eq!(m[0].text, "SOS");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].starts_with("results[1].from: "), "{refused:?}");
    assert!(
        !refused[0].contains("Beeline"),
        "names the field, not the value"
    );
    assert_eq!(refused[1], "results[2].messageId is not a valid id");
    // `parse_sms` (one answer for the batch) still refuses it.
    assert!(ib().parse_sms(&req(body)).is_err());
    // A batch with nothing readable is refused whole.
    let none = r#"{"results":[
        {"messageId":"w2","from":"Beeline","to":"1","text":"Balance"}
    ],"messageCount":1,"pendingMessageCount":0}"#;
    assert!(matches!(
        ib().parse_sms_batch(&req(none)),
        Err(ChannelError::BadRequest(r)) if r.starts_with("results[0].from: ")
    ));
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

    let mut cfg = config(&[("base_url", "https://x.api.infobip.com")]);
    cfg.secret = Some("s3cret".into());
    let c = Infobip::new(&mut Checks::new(&cfg, 0, "t.toml"), reqwest::Client::new()).unwrap();
    assert!(c.authenticate(&req_q(Some("secret=s3cret"), "")).is_ok());
    assert_eq!(
        c.authenticate(&req_q(Some("secret=nope"), "")),
        Err(ChannelError::Forbidden)
    );
    assert_eq!(c.authenticate(&req("")), Err(ChannelError::Forbidden));
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

mod send;
