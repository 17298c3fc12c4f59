//! Live reload: `SIGHUP` to the real binary and `POST /reload` re-read
//! flows, roster, phones and lawyers' texts; a broken set is rejected and
//! the old one keeps serving; sessions finish on the flow version they
//! began on; open cases escalate along the new roster.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hotline::clock::Clock;
use hotline::reload::{
    LOG_APPLIED, LOG_NOT_RELOADED, LOG_REJECTED, LOG_RELOADED, LOG_RESTART_KEYS,
};

struct Running {
    child: Child,
    public: SocketAddr,
    admin: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The binary serving the config file at `config`.
// The child is killed and waited for by `Drop`.
#[allow(clippy::zombie_processes)]
fn start(config: &Path, extra_env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(common::binary());
    cmd.arg("serve")
        .current_dir(common::root())
        .env("HOTLINE_CONFIG", config)
        .env("HOTLINE_LISTEN", "127.0.0.1:0")
        .env("HOTLINE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("HOTLINE_LOG_FORMAT", "json")
        .env(
            "HOTLINE_PII_KEY",
            "reload-test-key-0123456789abcdef0123456789",
        )
        .env_remove("HOTLINE_REDIS_URL")
        .env_remove("HOTLINE_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + common::TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no 'hotline listening' line; saw: {seen:#?}"));
        seen.push(line.clone());
        if line.contains("hotline listening") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            return Running {
                child,
                public: v["public"].as_str().unwrap().parse().unwrap(),
                admin: v["admin"].as_str().unwrap().parse().unwrap(),
                lines: rx,
            };
        }
    }
}

impl Running {
    fn hangup(&self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(ok.success());
    }

    /// Log lines until one contains `needle` (bounded); returns them all.
    fn log_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + common::TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {needle:?} in the log; saw: {seen:#?}"));
            seen.push(line.clone());
            if line.contains(needle) {
                return seen;
            }
        }
    }

    async fn metric(&self, series: &str) -> f64 {
        let r = common::request(self.admin, "GET", "/metrics", &[], b"").await;
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    async fn ussd(&self, session: &str, phone: &str, text: &str) -> String {
        ussd(self.public, session, phone, text).await
    }
}

async fn ussd(public: SocketAddr, session: &str, phone: &str, text: &str) -> String {
    let body = common::form(&[
        ("sessionId", session),
        ("serviceCode", "*384#"),
        ("phoneNumber", phone),
        ("text", text),
    ]);
    let r = common::post_form(public, "/webhooks/africastalking/ussd", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Walk the README's path (English, Bishkek, help now, a place, this
/// number) and return the case code.
async fn open_case(public: SocketAddr, session: &str, phone: &str) -> String {
    let mut end = String::new();
    for text in [
        "",
        "4",
        "4*1",
        "4*1*1",
        "4*1*1*Station 5",
        "4*1*1*Station 5*0",
    ] {
        end = ussd(public, session, phone, text).await;
    }
    assert!(end.starts_with("END Thank you. Your code is "), "{end}");
    end.trim_start_matches("END Thank you. Your code is ")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// The console's messages once `pred` holds (bounded).
async fn console_until(admin: SocketAddr, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let r = common::request(admin, "GET", "/console/messages", &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.body);
        if pred(&r.body) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "console never showed it: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The console line offering case `code`.
fn offer_line(console: &str, code: &str) -> String {
    console
        .lines()
        .find(|l| l.contains(&format!("OK or NO {code}")))
        .unwrap_or_else(|| panic!("no offer of {code}: {console}"))
        .to_owned()
}

const AIGUL: &str = "+447700900101";
const BERMET: &str = "+447700900102";
const KANYKEI: &str = "+447700900100";

#[tokio::test]
async fn sighup_swaps_the_roster_and_a_broken_flow_is_rejected_while_the_old_set_serves() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::copy_default_setup(dir.path());
    let gw = start(&config, &[]);
    assert_eq!(gw.metric("hotline_config_generation").await, 1.0);

    // Before: Bishkek's rotation alternates Aigul and Bermet.
    let first = open_case(gw.public, "reload-1", "+996555100001").await;
    let console = console_until(gw.admin, |b| b.contains(&format!("OK or NO {first}"))).await;
    let line = offer_line(&console, &first);
    assert!(line.contains(AIGUL) || line.contains(BERMET), "{line}");

    // The roster now puts Kanykei on call in Bishkek, around the clock.
    let roster = dir.path().join("config/demo-roster.toml");
    common::edit(
        &roster,
        "city = \"bishkek\"\nstart = \"2026-01-01 09:00\"\nshift_hours = 24\nlawyers = [\"demo-bermet\"]",
        "city = \"bishkek\"\nstart = \"2026-01-01 09:00\"\nshift_hours = 24\nlawyers = [\"demo-kanykei\"]",
    );
    gw.hangup();
    gw.log_until("new flows, roster and texts in force");
    assert_eq!(gw.metric("hotline_config_generation").await, 2.0);
    assert_eq!(
        gw.metric(r#"hotline_config_reload_total{result="ok"}"#)
            .await,
        1.0
    );
    assert!(
        gw.metric("hotline_config_last_reload_timestamp_seconds")
            .await
            > 1.7e9
    );
    let second = open_case(gw.public, "reload-2", "+996555100002").await;
    let console = console_until(gw.admin, |b| b.contains(&format!("OK or NO {second}"))).await;
    let line = offer_line(&console, &second);
    assert!(line.contains(KANYKEI), "the new on-call lawyer: {line}");

    // A broken flow file: rejected, the old set still serves.
    let flow = dir.path().join("flows/legal_help.toml");
    common::edit(&flow, "start = \"language\"", "start = \"nowhere\"");
    gw.hangup();
    let log = gw.log_until("reload rejected");
    let log = log.join("\n");
    assert!(
        log.contains("legal_help.toml"),
        "the problem names the file: {log}"
    );
    assert_eq!(
        gw.metric(r#"hotline_config_reload_total{result="rejected"}"#)
            .await,
        1.0
    );
    assert_eq!(gw.metric("hotline_config_generation").await, 2.0);
    let third = open_case(gw.public, "reload-3", "+996555100003").await;
    let console = console_until(gw.admin, |b| b.contains(&format!("OK or NO {third}"))).await;
    assert!(offer_line(&console, &third).contains(KANYKEI));
    let status = common::request(gw.admin, "GET", "/", &[], b"").await;
    assert!(status.body.contains("generation"), "{}", status.body);
}

#[tokio::test]
async fn a_session_finishes_on_the_flow_version_it_began_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::copy_default_setup(dir.path());
    let gw = start(&config, &[]);
    let old_caller = "+996555200001";
    let new_caller = "+996555200002";
    let first = gw.ussd("old", old_caller, "").await;
    assert!(first.starts_with("CON "), "{first}");

    let flow = dir.path().join("flows/legal_help.toml");
    common::edit(&flow, "en = \"Which city?\"", "en = \"Your town?\"");
    gw.hangup();
    gw.log_until("new flows, roster and texts in force");

    // She began before the change: the old screens, to the end.
    let next = gw.ussd("old", old_caller, "4").await;
    assert!(next.contains("Which city?"), "{next}");
    let mut end = String::new();
    for text in ["4*1", "4*1*1", "4*1*1*Station 5", "4*1*1*Station 5*0"] {
        end = gw.ussd("old", old_caller, text).await;
    }
    assert!(end.starts_with("END Thank you. Your code is "), "{end}");

    // A session begun after it sees the new one.
    gw.ussd("new", new_caller, "").await;
    let next = gw.ussd("new", new_caller, "4").await;
    assert!(next.contains("Your town?"), "{next}");
}

/// The shipped default made a production configuration (a channel with
/// sending credentials), at `dir`.
fn production_setup(dir: &Path) -> std::path::PathBuf {
    let config = common::copy_default_setup(dir);
    let text = common::with_real_channels(&common::default_config()).replace(
        "# secret_env = \"HOTLINE_AT_SECRET\"",
        "username = \"hotline\"\napi_key_env = \"HOTLINE_AT_API_KEY\"",
    );
    assert!(text.contains("HOTLINE_AT_API_KEY"));
    std::fs::write(&config, text).unwrap();
    config
}

#[tokio::test]
async fn post_reload_needs_the_token_in_production_and_names_keys_that_need_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = production_setup(dir.path());
    let token = "reload-token-0123456789abcdef";
    let gw = start(
        &config,
        &[("HOTLINE_AT_API_KEY", "k"), ("HOTLINE_ADMIN_TOKEN", token)],
    );
    let bearer = format!("Bearer {token}");
    for headers in [vec![], vec![("Authorization", "Bearer wrong")]] {
        let r = common::request(gw.admin, "POST", "/reload", &headers, b"").await;
        assert_eq!(r.status, 401, "{}", r.body);
        // The header is what is wrong; the token is never echoed.
        assert!(
            r.body
                .starts_with("not authorized: the Authorization: Bearer <token> header"),
            "{}",
            r.body
        );
        assert!(!r.body.contains(token), "{}", r.body);
    }
    assert_eq!(gw.metric("hotline_config_generation").await, 1.0);

    let ok = [("Authorization", bearer.as_str())];
    let r = common::request(gw.admin, "POST", "/reload", &ok, b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("reloaded generation=2"), "{}", r.body);
    let log = gw.log_until(LOG_APPLIED);
    assert!(
        !log.iter().any(|l| l.contains(LOG_RESTART_KEYS)),
        "nothing changed in the config file: {log:#?}"
    );

    // A changed listener limit cannot be applied live: named, not applied.
    common::edit(&config, "per_ip_burst = 400", "per_ip_burst = 500");
    let r = common::request(gw.admin, "POST", "/reload", &ok, b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("restart needed for: server.per_ip_burst"),
        "{}",
        r.body
    );
    let log = gw.log_until(LOG_APPLIED);
    let warning = restart_warning(&log);
    assert_eq!(
        warning["message"],
        format!("{LOG_RESTART_KEYS} {LOG_RELOADED}"),
        "{warning}"
    );
    assert_eq!(warning["keys"], "server.per_ip_burst", "{warning}");

    // A broken flow: 422 with the problem; the generation stays. The
    // changed key is still named, but nothing is said to be reloaded.
    let flow = dir.path().join("flows/legal_help.toml");
    common::edit(&flow, "start = \"language\"", "start = \"nowhere\"");
    let r = common::request(gw.admin, "POST", "/reload", &ok, b"").await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.starts_with("rejected generation=3"), "{}", r.body);
    assert!(r.body.contains("legal_help.toml"), "{}", r.body);
    assert!(
        r.body.contains("restart needed for: server.per_ip_burst"),
        "{}",
        r.body
    );
    assert_eq!(gw.metric("hotline_config_generation").await, 3.0);
    let log = gw.log_until(LOG_REJECTED);
    let warning = restart_warning(&log);
    assert_eq!(
        warning["message"],
        format!("{LOG_RESTART_KEYS} {LOG_NOT_RELOADED}"),
        "{warning}"
    );
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert!(
        !log.iter().any(|l| l.contains(LOG_RELOADED)),
        "a rejected reload is never logged as reloaded: {log:#?}"
    );
}

/// The one restart warning among `log`'s JSON lines.
fn restart_warning(log: &[String]) -> serde_json::Value {
    let found: Vec<serde_json::Value> = log
        .iter()
        .filter(|l| l.contains(LOG_RESTART_KEYS))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 1, "one restart warning: {log:#?}");
    found.into_iter().next().unwrap()
}

#[tokio::test]
async fn in_production_without_a_token_reload_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = production_setup(dir.path());
    let gw = start(&config, &[("HOTLINE_AT_API_KEY", "k")]);
    // A wrong method is 405, as on every other route (it was 404).
    for (method, path) in [("GET", "/reload"), ("GET", "/test-sms")] {
        let r = common::request(gw.admin, method, path, &[], b"").await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
    }
    let r = common::request(gw.admin, "POST", "/reload", &[], b"").await;
    assert_eq!(r.status, 403, "{}", r.body);
    // The answer says what is missing: the token on the server.
    assert!(
        r.body
            .starts_with("not authorized: HOTLINE_ADMIN_TOKEN is not set"),
        "{}",
        r.body
    );
    assert_eq!(gw.metric("hotline_config_generation").await, 1.0);
}

#[tokio::test]
async fn an_open_case_escalates_along_the_new_roster_after_its_lawyer_left() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::copy_default_setup(dir.path());
    let clock = Clock::manual(Clock::System.now_ms());
    let gw = common::Gateway::start_file(&config, &[], clock.clone()).await;
    let code = open_case(gw.public, "left-1", "+996555300001").await;
    let console = console_until(gw.admin, |b| b.contains(&format!("OK or NO {code}"))).await;
    let line = offer_line(&console, &code);
    let (gone, gone_phone, stays) = if line.contains(AIGUL) {
        ("demo-aigul", AIGUL, "demo-bermet")
    } else {
        assert!(line.contains(BERMET), "{line}");
        ("demo-bermet", BERMET, "demo-aigul")
    };

    // The lawyer offered the case leaves the roster while it waits, and
    // Kanykei joins Bishkek's team.
    let roster = dir.path().join("config/demo-roster.toml");
    let mut text = std::fs::read_to_string(&roster).unwrap();
    text = text
        .replace(&format!("\"{gone}\", "), "")
        .replace(&format!(", \"{gone}\""), "")
        // A rotation of hers alone is handed to the lawyer who stays.
        .replace(
            &format!("lawyers = [\"{gone}\"]"),
            &format!("lawyers = [\"{stays}\"]"),
        );
    let block = text.find(&format!("[lawyers.{gone}]")).unwrap();
    let block_end = block + text[block..].find("\n\n").unwrap() + 2;
    text.replace_range(block..block_end, "");
    let team = format!("team = [\"{stays}\"]");
    assert!(text.contains(&team), "{text}");
    text = text.replacen(&team, &format!("team = [\"{stays}\", \"demo-kanykei\"]"), 1);
    std::fs::write(&roster, text).unwrap();
    let phones = dir.path().join("config/demo-roster.phones.toml");
    let text = std::fs::read_to_string(&phones).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with(gone)).collect();
    std::fs::write(&phones, kept.join("\n")).unwrap();
    let vars: std::collections::BTreeMap<&str, &str> = [(
        "HOTLINE_PII_KEY",
        "test-key-0123456789-0123456789-0123456789",
    )]
    .into();
    let report = gw.app.reload(&vars);
    assert!(report.applied, "{}", report.render());
    assert_eq!(report.generation, 2);

    // Her late OK now comes from a number the roster no longer knows: it
    // is no lawyer's command (the case stays unaccepted), and nothing
    // breaks.
    let form = common::form(&[("from", gone_phone), ("text", &format!("OK {code}"))]);
    let r = common::post_form(gw.admin, "/console/sms", &form).await;
    assert_eq!(r.status, 303, "{}", r.body);
    common::outbox_idle(&gw).await;
    let before = console_until(gw.admin, |_| true).await;
    assert!(
        !before.contains("to +996555300001"),
        "not accepted: {before}"
    );
    let offers_to_gone = |b: &str| {
        b.lines()
            .filter(|l| l.contains(gone_phone) && l.contains(&format!("OK or NO {code}")))
            .count()
    };
    assert_eq!(offers_to_gone(&before), 1);

    // Past the on-call level's wait the case escalates to the team as it
    // is now: Kanykei is offered it, the lawyer who left never again.
    clock.advance(3 * 60 * 1000);
    let after = console_until(gw.admin, |b| {
        b.lines()
            .any(|l| l.contains(KANYKEI) && l.contains(&format!("OK or NO {code}")))
    })
    .await;
    assert_eq!(offers_to_gone(&after), 1, "{after}");
    assert_eq!(
        gw.metric(r#"hotline_escalations_total{city="bishkek",level="team"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_case_for_a_city_a_reload_removed_pages_at_once_and_she_is_given_the_fallback_number() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::copy_default_setup(dir.path());
    let clock = Clock::manual(Clock::System.now_ms());
    let gw = common::Gateway::start_file(&config, &[], clock.clone()).await;
    let (session, phone) = ("gone-osh", "+996555400001");
    // She chooses Osh…
    for text in ["", "4"] {
        ussd(gw.public, session, phone, text).await;
    }
    let next = ussd(gw.public, session, phone, "4*2").await;
    assert!(next.starts_with("CON "), "{next}");
    assert!(!next.contains("Which city?"), "Osh was taken: {next}");

    // …and before she finishes, the operator takes Osh out of the flow and
    // the roster (a reload her session does not follow: it finishes on the
    // flow version it began on).
    let flow = dir.path().join("flows/legal_help.toml");
    common::edit(
        &flow,
        "set = { city = \"osh\" }",
        "set = { city = \"bishkek\" }",
    );
    let roster = dir.path().join("config/demo-roster.toml");
    let mut text = std::fs::read_to_string(&roster).unwrap();
    let cut = |text: &mut String, from: &str, to: &str| {
        let a = text.find(from).unwrap_or_else(|| panic!("no {from:?}"));
        let b = a + text[a..].find(to).unwrap_or_else(|| panic!("no {to:?}"));
        text.replace_range(a..b, "");
    };
    cut(&mut text, "[cities.osh]\n", "[cities.poltava]\n");
    cut(
        &mut text,
        "[[rotations]]\ncity = \"osh\"",
        "[[rotations]]\ncity = \"poltava\"",
    );
    let text = text.replace("cities = [\"bishkek\", \"osh\"]", "cities = [\"bishkek\"]");
    assert!(
        !text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("osh")),
        "{text}"
    );
    std::fs::write(&roster, text).unwrap();
    let vars: std::collections::BTreeMap<&str, &str> = [(
        "HOTLINE_PII_KEY",
        "test-key-0123456789-0123456789-0123456789",
    )]
    .into();
    let report = gw.app.reload(&vars);
    assert!(report.applied, "{}", report.render());

    let mut end = String::new();
    for text in ["4*2*1", "4*2*1*Station 5", "4*2*1*Station 5*0"] {
        end = ussd(gw.public, session, phone, text).await;
    }
    assert!(end.starts_with("END Thank you. Your code is "), "{end}");
    let code: String = end
        .trim_start_matches("END Thank you. Your code is ")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();

    // Nobody can be offered it, and the operator is paged at once
    // (HotlineChainExhausted), under a fixed label.
    assert_eq!(
        gw.metric(r#"hotline_cases_exhausted_total{city="other"}"#)
            .await,
        1.0
    );
    common::outbox_idle(&gw).await;
    let console = console_until(gw.admin, |_| true).await;
    assert!(
        !console.contains(&format!("OK or NO {code}")),
        "no lawyer can be offered a case for Osh now: {console}"
    );
    // She is not left waiting on "you will get a call soon": after the
    // roster's shortest unanswered wait (10 minutes) she is sent the
    // fallback number.
    clock.advance(10 * 60 * 1000 + 1);
    let console = console_until(gw.admin, |b| {
        b.contains(&format!("We could not reach you yet about {code}"))
    })
    .await;
    assert!(console.contains(phone), "{console}");
    assert_eq!(
        gw.metric(r#"hotline_cases_unanswered_total{city="other"}"#)
            .await,
        1.0
    );
    gw.stop().await;
}
