//! Every promise kept, by country, over real HTTP: a +380 caller walks the
//! USSD menu and sees only Ukraine's resources (her language first, her
//! country's number), her "other city" goes to Poltava's lawyers, and her
//! "unanswered" SMS gives Ukraine's number; a +996 caller gets Kyrgyz first.
//! Time is a manual clock moved forward.

mod common;

use std::time::{Duration, Instant};

use common::Gateway;
use common::mock::{MockResponse, MockServer};
use hotline::case::CaseData;
use hotline::clock::Clock;

/// 2026-12-01 04:00 UTC: 10:00 in Bishkek, 06:00 in Poltava.
const T0: u64 = 1_796_097_600_000;
const MIN: u64 = 60_000;
const WOMAN_UA: &str = "+380501234567";
const WOMAN_KG: &str = "+996555123456";
const AIDA: &str = "+996555000101";
const OKSANA: &str = "+380500000111";
const LARYSA: &str = "+380500000101";

/// Bishkek and Poltava, one lawyer on call in each all the time, and
/// "other city" routed by the caller's country.
const ROSTER: &str = r#"
[cities.bishkek]
names = { ru = "Бишкек", ky = "Бишкек", uk = "Бішкек", en = "Bishkek" }
time_zone = "Asia/Bishkek"
country = "KG"
coordinator = "aida"
team = ["aida"]
[cities.bishkek.escalation]
levels = [ { kind = "on_call", wait_minutes = 5 } ]
repeats = 0
unanswered_after_minutes = 15

[cities.poltava]
names = { ru = "Полтава", uk = "Полтава", en = "Poltava" }
time_zone = "Europe/Kyiv"
country = "UA"
coordinator = "larysa"
team = ["oksana"]
[cities.poltava.escalation]
levels = [ { kind = "on_call", wait_minutes = 5 } ]
repeats = 0
unanswered_after_minutes = 15

[cities.osh]
names = { en = "Osh" }
route_to = "bishkek"

[cities.other]
names = { ru = "Другой город", ky = "Башка шаар", uk = "Інше місто", en = "Other city" }
route_to = "bishkek"
route_by_country = { KG = "bishkek", UA = "poltava" }

[lawyers.aida]
name = "Айда"
languages = ["ky", "ru"]
cities = ["bishkek"]
phone_env = "P_AIDA"
[lawyers.oksana]
name = "Оксана"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_OKSANA"
[lawyers.larysa]
name = "Лариса"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_LARYSA"

[[rotations]]
city = "bishkek"
start = "2026-03-02 09:00"
shift_hours = 24
lawyers = ["aida"]

[[rotations]]
city = "poltava"
start = "2026-03-02 09:00"
shift_hours = 24
lawyers = ["oksana"]
"#;

const ENV: [(&str, &str); 4] = [
    ("HOTLINE_AT_API_KEY", "k"),
    ("P_AIDA", AIDA),
    ("P_OKSANA", OKSANA),
    ("P_LARYSA", LARYSA),
];

struct World {
    gw: Gateway,
    api: MockServer,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let reply = r#"{"SMSMessageData":{"Message":"Sent to 1/1","Recipients":[{"statusCode":101,"number":"+380","status":"Success","cost":"KES 0.8","messageId":"ATXid_c"}]}}"#;
    let api = MockServer::start(vec![MockResponse::new(201, reply.to_owned())]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("roster.toml"), ROSTER).unwrap();
    let texts = common::root().join("config/lawyer_texts.toml");
    let cfg = common::with_real_channels(&common::default_config())
        .replace(
            "# secret_env = \"HOTLINE_AT_SECRET\"",
            &format!(
                "username = \"hotline\"\napi_key_env = \"HOTLINE_AT_API_KEY\"\nbase_url = \"{}\"",
                api.url
            ),
        )
        .replace(
            "[flows]",
            &format!(
                "[outbox]\npoll_ms = 30\nbackoff_base_ms = 50\nlease_secs = 86400\n\n[dispatch]\nroster = {:?}\ntexts = {:?}\nsms_channel = \"africastalking\"\n\n[flows]",
                dir.path().join("roster.toml").display().to_string(),
                texts.display().to_string()
            ),
        )
;
    let gw = Gateway::start_with(&cfg, &ENV, None, Clock::manual(T0)).await;
    World { gw, api, _dir: dir }
}

impl World {
    fn to(&self, to: &str) -> Vec<String> {
        self.api
            .requests()
            .iter()
            .filter(|r| r.field("to").as_deref() == Some(to))
            .map(|r| r.field("message").unwrap_or_default())
            .collect()
    }

    async fn wait_for(&self, to: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.to(to);
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{to}: expected {n}, got {got:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every screen of a walk through the cumulative USSD texts.
    async fn walk(&self, session: &str, phone: &str, inputs: &[&str]) -> Vec<String> {
        let mut out = vec![self.gw.ussd(session, phone, "").await.body];
        let mut text = String::new();
        for (i, input) in inputs.iter().enumerate() {
            if i > 0 {
                text.push('*');
            }
            text.push_str(input);
            out.push(self.gw.ussd(session, phone, &text).await.body);
        }
        out
    }

    async fn case(&self, code: &str) -> CaseData {
        let deps = &self.gw.app.deps;
        let rec = deps.store.case_by_code(code).await.unwrap().expect("case");
        serde_json::from_slice(&deps.privacy.open(&rec.data).unwrap()).unwrap()
    }
}

fn code_of(end: &str) -> String {
    end.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 4)
        .unwrap_or_else(|| panic!("no code in {end:?}"))
        .to_owned()
}

#[tokio::test]
async fn a_ukrainian_caller_sees_only_ukraines_help_and_other_city_goes_to_poltava() {
    let w = world().await;
    // Українська, Інше місто, help now, a place, this number; one wrong
    // answer on the way, and its re-prompt.
    let screens = w
        .walk(
            "ATUid_ua",
            WOMAN_UA,
            &["1", "7", "2", "1", "Київ, вокзал", "0"],
        )
        .await;
    assert_eq!(
        screens[0],
        "CON Язык/Тил/Мова/Language\n1 Українська\n2 Русский\n3 English"
    );
    assert_eq!(
        screens[2], "CON Не те. Ще раз:\nЯке місто?\n1 Полтава\n2 Інше місто",
        "after a wrong answer the question is shown again"
    );
    for s in &screens {
        assert!(
            !s.contains("+996") && !s.contains("Бішкек") && !s.contains("Ош"),
            "{s}"
        );
    }
    let end = screens.last().unwrap();
    assert!(
        end.starts_with("END Дякуємо!") && end.ends_with("+380 53 200 0111"),
        "{end}"
    );
    let code = code_of(end);
    let case = w.case(&code).await;
    assert_eq!(case.city, "other");
    assert_eq!(case.country.as_deref(), Some("UA"));

    // Poltava's lawyer on call gets it, in Ukrainian; Bishkek's nothing.
    let offer = &w.wait_for(OKSANA, 1).await[0];
    assert!(
        offer.starts_with(&format!(
            "{code} Інше місто, 0 хв тому: затримана, мова укр."
        )),
        "{offer}"
    );
    assert!(
        offer.contains(&format!("Тел: {WOMAN_UA} (її тел.)")),
        "{offer}"
    );
    assert!(offer.contains("Де: Київ, вокзал."), "{offer}");
    assert!(hotline::text::measure(offer).sms_segments() <= 2, "{offer}");

    // Nobody accepts: her "unanswered" SMS gives Ukraine's number.
    w.gw.clock.advance(16 * MIN);
    let to_her = w.wait_for(WOMAN_UA, 1).await;
    let unanswered = to_her.last().unwrap();
    assert!(
        unanswered.starts_with(&format!("Запит {code}:"))
            && unanswered.ends_with("+380 53 200 0111"),
        "{unanswered}"
    );
    for (to, text) in w.api.requests().iter().map(|r| {
        (
            r.field("to").unwrap_or_default(),
            r.field("message").unwrap_or_default(),
        )
    }) {
        assert_ne!(to, AIDA, "Bishkek's lawyer was sent {text:?}");
        if to == WOMAN_UA {
            assert!(!text.contains("+996"), "{text}");
        }
    }
    w.gw.stop().await;
}

#[tokio::test]
async fn a_kyrgyz_caller_gets_kyrgyz_first_and_other_city_goes_to_bishkek() {
    let w = world().await;
    let screens = w
        .walk("ATUid_kg", WOMAN_KG, &["1", "3", "1", "Ош, базар", "0"])
        .await;
    assert!(
        screens[0].starts_with("CON Язык/Тил/Мова/Language\n1 Кыргызча\n2 Русский"),
        "{}",
        screens[0]
    );
    let end = screens.last().unwrap();
    assert!(
        end.starts_with("END Рахмат.") && end.ends_with("+996 312 000 111"),
        "{end}"
    );
    let code = code_of(end);
    let offer = &w.wait_for(AIDA, 1).await[0];
    assert!(
        offer.starts_with(&format!(
            "{code} Башка шаар, 0 мүн мурун: кармалган, кыргызча."
        )),
        "{offer}"
    );
    assert!(w.to(OKSANA).is_empty());
    w.gw.stop().await;
}
