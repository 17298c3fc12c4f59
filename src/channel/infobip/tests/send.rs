//! Sending through Infobip, and the settings it needs.

use super::*;
use crate::channel::Fault;
use crate::channel::mock::{MockResponse, MockServer};
use crate::problem::Problem;
use std::time::Duration;

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

fn retry(after: Option<u64>, reason: &str) -> SendOutcome {
    SendOutcome::Retry {
        after: after.map(Duration::from_secs),
        reason: reason.into(),
    }
}

fn permanent(reason: &str, fault: Fault) -> SendOutcome {
    SendOutcome::Permanent {
        reason: reason.into(),
        fault,
    }
}

fn rejected(name: &str) -> String {
    format!(
        r#"{{"bulkId":"b","messages":[{{"to":"996555123456","status":{{"groupId":5,"groupName":"REJECTED","id":51,"name":"{name}","description":"Destination rejected"}},"messageId":"m1"}}]}}"#
    )
}

/// Infobip's answers and what they mean.
fn answers() -> Vec<(MockResponse, SendOutcome)> {
    let unauthorized = r#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#;
    let bad_request = r#"{"requestError":{"serviceException":{"messageId":"BAD_REQUEST","text":"Invalid destination address 996555123456"}}}"#;
    let (recipient, channel) = (Fault::Recipient, Fault::Channel);
    vec![
        (
            MockResponse::new(200, rejected("REJECTED_DESTINATION")),
            permanent("REJECTED_DESTINATION", recipient),
        ),
        (
            MockResponse::new(200, rejected("REJECTED_NOT_ENOUGH_CREDITS")),
            permanent("REJECTED_NOT_ENOUGH_CREDITS", channel),
        ),
        (
            MockResponse::new(429, "").header("Retry-After", "7"),
            retry(Some(7), "http 429"),
        ),
        (MockResponse::new(500, "oops"), retry(None, "http 500")),
        (
            MockResponse::new(503, "").header("Retry-After", "30"),
            retry(Some(30), "http 503"),
        ),
        (MockResponse::new(408, ""), retry(None, "http 408")),
        (
            MockResponse::new(401, unauthorized),
            permanent("http 401 (check api key)", channel),
        ),
        (
            MockResponse::new(403, unauthorized),
            permanent("http 403 (check api key)", channel),
        ),
        (
            MockResponse::new(400, bad_request),
            permanent("BAD_REQUEST", channel),
        ),
        (
            MockResponse::new(404, "<html>not found</html>"),
            permanent("http 404", channel),
        ),
        (
            MockResponse::new(200, "<html>proxy</html>"),
            retry(None, "unreadable reply"),
        ),
        (
            MockResponse::new(200, r#"{"bulkId":"b","messages":[]}"#),
            permanent("no message accepted", channel),
        ),
    ]
}

#[tokio::test]
async fn send_answers_are_classified() {
    let cases = answers();
    for (answer, want) in cases {
        let api = MockServer::start(vec![answer.clone()]).await;
        let out = send_once(&sending_ib(&api.url, None)).await;
        assert_eq!(out, want, "{} {}", answer.status, answer.body);
        if let SendOutcome::Permanent { reason, .. } | SendOutcome::Retry { reason, .. } = &out {
            assert!(!reason.contains("996555123456"), "no number in {reason}");
        }
    }
}

#[tokio::test]
async fn send_against_a_dead_or_slow_api_asks_for_a_retry() {
    let (_held, port) = crate::channel::dead_port();
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
