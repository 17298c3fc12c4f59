//! The real binary over real HTTP: privacy of its logs, and SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Running {
    child: Child,
    public: SocketAddr,
    admin: SocketAddr,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave a server running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// The child is waited for by `sigterm_and_wait` or killed by `Drop`.
#[allow(clippy::zombie_processes)]
fn start(extra_env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(common::binary());
    cmd.arg("serve")
        .current_dir(common::root())
        .env("HOTLINE_LISTEN", "127.0.0.1:0")
        .env("HOTLINE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("HOTLINE_LOG_FORMAT", "json")
        .env(
            "HOTLINE_PII_KEY",
            "binary-test-key-0123456789abcdef0123456789",
        )
        .env_remove("HOTLINE_REDIS_URL")
        .env_remove("HOTLINE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        // An empty value: not set at all (as on a newcomer's machine).
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
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
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_else(|_| panic!("no 'hotline listening' line; saw: {seen:#?}"));
        seen.push(line.clone());
        if line.contains("hotline listening") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            return Running {
                child,
                public: v["public"].as_str().unwrap().parse().unwrap(),
                admin: v["admin"].as_str().unwrap().parse().unwrap(),
                lines: rx,
                seen,
            };
        }
    }
}

impl Running {
    fn sigterm_and_wait(mut self) -> (Option<i32>, Vec<String>) {
        self.finish()
    }

    fn finish(&mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let deadline = std::time::Instant::now() + common::TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        (status.code(), std::mem::take(&mut self.seen))
    }
}

#[tokio::test]
async fn logs_never_contain_a_number_a_location_or_a_message() {
    let gw = start(&[("RUST_LOG", "trace")]);
    let phone = "+996555987654";
    let location = "Первомайский РУВД кабинет 12";
    let callback = "0700 111 222";
    let mut text = String::new();
    for (i, input) in ["1", "1", "1", location, callback].into_iter().enumerate() {
        let body = common::form(&[
            ("sessionId", "ATUid_privacy"),
            ("serviceCode", "*384#"),
            ("phoneNumber", phone),
            ("text", &text),
        ]);
        let r = common::post_form(gw.public, "/webhooks/africastalking/ussd", &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if i > 0 {
            text.push('*');
        }
        text.push_str(input);
    }
    let body = common::form(&[
        ("sessionId", "ATUid_privacy"),
        ("serviceCode", "*384#"),
        ("phoneNumber", phone),
        ("text", &text),
    ]);
    let end = common::post_form(gw.public, "/webhooks/africastalking/ussd", &body).await;
    assert!(end.body.starts_with("END "), "{}", end.body);
    // Bad input is logged too; its values must not be.
    let bad = common::form(&[
        ("sessionId", "x"),
        ("serviceCode", "1"),
        ("phoneNumber", "+99655598765x"),
        ("text", location),
    ]);
    assert_eq!(
        common::post_form(gw.public, "/webhooks/africastalking/ussd", &bad)
            .await
            .status,
        400
    );
    let metrics = common::request(gw.admin, "GET", "/metrics", &[], b"").await;
    assert!(!metrics.body.contains("555987654"), "no number in metrics");

    let (code, lines) = gw.sigterm_and_wait();
    assert_eq!(code, Some(0), "clean exit after SIGTERM");
    let all = lines.join("\n");
    assert!(
        all.contains("\"message\":\"hop\""),
        "the walk was logged: {all}"
    );
    assert!(
        all.contains("\"caller\":\"p_"),
        "callers appear as pseudonyms"
    );
    for secret in [
        "555987654",    // the caller's number, in any form
        "99655598765",  // a prefix of it
        "Первомайский", // the location
        "кабинет",
        "111 222", // the callback number as typed
        "700111222",
        "Куда безопасно", // a screen text
    ] {
        assert!(
            !all.contains(secret),
            "log output contains {secret:?}:\n{all}"
        );
    }
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let gw = start(&[]);
    let r = common::request(gw.admin, "GET", "/readyz", &[], b"").await;
    assert_eq!(r.status, 200);
    let (code, lines) = gw.sigterm_and_wait();
    assert_eq!(code, Some(0));
    assert!(lines.iter().any(|l| l.contains("shutting down")));
}

/// The console's messages as text (`GET /console/messages`), once `pred`
/// holds (the outbox sends as soon as it is woken; bounded by a timeout).
async fn console_until(admin: SocketAddr, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let r = common::request(admin, "GET", "/console/messages", &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.body);
        if pred(&r.body) {
            return r.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "console never showed it: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_readme_walk_reaches_the_demo_lawyer_on_the_console_and_her_ok_confirms() {
    // README "Try it", as a newcomer runs it: the shipped default and no
    // HOTLINE_PII_KEY (the development key, so her code is the README's).
    let gw = start(&[("HOTLINE_PII_KEY", "")]);
    let mut end = String::new();
    let mut first = String::new();
    for text in [
        "",
        "4",
        "4*1",
        "4*1*1",
        "4*1*1*Station 5",
        "4*1*1*Station 5*0",
    ] {
        let body = common::form(&[
            ("sessionId", "demo1"),
            ("serviceCode", "*384#"),
            ("phoneNumber", "+996555123456"),
            ("text", text),
        ]);
        let r = common::post_form(gw.public, "/webhooks/africastalking/ussd", &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if text.is_empty() {
            first.clone_from(&r.body);
        }
        end = r.body;
    }
    assert!(end.starts_with("END Thank you. Your code is "), "{end}");
    let code: String = end
        .trim_start_matches("END Thank you. Your code is ")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let ok = format!("OK {code}");
    // What the README shows a newcomer is what she gets: its first screen
    // and its code (the development key makes the code the same on every
    // machine; a stale "4821" once sent newcomers' `OK` to no case).
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let shown = |prefix: &str| {
        readme
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("README has `{prefix}`"))
            .to_owned()
    };
    let first_line = shown("hop \"\" ");
    assert!(
        first_line.ends_with(&format!("# {}", first.replace('\n', "  "))),
        "README: {first_line}\ngateway: {first}"
    );
    let last_line = shown("hop \"4*1*1*Station 5*0\"");
    assert!(
        last_line.contains(&format!("Your code is {code}.")),
        "README: {last_line}\ngateway: {end}"
    );
    assert!(
        readme.contains(&format!("text='{ok}'")),
        "README's OK names {code}"
    );

    // The offer reaches the demo lawyer on call, on /console.
    let page = common::request(gw.admin, "GET", "/console", &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("DEVELOPMENT SINK"), "{}", page.body);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let offer = console_until(gw.admin, |b| b.contains(&format!("OK or NO {code}"))).await;
    // The README answers as the lawyer the offer went to, on every day:
    // the demo roster keeps her on call in Bishkek round the clock.
    let lawyer = readme
        .split("/console/sms -d from=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("README answers the offer with `-d from=<lawyer>`");
    assert_eq!(lawyer, "demo-bermet", "README");
    assert!(
        offer.contains("to +447700900102 (Bermet (demo)): "),
        "the offer goes to the lawyer the README answers as: {offer}"
    );

    // A cross-site post is refused and changes nothing; a bad form is 400.
    let form = common::form(&[("from", lawyer), ("text", &ok)]);
    let cross = common::request(
        gw.admin,
        "POST",
        "/console/sms",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        form.as_bytes(),
    )
    .await;
    assert_eq!(cross.status, 403);
    let bad = common::post_form(gw.admin, "/console/sms", "from=nobody&text=OK").await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // Her OK, typed in the console's form, accepts the case: the woman's
    // confirmation appears on the console.
    let r = common::post_form(gw.admin, "/console/sms", &form).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/console"));
    let after = console_until(gw.admin, |b| b.contains("to +996555123456: ")).await;
    assert!(
        after.contains(&format!(
            "to +996555123456: We have your request {code}. You will get a call soon."
        )),
        "{after}"
    );
    let metrics = common::request(gw.admin, "GET", "/metrics", &[], b"").await;
    assert!(
        metrics.body.contains(
            r#"hotline_webhook_requests_total{channel="console",event="sms",outcome="bad_request"} 1"#
        ),
        "counted"
    );
    // A lawyer over her command rate (a runaway loop): not handled, and
    // the console says so (429) and counts it, instead of 303 and `ok`.
    let status = common::form(&[("from", lawyer), ("text", "STATUS")]);
    let mut refused = 0;
    for _ in 0..45 {
        let r = common::post_form(gw.admin, "/console/sms", &status).await;
        if r.status == 429 {
            assert!(r.body.contains("not handled"), "{}", r.body);
            refused += 1;
        } else {
            assert_eq!(r.status, 303, "{}", r.body);
        }
    }
    assert!(refused > 0, "the burst of 30 is spent");
    let metrics = common::request(gw.admin, "GET", "/metrics", &[], b"").await;
    assert!(
        metrics.body.contains(&format!(
            r#"hotline_webhook_requests_total{{channel="console",event="sms",outcome="rate_limited"}} {refused}"#
        )),
        "counted as rate_limited"
    );

    let (code, lines) = gw.sigterm_and_wait();
    assert_eq!(code, Some(0));
    let all = lines.join("\n");
    assert!(all.contains("/console"), "serve says where the console is");
    for secret in ["555123456", "Station 5", "7700900", "is taken"] {
        assert!(
            !all.contains(secret),
            "log output contains {secret:?}:\n{all}"
        );
    }
}

impl Running {
    /// The lines logged within `wait` from now.
    fn lines_within(&mut self, wait: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + wait;
        let mut out = Vec::new();
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            self.seen.push(l.clone());
            out.push(l);
        }
        out
    }
}

/// The `webhook refused` lines among `lines`, parsed.
fn refused_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "webhook refused")
        .collect()
}

/// Anyone can send the webhooks bad requests, so a flood of them must not
/// flood the log: one `webhook refused` line per channel and reason every
/// 10 s, the next one saying how many were left out; the metrics count
/// every request. The real binary, on Redis.
#[tokio::test]
async fn a_flood_of_bad_requests_logs_one_line_per_reason_and_counts_them_all() {
    let redis = common::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = common::copy_default_setup(dir.path());
    let spool = dir.path().join("spool");
    common::edit(
        &config,
        "[store]\n",
        &format!("[store]\nspool_dir = {:?}\n", spool.display().to_string()),
    );
    let mut gw = start(&[
        ("HOTLINE_CONFIG", config.to_str().unwrap()),
        ("HOTLINE_REDIS_URL", &redis.url),
    ]);
    assert!(gw.seen.iter().any(|l| l.contains("\"store\":\"redis\"")));
    let path = "/webhooks/africastalking/ussd";
    let first = std::time::Instant::now();
    for _ in 0..200 {
        let r = common::post_form(gw.public, path, "sessionId=flood").await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let big = vec![b'a'; 17 * 1024];
    for _ in 0..50 {
        let r = common::request(gw.public, "POST", path, &[], &big).await;
        assert_eq!(r.status, 413);
    }
    let flood_took = first.elapsed();
    assert!(
        flood_took < Duration::from_secs(8),
        "the flood must fit in one 10 s period: {flood_took:?}"
    );
    let lines = refused_lines(&gw.lines_within(Duration::from_millis(500)));
    let reasons: Vec<&str> = lines.iter().filter_map(|v| v["reason"].as_str()).collect();
    assert_eq!(
        reasons.len(),
        2,
        "one line per reason for 250 requests: {lines:#?}"
    );
    let malformed = reasons[0];
    assert!(malformed.contains("missing field"), "{reasons:?}");
    assert_eq!(reasons[1], "body over server.max_body_bytes");
    assert!(lines.iter().all(|v| v["channel"] == "africastalking"));
    assert!(lines.iter().all(|v| v["suppressed"] == 0), "{lines:#?}");
    let metric = |outcome: &str| {
        format!(
            r#"hotline_webhook_requests_total{{channel="africastalking",event="ussd",outcome="{outcome}"}}"#
        )
    };
    let metrics = common::request(gw.admin, "GET", "/metrics", &[], b"")
        .await
        .body;
    for (outcome, n) in [("bad_request", 200), ("too_large", 50)] {
        let series = metric(outcome);
        assert!(
            metrics.lines().any(|l| l == format!("{series} {n}")),
            "{series} {n}"
        );
    }
    // Once the period is over (ten seconds after the first line, which
    // came a little after `first`), the next of its kind is logged with
    // every one left out since: the flood's 199 and those sent while
    // waiting for the period to end. Sent every 200 ms from 9.5 s on, so
    // that a slow machine only makes it wait longer, never fail.
    tokio::time::sleep(
        (first + Duration::from_millis(9_500)).saturating_duration_since(std::time::Instant::now()),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut sent = 0u64;
    let lines = loop {
        let r = common::post_form(gw.public, path, "sessionId=flood").await;
        assert_eq!(r.status, 400);
        sent += 1;
        let lines = refused_lines(&gw.lines_within(Duration::from_millis(200)));
        if !lines.is_empty() {
            break lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a line once the period is over"
        );
    };
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["reason"], malformed);
    assert_eq!(lines[0]["suppressed"], 199 + (sent - 1), "{lines:#?}");
    let (code, _) = gw.sigterm_and_wait();
    assert_eq!(code, Some(0));
}
