//! The store: sessions, dedupe, rate limits, cases, outbox and timers.
//!
//! One trait, [`Store`], with an embedded implementation ([`memory`], the
//! default: nothing to install) and a Redis one for production. The trait is
//! shaped around the webhook hot path so that Redis can serve each webhook in
//! two round trips:
//!
//! 1. [`Store::begin`] — dedupe the delivery, apply the caller's rate limit,
//!    load the session and its version. One atomic operation.
//! 2. [`Store::commit`] — save the session if its version is unchanged
//!    (compare-and-set), cache the reply for retries, and, when the flow
//!    opened a case, record the case, pick its code and schedule its first
//!    jobs. All or nothing.
//!
//! Everything else (outbox, timers, case updates) is for background workers.
//!
//! A store outside the process never sees a phone number or a location in
//! clear: keys carry pseudonyms, and session and case data arrive sealed
//! (see [`crate::privacy`]); the memory store, whose data never leaves the
//! process, gets session state and cached screens unsealed
//! ([`Store::in_process`]). Every key of one caller shares a *bucket* so that a
//! Redis Cluster keeps them in one slot; case codes encode their bucket
//! (`code % BUCKETS`) so that a lawyer's `OK 4821` finds its case's slot.
//!
//! Over 600 lines on purpose: the trait and every type it speaks belong on
//! one page, so a reader sees the whole contract the two stores implement.

pub mod keys;
pub mod memory;
pub mod redis;
pub mod waking;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Number of shards keys are spread over (hash tags in Redis Cluster).
/// Fixed: changing it would orphan live sessions and codes.
pub const BUCKETS: u16 = 16;

/// How long a delivery counts as seen for the rate limit: copies of it
/// arriving within this window (retries sent before the first was
/// answered) do not spend another slot.
pub const SEEN_WINDOW_MS: u64 = 60_000;

/// A reply remembered for retries of the same delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedReply {
    /// The screen, possibly with `{code}` still in it.
    #[serde(rename = "t")]
    pub text: String,
    /// Whether the session ended with it.
    #[serde(rename = "e")]
    pub end: bool,
    /// The case code chosen by the commit that stored it.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl CachedReply {
    /// The text as the caller sees it, with the case code filled in.
    pub fn render(&self) -> String {
        render_reply(&self.text, self.code.as_deref())
    }
}

/// A reply's text as the caller sees it, with the case code filled in
/// ([`CachedReply::render`] without building one).
pub fn render_reply(text: &str, code: Option<&str>) -> String {
    match code {
        Some(code) => crate::template::render(text, &[("code", code)]),
        None => crate::template::render(text, &[]),
    }
}

/// A per-caller rate limit (GCRA): `per_minute` on average, up to `burst`
/// at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests allowed back to back.
    pub burst: u32,
}

impl RateLimit {
    /// Milliseconds between requests at the sustained rate.
    pub fn interval_ms(&self) -> u64 {
        60_000 / u64::from(self.per_minute.max(1))
    }
}

/// GCRA on a theoretical arrival time: returns `Ok(new_tat)` or
/// `Err(retry_after_ms)`. Shared by the stores (the Redis script does the
/// same arithmetic in Lua).
pub fn gcra(tat: Option<u64>, now: u64, limit: RateLimit) -> Result<u64, u64> {
    let t = limit.interval_ms();
    let tolerance = t * u64::from(limit.burst.max(1) - 1);
    let tat = tat.unwrap_or(now).max(now);
    if tat - now > tolerance {
        Err(tat - now - tolerance)
    } else {
        Ok(tat + t)
    }
}

/// Round trip one.
#[derive(Debug, Clone)]
pub struct BeginRequest {
    /// Shard of the caller.
    pub bucket: u16,
    /// Identity of this delivery (`u:africastalking:ATUid_1:3`).
    pub dedupe_key: String,
    /// Identity of the caller for the rate limit (a pseudonym).
    pub rate_key: String,
    /// The limit to apply.
    pub rate: RateLimit,
    /// Identity of the session (`u:africastalking:ATUid_1`).
    pub session_key: String,
    /// Scope `dedupe_key` by the current value of this small value (in the
    /// bucket): the delivery key becomes `key:value`. For SMS without an
    /// aggregator id, scoped by when the number was last sent a message, the
    /// same text again after we replied is a new answer, not a retry.
    pub dedupe_scope: Option<String>,
    /// Now, in ms since the Unix epoch.
    pub now_ms: u64,
}

/// A small value written with a commit (an opt-out flag, say), in the
/// caller's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvWrite {
    /// Key, within the bucket.
    pub key: String,
    /// What to do with it.
    pub op: KvOp,
}

/// A write or a delete of a small value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// Store `value`; `ttl_ms` `None` keeps it until deleted.
    Set {
        /// The value.
        value: Vec<u8>,
        /// Lifetime.
        ttl_ms: Option<u64>,
    },
    /// Remove it.
    Delete,
}

impl KvWrite {
    /// Store `value` under `key`, for `ttl_ms` (or until deleted).
    pub fn set(key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Self {
        KvWrite {
            key,
            op: KvOp::Set { value, ttl_ms },
        }
    }

    /// Remove `key`.
    pub fn delete(key: String) -> Self {
        KvWrite {
            key,
            op: KvOp::Delete,
        }
    }
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Incremented by every save; the compare-and-set token.
    pub version: u64,
    /// Session data: sealed, unless the store is [`Store::in_process`].
    pub data: Vec<u8>,
}

/// What round trip one found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// This delivery was handled before: answer the same again.
    Duplicate(CachedReply),
    /// The caller is over the rate limit.
    Limited {
        /// When a retry would be allowed.
        retry_after_ms: u64,
    },
    /// Go ahead; the session, if one is live.
    Proceed(Option<SessionRecord>),
}

/// What to do with the session in round trip two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionWrite {
    /// Save this data, forgetting it after `ttl_ms` without activity.
    Save {
        /// Sealed data (unless the store is [`Store::in_process`]).
        data: Vec<u8>,
        /// Idle lifetime.
        ttl_ms: u64,
    },
    /// The session ended: forget it.
    Delete,
}

/// A scheduled piece of background work (an outbound message, a timer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Unique id; also the idempotency key of what it does.
    pub id: String,
    /// When it is due (ms since the Unix epoch).
    pub due_ms: u64,
    /// What to do (JSON, interpreted by the worker).
    pub payload: Vec<u8>,
}

/// What [`Store::update_case_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// The case was changed now.
    Changed,
    /// The update's mark exists: another copy of the same delivery made
    /// its change before; nothing was written.
    MadeBefore,
    /// Someone else changed the case first (or there is no such case).
    Stale,
}

/// The queues background workers poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Queue {
    /// Outbound messages.
    Outbox,
    /// Escalations, expiry notices, retention purges.
    Timers,
}

impl Queue {
    /// Short name used in keys and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Outbox => "outbox",
            Queue::Timers => "timers",
        }
    }
}

/// A job claimed by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The job.
    pub job: Job,
    /// How many times it has been claimed, this claim included. Also the
    /// lease token: finishing or rescheduling with a stale one is a no-op.
    pub attempt: u32,
    /// For a job whose id names a case of its bucket
    /// ([`job_case`]): that case's code, read by the claim itself (`None`
    /// when the case is gone or the id names none), so that sending a
    /// message with `{code}` needs no read of its own.
    pub case_code: Option<String>,
    /// That case's alias, read with its code ([`CaseRecord::alias`]).
    pub case_alias: Option<String>,
}

impl Claimed {
    /// Every code of the case the job names, as a message names them
    /// ([`named_code`]): `None` when the claim read no case.
    pub fn case_codes(&self) -> Option<String> {
        self.case_code
            .as_deref()
            .map(|code| named_code(code, self.case_alias.as_deref()))
    }
}

/// Write small values one by one (`put` or `delete` each), in `bucket` or
/// the global space: for stores, or store paths, that cannot write them
/// with something else in one step.
///
/// # Errors
/// [`StoreError::Unavailable`] at the first that fails.
pub async fn write_each<S: Store + ?Sized>(
    store: &S,
    bucket: Option<u16>,
    writes: Vec<KvWrite>,
    now_ms: u64,
) -> Result<(), StoreError> {
    for w in writes {
        match w.op {
            KvOp::Set { value, ttl_ms } => store.put(bucket, &w.key, value, ttl_ms, now_ms).await?,
            KvOp::Delete => store.delete(bucket, &w.key).await?,
        }
    }
    Ok(())
}

/// The case a job id names: message ids made for a case in the case's own
/// bucket end in `.<case id>` (`07.<digest>.c_<hex>`; see
/// [`crate::outbox::job`]). `claim.lua` reads the same suffix.
pub fn job_case(job_id: &str) -> Option<&str> {
    let (_, rest) = job_id.split_once('.')?;
    let (_, case) = rest.split_once('.')?;
    (case.len() > 2
        && case.starts_with("c_")
        && case[2..].bytes().all(|b| b.is_ascii_alphanumeric()))
    .then_some(case)
}

/// Jobs claimed from one bucket's queue, and when that queue next needs a
/// claim, so that a worker can sleep until then instead of polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimBatch {
    /// The jobs claimed (see [`Store::claim`]).
    pub jobs: Vec<Claimed>,
    /// The earliest due time of a job this claim did not take (a job leased
    /// by another worker counts at its lease's end); `None` when there is
    /// none. A store that cannot tell says `Some(now)`: ask again.
    pub next_due_ms: Option<u64>,
}

/// A case to record in round trip two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCase {
    /// Unique id.
    pub id: String,
    /// Codes to try, in order; the first free one is taken. Each must be in
    /// the caller's bucket (`code % BUCKETS == bucket`): a lawyer's `OK 4821`
    /// finds the case in its code's bucket, so the stores skip any other
    /// ([`NewCase::codes_of`]) rather than give two cases one code.
    pub code_candidates: Vec<String>,
    /// Sealed case data.
    pub data: Vec<u8>,
    /// Jobs scheduled with the case (its first offer, its escalation timer),
    /// each with the queue it goes to.
    pub jobs: Vec<(Queue, Job)>,
}

impl NewCase {
    /// The candidate codes that belong to `bucket`, in order.
    pub fn codes_of(&self, bucket: u16) -> impl Iterator<Item = &String> {
        let bucket = bucket % BUCKETS;
        self.code_candidates
            .iter()
            .filter(move |c| code_bucket(c) == Some(bucket))
    }
}

/// Round trip two.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// Shard of the caller.
    pub bucket: u16,
    /// Identity of the session.
    pub session_key: String,
    /// The version loaded in round trip one (0: there was none).
    pub expected_version: u64,
    /// The new session, or its end.
    pub session: SessionWrite,
    /// Identity of this delivery.
    pub dedupe_key: String,
    /// The reply to cache for retries of it.
    pub reply: CachedReply,
    /// How long to remember the delivery.
    pub dedupe_ttl_ms: u64,
    /// The same scope as in [`BeginRequest::dedupe_scope`].
    pub dedupe_scope: Option<String>,
    /// A case to record with the session, atomically.
    pub case: Option<NewCase>,
    /// Jobs to schedule with the session (an SMS screen to send).
    pub jobs: Vec<(Queue, Job)>,
    /// Small values to write with the session.
    pub kv: Vec<KvWrite>,
    /// Now, in ms since the Unix epoch.
    pub now_ms: u64,
}

/// What round trip two did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// Saved; the case code when a case was recorded.
    Saved {
        /// The code the case got.
        code: Option<String>,
    },
    /// Someone else saved the session first. Their reply to this same
    /// delivery, when it was a concurrent duplicate; otherwise retry.
    Conflict(Option<CachedReply>),
}

/// A recorded case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    /// Unique id.
    pub id: String,
    /// Its short code.
    pub code: String,
    /// Incremented by every update.
    pub version: u64,
    /// Sealed case data.
    pub data: Vec<u8>,
    /// Whether the case is still open (a closed case's code stays reserved
    /// for [`CODE_QUARANTINE_MS`] and still finds it).
    pub open: bool,
    /// A second code that names this case too: the code its caller was
    /// shown while the store was down when the request had reached the
    /// store after all under `code` (see [`Store::record_leased_case`]).
    pub alias: Option<String>,
}

impl CaseRecord {
    /// Every code of the case, as a message names them ([`named_code`]).
    pub fn named_code(&self) -> String {
        named_code(&self.code, self.alias.as_deref())
    }
}

/// How a message names a case (its `{code}`): its code, and its alias when
/// it has one, after a slash — `8516/2356`. A woman shown either code, and
/// a lawyer or coordinator who calls her, find the same case in it; a
/// lawyer may answer with either code or with both as printed (`OK
/// 8516/2356`, see [`crate::dispatch::commands`]).
pub fn named_code(code: &str, alias: Option<&str>) -> String {
    match alias {
        Some(alias) if !alias.is_empty() && alias != code => format!("{code}/{alias}"),
        _ => code.to_owned(),
    }
}

/// How long a closed case's code stays reserved (and still finds it).
pub const CODE_QUARANTINE_MS: u64 = 72 * 3600 * 1000;

/// A case code held by one instance so that it may show it while the store
/// is down (see [`crate::codes`]). While leased, a code is given to no case
/// except by [`Store::record_leased_case`] with the same holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLease {
    /// The code (in the bucket it was leased in).
    pub code: String,
    /// The instance that holds it.
    pub holder: String,
}

/// What [`Store::record_leased_case`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedRecord {
    /// The code the caller was shown when it names the case (as its code
    /// or its alias), else the case's code (the lease was lost).
    pub code: String,
    /// The case existed already under another code and this call made the
    /// shown code its alias (a second replay of the same entry says
    /// `false`).
    pub aliased: bool,
}

/// Hold (or keep holding) case codes in one bucket for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The bucket; every code below must be in it.
    pub bucket: u16,
    /// The instance asking.
    pub holder: String,
    /// Codes it holds now: each is held again for `ttl_ms` unless a case
    /// or another holder has it (held again even if the lease was lost, as
    /// after a Redis restart without its data, when nobody else took it).
    pub keep: Vec<String>,
    /// Codes to add, in order, each only if free, until `target` are held.
    pub candidates: Vec<String>,
    /// How many codes to hold in all.
    pub target: usize,
    /// How long each is held from now.
    pub ttl_ms: u64,
    /// Now.
    pub now_ms: u64,
}

/// What a code's record holds while `holder` leases it (a case id never
/// starts with `~`).
pub fn lease_mark(holder: &str) -> String {
    format!("~{holder}")
}

/// A change to a recorded case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseUpdate {
    /// The case's bucket.
    pub bucket: u16,
    /// Its id.
    pub id: String,
    /// Its code (to quarantine it on close).
    pub code: String,
    /// Its alias, if any (quarantined with it).
    pub alias: Option<String>,
    /// The version the change was computed from.
    pub expected_version: u64,
    /// The new sealed data.
    pub data: Vec<u8>,
    /// Close the case: its code stays reserved for
    /// [`CODE_QUARANTINE_MS`] after `now_ms`.
    pub close: bool,
    /// Jobs scheduled with the change (messages, timers), in its bucket.
    pub jobs: Vec<(Queue, Job)>,
    /// A mark of what asked for the change (a lawyer's delivery), written
    /// with it in the case's bucket. When the mark exists already, the
    /// change was made before (a retried command): nothing is written and
    /// the update counts as done.
    pub mark: Option<KvWrite>,
    /// The mark lives beside the lawyer's case index (a global small
    /// value), not in the case's bucket: a command without a code, whose
    /// round trip one ([`Store::begin_lawyer_command`]) looked for it
    /// there. One Redis writes it in the same script; a Redis Cluster
    /// (another slot) right after a change.
    pub mark_global: bool,
    /// Now.
    pub now_ms: u64,
}

/// A member to add to a set of small values, whose lifetime it renews
/// (a lawyer's index of the cases offered to her).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAdd {
    /// The set's key (a small value's key).
    pub key: String,
    /// The member.
    pub member: String,
    /// The set's lifetime from now.
    pub ttl_ms: u64,
}

/// Round trip one of a lawyer's command with a case code, in the code's
/// bucket: was this delivery handled (its mark, see [`CaseUpdate::mark`]),
/// may she send another (her rate limit in that bucket), and the case.
#[derive(Debug, Clone)]
pub struct CaseCommandBegin {
    /// The code she typed.
    pub code: String,
    /// The delivery's mark (a small value's key in the code's bucket).
    pub mark_key: String,
    /// Identity of the sender for the rate limit (a pseudonym).
    pub rate_key: String,
    /// The limit to apply.
    pub rate: RateLimit,
    /// Now.
    pub now_ms: u64,
}

/// What round trip one of a lawyer's command found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseBegin {
    /// This delivery was handled before.
    Duplicate,
    /// Over the rate limit.
    Limited {
        /// When a retry would be allowed.
        retry_after_ms: u64,
    },
    /// Go ahead, with the case of the code (as [`Store::case_by_code`]).
    Proceed(Option<CaseRecord>),
}

/// Round trip one of a lawyer's command without a code, beside her case
/// index: was this delivery handled (its mark, a global small value), may
/// she send another (her rate limit), an `ON`/`OFF` flag to write, and the
/// cases of her index (`keys::lawyer_cases`), each read — all in one round
/// trip on one Redis and in the memory store; on a Redis Cluster her cases
/// live in other slots and are read after it, one read each.
#[derive(Debug, Clone)]
pub struct LawyerCommandBegin {
    /// The delivery's mark (a global small value's key).
    pub mark_key: String,
    /// Write the mark now, with the check: for a command whose only effect
    /// is its reply (and a flag written here), so that a retry is a
    /// duplicate. Otherwise the mark is written with the case change the
    /// command makes ([`CaseUpdate::mark_global`]).
    pub mark_now: bool,
    /// Its lifetime.
    pub mark_ttl_ms: u64,
    /// Identity of the sender for the rate limit (a pseudonym).
    pub rate_key: String,
    /// The limit to apply.
    pub rate: RateLimit,
    /// Her case index (a global set).
    pub index_key: String,
    /// A global small value to write once the delivery may go ahead
    /// (`OFF` sets her off flag, `ON` deletes it).
    pub flag: Option<KvWrite>,
    /// Now.
    pub now_ms: u64,
}

/// What round trip one of a lawyer's command without a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LawyerBegin {
    /// This delivery was handled before.
    Duplicate,
    /// Over the rate limit.
    Limited {
        /// When a retry would be allowed.
        retry_after_ms: u64,
    },
    /// Go ahead, with the open cases of her index (bucket and record, in
    /// member order); members whose case is gone or closed were removed
    /// from it.
    Proceed(Vec<(u16, CaseRecord)>),
}

/// The open cases of a lawyer's case index (a global set), read after it;
/// members whose case is gone or closed are removed from it.
///
/// # Errors
/// [`StoreError::Unavailable`].
pub async fn read_index<S: Store + ?Sized>(
    store: &S,
    key: &str,
    now_ms: u64,
) -> Result<Vec<(u16, CaseRecord)>, StoreError> {
    let members = store.set_members(None, key, now_ms).await?;
    let (open, stale) = read_members(store, members).await?;
    prune_index(store, key, &stale).await;
    Ok(open)
}

/// The open cases of these members of a lawyer's case index, read all at
/// once (one wait), and the members whose case is gone, closed, or that
/// do not parse.
///
/// # Errors
/// [`StoreError::Unavailable`].
pub async fn read_members<S: Store + ?Sized>(
    store: &S,
    members: Vec<String>,
) -> Result<(Vec<(u16, CaseRecord)>, Vec<String>), StoreError> {
    let read = futures_util::future::try_join_all(members.iter().map(|m| async move {
        match index_member(m) {
            Some((bucket, id)) => Ok(store.case(bucket, id).await?.map(|r| (bucket, r))),
            None => Ok(None),
        }
    }))
    .await?;
    let mut open = Vec::new();
    let mut stale = Vec::new();
    for (member, case) in members.into_iter().zip(read) {
        match case {
            Some((bucket, rec)) if rec.open => open.push((bucket, rec)),
            _ => stale.push(member),
        }
    }
    Ok((open, stale))
}

/// Remove members of a lawyer's case index (their cases are gone or
/// closed); a failure only leaves them for the next read.
pub async fn prune_index<S: Store + ?Sized>(store: &S, key: &str, stale: &[String]) {
    if !stale.is_empty()
        && let Err(e) = store.set_remove(None, key, stale).await
    {
        tracing::debug!(error = %e, "a lawyer's case index was not pruned");
    }
}

/// A member of a lawyer's case index, `<bucket>:<case id>`, parsed.
pub fn index_member(member: &str) -> Option<(u16, &str)> {
    let (b, id) = member.split_once(':')?;
    let b = b.parse::<u16>().ok().filter(|b| *b < BUCKETS)?;
    (!id.is_empty()).then_some((b, id))
}

/// The cause of an unavailable store (a Redis or I/O error, a timeout).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service cannot be reached or timed out; worth retrying
    /// later, and the reason to report not-ready. Keeps its cause.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A record changed under every one of a bounded number of
    /// compare-and-set attempts; worth retrying later.
    #[error("the record kept changing under concurrent updates")]
    Contended,
    /// Every candidate code was taken.
    #[error("no free case code among the candidates")]
    CodesExhausted,
    /// The store answered something this version cannot read.
    #[error("store returned unexpected data: {0}")]
    Corrupt(String),
}

/// How long after a loss is found ([`Store::watch`]) a bucket stays not
/// [`Store::trusted`]: every instance reads the sentinels at least every
/// 5 s and records again what it recorded lately at most 10 s after its
/// last recheck ([`crate::spool::RECHECK_GAP`]).
pub const LOSS_GRACE_MS: u64 = 15_000;

/// The store every part of the gateway talks to.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Round trip one: dedupe, rate limit, load the session.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backing service is down.
    async fn begin(&self, req: BeginRequest) -> Result<Begin, StoreError>;

    /// Round trip two: compare-and-set the session, cache the reply, record a
    /// case with its jobs. Atomic.
    ///
    /// # Errors
    /// [`StoreError`] when nothing was written.
    async fn commit(&self, req: CommitRequest) -> Result<Commit, StoreError>;

    /// Schedule jobs (outside the hot path).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn schedule(&self, bucket: u16, queue: Queue, jobs: Vec<Job>) -> Result<(), StoreError>;

    /// Claim up to `max` due jobs for `lease_ms`; a claim not finished in
    /// time becomes due again for another worker.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn claim(
        &self,
        bucket: u16,
        queue: Queue,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// [`Store::claim`], and say when the queue next needs a claim (one
    /// round trip for both). The default asks [`Store::claim`] and cannot
    /// tell: `next_due_ms` is `Some(now_ms)`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn claim_next(
        &self,
        bucket: u16,
        queue: Queue,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<ClaimBatch, StoreError> {
        let jobs = self.claim(bucket, queue, now_ms, lease_ms, max).await?;
        Ok(ClaimBatch {
            jobs,
            next_due_ms: Some(now_ms),
        })
    }

    /// Write small values in the job's bucket (what a sent message leaves
    /// behind) and global ones (`global`: the aggregator's id of a sent
    /// message), and finish the job, in one round trip where the store can:
    /// on a Redis Cluster a global key lives in another slot, so each global
    /// value is a write of its own after the finish (its failure is an
    /// error, but the job is finished and its bucket's values written).
    /// The values are written even when `attempt` is stale (the work was
    /// done); the job is finished only with the current lease, as
    /// [`Store::finish`]. The default writes the bucket's values, finishes,
    /// then writes the global ones.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
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
        write_each(self, Some(bucket), kv, now_ms).await?;
        let done = self.finish(bucket, queue, id, attempt).await?;
        write_each(self, None, global, now_ms).await?;
        Ok(done)
    }

    /// Remove a finished job. A stale `attempt` (the lease was lost) is a
    /// no-op and returns false.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn finish(
        &self,
        bucket: u16,
        queue: Queue,
        id: &str,
        attempt: u32,
    ) -> Result<bool, StoreError>;

    /// Make a claimed job due again at `due_ms` (a retry), with a new payload
    /// if given. A stale `attempt` is a no-op and returns false.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn reschedule(
        &self,
        bucket: u16,
        queue: Queue,
        id: &str,
        attempt: u32,
        due_ms: u64,
        payload: Option<Vec<u8>>,
    ) -> Result<bool, StoreError>;

    /// Record a case on its own, idempotently: a case whose id exists is
    /// left as it is and its code returned. Used to replay the durable spool
    /// of cases completed while the store was down.
    ///
    /// # Errors
    /// [`StoreError::CodesExhausted`] when no candidate code is free;
    /// [`StoreError::Unavailable`].
    async fn record_case(
        &self,
        bucket: u16,
        case: NewCase,
        now_ms: u64,
    ) -> Result<String, StoreError>;

    /// Record a case again that the store acknowledged lately, in case it
    /// took the write back (a master that died before its replica had it,
    /// a Redis restarted from an older snapshot): `None` when the case is
    /// there, else the code it was recorded with now (its first free
    /// candidate; the spool puts the code she was given first). The
    /// default reads the case, then records it: a rare path (after the
    /// store faltered), so two round trips are fine.
    ///
    /// # Errors
    /// [`StoreError::CodesExhausted`] when no candidate code is free;
    /// [`StoreError::Unavailable`].
    async fn restore_case(
        &self,
        bucket: u16,
        case: NewCase,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        if self.case(bucket, &case.id).await?.is_some() {
            return Ok(None);
        }
        self.record_case(bucket, case, now_ms).await.map(Some)
    }

    /// Record a case that was shown `lease.code` while the store was down
    /// (spool replay), idempotently. The case takes exactly `lease.code`
    /// when that code is free or leased by `lease.holder` (and the lease
    /// ends); otherwise — the lease was lost, which leases are sized to
    /// prevent — the first free of its `code_candidates`. When a case with
    /// this id exists already under another code (the request that timed
    /// out did reach the store, e.g. a frozen Redis that thawed) and
    /// `lease.holder` still holds `lease.code`, that code becomes the case's
    /// [`CaseRecord::alias`]: both name it. Returns the code the caller was
    /// shown when it names the case, else the case's code, so the caller can
    /// tell a changed code, and whether this call made the shown code an
    /// alias.
    ///
    /// # Errors
    /// [`StoreError::CodesExhausted`] when no code is free;
    /// [`StoreError::Unavailable`].
    async fn record_leased_case(
        &self,
        bucket: u16,
        case: NewCase,
        lease: &CodeLease,
        now_ms: u64,
    ) -> Result<LeasedRecord, StoreError>;

    /// Hold codes for `req.holder` (see [`LeaseRequest`]); returns the codes
    /// it now holds in the bucket. A leased code is skipped by case
    /// recording (as an open case's code is) until the lease expires or
    /// [`Store::record_leased_case`] takes it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn lease_codes(&self, req: LeaseRequest) -> Result<Vec<String>, StoreError>;

    /// Take a slot of a rate shared by every instance (GCRA on `key`, in
    /// the global space): `None` when taken, else how long to wait (ms).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn take_rate(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// [`Store::take_rate`], first adding `add` to its set (in the global
    /// space, like the rate), in one round trip. The default adds, then
    /// takes.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn take_rate_and_add(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: u64,
        add: Option<SetAdd>,
    ) -> Result<Option<u64>, StoreError> {
        if let Some(add) = add {
            self.set_add(None, add, now_ms).await?;
        }
        self.take_rate(key, limit, now_ms).await
    }

    /// Add a member to a set of small values (`bucket` `None`: global),
    /// renewing the set's lifetime.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn set_add(
        &self,
        bucket: Option<u16>,
        add: SetAdd,
        now_ms: u64,
    ) -> Result<(), StoreError>;

    /// The members of a set of small values, sorted.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn set_members(
        &self,
        bucket: Option<u16>,
        key: &str,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError>;

    /// Several small values of one bucket (or the global space) at once, in
    /// `keys`' order: one round trip where the store can (`MGET`; the keys
    /// share a slot). The default reads each.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn get_many(
        &self,
        bucket: Option<u16>,
        keys: &[String],
        now_ms: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(bucket, k, now_ms).await?);
        }
        Ok(out)
    }

    /// Remove members from a set of small values.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn set_remove(
        &self,
        bucket: Option<u16>,
        key: &str,
        members: &[String],
    ) -> Result<(), StoreError>;

    /// How many jobs a bucket's queue holds, leased ones included (a job
    /// leaves the queue only when finished).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn queue_len(&self, bucket: u16, queue: Queue) -> Result<usize, StoreError>;

    /// Up to `max` of a bucket's queued jobs, soonest due first, leased ones
    /// included, without claiming them: what the queue holds, for the
    /// store-wide outbox gauges (read every 10 s, never per request).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn peek_jobs(
        &self,
        bucket: u16,
        queue: Queue,
        max: usize,
    ) -> Result<Vec<Job>, StoreError>;

    /// Read a small value. `bucket` `None` is the global space (used for
    /// lookups that arrive without a caller, such as an aggregator's message
    /// id in a delivery report).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn get(
        &self,
        bucket: Option<u16>,
        key: &str,
        now_ms: u64,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Write a small value, with an optional lifetime.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn put(
        &self,
        bucket: Option<u16>,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), StoreError>;

    /// Delete a small value (no error when there is none).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn delete(&self, bucket: Option<u16>, key: &str) -> Result<(), StoreError>;

    /// A case by id.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn case(&self, bucket: u16, id: &str) -> Result<Option<CaseRecord>, StoreError>;

    /// The case with this code: open, or closed less than
    /// [`CODE_QUARANTINE_MS`] ago.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn case_by_code(&self, code: &str) -> Result<Option<CaseRecord>, StoreError>;

    /// Round trip one of a lawyer's command with a code (see
    /// [`CaseCommandBegin`]); only the first arrival of a delivery spends
    /// a slot of the rate. The default asks [`Store::get`] and
    /// [`Store::case_by_code`] and limits nothing.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn begin_case_command(&self, req: CaseCommandBegin) -> Result<CaseBegin, StoreError> {
        let Some(bucket) = code_bucket(&req.code) else {
            return Ok(CaseBegin::Proceed(None));
        };
        if self
            .get(Some(bucket), &req.mark_key, req.now_ms)
            .await?
            .is_some()
        {
            return Ok(CaseBegin::Duplicate);
        }
        Ok(CaseBegin::Proceed(self.case_by_code(&req.code).await?))
    }

    /// Round trip one of a lawyer's command without a code (see
    /// [`LawyerCommandBegin`]). The default reads the mark, writes it and
    /// the flag, and reads her index and each case apart, and limits
    /// nothing.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn begin_lawyer_command(
        &self,
        req: LawyerCommandBegin,
    ) -> Result<LawyerBegin, StoreError> {
        let now = req.now_ms;
        if self.get(None, &req.mark_key, now).await?.is_some() {
            return Ok(LawyerBegin::Duplicate);
        }
        if req.mark_now {
            let mark = b"1".to_vec();
            self.put(None, &req.mark_key, mark, Some(req.mark_ttl_ms), now)
                .await?;
        }
        match req.flag {
            Some(KvWrite {
                key,
                op: KvOp::Set { value, ttl_ms },
            }) => self.put(None, &key, value, ttl_ms, now).await?,
            Some(KvWrite {
                key,
                op: KvOp::Delete,
            }) => self.delete(None, &key).await?,
            None => {}
        }
        Ok(LawyerBegin::Proceed(
            read_index(self, &req.index_key, now).await?,
        ))
    }

    /// Change a case if its version is unchanged (compare-and-set), with
    /// its jobs; returns false when someone else changed it first (true
    /// also when its mark says this delivery's change was made before).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn update_case(&self, update: CaseUpdate) -> Result<bool, StoreError> {
        Ok(self.update_case_once(update).await? != Updated::Stale)
    }

    /// [`Store::update_case`], telling a change made now from one its
    /// mark says was made before by another copy of the same delivery
    /// (two copies of a lawyer's `OK` handled at once): only the first
    /// counts in the metrics.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn update_case_once(&self, update: CaseUpdate) -> Result<Updated, StoreError>;

    /// Ids of the cases in a bucket: every case, or only the open ones.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn case_ids(&self, bucket: u16, open_only: bool) -> Result<Vec<String>, StoreError>;

    /// Whether the store can serve requests (for `/readyz`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it cannot.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The store watch's ping ([`crate::worker::StoreWatch`]), which also
    /// tells whether the store lost what it held since the last watch:
    /// `Ok(true)` then. Redis reads a sentinel key it wrote once and never
    /// expires (`sentinel.lua`): a Redis restarted without persistence,
    /// flushed, or failed over to an empty replica no longer has it. The
    /// memory store never loses data while the process lives.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store does not answer.
    async fn watch(&self) -> Result<bool, StoreError> {
        self.ping().await.map(|()| false)
    }

    /// How many times, since start, the store faltered in a way that may
    /// have taken back writes it had acknowledged: on Redis, a call that met
    /// a dropped connection, a timeout or a failover, and each loss
    /// [`Store::watch`] found. The spool rechecks the cases this instance
    /// recorded lately whenever it grows ([`crate::spool`]). The memory
    /// store never takes a write back: 0.
    fn disturbances(&self) -> u64 {
        0
    }

    /// How many times, since start, [`Store::watch`] found the store had
    /// lost what it held (part of [`Store::disturbances`]), whether or not
    /// that watch returned `Ok(true)`: on a cluster one slot may show the
    /// loss while another does not answer, and the watch is then an error.
    fn data_losses(&self) -> u64 {
        0
    }

    /// The losses found since the last call (of [`Store::data_losses`]),
    /// so that each is reported once whichever watch found it.
    fn take_data_losses(&self) -> u64 {
        0
    }

    /// Whether part of the store did not answer at the last
    /// [`Store::watch`] while the rest did: a Redis Cluster with a master
    /// and its replicas gone (its slots' callers take the outage path;
    /// the others are served). `hotline_store_up` then reads 0 whatever
    /// succeeds meanwhile, so the outage pages, while `/readyz` stays
    /// ready: taking every instance out of the balancer would refuse
    /// every woman, not a part of them.
    fn degraded(&self) -> bool {
        false
    }

    /// Whether a code the store calls free in `bucket` may be given to a
    /// new case now. `false` from the moment the store faltered (a call
    /// that failed, a dropped connection, a failover; on a cluster, in any
    /// slot) until a read of the bucket's sentinel ([`Store::watch`])
    /// finds it kept its data; after a loss is found, also until
    /// [`LOSS_GRACE_MS`] has passed, long enough for every instance to
    /// notice the loss and record again the cases it recorded lately.
    /// A store that lost its data has lost the codes of those cases too,
    /// and a new case given one of them would leave the woman first shown
    /// it holding another woman's code (Redis Cluster audit). Meanwhile a
    /// USSD case is kept in the spool with a code leased for outages
    /// ([`crate::conversation`]), and a spooled case without one waits
    /// ([`crate::spool`]). The memory store never loses data: always
    /// `true`.
    fn trusted(&self, _bucket: u16) -> bool {
        true
    }

    /// What is wrong with how the store is set up, for `check` and for
    /// `serve` to say as it starts: on Redis, a `maxmemory-policy` other
    /// than `noeviction` (an evicted case, offer or timer vanishes, and no
    /// sentinel notices: a key read every 5 s is never the one evicted).
    /// Nothing when it cannot be told (the ACL refuses `INFO`).
    async fn setup_warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether any bucket is not [`Store::trusted`]: the spool's worker
    /// then reads the sentinels every tick instead of every 5 s.
    fn doubtful(&self) -> bool {
        false
    }

    /// Short name for logs and metrics (`memory`, `redis`).
    fn kind(&self) -> &'static str;

    /// Sessions evicted to stay within a size bound, since start (the memory
    /// store; Redis evicts by its own policy and reports 0).
    fn sessions_evicted(&self) -> u64 {
        0
    }

    /// Whether what it holds never leaves this process (the memory store):
    /// session state and cached screens are then kept unsealed, as sealing
    /// them would protect them with a key that lives in the same memory
    /// (docs/security.md). Cases, messages and spool entries are sealed
    /// whatever the store.
    fn in_process(&self) -> bool {
        false
    }
}

/// When a delivery is one of its session's own cumulative hops
/// (`<session key>:<steps>`) and unscoped, its suffix (`:3`): the stores
/// keep its reply and its seen mark with the session, not under keys of
/// their own, and only for the latest such delivery (a session's hops come
/// one after another: only the latest is retried; a copy of an earlier
/// cumulative hop gets the latest reply, see [`older_hop`]). Its reply
/// lives as long as the session, and for the dedupe TTL after the session
/// ended.
///
/// A hop of a channel that sends only the latest answer
/// (`<session key>:L<first>:<hash of the text>`) is not folded: the same
/// text is a retry only within its short window
/// (`LATEST_DEDUPE_WINDOW_MS`, the TTL of a key of its own); one the
/// operator names (`<session key>:H<hash of its hop id>`) keeps its key
/// for the dedupe TTL. Folded, two
/// equal answers to two screens in a row ("1 Bishkek", then "1 I need help
/// now") read as one answer and its retry for as long as the session
/// lived, and the menu could not go on.
pub fn session_delivery<'a>(
    session_key: &str,
    dedupe_key: &'a str,
    scope: Option<&str>,
) -> Option<&'a str> {
    if scope.is_some() {
        return None;
    }
    dedupe_key.strip_prefix(session_key).filter(|rest| {
        rest.len() > 1 && rest.starts_with(':') && rest.as_bytes()[1].is_ascii_digit()
    })
}

/// Whether a session's own delivery `suffix` is a cumulative hop
/// (`:<steps>`) older than `latest`: a stale copy of an earlier hop, which
/// changes nothing and is answered with the latest reply.
pub fn older_hop(suffix: &str, latest: &str) -> bool {
    let steps = |s: &str| s.strip_prefix(':')?.parse::<u64>().ok();
    matches!((steps(suffix), steps(latest)), (Some(a), Some(b)) if a < b)
}

/// The bucket a case code belongs to.
pub fn code_bucket(code: &str) -> Option<u16> {
    code.parse::<u32>()
        .ok()
        .map(|n| (n % u32::from(BUCKETS)) as u16)
}

/// How many four-digit codes a new case is offered ([`code_candidates`]'s
/// `n`; twelve longer ones follow).
pub const CODE_CANDIDATES: usize = 8;

/// Case codes in `bucket` for [`NewCase::code_candidates`], derived from
/// `seed` (the case id): a retried request that records the same case offers
/// the same codes, so the caller is shown the same code again. The first
/// `n` are four digits (1000–9999, 562 per bucket); eight five-digit and
/// four six-digit codes follow, so that even with the short codes of a
/// bucket all taken a case is not refused (the load test opens 60 000
/// cases in a minute without one being refused).
///
/// Candidate `i` comes from bytes `4·(i mod 8)` to `4·(i mod 8) + 3` of
/// SHA-256(`seed` ‖ `i div 8`, big-endian u32): one hash for eight
/// candidates (three for the usual 20), not one each.
pub fn code_candidates(bucket: u16, seed: &str, n: usize) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let b = u32::from(bucket % BUCKETS);
    let buckets = u32::from(BUCKETS);
    let mut block: Option<(u32, [u8; 32])> = None;
    let mut pick = |i: u32, low: u32, high: u32| {
        let j = i / 8;
        let h = match block {
            Some((k, h)) if k == j => h,
            _ => {
                let h: [u8; 32] = Sha256::new()
                    .chain_update(seed.as_bytes())
                    .chain_update(j.to_be_bytes())
                    .finalize()
                    .into();
                block = Some((j, h));
                h
            }
        };
        let at = (i % 8) as usize * 4;
        let h = [h[at], h[at + 1], h[at + 2], h[at + 3]];
        // Codes c in [low, high) with c % BUCKETS == bucket.
        let first = low.div_ceil(buckets) * buckets + b;
        let first = if first >= low + buckets {
            first - buckets
        } else {
            first
        };
        let count = (high - first).div_ceil(buckets);
        let k = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % count;
        (first + k * buckets).to_string()
    };
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    (0..n + 12)
        .map(|i| {
            if i < n {
                pick(i, 1000, 10_000)
            } else if i < n + 8 {
                pick(i, 10_000, 100_000)
            } else {
                pick(i, 100_000, 1_000_000)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let limit = RateLimit {
            per_minute: 60,
            burst: 3,
        };
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra(tat, 0, limit).expect("within burst"));
        }
        let retry = gcra(tat, 0, limit).expect_err("over burst");
        assert_eq!(retry, 1000);
        assert!(gcra(tat, 999, limit).is_err());
        assert!(gcra(tat, 1000, limit).is_ok());
    }

    #[test]
    fn codes_encode_their_bucket() {
        for bucket in 0..BUCKETS {
            let codes = code_candidates(bucket, &format!("case-{bucket}"), 50);
            assert_eq!(codes.len(), 62);
            for (i, code) in codes.iter().enumerate() {
                let len = match i {
                    0..50 => 4,
                    50..58 => 5,
                    _ => 6,
                };
                assert_eq!(code.len(), len, "{code}");
                assert_eq!(code_bucket(code), Some(bucket), "{code}");
            }
        }
    }

    #[test]
    fn codes_are_reproducible_from_the_seed() {
        assert_eq!(code_candidates(3, "c_1", 8), code_candidates(3, "c_1", 8));
        assert_ne!(code_candidates(3, "c_1", 8), code_candidates(3, "c_2", 8));
    }

    #[test]
    fn a_case_with_an_alias_is_named_by_both_codes() {
        assert_eq!(named_code("8516", Some("2356")), "8516/2356");
        assert_eq!(named_code("8516", None), "8516");
        assert_eq!(named_code("8516", Some("")), "8516");
        assert_eq!(named_code("8516", Some("8516")), "8516");
    }

    #[test]
    fn cached_replies_fill_in_the_code() {
        let r = CachedReply {
            text: "Code {code}.".into(),
            end: true,
            code: Some("4821".into()),
        };
        assert_eq!(r.render(), "Code 4821.");
    }
}
