//! Support for the fault suite (`tests/faults.rs`): an Africa's Talking
//! messaging API whose failure mode the test switches at will (500, 429
//! with `Retry-After`, a hang past the send timeout, connection refused,
//! slow), a Redis started from the shipped `ops/redis/redis.conf`, the
//! real binary as a child process that can be SIGKILLed, callers that walk
//! USSD sessions without panicking on a dead instance, and the audit every
//! scenario ends with.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline::case::CaseData;
use hotline::privacy::Privacy;
use hotline::store::{BUCKETS, Store};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::common::{self as harness, Response};

/// The key the in-process harness uses; the binary gets the same one so
/// that the test can open what either instance sealed.
pub const PII_KEY: &str = "test-key-0123456789-0123456789-0123456789";

/// Русский (second for a +996 caller), Bishkek, help now, a place, this number.
pub const FINAL: &str = "2*1*1*Station 5*0";

/// The lawyers of the dispatch fixture roster, and their numbers.
pub const LAWYERS: [(&str, &str); 4] = [
    ("P_NURGUL", "+996555000100"),
    ("P_AIDA", "+996555000101"),
    ("P_BAKYT", "+996555000102"),
    ("P_CHOLPON", "+996555000103"),
];

const ROSTER: &str = include_str!("../fixtures/dispatch/roster.toml");

// ---------------------------------------------------------------------------
// The aggregator

/// How the aggregator answers a send right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 201 with a recipient accepted.
    Up,
    /// Accepts (the message will be sent) but answers only after this long.
    Slow(Duration),
    /// 500 Internal Server Error.
    Error500,
    /// 429 with `Retry-After` (seconds).
    TooMany(u64),
    /// Holds the request past the gateway's send timeout, then 503: the
    /// front end hung and sent nothing.
    Hang,
    /// Nothing listens: connection refused (open connections are closed).
    Refuse,
}

impl Mode {
    /// Whether a request answered in this mode reaches the recipient.
    fn delivers(self) -> bool {
        matches!(self, Mode::Up | Mode::Slow(_))
    }
}

/// One send the aggregator received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `username` form field: which instance sent it.
    pub username: String,
    /// Recipient.
    pub to: String,
    /// Text.
    pub message: String,
    /// The mode it arrived in.
    pub mode: Mode,
    /// Whether the aggregator took it (it will reach the recipient).
    pub delivered: bool,
    /// Whether the answer has been written (false: still held).
    pub answered: bool,
}

/// The Africa's Talking messaging API, switchable between failure modes.
#[derive(Clone)]
pub struct Aggregator {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    mode: Arc<watch::Sender<Mode>>,
}

impl Aggregator {
    /// Start on a free port, up.
    pub async fn start() -> Aggregator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(Mode::Up);
        let seen = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(listen(addr, Some(listener), rx, seen.clone()));
        Aggregator {
            url: format!("http://{addr}"),
            seen,
            mode: Arc::new(tx),
        }
    }

    /// Switch the failure mode.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Every send received so far.
    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// Sends that reach their recipient.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.delivered)
            .collect()
    }

    /// Sends from `username` held right now (accepted, not yet answered).
    pub fn in_flight(&self, username: &str) -> usize {
        self.received()
            .iter()
            .filter(|r| r.username == username && !r.answered)
            .count()
    }
}

/// Accept while the mode is not `Refuse`; while it is, nothing listens
/// and every open connection is closed.
async fn listen(
    addr: SocketAddr,
    mut listener: Option<tokio::net::TcpListener>,
    mut mode: watch::Receiver<Mode>,
    seen: Arc<Mutex<Vec<Received>>>,
) {
    let ids = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        if *mode.borrow_and_update() == Mode::Refuse {
            listener = None;
            if mode.wait_for(|m| *m != Mode::Refuse).await.is_err() {
                return;
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match bind_again(addr).await {
                Some(l) => l,
                None => return,
            },
        };
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = mode.changed() => { listener = Some(l); continue; }
        };
        listener = Some(l);
        let Ok((stream, _)) = accepted else { continue };
        let (seen, ids, now, mut closed) = (seen.clone(), ids.clone(), mode.clone(), mode.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(seen.clone(), *now.borrow(), req, ids.clone()));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = closed.wait_for(|m| *m == Mode::Refuse) => {}
            }
        });
    }
}

/// Rebind the same port after a refusal (tokio sets SO_REUSEADDR).
async fn bind_again(addr: SocketAddr) -> Option<tokio::net::TcpListener> {
    for _ in 0..200 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Record one send and answer it as `mode` says.
async fn answer(
    seen: Arc<Mutex<Vec<Received>>>,
    mode: Mode,
    req: http::Request<hyper::body::Incoming>,
    ids: Arc<std::sync::atomic::AtomicU64>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let index = {
        let mut s = seen.lock().unwrap();
        s.push(Received {
            username: field("username"),
            to: field("to"),
            message: field("message"),
            mode,
            delivered: mode.delivers(),
            answered: false,
        });
        s.len() - 1
    };
    let (status, body, headers) = match mode {
        Mode::Up | Mode::Slow(_) => {
            if let Mode::Slow(d) = mode {
                tokio::time::sleep(d).await;
            }
            let id = ids.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (201, at_reply(&field("to"), id), vec![])
        }
        Mode::TooMany(secs) => (
            429,
            "Too Many Requests".into(),
            vec![("Retry-After", secs.to_string())],
        ),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (503, "Service Unavailable".into(), vec![])
        }
        _ => (500, "Internal Server Error".into(), vec![]),
    };
    seen.lock().unwrap()[index].answered = true;
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        r.headers_mut()
            .insert(k, http::HeaderValue::from_str(&v).unwrap());
    }
    Ok(r)
}

/// Africa's Talking's answer to an accepted send.
fn at_reply(to: &str, id: u64) -> String {
    serde_json::json!({"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [
        {"statusCode": 101, "number": to, "status": "Success", "cost": "KES 0.8",
         "messageId": format!("ATXid_{id}")}
    ]}})
    .to_string()
}

// ---------------------------------------------------------------------------
// Config

/// Settings of one gateway instance in a scenario.
pub struct Setup<'a> {
    /// The aggregator's base URL.
    pub api: &'a str,
    /// Africa's Talking `username`: tells the instances' sends apart.
    pub username: &'a str,
    /// The spool folder.
    pub spool: &'a Path,
    /// A folder for the roster file.
    pub dir: &'a Path,
    /// Extra `[outbox]` lines.
    pub outbox: &'a str,
}

/// The shipped default config with dispatch on (the fixture roster: aida
/// or bakyt on call in Bishkek, nurgul the coordinator), Africa's Talking
/// sending to the test's aggregator, every path absolute (the binary reads
/// it from a temporary folder).
pub fn config(s: &Setup<'_>) -> String {
    std::fs::write(s.dir.join("roster.toml"), ROSTER).unwrap();
    let root = harness::root();
    let texts = root.join("config/lawyer_texts.toml");
    let cfg = harness::with_real_channels(&harness::default_config())
        .replace(
            "# secret_env = \"HOTLINE_AT_SECRET\"",
            &format!(
                "username = {:?}\napi_key_env = \"HOTLINE_AT_API_KEY\"\nbase_url = {:?}",
                s.username, s.api
            ),
        )
        .replace(
            "[store]\n",
            &format!("[store]\nspool_dir = {:?}\n", s.spool.display().to_string()),
        )
        .replace(
            "dir = \"../flows\"",
            &format!("dir = {:?}", root.join("flows").display().to_string()),
        )
        .replace(
            "[flows]",
            &format!(
                "[outbox]\n{}\n\n[dispatch]\nroster = {:?}\ntexts = {:?}\nsms_channel = \"africastalking\"\n\n[flows]",
                s.outbox,
                s.dir.join("roster.toml").display().to_string(),
                texts.display().to_string()
            ),
        );
    assert!(
        cfg.contains("base_url = \"http"),
        "the default config changed shape"
    );
    cfg
}

/// Environment every instance gets (besides the Redis URL).
pub fn env() -> Vec<(&'static str, &'static str)> {
    let mut v = vec![("HOTLINE_AT_API_KEY", "k")];
    v.extend(LAWYERS);
    v
}

// ---------------------------------------------------------------------------
// The real binary

/// `hotline serve` as a child process.
pub struct Binary {
    child: Option<Child>,
    /// Webhook listener.
    pub public: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// Every line it logged after "hotline listening", as it comes.
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Binary {
    /// Start `hotline serve --config FILE` on a Redis; wait for its
    /// "hotline listening" line.
    // The child is killed and waited for by `kill` or `Drop`.
    #[allow(clippy::zombie_processes)]
    pub fn start(
        config: &Path,
        redis_url: &str,
        listen: Option<(SocketAddr, SocketAddr)>,
    ) -> Binary {
        let (public, admin) = listen.map_or(
            ("127.0.0.1:0".to_owned(), "127.0.0.1:0".to_owned()),
            |(p, a)| (p.to_string(), a.to_string()),
        );
        let mut cmd = Command::new(harness::binary());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("HOTLINE_LISTEN", public)
            .env("HOTLINE_ADMIN_LISTEN", admin)
            .env("HOTLINE_LOG_FORMAT", "json")
            .env("HOTLINE_PII_KEY", PII_KEY)
            .env("HOTLINE_REDIS_URL", redis_url)
            .env("RUST_LOG", "warn,hotline=info")
            .env_remove("HOTLINE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the hotline binary starts");
        let (tx, rx) = std::sync::mpsc::channel();
        // Both pipes are drained for the child's whole life (a full pipe
        // would block it).
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no 'hotline listening' line; saw: {seen:#?}"));
            if line.contains("hotline listening") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                // Keep draining, into `lines`.
                let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let kept = lines.clone();
                std::thread::spawn(move || {
                    while let Ok(l) = rx.recv() {
                        kept.lock().unwrap().push(l);
                    }
                });
                return Binary {
                    child: Some(child),
                    public: v["public"].as_str().unwrap().parse().unwrap(),
                    admin: v["admin"].as_str().unwrap().parse().unwrap(),
                    lines,
                };
            }
            seen.push(line);
        }
    }

    /// The lines logged so far (after "hotline listening").
    pub fn logged(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Wait (up to 30 s) until a logged line contains `needle`; returns
    /// every line logged so far.
    pub fn log_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.logged();
            if lines.iter().any(|l| l.contains(needle)) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}; saw: {lines:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Redis with the shipped config

/// A `redis-server` run from `ops/redis/redis.conf` as shipped — AOF
/// persistence, `noeviction`, the ACL users its comments tell operators to
/// create — with only the port, folder, bind address and log file changed
/// (and `supervised no`: no systemd here).
pub struct ShippedRedis {
    child: Option<Child>,
    /// The port.
    pub port: u16,
    /// The config file written for it.
    conf: PathBuf,
    /// Its folder (AOF and RDB files), kept across restarts.
    pub dir: tempfile::TempDir,
}

/// The `hotline` ACL user's password in [`ShippedRedis`].
const HOTLINE_PW: &str = "hotline-pw-0123456789";
const ADMIN_PW: &str = "admin-pw-0123456789";
/// The `ops` ACL user's password in [`ShippedRedis`] (the runbook's `rc`).
pub const OPS_PW: &str = "ops-pw-0123456789";

impl ShippedRedis {
    /// Start it on a free port. `grant_default`: give the disabled
    /// `default` user every permission (it stays `off`: nobody can log in
    /// as it) — the workaround for Redis dropping transactions from the
    /// AOF at load when `default` may not run them (redis/redis#14541).
    pub fn start(grant_default: bool) -> ShippedRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = harness::redis::free_port();
        let shipped =
            std::fs::read_to_string(harness::root().join("ops/redis/redis.conf")).unwrap();
        // The users the comments tell operators to write to users.acl, with
        // plain passwords in place of the shell's hashes.
        let acl: Vec<String> = shipped
            .lines()
            .filter_map(|l| l.strip_prefix("#   user "))
            .map(|l| {
                format!("user {l}")
                    .replace("#$(h \"$HOTLINE_PW\")", &format!(">{HOTLINE_PW}"))
                    .replace("#$(h \"$OPS_PW\")", &format!(">{OPS_PW}"))
                    .replace("#$(h \"$ADMIN_PW\")", &format!(">{ADMIN_PW}"))
            })
            .collect();
        assert!(
            acl.iter().any(|l| l.starts_with("user hotline on >")),
            "ops/redis/redis.conf no longer documents the hotline ACL user: {acl:#?}"
        );
        let mut acl = acl;
        if grant_default {
            for l in &mut acl {
                if l == "user default off" {
                    l.push_str(" ~* &* +@all");
                }
            }
        }
        std::fs::write(dir.path().join("users.acl"), acl.join("\n") + "\n").unwrap();
        let replaced = [
            "bind ",
            "port ",
            "dir ",
            "aclfile ",
            "supervised ",
            "logfile ",
        ];
        let mut conf: Vec<String> = shipped
            .lines()
            .filter(|l| !replaced.iter().any(|r| l.starts_with(r)))
            .map(str::to_owned)
            .collect();
        assert!(
            conf.iter().any(|l| l == "appendonly yes"),
            "the shipped config persists with AOF"
        );
        conf.extend([
            format!("port {port}"),
            "bind 127.0.0.1".to_owned(),
            format!("dir {}", dir.path().display()),
            format!("aclfile {}", dir.path().join("users.acl").display()),
            format!("logfile {}", dir.path().join("redis.log").display()),
            "supervised no".to_owned(),
        ]);
        let path = dir.path().join("redis.conf");
        std::fs::write(&path, conf.join("\n") + "\n").unwrap();
        let mut r = ShippedRedis {
            child: None,
            port,
            conf: path,
            dir,
        };
        r.spawn();
        r
    }

    /// The URL hotline uses: the `hotline` ACL user.
    pub fn url(&self) -> String {
        format!("redis://hotline:{HOTLINE_PW}@127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.admin("PING").as_deref() != Some("+PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server did not come up; its log:\n{}",
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One inline command as the `admin` user; the reply's first line.
    pub fn admin(&self, cmd: &str) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("AUTH admin {ADMIN_PW}\r\n{cmd}\r\n").as_bytes())
            .ok()?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        line.clear();
        r.read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }

    /// Lines of its log that say it refused to load part of its AOF.
    pub fn aof_errors(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("redis.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("AOF-loading-client"))
            .count()
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again: same port, same folder, same config (it loads its AOF).
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Freeze it (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Thaw it (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis runs").id().to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    }
}

impl Drop for ShippedRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Callers

/// POST one Africa's Talking USSD hop; a dead or hung instance is an
/// `Err`, never a panic.
pub async fn try_ussd(
    addr: SocketAddr,
    session: &str,
    phone: &str,
    text: &str,
) -> Result<Response, String> {
    let body = harness::form(&[
        ("sessionId", session),
        ("serviceCode", "*384*1#"),
        ("phoneNumber", phone),
        ("networkCode", "43701"),
        ("text", text),
    ]);
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let head = format!(
            "POST /webhooks/africastalking/ussd HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(body.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        if !buf.starts_with(b"HTTP/1.1 ") {
            return Err("no answer".to_owned());
        }
        Ok(harness::parse_response(&buf))
    };
    match tokio::time::timeout(Duration::from_secs(15), exchange).await {
        Ok(r) => r,
        Err(_) => Err("timed out".to_owned()),
    }
}

/// Every cumulative `text` of a walk to `full`: "", "2", "2*1", …
pub fn prefix_texts(full: &str) -> Vec<String> {
    let parts: Vec<&str> = full.split('*').collect();
    (0..=parts.len()).map(|n| parts[..n].join("*")).collect()
}

/// The code on a last screen (`END Спасибо. Ваш код 4821. …`).
pub fn code_in(screen: &str) -> Option<String> {
    let (_, rest) = screen.split_once("код ")?;
    let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (code.len() >= 4).then_some(code)
}

/// One woman's walk through the menu.
#[derive(Debug, Clone)]
pub struct Walk {
    /// The aggregator's session id.
    pub session: String,
    /// Her number.
    pub phone: String,
    /// Her last screen, if she got one (`END …`).
    pub last: Option<String>,
    /// The code on it.
    pub code: Option<String>,
    /// Hops that had to be sent again (to the same or another instance)
    /// because no answer came.
    pub resent: usize,
}

/// Walk one session to the end. A hop that gets no answer (a dead
/// instance, a refused connection, a 5xx) is sent again, to the next
/// target, as a load balancer would, for up to `patience`.
pub async fn walk(targets: &[SocketAddr], first: usize, session: &str, phone: &str) -> Walk {
    let mut w = Walk {
        session: session.to_owned(),
        phone: phone.to_owned(),
        last: None,
        code: None,
        resent: 0,
    };
    let mut t = first;
    for text in prefix_texts(FINAL) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let body = loop {
            match try_ussd(targets[t % targets.len()], session, phone, &text).await {
                Ok(r) if r.status == 200 => break r.body,
                _ if Instant::now() < deadline => {
                    w.resent += 1;
                    t += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(r) => {
                    eprintln!(
                        "{session} at {text:?}: gave up after {} resends; last answer {} {}",
                        w.resent, r.status, r.body
                    );
                    return w;
                }
                Err(e) => {
                    eprintln!(
                        "{session} at {text:?}: gave up after {} resends; {e}",
                        w.resent
                    );
                    return w;
                }
            }
        };
        if body.starts_with("END ") {
            w.code = code_in(&body);
            w.last = Some(body);
            return w;
        }
        assert!(body.starts_with("CON "), "{session} at {text:?}: {body}");
        if text == FINAL {
            eprintln!("{session}: her last answer got {body:?}");
        }
    }
    w
}

/// Callers walking sessions one after another until stopped.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    done: Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Walk>>>,
}

impl Load {
    /// `callers` callers, each starting on its own target. Sessions are
    /// `ATUid_{tag}_{caller}_{n}`, numbers `+99670{caller}{n:06}`.
    /// `pause`: between one caller's sessions.
    pub fn start(tag: &str, callers: usize, targets: &[SocketAddr], pause: Duration) -> Load {
        assert!(callers <= 10);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks = (0..callers)
            .map(|c| {
                let (stop, done, targets) = (stop.clone(), done.clone(), targets.to_vec());
                let tag = tag.to_owned();
                tokio::spawn(async move {
                    let mut walks = Vec::new();
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let session = format!("ATUid_{tag}_{c}_{n}");
                        let phone = format!("+99670{c}{n:06}");
                        walks.push(walk(&targets, c, &session, &phone).await);
                        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        n += 1;
                        tokio::time::sleep(pause).await;
                    }
                    walks
                })
            })
            .collect();
        Load { stop, done, tasks }
    }

    /// Sessions walked to the end (or given up) so far.
    pub fn done(&self) -> usize {
        self.done.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wait (bounded) until `n` more sessions have been walked.
    pub async fn walk_more(&self, n: usize) {
        let target = self.done() + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.done() < target {
            assert!(
                Instant::now() < deadline,
                "callers stalled at {}",
                self.done()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop after the sessions in progress; every walk.
    pub async fn finish(self) -> Vec<Walk> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("caller did not panic"));
        }
        all
    }
}

// ---------------------------------------------------------------------------
// The audit

/// What an audit found.
#[derive(Debug, Default)]
pub struct Figures {
    /// Sessions walked.
    pub sessions: usize,
    /// Sessions whose last screen showed a code.
    pub codes_shown: usize,
    /// Sessions that ended without a code (the `unavailable` screen).
    pub no_code: usize,
    /// Sessions that never got a last screen.
    pub no_answer: usize,
    /// Cases in the store.
    pub cases: usize,
    /// Cases of sessions whose woman saw no code.
    pub cases_without_code: usize,
    /// Codes shown to more than one woman.
    pub duplicate_codes: usize,
    /// Codes shown whose case is not in the store.
    pub lost: usize,
    /// Codes shown that open another case, or another woman's.
    pub wrong: usize,
    /// Codes shown that find her case as its alias (recorded meanwhile
    /// under another code; see `Store::record_leased_case`).
    pub aliased: usize,
    /// Cases no session explains.
    pub strays: usize,
    /// Offers the aggregator took.
    pub offers: usize,
    /// Offers taken more than once (a case's offer taken n times counts n-1).
    pub duplicate_offers: usize,
    /// Cases with no offer taken.
    pub unoffered: usize,
}

/// Every case in the store: id → (code, caller).
async fn all_cases(
    store: &dyn Store,
    privacy: &Privacy,
) -> BTreeMap<String, (String, Option<String>)> {
    let mut all = BTreeMap::new();
    for b in 0..BUCKETS {
        for id in store.case_ids(b, false).await.expect("store answers") {
            let rec = store
                .case(b, &id)
                .await
                .expect("store answers")
                .expect("listed case exists");
            let data: CaseData = privacy.open_json(&rec.data).expect("case opens");
            all.insert(id, (rec.code, data.caller.map(|c| c.as_str().to_owned())));
        }
    }
    all
}

/// The audit every scenario ends with: every code a woman saw is exactly
/// one case, hers; no two women saw one code; every case's offer reached
/// the aggregator (waits up to `within` for the outbox to drain).
pub async fn audit(
    name: &str,
    store: &dyn Store,
    privacy: &Privacy,
    walks: &[Walk],
    agg: &Aggregator,
    within: Duration,
) -> Figures {
    let mut f = Figures {
        sessions: walks.len(),
        ..Figures::default()
    };
    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for w in walks {
        match (&w.last, &w.code) {
            (_, Some(code)) => {
                f.codes_shown += 1;
                *by_code.entry(code).or_default() += 1;
            }
            (Some(_), None) => f.no_code += 1,
            (None, None) => {
                eprintln!(
                    "{name}: {} got no last screen ({} hops resent)",
                    w.session, w.resent
                );
                f.no_answer += 1;
            }
        }
    }
    f.duplicate_codes = by_code.values().filter(|n| **n > 1).count();
    for w in walks {
        let Some(code) = &w.code else { continue };
        match store.case_by_code(code).await.expect("store answers") {
            None => {
                eprintln!("{name}: LOST code {code} shown to {}", w.session);
                f.lost += 1;
            }
            Some(rec) => {
                f.aliased += usize::from(rec.code != *code);
                let data: CaseData = privacy.open_json(&rec.data).expect("case opens");
                let caller = data.caller.as_ref().map(|c| c.as_str());
                // Every walk has a number of its own: a case is the walk's
                // when it is its caller's.
                if caller != Some(w.phone.as_str()) {
                    eprintln!(
                        "{name}: WRONG code {code} shown to {} opens another case",
                        w.session
                    );
                    f.wrong += 1;
                }
            }
        }
    }
    let cases = all_cases(store, privacy).await;
    f.cases = cases.len();
    let by_phone: BTreeMap<&str, &Walk> = walks.iter().map(|w| (w.phone.as_str(), w)).collect();
    assert_eq!(
        by_phone.len(),
        walks.len(),
        "{name}: a number of its own per walk"
    );
    let mut per_walk: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, (_, caller)) in &cases {
        match caller.as_deref().and_then(|c| by_phone.get(c)) {
            None => f.strays += 1,
            Some(w) => {
                *per_walk.entry(w.phone.as_str()).or_default() += 1;
                if w.code.is_none() {
                    f.cases_without_code += 1;
                    eprintln!("{name}: case {id} of a walk shown no code");
                }
            }
        }
    }
    // A walk opens one case: more is a stray.
    f.strays += per_walk.values().map(|n| n - 1).sum::<usize>();
    // Every case's offer reaches the aggregator; then nothing is left to send.
    // An offer starts with the case's code, or with its code and its alias
    // (`8516/2356 `, once the alias exists).
    let codes: BTreeSet<String> = cases.values().map(|(c, _)| c.clone()).collect();
    let offers_of = |code: &str| {
        agg.delivered()
            .iter()
            .filter(|r| {
                r.message.starts_with(&format!("{code} "))
                    || r.message.starts_with(&format!("{code}/"))
            })
            .count()
    };
    let deadline = Instant::now() + within;
    loop {
        let mut queued = 0;
        for b in 0..BUCKETS {
            queued += store
                .queue_len(b, hotline::store::Queue::Outbox)
                .await
                .unwrap_or(1);
        }
        let waiting = codes.iter().filter(|c| offers_of(c) == 0).count();
        if (queued == 0 && waiting == 0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f.offers = agg.delivered().len();
    for code in &codes {
        match offers_of(code) {
            0 => {
                eprintln!("{name}: case {code} has no offer at the aggregator");
                f.unoffered += 1;
            }
            n => f.duplicate_offers += n - 1,
        }
    }
    eprintln!(
        "{name}: {} sessions, {} codes shown ({} distinct), {} ended without a code, {} without an answer; \
         {} cases present ({} of women shown no code, {} strays); {} duplicate codes, {} lost, {} wrong, {} found as an alias; \
         {} offers taken, {} duplicate offers, {} cases unoffered",
        f.sessions,
        f.codes_shown,
        by_code.len(),
        f.no_code,
        f.no_answer,
        f.cases,
        f.cases_without_code,
        f.strays,
        f.duplicate_codes,
        f.lost,
        f.wrong,
        f.aliased,
        f.offers,
        f.duplicate_offers,
        f.unoffered
    );
    f
}

/// The assertions every scenario shares.
pub fn assert_sound(name: &str, f: &Figures) {
    assert!(
        f.codes_shown > 0,
        "{name}: no woman was shown a code: {f:?}"
    );
    assert_eq!(
        f.duplicate_codes, 0,
        "{name}: a code shown to two women: {f:?}"
    );
    assert_eq!(
        f.lost, 0,
        "{name}: a code shown whose case is missing: {f:?}"
    );
    assert_eq!(
        f.wrong, 0,
        "{name}: a code shown that is not her case's: {f:?}"
    );
    assert_eq!(f.strays, 0, "{name}: cases no session explains: {f:?}");
    assert_eq!(
        f.unoffered, 0,
        "{name}: cases whose offer never reached the aggregator: {f:?}"
    );
    assert_eq!(
        f.cases,
        f.codes_shown + f.cases_without_code,
        "{name}: {f:?}"
    );
}
