//! What operators and coordinators see: the status page in a real browser
//! (Debian's `chromium`, headless), `/cases.json` and `hotline cases`
//! against a running gateway, the admin token in production, the case
//! gauges, and `promtool check metrics` on the real `/metrics`.
//!
//! The gateway runs on the embedded store with dispatch on (the test
//! roster) over the development default's console channel: a development
//! set-up, so its pages need no token.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Gateway;
use hotline::clock::Clock;

/// 2026-12-01 10:00 in Bishkek: aida's shift.
const T0: u64 = 1_796_097_600_000;
const PHONES: [(&str, &str); 4] = [
    ("P_NURGUL", "+996555000100"),
    ("P_AIDA", "+996555000101"),
    ("P_BAKYT", "+996555000102"),
    ("P_CHOLPON", "+996555000103"),
];
/// The caller's number, her callback and her location: never on a page.
const CALLER: &str = "+996555123456";
const SECRETS: [&str; 4] = ["555123456", "Station 5", "+996555000101", "555000101"];

/// The default config with dispatch on the test roster. Without `extra`:
/// the development default (offers go to its console channel). With
/// `extra` (Africa's Talking credentials): a production configuration whose
/// offers go out on that channel.
fn config(dir: &std::path::Path, extra: &str) -> String {
    let roster = dir.join("roster.toml");
    std::fs::write(&roster, include_str!("fixtures/dispatch/roster.toml")).unwrap();
    let roster = roster.display().to_string();
    if extra.is_empty() {
        return common::default_config().replace(
            "roster = \"demo-roster.toml\"",
            &format!("roster = {roster:?}"),
        );
    }
    let texts = common::root().join("config/lawyer_texts.toml");
    common::with_real_channels(&common::default_config())
        .replace("# secret_env = \"HOTLINE_AT_SECRET\"", extra)
        .replace(
            "[flows]",
            &format!(
                "[dispatch]\nroster = {roster:?}\ntexts = {:?}\nsms_channel = \"africastalking\"\n\n[flows]",
                texts.display().to_string()
            ),
        )
}

async fn gateway(dir: &std::path::Path, extra: &str, env: &[(&str, &str)]) -> Gateway {
    let mut vars = PHONES.to_vec();
    vars.extend_from_slice(env);
    Gateway::start_with(&config(dir, extra), &vars, None, Clock::manual(T0)).await
}

/// A woman completes the urgent path in Bishkek; returns her case code.
async fn open_case(gw: &Gateway) -> String {
    let mut last = String::new();
    // Option 2 is Russian for a Kyrgyz number (Kyrgyz comes first).
    for text in [
        "",
        "2",
        "2*1",
        "2*1*1",
        "2*1*1*Station 5",
        "2*1*1*Station 5*0",
    ] {
        last = gw.ussd("obs1", CALLER, text).await.body;
    }
    assert!(last.starts_with("END Спасибо. Ваш код "), "{last}");
    last.trim_start_matches("END Спасибо. Ваш код ")
        .chars()
        .take(4)
        .collect()
}

fn assert_private(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret:?} shown in {what}:\n{text}"
        );
    }
}

/// Run a blocking command off the runtime, bounded by the test timeout.
async fn run(mut cmd: Command) -> std::process::Output {
    let out = tokio::time::timeout(
        common::TIMEOUT * 3,
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("command timed out")
    .expect("command task");
    out.unwrap_or_else(|e| panic!("cannot run the command: {e}"))
}

fn chromium(profile: &std::path::Path, args: &[String]) -> Command {
    let found = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(bin) = found else {
        panic!(
            "chromium is not installed: the status page is tested in a real browser (apt-get install -y chromium; .ci/run installs it)"
        );
    };
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_case_in_a_real_browser_and_no_number() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "", &[]).await;
    let code = open_case(&gw).await;
    // Bakyt goes off call (through the console, as an SMS from her phone).
    let off = common::post_form(
        gw.admin,
        "/console/sms",
        &common::form(&[("from", "bakyt"), ("text", "OFF")]),
    )
    .await;
    assert_eq!(off.status, 303, "{}", off.body);
    let url = format!("http://{}/", gw.admin);

    let profile = tempfile::tempdir().unwrap();
    let out = run(chromium(
        profile.path(),
        &["--dump-dom".into(), url.clone()],
    ))
    .await;
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "Development mode",
        "<h3>bishkek (1)</h3>",
        &format!("<b>{code}</b>"),
        "on call · level 1 · pass 1/1",
        "Aida",
        "Dispatch</dt><dd><span class=\"ok\">on</span>",
        "africastalking",
        "generation 1",
        "<dt>Off call</dt><dd>Bakyt <span class=\"muted\">(sent OFF",
    ] {
        assert!(dom.contains(expected), "missing {expected:?} in:\n{dom}");
    }
    assert_private("the status page", &dom);
    assert!(!dom.contains("+996"), "a number on the page:\n{dom}");
    assert!(
        !dom.contains("555000102"),
        "the off-call lawyer's number on the page:\n{dom}"
    );

    let artifacts = common::root().join("target/ci-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot: PathBuf = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let args = [
        format!("--screenshot={}", shot.display()),
        "--window-size=412,900".into(),
        url,
    ];
    let out = run(chromium(profile.path(), &args)).await;
    assert!(
        shot.metadata().is_ok_and(|m| m.len() > 1000),
        "no screenshot at {}: {}",
        shot.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    gw.stop().await;
}

/// `hotline <args>` (a `cases` command) against the gateway whose admin
/// listener is `admin`, with no token and no store of its own.
fn hotline_cases(args: &[&str], admin: std::net::SocketAddr) -> Command {
    let mut cmd = Command::new(common::binary());
    cmd.args(args)
        .current_dir(common::root())
        .env_remove("HOTLINE_CONFIG")
        .env_remove("HOTLINE_REDIS_URL")
        .env_remove("HOTLINE_ADMIN_TOKEN")
        .env("HOTLINE_ADMIN_LISTEN", admin.to_string());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotline_cases_reads_a_running_memory_gateway_and_the_gauges_count_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "", &[]).await;
    let code = open_case(&gw).await;

    let r = common::request(gw.admin, "GET", "/cases.json?city=bishkek", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(&format!("\"code\":\"{code}\"")),
        "{}",
        r.body
    );
    assert_private("/cases.json", &r.body);

    let out = run(hotline_cases(&["cases", "--city", "bishkek"], gw.admin)).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bishkek (1)"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains(&code))
        .expect("the case's line");
    assert!(
        line.contains("waiting") && line.contains("on call · level 1 · pass 1/1"),
        "{line}"
    );
    assert!(line.contains("Aida (0 s ago)"), "{line}");
    assert_private("hotline cases", &stdout);

    // The timer worker's refresh sets the case gauges from the store.
    let dispatcher = gw.app.live_dispatcher.clone().expect("dispatch on");
    gw.clock.advance(90_000);
    hotline::dispatch::timers::TimerWorker::new(dispatcher, std::time::Duration::from_secs(1))
        .refresh()
        .await;
    let open = r#"hotline_cases_open{city="bishkek",level="on_call"}"#;
    assert_eq!(gw.metric(open).await, 1.0);
    let oldest = r#"hotline_case_oldest_unaccepted_seconds{city="bishkek"}"#;
    assert_eq!(gw.metric(oldest).await, 90.0);
    gw.stop().await;
}

#[tokio::test]
async fn in_production_the_pages_need_the_bearer_token_and_metrics_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let creds = "username = \"hotline\"\napi_key_env = \"HOTLINE_AT_API_KEY\"";
    // Production without a token: the pages are served to nobody.
    let gw = gateway(dir.path(), creds, &[("HOTLINE_AT_API_KEY", "k")]).await;
    assert!(gw.app.config.is_production());
    let r = common::request(gw.admin, "GET", "/", &[], b"").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body.trim(),
        "this is a production configuration: set HOTLINE_ADMIN_TOKEN to use the status pages"
    );
    // `hotline cases` says so too, with the exit code of a thing the
    // operator must fix (64, as `test-sms`), not 69 "try again later".
    let out = run(hotline_cases(&["cases"], gw.admin)).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("the gateway refused: 403 Forbidden: this is a production configuration: set HOTLINE_ADMIN_TOKEN"),
        "{stderr}"
    );
    gw.stop().await;

    let env = [
        ("HOTLINE_AT_API_KEY", "k"),
        ("HOTLINE_ADMIN_TOKEN", "s3cret-token-0123456789"),
    ];
    let gw = gateway(dir.path(), creds, &env).await;
    for (path, auth, status) in [
        ("/", None, 401),
        ("/", Some("Bearer wrong"), 401),
        (
            "/cases.json",
            Some("Bearer s3cret-token-0123456789-longer"),
            401,
        ),
        ("/", Some("Bearer s3cret-token-0123456789"), 200),
        ("/cases.json", Some("Bearer s3cret-token-0123456789"), 200),
        ("/metrics", None, 200),
        ("/healthz", None, 200),
        ("/readyz", None, 200),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = common::request(gw.admin, "GET", path, &headers, b"").await;
        assert_eq!(r.status, status, "{path} {auth:?}: {}", r.body);
    }
    let headers = [("Authorization", "Bearer s3cret-token-0123456789")];
    let r = common::request(gw.admin, "GET", "/", &headers, b"").await;
    assert!(r.body.contains("Production mode"), "{}", r.body);
    assert_eq!(
        r.header("content-security-policy"),
        Some(hotline::server::status::CSP)
    );
    gw.stop().await;
}

/// The development default with its admin listener off loopback refuses
/// the pages for that reason, and says so: before, it answered "this is a
/// production configuration", which it is not.
#[tokio::test]
async fn off_loopback_the_pages_say_why_they_need_the_token() {
    let gw = common::Gateway::start_with(
        &common::default_config(),
        &[("HOTLINE_ADMIN_LISTEN", "0.0.0.0:0")],
        None,
        hotline::clock::Clock::System,
    )
    .await;
    assert!(!gw.app.config.is_production());
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], gw.admin.port()));
    let r = common::request(admin, "GET", "/", &[], b"").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.body.trim(),
        "the admin listener (0.0.0.0:0) is not on loopback: set HOTLINE_ADMIN_TOKEN to use the status pages"
    );
    assert!(!r.body.contains("production"), "{}", r.body);
    let r = common::request(admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    gw.stop().await;
}

/// The console shows every SMS, numbers and locations included, and takes
/// SMS as any lawyer: with a token set it needs the token, as the status
/// page does.
#[tokio::test]
async fn with_a_token_set_the_console_needs_it_too() {
    let dir = tempfile::tempdir().unwrap();
    let token = "s3cret-token-0123456789";
    let gw = gateway(dir.path(), "", &[("HOTLINE_ADMIN_TOKEN", token)]).await;
    let bearer = format!("Bearer {token}");
    let form = b"from=%2B447700900102&text=STATUS";
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    for (method, path, body) in [
        ("GET", "/console", &b""[..]),
        ("GET", "/console/messages", b""),
        ("POST", "/console/sms", form),
    ] {
        let r = common::request(gw.admin, method, path, &[form_type], body).await;
        assert_eq!(
            r.status, 401,
            "{method} {path} without the token: {}",
            r.body
        );
        let wrong = [form_type, ("Authorization", "Bearer wrong")];
        let r = common::request(gw.admin, method, path, &wrong, body).await;
        assert_eq!(r.status, 401, "{method} {path} with a wrong token");
    }
    assert_eq!(
        gw.metric(r#"hotline_webhook_requests_total{channel="console",event="sms",outcome="ok"}"#)
            .await,
        0.0,
        "nothing was taken in"
    );
    let with = [form_type, ("Authorization", bearer.as_str())];
    let r = common::request(gw.admin, "GET", "/console", &with, b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = common::request(gw.admin, "POST", "/console/sms", &with, form).await;
    assert_eq!(r.status, 303, "{}", r.body);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_real_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "", &[]).await;
    open_case(&gw).await;
    let dispatcher = gw.app.live_dispatcher.clone().expect("dispatch on");
    hotline::dispatch::timers::TimerWorker::new(dispatcher, std::time::Duration::from_secs(1))
        .refresh()
        .await;
    let r = common::request(gw.admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("hotline_oncall_gap_seconds{city=\"bishkek\"}"),
        "{}",
        r.body
    );
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &r.body).unwrap();
    let mut cmd = Command::new("promtool");
    cmd.args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap());
    let out = match tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
    {
        Ok(o) => o,
        Err(e) => panic!("promtool not found ({e}): install the prometheus package"),
    };
    assert!(
        out.status.success(),
        "promtool check metrics failed ({:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    gw.stop().await;
}
