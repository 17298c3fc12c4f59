//! A real Kannel 1.4.5 (bearerbox + smsbox) for tests, and a fake phone.
//!
//! [`Kannel::start`] renders `tests/kannel/kannel.conf.tmpl` into a fresh
//! temporary folder with free ports, starts bearerbox and smsbox in the
//! foreground and waits until both are ready (see `tests/kannel/README.md`
//! for what "ready" means and why). Dropping it kills both.
//!
//! [`FakePhone`] plays the fake SMSC's client (what `fakesmsc` does) over a
//! plain TCP connection: it injects mobile-originated lines and reads the
//! mobile-terminated lines bearerbox writes, reassembling concatenated parts.
//!
//! No Kannel installed is a test failure with a clear message, never a skip.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long Kannel may take to come up (measured: about 1 s).
const STARTUP: Duration = Duration::from_secs(15);

/// The sendsms user's name.
pub const USERNAME: &str = "hotline";
/// The sendsms user's password.
pub const PASSWORD: &str = "kannel-pw";
const ADMIN_PASSWORD: &str = "admin-pw";

/// A running Kannel.
pub struct Kannel {
    /// bearerbox's admin HTTP port (`/status.txt`).
    pub admin_port: u16,
    /// bearerbox's port for smsbox.
    pub smsbox_port: u16,
    /// smsbox's sendsms HTTP port.
    pub sendsms_port: u16,
    /// The fake SMSC port bearerbox listens on ([`Kannel::phone`]).
    pub smsc_port: u16,
    /// Where inbound SMS go (`&from=%p&…` appended by the template).
    pub mo_url: String,
    bearerbox: Option<Child>,
    smsbox: Option<Child>,
    dir: tempfile::TempDir,
}

/// `name` from PATH, /usr/sbin or /usr/local/sbin (Debian puts Kannel's
/// boxes in /usr/sbin, which is not in every user's PATH).
fn kannel_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "these tests need a real Kannel: install kannel and kannel-extras \
                 (apt-get install kannel kannel-extras); `{name}` was not found in PATH, \
                 /usr/sbin or /usr/local/sbin"
            )
        })
}

/// `n` distinct free ports on 127.0.0.1 (all held until all are chosen).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

async fn port_open(port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(("127.0.0.1", port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// GET a path; `None` when nothing answers (yet).
async fn http_get(port: u16, path: &str) -> Option<super::Response> {
    tokio::time::timeout(Duration::from_secs(3), async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        if buf.is_empty() {
            return None;
        }
        Some(super::parse_response(&buf))
    })
    .await
    .ok()
    .flatten()
}

impl Kannel {
    /// Start Kannel; inbound SMS go to `mo_url`, which must carry its first
    /// query parameter (`http://127.0.0.1:P/webhooks/kannel/sms?secret=S`)
    /// and no `"` or `%`.
    pub async fn start(mo_url: &str) -> Kannel {
        assert!(
            mo_url.contains('?') && !mo_url.contains(['"', '%', '\n']),
            "mo_url must have a query and no '\"' or '%': {mo_url}"
        );
        let bearerbox = kannel_binary("bearerbox");
        let smsbox = kannel_binary("smsbox");
        let dir = tempfile::Builder::new()
            .prefix("hotline-kannel")
            .tempdir()
            .expect("temp dir");
        let ports = free_ports(4);
        let mut k = Kannel {
            admin_port: ports[0],
            smsbox_port: ports[1],
            sendsms_port: ports[2],
            smsc_port: ports[3],
            mo_url: mo_url.to_owned(),
            bearerbox: None,
            smsbox: None,
            dir,
        };
        let conf = k.render();
        k.bearerbox = Some(k.spawn(&bearerbox, &conf, "bearerbox.out"));
        // Admin HTTP opens before the smsbox port, and smsbox exits at once
        // if it cannot connect: wait for both.
        let (smsbox_port, admin_port) = (k.smsbox_port, k.admin_port);
        k.wait("bearerbox to listen", "bearerbox", || async move {
            port_open(smsbox_port).await
                && http_get(
                    admin_port,
                    &format!("/status.txt?password={ADMIN_PASSWORD}"),
                )
                .await
                .is_some_and(|r| r.status == 200)
        })
        .await;
        k.smsbox = Some(k.spawn(&smsbox, &conf, "smsbox.out"));
        let sendsms_port = k.sendsms_port;
        k.wait("smsbox to connect", "smsbox", || async move {
            http_get(
                admin_port,
                &format!("/status.txt?password={ADMIN_PASSWORD}"),
            )
            .await
            .is_some_and(|r| r.body.lines().any(|l| l.starts_with("Box connections:")))
                && port_open(sendsms_port).await
        })
        .await;
        k
    }

    fn render(&self) -> PathBuf {
        let tmpl = super::root().join("tests/kannel/kannel.conf.tmpl");
        let mut conf = std::fs::read_to_string(&tmpl).expect("tests/kannel/kannel.conf.tmpl");
        let dir = self.dir.path().display().to_string();
        for (k, v) in [
            ("WORKDIR", dir.as_str()),
            ("ADMIN_PORT", &self.admin_port.to_string()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("SMSBOX_PORT", &self.smsbox_port.to_string()),
            ("SENDSMS_PORT", &self.sendsms_port.to_string()),
            ("SMSC_PORT", &self.smsc_port.to_string()),
            ("SENDSMS_USER", USERNAME),
            ("SENDSMS_PASSWORD", PASSWORD),
            ("MO_URL", &self.mo_url),
        ] {
            conf = conf.replace(&format!("@{k}@"), v);
        }
        assert!(
            !conf.contains("@WORKDIR@") && !conf.contains("@MO_URL@"),
            "template not fully rendered"
        );
        let path = self.dir.path().join("kannel.conf");
        std::fs::write(&path, conf).expect("write kannel.conf");
        path
    }

    fn spawn(&self, binary: &Path, conf: &Path, out: &str) -> Child {
        // Console output to a file: a pipe nobody drains would block Kannel.
        let out = std::fs::File::create(self.dir.path().join(out)).expect("log file");
        let err = out.try_clone().expect("log file");
        Command::new(binary)
            .args(["-v", "2"])
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
    }

    /// Poll `ready` until true; fail with the logs when `box_name` exits or
    /// time runs out.
    async fn wait<F, Fut>(&mut self, what: &str, box_name: &str, ready: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + STARTUP;
        loop {
            if ready().await {
                return;
            }
            let child = match box_name {
                "bearerbox" => self.bearerbox.as_mut(),
                _ => self.smsbox.as_mut(),
            };
            if let Some(Ok(Some(status))) = child.map(Child::try_wait) {
                panic!(
                    "{box_name} exited ({status}) while waiting for {what}\n{}",
                    self.logs()
                );
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT/cgi-bin/sendsms`
    pub fn sendsms_url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", self.sendsms_port)
    }

    /// The work folder (config, logs, store).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// bearerbox's `status.txt`, when it answers.
    pub async fn status(&self) -> Option<String> {
        http_get(
            self.admin_port,
            &format!("/status.txt?password={ADMIN_PASSWORD}"),
        )
        .await
        .filter(|r| r.status == 200)
        .map(|r| r.body)
    }

    /// The last lines of every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in [
            "bearerbox.out",
            "smsbox.out",
            "bearerbox.log",
            "smsbox.log",
            "smsbox-access.log",
        ] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out.push_str(&format!("--- {name} (last {} lines)\n", tail.len()));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Connect the fake phone (the SMSC's only client) and wait until
    /// bearerbox reports the SMSC online. Messages sent before that were
    /// answered `3: Queued for later delivery` and arrive now.
    pub async fn phone(&self) -> FakePhone {
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            TcpStream::connect(("127.0.0.1", self.smsc_port)),
        )
        .await
        .expect("fake SMSC connect timed out")
        .expect("fake SMSC port accepts");
        let deadline = Instant::now() + STARTUP;
        loop {
            let status = self.status().await.unwrap_or_default();
            if status
                .lines()
                .any(|l| l.contains("FAKE:") && l.contains("(online"))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "fake SMSC never came online:\n{status}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (r, w) = stream.into_split();
        FakePhone {
            reader: BufReader::new(r),
            writer: w,
            parts: HashMap::new(),
        }
    }
}

impl Drop for Kannel {
    fn drop(&mut self) {
        for child in [self.smsbox.take(), self.bearerbox.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One mobile-terminated SMS as the phone got it: `(from, to, text)`.
pub type Mt = (String, String, String);

/// A concatenated message's parts belong together by (from, to, reference).
type PartsKey = (String, String, u16);

/// The fake SMSC's client: the phone side of every test conversation.
pub struct FakePhone {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Concatenated parts seen so far, by (from, to, reference).
    parts: HashMap<PartsKey, Vec<Option<Vec<u8>>>>,
}

/// Percent-encode every byte (fakesmsc's `ucs2` and `data` payloads).
fn encode_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// Decode Kannel's URL encoding of a payload: `%XX` a byte, `+` the byte
/// 0x20, anything else itself.
fn decode_payload(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        let hex = tail
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                rest = &tail[2..];
            }
            (b'+', _) => out.push(b' '),
            (c, _) => out.push(c),
        }
    }
    out
}

fn ucs2_to_string(bytes: &[u8]) -> String {
    let units = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Whether a concatenated payload (whose line does not say its coding) is
/// UCS-2: text never has control bytes, while UCS-2 of Latin, Cyrillic,
/// Kyrgyz or Georgian letters has a high byte below 0x20 in every unit.
fn looks_like_ucs2(bytes: &[u8]) -> bool {
    bytes.len().is_multiple_of(2)
        && bytes
            .iter()
            .step_by(2)
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
}

/// The concatenation info in a UDH: (reference, total, sequence).
fn concat_info(udh: &[u8]) -> Option<(u16, u8, u8)> {
    let mut i = 1; // skip the UDH length
    while i + 1 < udh.len() {
        let (iei, len) = (udh[i], usize::from(udh[i + 1]));
        let ie = udh.get(i + 2..i + 2 + len)?;
        match (iei, ie) {
            (0x00, &[r, total, seq]) => return Some((u16::from(r), total, seq)),
            (0x08, &[r1, r2, total, seq]) => {
                return Some((u16::from_be_bytes([r1, r2]), total, seq));
            }
            _ => {}
        }
        i += 2 + len;
    }
    None
}

impl FakePhone {
    /// Send an SMS from the phone. Printable ASCII goes as a `text` line;
    /// anything else (Cyrillic, newlines, even `é`) as `ucs2`, the way a
    /// handset sends non-GSM text, which Kannel recodes to UTF-8 for the
    /// gateway.
    pub async fn send_mo(&mut self, from: &str, to: &str, text: &str) {
        assert!(
            !from.contains(char::is_whitespace) && !to.contains(char::is_whitespace),
            "from and to must have no spaces"
        );
        let plain = !text.is_empty() && text.bytes().all(|b| (0x20..0x7f).contains(&b));
        let line = if plain {
            format!("{from} {to} text {text}\n")
        } else {
            let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
            format!("{from} {to} ucs2 {}\n", encode_all(&bytes))
        };
        self.send_raw(&line).await;
    }

    /// Write one raw fake-SMSC line (`FROM TO TYPE DATA\n`).
    pub async fn send_raw(&mut self, line: &str) {
        tokio::time::timeout(
            Duration::from_secs(5),
            self.writer.write_all(line.as_bytes()),
        )
        .await
        .expect("fake SMSC write timed out")
        .expect("fake SMSC write");
    }

    /// The next raw line bearerbox wrote, without its newline.
    pub async fn recv_line(&mut self, timeout: Duration) -> Option<String> {
        let mut buf = Vec::new();
        match tokio::time::timeout(timeout, self.reader.read_until(b'\n', &mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                while buf.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                    buf.pop();
                }
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
            Ok(Ok(_)) => panic!("bearerbox closed the fake SMSC connection"),
            Ok(Err(e)) => panic!("fake SMSC read failed: {e}"),
            Err(_) => None,
        }
    }

    /// The next whole SMS to the phone (`from`, `to`, `text`), parts of a
    /// concatenated message joined; `None` if none comes within `timeout`.
    pub async fn try_recv_mt(&mut self, timeout: Duration) -> Option<Mt> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self.recv_line(left).await?;
            if let Some(mt) = self.take_line(&line) {
                return Some(mt);
            }
        }
    }

    /// The next whole SMS to the phone; fails the test after `timeout`.
    pub async fn recv_mt(&mut self, timeout: Duration) -> Mt {
        self.try_recv_mt(timeout)
            .await
            .unwrap_or_else(|| panic!("no SMS reached the phone within {timeout:?}"))
    }

    /// Parse one MT line; `None` while a concatenated message is incomplete.
    fn take_line(&mut self, line: &str) -> Option<Mt> {
        let mut it = line.splitn(4, ' ');
        let (from, to, kind) = (it.next()?, it.next()?, it.next()?);
        let rest = it.next().unwrap_or("");
        let (from, to) = (from.to_owned(), to.to_owned());
        match kind {
            "text" => Some((from, to, rest.to_owned())),
            "ucs-2" | "ucs2" => Some((from, to, ucs2_to_string(&decode_payload(rest)))),
            "data" => Some((
                from,
                to,
                String::from_utf8_lossy(&decode_payload(rest)).into_owned(),
            )),
            "udh" => {
                let (udh, payload) = rest.split_once(' ').unwrap_or((rest, ""));
                // 1.4.5 writes `udh UDH data PAYLOAD`; older ones omit `data`.
                let payload = payload
                    .strip_prefix("data ")
                    .or_else(|| payload.strip_prefix("ucs-2 "))
                    .unwrap_or(payload);
                let udh = decode_payload(udh);
                let data = decode_payload(payload);
                let Some((reference, total, seq)) = concat_info(&udh) else {
                    return Some((from, to, decode_joined(&data)));
                };
                let key = (from.clone(), to.clone(), reference);
                let slots = self
                    .parts
                    .entry(key.clone())
                    .or_insert_with(|| vec![None; usize::from(total)]);
                if let Some(slot) = slots.get_mut(usize::from(seq).wrapping_sub(1)) {
                    *slot = Some(data);
                }
                if slots.iter().all(Option::is_some) {
                    let joined: Vec<u8> = self
                        .parts
                        .remove(&key)
                        .unwrap_or_default()
                        .into_iter()
                        .flatten()
                        .flatten()
                        .collect();
                    return Some((from, to, decode_joined(&joined)));
                }
                None
            }
            other => panic!("unexpected fake SMSC line type {other:?}: {line}"),
        }
    }
}

fn decode_joined(bytes: &[u8]) -> String {
    if looks_like_ucs2(bytes) {
        ucs2_to_string(bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}
