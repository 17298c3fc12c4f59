//! The public listener on a hostile network: idle-connection floods,
//! bad-secret floods through a reverse proxy, stalled and oversized bodies,
//! and the drain delay on shutdown. Real server on port 0, raw TCP from
//! loopback addresses (127.0.0.2 and friends stand in for other clients).
//!
//! No timing assertions: latencies are measured and printed
//! (`cargo test --test server_hostile -- --nocapture`); only completion and
//! status codes are asserted.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Gateway, Response, TIMEOUT, form, parse_response, request};
use hotline::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const USSD: &str = "/webhooks/africastalking/ussd";

/// The default config with `[server]` lines replaced (`key = …` → `line`).
fn config(lines: &[&str]) -> String {
    let mut cfg = common::default_config();
    for line in lines {
        let key = line.split('=').next().unwrap().trim();
        let old = cfg
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("{key} is not in the default config"))
            .to_owned();
        cfg = cfg.replacen(&old, line, 1);
    }
    cfg
}

/// The default config with a secret on the Africa's Talking channel.
fn with_secret(cfg: &str) -> String {
    cfg.replacen(
        "# secret_env = \"HOTLINE_AT_SECRET\"",
        "secret_env = \"HOTLINE_AT_SECRET\"",
        1,
    )
}

/// Connect to `to` from the loopback address `from`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    tokio::time::timeout(TIMEOUT, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Send raw bytes on `s` and read the response until the server closes
/// (a reset after the response counts as the close).
async fn exchange(mut s: TcpStream, raw: &[u8]) -> Response {
    tokio::time::timeout(TIMEOUT, async {
        let _ = s.write_all(raw).await;
        read_all(&mut s).await
    })
    .await
    .expect("response in time")
}

async fn read_all(s: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    parse_response(&buf)
}

/// A whole POST with `Connection: close`.
fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    head.into_bytes()
}

fn hop_body(session: &str, phone: &str, text: &str) -> String {
    form(&[
        ("sessionId", session),
        ("serviceCode", "*384*1#"),
        ("phoneNumber", phone),
        ("text", text),
    ])
}

/// 20 USSD hops (10 sessions of two) from `from`, each on its own
/// connection; returns each hop's status and latency.
async fn honest_hops(
    gw: &Gateway,
    from: IpAddr,
    path: &str,
    headers: &[(&str, &str)],
    tag: &str,
) -> Vec<(u16, Duration)> {
    let mut out = Vec::new();
    for i in 0..10 {
        let session = format!("ATUid_{tag}_{i}");
        let phone = format!("+99655571{i:04}");
        for text in ["", "1"] {
            let started = Instant::now();
            let s = connect_from(from, gw.public).await;
            let r = exchange(s, &post(path, headers, &hop_body(&session, &phone, text))).await;
            out.push((r.status, started.elapsed()));
        }
    }
    out
}

fn report(what: &str, hops: &[(u16, Duration)]) {
    let mut ms: Vec<f64> = hops.iter().map(|(_, d)| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "{what}: {} hops, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        pick(0.5),
        pick(0.99),
        ms[ms.len() - 1]
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_from_one_address_do_not_starve_others() {
    let gw = Gateway::start_with(&config(&[]), &[], None, Clock::System).await;
    let started = Instant::now();
    let mut idle = Vec::with_capacity(2000);
    for _ in 0..2000 {
        idle.push(connect_from(ip("127.0.0.1"), gw.public).await);
    }
    println!(
        "opened 2000 idle connections from 127.0.0.1 in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let hops = honest_hops(&gw, ip("127.0.0.2"), USSD, &[], "idle").await;
    report(
        "honest client from 127.0.0.2 during 2000 idle connections",
        &hops,
    );
    assert!(hops.iter().all(|(s, _)| *s == 200), "{hops:?}");
    // Everything over the per-address cap (64) was refused at once.
    let refused = gw.metric("hotline_ip_rate_limited_total").await;
    println!("connections refused over the per-address cap: {refused}");
    assert!(refused >= 1900.0, "{refused}");
    // An over-cap connection is told why before it is closed.
    let mut last = idle.pop().unwrap();
    let r = tokio::time::timeout(TIMEOUT, read_all(&mut last))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (503, "too many connections\n"));
    drop(idle);
    gw.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let gw = Gateway::start_with(
        &config(&["idle_timeout_ms = 200"]),
        &[],
        None,
        Clock::System,
    )
    .await;
    let mut s = TcpStream::connect(gw.public).await.unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(TIMEOUT, s.read(&mut byte))
        .await
        .expect("the server closes an idle connection");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    println!(
        "idle connection closed after {:.0} ms (idle_timeout_ms = 200)",
        started.elapsed().as_secs_f64() * 1e3
    );
    metric_reaches(
        &gw,
        r#"hotline_connections_closed_total{reason="idle_timeout"}"#,
        1.0,
    )
    .await;
    assert_eq!(gw.metric(EVICTED).await, 0.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_secret_flood_through_the_proxy_never_gets_the_aggregator_a_429() {
    let cfg = with_secret(&config(&["trusted_proxies = [\"127.0.0.1\"]"]));
    let env = [("HOTLINE_AT_SECRET", "right-secret")];
    let gw = Gateway::start_with(&cfg, &env, None, Clock::System).await;
    let public = gw.public;
    // Three threads of wrong-secret POSTs, through the proxy (127.0.0.1),
    // from an attacker the proxy saw as 198.51.100.66.
    let attackers: Vec<_> = (0..3)
        .map(|t| {
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..150 {
                    let body = hop_body(&format!("ATUid_evil_{t}_{i}"), "+996555999999", "");
                    let raw = post(
                        &format!("{USSD}?secret=wrong"),
                        &[("X-Forwarded-For", "6.6.6.6, 198.51.100.66")],
                        &body,
                    );
                    let s = connect_from(ip("127.0.0.1"), public).await;
                    statuses.push(exchange(s, &raw).await.status);
                }
                statuses
            })
        })
        .collect();
    let path = format!("{USSD}?secret=right-secret");
    let hops = honest_hops(
        &gw,
        ip("127.0.0.1"),
        &path,
        &[("X-Forwarded-For", "203.0.113.10")],
        "proxied",
    )
    .await;
    let mut evil = Vec::new();
    for a in attackers {
        evil.extend(a.await.unwrap());
    }
    report(
        "aggregator through the proxy during a bad-secret flood",
        &hops,
    );
    let count = |code| evil.iter().filter(|s| **s == code).count();
    println!(
        "attacker: {} requests, {} × 403, {} × 429",
        evil.len(),
        count(403),
        count(429)
    );
    assert!(hops.iter().all(|(s, _)| *s == 200), "{hops:?}");
    assert_eq!(count(403) + count(429), evil.len());
    assert!(count(429) > 0, "the failure budget ran out");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_from_the_aggregators_own_address_do_not_spend_its_budget() {
    // No trusted proxy: the attacker shares the aggregator's address (its
    // NAT, or a proxy nobody listed). The authenticated budget is small.
    let cfg = with_secret(&config(&["per_ip_per_second = 5", "per_ip_burst = 25"]));
    let env = [("HOTLINE_AT_SECRET", "right-secret")];
    let gw = Gateway::start_with(&cfg, &env, None, Clock::System).await;
    let public = gw.public;
    let attacker = tokio::spawn(async move {
        let mut limited = 0;
        for i in 0..300 {
            let body = hop_body(&format!("ATUid_nat_{i}"), "+996555999999", "");
            let s = connect_from(ip("127.0.0.3"), public).await;
            let r = exchange(s, &post(&format!("{USSD}?secret=wrong"), &[], &body)).await;
            limited += usize::from(r.status == 429);
        }
        limited
    });
    let path = format!("{USSD}?secret=right-secret");
    let hops = honest_hops(&gw, ip("127.0.0.3"), &path, &[], "nat").await;
    let limited = attacker.await.unwrap();
    report(
        "aggregator sharing its address with a bad-secret flood",
        &hops,
    );
    println!("attacker: 300 requests, {limited} × 429");
    assert!(hops.iter().all(|(s, _)| *s == 200), "{hops:?}");
    gw.stop().await;
}

#[tokio::test]
async fn allow_ips_sees_the_client_behind_a_trusted_proxy() {
    let cfg = config(&["trusted_proxies = [\"127.0.0.0/8\"]"]).replacen(
        "# allow_ips = [\"192.0.2.0/24\"]",
        "allow_ips = [\"203.0.113.0/24\"]",
        1,
    );
    let gw = Gateway::start_with(&cfg, &[], None, Clock::System).await;
    let body = hop_body("ATUid_allow", "+996555710000", "");
    let allowed = ("X-Forwarded-For", "203.0.113.10, 127.0.0.9");
    let s = connect_from(ip("127.0.0.2"), gw.public).await;
    assert_eq!(
        exchange(s, &post(USSD, &[allowed], &body)).await.status,
        200
    );
    // A forged entry left of what the proxy saw is not believed.
    let forged = ("X-Forwarded-For", "203.0.113.10, 198.51.100.66");
    let s = connect_from(ip("127.0.0.2"), gw.public).await;
    assert_eq!(exchange(s, &post(USSD, &[forged], &body)).await.status, 403);
    gw.stop().await;
    // Without trusted proxies the header means nothing.
    let cfg = cfg.replacen(
        "trusted_proxies = [\"127.0.0.0/8\"]",
        "trusted_proxies = []",
        1,
    );
    let gw = Gateway::start_with(&cfg, &[], None, Clock::System).await;
    let s = connect_from(ip("127.0.0.2"), gw.public).await;
    assert_eq!(
        exchange(s, &post(USSD, &[allowed], &body)).await.status,
        403
    );
    gw.stop().await;
}

/// A PROXY protocol v1 line for `client`.
fn proxy_v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 8080\r\n").into_bytes()
}

/// A PROXY protocol v2 header for the IPv4 `client`.
fn proxy_v2(client: [u8; 4]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&8080u16.to_be_bytes());
    h
}

/// A TCP proxy (HAProxy `send-proxy`, an NLB) names the client in a PROXY
/// header: `allow_ips` and the per-address cap see that client; a trusted
/// peer without a header is closed; an untrusted peer's header is not
/// believed.
#[tokio::test]
async fn behind_a_tcp_proxy_the_proxy_protocol_names_the_client() {
    let cfg = config(&[
        "trusted_proxies = [\"127.0.0.1\"]",
        "proxy_protocol = true",
        "max_connections_per_ip = 2",
    ])
    .replacen(
        "# allow_ips = [\"192.0.2.0/24\"]",
        "allow_ips = [\"203.0.113.0/24\"]",
        1,
    );
    let gw = Gateway::start_with(&cfg, &[], None, Clock::System).await;
    let body = hop_body("ATUid_pp", "+996555710001", "");
    let with = |header: Vec<u8>| [header, post(USSD, &[], &body)].concat();
    let proxy = ip("127.0.0.1");
    let s = connect_from(proxy, gw.public).await;
    assert_eq!(
        exchange(s, &with(proxy_v1("203.0.113.10"))).await.status,
        200
    );
    let s = connect_from(proxy, gw.public).await;
    assert_eq!(
        exchange(s, &with(proxy_v2([203, 0, 113, 11]))).await.status,
        200
    );
    let s = connect_from(proxy, gw.public).await;
    assert_eq!(
        exchange(s, &with(proxy_v1("198.51.100.66"))).await.status,
        403,
        "allow_ips sees the client the header names"
    );
    // A trusted proxy's connection without a header is closed unanswered.
    let mut s = connect_from(proxy, gw.public).await;
    s.write_all(&post(USSD, &[], &body)).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(TIMEOUT, s.read_to_end(&mut buf))
        .await
        .expect("closed in time");
    assert!(n.map_or(true, |n| n == 0), "no answer without a header");
    assert_eq!(gw.metric("hotline_proxy_headers_refused_total").await, 1.0);
    // Another peer's header is not believed: it is just a bad request.
    let s = connect_from(ip("127.0.0.2"), gw.public).await;
    assert_eq!(
        exchange(s, &with(proxy_v1("203.0.113.10"))).await.status,
        400
    );
    // The per-address cap counts the client the header names, not the proxy.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from(proxy, gw.public).await;
        s.write_all(&proxy_v1("203.0.113.20")).await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = connect_from(proxy, gw.public).await;
    assert_eq!(
        exchange(s, &with(proxy_v1("203.0.113.20"))).await.status,
        503
    );
    let s = connect_from(proxy, gw.public).await;
    assert_eq!(
        exchange(s, &with(proxy_v1("203.0.113.21"))).await.status,
        200
    );
    drop(held);
    gw.stop().await;
}

/// Send `raw` and return the response and how long it took.
async fn timed(gw: &Gateway, raw: &[u8]) -> (Response, Duration) {
    let started = Instant::now();
    let s = TcpStream::connect(gw.public).await.unwrap();
    let r = exchange(s, raw).await;
    (r, started.elapsed())
}

#[tokio::test]
async fn stalled_bodies_get_408_and_huge_ones_413() {
    let cfg = config(&["body_read_timeout_ms = 300"]);
    let gw = Gateway::start_with(&cfg, &[], None, Clock::System).await;
    let head = format!("POST {USSD} HTTP/1.1\r\nHost: t\r\n");
    // Declared 100 bytes, sent 10, then nothing.
    let raw = format!("{head}Content-Length: 100\r\n\r\nsessionId=");
    let (r, took) = timed(&gw, raw.as_bytes()).await;
    println!(
        "stalled body: {} after {:.0} ms",
        r.status,
        took.as_secs_f64() * 1e3
    );
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    // A chunk that says it is 2^64-1 bytes long, then stalls: 408.
    let chunked = format!("{head}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n");
    let (r, took) = timed(&gw, format!("{chunked}sessionId=").as_bytes()).await;
    println!(
        "huge chunk, stalled: {} after {:.0} ms",
        r.status,
        took.as_secs_f64() * 1e3
    );
    assert_eq!(r.status, 408);
    // …and then sends more than the cap (16 KiB): 413 as soon as it does.
    let mut raw = chunked.into_bytes();
    raw.extend(std::iter::repeat_n(b'a', 17 * 1024));
    let (r, took) = timed(&gw, &raw).await;
    println!(
        "huge chunk, 17 KiB sent: {} after {:.0} ms",
        r.status,
        took.as_secs_f64() * 1e3
    );
    assert_eq!(r.status, 413);
    // A chunk size that overflows 64 bits is not a body: 400.
    let raw = format!("{head}Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nab");
    let (r, _) = timed(&gw, raw.as_bytes()).await;
    assert_eq!(r.status, 400);
    // A declared length over the cap: 413 unread.
    let raw = format!("{head}Content-Length: 99999999999\r\n\r\n");
    let (r, _) = timed(&gw, raw.as_bytes()).await;
    assert_eq!(r.status, 413);
    // The stalled ones are the client's fault: refused requests counted by
    // their own outcome (the malformed chunk is a bad request); never
    // `timeout`, which pages (HotlineWebhookErrors).
    assert_eq!(
        gw.metric(
            r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="slow_body"}"#
        )
        .await,
        2.0
    );
    assert_eq!(
        gw.metric(
            r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="bad_request"}"#
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric(
            r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="timeout"}"#
        )
        .await,
        0.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_oversized_head_gets_431() {
    let gw = Gateway::start_with(&config(&[]), &[], None, Clock::System).await;
    let big = "a".repeat(20 * 1024);
    let raw = format!("POST {USSD} HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    let (r, _) = timed(&gw, raw.as_bytes()).await;
    assert_eq!(r.status, 431);
    gw.stop().await;
}

#[tokio::test]
async fn during_the_drain_delay_readyz_is_503_and_webhooks_still_work() {
    let cfg = config(&["drain_delay_secs = 2"]);
    let mut gw = Gateway::start_with(&cfg, &[], None, Clock::System).await;
    gw.trigger_shutdown();
    let mut draining = false;
    for _ in 0..100 {
        if request(gw.admin, "GET", "/readyz", &[], b"").await.status == 503 {
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(draining, "/readyz turns 503 at once");
    let r = gw.ussd("ATUid_drain", "+996555710001", "").await;
    assert_eq!(
        r.status, 200,
        "a new request during the drain delay is served"
    );
    assert!(r.body.starts_with("CON "), "{}", r.body);
    gw.join().await;
}

/// Requests hyper refuses before any handler runs have no channel: the
/// public listener counts them by reason
/// (`hotline_connections_refused_total`) — a head over
/// `server.max_header_bytes` (431), bytes that are not HTTP (400), a head
/// that does not arrive within `server.header_read_timeout_ms` (closed
/// unanswered). Real TCP, on Redis.
#[tokio::test]
async fn requests_refused_before_the_handler_are_counted_by_reason() {
    let redis = common::redis::RedisServer::shared_or_start();
    let prefix = common::redis::unique_prefix("refused");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&["header_read_timeout_ms = 300"]).replace(
        "[store]\n",
        &format!(
            "[store]\nkey_prefix = {prefix:?}\nspool_dir = {:?}\n",
            dir.path().join("spool").display().to_string()
        ),
    );
    let gw = Gateway::start_with(
        &cfg,
        &[("HOTLINE_REDIS_URL", &redis.url)],
        None,
        Clock::System,
    )
    .await;
    let refused =
        |reason: &str| format!(r#"hotline_connections_refused_total{{reason="{reason}"}}"#);
    for reason in ["head_too_large", "malformed", "head_timeout"] {
        assert_eq!(gw.metric(&refused(reason)).await, 0.0, "{reason} at zero");
    }
    // An oversized head, twice.
    let big = "a".repeat(20 * 1024);
    let raw = format!("POST {USSD} HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    for _ in 0..2 {
        assert_eq!(timed(&gw, raw.as_bytes()).await.0.status, 431);
    }
    // Garbage: text that is no request line, and a TLS ClientHello.
    let (r, _) = timed(&gw, b"HELLO THERE\r\n\r\n").await;
    assert_eq!(r.status, 400);
    let hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x01\x02\x03\x04\r\n\r\n";
    let (r, _) = timed(&gw, hello).await;
    assert_eq!(r.status, 400);
    // Half a head, then nothing: closed unanswered after the timeout.
    let started = Instant::now();
    let mut s = TcpStream::connect(gw.public).await.unwrap();
    s.write_all(format!("POST {USSD} HTTP/1.1\r\nHost: t\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, s.read_to_end(&mut buf)).await;
    assert!(buf.is_empty(), "{:?}", String::from_utf8_lossy(&buf));
    println!("half a head: closed after {:?}", started.elapsed());
    // Counted once the connections have ended.
    let deadline = Instant::now() + TIMEOUT;
    let want = [
        ("head_too_large", 2.0),
        ("malformed", 2.0),
        ("head_timeout", 1.0),
    ];
    loop {
        let mut got = Vec::new();
        for (reason, _) in want {
            got.push((reason, gw.metric(&refused(reason)).await));
        }
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "counted: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not in any webhook series (no channel is known), and a real hop
    // still works.
    let metrics = request(gw.admin, "GET", "/metrics", &[], b"").await.body;
    let webhook: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("hotline_webhook_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(webhook, 0.0);
    let r = gw.ussd("ATUid_after", "+996555710003", "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("CON "), "{}", r.body);
    // The admin listener is private: what it refuses is not counted.
    let s = TcpStream::connect(gw.admin).await.unwrap();
    assert_eq!(exchange(s, b"HELLO THERE\r\n\r\n").await.status, 400);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gw.metric(&refused("malformed")).await, 2.0);
    gw.stop().await;
}

/// Timeouts long enough that nothing closes on its own during a test:
/// only making room can free a slot.
const NO_TIMEOUTS: [&str; 4] = [
    "header_read_timeout_ms = 120000",
    "body_read_timeout_ms = 120000",
    "request_timeout_ms = 120000",
    "idle_timeout_ms = 120000",
];

const EVICTED: &str = r#"hotline_connections_closed_total{reason="evicted"}"#;

/// Wait (generously) until `series` reads `want`.
async fn metric_reaches(gw: &Gateway, series: &str, want: f64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = gw.metric(series).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{series}: {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the server closed `s` (end-of-file or a reset) within a moment.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), s.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// All `server.max_connections` taken by sockets that never finish a head
/// (silent ones and slowloris ones dribbling headers): a new connection
/// takes the place of the oldest, so an honest hop is answered instead of
/// waiting in the kernel's backlog until a flooding socket gives up (here
/// never: every timeout is two minutes). Each room made is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_house_of_silent_and_slow_sockets_makes_room_for_an_honest_hop() {
    let mut lines = vec!["max_connections = 8"];
    lines.extend(NO_TIMEOUTS);
    let gw = Gateway::start_with(&config(&lines), &[], None, Clock::System).await;
    assert_eq!(gw.metric(EVICTED).await, 0.0);
    // 16 flooding sockets from 8 addresses, half silent, half slowloris:
    // the last 8 each make room by closing one of the first 8, and the
    // honest hop closes the 9th.
    let mut flood = Vec::new();
    for i in 0..16 {
        let mut s = connect_from(ip(&format!("127.0.3.{}", 1 + i % 8)), gw.public).await;
        if i % 2 == 1 {
            s.write_all(format!("POST {USSD} HTTP/1.1\r\nHost: t\r\nX-a: b\r\n").as_bytes())
                .await
                .unwrap();
        }
        flood.push(s);
    }
    // Keep the slowloris ones dribbling while the honest hop comes.
    for s in flood.iter_mut().skip(9).step_by(2) {
        let _ = s.write_all(b"X-b: c\r\n").await;
    }
    let started = Instant::now();
    let s = connect_from(ip("127.0.0.2"), gw.public).await;
    let body = hop_body("ATUid_full_house", "+996555710001", "");
    let r = exchange(s, &post(USSD, &[], &body)).await;
    println!(
        "honest hop with all 8 slots flooded: {} in {:.1} ms",
        r.status,
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("CON "), "{}", r.body);
    metric_reaches(&gw, EVICTED, 9.0).await;
    // The oldest made room: the first 8 flooding sockets and the 9th are
    // closed, the 7 newest still open.
    let mut closed = Vec::new();
    for s in &mut flood {
        closed.push(closed_by_server(s).await);
    }
    assert_eq!(
        closed,
        [[true; 9].as_slice(), [false; 7].as_slice()].concat(),
        "closed, oldest first"
    );
    drop(flood);
    gw.stop().await;
}

/// A request being served is never closed to make room, however long its
/// body takes and however many newcomers arrive: only connections still
/// waiting for their first head give way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_in_flight_is_never_closed_to_make_room() {
    let mut lines = vec!["max_connections = 2"];
    lines.extend(NO_TIMEOUTS);
    let gw = Gateway::start_with(&config(&lines), &[], None, Clock::System).await;
    // The oldest connection: a hop whose body arrives slowly. Its handler
    // has begun once the server asks for the body (100 Continue).
    let body = hop_body("ATUid_slow_in_flight", "+996555710002", "");
    let raw = post(USSD, &[("Expect", "100-continue")], &body);
    let (head, half) = (raw.len() - body.len(), raw.len() - body.len() / 2);
    let mut slow = connect_from(ip("127.0.0.3"), gw.public).await;
    slow.write_all(&raw[..head]).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(TIMEOUT, async {
        let mut chunk = [0u8; 256];
        while !got.ends_with(b"\r\n\r\n") {
            let n = slow.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before 100 Continue");
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("100 Continue in time");
    assert!(
        got.starts_with(b"HTTP/1.1 100"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    slow.write_all(&raw[head..half]).await.unwrap();
    // Twelve silent newcomers, one at a time: each takes the other slot.
    let mut silent = Vec::new();
    for i in 0..12u8 {
        silent.push(connect_from(ip(&format!("127.0.4.{}", 1 + i)), gw.public).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    metric_reaches(&gw, EVICTED, 11.0).await;
    // The slow hop's body ends: it is answered.
    slow.write_all(&raw[half..]).await.unwrap();
    let r = tokio::time::timeout(TIMEOUT, read_all(&mut slow))
        .await
        .expect("the slow request is answered");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("CON "), "{}", r.body);
    drop(silent);
    gw.stop().await;
}
