//! The gateway on a real Redis: several instances, outages, a cluster, and
//! the cost of a USSD hop in round trips and bytes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::Gateway;
use common::redis::{RedisServer, free_port, unique_prefix};
use hotline::case::CaseData;
use hotline::store::redis::RedisStore;
use hotline::store::{
    Begin, BeginRequest, CaseRecord, Claimed, Commit, CommitRequest, Job, NewCase, Queue, Store,
    StoreError,
};

/// Русский (second for a +996 caller), Bishkek, help now, a place, this number.
const FINAL: &str = "2*1*1*Station 5*0";

fn code_of(screen: &str) -> String {
    screen
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 4)
        .unwrap_or_else(|| panic!("no code in {screen:?}"))
        .to_owned()
}

fn prefix_texts(full: &str) -> Vec<String> {
    let parts: Vec<&str> = full.split('*').collect();
    (0..=parts.len()).map(|n| parts[..n].join("*")).collect()
}

async fn open_case(gw: &Gateway, store: &dyn Store, code: &str) -> CaseData {
    let rec = store
        .case_by_code(code)
        .await
        .unwrap()
        .expect("case in Redis");
    let plain = gw.app.deps.privacy.open(&rec.data).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

fn count_keys(redis: &RedisServer, pattern: &str) -> usize {
    redis
        .cli(&["--scan", "--pattern", pattern])
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

#[tokio::test]
async fn two_instances_share_sessions_and_a_retry_to_both_opens_one_case() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("two");
    let spool = tempfile::tempdir().unwrap();
    let a = Gateway::start_redis(&redis.url, &prefix, spool.path()).await;
    let b = Gateway::start_redis(&redis.url, &prefix, &spool.path().join("b")).await;
    let phone = "+996555100200";
    let texts = prefix_texts(FINAL);
    // Steps alternate between the instances, as a load balancer would send them.
    for (i, text) in texts[..texts.len() - 1].iter().enumerate() {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = gw.ussd("ATUid_shared", phone, text).await;
        assert!(
            r.body.starts_with("CON "),
            "hop {i} on instance {}: {}",
            i % 2,
            r.body
        );
    }
    // The last hop is retried by the aggregator to both instances at once.
    let (ra, rb) = tokio::join!(
        a.ussd("ATUid_shared", phone, FINAL),
        b.ussd("ATUid_shared", phone, FINAL)
    );
    assert!(ra.body.starts_with("END "), "{}", ra.body);
    assert_eq!(ra.body, rb.body, "both answer the same screen and code");
    assert_eq!(
        count_keys(&redis, &format!("{prefix}:*:c:*")),
        1,
        "exactly one case"
    );
    let store = RedisStore::connect(
        &redis.url,
        &prefix,
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let case = open_case(&a, &store, &code_of(&ra.body)).await;
    assert_eq!(case.vars["location"], "Station 5");
    // Many concurrent retries of a completing hop: still one case.
    for text in &texts[..texts.len() - 1] {
        assert!(
            a.ussd("ATUid_storm", "+996555100201", text)
                .await
                .body
                .starts_with("CON ")
        );
    }
    let mut handles = Vec::new();
    for i in 0..10 {
        let gw_addr = if i % 2 == 0 { a.public } else { b.public };
        let body = common::form(&[
            ("sessionId", "ATUid_storm"),
            ("serviceCode", "*1#"),
            ("phoneNumber", "+996555100201"),
            ("text", FINAL),
        ]);
        handles.push(tokio::spawn(async move {
            common::post_form(gw_addr, "/webhooks/africastalking/ussd", &body).await
        }));
    }
    let mut bodies = Vec::new();
    for h in handles {
        bodies.push(h.await.unwrap().body);
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]), "{bodies:#?}");
    assert_eq!(count_keys(&redis, &format!("{prefix}:*:c:*")), 2);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_redis_outage_is_survived_and_every_completed_case_lands_once() {
    let mut redis = RedisServer::start();
    let prefix = unique_prefix("outage");
    let spool = tempfile::tempdir().unwrap();
    let gw = Gateway::start_redis(&redis.url, &prefix, spool.path()).await;
    let phone = "+996555300400";
    let texts = prefix_texts(FINAL);
    for text in &texts[..texts.len() - 1] {
        assert!(
            gw.ussd("ATUid_out", phone, text)
                .await
                .body
                .starts_with("CON ")
        );
    }
    let other = gw.ussd("ATUid_mid", "+996555300401", "").await;
    assert!(other.body.starts_with("CON "));

    redis.stop();
    // Mid-flow hops get a calm last screen with the fallback number.
    let calm = gw.ussd("ATUid_mid", "+996555300401", "1").await;
    assert_eq!(calm.status, 200);
    assert_eq!(
        calm.body, "END Азыр мүмкүн эмес. Бизге чалыңыз: +996 000 000 000",
        "her session cannot be read: her country's language"
    );
    // The hop that completes a request is kept and acknowledged with its code.
    let done = gw.ussd("ATUid_out", phone, FINAL).await;
    assert!(
        done.body.starts_with("END Спасибо. Ваш код "),
        "{}",
        done.body
    );
    let retry = gw.ussd("ATUid_out", phone, FINAL).await;
    assert_eq!(
        retry.body, done.body,
        "a retry during the outage shows the same code"
    );
    let ready = common::request(gw.admin, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 503);
    assert_eq!(gw.metric("hotline_store_up").await, 0.0);
    assert_eq!(gw.metric("hotline_spool_pending").await, 1.0);
    assert!(
        std::fs::read_to_string(spool.path().join("cases.jsonl"))
            .unwrap()
            .lines()
            .count()
            == 1
    );

    redis.restart();
    let back = Instant::now();
    let mut ready_after = None;
    while back.elapsed() < Duration::from_secs(15) {
        if common::request(gw.admin, "GET", "/readyz", &[], b"")
            .await
            .status
            == 200
        {
            ready_after = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = ready_after.expect("ready again without a restart");
    eprintln!("ready again {ready_after:?} after Redis came back");
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.metric("hotline_spool_pending").await > 0.0 {
        assert!(Instant::now() < deadline, "spool replayed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count_keys(&redis, &format!("{prefix}:*:c:*")),
        1,
        "the case is in Redis exactly once"
    );
    let store = RedisStore::connect(
        &redis.url,
        &prefix,
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let case = open_case(&gw, &store, &code_of(&done.body)).await;
    assert_eq!(case.vars["location"], "Station 5");
    assert_eq!(case.caller.as_ref().map(|c| c.as_str()), Some(phone));
    // And the gateway serves new sessions again.
    assert!(
        gw.ussd("ATUid_after", "+996555300402", "")
            .await
            .body
            .starts_with("CON ")
    );
    gw.stop().await;
}

/// A real store whose commits fail: Redis dying between a hop's two round
/// trips, made deterministic.
struct CommitsFail(Arc<dyn Store>);

#[async_trait]
impl Store for CommitsFail {
    async fn begin(&self, req: BeginRequest) -> Result<Begin, StoreError> {
        self.0.begin(req).await
    }
    async fn commit(&self, req: CommitRequest) -> Result<Commit, StoreError> {
        if req.case.is_some() {
            return Err(StoreError::Unavailable("injected".into()));
        }
        self.0.commit(req).await
    }
    async fn schedule(&self, b: u16, q: Queue, jobs: Vec<Job>) -> Result<(), StoreError> {
        self.0.schedule(b, q, jobs).await
    }
    async fn claim(
        &self,
        b: u16,
        q: Queue,
        now: u64,
        lease: u64,
        max: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.0.claim(b, q, now, lease, max).await
    }
    async fn finish(&self, b: u16, q: Queue, id: &str, a: u32) -> Result<bool, StoreError> {
        self.0.finish(b, q, id, a).await
    }
    async fn reschedule(
        &self,
        b: u16,
        q: Queue,
        id: &str,
        a: u32,
        due: u64,
        p: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        self.0.reschedule(b, q, id, a, due, p).await
    }
    async fn record_case(&self, b: u16, c: NewCase, now: u64) -> Result<String, StoreError> {
        self.0.record_case(b, c, now).await
    }
    async fn get(
        &self,
        b: Option<u16>,
        key: &str,
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(b, key, now).await
    }
    async fn put(
        &self,
        b: Option<u16>,
        key: &str,
        v: Vec<u8>,
        ttl: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.0.put(b, key, v, ttl, now).await
    }
    async fn delete(&self, b: Option<u16>, key: &str) -> Result<(), StoreError> {
        self.0.delete(b, key).await
    }
    async fn case(&self, b: u16, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        self.0.case(b, id).await
    }
    async fn update_case(&self, u: hotline::store::CaseUpdate) -> Result<bool, StoreError> {
        self.0.update_case(u).await
    }
    async fn case_ids(&self, b: u16, open_only: bool) -> Result<Vec<String>, StoreError> {
        self.0.case_ids(b, open_only).await
    }
    async fn case_by_code(&self, code: &str) -> Result<Option<CaseRecord>, StoreError> {
        self.0.case_by_code(code).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
    fn kind(&self) -> &'static str {
        "commits-fail"
    }
}

#[tokio::test]
async fn a_case_whose_commit_fails_is_spooled_and_replayed_once() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("commitfail");
    let spool = tempfile::tempdir().unwrap();
    let real: Arc<dyn Store> = Arc::new(
        RedisStore::connect(
            &redis.url,
            &prefix,
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .await
        .unwrap(),
    );
    let cfg = common::default_config().replace(
        "[store]\n",
        &format!(
            "[store]\nspool_dir = {:?}\n",
            spool.path().display().to_string()
        ),
    );
    let gw = Gateway::start_with(
        &cfg,
        &[],
        Some(Arc::new(CommitsFail(real.clone()))),
        hotline::clock::Clock::System,
    )
    .await;
    let texts = prefix_texts(FINAL);
    for text in &texts[..texts.len() - 1] {
        assert!(
            gw.ussd("ATUid_cf", "+996555500600", text)
                .await
                .body
                .starts_with("CON ")
        );
    }
    let done = gw.ussd("ATUid_cf", "+996555500600", FINAL).await;
    assert!(
        done.body.starts_with("END Спасибо. Ваш код "),
        "{}",
        done.body
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_keys(&redis, &format!("{prefix}:*:c:*")) == 0 {
        assert!(Instant::now() < deadline, "replayed from the spool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let case = open_case(&gw, real.as_ref(), &code_of(&done.body)).await;
    assert_eq!(case.vars["location"], "Station 5");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        count_keys(&redis, &format!("{prefix}:*:c:*")),
        1,
        "once, not per replay tick"
    );
    gw.stop().await;
}

fn start_cluster() -> Vec<RedisServer> {
    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ])
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = std::process::Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli runs (apt-get install redis-tools)");
    assert!(
        out.status.success(),
        "cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in &nodes {
        while !n.cli(&["cluster", "info"]).contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    nodes
}

#[tokio::test]
async fn the_full_ussd_flow_works_on_a_three_master_cluster() {
    let nodes = start_cluster();
    let url = nodes
        .iter()
        .map(|n| n.url.clone())
        .collect::<Vec<_>>()
        .join(",");
    let spool = tempfile::tempdir().unwrap();
    let gw = Gateway::start_redis(&url, "hlc", spool.path()).await;
    let store = RedisStore::connect(&url, "hlc", Duration::from_secs(2), Duration::from_secs(2))
        .await
        .unwrap();
    // Many callers, so that their buckets spread over all three masters.
    for i in 0..12 {
        let phone = format!("+9965557000{i:02}");
        let session = format!("ATUid_cluster_{i}");
        let mut last = String::new();
        for text in prefix_texts(FINAL) {
            let r = gw.ussd(&session, &phone, &text).await;
            assert_eq!(r.status, 200);
            last = r.body;
        }
        assert!(last.starts_with("END "), "{last}");
        let retry = gw.ussd(&session, &phone, FINAL).await;
        assert_eq!(retry.body, last);
        let case = open_case(&gw, &store, &code_of(&last)).await;
        assert_eq!(
            case.caller.as_ref().map(|c| c.as_str()),
            Some(phone.as_str())
        );
    }
    let per_node: Vec<usize> = nodes
        .iter()
        .map(|n| n.cli(&["dbsize"]).trim().parse().unwrap())
        .collect();
    eprintln!("keys per cluster master: {per_node:?}");
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "keys spread over masters: {per_node:?}"
    );
    gw.stop().await;
}

/// Watch every command Redis receives (`MONITOR`) while `work` runs;
/// returns the commands clients sent (not those run inside scripts).
async fn monitor<F: std::future::Future<Output = ()>>(redis: &RedisServer, work: F) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "monitor"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("MONITOR answers");
    assert_eq!(first, "OK");
    work.await;
    // A marker command to know every earlier command has been seen.
    redis.cli(&["echo", "monitor-end"]);
    let mut client_commands = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        if line.contains("monitor-end") {
            break;
        }
        if !line.contains(" lua] ") {
            // `"EVALSHA" "<sha>" …`: keep the command and its first argument.
            let mut quoted = line.split('"').skip(1).step_by(2);
            let cmd = quoted.next().unwrap_or_default().to_uppercase();
            let arg = quoted.next().unwrap_or_default().to_owned();
            client_commands.push(format!("{cmd} {arg}"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    client_commands
}

/// Measures (and asserts) the cost of a hop: two round trips, both
/// EVALSHA; reports Redis memory per live session.
#[tokio::test]
async fn a_ussd_hop_costs_two_round_trips_and_a_session_is_small() {
    let redis = RedisServer::start();
    let prefix = "hl";
    let spool = tempfile::tempdir().unwrap();
    let gw = Gateway::start_redis(&redis.url, prefix, spool.path()).await;
    // Warm-up: connection set-up and script loading are not per hop.
    gw.ussd("ATUid_warm", "+996555000999", "").await;
    let texts = prefix_texts(FINAL);
    let commands = monitor(&redis, async {
        for text in &texts {
            gw.ussd("ATUid_measure", "+996555000998", text).await;
        }
    })
    .await;
    let hops = texts.len();
    // The background outbox worker polls on the same connection; tell the
    // webhook's commands apart by script.
    let sha = |src: &str| {
        use sha1::{Digest, Sha1};
        Sha1::digest(src.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let begin = format!(
        "EVALSHA {}",
        sha(include_str!("../src/store/lua/begin.lua"))
    );
    let commit = format!(
        "EVALSHA {}",
        sha(&format!(
            "{}\n{}",
            include_str!("../src/store/lua/case.lua"),
            include_str!("../src/store/lua/commit.lua")
        ))
    );
    let claim = format!(
        "EVALSHA {}",
        sha(include_str!("../src/store/lua/claim.lua"))
    );
    let hot: Vec<&String> = commands
        .iter()
        .filter(|c| **c == begin || **c == commit)
        .collect();
    let other: Vec<&String> = commands
        .iter()
        .filter(|c| **c != begin && **c != commit && **c != claim)
        .collect();
    eprintln!(
        "{hops} hops (the last opens a case): {} webhook commands, {:.2} round trips per hop ({} background outbox polls)",
        hot.len(),
        hot.len() as f64 / hops as f64,
        commands.len() - hot.len() - other.len()
    );
    assert_eq!(hot.len(), 2 * hops, "two round trips per hop: {commands:?}");
    assert_eq!(
        commands.iter().filter(|c| **c == begin).count(),
        hops,
        "one begin per hop"
    );
    assert!(
        other.is_empty(),
        "nothing else on the connection: {other:?}"
    );

    // Memory of live sessions in the middle of the menu.
    let mut sizes = Vec::new();
    for i in 0..20 {
        let phone = format!("+9965550010{i:02}");
        for text in &texts[..4] {
            gw.ussd(&format!("ATUid_mem_{i}"), &phone, text).await;
        }
    }
    for key in redis
        .cli(&["--scan", "--pattern", &format!("{prefix}:*:s:*")])
        .lines()
        .filter(|l| !l.is_empty())
    {
        let bytes: u64 = redis.cli(&["memory", "usage", key]).trim().parse().unwrap();
        sizes.push(bytes);
    }
    assert_eq!(sizes.len(), 21, "20 sessions and the warm-up one");
    let avg = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
    eprintln!(
        "session key MEMORY USAGE: avg {avg:.0} bytes, max {} bytes",
        sizes.iter().max().unwrap()
    );
    let dedupe: Vec<u64> = redis
        .cli(&["--scan", "--pattern", &format!("{prefix}:*:d:*")])
        .lines()
        .filter(|l| !l.is_empty())
        .take(20)
        .map(|k| redis.cli(&["memory", "usage", k]).trim().parse().unwrap())
        .collect();
    eprintln!(
        "cached reply MEMORY USAGE: avg {:.0} bytes",
        dedupe.iter().sum::<u64>() as f64 / dedupe.len() as f64
    );
    let _ = free_port();
    gw.stop().await;
}

#[tokio::test]
async fn hotline_report_reads_the_live_store_and_suppresses_small_cells() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("report");
    let spool = tempfile::tempdir().unwrap();
    let gw = Gateway::start_redis(&redis.url, &prefix, spool.path()).await;
    // Six requests from Bishkek and seven from Poltava (urgent), two from
    // Osh (report path).
    for i in 0..6 {
        for text in prefix_texts(FINAL) {
            gw.ussd(
                &format!("ATUid_rep_{i}"),
                &format!("+99655590{i:04}"),
                &text,
            )
            .await;
        }
    }
    for i in 0..7 {
        for text in prefix_texts(FINAL) {
            gw.ussd(
                &format!("ATUid_rep_ua_{i}"),
                &format!("+38050900{i:04}"),
                &text,
            )
            .await;
        }
    }
    for i in 0..2 {
        for text in prefix_texts("1*2*3*3*0*0") {
            gw.ussd(
                &format!("ATUid_rep_osh_{i}"),
                &format!("+99655591{i:04}"),
                &text,
            )
            .await;
        }
    }
    gw.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::default_config()
        .replace("[store]\n", &format!("[store]\nkey_prefix = {prefix:?}\n"))
        .replace(
            "dir = \"../flows\"",
            &format!(
                "dir = {:?}",
                common::root().join("flows").display().to_string()
            ),
        );
    std::fs::write(dir.path().join("hotline.toml"), cfg).unwrap();
    let out = std::process::Command::new(common::binary())
        .args([
            "report",
            "--format",
            "csv",
            "--config",
            dir.path().join("hotline.toml").to_str().unwrap(),
        ])
        .env("HOTLINE_REDIS_URL", &redis.url)
        .env(
            "HOTLINE_PII_KEY",
            "test-key-0123456789-0123456789-0123456789",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("city,poltava,7,0,"), "{stdout}");
    assert!(
        stdout.contains("city,osh,<5,"),
        "two cases are suppressed: {stdout}"
    );
    assert!(
        stdout.contains("city,bishkek,<5,"),
        "…and the next smallest, so Osh cannot be recovered from the total: {stdout}"
    );
    assert!(stdout.contains("week,2026-W"), "{stdout}");
    assert!(
        stdout.contains(",15,0,"),
        "fifteen cases this week: {stdout}"
    );
    assert!(stdout.contains("abuse,bribe,<5,"), "{stdout}");
    for small in 1..5 {
        assert!(
            !stdout.contains(&format!(",{small},")),
            "no count below 5 printed: {stdout}"
        );
    }
}
