//! The inbox: inbound SMS kept while the store is down.
//!
//! An SMS that arrives while Redis does not answer cannot be handled: her
//! session, the rate limit and the dedupe marks are in Redis. Before, the
//! gateway answered 503 and counted on the aggregator to deliver it again —
//! but Kannel retries a `get-url` only as often as `http-request-retry`
//! says (none by default), Twilio only with retry overrides, and an outage
//! may outlast any retry. So the message is kept here instead: one line in
//! `<stem>.inbox.jsonl` (its channel, when it came, and the message sealed
//! with the PII key: no number or text in clear), `fsync`ed before the
//! aggregator is told 200. Once the store answers, the spool's worker hands
//! each kept message, oldest first, to the same handler a webhook uses
//! ([`Inbound`]), after the spooled cases: a woman's answer moves her
//! session on (her next screen goes out by SMS), a lawyer's `OK 4821` is
//! applied. A message still refused for the store stays, and the rest wait
//! behind it; one that cannot be opened (another key) stays for an
//! operator. A dead instance's inbox is handled like its spool: by
//! whichever instance takes its lock.

use std::path::Path;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{B64, Spool, blocking, files};
use crate::channel::SmsIn;
use crate::phone::PhoneNumber;
use crate::privacy::Privacy;

/// Handles a kept inbound SMS now (the gateway, without keeping it again).
#[async_trait]
pub trait Inbound: Send + Sync {
    /// Handle `msg`, which came on `channel`; `false` when the store is
    /// still down (the message is kept for the next try).
    async fn handle_kept(&self, channel: &str, msg: SmsIn) -> bool;

    /// The keys kept messages are sealed with.
    fn privacy(&self) -> Privacy;
}

/// One kept message: a line of an inbox file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Kept {
    channel: String,
    at_ms: u64,
    /// [`Sealed`], sealed and base64.
    sealed: String,
}

/// What is sealed of a message.
#[derive(Serialize, Deserialize)]
struct Sealed {
    id: Option<String>,
    from: PhoneNumber,
    to: String,
    text: String,
}

impl Kept {
    fn new(privacy: &Privacy, channel: &str, msg: &SmsIn, at_ms: u64) -> std::io::Result<Kept> {
        let sealed = privacy
            .seal_json(&Sealed {
                id: msg.message_id.clone(),
                from: msg.from.clone(),
                to: msg.to.clone(),
                text: msg.text.clone(),
            })
            .map_err(std::io::Error::other)?;
        Ok(Kept {
            channel: channel.to_owned(),
            at_ms,
            sealed: B64.encode(sealed),
        })
    }

    fn open(&self, privacy: &Privacy) -> Option<SmsIn> {
        let bytes = B64.decode(&self.sealed).ok()?;
        let s: Sealed = privacy.open_json(&bytes).ok()?;
        Some(SmsIn {
            message_id: s.id,
            from: s.from,
            to: s.to,
            text: s.text,
        })
    }
}

fn read(path: &Path) -> std::io::Result<Vec<Kept>> {
    files::read_lines(path, "inbox")
}

/// Replace the inbox's lines; no file when none is left.
fn rewrite(path: &Path, kept: &[Kept]) -> std::io::Result<()> {
    if !kept.is_empty() {
        return files::write_entries(path, kept);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// What handling an inbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxReplayed {
    /// Messages handled (and removed).
    pub handled: usize,
    /// Messages left in the file.
    pub remaining: usize,
}

/// Hand the messages of the inbox at `path` (whose lock the caller holds)
/// to `handler`, oldest first, until one is refused for the store; write
/// back the rest, and whatever was appended meanwhile (`guard` serialises
/// the reads and rewrites with this process's appends; it is not held
/// while the messages are handled).
pub(super) async fn replay(
    path: std::path::PathBuf,
    privacy: &Privacy,
    handler: &dyn Inbound,
    guard: &tokio::sync::Mutex<()>,
) -> std::io::Result<InboxReplayed> {
    let kept = {
        let _g = guard.lock().await;
        let p = path.clone();
        blocking(move || read(&p)).await?
    };
    if kept.is_empty() {
        return Ok(InboxReplayed::default());
    }
    let total = kept.len();
    let mut left = Vec::new();
    let mut stopped = false;
    for k in kept {
        if stopped {
            left.push(k);
            continue;
        }
        let Some(msg) = k.open(privacy) else {
            tracing::error!(
                channel = %k.channel,
                "a kept inbound SMS cannot be opened (another HOTLINE_PII_KEY?); kept for an operator"
            );
            left.push(k);
            continue;
        };
        if handler.handle_kept(&k.channel, msg).await {
            tracing::info!(channel = %k.channel, "an SMS kept while the store was down was handled");
        } else {
            stopped = true;
            left.push(k);
        }
    }
    let handled = total - left.len();
    let _g = guard.lock().await;
    let p = path.clone();
    let now = blocking(move || read(&p)).await?;
    // Only ever appended to meanwhile: what is past the first `total`
    // lines came in while these were handled.
    left.extend(now.into_iter().skip(total));
    let remaining = left.len();
    if handled > 0 {
        blocking(move || rewrite(&path, &left)).await?;
    }
    Ok(InboxReplayed { handled, remaining })
}

impl Spool {
    /// Keep an inbound SMS the store could not take (sealed, `fsync`ed):
    /// the aggregator may then be told it was received.
    ///
    /// # Errors
    /// When the disk refuses: the aggregator must be asked to retry.
    pub async fn keep_inbound(
        &self,
        privacy: &Privacy,
        channel: &str,
        msg: &SmsIn,
        now_ms: u64,
    ) -> std::io::Result<()> {
        let kept = Kept::new(privacy, channel, msg, now_ms)?;
        let _guard = self.inbox_lock.lock().await;
        let path = files::inbox_path(&self.dir, &self.stem);
        blocking(move || files::append_entries(&path, std::slice::from_ref(&kept))).await?;
        self.inbox.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Inbound SMS waiting in this instance's inbox (`hotline_inbox_pending`).
    pub fn inbox_pending(&self) -> usize {
        self.inbox.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The handler for kept messages: the gateway, set once it is built
    /// (held weakly: the gateway holds the spool).
    pub fn set_inbound(&self, handler: std::sync::Weak<dyn Inbound>) {
        let _ = self.inbound.set(handler);
    }

    pub(super) fn inbound(&self) -> Option<std::sync::Arc<dyn Inbound>> {
        self.inbound.get().and_then(std::sync::Weak::upgrade)
    }

    /// Hand this instance's kept messages to the gateway, oldest first
    /// (the spool's worker calls this once the store answers, after the
    /// spooled cases).
    ///
    /// # Errors
    /// When the disk fails.
    pub async fn replay_inbox(&self) -> std::io::Result<InboxReplayed> {
        let Some(handler) = self.inbound() else {
            return Ok(InboxReplayed::default());
        };
        if self.inbox_pending() == 0 {
            return Ok(InboxReplayed::default());
        }
        let path = files::inbox_path(&self.dir, &self.stem);
        let privacy = handler.privacy();
        let out = replay(path, &privacy, handler.as_ref(), &self.inbox_lock).await?;
        self.inbox
            .store(out.remaining, std::sync::atomic::Ordering::SeqCst);
        Ok(out)
    }
}

/// Messages in an inbox file (at start).
pub(super) fn count(path: &Path) -> std::io::Result<usize> {
    read(path).map(|k| k.len())
}
