//! Case outcomes end to end (issue 9): women ask for help over USSD, lawyers
//! accept and close their cases by SMS with outcome codes in Russian,
//! Kyrgyz, Ukrainian and Latin letters, one outcome is corrected, a wrong
//! code changes nothing, retention erases the personal data, and the real
//! `hotline report` binary, reading the same Redis, prints the outcome
//! tables with small cells suppressed and no number, place or name.
//!
//! Real Redis, the real server over HTTP, a mock of Africa's Talking's API
//! for the SMS; time is a manual clock moved forward.

mod common;

use std::time::{Duration, Instant};

use common::Gateway;
use common::mock::{MockResponse, MockServer};
use common::redis::{RedisServer, unique_prefix};
use hotline::case::CaseData;
use hotline::clock::Clock;
use hotline::dispatch::lifecycle::Status;

/// 2026-12-01 10:00 in Bishkek: aida is on call.
const T0: u64 = 1_796_097_600_000;
const MIN: u64 = 60_000;
const AIDA: &str = "+996555000101";
const NURGUL: &str = "+996555000100";
const CHOLPON: &str = "+996555000103";
const OKSANA: &str = "+380671112233";
const PII_KEY: &str = "test-key-0123456789-0123456789-0123456789";
const PLACE: &str = "Ulitsa Lenina 5";

const ROSTER: &str = include_str!("fixtures/dispatch/roster.toml");

fn at_reply() -> String {
    r#"{"SMSMessageData":{"Message":"Sent to 1/1","Recipients":[{"statusCode":101,"number":"+996","status":"Success","cost":"KES 0.8","messageId":"ATXid_o"}]}}"#.to_owned()
}

/// The dispatch fixture's roster with a Ukrainian-speaking lawyer added.
fn roster() -> String {
    let r = ROSTER.replace(
        "team = [\"aida\", \"bakyt\", \"cholpon\"]",
        "team = [\"aida\", \"bakyt\", \"cholpon\", \"oksana\"]",
    );
    assert_ne!(r, ROSTER, "the fixture's team line changed");
    r + "\n[lawyers.oksana]\nname = \"Oksana\"\nlanguages = [\"uk\"]\ncities = [\"bishkek\"]\nphone_env = \"P_OKSANA\"\n"
}

fn config(api: &str, dir: &std::path::Path, prefix: &str) -> String {
    std::fs::write(dir.join("roster.toml"), roster()).unwrap();
    let root = common::root();
    let texts = root.join("config/lawyer_texts.toml");
    let cfg = common::with_real_channels(&common::default_config())
        .replace(
            "# secret_env = \"HOTLINE_AT_SECRET\"",
            &format!("username = \"hotline\"\napi_key_env = \"HOTLINE_AT_API_KEY\"\nbase_url = \"{api}\""),
        )
        .replace(
            "[flows]",
            &format!(
                "[outbox]\npoll_ms = 30\nbackoff_base_ms = 50\nlease_secs = 86400\n\n[dispatch]\nroster = {:?}\ntexts = {:?}\nsms_channel = \"africastalking\"\n\n[flows]",
                dir.join("roster.toml").display().to_string(),
                texts.display().to_string()
            ),
        )
        .replace(
            "dir = \"../flows\"",
            &format!("dir = {:?}", root.join("flows").display().to_string()),
        )
        .replace("per_number_burst = 15", "per_number_burst = 200")
        .replace(
            "[store]\n",
            &format!(
                "[store]\nkey_prefix = {prefix:?}\nspool_dir = {:?}\n",
                dir.join("spool").display().to_string()
            ),
        );
    assert!(
        cfg.contains("per_number_burst = 200")
            && cfg.contains(&root.join("flows").display().to_string())
    );
    cfg
}

struct World {
    gw: Gateway,
    api: MockServer,
    redis: RedisServer,
    dir: tempfile::TempDir,
    cfg: String,
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

    /// Wait until `to` has been sent exactly `text`.
    async fn told(&self, to: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.to(to).iter().any(|m| m == text) {
            assert!(
                Instant::now() < deadline,
                "{to} never got {text:?}; got {:?}",
                self.to(to)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until `to` has been sent one of `texts`.
    async fn told_any(&self, to: &str, texts: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.to(to).iter().any(|m| texts.contains(m)) {
            assert!(Instant::now() < deadline, "{to} got none of {texts:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A woman (+996, Russian menus) completes a path in `city` (menu
    /// option 1 Bishkek, 2 Osh): `abuse` 1–5 takes the report path, `None`
    /// the urgent one. Returns her case code.
    async fn request(&self, n: u32, city: u32, abuse: Option<u32>) -> String {
        let phone = woman(n);
        let steps: Vec<String> = match abuse {
            Some(a) => vec![
                "3".into(),
                format!("3*{a}"),
                format!("3*{a}*{PLACE}"),
                format!("3*{a}*{PLACE}*0"),
            ],
            None => vec!["1".into(), format!("1*{PLACE}"), format!("1*{PLACE}*0")],
        };
        let mut last = String::new();
        for text in ["", "2", &format!("2*{city}")]
            .into_iter()
            .map(str::to_owned)
            .chain(steps.iter().map(|s| format!("2*{city}*{s}")))
        {
            last = self
                .gw
                .ussd(&format!("ATUid_o{n}"), &phone, &text)
                .await
                .body;
        }
        let code: String = last
            .split("Ваш код ")
            .nth(1)
            .unwrap_or_else(|| panic!("no code in {last}"))
            .chars()
            .take(4)
            .collect();
        assert!(code.chars().all(|c| c.is_ascii_digit()), "{last}");
        code
    }

    async fn says(&self, from: &str, text: &str) {
        let body = common::form(&[
            ("from", from),
            ("to", "21212"),
            ("text", text),
            ("id", &format!("o{}", rand_id())),
        ]);
        let r = common::post_form(self.gw.public, "/webhooks/africastalking/sms", &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    async fn case(&self, code: &str) -> CaseData {
        let rec = self
            .gw
            .app
            .deps
            .store
            .case_by_code(code)
            .await
            .unwrap()
            .expect("case");
        serde_json::from_slice(&self.gw.app.deps.privacy.open(&rec.data).unwrap()).unwrap()
    }

    /// Run the real `hotline report` on the same Redis.
    fn report(&self, args: &[&str]) -> (i32, String, String) {
        let path = self.dir.path().join("hotline.toml");
        std::fs::write(&path, &self.cfg).unwrap();
        let out = std::process::Command::new(common::binary())
            .arg("report")
            .arg("--config")
            .arg(&path)
            .args(args)
            .env_remove("HOTLINE_CONFIG")
            .envs(ENV)
            .env("HOTLINE_PII_KEY", PII_KEY)
            .env("HOTLINE_REDIS_URL", &self.redis.url)
            .output()
            .expect("binary runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

const ENV: [(&str, &str); 6] = [
    ("HOTLINE_AT_API_KEY", "k"),
    ("P_NURGUL", NURGUL),
    ("P_AIDA", AIDA),
    ("P_BAKYT", "+996555000102"),
    ("P_CHOLPON", CHOLPON),
    ("P_OKSANA", OKSANA),
];

fn woman(n: u32) -> String {
    format!("+9965557710{n:02}")
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn outcomes_in_every_language_are_corrected_erased_around_and_reported_safely() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("outcomes");
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&api.url, dir.path(), &prefix);
    let mut env = ENV.to_vec();
    env.push(("HOTLINE_REDIS_URL", &redis.url));
    let gw = Gateway::start_with(&cfg, &env, None, Clock::manual(T0)).await;
    let w = World {
        gw,
        api,
        redis,
        dir,
        cfg,
    };

    // Five beatings reported in Bishkek: aida (English) takes each and
    // closes it in Latin letters.
    let mut codes = Vec::new();
    for n in 1..=5 {
        let code = w.request(n, 1, Some(1)).await;
        w.says(AIDA, &format!("OK {code}")).await;
        w.says(AIDA, &format!("done {code} rel")).await;
        w.told(
            AIDA,
            &format!("Case {code} closed: released without charge. Thank you."),
        )
        .await;
        codes.push(code);
    }
    // Bishkek, urgent: the coordinator (Russian) takes it herself and
    // closes it with two outcomes, comma-separated.
    let c6 = w.request(6, 1, None).await;
    w.says(NURGUL, &format!("ОК {c6}")).await;
    w.says(NURGUL, &format!("готово {c6} жал, мед")).await;
    w.told(
        NURGUL,
        &format!("Дело {c6} закрыто: жалоба подана, побои зафиксированы врачом. Спасибо."),
    )
    .await;
    // Osh, sexual demands reported: assigned to cholpon, who closes in Kyrgyz.
    let c7 = w.request(7, 2, Some(2)).await;
    w.says(NURGUL, &format!("ASSIGN {c7} cholpon")).await;
    w.told(NURGUL, &format!("Дело {c7} предложено: Cholpon."))
        .await;
    w.says(CHOLPON, &format!("ооба {c7}")).await;
    w.says(CHOLPON, &format!("бүттү {c7} камак")).await;
    w.told(CHOLPON, &format!("{c7} иши жабылды: камакта. Рахмат."))
        .await;
    // Osh, urgent: oksana closes in Ukrainian, then corrects the outcome.
    let c8 = w.request(8, 2, None).await;
    w.says(NURGUL, &format!("ASSIGN {c8} oksana")).await;
    w.says(OKSANA, &format!("так {c8}")).await;
    w.says(OKSANA, &format!("закрито {c8} звіл")).await;
    w.told(
        OKSANA,
        &format!("Справу {c8} закрито: звільнена без обвинувачень. Дякуємо."),
    )
    .await;
    assert_eq!(w.case(&c8).await.dispatch.outcomes, ids(&["released"]));
    w.says(OKSANA, &format!("DONE {c8} скарг")).await;
    w.told(
        OKSANA,
        &format!("Справу {c8} закрито: скаргу подано. Дякуємо."),
    )
    .await;
    // Someone who never had it cannot change it.
    w.says(AIDA, &format!("DONE {c8} rel")).await;
    w.told(AIDA, &format!("Case {c8} is already closed.")).await;
    let amended = w.case(&c8).await;
    assert_eq!(amended.dispatch.outcomes, ids(&["complaint"]));
    assert_eq!(amended.dispatch.closed_by.as_deref(), Some("oksana"));
    // Osh, urgent: closed with no outcome.
    let c9 = w.request(9, 2, None).await;
    w.says(AIDA, &format!("OK {c9}")).await;
    w.says(AIDA, &format!("DONE {c9}")).await;
    w.told(
        AIDA,
        &format!("Case {c9} closed: no outcome given (see HELP). Thank you."),
    )
    .await;
    // Osh, beating: a name instead of a code is refused and changes
    // nothing; then a valid code.
    let c10 = w.request(10, 2, Some(1)).await;
    w.says(AIDA, &format!("OK {c10}")).await;
    w.says(AIDA, &format!("DONE {c10} Ivanov")).await;
    w.told(
        AIDA,
        "Outcome code not understood; nothing changed. Codes: ADM COMPL CRIM CUST MED REF REL NOREACH",
    )
    .await;
    let untouched = w.case(&c10).await;
    assert_eq!(untouched.dispatch.status, Status::Accepted);
    assert!(untouched.dispatch.outcomes.is_empty());
    w.says(AIDA, &format!("DONE {c10} ADM")).await;
    w.told(
        AIDA,
        &format!("Case {c10} closed: administrative charge. Thank you."),
    )
    .await;
    w.says(AIDA, "HELP").await;
    w.told(AIDA, "OK 1234 accept, NO 1234 decline, DONE 1234 CODE close (codes: ADM COMPL CRIM CUST MED REF REL NOREACH), ON/OFF, STATUS").await;

    // The counter: each code when first recorded, not_given once.
    for (series, n) in [
        (r#"city="bishkek",outcome="released""#, 5.0),
        (r#"city="bishkek",outcome="complaint""#, 1.0),
        (r#"city="osh",outcome="complaint""#, 1.0),
        (r#"city="osh",outcome="released""#, 1.0),
        (r#"city="osh",outcome="not_given""#, 1.0),
        (r#"city="osh",outcome="admin_charge""#, 1.0),
    ] {
        let got =
            w.gw.metric(&format!("hotline_cases_closed_total{{{series}}}"))
                .await;
        assert_eq!(got, n, "{series}");
    }
    let metrics = common::request(w.gw.admin, "GET", "/metrics", &[], b"").await;
    assert!(
        metrics
            .body
            .contains(r#"hotline_cases_closed_total{city="poltava",outcome="referred"} 0"#),
        "every configured outcome is pre-registered"
    );
    assert!(
        metrics
            .body
            .contains(r#"hotline_lawyer_commands_total{command="done",outcome="bad_outcome"} 1"#)
    );

    // Retention: 72 hours after the last close every case is erased; its
    // outcome, city, situation and abuse stay.
    let mut all = codes.clone();
    all.extend([c6, c7, c8, c9, c10.clone()]);
    let mut recs = Vec::new();
    for code in &all {
        let rec =
            w.gw.app
                .deps
                .store
                .case_by_code(code)
                .await
                .unwrap()
                .unwrap();
        recs.push((hotline::store::code_bucket(code).unwrap(), rec.id));
    }
    w.gw.clock.advance(72 * 60 * MIN + 1000);
    let deadline = Instant::now() + Duration::from_secs(15);
    for (bucket, id) in &recs {
        loop {
            let rec =
                w.gw.app
                    .deps
                    .store
                    .case(*bucket, id)
                    .await
                    .unwrap()
                    .unwrap();
            let c: CaseData =
                serde_json::from_slice(&w.gw.app.deps.privacy.open(&rec.data).unwrap()).unwrap();
            if c.dispatch.erased {
                assert_eq!(c.caller, None);
                assert!(!c.vars.contains_key("location"));
                assert_eq!(c.dispatch.status, Status::Closed);
                let json = serde_json::to_string(&c).unwrap();
                for secret in [PLACE, "5557710", "Ivanov"] {
                    assert!(!json.contains(secret), "{json}");
                }
                break;
            }
            assert!(Instant::now() < deadline, "erased after 72 h");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // After erasure the outcome is final: her code no longer finds the
    // case (or, while the code is still reserved, it is "already closed").
    w.says(AIDA, &format!("DONE {c10} REL")).await;
    w.told_any(
        AIDA,
        &[
            format!("No case {c10}."),
            format!("Case {c10} is already closed."),
        ],
    )
    .await;

    // The report, by the real binary on the same Redis.
    let (status, md, err) = w.report(&[]);
    assert_eq!(status, 0, "{err}");
    eprintln!("{md}");
    assert!(md.contains("# Outcomes"), "{md}");
    assert!(
        md.contains("Closed cases: 10. No outcome given: <5."),
        "{md}"
    );
    assert!(md.contains("## 2026-Q4"), "{md}");
    assert!(md.contains("| outcome | bishkek | osh |"), "{md}");
    assert!(md.contains("| released | 5 | 0 |"), "{md}");
    assert!(md.contains("| complaint | <5 | <5 |"), "{md}");
    assert!(md.contains("| not_given | 0 | <5 |"), "{md}");
    // Beatings: admin_charge 1 hides, so released 5 in the same column
    // hides too (complementary suppression).
    assert!(md.contains("| outcome | beating | sex |"), "{md}");
    assert!(md.contains("| released | <5 | 0 |"), "{md}");
    assert!(
        md.contains("| within_15_min | <5 | <5 | <5 | <5 | 5 | <5 |"),
        "{md}"
    );
    for (label, n) in md_numbers(&md) {
        assert!(n == 0 || n >= 5, "{label}: {n} printed");
    }
    let (status, csv, err) = w.report(&["--format", "csv"]);
    assert_eq!(status, 0, "{err}");
    assert!(
        csv.contains("2026-Q4,outcome_by_city,released,bishkek,5\n"),
        "{csv}"
    );
    assert!(csv.contains("all,summary,not_given,all,<5\n"), "{csv}");
    let (status, osh, err) = w.report(&["--city", "osh"]);
    assert_eq!(status, 0, "{err}");
    assert!(osh.starts_with("# Hotline statistics: osh only\n"), "{osh}");
    assert!(osh.contains("| outcome | osh |"), "{osh}");
    assert!(!osh.contains("bishkek"), "{osh}");
    let (status, _, err) = w.report(&["--city", "atlantis"]);
    assert_eq!(status, 64, "{err}");
    assert!(err.contains("--city must be one of"), "{err}");
    // No number, place or name anywhere.
    for out in [&md, &csv, &osh] {
        for secret in [
            PLACE, "Lenina", "5557710", "555000", "Aida", "Nurgul", "Cholpon", "Oksana", "aida",
            "nurgul", "cholpon", "oksana", "Ivanov", "ivanov",
        ] {
            assert!(!out.contains(secret), "{secret} in\n{out}");
        }
    }
    w.gw.stop().await;
}

/// Every number in a Markdown table cell, with its row, for the
/// small-count check (times and percentages are in the first tables only,
/// which print no table of fewer than five cases here).
fn md_numbers(md: &str) -> Vec<(String, u64)> {
    let outcomes = md.split("# Outcomes").nth(1).unwrap_or_default();
    outcomes
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("|---"))
        .flat_map(|l| {
            l.split('|')
                .skip(2)
                .filter_map(|c| c.trim().parse::<u64>().ok())
                .map(move |n| (l.to_owned(), n))
                .collect::<Vec<_>>()
        })
        .collect()
}
