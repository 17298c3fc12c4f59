//! The Redis store: shared by every gateway instance.
//!
//! One multiplexed, reconnecting connection (`ConnectionManager`, or the
//! cluster client when `HOTLINE_REDIS_URL` lists several nodes) with explicit
//! connect and response timeouts; `conn` owns it: TLS, retries within the
//! response timeout, and following a Redis Cluster failover. Every
//! multi-key operation is one Lua script (`lua/*.lua`), held as a
//! [`redis::Script`] and loaded at start-up, so each webhook costs two
//! round trips: `begin.lua` and `commit.lua`. Background work costs one
//! claim per bucket with work due (`claim.lua` says when that is) and one
//! `finish.lua` per sent message, its record included (see
//! `docs/redis.md`, *Background work*).
//!
//! ## Keys
//!
//! Every key is `{prefix}:{{bucket}}:…`; the braces are a Redis Cluster hash
//! tag, so all keys of one bucket share a slot and a script only ever touches
//! one slot. A caller's bucket comes from the pseudonym of their number; a
//! case code's bucket is `code % 16`.
//!
//! | key | type | what | expiry |
//! |---|---|---|---|
//! | `P:{b}:s:<session>` | hash `v`,`d`,`r`,`sk` | session version, sealed data; a cumulative USSD session's latest hop and its reply (`r`: `hop\ncode\nend\ntext`), the hop that spent a rate slot (`sk`) | session timeout; only `r` for `limits.dedupe_ttl_secs` after it ended |
//! | `P:{b}:d:<delivery>` | string | cached reply (`code\nend\ntext`) of a delivery that is not a cumulative session's own hop (SMS, lawyers' SMS, a latest-input hop) | `limits.dedupe_ttl_secs`; 4 s for a latest-input hop without an operator hop id |
//! | `P:{b}:r:<pseudonym>` | string | GCRA theoretical arrival time | when it passes |
//! | `P:{b}:seq` | counter | session versions (never reused) | none |
//! | `P:{b}:c:<case id>` | hash `code`,`v`,`d`,`st`,`alias` | case, sealed data, status, a second code naming it (spool replay) | none while open |
//! | `P:{b}:code:<code>` | string | case id of a code, or `~<instance>` while an instance leases it for outages | none while open; 72 h after closing; the lease's TTL |
//! | `P:{b}:open` | set | ids of open cases | none |
//! | `P:{b}:all` | set | ids of every case (statistics, retention) | none |
//! | `P:{b}:q:<queue>` | zset | job ids by due time (`outbox`, `timers`) | none |
//! | `P:{b}:j:<queue>` | hash | job id → `attempt|payload` | none |
//! | `P:{b}:k:<key>` | string | small values (opt-out flags, message records) | per value |
//! | `P:{b}:k:ld:<channel>:<id>` | string | a lawyer's command by code was handled (in the code's bucket) | `limits.dedupe_ttl_secs` |
//! | `P:{g}:sentinel`, `P:{b}:sentinel` | string | read by every store ping ([`Store::watch`]); gone, or another value than an instance last saw: Redis lost its data (written again as `<instance>.<ms>`) | never |
//! | `P:{g}:sentinel:t`, `P:{b}:sentinel:t` | string | the sentinel's heartbeat: the largest wall-clock ms any ping wrote; smaller than an instance left it: Redis went back to an older copy | never |
//! | `P:{g}:k:<key>` | string | global small values (aggregator message id → ours) | per value |
//! | `P:{g}:k:lw:<lawyer>` | set | the cases offered to a lawyer (`bucket:case id`) | 30 days after the last offer |
//!
//! Over 600 lines: the connection and every trait operation's script
//! invocation, each a few lines of keys and arguments, kept beside the key
//! table above.

mod conn;

use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, Value};

use conn::Conn;
pub use conn::{REFRESH_GAP, RedisOptions};

use super::{
    BUCKETS, Begin, BeginRequest, CODE_QUARANTINE_MS, CachedReply, CaseBegin, CaseCommandBegin,
    CaseRecord, CaseUpdate, ClaimBatch, Claimed, CodeLease, Commit, CommitRequest, Job, KvOp,
    KvWrite, LawyerBegin, LawyerCommandBegin, LeaseRequest, LeasedRecord, NewCase, Queue,
    RateLimit, SEEN_WINDOW_MS, SessionRecord, SessionWrite, SetAdd, Store, StoreError, Updated,
    code_bucket, lease_mark, session_delivery,
};

const CASE_LUA: &str = include_str!("lua/case.lua");
/// The mark and rate check that starts a lawyer's command (prepended to
/// `case_command.lua` and `lawyer_command.lua`).
const COMMAND_BEGIN_LUA: &str = include_str!("lua/command_begin.lua");

/// The scripts, compiled once.
struct Scripts {
    begin: Script,
    commit: Script,
    record_case: Script,
    update_case: Script,
    schedule: Script,
    claim: Script,
    finish: Script,
    lease: Script,
    rate: Script,
    case_by_code: Script,
    case_command: Script,
    lawyer_command: Script,
    sentinel: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            begin: Script::new(include_str!("lua/begin.lua")),
            commit: Script::new(&format!("{CASE_LUA}\n{}", include_str!("lua/commit.lua"))),
            record_case: Script::new(&format!(
                "{CASE_LUA}\n{}",
                include_str!("lua/record_case.lua")
            )),
            update_case: Script::new(&format!(
                "{CASE_LUA}\n{}",
                include_str!("lua/update_case.lua")
            )),
            schedule: Script::new(include_str!("lua/schedule.lua")),
            claim: Script::new(include_str!("lua/claim.lua")),
            finish: Script::new(include_str!("lua/finish.lua")),
            lease: Script::new(include_str!("lua/lease.lua")),
            rate: Script::new(include_str!("lua/rate.lua")),
            case_by_code: Script::new(include_str!("lua/case_by_code.lua")),
            case_command: Script::new(&format!(
                "{COMMAND_BEGIN_LUA}\n{}",
                include_str!("lua/case_command.lua")
            )),
            lawyer_command: Script::new(&format!(
                "{COMMAND_BEGIN_LUA}\n{}",
                include_str!("lua/lawyer_command.lua")
            )),
            sentinel: Script::new(include_str!("lua/sentinel.lua")),
        }
    }

    fn all(&self) -> [&Script; 13] {
        [
            &self.begin,
            &self.commit,
            &self.record_case,
            &self.update_case,
            &self.schedule,
            &self.claim,
            &self.finish,
            &self.lease,
            &self.rate,
            &self.case_by_code,
            &self.case_command,
            &self.lawyer_command,
            &self.sentinel,
        ]
    }
}

/// The Redis store.
pub struct RedisStore {
    conn: Conn,
    scripts: Scripts,
    prefix: String,
    /// Each bucket's hash tag (`<prefix>:{<bucket>}`) and its four queue
    /// keys, built once: a hop's keys are concatenated, not formatted.
    tags: Vec<(String, [String; 4])>,
    /// The sentinels ([`Store::watch`]): the next to read, and the value
    /// last seen in each (the 16 buckets' and the global slot's).
    sentinels: std::sync::Mutex<Sentinels>,
    /// Losses [`Store::watch`] found, part of [`Store::disturbances`].
    data_losses: std::sync::atomic::AtomicU64,
    /// Of those, how many [`Store::take_data_losses`] handed out.
    losses_reported: std::sync::atomic::AtomicU64,
    /// A cluster's slot map as the last [`Store::watch`] read it: each
    /// range and its master (`CLUSTER SLOTS`).
    slot_map: std::sync::Mutex<Option<Vec<(i64, i64, String)>>>,
    /// Times the slot map changed between two watches (a failover, also
    /// one the client followed without an error: `CLUSTER FAILOVER
    /// TAKEOVER` onto a replica that lacked the last writes), part of
    /// [`Store::disturbances`].
    slot_map_changes: std::sync::atomic::AtomicU64,
    /// When every slot's sentinel last answered in one [`Store::watch`]
    /// (ms since the epoch; a cluster's, see [`Store::degraded`]).
    whole_at: std::sync::atomic::AtomicU64,
    /// Which sentinels' buckets are not [`Store::trusted`] now.
    trust: std::sync::Mutex<Trust>,
}

/// Which buckets' codes may be given to new cases ([`Store::trusted`]):
/// one entry per sentinel (the buckets', then `{g}`'s, which alone speaks
/// for every bucket on one Redis).
#[derive(Debug)]
struct Trust {
    /// [`Store::disturbances`] as last taken in: a change doubts them all.
    seen: u64,
    /// Not trusted until a clean read of the sentinel.
    doubt: Vec<bool>,
    /// After a loss: not trusted before this time (ms since the epoch).
    hold_until: Vec<u64>,
    /// Whose sentinel did not answer at its last read.
    down: Vec<bool>,
}

impl Trust {
    /// Doubt every bucket when the store faltered since `seen` — unless a
    /// sentinel is known not to answer: on a cluster with a slot down, its
    /// callers' and workers' failed calls would doubt every healthy bucket
    /// again and again (their women shown outage codes until none is left),
    /// and the dead slot's buckets are doubted already.
    fn take_in(&mut self, disturbances: u64) {
        if disturbances != self.seen {
            self.seen = disturbances;
            if !self.down.iter().any(|d| *d) {
                self.doubt.fill(true);
            }
        }
    }
}

/// A cluster is degraded when not every slot has answered one watch for
/// this long: two of the store watch's 5 s rounds and a little more.
const WHOLE_WITHIN_MS: u64 = 12_000;

/// Now, in ms since the epoch (the wall clock: what the heartbeats use).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What [`Store::watch`] last saw of the sentinel keys.
#[derive(Debug)]
struct Sentinels {
    /// This instance's part of the value it writes into a missing sentinel
    /// (with the time of the write).
    mine: String,
    /// The value last seen in each: `None` before the first read.
    seen: Vec<Option<String>>,
    /// The heartbeat each holds as this instance last left it (ms).
    beats: Vec<u64>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn string(v: &Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b).ok())
}

/// The warning for an `INFO memory` answer whose `maxmemory_policy` lets
/// Redis evict keys.
fn eviction_warning(info: &str) -> Option<String> {
    let policy = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))?;
    (policy != "noeviction").then(|| {
        format!(
            "Redis evicts keys when full (maxmemory-policy {policy}): an evicted case, offer or timer vanishes and nothing notices; set maxmemory-policy noeviction (ops/redis/redis.conf)"
        )
    })
}

/// Each slot range of a `CLUSTER SLOTS` answer with its master (the node
/// id, else `ip:port`), ordered; `None` for an answer of another shape.
fn slot_masters(v: &Value) -> Option<Vec<(i64, i64, String)>> {
    let Value::Array(ranges) = v else {
        return None;
    };
    let mut map = Vec::with_capacity(ranges.len());
    for r in ranges {
        let Value::Array(items) = r else {
            return None;
        };
        let (start, end) = (int(items.first()?)?, int(items.get(1)?)?);
        let Value::Array(master) = items.get(2)? else {
            return None;
        };
        let who = match master.get(2).and_then(string) {
            Some(id) => id,
            None => format!(
                "{}:{}",
                master.first().and_then(string)?,
                master.get(1).and_then(int)?
            ),
        };
        map.push((start, end, who));
    }
    map.sort();
    Some(map)
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => string(other)?.parse().ok(),
    }
}

/// A sorted-set score (a due time in ms), as Redis formats it.
fn score(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Double(d) if *d >= 0.0 => Some(*d as u64),
        other => {
            let s = string(other)?;
            s.parse::<u64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|d| *d >= 0.0)
                    .map(|d| d as u64)
            })
        }
    }
}

fn parse_reply(raw: &[u8]) -> Result<CachedReply, StoreError> {
    let text = std::str::from_utf8(raw).map_err(|_| corrupt("cached reply is not UTF-8"))?;
    let mut parts = text.splitn(3, '\n');
    let (Some(code), Some(end), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt("cached reply has the wrong shape"));
    };
    Ok(CachedReply {
        text: body.to_owned(),
        end: end == "1",
        code: (!code.is_empty()).then(|| code.to_owned()),
    })
}

/// Four script args per job: queue, id, due, payload.
/// `parts` joined: a key without `format!`'s machinery (a hop builds
/// several).
fn cat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

fn job_args(jobs: &[(Queue, Job)]) -> Vec<Vec<u8>> {
    let mut args = Vec::with_capacity(jobs.len() * 4);
    for (queue, job) in jobs {
        args.push(queue.as_str().as_bytes().to_vec());
        args.push(job.id.clone().into_bytes());
        args.push(job.due_ms.to_string().into_bytes());
        args.push(job.payload.clone());
    }
    args
}

/// Parse `HOTLINE_REDIS_URL`: one URL, or several separated by commas for a
/// cluster (`redis://10.0.0.1:6379,redis://10.0.0.2:6379`).
pub fn parse_urls(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl RedisStore {
    /// Read and move on sentinel `index` (a bucket's; `BUCKETS`: the
    /// global slot's); see [`Store::watch`].
    async fn watch_one(&self, index: usize) -> Result<bool, StoreError> {
        let mine = self
            .sentinels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .mine
            .clone();
        let key = match u16::try_from(index) {
            Ok(b) if b < BUCKETS => format!("{}:sentinel", self.tag(b)),
            _ => format!("{}:{{g}}:sentinel", self.prefix),
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        // A value of its own each time it is written: another instance
        // that saw the one before then sees a change whichever of them
        // wrote it again first (one value per instance for its whole life
        // looked unchanged to the others after this one rewrote it).
        let mut inv = self.scripts.sentinel.prepare_invoke();
        inv.key(&key)
            .key(format!("{key}:t"))
            .arg(format!("{mine}.{now_ms}"))
            .arg(now_ms);
        let v = match self.conn.invoke(&inv).await {
            Ok(v) => v,
            Err(e) => {
                let mut t = self.trust();
                t.doubt[index] = true;
                t.down[index] = true;
                return Err(unavailable(e));
            }
        };
        let Value::Array(items) = v else {
            self.trust().doubt[index] = true;
            return Err(corrupt("sentinel returned a non-array"));
        };
        let written_now = items.first().and_then(int) == Some(0);
        let value = items
            .get(1)
            .and_then(string)
            .ok_or_else(|| corrupt("sentinel: no value"))?;
        let mut s = self
            .sentinels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let beat: u64 = items
            .get(2)
            .and_then(string)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let before = s.seen[index].replace(value.clone());
        let left = std::mem::replace(&mut s.beats[index], beat.max(now_ms));
        // Seen before, and now missing (written again just now) or another
        // value (written again by another instance that found it missing);
        // or its heartbeat went back in time.
        let lost = before
            .as_ref()
            .is_some_and(|b| written_now || *b != value || beat < left);
        drop(s);
        if lost {
            self.data_losses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut t = self.trust();
        t.down[index] = false;
        if lost {
            t.doubt[index] = true;
            t.hold_until[index] = now_ms + super::LOSS_GRACE_MS;
        } else if now_ms >= t.hold_until[index] {
            t.doubt[index] = false;
        }
        Ok(lost)
    }

    fn trust(&self) -> std::sync::MutexGuard<'_, Trust> {
        self.trust
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Self::trust`], with the faults since it was last read taken in.
    fn trust_now(&self) -> std::sync::MutexGuard<'_, Trust> {
        let d = self.disturbances();
        let mut t = self.trust();
        t.take_in(d);
        t
    }

    /// The sentinel that speaks for `bucket`: its own on a cluster, `{g}`'s
    /// on one Redis.
    fn sentinel_of(&self, bucket: u16) -> usize {
        if self.conn.is_cluster() {
            usize::from(bucket.min(BUCKETS))
        } else {
            usize::from(BUCKETS)
        }
    }

    /// Read the cluster's slot map (`CLUSTER SLOTS`, from any node) and
    /// count a change since the last read: a slot with another master
    /// means a failover, and a failover can take back writes its old
    /// master acknowledged — also one the client followed without an
    /// error (`MOVED` is followed inside redis-rs), which nothing else
    /// here would notice (Redis Cluster audit: a `TAKEOVER` onto a lagging
    /// replica lost 9 cases silently). A read that fails changes nothing.
    async fn read_slot_map(&self) {
        let Ok(v) = self.conn.query(redis::cmd("CLUSTER").arg("SLOTS")).await else {
            return;
        };
        let Some(map) = slot_masters(&v) else {
            return;
        };
        let mut last = self
            .slot_map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.as_ref().is_some_and(|l| *l != map) {
            self.slot_map_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                "Redis Cluster: a slot has another master (a failover or a resharding): rechecking the cases recorded in the last hour"
            );
        }
        *last = Some(map);
    }

    /// Connect with timeouts and no custom CA; see [`RedisStore::connect_with`].
    ///
    /// # Errors
    /// As [`RedisStore::connect_with`].
    pub async fn connect(
        url: &str,
        prefix: &str,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let opts = RedisOptions {
            connect_timeout,
            response_timeout,
            tls_ca: None,
        };
        Self::connect_with(url, prefix, &opts).await
    }

    /// Connect. A single URL gives a lazily connecting, reconnecting
    /// `ConnectionManager` (the gateway starts even while Redis is down and
    /// recovers on its own); several give a cluster connection, which needs a
    /// node to answer now and follows failovers (see `conn.rs`). `rediss://`
    /// URLs speak TLS, trusting `opts.tls_ca` when given, else the system's
    /// roots.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL or CA is invalid or the
    /// cluster cannot be reached.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        opts: &RedisOptions,
    ) -> Result<Self, StoreError> {
        let conn = Conn::connect(&parse_urls(url), opts)
            .await
            .map_err(unavailable)?;
        let tags = (0..BUCKETS)
            .map(|b| {
                let t = format!("{prefix}:{{{b}}}");
                let queues = [
                    format!("{t}:q:outbox"),
                    format!("{t}:j:outbox"),
                    format!("{t}:q:timers"),
                    format!("{t}:j:timers"),
                ];
                (t, queues)
            })
            .collect();
        let mine = format!(
            "{:016x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                ^ u128::from(std::process::id())
        );
        let store = RedisStore {
            conn,
            scripts: Scripts::new(),
            prefix: prefix.to_owned(),
            tags,
            sentinels: std::sync::Mutex::new(Sentinels {
                mine,
                seen: vec![None; usize::from(BUCKETS) + 1],
                beats: vec![0; usize::from(BUCKETS) + 1],
            }),
            data_losses: std::sync::atomic::AtomicU64::new(0),
            losses_reported: std::sync::atomic::AtomicU64::new(0),
            slot_map: std::sync::Mutex::new(None),
            slot_map_changes: std::sync::atomic::AtomicU64::new(0),
            whole_at: std::sync::atomic::AtomicU64::new(unix_ms()),
            trust: std::sync::Mutex::new(Trust {
                seen: 0,
                doubt: vec![false; usize::from(BUCKETS) + 1],
                hold_until: vec![0; usize::from(BUCKETS) + 1],
                down: vec![false; usize::from(BUCKETS) + 1],
            }),
        };
        // Load the scripts now so the first webhook pays no extra round
        // trip; if Redis is down, `invoke` loads them on first use instead.
        if let Err(e) = store.conn.load_scripts(&store.scripts.all()).await {
            tracing::warn!(error = %e, "could not load Redis scripts at start-up; will retry on first use");
        }
        Ok(store)
    }

    /// How many times the cluster connection was rebuilt after a node
    /// failed (always 0 for a single Redis).
    pub fn topology_rebuilds(&self) -> u64 {
        self.conn.rebuilds()
    }

    fn tag(&self, bucket: u16) -> &str {
        &self.tags[usize::from(bucket % BUCKETS)].0
    }

    /// The four queue keys, in the order `add_jobs` expects.
    fn all_queue_keys(&self, bucket: u16) -> &[String; 4] {
        &self.tags[usize::from(bucket % BUCKETS)].1
    }

    /// The case, open-set and code keys, in the order `create_case` expects.
    fn case_keys(&self, bucket: u16, case: &NewCase) -> Vec<String> {
        let t = self.tag(bucket);
        let mut keys = vec![
            cat(&[t, ":c:", &case.id]),
            cat(&[t, ":open"]),
            cat(&[t, ":all"]),
        ];
        keys.extend(case.codes_of(bucket).map(|c| cat(&[t, ":code:", c])));
        keys
    }

    fn kv_key(&self, bucket: Option<u16>, key: &str) -> String {
        match bucket {
            Some(b) => cat(&[self.tag(b), ":k:", key]),
            None => format!("{}:{{g}}:k:{key}", self.prefix),
        }
    }

    fn case_args(bucket: u16, case: &NewCase) -> Vec<Vec<u8>> {
        let codes: Vec<&String> = case.codes_of(bucket).collect();
        let mut args: Vec<Vec<u8>> = vec![
            case.id.clone().into_bytes(),
            case.data.clone(),
            codes.len().to_string().into_bytes(),
            case.jobs.len().to_string().into_bytes(),
        ];
        args.extend(codes.into_iter().map(|c| c.clone().into_bytes()));
        args.extend(job_args(&case.jobs));
        args
    }

    /// `record_case.lua`: with `mark` non-empty, the first candidate is a
    /// code leased under that mark.
    /// `record_case.lua`: the case's code (or the shown one) and whether the
    /// shown code became its alias.
    async fn record_case_marked(
        &self,
        bucket: u16,
        case: &NewCase,
        mark: &str,
    ) -> Result<LeasedRecord, StoreError> {
        let mut inv = self.scripts.record_case.prepare_invoke();
        for k in self.all_queue_keys(bucket) {
            inv.key(k);
        }
        for k in self.case_keys(bucket, case) {
            inv.key(k);
        }
        inv.arg(mark);
        for a in Self::case_args(bucket, case) {
            inv.arg(a);
        }
        inv.arg(CODE_QUARANTINE_MS);
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let Value::Array(items) = v else {
            return Err(corrupt("record_case returned a non-array"));
        };
        match items.first().and_then(int) {
            Some(status @ (1 | 3)) => Ok(LeasedRecord {
                code: items
                    .get(1)
                    .and_then(string)
                    .ok_or_else(|| corrupt("record_case: no code"))?,
                aliased: status == 3,
            }),
            Some(2) => Err(StoreError::CodesExhausted),
            _ => Err(corrupt("record_case returned an unknown status")),
        }
    }

    fn queue_keys(&self, bucket: u16, queue: Queue) -> [String; 2] {
        let t = self.tag(bucket);
        [
            format!("{t}:q:{}", queue.as_str()),
            format!("{t}:j:{}", queue.as_str()),
        ]
    }

    /// The full key of a session, for measurements (`MEMORY USAGE`).
    pub fn session_key(&self, bucket: u16, session: &str) -> String {
        format!("{}:s:{session}", self.tag(bucket))
    }

    async fn finish_or_reschedule(
        &self,
        bucket: u16,
        queue: Queue,
        id: &str,
        attempt: u32,
        due_ms: Option<u64>,
        payload: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let mut inv = self.scripts.finish.prepare_invoke();
        for k in self.queue_keys(bucket, queue) {
            inv.key(k);
        }
        inv.arg(id)
            .arg(attempt.to_string())
            .arg(due_ms.map(|d| d.to_string()).unwrap_or_default())
            .arg(payload.clone().unwrap_or_default())
            .arg(if payload.is_some() { "1" } else { "0" });
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        Ok(int(&v) == Some(1))
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn begin(&self, req: BeginRequest) -> Result<Begin, StoreError> {
        let t = self.tag(req.bucket);
        let mut inv = self.scripts.begin.prepare_invoke();
        inv.key(cat(&[t, ":d:", &req.dedupe_key]))
            .key(cat(&[t, ":r:", &req.rate_key]))
            .key(cat(&[t, ":s:", &req.session_key]));
        if let Some(scope) = &req.dedupe_scope {
            inv.key(self.kv_key(Some(req.bucket), scope));
        }
        let fold = session_delivery(
            &req.session_key,
            &req.dedupe_key,
            req.dedupe_scope.as_deref(),
        );
        inv.arg(req.now_ms)
            .arg(req.rate.interval_ms())
            .arg(req.rate.burst.max(1))
            .arg(SEEN_WINDOW_MS)
            .arg(fold.unwrap_or_default());
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let Value::Array(items) = v else {
            return Err(corrupt("begin returned a non-array"));
        };
        match items.first().and_then(int) {
            Some(1) => {
                let raw = items
                    .get(1)
                    .and_then(bytes)
                    .ok_or_else(|| corrupt("begin: no reply"))?;
                Ok(Begin::Duplicate(parse_reply(&raw)?))
            }
            Some(2) => Ok(Begin::Limited {
                retry_after_ms: items.get(1).and_then(int).unwrap_or(0).max(0) as u64,
            }),
            Some(3) if items.len() >= 3 => Ok(Begin::Proceed(Some(SessionRecord {
                version: int(&items[1]).unwrap_or(0).max(0) as u64,
                data: bytes(&items[2]).unwrap_or_default(),
            }))),
            Some(3) => Ok(Begin::Proceed(None)),
            _ => Err(corrupt("begin returned an unknown status")),
        }
    }

    async fn commit(&self, req: CommitRequest) -> Result<Commit, StoreError> {
        let t = self.tag(req.bucket);
        let mut inv = self.scripts.commit.prepare_invoke();
        inv.key(cat(&[t, ":s:", &req.session_key]))
            .key(cat(&[t, ":d:", &req.dedupe_key]))
            .key(cat(&[t, ":seq"]));
        for k in self.all_queue_keys(req.bucket) {
            inv.key(k);
        }
        for w in &req.kv {
            inv.key(self.kv_key(Some(req.bucket), &w.key));
        }
        let (write, data, ttl) = match &req.session {
            SessionWrite::Save { data, ttl_ms } => ("save", data.clone(), *ttl_ms),
            SessionWrite::Delete => ("delete", Vec::new(), 0),
        };
        inv.arg(req.expected_version.to_string())
            .arg(write)
            .arg(data)
            .arg(ttl.max(1))
            .arg(cat(&[
                if req.reply.end { "1\n" } else { "0\n" },
                &req.reply.text,
            ]))
            .arg(req.dedupe_ttl_ms.max(1))
            .arg(req.jobs.len())
            .arg(req.kv.len())
            .arg(if req.case.is_some() { "1" } else { "0" })
            .arg(
                session_delivery(
                    &req.session_key,
                    &req.dedupe_key,
                    req.dedupe_scope.as_deref(),
                )
                .unwrap_or_default(),
            );
        for a in job_args(&req.jobs) {
            inv.arg(a);
        }
        for w in &req.kv {
            match &w.op {
                KvOp::Set { value, ttl_ms } => inv
                    .arg(value.clone())
                    .arg(ttl_ms.map(|t| t.max(1).to_string()).unwrap_or_default())
                    .arg("0"),
                KvOp::Delete => inv.arg(Vec::<u8>::new()).arg("").arg("1"),
            };
        }
        if let Some(case) = &req.case {
            for k in self.case_keys(req.bucket, case) {
                inv.key(k);
            }
            for a in Self::case_args(req.bucket, case) {
                inv.arg(a);
            }
        }
        if let Some(scope) = &req.dedupe_scope {
            inv.key(self.kv_key(Some(req.bucket), scope)).arg("scoped");
        }
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let Value::Array(items) = v else {
            return Err(corrupt("commit returned a non-array"));
        };
        match items.first().and_then(int) {
            Some(1) => {
                let code = items.get(1).and_then(string).filter(|c| !c.is_empty());
                Ok(Commit::Saved { code })
            }
            Some(0) => {
                let reply = match items.get(1).and_then(bytes) {
                    Some(raw) => Some(parse_reply(&raw)?),
                    None => None,
                };
                Ok(Commit::Conflict(reply))
            }
            Some(2) => Err(StoreError::CodesExhausted),
            _ => Err(corrupt("commit returned an unknown status")),
        }
    }

    async fn schedule(&self, bucket: u16, queue: Queue, jobs: Vec<Job>) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut inv = self.scripts.schedule.prepare_invoke();
        for k in self.queue_keys(bucket, queue) {
            inv.key(k);
        }
        for job in jobs {
            inv.arg(job.id).arg(job.due_ms).arg(job.payload);
        }
        self.conn.invoke(&inv).await.map_err(unavailable)?;
        Ok(())
    }

    async fn claim(
        &self,
        bucket: u16,
        queue: Queue,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        Ok(self
            .claim_next(bucket, queue, now_ms, lease_ms, max)
            .await?
            .jobs)
    }

    async fn claim_next(
        &self,
        bucket: u16,
        queue: Queue,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<ClaimBatch, StoreError> {
        let mut inv = self.scripts.claim.prepare_invoke();
        for k in self.queue_keys(bucket, queue) {
            inv.key(k);
        }
        inv.arg(now_ms).arg(lease_ms).arg(max);
        if queue == Queue::Outbox {
            inv.arg(format!("{}:c:", self.tag(bucket)));
        }
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let Value::Array(parts) = v else {
            return Err(corrupt("claim returned a non-array"));
        };
        let Some(Value::Array(items)) = parts.first() else {
            return Err(corrupt("claim returned no job list"));
        };
        let next_due_ms = parts.get(1).and_then(score);
        let jobs = items
            .iter()
            .map(|item| {
                let Value::Array(f) = item else {
                    return Err(corrupt("claim item is not an array"));
                };
                let get = |i: usize| f.get(i).ok_or_else(|| corrupt("claim item is short"));
                Ok(Claimed {
                    job: Job {
                        id: string(get(0)?).ok_or_else(|| corrupt("job id"))?,
                        due_ms: score(get(2)?).unwrap_or(0),
                        payload: bytes(get(3)?).unwrap_or_default(),
                    },
                    attempt: u32::try_from(int(get(1)?).unwrap_or(0)).unwrap_or(0),
                    case_code: f.get(4).and_then(string),
                    case_alias: f.get(5).and_then(string).filter(|a| !a.is_empty()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClaimBatch { jobs, next_due_ms })
    }

    #[allow(clippy::too_many_arguments)] // the job, and what it leaves in two places
    async fn finish_with(
        &self,
        bucket: u16,
        queue: Queue,
        id: &str,
        attempt: u32,
        kv: Vec<KvWrite>,
        global: Vec<KvWrite>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        // One Redis takes a global key in the same script. On a cluster it
        // lives in another slot: a write of its own, after the job's values
        // and its finish, so that its failure leaves no job to send again,
        // only the global value unwritten.
        let cluster = self.conn.is_cluster();
        let mut writes: Vec<(String, &KvWrite)> = Vec::new();
        if !cluster {
            writes.extend(global.iter().map(|w| (self.kv_key(None, &w.key), w)));
        }
        writes.extend(kv.iter().map(|w| (self.kv_key(Some(bucket), &w.key), w)));
        let mut inv = self.scripts.finish.prepare_invoke();
        for k in self.queue_keys(bucket, queue) {
            inv.key(k);
        }
        inv.arg(id)
            .arg(attempt.to_string())
            .arg("")
            .arg("")
            .arg("0");
        for (key, w) in writes {
            inv.key(key);
            match &w.op {
                KvOp::Set { value, ttl_ms } => inv
                    .arg(value.clone())
                    .arg(ttl_ms.map(|t| t.max(1).to_string()).unwrap_or_default()),
                KvOp::Delete => inv.arg("").arg("-"),
            };
        }
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        if cluster {
            super::write_each(self, None, global, now_ms).await?;
        }
        Ok(int(&v) == Some(1))
    }

    async fn finish(
        &self,
        bucket: u16,
        queue: Queue,
        id: &str,
        attempt: u32,
    ) -> Result<bool, StoreError> {
        self.finish_or_reschedule(bucket, queue, id, attempt, None, None)
            .await
    }

    async fn reschedule(
        &self,
        bucket: u16,
        queue: Queue,
        id: &str,
        attempt: u32,
        due_ms: u64,
        payload: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        self.finish_or_reschedule(bucket, queue, id, attempt, Some(due_ms), payload)
            .await
    }

    async fn record_case(
        &self,
        bucket: u16,
        case: NewCase,
        _now_ms: u64,
    ) -> Result<String, StoreError> {
        Ok(self.record_case_marked(bucket, &case, "").await?.code)
    }

    async fn restore_case(
        &self,
        bucket: u16,
        case: NewCase,
        _now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        if self.case(bucket, &case.id).await?.is_some() {
            return Ok(None);
        }
        // '!': her code may be taken back from a lease (record_case.lua).
        let done = self.record_case_marked(bucket, &case, "!").await?;
        Ok(Some(done.code))
    }

    async fn record_leased_case(
        &self,
        bucket: u16,
        mut case: NewCase,
        lease: &CodeLease,
        _now_ms: u64,
    ) -> Result<LeasedRecord, StoreError> {
        case.code_candidates.insert(0, lease.code.clone());
        self.record_case_marked(bucket, &case, &lease_mark(&lease.holder))
            .await
    }

    async fn lease_codes(&self, req: LeaseRequest) -> Result<Vec<String>, StoreError> {
        let t = self.tag(req.bucket);
        let codes: Vec<&String> = req.keep.iter().chain(&req.candidates).collect();
        let mut inv = self.scripts.lease.prepare_invoke();
        for code in &codes {
            inv.key(format!("{t}:code:{code}"));
        }
        inv.arg(lease_mark(&req.holder))
            .arg(req.ttl_ms.max(1))
            .arg(req.keep.len())
            .arg(req.target);
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let Value::Array(items) = v else {
            return Err(corrupt("lease returned a non-array"));
        };
        items
            .iter()
            .map(|i| {
                int(i)
                    .and_then(|i| usize::try_from(i).ok()?.checked_sub(1))
                    .and_then(|i| codes.get(i))
                    .map(|c| (*c).clone())
                    .ok_or_else(|| corrupt("lease returned a bad index"))
            })
            .collect()
    }

    async fn take_rate(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.take_rate_and_add(key, limit, now_ms, None).await
    }

    async fn take_rate_and_add(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: u64,
        add: Option<SetAdd>,
    ) -> Result<Option<u64>, StoreError> {
        let mut inv = self.scripts.rate.prepare_invoke();
        inv.key(self.kv_key(None, key))
            .arg(now_ms)
            .arg(limit.interval_ms())
            .arg(limit.burst.max(1));
        if let Some(add) = add {
            inv.key(self.kv_key(None, &add.key))
                .arg(add.member)
                .arg(add.ttl_ms.max(1));
        }
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let wait = int(&v).ok_or_else(|| corrupt("rate returned a non-integer"))?;
        Ok((wait > 0).then(|| u64::try_from(wait).unwrap_or(u64::MAX)))
    }

    async fn set_add(
        &self,
        bucket: Option<u16>,
        add: SetAdd,
        _now_ms: u64,
    ) -> Result<(), StoreError> {
        // Not on a hot path (a send adds with its rate, in `rate.lua`).
        let key = self.kv_key(bucket, &add.key);
        let mut sadd = redis::cmd("SADD");
        sadd.arg(&key).arg(add.member);
        self.conn.query(&sadd).await.map_err(unavailable)?;
        let mut expire = redis::cmd("PEXPIRE");
        expire.arg(&key).arg(add.ttl_ms.max(1));
        self.conn.query(&expire).await.map_err(unavailable)?;
        Ok(())
    }

    async fn set_members(
        &self,
        bucket: Option<u16>,
        key: &str,
        _now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.kv_key(bucket, key));
        let v = self.conn.query(&cmd).await.map_err(unavailable)?;
        let mut members: Vec<String> = match v {
            Value::Array(items) | Value::Set(items) => items.iter().filter_map(string).collect(),
            _ => return Err(corrupt("SMEMBERS returned a non-array")),
        };
        members.sort();
        Ok(members)
    }

    async fn set_remove(
        &self,
        bucket: Option<u16>,
        key: &str,
        members: &[String],
    ) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("SREM");
        cmd.arg(self.kv_key(bucket, key));
        for m in members {
            cmd.arg(m);
        }
        self.conn.query(&cmd).await.map_err(unavailable)?;
        Ok(())
    }

    async fn queue_len(&self, bucket: u16, queue: Queue) -> Result<usize, StoreError> {
        let [zset, _] = self.queue_keys(bucket, queue);
        let mut cmd = redis::cmd("ZCARD");
        cmd.arg(zset);
        let v = self.conn.query(&cmd).await.map_err(unavailable)?;
        Ok(int(&v).and_then(|n| usize::try_from(n).ok()).unwrap_or(0))
    }

    async fn peek_jobs(
        &self,
        bucket: u16,
        queue: Queue,
        max: usize,
    ) -> Result<Vec<Job>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let [zset, hash] = self.queue_keys(bucket, queue);
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(&zset).arg(0).arg(max - 1).arg("WITHSCORES");
        let v = self.conn.query(&cmd).await.map_err(unavailable)?;
        let Value::Array(items) = v else {
            return Err(corrupt("ZRANGE returned a non-array"));
        };
        // RESP2: id, score, id, score…; RESP3: [id, score] pairs.
        let mut due: Vec<(String, u64)> = Vec::new();
        let score = |v: &Value| match v {
            Value::Double(d) => Some(*d as u64),
            other => string(other)
                .and_then(|s| s.parse::<f64>().ok())
                .map(|d| d as u64),
        };
        let mut it = items.iter();
        while let Some(first) = it.next() {
            let (id, s) = match first {
                Value::Array(pair) => (pair.first(), pair.get(1)),
                id => (Some(id), it.next()),
            };
            if let (Some(id), Some(s)) = (id.and_then(string), s.and_then(score)) {
                due.push((id, s));
            }
        }
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&hash);
        for (id, _) in &due {
            cmd.arg(id);
        }
        let v = self.conn.query(&cmd).await.map_err(unavailable)?;
        let Value::Array(values) = v else {
            return Err(corrupt("HMGET returned a non-array"));
        };
        Ok(due
            .into_iter()
            .zip(values.iter())
            .filter_map(|((id, due_ms), v)| {
                // Stored as `attempt|payload`; gone when finished meanwhile.
                let raw = bytes(v)?;
                let sep = raw.iter().position(|b| *b == b'|')?;
                Some(Job {
                    id,
                    due_ms,
                    payload: raw[sep + 1..].to_vec(),
                })
            })
            .collect())
    }

    async fn get(
        &self,
        bucket: Option<u16>,
        key: &str,
        _now_ms: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.kv_key(bucket, key));
        let v = self.conn.query(&cmd).await.map_err(unavailable)?;
        Ok(bytes(&v))
    }

    async fn get_many(
        &self,
        bucket: Option<u16>,
        keys: &[String],
        _now_ms: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.kv_key(bucket, k));
        }
        match self.conn.query(&cmd).await.map_err(unavailable)? {
            Value::Array(items) if items.len() == keys.len() => {
                Ok(items.iter().map(bytes).collect())
            }
            _ => Err(corrupt("MGET returned another number of values")),
        }
    }

    async fn put(
        &self,
        bucket: Option<u16>,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        _now_ms: u64,
    ) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.kv_key(bucket, key)).arg(value);
        if let Some(ttl) = ttl_ms {
            cmd.arg("PX").arg(ttl.max(1));
        }
        self.conn.query(&cmd).await.map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, bucket: Option<u16>, key: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.kv_key(bucket, key));
        self.conn.query(&cmd).await.map_err(unavailable)?;
        Ok(())
    }

    async fn case(&self, bucket: u16, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(format!("{}:c:{id}", self.tag(bucket)))
            .arg("code")
            .arg("v")
            .arg("d")
            .arg("st")
            .arg("alias");
        let v = self.conn.query(&cmd).await.map_err(unavailable)?;
        let Value::Array(f) = v else {
            return Err(corrupt("HMGET returned a non-array"));
        };
        let Some(code) = f.first().and_then(string) else {
            return Ok(None);
        };
        Ok(Some(CaseRecord {
            id: id.to_owned(),
            code,
            version: f.get(1).and_then(int).unwrap_or(0).max(0) as u64,
            data: f.get(2).and_then(bytes).unwrap_or_default(),
            open: f.get(3).and_then(string).is_none_or(|st| st == "open"),
            alias: f.get(4).and_then(string),
        }))
    }

    async fn case_by_code(&self, code: &str) -> Result<Option<CaseRecord>, StoreError> {
        let Some(bucket) = code_bucket(code) else {
            return Ok(None);
        };
        let t = self.tag(bucket);
        let mut inv = self.scripts.case_by_code.prepare_invoke();
        inv.key(format!("{t}:code:{code}")).arg(format!("{t}:c:"));
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let Value::Array(f) = v else {
            // A leased code (`~instance`) or a free one belongs to no case.
            return Ok(None);
        };
        let get = |i: usize| f.get(i).ok_or_else(|| corrupt("case_by_code is short"));
        Ok(Some(CaseRecord {
            id: string(get(0)?).ok_or_else(|| corrupt("case id"))?,
            code: string(get(1)?).ok_or_else(|| corrupt("case code"))?,
            version: int(get(2)?).unwrap_or(0).max(0) as u64,
            data: bytes(get(3)?).unwrap_or_default(),
            open: string(get(4)?).is_none_or(|st| st == "open"),
            alias: f.get(5).and_then(string).filter(|a| !a.is_empty()),
        }))
    }

    async fn update_case_once(&self, u: CaseUpdate) -> Result<Updated, StoreError> {
        let t = self.tag(u.bucket);
        let mut inv = self.scripts.update_case.prepare_invoke();
        inv.key(format!("{t}:c:{}", u.id))
            .key(format!("{t}:open"))
            .key(format!("{t}:code:{}", u.code));
        for k in self.all_queue_keys(u.bucket) {
            inv.key(k);
        }
        if let Some(alias) = &u.alias {
            inv.key(format!("{t}:code:{alias}"));
        }
        inv.arg(&u.id)
            .arg(u.expected_version.to_string())
            .arg(u.data.clone())
            .arg(if u.close {
                CODE_QUARANTINE_MS.to_string()
            } else {
                String::new()
            })
            .arg(u.jobs.len());
        for a in job_args(&u.jobs) {
            inv.arg(a);
        }
        inv.arg(if u.alias.is_some() { "1" } else { "0" });
        // A global mark (a command without a code) rides in the script on
        // one Redis; on a cluster it is another slot: written right after
        // a change (round trip one of the command checked it).
        let cluster = self.conn.is_cluster();
        let mark_bucket = (!u.mark_global).then_some(u.bucket);
        let mark = match &u.mark {
            Some(KvWrite {
                key,
                op: KvOp::Set { value, ttl_ms },
            }) => Some((self.kv_key(mark_bucket, key), value, ttl_ms)),
            _ => None,
        };
        if let Some((key, value, ttl_ms)) = &mark
            && !(cluster && u.mark_global)
        {
            inv.key(key)
                .arg(value.as_slice())
                .arg(ttl_ms.map(|t| t.max(1).to_string()).unwrap_or_default());
        }
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let outcome = match int(&v) {
            Some(1) => Updated::Changed,
            Some(2) => Updated::MadeBefore,
            _ => Updated::Stale,
        };
        if outcome == Updated::Changed
            && cluster
            && u.mark_global
            && let Some((key, value, ttl_ms)) = mark
        {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value.clone());
            if let Some(t) = ttl_ms {
                cmd.arg("PX").arg((*t).max(1));
            }
            self.conn.query(&cmd).await.map_err(unavailable)?;
        }
        Ok(outcome)
    }

    async fn begin_lawyer_command(
        &self,
        req: LawyerCommandBegin,
    ) -> Result<LawyerBegin, StoreError> {
        let cluster = self.conn.is_cluster();
        let mut inv = self.scripts.lawyer_command.prepare_invoke();
        inv.key(self.kv_key(None, &req.mark_key))
            .key(format!("{}:{{g}}:r:{}", self.prefix, req.rate_key))
            .key(self.kv_key(None, &req.index_key))
            .arg(req.now_ms)
            .arg(req.rate.interval_ms())
            .arg(req.rate.burst.max(1))
            .arg(SEEN_WINDOW_MS)
            .arg(if req.mark_now {
                req.mark_ttl_ms.max(1).to_string()
            } else {
                String::new()
            })
            .arg(if cluster {
                String::new()
            } else {
                format!("{}:{{", self.prefix)
            });
        match &req.flag {
            Some(KvWrite {
                key,
                op: KvOp::Set { value, .. },
            }) => {
                inv.key(self.kv_key(None, key))
                    .arg("set")
                    .arg(value.clone());
            }
            Some(KvWrite {
                key,
                op: KvOp::Delete,
            }) => {
                inv.key(self.kv_key(None, key)).arg("del");
            }
            None => {
                inv.arg("");
            }
        }
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let Value::Array(f) = v else {
            return Err(corrupt("lawyer_command returned a non-array"));
        };
        match f.first().and_then(int) {
            Some(1) => return Ok(LawyerBegin::Duplicate),
            Some(2) => {
                return Ok(LawyerBegin::Limited {
                    retry_after_ms: f.get(1).and_then(int).unwrap_or(0).max(0) as u64,
                });
            }
            Some(3) => {}
            _ => return Err(corrupt("lawyer_command returned an unknown status")),
        }
        let mut rest = f[1..].iter();
        if cluster {
            // Her cases are in other slots: read after the script.
            let members = rest.step_by(2).filter_map(string).collect();
            let (open, stale) = super::read_members(self, members).await?;
            super::prune_index(self, &req.index_key, &stale).await;
            return Ok(LawyerBegin::Proceed(open));
        }
        let mut out = Vec::new();
        while let Some(member) = rest.next() {
            let member = string(member).ok_or_else(|| corrupt("index member"))?;
            let code = rest.next().and_then(string).unwrap_or_default();
            let (version, data, alias) = (rest.next(), rest.next(), rest.next());
            let Some((bucket, id)) = super::index_member(&member) else {
                return Err(corrupt("lawyer_command returned an unparsed member"));
            };
            out.push((
                bucket,
                CaseRecord {
                    id: id.to_owned(),
                    code,
                    version: version.and_then(int).unwrap_or(0).max(0) as u64,
                    data: data.and_then(bytes).unwrap_or_default(),
                    open: true,
                    alias: alias.and_then(string).filter(|a| !a.is_empty()),
                },
            ));
        }
        Ok(LawyerBegin::Proceed(out))
    }

    async fn begin_case_command(&self, req: CaseCommandBegin) -> Result<CaseBegin, StoreError> {
        let Some(bucket) = code_bucket(&req.code) else {
            return Ok(CaseBegin::Proceed(None));
        };
        let t = self.tag(bucket);
        let mut inv = self.scripts.case_command.prepare_invoke();
        inv.key(self.kv_key(Some(bucket), &req.mark_key))
            .key(format!("{t}:r:{}", req.rate_key))
            .key(format!("{t}:code:{}", req.code))
            .arg(req.now_ms)
            .arg(req.rate.interval_ms())
            .arg(req.rate.burst.max(1))
            .arg(SEEN_WINDOW_MS)
            .arg(format!("{t}:c:"));
        let v = self.conn.invoke(&inv).await.map_err(unavailable)?;
        let Value::Array(f) = v else {
            return Err(corrupt("case_command returned a non-array"));
        };
        match f.first().and_then(int) {
            Some(1) => Ok(CaseBegin::Duplicate),
            Some(2) => Ok(CaseBegin::Limited {
                retry_after_ms: f.get(1).and_then(int).unwrap_or(0).max(0) as u64,
            }),
            Some(3) if f.len() >= 6 => Ok(CaseBegin::Proceed(Some(CaseRecord {
                id: string(&f[1]).ok_or_else(|| corrupt("case id"))?,
                code: string(&f[2]).ok_or_else(|| corrupt("case code"))?,
                version: int(&f[3]).unwrap_or(0).max(0) as u64,
                data: bytes(&f[4]).unwrap_or_default(),
                open: string(&f[5]).is_none_or(|st| st == "open"),
                alias: f.get(6).and_then(string).filter(|a| !a.is_empty()),
            }))),
            Some(3) => Ok(CaseBegin::Proceed(None)),
            _ => Err(corrupt("case_command returned an unknown status")),
        }
    }

    async fn case_ids(&self, bucket: u16, open_only: bool) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(format!(
            "{}:{}",
            self.tag(bucket),
            if open_only { "open" } else { "all" }
        ));
        let v = self.conn.query(&cmd).await.map_err(unavailable)?;
        let mut ids: Vec<String> = match v {
            Value::Array(items) | Value::Set(items) => items.iter().filter_map(string).collect(),
            _ => return Err(corrupt("SMEMBERS returned a non-array")),
        };
        ids.sort();
        Ok(ids)
    }

    /// Read a sentinel key (the global slot's on one Redis; on a cluster,
    /// where each master holds its own, every slot's at once, so that a
    /// master lost with its replica shows even when no traffic goes to its
    /// slots) and move its heartbeat on, in the round trip that is the
    /// ping: `Ok(true)` when
    /// one this instance had seen is gone or holds another value (written
    /// again by another instance after a loss): Redis lost its data; or
    /// when its heartbeat reads smaller than this instance left it: Redis
    /// went back to an older copy (a snapshot, a replica without the last
    /// writes), and what was written since is gone. On a cluster an error
    /// from any slot is the answer (the others' losses are counted all the
    /// same), and [`Store::degraded`] says some slots answered.
    async fn watch(&self) -> Result<bool, StoreError> {
        // What faltered before this read is settled by it; what falters
        // during it, by the next.
        drop(self.trust_now());
        if !self.conn.is_cluster() {
            return self.watch_one(usize::from(BUCKETS)).await;
        }
        let (all, ()) = tokio::join!(
            futures_util::future::join_all((0..=usize::from(BUCKETS)).map(|i| self.watch_one(i))),
            self.read_slot_map()
        );
        if all.iter().all(Result::is_ok) {
            self.whole_at
                .store(unix_ms(), std::sync::atomic::Ordering::Relaxed);
        }
        let lost = all.iter().any(|r| matches!(r, Ok(true)));
        match all.into_iter().find_map(Result::err) {
            Some(e) => Err(e),
            None => Ok(lost),
        }
    }

    fn degraded(&self) -> bool {
        // Not since the watch before last: a watch that timed out (a dead
        // node's calls wait for their timeout) counts as not answered.
        self.conn.is_cluster()
            && unix_ms().saturating_sub(self.whole_at.load(std::sync::atomic::Ordering::Relaxed))
                > WHOLE_WITHIN_MS
    }

    fn trusted(&self, bucket: u16) -> bool {
        !self.trust_now().doubt[self.sentinel_of(bucket)]
    }

    fn doubtful(&self) -> bool {
        let t = self.trust_now();
        if self.conn.is_cluster() {
            t.doubt.iter().any(|d| *d)
        } else {
            t.doubt[usize::from(BUCKETS)]
        }
    }

    fn disturbances(&self) -> u64 {
        self.conn.faltered()
            + self.data_losses.load(std::sync::atomic::Ordering::Relaxed)
            + self
                .slot_map_changes
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn data_losses(&self) -> u64 {
        self.data_losses.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn take_data_losses(&self) -> u64 {
        let now = self.data_losses.load(std::sync::atomic::Ordering::Relaxed);
        let before = self
            .losses_reported
            .swap(now, std::sync::atomic::Ordering::Relaxed);
        now.saturating_sub(before)
    }

    async fn setup_warnings(&self) -> Vec<String> {
        let Ok(v) = self.conn.query(redis::cmd("INFO").arg("memory")).await else {
            // The documented ACL gives the hotline user no INFO.
            return Vec::new();
        };
        let Some(info) = string(&v) else {
            return Vec::new();
        };
        eviction_warning(&info).into_iter().collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A key's read, not `PING`: a node of a Redis Cluster that has
        // lost a slot (`cluster_state:fail`) still answers `PONG`, while
        // every key answers `CLUSTERDOWN` (Redis Cluster audit: `/readyz`
        // said ready through a 30 s outage of the whole cluster).
        let v = self
            .conn
            .query(redis::cmd("EXISTS").arg(format!("{}:{{g}}:sentinel", self.prefix)))
            .await
            .map_err(unavailable)?;
        match v {
            Value::Int(_) => Ok(()),
            _ => Err(corrupt("EXISTS")),
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
