//! Onboarding a lawyer: `hotline test-sms aida` sends her a short welcome
//! with the commands and asks her to reply `OK`; a bare `OK` from her with
//! no case pending, while the welcome waits, confirms her number.
//!
//! Two small store records, global, by roster id: `welcome:{id}` while a
//! welcome waits (a week), and `verified:{id}` holding her number's keyed
//! pseudonym — so a number changed in the phones file is unconfirmed again
//! until she answers a new welcome. [`unverified`] lists who has not
//! confirmed (`hotline check` prints it). Logs carry roster ids only.

use super::Dispatcher;
use super::cover;
use super::lawyer::Call;
use super::roster::{Lawyer, Roster};
use crate::outbox::{self, Purpose};
use crate::privacy::Privacy;
use crate::store::{BUCKETS, Store, StoreError, keys};
use crate::template::render;

/// How long a welcome waits for her `OK`.
pub const WELCOME_TTL_MS: u64 = 7 * 24 * 3_600_000;

/// Why a welcome was not sent.
#[derive(Debug, thiserror::Error)]
pub enum WelcomeError {
    /// Nobody in the roster has that id or name.
    #[error("no lawyer {0:?} in the roster")]
    NoLawyer(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Dispatcher {
    /// Queue the welcome for the lawyer `typed` names (id or name, Latin or
    /// Cyrillic) and remember that it waits for her `OK`. Returns her id.
    ///
    /// # Errors
    /// [`WelcomeError`].
    pub async fn send_welcome(&self, typed: &str) -> Result<String, WelcomeError> {
        let lawyer = cover::find_lawyer(&self.roster, typed)
            .ok_or_else(|| WelcomeError::NoLawyer(typed.to_owned()))?;
        let deps = self.deps();
        let now = deps.clock.now_ms();
        let pseudonym = deps.privacy.pseudonym(lawyer.phone.as_str());
        let id = lawyer.id.as_str();
        deps.store
            .put(
                None,
                &keys::welcome_pending(id),
                pseudonym.as_str().as_bytes().to_vec(),
                Some(WELCOME_TTL_MS),
                now,
            )
            .await?;
        let t = self.texts.for_langs(&lawyer.languages);
        let text = render(&t.welcome, &[("name", &lawyer.name)]);
        let msg = self.lawyer_msg(&self.sms_channel, lawyer, text, Purpose::Notice, None, now);
        let bucket = pseudonym.bucket(BUCKETS);
        let (queue, job) = outbox::job(
            &deps.privacy,
            bucket,
            &format!("welcome:{id}:{now}"),
            &msg,
            now,
        )
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        deps.store.schedule(bucket, queue, vec![job]).await?;
        deps.wake.outbox();
        tracing::info!(lawyer = %id, "welcome queued");
        Ok(id.to_owned())
    }

    /// A bare `OK` with nothing pending: when a welcome waits for this
    /// lawyer, confirm her number, thank her and return `true`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub(super) async fn answer_welcome(&self, call: &Call<'_>) -> Result<bool, StoreError> {
        let deps = self.deps();
        let now = deps.clock.now_ms();
        let id = call.lawyer.id.as_str();
        let Some(waiting) = deps
            .store
            .get(None, &keys::welcome_pending(id), now)
            .await?
        else {
            return Ok(false);
        };
        let pseudonym = deps.privacy.pseudonym(call.lawyer.phone.as_str());
        if waiting != pseudonym.as_str().as_bytes() {
            // The welcome went to a number she no longer has.
            return Ok(false);
        }
        deps.store
            .put(None, &keys::lawyer_verified(id), waiting, None, now)
            .await?;
        deps.store.delete(None, &keys::welcome_pending(id)).await?;
        tracing::info!(lawyer = %id, "number confirmed");
        let text = render(&call.texts.verified, &[("name", &call.lawyer.name)]);
        self.tell(call, "verified", text).await?;
        Ok(true)
    }
}

/// Whether `lawyer`'s current number was confirmed.
async fn is_verified(
    store: &dyn Store,
    privacy: &Privacy,
    lawyer: &Lawyer,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let want = privacy.pseudonym(lawyer.phone.as_str());
    let got = store
        .get(None, &keys::lawyer_verified(lawyer.id.as_str()), now_ms)
        .await?;
    Ok(got.as_deref() == Some(want.as_str().as_bytes()))
}

/// Roster ids of lawyers whose current number was never confirmed.
///
/// # Errors
/// [`StoreError`].
pub async fn unverified(
    store: &dyn Store,
    privacy: &Privacy,
    roster: &Roster,
    now_ms: u64,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for l in roster.lawyers() {
        if !is_verified(store, privacy, l, now_ms).await? {
            out.push(l.id.as_str().to_owned());
        }
    }
    Ok(out)
}
