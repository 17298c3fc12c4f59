//! Case codes this instance may show while the store is down.
//!
//! A woman who completes a request during a store outage is shown a code
//! before her case exists. That code must be the one her case gets when the
//! spool is replayed, so it cannot be guessed: it must be *reserved*. While
//! the store answers, each instance leases a few codes per bucket
//! ([`Store::lease_codes`]; in Redis a code key holding `~<instance>` with a
//! TTL). Nobody else records a case with a leased code, and the lease is
//! renewed by the [`crate::worker::CodeLeaser`] tick. Offline, the
//! conversation [takes](OfflineCodes::take) one, writes it into the spool
//! entry, and shows it; replay records the case with exactly that code
//! ([`Store::record_leased_case`]), which ends the lease.
//!
//! No leased code left (or the lease too old to trust): [`OfflineCodes::take`]
//! returns `None`, and the caller is shown no code at all (see
//! [`crate::conversation`]). A shown code stays leased — renewed with the
//! others — until its case is replayed.
//!
//! Holds codes and an instance id only: no number, no text.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::store::{
    BUCKETS, CodeLease, LeaseRequest, Store, StoreError, code_bucket, code_candidates,
};

/// How long a lease lasts in the store without renewal: longer than any
/// outage the spool is meant to bridge, so that a shown code is still
/// reserved when its case is replayed (by this instance or, after a crash,
/// by another).
pub const LEASE_TTL_MS: u64 = 24 * 3600 * 1000;
/// A lease renewed longer ago than this ([`LEASE_TTL_MS`] less an hour) is
/// not used offline: the store may have let it go.
const LEASE_TRUST_MS: u64 = LEASE_TTL_MS - 3600 * 1000;

#[derive(Debug, Default)]
struct BucketCodes {
    /// Leased and not shown yet.
    free: Vec<String>,
    /// Shown while the store was down; held until the case is replayed.
    shown: BTreeSet<String>,
    /// When the lease was last renewed (ms); 0: never.
    renewed_ms: u64,
    /// Renewals so far (seeds new candidates).
    round: u64,
}

/// This instance's leased codes, per bucket.
#[derive(Debug)]
pub struct OfflineCodes {
    holder: String,
    per_bucket: usize,
    /// A std mutex: held for a few vector operations, never across an
    /// `.await` (renewal copies what it needs, calls the store, then merges).
    buckets: Mutex<Vec<BucketCodes>>,
}

impl OfflineCodes {
    /// Codes for the instance `holder`, up to `per_bucket` ready in each
    /// bucket (0: never show a code offline).
    pub fn new(holder: &str, per_bucket: usize) -> Arc<Self> {
        Arc::new(OfflineCodes {
            holder: holder.to_owned(),
            per_bucket,
            buckets: Mutex::new((0..BUCKETS).map(|_| BucketCodes::default()).collect()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<BucketCodes>> {
        // Every change is a few pushes and removes; a panic cannot leave a
        // half-applied one that matters (at worst a code is not used).
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The instance id the leases are held under.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Take a leased code of `bucket` to show now; `None` when none is
    /// ready or the lease is too old to trust.
    pub fn take(&self, bucket: u16, now_ms: u64) -> Option<CodeLease> {
        self.take_unless(bucket, now_ms, |_| false)
    }

    /// [`OfflineCodes::take`], dropping (never to show) each held code
    /// `taken` says another case has: a case recorded again after a loss
    /// outranks a lease on its code (`record_case.lua`), and the lease is
    /// only found gone at the next renewal (chaos run: a woman shown such a
    /// code held another's case).
    pub fn take_unless(
        &self,
        bucket: u16,
        now_ms: u64,
        taken: impl Fn(&str) -> bool,
    ) -> Option<CodeLease> {
        let mut buckets = self.lock();
        let b = buckets.get_mut(usize::from(bucket))?;
        if b.renewed_ms == 0 || now_ms.saturating_sub(b.renewed_ms) > LEASE_TRUST_MS {
            return None;
        }
        let code = loop {
            let code = b.free.pop()?;
            if !taken(&code) {
                break code;
            }
        };
        b.shown.insert(code.clone());
        Some(CodeLease {
            code,
            holder: self.holder.clone(),
        })
    }

    /// Put back a code that was taken but not shown.
    pub fn give_back(&self, lease: CodeLease) {
        let Some(bucket) = code_bucket(&lease.code) else {
            return;
        };
        let mut buckets = self.lock();
        if let Some(b) = buckets.get_mut(usize::from(bucket))
            && b.shown.remove(&lease.code)
        {
            b.free.push(lease.code);
        }
    }

    /// Codes ready to be shown, in every bucket.
    pub fn ready(&self) -> usize {
        self.lock().iter().map(|b| b.free.len()).sum()
    }

    /// Renew every bucket's leases and top them up to `per_bucket` ready
    /// codes; returns the codes ready. Stops at the first store failure
    /// (the buckets renewed so far keep their new state).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store is down.
    pub async fn renew(&self, store: &dyn Store, now_ms: u64) -> Result<usize, StoreError> {
        for bucket in 0..BUCKETS {
            self.renew_bucket(store, bucket, now_ms).await?;
        }
        Ok(self.ready())
    }

    /// Give back every leased code not shown yet (a graceful stop): each is
    /// held again for a millisecond only, so it is free at once for every
    /// instance. Shown codes keep their lease until their cases are
    /// replayed, by this instance's spool or by another after it.
    ///
    /// # Errors
    /// [`StoreError`] when the store does not answer (the leases then end
    /// on their own after [`LEASE_TTL_MS`]).
    pub async fn release_free(&self, store: &dyn Store, now_ms: u64) -> Result<usize, StoreError> {
        let mut released = 0;
        for bucket in 0..BUCKETS {
            let free = std::mem::take(&mut self.lock()[usize::from(bucket)].free);
            if free.is_empty() {
                continue;
            }
            released += free.len();
            store
                .lease_codes(LeaseRequest {
                    bucket,
                    holder: self.holder.clone(),
                    target: free.len(),
                    keep: free,
                    candidates: Vec::new(),
                    ttl_ms: 1,
                    now_ms,
                })
                .await?;
        }
        Ok(released)
    }

    async fn renew_bucket(
        &self,
        store: &dyn Store,
        bucket: u16,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let (keep, shown, round) = {
            let mut buckets = self.lock();
            let b = &mut buckets[usize::from(bucket)];
            b.round += 1;
            let keep: Vec<String> = b.free.iter().chain(&b.shown).cloned().collect();
            (keep, b.shown.len(), b.round)
        };
        // Four-digit candidates first; the five- and six-digit ones after
        // them keep leases possible when a bucket's short codes run out.
        let seed = format!("lease:{}:{round}", self.holder);
        // No new code while the store may call a lost case's code free
        // (`Store::trusted`): only the ones held already are renewed.
        let candidates = if store.trusted(bucket) {
            code_candidates(bucket, &seed, self.per_bucket * 2)
        } else {
            Vec::new()
        };
        let held = store
            .lease_codes(LeaseRequest {
                bucket,
                holder: self.holder.clone(),
                keep,
                candidates,
                target: self.per_bucket + shown,
                ttl_ms: LEASE_TTL_MS,
                now_ms,
            })
            .await?;
        let mut buckets = self.lock();
        let b = &mut buckets[usize::from(bucket)];
        // Shown codes the store no longer holds for us became their cases'.
        b.shown.retain(|c| held.contains(c));
        b.free = held
            .into_iter()
            .filter(|c| !b.shown.contains(c))
            .take(self.per_bucket)
            .collect();
        b.renewed_ms = now_ms;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn codes_are_taken_only_from_a_renewed_lease() {
        let store = MemoryStore::new(10);
        let codes = OfflineCodes::new("i1", 3);
        assert_eq!(codes.take(4, 1), None, "nothing leased yet");
        assert_eq!(codes.renew(&store, 1).await.unwrap(), 3 * 16);
        let a = codes.take(4, 2).unwrap();
        assert_eq!(code_bucket(&a.code), Some(4));
        assert_eq!(a.holder, "i1");
        codes.give_back(a.clone());
        assert_eq!(codes.ready(), 48);
        let a = codes.take(4, 2).unwrap();
        // A shown code stays held (renewed) beside three ready ones.
        codes.renew(&store, 3).await.unwrap();
        assert_eq!(codes.ready(), 48);
        assert_ne!(codes.take(4, 4).unwrap().code, a.code);
        assert_eq!(
            codes.take(4, 3 + LEASE_TRUST_MS + 1),
            None,
            "a lease too old is not trusted"
        );
    }

    /// A held code another case has taken over (a case recorded again
    /// after a loss outranks the lease) is dropped, never shown.
    #[tokio::test]
    async fn a_code_taken_over_by_a_case_is_dropped_not_shown() {
        let store = MemoryStore::new(10);
        let codes = OfflineCodes::new("i1", 3);
        codes.renew(&store, 1).await.unwrap();
        let held: Vec<String> = (0..3)
            .filter_map(|_| codes.take(4, 2))
            .map(|l| l.code)
            .collect();
        for code in &held {
            codes.give_back(CodeLease {
                code: code.clone(),
                holder: "i1".into(),
            });
        }
        let gone = held[2].clone();
        let got = codes.take_unless(4, 2, |c| c == gone).unwrap();
        assert_ne!(got.code, gone);
        assert_eq!(codes.ready(), 48 - 2, "one shown, one dropped");
        let rest: Vec<String> = std::iter::from_fn(|| codes.take(4, 2))
            .map(|l| l.code)
            .collect();
        assert!(!rest.contains(&gone), "{rest:?}");
    }
}
