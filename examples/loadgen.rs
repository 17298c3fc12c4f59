//! The load generator of `load-tests/run.sh` (docs/performance.md): one
//! generator for the gateway and the floor servers, so every number in a
//! run's table comes from the same client.
//!
//! `loadgen run --target ADDR --workload ussd|flood|mixed --connections N
//!  --duration SECS [--rate R] [--scenario S] [--label L] [--hammers K]
//!  [--sms-rate R] [--mock ADDR] [--requests N] [--cities 1|3] [--round K]`
//!  prints one JSON object (`--round` only labels it: `steady` runs the
//!  gateway and its floor in turns, and `report` pairs them by round).
//!
//! - Without `--rate` (closed loop) each connection sends its next request as
//!   soon as the last is answered: the maximum throughput.
//! - With `--rate R` (open loop, like wrk2) requests are due at fixed times,
//!   R a second spread over the connections. A request's latency runs from
//!   when it was due if its connection was still busy then (the server's
//!   backlog counts: no coordinated omission), else from when it was sent
//!   (the generator's own timer lag does not count).
//! - `ussd`: each connection walks whole six-hop sessions of the legal-help
//!   flow, every session a new id and a new number (Africa's Talking form).
//! - `flood`: also `--hammers K` connections, each one number, as fast as
//!   they can; the report shows per group how many hops were refused (an
//!   `END` screen before the session's last hop).
//! - `sessions`: only the first hop of each session (`--requests N` caps
//!   the count): N live sessions, to measure the gateway's memory.
//! - `mixed`: USSD sessions and SMS from women, plus lawyers: `--mock ADDR`
//!   serves a mock Africa's Talking API that records every send; each offer
//!   (`4821 Бишкек, … NO 4821`) is answered at once by its lawyer with `OK 4821`
//!   through the SMS webhook; the dispatch latency is from a woman's last
//!   key press to her confirmation SMS at the mock.
//!
//! `LOADGEN_DEBUG=1` prints every SMS the mock receives, and every `END`
//! screen that ended a session early, to stderr.
//!
//! `loadgen report --in RESULTS.jsonl --out latest.json` prints the table
//! and writes the JSON; `loadgen port` prints a free loopback port.
//!
//! Loopback only; every loop is bounded by the duration, every request by
//! a 5 s timeout.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

type Error = Box<dyn std::error::Error + Send + Sync>;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A session's hops: language, city (`{c}`), situation, place, callback.
const STEPS: [&str; 6] = [
    "",
    "1",
    "1*{c}",
    "1*{c}*1",
    "1*{c}*1*Station 5",
    "1*{c}*1*Station 5*0",
];

/// Callers for `--cities 3`: (number prefix, menu choice) for Bishkek, Osh
/// (+996 callers) and Poltava (+380 callers), each with its own lawyer on
/// call: one lawyer's commands are rate-limited (120 a minute).
const CITIES: [(&str, &str); 3] = [("+99655", "1"), ("+99655", "2"), ("+38050", "1")];

// ---------------------------------------------------------------- client

/// One keep-alive HTTP/1.1 connection, raw: the cheapest client there is,
/// so the generator takes as little of the machine as it can.
struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Send a request; the status and body of the answer.
    async fn call(&mut self, req: &[u8]) -> Result<(u16, Vec<u8>), Error> {
        let r = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(req)).await;
        let r = r.unwrap_or_else(|_| Err("timeout".into()));
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    async fn exchange(&mut self, req: &[u8]) -> Result<(u16, Vec<u8>), Error> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let Some(s) = self.stream.as_mut() else {
            return Err("no connection".into());
        };
        s.write_all(req).await?;
        self.buf.clear();
        loop {
            if s.read_buf(&mut self.buf).await? == 0 {
                return Err("connection closed".into());
            }
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                if self.buf.len() > 64 * 1024 {
                    return Err("header too long".into());
                }
                continue;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or("bad status line")?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or("no content-length")?;
            let close = head.contains("connection: close");
            while self.buf.len() < end + 4 + len {
                if s.read_buf(&mut self.buf).await? == 0 {
                    return Err("connection closed in body".into());
                }
            }
            let body = self.buf[end + 4..end + 4 + len].to_vec();
            if close {
                self.stream = None;
            }
            return Ok((status, body));
        }
    }
}

fn post(path: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let body = serde_urlencoded::to_string(fields).unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------- work

/// What a connection sends next.
enum Gen {
    /// Whole USSD sessions; `fixed` numbers hammer (flood).
    Ussd {
        conn: usize,
        session: u64,
        step: usize,
        /// Hops per session: 6 (whole sessions) or 1 (only open them).
        hops: usize,
        /// How many cities sessions rotate over (1: Bishkek only).
        cities: u64,
        fixed: Option<String>,
    },
    /// A woman texting the short code.
    Sms { conn: usize, n: u64 },
}

/// One request and what to learn from its answer.
struct Next {
    req: Vec<u8>,
    /// USSD: this is the session's last hop.
    last: bool,
    phone: String,
}

/// Session counter shared by all connections (every session a new id and a
/// new number), from a start that differs per run:
/// several runs against one gateway (`scale`, `steady` then its half rate)
/// must not reuse a session id or a number — a reused id continues a
/// session of the earlier run, and the gateway ends it (an `END` counted
/// as refused, as the first version of this generator found).
static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// This run's start for [`SESSIONS`] (set once in `main`).
fn seed_sessions() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Runs start nanoseconds apart (seconds, in fact): their session ids
    // differ; numbers (the counter's last 7 digits) start anywhere.
    let start = u64::try_from(nanos % 10_000_000_000_000).unwrap_or(0);
    SESSIONS.store(start, Ordering::Relaxed);
}

/// Requests left to send when `--requests` caps the run.
static LEFT: AtomicU64 = AtomicU64::new(u64::MAX);

impl Gen {
    fn next(&mut self) -> Next {
        match self {
            Gen::Ussd {
                conn,
                session,
                step,
                hops,
                cities,
                fixed,
            } => {
                if *step == 0 {
                    *session = SESSIONS.fetch_add(1, Ordering::Relaxed);
                }
                let (prefix, choice) = CITIES[(*session % *cities) as usize];
                let phone = fixed
                    .clone()
                    .unwrap_or_else(|| format!("{prefix}{:07}", *session % 10_000_000));
                let text = STEPS[*step].replace("{c}", choice);
                let sid = format!("LT{conn}-{session}");
                let req = post(
                    "/webhooks/africastalking/ussd",
                    &[
                        ("sessionId", &sid),
                        ("serviceCode", "*384#"),
                        ("phoneNumber", &phone),
                        ("networkCode", "43701"),
                        ("text", &text),
                    ],
                );
                let last = *step == STEPS.len() - 1;
                *step = (*step + 1) % *hops;
                Next { req, last, phone }
            }
            Gen::Sms { conn, n } => {
                *n += 1;
                let phone = format!("+99677{:03}{:04}", *conn % 1000, *n % 10_000);
                let id = format!("LTsms{conn}-{n}");
                let req = post(
                    "/webhooks/africastalking/sms",
                    &[
                        ("from", &phone),
                        ("to", "21212"),
                        ("text", "HELP"),
                        ("id", &id),
                        ("date", "2026-11-30 04:00:00"),
                    ],
                );
                Next {
                    req,
                    last: false,
                    phone,
                }
            }
        }
    }

    fn is_ussd(&self) -> bool {
        matches!(self, Gen::Ussd { .. })
    }
}

/// Counts and latencies of one group of connections.
#[derive(Default)]
struct Stats {
    ok: u64,
    refused: u64,
    non2xx: u64,
    errors: u64,
    micros: Vec<u32>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.ok += o.ok;
        self.refused += o.refused;
        self.non2xx += o.non2xx;
        self.errors += o.errors;
        self.micros.extend(o.micros);
    }

    fn json(mut self, secs: f64) -> Value {
        self.micros.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.micros.is_empty() {
                return 0.0;
            }
            let i = ((p / 100.0) * (self.micros.len() - 1) as f64).round() as usize;
            f64::from(self.micros[i.min(self.micros.len() - 1)]) / 1000.0
        };
        let requests = self.ok + self.refused + self.non2xx + self.errors;
        json!({
            "requests": requests,
            "ok": self.ok,
            "refused": self.refused,
            "non2xx": self.non2xx,
            "errors": self.errors,
            "per_second": (requests as f64 / secs).round(),
            "p50_ms": pct(50.0), "p90_ms": pct(90.0), "p99_ms": pct(99.0),
            "p999_ms": pct(99.9), "max_ms": pct(100.0),
        })
    }
}

/// A session that opened a case: its code, her number, her last key press.
struct Ended {
    code: String,
    phone: String,
    at: Instant,
}

/// Whether a message to a lawyer is the offer of case `code`: it starts
/// with the code and ends with how to answer, `NO <code>` (every language
/// of `config/lawyer_texts.toml`: "… OK или NO 4821").
fn is_offer(msg: &str, code: &str) -> bool {
    msg.starts_with(code) && msg.trim_end().ends_with(&format!("NO {code}"))
}

/// The first run of four or more digits: the case code of an `END` screen.
fn code_in(text: &str) -> Option<String> {
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else if run.len() >= 4 {
            break;
        } else {
            run.clear();
        }
    }
    (run.len() >= 4).then_some(run)
}

/// When each request is due: `None` runs closed-loop.
#[derive(Clone, Copy)]
struct Pace {
    first: Instant,
    every: Duration,
}

async fn connection(
    target: SocketAddr,
    mut work: Gen,
    pace: Option<Pace>,
    deadline: Instant,
    ended: Option<Arc<Mutex<Vec<Ended>>>>,
) -> Stats {
    let mut client = Client::new(target);
    let mut stats = Stats::default();
    let mut k: u32 = 0;
    while Instant::now() < deadline {
        let ready = Instant::now();
        let from = match pace {
            None => ready,
            Some(p) => {
                let due = p.first + p.every * k;
                k += 1;
                if due >= deadline {
                    break;
                }
                if due > ready {
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                } else {
                    due
                }
            }
        };
        if LEFT
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
        {
            break;
        }
        let next = work.next();
        let r = client.call(&next.req).await;
        let done = Instant::now();
        match r {
            Ok((200..=299, body)) => {
                let text = String::from_utf8_lossy(&body);
                if work.is_ussd() && text.starts_with("END") && !next.last {
                    stats.refused += 1;
                    if std::env::var_os("LOADGEN_DEBUG").is_some() {
                        eprintln!("refused: {text}");
                    }
                    // The session is over: start a new one.
                    if let Gen::Ussd { step, .. } = &mut work {
                        *step = 0;
                    }
                } else {
                    stats.ok += 1;
                }
                if next.last
                    && let (Some(e), Some(code)) = (&ended, code_in(&text))
                    && let Ok(mut e) = e.lock()
                {
                    e.push(Ended {
                        code,
                        phone: next.phone,
                        at: from,
                    });
                }
            }
            Ok(_) => stats.non2xx += 1,
            Err(_) => stats.errors += 1,
        }
        stats
            .micros
            .push(u32::try_from((done - from).as_micros()).unwrap_or(u32::MAX));
    }
    stats
}

// ---------------------------------------------------------------- mock AT

/// Every SMS the gateway sent to the mock aggregator.
#[derive(Default)]
struct Sent {
    /// First message to each recipient that is not an offer, by number.
    first_to: HashMap<String, Instant>,
    /// First offer of each case code.
    offers: HashMap<String, Instant>,
    total: u64,
}

async fn mock_at(
    listener: TcpListener,
    sent: Arc<Mutex<Sent>>,
    accept: mpsc::UnboundedSender<(String, String)>,
) {
    let ids = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (sent, accept, ids) = (sent.clone(), accept.clone(), ids.clone());
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (sent, accept, ids) = (sent.clone(), accept.clone(), ids.clone());
            async move {
                let at = Instant::now();
                let body = Limited::new(req.into_body(), 64 * 1024)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let form: HashMap<String, String> =
                    serde_urlencoded::from_bytes(&body).unwrap_or_default();
                let to = form.get("to").cloned().unwrap_or_default();
                let msg = form.get("message").cloned().unwrap_or_default();
                if std::env::var_os("LOADGEN_DEBUG").is_some() {
                    eprintln!("mock: to={to} {msg}");
                }
                if let Ok(mut s) = sent.lock() {
                    s.total += 1;
                    match code_in(&msg).filter(|c| is_offer(&msg, c)) {
                        Some(code) if !s.offers.contains_key(&code) => {
                            s.offers.insert(code.clone(), at);
                            let _ = accept.send((to, code));
                        }
                        Some(_) => {}
                        None => {
                            s.first_to.entry(to).or_insert(at);
                        }
                    }
                }
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let reply = format!(
                    r#"{{"SMSMessageData":{{"Message":"Sent to 1/1","Recipients":[{{"statusCode":101,"number":"+996","status":"Success","cost":"KES 0.8","messageId":"ATXid_{id}"}}]}}}}"#
                );
                let mut r = http::Response::new(Full::new(Bytes::from(reply)));
                *r.status_mut() = http::StatusCode::CREATED;
                Ok::<_, Infallible>(r)
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Lawyers answer each offer at once: `OK <code>` from the number offered.
async fn lawyers(
    target: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<(String, String)>,
    deadline: Instant,
) -> Stats {
    let mut client = Client::new(target);
    let mut stats = Stats::default();
    let mut n = 0u64;
    while let Ok(Some((lawyer, code))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await {
        n += 1;
        let (text, id) = (format!("OK {code}"), format!("LTlawyer-{n}"));
        let req = post(
            "/webhooks/africastalking/sms",
            &[
                ("from", &lawyer),
                ("to", "21212"),
                ("text", &text),
                ("id", &id),
                ("date", "2026-11-30 04:00:00"),
            ],
        );
        let start = Instant::now();
        match client.call(&req).await {
            Ok((200..=299, _)) => stats.ok += 1,
            Ok(_) => stats.non2xx += 1,
            Err(_) => stats.errors += 1,
        }
        stats
            .micros
            .push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    stats
}

fn dispatch_json(ended: &[Ended], sent: &Sent) -> Value {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut offer = Vec::new();
    let mut confirm = Vec::new();
    for e in ended {
        if let Some(t) = sent.offers.get(&e.code) {
            offer.push(ms(t.saturating_duration_since(e.at)));
        }
        if let Some(t) = sent.first_to.get(&e.phone) {
            confirm.push(ms(t.saturating_duration_since(e.at)));
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| -> f64 {
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        (v[i.min(v.len() - 1)] * 100.0).round() / 100.0
    };
    json!({
        "cases": ended.len(),
        "offered": offer.len(),
        "confirmed": confirm.len(),
        "sms_sent_to_mock": sent.total,
        "offer_p50_ms": pct(&mut offer, 50.0),
        "offer_p99_ms": pct(&mut offer, 99.0),
        "dispatch_p50_ms": pct(&mut confirm, 50.0),
        "dispatch_p99_ms": pct(&mut confirm, 99.0),
        "dispatch_max_ms": pct(&mut confirm, 100.0),
    })
}

// ---------------------------------------------------------------- run

struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, Error> {
        let mut m = HashMap::new();
        for pair in args.chunks(2) {
            match pair {
                [k, v] if k.starts_with("--") => {
                    m.insert(k.trim_start_matches("--").to_owned(), v.clone());
                }
                _ => return Err(format!("bad arguments near {pair:?}").into()),
            }
        }
        Ok(Opts(m))
    }

    fn str(&self, k: &str, default: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| default.to_owned())
    }

    fn num(&self, k: &str, default: f64) -> Result<f64, Error> {
        match self.0.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{k} {v}: not a number").into()),
        }
    }
}

/// `n` connections at `rate` a second in all (0: closed loop).
fn paced(start: Instant, n: usize, rate: f64, i: usize) -> Option<Pace> {
    (rate > 0.0).then(|| Pace {
        first: start + Duration::from_secs_f64(i as f64 / rate),
        every: Duration::from_secs_f64(n as f64 / rate),
    })
}

async fn run(o: &Opts) -> Result<Value, Error> {
    let target: SocketAddr = o.str("target", "127.0.0.1:8080").parse()?;
    let workload = o.str("workload", "ussd");
    let conns = o.num("connections", 16.0)? as usize;
    let secs = o.num("duration", 10.0)?;
    let rate = o.num("rate", 0.0)?;
    if let Some(n) = o.0.get("requests") {
        LEFT.store(n.parse()?, Ordering::Relaxed);
    }
    let hops = if workload == "sessions" {
        1
    } else {
        STEPS.len()
    };
    let cities = (o.num("cities", 1.0)? as u64).clamp(1, 3);
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + Duration::from_secs_f64(secs);
    let ended = Arc::new(Mutex::new(Vec::new()));
    let mut tasks: Vec<(&str, tokio::task::JoinHandle<Stats>)> = Vec::new();
    for i in 0..conns.max(1) {
        let g = Gen::Ussd {
            conn: i,
            session: 0,
            step: 0,
            hops,
            cities,
            fixed: None,
        };
        let e = (workload == "mixed").then(|| ended.clone());
        let pace = paced(start, conns, rate, i);
        tasks.push((
            "ussd",
            tokio::spawn(connection(target, g, pace, deadline, e)),
        ));
    }
    if workload == "flood" {
        for h in 0..o.num("hammers", 3.0)? as usize {
            let g = Gen::Ussd {
                conn: 1000 + h,
                session: 0,
                step: 0,
                hops,
                cities: 1,
                fixed: Some(format!("+99670000{h:04}")),
            };
            tasks.push((
                "hammer",
                tokio::spawn(connection(target, g, None, deadline, None)),
            ));
        }
    }
    let mut mock = None;
    if workload == "mixed" {
        let sms_rate = o.num("sms-rate", (rate / 10.0).max(1.0))?;
        for i in 0..2 {
            let g = Gen::Sms { conn: i, n: 0 };
            let pace = paced(start, 2, sms_rate, i);
            tasks.push((
                "sms",
                tokio::spawn(connection(target, g, pace, deadline, None)),
            ));
        }
        let addr: SocketAddr = o.str("mock", "127.0.0.1:0").parse()?;
        let sent = Arc::new(Mutex::new(Sent::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let server = tokio::spawn(mock_at(TcpListener::bind(addr).await?, sent.clone(), tx));
        // Offers of the last sessions arrive after the deadline: lawyers
        // keep answering a little longer.
        let tail = deadline + Duration::from_secs(3);
        tasks.push(("lawyer", tokio::spawn(lawyers(target, rx, tail))));
        mock = Some((server, sent));
    }
    let mut groups: BTreeMap<&str, Stats> = BTreeMap::new();
    for (g, t) in tasks {
        groups.entry(g).or_default().merge(t.await?);
    }
    // A run capped by --requests ends early; mixed's lawyers run a little
    // past the deadline: rates are per second of the run proper.
    let secs = start.elapsed().as_secs_f64().min(secs);
    let mut out = json!({
        "scenario": o.str("scenario", &workload),
        "label": o.str("label", &target.to_string()),
        "workload": workload,
        "connections": conns,
        "rate": rate,
        "duration_s": secs,
    });
    if let Some(round) = o.0.get("round") {
        out["round"] = json!(round.parse::<u64>()?);
    }
    let gj: serde_json::Map<String, Value> = groups
        .into_iter()
        .map(|(g, s)| (g.to_owned(), s.json(secs)))
        .collect();
    out["groups"] = Value::Object(gj);
    if let Some((server, sent)) = mock {
        server.abort();
        let ended = ended.lock().map_err(|_| "poisoned")?;
        let sent = sent.lock().map_err(|_| "poisoned")?;
        out["dispatch"] = dispatch_json(&ended, &sent);
    }
    Ok(out)
}

// ---------------------------------------------------------------- report

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn report(o: &Opts) -> Result<(), Error> {
    let input = std::fs::read_to_string(o.str("in", "load-tests/results/run.jsonl"))?;
    // A run's JSON lines, or an earlier latest.json (to print it again).
    let records: Vec<Value> = match serde_json::from_str::<Value>(&input) {
        Ok(Value::Object(o)) if o.contains_key("records") => {
            o["records"].as_array().cloned().unwrap_or_default()
        }
        _ => input
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?,
    };
    println!(
        "{:<8} {:<22} {:>5} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "scenario", "label", "conns", "rate", "req/s", "p50 ms", "p99 ms", "refused", "errors"
    );
    for r in &records {
        let groups = r["groups"].as_object().cloned().unwrap_or_default();
        for (g, s) in &groups {
            let mut label = if groups.len() > 1 {
                format!("{} [{g}]", r["label"].as_str().unwrap_or(""))
            } else {
                r["label"].as_str().unwrap_or("").to_owned()
            };
            if let Some(round) = r["round"].as_u64() {
                label = format!("{label} #{round}");
            }
            println!(
                "{:<8} {:<22} {:>5} {:>8} {:>9} {:>8.2} {:>8.2} {:>8} {:>8}",
                r["scenario"].as_str().unwrap_or(""),
                label,
                r["connections"],
                if f(&r["rate"]) > 0.0 {
                    r["rate"].to_string()
                } else {
                    "max".into()
                },
                s["per_second"],
                f(&s["p50_ms"]),
                f(&s["p99_ms"]),
                s["refused"],
                f(&s["errors"]) + f(&s["non2xx"]),
            );
        }
        if let Some(kib) = r.get("rss_kib_after") {
            println!(
                "rss      {} live sessions: {:.1} MiB (idle {:.1} MiB)",
                r["sessions"],
                f(kib) / 1024.0,
                f(&r["rss_kib_before"]) / 1024.0
            );
        }
        if let Some(d) = r.get("dispatch") {
            println!("         dispatch: {d}");
        }
        if let Some(us) = r.get("cpu_us_per_request") {
            let mut redis = r
                .get("redis_cpu_us_per_request")
                .map(|v| format!(" + redis-server {:.1}", f(v)))
                .unwrap_or_default();
            if let Some(us) = r.get("redis_script_us_per_request") {
                redis.push_str(&format!(
                    " (scripts: {:.2} per request, {:.1} µs of it)",
                    f(&r["redis_scripts_per_request"]),
                    f(us)
                ));
            }
            println!(
                "cpu      {:<22} {} requests at {}/s: {:.1} µs of CPU per request{redis}",
                r["label"].as_str().unwrap_or(""),
                r["requests"],
                r["rate"],
                f(us),
            );
        }
    }
    let find = |scenario: &str, label: &str| {
        records
            .iter()
            .find(|r| r["scenario"] == scenario && r["label"] == label)
            .map(|r| r["groups"]["ussd"].clone())
    };
    let mut headline = serde_json::Map::new();
    // steady: closed-loop rounds of the gateway and its floor in turn, a
    // ratio per round (the same round number), and their median: the
    // machine's drift between two runs moves both sides of a round alike.
    for (name, num, den) in [
        ("redis_hop_vs_2rt_floor", "hotline-redis", "floor-redis"),
        ("memory_hop_vs_plain_hyper", "hotline-memory", "floor-plain"),
    ] {
        let rounds = |label: &str| -> BTreeMap<u64, f64> {
            records
                .iter()
                .filter(|r| r["scenario"] == "steady" && r["label"] == label)
                .map(|r| {
                    (
                        r["round"].as_u64().unwrap_or(0),
                        f(&r["groups"]["ussd"]["per_second"]),
                    )
                })
                .collect()
        };
        let (a, b) = (rounds(num), rounds(den));
        let mut ratios: Vec<f64> = a
            .iter()
            .filter_map(|(round, x)| b.get(round).map(|y| x / y.max(1.0)))
            .map(|r| (r * 1000.0).round() / 1000.0)
            .collect();
        if ratios.is_empty() {
            continue;
        }
        headline.insert(format!("{name}_rounds"), json!(ratios));
        ratios.sort_by(f64::total_cmp);
        headline.insert(name.into(), json!(ratios[ratios.len() / 2]));
    }
    for label in [
        "hotline-memory",
        "hotline-redis",
        "floor-plain",
        "floor-redis",
    ] {
        if let Some(h) = find("steady", &format!("{label}@half")) {
            headline.insert(format!("{label}_p99_ms_at_half_max"), h["p99_ms"].clone());
        }
    }
    // scale: the same ratios at each connection count (paired runs a few
    // seconds apart), and their median, steadier on a busy machine.
    for (name, num, den) in [
        (
            "scale_memory_vs_plain_hyper",
            "hotline-memory",
            "floor-plain",
        ),
        ("scale_redis_vs_2rt_floor", "hotline-redis", "floor-redis"),
    ] {
        let rate = |label: &str, c: &Value| {
            records
                .iter()
                .find(|r| r["scenario"] == "scale" && r["label"] == label && &r["connections"] == c)
                .map(|r| f(&r["groups"]["ussd"]["per_second"]))
        };
        let mut by_conns = serde_json::Map::new();
        let mut ratios = Vec::new();
        for r in records
            .iter()
            .filter(|r| r["scenario"] == "scale" && r["label"] == num)
        {
            if let (Some(a), Some(b)) = (rate(num, &r["connections"]), rate(den, &r["connections"]))
            {
                let ratio = (a / b.max(1.0) * 1000.0).round() / 1000.0;
                by_conns.insert(r["connections"].to_string(), json!(ratio));
                ratios.push(ratio);
            }
        }
        if !ratios.is_empty() {
            ratios.sort_by(f64::total_cmp);
            headline.insert(format!("{name}_median"), json!(ratios[ratios.len() / 2]));
            headline.insert(name.into(), Value::Object(by_conns));
        }
    }
    // cpu: CPU time per request at one fixed rate, and the floor's as a
    // fraction of the gateway's (the Redis ones with redis-server's).
    let cpu = |label: &str| {
        records
            .iter()
            .find(|r| r["scenario"] == "cpu" && r["label"] == label)
            .map(|r| f(&r["cpu_us_per_request"]) + f(&r["redis_cpu_us_per_request"]))
    };
    for (name, num, den) in [
        (
            "cpu_plain_hyper_vs_memory_hop",
            "floor-plain",
            "hotline-memory",
        ),
        ("cpu_2rt_floor_vs_redis_hop", "floor-redis", "hotline-redis"),
    ] {
        if let (Some(a), Some(b)) = (cpu(num), cpu(den)) {
            headline.insert(
                format!("cpu_us_{}", num.replace('-', "_")),
                json!((a * 10.0).round() / 10.0),
            );
            headline.insert(
                format!("cpu_us_{}", den.replace('-', "_")),
                json!((b * 10.0).round() / 10.0),
            );
            let ratio = a / b.max(f64::MIN_POSITIVE);
            headline.insert(name.into(), json!((ratio * 1000.0).round() / 1000.0));
        }
    }
    // Redis's own time in the scripts per request, floor and gateway.
    for label in ["floor-redis", "hotline-redis"] {
        if let Some(us) = records
            .iter()
            .find(|r| r["scenario"] == "cpu" && r["label"] == label)
            .and_then(|r| r.get("redis_script_us_per_request"))
        {
            headline.insert(
                format!("redis_script_us_{}", label.replace('-', "_")),
                json!((f(us) * 10.0).round() / 10.0),
            );
        }
    }
    if !headline.is_empty() {
        println!("headline: {}", Value::Object(headline.clone()));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let out = json!({
        "machine": {
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "loadavg_at_end": load.trim(),
            "note": o.str("note", ""),
        },
        "git": o.str("git", ""),
        "date": o.str("date", ""),
        "headline": headline,
        "records": records,
    });
    let path = o.str("out", "load-tests/results/latest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out)? + "\n")?;
    println!("wrote {path}");
    Ok(())
}

fn main() -> Result<(), Error> {
    seed_sessions();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("run") => {
            let o = Opts::parse(&args[1..])?;
            let out = rt.block_on(run(&o))?;
            println!("{out}");
            Ok(())
        }
        Some("report") => report(&Opts::parse(&args[1..])?),
        Some("port") => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(())
        }
        _ => Err("usage: loadgen run|report|port [--key value …] (see the file's doc)".into()),
    }
}
