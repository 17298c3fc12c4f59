//! Redis round trips and memory, measured on a real `redis-server` with
//! `MONITOR`: the gateway runs in-process on Redis with lawyer dispatch and
//! a mock aggregator; every command a client sends is counted (commands run
//! inside scripts, `[0 lua]`, are not round trips; the test's own commands
//! come from a connection it recognises and are left out).
//!
//! Measured: an idle instance, a six-hop USSD session that opens a case,
//! the offer it sends, a lawyer's `OK` with the messages it sends, and the
//! bytes of Redis each live session holds. The numbers are printed
//! (`cargo test --test round_trips -- --nocapture`) and kept in
//! `docs/performance.md`.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Gateway;
use common::mock::{MockResponse, MockServer};
use common::redis::RedisServer;
use hotline::clock::Clock;

/// 2026-12-01 10:00 in Bishkek: aida is on call.
const T0: u64 = 1_796_097_600_000;
const AIDA: &str = "+996555000101";
const ROSTER: &str = include_str!("fixtures/dispatch/roster.toml");
const PREFIX: &str = "rt";

/// One command a client sent, as `MONITOR` showed it.
#[derive(Debug, Clone)]
struct Seen {
    /// `127.0.0.1:port` of the client, or `lua`.
    client: String,
    /// The command and its arguments.
    args: Vec<String>,
}

impl Seen {
    fn verb(&self) -> String {
        self.args
            .first()
            .cloned()
            .unwrap_or_default()
            .to_uppercase()
    }

    /// The first key of a script call, or the first argument otherwise.
    fn key(&self) -> &str {
        let i = if self.verb() == "EVALSHA" { 3 } else { 1 };
        self.args.get(i).map_or("", String::as_str)
    }

    fn short(&self) -> String {
        let sha = if self.verb() == "EVALSHA" {
            format!("{}… ", &self.args[1][..8])
        } else {
            String::new()
        };
        format!("{} {sha}{}", self.verb(), self.key())
    }
}

/// Parse `1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "ab…" "3" …`.
fn parse(line: &str) -> Option<Seen> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let client = line[open + 1..close].split_whitespace().nth(1)?.to_owned();
    let mut args = Vec::new();
    let mut rest = &line[close + 1..];
    while let Some(start) = rest.find('"') {
        let mut end = start + 1;
        let bytes = rest.as_bytes();
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        args.push(rest[start + 1..end.min(rest.len())].to_owned());
        rest = &rest[(end + 1).min(rest.len())..];
    }
    Some(Seen { client, args })
}

/// `redis-cli monitor` in the background, and a connection of the test's
/// own whose commands are not counted.
struct Monitor {
    seen: Arc<Mutex<Vec<Seen>>>,
    child: std::process::Child,
    own: redis::Connection,
    own_addr: String,
    marks: usize,
}

impl Monitor {
    fn start(redis: &RedisServer) -> Monitor {
        let mut child = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "monitor"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("redis-cli runs");
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            if let Some(first) = lines.next() {
                let _ = tx.send(first);
            }
            for line in lines {
                if let Some(s) = parse(&line) {
                    sink.lock().unwrap().push(s);
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("MONITOR answers");
        assert_eq!(first, "OK");
        let mut own = redis::Client::open(redis.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut own).unwrap();
        let own_addr = info
            .split_whitespace()
            .find_map(|f| f.strip_prefix("addr="))
            .expect("CLIENT INFO names the address")
            .to_owned();
        Monitor {
            seen,
            child,
            own,
            own_addr,
            marks: 0,
        }
    }

    /// Put a mark in the stream; returns its name once MONITOR showed it.
    fn mark(&mut self) -> String {
        self.marks += 1;
        let name = format!("rt-mark-{}", self.marks);
        let _: String = redis::cmd("ECHO").arg(&name).query(&mut self.own).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.index_of(&name).is_none() {
            assert!(Instant::now() < deadline, "MONITOR shows the mark");
            std::thread::sleep(Duration::from_millis(5));
        }
        name
    }

    /// Wait until the timer worker's 10 s refresh has just run (its `MGET`
    /// of off flags, then every bucket's open-case set and the open cases):
    /// the windows measured next fall between two refreshes, so an open-case
    /// set read in them is the command's own, never the refresh's.
    async fn after_refresh(&mut self) {
        let start = self.seen.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let done = {
                let seen = self.seen.lock().unwrap();
                seen[start..]
                    .iter()
                    .position(|s| s.verb() == "MGET" && s.key().contains(":k:off:"))
                    .is_some_and(|i| {
                        seen[start + i..]
                            .iter()
                            .any(|s| s.verb() == "SMEMBERS" && s.key().ends_with(":{15}:open"))
                    })
            };
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "the 10 s refresh runs");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Its reads of the open cases follow the sets.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    fn index_of(&self, mark: &str) -> Option<usize> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .position(|s| s.verb() == "ECHO" && s.args.get(1).is_some_and(|a| a == mark))
    }

    /// Commands the gateway sent between two marks: not from a script, not
    /// from the test's own connection.
    fn between(&self, from: &str, to: &str) -> Vec<Seen> {
        let (a, b) = (self.index_of(from).unwrap(), self.index_of(to).unwrap());
        self.seen.lock().unwrap()[a + 1..b]
            .iter()
            .filter(|s| s.client != "lua" && s.client != self.own_addr)
            .filter(|s| s.verb() != "ECHO")
            .cloned()
            .collect()
    }

    /// Keys matching `pattern`, through the test's own connection.
    fn keys(&mut self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.own)
            .unwrap()
    }

    fn memory_usage(&mut self, key: &str) -> u64 {
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query::<Option<u64>>(&mut self.own)
            .unwrap()
            .unwrap_or(0)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha(src: &str) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(src.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The scripts' SHA1s, by name.
struct Shas {
    begin: String,
    commit: String,
    claim: String,
    finish: String,
    rate: String,
    lease: String,
    sentinel: String,
}

impl Shas {
    fn new() -> Self {
        let case = include_str!("../src/store/lua/case.lua");
        Shas {
            begin: sha(include_str!("../src/store/lua/begin.lua")),
            commit: sha(&format!(
                "{case}\n{}",
                include_str!("../src/store/lua/commit.lua")
            )),
            claim: sha(include_str!("../src/store/lua/claim.lua")),
            finish: sha(include_str!("../src/store/lua/finish.lua")),
            rate: sha(include_str!("../src/store/lua/rate.lua")),
            lease: sha(include_str!("../src/store/lua/lease.lua")),
            sentinel: sha(include_str!("../src/store/lua/sentinel.lua")),
        }
    }

    fn is(&self, s: &Seen, sha: &str) -> bool {
        s.verb() == "EVALSHA" && s.args.get(1).is_some_and(|a| a == sha)
    }
}

fn at_reply() -> String {
    r#"{"SMSMessageData":{"Message":"Sent to 1/1","Recipients":[{"statusCode":101,"number":"+996","status":"Success","cost":"KES 0.8","messageId":"ATXid_d"}]}}"#.to_owned()
}

fn config(api: &str, dir: &std::path::Path) -> String {
    std::fs::write(dir.join("roster.toml"), ROSTER).unwrap();
    let texts = common::root().join("config/lawyer_texts.toml");
    common::with_real_channels(&common::default_config())
        .replace(
            "# secret_env = \"HOTLINE_AT_SECRET\"",
            &format!("username = \"hotline\"\napi_key_env = \"HOTLINE_AT_API_KEY\"\nbase_url = \"{api}\""),
        )
        .replace(
            "[flows]",
            &format!(
                "[outbox]\nlease_secs = 86400\n\n[dispatch]\nroster = {:?}\ntexts = {:?}\nsms_channel = \"africastalking\"\n\n[flows]",
                dir.join("roster.toml").display().to_string(),
                texts.display().to_string()
            ),
        )
        .replace(
            "[store]\n",
            &format!(
                "[store]\nkey_prefix = {PREFIX:?}\nspool_dir = {:?}\n",
                dir.join("spool").display().to_string()
            ),
        )
}

const SESSION: [&str; 6] = [
    "",
    "2",
    "2*1",
    "2*1*1",
    "2*1*1*Station 5",
    "2*1*1*Station 5*0",
];

/// Wait until `n` messages went to the mock aggregator and as many sent
/// markers are in Redis (the last write of a send).
async fn sent(api: &MockServer, mon: &mut Monitor, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let markers = mon.keys(&format!("{PREFIX}:*:k:sent:*")).len();
        if api.requests().len() >= n && markers >= n {
            assert_eq!(api.requests().len(), n, "no more messages than expected");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} messages sent and recorded (got {} requests, {markers} markers)",
            api.requests().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A lawyer's SMS (`id`: its aggregator message id) on the webhook, and
/// the client commands Redis saw while it was answered that `keep` keeps.
async fn lawyer_sms(
    public: std::net::SocketAddr,
    mon: &mut Monitor,
    (from, text, id): (&str, &str, &str),
    keep: &dyn Fn(&Seen) -> bool,
) -> Vec<Seen> {
    let start = mon.mark();
    let body = common::form(&[("from", from), ("to", "21212"), ("text", text), ("id", id)]);
    let r = common::post_form(public, "/webhooks/africastalking/sms", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let end = mon.mark();
    mon.between(&start, &end)
        .into_iter()
        .filter(|s| keep(s))
        .collect()
}

fn show(cmds: &[Seen]) -> Vec<String> {
    cmds.iter().map(Seen::short).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_per_hop_offer_command_and_idle_and_bytes_per_session() {
    let redis = RedisServer::start();
    let api = MockServer::start(vec![MockResponse::new(201, at_reply())]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("HOTLINE_AT_API_KEY", "k"),
        ("P_NURGUL", "+996555000100"),
        ("P_AIDA", AIDA),
        ("P_BAKYT", "+996555000102"),
        ("P_CHOLPON", "+996555000103"),
    ];
    env.push(("HOTLINE_REDIS_URL", redis.url.as_str()));
    let cfg = config(&api.url, dir.path());
    let gw = Gateway::start_with(&cfg, &env, None, Clock::manual(T0)).await;
    let shas = Shas::new();
    let mut mon = Monitor::start(&redis);

    // Warm-up: scripts loaded, outage codes leased, first sweeps done.
    gw.ussd("ATUid_warm", "+996555000999", "").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.metric("hotline_offline_codes").await < 128.0 {
        assert!(Instant::now() < deadline, "outage codes leased");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Idle: nothing arrives for 3 s.
    let idle_from = mon.mark();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_to = mon.mark();
    let idle_secs = started.elapsed().as_secs_f64();
    let idle = mon.between(&idle_from, &idle_to);
    let idle_work: Vec<&Seen> = idle.iter().filter(|s| !shas.is(s, &shas.lease)).collect();
    let per_sec = idle_work.len() as f64 / idle_secs;
    eprintln!(
        "idle: {} commands in {idle_secs:.1} s ({per_sec:.1}/s; {} lease renewals besides): {:?}",
        idle_work.len(),
        idle.len() - idle_work.len(),
        show(&idle)
    );

    // Idle over 10.5 s: one round of the timer worker's 10 s refresh
    // (off-call flags, covers, the open-case gauges) falls in it.
    let long_from = mon.mark();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let long_to = mon.mark();
    let long_secs = started.elapsed().as_secs_f64();
    let long = mon.between(&long_from, &long_to);
    let long_work = long.iter().filter(|s| !shas.is(s, &shas.lease)).count();
    let long_rate = long_work as f64 / long_secs;
    let claims = long.iter().filter(|s| shas.is(s, &shas.claim)).count();
    eprintln!(
        "idle with the 10 s refresh: {long_work} commands in {long_secs:.1} s ({long_rate:.1}/s; {claims} claims, the rest the refresh and the store ping): {:?}",
        show(&long)
    );
    assert!(
        long_rate <= 5.8,
        "idle with the refresh: {long_rate:.1}/s: {:?}",
        show(&long)
    );

    // A six-hop session that opens a case, and the offer it sends.
    mon.after_refresh().await;
    let from = mon.mark();
    let mut last = String::new();
    for text in SESSION {
        last = gw.ussd("ATUid_rt1", "+996555770001", text).await.body;
    }
    let hops_done = mon.mark();
    assert!(last.starts_with("END "), "{last}");
    let code: String = last
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() >= 4)
        .expect("a case code")
        .to_owned();
    let bucket = code.parse::<u32>().unwrap() % 16;
    sent(&api, &mut mon, 1).await;
    let offer_done = mon.mark();
    let hops = mon.between(&from, &hops_done);
    let hot = hops
        .iter()
        .filter(|s| shas.is(s, &shas.begin) || shas.is(s, &shas.commit))
        .count();
    // Probes of other buckets (and of the timer queue) are idle work, and
    // so are background commands no measured operation sends, whenever they
    // fall in a window: the store ping (every 5 s) and the outbox's queue
    // gauges (every 10 s, on their own timer). The timer worker's refresh
    // reads open-case sets, as a scan would: the windows are placed right
    // after one (`after_refresh`) instead.
    let is_probe = |s: &Seen| {
        let v = s.verb();
        shas.is(s, &shas.claim) && !s.key().ends_with(&format!(":{{{bucket}}}:q:outbox"))
            || shas.is(s, &shas.lease)
            || v == "PING"
            || shas.is(s, &shas.sentinel)
            || (v == "ZRANGE" && s.key().ends_with(":q:outbox"))
            // The same gauges read the payloads of a bucket's waiting
            // messages (`peek_jobs`) when it has any: seen in a window
            // now and then, depending on when the refresh falls.
            || (v == "HMGET" && s.key().ends_with(":j:outbox"))
    };
    let mut offer: Vec<Seen> = hops
        .iter()
        .filter(|s| !shas.is(s, &shas.begin) && !shas.is(s, &shas.commit) && !is_probe(s))
        .cloned()
        .collect();
    eprintln!(
        "six hops: {hot} begin/commit ({:.1} per hop), {} other: {:?}",
        hot as f64 / 6.0,
        offer.len(),
        show(&hops)
    );
    assert_eq!(hot, 12, "two round trips per hop: {:?}", show(&hops));
    offer.extend(
        mon.between(&hops_done, &offer_done)
            .into_iter()
            .filter(|s| !is_probe(s)),
    );
    eprintln!("the offer: {} commands: {:?}", offer.len(), show(&offer));
    let claims = offer.iter().filter(|s| shas.is(s, &shas.claim)).count();
    assert_eq!(claims, 1, "the offer is claimed from its own bucket, once");
    assert_eq!(
        offer.iter().filter(|s| shas.is(s, &shas.finish)).count(),
        1,
        "one write records the send and finishes it"
    );
    assert!(
        offer
            .iter()
            .all(|s| s.verb() != "SCAN" && s.verb() != "SMEMBERS"),
        "no scan"
    );
    assert!(
        offer
            .iter()
            .all(|s| !(s.verb() == "HMGET" && s.key().contains(":c:"))),
        "the claim read the case's code: {:?}",
        show(&offer)
    );
    assert!(
        offer.len() <= 3,
        "the offer costs at most 3 (claim, shared rate, finish): {:?}",
        show(&offer)
    );

    // A lawyer's OK, the two messages it sends (to her and to the woman).
    let ok_from = mon.mark();
    let body = common::form(&[
        ("from", AIDA),
        ("to", "21212"),
        ("text", &format!("OK {code}")),
        ("id", "lw-ok-1"),
    ]);
    let r = common::post_form(gw.public, "/webhooks/africastalking/sms", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ok_done = mon.mark();
    sent(&api, &mut mon, 3).await;
    let ok_sent = mon.mark();
    // The outbox sends her reply and the woman's confirmation while the
    // webhook is still being answered: tell the send's commands apart.
    let is_send = |s: &Seen| {
        shas.is(s, &shas.claim)
            || shas.is(s, &shas.finish)
            || shas.is(s, &shas.rate)
            || (s.verb() == "SET" && s.key().contains(":{g}:k:p:"))
            || (s.verb() == "HMGET" && s.key().contains(":c:"))
            || (s.verb() == "GET" && (s.key().contains(":k:o:") || s.key().contains(":k:sent:")))
    };
    let window: Vec<Seen> = mon
        .between(&ok_from, &ok_sent)
        .into_iter()
        .filter(|s| !is_probe(s) || shas.is(s, &shas.claim))
        .collect();
    let _ = &ok_done;
    let command: Vec<Seen> = window.iter().filter(|s| !is_send(s)).cloned().collect();
    let sends: Vec<Seen> = window
        .iter()
        .filter(|s| is_send(s) && !is_probe(s))
        .cloned()
        .collect();
    let rates = sends.iter().filter(|s| shas.is(s, &shas.rate)).count();
    eprintln!(
        "a lawyer's OK: {} commands for the command: {:?}; {} for its {rates} messages: {:?}",
        command.len(),
        show(&command),
        sends.len(),
        show(&sends)
    );
    assert!(
        command
            .iter()
            .all(|s| s.verb() != "SCAN" && s.verb() != "SMEMBERS"),
        "a command with a code never scans"
    );
    assert!(
        command.len() <= 2,
        "a lawyer's OK with a code: at most 2 round trips: {:?}",
        show(&command)
    );
    // Her retried OK is answered from the mark: one round trip, no reply.
    let ok_text = format!("OK {code}");
    let retry = lawyer_sms(gw.public, &mut mon, (AIDA, &ok_text, "lw-ok-1"), &|s| {
        !is_probe(s)
    })
    .await;
    eprintln!("her retried OK: {:?}", show(&retry));
    assert_eq!(
        retry.len(),
        1,
        "a retry is one round trip: {:?}",
        show(&retry)
    );

    // A bare command's own commands: her reply goes out meanwhile, and
    // its case-less notice reads no case.
    let bare = |s: &Seen| !is_probe(s) && (!is_send(s) || s.verb() == "HMGET");
    // A bare STATUS: her case index, not every open case.
    mon.after_refresh().await;
    let status = lawyer_sms(gw.public, &mut mon, (AIDA, "STATUS", "lw-status-1"), &bare).await;
    sent(&api, &mut mon, 4).await;
    eprintln!(
        "a bare STATUS: {} commands: {:?}",
        status.len(),
        show(&status)
    );
    assert!(
        status
            .iter()
            .all(|s| !(s.verb() == "SMEMBERS" && s.key().ends_with(":open"))),
        "no open-case set is read: {:?}",
        show(&status)
    );
    assert!(
        status.len() <= 2,
        "a bare STATUS: her mark, rate, index and cases in one round trip, her reply in the other: {:?}",
        show(&status)
    );

    // A bare STATUS from a lawyer with no case: her empty index, nothing
    // else read (no fallback to every open case).
    let empty = lawyer_sms(
        gw.public,
        &mut mon,
        ("+996555000102", "STATUS", "lw-status-2"),
        &bare,
    )
    .await;
    sent(&api, &mut mon, 5).await;
    eprintln!(
        "a bare STATUS, no case: {} commands: {:?}",
        empty.len(),
        show(&empty)
    );
    assert!(
        empty
            .iter()
            .all(|s| !(s.verb() == "SMEMBERS" && s.key().ends_with(":open"))
                && s.verb() != "HMGET"),
        "an empty index reads no case: {:?}",
        show(&empty)
    );
    assert!(empty.len() <= 2, "{:?}", show(&empty));

    // A bare DONE: the one case she holds, found through her index read in
    // round trip one, closed in round trip two with the delivery's mark.
    mon.after_refresh().await;
    let done = lawyer_sms(gw.public, &mut mon, (AIDA, "DONE", "lw-done-1"), &bare).await;
    eprintln!("a bare DONE: {} commands: {:?}", done.len(), show(&done));
    assert!(
        done.iter()
            .all(|s| !(s.verb() == "SMEMBERS" && s.key().ends_with(":open"))),
        "no open-case set is read: {:?}",
        show(&done)
    );
    assert!(done.len() <= 2, "{:?}", show(&done));
    sent(&api, &mut mon, 6).await;
    let closed = api.requests();
    let reply = String::from_utf8_lossy(&closed[closed.len() - 1].body).into_owned();
    assert!(
        reply.contains(&code),
        "her DONE closed her case {code}: {reply}"
    );
    // Retried, it is answered from its mark: one round trip, nothing sent.
    let retry = lawyer_sms(gw.public, &mut mon, (AIDA, "DONE", "lw-done-1"), &|s| {
        !is_probe(s)
    })
    .await;
    assert_eq!(retry.len(), 1, "a retried DONE: {:?}", show(&retry));

    // Bytes of Redis per live session: every key 20 sessions in the middle
    // of the menu added (session, replies, rate limit).
    let before: BTreeSet<String> = mon.keys(&format!("{PREFIX}:*")).into_iter().collect();
    let n = 20;
    for i in 0..n {
        for text in &SESSION[..4] {
            gw.ussd(
                &format!("ATUid_mem_{i}"),
                &format!("+9965550010{i:02}"),
                text,
            )
            .await;
        }
    }
    let after: Vec<String> = mon
        .keys(&format!("{PREFIX}:*"))
        .into_iter()
        .filter(|k| !before.contains(k))
        .collect();
    let mut kinds: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for k in &after {
        let kind = k.split(':').nth(2).unwrap_or_default().to_owned();
        let bytes = mon.memory_usage(k);
        let e = kinds.entry(kind).or_default();
        e.0 += 1;
        e.1 += bytes;
    }
    eprintln!("memory by kind (keys, bytes): {kinds:?}");
    if let Some(k) = after.iter().find(|k| k.contains(":s:")) {
        let fields: Vec<String> = redis::cmd("HKEYS").arg(k).query(&mut mon.own).unwrap();
        let lens: Vec<(String, u64)> = fields
            .into_iter()
            .map(|f| {
                let n: u64 = redis::cmd("HSTRLEN")
                    .arg(k)
                    .arg(&f)
                    .query(&mut mon.own)
                    .unwrap();
                (f, n)
            })
            .collect();
        let enc: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(k)
            .query(&mut mon.own)
            .unwrap();
        eprintln!("a session hash ({enc}): field lengths {lens:?}");
    }
    // A bucket's version counter (`seq`) is shared by every session of
    // the bucket, not a session's own.
    let total: u64 = kinds
        .iter()
        .filter(|(kind, _)| kind.as_str() != "seq")
        .map(|(_, (_, b))| b)
        .sum();
    let per_session = total as f64 / f64::from(n);
    eprintln!(
        "memory: {} keys for {n} live sessions, {total} bytes of their own: {per_session:.0} bytes per session",
        after.len()
    );
    assert!(
        per_session <= 768.0,
        "at most 768 bytes of Redis per live session: {per_session:.0} ({kinds:?})"
    );
    gw.stop().await;
    assert!(
        per_sec <= 4.0,
        "idle: a few commands per second at most, got {per_sec:.1}/s: {:?}",
        show(&idle)
    );
}
