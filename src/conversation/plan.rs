//! What an inbound message means, given the session it belongs to: pure.
//!
//! `plan` looks at the loaded session and the message and decides: a
//! flow step (start, next answer, or the current screen again), the SMS
//! help text, `STOP`, or nothing at all. It calls the pure flow engine and
//! nothing else: no store, no clock.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::flow::Flow;
use crate::flow::engine::{self, Caller, Step};
use crate::reload::FlowVersions;

/// Words that stop all messages to a number (any case).
pub const STOP_WORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "QUIT",
    "СТОП",
    "ТОКТОТ",
];

/// A session as stored (sealed, unless the store keeps it in the process).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct SessionData {
    /// Flow id; empty for a "was sent the help text" marker.
    #[serde(default)]
    pub f: String,
    /// The version of the flow the session began on ([`Flow::version`]);
    /// empty in sessions stored before versions existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub v: String,
    /// Engine state.
    #[serde(default)]
    pub st: Option<engine::State>,
    /// Bytes of the aggregator's cumulative text already consumed.
    #[serde(default)]
    pub c: usize,
    /// When the session started (ms).
    #[serde(default)]
    pub t0: u64,
}

impl SessionData {
    /// The session as written.
    pub(super) fn as_ref(&self) -> SessionDataRef<'_> {
        SessionDataRef {
            f: &self.f,
            v: &self.v,
            st: self.st.as_ref(),
            c: self.c,
            t0: self.t0,
        }
    }
}

/// [`SessionData`] as written: borrows what the step already holds, so
/// saving a session copies nothing. Serialises to the same JSON (a unit
/// test holds them together).
#[derive(Serialize)]
pub(super) struct SessionDataRef<'a> {
    pub f: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub v: &'a str,
    pub st: Option<&'a engine::State>,
    pub c: usize,
    pub t0: u64,
}

/// What came in.
#[derive(Debug, Clone, Copy)]
pub(super) enum Incoming<'a> {
    /// USSD, every answer so far joined with `*`.
    Cumulative(&'a str),
    /// USSD, this screen's answer only.
    Latest { text: &'a str, first: bool },
    /// An SMS.
    Sms(&'a str),
}

/// What to do with a message, decided from the loaded session.
pub(super) enum Plan {
    /// A flow step.
    Step(FlowStep),
    /// SMS that starts nothing: the help text, then quiet for an hour.
    Help,
    /// SMS STOP.
    Stop,
    /// Nothing to do (help was sent recently).
    Silent,
}

/// A step of a flow, with what the session needs to remember.
pub(super) struct FlowStep {
    pub flow: Arc<Flow>,
    pub step: Step,
    /// When the session started.
    pub t0: u64,
    /// Bytes of a cumulative text consumed so far.
    pub consumed: usize,
    /// Whether this message started the session.
    pub started: bool,
}

impl FlowStep {
    fn start(flow: &Arc<Flow>, caller: &Caller, now: u64, consumed: usize) -> Self {
        FlowStep {
            step: engine::start(flow, caller, None, now),
            flow: flow.clone(),
            t0: now,
            consumed,
            started: true,
        }
    }

    fn next(flow: Arc<Flow>, t0: u64, step: Step, consumed: usize) -> Self {
        FlowStep {
            flow,
            step,
            t0,
            consumed,
            started: false,
        }
    }
}

/// A loaded session whose flow version is still served: what a step needs
/// of it, the engine state moved out rather than copied.
struct Active {
    flow: Arc<Flow>,
    state: engine::State,
    consumed: usize,
    t0: u64,
}

/// A short digest of a text, for delivery keys (never the text itself).
pub(super) fn short_hash(text: &str) -> String {
    let h = Sha256::digest(text.as_bytes());
    h[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Steps in an Africa's Talking cumulative text.
pub(super) fn step_count(text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        text.split('*').count()
    }
}

/// The newest input in a cumulative text, given how much was consumed. Uses
/// the consumed length rather than splitting on `*`, so a `*` typed inside
/// free text stays part of the answer — unless [`catch_up`] reads its parts
/// as answers that each move the menu on (docs/redis.md).
pub(super) fn newest_input(text: &str, consumed: usize) -> &str {
    match text.get(consumed..) {
        Some(rest) if consumed > 0 && !rest.is_empty() => rest.strip_prefix('*').unwrap_or(rest),
        Some(rest) if consumed == 0 => rest,
        _ => text.rsplit('*').next().unwrap_or(""),
    }
}

pub(super) fn first_word(text: &str) -> String {
    text.split_whitespace().next().unwrap_or("").to_uppercase()
}

/// Decide what a message means given the loaded session (`existing`).
/// `start` is the flow a new USSD session starts; `None` for SMS.
pub(super) fn plan(
    flows: &FlowVersions,
    start: Option<&Arc<Flow>>,
    caller: &Caller,
    incoming: Incoming<'_>,
    existing: Option<SessionData>,
    now: u64,
) -> Option<Plan> {
    // A session goes on in the flow version it began on; when a reload
    // retired that version long enough ago, it starts again (below: the
    // `_` arms for USSD, `plan_sms` for SMS).
    let had_session = existing.is_some();
    let mut retired = None;
    let active = existing.and_then(|d| {
        let state = d.st?;
        match flows.session_flow(&d.f, &d.v) {
            Some(flow) => Some(Active {
                flow: flow.clone(),
                state,
                consumed: d.c,
                t0: d.t0,
            }),
            None => {
                if !d.f.is_empty() {
                    tracing::info!(
                        flow = %d.f,
                        "session's flow version was retired by reloads; it starts again"
                    );
                }
                retired = Some(d.f);
                None
            }
        }
    });
    let same_flow = |f: &Arc<Flow>| start.is_some_and(|s| s.id() == f.id());
    match incoming {
        Incoming::Cumulative(text) => {
            let flow = start?;
            Some(Plan::Step(match active {
                // The same text again after its cached reply was forgotten:
                // show the current screen again.
                Some(a) if same_flow(&a.flow) && a.consumed > 0 && text.len() <= a.consumed => {
                    let step = engine::redisplay(&a.flow, &a.state, caller);
                    FlowStep::next(a.flow, a.t0, step, text.len())
                }
                Some(a) if same_flow(&a.flow) => {
                    let rest = newest_input(text, a.consumed);
                    let step = match catch_up(&a.flow, &a.state, caller, rest, now) {
                        Some(step) => step,
                        None => engine::advance(&a.flow, a.state, caller, rest, now),
                    };
                    FlowStep::next(a.flow, a.t0, step, text.len())
                }
                // A session the store no longer has (lost in a failover,
                // evicted, unreadable) while her text holds every answer
                // she gave: walk them again, so she goes on from the
                // screen she is on (same case id: the session's key
                // names it). Otherwise — a new session, answers that do
                // not read as a walk, a renamed flow — start afresh.
                None if !had_session && !text.is_empty() => {
                    match replay_cumulative(flow, caller, text, now) {
                        Some(step) => FlowStep::next(flow.clone(), now, step, text.len()),
                        None => FlowStep::start(flow, caller, now, text.len()),
                    }
                }
                _ => FlowStep::start(flow, caller, now, text.len()),
            }))
        }
        Incoming::Latest { text, first } => {
            let flow = start?;
            Some(Plan::Step(match active {
                Some(a) if !first && same_flow(&a.flow) => {
                    let step = engine::advance(&a.flow, a.state, caller, text, now);
                    FlowStep::next(a.flow, a.t0, step, 0)
                }
                _ => FlowStep::start(flow, caller, now, 0),
            }))
        }
        Incoming::Sms(text) => Some(plan_sms(
            flows,
            caller,
            text,
            active,
            retired.as_deref(),
            had_session,
            now,
        )),
    }
}

/// Walk a cumulative text (`1*2*Station 5`) from the flow's first screen:
/// the step after its last answer, or `None` when any part does not move
/// the menu on, or the flow ends before the last part (a `*` typed inside
/// an answer, a wrong answer): then the text cannot be read as a walk.
pub(super) fn replay_cumulative(
    flow: &Flow,
    caller: &Caller,
    text: &str,
    now: u64,
) -> Option<Step> {
    let mut step = engine::start(flow, caller, None, now);
    let parts: Vec<&str> = text.split('*').collect();
    for (i, part) in parts.iter().enumerate() {
        let before = step.state.steps;
        step = engine::advance(flow, step.state, caller, part, now);
        let advanced = step.state.steps == before + 1;
        if !advanced || (step.end && i + 1 != parts.len()) {
            return None;
        }
    }
    Some(step)
}

/// The language her cumulative `text` chose, read as far as its answers
/// move the menu on (the flow's first language for her until she chose
/// one): the screen that ends a session the store cannot serve speaks it
/// (operator audit: after `4` for English she was told in Kyrgyz).
pub(super) fn cumulative_language(flow: &Flow, caller: &Caller, text: &str, now: u64) -> String {
    let mut step = engine::start(flow, caller, None, now);
    if !text.is_empty() {
        for part in text.split('*') {
            let before = step.state.steps;
            let next = engine::advance(flow, step.state.clone(), caller, part, now);
            if next.state.steps != before + 1 {
                break;
            }
            step = next;
            if step.end {
                break;
            }
        }
    }
    step.state.language(flow, caller).to_owned()
}

/// Answers given while the store was down (the stored session is behind
/// the cumulative text by several answers): step through each in turn.
/// `None` when `rest` is one answer, or when the parts do not read as
/// answers that each move the menu on — then `rest` is one answer with a
/// `*` typed inside it.
fn catch_up(
    flow: &Flow,
    state: &engine::State,
    caller: &Caller,
    rest: &str,
    now: u64,
) -> Option<Step> {
    let parts: Vec<&str> = rest.split('*').collect();
    if parts.len() < 2 {
        return None;
    }
    let mut state = state.clone();
    let mut last = None;
    for (i, part) in parts.iter().enumerate() {
        let before = state.steps;
        let step = engine::step(flow, &state, caller, part, now);
        let advanced = step.state.steps == before + 1;
        if !advanced || (step.end && i + 1 != parts.len()) {
            return None;
        }
        state = step.state.clone();
        last = Some(step);
    }
    last
}

fn plan_sms(
    flows: &FlowVersions,
    caller: &Caller,
    text: &str,
    active: Option<Active>,
    retired: Option<&str>,
    had_session: bool,
    now: u64,
) -> Plan {
    let word = first_word(text);
    if STOP_WORDS.contains(&word.as_str()) {
        return Plan::Stop;
    }
    if let Some(flow) = flows.by_keyword(&word) {
        return Plan::Step(FlowStep::start(flow, caller, now, 0));
    }
    // Her session's flow version is gone: its flow starts again.
    let restart = retired.and_then(|f| flows.get(f));
    match (active, restart) {
        (Some(a), _) => {
            let step = engine::advance(&a.flow, a.state, caller, text, now);
            Plan::Step(FlowStep::next(a.flow, a.t0, step, 0))
        }
        (None, Some(flow)) => Plan::Step(FlowStep::start(flow, caller, now, 0)),
        (None, None) if had_session => Plan::Silent,
        (None, None) => Plan::Help,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_newest_input_from_cumulative_text() {
        assert_eq!(step_count(""), 0);
        assert_eq!(step_count("1"), 1);
        assert_eq!(step_count("1*2*Station 5"), 3);
        assert_eq!(newest_input("", 0), "");
        assert_eq!(newest_input("1", 0), "1");
        assert_eq!(newest_input("1*2", 1), "2");
        assert_eq!(
            newest_input("1*2*Street *5", 3),
            "Street *5",
            "a typed * stays in the answer"
        );
        assert_eq!(
            newest_input("1*2", 9),
            "2",
            "inconsistent lengths fall back to the last field"
        );
    }

    #[test]
    fn a_session_is_written_as_it_is_read() {
        let mut vars = std::collections::BTreeMap::new();
        vars.insert("city".to_owned(), "osh".to_owned());
        vars.insert("where".to_owned(), "ул. \"Ленина\" {5}".to_owned());
        let state = engine::State {
            node: "situation".into(),
            lang: Some("ky".into()),
            vars,
            invalid: 2,
            steps: 3,
        };
        for (v, st) in [("3f2a", Some(&state)), ("", None)] {
            let written = SessionDataRef {
                f: "help",
                v,
                st,
                c: 7,
                t0: 1_700_000_000_000,
            };
            let owned = SessionData {
                f: "help".into(),
                v: v.into(),
                st: st.cloned(),
                c: 7,
                t0: 1_700_000_000_000,
            };
            let json = serde_json::to_string(&written).unwrap();
            assert_eq!(json, serde_json::to_string(&owned).unwrap());
            let back: SessionData = serde_json::from_str(&json).unwrap();
            assert_eq!(back.st, owned.st);
            assert_eq!(
                (back.f, back.v, back.c, back.t0),
                (owned.f, owned.v, 7, owned.t0)
            );
        }
    }

    #[test]
    fn stop_and_keywords_are_the_first_word_in_any_case() {
        assert_eq!(first_word("  stop please"), "STOP");
        assert_eq!(first_word("помощь"), "ПОМОЩЬ");
        assert_eq!(first_word(""), "");
        assert!(STOP_WORDS.contains(&first_word("Стоп").as_str()));
    }
}
