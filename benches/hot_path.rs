//! Micro-benchmarks of the pure parts of a webhook (no I/O): the flow
//! engine, each adapter's parser (through the [`Channel`] trait, built from
//! the shipped config with every channel enabled), sealing, pseudonyms,
//! template rendering, screen measuring and number parsing.
//!
//! `cargo bench` runs them all with short time limits (0.05–0.2 s each, about 2 s in all);
//! `cargo bench -- engine` runs those whose name contains `engine`, and
//! divan's own flags (`--max-time 2`, `--sample-count 500`) override the
//! defaults. The whole hop over HTTP is measured by `load-tests/run.sh`;
//! see docs/performance.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use divan::Bencher;
use hotline::channel::{self, Channel, Request};
use hotline::flow::{Flow, engine, parse};
use hotline::phone::{PhoneNumber, country_by_iso};
use hotline::privacy::Privacy;
use hotline::text::measure;
use http::{HeaderMap, HeaderValue, Method};

fn main() {
    divan::Divan::default()
        .min_time(Duration::from_millis(50))
        .max_time(Duration::from_millis(200))
        .config_with_args()
        .main();
}

static FLOW: LazyLock<Flow> = LazyLock::new(|| {
    parse(
        include_str!("../flows/legal_help.toml"),
        "flows/legal_help.toml",
        "+996 000 000 000",
    )
    .expect("shipped flow")
    .0
});

fn caller() -> engine::Caller {
    engine::Caller {
        country: country_by_iso("KG"),
    }
}

/// The state after choosing the language: the city menu.
static CITY: LazyLock<engine::Step> = LazyLock::new(|| {
    let start = engine::start(&FLOW, &caller(), None, 0);
    engine::step(&FLOW, &start.state, &caller(), "1", 0)
});

mod flow_engine {
    use super::*;

    #[divan::bench]
    fn start() -> engine::Step {
        engine::start(black_box(&FLOW), &caller(), None, 0)
    }

    #[divan::bench]
    fn step_menu_choice(b: Bencher<'_, '_>) {
        let c = caller();
        b.bench(|| engine::step(&FLOW, black_box(&CITY.state), &c, "1", 0));
    }

    #[divan::bench]
    fn step_invalid_answer(b: Bencher<'_, '_>) {
        let c = caller();
        b.bench(|| engine::step(&FLOW, black_box(&CITY.state), &c, "9", 0));
    }
}

/// Every adapter of the shipped config, enabled, with dummy secrets.
static CHANNELS: LazyLock<BTreeMap<String, Arc<dyn Channel>>> = LazyLock::new(|| {
    // With sending credentials the config is a production one: no
    // placeholders, no console sink (`hotline check`'s rules).
    let text = include_str!("../config/hotline.toml")
        .replace("enabled = false", "enabled = true")
        .replace("https://hotline.example.org", "https://bench.hotline.test")
        .replace("+996 000 000 000", "+996 312 555 010")
        .replace("+380 000 000 000", "+380 532 555 010")
        .replace(
            "AC00000000000000000000000000000000",
            "AC0123456789abcdef0123456789abcdef",
        )
        .replace("+10000000000", "+12025550143")
        .replace("xxxxx.api.infobip.com", "bench.api.infobip.com")
        .replace("sms_channel = \"console\"", "sms_channel = \"twilio\"")
        .replace(
            "name = \"console\"\nkind = \"console\"",
            "name = \"console\"\nkind = \"console\"\nenabled = false",
        );
    let env: BTreeMap<&str, &str> = [
        ("HOTLINE_PII_KEY", "bench-key-0123456789abcdef0123456789"),
        ("HOTLINE_TWILIO_AUTH_TOKEN", "t"),
        ("HOTLINE_KANNEL_SECRET", "s"),
        ("HOTLINE_KANNEL_PASSWORD", "p"),
        ("HOTLINE_INFOBIP_SECRET", "s"),
        ("HOTLINE_INFOBIP_API_KEY", "k"),
        ("HOTLINE_USSD_SECRET", "s"),
    ]
    .into_iter()
    .collect();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let (config, _) = hotline::config::parse(&text, "bench.toml", &base, &env)
        .unwrap_or_else(|e| panic!("bench config: {:?}", e.problems()));
    let http = channel::http_client();
    config
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ch = channel::build(i, c, "bench.toml", &http)
                .unwrap_or_else(|p| panic!("channel {}: {p:?}", c.name));
            (c.name.clone(), ch)
        })
        .collect()
});

fn request(method: Method, content_type: &str, query: Option<&str>, body: &str) -> Request {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("header"),
    );
    Request {
        method,
        path: "/webhooks/bench/sms".into(),
        query: query.map(str::to_owned),
        headers,
        body: Bytes::from(body.to_owned()),
        peer: [127, 0, 0, 1].into(),
    }
}

fn form(body: &str) -> Request {
    request(
        Method::POST,
        "application/x-www-form-urlencoded",
        None,
        body,
    )
}

fn channel(name: &str) -> &'static dyn Channel {
    CHANNELS
        .get(name)
        .unwrap_or_else(|| panic!("no channel {name}"))
        .as_ref()
}

const AT_USSD: &str = "sessionId=ATUid_0123456789abcdef&serviceCode=%2A384%2A123%23&phoneNumber=%2B996555123456&networkCode=43701&text=1%2A1%2A1%2AStation%205";

mod parsers {
    use super::*;

    #[divan::bench]
    fn africastalking_ussd(b: Bencher<'_, '_>) {
        let (ch, req) = (channel("africastalking"), form(AT_USSD));
        b.bench(|| ch.parse_ussd(black_box(&req)).is_ok());
    }

    #[divan::bench]
    fn africastalking_sms(b: Bencher<'_, '_>) {
        let ch = channel("africastalking");
        let req = form(
            "from=%2B996555123456&to=21212&text=OK%204821&date=2026-11-30%2004%3A00%3A00&id=ATXid_0123456789&linkId=x",
        );
        b.bench(|| ch.parse_sms(black_box(&req)).is_ok());
    }

    #[divan::bench]
    fn twilio_sms(b: Bencher<'_, '_>) {
        let ch = channel("twilio");
        let req = form(
            "ToCountry=KG&SmsMessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=0&SmsSid=SM0123456789abcdef0123456789abcdef&SmsStatus=received&Body=OK%204821&To=%2B12025550143&NumSegments=1&MessageSid=SM0123456789abcdef0123456789abcdef&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B996555123456&ApiVersion=2010-04-01",
        );
        b.bench(|| ch.parse_sms(black_box(&req)).is_ok());
    }

    #[divan::bench]
    fn infobip_sms_json(b: Bencher<'_, '_>) {
        let ch = channel("infobip");
        let req = request(
            Method::POST,
            "application/json",
            None,
            r#"{"results":[{"messageId":"817790313235066447","from":"996555123456","to":"hotline","text":"OK 4821","cleanText":"4821","keyword":"OK","receivedAt":"2026-11-30T04:00:00.000+0000","smsCount":1,"price":{"pricePerMessage":0,"currency":"EUR"},"callbackData":"x"}],"messageCount":1,"pendingMessageCount":0}"#,
        );
        b.bench(|| ch.parse_sms(black_box(&req)).is_ok());
    }

    #[divan::bench]
    fn kannel_sms_query(b: Bencher<'_, '_>) {
        let ch = channel("kannel");
        let req = request(
            Method::GET,
            "text/plain",
            Some(
                "secret=s&from=%2B996555123456&to=21212&text=OK%204821&ts=1796097600&id=0b9a1c2d-3e4f&smsc=smsc1&coding=0&charset=UTF-8",
            ),
            "",
        );
        b.bench(|| ch.parse_sms(black_box(&req)).is_ok());
    }

    #[divan::bench]
    fn configurable_ussd_form(b: Bencher<'_, '_>) {
        let (ch, req) = (channel("ussd"), form(AT_USSD));
        b.bench(|| ch.parse_ussd(black_box(&req)).is_ok());
    }
}

mod privacy {
    use super::*;

    static PRIVACY: LazyLock<Privacy> =
        LazyLock::new(|| Privacy::new(b"bench-key-0123456789abcdef0123456789"));

    fn state() -> Vec<u8> {
        serde_json::to_vec(&CITY.state).expect("state serialises")
    }

    #[divan::bench]
    fn pseudonym() -> impl Sized {
        PRIVACY.pseudonym(black_box("+996555123456"))
    }

    #[divan::bench]
    fn seal_session_state(b: Bencher<'_, '_>) {
        let state = state();
        b.bench(|| PRIVACY.seal(black_box(&state)));
    }

    #[divan::bench]
    fn open_session_state(b: Bencher<'_, '_>) {
        let sealed = PRIVACY.seal(&state());
        b.bench(|| PRIVACY.open(black_box(&sealed)).is_ok());
    }
}

mod text {
    use super::*;

    const OFFER: &str = "{code} {city}: {situation}{abuse}. Где: {location}. Звонить: {callback}. {minutes} мин. Ответ: OK {code} или NO {code}";

    #[divan::bench]
    fn template_render_offer() -> String {
        hotline::template::render(
            black_box(OFFER),
            &[
                ("code", "4821"),
                ("city", "Бишкек"),
                ("situation", "Задержана"),
                ("abuse", ", угрозы"),
                ("location", "Октябрьский РОВД, ул. {code} 5"),
                ("callback", "+996555123456"),
                ("minutes", "3"),
            ],
        )
    }

    #[divan::bench]
    fn measure_cyrillic_screen(b: Bencher<'_, '_>) {
        let reply = CITY.reply.clone();
        b.bench(|| measure(black_box(&reply)));
    }

    #[divan::bench]
    fn phone_parse_international() -> bool {
        PhoneNumber::parse_international(black_box("+996555123456")).is_ok()
    }
}
