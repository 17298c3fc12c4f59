//! Sending through Twilio, and the settings it needs.

use super::*;
use crate::channel::Fault;
use crate::channel::mock::{MockResponse, MockServer};

// --- Sending --------------------------------------------------------------

fn sending(url: &str, mut c: ChannelConfig) -> Twilio {
    c.settings
        .insert("base_url".into(), toml::Value::String(url.to_owned()));
    tw_with(&c)
}

fn created() -> String {
    format!(
        r#"{{"account_sid":"{ACCOUNT}","api_version":"2010-04-01","body":"Код 4821","date_created":"Thu, 24 Aug 2023 05:01:45 +0000","date_sent":null,"date_updated":"Thu, 24 Aug 2023 05:01:45 +0000","direction":"outbound-api","error_code":null,"error_message":null,"from":"+15005550006","messaging_service_sid":null,"num_media":"0","num_segments":"1","price":null,"price_unit":"USD","sid":"SM3f0e2d1c0b0a09080706050403020100","status":"queued","subresource_uris":{{"media":"/2010-04-01/Accounts/{ACCOUNT}/Messages/SM3f0e2d1c0b0a09080706050403020100/Media.json"}},"to":"+996555123456","uri":"/2010-04-01/Accounts/{ACCOUNT}/Messages/SM3f0e2d1c0b0a09080706050403020100.json"}}"#
    )
}

fn error(status: u16, code: u64) -> String {
    format!(
        r#"{{"code":{code},"message":"The 'To' number +996555123456 is not valid.","more_info":"https://www.twilio.com/docs/errors/{code}","status":{status}}}"#
    )
}

fn to() -> PhoneNumber {
    PhoneNumber::parse_international("+996555123456").unwrap()
}

async fn send_once(t: &Twilio) -> SendOutcome {
    let to = to();
    t.send(OutSms {
        id: "out-42",
        to: &to,
        text: "Код 4821",
    })
    .await
}

#[tokio::test]
async fn send_posts_the_documented_request() {
    use base64::Engine as _;
    let api = MockServer::start(vec![MockResponse::new(201, created())]).await;
    let out = send_once(&sending(&api.url, cfg(good()))).await;
    assert_eq!(
        out,
        SendOutcome::Sent {
            provider_id: Some("SM3f0e2d1c0b0a09080706050403020100".into())
        }
    );
    let r = &api.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.uri,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(r.header("i-twilio-idempotency-token"), Some("out-42"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.field("To").as_deref(), Some("+996555123456"));
    assert_eq!(r.field("From").as_deref(), Some("+15005550006"));
    assert_eq!(r.field("MessagingServiceSid"), None);
    assert_eq!(r.field("Body").as_deref(), Some("Код 4821"));
    assert_eq!(
        r.field("StatusCallback").as_deref(),
        Some("https://hotline.example.org/gw/webhooks/twilio/status?m=out-42")
    );
}

#[tokio::test]
async fn send_through_a_messaging_service() {
    let api = MockServer::start(vec![MockResponse::new(201, created())]).await;
    let mut s = good();
    s.remove("from");
    s.insert(
        "messaging_service_sid".into(),
        toml::Value::String(SERVICE.into()),
    );
    let out = send_once(&sending(&api.url, cfg(s))).await;
    assert!(matches!(out, SendOutcome::Sent { .. }));
    let r = &api.requests()[0];
    assert_eq!(r.field("MessagingServiceSid").as_deref(), Some(SERVICE));
    assert_eq!(r.field("From"), None);
}

#[tokio::test]
async fn the_status_callback_we_give_twilio_authenticates_and_names_our_message() {
    let api = MockServer::start(vec![MockResponse::new(201, created())]).await;
    let mut c = cfg(good());
    c.secret = Some("s3cret".into());
    let t = sending(&api.url, c);
    send_once(&t).await;
    let callback = api.requests()[0].field("StatusCallback").unwrap();
    let rest = callback.strip_prefix(PUBLIC).unwrap();
    let (path, query) = rest.split_once('?').unwrap();
    assert_eq!(path, STATUS_PATH);
    assert_eq!(query, "secret=s3cret&m=out-42");
    // Twilio signs the callback URL as we gave it.
    let params = [
        ("MessageSid", "SM3f0e2d1c0b0a09080706050403020100"),
        ("MessageStatus", "delivered"),
        ("AccountSid", ACCOUNT),
    ];
    let sig = signature(TOKEN, &callback, &params);
    let r = req(path, Some(query), form(&params), Some(&sig));
    assert_eq!(t.authenticate(&r), Ok(()));
    let s = t.parse_status(&r).unwrap();
    assert_eq!(s[0].message_id.as_deref(), Some("out-42"));
    assert_eq!(s[0].state, DeliveryState::Delivered);
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

/// Twilio's answers and what they mean.
fn answers() -> Vec<(MockResponse, SendOutcome)> {
    let (recipient, channel) = (Fault::Recipient, Fault::Channel);
    vec![
        (
            MockResponse::new(429, error(429, 20429)).header("Retry-After", "3"),
            retry(Some(3), "twilio 20429"),
        ),
        (MockResponse::new(500, "oops"), retry(None, "http 500")),
        (
            MockResponse::new(503, error(503, 20500)).header("Retry-After", "10"),
            retry(Some(10), "twilio 20500"),
        ),
        (MockResponse::new(408, ""), retry(None, "http 408")),
        (
            MockResponse::new(400, error(400, 21610)),
            SendOutcome::OptedOut,
        ),
        (
            MockResponse::new(400, error(400, 21211)),
            permanent("twilio 21211", recipient),
        ),
        (
            MockResponse::new(400, error(400, 21614)),
            permanent("twilio 21614", recipient),
        ),
        (
            MockResponse::new(400, error(400, 21606)),
            permanent("twilio 21606", channel),
        ),
        (
            MockResponse::new(401, error(401, 20003)),
            permanent("twilio 20003", channel),
        ),
        (
            MockResponse::new(404, error(404, 20404)),
            permanent("twilio 20404", channel),
        ),
        (MockResponse::new(403, ""), permanent("http 403", channel)),
        // Accepted, but the body is unreadable: still sent (no retry that
        // could send twice).
        (
            MockResponse::new(201, "not json"),
            SendOutcome::Sent { provider_id: None },
        ),
    ]
}

#[tokio::test]
async fn send_answers_are_classified() {
    let api = MockServer::start(vec![MockResponse::new(201, created())]).await;
    let t = sending(&api.url, cfg(good()));
    let cases = answers();
    for (answer, want) in cases {
        let status = answer.status;
        api.set_script(vec![answer]);
        let out = send_once(&t).await;
        if let SendOutcome::Permanent { reason, .. } | SendOutcome::Retry { reason, .. } = &out {
            assert!(!reason.contains("555123456"), "no number in {reason}");
            assert!(!reason.contains("4821"), "no text in {reason}");
        }
        assert_eq!(out, want, "{status}");
    }
}

#[tokio::test]
async fn send_against_a_dead_or_slow_api_asks_for_a_retry() {
    let (_held, port) = crate::channel::dead_port();
    let out = send_once(&sending(&format!("http://127.0.0.1:{port}"), cfg(good()))).await;
    assert_eq!(
        out,
        SendOutcome::Retry {
            after: None,
            reason: "connect".into()
        }
    );
    let slow = MockServer::start(vec![
        MockResponse::new(201, created()).delayed(Duration::from_secs(30)),
    ])
    .await;
    let mut t = sending(&slow.url, cfg(good()));
    t.http = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert_eq!(
        send_once(&t).await,
        SendOutcome::Retry {
            after: None,
            reason: "timeout".into()
        }
    );
}

// --- Settings -------------------------------------------------------------

fn problems(s: toml::Table) -> Vec<String> {
    build_from(&cfg(s)).1.into_iter().map(|p| p.key).collect()
}

#[test]
fn the_channel_is_built_from_good_settings() {
    let c = cfg(good());
    let ch = crate::channel::build(0, &c, "hotline.toml", &crate::channel::http_client()).unwrap();
    assert_eq!(ch.kind(), ChannelKind::Twilio);
    assert_eq!(ch.name(), "twilio");
    assert!(ch.can_send());
}

#[test]
fn settings_problems_name_their_keys() {
    let mut s = good();
    s.remove("account_sid");
    assert_eq!(problems(s), ["channels[0].account_sid"]);

    let mut s = good();
    s.insert("account_sid".into(), toml::Value::String("AC12/..".into()));
    assert_eq!(problems(s), [r#"channels[0].account_sid = "AC12/..""#]);

    let mut s = good();
    s.remove("auth_token_env");
    assert_eq!(problems(s), ["channels[0].auth_token_env"]);

    let mut s = good();
    s.remove("public_url");
    assert_eq!(problems(s), ["channels[0].public_url"]);

    let mut s = good();
    s.insert(
        "public_url".into(),
        toml::Value::String("https://x.example/?a=1".into()),
    );
    assert_eq!(
        problems(s),
        [r#"channels[0].public_url = "https://x.example/?a=1""#]
    );

    let mut s = good();
    s.insert(
        "messaging_service_sid".into(),
        toml::Value::String(SERVICE.into()),
    );
    assert_eq!(problems(s), ["channels[0].messaging_service_sid"]);

    let mut s = good();
    s.remove("from");
    assert_eq!(problems(s), ["channels[0].from"]);

    let mut s = good();
    s.remove("from");
    s.insert(
        "messaging_service_sid".into(),
        toml::Value::String("MG1".into()),
    );
    assert_eq!(
        problems(s),
        [r#"channels[0].messaging_service_sid = "MG1""#]
    );

    let mut s = good();
    s.insert("tps".into(), toml::Value::Integer(0));
    s.insert("colour".into(), toml::Value::String("blue".into()));
    assert_eq!(
        problems(s),
        [r#"channels[0].tps = "0""#, "channels[0].colour"]
    );

    let err = crate::channel::build(
        0,
        &cfg(settings(&[])),
        "hotline.toml",
        &crate::channel::http_client(),
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(err.len(), 4, "{err:?}");
}
