//! Alerts reach someone: a real Prometheus and a real Alertmanager, on
//! loopback ports of their own with data in temp dirs, scrape a running
//! gateway whose roster leaves hours with nobody on call; the
//! `HotlineOncallGap` alert must reach Alertmanager (checked through its
//! `/api/v2/alerts`) and its webhook receiver (a mock HTTP server here)
//! with its city and runbook link.
//!
//! The shipped files are used through test copies that change only what a
//! test needs: 1 s scrape and evaluation intervals, the targets, `for: 0s`
//! on `HotlineOncallGap` (shipped: 10m), a 1 s `group_wait`, and every
//! receiver pointed at loopback (the webhook at the mock; email and
//! Telegram at a closed port). Bounded: under 60 s; the processes are
//! killed when the test ends, however it ends.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Gateway;
use common::mock::{MockResponse, MockServer};
use hotline::clock::Clock;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first of `names` found on the PATH.
fn tool(names: &[&str], package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{} not found: apt-get install {package}", names[0]);
}

/// `text` with `from` replaced by `to`, which must be there.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the shipped file no longer has {from:?}"
    );
    text.replace(from, to)
}

/// The shipped alerting rules with `HotlineOncallGap` firing at once.
fn rules() -> String {
    let shipped =
        std::fs::read_to_string(common::root().join("ops/prometheus/alerts.yml")).unwrap();
    swap(
        &shipped,
        "(hotline_oncall_gap_seconds) > 0\n        for: 10m",
        "(hotline_oncall_gap_seconds) > 0\n        for: 0s",
    )
}

fn prometheus_config(gateway: &str, alertmanager: &str) -> String {
    let shipped =
        std::fs::read_to_string(common::root().join("ops/prometheus/prometheus.yml")).unwrap();
    let mut t = swap(&shipped, "scrape_interval: 15s", "scrape_interval: 1s");
    t = swap(&t, "scrape_timeout: 5s", "scrape_timeout: 1s");
    t = swap(&t, "evaluation_interval: 15s", "evaluation_interval: 1s");
    t = swap(&t, "- 127.0.0.1:9093", &format!("- {alertmanager}"));
    swap(&t, "- 127.0.0.1:9090 ", &format!("- {gateway} "))
}

fn alertmanager_config(webhook: &str) -> String {
    let shipped =
        std::fs::read_to_string(common::root().join("ops/alertmanager/alertmanager.yml")).unwrap();
    let mut t = swap(&shipped, "group_wait: 30s", "group_wait: 1s");
    t = swap(
        &t,
        "smtp_smarthost: smtp.example.org:587",
        "smtp_smarthost: 127.0.0.1:1",
    );
    t = swap(
        &t,
        "  smtp_auth_password_file: /etc/prometheus/alertmanager-smtp-password\n",
        "",
    );
    t = swap(
        &t,
        "bot_token: REPLACE-WITH-THE-BOT-TOKEN",
        "bot_token: test\n        api_url: http://127.0.0.1:1/",
    );
    swap(&t, "http://127.0.0.1:9095/hotline-alerts", webhook)
}

/// The dispatch test roster, but Bishkek is covered 09:00–18:00 only.
fn gapped_roster(dir: &Path) {
    let fixture = include_str!("fixtures/dispatch/roster.toml");
    let gapped = swap(
        fixture,
        "start = \"2026-03-02 09:00\"\nshift_hours = 24",
        "start = \"2026-03-02\"\ndaily = \"09:00-18:00\"",
    );
    std::fs::write(dir.join("roster.toml"), gapped).unwrap();
}

/// Start `cmd`, its output to `log`.
fn spawn(cmd: &mut Command, log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn"),
    )
}

/// The last lines of a log, for a failure message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_gap_reaches_alertmanager_and_its_webhook_with_city_and_runbook() {
    let prometheus = tool(&["prometheus"], "prometheus");
    let alertmanager = tool(
        &["alertmanager", "prometheus-alertmanager"],
        "prometheus-alertmanager",
    );
    let api = MockServer::start(vec![MockResponse::new(201, "{}")]).await;
    let webhook = MockServer::start(vec![MockResponse::new(200, "")]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::world::config(&api.url, dir.path());
    gapped_roster(dir.path());
    let gw = Gateway::start_with(&cfg, &common::world::ENV, None, Clock::System).await;

    let am_port = free_port();
    let am_addr = format!("127.0.0.1:{am_port}");
    let hook = format!("{}/hotline-alerts", webhook.url);
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        alertmanager_config(&hook),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("am-data")).unwrap();
    let mut am = spawn(
        Command::new(&alertmanager)
            .arg(format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am-data").display()
            ))
            .arg(format!("--web.listen-address={am_addr}"))
            .arg("--cluster.listen-address="),
        &dir.path().join("alertmanager.log"),
    );
    std::fs::write(dir.path().join("alerts.yml"), rules()).unwrap();
    let prom_cfg = prometheus_config(&gw.admin.to_string(), &am_addr);
    std::fs::write(dir.path().join("prometheus.yml"), prom_cfg).unwrap();
    let mut prom = spawn(
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port())),
        &dir.path().join("prometheus.log"),
    );

    // Bounded polling of the real processes (they run on wall-clock time).
    let deadline = Instant::now() + Duration::from_secs(50);
    let http = reqwest::Client::new();
    let alerts_url =
        format!("http://{am_addr}/api/v2/alerts?filter=alertname%3D%22HotlineOncallGap%22");
    let (in_api, at_hook) = loop {
        let api_alerts: Vec<serde_json::Value> = match http.get(&alerts_url).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let in_api = api_alerts
            .into_iter()
            .find(|a| a["labels"]["city"] == "bishkek");
        let at_hook = webhook.requests().into_iter().find_map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            body["alerts"]
                .as_array()?
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "HotlineOncallGap"
                        && a["labels"]["city"] == "bishkek"
                })
                .map(|a| (body["receiver"].clone(), body["status"].clone(), a.clone()))
        });
        if let (Some(a), Some(h)) = (&in_api, &at_hook) {
            break (a.clone(), h.clone());
        }
        for (name, p) in [("alertmanager", &mut am), ("prometheus", &mut prom)] {
            if let Ok(Some(status)) = p.0.try_wait() {
                panic!(
                    "{name} exited ({status}):\n{}",
                    tail(&dir.path().join(format!("{name}.log")))
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "no HotlineOncallGap for bishkek within 50 s: in Alertmanager {in_api:?}, at the webhook {:?}\n\
             prometheus:\n{}\nalertmanager:\n{}",
            webhook
                .requests()
                .iter()
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .collect::<Vec<_>>(),
            tail(&dir.path().join("prometheus.log")),
            tail(&dir.path().join("alertmanager.log")),
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let runbook = "ops/RUNBOOK.md#hotlineoncallgap";
    assert_eq!(in_api["labels"]["severity"], "warning");
    assert_eq!(in_api["annotations"]["runbook_url"], runbook);
    assert_eq!(in_api["status"]["state"], "active");
    let (receiver, status, alert) = at_hook;
    eprintln!("webhook received ({receiver}, {status}): {alert}");
    assert_eq!(
        receiver, "operators-warning",
        "warnings route to operators-warning"
    );
    assert_eq!(status, "firing");
    assert_eq!(alert["labels"]["city"], "bishkek");
    assert_eq!(alert["annotations"]["runbook_url"], runbook);
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("no lawyer on call in bishkek")),
        "{alert}"
    );
    gw.stop().await;
}
