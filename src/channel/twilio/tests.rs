use super::*;
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use crate::channel::mock::{MockResponse, MockServer};
use crate::config::IpNet;
use crate::problem::Problem;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";
const TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00dfeed";
/// Behind a proxy: Twilio calls `/gw/webhooks/…`, the gateway sees
/// `/webhooks/…`.
const PUBLIC: &str = "https://hotline.example.org/gw";

fn settings(pairs: &[(&str, &str)]) -> toml::Table {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), toml::Value::String((*v).to_owned())))
        .collect()
}

fn good() -> toml::Table {
    settings(&[
        ("account_sid", ACCOUNT),
        ("auth_token_env", "TWILIO_TOKEN"),
        ("from", "+15005550006"),
        ("public_url", PUBLIC),
    ])
}

fn cfg(settings: toml::Table) -> ChannelConfig {
    ChannelConfig {
        name: "twilio".into(),
        kind: ChannelKind::Twilio,
        flow: "default".into(),
        secret: None,
        allow_ips: Vec::new(),
        settings,
        env: BTreeMap::from([("TWILIO_TOKEN".to_owned(), TOKEN.to_owned())]),
    }
}

fn build_from(cfg: &ChannelConfig) -> (Twilio, Vec<Problem>) {
    let s = Settings::new(cfg, 0, "hotline.toml");
    let t = Twilio::new(cfg, &s, crate::channel::http_client());
    (t, s.finish())
}

fn tw_with(cfg: &ChannelConfig) -> Twilio {
    let (t, problems) = build_from(cfg);
    assert!(problems.is_empty(), "{problems:?}");
    t
}

fn tw() -> Twilio {
    tw_with(&cfg(good()))
}

fn req(path: &str, query: Option<&str>, body: String, sig: Option<&str>) -> Request {
    let mut headers = HeaderMap::new();
    if let Some(s) = sig {
        headers.insert("X-Twilio-Signature", s.parse().unwrap());
    }
    Request {
        method: Method::POST,
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers,
        body: Bytes::from(body),
        peer: "127.0.0.1".parse().unwrap(),
    }
}

fn form(params: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(params).unwrap()
}

/// An inbound SMS with every documented parameter, an extra one Twilio
/// might add one day, and a repeated one.
fn inbound() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("NumMedia", "0"),
        ("ToCity", "SAN FRANCISCO"),
        ("FromZip", ""),
        ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", "BISHKEK"),
        ("Body", "ПОМОЩЬ & <help> 'now'"),
        ("FromCountry", "KG"),
        ("To", "+15005550006"),
        ("MessagingServiceSid", SERVICE),
        ("ToZip", "94105"),
        ("NumSegments", "1"),
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", ACCOUNT),
        ("From", "+996555123456"),
        ("ApiVersion", "2010-04-01"),
        ("AddOns", r#"{"status":"successful","results":{}}"#),
        ("Extra", "b"),
        ("Extra", "a"),
    ]
}

fn without<'a>(params: &[(&'a str, &'a str)], name: &str) -> Vec<(&'a str, &'a str)> {
    params.iter().copied().filter(|(k, _)| *k != name).collect()
}

fn with<'a>(params: &[(&'a str, &'a str)], name: &str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    params
        .iter()
        .map(|&(k, v)| if k == name { (k, value) } else { (k, v) })
        .collect()
}

const SMS_PATH: &str = "/webhooks/twilio/sms";
const SMS_URL: &str = "https://hotline.example.org/gw/webhooks/twilio/sms";

// --- Signatures -----------------------------------------------------------

#[test]
fn signature_matches_the_first_sdk_vector() {
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];
    assert_eq!(
        signature(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params
        ),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
}

#[test]
fn signature_matches_the_second_sdk_vector_with_a_repeated_name() {
    let params = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
    ];
    assert_eq!(
        signature(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params
        ),
        "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    );
}

#[test]
fn a_correctly_signed_inbound_sms_is_accepted_in_any_parameter_order() {
    let params = inbound();
    let sig = signature(TOKEN, SMS_URL, &params);
    let t = tw();
    assert_eq!(
        t.authenticate(&req(SMS_PATH, None, form(&params), Some(&sig))),
        Ok(())
    );
    let mut reversed = params.clone();
    reversed.reverse();
    assert_eq!(
        t.authenticate(&req(SMS_PATH, None, form(&reversed), Some(&sig))),
        Ok(())
    );
}

#[test]
fn missing_wrong_or_stale_signatures_are_refused() {
    let params = inbound();
    let body = form(&params);
    let good = signature(TOKEN, SMS_URL, &params);
    let t = tw();
    let refused = |r: Request| assert_eq!(t.authenticate(&r), Err(ChannelError::Forbidden));
    refused(req(SMS_PATH, None, body.clone(), None));
    refused(req(SMS_PATH, None, body.clone(), Some("")));
    refused(req(
        SMS_PATH,
        None,
        body.clone(),
        Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ));
    // Signed with another account's token.
    let other = signature("another-token", SMS_URL, &params);
    refused(req(SMS_PATH, None, body.clone(), Some(&other)));
    // Signed over the internal URL: the public base (with its /gw prefix)
    // is what Twilio signs.
    let internal = signature(
        TOKEN,
        "https://hotline.example.org/webhooks/twilio/sms",
        &params,
    );
    refused(req(SMS_PATH, None, body.clone(), Some(&internal)));
    // One parameter altered, one dropped, one repeated value altered.
    let altered = with(&params, "Body", "all is fine");
    refused(req(SMS_PATH, None, form(&altered), Some(&good)));
    refused(req(
        SMS_PATH,
        None,
        form(&without(&params, "FromCity")),
        Some(&good),
    ));
    let extra = with(&params, "Extra", "c");
    refused(req(SMS_PATH, None, form(&extra), Some(&good)));
    // A query string Twilio did not sign; another path.
    refused(req(SMS_PATH, Some("x=1"), body.clone(), Some(&good)));
    refused(req("/webhooks/twilio/status", None, body, Some(&good)));
}

#[test]
fn the_ip_allow_list_applies_before_the_signature() {
    let mut c = cfg(good());
    c.allow_ips = vec![IpNet::parse("10.0.0.0/8").unwrap()];
    let t = tw_with(&c);
    let params = inbound();
    let sig = signature(TOKEN, SMS_URL, &params);
    let mut r = req(SMS_PATH, None, form(&params), Some(&sig));
    assert_eq!(t.authenticate(&r), Err(ChannelError::Forbidden));
    r.peer = "10.1.2.3".parse().unwrap();
    assert_eq!(t.authenticate(&r), Ok(()));
}

#[test]
fn a_configured_secret_is_checked_as_well_as_the_signature() {
    let mut c = cfg(good());
    c.secret = Some("s3cret".into());
    let t = tw_with(&c);
    let params = inbound();
    // Signed, but the URL configured at Twilio lacks the secret.
    let sig = signature(TOKEN, SMS_URL, &params);
    assert_eq!(
        t.authenticate(&req(SMS_PATH, None, form(&params), Some(&sig))),
        Err(ChannelError::Forbidden)
    );
    // The secret, but signed over another URL.
    assert_eq!(
        t.authenticate(&req(
            SMS_PATH,
            Some("secret=s3cret"),
            form(&params),
            Some(&sig)
        )),
        Err(ChannelError::Forbidden)
    );
    let sig = signature(TOKEN, &format!("{SMS_URL}?secret=s3cret"), &params);
    assert_eq!(
        t.authenticate(&req(
            SMS_PATH,
            Some("secret=s3cret"),
            form(&params),
            Some(&sig)
        )),
        Ok(())
    );
    let sig = signature(TOKEN, &format!("{SMS_URL}?secret=wrong"), &params);
    assert_eq!(
        t.authenticate(&req(
            SMS_PATH,
            Some("secret=wrong"),
            form(&params),
            Some(&sig)
        )),
        Err(ChannelError::Forbidden)
    );
}

// --- Inbound SMS ----------------------------------------------------------

#[test]
fn sms_parses_every_documented_field() {
    let m = tw()
        .parse_sms(&req(SMS_PATH, None, form(&inbound()), None))
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].message_id.as_deref(),
        Some("SM0123456789abcdef0123456789abcdef")
    );
    assert_eq!(m[0].from.as_str(), "+996555123456");
    assert_eq!(m[0].to, "+15005550006");
    assert_eq!(m[0].text, "ПОМОЩЬ & <help> 'now'");
    assert!(
        !format!("{:?}", m[0]).contains("ПОМОЩЬ"),
        "Debug hides the text"
    );
}

#[test]
fn sms_missing_required_fields_are_named() {
    let t = tw();
    for field in ["MessageSid", "AccountSid", "From", "To", "Body"] {
        let body = form(&without(&inbound(), field));
        assert_eq!(
            t.parse_sms(&req(SMS_PATH, None, body, None)).unwrap_err(),
            ChannelError::BadRequest(format!("missing field `{field}`")),
            "{field}"
        );
    }
}

#[test]
fn sms_malformed_fields_are_named_without_values() {
    let t = tw();
    let long = "я".repeat(1601);
    for (field, value, want) in [
        (
            "From",
            "whatsapp:+996555123456",
            "From: phone number has a character that is not a digit",
        ),
        (
            "From",
            "+12",
            "From: phone number has the wrong number of digits",
        ),
        ("MessageSid", "SM 1", "MessageSid is not a valid id"),
        ("MessageSid", "", "MessageSid is not a valid id"),
        ("To", "", "To is not a valid address"),
        ("Body", long.as_str(), "Body is too long"),
    ] {
        let body = form(&with(&inbound(), field, value));
        assert_eq!(
            t.parse_sms(&req(SMS_PATH, None, body, None)).unwrap_err(),
            ChannelError::BadRequest(want.into()),
            "{field}"
        );
    }
    // 1600 characters is Twilio's own limit and fine.
    let at_limit = "я".repeat(1600);
    let body = form(&with(&inbound(), "Body", &at_limit));
    assert!(t.parse_sms(&req(SMS_PATH, None, body, None)).is_ok());
}

#[test]
fn sms_for_another_account_is_refused() {
    let body = form(&with(
        &inbound(),
        "AccountSid",
        "ACffffffffffffffffffffffffffffffff",
    ));
    assert_eq!(
        tw().parse_sms(&req(SMS_PATH, None, body, None))
            .unwrap_err(),
        ChannelError::Forbidden
    );
}

#[test]
fn sms_is_acknowledged_with_empty_twiml_and_status_with_nothing() {
    let t = tw();
    let r = t.render_ack(Event::Sms);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "text/xml");
    assert_eq!(
        r.body,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
    );
    let r = t.render_ack(Event::Status);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "");
}

#[test]
fn twiml_messages_are_escaped() {
    assert_eq!(
        twiml_message(r#"Код 4821 & <b>"yes"</b> it's"#),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Код 4821 &amp; &lt;b&gt;&quot;yes&quot;&lt;/b&gt; it&apos;s</Message></Response>"#
    );
    // Line breaks stay; characters XML cannot carry are dropped.
    assert_eq!(
        twiml_message("a\nb\u{0}c\u{1b}d\u{FFFF}"),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>a
bcd</Message></Response>"#
    );
}

#[test]
fn only_sms_and_status_are_served_and_only_by_post() {
    let t = tw();
    assert_eq!(t.methods(Event::Sms), Some(&[Method::POST][..]));
    assert_eq!(t.methods(Event::Status), Some(&[Method::POST][..]));
    assert_eq!(t.methods(Event::Ussd), None);
    assert_eq!(t.kind(), ChannelKind::Twilio);
    assert_eq!(t.tps(), 10);
    assert!(t.can_send());
}

// --- Status callbacks -----------------------------------------------------

const STATUS_PATH: &str = "/webhooks/twilio/status";

fn status_body(status: &str, error: Option<&str>) -> String {
    let mut p = vec![
        ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", "+996555123456"),
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", ACCOUNT),
        ("From", "+15005550006"),
        ("ApiVersion", "2010-04-01"),
    ];
    if let Some(e) = error {
        p.push(("ErrorCode", e));
    }
    form(&p)
}

#[test]
fn every_message_status_maps_and_unknown_ones_are_refused() {
    let t = tw();
    let cases = [
        ("queued", DeliveryState::Sent),
        ("sending", DeliveryState::Sent),
        ("sent", DeliveryState::Sent),
        ("accepted", DeliveryState::Sent),
        ("scheduled", DeliveryState::Sent),
        ("partially_delivered", DeliveryState::Sent),
        ("delivered", DeliveryState::Delivered),
        ("read", DeliveryState::Delivered),
        ("failed", DeliveryState::Failed),
        ("undelivered", DeliveryState::Failed),
        ("canceled", DeliveryState::Failed),
    ];
    for (status, state) in cases {
        let s = t
            .parse_status(&req(
                STATUS_PATH,
                Some("m=out-42"),
                status_body(status, None),
                None,
            ))
            .unwrap();
        assert_eq!(
            s,
            vec![StatusIn {
                provider_id: Some("SM0123456789abcdef0123456789abcdef".into()),
                message_id: Some("out-42".into()),
                state,
                reason: None,
            }],
            "{status}"
        );
    }
    // Inbound messages' states say nothing about ours: acknowledged, no report.
    for status in ["receiving", "received"] {
        let s = t
            .parse_status(&req(STATUS_PATH, None, status_body(status, None), None))
            .unwrap();
        assert!(s.is_empty(), "{status}");
    }
    assert_eq!(
        t.parse_status(&req(
            STATUS_PATH,
            None,
            status_body("teleported", None),
            None
        ))
        .unwrap_err(),
        ChannelError::BadRequest("MessageStatus is not a known message status".into())
    );
    assert_eq!(
        t.parse_status(&req(
            STATUS_PATH,
            None,
            status_body("Delivered", None),
            None
        ))
        .unwrap_err(),
        ChannelError::BadRequest("MessageStatus is not a known message status".into())
    );
}

#[test]
fn status_carries_the_error_code_and_works_without_our_id() {
    let t = tw();
    let s = t
        .parse_status(&req(
            STATUS_PATH,
            None,
            status_body("undelivered", Some("30003")),
            None,
        ))
        .unwrap();
    assert_eq!(s[0].state, DeliveryState::Failed);
    assert_eq!(s[0].reason.as_deref(), Some("30003"));
    assert_eq!(s[0].message_id, None);
    // An empty ErrorCode is no reason.
    let s = t
        .parse_status(&req(STATUS_PATH, None, status_body("sent", Some("")), None))
        .unwrap();
    assert_eq!(s[0].reason, None);
}

#[test]
fn status_missing_or_bad_fields_are_refused() {
    let t = tw();
    for (body, want) in [
        (
            form(&[("MessageStatus", "sent")]),
            ChannelError::BadRequest("missing field `MessageSid`".into()),
        ),
        (
            form(&[("MessageSid", "SM1")]),
            ChannelError::BadRequest("missing field `MessageStatus`".into()),
        ),
        (
            form(&[("MessageSid", "SM 1"), ("MessageStatus", "sent")]),
            ChannelError::BadRequest("MessageSid is not a valid id".into()),
        ),
        (
            form(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "sent"),
                ("AccountSid", "ACffffffffffffffffffffffffffffffff"),
            ]),
            ChannelError::Forbidden,
        ),
    ] {
        assert_eq!(
            t.parse_status(&req(STATUS_PATH, None, body.clone(), None))
                .unwrap_err(),
            want,
            "{body}"
        );
    }
    assert_eq!(
        t.parse_status(&req(
            STATUS_PATH,
            Some("m=a%0Ab"),
            status_body("sent", None),
            None
        ))
        .unwrap_err(),
        ChannelError::BadRequest("m is not a valid id".into())
    );
}

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

#[tokio::test]
async fn send_answers_are_classified() {
    let api = MockServer::start(vec![MockResponse::new(201, created())]).await;
    let t = sending(&api.url, cfg(good()));
    let cases = [
        (
            MockResponse::new(429, error(429, 20429)).header("Retry-After", "3"),
            SendOutcome::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "twilio 20429".into(),
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
            MockResponse::new(503, error(503, 20500)).header("Retry-After", "10"),
            SendOutcome::Retry {
                after: Some(Duration::from_secs(10)),
                reason: "twilio 20500".into(),
            },
        ),
        (
            MockResponse::new(400, error(400, 21610)),
            SendOutcome::OptedOut,
        ),
        (
            MockResponse::new(400, error(400, 21211)),
            SendOutcome::Permanent {
                reason: "twilio 21211".into(),
            },
        ),
        (
            MockResponse::new(401, error(401, 20003)),
            SendOutcome::Permanent {
                reason: "twilio 20003".into(),
            },
        ),
        (
            MockResponse::new(404, error(404, 20404)),
            SendOutcome::Permanent {
                reason: "twilio 20404".into(),
            },
        ),
        (
            MockResponse::new(403, ""),
            SendOutcome::Permanent {
                reason: "http 403".into(),
            },
        ),
        // Accepted, but the body is unreadable: still sent (no retry that
        // could send twice).
        (
            MockResponse::new(201, "not json"),
            SendOutcome::Sent { provider_id: None },
        ),
    ];
    for (answer, want) in cases {
        let status = answer.status;
        api.set_script(vec![answer]);
        let out = send_once(&t).await;
        if let SendOutcome::Permanent { reason } | SendOutcome::Retry { reason, .. } = &out {
            assert!(!reason.contains("555123456"), "no number in {reason}");
            assert!(!reason.contains("4821"), "no text in {reason}");
        }
        assert_eq!(out, want, "{status}");
    }
}

#[tokio::test]
async fn send_against_a_dead_or_slow_api_asks_for_a_retry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
