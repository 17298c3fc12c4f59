//! Delivery reports: where a sent message got to.
//!
//! A report names our message id (a per-message callback URL) or the
//! aggregator's (looked up in `p:{channel}:{id}`). Its state is written to
//! the message's [`SentRecord`]; a late `sent` never overwrites `delivered`
//! or `failed`; a `failed` is told to whoever reacts to undelivered
//! messages (dispatch, for an offer). Reports about messages the gateway
//! does not remember are counted and ignored.

use super::worker::{Outbox, Undelivered};
use super::{SENT_RECORD_TTL_MS, SentRecord, bucket_of};
use crate::channel::{DeliveryState, StatusIn};
use crate::store::{StoreError, keys};

/// Delivery-report failure reasons that are the sender account's, not the
/// recipient's: Africa's Talking `InsufficientCredit`; Twilio 30001 (queue
/// overflow) and 30002 (account suspended).
pub const CHANNEL_REASONS: &[&str] = &["InsufficientCredit", "30001", "30002"];

impl Outbox {
    /// Apply delivery reports received on `channel`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store is down (the aggregator
    /// should then deliver the report again).
    pub async fn on_status(&self, channel: &str, reports: Vec<StatusIn>) -> Result<(), StoreError> {
        for report in reports {
            self.deps()
                .metrics
                .delivery_reports
                .with_label_values(&[channel, report.state.as_str()])
                .inc();
            self.apply_report(channel, report).await?;
        }
        Ok(())
    }

    async fn apply_report(&self, channel: &str, report: StatusIn) -> Result<(), StoreError> {
        let store = &self.deps().store;
        let now = self.deps().clock.now_ms();
        let id = match (&report.message_id, &report.provider_id) {
            (Some(m), _) => Some(m.clone()),
            (None, Some(pid)) => store
                .get(
                    None,
                    &keys::provider_id(channel, self.deps().privacy.pseudonym(pid)),
                    now,
                )
                .await?
                .and_then(|b| String::from_utf8(b).ok()),
            (None, None) => None,
        };
        let Some((bucket, id)) = id.and_then(|id| Some((bucket_of(&id)?, id))) else {
            tracing::debug!(channel, "delivery report for an unknown message");
            return Ok(());
        };
        let key = keys::sent_record(&id);
        let Some(mut record) = store
            .get(Some(bucket), &key, now)
            .await?
            .and_then(|b| self.deps().privacy.open_json::<SentRecord>(&b).ok())
        else {
            tracing::debug!(channel, message_id = %id, "delivery report for a message no longer remembered");
            return Ok(());
        };
        // A late "sent" must not overwrite "delivered" or "failed".
        if record.state != DeliveryState::Sent && report.state == DeliveryState::Sent {
            return Ok(());
        }
        record.state = report.state;
        let bytes = self
            .deps()
            .privacy
            .seal_json(&record)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        store
            .put(Some(bucket), &key, bytes, Some(SENT_RECORD_TTL_MS), now)
            .await?;
        tracing::info!(channel, message_id = %id, state = report.state.as_str(), reason = report.reason.as_deref().unwrap_or(""), "delivery report");
        let reason = report.reason.as_deref().unwrap_or("undelivered");
        if report.state == DeliveryState::Failed && CHANNEL_REASONS.contains(&reason) {
            // The account's fault, not the number's: no lawyer declined.
            let now = self.deps().clock.now_ms();
            self.health()
                .failed(&record.channel, super::health::REFUSED, reason, now);
        } else if report.state == DeliveryState::Failed {
            self.tell_undelivered(Undelivered {
                channel: record.channel.clone(),
                purpose: record.purpose,
                recipient: record.recipient.clone(),
                case: record.case.clone(),
                reason: report.reason.unwrap_or_else(|| "undelivered".into()),
            })
            .await;
        }
        Ok(())
    }
}
