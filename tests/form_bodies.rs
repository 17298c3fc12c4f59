//! Form-based channels other than Africa's Talking over real HTTP: Kannel
//! and an operator's USSD API posting a form refuse a field given twice, a
//! bad `%` escape, bytes that are not UTF-8 and a body declared as another
//! type, count each refusal and change nothing (Africa's Talking:
//! `tests/ussd_http.rs`).

mod common;

use common::{Gateway, request};
use hotline::clock::Clock;

const SECRET: &str = "kannel-secret-0123";

const DNIPRO: &str = r#"
[[channels]]
name = "dnipro"
kind = "ussd"
secret_env = "HOTLINE_DNIPRO_SECRET"
format = "form"
session_field = "sessionId"
phone_field = "phoneNumber"
text_field = "text"
service_code_field = "serviceCode"
input = "cumulative"
reply = "text"
"#;

/// The shipped config with its Kannel channel enabled (sending to a port
/// nobody listens on: nothing here is sent) and a form USSD operator.
async fn start() -> Gateway {
    let shipped = common::with_real_channels(&common::default_config());
    let block_start = shipped
        .find("name = \"kannel\"")
        .expect("shipped config has a kannel channel");
    let block_end = block_start + shipped[block_start..].find("\n\n").expect("block ends");
    let cfg = format!(
        "{}name = \"kannel\"\nkind = \"kannel\"\nsecret_env = \"HOTLINE_KANNEL_SECRET\"\n\
         sendsms_url = \"http://127.0.0.1:9/cgi-bin/sendsms\"\nusername = \"hotline\"\n\
         password_env = \"HOTLINE_KANNEL_PASSWORD\"\nfrom = \"21212\"\n\
         public_url = \"http://127.0.0.1:8080\"{}{DNIPRO}",
        &shipped[..block_start],
        &shipped[block_end..]
    );
    Gateway::start_with(
        &cfg,
        &[
            ("HOTLINE_KANNEL_SECRET", SECRET),
            ("HOTLINE_KANNEL_PASSWORD", "kannel-password-0123"),
            ("HOTLINE_DNIPRO_SECRET", SECRET),
        ],
        None,
        Clock::System,
    )
    .await
}

fn bad_requests(channel: &str, event: &str) -> String {
    format!(
        r#"hotline_webhook_requests_total{{channel="{channel}",event="{event}",outcome="bad_request"}}"#
    )
}

/// Before: `from=<coordinator>&from=<woman>` was read as the first `from`,
/// and `%zz` or `%ff` in a field was kept or made U+FFFD.
#[tokio::test]
async fn kannel_refuses_a_field_given_twice_and_a_bad_escape() {
    let gw = start().await;
    let path = |q: &str| format!("/webhooks/kannel/sms?secret={SECRET}&{q}");
    let cases = [
        (
            "from=%2B996555000001&from=%2B996555404041&text=HELP",
            "duplicate field `from`",
        ),
        (
            "from=%2B996555404041&text=HELP&text=STOP",
            "duplicate field `text`",
        ),
        (
            "from=%2B996555404041&text=%zzHELP",
            "request is not a valid form: bad percent-encoding",
        ),
        (
            "from=%2B996555404041&text=HELP%",
            "request is not a valid form: bad percent-encoding",
        ),
        (
            "from=%2B996555404041&text=%ff%fe",
            "text is not valid UTF-8",
        ),
    ];
    for (q, reason) in cases {
        let r = request(gw.public, "GET", &path(q), &[], b"").await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert_eq!(r.body.trim(), reason, "{q}");
    }
    // The same field in the form body and in the query is given twice.
    let r = request(
        gw.public,
        "POST",
        &path("from=%2B996555000001"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"from=%2B996555404041&text=HELP",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body.trim(), "duplicate field `from`");
    assert_eq!(
        gw.metric(&bad_requests("kannel", "sms")).await,
        cases.len() as f64 + 1.0
    );
    assert_eq!(
        gw.metric(r#"hotline_sessions_started_total{flow="legal_help"}"#)
            .await,
        0.0,
        "no state changed"
    );
    // A good one still opens a session.
    let r = request(
        gw.public,
        "GET",
        &path("from=%2B996555404041&text=HELP"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        gw.metric(r#"hotline_sessions_started_total{flow="legal_help"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_operators_form_api_refuses_what_is_not_a_valid_form() {
    let gw = start().await;
    let path = format!("/webhooks/dnipro/ussd?secret={SECRET}");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let hop = "sessionId=d1&serviceCode=1&phoneNumber=%2B380501234567&text=";
    let r = request(
        gw.public,
        "POST",
        &path,
        &[("Content-Type", "text/plain")],
        hop.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    for (body, reason) in [
        (
            format!("{hop}1*%zz"),
            "body is not a valid form: bad percent-encoding",
        ),
        (
            format!("{hop}1*%D0"),
            "body is not a valid form: not valid UTF-8",
        ),
        (
            format!("{hop}&phoneNumber=%2B380501234568"),
            "duplicate field `phoneNumber`",
        ),
    ] {
        let r = request(gw.public, "POST", &path, &form, body.as_bytes()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.body.trim(), reason, "{body}");
    }
    assert_eq!(gw.metric(&bad_requests("dnipro", "ussd")).await, 4.0);
    assert_eq!(
        gw.metric(r#"hotline_sessions_started_total{flow="legal_help"}"#)
            .await,
        0.0
    );
    let r = request(gw.public, "POST", &path, &form, hop.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.stop().await;
}
