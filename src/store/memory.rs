//! The embedded store: everything in this process's memory.
//!
//! The default, so the gateway runs with nothing else installed. Complete,
//! not a stub: idle sessions expire, the number of sessions is bounded (the
//! least recently active are evicted first), rate limits and dedupe work as
//! in Redis. What it cannot do is survive a restart or be shared by two
//! instances; that is what the Redis store is for.
//!
//! The state is sharded as the Redis store's keys are slotted: one shard
//! per bucket and one for the global space, each behind its own mutex
//! ([`MemoryStore`]). A woman's hop locks only her bucket's shard, so the
//! two worker threads of a 2-core machine rarely wait for each other: with
//! one mutex for everything they did, and the waiting (spinning, then
//! `sched_yield`, half a system call per hop) was a quarter of the
//! embedded hop's CPU (docs/performance.md, "The embedded store's tail").
//! No mutex is held across an `.await` (no method awaits while holding
//! one), every operation is a few map lookups, and each operation is
//! atomic within its shard as the trait requires; one that needs the
//! global space and a bucket takes the global lock first. The mutexes are
//! `parking_lot`'s, which spin briefly before they sleep: with
//! `std::sync::Mutex` a worker thread that found the lock held slept in the
//! kernel until the holder (descheduled on a busy 2-core machine) ran
//! again, and every request queued on that worker waited with it.
//! Without poisoning: a panic while holding a lock cannot leave a
//! half-applied operation visible (each one mutates only after its checks).
//!
//! Maps are hash maps, except where order is needed (expiry, due times,
//! sorted sets). A hash map doubling rehashes every entry under its lock:
//! with one lock for the whole store that stalled every request for tens
//! of ms, so the maps that only grow (cases, codes) were B-trees for a
//! while; sharded, a rehash holds one bucket's sixteenth, and B-trees of
//! string keys cost more per case (a cache miss per comparison) than the
//! rare rehash does. The maps of live data (`TtlMap`: sessions, replies,
//! rates), bounded and evicted, keep 100,000 sessions within 96 MiB.
//!
//! Time comes from the requests (`now_ms`), never from a clock read here.
//!
//! Over 600 lines because it implements the whole [`Store`] trait in one
//! place, mirroring the Redis scripts operation by operation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};

use async_trait::async_trait;
use hashbrown::HashTable;

use super::{
    BUCKETS, Begin, BeginRequest, CachedReply, CaseRecord, ClaimBatch, Claimed, CodeLease, Commit,
    CommitRequest, Job, KvOp, KvWrite, LeaseRequest, LeasedRecord, Queue, RateLimit,
    SEEN_WINDOW_MS, SessionRecord, SessionWrite, Store, StoreError, gcra, lease_mark,
    session_delivery,
};

/// The `now` of [`TtlMap::insert_on_own_clock`]: purge nothing.
const KEEP_EXPIRED: u64 = u64::MAX;

/// A map whose entries expire, bounded in size: when full, the entry that
/// would expire first goes first (for a map whose entries all live as long,
/// such as sessions, that is the one written longest ago; among entries
/// expiring at the same time, the one written first).
///
/// One index serves expiry and eviction, and the key is stored once (shared
/// by the map and the index): every live session costs an entry in three of
/// these maps, so their overhead is most of the embedded store's memory.
///
/// The bound is over every shard's map of the same kind: `total` counts
/// their entries together, and a shard whose insert finds the total at the
/// bound evicts its own soonest-expiring entries (so eviction is exact
/// within a shard and close to it across shards, whose keys are spread
/// evenly by the pseudonym's bucket). A shard with nothing of its own to
/// evict inserts anyway: the bound may be passed by at most one entry per
/// shard.
///
/// Each entry keeps its key's hash (32 bits, spread to 64 when the table
/// asks), so a table that doubles moves its entries without reading their
/// keys: with keys hashed again (`std`'s `HashMap`), a shard's doubling read
/// every key from the heap and took 0.3–10 ms under its lock, the embedded
/// hop's worst waits (docs/performance.md, "The embedded store's tail").
/// The hash is keyed (std's `RandomState`), as `HashMap`'s, and shared by
/// every map of the store: a hop hashes its session key once for the four
/// maps it reads and writes ([`Hashed`]).
#[derive(Debug)]
struct TtlMap<V> {
    entries: HashTable<Slot<V>>,
    hasher: RandomState,
    by_expiry: BTreeSet<(u64, u32, Arc<str>)>, // (expires_at, seq, key)
    /// Write order among entries expiring at the same time; wraps after
    /// 2³² writes to one shard's map, which only reorders those ties.
    seq: u32,
    capacity: usize,
    total: Arc<AtomicUsize>,
}

/// A key with its hash under the store's hasher, for several maps.
#[derive(Debug, Clone, Copy)]
struct Hashed<'a> {
    key: &'a str,
    hash: u32,
}

/// An entry of a [`TtlMap`]: 64 bytes for a session, as `HashMap`'s
/// `(key, (value, expires_at, seq))` was with a 64-bit `seq`.
#[derive(Debug)]
struct Slot<V> {
    key: Arc<str>,
    value: V,
    expires_at: u64,
    seq: u32,
    hash: u32,
}

/// A stored 32-bit hash as the table's 64-bit one: the table takes its
/// bucket from the low bits and its tag from the top seven, so both must
/// vary.
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl<V> TtlMap<V> {
    #[cfg(test)]
    fn new(capacity: usize) -> Self {
        Self::shared(capacity, &Arc::default(), &RandomState::new())
    }

    /// An empty map bounded together with the others counted by `total`,
    /// hashing with `hasher` (the store's, so that a [`Hashed`] key serves
    /// every map).
    fn shared(capacity: usize, total: &Arc<AtomicUsize>, hasher: &RandomState) -> Self {
        TtlMap {
            entries: HashTable::new(),
            hasher: hasher.clone(),
            by_expiry: BTreeSet::new(),
            seq: 0,
            capacity: capacity.max(1),
            total: Arc::clone(total),
        }
    }

    fn hash(&self, key: &str) -> u32 {
        // The top half: SipHash's bits are all equally good.
        (self.hasher.hash_one(key) >> 32) as u32
    }

    fn gone(&self, n: usize) {
        if n > 0 {
            self.total.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// `key` with its hash, for this map and every other of the store.
    fn hashed<'k>(&self, key: &'k str) -> Hashed<'k> {
        Hashed {
            key,
            hash: self.hash(key),
        }
    }

    fn get(&self, key: &str, now: u64) -> Option<&V> {
        self.get_hashed(self.hashed(key), now)
    }

    fn get_hashed(&self, k: Hashed<'_>, now: u64) -> Option<&V> {
        debug_assert_eq!(k.hash, self.hash(k.key), "hashed by another hasher");
        let Hashed { key, hash } = k;
        self.entries
            .find(spread(hash), |s| s.hash == hash && *s.key == *key)
            .filter(|s| s.expires_at > now)
            .map(|s| &s.value)
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        let hash = self.hash(key);
        self.remove_hashed(key, hash)
    }

    fn remove_hashed(&mut self, key: &str, hash: u32) -> Option<V> {
        let (slot, _) = self
            .entries
            .find_entry(spread(hash), |s| s.hash == hash && *s.key == *key)
            .ok()?
            .remove();
        self.by_expiry
            .remove(&(slot.expires_at, slot.seq, slot.key));
        self.gone(1);
        Some(slot.value)
    }

    /// Insert or replace without dropping the expired entries first: for a
    /// value kept on another clock than the map's other entries (the
    /// channels' shared send rate runs on wall-clock time, everything else
    /// on the store's clock), whose `now` must not expire them. Tests run
    /// the store on a manual clock set in the past; there, a rate's
    /// wall-clock `now` dropped every entry the manual clock kept alive.
    fn insert_on_own_clock(
        &mut self,
        key: impl Into<Arc<str>>,
        value: V,
        expires_at: u64,
    ) -> usize {
        self.insert(key, value, expires_at, KEEP_EXPIRED)
    }

    /// Insert or replace; returns how many entries were evicted for room.
    fn insert(&mut self, key: impl Into<Arc<str>>, value: V, expires_at: u64, now: u64) -> usize {
        let key: Arc<str> = key.into();
        let hash = self.hash(&key);
        self.insert_hashed(key, hash, value, expires_at, now)
    }

    /// [`TtlMap::insert`] of a key already hashed (`hash` is `key`'s).
    fn insert_hashed(
        &mut self,
        key: Arc<str>,
        hash: u32,
        value: V,
        expires_at: u64,
        now: u64,
    ) -> usize {
        debug_assert_eq!(hash, self.hash(&key), "hashed by another hasher");
        self.remove_hashed(&key, hash);
        if now != KEEP_EXPIRED {
            self.purge(now);
        }
        let mut evicted = 0;
        while self.total.load(Ordering::Relaxed) >= self.capacity {
            let Some((_, _, first)) = self.by_expiry.first() else {
                break;
            };
            let first = Arc::clone(first);
            self.remove(&first);
            evicted += 1;
        }
        self.seq = self.seq.wrapping_add(1);
        self.by_expiry.insert((expires_at, self.seq, key.clone()));
        let slot = Slot {
            key,
            value,
            expires_at,
            seq: self.seq,
            hash,
        };
        self.entries
            .insert_unique(spread(hash), slot, |s| spread(s.hash));
        self.total.fetch_add(1, Ordering::Relaxed);
        evicted
    }

    /// Drop every expired entry.
    fn purge(&mut self, now: u64) {
        while let Some((exp, _, key)) = self.by_expiry.first() {
            if *exp > now {
                break;
            }
            let key = Arc::clone(key);
            self.remove(&key);
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[derive(Debug)]
struct JobEntry {
    due_ms: u64,
    payload: Vec<u8>,
    attempt: u32,
}

#[derive(Debug, Default)]
struct JobQueue {
    jobs: BTreeMap<String, JobEntry>,
    by_due: BTreeSet<(u64, String)>,
}

impl JobQueue {
    fn put(&mut self, id: String, due_ms: u64, payload: Vec<u8>, attempt: u32) {
        if let Some(old) = self.jobs.remove(&id) {
            self.by_due.remove(&(old.due_ms, id.clone()));
        }
        self.by_due.insert((due_ms, id.clone()));
        self.jobs.insert(
            id,
            JobEntry {
                due_ms,
                payload,
                attempt,
            },
        );
    }
}

#[derive(Debug)]
struct StoredCase {
    bucket: u16,
    code: String,
    version: u64,
    data: Vec<u8>,
    open: bool,
    alias: Option<String>,
}

impl StoredCase {
    fn record(&self, id: &str) -> CaseRecord {
        CaseRecord {
            id: id.to_owned(),
            code: self.code.clone(),
            version: self.version,
            data: self.data.clone(),
            open: self.open,
            alias: self.alias.clone(),
        }
    }
}

#[derive(Debug)]
struct State {
    sessions: TtlMap<SessionRecord>,
    replies: TtlMap<CachedReply>,
    /// Session key → its latest own delivery (suffix) and reply (see
    /// [`super::session_delivery`]).
    folded: TtlMap<(String, CachedReply)>,
    /// Session key → its own delivery whose rate slot was spent.
    fold_seen: TtlMap<String>,
    rates: TtlMap<u64>,
    cases: HashMap<String, StoredCase>,
    /// Case ids by bucket: every case, and the open ones (as the Redis
    /// store's sets), so that listing a bucket's cases does not walk every
    /// case under the lock (the case gauges list them every 10 s).
    case_ids: HashMap<(u16, bool), HashSet<String>>,
    /// Small values: (bucket or global, key) → value.
    kv: TtlMap<Vec<u8>>,
    /// Sets of small values: key → (members, expires at).
    sets: BTreeMap<String, (BTreeSet<String>, u64)>,
    /// Code → (case id, reserved until; `u64::MAX` while open), or
    /// (`~holder`, lease end) while an instance leases it.
    codes: HashMap<String, (String, u64)>,
    queues: BTreeMap<(u16, Queue), JobQueue>,
    next_version: u64,
    evicted: u64,
}

impl State {
    /// A delivery key, scoped by a small value's current content.
    fn scoped(&self, bucket: u16, key: &str, scope: Option<&str>, now: u64) -> String {
        match scope {
            Some(scope) => {
                let v = self.kv.get(&kv_key(Some(bucket), scope), now);
                let v = v.map_or_else(
                    || "0".to_owned(),
                    |b| String::from_utf8_lossy(b).into_owned(),
                );
                format!("{key}:{v}")
            }
            None => key.to_owned(),
        }
    }

    /// Record a case unless its id exists; returns its code.
    fn create_case(
        &mut self,
        bucket: u16,
        case: super::NewCase,
        now: u64,
    ) -> Result<String, StoreError> {
        if let Some(existing) = self.cases.get(&case.id) {
            return Ok(existing.code.clone());
        }
        let code = case
            .codes_of(bucket)
            .find(|c| self.code_free(c, now))
            .ok_or(StoreError::CodesExhausted)?
            .clone();
        self.codes.insert(code.clone(), (case.id.clone(), u64::MAX));
        for open in [false, true] {
            self.case_ids
                .entry((bucket, open))
                .or_default()
                .insert(case.id.clone());
        }
        self.cases.insert(
            case.id,
            StoredCase {
                bucket,
                code: code.clone(),
                version: 1,
                data: case.data,
                open: true,
                alias: None,
            },
        );
        for (queue, job) in case.jobs {
            self.queues
                .entry((bucket, queue))
                .or_default()
                .put(job.id, job.due_ms, job.payload, 0);
        }
        Ok(code)
    }
}

/// How round trip one of a lawyer's command starts ([`State::command_begin`]).
enum CommandStart {
    /// Its delivery was handled before.
    Handled,
    /// Over her rate limit: retry after this many ms.
    Limited(u64),
    /// Go on.
    Go,
}

impl State {
    /// The start of a lawyer's command, as `command_begin.lua` does it: was
    /// the delivery handled (its `mark`), and her rate (`rate_key`); only a
    /// delivery's first arrival spends a slot.
    fn command_begin(
        &mut self,
        mark: &str,
        rate_key: String,
        rate: super::RateLimit,
        now: u64,
    ) -> CommandStart {
        if self.kv.get(mark, now).is_some() {
            return CommandStart::Handled;
        }
        let seen = format!("seen:{mark}");
        if self.rates.get(&seen, now).is_none() {
            let tat = self.rates.get(&rate_key, now).copied();
            match gcra(tat, now, rate) {
                Err(retry_after_ms) => return CommandStart::Limited(retry_after_ms),
                Ok(new_tat) => {
                    self.rates.insert(rate_key, new_tat, new_tat, now);
                    self.rates.insert(seen, 0, now + SEEN_WINDOW_MS, now);
                }
            }
        }
        CommandStart::Go
    }

    /// Small-value writes in `bucket` (`None`: the global space).
    fn write_kv(&mut self, bucket: Option<u16>, writes: Vec<KvWrite>, now: u64) {
        for w in writes {
            let key = kv_key(bucket, &w.key);
            match w.op {
                KvOp::Set { value, ttl_ms } => {
                    self.kv
                        .insert(key, value, ttl_ms.map_or(u64::MAX, |t| now + t), now);
                }
                KvOp::Delete => {
                    self.kv.remove(&key);
                }
            }
        }
    }

    /// Remove a claimed job if `attempt` still holds its lease.
    fn finish_job(&mut self, bucket: u16, queue: Queue, id: &str, attempt: u32) -> bool {
        let q = self.queues.entry((bucket, queue)).or_default();
        match q.jobs.get(id) {
            Some(e) if e.attempt == attempt => {
                let due = e.due_ms;
                q.jobs.remove(id);
                q.by_due.remove(&(due, id.to_owned()));
                true
            }
            _ => false,
        }
    }

    /// Whether a code may be given to a new case or lease now.
    fn code_free(&self, code: &str, now: u64) -> bool {
        self.codes.get(code).is_none_or(|(_, until)| *until <= now)
    }

    fn lease(&mut self, req: LeaseRequest) -> Vec<String> {
        let mark = lease_mark(&req.holder);
        let until = req.now_ms.saturating_add(req.ttl_ms);
        let mut held: Vec<String> = Vec::new();
        for code in &req.keep {
            let ours = self.codes.get(code).is_some_and(|(v, _)| *v == mark);
            if (ours || self.code_free(code, req.now_ms)) && !held.contains(code) {
                self.codes.insert(code.clone(), (mark.clone(), until));
                held.push(code.clone());
            }
        }
        for code in &req.candidates {
            if held.len() >= req.target {
                break;
            }
            if self.code_free(code, req.now_ms) {
                self.codes.insert(code.clone(), (mark.clone(), until));
                held.push(code.clone());
            }
        }
        held
    }

    fn record_leased(
        &mut self,
        bucket: u16,
        mut case: super::NewCase,
        lease: &CodeLease,
        now: u64,
    ) -> Result<LeasedRecord, StoreError> {
        let shown = |aliased| LeasedRecord {
            code: lease.code.clone(),
            aliased,
        };
        let holder = self.codes.get(&lease.code).map(|(v, _)| v.as_str());
        if holder == Some(case.id.as_str()) {
            // The shown code names this case already (a replay run twice).
            return Ok(shown(false));
        }
        if holder == Some(lease_mark(&lease.holder).as_str()) {
            if let Some(existing) = self.cases.get_mut(&case.id) {
                // Recorded meanwhile under another code: the shown code
                // names the case too.
                let until = if existing.open {
                    u64::MAX
                } else {
                    now.saturating_add(super::CODE_QUARANTINE_MS)
                };
                existing.alias = Some(lease.code.clone());
                self.codes
                    .insert(lease.code.clone(), (case.id.clone(), until));
                return Ok(shown(true));
            }
            self.codes.remove(&lease.code);
        }
        case.code_candidates.insert(0, lease.code.clone());
        let code = self.create_case(bucket, case, now)?;
        Ok(LeasedRecord {
            code,
            aliased: false,
        })
    }
}

fn kv_key(bucket: Option<u16>, key: &str) -> String {
    match bucket {
        Some(b) => format!("{b}:{key}"),
        None => format!("g:{key}"),
    }
}

/// The embedded, in-process store.
///
/// Sharded as the Redis store's keys are slotted: one `State` per bucket
/// (a woman's hop, her cases, their codes and queues) and one for the
/// global space (lawyers' marks, rates, flags and indexes), each behind
/// its own mutex. A hop locks only its bucket, so two worker threads serving
/// two women rarely wait for each other. An operation that needs the global
/// space and a bucket locks the global one first, then at most one bucket
/// at a time; nothing takes the global lock while holding a bucket's, so the
/// order cannot deadlock.
#[derive(Debug)]
pub struct MemoryStore {
    /// Buckets `0..BUCKETS`, then the global space.
    shards: Box<[Mutex<State>]>,
}

/// The index of the global space in [`MemoryStore::shards`].
const GLOBAL: usize = BUCKETS as usize;

impl MemoryStore {
    /// A store holding at most `max_sessions` live sessions (and ten times as
    /// many remembered deliveries), across all its shards.
    pub fn new(max_sessions: usize) -> Self {
        let [sessions, replies, folded, fold_seen, rates, kv] =
            std::array::from_fn(|_| Arc::new(AtomicUsize::new(0)));
        let hasher = RandomState::new();
        let shards = (0..=GLOBAL)
            .map(|_| {
                Mutex::new(State {
                    sessions: TtlMap::shared(max_sessions, &sessions, &hasher),
                    replies: TtlMap::shared(max_sessions.saturating_mul(10), &replies, &hasher),
                    folded: TtlMap::shared(max_sessions.saturating_mul(10), &folded, &hasher),
                    fold_seen: TtlMap::shared(max_sessions, &fold_seen, &hasher),
                    rates: TtlMap::shared(max_sessions.saturating_mul(2), &rates, &hasher),
                    cases: HashMap::new(),
                    case_ids: HashMap::new(),
                    kv: TtlMap::shared(max_sessions.saturating_mul(10), &kv, &hasher),
                    sets: BTreeMap::new(),
                    codes: HashMap::new(),
                    queues: BTreeMap::new(),
                    next_version: 0,
                    evicted: 0,
                })
            })
            .collect();
        MemoryStore { shards }
    }

    /// A bucket's shard.
    fn bucket(&self, bucket: u16) -> MutexGuard<'_, State> {
        self.shards[usize::from(bucket % BUCKETS)].lock()
    }

    /// The global space's shard. Taken before any bucket's, never while
    /// holding one.
    fn global(&self) -> MutexGuard<'_, State> {
        self.shards[GLOBAL].lock()
    }

    /// A bucket's shard, or the global one for `None`.
    fn slot(&self, bucket: Option<u16>) -> MutexGuard<'_, State> {
        match bucket {
            Some(b) => self.bucket(b),
            None => self.global(),
        }
    }

    /// Live sessions right now (for tests and metrics).
    pub fn session_count(&self, now_ms: u64) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut s = shard.lock();
                s.sessions.purge(now_ms);
                s.sessions.len()
            })
            .sum()
    }

    /// Sessions evicted to stay within the bound, since start.
    pub fn evicted(&self) -> u64 {
        self.shards.iter().map(|s| s.lock().evicted).sum()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn begin(&self, req: BeginRequest) -> Result<Begin, StoreError> {
        let mut s = self.bucket(req.bucket);
        let now = req.now_ms;
        let fold = session_delivery(
            &req.session_key,
            &req.dedupe_key,
            req.dedupe_scope.as_deref(),
        );
        if let Some(suffix) = fold {
            // Her session key serves four maps: hashed once.
            let sk = s.sessions.hashed(&req.session_key);
            if let Some((k, reply)) = s.folded.get_hashed(sk, now)
                && (k == suffix || super::older_hop(suffix, k))
            {
                return Ok(Begin::Duplicate(reply.clone()));
            }
            if s.fold_seen.get_hashed(sk, now).map(String::as_str) != Some(suffix) {
                let rk = s.rates.hashed(&req.rate_key);
                let tat = s.rates.get_hashed(rk, now).copied();
                match gcra(tat, now, req.rate) {
                    Err(retry_after_ms) => return Ok(Begin::Limited { retry_after_ms }),
                    Ok(new_tat) => {
                        let rate_hash = rk.hash;
                        s.rates.insert_hashed(
                            Arc::from(req.rate_key.as_str()),
                            rate_hash,
                            new_tat,
                            new_tat,
                            now,
                        );
                        s.fold_seen.insert_hashed(
                            Arc::from(req.session_key.as_str()),
                            sk.hash,
                            suffix.to_owned(),
                            now + SEEN_WINDOW_MS,
                            now,
                        );
                    }
                }
            }
            return Ok(Begin::Proceed(s.sessions.get_hashed(sk, now).cloned()));
        }
        let dedupe_key = s.scoped(
            req.bucket,
            &req.dedupe_key,
            req.dedupe_scope.as_deref(),
            now,
        );
        if let Some(reply) = s.replies.get(&dedupe_key, now) {
            return Ok(Begin::Duplicate(reply.clone()));
        }
        // Only a delivery's first arrival spends a rate-limit slot.
        let seen = format!("seen:{dedupe_key}");
        if s.rates.get(&seen, now).is_none() {
            let tat = s.rates.get(&req.rate_key, now).copied();
            match gcra(tat, now, req.rate) {
                Err(retry_after_ms) => return Ok(Begin::Limited { retry_after_ms }),
                Ok(new_tat) => {
                    s.rates.insert(req.rate_key, new_tat, new_tat, now);
                    s.rates.insert(seen, 0, now + SEEN_WINDOW_MS, now);
                }
            }
        }
        Ok(Begin::Proceed(
            s.sessions.get(&req.session_key, now).cloned(),
        ))
    }

    async fn commit(&self, req: CommitRequest) -> Result<Commit, StoreError> {
        let mut s = self.bucket(req.bucket);
        let now = req.now_ms;
        let dedupe_key = s.scoped(
            req.bucket,
            &req.dedupe_key,
            req.dedupe_scope.as_deref(),
            now,
        );
        // Her session key serves up to four maps: hashed once.
        let sk = s.sessions.hashed(&req.session_key);
        let current = s.sessions.get_hashed(sk, now).map_or(0, |r| r.version);
        let fold = session_delivery(
            &req.session_key,
            &req.dedupe_key,
            req.dedupe_scope.as_deref(),
        )
        .map(str::to_owned);
        if current != req.expected_version {
            let cached = match &fold {
                Some(suffix) => s
                    .folded
                    .get_hashed(sk, now)
                    .filter(|(k, _)| k == suffix)
                    .map(|(_, r)| r.clone()),
                None => s.replies.get(&dedupe_key, now).cloned(),
            };
            return Ok(Commit::Conflict(cached));
        }
        // Record the case first: if no code is free, nothing is written.
        let code = match req.case {
            Some(case) => Some(s.create_case(req.bucket, case, now)?),
            None => None,
        };
        let mut reply = req.reply;
        reply.code.clone_from(&code);
        // A session's own delivery: its reply lives with the session (and
        // for the dedupe TTL once the session ended).
        let reply_expires = match &req.session {
            SessionWrite::Save { ttl_ms, .. } => now + ttl_ms,
            SessionWrite::Delete => now + req.dedupe_ttl_ms,
        };
        // One allocation of the key for the session and its reply.
        let session_key: Arc<str> = Arc::from(req.session_key.as_str());
        match req.session {
            SessionWrite::Save { data, ttl_ms } => {
                // One counter for every session: a key deleted and created
                // again never reuses a version a slow writer may still hold.
                s.next_version += 1;
                let version = s.next_version;
                let evicted = s.sessions.insert_hashed(
                    session_key.clone(),
                    sk.hash,
                    SessionRecord { version, data },
                    now + ttl_ms,
                    now,
                );
                s.evicted += evicted as u64;
            }
            SessionWrite::Delete => {
                s.sessions.remove_hashed(sk.key, sk.hash);
            }
        }
        for (queue, job) in req.jobs {
            s.queues.entry((req.bucket, queue)).or_default().put(
                job.id,
                job.due_ms,
                job.payload,
                0,
            );
        }
        s.write_kv(Some(req.bucket), req.kv, now);
        match fold {
            Some(suffix) => {
                s.fold_seen.remove_hashed(sk.key, sk.hash);
                s.folded
                    .insert_hashed(session_key, sk.hash, (suffix, reply), reply_expires, now);
            }
            None => {
                s.replies
                    .insert(dedupe_key, reply, now + req.dedupe_ttl_ms, now);
            }
        }
        Ok(Commit::Saved { code })
    }

    async fn schedule(&self, bucket: u16, queue: Queue, jobs: Vec<Job>) -> Result<(), StoreError> {
        let mut s = self.bucket(bucket);
        let q = s.queues.entry((bucket, queue)).or_default();
        for job in jobs {
            q.put(job.id, job.due_ms, job.payload, 0);
        }
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
        let mut s = self.bucket(bucket);
        let q = s.queues.entry((bucket, queue)).or_default();
        let due: Vec<String> = q
            .by_due
            .iter()
            .take_while(|(due, _)| *due <= now_ms)
            .take(max)
            .map(|(_, id)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            let Some(entry) = q.jobs.remove(&id) else {
                continue;
            };
            q.by_due.remove(&(entry.due_ms, id.clone()));
            let attempt = entry.attempt + 1;
            out.push(Claimed {
                job: Job {
                    id: id.clone(),
                    due_ms: entry.due_ms,
                    payload: entry.payload.clone(),
                },
                attempt,
                case_code: None,
                case_alias: None,
            });
            q.put(id, now_ms + lease_ms, entry.payload, attempt);
        }
        // As `claim.lua`: the code (and alias) of the case a message id
        // names.
        for c in &mut out {
            let case = super::job_case(&c.job.id)
                .and_then(|id| s.cases.get(id))
                .filter(|case| case.bucket == bucket);
            c.case_code = case.map(|case| case.code.clone());
            c.case_alias = case.and_then(|case| case.alias.clone());
        }
        Ok(out)
    }

    async fn claim_next(
        &self,
        bucket: u16,
        queue: Queue,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<ClaimBatch, StoreError> {
        let jobs = self.claim(bucket, queue, now_ms, lease_ms, max).await?;
        let mut s = self.bucket(bucket);
        let q = s.queues.entry((bucket, queue)).or_default();
        let next_due_ms = q
            .by_due
            .iter()
            .find(|(_, id)| !jobs.iter().any(|c| c.job.id == *id))
            .map(|(due, _)| *due);
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
        // All at once, as `finish.lua` on one Redis: the values are written
        // even when the lease was lost (the work they record was done).
        let mut g = self.global();
        let mut s = self.bucket(bucket);
        g.write_kv(None, global, now_ms);
        s.write_kv(Some(bucket), kv, now_ms);
        Ok(s.finish_job(bucket, queue, id, attempt))
    }

    async fn finish(
        &self,
        bucket: u16,
        queue: Queue,
        id: &str,
        attempt: u32,
    ) -> Result<bool, StoreError> {
        Ok(self.bucket(bucket).finish_job(bucket, queue, id, attempt))
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
        let mut s = self.bucket(bucket);
        let q = s.queues.entry((bucket, queue)).or_default();
        match q.jobs.remove(id) {
            Some(e) if e.attempt == attempt => {
                q.by_due.remove(&(e.due_ms, id.to_owned()));
                q.put(id.to_owned(), due_ms, payload.unwrap_or(e.payload), attempt);
                Ok(true)
            }
            Some(e) => {
                q.jobs.insert(id.to_owned(), e);
                Ok(false)
            }
            None => Ok(false),
        }
    }

    async fn record_case(
        &self,
        bucket: u16,
        case: super::NewCase,
        now_ms: u64,
    ) -> Result<String, StoreError> {
        self.bucket(bucket).create_case(bucket, case, now_ms)
    }

    async fn restore_case(
        &self,
        bucket: u16,
        case: super::NewCase,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        let mut b = self.bucket(bucket);
        if b.cases.contains_key(&case.id) {
            return Ok(None);
        }
        // Her code outranks a lease taken on it since (as record_case.lua).
        if let Some(first) = case.code_candidates.first()
            && b.codes.get(first).is_some_and(|(v, _)| v.starts_with('~'))
        {
            b.codes.remove(first);
        }
        b.create_case(bucket, case, now_ms).map(Some)
    }

    async fn record_leased_case(
        &self,
        bucket: u16,
        case: super::NewCase,
        lease: &CodeLease,
        now_ms: u64,
    ) -> Result<LeasedRecord, StoreError> {
        self.bucket(bucket)
            .record_leased(bucket, case, lease, now_ms)
    }

    async fn lease_codes(&self, req: LeaseRequest) -> Result<Vec<String>, StoreError> {
        Ok(self.bucket(req.bucket).lease(req))
    }

    async fn take_rate(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut s = self.global();
        let key = kv_key(None, key);
        let tat =
            s.kv.get(&key, now_ms)
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
        match gcra(tat, now_ms, limit) {
            Ok(new_tat) => {
                let value = new_tat.to_string().into_bytes();
                // `now_ms` here is wall-clock time (`Outbox::shared_rate`).
                s.kv.insert_on_own_clock(key, value, new_tat + 1);
                Ok(None)
            }
            Err(wait) => Ok(Some(wait.max(1))),
        }
    }

    async fn set_add(
        &self,
        bucket: Option<u16>,
        add: super::SetAdd,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let mut s = self.slot(bucket);
        let entry = s
            .sets
            .entry(kv_key(bucket, &add.key))
            .or_insert_with(|| (BTreeSet::new(), 0));
        if entry.1 <= now_ms {
            entry.0.clear();
        }
        entry.0.insert(add.member);
        entry.1 = now_ms + add.ttl_ms;
        Ok(())
    }

    async fn set_members(
        &self,
        bucket: Option<u16>,
        key: &str,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let s = self.slot(bucket);
        Ok(match s.sets.get(&kv_key(bucket, key)) {
            Some((members, expires)) if *expires > now_ms => members.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }

    async fn set_remove(
        &self,
        bucket: Option<u16>,
        key: &str,
        members: &[String],
    ) -> Result<(), StoreError> {
        let mut s = self.slot(bucket);
        let key = kv_key(bucket, key);
        if let Some((set, _)) = s.sets.get_mut(&key) {
            for m in members {
                set.remove(m);
            }
            if set.is_empty() {
                s.sets.remove(&key);
            }
        }
        Ok(())
    }

    async fn queue_len(&self, bucket: u16, queue: Queue) -> Result<usize, StoreError> {
        Ok(self
            .bucket(bucket)
            .queues
            .get(&(bucket, queue))
            .map_or(0, |q| q.jobs.len()))
    }

    async fn peek_jobs(
        &self,
        bucket: u16,
        queue: Queue,
        max: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let s = self.bucket(bucket);
        let Some(q) = s.queues.get(&(bucket, queue)) else {
            return Ok(Vec::new());
        };
        Ok(q.by_due
            .iter()
            .take(max)
            .filter_map(|(due, id)| {
                q.jobs.get(id).map(|j| Job {
                    id: id.clone(),
                    due_ms: *due,
                    payload: j.payload.clone(),
                })
            })
            .collect())
    }

    async fn get(
        &self,
        bucket: Option<u16>,
        key: &str,
        now_ms: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .slot(bucket)
            .kv
            .get(&kv_key(bucket, key), now_ms)
            .cloned())
    }

    async fn put(
        &self,
        bucket: Option<u16>,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError> {
        let key = kv_key(bucket, key);
        self.slot(bucket)
            .kv
            .insert(key, value, ttl_ms.map_or(u64::MAX, |t| now + t), now);
        Ok(())
    }

    async fn delete(&self, bucket: Option<u16>, key: &str) -> Result<(), StoreError> {
        self.slot(bucket).kv.remove(&kv_key(bucket, key));
        Ok(())
    }

    async fn case(&self, bucket: u16, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        let s = self.bucket(bucket);
        Ok(s.cases.get(id).map(|c| c.record(id)))
    }

    async fn case_by_code(&self, code: &str) -> Result<Option<CaseRecord>, StoreError> {
        // A code maps to its case until a new case takes it (after the
        // quarantine), so a closed case is still found meanwhile. A code
        // and its case live in the code's bucket.
        let Some(bucket) = super::code_bucket(code) else {
            return Ok(None);
        };
        let s = self.bucket(bucket);
        Ok(match s.codes.get(code) {
            Some((id, _)) if !id.starts_with('~') => s.cases.get(id).map(|c| c.record(id)),
            _ => None,
        })
    }

    async fn begin_case_command(
        &self,
        req: super::CaseCommandBegin,
    ) -> Result<super::CaseBegin, StoreError> {
        let Some(bucket) = super::code_bucket(&req.code) else {
            return Ok(super::CaseBegin::Proceed(None));
        };
        let rate_key = format!("{bucket}:{}", req.rate_key);
        let mark = kv_key(Some(bucket), &req.mark_key);
        match self
            .bucket(bucket)
            .command_begin(&mark, rate_key, req.rate, req.now_ms)
        {
            CommandStart::Handled => return Ok(super::CaseBegin::Duplicate),
            CommandStart::Limited(retry_after_ms) => {
                return Ok(super::CaseBegin::Limited { retry_after_ms });
            }
            CommandStart::Go => {}
        }
        Ok(super::CaseBegin::Proceed(
            self.case_by_code(&req.code).await?,
        ))
    }

    async fn begin_lawyer_command(
        &self,
        req: super::LawyerCommandBegin,
    ) -> Result<super::LawyerBegin, StoreError> {
        // The global space (her mark, rate, flag and index), held while her
        // cases are read from their buckets (global first, as ever).
        let mut s = self.global();
        let now = req.now_ms;
        let mark = kv_key(None, &req.mark_key);
        match s.command_begin(&mark, format!("g:{}", req.rate_key), req.rate, now) {
            CommandStart::Handled => return Ok(super::LawyerBegin::Duplicate),
            CommandStart::Limited(retry_after_ms) => {
                return Ok(super::LawyerBegin::Limited { retry_after_ms });
            }
            CommandStart::Go => {}
        }
        if req.mark_now {
            s.kv.insert(mark, b"1".to_vec(), now + req.mark_ttl_ms, now);
        }
        if let Some(flag) = req.flag {
            let key = kv_key(None, &flag.key);
            match flag.op {
                KvOp::Set { value, ttl_ms } => {
                    s.kv.insert(key, value, ttl_ms.map_or(u64::MAX, |t| now + t), now);
                }
                KvOp::Delete => {
                    s.kv.remove(&key);
                }
            }
        }
        let index = kv_key(None, &req.index_key);
        let members: Vec<String> = match s.sets.get(&index) {
            Some((members, expires)) if *expires > now => members.iter().cloned().collect(),
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for member in members {
            let case = super::index_member(&member).and_then(|(bucket, id)| {
                self.bucket(bucket)
                    .cases
                    .get(id)
                    .filter(|c| c.open)
                    .map(|c| (bucket, c.record(id)))
            });
            match case {
                Some(case) => out.push(case),
                // Gone or closed: no longer in her index.
                None => {
                    if let Some((set, _)) = s.sets.get_mut(&index) {
                        set.remove(&member);
                    }
                }
            }
        }
        Ok(super::LawyerBegin::Proceed(out))
    }

    async fn update_case_once(&self, u: super::CaseUpdate) -> Result<super::Updated, StoreError> {
        // A global mark's space first, then the case's bucket.
        let mut global = u.mark_global.then(|| self.global());
        let mut s = self.bucket(u.bucket);
        let mark_bucket = (!u.mark_global).then_some(u.bucket);
        if let Some(mark) = &u.mark {
            let key = kv_key(mark_bucket, &mark.key);
            let marks = global.as_deref().unwrap_or(&s);
            if marks.kv.get(&key, u.now_ms).is_some() {
                // Made before, for this same delivery.
                return Ok(super::Updated::MadeBefore);
            }
        }
        let Some(case) = s.cases.get_mut(&u.id) else {
            return Ok(super::Updated::Stale);
        };
        if case.version != u.expected_version {
            return Ok(super::Updated::Stale);
        }
        case.version += 1;
        case.data = u.data;
        if u.close && case.open {
            case.open = false;
            let bucket = case.bucket;
            let codes: Vec<String> = std::iter::once(case.code.clone())
                .chain(case.alias.clone())
                .collect();
            if let Some(open) = s.case_ids.get_mut(&(bucket, true)) {
                open.remove(&u.id);
            }
            for code in codes {
                if let Some(entry) = s.codes.get_mut(&code) {
                    entry.1 = u.now_ms + super::CODE_QUARANTINE_MS;
                }
            }
        }
        for (queue, job) in u.jobs {
            s.queues
                .entry((u.bucket, queue))
                .or_default()
                .put(job.id, job.due_ms, job.payload, 0);
        }
        if let Some(mark) = u.mark {
            let marks = match global.as_deref_mut() {
                Some(g) => g,
                None => &mut s,
            };
            marks.write_kv(mark_bucket, vec![mark], u.now_ms);
        }
        Ok(super::Updated::Changed)
    }

    async fn case_ids(&self, bucket: u16, open_only: bool) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = self
            .bucket(bucket)
            .case_ids
            .get(&(bucket, open_only))
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        // Sorted, as the Redis store's (outside the lock).
        ids.sort_unstable();
        Ok(ids)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn sessions_evicted(&self) -> u64 {
        self.evicted()
    }

    fn in_process(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_entry_stays_64_bytes() {
        // Three of these per live session: 100,000 sessions within 96 MiB.
        assert_eq!(std::mem::size_of::<Slot<SessionRecord>>(), 64);
    }

    #[tokio::test]
    async fn the_wall_clock_send_rate_expires_nothing_kept_on_the_stores_clock() {
        // A cover until 18:00 on the store's (manual) clock; then the
        // outbox takes a slot of a channel's shared rate on wall-clock
        // time, a day later: the cover is still there on the store's clock.
        let store = MemoryStore::new(100);
        let t0 = 1_796_097_600_000;
        store
            .put(
                None,
                "cover:bishkek",
                b"c".to_vec(),
                Some(8 * 3_600_000),
                t0,
            )
            .await
            .unwrap();
        let limit = RateLimit {
            per_minute: 600,
            burst: 10,
        };
        let wall = t0 + 86_400_000;
        assert_eq!(store.take_rate("rate:at", limit, wall).await.unwrap(), None);
        assert_eq!(
            store.get(None, "cover:bishkek", t0 + 1).await.unwrap(),
            Some(b"c".to_vec())
        );
    }

    #[test]
    fn ttl_map_expires_and_evicts_the_oldest() {
        // All of a, b, c expire at 100: the first written goes first.
        let mut m = TtlMap::new(2);
        m.insert("a", 1, 100, 0);
        m.insert("b", 2, 100, 1);
        assert_eq!(m.insert("c", 3, 100, 2), 1);
        assert!(m.get("a", 2).is_none(), "oldest evicted");
        assert_eq!(m.get("b", 2), Some(&2));
        assert!(m.get("c", 100).is_none(), "expired at its time");
        // Rewriting refreshes age: b becomes newest, so c goes next.
        m.insert("b", 4, 200, 3);
        m.insert("d", 5, 200, 4);
        assert!(m.get("c", 4).is_none());
        assert_eq!(m.get("b", 4), Some(&4));
        m.purge(300);
        assert_eq!(m.len(), 0);
        assert!(m.entries.is_empty() && m.by_expiry.is_empty());
        // Same expiry: write order, not key order.
        let mut m = TtlMap::new(2);
        m.insert("z", 1, 100, 0);
        m.insert("a", 2, 100, 0);
        assert_eq!(m.insert("m", 3, 100, 0), 1);
        assert!(m.get("z", 0).is_none(), "written first, evicted first");
        assert_eq!(m.get("a", 0), Some(&2));
        // A shorter life goes before an older write.
        let mut m = TtlMap::new(2);
        m.insert("old", 1, 500, 0);
        m.insert("brief", 2, 50, 1);
        m.insert("new", 3, 500, 2);
        assert!(m.get("brief", 2).is_none(), "expires first, evicted first");
        assert_eq!(m.get("old", 2), Some(&1));
    }
}
