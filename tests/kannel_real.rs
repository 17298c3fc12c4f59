//! The Kannel adapter against a real Kannel 1.4.5 (bearerbox + smsbox, fake
//! SMSC): a phone's Cyrillic SMS reaches the gateway's webhook as exact
//! UTF-8, and the gateway's Cyrillic SMS reaches the phone with its
//! delivery report matched to our message id.
//!
//! A local mock HTTP server stands in for the gateway's webhooks and records
//! exactly what Kannel sent; the adapter then parses those recorded requests.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::kannel::{FakePhone, Kannel, PASSWORD, USERNAME};
use common::mock::{MockResponse, MockServer, Recorded};
use hotline::channel::{Channel, DeliveryState, Fault, OutSms, Request, SendOutcome};
use hotline::config::{ChannelConfig, ChannelKind};
use hotline::phone::PhoneNumber;

const SECRET: &str = "topsecret";
const PHONE: &str = "+79001234567";
const SHORT_CODE: &str = "1234";
const WAIT: Duration = Duration::from_secs(15);

/// The adapter as `channel::build` makes it from a config.
fn adapter(kannel: &Kannel, public_url: &str, password: &str) -> Arc<dyn Channel> {
    let settings = format!(
        "sendsms_url = {:?}\nusername = {USERNAME:?}\npassword_env = \"KANNEL_PASSWORD\"\n\
         from = {SHORT_CODE:?}\npublic_url = {public_url:?}\n",
        kannel.sendsms_url()
    );
    let cfg = ChannelConfig {
        name: "kannel".into(),
        kind: ChannelKind::Kannel,
        flow: "help".into(),
        secret: Some(SECRET.into()),
        allow_ips: vec![],
        settings: settings.parse::<toml::Table>().unwrap(),
        env: BTreeMap::from([("KANNEL_PASSWORD".to_owned(), password.to_owned())]),
    };
    match hotline::channel::build(0, &cfg, "test.toml", &hotline::channel::http_client()) {
        Ok(ch) => ch,
        Err(p) => panic!("kannel channel does not build: {p:?}"),
    }
}

/// A request the stand-in gateway recorded, as the server hands it to the
/// adapter.
fn as_request(r: &Recorded) -> Request {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &r.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    Request {
        path: r.uri.split('?').next().unwrap_or_default().to_owned(),
        method: r.method.parse().unwrap(),
        query: r.uri.split_once('?').map(|(_, q)| q.to_owned()),
        headers,
        body: Bytes::from(r.body.clone()),
        peer: "127.0.0.1".parse().unwrap(),
    }
}

/// Wait until the requests to `path` satisfy `done`; return them.
async fn wait_for(
    kannel: &Kannel,
    gw: &MockServer,
    path: &str,
    done: impl Fn(&[Recorded]) -> bool,
) -> Vec<Recorded> {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen: Vec<Recorded> = gw
            .requests()
            .into_iter()
            .filter(|r| r.uri.starts_with(&format!("{path}?")))
            .collect();
        if done(&seen) {
            return seen;
        }
        if Instant::now() > deadline {
            let uris: Vec<&str> = seen.iter().map(|r| r.uri.as_str()).collect();
            panic!(
                "Kannel did not call {path} as expected; got {uris:#?}\n{}",
                kannel.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start() -> (MockServer, Kannel, FakePhone) {
    let gw = MockServer::start(vec![MockResponse::new(200, "")]).await;
    let kannel = Kannel::start(&format!("{}/webhooks/kannel/sms?secret={SECRET}", gw.url)).await;
    let phone = kannel.phone().await;
    (gw, kannel, phone)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phones_cyrillic_sms_reaches_the_gateway_as_exact_utf8() {
    let (gw, kannel, mut phone) = start().await;
    let texts = ["ПОМОЩЬ", "hello  world", "Где вы?\nБишкек, 100% & ok"];
    for t in texts {
        phone.send_mo(PHONE, SHORT_CODE, t).await;
    }
    let seen = wait_for(&kannel, &gw, "/webhooks/kannel/sms", |s| s.len() >= 3).await;
    assert_eq!(seen.len(), 3);
    // The exact bytes on the wire: UTF-8, form-encoded, recoded from UCS-2.
    let help = seen
        .iter()
        .find(|r| {
            r.uri
                .contains("&text=%D0%9F%D0%9E%D0%9C%D0%9E%D0%A9%D0%AC&")
        })
        .unwrap_or_else(|| panic!("no UTF-8 ПОМОЩЬ among {seen:#?}"));
    assert_eq!(help.method, "GET");
    assert!(help.uri.contains("&coding=0&charset=UTF-8"), "{}", help.uri);

    let ch = adapter(&kannel, &gw.url, PASSWORD);
    let req = as_request(help);
    ch.authenticate(&req)
        .expect("the secret in get-url authenticates");
    let m = ch.parse_sms(&req).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].text, "ПОМОЩЬ");
    assert_eq!(m[0].from.as_str(), PHONE);
    assert_eq!(m[0].to, SHORT_CODE);
    assert!(m[0].message_id.as_ref().is_some_and(|id| id.len() == 36));

    let mut got: Vec<String> = seen
        .iter()
        .map(|r| ch.parse_sms(&as_request(r)).unwrap().remove(0).text)
        .collect();
    got.sort();
    let mut want: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
    want.sort();
    assert_eq!(got, want);

    // The webhook's 200 (even with a body) never becomes a reply SMS.
    assert_eq!(phone.try_recv_mt(Duration::from_secs(1)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_cyrillic_sms_reaches_the_phone_and_reports_delivery() {
    let (gw, kannel, mut phone) = start().await;
    let ch = adapter(&kannel, &gw.url, PASSWORD);
    let to = PhoneNumber::parse_international(PHONE).unwrap();
    let text = "Привет, мир! 100% & ok";
    let out = ch
        .send(OutSms {
            id: "msg-42",
            to: &to,
            text,
        })
        .await;
    assert_eq!(out, SendOutcome::Sent { provider_id: None });
    let (from, rcpt, got) = phone.recv_mt(WAIT).await;
    assert_eq!((from.as_str(), rcpt.as_str()), (SHORT_CODE, PHONE));
    assert_eq!(got, text);

    // Kannel reports 8 (accepted by the SMSC), then 1 (delivered).
    let reports = wait_for(&kannel, &gw, "/webhooks/kannel/status", |s| {
        s.iter().any(|r| r.uri.contains("&d=1"))
    })
    .await;
    let mut states = Vec::new();
    for r in &reports {
        let req = as_request(r);
        ch.authenticate(&req)
            .expect("the secret in dlr-url authenticates");
        for s in ch.parse_status(&req).unwrap() {
            assert_eq!(s.message_id.as_deref(), Some("msg-42"), "{}", r.uri);
            assert_eq!(s.provider_id, None);
            states.push(s.state);
        }
    }
    assert!(states.contains(&DeliveryState::Delivered), "{states:?}");

    // Longer than one UCS-2 SMS: concatenated parts, reassembled intact.
    let long = "Юрист уже едет к вам. Ничего не подписывайте без адвоката. \
                Назовите ему код дела 4821, он перезвонит в течение часа.";
    assert!(long.chars().count() > 70);
    let out = ch
        .send(OutSms {
            id: "msg-43",
            to: &to,
            text: long,
        })
        .await;
    assert_eq!(out, SendOutcome::Sent { provider_id: None });
    assert_eq!(phone.recv_mt(WAIT).await.2, long);

    // GSM-7 text goes in the default coding and arrives as it was.
    let ascii = "Help is coming: code 4821";
    let out = ch
        .send(OutSms {
            id: "msg-44",
            to: &to,
            text: ascii,
        })
        .await;
    assert_eq!(out, SendOutcome::Sent { provider_id: None });
    assert_eq!(phone.recv_mt(WAIT).await.2, ascii);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendsms_answers_are_classified_from_the_real_smsbox() {
    let gw = MockServer::start(vec![MockResponse::new(200, "")]).await;
    let kannel = Kannel::start(&format!("{}/webhooks/kannel/sms?secret={SECRET}", gw.url)).await;
    let to = PhoneNumber::parse_international(PHONE).unwrap();
    let msg = OutSms {
        id: "msg-1",
        to: &to,
        text: "Ждите звонка",
    };
    // Wrong password: permanent.
    let out = adapter(&kannel, &gw.url, "wrong").send(msg).await;
    assert_eq!(
        out,
        SendOutcome::Permanent {
            reason: "http 403".into(),
            fault: Fault::Channel
        }
    );
    // A number no SMSC routes: smsbox's 403 "Not routable. Do not try
    // again." is about the number (an offer's: the lawyer's decline at
    // once), not the channel held down for everyone.
    let unroutable = PhoneNumber::parse_international("+996777001234").unwrap();
    let out = adapter(&kannel, &gw.url, PASSWORD)
        .send(OutSms {
            to: &unroutable,
            ..msg
        })
        .await;
    assert_eq!(
        out,
        SendOutcome::Permanent {
            reason: "http 403 not routable".into(),
            fault: Fault::Recipient
        }
    );
    // No SMSC connection yet: "3: Queued for later delivery" is a success,
    // and the message arrives once the phone's SMSC connects.
    let out = adapter(&kannel, &gw.url, PASSWORD).send(msg).await;
    assert_eq!(out, SendOutcome::Sent { provider_id: None });
    let mut phone = kannel.phone().await;
    assert_eq!(phone.recv_mt(WAIT).await.2, "Ждите звонка");
}
