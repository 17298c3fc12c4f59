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
