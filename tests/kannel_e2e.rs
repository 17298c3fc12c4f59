//! A whole SMS conversation through a real Kannel: a phone on Kannel's fake
//! SMS centre texts a Cyrillic keyword, walks the legal-help menu by SMS,
//! and a case is opened. Inbound via Kannel's `get-url`, outbound via the
//! outbox and Kannel's `sendsms`, delivery reports via `dlr-url`.

mod common;

use std::time::Duration;

use common::Gateway;
use common::kannel::{self, Kannel};
use common::redis::free_port;

const SECRET: &str = "kannel-webhook-secret";
const WOMAN: &str = "+996555404040";

/// A real Kannel, and the gateway with the shipped kannel channel enabled
/// and pointed at it.
async fn kannel_and_gateway() -> (Kannel, Gateway) {
    // The gateway's port is chosen first so Kannel can be told where to
    // deliver, and the gateway where Kannel's sendsms listens.
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let k = Kannel::start(&format!("{public}/webhooks/kannel/sms?secret={SECRET}")).await;
    // Enable the shipped (disabled) kannel channel, pointed at this Kannel.
    let shipped = common::with_real_channels(&common::default_config());
    let block_start = shipped
        .find("name = \"kannel\"")
        .expect("shipped config has a kannel channel");
    let block_end = block_start + shipped[block_start..].find("\n\n").expect("block ends");
    let cfg = format!(
        "{}name = \"kannel\"\nkind = \"kannel\"\nsecret_env = \"HOTLINE_KANNEL_SECRET\"\n\
         sendsms_url = \"{}\"\nusername = \"{}\"\npassword_env = \"HOTLINE_KANNEL_PASSWORD\"\n\
         from = \"21212\"\npublic_url = \"{public}\"{}",
        &shipped[..block_start],
        k.sendsms_url(),
        kannel::USERNAME,
        &shipped[block_end..]
    );
    let listen = format!("127.0.0.1:{port}");
    let gw = Gateway::start_with(
        &cfg,
        &[
            ("HOTLINE_LISTEN", &listen),
            ("HOTLINE_KANNEL_SECRET", SECRET),
            ("HOTLINE_KANNEL_PASSWORD", kannel::PASSWORD),
        ],
        None,
        hotline::clock::Clock::System,
    )
    .await;
    (k, gw)
}

#[tokio::test]
async fn a_cyrillic_keyword_over_real_kannel_walks_the_menu_and_opens_a_case() {
    let (k, gw) = kannel_and_gateway().await;
    let mut phone = k.phone().await;
    let wait = Duration::from_secs(15);

    phone.send_mo(WOMAN, "21212", "ПОМОЩЬ").await;
    let (from, to, text) = phone.recv_mt(wait).await;
    assert_eq!(from, "21212");
    assert_eq!(to, WOMAN);
    assert_eq!(
        text, "Язык/Тил/Мова/Language\n1 Кыргызча\n2 Русский\n3 Ўзбекча\n4 English",
        "a +996 caller is offered Kyrgyz first"
    );

    let expect = [
        ("2", "Какой город?\n1 Бишкек\n2 Ош\n3 Другой город"),
        (
            "1",
            "Чем помочь?\n1 Нужна помощь сейчас\n2 Помощь близкому\n3 Рассказать о насилии",
        ),
        ("1", "Где вы сейчас? Адрес или место\n0 Не знаю"),
        (
            "Октябрьский район, ул. Токтогула 5",
            "Куда безопасно позвонить? Введите номер\n0 На этот номер",
        ),
    ];
    for (answer, screen) in expect {
        phone.send_mo(WOMAN, "21212", answer).await;
        let (_, _, text) = phone.recv_mt(wait).await;
        assert_eq!(text, screen, "after {answer:?}");
    }
    phone.send_mo(WOMAN, "21212", "0").await;
    let (_, _, last) = phone.recv_mt(wait).await;
    assert!(last.starts_with("Спасибо. Ваш код "), "{last}");
    let code: String = last
        .trim_start_matches("Спасибо. Ваш код ")
        .chars()
        .take(4)
        .collect();
    let case = gw
        .app
        .deps
        .store
        .case_by_code(&code)
        .await
        .unwrap()
        .expect("case recorded");
    let data: hotline::case::CaseData =
        serde_json::from_slice(&gw.app.deps.privacy.open(&case.data).unwrap()).unwrap();
    assert_eq!(data.channel, "kannel");
    assert_eq!(data.city, "bishkek");
    assert_eq!(data.vars["location"], "Октябрьский район, ул. Токтогула 5");
    assert_eq!(data.callback(), Some(WOMAN));

    // Kannel's fake SMSC reports deliveries through the dlr-url.
    let deadline = std::time::Instant::now() + wait;
    // A report can overtake the sender's own bookkeeping: wait for both.
    while gw
        .metric(r#"hotline_delivery_reports_total{channel="kannel",state="delivered"}"#)
        .await
        < 6.0
        || gw
            .metric(r#"hotline_outbox_sent_total{channel="kannel",purpose="screen"}"#)
            .await
            < 6.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "delivery reports arrive:\n{}",
            k.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gw.metric(r#"hotline_outbox_sent_total{channel="kannel",purpose="screen"}"#)
            .await,
        6.0
    );
    assert_eq!(
        gw.metric(r#"hotline_webhook_requests_total{channel="kannel",event="sms",outcome="ok"}"#)
            .await,
        6.0
    );
    // Every report was applied to its message's record: a report that came
    // before the record waited for it (parked), none was dropped.
    while !gw.app.outbox.parked_reports().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "parked reports applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        gw.metric(r#"hotline_delivery_reports_unmatched_total{channel="kannel"}"#)
            .await,
        0.0
    );
    gw.stop().await;
}

/// An operator's message from an alphanumeric sender (`Beeline`) through a
/// real Kannel: answered 200 and counted as refused once, never as a bad
/// request. (The audit saw 400 `from: phone number has a character that is
/// not a digit`, which Kannel asked again three times: four bad requests,
/// enough to trip HotlineBadRequestsSpike.)
#[tokio::test]
async fn an_sms_from_an_alphanumeric_sender_is_refused_once_not_retried() {
    let (k, gw) = kannel_and_gateway().await;
    let mut phone = k.phone().await;
    phone.send_mo("Beeline", "21212", "Balance 5 som").await;
    let refused = r#"hotline_sms_refused_total{channel="kannel"}"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.metric(refused).await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "Kannel delivers it:\n{}",
            k.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Kannel's retries (http-request-retry = 3, 1 s apart) would come now.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(gw.metric(refused).await, 1.0, "{}", k.logs());
    let requests = |outcome: &str| {
        format!(
            r#"hotline_webhook_requests_total{{channel="kannel",event="sms",outcome="{outcome}"}}"#
        )
    };
    assert_eq!(gw.metric(&requests("bad_request")).await, 0.0);
    assert_eq!(gw.metric(&requests("ok")).await, 1.0);
    // Nothing was sent to it.
    assert!(phone.recv_line(Duration::from_millis(300)).await.is_none());
    gw.stop().await;
}
