//! Kannel: decoding what smsbox's `get-url` sends, delivery reports,
//! settings, and sending to a stand-in smsbox.

use super::*;
use crate::channel::Fault;
use crate::channel::mock::{MockResponse, MockServer};
use crate::config::ChannelConfig;
use bytes::Bytes;
use http::HeaderMap;
use std::collections::BTreeMap;
use std::time::Duration;

fn kannel() -> KannelAdapter {
    KannelAdapter {
        name: "kannel".into(),
        auth: SharedSecretAuth::default(),
        secret: None,
        sender: None,
        tps: 10,
    }
}

fn get(query: &str) -> Request {
    Request {
        path: String::new(),
        method: Method::GET,
        query: Some(query.to_owned()),
        headers: HeaderMap::new(),
        body: Bytes::new(),
        peer: "127.0.0.1".parse().unwrap(),
    }
}

fn post(query: Option<&str>, content_type: Option<&str>, body: &str) -> Request {
    let mut headers = HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
    }
    Request {
        path: String::new(),
        method: Method::POST,
        query: query.map(str::to_owned),
        headers,
        body: Bytes::from(body.to_owned()),
        peer: "127.0.0.1".parse().unwrap(),
    }
}

fn one(r: Result<Vec<SmsIn>, ChannelError>) -> SmsIn {
    let mut v = r.unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

// Raw query strings Kannel 1.4.5 sent to get-url (tests/kannel/README.md).
const ASCII_MO: &str = "secret=topsecret&from=%2B79001234567&to=1234&text=hello++world&ts=1795890046&id=31410c4c-5c0b-4218-a8ba-3eaadc8b4d09&smsc=fake&coding=0&charset=UTF-8";
const CYRILLIC_RECODED_MO: &str = "secret=topsecret&from=%2B79001234567&to=1234&text=%D0%9F%D0%9E%D0%9C%D0%9E%D0%A9%D0%AC&ts=1795890046&id=d0fada45-bba6-4969-b71b-1e4741ff8ae0&smsc=fake&coding=0&charset=UTF-8";
const CYRILLIC_RAW_MO: &str = "secret=topsecret&from=%2B79001234567&to=1234&text=%04%1F%04%1E%04%1C%04%1E%04)%04%2C&ts=1795890046&id=d0fada45-bba6-4969-b71b-1e4741ff8ae0&smsc=fake&coding=2&charset=UTF-16BE";

#[test]
fn ascii_sms_by_get_keeps_every_space() {
    let m = one(kannel().parse_sms(&get(ASCII_MO)));
    assert_eq!(m.text, "hello  world");
    assert_eq!(m.from.as_str(), "+79001234567");
    assert_eq!(m.to, "1234");
    assert_eq!(
        m.message_id.as_deref(),
        Some("31410c4c-5c0b-4218-a8ba-3eaadc8b4d09")
    );
}

#[test]
fn cyrillic_sms_recoded_to_utf8_by_get_and_post() {
    let m = one(kannel().parse_sms(&get(CYRILLIC_RECODED_MO)));
    assert_eq!(m.text, "ПОМОЩЬ");
    assert_eq!(m.from.as_str(), "+79001234567");
    let form = Some("application/x-www-form-urlencoded");
    let m = one(kannel().parse_sms(&post(Some("secret=s"), form, CYRILLIC_RECODED_MO)));
    assert_eq!(m.text, "ПОМОЩЬ");
    assert_eq!(
        m.message_id.as_deref(),
        Some("d0fada45-bba6-4969-b71b-1e4741ff8ae0")
    );
    // A POST whose fields are all in the query.
    let m = one(kannel().parse_sms(&post(Some(CYRILLIC_RECODED_MO), None, "")));
    assert_eq!(m.text, "ПОМОЩЬ");
}

#[test]
fn cyrillic_sms_as_raw_ucs2_by_get_and_post() {
    let m = one(kannel().parse_sms(&get(CYRILLIC_RAW_MO)));
    assert_eq!(m.text, "ПОМОЩЬ");
    let m = one(kannel().parse_sms(&post(None, None, CYRILLIC_RAW_MO)));
    assert_eq!(m.text, "ПОМОЩЬ");
    // `+` is the byte 0x20 and unreserved characters stand for themselves:
    // "Привет, мир" as Kannel form-encodes its UCS-2BE bytes.
    let q = "from=79001234567&to=1234&text=%04%1F%04%40%048%042%045%04B%00%2C%00+%04%3C%048%04%40&coding=2&charset=UTF-16BE";
    assert_eq!(one(kannel().parse_sms(&get(q))).text, "Привет, мир");
    // coding=2 and no charset at all (a get-url without %C).
    let q = "from=79001234567&text=%04%1F%04%1E%04%1C%04%1E%04)%04%2C&coding=2";
    assert_eq!(one(kannel().parse_sms(&get(q))).text, "ПОМОЩЬ");
    // Kyrgyz and Georgian letters; an emoji as a surrogate pair.
    let q = "from=996555123456&text=%04%A3%04%E9%04%AF%10%D0%D8%3D%DE%00&charset=UTF-16BE";
    assert_eq!(one(kannel().parse_sms(&get(q))).text, "ңөүა😀");
}

#[test]
fn sms_text_keeps_newlines_percent_and_ampersand() {
    let q = "from=%2B996555123456&to=1234&text=Где+вы%3F%0A100%25+%26+ok&coding=0&charset=UTF-8";
    let m = one(kannel().parse_sms(&get(q)));
    assert_eq!(m.text, "Где вы?\n100% & ok");
    // Without id and charset: plain UTF-8, no dedupe key.
    let m = one(kannel().parse_sms(&get("from=996555123456&text=HELP")));
    assert_eq!(m.text, "HELP");
    assert_eq!(m.to, "");
    assert_eq!(m.message_id, None);
    assert!(!format!("{m:?}").contains("HELP"), "Debug hides the text");
}

#[test]
fn sms_sender_without_plus_becomes_e164() {
    let m = one(kannel().parse_sms(&get("from=996555123456&to=1234&text=x")));
    assert_eq!(m.from.as_str(), "+996555123456");
    let m = one(kannel().parse_sms(&get("from=00380501234567&to=1234&text=x")));
    assert_eq!(m.from.as_str(), "+380501234567");
}

#[test]
fn sms_missing_and_malformed_fields_are_named_without_values() {
    let cases = [
        ("to=1234&text=hello", "missing field `from`"),
        ("from=%2B79001234567&to=1234", "missing field `text`"),
        (
            "from=abc&text=x",
            "from: phone number has a character that is not a digit",
        ),
        (
            "from=%2B79001234567&text=%04%1F%04&coding=2&charset=UTF-16BE",
            "text is not valid UCS-2",
        ),
        (
            "from=%2B79001234567&text=%D0%9F%D0&charset=UTF-8",
            "text is not valid UTF-8",
        ),
        (
            "from=%2B79001234567&text=x&charset=KOI8-R",
            "charset is not supported",
        ),
        (
            "from=%2B79001234567&text=x&id=a%20b",
            "id is not a valid id",
        ),
    ];
    for (q, want) in cases {
        let err = kannel().parse_sms(&get(q)).unwrap_err();
        assert_eq!(err, ChannelError::BadRequest(want.into()), "{q}");
        assert!(!err.to_string().contains("79001234567"), "{err}");
    }
    let long = format!("from=%2B79001234567&text={}", "a".repeat(MAX_TEXT + 1));
    assert_eq!(
        kannel().parse_sms(&get(&long)).unwrap_err(),
        ChannelError::BadRequest("text is too long".into())
    );
}

#[test]
fn a_post_body_that_is_not_a_form_is_ignored() {
    // Kannel's post-url sends the bare text as the body; only the query's
    // fields count then.
    let r = post(
        Some("from=%2B79001234567&to=1234"),
        Some("text/plain"),
        "text=injected",
    );
    assert_eq!(
        kannel().parse_sms(&r).unwrap_err(),
        ChannelError::BadRequest("missing field `text`".into())
    );
}

#[test]
fn every_dlr_value_maps_to_a_state() {
    let cases = [
        ("1", DeliveryState::Delivered, None),
        ("2", DeliveryState::Failed, Some("dlr-2")),
        ("4", DeliveryState::Sent, None),
        ("8", DeliveryState::Sent, None),
        ("16", DeliveryState::Failed, Some("dlr-16")),
    ];
    for (d, state, reason) in cases {
        for req in [
            get(&format!("secret=s&m=msg-42&d={d}")),
            post(None, None, &format!("m=msg-42&d={d}")),
        ] {
            let s = kannel().parse_status(&req).unwrap();
            assert_eq!(
                s,
                vec![StatusIn {
                    provider_id: None,
                    message_id: Some("msg-42".into()),
                    state,
                    reason: reason.map(str::to_owned),
                }],
                "d={d}"
            );
        }
    }
}

#[test]
fn unknown_or_missing_dlr_fields_are_bad_requests() {
    for d in ["0", "3", "31", "32", "x", ""] {
        assert_eq!(
            kannel()
                .parse_status(&get(&format!("m=msg-42&d={d}")))
                .unwrap_err(),
            ChannelError::BadRequest("d is not a known delivery report value".into()),
            "d={d}"
        );
    }
    assert_eq!(
        kannel().parse_status(&get("d=1")).unwrap_err(),
        ChannelError::BadRequest("missing field `m`".into())
    );
    assert_eq!(
        kannel().parse_status(&get("m=msg-42")).unwrap_err(),
        ChannelError::BadRequest("missing field `d`".into())
    );
    assert_eq!(
        kannel().parse_status(&get("m=a%20b&d=1")).unwrap_err(),
        ChannelError::BadRequest("m is not a valid id".into())
    );
}

#[test]
fn methods_ack_and_ussd() {
    let k = kannel();
    assert_eq!(
        k.methods(Event::Sms),
        Some(&[Method::GET, Method::POST][..])
    );
    assert_eq!(
        k.methods(Event::Status),
        Some(&[Method::GET, Method::POST][..])
    );
    assert_eq!(k.methods(Event::Ussd), None);
    for e in [Event::Sms, Event::Status] {
        let r = k.render_ack(e);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, "");
    }
    assert_eq!(
        k.parse_ussd(&get("")).unwrap_err(),
        ChannelError::NotSupported
    );
}

fn config(settings: &str, secret: Option<&str>) -> ChannelConfig {
    ChannelConfig {
        name: "kannel".into(),
        kind: ChannelKind::Kannel,
        flow: "help".into(),
        secret: secret.map(str::to_owned),
        allow_ips: vec![],
        settings: settings.parse::<toml::Table>().unwrap(),
        env: BTreeMap::from([("KANNEL_PASSWORD".to_owned(), "s3cret".to_owned())]),
    }
}

fn build(settings: &str) -> Result<std::sync::Arc<dyn Channel>, Vec<String>> {
    crate::channel::build(
        0,
        &config(settings, Some("topsecret")),
        "test.toml",
        &crate::channel::http_client(),
    )
    .map_err(|ps| {
        ps.into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    })
}

fn problems(settings: &str) -> Vec<String> {
    match build(settings) {
        Ok(_) => panic!("settings accepted: {settings}"),
        Err(p) => p,
    }
}

#[test]
fn build_registers_the_kind_and_checks_settings() {
    let full = r#"
        sendsms_url = "http://127.0.0.1:13013/cgi-bin/sendsms"
        username = "hotline"
        password_env = "KANNEL_PASSWORD"
        from = "1234"
        public_url = "https://hotline.example/"
        dlr_mask = 24
        tps = 5
    "#;
    let ch = build(full).unwrap();
    assert_eq!(ch.kind(), ChannelKind::Kannel);
    assert!(ch.can_send());
    assert_eq!(ch.tps(), 5);
    // Receiving only.
    let ch = build("").unwrap();
    assert!(!ch.can_send());
    assert_eq!(ch.tps(), 10);
    assert_eq!(
        problems(r#"sendsms_url = "http://127.0.0.1:13013/cgi-bin/sendsms""#),
        vec![
            "channels[0].username: sending needs sendsms_url, username and password_env",
            "channels[0].password_env: sending needs sendsms_url, username and password_env",
        ]
    );
    let found = problems(
        r#"sendsms_url = "127.0.0.1:13013"
           username = "u"
           password_env = "KANNEL_PASSWORD"
           from = "1234"
           public_url = "http://127.0.0.1:8080"
           dlr_mask = 40
           colour = "red""#,
    );
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("channels[0].sendsms_url"), "{found:?}");
    assert!(found[1].starts_with("channels[0].dlr_mask"), "{found:?}");
    assert!(found[2].starts_with("channels[0].colour"), "{found:?}");
}

/// smsbox refuses a sendsms without `from` (400 "Sender missing and no
/// global set") unless it sets `global-sender`: `check` warns, the channel
/// is built all the same.
#[test]
fn a_sending_channel_without_from_is_warned_about() {
    let sending = r#"
        sendsms_url = "http://127.0.0.1:13013/cgi-bin/sendsms"
        username = "hotline"
        password_env = "KANNEL_PASSWORD"
    "#;
    let built = |settings: &str| {
        crate::channel::build_warned(
            0,
            &config(settings, Some("topsecret")),
            "test.toml",
            &crate::channel::http_client(),
        )
        .map(|(ch, w)| (ch.can_send(), w))
        .unwrap_or_else(|p| panic!("{p:?}"))
    };
    let with_reports = format!("{sending}public_url = \"http://127.0.0.1:8080\"\n");
    let (can_send, warnings) = built(&with_reports);
    assert!(can_send);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(!warnings[0].is_error());
    assert_eq!(warnings[0].key, "channels[0].from");
    assert!(
        warnings[0]
            .message
            .contains("unless its smsbox sets global-sender"),
        "{}",
        warnings[0].message
    );
    let (_, none) = built(&format!("{with_reports}from = \"21212\"\n"));
    assert!(none.is_empty(), "{none:?}");
    // Without public_url no delivery report is asked for: a rejected offer
    // would never be her decline.
    let (_, w) = built(&format!("{sending}from = \"21212\"\n"));
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].key, "channels[0].public_url");
    assert!(
        w[0].message.contains("no delivery report is asked for"),
        "{w:?}"
    );
    let (can_send, none) = built("");
    assert!(
        !can_send && none.is_empty(),
        "receiving only: no sender needed"
    );
}

#[test]
fn requests_are_authenticated_by_the_secret_in_the_url() {
    let ch = build("").unwrap();
    assert!(ch.authenticate(&get(CYRILLIC_RECODED_MO)).is_ok());
    assert_eq!(
        ch.authenticate(&get("secret=wrong&m=1&d=1")).unwrap_err(),
        ChannelError::Forbidden
    );
    assert_eq!(
        ch.authenticate(&get("m=1&d=1")).unwrap_err(),
        ChannelError::Forbidden
    );
}

fn sending(url: &str, public_url: Option<&str>) -> KannelAdapter {
    KannelAdapter {
        name: "kannel".into(),
        auth: SharedSecretAuth::default(),
        secret: Some("topsecret".into()),
        sender: Some(Sender {
            sendsms_url: format!("{url}/cgi-bin/sendsms"),
            username: "hotline".into(),
            password: "p&ss word".into(),
            from: Some("1234".into()),
            public_url: public_url.map(str::to_owned),
            dlr_mask: 31,
            http: crate::channel::http_client(),
        }),
        tps: 10,
    }
}

fn to() -> PhoneNumber {
    PhoneNumber::parse_international("+996555123456").unwrap()
}

async fn send(k: &KannelAdapter, text: &str) -> SendOutcome {
    k.send(OutSms {
        id: "msg-42",
        to: &to(),
        text,
    })
    .await
}

#[tokio::test]
async fn send_asks_for_ucs2_for_cyrillic_and_a_dlr_carrying_our_id() {
    let api = MockServer::start(vec![MockResponse::new(202, "0: Accepted for delivery")]).await;
    let k = sending(&api.url, Some("https://hotline.example/"));
    assert_eq!(
        send(&k, "Помощь идёт, код 4821").await,
        SendOutcome::Sent { provider_id: None }
    );
    let r = &api.requests()[0];
    assert_eq!(r.method, "GET");
    assert!(r.uri.starts_with("/cgi-bin/sendsms?"), "{}", r.uri);
    // The plus travels as %2B (a bare + would be a space to Kannel), and
    // %d inside the dlr-url as %25d, so Kannel substitutes it.
    assert!(r.uri.contains("to=%2B996555123456"), "{}", r.uri);
    assert!(r.uri.contains("%26d%3D%25d"), "{}", r.uri);
    assert_eq!(r.field("username").as_deref(), Some("hotline"));
    assert_eq!(r.field("password").as_deref(), Some("p&ss word"));
    assert_eq!(r.field("to").as_deref(), Some("+996555123456"));
    assert_eq!(r.field("from").as_deref(), Some("1234"));
    assert_eq!(r.field("text").as_deref(), Some("Помощь идёт, код 4821"));
    assert_eq!(r.field("charset").as_deref(), Some("UTF-8"));
    assert_eq!(r.field("coding").as_deref(), Some("2"));
    assert_eq!(r.field("dlr-mask").as_deref(), Some("31"));
    let dlr = r.field("dlr-url").unwrap();
    assert_eq!(
        dlr,
        "https://hotline.example/webhooks/kannel/status?secret=topsecret&m=msg-42&d=%d"
    );
    // What Kannel then calls parses back to our message.
    let called = dlr.replace("%d", "1");
    let query = called.split_once('?').unwrap().1;
    let ch = build("").unwrap();
    assert!(ch.authenticate(&get(query)).is_ok());
    let s = ch.parse_status(&get(query)).unwrap();
    assert_eq!(s[0].message_id.as_deref(), Some("msg-42"));
    assert_eq!(s[0].state, DeliveryState::Delivered);
}

#[tokio::test]
async fn send_leaves_gsm_text_in_the_default_coding() {
    let api = MockServer::start(vec![MockResponse::new(202, "0: Accepted for delivery")]).await;
    let k = sending(&api.url, None);
    assert_eq!(
        send(&k, "Help is coming: code 4821").await,
        SendOutcome::Sent { provider_id: None }
    );
    let r = &api.requests()[0];
    assert_eq!(
        r.field("text").as_deref(),
        Some("Help is coming: code 4821")
    );
    assert_eq!(r.field("charset").as_deref(), Some("UTF-8"));
    assert_eq!(r.field("coding"), None);
    // No public_url: no delivery report asked for.
    assert_eq!(r.field("dlr-url"), None);
    assert_eq!(r.field("dlr-mask"), None);
}

#[tokio::test]
async fn send_replies_are_classified() {
    let api = MockServer::start(vec![]).await;
    let k = sending(&api.url, Some("http://127.0.0.1:8080"));
    let cases = [
        (
            MockResponse::new(202, "3: Queued for later delivery"),
            SendOutcome::Sent { provider_id: None },
        ),
        (
            MockResponse::new(403, "Authorization failed for sendsms"),
            SendOutcome::Permanent {
                reason: "http 403".into(),
                fault: Fault::Channel,
            },
        ),
        // About the number, not the channel: the recipient's.
        (
            MockResponse::new(403, "Not routable. Do not try again."),
            SendOutcome::Permanent {
                reason: "http 403 not routable".into(),
                fault: Fault::Recipient,
            },
        ),
        (
            MockResponse::new(
                403,
                "Number(s) has/have been denied by white- and/or black-lists.",
            ),
            SendOutcome::Permanent {
                reason: "http 403 number denied by a white or black list".into(),
                fault: Fault::Recipient,
            },
        ),
        (
            MockResponse::new(400, "Missing receiver number, rejected"),
            SendOutcome::Permanent {
                reason: "http 400".into(),
                fault: Fault::Channel,
            },
        ),
        (
            MockResponse::new(503, "Temporal failure, try again later."),
            SendOutcome::Retry {
                after: None,
                reason: "http 503".into(),
            },
        ),
        (
            MockResponse::new(503, "Temporal failure, try again later.").header("Retry-After", "9"),
            SendOutcome::Retry {
                after: Some(Duration::from_secs(9)),
                reason: "http 503".into(),
            },
        ),
        (
            MockResponse::new(500, ""),
            SendOutcome::Retry {
                after: None,
                reason: "http 500".into(),
            },
        ),
        (
            MockResponse::new(408, ""),
            SendOutcome::Retry {
                after: None,
                reason: "http 408".into(),
            },
        ),
        (
            MockResponse::new(202, "Sent."),
            SendOutcome::Retry {
                after: None,
                reason: "http 202 unexpected reply".into(),
            },
        ),
    ];
    for (answer, want) in cases {
        let body = answer.body.clone();
        api.set_script(vec![answer]);
        assert_eq!(send(&k, "x").await, want, "{body}");
    }
}

#[tokio::test]
async fn send_against_a_dead_or_slow_smsbox_asks_for_a_retry() {
    let (_held, port) = crate::channel::dead_port();
    let k = sending(&format!("http://127.0.0.1:{port}"), None);
    assert_eq!(
        send(&k, "x").await,
        SendOutcome::Retry {
            after: None,
            reason: "connect".into()
        }
    );
    let slow = MockServer::start(vec![
        MockResponse::new(202, "0: Accepted for delivery").delayed(Duration::from_secs(30)),
    ])
    .await;
    let mut k = sending(&slow.url, None);
    if let Some(s) = k.sender.as_mut() {
        s.http = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
    }
    assert_eq!(
        send(&k, "x").await,
        SendOutcome::Retry {
            after: None,
            reason: "timeout".into()
        }
    );
}

#[tokio::test]
async fn send_without_settings_is_permanent() {
    assert!(matches!(
        send(&kannel(), "x").await,
        SendOutcome::Permanent { .. }
    ));
}
