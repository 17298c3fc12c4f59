//! Twilio: signatures, inbound messages and status callbacks (sending and
//! settings are in `send`).

use super::*;
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use crate::config::ChannelConfig;
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

fn build_from(cfg: &ChannelConfig) -> (Option<Twilio>, Vec<Problem>) {
    let mut checks = Checks::new(cfg, 0, "hotline.toml");
    let t = Twilio::new(&mut checks, crate::channel::http_client());
    (t, checks.finish())
}

fn tw_with(cfg: &ChannelConfig) -> Twilio {
    let (t, problems) = build_from(cfg);
    assert!(problems.is_empty(), "{problems:?}");
    t.expect("built")
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

mod send;
