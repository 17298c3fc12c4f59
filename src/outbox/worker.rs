//! The sender worker and delivery reports.
//!
//! [`run`] polls every bucket's outbox (and wakes early when this instance
//! queued something), claims due messages under a lease, and sends each one
//! in its own task, at most `outbox.concurrency` at once, each channel
//! within its own rate (`tps`, via `governor`). [`on_status`] applies
//! delivery reports to the record of the message they are about.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::{OutMsg, Recipient, SENT_RECORD_TTL_MS, SentRecord, bucket_of, open};
use crate::app::App;
use crate::case::CaseData;
use crate::channel::{DeliveryState, OutSms, SendOutcome, StatusIn};
use crate::store::{BUCKETS, Claimed, Queue, StoreError};

/// A message that will not reach its recipient, for whoever must react
/// (lawyer dispatch escalates an offer that cannot be delivered).
#[derive(Debug, Clone)]
pub struct Undelivered {
    /// The channel it went (or would have gone) through.
    pub channel: String,
    /// Why it was sent.
    pub purpose: super::Purpose,
    /// Who it was for.
    pub recipient: Recipient,
    /// The case it was about.
    pub case: Option<super::CaseRef>,
    /// Why it will not arrive (a code).
    pub reason: String,
}

/// Reacts to undelivered messages.
#[async_trait]
pub trait OutboxEvents: Send + Sync {
    /// A message was given up, or a delivery report said it failed.
    async fn undelivered(&self, app: &App, event: Undelivered);
}

/// Poll and send until the task is stopped.
pub async fn run(app: App) {
    let cfg = app.config.outbox;
    let permits = Arc::new(Semaphore::new(cfg.concurrency));
    loop {
        let mut claimed_any = false;
        for bucket in 0..BUCKETS {
            let now = app.conversations.clock.now_ms();
            let lease = u64::try_from(cfg.lease.as_millis()).unwrap_or(60_000);
            let batch = permits.available_permits().max(1);
            match app
                .conversations
                .store
                .claim(bucket, Queue::Outbox, now, lease, batch)
                .await
            {
                Ok(jobs) => {
                    for job in jobs {
                        claimed_any = true;
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            return;
                        };
                        let app = app.clone();
                        tokio::spawn(async move {
                            send_one(&app, bucket, job).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "outbox claim failed; will retry");
                    break;
                }
            }
        }
        if !claimed_any {
            tokio::select! {
                () = tokio::time::sleep(cfg.poll) => {}
                () = app.outbox_notify.notified() => {}
            }
        }
    }
}

/// Backoff before attempt `attempt + 1`: base × 2^(attempt-1), capped, with
/// jitter (between half and all of it), and never sooner than `after`.
pub fn backoff(base: Duration, max: Duration, attempt: u32, after: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let ms = u64::try_from(capped.as_millis()).unwrap_or(u64::MAX).max(1);
    let jittered = Duration::from_millis(rand::random_range(ms / 2..=ms));
    after.map_or(jittered, |a| jittered.max(a))
}

async fn give_up(app: &App, bucket: u16, job: &Claimed, msg: &OutMsg, reason: &str) {
    let store = &app.conversations.store;
    if let Err(e) = store
        .finish(bucket, Queue::Outbox, &job.job.id, job.attempt)
        .await
    {
        tracing::warn!(error = %e, "could not finish a failed message; it will be retried");
        return;
    }
    app.metrics
        .outbox_failed
        .with_label_values(&[&msg.channel, msg.purpose.as_str()])
        .inc();
    tracing::warn!(
        message = %job.job.id,
        channel = %msg.channel,
        purpose = msg.purpose.as_str(),
        attempt = job.attempt,
        reason,
        "message given up"
    );
    if let Some(events) = &app.outbox_events {
        events
            .undelivered(
                app,
                Undelivered {
                    channel: msg.channel.clone(),
                    purpose: msg.purpose,
                    recipient: msg.recipient.clone(),
                    case: msg.case.clone(),
                    reason: reason.to_owned(),
                },
            )
            .await;
    }
}

/// Fill in `{code}` and `{minutes}` from the message's case.
async fn render(app: &App, msg: &OutMsg, now: u64) -> Result<String, StoreError> {
    let Some(case) = &msg.case else {
        return Ok(msg.text.clone());
    };
    if !msg.text.contains("{code}") && !msg.text.contains("{minutes}") {
        return Ok(msg.text.clone());
    }
    let rec = app
        .conversations
        .store
        .case(case.bucket, &case.id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("message names a case that does not exist".into()))?;
    let minutes = app
        .conversations
        .privacy
        .open(&rec.data)
        .ok()
        .and_then(|p| serde_json::from_slice::<CaseData>(&p).ok())
        .map_or(0, |c| now.saturating_sub(c.opened_at_ms) / 60_000);
    Ok(msg
        .text
        .replace("{code}", &rec.code)
        .replace("{minutes}", &minutes.to_string()))
}

/// Send one claimed message and record what happened.
pub async fn send_one(app: &App, bucket: u16, job: Claimed) {
    let store = &app.conversations.store;
    let now = app.conversations.clock.now_ms();
    let id = job.job.id.clone();
    let Some(msg) = open(&app.conversations.privacy, &job.job.payload) else {
        tracing::error!(message = %id, "outbox payload cannot be opened (wrong HOTLINE_PII_KEY?); dropped");
        let _ = store.finish(bucket, Queue::Outbox, &id, job.attempt).await;
        return;
    };
    // A worker that died after sending but before finishing left a record.
    if job.attempt > 1 {
        match store.get(Some(bucket), &format!("sent:{id}"), now).await {
            Ok(Some(_)) => {
                let _ = store.finish(bucket, Queue::Outbox, &id, job.attempt).await;
                return;
            }
            Ok(None) => {}
            Err(_) => return, // the lease expires and another attempt follows
        }
    }
    if let Recipient::Caller { pseudonym } = &msg.recipient {
        match store
            .get(Some(bucket), &format!("o:{pseudonym}"), now)
            .await
        {
            Ok(Some(_)) => return give_up(app, bucket, &job, &msg, "opted_out").await,
            Ok(None) => {}
            Err(_) => return,
        }
    }
    let max_age = u64::try_from(app.config.outbox.max_age.as_millis()).unwrap_or(u64::MAX);
    if now.saturating_sub(msg.created_ms) > max_age {
        return give_up(app, bucket, &job, &msg, "expired").await;
    }
    let Some(channel) = app.channels.get(&msg.channel).cloned() else {
        return give_up(app, bucket, &job, &msg, "no_such_channel").await;
    };
    if !channel.can_send() {
        return give_up(app, bucket, &job, &msg, "channel_cannot_send").await;
    }
    let text = match render(app, &msg, now).await {
        Ok(t) => t,
        Err(StoreError::Corrupt(_)) => {
            return give_up(app, bucket, &job, &msg, "case_missing").await;
        }
        Err(_) => return, // store down: the lease expires and it is tried again
    };
    if let Some(limiter) = app.limiters.get(&msg.channel) {
        limiter.until_ready().await;
    }
    let started = Instant::now();
    let outcome = channel
        .send(OutSms {
            id: &id,
            to: &msg.to,
            text: &text,
        })
        .await;
    app.metrics
        .send_duration
        .with_label_values(&[&msg.channel])
        .observe(started.elapsed().as_secs_f64());
    let now = app.conversations.clock.now_ms();
    match outcome {
        SendOutcome::Sent { provider_id } => {
            let record = SentRecord {
                channel: msg.channel.clone(),
                purpose: msg.purpose,
                recipient: msg.recipient.clone(),
                case: msg.case.clone(),
                provider_id: provider_id.clone(),
                state: "sent".into(),
            };
            let ttl = Some(SENT_RECORD_TTL_MS);
            let marker = store
                .put(
                    Some(bucket),
                    &format!("sent:{id}"),
                    Some(b"1".to_vec()),
                    ttl,
                    now,
                )
                .await;
            let rec = store
                .put(
                    Some(bucket),
                    &format!("msg:{id}"),
                    serde_json::to_vec(&record).ok(),
                    ttl,
                    now,
                )
                .await;
            let map = match &provider_id {
                Some(pid) => {
                    store
                        .put(
                            None,
                            &format!("p:{}:{pid}", msg.channel),
                            Some(id.clone().into_bytes()),
                            ttl,
                            now,
                        )
                        .await
                }
                None => Ok(()),
            };
            let last = match &msg.recipient {
                Recipient::Caller { pseudonym } => {
                    store
                        .put(
                            Some(bucket),
                            &super::last_sent_key(pseudonym),
                            Some(now.to_string().into_bytes()),
                            Some(24 * 3600 * 1000),
                            now,
                        )
                        .await
                }
                Recipient::Lawyer { .. } => Ok(()),
            };
            if marker.is_err() || rec.is_err() || map.is_err() || last.is_err() {
                tracing::warn!(message = %id, "sent, but its record could not be written; delivery reports may not match");
            }
            let _ = store.finish(bucket, Queue::Outbox, &id, job.attempt).await;
            app.metrics
                .outbox_sent
                .with_label_values(&[&msg.channel, msg.purpose.as_str()])
                .inc();
            app.metrics
                .sms_segments
                .with_label_values(&[&msg.channel])
                .inc_by(crate::text::measure(&text).sms_segments() as u64);
            tracing::info!(message = %id, channel = %msg.channel, purpose = msg.purpose.as_str(), attempt = job.attempt, "message sent");
        }
        SendOutcome::Retry { after, reason } => {
            if job.attempt >= app.config.outbox.max_attempts {
                return give_up(
                    app,
                    bucket,
                    &job,
                    &msg,
                    &format!("attempts_exhausted ({reason})"),
                )
                .await;
            }
            let cfg = app.config.outbox;
            let delay = backoff(cfg.backoff_base, cfg.backoff_max, job.attempt, after);
            let due = now + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX / 2);
            let _ = store
                .reschedule(bucket, Queue::Outbox, &id, job.attempt, due, None)
                .await;
            app.metrics
                .outbox_retries
                .with_label_values(&[&msg.channel])
                .inc();
            tracing::info!(message = %id, channel = %msg.channel, attempt = job.attempt, reason = %reason, delay_ms = delay.as_millis() as u64, "send will be retried");
        }
        SendOutcome::Permanent { reason, .. } => give_up(app, bucket, &job, &msg, &reason).await,
        SendOutcome::OptedOut => {
            if let Recipient::Caller { pseudonym } = &msg.recipient {
                let _ = store
                    .put(
                        Some(bucket),
                        &format!("o:{pseudonym}"),
                        Some(b"1".to_vec()),
                        None,
                        now,
                    )
                    .await;
            }
            give_up(app, bucket, &job, &msg, "opted_out").await;
        }
    }
}

/// Apply delivery reports received on `channel`. Reports about messages the
/// gateway does not know (or no longer remembers) are counted and ignored.
///
/// # Errors
/// [`StoreError::Unavailable`] when the store is down (the aggregator should
/// then deliver the report again).
pub async fn on_status(app: &App, channel: &str, reports: Vec<StatusIn>) -> Result<(), StoreError> {
    let store = &app.conversations.store;
    for report in reports {
        let now = app.conversations.clock.now_ms();
        app.metrics
            .delivery_reports
            .with_label_values(&[channel, report.state.as_str()])
            .inc();
        let id = match (&report.message_id, &report.provider_id) {
            (Some(m), _) => Some(m.clone()),
            (None, Some(pid)) => store
                .get(None, &format!("p:{channel}:{pid}"), now)
                .await?
                .and_then(|b| String::from_utf8(b).ok()),
            (None, None) => None,
        };
        let Some((id, bucket)) =
            id.and_then(|id| Some((bucket_of(&id)?, id)).map(|(b, id)| (id, b)))
        else {
            tracing::debug!(channel, "delivery report for an unknown message");
            continue;
        };
        let key = format!("msg:{id}");
        let Some(mut record) = store
            .get(Some(bucket), &key, now)
            .await?
            .and_then(|b| serde_json::from_slice::<SentRecord>(&b).ok())
        else {
            tracing::debug!(channel, message = %id, "delivery report for a message no longer remembered");
            continue;
        };
        // A late "sent" must not overwrite "delivered" or "failed".
        if record.state != "sent" && report.state == DeliveryState::Sent {
            continue;
        }
        record.state = report.state.as_str().to_owned();
        store
            .put(
                Some(bucket),
                &key,
                serde_json::to_vec(&record).ok(),
                Some(SENT_RECORD_TTL_MS),
                now,
            )
            .await?;
        tracing::info!(channel, message = %id, state = report.state.as_str(), reason = report.reason.as_deref().unwrap_or(""), "delivery report");
        if report.state == DeliveryState::Failed
            && let Some(events) = &app.outbox_events
        {
            events
                .undelivered(
                    app,
                    Undelivered {
                        channel: record.channel.clone(),
                        purpose: record.purpose,
                        recipient: record.recipient.clone(),
                        case: record.case.clone(),
                        reason: report
                            .reason
                            .clone()
                            .unwrap_or_else(|| "undelivered".into()),
                    },
                )
                .await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_jittered_and_honours_retry_after() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(300);
        for _ in 0..100 {
            let d1 = backoff(base, max, 1, None);
            assert!(
                d1 >= Duration::from_secs(1) && d1 <= Duration::from_secs(2),
                "{d1:?}"
            );
            let d3 = backoff(base, max, 3, None);
            assert!(
                d3 >= Duration::from_secs(4) && d3 <= Duration::from_secs(8),
                "{d3:?}"
            );
            let d20 = backoff(base, max, 20, None);
            assert!(d20 <= max && d20 >= max / 2, "{d20:?}");
            let ra = backoff(base, max, 1, Some(Duration::from_secs(30)));
            assert!(ra >= Duration::from_secs(30));
        }
    }
}
