//! Lawyer dispatch end to end over HTTP: a woman completes the USSD flow,
//! the lawyer on call gets the offer by SMS (a mock of Africa's Talking's
//! API), answers through the inbound SMS webhook, and the woman gets her
//! confirmation; declines, silence, nobody on call, and two lawyers at once.
//! Time is a manual clock moved forward, so escalation waits take no time.

mod common;

use std::time::{Duration, Instant};

use common::Gateway;
use common::mock::{MockResponse, MockServer};
use common::redis::{RedisServer, unique_prefix};
use hotline::case::CaseData;
use hotline::clock::Clock;

/// 2026-12-01 10:00 in Bishkek: aida's 24-hour shift; bakyt is next.
const T0: u64 = 1_796_097_600_000;
const MIN: u64 = 60_000;
const AIDA: &str = "+996555000101";
const BAKYT: &str = "+996555000102";
const CHOLPON: &str = "+996555000103";
const NURGUL: &str = "+996555000100";

const ROSTER: &str = include_str!("fixtures/dispatch/roster.toml");

fn at_reply() -> String {
    r#"{"SMSMessageData":{"Message":"Sent to 1/1","Recipients":[{"statusCode":101,"number":"+996","status":"Success","cost":"KES 0.8","messageId":"ATXid_d"}]}}"#.to_owned()
}

struct World {
    gw: Gateway,
    api: MockServer,
    _dir: tempfile::TempDir,
}

fn config(api: &str, dir: &std::path::Path) -> String {
    std::fs::write(dir.join("roster.toml"), ROSTER).unwrap();
    let texts = common::root().join("config/lawyer_texts.toml");
    common::with_real_channels(&common::default_config())
        .replace(
            "# secret_env = \"HOTLINE_AT_SECRET\"",
            &format!("username = \"hotline\"\napi_key_env = \"HOTLINE_AT_API_KEY\"\nbase_url = \"{api}\""),
        )
        .replace(
            "[flows]",
            &format!(
                "[outbox]\npoll_ms = 30\nbackoff_base_ms = 50\n# The tests move a manual clock by minutes at a time: a lease shorter\n# than a jump would expire under a send still in flight.\nlease_secs = 86400\n\n[dispatch]\nroster = {:?}\ntexts = {:?}\nsms_channel = \"africastalking\"\n\n[flows]",
                dir.join("roster.toml").display().to_string(),
                texts.display().to_string()
            ),
        )
}

const ADMIN_TOKEN: &str = "admin-token-dispatch-0123456789";
const ENV: [(&str, &str); 6] = [
    ("HOTLINE_AT_API_KEY", "k"),
    ("HOTLINE_ADMIN_TOKEN", ADMIN_TOKEN),
    ("P_NURGUL", NURGUL),
    ("P_AIDA", AIDA),
    ("P_BAKYT", BAKYT),
    ("P_CHOLPON", CHOLPON),
];

async fn world() -> World {
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&api.url, dir.path());
    let gw = Gateway::start_with(&cfg, &ENV, None, Clock::manual(T0)).await;
    World { gw, api, _dir: dir }
}

impl World {
    /// Messages the mock received for `to`, in order.
    fn to(&self, to: &str) -> Vec<String> {
        self.api
            .requests()
            .iter()
            .filter(|r| r.field("to").as_deref() == Some(to))
            // Africa's Talking's `message`, Kannel's `text`.
            .map(|r| {
                r.field("message")
                    .or_else(|| r.field("text"))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Wait until `to` has received `n` messages.
    async fn wait_for(&self, to: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.to(to);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{to} expected {n} messages, got {got:?}\nall: {:?}",
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn all(&self) -> Vec<(String, String)> {
        self.api
            .requests()
            .iter()
            .map(|r| {
                (
                    r.field("to").unwrap_or_default(),
                    r.field("message").unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Nothing more arrives for `to` for a while.
    async fn quiet(&self, to: &str, n: usize) {
        common::outbox_idle(&self.gw).await;
        assert_eq!(self.to(to).len(), n, "{to}: {:?}", self.to(to));
    }

    /// A woman completes the urgent path; returns her case code.
    async fn request(&self, session: &str, phone: &str) -> String {
        let mut last = String::new();
        for text in [
            "",
            // Русский is second for a +996 caller (after Кыргызча).
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

    /// A lawyer texts the gateway.
    async fn lawyer_says(&self, from: &str, text: &str) {
        let body = common::form(&[
            ("from", from),
            ("to", "21212"),
            ("text", text),
            ("id", &format!("lw{}", rand_id())),
        ]);
        let r = common::post_form(self.gw.public, "/webhooks/africastalking/sms", &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    fn advance(&self, ms: u64) {
        self.gw.clock.advance(ms);
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
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn the_lawyer_on_call_gets_the_offer_accepts_and_the_woman_is_told() {
    let w = world().await;
    let woman = "+996555770001";
    let code = w.request("ATUid_d1", woman).await;
    let asked = Instant::now();
    let offer = &w.wait_for(AIDA, 1).await[0];
    eprintln!(
        "offer reached the aggregator {:?} after the woman's last screen",
        asked.elapsed()
    );
    assert!(
        offer.starts_with(&format!(
            "{code} Bishkek, 0 min ago: detained, Russian. Where: Station 5. Call {woman} (her phone). Reply OK or NO {code}"
        )),
        "{offer}"
    );
    assert!(hotline::text::measure(offer).sms_segments() <= 2);
    assert!(w.to(BAKYT).is_empty(), "only the lawyer on call");

    w.advance(2 * MIN);
    w.lawyer_says(AIDA, &format!("OK {code}")).await;
    let aida = w.wait_for(AIDA, 2).await;
    assert_eq!(
        aida[1],
        format!("Case {code} is yours. Call {woman}. Where: Station 5. Close: DONE {code}")
    );
    let confirm = &w.wait_for(woman, 1).await[0];
    assert_eq!(
        confirm,
        &format!("Ваш запрос {code} принят. Вам скоро позвонят.")
    );
    for word in ["адвокат", "юрист", "полиц", "задерж"] {
        assert!(
            !confirm.to_lowercase().contains(word),
            "discreet: {confirm}"
        );
    }
    // No escalation after acceptance, however long we wait.
    w.advance(60 * MIN);
    w.quiet(BAKYT, 0).await;
    w.quiet(woman, 1).await;
    assert_eq!(
        w.gw.metric(r#"hotline_cases_accepted_total{city="bishkek"}"#)
            .await,
        1.0
    );
    assert_eq!(
        w.gw.metric(r#"hotline_case_time_to_accept_seconds_bucket{city="bishkek",le="180"}"#)
            .await,
        1.0
    );
    let case = w.case(&code).await;
    assert_eq!(case.dispatch.accepted_by.as_deref(), Some("aida"));
    assert_eq!(
        case.dispatch.accepted_at_ms.unwrap() - case.opened_at_ms,
        2 * MIN
    );
    // STATUS in English is all GSM-7: a whole SMS is 160 characters, not
    // the 70 a single non-GSM mark (✓) would leave.
    w.lawyer_says(AIDA, "STATUS").await;
    let status = &w.wait_for(AIDA, 3).await[2];
    assert_eq!(status, &format!("Your cases: {code} ok"));
    assert_eq!(
        hotline::text::measure(status).encoding,
        hotline::text::Encoding::Gsm7
    );
    w.gw.stop().await;
}

#[tokio::test]
async fn a_decline_goes_to_the_next_lawyer_at_once_and_silence_escalates() {
    let w = world().await;
    let code = w.request("ATUid_d2", "+996555770002").await;
    w.wait_for(AIDA, 1).await;
    w.lawyer_says(AIDA, &format!("NO {code}")).await;
    assert_eq!(
        w.wait_for(AIDA, 2).await[1],
        format!("Declined {code}; passing it on.")
    );
    assert!(
        w.wait_for(BAKYT, 1).await[0].starts_with(&code),
        "next on call, at once"
    );
    // Bakyt says nothing: after his 3 minutes the team (cholpon; aida and
    // bakyt were asked already), then after 5 more the coordinator.
    w.advance(3 * MIN + 1000);
    assert!(w.wait_for(CHOLPON, 1).await[0].starts_with(&code));
    w.advance(5 * MIN + 1000);
    assert!(
        w.wait_for(NURGUL, 1).await[0].starts_with(&code),
        "coordinator, in Russian"
    );
    assert!(
        w.to(NURGUL)[0].contains("Тел:") && w.to(NURGUL)[0].contains("8 мин назад"),
        "{:?}",
        w.to(NURGUL)
    );
    // The chain is exhausted after the coordinator's wait: she is alerted.
    w.advance(5 * MIN + 1000);
    let nurgul = w.wait_for(NURGUL, 2).await;
    assert!(
        nurgul[1].starts_with(&format!("ВНИМАНИЕ: {code}")),
        "{nurgul:?}"
    );
    assert!(
        w.gw.metric(r#"hotline_escalations_total{city="bishkek",level="team"}"#)
            .await
            >= 1.0
    );
    // At 15 minutes the woman is given the fallback number.
    w.advance(2 * MIN);
    let woman = w.wait_for("+996555770002", 1).await;
    assert_eq!(
        woman[0],
        format!("По запросу {code} пока не смогли связаться. Позвоните: +996 312 000 111")
    );
    assert_eq!(
        w.gw.metric(r#"hotline_cases_unanswered_total{city="bishkek"}"#)
            .await,
        1.0
    );
    w.gw.stop().await;
}

/// `STATUS` lists what waits for her answer first, oldest first, then what
/// she holds, at most twelve codes and "+N" for the rest: one or two SMS,
/// never a screenful, however many cases reach her (everyone else off call).
#[tokio::test]
async fn status_lists_waiting_cases_first_and_at_most_twelve() {
    let w = world().await;
    for phone in [AIDA, BAKYT, CHOLPON] {
        w.lawyer_says(phone, "OFF").await;
        w.wait_for(phone, 1).await;
    }
    let mut codes = Vec::new();
    for i in 0..15 {
        codes.push(
            w.request(&format!("ATUid_st{i}"), &format!("+9965557701{i:02}"))
                .await,
        );
        w.advance(1000);
    }
    w.wait_for(NURGUL, 15).await;
    for code in &codes[..2] {
        w.lawyer_says(NURGUL, &format!("OK {code}")).await;
    }
    w.wait_for(NURGUL, 17).await;
    w.lawyer_says(NURGUL, "STATUS").await;
    let listed: Vec<String> = codes[2..14].iter().map(|c| format!("{c} ?")).collect();
    assert_eq!(
        w.wait_for(NURGUL, 18).await[17],
        format!("Ваши дела: {}, +3", listed.join(", "))
    );
}

#[tokio::test]
async fn with_everyone_off_call_the_coordinator_gets_it_and_commands_answer() {
    let w = world().await;
    for phone in [AIDA, BAKYT] {
        w.lawyer_says(phone, "OFF").await;
        assert_eq!(
            w.wait_for(phone, 1).await[0],
            "You are off call. Send ON to come back."
        );
    }
    // Each lawyer is answered in her first language.
    w.lawyer_says(CHOLPON, "выкл").await;
    assert_eq!(
        w.wait_for(CHOLPON, 1).await[0],
        "Сиз нөөмөттөн чыктыңыз. ON — кайтуу."
    );
    let code = w.request("ATUid_d3", "+996555770003").await;
    assert!(
        w.wait_for(NURGUL, 1).await[0].starts_with(&code),
        "nobody available: the coordinator at once"
    );
    w.quiet(AIDA, 1).await;
    // STATUS, bare OK with one case, HELP, unknown.
    w.lawyer_says(NURGUL, "STATUS").await;
    assert_eq!(
        w.wait_for(NURGUL, 2).await[1],
        format!("Ваши дела: {code} ?")
    );
    w.lawyer_says(NURGUL, "да").await;
    assert!(w.wait_for(NURGUL, 3).await[2].starts_with(&format!("Дело {code} ваше.")));
    w.lawyer_says(NURGUL, "what?").await;
    assert_eq!(
        w.wait_for(NURGUL, 4).await[3],
        "OK 1234 принять, NO 1234 отказ, DONE 1234 ИТОГ закрыть (итог: АДМ ЖАЛ УГОЛ СТРАЖА МЕД НАПР ОСВ НЕДОЗ), ON/OFF, STATUS"
    );
    w.lawyer_says(AIDA, "OK 9999").await;
    assert_eq!(w.wait_for(AIDA, 2).await[1], "No case 9999.");
    w.lawyer_says(AIDA, "ON").await;
    assert_eq!(w.wait_for(AIDA, 3).await[2], "You are on call.");
    // A lawyer's SMS never reaches the women's flow.
    w.lawyer_says(BAKYT, "HELP").await;
    assert_eq!(
        w.wait_for(BAKYT, 2).await[1],
        "OK 1234 accept, NO 1234 decline, DONE 1234 CODE close (codes: ADM COMPL CRIM CUST MED REF REL NOREACH), ON/OFF, STATUS"
    );
    assert_eq!(
        w.gw.metric(r#"hotline_sessions_started_total{flow="legal_help"}"#)
            .await,
        1.0
    );
    w.gw.stop().await;
}

#[tokio::test]
async fn two_lawyers_answering_at_once_exactly_one_wins() {
    let w = world().await;
    let woman = "+996555770004";
    let code = w.request("ATUid_d4", woman).await;
    w.wait_for(AIDA, 1).await;
    w.advance(3 * MIN + 1000);
    w.wait_for(BAKYT, 1).await;
    let ok = format!("OK {code}");
    tokio::join!(w.lawyer_says(AIDA, &ok), w.lawyer_says(BAKYT, &ok));
    let aida = w.wait_for(AIDA, 2).await;
    let bakyt = w.wait_for(BAKYT, 2).await;
    let won = |m: &[String]| {
        m.iter()
            .any(|t| t.starts_with(&format!("Case {code} is yours")))
    };
    assert!(
        won(&aida) ^ won(&bakyt),
        "exactly one wins: {aida:?} {bakyt:?}"
    );
    let loser = if won(&aida) { &bakyt } else { &aida };
    assert!(
        loser
            .iter()
            .any(|t| t.contains("was already taken by") || t.contains("was taken by")),
        "{loser:?}"
    );
    w.wait_for(woman, 1).await;
    w.quiet(woman, 1).await;
    w.gw.stop().await;
}

/// The aggregator delivers one `OK` several times at once (its retries
/// overlapping): one acceptance, one message to her — and one count. An
/// audit saw eight copies of one command counted up to five times
/// (`update_case` answered "done" for every copy that met the mark).
#[tokio::test]
async fn copies_of_one_command_at_once_are_counted_once() {
    // On Redis: the copies' round trips interleave there.
    let redis = RedisServer::shared_or_start();
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, env) = on_redis(&api.url, dir.path(), &redis, "copies");
    let gw = Gateway::start_with(&cfg, &env, None, Clock::manual(T0)).await;
    let w = World { gw, api, _dir: dir };
    let woman = "+996555770005";
    let code = w.request("ATUid_d5", woman).await;
    w.wait_for(AIDA, 1).await;
    let body = common::form(&[
        ("from", AIDA),
        ("to", "21212"),
        ("text", &format!("OK {code}")),
        ("id", "lw-copies-1"),
    ]);
    let post = || common::post_form(w.gw.public, "/webhooks/africastalking/sms", &body);
    let answers = futures_util::future::join_all((0..8).map(|_| post())).await;
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    w.wait_for(woman, 1).await;
    w.quiet(woman, 1).await;
    assert_eq!(
        w.gw.metric(r#"hotline_cases_accepted_total{city="bishkek"}"#)
            .await,
        1.0
    );
    assert_eq!(
        w.gw.metric(r#"hotline_case_time_to_accept_seconds_count{city="bishkek"}"#)
            .await,
        1.0
    );
    w.gw.stop().await;
}

#[tokio::test]
async fn junk_sent_as_a_lawyer_gets_ten_replies_then_one_per_three_minutes_and_her_ok_still_works()
{
    let w = world().await;
    let woman = "+996555770009";
    let code = w.request("ATUid_d9", woman).await;
    assert!(w.wait_for(AIDA, 1).await[0].starts_with(&code));
    // Someone sends as her number: codes that open nothing, and junk.
    for i in 0..30 {
        let text = if i % 2 == 0 {
            format!("OK {}", 9000 + i)
        } else {
            "hello?".to_owned()
        };
        w.lawyer_says(AIDA, &text).await;
    }
    // The offer and ten replies; the other twenty are withheld.
    w.quiet(AIDA, 11).await;
    assert_eq!(
        w.gw.metric("hotline_lawyer_replies_withheld_total").await,
        20.0
    );
    // Her own OK in the middle of it still takes the case, the woman is
    // told, and so is she: the case's details are not a reply to a command
    // but the case's own message, never withheld.
    w.lawyer_says(AIDA, &format!("OK {code}")).await;
    assert_eq!(
        w.wait_for(woman, 1).await[0],
        format!("Ваш запрос {code} принят. Вам скоро позвонят.")
    );
    assert!(w.wait_for(AIDA, 12).await[11].starts_with(&format!("Case {code} is yours.")));
    assert_eq!(
        w.case(&code).await.dispatch.accepted_by.as_deref(),
        Some("aida")
    );
    // Three minutes later, one more reply; another lawyer was never limited.
    w.advance(3 * MIN);
    w.lawyer_says(AIDA, "STATUS").await;
    assert_eq!(
        w.wait_for(AIDA, 13).await[12],
        format!("Your cases: {code} ok")
    );
    w.lawyer_says(AIDA, "STATUS").await;
    w.lawyer_says(BAKYT, "STATUS").await;
    w.wait_for(BAKYT, 1).await;
    w.quiet(AIDA, 13).await;
    w.gw.stop().await;
}

#[tokio::test]
async fn a_closed_case_is_erased_after_retention_and_its_statistics_remain() {
    let w = world().await;
    let woman = "+996555770005";
    let code = w.request("ATUid_d5", woman).await;
    w.wait_for(AIDA, 1).await;
    w.lawyer_says(AIDA, &format!("OK {code}")).await;
    w.wait_for(AIDA, 2).await;
    w.lawyer_says(AIDA, &format!("DONE {code}")).await;
    assert_eq!(
        w.wait_for(AIDA, 3).await[2],
        format!("Case {code} closed: no outcome given (see HELP). Thank you.")
    );
    let closed = w.case(&code).await;
    assert_eq!(
        closed.dispatch.status,
        hotline::dispatch::lifecycle::Status::Closed
    );
    assert_eq!(
        closed.vars["location"], "Station 5",
        "kept until the retention period ends"
    );
    w.advance(72 * 60 * MIN + 1000);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = w.case(&code).await;
        if c.dispatch.erased {
            assert_eq!(c.caller, None);
            assert_eq!(c.callback(), None);
            assert!(!c.vars.contains_key("location"));
            assert_eq!(c.city, "bishkek");
            assert_eq!(c.vars["situation"], "detained_self");
            assert_eq!(
                c.dispatch.accepted_at_ms.map(|a| a - c.opened_at_ms),
                Some(0)
            );
            break;
        }
        assert!(Instant::now() < deadline, "erased after 72 h");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats =
        hotline::dispatch::report::collect(w.gw.app.deps.store.as_ref(), &w.gw.app.deps.privacy)
            .await
            .unwrap();
    assert_eq!(stats.stats.len(), 1);
    assert_eq!(stats.stats[0].city, "bishkek");
    assert_eq!(stats.unreadable, 0);
    // A case sealed under another HOTLINE_PII_KEY is in no table, and
    // counted (`hotline report` warns of it).
    let other = hotline::privacy::Privacy::new(b"another-key-0123456789-0123456789-0123");
    let deps = &w.gw.app.deps;
    deps.store
        .record_case(
            3,
            hotline::store::NewCase {
                id: "c_sealed_elsewhere".into(),
                code_candidates: hotline::store::code_candidates(3, "elsewhere", 8),
                data: other.seal(b"{}"),
                jobs: Vec::new(),
            },
            deps.clock.now_ms(),
        )
        .await
        .unwrap();
    let stats = hotline::dispatch::report::collect(deps.store.as_ref(), &deps.privacy)
        .await
        .unwrap();
    assert_eq!((stats.stats.len(), stats.unreadable), (1, 1));
    w.gw.stop().await;
}

/// The config of a world on `redis` (a key prefix of its own for `test`,
/// the spool in `dir`) and the environment naming that Redis.
fn on_redis<'a>(
    api: &str,
    dir: &std::path::Path,
    redis: &'a RedisServer,
    test: &str,
) -> (String, Vec<(&'a str, &'a str)>) {
    let prefix = unique_prefix(test);
    let cfg = config(api, dir).replace(
        "[store]\n",
        &format!(
            "[store]\nkey_prefix = {prefix:?}\nspool_dir = {:?}\n",
            dir.join("spool").display().to_string()
        ),
    );
    let mut env = ENV.to_vec();
    env.push(("HOTLINE_REDIS_URL", &redis.url));
    (cfg, env)
}

#[tokio::test]
async fn two_instances_on_one_redis_fire_each_escalation_once() {
    let redis = RedisServer::shared_or_start();
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, env) = on_redis(&api.url, dir.path(), &redis, "dispatch2");
    // One clock for both instances, moved together.
    let clock = Clock::manual(T0);
    let a = Gateway::start_with(&cfg, &env, None, clock.clone()).await;
    let b = Gateway::start_with(&cfg, &env, None, clock.clone()).await;
    let w = World {
        gw: a,
        api,
        _dir: dir,
    };
    let code = w.request("ATUid_r1", "+996555770006").await;
    w.wait_for(AIDA, 1).await;
    for (phone, after) in [(BAKYT, 3), (CHOLPON, 5), (NURGUL, 5)] {
        clock.advance(after * MIN + 1000);
        assert!(w.wait_for(phone, 1).await[0].starts_with(&code));
    }
    clock.advance(5 * MIN + 1000);
    w.wait_for(NURGUL, 2).await;
    clock.advance(10 * MIN);
    w.wait_for("+996555770006", 1).await;
    // Both instances were polling the whole time; each message went once.
    w.quiet(AIDA, 1).await;
    for (phone, n) in [(BAKYT, 1), (CHOLPON, 1), (NURGUL, 2), ("+996555770006", 1)] {
        assert_eq!(w.to(phone).len(), n, "{phone}: {:?}", w.to(phone));
    }
    b.stop().await;
    w.gw.stop().await;
}

/// Rotating `HOTLINE_PII_KEY` with a case open (ops/RUNBOOK.md, "Rotating
/// HOTLINE_PII_KEY"): every instance restarts with the new key and the old
/// one as `HOTLINE_PII_KEY_PREVIOUS`. The case, its escalation timer and a
/// lawyer's answer, all sealed under the old key, still work. Without the
/// previous key the timer's payload cannot be opened (dropped: the case
/// never climbs) and the lawyer's `OK` gets no answer.
#[tokio::test]
async fn after_a_key_rotation_the_previous_key_keeps_an_open_case_going() {
    const OLD: &str = "old-key-0123456789-0123456789-0123456789";
    const NEW: &str = "new-key-0123456789-0123456789-0123456789";
    let redis = RedisServer::shared_or_start();
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, env) = on_redis(&api.url, dir.path(), &redis, "rotate");
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut e = env.clone();
        e.extend_from_slice(extra);
        e
    };
    let clock = Clock::manual(T0);
    let old_env = with(&[("HOTLINE_PII_KEY", OLD)]);
    let gw = Gateway::start_with(&cfg, &old_env, None, clock.clone()).await;
    let w = World { gw, api, _dir: dir };
    let woman = "+996555770020";
    let code = w.request("ATUid_rot1", woman).await;
    w.wait_for(AIDA, 1).await;

    let World { gw, api, _dir } = w;
    gw.stop().await;
    // The new key alone: the case is there but cannot be read, and says so
    // (gauge, status page) instead of looking like no case at all.
    let token = "admin-token-0123456789";
    let alone = with(&[("HOTLINE_PII_KEY", NEW), ("HOTLINE_ADMIN_TOKEN", token)]);
    let gw = Gateway::start_with(&cfg, &alone, None, clock.clone()).await;
    let d = gw.app.dispatcher().expect("dispatch on");
    hotline::dispatch::board::refresh_gauges(&d).await;
    assert_eq!(gw.metric("hotline_cases_unreadable").await, 1.0);
    let bearer = format!("Bearer {token}");
    let page = common::request(gw.admin, "GET", "/", &[("Authorization", &bearer)], b"").await;
    assert!(
        page.body.contains("1 case(s) in the store cannot be read"),
        "{}",
        page.body
    );
    gw.stop().await;

    let new_env = with(&[("HOTLINE_PII_KEY", NEW), ("HOTLINE_PII_KEY_PREVIOUS", OLD)]);
    let gw = Gateway::start_with(&cfg, &new_env, None, clock.clone()).await;
    let d = gw.app.dispatcher().expect("dispatch on");
    hotline::dispatch::board::refresh_gauges(&d).await;
    assert_eq!(gw.metric("hotline_cases_unreadable").await, 0.0);
    let w = World { gw, api, _dir };
    // The escalation timer, sealed under the old key, fires.
    clock.advance(3 * MIN + 1000);
    let offer = w.wait_for(BAKYT, 1).await;
    assert!(offer[0].starts_with(&code), "{offer:?}");
    // Aida's OK reads the case: her details, and the woman's confirmation.
    w.lawyer_says(AIDA, &format!("OK {code}")).await;
    w.wait_for(AIDA, 2).await;
    w.wait_for(woman, 1).await;
    assert_eq!(
        w.case(&code).await.dispatch.accepted_by.as_deref(),
        Some("aida")
    );
    assert!(
        w.gw.metric("hotline_sealed_opened_with_previous_key_total")
            .await
            > 0.0
    );
    w.gw.stop().await;
}

/// The aggregator refuses the account (HTTP 401): the channel's fault.
fn refused() -> MockResponse {
    MockResponse::new(401, r#"{"error":"The supplied authentication is invalid"}"#)
}

/// Offers to `to` the mock accepted (requests it answered 401 excluded).
fn accepted_after(api: &MockServer, from: usize, to: &str) -> Vec<String> {
    api.requests()
        .iter()
        .skip(from)
        .filter(|r| r.field("to").as_deref() == Some(to))
        .map(|r| r.field("message").unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_channel_outage_declines_nobody_climbs_no_level_early_and_every_offer_goes_out_after() {
    let w = world().await;
    w.api.set_script(vec![refused()]);
    let woman = "+996555770010";
    let code = w.request("ATUid_out1", woman).await;
    // The offer to the lawyer on call fails because of the account…
    w.wait_for(AIDA, 1).await;
    let up = r#"hotline_channel_up{channel="africastalking"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.gw.metric(up).await != 0.0 {
        assert!(Instant::now() < deadline, "the channel is marked down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The status page lists the case as offered to Aida, and says beside
    // it that the offer may not have reached her.
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let status_page = || async {
        common::request(w.gw.admin, "GET", "/", &[("Authorization", &bearer)], b"")
            .await
            .body
    };
    let page = status_page().await;
    assert!(
        page.contains("Channel africastalking is not sending (")
            && page.contains("an offer below may not have reached the lawyer's phone yet"),
        "{page}"
    );
    // …and keeps failing for two minutes: that is not her decline.
    for _ in 0..4 {
        w.advance(30_000);
        let c = w.case(&code).await;
        let offered: Vec<&str> = c
            .dispatch
            .offers
            .iter()
            .map(|o| o.lawyer.as_str())
            .collect();
        assert_eq!(offered, ["aida"], "no level climbed early");
        assert!(c.dispatch.offers.iter().all(|o| !o.declined));
    }
    // Ten minutes of outage: the case climbs only at its own pace.
    for (lawyer, after) in [("bakyt", 3 * MIN), ("cholpon", 5 * MIN)] {
        w.advance(after);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = w.case(&code).await;
            if c.dispatch.offers.iter().any(|o| o.lawyer == lawyer) {
                assert!(c.dispatch.offers.iter().all(|o| !o.declined));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{lawyer} is offered at her level's time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(
        w.gw.metric(r#"hotline_outbox_failed_total{channel="africastalking",purpose="offer"}"#)
            .await,
        0.0,
        "no offer given up"
    );
    // The account is fixed: every queued offer goes out.
    let from = w.api.requests().len();
    w.api.set_script(vec![MockResponse::new(201, at_reply())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    for lawyer in [AIDA, BAKYT, CHOLPON] {
        while accepted_after(&w.api, from, lawyer).is_empty() {
            // Held messages are retried at most 30 s apart (of the clock).
            w.advance(5_000);
            assert!(
                Instant::now() < deadline,
                "{lawyer}'s offer goes out after recovery; since: {:?}",
                w.all().iter().skip(from).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(accepted_after(&w.api, from, lawyer)[0].starts_with(&code));
    }
    while w.gw.metric(up).await != 1.0 {
        assert!(Instant::now() < deadline, "the channel is marked up again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    common::outbox_idle(&w.gw).await;
    let page = status_page().await;
    assert!(!page.contains("is not sending"), "{page}");
    w.gw.stop().await;
}

#[tokio::test]
async fn offers_go_through_the_fallback_channel_while_the_first_cannot_send() {
    let api = MockServer::start(vec![refused()]).await;
    let second = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&api.url, dir.path()).replacen(
        "sms_channel = \"africastalking\"\n\n[flows]",
        "sms_channel = \"africastalking\"\nfallback_sms_channel = \"at2\"\n\n[flows]",
        1,
    ) + &format!(
        "\n[[channels]]\nname = \"at2\"\nkind = \"africastalking\"\nusername = \"hotline\"\napi_key_env = \"HOTLINE_AT_API_KEY\"\nbase_url = \"{}\"\n",
        second.url
    );
    let gw = Gateway::start_with(&cfg, &ENV, None, Clock::manual(T0)).await;
    let w = World { gw, api, _dir: dir };
    let code = w.request("ATUid_fb1", "+996555770011").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let via_second = accepted_after(&second, 0, AIDA);
        if let Some(offer) = via_second.first() {
            assert!(offer.starts_with(&code), "{offer}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the offer went through the fallback channel"
        );
        // The first attempt failed on the first channel; its retry is due
        // within seconds of the manual clock.
        w.advance(2_000);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = w.case(&code).await;
    assert!(c.dispatch.offers.iter().all(|o| !o.declined));
    assert_eq!(c.dispatch.offers.len(), 1, "still the lawyer on call only");
    w.gw.stop().await;
}

/// A case nobody accepts in time is counted unanswered — and so pages
/// (HotlineCaseUnanswered) — even when no message to her could be queued:
/// here a flow with no `messages.unanswered`.
#[tokio::test]
async fn a_case_nobody_accepts_is_unanswered_even_with_no_message_for_her() {
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let flow = std::fs::read_to_string(common::root().join("flows/legal_help.toml")).unwrap();
    let without: Vec<&str> = flow
        .lines()
        .filter(|l| !l.starts_with("unanswered = "))
        .collect();
    assert_eq!(without.len() + 1, flow.lines().count(), "one line removed");
    std::fs::write(flows.join("legal_help.toml"), without.join("\n")).unwrap();
    let cfg = config(&api.url, dir.path()).replace(
        "dir = \"../flows\"",
        &format!("dir = {:?}", flows.display().to_string()),
    );
    let gw = Gateway::start_with(&cfg, &ENV, None, Clock::manual(T0)).await;
    let w = World { gw, api, _dir: dir };
    let woman = "+996555770009";
    w.request("ATUid_nu", woman).await;
    w.wait_for(AIDA, 1).await;
    let series = r#"hotline_cases_unanswered_total{city="bishkek"}"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.gw.metric(series).await < 1.0 {
        assert!(Instant::now() < deadline, "counted unanswered");
        w.advance(MIN);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(w.gw.metric(series).await, 1.0);
    assert!(
        w.to(woman)
            .iter()
            .all(|m| !m.contains("не смогли связаться")),
        "no fallback message: the flow has none: {:?}",
        w.to(woman)
    );
    w.gw.stop().await;
}

/// Africa's Talking's answer to a send, naming the message `id`.
fn at_reply_id(id: &str) -> String {
    at_reply().replace("ATXid_d", id)
}

/// The state the gateway recorded for the message Africa's Talking named
/// `provider_id` (`None`: no record yet).
async fn recorded_state(gw: &Gateway, provider_id: &str) -> Option<String> {
    use hotline::store::keys;
    let deps = &gw.app.deps;
    let now = deps.clock.now_ms();
    let lookup = keys::provider_id("africastalking", deps.privacy.pseudonym(provider_id));
    let ours = String::from_utf8(deps.store.get(None, &lookup, now).await.unwrap()?).unwrap();
    let bucket = hotline::outbox::bucket_of(&ours).unwrap();
    let sealed = deps
        .store
        .get(Some(bucket), &keys::sent_record(&ours), now)
        .await
        .unwrap()?;
    let record: hotline::outbox::SentRecord = deps.privacy.open_json(&sealed).unwrap();
    Some(record.state.as_str().to_owned())
}

/// Africa's Talking (and Kannel) can report a message within milliseconds,
/// before answering its send, so before the gateway has recorded it. Here
/// the aggregator reports the offer to the lawyer on call `Failed` and only
/// then answers the send: the report waits for the record and counts as her
/// decline at once (no time passes on the clock); the next offer's
/// `Success`, also first, marks that message delivered. On Redis.
#[tokio::test]
async fn a_report_that_overtakes_its_send_is_applied_once_the_send_is_recorded() {
    let redis = RedisServer::shared_or_start();
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, env) = on_redis(&api.url, dir.path(), &redis, "overtake");
    let gw = Gateway::start_with(&cfg, &env, None, Clock::manual(T0)).await;
    let status = "/webhooks/africastalking/status";
    let failed = common::form(&[
        ("id", "ATXid_early1"),
        ("status", "Failed"),
        ("failureReason", "DeliveryFailure"),
    ]);
    let delivered = common::form(&[("id", "ATXid_early2"), ("status", "Success")]);
    api.set_script(vec![
        MockResponse::new(201, at_reply_id("ATXid_early1"))
            .report_first(gw.public, status, &failed),
        MockResponse::new(201, at_reply_id("ATXid_early2"))
            .report_first(gw.public, status, &delivered),
        MockResponse::new(201, at_reply()),
    ]);
    let w = World { gw, api, _dir: dir };
    let code = w.request("ATUid_early", "+996555770012").await;
    assert!(w.wait_for(AIDA, 1).await[0].starts_with(&code));
    // The clock stands still: Bakyt is offered the case only because
    // Aida's offer counted as declined.
    assert!(
        w.wait_for(BAKYT, 1).await[0].starts_with(&code),
        "the failed offer moved the case on at once"
    );
    // The mock posts Bakyt's report before it answers his send; its
    // answer may come a moment after his offer was seen.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.api.reports_answered().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.api.reports_answered(), [200, 200]);
    let case = w.case(&code).await;
    let aida = case.dispatch.offers.iter().find(|o| o.lawyer == "aida");
    assert!(
        aida.is_some_and(|o| o.declined && o.undelivered),
        "counted as declined, shown as undelivered: {:?}",
        case.dispatch.offers
    );
    assert_eq!(
        recorded_state(&w.gw, "ATXid_early1").await.as_deref(),
        Some("failed")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorded_state(&w.gw, "ATXid_early2").await.as_deref() != Some("delivered") {
        assert!(
            Instant::now() < deadline,
            "the second offer is recorded delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        w.gw.metric(r#"hotline_delivery_reports_unmatched_total{channel="africastalking"}"#)
            .await,
        0.0
    );
    assert_eq!(w.to(CHOLPON).len(), 0, "nobody else was offered it");
    w.gw.stop().await;
}

/// A world whose offers go out through a Kannel channel (sendsms answered
/// by the mock, so each request's `dlr-url` can be read).
async fn kannel_world() -> World {
    let api = MockServer::start(vec![MockResponse::new(202, "0: Accepted for delivery")]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&api.url, dir.path())
        .replace(
            "sms_channel = \"africastalking\"",
            "sms_channel = \"kannel\"",
        )
        .replace(
            "sendsms_url = \"http://127.0.0.1:13013/cgi-bin/sendsms\"",
            &format!("sendsms_url = \"{}/cgi-bin/sendsms\"", api.url),
        );
    let block = cfg.find("name = \"kannel\"").expect("a kannel channel");
    let cfg = format!(
        "{}{}",
        &cfg[..block],
        cfg[block..].replacen("enabled = false\n", "", 1)
    );
    let mut env = ENV.to_vec();
    env.push(("HOTLINE_KANNEL_SECRET", "ks"));
    env.push(("HOTLINE_KANNEL_PASSWORD", "kp"));
    let gw = Gateway::start_with(&cfg, &env, None, Clock::manual(T0)).await;
    World { gw, api, _dir: dir }
}

/// Kannel really sends a report after "delivered" (`d=8`, or in the audit a
/// `d=16` reject): the offer Aida's phone got stays delivered, is no
/// decline, and the case is offered to nobody else; the same `d=1` again
/// is counted as a duplicate, not a second delivery.
#[tokio::test]
async fn a_reject_report_after_delivered_is_no_decline() {
    let w = kannel_world().await;
    let code = w.request("ATUid_dlrorder", "+996555770013").await;
    let offer = w.wait_for(AIDA, 1).await;
    assert!(offer[0].starts_with(&code), "{offer:?}");
    common::outbox_idle(&w.gw).await;
    let sent = w.api.requests();
    let dlr = sent
        .iter()
        .find(|r| r.field("to").as_deref() == Some(AIDA))
        .and_then(|r| r.field("dlr-url"))
        .expect("the offer asks for reports");
    let (_, query) = dlr.split_once('?').expect("a query");
    assert!(query.starts_with("secret=ks&m="), "{query}");
    let path = |d: &str| format!("/webhooks/kannel/status?{}", query.replace("%d", d));
    for d in ["1", "16", "8", "1"] {
        let r = common::request(w.gw.public, "GET", &path(d), &[], b"").await;
        assert_eq!(r.status, 200, "d={d}: {}", r.body);
    }
    let case = w.case(&code).await;
    let aida = case.dispatch.offers.iter().find(|o| o.lawyer == "aida");
    assert!(
        aida.is_some_and(|o| !o.declined),
        "{:?}",
        case.dispatch.offers
    );
    w.quiet(BAKYT, 0).await;
    let m = |state: &str| {
        format!(r#"hotline_delivery_reports_total{{channel="kannel",state="{state}"}}"#)
    };
    assert_eq!(w.gw.metric(&m("delivered")).await, 1.0);
    assert_eq!(w.gw.metric(&m("failed")).await, 0.0);
    assert_eq!(w.gw.metric(&m("sent")).await, 0.0);
    assert_eq!(w.gw.metric(&m("duplicate")).await, 3.0);
    assert_eq!(
        w.gw.metric(r#"hotline_delivery_reports_unmatched_total{channel="kannel"}"#)
            .await,
        0.0
    );
    w.gw.stop().await;
}
