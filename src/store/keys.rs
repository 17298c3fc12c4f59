//! Every logical key the gateway stores under, in one place.
//!
//! The store adds its own prefix and the bucket's hash tag; these are the
//! names inside a bucket (or the global space). None of them holds a phone
//! number or a text: callers appear by pseudonym, messages by their id.
//! Changing one of these strings orphans live data: the key schema is part
//! of the public interface (`docs/redis.md`).

use std::fmt::Display;

/// A USSD session: `u:{channel}:{aggregator session id}:{caller tag}`, the
/// tag the first six hex digits of the caller's pseudonym. The session is
/// the caller's: another number sending the same session id (an aggregator
/// that reuses ids, or someone who learned one) gets a session of its own,
/// never her screens, her answers or her case.
pub fn ussd_session(channel: &str, session_id: &str, caller: &str) -> String {
    let tag = caller
        .strip_prefix("p_")
        // Six: enough to tell callers apart (her pseudonym is keyed: no
        // one can pick a number to match it), short enough to keep a live
        // session within its 768 bytes of Redis (`tests/round_trips.rs`).
        .and_then(|hex| hex.get(..6))
        .unwrap_or(caller);
    // On every hop: one allocation, no formatting machinery.
    ["u:", channel, ":", session_id, ":", tag].concat()
}

/// An SMS conversation: `m:{channel}:{pseudonym}`.
pub fn sms_session(channel: &str, pseudonym: impl Display) -> String {
    format!("m:{channel}:{pseudonym}")
}

/// A delivery of a USSD hop with a cumulative text: the session key and the
/// number of answers in it.
pub fn ussd_cumulative_delivery(session_key: &str, steps: usize) -> String {
    numbered(session_key, ':', steps as u64)
}

/// `{key}{sep}{n}` in one allocation (on every hop).
pub(crate) fn numbered(key: &str, sep: char, n: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(key.len() + 1 + 20);
    out.push_str(key);
    out.push(sep);
    let _ = write!(out, "{n}");
    out
}

/// A delivery of a USSD hop that carries only the latest answer.
pub fn ussd_latest_delivery(session_key: &str, first: bool, text_hash: &str) -> String {
    format!("{session_key}:L{}:{text_hash}", u8::from(first))
}

/// A hop of a latest-input USSD session that the operator names
/// (`hop_id_field`): its retries carry the same id. `id_hash` is a short
/// hash of the id, so the key stays short whatever the operator sends.
pub fn ussd_hop_delivery(session_key: &str, id_hash: &str) -> String {
    format!("{session_key}:H{id_hash}")
}

/// An inbound SMS with the aggregator's message id.
pub fn sms_delivery(channel: &str, message_id: &str) -> String {
    format!("s:{channel}:{message_id}")
}

/// An inbound SMS without an aggregator id: sender and a hash of the text.
pub fn sms_delivery_by_text(channel: &str, pseudonym: impl Display, text_hash: &str) -> String {
    format!("s:{channel}:{pseudonym}:{text_hash}")
}

/// A lawyer's command, handled: the mark of its delivery, in the code's
/// bucket for a command with a code, global (beside her case index) for
/// one without (written with the case change, or at once for a command
/// whose only effect is its reply).
pub fn lawyer_delivery(channel: &str, message_id: &str) -> String {
    format!("ld:{channel}:{message_id}")
}

/// Set while a caller has opted out (`STOP`), in her bucket.
pub fn opted_out(pseudonym: impl Display) -> String {
    format!("o:{pseudonym}")
}

/// When a caller was last sent a message (ms), in her bucket.
pub fn last_sent(pseudonym: impl Display) -> String {
    format!("ls:{pseudonym}")
}

/// The cases offered to a lawyer (a set of `<bucket>:<case id>`, added as
/// each offer is sent, pruned when read), global: her bare `OK` or
/// `STATUS` reads it instead of every open case.
pub fn lawyer_cases(lawyer: &str) -> String {
    format!("lw:{lawyer}")
}

/// Set while a lawyer is off call (`OFF`), global.
pub fn lawyer_off(lawyer: &str) -> String {
    format!("off:{lawyer}")
}

/// A coordinator's cover of a city (`COVER aida 18:00`), global, expiring
/// with it.
pub fn cover(city: &str) -> String {
    format!("cover:{city}")
}

/// A welcome sent by `hotline test-sms`, waiting for her `OK`, global.
pub fn welcome_pending(lawyer: &str) -> String {
    format!("welcome:{lawyer}")
}

/// A lawyer's number confirmed by her `OK` to the welcome (the value is the
/// number's pseudonym, so a changed number is unconfirmed again), global.
pub fn lawyer_verified(lawyer: &str) -> String {
    format!("verified:{lawyer}")
}

/// Set once a message was handed to its aggregator, in its bucket.
pub fn sent_marker(message_id: &str) -> String {
    format!("sent:{message_id}")
}

/// What is remembered about a sent message, in its bucket.
pub fn sent_record(message_id: &str) -> String {
    format!("msg:{message_id}")
}

/// The aggregator's id of a message (as a keyed pseudonym, so a dump
/// cannot be joined with the aggregator's records) → ours, global.
pub fn provider_id(channel: &str, provider_id: impl Display) -> String {
    format!("p:{channel}:{provider_id}")
}

/// A channel's send rate shared by every instance (GCRA), global.
pub fn channel_rate(channel: &str) -> String {
    format!("rate:{channel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_stable() {
        assert_eq!(
            ussd_session("at", "S1", "p_0123456789abcdef0123"),
            "u:at:S1:012345"
        );
        assert_eq!(ussd_cumulative_delivery("u:at:S1", 3), "u:at:S1:3");
        assert_eq!(numbered("k:1", '@', u64::MAX), format!("k:1@{}", u64::MAX));
        assert_eq!(ussd_latest_delivery("u:x:S", true, "ab"), "u:x:S:L1:ab");
        assert_eq!(sms_session("at", "p_1"), "m:at:p_1");
        assert_eq!(sms_delivery("at", "id"), "s:at:id");
        assert_eq!(sms_delivery_by_text("at", "p_1", "h"), "s:at:p_1:h");
        assert_eq!(opted_out("p_1"), "o:p_1");
        assert_eq!(lawyer_delivery("at", "id"), "ld:at:id");
        assert_eq!(last_sent("p_1"), "ls:p_1");
        assert_eq!(lawyer_off("aida"), "off:aida");
        assert_eq!(lawyer_cases("aida"), "lw:aida");
        assert_eq!(cover("osh"), "cover:osh");
        assert_eq!(welcome_pending("aida"), "welcome:aida");
        assert_eq!(lawyer_verified("aida"), "verified:aida");
        assert_eq!(sent_marker("07.x"), "sent:07.x");
        assert_eq!(sent_record("07.x"), "msg:07.x");
        assert_eq!(provider_id("at", "ATX"), "p:at:ATX");
        assert_eq!(channel_rate("at"), "rate:at");
    }
}
