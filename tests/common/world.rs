//! A dispatch world over HTTP: a running gateway with the small Bishkek
//! roster (`tests/fixtures/dispatch/roster.toml`), a mock Africa's Talking
//! API that records every SMS sent, a manual clock at [`T0`], women
//! completing the USSD flow and lawyers texting the SMS webhook.

use std::time::{Duration, Instant};

use super::Gateway;
use super::mock::{MockResponse, MockServer};
use hotline::case::CaseData;
use hotline::clock::Clock;

/// 2026-12-01 10:00 in Bishkek: aida's 24-hour shift; bakyt is next.
pub const T0: u64 = 1_796_097_600_000;
pub const MIN: u64 = 60_000;
pub const AIDA: &str = "+996555000101";
pub const BAKYT: &str = "+996555000102";
pub const CHOLPON: &str = "+996555000103";
/// The coordinator.
pub const NURGUL: &str = "+996555000100";
/// Poltava's lawyer and coordinator, in rosters that have Poltava as a
/// city of its own ([`POLTAVA`]).
pub const HALYNA: &str = "+380500000112";
pub const LARYSA: &str = "+380500000101";

pub const ROSTER: &str = include_str!("../fixtures/dispatch/roster.toml");

/// Poltava as a city of its own (coordinator larysa, halyna on call), in
/// place of the fixture's route to Bishkek; numbers from `P_LARYSA` and
/// `P_HALYNA` (see [`POLTAVA_ENV`]).
pub const POLTAVA: &str = r#"
[cities.poltava]
names = { ru = "Полтава", uk = "Полтава", en = "Poltava" }
time_zone = "Europe/Kyiv"
country = "UA"
coordinator = "larysa"
team = ["halyna"]
[cities.poltava.escalation]
levels = [{ kind = "on_call", wait_minutes = 3 }, { kind = "coordinator", wait_minutes = 5 }]
unanswered_after_minutes = 15
[lawyers.larysa]
name = "Larysa"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_LARYSA"
[lawyers.halyna]
name = "Halyna"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_HALYNA"
[[rotations]]
city = "poltava"
start = "2026-03-02 08:00"
shift_hours = 24
lawyers = ["halyna"]
"#;

/// The numbers of [`POLTAVA`]'s lawyers.
pub const POLTAVA_ENV: [(&str, &str); 2] = [("P_HALYNA", HALYNA), ("P_LARYSA", LARYSA)];

/// The fixture roster with Poltava as a city of its own.
pub fn roster_with_poltava() -> String {
    let route = "[cities.poltava]\nnames = { en = \"Poltava\" }\nroute_to = \"bishkek\"\n";
    assert!(ROSTER.contains(route), "the fixture routes Poltava");
    format!("{}{POLTAVA}", ROSTER.replace(route, ""))
}

fn at_reply() -> String {
    r#"{"SMSMessageData":{"Message":"Sent to 1/1","Recipients":[{"statusCode":101,"number":"+996","status":"Success","cost":"KES 0.8","messageId":"ATXid_d"}]}}"#.to_owned()
}

pub struct World {
    pub gw: Gateway,
    pub api: MockServer,
    pub dir: tempfile::TempDir,
    /// The Redis of a world on Redis ([`world_on_redis`]), kept running.
    pub redis: Option<super::redis::RedisServer>,
}

/// The config for a world whose aggregator API is at `api`.
pub fn config(api: &str, dir: &std::path::Path) -> String {
    config_with_roster(api, dir, ROSTER)
}

/// [`config`] with another roster.
pub fn config_with_roster(api: &str, dir: &std::path::Path, roster: &str) -> String {
    std::fs::write(dir.join("roster.toml"), roster).unwrap();
    let texts = super::root().join("config/lawyer_texts.toml");
    super::with_real_channels(&super::default_config())
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
}

pub const ENV: [(&str, &str); 5] = [
    ("HOTLINE_AT_API_KEY", "k"),
    ("P_NURGUL", NURGUL),
    ("P_AIDA", AIDA),
    ("P_BAKYT", BAKYT),
    ("P_CHOLPON", CHOLPON),
];

/// A world at [`T0`].
pub async fn world() -> World {
    world_with(&[]).await
}

/// A world at [`T0`] with more environment (`HOTLINE_PII_KEY`, …).
pub async fn world_with(extra: &[(&str, &str)]) -> World {
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&api.url, dir.path());
    std::fs::write(dir.path().join("hotline.toml"), &cfg).unwrap();
    let env: Vec<(&str, &str)> = ENV.iter().chain(extra).copied().collect();
    let gw = Gateway::start_with(&cfg, &env, None, Clock::manual(T0)).await;
    World {
        gw,
        api,
        dir,
        redis: None,
    }
}

/// A world at [`T0`] on a real Redis (its own `redis-server`, or
/// `HOTLINE_TEST_REDIS_URL`, under a key prefix of its own).
pub async fn world_on_redis(test: &str) -> World {
    world_on_redis_with(test, ROSTER, &[]).await
}

/// [`world_on_redis`] with another roster and more environment.
pub async fn world_on_redis_with(test: &str, roster: &str, extra: &[(&str, &str)]) -> World {
    let redis = super::redis::RedisServer::shared_or_start();
    let prefix = super::redis::unique_prefix(test);
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_roster(&api.url, dir.path(), roster).replace(
        "[store]\n",
        &format!(
            "[store]\nkey_prefix = {prefix:?}\nspool_dir = {:?}\n",
            dir.path().join("spool").display().to_string()
        ),
    );
    assert!(cfg.contains(&prefix), "the config has a [store] table");
    std::fs::write(dir.path().join("hotline.toml"), &cfg).unwrap();
    let mut env: Vec<(&str, &str)> = ENV.iter().chain(extra).copied().collect();
    env.push(("HOTLINE_REDIS_URL", &redis.url));
    let gw = Gateway::start_with(&cfg, &env, None, Clock::manual(T0)).await;
    World {
        gw,
        api,
        dir,
        redis: Some(redis),
    }
}

impl World {
    /// Messages the mock received for `to`, in order.
    pub fn to(&self, to: &str) -> Vec<String> {
        self.api
            .requests()
            .iter()
            .filter(|r| r.field("to").as_deref() == Some(to))
            .map(|r| r.field("message").unwrap_or_default())
            .collect()
    }

    /// Wait (bounded) until `to` has received `n` messages.
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.to(to);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{to} expected {n} messages, got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `n`th message (from 1) `to` received.
    pub async fn nth(&self, to: &str, n: usize) -> String {
        self.wait_for(to, n).await[n - 1].clone()
    }

    /// A woman completes the urgent path; returns her case code.
    pub async fn request(&self, session: &str, phone: &str) -> String {
        let mut last = String::new();
        // Русский is second for a +996 caller (after Кыргызча).
        for text in [
            "",
            "2",
            "2*1",
            "2*1*1",
            "2*1*1*Station 5",
            "2*1*1*Station 5*0",
        ] {
            last = self.gw.ussd(session, phone, text).await.body;
        }
        assert!(last.starts_with("END Спасибо. Ваш код "), "{last}");
        last.trim_start_matches("END Спасибо. Ваш код ")
            .chars()
            .take(4)
            .collect()
    }

    /// A lawyer texts the gateway (each message with a fresh id).
    pub async fn lawyer_says(&self, from: &str, text: &str) {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = super::form(&[
            ("from", from),
            ("to", "21212"),
            ("text", text),
            ("id", &format!("lw{n}")),
        ]);
        let r = super::post_form(self.gw.public, "/webhooks/africastalking/sms", &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    pub fn advance(&self, ms: u64) {
        self.gw.clock.advance(ms);
    }

    pub async fn case(&self, code: &str) -> CaseData {
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

    /// `hotline_lawyer_commands_total` for a command and outcome.
    pub async fn commands(&self, command: &str, outcome: &str) -> f64 {
        self.gw
            .metric(&format!(
                r#"hotline_lawyer_commands_total{{command="{command}",outcome="{outcome}"}}"#
            ))
            .await
    }
}
