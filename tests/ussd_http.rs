//! The gateway core over real HTTP: a woman completes the legal-help menu as
//! Africa's Talking would send it, on the embedded store.

mod common;

use common::{Gateway, post_form, request};
use hotline::case::CaseData;

const KG: &str = "+996555123456";

/// Walk a path of inputs; returns every reply body.
async fn walk(gw: &Gateway, session: &str, phone: &str, inputs: &[&str]) -> Vec<String> {
    let mut text = String::new();
    let mut out = Vec::new();
    let r = gw.ussd(session, phone, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    out.push(r.body);
    for (i, input) in inputs.iter().enumerate() {
        if i > 0 {
            text.push('*');
        }
        text.push_str(input);
        let r = gw.ussd(session, phone, &text).await;
        assert_eq!(r.status, 200, "{}", r.body);
        out.push(r.body);
    }
    out
}

fn code_of(end_screen: &str) -> String {
    let code: String = end_screen
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 4)
        .unwrap_or_else(|| panic!("no 4-digit code in {end_screen:?}"))
        .to_owned();
    code
}

async fn case(gw: &Gateway, code: &str) -> CaseData {
    let rec = gw
        .app
        .deps
        .store
        .case_by_code(code)
        .await
        .unwrap()
        .expect("case recorded under its code");
    let plain = gw
        .app
        .deps
        .privacy
        .open(&rec.data)
        .expect("sealed with the app key");
    serde_json::from_slice(&plain).unwrap()
}

#[tokio::test]
async fn the_urgent_path_works_in_every_language_a_kyrgyz_caller_is_offered() {
    let gw = Gateway::start_default().await;
    // A +996 caller's menu: Кыргызча, Русский, Ўзбекча, English.
    let expectations = [
        ("1", "Кайсы шаар?", "Бишкек", "Рахмат"),
        ("2", "Какой город?", "Бишкек", "Спасибо"),
        ("3", "Қайси шаҳар?", "Бишкек", "Раҳмат"),
        ("4", "Which city?", "Bishkek", "Thank you"),
    ];
    for (i, (lang, city_q, bishkek, thanks)) in expectations.iter().enumerate() {
        let session = format!("ATUid_lang_{i}");
        // One number per walk: the per-number rate limit is not under test here.
        let phone = format!("+99655512340{i}");
        let screens = walk(
            &gw,
            &session,
            &phone,
            &[lang, "1", "1", "Октябрьский РОВД, каб. 5", "0"],
        )
        .await;
        assert!(
            screens[0].starts_with("CON Язык/Тил/Мова/Language\n1 Кыргызча\n2 Русский"),
            "Kyrgyz first: {}",
            screens[0]
        );
        assert!(
            screens[1].starts_with(&format!("CON {city_q}")),
            "{}",
            screens[1]
        );
        assert!(screens[1].contains(&format!("1 {bishkek}")));
        assert!(
            !screens[1].contains("Полтава") && !screens[1].contains("Poltava"),
            "a +996 caller is not offered Poltava"
        );
        assert!(screens[2].starts_with("CON "));
        assert!(screens[3].starts_with("CON "));
        assert!(screens[4].starts_with("CON "));
        let end = &screens[5];
        assert!(end.starts_with(&format!("END {thanks}")), "{end}");
        assert!(
            end.contains("+996 000 000 000"),
            "the fallback number is shown: {end}"
        );
        let code = code_of(end);
        let c = case(&gw, &code).await;
        assert_eq!(c.city, "bishkek");
        assert_eq!(c.vars["situation"], "detained_self");
        assert_eq!(c.vars["location"], "Октябрьский РОВД, каб. 5");
        assert_eq!(
            c.callback(),
            Some(phone.as_str()),
            "0 means call back this number"
        );
        assert_eq!(c.caller.as_ref().map(|c| c.as_str()), Some(phone.as_str()));
        assert_eq!(c.channel, "africastalking");
    }
    assert_eq!(
        gw.metric(r#"hotline_cases_opened_total{city="bishkek"}"#)
            .await,
        4.0
    );
    assert_eq!(
        gw.metric(r#"hotline_sessions_started_total{flow="legal_help"}"#)
            .await,
        4.0
    );
    assert_eq!(
        gw.metric(r#"hotline_sessions_finished_total{flow="legal_help",outcome="completed"}"#)
            .await,
        4.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_report_path_a_friend_and_another_number() {
    let gw = Gateway::start_default().await;
    // Ukrainian caller: Poltava is offered, Bishkek is not.
    let ua = "+380501234567";
    let screens = walk(
        &gw,
        "ATUid_ua",
        ua,
        &["1", "1", "3", "4", "Київська 1", "050 765 43 21"],
    )
    .await;
    assert!(
        screens[1].contains("1 Полтава") && !screens[1].contains("Бішкек"),
        "{}",
        screens[1]
    );
    assert!(
        screens[3].contains("поліц") || screens[4].contains("поліц"),
        "the report path may name police"
    );
    let c = case(&gw, &code_of(screens.last().unwrap())).await;
    assert_eq!(c.city, "poltava");
    assert_eq!(c.vars["situation"], "report");
    assert_eq!(c.vars["abuse"], "planted");
    assert_eq!(
        c.callback(),
        Some("+380507654321"),
        "a typed national number gets the caller's country"
    );
    assert_eq!(c.lang, "uk");
    // A friend calls for someone else, from an unknown country: sees every city.
    let screens = walk(
        &gw,
        "ATUid_friend",
        "+254711000001",
        &["4", "3", "2", "0", "+996700111222"],
    )
    .await;
    assert!(screens[1].contains("Bishkek") && screens[1].contains("Poltava"));
    let c = case(&gw, &code_of(screens.last().unwrap())).await;
    assert_eq!(c.city, "poltava");
    assert_eq!(c.vars["situation"], "detained_other");
    assert!(!c.vars.contains_key("location"), "0 skips the location");
    assert_eq!(c.callback(), Some("+996700111222"));
    gw.stop().await;
}

#[tokio::test]
async fn a_retried_request_gets_the_same_reply_and_changes_nothing() {
    let gw = Gateway::start_default().await;
    walk(&gw, "ATUid_retry", KG, &["4", "1", "1", "Station"]).await;
    let first = gw.ussd("ATUid_retry", KG, "4*1*1*Station*0").await;
    assert!(first.body.starts_with("END "), "{}", first.body);
    let again = gw.ussd("ATUid_retry", KG, "4*1*1*Station*0").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "same reply, same code");
    // A stale copy of an earlier hop changes nothing: only a session's
    // latest reply is kept, and it gets that one (her code again).
    let earlier = gw.ussd("ATUid_retry", KG, "4*1").await;
    assert_eq!(earlier.body, first.body);
    assert_eq!(
        gw.metric(r#"hotline_cases_opened_total{city="bishkek"}"#)
            .await,
        1.0,
        "one case only"
    );
    assert_eq!(
        gw.metric(r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="duplicate"}"#).await,
        2.0
    );
    gw.stop().await;
}

/// A session the store no longer has (lost in a Redis failover, evicted)
/// while Africa's Talking's text still holds every answer she gave: she
/// goes on from the screen she is on, as if nothing happened. Before, the
/// menu started again at the language screen, and her next answers were
/// read as answers to the wrong questions.
#[tokio::test]
async fn an_unknown_session_with_answers_goes_on_from_where_she_is() {
    let gw = Gateway::start_default().await;
    // The same answers in a session the store kept, for comparison.
    let kept = walk(&gw, "ATUid_kept", KG, &["4", "1", "1"]).await;
    let r = gw.ussd("ATUid_lost", "+996555000002", "4*1*1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, kept[3], "the screen after her third answer");
    // And on to her code: the next hop's input is what follows.
    let r = gw
        .ussd("ATUid_lost", "+996555000002", "4*1*1*Station 5")
        .await;
    let r2 = gw
        .ussd("ATUid_lost", "+996555000002", "4*1*1*Station 5*0")
        .await;
    assert!(r.body.starts_with("CON "), "{}", r.body);
    assert!(code_of(&r2.body).len() >= 4, "{}", r2.body);
    gw.stop().await;
}

/// Answers that do not read as a walk through the menu (a wrong answer
/// among them) cannot be replayed: the menu starts again, and what comes
/// after is read from there.
#[tokio::test]
async fn an_unknown_session_whose_answers_do_not_read_starts_afresh() {
    let gw = Gateway::start_default().await;
    let r = gw.ussd("ATUid_never_seen", KG, "9*9*9").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.starts_with("CON Язык/Тил/Мова/Language"),
        "{}",
        r.body
    );
    let r = gw.ussd("ATUid_never_seen", KG, "9*9*9*4").await;
    assert!(r.body.starts_with("CON Which city?"), "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn invalid_answers_reprompt_then_end_with_the_fallback() {
    let gw = Gateway::start_default().await;
    let screens = walk(&gw, "ATUid_bad", KG, &["4", "9", "x", ""]).await;
    assert_eq!(
        screens[2], "CON Not valid. Try again:\nWhich city?\n1 Bishkek\n2 Osh\n3 Other city",
        "the question is shown again under the hint"
    );
    assert!(screens[3].starts_with("CON Not valid."));
    assert_eq!(
        screens[4],
        "END Sorry, that did not work. Please call us: +996 000 000 000"
    );
    assert_eq!(
        gw.metric(r#"hotline_sessions_finished_total{flow="legal_help",outcome="invalid"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_star_typed_inside_an_address_stays_in_it() {
    let gw = Gateway::start_default().await;
    let screens = walk(
        &gw,
        "ATUid_star",
        KG,
        &["4", "1", "1", "Block 5*2, flat 7", "0"],
    )
    .await;
    let c = case(&gw, &code_of(screens.last().unwrap())).await;
    assert_eq!(c.vars["location"], "Block 5*2, flat 7");
    gw.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_a_clear_400_and_change_nothing() {
    let gw = Gateway::start_default().await;
    let path = "/webhooks/africastalking/ussd";
    let cases: &[(&str, &str)] = &[
        (
            "serviceCode=1&phoneNumber=%2B996555123456&text=",
            "missing field `sessionId`",
        ),
        (
            "sessionId=a&phoneNumber=%2B996555123456&text=",
            "missing field `serviceCode`",
        ),
        (
            "sessionId=a&serviceCode=1&text=",
            "missing field `phoneNumber`",
        ),
        (
            "sessionId=a&serviceCode=1&phoneNumber=12&text=",
            "phoneNumber: phone number has the wrong number of digits",
        ),
        (
            "sessionId=a&serviceCode=1&phoneNumber=%2B99655512345x&text=",
            "phoneNumber: phone number has a character that is not a digit",
        ),
        (
            "sessionId=a%0Ab&serviceCode=1&phoneNumber=%2B996555123456&text=",
            "sessionId is not a valid id",
        ),
        (
            "sessionId=a&sessionId=b&serviceCode=1&phoneNumber=%2B996555123456",
            "duplicate field `sessionId`",
        ),
        ("{\"sessionId\": \"a\"}", "missing field `sessionId`"),
        ("", "missing field `sessionId`"),
    ];
    for (body, reason) in cases {
        let r = post_form(gw.public, path, body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.body.trim(), *reason, "{body}");
        assert!(!r.body.contains("555"), "no echo of the number");
    }
    assert_eq!(
        gw.metric(r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="bad_request"}"#).await,
        cases.len() as f64
    );
    assert_eq!(
        gw.metric(r#"hotline_sessions_started_total{flow="legal_help"}"#)
            .await,
        0.0,
        "no state changed"
    );

    let r = request(gw.public, "GET", path, &[], b"").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = post_form(gw.public, "/webhooks/nosuch/ussd", "x=1").await;
    assert_eq!(r.status, 404);
    let r = post_form(gw.public, "/webhooks/africastalking/fax", "x=1").await;
    assert_eq!(r.status, 404);
    let r = post_form(gw.public, "/", "").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        gw.metric(r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="method_not_allowed"}"#).await,
        1.0
    );
    assert_eq!(
        gw.metric(
            r#"hotline_webhook_requests_total{channel="_unknown",event="ussd",outcome="not_found"}"#
        )
        .await,
        3.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_17_kib_body_is_refused_with_413() {
    let gw = Gateway::start_default().await;
    let body = format!(
        "sessionId=a&serviceCode=1&phoneNumber=%2B996555123456&text={}",
        "x".repeat(17 * 1024)
    );
    let r = post_form(gw.public, "/webhooks/africastalking/ussd", &body).await;
    assert_eq!(r.status, 413, "{}", r.body);
    // Without a Content-Length (chunked), the cap applies while reading.
    let r = tokio::time::timeout(common::TIMEOUT, async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(gw.public).await.unwrap();
        s.write_all(b"POST /webhooks/africastalking/ussd HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
        let chunk = "y".repeat(4096);
        for _ in 0..5 {
            if s.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        common::parse_response(&buf)
    })
    .await
    .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(
        gw.metric(r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="too_large"}"#).await,
        2.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_flood_from_one_number_is_limited_calmly_and_others_pass() {
    let cfg = common::default_config()
        .replace("per_number_per_minute = 30", "per_number_per_minute = 6")
        .replace("per_number_burst = 15", "per_number_burst = 3");
    let gw = Gateway::start_with(&cfg, &[], None, hotline::clock::Clock::System).await;
    for i in 0..3 {
        let r = gw.ussd(&format!("ATUid_flood_{i}"), KG, "").await;
        assert!(r.body.starts_with("CON "), "{}", r.body);
    }
    let r = gw.ussd("ATUid_flood_x", KG, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body, "END Азыр мүмкүн эмес. Бизге чалыңыз: +996 000 000 000",
        "before she chose: her country's language"
    );
    // Her text says she chose Russian: told in Russian (before, in her
    // country's first language, though her session was in Russian).
    let r = gw.ussd("ATUid_flood_0", KG, "2").await;
    assert_eq!(
        r.body, "END Сейчас не получается. Позвоните нам: +996 000 000 000",
        "after she chose: hers"
    );
    let other = gw.ussd("ATUid_other", "+996555999888", "").await;
    assert!(
        other.body.starts_with("CON "),
        "another caller is not affected"
    );
    assert_eq!(
        gw.metric(r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="rate_limited"}"#).await,
        2.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_channel_secret_is_required_when_configured() {
    let cfg = common::default_config().replace(
        "# secret_env = \"HOTLINE_AT_SECRET\"",
        "secret_env = \"HOTLINE_AT_SECRET\"",
    );
    let gw = Gateway::start_with(
        &cfg,
        &[("HOTLINE_AT_SECRET", "s3cret-value")],
        None,
        hotline::clock::Clock::System,
    )
    .await;
    let body = common::form(&[
        ("sessionId", "a"),
        ("serviceCode", "1"),
        ("phoneNumber", KG),
        ("text", ""),
    ]);
    let r = post_form(gw.public, "/webhooks/africastalking/ussd", &body).await;
    assert_eq!(r.status, 403);
    let r = post_form(
        gw.public,
        "/webhooks/africastalking/ussd?secret=wrong",
        &body,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post_form(
        gw.public,
        "/webhooks/africastalking/ussd?secret=s3cret-value",
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        gw.metric(r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="forbidden"}"#).await,
        2.0
    );
    assert_eq!(
        gw.metric(r#"hotline_sessions_started_total{flow="legal_help"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn admin_endpoints_answer() {
    let gw = Gateway::start_default().await;
    let r = request(gw.admin, "GET", "/healthz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = request(gw.admin, "GET", "/readyz", &[], b"").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    let r = request(gw.admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("# TYPE hotline_webhook_requests_total counter")
    );
    assert!(r.body.contains("hotline_webhook_duration_seconds_bucket"));
    let r = request(gw.admin, "POST", "/metrics", &[], b"").await;
    assert_eq!(r.status, 405);
    let r = request(gw.admin, "GET", "/nope", &[], b"").await;
    assert_eq!(r.status, 404);
    // The webhook listener does not serve admin paths.
    let r = request(gw.public, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 404);
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_and_turns_readyz_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut gw = Gateway::start_default().await;
    let body = common::form(&[
        ("sessionId", "ATUid_inflight"),
        ("serviceCode", "1"),
        ("phoneNumber", KG),
        ("text", ""),
    ]);
    let (first, second) = body.split_at(body.len() / 2);
    let mut s = tokio::net::TcpStream::connect(gw.public).await.unwrap();
    s.write_all(
        format!(
            "POST /webhooks/africastalking/ussd HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{first}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Let the server start reading the request, then shut down mid-body.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    gw.trigger_shutdown();
    let mut ready = None;
    for _ in 0..50 {
        let r = request(gw.admin, "GET", "/readyz", &[], b"").await;
        if r.status == 503 {
            ready = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ready = ready.expect("/readyz turns 503 while draining");
    assert_eq!(ready.body, "draining\n");
    // New connections to the webhook listener are no longer accepted…
    let refused = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        tokio::net::TcpStream::connect(gw.public),
    )
    .await;
    if let Ok(Ok(mut c)) = refused {
        // …or, if the kernel still completed the handshake, never answered.
        let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(std::time::Duration::from_millis(300), c.read(&mut buf)).await;
        assert!(
            !matches!(n, Ok(Ok(1))),
            "a new request was served during drain"
        );
    }
    // …but the request in flight completes.
    s.write_all(second.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(common::TIMEOUT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let r = common::parse_response(&buf);
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("CON "), "{}", r.body);
    gw.join().await;
}

#[tokio::test]
async fn a_disabled_channel_answers_404_and_says_so() {
    let gw = Gateway::start_default().await;
    let r = post_form(
        gw.public,
        "/webhooks/twilio/sms",
        "From=%2B996555000001&Body=HELP",
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (404, "channel is disabled\n"));
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cfg = common::default_config().replace(
        "header_read_timeout_ms = 5000",
        "header_read_timeout_ms = 300",
    );
    let gw = Gateway::start_with(&cfg, &[], None, hotline::clock::Clock::System).await;
    let mut s = tokio::net::TcpStream::connect(gw.public).await.unwrap();
    s.write_all(b"POST /webhooks/africastalking/ussd HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // …and nothing more: the server closes the connection.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(common::TIMEOUT, s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was closed, not left hanging");
    gw.stop().await;
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429_with_retry_after() {
    let cfg = common::default_config()
        .replace("per_ip_per_second = 200", "per_ip_per_second = 1")
        .replace("per_ip_burst = 400", "per_ip_burst = 3");
    let gw = Gateway::start_with(&cfg, &[], None, hotline::clock::Clock::System).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(
            gw.ussd(&format!("ATUid_ip_{i}"), &format!("+99655512{i:04}"), "")
                .await,
        );
    }
    assert!(statuses[..3].iter().all(|r| r.status == 200));
    let limited = &statuses[4];
    assert_eq!(limited.status, 429);
    assert!(
        limited
            .header("retry-after")
            .is_some_and(|v| v.parse::<u64>().unwrap() >= 1)
    );
    assert!(gw.metric("hotline_ip_rate_limited_total").await >= 1.0);
    // The admin listener is not limited.
    assert_eq!(
        request(gw.admin, "GET", "/healthz", &[], b"").await.status,
        200
    );
    gw.stop().await;
}

/// One number flooding through the aggregator's (authenticated) address
/// is held by the per-number limit and spends no per-address budget, so
/// every other woman arriving from that address still gets her menu.
/// Before, the per-address budget was spent by the flood and the others got
/// 429, which ends an Africa's Talking session. A channel that admits
/// anyone is still limited per address (the test above).
#[tokio::test]
async fn one_number_flooding_through_the_aggregators_address_does_not_stop_the_others() {
    let cfg = common::default_config()
        .replace(
            "# secret_env = \"HOTLINE_AT_SECRET\"",
            "secret_env = \"HOTLINE_AT_SECRET\"",
        )
        .replace("per_ip_per_second = 200", "per_ip_per_second = 1")
        .replace("per_ip_burst = 400", "per_ip_burst = 3");
    assert!(cfg.contains("\nsecret_env = \"HOTLINE_AT_SECRET\""));
    let gw = Gateway::start_with(
        &cfg,
        &[("HOTLINE_AT_SECRET", "at-secret-0123456789")],
        None,
        hotline::clock::Clock::System,
    )
    .await;
    let hop = |session: String, phone: String| {
        let body = common::form(&[
            ("sessionId", session.as_str()),
            ("serviceCode", "*384*1#"),
            ("phoneNumber", phone.as_str()),
            ("text", ""),
        ]);
        let public = gw.public;
        async move {
            post_form(
                public,
                "/webhooks/africastalking/ussd?secret=at-secret-0123456789",
                &body,
            )
            .await
        }
    };
    // 60 hops of one number, twenty times the per-address burst.
    for i in 0..60 {
        let r = hop(format!("ATUid_flood_{i}"), KG.to_owned()).await;
        assert_eq!(r.status, 200, "the flood is held per number, calmly");
    }
    assert!(
        gw.metric(r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="rate_limited"}"#).await
            >= 40.0,
        "the per-number limit held the flood"
    );
    for i in 0..17 {
        let r = hop(format!("ATUid_other_{i}"), format!("+99655590{i:04}")).await;
        assert_eq!(r.status, 200, "woman {i}: {}", r.body);
        assert!(r.body.starts_with("CON "), "woman {i}: {}", r.body);
    }
    assert_eq!(gw.metric("hotline_ip_rate_limited_total").await, 0.0);
    gw.stop().await;
}

/// The memory store keeps a session's state (in its compact in-process
/// form) and its cached screen unsealed (its data never leaves the
/// process, whose memory holds the key too: docs/security.md); a retried
/// hop is still answered from the cache.
/// Cases stay sealed (`case` above opens one with the app's key).
#[tokio::test]
async fn the_memory_store_keeps_session_state_in_clear_and_answers_retries() {
    let gw = Gateway::start_default().await;
    let (session, phone) = ("ATUid_in_process", "+996555300901");
    let first = gw.ussd(session, phone, "").await;
    assert!(first.body.starts_with("CON "), "{}", first.body);
    let again = gw.ussd(session, phone, "").await;
    assert_eq!(again.body, first.body, "a retry gets the same screen");
    assert!(gw.app.deps.store.in_process());
    let data = gw.stored_ussd_session(session, phone).await;
    // The compact in-process form (`conversation/codec.rs`), not sealed:
    // her flow's id is there in clear.
    assert!(
        data.windows(10).any(|w| w == b"legal_help"),
        "{:?}",
        String::from_utf8_lossy(&data)
    );
}

/// When every code her case could take is in use, the woman who finished
/// the menu is told to call the fallback number — never shown a code —
/// nothing is recorded, and the operator is told
/// (`hotline_cases_not_recorded_total`, alert `HotlineCasesNotRecorded`).
#[tokio::test]
async fn with_every_candidate_code_taken_she_is_sent_to_the_fallback_number_and_it_is_counted() {
    let gw = Gateway::start_default().await;
    let (session, phone) = ("ATUid_no_code", "+996555123499");
    let taken = gw.take_her_case_codes(session, phone).await;
    assert_eq!(taken.len(), 20, "eight four-digit codes, twelve longer");
    let screens = walk(
        &gw,
        session,
        phone,
        &["2", "1", "1", "Октябрьский РОВД", "0"],
    )
    .await;
    let end = &screens[5];
    assert_eq!(
        end, "END Сейчас не получается. Позвоните нам: +996 000 000 000",
        "the fallback screen in her language"
    );
    assert!(
        !taken.iter().any(|c| end.contains(c.as_str())),
        "no code: {end}"
    );
    let not_recorded = r#"hotline_cases_not_recorded_total{reason="codes_exhausted"}"#;
    assert_eq!(gw.metric(not_recorded).await, 1.0);
    assert_eq!(
        gw.metric(r#"hotline_cases_not_recorded_total{reason="spool_failed"}"#)
            .await,
        0.0
    );
    assert_eq!(
        gw.metric(r#"hotline_cases_opened_total{city="bishkek"}"#)
            .await,
        0.0
    );
    // Her case was not recorded: only the fillers are in her bucket.
    let deps = &gw.app.deps;
    let bucket = deps
        .privacy
        .pseudonym(phone)
        .bucket(hotline::store::BUCKETS);
    let ids = deps.store.case_ids(bucket, false).await.unwrap();
    assert_eq!(ids.len(), taken.len(), "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("filler-")), "{ids:?}");
    gw.stop().await;
}

/// A USSD session is its caller's: another number sending the same session
/// id (an aggregator that reuses ids, or someone who learned hers) starts a
/// session of its own and never sees her screens, answers or code; her
/// menu goes on, and her case has her place and her number.
#[tokio::test]
async fn another_number_with_her_session_id_gets_a_session_of_its_own() {
    let gw = Gateway::start_default().await;
    let (session, her) = ("ATUid_shared_id", "+996555123470");
    // A number whose data lives beside hers (the same store bucket).
    let privacy = &gw.app.deps.privacy;
    let bucket = |n: &str| privacy.pseudonym(n).bucket(hotline::store::BUCKETS);
    let other = (0..200)
        .map(|i| format!("+380500000{i:03}"))
        .find(|n| bucket(n) == bucket(her))
        .expect("one in 200 numbers shares her bucket");
    let other = other.as_str();
    for text in ["", "4", "4*1", "4*1*1"] {
        let r = gw.ussd(session, her, text).await;
        assert!(r.body.starts_with("CON "), "{}", r.body);
    }
    // The other number sends hops of the same session id: a whole request
    // of its own (which is its own case, if any), then a hop like hers.
    let theirs = gw.ussd(session, other, "1*1*1*Somewhere else*0").await.body;
    // Her menu goes on as she left it, and her code is her case's.
    let r = gw.ussd(session, her, "4*1*1*Station 5").await;
    assert!(
        r.body.starts_with("CON Which number is safe to call?"),
        "her next screen, not the end of theirs: {}",
        r.body
    );
    let end = gw.ussd(session, her, "4*1*1*Station 5*0").await.body;
    assert!(end.starts_with("END Thank you. Your code is "), "{end}");
    let code = code_of(&end);
    let c = case(&gw, &code).await;
    assert_eq!(c.vars["location"], "Station 5");
    assert_eq!(c.caller.as_ref().map(|c| c.as_str()), Some(her));
    assert!(
        !theirs.contains(&code),
        "the other number was not shown her code: {theirs}"
    );
    gw.stop().await;
}

/// A body declared as something other than a form, or one that is not a
/// valid form (a bad `%` escape, bytes that are not UTF-8, raw or
/// escaped), is refused whole, counted, and changes nothing: before, it
/// was read with the `%` kept and U+FFFD in place of the bytes, and
/// reached the lawyer's offer as `Where: ��%zzPlace.`
#[tokio::test]
async fn a_body_that_is_not_a_valid_form_is_refused_and_changes_nothing() {
    let gw = Gateway::start_default().await;
    let hop = "sessionId=bad1&serviceCode=1&phoneNumber=%2B996555123456&text=";
    for (path, content_type) in [
        ("/webhooks/africastalking/ussd", "text/plain"),
        (
            "/webhooks/africastalking/ussd",
            "multipart/form-data; boundary=x",
        ),
        ("/webhooks/africastalking/ussd", "application/json"),
        ("/webhooks/africastalking/sms", "text/plain"),
        ("/webhooks/africastalking/status", "text/plain"),
    ] {
        let r = request(
            gw.public,
            "POST",
            path,
            &[("Content-Type", content_type)],
            hop.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 415, "{path} {content_type}: {}", r.body);
        assert_eq!(
            r.body.trim(),
            "Content-Type must be application/x-www-form-urlencoded"
        );
    }
    // No Content-Type at all is still read as a form.
    let r = request(
        gw.public,
        "POST",
        "/webhooks/africastalking/ussd",
        &[],
        b"sessionId=none1&serviceCode=1&phoneNumber=%2B996555123457&text=",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let bad: &[(&[u8], &str)] = &[
        (b"4*1*1*%zzPlace", "bad percent-encoding"),
        (b"4*1*1*Place%", "bad percent-encoding"),
        (b"4*1*1*Place%4", "bad percent-encoding"),
        (b"4*1*1*%ff%fePlace", "not valid UTF-8"),
        (b"4*1*1*\xff\xfePlace", "not valid UTF-8"),
        (b"4*1*1*%D0", "not valid UTF-8"),
    ];
    for (text, reason) in bad {
        let body = [
            &b"sessionId=bad2&serviceCode=1&phoneNumber=%2B996555123458&text="[..],
            text,
        ]
        .concat();
        let r = request(
            gw.public,
            "POST",
            "/webhooks/africastalking/ussd",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &body,
        )
        .await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(text));
        assert_eq!(r.body.trim(), format!("body is not a valid form: {reason}"));
    }
    // An inbound SMS too, and a broken field nobody reads.
    for body in [
        &b"from=%2B996555123458&text=%zz"[..],
        b"from=%2B996555123458&text=Hi&linkId=%ff",
    ] {
        let r = request(
            gw.public,
            "POST",
            "/webhooks/africastalking/sms",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body,
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let counted = |event: &str| {
        format!(
            r#"hotline_webhook_requests_total{{channel="africastalking",event="{event}",outcome="bad_request"}}"#
        )
    };
    assert_eq!(gw.metric(&counted("ussd")).await, 3.0 + bad.len() as f64);
    assert_eq!(gw.metric(&counted("sms")).await, 3.0);
    assert_eq!(gw.metric(&counted("status")).await, 1.0);
    assert_eq!(
        gw.metric(r#"hotline_sessions_started_total{flow="legal_help"}"#)
            .await,
        1.0,
        "only the hop without a Content-Type started a session"
    );
    gw.stop().await;
}

/// What she types reaches the lawyer's offer with every control character
/// and line break made one space: before, NUL, ESC sequences, BEL and
/// CR/LF in her location and safe number went into the SMS as they were.
/// Direction controls are dropped: a right-to-left override (U+202E) in
/// her location showed the rest of the offer reversed on the lawyer's
/// phone, the number to call back and the code to accept with included.
#[tokio::test]
async fn control_characters_in_her_answers_never_reach_the_lawyers_sms() {
    let gw = Gateway::start_default().await;
    let location = "\u{0}Station\r\n5\u{1b}[31m\u{7} \u{202e}\u{85}gate\u{2028}2\u{2066}\u{200f}\t";
    let screens = walk(&gw, "ctl1", KG, &["4", "1", "1", location, "0"]).await;
    assert!(screens[5].starts_with("END"), "{}", screens[5]);
    let code = code_of(&screens[5]);
    let data = case(&gw, &code).await;
    assert_eq!(
        data.vars.get("location").map(String::as_str),
        Some("Station 5 [31m gate 2")
    );
    let console = gw.app.channels["console"].console().expect("a console");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let offer = loop {
        if let Some(m) = console
            .messages()
            .into_iter()
            .find(|m| m.text.contains(&code))
        {
            break m.text;
        }
        assert!(std::time::Instant::now() < deadline, "no offer sent");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(offer.contains("Where: Station 5 [31m gate 2."), "{offer:?}");
    assert!(!offer.chars().any(char::is_control), "{offer:?}");
    assert!(
        !offer
            .chars()
            .any(|c| matches!(c, '\u{200e}' | '\u{200f}' | '\u{61c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
        "{offer:?}"
    );
    gw.stop().await;
}
