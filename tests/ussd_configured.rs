//! A `kind = "ussd"` channel over real HTTP: an operator that posts JSON
//! and wants JSON back, with its session id echoed in every reply.

mod common;

use common::{Gateway, default_config, request};
use hotline::clock::Clock;

const CHANNEL: &str = r#"
[[channels]]
name = "alatoo"
kind = "ussd"
secret_env = "ALATOO_SECRET"
format = "json"
session_field = "session.id"
phone_field = "msisdn"
text_field = "text"
input = "cumulative"
reply = "json"
reply_action_field = "action"
reply_continue_value = "request"
reply_end_value = "end"
reply_session_echo = true
"#;

async fn hop(gw: &Gateway, query: &str, body: &str) -> common::Response {
    request(
        gw.public,
        "POST",
        &format!("/webhooks/alatoo/ussd{query}"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn a_configured_json_operator_walks_the_menu_and_gets_json_back() {
    let config = format!("{}{CHANNEL}", default_config());
    let gw =
        Gateway::start_with(&config, &[("ALATOO_SECRET", "s3cret")], None, Clock::System).await;

    let body = |text: &str| {
        format!(
            r#"{{"session":{{"id":"op-77"}},"msisdn":"996555123456","text":"{text}","extra":1}}"#
        )
    };
    let r = hop(&gw, "?secret=s3cret", &body("")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["action"], "request");
    assert_eq!(v["session"]["id"], "op-77");
    assert!(
        v["message"].as_str().unwrap().contains("English"),
        "{}",
        r.body
    );

    let r = hop(&gw, "?secret=s3cret", &body("4")).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["action"], "request");
    assert_ne!(v["message"].as_str().unwrap(), "", "{}", r.body);

    // Refusals are JSON too.
    let r = hop(&gw, "?secret=s3cret", "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, r#"{"error":"body is not valid JSON"}"#);
    let r = hop(&gw, "?secret=wrong", &body("")).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body, r#"{"error":"forbidden"}"#);
    let r = request(
        gw.public,
        "GET",
        "/webhooks/alatoo/ussd?secret=s3cret",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 405);
    let r = request(
        gw.public,
        "POST",
        "/webhooks/alatoo/sms?secret=s3cret",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
    gw.stop().await;
}

/// An operator that sends only the latest answer: the same answer twice in
/// a row is a retry only within a few seconds. Two equal answers to two
/// screens ("1 Bishkek", then "1 I need help now"; "0 Don't know", then
/// "0 This number") walk the menu to its end (an independent test found
/// the second one taken for a retry for as long as the session lived).
#[tokio::test]
async fn with_latest_input_the_same_answer_to_the_next_screen_is_an_answer() {
    const LATEST: &str = r#"
[[channels]]
name = "lastonly"
kind = "ussd"
format = "form"
session_field = "sid"
phone_field = "msisdn"
text_field = "text"
input = "latest"
reply = "text"
"#;
    let config = format!("{}{LATEST}", default_config());
    let clock = Clock::manual(1_796_097_600_000);
    let gw = Gateway::start_with(&config, &[], None, clock.clone()).await;
    let hop = |text: &str| {
        let body = common::form(&[
            ("sid", "op-latest-1"),
            ("msisdn", "996555123481"),
            ("text", text),
        ]);
        let public = gw.public;
        async move {
            common::post_form(public, "/webhooks/lastonly/ussd", &body)
                .await
                .body
        }
    };
    assert!(hop("").await.starts_with("CON Язык"), "language menu");
    let city = hop("4").await;
    assert!(city.starts_with("CON Which city?"), "{city}");
    clock.advance(5_000);
    let what = hop("1").await;
    assert!(what.starts_with("CON How can we help?"), "{what}");
    // The same text again at once: a retry, answered with the same screen.
    assert_eq!(hop("1").await, what);
    // The same answer to the next screen, seconds later: an answer.
    clock.advance(5_000);
    let place = hop("1").await;
    assert!(place.starts_with("CON Where are you now?"), "{place}");
    clock.advance(5_000);
    let number = hop("0").await;
    assert!(
        number.starts_with("CON Which number is safe to call?"),
        "{number}"
    );
    clock.advance(5_000);
    let end = hop("0").await;
    assert!(end.starts_with("END Thank you. Your code is "), "{end}");
    assert_eq!(
        gw.metric(r#"hotline_cases_opened_total{city="bishkek"}"#)
            .await,
        1.0
    );
    // The operator gives her the same session id again, a minute later:
    // a session of its own, a case and a code of its own (Osh).
    let code_of = |s: &str| {
        s.split("code is ")
            .nth(1)
            .map(|r| {
                r.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    clock.advance(60_000);
    let mut again = String::new();
    for text in ["", "4", "2", "2", "Osh bazaar", "0"] {
        again = hop(text).await;
        clock.advance(5_000);
    }
    assert!(again.starts_with("END Thank you. Your code is "), "{again}");
    assert_ne!(code_of(&again), code_of(&end), "a code of its own");
    assert_eq!(
        gw.metric(r#"hotline_cases_opened_total{city="osh"}"#).await,
        1.0
    );
    gw.stop().await;
}

/// An operator that names each hop (`hop_id_field`): a retry is known by
/// its id however late it comes — the audit found a retry 5 s after a
/// middle hop applied to the next question (the case then said what she
/// never chose) and a late retry of the last hop answered with the
/// language menu instead of her code — and the same answer to the next
/// screen is an answer however soon.
#[tokio::test]
async fn with_hop_ids_a_late_retry_is_a_retry_and_a_quick_answer_an_answer() {
    const NAMED: &str = r#"
[[channels]]
name = "named"
kind = "ussd"
format = "form"
session_field = "sid"
phone_field = "msisdn"
text_field = "text"
hop_id_field = "req"
input = "latest"
reply = "text"
"#;
    let config = format!("{}{NAMED}", default_config());
    let clock = Clock::manual(1_796_097_600_000);
    let gw = Gateway::start_with(&config, &[], None, clock.clone()).await;
    let hop = |req: &str, text: &str| {
        let body = common::form(&[
            ("sid", "op-named-1"),
            ("msisdn", "996555123482"),
            ("req", req),
            ("text", text),
        ]);
        let public = gw.public;
        async move {
            common::post_form(public, "/webhooks/named/ussd", &body)
                .await
                .body
        }
    };
    assert!(hop("r1", "").await.starts_with("CON Язык"), "language menu");
    let city = hop("r2", "4").await;
    assert!(city.starts_with("CON Which city?"), "{city}");
    let what = hop("r3", "2").await;
    assert!(what.starts_with("CON How can we help?"), "{what}");
    // The operator retries that hop half a minute later: the same screen,
    // not an answer to "How can we help?".
    clock.advance(30_000);
    assert_eq!(hop("r3", "2").await, what);
    // "1" then "1" at once, each a hop of its own: two answers.
    let place = hop("r4", "1").await;
    assert!(place.starts_with("CON Where are you now?"), "{place}");
    let place2 = hop("r5", "Osh bazaar").await;
    assert!(place2.starts_with("CON Which number"), "{place2}");
    let end = hop("r6", "0").await;
    assert!(end.starts_with("END Thank you. Your code is "), "{end}");
    // A retry of the last hop a minute later: her code again, not a new
    // session.
    clock.advance(60_000);
    assert_eq!(hop("r6", "0").await, end);
    assert_eq!(
        gw.metric(r#"hotline_cases_opened_total{city="osh"}"#).await,
        1.0
    );
    gw.stop().await;
}
