//! `kind = "console"`: the development sink.
//!
//! Every SMS it "sends" is kept in memory, in a bounded ring of the last
//! `capacity` messages, for the admin listener's `/console` page
//! ([`crate::server::console`]) and `hotline simulate` to show. Nothing
//! leaves the machine and nothing is logged: the ring is the only copy,
//! and the outbox logs only message ids, as for every channel.
//!
//! It serves no webhook (every event answers 404): a lawyer's reply is
//! typed on `/console` (or in `hotline simulate`) and handed to
//! [`crate::gateway::Gateway::sms`] as an inbound SMS on this channel, the
//! same path an aggregator's webhook takes.
//!
//! It refuses to run in a production configuration
//! ([`crate::config::Config::production`]), so it never holds a real
//! number.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use http::Method;
use serde::Deserialize;

use super::settings::{Checks, positive};
use super::{Channel, ChannelError, Event, OutSms, Request, SendOutcome};
use crate::config::ChannelKind;
use crate::phone::PhoneNumber;

/// Messages kept when `capacity` is not set.
fn default_capacity() -> u32 {
    200
}

/// The most a ring may keep (each message is at most a few hundred bytes).
const MAX_CAPACITY: u32 = 10_000;

/// The settings of `kind = "console"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_capacity", deserialize_with = "positive")]
    capacity: u32,
}

/// One message the console "sent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its number in the ring, from 1, never reused while the process runs.
    pub seq: u64,
    /// Our message id.
    pub id: String,
    /// The recipient.
    pub to: PhoneNumber,
    /// The text.
    pub text: String,
}

/// The ring and its counter. A std `Mutex`: held only to push or copy,
/// never across an `.await`.
#[derive(Debug, Default)]
struct Ring {
    next: u64,
    messages: VecDeque<Sent>,
}

/// The console channel.
#[derive(Debug)]
pub struct Console {
    name: String,
    capacity: usize,
    ring: Mutex<Ring>,
}

impl Console {
    /// From the channel's settings; `None` (with problems in `checks`)
    /// when they cannot be read.
    pub fn new(checks: &mut Checks<'_>) -> Option<Self> {
        let settings: Settings = checks.read()?;
        if settings.capacity > MAX_CAPACITY {
            checks.problem(
                "capacity",
                Some(&settings.capacity.to_string()),
                format!("at most {MAX_CAPACITY}"),
            );
        }
        Some(Console::with_capacity(
            &checks.cfg().name,
            settings.capacity.min(MAX_CAPACITY) as usize,
        ))
    }

    /// A console named `name` keeping the last `capacity` messages.
    pub fn with_capacity(name: &str, capacity: usize) -> Self {
        Console {
            name: name.to_owned(),
            capacity: capacity.max(1),
            ring: Mutex::new(Ring::default()),
        }
    }

    /// The messages kept, oldest first.
    pub fn messages(&self) -> Vec<Sent> {
        self.lock().messages.iter().cloned().collect()
    }

    /// The messages after number `seq`, oldest first.
    pub fn since(&self, seq: u64) -> Vec<Sent> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.seq > seq)
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding it cannot leave the ring inconsistent.
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keep(&self, id: &str, to: &PhoneNumber, text: &str) -> u64 {
        let mut ring = self.lock();
        ring.next += 1;
        let seq = ring.next;
        if ring.messages.len() == self.capacity {
            ring.messages.pop_front();
        }
        ring.messages.push_back(Sent {
            seq,
            id: id.to_owned(),
            to: to.clone(),
            text: text.to_owned(),
        });
        seq
    }
}

#[async_trait]
impl Channel for Console {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Console
    }

    fn methods(&self, _event: Event) -> Option<&'static [Method]> {
        None
    }

    fn authenticate(&self, _req: &Request) -> Result<(), ChannelError> {
        Err(ChannelError::NotSupported)
    }

    fn can_send(&self) -> bool {
        true
    }

    fn tps(&self) -> u32 {
        1000
    }

    fn console(&self) -> Option<&Console> {
        Some(self)
    }

    async fn send(&self, msg: OutSms<'_>) -> SendOutcome {
        let seq = self.keep(msg.id, msg.to, msg.text);
        SendOutcome::Sent {
            provider_id: Some(format!("console-{seq}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_last_messages_in_order() {
        let c = Console::with_capacity("console", 2);
        let to = PhoneNumber::parse_international("+447700900001").unwrap();
        for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
            let id = format!("m{i}");
            let out = c
                .send(OutSms {
                    id: &id,
                    to: &to,
                    text,
                })
                .await;
            assert!(matches!(out, SendOutcome::Sent { .. }), "{out:?}");
        }
        let texts: Vec<String> = c.messages().into_iter().map(|m| m.text).collect();
        assert_eq!(texts, ["two", "three"]);
        assert_eq!(c.since(2).len(), 1);
        assert!(c.methods(Event::Sms).is_none(), "no webhooks");
    }
}
