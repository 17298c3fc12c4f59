//! The gateway on a real Redis: several instances, outages, a cluster, and
//! the cost of a USSD hop in round trips and bytes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::Gateway;
use common::redis::{RedisServer, free_port, unique_prefix};
use hotline::case::CaseData;
use hotline::store::redis::RedisStore;
use hotline::store::{
    BUCKETS, Begin, BeginRequest, CaseRecord, Claimed, CodeLease, Commit, CommitRequest, Job,
    LeaseRequest, LeasedRecord, NewCase, Queue, Store, StoreError,
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
    wait_for_offline_codes(&gw, 16.0).await;

    redis.stop();
    // Mid-flow, Africa's Talking's cumulative text lets her go on: the
    // next screen is replayed from it, nothing is stored…
    let next = gw.ussd("ATUid_mid", "+996555300401", "1").await;
    assert_eq!(next.status, 200);
    assert_eq!(next.body, "CON Кайсы шаар?\n1 Бишкек\n2 Ош\n3 Башка шаар");
    // …and a wrong answer, which the text cannot replay safely, gets a calm
    // last screen with the fallback number, in her country's language.
    let calm = gw.ussd("ATUid_mid", "+996555300401", "1*9").await;
    assert_eq!(
        calm.body, "END Азыр мүмкүн эмес. Бизге чалыңыз: +996 000 000 000",
        "her country's language"
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
    let files = spool_files(spool.path());
    assert_eq!(files.len(), 1, "one spool file per instance: {files:?}");
    assert_eq!(
        std::fs::read_to_string(&files[0]).unwrap().lines().count(),
        1
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

/// How [`Faulty`] fails.
const HEALTHY: u8 = 0;
/// Commits that record a case fail: Redis dying between a hop's two round
/// trips.
const CASE_COMMITS_FAIL: u8 = 1;
/// Every call fails: an outage, while the real Redis keeps its data.
const DOWN: u8 = 2;
/// A Redis frozen between a hop's two round trips, thawing: a commit that
/// records a case runs (when Redis thaws) but its caller has timed out,
/// and the outbox has not claimed anything since; the rest answers.
const THAWING: u8 = 3;
/// Commits that record no case fail: Redis dying between the two round
/// trips of a menu hop.
const MENU_COMMITS_FAIL: u8 = 4;

/// A real store with injected failures, made deterministic.
struct Faulty {
    inner: Arc<dyn Store>,
    mode: AtomicU8,
}

impl Faulty {
    fn new(inner: Arc<dyn Store>, mode: u8) -> Arc<Self> {
        Arc::new(Faulty {
            inner,
            mode: AtomicU8::new(mode),
        })
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn up(&self) -> Result<&dyn Store, StoreError> {
        if self.mode.load(Ordering::SeqCst) == DOWN {
            return Err(StoreError::Unavailable("injected outage".into()));
        }
        Ok(self.inner.as_ref())
    }
}

#[async_trait]
impl Store for Faulty {
    async fn begin(&self, req: BeginRequest) -> Result<Begin, StoreError> {
        self.up()?.begin(req).await
    }
    async fn commit(&self, req: CommitRequest) -> Result<Commit, StoreError> {
        let mode = self.mode.load(Ordering::SeqCst);
        if req.case.is_some() && mode == CASE_COMMITS_FAIL {
            return Err(StoreError::Unavailable("injected".into()));
        }
        if req.case.is_none() && mode == MENU_COMMITS_FAIL {
            return Err(StoreError::Unavailable("injected".into()));
        }
        if req.case.is_some() && mode == THAWING {
            let landed = self.inner.commit(req).await;
            assert!(
                matches!(landed, Ok(Commit::Saved { code: Some(_) })),
                "{landed:?}"
            );
            return Err(StoreError::Unavailable("injected timeout".into()));
        }
        self.up()?.commit(req).await
    }
    async fn schedule(&self, b: u16, q: Queue, jobs: Vec<Job>) -> Result<(), StoreError> {
        self.up()?.schedule(b, q, jobs).await
    }
    async fn claim(
        &self,
        b: u16,
        q: Queue,
        now: u64,
        lease: u64,
        max: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        if self.mode.load(Ordering::SeqCst) == THAWING {
            return Err(StoreError::Unavailable("injected".into()));
        }
        self.up()?.claim(b, q, now, lease, max).await
    }
    async fn peek_jobs(&self, b: u16, q: Queue, max: usize) -> Result<Vec<Job>, StoreError> {
        self.up()?.peek_jobs(b, q, max).await
    }
    async fn finish(&self, b: u16, q: Queue, id: &str, a: u32) -> Result<bool, StoreError> {
        self.up()?.finish(b, q, id, a).await
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
        self.up()?.reschedule(b, q, id, a, due, p).await
    }
    async fn record_case(&self, b: u16, c: NewCase, now: u64) -> Result<String, StoreError> {
        self.up()?.record_case(b, c, now).await
    }
    async fn record_leased_case(
        &self,
        b: u16,
        c: NewCase,
        lease: &CodeLease,
        now: u64,
    ) -> Result<LeasedRecord, StoreError> {
        self.up()?.record_leased_case(b, c, lease, now).await
    }
    async fn lease_codes(&self, req: LeaseRequest) -> Result<Vec<String>, StoreError> {
        self.up()?.lease_codes(req).await
    }
    async fn take_rate(
        &self,
        key: &str,
        limit: hotline::store::RateLimit,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.up()?.take_rate(key, limit, now).await
    }
    async fn set_add(
        &self,
        b: Option<u16>,
        add: hotline::store::SetAdd,
        now: u64,
    ) -> Result<(), StoreError> {
        self.up()?.set_add(b, add, now).await
    }
    async fn set_members(
        &self,
        b: Option<u16>,
        key: &str,
        now: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.up()?.set_members(b, key, now).await
    }
    async fn set_remove(
        &self,
        b: Option<u16>,
        key: &str,
        members: &[String],
    ) -> Result<(), StoreError> {
        self.up()?.set_remove(b, key, members).await
    }
    async fn queue_len(&self, b: u16, q: Queue) -> Result<usize, StoreError> {
        self.up()?.queue_len(b, q).await
    }
    async fn get(
        &self,
        b: Option<u16>,
        key: &str,
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.up()?.get(b, key, now).await
    }
    async fn put(
        &self,
        b: Option<u16>,
        key: &str,
        v: Vec<u8>,
        ttl: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.up()?.put(b, key, v, ttl, now).await
    }
    async fn delete(&self, b: Option<u16>, key: &str) -> Result<(), StoreError> {
        self.up()?.delete(b, key).await
    }
    async fn case(&self, b: u16, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        self.up()?.case(b, id).await
    }
    async fn update_case_once(
        &self,
        u: hotline::store::CaseUpdate,
    ) -> Result<hotline::store::Updated, StoreError> {
        self.up()?.update_case_once(u).await
    }
    async fn case_ids(&self, b: u16, open_only: bool) -> Result<Vec<String>, StoreError> {
        self.up()?.case_ids(b, open_only).await
    }
    async fn case_by_code(&self, code: &str) -> Result<Option<CaseRecord>, StoreError> {
        self.up()?.case_by_code(code).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.up()?.ping().await
    }
    async fn watch(&self) -> Result<bool, StoreError> {
        self.up()?.watch().await
    }
    fn disturbances(&self) -> u64 {
        self.inner.disturbances()
    }
    fn kind(&self) -> &'static str {
        "faulty"
    }
}

/// The default config on a Redis (kept alive by the caller: dropping it
/// stops a server the test started), behind a [`Faulty`] store that
/// starts healthy.
async fn faulty_gateway(prefix: &str) -> (RedisServer, Arc<Faulty>, Gateway) {
    let redis = RedisServer::shared_or_start();
    let real = redis_store(&redis, &unique_prefix(prefix)).await;
    let faulty = Faulty::new(real, HEALTHY);
    let gw = Gateway::start_with(
        &common::default_config(),
        &[],
        Some(faulty.clone()),
        hotline::clock::Clock::System,
    )
    .await;
    (redis, faulty, gw)
}

/// A menu hop whose write fails (Redis died between its two round trips)
/// still shows her the next screen on a channel that sends every answer
/// so far, and her next hop goes on from the text: the menu is not ended
/// under her (hostile-traffic audit: each Redis kill sent 4–6 women away).
#[tokio::test]
async fn a_menu_hop_whose_write_fails_goes_on() {
    let (_redis, faulty, gw) = faulty_gateway("menufail").await;
    let (session, phone) = ("ATUid_menufail", "+996555770320");
    assert!(gw.ussd(session, phone, "").await.body.starts_with("CON "));
    faulty.set(MENU_COMMITS_FAIL);
    let city = gw.ussd(session, phone, "2").await;
    assert!(city.body.starts_with("CON "), "{}", city.body);
    faulty.set(HEALTHY);
    let texts = prefix_texts(FINAL);
    for text in &texts[2..texts.len() - 1] {
        let r = gw.ussd(session, phone, text).await;
        assert!(r.body.starts_with("CON "), "{text}: {}", r.body);
    }
    let last = gw.ussd(session, phone, FINAL).await;
    assert!(
        last.body.starts_with("END Спасибо. Ваш код "),
        "{}",
        last.body
    );
    gw.stop().await;
}

/// With the store down, a wrong answer ends her session with the
/// fallback number in the language she chose, not the flow's first
/// (operator audit: after `4` for English she was told in Kyrgyz).
#[tokio::test]
async fn with_the_store_down_she_is_sent_away_in_the_language_she_chose() {
    let (_redis, faulty, gw) = faulty_gateway("downlang").await;
    faulty.set(DOWN);
    let phone = "+996555770310";
    let first = gw.ussd("ATUid_downlang", phone, "").await;
    assert!(first.body.starts_with("CON "), "{}", first.body);
    for (text, start) in [
        ("4*9", "END We cannot take your request right now."),
        ("2*9", "END Сейчас не получается."),
        ("4*1*7", "END We cannot take your request right now."),
        ("9", "END Азыр мүмкүн эмес."),
    ] {
        let r = gw.ussd("ATUid_downlang", phone, text).await;
        assert!(r.body.starts_with(start), "{text}: {}", r.body);
    }
    gw.stop().await;
}

/// Wait (polling the gateway, bounded) until this instance holds codes to
/// show during an outage.
async fn wait_for_offline_codes(gw: &Gateway, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.metric("hotline_offline_codes").await < at_least {
        assert!(Instant::now() < deadline, "codes leased in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The spool files (`cases-*.jsonl`) in a spool folder.
fn spool_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_case_whose_commit_fails_is_spooled_and_replayed_once() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("commitfail");
    let spool = tempfile::tempdir().unwrap();
    let real = redis_store(&redis, &prefix).await;
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
        Some(Faulty::new(real.clone(), CASE_COMMITS_FAIL)),
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
    wait_for_offline_codes(&gw, 16.0).await;
    let done = gw.ussd("ATUid_cf", "+996555500600", FINAL).await;
    assert!(
        done.body.starts_with("END Спасибо. Ваш код "),
        "{}",
        done.body
    );
    // The aggregator retries her last hop at once: the same screen from
    // the spool, and nothing counted twice (the audit saw a retry counted
    // as a second spooled and opened case).
    let again = gw.ussd("ATUid_cf", "+996555500600", FINAL).await;
    let spooled = gw.metric("hotline_cases_spooled_total").await;
    let opened = gw
        .metric(r#"hotline_cases_opened_total{city="bishkek"}"#)
        .await;
    if again.body == done.body {
        assert_eq!((spooled, opened), (1.0, 1.0), "a retry counts nothing");
    } else {
        // The replay (every 500 ms) ran between the two: the retry was a
        // second spooled completion. Rare; not what this checks.
        eprintln!("the spool was replayed between the hop and its retry");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_keys(&redis, &format!("{prefix}:*:c:*")) == 0 {
        assert!(Instant::now() < deadline, "replayed from the spool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let case = open_case(&gw, real.as_ref(), &code_of(&done.body)).await;
    assert_eq!(case.vars["location"], "Station 5");
    // More replay rounds record nothing more.
    let replayer = hotline::worker::SpoolReplayer::new(
        gw.app.deps.clone(),
        gw.app.spool.clone().expect("a spool beside Redis"),
    );
    for _ in 0..3 {
        replayer.tick(gw.app.deps.clock.now_ms()).await;
    }
    assert_eq!(
        count_keys(&redis, &format!("{prefix}:*:c:*")),
        1,
        "once, not per replay tick"
    );
    gw.stop().await;
}

/// With no outage code to show (none leased: here `offline_codes = 0`;
/// in a cluster audit, an instance restarted during the outage), her case
/// is still kept, so she is told it was received — without a code — and
/// not "we cannot take your request" (the flow's `received` screen), and
/// the case lands once the store is back.
#[tokio::test]
async fn a_case_kept_without_a_code_is_told_received_not_refused() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("nocodekept");
    let spool = tempfile::tempdir().unwrap();
    let real = redis_store(&redis, &prefix).await;
    let cfg = common::default_config().replace(
        "[store]\n",
        &format!(
            "[store]\nspool_dir = {:?}\noffline_codes = 0\n",
            spool.path().display().to_string()
        ),
    );
    let gw = Gateway::start_with(
        &cfg,
        &[],
        Some(Faulty::new(real.clone(), CASE_COMMITS_FAIL)),
        hotline::clock::Clock::System,
    )
    .await;
    let texts = prefix_texts(FINAL);
    for text in &texts[..texts.len() - 1] {
        assert!(
            gw.ussd("ATUid_nck", "+996555500601", text)
                .await
                .body
                .starts_with("CON ")
        );
    }
    let done = gw.ussd("ATUid_nck", "+996555500601", FINAL).await;
    assert_eq!(
        done.body, "END Запрос принят, вам позвонят. Если можете, позвоните: +996 000 000 000",
        "received, in her language, no code"
    );
    assert_eq!(gw.metric("hotline_cases_spooled_total").await, 1.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_keys(&redis, &format!("{prefix}:*:c:*")) == 0 {
        assert!(Instant::now() < deadline, "replayed from the spool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
}

/// The dispatch roster of `tests/dispatch_http.rs`: aida (English texts)
/// is on call at [`DISPATCH_T0`].
const DISPATCH_ROSTER: &str = include_str!("fixtures/dispatch/roster.toml");
/// 2026-12-01 10:00 in Bishkek.
const DISPATCH_T0: u64 = 1_796_097_600_000;
const AIDA: &str = "+996555000101";

/// A store on `prefix` of `redis`, with 2 s timeouts.
async fn redis_store(redis: &RedisServer, prefix: &str) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::connect(
            &redis.url,
            prefix,
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .await
        .unwrap(),
    )
}

/// A mock of Africa's Talking's send API that accepts every message.
async fn at_api() -> common::mock::MockServer {
    common::mock::MockServer::start(vec![common::mock::MockResponse::new(
        201,
        r#"{"SMSMessageData":{"Message":"Sent to 1/1","Recipients":[{"statusCode":101,"number":"+996","status":"Success","cost":"KES 0.8","messageId":"ATXid_1"}]}}"#,
    )])
    .await
}

/// Wait (up to 15 s) until the mock was asked to send `phone` `n`
/// messages; returns every one sent to it.
async fn wait_sent(api: &common::mock::MockServer, phone: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = sent_to(api, phone);
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{phone}: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The messages the mock of Africa's Talking was asked to send to `phone`.
fn sent_to(api: &common::mock::MockServer, phone: &str) -> Vec<String> {
    api.requests()
        .iter()
        .filter(|r| r.field("to").as_deref() == Some(phone))
        .map(|r| r.field("message").unwrap_or_default())
        .collect()
}

/// An in-process gateway on `store` with dispatch on (the fixture roster,
/// Aida on call at [`DISPATCH_T0`]), sending through a mock of Africa's
/// Talking at `api_url`, its roster and spool in `dir`.
async fn dispatch_gateway(store: Arc<dyn Store>, api_url: &str, dir: &std::path::Path) -> Gateway {
    std::fs::write(dir.join("roster.toml"), DISPATCH_ROSTER).unwrap();
    let texts = common::root().join("config/lawyer_texts.toml");
    let cfg = common::with_real_channels(&common::default_config())
        .replace(
            "# secret_env = \"HOTLINE_AT_SECRET\"",
            &format!(
                "username = \"hotline\"\napi_key_env = \"HOTLINE_AT_API_KEY\"\nbase_url = \"{api_url}\""
            ),
        )
        .replace(
            "[flows]",
            &format!(
                "[outbox]\npoll_ms = 30\nbackoff_base_ms = 50\n\n[dispatch]\nroster = {:?}\ntexts = {:?}\nsms_channel = \"africastalking\"\n\n[flows]",
                dir.join("roster.toml").display().to_string(),
                texts.display().to_string()
            ),
        )
        .replace(
            "[store]\n",
            &format!(
                "[store]\nspool_dir = {:?}\n",
                dir.join("spool").display().to_string()
            ),
        );
    let env = [
        ("HOTLINE_AT_API_KEY", "k"),
        ("P_NURGUL", "+996555000100"),
        ("P_AIDA", AIDA),
        ("P_BAKYT", "+996555000102"),
        ("P_CHOLPON", "+996555000103"),
    ];
    Gateway::start_with(
        &cfg,
        &env,
        Some(store),
        hotline::clock::Clock::manual(DISPATCH_T0),
    )
    .await
}

/// Audit (reproduced): a commit that timed out but landed (a frozen Redis
/// thawing) recorded her case under its own code; she had been shown a
/// leased code from the spool, which became the case's alias on replay.
/// Every message naming the case named only the other code: the offer,
/// the accepting lawyer's details, her confirmation. Now each names both
/// codes (`code/alias`), and the lawyer's reply with the combined form as
/// printed acts on the case.
#[tokio::test]
async fn the_code_she_was_shown_is_in_every_message_when_it_became_an_alias() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("alias");
    let dir = tempfile::tempdir().unwrap();
    let real = redis_store(&redis, &prefix).await;
    let faulty = Faulty::new(real.clone(), HEALTHY);
    let api = at_api().await;
    let gw = dispatch_gateway(faulty.clone(), &api.url, dir.path()).await;
    let wait_for = |phone: &'static str, n: usize| wait_sent(&api, phone, n);
    let (session, woman) = ("ATUid_alias", "+996555770090");
    let hops = prefix_texts(FINAL);
    for text in &hops[..hops.len() - 1] {
        let r = gw.ussd(session, woman, text).await;
        assert!(r.body.starts_with("CON "), "{}", r.body);
    }
    wait_for_offline_codes(&gw, 16.0).await;
    // Redis froze between her last hop's two round trips: the commit runs
    // when it thaws, after the gateway gave up on it and showed her a
    // leased code from the spool.
    faulty.set(THAWING);
    let done = gw.ussd(session, woman, FINAL).await;
    assert!(
        done.body.starts_with("END Спасибо. Ваш код "),
        "{}",
        done.body
    );
    let shown = code_of(&done.body);
    // The spool replays (here before the outbox claims the first offer).
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metric("hotline_spool_pending").await > 0.0 {
        assert!(Instant::now() < deadline, "spool replayed in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rec = real.case_by_code(&shown).await.unwrap().expect("her case");
    assert_ne!(rec.code, shown, "recorded under the commit's own code");
    assert_eq!(rec.alias.as_deref(), Some(shown.as_str()));
    let both = format!("{}/{shown}", rec.code);
    assert_eq!(gw.metric("hotline_spool_codes_aliased_total").await, 1.0);
    assert_eq!(gw.metric("hotline_spool_codes_changed_total").await, 0.0);
    faulty.set(HEALTHY);
    gw.app.deps.wake.outbox();
    let offer = wait_for(AIDA, 1).await.remove(0);
    assert!(
        offer.starts_with(&format!("{both} Bishkek, 0 min ago: ")),
        "the offer names the code she was shown: {offer}"
    );
    assert!(
        offer.ends_with(&format!("Reply OK or NO {both}")),
        "{offer}"
    );
    assert!(hotline::text::measure(&offer).sms_segments() <= 2);
    // The lawyer answers with the code as printed.
    let body = common::form(&[
        ("from", AIDA),
        ("to", "21212"),
        ("text", &format!("OK {both}")),
        ("id", "lw-alias-1"),
    ]);
    let r = common::post_form(gw.public, "/webhooks/africastalking/sms", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let aida = wait_for(AIDA, 2).await;
    assert_eq!(
        aida[1],
        format!("Case {both} is yours. Call {woman}. Where: Station 5. Close: DONE {both}")
    );
    let confirm = wait_for(woman, 1).await.remove(0);
    assert_eq!(
        confirm,
        format!("Ваш запрос {both} принят. Вам скоро позвонят.")
    );
    gw.stop().await;
}

/// An SMS that comes while Redis is down (her first message; a lawyer's
/// `OFF`) is kept in the local inbox, sealed, and acknowledged with 200;
/// once Redis answers it is handled as if it had just come: she gets her
/// first screen, the lawyer her answer. Before, the gateway answered 503
/// and Kannel (no retries by default) dropped it.
#[tokio::test]
async fn an_sms_sent_while_redis_is_down_is_kept_and_handled_when_it_returns() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("inbox");
    let dir = tempfile::tempdir().unwrap();
    let real = redis_store(&redis, &prefix).await;
    let faulty = Faulty::new(real.clone(), HEALTHY);
    let api = at_api().await;
    let gw = dispatch_gateway(faulty.clone(), &api.url, dir.path()).await;
    let to = |phone: &str| sent_to(&api, phone);
    let woman = "+996555770091";
    let sms = |from: &str, text: &str, id: &str| {
        common::form(&[("from", from), ("to", "21212"), ("text", text), ("id", id)])
    };
    faulty.set(DOWN);
    for (from, text, id) in [(woman, "ПОМОЩЬ", "in-1"), (AIDA, "OFF", "in-2")] {
        let r = common::post_form(
            gw.public,
            "/webhooks/africastalking/sms",
            &sms(from, text, id),
        )
        .await;
        assert_eq!(r.status, 200, "kept, so acknowledged: {}", r.body);
    }
    assert_eq!(
        gw.metric("hotline_sms_kept_total{channel=\"africastalking\"}")
            .await,
        2.0
    );
    assert_eq!(gw.metric("hotline_inbox_pending").await, 2.0);
    let inbox: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".inbox.jsonl"))
        .collect();
    assert_eq!(inbox.len(), 1, "one inbox: {inbox:?}");
    let kept = std::fs::read_to_string(&inbox[0]).unwrap();
    assert_eq!(kept.lines().count(), 2);
    assert!(
        !kept.contains("555770091") && !kept.contains("ПОМОЩЬ") && !kept.contains("OFF"),
        "sealed: {kept}"
    );
    // Nothing was handled meanwhile.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(to(woman).is_empty() && to(AIDA).is_empty());
    faulty.set(HEALTHY);
    let deadline = Instant::now() + Duration::from_secs(15);
    while to(woman).is_empty() || to(AIDA).is_empty() {
        assert!(
            Instant::now() < deadline,
            "handled once Redis is back: her {:?}, the lawyer's {:?}",
            to(woman),
            to(AIDA)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = to(woman).remove(0);
    assert!(first.contains("Язык"), "her first screen: {first}");
    let answer = to(AIDA).remove(0);
    assert!(
        answer == "You are off call. Send ON to come back."
            || answer == "Вы сняты с дежурства. ON — вернуться.",
        "the lawyer's OFF was applied: {answer}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.metric("hotline_inbox_pending").await > 0.0 {
        assert!(Instant::now() < deadline, "the inbox emptied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!inbox[0].exists(), "an empty inbox leaves no file");
    gw.stop().await;
}

/// A lawyer's `OK` kept while Redis was down, for a case Redis then came
/// back without (restarted empty): the case is restored first, then her
/// `OK` is handled and takes it. Before, the kept SMS were handled as soon
/// as Redis answered, while the loss was noticed only at the store watch's
/// next read (every 5 s): she was told "No case", her acceptance was lost,
/// and the woman was later told nobody could reach her (operator audit).
#[tokio::test]
async fn an_ok_kept_during_an_outage_that_lost_her_case_takes_it_once_it_is_restored() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("inbox-lost");
    let dir = tempfile::tempdir().unwrap();
    let real = redis_store(&redis, &prefix).await;
    let faulty = Faulty::new(real.clone(), HEALTHY);
    let api = at_api().await;
    let gw = dispatch_gateway(faulty.clone(), &api.url, dir.path()).await;
    let wait_for = |phone: &'static str, n: usize| wait_sent(&api, phone, n);
    let woman = "+996555770093";
    let mut last = String::new();
    for text in prefix_texts(FINAL) {
        last = gw.ussd("ATUid_il", woman, &text).await.body;
    }
    let code = code_of(&last);
    assert!(wait_for(AIDA, 1).await[0].starts_with(&code));
    // The store watch has read the sentinels (it does at start).
    let watch = hotline::worker::StoreWatch::new(gw.app.deps.clone());
    assert!(watch.tick().await);
    faulty.set(DOWN);
    let body = common::form(&[
        ("from", AIDA),
        ("to", "21212"),
        ("text", &format!("OK {code}")),
        ("id", "lw-kept-1"),
    ]);
    let r = common::post_form(gw.public, "/webhooks/africastalking/sms", &body).await;
    assert_eq!(r.status, 200, "kept: {}", r.body);
    assert_eq!(gw.metric("hotline_inbox_pending").await, 1.0);
    // Redis comes back without anything it held.
    assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
    faulty.set(HEALTHY);
    let confirm = wait_for(woman, 1).await.remove(0);
    assert_eq!(
        confirm,
        format!("Ваш запрос {code} принят. Вам скоро позвонят."),
        "her case restored, then the lawyer's OK took it"
    );
    let aida = wait_for(AIDA, 2).await;
    assert!(
        aida.iter()
            .any(|m| m.starts_with(&format!("Case {code} is yours."))),
        "{aida:?}"
    );
    assert!(
        !aida.iter().any(|m| m.starts_with("No case")),
        "never told there is no case: {aida:?}"
    );
    assert_eq!(gw.metric("hotline_cases_restored_total").await, 1.0);
    assert_eq!(gw.metric("hotline_store_data_lost_total").await, 1.0);
    gw.stop().await;
}

/// A Redis that comes back empty gives back the cases of the last hour as
/// they stood on this instance: an accepted one accepted (no offer again,
/// no "nobody could reach you" to her), a closed one not at all; an open
/// one is offered again from the start. Before, every one came back as
/// first recorded: open, offered again, and the woman whose lawyer had
/// accepted was later told nobody could reach her (operator audit).
#[tokio::test]
async fn cases_a_lost_redis_gives_back_come_back_as_they_stood() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("stood");
    let dir = tempfile::tempdir().unwrap();
    let real = redis_store(&redis, &prefix).await;
    let api = at_api().await;
    let gw = dispatch_gateway(real.clone(), &api.url, dir.path()).await;
    let wait_for = |phone: &'static str, n: usize| wait_sent(&api, phone, n);
    let lawyer = |text: String, id: &'static str| {
        let gw = &gw;
        async move {
            let body =
                common::form(&[("from", AIDA), ("to", "21212"), ("text", &text), ("id", id)]);
            let r = common::post_form(gw.public, "/webhooks/africastalking/sms", &body).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    let open = |session: &'static str, woman: &'static str| {
        let gw = &gw;
        async move {
            let mut last = String::new();
            for text in prefix_texts(FINAL) {
                last = gw.ussd(session, woman, &text).await.body;
            }
            code_of(&last)
        }
    };
    let (wa, wb, wc) = ("+996555770094", "+996555770095", "+996555770096");
    let ca = open("ATUid_sa", wa).await;
    wait_for(AIDA, 1).await;
    lawyer(format!("OK {ca}"), "st-1").await;
    wait_for(wa, 1).await;
    let cb = open("ATUid_sb", wb).await;
    wait_for(AIDA, 3).await;
    lawyer(format!("OK {cb}"), "st-2").await;
    wait_for(wb, 1).await;
    lawyer(format!("DONE {cb} REL"), "st-3").await;
    let cc = open("ATUid_sc", wc).await;
    let before = wait_for(AIDA, 6).await;
    let offers = |msgs: &[String], code: &str| {
        msgs.iter()
            .filter(|m| m.starts_with(&format!("{code} Bishkek")))
            .count()
    };
    assert_eq!(
        (offers(&before, &ca), offers(&before, &cc)),
        (1, 1),
        "{before:?}"
    );
    let watch = hotline::worker::StoreWatch::new(gw.app.deps.clone());
    assert!(watch.tick().await);
    // Redis comes back with nothing.
    assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
    assert!(watch.tick().await);
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.metric("hotline_cases_restored_total").await < 2.0 {
        assert!(Instant::now() < deadline, "restored in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = open_case(&gw, real.as_ref(), &ca).await;
    assert_eq!(
        a.dispatch.accepted_by.as_deref(),
        Some("aida"),
        "accepted, as it stood"
    );
    assert!(
        real.case_by_code(&cb).await.unwrap().is_none(),
        "closed: not brought back"
    );
    let c = open_case(&gw, real.as_ref(), &cc).await;
    assert!(c.dispatch.accepted_by.is_none());
    // The open one is offered again; the accepted one is not.
    let after = wait_for(AIDA, before.len() + 1).await;
    common::outbox_idle(&gw).await;
    let after_all = sent_to(&api, AIDA);
    assert_eq!(offers(&after_all, &ca), 1, "{after:?}");
    assert_eq!(offers(&after_all, &cc), 2, "{after_all:?}");
    // Past her unanswered time: she is not told nobody reached her.
    gw.clock.advance(16 * 60 * 1000);
    let deadline = Instant::now() + Duration::from_secs(15);
    while sent_to(&api, wc).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the open case's woman is told, timers run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    common::outbox_idle(&gw).await;
    assert_eq!(
        sent_to(&api, wa).len(),
        1,
        "only her confirmation: {:?}",
        sent_to(&api, wa)
    );
    assert_eq!(gw.metric("hotline_cases_restored_total").await, 2.0);
    gw.stop().await;
}

/// A Redis restarted empty has lost the codes of the cases recorded
/// before, and calls them free until each instance has noticed and
/// recorded its cases again. A woman who finishes in that window is not
/// given a code from it: her case is kept in the spool with a code leased
/// for outages (none of a case's), recorded from there, and every code
/// shown stays its woman's (Redis Cluster audit: a new woman was shown a
/// code a restored case then had to give up).
#[tokio::test]
async fn a_woman_who_finishes_while_a_lost_redis_is_restored_gets_a_code_nobody_holds() {
    let mut redis = RedisServer::start();
    let prefix = unique_prefix("window");
    let dir = tempfile::tempdir().unwrap();
    let real = redis_store(&redis, &prefix).await;
    let api = at_api().await;
    let gw = dispatch_gateway(real.clone(), &api.url, dir.path()).await;
    wait_for_offline_codes(&gw, 8.0 * 16.0).await;
    let walk = |session: &'static str, woman: &'static str| {
        let gw = &gw;
        async move {
            let mut last = String::new();
            for text in prefix_texts(FINAL) {
                last = gw.ussd(session, woman, &text).await.body;
            }
            last
        }
    };
    let (wa, wb) = ("+996555770201", "+996555770202");
    let ca = code_of(&walk("ATUid_wa", wa).await);
    let watch = hotline::worker::StoreWatch::new(gw.app.deps.clone());
    assert!(watch.tick().await);
    let spooled = || gw.metric("hotline_cases_spooled_total");
    assert_eq!(spooled().await, 0.0);

    redis.stop();
    redis.restart();
    // Her whole session after the restart: the first call meets the
    // dropped connection, and the store is doubted from then on.
    let last = walk("ATUid_wb", wb).await;
    assert!(last.starts_with("END Спасибо. Ваш код "), "{last}");
    let cb = code_of(&last);
    assert_eq!(
        spooled().await,
        1.0,
        "kept in the spool, not given a code Redis calls free"
    );
    assert_ne!(cb, ca);

    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.metric("hotline_cases_restored_total").await < 1.0
        || gw.metric("hotline_spool_pending").await > 0.0
        || real.case_by_code(&cb).await.ok().flatten().is_none()
    {
        assert!(Instant::now() < deadline, "restored and replayed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = open_case(&gw, real.as_ref(), &ca).await;
    assert_eq!(a.caller.as_ref().map(|c| c.as_str()), Some(wa));
    let b = open_case(&gw, real.as_ref(), &cb).await;
    assert_eq!(b.caller.as_ref().map(|c| c.as_str()), Some(wb));
    assert_eq!(gw.metric("hotline_spool_codes_changed_total").await, 0.0);
    gw.stop().await;
}

/// On Redis too (`commit.lua` finds every candidate taken): the woman who
/// finished is sent to the fallback number, never shown a code, nothing of
/// hers is written, the commit is not spooled (a replay would meet the same
/// codes), and `hotline_cases_not_recorded_total` counts it.
#[tokio::test]
async fn with_every_candidate_code_taken_on_redis_nothing_is_shown_spooled_or_written() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("nocode");
    let spool = tempfile::tempdir().unwrap();
    let gw = Gateway::start_redis(&redis.url, &prefix, spool.path()).await;
    let (session, phone) = ("ATUid_nocode", "+996555500700");
    let taken = gw.take_her_case_codes(session, phone).await;
    let texts = prefix_texts(FINAL);
    for text in &texts[..texts.len() - 1] {
        let r = gw.ussd(session, phone, text).await;
        assert!(r.body.starts_with("CON "), "{}", r.body);
    }
    let end = gw.ussd(session, phone, FINAL).await.body;
    assert_eq!(
        end, "END Сейчас не получается. Позвоните нам: +996 000 000 000",
        "the fallback screen in her language"
    );
    assert!(!taken.iter().any(|c| end.contains(c.as_str())), "{end}");
    assert_eq!(
        gw.metric(r#"hotline_cases_not_recorded_total{reason="codes_exhausted"}"#)
            .await,
        1.0
    );
    assert_eq!(gw.metric("hotline_cases_spooled_total").await, 0.0);
    assert_eq!(
        count_keys(&redis, &format!("{prefix}:*:c:*")),
        count_keys(&redis, &format!("{prefix}:*:c:filler-*")),
        "the fillers' cases, not hers"
    );
    gw.stop().await;
}

/// Every four-digit code of a bucket.
fn short_codes(bucket: u16) -> Vec<String> {
    (1000..10_000u32)
        .filter(|c| c % u32::from(BUCKETS) == u32::from(bucket))
        .map(|c| c.to_string())
        .collect()
}

/// A code shown while the store is down is the code of her case after
/// replay, even with 30% of a bucket's four-digit codes in use by live
/// cases, quarantined ones and another instance's spooled cases.
#[tokio::test]
async fn codes_shown_during_an_outage_are_the_codes_of_the_cases() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("offlinecodes");
    let spool = tempfile::tempdir().unwrap();
    let real = redis_store(&redis, &prefix).await;
    let faulty = Faulty::new(real.clone(), HEALTHY);
    let cfg = common::default_config().replace(
        "[store]\n",
        &format!(
            "[store]\nspool_dir = {:?}\noffline_codes = 24\n",
            spool.path().display().to_string()
        ),
    );
    let gw = Gateway::start_with(
        &cfg,
        &[],
        Some(faulty.clone()),
        hotline::clock::Clock::System,
    )
    .await;
    wait_for_offline_codes(&gw, 24.0 * 16.0).await;
    let privacy = &gw.app.deps.privacy;
    // Twenty women whose numbers fall in one bucket.
    let phones: Vec<String> = (0..)
        .map(|i| format!("+99655580{i:04}"))
        .scan(None, |bucket, p| {
            let b = privacy.pseudonym(&p).bucket(BUCKETS);
            Some((*bucket.get_or_insert(b) == b).then_some(p))
        })
        .flatten()
        .take(20)
        .collect();
    let bucket = privacy.pseudonym(&phones[0]).bucket(BUCKETS);
    let all = short_codes(bucket);
    // 30% of the bucket's four-digit codes in use: 100 live cases, 50
    // closed less than 72 h ago, and (below) 19 in a crashed instance's
    // spool. They are allocated as other instances would, offered every
    // code of the bucket in order, leased ones included.
    let now = hotline::clock::Clock::System.now_ms();
    let mut used = Vec::new();
    for i in 0..150 {
        let mut candidates = all.clone();
        candidates.rotate_left(i * 3);
        let case = NewCase {
            id: format!("c_fill{i}"),
            code_candidates: candidates,
            data: b"sealed".to_vec(),
            jobs: Vec::new(),
        };
        let code = real.record_case(bucket, case, now).await.unwrap();
        if i >= 100 {
            let closed = real
                .update_case(hotline::store::CaseUpdate {
                    bucket,
                    id: format!("c_fill{i}"),
                    code: code.clone(),
                    alias: None,
                    expected_version: 1,
                    data: b"sealed".to_vec(),
                    close: true,
                    jobs: Vec::new(),
                    mark: None,
                    mark_global: false,
                    now_ms: now,
                })
                .await
                .unwrap();
            assert!(closed);
        }
        used.push(code);
    }
    // The outage.
    faulty.set(DOWN);
    let lines: Vec<String> = (0..19)
        .map(|i| {
            serde_json::json!({
                "bucket": bucket, "id": format!("c_orphan{i}"), "codes": all,
                "data": "c2VhbGVk", "jobs": [], "spooled_at_ms": now,
            })
            .to_string()
        })
        .collect();
    std::fs::write(
        spool.path().join("cases-deadbeef.jsonl"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    let mut shown = Vec::new();
    for (i, phone) in phones.iter().enumerate() {
        let session = format!("ATUid_off_{i}");
        let r = gw.ussd(&session, phone, FINAL).await;
        assert!(r.body.starts_with("END Спасибо. Ваш код "), "{}", r.body);
        let again = gw.ussd(&session, phone, FINAL).await;
        assert_eq!(again.body, r.body, "a retry shows the same code");
        shown.push((session, phone.clone(), code_of(&r.body)));
    }
    assert_eq!(gw.metric("hotline_spool_pending").await, 20.0);
    // The outbox and the timers cannot claim meanwhile: counted (a Redis
    // that refused every write stopped every offer, and nothing said so).
    let claims = r#"hotline_store_errors_total{op="claim"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metric(claims).await == 0.0 {
        assert!(Instant::now() < deadline, "failed claims are counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faulty.set(HEALTHY);
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.metric("hotline_spool_pending").await > 0.0 || spool_files(spool.path()).len() > 1 {
        assert!(Instant::now() < deadline, "spools replayed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut distinct: Vec<&String> = shown.iter().map(|(_, _, c)| c).collect();
    distinct.sort();
    distinct.dedup();
    let mut right = 0;
    for (_, phone, code) in &shown {
        // Her number opens one session here: the code's case is hers
        // when it is her number's.
        let case = open_case(&gw, real.as_ref(), code).await;
        assert_eq!(
            case.caller.as_ref().map(|c| c.as_str()),
            Some(phone.as_str())
        );
        assert!(
            !used.contains(code),
            "not a live or quarantined case's code"
        );
        right += 1;
    }
    let cases = real.case_ids(bucket, false).await.unwrap().len();
    let mut orphans = 0;
    for i in 0..19 {
        let rec = real.case(bucket, &format!("c_orphan{i}")).await.unwrap();
        if rec.is_some_and(|c| !shown.iter().any(|(_, _, s)| *s == c.code)) {
            orphans += 1;
        }
    }
    let changed = gw.metric("hotline_spool_codes_changed_total").await;
    eprintln!(
        "outage: {} sessions, {} codes shown, {} distinct, {right} open their own case; \
         bucket holds {cases} cases (150 filler + 19 orphaned + 20), {orphans} orphans on other codes, \
         codes changed {changed}",
        shown.len(),
        shown.len(),
        distinct.len()
    );
    assert_eq!(distinct.len(), 20, "no code shown twice");
    assert_eq!(right, 20);
    assert_eq!(
        orphans, 19,
        "a crashed instance's spooled cases landed, on other codes"
    );
    assert_eq!(cases, 150 + 19 + 20, "nothing lost, nothing twice");
    assert_eq!(changed, 0.0);
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
    wait_for_offline_codes(&gw, 8.0 * 16.0).await;
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
    // The store ping reads the sentinel (`Store::watch`).
    let sentinel = format!(
        "EVALSHA {}",
        sha(include_str!("../src/store/lua/sentinel.lua"))
    );
    // The code leaser renews this instance's outage codes in the background.
    let lease = format!(
        "EVALSHA {}",
        sha(include_str!("../src/store/lua/lease.lua"))
    );
    let hot: Vec<&String> = commands
        .iter()
        .filter(|c| **c == begin || **c == commit)
        .collect();
    // Background work that may fall in the window: the outbox worker's
    // gauges (the whole outbox, every 10 s), the case gauges (each
    // bucket's open set and its cases) and the store ping behind
    // `hotline_store_up`. None of it is the webhook's.
    let gauges = |c: &str| {
        (c.starts_with("ZRANGE ") && c.ends_with(":q:outbox"))
            || (c.starts_with("HMGET ") && c.ends_with(":j:outbox"))
            || (c.starts_with("SMEMBERS ") && c.ends_with(":open"))
            || (c.starts_with("HMGET ") && c.contains(":c:"))
            || c.trim() == "PING"
            || *c == sentinel
    };
    let other: Vec<&String> = commands
        .iter()
        .filter(|c| **c != begin && **c != commit && **c != claim && **c != lease && !gauges(c))
        .collect();
    eprintln!(
        "{hops} hops (the last opens a case): {} webhook commands, {:.2} round trips per hop ({} background outbox polls and lease renewals)",
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
    let mut ended = Vec::new();
    for key in redis
        .cli(&["--scan", "--pattern", &format!("{prefix}:*:s:*")])
        .lines()
        .filter(|l| !l.is_empty())
    {
        let bytes: u64 = redis.cli(&["memory", "usage", key]).trim().parse().unwrap();
        // An ended session keeps only its last reply, for retries of it.
        if redis.cli(&["hexists", key, "v"]).trim() == "1" {
            sizes.push(bytes);
        } else {
            ended.push(bytes);
        }
    }
    assert_eq!(sizes.len(), 21, "20 sessions and the warm-up one");
    assert_eq!(ended.len(), 1, "the measured session ended");
    let avg = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
    eprintln!(
        "session key MEMORY USAGE: avg {avg:.0} bytes, max {} bytes",
        sizes.iter().max().unwrap()
    );
    eprintln!(
        "an ended session's last reply (kept for retries): {} bytes",
        ended[0]
    );
    assert_eq!(
        count_keys(&redis, &format!("{prefix}:*:d:*")),
        0,
        "a USSD hop's reply lives in its session's key, not a key of its own"
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

/// Every value Redis holds under `prefix`, read with the command its type
/// needs, as one text.
fn every_value(redis: &RedisServer, prefix: &str) -> String {
    let mut all = String::new();
    for key in redis
        .cli(&["--scan", "--pattern", &format!("{prefix}:*")])
        .lines()
        .filter(|l| !l.is_empty())
    {
        let kind = redis.cli(&["TYPE", key]);
        let value = match kind.trim() {
            "string" => redis.cli(&["GET", key]),
            "hash" => redis.cli(&["HGETALL", key]),
            "zset" => redis.cli(&["ZRANGE", key, "0", "-1"]),
            "set" => redis.cli(&["SMEMBERS", key]),
            other => format!("<{other}>"),
        };
        all.push_str(key);
        all.push('\n');
        all.push_str(&value);
    }
    all
}

/// A session in Redis is sealed JSON, as every earlier version wrote it
/// and read it: two versions of the gateway share one Redis during a
/// rolling deploy, so only the in-process store may keep its compact form
/// (docs/performance.md).
#[tokio::test]
async fn a_session_in_redis_is_sealed_json_that_every_version_reads() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("format");
    let spool = tempfile::tempdir().unwrap();
    let gw = Gateway::start_redis(&redis.url, &prefix, spool.path()).await;
    let (session, phone) = ("ATUid_format", "+996555300902");
    for text in ["", "2"] {
        let hop = gw.ussd(session, phone, text).await;
        assert!(hop.body.starts_with("CON "), "{}", hop.body);
    }
    let deps = &gw.app.deps;
    assert!(!deps.store.in_process());
    let data = gw.stored_ussd_session(session, phone).await;
    assert!(
        !data.windows(10).any(|w| w == b"legal_help"),
        "sealed: nothing of it in clear"
    );
    let state: serde_json::Value = deps
        .privacy
        .open_json(&data)
        .expect("sealed JSON under the gateway's key");
    assert_eq!(state["f"], "legal_help", "{state}");
    assert_eq!(state["st"]["s"], 1, "one screen answered: {state}");
    assert_eq!(state["c"], 1, "one byte of text consumed: {state}");
    gw.stop().await;
}

#[tokio::test]
async fn the_reply_cache_keeps_no_screen_in_clear() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("sealed");
    let spool = tempfile::tempdir().unwrap();
    let gw = Gateway::start_redis(&redis.url, &prefix, spool.path()).await;
    let texts = prefix_texts(FINAL);
    let mut screens = Vec::new();
    for text in &texts {
        screens.push(gw.ussd("ATUid_sealed", "+996555300900", text).await.body);
    }
    // A retry of the last hop (the session has ended) is still answered
    // with the same screen, from the sealed reply kept in the session's
    // key (only a session's latest hop is retried: the phone waits for it).
    let last = texts.len() - 1;
    let retry = gw.ussd("ATUid_sealed", "+996555300900", &texts[last]).await;
    assert_eq!(retry.body, screens[last]);
    let dump = every_value(&redis, &prefix);
    let key = hotline::store::keys::ussd_session(
        "africastalking",
        "ATUid_sealed",
        gw.app.deps.privacy.pseudonym("+996555300900").as_str(),
    );
    assert!(
        dump.contains(&format!(":s:{key}\nr\n")),
        "the reply cache is there: {dump}"
    );
    for screen in &screens {
        // Any line of any screen, beyond its CON/END prefix.
        for line in screen[4..].lines().filter(|l| l.chars().count() > 3) {
            assert!(!dump.contains(line), "{line:?} in clear in Redis");
        }
    }
    assert!(!dump.contains("555300900"), "her number in clear");
    assert!(!dump.contains("Station 5"), "her location in clear");
    gw.stop().await;
}

#[tokio::test]
async fn a_graceful_stop_gives_back_the_outage_codes_it_never_showed() {
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("release");
    let spool = tempfile::tempdir().unwrap();
    let gw = Gateway::start_redis(&redis.url, &prefix, spool.path()).await;
    wait_for_offline_codes(&gw, 16.0).await;
    let leased = count_keys(&redis, &format!("{prefix}:*:code:*"));
    assert!(
        leased >= 16,
        "codes leased while the store answers: {leased}"
    );
    gw.stop().await;
    // Each was held again for a millisecond: Redis lets them go at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count_keys(&redis, &format!("{prefix}:*:code:*")) > 0 {
        assert!(
            Instant::now() < deadline,
            "unused leases given back at the stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_instance_reports_the_whole_outbox_per_channel_from_the_store() {
    use hotline::outbox::{OutMsg, Purpose, Recipient};
    use hotline::phone::PhoneNumber;
    let redis = RedisServer::shared_or_start();
    let prefix = unique_prefix("depth");
    let spool = tempfile::tempdir().unwrap();
    let a = Gateway::start_redis(&redis.url, &prefix, spool.path()).await;
    let b = Gateway::start_redis(&redis.url, &prefix, &spool.path().join("b")).await;
    let now = hotline::clock::Clock::System.now_ms();
    let msg = |channel: &str, age_s: u64| OutMsg {
        channel: channel.into(),
        to: PhoneNumber::parse_international("+996555100300").unwrap(),
        text: "depth".into(),
        purpose: Purpose::Notice,
        recipient: Recipient::Lawyer { id: "aida".into() },
        case: None,
        created_ms: now - age_s * 1000,
        case_opened_ms: None,
    };
    // Queued through instance A, in three buckets, due in an hour (so no
    // instance sends them while the test looks).
    let queued = [
        ("africastalking", 120),
        ("africastalking", 30),
        ("console", 600),
    ];
    for (i, (channel, age)) in queued.iter().enumerate() {
        let bucket = u16::try_from(i * 5).unwrap();
        let (queue, job) = hotline::outbox::job(
            &a.app.deps.privacy,
            bucket,
            &format!("depth-{i}"),
            &msg(channel, *age),
            now + 3_600_000,
        )
        .unwrap();
        a.app
            .deps
            .store
            .schedule(bucket, queue, vec![job])
            .await
            .unwrap();
    }
    // Instance B holds none of them: what it reports comes from the store.
    b.app.outbox.refresh_queue_gauges().await;
    let depth = |ch: &str| format!("hotline_outbox_depth{{channel=\"{ch}\"}}");
    let oldest = |ch: &str| format!("hotline_outbox_oldest_seconds{{channel=\"{ch}\"}}");
    assert_eq!(b.metric(&depth("africastalking")).await, 2.0);
    assert_eq!(b.metric(&depth("console")).await, 1.0);
    let at = b.metric(&oldest("africastalking")).await;
    assert!((120.0..3600.0).contains(&at), "{at}");
    let console = b.metric(&oldest("console")).await;
    assert!((600.0..3600.0).contains(&console), "{console}");
    assert_eq!(
        b.metric("hotline_outbox_held{channel=\"console\"}").await,
        0.0
    );
    // Sent (finished) by whichever instance: it leaves the gauges.
    let store = &a.app.deps.store;
    let claimed = store
        .claim(10, Queue::Outbox, now + 3_600_001, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store
            .finish(10, Queue::Outbox, &claimed[0].job.id, claimed[0].attempt)
            .await
            .unwrap()
    );
    a.app.outbox.refresh_queue_gauges().await;
    assert_eq!(a.metric(&depth("console")).await, 0.0);
    assert_eq!(a.metric(&oldest("console")).await, 0.0);
    assert_eq!(a.metric(&depth("africastalking")).await, 2.0);
    a.stop().await;
    b.stop().await;
}

/// The default config on `redis` under `prefix`, its store at hand (the
/// store watch's tests read it directly).
async fn on_own_redis(redis: &RedisServer, prefix: &str) -> (Arc<dyn Store>, Gateway) {
    let store: Arc<dyn Store> = Arc::new(
        RedisStore::connect(
            &redis.url,
            prefix,
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .await
        .unwrap(),
    );
    let gw = Gateway::start_with(
        &common::default_config(),
        &[],
        Some(store.clone()),
        hotline::clock::Clock::System,
    )
    .await;
    (store, gw)
}

/// A Redis that comes back empty (restarted without persistence, flushed,
/// failed over to an empty replica) takes every open case, queued offer
/// and timer with it, and answers pings as if nothing happened: an audit
/// found the gateway "ready", `hotline_store_up` 1, and nobody told. The
/// store watch's ping reads a sentinel key: its loss is logged and counted
/// (`HotlineStoreDataLost` pages), once.
#[tokio::test]
async fn a_redis_that_comes_back_empty_is_noticed_once() {
    let redis = RedisServer::start();
    let (store, gw) = on_own_redis(&redis, &unique_prefix("lost")).await;
    for text in prefix_texts(FINAL) {
        gw.ussd("ATUid_lost", "+996555500700", &text).await;
    }
    let code = code_of(&gw.ussd("ATUid_lost", "+996555500700", FINAL).await.body);
    assert!(store.case_by_code(&code).await.unwrap().is_some());
    let watch = hotline::worker::StoreWatch::new(gw.app.deps.clone());
    assert!(watch.tick().await, "the store answers");
    assert!(watch.tick().await);
    let lost = || gw.metric("hotline_store_data_lost_total");
    assert_eq!(lost().await, 0.0, "nothing lost while Redis keeps its data");

    // Redis loses everything (as a restart without persistence would;
    // flushed here, so that no port is given up and taken by another
    // test's server meanwhile).
    assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lost().await == 0.0 {
        assert!(Instant::now() < deadline, "the loss is noticed");
        watch.tick().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lost().await, 1.0);
    assert!(
        store.case_by_code(&code).await.unwrap().is_none(),
        "her case is gone: why this pages"
    );
    // Once per loss, not at every ping after it.
    for _ in 0..3 {
        assert!(watch.tick().await);
    }
    assert_eq!(lost().await, 1.0);
    gw.stop().await;
}

/// Two instances on one Redis that comes back empty: both notice, whichever
/// writes the sentinel again first. Each instance wrote the same value into
/// a missing sentinel for its whole life, so the second to look found the
/// value it had seen before, rewritten by the first, and noticed nothing —
/// its own newest cases were never rechecked (operator audit: a woman shown
/// 2119 had no case, and `hotline cases` did not list her). A sentinel is
/// now written with a value of its own each time.
#[tokio::test]
async fn every_instance_notices_a_redis_that_comes_back_empty() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("lost2");
    let connect = || async {
        RedisStore::connect(
            &redis.url,
            &prefix,
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .await
        .unwrap()
    };
    let (a, b) = (connect().await, connect().await);
    // Both look (a writes the sentinel, b reads a's), twice: no loss.
    for _ in 0..2 {
        assert!(!a.watch().await.unwrap());
        assert!(!b.watch().await.unwrap());
    }
    let (da, db) = (a.disturbances(), b.disturbances());
    assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
    // a looks first and writes it again; b must still notice.
    assert!(a.watch().await.unwrap(), "a notices");
    assert!(b.watch().await.unwrap(), "b notices too");
    assert!(a.disturbances() > da && b.disturbances() > db);
    // Once each.
    assert!(!a.watch().await.unwrap());
    assert!(!b.watch().await.unwrap());
    // And the other order.
    assert_eq!(redis.cli(&["FLUSHALL"]).trim(), "OK");
    assert!(b.watch().await.unwrap(), "b notices");
    assert!(a.watch().await.unwrap(), "a notices too");
}

/// A Redis that comes back from an older copy of its data (an RDB snapshot,
/// a replica that lacked the last writes) still holds the sentinel, written
/// long before: only what was written since is gone, silently. The ping
/// also moves a heartbeat on that only ever grows; read back smaller than
/// this instance left it, the store went back in time: counted as a loss
/// (`HotlineStoreDataLost` pages), once, and the recent cases rechecked.
#[tokio::test]
async fn a_redis_that_goes_back_to_an_older_copy_is_noticed() {
    let redis = RedisServer::start();
    let prefix = unique_prefix("older");
    let (store, gw) = on_own_redis(&redis, &prefix).await;
    let watch = hotline::worker::StoreWatch::new(gw.app.deps.clone());
    let beat_key = format!("{prefix}:{{g}}:sentinel:t");
    assert!(watch.tick().await);
    let first: u64 = redis.cli(&["GET", &beat_key]).trim().parse().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(watch.tick().await);
    let later: u64 = redis.cli(&["GET", &beat_key]).trim().parse().unwrap();
    assert!(
        later > first,
        "the heartbeat moves on: {first} then {later}"
    );
    let lost = || gw.metric("hotline_store_data_lost_total");
    assert_eq!(lost().await, 0.0);
    let before = store.disturbances();

    // Redis is back at the copy it had at `first` (the sentinel there).
    redis.cli(&["SET", &beat_key, &first.to_string()]);
    assert!(watch.tick().await);
    assert_eq!(lost().await, 1.0, "went back in time: a loss");
    assert!(
        store.disturbances() > before,
        "the recent cases are rechecked"
    );
    for _ in 0..3 {
        assert!(watch.tick().await);
    }
    assert_eq!(lost().await, 1.0, "once");
    gw.stop().await;
}
