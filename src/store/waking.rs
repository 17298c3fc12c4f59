//! A store that tells the workers where work was queued.
//!
//! [`Waking`] wraps the real store: every operation goes straight through,
//! and each job the store accepted (with a session, a case, a case update,
//! a reschedule) becomes a [`Wake::queued`] hint for its worker, with its
//! bucket and due time. The worker then claims that one bucket when the job
//! is due, instead of polling all [`super::BUCKETS`]. Work queued by another
//! instance is found by that instance's own worker, or by this one's
//! round-robin probe ([`crate::worker::DueBuckets`]).

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Begin, BeginRequest, CaseBegin, CaseCommandBegin, CaseRecord, CaseUpdate, ClaimBatch, Claimed,
    CodeLease, Commit, CommitRequest, Job, KvWrite, LawyerBegin, LawyerCommandBegin, LeaseRequest,
    NewCase, Queue, RateLimit, Store, StoreError,
};
use super::{LeasedRecord, SetAdd, Updated};
use crate::deps::Wake;

/// The store, with wake-ups for the jobs it accepts.
pub struct Waking {
    inner: Arc<dyn Store>,
    wake: Wake,
}

impl std::fmt::Debug for Waking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waking")
            .field("store", &self.inner.kind())
            .finish_non_exhaustive()
    }
}

impl Waking {
    /// `inner`, telling `wake` of every job it accepts.
    pub fn new(inner: Arc<dyn Store>, wake: Wake) -> Self {
        Waking { inner, wake }
    }

    fn queued(&self, bucket: u16, dues: Vec<(Queue, u64)>) {
        for (queue, due) in dues {
            self.wake.queued(queue, bucket, due);
        }
    }
}

fn dues<'a>(jobs: impl IntoIterator<Item = &'a (Queue, Job)>) -> Vec<(Queue, u64)> {
    jobs.into_iter().map(|(q, j)| (*q, j.due_ms)).collect()
}

#[async_trait]
impl Store for Waking {
    async fn begin(&self, req: BeginRequest) -> Result<Begin, StoreError> {
        self.inner.begin(req).await
    }

    async fn commit(&self, req: CommitRequest) -> Result<Commit, StoreError> {
        let bucket = req.bucket;
        let jobs = dues(req.jobs.iter().chain(req.case.iter().flat_map(|c| &c.jobs)));
        let out = self.inner.commit(req).await?;
        if matches!(out, Commit::Saved { .. }) {
            self.queued(bucket, jobs);
        }
        Ok(out)
    }

    async fn schedule(&self, bucket: u16, queue: Queue, jobs: Vec<Job>) -> Result<(), StoreError> {
        let dues: Vec<u64> = jobs.iter().map(|j| j.due_ms).collect();
        self.inner.schedule(bucket, queue, jobs).await?;
        for due in dues {
            self.wake.queued(queue, bucket, due);
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
        self.inner.claim(bucket, queue, now_ms, lease_ms, max).await
    }

    async fn claim_next(
        &self,
        bucket: u16,
        queue: Queue,
        now_ms: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<ClaimBatch, StoreError> {
        self.inner
            .claim_next(bucket, queue, now_ms, lease_ms, max)
            .await
    }

    async fn finish(
        &self,
        bucket: u16,
        queue: Queue,
        id: &str,
        attempt: u32,
    ) -> Result<bool, StoreError> {
        self.inner.finish(bucket, queue, id, attempt).await
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
        self.inner
            .finish_with(bucket, queue, id, attempt, kv, global, now_ms)
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
        let done = self
            .inner
            .reschedule(bucket, queue, id, attempt, due_ms, payload)
            .await?;
        if done {
            self.wake.queued(queue, bucket, due_ms);
        }
        Ok(done)
    }

    async fn record_case(
        &self,
        bucket: u16,
        case: NewCase,
        now_ms: u64,
    ) -> Result<String, StoreError> {
        let jobs = dues(&case.jobs);
        let code = self.inner.record_case(bucket, case, now_ms).await?;
        self.queued(bucket, jobs);
        Ok(code)
    }

    async fn restore_case(
        &self,
        bucket: u16,
        case: NewCase,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        let jobs = dues(&case.jobs);
        let code = self.inner.restore_case(bucket, case, now_ms).await?;
        if code.is_some() {
            self.queued(bucket, jobs);
        }
        Ok(code)
    }

    async fn record_leased_case(
        &self,
        bucket: u16,
        case: NewCase,
        lease: &CodeLease,
        now_ms: u64,
    ) -> Result<LeasedRecord, StoreError> {
        let jobs = dues(&case.jobs);
        let recorded = self
            .inner
            .record_leased_case(bucket, case, lease, now_ms)
            .await?;
        self.queued(bucket, jobs);
        Ok(recorded)
    }

    async fn lease_codes(&self, req: LeaseRequest) -> Result<Vec<String>, StoreError> {
        self.inner.lease_codes(req).await
    }

    async fn take_rate(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.take_rate(key, limit, now_ms).await
    }

    async fn take_rate_and_add(
        &self,
        key: &str,
        limit: RateLimit,
        now_ms: u64,
        add: Option<SetAdd>,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.take_rate_and_add(key, limit, now_ms, add).await
    }

    async fn set_add(
        &self,
        bucket: Option<u16>,
        add: SetAdd,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.inner.set_add(bucket, add, now_ms).await
    }

    async fn set_members(
        &self,
        bucket: Option<u16>,
        key: &str,
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.set_members(bucket, key, now_ms).await
    }

    async fn set_remove(
        &self,
        bucket: Option<u16>,
        key: &str,
        members: &[String],
    ) -> Result<(), StoreError> {
        self.inner.set_remove(bucket, key, members).await
    }

    async fn queue_len(&self, bucket: u16, queue: Queue) -> Result<usize, StoreError> {
        self.inner.queue_len(bucket, queue).await
    }

    async fn peek_jobs(
        &self,
        bucket: u16,
        queue: Queue,
        max: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.inner.peek_jobs(bucket, queue, max).await
    }

    async fn get(
        &self,
        bucket: Option<u16>,
        key: &str,
        now_ms: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(bucket, key, now_ms).await
    }

    async fn get_many(
        &self,
        bucket: Option<u16>,
        keys: &[String],
        now_ms: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.get_many(bucket, keys, now_ms).await
    }

    async fn put(
        &self,
        bucket: Option<u16>,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.inner.put(bucket, key, value, ttl_ms, now_ms).await
    }

    async fn delete(&self, bucket: Option<u16>, key: &str) -> Result<(), StoreError> {
        self.inner.delete(bucket, key).await
    }

    async fn case(&self, bucket: u16, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        self.inner.case(bucket, id).await
    }

    async fn case_by_code(&self, code: &str) -> Result<Option<CaseRecord>, StoreError> {
        self.inner.case_by_code(code).await
    }

    async fn begin_case_command(&self, req: CaseCommandBegin) -> Result<CaseBegin, StoreError> {
        self.inner.begin_case_command(req).await
    }

    async fn begin_lawyer_command(
        &self,
        req: LawyerCommandBegin,
    ) -> Result<LawyerBegin, StoreError> {
        self.inner.begin_lawyer_command(req).await
    }

    async fn update_case_once(&self, update: CaseUpdate) -> Result<Updated, StoreError> {
        let bucket = update.bucket;
        let jobs = dues(&update.jobs);
        let done = self.inner.update_case_once(update).await?;
        if done == Updated::Changed {
            self.queued(bucket, jobs);
        }
        Ok(done)
    }

    async fn case_ids(&self, bucket: u16, open_only: bool) -> Result<Vec<String>, StoreError> {
        self.inner.case_ids(bucket, open_only).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn watch(&self) -> Result<bool, StoreError> {
        self.inner.watch().await
    }

    fn disturbances(&self) -> u64 {
        self.inner.disturbances()
    }

    fn data_losses(&self) -> u64 {
        self.inner.data_losses()
    }

    fn take_data_losses(&self) -> u64 {
        self.inner.take_data_losses()
    }

    fn degraded(&self) -> bool {
        self.inner.degraded()
    }

    async fn setup_warnings(&self) -> Vec<String> {
        self.inner.setup_warnings().await
    }

    fn trusted(&self, bucket: u16) -> bool {
        self.inner.trusted(bucket)
    }

    fn doubtful(&self) -> bool {
        self.inner.doubtful()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn sessions_evicted(&self) -> u64 {
        self.inner.sessions_evicted()
    }

    fn in_process(&self) -> bool {
        self.inner.in_process()
    }
}
