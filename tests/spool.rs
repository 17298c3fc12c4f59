//! Spools on a real Redis: instances sharing a spool folder lose nothing,
//! and a crashed instance's spool is replayed by another, each case with
//! the code its caller was shown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::redis::{RedisServer, unique_prefix};
use hotline::codes::OfflineCodes;
use hotline::spool::{Appended, Spool};
use hotline::store::redis::RedisStore;
use hotline::store::{NewCase, Store, code_candidates};

async fn redis_store(server: &RedisServer, test: &str) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::connect(
            &server.url,
            &unique_prefix(test),
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .await
        .unwrap(),
    )
}

fn case(id: &str, bucket: u16) -> NewCase {
    NewCase {
        id: id.into(),
        code_candidates: code_candidates(bucket, id, 8),
        data: b"sealed".to_vec(),
        jobs: Vec::new(),
    }
}

/// Two instances share a spool folder; each appends while both replay
/// (their own file and any orphan) over and over: every case lands.
#[tokio::test]
async fn two_instances_appending_while_replaying_lose_no_case() {
    let server = RedisServer::shared_or_start();
    let store = redis_store(&server, "spoolshare").await;
    let dir = tempfile::tempdir().unwrap();
    let a = Spool::open(dir.path(), "aaaa").unwrap();
    let b = Spool::open(dir.path(), "bbbb").unwrap();
    const PER: usize = 150;
    let appender = |spool: Arc<Spool>, name: &'static str| {
        tokio::spawn(async move {
            for i in 0..PER {
                let id = format!("c_{name}{i}");
                let bucket = (i % 16) as u16;
                let added = spool.append(bucket, &case(&id, bucket), None, 1).await;
                assert_eq!(added.unwrap(), Appended::Added);
            }
        })
    };
    let replayer = |spool: Arc<Spool>, store: Arc<dyn Store>| {
        tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..60 {
                n += spool.replay(store.as_ref(), 2).await.unwrap().recorded;
                n += spool
                    .replay_orphans(store.as_ref(), 2)
                    .await
                    .unwrap()
                    .recorded;
                tokio::task::yield_now().await;
            }
            n
        })
    };
    let tasks = (
        appender(a.clone(), "a"),
        appender(b.clone(), "b"),
        replayer(a.clone(), store.clone()),
        replayer(b.clone(), store.clone()),
    );
    let (ra, rb, na, nb) = tokio::time::timeout(common::TIMEOUT, async {
        tokio::join!(tasks.0, tasks.1, tasks.2, tasks.3)
    })
    .await
    .expect("bounded");
    ra.unwrap();
    rb.unwrap();
    let during = na.unwrap() + nb.unwrap();
    let after = a.replay(store.as_ref(), 3).await.unwrap().recorded
        + b.replay(store.as_ref(), 3).await.unwrap().recorded;
    let mut landed = 0;
    for name in ["a", "b"] {
        for i in 0..PER {
            let rec = store
                .case((i % 16) as u16, &format!("c_{name}{i}"))
                .await
                .unwrap();
            landed += usize::from(rec.is_some());
        }
    }
    eprintln!(
        "two spools in one folder: {} appended, {during} replayed while appending, {after} after, {landed} in Redis, {} lost",
        2 * PER,
        2 * PER - landed
    );
    assert_eq!(landed, 2 * PER, "no append lost");
    assert_eq!((a.pending(), b.pending()), (0, 0));
}

/// An instance dies with cases in its spool, each shown a leased code; a
/// live instance replays that spool (its own is locked to it) with exactly
/// those codes, and removes it.
#[tokio::test]
async fn a_crashed_instances_spool_is_replayed_by_another_with_the_shown_codes() {
    let server = RedisServer::shared_or_start();
    let store = redis_store(&server, "spoolcrash").await;
    let dir = tempfile::tempdir().unwrap();
    let now = hotline::clock::Clock::System.now_ms();
    let dead_codes = OfflineCodes::new("dead", 4);
    dead_codes.renew(store.as_ref(), now).await.unwrap();
    let dead = Spool::open(dir.path(), "dead").unwrap();
    let mut shown = Vec::new();
    for i in 0..6u16 {
        let lease = dead_codes.take(i, now).expect("a leased code");
        let id = format!("c_dead{i}");
        dead.append(i, &case(&id, i), Some(&lease), now)
            .await
            .unwrap();
        shown.push((id, i, lease.code));
    }
    let live = Spool::open(dir.path(), "live").unwrap();
    assert_eq!(
        live.replay_orphans(store.as_ref(), now)
            .await
            .unwrap()
            .recorded,
        0,
        "a live instance's spool is left to it"
    );
    drop(dead); // the process dies: its lock goes with it
    let done = live.replay_orphans(store.as_ref(), now).await.unwrap();
    assert_eq!((done.recorded, done.codes_changed), (6, 0));
    for (id, bucket, code) in &shown {
        let rec = store.case_by_code(code).await.unwrap().expect("recorded");
        assert_eq!(&rec.id, id);
        assert_eq!(store.case(*bucket, id).await.unwrap().unwrap().code, *code);
    }
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter().all(|f| f.starts_with("cases-live.")),
        "the dead spool is gone: {left:?}"
    );
    eprintln!(
        "crashed instance: {} cases shown codes, {} replayed by another, {} codes changed",
        shown.len(),
        done.recorded,
        done.codes_changed
    );
}
