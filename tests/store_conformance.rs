//! One conformance suite, run against the embedded store and against a real
//! Redis: every behaviour the gateway relies on, the same on both.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::redis::{RedisServer, unique_prefix};
use hotline::store::memory::MemoryStore;
use hotline::store::redis::RedisStore;
use hotline::store::{
    Begin, BeginRequest, CachedReply, CaseBegin, CaseCommandBegin, CodeLease, Commit,
    CommitRequest, Job, KvWrite, LawyerBegin, LawyerCommandBegin, LeaseRequest, LeasedRecord,
    NewCase, Queue, RateLimit, SessionWrite, SetAdd, Store, StoreError,
};

/// A store and a notion of time: virtual for memory, real for Redis (whose
/// TTLs run on its own clock).
trait Env: Send + Sync {
    fn store(&self) -> &dyn Store;
    fn now(&self) -> u64;
    async fn wait(&self, ms: u64);
}

struct Mem {
    store: MemoryStore,
    now: AtomicU64,
}

impl Env for Mem {
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    async fn wait(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

struct Red {
    store: RedisStore,
    _server: RedisServer,
}

impl Env for Red {
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn now(&self) -> u64 {
        hotline::clock::Clock::System.now_ms()
    }
    async fn wait(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn mem() -> Mem {
    Mem {
        store: MemoryStore::new(1000),
        now: AtomicU64::new(1_000_000),
    }
}

async fn red(test: &str) -> Red {
    let server = RedisServer::shared_or_start();
    let store = RedisStore::connect(
        &server.url,
        &unique_prefix(test),
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await
    .expect("connects to the test Redis");
    Red {
        store,
        _server: server,
    }
}

const LIMIT: RateLimit = RateLimit {
    per_minute: 600,
    burst: 3,
};

fn begin_req(env: &impl Env, dedupe: &str, rate: &str, session: &str) -> BeginRequest {
    BeginRequest {
        bucket: 5,
        dedupe_key: dedupe.into(),
        rate_key: rate.into(),
        rate: RateLimit {
            per_minute: 6000,
            burst: 1000,
        },
        session_key: session.into(),
        dedupe_scope: None,
        now_ms: env.now(),
    }
}

fn commit_req(
    env: &impl Env,
    session: &str,
    expected: u64,
    dedupe: &str,
    text: &str,
    case: Option<NewCase>,
) -> CommitRequest {
    CommitRequest {
        bucket: 5,
        session_key: session.into(),
        expected_version: expected,
        session: SessionWrite::Save {
            data: format!("data-{text}").into_bytes(),
            ttl_ms: 60_000,
        },
        dedupe_key: dedupe.into(),
        reply: CachedReply {
            text: text.into(),
            end: false,
            code: None,
        },
        dedupe_ttl_ms: 60_000,
        dedupe_scope: None,
        case,
        jobs: Vec::new(),
        kv: Vec::new(),
        now_ms: env.now(),
    }
}

fn case(id: &str, codes: &[&str]) -> NewCase {
    NewCase {
        id: id.into(),
        code_candidates: codes.iter().map(|c| (*c).to_owned()).collect(),
        data: format!("sealed-{id}").into_bytes(),
        jobs: vec![
            (
                Queue::Outbox,
                Job {
                    id: format!("{id}-offer"),
                    due_ms: 0,
                    payload: b"offer".to_vec(),
                },
            ),
            (
                Queue::Timers,
                Job {
                    id: format!("{id}-escalate"),
                    due_ms: 0,
                    payload: b"escalate".to_vec(),
                },
            ),
        ],
    }
}

async fn load(env: &impl Env, session: &str) -> Option<(u64, Vec<u8>)> {
    let fresh = format!("probe-{}", rand_id());
    match env
        .store()
        .begin(begin_req(env, &fresh, "probe", session))
        .await
        .unwrap()
    {
        Begin::Proceed(Some(r)) => Some((r.version, r.data)),
        Begin::Proceed(None) => None,
        other => panic!("unexpected {other:?}"),
    }
}

fn rand_id() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

// ------------------------------------------------------------------ checks

async fn dedupe_returns_the_first_reply(env: impl Env) {
    let s = env.store();
    assert_eq!(
        s.begin(begin_req(&env, "d1", "r", "s1")).await.unwrap(),
        Begin::Proceed(None)
    );
    let saved = s
        .commit(commit_req(
            &env,
            "s1",
            0,
            "d1",
            "first screen",
            Some(case("c1", &["1237"])),
        ))
        .await
        .unwrap();
    assert_eq!(
        saved,
        Commit::Saved {
            code: Some("1237".into())
        }
    );
    match s.begin(begin_req(&env, "d1", "r", "s1")).await.unwrap() {
        Begin::Duplicate(r) => {
            assert_eq!(r.text, "first screen");
            assert_eq!(r.code.as_deref(), Some("1237"));
            assert!(!r.end);
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    // A new delivery on the same session proceeds with the saved session.
    match s.begin(begin_req(&env, "d2", "r", "s1")).await.unwrap() {
        Begin::Proceed(Some(rec)) => {
            assert!(rec.version > 0);
            assert_eq!(rec.data, b"data-first screen");
        }
        other => panic!("{other:?}"),
    }
}

async fn rate_limit_allows_the_burst_then_the_rate(env: impl Env) {
    let s = env.store();
    let req = |dedupe: &str| BeginRequest {
        rate: LIMIT,
        ..begin_req(&env, dedupe, "caller-x", "s-rate")
    };
    for i in 0..3 {
        assert!(
            matches!(
                s.begin(req(&format!("a{i}"))).await.unwrap(),
                Begin::Proceed(_)
            ),
            "request {i} in burst"
        );
    }
    match s.begin(req("a3")).await.unwrap() {
        Begin::Limited { retry_after_ms } => assert!(
            retry_after_ms > 0 && retry_after_ms <= 100,
            "{retry_after_ms}"
        ),
        other => panic!("the 4th within the burst window is limited: {other:?}"),
    }
    // Another caller is not affected.
    let other = BeginRequest {
        rate: LIMIT,
        ..begin_req(&env, "b0", "caller-y", "s-rate-y")
    };
    assert!(matches!(s.begin(other).await.unwrap(), Begin::Proceed(_)));
    // After one interval (100 ms at 600/min), one more is allowed.
    env.wait(150).await;
    assert!(matches!(
        s.begin(req("a4")).await.unwrap(),
        Begin::Proceed(_)
    ));
    assert!(matches!(
        s.begin(req("a5")).await.unwrap(),
        Begin::Limited { .. }
    ));
}

async fn compare_and_set_lets_exactly_one_writer_win(env: impl Env) {
    let s = env.store();
    s.commit(commit_req(&env, "s-cas", 0, "x0", "start", None))
        .await
        .unwrap();
    let (v, _) = load(&env, "s-cas").await.unwrap();
    // Two instances handle the same retried delivery concurrently.
    let a = s
        .commit(commit_req(&env, "s-cas", v, "same", "winner", None))
        .await
        .unwrap();
    let b = s
        .commit(commit_req(&env, "s-cas", v, "same", "loser", None))
        .await
        .unwrap();
    assert_eq!(a, Commit::Saved { code: None });
    match b {
        Commit::Conflict(Some(r)) => assert_eq!(
            r.text, "winner",
            "the loser answers with the winner's reply"
        ),
        other => panic!("{other:?}"),
    }
    // A different delivery with a stale version conflicts without a reply.
    assert_eq!(
        s.commit(commit_req(&env, "s-cas", v, "other", "late", None))
            .await
            .unwrap(),
        Commit::Conflict(None)
    );
    assert_eq!(load(&env, "s-cas").await.unwrap().1, b"data-winner");
    // Creating a session that already exists conflicts too.
    assert!(matches!(
        s.commit(commit_req(&env, "s-cas", 0, "y", "new", None))
            .await
            .unwrap(),
        Commit::Conflict(_)
    ));
    // Versions never repeat, even for a key deleted and created again.
    let (v1, _) = load(&env, "s-cas").await.unwrap();
    let mut del = commit_req(&env, "s-cas", v1, "z1", "bye", None);
    del.session = SessionWrite::Delete;
    s.commit(del).await.unwrap();
    assert!(load(&env, "s-cas").await.is_none());
    s.commit(commit_req(&env, "s-cas", 0, "z2", "again", None))
        .await
        .unwrap();
    let (v2, _) = load(&env, "s-cas").await.unwrap();
    assert!(v2 > v1, "{v2} > {v1}");
}

async fn case_codes_are_unique_and_exhaustion_writes_nothing(env: impl Env) {
    let s = env.store();
    let codes = ["1029", "1045"];
    let r1 = s
        .commit(commit_req(
            &env,
            "sc1",
            0,
            "c-d1",
            "end",
            Some(case("case1", &codes)),
        ))
        .await
        .unwrap();
    let r2 = s
        .commit(commit_req(
            &env,
            "sc2",
            0,
            "c-d2",
            "end",
            Some(case("case2", &codes)),
        ))
        .await
        .unwrap();
    assert_eq!(
        r1,
        Commit::Saved {
            code: Some("1029".into())
        }
    );
    assert_eq!(
        r2,
        Commit::Saved {
            code: Some("1045".into())
        },
        "a taken code is skipped"
    );
    let r3 = s
        .commit(commit_req(
            &env,
            "sc3",
            0,
            "c-d3",
            "end",
            Some(case("case3", &codes)),
        ))
        .await;
    assert!(matches!(r3, Err(StoreError::CodesExhausted)), "{r3:?}");
    assert!(load(&env, "sc3").await.is_none(), "nothing was written");
    assert!(s.case(5, "case3").await.unwrap().is_none());
    // Lookups by id and by code.
    let c1 = s.case(5, "case1").await.unwrap().unwrap();
    assert_eq!(
        (c1.code.as_str(), c1.data.as_slice()),
        ("1029", b"sealed-case1".as_slice())
    );
    assert_eq!(s.case_by_code("1045").await.unwrap().unwrap().id, "case2");
    assert!(s.case_by_code("9999").await.unwrap().is_none());
    // Recording the same case again (spool replay) changes nothing.
    assert_eq!(
        s.record_case(5, case("case1", &["1061"]), env.now())
            .await
            .unwrap(),
        "1029"
    );
    assert_eq!(
        s.record_case(5, case("case4", &["1029", "1061"]), env.now())
            .await
            .unwrap(),
        "1061"
    );
    // Each recorded case scheduled its jobs exactly once.
    let jobs = s
        .claim(5, Queue::Outbox, env.now(), 60_000, 100)
        .await
        .unwrap();
    let mut ids: Vec<String> = jobs.into_iter().map(|c| c.job.id).collect();
    ids.sort();
    assert_eq!(ids, ["case1-offer", "case2-offer", "case4-offer"]);
}

async fn outbox_claims_due_jobs_in_order(env: impl Env) {
    let s = env.store();
    let now = env.now();
    let job = |id: &str, due: u64| Job {
        id: id.into(),
        due_ms: due,
        payload: id.as_bytes().to_vec(),
    };
    s.schedule(
        1,
        Queue::Outbox,
        vec![
            job("m3", now + 30),
            job("m1", now + 10),
            job("m2", now + 20),
        ],
    )
    .await
    .unwrap();
    assert!(
        s.claim(1, Queue::Outbox, now, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing due yet"
    );
    let got = s.claim(1, Queue::Outbox, now + 25, 1000, 10).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|c| c.job.id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2"], "due jobs, earliest first");
    assert_eq!(got[0].job.payload, b"m1");
    assert_eq!(got[0].job.due_ms, now + 10);
    assert_eq!(got[0].attempt, 1);
    let got = s.claim(1, Queue::Outbox, now + 30, 1000, 1).await.unwrap();
    assert_eq!(got.len(), 1, "at most `max`");
    assert_eq!(got[0].job.id, "m3");
    // Another queue and another bucket are separate.
    assert!(
        s.claim(1, Queue::Timers, now + 100, 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn queued_jobs_can_be_read_without_claiming_them(env: impl Env) {
    let s = env.store();
    let now = env.now();
    assert!(s.peek_jobs(2, Queue::Outbox, 10).await.unwrap().is_empty());
    let job = |id: &str, due: u64, payload: &[u8]| Job {
        id: id.into(),
        due_ms: due,
        payload: payload.to_vec(),
    };
    s.schedule(
        2,
        Queue::Outbox,
        vec![
            job("later", now + 5_000, b"b|with a bar"),
            job("due", now, b"a"),
            job("third", now + 9_000, b"c"),
        ],
    )
    .await
    .unwrap();
    let peeked = s.peek_jobs(2, Queue::Outbox, 10).await.unwrap();
    let ids: Vec<&str> = peeked.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["due", "later", "third"], "soonest due first");
    assert_eq!(
        peeked[1].payload, b"b|with a bar",
        "the payload as scheduled"
    );
    assert_eq!(peeked[1].due_ms, now + 5_000);
    assert_eq!(
        s.peek_jobs(2, Queue::Outbox, 2).await.unwrap().len(),
        2,
        "at most `max`"
    );
    assert!(s.peek_jobs(2, Queue::Timers, 10).await.unwrap().is_empty());
    assert!(s.peek_jobs(3, Queue::Outbox, 10).await.unwrap().is_empty());
    // Peeking claims nothing; a claimed (leased) job is still queued.
    let claimed = s.claim(2, Queue::Outbox, now, 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let peeked = s.peek_jobs(2, Queue::Outbox, 10).await.unwrap();
    assert_eq!(peeked.len(), 3, "leased jobs included");
    assert_eq!(peeked.iter().find(|j| j.id == "due").unwrap().payload, b"a");
    assert!(
        s.finish(2, Queue::Outbox, "due", claimed[0].attempt)
            .await
            .unwrap()
    );
    assert_eq!(s.peek_jobs(2, Queue::Outbox, 10).await.unwrap().len(), 2);
}

async fn leases_expire_and_stale_workers_lose(env: impl Env) {
    let s = env.store();
    let now = env.now();
    s.schedule(
        2,
        Queue::Timers,
        vec![Job {
            id: "t1".into(),
            due_ms: now,
            payload: b"p".to_vec(),
        }],
    )
    .await
    .unwrap();
    let first = s.claim(2, Queue::Timers, now, 100, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        s.claim(2, Queue::Timers, now + 50, 100, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased to the first worker"
    );
    // The first worker dies; after the lease the job is claimed again.
    let second = s.claim(2, Queue::Timers, now + 101, 100, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert!(
        !s.finish(2, Queue::Timers, "t1", 1).await.unwrap(),
        "a stale worker cannot finish it"
    );
    assert!(
        !s.reschedule(2, Queue::Timers, "t1", 1, now, None)
            .await
            .unwrap()
    );
    // The current holder reschedules it (a retry) with a new payload…
    assert!(
        s.reschedule(2, Queue::Timers, "t1", 2, now + 500, Some(b"p2".to_vec()))
            .await
            .unwrap()
    );
    assert!(
        s.claim(2, Queue::Timers, now + 499, 100, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let third = s.claim(2, Queue::Timers, now + 500, 100, 10).await.unwrap();
    assert_eq!(
        (third[0].attempt, third[0].job.payload.as_slice()),
        (3, b"p2".as_slice())
    );
    // …and finishes it: gone for good.
    assert!(s.finish(2, Queue::Timers, "t1", 3).await.unwrap());
    assert!(
        s.claim(2, Queue::Timers, now + 10_000, 100, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!s.finish(2, Queue::Timers, "t1", 3).await.unwrap());
}

async fn sessions_and_deliveries_expire(env: impl Env) {
    let s = env.store();
    let mut req = commit_req(&env, "s-ttl", 0, "d-ttl", "screen", None);
    req.session = SessionWrite::Save {
        data: b"x".to_vec(),
        ttl_ms: 300,
    };
    req.dedupe_ttl_ms = 300;
    s.commit(req).await.unwrap();
    assert!(load(&env, "s-ttl").await.is_some());
    assert!(matches!(
        s.begin(begin_req(&env, "d-ttl", "r", "s-ttl"))
            .await
            .unwrap(),
        Begin::Duplicate(_)
    ));
    env.wait(600).await;
    assert!(
        load(&env, "s-ttl").await.is_none(),
        "an idle session expires"
    );
    assert!(
        matches!(
            s.begin(begin_req(&env, "d-ttl", "r", "s-ttl"))
                .await
                .unwrap(),
            Begin::Proceed(None)
        ),
        "a delivery is forgotten after its TTL"
    );
}

async fn commits_schedule_jobs_and_write_values_atomically(env: impl Env) {
    let s = env.store();
    let now = env.now();
    let mut req = commit_req(&env, "s-jobs", 0, "j1", "screen", None);
    req.jobs.push((
        Queue::Outbox,
        Job {
            id: "05.sms1".into(),
            due_ms: now,
            payload: b"sealed".to_vec(),
        },
    ));
    req.kv
        .push(KvWrite::set("o:p_x".into(), b"1".to_vec(), None));
    req.kv
        .push(KvWrite::set("tmp".into(), b"t".to_vec(), Some(300)));
    assert_eq!(s.commit(req).await.unwrap(), Commit::Saved { code: None });
    let jobs = s.claim(5, Queue::Outbox, now, 1000, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job.payload, b"sealed");
    assert_eq!(
        s.get(Some(5), "o:p_x", env.now()).await.unwrap().as_deref(),
        Some(b"1".as_slice())
    );
    assert_eq!(
        s.get(Some(5), "tmp", env.now()).await.unwrap().as_deref(),
        Some(b"t".as_slice())
    );
    assert_eq!(
        s.get(Some(6), "o:p_x", env.now()).await.unwrap(),
        None,
        "values are per bucket"
    );
    // A losing commit writes none of it.
    let (v, _) = load(&env, "s-jobs").await.unwrap();
    let mut stale = commit_req(&env, "s-jobs", v + 1000, "j2", "late", None);
    stale.jobs.push((
        Queue::Outbox,
        Job {
            id: "05.sms2".into(),
            due_ms: now,
            payload: b"x".to_vec(),
        },
    ));
    stale.kv.push(KvWrite::delete("o:p_x".into()));
    assert!(matches!(
        s.commit(stale).await.unwrap(),
        Commit::Conflict(_)
    ));
    assert!(
        s.claim(5, Queue::Outbox, now + 5000, 1000, 10)
            .await
            .unwrap()
            .iter()
            .all(|c| c.job.id != "05.sms2")
    );
    assert!(s.get(Some(5), "o:p_x", env.now()).await.unwrap().is_some());
    // Deleting a value with a commit; values expire.
    let mut del = commit_req(&env, "s-jobs", v, "j3", "stop", None);
    del.kv.push(KvWrite::delete("o:p_x".into()));
    s.commit(del).await.unwrap();
    assert_eq!(s.get(Some(5), "o:p_x", env.now()).await.unwrap(), None);
    env.wait(600).await;
    assert_eq!(s.get(Some(5), "tmp", env.now()).await.unwrap(), None);
    // Global values, outside any bucket.
    s.put(
        None,
        "p:at:ATXid_1",
        b"05.sms1".to_vec(),
        Some(60_000),
        env.now(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get(None, "p:at:ATXid_1", env.now())
            .await
            .unwrap()
            .as_deref(),
        Some(b"05.sms1".as_slice())
    );
    s.delete(None, "p:at:ATXid_1").await.unwrap();
    assert_eq!(s.get(None, "p:at:ATXid_1", env.now()).await.unwrap(), None);
}

async fn dedupe_can_be_scoped_by_a_value(env: impl Env) {
    let s = env.store();
    let scoped = |dedupe: &str| BeginRequest {
        dedupe_scope: Some("ls:p_y".into()),
        ..begin_req(&env, dedupe, "r", "s-scope")
    };
    let commit = |expected: u64, dedupe: &str, text: &str| CommitRequest {
        dedupe_scope: Some("ls:p_y".into()),
        ..commit_req(&env, "s-scope", expected, dedupe, text, None)
    };
    assert_eq!(
        s.begin(scoped("text-1")).await.unwrap(),
        Begin::Proceed(None)
    );
    s.commit(commit(0, "text-1", "first")).await.unwrap();
    // The same text again: a retry, while the scope value is unchanged…
    assert!(matches!(
        s.begin(scoped("text-1")).await.unwrap(),
        Begin::Duplicate(_)
    ));
    // …and new once it changed (we sent that number something).
    s.put(Some(5), "ls:p_y", b"1234".to_vec(), None, env.now())
        .await
        .unwrap();
    let Begin::Proceed(Some(rec)) = s.begin(scoped("text-1")).await.unwrap() else {
        panic!("expected a new message");
    };
    s.commit(commit(rec.version, "text-1", "second"))
        .await
        .unwrap();
    match s.begin(scoped("text-1")).await.unwrap() {
        Begin::Duplicate(r) => assert_eq!(r.text, "second"),
        other => panic!("{other:?}"),
    }
    // Unscoped keys are not affected by the value.
    assert!(matches!(
        s.begin(begin_req(&env, "text-1", "r", "s-scope"))
            .await
            .unwrap(),
        Begin::Proceed(_)
    ));
}

async fn cases_change_by_compare_and_set_and_close(env: impl Env) {
    let s = env.store();
    let now = env.now();
    s.record_case(4, case("life1", &["1028"]), now)
        .await
        .unwrap();
    s.record_case(4, case("life2", &["1044"]), now)
        .await
        .unwrap();
    assert_eq!(s.case_ids(4, true).await.unwrap(), ["life1", "life2"]);
    let c = s.case(4, "life1").await.unwrap().unwrap();
    assert!(c.open);
    let update = |version: u64, data: &str, close: bool| hotline::store::CaseUpdate {
        bucket: 4,
        id: "life1".into(),
        code: "1028".into(),
        alias: None,
        expected_version: version,
        data: data.as_bytes().to_vec(),
        close,
        jobs: vec![(
            Queue::Timers,
            Job {
                id: format!("t-{data}"),
                due_ms: now,
                payload: data.as_bytes().to_vec(),
            },
        )],
        mark: None,
        mark_global: false,
        now_ms: now,
    };
    assert!(
        s.update_case(update(c.version, "accepted", false))
            .await
            .unwrap()
    );
    assert!(
        !s.update_case(update(c.version, "also-accepted", false))
            .await
            .unwrap(),
        "two writers: one wins"
    );
    let c2 = s.case(4, "life1").await.unwrap().unwrap();
    assert_eq!(
        (c2.version, c2.data.as_slice()),
        (c.version + 1, b"accepted".as_slice())
    );
    assert!(
        s.update_case(update(c2.version, "closed", true))
            .await
            .unwrap()
    );
    assert_eq!(
        s.case_ids(4, true).await.unwrap(),
        ["life2"],
        "closed cases leave the open set"
    );
    assert_eq!(s.case_ids(4, false).await.unwrap(), ["life1", "life2"]);
    let closed = s
        .case_by_code("1028")
        .await
        .unwrap()
        .expect("a closed case's code still finds it");
    assert!(!closed.open);
    // Its code stays reserved: a new case takes another.
    assert_eq!(
        s.record_case(4, case("life3", &["1028", "1060"]), now)
            .await
            .unwrap(),
        "1060"
    );
    // Jobs came with the successful updates only.
    let timers: Vec<String> = s
        .claim(4, Queue::Timers, now, 1000, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.job.id)
        .collect();
    assert!(timers.contains(&"t-accepted".to_owned()) && timers.contains(&"t-closed".to_owned()));
    assert!(!timers.contains(&"t-also-accepted".to_owned()));
    assert!(
        !s.update_case(hotline::store::CaseUpdate {
            id: "nope".into(),
            ..update(1, "x", false)
        })
        .await
        .unwrap()
    );
}

fn lease_req(
    env: &impl Env,
    holder: &str,
    keep: &[&str],
    candidates: &[&str],
    target: usize,
    ttl_ms: u64,
) -> LeaseRequest {
    LeaseRequest {
        bucket: 5,
        holder: holder.into(),
        keep: keep.iter().map(|c| (*c).to_owned()).collect(),
        candidates: candidates.iter().map(|c| (*c).to_owned()).collect(),
        target,
        ttl_ms,
        now_ms: env.now(),
    }
}

/// Codes leased for outages are skipped by every other allocation, and a
/// spooled case shown a leased code gets exactly that code.
async fn leased_codes_are_kept_for_the_case_they_were_shown_for(env: impl Env) {
    let s = env.store();
    let day = 24 * 3600 * 1000;
    // Codes in bucket 5: 1013, 1029, 1045, 1061, 1077, 1093, 1109, 1125, 1141.
    let held = s
        .lease_codes(lease_req(
            &env,
            "i1",
            &[],
            &["1013", "1045", "1061"],
            2,
            day,
        ))
        .await
        .unwrap();
    assert_eq!(held, ["1013", "1045"]);
    let other = s
        .lease_codes(lease_req(
            &env,
            "i2",
            &[],
            &["1013", "1045", "1061"],
            1,
            day,
        ))
        .await
        .unwrap();
    assert_eq!(other, ["1061"], "another instance's leases are skipped");
    // Normal allocation (a commit, a replay without a shown code) skips them.
    let r = s
        .commit(commit_req(
            &env,
            "sl1",
            0,
            "l-d1",
            "end",
            Some(case("lc1", &["1013", "1045", "1061", "1077"])),
        ))
        .await
        .unwrap();
    assert_eq!(
        r,
        Commit::Saved {
            code: Some("1077".into())
        }
    );
    assert_eq!(
        s.record_case(5, case("lc2", &["1013", "1061", "1093"]), env.now())
            .await
            .unwrap(),
        "1093"
    );
    assert!(
        s.case_by_code("1013").await.unwrap().is_none(),
        "a leased code finds no case"
    );
    // The case shown 1013 while the store was down gets 1013, once.
    let lease = CodeLease {
        code: "1013".into(),
        holder: "i1".into(),
    };
    for _ in 0..2 {
        assert_eq!(
            s.record_leased_case(5, case("lc3", &["1109"]), &lease, env.now())
                .await
                .unwrap(),
            LeasedRecord {
                code: "1013".into(),
                aliased: false
            }
        );
    }
    assert_eq!(s.case_by_code("1013").await.unwrap().unwrap().id, "lc3");
    // A lease held by someone else is not taken: the case falls back to
    // its candidates, and the caller can tell the code changed.
    let wrong = CodeLease {
        code: "1045".into(),
        holder: "i2".into(),
    };
    assert_eq!(
        s.record_leased_case(5, case("lc4", &["1125"]), &wrong, env.now())
            .await
            .unwrap(),
        LeasedRecord {
            code: "1125".into(),
            aliased: false
        }
    );
    // Renewal keeps what is still ours; a code that became a case is gone.
    let renewed = s
        .lease_codes(lease_req(&env, "i1", &["1013", "1045"], &[], 2, day))
        .await
        .unwrap();
    assert_eq!(renewed, ["1045"]);
    // A lease lost while nobody took the code is held again on renewal.
    let again = s
        .lease_codes(lease_req(&env, "i3", &["1141"], &[], 1, day))
        .await
        .unwrap();
    assert_eq!(again, ["1141"]);
    // An expired lease frees its code.
    s.lease_codes(lease_req(&env, "i4", &[], &["1157"], 1, 50))
        .await
        .unwrap();
    assert_eq!(
        s.record_case(5, case("lc5", &["1157", "1173"]), env.now())
            .await
            .unwrap(),
        "1173"
    );
    env.wait(80).await;
    assert_eq!(
        s.record_case(5, case("lc6", &["1157", "1173"]), env.now())
            .await
            .unwrap(),
        "1157"
    );
}

async fn a_shared_rate_gives_the_burst_then_one_slot_per_interval(env: impl Env) {
    let s = env.store();
    // 2 per second, burst 2: an interval of 500 ms.
    let limit = RateLimit {
        per_minute: 120,
        burst: 2,
    };
    let t0 = 1_000_000;
    assert_eq!(s.take_rate("rate:at", limit, t0).await.unwrap(), None);
    assert_eq!(s.take_rate("rate:at", limit, t0).await.unwrap(), None);
    let wait = s.take_rate("rate:at", limit, t0).await.unwrap();
    assert_eq!(wait, Some(500), "the third at once waits one interval");
    assert_eq!(
        s.take_rate("rate:twilio", limit, t0).await.unwrap(),
        None,
        "each key its own rate"
    );
    assert_eq!(s.take_rate("rate:at", limit, t0 + 500).await.unwrap(), None);
    assert!(
        s.take_rate("rate:at", limit, t0 + 500)
            .await
            .unwrap()
            .is_some()
    );
}

/// A frozen Redis can run a commit that timed out after the caller was
/// shown a leased code and her case spooled: on replay the shown code
/// names the case too (its alias), so whichever code she saw finds it.
async fn a_shown_code_also_names_a_case_recorded_meanwhile(env: impl Env) {
    let s = env.store();
    let day = 24 * 3600 * 1000;
    // Codes in bucket 5: 1189, 1205, 1221, 1237.
    let held = s
        .lease_codes(lease_req(&env, "i5", &[], &["1189"], 1, day))
        .await
        .unwrap();
    assert_eq!(held, ["1189"]);
    // The commit that timed out lands after all, under its own candidate.
    assert_eq!(
        s.record_case(5, case("lc7", &["1205"]), env.now())
            .await
            .unwrap(),
        "1205"
    );
    let lease = CodeLease {
        code: "1189".into(),
        holder: "i5".into(),
    };
    for first in [true, false] {
        assert_eq!(
            s.record_leased_case(5, case("lc7", &["1205"]), &lease, env.now())
                .await
                .unwrap(),
            LeasedRecord {
                code: "1189".into(),
                aliased: first
            },
            "the shown code names the case, also on a second replay (which adds no alias)"
        );
    }
    let rec = s.case_by_code("1189").await.unwrap().unwrap();
    assert_eq!(rec.id, "lc7");
    assert_eq!(rec.code, "1205");
    assert_eq!(rec.alias.as_deref(), Some("1189"));
    assert_eq!(s.case_by_code("1205").await.unwrap().unwrap().id, "lc7");
    // Both codes stay reserved while the case is open and after it closes.
    assert_eq!(
        s.record_case(5, case("lc8", &["1189", "1205", "1221"]), env.now())
            .await
            .unwrap(),
        "1221"
    );
    assert!(
        s.update_case(hotline::store::CaseUpdate {
            bucket: 5,
            id: "lc7".into(),
            code: rec.code.clone(),
            alias: rec.alias.clone(),
            mark: None,
            mark_global: false,
            expected_version: rec.version,
            data: b"closed".to_vec(),
            close: true,
            jobs: Vec::new(),
            now_ms: env.now(),
        })
        .await
        .unwrap()
    );
    assert_eq!(s.case_by_code("1189").await.unwrap().unwrap().id, "lc7");
    assert_eq!(
        s.record_case(5, case("lc9", &["1189", "1205", "1237"]), env.now())
            .await
            .unwrap(),
        "1237"
    );
    // A lease that no longer holds the code adds no alias.
    let lost = CodeLease {
        code: "1221".into(),
        holder: "i5".into(),
    };
    assert_eq!(
        s.record_leased_case(5, case("lc9", &["1237"]), &lost, env.now())
            .await
            .unwrap(),
        LeasedRecord {
            code: "1237".into(),
            aliased: false
        }
    );
    assert_eq!(s.case_by_code("1221").await.unwrap().unwrap().id, "lc8");
}

async fn a_claim_says_when_the_queue_is_next_due(env: impl Env) {
    let s = env.store();
    let now = env.now();
    let job = |id: &str, due: u64| Job {
        id: id.into(),
        due_ms: due,
        payload: id.as_bytes().to_vec(),
    };
    let empty = s.claim_next(3, Queue::Timers, now, 1000, 10).await.unwrap();
    assert!(empty.jobs.is_empty());
    assert_eq!(empty.next_due_ms, None, "an empty queue has no next time");
    s.schedule(
        3,
        Queue::Timers,
        vec![job("t1", now + 10), job("t2", now + 50)],
    )
    .await
    .unwrap();
    let got = s
        .claim_next(3, Queue::Timers, now + 20, 1000, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = got.jobs.iter().map(|c| c.job.id.as_str()).collect();
    assert_eq!(ids, ["t1"]);
    assert_eq!(
        got.next_due_ms,
        Some(now + 50),
        "the next job not claimed here, not this claim's own lease"
    );
    let again = s
        .claim_next(3, Queue::Timers, now + 20, 1000, 10)
        .await
        .unwrap();
    assert!(again.jobs.is_empty());
    assert_eq!(again.next_due_ms, Some(now + 50));
    s.finish(3, Queue::Timers, "t1", 1).await.unwrap();
    let last = s
        .claim_next(3, Queue::Timers, now + 60, 1000, 10)
        .await
        .unwrap();
    assert_eq!(last.jobs.len(), 1);
    assert_eq!(last.next_due_ms, None, "only its own leased job is left");
    let other = s
        .claim_next(3, Queue::Timers, now + 60, 1000, 10)
        .await
        .unwrap();
    assert_eq!(
        other.next_due_ms,
        Some(now + 1060),
        "another worker's lease counts at its end"
    );
}

async fn a_finish_writes_what_the_job_left_in_the_same_step(env: impl Env) {
    let s = env.store();
    let now = env.now();
    s.put(Some(4), "gone", b"x".to_vec(), None, now)
        .await
        .unwrap();
    s.schedule(
        4,
        Queue::Outbox,
        vec![Job {
            id: "f1".into(),
            due_ms: now,
            payload: b"p".to_vec(),
        }],
    )
    .await
    .unwrap();
    let claimed = s.claim(4, Queue::Outbox, now, 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let kv = vec![
        KvWrite::set("sent:f1".into(), b"1".to_vec(), Some(60_000)),
        KvWrite::set("kept".into(), b"k".to_vec(), None),
        KvWrite::delete("gone".into()),
    ];
    assert!(
        !s.finish_with(4, Queue::Outbox, "f1", 7, kv.clone(), vec![], now)
            .await
            .unwrap(),
        "a stale lease finishes nothing"
    );
    assert_eq!(
        s.get(Some(4), "sent:f1", now).await.unwrap().as_deref(),
        Some(&b"1"[..]),
        "but the values are written: the work was done"
    );
    assert_eq!(s.queue_len(4, Queue::Outbox).await.unwrap(), 1);
    s.put(Some(4), "gone", b"x".to_vec(), None, now)
        .await
        .unwrap();
    assert!(
        s.finish_with(
            4,
            Queue::Outbox,
            "f1",
            1,
            kv,
            vec![KvWrite::set(
                "p:at:f1".into(),
                b"04.f1".to_vec(),
                Some(60_000)
            )],
            now
        )
        .await
        .unwrap()
    );
    assert_eq!(s.queue_len(4, Queue::Outbox).await.unwrap(), 0);
    assert_eq!(
        s.get(Some(4), "kept", now).await.unwrap().as_deref(),
        Some(&b"k"[..])
    );
    assert_eq!(s.get(Some(4), "gone", now).await.unwrap(), None);
    assert_eq!(
        s.get(None, "p:at:f1", now).await.unwrap().as_deref(),
        Some(&b"04.f1"[..]),
        "a global value goes with the finish"
    );
}

async fn a_sessions_own_deliveries_keep_the_latest_reply(env: impl Env) {
    let s = env.store();
    let session = "u:c:S1";
    let reply = |r: &Begin| match r {
        Begin::Duplicate(c) => Some(c.text.clone()),
        _ => None,
    };
    let b1 = s
        .begin(begin_req(&env, "u:c:S1:1", "r-fold", session))
        .await
        .unwrap();
    assert_eq!(b1, Begin::Proceed(None));
    s.commit(commit_req(&env, session, 0, "u:c:S1:1", "one", None))
        .await
        .unwrap();
    let again = s
        .begin(begin_req(&env, "u:c:S1:1", "r-fold", session))
        .await
        .unwrap();
    assert_eq!(reply(&again).as_deref(), Some("one"), "a retried hop");
    let Begin::Proceed(Some(rec)) = s
        .begin(begin_req(&env, "u:c:S1:2", "r-fold", session))
        .await
        .unwrap()
    else {
        panic!("the next hop proceeds with the session");
    };
    assert_eq!(rec.data, b"data-one");
    let mut end = commit_req(&env, session, rec.version, "u:c:S1:2", "bye", None);
    end.session = SessionWrite::Delete;
    assert!(matches!(
        s.commit(end.clone()).await.unwrap(),
        Commit::Saved { .. }
    ));
    assert_eq!(load(&env, session).await, None, "the session ended");
    let retry = s
        .begin(begin_req(&env, "u:c:S1:2", "r-fold", session))
        .await
        .unwrap();
    assert_eq!(
        reply(&retry).as_deref(),
        Some("bye"),
        "the last screen of an ended session is answered again"
    );
    match s.commit(end).await.unwrap() {
        Commit::Conflict(Some(r)) => assert_eq!(r.text, "bye"),
        other => panic!("a concurrent copy gets the reply: {other:?}"),
    }
    assert_eq!(
        reply(
            &s.begin(begin_req(&env, "u:c:S1:1", "r-fold", session))
                .await
                .unwrap()
        )
        .as_deref(),
        Some("bye"),
        "a stale copy of an earlier hop gets the latest reply"
    );
}

async fn a_lawyers_command_by_code_is_one_read_and_one_marked_change(env: impl Env) {
    let s = env.store();
    let now = env.now();
    // 1076 % 16 == 4.
    s.record_case(4, case("cmd1", &["1076"]), now)
        .await
        .unwrap();
    let begin = |mark: &str| CaseCommandBegin {
        code: "1076".into(),
        mark_key: mark.into(),
        rate_key: "p_lawyer".into(),
        rate: RateLimit {
            per_minute: 60,
            burst: 2,
        },
        now_ms: now,
    };
    let CaseBegin::Proceed(Some(rec)) = s.begin_case_command(begin("ld:at:m1")).await.unwrap()
    else {
        panic!("the case of the code");
    };
    assert_eq!((rec.id.as_str(), rec.code.as_str()), ("cmd1", "1076"));
    assert_eq!(
        s.begin_case_command(begin("ld:at:m1")).await.unwrap(),
        CaseBegin::Proceed(Some(rec.clone())),
        "a copy before the change spends no second slot"
    );
    let update = |version: u64, data: &str| hotline::store::CaseUpdate {
        bucket: 4,
        id: "cmd1".into(),
        code: "1076".into(),
        alias: None,
        expected_version: version,
        data: data.as_bytes().to_vec(),
        close: false,
        jobs: Vec::new(),
        mark: Some(KvWrite::set("ld:at:m1".into(), b"1".to_vec(), Some(60_000))),
        mark_global: false,
        now_ms: now,
    };
    assert!(
        s.update_case(update(rec.version, "accepted"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.begin_case_command(begin("ld:at:m1")).await.unwrap(),
        CaseBegin::Duplicate,
        "handled: a retry is a duplicate"
    );
    assert!(
        s.update_case(update(rec.version, "again")).await.unwrap(),
        "a concurrent copy's change counts as done"
    );
    // …as made before, not now: only the first copy's effects are counted
    // (eight copies of one `DONE` counted five closed cases).
    assert_eq!(
        s.update_case_once(update(rec.version, "again"))
            .await
            .unwrap(),
        hotline::store::Updated::MadeBefore
    );
    let after = s.case(4, "cmd1").await.unwrap().unwrap();
    assert_eq!(after.data, b"accepted", "and writes nothing");
    assert_eq!(after.version, rec.version + 1);
    assert!(matches!(
        s.begin_case_command(begin("ld:at:m2")).await.unwrap(),
        CaseBegin::Proceed(Some(_))
    ));
    assert!(
        matches!(
            s.begin_case_command(begin("ld:at:m3")).await.unwrap(),
            CaseBegin::Limited { .. }
        ),
        "her third new command at once is over the burst"
    );
    let unknown = CaseCommandBegin {
        code: "1092".into(),
        ..begin("ld:at:m4")
    };
    assert_eq!(
        s.begin_case_command(unknown).await.unwrap(),
        CaseBegin::Limited {
            retry_after_ms: 1000
        },
        "the limit holds in the bucket"
    );
}

async fn a_lawyers_bare_command_reads_her_index_and_its_cases_in_one(env: impl Env) {
    let s = env.store();
    let now = env.now();
    // Two open cases in her index, one closed, one gone, one unparsable.
    s.record_case(4, case("ix1", &["1076"]), now).await.unwrap();
    s.record_case(5, case("ix2", &["1077"]), now).await.unwrap();
    s.record_case(6, case("ix3", &["1078"]), now).await.unwrap();
    let closed = s.case(6, "ix3").await.unwrap().unwrap();
    let close = hotline::store::CaseUpdate {
        bucket: 6,
        id: "ix3".into(),
        code: "1078".into(),
        alias: None,
        expected_version: closed.version,
        data: b"closed".to_vec(),
        close: true,
        jobs: Vec::new(),
        mark: None,
        mark_global: false,
        now_ms: now,
    };
    assert!(s.update_case(close).await.unwrap());
    for member in ["4:ix1", "5:ix2", "6:ix3", "7:gone", "junk"] {
        let add = SetAdd {
            key: "lw:aida".into(),
            member: member.into(),
            ttl_ms: 60_000,
        };
        s.set_add(None, add, now).await.unwrap();
    }
    let begin = |mark: &str, mark_now: bool, flag: Option<KvWrite>| LawyerCommandBegin {
        mark_key: mark.into(),
        mark_now,
        mark_ttl_ms: 60_000,
        rate_key: "p_lawyer".into(),
        rate: RateLimit {
            per_minute: 60,
            burst: 3,
        },
        index_key: "lw:aida".into(),
        flag,
        now_ms: now,
    };
    let LawyerBegin::Proceed(index) = s
        .begin_lawyer_command(begin("ld:m1", false, None))
        .await
        .unwrap()
    else {
        panic!("her index");
    };
    let found: Vec<(u16, &str, &str, bool)> = index
        .iter()
        .map(|(b, r)| (*b, r.id.as_str(), r.code.as_str(), r.open))
        .collect();
    assert_eq!(
        found,
        [(4, "ix1", "1076", true), (5, "ix2", "1077", true)],
        "her open cases, read with the index"
    );
    assert_eq!(
        index[0].1,
        s.case(4, "ix1").await.unwrap().unwrap(),
        "as a read of the case"
    );
    assert_eq!(
        s.set_members(None, "lw:aida", now).await.unwrap(),
        ["4:ix1", "5:ix2"],
        "the closed, the gone and the unparsable are pruned"
    );
    // A case change writes her global mark; a retry is then a duplicate.
    let rec = index[0].1.clone();
    let accept = |data: &str| hotline::store::CaseUpdate {
        bucket: 4,
        id: "ix1".into(),
        code: "1076".into(),
        alias: None,
        expected_version: rec.version,
        data: data.as_bytes().to_vec(),
        close: false,
        jobs: Vec::new(),
        mark: Some(KvWrite::set("ld:m1".into(), b"1".to_vec(), Some(60_000))),
        mark_global: true,
        now_ms: now,
    };
    assert!(s.update_case(accept("accepted")).await.unwrap());
    assert!(
        s.get(None, "ld:m1", now).await.unwrap().is_some(),
        "a global mark"
    );
    assert!(s.get(Some(4), "ld:m1", now).await.unwrap().is_none());
    assert_eq!(
        s.begin_lawyer_command(begin("ld:m1", false, None))
            .await
            .unwrap(),
        LawyerBegin::Duplicate
    );
    assert!(
        s.update_case(accept("again")).await.unwrap(),
        "a concurrent copy's change counts as done"
    );
    assert_eq!(s.case(4, "ix1").await.unwrap().unwrap().data, b"accepted");
    // OFF: the flag and the mark written with the round trip.
    let off = KvWrite::set("off:aida".into(), b"1".to_vec(), None);
    assert!(matches!(
        s.begin_lawyer_command(begin("ld:m2", true, Some(off)))
            .await
            .unwrap(),
        LawyerBegin::Proceed(_)
    ));
    assert_eq!(
        s.get(None, "off:aida", now).await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        s.begin_lawyer_command(begin("ld:m2", true, None))
            .await
            .unwrap(),
        LawyerBegin::Duplicate,
        "marked at once: a retry is a duplicate"
    );
    let on = KvWrite {
        key: "off:aida".into(),
        op: hotline::store::KvOp::Delete,
    };
    assert!(matches!(
        s.begin_lawyer_command(begin("ld:m3", true, Some(on)))
            .await
            .unwrap(),
        LawyerBegin::Proceed(_)
    ));
    assert!(
        s.get(None, "off:aida", now).await.unwrap().is_none(),
        "ON deletes it"
    );
    assert!(
        matches!(
            s.begin_lawyer_command(begin("ld:m4", true, None))
                .await
                .unwrap(),
            LawyerBegin::Limited { .. }
        ),
        "her fourth new command at once is over the burst"
    );
    let off = KvWrite::set("off:aida".into(), b"1".to_vec(), None);
    assert!(matches!(
        s.begin_lawyer_command(begin("ld:m5", true, Some(off)))
            .await
            .unwrap(),
        LawyerBegin::Limited { .. }
    ));
    assert!(
        s.get(None, "off:aida", now).await.unwrap().is_none(),
        "a limited command writes nothing"
    );
    assert!(s.get(None, "ld:m5", now).await.unwrap().is_none());
}

async fn sets_of_small_values_add_list_remove_and_ride_with_a_rate(env: impl Env) {
    let s = env.store();
    let now = env.now();
    let add = |member: &str| SetAdd {
        key: "lw:aida".into(),
        member: member.into(),
        ttl_ms: 60_000,
    };
    assert!(
        s.set_members(None, "lw:aida", now)
            .await
            .unwrap()
            .is_empty()
    );
    s.set_add(None, add("3:c_b"), now).await.unwrap();
    let limit = RateLimit {
        per_minute: 60,
        burst: 1,
    };
    assert_eq!(
        s.take_rate_and_add("rate:set", limit, 1_000_000, Some(add("1:c_a")))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.take_rate_and_add("rate:set", limit, 1_000_000, Some(add("1:c_a")))
            .await
            .unwrap(),
        Some(1000),
        "the rate holds; the member is added either way"
    );
    assert_eq!(
        s.set_members(None, "lw:aida", now).await.unwrap(),
        ["1:c_a", "3:c_b"]
    );
    s.set_remove(None, "lw:aida", &["3:c_b".to_owned(), "9:none".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        s.set_members(None, "lw:aida", now).await.unwrap(),
        ["1:c_a"]
    );
    assert!(
        s.set_members(Some(2), "lw:aida", now)
            .await
            .unwrap()
            .is_empty(),
        "a bucket's set is another set"
    );
}

/// A message about a case names it in its id (`store::job_case`): its claim
/// returns the case's code with it, so the send reads no case. Codes of
/// 1028 % 16 = 4 live in bucket 4.
async fn a_claim_reads_the_code_of_the_case_its_message_names(env: impl Env) {
    let s = env.store();
    let now = env.now();
    s.record_case(4, case("c_0a1b", &["1028"]), now)
        .await
        .unwrap();
    let job = |id: &str| Job {
        id: id.into(),
        due_ms: now,
        payload: b"m".to_vec(),
    };
    s.schedule(
        4,
        Queue::Outbox,
        vec![job("04.aa11.c_0a1b"), job("04.bb22.c_ffff"), job("04.cc33")],
    )
    .await
    .unwrap();
    let got = s.claim(4, Queue::Outbox, now, 60_000, 10).await.unwrap();
    let codes: std::collections::BTreeMap<&str, Option<&str>> = got
        .iter()
        .map(|c| (c.job.id.as_str(), c.case_code.as_deref()))
        .collect();
    assert_eq!(codes["04.aa11.c_0a1b"], Some("1028"), "its case's code");
    assert_eq!(codes["04.bb22.c_ffff"], None, "a case that does not exist");
    assert_eq!(codes["04.cc33"], None, "an id that names no case");
    assert_eq!(hotline::store::job_case("04.aa11.c_0a1b"), Some("c_0a1b"));
    assert_eq!(hotline::store::job_case("04.aa11"), None);
    assert_eq!(hotline::store::job_case("04.aa11.c_"), None);
    assert_eq!(hotline::store::job_case("04.aa11.x_12"), None);
}

/// A case whose shown code became its alias (spool replay after a commit
/// that timed out but landed) is named by both codes: the claim of a
/// message about it returns the alias with the code, in the same script,
/// so the message names the code she was shown too. Codes of bucket 5:
/// 1253, 1269, 1285.
async fn a_claim_names_every_code_of_a_case_with_an_alias(env: impl Env) {
    let s = env.store();
    let now = env.now();
    let day = 24 * 3600 * 1000;
    let held = s
        .lease_codes(lease_req(&env, "i6", &[], &["1253"], 1, day))
        .await
        .unwrap();
    assert_eq!(held, ["1253"]);
    // The commit landed under its own candidate; the spool replays the
    // code she was shown.
    s.record_case(5, case("c_a11a", &["1269"]), now)
        .await
        .unwrap();
    let lease = CodeLease {
        code: "1253".into(),
        holder: "i6".into(),
    };
    let done = s
        .record_leased_case(5, case("c_a11a", &["1269"]), &lease, now)
        .await
        .unwrap();
    assert!(done.aliased);
    s.record_case(5, case("c_b22b", &["1285"]), now)
        .await
        .unwrap();
    let rec = s.case(5, "c_a11a").await.unwrap().unwrap();
    assert_eq!(rec.named_code(), "1269/1253");
    let job = |id: &str| Job {
        id: id.into(),
        due_ms: now,
        payload: b"m".to_vec(),
    };
    s.schedule(
        5,
        Queue::Outbox,
        vec![job("05.aa11.c_a11a"), job("05.bb22.c_b22b")],
    )
    .await
    .unwrap();
    let got = s.claim(5, Queue::Outbox, now, 60_000, 10).await.unwrap();
    let of = |id: &str| {
        let c = got.iter().find(|c| c.job.id == id).expect("claimed");
        (c.case_code.clone(), c.case_alias.clone(), c.case_codes())
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        of("05.aa11.c_a11a"),
        (some("1269"), some("1253"), some("1269/1253")),
        "the code and the alias she was shown"
    );
    assert_eq!(
        of("05.bb22.c_b22b"),
        (some("1285"), None, some("1285")),
        "a case without an alias: its code alone"
    );
}

/// Several small values in one read, in the order asked, missing ones
/// `None`.
async fn small_values_are_read_together(env: impl Env) {
    let s = env.store();
    let now = env.now();
    s.put(None, "off:aida", b"1".to_vec(), None, now)
        .await
        .unwrap();
    s.put(None, "cover:osh", b"c".to_vec(), Some(60_000), now)
        .await
        .unwrap();
    let keys = ["cover:osh", "off:bakyt", "off:aida"].map(String::from);
    assert_eq!(
        s.get_many(None, &keys, now).await.unwrap(),
        [Some(b"c".to_vec()), None, Some(b"1".to_vec())]
    );
    assert!(s.get_many(None, &[], now).await.unwrap().is_empty());
    assert_eq!(
        s.get_many(Some(3), &keys[2..], now).await.unwrap(),
        [None],
        "a bucket's values are other values"
    );
}

async fn a_code_of_another_bucket_is_never_given(env: impl Env) {
    // 1234 is of bucket 2 (1234 % 16), 1251 of bucket 3: a case of bucket 3
    // skips the first, so no two cases share a code (a lawyer's `OK 1234`
    // looks in bucket 2).
    let s = env.store();
    let now = env.now();
    s.record_case(2, case("cb2", &["1234"]), now).await.unwrap();
    let code = s
        .record_case(3, case("cb3", &["1234", "1251"]), now)
        .await
        .unwrap();
    assert_eq!(code, "1251");
    assert_eq!(s.case_by_code("1234").await.unwrap().unwrap().id, "cb2");
    assert_eq!(s.case_by_code("1251").await.unwrap().unwrap().id, "cb3");
    let none = s.record_case(3, case("cb4", &["1234"]), now).await;
    assert!(
        matches!(none, Err(StoreError::CodesExhausted)),
        "no code of its bucket: refused, not given another bucket's"
    );
    assert!(s.case(3, "cb4").await.unwrap().is_none(), "nothing written");
}

/// A case the store had acknowledged and lost, recorded again
/// (`Store::restore_case`): `None` when it is there; else it takes the
/// code she was given (first among its candidates) even when an instance
/// leased that code since (it looked free in the store that lost the
/// case), and that lease is not renewed; a code another case holds is
/// never taken.
async fn a_restored_case_takes_its_code_back_from_a_lease(env: impl Env) {
    let s = env.store();
    let day = 24 * 3600 * 1000;
    // Codes in bucket 5: 1013, 1029, 1045, 1061, 1077.
    let held = s
        .lease_codes(lease_req(&env, "i1", &[], &["1013", "1029"], 2, day))
        .await
        .unwrap();
    assert_eq!(held, ["1013", "1029"]);
    let restored = s
        .restore_case(5, case("rc1", &["1013", "1045"]), env.now())
        .await
        .unwrap();
    assert_eq!(restored.as_deref(), Some("1013"), "her code, not the lease");
    assert_eq!(s.case(5, "rc1").await.unwrap().unwrap().code, "1013");
    let renewed = s
        .lease_codes(lease_req(&env, "i1", &["1013", "1029"], &[], 2, day))
        .await
        .unwrap();
    assert_eq!(renewed, ["1029"], "the lease on her code is gone");
    // There now: left alone.
    assert_eq!(
        s.restore_case(5, case("rc1", &["1013", "1045"]), env.now())
            .await
            .unwrap(),
        None
    );
    // A code another case holds is not taken: the next candidate.
    let other = s
        .restore_case(5, case("rc2", &["1013", "1061"]), env.now())
        .await
        .unwrap();
    assert_eq!(other.as_deref(), Some("1061"));
    assert_eq!(s.case(5, "rc1").await.unwrap().unwrap().code, "1013");
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(mem()).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(red(stringify!($name)).await).await;
                }
            )*
        }
    };
}

conformance!(
    dedupe_returns_the_first_reply,
    rate_limit_allows_the_burst_then_the_rate,
    compare_and_set_lets_exactly_one_writer_win,
    case_codes_are_unique_and_exhaustion_writes_nothing,
    outbox_claims_due_jobs_in_order,
    queued_jobs_can_be_read_without_claiming_them,
    leases_expire_and_stale_workers_lose,
    sessions_and_deliveries_expire,
    commits_schedule_jobs_and_write_values_atomically,
    dedupe_can_be_scoped_by_a_value,
    cases_change_by_compare_and_set_and_close,
    leased_codes_are_kept_for_the_case_they_were_shown_for,
    a_shown_code_also_names_a_case_recorded_meanwhile,
    a_shared_rate_gives_the_burst_then_one_slot_per_interval,
    a_claim_says_when_the_queue_is_next_due,
    a_finish_writes_what_the_job_left_in_the_same_step,
    a_sessions_own_deliveries_keep_the_latest_reply,
    a_lawyers_command_by_code_is_one_read_and_one_marked_change,
    a_lawyers_bare_command_reads_her_index_and_its_cases_in_one,
    sets_of_small_values_add_list_remove_and_ride_with_a_rate,
    a_claim_reads_the_code_of_the_case_its_message_names,
    a_claim_names_every_code_of_a_case_with_an_alias,
    small_values_are_read_together,
    a_code_of_another_bucket_is_never_given,
    a_restored_case_takes_its_code_back_from_a_lease,
);

#[tokio::test]
async fn memory_store_evicts_the_least_recently_active_session() {
    let env = mem();
    let store = MemoryStore::new(2);
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        let mut req = commit_req(&env, key, 0, &format!("d{i}"), "x", None);
        req.now_ms += i as u64;
        store.commit(req).await.unwrap();
    }
    assert_eq!(store.session_count(env.now() + 10), 2);
    assert_eq!(store.evicted(), 1);
    let begin = store
        .begin(begin_req(&env, "probe", "r", "a"))
        .await
        .unwrap();
    assert_eq!(begin, Begin::Proceed(None), "the oldest went first");
}

#[tokio::test]
async fn memory_store_bounds_sessions_across_its_shards() {
    // The bound is over every bucket's shard together: women spread over
    // all sixteen buckets, 400 sessions into room for 32.
    let env = mem();
    let store = MemoryStore::new(32);
    for i in 0..400u64 {
        let mut req = commit_req(&env, &format!("s{i}"), 0, &format!("d{i}"), "x", None);
        req.bucket = (i % 16) as u16;
        req.now_ms += i;
        store.commit(req).await.unwrap();
    }
    let live = store.session_count(env.now() + 400);
    assert_eq!(live, 32, "the bound holds across shards");
    assert_eq!(store.evicted(), 400 - 32);
    for (key, bucket, kept) in [("s0", 0, false), ("s383", 15, true), ("s399", 15, true)] {
        let mut req = begin_req(&env, &format!("probe-{key}"), "r", key);
        req.bucket = bucket;
        req.now_ms += 400;
        let found = matches!(store.begin(req).await.unwrap(), Begin::Proceed(Some(_)));
        assert_eq!(
            found, kept,
            "{key}: the least recently active of its bucket go first"
        );
    }
}

#[test]
fn memory_store_serves_every_bucket_and_the_global_space_at_once() {
    // Hops in every bucket, lawyers' commands (the global space, then a
    // bucket) and finished jobs with global marks, all at once on ten
    // threads: every one completes (the lock order cannot deadlock) and
    // nothing is lost. Plain threads, each with its own runtime, so that a
    // deadlock fails the test by the deadline instead of hanging it.
    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f)
    }
    let env = std::sync::Arc::new(Mem {
        store: MemoryStore::new(10_000),
        ..mem()
    });
    run(async {
        for b in 0..16u16 {
            let code = (1008 + u32::from(b)).to_string(); // 1008 % 16 == 0
            env.store
                .record_case(b, case(&format!("c{b}"), &[&code]), env.now())
                .await
                .unwrap();
            let add = SetAdd {
                key: "lw:aida".into(),
                member: format!("{b}:c{b}"),
                ttl_ms: 600_000,
            };
            env.store.set_add(None, add, env.now()).await.unwrap();
        }
    });
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let mut threads = Vec::new();
    for t in 0..8u16 {
        let env = env.clone();
        let done = done.clone();
        threads.push(std::thread::spawn(move || {
            run(async {
                for i in 0..300u16 {
                    let key = format!("t{t}-{i}");
                    let mut req = commit_req(&*env, &key, 0, &format!("d-{key}"), "x", None);
                    req.bucket = (t * 300 + i) % 16;
                    assert!(matches!(
                        env.store.commit(req).await.unwrap(),
                        Commit::Saved { .. }
                    ));
                }
            });
            done.send(()).ok();
        }));
    }
    let changed = std::sync::Arc::new(AtomicU64::new(0));
    for t in 0..2u16 {
        let env = env.clone();
        let changed = changed.clone();
        let done = done.clone();
        threads.push(std::thread::spawn(move || {
            run(async {
                for i in 0..200u16 {
                    let begin = LawyerCommandBegin {
                        mark_key: format!("ld:t{t}-{i}"),
                        mark_now: false,
                        mark_ttl_ms: 60_000,
                        rate_key: format!("p{t}"),
                        rate: RateLimit {
                            per_minute: 600_000,
                            burst: 1_000,
                        },
                        index_key: "lw:aida".into(),
                        flag: None,
                        now_ms: env.now(),
                    };
                    let LawyerBegin::Proceed(index) =
                        env.store.begin_lawyer_command(begin).await.unwrap()
                    else {
                        panic!("her index");
                    };
                    assert_eq!(index.len(), 16, "every bucket's case, read with the index");
                    let (bucket, record) = &index[usize::from(i % 16)];
                    let update = hotline::store::CaseUpdate {
                        bucket: *bucket,
                        id: record.id.clone(),
                        code: record.code.clone(),
                        alias: None,
                        expected_version: record.version,
                        data: b"noted".to_vec(),
                        close: false,
                        jobs: Vec::new(),
                        mark: Some(KvWrite::set(format!("ld:t{t}-{i}"), b"1".to_vec(), None)),
                        mark_global: true,
                        now_ms: env.now(),
                    };
                    // This change, or the other lawyer's first (a stale version).
                    if env.store.update_case(update).await.unwrap() {
                        changed.fetch_add(1, Ordering::SeqCst);
                        let mark = format!("ld:t{t}-{i}");
                        assert!(
                            env.store
                                .get(None, &mark, env.now())
                                .await
                                .unwrap()
                                .is_some()
                        );
                    }
                    let sent = vec![KvWrite::set(format!("sent:t{t}-{i}"), b"1".to_vec(), None)];
                    env.store
                        .finish_with(
                            i % 16,
                            Queue::Outbox,
                            "none",
                            1,
                            sent.clone(),
                            sent,
                            env.now(),
                        )
                        .await
                        .unwrap();
                }
            });
            done.send(()).ok();
        }));
    }
    drop(done);
    for n in 0..threads.len() {
        finished
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!("only {n} of 10 threads finished: a lock-order deadlock, or a panic above")
            });
    }
    for t in threads {
        t.join().expect("no thread panicked");
    }
    run(async {
        assert_eq!(env.store.session_count(env.now()), 8 * 300, "no hop lost");
        for t in 0..2 {
            for i in [0u16, 199] {
                let key = format!("sent:t{t}-{i}");
                assert!(
                    env.store
                        .get(None, &key, env.now())
                        .await
                        .unwrap()
                        .is_some()
                );
                assert!(
                    env.store
                        .get(Some(i % 16), &key, env.now())
                        .await
                        .unwrap()
                        .is_some()
                );
            }
        }
        let mut versions = 0;
        for b in 0..16u16 {
            let c = env
                .store
                .case(b, &format!("c{b}"))
                .await
                .unwrap()
                .expect("its case");
            versions += c.version - 1;
        }
        assert_eq!(
            versions,
            changed.load(Ordering::SeqCst),
            "every change counted once"
        );
        assert!(versions > 0);
    });
}
