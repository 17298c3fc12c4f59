//! A real `redis-server` for tests: started on a free port in a temporary
//! folder (or the one named by `HOTLINE_TEST_REDIS_URL`), stopped on drop.
//! No Redis at all is a test failure with a clear message, never a skip.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Redis the test may use.
pub struct RedisServer {
    child: Option<Child>,
    /// `redis://127.0.0.1:PORT/`
    pub url: String,
    /// The port.
    pub port: u16,
    dir: Option<tempfile::TempDir>,
    /// Whether this process started it (and so may stop and restart it).
    pub owned: bool,
}

/// A free TCP port on 127.0.0.1.
///
/// Never the same port twice in one test process: a test that stops its
/// Redis and starts it again on the same port must not find that port
/// taken meanwhile by another test's Redis (tests of one file run at once,
/// and the kernel hands a freed port out again).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut handed = HANDED_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !handed.contains(&port) {
            handed.push(port);
            return port;
        }
    }
}

/// A free port whose Redis Cluster bus port (port + 10000) is free too: a
/// cluster node on any other port fails to start.
pub fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn redis_server_binary() -> String {
    let candidates = [
        "redis-server",
        "/usr/bin/redis-server",
        "/usr/local/bin/redis-server",
    ];
    for c in candidates {
        if Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
        {
            return c.to_owned();
        }
    }
    panic!(
        "these tests need a real Redis: install redis-server (apt-get install redis-server) \
         or set HOTLINE_TEST_REDIS_URL to a Redis the tests may write to"
    );
}

/// Send one inline command and read the first reply line.
pub fn command(port: u16, cmd: &str) -> Option<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    Some(line.trim_end().to_owned())
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if command(port, "PING").as_deref() == Some("+PONG") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server on port {port} did not answer PING within 10 s");
}

impl RedisServer {
    /// A Redis for tests that do not stop it: `HOTLINE_TEST_REDIS_URL` when
    /// set, else a fresh `redis-server`.
    pub fn shared_or_start() -> RedisServer {
        if let Ok(url) = std::env::var("HOTLINE_TEST_REDIS_URL") {
            let port = url
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').split('/').next()?.parse().ok())
                .unwrap_or(6379);
            return RedisServer {
                child: None,
                url,
                port,
                dir: None,
                owned: false,
            };
        }
        Self::start()
    }

    /// A fresh `redis-server` owned by this test.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut s = RedisServer {
            child: None,
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            dir: Some(dir),
            owned: true,
        };
        s.spawn(&[]);
        s
    }

    /// A fresh `redis-server` with extra arguments (cluster nodes).
    pub fn start_with(args: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = if args.contains(&"--cluster-enabled") {
            free_cluster_port()
        } else {
            free_port()
        };
        let mut s = RedisServer {
            child: None,
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            dir: Some(dir),
            owned: true,
        };
        s.spawn(args);
        s
    }

    fn spawn(&mut self, extra: &[&str]) {
        let dir = self.dir.as_ref().unwrap().path().to_path_buf();
        let mut cmd = Command::new(redis_server_binary());
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("redis-server starts"));
        wait_ready(self.port);
    }

    /// Stop it abruptly (as a crash would).
    pub fn stop(&mut self) {
        assert!(self.owned, "cannot stop a Redis this test does not own");
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port (empty: it keeps nothing on disk).
    pub fn restart(&mut self) {
        self.spawn(&[]);
    }

    /// Run a command through `redis-cli` and return its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs (apt-get install redis-tools)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A key prefix unique to one test, so tests sharing a Redis never collide.
pub fn unique_prefix(test: &str) -> String {
    format!("t{}{}", test.replace(['_', ' '], ""), rand_suffix())
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}", n & 0xffff_ffff)
}
