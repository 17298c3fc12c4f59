//! Test support: start the real server on port 0, speak raw HTTP/1.1 to it.
//!
//! The client is deliberately tiny and raw so tests control every byte
//! (oversized bodies, a body sent in two halves around a shutdown).
#![allow(dead_code)]

pub mod kannel;
pub mod mock;
pub mod redis;
pub mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hotline::app::App;
use hotline::clock::Clock;
use hotline::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every await in tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped default config's text.
pub fn default_config() -> String {
    std::fs::read_to_string(root().join("config/hotline.toml")).expect("default config")
}

/// The shipped default made ready for a channel with sending credentials,
/// which makes it a production configuration: without the demo `[dispatch]`
/// (a test adds its own, or has none: then its cases are handled
/// elsewhere), without the `console` channel (refused in production), and
/// with a fallback number that is not a placeholder.
pub fn with_real_channels(config: &str) -> String {
    let start = config
        .find("[dispatch]\n")
        .expect("the default has [dispatch]");
    let end = start
        + config[start..]
            .find("auto_close_days = 7\n")
            .expect("[dispatch] ends with auto_close_days")
        + "auto_close_days = 7\n".len();
    let config = format!("{}{}", &config[..start], &config[end..]);
    let console = config
        .find("# The development sink")
        .expect("the default has a console channel");
    config[..console]
        .replace("+996 000 000 000", "+996 312 000 111")
        .replace("+380 000 000 000", "+380 53 200 0111")
        .replace(
            "# cases_handled_elsewhere = false",
            "cases_handled_elsewhere = true",
        )
}

/// Copy the shipped default (config file, demo roster and phones, lawyers'
/// texts, flows) into `dir`, for tests that edit it and reload; returns
/// the config file's path.
pub fn copy_default_setup(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    for f in [
        "config/hotline.toml",
        "config/demo-roster.toml",
        "config/demo-roster.phones.toml",
        "config/lawyer_texts.toml",
        "flows/legal_help.toml",
    ] {
        std::fs::copy(root().join(f), dir.join(f)).unwrap();
    }
    dir.join("config/hotline.toml")
}

/// Replace `from` with `to` in the file at `path` (it must be there).
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// A running gateway.
pub struct Gateway {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub app: App,
    pub clock: Clock,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// The spool folder given to a gateway whose config left the shipped
    /// one (`var/spool` in the checkout), removed with it.
    _spool: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Start with config text (relative paths resolve against `config/`),
    /// extra environment, a store and a clock.
    pub async fn start_with(
        config: &str,
        env: &[(&str, &str)],
        store: Option<Arc<dyn Store>>,
        clock: Clock,
    ) -> Gateway {
        let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
        vars.insert("HOTLINE_LISTEN", "127.0.0.1:0");
        vars.insert("HOTLINE_ADMIN_LISTEN", "127.0.0.1:0");
        vars.insert(
            "HOTLINE_PII_KEY",
            "test-key-0123456789-0123456789-0123456789",
        );
        for (k, v) in env {
            vars.insert(k, v);
        }
        let (config, _) =
            match hotline::config::parse(config, "test.toml", &root().join("config"), &vars) {
                Ok(x) => x,
                Err(e) => panic!("test config invalid: {e:?}"),
            };
        Self::start_config(config, &vars, store, clock).await
    }

    /// Start with the config file at `path` (a reload reads it again),
    /// extra environment and a clock, on the memory store.
    pub async fn start_file(path: &Path, env: &[(&str, &str)], clock: Clock) -> Gateway {
        let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
        vars.insert("HOTLINE_LISTEN", "127.0.0.1:0");
        vars.insert("HOTLINE_ADMIN_LISTEN", "127.0.0.1:0");
        vars.insert(
            "HOTLINE_PII_KEY",
            "test-key-0123456789-0123456789-0123456789",
        );
        for (k, v) in env {
            vars.insert(k, v);
        }
        let (config, _) = match hotline::config::load(path, &vars) {
            Ok(x) => x,
            Err(e) => panic!("test config invalid: {e:?}"),
        };
        Self::start_config(config, &vars, None, clock).await
    }

    async fn start_config(
        mut config: hotline::config::Config,
        vars: &BTreeMap<&str, &str>,
        store: Option<Arc<dyn Store>>,
        clock: Clock,
    ) -> Gateway {
        // The shipped spool folder is the checkout's `var/spool`: shared by
        // every test and kept between runs, one test's spool would be
        // replayed (as an orphan) into another's store. Each gateway that
        // did not name a folder gets one of its own.
        let spool = config.store.spool_dir.starts_with(root()).then(|| {
            let dir = tempfile::tempdir().unwrap();
            config.store.spool_dir = dir.path().to_path_buf();
            dir
        });
        let store = match store {
            Some(s) => s,
            None => hotline::cli::build_store(&config)
                .await
                .expect("store connects"),
        };
        let (app, _) = match App::build(config, store, clock.clone(), vars) {
            Ok(x) => x,
            Err(problems) => panic!(
                "app does not build: {:#?}",
                problems.iter().map(ToString::to_string).collect::<Vec<_>>()
            ),
        };
        let public = TcpListener::bind(app.config.server.listen).await.unwrap();
        let admin = TcpListener::bind(app.config.server.admin_listen)
            .await
            .unwrap();
        let (public_addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(hotline::server::run(
            app.clone(),
            public,
            admin,
            async move {
                let _ = rx.await;
            },
        ));
        Gateway {
            public: public_addr,
            admin: admin_addr,
            app,
            clock,
            shutdown: Some(tx),
            task: Some(task),
            _spool: spool,
        }
    }

    /// Start the default config on a Redis, with its own key prefix and spool
    /// folder (`spool`), as one of possibly several instances.
    pub async fn start_redis(redis_url: &str, prefix: &str, spool: &Path) -> Gateway {
        let cfg = default_config().replace(
            "[store]\n",
            &format!(
                "[store]\nkey_prefix = {prefix:?}\nspool_dir = {:?}\n",
                spool.display().to_string()
            ),
        );
        Self::start_with(
            &cfg,
            &[("HOTLINE_REDIS_URL", redis_url)],
            None,
            Clock::System,
        )
        .await
    }

    /// Start the shipped default config.
    pub async fn start_default() -> Gateway {
        Self::start_with(&default_config(), &[], None, Clock::System).await
    }

    /// Signal shutdown (as SIGTERM would) without waiting.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Shut down and wait for `run` to return.
    pub async fn stop(mut self) {
        self.trigger_shutdown();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(TIMEOUT, task)
                .await
                .expect("server stops in time")
                .expect("server task did not panic")
                .expect("server returned Ok");
        }
    }

    /// Wait for `run` to return after a triggered shutdown.
    pub async fn join(mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(TIMEOUT, task)
                .await
                .expect("server stops in time")
                .expect("no panic")
                .expect("Ok");
        }
    }

    /// POST an Africa's Talking USSD hop.
    pub async fn ussd(&self, session: &str, phone: &str, text: &str) -> Response {
        let body = form(&[
            ("sessionId", session),
            ("serviceCode", "*384*1#"),
            ("phoneNumber", phone),
            ("networkCode", "43701"),
            ("text", text),
        ]);
        post_form(self.public, "/webhooks/africastalking/ussd", &body).await
    }

    /// The stored record of her live Africa's Talking USSD session, read
    /// back through the store's own `begin` (as the next hop would), under
    /// a probe's dedupe and rate keys so her own keys are left as they are.
    /// Panics when the session is not live.
    pub async fn stored_ussd_session(&self, session: &str, phone: &str) -> Vec<u8> {
        use hotline::store::{BUCKETS, Begin, BeginRequest, RateLimit, keys};
        let deps = &self.app.deps;
        let loaded = deps
            .store
            .begin(BeginRequest {
                bucket: deps.privacy.pseudonym(phone).bucket(BUCKETS),
                dedupe_key: format!("probe:{session}"),
                rate_key: format!("probe-{session}"),
                rate: RateLimit {
                    per_minute: 60,
                    burst: 10,
                },
                session_key: keys::ussd_session(
                    "africastalking",
                    session,
                    deps.privacy.pseudonym(phone).as_str(),
                ),
                dedupe_scope: None,
                now_ms: deps.clock.now_ms(),
            })
            .await
            .expect("the store answers");
        let Begin::Proceed(Some(rec)) = loaded else {
            panic!("her session is live: {loaded:?}");
        };
        rec.data
    }

    /// Takes every code the case of her Africa's Talking USSD session would
    /// be offered, with a filler case on each (recorded through the store's
    /// own `record_case`), so that her case finds none free. Returns them.
    pub async fn take_her_case_codes(&self, session: &str, phone: &str) -> Vec<String> {
        use hotline::store::{BUCKETS, keys};
        let deps = &self.app.deps;
        let pseudonym = deps.privacy.pseudonym(phone);
        let id = deps.privacy.case_id(
            &keys::ussd_session("africastalking", session, pseudonym.as_str()),
            0,
        );
        self.take_case_codes(pseudonym.bucket(BUCKETS), &id).await
    }

    /// Takes every code the case `id` in `bucket` would be offered, with a
    /// filler case on each (through the store's own `record_case`). A code
    /// this instance already leased for outages (Redis: the lease worker
    /// takes eight four-digit codes per bucket at start) is taken already:
    /// its filler finds no free code, as her case would.
    pub async fn take_case_codes(&self, bucket: u16, id: &str) -> Vec<String> {
        use hotline::store::{CODE_CANDIDATES, NewCase, StoreError, code_candidates};
        let deps = &self.app.deps;
        let codes = code_candidates(bucket, id, CODE_CANDIDATES);
        for code in &codes {
            let filler = NewCase {
                id: format!("filler-{code}"),
                code_candidates: vec![code.clone()],
                data: deps.privacy.seal(b"{}"),
                jobs: Vec::new(),
            };
            match deps
                .store
                .record_case(bucket, filler, deps.clock.now_ms())
                .await
            {
                Ok(got) => assert_eq!(&got, code, "the filler took its code"),
                Err(StoreError::CodesExhausted) => {} // leased already
                Err(e) => panic!("the store records a filler case: {e}"),
            }
        }
        codes
    }

    /// The value of one metric series on /metrics (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let r = request(self.admin, "GET", "/metrics", &[], b"").await;
        r.body
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }
}

/// Wait until the gateway's outbox is idle: nothing in flight, nothing left
/// in the store's outbox. Proves "nothing more will be sent" without
/// sleeping for a while and hoping.
pub async fn outbox_idle(gw: &Gateway) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !gw.app.outbox.idle().await.expect("store answers") {
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox never went idle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// URL-encode a form.
pub fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse a raw HTTP/1.1 response (read until the server closed).
pub fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Send one request with `Connection: close` and read the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    tokio::time::timeout(TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        // The server may answer early (413) and close; ignore write errors.
        let _ = s.write_all(body).await;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        parse_response(&buf)
    })
    .await
    .expect("request timed out")
}

/// POST a form body.
pub async fn post_form(addr: SocketAddr, path: &str, body: &str) -> Response {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .await
}

/// Path of the built binary.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hotline"))
}
